//! Plan and compile: spec + resolution → ordered steps with cache rules → LLB + image config.
//!
//! [`compile`] is the one function the driver (`torchkit build`), the gateway frontend and
//! `torchkit llb` share. It is pure: base-image metadata (digest, config) comes in through
//! [`CompileOptions::base`], already resolved by the caller (ResolveImageConfig in the
//! driver and the frontend); a build token, when the profile needs one, is supplied by the
//! caller too. Same inputs, same bytes.
//!
//! # Layer order and cache policy
//!
//! Stable first, volatile last: `base` → `apt` → `pip` → `requirements` → `user` → `copy`.
//! Cache policy is graph structure (see docs/caching.md):
//! - an **epoch** node (`[cache] epoch`) is a tiny file op on scratch that the dependency
//!   steps mount read-only: change the epoch and exactly those steps re-run;
//! - an unlocked dependency step is two execs, **resolve** then **install** ([`ResolveRun`]):
//!   the install mounts the resolved set read-only, so BuildKit keys its layer on that set's
//!   content;
//! - a **bust** node carries a per-build token and is mounted by each busted exec (`test`
//!   profile: the dependency steps' resolves; `[cache] bust` and `--no-cache`: whole steps).
//!   It re-runs the exec *without* `ignore_cache`, which in BuildKit would also wipe the
//!   exec's download cache mounts;
//! - `release` sets `ignore_cache` on every op, uses no cache mounts and needs a pinned base.

mod image_config;
mod lower;
mod pin;

use std::collections::BTreeMap;

use serde::Serialize;

use crate::error::Hint;
use crate::llb::{pb, LlbError};
use crate::resolve::Resolution;
use crate::spec::{Span, Spec};
use crate::vocab::{Profile, Step as StepName};

pub use image_config::image_config;
pub use pin::{pin_base, PinError, PinnedBase};

/// Base image metadata resolved by the caller (ResolveImageConfig or a registry).
#[derive(Debug, Clone, Default, PartialEq)]
pub struct BaseMeta {
    /// `sha256:…` of the manifest to pin to.
    pub digest: Option<String>,
    /// The base image's config JSON (the OCI image config), to inherit env, labels, history.
    pub config: Option<serde_json::Value>,
}

/// Which steps `--no-cache` / `--no-cache-filter` re-run.
#[derive(Debug, Clone, Default, PartialEq, Eq)]
pub enum NoCache {
    /// Reuse what the profile allows.
    #[default]
    Off,
    /// Re-run every step.
    All,
    /// Re-run these steps.
    Steps(Vec<StepName>),
}

impl NoCache {
    /// From `--no-cache` (all steps) and `--no-cache-filter` (these steps), as buildx reads them.
    pub fn from_flags(all: bool, filter: &[StepName]) -> Self {
        if all {
            NoCache::All
        } else if !filter.is_empty() {
            NoCache::Steps(filter.to_vec())
        } else {
            NoCache::Off
        }
    }
}

/// Inputs of [`compile`] besides the spec and the resolution.
#[derive(Debug, Clone, Default)]
pub struct CompileOptions {
    /// Overrides `[cache] profile`.
    pub profile: Option<Profile>,
    /// Resolved base metadata.
    pub base: BaseMeta,
    /// A value unique to this build, mixed into the bust node. Needed when any step is
    /// busted (test profile, `[cache] bust`, `--no-cache`); callers pass a random string.
    pub build_token: Option<String>,
    /// Session id for the context local (`local.session`); None lets BuildKit match any.
    pub session_id: Option<String>,
    /// `.dockerignore` patterns of the context, as `local.excludepatterns`.
    pub context_excludes: Vec<String>,
    /// Pass the CA bundle secret (`torchkit-ca`) to the steps that download.
    pub ca_bundle: bool,
    /// `--no-cache` / `--no-cache-filter`.
    pub no_cache: NoCache,
    /// Labels added by the caller (`--label`, frontend `label:*`); they override the spec.
    pub labels: BTreeMap<String, String>,
    /// Stop after this step (frontend option `target`, `--target`), like a Dockerfile stage.
    pub target: Option<StepName>,
    /// `SOURCE_DATE_EPOCH`: exported to the steps and used as the image's `created`.
    pub source_date_epoch: Option<i64>,
    /// A current `torchkit.lock`: the base is pinned to its digest, apt installs its
    /// `name=version` list, and one `pip` step installs its requirements with
    /// `--require-hashes --no-deps` (the file is a read-only bind mount, never a layer).
    pub lock: Option<crate::lock::LockedSet>,
    /// An image to build on instead of the resolved base, from a named build context
    /// (`--build-context <base>=docker-image://<image>`, see [`base_context_names`]). It
    /// replaces the reference wholly: `[base] mirror` and digest pins of the spec and the lock
    /// do not apply to it (its own `@sha256:` does, else the caller's lookup).
    pub base_source: Option<String>,
}

