//! `torchkit lock` and `torchkit build --locked` against the real daemon (dockerd's BuildKit,
//! the local registry as docker.io mirror, the pytorch stand-in). Fails, never skips, when
//! the daemon is missing: `. /var/lib/torchkit-test-env/env.sh` first.

use std::path::Path;

mod support;
use support::{copy_dir, docker, docker_socket, registry_digest, require_daemon, Run, TestCommand};

use torchkit::lock::Lock;

const HOST_CA: &str = "/etc/ssl/certs/ca-certificates.crt";
const IMAGE: &str = "torchkit-e2e/lock:dev";

/// `torchkit ARGS`, whatever its exit code.
fn torchkit(args: &[&str]) -> Run {
    TestCommand::new().args(args).run()
}

/// `torchkit ARGS`, which must succeed.
fn ok(args: &[&str]) -> Run {
    TestCommand::new().args(args).assert_ok()
}

#[test]
fn lock_check_and_locked_build() {
    require_daemon();
    let addr = format!("docker://{}", docker_socket().display());
    let tmp = tempfile::tempdir().unwrap();
    let dir = tmp.path().join("small");
    copy_dir(
        &Path::new(env!("CARGO_MANIFEST_DIR")).join("tests/e2e-lock/small"),
        &dir,
    );
    let d = dir.to_str().unwrap();

    // lock --check without a lock: fails and says how to make one.
    let o = torchkit(&["lock", d, "--check"]);
    assert_eq!(o.code, Some(1), "{}", o.describe());
    assert!(o.stderr.contains("there is no"), "{}", o.stderr);

    // lock: one solve on the daemon, a lock with hashes and the registry's digest.
    let o = ok(&[
        "lock",
        d,
        "--addr",
        &addr,
        "--ca-bundle",
        HOST_CA,
        "--progress",
        "plain",
    ]);
    assert!(o.stdout.is_empty(), "stdout is for data only: {}", o.stdout);
    // The run's two execs, as its plan names them (tests/golden/quickstart/lock/).
    for step in [
        "[torchkit lock 2/3] apt: apt-get install -s jq",
        "[torchkit lock 3/3] pip: pip install --dry-run --report packaging==24.1 -r requirements.txt",
    ] {
        assert!(o.stderr.contains(step), "{step}: {}", o.stderr);
    }
    let text = std::fs::read_to_string(dir.join("torchkit.lock")).unwrap();
    let lock = Lock::parse(&text, "torchkit.lock").unwrap();
    let digest = registry_digest(
        "127.0.0.1:5000",
        "pytorch/pytorch",
        "2.8.0-cuda12.8-cudnn9-runtime",
    )
    .expect("the stand-in is in the registry");
    assert_eq!(lock.base.digest, digest);
    assert_eq!(
        lock.base.reference,
        "docker.io/pytorch/pytorch:2.8.0-cuda12.8-cudnn9-runtime"
    );
    let py: Vec<(&str, &str)> = lock
        .python
        .iter()
        .map(|p| (p.name.as_str(), p.version.as_str()))
        .collect();
    assert_eq!(py, [("packaging", "24.1"), ("six", "1.16.0")]);
    for p in &lock.python {
        assert!(
            p.hashes
                .iter()
                .any(|h| h.len() == 71 && h.starts_with("sha256:")),
            "{p:?}"
        );
        assert!(
            p.url.as_deref().is_some_and(|u| u.starts_with("https://")),
            "{p:?}"
        );
    }
    let jq = lock
        .apt
        .iter()
        .find(|a| a.name == "jq")
        .expect("jq is locked");
    assert!(
        lock.apt.iter().any(|a| a.name == "libjq1"),
        "dependencies are locked too: {:?}",
        lock.apt
    );

    // --check passes on the fresh lock...
    ok(&["lock", d, "--check"]);
    // ...and fails, naming the change, once the requirements change.
    std::fs::write(dir.join("requirements.txt"), "six==1.17.0\n").unwrap();
    let o = torchkit(&["lock", d, "--check"]);
    assert_eq!(o.code, Some(1), "{}", o.describe());
    assert!(
        o.stderr
            .contains("python.requirements changed since the lock was made"),
        "{}",
        o.stderr
    );
    std::fs::write(dir.join("requirements.txt"), "six==1.16.0\n").unwrap();

    // A --locked build installs exactly the locked set.
    let o = ok(&[
        "build",
        d,
        "--locked",
        "--addr",
        &addr,
        "--ca-bundle",
        HOST_CA,
        "-t",
        IMAGE,
        "--progress",
        "plain",
    ]);
    assert!(
        o.stderr
            .contains("pip: pip install --require-hashes -r torchkit.lock (2 packages)"),
        "{}",
        o.stderr
    );
    assert!(
        o.stderr.contains(&format!("@{digest}")),
        "the base is pinned: {}",
        o.stderr
    );
    let stdout = docker(&[
        "run",
        "--rm",
        IMAGE,
        "sh",
        "-c",
        "python -c 'import six, packaging; print(six.__version__, packaging.__version__)'; dpkg-query -W -f '${Version}\\n' jq",
    ]);
    assert_eq!(stdout, format!("1.16.0 24.1\n{}\n", jq.version));

    // The # syntax= frontend installs the same lock (it reads torchkit.lock beside the
    // spec); `--frontend --locked` asks it to insist on a current one.
    let o = torchkit(&[
        "build",
        d,
        "--locked",
        "--frontend",
        "localhost:5000/torchkit/frontend:dev",
        "--addr",
        &addr,
        "--ca-bundle",
        HOST_CA,
        "-t",
        "torchkit-e2e/lock-frontend:dev",
        "--progress",
        "plain",
    ]);
    assert!(
        o.success(),
        "build --frontend --locked failed (run scripts/frontend-image.sh if the image is missing):\n{}",
        o.describe()
    );
    assert!(
        o.stderr
            .contains("pip: pip install --require-hashes -r torchkit.lock (2 packages)"),
        "{}",
        o.stderr
    );
    let stdout = docker(&[
        "run",
        "--rm",
        "torchkit-e2e/lock-frontend:dev",
        "python",
        "-c",
        "import six, packaging; print(six.__version__, packaging.__version__)",
    ]);
    assert_eq!(stdout, "1.16.0 24.1\n");

    // A spec change since the lock fails --locked before building, naming it.
    let spec = std::fs::read_to_string(dir.join("torchkit.toml")).unwrap();
    std::fs::write(
        dir.join("torchkit.toml"),
        spec.replace("[\"jq\"]", "[\"jq\", \"tree\"]"),
    )
    .unwrap();
    let o = torchkit(&[
        "build",
        d,
        "--locked",
        "--addr",
        &addr,
        "--progress",
        "plain",
    ]);
    assert_eq!(o.code, Some(1), "{}", o.describe());
    assert!(
        o.stderr
            .contains("system.apt changed since the lock was made"),
        "{}",
        o.stderr
    );
    assert!(
        !o.stderr.contains("[torchkit 1/"),
        "nothing was built: {}",
        o.stderr
    );
}
