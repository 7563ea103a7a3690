//! The dependency rule of `src/lib.rs`, checked.
//!
//! [`MODULES`] is the rule: every top-level module of the crate, its kind, and the modules it
//! may use. The tests read every source file under `src/` and fail, naming the file and the
//! line, when
//! - a module uses another that its row does not list (a reference is any `crate::x`,
//!   `$crate::x`, `use crate::{x, …}` or `super::…` path that leaves the module, in `use`
//!   items and inline paths alike);
//! - a row lists a module that is no longer used (the rule must stay true, not just allowed);
//! - a core module does IO or uses an edge module (`tokio`, `tonic`, `std::fs`, …);
//! - the rule written in `src/lib.rs` or in `docs/architecture.md` differs from [`MODULES`].
//!
//! Unit tests are exempt from the edge and IO checks: files named `tests.rs` and
//! `#[cfg(test)] mod … { … }` blocks may read fixtures and use any module. Comments and string
//! literals are not code.

use std::collections::{BTreeMap, BTreeSet};
use std::path::{Path, PathBuf};

#[derive(Clone, Copy, Debug, PartialEq, Eq)]
enum Kind {
    /// Used by every module: errors and hints, the generated protobuf types.
    Shared,
    /// The pure core: no IO, no async runtime, no edge module.
    Core,
    /// IO at the edges.
    Edge,
}

use Kind::{Core, Edge, Shared};

/// Every top-level module, its kind, and the modules it uses (and may use).
#[rustfmt::skip]
const MODULES: &[(&str, Kind, &[&str])] = &[
    ("error", Shared, &[]),
    ("proto", Shared, &[]),
    ("vocab", Core, &["error"]),
    ("matrix", Core, &[]),
    ("spec", Core, &["error", "resolve", "vocab"]),
    ("resolve", Core, &["error", "matrix", "vocab"]),
    ("llb", Core, &["error", "proto"]),
    ("plan", Core, &["error", "llb", "resolve", "spec", "vocab"]),
    ("lock", Core, &["error", "plan", "resolve", "spec"]),
    ("load", Core, &["error", "matrix", "resolve", "spec"]),
    ("probe", Edge, &["error"]),
    ("buildkit", Edge, &["credentials", "error", "llb", "proto"]),
    ("credentials", Edge, &["error"]),
    ("registry", Edge, &["credentials", "error", "llb", "matrix"]),
    ("frontend", Edge, &["buildkit", "error", "llb", "load", "lock", "plan", "proto", "resolve", "spec", "vocab"]),
    ("cli", Edge, &["buildkit", "credentials", "error", "frontend", "llb", "load", "lock", "matrix", "plan", "probe", "registry", "resolve", "spec", "vocab"]),
];

/// What a core module must not name (IO, async runtime, randomness, clock, edge modules).
const CORE_FORBIDDEN: &[&str] = &[
    "tokio",
    "tonic",
    "std::fs",
    "std::net",
    "std::process",
    "std::env",
    "std::time::SystemTime",
    "std::time::Instant",
    "getrandom",
];

fn src() -> PathBuf {
    Path::new(env!("CARGO_MANIFEST_DIR")).join("src")
}

fn row(module: &str) -> Option<&'static (&'static str, Kind, &'static [&'static str])> {
    MODULES.iter().find(|(m, _, _)| *m == module)
}

// ---------------------------------------------------------------------------------------
// Reading the sources

/// One source file of a module.
struct Source {
    /// Relative to the repository (`src/plan/lower.rs`).
    path: String,
    /// Its module path (`["plan", "lower"]`).
    module: Vec<String>,
    /// The code: comments and literals blanked, unit tests removed (lines are kept).
    code: String,
}

fn rs_files(dir: &Path, out: &mut Vec<PathBuf>) {
    for e in std::fs::read_dir(dir).unwrap() {
        let p = e.unwrap().path();
        if p.is_dir() {
            rs_files(&p, out);
        } else if p.extension().is_some_and(|x| x == "rs") {
            out.push(p);
        }
    }
}

