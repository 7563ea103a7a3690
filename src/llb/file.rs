//! File ops: mkdir, mkfile, copy and rm in one op (Go `client/llb/fileop.go`).
//!
//! Index rules: `0..n-1` name `Op.inputs`; `n+i` names the result of action *i*; −1 is
//! scratch for `input` and "unused" for `secondaryInput`. Each action after the first works
//! on the previous action's result, and only the last action has an output (0).

use super::state::{Node, OpKind, OpMeta, Output, State};
use super::{caps, pb};
use std::sync::Arc;

/// A user or group, by numeric id or by name (resolved in the target's `/etc/passwd` and
/// `/etc/group`).
#[derive(Debug, Clone, PartialEq, Eq)]
pub enum UserRef {
    /// A numeric id.
    Id(u32),
    /// A name.
    Name(String),
}

/// Owner of created or copied files (`ChownOpt`).
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct Owner {
    /// The user.
    pub user: UserRef,
    /// The group; `None` leaves the group unset.
    pub group: Option<UserRef>,
}

impl Owner {
    /// `uid:gid` by number.
    pub fn ids(uid: u32, gid: u32) -> Self {
        Self {
            user: UserRef::Id(uid),
            group: Some(UserRef::Id(gid)),
        }
    }

    /// `user[:group]` by name.
    pub fn names(user: &str, group: Option<&str>) -> Self {
        Self {
            user: UserRef::Name(user.to_owned()),
            group: group.map(|g| UserRef::Name(g.to_owned())),
        }
    }

    /// Parses `user[:group]`, where each part is a number or a name (Docker's `--chown`).
    pub fn parse(spec: &str) -> Self {
        let part = |s: &str| match s.parse::<u32>() {
            Ok(n) => UserRef::Id(n),
            Err(_) => UserRef::Name(s.to_owned()),
        };
        match spec.split_once(':') {
            Some((u, g)) => Self {
                user: part(u),
                group: Some(part(g)),
            },
            None => Self {
                user: part(spec),
                group: None,
            },
        }
    }

    fn to_pb(&self, base: i64) -> pb::ChownOpt {
        let one = |r: &UserRef| pb::UserOpt {
            user: Some(match r {
                UserRef::Id(n) => pb::user_opt::User::ById(*n),
                UserRef::Name(name) => pb::user_opt::User::ByName(pb::NamedUserOpt {
                    name: name.clone(),
                    input: base,
                }),
            }),
        };
        pb::ChownOpt {
            user: Some(one(&self.user)),
            group: self.group.as_ref().map(one),
        }
    }
}

/// Options of a mkdir action.
#[derive(Debug, Clone, Default, PartialEq, Eq)]
pub struct MkdirOpts {
    /// Create missing parent directories (`mkdir -p`).
    pub parents: bool,
    /// Owner of the new directory.
    pub owner: Option<Owner>,
}

/// Options of an rm action.
#[derive(Debug, Clone, Default, PartialEq, Eq)]
pub struct RmOpts {
    /// Succeed when the path does not exist.
    pub allow_not_found: bool,
    /// Treat the path as a wildcard pattern.
    pub allow_wildcard: bool,
}

/// Options of a copy action.
#[derive(Debug, Clone, Default, PartialEq, Eq)]
pub struct CopyOpts {
    /// Owner of the copied files.
    pub owner: Option<Owner>,
    /// Permission bits of the copied files; `None` keeps the source's.
    pub mode: Option<i32>,
    /// Resolve a symlink at `src` instead of copying the link.
    pub follow_symlinks: bool,
    /// When `src` is a directory, copy its contents rather than the directory itself.
    pub dir_copy_contents: bool,
    /// Create missing parents of `dest`.
    pub create_dest_path: bool,
    /// Treat `src` as a wildcard pattern.
    pub allow_wildcard: bool,
    /// Succeed when the wildcard matches nothing.
    pub allow_empty_wildcard: bool,
    /// Copy only paths matching these patterns.
    pub include_patterns: Vec<String>,
    /// Skip paths matching these patterns.
    pub exclude_patterns: Vec<String>,
}

