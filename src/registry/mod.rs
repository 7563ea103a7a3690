//! Registry fallback: resolve an image reference to its digest and config with the OCI
//! distribution API, without a BuildKit daemon (`plan`/`llb` with `--resolve-digest`).
//!
//! - `docker.io/…` goes to `registry-1.docker.io` (after `[base] mirror` has rewritten the
//!   name, the mirror's host is used instead);
//! - `localhost`, `127.0.0.1` and `[::1]` registries are spoken to over plain HTTP, others
//!   over HTTPS (rustls; roots from `SSL_CERT_FILE` or the system bundle);
//! - a `401` with `WWW-Authenticate: Bearer realm=…,service=…,scope=…` gets a token from the
//!   realm (anonymously, or with the docker config's credentials from
//!   [`DockerAuth`]); `Basic` challenges get the credentials directly;
//! - manifests are asked for with the OCI index/manifest and Docker list/v2 media types; an
//!   index or list resolves to the platform's manifest (linux/amd64) for the config, while the digest
//!   reported is the one the reference points at (as `ResolveImageConfig` and
//!   `docker buildx imagetools inspect` report it).
//!
//! Every body is checked against its digest. [`RegistryClient`] is an
//! [`ImageMetaResolver`], so `plan::pin_base` pins a base through it as it does through the
//! daemon.

use std::sync::Arc;

use base64::Engine as _;
use http_body_util::{BodyExt as _, Empty};
use hyper::body::Bytes;
use hyper_util::rt::TokioIo;
use sha2::Digest as _;

use crate::credentials::DockerAuth;
use crate::error::Hint;
use crate::llb::{ImageMeta, ImageMetaResolver, Platform};

pub mod online;
pub mod refresh;

/// OCI image index.
pub const OCI_INDEX: &str = "application/vnd.oci.image.index.v1+json";
/// OCI image manifest.
pub const OCI_MANIFEST: &str = "application/vnd.oci.image.manifest.v1+json";
/// Docker manifest list.
pub const DOCKER_LIST: &str = "application/vnd.docker.distribution.manifest.list.v2+json";
/// Docker image manifest v2.
pub const DOCKER_MANIFEST: &str = "application/vnd.docker.distribution.manifest.v2+json";

// PyPI's JSON for torch (every file of every release) is several MB.
const MAX_BODY: usize = 64 << 20;

/// Why a reference could not be resolved.
#[derive(Debug, thiserror::Error)]
pub enum RegistryError {
    /// The reference is not an image name.
    #[error("invalid image reference `{0}`")]
    Reference(String),
    /// Connecting or talking HTTP failed.
    #[error("{url}: {message}")]
    Http {
        /// What was asked.
        url: String,
        /// What went wrong.
        message: String,
    },
    /// The registry answered with an error status.
    #[error("{url}: HTTP {status}{}", if body.is_empty() { String::new() } else { format!(": {body}") })]
    Status {
        /// What was asked.
        url: String,
        /// The status code.
        status: u16,
        /// The start of the body.
        body: String,
    },
    /// The registry sent something this client cannot use.
    #[error("{url}: {message}")]
    Protocol {
        /// What was asked.
        url: String,
        /// What is wrong.
        message: String,
    },
    /// Reading the docker config failed.
    #[error("registry credentials: {0}")]
    Auth(String),
}

impl Hint for RegistryError {
    fn hint(&self) -> Option<String> {
        match self {
            RegistryError::Status { status: 401 | 403, .. } => Some(
                "log in with `docker login <registry>` (torchkit reads the docker config), or check the name".into(),
            ),
            RegistryError::Status { status: 404, .. } => {
                Some("check the image name and tag (`docker buildx imagetools inspect <ref>`)".into())
            }
            RegistryError::Http { .. } => Some(
                "check the network; for a Docker Hub mirror set [base] mirror in the spec".into(),
            ),
            _ => None,
        }
    }
}

/// A parsed reference: where to ask and what.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct Reference {
    /// The registry host as named (`docker.io`, `localhost:5000`).
    pub registry: String,
    /// The repository (`pytorch/pytorch`, `library/busybox`).
    pub repository: String,
    /// Tag or `sha256:…` digest.
    pub reference: String,
}

