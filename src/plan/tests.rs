use serde_json::Value;

use super::lower::{BUST_MOUNT, EPOCH_MOUNT};
use super::*;
use crate::llb::{self, pb};
use crate::resolve::resolve;
use crate::spec::parse;

const SPEC: &str = r#"[torch]
version = "2.8.0"
cuda = "12.8"
[system]
apt = ["jq"]
[python]
packages = ["six==1.16.0"]
requirements = "requirements.txt"
[image]
entrypoint = ["python"]
copy = ["src/"]
"#;

const DIGEST: &str = "sha256:1111111111111111111111111111111111111111111111111111111111111111";

fn spec_with(extra: &str) -> Spec {
    parse(&format!("{SPEC}{extra}"), "torchkit.toml").unwrap()
}

fn compiled(spec: &Spec, opts: &CompileOptions) -> Compiled {
    let res = resolve(&spec.request()).unwrap();
    compile(spec, &res, opts).unwrap()
}

fn token() -> CompileOptions {
    CompileOptions {
        build_token: Some("token-1".into()),
        ..CompileOptions::default()
    }
}

fn ops(c: &Compiled) -> Vec<Value> {
    llb::dump(&c.definition).unwrap()["ops"]
        .as_array()
        .unwrap()
        .clone()
}

/// The op of a step (for a resolved dependency step: its install).
fn op<'a>(ops: &'a [Value], step: &str) -> &'a Value {
    let needle = format!("] {step}:");
    let resolve = format!("] {step}: resolve ");
    ops.iter()
        .find(|o| {
            o["metadata"]["custom_name"]
                .as_str()
                .is_some_and(|n| n.contains(&needle) && !n.contains(&resolve))
        })
        .unwrap_or_else(|| panic!("no op for step {step}"))
}

/// The resolve op of a dependency step.
fn resolve_op<'a>(ops: &'a [Value], step: &str) -> &'a Value {
    let needle = format!("] {step}: resolve ");
    ops.iter()
        .find(|o| {
            o["metadata"]["custom_name"]
                .as_str()
                .is_some_and(|n| n.contains(&needle))
        })
        .unwrap_or_else(|| panic!("no resolve op for step {step}"))
}

fn mount_dests(op: &Value) -> Vec<String> {
    op["exec"]["mounts"]
        .as_array()
        .unwrap()
        .iter()
        .map(|m| m["dest"].as_str().unwrap().to_string())
        .collect()
}

fn digest(op: &Value) -> String {
    op["digest"].as_str().unwrap().to_string()
}

#[test]
fn steps_run_stable_to_volatile() {
    let c = compiled(&spec_with(""), &token());
    let names: Vec<&str> = c.plan.steps.iter().map(|s| s.name.as_str()).collect();
    assert_eq!(
        names,
        ["base", "apt", "pip", "requirements", "user", "copy"]
    );
    assert!(c.plan.steps[0]
        .title
        .starts_with("[torchkit 1/6] base: docker.io/pytorch/pytorch:2.8.0-cuda12.8"));
}

#[test]
fn same_input_same_bytes() {
    let spec = spec_with("[cache]\nepoch = \"e1\"\nprofile = \"test\"\n");
    let a = compiled(&spec, &token());
    let b = compiled(&spec, &token());
    assert_eq!(
        llb::definition_bytes(&a.definition),
        llb::definition_bytes(&b.definition)
    );
    assert_eq!(a.image_config, b.image_config);
}

#[test]
fn dev_reuses_cache_and_mounts_download_caches() {
    let c = compiled(&spec_with(""), &CompileOptions::default());
    let ops = ops(&c);
    assert!(ops.iter().all(|o| o["metadata"]["ignore_cache"] != true));
    assert!(mount_dests(op(&ops, "pip")).contains(&PIP_CACHE_DIR.to_string()));
    assert!(mount_dests(op(&ops, "apt")).contains(&APT_CACHE_DIR.to_string()));
    let pip = op(&ops, "pip")["exec"]["args"].to_string();
    assert!(
        !pip.contains("--no-cache-dir"),
        "a cache mount replaces --no-cache-dir: {pip}"
    );
    assert!(c.plan.busted.is_empty());
    assert!(!ops.iter().any(|o| o["metadata"]["custom_name"]
        .as_str()
        .is_some_and(|n| n.contains("bust"))));
}

#[test]
fn test_profile_reresolves_through_the_bust_node_and_keeps_caches() {
    let spec = spec_with("[cache]\nprofile = \"test\"\n");
    let c = compiled(&spec, &token());
    assert_eq!(c.plan.busted, [StepName::Pip, StepName::Requirements]);
    assert!(matches!(c.plan.steps[2].cache, CacheRule::Reresolve { .. }));
    let ops = ops(&c);
    for step in ["pip", "requirements"] {
        let (r, i) = (resolve_op(&ops, step), op(&ops, step));
        for o in [r, i] {
            assert_ne!(
                o["metadata"]["ignore_cache"], true,
                "{step}: ignore_cache would prune its cache mounts"
            );
            assert!(
                mount_dests(o).contains(&PIP_CACHE_DIR.to_string()),
                "{step}: download cache kept"
            );
        }
        // The resolve re-runs every build; the install takes no per-build input, only the
        // resolved set, so an unchanged resolution keeps its layer.
        assert!(mount_dests(r).contains(&BUST_MOUNT.to_string()), "{step}");
        assert!(!mount_dests(i).contains(&BUST_MOUNT.to_string()), "{step}");
        assert!(r["metadata"]["custom_name"]
            .as_str()
            .unwrap()
            .ends_with("(re-run: test profile)"));
        assert!(!i["metadata"]["custom_name"]
            .as_str()
            .unwrap()
            .contains("re-run"));
    }
    assert!(!mount_dests(op(&ops, "apt")).contains(&BUST_MOUNT.to_string()));
    // A new token re-runs the resolutions (new digests) and leaves the rest alone.
    let c2 = compiled(
        &spec,
        &CompileOptions {
            build_token: Some("token-2".into()),
            ..token()
        },
    );
    let ops2 = super::tests::ops(&c2);
    assert_ne!(
        digest(resolve_op(&ops, "pip")),
        digest(resolve_op(&ops2, "pip"))
    );
    assert_eq!(digest(op(&ops, "apt")), digest(op(&ops2, "apt")));
    assert_eq!(digest(op(&ops, "base")), digest(op(&ops2, "base")));
}

