//! Cache export/import on the real daemon, judged from its status stream (`--progress
//! rawjson`: the exec step's `cached` flag), never from timings:
//! - `type=local,dest=DIR`: the client serves containerd's `Content` service over DIR and
//!   writes `index.json` after the build; after `docker builder prune -af` a build with
//!   `--import-cache type=local,src=DIR` finds the step cached (and one without it does
//!   not, so the import is what made the difference);
//! - `type=inline` (pushed with the image) and `type=registry` to localhost:5000, each
//!   imported with `type=registry,ref=…` after a prune.
//!
//! `docker builder prune -af` empties the daemon's whole build cache, which slows down (but
//! does not break) other e2e tests running at the same time; the scenarios here hold one
//! lock so they do not prune each other's caches. Fails, never skips, when the daemon is
//! missing: run `scripts/test-env.sh up`.

use std::collections::BTreeMap;
use std::path::Path;
use std::process::{Command, Stdio};
use std::sync::Mutex;

mod support;
use support::{docker_socket, require_daemon};

const SPEC: &str = "tests/e2e/cache";
static PRUNE_LOCK: Mutex<()> = Mutex::new(());

/// A tag unique to this run, so a cache left by an earlier run cannot pass for this one.
fn unique() -> String {
    let t = std::time::SystemTime::now()
        .duration_since(std::time::UNIX_EPOCH)
        .unwrap()
        .as_nanos();
    format!("{}-{t}", std::process::id())
}

/// `[torchkit 2/2] user: …` → (`user`, cached), merged over the rawjson messages.
fn steps(stderr: &str) -> BTreeMap<String, bool> {
    let mut by_digest: BTreeMap<String, (String, bool)> = BTreeMap::new();
    for line in stderr.lines().filter(|l| l.starts_with('{')) {
        let Ok(msg) = serde_json::from_str::<serde_json::Value>(line) else {
            continue;
        };
        for v in msg["vertexes"].as_array().into_iter().flatten() {
            let e = by_digest
                .entry(v["digest"].as_str().unwrap_or_default().into())
                .or_default();
            if let Some(n) = v["name"].as_str().filter(|n| !n.is_empty()) {
                e.0 = n.into();
            }
            e.1 |= v["cached"].as_bool().unwrap_or(false);
        }
    }
    by_digest
        .into_values()
        .filter_map(|(name, cached)| {
            let rest = name.strip_prefix("[torchkit ")?;
            let (counter, rest) = rest.split_once("] ")?;
            counter
                .contains('/')
                .then(|| (rest.split(':').next().unwrap().to_string(), cached))
        })
        .collect()
}

/// Runs `torchkit build SPEC <args> --progress rawjson`; returns the steps.
fn build(args: &[&str], what: &str) -> BTreeMap<String, bool> {
    let addr = format!("docker://{}", docker_socket().display());
    let out = Command::new(env!("CARGO_BIN_EXE_torchkit"))
        .env_remove("BUILDKIT_HOST")
        .env_remove("TORCHKIT_PROFILE")
        .args(["build", SPEC, "--addr", &addr, "--progress", "rawjson"])
        .args(args)
        .stdin(Stdio::null())
        .output()
        .expect("run torchkit");
    let stderr = String::from_utf8_lossy(&out.stderr);
    assert!(out.status.success(), "{what} failed:\n{stderr}");
    let s = steps(&stderr);
    assert!(s.contains_key("user"), "{what}: no user step in {s:?}");
    s
}

fn prune() {
    support::docker(&["builder", "prune", "-af"]);
}

fn lock() -> std::sync::MutexGuard<'static, ()> {
    PRUNE_LOCK.lock().unwrap_or_else(|e| e.into_inner())
}

fn blobs(dir: &Path) -> usize {
    std::fs::read_dir(dir.join("blobs/sha256"))
        .map(|d| d.count())
        .unwrap_or(0)
}

#[test]
fn local_cache_export_then_import_after_prune() {
    require_daemon();
    let _l = lock();
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
    assert!(!s["user"], "a pruned daemon re-runs the user step: {s:?}");

    prune();
    let s = build(
        &["--import-cache", &format!("type=local,src={cache}")],
        "import from the local cache",
    );
    assert!(s["user"], "the imported cache makes user CACHED: {s:?}");

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
    let _l = lock();
    let image = format!("localhost:5000/torchkit-e2e/cache-inline:{}", unique());
    build(
        &["-t", &image, "--push", "--export-cache", "type=inline"],
        "push with inline cache",
    );
    prune();
    let s = build(
        &["--import-cache", &format!("type=registry,ref={image}")],
        "import the inline cache",
    );
    assert!(s["user"], "the inline cache makes user CACHED: {s:?}");
}

#[test]
fn registry_cache_export_then_import_after_prune() {
    require_daemon();
    let _l = lock();
    let cache_ref = format!("localhost:5000/torchkit-e2e/cache:{}", unique());
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
    assert!(s["user"], "the registry cache makes user CACHED: {s:?}");
}
