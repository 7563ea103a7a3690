use super::*;

const FULL: &str = r#"# syntax=localhost:5000/torchkit/frontend:dev
[torch]
version = "2.8.0"
cuda = "12.8"
flavor = "devel"

[target]
driver = "570.86.15"
gpus = ["9.0", "H100"]

[python]
packages = ["numpy==2.1.0", "transformers[torch]>=4.40; python_version>='3.9'"]
requirements = "./requirements.txt"
index_url = "https://pypi.org/simple"

[system]
apt = ["git", "libgl1=1.6.0-1"]

[image]
workdir = "/srv"
user = "ml"
uid = 1234
env = { HF_HOME = "/cache/hf" }
labels = { "org.example.team" = "vision" }
entrypoint = ["python"]
cmd = ["train.py"]
copy = ["src/", { src = "conf/prod.yaml", dest = "/etc/app.yaml" }]

[cache]
profile = "test"
bust = ["pip", "pip"]
epoch = "2026-11"

[base]
digest = "sha256:0123456789abcdef0123456789abcdef0123456789abcdef0123456789abcdef"
mirror = "mirror.example.com/hub/"
"#;

fn err(text: &str) -> SpecError {
    parse(text, "torchkit.toml").expect_err("should fail")
}

#[test]
fn full_spec_parses_with_syntax_line() {
    let s = parse(FULL, "torchkit.toml").unwrap();
    assert_eq!(s.torch.version, "2.8.0");
    assert_eq!(s.torch.cuda, CudaRequest::Version("12.8".into()));
    assert_eq!(s.torch.flavor, Flavor::Devel);
    assert_eq!(s.target.gpus, vec!["9.0", "H100"]);
    assert_eq!(s.python.requirements.as_deref(), Some("requirements.txt"));
    assert_eq!(
        s.image.user,
        User {
            name: "ml".into(),
            uid: 1234
        }
    );
    assert_eq!(
        s.image.copy,
        vec![
            Copy {
                src: "src/".into(),
                dest: "/srv/src".into()
            },
            Copy {
                src: "conf/prod.yaml".into(),
                dest: "/etc/app.yaml".into()
            },
        ]
    );
    assert_eq!(s.cache.profile, Profile::Test);
    assert_eq!(s.cache.bust, vec![Step::Pip], "duplicates collapse");
    assert_eq!(s.base.mirror.as_deref(), Some("mirror.example.com/hub"));
    assert_eq!(s.span_of("torch.version").line, 3);
    assert_eq!(s.span_of("python.packages").line, 12);
}

#[test]
fn minimal_spec_gets_defaults() {
    let s = parse("[torch]\nversion = \"2.8.0\"\n", "t.toml").unwrap();
    assert_eq!(s.torch.cuda, CudaRequest::Auto);
    assert_eq!(s.image.workdir, "/workspace");
    assert_eq!(
        s.image.user,
        User {
            name: "app".into(),
            uid: 1000
        }
    );
    assert_eq!(s.cache.profile, Profile::Dev);
    assert!(s.python.packages.is_empty());
}

#[test]
fn root_user_has_uid_zero() {
    let s = parse(
        "[torch]\nversion = \"2.8.0\"\n[image]\nuser = \"root\"\n",
        "t",
    )
    .unwrap();
    assert!(s.image.user.is_root());
}

#[test]
fn unknown_key_names_line_column_and_suggestion() {
    let e = err("[torch]\nverison = \"2.8.0\"\n");
    assert_eq!((e.span.line, e.span.col), (2, 1));
    assert_eq!(e.message, "unknown key `verison` in [torch]");
    assert_eq!(e.help.as_deref(), Some("did you mean `version`?"));
    assert_eq!(
        e.to_string(),
        "torchkit.toml:2:1: unknown key `verison` in [torch]"
    );
    let r = e.render();
    assert!(r.contains("--> torchkit.toml:2:1"), "{r}");
    assert!(r.contains("2 | verison = \"2.8.0\""), "{r}");
    assert!(r.contains("  | ^^^^^^^"), "{r}");
}

#[test]
fn unknown_table_lists_known_ones() {
    let e = err("[torch]\nversion = \"2.8.0\"\n[pythn]\npackages = []\n");
    assert_eq!(e.span.line, 3);
    assert_eq!(e.help.as_deref(), Some("did you mean `python`?"));
    let e = err("[torch]\nversion = \"2.8.0\"\n[zzz]\n");
    assert!(e.help.unwrap().contains("`torch`"));
}

#[test]
fn wrong_type_is_located() {
    let e = err("[torch]\nversion = 2.8\n");
    assert_eq!(e.span.line, 2);
    assert!(e.message.starts_with("wrong type"), "{}", e.message);
}

#[test]
fn malformed_toml_is_located() {
    let e = err("[torch\nversion = \"2.8.0\"\n");
    assert_eq!(e.span.line, 1);
    assert!(e.message.starts_with("invalid TOML"), "{}", e.message);
}

