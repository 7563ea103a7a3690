//! `torchkit build`: build the spec's image on a BuildKit daemon, with buildctl/buildx flags.
//!
//! Two layers, as in ripgrep's `LowArgs` → `HiArgs`: [`prepare`] turns the flags into
//! options (spec, resolution, exporters, secrets, compile options) with no network IO, and
//! [`build`] is the one async call that connects, attaches the session and runs the build.
//!
//! - **Driver mode** (default): in-client gateway. `Control.Solve{Frontend: ""}` and, on the
//!   same connection, [`crate::frontend::solve::build_spec`] — the same routine the
//!   `# syntax=` frontend runs — pins the base, compiles, solves and returns the image config.
//! - **Frontend mode** (`--frontend IMAGE`): `gateway.v0` with `source=IMAGE`, like
//!   `buildctl build --frontend gateway.v0 --opt source=IMAGE --local context=.
//!   --local dockerfile=.`. The frontend gets `filename=<spec file name>` and these options,
//!   named as a Dockerfile build would name them (so `docker buildx build --build-arg …`
//!   means the same):
//!
//!   | option | from |
//!   |---|---|
//!   | `target` | `--target` |
//!   | `no-cache` | `--no-cache` (empty value) / `--no-cache-filter` (comma list) |
//!   | `label:<k>` | `--label k=v` |
//!   | `context:<name>` | `--build-context name=docker-image://image` (replaces the base) |
//!   | `cache-imports` | `--import-cache`, JSON `[{"Type":…,"Attrs":{…}}]` as buildctl sends it |
//!   | `build-arg:SOURCE_DATE_EPOCH` | the environment (also sent in driver mode: the daemon stamps exporters with it) |
//!   | `build-arg:TORCHKIT_PROFILE`, `…_CUDA`, `…_FLAVOR`, `…_DRIVER`, `…_GPU` | `--profile`, `--cuda`, `--flavor`, `--driver`/`--detect`, `--gpu`/`--detect` |
//!   | `build-arg:TORCHKIT_CA_BUNDLE=1` / `=0` | `--ca-bundle` (the secret `torchkit-ca` is in the session) / no CA secret; neither with `--secret id=torchkit-ca` (the frontend mounts it optionally) |
//!   | `build-arg:TORCHKIT_LOCKED=1` | `--locked` (the frontend installs `torchkit.lock` when it is current either way) |
//!
//! The session always carries the locals `context` (the context directory, `.dockerignore`
//! applied) and `dockerfile` (the spec's directory), the `--secret`s, the CA bundle secret,
//! registry credentials and the client-side exporters.
//!
//! stdout carries only the image digest (`containerimage.digest`), when the exporter returns
//! one; progress, warnings and errors go to stderr.
#![allow(clippy::print_stdout)]

use std::collections::BTreeMap;
use std::path::{Path, PathBuf};
use std::process::ExitCode;
use std::sync::{Arc, Mutex};

use anyhow::Context as _;

use crate::buildkit::client::{GatewayFrontend, SolveOptions, IMAGE_DIGEST_KEY};
use crate::buildkit::output::{self, CacheDirection, CacheEntry};
use crate::buildkit::progress::ProgressMode;
use crate::buildkit::session::{
    local_store_id, parent_dir, parse_secret_spec, read_context_excludes, resolve_tag,
    update_index, Attachables, LocalStore, SecretSource, CACHE_MANIFEST_KEY,
};
use crate::buildkit::token;
use crate::buildkit::transport::{probe_not_buildkit, Address};
use crate::buildkit::{BuildError, BuildOptions, Client, ConnectOptions, TlsOptions};
use crate::cli::common::{self, Loaded, SpecArgs};
use crate::cli::{hinted, Hinted};
use crate::error::Hint;
use crate::frontend::options;
use crate::frontend::solve::{build_spec, SolveError};
use crate::plan::{CaSecret, CompileOptions, NoCache, PinError, CA_SECRET_ID};
use crate::vocab::{GpuList, Step};

/// Flags of `torchkit build`.
#[derive(Debug, clap::Args)]
pub struct Args {
    #[command(flatten)]
    spec: SpecArgs,
    /// The build context directory (default: the spec's directory).
    #[arg(long, value_name = "DIR")]
    context: Option<PathBuf>,
    /// BuildKit address, as buildctl's: `unix:///path`, `tcp://host:port`, `docker://[/path]`
    /// (dockerd's BuildKit), `docker-container://NAME`, `podman-container://NAME`,
    /// `nerdctl-container://NAME`, `kube-pod://POD`, `ssh://[USER@]HOST[:PORT][/SOCKET]`.
    /// Default: --builder, BUILDKIT_HOST, BUILDX_BUILDER, the builder `docker buildx use`
    /// chose, DOCKER_HOST, the Docker context, /var/run/docker.sock.
    #[arg(long, value_name = "ADDR", conflicts_with = "builder")]
    addr: Option<String>,
    /// A buildx builder (`docker buildx ls`): its daemon, reached as buildx does
    /// (docker, docker-container, remote and kubernetes drivers). Default: BUILDX_BUILDER.
    #[arg(long, value_name = "NAME")]
    builder: Option<String>,
    /// CA certificate (PEM) that signed the daemon's TLS certificate (`tcp://`).
    #[arg(long, value_name = "FILE")]
    tlscacert: Option<PathBuf>,
    /// Client certificate (PEM) for mutual TLS.
    #[arg(long, value_name = "FILE")]
    tlscert: Option<PathBuf>,
    /// Client key (PEM) for mutual TLS.
    #[arg(long, value_name = "FILE")]
    tlskey: Option<PathBuf>,
    /// Server name to verify the daemon's certificate against.
    #[arg(long, value_name = "NAME")]
    tlsservername: Option<String>,
    /// Output (repeatable): `type=image,name=…[,push=true]`, `type=docker|oci|tar,dest=FILE`,
    /// `type=local,dest=DIR`, `DIR`, or `-` (tar to stdout).
    #[arg(short = 'o', long = "output", value_name = "SPEC")]
    outputs: Vec<String>,
    /// Image name (repeatable): shorthand for `--output type=image,name=NAME`, which also
    /// stores the image in dockerd's image store.
    #[arg(short = 't', long = "tag", value_name = "NAME")]
    tags: Vec<String>,
    /// Push the image outputs (adds `push=true` to them, as buildx does).
    #[arg(long)]
    push: bool,
    /// Load the image into Docker's images, as buildx's `--load` does: with no `--tag`, an
    /// untagged image (its ID is printed). On another builder than dockerd the image comes
    /// back as a docker archive and is loaded into the Docker engine (DOCKER_HOST, …).
    #[arg(long)]
    load: bool,
    /// Progress output: auto, tty, plain, rawjson or quiet.
    #[arg(
        long,
        env = "BUILDKIT_PROGRESS",
        default_value = "auto",
        value_name = "MODE"
    )]
    progress: ProgressMode,
    /// Build secret (repeatable): `id=ID,src=FILE` or `id=ID,env=VAR`.
    #[arg(long = "secret", value_name = "SPEC")]
    secrets: Vec<String>,
    /// CA bundle for downloads inside the build (apt, pip), passed as the secret
    /// `torchkit-ca`; it is mounted only while those steps run and never lands in a layer.
    #[arg(long, value_name = "FILE")]
    ca_bundle: Option<PathBuf>,
    /// Cache source (repeatable): `type=registry,ref=…`, `type=local,src=DIR`, …
    #[arg(long = "import-cache", value_name = "SPEC")]
    import_cache: Vec<String>,
    /// Cache destination (repeatable): `type=registry,ref=…,mode=max`, `type=inline`, …
    #[arg(long = "export-cache", value_name = "SPEC")]
    export_cache: Vec<String>,
    /// Re-run every step.
    #[arg(long)]
    no_cache: bool,
    /// Re-run these steps (comma-separated step names: apt, pip, requirements, user, copy, …).
    #[arg(long, value_delimiter = ',', value_name = "STEPS", value_parser = common::value::<Step>)]
    no_cache_filter: Vec<Step>,
    /// Image label (repeatable), `KEY=VALUE`; overrides the spec's labels.
    #[arg(long = "label", value_name = "KEY=VALUE")]
    labels: Vec<String>,
    /// Stop after this step.
    #[arg(long, value_name = "STEP", value_parser = common::value::<Step>)]
    target: Option<Step>,
    /// Build on another image than the resolved base (repeatable), as buildx replaces a
    /// `FROM`: `--build-context pytorch/pytorch:2.8.0-cuda12.8-cudnn9-runtime=docker-image://mirror.example/pytorch:2.8.0`.
    #[arg(long = "build-context", value_name = "NAME=docker-image://IMAGE")]
    build_contexts: Vec<String>,
    /// Write the exporters' response (digests, descriptor) as JSON to this file.
    #[arg(long, value_name = "FILE")]
    metadata_file: Option<PathBuf>,
    /// Write the verify stage's report (every check: name, ok, expected, found, fix) as
    /// JSON to this file, also when a check fails.
    #[arg(long, value_name = "FILE")]
    verify_report: Option<PathBuf>,
    /// Build through this frontend image (`gateway.v0`), as a `# syntax=` line would.
    #[arg(long, value_name = "IMAGE")]
    frontend: Option<String>,
    /// Fail unless torchkit.lock exists and matches the spec (a current lock is used
    /// without this flag too; a stale one is then ignored with a warning).
    #[arg(long)]
    locked: bool,
}

