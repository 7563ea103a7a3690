//! Why a request cannot be resolved, with the nearest valid choices.

use crate::error::Hint;

use super::Rejected;

/// A request the matrix cannot satisfy. Every message names the nearest valid choices;
/// [`Hint::hint`] says what to change.
#[derive(Debug, Clone, PartialEq, Eq, thiserror::Error)]
pub enum ResolveError {
    /// The torch field is not a release (`latest`, `2.15.0a0`, `2.8.0+cu128`).
    #[error("`{input}` is not a torch release: {why}")]
    InvalidTorch {
        /// As given.
        input: String,
        /// What is wrong.
        why: String,
        /// Newest patch the matrix knows, as the example of the accepted form.
        newest: String,
        /// When the matrix facts were gathered.
        gathered: String,
    },
    /// A torch version the matrix does not know: one between its releases, or one newer than
    /// its newest (released after the matrix was gathered).
    #[error("{}", unknown_torch(requested, nearest, *newer, newest, gathered))]
    UnknownTorch {
        /// As given.
        requested: String,
        /// Known patches nearest to it, ascending.
        nearest: Vec<String>,
        /// It is newer than every known release.
        newer: bool,
        /// Oldest known patch.
        oldest: String,
        /// Newest known patch.
        newest: String,
        /// When the matrix facts were gathered (`YYYY-MM-DD`).
        gathered: String,
    },
    /// A release looked up online that the resolver cannot use (no CUDA image tag, a new
    /// CUDA major).
    #[error("torch {torch} looked up online: {message}")]
    Online {
        /// The release.
        torch: String,
        /// What is missing.
        message: String,
        /// The `pytorch/pytorch` tags found for it.
        tags: Vec<String>,
    },
    /// A CUDA variant that is not `MAJOR.MINOR` (only a request built by hand can be: the
    /// parser of [`crate::vocab::CudaRequest`] refuses it).
    #[error("`{input}` is not a CUDA variant: expected MAJOR.MINOR, e.g. 12.8")]
    InvalidCuda {
        /// As given.
        input: String,
    },
    /// The torch release has no wheel (and no image) for the requested CUDA.
    #[error("{0}")]
    CudaNotShipped(Box<CudaNotShipped>),
    /// The driver field is not a version.
    #[error("`{input}` is not a driver version (expected e.g. 570.124.06)")]
    InvalidDriver {
        /// As given.
        input: String,
    },
    /// A GPU product the table does not know.
    #[error("unknown GPU `{input}`; nearest known products: {}", nearest.join(", "))]
    UnknownGpu {
        /// As given.
        input: String,
        /// Known product names spelled most like it.
        nearest: Vec<String>,
    },
    /// A GPU name that matches products with different compute capabilities.
    #[error("GPU `{input}` is ambiguous: it matches {}", matches.join(", "))]
    AmbiguousGpu {
        /// As given.
        input: String,
        /// `"Quadro RTX (7.5)"` …
        matches: Vec<String>,
    },
    /// Every candidate variant failed the driver or GPU checks.
    #[error(
        "no CUDA variant of torch {torch} works for {target}:{}",
        list(rejected)
    )]
    NoCompatibleVariant {
        /// torch patch.
        torch: String,
        /// `"driver 470.82.01 and GPU V100 (7.0)"`.
        target: String,
        /// Each candidate with its reason.
        rejected: Vec<Rejected>,
        /// Fixes, most direct first (a driver to install, another CUDA, another torch).
        suggestions: Vec<String>,
    },
}

/// Details of [`ResolveError::CudaNotShipped`].
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct CudaNotShipped {
    /// torch patch.
    pub torch: String,
    /// CUDA asked for.
    pub requested: String,
    /// CUDA variants this release ships.
    pub shipped: Vec<String>,
    /// Newest patch older than `torch` that ships `requested`.
    pub last_with: Option<String>,
    /// Oldest patch newer than `torch` that ships `requested`.
    pub first_with: Option<String>,
    /// Image of `last_with`/`first_with` with `requested`, when known.
    pub other_image: Option<String>,
    /// Shipped variant nearest to `requested`.
    pub nearest_shipped: String,
    /// How it relates to `requested` ("the lowest CUDA it ships").
    pub nearest_why: String,
}

impl std::fmt::Display for CudaNotShipped {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        write!(
            f,
            "torch {} ships CUDA {}; {}",
            self.torch,
            self.shipped.join(", "),
            elsewhere(
                &self.requested,
                self.last_with.as_deref(),
                self.first_with.as_deref()
            )
        )
    }
}

