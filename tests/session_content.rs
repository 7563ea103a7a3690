//! containerd `Content` service of the session against an in-process fake daemon: a tonic
//! client over `tokio::io::duplex` plays the daemon's local cache exporter/importer.

use std::path::Path;

use sha2::{Digest as _, Sha256};
use tokio::sync::mpsc;
use tokio_stream::wrappers::ReceiverStream;
use tokio_stream::StreamExt;
use tonic::metadata::MetadataValue;
use tonic::transport::Channel;
use tonic::{Code, Request, Streaming};

mod support;
use support::session as connect;
use torchkit::buildkit::session::{
    local_store_id, resolve_tag, update_index, Attachables, DockerAuth, LocalStore, STORE_ID_KEY,
};
use torchkit::proto::containerd::services::content::v1::{
    content_client::ContentClient, AbortRequest, InfoRequest, ReadContentRequest, StatusRequest,
    WriteAction, WriteContentRequest, WriteContentResponse,
};

fn digest(data: &[u8]) -> String {
    format!("sha256:{}", hex::encode(Sha256::digest(data)))
}

fn req<T>(msg: T, store: &str) -> Request<T> {
    let mut r = Request::new(msg);
    r.metadata_mut()
        .insert(STORE_ID_KEY, MetadataValue::try_from(store).unwrap());
    r
}

/// A store served under `local:<dir>` (as buildctl names it), and a client.
async fn served(dir: &Path) -> (LocalStore, ContentClient<Channel>, String) {
    let store = LocalStore::open(dir).unwrap();
    let id = local_store_id(dir.to_str().unwrap());
    let att = Attachables::new()
        .with_auth(DockerAuth::anonymous())
        .with_content_store(id.clone(), store.clone());
    (store, ContentClient::new(connect(att).await), id)
}

/// One Write stream, driven message by message as containerd's proxy writer does.
struct Writer {
    tx: mpsc::Sender<WriteContentRequest>,
    rx: Streaming<WriteContentResponse>,
}

impl Writer {
    async fn open(
        c: &mut ContentClient<Channel>,
        store: &str,
        first: WriteContentRequest,
    ) -> Result<(Writer, WriteContentResponse), tonic::Status> {
        let (tx, rx) = mpsc::channel(4);
        tx.send(first).await.unwrap();
        let mut rx = c
            .write(req(ReceiverStream::new(rx), store))
            .await?
            .into_inner();
        let resp = rx.next().await.expect("a response")?;
        Ok((Writer { tx, rx }, resp))
    }

    async fn send(
        &mut self,
        m: WriteContentRequest,
    ) -> Result<WriteContentResponse, tonic::Status> {
        self.tx.send(m).await.unwrap();
        self.rx.next().await.expect("a response")
    }
}

fn stat(r: &str, total: i64, expected: &str) -> WriteContentRequest {
    WriteContentRequest {
        action: WriteAction::Stat as i32,
        r#ref: r.into(),
        total,
        expected: expected.into(),
        ..Default::default()
    }
}

fn write(offset: i64, data: &[u8]) -> WriteContentRequest {
    WriteContentRequest {
        action: WriteAction::Write as i32,
        offset,
        data: data.to_vec(),
        ..Default::default()
    }
}

fn commit(offset: i64, total: i64, expected: &str) -> WriteContentRequest {
    WriteContentRequest {
        action: WriteAction::Commit as i32,
        offset,
        total,
        expected: expected.into(),
        ..Default::default()
    }
}

async fn read_all(
    c: &mut ContentClient<Channel>,
    store: &str,
    d: &str,
    offset: i64,
    size: i64,
) -> Result<Vec<u8>, tonic::Status> {
    let mut s = c
        .read(req(
            ReadContentRequest {
                digest: d.into(),
                offset,
                size,
            },
            store,
        ))
        .await?
        .into_inner();
    let mut out = Vec::new();
    while let Some(m) = s.next().await {
        let m = m?;
        assert_eq!(m.offset, offset + out.len() as i64, "chunks in order");
        out.extend_from_slice(&m.data);
    }
    Ok(out)
}

fn ingest_files(dir: &Path) -> usize {
    std::fs::read_dir(dir.join("ingest"))
        .map(|d| d.count())
        .unwrap_or(0)
}