#[test]
fn the_install_half_installs_exactly_the_resolved_set() {
    let c = compiled(&spec_with(""), &CompileOptions::default());
    let ops = ops(&c);
    for step in ["pip", "requirements"] {
        let (r, i) = (resolve_op(&ops, step), op(&ops, step));
        let args: Vec<&str> = r["exec"]["args"]
            .as_array()
            .unwrap()
            .iter()
            .map(|a| a.as_str().unwrap())
            .collect();
        assert_eq!(
            &args[..3],
            [
                "python",
                RESOLVE_SCRIPT_MOUNT,
                &format!("{RESOLVED_DIR}/{RESOLVED_FILE}")
            ]
        );
        assert!(args.contains(&CONSTRAINTS_MOUNT), "{args:?}");
        assert_eq!(
            i["exec"]["args"],
            serde_json::json!([
                "python",
                "-m",
                "pip",
                "install",
                "--no-deps",
                "-r",
                RESOLVED_MOUNT
            ])
        );
        // The install reads the resolve's output, read-only, through a selector: BuildKit
        // keys it on that file's content. It needs neither constraints nor requirements.
        let mounts = i["exec"]["mounts"].as_array().unwrap();
        let set = mounts
            .iter()
            .find(|m| m["dest"] == RESOLVED_MOUNT)
            .expect("the resolved set is mounted");
        assert_eq!(set["readonly"], true);
        assert_eq!(set["selector"], format!("/{RESOLVED_FILE}"));
        let dests = mount_dests(i);
        assert!(!dests.contains(&CONSTRAINTS_MOUNT.to_string()), "{dests:?}");
        assert!(
            !dests.contains(&REQUIREMENTS_MOUNT.to_string()),
            "{dests:?}"
        );
        let rdests = mount_dests(r);
        assert!(rdests.contains(&RESOLVED_DIR.to_string()), "{rdests:?}");
        assert!(
            rdests.contains(&RESOLVE_SCRIPT_MOUNT.to_string()),
            "{rdests:?}"
        );
    }
    assert!(mount_dests(resolve_op(&ops, "requirements")).contains(&REQUIREMENTS_MOUNT.to_string()));
    // The script is one named file op, never a layer: failures quote a short command.
    let script: Vec<&Value> = ops
        .iter()
        .filter(|o| o["metadata"]["custom_name"] == "[torchkit] resolver script")
        .collect();
    assert_eq!(script.len(), 1);
    assert!(script[0].to_string().contains("pip install --dry-run"));
    // The two halves share the step's line in the spec and its number in progress.
    let pip = &c.plan.steps[2];
    let r = pip.resolve.as_ref().unwrap();
    assert!(r
        .title
        .starts_with("[torchkit 3/6] pip: resolve six==1.16.0"));
    assert!(pip
        .title
        .starts_with("[torchkit 3/6] pip: pip install six==1.16.0"));
}

#[test]
fn no_cache_reruns_both_halves() {
    let c = compiled(
        &spec_with(""),
        &CompileOptions {
            no_cache: NoCache::Steps(vec![StepName::Pip]),
            ..token()
        },
    );
    let ops = ops(&c);
    assert!(mount_dests(resolve_op(&ops, "pip")).contains(&BUST_MOUNT.to_string()));
    assert!(mount_dests(op(&ops, "pip")).contains(&BUST_MOUNT.to_string()));
    assert!(!mount_dests(op(&ops, "requirements")).contains(&BUST_MOUNT.to_string()));
}

#[test]
fn busting_needs_a_token() {
    let spec = spec_with("[cache]\nprofile = \"test\"\n");
    let res = resolve(&spec.request()).unwrap();
    let e = compile(&spec, &res, &CompileOptions::default()).unwrap_err();
    assert!(matches!(e, CompileError::MissingBuildToken { .. }), "{e}");
}

#[test]
fn epoch_busts_exactly_the_dependency_steps() {
    let a = ops(&compiled(
        &spec_with("[cache]\nepoch = \"2026-01\"\n"),
        &token(),
    ));
    let b = ops(&compiled(
        &spec_with("[cache]\nepoch = \"2026-02\"\n"),
        &token(),
    ));
    for (step, same) in [
        ("base", true),
        ("apt", true),
        ("pip", false),
        ("requirements", false),
    ] {
        assert_eq!(digest(op(&a, step)) == digest(op(&b, step)), same, "{step}");
    }
    assert!(mount_dests(op(&a, "pip")).contains(&EPOCH_MOUNT.to_string()));
    assert!(mount_dests(resolve_op(&a, "pip")).contains(&EPOCH_MOUNT.to_string()));
    assert_ne!(
        digest(resolve_op(&a, "requirements")),
        digest(resolve_op(&b, "requirements"))
    );
    let epoch = a
        .iter()
        .find(|o| o["metadata"]["custom_name"] == "[torchkit] epoch 2026-01");
    assert!(epoch.is_some(), "the epoch is its own named node");
}

#[test]
fn release_needs_a_pinned_base() {
    let spec = spec_with("[cache]\nprofile = \"release\"\n");
    let res = resolve(&spec.request()).unwrap();
    let e = compile(&spec, &res, &CompileOptions::default()).unwrap_err();
    assert!(matches!(e, CompileError::ReleaseUnpinned { .. }), "{e}");
    assert!(e.hint().unwrap().contains("torchkit lock"));
}

#[test]
fn release_rebuilds_everything_without_cache_mounts() {
    let spec = spec_with(&format!(
        "[cache]\nprofile = \"release\"\n[base]\ndigest = \"{DIGEST}\"\n"
    ));
    let opts = CompileOptions {
        source_date_epoch: Some(1_700_000_000),
        ..CompileOptions::default()
    };
    let c = compiled(&spec, &opts);
    let ops = ops(&c);
    let base = op(&ops, "base");
    assert_eq!(
        base["source"]["identifier"],
        format!("docker-image://docker.io/pytorch/pytorch:2.8.0-cuda12.8-cudnn9-runtime@{DIGEST}")
    );
    for s in ["base", "apt", "pip", "requirements", "user", "copy"] {
        assert_eq!(op(&ops, s)["metadata"]["ignore_cache"], true, "{s}");
    }
    for s in ["pip", "requirements"] {
        let r = resolve_op(&ops, s);
        assert_eq!(r["metadata"]["ignore_cache"], true, "{s} resolve");
        assert!(r["exec"]["args"].to_string().contains("--no-cache-dir"));
    }
    for s in ["apt", "pip", "requirements"] {
        let o = op(&ops, s);
        assert!(
            !o["exec"]["mounts"].to_string().contains("\"cache\""),
            "{s}: no cache mounts in release"
        );
        assert!(
            o["exec"]["env"]
                .to_string()
                .contains("SOURCE_DATE_EPOCH=1700000000"),
            "{s}"
        );
    }
    assert!(op(&ops, "pip")["exec"]["args"]
        .to_string()
        .contains("--no-cache-dir"));
    let cfg: Value = serde_json::from_slice(c.image_config.as_deref().unwrap()).unwrap();
    assert_eq!(cfg["created"], "2023-11-14T22:13:20Z");
    assert_eq!(cfg["config"]["Labels"]["torchkit.base.digest"], DIGEST);
}

#[test]
fn bust_list_and_no_cache_filter() {
    let spec = spec_with("[cache]\nbust = [\"apt\", \"copy\"]\n");
    let c = compiled(&spec, &token());
    let ops = ops(&c);
    assert!(mount_dests(op(&ops, "apt")).contains(&"/run/torchkit/bust".to_string()));
    assert_eq!(
        op(&ops, "copy")["metadata"]["ignore_cache"],
        true,
        "file ops bust with ignore_cache"
    );
    assert_eq!(c.plan.busted, [StepName::Apt]);

    // An unknown step never reaches the plan: the vocabulary refuses it with a hint.
    let e = "pipp".parse::<StepName>().unwrap_err();
    assert!(e.hint().unwrap().contains("did you mean `pip`"), "{e:?}");

    let all = compiled(
        &spec_with(""),
        &CompileOptions {
            no_cache: NoCache::All,
            ..token()
        },
    );
    assert_eq!(
        all.plan.busted,
        [
            StepName::Apt,
            StepName::Pip,
            StepName::Requirements,
            StepName::User,
            StepName::Verify
        ]
    );
}

