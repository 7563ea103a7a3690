//! Resolution: torch version × CUDA request × host driver × GPUs → one official base image,
//! with every choice explained.
//!
//! The procedure is §9 of the reference `cuda-torch-matrix.md`:
//! 1. find the torch release and its CUDA variants in [`crate::matrix`];
//! 2. per variant, check the driver: **strict** (driver ≥ the toolkit's Table 3 floor) first;
//!    **minor-version compatibility** (driver ≥ the CUDA major's MVC floor) only when every
//!    target GPU has native kernels, and always with a warning; otherwise reject. Forward
//!    compatibility (`cuda-compat`) is never assumed;
//! 3. per GPU, a verdict against the variant's arch list: native, ptx-jit (strict driver only,
//!    warned) or unsupported (rejected). PTX from an arch list the matrix marks unconfirmed is
//!    not relied on;
//! 4. prefer strict-and-native, then PTX-JIT, then MVC; within each, the release's PyPI-default
//!    CUDA, then the newest variant.
//!
//! `cuda = "cpu"`: pytorch/pytorch publishes CUDA images and its CPU-only `<torch>-runtime` tag
//! is unverified (reference §7.1), so the release's PyPI-default CUDA image is used (a CUDA build
//! of torch runs on CPU); `reasons` and `warnings` say so, and no driver floor applies.
//!
//! This module may: read the compiled-in matrix, compute, and explain. It may not: do IO
//! (files, environment, processes, network), read a clock, use randomness, or depend on `cli`,
//! `probe`, `buildkit` or `frontend`. Host facts arrive as plain data in [`Request`].

use serde::Serialize;

use crate::vocab::{CudaRequest, Flavor, Overrides};

use crate::matrix::facts::{ReleaseFacts, FOUND_ONLINE, ONLINE_SOURCE};
use crate::matrix::{
    self, ComputeCapability, Coverage, GpuLookup, Matrix, TagStatus, TorchRelease, Variant, Version,
};

mod error;
#[cfg(test)]
mod tests;

pub use error::{invalid_torch_hint, CudaNotShipped, ResolveError};

/// What the user asked for (from the spec, CLI flags or the probe).
#[derive(Debug, Clone, PartialEq, Eq, Default)]
pub struct Request {
    /// torch release, e.g. "2.8.0".
    pub torch: String,
    /// CUDA request.
    pub cuda: CudaRequest,
    /// Image flavour.
    pub flavor: Flavor,
    /// Host driver, e.g. "535.104.05" (None: unknown; resolution assumes no driver floor).
    pub driver: Option<String>,
    /// Target GPUs: compute capabilities ("9.0") or product names ("H100").
    pub gpus: Vec<String>,
    /// torchvision override (None: the release's match from the matrix).
    pub torchvision: Option<String>,
    /// torchaudio override.
    pub torchaudio: Option<String>,
    /// A torch release newer than the matrix may be looked up online (`--online`,
    /// `[torch] online = true`): the edges fetch the facts and call [`resolve_online`].
    pub online: bool,
}

impl Request {
    /// This request with `o` applied: each override given wins (an empty GPU list is no
    /// override). The one place where a flag, an environment variable or a build-arg
    /// replaces what the spec asked for.
    pub fn overridden(mut self, o: &Overrides) -> Request {
        if let Some(c) = &o.cuda {
            self.cuda = c.clone();
        }
        if let Some(f) = o.flavor {
            self.flavor = f;
        }
        if let Some(d) = &o.driver {
            self.driver = Some(d.clone());
        }
        if let Some(g) = o.gpus.as_ref().filter(|g| !g.is_empty()) {
            self.gpus = g.as_slice().to_vec();
        }
        if let Some(online) = o.online {
            self.online = online;
        }
        self
    }
}

/// A resolved base image reference.
#[derive(Debug, Clone, PartialEq, Eq, Serialize)]
pub struct ImageRef {
    /// "docker.io".
    pub registry: String,
    /// "pytorch/pytorch".
    pub repository: String,
    /// "2.8.0-cuda12.8-cudnn9-runtime".
    pub tag: String,
}

impl ImageRef {
    /// Full normalized reference: `docker.io/pytorch/pytorch:2.8.0-cuda12.8-cudnn9-runtime`.
    pub fn full(&self) -> String {
        format!("{}/{}:{}", self.registry, self.repository, self.tag)
    }
}

/// Per-GPU verdict for the chosen wheel variant.
#[derive(Debug, Clone, PartialEq, Eq, Serialize)]
#[serde(rename_all = "kebab-case")]
pub enum Verdict {
    /// The wheel carries SASS for this architecture.
    Native,
    /// Only PTX for an older arch: JIT-compiled at first use.
    PtxJit,
    /// No usable kernels.
    Unsupported,
}

/// One GPU's verdict.
#[derive(Debug, Clone, PartialEq, Eq, Serialize)]
pub struct GpuVerdict {
    /// As given ("H100" or "9.0").
    pub gpu: String,
    /// Compute capability, "9.0".
    pub compute_capability: String,
    /// The verdict.
    pub verdict: Verdict,
    /// Why, e.g. "sm_90 in the cu128 arch list".
    pub detail: String,
}

/// A candidate that was considered and rejected.
#[derive(Debug, Clone, PartialEq, Eq, Serialize)]
pub struct Rejected {
    /// e.g. "cuda 12.9".
    pub candidate: String,
    /// e.g. "needs driver >= 575.51.03, host has 535.104.05".
    pub reason: String,
}

