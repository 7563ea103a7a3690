//! `torchkit lock [SPEC] [--check]`: resolve the spec's exact environment on BuildKit and
//! write `torchkit.lock` next to the spec (see docs/lock.md).
//!
//! One build on the daemon: pin the base with ResolveImageConfig ([`plan::pin_base`]), then
//! run the plan of [`crate::plan::resolution_run`] inside the pinned base — `apt-get install
//! -s` and `pip install --dry-run --report` — and bring its output directory back with the
//! `local` exporter. The lock is written atomically (a temporary file renamed into place).
//!
//! `--check` needs no daemon: it compares the spec's inputs with the lock and exits 1,
//! naming each change, when the lock is missing or stale.
#![allow(clippy::print_stderr)]

use std::path::{Path, PathBuf};
use std::process::ExitCode;

use anyhow::Context as _;

use crate::buildkit::output;
use crate::buildkit::progress::ProgressMode;
use crate::buildkit::session::{Attachables, SecretSource};
use crate::buildkit::{BuildError, BuildOptions, Client, ConnectOptions};
use crate::cli::build::Failed;
use crate::cli::common::{self, Loaded, SpecArgs};
use crate::cli::{hinted, Hinted};
use crate::lock::{self, Lock, LockStatus, LockedBase, LockedSet, Policy, SpecInputs, LOCK_FILE};
use crate::plan::{self, CaSecret, CompileOptions, CA_SECRET_ID};

/// Flags of `torchkit lock`.
#[derive(Debug, clap::Args)]
pub struct Args {
    #[command(flatten)]
    spec: SpecArgs,
    /// Do not resolve: exit 1 when the lock is missing or does not match the spec (for CI).
    #[arg(long)]
    check: bool,
    /// The lock file (default: torchkit.lock next to the spec).
    #[arg(long, value_name = "FILE")]
    lock_file: Option<PathBuf>,
    /// The build context directory, where `[python] requirements` is read (default: the
    /// spec's directory).
    #[arg(long, value_name = "DIR")]
    context: Option<PathBuf>,
    /// BuildKit address (as `torchkit build --addr`, connection helpers included).
    /// Default: as `torchkit build`.
    #[arg(long, value_name = "ADDR", conflicts_with = "builder")]
    addr: Option<String>,
    /// A buildx builder (as `torchkit build --builder`). Default: BUILDX_BUILDER.
    #[arg(long, value_name = "NAME")]
    builder: Option<String>,
    /// CA bundle for the downloads of the resolution (pip, apt), passed as the secret
    /// `torchkit-ca`.
    #[arg(long, value_name = "FILE")]
    ca_bundle: Option<PathBuf>,
    /// Build secret the spec mounts (repeatable), as `torchkit build --secret`:
    /// `id=ID,src=FILE` or `id=ID,env=VAR`.
    #[arg(long = "secret", value_name = "SPEC")]
    secrets: Vec<String>,
    /// Progress output: auto, tty, plain, rawjson or quiet.
    #[arg(
        long,
        env = "BUILDKIT_PROGRESS",
        default_value = "auto",
        value_name = "MODE"
    )]
    progress: ProgressMode,
}

fn spec_dir(path: &Path) -> PathBuf {
    match path.parent() {
        Some(p) if !p.as_os_str().is_empty() => p.to_path_buf(),
        _ => PathBuf::from("."),
    }
}

/// The lock file that belongs to a spec.
pub fn lock_path(spec_path: &Path) -> PathBuf {
    spec_dir(spec_path).join(LOCK_FILE)
}

/// The content of `[python] requirements`, read from the context.
pub fn requirements(loaded: &Loaded, context: &Path) -> anyhow::Result<Option<Vec<u8>>> {
    let Some(rel) = &loaded.spec.python.requirements else {
        return Ok(None);
    };
    let path = context.join(rel);
    if let Ok(m) = std::fs::metadata(&path) {
        crate::load::check_size(&path.display().to_string(), m.len())
            .map_err(crate::cli::common::load_error)?;
    }
    std::fs::read(&path).map(Some).map_err(|e| {
        anyhow::Error::new(Hinted::new(
            format!("cannot read the requirements file {}: {e}", path.display()),
            Some("[python] requirements is relative to the build context".into()),
        ))
    })
}

