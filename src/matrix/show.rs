//! What `torchkit matrix show` prints: the compiled-in matrix as data, for people (aligned
//! columns, as `docker image ls`) and for programs (the same values as JSON).
//!
//! Two views, each a plain serialisable value built from [`Matrix`] and rendered to text by
//! its `render`:
//! - [`Overview`]: the matrix date, one row per torch release, the CUDA toolkits with their
//!   driver floors, and the sources;
//! - [`ReleaseDetail`]: one torch release in full (variants with cuDNN, arch list, driver
//!   floors; image tags; companions; notes; uncertainty marks; the sources it cites).
//!
//! Pure: no IO. Which release `--torch` names is decided by the resolver's parser, not here.
//!
//! The JSON shape (field names below) is stable: fields may be added, not renamed or removed.

use serde::Serialize;

use super::{cited_ids, cu_tag, index_url, Matrix, TagStatus, TorchRelease, Version};

/// Sources of a CUDA toolkit row that names none: the table's own, Table 3 of the release
/// notes [S1] and the runfile names [S2] (see [`super::CudaToolkit::sources`]).
const TOOLKIT_TABLE_SOURCES: [&str; 2] = ["S1", "S2"];

/// How current the matrix is (`"matrix"` in both JSON views, as in `torchkit resolve --json`).
#[derive(Debug, Clone, PartialEq, Eq, Serialize)]
pub struct MatrixDate {
    /// The day the facts were gathered (`YYYY-MM-DD`).
    pub gathered: String,
    /// Oldest known torch patch.
    pub oldest: String,
    /// Newest known torch patch: later releases are unknown to this binary.
    pub newest: String,
}

/// `torchkit matrix show`.
#[derive(Debug, Clone, Serialize)]
pub struct Overview {
    /// How current the matrix is.
    pub matrix: MatrixDate,
    /// Torch minor releases, oldest first.
    pub releases: Vec<ReleaseSummary>,
    /// CUDA toolkit releases, oldest first.
    pub cuda: Vec<Toolkit>,
    /// Every source, in id order.
    pub sources: Vec<SourceRef>,
}

/// One torch minor release, in brief.
#[derive(Debug, Clone, Serialize)]
pub struct ReleaseSummary {
    /// `"2.15"`.
    pub version: String,
    /// Patches, oldest first.
    pub patches: Vec<String>,
    /// CUDA variants (`major.minor`), as the matrix lists them.
    pub cuda_variants: Vec<String>,
    /// The variant `pip install torch==X` pulls on Linux x86_64.
    pub pypi_default_cuda: String,
    /// Pythons with wheels (`"3.13t"`: free-threaded).
    pub wheel_python: Vec<String>,
    /// torchvision and torchaudio per patch.
    pub companions: Vec<Companions>,
    /// Source ids of the release.
    pub sources: Vec<String>,
}

/// torchvision and torchaudio paired with one torch patch.
#[derive(Debug, Clone, Serialize)]
pub struct Companions {
    /// The torch patch.
    pub torch: String,
    /// Its torchvision.
    pub torchvision: String,
    /// The torchvision pairing is inferred, not confirmed.
    pub torchvision_inferred: bool,
    /// Its torchaudio.
    pub torchaudio: String,
    /// The torchaudio pairing is inferred, not confirmed.
    pub torchaudio_inferred: bool,
}

/// One CUDA toolkit release and the drivers it needs.
#[derive(Debug, Clone, Serialize)]
pub struct Toolkit {
    /// `"12.8.1"`.
    pub version: String,
    /// `"12.8"`.
    pub minor: String,
    /// Row label in the release notes.
    pub label: String,
    /// Minimum Linux x86_64 driver (Table 3), when recorded.
    pub min_driver_linux: Option<String>,
    /// Minimum Windows driver, when recorded.
    pub min_driver_windows: Option<String>,
    /// Driver bundled in the runfile installer, when recorded.
    pub runfile_driver: Option<String>,
    /// What is not known about the row.
    pub note: Option<String>,
    /// Source ids (the table's own, S1 and S2, when the row names none).
    pub sources: Vec<String>,
}

