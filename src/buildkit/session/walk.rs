//! Walking a local directory into fsutil `Stat` records, filtered the way fsutil's
//! `FilterFS` does (`filter.go`, `followlinks.go`, `stat.go`, `stat_unix.go`).
//!
//! Order: depth-first, each directory before its contents, siblings sorted bytewise, so
//! the `/`-separated relative paths ascend with the separator sorting lowest, which is
//! the order fsutil's receiver validates. A directory that is itself filtered out is still
//! sent, just before the first entry under it that is kept. Synchronous: callers run it
//! on a blocking thread.

use std::collections::HashMap;
use std::os::unix::ffi::OsStrExt;
use std::os::unix::fs::MetadataExt;
use std::path::{Path, PathBuf};

use crate::proto::fsutil::types::Stat;

use super::patterns::{clean_path, MatchInfo, PatternError, PatternMatcher};

/// Go `os.FileMode` bits (`io/fs`), which fsutil puts in `Stat.mode`.
pub mod go_mode {
    /// `ModeDir`.
    pub const DIR: u32 = 1 << 31;
    /// `ModeSymlink`.
    pub const SYMLINK: u32 = 1 << 27;
    /// `ModeDevice`.
    pub const DEVICE: u32 = 1 << 26;
    /// `ModeNamedPipe`.
    pub const NAMED_PIPE: u32 = 1 << 25;
    /// `ModeSocket`.
    pub const SOCKET: u32 = 1 << 24;
    /// `ModeSetuid`.
    pub const SETUID: u32 = 1 << 23;
    /// `ModeSetgid`.
    pub const SETGID: u32 = 1 << 22;
    /// `ModeCharDevice`.
    pub const CHAR_DEVICE: u32 = 1 << 21;
    /// `ModeSticky`.
    pub const STICKY: u32 = 1 << 20;
    /// `ModeIrregular`.
    pub const IRREGULAR: u32 = 1 << 19;
    /// `ModeType`: every type bit; a mode with none of them is a regular file.
    pub const TYPE: u32 = DIR | SYMLINK | NAMED_PIPE | SOCKET | DEVICE | CHAR_DEVICE | IRREGULAR;

    /// Converts a POSIX `st_mode` to Go `FileMode` bits (Go `fillFileStatFromSys`).
    pub fn from_unix(st_mode: u32) -> u32 {
        let mut m = st_mode & 0o777;
        m |= match st_mode & 0o170000 {
            0o060000 => DEVICE,
            0o020000 => DEVICE | CHAR_DEVICE,
            0o040000 => DIR,
            0o010000 => NAMED_PIPE,
            0o120000 => SYMLINK,
            0o140000 => SOCKET,
            _ => 0,
        };
        if st_mode & 0o4000 != 0 {
            m |= SETUID;
        }
        if st_mode & 0o2000 != 0 {
            m |= SETGID;
        }
        if st_mode & 0o1000 != 0 {
            m |= STICKY;
        }
        m
    }

    /// The POSIX permission bits (`0o7777`) of Go `FileMode` bits.
    pub fn to_unix_perm(mode: u32) -> u32 {
        let mut p = mode & 0o777;
        if mode & SETUID != 0 {
            p |= 0o4000;
        }
        if mode & SETGID != 0 {
            p |= 0o2000;
        }
        if mode & STICKY != 0 {
            p |= 0o1000;
        }
        p
    }

    /// fsutil `fileCanRequestData`: only regular files (no type bits) carry data.
    pub fn is_regular(mode: u32) -> bool {
        mode & TYPE == 0
    }
}

/// The filters the daemon sends with a FileSync request.
#[derive(Debug, Clone, Default, PartialEq, Eq)]
pub struct FilterOptions {
    /// `include-patterns`: keep only paths matching one (or under a match).
    pub include: Vec<String>,
    /// `exclude-patterns`: `.dockerignore` semantics.
    pub exclude: Vec<String>,
    /// `followpaths`: paths kept as includes, with symlinks along them resolved.
    pub follow: Vec<String>,
}

/// One entry to send.
#[derive(Debug, Clone)]
pub(crate) struct Entry {
    pub(crate) stat: Stat,
    /// Absolute path on disk (for reading a regular file's data).
    pub(crate) abs: PathBuf,
}

/// Why a walk failed.
#[derive(Debug, thiserror::Error)]
pub(crate) enum WalkError {
    #[error("invalid {which}: {source}")]
    Pattern {
        which: &'static str,
        source: PatternError,
    },
    #[error("{path}: {source}")]
    Io {
        path: PathBuf,
        source: std::io::Error,
    },
    #[error("{0}: the file name is not UTF-8, which the build's file protocol cannot carry; rename it, or add it to .dockerignore if the build does not use it")]
    NonUtf8(PathBuf),
}

