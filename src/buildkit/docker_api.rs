//! The Docker Engine API calls the driver makes beside BuildKit:
//! - [`image_store`] (`GET /info`): whether dockerd keeps images in the containerd image
//!   store or the classic one, which decides the exporters its BuildKit has;
//! - [`push`] (`POST /images/{name}/push`): `--push` on a classic-store dockerd, whose
//!   `moby` exporter only stores the image. buildx's docker driver pushes the same way
//!   afterwards (`build.pushWithMoby`), as `docker push` would. The daemon pushes with the
//!   credentials sent in `X-Registry-Auth` (from the Docker CLI config,
//!   [`crate::credentials`]); it streams JSON progress lines and reports a failure as a
//!   line with `errorDetail`, after a `200 OK`;
//! - [`load`] (`POST /images/load`): `--load` when the build ran on another builder than
//!   dockerd (a buildx docker-container builder, a pod): the image comes back as a docker
//!   archive and is loaded into the Docker engine, as buildx does for those drivers.

use std::path::{Path, PathBuf};

use base64::Engine;
use http_body_util::{BodyExt, Empty};
use hyper::body::Bytes;
use hyper_util::rt::TokioIo;

use crate::credentials::{server_key, DockerAuth};
use crate::error::Hint;
use crate::llb;

/// Why a push through the Docker API failed.
#[derive(Debug, thiserror::Error)]
pub enum PushError {
    /// The socket could not be reached or the HTTP exchange broke.
    #[error("pushing {name} through the Docker API at {socket}: {reason}")]
    Transport {
        /// The image name.
        name: String,
        /// The Docker socket.
        socket: PathBuf,
        /// What went wrong.
        reason: String,
    },
    /// The daemon refused or failed the push.
    #[error("pushing {name} failed: {message}")]
    Daemon {
        /// The image name.
        name: String,
        /// The daemon's message.
        message: String,
    },
}

impl Hint for PushError {
    fn hint(&self) -> Option<String> {
        match self {
            PushError::Daemon { message, .. }
                if message.contains("denied") || message.contains("unauthorized") =>
            {
                Some("log in first: `docker login <registry>`".into())
            }
            PushError::Daemon { .. } => {
                Some("the image is stored in Docker; `docker push <name>` retries the push".into())
            }
            PushError::Transport { .. } => None,
        }
    }
}

/// The registry host of an image name, as Docker reads it ([`llb::normalize_image_ref`]);
/// Docker Hub for a name that does not parse (the daemon then refuses the push itself).
pub fn registry_host(name: &str) -> String {
    llb::normalize_image_ref(name)
        .ok()
        .and_then(|n| n.split('/').next().map(str::to_owned))
        .unwrap_or_else(|| "docker.io".to_owned())
}

/// `(repository, tag)` of an image name (`latest` when it has none), for the push URL.
pub fn split_tag(name: &str) -> (&str, &str) {
    let last = name.rsplit('/').next().unwrap_or(name);
    match last.rsplit_once(':') {
        Some((_, tag)) => (&name[..name.len() - tag.len() - 1], tag),
        None => (name, "latest"),
    }
}

/// The `X-Registry-Auth` value: base64url of the JSON the Docker API expects (`{}` for
/// anonymous).
fn registry_auth(username: &str, secret: &str, server: &str) -> String {
    let json = if secret.is_empty() {
        serde_json::json!({})
    } else if username.is_empty() {
        serde_json::json!({ "identitytoken": secret, "serveraddress": server })
    } else {
        serde_json::json!({ "username": username, "password": secret, "serveraddress": server })
    };
    base64::engine::general_purpose::URL_SAFE.encode(json.to_string())
}

/// The first error of the daemon's JSON progress stream, if any.
pub fn stream_error(body: &str) -> Option<String> {
    body.lines()
        .filter_map(|l| serde_json::from_str::<serde_json::Value>(l).ok())
        .find_map(|v| {
            v.get("errorDetail")
                .and_then(|d| d.get("message"))
                .or_else(|| v.get("error"))
                .and_then(|m| m.as_str())
                .map(str::to_owned)
        })
}

/// Where a dockerd keeps images.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum ImageStore {
    /// The containerd image store (`DriverStatus` `driver-type` is
    /// `io.containerd.snapshotter.v1`): BuildKit's image, oci and docker exporters work.
    Containerd,
    /// The classic graphdriver store: only `moby`, `local` and `tar`.
    Classic,
}

/// What `GET /info` says about the image store, and the daemon's version.
pub async fn image_store(socket: &Path) -> Result<(ImageStore, String), String> {
    let (status, body) = request(socket, "GET", "/info", None).await?;
    if !status.is_success() {
        return Err(format!("GET /info answered {status}"));
    }
    Ok(parse_info(&body))
}