#[derive(Debug, Clone)]
enum ActionSpec {
    Mkdir {
        path: String,
        mode: i32,
        opts: MkdirOpts,
    },
    Mkfile {
        path: String,
        mode: i32,
        data: Vec<u8>,
        owner: Option<Owner>,
    },
    Copy {
        from: State,
        src: String,
        dest: String,
        opts: CopyOpts,
    },
    Rm {
        path: String,
        opts: RmOpts,
    },
}

/// A chain of file actions applied in order by one file op; see [`State::file`].
///
/// Relative paths resolve against the working directory of the state the chain is applied
/// to (copy sources: of the state copied from).
#[derive(Debug, Clone)]
#[must_use]
pub struct FileAction {
    actions: Vec<ActionSpec>,
    meta: OpMeta,
}

impl FileAction {
    fn one(a: ActionSpec) -> Self {
        Self {
            actions: vec![a],
            meta: OpMeta::default(),
        }
    }

    fn then(mut self, a: ActionSpec) -> Self {
        self.actions.push(a);
        self
    }

    /// Creates a directory with permission bits `mode` (e.g. `0o755`).
    pub fn mkdir(path: &str, mode: i32, opts: MkdirOpts) -> Self {
        Self::one(ActionSpec::Mkdir {
            path: path.to_owned(),
            mode,
            opts,
        })
    }

    /// Creates a file with `data` and permission bits `mode` (e.g. `0o644`).
    pub fn mkfile(path: &str, mode: i32, data: impl Into<Vec<u8>>, owner: Option<Owner>) -> Self {
        Self::one(ActionSpec::Mkfile {
            path: path.to_owned(),
            mode,
            data: data.into(),
            owner,
        })
    }

    /// Copies `src` from the state `from` to `dest` on the target.
    pub fn copy(from: &State, src: &str, dest: &str, opts: CopyOpts) -> Self {
        Self::one(ActionSpec::Copy {
            from: from.clone(),
            src: src.to_owned(),
            dest: dest.to_owned(),
            opts,
        })
    }

    /// Removes a path.
    pub fn rm(path: &str, opts: RmOpts) -> Self {
        Self::one(ActionSpec::Rm {
            path: path.to_owned(),
            opts,
        })
    }

    /// Then creates a directory.
    pub fn and_mkdir(self, path: &str, mode: i32, opts: MkdirOpts) -> Self {
        let next = Self::mkdir(path, mode, opts).actions;
        next.into_iter().fold(self, Self::then)
    }

    /// Then creates a file.
    pub fn and_mkfile(
        self,
        path: &str,
        mode: i32,
        data: impl Into<Vec<u8>>,
        owner: Option<Owner>,
    ) -> Self {
        let next = Self::mkfile(path, mode, data, owner).actions;
        next.into_iter().fold(self, Self::then)
    }

    /// Then copies.
    pub fn and_copy(self, from: &State, src: &str, dest: &str, opts: CopyOpts) -> Self {
        let next = Self::copy(from, src, dest, opts).actions;
        next.into_iter().fold(self, Self::then)
    }

    /// Then removes a path.
    pub fn and_rm(self, path: &str, opts: RmOpts) -> Self {
        let next = Self::rm(path, opts).actions;
        next.into_iter().fold(self, Self::then)
    }
}

super::state::op_meta_setters!(FileAction, meta);

/// One action in final form (paths resolved).
#[derive(Debug)]
pub(crate) enum ActionNode {
    Mkdir {
        path: String,
        mode: i32,
        parents: bool,
        owner: Option<Owner>,
    },
    Mkfile {
        path: String,
        mode: i32,
        data: Vec<u8>,
        owner: Option<Owner>,
    },
    Copy {
        from: Option<Output>,
        src: String,
        dest: String,
        opts: CopyOpts,
    },
    Rm {
        path: String,
        opts: RmOpts,
    },
}

