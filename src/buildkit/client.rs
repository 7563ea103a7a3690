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

use std::collections::BTreeMap;
use std::fmt;
use std::future::Future;
use std::pin::Pin;
use std::sync::{Arc, OnceLock};
use std::time::Duration;

use tokio::io::{AsyncReadExt, AsyncWriteExt, DuplexStream};
use tokio_stream::wrappers::ReceiverStream;
use tonic::metadata::{AsciiMetadataValue, MetadataMap};
use tonic::service::interceptor::InterceptedService;
use tonic::transport::Channel;

use super::output::{CacheEntry, Destination, Exporter};
use super::progress::{ProgressMode, Renderer};
use super::session::ExportSink;
use super::transport::{Address, ConnectOptions, Dialer, TransportError, MAX_MESSAGE_SIZE};
use crate::error::Hint;
use crate::proto::google::rpc::Status as RpcStatus;
use crate::proto::moby::buildkit::v1 as control;
use crate::proto::moby::buildkit::v1::apicaps::ApiCap;
use crate::proto::moby::buildkit::v1::control_client::ControlClient;
use crate::proto::moby::buildkit::v1::frontend as gw;
use crate::proto::moby::buildkit::v1::frontend::llb_bridge_client::LlbBridgeClient;
use crate::proto::moby::buildkit::v1::types::{BuildkitVersion, WorkerRecord};
use crate::proto::pb;

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
            "the daemon at {addr} is too old for this call; upgrade BuildKit (Docker 26+ is tested)"
        )),
        Code::PermissionDenied | Code::Unauthenticated => {
            Some("check registry credentials and the daemon's entitlements".into())
        }
        _ => None,
    }
}

/// What a daemon reports about itself ([`Client::ping`]).
#[derive(Debug, Clone)]
pub struct DaemonInfo {
    /// `Control.Info` version, `None` when the daemon predates it (BuildKit < v0.11).
    /// Debian builds report `v0.0.0+unknown`: detect features by caps, never by this.
    pub version: Option<BuildkitVersion>,
    /// The workers, with labels and platforms.
    pub workers: Vec<WorkerRecord>,
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
    /// Connects to the daemon named by `opts.addr`, else `BUILDKIT_HOST`, `DOCKER_HOST`,
    /// `/var/run/docker.sock` or buildkitd's default socket ([`Address::from_env`]).
    pub async fn connect(opts: &ConnectOptions) -> Result<Client, ClientError> {
        let (addr, _) = Address::from_env(opts.addr.as_deref())?;
        Client::connect_to(addr, opts).await
    }

    /// Connects to one address.
    pub async fn connect_to(addr: Address, opts: &ConnectOptions) -> Result<Client, ClientError> {
        let dialer = Dialer::new(addr.clone(), &opts.tls)?;
        let channel = dialer.connect().await?;
        Ok(Client::from_channel(channel, addr))
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

    /// `Control.ListWorkers`.
    pub async fn list_workers(&self) -> Result<Vec<WorkerRecord>, ClientError> {
        let resp = self
            .control
            .clone()
            .list_workers(control::ListWorkersRequest::default())
            .await
            .map_err(|s| self.rpc_err("Control.ListWorkers", s))?;
        Ok(resp.into_inner().record)
    }

    /// `Control.Info`; `Ok(None)` when the daemon answers Unimplemented (BuildKit < v0.11,
    /// Docker 20.10–23).
    pub async fn info(&self) -> Result<Option<BuildkitVersion>, ClientError> {
        match self.control.clone().info(control::InfoRequest {}).await {
            Ok(r) => Ok(r.into_inner().buildkit_version),
            Err(s) if s.code() == tonic::Code::Unimplemented => Ok(None),
            Err(s) => Err(self.rpc_err("Control.Info", s)),
        }
    }

    /// Checks the daemon answers: workers and version.
    pub async fn ping(&self) -> Result<DaemonInfo, ClientError> {
        let workers = self.list_workers().await?;
        let version = self.info().await?;
        Ok(DaemonInfo { version, workers })
    }

    /// A [`Bridge`] for the build registered under `build_ref` on this connection.
    pub fn bridge(&self, build_ref: &str) -> Result<Bridge, BridgeError> {
        Bridge::new(self.channel.clone(), Some(build_ref))
    }
}

// ---------------------------------------------------------------------------------------
// Bridge

/// Adds `buildkit-controlapi-buildid` to every call when a build id is set.
#[derive(Clone, Debug)]
pub struct BuildIdInterceptor {
    build_id: Option<AsciiMetadataValue>,
}

impl tonic::service::Interceptor for BuildIdInterceptor {
    fn call(&mut self, mut req: tonic::Request<()>) -> Result<tonic::Request<()>, tonic::Status> {
        if let Some(id) = &self.build_id {
            req.metadata_mut().insert(BUILD_ID_METADATA, id.clone());
        }
        Ok(req)
    }
}

/// Errors of the gateway API.
#[derive(Debug, thiserror::Error)]
pub enum BridgeError {
    /// An `LLBBridge` call failed.
    #[error("LLBBridge.{method} failed: {}", .status.message())]
    Rpc {
        /// `Solve`, `ReadFile`, …
        method: &'static str,
        /// The gRPC status.
        status: tonic::Status,
    },
    /// The daemon lacks (or disabled) a capability this build needs.
    #[error("the BuildKit daemon does not support `{cap}`{}", reason.as_ref().map(|r| format!(" ({r})")).unwrap_or_default())]
    MissingCap {
        /// The cap ID.
        cap: String,
        /// The daemon's `DisabledReasonMsg`, if it listed the cap as disabled.
        reason: Option<String>,
    },
    /// The build id cannot be sent as gRPC metadata.
    #[error("invalid build id `{0}`: it must be printable ASCII")]
    InvalidBuildId(String),
    /// `Solve` answered without a result.
    #[error("LLBBridge.Solve returned no result")]
    NoResult,
}

impl Hint for BridgeError {
    fn hint(&self) -> Option<String> {
        match self {
            BridgeError::MissingCap { cap, .. } => Some(format!(
                "upgrade the daemon (Docker 26+ / BuildKit v0.13+ are tested); `{cap}` is checked at Ping"
            )),
            BridgeError::Rpc { status, .. } if status.code() == tonic::Code::Unimplemented => {
                Some("the daemon's gateway API is too old for this call; upgrade BuildKit".into())
            }
            _ => None,
        }
    }
}

/// The capabilities a daemon reported at [`Bridge::ping`].
#[derive(Debug, Clone, Default)]
pub struct Caps {
    /// Gateway API caps by ID.
    pub frontend: BTreeMap<String, ApiCap>,
    /// LLB caps by ID.
    pub llb: BTreeMap<String, ApiCap>,
    /// Workers as the gateway sees them.
    pub workers: Vec<WorkerRecord>,
}

impl Caps {
    fn check(map: &BTreeMap<String, ApiCap>, cap: &str) -> Result<(), BridgeError> {
        match map.get(cap) {
            Some(c) if c.enabled => Ok(()),
            Some(c) => Err(BridgeError::MissingCap {
                cap: cap.to_string(),
                reason: Some(if c.disabled_reason_msg.is_empty() {
                    "disabled by the daemon".to_string()
                } else {
                    c.disabled_reason_msg.clone()
                }),
            }),
            None => Err(BridgeError::MissingCap {
                cap: cap.to_string(),
                reason: None,
            }),
        }
    }

