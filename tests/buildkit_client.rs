//! End-to-end tests of the BuildKit client against the real daemon of the test environment
//! (dockerd's embedded BuildKit on the Docker socket, registry on 127.0.0.1:5000 acting as
//! the docker.io mirror). These tests FAIL, never skip, when the daemon is missing: run
//! `scripts/test-env.sh up` (as root) and `. /var/lib/torchkit-test-env/env.sh` first.
//!
//! Ctrl-C during a build is tested on the binary (tests/e2e_build.rs): the signal goes to a
//! `torchkit build` child, never to this test process.

use std::collections::BTreeMap;
use std::io::Read;

use torchkit::buildkit::client::{
    BuildOptions, Client, SolveOptions, IMAGE_CONFIG_KEY, IMAGE_DIGEST_KEY, REQUIRED_GATEWAY_CAPS,
};
use torchkit::buildkit::output;
use torchkit::buildkit::progress::ProgressMode;
use torchkit::buildkit::session::Attachables;
use torchkit::buildkit::transport::{Address, ConnectOptions, TransportError};
use torchkit::error::Hint;
use torchkit::llb::{self, Exec};

mod support;
use support::{docker_socket, make_certs, tls_proxy};

const BUSYBOX: &str = "docker.io/library/busybox:latest";

/// The Docker socket of the test environment.
fn docker_address() -> Address {
    Address::Docker(docker_socket())
}

async fn connect() -> Client {
    let addr = docker_address();
    match Client::connect_to(addr.clone(), &ConnectOptions::default()).await {
        Ok(c) => c,
        Err(e) => panic!(
            "no BuildKit at {addr}: {e}\nhint: {}\nThese tests need the real daemon: run `scripts/test-env.sh up` (as root), then `. /var/lib/torchkit-test-env/env.sh`.",
            e.hint().unwrap_or_default()
        ),
    }
}

fn quiet_options() -> BuildOptions {
    BuildOptions {
        progress: ProgressMode::Plain,
        cancel_on_ctrl_c: false,
        ..BuildOptions::default()
    }
}

/// busybox + `echo hi > /x`, as hand-made LLB through `crate::llb`.
fn tiny_definition(base_digest: Option<&str>) -> llb::pb::Definition {
    let base: llb::State = llb::image(BUSYBOX)
        .digest(base_digest)
        .platform(llb::Platform::linux_amd64())
        .into();
    let built = base
        .run(Exec::shell("echo hi > /x").custom_name("write /x"))
        .root();
    llb::marshal(&built).expect("marshal")
}

#[tokio::test]
async fn docker_upgrade_connects_and_lists_workers() {
    let client = connect().await;
    let info = client.ping().await.expect("ListWorkers/Info");
    assert!(!info.workers.is_empty(), "no workers: {info:?}");
    assert!(
        info.workers.iter().any(|w| !w.platforms.is_empty()),
        "workers without platforms: {:?}",
        info.workers
    );
    // Debian's dockerd reports v0.0.0+unknown; Info may also be absent on old daemons.
    if let Some(v) = &info.version {
        assert!(!v.version.is_empty());
    }
}

#[tokio::test]
async fn unreachable_address_names_the_fix() {
    let dir = tempfile::tempdir().unwrap();
    let addr = Address::Docker(dir.path().join("docker.sock"));
    let err = Client::connect_to(addr, &ConnectOptions::default())
        .await
        .unwrap_err();
    let msg = err.to_string();
    assert!(
        msg.contains("no BuildKit daemon is listening at docker://"),
        "{msg}"
    );
    assert!(err.hint().unwrap().contains("scripts/test-env.sh up"));

    // A TCP port nobody listens on.
    let listener = std::net::TcpListener::bind("127.0.0.1:0").unwrap();
    let port = listener.local_addr().unwrap().port();
    drop(listener);
    let err = Client::connect_to(
        Address::Tcp {
            host: "127.0.0.1".into(),
            port,
        },
        &ConnectOptions::default(),
    )
    .await
    .unwrap_err();
    assert!(
        matches!(
            err,
            torchkit::buildkit::ClientError::Transport(TransportError::NotListening { .. })
        ),
        "{err}"
    );
}

