//! What `plan`, `llb` and `build` share: find and parse the spec, apply flag and env
//! overrides, probe the host when asked, resolve, and turn located errors into
//! rustc-style messages.

use std::path::{Path, PathBuf};

use anyhow::Context as _;

use crate::cli::Hinted;
use crate::probe;
use crate::resolve::{self, CudaRequest, Flavor, Request, Resolution};
use crate::spec::{self, Profile, Spec, SpecError};

/// Flags that choose the spec and override what it asks for.
#[derive(Debug, Clone, clap::Args)]
pub struct SpecArgs {
    /// The spec file, or a directory holding `torchkit.toml`.
    #[arg(value_name = "SPEC", default_value = "torchkit.toml")]
    pub spec: PathBuf,
    /// Override `[torch] cuda`: X.Y, auto or cpu.
    #[arg(long, env = "TORCHKIT_CUDA")]
    pub cuda: Option<String>,
    /// Override `[target] driver`.
    #[arg(long, env = "TORCHKIT_DRIVER")]
    pub driver: Option<String>,
    /// Override `[target] gpus` (repeatable): a compute capability or a product name.
    #[arg(long = "gpu", env = "TORCHKIT_GPU", value_delimiter = ',')]
    pub gpus: Vec<String>,
    /// Override `[torch] flavor`.
    #[arg(long, value_parser = ["runtime", "devel"])]
    pub flavor: Option<String>,
    /// Override `[cache] profile`.
    #[arg(long, env = "TORCHKIT_PROFILE", value_parser = ["dev", "test", "release"])]
    pub profile: Option<String>,
    /// Probe this host's driver and GPUs (as `[target] detect = true`).
    #[arg(long)]
    pub detect: bool,
}

/// A spec, the request it makes after overrides, and its resolution.
#[derive(Debug)]
pub struct Loaded {
    /// The parsed spec.
    pub spec: Spec,
    /// Where it was read from.
    pub path: PathBuf,
    /// The request given to the resolver.
    pub request: Request,
    /// What the resolver chose.
    pub resolution: Resolution,
    /// The profile in force.
    pub profile: Profile,
}

/// The error for a located spec problem: rendered with the offending line.
pub fn spec_error(e: &SpecError) -> anyhow::Error {
    anyhow::Error::new(Hinted::new(
        format!("{}\n{}", e, e.snippet()),
        e.help.clone(),
    ))
}

fn spec_path(p: &Path) -> PathBuf {
    if p.is_dir() {
        p.join("torchkit.toml")
    } else {
        p.to_path_buf()
    }
}

/// Read and parse the spec named by `args`.
pub fn read_spec(args: &SpecArgs) -> anyhow::Result<(Spec, PathBuf)> {
    let path = spec_path(&args.spec);
    let text = std::fs::read_to_string(&path).map_err(|e| {
        let hint = if e.kind() == std::io::ErrorKind::NotFound {
            Some("pass the spec path, run in a directory with torchkit.toml, or start from examples/quickstart/torchkit.toml".to_string())
        } else {
            None
        };
        anyhow::Error::new(Hinted::new(format!("cannot read {}: {e}", path.display()), hint))
    })?;
    let name = path.file_name().map_or_else(
        || path.display().to_string(),
        |n| n.to_string_lossy().into_owned(),
    );
    let spec = spec::parse(&text, &name).map_err(|e| spec_error(&e))?;
    Ok((spec, path))
}

/// Apply overrides to a spec's request.
pub fn request(spec: &Spec, args: &SpecArgs) -> anyhow::Result<Request> {
    let mut req = spec.request();
    if let Some(c) = &args.cuda {
        req.cuda = match c.as_str() {
            "auto" => CudaRequest::Auto,
            "cpu" => CudaRequest::Cpu,
            v => CudaRequest::Version(v.trim_start_matches("cu").to_string()),
        };
    }
    if let Some(f) = &args.flavor {
        req.flavor = if f == "devel" {
            Flavor::Devel
        } else {
            Flavor::Runtime
        };
    }
    if let Some(d) = &args.driver {
        req.driver = Some(d.clone());
    }
    if !args.gpus.is_empty() {
        req.gpus = args.gpus.clone();
    }
    if args.detect || spec.target.detect {
        let facts = probe::probe();
        let (driver, gpus) = probe::for_resolver(&facts);
        if args.driver.is_none() && driver.is_some() {
            req.driver = driver;
        }
        if args.gpus.is_empty() && !gpus.is_empty() {
            req.gpus = gpus;
        }
        if !facts.has_driver() {
            crate::cli::warn(
                "detect: no NVIDIA driver found on this host; resolving without a driver floor",
            );
        }
    }
    Ok(req)
}

/// Resolve a request, pointing at the spec line when the bad input came from the spec.
pub fn resolve(spec: &Spec, req: &Request) -> anyhow::Result<Resolution> {
    resolve::resolve(req).map_err(|e| match crate::plan::locate_resolve_error(spec, req, &e) {
        Some(located) => spec_error(&located),
        None => crate::cli::hinted(e),
    })
}

/// Parse, override, resolve.
pub fn load(args: &SpecArgs) -> anyhow::Result<Loaded> {
    let (spec, path) = read_spec(args)?;
    let request = request(&spec, args)?;
    let resolution = resolve(&spec, &request)?;
    let profile = match &args.profile {
        Some(p) => Profile::parse(p).context("profile")?,
        None => spec.cache.profile,
    };
    Ok(Loaded {
        spec,
        path,
        request,
        resolution,
        profile,
    })
}

/// A random hex token for bust nodes and build ids.
pub fn random_token() -> String {
    let mut b = [0u8; 16];
    getrandom::fill(&mut b).expect("the OS random source works");
    hex::encode(b)
}

/// The `.dockerignore` patterns of a context directory (empty when there is none), in
/// the order written, comments and blank lines dropped.
pub fn dockerignore(context: &Path) -> anyhow::Result<Vec<String>> {
    let path = context.join(".dockerignore");
    match std::fs::read_to_string(&path) {
        Ok(text) => Ok(text
            .lines()
            .map(str::trim)
            .filter(|l| !l.is_empty() && !l.starts_with('#'))
            .map(String::from)
            .collect()),
        Err(e) if e.kind() == std::io::ErrorKind::NotFound => Ok(vec![]),
        Err(e) => Err(anyhow::anyhow!("cannot read {}: {e}", path.display())),
    }
}

/// `--resolve-digest`: pin the base by digest (and inherit its config) through the registry's
/// distribution API, for `plan` and `llb`, which run without a daemon.
pub fn pin_base_from_registry(
    loaded: &Loaded,
    opts: &mut crate::plan::CompileOptions,
) -> anyhow::Result<()> {
    let base = crate::plan::base_plan(&loaded.spec, &loaded.resolution, opts)
        .map_err(crate::cli::hinted)?;
    opts.base = crate::registry::base_meta_blocking(&base.pinned_reference())
        .map_err(crate::cli::hinted)?;
    Ok(())
}
