//! The CUDA ⇄ driver ⇄ torch ⇄ GPU compatibility tables, compiled into the binary.
//!
//! The data lives in `matrix.toml` next to this file (a transcription of the project reference
//! `cuda-torch-matrix.md`, section 11, plus its GPU table). Every table names its sources with
//! the reference's `[Sx]` ids, listed in [`Matrix::sources`]. Facts the reference marks uncertain
//! keep an explicit marker (`status`, `uncertain`, `*_uncertain` fields) so callers can warn.
//!
//! This module may: parse the embedded TOML once, answer lookups, compare versions.
//! It may not: do IO of any kind (files, environment, processes, network), read a clock, or
//! depend on `resolve`, `cli`, `probe`, `buildkit` or `frontend`. Selection policy belongs to
//! [`crate::resolve`]; this module only states facts.

use std::collections::BTreeMap;
use std::sync::LazyLock;

use serde::Deserialize;

mod arch;
mod gpu;
mod version;

pub use arch::{ArchEntry, ArchList, Coverage};
pub use gpu::GpuLookup;
pub use version::{ComputeCapability, ParseVersionError, Version};

/// The embedded data file.
const MATRIX_TOML: &str = include_str!("matrix.toml");

static MATRIX: LazyLock<Matrix> = LazyLock::new(|| {
    // The file is part of the source tree and `tests::embedded_matrix_is_valid` parses and
    // validates it, so a failure here is a build defect, not a user error.
    Matrix::from_toml(MATRIX_TOML).expect("embedded matrix.toml parses and validates")
});

/// The compiled-in matrix, parsed on first use.
pub fn matrix() -> &'static Matrix {
    &MATRIX
}

/// All tables. Field names follow `matrix.toml`.
#[derive(Debug, Clone, Deserialize)]
#[serde(deny_unknown_fields)]
pub struct Matrix {
    /// Format version of the data file.
    pub schema: u32,
    /// Reference §2: the `[Sx]` sources cited by every table.
    pub sources: Vec<Source>,
    /// Reference §3.1: CUDA toolkit releases and their driver floors [S1][S2].
    pub cuda: Vec<CudaToolkit>,
    /// Reference §7.2: `pytorch/pytorch` tags expected to exist [S10][S11][S19]-[S22].
    #[serde(rename = "image")]
    pub images: Vec<ImageTag>,
    /// Reference §7.2: tags known not to exist.
    pub image_absent: Vec<AbsentTag>,
    /// Reference §3.2: what minor-version compatibility does not give [S3].
    pub mvc_caveats: Vec<String>,
    /// Reference §3.2: minor-version-compatibility floors per CUDA major [S1][S3].
    pub mvc: Vec<MvcFloor>,
    /// Reference §6.4: GPU products per compute capability [S24].
    #[serde(rename = "gpu")]
    pub gpus: Vec<GpuFamily>,
    /// Reference §5–§6: one entry per torch minor release.
    pub torch: Vec<TorchRelease>,
}

/// One cited source.
#[derive(Debug, Clone, Deserialize)]
#[serde(deny_unknown_fields)]
pub struct Source {
    /// `"S1"` …
    pub id: String,
    /// What it is.
    pub title: String,
    /// Where to read it, when there is one address.
    #[serde(default)]
    pub url: Option<String>,
}

/// A CUDA toolkit release and the driver it needs (Table 3 of the release notes) [S1][S2].
#[derive(Debug, Clone, Deserialize)]
#[serde(deny_unknown_fields)]
pub struct CudaToolkit {
    /// Full version, `"12.8.1"`.
    pub version: Version,
    /// Its `major.minor`, `"12.8"`.
    pub minor: Version,
    /// Row label in the release notes.
    pub label: String,
    /// Minimum Linux x86_64 driver ("toolkit driver").
    #[serde(default)]
    pub min_driver_linux: Option<Version>,
    /// Minimum Windows driver.
    #[serde(default)]
    pub min_driver_windows: Option<Version>,
    /// Driver bundled in the runfile installer [S2].
    #[serde(default)]
    pub runfile_driver: Option<Version>,
}

/// Evidence level of an image tag.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Deserialize, serde::Serialize)]
#[serde(rename_all = "lowercase")]
pub enum TagStatus {
    /// Referenced by public Dockerfiles or pulled by a mirror.
    Seen,
    /// Implied by the release build matrix.
    Expected,
    /// Weak or indirect evidence only.
    Uncertain,
}

