//! Cache profiles on the real daemon, read from its status stream (`--progress rawjson`),
//! never from timings: dev twice → fully cached; test → the dependency steps re-resolve, an
//! unchanged resolution keeps the installed layers, and the base's layers are not fetched
//! again (registry access log); a changed epoch re-runs the dependency steps and keeps apt;
//! release → every step re-runs. A second test publishes a new release on a local index
//! and shows the test profile installing it, and only then.
//!
//! tests/e2e_build.rs covers the same profiles on its own spec; this file adds the epoch,
//! the registry-log evidence and the new release. Fails, never skips, when the daemon is
//! missing.

use std::collections::BTreeMap;
use std::path::Path;
use std::process::{Command, Stdio};

mod support;
use support::{
    describe, docker_socket, host_gateway, require_daemon, serial, steps, unique, wait_for,
    TestCommand, Vertex,
};

const HOST_CA: &str = "/etc/ssl/certs/ca-certificates.crt";
const REGISTRY_LOG: &str = "/var/lib/torchkit-test-env/registry.log";

/// The vertices of the profiles spec, a dependency step's resolve and install apart.
const ALL_STEPS: &[&str] = &[
    "base",
    "apt",
    "pip:resolve",
    "pip",
    "requirements:resolve",
    "requirements",
    "user",
];

// Both tests assert what the daemon's cache does, and the first runs a release build
// (`ignore_cache` on every op, the shared base included). Run side by side, that build made
// the other test's cached install re-run in 2 of 4 runs; so each holds the cross-process
// cache lock exclusively ([`support::serial`]).

fn torchkit_build(dir: &Path, profile: &str, extra: &[&str]) -> BTreeMap<String, Vertex> {
    let addr = format!("docker://{}", docker_socket().display());
    let r = TestCommand::new()
        .args([
            "build",
            dir.to_str().unwrap(),
            "--addr",
            &addr,
            "--ca-bundle",
            HOST_CA,
        ])
        .args(["--profile", profile, "--progress", "rawjson"])
        .args(extra)
        .run();
    assert!(r.success(), "{profile} build failed:\n{}", r.describe());
    steps(&r.stderr)
}

