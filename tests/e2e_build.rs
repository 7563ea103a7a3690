//! End-to-end tests of `torchkit build` (the real binary) against the real daemon of the
//! test environment: dockerd's embedded BuildKit on the Docker socket, the registry on
//! 127.0.0.1:5000 acting as the docker.io mirror, and the `pytorch/pytorch` stand-in.
//! They FAIL, never skip, when the daemon is missing: run `scripts/test-env.sh up` (as
//! root, with STANDIN=1) first.
//!
//! One image is built once ([`primed`]) with three outputs at the same time (docker and OCI
//! archives, and the image store) and shared by the tests that inspect it; the cache tests
//! read the daemon's own status stream (`--progress rawjson`), never timings.

use std::collections::BTreeMap;
use std::path::{Path, PathBuf};
use std::process::{Command, Stdio};
use std::sync::OnceLock;
use std::time::Duration;

mod support;
use support::{
    describe, docker, docker_socket, host_gateway, poll_until, registry_digest, require_daemon,
    serial, steps, tail, tar_list, Run, TestCommand, Vertex, START_HINT,
};

/// The image the shared build stores in dockerd.
const IMAGE: &str = "torchkit-e2e/full:dev";
/// The same spec stored by the cache tests, which must not move [`IMAGE`] under the tests
/// that inspect it.
const CHECK_IMAGE: &str = "torchkit-e2e/full:cache-check";
/// The registry of the test environment.
const REGISTRY: &str = "127.0.0.1:5000";
/// The stand-in base, as the registry (docker.io mirror) serves it.
const STANDIN_REPO: &str = "pytorch/pytorch";
const STANDIN_TAG: &str = "2.8.0-cuda12.8-cudnn9-runtime";
/// Appended (as a PEM comment) to the CA bundle the builds use: no file in any built image
/// may contain it.
const CA_MARKER: &str = "# torchkit-e2e-ca-marker: the CA bundle must never land in an image";
/// The host bundle with the CA of the HTTPS proxy in front of PyPI.
const HOST_CA: &str = "/etc/ssl/certs/ca-certificates.crt";

/// `torchkit ARGS`, whatever its exit code.
fn run(args: &[&str]) -> Run {
    TestCommand::new().args(args).run()
}

/// `--addr` of the test daemon.
fn addr() -> String {
    format!("docker://{}", docker_socket().display())
}

fn spec(name: &str) -> PathBuf {
    Path::new(env!("CARGO_MANIFEST_DIR"))
        .join("tests/e2e")
        .join(name)
}

/// The host CA bundle plus [`CA_MARKER`], written once per test process.
fn ca_bundle() -> &'static str {
    static CA: OnceLock<String> = OnceLock::new();
    CA.get_or_init(|| {
        let dir = std::env::temp_dir().join(format!("torchkit-e2e-{}", std::process::id()));
        std::fs::create_dir_all(&dir).unwrap();
        let mut pem = std::fs::read_to_string(HOST_CA)
            .unwrap_or_else(|e| panic!("cannot read {HOST_CA}: {e}"));
        pem.push_str(&format!("\n{CA_MARKER}\n"));
        let path = dir.join("ca-bundle.pem");
        std::fs::write(&path, pem).unwrap();
        path.display().to_string()
    })
}

/// One member of a tar archive.
fn tar_read(path: &Path, member: &str) -> Vec<u8> {
    let out = Command::new("tar")
        .arg("-xOf")
        .arg(path)
        .arg(member)
        .output()
        .unwrap();
    assert!(out.status.success(), "{member} in {}", path.display());
    out.stdout
}

/// The output directory has nothing but what the test put there: no output file, no
/// temporary export left behind.
fn assert_no_output(dir: &Path, run: &Run) {
    let left: Vec<String> = std::fs::read_dir(dir)
        .unwrap()
        .map(|e| e.unwrap().file_name().to_string_lossy().into_owned())
        .filter(|n| n.starts_with("out") || n.starts_with(".torchkit-") || n == "metadata.json")
        .collect();
    assert!(
        left.is_empty(),
        "a failed build left {left:?} in {}\n{}",
        dir.display(),
        tail(&run.stderr, 30)
    );
}

// ---------------------------------------------------------------------------------------
// The daemon's status stream

/// The base is pinned and was only resolved: no layer was pulled or extracted.
fn assert_base_reused(steps: &BTreeMap<String, Vertex>) {
    let base = &steps["base"];
    assert!(
        base.name.contains("@sha256:"),
        "unpinned base: {}",
        base.name
    );
    assert!(
        base.statuses.iter().all(|s| s.starts_with("resolve ")),
        "the base was pulled again:\n{}",
        describe(steps)
    );
}

// ---------------------------------------------------------------------------------------
// The shared build

// The builds whose cache status is asserted hold the cross-process cache lock exclusively
// ([`support::serial`]): BuildKit merges identical vertices of concurrent jobs, a vertex
// loaded with `ignore_cache` (the release profile) makes the same vertex of a concurrent job
// run again, and tests/e2e_cache.rs prunes the whole cache. Each such test makes the cache
// state it asserts on inside its own hold of the lock (a first build, cached when the shared
// build ran before), never relying on a build made before it took the lock. The shared
// build holds the lock shared: it asserts nothing about the cache but would disturb those
// that do.

struct Primed {
    dir: PathBuf,
    digest: String,
    metadata: serde_json::Value,
}

