//! `torchkit matrix refresh` end to end: the built binary reads recorded answers of PyPI,
//! the wheel indexes and a registry's tag list (tests/fixtures/refresh/, a fake torch 2.16.0
//! beside the real 2.15.0), over HTTP from a [`FileServer`] and from `--offline-from`, prints
//! the differences and, with `--write`, writes the refreshed matrix.

mod support;

use std::path::{Path, PathBuf};

use support::http::FileServer;
use support::TestCommand;
use torchkit::matrix::{Matrix, Version};

const TODAY: &str = "2027-01-21";

fn fixtures() -> PathBuf {
    Path::new(env!("CARGO_MANIFEST_DIR")).join("tests/fixtures/refresh")
}

fn matrix_toml() -> String {
    std::fs::read_to_string(Path::new(env!("CARGO_MANIFEST_DIR")).join("src/matrix/matrix.toml"))
        .unwrap()
}

/// `torchkit matrix refresh --today 2027-01-21 ARGS`.
fn refresh(args: &[&str]) -> TestCommand {
    let mut c = TestCommand::new();
    c.args(["matrix", "refresh", "--today", TODAY]).args(args);
    c
}

fn offline(args: &[&str]) -> TestCommand {
    let dir = fixtures();
    let mut c = refresh(&["--offline-from", dir.to_str().unwrap()]);
    c.args(args);
    c
}

fn check_diff(out: &str) {
    assert!(
        out.starts_with("matrix gathered 2026-12-03; sources read 2027-01-21\n"),
        "{out}"
    );
    assert!(
        out.contains("  2.16.0  uploaded 2027-01-20  (new release)"),
        "{out}"
    );
    assert!(
        out.contains("Requires-Python >=3.11; PyPI default CUDA 13.2"),
        "{out}"
    );
    assert!(
        out.contains("CUDA variants (wheel indexes): 13.0, 13.2\n"),
        "{out}"
    );
    assert!(out.contains("2.16.0-cuda13.2-cudnn9-runtime"), "{out}");
    assert!(
        out.contains("torchvision 0.30.0; torchaudio 2.11.1"),
        "{out}"
    );
    // The recorded indexes list every known release in its known variants: nothing else.
    assert!(!out.contains("CUDA variants, wheel indexes"), "{out}");
    assert!(!out.contains("2.16.0rc1"), "{out}");
}

#[test]
fn over_http_the_diff_names_the_new_release_its_variants_and_tags() {
    let server = FileServer::start(&fixtures());
    let host = server.url.trim_start_matches("http://").to_string();
    let index = format!("{}/whl", server.url);
    let images = format!("{host}/pytorch/pytorch");
    let run = refresh(&[
        "--pypi-url",
        &server.url,
        "--index-url",
        &index,
        "--images",
        &images,
    ])
    .run();
    assert!(run.success(), "{}", run.describe());
    check_diff(&run.stdout);
    let asked = server.asked();
    for p in [
        "/pypi/torch/json",
        "/pypi/torch/2.16.0/json",
        "/whl/cu132/torch/",
        "/whl/cu136/torch/",
        "/v2/pytorch/pytorch/tags/list",
        "/pypi/torchvision/0.30.0/json",
        "/pypi/torchaudio/json",
    ] {
        assert!(asked.iter().any(|a| a == p), "{p} not asked: {asked:?}");
    }
    // Releases the matrix knows are not asked for one by one.
    assert!(
        !asked.iter().any(|a| a == "/pypi/torch/2.15.0/json"),
        "{asked:?}"
    );
}

#[test]
fn offline_the_same_diff_and_json_and_exit_code() {
    let run = offline(&[]).run();
    assert!(run.success(), "{}", run.describe());
    check_diff(&run.stdout);

    let run = offline(&["--json"]).run();
    assert!(run.success(), "{}", run.describe());
    let j = run.json();
    assert_eq!(j["source"]["id"], "S40");
    assert_eq!(j["new"][0]["version"], "2.16.0");
    assert_eq!(j["new"][0]["variants"], serde_json::json!(["13.0", "13.2"]));
    assert_eq!(j["new"][0]["tags"].as_array().unwrap().len(), 4);

    // `--exit-code`: 1 when something differs, the diff printed all the same.
    let run = offline(&["--exit-code"]).run();
    assert_eq!(run.code, Some(1), "{}", run.describe());
    check_diff(&run.stdout);
}