/// A `pytorch/pytorch` tag expected to exist.
#[derive(Debug, Clone, Deserialize)]
#[serde(deny_unknown_fields)]
pub struct ImageTag {
    /// `"pytorch/pytorch"`.
    pub repo: String,
    /// `"2.8.0-cuda12.8-cudnn9-runtime"`.
    pub tag: String,
    /// torch release inside.
    pub torch: Version,
    /// CUDA `major.minor`.
    pub cuda: Version,
    /// cuDNN major.
    pub cudnn: String,
    /// `"runtime"` or `"devel"`.
    pub flavor: String,
    /// Python inside, as the reference states it (may carry a qualifier).
    pub python: String,
    /// Evidence level.
    pub status: TagStatus,
    /// Known defect or remark.
    #[serde(default)]
    pub note: Option<String>,
}

/// A tag known not to exist.
#[derive(Debug, Clone, Deserialize)]
#[serde(deny_unknown_fields)]
pub struct AbsentTag {
    /// The tag.
    pub tag: String,
    /// Why it cannot exist.
    pub reason: String,
    /// Cited sources.
    pub sources: Vec<String>,
}

/// Minor-version-compatibility floor of one CUDA major [S1][S3].
#[derive(Debug, Clone, Deserialize)]
#[serde(deny_unknown_fields)]
pub struct MvcFloor {
    /// CUDA major (11, 12, 13).
    pub major: u32,
    /// Lowest driver that runs any `major.x` build (with the caveats).
    pub min_driver: Version,
    /// Driver branches NVIDIA names for it.
    pub branch_range: String,
    /// Remark.
    pub note: String,
    /// Cited sources.
    pub sources: Vec<String>,
}

/// GPU products sharing one compute capability [S24].
#[derive(Debug, Clone, Deserialize)]
#[serde(deny_unknown_fields)]
pub struct GpuFamily {
    /// Compute capability.
    pub cc: ComputeCapability,
    /// Product names, matched as whole words.
    pub names: Vec<String>,
    /// The reference marks the row uncertain.
    #[serde(default)]
    pub uncertain: bool,
    /// Remark.
    #[serde(default)]
    pub note: Option<String>,
    /// Cited sources.
    pub sources: Vec<String>,
}

/// One torch minor release (reference §5.1, §6.1).
#[derive(Debug, Clone, Deserialize)]
#[serde(deny_unknown_fields)]
pub struct TorchRelease {
    /// `"2.8"`.
    pub version: Version,
    /// Cited sources.
    pub sources: Vec<String>,
    /// Patch releases, oldest first.
    pub patches: Vec<Version>,
    /// CUDA variants on download.pytorch.org (`cuXYZ`).
    pub cuda_variants: Vec<Version>,
    /// The CUDA build `pip install torch==X` pulls on Linux x86_64 [S10].
    pub pypi_default_cuda: Version,
    /// Python versions with wheels.
    pub wheel_python: Vec<String>,
    /// Python inside the pytorch/pytorch images (`"3.11"`; `"3.10 or 3.11"` when unknown).
    pub image_python: String,
    /// The image Python is not observed.
    pub image_python_uncertain: bool,
    /// Evidence for the image Python.
    pub image_python_note: String,
    /// pip flag for the wheel index (`--extra-index-url` for 1.13).
    pub index_flag: String,
    /// Evidence level of the arch lists, as the reference words it.
    pub arch_list_status: String,
    /// Variants (`"cu126"`) whose arch list is not confirmed.
    pub arch_uncertain: Vec<String>,
    /// Why those lists are uncertain.
    #[serde(default)]
    pub arch_note: Option<String>,
    /// Patches whose torchvision pairing is inferred.
    pub torchvision_uncertain: Vec<String>,
    /// Patches whose torchaudio pairing is inferred.
    pub torchaudio_uncertain: Vec<String>,
    /// torch patch → torchvision.
    pub torchvision: BTreeMap<String, String>,
    /// torch patch → torchaudio.
    pub torchaudio: BTreeMap<String, String>,
    /// CUDA variant → full cuDNN version.
    pub cudnn: BTreeMap<String, String>,
    /// CUDA variant → doubt about the cuDNN version.
    #[serde(default)]
    pub cudnn_note: BTreeMap<String, String>,
    /// `cuXYZ` → TORCH_CUDA_ARCH_LIST.
    pub arch_list: BTreeMap<String, String>,
}

