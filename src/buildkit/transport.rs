//! How the driver reaches a BuildKit daemon: address parsing (as `buildctl --addr`), the
//! default-address search, and the byte streams under gRPC.
//!
//! Three kinds of connection, all handed to tonic through
//! [`Endpoint::connect_with_connector`]:
//!
//! - `unix:///path`: a standalone buildkitd socket, HTTP/2 with prior knowledge;
//! - `tcp://host:port`: plain, or TLS with buildctl's `--tlscacert`, `--tlscert`, `--tlskey`
//!   and `--tlsservername` (TLS is done here with tokio-rustls and the ring provider, so that
//!   every failure can name the file or server name at fault);
//! - `docker://[/path/to/docker.sock]`: dockerd's embedded BuildKit. The connector sends
//!   `POST /grpc` with `Upgrade: h2c`, reads the `101 Switching Protocols` head up to its
//!   blank line, and hands the raw stream to HTTP/2 (moby `grpc_routes.go`). If the daemon
//!   refuses the upgrade, it falls back to plain gRPC on the socket, which Docker 29+ serves
//!   (`buildkit-protocol.md` §5).
//!
//! Every tonic client built on a [`Channel`] from here must raise its message limits to
//! [`MAX_MESSAGE_SIZE`] (BuildKit allows 16 MiB both ways).

use std::fmt;
use std::io;
use std::path::{Path, PathBuf};
use std::pin::Pin;
use std::str::FromStr;
use std::sync::Arc;
use std::time::Duration;

use hyper_util::rt::TokioIo;
use tokio::io::{AsyncRead, AsyncReadExt, AsyncWrite, AsyncWriteExt};
use tonic::transport::{Channel, Endpoint};

use crate::error::Hint;

use super::builder;
use super::helper::{Diagnostics, Helper, SCHEMES as HELPER_SCHEMES};

/// BuildKit's gRPC message limit, both directions (`buildkit-protocol.md` §3).
pub const MAX_MESSAGE_SIZE: usize = 16 << 20;

/// The standalone buildkitd default, as in buildctl (`appdefaults.Address`).
pub const DEFAULT_BUILDKITD_SOCKET: &str = "/run/buildkit/buildkitd.sock";

/// Docker's default API socket.
pub const DEFAULT_DOCKER_SOCKET: &str = "/var/run/docker.sock";

/// How long one dial (socket open, upgrade, TLS handshake) may take.
const DIAL_TIMEOUT: Duration = Duration::from_secs(20);

/// Where a BuildKit daemon listens.
#[derive(Debug, Clone, PartialEq, Eq)]
pub enum Address {
    /// `unix:///path`: a buildkitd socket speaking gRPC directly.
    Unix(PathBuf),
    /// `tcp://host:port`: buildkitd on TCP, optionally with TLS ([`TlsOptions`]).
    Tcp {
        /// Host name or IP address (IPv6 without brackets).
        host: String,
        /// TCP port.
        port: u16,
    },
    /// `docker://[/path]`: dockerd's embedded BuildKit behind the Docker API socket
    /// (`/grpc` upgrade). Without a path, `/var/run/docker.sock`.
    Docker(PathBuf),
    /// `docker-container://`, `podman-container://`, `nerdctl-container://`, `kube-pod://`,
    /// `ssh://`: buildctl's connection helpers, gRPC over a child process's stdio
    /// ([`Helper`]).
    Helper(Helper),
}

impl fmt::Display for Address {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        match self {
            Address::Unix(p) => write!(f, "unix://{}", p.display()),
            Address::Tcp { host, port } if host.contains(':') => {
                write!(f, "tcp://[{host}]:{port}")
            }
            Address::Tcp { host, port } => write!(f, "tcp://{host}:{port}"),
            Address::Docker(p) => write!(f, "docker://{}", p.display()),
            Address::Helper(h) => write!(f, "{h}"),
        }
    }
}

impl FromStr for Address {
    type Err = TransportError;

    /// Parses `unix:///path`, `tcp://host:port`, `docker://[/path]` or a connection helper
    /// address ([`Helper::parse`]).
    fn from_str(s: &str) -> Result<Self, Self::Err> {
        let addr_text = s;
        let bad = |reason: &str| TransportError::InvalidAddress {
            addr: s.to_string(),
            reason: reason.to_string(),
        };
        let Some((scheme, rest)) = s.split_once("://") else {
            return Err(bad(
                "expected `unix:///path`, `tcp://host:port`, `docker://[/path/to/docker.sock]`, `docker-container://NAME`, `kube-pod://POD` or `ssh://HOST`",
            ));
        };
        match scheme {
            "unix" => {
                if rest.is_empty() {
                    return Err(bad("the socket path is empty"));
                }
                if !rest.starts_with('/') {
                    return Err(bad(
                        "the socket path must be absolute (`unix:///run/buildkit/buildkitd.sock`, three slashes)",
                    ));
                }
                Ok(Address::Unix(PathBuf::from(rest)))
            }
            "docker" => {
                if rest.is_empty() {
                    Ok(Address::Docker(PathBuf::from(DEFAULT_DOCKER_SOCKET)))
                } else if rest.starts_with('/') {
                    Ok(Address::Docker(PathBuf::from(rest)))
                } else {
                    Err(bad(
                        "after `docker://` give nothing or an absolute Docker socket path, e.g. `docker:///var/run/docker.sock`",
                    ))
                }
            }
            "tcp" => {
                let rest = rest.trim_end_matches('/');
                let (host, port) = if let Some(v6) = rest.strip_prefix('[') {
                    let (h, p) = v6
                        .split_once("]:")
                        .ok_or_else(|| bad("expected `tcp://[ipv6]:port`"))?;
                    (h, p)
                } else {
                    rest.rsplit_once(':')
                        .ok_or_else(|| bad("missing `:port` (e.g. `tcp://127.0.0.1:1234`)"))?
                };
                if host.is_empty() {
                    return Err(bad("missing host"));
                }
                let port = port
                    .parse::<u16>()
                    .map_err(|_| bad("the port must be a number from 1 to 65535"))?;
                if port == 0 {
                    return Err(bad("the port must be a number from 1 to 65535"));
                }
                Ok(Address::Tcp {
                    host: host.to_string(),
                    port,
                })
            }
            s if HELPER_SCHEMES.contains(&s) => Helper::parse(addr_text)
                .map(Address::Helper)
                .map_err(|r| bad(&r)),
            "npipe" => Err(bad(
                "Windows named pipes (`npipe://`) do not exist on this system; use `unix://`, `tcp://`, `docker://` or a connection helper",
            )),
            _ => Err(bad(&format!(
                "unknown scheme `{scheme}`; expected `unix`, `tcp`, `docker`, `docker-container`, `podman-container`, `nerdctl-container`, `kube-pod` or `ssh`"
            ))),
        }
    }
}

/// Where the default address came from, for messages.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum AddressSource {
    /// `--addr`.
    Flag,
    /// `BUILDKIT_HOST`.
    BuildkitHost,
    /// `DOCKER_HOST` (a `unix://` Docker socket).
    DockerHost,
    /// The Docker CLI's current context (`DOCKER_CONTEXT`, else `currentContext` in the
    /// Docker config), when it is not `default`.
    DockerContext,
    /// `/var/run/docker.sock` exists.
    DockerSocket,
    /// Nothing configured: buildkitd's default socket.
    Default,
    /// `--builder`: a buildx builder.
    BuilderFlag,
    /// `BUILDX_BUILDER`.
    BuildxBuilder,
    /// The builder `docker buildx use` chose for the current Docker endpoint.
    BuildxCurrent,
}

/// The daemon a command talks to, and how: what [`Target::resolve`] chose.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct Target {
    /// Where it listens.
    pub addr: Address,
    /// Where the choice came from.
    pub source: AddressSource,
    /// The buildx builder, when one was chosen.
    pub builder: Option<String>,
    /// TLS that came with the builder (a `remote` builder's driver options).
    pub tls: TlsOptions,
}