#[tokio::test]
async fn write_commit_verify_read_info() {
    let tmp = tempfile::tempdir().unwrap();
    let dir = tmp.path().join("cache");
    let (_store, mut c, id) = served(&dir).await;
    let data: Vec<u8> = (0..3_000_000u32).map(|i| (i % 251) as u8).collect();
    let d = digest(&data);

    let (mut w, st) = Writer::open(&mut c, &id, stat("layer-1", data.len() as i64, &d))
        .await
        .unwrap();
    assert_eq!(st.action, WriteAction::Stat as i32);
    assert_eq!(st.offset, 0);
    assert!(st.started_at.is_some());
    let mut off = 0i64;
    for chunk in data.chunks(1 << 20) {
        let r = w.send(write(off, chunk)).await.unwrap();
        off += chunk.len() as i64;
        assert_eq!(r.offset, off);
    }
    // Nothing visible before the commit.
    assert!(!dir.join("blobs/sha256").join(&d[7..]).exists());
    let r = w.send(commit(off, data.len() as i64, &d)).await.unwrap();
    assert_eq!(r.action, WriteAction::Commit as i32);
    assert_eq!(r.digest, d);
    assert_eq!(r.offset, data.len() as i64);
    assert!(w.rx.next().await.is_none(), "commit ends the stream");

    let blob = dir.join("blobs/sha256").join(&d[7..]);
    assert_eq!(std::fs::read(&blob).unwrap(), data);
    assert_eq!(ingest_files(&dir), 0, "no temporary file left");
    assert!(dir.join("oci-layout").is_file());

    let info = c
        .info(req(InfoRequest { digest: d.clone() }, &id))
        .await
        .unwrap()
        .into_inner()
        .info
        .unwrap();
    assert_eq!(info.digest, d);
    assert_eq!(info.size, data.len() as i64);

    assert_eq!(read_all(&mut c, &id, &d, 0, 0).await.unwrap(), data);
    assert_eq!(
        read_all(&mut c, &id, &d, 1_500_000, 10).await.unwrap(),
        &data[1_500_000..1_500_010]
    );
    assert_eq!(
        read_all(&mut c, &id, &d, 2_999_990, 0).await.unwrap(),
        &data[2_999_990..]
    );

    // Writing it again: AlreadyExists on open, which the daemon treats as done.
    let e = Writer::open(&mut c, &id, stat("layer-1-again", data.len() as i64, &d))
        .await
        .err()
        .expect("already exists");
    assert_eq!(e.code(), Code::AlreadyExists, "{e:?}");

    // Missing content and bad digests.
    let missing = digest(b"missing");
    let e = c
        .info(req(
            InfoRequest {
                digest: missing.clone(),
            },
            &id,
        ))
        .await
        .unwrap_err();
    assert_eq!(e.code(), Code::NotFound);
    let e = read_all(&mut c, &id, &missing, 0, 0).await.unwrap_err();
    assert_eq!(e.code(), Code::NotFound);
    let e = c
        .info(req(
            InfoRequest {
                digest: "sha256:../../etc".into(),
            },
            &id,
        ))
        .await
        .unwrap_err();
    assert_eq!(e.code(), Code::InvalidArgument);
}

#[tokio::test]
async fn wrong_digest_or_size_is_not_committed() {
    let tmp = tempfile::tempdir().unwrap();
    let dir = tmp.path().join("cache");
    let (_store, mut c, id) = served(&dir).await;
    let data = b"hello content store".to_vec();
    let wrong = digest(b"something else");

    let (mut w, _) = Writer::open(&mut c, &id, stat("bad", 0, "")).await.unwrap();
    w.send(write(0, &data)).await.unwrap();
    let e = w
        .send(commit(data.len() as i64, 0, &wrong))
        .await
        .unwrap_err();
    assert_eq!(e.code(), Code::FailedPrecondition, "{e:?}");
    assert!(!dir.join("blobs/sha256").join(&wrong[7..]).exists());
    assert!(!dir.join("blobs/sha256").join(&digest(&data)[7..]).exists());
    assert_eq!(
        std::fs::read_dir(dir.join("blobs/sha256")).unwrap().count(),
        0
    );

    let (mut w, _) = Writer::open(&mut c, &id, stat("short", 100, ""))
        .await
        .unwrap();
    w.send(write(0, &data)).await.unwrap();
    let e = w
        .send(commit(data.len() as i64, 100, ""))
        .await
        .unwrap_err();
    assert_eq!(e.code(), Code::FailedPrecondition, "{e:?}");
    assert_eq!(
        std::fs::read_dir(dir.join("blobs/sha256")).unwrap().count(),
        0
    );

    // A write at the wrong offset is refused.
    let (mut w, _) = Writer::open(&mut c, &id, stat("gap", 0, "")).await.unwrap();
    let e = w.send(write(5, b"x")).await.unwrap_err();
    assert_eq!(e.code(), Code::OutOfRange, "{e:?}");
}

