//! Plan and lower: spec + resolution → [`Plan`] (the whole build, as data) → LLB + image config.
//!
//! The [`Plan`] is the seam between deciding and building. [`plan`] decides everything: the
//! base and its env, the steps in order with their commands, users, env and mounts, the small
//! helper nodes the steps mount (constraints, resolver script, epoch, bust, lock, context),
//! the cache rule of every step and the image config. [`lower`] reads nothing but the plan
//! and writes exactly that graph: `torchkit plan --json` shows what `torchkit llb` builds.
//!
//! [`compile`] (= [`plan`] then [`lower`]) is the one function the driver (`torchkit build`),
//! the gateway frontend and `torchkit llb` share. `torchkit lock`'s resolution run is a plan
//! too ([`resolution_run`]), lowered by the same [`lower`]. All of it is pure: base-image
//! metadata (digest, config) comes in through [`CompileOptions::base`], already resolved by
//! the caller (ResolveImageConfig in the driver and the frontend); a build token, when the
//! profile needs one, is supplied by the caller too. Same inputs, same bytes.
//!
//! # Layer order and cache policy
//!
//! Stable first, volatile last: `base` → `apt` → `pip` → `requirements` → `user` → `copy`.
//! Cache policy is graph structure (see docs/caching.md), assigned in one pass over the
//! built steps (`policy.rs`):
//! - an **epoch** node (`[cache] epoch`) is a tiny file op on scratch that the dependency
//!   steps mount read-only: change the epoch and exactly those steps re-run;
//! - an unlocked dependency step is two execs, **resolve** then **install** ([`ResolveRun`]):
//!   the install mounts the resolved set read-only, so BuildKit keys its layer on that set's
//!   content;
//! - a **bust** node carries a per-build token and is mounted by each busted exec (`test`
//!   profile: the dependency steps' resolves; `[cache] bust` and `--no-cache`: whole steps).
//!   It re-runs the exec *without* `ignore_cache`, which in BuildKit would also wipe the
//!   exec's download cache mounts;
//! - `release` sets `ignore_cache` on every op and uses no cache mounts; building it needs a
//!   pinned base ([`Plan::check_buildable`]), planning it does not.

pub mod graph;
mod image_config;
mod lower;
mod pin;
mod policy;
mod resolution;
mod steps;
pub mod verify;

use std::collections::BTreeMap;

use serde::Serialize;

use crate::error::Hint;
use crate::llb::{pb, LlbError};
use crate::resolve::Resolution;
use crate::spec::{Span, Spec};
use crate::vocab::{Profile, Step as StepName};

pub use image_config::image_config;
pub use lower::{lower, lower_for, Lowered, VerifyDefinitions, BUST_MOUNT, EPOCH_MOUNT};
pub use pin::{pin_base, PinError, PinnedBase};
pub use resolution::{
    resolution_run, ResolutionInputs, APT_SIMULATION, PACKAGES_MOUNT, PIP_REPORT,
    RESOLUTION_OUT_DIR,
};
pub use steps::{base_context_names, base_plan, context_paths, plan};
pub use verify::{Report, VerifyPlan, VerifyStage};

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

/// What a locked build installs (from a current `torchkit.lock`, see
/// `lock::Lock::locked_set`): input data of [`CompileOptions::lock`].
#[derive(Debug, Clone, Default, PartialEq, Eq)]
pub struct LockedSet {
    /// The base reference the lock was made on.
    pub reference: String,
    /// The base digest the lock was made on.
    pub digest: String,
    /// `name=version` for `apt-get install`.
    pub apt: Vec<String>,
    /// The requirements file for `pip install --require-hashes --no-deps -r`.
    pub python: String,
    /// How many distributions that file lists.
    pub python_count: usize,
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
    /// Whether the steps that download mount the CA bundle secret (`torchkit-ca`), and
    /// whether a build without it fails.
    pub ca_secret: CaSecret,
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
    pub lock: Option<LockedSet>,
    /// An image to build on instead of the resolved base, from a named build context
    /// (`--build-context <base>=docker-image://<image>`, see [`base_context_names`]). It
    /// replaces the reference wholly: `[base] mirror` and digest pins of the spec and the lock
    /// do not apply to it (its own `@sha256:` does, else the caller's lookup).
    pub base_source: Option<String>,
    /// The daemon's LLB caps (its gateway `Ping`); the default, every cap, is for LLB
    /// whose reader is not known (`torchkit llb`).
    pub supported: crate::llb::Supported,
    /// `--skip-verify`: leave the verify stage out.
    pub skip_verify: bool,
    /// `--gpus`: the CDI devices of the verify stage (else `[verify] gpu`).
    pub gpus: Option<crate::vocab::Gpus>,
}

