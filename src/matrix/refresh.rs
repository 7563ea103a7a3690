//! `torchkit matrix refresh`, the pure half: compare what the public sources say now (PyPI's
//! JSON API, the PyTorch wheel indexes, the registry's tags of `pytorch/pytorch`, read by the
//! `registry` edge into a [`Gathered`]) with a matrix, and write the matrix's TOML text with
//! the new facts added.
//!
//! The comparison ([`compare`]) lists new torch releases and patches, CUDA variants the
//! indexes list that the matrix lacks (or the reverse), PyPI default CUDAs that moved, tags
//! found or missing, and the torchvision/torchaudio that declare the new releases. The new
//! releases join a copy of the matrix through [`Matrix::with_release_cited`], so facts the
//! sources do not give are assumed and marked uncertain by the same rules as `--online`;
//! they cite one new dated source ([`Refresh::source`]). [`edit_toml`] then edits the text:
//! every line it does not need to change stays as it was, comments and citations included.
//!
//! No IO and no clock: today's date comes in as data.

use std::collections::{BTreeMap, BTreeSet};

use serde::Serialize;

use super::facts::{self, PypiRelease, ReleaseFacts, TorchRequirement};
use super::{ImageTag, Matrix, Source, TagStatus, TorchRelease, Version};

/// How many CUDA minors above the newest variant the matrix knows the wheel indexes are
/// asked for (`cu133` … `cu136` after `cu132`).
pub const MINORS_AHEAD: u32 = 4;

/// Everything `torchkit matrix refresh` read, as data.
#[derive(Debug, Clone, Default)]
pub struct Gathered {
    /// The final torch releases on PyPI from the matrix's oldest on, with their upload day.
    pub pypi: Vec<(Version, String)>,
    /// `/pypi/torch/<v>/json` of each release the matrix lacks.
    pub releases: BTreeMap<String, PypiRelease>,
    /// Each wheel index asked (by CUDA `major.minor`): the torch versions it lists, None
    /// when it answered 404 (the variant does not exist).
    pub indexes: BTreeMap<String, Option<BTreeSet<Version>>>,
    /// The tags of `pytorch/pytorch`.
    pub tags: Vec<String>,
    /// The companion releases read.
    pub companions: Vec<Companion>,
    /// The URLs read, in order.
    pub looked_up: Vec<String>,
}

/// A torchvision or torchaudio release and what it requires of torch.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct Companion {
    /// `torchvision` or `torchaudio`.
    pub project: String,
    /// Its version.
    pub version: Version,
    /// Its torch requirement (None: it names none).
    pub requires: Option<TorchRequirement>,
}

/// The CUDA variants whose wheel index to read: every variant the matrix knows, and up to
/// [`MINORS_AHEAD`] minors above the newest one of the newest major.
pub fn index_candidates(m: &Matrix) -> Vec<Version> {
    let mut out: BTreeSet<Version> = m
        .torch
        .iter()
        .flat_map(|t| t.cuda_variants.iter().cloned())
        .collect();
    if let Some(newest) = out.iter().max().cloned() {
        for k in 1..=MINORS_AHEAD {
            if let Ok(v) = Version::parse(&format!("{}.{}", newest.major(), newest.minor() + k)) {
                out.insert(v);
            }
        }
    }
    out.into_iter().collect()
}

/// A torch patch the matrix lacks.
#[derive(Debug, Clone, PartialEq, Eq, Serialize)]
pub struct NewPatch {
    /// The patch (`2.16.0`).
    pub version: Version,
    /// It opens a new minor release.
    pub new_release: bool,
    /// Day of its first PyPI upload.
    pub uploaded: String,
    /// PyPI's Requires-Python.
    pub requires_python: Option<String>,
    /// The CUDA of the PyPI wheel.
    pub pypi_default_cuda: Option<Version>,
    /// The CUDA variants the wheel indexes list it in.
    pub variants: Vec<Version>,
    /// Its `pytorch/pytorch` CUDA tags.
    pub tags: Vec<String>,
    /// The newest torchvision that declares it (None: none read does).
    pub torchvision: Option<String>,
    /// The newest torchaudio that declares it.
    pub torchaudio: Option<String>,
    /// Why it cannot join the matrix yet (no image tag, a new CUDA major), if it cannot.
    pub not_added: Option<String>,
}

/// A known release whose CUDA variants differ from the wheel indexes'.
#[derive(Debug, Clone, PartialEq, Eq, Serialize)]
pub struct VariantChange {
    /// The release (`2.14`).
    pub release: Version,
    /// Listed by an index, not by the matrix.
    pub added: Vec<Version>,
    /// Listed by the matrix; the index lacks every patch of the release, or is gone.
    pub missing: Vec<Version>,
}

/// A PyPI default CUDA that moved.
#[derive(Debug, Clone, PartialEq, Eq, Serialize)]
pub struct DefaultChange {
    /// The patch whose PyPI JSON was read.
    pub patch: Version,
    /// What the matrix says for its release (the newest release's, for a new one).
    pub matrix: Version,
    /// What its Requires-Dist pins.
    pub pypi: Version,
}

