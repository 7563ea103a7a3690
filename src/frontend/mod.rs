//! The gateway side of a build, shared by both ways torchkit builds:
//! - the driver (`torchkit build`) runs it in-client, over the Control connection;
//! - the `# syntax=` frontend (`torchkit frontend`) runs it inside BuildKit, over stdio.
//!
//! Either way it is the same code over a [`Bridge`]: pin the base with ResolveImageConfig,
//! call the one pure [`crate::plan::compile`], Solve the Definition and Return the result
//! with the image config ([`solve::build_spec`]). Logs go to stderr only: in frontend mode
//! stdout is the gRPC pipe (the daemon writes the frontend's stderr to its own log).
//!
//! # The `# syntax=` frontend
//!
//! [`run_from_environment`] is all of `torchkit frontend`: read the options from the
//! environment ([`options`]), connect over stdin/stdout ([`stdio`]) and [`run`]:
//! 1. parse the options; refuse what torchkit cannot honour (`--platform linux/arm64`);
//! 2. read the spec from the `dockerfile` local (`filename`, so `docker build -f
//!    torchkit.toml .` works) and `.dockerignore` (`<filename>.dockerignore` beside the
//!    spec, else the context's), as the Dockerfile frontend does;
//! 3. parse the spec, apply the `TORCHKIT_*` build-args, resolve; a named context for the
//!    base (`--build-context <base>=docker-image://<image>`) puts that image in its place;
//! 4. [`solve::build_spec`] with the frontend's options (session id, excludes, labels,
//!    target, no-cache, CA secret, cache imports), or, for `requestid` (`buildx --print`),
//!    answer the [`subrequest`] from the plan instead of building.
//!
//! Any failure is returned to the daemon with `Return{error}` ([`status`]): spec errors and
//! resolver errors located in the spec carry an `errdefs.Source`, so the docker CLI prints
//! the offending line of `torchkit.toml`.

pub mod options;
pub mod solve;
pub mod status;
pub mod stdio;
pub mod subrequest;

use std::collections::BTreeMap;
use std::process::ExitCode;

use crate::buildkit::client::{BridgeError, SolveOptions, REQUIRED_GATEWAY_CAPS};
use crate::buildkit::session::{beside_spec, context_excludes, DOCKERIGNORE};
use crate::buildkit::{token, Bridge};
use crate::error::Hint;
use crate::llb::{self, Differ};
use crate::load::{self, LoadError};
use crate::lock::{self, LockError, LockStatus, LockedSet, Policy, LOCK_FILE};
use crate::plan::{self, CompileOptions};
use crate::proto::google::rpc::Status as RpcStatus;
use crate::resolve::{self, Request};
use crate::spec::{Spec, SpecError};

use options::{FrontendOptions, OptionsError};
use solve::SolveError;
use subrequest::Subrequest;

/// Gateway caps the frontend needs besides [`REQUIRED_GATEWAY_CAPS`].
pub const FRONTEND_CAPS: &[&str] = &["readfile"];

