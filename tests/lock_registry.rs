//! The registry fallback (`torchkit::registry`): the bearer-token flow against a fake
//! registry, and digests and configs against the local test registry, compared with
//! `docker buildx imagetools inspect` (needs the test environment: `. /var/lib/torchkit-test-env/env.sh`).

use std::process::Command;

use sha2::Digest as _;
use tokio::io::{AsyncReadExt, AsyncWriteExt};
use torchkit::buildkit::session::DockerAuth;
use torchkit::registry::{RegistryClient, OCI_INDEX, OCI_MANIFEST};

const REGISTRY: &str = "localhost:5000";
const STANDIN: &str = "pytorch/pytorch:2.8.0-cuda12.8-cudnn9-runtime";

fn sha(b: &[u8]) -> String {
    format!("sha256:{}", hex::encode(sha2::Sha256::digest(b)))
}

fn docker(args: &[&str]) -> String {
    let out = Command::new("docker")
        .args(args)
        .output()
        .expect("the docker CLI runs (source /var/lib/torchkit-test-env/env.sh)");
    assert!(
        out.status.success(),
        "docker {args:?} failed: {}",
        String::from_utf8_lossy(&out.stderr)
    );
    String::from_utf8(out.stdout).unwrap()
}

/// `Digest:` and the linux/amd64 manifest digest from `imagetools inspect`.
fn imagetools(reference: &str) -> (String, Option<String>) {
    let text = docker(&["buildx", "imagetools", "inspect", reference]);
    let digest = text
        .lines()
        .find_map(|l| l.strip_prefix("Digest:"))
        .expect("a Digest line")
        .trim()
        .to_string();
    let mut amd64 = None;
    let mut last_name = None;
    for l in text.lines() {
        let l = l.trim();
        if let Some(n) = l.strip_prefix("Name:") {
            last_name = n.trim().split('@').nth(1).map(String::from);
        }
        if l.strip_prefix("Platform:").map(str::trim) == Some("linux/amd64") {
            amd64 = last_name.clone();
        }
    }
    (digest, amd64)
}

fn image_json(reference: &str) -> serde_json::Value {
    serde_json::from_str(&docker(&[
        "buildx",
        "imagetools",
        "inspect",
        reference,
        "--format",
        "{{json .Image}}",
    ]))
    .unwrap()
}

#[tokio::test]
async fn standin_manifest_matches_imagetools() {
    let reference = format!("{REGISTRY}/{STANDIN}");
    let got = RegistryClient::new(DockerAuth::from_env())
        .resolve(&reference)
        .await
        .unwrap_or_else(|e| panic!("resolve {reference}: {e} (is the test registry up?)"));
    let (digest, _) = imagetools(&reference);
    assert_eq!(got.digest, digest);
    assert_eq!(got.manifest_digest, digest);
    assert_eq!(got.media_type, OCI_MANIFEST);
    let config: serde_json::Value = serde_json::from_slice(&got.config).unwrap();
    let theirs = image_json(&reference);
    assert_eq!(config["rootfs"], theirs["rootfs"]);
    assert_eq!(config["config"]["Env"], theirs["config"]["Env"]);
    assert_eq!(config["architecture"], "amd64");

    // `plan::pin_base` over the registry (what plan/llb --resolve-digest run) pins a spec's
    // base to the same digest and config.
    let spec = torchkit::spec::parse(
        &format!(
            "[torch]\nversion = \"2.8.0\"\ncuda = \"12.8\"\n\n[base]\nimage = \"{reference}\"\n"
        ),
        "torchkit.toml",
    )
    .unwrap();
    let res = torchkit::resolve::resolve(&spec.request()).unwrap();
    let pinned = torchkit::plan::pin_base(
        &spec,
        &res,
        &torchkit::plan::CompileOptions::default(),
        &RegistryClient::new(DockerAuth::from_env()),
    )
    .await
    .unwrap();
    assert_eq!(pinned.reference, reference);
    assert_eq!(pinned.digest, digest);
    assert_eq!(pinned.config["rootfs"], theirs["rootfs"]);

    // By digest, the same answer.
    let pinned = RegistryClient::new(DockerAuth::anonymous())
        .resolve(&format!("{reference}@{digest}"))
        .await
        .unwrap();
    assert_eq!(pinned.digest, digest);
    assert_eq!(pinned.config, got.config);
}

