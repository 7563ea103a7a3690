//! Session services against an in-process fake daemon: a tonic client over
//! `tokio::io::duplex` plays the daemon's side of `Control.Session`.

use std::collections::{BTreeMap, HashMap};
use std::os::unix::fs::{MetadataExt, PermissionsExt};
use std::path::Path;

use tokio::sync::mpsc;
use tokio_stream::wrappers::ReceiverStream;
use tokio_stream::StreamExt;
use tonic::codegen::http::uri::PathAndQuery;
use tonic::metadata::MetadataValue;
use tonic::transport::Channel;
use tonic::{Code, Request};
use tonic_prost::ProstCodec;

mod support;
use support::session as connect;
use torchkit::buildkit::session::{
    go_mode, parse_dockerignore, Attachables, DockerAuth, ExportError, ExportSink, SecretSource,
};
use torchkit::proto::fsutil::types::{packet::PacketType, Packet, Stat};
use torchkit::proto::moby::buildkit::secrets::v1::secrets_client::SecretsClient;
use torchkit::proto::moby::buildkit::secrets::v1::GetSecretRequest;
use torchkit::proto::moby::filesync::v1::auth_client::AuthClient;
use torchkit::proto::moby::filesync::v1::file_sync_client::FileSyncClient;
use torchkit::proto::moby::filesync::v1::{BytesMessage, CredentialsRequest, FetchTokenRequest};

fn pkt(t: PacketType) -> Packet {
    Packet {
        r#type: t as i32,
        ..Default::default()
    }
}

#[tokio::test]
async fn health_check_serving() {
    use tonic_health::pb::{
        health_check_response::ServingStatus, health_client::HealthClient, HealthCheckRequest,
    };
    let ch = connect(Attachables::new().with_auth(DockerAuth::anonymous())).await;
    let resp = HealthClient::new(ch)
        .check(HealthCheckRequest {
            service: String::new(),
        })
        .await
        .unwrap();
    assert_eq!(resp.into_inner().status, ServingStatus::Serving as i32);
}

#[test]
fn advertised_methods() {
    let base = Attachables::new();
    let m = base.methods();
    assert!(m.contains(&"/grpc.health.v1.Health/Check".to_string()));
    assert!(m.contains(&"/moby.filesync.v1.Auth/Credentials".to_string()));
    assert!(m.contains(&"/moby.buildkit.secrets.v1.Secrets/GetSecret".to_string()));
    assert!(!m
        .iter()
        .any(|x| x.contains("FileSync") || x.contains("FileSend")));
    let d = tempfile::tempdir().unwrap();
    let sink = ExportSink::archive(d.path().join("o.tar")).unwrap();
    let m = base
        .with_local("context", d.path())
        .with_exporter(sink)
        .methods();
    assert!(m.contains(&"/moby.filesync.v1.FileSync/DiffCopy".to_string()));
    assert!(m.contains(&"/moby.filesync.v1.FileSend/DiffCopy".to_string()));
}

fn chmod(p: &Path, mode: u32) {
    std::fs::set_permissions(p, std::fs::Permissions::from_mode(mode)).unwrap();
}

