//! Every spelling of every option value, through every way in: the spec, a flag, its
//! environment variable and the frontend's build-arg (plus `torchkit resolve`'s flags).
//! A spelling accepted by one is accepted by all, with the same meaning; one refused by one is
//! refused by all, naming the value. The values have one parser each (src/vocab.rs); this is
//! the check that nothing parses them a second way.

use std::collections::BTreeMap;
use std::path::Path;
use std::process::Output;

use serde_json::Value;
use torchkit::frontend::options;
use torchkit::spec::{self, Spec};

mod support;
use support::TestCommand;

/// The base spec the overrides apply to; `KEY` lines are replaced per case.
const BASE: &str = "[torch]\nversion = \"2.8.0\"\n";
/// Appended to every spec: a pinned base, so that the release profile can be planned.
const PIN: &str =
    "[base]\ndigest = \"sha256:0000000000000000000000000000000000000000000000000000000000000000\"\n";

#[derive(Clone, Copy, Debug)]
enum Opt {
    Cuda,
    Flavor,
    Gpu,
    Profile,
    Step,
}

impl Opt {
    /// The spec text that sets this option to `v`.
    fn spec(self, v: &str) -> String {
        let text = match self {
            Opt::Cuda => format!("{BASE}cuda = \"{v}\"\n"),
            Opt::Flavor => format!("{BASE}flavor = \"{v}\"\n"),
            Opt::Gpu => format!("{BASE}[target]\ngpus = [\"{v}\"]\n"),
            Opt::Profile => format!("{BASE}[cache]\nprofile = \"{v}\"\n"),
            Opt::Step => format!("{BASE}[system]\napt = [\"jq\"]\n[cache]\nbust = [\"{v}\"]\n"),
        };
        text + PIN
    }

    /// The flag, when the CLI has one for this option on `torchkit llb`.
    fn flag(self) -> &'static str {
        match self {
            Opt::Cuda => "--cuda",
            Opt::Flavor => "--flavor",
            Opt::Gpu => "--gpu",
            Opt::Profile => "--profile",
            Opt::Step => "--no-cache-filter",
        }
    }

    /// The environment variable and build-arg (None for steps, which have neither).
    fn env(self) -> Option<&'static str> {
        match self {
            Opt::Cuda => Some("TORCHKIT_CUDA"),
            Opt::Flavor => Some("TORCHKIT_FLAVOR"),
            Opt::Gpu => Some("TORCHKIT_GPU"),
            Opt::Profile => Some("TORCHKIT_PROFILE"),
            Opt::Step => None,
        }
    }

    /// The spec the override applies to: the base, plus what the option needs to show.
    fn base_spec(self) -> String {
        let text = match self {
            Opt::Step => format!("{BASE}[system]\napt = [\"jq\"]\n"),
            _ => BASE.to_string(),
        };
        text + PIN
    }
}

/// (option, spelling, the canonical spelling it means; None: refused).
const CASES: &[(Opt, &str, Option<&str>)] = &[
    (Opt::Cuda, "12.6", Some("12.6")),
    (Opt::Cuda, "12.6.3", Some("12.6")),
    (Opt::Cuda, "cu126", Some("12.6")),
    (Opt::Cuda, "CU126", Some("12.6")),
    (Opt::Cuda, "cu12.6", Some("12.6")),
    (Opt::Cuda, "Auto", Some("auto")),
    (Opt::Cuda, "cpu", Some("cpu")),
    (Opt::Cuda, "126", None),
    (Opt::Cuda, "twelve", None),
    (Opt::Cuda, "cu12", None),
    (Opt::Flavor, "devel", Some("devel")),
    (Opt::Flavor, "DEVEL", Some("devel")),
    (Opt::Flavor, "devl", None),
    (Opt::Gpu, "H100", Some("H100")),
    (Opt::Gpu, "8.0,9.0", Some("8.0,9.0")),
    (Opt::Gpu, "8.0, 9.0", Some("8.0,9.0")),
    (Opt::Gpu, "9", None),
    (Opt::Gpu, "8.0,,9.0", None),
    (Opt::Profile, "test", Some("test")),
    (Opt::Profile, "Release", Some("release")),
    (Opt::Profile, "prod", None),
    (Opt::Step, "apt", Some("apt")),
    (Opt::Step, "APT", Some("apt")),
    (Opt::Step, "aptt", None),
];

