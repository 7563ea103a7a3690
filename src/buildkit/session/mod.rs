//! Session services the build client hosts for the daemon (`buildkit-protocol.md` §4).
//!
//! A build client opens `Control.Session`; inside that byte pipe the roles flip: the
//! daemon is the HTTP/2 gRPC client and we are the server (prior knowledge, no TLS).
//! [`Attachables`] collects what we offer and [`Attachables::serve`] runs the gRPC server
//! over one connection:
//! - `grpc.health.v1.Health` (mandatory; the daemon drops the session when it fails);
//! - `moby.filesync.v1.FileSync/DiffCopy`: local directories by name, as the fsutil
//!   sender ([`filesync`](self) module docs), with the daemon's include/exclude/follow
//!   filters applied here with `.dockerignore` semantics ([`PatternMatcher`]);
//! - `moby.filesync.v1.FileSend/DiffCopy`: exporter output into [`ExportSink`]s, which
//!   stay invisible at their destination until [`ExportSink::commit`];
//! - `moby.filesync.v1.Auth/Credentials` from the Docker config ([`DockerAuth`]);
//! - `moby.buildkit.secrets.v1.Secrets/GetSecret` ([`SecretSource`]);
//! - `containerd.services.content.v1.Content` over local OCI-layout directories
//!   ([`LocalStore`]), for local cache import/export (`content` module docs).
//!
//! This module does IO (files, credential helpers) but prints nothing: stdout is a data
//! channel, and in frontend mode the gRPC pipe itself.
//! Protos: `proto/buildkit/session/*.proto`, `proto/fsutil/types/*.proto`.

mod auth;
mod content;
mod export;
mod filesync;
mod ignorefile;
mod patterns;
mod secrets;
mod walk;

use std::collections::BTreeMap;
use std::path::{Path, PathBuf};
use std::pin::Pin;
use std::sync::Arc;
use std::task::{Context, Poll};

use tokio::io::{AsyncRead, AsyncWrite, ReadBuf};
use tonic::transport::server::Connected;

use crate::error::Hint;
use crate::proto::containerd::services::content::v1::content_server::ContentServer;
use crate::proto::moby::buildkit::secrets::v1::secrets_server::SecretsServer;
use crate::proto::moby::filesync::v1::auth_server::AuthServer;
use crate::proto::moby::filesync::v1::file_sync_server::FileSyncServer;

pub use crate::credentials::{server_key, AuthError, Credentials, DockerAuth, DOCKER_HUB_KEY};
pub use content::{
    digest_hex, local_store_id, resolve_tag, update_index, LocalStore, CACHE_MANIFEST_KEY,
    REF_NAME_ANNOTATION, STORE_ID_KEY,
};
pub use export::{parent_dir, ExportError, ExportFormat, ExportSink, EXPORTER_ID_KEY};
pub use ignorefile::{
    beside_spec, context_excludes, parse_dockerignore, read_context_excludes, IgnoreFileError,
    DOCKERIGNORE,
};
pub use patterns::{Pattern, PatternError, PatternMatcher};
pub use secrets::{parse_secret_spec, SecretSource, SecretSpecError};
pub use walk::{go_mode, FilterOptions};

/// BuildKit's message limit, in both directions.
const MAX_MESSAGE: usize = 16 << 20;

