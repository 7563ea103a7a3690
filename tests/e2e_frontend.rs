//! End-to-end tests of the `# syntax=` frontend against the real daemon of the test
//! environment (dockerd 26.1 with BuildKit v0.13, registry on 127.0.0.1:5000).
//!
//! The spec in `tests/e2e-frontend/basic/` starts with
//! `# syntax=localhost:5000/torchkit/frontend:dev`; it is built four ways:
//! - `torchkit build` (driver mode: the in-client gateway runs `build_spec` here), the
//!   reference;
//! - `docker build -f torchkit.toml .` and `docker buildx build -f torchkit.toml .`
//!   (the builtin Dockerfile frontend reads the `# syntax=` line and hops to the image);
//! - `torchkit build --frontend localhost:5000/torchkit/frontend:dev` (`gateway.v0`);
//!
//! and the three frontend images must equal the reference: the same runtime config (env,
//! user, workdir, labels, cmd, entrypoint), the same layers (`RootFS` diff ids) and the same
//! files. A broken spec must fail with its line shown by the docker CLI, and
//! `--platform linux/arm64` must be refused with a message that says why.
//!
//! The tests that compare two builds hold the cross-process cache lock shared
//! ([`support::serial`]): a prune or a release build between the reference build and the one
//! compared with it would make a step run again and its layer differ.
//!
//! These tests FAIL, never skip, when the daemon or the frontend image is missing: run
//! `scripts/test-env.sh up` (as root, with `STANDIN=1`) and then
//! `scripts/frontend-image.sh` (which builds the static binary and pushes the image).
//!
//! `TORCHKIT_TEST_FRONTEND=<image>` tests another frontend image than
//! `localhost:5000/torchkit/frontend:dev` (several checkouts sharing one registry each push
//! their own: `IMAGE=<image> scripts/frontend-image.sh`): the cases' `# syntax=` lines are
//! rewritten to it in copies.

use std::io::{Read, Write};
use std::path::PathBuf;
use std::process::{Command, Output};
use std::sync::OnceLock;

mod support;
use support::{serial, TestCommand};

/// The frontend image the cases name, unless `TORCHKIT_TEST_FRONTEND` names another.
const DEFAULT_FRONTEND: &str = "localhost:5000/torchkit/frontend:dev";
const REGISTRY: &str = "127.0.0.1:5000";
const TEST_ENV: &str = "/var/lib/torchkit-test-env";
const IMAGE: &str = "torchkit-e2e-frontend";

fn root() -> PathBuf {
    PathBuf::from(env!("CARGO_MANIFEST_DIR"))
}

/// The frontend image under test: `TORCHKIT_TEST_FRONTEND`, else [`DEFAULT_FRONTEND`].
fn frontend() -> String {
    std::env::var("TORCHKIT_TEST_FRONTEND")
        .ok()
        .filter(|v| !v.is_empty())
        .unwrap_or_else(|| DEFAULT_FRONTEND.to_string())
}

/// A case directory, or, when [`frontend`] is not the image its spec names, a copy of it
/// whose `# syntax=` line names [`frontend`].
fn case(name: &str) -> PathBuf {
    let dir = root().join("tests/e2e-frontend").join(name);
    if frontend() == DEFAULT_FRONTEND {
        return dir;
    }
    let copy = std::env::temp_dir().join(format!(
        "torchkit-e2e-frontend-{}-case-{name}",
        std::process::id()
    ));
    if !copy.exists() {
        support::copy_dir(&dir, &copy);
        syntax_to_frontend(&copy.join("torchkit.toml"));
    }
    copy
}

/// Point the `# syntax=` line of `spec` at [`frontend`].
fn syntax_to_frontend(spec: &std::path::Path) {
    let text = std::fs::read_to_string(spec).unwrap();
    let text = text.replacen(
        &format!("# syntax={DEFAULT_FRONTEND}"),
        &format!("# syntax={}", frontend()),
        1,
    );
    std::fs::write(spec, text).unwrap();
}