/// The outcome: one base image and everything `plan` needs, plus the explanation.
#[derive(Debug, Clone, PartialEq, Eq, Serialize)]
pub struct Resolution {
    /// Base image.
    pub image: ImageRef,
    /// torch release.
    pub torch: String,
    /// CUDA variant of the image ("12.8"). `cuda = "cpu"` still gets the release's default
    /// CUDA image (no CPU-only `pytorch/pytorch` tag is confirmed); see the module docs.
    pub cuda: Option<String>,
    /// cuDNN major in the image ("9").
    pub cudnn: Option<String>,
    /// Python in the image ("3.11").
    pub python: String,
    /// torchvision release.
    pub torchvision: String,
    /// torchaudio release.
    pub torchaudio: String,
    /// Flavour.
    pub flavor: Flavor,
    /// Wheel index for this variant, e.g. "https://download.pytorch.org/whl/cu128".
    pub index_url: String,
    /// Minimum host driver for this CUDA variant (strict, toolkit table); None when no GPU
    /// is used (`cuda = "cpu"`).
    pub min_driver: Option<String>,
    /// Per-GPU verdicts.
    pub gpus: Vec<GpuVerdict>,
    /// Warnings (minor-version compatibility, PTX JIT, uncertain facts).
    pub warnings: Vec<String>,
    /// Why the choice was made, in order.
    pub reasons: Vec<String>,
    /// Candidates considered and rejected.
    pub rejected: Vec<Rejected>,
}

/// Registry and repository of every image torchkit resolves to.
const REGISTRY: &str = "docker.io";
const REPOSITORY: &str = "pytorch/pytorch";

/// One target GPU after name lookup.
#[derive(Debug, Clone)]
struct Gpu {
    input: String,
    cc: ComputeCapability,
}

/// How a candidate relates to the host driver.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
enum DriverFit {
    /// No driver given: nothing to check.
    Unknown,
    /// Driver ≥ the toolkit floor.
    Strict,
    /// Below the toolkit floor, at or above the major's MVC floor.
    Mvc,
}

/// One (torch patch, CUDA variant) checked against the target.
#[derive(Debug, Clone)]
struct Eval {
    variant: Variant,
    tag: String,
    fit: DriverFit,
    verdicts: Vec<GpuVerdict>,
    warnings: Vec<String>,
    /// Why it fails, if it does.
    failure: Option<String>,
    /// 0 strict (or unknown driver) with native kernels, 1 needs PTX JIT, 2 needs MVC.
    tier: u8,
}

impl Eval {
    fn passes(&self) -> bool {
        self.failure.is_none()
    }
    fn label(&self) -> String {
        format!("cuda {} ({})", self.variant.cuda, self.tag)
    }
}

/// The host as the request describes it.
struct Target<'a> {
    driver: Option<&'a Version>,
    gpus: &'a [Gpu],
    flavor: Flavor,
}

impl Target<'_> {
    fn describe(&self) -> String {
        let mut parts = Vec::new();
        if let Some(d) = self.driver {
            parts.push(format!("driver {d}"));
        }
        if !self.gpus.is_empty() {
            let g: Vec<String> = self.gpus.iter().map(gpu_label).collect();
            parts.push(format!("GPU {}", g.join(", ")));
        }
        if parts.is_empty() {
            "this request".into()
        } else {
            parts.join(" and ")
        }
    }
}

fn gpu_label(g: &Gpu) -> String {
    if g.input == g.cc.to_string() {
        g.input.clone()
    } else {
        format!("{} ({})", g.input, g.cc)
    }
}