#[tokio::test]
async fn resume_then_abort() {
    let tmp = tempfile::tempdir().unwrap();
    let dir = tmp.path().join("cache");
    let (_store, mut c, id) = served(&dir).await;
    let data = b"0123456789abcdef".to_vec();
    let d = digest(&data);

    // First stream writes half and goes away without a commit.
    let (mut w, _) = Writer::open(&mut c, &id, stat("resume", 16, &d))
        .await
        .unwrap();
    w.send(write(0, &data[..8])).await.unwrap();
    drop(w);

    // The write stays resumable: STAT reports the offset, and Status sees it.
    let mut st = None;
    for _ in 0..50 {
        match c
            .status(req(
                StatusRequest {
                    r#ref: "resume".into(),
                },
                &id,
            ))
            .await
        {
            Ok(s) => {
                st = s.into_inner().status;
                break;
            }
            // The first stream may still hold the ref for a moment.
            Err(e) if e.code() == Code::Unavailable => {
                tokio::time::sleep(std::time::Duration::from_millis(20)).await
            }
            Err(e) => panic!("status: {e:?}"),
        }
    }
    let st = st.expect("status of the unfinished write");
    assert_eq!(
        (st.offset, st.total, st.expected.as_str()),
        (8, 16, d.as_str())
    );
    let (mut w, s) = Writer::open(&mut c, &id, stat("resume", 16, &d))
        .await
        .unwrap();
    assert_eq!(s.offset, 8);
    w.send(write(8, &data[8..])).await.unwrap();
    let r = w.send(commit(16, 16, &d)).await.unwrap();
    assert_eq!(r.digest, d);
    assert_eq!(read_all(&mut c, &id, &d, 0, 0).await.unwrap(), data);

    // Abort drops an unfinished write and its temporary file.
    let (mut w, _) = Writer::open(&mut c, &id, stat("dropme", 0, ""))
        .await
        .unwrap();
    w.send(write(0, b"partial")).await.unwrap();
    drop(w);
    c.abort(req(
        AbortRequest {
            r#ref: "dropme".into(),
        },
        &id,
    ))
    .await
    .unwrap();
    let e = c
        .status(req(
            StatusRequest {
                r#ref: "dropme".into(),
            },
            &id,
        ))
        .await
        .unwrap_err();
    assert_eq!(e.code(), Code::NotFound);
    let e = c
        .abort(req(
            AbortRequest {
                r#ref: "dropme".into(),
            },
            &id,
        ))
        .await
        .unwrap_err();
    assert_eq!(e.code(), Code::NotFound);
    // The aborted write's temporary file is removed once its stream is done with it.
    for _ in 0..50 {
        if ingest_files(&dir) == 0 {
            break;
        }
        tokio::time::sleep(std::time::Duration::from_millis(20)).await;
    }
    assert_eq!(ingest_files(&dir), 0);
}

#[tokio::test]
async fn store_is_chosen_by_metadata() {
    let tmp = tempfile::tempdir().unwrap();
    let (_store, mut c, id) = served(&tmp.path().join("cache")).await;
    let d = digest(b"x");
    let e = c
        .info(req(InfoRequest { digest: d.clone() }, "local:/elsewhere"))
        .await
        .unwrap_err();
    assert_eq!(e.code(), Code::NotFound);
    assert!(e.message().contains("unknown store"), "{e:?}");
    let e = c
        .info(Request::new(InfoRequest { digest: d.clone() }))
        .await
        .unwrap_err();
    assert_eq!(e.code(), Code::InvalidArgument);
    let e = c
        .info(req(InfoRequest { digest: d }, &id))
        .await
        .unwrap_err();
    assert_eq!(e.code(), Code::NotFound, "a known store without the blob");
}

#[test]
fn content_methods_are_advertised_only_with_a_store() {
    let base = Attachables::new().with_auth(DockerAuth::anonymous());
    assert!(!base.methods().iter().any(|m| m.contains("containerd")));
    let tmp = tempfile::tempdir().unwrap();
    let m = base
        .with_content_store("local:x", LocalStore::open(tmp.path()).unwrap())
        .methods();
    for name in ["Info", "Read", "Write", "Abort", "Status", "ListStatuses"] {
        let path = format!("/containerd.services.content.v1.Content/{name}");
        assert!(m.contains(&path), "{path} in {m:?}");
    }
}

#[test]
fn index_tags_are_replaced_atomically() {
    let tmp = tempfile::tempdir().unwrap();
    let dir = tmp.path();
    assert_eq!(resolve_tag(dir, "latest").unwrap(), None);
    let desc = |d: &str| {
        serde_json::json!({
            "mediaType": "application/vnd.oci.image.index.v1+json",
            "digest": d,
            "size": 10,
        })
    };
    let (a, b, c) = (digest(b"a"), digest(b"b"), digest(b"c"));
    update_index(dir, &desc(&a), "latest").unwrap();
    update_index(dir, &desc(&b), "other").unwrap();
    update_index(dir, &desc(&c), "latest").unwrap();
    assert_eq!(resolve_tag(dir, "latest").unwrap(), Some(c.clone()));
    assert_eq!(resolve_tag(dir, "other").unwrap(), Some(b));
    let idx: serde_json::Value =
        serde_json::from_slice(&std::fs::read(dir.join("index.json")).unwrap()).unwrap();
    assert_eq!(idx["schemaVersion"], 2);
    assert_eq!(idx["manifests"].as_array().unwrap().len(), 2);
    assert!(dir.join("oci-layout").is_file());
    // Only index.json, oci-layout: no temporary files left.
    let names: Vec<_> = std::fs::read_dir(dir)
        .unwrap()
        .map(|e| e.unwrap().file_name().into_string().unwrap())
        .collect();
    assert!(names.iter().all(|n| !n.starts_with('.')), "{names:?}");
}