/// A cited source.
#[derive(Debug, Clone, Serialize)]
pub struct SourceRef {
    /// `"S1"`.
    pub id: String,
    /// What it is.
    pub title: String,
    /// Where to read it, when there is one address.
    pub url: Option<String>,
}

/// `torchkit matrix show --torch V`.
#[derive(Debug, Clone, Serialize)]
pub struct ReleaseDetail {
    /// How current the matrix is.
    pub matrix: MatrixDate,
    /// The patch the request reads as (`2.14` → its newest patch, `2.14.0` → itself).
    pub requested: String,
    /// `"2.14"`.
    pub version: String,
    /// Patches, oldest first.
    pub patches: Vec<String>,
    /// The variant `pip install torch==X` pulls on Linux x86_64.
    pub pypi_default_cuda: String,
    /// pip flag for the wheel index (`--index-url`; `--extra-index-url` for 1.13).
    pub index_flag: String,
    /// Pythons with wheels.
    pub wheel_python: Vec<String>,
    /// Python inside the `pytorch/pytorch` images.
    pub image_python: String,
    /// The image Python is not observed.
    pub image_python_uncertain: bool,
    /// Evidence level of the arch lists, as the reference words it.
    pub arch_list_status: String,
    /// Each CUDA variant, in the matrix's order.
    pub variants: Vec<VariantDetail>,
    /// torchvision and torchaudio per patch.
    pub companions: Vec<Companions>,
    /// `pytorch/pytorch` tags of the release's patches.
    pub images: Vec<Image>,
    /// Tags of the release's patches known not to exist.
    pub absent_images: Vec<AbsentImage>,
    /// The release's notes, each with what it is about.
    pub notes: Vec<Note>,
    /// Every fact of the release the matrix marks uncertain, in words.
    pub uncertain: Vec<String>,
    /// The sources the release and its notes cite, expanded, in id order.
    pub sources: Vec<SourceRef>,
}

/// One CUDA variant of a release.
#[derive(Debug, Clone, Serialize)]
pub struct VariantDetail {
    /// CUDA `major.minor`.
    pub cuda: String,
    /// `"cu126"`.
    pub tag: String,
    /// The PyPI default variant.
    pub pypi_default: bool,
    /// Its wheel index.
    pub index_url: String,
    /// Full cuDNN version (or only its major, when that is all that is known).
    pub cudnn: String,
    /// Doubt about the cuDNN version.
    pub cudnn_note: Option<String>,
    /// `TORCH_CUDA_ARCH_LIST` of the Linux x86_64 wheels.
    pub arch_list: String,
    /// The list ends in PTX (`+PTX`).
    pub ptx: bool,
    /// The arch list is not confirmed.
    pub arch_uncertain: bool,
    /// Arch list of the Linux aarch64 wheels, where the sources give one.
    pub arch_list_aarch64: Option<String>,
    /// Strict driver floor of the toolkit (Table 3 minimum of its GA release), when recorded.
    pub driver_floor: Option<String>,
    /// Minor-version-compatibility floor of the CUDA major.
    pub mvc_floor: Option<String>,
}

/// A `pytorch/pytorch` tag.
#[derive(Debug, Clone, Serialize)]
pub struct Image {
    /// `"pytorch/pytorch:2.14.1-cuda12.6-cudnn9-runtime"`.
    pub image: String,
    /// torch patch inside.
    pub torch: String,
    /// CUDA `major.minor`.
    pub cuda: String,
    /// `"runtime"` or `"devel"`.
    pub flavor: String,
    /// Python inside, as the reference states it.
    pub python: String,
    /// `seen`, `expected` or `uncertain`.
    pub status: TagStatus,
    /// Known defect or remark.
    pub note: Option<String>,
}

/// A tag known not to exist.
#[derive(Debug, Clone, Serialize)]
pub struct AbsentImage {
    /// The tag.
    pub tag: String,
    /// Why it cannot exist.
    pub reason: String,
    /// Source ids.
    pub sources: Vec<String>,
}

