//! `.dockerignore` pattern matching with the semantics of `moby/patternmatcher`, which
//! fsutil's `FilterFS` uses for the daemon's `include-patterns` / `exclude-patterns`.
//!
//! Upstream compiles each cleaned pattern to a regular expression: `*` is `[^/]*`, `?` is
//! `[^/]`, `**/` is `(.*/)?`, a trailing `**` is `.*`, `[…]` is a character class and `\`
//! escapes the next character. A pattern that is a plain string with a trailing `**` is a
//! prefix match; one with a leading `**` and no other wildcard is a suffix match. Patterns
//! are evaluated in order; a `!` pattern re-includes, and a pattern also matches a path
//! when it matches one of the path's parent directories (`MatchesUsingParentResults`).
//!
//! One deliberate difference: a leading `/` is stripped here as well as in
//! [`super::parse_dockerignore`] (upstream strips it only when reading the file); a relative
//! path never starts with `/`, so upstream such a pattern could never match anything.

use thiserror::Error;

use crate::error::Hint;

/// A pattern that could not be compiled.
#[derive(Debug, Error, Clone, PartialEq, Eq)]
pub enum PatternError {
    /// `!` on its own.
    #[error("illegal exclusion pattern: \"!\"")]
    BareExclusion,
    /// An unterminated `[` class or a malformed range.
    #[error("syntax error in pattern {pattern:?}: {reason}")]
    Syntax {
        /// The pattern as given.
        pattern: String,
        /// What is wrong with it.
        reason: &'static str,
    },
}

impl Hint for PatternError {
    fn hint(&self) -> Option<String> {
        Some("fix the pattern in .dockerignore (Go filepath.Match syntax: *, ?, [a-z], **, \\ escapes)".into())
    }
}

#[derive(Debug, Clone, PartialEq, Eq)]
enum Token {
    Lit(char),
    /// `*`: any run of non-separator characters.
    Star,
    /// `?`: one non-separator character.
    Quest,
    /// `[…]`: a character class.
    Class {
        negated: bool,
        items: Vec<(char, char)>,
    },
    /// `**/` (or `**` in the middle): `(.*/)?`.
    AnyDirs,
    /// A trailing `**` after other wildcards: `.*`.
    AnyRest,
}

#[derive(Debug, Clone, PartialEq, Eq)]
enum Kind {
    Exact,
    Prefix(String),
    Suffix(String),
    Glob(Vec<Token>),
}

/// One compiled pattern.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct Pattern {
    cleaned: String,
    exclusion: bool,
    kind: Kind,
}

impl Pattern {
    /// The cleaned pattern text, without a leading `!`.
    pub fn as_str(&self) -> &str {
        &self.cleaned
    }

    /// Whether this is a `!` re-include.
    pub fn is_exclusion(&self) -> bool {
        self.exclusion
    }

    fn matches(&self, path: &str) -> bool {
        match &self.kind {
            Kind::Exact => path == self.cleaned,
            Kind::Prefix(p) => path.starts_with(p.as_str()),
            Kind::Suffix(s) => {
                path.ends_with(s.as_str()) || (s.starts_with('/') && path == &s[1..])
            }
            Kind::Glob(tokens) => {
                let chars: Vec<char> = path.chars().collect();
                glob_match(tokens, &chars)
            }
        }
    }

    /// The pattern with a trailing `/**` or `/*` removed (fsutil `patternWithoutTrailingGlob`).
    fn without_trailing_glob(&self) -> &str {
        let s = self.cleaned.as_str();
        let s = s.strip_suffix("/**").unwrap_or(s);
        s.strip_suffix("/*").unwrap_or(s)
    }
}

fn glob_match(tokens: &[Token], s: &[char]) -> bool {
    let Some((first, rest)) = tokens.split_first() else {
        return s.is_empty();
    };
    match first {
        Token::Lit(c) => s.first() == Some(c) && glob_match(rest, &s[1..]),
        Token::Quest => s.first().is_some_and(|&c| c != '/') && glob_match(rest, &s[1..]),
        Token::Class { negated, items } => {
            s.first().is_some_and(|&c| {
                let hit = items.iter().any(|&(lo, hi)| lo <= c && c <= hi);
                hit != *negated
            }) && glob_match(rest, &s[1..])
        }
        Token::Star => {
            let mut i = 0;
            loop {
                if glob_match(rest, &s[i..]) {
                    return true;
                }
                if i == s.len() || s[i] == '/' {
                    return false;
                }
                i += 1;
            }
        }
        Token::AnyDirs => {
            // `(.*/)?`: nothing, or any prefix ending in '/'.
            if glob_match(rest, s) {
                return true;
            }
            (0..s.len()).any(|i| s[i] == '/' && glob_match(rest, &s[i + 1..]))
        }
        Token::AnyRest => (0..=s.len()).any(|i| glob_match(rest, &s[i..])),
    }
}

