//! The verify stage: execs on the finished image's root filesystem that check it against the
//! resolution and run `[verify] run`, none of it exported.
//!
//! 1. **checks**: `verify.py` ([`VERIFY_SCRIPT`]) reads what the resolution expects
//!    ([`Expect`], the `verifier` node's `/expect.json`), checks torch, CUDA, cuDNN, the arch
//!    list against every target GPU's verdict, torchvision, torchaudio, Python and
//!    `pip check` (and, with GPUs attached, the devices and a matmul on each), prints one
//!    line per check, and writes the results to `report.json` in its output
//!    ([`VERIFY_DIR`]). It exits 0 when it could check: the caller reads the report and
//!    fails the build naming each failed check ([`Report`]);
//! 2. **gate**: `verify.py --check` fails the exec on a failed check, so that the stage fails
//!    wherever it is solved (`torchkit llb --target verify | buildctl build`);
//! 3. **tests**: each `[verify] run` command, as the image's user in its workdir, with the
//!    build context mounted read-only there, no network unless `[verify] network = true`.
//!
//! Each exec mounts the output of the one before, so they run in that order, and the
//! stage's result is the report directory (`--target verify -o type=local,dest=DIR`). Like
//! every exec they are cached: on a warm cache nothing runs.

use serde::{Deserialize, Serialize};

use crate::resolve::{Resolution, Verdict};
use crate::spec::Spec;
use crate::vocab::{Gpus, Step as StepName};

use super::steps::{number, step};
use super::{
    CacheSharing, CompileOptions, Exec, Mount, Node, NodeFile, NodeId, NodeSource, Run, Step,
};

/// The verify script (Python 3.6+, standard library).
pub const VERIFY_SCRIPT: &str = include_str!("verify.py");
/// Where the verify execs mount the script.
pub const VERIFY_SCRIPT_MOUNT: &str = "/run/torchkit/verify.py";
/// Where the checks mount what they expect.
pub const EXPECT_MOUNT: &str = "/run/torchkit/expect.json";
/// The stage's output directory: the report, carried through every exec of the stage.
pub const VERIFY_DIR: &str = "/run/torchkit/verify";
/// Where `[verify] run` gets pip's download cache (`PIP_CACHE_DIR`).
pub const TESTS_PIP_CACHE: &str = "/run/torchkit/pip-cache";
/// The report's file name in [`VERIFY_DIR`].
pub const REPORT_FILE: &str = "report.json";

/// What the checks expect: the resolution, as `verify.py --expect` reads it.
#[derive(Debug, Clone, PartialEq, Eq, Serialize, Deserialize)]
pub struct Expect {
    /// The torch release (`2.8.0`).
    pub torch: String,
    /// The CUDA variant (`12.8`); none for `cuda = "cpu"`.
    pub cuda: Option<String>,
    /// The cuDNN major (`9`).
    pub cudnn: Option<String>,
    /// Python `MAJOR.MINOR`.
    pub python: Option<String>,
    /// The torchvision release.
    pub torchvision: Option<String>,
    /// The torchaudio release.
    pub torchaudio: Option<String>,
    /// The target GPUs and the verdict `torchkit resolve` gave each.
    pub gpus: Vec<ExpectGpu>,
    /// GPUs are attached: also check the devices and run a matmul on each.
    pub gpu: bool,
    /// Run `pip check`.
    pub pip_check: bool,
}

/// One target GPU of [`Expect`].
#[derive(Debug, Clone, PartialEq, Eq, Serialize, Deserialize)]
pub struct ExpectGpu {
    /// As given (`H100`, `9.0`).
    pub gpu: String,
    /// `9.0`.
    pub compute_capability: String,
    /// `native`, `ptx_jit` or `unsupported` (verify.py's words for [`Verdict`]).
    pub verdict: String,
}

impl Expect {
    /// What a build of `res` must contain.
    pub fn from_resolution(res: &Resolution, gpu: bool) -> Expect {
        Expect {
            torch: res.torch.clone(),
            cuda: res.cuda.clone(),
            cudnn: res.cudnn.clone(),
            python: Some(res.python.clone()),
            torchvision: Some(res.torchvision.clone()),
            torchaudio: Some(res.torchaudio.clone()),
            gpus: res
                .gpus
                .iter()
                .map(|g| ExpectGpu {
                    gpu: g.gpu.clone(),
                    compute_capability: g.compute_capability.clone(),
                    verdict: match g.verdict {
                        Verdict::Native => "native",
                        Verdict::PtxJit => "ptx_jit",
                        Verdict::Unsupported => "unsupported",
                    }
                    .into(),
                })
                .collect(),
            gpu,
            pip_check: true,
        }
    }