/// A note of the matrix.
#[derive(Debug, Clone, Serialize)]
pub struct Note {
    /// What it is about: `variants`, `wheel_python`, `image_python`, `arch`, `torchvision`,
    /// `torchaudio`, `cudnn 13.0`.
    pub about: String,
    /// The note, with its `[Sx]` citations.
    pub text: String,
}

fn date(m: &Matrix) -> MatrixDate {
    MatrixDate {
        gathered: m.gathered.clone(),
        oldest: m.oldest_patch().to_string(),
        newest: m.newest_patch().to_string(),
    }
}

fn strings(v: &[Version]) -> Vec<String> {
    v.iter().map(Version::to_string).collect()
}

fn source_ref(m: &Matrix, id: &str) -> SourceRef {
    match m.source(id) {
        Some(s) => SourceRef {
            id: s.id.clone(),
            title: s.title.clone(),
            url: s.url.clone(),
        },
        // Validation refuses unknown ids; keep the id rather than lose it.
        None => SourceRef {
            id: id.to_string(),
            title: "(not listed)".into(),
            url: None,
        },
    }
}

/// `S2` < `S10`: ids in numeric order.
fn sort_ids(ids: &mut Vec<String>) {
    let key = |s: &String| s.trim_start_matches('S').parse::<u32>().unwrap_or(u32::MAX);
    ids.sort_by_key(key);
    ids.dedup();
}

fn companions(t: &TorchRelease) -> Vec<Companions> {
    t.patches
        .iter()
        .map(|p| {
            let (tv, tv_inf) = t.torchvision_for(p).unwrap_or_default();
            let (ta, ta_inf) = t.torchaudio_for(p).unwrap_or_default();
            Companions {
                torch: p.to_string(),
                torchvision: tv,
                torchvision_inferred: tv_inf,
                torchaudio: ta,
                torchaudio_inferred: ta_inf,
            }
        })
        .collect()
}

/// The overview of the whole matrix.
pub fn overview(m: &Matrix) -> Overview {
    let mut releases: Vec<&TorchRelease> = m.torch.iter().collect();
    releases.sort_by(|a, b| a.version.cmp(&b.version));
    let mut toolkits: Vec<_> = m.cuda.iter().collect();
    toolkits.sort_by(|a, b| a.version.cmp(&b.version));
    let mut ids: Vec<String> = m.sources.iter().map(|s| s.id.clone()).collect();
    sort_ids(&mut ids);
    Overview {
        matrix: date(m),
        releases: releases
            .into_iter()
            .map(|t| ReleaseSummary {
                version: t.version.to_string(),
                patches: strings(&t.patches),
                cuda_variants: strings(&t.cuda_variants),
                pypi_default_cuda: t.pypi_default_cuda.to_string(),
                wheel_python: t.wheel_python.clone(),
                companions: companions(t),
                sources: t.sources.clone(),
            })
            .collect(),
        cuda: toolkits
            .into_iter()
            .map(|c| Toolkit {
                version: c.version.to_string(),
                minor: c.minor.to_string(),
                label: c.label.clone(),
                min_driver_linux: c.min_driver_linux.as_ref().map(Version::to_string),
                min_driver_windows: c.min_driver_windows.as_ref().map(Version::to_string),
                runfile_driver: c.runfile_driver.as_ref().map(Version::to_string),
                note: c.note.clone(),
                sources: if c.sources.is_empty() {
                    TOOLKIT_TABLE_SOURCES.map(String::from).to_vec()
                } else {
                    c.sources.clone()
                },
            })
            .collect(),
        sources: ids.iter().map(|id| source_ref(m, id)).collect(),
    }
}

