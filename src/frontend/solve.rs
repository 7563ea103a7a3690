//! Pin the base through the bridge ([`plan::pin_base`]), compile, solve, return.

use std::collections::BTreeMap;

use crate::buildkit::client::{error_status, BridgeError, SolveOptions, IMAGE_CONFIG_KEY};
use crate::buildkit::Bridge;
use crate::error::Hint;
use crate::plan::{self, CompileError, CompileOptions, Compiled, PinError, Report};
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
    /// The image is not what the resolution says: the failed checks of the verify stage.
    #[error("{}", verify_failed(.0))]
    Verify(Report),
    /// A `[verify] run` command failed (its output is in the progress above); the checks
    /// had passed.
    #[error("verify: {source}")]
    VerifyRun {
        /// The checks' report.
        report: Report,
        /// The failed solve.
        source: BridgeError,
    },
    /// The verify report could not be read back.
    #[error("verify: {0}")]
    VerifyReport(String),
}

/// `verify: 2 checks failed` and a line per failed check: what, expected, found, fix.
fn verify_failed(r: &Report) -> String {
    let failed = r.failed();
    let mut out = format!(
        "verify: {} of {} checks failed; the image is not what `torchkit resolve` said",
        failed.len(),
        r.checks.len()
    );
    for c in failed {
        out.push_str(&format!(
            "\n  {}: expected {}, found {}",
            c.name,
            c.expected.as_deref().unwrap_or("-"),
            c.found.as_deref().unwrap_or("-")
        ));
        if let Some(fix) = &c.fix {
            out.push_str(&format!("\n    fix: {fix}"));
        }
    }
    out
}

impl SolveError {
    /// The verify report, when the checks ran before the build failed.
    pub fn report(&self) -> Option<&Report> {
        match self {
            SolveError::Verify(r) | SolveError::VerifyRun { report: r, .. } => Some(r),
            _ => None,
        }
    }
}

impl Hint for SolveError {
    fn hint(&self) -> Option<String> {
        match self {
            SolveError::Compile(e) => e.hint(),
            SolveError::Bridge(e) if e.to_string().contains("required device") => Some(
                "the daemon has no CDI device by that name: generate the spec on its host (`nvidia-ctk cdi generate --output=/etc/cdi/nvidia.yaml`), enable CDI (Docker: \"features\": {\"cdi\": true} in daemon.json), or build without --gpus / [verify] gpu (docs/verify.md)".into(),
            ),
            SolveError::Bridge(e) => e.hint(),
            SolveError::Pin(e) => e.hint(),
            SolveError::Verify(_) => Some(
                "`torchkit build --skip-verify` (or `[verify] enabled = false`) builds without the checks; `--verify-report FILE` keeps the report"
                    .into(),
            ),
            SolveError::VerifyRun { .. } => Some(
                "a `[verify] run` command failed in the built image (its output is above); nothing was exported. `--skip-verify` builds without the verify stage".into(),
            ),
            SolveError::VerifyReport(_) => None,
        }
    }
}

/// What a build returned besides its result.
#[derive(Debug)]
pub struct Built {
    /// What was compiled.
    pub compiled: Compiled,
    /// The verify report, when the stage ran.
    pub report: Option<Report>,
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
    report_to: Option<&std::sync::Mutex<Option<Report>>>,
) -> Result<Built, SolveError> {
    let out = compile_and_solve(bridge, spec, res, opts, solve).await;
    // The report is handed over before `Return`: once the daemon has the build's outcome,
    // the caller's solve may end and this future with it.
    let report = match &out {
        Ok((b, _)) => b.report.clone(),
        Err(e) => e.report().cloned(),
    };
    if let (Some(sink), Some(r)) = (report_to, report) {
        if let Ok(mut slot) = sink.lock() {
            *slot = Some(r);
        }
    }
    match out {
        Ok((Built { compiled, report }, r)) => {
            let mut metadata = BTreeMap::new();
            if let Some(config) = &compiled.image_config {
                metadata.insert(IMAGE_CONFIG_KEY.to_string(), config.clone());
            }
            bridge.return_result(Some(r), metadata).await?;
            Ok(Built { compiled, report })
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
) -> Result<(Built, crate::proto::moby::buildkit::v1::frontend::Ref), SolveError> {
    opts.base = plan::pin_base(spec, res, &opts, bridge).await?.into();
    if opts.session_id.is_none() {
        opts.session_id = bridge.session_id().map(String::from);
    }
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
    let Some(verify) = &compiled.verify else {
        let r = bridge
            .solve(Some(compiled.definition.clone()), solve)
            .await?;
        return Ok((
            Built {
                compiled,
                report: None,
            },
            r,
        ));
    };
    let now = SolveOptions {
        evaluate: true,
        ..solve.clone()
    };
    // The image first, so that its own failures stay its own; then the checks, whose report
    // decides; then the gate and the tests. On a warm cache all three are cache hits.
    let image = if compiled.plan.output == plan::Output::Verify {
        None
    } else {
        Some(
            bridge
                .solve(Some(compiled.definition.clone()), now.clone())
                .await?,
        )
    };
    let checks = bridge
        .solve(Some(verify.checks.clone()), now.clone())
        .await?;
    let report = read_report(bridge, &checks).await?;
    if !report.ok {
        return Err(SolveError::Verify(report));
    }
    let stage = match bridge.solve(Some(verify.stage.clone()), now).await {
        Ok(r) => r,
        Err(source) => return Err(SolveError::VerifyRun { report, source }),
    };
    Ok((
        Built {
            compiled,
            report: Some(report),
        },
        image.unwrap_or(stage),
    ))
}

/// The checks' `report.json`.
async fn read_report(
    bridge: &Bridge,
    r: &crate::proto::moby::buildkit::v1::frontend::Ref,
) -> Result<Report, SolveError> {
    let path = format!("/{}", plan::verify::REPORT_FILE);
    let bytes = bridge.read_file(r, &path, None).await?;
    if bytes.is_empty() {
        return Err(SolveError::VerifyReport(
            "the checks wrote no report: the image's `python` could not run verify.py (see its output above)".into(),
        ));
    }
    Report::parse(&bytes).map_err(SolveError::VerifyReport)
}
