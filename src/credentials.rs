//! Registry credentials from the Docker CLI configuration, the way buildkit's
//! `session/auth/authprovider` and docker/cli `cli/config` find them. Two edges use them:
//! the session's `moby.filesync.v1.Auth` service (the daemon asks for them during a build)
//! and the registry client ([`crate::registry`], `--resolve-digest` without a daemon).
//!
//! - The file is `$DOCKER_CONFIG/config.json`, else `~/.docker/config.json`.
//! - Docker Hub is stored under `https://index.docker.io/v1/`; the daemon asks for
//!   `registry-1.docker.io` (and users write `docker.io`), so those hosts map to that key.
//! - A credential helper (`credHelpers.<host>`, else `credsStore`) is run as
//!   `docker-credential-<name> get` with the server address on stdin; a helper that is not
//!   installed or has no entry means no credentials, as in docker/cli's `nativeStore`.
//! - Otherwise `auths.<host>`: `auth` (base64 `user:password`) or `username`/`password`,
//!   and `identitytoken`, which is returned alone as the secret. Keys written as URLs
//!   (`https://host/v1/`) match by host name (docker/cli `ConvertToHostname`).
//! - No entry: an empty answer, meaning anonymous.
//!
//! Secrets are never logged (`Credentials`'s `Debug` redacts them).

use std::collections::BTreeMap;
use std::ffi::OsString;
use std::path::PathBuf;
use std::time::Duration;

use base64::Engine;
use serde::Deserialize;
use tokio::io::AsyncWriteExt;

use crate::error::Hint;

/// The key Docker stores Docker Hub credentials under.
pub const DOCKER_HUB_KEY: &str = "https://index.docker.io/v1/";
const HELPER_TIMEOUT: Duration = Duration::from_secs(30);

/// Why credentials could not be read.
#[derive(Debug, thiserror::Error)]
pub enum AuthError {
    /// The config file exists but cannot be read.
    #[error("cannot read {path}: {source}")]
    Read {
        /// The config file.
        path: PathBuf,
        /// The IO error.
        source: std::io::Error,
    },
    /// The config file is not valid JSON of the expected shape.
    #[error("invalid Docker config {path}: {message}")]
    Parse {
        /// The config file.
        path: PathBuf,
        /// What is wrong.
        message: String,
    },
    /// A credential helper failed in a way other than "not found".
    #[error("credential helper docker-credential-{helper} failed for {host}: {message}")]
    Helper {
        /// The helper's name.
        helper: String,
        /// The registry.
        host: String,
        /// Its error output.
        message: String,
    },
}

impl Hint for AuthError {
    fn hint(&self) -> Option<String> {
        match self {
            AuthError::Parse { path, .. } | AuthError::Read { path, .. } => Some(format!(
                "fix or move {} (or point DOCKER_CONFIG at another directory), then run `docker login` again",
                path.display()
            )),
            AuthError::Helper { helper, .. } => {
                Some(format!("check that `docker-credential-{helper} list` works, or run `docker login` again"))
            }
        }
    }
}

/// Credentials for one registry. `Debug` never shows the secret.
#[derive(Clone, Default, PartialEq, Eq)]
pub struct Credentials {
    /// User name; empty with an identity token.
    pub username: String,
    /// Password or identity token.
    pub secret: String,
}

impl std::fmt::Debug for Credentials {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        f.debug_struct("Credentials")
            .field("username", &self.username)
            .field(
                "secret",
                &if self.secret.is_empty() {
                    ""
                } else {
                    "<redacted>"
                },
            )
            .finish()
    }
}

#[derive(Debug, Default, Deserialize)]
struct ConfigFile {
    #[serde(default)]
    auths: BTreeMap<String, AuthEntry>,
    #[serde(rename = "credsStore", default)]
    creds_store: Option<String>,
    #[serde(rename = "credHelpers", default)]
    cred_helpers: BTreeMap<String, String>,
}

#[derive(Debug, Default, Deserialize)]
struct AuthEntry {
    #[serde(default)]
    auth: String,
    #[serde(default)]
    username: String,
    #[serde(default)]
    password: String,
    #[serde(default)]
    identitytoken: String,
}

#[derive(Debug, Deserialize)]
struct HelperReply {
    #[serde(rename = "Username", default)]
    username: String,
    #[serde(rename = "Secret", default)]
    secret: String,
}

/// docker/cli `ConvertToHostname`.
fn convert_to_hostname(key: &str) -> &str {
    let s = key.split_once("://").map(|(_, rest)| rest).unwrap_or(key);
    s.split('/').next().unwrap_or(s)
}

/// The config-file key for a registry host the daemon asks about.
pub fn server_key(host: &str) -> &str {
    match host {
        "docker.io" | "registry-1.docker.io" | "index.docker.io" => DOCKER_HUB_KEY,
        h => h,
    }
}

/// Where registry credentials come from.
#[derive(Debug, Clone)]
pub struct DockerAuth {
    config_dir: Option<PathBuf>,
    helper_path: Option<OsString>,
}

impl DockerAuth {
    /// `$DOCKER_CONFIG`, else `$HOME/.docker`; anonymous when neither is set.
    pub fn from_env() -> Self {
        let dir = std::env::var_os("DOCKER_CONFIG")
            .filter(|v| !v.is_empty())
            .map(PathBuf::from)
            .or_else(|| std::env::var_os("HOME").map(|h| PathBuf::from(h).join(".docker")));
        DockerAuth {
            config_dir: dir,
            helper_path: None,
        }
    }

    /// Reads `<dir>/config.json`.
    pub fn from_config_dir(dir: impl Into<PathBuf>) -> Self {
        DockerAuth {
            config_dir: Some(dir.into()),
            helper_path: None,
        }
    }

