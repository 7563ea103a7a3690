//! Helpers shared by the integration tests: [`TestCommand`], the one way to run the
//! `torchkit` binary; [`serial`], the cross-process lock over the daemon's build cache; and,
//! for the end-to-end tests against the real daemon of the test environment
//! (`scripts/test-env.sh up`): where the Docker socket is, a failing check when it is not
//! there, throw-away TLS certificates, a TLS-terminating proxy in front of dockerd, and a
//! unix-socket proxy that a test can cut to simulate a daemon dying mid-build.
#![allow(dead_code)]

pub mod command;
pub mod golden;
pub mod http;
pub mod serial;

#[allow(unused_imports)] // each test binary uses a part
pub use command::{tail, Run, TestCommand};

use std::io::{Read, Write};
use std::net::Shutdown;
use std::os::unix::net::{UnixListener, UnixStream};
use std::path::{Path, PathBuf};
use std::sync::atomic::{AtomicBool, Ordering};
use std::sync::{Arc, Mutex};
use std::time::{Duration, Instant};

/// What to do when the daemon is missing.
pub const START_HINT: &str = "These tests need the real daemon: run `scripts/test-env.sh up` (as root; STANDIN=1 for the pytorch stand-in), then `. /var/lib/torchkit-test-env/env.sh`.";

/// The Docker socket of the test environment: `DOCKER_HOST` (unix) or the default.
pub fn docker_socket() -> PathBuf {
    std::env::var("DOCKER_HOST")
        .ok()
        .and_then(|h| h.strip_prefix("unix://").map(PathBuf::from))
        .unwrap_or_else(|| PathBuf::from("/var/run/docker.sock"))
}

/// A `docker` command for the test daemon that finds the Debian buildx plugin even when
/// `env.sh` was not sourced (the test env's `DOCKER_CONFIG`), BuildKit on, plain progress.
pub fn docker_command() -> std::process::Command {
    let mut c = std::process::Command::new("docker");
    if std::env::var_os("DOCKER_CONFIG").is_none() {
        let cfg = Path::new("/var/lib/torchkit-test-env").join("docker-config");
        if cfg.is_dir() {
            c.env("DOCKER_CONFIG", cfg);
        }
    }
    c.env("DOCKER_BUILDKIT", "1");
    c.env("BUILDKIT_PROGRESS", "plain");
    c
}

/// `docker ARGS` (no stdin), which must succeed: its stdout.
pub fn docker(args: &[&str]) -> String {
    let out = std::process::Command::new("docker")
        .args(args)
        .stdin(std::process::Stdio::null())
        .output()
        .unwrap_or_else(|e| panic!("docker {args:?}: {e}\n{START_HINT}"));
    assert!(
        out.status.success(),
        "docker {args:?} failed: {}",
        String::from_utf8_lossy(&out.stderr)
    );
    String::from_utf8_lossy(&out.stdout).into_owned()
}

/// Polls `done` every 50 ms until it yields a value; `None` when `limit` passes first. The
/// way to wait for something to happen, never a fixed sleep.
pub fn poll_until<T>(limit: Duration, mut done: impl FnMut() -> Option<T>) -> Option<T> {
    let deadline = Instant::now() + limit;
    loop {
        if let Some(v) = done() {
            return Some(v);
        }
        if Instant::now() >= deadline {
            return None;
        }
        std::thread::sleep(Duration::from_millis(50));
    }
}

/// [`poll_until`], failing with `what` on timeout.
pub fn wait_for<T>(what: &str, limit: Duration, done: impl FnMut() -> Option<T>) -> T {
    poll_until(limit, done).unwrap_or_else(|| panic!("timed out after {limit:?}: {what}"))
}

/// A value no earlier run used (`PREFIX-PID-NANOS`): the daemon's build cache and the
/// registry outlive test runs.
pub fn unique(prefix: &str) -> String {
    let nanos = std::time::SystemTime::now()
        .duration_since(std::time::UNIX_EPOCH)
        .unwrap()
        .as_nanos();
    format!("{prefix}-{}-{nanos}", std::process::id())
}

/// Copies the directory tree `from` to `to` (created if missing).
pub fn copy_dir(from: &Path, to: &Path) {
    std::fs::create_dir_all(to).unwrap();
    for e in std::fs::read_dir(from).unwrap_or_else(|e| panic!("{}: {e}", from.display())) {
        let e = e.unwrap();
        let dest = to.join(e.file_name());
        if e.file_type().unwrap().is_dir() {
            copy_dir(&e.path(), &dest);
        } else {
            std::fs::copy(e.path(), &dest).unwrap();
        }
    }
}