fn build(dir: &Path, profile: &str) -> BTreeMap<String, Vertex> {
    let s = torchkit_build(dir, profile, &[]);
    for name in ALL_STEPS {
        assert!(
            s.contains_key(*name),
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
    let _cache = serial::exclusive();
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
    assert_cached(&s, &["pip:resolve", "requirements:resolve"], "dev again");
    assert!(
        s["base"].name.contains("@sha256:"),
        "the base is pinned: {}",
        s["base"].name
    );

    // test: the dependency steps resolve again; the packages are pinned, so the resolved
    // sets are the same and the installs stay cached, as do apt and user. The base's layers
    // are not downloaded again.
    let before = layer_gets();
    let s = build(&dir, "test");
    assert_ran(&s, &["pip:resolve", "requirements:resolve"], "test");
    assert!(
        s["pip:resolve"].name.contains("(re-run: test profile)"),
        "{}",
        s["pip:resolve"].name
    );
    assert_cached(&s, &["apt", "pip", "requirements", "user"], "test");
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
    let epoch = unique("run");
    let spec = std::fs::read_to_string(dir.join("torchkit.toml")).unwrap();
    std::fs::write(
        dir.join("torchkit.toml"),
        spec.replace("epoch = \"one\"", &format!("epoch = \"{epoch}\"")),
    )
    .unwrap();
    let s = build(&dir, "dev");
    assert_ran(
        &s,
        &["pip:resolve", "pip", "requirements:resolve", "requirements"],
        "new epoch",
    );
    assert_cached(&s, &["apt"], "new epoch");
    let s = build(&dir, "dev");
    // Every step above the base, as in "dev again" above.
    assert_eq!(ALL_STEPS[0], "base");
    assert_cached(&s, &ALL_STEPS[1..], "same epoch again");

    // release: every step re-runs.
    let s = build(&dir, "release");
    assert_ran(&s, ALL_STEPS, "release");
}

/// A package index on this host that RUN containers reach through the docker bridge:
/// `python3 -m http.server` over a directory the test writes wheels and PEP 503 pages to.
struct Index {
    dir: tempfile::TempDir,
    server: std::process::Child,
    url: String,
    host: String,
}

impl Index {
    fn start() -> Index {
        let host = host_gateway();
        assert!(!host.is_empty(), "no docker bridge gateway");
        let dir = tempfile::tempdir().unwrap();
        let port = std::net::TcpListener::bind((host.as_str(), 0))
            .unwrap()
            .local_addr()
            .unwrap()
            .port();
        let server = Command::new("python3")
            .args(["-m", "http.server", "--bind", &host, &port.to_string()])
            .arg("--directory")
            .arg(dir.path())
            .stdout(Stdio::null())
            .stderr(Stdio::null())
            .spawn()
            .expect("python3 -m http.server");
        wait_for(
            "the index server did not start",
            std::time::Duration::from_secs(20),
            || std::net::TcpStream::connect((host.as_str(), port)).ok(),
        );
        let url = format!("http://{host}:{port}/simple");
        Index {
            dir,
            server,
            url,
            host,
        }
    }

    /// Publish `name` at `version`: a pure-Python wheel whose module says its version, and
    /// the project page listing every wheel published so far, with sha256 fragments.
    fn publish(&self, name: &str, version: &str) {
        let script = r#"
import base64, hashlib, os, sys, zipfile
root, name, version = sys.argv[1:4]
files = os.path.join(root, "files")
os.makedirs(files, exist_ok=True)
wheel = "%s-%s-py3-none-any.whl" % (name, version)
info = "%s-%s.dist-info" % (name, version)
entries = {
    name + "/__init__.py": "VERSION = %r\n" % version,
    info + "/METADATA": "Metadata-Version: 2.1\nName: %s\nVersion: %s\n" % (name, version),
    info + "/WHEEL": "Wheel-Version: 1.0\nGenerator: torchkit-tests\nRoot-Is-Purelib: true\nTag: py3-none-any\n",
}
record = []
for path, text in entries.items():
    digest = base64.urlsafe_b64encode(hashlib.sha256(text.encode()).digest()).rstrip(b"=").decode()
    record.append("%s,sha256=%s,%d" % (path, digest, len(text.encode())))
record.append(info + "/RECORD,,")
entries[info + "/RECORD"] = "\n".join(record) + "\n"
with zipfile.ZipFile(os.path.join(files, wheel), "w") as z:
    for path, text in entries.items():
        z.writestr(zipfile.ZipInfo(path, (2020, 1, 1, 0, 0, 0)), text)
page = os.path.join(root, "simple", name)
os.makedirs(page, exist_ok=True)
links = []
for f in sorted(os.listdir(files)):
    if f.startswith(name + "-"):
        sha = hashlib.sha256(open(os.path.join(files, f), "rb").read()).hexdigest()
        links.append('<a href="../../files/%s#sha256=%s">%s</a><br>' % (f, sha, f))
with open(os.path.join(page, "index.html"), "w") as out:
    out.write("<!DOCTYPE html><html><body>\n" + "\n".join(links) + "\n</body></html>\n")
"#;
        let st = Command::new("python3")
            .args(["-c", script])
            .arg(self.dir.path())
            .args([name, version])
            .status()
            .expect("python3");
        assert!(st.success(), "publishing {name} {version} failed");
    }
}

impl Drop for Index {
    fn drop(&mut self) {
        let _ = self.server.kill();
        let _ = self.server.wait();
    }
}

/// The version of `module` in `image`, as Python imports it.
fn installed(image: &str, module: &str) -> String {
    let code = format!("import {module}; print({module}.VERSION)");
    support::docker(&["run", "--rm", image, "python", "-c", &code])
        .trim()
        .to_string()
}

#[test]
fn test_profile_installs_a_new_release_and_only_then() {
    require_daemon();
    let _cache = serial::exclusive();
    let index = Index::start();
    index.publish("tkdemo", "1.0");
    let tmp = tempfile::tempdir().unwrap();
    // A run-unique epoch: the daemon's build cache outlives test runs, and this index's
    // URL (its port) may repeat.
    let epoch = unique("release");
    std::fs::write(
        tmp.path().join("torchkit.toml"),
        format!(
            "[torch]\nversion = \"2.8.0\"\ncuda = \"12.8\"\n\
             [python]\npackages = [\"tkdemo\"]\nindex_url = \"{}\"\n\
             [image]\nuser = \"root\"\nenv = {{ PIP_TRUSTED_HOST = \"{}\" }}\n\
             [cache]\nepoch = \"{epoch}\"\n",
            index.url, index.host
        ),
    )
    .unwrap();
    let image = format!("torchkit-e2e-release:{}", std::process::id());
    let tag = ["-t", image.as_str()];

    let s = torchkit_build(tmp.path(), "dev", &tag);
    assert_ran(&s, &["pip:resolve", "pip"], "first build");
    assert_eq!(installed(&image, "tkdemo"), "1.0");

    // Nothing new on the index: the resolution runs and the install stays cached.
    let s = torchkit_build(tmp.path(), "test", &tag);
    assert_ran(&s, &["pip:resolve"], "test, nothing new");
    assert_cached(&s, &["pip", "user"], "test, nothing new");

    // 1.1 is published: the test profile resolves it and installs it.
    index.publish("tkdemo", "1.1");
    let s = torchkit_build(tmp.path(), "test", &tag);
    assert_ran(&s, &["pip:resolve", "pip", "user"], "test, new release");
    assert_eq!(installed(&image, "tkdemo"), "1.1");

    // And again with nothing newer: 1.1 stays, from the cache.
    let s = torchkit_build(tmp.path(), "test", &tag);
    assert_ran(&s, &["pip:resolve"], "test, 1.1 again");
    assert_cached(&s, &["pip", "user"], "test, 1.1 again");
    assert_eq!(installed(&image, "tkdemo"), "1.1");

    let _ = Command::new("docker").args(["rmi", "-f", &image]).output();
}
