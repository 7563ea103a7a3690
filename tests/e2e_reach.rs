//! End-to-end tests of the ways to reach a BuildKit daemon beyond a socket: buildctl's
//! connection helpers (`docker-container://`, `podman-container://`,
//! `nerdctl-container://`, `kube-pod://`, `ssh://`) and buildx's builders (`--builder`,
//! `BUILDX_BUILDER`, `docker buildx use`), against the real daemon of the test
//! environment. They FAIL, never skip, when the daemon is missing.
//!
//! The test daemon is dockerd, whose BuildKit has no `buildctl dial-stdio` of its own.
//! So a real container plays the BuildKit container: the stand-in image, with the test
//! daemon's socket and this `torchkit` binary mounted, and a `buildctl` whose `dial-stdio`
//! runs `torchkit dial-stdio --addr docker://…` (the same bridge). `docker-container://`
//! reaches it with the real `docker exec`; `kubectl`, `ssh`, `podman` and `nerdctl` are
//! scripts on PATH that record their arguments and `docker exec` into the same container,
//! as the real tools would reach a pod, a host or a container. Each build copies a file with
//! content new to this run from the context, so the session (the context transfer) must
//! cross the helper too.

use std::path::{Path, PathBuf};
use std::process::{Command, Stdio};

mod support;
use support::{docker, docker_command, docker_socket, require_daemon, unique, Run, TestCommand};

/// The stand-in base, served through the docker.io mirror: it has /bin/sh and the same
/// glibc as the host that built the test binary.
const IMAGE: &str = "pytorch/pytorch:2.8.0-cuda12.8-cudnn9-runtime";

/// The `buildctl` inside the BuildKit container.
const BUILDCTL: &str = r#"#!/bin/sh
# buildctl stand-in (tests/e2e_reach.rs): dial-stdio bridges to the test daemon's BuildKit.
echo "$*" >> /log/buildctl.argv
case "$1" in
  dial-stdio) exec torchkit dial-stdio --addr docker:///run/tk/docker.sock ;;
  debug) exit 0 ;;
esac
echo "buildctl stand-in: only dial-stdio" >&2
exit 2
"#;

/// The shared set-up: a running BuildKit container and a directory of fake tools.
struct Rig {
    dir: PathBuf,
    container: String,
    bin: PathBuf,
}

impl Drop for Rig {
    fn drop(&mut self) {
        let _ = Command::new("docker")
            .args(["rm", "-f", &self.container])
            .stdout(Stdio::null())
            .stderr(Stdio::null())
            .status();
    }
}

/// One rig per test, so that what its tools record is its own. The container is removed
/// when the rig is dropped, and removes itself after 15 minutes in any case (`--rm`,
/// `sleep 900`).
fn rig() -> Rig {
    require_daemon();
    let dir = std::env::temp_dir().join(unique("torchkit-reach"));
    let bin = dir.join("bin");
    let log = dir.join("log");
    std::fs::create_dir_all(&bin).unwrap();
    std::fs::create_dir_all(&log).unwrap();
    let buildctl = dir.join("buildctl");
    write_exe(&buildctl, BUILDCTL);
    let container = format!("buildx_buildkit_{}0", unique("tkreach").replace('-', "_"));
    let torchkit = env!("CARGO_BIN_EXE_torchkit");
    let socket = docker_socket();
    docker(&[
        "run",
        "-d",
        "--rm",
        "--name",
        &container,
        "--label",
        "torchkit.test=e2e_reach",
        "--entrypoint",
        "sleep",
        "-v",
        &format!("{}:/run/tk/docker.sock", socket.display()),
        "-v",
        &format!("{torchkit}:/usr/local/bin/torchkit:ro"),
        "-v",
        &format!("{}:/usr/local/bin/buildctl:ro", buildctl.display()),
        "-v",
        &format!("{}:/log", log.display()),
        IMAGE,
        "900",
    ]);
    // The tools a user would have: each records its arguments, then reaches the
    // container as it would reach a pod, a host or a container.
    for tool in ["kubectl", "ssh", "podman", "nerdctl"] {
        let body = format!(
            "#!/bin/sh\necho \"{tool} $*\" >> {log}/tools.argv\n{pods}exec docker exec -i {container} buildctl dial-stdio\n",
            log = log.display(),
            pods = if tool == "kubectl" {
                // A buildx kubernetes builder first lists the pods of its deployment.
                "case \"$*\" in *\"get pods\"*) echo 'bk-b bk-a'; exit 0 ;; esac\n"
            } else {
                ""
            },
        );
        write_exe(&bin.join(tool), &body);
    }
    Rig {
        dir,
        container,
        bin,
    }
}

