//! The one pass that turns a profile into cache rules (docs/caching.md).
//!
//! The step builders decide *what* runs; this pass decides what may come from the cache,
//! after the steps are built: each step's [`CacheRule`] and `ignore_cache`, the epoch and
//! bust mounts (and their nodes), the busted list and the `(re-run: …)` marks on progress
//! titles. [`super::lower`] only follows the result.

use std::collections::BTreeMap;

use crate::spec::{Span, Spec};
use crate::vocab::{Profile, Step as StepName};

use super::steps::files_node;
use super::{
    CacheRule, CompileError, CompileOptions, Mount, NoCache, Node, NodeId, Run, Step, BUST_MOUNT,
    EPOCH_MOUNT,
};

/// What a build may reuse, decided once from the profile, `[cache]` and `--no-cache`.
#[derive(Debug, Clone)]
pub(super) struct Policy {
    profile: Profile,
    /// Why every step ignores the cache when the profile is `release`.
    ignore_reason: String,
    /// Steps re-run on every build, and why (`[cache] bust`, `--no-cache`).
    busted: BTreeMap<StepName, String>,
    /// `[cache] epoch` and where the spec sets it.
    epoch: Option<(String, Span)>,
    /// The per-build token of the bust node.
    token: Option<String>,
}

/// What [`Policy::apply`] adds besides the rules.
pub(super) struct Applied {
    /// The steps that take the bust node, in plan order.
    pub busted: Vec<StepName>,
    /// The epoch and bust nodes, when some step mounts them.
    pub nodes: Vec<Node>,
}

impl Policy {
    /// The policy of an image build.
    pub(super) fn for_build(spec: &Spec, opts: &CompileOptions, profile: Profile) -> Policy {
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
        Policy {
            profile,
            ignore_reason: "release profile".into(),
            busted,
            epoch: spec
                .cache
                .epoch
                .clone()
                .map(|e| (e, spec.span_of("cache.epoch"))),
            token: opts.build_token.clone(),
        }
    }

    /// The policy of `torchkit lock`'s resolution run: a release build (pinned base, nothing
    /// from the cache, no download caches) with its own reason.
    pub(super) fn resolution_run() -> Policy {
        Policy {
            profile: Profile::Release,
            ignore_reason: "torchkit lock".into(),
            busted: BTreeMap::new(),
            epoch: None,
            token: None,
        }
    }

    /// Whether the download steps mount their caches (every profile but `release`; the step
    /// builders write matching commands: `--no-cache-dir` without).
    pub(super) fn caches_downloads(&self) -> bool {
        self.profile != Profile::Release
    }

    fn rule(&self, s: &Step) -> CacheRule {
        let is_exec = matches!(s.run, Run::Exec { .. });
        let dependency = s.name.is_dependency();
        if self.profile == Profile::Release {
            CacheRule::IgnoreCache {
                reason: self.ignore_reason.clone(),
            }
        } else if let Some(why) = self.busted.get(&s.name) {
            // File and source ops have no cache mounts to keep: they simply ignore the cache.
            if is_exec {
                CacheRule::Bust {
                    reason: why.clone(),
                }
            } else {
                CacheRule::IgnoreCache {
                    reason: why.clone(),
                }
            }
        } else if self.profile == Profile::Test && dependency {
            // A locked step has nothing to resolve: the test profile re-runs its install.
            let reason = "test profile".to_string();
            if s.resolve.is_some() {
                CacheRule::Reresolve { reason }
            } else {
                CacheRule::Bust { reason }
            }
        } else if self.epoch.is_some() && dependency {
            CacheRule::Epoch
        } else {
            CacheRule::Reuse
        }
    }

    /// Assign every step its rule and what follows from it.
    pub(super) fn apply(&self, steps: &mut [Step]) -> Result<Applied, CompileError> {
        let mut nodes = vec![];
        for s in steps.iter_mut() {
            let rule = self.rule(s);
            s.ignore_cache = matches!(rule, CacheRule::IgnoreCache { .. });
            if let Some(r) = &mut s.resolve {
                r.ignore_cache = s.ignore_cache;
            }
            s.cache = rule;
        }

        // A new epoch re-runs both halves of the dependency steps: it asks for a
        // reinstall, not only a re-resolution.
        if let Some((epoch, span)) = &self.epoch {
            let mut used = false;
            for s in steps.iter_mut() {
                if !s.name.is_dependency() {
                    continue;
                }
                for mounts in exec_mounts(s, true, true) {
                    mounts.push(Mount::node(EPOCH_MOUNT, NodeId::Epoch, "/epoch"));
                    used = true;
                }
            }
            if used {
                let mut n = files_node(
                    NodeId::Epoch,
                    format!("[torchkit] epoch {epoch}"),
                    vec![("/epoch", epoch.clone())],
                );
                n.origin = Some("cache.epoch");
                n.span = Some(*span);
                nodes.push(n);
            }
        }

        // The bust node: whole steps for `Bust`, only the resolve for `Reresolve` (the
        // install follows the resolved set).
        let busted: Vec<StepName> = steps
            .iter()
            .filter(|s| {
                matches!(
                    s.cache,
                    CacheRule::Bust { .. } | CacheRule::Reresolve { .. }
                )
            })
            .map(|s| s.name)
            .fold(vec![], |mut v, n| {
                // The verify stage is several execs of one step.
                if !v.contains(&n) {
                    v.push(n);
                }
                v
            });
        if !busted.is_empty() {
            let Some(token) = &self.token else {
                return Err(CompileError::MissingBuildToken { steps: busted });
            };
            for s in steps.iter_mut() {
                let (resolve, run) = match s.cache {
                    CacheRule::Bust { .. } => (true, true),
                    CacheRule::Reresolve { .. } => (true, false),
                    _ => continue,
                };
                for mounts in exec_mounts(s, resolve, run) {
                    mounts.push(Mount::node(BUST_MOUNT, NodeId::Bust, "/bust"));
                }
            }
            nodes.push(files_node(
                NodeId::Bust,
                format!(
                    "[torchkit] bust: {}",
                    busted
                        .iter()
                        .map(|s| s.as_str())
                        .collect::<Vec<_>>()
                        .join(", ")
                ),
                vec![("/bust", token.clone())],
            ));
        }

        // Busted steps are marked where users look: the progress line. A re-resolved step
        // marks its resolve; its install runs only if the resolved set changed.
        for s in steps.iter_mut() {
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
        Ok(Applied { busted, nodes })
    }
}

/// The mount lists of a step's execs: its resolve half's (when `resolve`) and its own (when
/// `run`). Steps that are not execs have none.
fn exec_mounts(s: &mut Step, resolve: bool, run: bool) -> Vec<&mut Vec<Mount>> {
    let mut out = vec![];
    if let (true, Some(r)) = (resolve, &mut s.resolve) {
        out.push(&mut r.mounts);
    }
    if let (true, Run::Exec { mounts, .. }) = (run, &mut s.run) {
        out.push(mounts);
    }
    out
}
