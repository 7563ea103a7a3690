//! `--online` end to end, against the real daemon and local registry of the test
//! environment and a stand-in PyPI served by the test (tests/fixtures/online): a torch
//! release newer than the matrix (2.16.0, invented) whose `pytorch/pytorch` tag exists in the
//! registry (the stand-in image tagged again) is built
//! - by `torchkit build --online` (the driver: PyPI's JSON for the facts, the registry's tag
//!   list for the tags), and
//! - by `docker buildx build --build-arg TORCHKIT_ONLINE=1` through the `# syntax=`
//!   frontend, which asks the daemon's ResolveImageConfig which tags exist;
//!
//! and refused, with the hint that names `--online`, when the switch is off.
//! These tests FAIL, never skip, when the daemon, the registry or the frontend image is
//! missing (`scripts/test-env.sh up`, `scripts/frontend-image.sh`).

use std::path::{Path, PathBuf};
use std::process::Command;

mod support;
use support::http::FileServer;
use support::{serial, TestCommand};

const REGISTRY: &str = "127.0.0.1:5000";
const FRONTEND: &str = "localhost:5000/torchkit/frontend:dev";
/// The stand-in every official tag of the test environment serves.
const STANDIN: &str = "2.8.0-cuda12.8-cudnn9-runtime";
const TAG: &str = "2.16.0-cuda13.2-cudnn9-runtime";

/// The registry has `pytorch/pytorch:2.16.0-cuda13.2-cudnn9-runtime` (the stand-in).
fn registry_has_the_new_tag() {
    support::require_daemon();
    // Once per process: two PUTs of one tag at the same time are the kind of race the
    // registry has answered with a 500.
    static TAGGED: std::sync::OnceLock<()> = std::sync::OnceLock::new();
    TAGGED.get_or_init(|| {
        assert!(
            support::registry_digest(REGISTRY, "pytorch/pytorch", STANDIN).is_some(),
            "the local registry does not serve the stand-in\n{}",
            support::START_HINT
        );
        support::registry_retag(REGISTRY, "pytorch/pytorch", STANDIN, TAG);
    });
}

/// A context with a spec for torch 2.16.0 on the local registry (`[base] mirror`).
fn context(syntax: bool, online: bool) -> tempfile::TempDir {
    let dir = tempfile::tempdir().unwrap();
    let syntax = if syntax {
        format!("# syntax={FRONTEND}\n")
    } else {
        String::new()
    };
    let online = if online { "online = true\n" } else { "" };
    std::fs::write(
        dir.path().join("torchkit.toml"),
        format!(
            "{syntax}[torch]\nversion = \"2.16.0\"\n{online}\n[base]\nmirror = \"localhost:5000\"\n\n\
             [image]\nuser = \"root\"\ncmd = [\"python3\"]\n"
        ),
    )
    .unwrap();
    dir
}

fn fixtures() -> PathBuf {
    Path::new(env!("CARGO_MANIFEST_DIR")).join("tests/fixtures/online")
}

fn docker() -> Command {
    support::docker_command()
}

/// The `org.opencontainers.image.*` and torchkit labels of a loaded image, as JSON text.
fn labels(image: &str) -> String {
    let o = docker()
        .args([
            "image",
            "inspect",
            "--format",
            "{{json .Config.Labels}}",
            image,
        ])
        .output()
        .expect("docker image inspect");
    assert!(o.status.success(), "{}", String::from_utf8_lossy(&o.stderr));
    String::from_utf8_lossy(&o.stdout).into_owned()
}

#[test]
fn torchkit_build_online_builds_the_release_pypi_and_the_registry_describe() {
    registry_has_the_new_tag();
    let _cache = serial::shared();
    let pypi = FileServer::start(&fixtures());
    let ctx = context(false, false);
    let spec = ctx.path().join("torchkit.toml");
    let image = support::unique("torchkit-e2e-online-driver");
    // The 2.16.0 tag is the 2.8.0 stand-in under another name: the verify stage would
    // rightly refuse its torch (tests/e2e_verify.rs), so this build leaves it out.
    let run = TestCommand::new()
        .env("TORCHKIT_PYPI_URL", &pypi.url)
        .args(["build", "--progress", "plain", "--online", "--skip-verify"])
        .args(["-t", &image])
        .arg(&spec)
        .assert_ok();
    assert!(
        run.stderr.contains("torch 2.16.0 is not in this torchkit's matrix (gathered 2026-12-03): the tag 2.16.0-cuda13.2-cudnn9-runtime exists"),
        "{}",
        run.describe()
    );
    let asked = pypi.asked();
    assert_eq!(asked[0], "/pypi/torch/2.16.0/json", "{asked:?}");
    // The tags came from the real registry, not the fixture's list.
    assert!(!asked.iter().any(|p| p.starts_with("/v2/")), "{asked:?}");
    let l = labels(&image);
    assert!(l.contains("2.16.0"), "{l}");
    let _ = docker().args(["image", "rm", "-f", &image]).output();
}

#[test]
fn without_online_the_build_is_refused_before_it_starts() {
    support::require_daemon();
    let ctx = context(false, false);
    let err = TestCommand::new()
        .args([
            "build",
            "--progress",
            "plain",
            "-t",
            "torchkit-e2e-online:off",
        ])
        .arg(ctx.path().join("torchkit.toml"))
        .assert_err();
    assert!(
        err.contains("torch 2.16.0 is newer than this torchkit's matrix"),
        "{err}"
    );
    assert!(err.contains("--online"), "{err}");
}

#[test]
fn the_frontend_finds_the_tag_through_resolve_image_config() {
    registry_has_the_new_tag();
    let _cache = serial::shared();
    let ctx = context(true, false);
    let image = support::unique("torchkit-e2e-online-frontend");
    let o = docker()
        .current_dir(ctx.path())
        .args(["buildx", "build", "--load", "-f", "torchkit.toml"])
        .args(["--build-arg", "TORCHKIT_ONLINE=1", "-t", &image, "."])
        // A 2.8.0 stand-in under the 2.16.0 tag, as in the driver's test.
        .args(["--build-arg", "TORCHKIT_SKIP_VERIFY=1"])
        .output()
        .expect("docker buildx build");
    let stderr = String::from_utf8_lossy(&o.stderr);
    assert!(o.status.success(), "{stderr}");
    assert!(
        stderr.contains("torch 2.16.0 is not in this torchkit's matrix"),
        "{stderr}"
    );
    assert!(stderr.contains("the PyPI default CUDA"), "{stderr}");
    let l = labels(&image);
    assert!(l.contains("2.16.0"), "{l}");
    let _ = docker().args(["image", "rm", "-f", &image]).output();

    // Off (the default), the frontend refuses it with the same message as the CLI.
    let o = docker()
        .current_dir(ctx.path())
        .args(["buildx", "build", "-f", "torchkit.toml", "."])
        .output()
        .expect("docker buildx build");
    let stderr = String::from_utf8_lossy(&o.stderr);
    assert!(!o.status.success(), "{stderr}");
    assert!(
        stderr.contains("torch 2.16.0 is newer than this torchkit's matrix"),
        "{stderr}"
    );
}
