//! buildctl's connection helpers: addresses whose bytes travel through a child process's
//! stdin and stdout, which runs `buildctl dial-stdio` next to the daemon.
//!
//! | address | child (as buildctl runs it) |
//! |---|---|
//! | `docker-container://NAME[?context=CTX]` | `docker [--context=CTX] exec -i NAME buildctl dial-stdio` |
//! | `podman-container://NAME` | `podman exec -i NAME buildctl dial-stdio` |
//! | `nerdctl-container://NAME[?namespace=NS]` | `nerdctl exec [--namespace NS] -i NAME buildctl dial-stdio` |
//! | `kube-pod://POD[?namespace=&context=&container=]` | `kubectl --context=CTX --namespace=NS exec --container=C -i POD -- buildctl dial-stdio` |
//! | `ssh://[USER@]HOST[:PORT][/SOCKET]` | `ssh [-l USER] [-p PORT] -- HOST buildctl [--addr unix://SOCKET] dial-stdio` |
//!
//! The argument lists are buildctl's (`client/connhelper/*` in moby/buildkit), so a
//! `BUILDKIT_HOST` that works with buildctl works here. Each dial starts one child; it is
//! killed when the connection is dropped. What the child writes to stderr is kept (the
//! last 16 KiB) so that a failed connection can say what the helper said.
//!
//! Two more come from buildx's builder store ([`crate::buildkit::builder`]): a
//! `docker-container` builder on a Docker host given by URL (`docker --host=URL exec …`),
//! and a `kubernetes` builder, whose pod is chosen at each dial among the running pods of
//! its deployment (`kubectl get pods --selector=app=NAME`), as buildx's pod chooser does.

use std::fmt;
use std::io;
use std::pin::Pin;
use std::process::{ExitStatus, Stdio};
use std::sync::{Arc, Mutex};
use std::task::{Context, Poll};
use std::time::Duration;

use tokio::io::{AsyncRead, AsyncReadExt, AsyncWrite, ReadBuf};
use tokio::process::{ChildStdin, ChildStdout, Command};

/// How much of a helper's stderr is kept for messages.
const STDERR_KEEP: usize = 16 << 10;

/// A connection helper address (see the module docs for the commands).
#[derive(Debug, Clone, PartialEq, Eq)]
pub enum Helper {
    /// `docker-container://NAME?context=CTX`: `docker exec` into a BuildKit container.
    DockerContainer {
        /// The container name or id.
        container: String,
        /// `--context=` for the docker CLI.
        context: Option<String>,
        /// `--host=` for the docker CLI (a buildx builder on a Docker host URL).
        host: Option<String>,
    },
    /// `podman-container://NAME`.
    PodmanContainer {
        /// The container name or id.
        container: String,
    },
    /// `nerdctl-container://NAME?namespace=NS`.
    NerdctlContainer {
        /// The container name or id.
        container: String,
        /// The containerd namespace.
        namespace: Option<String>,
    },
    /// `kube-pod://POD?namespace=&context=&container=`: `kubectl exec` into a pod.
    KubePod {
        /// The pod name.
        pod: String,
        /// The Kubernetes namespace (empty: kubectl's default).
        namespace: String,
        /// The kubeconfig context (empty: kubectl's current).
        context: String,
        /// The container in the pod (empty: kubectl's default).
        container: String,
    },
    /// A buildx `kubernetes` builder: one running pod of deployment `deployment`, chosen
    /// at each dial.
    KubeDeployment {
        /// The deployment (buildx's node name); its pods carry `app=<deployment>`.
        deployment: String,
        /// The namespace (empty: kubectl's default).
        namespace: String,
    },
    /// `ssh://USER@HOST:PORT/SOCKET`: `buildctl dial-stdio` on another host.
    Ssh {
        /// `-l USER`.
        user: Option<String>,
        /// The host.
        host: String,
        /// `-p PORT`.
        port: Option<u16>,
        /// buildkitd's socket on that host (`--addr unix://SOCKET`).
        socket: Option<String>,
    },
}

/// What is escaped in a query value when an address is printed: all but RFC 3986's
/// unreserved characters.
const QUERY_VALUE: &percent_encoding::AsciiSet = &percent_encoding::NON_ALPHANUMERIC
    .remove(b'-')
    .remove(b'.')
    .remove(b'_')
    .remove(b'~');

