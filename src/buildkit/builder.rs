//! buildx's builders: `--builder NAME` and `BUILDX_BUILDER` read the builder store that
//! `docker buildx create` writes, and reach the builder the way buildx would.
//!
//! The store is `$DOCKER_CONFIG/buildx` (else `~/.docker/buildx`), as in buildx's `store`
//! package: `instances/<name>` is a JSON node group (`Name`, `Driver`, `Nodes` with `Name`,
//! `Endpoint`, `DriverOpts`); `current` (`Key`, `Name`, `Global`) is the builder chosen by
//! `docker buildx use` for one Docker endpoint, `defaults/<hash of the key>` the one chosen
//! with `--default`. A name that is no builder but a Docker context (`default` included) is
//! that context's Docker engine, as buildx's `GetNodeGroup` does.
//!
//! Per driver, the first node of the builder is reached as:
//!
//! | driver | address |
//! |---|---|
//! | `docker` | `docker://` on the node's Docker endpoint (a context name or `unix://` host) |
//! | `docker-container` | `docker exec -i buildx_buildkit_<node> buildctl dial-stdio` on that endpoint |
//! | `remote` | the node's endpoint (`tcp://`, `unix://`, a helper), with its `cacert`, `cert`, `key`, `servername` driver options as TLS |
//! | `kubernetes` | `kubectl exec` into a running pod of deployment `<node>` (label `app=<node>`), namespace from the `namespace` driver option |

use std::collections::BTreeMap;
use std::path::{Path, PathBuf};

use serde::Deserialize;

use super::helper::Helper;
use super::transport::{docker_host, Address, TlsOptions, TransportError, DEFAULT_DOCKER_SOCKET};

/// A builder, reached.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct Reached {
    /// The address of its (first) node.
    pub addr: Address,
    /// TLS from the node's driver options (`remote` builders).
    pub tls: TlsOptions,
}

/// A node group as buildx stores it (`store.NodeGroup`); fields buildx added over time are
/// optional.
#[derive(Debug, Deserialize)]
struct NodeGroup {
    #[serde(rename = "Name", default)]
    name: String,
    #[serde(rename = "Driver", default)]
    driver: String,
    #[serde(rename = "Nodes", default)]
    nodes: Vec<Node>,
}

#[derive(Debug, Deserialize)]
struct Node {
    #[serde(rename = "Name", default)]
    name: String,
    #[serde(rename = "Endpoint", default)]
    endpoint: String,
    #[serde(rename = "DriverOpts", default)]
    driver_opts: Option<BTreeMap<String, String>>,
}

/// `$DOCKER_CONFIG`, else `$HOME/.docker`: the Docker CLI's config directory.
pub fn docker_config_dir(env: &impl Fn(&str) -> Option<String>) -> Option<PathBuf> {
    env("DOCKER_CONFIG")
        .filter(|d| !d.is_empty())
        .map(PathBuf::from)
        .or_else(|| env("HOME").map(|h| PathBuf::from(h).join(".docker")))
}

/// The Docker CLI's current context name (`DOCKER_CONTEXT`, else `currentContext` in
/// `config.json`), `default` when none is set.
pub fn current_context(
    env: &impl Fn(&str) -> Option<String>,
    read: &impl Fn(&Path) -> Option<String>,
) -> String {
    if let Some(c) = env("DOCKER_CONTEXT").filter(|c| !c.is_empty()) {
        return c;
    }
    docker_config_dir(env)
        .and_then(|d| read(&d.join("config.json")))
        .and_then(|t| serde_json::from_str::<serde_json::Value>(&t).ok())
        .and_then(|v| v.get("currentContext")?.as_str().map(str::to_string))
        .filter(|c| !c.is_empty())
        .unwrap_or_else(|| "default".into())
}

/// The path of a Docker context's `meta.json` (named by the sha256 of the name).
pub fn context_meta(dir: &Path, name: &str) -> PathBuf {
    use sha2::Digest as _;
    dir.join("contexts/meta")
        .join(hex::encode(sha2::Sha256::digest(name.as_bytes())))
        .join("meta.json")
}