/// The output of [`compile`].
#[derive(Debug, Clone)]
pub struct Compiled {
    /// The plan that was lowered.
    pub plan: Plan,
    /// The LLB graph.
    pub definition: pb::Definition,
    /// The OCI image config JSON to export with the result (`containerimage.config`); none
    /// for `--target verify`, whose result is the report directory.
    pub image_config: Option<Vec<u8>>,
    /// The verify stage, unless skipped.
    pub verify: Option<VerifyDefinitions>,
}

/// Why planning or lowering failed.
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
    /// The plan contradicts itself (a mount of a node it does not define, say): a plan
    /// built by [`plan`] never does, one edited by hand may.
    #[error("inconsistent plan: {0}")]
    BadPlan(String),
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
            Self::BadPlan(_) => Some(
                "`torchkit plan --json` shows the plan; plans made by torchkit are consistent"
                    .into(),
            ),
            Self::Llb(e) => e.hint(),
        }
    }
}

/// The resolved, ordered build: what `torchkit plan` prints and all that [`lower`] reads.
#[derive(Debug, Clone, PartialEq, Serialize)]
pub struct Plan {
    /// The spec file, as source maps name it.
    pub spec: String,
    /// The spec's text, for the LLB source map (`Definition.Source`).
    #[serde(skip)]
    pub spec_text: String,
    /// The cache profile in force.
    pub profile: Profile,
    /// Target platform (`os/arch[/variant]`).
    pub platform: String,
    /// The base image.
    pub base: BasePlan,
    /// What the resolver chose.
    pub resolution: Resolution,
    /// `[cache] epoch`, when set (its node is in [`Plan::nodes`]).
    pub epoch: Option<String>,
    /// Steps that take the per-build bust node (re-run on every build, caches kept).
    pub busted: Vec<StepName>,
    /// How the steps that download get the CA bundle secret (absent from the JSON when
    /// they do not).
    #[serde(skip_serializing_if = "CaSecret::is_none")]
    pub ca_secret: CaSecret,
    /// The helper nodes the steps mount or copy from, each one op of the graph.
    pub nodes: Vec<Node>,
    /// The steps, in order; each runs on the root filesystem of the one before.
    pub steps: Vec<Step>,
    /// The verify stage, on the last step's root filesystem, not exported.
    pub verify: VerifyStage,
    /// What the build produces.
    pub output: Output,
}

impl Plan {
    /// The image runtime config, when the plan builds an image.
    pub fn image(&self) -> Option<&ImagePlan> {
        match &self.output {
            Output::Image(i) => Some(i),
            Output::Directory { .. } | Output::Verify => None,
        }
    }

    /// Whether this plan may be built: a `release` plan needs a pinned base. Planning never
    /// refuses (subrequests, `torchkit plan` and the graph only read the plan); [`lower`]
    /// and so [`compile`] call this.
    pub fn check_buildable(&self) -> Result<(), CompileError> {
        if self.profile == Profile::Release && self.base.digest.is_none() {
            return Err(CompileError::ReleaseUnpinned {
                image: self.base.reference.clone(),
            });
        }
        Ok(())
    }