/// Builds `tests/e2e/full` once (apt + pip + requirements + context copy through the CA
/// secret) into a docker archive, an OCI archive and dockerd's image store.
fn primed() -> &'static Primed {
    static PRIMED: OnceLock<Result<Primed, String>> = OnceLock::new();
    let r = PRIMED.get_or_init(|| {
        require_daemon();
        let _cache = serial::shared();
        let dir = std::env::temp_dir().join(format!("torchkit-e2e-{}/primed", std::process::id()));
        std::fs::create_dir_all(&dir).unwrap();
        let docker_tar = dir.join("image-docker.tar");
        let oci_tar = dir.join("image-oci.tar");
        let meta = dir.join("meta.json");
        let docker_out = format!("type=docker,dest={}", docker_tar.display());
        let oci_out = format!("type=oci,dest={}", oci_tar.display());
        let (spec_dir, addr) = (spec("full"), addr());
        let mut args = vec![
            "build",
            spec_dir.to_str().unwrap(),
            "--addr",
            &addr,
            "--ca-bundle",
            ca_bundle(),
            "-t",
            IMAGE,
            "--metadata-file",
            meta.to_str().unwrap(),
            "--progress",
            "plain",
        ];
        // The classic store's BuildKit writes no archives (its refusal has its own test).
        if support::containerd_store() {
            args.extend(["-o", &docker_out, "-o", &oci_out]);
        }
        let r = run(&args);
        if !r.success() {
            return Err(format!("the shared build failed:\n{}", r.describe()));
        }
        let lines: Vec<&str> = r.stdout.lines().collect();
        if lines.len() != 1 || !lines[0].starts_with("sha256:") {
            return Err(format!("stdout is not one digest line: {:?}", r.stdout));
        }
        let metadata = serde_json::from_slice(&std::fs::read(&meta).unwrap()).unwrap();
        Ok(Primed {
            dir,
            digest: lines[0].to_string(),
            metadata,
        })
    });
    match r {
        Ok(p) => p,
        Err(e) => panic!("{e}"),
    }
}

#[test]
fn exports_docker_and_oci_archives_and_metadata() {
    let p = primed();
    assert_eq!(p.metadata["containerimage.digest"], p.digest.as_str());
    if !support::containerd_store() {
        // Classic store: an archive is refused before anything is built, naming the store
        // and the way around it, and nothing is written.
        for kind in ["oci", "docker"] {
            let dest = p.dir.join(format!("refused-{kind}.tar"));
            let r = run(&[
                "build",
                spec("full").to_str().unwrap(),
                "--addr",
                &addr(),
                "-o",
                &format!("type={kind},dest={}", dest.display()),
            ]);
            assert_eq!(r.code, Some(1), "{}", r.describe());
            assert!(
                r.stderr.contains(&format!(
                    "`--output type={kind}` needs Docker's containerd image store"
                )) && r
                    .stderr
                    .contains("hint: build with `-t NAME` and then `docker save"),
                "{}",
                tail(&r.stderr, 10)
            );
            assert!(
                !r.stderr.contains("[torchkit"),
                "nothing was built:\n{}",
                r.stderr
            );
            assert!(!dest.exists());
        }
        return;
    }
    assert!(
        p.metadata["containerimage.descriptor"]["mediaType"]
            .as_str()
            .is_some_and(|m| m.contains("manifest")),
        "{}",
        p.metadata
    );

    // docker archive: manifest.json with a config and layers that are in the archive.
    let docker_tar = p.dir.join("image-docker.tar");
    let entries = tar_list(&docker_tar);
    assert!(entries.iter().any(|e| e == "manifest.json"), "{entries:?}");
    let manifest: serde_json::Value =
        serde_json::from_slice(&tar_read(&docker_tar, "manifest.json")).unwrap();
    let m = &manifest[0];
    let config = m["Config"].as_str().expect("Config in manifest.json");
    assert!(
        entries.iter().any(|e| e == config),
        "{config} not in {entries:?}"
    );
    let layers = m["Layers"].as_array().expect("Layers");
    assert!(layers.len() >= 2, "base + built layers: {layers:?}");
    let image_config: serde_json::Value =
        serde_json::from_slice(&tar_read(&docker_tar, config)).unwrap();
    assert_eq!(image_config["config"]["User"], "app", "{image_config}");

    // OCI layout: oci-layout, index.json → a manifest blob that is in the archive.
    let oci_tar = p.dir.join("image-oci.tar");
    let entries = tar_list(&oci_tar);
    assert!(entries.iter().any(|e| e == "oci-layout"), "{entries:?}");
    let index: serde_json::Value =
        serde_json::from_slice(&tar_read(&oci_tar, "index.json")).unwrap();
    let desc = &index["manifests"][0];
    let digest = desc["digest"].as_str().expect("a manifest in index.json");
    let blob = format!("blobs/{}", digest.replace(':', "/"));
    assert!(entries.contains(&blob), "{blob} not in {entries:?}");
    let manifest: serde_json::Value = serde_json::from_slice(&tar_read(&oci_tar, &blob)).unwrap();
    assert!(
        manifest["layers"].as_array().is_some_and(|l| l.len() >= 2),
        "{manifest}"
    );
}