fn write_exe(path: &Path, body: &str) {
    use std::os::unix::fs::PermissionsExt as _;
    std::fs::write(path, body).unwrap();
    std::fs::set_permissions(path, std::fs::Permissions::from_mode(0o755)).unwrap();
}

/// PATH with the fake tools first.
fn path_with(bin: &Path) -> String {
    format!(
        "{}:{}",
        bin.display(),
        std::env::var("PATH").unwrap_or_default()
    )
}

/// A project whose one copied file holds `marker`; returns its spec path.
fn project(marker: &str) -> PathBuf {
    let dir = std::env::temp_dir().join(unique("torchkit-reach-project"));
    std::fs::create_dir_all(dir.join("app")).unwrap();
    std::fs::write(dir.join("app/marker.txt"), marker).unwrap();
    let spec = dir.join("torchkit.toml");
    std::fs::write(
        &spec,
        "[torch]\nversion = \"2.8.0\"\ncuda = \"12.8\"\n\n[image]\ncopy = [\"app/\"]\n\n[verify]\nenabled = false\n",
    )
    .unwrap();
    spec
}

/// `torchkit build SPEC -t TAG` with `extra` flags and env; the run.
fn build(spec: &Path, tag: &str, extra: &[&str], env: &[(&str, &str)]) -> Run {
    let mut c = TestCommand::new();
    c.args([
        "build",
        spec.to_str().unwrap(),
        "-t",
        tag,
        "--progress",
        "plain",
    ])
    .args(extra);
    for (k, v) in env {
        c.env(k, v);
    }
    c.run()
}

/// The marker file in image `tag`, then the image is removed.
fn marker_in(tag: &str) -> String {
    let out = docker_command()
        .args([
            "run",
            "--rm",
            "--entrypoint",
            "cat",
            tag,
            "/workspace/app/marker.txt",
        ])
        .output()
        .unwrap();
    let _ = Command::new("docker")
        .args(["rmi", "-f", tag])
        .stdout(Stdio::null())
        .stderr(Stdio::null())
        .status();
    assert!(
        out.status.success(),
        "docker run {tag}: {}",
        String::from_utf8_lossy(&out.stderr)
    );
    String::from_utf8_lossy(&out.stdout).into_owned()
}

/// Builds through `how` (flags, env) and checks that the image holds this run's marker.
fn builds_through(what: &str, extra: &[&str], env: &[(&str, &str)]) {
    let marker = unique(what);
    let spec = project(&marker);
    let tag = format!("torchkit-e2e/reach:{}", unique("t"));
    let r = build(&spec, &tag, extra, env);
    assert!(r.success(), "{what}:\n{}", r.describe());
    assert_eq!(marker_in(&tag), marker, "{what}");
}

/// The lines that the rig's fake tools (`tools.argv`) or its container's `buildctl`
/// (`buildctl.argv`) recorded.
fn recorded(rig: &Rig, file: &str) -> Vec<String> {
    std::fs::read_to_string(rig.dir.join("log").join(file))
        .unwrap_or_default()
        .lines()
        .map(str::to_string)
        .collect()
}

#[test]
fn docker_container_execs_buildctl_dial_stdio_in_the_container() {
    let rig = rig();
    let before = recorded(&rig, "buildctl.argv").len();
    let addr = format!("docker-container://{}", rig.container);
    builds_through("docker-container", &["--addr", &addr], &[]);
    let after = recorded(&rig, "buildctl.argv");
    assert!(
        after[before..].iter().any(|l| l == "dial-stdio"),
        "the container's buildctl was not asked to dial: {after:?}"
    );
}