/// This run's copy of the `basic` case, with a file unique to the run in its context. The
/// daemon's build cache outlives test runs and keys a copy by content, not by mtime: without
/// the unique file, a copy layer cached from another checkout (other mtimes) could stand in
/// for one side of a comparison and not the other.
fn basic() -> PathBuf {
    static DIR: OnceLock<PathBuf> = OnceLock::new();
    DIR.get_or_init(|| {
        let nanos = std::time::SystemTime::now()
            .duration_since(std::time::UNIX_EPOCH)
            .unwrap()
            .as_nanos();
        let dir = std::env::temp_dir().join(format!(
            "torchkit-e2e-frontend-{}-{nanos}",
            std::process::id()
        ));
        support::copy_dir(&case("basic"), &dir);
        syntax_to_frontend(&dir.join("torchkit.toml"));
        std::fs::write(dir.join("app/run-id.txt"), format!("{nanos}\n")).unwrap();
        dir
    })
    .clone()
}

/// A `docker` command for the test daemon (see [`support::docker_command`]).
fn docker() -> Command {
    support::docker_command()
}

fn text(o: &Output) -> String {
    format!(
        "exit: {}\n--- stdout\n{}\n--- stderr\n{}",
        o.status,
        String::from_utf8_lossy(&o.stdout),
        String::from_utf8_lossy(&o.stderr)
    )
}

fn run(c: &mut Command) -> Output {
    c.output()
        .unwrap_or_else(|e| panic!("cannot run {:?}: {e}", c.get_program()))
}

fn ok(c: &mut Command) -> Output {
    let o = run(c);
    assert!(o.status.success(), "{c:?} failed:\n{}", text(&o));
    o
}

/// `HEAD /v2/<name>/manifests/<tag>` on the registry: the HTTP status line.
fn registry_head(name: &str, tag: &str) -> std::io::Result<String> {
    let mut s = std::net::TcpStream::connect(REGISTRY)?;
    s.set_read_timeout(Some(std::time::Duration::from_secs(10)))?;
    write!(
        s,
        "HEAD /v2/{name}/manifests/{tag} HTTP/1.1\r\nHost: {REGISTRY}\r\nAccept: application/vnd.oci.image.index.v1+json, application/vnd.oci.image.manifest.v1+json, application/vnd.docker.distribution.manifest.v2+json, application/vnd.docker.distribution.manifest.list.v2+json\r\nConnection: close\r\n\r\n"
    )?;
    let mut out = String::new();
    s.read_to_string(&mut out)?;
    Ok(out.lines().next().unwrap_or_default().to_string())
}

/// Fails (never skips) with the command to run when the test environment is incomplete.
fn require_environment() {
    static CHECKED: OnceLock<Result<(), String>> = OnceLock::new();
    let r = CHECKED.get_or_init(|| {
        let v = docker()
            .args(["version", "--format", "{{.Server.Version}}"])
            .output()
            .map_err(|e| format!("cannot run docker: {e}"))?;
        if !v.status.success() {
            return Err(format!(
                "no Docker daemon answers:\n{}\nRun `scripts/test-env.sh up` (as root, STANDIN=1), then `. {TEST_ENV}/env.sh`.",
                text(&v)
            ));
        }
        let b = docker()
            .args(["buildx", "version"])
            .output()
            .map_err(|e| format!("cannot run docker buildx: {e}"))?;
        if !b.status.success() {
            return Err(format!(
                "docker has no buildx plugin:\n{}\nRun `. {TEST_ENV}/env.sh` (it sets DOCKER_CONFIG).",
                text(&b)
            ));
        }
        let image = frontend();
        let (name, tag) = image
            .strip_prefix("localhost:5000/")
            .and_then(|r| r.rsplit_once(':'))
            .ok_or_else(|| format!("TORCHKIT_TEST_FRONTEND={image}: expected localhost:5000/NAME:TAG"))?;
        match registry_head(name, tag) {
            Ok(l) if l.contains(" 200") => Ok(()),
            Ok(l) => Err(format!(
                "the frontend image {image} is not in the registry ({l}).\nRun `IMAGE={image} scripts/frontend-image.sh` to build and push it."
            )),
            Err(e) => Err(format!(
                "no registry at {REGISTRY} ({e}).\nRun `scripts/test-env.sh up` (as root, STANDIN=1), then `scripts/frontend-image.sh`."
            )),
        }
    });
    if let Err(e) = r {
        panic!("{e}");
    }
}