/// Method paths, as advertised in `x-docker-expose-session-grpc-method`.
pub mod methods {
    /// Health check (mandatory).
    pub const HEALTH_CHECK: &str = "/grpc.health.v1.Health/Check";
    /// Health watch.
    pub const HEALTH_WATCH: &str = "/grpc.health.v1.Health/Watch";
    /// Local directory upload.
    pub const FILESYNC_DIFFCOPY: &str = "/moby.filesync.v1.FileSync/DiffCopy";
    /// Legacy tar upload; served as Unimplemented and not advertised, so the daemon
    /// always picks DiffCopy.
    pub const FILESYNC_TARSTREAM: &str = "/moby.filesync.v1.FileSync/TarStream";
    /// Exporter output.
    pub const FILESEND_DIFFCOPY: &str = "/moby.filesync.v1.FileSend/DiffCopy";
    /// Registry credentials.
    pub const AUTH_CREDENTIALS: &str = "/moby.filesync.v1.Auth/Credentials";
    /// Token fetch (Unimplemented: the daemon falls back to Credentials).
    pub const AUTH_FETCH_TOKEN: &str = "/moby.filesync.v1.Auth/FetchToken";
    /// Token authority (Unimplemented).
    pub const AUTH_GET_TOKEN_AUTHORITY: &str = "/moby.filesync.v1.Auth/GetTokenAuthority";
    /// Token authority (Unimplemented).
    pub const AUTH_VERIFY_TOKEN_AUTHORITY: &str = "/moby.filesync.v1.Auth/VerifyTokenAuthority";
    /// Build secrets.
    pub const SECRETS_GET: &str = "/moby.buildkit.secrets.v1.Secrets/GetSecret";
    /// containerd's content store service (local cache import/export), every method.
    pub const CONTENT: [&str; 9] = [
        "/containerd.services.content.v1.Content/Info",
        "/containerd.services.content.v1.Content/Update",
        "/containerd.services.content.v1.Content/List",
        "/containerd.services.content.v1.Content/Delete",
        "/containerd.services.content.v1.Content/Read",
        "/containerd.services.content.v1.Content/Status",
        "/containerd.services.content.v1.Content/ListStatuses",
        "/containerd.services.content.v1.Content/Write",
        "/containerd.services.content.v1.Content/Abort",
    ];
}

/// Why the session server could not run.
#[derive(Debug, thiserror::Error)]
pub enum SessionError {
    /// A local directory to share does not exist or is not a directory.
    #[error("local {name:?} is {path}, which is not a readable directory")]
    LocalDir {
        /// The local's name (`context`, `dockerfile`, …).
        name: String,
        /// Its path.
        path: PathBuf,
    },
    /// The HTTP/2 server failed.
    #[error("session server: {0}")]
    Transport(#[from] tonic::transport::Error),
}

impl Hint for SessionError {
    fn hint(&self) -> Option<String> {
        match self {
            SessionError::LocalDir { path, .. } => Some(format!(
                "check that {} exists and is a directory you can read",
                path.display()
            )),
            SessionError::Transport(_) => None,
        }
    }
}

/// Everything the client offers the daemon in one session. Built with the `with_*`
/// methods, then advertised with [`methods`](Self::methods) and run with
/// [`serve`](Self::serve).
#[derive(Debug, Clone)]
pub struct Attachables {
    dirs: BTreeMap<String, filesync::LocalDir>,
    exporters: Vec<ExportSink>,
    secrets: BTreeMap<String, SecretSource>,
    auth: DockerAuth,
    stores: BTreeMap<String, LocalStore>,
}

impl Default for Attachables {
    fn default() -> Self {
        Self::new()
    }
}

impl Attachables {
    /// No local dirs, exporters or secrets; credentials from the Docker config
    /// ([`DockerAuth::from_env`]).
    pub fn new() -> Self {
        Attachables {
            dirs: BTreeMap::new(),
            exporters: Vec::new(),
            secrets: BTreeMap::new(),
            auth: DockerAuth::from_env(),
            stores: BTreeMap::new(),
        }
    }

    /// Shares `path` as the local `name` (`context`, `dockerfile`, …). Files are sent with
    /// uid/gid 0, as buildctl and buildx do, so builds do not depend on who owns the tree.
    pub fn with_local(mut self, name: impl Into<String>, path: impl Into<PathBuf>) -> Self {
        self.dirs.insert(
            name.into(),
            filesync::LocalDir {
                path: path.into(),
                reset_owner: true,
                only: None,
            },
        );
        self
    }

