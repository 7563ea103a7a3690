//! Golden tests: every `examples/*/torchkit.toml` at every profile → plan JSON, LLB dump and
//! image config, compared with `tests/golden/<example>/<profile>/`; and the resolution run of
//! `torchkit lock` for the quickstart, in `tests/golden/quickstart/lock/`. Regenerate after
//! an intended change with `UPDATE_GOLDEN=1 cargo test --test golden` and review the diff.
//!
//! Also: compiling twice gives identical bytes, and decode → re-encode is byte-identical.

use std::path::{Path, PathBuf};

use torchkit::llb;
use torchkit::plan::{self, BaseMeta, CaSecret, CompileOptions, Plan};
use torchkit::resolve;
use torchkit::spec;
use torchkit::vocab::Profile;

mod support;

const PROFILES: [Profile; 3] = [Profile::Dev, Profile::Test, Profile::Release];

/// The pin of release builds (they need one) and of the lock's resolution run.
const DIGEST: &str = "sha256:0123456789abcdef0123456789abcdef0123456789abcdef0123456789abcdef";

fn examples() -> Vec<PathBuf> {
    let root = Path::new(env!("CARGO_MANIFEST_DIR")).join("examples");
    let mut v: Vec<PathBuf> = std::fs::read_dir(&root)
        .unwrap()
        .map(|e| e.unwrap().path())
        .filter(|p| p.join("torchkit.toml").is_file())
        .collect();
    v.sort();
    assert!(v.len() >= 3, "expected the examples in {}", root.display());
    v
}

fn name(dir: &Path) -> String {
    dir.file_name().unwrap().to_string_lossy().into_owned()
}

fn options(profile: Profile) -> CompileOptions {
    CompileOptions {
        profile: Some(profile),
        // Fixed, so that busted steps have stable digests in the goldens.
        build_token: Some("golden-build-token".into()),
        base: BaseMeta {
            digest: (profile == Profile::Release).then(|| DIGEST.to_string()),
            config: None,
        },
        ..CompileOptions::default()
    }
}

fn load(dir: &Path) -> (spec::Spec, resolve::Resolution) {
    let text = std::fs::read_to_string(dir.join("torchkit.toml")).unwrap();
    let spec = spec::parse(&text, "torchkit.toml").unwrap();
    let res = resolve::resolve(&spec.request()).unwrap();
    (spec, res)
}

fn compile(dir: &Path, profile: Profile) -> plan::Compiled {
    let (spec, res) = load(dir);
    plan::compile(&spec, &res, &options(profile)).unwrap()
}

fn check(golden: &Path, actual: &str) {
    support::golden::check("golden", golden, actual);
}

fn pretty<T: serde::Serialize>(v: &T) -> String {
    serde_json::to_string_pretty(v).unwrap() + "\n"
}

fn check_plan_and_llb(dir: &Path, plan: &Plan, definition: &llb::pb::Definition) {
    check(&dir.join("plan.json"), &pretty(plan));
    check(
        &dir.join("llb.json"),
        &pretty(&llb::dump(definition).unwrap()),
    );
}

#[test]
fn every_example_at_every_profile_matches_its_goldens() {
    let goldens = Path::new(env!("CARGO_MANIFEST_DIR")).join("tests/golden");
    for dir in examples() {
        for profile in PROFILES {
            let c = compile(&dir, profile);
            assert_eq!(c.plan.profile, profile);
            let out = goldens.join(name(&dir)).join(profile.as_str());
            check_plan_and_llb(&out, &c.plan, &c.definition);
            let cfg: serde_json::Value =
                serde_json::from_slice(c.image_config.as_deref().unwrap()).unwrap();
            check(&out.join("image-config.json"), &pretty(&cfg));
        }
    }
}

/// The quickstart's resolution run, as `torchkit lock` plans it (apt, packages and a
/// requirements file: every part of the run).
fn resolution_run() -> Plan {
    let dir = Path::new(env!("CARGO_MANIFEST_DIR")).join("examples/quickstart");
    let (spec, res) = load(&dir);
    let requirements = std::fs::read(dir.join("requirements.txt")).unwrap();
    plan::resolution_run(&plan::ResolutionInputs {
        spec: &spec,
        resolution: &res,
        base: BaseMeta {
            digest: Some(DIGEST.into()),
            config: None,
        },
        requirements: Some(&requirements),
        ca_secret: CaSecret::None,
    })
    .unwrap()
    .expect("the quickstart has something to resolve")
}