/// The outcome of a refresh: the differences, and the matrix with the new facts.
#[derive(Debug, Clone, Serialize)]
pub struct Refresh {
    /// The matrix's `gathered`.
    pub matrix_gathered: String,
    /// Today: the sources were read on it.
    pub today: String,
    /// The source the new facts cite.
    #[serde(serialize_with = "source_json")]
    pub source: Source,
    /// New releases and patches, oldest first.
    pub new: Vec<NewPatch>,
    /// Known releases whose variants differ from the indexes.
    pub variants: Vec<VariantChange>,
    /// PyPI default CUDAs that moved.
    pub pypi_default_cuda: Vec<DefaultChange>,
    /// Tags of known patches the registry has and the matrix lacks.
    pub tags_found: Vec<String>,
    /// Tags the matrix marks seen or expected that the registry does not have (for patches
    /// the registry lists at all).
    pub tags_missing: Vec<String>,
    /// The found tags that join the matrix (those of a variant their release has).
    pub tags_added: Vec<String>,
    /// The matrix with the new patches and the found tags of known variants.
    #[serde(skip)]
    pub matrix: Matrix,
}

fn source_json<S: serde::Serializer>(s: &Source, ser: S) -> Result<S::Ok, S::Error> {
    use serde::ser::SerializeMap;
    let mut m = ser.serialize_map(Some(2))?;
    m.serialize_entry("id", &s.id)?;
    m.serialize_entry("title", &s.title)?;
    m.end()
}

impl Refresh {
    /// Nothing differs.
    pub fn up_to_date(&self) -> bool {
        self.new.is_empty()
            && self.variants.is_empty()
            && self.pypi_default_cuda.is_empty()
            && self.tags_found.is_empty()
            && self.tags_missing.is_empty()
    }

    /// Whether `--write` has something to write.
    pub fn changes_matrix(&self) -> bool {
        self.new.iter().any(|n| n.not_added.is_none()) || !self.tags_added.is_empty()
    }

    /// The differences as text, one section per kind.
    pub fn render(&self) -> String {
        let mut s = format!(
            "matrix gathered {}; sources read {}\n",
            self.matrix_gathered, self.today
        );
        if self.up_to_date() {
            s.push_str("up to date\n");
            return s;
        }
        let list = |v: &[Version]| {
            if v.is_empty() {
                "none".to_string()
            } else {
                v.iter()
                    .map(Version::to_string)
                    .collect::<Vec<_>>()
                    .join(", ")
            }
        };
        if !self.new.is_empty() {
            s.push_str("\nnew torch releases and patches:\n");
            for n in &self.new {
                s.push_str(&format!(
                    "  {}  uploaded {}{}\n",
                    n.version,
                    n.uploaded,
                    if n.new_release {
                        "  (new release)"
                    } else {
                        "  (new patch)"
                    }
                ));
                s.push_str(&format!(
                    "    Requires-Python {}; PyPI default CUDA {}\n",
                    n.requires_python.as_deref().unwrap_or("not given"),
                    n.pypi_default_cuda
                        .as_ref()
                        .map_or("none (CPU wheel)".to_string(), Version::to_string)
                ));
                s.push_str(&format!(
                    "    CUDA variants (wheel indexes): {}\n",
                    list(&n.variants)
                ));
                if n.tags.is_empty() {
                    s.push_str("    tags: none yet\n");
                } else {
                    s.push_str(&format!("    tags: {}\n", n.tags.join(", ")));
                }
                let pair = |p: &Option<String>| {
                    p.clone()
                        .unwrap_or_else(|| "none declares it (assumed, uncertain)".into())
                };
                s.push_str(&format!(
                    "    torchvision {}; torchaudio {}\n",
                    pair(&n.torchvision),
                    pair(&n.torchaudio)
                ));
                if let Some(why) = &n.not_added {
                    s.push_str(&format!("    not added: {why}\n"));
                }
            }
        }
        if !self.variants.is_empty() {
            s.push_str("\nCUDA variants, wheel indexes against the matrix:\n");
            for v in &self.variants {
                let mut parts = Vec::new();
                if !v.added.is_empty() {
                    parts.push(format!("added {}", list(&v.added)));
                }
                if !v.missing.is_empty() {
                    parts.push(format!("missing {}", list(&v.missing)));
                }
                s.push_str(&format!("  {}: {}\n", v.release, parts.join("; ")));
            }
        }
        if !self.pypi_default_cuda.is_empty() {
            s.push_str("\nPyPI default CUDA changed:\n");
            for d in &self.pypi_default_cuda {
                s.push_str(&format!(
                    "  {}: matrix {}, PyPI {}\n",
                    d.patch, d.matrix, d.pypi
                ));
            }
        }
        if !self.tags_found.is_empty() {
            s.push_str("\npytorch/pytorch tags the matrix lacks:\n");
            for t in &self.tags_found {
                s.push_str(&format!("  {t}\n"));
            }
        }
        if !self.tags_missing.is_empty() {
            s.push_str("\nmatrix tags (seen or expected) the registry does not have:\n");
            for t in &self.tags_missing {
                s.push_str(&format!("  {t}\n"));
            }
        }
        s
    }
}