/// Everything a build needs, derived from the flags without touching the network.
struct Prepared {
    loaded: Loaded,
    connect: ConnectOptions,
    options: BuildOptions,
    attachables: Attachables,
    compile: CompileOptions,
    cache_imports: Vec<CacheEntry>,
    frontend: Option<GatewayFrontend>,
    metadata_file: Option<PathBuf>,
    verify_report: Option<PathBuf>,
    /// `type=local` cache exports: the directory and the `index.json` tag to update.
    local_cache_exports: Vec<(PathBuf, String)>,
    /// `--load`: the daemon must be dockerd.
    load: bool,
}

/// Run `torchkit build`.
pub fn run(args: Args) -> anyhow::Result<ExitCode> {
    let epoch = std::env::var("SOURCE_DATE_EPOCH").ok();
    let prepared = prepare(args, epoch.as_deref())?;
    let rt = tokio::runtime::Runtime::new().context("starting the async runtime")?;
    let result = rt.block_on(build(prepared));
    rt.shutdown_timeout(std::time::Duration::from_secs(2));
    match result {
        Ok(()) => Ok(ExitCode::SUCCESS),
        Err(f) => f.into_exit(),
    }
}

pub(crate) enum Failed {
    /// Ctrl-C, SIGTERM or SIGHUP: exit 130, 143 or 129.
    Cancelled(anyhow::Error, u8),
    Error(anyhow::Error),
}

impl Failed {
    /// How a command ends on this failure: a cancel (Ctrl-C, SIGTERM, SIGHUP) is reported
    /// here and exits 130, 143 or 129, as a shell reports a command the signal ended; any
    /// other error goes to `cli::main` (exit 1).
    pub(crate) fn into_exit(self) -> anyhow::Result<ExitCode> {
        match self {
            Failed::Cancelled(e, code) => {
                crate::cli::report(&e);
                Ok(ExitCode::from(code))
            }
            Failed::Error(e) => Err(e),
        }
    }
}

impl From<anyhow::Error> for Failed {
    fn from(e: anyhow::Error) -> Self {
        Failed::Error(e)
    }
}

fn flag_error(message: String, hint: &str) -> anyhow::Error {
    anyhow::Error::new(Hinted::new(message, Some(hint.to_string())))
}