/// One wheel variant of a torch release, with its facts gathered.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct Variant {
    /// CUDA `major.minor`.
    pub cuda: Version,
    /// Full cuDNN version.
    pub cudnn: String,
    /// cuDNN major, as in the image tag.
    pub cudnn_major: String,
    /// Doubt about the cuDNN version, if any.
    pub cudnn_note: Option<String>,
    /// Wheel arch list.
    pub arch_list: ArchList,
    /// The arch list is not confirmed.
    pub arch_uncertain: bool,
}

/// `cu128` spelling of a CUDA `major.minor`.
pub fn cu_tag(cuda: &Version) -> String {
    format!("cu{}{}", cuda.major(), cuda.minor())
}

/// Wheel index of a CUDA variant: `https://download.pytorch.org/whl/cu128` [S13].
pub fn index_url(cuda: &Version) -> String {
    format!("https://download.pytorch.org/whl/{}", cu_tag(cuda))
}

/// `pytorch/pytorch` tag for a CUDA image: `2.8.0-cuda12.8-cudnn9-runtime` [S11][S19].
pub fn image_tag(torch: &Version, cuda: &Version, cudnn_major: &str, flavor: &str) -> String {
    format!(
        "{torch}-cuda{}-cudnn{cudnn_major}-{flavor}",
        cuda.major_minor()
    )
}

impl TorchRelease {
    /// Whether `patch` is one of this release's patches.
    pub fn has_patch(&self, patch: &Version) -> bool {
        self.patches.iter().any(|p| p == patch)
    }

    /// Newest patch.
    pub fn latest_patch(&self) -> &Version {
        self.patches
            .iter()
            .max()
            .expect("validated: every release has patches")
    }

    /// The variant for a CUDA `major.minor`, if this release ships it.
    pub fn variant(&self, cuda: &Version) -> Option<Variant> {
        let cuda = self.cuda_variants.iter().find(|c| *c == cuda)?;
        let key = cuda.as_str();
        let cudnn = self.cudnn.get(key)?.clone();
        let cudnn_major = cudnn.split('.').next().unwrap_or_default().to_string();
        let cu = cu_tag(cuda);
        let arch_list = ArchList::parse(self.arch_list.get(&cu)?).ok()?;
        Some(Variant {
            cuda: cuda.clone(),
            cudnn,
            cudnn_major,
            cudnn_note: self.cudnn_note.get(key).cloned(),
            arch_list,
            arch_uncertain: self.arch_uncertain.contains(&cu),
        })
    }

    /// All variants in the order of `cuda_variants`.
    pub fn variants(&self) -> Vec<Variant> {
        self.cuda_variants
            .iter()
            .filter_map(|c| self.variant(c))
            .collect()
    }

    /// torchvision paired with `patch`, and whether the pairing is inferred.
    pub fn torchvision_for(&self, patch: &Version) -> Option<(String, bool)> {
        let v = self.torchvision.get(patch.as_str())?;
        Some((
            v.clone(),
            self.torchvision_uncertain
                .iter()
                .any(|p| p == patch.as_str()),
        ))
    }

    /// torchaudio paired with `patch`, and whether the pairing is inferred.
    pub fn torchaudio_for(&self, patch: &Version) -> Option<(String, bool)> {
        let v = self.torchaudio.get(patch.as_str())?;
        Some((
            v.clone(),
            self.torchaudio_uncertain
                .iter()
                .any(|p| p == patch.as_str()),
        ))
    }
}

impl Matrix {
    /// Parse and validate a matrix document.
    pub fn from_toml(text: &str) -> Result<Matrix, String> {
        let m: Matrix = toml::from_str(text).map_err(|e| e.to_string())?;
        let problems = m.problems();
        if problems.is_empty() {
            Ok(m)
        } else {
            Err(problems.join("\n"))
        }
    }

