//! Golden files: compare a rendering with `tests/golden/…`, or rewrite it under
//! `UPDATE_GOLDEN=1`. Shared by tests/golden.rs (plan, LLB, image config) and tests/graph.rs.

use std::path::Path;

/// Compare `actual` with the golden file; with `UPDATE_GOLDEN` set, write it instead.
/// `test` names the test binary in the "how to regenerate" message.
pub fn check(test: &str, golden: &Path, actual: &str) {
    if std::env::var_os("UPDATE_GOLDEN").is_some() {
        std::fs::create_dir_all(golden.parent().unwrap()).unwrap();
        std::fs::write(golden, actual).unwrap();
        return;
    }
    let expected = std::fs::read_to_string(golden).unwrap_or_else(|_| {
        panic!(
            "missing {}; run UPDATE_GOLDEN=1 cargo test --test {test}",
            golden.display()
        )
    });
    if expected != actual {
        let (mut line, mut e, mut a) = (0, "", "");
        for (i, (x, y)) in expected.lines().zip(actual.lines()).enumerate() {
            if x != y {
                (line, e, a) = (i + 1, x, y);
                break;
            }
        }
        panic!(
            "{} differs (first at line {line}):\n  expected: {e}\n  actual:   {a}\n\
             re-run with UPDATE_GOLDEN=1 if the change is intended",
            golden.display()
        );
    }
}
