//! `moby.filesync.v1.FileSend/DiffCopy`: exporter output sent to the client.
//!
//! The daemon picks the exporter with the metadata `buildkit-attachable-exporter-id`
//! (index into `SolveRequest.Exporters`; absent on daemons before v0.13, meaning 0).
//! - `tar`, `oci`, `docker`: a stream of `BytesMessage` chunks, ended by the daemon's
//!   half-close; it then waits for our end of stream (`session/filesync/filesync.go`
//!   `CopyFileWriter` / `writeTargetFile`).
//! - `local`: fsutil `Packet`s with the client as the **receiver** (`fsutil` `receive.go`):
//!   we take the `STAT`s, ask for every regular file with `REQ`, write the `DATA`, send
//!   `FIN` when everything is on disk, and drain until the daemon echoes `FIN`. Ownership
//!   is not restored (files belong to the user running torchkit), as in buildctl.
//!
//! The method is declared with `BytesMessage` upstream, so generated code cannot serve the
//! `local` case: [`FileSendService`] reads the exporter id from the request headers and
//! picks the prost codec (`BytesMessage` or `Packet`) per call.
//!
//! Output is atomic: data goes to a temporary file or directory next to `dest`, and only
//! [`ExportSink::commit`], called after the Solve succeeded, moves it into place. On a
//! failed transfer, [`ExportSink::abort`], or when the last handle is dropped, the
//! temporary data is removed.

use std::collections::HashMap;
use std::convert::Infallible;
use std::io::Write;
use std::os::unix::fs::PermissionsExt;
use std::path::{Path, PathBuf};
use std::pin::Pin;
use std::sync::{Arc, Mutex};
use std::time::{Duration, SystemTime};

use futures::Stream;
use tokio::io::AsyncWriteExt;
use tokio::sync::mpsc;
use tokio_stream::StreamExt;
use tonic::body::Body;
use tonic::codegen::{http, Body as HttpBody, BoxFuture, Service, StdError};
use tonic::server::{Grpc, NamedService, StreamingService};
use tonic::{Request, Response, Status, Streaming};
use tonic_prost::ProstCodec;

use crate::error::Hint;
use crate::proto::fsutil::types::{packet::PacketType, Packet, Stat};
use crate::proto::moby::filesync::v1::BytesMessage;

use super::patterns::clean_path;
use super::walk::{go_mode, path_key};

/// Metadata key naming the exporter (`session/filesync/filesync.go` `keyExporterID`).
pub const EXPORTER_ID_KEY: &str = "buildkit-attachable-exporter-id";
/// The method path served here.
pub(crate) const DIFF_COPY_PATH: &str = "/moby.filesync.v1.FileSend/DiffCopy";
const MAX_MESSAGE: usize = 16 << 20;
/// Regular files requested at once from the daemon.
const FILES_IN_FLIGHT: usize = 64;

/// Why an export could not be prepared, received or committed.
#[derive(Debug, thiserror::Error)]
pub enum ExportError {
    /// The exporter type has no client-side output.
    #[error("exporter type {0:?} does not send output to the client")]
    Unsupported(String),
    /// The directory that should hold `dest` does not exist.
    #[error("cannot write the export next to {dest}: {source}")]
    Prepare {
        /// The requested destination.
        dest: PathBuf,
        /// The IO error.
        source: std::io::Error,
    },
    /// `local` output cannot go to stdout.
    #[error("a directory export cannot be written to stdout (dest \"-\")")]
    DirectoryToStdout,
    /// The daemon never sent this exporter's output.
    #[error("the daemon sent no output for the export to {0}")]
    NotReceived(String),
    /// The transfer is still running.
    #[error("the export to {0} is still being received")]
    Incomplete(String),
    /// The transfer failed; the temporary data was removed.
    #[error("receiving the export to {dest} failed: {message}")]
    Failed {
        /// The destination.
        dest: String,
        /// What went wrong.
        message: String,
    },
    /// The sink was already committed or aborted.
    #[error("the export to {0} was already committed or aborted")]
    Consumed(String),
    /// A directory export would replace a non-empty directory.
    #[error("{0} exists and is not an empty directory")]
    DestNotEmpty(PathBuf),
    /// Moving the output into place failed.
    #[error("cannot move the export into {dest}: {source}")]
    Commit {
        /// The destination.
        dest: PathBuf,
        /// The IO error.
        source: std::io::Error,
    },
}