#[test]
fn image_config_inherits_the_base_and_adds_torchkit() {
    let base_cfg = serde_json::json!({
        "architecture": "amd64", "os": "linux", "created": "2025-01-01T00:00:00Z",
        "config": {"Env": ["PATH=/opt/conda/bin:/usr/bin", "NVIDIA_VISIBLE_DEVICES=void"],
                   "Cmd": ["/bin/bash"], "Labels": {"z.base": "1"}},
        "rootfs": {"type": "layers", "diff_ids": ["sha256:aa"]},
        "history": [{"created_by": "base layer"}]
    });
    let opts = CompileOptions {
        base: BaseMeta {
            digest: Some(DIGEST.into()),
            config: Some(base_cfg),
        },
        labels: [("extra".to_string(), "x".to_string())].into(),
        ..CompileOptions::default()
    };
    let c = compiled(&spec_with("[image.env]\nHF_HOME = \"/hf\"\n"), &opts);
    let cfg: Value = serde_json::from_slice(c.image_config.as_deref().unwrap()).unwrap();
    let env: Vec<&str> = cfg["config"]["Env"]
        .as_array()
        .unwrap()
        .iter()
        .map(|v| v.as_str().unwrap())
        .collect();
    assert_eq!(
        env,
        [
            "PATH=/opt/conda/bin:/usr/bin",
            "NVIDIA_VISIBLE_DEVICES=all",
            "HF_HOME=/hf",
            "NVIDIA_DRIVER_CAPABILITIES=compute,utility",
        ]
    );
    assert_eq!(cfg["config"]["User"], "app");
    assert_eq!(cfg["config"]["WorkingDir"], "/workspace");
    assert_eq!(cfg["config"]["Entrypoint"], serde_json::json!(["python"]));
    assert_eq!(
        cfg["config"]["Cmd"],
        Value::Null,
        "ENTRYPOINT resets the base CMD"
    );
    let labels = &cfg["config"]["Labels"];
    assert_eq!(labels["z.base"], "1");
    assert_eq!(labels["extra"], "x");
    assert_eq!(labels["torchkit.torch"], "2.8.0");
    assert_eq!(labels["torchkit.cuda"], "12.8");
    assert_eq!(labels["torchkit.cudnn"], "9");
    assert_eq!(labels["torchkit.profile"], "dev");
    assert_eq!(labels["org.opencontainers.image.base.digest"], DIGEST);
    assert!(labels["torchkit.min-driver"].is_string());
    assert!(
        cfg.get("created").is_none(),
        "no wall-clock time without SOURCE_DATE_EPOCH"
    );
    let hist = cfg["history"].as_array().unwrap();
    assert_eq!(hist.len(), 1 + 5);
    assert_eq!(hist[5]["comment"], "torchkit.v0");
    // The base's env reaches the build steps too.
    let ops = ops(&c);
    assert!(op(&ops, "pip")["exec"]["env"]
        .to_string()
        .contains("PATH=/opt/conda/bin:/usr/bin"));
    assert!(op(&ops, "pip")["exec"]["env"]
        .to_string()
        .contains("HF_HOME=/hf"));
    assert_eq!(
        op(&ops, "base")["source"]["identifier"],
        format!("docker-image://docker.io/pytorch/pytorch:2.8.0-cuda12.8-cudnn9-runtime@{DIGEST}")
    );
}

/// The CA secret mount of an exec op in the LLB dump.
fn ca_secret_of(op: &Value) -> Option<Value> {
    op["exec"]["mounts"]
        .as_array()
        .unwrap()
        .iter()
        .find(|m| m["dest"] == CA_SECRET_PATH)
        .map(|m| m["secret"].clone())
}

/// An optional CA secret (the frontend's default): every exec that downloads mounts it as
/// optional and uses it only when the file is there, pip through [`CA_IF_PRESENT`] (no
/// `PIP_CERT` in the env, which would fail pip when the file is absent), apt through a shell
/// test; the plan says so.
#[test]
fn an_optional_ca_secret_is_used_only_when_present() {
    let opts = CompileOptions {
        ca_secret: CaSecret::Optional,
        ..CompileOptions::default()
    };
    let c = compiled(&spec_with(""), &opts);
    assert_eq!(c.plan.ca_secret, CaSecret::Optional);
    let plan_json = serde_json::to_value(&c.plan).unwrap();
    assert_eq!(plan_json["ca_secret"], "optional");
    let ops = ops(&c);
    let mut downloads: Vec<&Value> = vec![op(&ops, "apt")];
    for s in ["pip", "requirements"] {
        downloads.push(op(&ops, s));
        downloads.push(resolve_op(&ops, s));
    }
    for o in &downloads {
        let name = &o["metadata"]["custom_name"];
        let secret = ca_secret_of(o).unwrap_or_else(|| panic!("{name}: no CA mount"));
        assert_eq!(secret["id"], CA_SECRET_ID, "{name}");
        assert_eq!(secret["optional"], true, "{name}");
        let env = o["exec"]["env"].to_string();
        assert!(!env.contains("PIP_CERT"), "{name}: {env}");
        assert!(!env.contains("SSL_CERT_FILE"), "{name}: {env}");
    }
    for o in &downloads[1..] {
        let args: Vec<&str> = o["exec"]["args"]
            .as_array()
            .unwrap()
            .iter()
            .map(|a| a.as_str().unwrap())
            .collect();
        assert_eq!(
            args[..4],
            ["/bin/sh", "-c", CA_IF_PRESENT, "sh"],
            "{args:?}"
        );
        assert_eq!(args[4], "python", "the argv follows, unparsed: {args:?}");
    }
    assert!(CA_IF_PRESENT.contains(&format!("[ -s {CA_SECRET_PATH} ]")));
    assert!(CA_IF_PRESENT.contains(&format!("PIP_CERT={CA_SECRET_PATH}")));
    let apt = op(&ops, "apt")["exec"]["args"][2]
        .as_str()
        .unwrap()
        .to_string();
    assert!(
        apt.contains(&format!(
            "ca=; if [ -s {CA_SECRET_PATH} ]; then ca='-o Acquire::https::CAInfo={CA_SECRET_PATH}'; fi;"
        )),
        "{apt}"
    );
    assert!(
        apt.contains(" $ca update;") && apt.contains(" $ca install "),
        "{apt}"
    );
    assert!(!op(&ops, "user")["exec"]["mounts"]
        .to_string()
        .contains("secret"));

    // Required (`--ca-bundle`, `TORCHKIT_CA_SECRET=1`): a mount that must be there, pip
    // and apt pointed at it unconditionally. None: no mount at all.
    let required = compiled(
        &spec_with(""),
        &CompileOptions {
            ca_secret: CaSecret::Required,
            ..CompileOptions::default()
        },
    );
    let ops = self::ops(&required);
    assert_eq!(ca_secret_of(op(&ops, "pip")).unwrap()["optional"], false);
    assert_eq!(op(&ops, "pip")["exec"]["args"][0], "python");
    let none = compiled(&spec_with(""), &CompileOptions::default());
    assert!(serde_json::to_value(&none.plan)
        .unwrap()
        .get("ca_secret")
        .is_none());
    for o in self::ops(&none) {
        assert!(o.get("exec").is_none() || ca_secret_of(&o).is_none(), "{o}");
    }
}

#[test]
fn ca_bundle_is_a_secret_mount_never_data() {
    let opts = CompileOptions {
        ca_secret: CaSecret::Required,
        ..CompileOptions::default()
    };
    let c = compiled(&spec_with(""), &opts);
    let ops = ops(&c);
    for s in ["apt", "pip", "requirements"] {
        let m = op(&ops, s)["exec"]["mounts"].to_string();
        assert!(
            m.contains("\"secret\"") && m.contains(CA_SECRET_ID),
            "{s}: {m}"
        );
    }
    assert!(op(&ops, "pip")["exec"]["env"]
        .to_string()
        .contains("PIP_CERT=/run/secrets/torchkit-ca"));
    assert!(!op(&ops, "user")["exec"]["mounts"]
        .to_string()
        .contains("secret"));
}

#[test]
fn ops_point_at_spec_lines() {
    let c = compiled(&spec_with(""), &token());
    let ops = ops(&c);
    let line = |s: &str| {
        op(&ops, s)["locations"][0]["ranges"][0][0]
            .as_i64()
            .unwrap()
    };
    assert_eq!(line("apt"), 5);
    assert_eq!(line("pip"), 7);
    assert_eq!(line("requirements"), 8);
    assert_eq!(line("copy"), 11);
}