/// A file op in final form: the target of the first action plus the actions.
#[derive(Debug)]
pub(crate) struct FileNode {
    pub target: Option<Output>,
    pub actions: Vec<ActionNode>,
}

/// Where an action's target or copy source comes from, before indices are known.
#[derive(Debug, Clone, PartialEq, Eq)]
pub(crate) enum Slot {
    /// An op input (digest, output index).
    Input(String, i64),
    /// The result of an earlier action.
    Action(usize),
    /// Scratch / unused.
    None,
}

impl FileNode {
    /// Builds the protobuf actions. `input_of` maps an output to its `(digest, index)`.
    /// Returns the op inputs (deduplicated, first-use order) and the actions.
    pub(crate) fn to_pb(
        &self,
        mut input_of: impl FnMut(&Output) -> (String, i64),
    ) -> (Vec<pb::Input>, pb::FileOp) {
        let mut slots: Vec<(Slot, Slot)> = Vec::new();
        let mut resolve = |o: &Option<Output>| match o {
            Some(o) => {
                let (d, i) = input_of(o);
                Slot::Input(d, i)
            }
            None => Slot::None,
        };
        for (i, a) in self.actions.iter().enumerate() {
            let target = if i == 0 {
                resolve(&self.target)
            } else {
                Slot::Action(i - 1)
            };
            let secondary = match a {
                ActionNode::Copy { from, .. } => resolve(from),
                _ => Slot::None,
            };
            slots.push((target, secondary));
        }
        let mut inputs: Vec<pb::Input> = Vec::new();
        for (t, s) in &slots {
            for slot in [t, s] {
                if let Slot::Input(d, i) = slot {
                    if !inputs.iter().any(|x| x.digest == *d && x.index == *i) {
                        inputs.push(pb::Input {
                            digest: d.clone(),
                            index: *i,
                        });
                    }
                }
            }
        }
        let n = inputs.len() as i64;
        let index = |slot: &Slot| match slot {
            Slot::Input(d, i) => inputs
                .iter()
                .position(|x| x.digest == *d && x.index == *i)
                .map_or(-1, |p| p as i64),
            Slot::Action(a) => n + *a as i64,
            Slot::None => -1,
        };
        let last = self.actions.len().saturating_sub(1);
        let actions = self
            .actions
            .iter()
            .zip(&slots)
            .enumerate()
            .map(|(i, (a, (t, s)))| {
                let input = index(t);
                let action = match a {
                    ActionNode::Mkdir {
                        path,
                        mode,
                        parents,
                        owner,
                    } => pb::file_action::Action::Mkdir(pb::FileActionMkDir {
                        path: path.clone(),
                        mode: *mode,
                        make_parents: *parents,
                        owner: owner.as_ref().map(|o| o.to_pb(input)),
                        timestamp: -1,
                    }),
                    ActionNode::Mkfile {
                        path,
                        mode,
                        data,
                        owner,
                    } => pb::file_action::Action::Mkfile(pb::FileActionMkFile {
                        path: path.clone(),
                        mode: *mode,
                        data: data.clone(),
                        owner: owner.as_ref().map(|o| o.to_pb(input)),
                        timestamp: -1,
                    }),
                    ActionNode::Copy {
                        src, dest, opts, ..
                    } => pb::file_action::Action::Copy(pb::FileActionCopy {
                        src: src.clone(),
                        dest: dest.clone(),
                        owner: opts.owner.as_ref().map(|o| o.to_pb(input)),
                        mode: opts.mode.unwrap_or(-1),
                        follow_symlink: opts.follow_symlinks,
                        dir_copy_contents: opts.dir_copy_contents,
                        attempt_unpack_docker_compatibility: false,
                        create_dest_path: opts.create_dest_path,
                        allow_wildcard: opts.allow_wildcard,
                        allow_empty_wildcard: opts.allow_empty_wildcard,
                        timestamp: -1,
                        include_patterns: opts.include_patterns.clone(),
                        exclude_patterns: opts.exclude_patterns.clone(),
                        always_replace_existing_dest_paths: false,
                    }),
                    ActionNode::Rm { path, opts } => {
                        pb::file_action::Action::Rm(pb::FileActionRm {
                            path: path.clone(),
                            allow_not_found: opts.allow_not_found,
                            allow_wildcard: opts.allow_wildcard,
                        })
                    }
                };
                pb::FileAction {
                    input,
                    secondary_input: index(s),
                    output: if i == last { 0 } else { -1 },
                    action: Some(action),
                }
            })
            .collect();
        (inputs, pb::FileOp { actions })
    }
}