/// Check one variant of one torch patch against the target (§9 steps 2–3).
fn evaluate(m: &Matrix, patch: &Version, variant: &Variant, target: &Target<'_>) -> Eval {
    let cuda = &variant.cuda;
    let cu = matrix::cu_tag(cuda);
    let tag = matrix::image_tag(patch, cuda, &variant.cudnn_major, target.flavor.as_str());
    let mut e = Eval {
        variant: variant.clone(),
        tag: tag.clone(),
        fit: DriverFit::Unknown,
        verdicts: Vec::new(),
        warnings: Vec::new(),
        failure: None,
        tier: 0,
    };
    // The tag must be one the matrix lists as existing [S10][S11][S19]-[S22].
    if let Some(absent) = m.absent(&tag) {
        e.failure = Some(format!(
            "{REPOSITORY}:{tag} does not exist: {}",
            absent.reason
        ));
        return e;
    }
    match m.image(&tag) {
        None => {
            e.failure = Some(format!("{REPOSITORY}:{tag} is not a known tag"));
            return e;
        }
        Some(img) => {
            if img.status == TagStatus::Uncertain {
                e.warnings.push(format!(
                    "{REPOSITORY}:{tag} rests on weak evidence (status uncertain in the matrix); check that the tag exists before relying on it"
                ));
            }
            if let Some(note) = img.note.as_ref().filter(|n| *n != FOUND_ONLINE) {
                e.warnings.push(format!("{REPOSITORY}:{tag}: {note}"));
            }
        }
    }

    // Driver (§9 step 2).
    let floor = m
        .toolkit_floor(cuda)
        .expect("validated: every variant has a floor");
    let mvc = m
        .mvc_floor(cuda.major())
        .expect("validated: every major has an MVC floor");
    if let Some(d) = target.driver {
        if d >= floor {
            e.fit = DriverFit::Strict;
        } else if d >= &mvc.min_driver {
            e.fit = DriverFit::Mvc;
        } else {
            let ceiling = m
                .driver_cuda_ceiling(d)
                .map(|c| format!("supports CUDA <= {c}"))
                .unwrap_or_else(|| "is older than every CUDA 11 toolkit".into());
            let mut why = format!("needs driver >= {floor} (CUDA {cuda} toolkit floor [S1])");
            if mvc.min_driver < *floor {
                why.push_str(&format!(
                    ", or >= {} for CUDA {}.x minor-version compatibility [S3]",
                    mvc.min_driver,
                    cuda.major()
                ));
            }
            why.push_str(&format!("; driver {d} {ceiling}"));
            if m.driver_cuda_ceiling(d)
                .is_some_and(|c| c.major() < cuda.major())
            {
                why.push_str(&format!(
                    "; crossing to CUDA {} on this driver would need the cuda-compat forward-compatibility package on a data-center GPU [S4], which pytorch/pytorch images are not known to carry",
                    cuda.major()
                ));
            }
            e.failure = Some(why);
            return e;
        }
    }

    // GPUs (§9 step 3, §6.3).
    let mut unsupported = Vec::new();
    let mut ptx = false;
    for g in target.gpus {
        let (verdict, detail) = match variant.arch_list.coverage(g.cc) {
            Coverage::Native(entry) => {
                let detail = if entry.cc == g.cc {
                    format!("{} cubin in the {cu} arch list", entry.cc.sm())
                } else {
                    format!(
                        "{} cubin in the {cu} arch list runs on {} (same major, higher minor)",
                        entry.cc.sm(),
                        g.cc
                    )
                };
                (Verdict::Native, detail)
            }
            Coverage::PtxJit(entry) if variant.arch_uncertain => (
                Verdict::Unsupported,
                format!(
                    "no {}.x cubin in the {cu} arch list; its compute_{}{} PTX is unconfirmed in the matrix, so it is not relied on",
                    g.cc.major, entry.cc.major, entry.cc.minor
                ),
            ),
            Coverage::PtxJit(entry) => {
                ptx = true;
                (
                    Verdict::PtxJit,
                    format!(
                        "no {}.x cubin in the {cu} arch list; compute_{}{} PTX ({}+PTX) is JIT-compiled at first use",
                        g.cc.major, entry.cc.major, entry.cc.minor, entry.cc
                    ),
                )
            }
            Coverage::None => (
                Verdict::Unsupported,
                format!(
                    "no {}.x cubin and no PTX at or below {} in the {cu} arch list ({})",
                    g.cc.major,
                    g.cc,
                    variant.arch_list.summary()
                ),
            ),
        };
        if verdict == Verdict::Unsupported {
            unsupported.push(format!("{}: {detail}", gpu_label(g)));
        }
        e.verdicts.push(GpuVerdict {
            gpu: g.input.clone(),
            compute_capability: g.cc.to_string(),
            verdict,
            detail,
        });
    }
    if !unsupported.is_empty() {
        e.failure = Some(format!("unsupported GPU: {}", unsupported.join("; ")));
        return e;
    }
    if variant.arch_uncertain && !target.gpus.is_empty() {
        let release = m.release_of(patch).expect("patch comes from the matrix");
        e.warnings.push(format!(
            "the {cu} arch list of torch {} is not confirmed ({}); the GPU verdicts rest on it",
            release.version,
            release.arch_note.as_deref().unwrap_or("see the matrix")
        ));
    }

    // Combine driver fit and kernels.
    match (e.fit, ptx) {
        (DriverFit::Mvc, true) => {
            e.failure = Some(format!(
                "a GPU needs PTX JIT, which minor-version compatibility does not allow (cudaErrorUnsupportedPtxVersion [S3]); needs driver >= {floor}"
            ));
            return e;
        }
        (DriverFit::Mvc, false) => {
            e.tier = 2;
            let d = target.driver.expect("MVC implies a driver");
            e.warnings.push(format!(
                "relies on CUDA minor-version compatibility: driver {d} is below the CUDA {cuda} floor {floor} but >= {} [S1][S3]. No PTX JIT, and calls that need a newer driver fail with cudaErrorCallRequiresNewerDriver; if the container runtime enforces NVIDIA_REQUIRE_CUDA, set NVIDIA_DISABLE_REQUIRE=1 [S23]. Upgrading to driver >= {floor} removes this caveat",
                mvc.min_driver
            ));
            if target.gpus.is_empty() {
                e.warnings.push(format!(
                    "no GPUs given: minor-version compatibility only holds for GPUs with a cubin in this build ({})",
                    variant.arch_list.summary()
                ));
            }
        }
        (fit, true) => {
            e.tier = 1;
            e.warnings.push(
                "a GPU runs by PTX JIT: kernels are compiled at first use (slow first start), and the PTX needs a driver at least as new as the image's CUDA [S25][S3]".into(),
            );
            if fit == DriverFit::Unknown {
                e.warnings.push(format!(
                    "driver unknown: PTX JIT needs driver >= {floor} (CUDA {cuda}); not checked"
                ));
            }
        }
        (_, false) => {}
    }
    e
}

/// Preference order of a release's variants: PyPI default first, then newest first (§9 step 4).
fn preference(release: &TorchRelease) -> Vec<Variant> {
    let mut vs = release.variants();
    vs.sort_by(|a, b| {
        let da = a.cuda == release.pypi_default_cuda;
        let db = b.cuda == release.pypi_default_cuda;
        db.cmp(&da).then(b.cuda.cmp(&a.cuda))
    });
    vs
}

/// Evaluate candidates and pick the best passing one: lowest tier, then preference order.
fn choose(evals: &[Eval]) -> Option<usize> {
    evals
        .iter()
        .enumerate()
        .filter(|(_, e)| e.passes())
        .min_by_key(|(i, e)| (e.tier, *i))
        .map(|(i, _)| i)
}