#[test]
fn mirror_and_override() {
    let c = compiled(
        &spec_with("[base]\nmirror = \"mirror.example.com/hub\"\n"),
        &token(),
    );
    assert_eq!(
        c.plan.base.reference,
        "mirror.example.com/hub/pytorch/pytorch:2.8.0-cuda12.8-cudnn9-runtime"
    );
    let c = compiled(
        &spec_with("[base]\nimage = \"nvcr.io/nvidia/pytorch:25.01-py3\"\n"),
        &token(),
    );
    assert_eq!(c.plan.base.reference, "nvcr.io/nvidia/pytorch:25.01-py3");
}

#[test]
fn root_user_and_no_optional_steps() {
    let spec = parse(
        "[torch]\nversion = \"2.8.0\"\n[image]\nuser = \"root\"\n",
        "t.toml",
    )
    .unwrap();
    let c = compiled(&spec, &token());
    let names: Vec<&str> = c.plan.steps.iter().map(|s| s.name.as_str()).collect();
    assert_eq!(names, ["base", "user"]);
    let cfg: Value = serde_json::from_slice(c.image_config.as_deref().unwrap()).unwrap();
    assert_eq!(cfg["config"]["User"], "root");
    assert!(!ops(&c).iter().any(|o| o["kind"] == "source"
        && o["source"]["identifier"]
            .as_str()
            .unwrap()
            .starts_with("local://")));
}

#[test]
fn target_stops_after_a_step() {
    let c = compiled(
        &spec_with(""),
        &CompileOptions {
            target: Some(StepName::Pip),
            ..token()
        },
    );
    let names: Vec<&str> = c.plan.steps.iter().map(|s| s.name.as_str()).collect();
    assert_eq!(names, ["base", "apt", "pip"]);
    let spec = parse("[torch]\nversion = \"2.8.0\"\n", "t.toml").unwrap();
    let res = resolve(&spec.request()).unwrap();
    let e = compile(
        &spec,
        &res,
        &CompileOptions {
            target: Some(StepName::Apt),
            ..token()
        },
    )
    .unwrap_err();
    assert!(matches!(e, CompileError::StepNotInPlan(_)), "{e}");
}

fn locked() -> LockedSet {
    LockedSet {
        reference: "docker.io/pytorch/pytorch:2.8.0-cuda12.8-cudnn9-runtime".into(),
        digest: DIGEST.into(),
        apt: vec!["jq=1.6-2.1".into(), "libjq1=1.6-2.1".into()],
        python: "six==1.16.0 --hash=sha256:00\n".into(),
        python_count: 1,
    }
}

#[test]
fn a_lock_pins_the_base_and_installs_exactly_its_set() {
    let spec = spec_with("");
    let c = compiled(
        &spec,
        &CompileOptions {
            lock: Some(locked()),
            ..token()
        },
    );
    assert_eq!(c.plan.base.digest.as_deref(), Some(DIGEST));
    let names: Vec<&str> = c.plan.steps.iter().map(|s| s.name.as_str()).collect();
    assert_eq!(
        names,
        ["base", "apt", "pip", "user", "copy"],
        "one pip step for the lock"
    );
    let Run::Exec { args, .. } = &c.plan.steps[1].run else {
        panic!()
    };
    assert!(
        args[2].contains("install -y --no-install-recommends jq=1.6-2.1 libjq1=1.6-2.1"),
        "{args:?}"
    );
    let Run::Exec { args, .. } = &c.plan.steps[2].run else {
        panic!()
    };
    assert_eq!(
        args[..8],
        [
            "python",
            "-m",
            "pip",
            "install",
            "--require-hashes",
            "--no-deps",
            "-r",
            LOCK_MOUNT
        ]
    );
    // The lock's requirements are a read-only bind of a file op, never a layer, and the
    // requirements file of the context is not used.
    let dump = llb::dump(&c.definition).unwrap().to_string();
    assert!(
        dump.contains("[torchkit] lock: 1 python packages"),
        "{dump}"
    );
    assert!(
        dump.contains(&format!(r#""dest":"{LOCK_MOUNT}","type":"bind""#)),
        "{dump}"
    );
    assert!(!dump.contains(REQUIREMENTS_MOUNT), "{dump}");
    assert!(
        c.plan.steps[2].resolve.is_none() && !dump.contains(RESOLVED_MOUNT),
        "a lock is the resolution: nothing to resolve"
    );
    assert!(
        dump.contains(&format!("pytorch:2.8.0-cuda12.8-cudnn9-runtime@{DIGEST}")),
        "{dump}"
    );

    // The lock's content is an input of the pip step: another lock, another digest.
    let mut other = locked();
    other.python = "six==1.17.0 --hash=sha256:01\n".into();
    let c2 = compiled(
        &spec,
        &CompileOptions {
            lock: Some(other),
            ..token()
        },
    );
    assert_ne!(
        llb::dump(&c2.definition).unwrap()["result"],
        llb::dump(&c.definition).unwrap()["result"]
    );
}

#[test]
fn the_test_profile_reinstalls_a_locked_set() {
    // With a lock there is no resolution to redo, so `test` re-runs the install itself.
    let c = compiled(
        &spec_with("[cache]\nprofile = \"test\"\n"),
        &CompileOptions {
            lock: Some(locked()),
            ..token()
        },
    );
    assert!(matches!(c.plan.steps[2].cache, CacheRule::Bust { .. }));
    assert!(mount_dests(op(&ops(&c), "pip")).contains(&BUST_MOUNT.to_string()));
}

#[test]
fn a_lock_for_another_base_does_not_pin_this_one() {
    let spec = spec_with("");
    let mut l = locked();
    l.reference = "docker.io/pytorch/pytorch:2.7.1-cuda12.6-cudnn9-runtime".into();
    let c = compiled(
        &spec,
        &CompileOptions {
            lock: Some(l),
            ..token()
        },
    );
    assert_eq!(c.plan.base.digest, None);
}

#[test]
fn a_named_context_names_the_base_in_its_familiar_forms() {
    let spec = spec_with("");
    let res = resolve(&spec.request()).unwrap();
    assert_eq!(
        base_context_names(&spec, &res).unwrap(),
        vec!["pytorch/pytorch:2.8.0-cuda12.8-cudnn9-runtime"]
    );
    let spec = spec_with("[base]\nmirror = \"mirror.example.com/hub\"\n");
    assert_eq!(
        base_context_names(&spec, &res).unwrap(),
        vec![
            "pytorch/pytorch:2.8.0-cuda12.8-cudnn9-runtime",
            "mirror.example.com/hub/pytorch/pytorch:2.8.0-cuda12.8-cudnn9-runtime"
        ]
    );
}

#[test]
fn a_base_source_replaces_the_base_with_its_own_pin_only() {
    // The mirror and the lock's digest belong to the image the spec names, not to this one;
    // the lock's package set still installs.
    let spec = spec_with("[base]\nmirror = \"mirror.example.com/hub\"\n");
    let c = compiled(
        &spec,
        &CompileOptions {
            base_source: Some("localhost:5000/mirror/pytorch:2.8.0".into()),
            lock: Some(locked()),
            ..token()
        },
    );
    assert_eq!(c.plan.base.reference, "localhost:5000/mirror/pytorch:2.8.0");
    assert_eq!(c.plan.base.digest, None);
    let dump = llb::dump(&c.definition).unwrap().to_string();
    assert!(dump.contains("--require-hashes"), "{dump}");

    let pinned = format!("localhost:5000/mirror/pytorch:2.8.0@{DIGEST}");
    let c = compiled(
        &spec,
        &CompileOptions {
            base_source: Some(pinned.clone()),
            profile: Some(Profile::Release),
            ..token()
        },
    );
    assert_eq!(c.plan.base.pinned_reference(), pinned);
}

// ---- The plan is the whole seam: lower follows it, and shows nothing it does not say. ----

fn named<'a>(ops: &'a [Value], name: &str) -> &'a Value {
    ops.iter()
        .find(|o| o["metadata"]["custom_name"] == name)
        .unwrap_or_else(|| panic!("no op named {name}"))
}