/// The fix for a destination whose directory cannot take the export: it is missing, or
/// this user may not write there, or the disk is full.
fn prepare_hint(dest: &std::path::Path, kind: std::io::ErrorKind) -> String {
    use std::io::ErrorKind;
    let dir = parent_dir(dest).display().to_string();
    match kind {
        ErrorKind::NotFound => format!("create {dir} first"),
        ErrorKind::PermissionDenied | ErrorKind::ReadOnlyFilesystem => {
            format!("{dir} is not writable by you: choose a dest in a directory you can write")
        }
        ErrorKind::StorageFull => format!("free space on the disk that holds {dir}"),
        _ => format!("check that {dir} is a directory you can write"),
    }
}

impl Hint for ExportError {
    fn hint(&self) -> Option<String> {
        match self {
            ExportError::Unsupported(_) => Some(
                "use --output type=tar|oci|docker|local,dest=<path> for client-side output".into(),
            ),
            ExportError::Prepare { dest, source } => Some(prepare_hint(dest, source.kind())),
            ExportError::DirectoryToStdout => {
                Some("use type=tar,dest=- to stream an archive to stdout".into())
            }
            ExportError::DestNotEmpty(p) => Some(format!(
                "remove {} or choose a new directory; torchkit never merges into existing output",
                p.display()
            )),
            ExportError::NotReceived(_) => Some(
                "list the exporter in the Solve request and enable the FileSend session method"
                    .into(),
            ),
            _ => None,
        }
    }
}

/// What an exporter sends.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum ExportFormat {
    /// One byte stream (`tar`, `oci`, `docker`).
    Archive,
    /// A directory tree (`local`).
    Directory,
}

#[derive(Debug, Clone, PartialEq, Eq)]
enum Dest {
    Stdout,
    Path(PathBuf),
}

impl std::fmt::Display for Dest {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        match self {
            Dest::Stdout => f.write_str("stdout"),
            Dest::Path(p) => write!(f, "{}", p.display()),
        }
    }
}

#[derive(Debug)]
enum Temp {
    File(tempfile::NamedTempFile),
    Dir(tempfile::TempDir),
}

impl Temp {
    fn path(&self) -> &Path {
        match self {
            Temp::File(f) => f.path(),
            Temp::Dir(d) => d.path(),
        }
    }
}

#[derive(Debug)]
enum State {
    Ready(Temp),
    Receiving(Temp),
    Done(Temp),
    Failed(String),
    Consumed,
}

#[derive(Debug)]
struct Inner {
    format: ExportFormat,
    dest: Dest,
    state: Mutex<State>,
}

/// The client side of one exporter: register a clone with
/// [`Attachables::exporter`](super::Attachables::exporter) in the same order as the Solve's
/// exporters list, and call [`commit`](Self::commit) once the Solve succeeded.
#[derive(Debug, Clone)]
pub struct ExportSink {
    inner: Arc<Inner>,
}

/// The directory a file path lives in (`.` for a bare name): where an export's temporary
/// file goes, and what a message about a destination names.
pub fn parent_dir(dest: &Path) -> PathBuf {
    match dest.parent() {
        Some(p) if !p.as_os_str().is_empty() => p.to_path_buf(),
        _ => PathBuf::from("."),
    }
}

impl ExportSink {
    /// A sink for the exporter `kind` (`tar`, `oci`, `docker` or `local`) writing to
    /// `dest` (`-` = stdout for archives).
    pub fn for_exporter(kind: &str, dest: impl AsRef<Path>) -> Result<Self, ExportError> {
        match kind {
            "tar" | "oci" | "docker" => Self::archive(dest),
            "local" => Self::directory(dest),
            other => Err(ExportError::Unsupported(other.to_string())),
        }
    }