/// The parts of an image that `torchkit build` and the frontend must agree on.
#[derive(Debug, PartialEq)]
struct Facts {
    env: serde_json::Value,
    user: serde_json::Value,
    workdir: serde_json::Value,
    labels: serde_json::Value,
    cmd: serde_json::Value,
    entrypoint: serde_json::Value,
    layers: serde_json::Value,
    files: String,
}

fn facts(image: &str) -> Facts {
    let o = ok(docker().args(["image", "inspect", image]));
    let v: serde_json::Value = serde_json::from_slice(&o.stdout).expect("inspect JSON");
    let img = &v[0];
    let c = &img["Config"];
    let listing = ok(docker().args([
        "run",
        "--rm",
        "--entrypoint",
        "/bin/sh",
        image,
        "-c",
        "find /workspace /home/ml -xdev | sort | while read -r f; do stat -c '%n %s %a %u:%g' \"$f\"; done; grep '^ml:' /etc/passwd /etc/group",
    ]));
    Facts {
        env: c["Env"].clone(),
        user: c["User"].clone(),
        workdir: c["WorkingDir"].clone(),
        labels: c["Labels"].clone(),
        cmd: c["Cmd"].clone(),
        entrypoint: c["Entrypoint"].clone(),
        layers: img["RootFS"]["Layers"].clone(),
        files: String::from_utf8_lossy(&listing.stdout).into_owned(),
    }
}

/// `torchkit build` of the basic spec in driver mode, built once for all tests.
fn reference() -> &'static Facts {
    static REF: OnceLock<Facts> = OnceLock::new();
    REF.get_or_init(|| {
        let tag = format!("{IMAGE}:driver");
        TestCommand::new()
            .args(["build", "--progress", "plain", "-t", &tag])
            .arg(basic().join("torchkit.toml"))
            .assert_ok();
        facts(&tag)
    })
}

fn assert_same_as_reference(how: &str, tag: &str) {
    let want = reference();
    let got = facts(tag);
    assert_eq!(
        &got, want,
        "{how}: the image differs from `torchkit build`'s"
    );
}

#[test]
fn reference_image_is_what_the_spec_says() {
    require_environment();
    let _cache = serial::shared();
    let r = reference();
    assert_eq!(r.user, "ml");
    assert_eq!(r.workdir, "/workspace");
    assert_eq!(r.cmd, serde_json::json!(["python3", "app/hello.py"]));
    assert_eq!(r.labels["org.example.e2e"], "frontend");
    assert!(
        r.env
            .as_array()
            .unwrap()
            .contains(&serde_json::json!("TORCHKIT_E2E=frontend")),
        "{:?}",
        r.env
    );
    assert!(r.files.contains("/workspace/app/hello.py "), "{}", r.files);
    // .dockerignore keeps app/*.tmp out.
    assert!(!r.files.contains("scratch.tmp"), "{}", r.files);
    let hello = ok(docker().args(["run", "--rm", &format!("{IMAGE}:driver")]));
    assert_eq!(
        String::from_utf8_lossy(&hello.stdout).trim(),
        "hello from a torchkit frontend build"
    );
}

#[test]
fn docker_build_through_the_syntax_line_matches_torchkit_build() {
    require_environment();
    let _cache = serial::shared();
    let tag = format!("{IMAGE}:docker-build");
    ok(docker()
        .current_dir(basic())
        .args(["build", "-f", "torchkit.toml", "-t", &tag, "."]));
    assert_same_as_reference("docker build", &tag);
}