/// The schemes [`Helper::parse`] takes.
pub const SCHEMES: [&str; 5] = [
    "docker-container",
    "podman-container",
    "nerdctl-container",
    "kube-pod",
    "ssh",
];

impl Helper {
    /// Parses a helper address as buildctl does (`SpecFromURL` of each helper); the error
    /// is the reason, for [`super::transport::TransportError::InvalidAddress`].
    pub fn parse(addr: &str) -> Result<Helper, String> {
        let u = url::Url::parse(addr).map_err(|e| format!("not a URL: {e}"))?;
        let host = u.host_str().unwrap_or_default().to_string();
        let query = |key: &str| {
            u.query_pairs()
                .find(|(k, _)| k == key)
                .map(|(_, v)| v.into_owned())
                .filter(|v| !v.is_empty())
        };
        match u.scheme() {
            "docker-container" | "podman-container" | "nerdctl-container" => {
                if host.is_empty() {
                    return Err(format!(
                        "the container name is missing (`{}://NAME`)",
                        u.scheme()
                    ));
                }
                Ok(match u.scheme() {
                    "docker-container" => Helper::DockerContainer {
                        container: host,
                        context: query("context"),
                        host: None,
                    },
                    "podman-container" => Helper::PodmanContainer { container: host },
                    _ => Helper::NerdctlContainer {
                        container: host,
                        namespace: query("namespace"),
                    },
                })
            }
            "kube-pod" => {
                let kube_name = |what: &str, v: &str| {
                    if v.is_empty()
                        || v.bytes().all(|b| {
                            b.is_ascii_lowercase() || b.is_ascii_digit() || b == b'-' || b == b'.'
                        })
                    {
                        Ok(())
                    } else {
                        Err(format!(
                            "unsupported {what} name `{v}` (Kubernetes names are lower-case letters, digits, `-` and `.`)"
                        ))
                    }
                };
                if host.is_empty() {
                    return Err("the pod name is missing (`kube-pod://POD`)".into());
                }
                let namespace = query("namespace").unwrap_or_default();
                let container = query("container").unwrap_or_default();
                kube_name("pod", &host)?;
                kube_name("namespace", &namespace)?;
                kube_name("container", &container)?;
                Ok(Helper::KubePod {
                    pod: host,
                    namespace,
                    context: query("context").unwrap_or_default(),
                    container,
                })
            }
            "ssh" => {
                if host.is_empty() {
                    return Err("the host is missing (`ssh://[USER@]HOST[:PORT]`)".into());
                }
                if u.password().is_some() {
                    return Err(
                        "a password in the address is not supported; use an SSH key or agent"
                            .into(),
                    );
                }
                if let Some(q) = u.query() {
                    return Err(format!("unexpected query `?{q}` after the host"));
                }
                if let Some(f) = u.fragment() {
                    return Err(format!("unexpected fragment `#{f}` after the host"));
                }
                let user = percent_encoding::percent_decode_str(u.username())
                    .decode_utf8_lossy()
                    .into_owned();
                Ok(Helper::Ssh {
                    user: Some(user).filter(|u| !u.is_empty()),
                    host,
                    port: u.port(),
                    socket: Some(u.path().to_string()).filter(|p| !p.is_empty()),
                })
            }
            other => Err(format!("`{other}://` is not a connection helper")),
        }
    }