/// The docker bridge's gateway: how RUN containers reach this host.
pub fn host_gateway() -> String {
    docker(&[
        "network",
        "inspect",
        "bridge",
        "-f",
        "{{(index .IPAM.Config 0).Gateway}}",
    ])
    .trim()
    .to_string()
}

/// Whether the test daemon keeps images in the containerd image store (`docker info`'s
/// `DriverStatus`); the classic store's BuildKit has no `image`, `oci` or `docker`
/// exporter. scripts/test.sh runs the e2e tests on both.
pub fn containerd_store() -> bool {
    docker(&["info", "--format", "{{json .DriverStatus}}"]).contains("io.containerd.snapshotter.v1")
}

/// The test daemon's version (`docker version`'s server version: 20.10.24, 26.1.5, …).
pub fn docker_server_version() -> String {
    docker(&["version", "--format", "{{.Server.Version}}"])
        .trim()
        .to_string()
}

/// A tar archive's entries, without a leading `./`.
pub fn tar_list(path: &std::path::Path) -> Vec<String> {
    let out = std::process::Command::new("tar")
        .arg("-tf")
        .arg(path)
        .output()
        .unwrap();
    assert!(out.status.success(), "tar -tf {}", path.display());
    String::from_utf8_lossy(&out.stdout)
        .lines()
        .map(|l| l.trim_start_matches("./").to_string())
        .collect()
}

/// Panics (never skips) with the fix when dockerd does not answer `/_ping`.
pub fn require_daemon() {
    let sock = docker_socket();
    let answer = (|| -> std::io::Result<String> {
        let mut s = UnixStream::connect(&sock)?;
        s.set_read_timeout(Some(std::time::Duration::from_secs(10)))?;
        s.write_all(b"GET /_ping HTTP/1.1\r\nHost: docker\r\nConnection: close\r\n\r\n")?;
        let mut out = String::new();
        s.read_to_string(&mut out)?;
        Ok(out)
    })();
    match answer {
        Ok(a) if a.starts_with("HTTP/1.1 200") => {}
        Ok(a) => panic!(
            "dockerd at {} answered /_ping with {:?}\n{START_HINT}",
            sock.display(),
            a.lines().next().unwrap_or("")
        ),
        Err(e) => panic!("no dockerd at {}: {e}\n{START_HINT}", sock.display()),
    }
}

/// A plain HTTP/1.1 GET (std only); returns the whole response, head and body.
pub fn http_get(host: &str, path: &str, accept: &str) -> String {
    let mut s = std::net::TcpStream::connect(host)
        .unwrap_or_else(|e| panic!("nothing listens on {host} ({e})\n{START_HINT}"));
    s.set_read_timeout(Some(std::time::Duration::from_secs(30)))
        .unwrap();
    write!(
        s,
        "GET {path} HTTP/1.1\r\nHost: {host}\r\nAccept: {accept}\r\nConnection: close\r\n\r\n"
    )
    .unwrap();
    let mut buf = Vec::new();
    s.read_to_end(&mut buf).unwrap();
    String::from_utf8_lossy(&buf).into_owned()
}

/// Manifest media types a registry may answer with.
pub const MANIFEST_TYPES: &str = "application/vnd.oci.image.manifest.v1+json, application/vnd.oci.image.index.v1+json, application/vnd.docker.distribution.manifest.v2+json, application/vnd.docker.distribution.manifest.list.v2+json";

/// The `Docker-Content-Digest` of `repo:reference` in the registry at `host`, or `None`
/// when the registry does not have it.
pub fn registry_digest(host: &str, repo: &str, reference: &str) -> Option<String> {
    let resp = http_get(
        host,
        &format!("/v2/{repo}/manifests/{reference}"),
        MANIFEST_TYPES,
    );
    if !resp.starts_with("HTTP/1.1 200") {
        return None;
    }
    resp.lines().take_while(|l| !l.is_empty()).find_map(|l| {
        let (k, v) = l.split_once(':')?;
        k.eq_ignore_ascii_case("docker-content-digest")
            .then(|| v.trim().to_string())
    })
}

