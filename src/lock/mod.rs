//! `torchkit.lock`: the exact environment a spec resolved to, and what it was resolved from.
//!
//! Pure: text in, data out. `torchkit lock` (an edge) runs the resolution on BuildKit (a plan
//! of its own, `plan::resolution_run`), reads its answers with [`pip_report`] and
//! [`apt_simulated`] and hands them to [`Lock::new`]; `torchkit build` reads the lock and
//! compiles the [`LockedSet`] into the plan (`plan::CompileOptions::lock`).
//!
//! # Format
//!
//! TOML, every table and list sorted, one value per line, so a re-lock diffs cleanly:
//!
//! ```toml
//! version = 1
//!
//! [base]
//! reference = "docker.io/pytorch/pytorch:2.8.0-cuda12.8-cudnn9-runtime"
//! digest = "sha256:…"
//! platform = "linux/amd64"
//!
//! [inputs]
//! torch = "2.8.0"
//! cuda = "12.8"
//! …
//! [inputs.fingerprints]
//! "python.packages" = "sha256:…"
//!
//! [[apt]]
//! name = "jq"
//! version = "1.6-2.1"
//!
//! [[python]]
//! name = "six"
//! version = "1.16.0"
//! hashes = ["sha256:…"]
//! url = "https://files.pythonhosted.org/…"
//! ```
//!
//! `[inputs]` records what the lock was made from: the resolution (torch, CUDA, driver
//! floor, flavor, GPU verdicts) and a fingerprint of each spec input that shapes the
//! environment. [`diff`] compares them with the spec as it is now and names each change;
//! [`check`] applies the lock rules of a build (missing, stale, made on another base) for
//! the driver and the frontend alike.

mod check;
mod resolve;

use std::collections::BTreeMap;
use std::fmt;

use serde::{Deserialize, Serialize};
use sha2::Digest as _;

use crate::resolve::{Resolution, Verdict};
use crate::spec::Spec;

pub use crate::plan::LockedSet;
pub use check::{check, located, LockStatus, Policy, StaleLock};
pub use resolve::{apt_simulated, lock_requirements, pip_report};

/// The lock format version this code writes and reads.
pub const LOCK_VERSION: u32 = 1;
/// The lock's file name, next to the spec.
pub const LOCK_FILE: &str = "torchkit.lock";

/// A parsed `torchkit.lock`.
#[derive(Debug, Clone, PartialEq, Eq, Serialize, Deserialize)]
#[serde(deny_unknown_fields)]
pub struct Lock {
    /// Format version ([`LOCK_VERSION`]).
    pub version: u32,
    /// The pinned base image.
    pub base: LockedBase,
    /// What the lock was made from.
    pub inputs: Inputs,
    /// System packages, exact versions (dependencies included), sorted by name.
    #[serde(default, skip_serializing_if = "Vec::is_empty")]
    pub apt: Vec<AptPackage>,
    /// Python distributions, exact versions with hashes, sorted by name.
    #[serde(default, skip_serializing_if = "Vec::is_empty")]
    pub python: Vec<PythonPackage>,
}

/// `[base]`.
#[derive(Debug, Clone, PartialEq, Eq, Serialize, Deserialize)]
#[serde(deny_unknown_fields)]
pub struct LockedBase {
    /// Normalized reference, mirror applied (`docker.io/pytorch/pytorch:…`).
    pub reference: String,
    /// Manifest digest, `sha256:…`.
    pub digest: String,
    /// `linux/amd64`.
    pub platform: String,
}

/// `[inputs]`: the resolution and fingerprints of the spec inputs.
#[derive(Debug, Clone, PartialEq, Eq, Serialize, Deserialize)]
#[serde(deny_unknown_fields)]
pub struct Inputs {
    /// torch release.
    pub torch: String,
    /// torchvision release.
    pub torchvision: String,
    /// torchaudio release.
    pub torchaudio: String,
    /// CUDA variant, or `cpu`.
    pub cuda: String,
    /// `runtime` or `devel`.
    pub flavor: String,
    /// Python of the base image.
    pub python: String,
    /// Minimum host driver for the CUDA variant.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub driver_floor: Option<String>,
    /// `"<gpu>: <verdict>"`, in the spec's order.
    #[serde(default, skip_serializing_if = "Vec::is_empty")]
    pub gpus: Vec<String>,
    /// Spec input key → `sha256:` of its canonical value (see [`SpecInputs`]).
    #[serde(default)]
    pub fingerprints: BTreeMap<String, String>,
}