/// The output of [`compile`].
#[derive(Debug, Clone)]
pub struct Compiled {
    /// The readable plan.
    pub plan: Plan,
    /// The LLB graph.
    pub definition: pb::Definition,
    /// The OCI image config JSON to export with the result (`containerimage.config`).
    pub image_config: Vec<u8>,
}

/// Why compilation failed.
#[derive(Debug, thiserror::Error)]
pub enum CompileError {
    /// Release builds must be pinned.
    #[error("the release profile needs a base pinned by digest, and {image} is not pinned")]
    ReleaseUnpinned {
        /// The unpinned base.
        image: String,
    },
    /// A busted step needs a token from the caller.
    #[error("steps {steps:?} must re-run but no build token was given")]
    MissingBuildToken {
        /// The busted steps.
        steps: Vec<StepName>,
    },
    /// The target step is valid but this spec has no such step (no apt packages, say).
    #[error("this spec has no `{0}` step to stop at")]
    StepNotInPlan(StepName),
    /// The base config could not be used.
    #[error("base image config: {0}")]
    BaseConfig(String),
    /// The LLB builder refused the graph.
    #[error(transparent)]
    Llb(#[from] LlbError),
}

impl Hint for CompileError {
    fn hint(&self) -> Option<String> {
        match self {
            Self::ReleaseUnpinned { .. } => Some(
                "build through a daemon (it pins the base with ResolveImageConfig), pass --resolve-digest (asks the registry), set [base] digest, or run `torchkit lock`"
                    .into(),
            ),
            Self::MissingBuildToken { .. } => {
                Some("this is a bug in the caller: pass CompileOptions::build_token".into())
            }
            Self::StepNotInPlan(_) => Some("`torchkit plan` lists the steps of this spec".into()),
            Self::BaseConfig(_) => None,
            Self::Llb(e) => e.hint(),
        }
    }
}

/// The resolved, ordered build: what `torchkit plan` prints.
#[derive(Debug, Clone, PartialEq, Serialize)]
pub struct Plan {
    /// The spec file.
    pub spec: String,
    /// The cache profile in force.
    pub profile: Profile,
    /// Target platform.
    pub platform: String,
    /// The base image.
    pub base: BasePlan,
    /// What the resolver chose.
    pub resolution: Resolution,
    /// The epoch node, when `[cache] epoch` is set.
    pub epoch: Option<String>,
    /// Steps that take the per-build bust node (re-run on every build, caches kept).
    pub busted: Vec<StepName>,
    /// The steps, in order.
    pub steps: Vec<Step>,
    /// The runtime config of the image.
    pub image: ImagePlan,
}

/// The base image of the plan.
#[derive(Debug, Clone, PartialEq, Eq, Serialize)]
pub struct BasePlan {
    /// Normalized reference, with the mirror applied.
    pub reference: String,
    /// Pinned digest, if known.
    pub digest: Option<String>,
}

impl BasePlan {
    /// `name@sha256:…` when pinned, else the name.
    pub fn pinned_reference(&self) -> String {
        match &self.digest {
            Some(d) => format!("{}@{d}", self.reference),
            None => self.reference.clone(),
        }
    }
}

/// One step of the plan.
#[derive(Debug, Clone, PartialEq, Eq, Serialize)]
pub struct Step {
    /// The step (`apt`, `pip`, …).
    pub name: StepName,
    /// The progress title.
    pub title: String,
    /// How the step runs.
    pub run: Run,
    /// Whether and why the step re-runs.
    pub cache: CacheRule,
    /// Download caches mounted while the step runs.
    pub cache_mounts: Vec<CacheMount>,
    /// Secrets mounted while the step runs (ids only).
    pub secrets: Vec<String>,
    /// The resolve half of an unlocked dependency step; the step's `run` installs its output.
    #[serde(skip_serializing_if = "Option::is_none")]
    pub resolve: Option<ResolveRun>,
    /// The spec key the step comes from (`python.packages`).
    pub origin: &'static str,
    /// Where that key is in the spec.
    pub span: Span,
}

/// The resolve half of a dependency step: an exec on the same layer as the install that asks
/// pip what it would install (`pip install --dry-run --report`) and writes that set as an
/// exact requirements file ([`RESOLVE_SCRIPT`]). The install mounts the file read-only and
/// installs it with `--no-deps`, so BuildKit keys the installed layer on the file's content:
/// a re-resolution that finds nothing new leaves the layer cached.
#[derive(Debug, Clone, PartialEq, Eq, Serialize)]
pub struct ResolveRun {
    /// The progress title.
    pub title: String,
    /// What `pip install --dry-run --report …` is given.
    pub pip_args: Vec<String>,
}

impl ResolveRun {
    /// The exec's argv: the script (mounted from a file op, so errors quote a short
    /// command line), its output file, pip's arguments.
    pub fn argv(&self) -> Vec<String> {
        let mut a: Vec<String> = vec![
            "python".into(),
            RESOLVE_SCRIPT_MOUNT.into(),
            format!("{RESOLVED_DIR}/{RESOLVED_FILE}"),
        ];
        a.extend(self.pip_args.iter().cloned());
        a
    }
}

/// The resolve script (Python 3.6+, standard library): `python resolve.py OUT PIP_ARGS…`.
pub const RESOLVE_SCRIPT: &str = include_str!("resolve.py");
/// Where the resolve exec mounts the script (read-only, from a file op on scratch).
pub const RESOLVE_SCRIPT_MOUNT: &str = "/run/torchkit/resolve.py";
/// Where the resolve exec writes (a scratch mount, the exec's only used output).
pub const RESOLVED_DIR: &str = "/run/torchkit/out";
/// The resolved set's file name in [`RESOLVED_DIR`].
pub const RESOLVED_FILE: &str = "resolved.txt";
/// Where the install exec mounts the resolved set (read-only).
pub const RESOLVED_MOUNT: &str = "/run/torchkit/resolved.txt";

/// How a step runs.
#[derive(Debug, Clone, PartialEq, Eq, Serialize)]
#[serde(rename_all = "snake_case")]
pub enum Run {
    /// Pull the base image.
    Image {
        /// Reference as pulled.
        reference: String,
    },
    /// A command.
    Exec {
        /// argv.
        args: Vec<String>,
        /// Step-only env (beyond the image env).
        env: Vec<(String, String)>,
        /// Runs as.
        user: String,
        /// Working directory.
        cwd: String,
    },
    /// Context copies.
    Copy {
        /// (src in the context, dest in the image).
        copies: Vec<(String, String)>,
        /// `uid:gid` of the copied files.
        owner: String,
    },
}

/// Whether a step's cache may be reused.
#[derive(Debug, Clone, PartialEq, Eq, Serialize)]
#[serde(rename_all = "snake_case", tag = "rule")]
pub enum CacheRule {
    /// Reused while its inputs are unchanged.
    Reuse,
    /// Reused until `[cache] epoch` changes.
    Epoch,
    /// Re-runs every build through the bust node; download caches survive.
    Bust {
        /// Why: `test profile`, `[cache] bust`, `--no-cache`.
        reason: String,
    },
    /// The resolution re-runs every build through the bust node; the install re-runs only
    /// when the resolved set differs from the one it was cached with (test profile).
    Reresolve {
        /// Why: `test profile`.
        reason: String,
    },
    /// Re-runs every build with `ignore_cache` (release; non-exec steps when busted).
    IgnoreCache {
        /// Why.
        reason: String,
    },
}

/// A download cache mount.
#[derive(Debug, Clone, PartialEq, Eq, Serialize)]
pub struct CacheMount {
    /// Mount point.
    pub dest: String,
    /// Cache id, namespaced by CUDA variant.
    pub id: String,
}

/// The runtime configuration the image gets.
#[derive(Debug, Clone, PartialEq, Eq, Serialize)]
pub struct ImagePlan {
    /// USER.
    pub user: String,
    /// WORKDIR.
    pub workdir: String,
    /// Env added on top of the base image's.
    pub env: BTreeMap<String, String>,
    /// Labels (torchkit's, the spec's, the caller's).
    pub labels: BTreeMap<String, String>,
    /// ENTRYPOINT, if set.
    pub entrypoint: Option<Vec<String>>,
    /// CMD, if set.
    pub cmd: Option<Vec<String>>,
}

/// The id of the CA bundle secret passed to downloading steps.
pub const CA_SECRET_ID: &str = "torchkit-ca";
/// Where the CA bundle secret is mounted.
pub const CA_SECRET_PATH: &str = "/run/secrets/torchkit-ca";
/// Apt download cache mount point (kept outside /var/cache/apt so that the images'
/// `docker-clean` hook does not empty it).
pub const APT_CACHE_DIR: &str = "/var/cache/torchkit/apt";
/// Pip download cache mount point.
pub const PIP_CACHE_DIR: &str = "/root/.cache/pip";
/// Env used when the base config is not known (the `pytorch/pytorch` images' PATH).
pub const DEFAULT_PATH: &str =
    "/opt/conda/bin:/usr/local/nvidia/bin:/usr/local/cuda/bin:/usr/local/sbin:/usr/local/bin:/usr/sbin:/usr/bin:/sbin:/bin";

/// Build the plan (no LLB yet).
pub fn plan(spec: &Spec, res: &Resolution, opts: &CompileOptions) -> Result<Plan, CompileError> {
    let profile = spec.profile_with(opts.profile);
    let base = base_plan(spec, res, opts)?;
    if profile == Profile::Release && base.digest.is_none() {
        return Err(CompileError::ReleaseUnpinned {
            image: base.reference,
        });
    }

    // Which steps re-run, and why.
    // The test profile re-resolves the dependency steps (see `CacheRule::Reresolve`); the
    // other reasons re-run whole steps.
    let reresolve = profile == Profile::Test;
    let mut busted: BTreeMap<StepName, String> = BTreeMap::new();
    for s in &spec.cache.bust {
        busted.insert(*s, "[cache] bust".into());
    }
    match &opts.no_cache {
        NoCache::Off => {}
        NoCache::All => {
            for s in StepName::ALL {
                busted.insert(*s, "--no-cache".into());
            }
        }
        NoCache::Steps(list) => {
            for s in list {
                busted.insert(*s, "--no-cache-filter".into());
            }
        }
    }

    let cuda_ns = res
        .cuda
        .as_deref()
        .map_or("cpu".to_string(), |c| format!("cu{}", c.replace('.', "")));
    let cache_mounts = profile != Profile::Release;
    let user = &spec.image.user;
    let owner = format!("{}:{}", user.uid, user.uid);

    let mut steps: Vec<Step> = vec![];
    let mut push = |name: StepName,
                    summary: String,
                    run: Run,
                    resolve: Option<ResolveRun>,
                    mounts: Vec<CacheMount>,
                    secrets: Vec<String>,
                    origin: &'static str| {
        let is_exec = matches!(run, Run::Exec { .. });
        let dependency = name.is_dependency();
        let cache = if profile == Profile::Release {
            CacheRule::IgnoreCache {
                reason: "release profile".into(),
            }
        } else if let Some(why) = busted.get(&name) {
            if is_exec {
                CacheRule::Bust {
                    reason: why.clone(),
                }
            } else {
                CacheRule::IgnoreCache {
                    reason: why.clone(),
                }
            }
        } else if reresolve && dependency {
            // A locked step has nothing to resolve: the test profile re-runs its install.
            let reason = "test profile".to_string();
            if resolve.is_some() {
                CacheRule::Reresolve { reason }
            } else {
                CacheRule::Bust { reason }
            }
        } else if spec.cache.epoch.is_some() && dependency {
            CacheRule::Epoch
        } else {
            CacheRule::Reuse
        };
        steps.push(Step {
            name,
            title: summary,
            run,
            cache,
            cache_mounts: mounts,
            secrets,
            resolve,
            origin,
            span: spec.span_of(origin),
        });
    };
    let ca_secret = || {
        if opts.ca_bundle {
            vec![CA_SECRET_ID.to_string()]
        } else {
            vec![]
        }
    };