/// The next free `S<n>` id.
fn next_source_id(m: &Matrix) -> String {
    let n = m
        .sources
        .iter()
        .filter_map(|s| s.id.strip_prefix('S')?.parse::<u32>().ok())
        .max()
        .unwrap_or(0);
    format!("S{}", n + 1)
}

/// The newest release among `companions` of `project` that declares torch `v`.
pub fn companion_for(companions: &[Companion], project: &str, v: &Version) -> Option<String> {
    companions
        .iter()
        .filter(|c| c.project == project)
        .filter(|c| c.requires.as_ref().is_some_and(|r| r.admits(v)))
        .max_by(|a, b| a.version.cmp(&b.version))
        .map(|c| c.version.to_string())
}

/// Compare what was gathered with `m`, and add the new patches (and the found tags of
/// variants a release already has) to a copy of it. `today` is `YYYY-MM-DD`.
pub fn compare(m: &Matrix, g: &Gathered, today: &str) -> Result<Refresh, String> {
    let source = Source {
        id: next_source_id(m),
        title: format!(
            "torchkit matrix refresh {today}: PyPI JSON API, wheel indexes, registry tags"
        ),
        url: None,
    };
    let known: BTreeSet<&Version> = m.all_patches().into_iter().collect();
    let oldest = m.oldest_patch();
    let newest_release = m
        .torch
        .iter()
        .max_by(|a, b| a.version.cmp(&b.version))
        .ok_or("the matrix has no torch release")?;
    let in_index = |cuda: &Version, v: &Version| {
        g.indexes
            .get(cuda.as_str())
            .and_then(|o| o.as_ref())
            .is_some_and(|set| set.contains(v))
    };

    // New patches, oldest first, each joining the refreshed matrix in turn.
    let mut refreshed = m.clone();
    let mut new = Vec::new();
    let mut defaults = Vec::new();
    for (v, uploaded) in g.pypi.iter().filter(|(v, _)| v >= oldest) {
        if known.contains(v) {
            continue;
        }
        let rel = g.releases.get(v.as_str());
        let default = rel.and_then(|r| facts::pypi_default_cuda(&r.requires_dist));
        let variants: Vec<Version> = g
            .indexes
            .keys()
            .filter_map(|c| Version::parse(c).ok())
            .filter(|c| in_index(c, v))
            .collect();
        let tags = facts::image_tags(v, &g.tags);
        let torchvision = companion_for(&g.companions, "torchvision", v);
        let torchaudio = companion_for(&g.companions, "torchaudio", v);
        let release_known = m.release_of(v);
        if let Some(d) = &default {
            let was = release_known
                .map(|r| &r.pypi_default_cuda)
                .unwrap_or(&newest_release.pypi_default_cuda);
            if was != d {
                defaults.push(DefaultChange {
                    patch: v.clone(),
                    matrix: was.clone(),
                    pypi: d.clone(),
                });
            }
        }
        let f = ReleaseFacts {
            torch: v.clone(),
            looked_up: g.looked_up.clone(),
            uploaded: Some(uploaded.clone()),
            requires_python: rel.and_then(|r| r.requires_python.clone()),
            pypi_default_cuda: default.clone(),
            tags: tags.clone(),
            variants: variants.clone(),
            torchvision: torchvision.clone(),
            torchaudio: torchaudio.clone(),
        };
        let not_added = match refreshed.with_release_cited(&f, &source) {
            Ok(mut x) => {
                // The image's Python is assumed: say so in the row, as the file's rows do.
                for i in x.images.iter_mut().filter(|i| &i.torch == v) {
                    if !i.python.contains('(') {
                        i.python = format!("{} (assumed; not observed)", i.python);
                    }
                }
                refreshed = x;
                None
            }
            Err(e) => Some(e.message),
        };
        new.push(NewPatch {
            version: v.clone(),
            new_release: release_known.is_none()
                && !new
                    .iter()
                    .any(|n: &NewPatch| n.version.major_minor() == v.major_minor()),
            uploaded: uploaded.clone(),
            requires_python: f.requires_python,
            pypi_default_cuda: default,
            variants,
            tags: tags.into_iter().map(|t| t.tag).collect(),
            torchvision,
            torchaudio,
            not_added,
        });
    }

    // Known releases: variants against the indexes.
    let mut variants = Vec::new();
    for r in &m.torch {
        let listed: BTreeSet<Version> = g
            .indexes
            .iter()
            .filter_map(|(c, set)| {
                let set = set.as_ref()?;
                r.patches
                    .iter()
                    .any(|p| set.contains(p))
                    .then(|| Version::parse(c).ok())?
            })
            .collect();
        let added: Vec<Version> = listed
            .iter()
            .filter(|c| !r.cuda_variants.contains(c))
            .cloned()
            .collect();
        let missing: Vec<Version> = r
            .cuda_variants
            .iter()
            .filter(|c| g.indexes.contains_key(c.as_str()) && !listed.contains(c))
            .cloned()
            .collect();
        if !added.is_empty() || !missing.is_empty() {
            variants.push(VariantChange {
                release: r.version.clone(),
                added,
                missing,
            });
        }
    }

    // Tags of known patches.
    let mut tags_found = Vec::new();
    let mut tags_missing = Vec::new();
    let mut tags_added = Vec::new();
    for p in &known {
        let found = facts::image_tags(p, &g.tags);
        for t in &found {
            if m.image(&t.tag).is_some() {
                continue;
            }
            tags_found.push(t.tag.clone());
            // A tag of a variant the release has joins the matrix; others are only named.
            let Some(r) = refreshed.release_of(p) else {
                continue;
            };
            let fits = r
                .variant(&t.cuda)
                .is_some_and(|var| var.cudnn_major == t.cudnn);
            if fits && m.absent(&t.tag).is_none() {
                tags_added.push(t.tag.clone());
                let python = refreshed
                    .images
                    .iter()
                    .find(|i| &i.torch == *p && i.cuda == t.cuda)
                    .map_or_else(|| r.image_python.clone(), |i| i.python.clone());
                refreshed.images.push(ImageTag {
                    repo: "pytorch/pytorch".into(),
                    tag: t.tag.clone(),
                    torch: (*p).clone(),
                    cuda: t.cuda.clone(),
                    cudnn: t.cudnn.clone(),
                    flavor: t.flavor.clone(),
                    python,
                    status: TagStatus::Seen,
                    note: Some(format!("found in the registry's tag list [{}]", source.id)),
                });
            }
        }
        if found.is_empty() {
            continue;
        }
        for i in m.images.iter().filter(|i| &i.torch == *p) {
            if i.status != TagStatus::Uncertain && !found.iter().any(|t| t.tag == i.tag) {
                tags_missing.push(i.tag.clone());
            }
        }
    }
    if refreshed.source(&source.id).is_none() && refreshed.images.len() > m.images.len() {
        refreshed.sources.push(source.clone());
    }
    refreshed.gathered = today.to_string();
    let problems = refreshed.problems();
    if !problems.is_empty() {
        return Err(format!(
            "the refreshed matrix does not hang together: {}",
            problems.join("; ")
        ));
    }
    Ok(Refresh {
        matrix_gathered: m.gathered.clone(),
        today: today.to_string(),
        source,
        new,
        variants,
        pypi_default_cuda: defaults,
        tags_found,
        tags_missing,
        tags_added,
        matrix: refreshed,
    })
}