#[tokio::test]
async fn bridge_pings_resolves_and_builds_to_tar() {
    let client = connect().await;
    let dir = tempfile::tempdir().unwrap();
    let dest = dir.path().join("out.tar");

    let mut opts = quiet_options();
    opts.exporters =
        vec![output::parse_output(&format!("type=tar,dest={}", dest.display())).unwrap()];
    opts.attach(Attachables::new()).expect("export sink");

    let out = client
        .build(opts, |bridge| async move {
            let caps = bridge.caps().cloned().expect("pinged before run");
            caps.require_frontend(REQUIRED_GATEWAY_CAPS)?;
            assert!(caps.has_frontend("resolveimage"));
            assert!(caps.has_llb("file.base") && caps.has_llb("exec.mount.cache"));

            let img = bridge.resolve_image_config(BUSYBOX, None).await?;
            assert!(
                img.digest.starts_with("sha256:") && img.digest.len() == 71,
                "{}",
                img.digest
            );
            let config: serde_json::Value = serde_json::from_slice(&img.config)?;
            assert!(config["rootfs"]["diff_ids"].is_array(), "{config}");

            let def = tiny_definition(Some(&img.digest));
            let r = bridge.solve(Some(def), SolveOptions::default()).await?;
            let x = bridge.read_file(&r, "/x", None).await?;
            assert_eq!(x, b"hi\n");

            bridge.return_result(Some(r), BTreeMap::new()).await?;
            Ok::<_, Box<dyn std::error::Error + Send + Sync>>(img.digest)
        })
        .await
        .unwrap_or_else(|e| panic!("build failed: {e}\nhint: {:?}", e.hint()));
    assert!(out.value.starts_with("sha256:"));

    let mut tar = Vec::new();
    std::fs::File::open(&dest)
        .expect("tar exported")
        .read_to_end(&mut tar)
        .unwrap();
    assert!(
        tar_contains(&tar, "x", b"hi\n"),
        "x not in the tar ({} bytes)",
        tar.len()
    );
}

/// Finds `name` with `content` in an uncompressed ustar archive.
fn tar_contains(tar: &[u8], name: &str, content: &[u8]) -> bool {
    let mut off = 0;
    while off + 512 <= tar.len() {
        let h = &tar[off..off + 512];
        if h.iter().all(|&b| b == 0) {
            return false;
        }
        let n = String::from_utf8_lossy(&h[..100])
            .trim_end_matches('\0')
            .to_string();
        let size_txt = String::from_utf8_lossy(&h[124..136]);
        let size = usize::from_str_radix(size_txt.trim_matches(|c: char| c == '\0' || c == ' '), 8)
            .unwrap_or(0);
        let data = &tar[off + 512..(off + 512 + size).min(tar.len())];
        if n.trim_start_matches("./") == name && data == content {
            return true;
        }
        off += 512 + size.div_ceil(512) * 512;
    }
    false
}

#[tokio::test]
async fn builds_and_pushes_an_image_with_its_config() {
    let client = connect().await;
    let tag = format!("localhost:5000/tk-test:{}", std::process::id());
    let mut opts = quiet_options();
    opts.exporters =
        vec![output::parse_output(&format!("type=image,name={tag},push=true")).unwrap()];
    opts.attach(Attachables::new()).unwrap();

    let out = client
        .build(opts, |bridge| async move {
            let img = bridge.resolve_image_config(BUSYBOX, None).await?;
            let mut config: serde_json::Value = serde_json::from_slice(&img.config)?;
            config["config"]["Env"] = serde_json::json!(["PATH=/bin", "TORCHKIT_TEST=1"]);
            config["config"]["Labels"] = serde_json::json!({"torchkit.test": "client"});
            let r = bridge
                .solve(
                    Some(tiny_definition(Some(&img.digest))),
                    SolveOptions::default(),
                )
                .await?;
            let meta =
                BTreeMap::from([(IMAGE_CONFIG_KEY.to_string(), serde_json::to_vec(&config)?)]);
            bridge.return_result(Some(r), meta).await?;
            Ok::<_, Box<dyn std::error::Error + Send + Sync>>(())
        })
        .await
        .unwrap_or_else(|e| panic!("build failed: {e}\nhint: {:?}", e.hint()));
    let digest = out
        .exporter_response
        .get(IMAGE_DIGEST_KEY)
        .unwrap_or_else(|| panic!("no digest in {:?}", out.exporter_response));
    assert!(digest.starts_with("sha256:"));

    // The registry has the manifest under that digest.
    let path = format!("/v2/tk-test/manifests/{digest}");
    let resp = http_get("127.0.0.1:5000", &path).await;
    assert!(
        resp.starts_with("HTTP/1.1 200"),
        "registry said: {}",
        resp.lines().next().unwrap_or("")
    );
}

