//! The CLI on good and bad specs: `plan`, `llb`, and the error style (file:line:col, the
//! offending line, a hint, a non-zero exit, nothing on stdout).

use std::path::{Path, PathBuf};

mod support;
use support::{Run, TestCommand};

fn torchkit(args: &[&str]) -> Run {
    TestCommand::new().args(args).run()
}

fn example(name: &str) -> String {
    Path::new(env!("CARGO_MANIFEST_DIR"))
        .join("examples")
        .join(name)
        .display()
        .to_string()
}

fn write_spec(text: &str) -> (tempfile::TempDir, PathBuf) {
    let dir = tempfile::tempdir().unwrap();
    let p = dir.path().join("torchkit.toml");
    std::fs::write(&p, text).unwrap();
    (dir, p)
}

/// The step names (`custom_name`) of an LLB JSON dump, in op order.
fn step_names(dump: &serde_json::Value) -> Vec<String> {
    dump["ops"]
        .as_array()
        .expect("ops")
        .iter()
        .filter_map(|o| o["metadata"]["custom_name"].as_str().map(String::from))
        .filter(|n| n.starts_with("[torchkit "))
        .collect()
}

#[test]
fn llb_pb_is_deterministic_and_decodes() {
    let a = TestCommand::new()
        .args(["llb", &example("quickstart")])
        .assert_ok();
    let b = TestCommand::new()
        .args(["llb", &example("quickstart")])
        .assert_ok();
    assert_eq!(a.raw.stdout, b.raw.stdout, "same spec, same bytes");
    assert!(a.stderr.is_empty(), "stderr: {}", a.stderr);
    let def = torchkit::llb::decode(&a.raw.stdout).expect("stdout is a Definition");
    torchkit::llb::validate(&def).expect("a valid Definition");
    // The bytes hold the quickstart's graph: the same ops `--format json` shows, the base
    // first and every step of the plan in order.
    let dump = torchkit::llb::dump(&def).unwrap();
    let json = TestCommand::new()
        .args(["llb", &example("quickstart"), "--format", "json"])
        .assert_ok()
        .json();
    assert_eq!(dump, json, "pb and json describe different graphs");
    assert_eq!(
        dump["ops"][0]["source"]["identifier"],
        "docker-image://docker.io/pytorch/pytorch:2.8.0-cuda12.8-cudnn9-runtime"
    );
    let steps: Vec<String> = step_names(&dump)
        .iter()
        .map(|n| n.split(':').next().unwrap().to_string())
        .collect();
    assert_eq!(
        steps,
        [
            "[torchkit 1/6] base",
            "[torchkit 2/6] apt",
            "[torchkit 3/6] pip",
            "[torchkit 3/6] pip",
            "[torchkit 4/6] requirements",
            "[torchkit 4/6] requirements",
            "[torchkit 5/6] user",
            "[torchkit 6/6] copy",
        ],
        "{dump:#}"
    );
}

#[test]
fn llb_json_dump_names_steps() {
    let v = TestCommand::new()
        .args(["llb", &example("quickstart"), "--format", "json"])
        .assert_ok()
        .json();
    let names = step_names(&v);
    // The dependency steps are split into a resolve and an install vertex.
    for want in [
        "[torchkit 2/6] apt: apt-get install jq",
        "[torchkit 3/6] pip: resolve packaging==24.1 tomli==2.0.1",
        "[torchkit 3/6] pip: pip install packaging==24.1 tomli==2.0.1",
        "[torchkit 4/6] requirements: pip install -r requirements.txt",
        "[torchkit 6/6] copy: copy src/ → /workspace/src",
    ] {
        assert!(names.iter().any(|n| n == want), "no {want:?} in {names:?}");
    }
}

#[test]
fn plan_shows_steps_and_cache_rules() {
    let out = TestCommand::new()
        .args(["plan", &example("h100-devel")])
        .stdout();
    assert!(
        out.contains("base      docker.io/pytorch/pytorch:2.8.0-cuda12.8-cudnn9-devel"),
        "{out}"
    );
    assert!(
        out.contains("resolution re-runs every build (test profile); the install re-runs when the resolved set changes"),
        "{out}"
    );
    let v = TestCommand::new()
        .args(["plan", &example("h100-devel"), "--json", "--profile", "dev"])
        .assert_ok()
        .json();
    assert_eq!(v["profile"], "dev");
    let rules: Vec<(&str, &str)> = v["steps"]
        .as_array()
        .expect("steps")
        .iter()
        .map(|s| {
            (
                s["name"].as_str().unwrap_or_default(),
                s["cache"]["rule"].as_str().unwrap_or_default(),
            )
        })
        .collect();
    assert_eq!(
        rules,
        [
            ("base", "reuse"),
            ("apt", "reuse"),
            ("pip", "epoch"),
            ("user", "reuse")
        ],
        "{v:#}"
    );
}