impl Target {
    /// Picks the daemon as buildctl and buildx together would: `--addr`, else `--builder`,
    /// else `BUILDKIT_HOST`, else `BUILDX_BUILDER`, else the builder `docker buildx use`
    /// chose for the current Docker endpoint, else [`Address::resolve`]'s Docker search
    /// (`DOCKER_HOST`, the Docker context, `/var/run/docker.sock`, buildkitd's socket).
    pub fn resolve(
        addr: Option<&str>,
        builder: Option<&str>,
        env: impl Fn(&str) -> Option<String>,
        exists: impl Fn(&Path) -> bool,
        read: impl Fn(&Path) -> Option<String>,
    ) -> Result<Target, TransportError> {
        let plain = |addr: Address, source| Target {
            addr,
            source,
            builder: None,
            tls: TlsOptions::default(),
        };
        let reached = |name: &str, from: &str, source| {
            builder::reach(name, from, &env, &read).map(|r| Target {
                addr: r.addr,
                source,
                builder: Some(name.to_string()),
                tls: r.tls,
            })
        };
        if let Some(a) = addr.filter(|s| !s.is_empty()) {
            return Ok(plain(a.parse()?, AddressSource::Flag));
        }
        if let Some(b) = builder.filter(|s| !s.is_empty()) {
            return reached(b, "--builder", AddressSource::BuilderFlag);
        }
        if let Some(a) = env("BUILDKIT_HOST").filter(|s| !s.is_empty()) {
            return Ok(plain(a.parse()?, AddressSource::BuildkitHost));
        }
        if let Some(b) = env("BUILDX_BUILDER").filter(|s| !s.is_empty()) {
            return reached(&b, "BUILDX_BUILDER", AddressSource::BuildxBuilder);
        }
        if let Some(b) = builder::current(&env, &read) {
            return reached(&b, "`docker buildx use`", AddressSource::BuildxCurrent);
        }
        let (addr, source) = Address::resolve(None, &env, exists, &read)?;
        Ok(plain(addr, source))
    }

    /// [`Target::resolve`] with the process environment and file system.
    pub fn from_env(addr: Option<&str>, builder: Option<&str>) -> Result<Target, TransportError> {
        Target::resolve(
            addr,
            builder,
            |k| std::env::var(k).ok(),
            |p| p.exists(),
            |p| std::fs::read_to_string(p).ok(),
        )
    }
}

impl Address {
    /// Picks the daemon address like buildctl plus Docker: `flag`, else `BUILDKIT_HOST`,
    /// else `DOCKER_HOST`, which must be a `unix://` Docker socket (reached through the
    /// `/grpc` upgrade; any other value is an error naming it, not a fall back), else `/var/run/docker.sock` if it exists, else
    /// `unix:///run/buildkit/buildkitd.sock`.
    ///
    /// `env`, `exists` and `read` (a file's text) are injected so the search is testable.
    pub fn resolve(
        flag: Option<&str>,
        env: impl Fn(&str) -> Option<String>,
        exists: impl Fn(&Path) -> bool,
        read: impl Fn(&Path) -> Option<String>,
    ) -> Result<(Address, AddressSource), TransportError> {
        if let Some(a) = flag.filter(|s| !s.is_empty()) {
            return Ok((a.parse()?, AddressSource::Flag));
        }
        if let Some(a) = env("BUILDKIT_HOST").filter(|s| !s.is_empty()) {
            return Ok((a.parse()?, AddressSource::BuildkitHost));
        }
        if let Some(found) = Address::docker_engine(&env, exists, &read)? {
            return Ok(found);
        }
        Ok((
            Address::Unix(PathBuf::from(DEFAULT_BUILDKITD_SOCKET)),
            AddressSource::Default,
        ))
    }

    /// The Docker engine the Docker CLI would talk to: `DOCKER_HOST`, else the current
    /// context, else `/var/run/docker.sock` if it exists; `None` when there is none. Also
    /// where `--load` loads the image when the build ran on another builder.
    pub fn docker_engine(
        env: impl Fn(&str) -> Option<String>,
        exists: impl Fn(&Path) -> bool,
        read: impl Fn(&Path) -> Option<String>,
    ) -> Result<Option<(Address, AddressSource)>, TransportError> {
        if let Some(d) = env("DOCKER_HOST").filter(|s| !s.is_empty()) {
            return Ok(Some((
                docker_host("DOCKER_HOST", &d)?,
                AddressSource::DockerHost,
            )));
        }
        if let Some((name, host)) = docker_context(&env, &read)? {
            let from = format!("Docker context `{name}` Host");
            return Ok(Some((
                docker_host(&from, &host)?,
                AddressSource::DockerContext,
            )));
        }
        Ok(exists(Path::new(DEFAULT_DOCKER_SOCKET)).then(|| {
            (
                Address::Docker(PathBuf::from(DEFAULT_DOCKER_SOCKET)),
                AddressSource::DockerSocket,
            )
        }))
    }

    /// [`Address::resolve`] with the process environment and file system.
    pub fn from_env(flag: Option<&str>) -> Result<(Address, AddressSource), TransportError> {
        Address::resolve(
            flag,
            |k| std::env::var(k).ok(),
            |p| p.exists(),
            |p| std::fs::read_to_string(p).ok(),
        )
    }
}

/// A Docker host address (`DOCKER_HOST`, a Docker context's endpoint) as the dockerd whose
/// embedded BuildKit to use. Only a `unix://` socket can be reached (through the `/grpc`
/// upgrade); anything else is an error naming `from` and the value, never a silent fall
/// back to another daemon.
pub(super) fn docker_host(from: &str, value: &str) -> Result<Address, TransportError> {
    let bad = |reason: String| TransportError::DockerHost {
        from: from.to_string(),
        value: value.to_string(),
        reason,
    };
    let Some((scheme, rest)) = value.split_once("://") else {
        return Err(bad(
            "not a Docker host address (expected `unix:///path/to/docker.sock`)".into(),
        ));
    };
    match scheme {
        "unix" if rest.starts_with('/') => Ok(Address::Docker(PathBuf::from(rest))),
        "unix" => Err(bad(
            "the socket path must be absolute (`unix:///var/run/docker.sock`, three slashes)"
                .into(),
        )),
        "tcp" => Err(bad(
            "torchkit reaches dockerd's BuildKit only through a local socket (`unix://`), not Docker's API over TCP".into(),
        )),
        "ssh" | "npipe" | "fd" | "http" | "https" => Err(bad(format!(
            "torchkit cannot reach dockerd over `{scheme}://`; only `unix://` Docker sockets are supported"
        ))),
        _ => Err(bad(format!(
            "unknown scheme `{scheme}`; expected `unix:///path/to/docker.sock`"
        ))),
    }
}

/// The Docker CLI's current context as `docker context` picks it: `DOCKER_CONTEXT`, else
/// `currentContext` in `$DOCKER_CONFIG/config.json` (else `~/.docker`). `None` for
/// `default` or none set; otherwise its name and the `Endpoints.docker.Host` of
/// `contexts/meta/<sha256 of the name>/meta.json`, or an error naming the context when that
/// cannot be read.
fn docker_context(
    env: &impl Fn(&str) -> Option<String>,
    read: &impl Fn(&Path) -> Option<String>,
) -> Result<Option<(String, String)>, TransportError> {
    let Some(dir) = builder::docker_config_dir(env) else {
        return Ok(None);
    };
    let name = builder::current_context(env, read);
    if name == "default" {
        return Ok(None);
    }
    let from = if env("DOCKER_CONTEXT").is_some_and(|c| !c.is_empty()) {
        "DOCKER_CONTEXT".to_string()
    } else {
        format!("currentContext in {}", dir.join("config.json").display())
    };
    match builder::context_host(&dir, &name, read) {
        Some(h) => Ok(Some((name, h))),
        None => Err(TransportError::DockerHost {
            from,
            value: name.clone(),
            reason: format!(
                "no Docker context of that name with a docker endpoint Host ({} is missing or has none)",
                builder::context_meta(&dir, &name).display()
            ),
        }),
    }
}