/// Plays fsutil's receiver: collects STATs, requests every regular non-link file, FIN.
async fn receive_all(
    ch: Channel,
    md: &[(&'static str, &str)],
) -> Result<(Vec<Stat>, BTreeMap<String, Vec<u8>>), tonic::Status> {
    let (tx, rx) = mpsc::channel::<Packet>(16);
    let mut req = Request::new(ReceiverStream::new(rx));
    for (k, v) in md {
        req.metadata_mut()
            .append(*k, MetadataValue::try_from(*v).unwrap());
    }
    let mut inbound = FileSyncClient::new(ch).diff_copy(req).await?.into_inner();
    let mut stats = Vec::new();
    loop {
        let p = inbound.next().await.expect("stream open")?;
        assert_eq!(p.r#type, PacketType::PacketStat as i32);
        match p.stat {
            Some(s) => stats.push(s),
            None => break,
        }
    }
    let mut wanted: HashMap<u32, String> = HashMap::new();
    for (i, s) in stats.iter().enumerate() {
        if go_mode::is_regular(s.mode) && s.linkname.is_empty() {
            wanted.insert(i as u32, s.path.clone());
            tx.send(Packet {
                r#type: PacketType::PacketReq as i32,
                id: i as u32,
                ..Default::default()
            })
            .await
            .unwrap();
        }
    }
    let mut data: BTreeMap<String, Vec<u8>> = BTreeMap::new();
    let mut open = wanted.len();
    while open > 0 {
        let p = inbound.next().await.expect("stream open")?;
        assert_eq!(p.r#type, PacketType::PacketData as i32);
        let path = wanted.get(&p.id).expect("requested id").clone();
        if p.data.is_empty() {
            open -= 1;
        }
        data.entry(path).or_default().extend_from_slice(&p.data);
    }
    tx.send(pkt(PacketType::PacketFin)).await.unwrap();
    let fin = inbound.next().await.expect("FIN echoed")?;
    assert_eq!(fin.r#type, PacketType::PacketFin as i32);
    assert!(inbound.next().await.is_none(), "stream ends after FIN");
    Ok((stats, data))
}

#[tokio::test]
async fn diffcopy_sends_filtered_context() {
    let d = tempfile::tempdir().unwrap();
    let r = d.path();
    let ignore = "# build junk\nnode_modules\nlogs\n!logs/keep.log\n**/*.tmp\n/secret.env\n";
    std::fs::write(r.join(".dockerignore"), ignore).unwrap();
    std::fs::write(r.join("a.txt"), "hello").unwrap();
    std::fs::hard_link(r.join("a.txt"), r.join("hl")).unwrap();
    std::os::unix::fs::symlink("a.txt", r.join("sym")).unwrap();
    std::fs::create_dir_all(r.join("bin")).unwrap();
    std::fs::write(r.join("bin/run.sh"), "#!/bin/sh\necho hi\n").unwrap();
    chmod(&r.join("bin/run.sh"), 0o755);
    std::fs::create_dir_all(r.join("node_modules/x")).unwrap();
    std::fs::write(r.join("node_modules/x/y.js"), "x").unwrap();
    std::fs::create_dir_all(r.join("logs")).unwrap();
    std::fs::write(r.join("logs/1.log"), "1").unwrap();
    std::fs::write(r.join("logs/keep.log"), "keep").unwrap();
    std::fs::create_dir_all(r.join("nested/deep")).unwrap();
    std::fs::write(r.join("nested/deep/file.txt"), "deep").unwrap();
    std::fs::write(r.join("nested/deep/skip.tmp"), "tmp").unwrap();
    std::fs::write(r.join("nested-b"), "b").unwrap();
    std::fs::write(r.join("secret.env"), "S=1").unwrap();
    std::fs::write(r.join("with space.bak"), "x").unwrap();
    for dir in ["bin", "logs", "nested", "nested/deep"] {
        chmod(&r.join(dir), 0o750);
    }
    let big: Vec<u8> = (0..200_000u32).map(|i| (i % 251) as u8).collect();
    std::fs::write(r.join("big.bin"), &big).unwrap();

    let ch = connect(
        Attachables::new()
            .with_auth(DockerAuth::anonymous())
            .with_local("context", r),
    )
    .await;
    let mut md: Vec<(&'static str, &str)> = vec![("dir-name", "context")];
    let patterns = parse_dockerignore(ignore);
    for p in &patterns {
        md.push(("exclude-patterns", p.as_str()));
    }
    // A non-ASCII-safe pattern arrives URL-escaped with `<key>-encoded: 1`.
    md.push(("exclude-patterns", "with+space.bak"));
    md.push(("exclude-patterns-encoded", "1"));
    let (stats, data) = receive_all(ch, &md).await.unwrap();

    let paths: Vec<&str> = stats.iter().map(|s| s.path.as_str()).collect();
    assert_eq!(
        paths,
        [
            ".dockerignore",
            "a.txt",
            "big.bin",
            "bin",
            "bin/run.sh",
            "hl",
            "logs",
            "logs/keep.log",
            "nested",
            "nested/deep",
            "nested/deep/file.txt",
            "nested-b",
            "sym",
        ]
    );
    let by: HashMap<&str, &Stat> = stats.iter().map(|s| (s.path.as_str(), s)).collect();
    assert_eq!(by["bin"].mode, go_mode::DIR | 0o750);
    assert_eq!(by["bin/run.sh"].mode, 0o755);
    assert_eq!(by["sym"].mode & go_mode::SYMLINK, go_mode::SYMLINK);
    assert_eq!(by["sym"].linkname, "a.txt");
    assert_eq!(by["hl"].linkname, "a.txt");
    assert_eq!(by["hl"].size, 0);
    assert_eq!(by["a.txt"].size, 5);
    assert!(by.values().all(|s| s.uid == 0 && s.gid == 0));
    let meta = std::fs::metadata(r.join("a.txt")).unwrap();
    assert_eq!(
        by["a.txt"].mod_time,
        meta.mtime() * 1_000_000_000 + meta.mtime_nsec()
    );

    assert_eq!(data["a.txt"], b"hello");
    assert_eq!(data["logs/keep.log"], b"keep");
    assert_eq!(data["bin/run.sh"], b"#!/bin/sh\necho hi\n");
    assert_eq!(data["big.bin"], big);
    assert!(!data.contains_key("hl"));
}

#[tokio::test]
async fn diffcopy_follow_and_include_paths() {
    let d = tempfile::tempdir().unwrap();
    let r = d.path();
    std::fs::create_dir_all(r.join("specs")).unwrap();
    std::fs::write(r.join("specs/real.toml"), "[project]").unwrap();
    std::os::unix::fs::symlink("specs/real.toml", r.join("torchkit.toml")).unwrap();
    std::fs::write(r.join("other.txt"), "no").unwrap();
    std::fs::create_dir_all(r.join("src/pkg")).unwrap();
    std::fs::write(r.join("src/pkg/a.py"), "a").unwrap();
    std::fs::write(r.join("src/b.txt"), "b").unwrap();
    let att = Attachables::new()
        .with_auth(DockerAuth::anonymous())
        .with_local("dockerfile", r);

    let ch = connect(att.clone()).await;
    let md = [
        ("dir-name", "dockerfile"),
        ("followpaths", "torchkit.toml"),
        ("followpaths", "torchkit.toml.dockerignore"),
    ];
    let (stats, data) = receive_all(ch, &md).await.unwrap();
    let paths: Vec<&str> = stats.iter().map(|s| s.path.as_str()).collect();
    assert_eq!(paths, ["specs", "specs/real.toml", "torchkit.toml"]);
    assert_eq!(data["specs/real.toml"], b"[project]");

    let ch = connect(att.clone()).await;
    let md = [
        ("dir-name", "dockerfile"),
        ("include-patterns", "src/**/*.py"),
    ];
    let (stats, _) = receive_all(ch, &md).await.unwrap();
    let paths: Vec<&str> = stats.iter().map(|s| s.path.as_str()).collect();
    assert_eq!(paths, ["src", "src/pkg", "src/pkg/a.py"]);

    let ch = connect(att).await;
    let err = receive_all(ch, &[("dir-name", "nope")]).await.unwrap_err();
    assert_eq!(err.code(), Code::NotFound);
}

async fn file_send<T, U>(
    ch: Channel,
    id: &str,
    outbound: ReceiverStream<T>,
) -> Result<tonic::Streaming<U>, tonic::Status>
where
    T: prost::Message + Send + Sync + 'static,
    U: prost::Message + Default + Send + Sync + 'static,
{
    let mut grpc = tonic::client::Grpc::new(ch);
    grpc.ready().await.unwrap();
    let mut req = Request::new(outbound);
    req.metadata_mut().insert(
        "buildkit-attachable-exporter-id",
        MetadataValue::try_from(id).unwrap(),
    );
    let path = PathAndQuery::from_static("/moby.filesync.v1.FileSend/DiffCopy");
    Ok(grpc
        .streaming(req, path, ProstCodec::<T, U>::default())
        .await?
        .into_inner())
}

fn leftovers(dir: &Path) -> Vec<String> {
    std::fs::read_dir(dir)
        .unwrap()
        .map(|e| e.unwrap().file_name().to_string_lossy().into_owned())
        .collect()
}

#[tokio::test]
async fn filesend_archive_is_atomic() {
    let d = tempfile::tempdir().unwrap();
    let dest = d.path().join("out.tar");
    let other = d.path().join("other.tar");
    let sink = ExportSink::archive(&dest).unwrap();
    let unused = ExportSink::for_exporter("oci", &other).unwrap();
    let ch = connect(
        Attachables::new()
            .with_auth(DockerAuth::anonymous())
            .with_exporter(unused.clone())
            .with_exporter(sink.clone()),
    )
    .await;

    let (tx, rx) = mpsc::channel(4);
    let call = tokio::spawn(file_send::<BytesMessage, BytesMessage>(
        ch.clone(),
        "1",
        ReceiverStream::new(rx),
    ));
    let payload: Vec<u8> = (0..5_000_000u32).map(|i| (i % 253) as u8).collect();
    for chunk in payload.chunks(3 << 20) {
        tx.send(BytesMessage {
            data: chunk.to_vec(),
        })
        .await
        .unwrap();
    }
    drop(tx);
    let mut resp = call.await.unwrap().unwrap();
    assert!(
        resp.next().await.is_none(),
        "empty response stream, OK status"
    );
    assert!(sink.is_received());
    assert!(!dest.exists(), "nothing at dest before commit");
    sink.commit().unwrap();
    assert_eq!(std::fs::read(&dest).unwrap(), payload);

    // Never sent: commit fails and the temporary file is gone.
    assert!(matches!(unused.commit(), Err(ExportError::NotReceived(_))));
    assert_eq!(leftovers(d.path()), ["out.tar"]);

    // Received, then aborted: nothing appears.
    let d2 = tempfile::tempdir().unwrap();
    let sink = ExportSink::archive(d2.path().join("a.tar")).unwrap();
    let ch = connect(
        Attachables::new()
            .with_auth(DockerAuth::anonymous())
            .with_exporter(sink.clone()),
    )
    .await;
    let (tx, rx) = mpsc::channel(4);
    tx.send(BytesMessage {
        data: b"partial".to_vec(),
    })
    .await
    .unwrap();
    drop(tx);
    let mut resp = file_send::<BytesMessage, BytesMessage>(ch, "0", ReceiverStream::new(rx))
        .await
        .unwrap();
    assert!(resp.next().await.is_none());
    sink.abort();
    assert!(leftovers(d2.path()).is_empty());
}

#[tokio::test]
async fn filesend_archive_failure_leaves_nothing() {
    let d = tempfile::tempdir().unwrap();
    let sink = ExportSink::archive(d.path().join("out.tar")).unwrap();
    let ch = connect(
        Attachables::new()
            .with_auth(DockerAuth::anonymous())
            .with_exporter(sink.clone()),
    )
    .await;
    // A message that is not a BytesMessage (field 1 as a varint) breaks the transfer
    // after the first chunk was written.
    let (tx, rx) = mpsc::channel(4);
    let call = tokio::spawn(file_send::<Packet, BytesMessage>(
        ch,
        "0",
        ReceiverStream::new(rx),
    ));
    tx.send(Packet {
        data: b"first".to_vec(),
        ..Default::default()
    })
    .await
    .unwrap();
    tx.send(Packet {
        r#type: PacketType::PacketData as i32,
        ..Default::default()
    })
    .await
    .unwrap();
    drop(tx);
    let err = call.await.unwrap().unwrap_err();
    assert_eq!(err.code(), Code::Internal, "{err:?}");
    assert!(matches!(sink.commit(), Err(ExportError::Failed { .. })));
    assert!(leftovers(d.path()).is_empty());
}

fn stat(path: &str, mode: u32, size: i64, linkname: &str) -> Packet {
    Packet {
        r#type: PacketType::PacketStat as i32,
        stat: Some(Stat {
            path: path.into(),
            mode,
            size,
            mod_time: 1_700_000_000_000_000_000,
            linkname: linkname.into(),
            ..Default::default()
        }),
        ..Default::default()
    }
}

#[tokio::test]
async fn filesend_local_writes_directory() {
    let d = tempfile::tempdir().unwrap();
    let dest = d.path().join("out");
    let sink = ExportSink::for_exporter("local", &dest).unwrap();
    let ch = connect(
        Attachables::new()
            .with_auth(DockerAuth::anonymous())
            .with_exporter(sink.clone()),
    )
    .await;

    // Play fsutil's sender (the daemon).
    let files: HashMap<u32, Vec<u8>> =
        HashMap::from([(1, b"data".to_vec()), (3, vec![7u8; 100_000])]);
    let (tx, rx) = mpsc::channel(16);
    for p in [
        stat("d", go_mode::DIR | 0o755, 0, ""),
        stat("d/f", 0o644, 4, ""),
        stat("d/hl", 0o644, 0, "d/f"),
        stat("d/x.sh", 0o755, 100_000, ""),
        stat("link", go_mode::SYMLINK | 0o777, 0, "d/f"),
        pkt(PacketType::PacketStat),
    ] {
        tx.send(p).await.unwrap();
    }
    let mut inbound = file_send::<Packet, Packet>(ch, "0", ReceiverStream::new(rx))
        .await
        .unwrap();
    let mut requested = Vec::new();
    loop {
        let p = inbound.next().await.expect("open").unwrap();
        match PacketType::try_from(p.r#type).unwrap() {
            PacketType::PacketReq => {
                requested.push(p.id);
                let data = files.get(&p.id).expect("only regular files are requested");
                for chunk in data.chunks(32 * 1024) {
                    let m = Packet {
                        r#type: PacketType::PacketData as i32,
                        id: p.id,
                        data: chunk.to_vec(),
                        ..Default::default()
                    };
                    tx.send(m).await.unwrap();
                }
                tx.send(Packet {
                    r#type: PacketType::PacketData as i32,
                    id: p.id,
                    ..Default::default()
                })
                .await
                .unwrap();
            }
            PacketType::PacketFin => {
                tx.send(pkt(PacketType::PacketFin)).await.unwrap();
                break;
            }
            other => panic!("unexpected {other:?}"),
        }
    }
    drop(tx);
    assert!(inbound.next().await.is_none());
    requested.sort();
    assert_eq!(requested, [1, 3]);
    assert!(!dest.exists());
    sink.commit().unwrap();

    assert_eq!(std::fs::read(dest.join("d/f")).unwrap(), b"data");
    assert_eq!(
        std::fs::read(dest.join("d/x.sh")).unwrap(),
        vec![7u8; 100_000]
    );
    let m = |p: &str| std::fs::symlink_metadata(dest.join(p)).unwrap();
    assert_eq!(m("d/x.sh").mode() & 0o7777, 0o755);
    assert_eq!(m("d/f").mode() & 0o7777, 0o644);
    assert_eq!(m("d").mode() & 0o7777, 0o755);
    assert_eq!(m("d/hl").ino(), m("d/f").ino());
    assert_eq!(
        std::fs::read_link(dest.join("link")).unwrap(),
        Path::new("d/f")
    );
    assert_eq!(m("d/f").mtime(), 1_700_000_000);
    assert_eq!(leftovers(d.path()), ["out"]);
}

#[tokio::test]
async fn filesend_local_rejects_escaping_paths() {
    let d = tempfile::tempdir().unwrap();
    let sink = ExportSink::directory(d.path().join("out")).unwrap();
    let ch = connect(
        Attachables::new()
            .with_auth(DockerAuth::anonymous())
            .with_exporter(sink.clone()),
    )
    .await;
    let (tx, rx) = mpsc::channel(4);
    tx.send(stat("../evil", 0o644, 1, "")).await.unwrap();
    let mut inbound = file_send::<Packet, Packet>(ch, "0", ReceiverStream::new(rx))
        .await
        .unwrap();
    let mut saw_error = false;
    while let Some(p) = inbound.next().await {
        match p {
            Ok(p) => assert_eq!(p.r#type, PacketType::PacketErr as i32),
            Err(status) => {
                assert_eq!(status.code(), Code::InvalidArgument);
                saw_error = true;
            }
        }
    }
    assert!(saw_error);
    assert!(matches!(sink.commit(), Err(ExportError::Failed { .. })));
    assert!(leftovers(d.path()).is_empty());
    assert!(!d.path().parent().unwrap().join("evil").exists());
}

async fn ask(client: &mut AuthClient<Channel>, host: &str) -> (String, String) {
    let r = client
        .credentials(CredentialsRequest { host: host.into() })
        .await
        .unwrap()
        .into_inner();
    (r.username, r.secret)
}

#[tokio::test]
async fn auth_from_docker_config() {
    use base64::Engine;
    let d = tempfile::tempdir().unwrap();
    let b64 = base64::engine::general_purpose::STANDARD.encode("alice:s3cret");
    let config = serde_json::json!({
        "auths": {
            "https://index.docker.io/v1/": { "auth": b64 },
            "ghcr.io": { "identitytoken": "idtok" },
            "https://myreg.example:5000/v1/": { "username": "bob", "password": "pw" },
        },
        "credHelpers": { "helper.example": "fake", "missing.example": "notinstalled" },
    });
    std::fs::write(d.path().join("config.json"), config.to_string()).unwrap();
    let bin = d.path().join("bin");
    std::fs::create_dir(&bin).unwrap();
    let helper = bin.join("docker-credential-fake");
    std::fs::write(
        &helper,
        "#!/bin/sh\nread host\n[ \"$1\" = get ] || exit 2\necho \"{\\\"ServerURL\\\":\\\"$host\\\",\\\"Username\\\":\\\"helper-user\\\",\\\"Secret\\\":\\\"for-$host\\\"}\"\n",
    )
    .unwrap();
    chmod(&helper, 0o755);
    let auth = DockerAuth::from_config_dir(d.path()).with_helper_path(bin.as_os_str());
    let mut client = AuthClient::new(connect(Attachables::new().with_auth(auth)).await);
    assert_eq!(
        ask(&mut client, "registry-1.docker.io").await,
        ("alice".into(), "s3cret".into())
    );
    assert_eq!(
        ask(&mut client, "docker.io").await,
        ("alice".into(), "s3cret".into())
    );
    assert_eq!(
        ask(&mut client, "ghcr.io").await,
        ("".into(), "idtok".into())
    );
    assert_eq!(
        ask(&mut client, "myreg.example:5000").await,
        ("bob".into(), "pw".into())
    );
    assert_eq!(
        ask(&mut client, "helper.example").await,
        ("helper-user".into(), "for-helper.example".into())
    );
    assert_eq!(
        ask(&mut client, "missing.example").await,
        ("".into(), "".into())
    );
    assert_eq!(ask(&mut client, "quay.io").await, ("".into(), "".into()));
    let err = client
        .fetch_token(FetchTokenRequest {
            host: "ghcr.io".into(),
            ..Default::default()
        })
        .await
        .unwrap_err();
    assert_eq!(err.code(), Code::Unimplemented);
}

#[tokio::test]
async fn secrets_found_and_missing() {
    let d = tempfile::tempdir().unwrap();
    std::fs::write(d.path().join("tok"), b"file-secret\n").unwrap();
    // A variable only this test sets, so parallel tests cannot race on it.
    std::env::set_var("TORCHKIT_SESSION_TEST_SECRET", "env-secret");
    let att = Attachables::new()
        .with_auth(DockerAuth::anonymous())
        .with_secret("tok", SecretSource::File(d.path().join("tok")))
        .with_secret(
            "hf",
            SecretSource::Env("TORCHKIT_SESSION_TEST_SECRET".into()),
        );
    let mut client = SecretsClient::new(connect(att).await);
    let get = |id: &str| GetSecretRequest {
        id: id.into(),
        ..Default::default()
    };
    assert_eq!(
        client
            .get_secret(get("tok"))
            .await
            .unwrap()
            .into_inner()
            .data,
        b"file-secret\n"
    );
    assert_eq!(
        client
            .get_secret(get("hf"))
            .await
            .unwrap()
            .into_inner()
            .data,
        b"env-secret"
    );
    let err = client.get_secret(get("missing")).await.unwrap_err();
    assert_eq!(err.code(), Code::NotFound);
    assert!(
        err.message().contains("--secret id=missing,src=<file>"),
        "{}",
        err.message()
    );
}

/// End to end against the test environment's dockerd (BuildKit v0.13): the context goes up
/// through FileSync/DiffCopy with `.dockerignore` excludes, and comes back through
/// FileSend as a `local` export, committed only after the build succeeded.
#[tokio::test]
async fn e2e_context_roundtrip_through_docker() {
    use torchkit::buildkit::client::{BuildOptions, Client, SolveOptions};
    use torchkit::buildkit::output;
    use torchkit::buildkit::progress::ProgressMode;
    use torchkit::buildkit::transport::{Address, ConnectOptions};
    use torchkit::llb::{self, CopyOpts, FileAction, State};

    let path = std::env::var("DOCKER_HOST")
        .ok()
        .and_then(|h| h.strip_prefix("unix://").map(str::to_string))
        .unwrap_or_else(|| "/var/run/docker.sock".to_string());
    let client = Client::connect_to(
        Address::Docker(path.clone().into()),
        &ConnectOptions::default(),
    )
    .await
    .unwrap_or_else(|e| panic!("no dockerd at {path}: {e}; run scripts/test-env.sh up"));

    let ctx = tempfile::tempdir().unwrap();
    let r = ctx.path();
    let ignore = "junk\n*.tmp\n!keep.tmp\n";
    std::fs::write(r.join(".dockerignore"), ignore).unwrap();
    std::fs::write(r.join("a.txt"), "hello").unwrap();
    std::fs::write(r.join("run.sh"), "#!/bin/sh\n").unwrap();
    chmod(&r.join("run.sh"), 0o755);
    std::fs::write(r.join("x.tmp"), "no").unwrap();
    std::fs::write(r.join("keep.tmp"), "yes").unwrap();
    std::fs::create_dir_all(r.join("junk/deep")).unwrap();
    std::fs::write(r.join("junk/deep/f"), "no").unwrap();
    std::fs::create_dir_all(r.join("sub")).unwrap();
    std::fs::write(r.join("sub/b.txt"), "b").unwrap();
    std::os::unix::fs::symlink("../a.txt", r.join("sub/link")).unwrap();
    let big: Vec<u8> = (0..3_000_000u32).map(|i| (i % 249) as u8).collect();
    std::fs::write(r.join("sub/big.bin"), &big).unwrap();

    let out = tempfile::tempdir().unwrap();
    let dest = out.path().join("result");
    let mut opts = BuildOptions {
        progress: ProgressMode::Quiet,
        cancel_on_ctrl_c: false,
        ..BuildOptions::default()
    };
    opts.exporters =
        vec![output::parse_output(&format!("type=local,dest={}", dest.display())).unwrap()];
    opts.attach(Attachables::new().with_local("context", r))
        .unwrap();
    let excludes = parse_dockerignore(ignore);
    client
        .build(opts, move |bridge| async move {
            let src: State = llb::local("context")
                .exclude_patterns(&excludes)
                .shared_key_hint("context")
                .into();
            let copy = CopyOpts {
                dir_copy_contents: true,
                ..CopyOpts::default()
            };
            let result = llb::scratch().file(FileAction::copy(&src, "/", "/", copy));
            let r = bridge
                .solve(Some(llb::marshal(&result)?), SolveOptions::default())
                .await?;
            bridge.return_result(Some(r), BTreeMap::new()).await?;
            Ok::<_, Box<dyn std::error::Error + Send + Sync>>(())
        })
        .await
        .unwrap_or_else(|e| panic!("build failed: {e}"));

    let mut names: Vec<String> = walk_names(&dest, "");
    names.sort();
    assert_eq!(
        names,
        [
            ".dockerignore",
            "a.txt",
            "keep.tmp",
            "run.sh",
            "sub",
            "sub/b.txt",
            "sub/big.bin",
            "sub/link"
        ]
    );
    assert_eq!(std::fs::read(dest.join("sub/big.bin")).unwrap(), big);
    assert_eq!(std::fs::read(dest.join("a.txt")).unwrap(), b"hello");
    let mode = std::fs::metadata(dest.join("run.sh")).unwrap().mode();
    assert_eq!(mode & 0o777, 0o755);
    assert_eq!(
        std::fs::read_link(dest.join("sub/link")).unwrap(),
        Path::new("../a.txt")
    );
    assert_eq!(leftovers(out.path()), ["result"]);
}

fn walk_names(root: &Path, prefix: &str) -> Vec<String> {
    let mut out = Vec::new();
    for e in std::fs::read_dir(root.join(prefix)).unwrap() {
        let e = e.unwrap();
        let rel = if prefix.is_empty() {
            e.file_name().to_string_lossy().into_owned()
        } else {
            format!("{prefix}/{}", e.file_name().to_string_lossy())
        };
        if e.file_type().unwrap().is_dir() {
            out.extend(walk_names(root, &rel));
        }
        out.push(rel);
    }
    out
}