/// Go `filepath.Clean` for `/`-separated paths.
pub(crate) fn clean_path(p: &str) -> String {
    if p.is_empty() {
        return ".".into();
    }
    let rooted = p.starts_with('/');
    let mut out: Vec<&str> = Vec::new();
    for part in p.split('/') {
        match part {
            "" | "." => {}
            ".." => {
                if out.last().is_some_and(|l| *l != "..") {
                    out.pop();
                } else if !rooted {
                    out.push("..");
                }
            }
            _ => out.push(part),
        }
    }
    let joined = out.join("/");
    match (rooted, joined.is_empty()) {
        (true, _) => format!("/{joined}"),
        (false, true) => ".".into(),
        (false, false) => joined,
    }
}

fn parse_class(
    chars: &[char],
    mut i: usize,
    pattern: &str,
) -> Result<(Token, usize), PatternError> {
    // chars[i] is the character after '['.
    let err = |reason| PatternError::Syntax {
        pattern: pattern.to_string(),
        reason,
    };
    let mut negated = false;
    if chars.get(i) == Some(&'^') {
        negated = true;
        i += 1;
    }
    let mut items = Vec::new();
    let mut first = true;
    loop {
        let Some(&c) = chars.get(i) else {
            return Err(err("unterminated character class"));
        };
        if c == ']' && !first {
            return Ok((Token::Class { negated, items }, i + 1));
        }
        first = false;
        let lo = if c == '\\' {
            i += 1;
            *chars
                .get(i)
                .ok_or_else(|| err("trailing backslash in class"))?
        } else {
            c
        };
        i += 1;
        let mut hi = lo;
        if chars.get(i) == Some(&'-') && chars.get(i + 1).is_some_and(|&n| n != ']') {
            i += 1;
            hi = if chars[i] == '\\' {
                i += 1;
                *chars
                    .get(i)
                    .ok_or_else(|| err("trailing backslash in class"))?
            } else {
                chars[i]
            };
            i += 1;
            if hi < lo {
                return Err(err("invalid character range"));
            }
        }
        items.push((lo, hi));
    }
}

fn compile(pattern: &str, exclusion: bool) -> Result<Pattern, PatternError> {
    let chars: Vec<char> = pattern.chars().collect();
    #[derive(PartialEq)]
    enum Mt {
        Exact,
        Prefix,
        Suffix,
        Regexp,
    }
    let mut mt = Mt::Exact;
    let mut tokens = Vec::new();
    let mut i = 0;
    let mut idx = 0; // the scanner's token index (upstream's `i`)
    while i < chars.len() {
        let ch = chars[i];
        i += 1;
        match ch {
            '*' if chars.get(i) == Some(&'*') => {
                i += 1;
                if chars.get(i) == Some(&'/') {
                    i += 1;
                }
                if i == chars.len() {
                    if mt == Mt::Exact {
                        mt = Mt::Prefix;
                    } else {
                        tokens.push(Token::AnyRest);
                        mt = Mt::Regexp;
                    }
                } else {
                    tokens.push(Token::AnyDirs);
                    mt = Mt::Regexp;
                }
                if idx == 0 {
                    mt = Mt::Suffix;
                }
            }
            '*' => {
                tokens.push(Token::Star);
                mt = Mt::Regexp;
            }
            '?' => {
                tokens.push(Token::Quest);
                mt = Mt::Regexp;
            }
            '\\' => match chars.get(i) {
                Some(&n) => {
                    tokens.push(Token::Lit(n));
                    i += 1;
                    mt = Mt::Regexp;
                }
                None => tokens.push(Token::Lit('\\')),
            },
            '[' => {
                let (tok, next) = parse_class(&chars, i, pattern)?;
                tokens.push(tok);
                i = next;
                mt = Mt::Regexp;
            }
            c => tokens.push(Token::Lit(c)),
        }
        idx += 1;
    }
    let kind = match mt {
        Mt::Exact => Kind::Exact,
        Mt::Prefix => Kind::Prefix(pattern[..pattern.len() - 2].to_string()),
        Mt::Suffix => Kind::Suffix(pattern[2..].to_string()),
        Mt::Regexp => Kind::Glob(tokens),
    };
    Ok(Pattern {
        cleaned: pattern.to_string(),
        exclusion,
        kind,
    })
}