#[test]
fn unknown_key_error_shows_the_line_and_a_hint() {
    let (_d, p) = write_spec("[torch]\nversion = \"2.8.0\"\n[python]\npakages = [\"numpy\"]\n");
    let o = torchkit(&["plan", p.to_str().unwrap()]);
    assert_eq!(o.code, Some(1), "{}", o.describe());
    assert!(o.stdout.is_empty(), "errors never go to stdout");
    let e = o.stderr;
    assert!(
        e.contains("error: torchkit.toml:4:1: unknown key `pakages` in [python]"),
        "{e}"
    );
    assert!(e.contains("4 | pakages = [\"numpy\"]"), "{e}");
    assert!(e.contains("hint: did you mean `packages`?"), "{e}");
}

#[test]
fn malformed_toml_is_located() {
    let (_d, p) = write_spec("[torch]\nversion = \"2.8.0\n");
    let e = TestCommand::new()
        .args(["llb", p.to_str().unwrap()])
        .assert_err();
    assert!(e.contains("torchkit.toml:2:"), "{e}");
    assert!(e.contains("invalid TOML"), "{e}");
}

#[test]
fn impossible_versions_point_at_the_spec_and_name_a_fix() {
    let (_d, p) = write_spec("[torch]\nversion = \"2.8.0\"\ncuda = \"11.8\"\n");
    let e = TestCommand::new()
        .args(["plan", p.to_str().unwrap()])
        .assert_err();
    assert!(e.contains("torchkit.toml:3:8"), "{e}");
    assert!(e.contains("12.6, 12.8, 12.9"), "{e}");
    assert!(e.contains("2.7.1"), "{e}");
    // The same request from a flag is refused the same way, without a spec location.
    let (_d2, p2) = write_spec("[torch]\nversion = \"2.8.0\"\n");
    let e = TestCommand::new()
        .args(["plan", p2.to_str().unwrap(), "--cuda", "11.8"])
        .assert_err();
    assert!(
        e.contains(
            "error: torch 2.8.0 ships CUDA 12.6, 12.8, 12.9; 2.7.1 is the last release with 11.8"
        ),
        "{e}"
    );
    assert!(!e.contains("torchkit.toml:"), "{e}");
}

#[test]
fn unknown_torch_names_nearest_releases() {
    let (_d, p) = write_spec("[torch]\nversion = \"2.8.7\"\n");
    let e = TestCommand::new()
        .args(["plan", p.to_str().unwrap()])
        .assert_err();
    assert!(e.contains("torchkit.toml:2:11"), "{e}");
    assert!(e.contains("2.8.0"), "{e}");
}

#[test]
fn release_without_pin_is_refused_with_a_fix() {
    let o = torchkit(&["llb", &example("quickstart"), "--profile", "release"]);
    assert_eq!(o.code, Some(1), "{}", o.describe());
    assert!(o.stdout.is_empty(), "no half-written output");
    let e = o.stderr;
    assert!(
        e.contains("release profile needs a base pinned by digest"),
        "{e}"
    );
    assert!(e.contains("hint:"), "{e}");
}

#[test]
fn missing_spec_says_where_it_looked() {
    let dir = tempfile::tempdir().unwrap();
    let e = TestCommand::new()
        .args(["plan", dir.path().to_str().unwrap()])
        .assert_err();
    assert!(
        e.contains("cannot read") && e.contains("torchkit.toml"),
        "{e}"
    );
    assert!(e.contains("hint:"), "{e}");
}

