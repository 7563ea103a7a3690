//! Facts about a torch release read from its public sources, parsed without IO: the PyPI
//! JSON API (`/pypi/<project>/json`, `/pypi/<project>/<version>/json`), the PyTorch wheel
//! indexes (`download.pytorch.org/whl/cuXYZ/<project>/`) and a registry's tag list
//! (`/v2/pytorch/pytorch/tags/list`). The `registry` edge fetches the bytes; this module
//! reads them, and [`Matrix::with_release`] turns the facts about a release the matrix has
//! not seen into a matrix that has it, every unchecked fact marked uncertain.
//!
//! Used by `torchkit resolve/plan/build --online` (one release) and by
//! `torchkit matrix refresh` (every release).

use std::collections::BTreeMap;

use serde::{Deserialize, Serialize};

use super::{CudaToolkit, ImageTag, Matrix, Source, TagStatus, TorchRelease, Version};

/// The source id the facts looked up online are cited by.
pub const ONLINE_SOURCE: &str = "ONLINE";

/// The note of an image tag found in the registry's tag list by an online lookup.
pub const FOUND_ONLINE: &str = "found in the registry's tag list [ONLINE]";

/// Why a document could not be read.
#[derive(Debug, Clone, PartialEq, Eq, thiserror::Error)]
#[error("{what}: {message}")]
pub struct FactsError {
    /// Which document (`PyPI JSON for torch 2.16.0`).
    pub what: String,
    /// What is wrong with it.
    pub message: String,
}

/// One release of a PyPI project, from `/pypi/<project>/<version>/json`.
#[derive(Debug, Clone, PartialEq, Eq, Default, Serialize)]
pub struct PypiRelease {
    /// `info.version`.
    pub version: String,
    /// `info.requires_dist`: the requirements of the first uploaded file.
    pub requires_dist: Vec<String>,
    /// `info.requires_python`.
    pub requires_python: Option<String>,
    /// The day its first file was uploaded (`YYYY-MM-DD`).
    pub uploaded: Option<String>,
    /// Every file was yanked.
    pub yanked: bool,
}

#[derive(Deserialize)]
struct ReleaseJson {
    info: InfoJson,
    #[serde(default)]
    urls: Vec<FileJson>,
}

#[derive(Deserialize)]
struct InfoJson {
    version: String,
    #[serde(default)]
    requires_dist: Option<Vec<String>>,
    #[serde(default)]
    requires_python: Option<String>,
    #[serde(default)]
    yanked: bool,
}

#[derive(Deserialize)]
struct FileJson {
    #[serde(default)]
    upload_time_iso_8601: Option<String>,
    #[serde(default)]
    upload_time: Option<String>,
    #[serde(default)]
    yanked: bool,
}

impl FileJson {
    fn day(&self) -> Option<String> {
        let t = self
            .upload_time_iso_8601
            .as_deref()
            .or(self.upload_time.as_deref())?;
        t.get(..10).map(str::to_string)
    }
}

fn earliest(files: &[FileJson]) -> Option<String> {
    files.iter().filter_map(FileJson::day).min()
}

/// Parse `/pypi/<project>/<version>/json`.
pub fn pypi_release(what: &str, json: &[u8]) -> Result<PypiRelease, FactsError> {
    let r: ReleaseJson = serde_json::from_slice(json).map_err(|e| FactsError {
        what: what.to_string(),
        message: format!("not PyPI release JSON: {e}"),
    })?;
    Ok(PypiRelease {
        version: r.info.version,
        requires_dist: r.info.requires_dist.unwrap_or_default(),
        requires_python: r.info.requires_python.filter(|s| !s.is_empty()),
        uploaded: earliest(&r.urls),
        yanked: r.info.yanked || (!r.urls.is_empty() && r.urls.iter().all(|f| f.yanked)),
    })
}

/// The final (not pre-, post- or development) releases of a project with their upload day,
/// oldest first, from `/pypi/<project>/json`. Releases with no files or only yanked files
/// are left out.
pub fn pypi_project(what: &str, json: &[u8]) -> Result<Vec<(Version, String)>, FactsError> {
    #[derive(Deserialize)]
    struct ProjectJson {
        releases: BTreeMap<String, Vec<FileJson>>,
    }
    let p: ProjectJson = serde_json::from_slice(json).map_err(|e| FactsError {
        what: what.to_string(),
        message: format!("not PyPI project JSON: {e}"),
    })?;
    let mut out: Vec<(Version, String)> = p
        .releases
        .iter()
        .filter(|(_, files)| !files.is_empty() && !files.iter().all(|f| f.yanked))
        .filter_map(|(v, files)| {
            let v = Version::parse(v).ok()?;
            (v.parts().len() == 3).then_some(())?;
            Some((v, earliest(files)?))
        })
        .collect();
    out.sort();
    Ok(out)
}

