//! Resolve the base through the bridge, compile, solve, return.

use std::collections::BTreeMap;

use crate::buildkit::client::{error_status, SolveOptions, IMAGE_CONFIG_KEY};
use crate::buildkit::Bridge;
use crate::error::Hint;
use crate::llb::Platform;
use crate::plan::{self, BaseMeta, CompileError, CompileOptions, Compiled};
use crate::resolve::Resolution;
use crate::spec::Spec;

/// Why the gateway side failed.
#[derive(Debug, thiserror::Error)]
pub enum SolveError {
    /// Compilation refused the spec.
    #[error(transparent)]
    Compile(#[from] CompileError),
    /// A bridge call failed.
    #[error(transparent)]
    Bridge(#[from] crate::buildkit::client::BridgeError),
    /// The base image config is not JSON.
    #[error("the config of base image {image} is not valid JSON: {error}")]
    BaseConfig {
        /// The base.
        image: String,
        /// The parse error.
        error: String,
    },
}

impl Hint for SolveError {
    fn hint(&self) -> Option<String> {
        match self {
            SolveError::Compile(e) => e.hint(),
            SolveError::Bridge(e) => e.hint(),
            SolveError::BaseConfig { .. } => None,
        }
    }
}

/// Pin the base by digest (ResolveImageConfig), compile with its config, solve the
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
    let base = plan::base_plan(spec, res, &opts)?;
    let resolved = bridge
        .resolve_image_config(
            &base.pinned_reference(),
            Some(Platform::linux_amd64().to_pb()),
        )
        .await?;
    let config: serde_json::Value =
        serde_json::from_slice(&resolved.config).map_err(|e| SolveError::BaseConfig {
            image: base.pinned_reference(),
            error: e.to_string(),
        })?;
    opts.base = BaseMeta {
        digest: base.digest.clone().or(Some(resolved.digest)),
        config: Some(config),
    };
    let compiled = plan::compile(spec, res, &opts)?;
    let r = bridge
        .solve(Some(compiled.definition.clone()), solve)
        .await?;
    Ok((compiled, r))
}