/// Flags → options. Reads the spec, `.dockerignore` and checks local files; no network.
fn prepare(args: Args, source_date_epoch: Option<&str>) -> anyhow::Result<Prepared> {
    let loaded = common::load(&args.spec)?;
    // What the resolver could not confirm, before the build starts (with --frontend the
    // frontend resolves again and reports them through the daemon's warnings).
    if args.frontend.is_none() {
        for w in &loaded.resolution.warnings {
            crate::cli::warn(w);
        }
    }
    let spec_dir = parent_dir(&loaded.path);
    let context = args.context.clone().unwrap_or_else(|| spec_dir.clone());
    if !context.is_dir() {
        return Err(flag_error(
            format!("the build context {} is not a directory", context.display()),
            "pass --context DIR, or leave it out to use the spec's directory",
        ));
    }
    check_context_sources(&loaded.spec, &context).map_err(|e| common::spec_error(&e))?;
    let context_excludes = read_context_excludes(&loaded.path, &context).map_err(hinted)?;
    // With --frontend the frontend reads torchkit.lock itself (TORCHKIT_LOCKED=1 below);
    // checking here too fails early, before anything is sent.
    let lock = crate::cli::lock::locked_set_for_build(&loaded, &context, args.locked)?;

    // Outputs.
    let mut exporters = output::exporters(&args.outputs, &args.tags).map_err(hinted)?;
    if args.push {
        let mut any = false;
        for e in exporters.iter_mut().filter(|e| e.kind == "image") {
            e.attrs.insert("push".into(), "true".into());
            any = true;
        }
        if !any {
            return Err(flag_error(
                "--push needs an image to push".into(),
                "add --tag REGISTRY/REPO:TAG (or --output type=image,name=REGISTRY/REPO:TAG)",
            ));
        }
    }
    if args.load && !exporters.iter().any(|e| e.kind == "image") {
        exporters.push(output::Exporter {
            kind: "image".into(),
            attrs: BTreeMap::new(),
            dest: output::Destination::None,
        });
    }
    check_destinations(&exporters, args.metadata_file.as_deref())?;
    if let Some(r) = &args.verify_report {
        if args.frontend.is_some() {
            return Err(flag_error(
                "--verify-report reads the report in torchkit's own build, and --frontend builds in a frontend image".into(),
                "leave out --frontend (the same compile runs in the driver), or export the stage: --target verify -o type=local,dest=DIR",
            ));
        }
        check_file_flag("--verify-report", r)?;
    }
    if exporters.is_empty() {
        crate::cli::warn(
            "No output specified: the result stays in the build cache only. \
             Use --tag NAME to store the image (and `docker run` it), --push to push it, \
             or --output type=docker|oci|tar|local,dest=… to write it here",
        );
    }
    let cache_imports = args
        .import_cache
        .iter()
        .map(|c| output::parse_cache(c, CacheDirection::Import))
        .collect::<Result<Vec<_>, _>>()
        .map_err(hinted)?;
    let cache_exports = args
        .export_cache
        .iter()
        .map(|c| output::parse_cache(c, CacheDirection::Export))
        .collect::<Result<Vec<_>, _>>()
        .map_err(hinted)?;

    // Session: locals and secrets, checked now so a typo fails before the daemon is asked.
    // The context's server sends only what the plan reads (and `.dockerignore`, which a
    // frontend reads itself), whatever the daemon asks for.
    let reads = crate::plan::context_paths(
        &loaded.spec,
        &crate::plan::CompileOptions {
            target: args.target,
            ..loaded.compile_options()
        },
    );
    let mut attachables = match reads {
        Some(mut paths) => {
            paths.push(".dockerignore".into());
            Attachables::new().with_local_only("context", &context, paths)
        }
        None => Attachables::new().with_local("context", &context),
    }
    .with_local("dockerfile", &spec_dir);
    let (cache_imports, local_cache_exports, with_stores) =
        local_cache_stores(cache_imports, &cache_exports, attachables)?;
    attachables = with_stores;
    let mut secret_ids = Vec::new();
    for s in &args.secrets {
        let (id, source) = parse_secret_spec(s).map_err(hinted)?;
        check_secret(&id, &source)?;
        secret_ids.push(id.clone());
        attachables = attachables.with_secret(id, source);
    }
    check_spec_secrets(&loaded.spec, &secret_ids)?;
    if let Some(ca) = &args.ca_bundle {
        if secret_ids.iter().any(|i| i == CA_SECRET_ID) {
            return Err(flag_error(
                format!("--ca-bundle and --secret id={CA_SECRET_ID} both set the CA bundle"),
                "keep one of them",
            ));
        }
        let source = SecretSource::File(ca.clone());
        check_secret(CA_SECRET_ID, &source).map_err(|_| {
            flag_error(
                format!("--ca-bundle {}: cannot read the file", ca.display()),
                "pass a readable PEM bundle, e.g. --ca-bundle /etc/ssl/certs/ca-certificates.crt",
            )
        })?;
        attachables = attachables.with_secret(CA_SECRET_ID, source);
    }

    let mut labels = BTreeMap::new();
    for l in &args.labels {
        let Some((k, v)) = l.split_once('=').filter(|(k, _)| !k.is_empty()) else {
            return Err(flag_error(
                format!("invalid --label `{l}`: expected KEY=VALUE"),
                "for example --label org.opencontainers.image.version=1.0",
            ));
        };
        labels.insert(k.to_string(), v.to_string());
    }
    let source_date_epoch = match source_date_epoch.filter(|s| !s.is_empty()) {
        None => None,
        Some(s) => Some(
            s.trim()
                .parse::<i64>()
                .ok()
                .filter(|n| *n >= 0)
                .ok_or_else(|| {
                    flag_error(
                        format!("SOURCE_DATE_EPOCH={s} is not a number of seconds since 1970"),
                        "set it to a Unix time, e.g. SOURCE_DATE_EPOCH=$(git log -1 --format=%ct)",
                    )
                })?,
        ),
    };
    let no_cache = NoCache::from_flags(args.no_cache, &args.no_cache_filter);
    // Checked here either way; with --frontend the frontend applies them (and warns).
    let named_contexts = build_contexts(&args.build_contexts)?;
    let base_source = match &args.frontend {
        None => base_source(&loaded, &named_contexts)?,
        Some(_) => None,
    };

    let mut frontend_attrs = BTreeMap::new();
    if let Some(e) = source_date_epoch {
        frontend_attrs.insert("build-arg:SOURCE_DATE_EPOCH".to_string(), e.to_string());
    }
    let frontend = args.frontend.as_ref().map(|source| GatewayFrontend {
        source: source.clone(),
        attrs: frontend_options(&args, &loaded, &labels, &no_cache, &cache_imports),
    });

    let options = BuildOptions {
        exporters,
        cache_imports: cache_imports.clone(),
        cache_exports,
        frontend_attrs,
        shared_key: shared_key(&context),
        progress: args.progress,
        cancel_on_ctrl_c: true,
        ..BuildOptions::default()
    };
    let compile = CompileOptions {
        build_token: Some(token::random_token()),
        context_excludes,
        ca_secret: driver_ca(args.ca_bundle.is_some(), &secret_ids),
        no_cache,
        labels,
        target: args.target,
        source_date_epoch,
        lock,
        base_source,
        ..loaded.compile_options()
    };
    if args.frontend.is_none() {
        if let Some(reason) = crate::plan::verify::skipped(&loaded.spec, &compile) {
            crate::cli::warn(&format!("[torchkit verify] skipped: {reason}"));
        }
    }
    Ok(Prepared {
        loaded,
        connect: ConnectOptions {
            addr: args.addr.clone(),
            builder: args.builder.clone(),
            tls: TlsOptions {
                ca_cert: args.tlscacert.clone(),
                cert: args.tlscert.clone(),
                key: args.tlskey.clone(),
                server_name: args.tlsservername.clone(),
            },
        },
        options,
        attachables,
        compile,
        cache_imports,
        frontend,
        metadata_file: args.metadata_file.clone(),
        verify_report: args.verify_report.clone(),
        local_cache_exports,
        load: args.load,
    })
}

