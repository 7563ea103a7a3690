//! The resolution run of `torchkit lock`, as pure parts: the LLB that asks pip and apt
//! inside the pinned base what they would install, and parsers of their answers.
//!
//! One exec on the base writes two files to a scratch mount at [`OUT_DIR`], which the
//! caller exports with the `local` exporter:
//! - [`PIP_RESULT`]: `pip install --dry-run --ignore-installed --report` (pip ≥ 22.2) for the
//!   spec's packages and requirements, under the build's torch constraints;
//! - [`APT_RESULT`]: `apt-get install -s --no-install-recommends` of the apt list, whose
//!   `Inst name (version …)` lines name every package and dependency with its version.
//!
//! The packages and requirements go in as files (file ops on scratch, bind-mounted
//! read-only), so no requirement string is ever parsed by a shell.

use crate::llb::{self, pb, Exec, FileAction, Mount, Platform, State};
use crate::plan::{CA_SECRET_ID, CA_SECRET_PATH, CONSTRAINTS_MOUNT, REQUIREMENTS_MOUNT};
use crate::resolve::Resolution;
use crate::spec::Spec;

use super::{AptPackage, LockError, PythonPackage, BASE_PROVIDED};

/// Where the run writes its results (a scratch mount, exported).
pub const OUT_DIR: &str = "/out";
/// The pip report, relative to the exported directory.
pub const PIP_RESULT: &str = "pip-report.json";
/// apt's simulated install, relative to the exported directory.
pub const APT_RESULT: &str = "apt-simulate.txt";
/// Where the spec's `[python] packages` are mounted as a requirements file.
const PACKAGES_MOUNT: &str = "/run/torchkit/packages.txt";

/// What the resolution run needs.
#[derive(Debug, Clone)]
pub struct ResolveInputs<'a> {
    /// The spec.
    pub spec: &'a Spec,
    /// Its resolution.
    pub resolution: &'a Resolution,
    /// The base reference (mirror applied), without digest.
    pub reference: String,
    /// The pinned digest.
    pub digest: String,
    /// The base config JSON, for its env (PATH).
    pub base_config: Option<&'a serde_json::Value>,
    /// The requirements file's content.
    pub requirements: Option<Vec<u8>>,
    /// Mount the `torchkit-ca` secret for downloads.
    pub ca_bundle: bool,
    /// A value unique to this run: the exec must never come from the cache.
    pub token: String,
}

/// The LLB of the resolution run; its result is the [`OUT_DIR`] mount.
pub fn resolve_definition(i: &ResolveInputs<'_>) -> Result<pb::Definition, llb::LlbError> {
    let spec = i.spec;
    let res = i.resolution;
    let mut base: State = llb::image(&i.reference)
        .digest(Some(&i.digest))
        .platform(Platform::linux_amd64())
        .custom_name(format!("[torchkit lock] base {}@{}", i.reference, i.digest))
        .into();
    let env: Vec<(String, String)> = i
        .base_config
        .and_then(|c| c.pointer("/config/Env"))
        .and_then(|e| e.as_array())
        .map(|l| {
            l.iter()
                .filter_map(|v| v.as_str()?.split_once('='))
                .map(|(k, v)| (k.to_string(), v.to_string()))
                .collect()
        })
        .unwrap_or_else(|| vec![("PATH".into(), crate::plan::DEFAULT_PATH.into())]);
    base = base.add_envs(env);

    let constraints = format!(
        "torch=={}\ntorchvision=={}\ntorchaudio=={}\n",
        res.torch, res.torchvision, res.torchaudio
    );
    let mut inputs = FileAction::mkfile("/constraints.txt", 0o644, constraints, None);
    let mut packages = spec.python.packages.join("\n");
    packages.push('\n');
    inputs = inputs.and_mkfile("/packages.txt", 0o644, packages, None);
    if let Some(r) = &i.requirements {
        inputs = inputs.and_mkfile("/requirements.txt", 0o644, r.clone(), None);
    }
    inputs = inputs.and_mkfile("/token", 0o644, i.token.clone(), None);
    let files = llb::scratch().file(inputs.custom_name("[torchkit lock] inputs"));

    let mut script = format!("set -eu; mkdir -p {OUT_DIR}; ");
    let has_python = !spec.python.packages.is_empty() || i.requirements.is_some();
    if has_python {
        let mut pip = format!(
            "python -m pip install --dry-run --ignore-installed --quiet --report {OUT_DIR}/{PIP_RESULT} -c {CONSTRAINTS_MOUNT}"
        );
        if let Some(u) = &spec.python.index_url {
            pip.push_str(&format!(" --index-url '{}'", u.replace('\'', "")));
        }
        for u in &spec.python.extra_index_urls {
            pip.push_str(&format!(" --extra-index-url '{}'", u.replace('\'', "")));
        }
        if !spec.python.packages.is_empty() {
            pip.push_str(&format!(" -r {PACKAGES_MOUNT}"));
        }
        if i.requirements.is_some() {
            pip.push_str(&format!(" -r {REQUIREMENTS_MOUNT}"));
        }
        script.push_str(&pip);
        script.push_str("; ");
    }
    if !spec.system.apt.is_empty() {
        let ca = if i.ca_bundle {
            format!(" -o Acquire::https::CAInfo={CA_SECRET_PATH}")
        } else {
            String::new()
        };
        // Names were validated by the spec (letters, digits, + - . = ~ :).
        script.push_str(&format!(
            "apt-get{ca} update -qq >/dev/null; apt-get{ca} install -s --no-install-recommends {} > {OUT_DIR}/{APT_RESULT}; ",
            spec.system.apt.join(" ")
        ));
    }
    script.push_str("true");

    let mut e = Exec::new(["/bin/sh", "-c", &script])
        .user("root")
        .cwd("/")
        .env("PIP_DISABLE_PIP_VERSION_CHECK", "1")
        .env("PIP_NO_INPUT", "1")
        .env("PIP_ROOT_USER_ACTION", "ignore")
        .env("DEBIAN_FRONTEND", "noninteractive")
        .custom_name("[torchkit lock] resolve: pip install --dry-run, apt-get install -s")
        .ignore_cache(true)
        .mount(Mount::bind(OUT_DIR, &llb::scratch(), "/", false))
        .mount(Mount::bind(
            CONSTRAINTS_MOUNT,
            &files,
            "/constraints.txt",
            true,
        ))
        .mount(Mount::bind(PACKAGES_MOUNT, &files, "/packages.txt", true))
        .mount(Mount::bind("/run/torchkit/token", &files, "/token", true));
    if i.requirements.is_some() {
        e = e.mount(Mount::bind(
            REQUIREMENTS_MOUNT,
            &files,
            "/requirements.txt",
            true,
        ));
    }
    if i.ca_bundle {
        e = e
            .env("PIP_CERT", CA_SECRET_PATH)
            .env("SSL_CERT_FILE", CA_SECRET_PATH)
            .mount(Mount::secret(CA_SECRET_PATH, CA_SECRET_ID));
    }
    let out = base
        .run(e)
        .mount(OUT_DIR)
        .expect("a writable bind has an output");
    llb::marshal(&out)
}