    /// The ids of the download caches the steps mount, sorted, each once.
    pub fn cache_ids(&self) -> Vec<String> {
        let mut ids: Vec<String> = self
            .steps
            .iter()
            .flat_map(Step::mounts)
            .filter_map(|m| match m {
                Mount::Cache { id, .. } => Some(id.clone()),
                _ => None,
            })
            .collect();
        ids.sort();
        ids.dedup();
        ids
    }

    /// A helper node by id.
    pub fn node(&self, id: NodeId) -> Option<&Node> {
        self.nodes.iter().find(|n| n.id == id)
    }
}

/// The base image of the plan.
#[derive(Debug, Clone, PartialEq, Eq, Serialize)]
pub struct BasePlan {
    /// Normalized reference, with the mirror applied.
    pub reference: String,
    /// Pinned digest, if known.
    pub digest: Option<String>,
    /// The env every step starts with: the base config's (sorted by name; the `pytorch/pytorch`
    /// images' PATH when the config is not known), then `[image] env` in the spec's order.
    pub env: Vec<(String, String)>,
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

/// A helper node: one small op the steps mount (or copy from), never a layer of the image.
#[derive(Debug, Clone, PartialEq, Eq, Serialize)]
pub struct Node {
    /// What the node is for; mounts name it.
    pub id: NodeId,
    /// Its name as progress shows it (`[torchkit] epoch 2026-01`).
    pub name: String,
    /// What the op is.
    pub source: NodeSource,
    /// The spec key it comes from, when one does (`cache.epoch`).
    #[serde(skip_serializing_if = "Option::is_none")]
    pub origin: Option<&'static str>,
    /// Where that key is in the spec.
    #[serde(skip_serializing_if = "Option::is_none")]
    pub span: Option<Span>,
}

/// The helper nodes a plan can have.
#[derive(Debug, Clone, Copy, PartialEq, Eq, PartialOrd, Ord, Hash, Serialize)]
#[serde(rename_all = "snake_case")]
pub enum NodeId {
    /// `torch==…`, `torchvision==…`, `torchaudio==…`: steers every resolution.
    Constraints,
    /// The resolve script ([`RESOLVE_SCRIPT`]).
    Resolver,
    /// The `[cache] epoch` value.
    Epoch,
    /// The per-build token of busted execs.
    Bust,
    /// A lock's requirements (`name==version --hash=…`).
    Lock,
    /// The build context (`local://context`).
    Context,
    /// `[python] packages` as a requirements file (the lock's resolution run).
    Packages,
    /// The requirements file's content (the lock's resolution run).
    Requirements,
    /// The verify script and what it expects.
    Verifier,
    /// The verify report file, owned by the image's user.
    VerifyOut,
}

impl NodeId {
    /// The id as the plan's JSON writes it.
    pub fn as_str(self) -> &'static str {
        match self {
            NodeId::Constraints => "constraints",
            NodeId::Resolver => "resolver",
            NodeId::Epoch => "epoch",
            NodeId::Bust => "bust",
            NodeId::Lock => "lock",
            NodeId::Context => "context",
            NodeId::Packages => "packages",
            NodeId::Requirements => "requirements",
            NodeId::Verifier => "verifier",
            NodeId::VerifyOut => "verify_out",
        }
    }
}

impl std::fmt::Display for NodeId {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        f.write_str(self.as_str())
    }
}

/// The op behind a helper node.
#[derive(Debug, Clone, PartialEq, Eq, Serialize)]
#[serde(tag = "kind", rename_all = "snake_case")]
pub enum NodeSource {
    /// Files written on scratch by one file op.
    Files {
        /// The files, in the op's order.
        files: Vec<NodeFile>,
    },
    /// A directory the client's session sends (`local://name`).
    Local {
        /// The directory's name in the session (`context`).
        name: String,
        /// `local.sharedkeyhint`.
        shared_key_hint: String,
        /// `local.session`; none lets BuildKit use any session.
        #[serde(skip_serializing_if = "Option::is_none")]
        session_id: Option<String>,
        /// `local.excludepatterns` (`.dockerignore`).
        #[serde(skip_serializing_if = "Vec::is_empty")]
        exclude_patterns: Vec<String>,
        /// `local.includepattern` and `local.followpaths`: only these paths are sent (the
        /// files the spec uses); empty: the whole directory.
        #[serde(skip_serializing_if = "Vec::is_empty")]
        include_patterns: Vec<String>,
    },
}

