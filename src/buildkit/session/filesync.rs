//! `moby.filesync.v1.FileSync/DiffCopy`: the client as the fsutil **sender** of a local
//! directory (build context, `dockerfile` local).
//!
//! Protocol (tonistiigi/fsutil `send.go`): one `STAT` per entry, then a `STAT` without a
//! stat as the end marker; the receiver asks for regular files with `REQ{ID}` (ID = index
//! of the entry's `STAT`, counting every entry), answered with `DATA{ID, chunk}` packets
//! and an empty `DATA{ID}` as EOF; the receiver's `FIN` is echoed and ends the stream; `ERR`
//! carries an error text either way. REQs are served while STATs are still being sent, as
//! upstream does, because the daemon may request files before the walk is over.

use std::collections::{BTreeMap, HashMap};
use std::path::PathBuf;
use std::pin::Pin;
use std::sync::Arc;

use futures::Stream;
use tokio::io::AsyncReadExt;
use tokio::sync::{mpsc, Semaphore};
use tokio::task::JoinSet;
use tokio_stream::wrappers::ReceiverStream;
use tokio_stream::StreamExt;
use tonic::{Request, Response, Status, Streaming};

use crate::proto::fsutil::types::{packet::PacketType, Packet};
use crate::proto::moby::filesync::v1::file_sync_server::FileSync;

use super::walk::{go_mode, walk, FilterOptions};

/// Metadata keys of a FileSync request (`session/filesync/filesync.go`).
pub(crate) const KEY_DIR_NAME: &str = "dir-name";
const KEY_INCLUDE: &str = "include-patterns";
const KEY_EXCLUDE: &str = "exclude-patterns";
const KEY_FOLLOW: &str = "followpaths";

/// Chunk size of `DATA` packets (fsutil's 32 KiB copy buffer).
const CHUNK: usize = 32 * 1024;
/// Files sent at once (fsutil runs four senders).
const PARALLEL_FILES: usize = 4;

/// A directory the daemon may read by name.
#[derive(Debug, Clone)]
pub(crate) struct LocalDir {
    pub(crate) path: PathBuf,
    pub(crate) reset_owner: bool,
    /// The only paths this directory sends (include patterns); none: any.
    pub(crate) only: Option<Vec<String>>,
}

impl LocalDir {
    /// The request's include patterns or follow paths when the directory allows each of
    /// them, else the directory's own list: never more than it allows.
    fn allowed(&self, requested: Vec<String>) -> Vec<String> {
        match &self.only {
            None => requested,
            Some(only) if !requested.is_empty() && requested.iter().all(|r| only.contains(r)) => {
                requested
            }
            Some(only) => only.clone(),
        }
    }
}

pub(crate) type PacketStream = Pin<Box<dyn Stream<Item = Result<Packet, Status>> + Send>>;

/// Go `url.QueryUnescape`: `%XX` escapes and `+` as space.
fn query_unescape(s: &str) -> Option<String> {
    let b = s.as_bytes();
    let mut out = Vec::with_capacity(b.len());
    let mut i = 0;
    while i < b.len() {
        match b[i] {
            b'%' => {
                let hex = s.get(i + 1..i + 3)?;
                out.push(u8::from_str_radix(hex, 16).ok()?);
                i += 3;
            }
            b'+' => {
                out.push(b' ');
                i += 1;
            }
            c => {
                out.push(c);
                i += 1;
            }
        }
    }
    String::from_utf8(out).ok()
}

/// All values of `key`, URL-unescaped when `<key>-encoded` is a true Go `ParseBool` value.
pub(crate) fn metadata_values(md: &tonic::metadata::MetadataMap, key: &str) -> Vec<String> {
    let encoded = md
        .get(format!("{key}-encoded"))
        .and_then(|v| v.to_str().ok())
        .is_some_and(|v| matches!(v, "1" | "t" | "T" | "true" | "TRUE" | "True"));
    md.get_all(key)
        .iter()
        .filter_map(|v| v.to_str().ok())
        .map(|v| {
            if encoded {
                query_unescape(v).unwrap_or_else(|| v.to_string())
            } else {
                v.to_string()
            }
        })
        .collect()
}

/// The FileSync service over the named local directories.
#[derive(Debug, Clone)]
pub(crate) struct FileSyncService {
    pub(crate) dirs: Arc<BTreeMap<String, LocalDir>>,
}

fn packet(t: PacketType) -> Packet {
    Packet {
        r#type: t as i32,
        ..Default::default()
    }
}

fn err_packet(msg: &str) -> Packet {
    Packet {
        r#type: PacketType::PacketErr as i32,
        data: msg.as_bytes().to_vec(),
        ..Default::default()
    }
}

#[tonic::async_trait]
impl FileSync for FileSyncService {
    type DiffCopyStream = PacketStream;
    type TarStreamStream = PacketStream;

    async fn diff_copy(
        &self,
        request: Request<Streaming<Packet>>,
    ) -> Result<Response<Self::DiffCopyStream>, Status> {
        let md = request.metadata();
        let name = metadata_values(md, KEY_DIR_NAME)
            .into_iter()
            .next()
            .unwrap_or_default();
        let Some(dir) = self.dirs.get(&name).cloned() else {
            return Err(Status::not_found(format!(
                "no access allowed to dir {name:?}"
            )));
        };
        let (include, follow) = (
            metadata_values(md, KEY_INCLUDE),
            metadata_values(md, KEY_FOLLOW),
        );
        let opts = FilterOptions {
            // A request that names only follow paths (a frontend reading `.dockerignore`)
            // is judged by them.
            include: if include.is_empty() && !follow.is_empty() {
                include
            } else {
                dir.allowed(include)
            },
            exclude: metadata_values(md, KEY_EXCLUDE),
            follow: dir.allowed(follow),
        };
        let (tx, rx) = mpsc::channel(64);
        let inbound = request.into_inner();
        tokio::spawn(async move {
            if let Err(status) = send_dir(dir, opts, inbound, tx.clone()).await {
                let _ = tx.send(Ok(err_packet(status.message()))).await;
                let _ = tx.send(Err(status)).await;
            }
        });
        Ok(Response::new(
            Box::pin(ReceiverStream::new(rx)) as PacketStream
        ))
    }