/// Every library source file but `lib.rs` and `main.rs` (the crate root and the binary),
/// with its module path; `tests.rs` files (unit tests) are left out.
fn sources() -> Vec<Source> {
    let root = src();
    let mut files = vec![];
    rs_files(&root, &mut files);
    files.sort();
    let mut out = vec![];
    for f in files {
        let rel = f.strip_prefix(&root).unwrap();
        let mut module: Vec<String> = rel
            .with_extension("")
            .iter()
            .map(|c| c.to_string_lossy().into_owned())
            .collect();
        if module.last().is_some_and(|m| m == "mod") {
            module.pop();
        }
        if module == ["lib"] || module == ["main"] || module.last().is_some_and(|m| m == "tests") {
            continue;
        }
        let text = std::fs::read_to_string(&f).unwrap();
        out.push(Source {
            path: format!("src/{}", rel.display()),
            module,
            code: without_unit_tests(&blank_comments_and_literals(&text)),
        });
    }
    out
}

/// `text` with comments, string and char literals replaced by spaces (newlines kept, so
/// line numbers stay right).
fn blank_comments_and_literals(text: &str) -> String {
    let c: Vec<char> = text.chars().collect();
    let mut out = String::with_capacity(text.len());
    let blank = |out: &mut String, ch: char| out.push(if ch == '\n' { '\n' } else { ' ' });
    let mut i = 0;
    while i < c.len() {
        let at = |k: usize| c.get(k).copied().unwrap_or('\0');
        let ident_before = i > 0 && (c[i - 1].is_alphanumeric() || c[i - 1] == '_');
        if at(i) == '/' && at(i + 1) == '/' {
            while i < c.len() && c[i] != '\n' {
                i += 1;
            }
        } else if at(i) == '/' && at(i + 1) == '*' {
            let mut depth = 0;
            while i < c.len() {
                if at(i) == '/' && at(i + 1) == '*' {
                    depth += 1;
                    out.push_str("  ");
                    i += 2;
                } else if at(i) == '*' && at(i + 1) == '/' {
                    depth -= 1;
                    out.push_str("  ");
                    i += 2;
                    if depth == 0 {
                        break;
                    }
                } else {
                    blank(&mut out, c[i]);
                    i += 1;
                }
            }
        } else if !ident_before && (at(i) == 'r' || (at(i) == 'b' && at(i + 1) == 'r')) && {
            let mut k = i + if at(i) == 'b' { 2 } else { 1 };
            while at(k) == '#' {
                k += 1;
            }
            at(k) == '"'
        } {
            // A raw string: r"…", r#"…"#, br"…".
            let mut k = i + if at(i) == 'b' { 2 } else { 1 };
            let mut hashes = 0;
            while at(k) == '#' {
                hashes += 1;
                k += 1;
            }
            k += 1; // the opening quote
            loop {
                if k >= c.len() {
                    break;
                }
                if c[k] == '"' && (1..=hashes).all(|h| at(k + h) == '#') {
                    k += 1 + hashes;
                    break;
                }
                k += 1;
            }
            for &ch in &c[i..k.min(c.len())] {
                blank(&mut out, ch);
            }
            i = k;
        } else if at(i) == '"' {
            blank(&mut out, '"');
            i += 1;
            while i < c.len() && c[i] != '"' {
                if c[i] == '\\' {
                    blank(&mut out, c[i]);
                    i += 1;
                }
                if i < c.len() {
                    blank(&mut out, c[i]);
                    i += 1;
                }
            }
            if i < c.len() {
                blank(&mut out, '"');
                i += 1;
            }
        } else if at(i) == '\'' && (at(i + 1) == '\\' || at(i + 2) == '\'') {
            // A char literal ('x', '\n', '\u{1F600}'); a lifetime has no closing quote.
            let mut k = i + 1;
            if at(k) == '\\' {
                k += 2;
            } else {
                k += 1;
            }
            while k < c.len() && c[k] != '\'' {
                k += 1;
            }
            for _ in i..=k.min(c.len() - 1) {
                out.push(' ');
            }
            i = k + 1;
        } else {
            out.push(c[i]);
            i += 1;
        }
    }
    out
}