    /// Like [`with_local`](Self::with_local), but only `paths` (include patterns) are ever
    /// sent: a request for more, or for everything, gets `paths`.
    pub fn with_local_only(
        mut self,
        name: impl Into<String>,
        path: impl Into<PathBuf>,
        paths: Vec<String>,
    ) -> Self {
        self.dirs.insert(
            name.into(),
            filesync::LocalDir {
                path: path.into(),
                reset_owner: true,
                only: Some(paths),
            },
        );
        self
    }

    /// Like [`with_local`](Self::with_local), but sends the files' real uid/gid.
    pub fn with_local_keep_owner(
        mut self,
        name: impl Into<String>,
        path: impl Into<PathBuf>,
    ) -> Self {
        self.dirs.insert(
            name.into(),
            filesync::LocalDir {
                path: path.into(),
                reset_owner: false,
                only: None,
            },
        );
        self
    }

    /// Registers the sink for the next exporter: the n-th call serves
    /// `buildkit-attachable-exporter-id: n-1`, so call it in `SolveRequest.Exporters` order
    /// (for exporters without client output, such as `image`, register nothing and keep
    /// them after the ones that have it, or the indexes will not line up). Keep a clone
    /// to [`commit`](ExportSink::commit).
    pub fn with_exporter(mut self, sink: ExportSink) -> Self {
        self.exporters.push(sink);
        self
    }

    /// Offers the secret `id`.
    pub fn with_secret(mut self, id: impl Into<String>, source: SecretSource) -> Self {
        self.secrets.insert(id.into(), source);
        self
    }

    /// Serves the content store `store` under the id `id` (`buildkit-attachable-store-id`;
    /// buildctl uses [`local_store_id`] of the cache directory).
    pub fn with_content_store(mut self, id: impl Into<String>, store: LocalStore) -> Self {
        self.stores.insert(id.into(), store);
        self
    }

    /// Replaces the credential source.
    pub fn with_auth(mut self, auth: DockerAuth) -> Self {
        self.auth = auth;
        self
    }

    /// The method paths to advertise in `x-docker-expose-session-grpc-method`, sorted.
    /// FileSync and FileSend appear only when there is a local dir or an exporter, the
    /// `Content` methods only when there is a content store.
    pub fn methods(&self) -> Vec<String> {
        let mut m = vec![
            methods::HEALTH_CHECK,
            methods::HEALTH_WATCH,
            methods::AUTH_CREDENTIALS,
            methods::AUTH_FETCH_TOKEN,
            methods::AUTH_GET_TOKEN_AUTHORITY,
            methods::AUTH_VERIFY_TOKEN_AUTHORITY,
            methods::SECRETS_GET,
        ];
        if !self.dirs.is_empty() {
            m.push(methods::FILESYNC_DIFFCOPY);
        }
        if !self.exporters.is_empty() {
            m.push(methods::FILESEND_DIFFCOPY);
        }
        if !self.stores.is_empty() {
            m.extend(methods::CONTENT);
        }
        let mut m: Vec<String> = m.into_iter().map(String::from).collect();
        m.sort();
        m
    }

    /// Checks that every local dir exists and is a directory.
    pub fn check(&self) -> Result<(), SessionError> {
        for (name, dir) in &self.dirs {
            if !Path::new(&dir.path).is_dir() {
                return Err(SessionError::LocalDir {
                    name: name.clone(),
                    path: dir.path.clone(),
                });
            }
        }
        Ok(())
    }