#[test]
fn built_image_runs_with_the_spec_environment_and_no_build_secrets() {
    let p = primed();
    // Labels, user, workdir and env as configured.
    let inspect: serde_json::Value =
        serde_json::from_str(&docker(&["image", "inspect", IMAGE])).unwrap();
    let cfg = &inspect[0]["Config"];
    let labels = &cfg["Labels"];
    assert_eq!(labels["torchkit.torch"], "2.8.0", "{labels}");
    assert_eq!(labels["torchkit.cuda"], "12.8", "{labels}");
    assert_eq!(labels["org.opencontainers.image.title"], "torchkit e2e");
    let registry = registry_digest(REGISTRY, STANDIN_REPO, STANDIN_TAG)
        .unwrap_or_else(|| panic!("the stand-in is not in the registry\n{START_HINT}"));
    assert_eq!(
        labels["torchkit.base.digest"],
        registry.as_str(),
        "{labels}"
    );
    assert_eq!(cfg["User"], "app");
    assert_eq!(cfg["WorkingDir"], "/workspace");
    // The image in the store is the one the build reported.
    let id = inspect[0]["Id"].as_str().unwrap_or_default();
    let repo_digests = inspect[0]["RepoDigests"].to_string();
    assert!(
        id == p.digest || repo_digests.contains(&p.digest),
        "store has {id} / {repo_digests}, build printed {}",
        p.digest
    );

    // As the image's own user.
    let out = docker(&[
        "run",
        "--rm",
        "--entrypoint",
        "/bin/sh",
        IMAGE,
        "-c",
        "echo uid=$(id -u); echo user=$(id -un); echo pwd=$(pwd); \
         echo nvidia=$NVIDIA_VISIBLE_DEVICES; echo e2e=$TORCHKIT_E2E; \
         python -c 'import importlib.metadata as m; print(\"packaging=\" + m.version(\"packaging\")); print(\"six=\" + m.version(\"six\"))'; \
         echo jq=$(jq --version); \
         test -f app/main.py && echo copied=yes; \
         if test -e app/ignored.log; then echo ignored=present; else echo ignored=absent; fi; \
         python app/main.py",
    ]);
    for want in [
        "uid=1000",
        "user=app",
        "pwd=/workspace",
        "nvidia=all",
        "e2e=full",
        "packaging=24.1",
        "six=1.16.0",
        "jq=jq-1.6",
        "copied=yes",
        "ignored=absent",
        "packaging 24.1 six 1.16.0",
    ] {
        assert!(out.lines().any(|l| l == want), "no `{want}` in:\n{out}");
    }

    // As root: no pip cache, no mounted secret, and no file anywhere holds the CA bundle.
    let out = docker(&[
        "run",
        "--rm",
        "--user",
        "0",
        "-e",
        &format!("MARKER={CA_MARKER}"),
        "--entrypoint",
        "/bin/sh",
        IMAGE,
        "-c",
        "if [ -d /root/.cache/pip ] && [ -n \"$(ls -A /root/.cache/pip)\" ]; then echo pipcache=present; else echo pipcache=absent; fi; \
         if [ -e /run/secrets/torchkit-ca ]; then echo secret=present; else echo secret=absent; fi; \
         echo \"apt-cache=[$(ls /var/cache/apt/*.bin /var/cache/apt/archives/*.deb /var/lib/apt/lists/*_Packages* 2>/dev/null | head -3)]\"; \
         hits=$(grep -rlsF \"$MARKER\" / --exclude-dir=proc --exclude-dir=sys --exclude-dir=dev | head -5); \
         echo \"ca-files=[$hits]\"",
    ]);
    for want in [
        "pipcache=absent",
        "secret=absent",
        "ca-files=[]",
        "apt-cache=[]",
    ] {
        assert!(out.lines().any(|l| l == want), "no `{want}` in:\n{out}");
    }
}

/// `torchkit build tests/e2e/full --progress rawjson EXTRA`.
fn build_full_rawjson(extra: &[&str]) -> TestCommand {
    let mut c = TestCommand::new();
    c.args(["build", spec("full").to_str().unwrap(), "--addr", &addr()])
        .args(["--ca-bundle", ca_bundle(), "--progress", "rawjson"])
        .args(extra);
    c
}

/// Only the files the spec reads cross the wire (issue: every build sent the whole
/// context): 32 MB of data next to the project that no step uses are not sent, measured
/// from the daemon's own status of the context transfer, as the Dockerfile frontend sends
/// only its COPY sources.
#[test]
fn a_context_sends_only_what_the_spec_uses() {
    require_daemon();
    let _cache = serial::shared();
    let dir = std::env::temp_dir().join(format!("torchkit-e2e-{}/unused-data", std::process::id()));
    support::copy_dir(&spec("full"), &dir);
    std::fs::create_dir_all(dir.join("data")).unwrap();
    std::fs::write(dir.join("data/checkpoint.bin"), vec![7u8; 32 << 20]).unwrap();
    let r = TestCommand::new()
        .args(["build", dir.to_str().unwrap(), "--addr", &addr()])
        .args(["--ca-bundle", ca_bundle(), "--progress", "rawjson"])
        .assert_ok();
    let sent = support::transferred(&r.stderr, "[torchkit] context");
    assert!(
        sent > 0,
        "no context transfer reported:\n{}",
        tail(&r.stderr, 20)
    );
    assert!(sent < 64 << 10, "{sent} bytes of the context were sent");
    // The copy still has what it copies.
    let plan = TestCommand::new()
        .args(["plan", dir.to_str().unwrap()])
        .assert_ok();
    assert!(
        plan.stdout.contains("only requirements.txt app"),
        "{}",
        plan.stdout
    );
}

