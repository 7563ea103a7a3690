//! [`State`]: an immutable handle on one output of an op, plus the image-config-like
//! metadata (env, working directory, user, platform) that later `run`s inherit.

use std::collections::{BTreeMap, BTreeSet};
use std::sync::Arc;

use super::exec::{Exec, ExecNode, ExecState};
use super::file::{FileAction, FileNode};
use super::platform::Platform;
use super::sourcemap::SourceLocation;
use super::{pb, LlbError, CUSTOM_NAME_KEY};

/// Per-op metadata that does not change the op's digest: it lands in
/// `Definition.metadata` (and `Definition.Source` for locations).
#[derive(Debug, Clone, Default, PartialEq, Eq)]
pub(crate) struct OpMeta {
    pub ignore_cache: bool,
    pub description: BTreeMap<String, String>,
    pub caps: BTreeSet<String>,
    pub locations: Vec<SourceLocation>,
}

impl OpMeta {
    pub(crate) fn set_custom_name(&mut self, name: &str) {
        self.description
            .insert(CUSTOM_NAME_KEY.to_owned(), name.to_owned());
    }

    pub(crate) fn to_pb(&self) -> pb::OpMetadata {
        pb::OpMetadata {
            ignore_cache: self.ignore_cache,
            description: self.description.clone(),
            export_cache: None,
            caps: self.caps.iter().map(|c| (c.clone(), true)).collect(),
            progress_group: None,
        }
    }
}

/// Adds the shared metadata setters (`custom_name`, `ignore_cache`, `description`,
/// `source_location`) to an op builder whose metadata lives in `self.$field`.
macro_rules! op_meta_setters {
    ($ty:ty, $($field:ident).+) => {
        impl $ty {
            /// The name BuildKit shows for this op in progress output
            /// (description key `llb.customname`).
            pub fn custom_name(mut self, name: impl AsRef<str>) -> Self {
                self.$($field).+.set_custom_name(name.as_ref());
                self
            }

            /// Skip every cache lookup for this op and run it again. For an exec this also
            /// prunes its persistent cache mounts on the daemon; see the protocol notes.
            pub fn ignore_cache(mut self, ignore: bool) -> Self {
                self.$($field).+.ignore_cache = ignore;
                self
            }

            /// A free-form description entry (`OpMetadata.description[key] = value`).
            pub fn description(mut self, key: impl AsRef<str>, value: impl AsRef<str>) -> Self {
                self.$($field).+
                    .description
                    .insert(key.as_ref().to_owned(), value.as_ref().to_owned());
                self
            }

            /// Where in a source file (e.g. the spec) this op comes from; BuildKit uses it to
            /// point errors at lines. May be given more than once.
            pub fn source_location(mut self, location: $crate::llb::SourceLocation) -> Self {
                self.$($field).+.locations.push(location);
                self
            }
        }
    };
}
pub(crate) use op_meta_setters;

/// One vertex of the graph, shared between all states that reach it.
#[derive(Debug)]
pub(crate) struct Node {
    pub op: OpKind,
    pub meta: OpMeta,
}

/// The operation a [`Node`] performs, kept in builder form until marshal time.
#[derive(Debug)]
pub(crate) enum OpKind {
    Source {
        identifier: String,
        attrs: BTreeMap<String, String>,
        platform: Option<Platform>,
        /// A construction error (bad reference, bad digest) reported by `marshal`.
        error: Option<LlbError>,
    },
    Exec(ExecNode),
    File(FileNode),
}

/// One output of a node.
#[derive(Debug, Clone)]
pub(crate) struct Output {
    pub node: Arc<Node>,
    pub index: i64,
}

/// The image-config-like values a state carries for later ops (`client/llb/meta.go`).
#[derive(Debug, Clone, PartialEq, Eq)]
pub(crate) struct StateMeta {
    /// Ordered `K`, `V` pairs; setting a key again moves it to the end (Go `AddOrReplace`).
    pub env: Vec<(String, String)>,
    pub cwd: String,
    pub user: String,
    pub platform: Option<Platform>,
}

impl Default for StateMeta {
    fn default() -> Self {
        Self {
            env: Vec::new(),
            cwd: "/".to_owned(),
            user: String::new(),
            platform: None,
        }
    }
}

/// An immutable handle on a filesystem: one output of an op (or scratch), with the env,
/// working directory, user and platform that later [`State::run`]s inherit.
///
/// Every method takes `&self` and returns a new `State`; the ops behind it are shared.
#[derive(Debug, Clone)]
pub struct State {
    pub(crate) output: Option<Output>,
    pub(crate) meta: Arc<StateMeta>,
}