#[test]
fn each_helper_runs_buildctls_command_line() {
    let rig = rig();
    let path = path_with(&rig.bin);
    let cases = [
        (
            "kube-pod://bk-0?namespace=ci&container=buildkitd",
            "kubectl --context= --namespace=ci exec --container=buildkitd -i bk-0 -- buildctl dial-stdio",
        ),
        (
            "ssh://builder@bk.example:2222/run/buildkit/buildkitd.sock",
            "ssh -l builder -p 2222 -- bk.example buildctl --addr unix:///run/buildkit/buildkitd.sock dial-stdio",
        ),
        ("podman-container://bk", "podman exec -i bk buildctl dial-stdio"),
        (
            "nerdctl-container://bk?namespace=buildkit",
            "nerdctl exec --namespace buildkit -i bk buildctl dial-stdio",
        ),
    ];
    for (addr, want) in cases {
        let before = recorded(&rig, "tools.argv").len();
        builds_through(addr, &["--addr", addr], &[("PATH", &path)]);
        let lines = recorded(&rig, "tools.argv");
        assert!(
            lines[before..].iter().any(|l| l == want),
            "{addr}: expected `{want}` among {:?}",
            &lines[before..]
        );
    }
    // BUILDKIT_HOST takes the same addresses.
    let before = recorded(&rig, "tools.argv").len();
    builds_through(
        "BUILDKIT_HOST",
        &[],
        &[("PATH", &path), ("BUILDKIT_HOST", "kube-pod://bk-1")],
    );
    assert!(recorded(&rig, "tools.argv")[before..]
        .iter()
        .any(|l| l.contains("-i bk-1 -- buildctl dial-stdio")));
}

#[test]
fn a_failing_helper_is_reported_with_its_command_and_stderr() {
    require_daemon();
    let spec = project("unused");
    // No such container: docker's own words come back.
    let r = build(
        &spec,
        "torchkit-e2e/reach:never",
        &["--addr", "docker-container://tk-no-such-container"],
        &[],
    );
    assert_eq!(r.code, Some(1), "{}", r.describe());
    assert!(
        r.stderr.contains(
            "the connection helper `docker exec -i tk-no-such-container buildctl dial-stdio`"
        ),
        "{}",
        r.stderr
    );
    assert!(r.stderr.contains("No such container"), "{}", r.stderr);
    assert!(r.stderr.contains("hint: "), "{}", r.stderr);
    assert!(!r.stderr.contains("panicked"), "{}", r.stderr);

    // A container without buildctl: the exec error names it, and the hint says what the
    // container needs.
    let plain = unique("tk-plain");
    docker(&[
        "run",
        "-d",
        "--name",
        &plain,
        "--label",
        "torchkit.test=e2e_reach",
        "--entrypoint",
        "sleep",
        IMAGE,
        "infinity",
    ]);
    let r = build(
        &spec,
        "torchkit-e2e/reach:never",
        &["--addr", &format!("docker-container://{plain}")],
        &[],
    );
    let _ = Command::new("docker").args(["rm", "-f", &plain]).output();
    assert_eq!(r.code, Some(1), "{}", r.describe());
    assert!(r.stderr.contains("buildctl"), "{}", r.stderr);
    assert!(
        r.stderr.contains("hint: the target has no `buildctl`"),
        "{}",
        r.stderr
    );

    // The helper's program is not installed.
    let empty = tempfile::tempdir().unwrap();
    let r = build(
        &spec,
        "torchkit-e2e/reach:never",
        &["--addr", "kube-pod://bk-0"],
        &[("PATH", empty.path().to_str().unwrap())],
    );
    assert_eq!(r.code, Some(1), "{}", r.describe());
    assert!(
        r.stderr.contains("cannot run the connection helper `kubectl --context= --namespace= exec --container= -i bk-0 -- buildctl dial-stdio`"),
        "{}",
        r.stderr
    );
    assert!(r.stderr.contains("hint: install `kubectl`"), "{}", r.stderr);
}