/// A secret the spec mounts (`[python] secrets`, a private index's netrc) is there while
/// the pip steps run and nowhere in the image: not at its mount point, not in any file.
#[test]
fn a_spec_secret_reaches_the_pip_steps_and_no_layer() {
    require_daemon();
    let _cache = serial::shared();
    let dir = tempfile::tempdir().unwrap();
    let marker = format!("torchkit-e2e-netrc-marker-{}", std::process::id());
    let netrc = dir.path().join("netrc");
    std::fs::write(
        &netrc,
        format!("machine example.invalid login {marker} password x\n"),
    )
    .unwrap();
    let spec_dir = dir.path().join("spec");
    std::fs::create_dir_all(&spec_dir).unwrap();
    // (That the pip steps mount it is in the LLB, tests/cli_spec.rs; here: it never lands.)
    std::fs::write(
        spec_dir.join("torchkit.toml"),
        "[torch]\nversion = \"2.8.0\"\ncuda = \"12.8\"\n[python]\npackages = [\"six==1.16.0\"]\nsecrets = [{ id = \"netrc\", dest = \"/root/.netrc\" }]\n[verify]\nenabled = false\n",
    )
    .unwrap();
    let tar = dir.path().join("image.tar");
    let r = TestCommand::new()
        .args(["build", spec_dir.to_str().unwrap(), "--addr", &addr()])
        .args(["--ca-bundle", ca_bundle(), "--progress", "plain"])
        .args(["--secret", &format!("id=netrc,src={}", netrc.display())])
        .args(["-o", &format!("type=tar,dest={}", tar.display())])
        .assert_ok();
    assert!(
        r.stderr.contains("pip install six==1.16.0"),
        "{}",
        tail(&r.stderr, 20)
    );
    let files = tar_list(&tar);
    assert!(!files.iter().any(|f| f == "root/.netrc"), "{files:?}");
    let out = Command::new("tar").arg("-xOf").arg(&tar).output().unwrap();
    assert!(out.status.success());
    assert!(
        !String::from_utf8_lossy(&out.stdout).contains(&marker),
        "the secret's content is in the image"
    );
}

#[test]
fn an_identical_build_is_fully_cached() {
    require_daemon();
    let _cache = serial::exclusive();
    let first = build_full_rawjson(&["-t", CHECK_IMAGE]).assert_ok();
    let r = build_full_rawjson(&["-t", CHECK_IMAGE]).assert_ok();
    assert!(first.stdout.starts_with("sha256:"), "{}", first.stdout);
    assert_eq!(r.stdout, first.stdout, "same inputs, same image");
    let steps = steps(&r.stderr);
    for s in ["base", "apt", "pip", "requirements", "user", "copy"] {
        assert!(steps.contains_key(s), "no {s} step:\n{}", describe(&steps));
    }
    for (name, v) in steps.iter().filter(|(n, _)| *n != "base") {
        assert!(v.cached, "{name} ran again:\n{}", describe(&steps));
    }
    assert_base_reused(&steps);
}

#[test]
fn test_profile_reresolves_exactly_the_dependency_steps() {
    require_daemon();
    let _cache = serial::exclusive();
    // The dev build the test profile is compared with.
    build_full_rawjson(&[]).assert_ok();
    let r = build_full_rawjson(&["--profile", "test"]).assert_ok();
    assert!(r.stdout.is_empty(), "no output, no digest: {:?}", r.stdout);
    assert!(
        r.stderr.contains("No output specified"),
        "{}",
        tail(&r.stderr, 5)
    );
    let steps = steps(&r.stderr);
    for s in ["pip:resolve", "requirements:resolve"] {
        let v = &steps[s];
        assert!(
            !v.cached && v.completed && v.error.is_empty(),
            "{s} should have run:\n{}",
            describe(&steps)
        );
    }
    // Nothing new on the index since the dev build: the same resolved sets, so the
    // installs (and what is built on them) come from the cache.
    for s in ["apt", "pip", "requirements", "user", "copy"] {
        assert!(
            steps[s].cached,
            "{s} should stay cached:\n{}",
            describe(&steps)
        );
    }
    assert_base_reused(&steps);
}

#[test]
fn release_profile_reruns_every_step_on_the_pinned_base() {
    require_daemon();
    let _cache = serial::exclusive();
    let r = build_full_rawjson(&["--profile", "release"]).assert_ok();
    let steps = steps(&r.stderr);
    for s in ["base", "apt", "pip", "requirements", "user", "copy"] {
        let v = steps
            .get(s)
            .unwrap_or_else(|| panic!("no {s} step:\n{}", describe(&steps)));
        assert!(!v.cached, "{s} came from the cache:\n{}", describe(&steps));
        assert!(v.completed, "{s} did not finish:\n{}", describe(&steps));
    }
    let base = &steps["base"].name;
    let registry = registry_digest(REGISTRY, STANDIN_REPO, STANDIN_TAG).expect("stand-in");
    assert!(
        base.contains(&format!("@{registry} ")) || base.ends_with(&format!("@{registry}")),
        "{base} is not pinned to {registry}"
    );
}

