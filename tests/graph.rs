//! `torchkit graph`: goldens of every `examples/*/torchkit.toml` at every profile
//! (`tests/golden/<example>/<profile>/graph.dot` and `graph.mmd`; regenerate after an intended
//! change with `UPDATE_GOLDEN=1 cargo test --test graph` and review the diff), a check that the
//! graph shows exactly the execs, mounts and helper nodes of the LLB compiled from the same
//! plan, and the command itself (`--format svg` through Graphviz, and its error without it).

use std::collections::BTreeSet;
use std::path::{Path, PathBuf};
use std::process::Command;

use serde_json::Value;
use torchkit::llb;
use torchkit::plan::graph::{self, EdgeKind, Graph, NodeKind};
use torchkit::plan::{self, CaSecret, CompileOptions, NoCache, Plan};
use torchkit::resolve;
use torchkit::spec;
use torchkit::vocab::{Profile, Step};

mod support;
use support::TestCommand;

/// The pinned base of the release goldens (release refuses an unpinned base).
/// The same pin as tests/golden.rs.
const DIGEST: &str = "sha256:0123456789abcdef0123456789abcdef0123456789abcdef0123456789abcdef";

const PROFILES: [Profile; 3] = [Profile::Dev, Profile::Test, Profile::Release];

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

fn options(profile: Profile) -> CompileOptions {
    let mut o = CompileOptions {
        profile: Some(profile),
        // Fixed, so that busted steps have stable digests.
        build_token: Some("golden-build-token".into()),
        ..CompileOptions::default()
    };
    if profile == Profile::Release {
        o.base.digest = Some(DIGEST.into());
    }
    o
}

fn compile(dir: &Path, opts: &CompileOptions) -> plan::Compiled {
    let text = std::fs::read_to_string(dir.join("torchkit.toml")).unwrap();
    let spec = spec::parse(&text, "torchkit.toml").unwrap();
    let res = resolve::resolve(&spec.request()).unwrap();
    plan::compile(&spec, &res, opts).unwrap()
}

fn check(golden: &Path, actual: &str) {
    support::golden::check("graph", golden, actual);
}

fn golden_dir(example: &Path, profile: Profile) -> PathBuf {
    Path::new(env!("CARGO_MANIFEST_DIR"))
        .join("tests/golden")
        .join(example.file_name().unwrap())
        .join(profile.to_string())
}

#[test]
fn graphs_match_goldens_for_every_example_and_profile() {
    for dir in examples() {
        for profile in PROFILES {
            let g = graph::graph(&compile(&dir, &options(profile)).plan);
            let out = golden_dir(&dir, profile);
            check(&out.join("graph.dot"), &g.to_dot());
            check(&out.join("graph.mmd"), &g.to_mermaid());
        }
    }
    // torchkit lock's resolution run is a plan too.
    let g = graph::graph(&resolution_run());
    let out = Path::new(env!("CARGO_MANIFEST_DIR")).join("tests/golden/quickstart/lock");
    check(&out.join("graph.dot"), &g.to_dot());
    check(&out.join("graph.mmd"), &g.to_mermaid());
}

fn name(op: &Value) -> Option<&str> {
    op["metadata"]["custom_name"].as_str()
}

fn by_digest<'a>(ops: &'a [Value], d: &str) -> &'a Value {
    ops.iter().find(|o| o["digest"] == d).unwrap()
}

fn node_titled<'a>(g: &'a Graph, title: &str) -> &'a graph::Node {
    g.nodes
        .iter()
        .find(|n| n.title.as_deref() == Some(title))
        .unwrap_or_else(|| panic!("the graph has no node for op `{title}`"))
}