/// A file of a [`NodeSource::Files`] node.
#[derive(Debug, Clone, PartialEq, Eq, Serialize)]
pub struct NodeFile {
    /// Absolute path in the node.
    pub path: String,
    /// Permission bits (written in octal in JSON).
    #[serde(serialize_with = "octal")]
    pub mode: u32,
    /// The content.
    pub content: String,
    /// Owner uid (and gid); none: root.
    #[serde(skip_serializing_if = "Option::is_none")]
    pub owner: Option<u32>,
}

fn octal<S: serde::Serializer>(mode: &u32, s: S) -> Result<S::Ok, S::Error> {
    s.serialize_str(&format!("{mode:04o}"))
}

/// A mount of an exec.
#[derive(Debug, Clone, PartialEq, Eq, Serialize)]
#[serde(tag = "type", rename_all = "snake_case")]
pub enum Mount {
    /// A persistent download cache.
    Cache {
        /// Mount point.
        dest: String,
        /// Cache id, namespaced by CUDA variant.
        id: String,
        /// How concurrent builds share it.
        sharing: CacheSharing,
        /// Owner uid (and gid) of the cache directory when it is created; none: root.
        #[serde(default, skip_serializing_if = "Option::is_none")]
        owner: Option<u32>,
    },
    /// A secret file the client provides while the exec runs (the content never enters the
    /// graph).
    Secret {
        /// Mount point.
        dest: String,
        /// Secret id.
        id: String,
        /// A missing secret leaves the mount point absent instead of failing the exec
        /// (BuildKit's `SecretOpt.optional`).
        #[serde(default, skip_serializing_if = "std::ops::Not::not")]
        optional: bool,
    },
    /// A path of a helper node.
    Node {
        /// Mount point.
        dest: String,
        /// The node.
        node: NodeId,
        /// The path in the node (`/constraints.txt`; `/` for all of it).
        path: String,
        /// Read-only: an input of the exec, keyed by content.
        readonly: bool,
    },
    /// An empty writable directory; what the exec writes there is an output.
    Scratch {
        /// Mount point.
        dest: String,
    },
    /// What an earlier exec wrote to one of its writable mounts.
    Output {
        /// Mount point.
        dest: String,
        /// The step of that exec.
        step: StepName,
        /// Which exec of the step.
        exec: Exec,
        /// That exec's mount point.
        mount: String,
        /// The path in that output (`/resolved.txt`; `/` for all of it).
        path: String,
        /// Read-only: an input of this exec, keyed by content; writable: this exec's
        /// output continues it.
        readonly: bool,
    },
}

impl Mount {
    /// The mount point.
    pub fn dest(&self) -> &str {
        match self {
            Mount::Cache { dest, .. }
            | Mount::Secret { dest, .. }
            | Mount::Node { dest, .. }
            | Mount::Scratch { dest }
            | Mount::Output { dest, .. } => dest,
        }
    }

    /// A read-only mount of a helper node.
    pub fn node(dest: &str, node: NodeId, path: &str) -> Mount {
        Mount::Node {
            dest: dest.into(),
            node,
            path: path.into(),
            readonly: true,
        }
    }
}

/// How a cache mount is shared between concurrent builds (BuildKit's `CacheSharingOpt`).
#[derive(Debug, Clone, Copy, PartialEq, Eq, Serialize)]
#[serde(rename_all = "snake_case")]
pub enum CacheSharing {
    /// Used by all at once.
    Shared,
    /// A new one for each concurrent user.
    Private,
    /// One user at a time (apt and pip lock their caches anyway).
    Locked,
}