/// buildctl's TLS options. TLS is used for `tcp://` when any of them is set.
#[derive(Debug, Clone, Default, PartialEq, Eq)]
pub struct TlsOptions {
    /// `--tlscacert`: PEM CA bundle that signs the server certificate. Without it the
    /// system bundle (`SSL_CERT_FILE`, else `/etc/ssl/certs/ca-certificates.crt`) is used.
    pub ca_cert: Option<PathBuf>,
    /// `--tlscert`: client certificate (PEM) for mutual TLS; needs `key`.
    pub cert: Option<PathBuf>,
    /// `--tlskey`: client private key (PEM) for mutual TLS; needs `cert`.
    pub key: Option<PathBuf>,
    /// `--tlsservername`: the name to verify the server certificate against (default: the host).
    pub server_name: Option<String>,
}

impl TlsOptions {
    /// Whether any option is set, i.e. whether TLS is wanted.
    pub fn is_enabled(&self) -> bool {
        self.ca_cert.is_some()
            || self.cert.is_some()
            || self.key.is_some()
            || self.server_name.is_some()
    }

    /// Loads the files into a rustls client config (ring provider, ALPN `h2`).
    pub fn load(&self) -> Result<rustls::ClientConfig, TransportError> {
        let mut roots = rustls::RootCertStore::empty();
        let ca_path = match &self.ca_cert {
            Some(p) => p.clone(),
            None => std::env::var_os("SSL_CERT_FILE")
                .map(PathBuf::from)
                .unwrap_or_else(|| PathBuf::from("/etc/ssl/certs/ca-certificates.crt")),
        };
        let ca_flag = if self.ca_cert.is_some() {
            "--tlscacert"
        } else {
            "the system CA bundle"
        };
        let cas = read_certs(&ca_path, ca_flag)?;
        let (added, _) = roots.add_parsable_certificates(cas);
        if added == 0 {
            return Err(TransportError::TlsFile {
                path: ca_path,
                what: ca_flag,
                reason: "no usable CA certificate in it".into(),
            });
        }
        let provider = Arc::new(rustls::crypto::ring::default_provider());
        let builder = rustls::ClientConfig::builder_with_provider(provider)
            .with_safe_default_protocol_versions()
            .map_err(|e| TransportError::TlsConfig(e.to_string()))?
            .with_root_certificates(roots);
        let mut config = match (&self.cert, &self.key) {
            (Some(cert), Some(key)) => {
                let chain = read_certs(cert, "--tlscert")?;
                if chain.is_empty() {
                    return Err(TransportError::TlsFile {
                        path: cert.clone(),
                        what: "--tlscert",
                        reason: "no PEM certificate in it".into(),
                    });
                }
                let key_der = read_key(key)?;
                builder.with_client_auth_cert(chain, key_der).map_err(|e| {
                    TransportError::TlsFile {
                        path: key.clone(),
                        what: "--tlskey",
                        reason: format!("does not match --tlscert: {e}"),
                    }
                })?
            }
            (None, None) => builder.with_no_client_auth(),
            _ => {
                return Err(TransportError::TlsConfig(
                    "--tlscert and --tlskey must be given together (mutual TLS)".into(),
                ))
            }
        };
        config.alpn_protocols = vec![b"h2".to_vec()];
        Ok(config)
    }
}

fn read_pem(path: &Path, what: &'static str) -> Result<Vec<u8>, TransportError> {
    std::fs::read(path).map_err(|e| TransportError::TlsFile {
        path: path.to_path_buf(),
        what,
        reason: e.to_string(),
    })
}

fn read_certs(
    path: &Path,
    what: &'static str,
) -> Result<Vec<rustls::pki_types::CertificateDer<'static>>, TransportError> {
    let data = read_pem(path, what)?;
    rustls_pemfile::certs(&mut data.as_slice())
        .collect::<Result<Vec<_>, _>>()
        .map_err(|e| TransportError::TlsFile {
            path: path.to_path_buf(),
            what,
            reason: format!("not a PEM certificate file: {e}"),
        })
}

fn read_key(path: &Path) -> Result<rustls::pki_types::PrivateKeyDer<'static>, TransportError> {
    let data = read_pem(path, "--tlskey")?;
    match rustls_pemfile::private_key(&mut data.as_slice()) {
        Ok(Some(k)) => Ok(k),
        Ok(None) => Err(TransportError::TlsFile {
            path: path.to_path_buf(),
            what: "--tlskey",
            reason: "no PEM private key (PKCS#8, PKCS#1 or SEC1) in it".into(),
        }),
        Err(e) => Err(TransportError::TlsFile {
            path: path.to_path_buf(),
            what: "--tlskey",
            reason: format!("not a PEM key file: {e}"),
        }),
    }
}

/// Everything needed to reach a daemon.
#[derive(Debug, Clone, Default)]
pub struct ConnectOptions {
    /// `--addr`; with `builder`, `None` means [`Target::from_env`]'s search.
    pub addr: Option<String>,
    /// `--builder`: a buildx builder.
    pub builder: Option<String>,
    /// TLS for `tcp://` (`--tlscacert`…); when none is set, a `remote` builder's own.
    pub tls: TlsOptions,
}

/// Why the daemon could not be reached.
#[derive(Debug, thiserror::Error)]
pub enum TransportError {
    /// The address does not parse.
    #[error("invalid BuildKit address `{addr}`: {reason}")]
    InvalidAddress {
        /// The address as given.
        addr: String,
        /// What is wrong with it.
        reason: String,
    },
    /// `DOCKER_HOST` (or a Docker context) names a daemon torchkit cannot use.
    #[error("cannot use {from}=`{value}`: {reason}")]
    DockerHost {
        /// Where the value came from (`DOCKER_HOST`).
        from: String,
        /// The value.
        value: String,
        /// Why it cannot be used.
        reason: String,
    },
    /// No socket file, or nobody accepting on it.
    #[error("no BuildKit daemon is listening at {addr} ({source})")]
    NotListening {
        /// The address dialled.
        addr: String,
        /// The OS error.
        source: io::Error,
    },
    /// The socket exists but this user may not open it.
    #[error("permission denied opening {addr}")]
    PermissionDenied {
        /// The address dialled.
        addr: String,
        /// The socket path, for the hint.
        path: Option<PathBuf>,
    },
    /// Any other IO failure while dialling.
    #[error("cannot connect to {addr}: {source}")]
    Io {
        /// The address dialled.
        addr: String,
        /// The OS error.
        source: io::Error,
    },
    /// The dial did not finish in time.
    #[error("connecting to {addr} timed out after {secs}s")]
    Timeout {
        /// The address dialled.
        addr: String,
        /// The limit.
        secs: u64,
    },
    /// The Docker socket answered the `/grpc` upgrade with something unexpected, and
    /// plain gRPC on it failed as well.
    #[error("{addr} did not switch to gRPC: `POST /grpc` answered `{status}`")]
    UpgradeRefused {
        /// The address dialled.
        addr: String,
        /// The HTTP status line received.
        status: String,
    },
    /// A TLS file is missing or malformed.
    #[error("TLS: cannot use {what} file {path}: {reason}")]
    TlsFile {
        /// The file.
        path: PathBuf,
        /// Which option it came from (`--tlscacert`, …).
        what: &'static str,
        /// What is wrong.
        reason: String,
    },
    /// TLS options that do not fit together.
    #[error("TLS configuration: {0}")]
    TlsConfig(String),
    /// The TLS handshake failed (unknown CA, wrong server name, rejected client cert…).
    #[error("TLS handshake with {addr} failed (server name `{server_name}`, CA {ca}): {source}")]
    TlsHandshake {
        /// The address dialled.
        addr: String,
        /// The name the certificate was checked against.
        server_name: String,
        /// The CA file used.
        ca: String,
        /// rustls' error.
        source: io::Error,
    },
    /// The address answers, but not as BuildKit: an HTTP/1 server (Docker's API socket
    /// given as `unix://`, a registry…). Found by [`probe_not_buildkit`].
    #[error("{addr} answered {answered}, not gRPC{what}")]
    NotBuildkit {
        /// The address dialled.
        addr: String,
        /// What answered (`HTTP/1.1 (`HTTP/1.1 400 Bad Request`)`).
        answered: String,
        /// `: this is Docker's API` when it is, else empty.
        what: String,
        /// What to use instead.
        fix: String,
    },
    /// `--builder`/`BUILDX_BUILDER` names no builder and no Docker context.
    #[error("no buildx builder `{name}` ({from}); known builders: {}", known.join(", "))]
    UnknownBuilder {
        /// The name asked for.
        name: String,
        /// Where it came from (`--builder`, `BUILDX_BUILDER`).
        from: String,
        /// What the store and the Docker contexts have.
        known: Vec<String>,
    },
    /// The builder exists but cannot be reached from its stored entry.
    #[error("cannot use buildx builder `{name}` ({from}): {reason}")]
    Builder {
        /// The builder.
        name: String,
        /// Where the name came from.
        from: String,
        /// Why.
        reason: String,
    },
    /// A connection helper could not be run, or exited (its command and stderr).
    #[error("{message}")]
    Helper {
        /// What happened, with the command line and the helper's stderr.
        message: String,
        /// The fix.
        hint: String,
    },
    /// HTTP/2 or gRPC setup failed after the stream was open.
    #[error("gRPC connection to {addr} failed: {message}")]
    Grpc {
        /// The address dialled.
        addr: String,
        /// tonic's error chain, flattened.
        message: String,
    },
}

