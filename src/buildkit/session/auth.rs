//! `moby.filesync.v1.Auth`: the daemon asks the session for registry credentials, which
//! come from the Docker CLI configuration ([`crate::credentials`]).
//!
//! `FetchToken`, `GetTokenAuthority` and `VerifyTokenAuthority` answer Unimplemented; the
//! daemon then fetches tokens itself with the credentials. Secrets are never logged.

use tonic::{Request, Response, Status};

use crate::credentials::DockerAuth;
use crate::error::Hint;
use crate::proto::moby::filesync::v1::auth_server::Auth;
use crate::proto::moby::filesync::v1::{
    CredentialsRequest, CredentialsResponse, FetchTokenRequest, FetchTokenResponse,
    GetTokenAuthorityRequest, GetTokenAuthorityResponse, VerifyTokenAuthorityRequest,
    VerifyTokenAuthorityResponse,
};

/// The Auth service.
#[derive(Debug, Clone)]
pub(crate) struct AuthService {
    pub(crate) auth: DockerAuth,
}

#[tonic::async_trait]
impl Auth for AuthService {
    async fn credentials(
        &self,
        request: Request<CredentialsRequest>,
    ) -> Result<Response<CredentialsResponse>, Status> {
        let host = request.into_inner().host;
        let c = self.auth.credentials(&host).await.map_err(|e| {
            let mut msg = e.to_string();
            if let Some(h) = e.hint() {
                msg.push_str("; hint: ");
                msg.push_str(&h);
            }
            Status::unavailable(msg)
        })?;
        Ok(Response::new(CredentialsResponse {
            username: c.username,
            secret: c.secret,
        }))
    }

    async fn fetch_token(
        &self,
        _request: Request<FetchTokenRequest>,
    ) -> Result<Response<FetchTokenResponse>, Status> {
        Err(Status::unimplemented(
            "torchkit hands out credentials, not tokens",
        ))
    }

    async fn get_token_authority(
        &self,
        _request: Request<GetTokenAuthorityRequest>,
    ) -> Result<Response<GetTokenAuthorityResponse>, Status> {
        Err(Status::unimplemented("no token authority"))
    }

    async fn verify_token_authority(
        &self,
        _request: Request<VerifyTokenAuthorityRequest>,
    ) -> Result<Response<VerifyTokenAuthorityResponse>, Status> {
        Err(Status::unimplemented("no token authority"))
    }
}
