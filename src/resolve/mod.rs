//! Resolution: torch version × CUDA request × host driver × GPUs → one official base image,
//! with every choice explained. Pure: data in, data out (the matrix is compiled in).
//!
//! (Skeleton: types are the contract with `plan` and `cli`; the logic lands in this module.)

use serde::Serialize;

/// `runtime` or `devel` flavour of the `pytorch/pytorch` images.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Serialize, Default)]
#[serde(rename_all = "lowercase")]
pub enum Flavor {
    /// `…-runtime`: no compiler toolchain.
    #[default]
    Runtime,
    /// `…-devel`: nvcc and headers.
    Devel,
}

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
}

/// The CUDA part of a request.
#[derive(Debug, Clone, PartialEq, Eq, Default)]
pub enum CudaRequest {
    /// Pick the best variant for the target.
    #[default]
    Auto,
    /// CPU-only torch.
    Cpu,
    /// An exact CUDA variant, "12.8".
    Version(String),
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
    /// CUDA variant ("12.8"), None for CPU.
    pub cuda: Option<String>,
    /// cuDNN major in the image ("9"), None for CPU.
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
    /// Minimum host driver for this CUDA variant (strict, toolkit table), None for CPU.
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
