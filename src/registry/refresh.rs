//! `torchkit matrix refresh`, the IO half: read what the public sources say about every torch
//! release from the matrix's oldest on, over HTTP or from a directory of recorded answers,
//! into a [`Gathered`] that [`crate::matrix::refresh::compare`] compares.
//!
//! What is read: `{pypi}/pypi/torch/json` (the final releases and their upload days);
//! `{pypi}/pypi/torch/<v>/json` for each release the matrix lacks; the wheel index
//! `{index}/cuXYZ/torch/` of every CUDA variant the matrix knows and of the next minors (404:
//! the variant does not exist); the tags of `pytorch/pytorch`; and, when there are new
//! releases, the newest few torchvision and torchaudio releases' Requires-Dist.
//!
//! With `--offline-from DIR` a URL's path (scheme and host stripped) names a file under DIR,
//! as `tests/support/http.rs` serves them: `/pypi/torch/json` → `DIR/pypi/torch/json`,
//! `/whl/cu132/torch/` → `DIR/whl/cu132/torch/index.html`, a registry's
//! `/v2/pytorch/pytorch/tags/list` → that file. A missing file is a 404.

use std::collections::BTreeSet;
use std::path::{Path, PathBuf};

use crate::error::Hint;
use crate::matrix::facts::{self, FactsError};
use crate::matrix::refresh::{self, Companion, Gathered};
use crate::matrix::{Matrix, Version};

use super::{Reference, RegistryClient, RegistryError};

/// The PyTorch wheel indexes.
pub const DEFAULT_INDEX: &str = "https://download.pytorch.org/whl";

/// The `pytorch/pytorch` repository on Docker Hub.
pub const DEFAULT_IMAGES: &str = "docker.io/pytorch/pytorch";

/// How many of the newest torchvision and torchaudio releases are read.
const COMPANIONS: usize = 4;

/// Where the facts come from.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct Sources {
    /// PyPI's root (`https://pypi.org`).
    pub pypi: String,
    /// The wheel indexes' root (`https://download.pytorch.org/whl`).
    pub index: String,
    /// The `pytorch/pytorch` repository (`docker.io/pytorch/pytorch`).
    pub images: String,
}

/// How a document is read: over HTTP, or from a directory of recorded answers.
pub enum Reader {
    /// GET it.
    Http(RegistryClient),
    /// Read the file its URL path names under this directory.
    Dir(PathBuf),
}

