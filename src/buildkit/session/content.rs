//! containerd's `Content` service (`containerd.services.content.v1.Content`) over local
//! OCI-layout directories, for `--export-cache type=local,dest=DIR` and
//! `--import-cache type=local,src=DIR` (`buildkit-protocol.md` §3, §4).
//!
//! The daemon's local cache exporter and importer do not touch the client's disk: they
//! call this service through the session, naming the store in the gRPC metadata
//! [`STORE_ID_KEY`] (`buildkit-attachable-store-id`, BuildKit `session/content`). As
//! buildctl does (`client/solve.go` `parseCacheOptions`), a store is registered under
//! `local:<dir>`, where `<dir>` is the `dest` (export) or `src` (import) attribute exactly
//! as sent to the daemon; an unknown id is NotFound.
//!
//! The directory is an OCI image layout: `blobs/sha256/<hex>`, `oci-layout` and
//! `index.json`. Semantics follow containerd's local store:
//! - `Write` (bidirectional): the first message names the `ref`; when its `expected`
//!   digest is already stored the call fails with AlreadyExists (the daemon treats that
//!   as done). Data goes to a temporary file under `DIR/ingest/`, hashed as it arrives;
//!   `COMMIT` checks the size (`total`) and digest (`expected`) and only then renames the
//!   file to `blobs/sha256/<hex>` (read-only, 0444). A ref is used by one stream at a
//!   time (a second gets Unavailable); an unfinished write stays resumable (`STAT`
//!   reports its offset) until [`Abort`](ContentService) or the end of the session, when
//!   its temporary file is removed. Writes must be sequential; offset 0 restarts.
//! - `Read` streams 1 MiB chunks from `offset` (`size` 0 = to the end); `Info`, `Delete`,
//!   `Status`, `ListStatuses` (no filters), `List` (no filters). Labels are not stored
//!   (as with containerd's local store without a label database): `Update` and `Info`
//!   report none.
//!
//! `index.json` is not written by the daemon: after a successful export the client adds
//! the daemon's `cache.manifest` descriptor under a tag ([`update_index`], buildctl's
//! `ociindex.Put`), and before an import it resolves the tag to the `digest` attribute the
//! daemon needs ([`resolve_tag`]). Both happen outside this service, so a failed build
//! leaves `index.json` as it was (new blobs may remain; they are harmless).

use std::collections::{BTreeMap, HashMap};
use std::io::{Read, Seek, SeekFrom, Write};
use std::os::unix::fs::PermissionsExt;
use std::path::{Path, PathBuf};
use std::pin::Pin;
use std::sync::{Arc, Mutex};
use std::time::SystemTime;

use futures::Stream;
use sha2::{Digest as _, Sha256};
use tokio::sync::mpsc;
use tokio_stream::wrappers::ReceiverStream;
use tonic::{Request, Response, Status, Streaming};

use crate::proto::containerd::services::content::v1 as api;
use api::content_server::Content;

/// Metadata key naming the content store (`session/content/attachable.go`).
pub const STORE_ID_KEY: &str = "buildkit-attachable-store-id";
/// The annotation `index.json` uses for tags.
pub const REF_NAME_ANNOTATION: &str = "org.opencontainers.image.ref.name";
/// The key of the exporter response that carries the cache manifest descriptor (JSON).
pub const CACHE_MANIFEST_KEY: &str = "cache.manifest";
const READ_CHUNK: usize = 1 << 20;
const INDEX_MEDIA_TYPE: &str = "application/vnd.oci.image.index.v1+json";

/// The store id buildctl uses for a local cache directory (`local:<dir>`).
pub fn local_store_id(dir: &str) -> String {
    format!("local:{dir}")
}

/// A content store over an OCI-layout directory. Clones share the in-progress writes.
#[derive(Debug, Clone)]
pub struct LocalStore {
    inner: Arc<Inner>,
}

#[derive(Debug)]
struct Inner {
    root: PathBuf,
    ingests: Mutex<HashMap<String, Arc<tokio::sync::Mutex<Ingest>>>>,
}