#[test]
fn bad_build_contexts_are_refused_before_any_daemon_is_asked() {
    let spec = example("quickstart");
    for (flag, want) in [
        (
            "nope",
            "invalid --build-context `nope`: expected NAME=docker-image://IMAGE",
        ),
        (
            "pytorch/pytorch=local:src",
            "torchkit takes a named context only as an image",
        ),
    ] {
        let o = torchkit(&[
            "build",
            "--addr",
            "unix:///nonexistent/torchkit-test.sock",
            "--build-context",
            flag,
            &spec,
        ]);
        let err = &o.stderr;
        assert_eq!(o.code, Some(1), "{}", o.describe());
        assert!(err.contains(want), "{flag}: {err}");
        assert!(err.contains("hint:"), "{err}");
        assert!(!err.contains("nonexistent"), "asked the daemon: {err}");
        assert!(o.stdout.is_empty());
    }
}

#[test]
fn a_spec_over_one_mib_is_refused_naming_the_file_its_size_and_the_limit() {
    // Valid TOML (comments), 2 MiB: it used to pass `plan` and fail in the build on
    // BuildKit's gRPC message size.
    let text = format!(
        "[torch]\nversion = \"2.8.0\"\n{}",
        "# padding padding padding padding\n".repeat(2 * 1024 * 1024 / 34)
    );
    let (_dir, p) = write_spec(&text);
    let r = torchkit(&["plan", p.to_str().unwrap()]);
    assert_eq!(r.code, Some(1), "{}", r.describe());
    assert!(r.stdout.is_empty(), "{}", r.describe());
    assert!(
        r.stderr.starts_with(&format!(
            "error: {} is {} bytes, over torchkit's limit of 1 MiB (1048576 bytes)",
            p.display(),
            text.len()
        )),
        "{}",
        r.describe()
    );
    assert!(r.stderr.contains("\nhint: check that"), "{}", r.describe());
}

#[test]
fn a_requirements_file_over_one_mib_is_refused_before_any_work() {
    let (dir, p) = write_spec(
        "[torch]\nversion = \"2.8.0\"\ncuda = \"12.8\"\n[python]\nrequirements = \"requirements.txt\"\n",
    );
    let req = dir.path().join("requirements.txt");
    std::fs::write(&req, "numpy\n".repeat(200_000)).unwrap();
    // `torchkit lock` reads the requirements before it connects to a daemon (there is none).
    let r = TestCommand::new()
        .args(["lock", p.to_str().unwrap()])
        .env("BUILDKIT_HOST", "unix:///nonexistent/buildkitd.sock")
        .run();
    assert_eq!(r.code, Some(1), "{}", r.describe());
    assert!(
        r.stderr.starts_with(&format!(
            "error: {} is 1200000 bytes, over torchkit's limit of 1 MiB",
            req.display()
        )),
        "{}",
        r.describe()
    );
}

/// A copy source or requirements file that is not in the local context, or a symlink that
/// leads out of it, fails `build` at its spec line before any daemon is contacted.
#[test]
fn context_sources_are_checked_before_the_build() {
    let (dir, spec) = write_spec(
        "[torch]\nversion = \"2.8.0\"\ncuda = \"12.8\"\n\n[image]\ncopy = [\"src/\", { src = \"app/\", dest = \"/opt/app\" }]\n",
    );
    std::fs::create_dir(dir.path().join("src")).unwrap();
    let build = || {
        torchkit(&[
            "build",
            spec.to_str().unwrap(),
            "--addr",
            "unix:///nonexistent/buildkitd.sock",
        ])
    };
    let r = build();
    assert_eq!(r.code, Some(1), "{}", r.stderr);
    assert!(
        r.stderr
            .contains("torchkit.toml:6:17: copy source `app/` is not in the build context"),
        "{}",
        r.stderr
    );
    assert!(
        !r.stderr.contains("nonexistent"),
        "no daemon was dialled:\n{}",
        r.stderr
    );
    std::os::unix::fs::symlink("/etc", dir.path().join("app")).unwrap();
    let r = build();
    assert_eq!(r.code, Some(1), "{}", r.stderr);
    assert!(
        r.stderr
            .contains("copy source `app/` leads out of the build context: it resolves to /etc"),
        "{}",
        r.stderr
    );
}