#[tokio::test]
async fn index_resolves_to_its_amd64_manifest() {
    // An OCI index (image + attestation manifest), pushed by buildx.
    let dir = tempfile::tempdir().unwrap();
    let marker = format!("{:?}", std::time::SystemTime::now());
    std::fs::write(
        dir.path().join("Dockerfile"),
        format!("FROM {REGISTRY}/base:1\nRUN echo '{marker}' > /idx\n"),
    )
    .unwrap();
    // A tag of this run's own: a HEAD racing a push of the same tag (another run, or a
    // rerun) got a 500 "invalid checksum digest format" from the registry once in CI.
    let nanos = std::time::SystemTime::now()
        .duration_since(std::time::UNIX_EPOCH)
        .unwrap()
        .as_nanos();
    let reference = format!(
        "{REGISTRY}/tk-index:lock-registry-{}-{nanos}",
        std::process::id()
    );
    docker(&[
        "buildx",
        "build",
        "-q",
        "--platform",
        "linux/amd64",
        "--provenance=true",
        "--output",
        &format!("type=image,name={reference},push=true,oci-mediatypes=true"),
        dir.path().to_str().unwrap(),
    ]);
    let got = RegistryClient::new(DockerAuth::from_env())
        .resolve(&reference)
        .await
        .unwrap();
    let (digest, amd64) = imagetools(&reference);
    assert_eq!(got.media_type, OCI_INDEX);
    assert_eq!(
        got.digest, digest,
        "the digest the name points at (the index)"
    );
    assert_eq!(
        Some(got.manifest_digest.clone()),
        amd64,
        "the linux/amd64 manifest"
    );
    assert_ne!(got.digest, got.manifest_digest);
    let config: serde_json::Value = serde_json::from_slice(&got.config).unwrap();
    assert_eq!(config["rootfs"], image_json(&reference)["rootfs"]);
}

/// A registry that wants a bearer token and redirects blobs elsewhere, like Docker Hub.
#[tokio::test]
async fn bearer_token_flow_and_redirected_blobs() {
    let listener = tokio::net::TcpListener::bind("127.0.0.1:0").await.unwrap();
    let port = listener.local_addr().unwrap().port();
    let config = br#"{"architecture":"amd64","os":"linux","config":{"Env":["A=1"]},"rootfs":{"type":"layers","diff_ids":[]}}"#.to_vec();
    let config_digest = sha(&config);
    let manifest = format!(
        r#"{{"schemaVersion":2,"mediaType":"{OCI_MANIFEST}","config":{{"mediaType":"application/vnd.oci.image.config.v1+json","digest":"{config_digest}","size":{}}},"layers":[]}}"#,
        config.len()
    );
    let manifest_digest = sha(manifest.as_bytes());
    let seen = std::sync::Arc::new(std::sync::Mutex::new(Vec::<String>::new()));
    let seen2 = seen.clone();
    let (config_s, config_digest_s) = (config.clone(), config_digest.clone());
    let server = tokio::spawn(async move {
        let (config, config_digest) = (config_s, config_digest_s);
        loop {
            let Ok((mut s, _)) = listener.accept().await else {
                return;
            };
            let mut buf = vec![0u8; 8192];
            let mut n = 0;
            while !buf[..n].windows(4).any(|w| w == b"\r\n\r\n") {
                let k = s.read(&mut buf[n..]).await.unwrap();
                if k == 0 {
                    break;
                }
                n += k;
            }
            let head = String::from_utf8_lossy(&buf[..n]).to_string();
            let line = head.lines().next().unwrap_or("").to_string();
            let path = line.split(' ').nth(1).unwrap_or("").to_string();
            let authed = head
                .to_ascii_lowercase()
                .contains("authorization: bearer tok-123");
            seen2
                .lock()
                .unwrap()
                .push(format!("{path} authed={authed}"));
            let (status, extra, body): (&str, String, Vec<u8>) = if path.starts_with("/token?") {
                ("200 OK", String::new(), br#"{"token":"tok-123"}"#.to_vec())
            } else if path.starts_with("/cdn/") {
                ("200 OK", String::new(), config.clone())
            } else if !authed {
                (
                    "401 Unauthorized",
                    format!("WWW-Authenticate: Bearer realm=\"http://127.0.0.1:{port}/token\",service=\"fake.registry\",scope=\"repository:fake/repo:pull\"\r\n"),
                    b"{}".to_vec(),
                )
            } else if path == "/v2/fake/repo/manifests/1" {
                (
                    "200 OK",
                    format!("Content-Type: {OCI_MANIFEST}\r\n"),
                    manifest.clone().into_bytes(),
                )
            } else if path == format!("/v2/fake/repo/blobs/{config_digest}") {
                (
                    "307 Temporary Redirect",
                    format!("Location: /cdn/{config_digest}\r\n"),
                    vec![],
                )
            } else {
                ("404 Not Found", String::new(), vec![])
            };
            let resp = format!(
                "HTTP/1.1 {status}\r\n{extra}Content-Length: {}\r\nConnection: close\r\n\r\n",
                body.len()
            );
            let _ = s.write_all(resp.as_bytes()).await;
            let _ = s.write_all(&body).await;
            let _ = s.shutdown().await;
        }
    });
    let got = RegistryClient::new(DockerAuth::anonymous())
        .resolve(&format!("127.0.0.1:{port}/fake/repo:1"))
        .await
        .unwrap();
    server.abort();
    assert_eq!(got.digest, manifest_digest);
    assert_eq!(got.config, config);
    let seen = seen.lock().unwrap().clone();
    assert_eq!(
        seen,
        [
            "/v2/fake/repo/manifests/1 authed=false".to_string(),
            "/token?service=fake.registry&scope=repository%3Afake%2Frepo%3Apull authed=false"
                .into(),
            "/v2/fake/repo/manifests/1 authed=true".into(),
            format!("/v2/fake/repo/blobs/{config_digest} authed=true"),
            format!("/cdn/{config_digest} authed=true"),
        ]
    );
}