/// `type=local` caches, as buildctl handles them (`client/solve.go` `parseCacheOptions`):
/// each directory is served as a content store with the id `local:<dir>` (`dest` or `src`
/// exactly as sent); an import without `digest=` gets the digest that `index.json` records
/// under `tag` (default `latest`), and is dropped with a warning when there is none or
/// the blob is missing, so a first build with an empty cache directory still runs.
/// Returns the imports to send, the export directories with their tags (for
/// [`update_local_cache_indexes`]) and the session services.
#[allow(clippy::type_complexity)]
fn local_cache_stores(
    imports: Vec<CacheEntry>,
    exports: &[CacheEntry],
    mut attachables: Attachables,
) -> anyhow::Result<(Vec<CacheEntry>, Vec<(PathBuf, String)>, Attachables)> {
    let mut stores: BTreeMap<String, LocalStore> = BTreeMap::new();
    let mut local_exports = Vec::new();
    for e in exports.iter().filter(|e| e.kind == "local") {
        let dest = e.attrs.get("dest").cloned().unwrap_or_default();
        let store = LocalStore::open(&dest).map_err(|err| {
            flag_error(
                format!("--export-cache type=local,dest={dest}: cannot create the cache directory: {err}"),
                "pass a directory you can write to",
            )
        })?;
        stores.insert(local_store_id(&dest), store);
        let tag = e
            .attrs
            .get("tag")
            .cloned()
            .unwrap_or_else(|| "latest".into());
        local_exports.push((PathBuf::from(dest), tag));
    }
    let mut kept = Vec::new();
    for mut i in imports {
        if i.kind != "local" {
            kept.push(i);
            continue;
        }
        let src = i.attrs.get("src").cloned().unwrap_or_default();
        let digest = match i.attrs.get("digest").filter(|d| !d.is_empty()) {
            Some(d) => d.clone(),
            None => {
                let tag = i
                    .attrs
                    .get("tag")
                    .cloned()
                    .unwrap_or_else(|| "latest".into());
                match resolve_tag(Path::new(&src), &tag) {
                    Ok(Some(d)) => d,
                    Ok(None) => {
                        crate::cli::warn(&format!(
                            "local cache import at {src} skipped: no index.json entry tagged {tag:?}"
                        ));
                        continue;
                    }
                    Err(err) => {
                        crate::cli::warn(&format!(
                            "local cache import at {src} skipped: cannot read index.json: {err}"
                        ));
                        continue;
                    }
                }
            }
        };
        let id = local_store_id(&src);
        let store = match stores.get(&id) {
            Some(s) => s.clone(),
            None => match LocalStore::open(&src) {
                Ok(s) => s,
                Err(err) => {
                    crate::cli::warn(&format!("local cache import at {src} skipped: {err}"));
                    continue;
                }
            },
        };
        if let Err(status) = store.info(&digest) {
            crate::cli::warn(&format!(
                "local cache import at {src} skipped: digest {digest} unavailable: {}",
                status.message()
            ));
            continue;
        }
        i.attrs.insert("digest".into(), digest);
        stores.insert(id, store);
        kept.push(i);
    }
    for (id, store) in stores {
        attachables = attachables.with_content_store(id, store);
    }
    Ok((kept, local_exports, attachables))
}

/// After a successful build: records the daemon's cache manifest (`cache.manifest` in
/// the response) in each local cache directory's `index.json`, as buildctl does. A
/// directory that does not hold that manifest (another cache export's manifest won the
/// response key) is left alone with a warning.
fn update_local_cache_indexes(
    exports: &[(PathBuf, String)],
    response: &BTreeMap<String, String>,
) -> anyhow::Result<()> {
    if exports.is_empty() {
        return Ok(());
    }
    let Some(desc) = response.get(CACHE_MANIFEST_KEY) else {
        crate::cli::warn(
            "the daemon returned no cache manifest: index.json of the local cache was not updated",
        );
        return Ok(());
    };
    let desc: serde_json::Value = serde_json::from_str(desc)
        .with_context(|| format!("the daemon's {CACHE_MANIFEST_KEY} is not JSON"))?;
    let digest = desc["digest"].as_str().unwrap_or_default();
    for (dir, tag) in exports {
        let present = LocalStore::open(dir)
            .ok()
            .is_some_and(|s| s.info(digest).is_ok());
        if !present {
            crate::cli::warn(&format!(
                "local cache at {} does not hold the cache manifest {digest}: index.json not updated",
                dir.display()
            ));
            continue;
        }
        update_index(dir, &desc, tag)
            .with_context(|| format!("cannot update {}", dir.join("index.json").display()))?;
    }
    Ok(())
}

/// Every secret the spec mounts is given, and every secret given is mounted by some step
/// (a `--secret` nothing uses would be silently ignored): both checked before the build.
pub(crate) fn check_spec_secrets(spec: &crate::spec::Spec, given: &[String]) -> anyhow::Result<()> {
    for (key, list) in [
        ("python.secrets", &spec.python.secrets),
        ("system.secrets", &spec.system.secrets),
    ] {
        if let Some(m) = list.iter().find(|m| !given.contains(&m.id)) {
            return Err(common::spec_error(&spec.error_at(
                key,
                format!("the spec mounts the secret `{}` and no --secret id={} was given", m.id, m.id),
                Some(format!(
                    "pass it: --secret id={},src=FILE (or env=VAR); it is mounted at {} only while the step runs",
                    m.id, m.dest
                )),
            )));
        }
    }
    let used = |id: &String| {
        id == CA_SECRET_ID
            || spec
                .python
                .secrets
                .iter()
                .chain(&spec.system.secrets)
                .any(|m| &m.id == id)
    };
    if let Some(id) = given.iter().find(|id| !used(id)) {
        return Err(flag_error(
            format!("--secret id={id}: no step of this spec mounts it"),
            &format!(
                "list it where it is needed: [python] secrets = [\"{id}\"] (pip steps) or [system] secrets = [\"{id}\"] (apt), optionally as {{ id = \"{id}\", dest = \"/root/.netrc\" }}"
            ),
        ));
    }
    Ok(())
}

/// A secret must be readable now; the daemon would only ask for it mid-build.
pub(crate) fn check_secret(id: &str, source: &SecretSource) -> anyhow::Result<()> {
    match source {
        SecretSource::File(p) => match std::fs::File::open(p).and_then(|f| f.metadata()) {
            Ok(m) if m.is_file() => Ok(()),
            Ok(_) => Err(flag_error(
                format!("secret `{id}`: {} is not a regular file", p.display()),
                "point src= at a file",
            )),
            Err(e) => Err(flag_error(
                format!("secret `{id}`: cannot read {}: {e}", p.display()),
                &format!("check the path in --secret id={id},src=<file>"),
            )),
        },
        SecretSource::Env(var) => {
            if std::env::var_os(var).is_some() {
                Ok(())
            } else {
                Err(flag_error(
                    format!("secret `{id}`: the environment variable {var} is not set"),
                    &format!("export {var}, or use --secret id={id},src=<file>"),
                ))
            }
        }
    }
}

/// `--build-context NAME=docker-image://IMAGE` flags → name → image, checked as the
/// frontend checks its `context:` options.
fn build_contexts(flags: &[String]) -> anyhow::Result<BTreeMap<String, String>> {
    let mut opts = BTreeMap::new();
    for f in flags {
        let Some((name, value)) = f.split_once('=').filter(|(n, _)| !n.is_empty()) else {
            return Err(flag_error(
                format!("invalid --build-context `{f}`: expected NAME=docker-image://IMAGE"),
                "for example --build-context pytorch/pytorch:2.8.0-cuda12.8-cudnn9-runtime=docker-image://mirror.example/pytorch:2.8.0",
            ));
        };
        opts.insert(format!("{}{name}", options::OPT_CONTEXT), value.to_string());
    }
    options::named_contexts(&opts).map_err(hinted)
}

/// The image a `--build-context` puts in place of the base, warning about the ones that
/// name nothing in this build.
fn base_source(
    loaded: &Loaded,
    named_contexts: &BTreeMap<String, String>,
) -> anyhow::Result<Option<String>> {
    if named_contexts.is_empty() {
        return Ok(None);
    }
    let names =
        crate::plan::base_context_names(&loaded.spec, &loaded.resolution).map_err(hinted)?;
    let (source, unused) = options::base_source(named_contexts, &names);
    for w in unused {
        crate::cli::warn(&w);
    }
    Ok(source)
}

