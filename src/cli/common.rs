//! What `plan`, `llb` and `build` share: find and parse the spec, apply flag and env
//! overrides, probe the host when asked, resolve, and turn located errors into
//! rustc-style messages.

use std::path::{Path, PathBuf};

use anyhow::Context as _;

use crate::cli::Hinted;
use crate::load::LoadError;
use crate::probe;
use crate::resolve::{Request, Resolution};
use crate::spec::{Spec, SpecError};
use crate::vocab::{names, CudaRequest, Flavor, GpuList, Gpus, Overrides, Profile, Switch};

/// clap's parser for a vocabulary value: the type's own `FromStr`, with its hint on the
/// line after clap's `error: invalid value …` (clap prints only the error's text).
pub fn value<T: std::str::FromStr<Err = crate::vocab::ParseError>>(s: &str) -> Result<T, String> {
    s.parse::<T>().map_err(|e| format!("{e}\nhint: {}", e.help))
}

/// Flags that override what a spec asks for of the resolver, each with its environment
/// variable (the same name as the frontend's build-arg). Values are parsed by the
/// vocabulary's types (src/vocab.rs), as in the spec and the build-args.
#[derive(Debug, Clone, Default, clap::Args)]
pub struct OverrideArgs {
    /// Override `[torch] cuda`: X.Y, X.Y.Z, cuXYZ, auto or cpu.
    #[arg(long, env = names::CUDA, value_name = "X.Y|cuXYZ|auto|cpu", value_parser = value::<CudaRequest>)]
    pub cuda: Option<CudaRequest>,
    /// Override `[target] driver`: the host's NVIDIA driver, as nvidia-smi prints it.
    #[arg(long, env = names::DRIVER, value_name = "V")]
    pub driver: Option<String>,
    /// Override `[target] gpus`: compute capabilities (9.0) or product names (H100),
    /// comma-separated or repeated.
    #[arg(long = "gpu", env = names::GPU, value_name = "CC|NAME[,…]", value_parser = value::<GpuList>)]
    pub gpus: Vec<GpuList>,
    /// Override `[torch] flavor`: runtime or devel.
    #[arg(long, env = names::FLAVOR, value_name = "runtime|devel", value_parser = value::<Flavor>)]
    pub flavor: Option<Flavor>,
    /// Look a torch release newer than the matrix up on PyPI and the registry (as
    /// `[torch] online = true`); TORCHKIT_PYPI_URL points at another PyPI.
    #[arg(long, env = names::ONLINE, value_name = "BOOL", num_args = 0..=1, require_equals = true,
          default_missing_value = "true", value_parser = value::<Switch>)]
    pub online: Option<Switch>,
}

impl OverrideArgs {
    /// The overrides these flags give (no profile: see [`SpecArgs::overrides`]).
    pub fn overrides(&self) -> Overrides {
        let gpus = (!self.gpus.is_empty()).then(|| {
            let mut all = GpuList::default();
            for g in &self.gpus {
                all.extend(g.clone());
            }
            all
        });
        Overrides {
            cuda: self.cuda.clone(),
            flavor: self.flavor,
            driver: self.driver.clone(),
            gpus,
            profile: None,
            online: self.online.map(|o| o.0),
            skip_verify: None,
            gpus_attached: None,
        }
    }
}

/// Flags that choose the spec and override what it asks for.
#[derive(Debug, Clone, clap::Args)]
pub struct SpecArgs {
    /// The spec file, or a directory holding `torchkit.toml`.
    #[arg(value_name = "SPEC", default_value = "torchkit.toml")]
    pub spec: PathBuf,
    #[command(flatten)]
    pub overrides: OverrideArgs,
    /// Override `[cache] profile`: dev, test or release.
    #[arg(long, env = names::PROFILE, value_name = "dev|test|release", value_parser = value::<Profile>)]
    pub profile: Option<Profile>,
    /// Probe this host's driver and GPUs (as `[target] detect = true`).
    #[arg(long)]
    pub detect: bool,
    /// Leave out the verify stage (as `[verify] enabled = false`); progress says so.
    #[arg(long, env = names::SKIP_VERIFY, value_name = "BOOL", num_args = 0..=1, require_equals = true,
          default_missing_value = "true", value_parser = value::<Switch>)]
    pub skip_verify: Option<Switch>,
    /// GPUs for the verify stage, as `docker run --gpus`: all, device=0,1, or CDI names
    /// (nvidia.com/gpu=all). Needs BuildKit v0.20+ with CDI devices (as `[verify] gpu`).
    #[arg(long = "gpus", id = "attach_gpus", env = names::GPUS, value_name = "all|device=…|CDI-NAME", value_parser = value::<Gpus>)]
    pub attach_gpus: Option<Gpus>,
}