fn spec_inputs(loaded: &Loaded, context: &Path) -> anyhow::Result<SpecInputs> {
    let req = requirements(loaded, context)?;
    Ok(SpecInputs::new(
        &loaded.spec,
        &loaded.resolution,
        req.as_deref(),
    ))
}

/// The lock file's text, `None` when there is none.
fn read_lock(path: &Path) -> anyhow::Result<Option<String>> {
    match std::fs::read_to_string(path) {
        Ok(t) => Ok(Some(t)),
        Err(e) if e.kind() == std::io::ErrorKind::NotFound => Ok(None),
        Err(e) => Err(anyhow::anyhow!("cannot read {}: {e}", path.display())),
    }
}

/// The lock next to the spec, checked against it with `policy` ([`lock::check`], the rules
/// the frontend applies too). Reads the requirements file only when there is a lock.
fn check_lock(
    loaded: &Loaded,
    context: &Path,
    path: &Path,
    policy: Policy,
) -> anyhow::Result<LockStatus> {
    let text = read_lock(path)?;
    let requirements = match &text {
        Some(_) => requirements(loaded, context)?,
        None => None,
    };
    lock::check(
        &path.display().to_string(),
        text.as_deref(),
        &loaded.spec,
        &loaded.resolution,
        requirements.as_deref(),
        policy,
    )
    .map_err(hinted)
}

/// What `torchkit build` installs: the locked set when `torchkit.lock` sits next to the
/// spec and matches it. With `locked`, a missing or stale lock is an error naming the
/// changes; without, a stale lock is ignored with a warning.
pub fn locked_set_for_build(
    loaded: &Loaded,
    context: &Path,
    locked: bool,
) -> anyhow::Result<Option<LockedSet>> {
    let policy = if locked {
        Policy::Require("--locked")
    } else {
        Policy::UseIfCurrent
    };
    let status = check_lock(loaded, context, &lock_path(&loaded.path), policy)?;
    if let Some(w) = status.warning() {
        crate::cli::warn(&w);
    }
    Ok(status.locked_set())
}

/// Run `torchkit lock`.
pub fn run(args: Args) -> anyhow::Result<ExitCode> {
    let loaded = common::load(&args.spec)?;
    let context = args
        .context
        .clone()
        .unwrap_or_else(|| spec_dir(&loaded.path));
    let path = args
        .lock_file
        .clone()
        .unwrap_or_else(|| lock_path(&loaded.path));
    if args.check {
        // Under Policy::Verify a missing or stale lock is an error: only a current one is left.
        if let LockStatus::Current(lock) = check_lock(&loaded, &context, &path, Policy::Verify)? {
            eprintln!(
                "{} is up to date ({} apt, {} python packages on {}@{})",
                path.display(),
                lock.apt.len(),
                lock.python.len(),
                lock.base.reference,
                lock.base.digest
            );
        }
        return Ok(ExitCode::SUCCESS);
    }

    let now = spec_inputs(&loaded, &context)?;
    if let Some(ca) = &args.ca_bundle {
        std::fs::File::open(ca).map_err(|e| {
            anyhow::Error::new(Hinted::new(
                format!("--ca-bundle {}: {e}", ca.display()),
                Some("pass a readable PEM bundle, e.g. /etc/ssl/certs/ca-certificates.crt".into()),
            ))
        })?;
    }
    let mut secrets = vec![];
    for spec in &args.secrets {
        let (id, source) =
            crate::buildkit::session::parse_secret_spec(spec).map_err(crate::cli::hinted)?;
        crate::cli::build::check_secret(&id, &source)?;
        secrets.push((id, source));
    }
    let ids: Vec<String> = secrets.iter().map(|(id, _)| id.clone()).collect();
    crate::cli::build::check_spec_secrets(&loaded.spec, &ids)?;
    let requirements = requirements(&loaded, &context)?;
    let rt = tokio::runtime::Runtime::new().context("starting the async runtime")?;
    let lock = rt.block_on(resolve(&args, &loaded, &now, requirements, secrets));
    rt.shutdown_timeout(std::time::Duration::from_secs(2));
    let lock = match lock {
        Ok(lock) => lock,
        Err(f) => return f.into_exit(),
    };
    write_atomically(&path, lock.to_toml().as_bytes())?;
    eprintln!(
        "wrote {}: {}@{}, {} apt and {} python packages",
        path.display(),
        lock.base.reference,
        lock.base.digest,
        lock.apt.len(),
        lock.python.len()
    );
    Ok(ExitCode::SUCCESS)
}