/// The graph draws what the LLB holds: one node per named op (steps, the resolve and install
/// halves apart, and helper nodes, matched by name), the same layer below each exec, the
/// same mounts (type, place and source), one node per cache id and secret, and the mark on
/// exactly the ops BuildKit re-runs (`ignore_cache`, or a mount of the bust node).
fn assert_graph_matches_llb(what: &str, plan: &Plan, definition: &llb::pb::Definition) {
    let g = graph::graph(plan);
    let ops = llb::dump(definition).unwrap()["ops"]
        .as_array()
        .unwrap()
        .clone();
    let named: BTreeSet<&str> = ops.iter().filter_map(name).collect();
    let titled: BTreeSet<&str> = g.nodes.iter().filter_map(|n| n.title.as_deref()).collect();
    assert_eq!(named, titled, "{what}: named ops vs graph nodes");

    let (mut caches, mut secrets) = (BTreeSet::new(), BTreeSet::new());
    for op in ops.iter().filter(|o| o["kind"] == "exec") {
        let title = name(op).unwrap();
        let node = node_titled(&g, title);
        let inputs = op["inputs"].as_array().unwrap();
        let input_op = |i: i64| by_digest(&ops, inputs[i as usize]["digest"].as_str().unwrap());
        let mut want = BTreeSet::new();
        for m in op["exec"]["mounts"].as_array().unwrap() {
            let (dest, ty, input) = (
                m["dest"].as_str().unwrap(),
                m["type"].as_str().unwrap(),
                m["input"].as_i64().unwrap(),
            );
            if dest == "/" {
                // The layer below: the graph's layer edge comes from that op's node.
                let below = name(input_op(input)).unwrap();
                let layer = g
                    .edges
                    .iter()
                    .find(|e| e.to == node.id && e.kind == EdgeKind::Layer)
                    .unwrap_or_else(|| panic!("{what}: no layer edge into {}", node.id));
                assert_eq!(
                    node_titled(&g, below).id,
                    layer.from,
                    "{what}: layer below {title}"
                );
                continue;
            }
            if ty == "bind" && input == -1 {
                // A scratch output: drawn as the edge to the exec that reads it.
                continue;
            }
            let source = match ty {
                "cache" => {
                    let id = m["cache"]["id"].as_str().unwrap().to_string();
                    caches.insert(id.clone());
                    format!("cache {id}")
                }
                "secret" => {
                    let id = m["secret"]["id"].as_str().unwrap().to_string();
                    secrets.insert(id.clone());
                    format!("secret {id}")
                }
                _ => node_titled(&g, name(input_op(input)).unwrap()).id.clone(),
            };
            want.insert((source, dest.to_string()));
        }
        let got: BTreeSet<(String, String)> = g
            .edges
            .iter()
            .filter(|e| e.to == node.id && e.kind != EdgeKind::Layer)
            .map(|e| {
                let from = g.nodes.iter().find(|n| n.id == e.from).unwrap();
                let source = match from.kind {
                    NodeKind::Cache | NodeKind::Secret => {
                        let id = from.details[0].strip_prefix("id ").unwrap();
                        format!("{} {id}", kind_word(from.kind))
                    }
                    _ => e.from.clone(),
                };
                (source, e.dest.clone().expect("mount edges say where"))
            })
            .collect();
        assert_eq!(got, want, "{what}: mounts of {title}");
    }
    // Copies: from the node the file op copies from.
    for op in ops
        .iter()
        .filter(|o| o["kind"] == "file" && !o["inputs"].as_array().unwrap().is_empty())
    {
        let node = node_titled(&g, name(op).unwrap());
        assert_eq!(node.kind, NodeKind::Copy, "{what}");
        let inputs = op["inputs"].as_array().unwrap();
        let input_node = |i: &Value| {
            let d = inputs[i.as_u64().unwrap() as usize]["digest"]
                .as_str()
                .unwrap();
            node_titled(&g, name(by_digest(&ops, d)).unwrap())
                .id
                .clone()
        };
        for action in op["file"]["actions"].as_array().unwrap() {
            let (below, from) = (
                input_node(&action["input"]),
                input_node(&action["secondary_input"]),
            );
            let has = |from: &str, kind: EdgeKind| {
                g.edges
                    .iter()
                    .any(|e| e.to == node.id && e.kind == kind && e.from == from)
            };
            assert!(has(&below, EdgeKind::Layer), "{what}: copy onto {below}");
            assert!(has(&from, EdgeKind::Copy), "{what}: copy from {from}");
        }
    }
    let count = |k: NodeKind| g.nodes.iter().filter(|n| n.kind == k).count();
    assert_eq!(count(NodeKind::Cache), caches.len(), "{what}: caches");
    assert_eq!(count(NodeKind::Secret), secrets.len(), "{what}: secrets");
    for n in g.nodes.iter().filter(|n| n.kind.is_step()) {
        let op = ops.iter().find(|o| name(o) == n.title.as_deref()).unwrap();
        let ignore = op["metadata"]["ignore_cache"] == true;
        let busted = g.edges.iter().any(|e| e.to == n.id && e.from == "bust");
        assert_eq!(
            n.rerun.is_some(),
            ignore || busted,
            "{what}: mark of {}",
            n.id
        );
    }
}

fn kind_word(k: NodeKind) -> &'static str {
    match k {
        NodeKind::Cache => "cache",
        _ => "secret",
    }
}

#[test]
fn graphs_show_what_the_llb_holds() {
    for dir in examples() {
        for profile in PROFILES {
            let what = format!("{} {profile}", dir.display());
            let c = compile(&dir, &options(profile));
            assert_graph_matches_llb(
                &what,
                &c.plan,
                c.verify.as_ref().map_or(&c.definition, |v| &v.stage),
            );
        }
    }
    let quickstart = Path::new(env!("CARGO_MANIFEST_DIR")).join("examples/quickstart");
    let variants: [(&str, CompileOptions); 5] = [
        (
            "--no-cache",
            CompileOptions {
                no_cache: NoCache::All,
                ..options(Profile::Dev)
            },
        ),
        (
            "--target pip",
            CompileOptions {
                target: Some(Step::Pip),
                ..options(Profile::Test)
            },
        ),
        (
            "ca bundle",
            CompileOptions {
                ca_secret: CaSecret::Required,
                ..options(Profile::Dev)
            },
        ),
        (
            "optional ca secret (the frontend's default)",
            CompileOptions {
                ca_secret: CaSecret::Optional,
                ..options(Profile::Test)
            },
        ),
        (
            "locked",
            CompileOptions {
                lock: Some(plan_lock()),
                ca_secret: CaSecret::Required,
                ..options(Profile::Test)
            },
        ),
    ];
    for (what, opts) in variants {
        let c = compile(&quickstart, &opts);
        assert_graph_matches_llb(
            what,
            &c.plan,
            c.verify.as_ref().map_or(&c.definition, |v| &v.stage),
        );
    }
    let run = resolution_run();
    assert_graph_matches_llb("lock run", &run, &plan::lower(&run).unwrap().definition);
}