impl Reference {
    /// Parse and normalize (`busybox` → `docker.io/library/busybox:latest`).
    pub fn parse(s: &str) -> Result<Reference, RegistryError> {
        let bad = || RegistryError::Reference(s.to_string());
        let norm = crate::llb::normalize_image_ref(s).map_err(|_| bad())?;
        let (name, reference) = match norm.split_once('@') {
            Some((n, d)) => (n.to_string(), d.to_string()),
            None => {
                let slash = norm.rfind('/').unwrap_or(0);
                match norm[slash..].rfind(':') {
                    Some(i) => (
                        norm[..slash + i].to_string(),
                        norm[slash + i + 1..].to_string(),
                    ),
                    None => (norm.clone(), "latest".to_string()),
                }
            }
        };
        // A digest-pinned name may still carry its tag: `name:tag@sha256:…`.
        let name = match name
            .rfind('/')
            .and_then(|s| name[s..].rfind(':').map(|i| s + i))
        {
            Some(i) if reference.starts_with("sha256:") => name[..i].to_string(),
            _ => name,
        };
        let (registry, repository) = name.split_once('/').ok_or_else(bad)?;
        Ok(Reference {
            registry: registry.to_string(),
            repository: repository.to_string(),
            reference,
        })
    }

    /// The host to connect to (`registry-1.docker.io` for Docker Hub).
    pub fn endpoint(&self) -> &str {
        match self.registry.as_str() {
            "docker.io" | "index.docker.io" => "registry-1.docker.io",
            r => r,
        }
    }

    /// Plain HTTP for loopback registries, HTTPS otherwise.
    pub fn scheme(&self) -> &'static str {
        let host = self.endpoint();
        let h = if let Some(rest) = host.strip_prefix('[') {
            rest.split(']').next().unwrap_or(rest)
        } else {
            host.split(':').next().unwrap_or(host)
        };
        if matches!(h, "localhost" | "127.0.0.1" | "::1") || h.starts_with("127.") {
            "http"
        } else {
            "https"
        }
    }
}

/// What a reference resolved to.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct ResolvedImage {
    /// The digest the reference points at (an index's digest for multi-arch images): what
    /// to pin `name@digest` to.
    pub digest: String,
    /// The media type at that digest.
    pub media_type: String,
    /// The platform's image manifest digest (equal to `digest` for a single manifest).
    pub manifest_digest: String,
    /// The image config JSON.
    pub config: Vec<u8>,
}

struct Response {
    status: u16,
    headers: http::HeaderMap,
    body: Bytes,
}

/// An anonymous-or-logged-in OCI distribution client.
#[derive(Clone)]
pub struct RegistryClient {
    auth: DockerAuth,
    tls: Arc<rustls::ClientConfig>,
}

impl std::fmt::Debug for RegistryClient {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        f.debug_struct("RegistryClient").finish_non_exhaustive()
    }
}

fn load_roots() -> rustls::RootCertStore {
    let mut roots = rustls::RootCertStore::empty();
    let candidates = [
        std::env::var("SSL_CERT_FILE").ok(),
        Some("/etc/ssl/certs/ca-certificates.crt".into()),
        Some("/etc/pki/tls/certs/ca-bundle.crt".into()),
    ];
    for path in candidates.into_iter().flatten() {
        if let Ok(data) = std::fs::read(&path) {
            let mut slice = data.as_slice();
            let certs: Vec<_> = rustls_pemfile::certs(&mut slice)
                .filter_map(Result::ok)
                .collect();
            let (added, _) = roots.add_parsable_certificates(certs);
            if added > 0 {
                break;
            }
        }
    }
    roots
}

impl RegistryClient {
    /// A client with credentials from `auth`.
    pub fn new(auth: DockerAuth) -> Self {
        let provider = Arc::new(rustls::crypto::ring::default_provider());
        let tls = rustls::ClientConfig::builder_with_provider(provider)
            .with_safe_default_protocol_versions()
            .expect("ring supports the default protocol versions")
            .with_root_certificates(load_roots())
            .with_no_client_auth();
        RegistryClient {
            auth,
            tls: Arc::new(tls),
        }
    }