/// Every op of the LLB is a step, a resolve half or a helper node of the plan, built as the
/// plan says; and every step, resolve half and node of the plan is in the LLB.
fn assert_llb_follows_plan(plan: &Plan, def: &pb::Definition) {
    // The image's steps, then the verify stage's (in the stage's definition).
    let steps: Vec<&Step> = plan
        .steps
        .iter()
        .chain(
            plan.verify
                .planned()
                .into_iter()
                .flat_map(|v| v.steps.iter()),
        )
        .collect();
    use std::collections::{BTreeSet, HashMap};
    let dump = llb::dump(def).unwrap();
    let ops = dump["ops"].as_array().unwrap();
    let by_digest: HashMap<&str, &Value> = ops
        .iter()
        .map(|o| (o["digest"].as_str().unwrap(), o))
        .collect();
    let input_name = |op: &Value, i: &Value| -> String {
        let d = op["inputs"][i.as_u64().unwrap() as usize]["digest"]
            .as_str()
            .unwrap();
        by_digest[d]["metadata"]["custom_name"]
            .as_str()
            .unwrap_or_default()
            .to_string()
    };
    let title_of = |step: StepName, exec: Exec| -> String {
        let s = steps.iter().find(|s| s.name == step).unwrap();
        match exec {
            Exec::Run => s.title.clone(),
            Exec::Resolve => s.resolve.as_ref().unwrap().title.clone(),
        }
    };
    let mut seen = BTreeSet::new();
    for op in ops {
        if op["kind"] == "terminal" {
            continue;
        }
        let name = op["metadata"]["custom_name"]
            .as_str()
            .unwrap_or_else(|| panic!("an op without a name: {op}"));
        seen.insert(name.to_string());
        if let Some(n) = plan.nodes.iter().find(|n| n.name == name) {
            match &n.source {
                NodeSource::Files { files } => {
                    let actions = op["file"]["actions"].as_array().unwrap();
                    assert_eq!(actions.len(), files.len(), "{name}");
                    for (a, f) in actions.iter().zip(files) {
                        assert_eq!(a["mkfile"]["path"], f.path.as_str(), "{name}");
                        assert_eq!(a["mkfile"]["data"], f.content.as_str(), "{name}");
                        assert_eq!(a["mkfile"]["mode"], format!("{:04o}", f.mode), "{name}");
                    }
                }
                NodeSource::Local {
                    name: dir,
                    shared_key_hint,
                    session_id,
                    exclude_patterns,
                    include_patterns,
                } => {
                    let attrs = &op["source"]["attrs"];
                    let list = |key: &str| -> Vec<String> {
                        attrs[key]
                            .as_str()
                            .map(|s| serde_json::from_str(s).unwrap())
                            .unwrap_or_default()
                    };
                    assert_eq!(&list("local.includepattern"), include_patterns);
                    assert_eq!(&list("local.followpaths"), include_patterns);
                    assert_eq!(op["source"]["identifier"], format!("local://{dir}"));
                    assert_eq!(attrs["local.sharedkeyhint"], shared_key_hint.as_str());
                    assert_eq!(attrs["local.session"].as_str(), session_id.as_deref());
                    let excludes: Vec<String> = attrs["local.excludepatterns"]
                        .as_str()
                        .map(|s| serde_json::from_str(s).unwrap())
                        .unwrap_or_default();
                    assert_eq!(&excludes, exclude_patterns);
                }
            }
            continue;
        }
        let (step, exec) = steps
            .iter()
            .copied()
            .find_map(|s| {
                if s.title == name {
                    Some((s, Exec::Run))
                } else if s.resolve.as_ref().is_some_and(|r| r.title == name) {
                    Some((s, Exec::Resolve))
                } else {
                    None
                }
            })
            .unwrap_or_else(|| panic!("the op `{name}` is not in the plan"));
        let resolve = step.resolve.as_ref();
        let ignore = match exec {
            Exec::Run => step.ignore_cache,
            Exec::Resolve => resolve.unwrap().ignore_cache,
        };
        assert_eq!(op["metadata"]["ignore_cache"], ignore, "{name}");
        assert_eq!(op["locations"][0]["ranges"][0][0], step.span.line, "{name}");
        match &step.run {
            Run::Image => {
                assert_eq!(
                    op["source"]["identifier"],
                    format!("docker-image://{}", plan.base.pinned_reference())
                );
                assert_eq!(op["platform"], plan.platform.as_str());
            }
            Run::Exec {
                args,
                env,
                user,
                cwd,
                mounts,
                ..
            } => {
                let (args, mounts) = match exec {
                    Exec::Run => (args, mounts),
                    Exec::Resolve => (&resolve.unwrap().args, &resolve.unwrap().mounts),
                };
                let e = &op["exec"];
                assert_eq!(e["args"], serde_json::json!(args), "{name}");
                let want_env: Vec<String> = plan
                    .base
                    .env
                    .iter()
                    .chain(env)
                    .map(|(k, v)| format!("{k}={v}"))
                    .collect();
                assert_eq!(e["env"], serde_json::json!(want_env), "{name}");
                assert_eq!(e["user"], user.as_str(), "{name}");
                assert_eq!(e["cwd"], cwd.as_str(), "{name}");
                let got: Vec<&Value> = e["mounts"]
                    .as_array()
                    .unwrap()
                    .iter()
                    .filter(|m| m["dest"] != "/")
                    .collect();
                assert_eq!(got.len(), mounts.len(), "{name}: {got:?} vs {mounts:?}");
                for m in mounts {
                    let g = got
                        .iter()
                        .find(|g| g["dest"] == m.dest())
                        .unwrap_or_else(|| panic!("{name}: no mount at {}", m.dest()));
                    match m {
                        Mount::Cache { id, sharing, .. } => {
                            assert_eq!(g["type"], "cache");
                            assert_eq!(g["cache"]["id"], id.as_str());
                            let s = serde_json::to_value(sharing).unwrap();
                            assert_eq!(g["cache"]["sharing"], s);
                        }
                        Mount::Secret { id, .. } => {
                            assert_eq!(g["type"], "secret");
                            assert_eq!(g["secret"]["id"], id.as_str());
                        }
                        Mount::Node {
                            node,
                            path,
                            readonly,
                            ..
                        } => {
                            assert_eq!(g["type"], "bind");
                            assert_eq!(g["selector"], path.as_str());
                            assert_eq!(g["readonly"], *readonly);
                            let n = plan.node(*node).unwrap();
                            assert_eq!(input_name(op, &g["input"]), n.name, "{name}");
                        }
                        Mount::Scratch { .. } => {
                            assert_eq!(g["type"], "bind");
                            assert_eq!(g["input"], -1);
                            assert_eq!(g["readonly"], false);
                        }
                        Mount::Output {
                            step,
                            exec,
                            path,
                            readonly,
                            ..
                        } => {
                            assert_eq!(g["type"], "bind");
                            assert_eq!(g["selector"], path.as_str());
                            assert_eq!(g["readonly"], *readonly);
                            let from = input_name(op, &g["input"]);
                            if *step == StepName::Verify {
                                // Each verify exec carries the one before's output.
                                assert!(from.starts_with("[torchkit verify"), "{from}");
                            } else {
                                assert_eq!(from, title_of(*step, *exec));
                            }
                        }
                    }
                }
            }
            Run::Copy {
                from,
                copies,
                uid,
                gid,
            } => {
                let actions = op["file"]["actions"].as_array().unwrap();
                assert_eq!(actions.len(), copies.len(), "{name}");
                for (a, (src, dest)) in actions.iter().zip(copies) {
                    // The builder cleans the path (`/src/` → `/src`), as Go's does.
                    let want = format!("/{src}");
                    assert_eq!(a["copy"]["src"], want.trim_end_matches('/'));
                    assert_eq!(a["copy"]["dest"], dest.as_str());
                    assert_eq!(a["copy"]["owner"]["user"], *uid);
                    assert_eq!(a["copy"]["owner"]["group"], *gid);
                    assert_eq!(
                        input_name(op, &a["secondary_input"]),
                        plan.node(*from).unwrap().name
                    );
                }
            }
        }
    }
    for n in &plan.nodes {
        assert!(seen.contains(&n.name), "node {} is not in the LLB", n.name);
    }
    for s in &steps {
        assert!(
            seen.contains(&s.title),
            "step {} is not in the LLB",
            s.title
        );
        if let Some(r) = &s.resolve {
            assert!(seen.contains(&r.title), "{} is not in the LLB", r.title);
        }
    }
}