    push(
        StepName::Base,
        base.pinned_reference(),
        Run::Image {
            reference: base.pinned_reference(),
        },
        None,
        vec![],
        vec![],
        if spec.base.image.is_some() {
            "base.image"
        } else {
            "torch.version"
        },
    );

    let locked = opts.lock.as_ref();
    if !spec.system.apt.is_empty() {
        let apt: &[String] = match locked {
            Some(l) if !l.apt.is_empty() => &l.apt,
            _ => &spec.system.apt,
        };
        let mut mounts = vec![];
        if cache_mounts {
            mounts.push(CacheMount {
                dest: APT_CACHE_DIR.into(),
                id: format!("torchkit/apt/{cuda_ns}"),
            });
        }
        push(
            StepName::Apt,
            match locked {
                Some(l) if !l.apt.is_empty() => {
                    format!(
                        "apt-get install {} (locked: {} packages)",
                        spec.system.apt.join(" "),
                        l.apt.len()
                    )
                }
                _ => format!("apt-get install {}", spec.system.apt.join(" ")),
            },
            Run::Exec {
                args: apt_command(apt, cache_mounts, opts.ca_bundle),
                env: vec![("DEBIAN_FRONTEND".into(), "noninteractive".into())],
                user: "root".into(),
                cwd: "/".into(),
            },
            None,
            mounts,
            ca_secret(),
            "system.apt",
        );
    }