/// `[[apt]]`.
#[derive(Debug, Clone, PartialEq, Eq, PartialOrd, Ord, Serialize, Deserialize)]
#[serde(deny_unknown_fields)]
pub struct AptPackage {
    /// Package name.
    pub name: String,
    /// Exact Debian version.
    pub version: String,
}

/// `[[python]]`.
#[derive(Debug, Clone, PartialEq, Eq, PartialOrd, Ord, Serialize, Deserialize)]
#[serde(deny_unknown_fields)]
pub struct PythonPackage {
    /// Distribution name, normalized (PEP 503: lower case, runs of `-_.` → `-`).
    pub name: String,
    /// Exact version.
    pub version: String,
    /// `sha256:<hex>` of the archive, at least one.
    pub hashes: Vec<String>,
    /// Where the archive came from.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub url: Option<String>,
}

/// Why a lock could not be read or made.
#[derive(Debug, thiserror::Error, PartialEq, Eq)]
pub enum LockError {
    /// Not TOML, or not this format.
    #[error("{file}: {message}")]
    Parse {
        /// The lock file name.
        file: String,
        /// What is wrong.
        message: String,
    },
    /// Written by another torchkit.
    #[error("{file}: lock format version {found}, this torchkit reads version {LOCK_VERSION}")]
    Version {
        /// The lock file name.
        file: String,
        /// The version in the file.
        found: u32,
    },
    /// A package has no sha256 hash, so `--require-hashes` could not install it.
    #[error("{name} {version} has no sha256 hash (pip report: {detail})")]
    NoHash {
        /// The distribution.
        name: String,
        /// Its version.
        version: String,
        /// What the report said instead.
        detail: String,
    },
    /// A resolver output could not be read.
    #[error("{what}: {message}")]
    Report {
        /// Which output.
        what: &'static str,
        /// What is wrong.
        message: String,
    },
    /// The build asked for a lock ([`Policy::Require`], [`Policy::Verify`]) and there is none.
    #[error("{}there is no {file}", check::asked_by(policy))]
    Missing {
        /// The lock file as the user knows it.
        file: String,
        /// What asked for it.
        policy: Policy,
    },
    /// The build asked for a current lock and this one does not match the spec.
    #[error(
        "{}{file} is out of date: the spec changed since it was made:\n  - {}",
        check::asked_by(policy),
        changes.join("\n  - ")
    )]
    Stale {
        /// The lock file as the user knows it.
        file: String,
        /// Each change, located in the spec when it can be.
        changes: Vec<String>,
        /// What asked for a current lock.
        policy: Policy,
    },
}

impl crate::error::Hint for LockError {
    fn hint(&self) -> Option<String> {
        match self {
            LockError::Parse { .. } | LockError::Version { .. } => {
                Some("re-create it with `torchkit lock`".into())
            }
            LockError::NoHash { .. } => Some(
                "the index served no sha256 for this file; use an index that does (PyPI does)"
                    .into(),
            ),
            LockError::Report { .. } => None,
            LockError::Missing { policy, .. } => Some(check::fix(policy, true)),
            LockError::Stale { policy, .. } => Some(check::fix(policy, false)),
        }
    }
}

/// The spec inputs that shape the environment, reduced to fingerprints. Built from the spec
/// as it is now, with the requirements file's content read by the caller.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct SpecInputs {
    /// The `[inputs]` table this spec would be locked with.
    pub inputs: Inputs,
}

fn fingerprint<T: Serialize + ?Sized>(value: &T) -> String {
    let json = serde_json::to_vec(value).expect("plain data serializes");
    format!("sha256:{}", hex::encode(sha2::Sha256::digest(json)))
}