    /// Whether a gateway cap is listed and enabled.
    pub fn has_frontend(&self, cap: &str) -> bool {
        Caps::check(&self.frontend, cap).is_ok()
    }

    /// Whether an LLB cap is listed and enabled (`mergeop` is listed but disabled on
    /// dockerd's graphdriver store).
    pub fn has_llb(&self, cap: &str) -> bool {
        Caps::check(&self.llb, cap).is_ok()
    }

    /// Fails with [`BridgeError::MissingCap`] naming the first missing gateway cap.
    pub fn require_frontend(&self, caps: &[&str]) -> Result<(), BridgeError> {
        caps.iter().try_for_each(|c| Caps::check(&self.frontend, c))
    }

    /// Fails with [`BridgeError::MissingCap`] naming the first missing LLB cap.
    pub fn require_llb(&self, caps: &[&str]) -> Result<(), BridgeError> {
        caps.iter().try_for_each(|c| Caps::check(&self.llb, c))
    }
}

/// A resolved image config ([`Bridge::resolve_image_config`]).
#[derive(Debug, Clone)]
pub struct ResolvedImage {
    /// The manifest digest (`sha256:…`) to pin the image by.
    pub digest: String,
    /// The OCI image config JSON.
    pub config: Vec<u8>,
    /// The reference after source policies (BuildKit v0.13+), else empty.
    pub reference: String,
}

/// Options of [`Bridge::solve`].
#[derive(Debug, Clone, Default)]
pub struct SolveOptions {
    /// A frontend to run instead of (or on) the definition (`dockerfile.v0`, `gateway.v0`).
    pub frontend: String,
    /// Frontend options.
    pub frontend_opt: BTreeMap<String, String>,
    /// Caches to import (`LLBBridge.Solve` `CacheImports`).
    pub cache_imports: Vec<CacheEntry>,
    /// Solve now instead of lazily (`gateway.solve.evaluate`).
    pub evaluate: bool,
}

/// The `LLBBridge` client. Clone freely; all clones share the cached caps.
///
/// With a build id it talks to an in-client build on the Control connection; without one
/// (a frontend over stdin/stdout) the daemon knows the build from the connection itself.
#[derive(Clone)]
pub struct Bridge {
    client: LlbBridgeClient<InterceptedService<Channel, BuildIdInterceptor>>,
    caps: Arc<OnceLock<Caps>>,
    returned: Arc<std::sync::atomic::AtomicBool>,
}

impl fmt::Debug for Bridge {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        f.debug_struct("Bridge").finish_non_exhaustive()
    }
}

impl Bridge {
    /// A bridge over `channel`; `build_id` is attached to every call when set.
    pub fn new(channel: Channel, build_id: Option<&str>) -> Result<Bridge, BridgeError> {
        let build_id = build_id
            .map(|id| {
                AsciiMetadataValue::try_from(id)
                    .map_err(|_| BridgeError::InvalidBuildId(id.to_string()))
            })
            .transpose()?;
        let client = LlbBridgeClient::with_interceptor(channel, BuildIdInterceptor { build_id })
            .max_decoding_message_size(MAX_MESSAGE_SIZE)
            .max_encoding_message_size(MAX_MESSAGE_SIZE);
        Ok(Bridge {
            client,
            caps: Arc::new(OnceLock::new()),
            returned: Arc::new(std::sync::atomic::AtomicBool::new(false)),
        })
    }

    fn c(&self) -> LlbBridgeClient<InterceptedService<Channel, BuildIdInterceptor>> {
        self.client.clone()
    }

    fn err(method: &'static str) -> impl FnOnce(tonic::Status) -> BridgeError {
        move |status| BridgeError::Rpc { method, status }
    }

