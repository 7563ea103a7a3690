//! `torchkit llb|plan --resolve-digest`: the base is pinned through the registry's
//! distribution API with no daemon involved. Needs the local registry of
//! `scripts/test-env.sh up` (with the stand-in); fails, never skips, without it.

mod support;
use support::{TestCommand, START_HINT};

const REGISTRY: &str = "127.0.0.1:5000";

#[test]
fn release_llb_is_pinned_through_the_registry() {
    let dir = tempfile::tempdir().unwrap();
    let spec = dir.path().join("torchkit.toml");
    std::fs::write(
        &spec,
        "[torch]\nversion = \"2.8.0\"\ncuda = \"12.8\"\n[cache]\nprofile = \"release\"\n\
         [base]\nmirror = \"localhost:5000\"\n",
    )
    .unwrap();
    let want =
        support::registry_digest(REGISTRY, "pytorch/pytorch", "2.8.0-cuda12.8-cudnn9-runtime")
            .unwrap_or_else(|| {
                panic!("the local registry does not serve the stand-in\n{START_HINT}")
            });

    let v = TestCommand::new()
        .args([
            "llb",
            spec.to_str().unwrap(),
            "--format",
            "json",
            "--resolve-digest",
        ])
        .assert_ok()
        .json();
    let id = v["ops"]
        .as_array()
        .unwrap()
        .iter()
        .find_map(|o| {
            o["source"]["identifier"]
                .as_str()
                .filter(|i| i.starts_with("docker-image://"))
        })
        .unwrap()
        .to_string();
    assert_eq!(
        id,
        format!(
            "docker-image://localhost:5000/pytorch/pytorch:2.8.0-cuda12.8-cudnn9-runtime@{want}"
        )
    );
    // Without --resolve-digest the same release build is refused.
    let err = TestCommand::new()
        .args(["llb", spec.to_str().unwrap()])
        .assert_err();
    assert!(
        err.contains("release profile needs a base pinned by digest")
            && err.contains("--resolve-digest"),
        "{err}"
    );
}