    /// Never sends credentials.
    pub fn anonymous() -> Self {
        DockerAuth {
            config_dir: None,
            helper_path: None,
        }
    }

    /// Searches this `PATH`-style list instead of `$PATH` for `docker-credential-*`.
    pub fn with_helper_path(mut self, path: impl Into<OsString>) -> Self {
        self.helper_path = Some(path.into());
        self
    }

    fn find_helper(&self, name: &str) -> Option<PathBuf> {
        let exe = format!("docker-credential-{name}");
        let path = self
            .helper_path
            .clone()
            .or_else(|| std::env::var_os("PATH"))?;
        std::env::split_paths(&path)
            .map(|d| d.join(&exe))
            .find(|p| p.is_file())
    }

    fn load(&self) -> Result<Option<(PathBuf, ConfigFile)>, AuthError> {
        let Some(dir) = &self.config_dir else {
            return Ok(None);
        };
        let path = dir.join("config.json");
        let text = match std::fs::read_to_string(&path) {
            Ok(t) => t,
            Err(e) if e.kind() == std::io::ErrorKind::NotFound => return Ok(None),
            Err(source) => return Err(AuthError::Read { path, source }),
        };
        let cfg: ConfigFile = serde_json::from_str(&text).map_err(|e| AuthError::Parse {
            path: path.clone(),
            message: e.to_string(),
        })?;
        Ok(Some((path, cfg)))
    }

    /// The credentials for `host` (as the daemon names it); empty means anonymous.
    pub async fn credentials(&self, host: &str) -> Result<Credentials, AuthError> {
        let Some((path, cfg)) = self.load()? else {
            return Ok(Credentials::default());
        };
        let key = server_key(host);
        let helper = cfg
            .cred_helpers
            .get(key)
            .or_else(|| cfg.cred_helpers.get(host))
            .or(cfg.creds_store.as_ref());
        if let Some(helper) = helper.filter(|h| !h.is_empty()) {
            return self.run_helper(helper, key).await;
        }
        let entry = cfg.auths.get(key).or_else(|| {
            cfg.auths
                .iter()
                .find(|(k, _)| convert_to_hostname(k) == key)
                .map(|(_, v)| v)
        });
        let Some(entry) = entry else {
            return Ok(Credentials::default());
        };
        if !entry.identitytoken.is_empty() {
            return Ok(Credentials {
                username: String::new(),
                secret: entry.identitytoken.clone(),
            });
        }
        if !entry.auth.is_empty() {
            let parse_err = |message: String| AuthError::Parse {
                path: path.clone(),
                message,
            };
            let raw = base64::engine::general_purpose::STANDARD
                .decode(entry.auth.trim())
                .map_err(|e| parse_err(format!("auths.{key}.auth is not base64: {e}")))?;
            let raw = String::from_utf8(raw)
                .map_err(|_| parse_err(format!("auths.{key}.auth is not UTF-8")))?;
            let (user, pass) = raw.split_once(':').ok_or_else(|| {
                parse_err(format!("auths.{key}.auth is not base64 of user:password"))
            })?;
            return Ok(Credentials {
                username: user.to_string(),
                secret: pass.trim_end_matches('\n').to_string(),
            });
        }
        Ok(Credentials {
            username: entry.username.clone(),
            secret: entry.password.clone(),
        })
    }

    async fn run_helper(&self, helper: &str, server: &str) -> Result<Credentials, AuthError> {
        let Some(exe) = self.find_helper(helper) else {
            return Ok(Credentials::default());
        };
        let fail = |message: String| AuthError::Helper {
            helper: helper.to_string(),
            host: server.to_string(),
            message,
        };
        let mut child = tokio::process::Command::new(&exe)
            .arg("get")
            .stdin(std::process::Stdio::piped())
            .stdout(std::process::Stdio::piped())
            .stderr(std::process::Stdio::piped())
            .kill_on_drop(true)
            .spawn()
            .map_err(|e| fail(e.to_string()))?;
        if let Some(mut stdin) = child.stdin.take() {
            stdin
                .write_all(server.as_bytes())
                .await
                .map_err(|e| fail(e.to_string()))?;
        }
        let out = tokio::time::timeout(HELPER_TIMEOUT, child.wait_with_output())
            .await
            .map_err(|_| fail(format!("no answer within {}s", HELPER_TIMEOUT.as_secs())))?
            .map_err(|e| fail(e.to_string()))?;
        if !out.status.success() {
            let text = String::from_utf8_lossy(&out.stdout).into_owned()
                + &String::from_utf8_lossy(&out.stderr);
            // docker-credential-helpers `ErrCredentialsNotFound`: anonymous.
            if text.contains("credentials not found") {
                return Ok(Credentials::default());
            }
            return Err(fail(text.trim().to_string()));
        }
        let reply: HelperReply = serde_json::from_slice(&out.stdout)
            .map_err(|e| fail(format!("invalid JSON reply: {e}")))?;
        if reply.username == "<token>" {
            return Ok(Credentials {
                username: String::new(),
                secret: reply.secret,
            });
        }
        Ok(Credentials {
            username: reply.username,
            secret: reply.secret,
        })
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn hostnames() {
        assert_eq!(
            convert_to_hostname("https://index.docker.io/v1/"),
            "index.docker.io"
        );
        assert_eq!(convert_to_hostname("myreg.io:5000/v2/"), "myreg.io:5000");
        assert_eq!(server_key("registry-1.docker.io"), DOCKER_HUB_KEY);
        assert_eq!(server_key("ghcr.io"), "ghcr.io");
    }

    #[test]
    fn debug_redacts() {
        let c = Credentials {
            username: "u".into(),
            secret: "hunter2".into(),
        };
        assert!(!format!("{c:?}").contains("hunter2"));
    }
}