/// The Docker endpoint `Host` of context `name` (`None` for `default` or an unknown one).
pub(super) fn context_host(
    dir: &Path,
    name: &str,
    read: &impl Fn(&Path) -> Option<String>,
) -> Option<String> {
    read(&context_meta(dir, name))
        .and_then(|t| serde_json::from_str::<serde_json::Value>(&t).ok())
        .and_then(|v| {
            v.pointer("/Endpoints/docker/Host")?
                .as_str()
                .map(str::to_string)
        })
}

/// The builder `docker buildx use` chose for the current Docker endpoint, if any: buildx's
/// `Txn.Current`, keyed by the context name, or for the `default` context by its Docker
/// host (`DOCKER_HOST`, else `unix:///var/run/docker.sock`).
pub fn current(
    env: &impl Fn(&str) -> Option<String>,
    read: &impl Fn(&Path) -> Option<String>,
) -> Option<String> {
    #[derive(Deserialize)]
    struct Current {
        #[serde(rename = "Key", default)]
        key: String,
        #[serde(rename = "Name", default)]
        name: String,
        #[serde(rename = "Global", default)]
        global: bool,
    }
    let dir = docker_config_dir(env)?;
    let context = current_context(env, read);
    let key = if context != "default" {
        context
    } else {
        env("DOCKER_HOST")
            .filter(|h| !h.is_empty())
            .unwrap_or_else(|| format!("unix://{DEFAULT_DOCKER_SOCKET}"))
    };
    let exists =
        |name: &str| read(&dir.join("buildx/instances").join(name.to_lowercase())).is_some();
    if let Some(c) = read(&dir.join("buildx/current"))
        .and_then(|t| serde_json::from_str::<Current>(&t).ok())
        .filter(|c| !c.name.is_empty() && (c.global || c.key == key))
    {
        return exists(&c.name).then_some(c.name);
    }
    use sha2::Digest as _;
    let hash = hex::encode(sha2::Sha256::digest(key.as_bytes()));
    let name = read(&dir.join("buildx/defaults").join(&hash[..20]))?;
    let name = name.trim().to_string();
    exists(&name).then_some(name)
}

/// Reaches builder `name` (`from`: where the name came from, for messages).
pub fn reach(
    name: &str,
    from: &str,
    env: &impl Fn(&str) -> Option<String>,
    read: &impl Fn(&Path) -> Option<String>,
) -> Result<Reached, TransportError> {
    let bad = |reason: String| TransportError::Builder {
        name: name.to_string(),
        from: from.to_string(),
        reason,
    };
    let dir = docker_config_dir(env);
    let stored = dir
        .as_ref()
        .and_then(|d| read(&d.join("buildx/instances").join(name.to_lowercase())));
    let Some(text) = stored else {
        // Not a builder: a Docker context of that name is its engine (buildx's docker driver).
        let is_context = name == "default"
            || dir
                .as_ref()
                .is_some_and(|d| read(&context_meta(d, name)).is_some());
        if is_context {
            return Ok(Reached {
                addr: docker_endpoint(name, env, read).map_err(bad)?,
                tls: TlsOptions::default(),
            });
        }
        return Err(TransportError::UnknownBuilder {
            name: name.to_string(),
            from: from.to_string(),
            known: dir
                .as_deref()
                .map(known)
                .unwrap_or_else(|| vec!["default".into()]),
        });
    };
    let group: NodeGroup = serde_json::from_str(&text)
        .map_err(|e| bad(format!("its entry in buildx's store does not parse: {e}")))?;
    let Some(node) = group.nodes.first() else {
        return Err(bad("it has no nodes".into()));
    };
    let opts = node.driver_opts.clone().unwrap_or_default();
    let shown = if group.name.is_empty() {
        name
    } else {
        &group.name
    };
    match group.driver.as_str() {
        "docker" => Ok(Reached {
            addr: docker_endpoint(&node.endpoint, env, read).map_err(bad)?,
            tls: TlsOptions::default(),
        }),
        "docker-container" => {
            let (context, host) = if node.endpoint.contains("://") {
                (None, Some(node.endpoint.clone()))
            } else if node.endpoint.is_empty() || node.endpoint == "default" {
                (None, None)
            } else {
                (Some(node.endpoint.clone()), None)
            };
            Ok(Reached {
                addr: Address::Helper(Helper::DockerContainer {
                    container: format!("buildx_buildkit_{}", node.name),
                    context,
                    host,
                }),
                tls: TlsOptions::default(),
            })
        }
        "remote" => {
            let addr: Address = node.endpoint.parse().map_err(|e: TransportError| {
                bad(format!("its endpoint: {e}"))
            })?;
            let path = |k: &str| opts.get(k).filter(|v| !v.is_empty()).map(PathBuf::from);
            Ok(Reached {
                addr,
                tls: TlsOptions {
                    ca_cert: path("cacert"),
                    cert: path("cert"),
                    key: path("key"),
                    server_name: opts.get("servername").filter(|v| !v.is_empty()).cloned(),
                },
            })
        }
        "kubernetes" => Ok(Reached {
            addr: Address::Helper(Helper::KubeDeployment {
                deployment: if node.name.is_empty() {
                    "buildkit".into()
                } else {
                    node.name.clone()
                },
                namespace: opts.get("namespace").cloned().unwrap_or_default(),
            }),
            tls: TlsOptions::default(),
        }),
        other => Err(bad(format!(
            "builder {shown} uses the `{other}` driver; torchkit reaches the docker, docker-container, remote and kubernetes drivers"
        ))),
    }
}