/// Which exec of a step: a step runs one exec, an unlocked dependency step two.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Hash, Serialize)]
#[serde(rename_all = "snake_case")]
pub enum Exec {
    /// The resolve half ([`Step::resolve`]).
    Resolve,
    /// The step's own exec ([`Run::Exec`]; the install, in a resolved dependency step).
    Run,
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
    /// The op carries `ignore_cache`.
    pub ignore_cache: bool,
    /// The resolve half of an unlocked dependency step; the step's `run` installs its output.
    #[serde(skip_serializing_if = "Option::is_none")]
    pub resolve: Option<ResolveRun>,
    /// The spec key the step comes from (`python.packages`).
    pub origin: &'static str,
    /// Where that key is in the spec.
    pub span: Span,
}

impl Step {
    /// The mounts of the step's execs (its resolve half's, then its own).
    pub fn mounts(&self) -> impl Iterator<Item = &Mount> {
        let own: &[Mount] = match &self.run {
            Run::Exec { mounts, .. } => mounts,
            _ => &[],
        };
        self.resolve
            .iter()
            .flat_map(|r| r.mounts.iter())
            .chain(own.iter())
    }
}

/// The resolve half of a dependency step: an exec on the same layer as the install that asks
/// pip what it would install (`pip install --dry-run --report`) and writes that set as an
/// exact requirements file ([`RESOLVE_SCRIPT`]). The install mounts the file read-only and
/// installs it with `--no-deps`, so BuildKit keys the installed layer on the file's content:
/// a re-resolution that finds nothing new leaves the layer cached. It runs with the step's
/// env, user and working directory.
#[derive(Debug, Clone, PartialEq, Eq, Serialize)]
pub struct ResolveRun {
    /// The progress title.
    pub title: String,
    /// argv: the script, its output file, pip's arguments.
    pub args: Vec<String>,
    /// Its mounts.
    pub mounts: Vec<Mount>,
    /// The op carries `ignore_cache`.
    pub ignore_cache: bool,
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
/// Where the requirements file is mounted (read-only, from the context) for its step.
pub const REQUIREMENTS_MOUNT: &str = "/run/torchkit/requirements.txt";
/// Where the pip constraints (torch and companions pinned) are mounted.
pub const CONSTRAINTS_MOUNT: &str = "/run/torchkit/constraints.txt";
/// Where a locked build mounts the lock's requirements (`name==version --hash=…`).
pub const LOCK_MOUNT: &str = "/run/torchkit/lock.txt";

/// How a step runs.
#[derive(Debug, Clone, PartialEq, Eq, Serialize)]
#[serde(rename_all = "snake_case")]
pub enum Run {
    /// Pull [`Plan::base`] for [`Plan::platform`].
    Image,
    /// A command.
    Exec {
        /// argv.
        args: Vec<String>,
        /// Step-only env, on top of [`BasePlan::env`] (`SOURCE_DATE_EPOCH` included).
        env: Vec<(String, String)>,
        /// Runs as.
        user: String,
        /// Working directory.
        cwd: String,
        /// Mounts besides the root filesystem.
        mounts: Vec<Mount>,
        /// No network at all (the verify stage's checks; its tests unless `[verify] network`).
        #[serde(default, skip_serializing_if = "std::ops::Not::not")]
        offline: bool,
        /// CDI devices the exec gets (`nvidia.com/gpu=all`).
        #[serde(default, skip_serializing_if = "Vec::is_empty")]
        devices: Vec<String>,
    },
    /// Copies from a helper node, as a Dockerfile `COPY` does (symlinks followed, a
    /// directory's contents copied, parents created, wildcards allowed).
    Copy {
        /// The node copied from ([`NodeId::Context`]).
        from: NodeId,
        /// (src in the node, dest in the image).
        copies: Vec<(String, String)>,
        /// Owner uid of the copied files.
        uid: u32,
        /// Owner gid of the copied files.
        gid: u32,
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

/// What a plan produces.
#[derive(Debug, Clone, PartialEq, Eq, Serialize)]
#[serde(rename_all = "snake_case")]
pub enum Output {
    /// An image: the last step's root filesystem, with this runtime config.
    Image(Box<ImagePlan>),
    /// A directory: what the last step's exec wrote to its mount `dest` (the lock's
    /// resolution run, exported with the `local` exporter).
    Directory {
        /// The mount point.
        dest: String,
    },
    /// The verify stage's report directory (`--target verify`).
    Verify,
}

/// The runtime configuration the image gets: with the base's config, all that the OCI image
/// config is made of ([`image_config`]).
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
    /// `created` of the image and of its history entries (`SOURCE_DATE_EPOCH`, RFC 3339).
    #[serde(skip_serializing_if = "Option::is_none")]
    pub created: Option<String>,
    /// The base image's config, which the image config extends (env, labels, history).
    #[serde(skip_serializing_if = "Option::is_none")]
    pub base_config: Option<serde_json::Value>,
}

/// How the steps that download (apt, pip and their resolution) get the CA bundle secret
/// [`CA_SECRET_ID`], for TLS-intercepting proxies and private indexes. The secret is a
/// mount while the step runs, never data of the graph or a layer.
#[derive(Debug, Clone, Copy, Default, PartialEq, Eq, Serialize)]
#[serde(rename_all = "snake_case")]
pub enum CaSecret {
    /// No mount: pip and apt trust the base image's CAs (the driver without `--ca-bundle`,
    /// the frontend with `TORCHKIT_CA_SECRET=0`).
    #[default]
    None,
    /// Mounted, and a build without the secret fails: `torchkit build --ca-bundle`, the
    /// frontend with `TORCHKIT_CA_SECRET=1`. pip and apt are pointed at it by env and option.
    Required,
    /// Mounted if the client has the secret, else absent; the steps use it only when the
    /// file is there (a shell test, [`CA_IF_PRESENT`]). The frontend's default, so that
    /// `--secret id=torchkit-ca,src=…` alone is enough.
    Optional,
}

impl CaSecret {
    /// No CA secret at all.
    pub fn is_none(&self) -> bool {
        *self == CaSecret::None
    }

