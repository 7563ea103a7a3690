//! The gateway API: [`Bridge`], the `LLBBridge` client of an in-client build and of the
//! `# syntax=` frontend over stdio, and the daemon's [`Caps`].

use std::collections::BTreeMap;
use std::fmt;
use std::sync::{Arc, OnceLock};

use tonic::metadata::AsciiMetadataValue;
use tonic::service::interceptor::InterceptedService;
use tonic::transport::Channel;

use super::BUILD_ID_METADATA;
use crate::buildkit::output::CacheEntry;
use crate::buildkit::transport::MAX_MESSAGE_SIZE;
use crate::error::Hint;
use crate::proto::google::rpc::Status as RpcStatus;
use crate::proto::moby::buildkit::v1::apicaps::ApiCap;
use crate::proto::moby::buildkit::v1::frontend as gw;
use crate::proto::moby::buildkit::v1::frontend::llb_bridge_client::LlbBridgeClient;
use crate::proto::moby::buildkit::v1::types::WorkerRecord;
use crate::proto::pb;

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
                "upgrade the daemon (Docker 20.10+ / BuildKit v0.8+ are tested, docs/compatibility.md); `{cap}` is checked at Ping"
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

    /// The enabled LLB caps, for [`crate::llb::marshal_for`].
    pub fn llb_supported(&self) -> crate::llb::Supported {
        crate::llb::Supported::only(
            self.llb
                .iter()
                .filter(|(_, c)| c.enabled)
                .map(|(id, _)| id.clone()),
        )
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
    session_id: Option<String>,
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
            session_id: None,
        })
    }

    /// The bridge of a build whose client session is `id` (the driver's own session).
    pub fn with_session(mut self, id: &str) -> Bridge {
        self.session_id = Some(id.to_string());
        self
    }

    /// The client session of the build, when the bridge knows it.
    pub fn session_id(&self) -> Option<&str> {
        self.session_id.as_deref()
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
        let log_name = format!("[internal] load metadata for {reference}");
        self.resolve_image_config_as(reference, platform, log_name)
            .await
    }

    /// [`Bridge::resolve_image_config`] under the progress name `log_name` (BuildKit shows
    /// every lookup as a step, a failed one as an error).
    pub async fn resolve_image_config_as(
        &self,
        reference: &str,
        platform: Option<pb::Platform>,
        log_name: String,
    ) -> Result<ResolvedImage, BridgeError> {
        let r = self
            .c()
            .resolve_image_config(gw::ResolveImageConfigRequest {
                r#ref: reference.to_string(),
                platform,
                resolve_mode: "default".into(),
                log_name,
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

#[cfg(test)]
mod tests {
    use super::*;
    use crate::buildkit::client::REQUIRED_GATEWAY_CAPS;

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