impl SpecArgs {
    /// Every override these flags (and their environment variables) give.
    pub fn overrides(&self) -> Overrides {
        Overrides {
            profile: self.profile,
            skip_verify: self.skip_verify.map(|s| s.0),
            gpus_attached: self.attach_gpus.clone(),
            ..self.overrides.overrides()
        }
    }
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
    /// `--skip-verify`.
    pub skip_verify: bool,
    /// `--gpus`.
    pub gpus: Option<Gpus>,
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
    // The size first: a huge file is refused without reading it.
    if let Ok(m) = std::fs::metadata(&path) {
        crate::load::check_size(&path.display().to_string(), m.len()).map_err(load_error)?;
    }
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
    let spec = crate::load::parse(&text, &name).map_err(load_error)?;
    Ok((spec, path))
}

/// The spec's request with the flags' overrides applied, then the host's probed driver and
/// GPUs where neither the flags nor the spec give them.
pub fn request(spec: &Spec, args: &SpecArgs) -> anyhow::Result<Request> {
    let overrides = args.overrides();
    let mut req = spec.request_with(&overrides);
    if args.detect || spec.target.detect {
        let facts = probe::probe();
        let (driver, gpus) = probe::for_resolver(&facts);
        if overrides.driver.is_none() && driver.is_some() {
            req.driver = driver;
        }
        if overrides.gpus.is_none() && !gpus.is_empty() {
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

/// Resolve a request, pointing at the spec line when the bad input came from the spec; a
/// torch release newer than the matrix is looked up online when the request allows it.
pub fn resolve(spec: &Spec, req: &Request) -> anyhow::Result<Resolution> {
    resolve_request(Some(spec), req)
}

/// [`resolve`], with or without a spec (`torchkit resolve --torch …`).
pub fn resolve_request(spec: Option<&Spec>, req: &Request) -> anyhow::Result<Resolution> {
    let located = |e: crate::resolve::ResolveError| match spec
        .and_then(|s| crate::load::locate(s, req, &e))
    {
        Some(l) => spec_error(&l),
        None => crate::cli::hinted(e),
    };
    let e = match crate::resolve::resolve(req) {
        Ok(r) => return Ok(r),
        Err(e) => e,
    };
    let Some(torch) = crate::resolve::online_lookup(req, &e) else {
        return Err(located(e));
    };
    let sources =
        crate::registry::online::Sources::from_env(spec.and_then(|s| s.base.mirror.as_deref()));
    let rt = tokio::runtime::Builder::new_current_thread()
        .enable_all()
        .build()
        .context("starting the async runtime")?;
    let registry = crate::registry::RegistryClient::new(crate::credentials::DockerAuth::from_env());
    let facts = rt
        .block_on(crate::registry::online::release_facts(
            &registry, &sources, &torch,
        ))
        .map_err(crate::cli::hinted)?;
    crate::resolve::resolve_online(req, &facts).map_err(located)
}

/// A load error for the terminal: a located one with the offending line.
pub fn load_error(e: LoadError) -> anyhow::Error {
    match e {
        LoadError::Spec(e) => spec_error(&e),
        e => crate::cli::hinted(e),
    }
}

/// Parse, override, resolve.
pub fn load(args: &SpecArgs) -> anyhow::Result<Loaded> {
    let (spec, path) = read_spec(args)?;
    let request = request(&spec, args)?;
    let resolution = resolve(&spec, &request)?;
    let profile = spec.profile_with(args.profile);
    Ok(Loaded {
        spec,
        path,
        request,
        resolution,
        profile,
        skip_verify: args.skip_verify.is_some_and(|s| s.0),
        gpus: args.attach_gpus.clone(),
    })
}

impl Loaded {
    /// What every command compiles with: the profile in force and the verify flags.
    pub fn compile_options(&self) -> crate::plan::CompileOptions {
        crate::plan::CompileOptions {
            profile: Some(self.profile),
            skip_verify: self.skip_verify,
            gpus: self.gpus.clone(),
            ..crate::plan::CompileOptions::default()
        }
    }
}

/// `--resolve-digest`: pin the base by digest (and inherit its config) through the registry's
/// distribution API, for `plan` and `llb`, which run without a daemon: the same
/// [`crate::plan::pin_base`] the builds run over ResolveImageConfig.
pub fn pin_base_from_registry(
    loaded: &Loaded,
    opts: &mut crate::plan::CompileOptions,
) -> anyhow::Result<()> {
    let rt = tokio::runtime::Builder::new_current_thread()
        .enable_all()
        .build()
        .context("starting the async runtime")?;
    let registry = crate::registry::RegistryClient::new(crate::credentials::DockerAuth::from_env());
    let pinned = rt
        .block_on(crate::plan::pin_base(
            &loaded.spec,
            &loaded.resolution,
            opts,
            &registry,
        ))
        .map_err(crate::cli::hinted)?;
    opts.base = pinned.into();
    Ok(())
}