fn unknown_torch(
    requested: &str,
    nearest: &[String],
    newer: bool,
    newest: &str,
    gathered: &str,
) -> String {
    if newer {
        format!(
            "torch {requested} is newer than this torchkit's matrix: its newest release is {newest} (facts gathered {gathered})"
        )
    } else {
        format!(
            "unknown torch {requested}; the nearest known releases are {}",
            nearest.join(", ")
        )
    }
}

/// The accepted form of a torch release, with `newest` as the example.
pub(super) fn accepted_form(newest: &str) -> String {
    format!("MAJOR.MINOR.PATCH (e.g. {newest})")
}

/// The fix for an invalid torch version: the accepted form, the newest release the matrix knows
/// and its date, then where CUDA is asked for (`choose CUDA separately` on the command line;
/// the spec parser says `CUDA goes in `cuda``).
pub fn invalid_torch_hint(newest: &str, gathered: &str, cuda: &str) -> String {
    format!(
        "give a torch release as {}; the newest this torchkit knows is {newest} (matrix gathered {gathered}); {cuda}",
        accepted_form(newest)
    )
}

fn elsewhere(requested: &str, last: Option<&str>, first: Option<&str>) -> String {
    match (last, first) {
        (Some(l), _) => format!("{l} is the last release with {requested}"),
        (None, Some(f)) => format!("{f} is the first release with {requested}"),
        (None, None) => format!("no torch release in the matrix ships CUDA {requested}"),
    }
}

fn list(rejected: &[Rejected]) -> String {
    rejected
        .iter()
        .map(|r| format!("\n  {}: {}", r.candidate, r.reason))
        .collect()
}

impl Hint for ResolveError {
    fn hint(&self) -> Option<String> {
        match self {
            ResolveError::InvalidTorch {
                newest, gathered, ..
            } => Some(invalid_torch_hint(newest, gathered, "choose CUDA separately")),
            ResolveError::UnknownTorch {
                newer: true,
                newest,
                gathered,
                ..
            } => Some(format!(
                "look the release up with --online (or `online = true` under [torch]), upgrade torchkit for a matrix gathered after {gathered}, or use torch {newest}, the newest release this one knows"
            )),
            ResolveError::Online { tags, .. } if tags.is_empty() => Some(
                "pytorch/pytorch publishes its images some days after the PyPI release: use a release the matrix knows until the tags exist".into(),
            ),
            ResolveError::Online { .. } => Some(
                "upgrade torchkit for a matrix that knows this release, or use a release the matrix knows".into(),
            ),
            ResolveError::UnknownTorch {
                oldest,
                newest,
                gathered,
                ..
            } => Some(format!(
                "the matrix (facts gathered {gathered}) covers torch {oldest} to {newest}; pick one of those"
            )),
            ResolveError::InvalidCuda { .. } => Some(
                "use `auto` to let torchkit pick, `cpu`, or a CUDA version such as 12.8".into(),
            ),
            ResolveError::CudaNotShipped(c) => {
                let CudaNotShipped {
                    torch,
                    requested,
                    last_with,
                    first_with,
                    other_image,
                    nearest_shipped,
                    nearest_why,
                    ..
                } = &**c;
                let mut lines = Vec::new();
                if let Some(other) = last_with.as_ref().or(first_with.as_ref()) {
                    let img = other_image
                        .as_ref()
                        .map(|i| format!(" ({i})"))
                        .unwrap_or_default();
                    lines.push(format!("use torch {other} with CUDA {requested}{img}"));
                }
                lines.push(format!(
                    "or keep torch {torch} with CUDA {nearest_shipped}, {nearest_why} (or let CUDA be auto)"
                ));
                Some(lines.join("\n"))
            }
            ResolveError::InvalidDriver { .. } => Some(
                "give the `Driver Version` that nvidia-smi prints, e.g. 570.124.06".into(),
            ),
            ResolveError::UnknownGpu { .. } => Some(
                "give a product such as H100 or RTX 4090, or the compute capability itself (e.g. 8.6, from `nvidia-smi --query-gpu=compute_cap --format=csv`)".into(),
            ),
            ResolveError::AmbiguousGpu { .. } => Some(
                "give the full product name or the compute capability (e.g. 7.5)".into(),
            ),
            ResolveError::NoCompatibleVariant { suggestions, .. } => {
                if suggestions.is_empty() {
                    None
                } else {
                    Some(suggestions.join("\n"))
                }
            }
        }
    }
}
