//! Frontend subrequests: what `docker buildx build --print=<name>` (buildx ≥ 0.10 with
//! `BUILDX_EXPERIMENTAL=1`; `--call` in later releases) asks instead of a build.
//!
//! The request arrives as the frontend option `requestid`; the answer is a result with no
//! ref and metadata only: `result.json` (the shape BuildKit's `frontend/subrequests`
//! packages define, which buildx decodes and prints), `result.txt` (a plain rendering) and
//! `version`. The image declares the `moby.buildkit.frontend.subrequests` cap
//! (frontend.Dockerfile), which the daemon checks before it forwards a subrequest.
//!
//! - `frontend.subrequests.describe`: the subrequests this frontend answers;
//! - `frontend.targets`: the plan's steps, which `--target` stops after (the last is the
//!   default), each located at its spec key;
//! - `frontend.outline`: the build-args torchkit reads, with their values for this spec
//!   and options, the secret it can mount and the cache mounts the steps use.
//!
//! Everything here is pure: the callers read the spec and plan it, this module only shapes
//! the answer.

use std::collections::BTreeMap;
use std::fmt::Write as _;

use base64::Engine as _;
use serde_json::{json, Value};

use crate::plan::{CaSecret, Mount, Plan};
use crate::spec::{Span, Spec};

use crate::vocab::names::{
    CUDA as ARG_CUDA, DRIVER as ARG_DRIVER, FLAVOR as ARG_FLAVOR, GPU as ARG_GPU,
    PROFILE as ARG_PROFILE,
};

use super::options::{FrontendOptions, ARG_CA_SECRET, ARG_LOCKED, ARG_SOURCE_DATE_EPOCH};

/// The version of every answer's shape (BuildKit's definitions are all `1.0.0`).
pub const VERSION: &str = "1.0.0";

/// A subrequest torchkit answers.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum Subrequest {
    /// `frontend.subrequests.describe`.
    Describe,
    /// `frontend.targets`.
    Targets,
    /// `frontend.outline`.
    Outline,
}

impl Subrequest {
    /// Every subrequest torchkit answers, in the order `describe` lists them.
    pub const ALL: [Subrequest; 3] = [
        Subrequest::Outline,
        Subrequest::Targets,
        Subrequest::Describe,
    ];

    /// From the `requestid` option.
    pub fn from_id(id: &str) -> Option<Self> {
        Self::ALL.into_iter().find(|s| s.id() == id)
    }

    /// The `requestid` value.
    pub fn id(self) -> &'static str {
        match self {
            Subrequest::Describe => "frontend.subrequests.describe",
            Subrequest::Targets => "frontend.targets",
            Subrequest::Outline => "frontend.outline",
        }
    }

    fn description(self) -> &'static str {
        match self {
            Subrequest::Describe => "List available subrequest types",
            Subrequest::Targets => "List the steps of this build (--target stops after one)",
            Subrequest::Outline => "List the build-args, secrets and cache mounts of this build",
        }
    }

    /// BuildKit's `subrequests.Request` for this subrequest.
    fn definition(self) -> Value {
        let opts: Vec<Value> = match self {
            Subrequest::Outline => {
                vec![json!({"name": "target", "description": "Stop after this step"})]
            }
            _ => vec![],
        };
        let mut metadata = vec![json!({"name": "result.json", "description": ""})];
        if self == Subrequest::Describe {
            metadata.push(json!({"name": "result.txt", "description": ""}));
        }
        json!({
            "name": self.id(),
            "version": VERSION,
            "type": "rpc",
            "description": self.description(),
            "opts": opts,
            "inputs": [],
            "metadata": metadata,
            "refs": [],
        })
    }
}

/// The answer to `frontend.subrequests.describe`.
pub fn describe() -> BTreeMap<String, Vec<u8>> {
    let list: Vec<Value> = Subrequest::ALL.iter().map(|s| s.definition()).collect();
    let mut txt = String::from("NAME\tVERSION\tDESCRIPTION\n");
    for s in Subrequest::ALL {
        let name = s.id().trim_start_matches("frontend.");
        let _ = writeln!(txt, "{name}\t{VERSION}\t{}", s.description());
    }
    answer(&Value::Array(list), txt)
}

/// The answer to `frontend.targets`: one target per step of `plan`.
pub fn targets(spec: &Spec, plan: &Plan) -> BTreeMap<String, Vec<u8>> {
    let last = plan.steps.len().saturating_sub(1);
    let mut txt = String::from("TARGET\tDESCRIPTION\n");
    let targets: Vec<Value> = plan
        .steps
        .iter()
        .enumerate()
        .map(|(i, s)| {
            let description = s
                .title
                .split_once(": ")
                .map_or(s.title.as_str(), |(_, d)| d)
                .to_string();
            let default = i == last;
            let _ = writeln!(
                txt,
                "{}{}\t{description}",
                s.name,
                if default { " (default)" } else { "" }
            );
            let mut t = json!({
                "name": s.name,
                "description": description,
                "Location": location(s.span),
            });
            if default {
                t["default"] = json!(true);
            }
            if s.name == crate::vocab::Step::Base {
                t["base"] = json!(plan.base.pinned_reference());
            }
            t
        })
        .collect();
    answer(
        &json!({ "Targets": targets, "Sources": sources(spec) }),
        txt,
    )
}