/// A Docker config of its own for buildx's builder store, with the test env's buildx
/// plugin.
fn docker_config() -> tempfile::TempDir {
    let cfg = tempfile::tempdir().unwrap();
    let plugins = std::env::var_os("DOCKER_CONFIG")
        .map(PathBuf::from)
        .unwrap_or_else(|| PathBuf::from("/var/lib/torchkit-test-env/docker-config"))
        .join("cli-plugins");
    std::os::unix::fs::symlink(&plugins, cfg.path().join("cli-plugins")).unwrap();
    cfg
}

/// `docker buildx ARGS` with Docker config `cfg`; must succeed.
fn buildx(cfg: &Path, args: &[&str]) -> String {
    let out = Command::new("docker")
        .env("DOCKER_CONFIG", cfg)
        .arg("buildx")
        .args(args)
        .stdin(Stdio::null())
        .output()
        .unwrap();
    assert!(
        out.status.success(),
        "docker buildx {args:?}: {}",
        String::from_utf8_lossy(&out.stderr)
    );
    String::from_utf8_lossy(&out.stdout).into_owned()
}

#[test]
fn builders_made_by_docker_buildx_create_are_reached() {
    let rig = rig();
    let cfg = docker_config();
    let cfg_s = cfg.path().to_str().unwrap();
    // A docker-container builder whose node is the rig's container: buildx names the
    // container `buildx_buildkit_<node>`, the node `<builder>0`.
    let name = rig
        .container
        .strip_prefix("buildx_buildkit_")
        .and_then(|n| n.strip_suffix('0'))
        .unwrap()
        .to_string();
    buildx(
        cfg.path(),
        &["create", "--name", &name, "--driver", "docker-container"],
    );
    let stored = std::fs::read_to_string(cfg.path().join("buildx/instances").join(&name)).unwrap();
    assert!(stored.contains("\"docker-container\""), "{stored}");

    let dials = || {
        recorded(&rig, "buildctl.argv")
            .iter()
            .filter(|l| *l == "dial-stdio")
            .count()
    };
    let before = dials();
    builds_through(
        "--builder",
        &["--builder", &name],
        &[("DOCKER_CONFIG", cfg_s)],
    );
    assert!(
        dials() > before,
        "--builder did not go through the container"
    );

    let before = dials();
    builds_through(
        "BUILDX_BUILDER",
        &[],
        &[("DOCKER_CONFIG", cfg_s), ("BUILDX_BUILDER", &name)],
    );
    assert!(
        dials() > before,
        "BUILDX_BUILDER did not go through the container"
    );

    // `docker buildx use` makes it the default for this Docker endpoint, as for buildx.
    buildx(cfg.path(), &["use", &name]);
    let before = dials();
    builds_through("buildx use", &[], &[("DOCKER_CONFIG", cfg_s)]);
    assert!(dials() > before, "`docker buildx use` was not followed");
    // --addr still wins.
    let before = dials();
    let direct = format!("docker://{}", docker_socket().display());
    builds_through(
        "--addr over use",
        &["--addr", &direct],
        &[("DOCKER_CONFIG", cfg_s)],
    );
    assert_eq!(dials(), before, "--addr went through the builder");
    buildx(cfg.path(), &["use", "default"]);

    // `default` is the Docker engine itself (buildx's docker driver).
    builds_through(
        "default",
        &["--builder", "default"],
        &[("DOCKER_CONFIG", cfg_s)],
    );

    // A kubernetes builder (written as buildx writes it; creating one needs a cluster):
    // kubectl lists the deployment's pods and execs into the first running one.
    let kube = r#"{"Name":"kube","Driver":"kubernetes","Nodes":[{"Name":"kube0","Endpoint":"default","Platforms":null,"Flags":null,"DriverOpts":{"namespace":"builds"},"Files":null}],"Dynamic":false}"#;
    std::fs::write(cfg.path().join("buildx/instances/kube"), kube).unwrap();
    let path = path_with(&rig.bin);
    let before = recorded(&rig, "tools.argv").len();
    builds_through(
        "kubernetes",
        &["--builder", "kube"],
        &[("DOCKER_CONFIG", cfg_s), ("PATH", &path)],
    );
    let lines = recorded(&rig, "tools.argv")[before..].to_vec();
    assert!(
        lines.iter().any(|l| l
            == "kubectl --namespace=builds get pods --selector=app=kube0 --field-selector=status.phase=Running --output=jsonpath={.items[*].metadata.name}"),
        "{lines:?}"
    );
    assert!(
        lines.iter().any(|l| l
            == "kubectl --context= --namespace=builds exec --container= -i bk-a -- buildctl dial-stdio"),
        "{lines:?}"
    );

    // An unknown name lists the builders there are.
    let r = build(
        &project("x"),
        "torchkit-e2e/reach:never",
        &["--builder", "nope"],
        &[("DOCKER_CONFIG", cfg_s)],
    );
    assert_eq!(r.code, Some(1), "{}", r.describe());
    assert!(
        r.stderr.contains("no buildx builder `nope` (--builder)"),
        "{}",
        r.stderr
    );
    assert!(r.stderr.contains(&name.to_lowercase()), "{}", r.stderr);
    assert!(r.stderr.contains("default"), "{}", r.stderr);
    assert!(r.stderr.contains("kube"), "{}", r.stderr);
    assert!(
        r.stderr.contains("hint: `docker buildx ls`"),
        "{}",
        r.stderr
    );
}