    /// Serves the session over `io` (the byte pipe of `Control.Session`) until the
    /// connection closes. Dropping the future stops accepting; the connection itself ends
    /// when `io` does.
    pub async fn serve<IO>(self, io: IO) -> Result<(), SessionError>
    where
        IO: AsyncRead + AsyncWrite + Unpin + Send + 'static,
    {
        self.check()?;
        let (reporter, health) = tonic_health::server::health_reporter();
        reporter
            .set_service_status("", tonic_health::ServingStatus::Serving)
            .await;
        let health = health.max_decoding_message_size(MAX_MESSAGE);

        let file_sync = FileSyncServer::new(filesync::FileSyncService {
            dirs: Arc::new(self.dirs),
        })
        .max_decoding_message_size(MAX_MESSAGE)
        .max_encoding_message_size(MAX_MESSAGE);
        let file_send = export::FileSendService {
            sinks: Arc::new(self.exporters),
        };
        let auth = AuthServer::new(auth::AuthService { auth: self.auth })
            .max_decoding_message_size(MAX_MESSAGE);
        let secrets = SecretsServer::new(secrets::SecretsService {
            secrets: self.secrets,
        })
        .max_decoding_message_size(MAX_MESSAGE);
        let content = ContentServer::new(content::ContentService {
            stores: Arc::new(self.stores),
        })
        .max_decoding_message_size(MAX_MESSAGE)
        .max_encoding_message_size(MAX_MESSAGE);

        // One connection: the stream yields it, then ends once hyper drops it, which
        // makes `serve_with_incoming` return after the session is over.
        let (closed_tx, closed_rx) = tokio::sync::oneshot::channel::<()>();
        let conn = SessionIo {
            io,
            _closed: closed_tx,
        };
        let incoming = futures::stream::once(async move { Ok::<_, std::io::Error>(conn) }).chain(
            futures::stream::once(async move {
                let _ = closed_rx.await;
            })
            .filter_map(|()| async { None }),
        );

        tonic::transport::Server::builder()
            .add_service(health)
            .add_service(file_sync)
            .add_service(file_send)
            .add_service(auth)
            .add_service(secrets)
            .add_service(content)
            .serve_with_incoming(incoming)
            .await?;
        Ok(())
    }
}

use futures::StreamExt as _;

/// The session pipe, with a marker that tells [`Attachables::serve`] when hyper is done
/// with the connection.
struct SessionIo<IO> {
    io: IO,
    _closed: tokio::sync::oneshot::Sender<()>,
}

impl<IO> Connected for SessionIo<IO> {
    type ConnectInfo = ();
    fn connect_info(&self) -> Self::ConnectInfo {}
}

impl<IO: AsyncRead + Unpin> AsyncRead for SessionIo<IO> {
    fn poll_read(
        mut self: Pin<&mut Self>,
        cx: &mut Context<'_>,
        buf: &mut ReadBuf<'_>,
    ) -> Poll<std::io::Result<()>> {
        Pin::new(&mut self.io).poll_read(cx, buf)
    }
}

impl<IO: AsyncWrite + Unpin> AsyncWrite for SessionIo<IO> {
    fn poll_write(
        mut self: Pin<&mut Self>,
        cx: &mut Context<'_>,
        buf: &[u8],
    ) -> Poll<std::io::Result<usize>> {
        Pin::new(&mut self.io).poll_write(cx, buf)
    }

    fn poll_flush(mut self: Pin<&mut Self>, cx: &mut Context<'_>) -> Poll<std::io::Result<()>> {
        Pin::new(&mut self.io).poll_flush(cx)
    }

    fn poll_shutdown(mut self: Pin<&mut Self>, cx: &mut Context<'_>) -> Poll<std::io::Result<()>> {
        Pin::new(&mut self.io).poll_shutdown(cx)
    }

    fn poll_write_vectored(
        mut self: Pin<&mut Self>,
        cx: &mut Context<'_>,
        bufs: &[std::io::IoSlice<'_>],
    ) -> Poll<std::io::Result<usize>> {
        Pin::new(&mut self.io).poll_write_vectored(cx, bufs)
    }

    fn is_write_vectored(&self) -> bool {
        self.io.is_write_vectored()
    }
}