impl Drop for Inner {
    fn drop(&mut self) {
        // Unfinished writes' temporary files are gone with their `NamedTempFile`s; leave
        // no empty `ingest/` behind.
        self.ingests.get_mut().map(|m| m.clear()).ok();
        let _ = std::fs::remove_dir(self.root.join("ingest"));
    }
}

#[derive(Debug)]
struct Ingest {
    file: tempfile::NamedTempFile,
    hasher: Sha256,
    offset: u64,
    total: i64,
    expected: String,
    started: SystemTime,
    updated: SystemTime,
}

/// The status code and message of a store operation.
type StoreResult<T> = Result<T, Status>;

fn io_status(what: &str, e: std::io::Error) -> Status {
    match e.kind() {
        std::io::ErrorKind::NotFound => Status::not_found(format!("{what}: {e}")),
        _ => Status::internal(format!("{what}: {e}")),
    }
}

/// Checks `sha256:<64 hex>` and returns the hex part.
pub fn digest_hex(digest: &str) -> StoreResult<&str> {
    let hex = digest.strip_prefix("sha256:").ok_or_else(|| {
        Status::invalid_argument(format!(
            "unsupported digest {digest:?}: expected sha256:<hex>"
        ))
    })?;
    if hex.len() != 64
        || !hex
            .bytes()
            .all(|b| b.is_ascii_digit() || (b'a'..=b'f').contains(&b))
    {
        return Err(Status::invalid_argument(format!(
            "invalid digest {digest:?}"
        )));
    }
    Ok(hex)
}

fn timestamp(t: SystemTime) -> prost_types::Timestamp {
    prost_types::Timestamp::from(t)
}

impl LocalStore {
    /// Opens (creating if needed) the layout at `root`: `blobs/sha256/` and `oci-layout`.
    pub fn open(root: impl Into<PathBuf>) -> std::io::Result<Self> {
        let root = root.into();
        std::fs::create_dir_all(root.join("blobs").join("sha256"))?;
        write_layout_file(&root)?;
        Ok(LocalStore {
            inner: Arc::new(Inner {
                root,
                ingests: Mutex::new(HashMap::new()),
            }),
        })
    }

    /// The layout directory.
    pub fn root(&self) -> &Path {
        &self.inner.root
    }

    /// Where the blob `digest` lives (whether or not it exists).
    pub fn blob_path(&self, digest: &str) -> StoreResult<PathBuf> {
        let hex = digest_hex(digest)?;
        Ok(self.inner.root.join("blobs").join("sha256").join(hex))
    }

    /// Size and times of a stored blob; NotFound when absent.
    pub fn info(&self, digest: &str) -> StoreResult<api::Info> {
        let path = self.blob_path(digest)?;
        let m = std::fs::metadata(&path).map_err(|e| match e.kind() {
            std::io::ErrorKind::NotFound => {
                Status::not_found(format!("content {digest}: not found"))
            }
            _ => io_status(digest, e),
        })?;
        if !m.is_file() {
            return Err(Status::not_found(format!("content {digest}: not a file")));
        }
        let t = m.modified().unwrap_or(SystemTime::UNIX_EPOCH);
        Ok(api::Info {
            digest: digest.to_string(),
            size: m.len() as i64,
            created_at: Some(timestamp(t)),
            updated_at: Some(timestamp(t)),
            labels: BTreeMap::new(),
        })
    }

    /// All stored blobs.
    pub fn list(&self) -> StoreResult<Vec<api::Info>> {
        let dir = self.inner.root.join("blobs").join("sha256");
        let mut out = Vec::new();
        let entries = match std::fs::read_dir(&dir) {
            Ok(e) => e,
            Err(e) if e.kind() == std::io::ErrorKind::NotFound => return Ok(out),
            Err(e) => return Err(io_status("listing blobs", e)),
        };
        for e in entries {
            let e = e.map_err(|e| io_status("listing blobs", e))?;
            let digest = format!("sha256:{}", e.file_name().to_string_lossy());
            if digest_hex(&digest).is_ok() {
                if let Ok(i) = self.info(&digest) {
                    out.push(i);
                }
            }
        }
        out.sort_by(|a, b| a.digest.cmp(&b.digest));
        Ok(out)
    }

