//! End-to-end tests of the verify stage against the real daemon of the test environment:
//! `torchkit build` checks the built image against the resolution (the stand-ins carry a
//! small fake `torch`, scripts/fake-torch.py), runs `[verify] run` in it, and exports
//! nothing when either fails. Stand-ins that are deliberately wrong replace the base through
//! `--build-context`, so each failure message is seen. They FAIL, never skip, when the
//! daemon is missing: run `scripts/test-env.sh up` first.

use std::path::{Path, PathBuf};

mod support;
use support::{docker_socket, require_daemon, serial, tail, tar_list, Run, TestCommand};

/// The base every spec here resolves to.
const BASE: &str = "pytorch/pytorch:2.8.0-cuda12.8-cudnn9-runtime";
/// The registry of the test environment, where the wrong stand-ins are.
const REGISTRY: &str = "127.0.0.1:5000";

fn spec(name: &str) -> PathBuf {
    Path::new(env!("CARGO_MANIFEST_DIR"))
        .join("tests/e2e")
        .join(name)
}

fn addr() -> String {
    format!("docker://{}", docker_socket().display())
}

/// A fresh directory for one test's outputs.
fn out_dir(test: &str) -> PathBuf {
    let d = std::env::temp_dir().join(format!("torchkit-e2e-{}/{test}", std::process::id()));
    std::fs::create_dir_all(&d).unwrap();
    d
}

/// `torchkit build SPEC --addr … --progress plain` plus `extra`, writing a tar of the image
/// and the verify report into `out`.
fn build(spec_dir: &Path, out: &Path, extra: &[&str]) -> Run {
    let tar = format!("type=tar,dest={}", out.join("out.tar").display());
    let report = out.join("report.json");
    TestCommand::new()
        .args(["build", spec_dir.to_str().unwrap(), "--addr", &addr()])
        .args(["--progress", "plain", "-o", &tar])
        .args(["--verify-report", report.to_str().unwrap()])
        .args(extra)
        .run()
}

/// `--build-context` replacing the base with a stand-in variant of the registry.
fn on_variant(variant: &str) -> String {
    format!("{BASE}=docker-image://{REGISTRY}/torchkit-test/pytorch:{variant}")
}

fn report(out: &Path) -> serde_json::Value {
    let p = out.join("report.json");
    let bytes = std::fs::read(&p).unwrap_or_else(|e| panic!("{}: {e}", p.display()));
    serde_json::from_slice(&bytes).unwrap()
}

fn check<'a>(report: &'a serde_json::Value, name: &str) -> &'a serde_json::Value {
    report["checks"]
        .as_array()
        .unwrap()
        .iter()
        .find(|c| c["name"] == name)
        .unwrap_or_else(|| panic!("no check {name} in {report}"))
}

#[test]
fn a_right_image_passes_every_check_and_its_tests_and_exports() {
    require_daemon();
    let _cache = serial::shared();
    let out = out_dir("verify-pass");
    // The stage re-runs (as `--no-cache-filter` does to any step), so its output is seen.
    let r = build(&spec("verify"), &out, &["--no-cache-filter", "verify"]);
    assert!(r.success(), "{}", r.describe());
    let rep = report(&out);
    assert_eq!(rep["ok"], true, "{rep}");
    for name in [
        "torch.import",
        "torch.version",
        "torch.cuda",
        "torch.cudnn",
        "arch.9.0",
        "arch.12.0",
        "torchvision",
        "torchaudio",
        "python",
        "pip.check",
    ] {
        assert_eq!(check(&rep, name)["ok"], true, "{name}: {rep}");
    }
    assert_eq!(check(&rep, "torch.version")["found"], "2.8.0+cu128");
    // The checks print a line each in the progress; the tests' output streams there too.
    assert!(
        r.stderr.contains("ok   torch.version: 2.8.0+cu128"),
        "{}",
        tail(&r.stderr, 60)
    );
    assert!(
        r.stderr.contains("[torchkit verify 1/6]"),
        "{}",
        tail(&r.stderr, 60)
    );
    assert!(
        r.stderr.contains("test_torch_is_the_resolved_release"),
        "{}",
        tail(&r.stderr, 60)
    );
    // The image was exported, without the tests the stage mounted.
    let files = tar_list(&out.join("out.tar"));
    assert!(
        files.iter().any(|f| f == "workspace/app/main.py"),
        "{files:?}"
    );
    assert!(
        !files.iter().any(|f| f.starts_with("workspace/tests")),
        "{files:?}"
    );
    assert!(
        !files.iter().any(|f| f.contains("run/torchkit")),
        "{files:?}"
    );
}

