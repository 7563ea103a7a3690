//! Exec ops: run a command with mounts (Go `client/llb/exec.go`).
//!
//! Mounts are sorted by destination (so `/` comes first); secret mounts follow, also sorted.
//! Writable bind mounts get outputs 0, 1, … in that order; cache, tmpfs, secret and
//! read-only mounts get output −1, and input −1 unless they have a source.

use super::platform::Platform;
use super::state::{op_meta_setters, Node, OpKind, OpMeta, Output, State, StateMeta};
use super::{caps, pb, LlbError};
use std::sync::Arc;

/// The network an exec sees (`ExecOp.network`).
#[derive(Debug, Clone, Copy, PartialEq, Eq, Default)]
pub enum Network {
    /// Its own network namespace with outbound access (BuildKit's default, `UNSET`).
    #[default]
    Sandbox,
    /// The host's network; needs the `network.host` entitlement.
    Host,
    /// No network at all.
    None,
}

/// The security mode of an exec (`ExecOp.security`).
#[derive(Debug, Clone, Copy, PartialEq, Eq, Default)]
pub enum Security {
    /// The default sandbox.
    #[default]
    Sandbox,
    /// Privileged; needs the `security.insecure` entitlement.
    Insecure,
}

/// Who may use a cache mount at the same time (`CacheOpt.sharing`).
#[derive(Debug, Clone, Copy, PartialEq, Eq, Default)]
pub enum Sharing {
    /// Concurrent writers share it.
    #[default]
    Shared,
    /// A second writer gets a fresh, private copy.
    Private,
    /// A second writer waits until the first releases it.
    Locked,
}

#[derive(Debug, Clone)]
enum MountKind {
    Bind {
        source: State,
        readonly: bool,
    },
    Cache {
        id: String,
        sharing: Sharing,
        from: Option<State>,
    },
    Tmpfs {
        size: i64,
    },
    Secret {
        id: String,
        uid: u32,
        gid: u32,
        mode: u32,
        optional: bool,
    },
}

/// One mount of an exec, built with [`Mount::bind`], [`Mount::cache`], [`Mount::tmpfs`] or
/// [`Mount::secret`].
#[derive(Debug, Clone)]
#[must_use]
pub struct Mount {
    dest: String,
    selector: String,
    kind: MountKind,
    misuse: Option<String>,
}

impl Mount {
    /// Bind-mounts `source` (its subpath `selector`, or all of it when empty) at `dest`.
    /// A writable bind gets an output of the exec; see [`ExecState::mount`].
    pub fn bind(dest: &str, source: &State, selector: &str, readonly: bool) -> Self {
        Self {
            dest: dest.to_owned(),
            selector: selector.to_owned(),
            kind: MountKind::Bind {
                source: source.clone(),
                readonly,
            },
            misuse: None,
        }
    }

    /// A persistent cache directory shared between builds, keyed by `id`.
    pub fn cache(dest: &str, id: &str, sharing: Sharing) -> Self {
        Self {
            dest: dest.to_owned(),
            selector: String::new(),
            kind: MountKind::Cache {
                id: id.to_owned(),
                sharing,
                from: None,
            },
            misuse: None,
        }
    }

    /// An empty in-memory filesystem.
    pub fn tmpfs(dest: &str) -> Self {
        Self {
            dest: dest.to_owned(),
            selector: String::new(),
            kind: MountKind::Tmpfs { size: 0 },
            misuse: None,
        }
    }

    /// A secret file from the client session, mode 0400 owned by root unless changed.
    pub fn secret(dest: &str, id: &str) -> Self {
        Self {
            dest: dest.to_owned(),
            selector: String::new(),
            kind: MountKind::Secret {
                id: id.to_owned(),
                uid: 0,
                gid: 0,
                mode: 0o400,
                optional: false,
            },
            misuse: None,
        }
    }

    fn misuse(mut self, what: &str) -> Self {
        self.misuse
            .get_or_insert_with(|| format!("{what} does not apply to this kind of mount"));
        self
    }

    /// Size limit of a tmpfs mount, in bytes.
    pub fn size(mut self, bytes: i64) -> Self {
        match &mut self.kind {
            MountKind::Tmpfs { size } => *size = bytes,
            _ => return self.misuse("size"),
        }
        self
    }

    /// Seeds a cache mount from a state (used when the cache is empty).
    pub fn seed(mut self, state: &State) -> Self {
        match &mut self.kind {
            MountKind::Cache { from, .. } => *from = Some(state.clone()),
            _ => return self.misuse("seed"),
        }
        self
    }

    /// Subpath of the source to mount (cache seeds and binds).
    pub fn selector(mut self, selector: &str) -> Self {
        self.selector = selector.to_owned();
        self
    }