async fn resolve(
    args: &Args,
    loaded: &Loaded,
    now: &SpecInputs,
    requirements: Option<Vec<u8>>,
    secrets: Vec<(String, SecretSource)>,
) -> Result<Lock, Failed> {
    let out_parent = tempfile::Builder::new()
        .prefix(".torchkit-lock-")
        .tempdir()
        .context("creating a temporary directory")?;
    let out_dir = out_parent.path().join("out");
    let exporters = output::exporters(&[format!("type=local,dest={}", out_dir.display())], &[])
        .map_err(hinted)?;
    let mut options = BuildOptions {
        exporters,
        progress: args.progress,
        cancel_on_ctrl_c: true,
        ..BuildOptions::default()
    };
    let mut attachables = Attachables::new();
    if let Some(ca) = &args.ca_bundle {
        attachables = attachables.with_secret(CA_SECRET_ID, SecretSource::File(ca.clone()));
    }
    for (id, source) in secrets {
        attachables = attachables.with_secret(id, source);
    }
    options.attach(attachables).map_err(hinted)?;

    let client = Client::connect(&ConnectOptions {
        addr: args.addr.clone(),
        builder: args.builder.clone(),
        ..ConnectOptions::default()
    })
    .await
    .map_err(hinted)?;
    let spec = loaded.spec.clone();
    let resolution = loaded.resolution.clone();
    let ca_secret = if args.ca_bundle.is_some() {
        CaSecret::Required
    } else {
        CaSecret::None
    };
    let built = client
        .build(options, move |bridge| async move {
            // The lock is made on the base the spec resolves to, before any lock pins it.
            let base =
                plan::pin_base(&spec, &resolution, &CompileOptions::default(), &bridge).await?;
            let run = plan::resolution_run(&plan::ResolutionInputs {
                spec: &spec,
                resolution: &resolution,
                base: base.clone().into(),
                requirements: requirements.as_deref(),
                ca_secret,
            })
            .map_err(|e| anyhow::anyhow!("{e}"))?;
            // Nothing to ask (no apt, no Python packages): an empty result, the lock pins
            // the base alone.
            let r = match run {
                Some(run) => {
                    let def = plan::lower(&run)
                        .map_err(|e| anyhow::anyhow!("{e}"))?
                        .definition;
                    Some(
                        bridge
                            .solve(Some(def), crate::buildkit::client::SolveOptions::default())
                            .await?,
                    )
                }
                None => None,
            };
            bridge.return_result(r, Default::default()).await?;
            Ok::<_, anyhow::Error>(base)
        })
        .await
        .map_err(build_failed)?;
    let base = built.value;

    let read = |name: &str| -> anyhow::Result<Option<Vec<u8>>> {
        match std::fs::read(out_dir.join(name)) {
            Ok(b) => Ok(Some(b)),
            Err(e) if e.kind() == std::io::ErrorKind::NotFound => Ok(None),
            Err(e) => Err(anyhow::anyhow!("reading the resolution's {name}: {e}")),
        }
    };
    let python = match read(plan::PIP_REPORT)? {
        Some(b) => lock::pip_report(&b).map_err(hinted)?,
        None => vec![],
    };
    let apt = match read(plan::APT_SIMULATION)? {
        Some(b) => lock::apt_simulated(&String::from_utf8_lossy(&b)).map_err(hinted)?,
        None => vec![],
    };
    Lock::new(
        LockedBase {
            reference: base.reference,
            digest: base.digest,
            platform: "linux/amd64".into(),
        },
        now,
        apt,
        python,
    )
    .map_err(|e| Failed::Error(hinted(e)))
}