#[test]
fn the_llb_is_the_plan_and_nothing_else() {
    let res = |spec: &Spec| resolve(&spec.request()).unwrap();
    let mut cases: Vec<(String, Spec, CompileOptions)> = vec![];
    for profile in [Profile::Dev, Profile::Test, Profile::Release] {
        cases.push((
            format!("{profile}"),
            spec_with("[cache]\nepoch = \"e1\"\nbust = [\"apt\", \"copy\"]\n"),
            CompileOptions {
                profile: Some(profile),
                base: BaseMeta {
                    digest: Some(DIGEST.into()),
                    config: None,
                },
                ca_secret: CaSecret::Required,
                source_date_epoch: Some(1_700_000_000),
                session_id: Some("s1".into()),
                context_excludes: vec![".git".into(), "*.pyc".into()],
                ..token()
            },
        ));
    }
    cases.push((
        "locked test".into(),
        spec_with("[cache]\nprofile = \"test\"\n"),
        CompileOptions {
            lock: Some(locked()),
            ..token()
        },
    ));
    cases.push((
        "no-cache".into(),
        spec_with("[image.env]\nHF_HOME = \"/hf\"\n"),
        CompileOptions {
            no_cache: NoCache::All,
            ..token()
        },
    ));
    for (what, spec, opts) in cases {
        let c = compile(&spec, &res(&spec), &opts).unwrap_or_else(|e| panic!("{what}: {e}"));
        assert_llb_follows_plan(&c.plan, &c.verify.expect("verify").stage);
    }
    let spec = spec_with("");
    let run = resolution_run(&ResolutionInputs {
        spec: &spec,
        resolution: &res(&spec),
        base: BaseMeta {
            digest: Some(DIGEST.into()),
            config: None,
        },
        requirements: Some(b"six==1.16.0\n"),
        ca_secret: CaSecret::Required,
    })
    .unwrap()
    .unwrap();
    assert_llb_follows_plan(&run, &lower(&run).unwrap().definition);
}

#[test]
fn lower_follows_a_plan_edited_by_hand() {
    let spec = spec_with("[cache]\nepoch = \"2026-01\"\n");
    let res = resolve(&spec.request()).unwrap();
    let plan = super::plan(&spec, &res, &token()).unwrap();
    let before = ops(&compiled(&spec, &token()));

    // Another epoch in the node: the steps that mount it re-run, the others do not.
    let mut p = plan.clone();
    let epoch = p.nodes.iter_mut().find(|n| n.id == NodeId::Epoch).unwrap();
    let NodeSource::Files { files } = &mut epoch.source else {
        panic!("the epoch node is a file")
    };
    files[0].content = "2026-02".into();
    let after = ops_of(&lower(&p).unwrap().definition);
    for (step, same) in [("base", true), ("apt", true), ("pip", false)] {
        assert_eq!(
            digest(op(&before, step)) == digest(op(&after, step)),
            same,
            "{step}"
        );
    }
    assert_ne!(
        digest(resolve_op(&before, "pip")),
        digest(resolve_op(&after, "pip"))
    );

    // An extra mount in a step: the exec has it.
    let mut p = plan.clone();
    let Run::Exec { mounts, .. } = &mut p.steps[1].run else {
        panic!("apt is an exec")
    };
    mounts.push(Mount::Secret {
        dest: "/run/secrets/extra".into(),
        id: "extra".into(),
        optional: false,
    });
    let after = ops_of(&lower(&p).unwrap().definition);
    assert!(mount_dests(op(&after, "apt")).contains(&"/run/secrets/extra".to_string()));
    assert_eq!(digest(op(&before, "base")), digest(op(&after, "base")));

    // The base env is what every exec starts with.
    let mut p = plan.clone();
    p.base.env.push(("EXTRA".into(), "1".into()));
    let after = ops_of(&lower(&p).unwrap().definition);
    assert!(op(&after, "user")["exec"]["env"]
        .to_string()
        .contains("EXTRA=1"));

    // A cache rule is data too: ignore_cache set by hand is ignore_cache in the graph.
    let mut p = plan.clone();
    p.steps[1].ignore_cache = true;
    let after = ops_of(&lower(&p).unwrap().definition);
    assert_eq!(op(&after, "apt")["metadata"]["ignore_cache"], true);
    assert_eq!(op(&after, "pip")["metadata"]["ignore_cache"], false);

    // A mount of a node the plan does not list is refused, not invented.
    let mut p = plan.clone();
    p.nodes.retain(|n| n.id != NodeId::Constraints);
    let e = lower(&p).unwrap_err();
    assert!(matches!(e, CompileError::BadPlan(_)), "{e}");
    assert!(e.to_string().contains("constraints"), "{e}");
}

fn ops_of(def: &pb::Definition) -> Vec<Value> {
    llb::dump(def).unwrap()["ops"].as_array().unwrap().clone()
}

#[test]
fn a_release_plan_needs_no_pin_but_its_build_does() {
    let spec = spec_with("[cache]\nprofile = \"release\"\n");
    let res = resolve(&spec.request()).unwrap();
    // Subrequests, `torchkit plan` and the graph read the plan of an unpinned release build.
    let p = super::plan(&spec, &res, &CompileOptions::default()).unwrap();
    assert_eq!(p.profile, Profile::Release);
    assert!(p.steps.iter().all(|s| s.ignore_cache));
    assert!(
        p.cache_ids().is_empty(),
        "release mounts no download caches"
    );
    let e = p.check_buildable().unwrap_err();
    assert!(matches!(e, CompileError::ReleaseUnpinned { .. }), "{e}");
    let e = lower(&p).unwrap_err();
    assert!(matches!(e, CompileError::ReleaseUnpinned { .. }), "{e}");
    // Pinned, it lowers.
    let mut pinned = p.clone();
    pinned.base.digest = Some(DIGEST.into());
    assert!(lower(&pinned).is_ok());
}

#[test]
fn nodes_are_exactly_those_the_steps_use() {
    // Stopping at `pip` leaves out the requirements step, and with it the context.
    let c = compiled(
        &spec_with("[cache]\nepoch = \"e\"\n"),
        &CompileOptions {
            target: Some(StepName::Pip),
            ..token()
        },
    );
    let ids: Vec<NodeId> = c.plan.nodes.iter().map(|n| n.id).collect();
    assert_eq!(
        ids,
        [NodeId::Resolver, NodeId::Constraints, NodeId::Epoch],
        "first use order"
    );
    let spec = parse("[torch]\nversion = \"2.8.0\"\n", "t.toml").unwrap();
    let skip = CompileOptions {
        skip_verify: true,
        ..token()
    };
    assert!(compiled(&spec, &skip).plan.nodes.is_empty());
    // The verify stage's two nodes, and nothing else.
    let ids: Vec<NodeId> = compiled(&spec, &token())
        .plan
        .nodes
        .iter()
        .map(|n| n.id)
        .collect();
    assert_eq!(ids, [NodeId::Verifier, NodeId::VerifyOut]);
}

