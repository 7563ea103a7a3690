//! `torchkit resolve`: pick the `pytorch/pytorch` base image for a torch/CUDA/driver/GPU
//! combination and explain the choice.
//!
//! The request comes from an optional `torchkit.toml` (SPEC) and flags; flags win. The host is
//! never probed here (`torchkit probe` does that): `--driver` and `--gpu` are plain data. The
//! report (or one JSON object with `--json`) goes to stdout; an impossible request exits
//! non-zero with the resolver's hint.

use std::io::{self, Write};
use std::path::PathBuf;
use std::process::ExitCode;

use anyhow::Context;

use crate::cli::common::OverrideArgs;
use crate::cli::hinted;
use crate::resolve::{Request, Resolution, Verdict};
use crate::spec::Spec;

/// Flags of `torchkit resolve`.
#[derive(Debug, clap::Args)]
pub struct Args {
    /// torchkit.toml to read the request from (flags override its values).
    #[arg(value_name = "SPEC")]
    pub spec: Option<PathBuf>,

    /// torch release, MAJOR.MINOR.PATCH, e.g. 2.8.0. Required without SPEC.
    #[arg(long, value_name = "V", required_unless_present = "spec")]
    pub torch: Option<String>,

    #[command(flatten)]
    pub overrides: OverrideArgs,

    /// torchvision release instead of the one paired with torch.
    #[arg(long, value_name = "V")]
    pub torchvision: Option<String>,

    /// torchaudio release instead of the one paired with torch.
    #[arg(long, value_name = "V")]
    pub torchaudio: Option<String>,

    /// Print one JSON object instead of the report.
    #[arg(long)]
    pub json: bool,
}

/// Run `torchkit resolve`.
pub fn run(args: Args) -> anyhow::Result<ExitCode> {
    let spec = match &args.spec {
        Some(path) => {
            let text = std::fs::read_to_string(path)
                .with_context(|| format!("reading {}", path.display()))?;
            let name = path.display().to_string();
            Some(crate::spec::parse(&text, &name).map_err(hinted)?)
        }
        None => None,
    };
    let req = request(&args, spec.as_ref());
    if spec.as_ref().is_some_and(|s| s.target.detect)
        && args.overrides.driver.is_none()
        && args.overrides.gpus.is_empty()
    {
        let mut err = io::stderr().lock();
        let _ = writeln!(
            err,
            "note: the spec sets [target] detect = true; `torchkit resolve` does not probe the host (run `torchkit probe`, then pass --driver/--gpu)"
        );
    }
    let res = crate::cli::common::resolve_request(spec.as_ref(), &req)?;
    let out = if args.json {
        serde_json::to_string_pretty(&json(&res))? + "\n"
    } else {
        report(&res)
    };
    crate::cli::write_stdout(out.as_bytes())?;
    Ok(ExitCode::SUCCESS)
}

/// The spec's request (or, without a spec, `--torch`'s) with the flags applied; flags win.
fn request(args: &Args, spec: Option<&Spec>) -> Request {
    let overrides = args.overrides.overrides();
    let mut req = match spec {
        Some(s) => s.request_with(&overrides),
        None => Request::default().overridden(&overrides),
    };
    if let Some(t) = &args.torch {
        req.torch = t.clone();
    }
    if args.torchvision.is_some() {
        req.torchvision = args.torchvision.clone();
    }
    if args.torchaudio.is_some() {
        req.torchaudio = args.torchaudio.clone();
    }
    req
}

/// The JSON form: `image` is the full reference; its parts stay under `image_ref`; `matrix`
/// says how current the facts behind the answer are.
fn json(res: &Resolution) -> serde_json::Value {
    let mut v = serde_json::to_value(res).expect("Resolution serialises");
    let obj = v.as_object_mut().expect("Resolution is an object");
    let parts = obj.insert("image".into(), res.image.full().into());
    if let Some(parts) = parts {
        obj.insert("image_ref".into(), parts);
    }
    let m = crate::matrix::matrix();
    obj.insert(
        "matrix".into(),
        serde_json::json!({
            "gathered": m.gathered,
            "oldest": m.oldest_patch().as_str(),
            "newest": m.newest_patch().as_str(),
        }),
    );
    v
}

/// `2026-12-03 (torch 1.13.0 to 2.15.0)`: when the matrix facts were gathered, and what they cover.
fn matrix_line() -> String {
    let m = crate::matrix::matrix();
    format!(
        "{} (torch {} to {}; newer releases are unknown to this torchkit)",
        m.gathered,
        m.oldest_patch(),
        m.newest_patch()
    )
}

/// The human report.
fn report(r: &Resolution) -> String {
    let mut s = String::new();
    let mut line = |k: &str, v: &str| s.push_str(&format!("{k:<12} {v}\n"));
    line("image", &r.image.full());
    line("torch", &r.torch);
    line("cuda", r.cuda.as_deref().unwrap_or("none (cpu)"));
    line("cudnn", r.cudnn.as_deref().unwrap_or("none"));
    line("python", &r.python);
    line("torchvision", &r.torchvision);
    line("torchaudio", &r.torchaudio);
    line("flavor", r.flavor.as_str());
    line("index", &r.index_url);
    line(
        "min driver",
        &r.min_driver
            .as_ref()
            .map(|d| format!(">= {d}"))
            .unwrap_or_else(|| "none".into()),
    );
    line("matrix", &matrix_line());
    if !r.gpus.is_empty() {
        s.push_str("\ngpus:\n");
        for g in &r.gpus {
            let v = match g.verdict {
                Verdict::Native => "native",
                Verdict::PtxJit => "ptx-jit",
                Verdict::Unsupported => "unsupported",
            };
            s.push_str(&format!(
                "  {} ({}): {v}, {}\n",
                g.gpu, g.compute_capability, g.detail
            ));
        }
    }
    if !r.warnings.is_empty() {
        s.push_str("\nwarnings:\n");
        for w in &r.warnings {
            s.push_str(&format!("  ! {w}\n"));
        }
    }
    s.push_str("\nwhy:\n");
    for reason in &r.reasons {
        s.push_str(&format!("  - {reason}\n"));
    }
    if !r.rejected.is_empty() {
        s.push_str("\nrejected:\n");
        for x in &r.rejected {
            s.push_str(&format!("  - {}: {}\n", x.candidate, x.reason));
        }
    }
    s
}
