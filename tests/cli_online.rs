//! `--online` without a daemon: `torchkit resolve` and `plan` for a torch release newer than
//! the matrix, against a local stand-in for PyPI's JSON API and for a registry's tag list
//! (tests/fixtures/online, served by `support::http::FileServer`; the spec's `[base] mirror`
//! points the tag list at it). Never the internet.

mod support;
use std::path::{Path, PathBuf};

use support::http::FileServer;
use support::TestCommand;

fn fixtures() -> PathBuf {
    Path::new(env!("CARGO_MANIFEST_DIR")).join("tests/fixtures/online")
}

/// A spec for torch `torch` whose Docker Hub names go to `server` (`[base] mirror`).
fn spec(dir: &Path, server: &FileServer, torch: &str, online: bool) -> PathBuf {
    let mirror = server.url.trim_start_matches("http://");
    let path = dir.join("torchkit.toml");
    let online = if online { "online = true\n" } else { "" };
    std::fs::write(
        &path,
        format!("[torch]\nversion = \"{torch}\"\n{online}\n[base]\nmirror = \"{mirror}\"\n"),
    )
    .unwrap();
    path
}

fn torchkit(server: &FileServer) -> TestCommand {
    let mut c = TestCommand::new();
    c.env("TORCHKIT_PYPI_URL", &server.url);
    c
}

#[test]
fn resolve_online_answers_the_tag_that_exists_and_says_what_was_not_checked() {
    let server = FileServer::start(&fixtures());
    let dir = tempfile::tempdir().unwrap();
    let spec = spec(dir.path(), &server, "2.16.0", true);
    let run = torchkit(&server)
        .args(["resolve", spec.to_str().unwrap(), "--driver", "580.159.04"])
        .args(["--gpu", "9.0", "--json"])
        .assert_ok();
    let j = run.json();
    // Driver 580 meets CUDA 13.0's floor (580.65.06) but not 13.2's (595.x): the same
    // rule as for a known release prefers strict compatibility over the PyPI default.
    assert_eq!(
        j["image"], "docker.io/pytorch/pytorch:2.16.0-cuda13.0-cudnn9-runtime",
        "{j:#}"
    );
    assert_eq!(j["torch"], "2.16.0");
    assert_eq!(j["cuda"], "13.0");
    assert_eq!(j["min_driver"], "580.65.06");
    let rejected = j["rejected"].to_string();
    assert!(
        rejected.contains("minor-version compatibility"),
        "{rejected}"
    );
    // torchvision 0.30.0 declares torch==2.16.0; torchaudio 2.11.1 declares torch>=2.11.
    assert_eq!(j["torchvision"], "0.30.0");
    assert_eq!(j["torchaudio"], "2.11.1");
    assert_eq!(j["gpus"][0]["verdict"], "native");
    let reasons = j["reasons"].to_string();
    assert!(
        reasons.contains(
            "torch 2.16.0 is newer than the matrix (gathered 2026-12-03): looked up online"
        ),
        "{reasons}"
    );
    assert!(reasons.contains("on PyPI since 2027-01-20"), "{reasons}");
    assert!(
        reasons.contains("its PyPI wheel pins CUDA 13.2"),
        "{reasons}"
    );
    let first_warning = j["warnings"][0].as_str().unwrap();
    assert!(
        first_warning.contains("these facts were not checked: the cu130 arch list"),
        "{first_warning}"
    );
    // What was asked, in order: PyPI for torch, the registry's tags, the companions.
    let asked = server.asked();
    assert_eq!(asked[0], "/pypi/torch/2.16.0/json", "{asked:?}");
    assert!(
        asked.contains(&"/v2/pytorch/pytorch/tags/list".to_string()),
        "{asked:?}"
    );
    assert!(
        asked.contains(&"/pypi/torchvision/0.30.0/json".to_string()),
        "{asked:?}"
    );
}