#[test]
fn a_remote_builder_brings_its_tls_files() {
    require_daemon();
    let dir = tempfile::tempdir().unwrap();
    let (ca, cert, key) = support::make_certs(dir.path());
    let rt = tokio::runtime::Runtime::new().unwrap();
    let port = rt.block_on(support::tls_proxy(&cert, &key, docker_socket()));
    let cfg = docker_config();
    let cfg_s = cfg.path().to_str().unwrap();
    buildx(
        cfg.path(),
        &[
            "create",
            "--name",
            "far",
            "--driver",
            "remote",
            "--driver-opt",
            &format!("cacert={},servername=tk.test", ca.display()),
            &format!("tcp://127.0.0.1:{port}"),
        ],
    );
    builds_through("remote", &["--builder", "far"], &[("DOCKER_CONFIG", cfg_s)]);

    // Without its CA the same endpoint fails the TLS handshake: the builder's files were
    // what made it work.
    let bare = r#"{"Name":"bare","Driver":"remote","Nodes":[{"Name":"bare0","Endpoint":"ENDPOINT","DriverOpts":{"servername":"tk.test"}}]}"#
        .replace("ENDPOINT", &format!("tcp://127.0.0.1:{port}"));
    std::fs::write(cfg.path().join("buildx/instances/bare"), bare).unwrap();
    let r = build(
        &project("x"),
        "torchkit-e2e/reach:never",
        &["--builder", "bare"],
        &[("DOCKER_CONFIG", cfg_s)],
    );
    assert_eq!(r.code, Some(1), "{}", r.describe());
    assert!(r.stderr.contains("TLS"), "{}", r.stderr);
    drop(rt);
}

/// `--load` on a builder that is not dockerd exports a docker archive and loads it through
/// the Docker API (`POST /images/load`). Every builder here is dockerd, whose `--load`
/// stores the image directly, so this checks the load itself on a real archive.
#[test]
fn a_docker_archive_loads_through_the_docker_api() {
    require_daemon();
    let marker = unique("load");
    let spec = project(&marker);
    let tag = format!("torchkit-e2e/reach:{}", unique("load"));
    let dir = tempfile::tempdir().unwrap();
    let tar = dir.path().join("image.tar");
    let r = TestCommand::new()
        .args([
            "build",
            spec.to_str().unwrap(),
            "--addr",
            &format!("docker://{}", docker_socket().display()),
            "-o",
            &format!("type=docker,name={tag},dest={}", tar.display()),
        ])
        .run();
    if !support::containerd_store() {
        // The classic store has no docker exporter; the refusal says so.
        assert_eq!(r.code, Some(1), "{}", r.describe());
        return;
    }
    assert!(r.success(), "{}", r.describe());
    let rt = tokio::runtime::Runtime::new().unwrap();
    let names = rt
        .block_on(torchkit::buildkit::docker_api::load(&docker_socket(), &tar))
        .expect("load");
    assert_eq!(names, std::slice::from_ref(&tag));
    assert_eq!(marker_in(&tag), marker);
}