/// `torchkit ARGS` in `dir` with only `env` of the variables it reads.
fn torchkit(args: &[&str], env: &[(&str, &str)], dir: &Path) -> Output {
    let mut c = TestCommand::new();
    c.args(args).current_dir(dir);
    for (k, v) in env {
        c.env(k, v);
    }
    c.output()
}

/// `torchkit plan --json` of a spec with these arguments; or the failure's stderr.
fn plan(dir: &Path, spec: &str, args: &[&str], env: &[(&str, &str)]) -> Result<Value, String> {
    let path = dir.join(format!("{}.toml", unique()));
    std::fs::write(&path, spec).unwrap();
    let mut all = vec!["plan", "--json", path.to_str().unwrap()];
    all.extend_from_slice(args);
    let out = torchkit(&all, env, dir);
    if out.status.success() {
        Ok(serde_json::from_slice(&out.stdout).expect("plan --json prints JSON"))
    } else {
        // 1: a refused spec or request; 2: a flag value clap refused (a usage error).
        assert!(matches!(out.status.code(), Some(1 | 2)), "{out:?}");
        assert!(out.stdout.is_empty(), "a refused value prints no data");
        Err(String::from_utf8_lossy(&out.stderr).into_owned())
    }
}

fn unique() -> String {
    use std::sync::atomic::{AtomicUsize, Ordering};
    static N: AtomicUsize = AtomicUsize::new(0);
    format!("spec-{}", N.fetch_add(1, Ordering::Relaxed))
}

/// What of a plan an option decides: the resolution, the profile and the busted steps.
fn meaning(plan: &Value) -> Value {
    serde_json::json!({
        "resolution": plan["resolution"],
        "profile": plan["profile"],
        "busted": plan["busted"],
    })
}

fn parse(text: &str) -> Result<Spec, spec::SpecError> {
    spec::parse(text, "torchkit.toml")
}

