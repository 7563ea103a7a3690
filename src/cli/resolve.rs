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

use crate::cli::hinted;
use crate::error::Hint;
use crate::resolve::{self, CudaRequest, Flavor, Request, Resolution, ResolveError, Verdict};
use crate::spec::Spec;

/// Flags of `torchkit resolve`.
#[derive(Debug, clap::Args)]
pub struct Args {
    /// torchkit.toml to read the request from (flags override its values).
    #[arg(value_name = "SPEC")]
    pub spec: Option<PathBuf>,

    /// torch release, e.g. 2.8.0 (or 2.8 for its newest patch). Required without SPEC.
    #[arg(long, value_name = "V", required_unless_present = "spec")]
    pub torch: Option<String>,

    /// CUDA variant: X.Y (e.g. 12.8), `auto` (best for the target) or `cpu`.
    #[arg(long, value_name = "X.Y|auto|cpu")]
    pub cuda: Option<String>,

    /// Host NVIDIA driver version, as nvidia-smi prints it (e.g. 570.124.06).
    #[arg(long, value_name = "V")]
    pub driver: Option<String>,

    /// Target GPU: compute capability (9.0) or product name (H100). Repeat for several.
    #[arg(long = "gpu", value_name = "CC|NAME")]
    pub gpus: Vec<String>,

    /// Image flavour.
    #[arg(long, value_enum)]
    pub flavor: Option<FlavorArg>,

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

/// `--flavor` values.
#[derive(Debug, Clone, Copy, PartialEq, Eq, clap::ValueEnum)]
pub enum FlavorArg {
    /// `…-runtime`: no compiler toolchain.
    Runtime,
    /// `…-devel`: nvcc and headers.
    Devel,
}

impl From<FlavorArg> for Flavor {
    fn from(f: FlavorArg) -> Self {
        match f {
            FlavorArg::Runtime => Flavor::Runtime,
            FlavorArg::Devel => Flavor::Devel,
        }
    }
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
    let (req, from_spec) = request(&args, spec.as_ref())?;
    if spec.as_ref().is_some_and(|s| s.target.detect)
        && args.driver.is_none()
        && args.gpus.is_empty()
    {
        let mut err = io::stderr().lock();
        let _ = writeln!(
            err,
            "note: the spec sets [target] detect = true; `torchkit resolve` does not probe the host (run `torchkit probe`, then pass --driver/--gpu)"
        );
    }
    let res = match resolve::resolve(&req) {
        Ok(r) => r,
        Err(e) => {
            // Point at the spec line when the offending value came from the spec.
            if let Some((spec, key)) = spec.as_ref().zip(spec_key(&e, &from_spec)) {
                return Err(hinted(spec.error_at(key, e.to_string(), e.hint())));
            }
            return Err(hinted(e));
        }
    };
    let out = if args.json {
        serde_json::to_string_pretty(&json(&res))? + "\n"
    } else {
        report(&res)
    };
    let mut stdout = io::stdout().lock();
    match stdout
        .write_all(out.as_bytes())
        .and_then(|()| stdout.flush())
    {
        Err(e) if e.kind() != io::ErrorKind::BrokenPipe => Err(e.into()),
        _ => Ok(ExitCode::SUCCESS),
    }
}

/// Which request fields came from the spec (not overridden by a flag).
#[derive(Debug, Default)]
struct FromSpec {
    torch: bool,
    cuda: bool,
    driver: bool,
    gpus: bool,
}

/// Merge the spec's request with the flags; flags win.
fn request(args: &Args, spec: Option<&Spec>) -> anyhow::Result<(Request, FromSpec)> {
    let mut req = spec.map(Spec::request).unwrap_or_default();
    let mut from = FromSpec {
        torch: spec.is_some(),
        cuda: spec.is_some(),
        driver: spec.is_some_and(|s| s.target.driver.is_some()),
        gpus: spec.is_some_and(|s| !s.target.gpus.is_empty()),
    };
    if let Some(t) = &args.torch {
        req.torch = t.clone();
        from.torch = false;
    }
    if let Some(c) = &args.cuda {
        req.cuda = CudaRequest::parse(c).map_err(hinted)?;
        from.cuda = false;
    }
    if let Some(d) = &args.driver {
        req.driver = Some(d.clone());
        from.driver = false;
    }
    if !args.gpus.is_empty() {
        req.gpus = args.gpus.clone();
        from.gpus = false;
    }
    if let Some(f) = args.flavor {
        req.flavor = f.into();
    }
    if args.torchvision.is_some() {
        req.torchvision = args.torchvision.clone();
    }
    if args.torchaudio.is_some() {
        req.torchaudio = args.torchaudio.clone();
    }
    Ok((req, from))
}

/// The spec key an error is about, when that value came from the spec.
fn spec_key(e: &ResolveError, from: &FromSpec) -> Option<&'static str> {
    let (key, ok) = match e {
        ResolveError::InvalidTorch { .. } | ResolveError::UnknownTorch { .. } => {
            ("torch.version", from.torch)
        }
        ResolveError::InvalidCuda { .. } | ResolveError::CudaNotShipped(_) => {
            ("torch.cuda", from.cuda)
        }
        ResolveError::InvalidDriver { .. } => ("target.driver", from.driver),
        ResolveError::UnknownGpu { .. } | ResolveError::AmbiguousGpu { .. } => {
            ("target.gpus", from.gpus)
        }
        ResolveError::NoCompatibleVariant { .. } => ("torch.version", from.torch),
    };
    ok.then_some(key)
}

/// The JSON form: `image` is the full reference; its parts stay under `image_ref`.
fn json(res: &Resolution) -> serde_json::Value {
    let mut v = serde_json::to_value(res).expect("Resolution serialises");
    let obj = v.as_object_mut().expect("Resolution is an object");
    let parts = obj.insert("image".into(), res.image.full().into());
    if let Some(parts) = parts {
        obj.insert("image_ref".into(), parts);
    }
    v
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
    line(
        "flavor",
        match r.flavor {
            Flavor::Runtime => "runtime",
            Flavor::Devel => "devel",
        },
    );
    line("index", &r.index_url);
    line(
        "min driver",
        &r.min_driver
            .as_ref()
            .map(|d| format!(">= {d}"))
            .unwrap_or_else(|| "none".into()),
    );
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
