//! `.dockerignore` files: the one reader the driver and the frontend share.
//!
//! [`parse_dockerignore`] reads a file's text as `moby/patternmatcher/ignorefile.ReadAll`
//! does, which the docker CLI, buildx and BuildKit's Dockerfile frontend all use:
//! - a UTF-8 byte order mark at the start of the first line is dropped;
//! - a line starting with `#` (before any trimming) is a comment; an indented `#` is a
//!   pattern;
//! - leading and trailing white space is trimmed; blank lines are skipped;
//! - a leading `!` marks a re-include, with the space after it trimmed too;
//! - each pattern is `filepath.Clean`ed (`./a//b/../c/` → `a/c`), and a leading `/` is
//!   dropped (`/foo` means `foo`) unless the pattern is `/` itself;
//! - a pattern that cleans to `.` stays `.`; a bare `!` stays `!` (the matcher refuses it,
//!   as upstream's `patternmatcher.New` does).
//!
//! [`context_excludes`] picks the file that applies, as the Dockerfile frontend does for
//! `<Dockerfile>.dockerignore`: `<spec file>.dockerignore` beside the spec wins over the
//! context's `.dockerignore`. The frontend reads both through the gateway;
//! [`read_context_excludes`] reads them from disk for the driver.

use std::path::{Path, PathBuf};

use super::patterns::clean_path;
use crate::error::Hint;

/// The context's ignore file.
pub const DOCKERIGNORE: &str = ".dockerignore";

/// The ignore file beside a spec: `<spec path>.dockerignore` (`torchkit.toml.dockerignore`).
pub fn beside_spec(spec: &str) -> String {
    format!("{spec}{DOCKERIGNORE}")
}

/// The patterns of a `.dockerignore` text, in the order written (see the module docs).
pub fn parse_dockerignore(text: &str) -> Vec<String> {
    let mut out = Vec::new();
    for (n, line) in text.lines().enumerate() {
        let line = match n {
            0 => line.strip_prefix('\u{feff}').unwrap_or(line),
            _ => line,
        };
        if line.starts_with('#') {
            continue;
        }
        let mut p = line.trim();
        if p.is_empty() {
            continue;
        }
        let invert = p.starts_with('!');
        if invert {
            p = p[1..].trim();
        }
        let mut pat = String::new();
        if !p.is_empty() {
            pat = clean_path(p);
            if pat.len() > 1 && pat.starts_with('/') {
                pat.remove(0);
            }
        }
        out.push(if invert { format!("!{pat}") } else { pat });
    }
    out
}

/// The exclude patterns of a build: the ignore file beside the spec when there is one,
/// else the context's, else none. Bytes that are not UTF-8 are read lossily.
pub fn context_excludes(beside_spec: Option<&[u8]>, context: Option<&[u8]>) -> Vec<String> {
    beside_spec
        .or(context)
        .map(|b| parse_dockerignore(&String::from_utf8_lossy(b)))
        .unwrap_or_default()
}

/// An ignore file that exists but cannot be read.
#[derive(Debug, thiserror::Error)]
#[error("cannot read {}: {source}", path.display())]
pub struct IgnoreFileError {
    /// The file.
    pub path: PathBuf,
    /// Why.
    pub source: std::io::Error,
}

impl Hint for IgnoreFileError {
    fn hint(&self) -> Option<String> {
        Some(format!(
            "make {} readable, or remove it to send the whole context",
            self.path.display()
        ))
    }
}

/// [`context_excludes`] for the driver: `<spec>.dockerignore` beside the spec file, else
/// `<context>/.dockerignore`. A missing file is no file.
pub fn read_context_excludes(spec: &Path, context: &Path) -> Result<Vec<String>, IgnoreFileError> {
    let read = |path: PathBuf| match std::fs::read(&path) {
        Ok(b) => Ok(Some(b)),
        Err(e) if e.kind() == std::io::ErrorKind::NotFound => Ok(None),
        Err(source) => Err(IgnoreFileError { path, source }),
    };
    let mut beside = spec.as_os_str().to_owned();
    beside.push(DOCKERIGNORE);
    let beside = read(PathBuf::from(beside))?;
    let context = match beside {
        Some(_) => None,
        None => read(context.join(DOCKERIGNORE))?,
    };
    Ok(context_excludes(beside.as_deref(), context.as_deref()))
}

