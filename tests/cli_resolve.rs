//! `torchkit resolve` end to end: the built binary, its stdout, stderr and exit code.

mod support;
use support::TestCommand;

/// `torchkit resolve ARGS`.
fn resolve(args: &[&str]) -> TestCommand {
    let mut c = TestCommand::new();
    c.arg("resolve").args(args);
    c
}

#[test]
fn json_is_one_object_with_the_full_image_reference() {
    let v = resolve(&[
        "--torch",
        "2.8.0",
        "--driver",
        "550.54.14",
        "--gpu",
        "H200",
        "--json",
    ])
    .assert_ok()
    .json();
    assert_eq!(
        v["image"],
        "docker.io/pytorch/pytorch:2.8.0-cuda12.8-cudnn9-runtime"
    );
    assert_eq!(v["image_ref"]["repository"], "pytorch/pytorch");
    assert_eq!(v["cuda"], "12.8");
    assert_eq!(v["cudnn"], "9");
    assert_eq!(v["torchvision"], "0.23.0");
    assert_eq!(v["index_url"], "https://download.pytorch.org/whl/cu128");
    assert_eq!(v["gpus"][0]["verdict"], "native");
    let warnings = v["warnings"].as_array().unwrap();
    assert!(warnings
        .iter()
        .any(|w| w.as_str().unwrap().contains("minor-version compatibility")));
    assert_eq!(v["rejected"].as_array().unwrap().len(), 2);
    assert!(!v["reasons"].as_array().unwrap().is_empty());
}

#[test]
fn human_report_goes_to_stdout() {
    let s = resolve(&[
        "--torch",
        "2.11.0",
        "--driver",
        "580.159.04",
        "--gpu",
        "NVIDIA H200",
        "--flavor",
        "devel",
    ])
    .stdout();
    assert!(
        s.contains("docker.io/pytorch/pytorch:2.11.0-cuda13.0-cudnn9-devel"),
        "{s}"
    );
    assert!(s.contains("NVIDIA H200 (9.0): native"), "{s}");
    for section in ["why:", "rejected:", "min driver", "index"] {
        assert!(s.contains(section), "{section} missing:\n{s}");
    }
}

#[test]
fn impossible_request_exits_non_zero_with_a_hint() {
    let out = resolve(&["--torch", "2.8.0", "--cuda", "11.8"]).run();
    assert_eq!(out.code, Some(1), "{}", out.describe());
    assert!(out.stdout.is_empty(), "nothing on stdout: {}", out.stdout);
    let err = out.stderr;
    assert!(
        err.contains(
            "error: torch 2.8.0 ships CUDA 12.6, 12.8, 12.9; 2.7.1 is the last release with 11.8"
        ),
        "{err}"
    );
    assert!(
        err.contains(
            "hint: use torch 2.7.1 with CUDA 11.8 (pytorch/pytorch:2.7.1-cuda11.8-cudnn9-runtime)"
        ),
        "{err}"
    );
}

#[test]
fn torch_is_required_without_a_spec() {
    // A usage error (clap's exit code 2) that names the missing flag.
    let err = resolve(&["--cuda", "12.8"]).assert_exit_code(2);
    assert!(
        err.contains("the following required arguments were not provided")
            && err.contains("--torch <V>"),
        "{err}"
    );
}

#[test]
fn spec_values_are_read_and_flags_override_them() {
    let dir = tempfile::tempdir().unwrap();
    let path = dir.path().join("torchkit.toml");
    std::fs::write(
        &path,
        "[torch]\nversion = \"2.8.0\"\ncuda = \"11.8\"\n\n[target]\ngpus = [\"V100\"]\n",
    )
    .unwrap();
    let spec = path.to_str().unwrap();
    // From the spec alone: refused, and the error points into the file.
    let err = resolve(&[spec]).assert_err();
    assert!(err.contains("torchkit.toml"), "{err}");
    assert!(err.contains("2.7.1 is the last release with 11.8"), "{err}");
    assert!(err.contains("hint:"), "{err}");
    // A flag overrides the spec's CUDA.
    let v = resolve(&[spec, "--cuda", "auto", "--json"])
        .assert_ok()
        .json();
    assert_eq!(
        v["image"],
        "docker.io/pytorch/pytorch:2.8.0-cuda12.8-cudnn9-runtime"
    );
    assert_eq!(v["gpus"][0]["gpu"], "V100");
}