/// [`image_store`]'s reading of the `/info` JSON.
pub fn parse_info(body: &str) -> (ImageStore, String) {
    let v: serde_json::Value = serde_json::from_str(body).unwrap_or_default();
    let containerd = v["DriverStatus"].as_array().is_some_and(|rows| {
        rows.iter().any(|r| {
            r[0].as_str() == Some("driver-type")
                && r[1].as_str() == Some("io.containerd.snapshotter.v1")
        })
    });
    let version = v["ServerVersion"].as_str().unwrap_or("").to_owned();
    let store = if containerd {
        ImageStore::Containerd
    } else {
        ImageStore::Classic
    };
    (store, version)
}

/// One HTTP/1.1 request on the Docker socket: the status and the whole body.
async fn request(
    socket: &Path,
    method: &str,
    uri: &str,
    auth: Option<String>,
) -> Result<(hyper::StatusCode, String), String> {
    let mut req = hyper::Request::builder().method(method).uri(uri);
    if let Some(a) = auth {
        req = req.header("X-Registry-Auth", a);
    }
    send(socket, req, Empty::<Bytes>::new()).await
}

/// Sends `req` with `body` on a fresh connection to the Docker socket: the status and the
/// whole answer.
async fn send<B>(
    socket: &Path,
    req: hyper::http::request::Builder,
    body: B,
) -> Result<(hyper::StatusCode, String), String>
where
    B: hyper::body::Body + Send + 'static,
    B::Data: Send,
    B::Error: Into<Box<dyn std::error::Error + Send + Sync>>,
{
    let stream = tokio::net::UnixStream::connect(socket)
        .await
        .map_err(|e| format!("{}: {e}", socket.display()))?;
    let (mut sender, conn) = hyper::client::conn::http1::handshake(TokioIo::new(stream))
        .await
        .map_err(|e| e.to_string())?;
    tokio::spawn(conn);
    let req = req
        .header("Host", "docker")
        .header("User-Agent", "torchkit")
        .body(body)
        .map_err(|e| e.to_string())?;
    let resp = sender.send_request(req).await.map_err(|e| e.to_string())?;
    let status = resp.status();
    let body = resp
        .into_body()
        .collect()
        .await
        .map_err(|e| e.to_string())?
        .to_bytes();
    Ok((status, String::from_utf8_lossy(&body).into_owned()))
}

/// The manifest digest the daemon reports in its push stream (`{"aux":{"Digest":…}}`).
pub fn stream_digest(body: &str) -> Option<String> {
    body.lines()
        .filter_map(|l| serde_json::from_str::<serde_json::Value>(l).ok())
        .find_map(|v| v["aux"]["Digest"].as_str().map(str::to_owned))
}

/// Pushes `name` from the image store of the dockerd at `socket`; the digest of the
/// manifest as the registry has it.
pub async fn push(
    socket: &Path,
    name: &str,
    auth: &DockerAuth,
) -> Result<Option<String>, PushError> {
    let transport = |reason: String| PushError::Transport {
        name: name.to_owned(),
        socket: socket.to_owned(),
        reason,
    };
    let host = registry_host(name);
    let creds = auth
        .credentials(server_key(&host))
        .await
        .map_err(|e| transport(e.to_string()))?;
    let (repo, tag) = split_tag(name);
    let uri = format!("/images/{}/push?tag={}", percent(repo), percent(tag));
    let header = registry_auth(&creds.username, &creds.secret, server_key(&host));
    let (status, body) = request(socket, "POST", &uri, Some(header))
        .await
        .map_err(transport)?;
    if !status.is_success() {
        let message = serde_json::from_str::<serde_json::Value>(&body)
            .ok()
            .and_then(|v| v.get("message").and_then(|m| m.as_str()).map(str::to_owned))
            .unwrap_or_else(|| format!("{status}: {}", body.trim()));
        return Err(PushError::Daemon {
            name: name.to_owned(),
            message,
        });
    }
    match stream_error(&body) {
        Some(message) => Err(PushError::Daemon {
            name: name.to_owned(),
            message,
        }),
        None => Ok(stream_digest(&body)),
    }
}