fn run_inputs<'a>(spec: &'a Spec, res: &'a crate::resolve::Resolution) -> ResolutionInputs<'a> {
    ResolutionInputs {
        spec,
        resolution: res,
        base: BaseMeta {
            digest: Some(DIGEST.into()),
            config: Some(serde_json::json!({"config": {"Env": ["PATH=/opt/conda/bin:/usr/bin"]}})),
        },
        requirements: Some(b"six==1.16.0\n"),
        ca_secret: CaSecret::Required,
    }
}

#[test]
fn the_lock_resolution_run_is_a_plan_lowered_like_a_build() {
    let text = SPEC
        .replace(
            "[python]\n",
            "[python]\nindex_url = \"https://example.com/simple?a='b'\"\n",
        )
        .replace(
            "[image]\n",
            "[image]\nenv = { PIP_DEFAULT_TIMEOUT = \"60\" }\n",
        );
    let spec = parse(&text, "torchkit.toml").unwrap();
    let res = resolve(&spec.request()).unwrap();
    let run = resolution_run(&run_inputs(&spec, &res)).unwrap().unwrap();
    let names: Vec<&str> = run.steps.iter().map(|s| s.name.as_str()).collect();
    assert_eq!(names, ["base", "apt", "pip"]);
    assert_eq!(
        run.output,
        Output::Directory {
            dest: RESOLUTION_OUT_DIR.into()
        }
    );
    assert!(run.check_buildable().is_ok());
    let lowered = lower(&run).unwrap();
    assert!(lowered.image_config.is_none());
    let ops = ops_of(&lowered.definition);

    // Never from the cache, on the pinned base, with the build's env and constraints.
    assert!(ops
        .iter()
        .filter(|o| o["kind"] != "terminal")
        .filter(|o| o["kind"] != "file")
        .all(|o| o["metadata"]["ignore_cache"] == true));
    let pip = named(&ops, &run.steps[2].title);
    let env = pip["exec"]["env"].to_string();
    assert!(
        env.contains("PIP_DEFAULT_TIMEOUT=60"),
        "the spec's env: {env}"
    );
    assert!(
        env.contains("PATH=/opt/conda/bin:/usr/bin"),
        "the base's env: {env}"
    );
    assert!(env.contains("PIP_CERT=/run/secrets/torchkit-ca"), "{env}");
    let args: Vec<&str> = pip["exec"]["args"]
        .as_array()
        .unwrap()
        .iter()
        .map(|a| a.as_str().unwrap())
        .collect();
    assert!(
        args.windows(2)
            .any(|w| w == ["--report", "/out/pip-report.json"]),
        "{args:?}"
    );
    assert!(
        args.windows(2).any(|w| w == ["-c", CONSTRAINTS_MOUNT]),
        "{args:?}"
    );
    // An index URL is one argument, as the build passes it: no shell, no quoting.
    assert!(
        args.windows(2)
            .any(|w| w == ["--index-url", "https://example.com/simple?a='b'"]),
        "{args:?}"
    );
    assert!(
        args.windows(2).any(|w| w == ["-r", PACKAGES_MOUNT]),
        "{args:?}"
    );
    assert!(
        args.windows(2).any(|w| w == ["-r", REQUIREMENTS_MOUNT]),
        "{args:?}"
    );
    assert_eq!(
        named(&ops, &run.node(NodeId::Constraints).unwrap().name)["digest"],
        named(
            &ops_of(&compiled(&spec, &token()).definition),
            &run.node(NodeId::Constraints).unwrap().name
        )["digest"],
        "the build's constraints node, the same op"
    );
    let apt = named(&ops, &run.steps[1].title);
    assert!(apt["exec"]["args"][2]
        .as_str()
        .unwrap()
        .contains("install -s --no-install-recommends jq > /out/apt-simulate.txt"));
    assert!(mount_dests(apt).contains(&CA_SECRET_PATH.to_string()));
    // The answers are one directory: pip continues what apt wrote, and it is the result.
    let result = &llb::dump(&lowered.definition).unwrap()["result"];
    assert_eq!(result["digest"], pip["digest"]);
    let out = pip["exec"]["mounts"]
        .as_array()
        .unwrap()
        .iter()
        .find(|m| m["dest"] == RESOLUTION_OUT_DIR)
        .unwrap();
    assert_eq!(result["index"], out["output"]);
    assert_eq!(out["readonly"], false);
    assert_eq!(
        pip["inputs"][out["input"].as_u64().unwrap() as usize]["digest"],
        apt["digest"]
    );
    assert!(
        ops.iter()
            .filter_map(|o| o["source"]["identifier"].as_str())
            .any(|i| i.ends_with(&format!("@{DIGEST}"))),
        "pinned"
    );
}

#[test]
fn a_resolution_run_asks_only_what_the_spec_has() {
    let spec = parse(
        "[torch]\nversion = \"2.8.0\"\n[python]\npackages = [\"six\"]\n",
        "t.toml",
    )
    .unwrap();
    let res = resolve(&spec.request()).unwrap();
    let mut i = run_inputs(&spec, &res);
    i.requirements = None;
    i.ca_secret = CaSecret::None;
    let run = resolution_run(&i).unwrap().unwrap();
    let names: Vec<&str> = run.steps.iter().map(|s| s.name.as_str()).collect();
    assert_eq!(names, ["base", "pip"]);
    let Run::Exec { mounts, .. } = &run.steps[1].run else {
        panic!()
    };
    assert!(mounts.contains(&Mount::Scratch {
        dest: RESOLUTION_OUT_DIR.into()
    }));
    assert!(run.node(NodeId::Requirements).is_none());
    assert!(lower(&run).is_ok());

    // Nothing to ask: no plan, the lock pins the base alone.
    let spec = parse("[torch]\nversion = \"2.8.0\"\n", "t.toml").unwrap();
    let res = resolve(&spec.request()).unwrap();
    let mut i = run_inputs(&spec, &res);
    i.requirements = None;
    assert!(resolution_run(&i).unwrap().is_none());

    // No digest from the lookup or the spec: the run cannot be built.
    let spec = spec_with("");
    let res = resolve(&spec.request()).unwrap();
    let mut i = run_inputs(&spec, &res);
    i.base.digest = None;
    let run = resolution_run(&i).unwrap().unwrap();
    assert!(matches!(
        lower(&run).unwrap_err(),
        CompileError::ReleaseUnpinned { .. }
    ));
}

fn verify_of(c: &Compiled) -> &VerifyPlan {
    c.plan.verify.planned().expect("a verify stage")
}

