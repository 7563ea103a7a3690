//! The Control API calls: `ListWorkers`, `Info`, `Session` (the session services the
//! daemon calls back, attached over `Control.Session` or dockerd's `/session`) and `Solve`
//! with its `Status` stream, progress and Ctrl-C.

use std::future::Future;
use std::pin::Pin;
use std::time::Duration;

use tokio::io::{AsyncReadExt, AsyncWriteExt, DuplexStream};
use tokio_stream::wrappers::ReceiverStream;
use tonic::metadata::{AsciiMetadataValue, MetadataMap};
use tonic::transport::Channel;

use super::build::SideFuture;
use super::{
    control_client, BuildError, BuildOptions, BuildOutput, Client, ClientError, Interrupt,
};
use crate::buildkit::output::{CacheEntry, Exporter};
use crate::buildkit::progress::Renderer;
use crate::buildkit::transport::Address;
use crate::proto::moby::buildkit::v1 as control;
use crate::proto::moby::buildkit::v1::types::{BuildkitVersion, WorkerRecord};

/// What a daemon reports about itself ([`Client::ping`]).
#[derive(Debug, Clone)]
pub struct DaemonInfo {
    /// `Control.Info` version, `None` when the daemon predates it (BuildKit < v0.11).
    /// Debian builds report `v0.0.0+unknown`: detect features by caps, never by this.
    pub version: Option<BuildkitVersion>,
    /// The workers, with labels and platforms.
    pub workers: Vec<WorkerRecord>,
}

impl Client {
    /// `Control.ListWorkers`.
    pub async fn list_workers(&self) -> Result<Vec<WorkerRecord>, ClientError> {
        let resp = self
            .control
            .clone()
            .list_workers(control::ListWorkersRequest::default())
            .await
            .map_err(|s| self.rpc_err("Control.ListWorkers", s))?;
        Ok(resp.into_inner().record)
    }

    /// `Control.Info`; `Ok(None)` when the daemon answers Unimplemented (BuildKit < v0.11,
    /// Docker 20.10–23).
    pub async fn info(&self) -> Result<Option<BuildkitVersion>, ClientError> {
        match self.control.clone().info(control::InfoRequest {}).await {
            Ok(r) => Ok(r.into_inner().buildkit_version),
            Err(s) if s.code() == tonic::Code::Unimplemented => Ok(None),
            Err(s) => Err(self.rpc_err("Control.Info", s)),
        }
    }

    /// Checks the daemon answers: workers and version.
    pub async fn ping(&self) -> Result<DaemonInfo, ClientError> {
        let workers = self.list_workers().await?;
        let version = self.info().await?;
        Ok(DaemonInfo { version, workers })
    }
}

// ---------------------------------------------------------------------------------------
// Session attaching

/// The session services a build offers the daemon. Implemented by
/// `crate::buildkit::session::Attachables`; this seam keeps the client independent of how
/// the services are built.
pub trait SessionHost: Send + 'static {
    /// The gRPC method paths to advertise (`/moby.filesync.v1.FileSync/DiffCopy`, …). The
    /// daemon calls only these.
    fn methods(&self) -> Vec<String>;

    /// Serves the session's gRPC server on `io` (the daemon is the HTTP/2 client) until
    /// the connection ends.
    fn serve(self: Box<Self>, io: crate::buildkit::transport::BoxedStream) -> SessionFuture;
}

/// Boxed error of a session server.
pub type SessionServeError = Box<dyn std::error::Error + Send + Sync>;

/// What [`SessionHost::serve`] returns.
pub type SessionFuture = Pin<Box<dyn Future<Output = Result<(), SessionServeError>> + Send>>;

impl SessionHost for crate::buildkit::session::Attachables {
    fn methods(&self) -> Vec<String> {
        crate::buildkit::session::Attachables::methods(self)
    }

    fn serve(self: Box<Self>, io: crate::buildkit::transport::BoxedStream) -> SessionFuture {
        Box::pin(async move {
            (*self)
                .serve(io)
                .await
                .map_err(|e| Box::new(e) as SessionServeError)
        })
    }
}

/// The buffer of the in-memory pipe between the session server and the Control stream.
const SESSION_PIPE_BUFFER: usize = 1 << 20;
/// The largest `BytesMessage` the pump sends (grpchijack uses 32 KiB reads as well).
const SESSION_CHUNK: usize = 32 << 10;