#[test]
fn push_lands_in_the_registry() {
    require_daemon();
    let _cache = serial::exclusive();
    // The image as stored, then the same build pushed: a cached build pushes that image.
    let stored = build_full_rawjson(&["-t", CHECK_IMAGE]).stdout();
    let tag = format!("run{}", std::process::id());
    let by_output = format!("localhost:5000/torchkit-e2e/pushed:{tag}");
    let by_tag = format!("localhost:5000/torchkit-e2e/tagged:{tag}");
    let r = TestCommand::new()
        .args([
            "build",
            spec("full").to_str().unwrap(),
            "--addr",
            &addr(),
            "--ca-bundle",
            ca_bundle(),
            "-o",
            &format!("type=image,name={by_output},push=true"),
            "-t",
            &by_tag,
            "--push",
            "--progress",
            "plain",
        ])
        .assert_ok();
    let digest = r.stdout.trim();
    if support::containerd_store() {
        assert_eq!(
            digest,
            stored.trim(),
            "a cached build pushes the same image"
        );
    } else {
        // The classic store prints the image ID (the config's digest) for `-t`, and the
        // pushed manifest's digest for `--push`: that manifest names the stored config.
        let manifest = support::http_get(
            REGISTRY,
            &format!("/v2/torchkit-e2e/pushed/manifests/{tag}"),
            support::MANIFEST_TYPES,
        );
        assert!(
            manifest.contains(stored.trim()),
            "a cached build pushes the same image {stored}:\n{manifest}"
        );
    }
    for repo in ["torchkit-e2e/pushed", "torchkit-e2e/tagged"] {
        assert_eq!(
            registry_digest(REGISTRY, repo, &tag).as_deref(),
            Some(digest),
            "{repo}:{tag} not in the registry"
        );
    }
}

// ---------------------------------------------------------------------------------------
// Failures: a clear message, a non-zero exit, no output file.

fn out_args(dir: &Path) -> Vec<String> {
    // An archive every store writes: OCI, or a file tree tar on the classic store.
    let kind = if support::containerd_store() {
        "oci"
    } else {
        "tar"
    };
    vec![
        "-o".into(),
        format!("type={kind},dest={}", dir.join("out.tar").display()),
        "--metadata-file".into(),
        dir.join("metadata.json").display().to_string(),
        "--progress".into(),
        "plain".into(),
    ]
}

fn run_build(spec_dir: &Path, extra: &[String]) -> Run {
    TestCommand::new()
        .arg("build")
        .arg(spec_dir)
        .args(extra)
        .run()
}

#[test]
fn unreachable_daemon_fails_with_the_fix() {
    let dir = tempfile::tempdir().unwrap();
    let mut extra = vec!["--addr".to_string(), "unix:///nonexistent.sock".into()];
    extra.extend(out_args(dir.path()));
    let r = run_build(&spec("full"), &extra);
    assert_eq!(r.code, Some(1), "{}", r.stderr);
    assert!(
        r.stderr
            .contains("error: no BuildKit daemon is listening at unix:///nonexistent.sock"),
        "{}",
        r.stderr
    );
    assert!(
        r.stderr
            .contains("hint: start one with `scripts/test-env.sh up`"),
        "{}",
        r.stderr
    );
    assert!(r.stdout.is_empty());
    assert_no_output(dir.path(), &r);
}

#[test]
fn wrong_tls_ca_fails_the_handshake_and_the_right_one_builds() {
    require_daemon();
    let dir = tempfile::tempdir().unwrap();
    let (ca, cert, key) = support::make_certs(dir.path());
    let other = dir.path().join("other");
    std::fs::create_dir(&other).unwrap();
    let (wrong_ca, _, _) = support::make_certs(&other);
    let rt = tokio::runtime::Runtime::new().unwrap();
    let port = rt.block_on(support::tls_proxy(&cert, &key, docker_socket()));
    let tcp = format!("tcp://127.0.0.1:{port}");

    let mut extra = vec![
        "--addr".to_string(),
        tcp.clone(),
        "--tlscacert".into(),
        wrong_ca.display().to_string(),
        "--tlsservername".into(),
        "tk.test".into(),
    ];
    extra.extend(out_args(dir.path()));
    let r = run_build(&spec("full"), &extra);
    assert_eq!(r.code, Some(1), "{}", r.stderr);
    assert!(r.stderr.contains("TLS handshake"), "{}", r.stderr);
    assert!(
        r.stderr.contains("hint: check that --tlscacert"),
        "{}",
        r.stderr
    );
    assert_no_output(dir.path(), &r);

    // The right CA: the same build goes through the TLS front (the base is only resolved,
    // so this is quick whatever the cache holds).
    let r = TestCommand::new()
        .args([
            "build",
            spec("full").to_str().unwrap(),
            "--addr",
            &tcp,
            "--tlscacert",
            ca.to_str().unwrap(),
            "--tlsservername",
            "tk.test",
            "--target",
            "base",
            "--progress",
            "plain",
        ])
        .assert_ok();
    // Only the base: `] base: ` (the vertex may carry the title of a concurrent build of
    // the same base, so no step count), and no step after it.
    assert!(r.stderr.contains("] base: "), "{}", tail(&r.stderr, 20));
    assert!(!r.stderr.contains("] apt: "), "{}", tail(&r.stderr, 20));
}

#[test]
fn missing_secret_file_fails_before_building() {
    require_daemon();
    let dir = tempfile::tempdir().unwrap();
    let missing = dir.path().join("no-such-token");
    let mut extra = vec![
        "--addr".to_string(),
        addr(),
        "--secret".into(),
        format!("id=token,src={}", missing.display()),
    ];
    extra.extend(out_args(dir.path()));
    let r = run_build(&spec("full"), &extra);
    assert_eq!(r.code, Some(1), "{}", r.stderr);
    assert!(
        r.stderr.contains(&format!(
            "error: secret `token`: cannot read {}",
            missing.display()
        )),
        "{}",
        r.stderr
    );
    assert!(r
        .stderr
        .contains("hint: check the path in --secret id=token,src=<file>"));
    assert_no_output(dir.path(), &r);

    let mut extra = vec![
        "--addr".to_string(),
        addr(),
        "--ca-bundle".into(),
        missing.display().to_string(),
    ];
    extra.extend(out_args(dir.path()));
    let r = run_build(&spec("full"), &extra);
    assert_eq!(r.code, Some(1), "{}", r.stderr);
    assert!(r.stderr.contains("error: --ca-bundle"), "{}", r.stderr);
    assert_no_output(dir.path(), &r);
}