    /// Removes a blob.
    pub fn delete(&self, digest: &str) -> StoreResult<()> {
        let path = self.blob_path(digest)?;
        std::fs::remove_file(&path).map_err(|e| match e.kind() {
            std::io::ErrorKind::NotFound => {
                Status::not_found(format!("content {digest}: not found"))
            }
            _ => io_status(digest, e),
        })
    }

    /// Reads `size` bytes (0: to the end) from `offset`.
    pub fn read_range(&self, digest: &str, offset: i64, size: i64) -> StoreResult<Vec<u8>> {
        let info = self.info(digest)?;
        let offset = offset.max(0);
        if offset > info.size {
            return Err(Status::out_of_range(format!(
                "offset {offset} is past the end of {digest} ({} bytes)",
                info.size
            )));
        }
        let len = if size <= 0 {
            info.size - offset
        } else {
            size.min(info.size - offset)
        };
        let mut f =
            std::fs::File::open(self.blob_path(digest)?).map_err(|e| io_status(digest, e))?;
        f.seek(SeekFrom::Start(offset as u64))
            .map_err(|e| io_status(digest, e))?;
        let mut buf = vec![0; len as usize];
        f.read_exact(&mut buf).map_err(|e| io_status(digest, e))?;
        Ok(buf)
    }