impl Hint for TransportError {
    fn hint(&self) -> Option<String> {
        match self {
            TransportError::InvalidAddress { .. } => Some(
                "set --addr or BUILDKIT_HOST to `unix:///run/buildkit/buildkitd.sock`, `tcp://host:1234`, `docker://` (dockerd's BuildKit) or a connection helper (`docker-container://NAME`, `kube-pod://POD?namespace=NS`, `ssh://USER@HOST`), or name a buildx builder with --builder".into(),
            ),
            TransportError::DockerHost { from, .. } if !from.starts_with("DOCKER_HOST") => Some(
                "switch to a Docker context on a local socket (`docker context use default`), or choose the BuildKit with --addr or BUILDKIT_HOST (`docker:///path/to/docker.sock`, `unix:///run/buildkit/buildkitd.sock`, `tcp://host:1234`); torchkit does not fall back to another daemon".into(),
            ),
            TransportError::DockerHost { from, .. } => Some(format!(
                "set {from} to a local Docker socket (`unix:///var/run/docker.sock`) or unset it, or choose the BuildKit with --addr or BUILDKIT_HOST (`docker:///path/to/docker.sock`, `unix:///run/buildkit/buildkitd.sock`, `tcp://host:1234` with --tlscacert/--tlscert/--tlskey); torchkit does not fall back to another daemon"
            )),
            TransportError::NotListening { .. } | TransportError::Timeout { .. } => Some(
                "start one with `scripts/test-env.sh up`, or set BUILDKIT_HOST (or --addr) to a running BuildKit (`docker://` for dockerd)".into(),
            ),
            TransportError::PermissionDenied { path, .. } => Some(match path {
                Some(p) => format!(
                    "add your user to the group that owns {} (usually `docker`: `sudo usermod -aG docker $USER`, then log in again), or run as root",
                    p.display()
                ),
                None => "check that this user may connect to the daemon".into(),
            }),
            TransportError::Io { .. } => {
                Some("check that the address points at a BuildKit or Docker daemon".into())
            }
            TransportError::UpgradeRefused { .. } => Some(
                "this socket does not look like a Docker API with BuildKit; for a standalone buildkitd use `unix://<socket>` instead of `docker://`".into(),
            ),
            TransportError::TlsFile { what, .. } => Some(format!(
                "check the file given to {what}: it must exist, be readable and hold PEM data"
            )),
            TransportError::TlsConfig(_) => {
                Some("pass --tlscert and --tlskey together, or neither".into())
            }
            TransportError::TlsHandshake { .. } => Some(
                "check that --tlscacert is the CA that signed the daemon's certificate and that --tlsservername matches a name in it; for mutual TLS also --tlscert/--tlskey".into(),
            ),
            TransportError::NotBuildkit { fix, .. } => Some(fix.clone()),
            TransportError::UnknownBuilder { .. } => Some(
                "`docker buildx ls` lists the builders; create one with `docker buildx create --name NAME`, or give the daemon with --addr".into(),
            ),
            TransportError::Builder { .. } => Some(
                "check the builder with `docker buildx inspect NAME`, or give the daemon with --addr (`docker-container://`, `kube-pod://`, `tcp://`…)".into(),
            ),
            TransportError::Helper { hint, .. } => Some(hint.clone()),
            TransportError::Grpc { .. } => Some(
                "the daemon accepted the connection but did not speak gRPC; for dockerd use `docker://`, for buildkitd `unix://` or `tcp://`".into(),
            ),
        }
    }
}

impl From<super::helper::HelperError> for TransportError {
    fn from(e: super::helper::HelperError) -> TransportError {
        TransportError::Helper {
            hint: e.hint(),
            message: e.to_string(),
        }
    }
}

impl TransportError {
    /// Finds a [`TransportError`] in a tonic error's source chain (the connector's own
    /// error), or wraps the chain as [`TransportError::Grpc`].
    pub fn from_tonic(addr: &Address, err: &tonic::transport::Error) -> TransportError {
        let mut cur: Option<&(dyn std::error::Error + 'static)> = Some(err);
        let mut chain = Vec::new();
        while let Some(e) = cur {
            if let Some(t) = e.downcast_ref::<TransportError>() {
                return t.clone_shallow();
            }
            chain.push(e.to_string());
            cur = e.source();
        }
        chain.dedup();
        TransportError::Grpc {
            addr: addr.to_string(),
            message: chain.join(": "),
        }
    }

    /// A copy for errors found behind a shared reference (io::Error is not Clone).
    fn clone_shallow(&self) -> TransportError {
        let io_copy = |e: &io::Error| io::Error::new(e.kind(), e.to_string());
        match self {
            TransportError::InvalidAddress { addr, reason } => TransportError::InvalidAddress {
                addr: addr.clone(),
                reason: reason.clone(),
            },
            TransportError::DockerHost {
                from,
                value,
                reason,
            } => TransportError::DockerHost {
                from: from.clone(),
                value: value.clone(),
                reason: reason.clone(),
            },
            TransportError::NotListening { addr, source } => TransportError::NotListening {
                addr: addr.clone(),
                source: io_copy(source),
            },
            TransportError::PermissionDenied { addr, path } => TransportError::PermissionDenied {
                addr: addr.clone(),
                path: path.clone(),
            },
            TransportError::Io { addr, source } => TransportError::Io {
                addr: addr.clone(),
                source: io_copy(source),
            },
            TransportError::Timeout { addr, secs } => TransportError::Timeout {
                addr: addr.clone(),
                secs: *secs,
            },
            TransportError::UpgradeRefused { addr, status } => TransportError::UpgradeRefused {
                addr: addr.clone(),
                status: status.clone(),
            },
            TransportError::TlsFile { path, what, reason } => TransportError::TlsFile {
                path: path.clone(),
                what,
                reason: reason.clone(),
            },
            TransportError::TlsConfig(s) => TransportError::TlsConfig(s.clone()),
            TransportError::TlsHandshake {
                addr,
                server_name,
                ca,
                source,
            } => TransportError::TlsHandshake {
                addr: addr.clone(),
                server_name: server_name.clone(),
                ca: ca.clone(),
                source: io_copy(source),
            },
            TransportError::NotBuildkit {
                addr,
                answered,
                what,
                fix,
            } => TransportError::NotBuildkit {
                addr: addr.clone(),
                answered: answered.clone(),
                what: what.clone(),
                fix: fix.clone(),
            },
            TransportError::Grpc { addr, message } => TransportError::Grpc {
                addr: addr.clone(),
                message: message.clone(),
            },
            TransportError::UnknownBuilder { name, from, known } => {
                TransportError::UnknownBuilder {
                    name: name.clone(),
                    from: from.clone(),
                    known: known.clone(),
                }
            }
            TransportError::Builder { name, from, reason } => TransportError::Builder {
                name: name.clone(),
                from: from.clone(),
                reason: reason.clone(),
            },
            TransportError::Helper { message, hint } => TransportError::Helper {
                message: message.clone(),
                hint: hint.clone(),
            },
        }
    }
}

/// Any byte stream the connector can hand to HTTP/2.
pub trait IoStream: AsyncRead + AsyncWrite + Send + Unpin + 'static {}
impl<T: AsyncRead + AsyncWrite + Send + Unpin + 'static> IoStream for T {}

/// A boxed byte stream.
pub type BoxedStream = Pin<Box<dyn IoStream>>;

/// Opens byte streams to one [`Address`]; cheap to clone (tonic re-dials on reconnect).
#[derive(Clone)]
pub struct Dialer {
    addr: Address,
    tls: Option<(Arc<rustls::ClientConfig>, String, String)>,
    /// The last connection helper started, for [`Dialer::helper_failure`].
    helper: Arc<std::sync::Mutex<Option<Diagnostics>>>,
}

impl fmt::Debug for Dialer {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        f.debug_struct("Dialer")
            .field("addr", &self.addr)
            .field("tls", &self.tls.is_some())
            .finish()
    }
}