// ---------------------------------------------------------------------------------------
// The TOML text

/// A TOML basic string.
fn q(s: &str) -> String {
    serde_json::to_string(s).expect("a string serializes")
}

fn arr<T: AsRef<str>>(items: &[T]) -> String {
    let v: Vec<String> = items.iter().map(|s| q(s.as_ref())).collect();
    format!("[{}]", v.join(", "))
}

fn key(k: &str) -> String {
    if !k.is_empty()
        && k.bytes()
            .all(|b| b.is_ascii_alphanumeric() || b == b'_' || b == b'-')
    {
        k.to_string()
    } else {
        q(k)
    }
}

/// The top-level keys of a `[[torch]]` entry, rendered, in the file's order (None: absent).
fn torch_keys(t: &TorchRelease) -> Vec<(&'static str, Option<String>)> {
    let opt = |o: &Option<String>| o.as_deref().map(q);
    let vs = |v: &[Version]| arr(&v.iter().map(Version::as_str).collect::<Vec<_>>());
    vec![
        ("version", Some(q(t.version.as_str()))),
        ("sources", Some(arr(&t.sources))),
        ("patches", Some(vs(&t.patches))),
        ("cuda_variants", Some(vs(&t.cuda_variants))),
        ("pypi_default_cuda", Some(q(t.pypi_default_cuda.as_str()))),
        ("wheel_python", Some(arr(&t.wheel_python))),
        ("wheel_python_note", opt(&t.wheel_python_note)),
        ("image_python", Some(q(&t.image_python))),
        (
            "image_python_uncertain",
            Some(t.image_python_uncertain.to_string()),
        ),
        ("image_python_note", Some(q(&t.image_python_note))),
        ("index_flag", Some(q(&t.index_flag))),
        ("variants_note", opt(&t.variants_note)),
        ("arch_list_status", Some(q(&t.arch_list_status))),
        ("arch_uncertain", Some(arr(&t.arch_uncertain))),
        ("arch_note", opt(&t.arch_note)),
        ("torchvision_uncertain", Some(arr(&t.torchvision_uncertain))),
        ("torchaudio_uncertain", Some(arr(&t.torchaudio_uncertain))),
        ("torchvision_note", opt(&t.torchvision_note)),
        ("torchaudio_note", opt(&t.torchaudio_note)),
    ]
}