#[test]
fn each_wrong_image_fails_naming_the_check_and_exports_nothing() {
    require_daemon();
    let _cache = serial::shared();
    // (stand-in variant, failed check, expected, found, words of the fix)
    let cases = [
        (
            "2.8.0-wrong-cuda",
            "torch.cuda",
            "12.8",
            "12.6",
            "replaced torch",
        ),
        (
            "2.8.0-cpu-torch",
            "torch.version",
            "2.8.0+cu128",
            "2.8.0+cpu",
            "replaced torch",
        ),
        (
            "2.8.0-no-sm120",
            "arch.12.0",
            "sm_120",
            "sm_90",
            "no kernels for RTX 5090",
        ),
        (
            "2.8.0-broken-deps",
            "pip.check",
            "",
            "torchvision",
            "pip check is clean",
        ),
    ];
    for (variant, name, expected, found, fix) in cases {
        let out = out_dir(&format!("verify-{variant}"));
        let r = build(
            &spec("verify"),
            &out,
            &[
                "--no-cache-filter",
                "verify",
                "--build-context",
                &on_variant(variant),
            ],
        );
        let text = format!("{variant}:\n{}", tail(&r.stderr, 40));
        assert!(!r.success(), "{text}");
        assert!(r.stderr.contains("checks failed"), "{text}");
        let line = r
            .stderr
            .lines()
            .find(|l| l.trim_start().starts_with(&format!("{name}: expected")))
            .unwrap_or_else(|| panic!("no line for {name} in the error\n{text}"));
        assert!(
            line.contains(expected) && line.contains(found),
            "{line}\n{text}"
        );
        assert!(r.stderr.contains(fix), "{fix}\n{text}");
        // The FAIL line of the check is in the progress too.
        assert!(r.stderr.contains(&format!("FAIL {name}:")), "{text}");
        // Nothing exported; the report says what failed.
        assert!(!out.join("out.tar").exists(), "{text}");
        let rep = report(&out);
        assert_eq!(rep["ok"], false, "{variant}");
        assert_eq!(check(&rep, name)["ok"], false, "{variant}: {rep}");
    }
}

#[test]
fn skip_verify_builds_a_wrong_image_and_says_so() {
    require_daemon();
    let _cache = serial::shared();
    let out = out_dir("verify-skip");
    let r = build(
        &spec("verify"),
        &out,
        &[
            "--skip-verify",
            "--build-context",
            &on_variant("2.8.0-wrong-cuda"),
        ],
    );
    assert!(r.success(), "{}", r.describe());
    assert!(
        r.stderr
            .contains("[torchkit verify] skipped: --skip-verify (TORCHKIT_SKIP_VERIFY)"),
        "{}",
        tail(&r.stderr, 30)
    );
    assert!(
        !r.stderr.contains("[torchkit verify 1/"),
        "{}",
        tail(&r.stderr, 30)
    );
    assert!(out.join("out.tar").exists());
    // Nothing verified, nothing reported.
    assert!(!out.join("report.json").exists());
}

#[test]
fn a_failing_project_test_fails_the_build_and_exports_nothing() {
    require_daemon();
    let _cache = serial::shared();
    let out = out_dir("verify-test-fails");
    let r = build(&spec("verify-fail"), &out, &["--no-cache-filter", "verify"]);
    let text = tail(&r.stderr, 40);
    assert!(!r.success(), "{text}");
    assert!(r.stderr.contains("FAILED (failures=1)"), "{text}");
    assert!(r.stderr.contains("verify:"), "{text}");
    assert!(r.stderr.contains("[verify] run"), "{text}");
    assert!(!out.join("out.tar").exists(), "{text}");
    // The checks passed: their report is written.
    assert_eq!(report(&out)["ok"], true);
}

#[test]
fn target_verify_exports_the_report_directory() {
    require_daemon();
    let _cache = serial::shared();
    let out = out_dir("verify-target");
    let dest = out.join("stage");
    let r = TestCommand::new()
        .args(["build", spec("verify").to_str().unwrap(), "--addr", &addr()])
        .args(["--progress", "plain", "--target", "verify"])
        .args(["-o", &format!("type=local,dest={}", dest.display())])
        .run();
    assert!(r.success(), "{}", r.describe());
    let rep: serde_json::Value =
        serde_json::from_slice(&std::fs::read(dest.join("report.json")).unwrap()).unwrap();
    assert_eq!(rep["ok"], true, "{rep}");
}

/// `--gpus` attaches the GPUs as CDI devices: a BuildKit older than v0.20 is refused before
/// the build with the release that has them; a newer one is asked for the device, which
/// this machine (no GPU, no CDI spec) does not have: the build fails, never silently
/// without the GPU.
#[test]
fn gpus_need_cdi_and_are_never_dropped_silently() {
    require_daemon();
    let _cache = serial::shared();
    let out = out_dir("verify-gpus");
    let r = build(&spec("verify"), &out, &["--gpus", "all"]);
    let text = tail(&r.stderr, 30);
    assert!(!r.success(), "{text}");
    assert!(!out.join("out.tar").exists(), "{text}");
    // Docker 28.0 embeds BuildKit v0.20, the first with CDI devices.
    let docker = support::docker_server_version();
    let major: u32 = docker.split('.').next().unwrap().parse().unwrap();
    if major >= 28 {
        assert!(r.stderr.contains("nvidia.com/gpu"), "{text}");
        assert!(r.stderr.contains("nvidia-ctk cdi generate"), "{text}");
    } else {
        assert!(r.stderr.contains("exec.meta.cdi"), "{text}");
        assert!(r.stderr.contains("v0.20.0"), "{text}");
    }
}