/// One release in full; `requested` is the patch the request reads as.
pub fn release(m: &Matrix, t: &TorchRelease, requested: &Version) -> ReleaseDetail {
    let variants: Vec<VariantDetail> = t
        .variants()
        .into_iter()
        .map(|v| {
            let tag = cu_tag(&v.cuda);
            VariantDetail {
                cuda: v.cuda.to_string(),
                pypi_default: v.cuda == t.pypi_default_cuda,
                index_url: index_url(&v.cuda),
                cudnn: v.cudnn.clone(),
                cudnn_note: v.cudnn_note.clone(),
                arch_list: v.arch_list.to_string(),
                ptx: v.arch_list.entries.iter().any(|e| e.ptx),
                arch_uncertain: v.arch_uncertain,
                arch_list_aarch64: t.arch_list_aarch64.get(&tag).cloned(),
                driver_floor: m.toolkit_floor(&v.cuda).map(Version::to_string),
                mvc_floor: m
                    .mvc_floor(v.cuda.major())
                    .map(|f| f.min_driver.to_string()),
                tag,
            }
        })
        .collect();
    let in_release = |torch: &Version| t.has_patch(torch);
    let images: Vec<Image> = m
        .images
        .iter()
        .filter(|i| in_release(&i.torch))
        .map(|i| Image {
            image: format!("{}:{}", i.repo, i.tag),
            torch: i.torch.to_string(),
            cuda: i.cuda.to_string(),
            flavor: i.flavor.clone(),
            python: i.python.clone(),
            status: i.status,
            note: i.note.clone(),
        })
        .collect();
    let absent_images: Vec<AbsentImage> = m
        .image_absent
        .iter()
        .filter(|a| {
            t.patches
                .iter()
                .any(|p| a.tag.starts_with(&format!("{p}-")))
        })
        .map(|a| AbsentImage {
            tag: a.tag.clone(),
            reason: a.reason.clone(),
            sources: a.sources.clone(),
        })
        .collect();

    let mut notes = Vec::new();
    let mut note = |about: &str, text: Option<&String>| {
        if let Some(text) = text {
            notes.push(Note {
                about: about.to_string(),
                text: text.clone(),
            });
        }
    };
    note("variants", t.variants_note.as_ref());
    note("wheel_python", t.wheel_python_note.as_ref());
    note("image_python", Some(&t.image_python_note));
    note("arch", t.arch_note.as_ref());
    for c in &t.cuda_variants {
        note(&format!("cudnn {c}"), t.cudnn_note.get(c.as_str()));
    }
    note("torchvision", t.torchvision_note.as_ref());
    note("torchaudio", t.torchaudio_note.as_ref());
    for i in &images {
        note(&i.image, i.note.as_ref());
    }

    let mut uncertain = Vec::new();
    if t.image_python_uncertain {
        uncertain.push(format!(
            "Python {} inside the images is not observed",
            t.image_python
        ));
    }
    for v in &variants {
        if v.arch_uncertain {
            uncertain.push(format!("the {} arch list is not confirmed", v.tag));
        }
        if v.cudnn_note.is_some() {
            uncertain.push(format!(
                "cuDNN {} of {} is inferred or partly unknown",
                v.cudnn, v.tag
            ));
        }
        if v.driver_floor.is_none() {
            uncertain.push(format!("CUDA {} has no recorded driver floor", v.cuda));
        }
    }
    for c in &companions(t) {
        if c.torchvision_inferred {
            uncertain.push(format!(
                "torchvision {} for torch {} is inferred",
                c.torchvision, c.torch
            ));
        }
        if c.torchaudio_inferred {
            uncertain.push(format!(
                "torchaudio {} for torch {} is inferred",
                c.torchaudio, c.torch
            ));
        }
    }
    let weak = images
        .iter()
        .filter(|i| i.status == TagStatus::Uncertain)
        .count();
    if weak > 0 {
        uncertain.push(format!(
            "{weak} of {} image tags have weak or indirect evidence only (status uncertain)",
            images.len()
        ));
    }

    let mut ids: Vec<String> = t.sources.clone();
    for n in &notes {
        ids.extend(cited_ids(&n.text).into_iter().map(String::from));
    }
    for a in &absent_images {
        ids.extend(a.sources.iter().cloned());
    }
    sort_ids(&mut ids);

    ReleaseDetail {
        matrix: date(m),
        requested: requested.to_string(),
        version: t.version.to_string(),
        patches: strings(&t.patches),
        pypi_default_cuda: t.pypi_default_cuda.to_string(),
        index_flag: t.index_flag.clone(),
        wheel_python: t.wheel_python.clone(),
        image_python: t.image_python.clone(),
        image_python_uncertain: t.image_python_uncertain,
        arch_list_status: t.arch_list_status.clone(),
        variants,
        companions: companions(t),
        images,
        absent_images,
        notes,
        uncertain,
        sources: ids.iter().map(|id| source_ref(m, id)).collect(),
    }
}