fn io_err(path: &Path) -> impl FnOnce(std::io::Error) -> WalkError + '_ {
    move |source| WalkError::Io {
        path: path.to_path_buf(),
        source,
    }
}

/// fsutil `FollowLinks`: every follow path, plus the targets of symlinks along it,
/// becomes an include pattern. Unlike upstream, wildcards in a follow path are kept as
/// patterns but symlinks matched by them are not resolved.
fn follow_links(root: &Path, paths: &[String]) -> Vec<String> {
    fn read_link(root: &Path, rel: &str) -> Option<String> {
        let real = root.join(rel);
        let meta = std::fs::symlink_metadata(&real).ok()?;
        if !meta.file_type().is_symlink() {
            return None;
        }
        let link = std::fs::read_link(&real).ok()?;
        let link = link.to_string_lossy().into_owned();
        let target = if link.starts_with('/') {
            link
        } else {
            let parent = rel.rsplit_once('/').map(|(d, _)| d).unwrap_or("");
            format!("/{parent}/{link}")
        };
        Some(clean_path(&target))
    }
    fn append(root: &Path, p: &str, resolved: &mut Vec<String>, depth: usize) {
        if depth > 40 {
            return;
        }
        let p = clean_path(p.trim_start_matches('/'));
        if p == "." || p.starts_with("..") {
            return;
        }
        let mut current = String::new();
        let mut rest = p.as_str();
        loop {
            let (head, tail) = rest.split_once('/').unwrap_or((rest, ""));
            if !current.is_empty() {
                current.push('/');
            }
            current.push_str(head);
            if let Some(target) = read_link(root, &current) {
                if resolved.contains(&current) {
                    return;
                }
                resolved.push(current.clone());
                let next = if tail.is_empty() {
                    target
                } else {
                    format!("{target}/{tail}")
                };
                append(root, &next, resolved, depth + 1);
                return;
            }
            if tail.is_empty() {
                if !resolved.contains(&current) {
                    resolved.push(current);
                }
                return;
            }
            rest = tail;
        }
    }
    let mut resolved = Vec::new();
    for p in paths {
        append(root, p, &mut resolved, 0);
    }
    resolved.sort();
    resolved
}

fn dev_major(rdev: u64) -> i64 {
    (((rdev >> 8) & 0xfff) | ((rdev >> 32) & !0xfff)) as i64
}

fn dev_minor(rdev: u64) -> i64 {
    ((rdev & 0xff) | ((rdev >> 12) & !0xff)) as i64
}

struct Walker<'a> {
    include: Option<PatternMatcher>,
    exclude: Option<PatternMatcher>,
    reset_owner: bool,
    /// (dev, ino) → first path, for hard links among sent files.
    seen: HashMap<(u64, u64), String>,
    out: &'a mut Vec<Entry>,
    /// Ancestors of the current entry: their stat and whether they were sent.
    parents: Vec<(Entry, bool)>,
}