fn tier_words(t: u8) -> &'static str {
    match t {
        0 => "native kernels for every GPU without relying on driver compatibility modes",
        1 => "needs PTX JIT",
        _ => "relies on minor-version compatibility",
    }
}

/// The newest patch of the compiled-in matrix: anything above it was looked up online.
fn m_newest_known() -> &'static Version {
    matrix::matrix().newest_patch()
}

/// Resolve a request to one `pytorch/pytorch` image, explaining every choice.
pub fn resolve(req: &Request) -> Result<Resolution, ResolveError> {
    resolve_in(matrix::matrix(), req)
}

/// The release to look up online for `req`, when the resolver refused it as newer than the
/// matrix and the request allows the lookup.
pub fn online_lookup(req: &Request, e: &ResolveError) -> Option<Version> {
    match e {
        ResolveError::UnknownTorch {
            requested,
            newer: true,
            ..
        } if req.online => Version::parse(requested)
            .ok()
            .filter(|v| v.parts().len() == 3),
        _ => None,
    }
}

/// Resolve a release the matrix has not seen with the facts looked up online
/// ([`crate::matrix::facts`]): the same rules, on the matrix with that release added. The
/// answer says which facts were looked up and warns about each one assumed (a new
/// toolkit's driver floor, the arch list behind the GPU verdicts, Python, companions).
pub fn resolve_online(req: &Request, facts: &ReleaseFacts) -> Result<Resolution, ResolveError> {
    let base = matrix::matrix();
    let m = base.with_release(facts).map_err(|e| ResolveError::Online {
        torch: facts.torch.to_string(),
        message: e.message,
        tags: facts.tags.iter().map(|t| t.tag.clone()).collect(),
    })?;
    let mut res = resolve_in(&m, req)?;
    let cuda = res
        .cuda
        .as_deref()
        .and_then(|c| Version::parse(c).ok())
        .expect("a pytorch/pytorch image has a CUDA");
    let release = m.release_of(&facts.torch).expect("with_release added it");
    let mut found = format!(
        "torch {} is newer than the matrix (gathered {}): looked up online ({})",
        facts.torch,
        base.gathered,
        facts.looked_up.join(", ")
    );
    if let Some(d) = &facts.uploaded {
        found.push_str(&format!("; on PyPI since {d}"));
    }
    match &facts.pypi_default_cuda {
        Some(c) => found.push_str(&format!("; its PyPI wheel pins CUDA {c}")),
        None => found.push_str("; its PyPI default CUDA was not read"),
    }
    let tags: Vec<&str> = facts.tags.iter().map(|t| t.tag.as_str()).collect();
    found.push_str(&format!("; tags found: {}", tags.join(", ")));
    res.reasons.insert(0, found);
    let mut unchecked = m.unchecked(release, &cuda);
    if facts.pypi_default_cuda.is_none() {
        unchecked.push("the PyPI default CUDA (the preference order)".into());
    }
    res.warnings.insert(
        0,
        format!(
            "torch {} is not in this torchkit's matrix (gathered {}): the tag {} exists, but these facts were not checked: {}; refresh the matrix (`torchkit matrix refresh`) or upgrade torchkit",
            facts.torch,
            base.gathered,
            res.image.tag,
            if unchecked.is_empty() {
                "none beyond the Python and companions noted below".to_string()
            } else {
                unchecked.join("; ")
            }
        ),
    );
    Ok(res)
}