impl Dialer {
    /// A dialer for `addr`; TLS options apply to `tcp://` only (an error elsewhere).
    pub fn new(addr: Address, tls: &TlsOptions) -> Result<Dialer, TransportError> {
        let tls = if tls.is_enabled() {
            let Address::Tcp { host, .. } = &addr else {
                return Err(TransportError::TlsConfig(format!(
                    "TLS options apply to `tcp://` addresses only, not {addr}"
                )));
            };
            let config = tls.load()?;
            let server_name = tls.server_name.clone().unwrap_or_else(|| host.clone());
            let ca = tls
                .ca_cert
                .as_ref()
                .map(|p| p.display().to_string())
                .unwrap_or_else(|| "system bundle".into());
            Some((Arc::new(config), server_name, ca))
        } else {
            None
        };
        Ok(Dialer {
            addr,
            tls,
            helper: Arc::default(),
        })
    }

    /// The address this dialer reaches.
    pub fn address(&self) -> &Address {
        &self.addr
    }

    /// Opens one stream, ready for the HTTP/2 client preface.
    pub async fn dial(&self) -> Result<BoxedStream, TransportError> {
        let addr = self.addr.to_string();
        match tokio::time::timeout(DIAL_TIMEOUT, self.dial_inner()).await {
            Ok(r) => r,
            Err(_) => Err(TransportError::Timeout {
                addr,
                secs: DIAL_TIMEOUT.as_secs(),
            }),
        }
    }

    async fn dial_inner(&self) -> Result<BoxedStream, TransportError> {
        match &self.addr {
            Address::Unix(path) => Ok(Box::pin(open_unix(&self.addr, path).await?)),
            Address::Helper(h) => {
                let stream = h.spawn().await?;
                if let Ok(mut slot) = self.helper.lock() {
                    *slot = Some(stream.diagnostics());
                }
                Ok(Box::pin(stream))
            }
            Address::Docker(path) => {
                let mut stream = open_unix(&self.addr, path).await?;
                match grpc_upgrade(&mut stream).await {
                    Ok(()) => Ok(Box::pin(stream)),
                    Err(UpgradeFailure::Refused(status)) => {
                        // Docker 29+ also serves gRPC straight on the API socket.
                        drop(stream);
                        let _ = status;
                        Ok(Box::pin(open_unix(&self.addr, path).await?))
                    }
                    Err(UpgradeFailure::Io(source)) => Err(TransportError::Io {
                        addr: self.addr.to_string(),
                        source,
                    }),
                    Err(UpgradeFailure::NotHttp(status)) => Err(TransportError::UpgradeRefused {
                        addr: self.addr.to_string(),
                        status,
                    }),
                }
            }
            Address::Tcp { host, port } => {
                let tcp = tokio::net::TcpStream::connect((host.as_str(), *port))
                    .await
                    .map_err(|e| classify_io(&self.addr, None, e))?;
                let _ = tcp.set_nodelay(true);
                match &self.tls {
                    None => Ok(Box::pin(tcp)),
                    Some((config, server_name, ca)) => {
                        let name = rustls::pki_types::ServerName::try_from(server_name.clone())
                            .map_err(|e| {
                                TransportError::TlsConfig(format!(
                                    "invalid TLS server name `{server_name}`: {e}"
                                ))
                            })?;
                        let tls = tokio_rustls::TlsConnector::from(config.clone())
                            .connect(name, tcp)
                            .await
                            .map_err(|source| TransportError::TlsHandshake {
                                addr: self.addr.to_string(),
                                server_name: server_name.clone(),
                                ca: ca.clone(),
                                source,
                            })?;
                        Ok(Box::pin(tls))
                    }
                }
            }
        }
    }

    /// After a call through a connection helper failed with `during`: the helper's
    /// command, exit status and stderr as an error (waiting up to 2 s for it to exit).
    /// `None` for other addresses.
    pub async fn helper_failure(&self, during: &str) -> Option<TransportError> {
        let diag = self.helper.lock().ok()?.clone()?;
        Some(
            diag.error(Duration::from_secs(2), Some(during.to_string()))
                .await
                .into(),
        )
    }

    /// A tonic channel over this dialer (eager: the first dial happens here).
    pub async fn connect(&self) -> Result<Channel, TransportError> {
        let dialer = self.clone();
        let connector = tower::service_fn(move |_uri: http::Uri| {
            let d = dialer.clone();
            async move { d.dial().await.map(TokioIo::new) }
        });
        endpoint()
            .connect_with_connector(connector)
            .await
            .map_err(|e| TransportError::from_tonic(&self.addr, &e))
    }
}

/// How long [`probe_not_buildkit`] waits for an answer.
const PROBE_TIMEOUT: Duration = Duration::from_secs(3);

/// The HTTP/2 client preface and an empty SETTINGS frame: what gRPC sends first.
const H2_PREFACE: &[u8] = b"PRI * HTTP/2.0\r\n\r\nSM\r\n\r\n\0\0\0\x04\0\0\0\0\0";