#[test]
fn docker_buildx_build_through_the_syntax_line_matches_torchkit_build() {
    require_environment();
    let _cache = serial::shared();
    let tag = format!("{IMAGE}:buildx");
    ok(docker().current_dir(basic()).args([
        "buildx",
        "build",
        "--load",
        "-f",
        "torchkit.toml",
        "-t",
        &tag,
        ".",
    ]));
    assert_same_as_reference("docker buildx build", &tag);
}

#[test]
fn torchkit_build_with_the_frontend_image_matches_torchkit_build() {
    require_environment();
    let _cache = serial::shared();
    let tag = format!("{IMAGE}:torchkit-frontend");
    TestCommand::new()
        .args([
            "build",
            "--progress",
            "plain",
            "--frontend",
            &frontend(),
            "-t",
            &tag,
        ])
        .arg(basic().join("torchkit.toml"))
        .assert_ok();
    assert_same_as_reference("torchkit build --frontend", &tag);
}

#[test]
fn frontend_options_reach_the_image() {
    require_environment();
    let tag = format!("{IMAGE}:options");
    ok(docker().current_dir(basic()).args([
        "build",
        "-f",
        "torchkit.toml",
        "--label",
        "org.example.extra=yes",
        "--target",
        "user",
        "-t",
        &tag,
        ".",
    ]));
    let f = facts(&tag);
    assert_eq!(f.labels["org.example.extra"], "yes");
    assert_eq!(f.labels["org.example.e2e"], "frontend");
    // Stopped after `user`: the workdir exists, the context copy does not.
    assert!(f.files.contains("/workspace "), "{}", f.files);
    assert!(!f.files.contains("/workspace/app"), "{}", f.files);
}

#[test]
fn a_bad_spec_fails_with_its_line_in_the_docker_output() {
    require_environment();
    let o = run(docker().current_dir(case("bad")).args([
        "build",
        "-f",
        "torchkit.toml",
        "-t",
        &format!("{IMAGE}:bad"),
        ".",
    ]));
    let out = text(&o);
    assert!(!o.status.success(), "{out}");
    // The message, with its file:line:col and hint ...
    assert!(
        out.contains("torchkit.toml:8:1: unknown key `usr` in [image]"),
        "{out}"
    );
    assert!(out.contains("did you mean `user`?"), "{out}");
    // ... and the excerpt the CLI prints from the errdefs.Source detail, which Docker
    // 20.10 (BuildKit 0.8) does not pass on from a `# syntax=` frontend
    // (docs/compatibility.md).
    if !support::docker_server_version().starts_with("20.") {
        assert!(out.contains(">>> usr = \"ml\""), "{out}");
    }
}

#[test]
fn another_platform_is_refused_clearly() {
    require_environment();
    let o = run(docker().current_dir(basic()).args([
        "build",
        "--platform",
        "linux/arm64",
        "-f",
        "torchkit.toml",
        "-t",
        &format!("{IMAGE}:arm64"),
        ".",
    ]));
    let out = text(&o);
    assert!(!o.status.success(), "{out}");
    assert!(
        out.contains(
            "torchkit builds only for linux/amd64, and this build asks for platform `linux/arm64`"
        ),
        "{out}"
    );
    assert!(out.contains("drop --platform"), "{out}");
}

#[test]
fn the_ca_secret_reaches_pip_through_the_frontend() {
    require_environment();
    let tag = format!("{IMAGE}:pip");
    ok(docker().current_dir(case("pip")).args([
        "build",
        "-f",
        "torchkit.toml",
        "--secret",
        "id=torchkit-ca,src=/etc/ssl/certs/ca-certificates.crt",
        "--build-arg",
        "TORCHKIT_CA_SECRET=1",
        "-t",
        &tag,
        ".",
    ]));
    let o = ok(docker().args(["run", "--rm", &tag]));
    assert_eq!(String::from_utf8_lossy(&o.stdout).trim(), "1.16.0");
    // The bundle was mounted for the step only, never written into a layer.
    let o = ok(docker().args([
        "run",
        "--rm",
        &tag,
        "sh",
        "-c",
        "ls /run/secrets 2>/dev/null | wc -l",
    ]));
    assert_eq!(String::from_utf8_lossy(&o.stdout).trim(), "0");
}