/// Rows under an upper-case header, columns padded to their widest cell and three spaces
/// apart (as `docker image ls`); the last column is not padded.
fn table(header: &[&str], rows: &[Vec<String>]) -> String {
    let width = |i: usize| {
        rows.iter()
            .map(|r| r[i].chars().count())
            .chain([header[i].chars().count()])
            .max()
            .unwrap_or(0)
    };
    let widths: Vec<usize> = (0..header.len()).map(width).collect();
    let line = |cells: Vec<&str>| {
        let last = cells.len() - 1;
        let mut s = String::new();
        for (i, c) in cells.into_iter().enumerate() {
            if i == last {
                s.push_str(c);
            } else {
                s.push_str(c);
                s.push_str(&" ".repeat(widths[i] - c.chars().count() + 3));
            }
        }
        s.trim_end().to_string() + "\n"
    };
    let mut out = line(header.to_vec());
    for r in rows {
        out.push_str(&line(r.iter().map(String::as_str).collect()));
    }
    out
}

fn cite(ids: &[String]) -> String {
    ids.iter().map(|i| format!("[{i}]")).collect()
}

fn or_dash(v: &Option<String>) -> String {
    v.clone().unwrap_or_else(|| "-".into())
}

/// `3.10-3.14, 3.13t, 3.14t`: the range of regular Pythons, then the free-threaded ones.
fn python_range(pys: &[String]) -> String {
    let key = |p: &str| Version::parse(p).ok();
    let mut regular: Vec<&String> = pys.iter().filter(|p| key(p).is_some()).collect();
    regular.sort_by_key(|p| key(p));
    let mut parts = Vec::new();
    match (regular.first(), regular.last()) {
        (Some(a), Some(b)) if a != b => parts.push(format!("{a}-{b}")),
        (Some(a), _) => parts.push(a.to_string()),
        _ => {}
    }
    parts.extend(pys.iter().filter(|p| key(p).is_none()).cloned());
    parts.join(", ")
}

fn marked(v: &str, inferred: bool) -> String {
    if inferred {
        format!("{v}?")
    } else {
        v.to_string()
    }
}

/// `S1    title`, then the address on its own line under the title (titles and addresses are
/// too long for one row of columns).
fn sources_table(sources: &[SourceRef]) -> String {
    let width = sources.iter().map(|s| s.id.len()).max().unwrap_or(0) + 3;
    let mut out = String::new();
    for s in sources {
        out.push_str(&format!("{:<width$}{}\n", s.id, s.title));
        if let Some(url) = &s.url {
            out.push_str(&format!("{:<width$}{url}\n", ""));
        }
    }
    out
}