impl Walker<'_> {
    fn stat(&mut self, abs: &Path, rel: &str, meta: &std::fs::Metadata) -> Result<Stat, WalkError> {
        let mode = go_mode::from_unix(meta.mode());
        let mut stat = Stat {
            path: rel.to_string(),
            mode,
            uid: if self.reset_owner { 0 } else { meta.uid() },
            gid: if self.reset_owner { 0 } else { meta.gid() },
            size: 0,
            mod_time: meta
                .mtime()
                .saturating_mul(1_000_000_000)
                .saturating_add(meta.mtime_nsec()),
            ..Default::default()
        };
        let ft = meta.file_type();
        if ft.is_symlink() {
            let link = std::fs::read_link(abs).map_err(io_err(abs))?;
            stat.linkname = link
                .to_str()
                .ok_or_else(|| WalkError::NonUtf8(abs.to_path_buf()))?
                .to_string();
        } else if !ft.is_dir() {
            if mode & go_mode::DEVICE != 0 {
                stat.devmajor = dev_major(meta.rdev());
                stat.devminor = dev_minor(meta.rdev());
            }
            stat.size = meta.len() as i64;
            if meta.nlink() > 1 {
                match self.seen.get(&(meta.dev(), meta.ino())) {
                    Some(first) => {
                        stat.linkname = first.clone();
                        stat.size = 0;
                    }
                    None => {
                        self.seen.insert((meta.dev(), meta.ino()), rel.to_string());
                    }
                }
            }
        }
        Ok(stat)
    }

    fn emit(&mut self, entry: Entry) {
        for (parent, sent) in self.parents.iter_mut() {
            if !*sent {
                *sent = true;
                self.out.push(parent.clone());
            }
        }
        self.out.push(entry);
    }

    fn walk_dir(
        &mut self,
        abs_dir: &Path,
        rel_dir: &str,
        inc_parent: &MatchInfo,
        exc_parent: &MatchInfo,
    ) -> Result<(), WalkError> {
        let mut names: Vec<std::ffi::OsString> = std::fs::read_dir(abs_dir)
            .map_err(io_err(abs_dir))?
            .map(|e| e.map(|e| e.file_name()))
            .collect::<Result<_, _>>()
            .map_err(io_err(abs_dir))?;
        names.sort_by(|a, b| a.as_bytes().cmp(b.as_bytes()));
        for name in names {
            let abs = abs_dir.join(&name);
            // Names are bytes on Linux, but the file protocol carries text: a name that is
            // not UTF-8 is matched as written (lossily) and is an error only if it would be
            // sent, so a `.dockerignore` entry keeps it out of the build as with buildx.
            let utf8 = name.to_str().is_some();
            let name = name.to_string_lossy();
            let rel = if rel_dir.is_empty() {
                name.to_string()
            } else {
                format!("{rel_dir}/{name}")
            };
            let meta = match std::fs::symlink_metadata(&abs) {
                Ok(m) => m,
                Err(e) if e.kind() == std::io::ErrorKind::NotFound => continue,
                Err(e) => {
                    return Err(WalkError::Io {
                        path: abs,
                        source: e,
                    })
                }
            };
            let is_dir = meta.file_type().is_dir();
            let mut skip = false;
            let mut inc_info = MatchInfo::default();
            let mut exc_info = MatchInfo::default();
            if let Some(inc) = &self.include {
                let (m, info) = inc.matches_with_parent(&rel, inc_parent);
                inc_info = info;
                if !m {
                    if !is_dir || inc.may_match_under(&rel, false) == Some(false) {
                        continue;
                    }
                    skip = true;
                }
            }
            if let Some(exc) = &self.exclude {
                let (m, info) = exc.matches_with_parent(&rel, exc_parent);
                exc_info = info;
                if m {
                    if !exc.has_exclusions() {
                        continue;
                    }
                    if is_dir && exc.may_match_under(&rel, true) == Some(false) {
                        continue;
                    }
                    skip = true;
                }
            }
            if !utf8 {
                if skip {
                    continue;
                }
                return Err(WalkError::NonUtf8(abs));
            }
            let stat = match self.stat(&abs, &rel, &meta) {
                Ok(s) => s,
                Err(e) if skip => {
                    let _ = e;
                    continue;
                }
                Err(e) => return Err(e),
            };
            let entry = Entry {
                stat,
                abs: abs.clone(),
            };
            if is_dir {
                if !skip {
                    self.emit(entry.clone());
                }
                self.parents.push((entry, !skip));
                let res = self.walk_dir(&abs, &rel, &inc_info, &exc_info);
                self.parents.pop();
                match res {
                    Err(WalkError::Io { source, .. })
                        if skip && source.kind() == std::io::ErrorKind::PermissionDenied => {}
                    other => other?,
                }
            } else if !skip {
                self.emit(entry);
            }
        }
        Ok(())
    }
}

/// Walks `root` with the daemon's filters. `reset_owner` sends uid/gid 0, as buildctl and
/// buildx do for local sources (`resetUIDAndGID`), so builds do not depend on who owns the
/// checkout.
pub(crate) fn walk(
    root: &Path,
    opts: &FilterOptions,
    reset_owner: bool,
) -> Result<Vec<Entry>, WalkError> {
    let mut includes = opts.include.clone();
    if !opts.follow.is_empty() {
        for t in follow_links(root, &opts.follow) {
            if !includes.contains(&t) {
                includes.push(t);
            }
        }
    }
    let include = if includes.is_empty() {
        None
    } else {
        Some(
            PatternMatcher::new(&includes).map_err(|source| WalkError::Pattern {
                which: "include-patterns",
                source,
            })?,
        )
    };
    let exclude = if opts.exclude.is_empty() {
        None
    } else {
        Some(
            PatternMatcher::new(&opts.exclude).map_err(|source| WalkError::Pattern {
                which: "exclude-patterns",
                source,
            })?,
        )
    };
    let mut out = Vec::new();
    let mut w = Walker {
        include,
        exclude,
        reset_owner,
        seen: HashMap::new(),
        out: &mut out,
        parents: Vec::new(),
    };
    w.walk_dir(root, "", &MatchInfo::default(), &MatchInfo::default())?;
    Ok(out)
}