    /// One line for progress: `torch 2.8.0+cu128, cuDNN 9, Python 3.11, sm_90 (H100)`.
    pub fn summary(&self) -> String {
        let mut parts = vec![match &self.cuda {
            Some(c) => format!("torch {}+cu{}", self.torch, c.replace('.', "")),
            None => format!("torch {}", self.torch),
        }];
        if let Some(c) = &self.cudnn {
            parts.push(format!("cuDNN {c}"));
        }
        if let Some(p) = &self.python {
            parts.push(format!("Python {p}"));
        }
        for g in &self.gpus {
            let cc = g.compute_capability.replace('.', "");
            match g.verdict.as_str() {
                "native" => parts.push(format!("sm_{cc} ({})", g.gpu)),
                "ptx_jit" => parts.push(format!("PTX for {} (cc {})", g.gpu, g.compute_capability)),
                _ => {}
            }
        }
        if self.gpu {
            parts.push("GPU attached".into());
        }
        parts.join(", ")
    }
}

/// The verify stage of a plan.
#[derive(Debug, Clone, PartialEq, Serialize)]
#[serde(tag = "state", rename_all = "snake_case")]
pub enum VerifyStage {
    /// Not run, and why (`--skip-verify`, `[verify] enabled = false`, an earlier `--target`).
    Skipped {
        /// Why, as progress says it.
        reason: String,
    },
    /// Run after the image's last step.
    Planned(Box<VerifyPlan>),
}

impl VerifyStage {
    /// The plan, when the stage runs.
    pub fn planned(&self) -> Option<&VerifyPlan> {
        match self {
            VerifyStage::Planned(p) => Some(p),
            VerifyStage::Skipped { .. } => None,
        }
    }
}

/// The execs of the verify stage and what they check.
#[derive(Debug, Clone, PartialEq, Serialize)]
pub struct VerifyPlan {
    /// What the checks expect (the `verifier` node's `/expect.json`).
    pub expect: Expect,
    /// The CDI devices of the checks and tests (`nvidia.com/gpu=all`); empty: no GPU.
    pub devices: Vec<String>,
    /// checks, gate, then one exec per `[verify] run` command, each named `verify`.
    pub steps: Vec<Step>,
}

/// Why the stage is left out, if it is (what the build says: `[torchkit verify] skipped: …`).
pub fn skipped(spec: &Spec, opts: &CompileOptions) -> Option<String> {
    if opts.skip_verify {
        Some("--skip-verify (TORCHKIT_SKIP_VERIFY)".into())
    } else if !spec.verify.enabled {
        Some("[verify] enabled = false".into())
    } else {
        match opts.target {
            Some(t) if t != StepName::Verify => {
                Some(format!("--target {t} stops before the finished image"))
            }
            _ => None,
        }
    }
}

/// The devices the stage gets: `--gpus`, else every GPU with `[verify] gpu = true`; none
/// when the stage is skipped.
pub fn devices(spec: &Spec, opts: &CompileOptions) -> Vec<String> {
    if skipped(spec, opts).is_some() {
        return vec![];
    }
    match (&opts.gpus, spec.verify.gpu) {
        (Some(g), _) => g.0.clone(),
        (None, true) => Gpus::all().0,
        (None, false) => vec![],
    }
}