/// How the driver's steps get the CA secret: required when `--ca-bundle` or `--secret
/// id=torchkit-ca` gives it (the session has it: a build without it cannot happen), else
/// not mounted.
fn driver_ca(ca_bundle: bool, secret_ids: &[String]) -> CaSecret {
    if ca_bundle || secret_ids.iter().any(|i| i == CA_SECRET_ID) {
        CaSecret::Required
    } else {
        CaSecret::None
    }
}

/// `TORCHKIT_CA_BUNDLE` for `--frontend`: `1` with `--ca-bundle` (required, as in the
/// driver); `0` when the session has no CA secret, so that the frontend's graph is the
/// driver's; unset with `--secret id=torchkit-ca`, which the frontend then mounts as it
/// does for `docker build` (optional, used as it is there).
fn frontend_ca_arg(ca_bundle: bool, secret_ids: &[String]) -> Option<&'static str> {
    if ca_bundle {
        Some("1")
    } else if secret_ids.iter().any(|i| i == CA_SECRET_ID) {
        None
    } else {
        Some("0")
    }
}

/// The frontend options of `--frontend` mode (see the module docs).
fn frontend_options(
    args: &Args,
    loaded: &Loaded,
    labels: &BTreeMap<String, String>,
    no_cache: &NoCache,
    cache_imports: &[CacheEntry],
) -> BTreeMap<String, String> {
    let mut o = BTreeMap::new();
    let filename = loaded.path.file_name().map_or_else(
        || "torchkit.toml".to_string(),
        |n| n.to_string_lossy().into_owned(),
    );
    o.insert("filename".to_string(), filename);
    if let Some(t) = args.target {
        o.insert("target".into(), t.to_string());
    }
    match no_cache {
        NoCache::Off => {}
        NoCache::All => {
            o.insert("no-cache".into(), String::new());
        }
        NoCache::Steps(s) => {
            let names: Vec<&str> = s.iter().map(|s| s.as_str()).collect();
            o.insert("no-cache".into(), names.join(","));
        }
    }
    for (k, v) in labels {
        o.insert(format!("label:{k}"), v.clone());
    }
    for c in &args.build_contexts {
        if let Some((name, value)) = c.split_once('=') {
            o.insert(format!("{}{name}", options::OPT_CONTEXT), value.to_string());
        }
    }
    if !cache_imports.is_empty() {
        let list: Vec<serde_json::Value> = cache_imports
            .iter()
            .map(|c| serde_json::json!({"Type": c.kind, "Attrs": c.attrs}))
            .collect();
        o.insert(
            "cache-imports".into(),
            serde_json::Value::Array(list).to_string(),
        );
    }
    let mut arg = |k: &str, v: String| {
        o.insert(format!("build-arg:{k}"), v);
    };
    // The overrides as build-args; driver and GPUs after --detect, since the frontend
    // cannot probe this host.
    let mut overrides = args.spec.overrides();
    if loaded.request.driver != loaded.spec.target.driver {
        overrides.driver = loaded.request.driver.clone();
    }
    if loaded.request.gpus != loaded.spec.target.gpus && !loaded.request.gpus.is_empty() {
        overrides.gpus = Some(GpuList(loaded.request.gpus.clone()));
    }
    for (k, v) in overrides.to_build_args() {
        arg(&k, v);
    }
    let secret_ids: Vec<String> = args
        .secrets
        .iter()
        .filter_map(|s| parse_secret_spec(s).ok().map(|(id, _)| id))
        .collect();
    if let Some(v) = frontend_ca_arg(args.ca_bundle.is_some(), &secret_ids) {
        arg(options::ARG_CA_BUNDLE, v.into());
    }
    if args.locked {
        arg("TORCHKIT_LOCKED", "1".into());
    }
    o
}

/// buildx keys incremental context transfer by directory; so do we.
fn shared_key(context: &Path) -> String {
    use sha2::Digest as _;
    let abs = std::fs::canonicalize(context).unwrap_or_else(|_| context.to_path_buf());
    let digest = sha2::Sha256::digest(abs.as_os_str().as_encoded_bytes());
    format!("torchkit-{}", &hex::encode(digest)[..16])
}