/// A Docker endpoint as buildx stores it (a context name, or a host URL) as dockerd's
/// BuildKit.
fn docker_endpoint(
    endpoint: &str,
    env: &impl Fn(&str) -> Option<String>,
    read: &impl Fn(&Path) -> Option<String>,
) -> Result<Address, String> {
    let host = if endpoint.contains("://") {
        endpoint.to_string()
    } else if endpoint.is_empty() || endpoint == "default" {
        env("DOCKER_HOST")
            .filter(|h| !h.is_empty())
            .unwrap_or_else(|| format!("unix://{DEFAULT_DOCKER_SOCKET}"))
    } else {
        docker_config_dir(env)
            .and_then(|d| context_host(&d, endpoint, read))
            .ok_or_else(|| {
                format!("its Docker context `{endpoint}` is missing or has no docker endpoint")
            })?
    };
    docker_host(&format!("its Docker endpoint `{endpoint}`"), &host).map_err(|e| e.to_string())
}

/// The builders a user can name: the store's instances, `default` and the Docker contexts.
fn known(dir: &Path) -> Vec<String> {
    let names = |d: PathBuf| -> Vec<String> {
        std::fs::read_dir(d)
            .map(|rd| {
                rd.filter_map(Result::ok)
                    .filter_map(|e| e.file_name().into_string().ok())
                    .filter(|n| !n.starts_with('.'))
                    .collect()
            })
            .unwrap_or_default()
    };
    let mut all = names(dir.join("buildx/instances"));
    for meta in names(dir.join("contexts/meta")) {
        let ctx = std::fs::read_to_string(dir.join("contexts/meta").join(meta).join("meta.json"))
            .ok()
            .and_then(|t| serde_json::from_str::<serde_json::Value>(&t).ok())
            .and_then(|v| v.get("Name")?.as_str().map(str::to_string));
        all.extend(ctx);
    }
    all.push("default".into());
    all.sort();
    all.dedup();
    all
}

#[cfg(test)]
mod tests {
    use super::*;
    use crate::error::Hint as _;
    use std::collections::HashMap;

    struct Fs(HashMap<PathBuf, String>);