    /// The raw generated client, for calls this type does not wrap.
    pub fn raw(&self) -> LlbBridgeClient<InterceptedService<Channel, BuildIdInterceptor>> {
        self.c()
    }

    /// `Ping`: the daemon's caps and workers (cached for [`Bridge::caps`]).
    pub async fn ping(&self) -> Result<Caps, BridgeError> {
        let pong = self
            .c()
            .ping(gw::PingRequest {})
            .await
            .map_err(Self::err("Ping"))?
            .into_inner();
        let index = |v: Vec<ApiCap>| v.into_iter().map(|c| (c.id.clone(), c)).collect();
        let caps = Caps {
            frontend: index(pong.frontend_api_caps),
            llb: index(pong.llb_caps),
            workers: pong.workers,
        };
        let _ = self.caps.set(caps.clone());
        Ok(caps)
    }

    /// The caps from the first [`Bridge::ping`], if any.
    pub fn caps(&self) -> Option<&Caps> {
        self.caps.get()
    }

    /// `ResolveImageConfig`: digest and config JSON of `reference` for `platform`
    /// (resolve mode `default`).
    pub async fn resolve_image_config(
        &self,
        reference: &str,
        platform: Option<pb::Platform>,
    ) -> Result<ResolvedImage, BridgeError> {
        let r = self
            .c()
            .resolve_image_config(gw::ResolveImageConfigRequest {
                r#ref: reference.to_string(),
                platform,
                resolve_mode: "default".into(),
                log_name: format!("[internal] load metadata for {reference}"),
                ..Default::default()
            })
            .await
            .map_err(Self::err("ResolveImageConfig"))?
            .into_inner();
        Ok(ResolvedImage {
            digest: r.digest,
            config: r.config,
            reference: r.r#ref,
        })
    }

    /// `Solve`: solves `definition` (lazily unless `evaluate`) and returns its ref.
    pub async fn solve(
        &self,
        definition: Option<pb::Definition>,
        opts: SolveOptions,
    ) -> Result<gw::Ref, BridgeError> {
        let resp = self
            .c()
            .solve(gw::SolveRequest {
                definition,
                frontend: opts.frontend,
                frontend_opt: opts.frontend_opt,
                allow_result_return: true,
                allow_result_array_ref: true,
                cache_imports: opts
                    .cache_imports
                    .iter()
                    .map(CacheEntry::to_gateway)
                    .collect(),
                evaluate: opts.evaluate,
                ..Default::default()
            })
            .await
            .map_err(Self::err("Solve"))?
            .into_inner();
        use gw::result::Result as R;
        match resp.result.and_then(|r| r.result) {
            Some(R::Ref(r)) => Ok(r),
            Some(R::RefDeprecated(id)) => Ok(gw::Ref { id, def: None }),
            Some(R::Refs(_)) | Some(R::RefsDeprecated(_)) => Err(BridgeError::Rpc {
                method: "Solve",
                status: tonic::Status::unimplemented(
                    "multi-platform ref maps are not supported by torchkit",
                ),
            }),
            None if !resp.r#ref.is_empty() => Ok(gw::Ref {
                id: resp.r#ref,
                def: None,
            }),
            None => Err(BridgeError::NoResult),
        }
    }

    /// `ReadFile`: the whole file, or `range` = (offset, length).
    pub async fn read_file(
        &self,
        r: &gw::Ref,
        path: &str,
        range: Option<(i64, i64)>,
    ) -> Result<Vec<u8>, BridgeError> {
        Ok(self
            .c()
            .read_file(gw::ReadFileRequest {
                r#ref: r.id.clone(),
                file_path: path.to_string(),
                range: range.map(|(offset, length)| gw::FileRange { offset, length }),
            })
            .await
            .map_err(Self::err("ReadFile"))?
            .into_inner()
            .data)
    }

    /// `ReadDir`: entries of `dir` matching `include_pattern` (empty: all).
    pub async fn read_dir(
        &self,
        r: &gw::Ref,
        dir: &str,
        include_pattern: &str,
    ) -> Result<Vec<crate::proto::fsutil::types::Stat>, BridgeError> {
        Ok(self
            .c()
            .read_dir(gw::ReadDirRequest {
                r#ref: r.id.clone(),
                dir_path: dir.to_string(),
                include_pattern: include_pattern.to_string(),
            })
            .await
            .map_err(Self::err("ReadDir"))?
            .into_inner()
            .entries)
    }

    /// `StatFile`.
    pub async fn stat_file(
        &self,
        r: &gw::Ref,
        path: &str,
    ) -> Result<Option<crate::proto::fsutil::types::Stat>, BridgeError> {
        Ok(self
            .c()
            .stat_file(gw::StatFileRequest {
                r#ref: r.id.clone(),
                path: path.to_string(),
            })
            .await
            .map_err(Self::err("StatFile"))?
            .into_inner()
            .stat)
    }

    /// `Inputs`: the frontend inputs (named contexts passed as definitions).
    pub async fn inputs(&self) -> Result<BTreeMap<String, pb::Definition>, BridgeError> {
        Ok(self
            .c()
            .inputs(gw::InputsRequest {})
            .await
            .map_err(Self::err("Inputs"))?
            .into_inner()
            .definitions)
    }

    /// `Return` with a result: `r` (none for an empty result) and metadata such as
    /// [`IMAGE_CONFIG_KEY`] → image config JSON.
    pub async fn return_result(
        &self,
        r: Option<gw::Ref>,
        metadata: BTreeMap<String, Vec<u8>>,
    ) -> Result<(), BridgeError> {
        let result = gw::Result {
            result: Some(gw::result::Result::Ref(r.unwrap_or_default())),
            metadata,
        };
        self.c()
            .r#return(gw::ReturnRequest {
                result: Some(result),
                error: None,
            })
            .await
            .map_err(Self::err("Return"))?;
        self.returned
            .store(true, std::sync::atomic::Ordering::SeqCst);
        Ok(())
    }

    /// `Return` with an error: the build fails with `status`.
    pub async fn return_error(&self, status: RpcStatus) -> Result<(), BridgeError> {
        self.c()
            .r#return(gw::ReturnRequest {
                result: None,
                error: Some(status),
            })
            .await
            .map_err(Self::err("Return"))?;
        self.returned
            .store(true, std::sync::atomic::Ordering::SeqCst);
        Ok(())
    }

    /// Whether `Return` has been called through this bridge (or a clone).
    pub fn has_returned(&self) -> bool {
        self.returned.load(std::sync::atomic::Ordering::SeqCst)
    }

    /// `Warn` (BuildKit v0.10+, cap `gateway.warnings`): a warning on vertex `digest`
    /// (a Definition's op digest), shown in progress output.
    pub async fn warn(
        &self,
        digest: &str,
        short: &str,
        detail: &[String],
        url: Option<&str>,
    ) -> Result<(), BridgeError> {
        self.c()
            .warn(gw::WarnRequest {
                digest: digest.to_string(),
                level: 1,
                short: short.as_bytes().to_vec(),
                detail: detail.iter().map(|d| d.as_bytes().to_vec()).collect(),
                url: url.unwrap_or_default().to_string(),
                ..Default::default()
            })
            .await
            .map_err(Self::err("Warn"))?;
        Ok(())
    }
}