    /// Owner uid of a secret file.
    pub fn uid(mut self, v: u32) -> Self {
        match &mut self.kind {
            MountKind::Secret { uid, .. } => *uid = v,
            _ => return self.misuse("uid"),
        }
        self
    }

    /// Owner gid of a secret file.
    pub fn gid(mut self, v: u32) -> Self {
        match &mut self.kind {
            MountKind::Secret { gid, .. } => *gid = v,
            _ => return self.misuse("gid"),
        }
        self
    }

    /// Permission bits of a secret file.
    pub fn mode(mut self, v: u32) -> Self {
        match &mut self.kind {
            MountKind::Secret { mode, .. } => *mode = v,
            _ => return self.misuse("mode"),
        }
        self
    }

    /// Whether a missing secret is fine (otherwise the exec fails).
    pub fn optional(mut self, v: bool) -> Self {
        match &mut self.kind {
            MountKind::Secret { optional, .. } => *optional = v,
            _ => return self.misuse("optional"),
        }
        self
    }
}

/// A command to run, built with [`Exec::new`] or [`Exec::shell`] and run with
/// [`State::run`].
#[derive(Debug, Clone)]
#[must_use]
pub struct Exec {
    args: Vec<String>,
    env: Vec<(String, String)>,
    cwd: Option<String>,
    user: Option<String>,
    network: Network,
    security: Security,
    mounts: Vec<Mount>,
    devices: Vec<(String, bool)>,
    meta: OpMeta,
}

impl Exec {
    /// Runs `args` directly (no shell).
    pub fn new<S: AsRef<str>>(args: impl IntoIterator<Item = S>) -> Self {
        Self {
            args: args.into_iter().map(|s| s.as_ref().to_owned()).collect(),
            env: Vec::new(),
            cwd: None,
            user: None,
            network: Network::Sandbox,
            security: Security::Sandbox,
            mounts: Vec::new(),
            devices: Vec::new(),
            meta: OpMeta::default(),
        }
    }

    /// Runs `/bin/sh -c cmd`, like a Dockerfile `RUN` in shell form.
    pub fn shell(cmd: &str) -> Self {
        Self::new(["/bin/sh", "-c", cmd])
    }

    /// Sets a variable for this exec only, on top of the state's env (replacing and moving
    /// an existing key to the end).
    pub fn env(mut self, key: &str, value: &str) -> Self {
        self.env.retain(|(k, _)| k != key);
        self.env.push((key.to_owned(), value.to_owned()));
        self
    }

    /// Working directory for this exec; relative paths join the state's directory.
    pub fn cwd(mut self, cwd: &str) -> Self {
        self.cwd = Some(cwd.to_owned());
        self
    }

    /// User for this exec, overriding the state's.
    pub fn user(mut self, user: &str) -> Self {
        self.user = Some(user.to_owned());
        self
    }

    /// Network mode.
    pub fn network(mut self, network: Network) -> Self {
        self.network = network;
        self
    }

    /// Security mode.
    pub fn security(mut self, security: Security) -> Self {
        self.security = security;
        self
    }

    /// Gives the exec a CDI device (`nvidia.com/gpu=all`), as `RUN --device` does; an
    /// optional one is left out when the daemon has no such device.
    pub fn cdi_device(mut self, name: &str, optional: bool) -> Self {
        self.devices.push((name.to_owned(), optional));
        self
    }

    /// Adds a mount (order does not matter; mounts are sorted by destination).
    pub fn mount(mut self, mount: Mount) -> Self {
        self.mounts.push(mount);
        self
    }
}

op_meta_setters!(Exec, meta);

#[derive(Debug)]
pub(crate) enum MountNodeKind {
    Bind,
    Cache {
        id: String,
        sharing: Sharing,
    },
    Tmpfs {
        size: i64,
    },
    Secret {
        id: String,
        uid: u32,
        gid: u32,
        mode: u32,
        optional: bool,
    },
}

/// A mount in final form: sorted position, source and output index already decided.
#[derive(Debug)]
pub(crate) struct MountNode {
    pub dest: String,
    pub source: Option<Output>,
    pub selector: String,
    pub readonly: bool,
    pub output: i64,
    pub kind: MountNodeKind,
}

/// An exec op in final form.
#[derive(Debug)]
pub(crate) struct ExecNode {
    pub args: Vec<String>,
    pub env: Vec<String>,
    pub cwd: String,
    pub user: String,
    pub network: Network,
    pub security: Security,
    pub devices: Vec<(String, bool)>,
    pub mounts: Vec<MountNode>,
    pub platform: Platform,
    pub error: Option<LlbError>,
}