#[test]
fn bad_values_have_hints() {
    let cases: &[(&str, u32, &str)] = &[
        (
            "[torch]\nversion = \"2.8.0+cu128\"\n",
            2,
            "CUDA goes in `cuda`",
        ),
        (
            "[torch]\nversion = \"2.8.0\"\ncuda = \"128\"\n",
            3,
            "\"12.8\"",
        ),
        (
            "[torch]\nversion = \"2.8.0\"\nflavor = \"runtme\"\n",
            3,
            "`runtime`",
        ),
        (
            "[torch]\nversion = \"2.8.0\"\n[target]\ndriver = \"latest\"\n",
            4,
            "nvidia-smi",
        ),
        (
            "[torch]\nversion = \"2.8.0\"\n[target]\ngpus = [\"90\"]\n",
            4,
            "MAJOR.MINOR",
        ),
        (
            "[torch]\nversion = \"2.8.0\"\n[python]\npackages = [\"--index-url x\"]\n",
            4,
            "PEP 508",
        ),
        (
            "[torch]\nversion = \"2.8.0\"\n[python]\nrequirements = \"../r.txt\"\n",
            4,
            "build context",
        ),
        (
            "[torch]\nversion = \"2.8.0\"\n[python]\nindex_url = \"pypi.org\"\n",
            4,
            "https://",
        ),
        (
            "[torch]\nversion = \"2.8.0\"\n[system]\napt = [\"Git; rm -rf /\"]\n",
            4,
            "apt package",
        ),
        (
            "[torch]\nversion = \"2.8.0\"\n[image]\nworkdir = \"app\"\n",
            4,
            "absolute",
        ),
        (
            "[torch]\nversion = \"2.8.0\"\n[image]\nuid = 0\n",
            4,
            "root",
        ),
        (
            "[torch]\nversion = \"2.8.0\"\n[image]\nenv = { \"1X\" = \"y\" }\n",
            4,
            "letters",
        ),
        (
            "[torch]\nversion = \"2.8.0\"\n[cache]\nprofile = \"relase\"\n",
            4,
            "`release`",
        ),
        (
            "[torch]\nversion = \"2.8.0\"\n[cache]\nbust = [\"pipp\"]\n",
            4,
            "`pip`",
        ),
        (
            "[torch]\nversion = \"2.8.0\"\n[base]\ndigest = \"sha256:abc\"\n",
            4,
            "64",
        ),
        (
            "[torch]\nversion = \"2.8.0\"\n[base]\nimage = \"https://x/y\"\n",
            4,
            "no scheme",
        ),
    ];
    for (text, line, hint) in cases {
        let e = err(text);
        assert_eq!(e.span.line, *line, "{text}: {e}");
        let h = e.help.clone().unwrap_or_default();
        assert!(h.contains(hint), "{text}: hint {h:?} lacks {hint:?}");
    }
}

#[test]
fn torch_version_is_checked_as_the_resolver_checks_it() {
    // The same accepted form, example and matrix date as `torchkit resolve --torch`.
    let newest = crate::matrix::matrix().newest_patch().to_string();
    let gathered = crate::matrix::gathered();
    let form = format!("MAJOR.MINOR.PATCH (e.g. {newest})");
    for (input, why) in [
        ("latest", format!("expected {form}")),
        (
            "2.8",
            "a release has three fields: 2.8's patches are 2.8.0 (pip reads torch==2.8 as 2.8.0)"
                .into(),
        ),
        ("2", format!("expected {form}")),
        ("2.8.0.1", format!("expected {form}")),
        (
            "2.15.0rc1",
            "pre-releases and development builds are not in the matrix (the final release is 2.15.0)"
                .into(),
        ),
        (
            "2.8.0+cu128",
            "drop the local suffix `+cu128` (use 2.8.0 and request the CUDA variant separately)"
                .into(),
        ),
    ] {
        let e = err(&format!("[torch]\nversion = \"{input}\"\n"));
        assert_eq!(e.span.line, 2, "{input}");
        assert_eq!(
            e.message,
            format!("`{input}` is not a torch release: {why}"),
            "{input}"
        );
        assert_eq!(
            e.help.as_deref(),
            Some(
                format!(
                    "give a torch release as {form}; the newest this torchkit knows is {newest} (matrix gathered {gathered}); CUDA goes in `cuda`"
                )
                .as_str()
            ),
            "{input}"
        );
    }
    // A known form but an unknown release is the resolver's business, not the parser's.
    for ok in ["2.8.0", "9.9.9"] {
        let s = parse(&format!("[torch]\nversion = \"{ok}\"\n"), "torchkit.toml").unwrap();
        assert_eq!(s.torch.version, ok);
    }
}

#[test]
fn missing_torch_is_an_error() {
    let e = err("[python]\npackages = []\n");
    assert!(e.message.contains("[torch]"));
    let e = err("[torch]\ncuda = \"12.8\"\n");
    assert!(e.message.contains("version"));
}