    async fn send(
        &self,
        url: &str,
        accept: Option<&str>,
        authorization: Option<&str>,
    ) -> Result<Response, RegistryError> {
        let http_err = |message: String| RegistryError::Http {
            url: url.to_string(),
            message,
        };
        let uri: http::Uri = url.parse().map_err(|e| http_err(format!("bad URL: {e}")))?;
        let host = uri
            .host()
            .ok_or_else(|| http_err("no host".into()))?
            .to_string();
        let https = uri.scheme_str() == Some("https");
        let port = uri.port_u16().unwrap_or(if https { 443 } else { 80 });
        let host_name = host
            .trim_start_matches('[')
            .trim_end_matches(']')
            .to_string();
        let tcp = tokio::net::TcpStream::connect((host_name.as_str(), port))
            .await
            .map_err(|e| http_err(format!("cannot connect: {e}")))?;
        let authority = uri
            .authority()
            .map(|a| a.as_str().to_string())
            .unwrap_or(host.clone());
        let path = uri
            .path_and_query()
            .map(|p| p.as_str().to_string())
            .unwrap_or_else(|| "/".into());
        let mut req = http::Request::get(path)
            .header(http::header::HOST, authority)
            .header(
                http::header::USER_AGENT,
                concat!("torchkit/", env!("CARGO_PKG_VERSION")),
            );
        if let Some(a) = accept {
            req = req.header(http::header::ACCEPT, a);
        }
        if let Some(a) = authorization {
            req = req.header(http::header::AUTHORIZATION, a);
        }
        let req = req
            .body(Empty::<Bytes>::new())
            .map_err(|e| http_err(e.to_string()))?;
        let resp = if https {
            let name = rustls::pki_types::ServerName::try_from(host_name.clone())
                .map_err(|e| http_err(format!("bad server name: {e}")))?;
            let stream = tokio_rustls::TlsConnector::from(self.tls.clone())
                .connect(name, tcp)
                .await
                .map_err(|e| http_err(format!("TLS: {e}")))?;
            exchange(TokioIo::new(stream), req).await
        } else {
            exchange(TokioIo::new(tcp), req).await
        }
        .map_err(http_err)?;
        Ok(resp)
    }

    /// GET with auth challenges answered and redirects followed.
    /// `r`: the registry whose auth challenges are answered (None: a public document, no
    /// credentials sent anywhere).
    async fn get(
        &self,
        r: Option<&Reference>,
        url: &str,
        accept: Option<&str>,
        token: &mut Option<String>,
    ) -> Result<Response, RegistryError> {
        let mut url = url.to_string();
        let mut authed = false;
        for _ in 0..8 {
            // Credentials go only to the registry itself, never to a redirect target.
            let registry =
                r.filter(|r| url.starts_with(&format!("{}://{}/", r.scheme(), r.endpoint())));
            let authz = token.as_deref().filter(|_| registry.is_some());
            let resp = self.send(&url, accept, authz).await?;
            match resp.status {
                200 => return Ok(resp),
                301 | 302 | 303 | 307 | 308 => {
                    let loc = resp
                        .headers
                        .get(http::header::LOCATION)
                        .and_then(|l| l.to_str().ok())
                        .ok_or_else(|| RegistryError::Protocol {
                            url: url.clone(),
                            message: "redirect without Location".into(),
                        })?;
                    url = if loc.starts_with("http://") || loc.starts_with("https://") {
                        loc.to_string()
                    } else {
                        // Relative to where this answer came from.
                        let uri: http::Uri = url.parse().map_err(|e| RegistryError::Http {
                            url: url.clone(),
                            message: format!("bad URL: {e}"),
                        })?;
                        format!(
                            "{}://{}{loc}",
                            uri.scheme_str().unwrap_or("https"),
                            uri.authority().map(|a| a.as_str()).unwrap_or_default()
                        )
                    };
                }
                401 if !authed && registry.is_some() => {
                    let r = registry.expect("checked");
                    authed = true;
                    let challenge = resp
                        .headers
                        .get(http::header::WWW_AUTHENTICATE)
                        .and_then(|v| v.to_str().ok())
                        .unwrap_or("")
                        .to_string();
                    *token = Some(self.authorize(r, &challenge).await?);
                }
                status => {
                    let body = String::from_utf8_lossy(&resp.body[..resp.body.len().min(300)]);
                    return Err(RegistryError::Status {
                        url,
                        status,
                        body: body.trim().to_string(),
                    });
                }
            }
        }
        Err(RegistryError::Protocol {
            url,
            message: "too many redirects".into(),
        })
    }