    /// The program this helper runs (`docker`, `kubectl`, `ssh`, …).
    pub fn program(&self) -> &'static str {
        match self {
            Helper::DockerContainer { .. } => "docker",
            Helper::PodmanContainer { .. } => "podman",
            Helper::NerdctlContainer { .. } => "nerdctl",
            Helper::KubePod { .. } | Helper::KubeDeployment { .. } => "kubectl",
            Helper::Ssh { .. } => "ssh",
        }
    }

    /// The arguments after the program, exactly as buildctl passes them. For
    /// [`Helper::KubeDeployment`], those of the `kube-pod` exec into `pod`.
    pub fn args(&self) -> Vec<String> {
        let dial = ["buildctl".to_string(), "dial-stdio".to_string()];
        let mut a = Vec::new();
        match self {
            Helper::DockerContainer {
                container,
                context,
                host,
            } => {
                if let Some(c) = context {
                    a.push(format!("--context={c}"));
                }
                if let Some(h) = host {
                    a.push(format!("--host={h}"));
                }
                a.extend(["exec".into(), "-i".into(), container.clone()]);
                a.extend(dial);
            }
            Helper::PodmanContainer { container } => {
                a.extend(["exec".into(), "-i".into(), container.clone()]);
                a.extend(dial);
            }
            Helper::NerdctlContainer {
                container,
                namespace,
            } => {
                a.push("exec".into());
                if let Some(ns) = namespace {
                    a.extend(["--namespace".into(), ns.clone()]);
                }
                a.extend(["-i".into(), container.clone()]);
                a.extend(dial);
            }
            Helper::KubePod {
                pod,
                namespace,
                context,
                container,
            } => {
                a.extend([
                    format!("--context={context}"),
                    format!("--namespace={namespace}"),
                    "exec".into(),
                    format!("--container={container}"),
                    "-i".into(),
                    pod.clone(),
                    "--".into(),
                ]);
                a.extend(dial);
            }
            Helper::KubeDeployment { .. } => {
                a.extend(["get".into(), "pods".into()]);
            }
            Helper::Ssh {
                user,
                host,
                port,
                socket,
            } => {
                if let Some(u) = user {
                    a.extend(["-l".into(), u.clone()]);
                }
                if let Some(p) = port {
                    a.extend(["-p".into(), p.to_string()]);
                }
                a.extend(["--".into(), host.clone(), "buildctl".into()]);
                if let Some(s) = socket {
                    a.extend(["--addr".into(), format!("unix://{s}")]);
                }
                a.push("dial-stdio".into());
            }
        }
        a
    }

    /// The command line as a user would type it, for messages.
    pub fn command_line(&self) -> String {
        command_line(self.program(), &self.args())
    }

    /// Starts the helper: one child process whose stdio is the connection. For a
    /// `kubernetes` builder, first picks the pod.
    pub async fn spawn(&self) -> Result<HelperStream, HelperError> {
        let helper = match self {
            Helper::KubeDeployment {
                deployment,
                namespace,
            } => Helper::KubePod {
                pod: choose_pod(deployment, namespace).await?,
                namespace: namespace.clone(),
                context: String::new(),
                container: String::new(),
            },
            h => h.clone(),
        };
        spawn_command(helper.program(), &helper.args())
    }
}

/// Starts `program args` with its stdio as the connection.
fn spawn_command(program: &'static str, args: &[String]) -> Result<HelperStream, HelperError> {
    let line = command_line(program, args);
    let mut child = Command::new(program)
        .args(args)
        .stdin(Stdio::piped())
        .stdout(Stdio::piped())
        .stderr(Stdio::piped())
        .kill_on_drop(true)
        .spawn()
        .map_err(|source| HelperError::Spawn {
            command: line.clone(),
            program,
            source,
        })?;
    let (Some(stdin), Some(stdout), Some(mut stderr)) =
        (child.stdin.take(), child.stdout.take(), child.stderr.take())
    else {
        return Err(HelperError::Spawn {
            command: line,
            program,
            source: io::Error::other("the child's pipes were not opened"),
        });
    };
    let diag = Diagnostics {
        command: line,
        stderr: Arc::default(),
        status: Arc::default(),
        head: Arc::default(),
    };
    let (kill_tx, kill_rx) = tokio::sync::oneshot::channel::<()>();
    let kept = Arc::clone(&diag.stderr);
    let drain = tokio::spawn(async move {
        let mut buf = [0u8; 4096];
        while let Ok(n) = stderr.read(&mut buf).await {
            if n == 0 {
                break;
            }
            if let Ok(mut k) = kept.lock() {
                k.extend_from_slice(&buf[..n]);
                let over = k.len().saturating_sub(STDERR_KEEP);
                k.drain(..over);
            }
        }
    });
    let status = Arc::clone(&diag.status);
    tokio::spawn(async move {
        let exited = tokio::select! {
            s = child.wait() => s.ok(),
            _ = kill_rx => {
                // The connection was dropped; a helper that failed is often exiting by
                // itself just now, and its own status says more than our kill.
                match tokio::time::timeout(Duration::from_millis(500), child.wait()).await {
                    Ok(s) => s.ok(),
                    Err(_) => {
                        let _ = child.kill().await;
                        None
                    }
                }
            }
        };
        // Everything the child wrote before it exited (unless something it started keeps
        // stderr open), then its status.
        let _ = tokio::time::timeout(Duration::from_secs(1), drain).await;
        if let Ok(mut slot) = status.lock() {
            *slot = Some(exited);
        }
    });
    Ok(HelperStream {
        stdout,
        stdin,
        diag,
        _kill: kill_tx,
    })
}