/// A `google.rpc.Status` with code Unknown (2) and `message`, for [`Bridge::return_error`].
pub fn error_status(message: impl Into<String>) -> RpcStatus {
    RpcStatus {
        code: tonic::Code::Unknown as i32,
        message: message.into(),
        details: Vec::new(),
    }
}

// ---------------------------------------------------------------------------------------
// Session attaching

/// The session services a build offers the daemon. Implemented by
/// `crate::buildkit::session::Attachables`; this seam keeps the client independent of how
/// the services are built.
pub trait SessionHost: Send + 'static {
    /// The gRPC method paths to advertise (`/moby.filesync.v1.FileSync/DiffCopy`, …). The
    /// daemon calls only these.
    fn methods(&self) -> Vec<String>;

    /// Serves the session's gRPC server on `io` (the daemon is the HTTP/2 client) until
    /// the connection ends.
    fn serve(self: Box<Self>, io: super::transport::BoxedStream) -> SessionFuture;
}

/// Boxed error of a session server.
pub type SessionServeError = Box<dyn std::error::Error + Send + Sync>;

/// What [`SessionHost::serve`] returns.
pub type SessionFuture = Pin<Box<dyn Future<Output = Result<(), SessionServeError>> + Send>>;

impl SessionHost for super::session::Attachables {
    fn methods(&self) -> Vec<String> {
        super::session::Attachables::methods(self)
    }

    fn serve(self: Box<Self>, io: super::transport::BoxedStream) -> SessionFuture {
        Box::pin(async move {
            (*self)
                .serve(io)
                .await
                .map_err(|e| Box::new(e) as SessionServeError)
        })
    }
}

/// The buffer of the in-memory pipe between the session server and the Control stream.
const SESSION_PIPE_BUFFER: usize = 1 << 20;
/// The largest `BytesMessage` the pump sends (grpchijack uses 32 KiB reads as well).
const SESSION_CHUNK: usize = 32 << 10;

/// Opens `Control.Session` with the `X-Docker-Expose-Session-*` metadata and returns the
/// local end of a byte pipe whose other end is the daemon: what is written to it travels
/// as `BytesMessage`s to the daemon, and what the daemon sends can be read from it.
///
/// Two pump tasks do the copying; they end when either side closes. The returned handle
/// finishes when the session stream ends.
pub async fn open_session(
    channel: Channel,
    session_id: &str,
    shared_key: &str,
    methods: &[String],
) -> Result<
    (
        DuplexStream,
        tokio::task::JoinHandle<Result<(), tonic::Status>>,
    ),
    tonic::Status,
> {
    let (local, pump_end) = tokio::io::duplex(SESSION_PIPE_BUFFER);
    let (mut from_local, mut to_local) = tokio::io::split(pump_end);
    let (tx, rx) = tokio::sync::mpsc::channel::<control::BytesMessage>(32);

    // local → daemon
    tokio::spawn(async move {
        let mut buf = vec![0u8; SESSION_CHUNK];
        loop {
            match from_local.read(&mut buf).await {
                Ok(0) | Err(_) => break,
                Ok(n) => {
                    if tx
                        .send(control::BytesMessage {
                            data: buf[..n].to_vec(),
                        })
                        .await
                        .is_err()
                    {
                        break;
                    }
                }
            }
        }
    });

    let mut req = tonic::Request::new(ReceiverStream::new(rx));
    session_metadata(req.metadata_mut(), session_id, shared_key, methods)?;
    let mut inbound = control_client(channel).session(req).await?.into_inner();

    // daemon → local
    let handle = tokio::spawn(async move {
        let res = loop {
            match inbound.message().await {
                Ok(Some(m)) => {
                    if to_local.write_all(&m.data).await.is_err() {
                        break Ok(());
                    }
                }
                Ok(None) => break Ok(()),
                Err(s) => break Err(s),
            }
        };
        let _ = to_local.shutdown().await;
        res
    });
    Ok((local, handle))
}