/// [`resolve`] on a given matrix (the compiled-in one, or one with a release looked up
/// online).
fn resolve_in(m: &Matrix, req: &Request) -> Result<Resolution, ResolveError> {
    let mut reasons = Vec::new();
    let mut warnings = Vec::new();

    let (release, patch) = find_torch(m, &req.torch, &mut reasons, false)?;
    let gpus = parse_gpus(m, &req.gpus, &mut reasons, &mut warnings)?;
    let driver = match &req.driver {
        None => None,
        Some(d) => {
            Some(Version::parse(d).map_err(|_| ResolveError::InvalidDriver { input: d.clone() })?)
        }
    };
    let target = Target {
        driver: driver.as_ref(),
        gpus: &gpus,
        flavor: req.flavor,
    };

    if req.cuda == CudaRequest::Cpu {
        return resolve_cpu(m, req, release, &patch, reasons, warnings);
    }

    match &driver {
        Some(d) => reasons.push(match m.driver_cuda_ceiling(d) {
            Some(c) => format!(
                "driver {d} meets the Table 3 floors up to CUDA {c}, so variants up to {c} pass strictly [S1]"
            ),
            None => format!("driver {d} is older than every CUDA 11 toolkit floor [S1]"),
        }),
        None => reasons.push(
            "no driver given: driver floors are not checked (min_driver says what the image needs)"
                .into(),
        ),
    }

    let candidates: Vec<Variant> = match &req.cuda {
        CudaRequest::Version(s) => {
            // `CudaRequest` holds MAJOR.MINOR: its parser checked the form.
            let want =
                Version::parse(s).map_err(|_| ResolveError::InvalidCuda { input: s.clone() })?;
            match release.variant(&want) {
                Some(v) => {
                    reasons.push(format!(
                        "CUDA {want} requested; torch {patch} ships it {}",
                        cite(release, "[S9][S10]")
                    ));
                    vec![v]
                }
                None => return Err(cuda_not_shipped(m, release, &patch, &want, req.flavor)),
            }
        }
        _ => {
            let pref = preference(release);
            let order: Vec<String> = pref.iter().map(|v| v.cuda.to_string()).collect();
            reasons.push(format!(
                "CUDA auto: candidates in order {} (torch {}'s PyPI default {} first, then newest first) {}",
                order.join(", "),
                release.version,
                release.pypi_default_cuda,
                cite(release, "[S9][S10]")
            ));
            pref
        }
    };

    let evals: Vec<Eval> = candidates
        .iter()
        .map(|v| evaluate(m, &patch, v, &target))
        .collect();
    let Some(best) = choose(&evals) else {
        return Err(no_variant(m, release, &patch, &req.cuda, &target, &evals));
    };
    let chosen = &evals[best];

    // Explain the choice and every other candidate.
    let cuda = &chosen.variant.cuda;
    let floor = m.toolkit_floor(cuda).expect("validated").clone();
    let mut why = format!("chose CUDA {cuda}: ");
    why.push_str(&match chosen.fit {
        DriverFit::Strict => format!(
            "driver {} >= {floor}, the CUDA {cuda} floor (strict) [S1]",
            target.driver.expect("strict implies a driver")
        ),
        DriverFit::Mvc => "only through minor-version compatibility (see warnings) [S3]".into(),
        DriverFit::Unknown => format!("driver not checked (needs >= {floor}) [S1]"),
    });
    if !gpus.is_empty() {
        why.push_str(if chosen.tier == 1 {
            "; every GPU is covered, one through PTX JIT"
        } else {
            "; every GPU has native kernels"
        });
    }
    if *cuda == release.pypi_default_cuda {
        why.push_str(&format!("; it is torch {}'s PyPI default", release.version));
    } else if evals.len() > 1 {
        why.push_str("; it is the preferred variant that passes");
    }
    reasons.push(why);
    let mut rejected = Vec::new();
    for (i, e) in evals.iter().enumerate() {
        if i == best {
            continue;
        }
        let reason = match &e.failure {
            Some(f) => f.clone(),
            None if e.tier > chosen.tier => format!(
                "works, but {}; CUDA {cuda} has {}",
                tier_words(e.tier),
                tier_words(chosen.tier)
            ),
            None if *cuda == release.pypi_default_cuda => {
                format!(
                    "works, but CUDA {cuda} is preferred as torch {}'s PyPI default",
                    release.version
                )
            }
            None => format!("works, but CUDA {cuda} comes first in the preference order (newer)"),
        };
        rejected.push(Rejected {
            candidate: e.label(),
            reason,
        });
    }
    warnings.extend(chosen.warnings.iter().cloned());

    let (python, torchvision, torchaudio) =
        companions(release, &patch, req, &mut reasons, &mut warnings);
    describe_image(m, release, chosen, &mut reasons);
    reasons.push(format!(
        "wheel index {} matches the {} build of torch in the image [S13]",
        matrix::index_url(cuda),
        matrix::cu_tag(cuda)
    ));

    Ok(Resolution {
        image: ImageRef {
            registry: REGISTRY.into(),
            repository: REPOSITORY.into(),
            tag: chosen.tag.clone(),
        },
        torch: patch.to_string(),
        cuda: Some(cuda.to_string()),
        cudnn: Some(chosen.variant.cudnn_major.clone()),
        python,
        torchvision,
        torchaudio,
        flavor: req.flavor,
        index_url: matrix::index_url(cuda),
        min_driver: Some(floor.to_string()),
        gpus: chosen.verdicts.clone(),
        warnings,
        reasons,
        rejected,
    })
}

/// `cuda = "cpu"`: pytorch/pytorch publishes CUDA builds; the CPU-only `<torch>-runtime` tag is
/// unverified (§7.1), so use the release's PyPI-default CUDA image, whose torch also runs on CPU.
fn resolve_cpu(
    m: &Matrix,
    req: &Request,
    release: &TorchRelease,
    patch: &Version,
    mut reasons: Vec<String>,
    mut warnings: Vec<String>,
) -> Result<Resolution, ResolveError> {
    let variant = release
        .variant(&release.pypi_default_cuda)
        .expect("validated: the PyPI default is a variant");
    let target = Target {
        driver: None,
        gpus: &[],
        flavor: req.flavor,
    };
    let e = evaluate(m, patch, &variant, &target);
    if let Some(f) = &e.failure {
        let rejected = vec![Rejected {
            candidate: e.label(),
            reason: f.clone(),
        }];
        return Err(ResolveError::NoCompatibleVariant {
            torch: patch.to_string(),
            target: "cuda = cpu".into(),
            rejected,
            suggestions: vec!["choose another flavor or torch release".into()],
        });
    }
    let cuda = &variant.cuda;
    reasons.push(format!(
        "cuda = cpu: pytorch/pytorch publishes CUDA images; a CPU-only `{patch}-runtime` tag is not verified in the matrix (§7.1 [S11][S19]), so torchkit uses the CUDA {cuda} image, torch {}'s PyPI default and the same build `pip install torch=={patch}` gives on Linux x86_64 [S10]; a CUDA build of torch runs on the CPU when no GPU is visible, and no driver is needed",
        release.version
    ));
    warnings.push(format!(
        "cuda = cpu: the image carries the CUDA {cuda} build of torch (larger than a CPU-only install); it runs on CPU without a GPU or driver"
    ));
    if req.driver.is_some() || !req.gpus.is_empty() {
        warnings.push("cuda = cpu: the driver and GPUs in the request are not checked".into());
    }
    warnings.extend(e.warnings.iter().cloned());
    let (python, torchvision, torchaudio) =
        companions(release, patch, req, &mut reasons, &mut warnings);
    describe_image(m, release, &e, &mut reasons);
    reasons.push(format!(
        "wheel index {} matches the torch build in the image, so added packages do not replace it [S13]",
        matrix::index_url(cuda)
    ));
    Ok(Resolution {
        image: ImageRef {
            registry: REGISTRY.into(),
            repository: REPOSITORY.into(),
            tag: e.tag.clone(),
        },
        torch: patch.to_string(),
        cuda: Some(cuda.to_string()),
        cudnn: Some(variant.cudnn_major.clone()),
        python,
        torchvision,
        torchaudio,
        flavor: req.flavor,
        index_url: matrix::index_url(cuda),
        min_driver: None,
        gpus: Vec::new(),
        warnings,
        reasons,
        rejected: Vec::new(),
    })
}