/// Connect, attach the session, build, print the digest, write the metadata file.
async fn build(p: Prepared) -> Result<(), Failed> {
    let Prepared {
        loaded,
        connect,
        mut options,
        attachables,
        compile,
        cache_imports,
        frontend,
        metadata_file,
        verify_report,
        local_cache_exports,
        load,
    } = p;
    let client = Client::connect(&connect)
        .await
        .map_err(|e| build_error(BuildError::from(e), None))?;
    let addr = client.address().to_string();
    let dockerd = options.exporters.iter().any(|e| e.kind == "image") && is_dockerd(&client).await;
    // `--load` on another builder than dockerd (a buildx docker-container builder, a pod,
    // a remote buildkitd): the image comes back as a docker archive, loaded into the Docker
    // engine afterwards, as buildx does for those drivers.
    let load_into = if load && !dockerd {
        Some(load_through_archive(&addr, &mut options.exporters)?)
    } else {
        None
    };
    if dockerd {
        // As buildx's docker driver does: dockerd's `moby` exporter stores the image under
        // its normalised name in Docker's image store (so `docker run` finds it) and still
        // pushes with push=true; plain `image` would leave it invisible to Docker.
        for e in options.exporters.iter_mut().filter(|e| e.kind == "image") {
            e.kind = "moby".into();
        }
    }
    // `push=true` through the Docker socket: the classic store's `moby` exporter ignores
    // it, so dockerd pushes afterwards through its API, as buildx's docker driver does
    // (and `docker build --push`), whichever store it uses.
    let mut api_push = Vec::new();
    if let Address::Docker(socket) = client.address() {
        classic_store_check(socket, &options.exporters).await?;
        for e in options.exporters.iter_mut().filter(|e| e.kind == "moby") {
            if e.attrs.get("push").map(String::as_str) == Some("true") {
                e.attrs.remove("push");
                let names = e.attrs.get("name").cloned().unwrap_or_default();
                api_push.extend(
                    names
                        .split(',')
                        .filter(|n| !n.is_empty())
                        .map(|n| (socket.clone(), n.to_owned())),
                );
            }
        }
    }
    // GPUs for the verify stage: BuildKit v0.20+ attaches CDI devices only when the build
    // is granted them (`--allow device`, as buildx). Older daemons know no such entitlement;
    // for them the compile refuses the devices, naming the release that has them.
    // dockerd (measured: 28.5) cannot grant the entitlement ("granting entitlement device is
    // not allowed by build daemon configuration"): there BuildKit attaches the devices that
    // need none (auto-allowed in their CDI spec, or its own NVIDIA device).
    let devices = crate::plan::verify::devices(&loaded.spec, &compile);
    let through_dockerd = matches!(client.address(), Address::Docker(_));
    if !devices.is_empty() && !through_dockerd && buildkit_has_cdi(&client).await {
        options
            .entitlements
            .extend(devices.iter().map(|d| format!("device={d}")));
    }
    let quiet = options.progress == ProgressMode::Quiet;
    options.attach(attachables).map_err(hinted)?;

    let report: Arc<Mutex<Option<crate::plan::Report>>> = Arc::default();
    let result = match frontend {
        Some(f) => client
            .build_frontend(options, f)
            .await
            .map(|o| (o.build_ref, o.exporter_response)),
        None => {
            let Loaded {
                spec, resolution, ..
            } = loaded;
            let solve = SolveOptions {
                cache_imports,
                ..SolveOptions::default()
            };
            let slot = Arc::clone(&report);
            client
                .build(options, move |bridge| async move {
                    build_spec(&bridge, &spec, &resolution, compile, solve, Some(&slot)).await
                })
                .await
                .map(|o| (o.build_ref, o.exporter_response))
        }
    };
    // The report, also when a check failed (before any error returns).
    if let Some(path) = &verify_report {
        let r = report.lock().ok().and_then(|mut r| r.take());
        match r {
            Some(r) => write_json_file(
                "--verify-report",
                path,
                &serde_json::to_value(&r).map_err(anyhow::Error::from)?,
            )?,
            None if result.is_ok() => crate::cli::warn(&format!(
                "--verify-report {}: the build ran no verify stage, so nothing was written",
                path.display()
            )),
            None => {}
        }
    }
    let (build_ref, response) = match result {
        Ok(r) => r,
        Err(e @ BuildError::Cancelled(_)) => {
            let code = u8::try_from(e.exit_code()).unwrap_or(1);
            return Err(Failed::Cancelled(build_error(e, None), code));
        }
        // `-o type=tar,dest=-`: the archive goes to stdout, and a failed write there ends
        // the command as every other write to stdout does (141 on a closed pipe).
        Err(BuildError::Export(crate::buildkit::session::ExportError::Commit { dest, source }))
            if dest.as_os_str() == "-" =>
        {
            return Err(Failed::Error(crate::cli::stdout_error(source)));
        }
        Err(e) => {
            // A broken connection surfaces as whatever the pending call saw ("transport
            // error", Unavailable, …): ask the daemon whether it is still there.
            let gone = transport_code(&e)
                .is_some_and(|c| matches!(c, tonic::Code::Unavailable | tonic::Code::Cancelled))
                || !daemon_answers(&client).await;
            if gone {
                // Something answered the dial: say what, if it is not BuildKit.
                if let Some(not_buildkit) = probe_not_buildkit(client.address(), &connect.tls).await
                {
                    return Err(Failed::Error(hinted(not_buildkit)));
                }
            }
            return Err(Failed::Error(build_error(e, gone.then_some(addr.as_str()))));
        }
    };

    let mut response = response;
    if !api_push.is_empty() {
        let auth = crate::credentials::DockerAuth::from_env();
        for (socket, name) in &api_push {
            if !quiet {
                eprintln!("pushing {name} through the Docker API");
            }
            let pushed = crate::buildkit::docker_api::push(socket, name, &auth)
                .await
                .map_err(|e| Failed::Error(hinted(e)))?;
            // What the registry has: on the classic store the exporter's digest is the
            // image ID (the config's digest), not the manifest's.
            if let Some(d) = pushed {
                response.insert(IMAGE_DIGEST_KEY.to_string(), d);
            }
        }
    }
    if let Some((engine, _dir, tar)) = &load_into {
        let names = crate::buildkit::docker_api::load(engine, tar)
            .await
            .map_err(|e| {
                Failed::Error(anyhow::Error::new(Hinted::new(
                    format!(
                        "loading the image into Docker at {}: {e}",
                        engine.display()
                    ),
                    Some("the build itself succeeded; `-o type=docker,dest=FILE` writes the archive for `docker load -i FILE`".into()),
                )))
            })?;
        if !quiet {
            for n in &names {
                eprintln!("Loaded image: {n}");
            }
        }
    }
    update_local_cache_indexes(&local_cache_exports, &response)?;
    if let Some(path) = &metadata_file {
        write_metadata(path, &build_ref, &response)?;
    }
    if let Some(digest) = response.get(IMAGE_DIGEST_KEY) {
        crate::cli::write_stdout(format!("{digest}\n").as_bytes())?;
    }
    Ok(())
}

/// `--load` through a builder that is not dockerd: the image exporters become one `docker`
/// archive exporter into a private temporary file (an exporter that pushes stays as well),
/// and the Docker engine to load it into is found as the Docker CLI finds it. Returns the
/// engine's socket, the temporary directory (removed when dropped) and the archive path.
fn load_through_archive(
    addr: &str,
    exporters: &mut Vec<crate::buildkit::output::Exporter>,
) -> Result<(PathBuf, tempfile::TempDir, PathBuf), Failed> {
    let engine = Address::docker_engine(
        |k| std::env::var(k).ok(),
        |p| p.exists(),
        |p| std::fs::read_to_string(p).ok(),
    )
    .map_err(|e| Failed::Error(hinted(e)))?;
    let Some((Address::Docker(socket), _)) = engine else {
        return Err(Failed::Error(anyhow::Error::new(Hinted::new(
            format!(
                "--load puts the image into Docker's images: the build runs on {addr}, and no \
                 Docker engine was found to load it into (DOCKER_HOST, the Docker context, \
                 /var/run/docker.sock)"
            ),
            Some(
                "set DOCKER_HOST to the Docker engine's socket, or write an archive: \
                 `-o type=docker,dest=image.tar`"
                    .into(),
            ),
        ))));
    };
    let dir = tempfile::Builder::new()
        .prefix("torchkit-load-")
        .tempdir()
        .map_err(|e| {
            Failed::Error(anyhow::anyhow!(
                "creating a temporary directory for --load: {e}"
            ))
        })?;
    let tar = dir.path().join("image.tar");
    archive_for_load(exporters, &tar);
    Ok((socket, dir, tar))
}

/// [`load_through_archive`]'s rewrite of the exporters: the `image` exporters' names go to
/// one `docker` exporter writing `tar`; those that push stay.
fn archive_for_load(exporters: &mut Vec<crate::buildkit::output::Exporter>, tar: &Path) {
    let mut names = Vec::new();
    exporters.retain(|e| {
        if e.kind != "image" {
            return true;
        }
        if let Some(n) = e.attrs.get("name").filter(|n| !n.is_empty()) {
            names.push(n.clone());
        }
        e.attrs.get("push").map(String::as_str) == Some("true")
    });
    let mut attrs = BTreeMap::new();
    if !names.is_empty() {
        attrs.insert("name".to_string(), names.join(","));
    }
    exporters.push(crate::buildkit::output::Exporter {
        kind: "docker".into(),
        attrs,
        dest: crate::buildkit::output::Destination::File(tar.to_path_buf()),
    });
}