/// Why the sources could not be read.
#[derive(Debug, thiserror::Error)]
pub enum RefreshError {
    /// A request failed (or answered an error other than a 404 where 404 means absent).
    #[error("{0}")]
    Fetch(#[from] RegistryError),
    /// An answer could not be read.
    #[error("{0}")]
    Facts(#[from] FactsError),
    /// A file under `--offline-from` could not be read.
    #[error("{url}: reading {}: {message}", path.display())]
    File {
        /// The URL it stands for.
        url: String,
        /// The file.
        path: PathBuf,
        /// What failed.
        message: String,
    },
}

impl Hint for RefreshError {
    fn hint(&self) -> Option<String> {
        match self {
            RefreshError::Fetch(e) => Some(e.hint().unwrap_or_else(|| {
                "check the network, or --pypi-url/--index-url/--images".into()
            })),
            RefreshError::Facts(_) => Some(
                "the source answered something else than expected: check the URL (--pypi-url, --index-url, --images)".into(),
            ),
            RefreshError::File { .. } => Some("check the directory given to --offline-from".into()),
        }
    }
}

/// The file under `root` that a URL's path names (the mapping of `tests/support/http.rs`).
pub fn file_for(root: &Path, url: &str) -> PathBuf {
    let rest = url.split_once("://").map_or(url, |(_, r)| r);
    let path = rest.find('/').map_or("/", |i| &rest[i..]);
    let path = path.split(['?', '#']).next().unwrap_or("");
    let mut p = root.join(path.trim_start_matches('/'));
    if path.ends_with('/') || p.is_dir() {
        p = p.join("index.html");
    }
    p
}

impl Reader {
    /// The document at `url`; None for a 404 (a missing file).
    pub async fn get(&self, url: &str) -> Result<Option<Vec<u8>>, RefreshError> {
        match self {
            Reader::Http(client) => match client.fetch(url).await {
                Ok(b) => Ok(Some(b.to_vec())),
                Err(RegistryError::Status { status: 404, .. }) => Ok(None),
                Err(e) => Err(e.into()),
            },
            Reader::Dir(root) => {
                let path = file_for(root, url);
                if url.contains("..") {
                    return Ok(None);
                }
                match std::fs::read(&path) {
                    Ok(b) => Ok(Some(b)),
                    Err(e) if e.kind() == std::io::ErrorKind::NotFound => Ok(None),
                    Err(e) => Err(RefreshError::File {
                        url: url.to_string(),
                        path,
                        message: e.to_string(),
                    }),
                }
            }
        }
    }

    /// The document at `url`, which must exist.
    async fn need(&self, url: &str) -> Result<Vec<u8>, RefreshError> {
        self.get(url).await?.ok_or_else(|| {
            RefreshError::Fetch(RegistryError::Status {
                url: url.to_string(),
                status: 404,
                body: String::new(),
            })
        })
    }

    /// The tags of the repository `images` (`docker.io/pytorch/pytorch`).
    async fn tags(&self, images: &str) -> Result<(String, Vec<String>), RefreshError> {
        let r = Reference::parse(images)?;
        let url = format!(
            "{}://{}/v2/{}/tags/list",
            r.scheme(),
            r.endpoint(),
            r.repository
        );
        match self {
            Reader::Http(client) => Ok((url, client.tags(images).await?)),
            Reader::Dir(_) => {
                let body = self.need(&url).await?;
                let tags = facts::tags_list(&url, &body)?;
                Ok((url, tags))
            }
        }
    }
}

/// Read everything the comparison with `m` needs.
pub async fn gather(reader: &Reader, src: &Sources, m: &Matrix) -> Result<Gathered, RefreshError> {
    let mut g = Gathered::default();
    let url = format!("{}/pypi/torch/json", src.pypi);
    let body = reader.need(&url).await?;
    let oldest = m.oldest_patch().clone();
    g.pypi = facts::pypi_project(&url, &body)?
        .into_iter()
        .filter(|(v, _)| *v >= oldest)
        .collect();
    g.looked_up.push(url);

    let known: BTreeSet<&Version> = m.all_patches().into_iter().collect();
    let new: Vec<Version> = g
        .pypi
        .iter()
        .filter(|(v, _)| !known.contains(v))
        .map(|(v, _)| v.clone())
        .collect();
    for v in &new {
        let url = format!("{}/pypi/torch/{v}/json", src.pypi);
        let body = reader.need(&url).await?;
        g.releases
            .insert(v.to_string(), facts::pypi_release(&url, &body)?);
        g.looked_up.push(url);
    }

    for c in refresh::index_candidates(m) {
        let cu = crate::matrix::cu_tag(&c);
        let url = format!("{}/{cu}/torch/", src.index);
        let listed = match reader.get(&url).await? {
            None => None,
            Some(body) => {
                let html = String::from_utf8_lossy(&body);
                let set: BTreeSet<Version> = facts::wheel_index(&html, "torch")
                    .into_iter()
                    .filter(|(_, local)| local.as_deref() == Some(cu.as_str()))
                    .map(|(v, _)| v)
                    .collect();
                g.looked_up.push(url);
                Some(set)
            }
        };
        g.indexes.insert(c.to_string(), listed);
    }

    let (url, tags) = reader.tags(&src.images).await?;
    g.tags = tags;
    g.looked_up.push(url);

    if !new.is_empty() {
        for project in ["torchvision", "torchaudio"] {
            let found = read_companions(reader, &src.pypi, project, &mut g.looked_up).await?;
            g.companions.extend(found);
        }
    }
    Ok(g)
}

/// The newest [`COMPANIONS`] releases of `project` on the PyPI at `pypi` and what each
/// requires of torch; the URLs read are added to `looked_up`. Also what `--online` reads
/// to pair a torch release with its torchvision and torchaudio
/// ([`crate::registry::online`]).
pub async fn read_companions(
    reader: &Reader,
    pypi: &str,
    project: &str,
    looked_up: &mut Vec<String>,
) -> Result<Vec<Companion>, RefreshError> {
    let url = format!("{pypi}/pypi/{project}/json");
    let Some(body) = reader.get(&url).await? else {
        return Ok(Vec::new());
    };
    let releases = facts::pypi_project(&url, &body)?;
    looked_up.push(url);
    let mut out = Vec::new();
    for (v, _) in releases.iter().rev().take(COMPANIONS) {
        let url = format!("{pypi}/pypi/{project}/{v}/json");
        let Some(body) = reader.get(&url).await? else {
            continue;
        };
        let r = facts::pypi_release(&url, &body)?;
        out.push(Companion {
            project: project.to_string(),
            version: v.clone(),
            requires: facts::torch_requirement(&r.requires_dist),
        });
        looked_up.push(url);
    }
    Ok(out)
}

/// Write `text` to `path` atomically (a temporary file in the same directory, renamed over
/// it) after copying the old file to `PATH.bak`. Returns the backup's path.
pub fn write_with_backup(path: &Path, text: &str) -> std::io::Result<PathBuf> {
    use std::io::Write as _;
    let mut bak = path.as_os_str().to_owned();
    bak.push(".bak");
    let bak = PathBuf::from(bak);
    std::fs::copy(path, &bak)?;
    let dir = match path.parent() {
        Some(d) if !d.as_os_str().is_empty() => d,
        _ => Path::new("."),
    };
    let mut tmp = tempfile::NamedTempFile::new_in(dir)?;
    tmp.write_all(text.as_bytes())?;
    tmp.as_file().sync_all()?;
    if let Ok(meta) = std::fs::metadata(path) {
        let _ = std::fs::set_permissions(tmp.path(), meta.permissions());
    }
    tmp.persist(path).map_err(|e| e.error)?;
    Ok(bak)
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn urls_name_files_as_the_test_server_serves_them() {
        let root = Path::new("/nonexistent-root");
        assert_eq!(
            file_for(root, "https://pypi.org/pypi/torch/json"),
            root.join("pypi/torch/json")
        );
        assert_eq!(
            file_for(root, "https://download.pytorch.org/whl/cu132/torch/"),
            root.join("whl/cu132/torch/index.html")
        );
        assert_eq!(
            file_for(
                root,
                "https://registry-1.docker.io/v2/pytorch/pytorch/tags/list?n=1000"
            ),
            root.join("v2/pytorch/pytorch/tags/list")
        );
    }
}
