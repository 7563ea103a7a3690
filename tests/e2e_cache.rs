//! Cache export/import on the real daemon, judged from its status stream (`--progress
//! rawjson`: the exec step's `cached` flag), never from timings:
//! - `type=local,dest=DIR`: the client serves containerd's `Content` service over DIR and
//!   writes `index.json` after the build; after `docker builder prune -af` a build with
//!   `--import-cache type=local,src=DIR` finds the step cached (and one without it does
//!   not, so the import is what made the difference);
//! - `type=inline` (pushed with the image) and `type=registry` to localhost:5000, each
//!   imported with `type=registry,ref=…` after a prune.
//!
//! `docker builder prune -af` empties the daemon's whole build cache, so every scenario here
//! holds the cross-process cache lock exclusively ([`support::serial`]): no other test that
//! relies on the cache (here, in another test binary, or under `cargo nextest`) runs
//! meanwhile. Fails, never skips, when the daemon is missing: run `scripts/test-env.sh up`.

use std::collections::BTreeMap;
use std::path::Path;

mod support;
use support::{
    describe, docker_socket, require_daemon, serial, steps, unique, TestCommand, Vertex,
};

const SPEC: &str = "tests/e2e/cache";

/// Runs `torchkit build SPEC <args> --progress rawjson`; returns the steps.
fn build(args: &[&str], what: &str) -> BTreeMap<String, Vertex> {
    let addr = format!("docker://{}", docker_socket().display());
    let r = TestCommand::new()
        .args(["build", SPEC, "--addr", &addr, "--progress", "rawjson"])
        .args(args)
        .run();
    assert!(r.success(), "{what} failed:\n{}", r.describe());
    let s = steps(&r.stderr);
    assert!(
        s.contains_key("user"),
        "{what}: no user step in\n{}",
        describe(&s)
    );
    s
}

fn prune() {
    support::docker(&["builder", "prune", "-af"]);
}

fn blobs(dir: &Path) -> usize {
    std::fs::read_dir(dir.join("blobs/sha256"))
        .map(|d| d.count())
        .unwrap_or(0)
}

#[test]
fn local_cache_export_then_import_after_prune() {
    require_daemon();
    let _cache = serial::exclusive();
    let tmp = tempfile::tempdir().unwrap();
    let cache = tmp.path().join("cache");
    let cache = cache.to_str().unwrap();

    build(
        &[
            "--export-cache",
            &format!("type=local,dest={cache},mode=max"),
        ],
        "export to a local cache",
    );
    let idx: serde_json::Value = serde_json::from_slice(
        &std::fs::read(tmp.path().join("cache/index.json")).expect("index.json written"),
    )
    .unwrap();
    let manifests = idx["manifests"].as_array().expect("manifests");
    assert_eq!(manifests.len(), 1, "{idx}");
    assert_eq!(
        manifests[0]["annotations"]["org.opencontainers.image.ref.name"],
        "latest"
    );
    let top = manifests[0]["digest"].as_str().unwrap();
    assert!(
        tmp.path()
            .join("cache/blobs/sha256")
            .join(&top[7..])
            .is_file(),
        "the cache manifest {top} is in blobs/"
    );
    assert!(
        blobs(&tmp.path().join("cache")) >= 3,
        "layers, config, manifest"
    );
    assert!(tmp.path().join("cache/oci-layout").is_file());
    assert!(
        !tmp.path().join("cache/ingest").exists(),
        "no temporary writes left"
    );

    // Without the cache, the step runs again after a prune: the control.
    prune();
    let s = build(&[], "build after prune");
    assert!(
        !s["user"].cached,
        "a pruned daemon re-runs the user step:\n{}",
        describe(&s)
    );

    prune();
    let s = build(
        &["--import-cache", &format!("type=local,src={cache}")],
        "import from the local cache",
    );
    assert!(
        s["user"].cached,
        "the imported cache makes user CACHED:\n{}",
        describe(&s)
    );

    // An empty directory imports nothing (a warning) and the build still works.
    let empty = tmp.path().join("empty");
    std::fs::create_dir(&empty).unwrap();
    build(
        &[
            "--import-cache",
            &format!("type=local,src={}", empty.display()),
        ],
        "import from an empty local cache",
    );
}

#[test]
fn inline_cache_pushed_with_the_image() {
    require_daemon();
    let _cache = serial::exclusive();
    let image = format!("localhost:5000/torchkit-e2e/cache-inline:{}", unique("run"));
    build(
        &["-t", &image, "--push", "--export-cache", "type=inline"],
        "push with inline cache",
    );
    prune();
    let s = build(
        &["--import-cache", &format!("type=registry,ref={image}")],
        "import the inline cache",
    );
    assert!(
        s["user"].cached,
        "the inline cache makes user CACHED:\n{}",
        describe(&s)
    );
}

#[test]
fn registry_cache_export_then_import_after_prune() {
    require_daemon();
    let _cache = serial::exclusive();
    let cache_ref = format!("localhost:5000/torchkit-e2e/cache:{}", unique("run"));
    build(
        &[
            "--export-cache",
            &format!("type=registry,ref={cache_ref},mode=max"),
        ],
        "export to a registry cache",
    );
    prune();
    let s = build(
        &["--import-cache", &format!("type=registry,ref={cache_ref}")],
        "import the registry cache",
    );
    assert!(
        s["user"].cached,
        "the registry cache makes user CACHED:\n{}",
        describe(&s)
    );
}