    /// An archive written to `dest`, or to stdout when `dest` is `-` (buffered in a
    /// temporary file until [`commit`](Self::commit)).
    pub fn archive(dest: impl AsRef<Path>) -> Result<Self, ExportError> {
        let dest = dest.as_ref();
        let (dest, dir) = if dest == Path::new("-") {
            (Dest::Stdout, std::env::temp_dir())
        } else {
            (Dest::Path(dest.to_path_buf()), parent_dir(dest))
        };
        let file = tempfile::Builder::new()
            .prefix(".torchkit-export-")
            .tempfile_in(&dir)
            .map_err(|source| ExportError::Prepare {
                dest: dir.clone(),
                source,
            })?;
        Ok(Self::new(ExportFormat::Archive, dest, Temp::File(file)))
    }

    /// A directory tree written to `dest`, which must not exist or be an empty directory.
    pub fn directory(dest: impl AsRef<Path>) -> Result<Self, ExportError> {
        let dest = dest.as_ref();
        if dest == Path::new("-") {
            return Err(ExportError::DirectoryToStdout);
        }
        let dir = parent_dir(dest);
        let tmp = tempfile::Builder::new()
            .prefix(".torchkit-export-")
            .tempdir_in(&dir)
            .map_err(|source| ExportError::Prepare {
                dest: dest.to_path_buf(),
                source,
            })?;
        Ok(Self::new(
            ExportFormat::Directory,
            Dest::Path(dest.to_path_buf()),
            Temp::Dir(tmp),
        ))
    }

    fn new(format: ExportFormat, dest: Dest, temp: Temp) -> Self {
        ExportSink {
            inner: Arc::new(Inner {
                format,
                dest,
                state: Mutex::new(State::Ready(temp)),
            }),
        }
    }

    /// What this sink receives.
    pub fn format(&self) -> ExportFormat {
        self.inner.format
    }

    /// Where the output goes; `None` for stdout.
    pub fn dest(&self) -> Option<&Path> {
        match &self.inner.dest {
            Dest::Stdout => None,
            Dest::Path(p) => Some(p),
        }
    }

    /// Whether the daemon's transfer finished successfully (so `commit` can succeed).
    pub fn is_received(&self) -> bool {
        matches!(*self.lock(), State::Done(_))
    }