impl fmt::Display for Helper {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        let enc = |s: &str| percent_encoding::utf8_percent_encode(s, QUERY_VALUE).to_string();
        match self {
            Helper::DockerContainer {
                container,
                context,
                host,
            } => {
                write!(f, "docker-container://{container}")?;
                if let Some(c) = context {
                    write!(f, "?context={}", enc(c))?;
                }
                if let Some(h) = host {
                    write!(f, " (Docker host {h})")?;
                }
                Ok(())
            }
            Helper::PodmanContainer { container } => write!(f, "podman-container://{container}"),
            Helper::NerdctlContainer {
                container,
                namespace,
            } => {
                write!(f, "nerdctl-container://{container}")?;
                if let Some(ns) = namespace {
                    write!(f, "?namespace={}", enc(ns))?;
                }
                Ok(())
            }
            Helper::KubePod {
                pod,
                namespace,
                context,
                container,
            } => {
                write!(f, "kube-pod://{pod}")?;
                let q: Vec<String> = [
                    ("namespace", namespace),
                    ("context", context),
                    ("container", container),
                ]
                .into_iter()
                .filter(|(_, v)| !v.is_empty())
                .map(|(k, v)| format!("{k}={}", enc(v)))
                .collect();
                if !q.is_empty() {
                    write!(f, "?{}", q.join("&"))?;
                }
                Ok(())
            }
            Helper::KubeDeployment {
                deployment,
                namespace,
            } => {
                write!(f, "a running pod of Kubernetes deployment {deployment}")?;
                if !namespace.is_empty() {
                    write!(f, " in namespace {namespace}")?;
                }
                Ok(())
            }
            Helper::Ssh {
                user,
                host,
                port,
                socket,
            } => {
                f.write_str("ssh://")?;
                if let Some(u) = user {
                    write!(f, "{}@", enc(u))?;
                }
                f.write_str(host)?;
                if let Some(p) = port {
                    write!(f, ":{p}")?;
                }
                if let Some(s) = socket {
                    f.write_str(s)?;
                }
                Ok(())
            }
        }
    }
}

/// `kubectl get pods` of a buildx kubernetes builder: the first running pod (by name) of
/// its deployment, whose pods carry the label `app=<deployment>` (buildx's manifest).
async fn choose_pod(deployment: &str, namespace: &str) -> Result<String, HelperError> {
    let mut args = vec![
        "get".to_string(),
        "pods".into(),
        format!("--selector=app={deployment}"),
        "--field-selector=status.phase=Running".into(),
        "--output=jsonpath={.items[*].metadata.name}".into(),
    ];
    if !namespace.is_empty() {
        args.insert(0, format!("--namespace={namespace}"));
    }
    let line = command_line("kubectl", &args);
    let out = Command::new("kubectl")
        .args(&args)
        .stdin(Stdio::null())
        .output()
        .await
        .map_err(|source| HelperError::Spawn {
            command: line.clone(),
            program: "kubectl",
            source,
        })?;
    if !out.status.success() {
        return Err(HelperError::Exited {
            command: line,
            status: Some(out.status),
            stderr: String::from_utf8_lossy(&out.stderr).trim().to_string(),
            during: None,
        });
    }
    let mut pods: Vec<String> = String::from_utf8_lossy(&out.stdout)
        .split_whitespace()
        .map(str::to_string)
        .collect();
    pods.sort();
    pods.into_iter().next().ok_or_else(|| HelperError::NoPod {
        command: line,
        deployment: deployment.to_string(),
    })
}