/// An ordered list of patterns (`moby/patternmatcher.PatternMatcher`).
#[derive(Debug, Clone, Default, PartialEq, Eq)]
pub struct PatternMatcher {
    patterns: Vec<Pattern>,
    exclusions: bool,
}

/// Per-directory results passed down the walk (`patternmatcher.MatchInfo`): which patterns
/// matched the directory itself or one of its parents.
#[derive(Debug, Clone, Default)]
pub(crate) struct MatchInfo {
    parent_matched: Vec<bool>,
}

impl PatternMatcher {
    /// Compiles the patterns: each is trimmed, cleaned, a leading `!` makes it a re-include,
    /// and a leading `/` is dropped. Empty lines are skipped.
    pub fn new<S: AsRef<str>>(patterns: &[S]) -> Result<Self, PatternError> {
        let mut out = PatternMatcher::default();
        for raw in patterns {
            let p = raw.as_ref().trim();
            if p.is_empty() {
                continue;
            }
            let mut p = clean_path(p);
            let exclusion = p.starts_with('!');
            if exclusion {
                if p.len() == 1 {
                    return Err(PatternError::BareExclusion);
                }
                p = clean_path(&p[1..]);
                out.exclusions = true;
            }
            let p = p.trim_start_matches('/');
            let p = if p.is_empty() { "." } else { p };
            out.patterns.push(compile(p, exclusion)?);
        }
        Ok(out)
    }

    /// The compiled patterns, in order.
    pub fn patterns(&self) -> &[Pattern] {
        &self.patterns
    }

    /// Whether any pattern is a `!` re-include.
    pub fn has_exclusions(&self) -> bool {
        self.exclusions
    }

    /// Whether `path` (relative, `/`-separated, clean) matches, taking parent directories
    /// into account (`MatchesOrParentMatches`).
    pub fn matches(&self, path: &str) -> bool {
        self.matches_with_parent(path, &MatchInfo::default()).0
    }

    /// `MatchesUsingParentResults`: like [`Self::matches`], reusing the parent directory's
    /// results instead of re-matching every ancestor.
    pub(crate) fn matches_with_parent(&self, path: &str, parent: &MatchInfo) -> (bool, MatchInfo) {
        let mut matched = false;
        let mut info = MatchInfo {
            parent_matched: vec![false; self.patterns.len()],
        };
        let have_parent = parent.parent_matched.len() == self.patterns.len();
        for (i, pat) in self.patterns.iter().enumerate() {
            let mut m = have_parent && parent.parent_matched[i];
            if !m {
                if pat.exclusion != matched {
                    continue;
                }
                m = pat.matches(path);
                if !m && !have_parent {
                    if let Some((dir, _)) = path.rsplit_once('/') {
                        let mut end = 0;
                        for part in dir.split('/') {
                            end += part.len();
                            if pat.matches(&dir[..end]) {
                                m = true;
                                break;
                            }
                            end += 1;
                        }
                    }
                }
            }
            info.parent_matched[i] = m;
            if m {
                matched = !pat.exclusion;
            }
        }
        (matched, info)
    }