    /// Internal consistency problems (empty when the data hangs together).
    pub fn problems(&self) -> Vec<String> {
        let mut p = Vec::new();
        let ids: Vec<&str> = self.sources.iter().map(|s| s.id.as_str()).collect();
        let cite = |what: &str, srcs: &[String], p: &mut Vec<String>| {
            if srcs.is_empty() {
                p.push(format!("{what}: cites no source"));
            }
            for s in srcs {
                if !ids.contains(&s.as_str()) {
                    p.push(format!("{what}: unknown source {s}"));
                }
            }
        };
        for a in &self.image_absent {
            cite(&format!("image_absent {}", a.tag), &a.sources, &mut p);
            if self.image(&a.tag).is_some() {
                p.push(format!("{} is listed as both existing and absent", a.tag));
            }
        }
        for f in &self.mvc {
            cite(&format!("mvc {}", f.major), &f.sources, &mut p);
        }
        for g in &self.gpus {
            cite(&format!("gpu {}", g.cc), &g.sources, &mut p);
        }
        for c in &self.cuda {
            if c.version.major_minor() != c.minor {
                p.push(format!(
                    "cuda {}: minor {} does not match",
                    c.version, c.minor
                ));
            }
        }
        for t in &self.torch {
            let what = format!("torch {}", t.version);
            cite(&what, &t.sources, &mut p);
            if t.patches.is_empty() {
                p.push(format!("{what}: no patches"));
            }
            for patch in &t.patches {
                if patch.major_minor() != t.version {
                    p.push(format!("{what}: patch {patch} is not in this release"));
                }
                if !t.torchvision.contains_key(patch.as_str()) {
                    p.push(format!("{what}: no torchvision for {patch}"));
                }
                if !t.torchaudio.contains_key(patch.as_str()) {
                    p.push(format!("{what}: no torchaudio for {patch}"));
                }
            }
            if !t.cuda_variants.contains(&t.pypi_default_cuda) {
                p.push(format!("{what}: PyPI default CUDA is not a variant"));
            }
            for c in &t.cuda_variants {
                if self.toolkit_floor(c).is_none() {
                    p.push(format!("{what}: CUDA {c} has no driver floor"));
                }
                if self.mvc_floor(c.major()).is_none() {
                    p.push(format!("{what}: CUDA {c} has no MVC floor"));
                }
                if t.variant(c).is_none() {
                    p.push(format!("{what}: CUDA {c} lacks cuDNN or a valid arch list"));
                }
            }
            for cu in t.arch_list.keys().chain(t.arch_uncertain.iter()) {
                if !t.cuda_variants.iter().any(|c| &cu_tag(c) == cu) {
                    p.push(format!("{what}: arch list {cu} is not a variant"));
                }
            }
        }
        for img in &self.images {
            let Some(t) = self.release_of(&img.torch) else {
                p.push(format!("image {}: torch {} unknown", img.tag, img.torch));
                continue;
            };
            match t.variant(&img.cuda) {
                None => p.push(format!("image {}: torch has no CUDA {}", img.tag, img.cuda)),
                Some(v) => {
                    let want = image_tag(&img.torch, &img.cuda, &v.cudnn_major, &img.flavor);
                    if want != img.tag || v.cudnn_major != img.cudnn {
                        p.push(format!("image {}: fields say {want}", img.tag));
                    }
                }
            }
        }
        p
    }

    /// The minor release containing `patch` (looked up by `major.minor`).
    pub fn release_of(&self, version: &Version) -> Option<&TorchRelease> {
        let mm = version.major_minor();
        self.torch.iter().find(|t| t.version == mm)
    }

    /// Every known torch patch, ascending.
    pub fn all_patches(&self) -> Vec<&Version> {
        let mut v: Vec<&Version> = self.torch.iter().flat_map(|t| t.patches.iter()).collect();
        v.sort();
        v
    }

    /// Strict driver floor of a CUDA `major.minor`: the Table 3 minimum of its first
    /// (GA) release [S1]. A driver at or above it reports at least this CUDA version.
    pub fn toolkit_floor(&self, cuda: &Version) -> Option<&Version> {
        let mm = cuda.major_minor();
        self.cuda
            .iter()
            .filter(|c| c.minor == mm && !c.label.contains("RC"))
            .filter_map(|c| c.min_driver_linux.as_ref().map(|d| (&c.version, d)))
            .min_by(|a, b| a.0.cmp(b.0))
            .map(|(_, d)| d)
    }

    /// The newest CUDA `major.minor` whose strict floor `driver` meets: the driver's ceiling,
    /// what `nvidia-smi` would print as "CUDA Version" (R565 prints 12.7, which never shipped,
    /// so this answers 12.6 for it; comparisons come out the same) [S1][S6].
    pub fn driver_cuda_ceiling(&self, driver: &Version) -> Option<Version> {
        let mut minors: Vec<Version> = self.cuda.iter().map(|c| c.minor.clone()).collect();
        minors.sort();
        minors.dedup();
        minors
            .into_iter()
            .rev()
            .find(|m| self.toolkit_floor(m).is_some_and(|f| driver >= f))
    }

    /// Minor-version-compatibility floor of a CUDA major [S1][S3].
    pub fn mvc_floor(&self, major: u32) -> Option<&MvcFloor> {
        self.mvc.iter().find(|m| m.major == major)
    }