/// Tag `repo:from` as `repo:to` in the registry at `host` (the manifest put again under the
/// new tag, as `crane tag` does); panics with the registry's answer when it refuses.
pub fn registry_retag(host: &str, repo: &str, from: &str, to: &str) {
    let resp = http_get(
        host,
        &format!("/v2/{repo}/manifests/{from}"),
        MANIFEST_TYPES,
    );
    let (head, body) = resp.split_once("\r\n\r\n").unwrap_or_else(|| {
        panic!("no manifest for {repo}:{from} in {host}:\n{resp}\n{START_HINT}")
    });
    assert!(
        head.starts_with("HTTP/1.1 200"),
        "no manifest for {repo}:{from} in {host}:\n{head}\n{START_HINT}"
    );
    let kind = head
        .lines()
        .find_map(|l| {
            let (k, v) = l.split_once(':')?;
            k.eq_ignore_ascii_case("content-type")
                .then(|| v.trim().to_string())
        })
        .expect("a manifest answer names its type");
    let mut s = std::net::TcpStream::connect(host).unwrap();
    write!(
        s,
        "PUT /v2/{repo}/manifests/{to} HTTP/1.1\r\nHost: {host}\r\nContent-Type: {kind}\r\nContent-Length: {}\r\nConnection: close\r\n\r\n{body}",
        body.len()
    )
    .unwrap();
    let mut out = String::new();
    s.read_to_string(&mut out).unwrap();
    assert!(out.starts_with("HTTP/1.1 201"), "PUT {repo}:{to}: {out}");
}

/// Writes a CA and a server certificate for `tk.test` / 127.0.0.1 with openssl; returns
/// (ca.pem, server cert, server key).
pub fn make_certs(dir: &Path) -> (PathBuf, PathBuf, PathBuf) {
    make_certs_for(dir, "127.0.0.1")
}

/// [`make_certs`] for a server at `ip` (and `tk.test`): the docker bridge's gateway, say,
/// for a server that RUN containers reach.
pub fn make_certs_for(dir: &Path, ip: &str) -> (PathBuf, PathBuf, PathBuf) {
    let run = |args: &[&str]| {
        let st = std::process::Command::new("openssl")
            .args(args)
            .current_dir(dir)
            .stderr(std::process::Stdio::null())
            .status()
            .expect("openssl");
        assert!(st.success(), "openssl {args:?}");
    };
    run(&[
        "req",
        "-x509",
        "-newkey",
        "rsa:2048",
        "-nodes",
        "-keyout",
        "ca.key",
        "-out",
        "ca.pem",
        "-days",
        "1",
        "-subj",
        "/CN=torchkit test CA",
        "-addext",
        "basicConstraints=critical,CA:TRUE",
        "-addext",
        "keyUsage=critical,keyCertSign",
    ]);
    run(&[
        "req",
        "-newkey",
        "rsa:2048",
        "-nodes",
        "-keyout",
        "server.key",
        "-out",
        "server.csr",
        "-subj",
        "/CN=tk.test",
    ]);
    std::fs::write(
        dir.join("ext.cnf"),
        format!("subjectAltName=DNS:tk.test,IP:{ip}\nextendedKeyUsage=serverAuth\n"),
    )
    .unwrap();
    run(&[
        "x509",
        "-req",
        "-in",
        "server.csr",
        "-CA",
        "ca.pem",
        "-CAkey",
        "ca.key",
        "-CAcreateserial",
        "-out",
        "server.pem",
        "-days",
        "1",
        "-extfile",
        "ext.cnf",
    ]);
    (
        dir.join("ca.pem"),
        dir.join("server.pem"),
        dir.join("server.key"),
    )
}