/// Fills the session-attach metadata (`session/grpchijack/dial.go`).
pub fn session_metadata(
    md: &mut MetadataMap,
    session_id: &str,
    shared_key: &str,
    methods: &[String],
) -> Result<(), tonic::Status> {
    let v = |s: &str| {
        AsciiMetadataValue::try_from(s)
            .map_err(|_| tonic::Status::invalid_argument(format!("non-ASCII session value `{s}`")))
    };
    md.insert("x-docker-expose-session-uuid", v(session_id)?);
    md.insert("x-docker-expose-session-name", v("torchkit")?);
    md.insert("x-docker-expose-session-sharedkey", v(shared_key)?);
    for m in methods {
        md.append("x-docker-expose-session-grpc-method", v(m)?);
    }
    Ok(())
}

// ---------------------------------------------------------------------------------------
// Builds

/// A frontend image to run instead of in-client code (`gateway.v0`).
#[derive(Debug, Clone)]
pub struct GatewayFrontend {
    /// The frontend image (`source`).
    pub source: String,
    /// Further frontend options (`filename`, `build-arg:*`, …).
    pub attrs: BTreeMap<String, String>,
}

/// Everything about a build except the code that defines it.
pub struct BuildOptions {
    /// Where results go (`--output`, `--tag`).
    pub exporters: Vec<Exporter>,
    /// `--import-cache`.
    pub cache_imports: Vec<CacheEntry>,
    /// `--export-cache`.
    pub cache_exports: Vec<CacheEntry>,
    /// `network.host`, `security.insecure`.
    pub entitlements: Vec<String>,
    /// Frontend attributes for the solve request.
    pub frontend_attrs: BTreeMap<String, String>,
    /// Session services (local dirs, exporter sinks, secrets, auth). Without them only a
    /// health-less session is impossible, so no session is opened at all.
    pub session: Option<Box<dyn SessionHost>>,
    /// Key for incremental context transfer (`name:hint:sharedKey`); keep it stable per
    /// machine and project.
    pub shared_key: String,
    /// `--progress`.
    pub progress: ProgressMode,
    /// Cancel the build on Ctrl-C (default true).
    pub cancel_on_ctrl_c: bool,
    /// Client-side export destinations, committed after a successful solve (see
    /// [`BuildOptions::attach`]).
    pub export_sinks: Vec<ExportSink>,
}

impl Default for BuildOptions {
    fn default() -> Self {
        BuildOptions {
            exporters: Vec::new(),
            cache_imports: Vec::new(),
            cache_exports: Vec::new(),
            entitlements: Vec::new(),
            frontend_attrs: BTreeMap::new(),
            session: None,
            shared_key: "torchkit".into(),
            progress: ProgressMode::Auto,
            cancel_on_ctrl_c: true,
            export_sinks: Vec::new(),
        }
    }
}

impl BuildOptions {
    /// Attaches the session services and wires the exporters to them: exporters with
    /// client output (`local`, `tar`, `oci`, `docker`) move to the front of
    /// [`BuildOptions::exporters`], in their given order, so that exporter index *n* is the
    /// *n*-th [`ExportSink`] registered with `attachables` (the daemon names the exporter by
    /// index in `buildkit-attachable-exporter-id`). The sinks are committed when the build
    /// succeeds and dropped (temporary output removed) when it fails.
    pub fn attach(
        &mut self,
        mut attachables: super::session::Attachables,
    ) -> Result<(), super::session::ExportError> {
        let (mut client_side, daemon_side): (Vec<_>, Vec<_>) = std::mem::take(&mut self.exporters)
            .into_iter()
            .partition(Exporter::needs_file_send);
        for e in &client_side {
            let dest = match &e.dest {
                Destination::Dir(p) | Destination::File(p) => p.clone(),
                Destination::Stdout => std::path::PathBuf::from("-"),
                Destination::None => unreachable!("partitioned by needs_file_send"),
            };
            let sink = ExportSink::for_exporter(&e.kind, dest)?;
            attachables = attachables.with_exporter(sink.clone());
            self.export_sinks.push(sink);
        }
        client_side.extend(daemon_side);
        self.exporters = client_side;
        self.session = Some(Box::new(attachables));
        Ok(())
    }
}

impl fmt::Debug for BuildOptions {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        f.debug_struct("BuildOptions")
            .field("exporters", &self.exporters)
            .field("cache_imports", &self.cache_imports)
            .field("cache_exports", &self.cache_exports)
            .field("entitlements", &self.entitlements)
            .field("frontend_attrs", &self.frontend_attrs)
            .field("session", &self.session.as_ref().map(|s| s.methods()))
            .field("progress", &self.progress)
            .finish()
    }
}

/// A finished build.
#[derive(Debug, Clone)]
pub struct BuildOutput<T> {
    /// The build ref (also the history record name).
    pub build_ref: String,
    /// The exporters' response: `containerimage.digest`, `image.name`, …
    pub exporter_response: BTreeMap<String, String>,
    /// What the build function returned.
    pub value: T,
}