/// The index just past the block that opens at the first `{` at or after `from`.
fn block_end(code: &[u8], from: usize) -> usize {
    let mut depth = 0usize;
    let mut i = from;
    while i < code.len() {
        match code[i] {
            b'{' => depth += 1,
            b'}' => {
                depth -= 1;
                if depth == 0 {
                    return i + 1;
                }
            }
            b';' if depth == 0 => return i + 1, // `mod tests;`: its own file
            _ => {}
        }
        i += 1;
    }
    code.len()
}

/// `code` without `#[cfg(test)] mod … { … }` blocks (blanked, lines kept).
fn without_unit_tests(code: &str) -> String {
    let mut bytes = code.as_bytes().to_vec();
    let mut from = 0;
    while let Some(pos) = code[from..].find("#[cfg(test)]") {
        let start = from + pos;
        let after = &code[start + "#[cfg(test)]".len()..];
        // Further attributes may sit between the cfg and the item.
        let mut rest = after.trim_start();
        while rest.starts_with("#[") {
            rest = rest[rest.find(']').map_or(rest.len(), |e| e + 1)..].trim_start();
        }
        let rest = rest.strip_prefix("pub ").unwrap_or(rest).trim_start();
        if rest.starts_with("mod ") {
            let end = block_end(code.as_bytes(), code.len() - rest.len());
            for b in &mut bytes[start..end] {
                if *b != b'\n' {
                    *b = b' ';
                }
            }
            from = end;
        } else {
            from = start + 1;
        }
    }
    String::from_utf8(bytes).unwrap()
}

fn is_ident(b: u8) -> bool {
    b.is_ascii_alphanumeric() || b == b'_'
}

fn ident_at(code: &[u8], i: usize) -> Option<(String, usize)> {
    let mut j = i;
    while j < code.len() && is_ident(code[j]) {
        j += 1;
    }
    (j > i).then(|| (String::from_utf8_lossy(&code[i..j]).into_owned(), j))
}

fn skip_ws(code: &[u8], mut i: usize) -> usize {
    while i < code.len() && code[i].is_ascii_whitespace() {
        i += 1;
    }
    i
}

/// The first segment of each item of the `{…}` group that opens at `i`
/// (`{spec::Spec, resolve::{a, b}, self}` → `spec`, `resolve`, `self`).
fn group_heads(code: &[u8], i: usize) -> Vec<String> {
    let mut heads = vec![];
    let mut depth = 0;
    let mut expect_head = true;
    let mut k = i;
    while k < code.len() {
        match code[k] {
            b'{' => {
                depth += 1;
                if depth == 1 {
                    expect_head = true;
                }
                k += 1;
            }
            b'}' => {
                depth -= 1;
                k += 1;
                if depth == 0 {
                    break;
                }
            }
            b',' if depth == 1 => {
                expect_head = true;
                k += 1;
            }
            b if depth == 1 && expect_head && is_ident(b) => {
                let (id, end) = ident_at(code, k).unwrap();
                heads.push(id);
                expect_head = false;
                k = end;
            }
            b'*' if depth == 1 && expect_head => {
                heads.push("*".into());
                expect_head = false;
                k += 1;
            }
            b if b.is_ascii_whitespace() => k += 1,
            _ => {
                if depth == 1 {
                    expect_head = false;
                }
                k += 1;
            }
        }
    }
    heads
}

/// A reference from one module to a top-level module: where, and to what.
#[derive(Debug)]
struct Reference {
    path: String,
    line: usize,
    from: String,
    to: String,
}

