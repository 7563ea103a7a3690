//! The answers of `torchkit lock`'s resolution run (`plan::resolution_run`), read back: the
//! pip report and apt's simulated install, and the requirements file a locked build installs.

use super::{AptPackage, LockError, PythonPackage, BASE_PROVIDED};

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