/// A requirement's distribution name, lower-case (`cuda-toolkit[cublas]==13.0.2; …` →
/// `cuda-toolkit`).
fn requirement_name(req: &str) -> String {
    req.split(|c: char| "[=<>!~;( ".contains(c))
        .next()
        .unwrap_or("")
        .trim()
        .to_ascii_lowercase()
        .replace('_', "-")
}

/// The version pinned by `==` in a requirement (`…==13.0.2; marker` → `13.0.2`).
fn pinned(req: &str) -> Option<&str> {
    let spec = req.split(';').next()?;
    let at = spec.find("==")?;
    let v = spec[at + 2..]
        .split([',', ' ', ')'])
        .next()?
        .trim()
        .trim_end_matches(".*");
    (!v.is_empty()).then_some(v)
}

/// The CUDA `major.minor` a torch wheel on PyPI is built for, from its Requires-Dist: the
/// `cuda-toolkit[…]==X.Y.Z` metapackage (torch ≥ 2.11) or `nvidia-cuda-runtime-cuXX==X.Y.Z`
/// (torch 1.13 to 2.10). None for a wheel with no CUDA requirement (a CPU build).
pub fn pypi_default_cuda(requires_dist: &[String]) -> Option<Version> {
    let runtime = |name: &str| {
        name == "cuda-toolkit"
            || name == "nvidia-cuda-runtime"
            || name
                .strip_prefix("nvidia-cuda-runtime-cu")
                .is_some_and(|m| m.chars().all(|c| c.is_ascii_digit()))
    };
    requires_dist
        .iter()
        .filter(|r| runtime(&requirement_name(r)))
        .find_map(|r| Version::parse(pinned(r)?).ok())
        .filter(|v| v.parts().len() >= 2)
        .map(|v| v.major_minor())
}

/// The release a companion (torchvision, torchaudio) declares for torch: `torch==X` → that
/// patch; `torch>=X` → compatible with every later one. None: no torch requirement.
pub fn torch_requirement(requires_dist: &[String]) -> Option<TorchRequirement> {
    let r = requires_dist
        .iter()
        .find(|r| requirement_name(r) == "torch")?;
    let spec = r.split(';').next().unwrap_or(r);
    let spec = spec.trim_start_matches(|c: char| c.is_ascii_alphanumeric() || c == '-');
    if let Some(v) = pinned(spec) {
        return Version::parse(v).ok().map(TorchRequirement::Exactly);
    }
    let at = spec.find(">=")?;
    let v = spec[at + 2..].split([',', ' ', ')']).next()?.trim();
    Version::parse(v).ok().map(TorchRequirement::AtLeast)
}

/// What a companion release requires of torch.
#[derive(Debug, Clone, PartialEq, Eq)]
pub enum TorchRequirement {
    /// `torch==X`.
    Exactly(Version),
    /// `torch>=X`.
    AtLeast(Version),
}

impl TorchRequirement {
    /// Whether torch `v` satisfies it.
    pub fn admits(&self, v: &Version) -> bool {
        match self {
            TorchRequirement::Exactly(x) => x == v,
            TorchRequirement::AtLeast(x) => v >= x,
        }
    }
}

/// The versions and local tags (`2.15.0+cu132` → (2.15.0, Some("cu132"))) of a project's
/// wheels listed on a PEP 503 index page (`download.pytorch.org/whl/cu132/torch/`).
pub fn wheel_index(html: &str, project: &str) -> Vec<(Version, Option<String>)> {
    let prefix = format!("{}-", project.replace('-', "_"));
    let mut out = Vec::new();
    for chunk in html.split("href=").skip(1) {
        let q = chunk.chars().next();
        let body = match q {
            Some(c @ ('"' | '\'')) => chunk[1..].split(c).next().unwrap_or(""),
            _ => chunk.split([' ', '>']).next().unwrap_or(""),
        };
        let file = body.split(['#', '?']).next().unwrap_or("");
        let file = file.rsplit('/').next().unwrap_or(file);
        let file = file.replace("%2B", "+").replace("%2b", "+");
        let Some(rest) = file.strip_prefix(&prefix) else {
            continue;
        };
        if !rest.ends_with(".whl") {
            continue;
        }
        let version = rest.split('-').next().unwrap_or("");
        let (base, local) = match version.split_once('+') {
            Some((b, l)) => (b, Some(l.to_string())),
            None => (version, None),
        };
        if let Ok(v) = Version::parse(base) {
            if v.parts().len() == 3 && !out.contains(&(v.clone(), local.clone())) {
                out.push((v, local));
            }
        }
    }
    out.sort();
    out
}