/// An HTTPS package index on this host, reached by RUN containers through the docker
/// bridge, whose certificate is signed by a CA of the test's own: pip reaches it only when
/// it is given that CA. It serves one pure-Python wheel, `tkca` 1.0.
struct CaIndex {
    dir: tempfile::TempDir,
    server: std::process::Child,
    host: String,
    url: String,
}

impl CaIndex {
    fn start() -> CaIndex {
        let host = support::host_gateway();
        assert!(!host.is_empty(), "no docker bridge gateway");
        let dir = tempfile::tempdir().unwrap();
        let certs = dir.path().join("certs");
        std::fs::create_dir(&certs).unwrap();
        let (_, cert, key) = support::make_certs_for(&certs, &host);
        let root = dir.path().join("www");
        let script = r#"
import base64, hashlib, os, sys, zipfile
root = sys.argv[1]
name, version = "tkca", "1.0"
files = os.path.join(root, "files")
os.makedirs(files)
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
sha = hashlib.sha256(open(os.path.join(files, wheel), "rb").read()).hexdigest()
os.makedirs(os.path.join(root, "simple", name))
with open(os.path.join(root, "simple", name, "index.html"), "w") as out:
    out.write('<!DOCTYPE html><html><body><a href="../../files/%s#sha256=%s">%s</a></body></html>\n' % (wheel, sha, wheel))
"#;
        let st = Command::new("python3")
            .args(["-c", script])
            .arg(&root)
            .status()
            .expect("python3");
        assert!(st.success(), "writing the index failed");
        let serve = r#"
import functools, http.server, ssl, sys
host, port, root, cert, key = sys.argv[1:6]
handler = functools.partial(http.server.SimpleHTTPRequestHandler, directory=root)
server = http.server.ThreadingHTTPServer((host, int(port)), handler)
ctx = ssl.SSLContext(ssl.PROTOCOL_TLS_SERVER)
ctx.load_cert_chain(cert, key)
server.socket = ctx.wrap_socket(server.socket, server_side=True)
server.serve_forever()
"#;
        let port = std::net::TcpListener::bind((host.as_str(), 0))
            .unwrap()
            .local_addr()
            .unwrap()
            .port();
        let server = Command::new("python3")
            .args(["-c", serve, &host, &port.to_string()])
            .arg(&root)
            .arg(&cert)
            .arg(&key)
            .stdout(std::process::Stdio::null())
            .stderr(std::process::Stdio::null())
            .spawn()
            .expect("python3 HTTPS server");
        support::wait_for(
            "the HTTPS index did not start",
            std::time::Duration::from_secs(20),
            || std::net::TcpStream::connect((host.as_str(), port)).ok(),
        );
        let url = format!("https://{host}:{port}/simple");
        CaIndex {
            dir,
            server,
            host,
            url,
        }
    }

    /// The CA that signed the index's certificate, and nothing else.
    fn ca(&self) -> PathBuf {
        self.dir.path().join("certs/ca.pem")
    }

    /// A project whose pip step installs `tkca` from this index, with `extra` spec lines
    /// under `[image]`, and an epoch unique to the run (the daemon's cache outlives runs,
    /// and a port may repeat).
    fn project(&self, name: &str, extra: &str) -> PathBuf {
        let dir = self.dir.path().join(name);
        std::fs::create_dir(&dir).unwrap();
        std::fs::write(
            dir.join("torchkit.toml"),
            format!(
                "# syntax={}\n[torch]\nversion = \"2.8.0\"\ncuda = \"12.8\"\n\
                 [python]\npackages = [\"tkca\"]\nindex_url = \"{}\"\n\
                 [image]\nuser = \"root\"\ncmd = [\"python\", \"-c\", \"import tkca; print(tkca.VERSION)\"]\n{extra}\
                 [cache]\nepoch = \"{}\"\n",
                frontend(),
                self.url,
                support::unique(name)
            ),
        )
        .unwrap();
        dir
    }
}