    /// The plan mounts the secret (required or optional).
    pub fn is_mounted(self) -> bool {
        self != CaSecret::None
    }
}

/// The id of the CA bundle secret passed to downloading steps.
pub const CA_SECRET_ID: &str = crate::spec::CA_SECRET_ID;
/// Where the CA bundle secret is mounted.
pub const CA_SECRET_PATH: &str = "/run/secrets/torchkit-ca";
/// How a step with an optional CA secret ([`CaSecret::Optional`]) runs its argv:
/// `/bin/sh -c CA_IF_PRESENT sh ARGV…` points pip (and Python's `ssl`) at the bundle only
/// when the secret is there and not empty, then `exec`s the argv unparsed.
pub const CA_IF_PRESENT: &str = "if [ -s /run/secrets/torchkit-ca ]; then export PIP_CERT=/run/secrets/torchkit-ca SSL_CERT_FILE=/run/secrets/torchkit-ca; fi; exec \"$@\"";

/// Apt download cache mount point (kept outside /var/cache/apt so that the images'
/// `docker-clean` hook does not empty it).
pub const APT_CACHE_DIR: &str = "/var/cache/torchkit/apt";
/// Pip download cache mount point.
pub const PIP_CACHE_DIR: &str = "/root/.cache/pip";
/// Env used when the base config is not known (the `pytorch/pytorch` images' PATH).
pub const DEFAULT_PATH: &str =
    "/opt/conda/bin:/usr/local/nvidia/bin:/usr/local/cuda/bin:/usr/local/sbin:/usr/local/bin:/usr/sbin:/usr/bin:/sbin:/bin";

/// Compile spec + resolution to LLB and the image config: [`plan`], then [`lower`].
pub fn compile(
    spec: &Spec,
    res: &Resolution,
    opts: &CompileOptions,
) -> Result<Compiled, CompileError> {
    let plan = plan(spec, res, opts)?;
    let Lowered {
        definition,
        image_config,
        verify,
    } = lower_for(&plan, &opts.supported)?;
    Ok(Compiled {
        image_config,
        plan,
        definition,
        verify,
    })
}

#[cfg(test)]
mod tests;