    // Every pip step runs as root from /, with the same pip env.
    let pip_run = |args: Vec<String>| Run::Exec {
        args,
        env: pip_env(opts),
        user: "root".into(),
        cwd: "/".into(),
    };
    let pip_mounts = || {
        if cache_mounts {
            vec![CacheMount {
                dest: PIP_CACHE_DIR.into(),
                id: format!("torchkit/pip/{cuda_ns}"),
            }]
        } else {
            vec![]
        }
    };
    let has_python = !spec.python.packages.is_empty() || spec.python.requirements.is_some();
    if let (Some(l), true) = (locked, has_python) {
        // The lock covers packages and requirements: one step, exact files, no resolver.
        let mut args = pip_install(cache_mounts);
        args.extend(["--require-hashes", "--no-deps", "-r", LOCK_MOUNT].map(String::from));
        args.extend(index_args(spec));
        push(
            StepName::Pip,
            format!(
                "pip install --require-hashes -r torchkit.lock ({} packages)",
                l.python_count
            ),
            pip_run(args),
            None,
            pip_mounts(),
            ca_secret(),
            if spec.python.packages.is_empty() {
                "python.requirements"
            } else {
                "python.packages"
            },
        );
    }
    // Unlocked: resolve, then install exactly what was resolved (see `ResolveRun`).
    let resolved_install = || {
        let mut args = pip_install(cache_mounts);
        args.extend(["--no-deps", "-r", RESOLVED_MOUNT].map(String::from));
        args.extend(index_args(spec));
        pip_run(args)
    };
    let resolve = |what: &str, reqs: Vec<String>| {
        let mut pip_args = vec![];
        if !cache_mounts {
            pip_args.push("--no-cache-dir".to_string());
        }
        pip_args.extend(["-c".into(), CONSTRAINTS_MOUNT.into()]);
        pip_args.extend(index_args(spec));
        pip_args.extend(reqs);
        ResolveRun {
            title: format!("resolve {what}"),
            pip_args,
        }
    };
    if !spec.python.packages.is_empty() && locked.is_none() {
        let list = spec.python.packages.join(" ");
        push(
            StepName::Pip,
            format!("pip install {list}"),
            resolved_install(),
            Some(resolve(&list, spec.python.packages.clone())),
            pip_mounts(),
            ca_secret(),
            "python.packages",
        );
    }
    if let (Some(req), None) = (&spec.python.requirements, locked) {
        push(
            StepName::Requirements,
            format!("pip install -r {req}"),
            resolved_install(),
            Some(resolve(
                &format!("-r {req}"),
                vec!["-r".into(), REQUIREMENTS_MOUNT.into()],
            )),
            pip_mounts(),
            ca_secret(),
            "python.requirements",
        );
    }

