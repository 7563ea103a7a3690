//! `--online`: facts about a torch release the compiled-in matrix has not seen, looked up
//! where pip and docker look: PyPI's JSON API (the release exists, its upload day, the CUDA
//! its PyPI wheel pins, Requires-Python, the torchvision and torchaudio that declare it)
//! and the registry's tag list of `pytorch/pytorch` (which images exist). The bytes are
//! read here; [`crate::matrix::facts`] parses them.

use crate::error::Hint;
use crate::matrix::facts::{self, FactsError, ReleaseFacts};
use crate::matrix::Version;

use super::refresh::{read_companions, Reader};
use super::{RegistryClient, RegistryError};
use crate::matrix::refresh::companion_for;

/// PyPI, as pip knows it.
pub const DEFAULT_PYPI: &str = "https://pypi.org";

/// The environment variable that points the lookups at another PyPI (a mirror that serves
/// the JSON API, or a test's server).
pub const PYPI_ENV: &str = "TORCHKIT_PYPI_URL";

/// Where the facts come from.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct Sources {
    /// PyPI's root (`https://pypi.org`): `/pypi/<project>/<version>/json` below it.
    pub pypi: String,
    /// The `pytorch/pytorch` repository, `[base] mirror` applied
    /// (`docker.io/pytorch/pytorch`, `127.0.0.1:5000/pytorch/pytorch`).
    pub images: String,
}

impl Sources {
    /// PyPI from `TORCHKIT_PYPI_URL` (else pypi.org); `pytorch/pytorch` through `mirror`.
    pub fn from_env(mirror: Option<&str>) -> Sources {
        let pypi = std::env::var(PYPI_ENV)
            .ok()
            .filter(|s| !s.trim().is_empty())
            .unwrap_or_else(|| DEFAULT_PYPI.into());
        Sources {
            pypi: pypi.trim_end_matches('/').to_string(),
            images: match mirror {
                Some(m) => format!("{}/pytorch/pytorch", m.trim_end_matches('/')),
                None => "docker.io/pytorch/pytorch".into(),
            },
        }
    }
}

/// Why a release could not be looked up.
#[derive(Debug, thiserror::Error)]
pub enum OnlineError {
    /// PyPI has no such torch release.
    #[error("torch {torch} is not on PyPI ({url} answered 404)")]
    NotOnPypi {
        /// The version asked for.
        torch: String,
        /// The URL asked.
        url: String,
    },
    /// PyPI or the registry could not be asked.
    #[error("looking up torch {torch} online: {source}")]
    Fetch {
        /// The version asked for.
        torch: String,
        /// What failed.
        source: RegistryError,
    },
    /// An answer could not be read.
    #[error("looking up torch {torch} online: {source}")]
    Facts {
        /// The version asked for.
        torch: String,
        /// What is wrong with it.
        source: FactsError,
    },
}

impl Hint for OnlineError {
    fn hint(&self) -> Option<String> {
        Some(match self {
            OnlineError::NotOnPypi { .. } => format!(
                "check the version (`pip index versions torch` lists the releases); the newest this torchkit knows is {} (matrix gathered {})",
                crate::matrix::matrix().newest_patch(),
                crate::matrix::gathered()
            ),
            OnlineError::Fetch { source, .. } => format!(
                "{}; or leave out --online and use a release the matrix knows",
                source.hint().unwrap_or_else(|| "check the network".into())
            ),
            OnlineError::Facts { .. } => {
                "set TORCHKIT_PYPI_URL to a server with PyPI's JSON API, or upgrade torchkit".into()
            }
        })
    }
}

/// Look torch `torch` up: PyPI first (so a typo is named as one), then the registry's tags.
pub async fn release_facts(
    client: &RegistryClient,
    src: &Sources,
    torch: &Version,
) -> Result<ReleaseFacts, OnlineError> {
    let t = torch.to_string();
    let fetch_err = |source| OnlineError::Fetch {
        torch: t.clone(),
        source,
    };
    let facts_err = |source| OnlineError::Facts {
        torch: t.clone(),
        source,
    };
    let url = format!("{}/pypi/torch/{torch}/json", src.pypi);
    let body = match client.fetch(&url).await {
        Err(RegistryError::Status { status: 404, .. }) => {
            return Err(OnlineError::NotOnPypi {
                torch: t.clone(),
                url,
            })
        }
        other => other.map_err(fetch_err)?,
    };
    let release = facts::pypi_release(&url, &body).map_err(facts_err)?;
    let mut looked_up = vec![url];
    let tags = client.tags(&src.images).await.map_err(fetch_err)?;
    looked_up.push(format!("the tags of {}", src.images));
    let torchvision = companion(client, src, "torchvision", torch, &mut looked_up).await;
    let torchaudio = companion(client, src, "torchaudio", torch, &mut looked_up).await;
    Ok(ReleaseFacts {
        tags: facts::image_tags(torch, &tags),
        variants: Vec::new(),
        torch: torch.clone(),
        looked_up,
        uploaded: release.uploaded,
        requires_python: release.requires_python,
        pypi_default_cuda: facts::pypi_default_cuda(&release.requires_dist),
        torchvision,
        torchaudio,
    })
}

/// The newest release of `project` (of its newest few, [`read_companions`]) whose
/// Requires-Dist admits torch `torch`. None when none does or PyPI cannot say: the resolver
/// then marks the pairing as assumed.
async fn companion(
    client: &RegistryClient,
    src: &Sources,
    project: &str,
    torch: &Version,
    looked_up: &mut Vec<String>,
) -> Option<String> {
    let reader = Reader::Http(client.clone());
    let found = read_companions(&reader, &src.pypi, project, looked_up)
        .await
        .ok()?;
    companion_for(&found, project, torch)
}
