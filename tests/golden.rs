//! Golden tests: every `examples/*/torchkit.toml` → plan JSON and LLB dump, compared with
//! `tests/golden/<example>/`. Regenerate after an intended change with
//! `UPDATE_GOLDEN=1 cargo test --test golden` and review the diff.
//!
//! Also: compiling twice gives identical bytes, and decode → re-encode is byte-identical.

use std::path::{Path, PathBuf};

use torchkit::llb;
use torchkit::plan::{self, CompileOptions};
use torchkit::resolve;
use torchkit::spec;

fn examples() -> Vec<PathBuf> {
    let root = Path::new(env!("CARGO_MANIFEST_DIR")).join("examples");
    let mut v: Vec<PathBuf> = std::fs::read_dir(&root)
        .unwrap()
        .map(|e| e.unwrap().path())
        .filter(|p| p.join("torchkit.toml").is_file())
        .collect();
    v.sort();
    assert!(v.len() >= 3, "expected the examples in {}", root.display());
    v
}

fn options() -> CompileOptions {
    CompileOptions {
        // Fixed, so that busted steps have stable digests in the goldens.
        build_token: Some("golden-build-token".into()),
        ..CompileOptions::default()
    }
}

fn compile(dir: &Path) -> plan::Compiled {
    let text = std::fs::read_to_string(dir.join("torchkit.toml")).unwrap();
    let spec = spec::parse(&text, "torchkit.toml").unwrap();
    let res = resolve::resolve(&spec.request()).unwrap();
    plan::compile(&spec, &res, &options()).unwrap()
}

fn check(golden: &Path, actual: &str) {
    if std::env::var_os("UPDATE_GOLDEN").is_some() {
        std::fs::create_dir_all(golden.parent().unwrap()).unwrap();
        std::fs::write(golden, actual).unwrap();
        return;
    }
    let expected = std::fs::read_to_string(golden).unwrap_or_else(|_| {
        panic!(
            "missing {}; run UPDATE_GOLDEN=1 cargo test --test golden",
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

#[test]
fn plan_and_llb_match_goldens() {
    let goldens = Path::new(env!("CARGO_MANIFEST_DIR")).join("tests/golden");
    for dir in examples() {
        let name = dir.file_name().unwrap().to_string_lossy().into_owned();
        let c = compile(&dir);
        let plan = serde_json::to_string_pretty(&c.plan).unwrap() + "\n";
        check(&goldens.join(&name).join("plan.json"), &plan);
        let dump = serde_json::to_string_pretty(&llb::dump(&c.definition).unwrap()).unwrap() + "\n";
        check(&goldens.join(&name).join("llb.json"), &dump);
        let cfg: serde_json::Value = serde_json::from_slice(&c.image_config).unwrap();
        check(
            &goldens.join(&name).join("image-config.json"),
            &(serde_json::to_string_pretty(&cfg).unwrap() + "\n"),
        );
    }
}

#[test]
fn compiling_twice_gives_identical_bytes() {
    for dir in examples() {
        let a = llb::definition_bytes(&compile(&dir).definition);
        let b = llb::definition_bytes(&compile(&dir).definition);
        assert_eq!(a, b, "{}", dir.display());
    }
}

#[test]
fn decode_reencode_round_trip() {
    for dir in examples() {
        let bytes = llb::definition_bytes(&compile(&dir).definition);
        let decoded = llb::decode(&bytes).unwrap();
        assert_eq!(llb::definition_bytes(&decoded), bytes, "{}", dir.display());
    }
}