impl Drop for CaIndex {
    fn drop(&mut self) {
        let _ = self.server.kill();
        let _ = self.server.wait();
    }
}

/// `--secret id=torchkit-ca,src=…` alone, no build-arg, is enough through the frontend:
/// pip reaches an index only that CA vouches for, so the secret was used. Without the
/// secret the same spec fails on the certificate (the CA is what made it work), a spec
/// that needs no CA builds without it (the optional mount is absent, not an error), and
/// `TORCHKIT_CA_SECRET=1` still makes the secret required.
#[test]
fn the_ca_secret_alone_is_enough_through_the_frontend() {
    require_environment();
    let index = CaIndex::start();
    let ca = index.ca();
    let secret = format!("id=torchkit-ca,src={}", ca.display());
    let build = |dir: &PathBuf, extra: &[&str], tag: &str| {
        run(docker()
            .current_dir(dir)
            .args(["buildx", "build", "--progress", "plain"])
            .args(extra)
            .args(["-t", tag, "-f", "torchkit.toml", "."]))
    };
    let retries = "env = { PIP_RETRIES = \"0\" }\n";

    // Without the secret: pip does not trust the index.
    let dir = index.project("no-secret", retries);
    let o = build(&dir, &[], &format!("{IMAGE}:ca-missing"));
    let out = text(&o);
    assert!(!o.status.success(), "built without the CA:\n{out}");
    assert!(out.contains("CERTIFICATE_VERIFY_FAILED"), "{out}");

    // The secret alone: installed from the index, and the bundle is in no layer.
    let dir = index.project("secret-only", retries);
    let tag = format!("{IMAGE}:ca-secret-only");
    let o = build(&dir, &["--secret", &secret], &tag);
    assert!(o.status.success(), "{}", text(&o));
    let o = ok(docker().args(["run", "--rm", &tag]));
    assert_eq!(String::from_utf8_lossy(&o.stdout).trim(), "1.0");
    let pem = std::fs::read_to_string(&ca).unwrap();
    let ca_line = pem.lines().nth(1).expect("a PEM body line");
    let o = ok(docker().args([
        "run",
        "--rm",
        &tag,
        "sh",
        "-c",
        &format!("ls -A /run/secrets 2>/dev/null | wc -l; grep -rlF '{ca_line}' /etc /root /run /tmp /usr/local/lib 2>/dev/null | wc -l"),
    ]));
    assert_eq!(String::from_utf8_lossy(&o.stdout), "0\n0\n");

    // No secret, and none needed (pip told to trust the host): the optional mount is
    // simply absent.
    let trusted = format!(
        "env = {{ PIP_RETRIES = \"0\", PIP_TRUSTED_HOST = \"{}\" }}\n",
        index.host
    );
    let dir = index.project("no-ca-needed", &trusted);
    let tag = format!("{IMAGE}:ca-not-needed");
    let o = build(&dir, &[], &tag);
    assert!(o.status.success(), "{}", text(&o));
    let o = ok(docker().args(["run", "--rm", &tag]));
    assert_eq!(String::from_utf8_lossy(&o.stdout).trim(), "1.0");

    // TORCHKIT_CA_SECRET=1 without the secret: the build fails on the missing secret.
    let dir = index.project("required", retries);
    let o = build(
        &dir,
        &["--build-arg", "TORCHKIT_CA_SECRET=1"],
        &format!("{IMAGE}:ca-required"),
    );
    let out = text(&o);
    assert!(!o.status.success(), "{out}");
    assert!(out.contains("torchkit-ca"), "{out}");
    assert!(!out.contains("CERTIFICATE_VERIFY_FAILED"), "{out}");
}