/// The top-level modules that `src`'s code names outside its own top-level module.
fn references(src: &Source) -> Vec<Reference> {
    let code = src.code.as_bytes();
    // Inline `mod name { … }` blocks change what `super` means inside them.
    let mut inline: Vec<(usize, usize, String)> = vec![];
    let mut i = 0;
    while let Some(pos) = src.code[i..].find("mod ") {
        let at = i + pos;
        i = at + 4;
        if at > 0 && is_ident(code[at - 1]) {
            continue;
        }
        let Some((name, end)) = ident_at(code, skip_ws(code, at + 4)) else {
            continue;
        };
        let open = skip_ws(code, end);
        if code.get(open) == Some(&b'{') {
            inline.push((open, block_end(code, open), name));
        }
    }
    let module_at = |pos: usize| -> Vec<String> {
        let mut m = src.module.clone();
        for (start, end, name) in &inline {
            if *start < pos && pos < *end {
                m.push(name.clone());
            }
        }
        m
    };
    let line_of = |pos: usize| src.code[..pos].matches('\n').count() + 1;

    let mut out = vec![];
    let mut push = |pos: usize, to: String| {
        if to != src.module[0] {
            out.push(Reference {
                path: src.path.clone(),
                line: line_of(pos),
                from: src.module[0].clone(),
                to,
            });
        }
    };
    let mut i = 0;
    while i < code.len() {
        let starts_path =
            (i == 0 || !(is_ident(code[i - 1]) || code[i - 1] == b':')) && is_ident(code[i]);
        if !starts_path {
            i += 1;
            continue;
        }
        let (word, end) = ident_at(code, i).unwrap();
        let sep = |k: usize| code.get(k) == Some(&b':') && code.get(k + 1) == Some(&b':');
        // `crate::x` and, in macros, `$crate::x`.
        if word == "crate" && sep(end) {
            let next = end + 2;
            if code.get(next) == Some(&b'{') {
                for h in group_heads(code, next) {
                    push(i, h);
                }
            } else if let Some((id, _)) = ident_at(code, next) {
                push(i, id);
            }
        } else if word == "super" && sep(end) {
            let mut module = module_at(i);
            let mut k = i;
            while let Some((w, e)) = ident_at(code, k) {
                if w != "super" || !sep(e) {
                    break;
                }
                module.pop();
                k = e + 2;
            }
            if module.is_empty() {
                // Up to the crate root: the next segment names a top-level module.
                if code.get(k) == Some(&b'{') {
                    for h in group_heads(code, k) {
                        push(i, h);
                    }
                } else if code.get(k) == Some(&b'*') {
                    push(i, "*".into());
                } else if let Some((id, _)) = ident_at(code, k) {
                    push(i, id);
                }
            }
            i = k;
            continue;
        }
        i = end;
    }
    out
}

// ---------------------------------------------------------------------------------------
// The checks

#[test]
fn every_module_is_in_the_table_once() {
    let lib = std::fs::read_to_string(src().join("lib.rs")).unwrap();
    let declared: BTreeSet<String> = lib
        .lines()
        .filter_map(|l| l.trim().strip_prefix("pub mod "))
        .map(|m| m.trim_end_matches(';').to_string())
        .collect();
    let listed: Vec<&str> = MODULES.iter().map(|(m, _, _)| *m).collect();
    let unique: BTreeSet<String> = listed.iter().map(|m| m.to_string()).collect();
    assert_eq!(unique.len(), listed.len(), "a module is listed twice");
    assert_eq!(
        declared, unique,
        "src/lib.rs's `pub mod` list and tests/layering.rs MODULES differ"
    );
    for (m, kind, uses) in MODULES {
        for u in *uses {
            let (_, used_kind, _) =
                row(u).unwrap_or_else(|| panic!("{m} uses `{u}`, which is not a module"));
            assert_ne!(m, u, "{m} lists itself");
            assert!(
                *kind != Core || *used_kind != Edge,
                "core module {m} may not use the edge module {u}"
            );
        }
    }
}