/// The quickstart's resolution run, as `torchkit lock` plans it (as in tests/golden.rs).
fn resolution_run() -> Plan {
    let dir = Path::new(env!("CARGO_MANIFEST_DIR")).join("examples/quickstart");
    let text = std::fs::read_to_string(dir.join("torchkit.toml")).unwrap();
    let spec = spec::parse(&text, "torchkit.toml").unwrap();
    let res = resolve::resolve(&spec.request()).unwrap();
    let requirements = std::fs::read(dir.join("requirements.txt")).unwrap();
    plan::resolution_run(&plan::ResolutionInputs {
        spec: &spec,
        resolution: &res,
        base: plan::BaseMeta {
            digest: Some(DIGEST.into()),
            config: None,
        },
        requirements: Some(&requirements),
        ca_secret: CaSecret::None,
    })
    .unwrap()
    .expect("the quickstart has something to resolve")
}

fn plan_lock() -> plan::LockedSet {
    plan::LockedSet {
        reference: "docker.io/pytorch/pytorch:2.8.0-cuda12.8-cudnn9-runtime".into(),
        digest: DIGEST.into(),
        apt: vec!["jq=1.6-2.1".into()],
        python: "packaging==24.1 --hash=sha256:00\n".into(),
        python_count: 1,
    }
}

// The command.

fn example(name: &str) -> String {
    Path::new(env!("CARGO_MANIFEST_DIR"))
        .join("examples")
        .join(name)
        .display()
        .to_string()
}

#[test]
fn the_command_prints_the_goldens() {
    // Examples without a build context, so no `.dockerignore` is read that the goldens
    // (made without one) would lack.
    let dir = golden_dir(Path::new("h100-devel"), Profile::Test);
    let out = TestCommand::new()
        .args(["graph", &example("h100-devel")])
        .stdout();
    assert_eq!(out, std::fs::read_to_string(dir.join("graph.dot")).unwrap());
    let dir = golden_dir(Path::new("legacy-driver"), Profile::Dev);
    let out = TestCommand::new()
        .args(["graph", &example("legacy-driver"), "--format", "mermaid"])
        .stdout();
    assert_eq!(out, std::fs::read_to_string(dir.join("graph.mmd")).unwrap());
}

#[test]
fn svg_is_drawn_by_graphviz() {
    let found = Command::new("dot").arg("-V").output();
    assert!(
        found.is_ok_and(|o| o.status.success()),
        "these tests need Graphviz's `dot`: `apt-get install graphviz` (scripts/test.sh installs it)"
    );
    let out = TestCommand::new()
        .args(["graph", &example("h100-devel"), "--format", "svg"])
        .stdout();
    // Graphviz writes `-` in text as `&#45;`.
    let svg = out.replace("&#45;", "-");
    assert!(svg.contains("<svg"), "{svg}");
    assert!(svg.trim_end().ends_with("</svg>"));
    // Nodes carry their labels, escaped for XML (`pytest>=8`), and the mark.
    assert!(svg.contains("pytest&gt;=8"), "{svg}");
    assert!(svg.contains("re-runs: test profile"), "{svg}");
    assert!(svg.contains("torchkit.toml:17 (python.packages)"), "{svg}");
}

#[test]
fn svg_without_graphviz_says_how_to_get_it_and_prints_nothing() {
    let empty = tempfile::tempdir().unwrap();
    let r = TestCommand::new()
        .args(["graph", &example("quickstart"), "--format", "svg"])
        .env("PATH", empty.path())
        .run();
    assert_eq!(r.code, Some(1), "{}", r.describe());
    assert!(r.stdout.is_empty(), "{}", r.describe());
    assert!(
        r.stderr.contains("error: `--format svg` needs Graphviz"),
        "{}",
        r.describe()
    );
    assert!(
        r.stderr
            .contains("hint: install Graphviz: `apt-get install graphviz`"),
        "{}",
        r.describe()
    );
    // DOT and Mermaid need nothing on PATH.
    for format in ["dot", "mermaid"] {
        TestCommand::new()
            .args(["graph", &example("quickstart"), "--format", format])
            .env("PATH", empty.path())
            .assert_ok();
    }
}

#[test]
fn release_without_a_pin_is_drawn_and_says_it_cannot_be_built() {
    // Like `torchkit plan`: planning never refuses; building an unpinned release does.
    let out = TestCommand::new()
        .args(["graph", &example("quickstart"), "--profile", "release"])
        .stdout();
    assert!(
        out.contains("unpinned: a release build needs the base&#39;s digest")
            || out.contains("unpinned: a release build needs the base's digest"),
        "{out}"
    );
    assert!(out.contains("re-runs: release profile"), "{out}");
}