    /// An `Authorization` header value for a challenge.
    async fn authorize(&self, r: &Reference, challenge: &str) -> Result<String, RegistryError> {
        let creds = self
            .auth
            .credentials(&r.registry)
            .await
            .map_err(|e| RegistryError::Auth(e.to_string()))?;
        let basic = (!creds.secret.is_empty()).then(|| {
            let user = if creds.username.is_empty() {
                "<token>"
            } else {
                &creds.username
            };
            format!(
                "Basic {}",
                base64::engine::general_purpose::STANDARD
                    .encode(format!("{user}:{}", creds.secret))
            )
        });
        let (scheme, params) = challenge.split_once(' ').unwrap_or((challenge, ""));
        if scheme.eq_ignore_ascii_case("basic") {
            return basic.ok_or_else(|| RegistryError::Status {
                url: format!("{}://{}/v2/", r.scheme(), r.endpoint()),
                status: 401,
                body: "the registry wants a login".into(),
            });
        }
        if !scheme.eq_ignore_ascii_case("bearer") {
            return Err(RegistryError::Protocol {
                url: format!("{}://{}/v2/", r.scheme(), r.endpoint()),
                message: format!("unsupported auth challenge `{challenge}`"),
            });
        }
        let p = challenge_params(params);
        let realm = p
            .iter()
            .find(|(k, _)| k == "realm")
            .map(|(_, v)| v.clone())
            .ok_or_else(|| RegistryError::Protocol {
                url: format!("{}://{}/v2/", r.scheme(), r.endpoint()),
                message: format!("Bearer challenge without realm: `{challenge}`"),
            })?;
        let mut query = vec![];
        if let Some((_, s)) = p.iter().find(|(k, _)| k == "service") {
            query.push(format!("service={}", urlencode(s)));
        }
        let scope = p
            .iter()
            .find(|(k, _)| k == "scope")
            .map(|(_, v)| v.clone())
            .unwrap_or_else(|| format!("repository:{}:pull", r.repository));
        query.push(format!("scope={}", urlencode(&scope)));
        let url = format!("{realm}?{}", query.join("&"));
        let resp = self.send(&url, None, basic.as_deref()).await?;
        if resp.status != 200 {
            return Err(RegistryError::Status {
                url,
                status: resp.status,
                body: String::from_utf8_lossy(&resp.body[..resp.body.len().min(300)]).into(),
            });
        }
        let v: serde_json::Value =
            serde_json::from_slice(&resp.body).map_err(|e| RegistryError::Protocol {
                url: url.clone(),
                message: format!("token reply is not JSON: {e}"),
            })?;
        let t = v
            .get("token")
            .or_else(|| v.get("access_token"))
            .and_then(|t| t.as_str())
            .ok_or_else(|| RegistryError::Protocol {
                url,
                message: "token reply without token".into(),
            })?;
        Ok(format!("Bearer {t}"))
    }