/// Reasons about the tag, cuDNN and their evidence.
fn describe_image(m: &Matrix, release: &TorchRelease, e: &Eval, reasons: &mut Vec<String>) {
    let status = match m.image(&e.tag).map(|i| i.status) {
        Some(TagStatus::Seen) => "seen in public references",
        Some(TagStatus::Expected) => "expected from the release build matrix",
        _ => "weakly evidenced",
    };
    let online = m
        .image(&e.tag)
        .is_some_and(|i| i.note.as_deref() == Some(FOUND_ONLINE));
    reasons.push(if online {
        format!(
            "image {REPOSITORY}:{} is in the registry's tag list [{ONLINE_SOURCE}]",
            e.tag
        )
    } else {
        format!(
            "image {REPOSITORY}:{} is a listed tag ({status}) {}",
            e.tag,
            cite(release, "[S10][S11][S19]-[S22]")
        )
    });
    let mut cudnn = format!(
        "cuDNN {} in the {} wheels of torch {} gives the cudnn{} tag {}",
        e.variant.cudnn,
        matrix::cu_tag(&e.variant.cuda),
        release.version,
        e.variant.cudnn_major,
        cite(release, "[S10]")
    );
    if let Some(note) = &e.variant.cudnn_note {
        cudnn.push_str(&format!(" (note: {note})"));
    }
    reasons.push(cudnn);
}

/// The sources a reason about `release` cites: `usual` (`"[S9][S10]"`, the ids the older
/// releases' facts come from) where the release cites any of them, else the release's own sources (2.12 and
/// later were gathered from other documents, S27 on).
fn cite(release: &TorchRelease, usual: &str) -> String {
    let cited = usual
        .split(['[', ']'])
        .filter(|t| t.starts_with('S'))
        .any(|id| release.sources.iter().any(|s| s == id));
    if cited {
        usual.to_string()
    } else {
        release.sources.iter().map(|i| format!("[{i}]")).collect()
    }
}

/// Python, torchvision and torchaudio for the chosen patch, honouring request overrides.
fn companions(
    release: &TorchRelease,
    patch: &Version,
    req: &Request,
    reasons: &mut Vec<String>,
    warnings: &mut Vec<String>,
) -> (String, String, String) {
    let python = release.image_python.clone();
    reasons.push(format!(
        "Python {python} in the image ({})",
        release.image_python_note
    ));
    if release.image_python_uncertain {
        warnings.push(format!(
            "Python {python} in the torch {} images is not confirmed ({}); check `python3 --version` in the image",
            release.version, release.image_python_note
        ));
    }
    let mut pick = |name: &str,
                    matched: Option<(String, bool)>,
                    note: Option<&str>,
                    over: &Option<String>|
     -> String {
        let (paired, inferred) = matched.expect("validated: every patch has companions");
        match over {
            Some(o) => {
                reasons.push(format!(
                    "{name} {o} from the request (the matrix pairs torch {patch} with {paired})"
                ));
                if *o != paired {
                    warnings.push(format!(
                        "{name} {o} differs from {paired}, the release paired with torch {patch} [S12][S14]"
                    ));
                }
                o.clone()
            }
            None => {
                reasons.push(match note {
                    // Not a lock-step pairing (torchvision >= 0.29.1, torchaudio 2.11.x):
                    // the note says why this release is the one, with its sources.
                    Some(note) => format!("{name} {paired} pairs with torch {patch}: {note}"),
                    None => format!("{name} {paired} pairs with torch {patch} [S12][S13][S14]"),
                });
                if inferred {
                    warnings.push(format!(
                        "{name} {paired} for torch {patch} is inferred, not sourced (uncertain in the matrix)"
                    ));
                }
                paired
            }
        }
    };
    let tv = pick(
        "torchvision",
        release.torchvision_for(patch),
        release.torchvision_note.as_deref(),
        &req.torchvision,
    );
    let ta = pick(
        "torchaudio",
        release.torchaudio_for(patch),
        release.torchaudio_note.as_deref(),
        &req.torchaudio,
    );
    (python, tv, ta)
}

/// The torch release a `--torch` value names, and the patch it reads as (`X.Y`, a release
/// series, reads as its newest patch here): the resolver's own parsing and errors, for
/// callers that show the matrix rather than resolve against it (`torchkit matrix show`).
pub fn find_release(input: &str) -> Result<(&'static TorchRelease, Version), ResolveError> {
    find_torch(matrix::matrix(), input, &mut Vec::new(), true)
}

/// Check that `input` has the form of a torch release (`X.Y.Z`; no local or pre-release
/// suffix) without looking it up, with the resolver's wording: the spec parser's check of
/// `[torch] version`, so the two accept the same strings.
pub fn torch_form(input: &str) -> Result<Version, ResolveError> {
    parse_torch(matrix::matrix(), input, false)
}