    fn lock(&self) -> std::sync::MutexGuard<'_, State> {
        self.inner.state.lock().unwrap_or_else(|e| e.into_inner())
    }

    /// Moves the received output to `dest` (a rename in the same directory; for stdout, a
    /// copy of the buffered archive). Call only after the Solve succeeded.
    pub fn commit(self) -> Result<(), ExportError> {
        let dest_name = self.inner.dest.to_string();
        let state = std::mem::replace(&mut *self.lock(), State::Consumed);
        let temp = match state {
            State::Done(t) => t,
            State::Ready(_) => return Err(ExportError::NotReceived(dest_name)),
            State::Receiving(t) => {
                *self.lock() = State::Receiving(t);
                return Err(ExportError::Incomplete(dest_name));
            }
            State::Failed(message) => {
                return Err(ExportError::Failed {
                    dest: dest_name,
                    message,
                })
            }
            State::Consumed => return Err(ExportError::Consumed(dest_name)),
        };
        match (&self.inner.dest, temp) {
            (Dest::Stdout, Temp::File(f)) => {
                let commit_err = |source| ExportError::Commit {
                    dest: PathBuf::from("-"),
                    source,
                };
                let mut src = f.reopen().map_err(commit_err)?;
                let stdout = std::io::stdout();
                let mut out = stdout.lock();
                std::io::copy(&mut src, &mut out).map_err(commit_err)?;
                out.flush().map_err(commit_err)
            }
            (Dest::Path(dest), Temp::File(f)) => {
                let commit_err = |source| ExportError::Commit {
                    dest: dest.clone(),
                    source,
                };
                std::fs::set_permissions(f.path(), std::fs::Permissions::from_mode(0o644))
                    .map_err(commit_err)?;
                f.persist(dest).map_err(|e| commit_err(e.error))?;
                Ok(())
            }
            (Dest::Path(dest), Temp::Dir(d)) => {
                let commit_err = |source| ExportError::Commit {
                    dest: dest.clone(),
                    source,
                };
                match std::fs::symlink_metadata(dest) {
                    Ok(m) if m.is_dir() => {
                        let empty = std::fs::read_dir(dest)
                            .map_err(commit_err)?
                            .next()
                            .is_none();
                        if !empty {
                            return Err(ExportError::DestNotEmpty(dest.clone()));
                        }
                    }
                    Ok(_) => return Err(ExportError::DestNotEmpty(dest.clone())),
                    Err(e) if e.kind() == std::io::ErrorKind::NotFound => {}
                    Err(e) => return Err(commit_err(e)),
                }
                std::fs::set_permissions(d.path(), std::fs::Permissions::from_mode(0o755))
                    .map_err(commit_err)?;
                // rename(2) replaces an empty directory atomically.
                std::fs::rename(d.path(), dest).map_err(commit_err)?;
                let _ = d.keep();
                Ok(())
            }
            (Dest::Stdout, Temp::Dir(_)) => Err(ExportError::DirectoryToStdout),
        }
    }

    /// Drops the received (or partly received) output now.
    pub fn abort(self) {
        *self.lock() = State::Consumed;
    }

    /// Starts the one transfer this sink accepts; returns the temporary target.
    fn begin(&self) -> Result<PathBuf, Status> {
        let mut st = self.lock();
        match std::mem::replace(&mut *st, State::Consumed) {
            State::Ready(t) => {
                let p = t.path().to_path_buf();
                *st = State::Receiving(t);
                Ok(p)
            }
            other => {
                *st = other;
                Err(Status::failed_precondition(format!(
                    "exporter output for {} was already sent in this session, or the export was aborted",
                    self.inner.dest
                )))
            }
        }
    }

    /// Ends the transfer. After an `abort` meanwhile, the state is `Consumed` and the
    /// temporary data is already gone.
    fn finish(&self, result: &Result<(), Status>) {
        let mut st = self.lock();
        if let State::Receiving(t) = std::mem::replace(&mut *st, State::Consumed) {
            *st = match result {
                Ok(()) => State::Done(t),
                Err(status) => State::Failed(status.message().to_string()),
            };
        }
    }
}

fn internal(what: &str, path: &Path, e: std::io::Error) -> Status {
    Status::internal(format!("{what} {}: {e}", path.display()))
}

fn system_time(ns: i64) -> SystemTime {
    if ns >= 0 {
        SystemTime::UNIX_EPOCH + Duration::from_nanos(ns as u64)
    } else {
        SystemTime::UNIX_EPOCH - Duration::from_nanos(ns.unsigned_abs())
    }
}

/// The FileSend service over the sinks, in Solve exporter order.
#[derive(Debug, Clone, Default)]
pub(crate) struct FileSendService {
    pub(crate) sinks: Arc<Vec<ExportSink>>,
}

impl NamedService for FileSendService {
    const NAME: &'static str = "moby.filesync.v1.FileSend";
}

type BoxStream<T> = Pin<Box<dyn Stream<Item = Result<T, Status>> + Send>>;