/// Parse a registry's `/v2/<name>/tags/list` page.
pub fn tags_list(what: &str, json: &[u8]) -> Result<Vec<String>, FactsError> {
    #[derive(Deserialize)]
    struct TagsJson {
        #[serde(default)]
        tags: Option<Vec<String>>,
    }
    let t: TagsJson = serde_json::from_slice(json).map_err(|e| FactsError {
        what: what.to_string(),
        message: format!("not a registry tag list: {e}"),
    })?;
    Ok(t.tags.unwrap_or_default())
}

/// A `pytorch/pytorch` CUDA tag of one torch release, read back from its name
/// (`2.16.0-cuda13.2-cudnn9-runtime`).
#[derive(Debug, Clone, PartialEq, Eq, PartialOrd, Ord, Serialize)]
pub struct FoundTag {
    /// CUDA `major.minor`.
    pub cuda: Version,
    /// cuDNN major.
    pub cudnn: String,
    /// `runtime` or `devel`.
    pub flavor: String,
    /// The tag.
    pub tag: String,
}

/// The CUDA tags of torch `v` among `tags`, sorted by CUDA.
pub fn image_tags(v: &Version, tags: &[String]) -> Vec<FoundTag> {
    let prefix = format!("{v}-cuda");
    let mut out: Vec<FoundTag> = tags
        .iter()
        .filter_map(|t| {
            let rest = t.strip_prefix(&prefix)?;
            let (cuda, rest) = rest.split_once("-cudnn")?;
            let (cudnn, flavor) = rest.split_once('-')?;
            let cuda = Version::parse(cuda).ok()?;
            (cuda.parts().len() == 2
                && !cudnn.is_empty()
                && cudnn.chars().all(|c| c.is_ascii_digit())
                && matches!(flavor, "runtime" | "devel"))
            .then(|| FoundTag {
                cuda,
                cudnn: cudnn.to_string(),
                flavor: flavor.to_string(),
                tag: t.clone(),
            })
        })
        .collect();
    out.sort();
    out.dedup();
    out
}

/// The `pytorch/pytorch` tags an unseen torch release `v` may have in `flavor`, for a
/// lookup that can only ask whether a tag exists (the frontend, through the daemon's
/// ResolveImageConfig): the CUDA majors of the newest known release, from its lowest minor
/// to four minors above its highest, with its cuDNN majors.
pub fn candidate_tags(m: &Matrix, v: &Version, flavor: &str) -> Vec<String> {
    let Some(newest) = m.torch.iter().max_by(|a, b| a.version.cmp(&b.version)) else {
        return Vec::new();
    };
    let mut cudnn: Vec<String> = newest
        .cudnn
        .values()
        .filter_map(|c| c.split('.').next().map(str::to_string))
        .collect();
    cudnn.sort();
    cudnn.dedup();
    let mut majors: Vec<u32> = newest.cuda_variants.iter().map(|c| c.major()).collect();
    majors.sort();
    majors.dedup();
    let mut out = Vec::new();
    for major in majors {
        let minors: Vec<u32> = newest
            .cuda_variants
            .iter()
            .filter(|c| c.major() == major)
            .map(|c| c.minor())
            .collect();
        let (lo, hi) = (
            minors.iter().copied().min().unwrap_or(0),
            minors.iter().copied().max().unwrap_or(0) + 4,
        );
        for minor in lo..=hi {
            for n in &cudnn {
                out.push(format!("{v}-cuda{major}.{minor}-cudnn{n}-{flavor}"));
            }
        }
    }
    out
}

/// What was found online about one torch release the matrix has not seen.
#[derive(Debug, Clone, PartialEq, Eq, Serialize)]
pub struct ReleaseFacts {
    /// The torch release.
    pub torch: Version,
    /// Where each fact came from, as URLs or `image:<ref>` names, in the order read.
    pub looked_up: Vec<String>,
    /// Day of the PyPI upload; None when PyPI was not asked (the frontend).
    pub uploaded: Option<String>,
    /// PyPI's Requires-Python.
    pub requires_python: Option<String>,
    /// The CUDA of the PyPI wheel (None: not asked, or a CPU wheel).
    pub pypi_default_cuda: Option<Version>,
    /// The `pytorch/pytorch` tags of this release that exist.
    pub tags: Vec<FoundTag>,
    /// The CUDA variants the wheel indexes list it in (empty: not read; the tags' CUDAs
    /// are the variants then).
    pub variants: Vec<Version>,
    /// torchvision that declares this torch (None: not found).
    pub torchvision: Option<String>,
    /// torchaudio that declares this torch (None: not found).
    pub torchaudio: Option<String>,
}