    /// Whether a pattern with `exclusion == want_exclusion` could match something under
    /// `dir`. `None` when some such pattern has wildcards before its tail, so the answer is
    /// unknown (fsutil `onlyPrefixIncludes` / `onlyPrefixExcludeExceptions`).
    pub(crate) fn may_match_under(&self, dir: &str, want_exclusion: bool) -> Option<bool> {
        let dir_slash = format!("{dir}/");
        let mut any = false;
        for p in self
            .patterns
            .iter()
            .filter(|p| p.exclusion == want_exclusion)
        {
            let stem = p.without_trailing_glob();
            if stem.contains(['*', '[', ']', '?', '^', '\\']) {
                return None;
            }
            if format!("{stem}/").starts_with(&dir_slash) {
                any = true;
            }
        }
        Some(any)
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    fn m(patterns: &[&str], path: &str) -> bool {
        PatternMatcher::new(patterns).unwrap().matches(path)
    }

    #[test]
    fn upstream_pattern_cases() {
        // From moby/patternmatcher patternmatcher_test.go TestMatch / TestMatches.
        assert!(m(&["**"], "file"));
        assert!(m(&["**"], "file/"));
        assert!(m(&["**/"], "file"));
        assert!(m(&["**/"], "dir/file"));
        assert!(m(&["**/file"], "file"));
        assert!(m(&["**/file"], "dir/file"));
        assert!(m(&["**/file"], "dir/dir/file"));
        assert!(m(&["**/file*"], "file"));
        assert!(m(&["**/file*"], "dir/file"));
        assert!(m(&["**/file*txt"], "dir/dir/file.txt"));
        assert!(!m(&["**/file*txt"], "dir/dir/file.txt2"));
        assert!(m(&["dir/**"], "dir/file"));
        assert!(m(&["dir/**"], "dir/dir2/file"));
        assert!(m(&["**/dir2/*"], "dir/dir2/file"));
        assert!(m(&["**/dir/**"], "dir/dir2/file"));
        // Matches through the parent "dir/dir2/dir3".
        assert!(m(&["**/dir2/*"], "dir/dir2/dir3/file"));
        assert!(m(&["dir/**/dir3"], "dir/dir2/dir3"));
        assert!(m(&["dir/**/dir3"], "dir/dir3"));
        assert!(m(&["abc.def"], "abc.def"));
        assert!(!m(&["abc.def"], "abcZdef"));
        assert!(m(&["a*b"], "axxb"));
        assert!(!m(&["a*b"], "a/b"));
        assert!(m(&["a?b"], "axb"));
        assert!(!m(&["a?b"], "a/b"));
        assert!(m(&["[a-c]x"], "bx"));
        assert!(!m(&["[^a-c]x"], "bx"));
        assert!(m(&["a\\*b"], "a*b"));
        assert!(!m(&["a\\*b"], "axb"));
        assert!(
            m(&["foo"], "foo/bar/baz"),
            "a parent directory match excludes children"
        );
        assert!(m(&["*.go"], "a.go"));
        assert!(!m(&["*.go"], "dir/a.go"));
        assert!(m(&["**/*.go"], "dir/a.go"));
    }

    #[test]
    fn exclusions_reinclude() {
        let pm = PatternMatcher::new(&["docs", "!docs/README.md"]).unwrap();
        assert!(pm.matches("docs"));
        assert!(pm.matches("docs/other.md"));
        assert!(!pm.matches("docs/README.md"));
        let pm = PatternMatcher::new(&["*.md", "!README.md", "README-secret.md"]).unwrap();
        assert!(pm.matches("a.md"));
        assert!(!pm.matches("README.md"));
        assert!(pm.matches("README-secret.md"));
        assert!(matches!(
            PatternMatcher::new(&["!"]),
            Err(PatternError::BareExclusion)
        ));
        assert!(PatternMatcher::new(&["[a-"]).is_err());
    }

    #[test]
    fn cleaning() {
        assert_eq!(clean_path("./a//b/../c/"), "a/c");
        assert_eq!(clean_path("/a/.."), "/");
        assert_eq!(clean_path(".."), "..");
        assert!(m(&["/foo/"], "foo"));
        assert!(m(&["./foo"], "foo/x"));
    }

    #[test]
    fn parent_results_agree() {
        let pm = PatternMatcher::new(&["a", "!a/b", "a/b/c*"]).unwrap();
        let (ra, ia) = pm.matches_with_parent("a", &MatchInfo::default());
        let (rb, ib) = pm.matches_with_parent("a/b", &ia);
        let (rc, _) = pm.matches_with_parent("a/b/c1", &ib);
        let (rd, _) = pm.matches_with_parent("a/b/d", &ib);
        assert_eq!((ra, rb, rc, rd), (true, false, true, false));
        assert_eq!(pm.matches("a/b/c1"), rc);
        assert_eq!(pm.matches("a/b/d"), rd);
    }
}