    let user_summary = if user.is_root() {
        format!("workdir {}", spec.image.workdir)
    } else {
        format!(
            "user {} (uid {}), workdir {}",
            user.name, user.uid, spec.image.workdir
        )
    };
    push(
        StepName::User,
        user_summary,
        Run::Exec {
            args: user_command(&user.name, user.uid, &spec.image.workdir),
            env: vec![],
            user: "root".into(),
            cwd: "/".into(),
        },
        None,
        vec![],
        vec![],
        if spec.locations.contains_key("image.user") {
            "image.user"
        } else {
            "image"
        },
    );

    if !spec.image.copy.is_empty() {
        let copies: Vec<(String, String)> = spec
            .image
            .copy
            .iter()
            .map(|c| (c.src.clone(), c.dest.clone()))
            .collect();
        push(
            StepName::Copy,
            format!(
                "copy {}",
                copies
                    .iter()
                    .map(|(s, d)| format!("{s} → {d}"))
                    .collect::<Vec<_>>()
                    .join(", ")
            ),
            Run::Copy {
                copies,
                owner: owner.clone(),
            },
            None,
            vec![],
            vec![],
            "image.copy",
        );
    }

    if let Some(t) = opts.target {
        match steps.iter().position(|s| s.name == t) {
            Some(i) => steps.truncate(i + 1),
            None => return Err(CompileError::StepNotInPlan(t)),
        }
    }