impl Matrix {
    /// This matrix with the release `facts` describe added (a new patch of a known minor
    /// release, or a new release), so that the resolver can answer for it. Facts the sources
    /// did not give are taken from the newest known release and marked uncertain: the image's
    /// Python, the arch lists (from the newest release that ships the same CUDA), a CUDA
    /// toolkit's driver floor the matrix does not have (that of the newest known toolkit of
    /// the same major), cuDNN beyond the tag's major, and torchvision/torchaudio when PyPI
    /// named none. [`Matrix::unchecked`] lists what was assumed.
    pub fn with_release(&self, facts: &ReleaseFacts) -> Result<Matrix, FactsError> {
        self.with_release_cited(
            facts,
            &Source {
                id: ONLINE_SOURCE.into(),
                title: format!("looked up online: {}", facts.looked_up.join(", ")),
                url: None,
            },
        )
    }

    /// [`Matrix::with_release`] with the new facts citing `source` (added to the sources
    /// unless the matrix lists its id already): `torchkit matrix refresh` cites its own
    /// dated source instead of `ONLINE`. Applied once per release, it adds several.
    pub fn with_release_cited(
        &self,
        facts: &ReleaseFacts,
        source: &Source,
    ) -> Result<Matrix, FactsError> {
        let src = source.id.as_str();
        let v = &facts.torch;
        let fail = |message: String| FactsError {
            what: format!("torch {v} looked up online"),
            message,
        };
        if facts.tags.is_empty() {
            return Err(fail(
                "the registry has no pytorch/pytorch CUDA tag for it".into(),
            ));
        }
        let mut m = self.clone();
        if m.source(src).is_none() {
            m.sources.push(source.clone());
        }
        let cite = vec![src.to_string()];
        let newest = self
            .torch
            .iter()
            .max_by(|a, b| a.version.cmp(&b.version))
            .ok_or_else(|| fail("the matrix has no torch release".into()))?
            .clone();
        let patch = v.to_string();
        // The variants: the wheel indexes' where they were read, and every tag's CUDA.
        let mut cudas: Vec<Version> = facts.tags.iter().map(|t| t.cuda.clone()).collect();
        cudas.extend(facts.variants.iter().cloned());
        cudas.sort();
        cudas.dedup();

        // Toolkits the matrix does not know: the floor of the newest known one of that major.
        for c in &cudas {
            if self.toolkit_floor(c).is_some() {
                continue;
            }
            let same_major = self
                .cuda
                .iter()
                .filter(|t| t.minor.major() == c.major() && t.min_driver_linux.is_some())
                .max_by(|a, b| a.version.cmp(&b.version))
                .ok_or_else(|| {
                    fail(format!(
                        "CUDA {c} is a new major: no driver floor is known for it"
                    ))
                })?;
            m.cuda.push(CudaToolkit {
                version: Version::parse(&format!("{c}.0")).map_err(|e| fail(e.to_string()))?,
                minor: c.clone(),
                label: format!("CUDA {c} (not in the matrix)"),
                min_driver_linux: same_major.min_driver_linux.clone(),
                min_driver_windows: None,
                runfile_driver: None,
                sources: cite.clone(),
                note: Some(format!(
                    "{ASSUMED_FLOOR} from CUDA {}; not checked",
                    same_major.version
                )),
            });
        }

        for t in &facts.tags {
            m.images.push(ImageTag {
                repo: "pytorch/pytorch".into(),
                tag: t.tag.clone(),
                torch: v.clone(),
                cuda: t.cuda.clone(),
                cudnn: t.cudnn.clone(),
                flavor: t.flavor.clone(),
                python: newest.image_python.clone(),
                status: TagStatus::Seen,
                note: (src == ONLINE_SOURCE).then(|| FOUND_ONLINE.into()),
            });
        }

        let minor = v.major_minor();
        let i = match m.torch.iter().position(|r| r.version == minor) {
            Some(i) => i,
            None => {
                m.torch.push(TorchRelease {
                    version: minor.clone(),
                    sources: cite.clone(),
                    patches: Vec::new(),
                    cuda_variants: Vec::new(),
                    pypi_default_cuda: facts
                        .pypi_default_cuda
                        .clone()
                        .unwrap_or_else(|| newest.pypi_default_cuda.clone()),
                    wheel_python: newest.wheel_python.clone(),
                    wheel_python_note: Some(format!(
                        "assumed from torch {} (Requires-Python {}) [{src}]",
                        newest.version,
                        facts.requires_python.as_deref().unwrap_or("not read")
                    )),
                    image_python: newest.image_python.clone(),
                    image_python_uncertain: true,
                    image_python_note: format!(
                        "assumed from the torch {} images [{src}]",
                        newest.version
                    ),
                    index_flag: newest.index_flag.clone(),
                    variants_note: None,
                    arch_list_status: format!(
                        "not read: assumed from the newest release with each CUDA variant [{src}]"
                    ),
                    arch_uncertain: Vec::new(),
                    arch_note: Some(format!(
                        "{ASSUMED_ARCH} from the newest known release with each CUDA variant [{src}]"
                    )),
                    torchvision_uncertain: Vec::new(),
                    torchaudio_uncertain: Vec::new(),
                    torchvision_note: None,
                    torchaudio_note: None,
                    torchvision: BTreeMap::new(),
                    torchaudio: BTreeMap::new(),
                    cudnn: BTreeMap::new(),
                    cudnn_note: BTreeMap::new(),
                    arch_list: BTreeMap::new(),
                    arch_list_aarch64: BTreeMap::new(),
                });
                m.torch.len() - 1
            }
        };
        let r = &mut m.torch[i];
        if !r.patches.contains(v) {
            r.patches.push(v.clone());
            r.patches.sort();
        }
        if let Some(d) = &facts.pypi_default_cuda {
            if r.latest_patch() == v {
                r.pypi_default_cuda = d.clone();
            }
        }
        for c in &cudas {
            let cu = super::cu_tag(c);
            if !r.cuda_variants.contains(c) {
                r.cuda_variants.push(c.clone());
                r.cuda_variants.sort();
            }
            if !r.arch_list.contains_key(&cu) {
                let from = self
                    .torch
                    .iter()
                    .filter(|t| t.arch_list.contains_key(&cu))
                    .max_by(|a, b| a.version.cmp(&b.version))
                    .or_else(|| {
                        // A toolkit no release has shipped: the newest list of that major.
                        self.torch
                            .iter()
                            .filter(|t| t.cuda_variants.iter().any(|x| x.major() == c.major()))
                            .max_by(|a, b| a.version.cmp(&b.version))
                    })
                    .ok_or_else(|| fail(format!("no arch list is known for CUDA {c}")))?;
                let list = from.arch_list.get(&cu).cloned().or_else(|| {
                    let newest_same_major = from
                        .cuda_variants
                        .iter()
                        .filter(|x| x.major() == c.major())
                        .max()?;
                    from.arch_list
                        .get(&super::cu_tag(newest_same_major))
                        .cloned()
                });
                let list =
                    list.ok_or_else(|| fail(format!("no arch list is known for CUDA {c}")))?;
                r.arch_list.insert(cu.clone(), list);
                if !r.arch_uncertain.contains(&cu) {
                    r.arch_uncertain.push(cu.clone());
                }
            }
            if !r.cudnn.contains_key(c.as_str()) {
                let major = facts
                    .tags
                    .iter()
                    .find(|t| &t.cuda == c)
                    .map(|t| t.cudnn.clone())
                    .unwrap_or_else(|| "9".into());
                r.cudnn.insert(c.to_string(), major);
                r.cudnn_note.insert(
                    c.to_string(),
                    format!("cuDNN major from the image tag; full version not read [{src}]"),
                );
            }
        }
        let last = |map: &BTreeMap<String, String>| -> Option<String> {
            map.iter()
                .max_by(|a, b| Version::parse(a.0).ok().cmp(&Version::parse(b.0).ok()))
                .map(|(_, v)| v.clone())
        };
        let (tv, tv_guess) = match &facts.torchvision {
            Some(t) => (t.clone(), false),
            None => (last(&newest.torchvision).unwrap_or_default(), true),
        };
        let (ta, ta_guess) = match &facts.torchaudio {
            Some(t) => (t.clone(), false),
            None => (last(&newest.torchaudio).unwrap_or_default(), true),
        };
        let new_release = r.sources == cite;
        if new_release {
            let found = |name: &str, v: &Option<String>| {
                match v {
                Some(x) => format!("{name} {x} declares torch {patch} in its PyPI metadata [{src}]"),
                None => format!("no {name} on PyPI declares torch {patch}: the newest pairing the matrix knows is assumed [{src}]"),
            }
            };
            r.torchvision_note = Some(found("torchvision", &facts.torchvision));
            r.torchaudio_note = Some(found("torchaudio", &facts.torchaudio));
        }
        r.torchvision.insert(patch.clone(), tv);
        r.torchaudio.insert(patch.clone(), ta);
        if tv_guess {
            r.torchvision_uncertain.push(patch.clone());
        }
        if ta_guess {
            r.torchaudio_uncertain.push(patch.clone());
        }
        if !r.sources.iter().any(|s| s == src) {
            r.sources.push(src.into());
        }
        let problems = m.problems();
        if !problems.is_empty() {
            return Err(fail(format!(
                "the facts do not fit the matrix: {}",
                problems.join("; ")
            )));
        }
        Ok(m)
    }