/// The edges the code has now, as rows of [`MODULES`] (for the failure messages).
fn observed_rows(used: &BTreeMap<String, BTreeSet<String>>) -> String {
    MODULES
        .iter()
        .map(|(m, kind, _)| {
            let uses = used.get(*m).cloned().unwrap_or_default();
            let uses: Vec<String> = uses.iter().map(|u| format!("{u:?}")).collect();
            format!("    ({m:?}, {kind:?}, &[{}]),", uses.join(", "))
        })
        .collect::<Vec<_>>()
        .join("\n")
}

#[test]
fn modules_use_only_the_modules_the_table_allows() {
    let sources = sources();
    assert!(sources.len() > 20, "found only {} files", sources.len());
    let mut violations = vec![];
    let mut used: BTreeMap<String, BTreeSet<String>> = BTreeMap::new();
    for s in &sources {
        let (_, _, allowed) = row(&s.module[0])
            .unwrap_or_else(|| panic!("{}: module `{}` is not in MODULES", s.path, s.module[0]));
        for r in references(s) {
            used.entry(r.from.clone()).or_default().insert(r.to.clone());
            if !allowed.contains(&r.to.as_str()) {
                violations.push(format!(
                    "{}:{}: `{}` uses `{}`, which its row in MODULES does not allow",
                    r.path, r.line, r.from, r.to
                ));
            }
        }
    }
    assert!(
        violations.is_empty(),
        "edges outside the dependency rule (tests/layering.rs MODULES); change the code, or \
         the table together with src/lib.rs and docs/architecture.md:\n{}\n\nthe edges the \
         code has now:\n{}",
        violations.join("\n"),
        observed_rows(&used)
    );
    let stale: Vec<String> = MODULES
        .iter()
        .flat_map(|(m, _, uses)| uses.iter().map(move |u| (*m, *u)))
        .filter(|(m, u)| !used.get(*m).is_some_and(|s| s.contains(*u)))
        .map(|(m, u)| format!("{m} → {u}"))
        .collect();
    assert!(
        stale.is_empty(),
        "MODULES allows edges no code uses any more; remove them here, in src/lib.rs and in \
         docs/architecture.md:\n{}\n\nthe edges the code has now:\n{}",
        stale.join("\n"),
        observed_rows(&used)
    );
}

#[test]
fn core_modules_do_no_io() {
    let mut violations = vec![];
    let sources = sources();
    for (m, kind, _) in MODULES {
        if *kind != Core {
            continue;
        }
        let files: Vec<&Source> = sources.iter().filter(|s| s.module[0] == *m).collect();
        assert!(!files.is_empty(), "core module {m} not found");
        for f in files {
            for (i, line) in f.code.lines().enumerate() {
                for bad in CORE_FORBIDDEN {
                    if line.contains(bad) {
                        violations.push(format!("{}:{}: uses `{bad}`", f.path, i + 1));
                    }
                }
            }
        }
    }
    assert!(
        violations.is_empty(),
        "the pure core must not do IO:\n{}",
        violations.join("\n")
    );
}

/// The rule as `- `module` (kind) → `a`, `b`` lines (`—` for none): how src/lib.rs writes it.
fn rule_lines() -> Vec<String> {
    MODULES
        .iter()
        .map(|(m, kind, uses)| {
            let uses = if uses.is_empty() {
                "—".to_string()
            } else {
                uses.iter()
                    .map(|u| format!("`{u}`"))
                    .collect::<Vec<_>>()
                    .join(", ")
            };
            format!("- `{m}` ({}) → {uses}", kind_name(*kind))
        })
        .collect()
}

fn kind_name(kind: Kind) -> &'static str {
    match kind {
        Shared => "shared",
        Core => "core",
        Edge => "edge",
    }
}