#[test]
fn failing_step_is_named_and_writes_nothing() {
    require_daemon();
    let dir = tempfile::tempdir().unwrap();
    let mut extra = vec![
        "--addr".to_string(),
        addr(),
        "--ca-bundle".into(),
        ca_bundle().into(),
    ];
    extra.extend(out_args(dir.path()));
    let r = run_build(&spec("badpip"), &extra);
    assert_eq!(r.code, Some(1), "{}", r.stderr);
    let error = r
        .stderr
        .lines()
        .find(|l| l.starts_with("error: "))
        .unwrap_or_else(|| panic!("no error line:\n{}", tail(&r.stderr, 30)));
    assert!(
        error.contains(
            "build failed at `[torchkit 2/3] pip: resolve torchkit-e2e-no-such-package==0.0.1`"
        ) && (error.contains("did not complete successfully: exit code: 1")
            // BuildKit 0.8 (Docker 20.10) words it differently.
            || error.contains("executor failed running") && error.contains("exit code: 1")),
        "{error}"
    );
    assert!(
        r.stderr
            .contains("No matching distribution found for torchkit-e2e-no-such-package"),
        "pip's own message is in the progress log:\n{}",
        tail(&r.stderr, 30)
    );
    assert!(r.stdout.is_empty());
    assert_no_output(dir.path(), &r);
}

/// A `DOCKER_HOST` torchkit cannot use is an error naming it, before any connection, never
/// a silent fall back to `/var/run/docker.sock`.
#[test]
fn unusable_docker_host_is_named_not_ignored() {
    for (value, says) in [
        ("bogus", "not a Docker host address"),
        (
            "tcp://127.0.0.1:1",
            "torchkit reaches dockerd's BuildKit only through a local socket",
        ),
    ] {
        let dir = tempfile::tempdir().unwrap();
        let r = TestCommand::new()
            .env("DOCKER_HOST", value)
            .arg("build")
            .arg(spec("full"))
            .args(out_args(dir.path()))
            .run();
        assert_eq!(r.code, Some(1), "{}", r.describe());
        assert!(
            r.stderr
                .contains(&format!("error: cannot use DOCKER_HOST=`{value}`: {says}")),
            "{}",
            r.describe()
        );
        assert!(
            r.stderr
                .contains("hint: set DOCKER_HOST to a local Docker socket"),
            "{}",
            r.describe()
        );
        assert!(
            !r.stderr.contains("daemon is listening at")
                && !r.stderr.contains("lost the connection"),
            "fell back to another daemon: {}",
            r.describe()
        );
        assert_no_output(dir.path(), &r);
    }
}