    /// What [`Matrix::with_release`] assumed for the CUDA variant `cuda` of `release`
    /// instead of reading it: the toolkit's driver floor, the arch list. Empty for facts
    /// read from the sources.
    pub fn unchecked(&self, release: &TorchRelease, cuda: &Version) -> Vec<String> {
        let mut out = Vec::new();
        let assumed = self
            .cuda
            .iter()
            .filter(|t| &t.minor == cuda)
            .find_map(|t| t.note.as_deref().filter(|n| n.starts_with(ASSUMED_FLOOR)));
        if let Some(note) = assumed {
            out.push(format!("the driver floor of CUDA {cuda}: {note}"));
        }
        let cu = super::cu_tag(cuda);
        if release.arch_uncertain.contains(&cu)
            && release
                .arch_note
                .as_deref()
                .is_some_and(|n| n.starts_with(ASSUMED_ARCH))
        {
            out.push(format!(
                "the {cu} arch list (GPU verdicts): assumed from the newest known release with {cu}"
            ));
        }
        out
    }
}

const ASSUMED_FLOOR: &str = "floor assumed";
const ASSUMED_ARCH: &str = "arch lists assumed";

#[cfg(test)]
mod tests {
    use super::*;

    fn v(s: &str) -> Version {
        Version::parse(s).unwrap()
    }