    // Titles as progress shows them: "[torchkit 2/5] apt: apt-get install git".
    let n = steps.len();
    for (i, s) in steps.iter_mut().enumerate() {
        let prefix = format!("[torchkit {}/{n}] {}: ", i + 1, s.name);
        s.title = format!("{prefix}{}", s.title);
        if let Some(r) = &mut s.resolve {
            r.title = format!("{prefix}{}", r.title);
        }
        // Busted steps are marked where users look: the progress line. A re-resolved
        // step marks its resolve; its install runs only if the resolved set changed.
        let mark = |reason: &str| format!(" (re-run: {reason})");
        match (&s.cache, &mut s.resolve) {
            (CacheRule::Reresolve { reason }, Some(r)) => r.title.push_str(&mark(reason)),
            (
                CacheRule::Bust { reason }
                | CacheRule::IgnoreCache { reason }
                | CacheRule::Reresolve { reason },
                r,
            ) => {
                s.title.push_str(&mark(reason));
                if let Some(r) = r {
                    r.title.push_str(&mark(reason));
                }
            }
            (CacheRule::Reuse | CacheRule::Epoch, _) => {}
        }
    }

    // Only steps that exist and take the bust node are listed.
    let busted_list: Vec<StepName> = steps
        .iter()
        .filter(|s| {
            matches!(
                s.cache,
                CacheRule::Bust { .. } | CacheRule::Reresolve { .. }
            )
        })
        .map(|s| s.name)
        .collect();
    if !busted_list.is_empty() && opts.build_token.is_none() {
        return Err(CompileError::MissingBuildToken { steps: busted_list });
    }

    let image = image_plan(spec, res, &base, profile, opts);
    Ok(Plan {
        spec: spec.filename.clone(),
        profile,
        platform: "linux/amd64".into(),
        base,
        resolution: res.clone(),
        epoch: spec.cache.epoch.clone(),
        busted: busted_list,
        steps,
        image,
    })
}

/// Compile spec + resolution to LLB and the image config. See the module docs.
pub fn compile(
    spec: &Spec,
    res: &Resolution,
    opts: &CompileOptions,
) -> Result<Compiled, CompileError> {
    let plan = plan(spec, res, opts)?;
    let definition = lower::lower(spec, &plan, opts)?;
    let image_config = image_config(&plan, opts)?;
    Ok(Compiled {
        plan,
        definition,
        image_config,
    })
}

/// Where the requirements file is mounted (read-only, from the context) for its step.
pub const REQUIREMENTS_MOUNT: &str = "/run/torchkit/requirements.txt";
/// Where the pip constraints (torch and companions pinned) are mounted.
pub const CONSTRAINTS_MOUNT: &str = "/run/torchkit/constraints.txt";
/// Where a locked build mounts the lock's requirements (`name==version --hash=…`).
pub const LOCK_MOUNT: &str = "/run/torchkit/lock.txt";