/// Without `DOCKER_HOST`, the Docker CLI's current context (`currentContext` in
/// `$DOCKER_CONFIG/config.json`) picks the daemon, as `docker` does; one torchkit cannot use
/// is an error naming it.
#[test]
fn docker_context_picks_the_daemon() {
    use sha2::Digest as _;
    for (host, says) in [
        (
            "unix:///nonexistent-context.sock",
            "error: no BuildKit daemon is listening at docker:///nonexistent-context.sock"
                .to_string(),
        ),
        (
            "tcp://127.0.0.1:1",
            "error: cannot use Docker context `ctx` Host=`tcp://127.0.0.1:1`".to_string(),
        ),
    ] {
        let dir = tempfile::tempdir().unwrap();
        let config = dir.path().join("docker-config");
        let meta = config
            .join("contexts/meta")
            .join(hex::encode(sha2::Sha256::digest(b"ctx")));
        std::fs::create_dir_all(&meta).unwrap();
        std::fs::write(
            config.join("config.json"),
            r#"{"auths":{},"currentContext":"ctx"}"#,
        )
        .unwrap();
        std::fs::write(
            meta.join("meta.json"),
            format!(r#"{{"Name":"ctx","Metadata":{{}},"Endpoints":{{"docker":{{"Host":"{host}","SkipTLSVerify":false}}}}}}"#),
        )
        .unwrap();
        let mut c = TestCommand::new();
        c.env("DOCKER_CONFIG", &config)
            .arg("build")
            .arg(spec("full"))
            .args(out_args(dir.path()));
        c.cmd()
            .env_remove("DOCKER_HOST")
            .env_remove("DOCKER_CONTEXT");
        let r = c.run();
        assert_eq!(r.code, Some(1), "{}", r.describe());
        assert!(r.stderr.contains(&says), "{}", r.describe());
        assert_no_output(dir.path(), &r);
    }
}

/// An address that answers but is not BuildKit: what answered, and the scheme to use.
#[test]
fn an_address_that_is_not_buildkit_says_what_answered() {
    require_daemon();
    let docker_api = format!("unix://{}", docker_socket().display());
    let registry = format!("tcp://{REGISTRY}");
    for (addr, says, fix) in [
        (
            docker_api.as_str(),
            "), not gRPC: this is Docker's API\n",
            format!(
                "hint: use `docker://{}` to reach the BuildKit inside dockerd",
                docker_socket().display()
            ),
        ),
        (
            registry.as_str(),
            "), not gRPC\n",
            "hint: this is not a BuildKit daemon: give the `unix:///path` or `tcp://host:port` of a buildkitd".to_string(),
        ),
    ] {
        let dir = tempfile::tempdir().unwrap();
        let mut extra = vec!["--addr".to_string(), addr.to_string()];
        extra.extend(out_args(dir.path()));
        let r = run_build(&spec("full"), &extra);
        assert_eq!(r.code, Some(1), "{}", r.describe());
        assert!(
            r.stderr.contains(&format!("error: {addr} answered HTTP/1.1 (`HTTP/1.1 ")),
            "{}",
            r.describe()
        );
        assert!(r.stderr.contains(says), "{}", r.describe());
        assert!(r.stderr.contains(&fix), "{}", r.describe());
        assert!(!r.stderr.contains("lost the connection"), "{}", r.describe());
        assert_no_output(dir.path(), &r);
    }
}

/// A package index that accepts connections and never answers: when pip connects, the pip
/// RUN step is running; when every connection is closed again, that step has stopped.
struct HangingIndex {
    port: u16,
    hits: std::sync::mpsc::Receiver<()>,
    open: std::sync::Arc<std::sync::atomic::AtomicUsize>,
}

impl HangingIndex {
    fn start() -> HangingIndex {
        use std::sync::atomic::Ordering;
        let listener = std::net::TcpListener::bind("0.0.0.0:0").unwrap();
        let port = listener.local_addr().unwrap().port();
        let (hit_tx, hits) = std::sync::mpsc::channel();
        let open = std::sync::Arc::new(std::sync::atomic::AtomicUsize::new(0));
        let counter = open.clone();
        std::thread::spawn(move || {
            for conn in listener.incoming() {
                let Ok(mut conn) = conn else { break };
                counter.fetch_add(1, Ordering::SeqCst);
                let _ = hit_tx.send(());
                let counter = counter.clone();
                // Read (and drop) what pip sends until its end of the connection closes.
                std::thread::spawn(move || {
                    let _ = std::io::copy(&mut conn, &mut std::io::sink());
                    counter.fetch_sub(1, Ordering::SeqCst);
                });
            }
        });
        HangingIndex { port, hits, open }
    }

    /// A copy of the `hang` spec whose pip step downloads from this index.
    fn spec(&self, dir: &Path) -> PathBuf {
        let spec_dir = dir.join("spec");
        std::fs::create_dir(&spec_dir).unwrap();
        let template = std::fs::read_to_string(spec("hang").join("torchkit.toml.in")).unwrap();
        std::fs::write(
            spec_dir.join("torchkit.toml"),
            template.replace(
                "@INDEX_URL@",
                &format!("https://{}:{}/simple", host_gateway(), self.port),
            ),
        )
        .unwrap();
        spec_dir
    }

    /// Waits for pip's first connection: the pip step is running.
    fn wait_for_pip(&self, limit: Duration) -> bool {
        self.hits.recv_timeout(limit).is_ok()
    }

    /// Connections pip holds open.
    fn open(&self) -> usize {
        self.open.load(std::sync::atomic::Ordering::SeqCst)
    }
}

/// `torchkit build SPEC_DIR ARGS` as a child of the test, stdout piped, stderr to `stderr`.
fn spawn_build(spec_dir: &Path, args: &[String], stderr: &Path) -> std::process::Child {
    let mut c = TestCommand::new();
    c.arg("build").arg(spec_dir).args(args);
    c.cmd()
        .stdout(Stdio::piped())
        .stderr(std::fs::File::create(stderr).unwrap());
    c.spawn()
}

/// Waits up to `limit` for `child` to exit on its own; its run, or `None` (the child killed)
/// when it does not.
fn wait_exit(mut child: std::process::Child, stderr: &Path, limit: Duration) -> Option<Run> {
    let Some(status) = poll_until(limit, || child.try_wait().unwrap()) else {
        let _ = child.kill();
        let _ = child.wait();
        return None;
    };
    let mut stdout = Vec::new();
    std::io::Read::read_to_end(&mut child.stdout.take().unwrap(), &mut stdout).unwrap();
    let raw = std::process::Output {
        status,
        stdout,
        stderr: std::fs::read(stderr).unwrap_or_default(),
    };
    Some(Run::from(raw))
}

/// Starts `torchkit build --addr ADDR` on `index`'s spec in `dir`, the pip step forced to
/// run, and waits until pip reaches the index: the build is then mid-step. Returns the
/// child and the file its stderr goes to.
fn build_until_pip(
    dir: &Path,
    index: &HangingIndex,
    addr: String,
) -> (std::process::Child, PathBuf) {
    let spec_dir = index.spec(dir);
    let stderr_path = dir.join("stderr");
    let mut args = vec![
        "--addr".into(),
        addr,
        "--no-cache-filter".into(),
        "pip".into(),
    ];
    args.extend(out_args(dir));
    let mut child = spawn_build(&spec_dir, &args, &stderr_path);
    // Until pip connects, or the build ends without getting there.
    let deadline = std::time::Instant::now() + Duration::from_secs(240);
    let mut reached = false;
    while !reached && std::time::Instant::now() < deadline {
        reached = index.wait_for_pip(Duration::from_secs(1));
        if !reached && child.try_wait().ok().flatten().is_some() {
            break;
        }
    }
    if !reached {
        let _ = child.kill();
        let stderr = std::fs::read_to_string(&stderr_path).unwrap_or_default();
        panic!(
            "the pip step never reached the test index:\n{}",
            tail(&stderr, 40)
        );
    }
    (child, stderr_path)
}

#[test]
fn daemon_dying_mid_build_fails_and_writes_nothing() {
    require_daemon();
    let dir = tempfile::tempdir().unwrap();
    let index = HangingIndex::start();
    let proxy = support::UnixProxy::start(&dir.path().join("proxy.sock"), docker_socket());
    let addr = format!("docker://{}", proxy.path().display());
    let (child, stderr_path) = build_until_pip(dir.path(), &index, addr);
    let stderr_now = || std::fs::read_to_string(&stderr_path).unwrap_or_default();
    proxy.kill();

    // The client must notice and give up on its own.
    let r = wait_exit(child, &stderr_path, Duration::from_secs(120)).unwrap_or_else(|| {
        panic!(
            "torchkit still runs after the daemon went away:\n{}",
            tail(&stderr_now(), 40)
        )
    });
    assert_eq!(r.code, Some(1), "{}", r.describe());
    assert!(
        r.stderr
            .contains("error: lost the connection to the BuildKit daemon at docker://"),
        "{}",
        tail(&r.stderr, 30)
    );
    assert!(
        r.stderr.contains("hint: check that the daemon"),
        "{}",
        tail(&r.stderr, 10)
    );
    assert!(r.stdout.is_empty());
    assert_no_output(dir.path(), &r);
}

/// Ctrl-C while a step runs: the signal goes to the `torchkit build` child alone, once the
/// daemon runs the pip step (it connected to the test's index). The build stops with exit
/// code 130 and says so, writes nothing, and the daemon stops the step (pip's connection
/// closes).
#[test]
fn ctrl_c_cancels_the_build_and_writes_nothing() {
    cancel_by_signal("INT", 130, "error: build cancelled (Ctrl-C)");
}

/// SIGTERM (`kill`, a CI timeout) is handled as Ctrl-C is: the daemon stops the step, the
/// export temporaries are removed, and the exit code is 143 as for a process SIGTERM killed.
#[test]
fn sigterm_cancels_the_build_and_writes_nothing() {
    cancel_by_signal("TERM", 143, "error: build cancelled (SIGTERM received)");
}

/// Sends `kill -SIGNAL` to a build held in its pip step and checks that it ends with `code`
/// and `message`, writes nothing and that the daemon stops the step.
fn cancel_by_signal(signal: &str, code: i32, message: &str) {
    require_daemon();
    let dir = tempfile::tempdir().unwrap();
    let index = HangingIndex::start();
    let (child, stderr_path) = build_until_pip(dir.path(), &index, addr());
    let stderr_now = || std::fs::read_to_string(&stderr_path).unwrap_or_default();
    let st = Command::new("kill")
        .args([&format!("-{signal}"), &child.id().to_string()])
        .status()
        .expect("kill");
    assert!(st.success(), "kill -{signal} {}", child.id());

    let r = wait_exit(child, &stderr_path, Duration::from_secs(30)).unwrap_or_else(|| {
        panic!(
            "torchkit still runs 30 s after SIG{signal}:\n{}",
            tail(&stderr_now(), 40)
        )
    });
    assert_eq!(r.code, Some(code), "{}", r.describe());
    assert!(r.stderr.contains(message), "{}", r.describe());
    assert!(
        r.stderr
            .contains("hint: the daemon was told to stop the build"),
        "{}",
        r.describe()
    );
    assert!(r.stdout.is_empty(), "{}", r.describe());
    assert_no_output(dir.path(), &r);
    // The daemon stopped the step: pip's connections to the index are gone.
    let stopped = poll_until(Duration::from_secs(60), || {
        (index.open() == 0).then_some(())
    });
    assert!(
        stopped.is_some(),
        "pip still holds {} connection(s) to the index 60 s after the cancelled build ended",
        index.open()
    );
}

/// `SOURCE_DATE_EPOCH` sets the image's `created` on every engine; a BuildKit older than
/// v0.11 (Docker 20.10) cannot rewrite layer timestamps, and the build says so instead of
/// promising a reproducible digest.
#[test]
fn source_date_epoch_sets_created_and_an_old_buildkit_says_what_it_cannot_do() {
    require_daemon();
    let tag = format!("torchkit-e2e/sde:{}", std::process::id());
    let r = TestCommand::new()
        .args([
            "build",
            spec("cache").to_str().unwrap(),
            "--addr",
            &addr(),
            "-t",
            &tag,
            "--progress",
            "plain",
        ])
        .env("SOURCE_DATE_EPOCH", "1700000000")
        .assert_ok();
    let created = docker(&["image", "inspect", "-f", "{{.Created}}", &tag]);
    assert!(created.starts_with("2023-11-14T22:13:20"), "{created}");
    let warned = r.stderr.contains("this BuildKit (older than v0.11");
    let old = support::docker_server_version().starts_with("20.");
    assert_eq!(warned, old, "{}", tail(&r.stderr, 20));
    let _ = docker(&["image", "rm", &tag]);
}

/// `--load` without `--tag`, as buildx's on its docker driver: an untagged image in Docker's
/// images, its ID printed, on either image store.
#[test]
fn load_without_a_tag_stores_an_untagged_image() {
    require_daemon();
    let r = TestCommand::new()
        .args([
            "build",
            spec("cache").to_str().unwrap(),
            "--addr",
            &addr(),
            "--load",
            "--progress",
            "plain",
        ])
        .assert_ok();
    let id = r.stdout.trim();
    assert!(id.starts_with("sha256:"), "{}", r.stdout);
    let env = docker(&["image", "inspect", "-f", "{{json .Config.Env}}", id]);
    assert!(env.contains("TORCHKIT_E2E=cache"), "{env}");
}
