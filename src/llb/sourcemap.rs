//! Source maps: which lines of which file an op comes from (`Definition.Source`), so that
//! BuildKit errors and warnings can point at the spec (Go `client/llb/sourcemap.go`).

use std::sync::Arc;

/// A source file ops can point into, written once into `Definition.Source.infos`.
#[derive(Debug, Clone, PartialEq, Eq, PartialOrd, Ord, Hash)]
pub struct SourceInfo {
    /// File name as the user knows it, e.g. `torchkit.toml`.
    pub filename: String,
    /// The file's contents, so clients can print the offending lines.
    pub data: Vec<u8>,
    /// Language hint for renderers, e.g. `toml`.
    pub language: String,
}

impl SourceInfo {
    /// A shared source file handle; clone the `Arc` into every [`SourceLocation`].
    pub fn new(filename: &str, data: impl Into<Vec<u8>>, language: &str) -> Arc<Self> {
        Arc::new(Self {
            filename: filename.to_owned(),
            data: data.into(),
            language: language.to_owned(),
        })
    }
}

/// A range in a source file. Lines are 1-based (as in BuildKit's Dockerfile frontend),
/// characters are 0-based columns.
#[derive(Debug, Clone, Copy, PartialEq, Eq, PartialOrd, Ord, Hash)]
pub struct Range {
    /// First line.
    pub start_line: i32,
    /// First character on the first line.
    pub start_char: i32,
    /// Last line.
    pub end_line: i32,
    /// Character on the last line where the range ends.
    pub end_char: i32,
}

impl From<(i32, i32, i32, i32)> for Range {
    fn from((start_line, start_char, end_line, end_char): (i32, i32, i32, i32)) -> Self {
        Self {
            start_line,
            start_char,
            end_line,
            end_char,
        }
    }
}

impl Range {
    /// The whole of one line (character 0 to 0 on that line, as BuildKit writes line-only
    /// ranges).
    pub fn line(line: i32) -> Self {
        Self {
            start_line: line,
            start_char: 0,
            end_line: line,
            end_char: 0,
        }
    }
}

/// Ranges in one [`SourceInfo`] that an op comes from.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct SourceLocation {
    /// The file.
    pub source: Arc<SourceInfo>,
    /// The ranges in it.
    pub ranges: Vec<Range>,
}

impl SourceLocation {
    /// Ranges given as `(start_line, start_char, end_line, end_char)` tuples or [`Range`]s.
    pub fn new<R: Into<Range>>(
        source: &Arc<SourceInfo>,
        ranges: impl IntoIterator<Item = R>,
    ) -> Self {
        Self {
            source: Arc::clone(source),
            ranges: ranges.into_iter().map(Into::into).collect(),
        }
    }
}