/// A TLS-terminating proxy in front of the Docker socket: for each TLS connection it
/// performs the `/grpc` upgrade on a fresh socket connection and splices the two. Runs on
/// the current tokio runtime; returns the TCP port on 127.0.0.1.
pub async fn tls_proxy(cert: &Path, key: &Path, docker: PathBuf) -> u16 {
    use tokio::io::{AsyncReadExt, AsyncWriteExt};
    let certs = rustls_pemfile::certs(&mut std::fs::read(cert).unwrap().as_slice())
        .collect::<Result<Vec<_>, _>>()
        .unwrap();
    let key = rustls_pemfile::private_key(&mut std::fs::read(key).unwrap().as_slice())
        .unwrap()
        .unwrap();
    let mut config = rustls::ServerConfig::builder_with_provider(Arc::new(
        rustls::crypto::ring::default_provider(),
    ))
    .with_safe_default_protocol_versions()
    .unwrap()
    .with_no_client_auth()
    .with_single_cert(certs, key)
    .unwrap();
    config.alpn_protocols = vec![b"h2".to_vec()];
    let acceptor = tokio_rustls::TlsAcceptor::from(Arc::new(config));
    let listener = tokio::net::TcpListener::bind("127.0.0.1:0").await.unwrap();
    let port = listener.local_addr().unwrap().port();
    tokio::spawn(async move {
        while let Ok((tcp, _)) = listener.accept().await {
            let acceptor = acceptor.clone();
            let docker = docker.clone();
            tokio::spawn(async move {
                let Ok(mut tls) = acceptor.accept(tcp).await else {
                    return;
                };
                let mut up = tokio::net::UnixStream::connect(&docker).await.unwrap();
                up.write_all(b"POST /grpc HTTP/1.1\r\nHost: docker\r\nContent-Length: 0\r\nConnection: Upgrade\r\nUpgrade: h2c\r\n\r\n").await.unwrap();
                let mut head = Vec::new();
                let mut b = [0u8; 1];
                while !head.ends_with(b"\r\n\r\n") {
                    if up.read(&mut b).await.unwrap() == 0 {
                        return;
                    }
                    head.push(b[0]);
                }
                assert!(head.starts_with(b"HTTP/1.1 101"));
                let _ = tokio::io::copy_bidirectional(&mut tls, &mut up).await;
            });
        }
    });
    port
}

/// A byte-for-byte unix-socket proxy in front of the Docker socket (plain threads, no
/// runtime), so a client can be pointed at `docker://<path>` and the "daemon" can be made
/// to vanish mid-build with [`UnixProxy::kill`].
pub struct UnixProxy {
    path: PathBuf,
    conns: Arc<Mutex<Vec<UnixStream>>>,
    dead: Arc<AtomicBool>,
}

impl UnixProxy {
    /// Listens on `path` and forwards every connection to `upstream`.
    pub fn start(path: &Path, upstream: PathBuf) -> UnixProxy {
        let listener = UnixListener::bind(path).expect("bind the proxy socket");
        let conns: Arc<Mutex<Vec<UnixStream>>> = Arc::default();
        let dead = Arc::new(AtomicBool::new(false));
        let (c, d) = (conns.clone(), dead.clone());
        std::thread::spawn(move || {
            for client in listener.incoming() {
                let Ok(client) = client else { break };
                if d.load(Ordering::SeqCst) {
                    let _ = client.shutdown(Shutdown::Both);
                    break;
                }
                let Ok(server) = UnixStream::connect(&upstream) else {
                    continue;
                };
                {
                    let mut list = c.lock().unwrap();
                    list.push(client.try_clone().unwrap());
                    list.push(server.try_clone().unwrap());
                }
                for (mut from, mut to) in [
                    (client.try_clone().unwrap(), server.try_clone().unwrap()),
                    (server, client),
                ] {
                    std::thread::spawn(move || {
                        let _ = std::io::copy(&mut from, &mut to);
                        let _ = to.shutdown(Shutdown::Write);
                    });
                }
            }
        });
        UnixProxy {
            path: path.to_path_buf(),
            conns,
            dead,
        }
    }

    /// The proxy's socket path.
    pub fn path(&self) -> &Path {
        &self.path
    }

    /// Cuts every connection and stops accepting: to the client, the daemon is gone.
    pub fn kill(&self) {
        if self.dead.swap(true, Ordering::SeqCst) {
            return;
        }
        // Wake the accept loop so it sees `dead` and drops the listener.
        let _ = UnixStream::connect(&self.path);
        let _ = std::fs::remove_file(&self.path);
        for s in self.conns.lock().unwrap().drain(..) {
            let _ = s.shutdown(Shutdown::Both);
        }
    }
}

impl Drop for UnixProxy {
    fn drop(&mut self) {
        self.kill();
    }
}

/// One vertex of a `--progress rawjson` run, merged over its status messages.
#[derive(Debug, Default, Clone)]
pub struct Vertex {
    /// The vertex name (`[torchkit 3/6] pip: …`).
    pub name: String,
    /// Reported cached.
    pub cached: bool,
    /// Reported completed.
    pub completed: bool,
    /// Its error, if any.
    pub error: String,
    /// Ids of its sub-statuses (`resolve …`, `transferring …`), in order, once each.
    pub statuses: Vec<String>,
}

