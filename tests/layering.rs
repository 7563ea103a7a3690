//! The dependency rule of `src/lib.rs`, checked: the pure core (spec, matrix, resolve,
//! plan, llb) uses no IO, no async runtime and none of the edge modules.

use std::path::Path;

const CORE: &[&str] = &[
    "vocab", "spec", "matrix", "resolve", "plan", "llb", "lock", "load",
];
const FORBIDDEN: &[&str] = &[
    "tokio",
    "tonic",
    "std::fs",
    "std::net",
    "std::process",
    "std::env",
    "std::time::SystemTime",
    "std::time::Instant",
    "crate::buildkit",
    "crate::frontend",
    "crate::probe",
    "crate::cli",
    "getrandom",
];

fn rs_files(dir: &Path, out: &mut Vec<std::path::PathBuf>) {
    for e in std::fs::read_dir(dir).unwrap() {
        let p = e.unwrap().path();
        if p.is_dir() {
            rs_files(&p, out);
        } else if p.extension().is_some_and(|x| x == "rs") {
            out.push(p);
        }
    }
}

#[test]
fn core_modules_do_no_io() {
    let src = Path::new(env!("CARGO_MANIFEST_DIR")).join("src");
    let mut violations = vec![];
    for m in CORE {
        let mut files = vec![];
        let dir = src.join(m);
        if dir.is_dir() {
            rs_files(&dir, &mut files);
        }
        let single = src.join(format!("{m}.rs"));
        if single.is_file() {
            files.push(single);
        }
        assert!(!files.is_empty(), "core module {m} not found");
        for f in files {
            // Unit tests may read fixtures; they are not part of the core's behaviour.
            let is_test = f.file_name().is_some_and(|n| n == "tests.rs");
            let text = std::fs::read_to_string(&f).unwrap();
            for (i, line) in text.lines().enumerate() {
                let code = line.split("//").next().unwrap_or("");
                for bad in FORBIDDEN {
                    if code.contains(bad) && !is_test {
                        violations.push(format!("{}:{}: uses `{bad}`", f.display(), i + 1));
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