/// A flag that names a file to write: not a directory, in a directory that exists.
fn check_file_flag(flag: &str, m: &Path) -> anyhow::Result<()> {
    let dir = parent_dir(m);
    if m.is_dir() {
        return Err(flag_error(
            format!("{flag} {} is a directory", m.display()),
            &format!("name a file, e.g. {flag} out/report.json"),
        ));
    }
    if !dir.is_dir() {
        return Err(flag_error(
            format!(
                "{flag} {}: the directory {} does not exist",
                m.display(),
                dir.display()
            ),
            "create it first, or name a file in an existing directory",
        ));
    }
    Ok(())
}

/// On a classic-store dockerd, BuildKit has only the `moby`, `local` and `tar` exporters:
/// an `oci` or `docker` archive fails before anything is built, naming the store and the
/// way around it (as buildx refuses them for its docker driver there).
async fn classic_store_check(
    socket: &Path,
    exporters: &[crate::buildkit::output::Exporter],
) -> Result<(), Failed> {
    use crate::buildkit::docker_api::{image_store, ImageStore};
    let Some(e) = exporters
        .iter()
        .find(|e| matches!(e.kind.as_str(), "oci" | "docker"))
    else {
        return Ok(());
    };
    match image_store(socket).await {
        Ok((ImageStore::Classic, version)) => Err(Failed::Error(anyhow::Error::new(Hinted::new(
            format!(
                "`--output type={}` needs Docker's containerd image store: this dockerd ({version}) \
                 uses the classic store, whose BuildKit exports only to Docker's images \
                 (`-t`), a directory (`type=local`) or a file tree tar (`type=tar`)",
                e.kind
            ),
            Some(
                "build with `-t NAME` and then `docker save NAME -o FILE`, or turn on the \
                 containerd image store (`\"features\": {\"containerd-snapshotter\": true}` in \
                 daemon.json, Docker 24+)"
                    .into(),
            ),
        )))),
        _ => Ok(()),
    }
}

/// Where the build will write, checked before it starts (a failure after a long build
/// would lose it): an archive `dest` that is a directory, a `--metadata-file` that is a
/// directory or whose directory is missing.
fn check_destinations(
    exporters: &[output::Exporter],
    metadata_file: Option<&Path>,
) -> anyhow::Result<()> {
    for e in exporters {
        if let output::Destination::File(p) = &e.dest {
            if p.is_dir() {
                return Err(flag_error(
                    format!(
                        "--output type={} writes one file, and dest {} is a directory",
                        e.kind,
                        p.display()
                    ),
                    "name a file, e.g. dest=out/image.tar (type=local writes a directory)",
                ));
            }
        }
    }
    if let Some(m) = metadata_file {
        check_file_flag("--metadata-file", m)?;
    }
    Ok(())
}

/// The context files the spec names (`[image] copy` sources, `[python] requirements`)
/// exist in the local context and stay inside it: a missing one, or a symlink that leaves
/// the context, is an error at its spec line before anything is sent (BuildKit would
/// report it as a failed cache key of the copy).
fn check_context_sources(
    spec: &crate::spec::Spec,
    context: &Path,
) -> Result<(), crate::spec::SpecError> {
    let root = std::fs::canonicalize(context).unwrap_or_else(|_| context.to_path_buf());
    let sources = spec
        .image
        .copy
        .iter()
        .enumerate()
        .map(|(n, c)| (format!("image.copy.{n}"), "copy source", c.src.as_str()))
        .chain(spec.python.requirements.iter().map(|r| {
            (
                "python.requirements".to_string(),
                "requirements file",
                r.as_str(),
            )
        }));
    for (key, what, src) in sources {
        let path = context.join(src.trim_end_matches('/'));
        match std::fs::canonicalize(&path) {
            Err(_) => {
                return Err(spec.error_at(
                    &key,
                    format!(
                        "{what} `{src}` is not in the build context {}",
                        context.display()
                    ),
                    Some(format!(
                    "create {}, or write the path relative to the context directory (--context)",
                    path.display()
                )),
                ))
            }
            Ok(real) if !real.starts_with(&root) => {
                return Err(spec.error_at(
                    &key,
                    format!(
                        "{what} `{src}` leads out of the build context: it resolves to {}",
                        real.display()
                    ),
                    Some(
                        "a build sees only the context: copy the file into it instead of linking"
                            .into(),
                    ),
                ))
            }
            Ok(_) => {}
        }
    }
    Ok(())
}

/// Whether the daemon is dockerd's embedded BuildKit: reached through the Docker API socket
/// (`docker://`, `DOCKER_HOST`, a Docker context), or its workers carry moby's own labels
/// (`org.mobyproject.buildkit.worker.moby.host-gateway-ip`, Docker 23+), which buildkitd's
/// do not. Docker 20.10's workers have no such label.
/// Whether buildkitd (its `Control.Info`) is v0.20 or newer: it has CDI devices and the
/// `device` entitlement.
async fn buildkit_has_cdi(client: &Client) -> bool {
    match client.info().await {
        Ok(Some(v)) => version_at_least(&v.version, (0, 20)),
        _ => false,
    }
}

/// `v0.25.2`, `28.5.2+dfsg4` ≥ (major, minor).
fn version_at_least(v: &str, min: (u64, u64)) -> bool {
    let nums: Vec<u64> = v
        .trim_start_matches('v')
        .split(['.', '-', '+'])
        .take(2)
        .map_while(|p| p.parse().ok())
        .collect();
    matches!(nums[..], [major, minor] if (major, minor) >= min)
}

async fn is_dockerd(client: &Client) -> bool {
    if matches!(client.address(), Address::Docker(_)) {
        return true;
    }
    client.list_workers().await.is_ok_and(|ws| {
        ws.iter().any(|w| {
            w.labels
                .keys()
                .any(|k| k.starts_with("org.mobyproject.buildkit.worker.moby."))
        })
    })
}

/// Whether the daemon still answers a Control call on this connection (or a new one).
async fn daemon_answers(client: &Client) -> bool {
    matches!(
        tokio::time::timeout(std::time::Duration::from_secs(5), client.list_workers()).await,
        Ok(Ok(_))
    )
}

/// The gRPC code under a build error, when a call to the daemon failed.
fn transport_code(e: &BuildError) -> Option<tonic::Code> {
    use crate::buildkit::client::BridgeError;
    match e {
        BuildError::Step { error, .. } => transport_code(error),
        BuildError::Solve { code, .. } => Some(*code),
        BuildError::Bridge(BridgeError::Rpc { status, .. }) => Some(status.code()),
        BuildError::Function(f) => match f.downcast_ref::<SolveError>() {
            Some(
                SolveError::Bridge(BridgeError::Rpc { status, .. })
                | SolveError::Pin(PinError::Resolve {
                    source: BridgeError::Rpc { status, .. },
                    ..
                }),
            ) => Some(status.code()),
            _ => None,
        },
        _ => None,
    }
}

