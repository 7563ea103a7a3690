//! The lock rules of a build, written once: [`check`] decides what a build does with
//! `torchkit.lock` in driver mode (`torchkit build`, `torchkit lock --check`) and in the
//! `# syntax=` frontend alike. The callers only read the files (from disk or through the
//! gateway) and show the warning.
//!
//! | lock | [`Policy::UseIfCurrent`] | [`Policy::Require`] / [`Policy::Verify`] |
//! |---|---|---|
//! | none | resolve as usual ([`LockStatus::Absent`]) | [`LockError::Missing`] |
//! | not a lock (bad TOML, other version) | [`LockError::Parse`] / [`LockError::Version`] | same |
//! | matches the spec | install it ([`LockStatus::Current`]) | same |
//! | stale: the spec's inputs changed | ignore it with a warning ([`LockStatus::Ignored`]) | [`LockError::Stale`] |
//! | made on another base than this build's | as stale | as stale |
//!
//! Each change is named, with the spec line it comes from when the spec sets that key.

use std::fmt;

use crate::plan::{base_plan, CompileOptions};
use crate::resolve::Resolution;
use crate::spec::Spec;

use super::{diff, Change, Lock, LockError, LockedSet, SpecInputs};

/// How a build treats `torchkit.lock`.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum Policy {
    /// Install a current lock; ignore a stale one with a warning; without one, resolve.
    UseIfCurrent,
    /// A missing or stale lock fails the build. The string is what asked for this, as the
    /// user wrote it: `--locked` (driver), `TORCHKIT_LOCKED=1` (frontend).
    Require(&'static str),
    /// `torchkit lock --check`: a missing or stale lock is an error; the fix is to re-lock
    /// and commit.
    Verify,
}

/// What a build does with the lock.
#[derive(Debug, Clone, PartialEq, Eq)]
pub enum LockStatus {
    /// There is no lock: resolve as usual.
    Absent,
    /// The lock matches the spec: install exactly its set.
    Current(Box<Lock>),
    /// The lock is out of date and not used (only under [`Policy::UseIfCurrent`]).
    Ignored(StaleLock),
}

impl LockStatus {
    /// What the build installs: the locked set of a current lock.
    pub fn locked_set(&self) -> Option<LockedSet> {
        match self {
            LockStatus::Current(l) => Some(l.locked_set()),
            _ => None,
        }
    }

    /// The warning to show for an ignored lock.
    pub fn warning(&self) -> Option<String> {
        match self {
            LockStatus::Ignored(s) => Some(s.to_string()),
            _ => None,
        }
    }
}

/// A lock that does not match the spec, and why.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct StaleLock {
    /// The lock file as the user knows it.
    pub file: String,
    /// Each change, located in the spec when it can be (`system.apt changed … (torchkit.toml:5)`).
    pub changes: Vec<String>,
}

impl fmt::Display for StaleLock {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        write!(
            f,
            "{} is out of date ({}); building without it. Run `torchkit lock` to update it",
            self.file,
            self.changes.join("; ")
        )
    }
}

/// Decide what a build does with its lock.
///
/// - `file` names the lock in messages: its path, as the user would look for it;
/// - `text` is its content, `None` when there is no such file;
/// - `spec` and `res` are the spec as it is now and what it resolved to, with the build's
///   overrides applied;
/// - `requirements` is the content of `[python] requirements`, part of what a lock
///   fingerprints (callers read it only when there is a lock: without one it is not used).
pub fn check(
    file: &str,
    text: Option<&str>,
    spec: &Spec,
    res: &Resolution,
    requirements: Option<&[u8]>,
    policy: Policy,
) -> Result<LockStatus, LockError> {
    let Some(text) = text else {
        return match policy {
            Policy::UseIfCurrent => Ok(LockStatus::Absent),
            _ => Err(LockError::Missing {
                file: file.to_string(),
                policy,
            }),
        };
    };
    let lock = Lock::parse(text, file)?;
    let mut changes = diff(&SpecInputs::new(spec, res, requirements), &lock);
    // A lock is made on one base: its packages are what that image needed. When the base
    // cannot even be named, compile fails later with the reason; nothing to compare here.
    if let Ok(base) = base_plan(spec, res, &CompileOptions::default()) {
        if base.reference != lock.base.reference {
            changes.push(Change {
                key: "base".into(),
                message: format!(
                    "the base is {} now, the lock was made on {}",
                    base.reference, lock.base.reference
                ),
            });
        }
    }
    if changes.is_empty() {
        return Ok(LockStatus::Current(Box::new(lock)));
    }
    let changes: Vec<String> = changes.iter().map(|c| located(spec, c)).collect();
    match policy {
        Policy::UseIfCurrent => Ok(LockStatus::Ignored(StaleLock {
            file: file.to_string(),
            changes,
        })),
        _ => Err(LockError::Stale {
            file: file.to_string(),
            changes,
            policy,
        }),
    }
}