    async fn tar_stream(
        &self,
        _request: Request<Streaming<Packet>>,
    ) -> Result<Response<Self::TarStreamStream>, Status> {
        Err(Status::unimplemented(
            "torchkit serves local directories with DiffCopy only",
        ))
    }
}

type Tx = mpsc::Sender<Result<Packet, Status>>;

async fn send_file(id: u32, path: PathBuf, tx: Tx) -> Result<(), Status> {
    // As upstream: a file that cannot be opened any more is sent as empty.
    if let Ok(mut f) = tokio::fs::File::open(&path).await {
        let mut buf = vec![0u8; CHUNK];
        loop {
            let n = f
                .read(&mut buf)
                .await
                .map_err(|e| Status::internal(format!("read {}: {e}", path.display())))?;
            if n == 0 {
                break;
            }
            let p = Packet {
                r#type: PacketType::PacketData as i32,
                id,
                data: buf[..n].to_vec(),
                ..Default::default()
            };
            if tx.send(Ok(p)).await.is_err() {
                return Ok(());
            }
        }
    }
    let _ = tx
        .send(Ok(Packet {
            r#type: PacketType::PacketData as i32,
            id,
            ..Default::default()
        }))
        .await;
    Ok(())
}

async fn send_dir(
    dir: LocalDir,
    opts: FilterOptions,
    mut inbound: Streaming<Packet>,
    tx: Tx,
) -> Result<(), Status> {
    let root = dir.path.clone();
    let entries = tokio::task::spawn_blocking(move || walk(&root, &opts, dir.reset_owner))
        .await
        .map_err(|e| Status::internal(format!("walk task: {e}")))?
        .map_err(|e| Status::internal(e.to_string()))?;

    let mut files: HashMap<u32, PathBuf> = HashMap::new();
    let mut stats = Vec::with_capacity(entries.len() + 1);
    for (i, e) in entries.into_iter().enumerate() {
        if go_mode::is_regular(e.stat.mode) {
            files.insert(i as u32, e.abs);
        }
        stats.push(Packet {
            r#type: PacketType::PacketStat as i32,
            stat: Some(e.stat),
            ..Default::default()
        });
    }
    stats.push(packet(PacketType::PacketStat));

    let stat_tx = tx.clone();
    let mut tasks = JoinSet::new();
    tasks.spawn(async move {
        for p in stats {
            if stat_tx.send(Ok(p)).await.is_err() {
                break;
            }
        }
        Ok(())
    });
    let limit = Arc::new(Semaphore::new(PARALLEL_FILES));

    let result = loop {
        tokio::select! {
            Some(done) = tasks.join_next(), if !tasks.is_empty() => {
                match done {
                    Ok(Ok(())) => {}
                    Ok(Err(status)) => break Err(status),
                    Err(e) => break Err(Status::internal(format!("send task: {e}"))),
                }
            }
            msg = inbound.next() => {
                let p = match msg {
                    None => break Ok(()),
                    Some(Err(status)) => break Err(status),
                    Some(Ok(p)) => p,
                };
                match PacketType::try_from(p.r#type) {
                    Ok(PacketType::PacketReq) => {
                        let Some(path) = files.remove(&p.id) else {
                            break Err(Status::invalid_argument(format!("invalid file id {}", p.id)));
                        };
                        let tx = tx.clone();
                        let limit = limit.clone();
                        tasks.spawn(async move {
                            let _permit = limit.acquire_owned().await.map_err(|_| Status::cancelled("closing"))?;
                            send_file(p.id, path, tx).await
                        });
                    }
                    Ok(PacketType::PacketFin) => {
                        let _ = tx.send(Ok(packet(PacketType::PacketFin))).await;
                        break Ok(());
                    }
                    Ok(PacketType::PacketErr) => {
                        break Err(Status::aborted(format!(
                            "error from receiver: {}",
                            String::from_utf8_lossy(&p.data)
                        )));
                    }
                    _ => {}
                }
            }
        }
    };
    tasks.abort_all();
    result
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn unescape() {
        assert_eq!(query_unescape("a%2Fb+c").as_deref(), Some("a/b c"));
        assert_eq!(query_unescape("%E2%9C%93").as_deref(), Some("✓"));
        assert_eq!(query_unescape("%zz"), None);
    }

    #[test]
    fn a_directory_with_a_list_sends_nothing_beyond_it() {
        let v = |l: &[&str]| l.iter().map(|s| s.to_string()).collect::<Vec<_>>();
        let dir = LocalDir {
            path: PathBuf::from("/ctx"),
            reset_owner: true,
            only: Some(v(&["src", "requirements.txt", ".dockerignore"])),
        };
        // What the plan asked for, or part of it, is kept.
        assert_eq!(dir.allowed(v(&["src"])), v(&["src"]));
        // Everything (no patterns) or anything else gets the list.
        let all = v(&["src", "requirements.txt", ".dockerignore"]);
        assert_eq!(dir.allowed(vec![]), all);
        assert_eq!(dir.allowed(v(&["data", "src"])), all);
        assert_eq!(dir.allowed(v(&["**"])), all);
        let open = LocalDir { only: None, ..dir };
        assert_eq!(open.allowed(v(&["data"])), v(&["data"]));
        assert!(open.allowed(vec![]).is_empty());
    }
}