/// A command line for messages: arguments with spaces or quotes are single-quoted.
fn command_line(program: &str, args: &[String]) -> String {
    let mut s = program.to_string();
    for a in args {
        s.push(' ');
        if a.is_empty()
            || a.contains(|c: char| c.is_whitespace() || "'\"$`\\{}*?;&|<>()".contains(c))
        {
            s.push('\'');
            s.push_str(&a.replace('\'', r"'\''"));
            s.push('\'');
        } else {
            s.push_str(a);
        }
    }
    s
}

/// What a running helper has said so far: its command, stderr and (once it exited) status.
#[derive(Debug, Clone)]
pub struct Diagnostics {
    command: String,
    stderr: Arc<Mutex<Vec<u8>>>,
    /// Set when the child is gone: `Some(status)`, or `None` when it was killed here.
    status: Arc<Mutex<Option<Option<ExitStatus>>>>,
    /// The first bytes the child wrote on stdout: the daemon's HTTP/2 SETTINGS frame when
    /// all is well, else often a message (`docker exec` prints its OCI errors there).
    head: Arc<Mutex<Vec<u8>>>,
}

impl Diagnostics {
    /// The helper's command line.
    pub fn command(&self) -> &str {
        &self.command
    }

    /// Waits up to `limit` for the child to exit, then says what it said, as an error
    /// whose cause is `during` (what failed on the connection).
    pub async fn error(&self, limit: Duration, during: Option<String>) -> HelperError {
        let deadline = tokio::time::Instant::now() + limit;
        let status = loop {
            let s = self.status.lock().ok().and_then(|s| *s);
            if let Some(s) = s {
                break s;
            }
            if tokio::time::Instant::now() >= deadline {
                break None;
            }
            tokio::time::sleep(Duration::from_millis(20)).await;
        };
        let mut said = self
            .stderr
            .lock()
            .map(|b| String::from_utf8_lossy(&b).trim().to_string())
            .unwrap_or_default();
        let head = self.head.lock().map(|h| h.clone()).unwrap_or_default();
        if let Some(text) = not_http2(&head) {
            if !said.is_empty() {
                said.push('\n');
            }
            said.push_str(&text);
        }
        HelperError::Exited {
            command: self.command.clone(),
            status,
            stderr: said,
            during,
        }
    }
}

/// What a helper wrote on stdout instead of HTTP/2, as text: `None` when `head` is empty
/// or starts with an HTTP/2 frame header of type SETTINGS (what a server sends first).
fn not_http2(head: &[u8]) -> Option<String> {
    if head.is_empty() || (head.len() >= 4 && head[3] == 0x04 && head[0] == 0) {
        return None;
    }
    let text = String::from_utf8_lossy(head);
    let text: String = text
        .chars()
        .filter(|c| !c.is_control() || *c == '\n')
        .collect();
    Some(text.trim().to_string()).filter(|t| !t.is_empty())
}

/// How many of the first stdout bytes [`Diagnostics`] keeps.
const HEAD_KEEP: usize = 512;

/// A helper's stdio as one duplex byte stream. Dropping it kills the child.
#[derive(Debug)]
pub struct HelperStream {
    stdout: ChildStdout,
    stdin: ChildStdin,
    diag: Diagnostics,
    _kill: tokio::sync::oneshot::Sender<()>,
}

impl HelperStream {
    /// What the child has said so far.
    pub fn diagnostics(&self) -> Diagnostics {
        self.diag.clone()
    }
}

impl AsyncRead for HelperStream {
    fn poll_read(
        mut self: Pin<&mut Self>,
        cx: &mut Context<'_>,
        buf: &mut ReadBuf<'_>,
    ) -> Poll<io::Result<()>> {
        let before = buf.filled().len();
        let polled = Pin::new(&mut self.stdout).poll_read(cx, buf);
        if let Ok(mut head) = self.diag.head.lock() {
            if head.len() < HEAD_KEEP {
                let new = &buf.filled()[before..];
                let take = new.len().min(HEAD_KEEP - head.len());
                head.extend_from_slice(&new[..take]);
            }
        }
        polled
    }
}

impl AsyncWrite for HelperStream {
    fn poll_write(
        mut self: Pin<&mut Self>,
        cx: &mut Context<'_>,
        buf: &[u8],
    ) -> Poll<io::Result<usize>> {
        Pin::new(&mut self.stdin).poll_write(cx, buf)
    }