impl State {
    pub(crate) fn from_node(node: Node, index: i64, meta: StateMeta) -> Self {
        Self {
            output: Some(Output {
                node: Arc::new(node),
                index,
            }),
            meta: Arc::new(meta),
        }
    }

    fn with_meta(&self, f: impl FnOnce(&mut StateMeta)) -> Self {
        let mut meta = (*self.meta).clone();
        f(&mut meta);
        Self {
            output: self.output.clone(),
            meta: Arc::new(meta),
        }
    }

    /// Whether this is the empty filesystem ([`super::scratch`]).
    pub fn is_scratch(&self) -> bool {
        self.output.is_none()
    }

    /// Sets `key=value` for later execs. Setting a key again replaces it and moves it to the
    /// end, like the Go client's `AddOrReplace`, so the order is exactly the call order.
    #[must_use]
    pub fn add_env(&self, key: impl AsRef<str>, value: impl AsRef<str>) -> Self {
        let (key, value) = (key.as_ref().to_owned(), value.as_ref().to_owned());
        self.with_meta(|m| {
            m.env.retain(|(k, _)| *k != key);
            m.env.push((key, value));
        })
    }

    /// Sets several variables at once, **sorted by key** first, so a map with no order of its
    /// own (e.g. from a config file) always gives the same bytes.
    #[must_use]
    pub fn add_envs<K, V>(&self, vars: impl IntoIterator<Item = (K, V)>) -> Self
    where
        K: AsRef<str>,
        V: AsRef<str>,
    {
        let sorted: BTreeMap<String, String> = vars
            .into_iter()
            .map(|(k, v)| (k.as_ref().to_owned(), v.as_ref().to_owned()))
            .collect();
        sorted
            .iter()
            .fold(self.clone(), |state, (k, v)| state.add_env(k, v))
    }

    /// Removes a variable.
    #[must_use]
    pub fn del_env(&self, key: impl AsRef<str>) -> Self {
        let key = key.as_ref();
        self.with_meta(|m| m.env.retain(|(k, _)| k != key))
    }

    /// The value of a variable, if set.
    pub fn get_env(&self, key: &str) -> Option<&str> {
        self.meta
            .env
            .iter()
            .find(|(k, _)| k == key)
            .map(|(_, v)| v.as_str())
    }

    /// All variables, in order.
    pub fn env(&self) -> &[(String, String)] {
        &self.meta.env
    }

    /// Sets the working directory for later ops; a relative path is joined onto the current
    /// one (Go `Dir`). Relative paths in file actions resolve against it too.
    #[must_use]
    pub fn dir(&self, dir: impl AsRef<str>) -> Self {
        let dir = super::file::join_clean(&self.meta.cwd, dir.as_ref());
        self.with_meta(|m| m.cwd = dir)
    }

    /// The working directory (`/` by default).
    pub fn get_dir(&self) -> &str {
        &self.meta.cwd
    }

    /// Sets the user later execs run as (`name`, `uid`, or `uid:gid`).
    #[must_use]
    pub fn user(&self, user: impl AsRef<str>) -> Self {
        let user = user.as_ref().to_owned();
        self.with_meta(|m| m.user = user)
    }

    /// The user (empty: the image default).
    pub fn get_user(&self) -> &str {
        &self.meta.user
    }

    /// Sets the platform later execs run on.
    #[must_use]
    pub fn platform(&self, platform: Platform) -> Self {
        self.with_meta(|m| m.platform = Some(platform))
    }

    /// The platform, if one was set (by [`State::platform`] or an image source).
    pub fn get_platform(&self) -> Option<&Platform> {
        self.meta.platform.as_ref()
    }

    /// Runs a command on this filesystem; the result's [`ExecState::root`] is the changed
    /// filesystem. Env, cwd and user come from this state unless the [`Exec`] overrides them.
    pub fn run(&self, exec: Exec) -> ExecState {
        super::exec::build(self, exec)
    }

    /// Applies file actions (mkdir, mkfile, copy, rm) to this filesystem in one file op.
    #[must_use]
    pub fn file(&self, action: FileAction) -> State {
        super::file::build(self, action)
    }

    /// Marshals the graph ending at this state; see [`super::marshal`].
    pub fn marshal(&self) -> Result<pb::Definition, LlbError> {
        super::marshal::marshal(self)
    }
}