/// The base image a spec builds on: the resolved (or overridden) reference with the mirror
/// applied, pinned by the spec's digest, else the lock's, else `opts.base.digest`; or, with
/// `opts.base_source`, that image instead.
pub fn base_plan(
    spec: &Spec,
    res: &Resolution,
    opts: &CompileOptions,
) -> Result<BasePlan, CompileError> {
    if let Some(source) = &opts.base_source {
        let (reference, digest) = split_digest(crate::llb::normalize_image_ref(source)?);
        return Ok(BasePlan {
            reference,
            digest: digest.or_else(|| opts.base.digest.clone()),
        });
    }
    let (mut reference, digest) =
        split_digest(crate::llb::normalize_image_ref(&base_name(spec, res))?);
    if let Some(m) = &spec.base.mirror {
        if let Some(rest) = reference.strip_prefix("docker.io/") {
            reference = format!("{m}/{rest}");
        }
    }
    // A lock made on this base pins it, unless the spec pins it itself.
    let locked = opts
        .lock
        .as_ref()
        .filter(|l| l.reference == reference && !l.digest.is_empty())
        .map(|l| l.digest.clone());
    let digest = spec
        .base
        .digest
        .clone()
        .or(digest)
        .or(locked)
        .or_else(|| opts.base.digest.clone());
    Ok(BasePlan { reference, digest })
}

/// The base as the spec names it (`[base] image`) or the resolver picked it.
fn base_name(spec: &Spec, res: &Resolution) -> String {
    match &spec.base.image {
        Some(i) => i.clone(),
        None => res.image.full(),
    }
}

/// A normalized reference split into name and `@sha256:` digest.
fn split_digest(reference: String) -> (String, Option<String>) {
    match reference.split_once('@') {
        Some((n, d)) => (n.to_string(), Some(d.to_string())),
        None => (reference, None),
    }
}

/// The names a named build context can replace the base by, in the Dockerfile frontend's
/// familiar form (`pytorch/pytorch:2.8.0-cuda12.8-cudnn9-runtime`, what `FROM` would say):
/// the image the spec or the resolver chose and, when `[base] mirror` rewrites it, the
/// mirrored reference.
pub fn base_context_names(spec: &Spec, res: &Resolution) -> Result<Vec<String>, CompileError> {
    let (chosen, _) = split_digest(crate::llb::normalize_image_ref(&base_name(spec, res))?);
    let mirrored = base_plan(spec, res, &CompileOptions::default())?.reference;
    let mut names = vec![crate::llb::familiar_image_ref(&chosen)?];
    let m = crate::llb::familiar_image_ref(&mirrored)?;
    if !names.contains(&m) {
        names.push(m);
    }
    Ok(names)
}

fn apt_command(pkgs: &[String], keep: bool, ca: bool) -> Vec<String> {
    let mut opts = String::new();
    if keep {
        opts.push_str(&format!(
            " -o Dir::Cache::Archives={APT_CACHE_DIR}/archives -o APT::Keep-Downloaded-Packages=true"
        ));
    }
    if ca {
        opts.push_str(&format!(" -o Acquire::https::CAInfo={CA_SECRET_PATH}"));
    }
    let mkdir = if keep {
        format!("mkdir -p {APT_CACHE_DIR}/archives/partial; ")
    } else {
        String::new()
    };
    // Package names were validated by the spec (letters, digits, + - . = ~ :), so they
    // are safe to join into the shell line.
    let script = format!(
        "set -eu; {mkdir}apt-get{opts} update; apt-get{opts} install -y --no-install-recommends {}; rm -rf /var/lib/apt/lists/*",
        pkgs.join(" ")
    );
    vec!["/bin/sh".into(), "-c".into(), script]
}

/// `python -m pip install`, with `--no-cache-dir` when no cache is mounted.
fn pip_install(cache: bool) -> Vec<String> {
    let mut a: Vec<String> = ["python", "-m", "pip", "install"]
        .map(String::from)
        .to_vec();
    if !cache {
        a.push("--no-cache-dir".into());
    }
    a
}

fn index_args(spec: &Spec) -> Vec<String> {
    let mut a = vec![];
    if let Some(u) = &spec.python.index_url {
        a.extend(["--index-url".into(), u.clone()]);
    }
    for u in &spec.python.extra_index_urls {
        a.extend(["--extra-index-url".into(), u.clone()]);
    }
    a
}