/// The distributions of a pip `--report` (format version 1), with their sha256 hashes.
pub fn pip_report(json: &[u8]) -> Result<Vec<PythonPackage>, LockError> {
    let err = |message: String| LockError::Report {
        what: "pip report",
        message,
    };
    let v: serde_json::Value =
        serde_json::from_slice(json).map_err(|e| err(format!("not JSON: {e}")))?;
    let install = v
        .get("install")
        .and_then(|i| i.as_array())
        .ok_or_else(|| err("no `install` list".into()))?;
    let mut out = vec![];
    for item in install {
        let name = item.pointer("/metadata/name").and_then(|n| n.as_str());
        let version = item.pointer("/metadata/version").and_then(|n| n.as_str());
        let (Some(name), Some(version)) = (name, version) else {
            return Err(err("an entry without metadata.name/version".into()));
        };
        let info = item.get("download_info");
        let url = info
            .and_then(|d| d.get("url"))
            .and_then(|u| u.as_str())
            .map(String::from);
        let mut hashes = vec![];
        if let Some(a) = info.and_then(|d| d.get("archive_info")) {
            if let Some(map) = a.get("hashes").and_then(|h| h.as_object()) {
                for (alg, hex) in map {
                    if let Some(hex) = hex.as_str() {
                        hashes.push(format!("{alg}:{hex}"));
                    }
                }
            }
            if let Some((alg, hex)) = a
                .get("hash")
                .and_then(|h| h.as_str())
                .and_then(|h| h.split_once('='))
            {
                hashes.push(format!("{alg}:{hex}"));
            }
        }
        hashes.retain(|h| h.starts_with("sha256:"));
        hashes.sort();
        hashes.dedup();
        if hashes.is_empty() {
            let detail = match info {
                Some(d) if d.get("dir_info").is_some() => "a local directory".to_string(),
                Some(d) if d.get("vcs_info").is_some() => "a VCS checkout".to_string(),
                Some(_) => "no sha256 in archive_info".to_string(),
                None => "no download_info".to_string(),
            };
            return Err(LockError::NoHash {
                name: name.into(),
                version: version.into(),
                detail,
            });
        }
        out.push(PythonPackage {
            name: super::normalize_name(name),
            version: version.to_string(),
            hashes,
            url,
        });
    }
    out.sort();
    Ok(out)
}

/// The packages `apt-get install -s` would install: its `Inst name [old] (version …)` lines.
pub fn apt_simulated(text: &str) -> Result<Vec<AptPackage>, LockError> {
    let mut out = vec![];
    for line in text.lines() {
        let Some(rest) = line.strip_prefix("Inst ") else {
            continue;
        };
        let bad = || LockError::Report {
            what: "apt-get install -s",
            message: format!("cannot read `{line}`"),
        };
        let (name, rest) = rest.split_once(' ').ok_or_else(bad)?;
        let mut rest = rest.trim_start();
        if rest.starts_with('[') {
            rest = rest.split_once(']').ok_or_else(bad)?.1.trim_start();
        }
        let version = rest
            .strip_prefix('(')
            .and_then(|r| r.split([' ', ')']).next())
            .filter(|v| !v.is_empty())
            .ok_or_else(bad)?;
        // `name:arch` for multi-arch packages; the plain name installs the native one.
        let name = name.split(':').next().unwrap_or(name);
        out.push(AptPackage {
            name: name.to_string(),
            version: version.to_string(),
        });
    }
    out.sort();
    out.dedup();
    Ok(out)
}

/// The requirements file of a locked install: `name==version --hash=sha256:…` per line,
/// sorted, without the distributions the base provides.
pub fn lock_requirements(python: &[PythonPackage]) -> String {
    let mut lines: Vec<String> = python
        .iter()
        .filter(|p| !BASE_PROVIDED.contains(&p.name.as_str()))
        .map(|p| {
            let mut l = format!("{}=={}", p.name, p.version);
            for h in p.hashes.iter().filter(|h| h.starts_with("sha256:")) {
                l.push_str(&format!(" --hash={h}"));
            }
            l
        })
        .collect();
    lines.sort();
    let mut s = lines.join("\n");
    s.push('\n');
    s
}