/// The PEP 503 normal form of a distribution name.
pub fn normalize_name(name: &str) -> String {
    let mut out = String::with_capacity(name.len());
    let mut sep = false;
    for c in name.chars() {
        if matches!(c, '-' | '_' | '.') {
            sep = true;
        } else {
            if sep && !out.is_empty() {
                out.push('-');
            }
            sep = false;
            out.push(c.to_ascii_lowercase());
        }
    }
    out
}

impl SpecInputs {
    /// Fingerprint the spec. `requirements` is the content of `[python] requirements`
    /// (None when the spec has none).
    pub fn new(spec: &Spec, res: &Resolution, requirements: Option<&[u8]>) -> Self {
        let mut f = BTreeMap::new();
        let mut put = |k: &str, v: String| {
            f.insert(k.to_string(), v);
        };
        if !spec.python.packages.is_empty() {
            put("python.packages", fingerprint(&spec.python.packages));
        }
        if let Some(content) = requirements {
            put(
                "python.requirements",
                format!("sha256:{}", hex::encode(sha2::Sha256::digest(content))),
            );
        }
        if let Some(u) = &spec.python.index_url {
            put("python.index_url", fingerprint(u));
        }
        if !spec.python.extra_index_urls.is_empty() {
            put(
                "python.extra_index_urls",
                fingerprint(&spec.python.extra_index_urls),
            );
        }
        if !spec.system.apt.is_empty() {
            put("system.apt", fingerprint(&spec.system.apt));
        }
        if spec.base.image.is_some() || spec.base.digest.is_some() || spec.base.mirror.is_some() {
            put(
                "base",
                fingerprint(&(&spec.base.image, &spec.base.digest, &spec.base.mirror)),
            );
        }
        put(
            "torch",
            fingerprint(&(
                &spec.torch.version,
                spec.torch.cuda.to_string(),
                spec.torch.flavor.as_str(),
                &spec.torch.torchvision,
                &spec.torch.torchaudio,
            )),
        );
        let gpus = res
            .gpus
            .iter()
            .map(|g| {
                let v = match g.verdict {
                    Verdict::Native => "native",
                    Verdict::PtxJit => "ptx-jit",
                    Verdict::Unsupported => "unsupported",
                };
                format!("{} (sm {}): {v}", g.gpu, g.compute_capability)
            })
            .collect();
        SpecInputs {
            inputs: Inputs {
                torch: res.torch.clone(),
                torchvision: res.torchvision.clone(),
                torchaudio: res.torchaudio.clone(),
                cuda: res.cuda.clone().unwrap_or_else(|| "cpu".into()),
                flavor: res.flavor.as_str().to_string(),
                python: res.python.clone(),
                driver_floor: res.min_driver.clone(),
                gpus,
                fingerprints: f,
            },
        }
    }
}

/// One difference between the spec now and the lock.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct Change {
    /// The spec key (`python.packages`) or resolution field (`cuda`) that changed.
    pub key: String,
    /// A sentence for people.
    pub message: String,
}

impl fmt::Display for Change {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        f.write_str(&self.message)
    }
}

/// What changed between the spec inputs now and the lock, in a stable order (resolution
/// fields first, then spec keys alphabetically). Empty means the lock is current.
pub fn diff(now: &SpecInputs, lock: &Lock) -> Vec<Change> {
    let (a, b) = (&lock.inputs, &now.inputs);
    let mut out = vec![];
    let mut field = |key: &str, old: &str, new: &str| {
        if old != new {
            out.push(Change {
                key: key.to_string(),
                message: format!("{key} is {new} now, the lock has {old}"),
            });
        }
    };
    field("torch", &a.torch, &b.torch);
    field("torchvision", &a.torchvision, &b.torchvision);
    field("torchaudio", &a.torchaudio, &b.torchaudio);
    field("cuda", &a.cuda, &b.cuda);
    field("flavor", &a.flavor, &b.flavor);
    field("python", &a.python, &b.python);
    let none = "none";
    field(
        "driver floor",
        a.driver_floor.as_deref().unwrap_or(none),
        b.driver_floor.as_deref().unwrap_or(none),
    );
    if a.gpus != b.gpus {
        out.push(Change {
            key: "gpus".into(),
            message: format!(
                "GPU verdicts are [{}] now, the lock has [{}]",
                b.gpus.join(", "),
                a.gpus.join(", ")
            ),
        });
    }
    let keys: std::collections::BTreeSet<&String> =
        a.fingerprints.keys().chain(b.fingerprints.keys()).collect();
    for k in keys {
        let message = match (a.fingerprints.get(k), b.fingerprints.get(k)) {
            (Some(x), Some(y)) if x == y => continue,
            (Some(_), Some(_)) => format!("{k} changed since the lock was made"),
            (None, Some(_)) => format!("{k} was added since the lock was made"),
            (Some(_), None) => format!("{k} was removed since the lock was made"),
            (None, None) => continue,
        };
        out.push(Change {
            key: k.clone(),
            message,
        });
    }
    out
}