impl<B> Service<http::Request<B>> for FileSendService
where
    B: HttpBody + Send + 'static,
    B::Error: Into<StdError> + Send + 'static,
{
    type Response = http::Response<Body>;
    type Error = Infallible;
    type Future = BoxFuture<Self::Response, Self::Error>;

    fn poll_ready(
        &mut self,
        _cx: &mut std::task::Context<'_>,
    ) -> std::task::Poll<Result<(), Infallible>> {
        std::task::Poll::Ready(Ok(()))
    }

    fn call(&mut self, req: http::Request<B>) -> Self::Future {
        if req.uri().path() != DIFF_COPY_PATH {
            let status = Status::unimplemented(format!("{} is not served", req.uri().path()));
            return Box::pin(async move { Ok(status.into_http()) });
        }
        let id = req
            .headers()
            .get(EXPORTER_ID_KEY)
            .and_then(|v| v.to_str().ok())
            .map(str::to_string);
        let index = match id.as_deref().map(str::parse::<usize>) {
            None => Ok(0),
            Some(Ok(i)) => Ok(i),
            Some(Err(_)) => Err(Status::invalid_argument(format!(
                "invalid {EXPORTER_ID_KEY} {id:?}"
            ))),
        };
        let sink = index.and_then(|i| {
            self.sinks.get(i).cloned().ok_or_else(|| {
                Status::not_found(format!(
                    "no client-side output registered for exporter {i} ({} registered)",
                    self.sinks.len()
                ))
            })
        });
        let sink = match sink {
            Ok(s) => s,
            Err(status) => return Box::pin(async move { Ok(status.into_http()) }),
        };
        match sink.format() {
            ExportFormat::Archive => Box::pin(async move {
                let mut grpc = Grpc::new(ProstCodec::<BytesMessage, BytesMessage>::default())
                    .apply_max_message_size_config(Some(MAX_MESSAGE), Some(MAX_MESSAGE));
                Ok(grpc.streaming(ArchiveSvc(sink), req).await)
            }),
            ExportFormat::Directory => Box::pin(async move {
                let mut grpc = Grpc::new(ProstCodec::<Packet, Packet>::default())
                    .apply_max_message_size_config(Some(MAX_MESSAGE), Some(MAX_MESSAGE));
                Ok(grpc.streaming(DirectorySvc(sink), req).await)
            }),
        }
    }
}

struct ArchiveSvc(ExportSink);

impl StreamingService<BytesMessage> for ArchiveSvc {
    type Response = BytesMessage;
    type ResponseStream = BoxStream<BytesMessage>;
    type Future = BoxFuture<Response<Self::ResponseStream>, Status>;

    fn call(&mut self, request: Request<Streaming<BytesMessage>>) -> Self::Future {
        let sink = self.0.clone();
        Box::pin(async move {
            let path = sink.begin()?;
            let result = receive_archive(&path, request.into_inner()).await;
            sink.finish(&result);
            result?;
            Ok(Response::new(
                Box::pin(futures::stream::empty()) as BoxStream<BytesMessage>
            ))
        })
    }
}

async fn receive_archive(path: &Path, mut inbound: Streaming<BytesMessage>) -> Result<(), Status> {
    let mut f = tokio::fs::OpenOptions::new()
        .write(true)
        .truncate(true)
        .open(path)
        .await
        .map_err(|e| internal("open", path, e))?;
    while let Some(msg) = inbound.next().await {
        let msg = msg?;
        f.write_all(&msg.data)
            .await
            .map_err(|e| internal("write", path, e))?;
    }
    f.flush().await.map_err(|e| internal("flush", path, e))?;
    f.sync_all().await.map_err(|e| internal("sync", path, e))?;
    Ok(())
}

struct DirectorySvc(ExportSink);

impl StreamingService<Packet> for DirectorySvc {
    type Response = Packet;
    type ResponseStream = BoxStream<Packet>;
    type Future = BoxFuture<Response<Self::ResponseStream>, Status>;

    fn call(&mut self, request: Request<Streaming<Packet>>) -> Self::Future {
        let sink = self.0.clone();
        Box::pin(async move {
            let root = sink.begin()?;
            let (tx, rx) = mpsc::unbounded_channel();
            let inbound = request.into_inner();
            tokio::spawn(async move {
                let result = receive_dir(root, inbound, tx.clone()).await;
                sink.finish(&result);
                if let Err(status) = result {
                    let _ = tx.send(Ok(Packet {
                        r#type: PacketType::PacketErr as i32,
                        data: status.message().as_bytes().to_vec(),
                        ..Default::default()
                    }));
                    let _ = tx.send(Err(status));
                }
            });
            Ok(Response::new(
                Box::pin(tokio_stream::wrappers::UnboundedReceiverStream::new(rx))
                    as BoxStream<Packet>,
            ))
        })
    }
}