impl ExecNode {
    pub(crate) fn to_pb(&self, inputs: &[i64]) -> pb::ExecOp {
        let mounts = self
            .mounts
            .iter()
            .zip(inputs)
            .map(|(m, &input)| {
                let mut pm = pb::Mount {
                    input,
                    selector: m.selector.clone(),
                    dest: m.dest.clone(),
                    output: m.output,
                    readonly: m.readonly,
                    ..Default::default()
                };
                match &m.kind {
                    MountNodeKind::Bind => {}
                    MountNodeKind::Cache { id, sharing } => {
                        pm.mount_type = pb::MountType::Cache as i32;
                        pm.cache_opt = Some(pb::CacheOpt {
                            id: id.clone(),
                            sharing: match sharing {
                                Sharing::Shared => pb::CacheSharingOpt::Shared,
                                Sharing::Private => pb::CacheSharingOpt::Private,
                                Sharing::Locked => pb::CacheSharingOpt::Locked,
                            } as i32,
                        });
                    }
                    MountNodeKind::Tmpfs { size } => {
                        pm.mount_type = pb::MountType::Tmpfs as i32;
                        pm.tmpfs_opt = Some(pb::TmpfsOpt { size: *size });
                    }
                    MountNodeKind::Secret {
                        id,
                        uid,
                        gid,
                        mode,
                        optional,
                    } => {
                        pm.mount_type = pb::MountType::Secret as i32;
                        pm.secret_opt = Some(pb::SecretOpt {
                            id: id.clone(),
                            uid: *uid,
                            gid: *gid,
                            mode: *mode,
                            optional: *optional,
                        });
                    }
                }
                pm
            })
            .collect();
        pb::ExecOp {
            meta: Some(pb::Meta {
                args: self.args.clone(),
                env: self.env.clone(),
                cwd: self.cwd.clone(),
                user: self.user.clone(),
                // The Go client always sets this: remove the empty mount-point stubs a
                // mount leaves behind in the root filesystem.
                remove_mount_stubs_recursive: true,
                ..Default::default()
            }),
            mounts,
            network: match self.network {
                Network::Sandbox => pb::NetMode::Unset,
                Network::Host => pb::NetMode::Host,
                Network::None => pb::NetMode::None,
            } as i32,
            security: match self.security {
                Security::Sandbox => pb::SecurityMode::Sandbox,
                Security::Insecure => pb::SecurityMode::Insecure,
            } as i32,
            secretenv: Vec::new(),
            cdi_devices: self
                .devices
                .iter()
                .map(|(name, optional)| pb::CdiDevice {
                    name: name.clone(),
                    optional: *optional,
                })
                .collect(),
        }
    }
}

/// The result of [`State::run`]: the exec's root filesystem and its other writable mounts.
#[derive(Debug, Clone)]
pub struct ExecState {
    root: State,
    mounts: Vec<(String, State)>,
}

impl ExecState {
    /// The root filesystem after the command ran (the output of the `/` mount). It keeps the
    /// env, directory and user of the state the exec ran on.
    pub fn root(&self) -> State {
        self.root.clone()
    }

    /// The contents of a writable bind mount after the command ran; `None` for read-only,
    /// cache, tmpfs and secret mounts, which have no output.
    pub fn mount(&self, dest: &str) -> Option<State> {
        self.mounts
            .iter()
            .find(|(d, _)| d == dest)
            .map(|(_, s)| s.clone())
    }
}