#[cfg(test)]
mod tests {
    use super::*;

    /// moby/patternmatcher `ignorefile/ignorefile_test.go` `TestReadAll`: the same text
    /// and the same expected patterns.
    #[test]
    fn upstream_read_all() {
        let content = "test1\n/test2\n/a/file/here\n\nlastfile\n# this is a comment\n! /inverted/abs/path\n!\n! ";
        assert_eq!(
            parse_dockerignore(content),
            [
                "test1",
                "test2",
                "a/file/here",
                "lastfile",
                "!inverted/abs/path",
                "!",
                "!"
            ]
        );
        assert!(parse_dockerignore("").is_empty());
    }

    /// One line in, the patterns out: the rules of `ignorefile.ReadAll` (filepath.Clean,
    /// leading `/` dropped, `!` trimmed, comments only at column one, BOM on the first line).
    #[test]
    fn read_all_rules() {
        let cases: &[(&str, &[&str])] = &[
            ("/foo", &["foo"]),
            ("./foo", &["foo"]),
            ("foo/", &["foo"]),
            ("foo/./bar//baz/", &["foo/bar/baz"]),
            ("a/../b", &["b"]),
            ("../outside", &["../outside"]),
            ("/", &["/"]),
            (".", &["."]),
            ("./", &["."]),
            ("!./", &["!."]),
            ("! foo/", &["!foo"]),
            ("!/foo", &["!foo"]),
            ("  *.log  ", &["*.log"]),
            ("# comment", &[]),
            ("  # not a comment", &["# not a comment"]),
            ("\u{feff}# comment after a BOM", &[]),
            ("\u{feff}/bom", &["bom"]),
            ("a\r\nb\r\n", &["a", "b"]),
            ("\n\n   \n\t\n", &[]),
            ("**/*.pyc", &["**/*.pyc"]),
            ("\\#literal", &["\\#literal"]),
        ];
        for (text, want) in cases {
            assert_eq!(&parse_dockerignore(text), want, "{text:?}");
        }
        // A BOM counts only at the very start.
        assert_eq!(parse_dockerignore("a\n\u{feff}b"), ["a", "\u{feff}b"]);
    }

    #[test]
    fn the_file_beside_the_spec_wins() {
        assert_eq!(
            context_excludes(Some(b"secret/\n"), Some(b"*.pyc\n")),
            ["secret"]
        );
        assert_eq!(context_excludes(None, Some(b"*.pyc\n")), ["*.pyc"]);
        assert!(context_excludes(None, None).is_empty());
        // An empty file beside the spec still wins: it excludes nothing.
        assert!(context_excludes(Some(b""), Some(b"*.pyc\n")).is_empty());
        assert_eq!(
            beside_spec("sub/torchkit.toml"),
            "sub/torchkit.toml.dockerignore"
        );
    }

    #[test]
    fn reads_from_disk() {
        let dir = tempfile::tempdir().unwrap();
        let spec = dir.path().join("torchkit.toml");
        let ctx = dir.path().join("ctx");
        std::fs::create_dir(&ctx).unwrap();
        assert!(read_context_excludes(&spec, &ctx).unwrap().is_empty());
        std::fs::write(ctx.join(".dockerignore"), "/build/\n").unwrap();
        assert_eq!(read_context_excludes(&spec, &ctx).unwrap(), ["build"]);
        std::fs::write(dir.path().join("torchkit.toml.dockerignore"), "./data\n").unwrap();
        assert_eq!(read_context_excludes(&spec, &ctx).unwrap(), ["data"]);
    }
}