/// Loads the docker archive `tar` into the dockerd at `socket` (streamed, never read into
/// memory: PyTorch images are gigabytes); the names it loaded (`Loaded image: …`).
pub async fn load(socket: &Path, tar: &Path) -> Result<Vec<String>, String> {
    use futures::StreamExt as _;
    use tokio::io::AsyncReadExt as _;
    let file = tokio::fs::File::open(tar)
        .await
        .map_err(|e| format!("{}: {e}", tar.display()))?;
    let chunks = futures::stream::unfold(file, |mut f| async move {
        let mut buf = vec![0u8; 1 << 20];
        match f.read(&mut buf).await {
            Ok(0) => None,
            Ok(n) => {
                buf.truncate(n);
                Some((Ok(hyper::body::Frame::data(Bytes::from(buf))), f))
            }
            Err(e) => Some((Err(e), f)),
        }
    });
    let req = hyper::Request::builder()
        .method("POST")
        .uri("/images/load?quiet=1")
        .header("Content-Type", "application/x-tar");
    let (status, body) = send(socket, req, http_body_util::StreamBody::new(chunks.boxed())).await?;
    if !status.is_success() {
        return Err(format!(
            "POST /images/load answered {status}: {}",
            body.trim()
        ));
    }
    if let Some(e) = stream_error(&body) {
        return Err(e);
    }
    Ok(loaded_names(&body))
}

/// The names in the load stream's `{"stream":"Loaded image: NAME\n"}` lines.
pub fn loaded_names(body: &str) -> Vec<String> {
    body.lines()
        .filter_map(|l| serde_json::from_str::<serde_json::Value>(l).ok())
        .filter_map(|v| {
            v["stream"]
                .as_str()?
                .trim()
                .strip_prefix("Loaded image: ")
                .map(str::to_owned)
        })
        .collect()
}

/// Percent-encodes a path or query component: everything but letters, digits, `-._~` and
/// `/`, which repository paths keep.
fn percent(s: &str) -> String {
    const KEEP: &percent_encoding::AsciiSet = &percent_encoding::NON_ALPHANUMERIC
        .remove(b'-')
        .remove(b'.')
        .remove(b'_')
        .remove(b'~')
        .remove(b'/');
    percent_encoding::utf8_percent_encode(s, KEEP).to_string()
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn names_split_as_docker_reads_them() {
        assert_eq!(registry_host("localhost:5000/a/b:1"), "localhost:5000");
        assert_eq!(registry_host("ghcr.io/o/r"), "ghcr.io");
        assert_eq!(registry_host("team/app:1"), "docker.io");
        assert_eq!(registry_host("app"), "docker.io");
        assert_eq!(
            split_tag("localhost:5000/a/b:1"),
            ("localhost:5000/a/b", "1")
        );
        assert_eq!(
            split_tag("localhost:5000/a/b"),
            ("localhost:5000/a/b", "latest")
        );
        assert_eq!(split_tag("app"), ("app", "latest"));
        assert_eq!(percent("localhost:5000/a/b"), "localhost%3A5000/a/b");
    }

    #[test]
    fn the_stream_error_is_found_after_progress_lines() {
        let body = "{\"status\":\"The push refers to repository [localhost:5000/x]\"}\n\
                    {\"errorDetail\":{\"message\":\"denied: requested access to the resource is denied\"},\"error\":\"denied: …\"}\n";
        assert_eq!(
            stream_error(body).as_deref(),
            Some("denied: requested access to the resource is denied")
        );
        assert_eq!(stream_error("{\"status\":\"Pushed\"}\n"), None);
        let ok = "{\"status\":\"Pushed\"}\n{\"status\":\"1: digest: sha256:ab size: 1\"}\n\
                  {\"progressDetail\":{},\"aux\":{\"Tag\":\"1\",\"Digest\":\"sha256:ab\",\"Size\":1}}\n";
        assert_eq!(stream_digest(ok).as_deref(), Some("sha256:ab"));
    }

    #[test]
    fn loaded_names_are_read_from_the_stream() {
        let body = "{\"stream\":\"Loaded image: torchkit-e2e/reach:t1\\n\"}\n{\"stream\":\"Loaded image: other:2\\n\"}\n";
        assert_eq!(loaded_names(body), ["torchkit-e2e/reach:t1", "other:2"]);
        assert!(loaded_names("{\"stream\":\"Loading layer\"}").is_empty());
    }

    #[test]
    fn the_store_is_read_from_driver_status() {
        let c8d = r#"{"ServerVersion":"26.1.5+dfsg1","DriverStatus":[["driver-type","io.containerd.snapshotter.v1"]]}"#;
        assert_eq!(
            parse_info(c8d),
            (ImageStore::Containerd, "26.1.5+dfsg1".into())
        );
        let classic =
            r#"{"ServerVersion":"20.10.24+dfsg1","DriverStatus":[["Backing Filesystem","extfs"]]}"#;
        assert_eq!(parse_info(classic).0, ImageStore::Classic);
    }

    #[test]
    fn anonymous_auth_is_an_empty_object() {
        let v = registry_auth("", "", "localhost:5000");
        let json = base64::engine::general_purpose::URL_SAFE.decode(v).unwrap();
        assert_eq!(json, b"{}");
    }
}
