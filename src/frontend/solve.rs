//! Pin the base through the bridge ([`plan::pin_base`]), compile, solve, return.

use std::collections::BTreeMap;

use crate::buildkit::client::{error_status, BridgeError, SolveOptions, IMAGE_CONFIG_KEY};
use crate::buildkit::Bridge;
use crate::error::Hint;
use crate::plan::{self, CompileError, CompileOptions, Compiled, PinError};
use crate::resolve::Resolution;
use crate::spec::Spec;

/// The cap of exporters that rewrite timestamps to `SOURCE_DATE_EPOCH` (BuildKit v0.11).
const EXPORTER_SOURCE_DATE_EPOCH: &str = "exporter.sourcedateepoch";

/// A warning about the daemon, on stderr: the terminal in the driver, the frontend
/// vertex's log in the frontend. (Daemons old enough to need one have no
/// `gateway.warnings` to send it as a build warning.)
#[allow(clippy::print_stderr)]
fn warn_stderr(msg: &str) {
    eprintln!("{msg}");
}

/// Why the gateway side failed.
#[derive(Debug, thiserror::Error)]
pub enum SolveError {
    /// Compilation refused the spec.
    #[error(transparent)]
    Compile(#[from] CompileError),
    /// A bridge call failed.
    #[error(transparent)]
    Bridge(#[from] BridgeError),
    /// The base could not be pinned through ResolveImageConfig.
    #[error(transparent)]
    Pin(#[from] PinError<BridgeError>),
}

impl Hint for SolveError {
    fn hint(&self) -> Option<String> {
        match self {
            SolveError::Compile(e) => e.hint(),
            SolveError::Bridge(e) => e.hint(),
            SolveError::Pin(e) => e.hint(),
        }
    }
}

/// Pin the base by digest ([`plan::pin_base`] over ResolveImageConfig), compile with its config, solve the
/// Definition, and `Return` the ref with `containerimage.config`. On failure the error is
/// also returned to the daemon, so the build fails with the message.
pub async fn build_spec(
    bridge: &Bridge,
    spec: &Spec,
    res: &Resolution,
    opts: CompileOptions,
    solve: SolveOptions,
) -> Result<Compiled, SolveError> {
    let out = compile_and_solve(bridge, spec, res, opts, solve).await;
    match out {
        Ok((compiled, r)) => {
            let mut metadata = BTreeMap::new();
            metadata.insert(IMAGE_CONFIG_KEY.to_string(), compiled.image_config.clone());
            bridge.return_result(Some(r), metadata).await?;
            Ok(compiled)
        }
        Err(e) => {
            if !bridge.has_returned() {
                let _ = bridge.return_error(error_status(e.to_string())).await;
            }
            Err(e)
        }
    }
}

async fn compile_and_solve(
    bridge: &Bridge,
    spec: &Spec,
    res: &Resolution,
    mut opts: CompileOptions,
    solve: SolveOptions,
) -> Result<(Compiled, crate::proto::moby::buildkit::v1::frontend::Ref), SolveError> {
    opts.base = plan::pin_base(spec, res, &opts, bridge).await?.into();
    // The LLB says only what this daemon reads (the caps of the Ping every build makes
    // first, in the driver and in the frontend alike).
    if let Some(caps) = bridge.caps() {
        opts.supported = caps.llb_supported();
        if opts.source_date_epoch.is_some() && !caps.has_llb(EXPORTER_SOURCE_DATE_EPOCH) {
            warn_stderr(&format!(
                "warning: SOURCE_DATE_EPOCH sets the image's `created`, but this BuildKit \
                 (older than v0.11, cap `{EXPORTER_SOURCE_DATE_EPOCH}`) keeps the build time \
                 in layer and history timestamps, so the image digest is not reproducible \
                 (docs/compatibility.md)"
            ));
        }
    }
    let compiled = plan::compile(spec, res, &opts)?;
    let r = bridge
        .solve(Some(compiled.definition.clone()), solve)
        .await?;
    Ok((compiled, r))
}