#[test]
fn online_comes_from_the_flag_or_the_environment_too() {
    let server = FileServer::start(&fixtures());
    let dir = tempfile::tempdir().unwrap();
    let spec = spec(dir.path(), &server, "2.16.0", false);
    let spec = spec.to_str().unwrap();
    // Off: refused, and the hint names --online.
    let err = torchkit(&server).args(["resolve", spec]).assert_err();
    assert!(
        err.contains("torch 2.16.0 is newer than this torchkit's matrix"),
        "{err}"
    );
    assert!(
        err.contains("hint: look the release up with --online"),
        "{err}"
    );
    assert!(
        server.asked().is_empty(),
        "nothing is asked without --online"
    );
    for (flag, env) in [
        (Some("--online"), None),
        (None, Some("1")),
        (Some("--online=yes"), None),
    ] {
        let mut c = torchkit(&server);
        c.args(["resolve", spec, "--json"]);
        if let Some(f) = flag {
            c.arg(f);
        }
        if let Some(e) = env {
            c.env("TORCHKIT_ONLINE", e);
        }
        let j = c.assert_ok().json();
        assert_eq!(j["cuda"], "13.2", "{flag:?} {env:?}");
    }
    // --online=false wins over the spec's `online = true`.
    let on = self::spec(dir.path(), &server, "2.16.0", true);
    let err = torchkit(&server)
        .args(["resolve", on.to_str().unwrap(), "--online=false"])
        .assert_err();
    assert!(err.contains("newer than this torchkit's matrix"), "{err}");
    // A bad value is a usage error (exit 2, as clap's), with the vocabulary's hint.
    let err = torchkit(&server)
        .args(["resolve", spec, "--online=maybe"])
        .assert_exit_code(2);
    assert!(err.contains("`maybe` is not on or off"), "{err}");
    assert!(err.contains("hint: write true or false"), "{err}");
}

#[test]
fn plan_online_builds_on_the_mirrored_tag() {
    let server = FileServer::start(&fixtures());
    let dir = tempfile::tempdir().unwrap();
    let spec = spec(dir.path(), &server, "2.16.0", true);
    let j = torchkit(&server)
        .args([
            "plan",
            spec.to_str().unwrap(),
            "--json",
            "--flavor",
            "devel",
        ])
        .assert_ok()
        .json();
    let mirror = server.url.trim_start_matches("http://");
    let plan = j.to_string();
    assert!(
        plan.contains(&format!(
            "{mirror}/pytorch/pytorch:2.16.0-cuda13.2-cudnn9-devel"
        )),
        "{j:#}"
    );
}

#[test]
fn a_release_pypi_does_not_have_or_an_unreachable_pypi_fails_with_the_url() {
    let server = FileServer::start(&fixtures());
    let dir = tempfile::tempdir().unwrap();
    let spec = spec(dir.path(), &server, "2.17.0", true);
    let err = torchkit(&server)
        .args(["resolve", spec.to_str().unwrap()])
        .assert_err();
    assert!(
        err.contains(&format!(
            "error: torch 2.17.0 is not on PyPI ({}/pypi/torch/2.17.0/json answered 404)",
            server.url
        )),
        "{err}"
    );
    assert!(err.contains("hint: check the version"), "{err}");

    // Nothing listens on port 1.
    let spec = self::spec(dir.path(), &server, "2.16.0", true);
    let err = TestCommand::new()
        .env("TORCHKIT_PYPI_URL", "http://127.0.0.1:1")
        .args(["resolve", spec.to_str().unwrap()])
        .assert_err();
    assert!(
        err.contains("looking up torch 2.16.0 online: http://127.0.0.1:1/pypi/torch/2.16.0/json: cannot connect"),
        "{err}"
    );
}

#[test]
fn no_tag_for_the_flavor_is_an_error_at_the_spec_line() {
    let server = FileServer::start(&fixtures());
    let dir = tempfile::tempdir().unwrap();
    let spec = spec(dir.path(), &server, "2.16.0", true);
    // The registry has a 13.0 runtime tag but no 13.0 devel tag.
    let err = torchkit(&server)
        .args([
            "resolve",
            spec.to_str().unwrap(),
            "--cuda",
            "13.0",
            "--flavor",
            "devel",
        ])
        .assert_err();
    assert!(err.contains("13.0"), "{err}");
}