/// Orders `/`-separated paths with the separator lowest (fsutil `ComparePath`).
pub(crate) fn path_key(p: &str) -> Vec<u8> {
    p.bytes().map(|b| if b == b'/' { 0 } else { b }).collect()
}

#[cfg(test)]
mod tests {
    use super::*;

    /// The paths `walk` would send, in order.
    fn sent_paths(root: &Path, opts: &FilterOptions) -> Vec<String> {
        walk(root, opts, true)
            .unwrap()
            .into_iter()
            .map(|e| e.stat.path)
            .collect()
    }

    #[test]
    fn modes() {
        assert_eq!(go_mode::from_unix(0o100755), 0o755);
        assert_eq!(go_mode::from_unix(0o040755), go_mode::DIR | 0o755);
        assert_eq!(go_mode::from_unix(0o120777), go_mode::SYMLINK | 0o777);
        assert_eq!(go_mode::from_unix(0o104755), go_mode::SETUID | 0o755);
        assert_eq!(
            go_mode::from_unix(0o020666),
            go_mode::DEVICE | go_mode::CHAR_DEVICE | 0o666
        );
        assert_eq!(
            go_mode::to_unix_perm(go_mode::SETGID | go_mode::DIR | 0o750),
            0o2750
        );
        assert!(go_mode::is_regular(0o644));
        assert!(!go_mode::is_regular(go_mode::SYMLINK | 0o777));
    }

    #[test]
    fn a_name_that_is_not_utf8_is_an_error_only_if_it_would_be_sent() {
        use std::os::unix::ffi::OsStrExt;
        let d = tempfile::tempdir().unwrap();
        let r = d.path();
        let bad = std::ffi::OsStr::from_bytes(b"caf\xe9.bin");
        std::fs::create_dir_all(r.join("data")).unwrap();
        std::fs::write(r.join("data").join(bad), "x").unwrap();
        std::fs::write(r.join(bad), "x").unwrap();
        std::fs::write(r.join("app.py"), "x").unwrap();
        // Excluded by name pattern and by its directory: walked past, not sent.
        let opts = FilterOptions {
            exclude: vec!["*.bin".into(), "data".into()],
            ..Default::default()
        };
        let paths = sent_paths(r, &opts);
        assert_eq!(paths, ["app.py"]);
        // Sent: an error that names the file and the fix.
        let err = walk(r, &FilterOptions::default(), true)
            .unwrap_err()
            .to_string();
        assert!(
            err.contains("not UTF-8") && err.contains(".dockerignore"),
            "{err}"
        );
    }

    #[test]
    fn order_and_filters() {
        let d = tempfile::tempdir().unwrap();
        let r = d.path();
        std::fs::create_dir_all(r.join("a/b")).unwrap();
        std::fs::create_dir_all(r.join("skip/keep")).unwrap();
        std::fs::write(r.join("a/b/f"), "x").unwrap();
        std::fs::write(r.join("a-c"), "x").unwrap();
        std::fs::write(r.join("skip/x"), "x").unwrap();
        std::fs::write(r.join("skip/keep/y"), "y").unwrap();
        let opts = FilterOptions {
            exclude: vec!["skip".into(), "!skip/keep".into()],
            ..Default::default()
        };
        let paths = sent_paths(r, &opts);
        assert_eq!(
            paths,
            [
                "a",
                "a/b",
                "a/b/f",
                "a-c",
                "skip",
                "skip/keep",
                "skip/keep/y"
            ]
        );
        let keys: Vec<Vec<u8>> = paths.iter().map(|p| path_key(p)).collect();
        assert!(keys.windows(2).all(|w| w[0] < w[1]));
    }

    #[test]
    fn follow_paths_resolve_symlinks() {
        let d = tempfile::tempdir().unwrap();
        let r = d.path();
        std::fs::create_dir_all(r.join("real")).unwrap();
        std::fs::write(r.join("real/spec.toml"), "x").unwrap();
        std::fs::write(r.join("other"), "x").unwrap();
        std::os::unix::fs::symlink("real/spec.toml", r.join("torchkit.toml")).unwrap();
        let opts = FilterOptions {
            follow: vec!["torchkit.toml".into()],
            ..Default::default()
        };
        let paths = sent_paths(r, &opts);
        assert_eq!(paths, ["real", "real/spec.toml", "torchkit.toml"]);
    }
}