    fn poll_flush(mut self: Pin<&mut Self>, cx: &mut Context<'_>) -> Poll<io::Result<()>> {
        Pin::new(&mut self.stdin).poll_flush(cx)
    }

    fn poll_shutdown(mut self: Pin<&mut Self>, cx: &mut Context<'_>) -> Poll<io::Result<()>> {
        Pin::new(&mut self.stdin).poll_shutdown(cx)
    }
}

/// Why a connection helper gave no connection.
#[derive(Debug, thiserror::Error)]
pub enum HelperError {
    /// The program could not be started (not on PATH, not executable).
    #[error("cannot run the connection helper `{command}`: {source}")]
    Spawn {
        /// The command line.
        command: String,
        /// The program, for the hint.
        program: &'static str,
        /// The OS error.
        source: io::Error,
    },
    /// The helper exited, or the connection through it failed.
    #[error("the connection helper `{command}` {}{}{}",
        match status {
            Some(s) => format!("exited with {s}"),
            None => "gave no BuildKit connection".to_string(),
        },
        during.as_ref().map(|d| format!(" ({d})")).unwrap_or_default(),
        if stderr.is_empty() { String::new() } else { format!(":\n  {}", stderr.replace('\n', "\n  ")) })]
    Exited {
        /// The command line.
        command: String,
        /// Its exit status, if it exited.
        status: Option<ExitStatus>,
        /// What it wrote to stderr (the end of it).
        stderr: String,
        /// What failed on the connection.
        during: Option<String>,
    },
    /// A kubernetes builder's deployment has no running pod.
    #[error("no running BuildKit pod of deployment `{deployment}` (`{command}` listed none)")]
    NoPod {
        /// The `kubectl get pods` command line.
        command: String,
        /// The deployment.
        deployment: String,
    },
}