pub(crate) fn build(base: &State, action: FileAction) -> State {
    let mut meta = action.meta;
    meta.caps.insert(caps::FILE_BASE.to_owned());
    let cwd = &base.meta.cwd;
    let actions = action
        .actions
        .into_iter()
        .map(|a| match a {
            ActionSpec::Mkdir { path, mode, opts } => ActionNode::Mkdir {
                path: normalize(cwd, &path, false),
                mode,
                parents: opts.parents,
                owner: opts.owner,
            },
            ActionSpec::Mkfile {
                path,
                mode,
                data,
                owner,
            } => ActionNode::Mkfile {
                path: normalize(cwd, &path, false),
                mode,
                data,
                owner,
            },
            ActionSpec::Copy {
                from,
                src,
                dest,
                opts,
            } => {
                if !opts.include_patterns.is_empty() || !opts.exclude_patterns.is_empty() {
                    meta.caps
                        .insert(caps::FILE_COPY_INCLUDE_EXCLUDE_PATTERNS.to_owned());
                }
                ActionNode::Copy {
                    src: normalize(&from.meta.cwd, &src, false),
                    from: from.output,
                    dest: normalize(cwd, &dest, true),
                    opts,
                }
            }
            ActionSpec::Rm { path, opts } => {
                if opts.allow_wildcard {
                    meta.caps.insert(caps::FILE_RM_WILDCARD.to_owned());
                }
                ActionNode::Rm {
                    path: normalize(cwd, &path, false),
                    opts,
                }
            }
        })
        .collect();
    let node = Arc::new(Node {
        op: OpKind::File(FileNode {
            target: base.output.clone(),
            actions,
        }),
        meta,
    });
    State {
        output: Some(Output { node, index: 0 }),
        meta: Arc::clone(&base.meta),
    }
}

/// Go's `path.Clean`: lexical, `/`-separated.
pub(crate) fn clean(p: &str) -> String {
    let rooted = p.starts_with('/');
    let mut parts: Vec<&str> = Vec::new();
    for c in p.split('/') {
        match c {
            "" | "." => {}
            ".." => {
                if parts.last().is_some_and(|l| *l != "..") {
                    parts.pop();
                } else if !rooted {
                    parts.push("..");
                }
            }
            c => parts.push(c),
        }
    }
    let body = parts.join("/");
    match (rooted, body.is_empty()) {
        (true, _) => format!("/{body}"),
        (false, true) => ".".to_owned(),
        (false, false) => body,
    }
}

/// `p` if absolute, else `dir/p`; cleaned.
pub(crate) fn join_clean(dir: &str, p: &str) -> String {
    if p.starts_with('/') {
        clean(p)
    } else {
        clean(&format!("/{dir}/{p}"))
    }
}

/// Go `normalizePath`: absolute against `dir`, keeping a trailing `/` or `/.` when asked
/// (it means "into this directory" for copies).
fn normalize(dir: &str, p: &str, keep_slash: bool) -> String {
    let mut out = join_clean(dir, p);
    if keep_slash {
        if p.ends_with('/') && !out.ends_with('/') {
            out.push('/');
        } else if p.ends_with("/.") {
            if out != "/" {
                out.push('/');
            }
            out.push('.');
        }
    }
    out
}