/// The subtables of a `[[torch]]` entry, in the file's order.
fn torch_maps(t: &TorchRelease) -> Vec<(&'static str, &BTreeMap<String, String>)> {
    vec![
        ("torchvision", &t.torchvision),
        ("torchaudio", &t.torchaudio),
        ("cudnn", &t.cudnn),
        ("cudnn_note", &t.cudnn_note),
        ("arch_list", &t.arch_list),
        ("arch_list_aarch64", &t.arch_list_aarch64),
    ]
}

/// A whole `[[torch]]` entry.
fn torch_block(t: &TorchRelease) -> String {
    let mut s = String::from("[[torch]]\n");
    for (k, v) in torch_keys(t) {
        if let Some(v) = v {
            s.push_str(&format!("{k} = {v}\n"));
        }
    }
    for (name, map) in torch_maps(t) {
        if map.is_empty() {
            continue;
        }
        s.push_str(&format!("[torch.{name}]\n"));
        for (k, v) in map {
            s.push_str(&format!("{} = {}\n", key(k), q(v)));
        }
    }
    s
}

fn image_line(i: &ImageTag) -> String {
    let status = match i.status {
        TagStatus::Seen => "seen",
        TagStatus::Expected => "expected",
        TagStatus::Uncertain => "uncertain",
    };
    let mut s = format!(
        "  {{ repo = {}, tag = {}, torch = {}, cuda = {}, cudnn = {}, flavor = {}, python = {}, status = {}",
        q(&i.repo),
        q(&i.tag),
        q(i.torch.as_str()),
        q(i.cuda.as_str()),
        q(&i.cudnn),
        q(&i.flavor),
        q(&i.python),
        q(status)
    );
    if let Some(n) = &i.note {
        s.push_str(&format!(", note = {}", q(n)));
    }
    s.push_str(" },");
    s
}

fn source_line(s: &Source) -> String {
    let mut l = format!("  {{ id = {}, title = {}", q(&s.id), q(&s.title));
    if let Some(u) = &s.url {
        l.push_str(&format!(", url = {}", q(u)));
    }
    l.push_str(" },");
    l
}

fn toolkit_line(c: &super::CudaToolkit) -> String {
    let mut l = format!(
        "  {{ version = {}, minor = {}, label = {}",
        q(c.version.as_str()),
        q(c.minor.as_str()),
        q(&c.label)
    );
    for (k, v) in [
        ("min_driver_linux", &c.min_driver_linux),
        ("min_driver_windows", &c.min_driver_windows),
        ("runfile_driver", &c.runfile_driver),
    ] {
        if let Some(v) = v {
            l.push_str(&format!(", {k} = {}", q(v.as_str())));
        }
    }
    if let Some(n) = &c.note {
        l.push_str(&format!(", note = {}", q(n)));
    }
    if !c.sources.is_empty() {
        l.push_str(&format!(", sources = {}", arr(&c.sources)));
    }
    l.push_str(" },");
    l
}

/// The line index of the `]` closing the top-level array `name = [`.
fn array_end(lines: &[String], name: &str) -> Result<(usize, usize), String> {
    let open = lines
        .iter()
        .position(|l| {
            l.strip_prefix(name)
                .is_some_and(|r| r.trim_start().starts_with('=') && r.trim_end().ends_with('['))
        })
        .ok_or_else(|| format!("no `{name} = [` line"))?;
    let close = lines[open..]
        .iter()
        .position(|l| l.trim_end() == "]")
        .map(|i| open + i)
        .ok_or_else(|| format!("the `{name}` array is not closed by a `]` line"))?;
    Ok((open, close))
}

/// The `[[torch]]` entry of release `version`: its first line and one past its last.
fn torch_span(lines: &[String], version: &Version) -> Option<(usize, usize)> {
    let starts: Vec<usize> = lines
        .iter()
        .enumerate()
        .filter(|(_, l)| l.trim() == "[[torch]]")
        .map(|(i, _)| i)
        .collect();
    let want = format!("version = {}", q(version.as_str()));
    for (n, &s) in starts.iter().enumerate() {
        let end = starts.get(n + 1).copied().unwrap_or(lines.len());
        if lines[s..end].iter().any(|l| l.trim() == want) {
            return Some((s, end));
        }
    }
    None
}

fn key_of(line: &str) -> Option<String> {
    let (k, _) = line.split_once('=')?;
    let k = k.trim();
    Some(k.trim_matches('"').to_string())
}

