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
pub mod facts;
mod gpu;
pub mod refresh;
pub mod show;
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

/// The text of the compiled-in `matrix.toml` (what `torchkit matrix refresh --write` edits).
pub fn matrix_toml() -> &'static str {
    MATRIX_TOML
}

/// The compiled-in matrix, parsed on first use.
pub fn matrix() -> &'static Matrix {
    &MATRIX
}

/// The compiled-in matrix's `gathered` date, read from its line without parsing the tables
/// (for `torchkit --version`, which every command builds). Equal to `matrix().gathered`.
pub fn gathered() -> &'static str {
    MATRIX_TOML
        .lines()
        .find_map(|l| {
            let rest = l.strip_prefix("gathered")?.trim_start().strip_prefix('=')?;
            rest.trim().strip_prefix('"')?.strip_suffix('"')
        })
        .expect("matrix.toml has a top-level `gathered = \"YYYY-MM-DD\"` line")
}

/// All tables. Field names follow `matrix.toml`.
#[derive(Debug, Clone, Deserialize)]
#[serde(deny_unknown_fields)]
pub struct Matrix {
    /// Format version of the data file.
    pub schema: u32,
    /// The day the facts were gathered (`YYYY-MM-DD`): releases after it are unknown to
    /// this matrix. `torchkit --version` and `torchkit resolve` print it.
    pub gathered: String,
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
    /// Sources of this row when they are not the table's own [S1][S2].
    #[serde(default)]
    pub sources: Vec<String>,
    /// What is not known about this row (e.g. a Table 3 value that was not read).
    #[serde(default)]
    pub note: Option<String>,
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
    /// How the wheel Pythons differ between patches, or what is unverified about them.
    #[serde(default)]
    pub wheel_python_note: Option<String>,
    /// Python inside the pytorch/pytorch images (`"3.11"`; `"3.10 or 3.11"` when unknown).
    pub image_python: String,
    /// The image Python is not observed.
    pub image_python_uncertain: bool,
    /// Evidence for the image Python.
    pub image_python_note: String,
    /// pip flag for the wheel index (`--extra-index-url` for 1.13).
    pub index_flag: String,
    /// Variants removed, pulled before release or unverified (not in `cuda_variants`).
    #[serde(default)]
    pub variants_note: Option<String>,
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
    /// How torchvision relates to this release when it is not a lock-step pairing (from
    /// 0.29.1 torchvision requires `torch>=2.14.0` instead of one torch patch).
    #[serde(default)]
    pub torchvision_note: Option<String>,
    /// How torchaudio relates to this release when it is not a lock-step pairing (there is
    /// no torchaudio 2.12 or later: 2.11.x declares itself compatible with newer torch).
    #[serde(default)]
    pub torchaudio_note: Option<String>,
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
    /// `cuXYZ` → arch list of the Linux aarch64 (SBSA) wheels, where the sources give one.
    /// Data only: torchkit resolves linux/amd64 images, whose lists are `arch_list`.
    #[serde(default)]
    pub arch_list_aarch64: BTreeMap<String, String>,
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
        if !is_date(&self.gathered) {
            p.push(format!(
                "gathered = {:?} is not a date (YYYY-MM-DD)",
                self.gathered
            ));
        }
        // Citations written inside notes (`[S27]`) must name listed sources too.
        let mut notes: Vec<(String, &str)> = Vec::new();
        for a in &self.image_absent {
            notes.push((format!("image_absent {}", a.tag), &a.reason));
        }
        for i in &self.images {
            if let Some(n) = &i.note {
                notes.push((format!("image {}", i.tag), n));
            }
        }
        for f in &self.mvc {
            notes.push((format!("mvc {}", f.major), &f.note));
        }
        for c in &self.cuda {
            if !c.sources.is_empty() {
                cite(&format!("cuda {}", c.version), &c.sources, &mut p);
            }
            if let Some(n) = &c.note {
                notes.push((format!("cuda {}", c.version), n));
            }
        }
        for t in &self.torch {
            let what = format!("torch {}", t.version);
            let singles = [
                &t.wheel_python_note,
                &t.variants_note,
                &t.arch_note,
                &t.torchvision_note,
                &t.torchaudio_note,
            ];
            for n in singles.into_iter().flatten() {
                notes.push((what.clone(), n));
            }
            notes.push((what.clone(), &t.image_python_note));
            for n in t.cudnn_note.values() {
                notes.push((what.clone(), n));
            }
        }
        for (what, note) in &notes {
            for id in cited_ids(note) {
                if !ids.contains(&id) {
                    p.push(format!("{what}: note cites unknown source {id}"));
                }
            }
        }
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
            for cu in t
                .arch_list
                .keys()
                .chain(t.arch_uncertain.iter())
                .chain(t.arch_list_aarch64.keys())
            {
                if !t.cuda_variants.iter().any(|c| &cu_tag(c) == cu) {
                    p.push(format!("{what}: arch list {cu} is not a variant"));
                }
            }
            for (cu, list) in &t.arch_list_aarch64 {
                if ArchList::parse(list).is_err() {
                    p.push(format!("{what}: aarch64 arch list {cu} does not parse"));
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

    /// Oldest known torch patch.
    pub fn oldest_patch(&self) -> &Version {
        self.all_patches()[0]
    }

    /// Newest known torch patch: releases after it are unknown to this matrix.
    pub fn newest_patch(&self) -> &Version {
        self.all_patches()
            .pop()
            .expect("validated: every release has patches")
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

/// `YYYY-MM-DD` with a plausible month and day.
fn is_date(s: &str) -> bool {
    let f: Vec<&str> = s.split('-').collect();
    let num = |x: &str, len: usize| {
        (x.len() == len && x.bytes().all(|b| b.is_ascii_digit())).then(|| x.parse::<u32>().ok())?
    };
    matches!(
        (f.as_slice(), f.len()),
        ([y, m, d], 3) if num(y, 4).is_some()
            && num(m, 2).is_some_and(|m| (1..=12).contains(&m))
            && num(d, 2).is_some_and(|d| (1..=31).contains(&d))
    )
}

/// The `Sx` ids cited as `[Sx]` in a note.
fn cited_ids(note: &str) -> Vec<&str> {
    note.split('[')
        .skip(1)
        .filter_map(|rest| rest.split_once(']').map(|(id, _)| id))
        .filter(|id| {
            id.strip_prefix('S')
                .is_some_and(|n| !n.is_empty() && n.bytes().all(|b| b.is_ascii_digit()))
        })
        .collect()
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
        assert_eq!(m.gathered, "2026-12-03");
        assert_eq!(
            gathered(),
            m.gathered,
            "the quick read agrees with the parse"
        );
        assert_eq!(m.torch.len(), 17, "torch 1.13 … 2.15");
        assert_eq!(m.images.len(), 154);
        assert_eq!(m.sources.len(), 39);
        assert_eq!(m.oldest_patch().as_str(), "1.13.0");
        assert_eq!(m.newest_patch().as_str(), "2.15.0");
    }

    #[test]
    fn every_release_after_2_11_is_covered() {
        // torch-releases.md: every PyPI release after 2.11.0; no 2.11.x patch, no 2.15.1.
        let m = matrix();
        let after: Vec<&str> = m
            .all_patches()
            .into_iter()
            .filter(|p| **p >= v("2.11.0"))
            .map(Version::as_str)
            .collect();
        assert_eq!(
            after,
            ["2.11.0", "2.12.0", "2.12.1", "2.13.0", "2.14.0", "2.14.1", "2.15.0"]
        );
    }

    #[test]
    fn gathered_must_be_a_date_and_note_citations_must_exist() {
        for bad in ["2026-13-03", "2026-12", "03.12.2026", "", "2026-12-3"] {
            let text = MATRIX_TOML.replacen(
                "gathered = \"2026-12-03\"",
                &format!("gathered = {bad:?}"),
                1,
            );
            let err = Matrix::from_toml(&text).unwrap_err();
            assert!(err.contains("is not a date"), "{bad}: {err}");
        }
        let text = MATRIX_TOML.replacen(
            "runfile names no longer carry the driver [S35]",
            "runfile names no longer carry the driver [S99]",
            1,
        );
        assert_ne!(text, MATRIX_TOML);
        let err = Matrix::from_toml(&text).unwrap_err();
        assert!(
            err.contains("cuda 13.4.1: note cites unknown source S99"),
            "{err}"
        );
        let text = MATRIX_TOML.replacen(
            "sources = [\"S34\", \"S35\", \"S39\"]",
            "sources = [\"S34\", \"S35\", \"S98\"]",
            1,
        );
        let err = Matrix::from_toml(&text).unwrap_err();
        assert!(err.contains("cuda 13.4.1: unknown source S98"), "{err}");
        assert_eq!(cited_ids("a [S1] b [S27][x] [S] [Sx] [S3"), ["S1", "S27"]);
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
        assert_eq!(m.toolkit_floor(&v("13.2")).unwrap().as_str(), "595.45.04");
        assert_eq!(m.toolkit_floor(&v("13.3")).unwrap().as_str(), "610.43.02");
        assert!(
            m.toolkit_floor(&v("13.4")).is_none(),
            "13.4's Table 3 value was not read: no floor"
        );
        // 13.0.3 (torch 2.13/2.14 PyPI pins) does not move the 13.0 GA floor.
        let u3 = m.cuda.iter().find(|c| c.version == v("13.0.3")).unwrap();
        assert_eq!(u3.runfile_driver.as_ref().unwrap().as_str(), "580.126.20");
        assert_eq!(u3.sources, ["S35"]);
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
        assert_eq!(c("580.159.04"), "13.0", "the project fixture's header");
        assert_eq!(c("595.71.05"), "13.2");
        assert_eq!(c("615.71.09"), "13.3", "no recorded 13.4 floor");
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
    fn torch_2_11_re_verified_from_the_wheel() {
        // The project GPU fixture (2.11.0+cu130): no compute_120, cuDNN 91900 [S28][S29].
        let r = matrix().release_of(&v("2.11.0")).unwrap();
        let cu130 = r.variant(&v("13.0")).unwrap();
        assert_eq!(cu130.arch_list.to_string(), "7.5;8.0;8.6;9.0;10.0;12.0");
        assert!(!cu130.arch_uncertain);
        assert_eq!(cu130.cudnn, "9.19.0.56");
        assert!(r.wheel_python.iter().any(|p| p == "3.13t"));
        assert_eq!(
            r.arch_list_aarch64.get("cu130").map(String::as_str),
            Some("8.0;9.0;10.0;11.0;12.0")
        );
    }

    #[test]
    fn releases_2_12_to_2_15() {
        let m = matrix();
        let rel = |p: &str| m.release_of(&v(p)).unwrap();
        for p in ["2.12.0", "2.12.1", "2.13.0", "2.14.0", "2.14.1"] {
            let r = rel(p);
            assert!(r.has_patch(&v(p)), "{p}");
            assert_eq!(
                r.cuda_variants,
                vec![v("12.6"), v("13.0"), v("13.2")],
                "{p}"
            );
            assert_eq!(r.pypi_default_cuda, v("13.0"), "{p}: PyPI +cu130");
            // cu126 is the one path left for Maxwell, Pascal and Volta.
            let cu126 = r.variant(&v("12.6")).unwrap().arch_list.to_string();
            assert_eq!(cu126, "5.0;6.0;7.0;7.5;8.0;8.6;9.0", "{p}");
            // Torchaudio stopped at 2.11.x; the note says so.
            assert_eq!(r.torchaudio_for(&v(p)), Some(("2.11.0".into(), false)));
            assert!(r
                .torchaudio_note
                .as_deref()
                .unwrap()
                .contains("no torchaudio"));
        }
        let tv = |p: &str| rel(p).torchvision_for(&v(p)).unwrap().0;
        assert_eq!(
            ["2.12.0", "2.12.1", "2.13.0", "2.14.0", "2.14.1", "2.15.0"].map(tv),
            ["0.27.0", "0.27.1", "0.28.0", "0.29.0", "0.29.1", "0.29.2"]
        );
        assert_eq!(rel("2.12.1").wheel_python.len(), 7);
        assert!(rel("2.14.0")
            .variants_note
            .as_deref()
            .unwrap()
            .contains("cu134"));
        assert!(rel("2.14.1")
            .torchvision_note
            .as_deref()
            .unwrap()
            .contains("torch>=2.14.0"));

        let r = rel("2.15.0");
        assert_eq!(r.cuda_variants, vec![v("13.0"), v("13.2")]);
        assert_eq!(r.pypi_default_cuda, v("13.2"));
        assert_eq!(r.wheel_python.first().map(String::as_str), Some("3.11"));
        assert_eq!(
            r.torchaudio_for(&v("2.15.0")),
            Some(("2.11.1".into(), false))
        );
        let cu132 = r.variant(&v("13.2")).unwrap();
        assert_eq!(cu132.cudnn, "9.26.0.51");
        assert!(!cu132.arch_uncertain, "read from the wheel");
        let cu130 = r.variant(&v("13.0")).unwrap();
        assert!(cu130.arch_uncertain, "the 2.15 cu130 wheel was not read");
        assert_eq!(cu130.cudnn_major, "9");
        assert!(cu130.cudnn_note.is_some());
        // No 2.15 variant targets a pre-Turing GPU.
        for var in r.variants() {
            let old = var
                .arch_list
                .entries
                .iter()
                .filter(|e| e.cc.major < 7 || e.cc == ComputeCapability { major: 7, minor: 0 });
            assert_eq!(old.count(), 0, "{}", var.arch_list);
        }
    }

    #[test]
    fn new_arches_as_the_sources_say() {
        // sm_100 and sm_120 in every 13.x x86_64 list, sm_110 only in aarch64 lists, sm_103
        // and sm_121 in none (they run the sm_100 / sm_120 cubins).
        let m = matrix();
        let cc = |s: &str| ComputeCapability::parse(s).unwrap();
        for t in m.torch.iter().filter(|t| t.version >= v("2.11")) {
            for var in t.variants().into_iter().filter(|x| x.cuda.major() == 13) {
                let list = &var.arch_list;
                let has = |c: &str| list.entries.iter().any(|e| e.cc == cc(c));
                assert!(has("10.0") && has("12.0"), "{} {list}", t.version);
                assert!(!has("11.0") && !has("10.3") && !has("12.1"), "{list}");
                assert!(
                    list.entries.iter().all(|e| !e.ptx),
                    "release wheels carry no PTX"
                );
                assert!(matches!(list.coverage(cc("10.3")), Coverage::Native(_)));
                assert!(matches!(list.coverage(cc("12.1")), Coverage::Native(_)));
                assert_eq!(list.coverage(cc("11.0")), Coverage::None);
            }
            for (cu, l) in &t.arch_list_aarch64 {
                if cu.starts_with("cu13") {
                    assert!(l.contains("11.0"), "{} {cu} aarch64: {l}", t.version);
                }
            }
        }
    }

    #[test]
    fn images_present_and_absent() {
        let m = matrix();
        assert!(m.image("2.8.0-cuda12.8-cudnn9-runtime").is_some());
        assert!(m.image("2.7.1-cuda11.8-cudnn9-runtime").is_some());
        assert!(m.image("2.8.0-cuda11.8-cudnn9-runtime").is_none());
        assert!(m.absent("2.8.0-cuda11.8-cudnn9-runtime").is_some());
        assert!(m.absent("2.15.0-cuda12.6-cudnn9-runtime").is_some());
        assert!(m.absent("2.14.0-cuda13.4-cudnn9-devel").is_some());
        // 2.12 to 2.14.1 are referenced by third parties; no 2.15.0 tag is.
        assert_eq!(
            m.image("2.12.0-cuda13.2-cudnn9-devel").unwrap().status,
            TagStatus::Seen
        );
        assert_eq!(
            m.image("2.14.0-cuda13.2-cudnn9-runtime").unwrap().status,
            TagStatus::Expected
        );
        for t in m.images.iter().filter(|i| i.torch == v("2.15.0")) {
            assert_eq!(t.status, TagStatus::Uncertain, "{}", t.tag);
        }
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