#[test]
fn every_spelling_means_the_same_everywhere() {
    let dir = tempfile::tempdir().unwrap();
    let mut failures = vec![];
    for &(opt, spelling, canonical) in CASES {
        let case = format!("{opt:?} {spelling:?}");
        // 1. The spec.
        let from_spec = parse(&opt.spec(spelling));
        match (canonical, &from_spec) {
            (Some(c), Ok(s)) => {
                let canonical_spec = parse(&opt.spec(c)).unwrap();
                if s.request() != canonical_spec.request()
                    || s.cache.profile != canonical_spec.cache.profile
                    || s.cache.bust != canonical_spec.cache.bust
                {
                    failures.push(format!("{case}: the spec reads it unlike {c:?}"));
                }
            }
            (None, Err(e)) => {
                if e.span.line < 2 || !e.message.contains(spelling.trim()) {
                    failures.push(format!("{case}: spec error not located or unnamed: {e}"));
                }
            }
            (Some(_), Err(e)) => failures.push(format!("{case}: the spec refuses it: {e}")),
            (None, Ok(_)) => failures.push(format!("{case}: the spec accepts it")),
        }

        // What the canonical spelling means, as the plan shows it (from the spec).
        let want = canonical.map(|c| meaning(&plan(dir.path(), &opt.spec(c), &[], &[]).unwrap()));

        // 2. The flag, 3. its environment variable.
        let base = opt.base_spec();
        let mut routes: Vec<(String, Result<Value, String>)> = vec![];
        if opt.flag() != "--no-cache-filter" {
            routes.push((
                format!("{} {spelling}", opt.flag()),
                plan(dir.path(), &base, &[opt.flag(), spelling], &[]),
            ));
        }
        if let Some(env) = opt.env() {
            routes.push((
                format!("{env}={spelling}"),
                plan(dir.path(), &base, &[], &[(env, spelling)]),
            ));
        }
        if let Opt::Step = opt {
            // `--no-cache-filter` (torchkit llb and build): the step's op is marked busted.
            let path = dir.path().join(format!("{}.toml", unique()));
            std::fs::write(&path, &base).unwrap();
            let out = torchkit(
                &[
                    "llb",
                    "--format",
                    "json",
                    path.to_str().unwrap(),
                    opt.flag(),
                    spelling,
                ],
                &[],
                dir.path(),
            );
            let marked = String::from_utf8_lossy(&out.stdout)
                .contains("apt: apt-get install jq (re-run: --no-cache-filter)");
            match (canonical, out.status.success()) {
                (Some(_), true) if marked => {}
                (None, false) if String::from_utf8_lossy(&out.stderr).contains(spelling) => {}
                _ => failures.push(format!("{case} via --no-cache-filter: {out:?}")),
            }
        }
        for (route, got) in routes {
            match (&want, got) {
                (Some(w), Ok(plan)) => {
                    if meaning(&plan) != *w {
                        failures.push(format!("{case} via {route}: {} != {}", meaning(&plan), w));
                    }
                }
                (None, Err(stderr)) => {
                    if !stderr.contains(spelling) || !stderr.contains("hint:") {
                        failures.push(format!("{case} via {route}: unclear refusal: {stderr}"));
                    }
                }
                (Some(_), Err(stderr)) => {
                    failures.push(format!("{case} via {route}: refused: {stderr}"))
                }
                (None, Ok(_)) => failures.push(format!("{case} via {route}: accepted")),
            }
        }

        // 4. The frontend's build-arg (or, for steps, its `no-cache` option).
        let (key, value) = match opt.env() {
            Some(env) => (format!("build-arg:{env}"), spelling.to_string()),
            None => ("no-cache".to_string(), spelling.to_string()),
        };
        let fe = options::parse(&BTreeMap::from([(key, value)]), None);
        let base_spec = parse(&base).unwrap();
        match (canonical, fe) {
            (Some(c), Ok(o)) => {
                let canonical_spec = parse(&opt.spec(c)).unwrap();
                let same = match opt {
                    Opt::Profile => {
                        base_spec.profile_with(o.overrides.profile) == canonical_spec.cache.profile
                    }
                    Opt::Step => {
                        o.no_cache
                            == torchkit::plan::NoCache::Steps(canonical_spec.cache.bust.clone())
                    }
                    _ => base_spec.request_with(&o.overrides) == canonical_spec.request(),
                };
                if !same {
                    failures.push(format!("{case} via the build-arg: read unlike {c:?}"));
                }
            }
            (None, Err(e)) => {
                if !e.to_string().contains(spelling.trim()) {
                    failures.push(format!("{case} via the build-arg: unnamed: {e}"));
                }
            }
            (Some(_), Err(e)) => failures.push(format!("{case} via the build-arg: refused: {e}")),
            (None, Ok(_)) => failures.push(format!("{case} via the build-arg: accepted")),
        }

        // 5. `torchkit resolve`'s flags read the resolver's options the same way.
        if matches!(opt, Opt::Cuda | Opt::Flavor | Opt::Gpu) {
            let resolve = |v: &str| {
                let out = torchkit(
                    &["resolve", "--json", "--torch", "2.8.0", opt.flag(), v],
                    &[],
                    dir.path(),
                );
                out.status
                    .success()
                    .then(|| serde_json::from_slice::<Value>(&out.stdout).unwrap())
                    .ok_or_else(|| String::from_utf8_lossy(&out.stderr).into_owned())
            };
            match (canonical, resolve(spelling)) {
                (Some(c), Ok(v)) => {
                    if Ok(v) != resolve(c) {
                        failures.push(format!("{case} via resolve {}: unlike {c:?}", opt.flag()));
                    }
                }
                (None, Err(stderr)) => {
                    if !stderr.contains(spelling) {
                        failures.push(format!("{case} via resolve: unnamed: {stderr}"));
                    }
                }
                (Some(_), Err(e)) => failures.push(format!("{case} via resolve: refused: {e}")),
                (None, Ok(_)) => failures.push(format!("{case} via resolve: accepted")),
            }
        }
    }
    assert!(failures.is_empty(), "{}", failures.join("\n"));
}