/// Edit one known `[[torch]]` entry (lines `s..e`) from `old` to `new`; returns the new lines.
fn edit_torch(block: &[String], old: &TorchRelease, new: &TorchRelease) -> Vec<String> {
    let mut out: Vec<String> = block.to_vec();
    let first_sub = |out: &[String]| {
        out.iter()
            .position(|l| l.trim_start().starts_with("[torch."))
            .unwrap_or(out.len())
    };
    for ((k, was), (_, now)) in torch_keys(old).into_iter().zip(torch_keys(new)) {
        if was == now {
            continue;
        }
        let top = first_sub(&out);
        let at = out[..top]
            .iter()
            .position(|l| key_of(l).as_deref() == Some(k) && !l.trim_start().starts_with('#'));
        match (at, now) {
            (Some(i), Some(v)) => out[i] = format!("{k} = {v}"),
            (Some(i), None) => {
                out.remove(i);
            }
            (None, Some(v)) => {
                let mut i = top;
                while i > 1 && out[i - 1].trim().is_empty() {
                    i -= 1;
                }
                out.insert(i, format!("{k} = {v}"));
            }
            (None, None) => {}
        }
    }
    for ((name, was), (_, now)) in torch_maps(old).into_iter().zip(torch_maps(new)) {
        if was == now {
            continue;
        }
        let header = format!("[torch.{name}]");
        let h = out.iter().position(|l| l.trim() == header);
        let h = match h {
            Some(h) => h,
            None => {
                let mut i = out.len();
                while i > 1 && out[i - 1].trim().is_empty() {
                    i -= 1;
                }
                out.insert(i, header);
                i
            }
        };
        for (k, v) in now {
            if was.get(k) == Some(v) {
                continue;
            }
            let mut end = out[h + 1..]
                .iter()
                .position(|l| l.trim_start().starts_with('['))
                .map_or(out.len(), |i| h + 1 + i);
            let line = format!("{} = {}", key(k), q(v));
            if let Some(i) = out[h + 1..end]
                .iter()
                .position(|l| key_of(l).as_deref() == Some(k.as_str()))
            {
                out[h + 1 + i] = line;
                continue;
            }
            while end > h + 1 && out[end - 1].trim().is_empty() {
                end -= 1;
            }
            out.insert(end, line);
        }
    }
    out
}

/// `text` (the TOML of `old`) edited to say what `r.matrix` says: new sources, toolkits,
/// image rows and `[[torch]]` entries are added, changed keys of known entries rewritten in
/// place, `gathered` set to today. Every other line is kept as it was. The result parses to
/// a matrix without problems, or this fails.
pub fn edit_toml(text: &str, old: &Matrix, r: &Refresh) -> Result<String, String> {
    let new = &r.matrix;
    let mut lines: Vec<String> = text.lines().map(str::to_string).collect();

    // `[[torch]]` entries first: they sit after the arrays, so the arrays' lines stay put.
    let mut appended = Vec::new();
    for t in &new.torch {
        match old.torch.iter().find(|o| o.version == t.version) {
            None => appended.push(torch_block(t)),
            Some(o) => {
                let (s, e) = torch_span(&lines, &o.version)
                    .ok_or_else(|| format!("no `[[torch]]` entry with version {}", o.version))?;
                let edited = edit_torch(&lines[s..e], o, t);
                lines.splice(s..e, edited);
            }
        }
    }
    for block in appended {
        if lines.last().is_some_and(|l| !l.trim().is_empty()) {
            lines.push(String::new());
        }
        lines.extend(block.lines().map(str::to_string));
    }

    let images: Vec<&ImageTag> = new
        .images
        .iter()
        .filter(|i| old.image(&i.tag).is_none())
        .collect();
    if !images.is_empty() {
        let (_, close) = array_end(&lines, "image")?;
        let mut add = vec![format!(
            "  # torchkit matrix refresh {}: tags read from the registry's tag list [{}].",
            r.today, r.source.id
        )];
        add.extend(images.iter().map(|i| image_line(i)));
        lines.splice(close..close, add);
    }
    let toolkits: Vec<String> = new
        .cuda
        .iter()
        .filter(|c| !old.cuda.iter().any(|o| o.version == c.version))
        .map(toolkit_line)
        .collect();
    if !toolkits.is_empty() {
        let (open, _) = array_end(&lines, "cuda")?;
        lines.splice(open + 1..open + 1, toolkits);
    }
    let sources: Vec<String> = new
        .sources
        .iter()
        .filter(|s| old.source(&s.id).is_none())
        .map(source_line)
        .collect();
    if !sources.is_empty() {
        let (_, close) = array_end(&lines, "sources")?;
        lines.splice(close..close, sources);
    }
    let g = lines
        .iter()
        .position(|l| {
            l.strip_prefix("gathered")
                .is_some_and(|r| r.trim_start().starts_with('='))
        })
        .ok_or("no top-level `gathered = ` line")?;
    lines[g] = format!("gathered = {}", q(&new.gathered));

    let mut out = lines.join("\n");
    if text.ends_with('\n') {
        out.push('\n');
    }
    let parsed = Matrix::from_toml(&out)
        .map_err(|e| format!("the edited matrix does not parse or validate: {e}"))?;
    let patches =
        |m: &Matrix| -> Vec<String> { m.all_patches().iter().map(|v| v.to_string()).collect() };
    if patches(&parsed) != patches(new)
        || parsed.images.len() != new.images.len()
        || parsed.sources.len() != new.sources.len()
        || parsed.cuda.len() != new.cuda.len()
    {
        return Err("the edited matrix text does not say what the refreshed matrix says".into());
    }
    Ok(out)
}

#[cfg(test)]
mod tests {
    use super::*;