    /// An existing tag, if listed.
    pub fn image(&self, tag: &str) -> Option<&ImageTag> {
        self.images.iter().find(|i| i.tag == tag)
    }

    /// A tag known not to exist.
    pub fn absent(&self, tag: &str) -> Option<&AbsentTag> {
        self.image_absent.iter().find(|a| a.tag == tag)
    }

    /// Product name → compute capability.
    pub fn gpu(&self, name: &str) -> GpuLookup {
        gpu::lookup(&self.gpus, name)
    }

    /// A source by id.
    pub fn source(&self, id: &str) -> Option<&Source> {
        self.sources.iter().find(|s| s.id == id)
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    fn v(s: &str) -> Version {
        Version::parse(s).unwrap()
    }

    #[test]
    fn embedded_matrix_is_valid() {
        let m = Matrix::from_toml(MATRIX_TOML).unwrap_or_else(|e| panic!("{e}"));
        assert_eq!(m.schema, 1);
        assert_eq!(m.torch.len(), 13, "torch 1.13 … 2.11");
        assert_eq!(m.images.len(), 120);
        assert_eq!(m.sources.len(), 26);
    }

    #[test]
    fn problems_are_reported() {
        let broken = MATRIX_TOML.replacen(
            "pypi_default_cuda = \"12.8\"",
            "pypi_default_cuda = \"11.8\"",
            1,
        );
        let err = Matrix::from_toml(&broken).unwrap_err();
        assert!(err.contains("PyPI default CUDA is not a variant"), "{err}");
    }

    #[test]
    fn toolkit_floors_from_table_3() {
        let m = matrix();
        assert_eq!(m.toolkit_floor(&v("12.8")).unwrap().as_str(), "570.26");
        assert_eq!(m.toolkit_floor(&v("12.9")).unwrap().as_str(), "575.51.03");
        assert_eq!(m.toolkit_floor(&v("13.0")).unwrap().as_str(), "580.65.06");
        assert_eq!(m.toolkit_floor(&v("13.1")).unwrap().as_str(), "590.44.01");
        assert_eq!(m.toolkit_floor(&v("11.8")).unwrap().as_str(), "520.61.05");
        assert_eq!(m.toolkit_floor(&v("11.0")).unwrap().as_str(), "450.51.05");
        assert!(
            m.toolkit_floor(&v("12.7")).is_none(),
            "there is no 12.7 toolkit"
        );
    }

    #[test]
    fn driver_ceiling_matches_observed_headers() {
        // nvidia-smi headers quoted in [S6].
        let m = matrix();
        let c = |d| m.driver_cuda_ceiling(&v(d)).unwrap().to_string();
        assert_eq!(c("570.124.06"), "12.8");
        assert_eq!(c("550.54.14"), "12.4");
        assert_eq!(c("535.104.05"), "12.2");
        assert_eq!(c("470.63.01"), "11.4");
        assert_eq!(c("580.65.06"), "13.0");
        assert_eq!(c("565.57.01"), "12.6", "prints 12.7, which never shipped");
        assert!(m.driver_cuda_ceiling(&v("400.1")).is_none());
    }

    #[test]
    fn mvc_floors() {
        let m = matrix();
        assert_eq!(m.mvc_floor(11).unwrap().min_driver.as_str(), "450.80.02");
        assert_eq!(m.mvc_floor(12).unwrap().min_driver.as_str(), "525.60.13");
        assert_eq!(m.mvc_floor(13).unwrap().min_driver.as_str(), "580.65.06");
    }

    #[test]
    fn release_facts() {
        let m = matrix();
        let r28 = m.release_of(&v("2.8.0")).unwrap();
        assert_eq!(r28.pypi_default_cuda, v("12.8"));
        assert_eq!(r28.cuda_variants, vec![v("12.6"), v("12.8"), v("12.9")]);
        assert!(r28.variant(&v("11.8")).is_none());
        let cu128 = r28.variant(&v("12.8")).unwrap();
        assert_eq!(cu128.cudnn_major, "9");
        assert_eq!(cu128.arch_list.to_string(), "7.0;7.5;8.0;8.6;9.0;10.0;12.0");
        assert_eq!(
            r28.torchvision_for(&v("2.8.0")),
            Some(("0.23.0".into(), false))
        );
        // Inferred pairings and unconfirmed arch lists stay marked.
        let r27 = m.release_of(&v("2.7.1")).unwrap();
        assert_eq!(
            r27.torchvision_for(&v("2.7.1")),
            Some(("0.22.1".into(), true))
        );
        assert!(r27.variant(&v("12.6")).unwrap().arch_uncertain);
        assert!(!r27.variant(&v("12.8")).unwrap().arch_uncertain);
        let r210 = m.release_of(&v("2.10.0")).unwrap();
        assert_eq!(
            r210.torchaudio_for(&v("2.10.0")),
            Some(("2.10.0".into(), true))
        );
        assert_eq!(
            m.release_of(&v("2.11.0")).unwrap().pypi_default_cuda,
            v("13.0")
        );
        assert_eq!(
            m.release_of(&v("2.3.1"))
                .unwrap()
                .variant(&v("12.1"))
                .unwrap()
                .cudnn_major,
            "8"
        );
        assert!(m.release_of(&v("2.4")).unwrap().image_python_uncertain);
    }

    #[test]
    fn images_present_and_absent() {
        let m = matrix();
        assert!(m.image("2.8.0-cuda12.8-cudnn9-runtime").is_some());
        assert!(m.image("2.7.1-cuda11.8-cudnn9-runtime").is_some());
        assert!(m.image("2.8.0-cuda11.8-cudnn9-runtime").is_none());
        assert!(m.absent("2.8.0-cuda11.8-cudnn9-runtime").is_some());
        assert_eq!(
            m.image("2.0.1-cuda11.8-cudnn8-devel").unwrap().status,
            TagStatus::Uncertain
        );
        assert_eq!(
            image_tag(&v("2.8.0"), &v("12.8"), "9", "runtime"),
            "2.8.0-cuda12.8-cudnn9-runtime"
        );
        assert_eq!(
            index_url(&v("13.0")),
            "https://download.pytorch.org/whl/cu130"
        );
    }

    #[test]
    fn every_release_variant_has_its_tags() {
        // Each (patch, variant, flavor) of the release matrix is a listed tag [S11][S19].
        let m = matrix();
        for t in &m.torch {
            for p in &t.patches {
                for var in t.variants() {
                    for fl in ["runtime", "devel"] {
                        let tag = image_tag(p, &var.cuda, &var.cudnn_major, fl);
                        assert!(
                            m.image(&tag).is_some(),
                            "{tag} missing from the image table"
                        );
                    }
                }
            }
        }
    }

    #[test]
    fn products_to_compute_capability() {
        let m = matrix();
        let cc = |n: &str| match m.gpu(n) {
            GpuLookup::Found { cc, .. } => cc.to_string(),
            other => panic!("{n}: {other:?}"),
        };
        assert_eq!(cc("H100"), "9.0");
        assert_eq!(cc("NVIDIA H200"), "9.0");
        assert_eq!(cc("nvidia h100 80gb hbm3"), "9.0");
        assert_eq!(cc("NVIDIA A100-SXM4-80GB"), "8.0");
        assert_eq!(cc("Tesla V100-SXM2-16GB"), "7.0");
        assert_eq!(cc("NVIDIA GeForce RTX 5090"), "12.0");
        assert_eq!(cc("NVIDIA GeForce RTX 4070 Ti SUPER"), "8.9");
        assert_eq!(cc("NVIDIA RTX 6000 Ada Generation"), "8.9");
        assert_eq!(cc("Quadro RTX 6000"), "7.5");
        assert_eq!(cc("NVIDIA GeForce GTX 1080"), "6.1");
        assert_eq!(cc("NVIDIA TITAN V"), "7.0");
        assert_eq!(cc("NVIDIA L40S"), "8.9");
        assert_eq!(cc("NVIDIA B200"), "10.0");
        assert_eq!(cc("NVIDIA GB10"), "12.1");
        assert_eq!(cc("Tesla T4"), "7.5");
        // Whole words only: "A2" must not match "A2000", "L4" not "L40".
        assert_eq!(cc("NVIDIA RTX A2000"), "8.6");
        assert_eq!(cc("NVIDIA L4"), "8.9");
        assert!(matches!(
            m.gpu("K80"),
            GpuLookup::Found {
                uncertain: true,
                ..
            }
        ));
        match m.gpu("H10") {
            GpuLookup::Unknown(near) => assert!(near.iter().any(|n| n == "H100"), "{near:?}"),
            other => panic!("{other:?}"),
        }
        match m.gpu("RTX 5000") {
            GpuLookup::Unknown(near) => assert_eq!(near[0], "RTX 5000 Ada", "{near:?}"),
            other => panic!("no GeForce RTX 5000 exists: {other:?}"),
        }
    }
}