impl Overview {
    /// The human text: header, releases, toolkits, sources.
    pub fn render(&self) -> String {
        let d = &self.matrix;
        let mut s = format!(
            "matrix gathered {}; torch {} to {}\n",
            d.gathered, d.oldest, d.newest
        );

        s.push_str("\ntorch releases (* PyPI default CUDA, ? pairing inferred):\n");
        let rows: Vec<Vec<String>> = self
            .releases
            .iter()
            .map(|r| {
                let cuda = r
                    .cuda_variants
                    .iter()
                    .map(|c| {
                        let star = if *c == r.pypi_default_cuda { "*" } else { "" };
                        format!("{c}{star}")
                    })
                    .collect::<Vec<_>>()
                    .join(", ");
                let tv: Vec<String> = r
                    .companions
                    .iter()
                    .map(|c| marked(&c.torchvision, c.torchvision_inferred))
                    .collect();
                let ta: Vec<String> = r
                    .companions
                    .iter()
                    .map(|c| marked(&c.torchaudio, c.torchaudio_inferred))
                    .collect();
                vec![
                    r.version.clone(),
                    r.patches.join(", "),
                    cuda,
                    python_range(&r.wheel_python),
                    tv.join(", "),
                    ta.join(", "),
                    cite(&r.sources),
                ]
            })
            .collect();
        s.push_str(&table(
            &[
                "TORCH",
                "PATCHES",
                "CUDA",
                "PYTHON",
                "TORCHVISION",
                "TORCHAUDIO",
                "SOURCES",
            ],
            &rows,
        ));

        s.push_str("\nCUDA toolkits and their minimum drivers:\n");
        let rows: Vec<Vec<String>> = self
            .cuda
            .iter()
            .map(|c| {
                vec![
                    c.version.clone(),
                    c.label.clone(),
                    or_dash(&c.min_driver_linux),
                    or_dash(&c.min_driver_windows),
                    or_dash(&c.runfile_driver),
                    cite(&c.sources),
                ]
            })
            .collect();
        s.push_str(&table(
            &["CUDA", "LABEL", "LINUX", "WINDOWS", "RUNFILE", "SOURCES"],
            &rows,
        ));
        for c in self.cuda.iter().filter(|c| c.note.is_some()) {
            s.push_str(&format!("  {}: {}\n", c.version, or_dash(&c.note)));
        }

        s.push_str("\nsources:\n");
        s.push_str(&sources_table(&self.sources));
        s
    }
}

impl ReleaseDetail {
    /// The human text: the release's facts, variants, companions, tags, notes, marks, sources.
    pub fn render(&self) -> String {
        let d = &self.matrix;
        let mut s = format!(
            "torch {} (requested {}); matrix gathered {}, torch {} to {}\n\n",
            self.version, self.requested, d.gathered, d.oldest, d.newest
        );
        let mut field = |k: &str, v: String| s.push_str(&format!("{k:<14} {v}\n"));
        field("patches", self.patches.join(", "));
        field("pypi default", format!("CUDA {}", self.pypi_default_cuda));
        field("index flag", self.index_flag.clone());
        field("wheel python", self.wheel_python.join(", "));
        field(
            "image python",
            marked(&self.image_python, self.image_python_uncertain),
        );
        field("arch lists", self.arch_list_status.clone());

        s.push_str("\nvariants (* PyPI default, ? not confirmed):\n");
        let rows: Vec<Vec<String>> = self
            .variants
            .iter()
            .map(|v| {
                let star = if v.pypi_default { "*" } else { "" };
                vec![
                    format!("{}{star}", v.tag),
                    marked(&v.cudnn, v.cudnn_note.is_some()),
                    marked(&v.arch_list, v.arch_uncertain),
                    if v.ptx { "yes" } else { "no" }.into(),
                    v.driver_floor
                        .as_ref()
                        .map_or_else(|| "none recorded".into(), |f| format!(">= {f}")),
                    v.mvc_floor
                        .as_ref()
                        .map_or_else(|| "-".into(), |f| format!(">= {f}")),
                    or_dash(&v.arch_list_aarch64),
                ]
            })
            .collect();
        s.push_str(&table(
            &[
                "CUDA",
                "CUDNN",
                "ARCH LIST",
                "PTX",
                "DRIVER",
                "DRIVER (MVC)",
                "AARCH64 ARCH LIST",
            ],
            &rows,
        ));

        s.push_str("\ncompanions (? pairing inferred):\n");
        let rows: Vec<Vec<String>> = self
            .companions
            .iter()
            .map(|c| {
                vec![
                    c.torch.clone(),
                    marked(&c.torchvision, c.torchvision_inferred),
                    marked(&c.torchaudio, c.torchaudio_inferred),
                ]
            })
            .collect();
        s.push_str(&table(&["TORCH", "TORCHVISION", "TORCHAUDIO"], &rows));

        s.push_str("\nimages:\n");
        let rows: Vec<Vec<String>> = self
            .images
            .iter()
            .map(|i| {
                let status = match i.status {
                    TagStatus::Seen => "seen",
                    TagStatus::Expected => "expected",
                    TagStatus::Uncertain => "uncertain",
                };
                vec![i.image.clone(), i.python.clone(), status.into()]
            })
            .collect();
        s.push_str(&table(&["IMAGE", "PYTHON", "STATUS"], &rows));
        if !self.absent_images.is_empty() {
            s.push_str("\nknown absent:\n");
            for a in &self.absent_images {
                s.push_str(&format!("  {}: {} {}\n", a.tag, a.reason, cite(&a.sources)));
            }
        }

        if !self.notes.is_empty() {
            s.push_str("\nnotes:\n");
            for n in &self.notes {
                s.push_str(&format!("  {}: {}\n", n.about, n.text));
            }
        }
        if !self.uncertain.is_empty() {
            s.push_str("\nuncertain:\n");
            for u in &self.uncertain {
                s.push_str(&format!("  ? {u}\n"));
            }
        }
        s.push_str("\nsources:\n");
        s.push_str(&sources_table(&self.sources));
        s
    }
}