#[test]
fn requirement_checker() {
    for ok in [
        "numpy",
        "numpy==2.1.0",
        "a.b-c_d>=1,<2",
        "x[y,z]~=1.0",
        "pkg @ https://e.org/p.whl",
        "six; python_version<'4'",
        "pkg @ https://e.org/p.whl?a=1;b=2 ; sys_platform == 'linux'",
    ] {
        assert!(check_requirement(ok).is_ok(), "{ok}");
    }
    // A wrong marker fails at its spec line, not in pip mid-build.
    let e = err("[torch]\nversion = \"2.8.0\"\n[python]\npackages = [\"six\", \"numpy; python_versio >= '3.10'\"]\n");
    assert_eq!(e.span.line, 4);
    assert!(
        e.message.contains("environment marker is wrong")
            && e.message.contains("did you mean `python_version`"),
        "{}",
        e.message
    );
    for bad in ["", "-e .", "==1.0", "numpy 1.0", "a\nb"] {
        assert!(check_requirement(bad).is_err(), "{bad:?}");
    }
}

#[test]
fn error_after_parse_points_at_key() {
    let s = parse(FULL, "torchkit.toml").unwrap();
    let e = s.error_at("torch.cuda", "no such build", None);
    assert_eq!((e.span.line, e.span.col), (4, 8));
    assert_eq!(e.source_line, "cuda = \"12.8\"");
}

#[test]
fn spans_count_characters_not_bytes() {
    let e = err("# ünïcödé\n[torch]\nversion = \"2.8.0\"\nfoo = 1\n");
    assert_eq!((e.span.line, e.span.col), (4, 1));
    let e = err("[torch]\nversion = \"2.8.0\"\n[image]\nenv = { \"é\" = \"y\" }\n");
    assert_eq!(e.span.col, 9);
}

#[test]
fn a_wrong_copy_entry_says_what_an_entry_takes() {
    let spec = |entry: &str| format!("[torch]\nversion = \"2.8.0\"\n[image]\ncopy = [{entry}]\n");
    let e = err(&spec("{ from = \"a/\" }"));
    assert!(
        e.message
            .contains("unknown key `from` in a copy table: it takes `src` and an optional `dest`"),
        "{}",
        e.message
    );
    assert_eq!(e.span.line, 4, "{e:?}");
    let e = err(&spec("{ dest = \"/x\" }"));
    assert!(
        e.message.contains("a copy table needs `src`"),
        "{}",
        e.message
    );
    let e = err(&spec("1"));
    assert!(
        e.message
            .contains("expected a path (\"src/\") or a table with `src`"),
        "{}",
        e.message
    );
    assert!(
        !e.message.contains("did not match any variant"),
        "{}",
        e.message
    );
    let ok = parse(
        &spec("\"src/\", { src = \"a\", dest = \"/b\" }"),
        "torchkit.toml",
    )
    .unwrap();
    assert_eq!(ok.image.copy.len(), 2);
}

#[test]
fn a_workdir_that_goes_up_says_so() {
    let e = err("[torch]\nversion = \"2.8.0\"\n[image]\nworkdir = \"/work/../../etc\"\n");
    assert_eq!(e.message, "workdir `/work/../../etc` goes up with `..`");
    assert!(e.help.unwrap().contains("without `..`"));
    let e = err("[torch]\nversion = \"2.8.0\"\n[image]\nworkdir = \"work\"\n");
    assert_eq!(e.message, "workdir `work` is not an absolute path");
}

#[test]
fn verify_takes_shell_strings_and_argv_arrays() {
    let s = parse(
        "[torch]\nversion = \"2.8.0\"\n[verify]\nrun = [\"pytest -q tests/\", [\"python\", \"-m\", \"unittest\"]]\nnetwork = true\ngpu = true\n",
        "torchkit.toml",
    )
    .unwrap();
    assert!(s.verify.enabled && s.verify.network && s.verify.gpu);
    assert_eq!(
        s.verify.run,
        [
            Command::Shell("pytest -q tests/".into()),
            Command::Exec(vec!["python".into(), "-m".into(), "unittest".into()])
        ]
    );
    assert_eq!(
        s.verify.run[0].argv(),
        ["/bin/sh", "-c", "pytest -q tests/"]
    );
    assert_eq!(s.span_of("verify.run.1").line, 4);
    let d = parse("[torch]\nversion = \"2.8.0\"\n", "t.toml").unwrap();
    assert_eq!(d.verify, Verify::default());
    assert!(d.verify.enabled && d.verify.run.is_empty() && !d.verify.network);
}

#[test]
fn a_wrong_verify_command_is_located_and_says_what_it_takes() {
    let e = err("[torch]\nversion = \"2.8.0\"\n[verify]\nrun = [\"  \"]\n");
    assert_eq!(e.message, "an empty command");
    assert_eq!(e.span.line, 4);
    let e = err("[torch]\nversion = \"2.8.0\"\n[verify]\nrun = [[]]\n");
    assert!(e.message.contains("needs a program"), "{}", e.message);
    let e = err("[torch]\nversion = \"2.8.0\"\n[verify]\nrun = [3]\n");
    assert!(e.message.contains("a command string"), "{}", e.message);
    let e = err("[torch]\nversion = \"2.8.0\"\n[verify]\nenable = false\n");
    assert!(e.help.unwrap().contains("enabled"));
}