    impl Fs {
        fn new(files: &[(&str, &str)]) -> Fs {
            Fs(files
                .iter()
                .map(|(p, t)| (PathBuf::from(p), t.to_string()))
                .collect())
        }
        fn read(&self) -> impl Fn(&Path) -> Option<String> + '_ {
            |p: &Path| self.0.get(p).cloned()
        }
    }

    fn env(vars: &[(&'static str, &'static str)]) -> impl Fn(&str) -> Option<String> {
        let vars: Vec<(&str, &str)> = vars.to_vec();
        move |k: &str| {
            vars.iter()
                .find(|(n, _)| *n == k)
                .map(|(_, v)| v.to_string())
        }
    }

    // As `docker buildx create` 0.13 writes them.
    const CONTAINER: &str = r#"{"Name":"ci","Driver":"docker-container","Nodes":[{"Name":"ci0","Endpoint":"default","Platforms":null,"Flags":null,"DriverOpts":null,"Files":null}],"Dynamic":false}"#;
    const REMOTE: &str = r#"{"Name":"far","Driver":"remote","Nodes":[{"Name":"far0","Endpoint":"tcp://10.0.0.5:1234","Platforms":null,"Flags":null,"DriverOpts":{"cacert":"/certs/ca.pem","cert":"/certs/cert.pem","key":"/certs/key.pem","servername":"bk.internal"},"Files":null}],"Dynamic":false}"#;
    const KUBE: &str = r#"{"Name":"kube","Driver":"kubernetes","Nodes":[{"Name":"kube0","Endpoint":"default","Platforms":null,"Flags":null,"DriverOpts":{"namespace":"builds","replicas":"2"},"Files":null}],"Dynamic":false}"#;
    const DOCKER: &str = r#"{"Name":"eng","Driver":"docker","Nodes":[{"Name":"eng","Endpoint":"unix:///run/alt/docker.sock"}]}"#;

    #[test]
    fn each_driver_is_reached_as_buildx_does() {
        let fs = Fs::new(&[
            ("/cfg/buildx/instances/ci", CONTAINER),
            ("/cfg/buildx/instances/far", REMOTE),
            ("/cfg/buildx/instances/kube", KUBE),
            ("/cfg/buildx/instances/eng", DOCKER),
        ]);
        let e = env(&[("DOCKER_CONFIG", "/cfg")]);
        let r = reach("ci", "--builder", &e, &fs.read()).unwrap();
        assert_eq!(
            r.addr.to_string(),
            "docker-container://buildx_buildkit_ci0",
            "{r:?}"
        );
        // Names are case-insensitive in buildx's store.
        assert_eq!(reach("CI", "--builder", &e, &fs.read()).unwrap(), r);

        let r = reach("far", "--builder", &e, &fs.read()).unwrap();
        assert_eq!(r.addr.to_string(), "tcp://10.0.0.5:1234");
        assert_eq!(r.tls.ca_cert.as_deref(), Some(Path::new("/certs/ca.pem")));
        assert_eq!(r.tls.cert.as_deref(), Some(Path::new("/certs/cert.pem")));
        assert_eq!(r.tls.key.as_deref(), Some(Path::new("/certs/key.pem")));
        assert_eq!(r.tls.server_name.as_deref(), Some("bk.internal"));

        let r = reach("kube", "--builder", &e, &fs.read()).unwrap();
        assert_eq!(
            r.addr,
            Address::Helper(Helper::KubeDeployment {
                deployment: "kube0".into(),
                namespace: "builds".into()
            })
        );

        let r = reach("eng", "--builder", &e, &fs.read()).unwrap();
        assert_eq!(r.addr, Address::Docker("/run/alt/docker.sock".into()));
    }

    #[test]
    fn a_docker_container_builder_on_another_endpoint_passes_it_to_docker() {
        let on_host = CONTAINER.replace("\"default\"", "\"unix:///run/alt/docker.sock\"");
        let on_context = CONTAINER.replace("\"default\"", "\"remote-ctx\"");
        let fs = Fs::new(&[
            ("/cfg/buildx/instances/h", &on_host),
            ("/cfg/buildx/instances/c", &on_context),
        ]);
        let e = env(&[("DOCKER_CONFIG", "/cfg")]);
        let Address::Helper(h) = reach("h", "f", &e, &fs.read()).unwrap().addr else {
            panic!()
        };
        assert_eq!(
            h.command_line(),
            "docker --host=unix:///run/alt/docker.sock exec -i buildx_buildkit_ci0 buildctl dial-stdio"
        );
        let Address::Helper(h) = reach("c", "f", &e, &fs.read()).unwrap().addr else {
            panic!()
        };
        assert_eq!(
            h.command_line(),
            "docker --context=remote-ctx exec -i buildx_buildkit_ci0 buildctl dial-stdio"
        );
    }

    #[test]
    fn default_and_context_names_are_docker_engines() {
        let meta = context_meta(Path::new("/cfg"), "other");
        let meta_json =
            r#"{"Name":"other","Endpoints":{"docker":{"Host":"unix:///run/other.sock"}}}"#;
        let fs = Fs(HashMap::from([(meta, meta_json.to_string())]));
        let e = env(&[
            ("DOCKER_CONFIG", "/cfg"),
            ("DOCKER_HOST", "unix:///run/tk/d.sock"),
        ]);
        assert_eq!(
            reach("default", "f", &e, &fs.read()).unwrap().addr,
            Address::Docker("/run/tk/d.sock".into())
        );
        assert_eq!(
            reach("other", "f", &e, &fs.read()).unwrap().addr,
            Address::Docker("/run/other.sock".into())
        );
    }

    #[test]
    fn an_unknown_builder_lists_the_known_ones() {
        let dir = tempfile::tempdir().unwrap();
        std::fs::create_dir_all(dir.path().join("buildx/instances")).unwrap();
        std::fs::write(dir.path().join("buildx/instances/ci"), CONTAINER).unwrap();
        std::fs::write(dir.path().join("buildx/instances/far"), REMOTE).unwrap();
        let cfg = dir.path().to_str().unwrap().to_string();
        let e = move |k: &str| (k == "DOCKER_CONFIG").then(|| cfg.clone());
        let err = reach("nope", "--builder", &e, &|p: &Path| {
            std::fs::read_to_string(p).ok()
        })
        .unwrap_err();
        let msg = err.to_string();
        assert!(
            msg.contains("no buildx builder `nope` (--builder)"),
            "{msg}"
        );
        assert!(msg.contains("ci, default, far"), "{msg}");
        assert!(
            err.hint().unwrap().contains("docker buildx ls"),
            "{:?}",
            err.hint()
        );
    }

    #[test]
    fn unsupported_drivers_and_broken_entries_are_named() {
        let cloud =
            r#"{"Name":"c","Driver":"cloud","Nodes":[{"Name":"c0","Endpoint":"cloud://x"}]}"#;
        let fs = Fs::new(&[
            ("/cfg/buildx/instances/c", cloud),
            ("/cfg/buildx/instances/broken", "{not json"),
            (
                "/cfg/buildx/instances/empty",
                r#"{"Name":"empty","Driver":"docker","Nodes":[]}"#,
            ),
        ]);
        let e = env(&[("DOCKER_CONFIG", "/cfg")]);
        let msg = reach("c", "BUILDX_BUILDER", &e, &fs.read())
            .unwrap_err()
            .to_string();
        assert!(msg.contains("`cloud` driver"), "{msg}");
        assert!(msg.contains("BUILDX_BUILDER"), "{msg}");
        let msg = reach("broken", "f", &e, &fs.read())
            .unwrap_err()
            .to_string();
        assert!(msg.contains("does not parse"), "{msg}");
        let msg = reach("empty", "f", &e, &fs.read()).unwrap_err().to_string();
        assert!(msg.contains("no nodes"), "{msg}");
    }

    #[test]
    fn current_follows_buildx_use_for_this_endpoint() {
        use sha2::Digest as _;
        let cur = |key: &str, name: &str, global: bool| {
            format!(r#"{{"Key":"{key}","Name":"{name}","Global":{global}}}"#)
        };
        let e = env(&[
            ("DOCKER_CONFIG", "/cfg"),
            ("DOCKER_HOST", "unix:///run/tk/d.sock"),
        ]);
        let with = |current: String| {
            Fs::new(&[
                ("/cfg/buildx/instances/ci", CONTAINER),
                ("/cfg/buildx/current", &current),
            ])
        };
        // `docker buildx use ci` on this endpoint.
        let fs = with(cur("unix:///run/tk/d.sock", "ci", false));
        assert_eq!(current(&e, &fs.read()).as_deref(), Some("ci"));
        // On another endpoint: not ours.
        let fs = with(cur("unix:///var/run/docker.sock", "ci", false));
        assert_eq!(current(&e, &fs.read()), None);
        // `--global`.
        let fs = with(cur("unix:///var/run/docker.sock", "ci", true));
        assert_eq!(current(&e, &fs.read()).as_deref(), Some("ci"));
        // What buildx writes when nothing was chosen.
        let fs = with(cur("unix:///run/tk/d.sock", "", false));
        assert_eq!(current(&e, &fs.read()), None);
        // A removed builder is not followed.
        let fs = with(cur("unix:///run/tk/d.sock", "gone", false));
        assert_eq!(current(&e, &fs.read()), None);
        // `docker buildx use --default ci`.
        let hash = hex::encode(sha2::Sha256::digest(b"unix:///run/tk/d.sock"));
        let default = format!("/cfg/buildx/defaults/{}", &hash[..20]);
        let fs = Fs::new(&[("/cfg/buildx/instances/ci", CONTAINER), (&default, "ci")]);
        assert_eq!(current(&e, &fs.read()).as_deref(), Some("ci"));
    }
}