    /// Every tag of the repository `name` (`docker.io/pytorch/pytorch`) from
    /// `/v2/<name>/tags/list`, following the `Link: <…>; rel="next"` pages.
    pub async fn tags(&self, name: &str) -> Result<Vec<String>, RegistryError> {
        let r = Reference::parse(name)?;
        let origin = format!("{}://{}", r.scheme(), r.endpoint());
        let mut url = format!("{origin}/v2/{}/tags/list?n=1000", r.repository);
        let mut token = None;
        let mut tags = Vec::new();
        for _ in 0..100 {
            let resp = self.get(Some(&r), &url, None, &mut token).await?;
            let page = crate::matrix::facts::tags_list(&url, &resp.body).map_err(|e| {
                RegistryError::Protocol {
                    url: url.clone(),
                    message: e.message,
                }
            })?;
            tags.extend(page);
            let next = resp
                .headers
                .get(http::header::LINK)
                .and_then(|l| l.to_str().ok())
                .and_then(next_link);
            match next {
                Some(n) if n.starts_with('/') => url = format!("{origin}{n}"),
                Some(n) => url = n,
                None => return Ok(tags),
            }
        }
        Err(RegistryError::Protocol {
            url,
            message: "more than 100 pages of tags".into(),
        })
    }

    /// GET a public document (a PyPI JSON page, a wheel index), redirects followed, no
    /// credentials sent.
    pub async fn fetch(&self, url: &str) -> Result<Bytes, RegistryError> {
        Ok(self.get(None, url, None, &mut None).await?.body)
    }

    /// Resolve `reference` for linux/amd64: digest, media type, manifest digest, config.
    pub async fn resolve(&self, reference: &str) -> Result<ResolvedImage, RegistryError> {
        self.resolve_for(reference, &Platform::linux_amd64()).await
    }

    /// Resolve `reference` for `platform`: digest, media type, manifest digest, config.
    pub async fn resolve_for(
        &self,
        reference: &str,
        platform: &Platform,
    ) -> Result<ResolvedImage, RegistryError> {
        let r = Reference::parse(reference)?;
        let base = format!("{}://{}/v2/{}", r.scheme(), r.endpoint(), r.repository);
        let accept = [OCI_INDEX, DOCKER_LIST, OCI_MANIFEST, DOCKER_MANIFEST].join(", ");
        let mut token = None;
        let url = format!("{base}/manifests/{}", r.reference);
        let top = self.get(Some(&r), &url, Some(&accept), &mut token).await?;
        let digest = checked_digest(
            &url,
            &top.body,
            r.reference
                .starts_with("sha256:")
                .then_some(r.reference.as_str()),
        )?;
        let (media_type, json) = manifest_json(&url, &top)?;
        let (manifest_digest, manifest) = if media_type == OCI_INDEX || media_type == DOCKER_LIST {
            let d = select_platform(&json, platform).ok_or_else(|| RegistryError::Protocol {
                url: url.clone(),
                message: format!("the index has no {platform} manifest"),
            })?;
            let murl = format!("{base}/manifests/{d}");
            let m = self.get(Some(&r), &murl, Some(&accept), &mut token).await?;
            checked_digest(&murl, &m.body, Some(&d))?;
            let (_, mj) = manifest_json(&murl, &m)?;
            (d, mj)
        } else {
            (digest.clone(), json)
        };
        let config_digest = manifest
            .pointer("/config/digest")
            .and_then(|d| d.as_str())
            .ok_or_else(|| RegistryError::Protocol {
                url: url.clone(),
                message: "the manifest has no config".into(),
            })?
            .to_string();
        let curl = format!("{base}/blobs/{config_digest}");
        let config = self.get(Some(&r), &curl, None, &mut token).await?;
        checked_digest(&curl, &config.body, Some(&config_digest))?;
        Ok(ResolvedImage {
            digest,
            media_type,
            manifest_digest,
            config: config.body.to_vec(),
        })
    }
}

/// The registry as an [`ImageMetaResolver`], BuildKit's `imagemetaresolver`: what
/// `plan::pin_base` uses for `torchkit plan`/`llb --resolve-digest`, without a daemon.
impl ImageMetaResolver for RegistryClient {
    type Error = RegistryError;

    async fn resolve_image_meta(
        &self,
        reference: &str,
        platform: &Platform,
    ) -> Result<ImageMeta, RegistryError> {
        let r = self.resolve_for(reference, platform).await?;
        Ok(ImageMeta {
            digest: r.digest,
            config: r.config,
        })
    }
}