    /// The in-progress write `r#ref`, created when `create` is set.
    fn ingest(
        &self,
        r#ref: &str,
        create: bool,
    ) -> StoreResult<Option<Arc<tokio::sync::Mutex<Ingest>>>> {
        let mut map = self.inner.ingests.lock().expect("ingest map poisoned");
        if let Some(i) = map.get(r#ref) {
            return Ok(Some(i.clone()));
        }
        if !create {
            return Ok(None);
        }
        let dir = self.inner.root.join("ingest");
        std::fs::create_dir_all(&dir).map_err(|e| io_status("creating ingest dir", e))?;
        let file = tempfile::Builder::new()
            .prefix(".write-")
            .tempfile_in(&dir)
            .map_err(|e| io_status("creating a temporary file", e))?;
        let now = SystemTime::now();
        let i = Arc::new(tokio::sync::Mutex::new(Ingest {
            file,
            hasher: Sha256::new(),
            offset: 0,
            total: 0,
            expected: String::new(),
            started: now,
            updated: now,
        }));
        map.insert(r#ref.to_string(), i.clone());
        Ok(Some(i))
    }

    fn forget(&self, r#ref: &str) {
        self.inner
            .ingests
            .lock()
            .expect("ingest map poisoned")
            .remove(r#ref);
    }

    /// Drops the write `r#ref` and its temporary data; NotFound when there is none.
    pub fn abort(&self, r#ref: &str) -> StoreResult<()> {
        match self
            .inner
            .ingests
            .lock()
            .expect("ingest map poisoned")
            .remove(r#ref)
        {
            Some(_) => Ok(()),
            None => Err(Status::not_found(format!(
                "no write in progress for {ref:?}"
            ))),
        }
    }

    /// The status of a write in progress.
    pub fn status(&self, r#ref: &str) -> StoreResult<api::Status> {
        let i = self
            .ingest(r#ref, false)?
            .ok_or_else(|| Status::not_found(format!("no write in progress for {ref:?}")))?;
        let i = i
            .try_lock()
            .map_err(|_| Status::unavailable(format!("ref {ref:?} is locked by a writer")))?;
        Ok(ingest_status(r#ref, &i))
    }

    /// The statuses of all idle writes in progress.
    pub fn statuses(&self) -> Vec<api::Status> {
        let map = self.inner.ingests.lock().expect("ingest map poisoned");
        let mut out: Vec<_> = map
            .iter()
            .filter_map(|(r, i)| i.try_lock().ok().map(|i| ingest_status(r, &i)))
            .collect();
        out.sort_by(|a, b| a.r#ref.cmp(&b.r#ref));
        out
    }
}

fn ingest_status(r#ref: &str, i: &Ingest) -> api::Status {
    api::Status {
        started_at: Some(timestamp(i.started)),
        updated_at: Some(timestamp(i.updated)),
        r#ref: r#ref.to_string(),
        offset: i.offset as i64,
        total: i.total,
        expected: i.expected.clone(),
    }
}

fn write_layout_file(root: &Path) -> std::io::Result<()> {
    let p = root.join("oci-layout");
    if !p.exists() {
        write_atomic(&p, br#"{"imageLayoutVersion":"1.0.0"}"#)?;
    }
    Ok(())
}

fn write_atomic(path: &Path, data: &[u8]) -> std::io::Result<()> {
    let dir = path.parent().unwrap_or(Path::new("."));
    let mut tmp = tempfile::Builder::new().prefix(".tmp-").tempfile_in(dir)?;
    tmp.write_all(data)?;
    tmp.as_file().sync_all()?;
    std::fs::set_permissions(tmp.path(), std::fs::Permissions::from_mode(0o644))?;
    tmp.persist(path).map_err(|e| e.error)?;
    Ok(())
}

/// Reads `DIR/index.json` (None when absent).
fn read_index(root: &Path) -> std::io::Result<Option<serde_json::Value>> {
    match std::fs::read(root.join("index.json")) {
        Ok(b) => serde_json::from_slice(&b)
            .map(Some)
            .map_err(|e| std::io::Error::new(std::io::ErrorKind::InvalidData, e)),
        Err(e) if e.kind() == std::io::ErrorKind::NotFound => Ok(None),
        Err(e) => Err(e),
    }
}

/// The digest `index.json` in `root` records under `tag` (buildctl's `ociindex.Get`);
/// None when there is no index or no such tag.
pub fn resolve_tag(root: &Path, tag: &str) -> std::io::Result<Option<String>> {
    let Some(idx) = read_index(root)? else {
        return Ok(None);
    };
    Ok(idx["manifests"].as_array().and_then(|ms| {
        ms.iter()
            .find(|m| m["annotations"][REF_NAME_ANNOTATION].as_str() == Some(tag))
            .and_then(|m| m["digest"].as_str().map(str::to_string))
    }))
}

/// Records `desc` (an OCI descriptor) under `tag` in `root/index.json`, replacing the
/// tag's previous entry (buildctl's `ociindex.Put`); writes `oci-layout` too. The file is
/// replaced atomically.
pub fn update_index(root: &Path, desc: &serde_json::Value, tag: &str) -> std::io::Result<()> {
    let mut desc = desc.clone();
    let obj = desc.as_object_mut().ok_or_else(|| {
        std::io::Error::new(
            std::io::ErrorKind::InvalidData,
            "the cache manifest descriptor is not a JSON object",
        )
    })?;
    let ann = obj
        .entry("annotations")
        .or_insert_with(|| serde_json::json!({}));
    if !ann.is_object() {
        *ann = serde_json::json!({});
    }
    ann[REF_NAME_ANNOTATION] = serde_json::Value::String(tag.to_string());

    let mut idx = read_index(root)?.unwrap_or_else(
        || serde_json::json!({"schemaVersion": 2, "mediaType": INDEX_MEDIA_TYPE, "manifests": []}),
    );
    let mut manifests: Vec<serde_json::Value> = idx["manifests"]
        .as_array()
        .cloned()
        .unwrap_or_default()
        .into_iter()
        .filter(|m| m["annotations"][REF_NAME_ANNOTATION].as_str() != Some(tag))
        .collect();
    manifests.push(desc);
    idx["manifests"] = serde_json::Value::Array(manifests);
    if idx.get("schemaVersion").is_none() {
        idx["schemaVersion"] = serde_json::json!(2);
    }
    write_layout_file(root)?;
    let mut data = serde_json::to_vec(&idx).map_err(std::io::Error::other)?;
    data.push(b'\n');
    write_atomic(&root.join("index.json"), &data)
}

/// The `Content` service over the session's stores, keyed by store id.
#[derive(Debug, Clone)]
pub(crate) struct ContentService {
    pub(crate) stores: Arc<BTreeMap<String, LocalStore>>,
}

impl ContentService {
    fn choose<T>(&self, req: &Request<T>) -> StoreResult<LocalStore> {
        let id = req
            .metadata()
            .get(STORE_ID_KEY)
            .ok_or_else(|| {
                Status::invalid_argument(format!("request lacks metadata {STORE_ID_KEY:?}"))
            })?
            .to_str()
            .map_err(|_| Status::invalid_argument(format!("invalid {STORE_ID_KEY}")))?;
        self.stores
            .get(id)
            .cloned()
            .ok_or_else(|| Status::not_found(format!("unknown store {id}")))
    }
}

type BoxStream<T> = Pin<Box<dyn Stream<Item = Result<T, Status>> + Send>>;

async fn blocking<T: Send + 'static>(
    f: impl FnOnce() -> StoreResult<T> + Send + 'static,
) -> StoreResult<T> {
    tokio::task::spawn_blocking(f)
        .await
        .map_err(|e| Status::internal(format!("store task failed: {e}")))?
}

#[tonic::async_trait]
impl Content for ContentService {
    async fn info(
        &self,
        req: Request<api::InfoRequest>,
    ) -> Result<Response<api::InfoResponse>, Status> {
        let store = self.choose(&req)?;
        let d = req.into_inner().digest;
        let info = blocking(move || store.info(&d)).await?;
        Ok(Response::new(api::InfoResponse { info: Some(info) }))
    }

    async fn update(
        &self,
        req: Request<api::UpdateRequest>,
    ) -> Result<Response<api::UpdateResponse>, Status> {
        let store = self.choose(&req)?;
        let d = req
            .into_inner()
            .info
            .map(|i| i.digest)
            .ok_or_else(|| Status::invalid_argument("UpdateRequest without info"))?;
        // Labels are not stored; the blob's immutable info is the answer.
        let info = blocking(move || store.info(&d)).await?;
        Ok(Response::new(api::UpdateResponse { info: Some(info) }))
    }

    type ListStream = BoxStream<api::ListContentResponse>;

    async fn list(
        &self,
        req: Request<api::ListContentRequest>,
    ) -> Result<Response<Self::ListStream>, Status> {
        let store = self.choose(&req)?;
        if !req.get_ref().filters.is_empty() {
            return Err(Status::unimplemented("List filters are not supported"));
        }
        let infos = blocking(move || store.list()).await?;
        let msgs: Vec<_> = infos
            .chunks(100)
            .map(|c| Ok(api::ListContentResponse { info: c.to_vec() }))
            .collect();
        Ok(Response::new(Box::pin(futures::stream::iter(msgs))))
    }

    async fn delete(
        &self,
        req: Request<api::DeleteContentRequest>,
    ) -> Result<Response<()>, Status> {
        let store = self.choose(&req)?;
        let d = req.into_inner().digest;
        blocking(move || store.delete(&d)).await?;
        Ok(Response::new(()))
    }

    type ReadStream = BoxStream<api::ReadContentResponse>;

    async fn read(
        &self,
        req: Request<api::ReadContentRequest>,
    ) -> Result<Response<Self::ReadStream>, Status> {
        let store = self.choose(&req)?;
        let r = req.into_inner();
        let s2 = store.clone();
        let d = r.digest.clone();
        let info = blocking(move || s2.info(&d)).await?;
        let start = r.offset.max(0);
        if start > info.size {
            return Err(Status::out_of_range(format!(
                "offset {start} is past the end of {} ({} bytes)",
                r.digest, info.size
            )));
        }
        let end = if r.size <= 0 {
            info.size
        } else {
            (start + r.size).min(info.size)
        };
        let (tx, rx) = mpsc::channel(4);
        tokio::task::spawn_blocking(move || {
            let run = || -> StoreResult<()> {
                let path = store.blob_path(&r.digest)?;
                let mut f = std::fs::File::open(&path).map_err(|e| io_status(&r.digest, e))?;
                f.seek(SeekFrom::Start(start as u64))
                    .map_err(|e| io_status(&r.digest, e))?;
                let mut off = start;
                while off < end {
                    let n = ((end - off) as usize).min(READ_CHUNK);
                    let mut buf = vec![0; n];
                    f.read_exact(&mut buf)
                        .map_err(|e| io_status(&r.digest, e))?;
                    let msg = api::ReadContentResponse {
                        offset: off,
                        data: buf,
                    };
                    if tx.blocking_send(Ok(msg)).is_err() {
                        return Ok(());
                    }
                    off += n as i64;
                }
                Ok(())
            };
            if let Err(e) = run() {
                let _ = tx.blocking_send(Err(e));
            }
        });
        Ok(Response::new(Box::pin(ReceiverStream::new(rx))))
    }

    async fn status(
        &self,
        req: Request<api::StatusRequest>,
    ) -> Result<Response<api::StatusResponse>, Status> {
        let store = self.choose(&req)?;
        let status = store.status(&req.get_ref().r#ref)?;
        Ok(Response::new(api::StatusResponse {
            status: Some(status),
        }))
    }

    async fn list_statuses(
        &self,
        req: Request<api::ListStatusesRequest>,
    ) -> Result<Response<api::ListStatusesResponse>, Status> {
        let store = self.choose(&req)?;
        if !req.get_ref().filters.is_empty() {
            return Err(Status::unimplemented(
                "ListStatuses filters are not supported",
            ));
        }
        Ok(Response::new(api::ListStatusesResponse {
            statuses: store.statuses(),
        }))
    }

    type WriteStream = BoxStream<api::WriteContentResponse>;

    async fn write(
        &self,
        req: Request<Streaming<api::WriteContentRequest>>,
    ) -> Result<Response<Self::WriteStream>, Status> {
        let store = self.choose(&req)?;
        let mut inbound = req.into_inner();
        let first = inbound
            .message()
            .await?
            .ok_or_else(|| Status::invalid_argument("Write stream without a message"))?;
        if first.r#ref.is_empty() {
            return Err(Status::invalid_argument(
                "first message must have a reference",
            ));
        }
        let r#ref = first.r#ref.clone();
        if !first.expected.is_empty() {
            let s2 = store.clone();
            let d = first.expected.clone();
            if blocking(move || s2.info(&d)).await.is_ok() {
                return Err(Status::already_exists(format!(
                    "content {} already exists",
                    first.expected
                )));
            }
        }
        let ingest = store.ingest(&r#ref, true)?.expect("created");
        let guard = ingest
            .try_lock_owned()
            .map_err(|_| Status::unavailable(format!("ref {ref:?} is locked by another writer")))?;
        let (tx, rx) = mpsc::channel(4);
        tokio::spawn(async move {
            let mut guard = guard;
            let mut req = first;
            loop {
                let s = store.clone();
                let r = r#ref.clone();
                // File IO off the runtime; the guard travels with it.
                let step = tokio::task::spawn_blocking(move || {
                    let res = handle_write(&s, &r, &mut guard, req);
                    (guard, res)
                })
                .await;
                let (g, res) = match step {
                    Ok(x) => x,
                    Err(e) => {
                        let _ = tx
                            .send(Err(Status::internal(format!("write task failed: {e}"))))
                            .await;
                        return;
                    }
                };
                guard = g;
                match res {
                    Ok((resp, committed)) => {
                        if tx.send(Ok(resp)).await.is_err() || committed {
                            return;
                        }
                    }
                    Err(e) => {
                        let _ = tx.send(Err(e)).await;
                        return;
                    }
                }
                req = match inbound.message().await {
                    Ok(Some(m)) => m,
                    // Stream over without a commit: the write stays resumable.
                    Ok(None) | Err(_) => return,
                };
            }
        });
        Ok(Response::new(Box::pin(ReceiverStream::new(rx))))
    }

    async fn abort(&self, req: Request<api::AbortRequest>) -> Result<Response<()>, Status> {
        let store = self.choose(&req)?;
        store.abort(&req.get_ref().r#ref)?;
        Ok(Response::new(()))
    }
}

/// One `WriteContentRequest` against the locked ingest. Returns the response and whether
/// the write was committed (which ends the stream).
fn handle_write(
    store: &LocalStore,
    r#ref: &str,
    ing: &mut Ingest,
    req: api::WriteContentRequest,
) -> StoreResult<(api::WriteContentResponse, bool)> {
    if !req.expected.is_empty() {
        digest_hex(&req.expected)?;
        ing.expected = req.expected.clone();
    }
    if req.total > 0 {
        ing.total = req.total;
    }
    let action = api::WriteAction::try_from(req.action)
        .map_err(|_| Status::invalid_argument(format!("unknown write action {}", req.action)))?;
    let mut resp = api::WriteContentResponse {
        action: action as i32,
        ..Default::default()
    };
    match action {
        api::WriteAction::Stat => {
            resp.digest = format!("sha256:{}", hex::encode(ing.hasher.clone().finalize()));
        }
        api::WriteAction::Write | api::WriteAction::Commit => {
            if req.offset > 0 && req.offset as u64 != ing.offset {
                return Err(Status::out_of_range(format!(
                    "write @{} must occur at current offset {}",
                    req.offset, ing.offset
                )));
            }
            if req.offset == 0 && ing.offset > 0 {
                let f = ing.file.as_file_mut();
                f.set_len(0).map_err(|e| io_status("truncating", e))?;
                f.seek(SeekFrom::Start(0))
                    .map_err(|e| io_status("truncating", e))?;
                ing.hasher = Sha256::new();
                ing.offset = 0;
            }
            if !req.data.is_empty() {
                ing.file
                    .as_file_mut()
                    .write_all(&req.data)
                    .map_err(|e| io_status("writing", e))?;
                ing.hasher.update(&req.data);
                ing.offset += req.data.len() as u64;
                ing.updated = SystemTime::now();
            }
            if action == api::WriteAction::Commit {
                let digest = commit(store, r#ref, ing)?;
                resp.digest = digest;
            }
        }
    }
    resp.offset = ing.offset as i64;
    resp.total = ing.total;
    resp.started_at = Some(timestamp(ing.started));
    resp.updated_at = Some(timestamp(ing.updated));
    Ok((resp, action == api::WriteAction::Commit))
}

/// Verifies size and digest, then moves the data to `blobs/sha256/<hex>`.
fn commit(store: &LocalStore, r#ref: &str, ing: &mut Ingest) -> StoreResult<String> {
    if ing.total > 0 && ing.offset as i64 != ing.total {
        return Err(Status::failed_precondition(format!(
            "unexpected commit size {}, expected {}",
            ing.offset, ing.total
        )));
    }
    let digest = format!("sha256:{}", hex::encode(ing.hasher.clone().finalize()));
    if !ing.expected.is_empty() && ing.expected != digest {
        return Err(Status::failed_precondition(format!(
            "unexpected commit digest {digest}, expected {}",
            ing.expected
        )));
    }
    let target = store.blob_path(&digest)?;
    if target.exists() {
        store.forget(r#ref);
        return Err(Status::already_exists(format!(
            "content {digest} already exists"
        )));
    }
    let f = ing.file.as_file();
    f.sync_all().map_err(|e| io_status("syncing", e))?;
    f.set_permissions(std::fs::Permissions::from_mode(0o444))
        .map_err(|e| io_status("setting permissions", e))?;
    // Rename in place (same filesystem); the temporary file is replaced by an empty one
    // so that the ingest left in the map holds nothing.
    let placeholder = tempfile::Builder::new()
        .prefix(".done-")
        .tempfile_in(ing.file.path().parent().unwrap_or(store.root()))
        .map_err(|e| io_status("creating a temporary file", e))?;
    let file = std::mem::replace(&mut ing.file, placeholder);
    file.persist(&target)
        .map_err(|e| io_status("moving the blob into place", e.error))?;
    store.forget(r#ref);
    Ok(digest)
}