#[cfg(test)]
mod tests {
    use super::*;
    use crate::matrix::matrix;

    fn v(s: &str) -> Version {
        Version::parse(s).unwrap()
    }

    #[test]
    fn overview_lists_every_release_toolkit_and_source() {
        let m = matrix();
        let o = overview(m);
        assert_eq!(o.releases.len(), m.torch.len());
        assert_eq!(o.cuda.len(), m.cuda.len());
        assert_eq!(o.sources.len(), m.sources.len());
        assert_eq!(o.sources[1].id, "S2", "numeric id order");
        let text = o.render();
        assert!(text.starts_with(&format!(
            "matrix gathered {}; torch 1.13.0 to 2.15.0\n",
            m.gathered
        )));
        let line = text.lines().find(|l| l.starts_with("2.15 ")).unwrap();
        assert!(line.contains("13.0, 13.2*"), "{line}");
        assert!(line.contains("3.11-3.15, 3.14t, 3.15t"), "{line}");
        // Toolkit rows without sources cite the table's own.
        let row = text.lines().find(|l| l.starts_with("12.8.1 ")).unwrap();
        assert!(
            row.contains("570.124.06") && row.ends_with("[S1][S2]"),
            "{row}"
        );
        let row = text.lines().find(|l| l.starts_with("13.4.1 ")).unwrap();
        assert!(row.contains(" - "), "no floor recorded: {row}");
        // Inferred pairings keep their mark.
        let line = text.lines().find(|l| l.starts_with("2.7 ")).unwrap();
        assert!(line.contains("0.22.0, 0.22.1?"), "{line}");
    }

    #[test]
    fn columns_line_up() {
        let t = table(
            &["A", "BB", "C"],
            &[
                vec!["xxx".into(), "y".into(), "z".into()],
                vec!["x".into(), "yyyy".into(), String::new()],
            ],
        );
        assert_eq!(t, "A     BB     C\nxxx   y      z\nx     yyyy\n");
    }

    #[test]
    fn release_in_full() {
        let m = matrix();
        let t = m.release_of(&v("2.15.0")).unwrap();
        let d = release(m, t, &v("2.15.0"));
        assert_eq!(d.variants.len(), 2);
        let cu130 = &d.variants[0];
        assert_eq!(cu130.tag, "cu130");
        assert!(cu130.arch_uncertain && cu130.cudnn_note.is_some());
        assert_eq!(cu130.driver_floor.as_deref(), Some("580.65.06"));
        assert!(d.variants[1].pypi_default);
        assert!(d
            .images
            .iter()
            .all(|i| i.status == TagStatus::Uncertain && i.torch == "2.15.0"));
        assert!(d
            .absent_images
            .iter()
            .any(|a| a.tag == "2.15.0-cuda12.6-cudnn9-runtime"));
        assert!(d.uncertain.iter().any(|u| u.contains("cu130 arch list")));
        // Sources cited only inside notes are listed too (S19: the image_python note).
        assert!(d.sources.iter().any(|s| s.id == "S19"));
        let text = d.render();
        assert!(text.contains("cu132*"), "{text}");
        assert!(text.contains("pytorch/pytorch:2.15.0-cuda13.2-cudnn9-devel"));
    }
}