    fn v(s: &str) -> Version {
        Version::parse(s).unwrap()
    }

    fn strings(s: &[&str]) -> Vec<String> {
        s.iter().map(|x| x.to_string()).collect()
    }

    /// What the sources say when nothing changed since the matrix was gathered.
    fn unchanged(m: &Matrix) -> Gathered {
        let mut indexes: BTreeMap<String, Option<BTreeSet<Version>>> = BTreeMap::new();
        for c in index_candidates(m) {
            let set: BTreeSet<Version> = m
                .torch
                .iter()
                .filter(|t| t.cuda_variants.contains(&c))
                .flat_map(|t| t.patches.iter().cloned())
                .collect();
            indexes.insert(c.to_string(), (!set.is_empty()).then_some(set));
        }
        Gathered {
            pypi: m
                .all_patches()
                .into_iter()
                .map(|p| (p.clone(), "2020-01-01".to_string()))
                .collect(),
            indexes,
            tags: m
                .images
                .iter()
                .filter(|i| i.status != TagStatus::Uncertain)
                .map(|i| i.tag.clone())
                .collect(),
            ..Gathered::default()
        }
    }

    fn with_216(m: &Matrix) -> Gathered {
        let mut g = unchanged(m);
        g.pypi.push((v("2.16.0"), "2027-01-20".into()));
        g.releases.insert(
            "2.16.0".into(),
            PypiRelease {
                version: "2.16.0".into(),
                requires_dist: strings(&[
                    "cuda-toolkit[cudart]==13.2.2; platform_system == \"Linux\"",
                ]),
                requires_python: Some(">=3.11".into()),
                uploaded: Some("2027-01-20".into()),
                yanked: false,
            },
        );
        for c in ["13.0", "13.2"] {
            g.indexes
                .get_mut(c)
                .unwrap()
                .as_mut()
                .unwrap()
                .insert(v("2.16.0"));
        }
        for t in [
            "2.16.0-cuda13.0-cudnn9-runtime",
            "2.16.0-cuda13.2-cudnn9-runtime",
            "2.16.0-cuda13.2-cudnn9-devel",
        ] {
            g.tags.push(t.into());
        }
        g.companions.push(Companion {
            project: "torchvision".into(),
            version: v("0.30.0"),
            requires: Some(TorchRequirement::Exactly(v("2.16.0"))),
        });
        g.companions.push(Companion {
            project: "torchaudio".into(),
            version: v("2.11.1"),
            requires: Some(TorchRequirement::AtLeast(v("2.11"))),
        });
        g
    }

    #[test]
    fn nothing_new_is_up_to_date() {
        let m = crate::matrix::matrix();
        let r = compare(m, &unchanged(m), "2027-01-21").unwrap();
        assert!(r.up_to_date(), "{}", r.render());
        assert!(!r.changes_matrix());
        assert_eq!(
            r.render(),
            "matrix gathered 2026-12-03; sources read 2027-01-21\nup to date\n"
        );
        assert_eq!(r.source.id, "S40");
    }

    #[test]
    fn candidates_reach_past_the_newest_variant() {
        let c = index_candidates(crate::matrix::matrix());
        assert!(c.contains(&v("11.6")) && c.contains(&v("13.2")));
        assert!(c.contains(&v("13.6")) && !c.contains(&v("13.7")), "{c:?}");
    }

    #[test]
    fn a_new_release_is_listed_and_joins_the_matrix() {
        let m = crate::matrix::matrix();
        let r = compare(m, &with_216(m), "2027-01-21").unwrap();
        assert_eq!(r.new.len(), 1);
        let n = &r.new[0];
        assert!(n.new_release && n.not_added.is_none(), "{n:?}");
        assert_eq!(n.variants, [v("13.0"), v("13.2")]);
        assert_eq!(n.pypi_default_cuda, Some(v("13.2")));
        assert_eq!(n.torchvision.as_deref(), Some("0.30.0"));
        assert_eq!(n.torchaudio.as_deref(), Some("2.11.1"));
        assert!(
            r.variants.is_empty() && r.tags_missing.is_empty(),
            "{}",
            r.render()
        );
        let t = r.matrix.release_of(&v("2.16.0")).unwrap();
        assert_eq!(t.sources, ["S40"]);
        assert!(t.image_python_uncertain);
        assert_eq!(r.matrix.gathered, "2027-01-21");
        let text = r.render();
        assert!(
            text.contains("  2.16.0  uploaded 2027-01-20  (new release)"),
            "{text}"
        );
        assert!(
            text.contains("CUDA variants (wheel indexes): 13.0, 13.2"),
            "{text}"
        );
    }