/// Opens `Control.Session` with the `X-Docker-Expose-Session-*` metadata and returns the
/// local end of a byte pipe whose other end is the daemon: what is written to it travels
/// as `BytesMessage`s to the daemon, and what the daemon sends can be read from it.
///
/// Two pump tasks do the copying; they end when either side closes. The returned handle
/// finishes when the session stream ends.
pub async fn open_session(
    channel: Channel,
    session_id: &str,
    shared_key: &str,
    methods: &[String],
) -> Result<
    (
        DuplexStream,
        tokio::task::JoinHandle<Result<(), tonic::Status>>,
    ),
    tonic::Status,
> {
    let (local, pump_end) = tokio::io::duplex(SESSION_PIPE_BUFFER);
    let (mut from_local, mut to_local) = tokio::io::split(pump_end);
    let (tx, rx) = tokio::sync::mpsc::channel::<control::BytesMessage>(32);

    // local → daemon
    tokio::spawn(async move {
        let mut buf = vec![0u8; SESSION_CHUNK];
        loop {
            match from_local.read(&mut buf).await {
                Ok(0) | Err(_) => break,
                Ok(n) => {
                    if tx
                        .send(control::BytesMessage {
                            data: buf[..n].to_vec(),
                        })
                        .await
                        .is_err()
                    {
                        break;
                    }
                }
            }
        }
    });

    let mut req = tonic::Request::new(ReceiverStream::new(rx));
    session_metadata(req.metadata_mut(), session_id, shared_key, methods)?;
    let mut inbound = control_client(channel).session(req).await?.into_inner();

    // daemon → local
    let handle = tokio::spawn(async move {
        let res = loop {
            match inbound.message().await {
                Ok(Some(m)) => {
                    if to_local.write_all(&m.data).await.is_err() {
                        break Ok(());
                    }
                }
                Ok(None) => break Ok(()),
                Err(s) => break Err(s),
            }
        };
        let _ = to_local.shutdown().await;
        res
    });
    Ok((local, handle))
}

/// Fills the session-attach metadata (`session/grpchijack/dial.go`).
pub fn session_metadata(
    md: &mut MetadataMap,
    session_id: &str,
    shared_key: &str,
    methods: &[String],
) -> Result<(), tonic::Status> {
    let v = |s: &str| {
        AsciiMetadataValue::try_from(s)
            .map_err(|_| tonic::Status::invalid_argument(format!("non-ASCII session value `{s}`")))
    };
    md.insert("x-docker-expose-session-uuid", v(session_id)?);
    md.insert("x-docker-expose-session-name", v("torchkit")?);
    md.insert("x-docker-expose-session-sharedkey", v(shared_key)?);
    for m in methods {
        md.append("x-docker-expose-session-grpc-method", v(m)?);
    }
    Ok(())
}