fn pip_env(opts: &CompileOptions) -> Vec<(String, String)> {
    let mut env = vec![
        ("PIP_DISABLE_PIP_VERSION_CHECK".into(), "1".into()),
        ("PIP_NO_INPUT".into(), "1".into()),
        ("PIP_ROOT_USER_ACTION".into(), "ignore".into()),
    ];
    if opts.ca_bundle {
        env.push(("PIP_CERT".into(), CA_SECRET_PATH.into()));
        env.push(("SSL_CERT_FILE".into(), CA_SECRET_PATH.into()));
    }
    env
}

fn user_command(name: &str, uid: u32, workdir: &str) -> Vec<String> {
    let script = if uid == 0 {
        format!("set -eu; mkdir -p '{workdir}'")
    } else {
        // Debian/Ubuntu have groupadd/useradd; busybox-based images have addgroup/adduser.
        // A uid or name already taken by someone else is an error, not a silent reuse.
        format!(
            "set -eu; \
             if getent passwd {name} >/dev/null; then \
               [ \"$(id -u {name})\" = {uid} ] || {{ echo \"torchkit: user {name} exists with another uid\" >&2; exit 1; }}; \
             elif getent passwd {uid} >/dev/null; then \
               echo \"torchkit: uid {uid} is taken by $(getent passwd {uid} | cut -d: -f1); set [image] uid\" >&2; exit 1; \
             else \
               getent group {uid} >/dev/null || groupadd -g {uid} {name} 2>/dev/null || addgroup -g {uid} {name}; \
               useradd -m -u {uid} -g {uid} -s /bin/sh {name} 2>/dev/null || adduser -D -u {uid} -G {name} -s /bin/sh {name}; \
             fi; \
             mkdir -p '{workdir}'; chown {uid}:{uid} '{workdir}'"
        )
    };
    vec!["/bin/sh".into(), "-c".into(), script]
}

fn image_plan(
    spec: &Spec,
    res: &Resolution,
    base: &BasePlan,
    profile: Profile,
    opts: &CompileOptions,
) -> ImagePlan {
    let mut env = BTreeMap::new();
    env.insert("NVIDIA_VISIBLE_DEVICES".to_string(), "all".to_string());
    env.insert(
        "NVIDIA_DRIVER_CAPABILITIES".to_string(),
        "compute,utility".to_string(),
    );
    for (k, v) in &spec.image.env {
        env.insert(k.clone(), v.clone());
    }
    let mut labels = BTreeMap::new();
    let mut l = |k: &str, v: String| {
        labels.insert(k.to_string(), v);
    };
    l("org.opencontainers.image.base.name", base.reference.clone());
    if let Some(d) = &base.digest {
        l("org.opencontainers.image.base.digest", d.clone());
        l("torchkit.base.digest", d.clone());
    }
    l(
        "org.opencontainers.image.description",
        format!(
            "PyTorch {} ({}) built by torchkit",
            res.torch,
            res.cuda
                .as_deref()
                .map_or("CPU".to_string(), |c| format!("CUDA {c}"))
        ),
    );
    l("torchkit.torch", res.torch.clone());
    l("torchkit.torchvision", res.torchvision.clone());
    l("torchkit.torchaudio", res.torchaudio.clone());
    l(
        "torchkit.cuda",
        res.cuda.clone().unwrap_or_else(|| "cpu".into()),
    );
    if let Some(c) = &res.cudnn {
        l("torchkit.cudnn", c.clone());
    }
    if let Some(d) = &res.min_driver {
        l("torchkit.min-driver", d.clone());
    }
    l("torchkit.python", res.python.clone());
    l("torchkit.profile", profile.to_string());
    l("torchkit.base", base.reference.clone());
    for (k, v) in spec.image.labels.iter().chain(opts.labels.iter()) {
        labels.insert(k.clone(), v.clone());
    }
    ImagePlan {
        user: spec.image.user.name.clone(),
        workdir: spec.image.workdir.clone(),
        env,
        labels,
        entrypoint: spec.image.entrypoint.clone(),
        cmd: spec.image.cmd.clone(),
    }
}

#[cfg(test)]
mod tests;