/// After a call to `addr` failed at the transport: whether something other than an HTTP/2
/// server answers there, said as an error with the scheme to use. A fresh connection gets
/// the HTTP/2 preface; an answer starting `HTTP/1.` is an HTTP/1 server, and a second one
/// asks `GET /_ping`, which Docker's API answers with an `Api-Version` header. `None` when
/// nothing answers, or it answers HTTP/2 (the failure was something else).
pub async fn probe_not_buildkit(addr: &Address, tls: &TlsOptions) -> Option<TransportError> {
    // `docker://` already speaks Docker's API; only its gRPC side can be wrong.
    let path = match addr {
        Address::Docker(_) | Address::Helper(_) => return None,
        Address::Unix(p) => Some(p.clone()),
        Address::Tcp { .. } => None,
    };
    let dialer = Dialer::new(addr.clone(), tls).ok()?;
    let first = exchange(&dialer, H2_PREFACE).await?;
    if !first.starts_with(b"HTTP/1.") {
        return None;
    }
    let status = String::from_utf8_lossy(&first)
        .lines()
        .next()
        .unwrap_or("")
        .trim()
        .to_string();
    let proto = status.split_whitespace().next().unwrap_or("HTTP/1.1");
    let ping = exchange(
        &dialer,
        b"GET /_ping HTTP/1.1\r\nHost: docker\r\nUser-Agent: torchkit\r\nConnection: close\r\n\r\n",
    )
    .await
    .unwrap_or_default();
    let docker = String::from_utf8_lossy(&ping)
        .lines()
        .take_while(|l| !l.trim().is_empty())
        .any(|l| l.to_ascii_lowercase().starts_with("api-version:"));
    let (what, fix) = match (docker, path) {
        (true, Some(p)) => (
            ": this is Docker's API".to_string(),
            format!(
                "use `docker://{}` to reach the BuildKit inside dockerd through its API socket",
                p.display()
            ),
        ),
        (true, None) => (
            ": this is Docker's API".to_string(),
            "torchkit reaches dockerd's BuildKit only through its local socket: use `docker:///path/to/docker.sock` on the Docker host, or a buildkitd's `tcp://host:port`".to_string(),
        ),
        (false, _) => (
            String::new(),
            "this is not a BuildKit daemon: give the `unix:///path` or `tcp://host:port` of a buildkitd, or `docker://[/path/to/docker.sock]` for dockerd's BuildKit".to_string(),
        ),
    };
    Some(TransportError::NotBuildkit {
        addr: addr.to_string(),
        answered: format!("{proto} (`{status}`)"),
        what,
        fix,
    })
}

/// Dials, writes `request`, and reads what comes back (up to 4 KiB) within
/// [`PROBE_TIMEOUT`]; `None` if nothing does.
async fn exchange(dialer: &Dialer, request: &[u8]) -> Option<Vec<u8>> {
    let go = async {
        let mut s = dialer.dial().await.ok()?;
        s.write_all(request).await.ok()?;
        s.flush().await.ok()?;
        let mut buf = Vec::new();
        let mut chunk = [0u8; 1024];
        while buf.len() < 4096 {
            match s.read(&mut chunk).await {
                Ok(0) | Err(_) => break,
                Ok(n) => buf.extend_from_slice(&chunk[..n]),
            }
            if buf.windows(4).any(|w| w == b"\r\n\r\n") {
                break;
            }
        }
        (!buf.is_empty()).then_some(buf)
    };
    tokio::time::timeout(PROBE_TIMEOUT, go).await.ok().flatten()
}

/// The endpoint every channel uses: authority `localhost` like BuildKit's own clients.
fn endpoint() -> Endpoint {
    Endpoint::from_static("http://localhost")
        .initial_connection_window_size(Some(MAX_MESSAGE_SIZE as u32))
        .initial_stream_window_size(Some(4 << 20))
}

async fn open_unix(addr: &Address, path: &Path) -> Result<tokio::net::UnixStream, TransportError> {
    tokio::net::UnixStream::connect(path)
        .await
        .map_err(|e| classify_io(addr, Some(path), e))
}

fn classify_io(addr: &Address, path: Option<&Path>, e: io::Error) -> TransportError {
    match e.kind() {
        io::ErrorKind::NotFound | io::ErrorKind::ConnectionRefused => {
            TransportError::NotListening {
                addr: addr.to_string(),
                source: e,
            }
        }
        io::ErrorKind::PermissionDenied => TransportError::PermissionDenied {
            addr: addr.to_string(),
            path: path.map(Path::to_path_buf),
        },
        _ => TransportError::Io {
            addr: addr.to_string(),
            source: e,
        },
    }
}

enum UpgradeFailure {
    /// A well-formed HTTP answer other than 101.
    Refused(String),
    /// Not HTTP at all.
    NotHttp(String),
    Io(io::Error),
}

/// The largest response head accepted before the blank line.
const MAX_HEAD: usize = 16 << 10;

/// Performs dockerd's `/grpc` upgrade on `stream` and leaves it positioned right after the
/// response head, so no HTTP/2 byte the daemon sends early is lost.
async fn grpc_upgrade<S: AsyncRead + AsyncWrite + Unpin>(
    stream: &mut S,
) -> Result<(), UpgradeFailure> {
    h2c_upgrade(stream, "/grpc", &[]).await
}

/// dockerd's `/session` hijack: the session's own connection, on which the daemon is the
/// HTTP/2 client and we serve the session services (moby `session/manager.go`
/// `HandleHTTPRequest`; what buildx's docker driver uses). It spares the session the
/// extra framing and flow control of tunnelling through `Control.Session`.
pub async fn docker_session(
    addr: &Address,
    session_id: &str,
    shared_key: &str,
    methods: &[String],
) -> Result<BoxedStream, TransportError> {
    let Address::Docker(path) = addr else {
        return Err(TransportError::InvalidAddress {
            addr: addr.to_string(),
            reason: "the /session hijack needs a docker:// address".into(),
        });
    };
    let clean = |v: &str| v.chars().all(|c| c.is_ascii_graphic() || c == ' ');
    if !clean(session_id) || !clean(shared_key) || !methods.iter().all(|m| clean(m)) {
        return Err(TransportError::InvalidAddress {
            addr: addr.to_string(),
            reason: "session headers must be printable ASCII".into(),
        });
    }
    let mut headers = vec![
        ("X-Docker-Expose-Session-Uuid", session_id.to_string()),
        ("X-Docker-Expose-Session-Name", "torchkit".to_string()),
        ("X-Docker-Expose-Session-Sharedkey", shared_key.to_string()),
    ];
    for m in methods {
        headers.push(("X-Docker-Expose-Session-Grpc-Method", m.clone()));
    }
    let mut stream = open_unix(addr, path).await?;
    match h2c_upgrade(&mut stream, "/session", &headers).await {
        Ok(()) => Ok(Box::pin(stream)),
        Err(UpgradeFailure::Io(source)) => Err(TransportError::Io {
            addr: addr.to_string(),
            source,
        }),
        Err(UpgradeFailure::Refused(status) | UpgradeFailure::NotHttp(status)) => {
            Err(TransportError::UpgradeRefused {
                addr: addr.to_string(),
                status,
            })
        }
    }
}