/// The vertices of a `--progress rawjson` run (torchkit's stderr), by digest.
pub fn vertices(stderr: &str) -> std::collections::BTreeMap<String, Vertex> {
    let mut out: std::collections::BTreeMap<String, Vertex> = Default::default();
    for line in stderr.lines().filter(|l| l.starts_with('{')) {
        let Ok(msg) = serde_json::from_str::<serde_json::Value>(line) else {
            continue;
        };
        for v in msg["vertexes"].as_array().into_iter().flatten() {
            let e = out
                .entry(v["digest"].as_str().unwrap_or_default().to_string())
                .or_default();
            if let Some(n) = v["name"].as_str().filter(|n| !n.is_empty()) {
                e.name = n.to_string();
            }
            e.cached |= v["cached"].as_bool().unwrap_or(false);
            e.completed |= v["completed"].is_string();
            if let Some(err) = v["error"].as_str() {
                e.error = err.to_string();
            }
        }
        for s in msg["statuses"].as_array().into_iter().flatten() {
            let e = out
                .entry(s["vertex"].as_str().unwrap_or_default().to_string())
                .or_default();
            let id = s["id"].as_str().unwrap_or_default().to_string();
            if !e.statuses.contains(&id) {
                e.statuses.push(id);
            }
        }
    }
    out
}

/// The bytes a vertex reports transferred (`transferring …` statuses, their `current`),
/// the largest; 0 when it reports none. From a `--progress rawjson` run's stderr.
pub fn transferred(stderr: &str, vertex_name: &str) -> u64 {
    let mut digests = std::collections::BTreeSet::new();
    let mut most = 0;
    let msgs: Vec<serde_json::Value> = stderr
        .lines()
        .filter(|l| l.starts_with('{'))
        .filter_map(|l| serde_json::from_str(l).ok())
        .collect();
    for m in &msgs {
        for v in m["vertexes"].as_array().into_iter().flatten() {
            if v["name"] == vertex_name {
                digests.insert(v["digest"].as_str().unwrap_or_default().to_string());
            }
        }
    }
    for m in &msgs {
        for s in m["statuses"].as_array().into_iter().flatten() {
            if digests.contains(s["vertex"].as_str().unwrap_or_default()) {
                most = most.max(s["current"].as_u64().unwrap_or(0));
            }
        }
    }
    most
}

/// The plan's steps among the vertices (`[torchkit 3/6] pip: …` → `pip`; its resolve
/// vertex, `[torchkit 3/6] pip: resolve …`, → `pip:resolve`).
pub fn steps(stderr: &str) -> std::collections::BTreeMap<String, Vertex> {
    vertices(stderr)
        .into_values()
        .filter_map(|v| {
            let rest = v.name.strip_prefix("[torchkit ")?;
            let (counter, rest) = rest.split_once("] ")?;
            if !counter.contains('/') {
                return None;
            }
            let (step, what) = rest.split_once(": ")?;
            // A dependency step has two vertices: `pip: resolve …` and `pip: pip install …`.
            let key = if what.starts_with("resolve ") {
                format!("{step}:resolve")
            } else {
                step.to_string()
            };
            Some((key, v))
        })
        .collect()
}

/// One line per step, for assertion messages.
pub fn describe(steps: &std::collections::BTreeMap<String, Vertex>) -> String {
    steps
        .iter()
        .map(|(k, v)| {
            format!(
                "{k}: cached={} completed={} statuses={:?}",
                v.cached, v.completed, v.statuses
            )
        })
        .collect::<Vec<_>>()
        .join("\n")
}

/// A tonic channel to `att`'s session server over an in-memory pipe: the test plays the
/// daemon (the HTTP/2 client) against the real session services.
pub async fn session(att: torchkit::buildkit::session::Attachables) -> tonic::transport::Channel {
    let (client_io, server_io) = tokio::io::duplex(1 << 20);
    tokio::spawn(async move {
        let _ = att.serve(server_io).await;
    });
    let mut client_io = Some(client_io);
    tonic::transport::Endpoint::from_static("http://session")
        .connect_with_connector(tower::service_fn(move |_: tonic::transport::Uri| {
            let io = client_io.take();
            async move {
                io.map(hyper_util::rt::TokioIo::new)
                    .ok_or_else(|| std::io::Error::other("connector used twice"))
            }
        }))
        .await
        .expect("connect to session server")
}
