//! The CLI on good and bad specs: `plan`, `llb`, and the error style (file:line:col, the
//! offending line, a hint, a non-zero exit, nothing on stdout).

use std::path::{Path, PathBuf};
use std::process::{Command, Output};

fn torchkit(args: &[&str]) -> Output {
    Command::new(env!("CARGO_BIN_EXE_torchkit"))
        .args(args)
        .env_remove("TORCHKIT_CUDA")
        .env_remove("TORCHKIT_DRIVER")
        .env_remove("TORCHKIT_GPU")
        .env_remove("TORCHKIT_PROFILE")
        .output()
        .expect("run torchkit")
}

fn example(name: &str) -> String {
    Path::new(env!("CARGO_MANIFEST_DIR"))
        .join("examples")
        .join(name)
        .display()
        .to_string()
}

fn write_spec(text: &str) -> (tempfile::TempDir, PathBuf) {
    let dir = tempfile::tempdir().unwrap();
    let p = dir.path().join("torchkit.toml");
    std::fs::write(&p, text).unwrap();
    (dir, p)
}

fn stderr(o: &Output) -> String {
    String::from_utf8_lossy(&o.stderr).into_owned()
}

#[test]
fn llb_pb_is_deterministic_and_decodes() {
    let a = torchkit(&["llb", &example("quickstart")]);
    let b = torchkit(&["llb", &example("quickstart")]);
    assert!(a.status.success(), "{}", stderr(&a));
    assert_eq!(a.stdout, b.stdout, "same spec, same bytes");
    let def = torchkit::llb::decode(&a.stdout).expect("stdout is a Definition");
    assert!(def.def.len() > 5);
    assert!(
        a.stderr.is_empty() || !stderr(&a).contains("error"),
        "{}",
        stderr(&a)
    );
}

#[test]
fn llb_json_dump_names_steps() {
    let o = torchkit(&["llb", &example("quickstart"), "--format", "json"]);
    assert!(o.status.success(), "{}", stderr(&o));
    let v: serde_json::Value = serde_json::from_slice(&o.stdout).unwrap();
    let names: Vec<String> = v["ops"]
        .as_array()
        .unwrap()
        .iter()
        .filter_map(|o| o["metadata"]["custom_name"].as_str().map(String::from))
        .collect();
    assert!(
        names.iter().any(|n| n.starts_with("[torchkit 3/6] pip:")),
        "{names:?}"
    );
}

#[test]
fn plan_shows_steps_and_cache_rules() {
    let o = torchkit(&["plan", &example("h100-devel")]);
    assert!(o.status.success(), "{}", stderr(&o));
    let out = String::from_utf8(o.stdout).unwrap();
    assert!(
        out.contains("base      docker.io/pytorch/pytorch:2.8.0-cuda12.8-cudnn9-devel"),
        "{out}"
    );
    assert!(
        out.contains("resolution re-runs every build (test profile); the install re-runs when the resolved set changes"),
        "{out}"
    );
    let o = torchkit(&["plan", &example("h100-devel"), "--json", "--profile", "dev"]);
    let v: serde_json::Value = serde_json::from_slice(&o.stdout).unwrap();
    assert_eq!(v["profile"], "dev");
    assert_eq!(v["steps"][2]["cache"]["rule"], "epoch");
}

#[test]
fn unknown_key_error_shows_the_line_and_a_hint() {
    let (_d, p) = write_spec("[torch]\nversion = \"2.8.0\"\n[python]\npakages = [\"numpy\"]\n");
    let o = torchkit(&["plan", p.to_str().unwrap()]);
    assert_eq!(o.status.code(), Some(1));
    assert!(o.stdout.is_empty(), "errors never go to stdout");
    let e = stderr(&o);
    assert!(
        e.contains("error: torchkit.toml:4:1: unknown key `pakages` in [python]"),
        "{e}"
    );
    assert!(e.contains("4 | pakages = [\"numpy\"]"), "{e}");
    assert!(e.contains("hint: did you mean `packages`?"), "{e}");
}

#[test]
fn malformed_toml_is_located() {
    let (_d, p) = write_spec("[torch]\nversion = \"2.8.0\n");
    let o = torchkit(&["llb", p.to_str().unwrap()]);
    assert_eq!(o.status.code(), Some(1));
    let e = stderr(&o);
    assert!(e.contains("torchkit.toml:2:"), "{e}");
    assert!(e.contains("invalid TOML"), "{e}");
}

#[test]
fn impossible_versions_point_at_the_spec_and_name_a_fix() {
    let (_d, p) = write_spec("[torch]\nversion = \"2.8.0\"\ncuda = \"11.8\"\n");
    let o = torchkit(&["plan", p.to_str().unwrap()]);
    assert_eq!(o.status.code(), Some(1));
    let e = stderr(&o);
    assert!(e.contains("torchkit.toml:3:8"), "{e}");
    assert!(e.contains("12.6, 12.8, 12.9"), "{e}");
    assert!(e.contains("2.7.1"), "{e}");
    // The same request from a flag is reported without a spec location.
    let (_d2, p2) = write_spec("[torch]\nversion = \"2.8.0\"\n");
    let o = torchkit(&["plan", p2.to_str().unwrap(), "--cuda", "11.8"]);
    assert_eq!(o.status.code(), Some(1));
    assert!(!stderr(&o).contains("torchkit.toml:"), "{}", stderr(&o));
}

#[test]
fn unknown_torch_names_nearest_releases() {
    let (_d, p) = write_spec("[torch]\nversion = \"2.8.7\"\n");
    let o = torchkit(&["plan", p.to_str().unwrap()]);
    assert_eq!(o.status.code(), Some(1));
    let e = stderr(&o);
    assert!(e.contains("torchkit.toml:2:11"), "{e}");
    assert!(e.contains("2.8.0"), "{e}");
}

#[test]
fn release_without_pin_is_refused_with_a_fix() {
    let o = torchkit(&["llb", &example("quickstart"), "--profile", "release"]);
    assert_eq!(o.status.code(), Some(1));
    assert!(o.stdout.is_empty(), "no half-written output");
    let e = stderr(&o);
    assert!(
        e.contains("release profile needs a base pinned by digest"),
        "{e}"
    );
    assert!(e.contains("hint:"), "{e}");
}

#[test]
fn missing_spec_says_where_it_looked() {
    let dir = tempfile::tempdir().unwrap();
    let o = torchkit(&["plan", dir.path().to_str().unwrap()]);
    assert_eq!(o.status.code(), Some(1));
    let e = stderr(&o);
    assert!(
        e.contains("cannot read") && e.contains("torchkit.toml"),
        "{e}"
    );
    assert!(e.contains("hint:"), "{e}");
}

#[test]
fn bad_build_contexts_are_refused_before_any_daemon_is_asked() {
    let spec = example("quickstart");
    for (flag, want) in [
        (
            "nope",
            "invalid --build-context `nope`: expected NAME=docker-image://IMAGE",
        ),
        (
            "pytorch/pytorch=local:src",
            "torchkit takes a named context only as an image",
        ),
    ] {
        let o = torchkit(&[
            "build",
            "--addr",
            "unix:///nonexistent/torchkit-test.sock",
            "--build-context",
            flag,
            &spec,
        ]);
        let err = stderr(&o);
        assert!(!o.status.success(), "{err}");
        assert!(err.contains(want), "{flag}: {err}");
        assert!(err.contains("hint:"), "{err}");
        assert!(!err.contains("nonexistent"), "asked the daemon: {err}");
        assert!(o.stdout.is_empty());
    }
}