/// Applies the daemon's STATs under `root`, validating order and paths the way fsutil's
/// receiver does (`validator.go`), so no entry can escape the temporary directory.
struct DirWriter {
    root: PathBuf,
    last_key: Option<Vec<u8>>,
    /// Directories created, in order, with their stat (modes and times are set at the end).
    dirs: Vec<Stat>,
    dir_set: std::collections::HashSet<String>,
    /// Regular files created, by path (hard-link targets).
    regular: std::collections::HashSet<String>,
}

impl DirWriter {
    fn check_path(&self, p: &str) -> Result<(), Status> {
        let bad = |why: &str| {
            Err(Status::invalid_argument(format!(
                "invalid path {p:?} from sender: {why}"
            )))
        };
        if p.is_empty() || p == "." || clean_path(p) != p || p.starts_with('/') {
            return bad("not a clean relative path");
        }
        if p == ".." || p.starts_with("../") {
            return bad("outside the destination");
        }
        Ok(())
    }

    fn add(&mut self, stat: Stat) -> Result<Option<PathBuf>, Status> {
        let p = stat.path.clone();
        self.check_path(&p)?;
        let key = path_key(&p);
        if self.last_key.as_ref().is_some_and(|last| *last >= key) {
            return Err(Status::invalid_argument(format!(
                "invalid file order from sender at {p:?}"
            )));
        }
        self.last_key = Some(key);
        if let Some((parent, _)) = p.rsplit_once('/') {
            if !self.dir_set.contains(parent) {
                return Err(Status::invalid_argument(format!(
                    "{p:?} sent before its parent directory"
                )));
            }
        }
        let target = self.root.join(&p);
        let mode = stat.mode;
        if mode & go_mode::DIR != 0 {
            std::fs::create_dir(&target).map_err(|e| internal("mkdir", &target, e))?;
            self.dir_set.insert(p);
            self.dirs.push(stat);
            Ok(None)
        } else if mode & go_mode::SYMLINK != 0 {
            std::os::unix::fs::symlink(&stat.linkname, &target)
                .map_err(|e| internal("symlink", &target, e))?;
            Ok(None)
        } else if go_mode::is_regular(mode) {
            if !stat.linkname.is_empty() {
                if !self.regular.contains(&stat.linkname) {
                    return Err(Status::invalid_argument(format!(
                        "hard link {p:?} points to {:?}, which is not an earlier regular file",
                        stat.linkname
                    )));
                }
                let src = self.root.join(&stat.linkname);
                std::fs::hard_link(&src, &target).map_err(|e| internal("link", &target, e))?;
                return Ok(None);
            }
            std::fs::File::create(&target).map_err(|e| internal("create", &target, e))?;
            self.regular.insert(p);
            Ok(Some(target))
        } else {
            // Devices, pipes and sockets need privileges (mknod); buildctl run as a user
            // fails on them too. They are skipped.
            Ok(None)
        }
    }

    /// Directory modes and times, deepest first, once all contents are written.
    fn finish_dirs(&self) -> Result<(), Status> {
        for stat in self.dirs.iter().rev() {
            let target = self.root.join(&stat.path);
            if let Ok(f) = std::fs::File::open(&target) {
                let _ = f.set_modified(system_time(stat.mod_time));
            }
            std::fs::set_permissions(
                &target,
                std::fs::Permissions::from_mode(go_mode::to_unix_perm(stat.mode)),
            )
            .map_err(|e| internal("chmod", &target, e))?;
        }
        Ok(())
    }
}

struct OpenFile {
    file: tokio::fs::File,
    path: PathBuf,
    mode: u32,
    mod_time: i64,
}

async fn close_file(f: OpenFile) -> Result<(), Status> {
    let OpenFile {
        mut file,
        path,
        mode,
        mod_time,
    } = f;
    file.flush()
        .await
        .map_err(|e| internal("flush", &path, e))?;
    let std_file = file.into_std().await;
    std_file
        .set_modified(system_time(mod_time))
        .map_err(|e| internal("set mtime", &path, e))?;
    std_file
        .set_permissions(std::fs::Permissions::from_mode(go_mode::to_unix_perm(mode)))
        .map_err(|e| internal("chmod", &path, e))?;
    Ok(())
}

