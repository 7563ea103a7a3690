//! Cache profiles on the real daemon, read from its status stream (`--progress rawjson`),
//! never from timings: dev twice → fully cached; test → the dependency steps re-run and the
//! base's layers are not fetched again (registry access log); a changed epoch re-runs the
//! dependency steps and keeps apt; release → every step re-runs.
//!
//! tests/e2e_build.rs covers the same profiles on its own spec; this file adds the epoch and
//! the registry-log evidence. Fails, never skips, when the daemon is missing.

use std::collections::BTreeMap;
use std::path::Path;
use std::process::{Command, Stdio};

mod support;
use support::{describe, docker_socket, require_daemon, steps, Vertex};

const HOST_CA: &str = "/etc/ssl/certs/ca-certificates.crt";
const REGISTRY_LOG: &str = "/var/lib/torchkit-test-env/registry.log";

fn build(dir: &Path, profile: &str) -> BTreeMap<String, Vertex> {
    let addr = format!("docker://{}", docker_socket().display());
    let out = Command::new(env!("CARGO_BIN_EXE_torchkit"))
        .env_remove("BUILDKIT_HOST")
        .env_remove("TORCHKIT_PROFILE")
        .args([
            "build",
            dir.to_str().unwrap(),
            "--addr",
            &addr,
            "--ca-bundle",
            HOST_CA,
        ])
        .args(["--profile", profile, "--progress", "rawjson"])
        .stdin(Stdio::null())
        .output()
        .expect("run torchkit");
    let stderr = String::from_utf8_lossy(&out.stderr);
    assert!(out.status.success(), "{profile} build failed:\n{stderr}");
    let s = steps(&stderr);
    for name in ["base", "apt", "pip", "requirements", "user"] {
        assert!(
            s.contains_key(name),
            "no {name} step in the {profile} build:\n{}",
            describe(&s)
        );
    }
    s
}

/// Layer downloads of the stand-in (config and manifests are small and resolved on every build).
fn layer_gets() -> usize {
    let log =
        std::fs::read_to_string(REGISTRY_LOG).unwrap_or_else(|e| panic!("{REGISTRY_LOG}: {e}"));
    log.lines()
        .filter(|l| l.contains("\"GET /v2/pytorch/pytorch/blobs/sha256:"))
        .filter(|l| {
            l.split("\" ")
                .nth(1)
                .and_then(|rest| rest.split(' ').nth(1))
                .and_then(|n| n.parse::<u64>().ok())
                .is_some_and(|n| n > 1_000_000)
        })
        .count()
}

fn assert_cached(s: &BTreeMap<String, Vertex>, names: &[&str], what: &str) {
    for n in names {
        assert!(
            s[*n].cached,
            "{what}: {n} should be cached:\n{}",
            describe(s)
        );
    }
}

fn assert_ran(s: &BTreeMap<String, Vertex>, names: &[&str], what: &str) {
    for n in names {
        let v = &s[*n];
        assert!(
            !v.cached && v.completed,
            "{what}: {n} should have run:\n{}",
            describe(s)
        );
    }
}

#[test]
fn profiles_and_epoch_from_the_status_stream() {
    require_daemon();
    let tmp = tempfile::tempdir().unwrap();
    let dir = tmp.path().join("profiles");
    std::fs::create_dir_all(&dir).unwrap();
    let src = Path::new(env!("CARGO_MANIFEST_DIR")).join("tests/e2e-lock/profiles");
    for f in ["torchkit.toml", "requirements.txt"] {
        std::fs::copy(src.join(f), dir.join(f)).unwrap();
    }

    // dev, twice: the second build is fully cached.
    build(&dir, "dev");
    let s = build(&dir, "dev");
    assert_cached(&s, &["apt", "pip", "requirements", "user"], "dev again");
    assert!(
        s["base"].name.contains("@sha256:"),
        "the base is pinned: {}",
        s["base"].name
    );

    // test: the dependency steps re-run (and what is built on them), apt stays, and the base's
    // layers are not downloaded again.
    let before = layer_gets();
    let s = build(&dir, "test");
    assert_ran(&s, &["pip", "requirements"], "test");
    assert!(
        s["pip"].name.contains("(re-run: test profile)"),
        "{}",
        s["pip"].name
    );
    assert_cached(&s, &["apt"], "test");
    assert!(
        s["base"]
            .statuses
            .iter()
            .all(|id| id.starts_with("resolve ")),
        "the base was pulled again:\n{}",
        describe(&s)
    );
    assert_eq!(
        layer_gets(),
        before,
        "the test profile fetched base layers from the registry"
    );

    // A new epoch re-runs exactly the dependency steps once; apt stays cached. The epoch is
    // new to this daemon (its build cache outlives test runs), so nothing can match it.
    let epoch = format!(
        "run-{}-{}",
        std::process::id(),
        std::time::SystemTime::now()
            .duration_since(std::time::UNIX_EPOCH)
            .unwrap()
            .as_nanos()
    );
    let spec = std::fs::read_to_string(dir.join("torchkit.toml")).unwrap();
    std::fs::write(
        dir.join("torchkit.toml"),
        spec.replace("epoch = \"one\"", &format!("epoch = \"{epoch}\"")),
    )
    .unwrap();
    let s = build(&dir, "dev");
    assert_ran(&s, &["pip", "requirements"], "new epoch");
    assert_cached(&s, &["apt"], "new epoch");
    let s = build(&dir, "dev");
    assert_cached(
        &s,
        &["apt", "pip", "requirements", "user"],
        "same epoch again",
    );

    // release: every step re-runs.
    let s = build(&dir, "release");
    assert_ran(
        &s,
        &["base", "apt", "pip", "requirements", "user"],
        "release",
    );
}