/// A change with the spec line it comes from: `… (torchkit.toml:12)`, when the spec sets
/// the key (or its table).
pub fn located(spec: &Spec, c: &Change) -> String {
    let key = match c.key.as_str() {
        "torch" => "torch.version",
        "torchvision" => "torch.torchvision",
        "torchaudio" => "torch.torchaudio",
        "cuda" => "torch.cuda",
        "flavor" => "torch.flavor",
        "driver floor" => "target.driver",
        "gpus" => "target.gpus",
        k => k,
    };
    let table = key.split('.').next().unwrap_or(key);
    if spec.locations.contains_key(key) || spec.locations.contains_key(table) {
        format!("{c} ({}:{})", spec.filename, spec.span_of(key).line)
    } else {
        c.to_string()
    }
}

/// `--locked: ` before a message, naming what asked for the lock.
pub(super) fn asked_by(policy: &Policy) -> String {
    match policy {
        Policy::Require(flag) => format!("{flag}: "),
        Policy::UseIfCurrent | Policy::Verify => String::new(),
    }
}

/// The way out of a missing or stale lock, for [`LockError`]'s hint.
pub(super) fn fix(policy: &Policy, missing: bool) -> String {
    let make = if missing {
        "create it next to the spec with `torchkit lock`"
    } else {
        "run `torchkit lock` to update it"
    };
    match policy {
        Policy::Require(flag) => format!("{make}, or build without {flag}"),
        Policy::Verify | Policy::UseIfCurrent => format!("{make} and commit it"),
    }
}

#[cfg(test)]
mod tests {
    use super::*;
    use crate::error::Hint;
    use crate::lock::{LockedBase, PythonPackage};
    use crate::resolve::resolve;
    use crate::spec::parse;

    const SPEC: &str = "[torch]\nversion = \"2.8.0\"\ncuda = \"12.8\"\n[system]\napt = [\"jq\"]\n[python]\npackages = [\"six==1.16.0\"]\n";
    const BASE: &str = "docker.io/pytorch/pytorch:2.8.0-cuda12.8-cudnn9-runtime";
    const DIGEST: &str = "sha256:1111111111111111111111111111111111111111111111111111111111111111";
    const HASH: &str = "sha256:2222222222222222222222222222222222222222222222222222222222222222";
    const DRIVER: Policy = Policy::Require("--locked");
    const FRONTEND: Policy = Policy::Require("TORCHKIT_LOCKED");

    fn loaded(text: &str) -> (Spec, Resolution) {
        let spec = parse(text, "torchkit.toml").unwrap();
        let res = resolve(&spec.request()).unwrap();
        (spec, res)
    }

    /// The lock `torchkit lock` would write for `text`, made on `base`.
    fn lock_for(text: &str, base: &str) -> String {
        let (spec, res) = loaded(text);
        Lock::new(
            LockedBase {
                reference: base.into(),
                digest: DIGEST.into(),
                platform: "linux/amd64".into(),
            },
            &SpecInputs::new(&spec, &res, None),
            vec![],
            vec![PythonPackage {
                name: "six".into(),
                version: "1.16.0".into(),
                hashes: vec![HASH.into()],
                url: None,
            }],
        )
        .unwrap()
        .to_toml()
    }

    fn run(spec_text: &str, lock: Option<&str>, policy: Policy) -> Result<LockStatus, LockError> {
        let (spec, res) = loaded(spec_text);
        check("torchkit.lock", lock, &spec, &res, None, policy)
    }

    #[test]
    fn no_lock_resolves_unless_one_is_required() {
        assert_eq!(
            run(SPEC, None, Policy::UseIfCurrent).unwrap(),
            LockStatus::Absent
        );
        for (policy, message, hint) in [
            (
                DRIVER,
                "--locked: there is no torchkit.lock",
                "create it next to the spec with `torchkit lock`, or build without --locked",
            ),
            (
                FRONTEND,
                "TORCHKIT_LOCKED: there is no torchkit.lock",
                "create it next to the spec with `torchkit lock`, or build without TORCHKIT_LOCKED",
            ),
            (
                Policy::Verify,
                "there is no torchkit.lock",
                "create it next to the spec with `torchkit lock` and commit it",
            ),
        ] {
            let e = run(SPEC, None, policy).unwrap_err();
            assert!(matches!(e, LockError::Missing { .. }), "{e:?}");
            assert_eq!(e.to_string(), message);
            assert_eq!(e.hint().as_deref(), Some(hint));
        }
    }

