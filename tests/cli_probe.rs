//! `torchkit probe` end to end: the real binary on this host (with or without an NVIDIA
//! driver), and with stand-in `nvidia-smi` scripts on `PATH` that replay the H200 fixtures and
//! an R470 driver.

use std::path::{Path, PathBuf};

mod support;
use support::TestCommand;

const PROC_VERSION: &str = "/proc/driver/nvidia/version";

/// The stdout of a successful `torchkit ARGS`, with `PATH` replaced when `path` is given.
fn run(args: &[&str], path: Option<&std::ffi::OsStr>) -> String {
    let mut cmd = TestCommand::new();
    cmd.args(args);
    if let Some(p) = path {
        cmd.env("PATH", p);
    }
    cmd.stdout()
}

fn json(text: &str) -> serde_json::Value {
    assert_eq!(text.trim_end().lines().count(), 1, "one JSON line: {text}");
    serde_json::from_str(text).expect("JSON object")
}

fn on_path(program: &str) -> bool {
    std::env::var_os("PATH")
        .map(|p| std::env::split_paths(&p).any(|d| d.join(program).is_file()))
        .unwrap_or(false)
}

#[test]
fn probe_this_host() {
    let text = run(&["probe"], None);
    let v = json(&run(&["probe", "--json"], None));
    let no_driver = !Path::new(PROC_VERSION).exists() && !on_path("nvidia-smi");
    if no_driver {
        assert!(text.starts_with("No NVIDIA driver found.\n"), "{text}");
        assert!(
            text.contains("`nvidia-smi` is not on PATH")
                && text.contains("/proc/driver/nvidia/version does not exist"),
            "{text}"
        );
        assert_eq!(v["driver"], serde_json::Value::Null);
        assert_eq!(v["gpus"], serde_json::json!([]));
        assert!(
            v["notes"][0]
                .as_str()
                .unwrap()
                .starts_with("no NVIDIA driver found on this host"),
            "{v}"
        );
    } else if let Some(driver) = v["driver"].as_str() {
        // A GPU host: the driver shows in both forms.
        assert!(
            text.starts_with(&format!("driver:        {driver}")),
            "{text}"
        );
        assert!(v["gpus"].is_array() && v["sources"].as_array().is_some_and(|s| !s.is_empty()));
    } else {
        // nvidia-smi or the /proc file exists but did not yield a driver: it must say why.
        assert!(text.starts_with("No NVIDIA driver found.\n"), "{text}");
        assert!(v["notes"].as_array().is_some_and(|n| !n.is_empty()), "{v}");
    }
}

/// A directory holding an executable `nvidia-smi` shell script with `body`.
#[cfg(unix)]
fn fake_smi(body: &str) -> (tempfile::TempDir, std::ffi::OsString) {
    use std::os::unix::fs::PermissionsExt;
    let dir = tempfile::tempdir().unwrap();
    let smi = dir.path().join("nvidia-smi");
    std::fs::write(&smi, format!("#!/bin/sh\n{body}")).unwrap();
    std::fs::set_permissions(&smi, std::fs::Permissions::from_mode(0o755)).unwrap();
    let mut dirs: Vec<PathBuf> = vec![dir.path().to_owned()];
    dirs.extend(std::env::split_paths(
        &std::env::var_os("PATH").unwrap_or_default(),
    ));
    (dir, std::env::join_paths(dirs).unwrap())
}

/// Single-quote `s` for sh (the fixtures hold no single quotes).
#[cfg(unix)]
fn sq(s: &str) -> String {
    assert!(!s.contains('\''));
    format!("'{s}'")
}

#[cfg(unix)]
#[test]
fn probe_with_h200_fixture_nvidia_smi() {
    let csv = include_str!("fixtures/gpu/h200-driver-580/query-csv.txt");
    let banner = include_str!("fixtures/gpu/h200-driver-580/nvidia-smi.txt");
    let (_dir, path) = fake_smi(&format!(
        "case \"$1\" in\n\
         --query-gpu=driver_version,name,compute_cap) printf '%s' {} ;;\n\
         '') printf '%s' {} ;;\n\
         *) echo \"unexpected: $*\"; exit 2 ;;\n\
         esac\n",
        sq(csv),
        sq(banner)
    ));
    let v = json(&run(&["probe", "--json"], Some(&path)));
    // The fake nvidia-smi comes first on PATH; the host's /proc file (on a GPU host) may add a
    // kernel module and a disagreement note, but never replaces these.
    assert_eq!(v["driver"], "580.159.04");
    assert_eq!(v["cuda_driver_api"], "13.0");
    assert_eq!(
        v["gpus"],
        serde_json::json!([{"name": "NVIDIA H200", "compute_capability": "9.0"}])
    );
    assert_eq!(v["sources"][0], "query-gpu");
    assert_eq!(v["sources"][1], "smi-header");

    let text = run(&["probe"], Some(&path));
    assert!(
        text.starts_with("driver:        580.159.04 (from `nvidia-smi --query-gpu`)\n"),
        "{text}"
    );
    assert!(
        text.contains("GPU 0:         NVIDIA H200, compute capability 9.0\n"),
        "{text}"
    );
    assert!(text.contains("resolve with:  gpus = [\"9.0\"]\n"), "{text}");
}

#[cfg(unix)]
#[test]
fn probe_with_r470_nvidia_smi_falls_back_to_names() {
    let (_dir, path) = fake_smi(
        "case \"$1\" in\n\
         --query-gpu=driver_version,name,compute_cap) echo 'Field \"compute_cap\" is not a valid field to query.'; echo; exit 2 ;;\n\
         --query-gpu=driver_version,name) echo '470.182.03, Tesla V100-SXM2-16GB'; echo '470.182.03, Tesla T4' ;;\n\
         '') echo '| NVIDIA-SMI 470.182.03   Driver Version: 470.182.03   CUDA Version: 11.4     |' ;;\n\
         *) exit 2 ;;\n\
         esac\n",
    );
    let v = json(&run(&["probe", "--json"], Some(&path)));
    assert_eq!(v["driver"], "470.182.03");
    assert_eq!(v["cuda_driver_api"], "11.4");
    assert_eq!(
        v["gpus"],
        serde_json::json!([
            {"name": "Tesla V100-SXM2-16GB", "compute_capability": null},
            {"name": "Tesla T4", "compute_capability": null}
        ])
    );
    assert_eq!(v["sources"][0], "query-gpu-no-compute-cap");
    assert!(
        v["notes"][0]
            .as_str()
            .unwrap()
            .contains("compute capability is unknown"),
        "{v}"
    );

    let text = run(&["probe"], Some(&path));
    assert!(
        text.contains("GPU 1:         Tesla T4, compute capability unknown\n"),
        "{text}"
    );
    assert!(
        text.contains("note: this driver's nvidia-smi does not know"),
        "{text}"
    );
}

#[cfg(unix)]
#[test]
fn probe_with_broken_nvidia_smi_still_exits_zero() {
    let (_dir, path) = fake_smi(
        "echo \"NVIDIA-SMI has failed because it couldn't communicate with the NVIDIA driver.\"\nexit 9\n",
    );
    let text = run(&["probe"], Some(&path));
    assert!(
        text.contains("could not communicate with the NVIDIA driver"),
        "{text}"
    );
}