/// The form check of [`find_torch`]: a final release of three numeric fields (two, a release
/// series, with `series`). `2.15` is refused where a release is pinned: pip reads
/// `torch==2.15` as 2.15.0, and "its newest patch" would change under a user's feet.
fn parse_torch(m: &Matrix, input: &str, series: bool) -> Result<Version, ResolveError> {
    let newest = m.newest_patch().to_string();
    let invalid = |why: String| ResolveError::InvalidTorch {
        input: input.to_string(),
        why,
        newest: newest.clone(),
        gathered: m.gathered.clone(),
    };
    let trimmed = input.trim();
    if let Some((base, local)) = trimmed.split_once('+') {
        return Err(invalid(format!(
            "drop the local suffix `+{local}` (use {base} and request the CUDA variant separately)"
        )));
    }
    let v = match Version::parse(trimmed) {
        Ok(v) => v,
        Err(_) => {
            return Err(invalid(match pre_release(trimmed) {
                Some(base) if Version::parse(base).is_ok_and(|b| b.parts().len() == 3) => format!(
                    "pre-releases and development builds are not in the matrix (the final release is {base})"
                ),
                Some(_) => "pre-releases and development builds are not in the matrix".into(),
                None => format!("expected {}", error::accepted_form(&newest)),
            }));
        }
    };
    if v.parts().len() == 2 && !series {
        return Err(invalid(match m.release_of(&v) {
            Some(r) => format!(
                "a release has three fields: {v}'s patches are {} (pip reads torch=={v} as {v}.0)",
                r.patches
                    .iter()
                    .map(|p| p.to_string())
                    .collect::<Vec<_>>()
                    .join(", ")
            ),
            None => format!("expected {}", error::accepted_form(&newest)),
        }));
    }
    if v.parts().len() < 2 || v.parts().len() > 3 {
        return Err(invalid(format!(
            "expected {}",
            error::accepted_form(&newest)
        )));
    }
    Ok(v)
}

/// Parse the torch field, `X.Y.Z` (or, with `series`, `X.Y` for its newest patch), and find
/// its release.
fn find_torch<'m>(
    m: &'m Matrix,
    input: &str,
    reasons: &mut Vec<String>,
    series: bool,
) -> Result<(&'m TorchRelease, Version), ResolveError> {
    let v = parse_torch(m, input, series)?;
    let newest = m.newest_patch().to_string();
    let gathered = m.gathered.clone();
    let all = m.all_patches();
    let oldest = all.first().expect("validated").to_string();
    if let Some(release) = m.release_of(&v) {
        if v.parts().len() == 2 {
            let p = release.latest_patch().clone();
            reasons.push(format!(
                "torch {v} read as {p}, its newest patch {}",
                cite(release, "[S9]")
            ));
            return Ok((release, p));
        }
        if release.has_patch(&v) {
            reasons.push(
                if release.sources.iter().any(|s| s == ONLINE_SOURCE) && v > *m_newest_known() {
                    format!("torch {v} was looked up online [{ONLINE_SOURCE}]")
                } else {
                    format!("torch {v} is a known release {}", cite(release, "[S9]"))
                },
            );
            return Ok((release, v));
        }
    }
    // Neighbours in release order, alternating below and above the requested version.
    let split = all.partition_point(|p| **p < v);
    let (mut below, mut above) = (all[..split].iter().rev(), all[split..].iter());
    let mut near: Vec<&Version> = Vec::new();
    while near.len() < 3 {
        let (b, a) = (below.next(), above.next());
        if b.is_none() && a.is_none() {
            break;
        }
        near.extend(b.into_iter().chain(a).copied());
    }
    near.truncate(3);
    near.sort();
    Err(ResolveError::UnknownTorch {
        requested: v.to_string(),
        nearest: near.iter().map(|p| p.to_string()).collect(),
        newer: v > *m.newest_patch(),
        oldest,
        newest,
        gathered,
    })
}

/// `2.15.0a0`, `2.15.0rc1`, `2.15.0.dev20261001`, `2.15.0.post1`: the release part before a
/// PEP 440 pre-, post- or development-release suffix; None when the input is not of that shape.
fn pre_release(s: &str) -> Option<&str> {
    let at = s.find(|c: char| !(c.is_ascii_digit() || c == '.'))?;
    let (base, suffix) = s.split_at(at);
    let base = base.trim_end_matches('.');
    let word = suffix
        .trim_start_matches(['.', '-', '_'])
        .to_ascii_lowercase();
    let tag = word.trim_end_matches(|c: char| c.is_ascii_digit());
    let known = [
        "a", "b", "rc", "c", "alpha", "beta", "pre", "preview", "dev", "post",
    ];
    (!base.is_empty() && known.contains(&tag)).then_some(base)
}

/// GPUs as compute capabilities or product names.
fn parse_gpus(
    m: &Matrix,
    inputs: &[String],
    reasons: &mut Vec<String>,
    warnings: &mut Vec<String>,
) -> Result<Vec<Gpu>, ResolveError> {
    let mut out = Vec::new();
    for input in inputs {
        if let Ok(cc) = ComputeCapability::parse(input) {
            out.push(Gpu {
                input: input.trim().to_string(),
                cc,
            });
            continue;
        }
        match m.gpu(input) {
            GpuLookup::Found {
                name,
                cc,
                uncertain,
            } => {
                reasons.push(if input.trim().eq_ignore_ascii_case(&name) {
                    format!("GPU {name} has compute capability {cc} [S24]")
                } else {
                    format!("GPU {input} is {name}, compute capability {cc} [S24]")
                });
                if uncertain {
                    warnings.push(format!(
                        "compute capability {cc} for {name} comes from an older copy of the NVIDIA table (uncertain)"
                    ));
                }
                out.push(Gpu {
                    input: input.trim().to_string(),
                    cc,
                });
            }
            GpuLookup::Ambiguous(matches) => {
                return Err(ResolveError::AmbiguousGpu {
                    input: input.clone(),
                    matches: matches
                        .into_iter()
                        .map(|(n, cc)| format!("{n} ({cc})"))
                        .collect(),
                })
            }
            GpuLookup::Unknown(nearest) => {
                return Err(ResolveError::UnknownGpu {
                    input: input.clone(),
                    nearest,
                })
            }
        }
    }
    Ok(out)
}