    #[test]
    fn a_current_lock_is_installed_under_every_policy() {
        let lock = lock_for(SPEC, BASE);
        for policy in [Policy::UseIfCurrent, DRIVER, FRONTEND, Policy::Verify] {
            let status = run(SPEC, Some(&lock), policy).unwrap();
            let set = status.locked_set().expect("installed");
            assert_eq!(
                (set.reference.as_str(), set.digest.as_str()),
                (BASE, DIGEST)
            );
            assert!(set.python.contains("six==1.16.0"), "{}", set.python);
            assert_eq!(status.warning(), None);
        }
    }

    #[test]
    fn a_stale_lock_names_each_change_and_its_spec_line() {
        let lock = lock_for(SPEC, BASE);
        let now = SPEC.replace("[\"jq\"]", "[\"jq\", \"tree\"]");
        let status = run(&now, Some(&lock), Policy::UseIfCurrent).unwrap();
        assert_eq!(status.locked_set(), None);
        assert_eq!(
            status.warning().unwrap(),
            "torchkit.lock is out of date (system.apt changed since the lock was made (torchkit.toml:5)); \
             building without it. Run `torchkit lock` to update it"
        );
        for (policy, prefix, hint) in [
            (DRIVER, "--locked: ", "or build without --locked"),
            (
                FRONTEND,
                "TORCHKIT_LOCKED: ",
                "or build without TORCHKIT_LOCKED",
            ),
            (Policy::Verify, "", "and commit it"),
        ] {
            let e = run(&now, Some(&lock), policy).unwrap_err();
            assert_eq!(
                e.to_string(),
                format!(
                    "{prefix}torchkit.lock is out of date: the spec changed since it was made:\n  \
                     - system.apt changed since the lock was made (torchkit.toml:5)"
                )
            );
            let h = e.hint().unwrap();
            assert!(
                h.starts_with("run `torchkit lock` to update it") && h.ends_with(hint),
                "{h}"
            );
        }
    }

    #[test]
    fn a_resolution_change_is_named_with_old_and_new_values() {
        let lock = lock_for(SPEC, BASE);
        let now = SPEC.replace("cuda = \"12.8\"", "cuda = \"12.6\"");
        let e = run(&now, Some(&lock), DRIVER).unwrap_err();
        let LockError::Stale { changes, .. } = &e else {
            panic!("{e:?}")
        };
        assert!(
            changes.contains(&"cuda is 12.6 now, the lock has 12.8 (torchkit.toml:3)".to_string()),
            "{changes:?}"
        );
        // The resolver picks another image for CUDA 12.6: the lock was made on another base.
        assert!(
            changes.iter().any(|c| c.starts_with("the base is ")
                && c.contains("cuda12.6")
                && c.ends_with(&format!("the lock was made on {BASE}"))),
            "{changes:?}"
        );
    }

    #[test]
    fn a_lock_made_on_another_base_is_stale() {
        // The same inputs, but the lock's [base] is not the image this spec builds on.
        let other = "docker.io/pytorch/pytorch:2.8.0-cuda12.8-cudnn9-devel";
        let lock = lock_for(SPEC, other);
        let status = run(SPEC, Some(&lock), Policy::UseIfCurrent).unwrap();
        assert_eq!(status.locked_set(), None);
        assert!(
            status.warning().unwrap().contains(&format!(
                "the base is {BASE} now, the lock was made on {other}"
            )),
            "{status:?}"
        );
        for policy in [DRIVER, FRONTEND, Policy::Verify] {
            assert!(matches!(
                run(SPEC, Some(&lock), policy),
                Err(LockError::Stale { .. })
            ));
        }
        // With [base] set in the spec, the change points at that table.
        let spec = format!("{SPEC}[base]\nimage = \"{other}\"\n");
        let status = run(&spec, Some(&lock_for(&spec, BASE)), Policy::UseIfCurrent).unwrap();
        assert_eq!(
            status,
            LockStatus::Ignored(StaleLock {
                file: "torchkit.lock".into(),
                changes: vec![format!(
                    "the base is {other} now, the lock was made on {BASE} (torchkit.toml:8)"
                )],
            })
        );
    }

    #[test]
    fn a_broken_lock_fails_under_every_policy() {
        for policy in [Policy::UseIfCurrent, DRIVER, FRONTEND, Policy::Verify] {
            let e = run(SPEC, Some("version = 99\n"), policy).unwrap_err();
            assert_eq!(
                e,
                LockError::Version {
                    file: "torchkit.lock".into(),
                    found: 99
                }
            );
            let e = run(SPEC, Some("not toml ["), policy).unwrap_err();
            assert!(matches!(e, LockError::Parse { .. }), "{e:?}");
            assert_eq!(
                e.hint().as_deref(),
                Some("re-create it with `torchkit lock`")
            );
        }
    }
}