    fn strings(s: &[&str]) -> Vec<String> {
        s.iter().map(|x| x.to_string()).collect()
    }

    #[test]
    fn default_cuda_from_the_toolkit_metapackage_and_the_runtime_package() {
        // torch 2.15.0 (torch-releases.md §1.6), 2.11.0 and 2.8.0 Requires-Dist lines.
        let t215 = strings(&[
            "filelock",
            "cuda-toolkit[cublas,cudart,cufft,cufile,cupti,curand,cusolver,cusparse,nvjitlink,nvrtc,nvtx]==13.2.2; platform_system == \"Linux\"",
            "nvidia-cudnn-cu13==9.26.0.51; platform_system == \"Linux\"",
        ]);
        assert_eq!(pypi_default_cuda(&t215), Some(v("13.2")));
        let t28 = strings(&[
            "nvidia-cuda-nvrtc-cu12==12.8.93; platform_system == \"Linux\" and platform_machine == \"x86_64\"",
            "nvidia-cuda-runtime-cu12==12.8.90; platform_system == \"Linux\" and platform_machine == \"x86_64\"",
        ]);
        assert_eq!(pypi_default_cuda(&t28), Some(v("12.8")));
        let t113 = strings(&["nvidia-cuda-runtime-cu11==11.7.99; platform_system == \"Linux\""]);
        assert_eq!(pypi_default_cuda(&t113), Some(v("11.7")));
        // A CPU wheel, or a project with no CUDA requirement.
        assert_eq!(
            pypi_default_cuda(&strings(&["filelock", "sympy>=1.13.3"])),
            None
        );
        // The cudnn package is not the runtime: it does not decide the CUDA.
        assert_eq!(
            pypi_default_cuda(&strings(&["nvidia-cudnn-cu13==9.26.0.51"])),
            None
        );
    }

    #[test]
    fn companion_requirements() {
        assert_eq!(
            torch_requirement(&strings(&[
                "numpy",
                "torch==2.12.0",
                "pillow!=8.3.*,>=5.3.0"
            ])),
            Some(TorchRequirement::Exactly(v("2.12.0")))
        );
        let r = torch_requirement(&strings(&["torch>=2.14.0"])).unwrap();
        assert!(r.admits(&v("2.16.0")) && !r.admits(&v("2.13.0")));
        assert_eq!(torch_requirement(&strings(&["numpy"])), None);
        // `torchvision` is not `torch`.
        assert_eq!(torch_requirement(&strings(&["torchvision==0.29.2"])), None);
    }