    #[test]
    fn differences_in_known_releases_are_named() {
        let m = crate::matrix::matrix();
        let mut g = unchanged(m);
        // cu126 lost 2.14.x; cu128 gained 2.14.1; a 2.14.1 tag the matrix lacks; a seen tag gone.
        let cu126 = g.indexes.get_mut("12.6").unwrap().as_mut().unwrap();
        cu126.remove(&v("2.14.0"));
        cu126.remove(&v("2.14.1"));
        g.indexes
            .get_mut("12.8")
            .unwrap()
            .as_mut()
            .unwrap()
            .insert(v("2.14.1"));
        g.tags.push("2.14.1-cuda13.2-cudnn9-nightly".into());
        g.tags.push("2.14.1-cuda12.8-cudnn9-runtime".into());
        g.tags.retain(|t| t != "2.14.1-cuda12.6-cudnn9-runtime");
        // 2.15.1 pins CUDA 13.4 on PyPI and has no image yet.
        g.pypi.push((v("2.15.1"), "2027-01-02".into()));
        g.releases.insert(
            "2.15.1".into(),
            PypiRelease {
                requires_dist: strings(&["cuda-toolkit[cudart]==13.4.1"]),
                ..PypiRelease::default()
            },
        );
        let r = compare(m, &g, "2027-01-21").unwrap();
        assert_eq!(
            r.variants,
            [VariantChange {
                release: v("2.14"),
                added: vec![v("12.8")],
                missing: vec![v("12.6")]
            }]
        );
        assert_eq!(r.tags_found, ["2.14.1-cuda12.8-cudnn9-runtime"]);
        assert_eq!(r.tags_missing, ["2.14.1-cuda12.6-cudnn9-runtime"]);
        assert_eq!(r.pypi_default_cuda[0].pypi, v("13.4"));
        let n = &r.new[0];
        assert!(!n.new_release);
        assert!(n
            .not_added
            .as_deref()
            .unwrap()
            .contains("no pytorch/pytorch CUDA tag"));
        // cu128 is not a 2.14 variant: the tag is named, not added.
        assert!(!r.changes_matrix());
        assert_eq!(r.matrix.images.len(), m.images.len());
    }

    #[test]
    fn the_text_keeps_every_line_and_adds_the_new_facts() {
        let m = crate::matrix::matrix();
        let mut g = with_216(m);
        // And a new patch of a known release.
        g.pypi.push((v("2.15.1"), "2027-01-05".into()));
        g.releases.insert(
            "2.15.1".into(),
            PypiRelease {
                requires_dist: strings(&["cuda-toolkit[cudart]==13.2.2"]),
                ..PypiRelease::default()
            },
        );
        g.pypi.sort();
        g.tags.push("2.15.1-cuda13.2-cudnn9-runtime".into());
        g.indexes
            .get_mut("13.2")
            .unwrap()
            .as_mut()
            .unwrap()
            .insert(v("2.15.1"));
        let r = compare(m, &g, "2027-01-21").unwrap();
        assert!(r.changes_matrix());
        let text = include_str!("matrix.toml");
        let out = edit_toml(text, m, &r).unwrap();
        let x = Matrix::from_toml(&out).unwrap();
        assert_eq!(x.gathered, "2027-01-21");
        assert_eq!(x.source("S40").unwrap().title, r.source.title);
        let t = x.release_of(&v("2.15.1")).unwrap();
        assert_eq!(t.patches, [v("2.15.0"), v("2.15.1")]);
        assert_eq!(t.torchvision["2.15.1"], "0.29.2");
        assert!(t.sources.contains(&"S40".to_string()));
        assert!(x.image("2.16.0-cuda13.0-cudnn9-runtime").is_some());
        assert!(x
            .release_of(&v("2.16.0"))
            .unwrap()
            .arch_uncertain
            .contains(&"cu130".into()));
        // Every old line is still there, in order, apart from the few rewritten ones; the
        // new lines are inserted between them, the new release appended.
        let (kept, appended) = out.split_once("\n[[torch]]\nversion = \"2.16\"\n").unwrap();
        assert!(appended.contains("sources = [\"S40\"]"), "{appended}");
        let new_lines: Vec<&str> = kept.lines().collect();
        let mut at = 0;
        let mut rewritten = Vec::new();
        for l in text.lines() {
            while at < new_lines.len() && new_lines[at] != l {
                let same_key =
                    key_of(new_lines[at]).is_some() && key_of(new_lines[at]) == key_of(l);
                if same_key && !l.starts_with('"') && !l.starts_with("cu") {
                    rewritten.push(l);
                    break;
                }
                at += 1;
            }
            assert!(at < new_lines.len(), "line {l:?} is gone");
            at += 1;
        }
        assert_eq!(
            rewritten,
            [
                "gathered = \"2026-12-03\"",
                "sources = [\"S27\", \"S28\", \"S29\", \"S30\", \"S32\", \"S33\", \"S36\", \"S37\"]",
                "patches = [\"2.15.0\"]",
                "torchvision_uncertain = []",
            ]
        );
        assert!(out.contains("\n# Conventions:\n"));
        // Nothing new: the same text back, but for the date.
        let r = compare(m, &unchanged(m), "2027-01-21").unwrap();
        let same = edit_toml(text, m, &r).unwrap();
        assert_eq!(
            same,
            text.replace("gathered = \"2026-12-03\"", "gathered = \"2027-01-21\"")
        );
    }
}