/// Why a frontend run failed. Every variant is also returned to the daemon.
#[derive(Debug, thiserror::Error)]
pub enum FrontendError {
    /// An option torchkit refuses.
    #[error(transparent)]
    Options(#[from] OptionsError),
    /// The spec could not be read from the dockerfile local.
    #[error("cannot read the spec `{filename}` from the build's dockerfile local: {source}")]
    ReadSpec {
        /// The `filename` option.
        filename: String,
        /// The bridge error.
        source: BridgeError,
    },
    /// The spec is not UTF-8.
    #[error("the spec `{0}` is not UTF-8 text")]
    NotText(String),
    /// A problem located in the spec.
    #[error("{error}")]
    Spec {
        /// The located error.
        error: SpecError,
        /// The spec as read (for the source excerpt).
        text: String,
    },
    /// A resolver error not caused by a spec value (a build-arg override, say); located
    /// ones are [`FrontendError::Spec`].
    #[error(transparent)]
    Load(LoadError),
    /// `torchkit.lock` is unreadable, missing under `TORCHKIT_LOCKED=1`, or stale.
    #[error(transparent)]
    Lock(#[from] LockError),
    /// A gateway call failed.
    #[error(transparent)]
    Bridge(#[from] BridgeError),
    /// Compile, solve or return failed (already returned to the daemon).
    #[error(transparent)]
    Solve(#[from] SolveError),
}

/// Whether a gateway read failed because the file is not there.
fn is_not_found(e: &BridgeError) -> bool {
    match e {
        BridgeError::Rpc { status, .. } => {
            status.code() == tonic::Code::NotFound
                || status.message().contains("no such file or directory")
        }
        _ => false,
    }
}

impl Hint for FrontendError {
    fn hint(&self) -> Option<String> {
        match self {
            FrontendError::Options(e) => e.hint(),
            // Only a file that is not there is about the path; anything else the daemon
            // said keeps its own hint, not a guessed cause.
            FrontendError::ReadSpec { source, .. } if !is_not_found(source) => source.hint(),
            FrontendError::ReadSpec { filename, .. } if filename == options::DEFAULT_FILENAME => Some(
                "name the spec with -f, e.g. `docker build -f torchkit.toml .` (docker looks for `Dockerfile` by default)".into(),
            ),
            FrontendError::ReadSpec { .. } => {
                Some("check the -f path: the spec must be inside the directory docker sends".into())
            }
            FrontendError::NotText(_) => None,
            FrontendError::Spec { error, .. } => error.help.clone(),
            FrontendError::Load(e) => e.hint(),
            FrontendError::Lock(e) => e.hint(),
            FrontendError::Bridge(e) => e.hint(),
            FrontendError::Solve(e) => e.hint(),
        }
    }
}

impl FrontendError {
    /// The status for `LLBBridge.Return`.
    pub fn status(&self) -> RpcStatus {
        match self {
            FrontendError::Spec { error, text } => status::spec_error(error, text),
            e => status::plain(&e.to_string(), e.hint().as_deref()),
        }
    }
}

/// Log a line to stderr, which the daemon writes to its log (never to stdout: that is the
/// gRPC pipe).
#[allow(clippy::print_stderr)]
fn log(msg: &str) {
    eprintln!("torchkit frontend: {msg}");
}

/// `torchkit frontend`: options and session from the environment, LLBBridge on
/// stdin/stdout, one build. The exit code is 0 when the build's result was returned.
pub fn run_from_environment() -> anyhow::Result<ExitCode> {
    let (raw, session) = options::from_env_vars(std::env::vars());
    let rt = tokio::runtime::Builder::new_current_thread()
        .enable_all()
        .build()?;
    let out = rt.block_on(async move {
        let channel = stdio::connect(stdio::Stdio::process()).await?;
        let bridge = Bridge::new(channel, None)?;
        anyhow::Ok(match run(&bridge, &raw, session).await {
            Ok(()) => ExitCode::SUCCESS,
            Err(e) => {
                log(&format!("build failed: {e}"));
                ExitCode::FAILURE
            }
        })
    });
    // Reads of stdin sit on the blocking pool; do not wait for them.
    rt.shutdown_background();
    out
}

/// `TORCHKIT_ONLINE` in the frontend: which `pytorch/pytorch` tags of the unseen release
/// `torch` exist, asked of the daemon with ResolveImageConfig (the frontend does not reach
/// PyPI, so its default CUDA stays unread and the answer says so).
async fn lookup_tags(
    bridge: &Bridge,
    spec: &Spec,
    req: &Request,
    torch: &crate::matrix::Version,
) -> crate::matrix::facts::ReleaseFacts {
    use crate::matrix::facts;
    let candidates = facts::candidate_tags(crate::matrix::matrix(), torch, req.flavor.as_str());
    let repo = match &spec.base.mirror {
        Some(m) => format!("{m}/pytorch/pytorch"),
        None => "docker.io/pytorch/pytorch".to_string(),
    };
    let platform = crate::llb::Platform::linux_amd64();
    let asks = candidates.iter().map(|tag| {
        let reference = format!("{repo}:{tag}");
        let platform = &platform;
        async move {
            // BuildKit shows each lookup as a step, a missing tag as an error: say what it is.
            let name = format!("[torchkit --online] look for {reference} (not found is an answer)");
            let found = bridge
                .resolve_image_config_as(&reference, Some(platform.to_pb()), name)
                .await
                .is_ok();
            log(&format!(
                "online: {reference} {}",
                if found { "exists" } else { "not found" }
            ));
            found.then(|| tag.clone())
        }
    });
    let found: Vec<String> = futures::future::join_all(asks)
        .await
        .into_iter()
        .flatten()
        .collect();
    facts::ReleaseFacts {
        tags: facts::image_tags(torch, &found),
        torch: torch.clone(),
        looked_up: vec![format!(
            "ResolveImageConfig of {} candidate tags of {repo}",
            candidates.len()
        )],
        uploaded: None,
        requires_python: None,
        pypi_default_cuda: None,
        torchvision: None,
        torchaudio: None,
        variants: Vec::new(),
    }
}

/// One build through `bridge` with the frontend options `raw` (`key` → `value`). Whatever
/// fails is returned to the daemon (`Return{error}`) before this returns it.
pub async fn run(
    bridge: &Bridge,
    raw: &BTreeMap<String, String>,
    session_id: Option<String>,
) -> Result<(), FrontendError> {
    log(&format!(
        "options: {}",
        raw.iter()
            .map(|(k, v)| format!("{k}={v}"))
            .collect::<Vec<_>>()
            .join(" ")
    ));
    let out = build(bridge, raw, session_id).await;
    if let Err(e) = &out {
        if !bridge.has_returned() {
            if let Err(r) = bridge.return_error(e.status()).await {
                log(&format!("returning the error failed: {r}"));
            }
        }
    }
    out
}

async fn build(
    bridge: &Bridge,
    raw: &BTreeMap<String, String>,
    session_id: Option<String>,
) -> Result<(), FrontendError> {
    let started = std::time::Instant::now();
    let opts = options::parse(raw, session_id)?;
    // The ping and the reads are independent round trips: run them together. A daemon
    // without the caps fails on the caps, whatever the reads did.
    let (caps, read) = tokio::join!(bridge.ping(), read_inputs(bridge, &opts));
    let caps = caps?;
    caps.require_frontend(REQUIRED_GATEWAY_CAPS)?;
    caps.require_frontend(FRONTEND_CAPS)?;
    if opts.subrequest == Some(Subrequest::Describe) {
        bridge.return_result(None, subrequest::describe()).await?;
        return Ok(());
    }
    let read = read?;
    let read_ms = started.elapsed().as_millis();
    let text = read.spec;
    // The load steps the CLI runs too (`crate::load`): parse, override, resolve.
    let located = |e: LoadError| match e {
        LoadError::Spec(error) => FrontendError::Spec {
            error,
            text: text.clone(),
        },
        e => FrontendError::Load(e),
    };
    let spec = load::parse(&text, &opts.filename).map_err(located)?;
    let req = request(&spec, &opts);
    let res = match resolve::resolve(&req).map_err(|e| resolve::online_lookup(&req, &e).ok_or(e)) {
        Ok(res) => res,
        Err(Ok(torch)) => {
            let facts = lookup_tags(bridge, &spec, &req, &torch).await;
            load::resolve_online(&spec, &req, &facts).map_err(located)?
        }
        Err(Err(_)) => load::resolve(&spec, &req).map_err(located)?,
    };
    let mut warnings = res.warnings.clone();
    // `--build-context <base>=docker-image://<image>`: build on that image instead.
    let mut base_source = None;
    if !opts.named_contexts.is_empty() {
        let names = plan::base_context_names(&spec, &res)
            .map_err(|e| FrontendError::Solve(SolveError::Compile(e)))?;
        let (source, unused) = options::base_source(&opts.named_contexts, &names);
        if let Some(s) = &source {
            log(&format!(
                "building on {s} instead of {} (--build-context)",
                names[0]
            ));
        }
        base_source = source;
        warnings.extend(unused);
    }
    // Leaving the checks out is said where the build's warnings are read.
    let verify_opts = CompileOptions {
        skip_verify: opts.overrides.skip_verify.unwrap_or(false),
        target: opts.target,
        ..CompileOptions::default()
    };
    if let Some(reason) = plan::verify::skipped(&spec, &verify_opts) {
        warnings.push(format!("[torchkit verify] skipped: {reason}"));
    }
    if spec.target.detect {
        warnings.push("[target] detect = true has no effect in the frontend (it runs inside BuildKit, not on your host); pass --build-arg TORCHKIT_DRIVER=… and TORCHKIT_GPU=… instead".into());
    }
    for w in &warnings {
        log(&format!("warning: {w}"));
        if caps.has_frontend("gateway.warnings") {
            if let Err(e) = bridge.warn(&read.vertex, w, &[], None).await {
                log(&format!("Warn failed: {e}"));
            }
        }
    }

    if let Some(sub) = opts.subrequest {
        return answer(bridge, sub, &spec, &res, &opts, base_source).await;
    }

    let lock = locked_set(
        bridge,
        &opts,
        &spec,
        &res,
        read.lock.as_deref(),
        &read.vertex,
    )
    .await?;
    let compile = CompileOptions {
        lock,
        profile: opts.overrides.profile,
        build_token: Some(token::random_token()),
        session_id: opts.session_id.clone(),
        context_excludes: read.excludes,
        ca_secret: opts.ca_secret,
        no_cache: opts.no_cache.clone(),
        labels: opts.labels.clone(),
        target: opts.target,
        source_date_epoch: opts.source_date_epoch,
        base_source,
        skip_verify: opts.overrides.skip_verify.unwrap_or(false),
        gpus: opts.overrides.gpus_attached.clone(),
        ..CompileOptions::default()
    };
    let solve = SolveOptions {
        cache_imports: opts.cache_imports.clone(),
        ..SolveOptions::default()
    };
    let built = solve::build_spec(bridge, &spec, &res, compile, solve, None).await?;
    log(&format!(
        "returned {} steps on {} (spec read after {read_ms} ms, returned after {} ms)",
        built.compiled.plan.steps.len(),
        built.compiled.plan.base.pinned_reference(),
        started.elapsed().as_millis()
    ));
    Ok(())
}

/// Answer `targets` or `outline` from the plan this build would run (no base lookup: the
/// steps do not depend on the digest).
async fn answer(
    bridge: &Bridge,
    sub: Subrequest,
    spec: &Spec,
    res: &resolve::Resolution,
    opts: &FrontendOptions,
    base_source: Option<String>,
) -> Result<(), FrontendError> {
    let compile = CompileOptions {
        profile: opts.overrides.profile,
        build_token: Some(token::random_token()),
        no_cache: opts.no_cache.clone(),
        ca_secret: opts.ca_secret,
        target: opts.target,
        base_source,
        skip_verify: opts.overrides.skip_verify.unwrap_or(false),
        gpus: opts.overrides.gpus_attached.clone(),
        ..CompileOptions::default()
    };
    // Planning never needs the pinned base a release build needs: only lowering does.
    let p = plan::plan(spec, res, &compile)
        .map_err(|e| FrontendError::Solve(SolveError::Compile(e)))?;
    let metadata = match sub {
        Subrequest::Targets => subrequest::targets(spec, &p),
        Subrequest::Outline => subrequest::outline(spec, &p, opts),
        Subrequest::Describe => subrequest::describe(),
    };
    bridge.return_result(None, metadata).await?;
    log(&format!("answered {}", sub.id()));
    Ok(())
}

/// The spec's resolver request with the `TORCHKIT_*` build-arg overrides applied.
pub fn request(spec: &Spec, opts: &FrontendOptions) -> Request {
    spec.request_with(&opts.overrides)
}

/// What the frontend reads before compiling.
struct Inputs {
    /// The spec text.
    spec: String,
    /// `.dockerignore` patterns of the context.
    excludes: Vec<String>,
    /// The vertex (op digest) of the spec's local, for warnings.
    vertex: String,
    /// `torchkit.lock` beside the spec, if there is one.
    lock: Option<Vec<u8>>,
}

/// A spec or requirements file read through the gateway, at most [`load::MAX_INPUT_BYTES`]:
/// the read stops one byte past the limit (a larger file would otherwise fail on the gRPC
/// message size) and a file over it is [`LoadError::TooLarge`], its size from a stat.
async fn read_limited(
    bridge: &Bridge,
    r: &crate::proto::moby::buildkit::v1::frontend::Ref,
    path: &str,
) -> Result<Result<Vec<u8>, LoadError>, BridgeError> {
    let limit = load::MAX_INPUT_BYTES;
    let bytes = bridge
        .read_file(r, path, Some((0, limit as i64 + 1)))
        .await?;
    if bytes.len() as u64 <= limit {
        return Ok(Ok(bytes));
    }
    let size = match bridge.stat_file(r, path).await {
        Ok(Some(stat)) => u64::try_from(stat.size)
            .unwrap_or(0)
            .max(bytes.len() as u64),
        _ => bytes.len() as u64,
    };
    Ok(load::check_size(path, size).map(|()| bytes))
}

/// `torchkit.lock` beside the spec in the dockerfile local (`sub/torchkit.toml` →
/// `sub/torchkit.lock`), where the driver looks for it too.
fn lock_file(filename: &str) -> String {
    match filename.rsplit_once('/') {
        Some((dir, _)) => format!("{dir}/{LOCK_FILE}"),
        None => LOCK_FILE.to_string(),
    }
}

/// The lock to install: the rules of [`lock::check`], the driver's too. A stale lock is
/// ignored with a warning, or fails under `TORCHKIT_LOCKED=1`.
async fn locked_set(
    bridge: &Bridge,
    opts: &FrontendOptions,
    spec: &Spec,
    res: &resolve::Resolution,
    text: Option<&[u8]>,
    vertex: &str,
) -> Result<Option<LockedSet>, FrontendError> {
    let text = text.map(String::from_utf8_lossy);
    // The requirements file is part of what a lock fingerprints: read it from the context,
    // when there is a lock to compare it with.
    let requirements = match (&text, &spec.python.requirements) {
        (Some(_), Some(path)) => {
            let mut local = llb::local(&opts.context_key)
                .follow_paths([path.as_str()])
                .shared_key_hint(&format!("{}-requirements", opts.context_key))
                .differ(Differ::None)
                .custom_name(format!("[internal] load {path}"));
            if let Some(s) = &opts.session_id {
                local = local.session_id(s);
            }
            let (r, _) = solve_local(bridge, local).await?;
            Some(
                read_limited(bridge, &r, path)
                    .await?
                    .map_err(FrontendError::Load)?,
            )
        }
        _ => None,
    };
    let policy = if opts.locked {
        Policy::Require(options::ARG_LOCKED)
    } else {
        Policy::UseIfCurrent
    };
    let status = lock::check(
        &lock_file(&opts.filename),
        text.as_deref(),
        spec,
        res,
        requirements.as_deref(),
        policy,
    )?;
    if let LockStatus::Current(_) = status {
        log(&format!(
            "installing the locked set of {}",
            lock_file(&opts.filename)
        ));
    }
    if let Some(w) = status.warning() {
        log(&format!("warning: {w}"));
        if bridge
            .caps()
            .is_some_and(|c| c.has_frontend("gateway.warnings"))
        {
            if let Err(e) = bridge.warn(vertex, &w, &[], None).await {
                log(&format!("Warn failed: {e}"));
            }
        }
    }
    Ok(status.locked_set())
}

/// Solve a local restricted to `follow` and return its ref and the digest of its op.
async fn solve_local(
    bridge: &Bridge,
    local: llb::Local,
) -> Result<(crate::proto::moby::buildkit::v1::frontend::Ref, String), FrontendError> {
    let def = local
        .into_state()
        .marshal()
        .map_err(|e| FrontendError::Solve(SolveError::Compile(plan::CompileError::Llb(e))))?;
    let vertex = def
        .def
        .first()
        .map(|op| llb::digest_of(op))
        .unwrap_or_default();
    let r = bridge.solve(Some(def), SolveOptions::default()).await?;
    Ok((r, vertex))
}

async fn read_inputs(bridge: &Bridge, opts: &FrontendOptions) -> Result<Inputs, FrontendError> {
    let ignore_beside = beside_spec(&opts.filename);
    let lock_beside = lock_file(&opts.filename);
    let mut local = llb::local(&opts.dockerfile_key)
        .follow_paths([
            opts.filename.as_str(),
            ignore_beside.as_str(),
            lock_beside.as_str(),
        ])
        .shared_key_hint(&opts.dockerfile_key)
        .differ(Differ::None)
        .custom_name(format!(
            "[internal] load build definition from {}",
            opts.filename
        ));
    let mut ctx = llb::local(&opts.context_key)
        .follow_paths([DOCKERIGNORE])
        .shared_key_hint(&format!("{}-dockerignore", opts.context_key))
        .differ(Differ::None)
        .custom_name("[internal] load .dockerignore");
    if let Some(s) = &opts.session_id {
        local = local.session_id(s);
        ctx = ctx.session_id(s);
    }
    // Both loads in parallel, as the Dockerfile frontend does: each is a round trip to the
    // client's session.
    let spec_side = async {
        let (r, vertex) = solve_local(bridge, local).await?;
        // Three reads of one ref, each a round trip: together.
        let (bytes, beside, lock) = tokio::join!(
            read_limited(bridge, &r, &opts.filename),
            bridge.read_file(&r, &ignore_beside, None),
            bridge.read_file(&r, &lock_beside, None),
        );
        let bytes = bytes
            .map_err(|source| FrontendError::ReadSpec {
                filename: opts.filename.clone(),
                source,
            })?
            .map_err(FrontendError::Load)?;
        Ok::<_, FrontendError>((bytes, beside.ok(), vertex, lock.ok()))
    };
    let context_side = async {
        let (r, _) = solve_local(bridge, ctx).await?;
        Ok::<_, FrontendError>(bridge.read_file(&r, DOCKERIGNORE, None).await.ok())
    };
    let (spec_side, context_side) = tokio::join!(spec_side, context_side);
    let (bytes, beside, vertex, lock) = spec_side?;
    let spec =
        String::from_utf8(bytes).map_err(|_| FrontendError::NotText(opts.filename.clone()))?;
    // `.dockerignore`: `<filename>.dockerignore` beside the spec wins over the context's.
    let context_ignore = match beside {
        Some(_) => None,
        None => context_side?,
    };
    let excludes = context_excludes(beside.as_deref(), context_ignore.as_deref());
    Ok(Inputs {
        spec,
        excludes,
        vertex,
        lock,
    })
}

#[cfg(test)]
mod tests;