async fn http_get(host: &str, path: &str) -> String {
    use tokio::io::{AsyncReadExt, AsyncWriteExt};
    let mut s = tokio::net::TcpStream::connect(host)
        .await
        .expect("registry on 127.0.0.1:5000 (scripts/test-env.sh up)");
    s.write_all(
        format!(
            "GET {path} HTTP/1.1\r\nHost: {host}\r\nAccept: application/vnd.oci.image.manifest.v1+json, application/vnd.oci.image.index.v1+json, application/vnd.docker.distribution.manifest.v2+json, application/vnd.docker.distribution.manifest.list.v2+json\r\nConnection: close\r\n\r\n"
        )
        .as_bytes(),
    )
    .await
    .unwrap();
    let mut buf = Vec::new();
    s.read_to_end(&mut buf).await.unwrap();
    String::from_utf8_lossy(&buf).into_owned()
}

#[tokio::test]
async fn failing_build_reports_the_step() {
    let client = connect().await;
    let err = client
        .build(quiet_options(), |bridge| async move {
            let base: llb::State = llb::image(BUSYBOX).into();
            let def = llb::marshal(&base.run(Exec::shell("echo boom >&2; exit 3")).root())?;
            let r = bridge
                .solve(
                    Some(def),
                    SolveOptions {
                        evaluate: true,
                        ..Default::default()
                    },
                )
                .await?;
            bridge.return_result(Some(r), BTreeMap::new()).await?;
            Ok::<_, Box<dyn std::error::Error + Send + Sync>>(())
        })
        .await
        .unwrap_err();
    let msg = err.to_string();
    assert!(msg.contains("exit code: 3"), "{msg}");
}

#[tokio::test]
async fn tls_to_a_proxied_daemon() {
    use torchkit::buildkit::transport::TlsOptions;
    let dir = tempfile::tempdir().unwrap();
    let (ca, cert, key) = make_certs(dir.path());
    let Address::Docker(sock) = docker_address() else {
        unreachable!()
    };
    let _ = connect().await; // fails with the test-env hint when the daemon is missing
    let port = tls_proxy(&cert, &key, sock).await;
    let addr = Address::Tcp {
        host: "127.0.0.1".into(),
        port,
    };

    let good = ConnectOptions {
        addr: None,
        builder: None,
        tls: TlsOptions {
            ca_cert: Some(ca.clone()),
            server_name: Some("tk.test".into()),
            ..Default::default()
        },
    };
    let client = Client::connect_to(addr.clone(), &good)
        .await
        .unwrap_or_else(|e| panic!("{e}: {:?}", e.hint()));
    assert!(!client.list_workers().await.unwrap().is_empty());

    // The wrong server name fails the handshake, and the error says which name and CA.
    let bad_name = ConnectOptions {
        addr: None,
        builder: None,
        tls: TlsOptions {
            ca_cert: Some(ca.clone()),
            server_name: Some("other.test".into()),
            ..Default::default()
        },
    };
    let err = Client::connect_to(addr.clone(), &bad_name)
        .await
        .unwrap_err();
    let msg = err.to_string();
    assert!(
        msg.contains("TLS handshake") && msg.contains("other.test") && msg.contains("ca.pem"),
        "{msg}"
    );
    assert!(err.hint().unwrap().contains("--tlsservername"));

    // A CA that did not sign the server certificate.
    let other_ca = make_certs(&{
        let d = dir.path().join("other");
        std::fs::create_dir(&d).unwrap();
        d
    })
    .0;
    let wrong_ca = ConnectOptions {
        addr: None,
        builder: None,
        tls: TlsOptions {
            ca_cert: Some(other_ca),
            server_name: Some("tk.test".into()),
            ..Default::default()
        },
    };
    let err = Client::connect_to(addr, &wrong_ca).await.unwrap_err();
    assert!(err.to_string().contains("TLS handshake"), "{err}");
}