#[test]
fn up_to_date_when_nothing_is_new() {
    let dir = tempfile::tempdir().unwrap();
    support::copy_dir(&fixtures(), dir.path());
    // PyPI and the registry as they were before 2.16.0.
    let p = dir.path().join("pypi/torch/json");
    let mut proj: serde_json::Value = serde_json::from_slice(&std::fs::read(&p).unwrap()).unwrap();
    proj["releases"].as_object_mut().unwrap().remove("2.16.0");
    std::fs::write(&p, proj.to_string()).unwrap();
    let t = dir.path().join("v2/pytorch/pytorch/tags/list");
    let mut tags: serde_json::Value = serde_json::from_slice(&std::fs::read(&t).unwrap()).unwrap();
    tags["tags"]
        .as_array_mut()
        .unwrap()
        .retain(|t| !t.as_str().unwrap().starts_with("2.16.0"));
    std::fs::write(&t, tags.to_string()).unwrap();
    for cu in ["cu130", "cu132"] {
        let f = dir.path().join(format!("whl/{cu}/torch/index.html"));
        let html = std::fs::read_to_string(&f).unwrap();
        let kept: Vec<&str> = html.lines().filter(|l| !l.contains("2.16.0")).collect();
        std::fs::write(&f, kept.join("\n")).unwrap();
    }
    let target = dir.path().join("matrix.toml");
    std::fs::write(&target, matrix_toml()).unwrap();
    let run = refresh(&[
        "--offline-from",
        dir.path().to_str().unwrap(),
        "--exit-code",
        "--write",
        target.to_str().unwrap(),
    ])
    .run();
    assert_eq!(run.code, Some(0), "{}", run.describe());
    assert_eq!(
        run.stdout,
        "matrix gathered 2026-12-03; sources read 2027-01-21\nup to date\n"
    );
    assert!(
        run.stderr.contains("nothing to write"),
        "{}",
        run.describe()
    );
    assert_eq!(std::fs::read_to_string(&target).unwrap(), matrix_toml());
    assert!(!dir.path().join("matrix.toml.bak").exists());
}

#[test]
fn write_adds_the_release_and_keeps_every_old_line() {
    let dir = tempfile::tempdir().unwrap();
    let target = dir.path().join("matrix.toml");
    let old = matrix_toml();
    std::fs::write(&target, &old).unwrap();
    let run = offline(&["--write", target.to_str().unwrap()]).run();
    assert!(run.success(), "{}", run.describe());
    check_diff(&run.stdout);
    assert!(run.stderr.contains("wrote "), "{}", run.describe());

    let new = std::fs::read_to_string(&target).unwrap();
    assert_eq!(
        std::fs::read_to_string(dir.path().join("matrix.toml.bak")).unwrap(),
        old
    );
    let m = Matrix::from_toml(&new).unwrap();
    assert!(m.problems().is_empty());
    assert_eq!(m.gathered, TODAY);
    let s40 = m.source("S40").unwrap();
    assert!(
        s40.title
            .starts_with("torchkit matrix refresh 2027-01-21: PyPI JSON API"),
        "{}",
        s40.title
    );
    let r = m.release_of(&Version::parse("2.16.0").unwrap()).unwrap();
    assert_eq!(r.sources, ["S40"]);
    assert!(r.image_python_uncertain);
    assert_eq!(r.arch_uncertain, ["cu130", "cu132"]);
    assert_eq!(r.torchvision["2.16.0"], "0.30.0");
    let tag = m.image("2.16.0-cuda13.2-cudnn9-runtime").unwrap();
    assert_eq!(tag.python, "3.11 (assumed; not observed)");

    // Every old line is there, in order; only `gathered` changed. The new lines are
    // inserted between them (a source, image rows) or appended (the [[torch]] entry).
    let new_lines: Vec<&str> = new.lines().collect();
    let mut at = 0;
    for l in old.lines() {
        let l = if l.starts_with("gathered = ") {
            "gathered = \"2027-01-21\""
        } else {
            l
        };
        match new_lines[at..].iter().position(|n| *n == l) {
            Some(i) => at += i + 1,
            None => panic!("{l:?} is gone or out of order"),
        }
    }
    let (head, tail) = new.split_once("\n[[torch]]\nversion = \"2.16\"\n").unwrap();
    assert!(old.starts_with(&head[..head.find("gathered = ").unwrap()]));
    assert!(tail.contains("[torch.arch_list]"), "{tail}");
    for comment in [
        "# * Versions are strings and compare numerically, field by field (\"570.124.06\" > \"570.26\").",
        "# Section 3.2: minor-version compatibility (MVC) floors per CUDA major [S1][S3].",
        "  # anywhere (UNVERIFIED), hence uncertain. Python inside: not in the sources.",
    ] {
        assert!(new.contains(comment), "{comment:?} is gone");
    }
}