/// `POST <path>` with `Upgrade: h2c` (and `headers`), then read the response head.
async fn h2c_upgrade<S: AsyncRead + AsyncWrite + Unpin>(
    stream: &mut S,
    path: &str,
    headers: &[(&str, String)],
) -> Result<(), UpgradeFailure> {
    let mut req = format!(
        "POST {path} HTTP/1.1\r\nHost: docker\r\nUser-Agent: torchkit\r\nContent-Length: 0\r\nConnection: Upgrade\r\nUpgrade: h2c\r\n"
    );
    for (k, v) in headers {
        req.push_str(&format!("{k}: {v}\r\n"));
    }
    req.push_str("\r\n");
    stream
        .write_all(req.as_bytes())
        .await
        .map_err(UpgradeFailure::Io)?;
    stream.flush().await.map_err(UpgradeFailure::Io)?;
    // Byte by byte: the head is short, and reading past it would swallow HTTP/2 frames.
    let mut head = Vec::with_capacity(256);
    let mut byte = [0u8; 1];
    while !head.ends_with(b"\r\n\r\n") {
        let n = stream.read(&mut byte).await.map_err(UpgradeFailure::Io)?;
        if n == 0 {
            let got = String::from_utf8_lossy(&head)
                .lines()
                .next()
                .unwrap_or("")
                .to_string();
            return Err(if got.is_empty() {
                UpgradeFailure::Io(io::Error::new(
                    io::ErrorKind::UnexpectedEof,
                    "the daemon closed the connection during the /grpc upgrade",
                ))
            } else {
                UpgradeFailure::Refused(got)
            });
        }
        head.push(byte[0]);
        if head.len() > MAX_HEAD {
            return Err(UpgradeFailure::NotHttp("(response head too long)".into()));
        }
    }
    let text = String::from_utf8_lossy(&head);
    let status_line = text.lines().next().unwrap_or("").trim().to_string();
    let mut parts = status_line.split_whitespace();
    let proto = parts.next().unwrap_or("");
    let code = parts.next().unwrap_or("");
    if !proto.starts_with("HTTP/1.") {
        return Err(UpgradeFailure::NotHttp(status_line));
    }
    if code == "101" {
        Ok(())
    } else {
        Err(UpgradeFailure::Refused(status_line))
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn parses_addresses() {
        assert_eq!(
            "unix:///run/buildkit/buildkitd.sock"
                .parse::<Address>()
                .unwrap(),
            Address::Unix("/run/buildkit/buildkitd.sock".into())
        );
        assert_eq!(
            "tcp://127.0.0.1:1234".parse::<Address>().unwrap(),
            Address::Tcp {
                host: "127.0.0.1".into(),
                port: 1234
            }
        );
        assert_eq!(
            "tcp://[::1]:1234".parse::<Address>().unwrap(),
            Address::Tcp {
                host: "::1".into(),
                port: 1234
            }
        );
        assert_eq!(
            "docker://".parse::<Address>().unwrap(),
            Address::Docker("/var/run/docker.sock".into())
        );
        assert_eq!(
            "docker:///tmp/d.sock".parse::<Address>().unwrap(),
            Address::Docker("/tmp/d.sock".into())
        );
        for a in [
            "unix:///x",
            "tcp://h:1",
            "tcp://[::1]:2",
            "docker:///var/run/docker.sock",
        ] {
            assert_eq!(a.parse::<Address>().unwrap().to_string(), a);
        }
    }

    #[test]
    fn rejects_bad_addresses_with_reasons() {
        let cases = [
            ("/run/buildkit/buildkitd.sock", "expected `unix:///path`"),
            ("unix://run/x.sock", "must be absolute"),
            ("unix://", "empty"),
            ("tcp://host", "missing `:port`"),
            ("tcp://host:http", "must be a number"),
            ("tcp://:80", "missing host"),
            ("tcp://host:0", "must be a number"),
            ("docker-container://", "container name is missing"),
            ("kube-pod://Bad_Pod", "unsupported pod name"),
            ("ssh://me:pw@host", "password"),
            ("npipe:////./pipe/docker_engine", "named pipes"),
            ("http://x", "unknown scheme `http`"),
            ("docker://relative", "absolute Docker socket path"),
        ];
        for (input, want) in cases {
            let err = input.parse::<Address>().unwrap_err();
            let msg = err.to_string();
            assert!(msg.contains(want), "{input}: {msg}");
            assert!(msg.contains(input), "{input}: {msg}");
            assert!(err.hint().is_some());
        }
    }

    /// [`Address::resolve`] with no Docker config files.
    fn resolve(
        flag: Option<&str>,
        env: impl Fn(&str) -> Option<String>,
        exists: impl Fn(&Path) -> bool,
    ) -> Result<(Address, AddressSource), TransportError> {
        Address::resolve(flag, env, exists, |_| None)
    }

    fn env_owned(key: &'static str, value: &'static str) -> impl Fn(&str) -> Option<String> {
        move |k: &str| (k == key).then(|| value.to_string())
    }

    #[test]
    fn docker_context_is_honoured_after_docker_host() {
        use sha2::Digest as _;
        let meta = |name: &str| {
            PathBuf::from("/cfg/contexts/meta")
                .join(hex::encode(sha2::Sha256::digest(name.as_bytes())))
                .join("meta.json")
        };
        let (local, remote) = (meta("local"), meta("remote"));
        let read = move |p: &Path| -> Option<String> {
            if p == Path::new("/cfg/config.json") {
                Some(r#"{"auths":{},"currentContext":"local"}"#.into())
            } else if p == local {
                Some(
                    r#"{"Name":"local","Endpoints":{"docker":{"Host":"unix:///ctx.sock"}}}"#.into(),
                )
            } else if p == remote {
                Some(r#"{"Name":"remote","Endpoints":{"docker":{"Host":"tcp://h:2376"}}}"#.into())
            } else {
                None
            }
        };
        let env = |pairs: Vec<(&'static str, &'static str)>| {
            move |k: &str| {
                pairs
                    .iter()
                    .find(|(n, _)| *n == k)
                    .map(|(_, v)| v.to_string())
            }
        };
        let yes = |_: &Path| true;

        // currentContext from the config.
        let (a, s) =
            Address::resolve(None, env(vec![("DOCKER_CONFIG", "/cfg")]), yes, &read).unwrap();
        assert_eq!(
            (a, s),
            (
                Address::Docker("/ctx.sock".into()),
                AddressSource::DockerContext
            )
        );
        // DOCKER_HOST wins over the context; DOCKER_CONTEXT over currentContext.
        let (a, _) = Address::resolve(
            None,
            env(vec![
                ("DOCKER_CONFIG", "/cfg"),
                ("DOCKER_HOST", "unix:///h.sock"),
            ]),
            yes,
            &read,
        )
        .unwrap();
        assert_eq!(a, Address::Docker("/h.sock".into()));
        let (a, s) = Address::resolve(
            None,
            env(vec![
                ("DOCKER_CONFIG", "/cfg"),
                ("DOCKER_CONTEXT", "default"),
            ]),
            yes,
            &read,
        )
        .unwrap();
        assert_eq!(
            (a, s),
            (
                Address::Docker(DEFAULT_DOCKER_SOCKET.into()),
                AddressSource::DockerSocket
            )
        );
        // A tcp context, or a missing one, is an error naming it.
        let e = Address::resolve(
            None,
            env(vec![
                ("DOCKER_CONFIG", "/cfg"),
                ("DOCKER_CONTEXT", "remote"),
            ]),
            yes,
            &read,
        )
        .unwrap_err();
        assert!(
            e.to_string()
                .starts_with("cannot use Docker context `remote` Host=`tcp://h:2376`"),
            "{e}"
        );
        assert!(e.hint().unwrap().contains("docker context use default"));
        let e = Address::resolve(
            None,
            env(vec![("DOCKER_CONFIG", "/cfg"), ("DOCKER_CONTEXT", "gone")]),
            yes,
            &read,
        )
        .unwrap_err();
        assert!(
            e.to_string()
                .starts_with("cannot use DOCKER_CONTEXT=`gone`: no Docker context"),
            "{e}"
        );
        // `~/.docker` without DOCKER_CONFIG.
        let home = |p: &Path| {
            (p == Path::new("/home/u/.docker/config.json"))
                .then(|| r#"{"currentContext":"gone"}"#.to_string())
        };
        let e = Address::resolve(None, env(vec![("HOME", "/home/u")]), yes, home).unwrap_err();
        assert!(
            e.to_string()
                .contains("currentContext in /home/u/.docker/config.json=`gone`"),
            "{e}"
        );
    }

    #[test]
    fn default_address_order() {
        let none = |_: &str| None;
        let env = |pairs: &'static [(&'static str, &'static str)]| {
            move |k: &str| {
                pairs
                    .iter()
                    .find(|(n, _)| *n == k)
                    .map(|(_, v)| v.to_string())
            }
        };
        let yes = |_: &Path| true;
        let no = |_: &Path| false;

        let (a, s) = resolve(
            Some("tcp://h:1"),
            env(&[("BUILDKIT_HOST", "unix:///b")]),
            yes,
        )
        .unwrap();
        assert_eq!(
            (a.to_string().as_str(), s),
            ("tcp://h:1", AddressSource::Flag)
        );

        let (a, s) = resolve(
            None,
            env(&[("BUILDKIT_HOST", "unix:///b"), ("DOCKER_HOST", "unix:///d")]),
            yes,
        )
        .unwrap();
        assert_eq!(
            (a, s),
            (Address::Unix("/b".into()), AddressSource::BuildkitHost)
        );

        let (a, s) = resolve(None, env(&[("DOCKER_HOST", "unix:///d.sock")]), no).unwrap();
        assert_eq!(
            (a, s),
            (Address::Docker("/d.sock".into()), AddressSource::DockerHost)
        );

        // A DOCKER_HOST that cannot be used is an error naming it, never a fall back to
        // /var/run/docker.sock.
        for bad in ["tcp://h:2375", "bogus", "unix://rel.sock", "ssh://me@h"] {
            let e = resolve(None, env_owned("DOCKER_HOST", bad), yes).unwrap_err();
            let msg = e.to_string();
            assert!(msg.contains(&format!("DOCKER_HOST=`{bad}`")), "{msg}");
            assert!(
                !msg.contains("/var/run/docker.sock") || bad.starts_with("unix"),
                "{msg}"
            );
            assert!(e.hint().unwrap().contains("DOCKER_HOST"));
        }
        // BUILDKIT_HOST wins over a DOCKER_HOST torchkit could not use.
        let (a, _) = resolve(
            None,
            env(&[
                ("BUILDKIT_HOST", "unix:///b"),
                ("DOCKER_HOST", "tcp://h:2375"),
            ]),
            yes,
        )
        .unwrap();
        assert_eq!(a, Address::Unix("/b".into()));

        let (a, s) = resolve(None, none, no).unwrap();
        assert_eq!(
            (a, s),
            (
                Address::Unix("/run/buildkit/buildkitd.sock".into()),
                AddressSource::Default
            )
        );

        assert!(resolve(None, env(&[("BUILDKIT_HOST", "bogus")]), no).is_err());
    }

    #[test]
    fn tls_bad_ca_file_is_named() {
        let dir = tempfile::tempdir().unwrap();
        let missing = dir.path().join("nope.pem");
        let opts = TlsOptions {
            ca_cert: Some(missing.clone()),
            ..Default::default()
        };
        let err = opts.load().unwrap_err();
        let msg = err.to_string();
        assert!(
            msg.contains("--tlscacert") && msg.contains("nope.pem"),
            "{msg}"
        );
        assert!(err.hint().unwrap().contains("--tlscacert"));

        let garbage = dir.path().join("garbage.pem");
        std::fs::write(&garbage, "hello, not a certificate\n").unwrap();
        let opts = TlsOptions {
            ca_cert: Some(garbage),
            ..Default::default()
        };
        let msg = opts.load().unwrap_err().to_string();
        assert!(msg.contains("no usable CA certificate"), "{msg}");
    }

    #[test]
    fn tls_cert_without_key_is_rejected() {
        let opts = TlsOptions {
            ca_cert: None,
            cert: Some("/x.pem".into()),
            key: None,
            server_name: None,
        };
        // The system bundle may be missing in a sandbox; either way the error is typed.
        let err = opts.load().unwrap_err();
        assert!(
            matches!(
                err,
                TransportError::TlsConfig(_) | TransportError::TlsFile { .. }
            ),
            "{err}"
        );
    }

    #[test]
    fn tls_only_for_tcp() {
        let opts = TlsOptions {
            server_name: Some("x".into()),
            ..Default::default()
        };
        let err = Dialer::new(Address::Unix("/x".into()), &opts).unwrap_err();
        assert!(err.to_string().contains("tcp://"), "{err}");
    }

    #[tokio::test]
    async fn upgrade_reads_exactly_the_head() {
        let (mut client, mut server) = tokio::io::duplex(4096);
        let srv = tokio::spawn(async move {
            let mut buf = vec![0u8; 1024];
            let n = server.read(&mut buf).await.unwrap();
            let req = String::from_utf8_lossy(&buf[..n]).to_string();
            server
                .write_all(b"HTTP/1.1 101 Switching Protocols\r\nConnection: Upgrade\r\nUpgrade: h2c\r\n\r\nPRI-EARLY")
                .await
                .unwrap();
            req
        });
        grpc_upgrade(&mut client).await.ok().expect("upgrade");
        let mut rest = [0u8; 9];
        client.read_exact(&mut rest).await.unwrap();
        assert_eq!(&rest, b"PRI-EARLY");
        let req = srv.await.unwrap();
        assert!(req.starts_with("POST /grpc HTTP/1.1\r\n"));
        assert!(req.contains("Upgrade: h2c\r\n") && req.contains("Connection: Upgrade\r\n"));
    }

    #[tokio::test]
    async fn upgrade_refusal_is_reported() {
        let (mut client, mut server) = tokio::io::duplex(4096);
        tokio::spawn(async move {
            let mut buf = vec![0u8; 1024];
            let _ = server.read(&mut buf).await.unwrap();
            server
                .write_all(b"HTTP/1.1 404 Not Found\r\nContent-Length: 0\r\n\r\n")
                .await
                .unwrap();
        });
        match grpc_upgrade(&mut client).await {
            Err(UpgradeFailure::Refused(s)) => assert!(s.contains("404"), "{s}"),
            _ => panic!("expected a refusal"),
        }
    }

    /// Answers every connection with `answer` after reading what the client sends.
    fn http1_server(listener: tokio::net::UnixListener, answer: &'static [u8]) {
        tokio::spawn(async move {
            while let Ok((mut c, _)) = listener.accept().await {
                tokio::spawn(async move {
                    let mut buf = vec![0u8; 1024];
                    let _ = c.read(&mut buf).await;
                    let _ = c.write_all(answer).await;
                });
            }
        });
    }

    #[tokio::test]
    async fn an_http1_server_is_named_and_docker_gets_docker_scheme() {
        let dir = tempfile::tempdir().unwrap();
        let docker = dir.path().join("docker.sock");
        http1_server(
            tokio::net::UnixListener::bind(&docker).unwrap(),
            b"HTTP/1.1 301 Moved Permanently\r\nApi-Version: 1.51\r\nContent-Length: 0\r\n\r\n",
        );
        let addr = Address::Unix(docker.clone());
        let e = probe_not_buildkit(&addr, &TlsOptions::default())
            .await
            .expect("an HTTP/1 server");
        assert_eq!(
            e.to_string(),
            format!(
                "{addr} answered HTTP/1.1 (`HTTP/1.1 301 Moved Permanently`), not gRPC: this is Docker's API"
            )
        );
        assert!(e
            .hint()
            .unwrap()
            .contains(&format!("use `docker://{}`", docker.display())));

        let other = dir.path().join("other.sock");
        http1_server(
            tokio::net::UnixListener::bind(&other).unwrap(),
            b"HTTP/1.1 400 Bad Request\r\nDocker-Distribution-Api-Version: registry/2.0\r\n\r\n",
        );
        let e = probe_not_buildkit(&Address::Unix(other), &TlsOptions::default())
            .await
            .expect("an HTTP/1 server");
        assert!(e.to_string().ends_with("), not gRPC"), "{e}");
        assert!(e.hint().unwrap().contains("not a BuildKit daemon"));

        // Nothing listening, or docker:// (already Docker's API): nothing to say.
        let gone = Address::Unix(dir.path().join("none.sock"));
        assert!(probe_not_buildkit(&gone, &TlsOptions::default())
            .await
            .is_none());
        let d = Address::Docker(docker);
        assert!(probe_not_buildkit(&d, &TlsOptions::default())
            .await
            .is_none());
    }

    #[tokio::test]
    async fn missing_socket_says_nothing_listens() {
        let dir = tempfile::tempdir().unwrap();
        let addr = Address::Unix(dir.path().join("none.sock"));
        let err = Dialer::new(addr, &TlsOptions::default())
            .unwrap()
            .connect()
            .await
            .unwrap_err();
        assert!(matches!(err, TransportError::NotListening { .. }), "{err}");
        assert!(err.hint().unwrap().contains("scripts/test-env.sh up"));
    }
}