#[test]
fn the_lock_resolution_run_matches_its_goldens() {
    let run = resolution_run();
    let lowered = plan::lower(&run).unwrap();
    assert!(lowered.image_config.is_none(), "the run builds no image");
    let out = Path::new(env!("CARGO_MANIFEST_DIR")).join("tests/golden/quickstart/lock");
    check_plan_and_llb(&out, &run, &lowered.definition);
}

#[test]
fn compiling_twice_gives_identical_bytes() {
    for dir in examples() {
        for profile in PROFILES {
            let a = compile(&dir, profile);
            let b = compile(&dir, profile);
            assert_eq!(
                llb::definition_bytes(&a.definition),
                llb::definition_bytes(&b.definition),
                "{} {profile}",
                dir.display()
            );
            assert_eq!(
                a.image_config,
                b.image_config,
                "{} {profile}",
                dir.display()
            );
        }
    }
    let a = plan::lower(&resolution_run()).unwrap().definition;
    let b = plan::lower(&resolution_run()).unwrap().definition;
    assert_eq!(
        llb::definition_bytes(&a),
        llb::definition_bytes(&b),
        "lock run"
    );
}

#[test]
fn decode_reencode_round_trip() {
    let mut defs: Vec<(String, _)> = vec![];
    for dir in examples() {
        for profile in PROFILES {
            defs.push((
                format!("{} {profile}", dir.display()),
                compile(&dir, profile).definition,
            ));
        }
    }
    defs.push((
        "lock run".into(),
        plan::lower(&resolution_run()).unwrap().definition,
    ));
    for (what, def) in defs {
        let bytes = llb::definition_bytes(&def);
        let decoded = llb::decode(&bytes).unwrap();
        assert_eq!(llb::definition_bytes(&decoded), bytes, "{what}");
    }
}

/// The LLB caps of each BuildKit the e2e tests run on, as its gateway Ping reported them
/// (tests/fixtures/caps/).
fn measured_caps() -> Vec<(String, std::collections::BTreeSet<String>)> {
    let root = Path::new(env!("CARGO_MANIFEST_DIR")).join("tests/fixtures/caps");
    let mut v: Vec<_> = std::fs::read_dir(&root)
        .unwrap()
        .map(|e| e.unwrap().path())
        .map(|p| {
            let caps = std::fs::read_to_string(&p)
                .unwrap()
                .lines()
                .filter(|l| !l.is_empty() && !l.starts_with('#'))
                .map(str::to_owned)
                .collect();
            (name(&p), caps)
        })
        .collect();
    v.sort();
    assert!(
        v.len() >= 4,
        "expected the measured caps in {}",
        root.display()
    );
    v
}

/// Every example at every profile (with the CA secret and a `.dockerignore`, which add ops
/// and attributes) compiles for each measured BuildKit, and names only caps it has: the
/// daemon refuses a whole Definition that names one it lacks.
#[test]
fn every_example_compiles_for_every_measured_buildkit() {
    for (engine, caps) in measured_caps() {
        let supported = llb::Supported::only(caps.iter().cloned());
        for dir in examples() {
            for profile in PROFILES {
                let (spec, res) = load(&dir);
                let opts = CompileOptions {
                    ca_secret: CaSecret::Required,
                    context_excludes: vec!["data/".into()],
                    supported: supported.clone(),
                    ..options(profile)
                };
                let c = plan::compile(&spec, &res, &opts)
                    .unwrap_or_else(|e| panic!("{engine} {}: {e}", dir.display()));
                for md in c.definition.metadata.values() {
                    for cap in md.caps.keys() {
                        assert!(
                            caps.contains(cap),
                            "{engine} lacks `{cap}`, which {} at {profile} names",
                            dir.display()
                        );
                    }
                }
            }
        }
    }
}