/// Why a build failed.
#[derive(Debug, thiserror::Error)]
pub enum BuildError {
    /// Setting up the build failed.
    #[error(transparent)]
    Client(#[from] ClientError),
    /// A gateway call failed.
    #[error(transparent)]
    Bridge(#[from] BridgeError),
    /// The build function failed.
    #[error("{0}")]
    Function(Box<dyn std::error::Error + Send + Sync>),
    /// The daemon failed the solve.
    #[error("build failed: {message}")]
    Solve {
        /// The daemon's message (`process "…" did not complete successfully: exit code: 1`).
        message: String,
        /// The gRPC code.
        code: tonic::Code,
    },
    /// The session could not be attached or its services failed.
    #[error("the build session failed: {0}")]
    Session(String),
    /// The build succeeded but its output could not be moved into place.
    #[error("writing the build output failed: {0}")]
    Export(#[from] super::session::ExportError),
    /// The build function finished without calling `Return`.
    #[error("the build function finished without calling Bridge::return_result")]
    NoReturn,
    /// Ctrl-C.
    #[error("build cancelled (Ctrl-C)")]
    Cancelled,
    /// A vertex failed: its name as progress shows it (a step title such as
    /// `[torchkit 3/6] pip: pip install …`), and the error of the build.
    #[error("`{step}` failed: {error}")]
    Step {
        /// The failing vertex's name.
        step: String,
        /// What the solve or the build function reported.
        error: Box<BuildError>,
    },
}

impl Hint for BuildError {
    fn hint(&self) -> Option<String> {
        match self {
            BuildError::Client(e) => e.hint(),
            BuildError::Bridge(e) => e.hint(),
            BuildError::Solve { message, .. } if message.contains("could not be found") && message.contains("exporter") => Some(
                "this daemon uses the classic image store: only `moby`, `local` and `tar` exporters work; turn on the containerd image store or use `--output type=tar,dest=…`".into(),
            ),
            BuildError::Solve { message, .. } if message.contains("no active session") || message.contains("session") && message.contains("not found") => Some(
                "the export needs a session service (FileSend/FileSync) that was not attached".into(),
            ),
            BuildError::Solve { .. } => {
                Some("see the progress output above for the failing step and its logs".into())
            }
            BuildError::Cancelled => Some("the daemon was told to stop the build".into()),
            BuildError::Export(e) => e.hint(),
            BuildError::Step { error, .. } => error.hint(),
            _ => None,
        }
    }
}

impl BuildError {
    /// The process exit code the CLI should use (130 for Ctrl-C, like a shell).
    pub fn exit_code(&self) -> i32 {
        match self {
            BuildError::Cancelled => 130,
            BuildError::Step { error, .. } => error.exit_code(),
            _ => 1,
        }
    }
}

/// A random identifier like BuildKit's `identity.NewID` (25 base-36 characters).
pub fn new_id() -> String {
    let mut b = [0u8; 16];
    getrandom::fill(&mut b).expect("the OS random source failed");
    let mut n = u128::from_le_bytes(b);
    const ALPHA: &[u8; 36] = b"0123456789abcdefghijklmnopqrstuvwxyz";
    let mut s = Vec::with_capacity(25);
    for _ in 0..25 {
        s.push(ALPHA[(n % 36) as usize]);
        n /= 36;
    }
    String::from_utf8(s).expect("ascii")
}

type SideFuture<T> = Pin<Box<dyn Future<Output = Result<T, BuildError>> + Send>>;

impl Client {
    /// Runs a build in in-client gateway mode: `run` gets a [`Bridge`] for this build and
    /// must end by calling [`Bridge::return_result`] (or `return_error`). Progress goes to
    /// stderr; Ctrl-C cancels the solve on the daemon.
    ///
    /// The daemon's gateway caps [`REQUIRED_GATEWAY_CAPS`] are checked with a Ping before
    /// `run` starts (the caps stay available through [`Bridge::caps`]).
    pub async fn build<F, Fut, T, E>(
        &self,
        opts: BuildOptions,
        run: F,
    ) -> Result<BuildOutput<T>, BuildError>
    where
        F: FnOnce(Bridge) -> Fut + Send + 'static,
        Fut: Future<Output = Result<T, E>> + Send + 'static,
        T: Send + 'static,
        E: Into<Box<dyn std::error::Error + Send + Sync>> + Send + 'static,
    {
        let build_ref = new_id();
        let bridge = Bridge::new(self.channel.clone(), Some(&build_ref))?;
        let side: SideFuture<T> = Box::pin(async move {
            let caps = bridge.ping().await?;
            if let Err(e) = caps.require_frontend(REQUIRED_GATEWAY_CAPS) {
                let _ = bridge.return_error(error_status(e.to_string())).await;
                return Err(e.into());
            }
            match run(bridge.clone()).await {
                Ok(v) if bridge.has_returned() => Ok(v),
                Ok(_) => {
                    let _ = bridge
                        .return_error(error_status(BuildError::NoReturn.to_string()))
                        .await;
                    Err(BuildError::NoReturn)
                }
                Err(e) => {
                    let e: Box<dyn std::error::Error + Send + Sync> = e.into();
                    if !bridge.has_returned() {
                        let _ = bridge.return_error(error_status(e.to_string())).await;
                    }
                    Err(BuildError::Function(e))
                }
            }
        });
        let out = self.solve_with(build_ref, opts, "", Some(side)).await?;
        Ok(BuildOutput {
            build_ref: out.build_ref,
            exporter_response: out.exporter_response,
            value: out.value.ok_or(BuildError::NoReturn)?,
        })
    }

    /// Runs a build whose definition comes from a frontend image (`gateway.v0` with
    /// `source=<image>`), e.g. torchkit's own `# syntax=` image.
    pub async fn build_frontend(
        &self,
        mut opts: BuildOptions,
        frontend: GatewayFrontend,
    ) -> Result<BuildOutput<()>, BuildError> {
        opts.frontend_attrs.extend(frontend.attrs);
        opts.frontend_attrs
            .insert("source".into(), frontend.source.clone());
        self.solve_with(new_id(), opts, "gateway.v0", None::<SideFuture<()>>)
            .await
            .map(|o| BuildOutput {
                build_ref: o.build_ref,
                exporter_response: o.exporter_response,
                value: (),
            })
    }

    async fn solve_with<T: Send + 'static>(
        &self,
        build_ref: String,
        mut opts: BuildOptions,
        frontend: &str,
        side: Option<SideFuture<T>>,
    ) -> Result<BuildOutput<Option<T>>, BuildError> {
        let session_id = new_id();
        let mut renderer = Renderer::stderr(opts.progress);

        // Session: attach first so the daemon finds it when the solve needs it.
        let mut session_tasks = Vec::new();
        let mut session_failed: Option<tokio::sync::oneshot::Receiver<String>> = None;
        let session_used = if let Some(host) = opts.session.take() {
            let methods = host.methods();
            let (fail_tx, fail_rx) = tokio::sync::oneshot::channel();
            session_failed = Some(fail_rx);
            // On dockerd the session gets its own connection (`/session`), as buildx's
            // docker driver does; elsewhere, or if that is refused, it is tunnelled through
            // `Control.Session`.
            let hijacked = match self.address() {
                Address::Docker(_) => super::transport::docker_session(
                    self.address(),
                    &session_id,
                    &opts.shared_key,
                    &methods,
                )
                .await
                .ok(),
                _ => None,
            };
            if let Some(io) = hijacked {
                session_tasks.push(tokio::spawn(async move {
                    if let Err(e) = host.serve(io).await {
                        let _ = fail_tx.send(e.to_string());
                    }
                }));
            } else {
                let (io, pump) =
                    open_session(self.channel(), &session_id, &opts.shared_key, &methods)
                        .await
                        .map_err(|s| BuildError::Session(s.message().to_string()))?;
                session_tasks.push(tokio::spawn(async move {
                    if let Err(e) = host.serve(Box::pin(io)).await {
                        let _ = fail_tx.send(e.to_string());
                    }
                }));
                session_tasks.push(tokio::spawn(async move {
                    let _ = pump.await;
                }));
            }
            true
        } else {
            false
        };

        let first = opts.exporters.first();
        let req = control::SolveRequest {
            r#ref: build_ref.clone(),
            definition: None,
            exporter_deprecated: first.map(|e| e.kind.clone()).unwrap_or_default(),
            exporter_attrs_deprecated: first.map(|e| e.attrs.clone()).unwrap_or_default(),
            session: if session_used {
                session_id.clone()
            } else {
                String::new()
            },
            frontend: frontend.to_string(),
            frontend_attrs: opts.frontend_attrs.clone(),
            cache: Some(control::CacheOptions {
                exports: opts
                    .cache_exports
                    .iter()
                    .map(CacheEntry::to_proto)
                    .collect(),
                imports: opts
                    .cache_imports
                    .iter()
                    .map(CacheEntry::to_proto)
                    .collect(),
            }),
            entitlements: opts.entitlements.clone(),
            exporters: opts.exporters.iter().map(Exporter::to_proto).collect(),
            ..Default::default()
        };

        // Status → progress, concurrently.
        let (status_tx, mut status_rx) = tokio::sync::mpsc::unbounded_channel();
        let mut status_client = self.control.clone();
        let status_ref = build_ref.clone();
        let status_task = tokio::spawn(async move {
            if let Ok(resp) = status_client
                .status(control::StatusRequest { r#ref: status_ref })
                .await
            {
                let mut s = resp.into_inner();
                while let Ok(Some(m)) = s.message().await {
                    if status_tx.send(m).is_err() {
                        break;
                    }
                }
            }
        });

        let mut control = self.control.clone();
        let solve = control.solve(req);
        tokio::pin!(solve);
        let mut side = side;
        let mut side_result: Option<Result<T, BuildError>> = None;
        let cancel_on_ctrl_c = opts.cancel_on_ctrl_c;
        let ctrl_c = async move {
            if cancel_on_ctrl_c {
                if tokio::signal::ctrl_c().await.is_err() {
                    std::future::pending::<()>().await;
                }
            } else {
                std::future::pending::<()>().await;
            }
        };
        tokio::pin!(ctrl_c);

        let solve_result = loop {
            tokio::select! {
                biased;
                _ = &mut ctrl_c => {
                    // Dropping the call resets the HTTP/2 stream; the daemon cancels the job.
                    drain_status(&mut status_rx, &mut renderer, Duration::from_millis(300)).await;
                    renderer.note("build cancelled (Ctrl-C); the daemon stops the solve");
                    renderer.finish();
                    status_task.abort();
                    abort_all(&session_tasks);
                    return Err(BuildError::Cancelled);
                }
                Some(msg) = status_rx.recv() => renderer.handle(&msg),
                r = async { side.as_mut().expect("guarded").await }, if side.is_some() && side_result.is_none() => {
                    side_result = Some(r);
                    side = None;
                }
                msg = async { session_failed.as_mut().expect("guarded").await }, if session_failed.is_some() => {
                    session_failed = None;
                    if let Ok(msg) = msg {
                        renderer.note(&format!("session error: {msg}"));
                    }
                }
                r = &mut solve => break r,
            }
        };

        // Let the progress stream finish (it ends with the job).
        drain_status(&mut status_rx, &mut renderer, Duration::from_secs(3)).await;
        renderer.finish();
        status_task.abort();

        let solved = match solve_result {
            Ok(resp) => resp.into_inner(),
            Err(status) => {
                abort_all(&session_tasks);
                // The function's own error explains more than "failed to solve".
                let err = match side_result {
                    Some(Err(e)) => e,
                    _ => BuildError::Solve {
                        message: status.message().to_string(),
                        code: status.code(),
                    },
                };
                // Name the vertex that failed, as progress showed it.
                return Err(match failed_vertex(renderer.state()) {
                    Some(step) => BuildError::Step {
                        step,
                        error: Box::new(err),
                    },
                    None => err,
                });
            }
        };
        // The solve only finishes after Return, so the function is normally done; wait
        // briefly for it otherwise.
        let value = match (side_result, side) {
            (Some(r), _) => Some(r?),
            (None, Some(fut)) => Some(
                tokio::time::timeout(Duration::from_secs(30), fut)
                    .await
                    .map_err(|_| {
                        BuildError::Session(
                            "the build function did not finish after the solve".into(),
                        )
                    })??,
            ),
            (None, None) => None,
        };
        abort_all(&session_tasks);
        for sink in std::mem::take(&mut opts.export_sinks) {
            sink.commit()?;
        }
        Ok(BuildOutput {
            build_ref,
            exporter_response: solved.exporter_response,
            value,
        })
    }
}

/// The first failed vertex (by `#N`) whose error is its own, not the cancellation that
/// follows another vertex's failure.
fn failed_vertex(state: &super::progress::ProgressState) -> Option<String> {
    state
        .failed()
        .into_iter()
        .filter(|(_, name, error)| !name.is_empty() && !error.contains("context canceled"))
        .min_by_key(|(index, _, _)| index.unwrap_or(usize::MAX))
        .map(|(_, name, _)| name)
}

fn abort_all(tasks: &[tokio::task::JoinHandle<()>]) {
    for t in tasks {
        t.abort();
    }
}

async fn drain_status(
    rx: &mut tokio::sync::mpsc::UnboundedReceiver<control::StatusResponse>,
    renderer: &mut Renderer,
    limit: Duration,
) {
    let deadline = tokio::time::Instant::now() + limit;
    while let Ok(Some(m)) = tokio::time::timeout_at(deadline, rx.recv()).await {
        renderer.handle(&m);
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn ids_look_like_buildkit_ids() {
        let a = new_id();
        let b = new_id();
        assert_eq!(a.len(), 25);
        assert_ne!(a, b);
        assert!(a
            .bytes()
            .all(|c| c.is_ascii_digit() || c.is_ascii_lowercase()));
    }

    #[test]
    fn session_metadata_lists_every_method() {
        let mut md = MetadataMap::new();
        session_metadata(
            &mut md,
            "sid",
            "key",
            &[
                "/grpc.health.v1.Health/Check".to_string(),
                "/moby.filesync.v1.FileSend/DiffCopy".to_string(),
            ],
        )
        .unwrap();
        assert_eq!(md.get("x-docker-expose-session-uuid").unwrap(), "sid");
        assert_eq!(md.get("x-docker-expose-session-sharedkey").unwrap(), "key");
        let methods: Vec<_> = md
            .get_all("x-docker-expose-session-grpc-method")
            .iter()
            .map(|v| v.to_str().unwrap().to_string())
            .collect();
        assert_eq!(methods.len(), 2);
    }

    #[test]
    fn caps_name_the_missing_one() {
        let mut caps = Caps::default();
        caps.frontend.insert(
            "solve.base".into(),
            ApiCap {
                id: "solve.base".into(),
                enabled: true,
                ..Default::default()
            },
        );
        caps.llb.insert(
            "mergeop".into(),
            ApiCap {
                id: "mergeop".into(),
                enabled: false,
                disabled_reason_msg: "not supported by graphdriver".into(),
                ..Default::default()
            },
        );
        let err = caps.require_frontend(REQUIRED_GATEWAY_CAPS).unwrap_err();
        assert!(err.to_string().contains("`return`"), "{err}");
        let err = caps.require_llb(&["mergeop"]).unwrap_err();
        assert!(err.to_string().contains("graphdriver"), "{err}");
        assert!(caps.has_frontend("solve.base"));
        assert!(!caps.has_llb("mergeop"));
        assert!(err.hint().is_some());
    }

    #[test]
    fn the_failing_step_is_the_first_error_that_is_not_a_cancellation() {
        use prost_types::Timestamp;
        let v = |digest: &str, name: &str, error: &str| control::Vertex {
            digest: digest.into(),
            name: name.into(),
            started: Some(Timestamp::default()),
            completed: Some(Timestamp::default()),
            error: error.into(),
            ..Default::default()
        };
        let mut state = super::super::progress::ProgressState::new();
        state.apply(&control::StatusResponse {
            vertexes: vec![
                v("sha256:a", "[torchkit 1/3] base", ""),
                v(
                    "sha256:b",
                    "[torchkit 2/3] pip: pip install nope",
                    "exit code: 1",
                ),
                v("sha256:c", "[torchkit] context", "context canceled"),
            ],
            ..Default::default()
        });
        assert_eq!(
            failed_vertex(&state).as_deref(),
            Some("[torchkit 2/3] pip: pip install nope")
        );
        let e = BuildError::Step {
            step: "s".into(),
            error: Box::new(BuildError::Cancelled),
        };
        assert_eq!(e.exit_code(), 130);
    }

    #[tokio::test]
    async fn bridge_rejects_non_ascii_build_ids() {
        let ch = tonic::transport::Endpoint::from_static("http://localhost").connect_lazy();
        assert!(Bridge::new(ch.clone(), Some("ok-id")).is_ok());
        assert!(Bridge::new(ch.clone(), None).is_ok());
        assert!(matches!(
            Bridge::new(ch, Some("bad\nid")),
            Err(BridgeError::InvalidBuildId(_))
        ));
    }
}
