//! `moby.buildkit.secrets.v1.Secrets/GetSecret`: build secrets by ID, read when the daemon
//! asks (a file, `src=<file>`, or an environment variable, `env=<VAR>`), as buildx's
//! `--secret` does. An unknown ID is NotFound with a message that says how to pass it.
//! Secret values are never logged and never appear in `Debug` output.

use std::collections::BTreeMap;
use std::path::PathBuf;

use tonic::{Request, Response, Status};

use crate::error::Hint;
use crate::proto::moby::buildkit::secrets::v1::secrets_server::Secrets;
use crate::proto::moby::buildkit::secrets::v1::{GetSecretRequest, GetSecretResponse};

/// Where a secret's value comes from.
#[derive(Debug, Clone, PartialEq, Eq)]
pub enum SecretSource {
    /// The contents of a file.
    File(PathBuf),
    /// The value of an environment variable.
    Env(String),
}

/// A `--secret` value that cannot be parsed.
#[derive(Debug, thiserror::Error, PartialEq, Eq)]
pub enum SecretSpecError {
    /// A field without `=`.
    #[error("invalid field {0:?} in secret spec: must be key=value")]
    Field(String),
    /// An unknown key.
    #[error("unexpected key {0:?} in secret spec")]
    Key(String),
    /// `type=` other than `file` or `env`.
    #[error("unsupported secret type {0:?}")]
    Type(String),
    /// No `id=`.
    #[error("secret spec {0:?} has no id")]
    MissingId(String),
}

impl Hint for SecretSpecError {
    fn hint(&self) -> Option<String> {
        Some("use --secret id=<id>,src=<file> or --secret id=<id>,env=<VAR>".into())
    }
}

/// Parses a buildx-style `--secret` value: `id=<id>` plus `src=`/`source=<file>` or
/// `env=<VAR>`, optionally `type=file|env`. With neither, the environment variable named
/// like the ID is used when it is set, else the file named like the ID (buildkit
/// `secretsprovider`).
pub fn parse_secret_spec(spec: &str) -> Result<(String, SecretSource), SecretSpecError> {
    let (mut id, mut src, mut env, mut typ) = (None, None, None, None);
    for field in spec.split(',') {
        let (k, v) = field
            .split_once('=')
            .ok_or_else(|| SecretSpecError::Field(field.to_string()))?;
        match k.to_ascii_lowercase().as_str() {
            "type" => {
                if v != "file" && v != "env" {
                    return Err(SecretSpecError::Type(v.to_string()));
                }
                typ = Some(v.to_string());
            }
            "id" => id = Some(v.to_string()),
            "src" | "source" => src = Some(v.to_string()),
            "env" => env = Some(v.to_string()),
            other => return Err(SecretSpecError::Key(other.to_string())),
        }
    }
    let id = id
        .filter(|i| !i.is_empty())
        .ok_or_else(|| SecretSpecError::MissingId(spec.to_string()))?;
    if typ.as_deref() == Some("env") && env.is_none() {
        env = src.take();
    }
    let source = match (src, env) {
        (Some(f), _) => SecretSource::File(PathBuf::from(f)),
        (None, Some(v)) => SecretSource::Env(v),
        (None, None) if typ.as_deref() == Some("env") || std::env::var_os(&id).is_some() => {
            SecretSource::Env(id.clone())
        }
        (None, None) => SecretSource::File(PathBuf::from(&id)),
    };
    Ok((id, source))
}

/// The Secrets service.
#[derive(Debug, Clone, Default)]
pub(crate) struct SecretsService {
    pub(crate) secrets: BTreeMap<String, SecretSource>,
}

impl SecretsService {
    async fn read(&self, id: &str) -> Result<Vec<u8>, Status> {
        let Some(source) = self.secrets.get(id) else {
            return Err(Status::not_found(format!(
                "secret {id:?} not provided; pass it with --secret id={id},src=<file> or --secret id={id},env=<VAR>"
            )));
        };
        match source {
            SecretSource::File(path) => tokio::fs::read(path).await.map_err(|e| {
                Status::failed_precondition(format!("secret {id:?}: cannot read {}: {e}", path.display()))
            }),
            SecretSource::Env(var) => std::env::var_os(var)
                .map(std::os::unix::ffi::OsStringExt::into_vec)
                .ok_or_else(|| {
                    Status::not_found(format!(
                        "secret {id:?}: environment variable {var} is not set; export it or use --secret id={id},src=<file>"
                    ))
                }),
        }
    }
}

#[tonic::async_trait]
impl Secrets for SecretsService {
    async fn get_secret(
        &self,
        request: Request<GetSecretRequest>,
    ) -> Result<Response<GetSecretResponse>, Status> {
        let id = request.into_inner().id;
        let data = self.read(&id).await?;
        Ok(Response::new(GetSecretResponse { data }))
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn specs() {
        assert_eq!(
            parse_secret_spec("id=tok,src=/run/tok").unwrap(),
            ("tok".into(), SecretSource::File("/run/tok".into()))
        );
        assert_eq!(
            parse_secret_spec("id=tok,env=HF_TOKEN").unwrap(),
            ("tok".into(), SecretSource::Env("HF_TOKEN".into()))
        );
        assert_eq!(
            parse_secret_spec("type=env,id=tok,src=HF").unwrap(),
            ("tok".into(), SecretSource::Env("HF".into()))
        );
        assert_eq!(
            parse_secret_spec("type=env,id=TORCHKIT_NOPE_X"),
            Ok((
                "TORCHKIT_NOPE_X".into(),
                SecretSource::Env("TORCHKIT_NOPE_X".into())
            ))
        );
        assert!(matches!(
            parse_secret_spec("src=x"),
            Err(SecretSpecError::MissingId(_))
        ));
        assert!(matches!(
            parse_secret_spec("id=a,foo=b"),
            Err(SecretSpecError::Key(_))
        ));
        assert!(matches!(
            parse_secret_spec("id=a,type=ssh"),
            Err(SecretSpecError::Type(_))
        ));
    }
}