/// A build error with its hint and the failing step; `lost` names the daemon address when
/// the connection to it broke during the build.
fn build_error(e: BuildError, lost: Option<&str>) -> anyhow::Error {
    let (step, e) = match e {
        BuildError::Step { step, error } => (Some(step), *error),
        e => (None, e),
    };
    let at = step.map(|s| format!(" at `{s}`")).unwrap_or_default();
    if let Some(addr) = lost {
        return anyhow::Error::new(Hinted::new(
            format!("lost the connection to the BuildKit daemon at {addr} during the build{at}: {e}"),
            Some(format!(
                "check that the daemon at {addr} is still running (`scripts/test-env.sh up` starts the test one), then build again; no output was written"
            )),
        ));
    }
    let (message, hint) = match &e {
        BuildError::Function(f) => match f.downcast_ref::<SolveError>() {
            Some(s) => (s.to_string(), s.hint()),
            None => (f.to_string(), None),
        },
        BuildError::Solve { message, .. } => (message.clone(), e.hint()),
        BuildError::Bridge(b) => (b.to_string(), b.hint()),
        _ if at.is_empty() => return hinted(e),
        other => (other.to_string(), other.hint()),
    };
    let message = match message.strip_prefix("LLBBridge.Solve failed: ") {
        Some(m) => m.to_string(),
        None => message,
    };
    anyhow::Error::new(Hinted::new(format!("build failed{at}: {message}"), hint))
}

/// The exporter response as buildx writes `--metadata-file`: values that are JSON (or
/// base64 of JSON, like `containerimage.descriptor`) are embedded, others kept as text.
fn metadata_json(build_ref: &str, response: &BTreeMap<String, String>) -> serde_json::Value {
    use base64::Engine as _;
    let mut m = serde_json::Map::new();
    for (k, v) in response {
        let embedded = serde_json::from_str::<serde_json::Value>(v)
            .ok()
            .or_else(|| {
                base64::engine::general_purpose::STANDARD
                    .decode(v)
                    .ok()
                    .and_then(|b| serde_json::from_slice::<serde_json::Value>(&b).ok())
            })
            .filter(|j| j.is_object() || j.is_array());
        m.insert(
            k.clone(),
            embedded.unwrap_or_else(|| serde_json::Value::String(v.clone())),
        );
    }
    m.insert(
        "torchkit.build.ref".into(),
        serde_json::Value::String(build_ref.to_string()),
    );
    serde_json::Value::Object(m)
}

/// Writes the metadata file atomically (a temporary file renamed into place).
fn write_metadata(
    path: &Path,
    build_ref: &str,
    response: &BTreeMap<String, String>,
) -> anyhow::Result<()> {
    write_json_file("--metadata-file", path, &metadata_json(build_ref, response))
}

/// Write `json` to `path` whole or not at all (a temporary file renamed over it), 0644.
fn write_json_file(flag: &str, path: &Path, json: &serde_json::Value) -> anyhow::Result<()> {
    use std::io::Write as _;
    let dir = parent_dir(path);
    let mut tmp = tempfile::Builder::new()
        .prefix(".torchkit-")
        .tempfile_in(dir)
        .with_context(|| format!("cannot write {flag} {}", path.display()))?;
    serde_json::to_writer_pretty(&mut tmp, json)?;
    tmp.write_all(b"\n")?;
    std::fs::set_permissions(
        tmp.path(),
        <std::fs::Permissions as std::os::unix::fs::PermissionsExt>::from_mode(0o644),
    )?;
    tmp.persist(path)
        .map_err(|e| anyhow::anyhow!("cannot write {flag} {}: {}", path.display(), e.error))?;
    Ok(())
}

#[cfg(test)]
mod tests {
    #[test]
    fn load_on_another_builder_exports_one_docker_archive() {
        use crate::buildkit::output::{parse_output, Destination};
        let mut exporters = vec![
            parse_output("type=image,name=a:1").unwrap(),
            parse_output("type=image,name=reg/b:2,push=true").unwrap(),
            parse_output("type=local,dest=out").unwrap(),
        ];
        super::archive_for_load(&mut exporters, std::path::Path::new("/t/image.tar"));
        let kinds: Vec<&str> = exporters.iter().map(|e| e.kind.as_str()).collect();
        assert_eq!(kinds, ["image", "local", "docker"]);
        assert_eq!(exporters[0].attrs["push"], "true");
        assert_eq!(exporters[2].attrs["name"], "a:1,reg/b:2");
        assert_eq!(exporters[2].dest, Destination::File("/t/image.tar".into()));
        // `--load` alone: an unnamed archive (Docker loads it by ID).
        let mut only = vec![parse_output("type=image").unwrap()];
        super::archive_for_load(&mut only, std::path::Path::new("/t/i.tar"));
        assert_eq!(only.len(), 1);
        assert_eq!(only[0].kind, "docker");
        assert!(!only[0].attrs.contains_key("name"));
    }

    use super::*;

    #[test]
    fn the_ca_secret_is_required_in_the_driver_and_sent_to_the_frontend_as_given() {
        let ca = vec![CA_SECRET_ID.to_string()];
        let other = vec!["netrc".to_string()];
        assert_eq!(driver_ca(true, &[]), CaSecret::Required);
        assert_eq!(driver_ca(false, &ca), CaSecret::Required);
        assert_eq!(driver_ca(false, &other), CaSecret::None);
        assert_eq!(frontend_ca_arg(true, &[]), Some("1"));
        assert_eq!(frontend_ca_arg(false, &ca), None);
        assert_eq!(frontend_ca_arg(false, &other), Some("0"));
    }

    #[test]
    fn metadata_embeds_json_and_base64_json() {
        use base64::Engine as _;
        let desc = base64::engine::general_purpose::STANDARD
            .encode(br#"{"mediaType":"application/vnd.oci.image.manifest.v1+json","size":1}"#);
        let resp = BTreeMap::from([
            (
                "containerimage.digest".to_string(),
                "sha256:abc".to_string(),
            ),
            ("containerimage.descriptor".to_string(), desc),
            ("image.name".to_string(), "a:1,b:2".to_string()),
        ]);
        let j = metadata_json("ref1", &resp);
        assert_eq!(j["containerimage.digest"], "sha256:abc");
        assert_eq!(j["containerimage.descriptor"]["size"], 1);
        assert_eq!(j["image.name"], "a:1,b:2");
        assert_eq!(j["torchkit.build.ref"], "ref1");
    }

    #[test]
    fn versions_compare_by_major_and_minor() {
        assert!(version_at_least("v0.25.2", (0, 20)));
        assert!(version_at_least("28.5.2+dfsg4", (28, 0)));
        assert!(!version_at_least("v0.13.2", (0, 20)));
        assert!(!version_at_least("26.1.5+dfsg1", (28, 0)));
        assert!(!version_at_least("v0.0.0+unknown", (0, 20)));
        assert!(!version_at_least("", (0, 20)));
    }

    #[test]
    fn shared_key_is_stable_per_directory() {
        let a = shared_key(Path::new("."));
        assert_eq!(a, shared_key(Path::new(".")));
        assert_ne!(a, shared_key(Path::new("/")));
    }
}