impl Lock {
    /// A lock from its parts; packages are sorted and hashes checked.
    pub fn new(
        base: LockedBase,
        now: &SpecInputs,
        mut apt: Vec<AptPackage>,
        mut python: Vec<PythonPackage>,
    ) -> Result<Lock, LockError> {
        for p in &mut python {
            p.name = normalize_name(&p.name);
            p.hashes.sort();
            p.hashes.dedup();
            if !p.hashes.iter().any(|h| h.starts_with("sha256:")) {
                return Err(LockError::NoHash {
                    name: p.name.clone(),
                    version: p.version.clone(),
                    detail: if p.hashes.is_empty() {
                        "no hashes".into()
                    } else {
                        p.hashes.join(", ")
                    },
                });
            }
        }
        apt.sort();
        apt.dedup();
        python.sort();
        python.dedup();
        Ok(Lock {
            version: LOCK_VERSION,
            base,
            inputs: now.inputs.clone(),
            apt,
            python,
        })
    }

    /// Parse a lock file's text; `file` names it in errors.
    pub fn parse(text: &str, file: &str) -> Result<Lock, LockError> {
        #[derive(Deserialize)]
        struct Head {
            version: Option<u32>,
        }
        let head: Head = toml::from_str(text).map_err(|e| LockError::Parse {
            file: file.into(),
            message: e.message().to_string(),
        })?;
        match head.version {
            Some(LOCK_VERSION) => {}
            Some(found) => {
                return Err(LockError::Version {
                    file: file.into(),
                    found,
                })
            }
            None => {
                return Err(LockError::Parse {
                    file: file.into(),
                    message: "no `version`: this is not a torchkit lock".into(),
                })
            }
        }
        let lock: Lock = toml::from_str(text).map_err(|e| {
            let at = e
                .span()
                .map(|s| {
                    let line = text[..s.start].matches('\n').count() + 1;
                    format!("line {line}: ")
                })
                .unwrap_or_default();
            LockError::Parse {
                file: file.into(),
                message: format!("{at}{}", e.message()),
            }
        })?;
        Ok(lock)
    }

    /// The file's text: a header comment and sorted TOML.
    pub fn to_toml(&self) -> String {
        let mut sorted = self.clone();
        sorted.apt.sort();
        sorted.python.sort();
        let body = toml::to_string(&sorted).expect("the lock serializes");
        format!(
            "# torchkit.lock: the exact environment of this spec. Written by `torchkit lock`;\n\
             # commit it, and re-run `torchkit lock` after changing the spec.\n{body}"
        )
    }

    /// What a locked build installs.
    pub fn locked_set(&self) -> LockedSet {
        LockedSet {
            reference: self.base.reference.clone(),
            digest: self.base.digest.clone(),
            apt: self
                .apt
                .iter()
                .map(|p| format!("{}={}", p.name, p.version))
                .collect(),
            python: lock_requirements(&self.python),
            python_count: self
                .python
                .iter()
                .filter(|p| !BASE_PROVIDED.contains(&p.name.as_str()))
                .count(),
        }
    }
}

/// Distributions the base image provides (pinned by the build's constraints); a locked
/// build never reinstalls them.
pub const BASE_PROVIDED: &[&str] = &["torch", "torchvision", "torchaudio"];

#[cfg(test)]
mod tests;