/// A failed resolution run: a cancel exits as `torchkit build` does (130 on Ctrl-C, 143 on
/// SIGTERM, 129 on SIGHUP), anything else is an error (exit 1).
fn build_failed(e: BuildError) -> Failed {
    let cancelled = matches!(e, BuildError::Cancelled(_));
    let code = u8::try_from(e.exit_code()).unwrap_or(1);
    let e = anyhow::Error::new(Hinted::new(
        format!("torchkit lock: {e}"),
        crate::error::Hint::hint(&e),
    ));
    if cancelled {
        Failed::Cancelled(e, code)
    } else {
        Failed::Error(e)
    }
}

/// Write `bytes` to `path` through a temporary file in the same directory. The file is
/// created with mode 0666 less the umask (0644 under umask 022), as any file a command
/// writes: `torchkit.lock` is meant to be committed and read by others, not tempfile's 0600.
fn write_atomically(path: &Path, bytes: &[u8]) -> anyhow::Result<()> {
    use std::io::Write as _;
    use std::os::unix::fs::PermissionsExt as _;
    let dir = spec_dir(path);
    let mut tmp = tempfile::Builder::new()
        .prefix(".torchkit-lock-")
        // open(2) applies the umask to this mode, as it does for `File::create`.
        .permissions(std::fs::Permissions::from_mode(0o666))
        .tempfile_in(&dir)
        .with_context(|| format!("cannot write {}", path.display()))?;
    tmp.write_all(bytes)?;
    tmp.as_file().sync_all()?;
    tmp.persist(path)
        .map_err(|e| anyhow::anyhow!("cannot write {}: {}", path.display(), e.error))?;
    Ok(())
}

#[cfg(test)]
mod tests {
    use super::*;
    use std::os::unix::fs::PermissionsExt as _;

    #[test]
    fn the_lock_is_written_with_the_mode_the_umask_gives_any_new_file() {
        let dir = tempfile::tempdir().unwrap();
        let path = dir.path().join(LOCK_FILE);
        write_atomically(&path, b"version = 1\n").unwrap();
        // What the umask makes of 0666: the mode of a file created as every tool creates one.
        let plain = dir.path().join("plain");
        std::fs::write(&plain, b"").unwrap();
        let mode = |p: &Path| std::fs::metadata(p).unwrap().permissions().mode() & 0o777;
        assert_eq!(
            format!("{:o}", mode(&path)),
            format!("{:o}", mode(&plain)),
            "torchkit.lock is meant to be committed: 0666 less the umask, not tempfile's 0600"
        );
        assert_eq!(std::fs::read(&path).unwrap(), b"version = 1\n");
        // Replacing it keeps the same rule and leaves no temporary file behind.
        write_atomically(&path, b"version = 2\n").unwrap();
        assert_eq!(mode(&path), mode(&plain));
        let names: Vec<_> = std::fs::read_dir(dir.path())
            .unwrap()
            .map(|e| e.unwrap().file_name())
            .collect();
        assert_eq!(names.len(), 2, "{names:?}");
    }

    #[test]
    fn a_cancelled_resolution_run_exits_as_build_does() {
        use crate::buildkit::client::Interrupt;
        for (signal, want) in [
            (Interrupt::CtrlC, 130),
            (Interrupt::Terminate, 143),
            (Interrupt::Hangup, 129),
        ] {
            let code = build_failed(BuildError::Cancelled(signal))
                .into_exit()
                .unwrap();
            assert_eq!(code, ExitCode::from(want));
        }
        assert!(build_failed(BuildError::NoReturn).into_exit().is_err());
    }
}