impl Client {
    /// One `Control.Solve` of `build_ref` with its `Status` stream rendered, the session
    /// attached and Ctrl-C watched; `side` (the build function) runs beside it.
    pub(super) async fn solve_with<T: Send + 'static>(
        &self,
        (build_ref, session_id): (String, String),
        mut opts: BuildOptions,
        frontend: &str,
        side: Option<SideFuture<T>>,
    ) -> Result<BuildOutput<Option<T>>, BuildError> {
        let mut renderer = Renderer::stderr(opts.progress);

        // Session: attach first so the daemon finds it when the solve needs it.
        let mut session_tasks = Vec::new();
        let mut session_failed: Option<tokio::sync::oneshot::Receiver<String>> = None;
        let session_used = if let Some(host) = opts.session.take() {
            let methods = host.methods();
            let (fail_tx, fail_rx) = tokio::sync::oneshot::channel();
            session_failed = Some(fail_rx);
            // On dockerd the session gets its own connection (`/session`), as buildx's
            // docker driver does; elsewhere, or if that is refused, it is tunnelled through
            // `Control.Session`.
            let hijacked = match self.address() {
                Address::Docker(_) => crate::buildkit::transport::docker_session(
                    self.address(),
                    &session_id,
                    &opts.shared_key,
                    &methods,
                )
                .await
                .ok(),
                _ => None,
            };
            if let Some(io) = hijacked {
                session_tasks.push(tokio::spawn(async move {
                    if let Err(e) = host.serve(io).await {
                        let _ = fail_tx.send(e.to_string());
                    }
                }));
            } else {
                let (io, pump) =
                    open_session(self.channel(), &session_id, &opts.shared_key, &methods)
                        .await
                        .map_err(|s| BuildError::Session(s.message().to_string()))?;
                session_tasks.push(tokio::spawn(async move {
                    if let Err(e) = host.serve(Box::pin(io)).await {
                        let _ = fail_tx.send(e.to_string());
                    }
                }));
                session_tasks.push(tokio::spawn(async move {
                    let _ = pump.await;
                }));
            }
            true
        } else {
            false
        };

        let first = opts.exporters.first();
        let req = control::SolveRequest {
            r#ref: build_ref.clone(),
            definition: None,
            exporter_deprecated: first.map(|e| e.kind.clone()).unwrap_or_default(),
            exporter_attrs_deprecated: first.map(|e| e.attrs.clone()).unwrap_or_default(),
            session: if session_used {
                session_id.clone()
            } else {
                String::new()
            },
            frontend: frontend.to_string(),
            frontend_attrs: opts.frontend_attrs.clone(),
            cache: Some(control::CacheOptions {
                exports: opts
                    .cache_exports
                    .iter()
                    .map(CacheEntry::to_proto)
                    .collect(),
                imports: opts
                    .cache_imports
                    .iter()
                    .map(CacheEntry::to_proto)
                    .collect(),
            }),
            entitlements: opts.entitlements.clone(),
            exporters: opts.exporters.iter().map(Exporter::to_proto).collect(),
            ..Default::default()
        };

        // Status → progress, concurrently.
        let (status_tx, mut status_rx) = tokio::sync::mpsc::unbounded_channel();
        let mut status_client = self.control.clone();
        let status_ref = build_ref.clone();
        let status_task = tokio::spawn(async move {
            if let Ok(resp) = status_client
                .status(control::StatusRequest { r#ref: status_ref })
                .await
            {
                let mut s = resp.into_inner();
                while let Ok(Some(m)) = s.message().await {
                    if status_tx.send(m).is_err() {
                        break;
                    }
                }
            }
        });

        let mut control = self.control.clone();
        let solve = control.solve(req);
        tokio::pin!(solve);
        let mut side = side;
        let mut side_result: Option<Result<T, BuildError>> = None;
        let cancel_on_ctrl_c = opts.cancel_on_ctrl_c;
        let ctrl_c = async move {
            if cancel_on_ctrl_c {
                Interrupt::wait().await
            } else {
                std::future::pending::<Interrupt>().await
            }
        };
        tokio::pin!(ctrl_c);

        let solve_result = loop {
            tokio::select! {
                biased;
                interrupt = &mut ctrl_c => {
                    // Dropping the call resets the HTTP/2 stream; the daemon cancels the job.
                    drain_status(&mut status_rx, &mut renderer, Duration::from_millis(300)).await;
                    renderer.note(&format!("build cancelled ({interrupt}); the daemon stops the solve"));
                    renderer.finish();
                    status_task.abort();
                    abort_all(&session_tasks);
                    return Err(BuildError::Cancelled(interrupt));
                }
                Some(msg) = status_rx.recv() => renderer.handle(&msg),
                r = async { side.as_mut().expect("guarded").await }, if side.is_some() && side_result.is_none() => {
                    side_result = Some(r);
                    side = None;
                }
                msg = async { session_failed.as_mut().expect("guarded").await }, if session_failed.is_some() => {
                    session_failed = None;
                    if let Ok(msg) = msg {
                        renderer.note(&format!("session error: {msg}"));
                    }
                }
                r = &mut solve => break r,
            }
        };

        // Let the progress stream finish (it ends with the job).
        drain_status(&mut status_rx, &mut renderer, Duration::from_secs(3)).await;
        renderer.finish();
        status_task.abort();

        let solved = match solve_result {
            Ok(resp) => resp.into_inner(),
            Err(status) => {
                abort_all(&session_tasks);
                // The function's own error explains more than "failed to solve".
                let err = match side_result {
                    Some(Err(e)) => e,
                    _ => BuildError::Solve {
                        message: status.message().to_string(),
                        code: status.code(),
                    },
                };
                // Name the vertex that failed, as progress showed it.
                return Err(match failed_vertex(renderer.state()) {
                    Some(step) => BuildError::Step {
                        step,
                        error: Box::new(err),
                    },
                    None => err,
                });
            }
        };
        // The solve only finishes after Return, so the function is normally done; wait
        // briefly for it otherwise.
        let value = match (side_result, side) {
            (Some(r), _) => Some(r?),
            (None, Some(fut)) => Some(
                tokio::time::timeout(Duration::from_secs(30), fut)
                    .await
                    .map_err(|_| {
                        BuildError::Session(
                            "the build function did not finish after the solve".into(),
                        )
                    })??,
            ),
            (None, None) => None,
        };
        abort_all(&session_tasks);
        for sink in std::mem::take(&mut opts.export_sinks) {
            sink.commit()?;
        }
        Ok(BuildOutput {
            build_ref,
            exporter_response: solved.exporter_response,
            value,
        })
    }
}

/// The first failed vertex (by `#N`) whose error is its own, not the cancellation that
/// follows another vertex's failure.
fn failed_vertex(state: &crate::buildkit::progress::ProgressState) -> Option<String> {
    state
        .failed()
        .into_iter()
        .filter(|(_, name, error)| !name.is_empty() && !error.contains("context canceled"))
        .min_by_key(|(index, _, _)| index.unwrap_or(usize::MAX))
        .map(|(_, name, _)| name)
}

fn abort_all(tasks: &[tokio::task::JoinHandle<()>]) {
    for t in tasks {
        t.abort();
    }
}

async fn drain_status(
    rx: &mut tokio::sync::mpsc::UnboundedReceiver<control::StatusResponse>,
    renderer: &mut Renderer,
    limit: Duration,
) {
    let deadline = tokio::time::Instant::now() + limit;
    while let Ok(Some(m)) = tokio::time::timeout_at(deadline, rx.recv()).await {
        renderer.handle(&m);
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn session_metadata_lists_every_method() {
        let mut md = MetadataMap::new();
        session_metadata(
            &mut md,
            "sid",
            "key",
            &[
                "/grpc.health.v1.Health/Check".to_string(),
                "/moby.filesync.v1.FileSend/DiffCopy".to_string(),
            ],
        )
        .unwrap();
        assert_eq!(md.get("x-docker-expose-session-uuid").unwrap(), "sid");
        assert_eq!(md.get("x-docker-expose-session-sharedkey").unwrap(), "key");
        let methods: Vec<_> = md
            .get_all("x-docker-expose-session-grpc-method")
            .iter()
            .map(|v| v.to_str().unwrap().to_string())
            .collect();
        assert_eq!(methods.len(), 2);
    }

    #[test]
    fn the_failing_step_is_the_first_error_that_is_not_a_cancellation() {
        use prost_types::Timestamp;
        let v = |digest: &str, name: &str, error: &str| control::Vertex {
            digest: digest.into(),
            name: name.into(),
            started: Some(Timestamp::default()),
            completed: Some(Timestamp::default()),
            error: error.into(),
            ..Default::default()
        };
        let mut state = crate::buildkit::progress::ProgressState::new();
        state.apply(&control::StatusResponse {
            vertexes: vec![
                v("sha256:a", "[torchkit 1/3] base", ""),
                v(
                    "sha256:b",
                    "[torchkit 2/3] pip: pip install nope",
                    "exit code: 1",
                ),
                v("sha256:c", "[torchkit] context", "context canceled"),
            ],
            ..Default::default()
        });
        assert_eq!(
            failed_vertex(&state).as_deref(),
            Some("[torchkit 2/3] pip: pip install nope")
        );
        let e = BuildError::Step {
            step: "s".into(),
            error: Box::new(BuildError::Cancelled(Interrupt::CtrlC)),
        };
        assert_eq!(e.exit_code(), 130);
        let e = BuildError::Cancelled(Interrupt::Terminate);
        assert_eq!(e.exit_code(), 143);
        assert_eq!(e.to_string(), "build cancelled (SIGTERM received)");
        assert_eq!(BuildError::Cancelled(Interrupt::Hangup).exit_code(), 129);
    }
}