impl HelperError {
    /// A fix for the message.
    pub fn hint(&self) -> String {
        match self {
            HelperError::Spawn { program, source, .. }
                if source.kind() == io::ErrorKind::NotFound =>
            {
                format!("install `{program}` or put it on PATH: the address is reached through it, as with buildctl")
            }
            HelperError::Spawn { program, .. } => format!("check that `{program}` on PATH can be run by this user"),
            HelperError::Exited { stderr, .. }
                if stderr.contains("buildctl") && (stderr.contains("not found") || stderr.contains("no such file")) =>
            {
                "the target has no `buildctl` on its PATH: connection helpers need a BuildKit image (moby/buildkit, v0.5 or later), whose `buildctl dial-stdio` reaches its buildkitd".into()
            }
            HelperError::Exited { .. } => "run the command above by hand to see why it fails (is the container, pod or host running BuildKit, and may this user reach it?)".into(),
            HelperError::NoPod { .. } => "check the builder's pods (`kubectl get pods --selector=app=NAME`) and wait until one is Running, or bootstrap the builder with `docker buildx inspect --bootstrap`".into(),
        }
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    fn parse(s: &str) -> Helper {
        Helper::parse(s).unwrap_or_else(|e| panic!("{s}: {e}"))
    }

    #[test]
    fn commands_are_buildctls() {
        let cases = [
            (
                "docker-container://buildkitd",
                "docker exec -i buildkitd buildctl dial-stdio",
            ),
            (
                "docker-container://buildx_buildkit_ci0?context=remote",
                "docker --context=remote exec -i buildx_buildkit_ci0 buildctl dial-stdio",
            ),
            (
                "podman-container://bk",
                "podman exec -i bk buildctl dial-stdio",
            ),
            (
                "nerdctl-container://bk?namespace=k8s.io",
                "nerdctl exec --namespace k8s.io -i bk buildctl dial-stdio",
            ),
            (
                "kube-pod://buildkitd-0",
                "kubectl --context= --namespace= exec --container= -i buildkitd-0 -- buildctl dial-stdio",
            ),
            (
                "kube-pod://buildkitd-0?namespace=ci&context=prod&container=buildkitd",
                "kubectl --context=prod --namespace=ci exec --container=buildkitd -i buildkitd-0 -- buildctl dial-stdio",
            ),
            ("ssh://builder", "ssh -- builder buildctl dial-stdio"),
            (
                "ssh://me@builder:2222/run/buildkit/buildkitd.sock",
                "ssh -l me -p 2222 -- builder buildctl --addr unix:///run/buildkit/buildkitd.sock dial-stdio",
            ),
        ];
        for (addr, want) in cases {
            let h = parse(addr);
            let args = h.args();
            assert_eq!(
                format!("{} {}", h.program(), args.join(" ")),
                want,
                "{addr}"
            );
        }
    }

    #[test]
    fn addresses_print_as_given() {
        for a in [
            "docker-container://buildkitd",
            "docker-container://bk?context=remote",
            "podman-container://bk",
            "nerdctl-container://bk?namespace=k8s.io",
            "kube-pod://buildkitd-0",
            "kube-pod://buildkitd-0?namespace=ci&context=prod&container=buildkitd",
            "ssh://builder",
            "ssh://me@builder:2222/run/buildkit/buildkitd.sock",
        ] {
            assert_eq!(parse(a).to_string(), a);
        }
    }

    #[test]
    fn bad_helper_addresses_say_why() {
        for (a, why) in [
            ("docker-container://", "container name is missing"),
            ("podman-container://", "container name is missing"),
            ("kube-pod://", "pod name is missing"),
            ("kube-pod://Pod_1", "unsupported pod name"),
            (
                "kube-pod://p?namespace=Bad_NS",
                "unsupported namespace name",
            ),
            ("kube-pod://p?container=C", "unsupported container name"),
            ("ssh://", "host is missing"),
            ("ssh://me:secret@host", "password"),
            ("ssh://host?socket=/x", "unexpected query"),
            ("ssh://host#frag", "unexpected fragment"),
        ] {
            let e = Helper::parse(a).expect_err(a);
            assert!(e.contains(why), "{a}: {e}");
        }
    }

    #[test]
    fn a_message_instead_of_http2_is_kept() {
        // The empty SETTINGS frame a gRPC server sends first.
        assert_eq!(not_http2(b"\0\0\0\x04\0\0\0\0\0"), None);
        assert_eq!(not_http2(b""), None);
        assert_eq!(
            not_http2(b"OCI runtime exec failed: exec: \"buildctl\": executable file not found in $PATH: unknown\r\n").as_deref(),
            Some("OCI runtime exec failed: exec: \"buildctl\": executable file not found in $PATH: unknown")
        );
    }

    #[test]
    fn command_lines_quote_what_a_shell_would_split() {
        assert_eq!(
            command_line("kubectl", &["--context=".into(), "a b".into(), "x".into()]),
            "kubectl --context= 'a b' x"
        );
        assert_eq!(command_line("p", &[String::new()]), "p ''");
    }

    #[tokio::test]
    async fn a_missing_program_is_named() {
        let e = spawn_command("torchkit-no-such-helper", &["exec".into()])
            .expect_err("no such program");
        assert!(
            e.to_string()
                .contains("cannot run the connection helper `torchkit-no-such-helper exec`"),
            "{e}"
        );
        assert!(
            e.hint().contains("install `torchkit-no-such-helper`"),
            "{}",
            e.hint()
        );
    }

    #[tokio::test]
    async fn a_helper_that_exits_is_reported_with_its_stderr() {
        let s = spawn_command(
            "sh",
            &[
                "-c".into(),
                "echo 'exec: \"buildctl\": executable file not found in $PATH' >&2; exit 126"
                    .into(),
            ],
        )
        .expect("sh runs");
        let e = s
            .diagnostics()
            .error(
                Duration::from_secs(10),
                Some("the connection closed".into()),
            )
            .await;
        let msg = e.to_string();
        assert!(msg.contains("exited with exit status: 126"), "{msg}");
        assert!(msg.contains("(the connection closed)"), "{msg}");
        assert!(msg.contains("executable file not found"), "{msg}");
        assert!(e.hint().contains("no `buildctl`"), "{}", e.hint());
    }

    #[tokio::test]
    async fn dropping_the_stream_kills_the_helper() {
        let s = spawn_command("sh", &["-c".into(), "exec sleep 30".into()]).expect("sh runs");
        let d = s.diagnostics();
        drop(s);
        let e = d.error(Duration::from_secs(10), None).await;
        match e {
            HelperError::Exited { status: None, .. } => {}
            HelperError::Exited {
                status: Some(st), ..
            } => assert!(!st.success(), "{st}"),
            other => panic!("{other}"),
        }
    }
}