async fn receive_dir(
    root: PathBuf,
    mut inbound: Streaming<Packet>,
    tx: mpsc::UnboundedSender<Result<Packet, Status>>,
) -> Result<(), Status> {
    let mut w = DirWriter {
        root,
        last_key: None,
        dirs: Vec::new(),
        dir_set: Default::default(),
        regular: Default::default(),
    };
    let mut index: u32 = 0;
    let mut stats_done = false;
    let mut queue: std::collections::VecDeque<(u32, PathBuf, Stat)> = Default::default();
    let mut open: HashMap<u32, OpenFile> = HashMap::new();
    let mut fin_sent = false;
    let send = |p: Packet| {
        tx.send(Ok(p))
            .map_err(|_| Status::cancelled("export stream closed"))
    };
    loop {
        while stats_done && open.len() < FILES_IN_FLIGHT {
            let Some((id, path, stat)) = queue.pop_front() else {
                break;
            };
            let file = tokio::fs::OpenOptions::new()
                .write(true)
                .open(&path)
                .await
                .map_err(|e| internal("open", &path, e))?;
            open.insert(
                id,
                OpenFile {
                    file,
                    path,
                    mode: stat.mode,
                    mod_time: stat.mod_time,
                },
            );
            send(Packet {
                r#type: PacketType::PacketReq as i32,
                id,
                ..Default::default()
            })?;
        }
        if stats_done && queue.is_empty() && open.is_empty() && !fin_sent {
            w.finish_dirs()?;
            send(Packet {
                r#type: PacketType::PacketFin as i32,
                ..Default::default()
            })?;
            fin_sent = true;
        }
        let Some(msg) = inbound.next().await else {
            return if fin_sent {
                Ok(())
            } else {
                Err(Status::aborted(
                    "the daemon closed the local export before sending every file",
                ))
            };
        };
        let p = msg?;
        match PacketType::try_from(p.r#type) {
            Ok(PacketType::PacketStat) => match p.stat {
                None => stats_done = true,
                Some(_) if stats_done => {
                    return Err(Status::invalid_argument(
                        "STAT after the end of the file list",
                    ));
                }
                Some(stat) => {
                    let id = index;
                    index += 1;
                    if let Some(path) = w.add(stat.clone())? {
                        queue.push_back((id, path, stat));
                    }
                }
            },
            Ok(PacketType::PacketData) => {
                let Some(f) = open.get_mut(&p.id) else {
                    return Err(Status::invalid_argument(format!(
                        "invalid file request {}",
                        p.id
                    )));
                };
                if p.data.is_empty() {
                    if let Some(f) = open.remove(&p.id) {
                        close_file(f).await?;
                    }
                } else {
                    f.file
                        .write_all(&p.data)
                        .await
                        .map_err(|e| internal("write", &f.path, e))?;
                }
            }
            Ok(PacketType::PacketFin) => {
                if fin_sent {
                    return Ok(());
                }
                return Err(Status::aborted(
                    "the daemon finished the local export before sending every file",
                ));
            }
            Ok(PacketType::PacketErr) => {
                return Err(Status::aborted(format!(
                    "error from sender: {}",
                    String::from_utf8_lossy(&p.data)
                )));
            }
            _ => {}
        }
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn a_directory_that_cannot_take_the_export_gets_the_fix_for_its_cause() {
        use std::io::ErrorKind;
        let dest = std::path::Path::new("/ro/out.tar");
        assert_eq!(prepare_hint(dest, ErrorKind::NotFound), "create /ro first");
        assert!(prepare_hint(dest, ErrorKind::PermissionDenied).contains("not writable"));
        assert!(prepare_hint(dest, ErrorKind::ReadOnlyFilesystem).contains("not writable"));
        assert!(prepare_hint(dest, ErrorKind::StorageFull).contains("free space"));
    }
}