/// With the test daemon's CDI device (scripts/test-env.sh CDI=1, Docker 28: sid's engine),
/// which makes the stand-in's fake torch see one H100, the GPU checks run in the build: CUDA
/// available, the device's compute capability one of `[target]`'s, a matmul on it.
#[test]
fn an_attached_device_is_checked_in_the_build() {
    require_daemon();
    let Ok(device) = std::env::var("TK_TEST_CDI_DEVICE") else {
        let docker = support::docker_server_version();
        let major: u32 = docker.split('.').next().unwrap().parse().unwrap();
        assert!(
            major < 28,
            "Docker {docker} has CDI: start it with CDI=1 (scripts/test-env.sh) so that this test has its device"
        );
        return;
    };
    let _cache = serial::shared();
    let out = out_dir("verify-cdi");
    let r = build(
        &spec("verify"),
        &out,
        &["--gpus", &device, "--no-cache-filter", "verify"],
    );
    assert!(r.success(), "{}", r.describe());
    let rep = report(&out);
    assert_eq!(rep["ok"], true, "{rep}");
    assert_eq!(check(&rep, "cuda.available")["ok"], true, "{rep}");
    assert_eq!(
        check(&rep, "device.0")["found"],
        "NVIDIA H100 80GB HBM3 cc 9.0",
        "{rep}"
    );
    assert_eq!(check(&rep, "matmul.0")["ok"], true, "{rep}");
    assert!(r.stderr.contains("GPU attached"), "{}", tail(&r.stderr, 40));

    // A GPU the spec does not target (an A100, cc 8.0) fails the build, naming it.
    let a100 = device.replace("=h100", "=a100");
    let out = out_dir("verify-cdi-a100");
    let r = build(&spec("verify"), &out, &["--gpus", &a100]);
    let text = tail(&r.stderr, 40);
    assert!(!r.success(), "{text}");
    assert!(r.stderr.contains("device.0: expected"), "{text}");
    assert!(r.stderr.contains("NVIDIA A100-SXM4-80GB cc 8.0"), "{text}");
    assert!(!out.join("out.tar").exists(), "{text}");
}

/// `torchkit llb --target verify` is the stage as raw LLB, as `buildctl build` would send it
/// (solved here through the Control API with no frontend): on a wrong image the gate exec
/// fails the solve; on a right one it succeeds.
#[tokio::test]
async fn raw_llb_of_the_verify_target_fails_on_a_wrong_image() {
    use prost::Message as _;
    use torchkit::buildkit::client::{BuildOptions, Client, SolveOptions};
    use torchkit::buildkit::progress::ProgressMode;
    use torchkit::buildkit::transport::{Address, ConnectOptions};
    require_daemon();
    let _cache = serial::shared();
    let dir = tempfile::tempdir().unwrap();
    let solve = |base: Option<String>| {
        let spec = dir.path().join("torchkit.toml");
        let mut text = "[torch]\nversion = \"2.8.0\"\ncuda = \"12.8\"\n".to_string();
        if let Some(b) = &base {
            text.push_str(&format!("[base]\nimage = \"{b}\"\n"));
        }
        std::fs::write(&spec, text).unwrap();
        let out = std::process::Command::new(env!("CARGO_BIN_EXE_torchkit"))
            .args(["llb", spec.to_str().unwrap(), "--target", "verify"])
            .env_remove("TORCHKIT_SKIP_VERIFY")
            .output()
            .unwrap();
        assert!(
            out.status.success(),
            "{}",
            String::from_utf8_lossy(&out.stderr)
        );
        torchkit::llb::pb::Definition::decode(out.stdout.as_slice()).unwrap()
    };
    let client = Client::connect_to(Address::Docker(docker_socket()), &ConnectOptions::default())
        .await
        .expect("the test daemon");
    let run = |def: torchkit::llb::pb::Definition| {
        let client = &client;
        async move {
            client
                .build(
                    BuildOptions {
                        progress: ProgressMode::Quiet,
                        cancel_on_ctrl_c: false,
                        ..BuildOptions::default()
                    },
                    |bridge| async move {
                        let r = bridge
                            .solve(
                                Some(def),
                                SolveOptions {
                                    evaluate: true,
                                    ..Default::default()
                                },
                            )
                            .await?;
                        bridge
                            .return_result(Some(r), std::collections::BTreeMap::new())
                            .await?;
                        Ok::<_, Box<dyn std::error::Error + Send + Sync>>(())
                    },
                )
                .await
        }
    };
    let wrong = solve(Some(format!(
        "{REGISTRY}/torchkit-test/pytorch:2.8.0-wrong-cuda"
    )));
    let e = run(wrong).await.unwrap_err().to_string();
    assert!(e.contains("--check"), "the gate fails the solve: {e}");
    run(solve(None)).await.expect("a right image passes");
}