/// The requested CUDA is not a variant of this release: say where it is.
fn cuda_not_shipped(
    m: &Matrix,
    release: &TorchRelease,
    patch: &Version,
    want: &Version,
    flavor: Flavor,
) -> ResolveError {
    let with: Vec<(&Version, Variant)> = m
        .torch
        .iter()
        .filter_map(|t| t.variant(want).map(|v| (t, v)))
        .flat_map(|(t, v)| t.patches.iter().map(move |p| (p, v.clone())))
        .collect();
    let last = with
        .iter()
        .filter(|(p, _)| *p < patch)
        .max_by(|a, b| a.0.cmp(b.0));
    let first = with
        .iter()
        .filter(|(p, _)| *p > patch)
        .min_by(|a, b| a.0.cmp(b.0));
    let other_image = last.or(first).map(|(p, v)| {
        format!(
            "{REPOSITORY}:{}",
            matrix::image_tag(p, want, &v.cudnn_major, flavor.as_str())
        )
    });
    let lowest = release
        .cuda_variants
        .iter()
        .min()
        .expect("validated: releases have variants");
    let highest = release.cuda_variants.iter().max().expect("validated");
    let (nearest_shipped, nearest_why) = if want < lowest {
        (lowest.clone(), "the lowest CUDA it ships")
    } else if want > highest {
        (highest.clone(), "the newest CUDA it ships")
    } else {
        let near = release
            .cuda_variants
            .iter()
            .min_by_key(|c| (c.distance(want), (*c).clone()))
            .expect("validated");
        (near.clone(), "the shipped CUDA nearest to it")
    };
    ResolveError::CudaNotShipped(Box::new(CudaNotShipped {
        torch: patch.to_string(),
        requested: want.to_string(),
        shipped: release
            .cuda_variants
            .iter()
            .map(|c| c.to_string())
            .collect(),
        last_with: last.map(|(p, _)| p.to_string()),
        first_with: first.map(|(p, _)| p.to_string()),
        other_image,
        nearest_shipped: nearest_shipped.to_string(),
        nearest_why: nearest_why.to_string(),
    }))
}

/// No candidate passed: list why, and compute fixes (a driver, another CUDA, another torch).
fn no_variant(
    m: &Matrix,
    release: &TorchRelease,
    patch: &Version,
    cuda: &CudaRequest,
    target: &Target<'_>,
    evals: &[Eval],
) -> ResolveError {
    let rejected: Vec<Rejected> = evals
        .iter()
        .map(|e| Rejected {
            candidate: e.label(),
            reason: e.failure.clone().unwrap_or_default(),
        })
        .collect();
    let mut suggestions = Vec::new();

    // Another CUDA of the same release, when one was pinned.
    if let CudaRequest::Version(_) = cuda {
        let all: Vec<Eval> = preference(release)
            .iter()
            .map(|v| evaluate(m, patch, v, target))
            .collect();
        if let Some(i) = choose(&all) {
            suggestions.push(format!(
                "torch {patch} with CUDA {} works here ({REPOSITORY}:{})",
                all[i].variant.cuda, all[i].tag
            ));
        }
    }

    // A newer driver: the lowest strict floor among variants whose kernels fit the GPUs.
    if target.driver.is_some() {
        let no_driver = Target {
            driver: None,
            gpus: target.gpus,
            flavor: target.flavor,
        };
        let fitting: Vec<Eval> = evals
            .iter()
            .map(|e| evaluate(m, patch, &e.variant, &no_driver))
            .filter(|e| e.passes())
            .collect();
        if let Some(e) = fitting
            .iter()
            .min_by_key(|e| m.toolkit_floor(&e.variant.cuda).cloned())
        {
            let floor = m.toolkit_floor(&e.variant.cuda).expect("validated");
            let mvc = m.mvc_floor(e.variant.cuda.major()).expect("validated");
            let mut s = format!(
                "install NVIDIA driver >= {floor} (the CUDA {} floor) to run torch {patch} ({REPOSITORY}:{})",
                e.variant.cuda, e.tag
            );
            if mvc.min_driver < *floor {
                s.push_str(&format!(
                    "; >= {} already works through minor-version compatibility when every GPU has native kernels",
                    mvc.min_driver
                ));
            }
            suggestions.push(s);
        }
    }

    // Another torch release that works as is: the newest one.
    let mut others: Vec<&TorchRelease> = m
        .torch
        .iter()
        .filter(|t| t.version != release.version)
        .collect();
    others.sort_by(|a, b| b.version.cmp(&a.version));
    for t in others {
        let p = t.latest_patch();
        let evals: Vec<Eval> = preference(t)
            .iter()
            .map(|v| evaluate(m, p, v, target))
            .collect();
        if let Some(i) = choose(&evals) {
            let e = &evals[i];
            let how = if e.tier == 2 {
                " (through minor-version compatibility)"
            } else {
                ""
            };
            let or = if suggestions.is_empty() { "" } else { "or " };
            suggestions.push(format!(
                "{or}use torch {p} with CUDA {} ({REPOSITORY}:{}), the newest release that works with {}{how}",
                e.variant.cuda,
                e.tag,
                target.describe()
            ));
            break;
        }
    }
    ResolveError::NoCompatibleVariant {
        torch: patch.to_string(),
        target: target.describe(),
        rejected,
        suggestions,
    }
}