    #[test]
    fn release_and_project_json() {
        let rel = br#"{"info":{"version":"2.16.0","requires_dist":["cuda-toolkit[cudart]==13.4.1; platform_system == \"Linux\""],"requires_python":">=3.11","yanked":false},
            "urls":[{"upload_time_iso_8601":"2027-01-20T14:00:01.000Z","yanked":false},{"upload_time_iso_8601":"2027-01-20T13:58:00.000Z","yanked":false}]}"#;
        let r = pypi_release("torch 2.16.0", rel).unwrap();
        assert_eq!(r.uploaded.as_deref(), Some("2027-01-20"));
        assert_eq!(r.requires_python.as_deref(), Some(">=3.11"));
        assert_eq!(pypi_default_cuda(&r.requires_dist), Some(v("13.4")));
        assert!(!r.yanked);

        let proj = br#"{"info":{"version":"2.16.0"},"releases":{
            "2.15.0":[{"upload_time":"2026-10-28T14:00:00"}],
            "2.16.0":[{"upload_time_iso_8601":"2027-01-20T14:00:01Z"}],
            "2.16.0rc1":[{"upload_time":"2027-01-01T00:00:00"}],
            "2.0.0.post1":[{"upload_time":"2023-01-01T00:00:00"}],
            "2.9.9":[],
            "2.9.8":[{"upload_time":"2026-01-01T00:00:00","yanked":true}]}}"#;
        let p = pypi_project("torch", proj).unwrap();
        assert_eq!(
            p,
            vec![
                (v("2.15.0"), "2026-10-28".to_string()),
                (v("2.16.0"), "2027-01-20".to_string())
            ]
        );
        let e = pypi_release("torch 2.16.0", b"<html>").unwrap_err();
        assert!(
            e.to_string()
                .starts_with("torch 2.16.0: not PyPI release JSON"),
            "{e}"
        );
    }

    #[test]
    fn wheel_index_pages() {
        let html = r#"<!DOCTYPE html><html><body><h1>Links for torch</h1>
<a href="/whl/cu132/torch-2.15.0%2Bcu132-cp312-cp312-manylinux_2_28_x86_64.whl#sha256=ab">torch-2.15.0+cu132-cp312-cp312-manylinux_2_28_x86_64.whl</a><br/>
<a href="/whl/cu132/torch-2.15.0%2Bcu132-cp313-cp313-manylinux_2_28_x86_64.whl#sha256=cd">x</a><br/>
<a href='torch-2.14.1+cu132-cp312-cp312-win_amd64.whl'>y</a>
<a href="/whl/cu132/torchvision-0.29.2-py3-none-any.whl">z</a>
<a href="/whl/cu132/torch-2.16.0.dev20261201%2Bcu132-cp312-cp312-manylinux_2_28_x86_64.whl">n</a>
</body></html>"#;
        assert_eq!(
            wheel_index(html, "torch"),
            vec![
                (v("2.14.1"), Some("cu132".into())),
                (v("2.15.0"), Some("cu132".into()))
            ]
        );
        assert_eq!(wheel_index(html, "torchvision"), vec![(v("0.29.2"), None)]);
    }

    #[test]
    fn image_tags_of_one_release() {
        let tags = strings(&[
            "2.16.0-cuda13.2-cudnn9-runtime",
            "2.16.0-cuda13.2-cudnn9-devel",
            "2.16.0-cuda13.4-cudnn9-runtime",
            "2.16.0-runtime",
            "2.16.0-cuda13.2-cudnn9-nightly",
            "2.16.01-cuda13.2-cudnn9-runtime",
            "2.15.0-cuda13.2-cudnn9-runtime",
            "latest",
        ]);
        let found = image_tags(&v("2.16.0"), &tags);
        let names: Vec<&str> = found.iter().map(|t| t.tag.as_str()).collect();
        assert_eq!(
            names,
            [
                "2.16.0-cuda13.2-cudnn9-devel",
                "2.16.0-cuda13.2-cudnn9-runtime",
                "2.16.0-cuda13.4-cudnn9-runtime"
            ]
        );
        assert_eq!(
            tags_list("tags", br#"{"name":"pytorch/pytorch","tags":["a","b"]}"#).unwrap(),
            ["a", "b"]
        );
        assert_eq!(
            tags_list("tags", br#"{"name":"pytorch/pytorch","tags":null}"#).unwrap(),
            Vec::<String>::new()
        );
    }

    fn facts(torch: &str, tags: &[&str], default: Option<&str>) -> ReleaseFacts {
        let torch = v(torch);
        ReleaseFacts {
            tags: image_tags(&torch, &strings(tags)),
            variants: Vec::new(),
            torch,
            looked_up: vec!["http://127.0.0.1:1/pypi/torch/x/json".into()],
            uploaded: Some("2027-01-20".into()),
            requires_python: Some(">=3.11".into()),
            pypi_default_cuda: default.map(v),
            torchvision: Some("0.30.0".into()),
            torchaudio: None,
        }
    }

    #[test]
    fn a_new_release_joins_the_matrix_with_its_assumptions_marked() {
        let m = crate::matrix::matrix();
        let f = facts(
            "2.16.0",
            &[
                "2.16.0-cuda13.2-cudnn9-runtime",
                "2.16.0-cuda13.4-cudnn9-runtime",
            ],
            Some("13.4"),
        );
        let x = m.with_release(&f).unwrap();
        assert!(x.problems().is_empty(), "{:?}", x.problems());
        let r = x.release_of(&v("2.16.0")).unwrap();
        assert_eq!(r.cuda_variants, [v("13.2"), v("13.4")]);
        assert_eq!(r.pypi_default_cuda, v("13.4"));
        assert!(r.image_python_uncertain);
        assert_eq!(r.torchvision["2.16.0"], "0.30.0");
        assert!(r.torchaudio_uncertain.contains(&"2.16.0".to_string()));
        // CUDA 13.2 is known: its floor is the matrix's; 13.4 is not: assumed, and said so.
        assert_eq!(x.toolkit_floor(&v("13.2")), m.toolkit_floor(&v("13.2")));
        assert!(x
            .unchecked(r, &v("13.2"))
            .iter()
            .all(|u| !u.contains("driver floor")));
        let u = x.unchecked(r, &v("13.4"));
        assert!(
            u.iter()
                .any(|s| s.starts_with("the driver floor of CUDA 13.4")),
            "{u:?}"
        );
        assert!(u.iter().any(|s| s.contains("cu134 arch list")), "{u:?}");
        // The arch list of cu132 comes from 2.15's.
        assert_eq!(
            r.arch_list["cu132"],
            m.release_of(&v("2.15.0")).unwrap().arch_list["cu132"]
        );
        assert!(x.image("2.16.0-cuda13.4-cudnn9-runtime").is_some());
        // The compiled-in matrix is untouched.
        assert!(m.release_of(&v("2.16.0")).is_none());
    }

    #[test]
    fn a_new_patch_of_a_known_release_keeps_its_facts() {
        let m = crate::matrix::matrix();
        let f = facts("2.15.1", &["2.15.1-cuda13.2-cudnn9-runtime"], Some("13.2"));
        let x = m.with_release(&f).unwrap();
        let r = x.release_of(&v("2.15.1")).unwrap();
        assert_eq!(r.patches, [v("2.15.0"), v("2.15.1")]);
        // cu132's list was read for 2.15: nothing assumed for it.
        assert!(x.unchecked(r, &v("13.2")).is_empty());
        assert!(x.problems().is_empty(), "{:?}", x.problems());
    }

    #[test]
    fn candidate_tags_span_the_newest_release_and_four_minors_more() {
        let c = candidate_tags(crate::matrix::matrix(), &v("2.16.0"), "runtime");
        // torch 2.15 ships CUDA 13.0 and 13.2 with cuDNN 9.
        assert_eq!(c.first().unwrap(), "2.16.0-cuda13.0-cudnn9-runtime");
        assert_eq!(c.last().unwrap(), "2.16.0-cuda13.6-cudnn9-runtime");
        assert_eq!(c.len(), 7);
    }

    #[test]
    fn no_tag_or_a_new_cuda_major_is_refused() {
        let m = crate::matrix::matrix();
        let e = m.with_release(&facts("2.16.0", &[], None)).unwrap_err();
        assert!(e.message.contains("no pytorch/pytorch CUDA tag"), "{e}");
        let e = m
            .with_release(&facts("2.16.0", &["2.16.0-cuda14.0-cudnn10-runtime"], None))
            .unwrap_err();
        assert!(e.message.contains("CUDA 14.0 is a new major"), "{e}");
    }
}