#[test]
fn verify_checks_what_the_resolution_says_as_the_user_offline_and_is_not_in_the_image() {
    let spec = spec_with("[target]\ngpus = [\"H100\", \"RTX 5090\"]\n");
    let c = compiled(&spec, &token());
    let v = verify_of(&c);
    assert_eq!(v.expect.torch, "2.8.0");
    assert_eq!(v.expect.cuda.as_deref(), Some("12.8"));
    assert_eq!(v.expect.cudnn.as_deref(), Some("9"));
    assert_eq!(v.expect.torchvision.as_deref(), Some("0.23.0"));
    let ccs: Vec<(&str, &str)> = v
        .expect
        .gpus
        .iter()
        .map(|g| (g.compute_capability.as_str(), g.verdict.as_str()))
        .collect();
    assert_eq!(ccs, [("9.0", "native"), ("12.0", "native")]);
    assert!(!v.expect.gpu && v.devices.is_empty());
    assert_eq!(v.steps.len(), 2, "checks and gate");
    for s in &v.steps {
        let Run::Exec {
            user,
            cwd,
            offline,
            devices,
            ..
        } = &s.run
        else {
            panic!("{s:?}")
        };
        assert_eq!((user.as_str(), cwd.as_str()), ("app", "/workspace"));
        assert!(*offline && devices.is_empty());
    }
    assert!(v.steps[0].title.contains("sm_90 (H100), sm_120 (RTX 5090)"));
    // The expectation travels in the verifier node, exactly as planned.
    let node = c.plan.node(NodeId::Verifier).unwrap();
    let NodeSource::Files { files } = &node.source else {
        panic!()
    };
    let sent: verify::Expect = serde_json::from_str(&files[1].content).unwrap();
    assert_eq!(&sent, &v.expect);
    assert_eq!(files[0].content, verify::VERIFY_SCRIPT);
    // The report file belongs to the image's user, who runs the checks.
    let out = c.plan.node(NodeId::VerifyOut).unwrap();
    let NodeSource::Files { files } = &out.source else {
        panic!()
    };
    assert_eq!(files[0].owner, Some(1000));
    // The image's definition has no verify exec; the stage's has the image and both.
    let names = |d: &pb::Definition| -> Vec<String> {
        llb::dump(d).unwrap()["ops"]
            .as_array()
            .unwrap()
            .iter()
            .filter_map(|o| o["metadata"]["custom_name"].as_str().map(String::from))
            .collect()
    };
    let defs = c.verify.as_ref().unwrap();
    assert!(!names(&c.definition).iter().any(|n| n.contains("verify")));
    let stage = names(&defs.stage);
    assert!(stage.iter().any(|n| n.starts_with("[torchkit verify 2/2]")));
    assert!(stage.iter().any(|n| n.starts_with("[torchkit 6/6]")));
    let checks = names(&defs.checks);
    assert!(!checks
        .iter()
        .any(|n| n.starts_with("[torchkit verify 2/2]")));
    let exec = llb::dump(&defs.checks).unwrap()["ops"]
        .as_array()
        .unwrap()
        .iter()
        .find(|o| {
            o["metadata"]["custom_name"]
                .as_str()
                .is_some_and(|n| n.starts_with("[torchkit verify 1/2]"))
        })
        .cloned()
        .unwrap();
    assert_eq!(exec["exec"]["network"], "none", "{exec}");
    assert_eq!(exec["exec"]["user"], "app");
}

#[test]
fn verify_is_skipped_visibly_and_its_target_is_the_report() {
    let spec = spec_with("");
    for (opts, reason) in [
        (
            CompileOptions {
                skip_verify: true,
                ..token()
            },
            "--skip-verify (TORCHKIT_SKIP_VERIFY)",
        ),
        (
            CompileOptions {
                target: Some(StepName::Pip),
                ..token()
            },
            "--target pip stops before the finished image",
        ),
    ] {
        let c = compiled(&spec, &opts);
        assert_eq!(
            c.plan.verify,
            VerifyStage::Skipped {
                reason: reason.into()
            }
        );
        assert!(c.verify.is_none());
        assert!(c.plan.node(NodeId::Verifier).is_none());
    }
    let off = spec_with("[verify]\nenabled = false\n");
    let c = compiled(&off, &token());
    assert!(
        matches!(&c.plan.verify, VerifyStage::Skipped { reason } if reason == "[verify] enabled = false")
    );
    let e = compile(
        &off,
        &resolve(&off.request()).unwrap(),
        &CompileOptions {
            target: Some(StepName::Verify),
            ..token()
        },
    )
    .unwrap_err();
    assert!(
        matches!(e, CompileError::StepNotInPlan(StepName::Verify)),
        "{e}"
    );

    let c = compiled(
        &spec,
        &CompileOptions {
            target: Some(StepName::Verify),
            ..token()
        },
    );
    assert_eq!(c.plan.output, Output::Verify);
    assert!(c.image_config.is_none());
    assert_eq!(
        c.definition,
        c.verify.as_ref().unwrap().stage,
        "--target verify builds the stage"
    );
}

#[test]
fn verify_tests_run_in_the_workdir_with_the_context_and_network_as_asked() {
    let spec = spec_with(
        "[verify]\nrun = [\"pytest -q tests/\", [\"python\", \"-m\", \"unittest\"]]\nnetwork = true\n",
    );
    let c = compiled(&spec, &token());
    let v = verify_of(&c);
    assert_eq!(v.steps.len(), 4);
    let Run::Exec {
        args,
        mounts,
        offline,
        ..
    } = &v.steps[2].run
    else {
        panic!()
    };
    assert_eq!(args, &["/bin/sh", "-c", "pytest -q tests/"]);
    assert!(!offline, "[verify] network = true");
    assert!(mounts.contains(&Mount::node("/workspace", NodeId::Context, "/")));
    // The app user gets a pip cache of its own, created as its directory.
    assert!(mounts.contains(&Mount::Cache {
        dest: verify::TESTS_PIP_CACHE.into(),
        id: "torchkit/pip/cu128/uid1000".into(),
        sharing: CacheSharing::Locked,
        owner: Some(1000),
    }));
    assert_eq!(v.steps[2].span.line, spec.span_of("verify.run.0").line);
    let Run::Exec { args, .. } = &v.steps[3].run else {
        panic!()
    };
    assert_eq!(args, &["python", "-m", "unittest"]);
    // `[cache] bust = ["verify"]` re-runs the whole stage, and only it.
    let c = compiled(&spec_with("[cache]\nbust = [\"verify\"]\n"), &token());
    assert_eq!(c.plan.busted, [StepName::Verify]);
    assert!(verify_of(&c)
        .steps
        .iter()
        .all(|s| matches!(s.cache, CacheRule::Bust { .. })));
}

#[test]
fn gpus_attach_cdi_devices_and_need_buildkit_0_20() {
    let spec = spec_with("");
    let opts = CompileOptions {
        gpus: Some("device=0".parse().unwrap()),
        ..token()
    };
    let c = compiled(&spec, &opts);
    let v = verify_of(&c);
    assert_eq!(v.devices, ["nvidia.com/gpu=0"]);
    assert!(v.expect.gpu);
    let stage = llb::dump(&c.verify.as_ref().unwrap().checks).unwrap();
    let checks = stage["ops"]
        .as_array()
        .unwrap()
        .iter()
        .find(|o| {
            o["exec"].is_object()
                && o["metadata"]["custom_name"]
                    .as_str()
                    .unwrap()
                    .contains("verify 1/2")
        })
        .cloned()
        .unwrap();
    assert_eq!(
        checks["exec"]["cdi_devices"],
        serde_json::json!([{"name": "nvidia.com/gpu=0", "optional": false}])
    );
    assert!(checks.to_string().contains("exec.meta.cdi"), "{checks}");
    // `[verify] gpu = true` means every GPU.
    let c = compiled(&spec_with("[verify]\ngpu = true\n"), &token());
    assert_eq!(verify_of(&c).devices, ["nvidia.com/gpu=all"]);
    // BuildKit 0.13 (Docker 26.1) has no CDI devices: refused before the solve, naming
    // the release that has them.
    let caps = include_str!(
        "../../tests/fixtures/caps/buildkit-v0.13.2-docker-26.1.5-containerd-store.txt"
    );
    let old = llb::Supported::only(
        caps.lines()
            .filter(|l| !l.starts_with('#') && !l.is_empty())
            .map(String::from),
    );
    let e = compile(
        &spec,
        &resolve(&spec.request()).unwrap(),
        &CompileOptions {
            supported: old.clone(),
            ..opts
        },
    )
    .unwrap_err();
    let msg = e.to_string();
    assert!(
        msg.contains("exec.meta.cdi") && msg.contains("v0.20.0"),
        "{msg}"
    );
    // Without GPUs the same daemon builds the stage.
    compile(
        &spec,
        &resolve(&spec.request()).unwrap(),
        &CompileOptions {
            supported: old,
            ..token()
        },
    )
    .unwrap();
}