/// The date the compiled-in matrix's facts were gathered.
fn gathered() -> &'static str {
    &torchkit::matrix::matrix().gathered
}

#[test]
fn torch_2_15_on_the_h200_with_driver_580_answers_the_cu130_tag() {
    let v = resolve(&[
        "--torch",
        "2.15.0",
        "--driver",
        "580.159.04",
        "--gpu",
        "9.0",
        "--json",
    ])
    .assert_ok()
    .json();
    // cu130 passes strictly on 580; cu132, the PyPI default, needs 595.45.04 (or MVC).
    assert_eq!(
        v["image"],
        "docker.io/pytorch/pytorch:2.15.0-cuda13.0-cudnn9-runtime"
    );
    assert_eq!(v["cuda"], "13.0");
    assert_eq!(v["min_driver"], "580.65.06");
    assert_eq!(v["torchvision"], "0.29.2");
    assert_eq!(v["torchaudio"], "2.11.1");
    assert_eq!(v["gpus"][0]["verdict"], "native");
    // No public reference to a 2.15.0 tag was found: the answer says so.
    let warnings = v["warnings"].as_array().unwrap();
    assert!(warnings
        .iter()
        .any(|w| w.as_str().unwrap().contains("rests on weak evidence")));
    assert_eq!(v["matrix"]["gathered"], gathered());
    assert_eq!(v["matrix"]["oldest"], "1.13.0");
    assert_eq!(v["matrix"]["newest"], "2.15.0");
}

#[test]
fn version_and_report_carry_the_matrix_date() {
    let date = gathered();
    assert!(
        date.len() == 10 && date.as_bytes()[4] == b'-' && date.as_bytes()[7] == b'-',
        "{date}"
    );
    let version = TestCommand::new().arg("--version").stdout();
    assert_eq!(
        version,
        format!("torchkit {} (matrix {date})\n", env!("CARGO_PKG_VERSION"))
    );
    let s = resolve(&["--torch", "2.15.0"]).stdout();
    assert!(
        s.contains(&format!("matrix       {date} (torch 1.13.0 to 2.15.0;")),
        "{s}"
    );
}

#[test]
fn a_torch_newer_than_the_matrix_names_the_newest_release_and_the_date() {
    let out = resolve(&["--torch", "2.16.0", "--driver", "580.159.04"]).run();
    assert_eq!(out.code, Some(1), "{}", out.describe());
    assert!(out.stdout.is_empty(), "{}", out.stdout);
    let err = out.stderr;
    assert!(
        err.contains(&format!(
            "error: torch 2.16.0 is newer than this torchkit's matrix: its newest release is 2.15.0 (facts gathered {})",
            gathered()
        )),
        "{err}"
    );
    assert!(
        err.contains(&format!(
            "hint: look the release up with --online (or `online = true` under [torch]), upgrade torchkit for a matrix gathered after {}, or use torch 2.15.0",
            gathered()
        )),
        "{err}"
    );
}

#[test]
fn strings_that_are_not_releases_name_the_accepted_form() {
    for (input, why) in [
        ("latest", "expected MAJOR.MINOR.PATCH (e.g. 2.15.0)"),
        ("2.15", "a release has three fields: 2.15's patches are 2.15.0 (pip reads torch==2.15 as 2.15.0)"),
        ("2.15.0a0", "pre-releases and development builds are not in the matrix (the final release is 2.15.0)"),
    ] {
        let err = resolve(&["--torch", input]).assert_err();
        assert!(
            err.contains(&format!("error: `{input}` is not a torch release: {why}")),
            "{err}"
        );
        assert!(
            err.contains("hint: give a torch release as MAJOR.MINOR.PATCH (e.g. 2.15.0); the newest this torchkit knows is 2.15.0 (matrix gathered"),
            "{err}"
        );
    }
}