async fn exchange<IO>(io: IO, req: http::Request<Empty<Bytes>>) -> Result<Response, String>
where
    IO: hyper::rt::Read + hyper::rt::Write + Unpin + Send + 'static,
{
    let (mut sender, conn) = hyper::client::conn::http1::handshake(io)
        .await
        .map_err(|e| e.to_string())?;
    let driver = tokio::spawn(async move {
        let _ = conn.await;
    });
    let resp = sender.send_request(req).await.map_err(|e| e.to_string())?;
    let status = resp.status().as_u16();
    let headers = resp.headers().clone();
    let body = http_body_util::Limited::new(resp.into_body(), MAX_BODY)
        .collect()
        .await
        .map_err(|e| format!("reading the body: {e}"))?
        .to_bytes();
    driver.abort();
    Ok(Response {
        status,
        headers,
        body,
    })
}

fn checked_digest(url: &str, body: &[u8], expected: Option<&str>) -> Result<String, RegistryError> {
    let got = format!("sha256:{}", hex::encode(sha2::Sha256::digest(body)));
    match expected {
        Some(e) if e != got => Err(RegistryError::Protocol {
            url: url.to_string(),
            message: format!("content has digest {got}, expected {e}"),
        }),
        _ => Ok(got),
    }
}

fn manifest_json(url: &str, resp: &Response) -> Result<(String, serde_json::Value), RegistryError> {
    let json: serde_json::Value =
        serde_json::from_slice(&resp.body).map_err(|e| RegistryError::Protocol {
            url: url.to_string(),
            message: format!("manifest is not JSON: {e}"),
        })?;
    let header = resp
        .headers
        .get(http::header::CONTENT_TYPE)
        .and_then(|v| v.to_str().ok())
        .map(|v| v.split(';').next().unwrap_or(v).trim().to_string());
    let media_type = json
        .get("mediaType")
        .and_then(|m| m.as_str())
        .map(String::from)
        .or(header)
        .unwrap_or_else(|| OCI_MANIFEST.into());
    Ok((media_type, json))
}

/// The target of a `Link` header's `rel="next"` entry (`</v2/…?last=x&n=100>; rel="next"`).
pub fn next_link(header: &str) -> Option<String> {
    header.split(',').find_map(|part| {
        let (target, params) = part.split_once(';')?;
        let rel_next = params.split(';').any(|p| {
            let p = p.trim().replace(' ', "");
            p == "rel=\"next\"" || p == "rel=next"
        });
        let t = target.trim().strip_prefix('<')?.strip_suffix('>')?;
        rel_next.then(|| t.to_string())
    })
}

/// The digest of the `platform` entry of an index or manifest list. Variants compare as
/// containerd normalizes them: none, `v1` for amd64 and `v8` for arm64 are the default.
pub fn select_platform(index: &serde_json::Value, platform: &Platform) -> Option<String> {
    let variant = |arch: &str, v: &str| match (arch, v) {
        ("amd64", "v1") | ("arm64", "v8") => String::new(),
        (_, v) => v.to_string(),
    };
    let want = variant(&platform.arch, &platform.variant);
    index
        .get("manifests")?
        .as_array()?
        .iter()
        .find(|m| {
            let p = m.get("platform");
            let s = |k: &str| p.and_then(|p| p.get(k)).and_then(|v| v.as_str());
            s("os") == Some(platform.os.as_str())
                && s("architecture") == Some(platform.arch.as_str())
                && variant(&platform.arch, s("variant").unwrap_or("")) == want
        })
        .and_then(|m| m.get("digest")?.as_str().map(String::from))
}

/// `realm="…",service="…",scope="…"` → pairs (quoted values may hold commas).
pub fn challenge_params(s: &str) -> Vec<(String, String)> {
    let mut out = vec![];
    let mut rest = s.trim();
    while !rest.is_empty() {
        let Some((k, after)) = rest.split_once('=') else {
            break;
        };
        let key = k.trim().trim_start_matches(',').trim().to_ascii_lowercase();
        let after = after.trim_start();
        let (value, next) = if let Some(q) = after.strip_prefix('"') {
            match q.find('"') {
                Some(end) => (q[..end].to_string(), &q[end + 1..]),
                None => (q.to_string(), ""),
            }
        } else {
            match after.find(',') {
                Some(end) => (after[..end].trim().to_string(), &after[end..]),
                None => (after.trim().to_string(), ""),
            }
        };
        out.push((key, value));
        rest = next.trim_start().trim_start_matches(',').trim_start();
    }
    out
}