pub(crate) fn build(base: &State, exec: Exec) -> ExecState {
    let mut meta = exec.meta;
    let mut error = None;
    if exec.args.is_empty() {
        error = Some(LlbError::EmptyArgs);
    }

    let mut env = base.meta.env.clone();
    for (k, v) in exec.env {
        env.retain(|(ek, _)| *ek != k);
        env.push((k, v));
    }
    let cwd = match &exec.cwd {
        Some(c) => super::file::join_clean(&base.meta.cwd, c),
        None => base.meta.cwd.clone(),
    };
    let user = exec.user.unwrap_or_else(|| base.meta.user.clone());
    let platform = base.meta.platform.clone().unwrap_or_default();

    // (mount, state meta of the state its output continues)
    let mut plain: Vec<(MountNode, Option<Arc<StateMeta>>)> = vec![(
        MountNode {
            dest: "/".to_owned(),
            source: base.output.clone(),
            selector: String::new(),
            readonly: false,
            output: -1,
            kind: MountNodeKind::Bind,
        },
        Some(Arc::clone(&base.meta)),
    )];
    let mut secrets = Vec::new();
    for m in exec.mounts {
        if let Some(reason) = m.misuse {
            error.get_or_insert(LlbError::InvalidMount {
                dest: m.dest.clone(),
                reason,
            });
        }
        match m.kind {
            MountKind::Bind { source, readonly } => plain.push((
                MountNode {
                    dest: m.dest,
                    source: source.output.clone(),
                    selector: m.selector,
                    readonly,
                    output: -1,
                    kind: MountNodeKind::Bind,
                },
                (!readonly).then(|| Arc::clone(&source.meta)),
            )),
            MountKind::Cache { id, sharing, from } => plain.push((
                MountNode {
                    dest: m.dest,
                    source: from.and_then(|s| s.output),
                    selector: m.selector,
                    readonly: false,
                    output: -1,
                    kind: MountNodeKind::Cache { id, sharing },
                },
                None,
            )),
            MountKind::Tmpfs { size } => plain.push((
                MountNode {
                    dest: m.dest,
                    source: None,
                    selector: String::new(),
                    readonly: false,
                    output: -1,
                    kind: MountNodeKind::Tmpfs { size },
                },
                None,
            )),
            MountKind::Secret {
                id,
                uid,
                gid,
                mode,
                optional,
            } => secrets.push(MountNode {
                dest: m.dest,
                source: None,
                selector: String::new(),
                readonly: false,
                output: -1,
                kind: MountNodeKind::Secret {
                    id,
                    uid,
                    gid,
                    mode,
                    optional,
                },
            }),
        }
    }
    plain.sort_by(|a, b| a.0.dest.cmp(&b.0.dest));
    secrets.sort_by(|a, b| a.dest.cmp(&b.dest));
    {
        let mut dests: Vec<&str> = plain
            .iter()
            .map(|(m, _)| m.dest.as_str())
            .chain(secrets.iter().map(|m| m.dest.as_str()))
            .collect();
        dests.sort_unstable();
        if let Some(w) = dests.windows(2).find(|w| w[0] == w[1]) {
            error.get_or_insert(LlbError::DuplicateMount(w[0].to_owned()));
        }
    }

    meta.caps.insert(caps::EXEC_META_BASE.to_owned());
    if exec.network != Network::Sandbox {
        meta.caps.insert(caps::EXEC_META_NETWORK.to_owned());
    }
    if exec.security != Security::Sandbox {
        meta.caps.insert(caps::EXEC_META_SECURITY.to_owned());
    }
    if !exec.devices.is_empty() {
        meta.caps.insert(caps::EXEC_META_CDI.to_owned());
    }
    let mut next_output = 0;
    let mut outputs: Vec<(String, i64, Arc<StateMeta>)> = Vec::new();
    for (m, continues) in &mut plain {
        if !m.selector.is_empty() {
            meta.caps.insert(caps::EXEC_MOUNT_SELECTOR.to_owned());
        }
        match &m.kind {
            MountNodeKind::Cache { .. } => {
                meta.caps.insert(caps::EXEC_MOUNT_CACHE.to_owned());
                meta.caps.insert(caps::EXEC_MOUNT_CACHE_SHARING.to_owned());
            }
            MountNodeKind::Tmpfs { size } => {
                meta.caps.insert(caps::EXEC_MOUNT_TMPFS.to_owned());
                if *size > 0 {
                    meta.caps.insert(caps::EXEC_MOUNT_TMPFS_SIZE.to_owned());
                }
            }
            MountNodeKind::Bind => {
                if m.source.is_some() {
                    meta.caps.insert(caps::EXEC_MOUNT_BIND.to_owned());
                }
                if !m.readonly {
                    m.output = next_output;
                    next_output += 1;
                    if let Some(sm) = continues.take() {
                        outputs.push((m.dest.clone(), m.output, sm));
                    }
                }
            }
            MountNodeKind::Secret { .. } => {}
        }
    }
    if !secrets.is_empty() {
        meta.caps.insert(caps::EXEC_MOUNT_SECRET.to_owned());
    }

    let node = Arc::new(Node {
        op: OpKind::Exec(ExecNode {
            args: exec.args,
            env: env.iter().map(|(k, v)| format!("{k}={v}")).collect(),
            cwd,
            user,
            network: exec.network,
            security: exec.security,
            devices: exec.devices,
            mounts: plain.into_iter().map(|(m, _)| m).chain(secrets).collect(),
            platform,
            error,
        }),
        meta,
    });
    let mut states: Vec<(String, State)> = outputs
        .into_iter()
        .map(|(dest, index, sm)| {
            let state = State {
                output: Some(Output {
                    node: Arc::clone(&node),
                    index,
                }),
                meta: sm,
            };
            (dest, state)
        })
        .collect();
    let root_pos = states.iter().position(|(d, _)| d == "/").unwrap_or(0);
    let root = states.remove(root_pos).1;
    ExecState {
        root,
        mounts: states,
    }
}