/// `docker buildx build --print=<subrequest>` (buildx 0.13: behind BUILDX_EXPERIMENTAL=1)
/// through the syntax line: buildx prints the frontend's answer, and nothing is built.
fn print(request: &str) -> Output {
    ok(docker()
        .current_dir(basic())
        .env("BUILDX_EXPERIMENTAL", "1")
        .args([
            "buildx",
            "build",
            &format!("--print={request}"),
            "-f",
            "torchkit.toml",
            ".",
        ]))
}

#[test]
fn buildx_print_answers_targets_outline_and_describe() {
    require_environment();
    let o = print("targets");
    let stdout = String::from_utf8_lossy(&o.stdout).into_owned();
    let rows: Vec<&str> = stdout.lines().collect();
    assert!(rows[0].starts_with("TARGET"), "{stdout}");
    let names: Vec<&str> = rows[1..]
        .iter()
        .filter_map(|r| r.split_whitespace().next())
        .collect();
    assert_eq!(names, ["base", "user", "copy"], "{stdout}");
    assert!(rows.last().unwrap().contains("copy (default)"), "{stdout}");

    let o = print("outline");
    let stdout = String::from_utf8_lossy(&o.stdout).into_owned();
    for want in ["TORCHKIT_PROFILE", "TORCHKIT_CUDA", "torchkit-ca"] {
        assert!(stdout.contains(want), "no {want} in:\n{stdout}");
    }

    let o = print("subrequests.describe");
    let stdout = String::from_utf8_lossy(&o.stdout).into_owned();
    for want in ["outline", "targets", "subrequests.describe"] {
        assert!(stdout.contains(want), "no {want} in:\n{stdout}");
    }
}

/// `--build-context <base>=docker-image://<image>` builds on that image instead of the base,
/// as buildx replaces a `FROM`: through buildx and the `# syntax=` frontend, and through the
/// driver. The replacement here is the stand-in under another name (the registry itself
/// rather than the docker.io mirror), so the layers match the reference build and the
/// labels say which image was used. A context that is not an image is refused.
#[test]
fn a_build_context_for_the_base_builds_on_that_image() {
    require_environment();
    let _cache = serial::shared();
    let base = "pytorch/pytorch:2.8.0-cuda12.8-cudnn9-runtime";
    let direct = format!("localhost:5000/{base}");
    let context = format!("{base}=docker-image://{direct}");
    let digest =
        support::registry_digest(REGISTRY, "pytorch/pytorch", "2.8.0-cuda12.8-cudnn9-runtime")
            .expect("the stand-in is in the registry");
    let through_buildx = format!("{IMAGE}:build-context-buildx");
    ok(docker().current_dir(basic()).args([
        "buildx",
        "build",
        "--build-context",
        &context,
        "-f",
        "torchkit.toml",
        "-t",
        &through_buildx,
        ".",
    ]));
    let through_driver = format!("{IMAGE}:build-context-driver");
    TestCommand::new()
        .args(["build", "--progress", "plain", "--build-context", &context])
        .args(["-t", &through_driver])
        .arg(basic().join("torchkit.toml"))
        .assert_ok();
    for (how, tag) in [
        ("buildx", &through_buildx),
        ("torchkit build", &through_driver),
    ] {
        let f = facts(tag);
        assert_eq!(f.labels["torchkit.base"], direct.as_str(), "{how}");
        assert_eq!(f.labels["torchkit.base.digest"], digest.as_str(), "{how}");
        assert_eq!(
            f.layers,
            reference().layers,
            "{how}: other layers than the reference"
        );
        assert_eq!(f.files, reference().files, "{how}");
    }

    // A directory (buildx sends it as a local) is not an image to build on.
    let o = run(docker().current_dir(basic()).args([
        "buildx",
        "build",
        "--build-context",
        &format!("{base}=app"),
        "-f",
        "torchkit.toml",
        ".",
    ]));
    let out = text(&o);
    assert!(!o.status.success(), "{out}");
    assert!(
        out.contains("torchkit takes a named context only as an image"),
        "{out}"
    );
    assert!(out.contains("docker-image://"), "{out}");
}