/// The answer to `frontend.outline`: the build-args torchkit reads (with the value this
/// build uses), the CA secret and the steps' cache mounts.
pub fn outline(spec: &Spec, plan: &Plan, opts: &FrontendOptions) -> BTreeMap<String, Vec<u8>> {
    let res = &plan.resolution;
    let request = spec.request_with(&opts.overrides);
    let located = |key: &str| spec.locations.get(key).map(|_| location(spec.span_of(key)));
    let args: Vec<(&str, &str, String, Option<Value>)> = vec![
        (
            ARG_PROFILE,
            "Cache profile: dev, test or release",
            spec.profile_with(opts.overrides.profile).to_string(),
            located("cache.profile"),
        ),
        (
            ARG_CUDA,
            "CUDA version (X.Y), auto or cpu",
            res.cuda.clone().unwrap_or_else(|| "cpu".into()),
            located("torch.cuda"),
        ),
        (
            ARG_FLAVOR,
            "Base image flavor: runtime or devel",
            res.flavor.as_str().to_string(),
            located("torch.flavor"),
        ),
        (
            ARG_DRIVER,
            "Host NVIDIA driver version the image must run on",
            request.driver.clone().unwrap_or_default(),
            located("target.driver"),
        ),
        (
            ARG_GPU,
            "Target GPUs, comma-separated (compute capability or product name)",
            request.gpus.join(","),
            located("target.gpus"),
        ),
        (
            ARG_CA_SECRET,
            "The secret torchkit-ca (a CA bundle) in the steps that download: unset, used when given; 1, required; 0, never mounted",
            match plan.ca_secret {
                CaSecret::Optional => String::new(),
                CaSecret::Required => "1".into(),
                CaSecret::None => "0".into(),
            },
            None,
        ),
        (
            ARG_LOCKED,
            "1: fail unless torchkit.lock matches the spec",
            u8::from(opts.locked).to_string(),
            None,
        ),
        (
            ARG_SOURCE_DATE_EPOCH,
            "Seconds since 1970 for the image's created time and the steps",
            opts.source_date_epoch
                .map(|t| t.to_string())
                .unwrap_or_default(),
            None,
        ),
    ];
    let mut txt = String::from("BUILD ARG\tVALUE\tDESCRIPTION\n");
    let args: Vec<Value> = args
        .into_iter()
        .map(|(name, description, value, loc)| {
            let _ = writeln!(txt, "{name}\t{value}\t{description}");
            let mut a = json!({"Name": name, "Description": description, "Value": value});
            if let Some(l) = loc {
                a["Location"] = l;
            }
            a
        })
        .collect();
    let cache = plan.cache_ids();
    let secrets = secrets(plan);
    if !secrets.is_empty() {
        txt.push_str("\nSECRET\tREQUIRED\n");
        for (id, required) in &secrets {
            let _ = writeln!(txt, "{id}\t{required}");
        }
    }
    if !cache.is_empty() {
        txt.push_str("\nCACHE MOUNT\n");
        for id in &cache {
            let _ = writeln!(txt, "{id}");
        }
    }
    let outline = json!({
        "args": args,
        "secrets": secrets
            .iter()
            .map(|(id, required)| json!({"Name": id, "Required": required}))
            .collect::<Vec<_>>(),
        "cache": cache.iter().map(|id| json!({"ID": id})).collect::<Vec<_>>(),
        "sources": sources(spec),
    });
    answer(&outline, txt)
}

/// The secrets the plan's steps mount, by id, each once, and whether the build fails
/// without it (any of its mounts required): the CA bundle as the plan mounts it (optional
/// by default in the frontend) and the spec's `[python]`/`[system] secrets`.
fn secrets(plan: &Plan) -> BTreeMap<String, bool> {
    let mut out: BTreeMap<String, bool> = BTreeMap::new();
    for m in plan.steps.iter().flat_map(|s| s.mounts()) {
        if let Mount::Secret { id, optional, .. } = m {
            *out.entry(id.clone()).or_default() |= !optional;
        }
    }
    out
}

/// `pb.Location` as Go's encoding/json writes it, over the spec (source 0).
fn location(span: Span) -> Value {
    json!({ "ranges": [super::status::range_json(span)] })
}

/// The spec as the only source (`[][]byte`: base64 strings in JSON).
fn sources(spec: &Spec) -> Vec<String> {
    vec![base64::engine::general_purpose::STANDARD.encode(spec.text.as_bytes())]
}

fn answer(json: &Value, txt: String) -> BTreeMap<String, Vec<u8>> {
    let mut m = BTreeMap::new();
    m.insert(
        "result.json".to_string(),
        serde_json::to_vec_pretty(json).expect("JSON values serialize"),
    );
    m.insert("result.txt".to_string(), txt.into_bytes());
    m.insert("version".to_string(), VERSION.as_bytes().to_vec());
    m
}