/// A query value with everything but RFC 3986's unreserved characters percent-encoded.
fn urlencode(s: &str) -> String {
    percent_encoding::utf8_percent_encode(s, UNRESERVED).to_string()
}

/// What `urlencode` leaves as it is: letters, digits and `-._~`.
const UNRESERVED: &percent_encoding::AsciiSet = &percent_encoding::NON_ALPHANUMERIC
    .remove(b'-')
    .remove(b'.')
    .remove(b'_')
    .remove(b'~');

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn references_and_endpoints() {
        let r = Reference::parse("pytorch/pytorch:2.8.0-cuda12.8-cudnn9-runtime").unwrap();
        assert_eq!(r.registry, "docker.io");
        assert_eq!(r.repository, "pytorch/pytorch");
        assert_eq!(r.reference, "2.8.0-cuda12.8-cudnn9-runtime");
        assert_eq!(r.endpoint(), "registry-1.docker.io");
        assert_eq!(r.scheme(), "https");
        let r = Reference::parse("busybox").unwrap();
        assert_eq!(
            (r.repository.as_str(), r.reference.as_str()),
            ("library/busybox", "latest")
        );
        let r = Reference::parse("localhost:5000/tk-index:1").unwrap();
        assert_eq!((r.endpoint(), r.scheme()), ("localhost:5000", "http"));
        assert_eq!(
            Reference::parse("127.0.0.1:5000/a/b").unwrap().scheme(),
            "http"
        );
        let d = format!("sha256:{}", "a".repeat(64));
        let r = Reference::parse(&format!("localhost:5000/x:1@{d}")).unwrap();
        assert_eq!(
            (r.repository.as_str(), r.reference.as_str()),
            ("x", d.as_str())
        );
    }

    #[test]
    fn bearer_challenge_params() {
        let p = challenge_params(
            r#"realm="https://auth.docker.io/token",service="registry.docker.io",scope="repository:pytorch/pytorch:pull,push""#,
        );
        assert_eq!(
            p,
            [
                (
                    "realm".to_string(),
                    "https://auth.docker.io/token".to_string()
                ),
                ("service".to_string(), "registry.docker.io".to_string()),
                (
                    "scope".to_string(),
                    "repository:pytorch/pytorch:pull,push".to_string()
                ),
            ]
        );
        assert_eq!(
            urlencode("repository:a/b:pull"),
            "repository%3Aa%2Fb%3Apull"
        );
    }

    #[test]
    fn link_header_next_page() {
        assert_eq!(
            next_link(r#"</v2/pytorch/pytorch/tags/list?last=2.8.0&n=1000>; rel="next""#),
            Some("/v2/pytorch/pytorch/tags/list?last=2.8.0&n=1000".into())
        );
        assert_eq!(
            next_link(r#"<https://r.example/a>; rel="prev", <https://r.example/b>; rel=next"#),
            Some("https://r.example/b".into())
        );
        assert_eq!(next_link(r#"<https://r.example/a>; rel="prev""#), None);
    }

    #[test]
    fn index_selects_linux_amd64() {
        let idx = serde_json::json!({"manifests": [
            {"digest": "sha256:arm", "platform": {"os": "linux", "architecture": "arm64", "variant": "v8"}},
            {"digest": "sha256:att", "platform": {"os": "unknown", "architecture": "unknown"}},
            {"digest": "sha256:amd", "platform": {"os": "linux", "architecture": "amd64"}}
        ]});
        let amd64 = Platform::linux_amd64();
        assert_eq!(select_platform(&idx, &amd64).as_deref(), Some("sha256:amd"));
        assert_eq!(
            select_platform(&idx, &Platform::linux_arm64()).as_deref(),
            Some("sha256:arm")
        );
        assert_eq!(
            select_platform(&serde_json::json!({"manifests": []}), &amd64),
            None
        );
    }
}