/// The verify stage runs through the `# syntax=` frontend as through the driver: built on a
/// stand-in whose torch has the wrong CUDA, `docker buildx build` fails naming the check,
/// and `--build-arg TORCHKIT_SKIP_VERIFY=1` builds it, saying the stage was left out.
#[test]
fn the_frontend_verifies_the_image_and_skips_it_on_request() {
    require_environment();
    let _cache = serial::shared();
    let wrong = format!(
        "pytorch/pytorch:2.8.0-cuda12.8-cudnn9-runtime=docker-image://{REGISTRY}/torchkit-test/pytorch:2.8.0-wrong-cuda"
    );
    let build = |extra: &[&str]| {
        run(docker()
            .current_dir(basic())
            .args(["buildx", "build", "--progress", "plain"])
            .args(["--build-context", &wrong])
            .args(extra)
            .args(["-f", "torchkit.toml", "."]))
    };
    let o = build(&[]);
    let out = text(&o);
    assert!(!o.status.success(), "{out}");
    assert!(out.contains("checks failed"), "{out}");
    assert!(
        out.contains("torch.cuda: expected 12.8, found 12.6"),
        "{out}"
    );
    let o = build(&["--build-arg", "TORCHKIT_SKIP_VERIFY=1"]);
    let out = text(&o);
    assert!(o.status.success(), "{out}");
    // Said as a build warning; BuildKit v0.8 (Docker 20.10) shows no frontend warnings
    // (docs/compatibility.md), so there only the build's success is seen.
    let docker = support::docker_server_version();
    if docker.split('.').next().unwrap().parse::<u32>().unwrap() > 20 {
        assert!(
            out.contains("[torchkit verify] skipped: --skip-verify (TORCHKIT_SKIP_VERIFY)"),
            "{out}"
        );
    }
}

/// Through the `# syntax=` frontend too, only the files the spec uses are sent: 32 MB of
/// data beside the project cross the wire through neither the frontend's build nor the
/// builtin Dockerfile frontend (the daemon's own status of the context transfer).
#[test]
fn the_frontend_sends_only_what_the_spec_uses() {
    require_environment();
    let _cache = serial::shared();
    let dir = std::env::temp_dir().join(format!(
        "torchkit-e2e-frontend-{}-unused-data",
        std::process::id()
    ));
    support::copy_dir(&basic(), &dir);
    std::fs::create_dir_all(dir.join("data")).unwrap();
    std::fs::write(dir.join("data/checkpoint.bin"), vec![7u8; 32 << 20]).unwrap();
    let o = ok(docker()
        .current_dir(&dir)
        .args(["buildx", "build", "--progress", "plain"])
        .args(["-f", "torchkit.toml", "."]));
    // `#7 transferring context: 154B done`: the largest, in bytes (buildx's units).
    let stderr = String::from_utf8_lossy(&o.stderr);
    let sent = stderr
        .lines()
        .filter_map(|l| l.split_once("transferring context: ").map(|(_, r)| r))
        .filter_map(|r| r.split_whitespace().next())
        .filter_map(|size| {
            let at = size.find(|c: char| c.is_ascii_alphabetic())?;
            let n: f64 = size[..at].parse().ok()?;
            let unit = match &size[at..] {
                "B" => 1.0,
                "kB" => 1e3,
                "MB" => 1e6,
                "GB" => 1e9,
                _ => return None,
            };
            Some((n * unit) as u64)
        })
        .max()
        .unwrap_or_else(|| panic!("no context transfer reported:\n{}", text(&o)));
    assert!(sent < 64 << 10, "{sent} bytes of the context were sent");
}