/// An archive dest or `--metadata-file` that cannot be written is refused before the
/// build, not after it.
#[test]
fn destinations_are_checked_before_the_build() {
    let (dir, spec) = write_spec("[torch]\nversion = \"2.8.0\"\ncuda = \"12.8\"\n");
    let d = dir.path().display().to_string();
    let build = |extra: &[&str]| {
        let mut args = vec![
            "build",
            spec.to_str().unwrap(),
            "--addr",
            "unix:///nonexistent/buildkitd.sock",
        ];
        args.extend(extra);
        torchkit(&args)
    };
    let out = format!("type=oci,dest={d}");
    let r = build(&["-o", &out]);
    assert_eq!(r.code, Some(1), "{}", r.stderr);
    assert!(
        r.stderr.contains("writes one file, and dest"),
        "{}",
        r.stderr
    );
    let r = build(&["--metadata-file", &d]);
    assert!(
        r.stderr
            .contains(&format!("--metadata-file {d} is a directory")),
        "{}",
        r.stderr
    );
    let missing = format!("{d}/no/such/dir/meta.json");
    let r = build(&["--metadata-file", &missing]);
    assert!(r.stderr.contains("does not exist"), "{}", r.stderr);
    for r in [build(&["-o", &out]), build(&["--metadata-file", &missing])] {
        assert!(
            !r.stderr.contains("nonexistent"),
            "no daemon was dialled:\n{}",
            r.stderr
        );
    }
}

/// `[python] secrets` mounts a build secret in the pip steps (a private index's netrc), never
/// in a layer; each secret the spec mounts must be given, and a `--secret` no step mounts
/// is refused rather than ignored: both before any daemon is asked.
#[test]
fn spec_secrets_are_mounted_where_listed_and_checked_before_the_build() {
    let (dir, path) = write_spec(
        "[torch]\nversion = \"2.8.0\"\n[python]\npackages = [\"six==1.16.0\"]\nsecrets = [{ id = \"netrc\", dest = \"/root/.netrc\" }]\n[system]\napt = [\"jq\"]\nsecrets = [\"apt-auth\"]\n",
    );
    let spec = path.display().to_string();
    let plan = torchkit(&["plan", &spec]);
    assert_eq!(plan.code, Some(0), "{}", plan.describe());
    assert!(
        plan.stdout.contains("mount /root/.netrc <- secret netrc"),
        "{}",
        plan.stdout
    );
    assert!(
        plan.stdout
            .contains("mount /run/secrets/apt-auth <- secret apt-auth"),
        "{}",
        plan.stdout
    );

    let file = dir.path().join("token");
    std::fs::write(&file, "machine example.invalid login x password y\n").unwrap();
    let given = format!("id=netrc,src={}", file.display());
    let unreachable = "unix:///nonexistent/torchkit-test.sock";
    // apt-auth is not given: refused at its spec line.
    let o = torchkit(&["build", "--addr", unreachable, "--secret", &given, &spec]);
    assert_eq!(o.code, Some(1), "{}", o.describe());
    assert!(
        o.stderr.contains(
            "the spec mounts the secret `apt-auth` and no --secret id=apt-auth was given"
        ),
        "{}",
        o.stderr
    );
    assert!(
        o.stderr.contains(":8:"),
        "the [system] secrets line: {}",
        o.stderr
    );
    assert!(
        !o.stderr.contains("nonexistent"),
        "asked the daemon: {}",
        o.stderr
    );

    // A secret that no step mounts would be ignored: refused.
    let quickstart = example("quickstart");
    let o = torchkit(&[
        "build",
        "--addr",
        unreachable,
        "--secret",
        &given,
        &quickstart,
    ]);
    assert_eq!(o.code, Some(1), "{}", o.describe());
    assert!(
        o.stderr
            .contains("--secret id=netrc: no step of this spec mounts it"),
        "{}",
        o.stderr
    );
    assert!(o.stderr.contains("[python] secrets"), "{}", o.stderr);
    assert!(
        !o.stderr.contains("nonexistent"),
        "asked the daemon: {}",
        o.stderr
    );

    // Bad entries are located.
    let (_d, bad) =
        write_spec("[torch]\nversion = \"2.8.0\"\n[python]\nsecrets = [{ id = \"a b\" }]\n");
    let o = torchkit(&["plan", bad.to_str().unwrap()]);
    assert_eq!(o.code, Some(1), "{}", o.describe());
    assert!(
        o.stderr.contains("`a b` is not a secret id"),
        "{}",
        o.stderr
    );
    let (_d, bad) = write_spec(
        "[torch]\nversion = \"2.8.0\"\n[python]\nsecrets = [{ id = \"torchkit-ca\" }]\n",
    );
    let o = torchkit(&["plan", bad.to_str().unwrap()]);
    assert!(o.stderr.contains("--ca-bundle"), "{}", o.stderr);
}