#[test]
fn without_write_nothing_is_written() {
    let dir = tempfile::tempdir().unwrap();
    support::copy_dir(&fixtures(), dir.path());
    let before = std::fs::read_dir(dir.path()).unwrap().count();
    let run = refresh(&["--offline-from", dir.path().to_str().unwrap()]).run();
    assert!(run.success(), "{}", run.describe());
    assert_eq!(std::fs::read_dir(dir.path()).unwrap().count(), before);
}

#[test]
fn broken_json_or_no_server_fails_naming_the_url_and_writes_nothing() {
    let dir = tempfile::tempdir().unwrap();
    support::copy_dir(&fixtures(), dir.path());
    std::fs::write(dir.path().join("pypi/torch/2.16.0/json"), "{\"info\": ").unwrap();
    let target = dir.path().join("matrix.toml");
    std::fs::write(&target, matrix_toml()).unwrap();
    let run = refresh(&[
        "--offline-from",
        dir.path().to_str().unwrap(),
        "--write",
        target.to_str().unwrap(),
    ])
    .run();
    assert_eq!(run.code, Some(1), "{}", run.describe());
    assert!(
        run.stderr
            .contains("https://pypi.org/pypi/torch/2.16.0/json: not PyPI release JSON"),
        "{}",
        run.describe()
    );
    assert!(run.stdout.is_empty(), "{}", run.describe());
    assert_eq!(std::fs::read_to_string(&target).unwrap(), matrix_toml());
    assert!(!dir.path().join("matrix.toml.bak").exists());

    // Nothing listens on port 1.
    let run = refresh(&[
        "--pypi-url",
        "http://127.0.0.1:1",
        "--write",
        target.to_str().unwrap(),
    ])
    .run();
    assert_eq!(run.code, Some(1), "{}", run.describe());
    assert!(
        run.stderr.contains("http://127.0.0.1:1/pypi/torch/json"),
        "{}",
        run.describe()
    );
    assert_eq!(std::fs::read_to_string(&target).unwrap(), matrix_toml());
    assert!(!dir.path().join("matrix.toml.bak").exists());
}

#[test]
fn write_refuses_a_file_that_is_not_the_compiled_in_matrix() {
    let dir = tempfile::tempdir().unwrap();
    let target = dir.path().join("matrix.toml");
    std::fs::write(&target, "schema = 1\n").unwrap();
    let run = offline(&["--write", target.to_str().unwrap()]).run();
    assert_eq!(run.code, Some(1), "{}", run.describe());
    assert!(
        run.stderr.contains("is not the matrix compiled into"),
        "{}",
        run.describe()
    );
    assert_eq!(std::fs::read_to_string(&target).unwrap(), "schema = 1\n");
}
