//! The driver's BuildKit client: the Control API ([`Client`]), the gateway API ([`Bridge`])
//! and a whole build ([`Client::build`]) in BuildKit's in-client gateway mode
//! (`buildkit-protocol.md` §3): `Control.Solve{Definition: nil, Frontend: ""}` registers a
//! bridge under the build ref, and the caller's code drives `LLBBridge` on the same
//! connection with the metadata `buildkit-controlapi-buildid: <ref>` — Ping, ResolveImageConfig,
//! Solve, Return — while `Control.Status` feeds the progress display and `Control.Session`
//! carries the session services the daemon calls back (health, files, secrets, exporters).
//!
//! [`Bridge`] does not depend on a build id: over any tonic [`Channel`] with `None` it is the
//! client a `# syntax=` frontend uses on its stdin/stdout.
//!
//! By concern:
//! - this file: [`Client`] and connecting to a daemon, the Control API's errors;
//! - `control`: the Control API calls: `ListWorkers`, `Info`, `Session` (attaching the
//!   session services) and `Solve` with `Status` (one solve with its progress, session and
//!   Ctrl-C);
//! - `bridge`: the gateway API ([`Bridge`], [`Caps`], [`SolveOptions`]);
//! - `build`: a whole build ([`Client::build`], [`Client::build_frontend`]), its options,
//!   output and errors.

mod bridge;
mod build;
mod control;

pub use bridge::{
    error_status, Bridge, BridgeError, BuildIdInterceptor, Caps, ResolvedImage, SolveOptions,
};
pub use build::{new_id, BuildError, BuildOptions, BuildOutput, GatewayFrontend, Interrupt};
pub use control::{
    open_session, session_metadata, DaemonInfo, SessionFuture, SessionHost, SessionServeError,
};

use std::fmt;

use tonic::transport::Channel;

use super::transport::{Address, ConnectOptions, Dialer, Target, TransportError, MAX_MESSAGE_SIZE};
use crate::error::Hint;
use crate::proto::moby::buildkit::v1::control_client::ControlClient;

/// gRPC metadata naming the build an `LLBBridge` call belongs to (`client/buildid/metadata.go`).
pub const BUILD_ID_METADATA: &str = "buildkit-controlapi-buildid";

/// Result metadata key carrying the image config JSON (`exptypes.ExporterImageConfigKey`).
pub const IMAGE_CONFIG_KEY: &str = "containerimage.config";

/// Exporter response key of the pushed or stored image's manifest digest.
pub const IMAGE_DIGEST_KEY: &str = "containerimage.digest";

/// Gateway caps every in-client build needs: `solve.base` (Solve), `return` (Return),
/// `proto.refarray` (Ref{id, def} results).
pub const REQUIRED_GATEWAY_CAPS: &[&str] = &["solve.base", "return", "proto.refarray"];

/// Errors of the Control API.
#[derive(Debug, thiserror::Error)]
pub enum ClientError {
    /// The daemon could not be reached.
    #[error(transparent)]
    Transport(#[from] TransportError),
    /// A Control call failed.
    #[error("BuildKit {method} failed: {}", .status.message())]
    Rpc {
        /// `Control.ListWorkers`, …
        method: &'static str,
        /// The gRPC status.
        status: tonic::Status,
        /// The daemon address.
        addr: String,
    },
}

impl Hint for ClientError {
    fn hint(&self) -> Option<String> {
        match self {
            ClientError::Transport(t) => t.hint(),
            ClientError::Rpc { status, addr, .. } => rpc_hint(status, addr),
        }
    }
}

fn rpc_hint(status: &tonic::Status, addr: &str) -> Option<String> {
    use tonic::Code;
    match status.code() {
        Code::Unavailable => Some(format!(
            "the connection to {addr} broke; check that the daemon is still running (`scripts/test-env.sh up`)"
        )),
        Code::Unimplemented => Some(format!(
            "the daemon at {addr} is too old for this call; upgrade BuildKit (docs/compatibility.md lists what each version can do)"
        )),
        Code::PermissionDenied | Code::Unauthenticated => {
            Some("check registry credentials and the daemon's entitlements".into())
        }
        _ => None,
    }
}

/// A connected Control API client; cheap to clone (one HTTP/2 connection underneath).
#[derive(Clone)]
pub struct Client {
    channel: Channel,
    control: ControlClient<Channel>,
    addr: Address,
}

impl fmt::Debug for Client {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        f.debug_struct("Client").field("addr", &self.addr).finish()
    }
}

fn control_client(channel: Channel) -> ControlClient<Channel> {
    ControlClient::new(channel)
        .max_decoding_message_size(MAX_MESSAGE_SIZE)
        .max_encoding_message_size(MAX_MESSAGE_SIZE)
}

impl Client {
    /// Connects to the daemon named by `opts.addr`, else `opts.builder`, `BUILDKIT_HOST`,
    /// `BUILDX_BUILDER`, the buildx builder in use, `DOCKER_HOST`, the Docker CLI's current
    /// context, `/var/run/docker.sock` or buildkitd's default socket ([`Target::from_env`]).
    pub async fn connect(opts: &ConnectOptions) -> Result<Client, ClientError> {
        let target = Target::from_env(opts.addr.as_deref(), opts.builder.as_deref())?;
        let opts = if opts.tls.is_enabled() {
            opts.clone()
        } else {
            ConnectOptions {
                tls: target.tls,
                ..opts.clone()
            }
        };
        Client::connect_to(target.addr, &opts).await
    }

    /// Connects to one address. Through a connection helper, one `ListWorkers` call proves
    /// the connection, so that a helper that fails (no container, no `buildctl` in it, ssh
    /// refused) is reported with its command and stderr, not as a lost connection later.
    pub async fn connect_to(addr: Address, opts: &ConnectOptions) -> Result<Client, ClientError> {
        let dialer = Dialer::new(addr.clone(), &opts.tls)?;
        let channel = dialer.connect().await.map_err(ClientError::from);
        let channel = match channel {
            Ok(c) => c,
            Err(e) => match dialer.helper_failure(&e.to_string()).await {
                Some(h) => return Err(h.into()),
                None => return Err(e),
            },
        };
        let client = Client::from_channel(channel, addr);
        if matches!(client.address(), Address::Helper(_)) {
            let check =
                tokio::time::timeout(std::time::Duration::from_secs(60), client.list_workers())
                    .await;
            let during = match check {
                Ok(Ok(_)) => None,
                Ok(Err(e)) => Some(format!("the first call failed: {e}")),
                Err(_) => Some("no answer within 60 s".to_string()),
            };
            if let Some(during) = during {
                if let Some(h) = dialer.helper_failure(&during).await {
                    return Err(h.into());
                }
            }
        }
        Ok(client)
    }

    /// Wraps an existing channel (tests, custom transports).
    pub fn from_channel(channel: Channel, addr: Address) -> Client {
        Client {
            control: control_client(channel.clone()),
            channel,
            addr,
        }
    }

    /// The daemon address.
    pub fn address(&self) -> &Address {
        &self.addr
    }

    /// The underlying channel (shared by Control, LLBBridge and the session).
    pub fn channel(&self) -> Channel {
        self.channel.clone()
    }

    fn rpc_err(&self, method: &'static str, status: tonic::Status) -> ClientError {
        ClientError::Rpc {
            method,
            status,
            addr: self.addr.to_string(),
        }
    }

    /// A [`Bridge`] for the build registered under `build_ref` on this connection.
    pub fn bridge(&self, build_ref: &str) -> Result<Bridge, BridgeError> {
        Bridge::new(self.channel.clone(), Some(build_ref))
    }
}