#[test]
fn lib_rs_states_the_rule_of_the_table() {
    let lib = std::fs::read_to_string(src().join("lib.rs")).unwrap();
    let written: Vec<String> = lib
        .lines()
        .filter_map(|l| l.strip_prefix("//! "))
        .filter(|l| l.starts_with("- `") && l.contains(") → "))
        .map(str::to_string)
        .collect();
    assert_eq!(
        written,
        rule_lines(),
        "src/lib.rs's dependency rule differs from tests/layering.rs MODULES; write it as:\n{}",
        rule_lines().join("\n")
    );
}

#[test]
fn architecture_doc_states_the_rule_of_the_table() {
    let doc =
        std::fs::read_to_string(Path::new(env!("CARGO_MANIFEST_DIR")).join("docs/architecture.md"))
            .unwrap();
    let section = doc
        .split("## Dependency rule")
        .nth(1)
        .expect("docs/architecture.md has a `## Dependency rule` section");
    let written: Vec<String> = section
        .lines()
        .take_while(|l| !l.starts_with("## "))
        .filter(|l| l.starts_with("| `"))
        .map(str::to_string)
        .collect();
    let want: Vec<String> = MODULES
        .iter()
        .map(|(m, kind, uses)| {
            let uses = if uses.is_empty() {
                "—".to_string()
            } else {
                uses.iter()
                    .map(|u| format!("`{u}`"))
                    .collect::<Vec<_>>()
                    .join(", ")
            };
            format!("| `{m}` | {} | {uses} |", kind_name(*kind))
        })
        .collect();
    assert_eq!(
        written,
        want,
        "docs/architecture.md's dependency table differs from tests/layering.rs MODULES; \
         write it as:\n{}",
        want.join("\n")
    );
}

// ---------------------------------------------------------------------------------------
// The reader itself

fn refs_of(module: &[&str], text: &str) -> Vec<(usize, String)> {
    let s = Source {
        path: "x.rs".into(),
        module: module.iter().map(|m| m.to_string()).collect(),
        code: without_unit_tests(&blank_comments_and_literals(text)),
    };
    references(&s).into_iter().map(|r| (r.line, r.to)).collect()
}

#[test]
fn the_reader_finds_every_form_of_reference() {
    let text = r##"use crate::spec::Spec;
use crate::{resolve::Resolution, llb::{self, State}};
fn f() -> crate::lock::Lock { todo!() }
use super::super::matrix::Table;
use super::sibling::Thing;
macro_rules! m { () => { $crate::proto::pb::Op::default() } }
mod inner { use super::super::super::Other; }
pub(crate) fn g() {}
"##;
    let got = refs_of(&["plan", "lower", "deep"], text);
    assert_eq!(
        got,
        [
            (1, "spec".to_string()),
            (2, "resolve".to_string()),
            (2, "llb".to_string()),
            (3, "lock".to_string()),
            (6, "proto".to_string()),
        ]
    );
    // From `plan::lower` (one level down), super::super is the crate root.
    assert_eq!(
        refs_of(&["plan", "lower"], "use super::super::matrix::Table;"),
        [(1, "matrix".to_string())]
    );
}

#[test]
fn the_reader_skips_comments_literals_and_unit_tests() {
    let text = r###"// use crate::cli::Args;
/* crate::frontend /* nested */ crate::probe */
const S: &str = "crate::buildkit::Client";
const R: &str = r#"crate::registry "quoted""#;
const C: char = '"'; fn f<'a>(x: &'a str) -> &'a str { x }
use crate::spec::Spec;
#[cfg(test)]
mod tests {
    use crate::cli::Args;
    fn t() { let _ = std::fs::read("x"); }
}
#[cfg(test)]
#[allow(unused)]
mod more_tests { use crate::frontend::x; }
use crate::llb::State;
"###;
    assert_eq!(
        refs_of(&["plan"], text),
        [(6, "spec".to_string()), (15, "llb".to_string())]
    );
    let code = without_unit_tests(&blank_comments_and_literals(text));
    assert!(!code.contains("std::fs"), "{code}");
    assert_eq!(code.lines().count(), text.lines().count());
}