/// The stage's steps (before the cache pass) and its helper nodes.
pub(super) fn steps(
    spec: &Spec,
    res: &Resolution,
    opts: &CompileOptions,
    cached: bool,
    cuda_ns: &str,
) -> (VerifyPlan, Vec<Node>) {
    let devices = devices(spec, opts);
    let expect = Expect::from_resolution(res, !devices.is_empty());
    let user = &spec.image.user;
    let workdir = &spec.image.workdir;
    let mut env = vec![];
    if let Some(t) = opts.source_date_epoch {
        env.push(("SOURCE_DATE_EPOCH".to_string(), t.to_string()));
    }
    let exec =
        |args: Vec<String>, mounts: Vec<Mount>, offline: bool, devices: Vec<String>| Run::Exec {
            args,
            env: env.clone(),
            user: user.name.clone(),
            cwd: workdir.clone(),
            mounts,
            offline,
            devices,
        };
    let tests_exec = |args: Vec<String>, mounts: Vec<Mount>| {
        let mut env = env.clone();
        if cached {
            env.push(("PIP_CACHE_DIR".to_string(), TESTS_PIP_CACHE.to_string()));
        }
        Run::Exec {
            args,
            env,
            user: user.name.clone(),
            cwd: workdir.clone(),
            mounts,
            offline: !spec.verify.network,
            devices: devices.clone(),
        }
    };
    let script = || Mount::node(VERIFY_SCRIPT_MOUNT, NodeId::Verifier, "/verify.py");
    let carried = || Mount::Output {
        dest: VERIFY_DIR.into(),
        step: StepName::Verify,
        exec: Exec::Run,
        mount: VERIFY_DIR.into(),
        path: "/".into(),
        readonly: false,
    };
    let report = format!("{VERIFY_DIR}/{REPORT_FILE}");
    // Errors point at `[verify]`, or at what the checks check when the spec has no table.
    let origin = if spec.locations.contains_key("verify") {
        "verify"
    } else {
        "torch.version"
    };

    let mut out = vec![
        step(
            spec,
            StepName::Verify,
            format!("check {}", expect.summary()),
            exec(
                vec![
                    "python".into(),
                    VERIFY_SCRIPT_MOUNT.into(),
                    "--expect".into(),
                    EXPECT_MOUNT.into(),
                    "--report".into(),
                    report.clone(),
                    "--exit-zero".into(),
                ],
                vec![
                    script(),
                    Mount::node(EXPECT_MOUNT, NodeId::Verifier, "/expect.json"),
                    Mount::Node {
                        dest: VERIFY_DIR.into(),
                        node: NodeId::VerifyOut,
                        path: "/".into(),
                        readonly: false,
                    },
                ],
                true,
                devices.clone(),
            ),
            None,
            origin,
        ),
        step(
            spec,
            StepName::Verify,
            "gate: fail on a failed check".into(),
            exec(
                vec![
                    "python".into(),
                    VERIFY_SCRIPT_MOUNT.into(),
                    "--check".into(),
                    report,
                ],
                vec![script(), carried()],
                true,
                vec![],
            ),
            None,
            origin,
        ),
    ];
    for (i, c) in spec.verify.run.iter().enumerate() {
        let mut mounts = vec![carried(), Mount::node(workdir, NodeId::Context, "/")];
        // pip's download cache, for tests that install. BuildKit creates a cache mount's
        // directory for root, so another user gets a cache of its own, created as a
        // directory it owns; PIP_CACHE_DIR points pip at it.
        if cached {
            let (id, owner) = if user.is_root() {
                (format!("torchkit/pip/{cuda_ns}"), None)
            } else {
                (
                    format!("torchkit/pip/{cuda_ns}/uid{}", user.uid),
                    Some(user.uid),
                )
            };
            mounts.push(Mount::Cache {
                dest: TESTS_PIP_CACHE.into(),
                id,
                sharing: CacheSharing::Locked,
                owner,
            });
        }
        let mut s = step(
            spec,
            StepName::Verify,
            format!("run {}", c.display()),
            tests_exec(c.argv(), mounts),
            None,
            "verify.run",
        );
        if let Some(span) = spec.locations.get(&format!("verify.run.{i}")) {
            s.span = *span;
        }
        out.push(s);
    }
    number(&mut out, "torchkit verify");

    let expect_json = serde_json::to_string_pretty(&expect).unwrap_or_default() + "\n";
    let nodes = vec![
        Node {
            id: NodeId::Verifier,
            name: "[torchkit] verify script".into(),
            source: NodeSource::Files {
                files: vec![
                    NodeFile {
                        path: "/verify.py".into(),
                        mode: 0o644,
                        content: VERIFY_SCRIPT.into(),
                        owner: None,
                    },
                    NodeFile {
                        path: "/expect.json".into(),
                        mode: 0o644,
                        content: expect_json,
                        owner: None,
                    },
                ],
            },
            origin: None,
            span: None,
        },
        // The report file, owned by the image's user: the checks run as that user, on a
        // mount whose directory BuildKit creates for root.
        Node {
            id: NodeId::VerifyOut,
            name: "[torchkit] verify report".into(),
            source: NodeSource::Files {
                files: vec![NodeFile {
                    path: format!("/{REPORT_FILE}"),
                    mode: 0o644,
                    content: String::new(),
                    owner: Some(user.uid),
                }],
            },
            origin: None,
            span: None,
        },
    ];
    (
        VerifyPlan {
            expect,
            devices,
            steps: out,
        },
        nodes,
    )
}

/// The checks' results, as `verify.py --report` writes them.
#[derive(Debug, Clone, PartialEq, Eq, Serialize, Deserialize)]
pub struct Report {
    /// Every check passed.
    pub ok: bool,
    /// The checks, in the order they ran.
    pub checks: Vec<Check>,
}

/// One check of a [`Report`].
#[derive(Debug, Clone, PartialEq, Eq, Serialize, Deserialize)]
pub struct Check {
    /// `torch.version`, `arch.9.0`, `pip.check`, …
    pub name: String,
    /// Passed.
    pub ok: bool,
    /// What the resolution expects.
    #[serde(default)]
    pub expected: Option<String>,
    /// What the image has.
    #[serde(default)]
    pub found: Option<String>,
    /// How to fix a failure.
    #[serde(default)]
    pub fix: Option<String>,
}

impl Report {
    /// Read a report (`report.json`).
    pub fn parse(bytes: &[u8]) -> Result<Report, String> {
        serde_json::from_slice(bytes).map_err(|e| format!("the verify report is not valid: {e}"))
    }

    /// The failed checks.
    pub fn failed(&self) -> Vec<&Check> {
        self.checks.iter().filter(|c| !c.ok).collect()
    }
}
