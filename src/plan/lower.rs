//! Plan → LLB. [`lower`] reads nothing but the [`Plan`]: every helper node becomes one op,
//! every step one op (two for a resolved dependency step), with the plan's names, commands,
//! env, mounts and `ignore_cache`, each located at the spec key it comes from so that
//! BuildKit errors point at `torchkit.toml` lines.

use std::collections::HashMap;
use std::sync::Arc;

use crate::llb::{
    self, pb, CopyOpts, FileAction, Network, Owner, Platform, Range, Sharing, SourceInfo,
    SourceLocation, State,
};
use crate::spec::Span;
use crate::vocab::Step as StepName;

use super::verify::VERIFY_DIR;
use super::{
    image_config, CacheSharing, CompileError, Exec, Mount, Node, NodeId, NodeSource, Output, Plan,
    Run, Step,
};

/// Where the epoch node is mounted in dependency steps.
pub const EPOCH_MOUNT: &str = "/run/torchkit/epoch";
/// Where the bust node is mounted in busted steps.
pub const BUST_MOUNT: &str = "/run/torchkit/bust";

/// What [`lower`] builds.
#[derive(Debug, Clone)]
pub struct Lowered {
    /// The LLB graph.
    pub definition: pb::Definition,
    /// The OCI image config, when the plan builds an image ([`Output::Image`]).
    pub image_config: Option<Vec<u8>>,
    /// The verify stage, when the plan has one.
    pub verify: Option<VerifyDefinitions>,
}

/// The verify stage as two results: the report as the checks wrote it, which the caller
/// reads, and the whole stage (checks, gate, tests).
#[derive(Debug, Clone)]
pub struct VerifyDefinitions {
    /// The checks' report directory (`/report.json`); solving it never fails on a failed
    /// check.
    pub checks: pb::Definition,
    /// The stage's report directory after the gate and the tests: solving it fails when a
    /// check or a test fails.
    pub stage: pb::Definition,
}

fn location(src: &Arc<SourceInfo>, span: Span) -> SourceLocation {
    SourceLocation::new(
        src,
        [Range {
            start_line: span.line as i32,
            start_char: span.col as i32 - 1,
            end_line: span.end_line as i32,
            end_char: span.end_col as i32 - 1,
        }],
    )
}

fn bad(message: String) -> CompileError {
    CompileError::BadPlan(message)
}

/// An exec's writable mount, by step, exec and mount point.
type OutputKey<'a> = (StepName, Exec, &'a str);

/// Lower a plan to its LLB Definition and, for an image, its image config. Refuses a plan
/// that may not be built ([`Plan::check_buildable`]) or that contradicts itself.
pub fn lower(plan: &Plan) -> Result<Lowered, CompileError> {
    lower_for(plan, &llb::Supported::all())
}

/// [`lower`] for a daemon with only the `supported` LLB caps ([`llb::marshal_for`]).
pub fn lower_for(plan: &Plan, supported: &llb::Supported) -> Result<Lowered, CompileError> {
    plan.check_buildable()?;
    let src = SourceInfo::new(&plan.spec, plan.spec_text.as_bytes(), "toml");
    let platform = platform(&plan.platform)?;

    let mut nodes: HashMap<NodeId, State> = HashMap::new();
    for n in &plan.nodes {
        if nodes.insert(n.id, node_state(n, &src)?).is_some() {
            return Err(bad(format!("the node `{}` is defined twice", n.id)));
        }
    }
    let mut l = Lowering {
        plan,
        src,
        platform,
        nodes,
        outputs: HashMap::new(),
    };

    let mut root: Option<State> = None;
    for step in &plan.steps {
        root = Some(l.step(step, &root)?);
    }
    let root = root.ok_or_else(|| bad("the plan has no steps".into()))?;
    // The verify stage runs on the finished root filesystem; its report directory, carried
    // through each of its execs, is its result.
    let mut verify = None;
    if let Some(v) = plan.verify.planned() {
        let on = Some(root.clone());
        let mut checks = None;
        for step in &v.steps {
            l.step(step, &on)?;
            checks.get_or_insert_with(|| l.verify_dir());
        }
        let report = |s: Option<State>| {
            s.ok_or_else(|| bad(format!("the verify stage writes no {VERIFY_DIR}")))
        };
        verify = Some((report(checks.flatten())?, report(l.verify_dir())?));
    }

    let (result, image_config) = match &plan.output {
        Output::Image(image) => (root, Some(image_config(plan, image)?)),
        Output::Verify => match &verify {
            Some((_, stage)) => (stage.clone(), None),
            None => {
                return Err(bad(
                    "the output is the verify stage, which the plan skips".into()
                ))
            }
        },
        Output::Directory { dest } => {
            let dir = plan
                .steps
                .last()
                .and_then(|last| l.outputs.get(&(last.name, Exec::Run, dest.as_str())))
                .ok_or_else(|| {
                    bad(format!(
                        "the output is the mount {dest} of the last step, which writes no such mount"
                    ))
                })?;
            (dir.clone(), None)
        }
    };
    let verify = match verify {
        Some((checks, stage)) => Some(VerifyDefinitions {
            checks: llb::marshal_for(&checks, supported)?,
            stage: llb::marshal_for(&stage, supported)?,
        }),
        None => None,
    };
    Ok(Lowered {
        definition: llb::marshal_for(&result, supported)?,
        image_config,
        verify,
    })
}

/// What lowering carries from step to step.
struct Lowering<'a> {
    plan: &'a Plan,
    src: Arc<SourceInfo>,
    platform: Platform,
    nodes: HashMap<NodeId, State>,
    outputs: HashMap<OutputKey<'a>, State>,
}

impl<'a> Lowering<'a> {
    /// The verify stage's report directory as the latest exec left it.
    fn verify_dir(&self) -> Option<State> {
        self.outputs
            .get(&(StepName::Verify, Exec::Run, VERIFY_DIR))
            .cloned()
    }

    /// One step on `root` (the previous step's root filesystem): its new root filesystem.
    fn step(&mut self, step: &'a Step, root: &Option<State>) -> Result<State, CompileError> {
        let plan = self.plan;
        let loc = location(&self.src, step.span);
        Ok(match &step.run {
            Run::Image => {
                let s: State = llb::image(&plan.base.reference)
                    .digest(plan.base.digest.as_deref())
                    .platform(self.platform.clone())
                    .custom_name(&step.title)
                    .ignore_cache(step.ignore_cache)
                    .source_location(loc)
                    .into();
                plan.base.env.iter().fold(s, |s, (k, v)| s.add_env(k, v))
            }
            Run::Exec {
                args,
                env,
                user,
                cwd,
                mounts,
                offline,
                devices,
            } => {
                let cur = below(root, step)?;
                let exec = |argv: &[String], title: &str, ignore: bool| {
                    let mut e = llb::Exec::new(argv)
                        .cwd(cwd)
                        .user(user)
                        .custom_name(title)
                        .ignore_cache(ignore)
                        .source_location(loc.clone());
                    for (k, v) in env {
                        e = e.env(k, v);
                    }
                    if *offline {
                        e = e.network(Network::None);
                    }
                    for d in devices {
                        e = e.cdi_device(d, false);
                    }
                    e
                };
                if let Some(r) = &step.resolve {
                    let e = with_mounts(
                        exec(&r.args, &r.title, r.ignore_cache),
                        &r.mounts,
                        &self.nodes,
                        &self.outputs,
                    )?;
                    let ran = cur.run(e);
                    keep_outputs(&mut self.outputs, &ran, step.name, Exec::Resolve, &r.mounts);
                }
                let e = with_mounts(
                    exec(args, &step.title, step.ignore_cache),
                    mounts,
                    &self.nodes,
                    &self.outputs,
                )?;
                let ran = cur.run(e);
                keep_outputs(&mut self.outputs, &ran, step.name, Exec::Run, mounts);
                ran.root()
            }
            Run::Copy {
                from,
                copies,
                uid,
                gid,
            } => {
                let cur = below(root, step)?;
                let ctx = node(&self.nodes, *from)?;
                let opts = CopyOpts {
                    owner: Some(Owner::ids(*uid, *gid)),
                    follow_symlinks: true,
                    dir_copy_contents: true,
                    create_dest_path: true,
                    allow_wildcard: true,
                    ..CopyOpts::default()
                };
                let mut action: Option<FileAction> = None;
                for (s, d) in copies {
                    let from = format!("/{s}");
                    action = Some(match action {
                        None => FileAction::copy(ctx, &from, d, opts.clone()),
                        Some(a) => a.and_copy(ctx, &from, d, opts.clone()),
                    });
                }
                let action = action
                    .ok_or_else(|| bad(format!("the copy step `{}` copies nothing", step.name)))?
                    .custom_name(&step.title)
                    .ignore_cache(step.ignore_cache)
                    .source_location(loc);
                cur.file(action)
            }
        })
    }
}

/// The root filesystem a step runs on: the previous step's.
fn below<'a>(root: &'a Option<State>, step: &Step) -> Result<&'a State, CompileError> {
    root.as_ref().ok_or_else(|| {
        bad(format!(
            "the step `{}` comes first, but only an image step can",
            step.name
        ))
    })
}

fn node(nodes: &HashMap<NodeId, State>, id: NodeId) -> Result<&State, CompileError> {
    nodes.get(&id).ok_or_else(|| {
        bad(format!(
            "a step uses the node `{id}`, which the plan does not list"
        ))
    })
}

fn platform(s: &str) -> Result<Platform, CompileError> {
    let parts: Vec<&str> = s.split('/').collect();
    match parts[..] {
        [os, arch] if !os.is_empty() && !arch.is_empty() => Ok(Platform::new(os, arch, "")),
        [os, arch, variant] if !os.is_empty() && !arch.is_empty() => {
            Ok(Platform::new(os, arch, variant))
        }
        _ => Err(bad(format!("platform `{s}` is not os/arch[/variant]"))),
    }
}

fn node_state(n: &Node, src: &Arc<SourceInfo>) -> Result<State, CompileError> {
    Ok(match &n.source {
        NodeSource::Files { files } => {
            let mut action: Option<FileAction> = None;
            for f in files {
                let mode = i32::try_from(f.mode)
                    .map_err(|_| bad(format!("mode {:o} of {} is too large", f.mode, f.path)))?;
                let data = f.content.as_bytes().to_vec();
                let owner = f.owner.map(|u| Owner::ids(u, u));
                action = Some(match action {
                    None => FileAction::mkfile(&f.path, mode, data, owner),
                    Some(a) => a.and_mkfile(&f.path, mode, data, owner),
                });
            }
            let mut action = action
                .ok_or_else(|| bad(format!("the node `{}` has no files", n.id)))?
                .custom_name(&n.name);
            if let Some(span) = n.span {
                action = action.source_location(location(src, span));
            }
            llb::scratch().file(action)
        }
        NodeSource::Local {
            name,
            shared_key_hint,
            session_id,
            exclude_patterns,
            include_patterns,
        } => {
            let mut l = llb::local(name)
                .shared_key_hint(shared_key_hint)
                .custom_name(&n.name);
            if let Some(id) = session_id {
                l = l.session_id(id);
            }
            if !exclude_patterns.is_empty() {
                l = l.exclude_patterns(exclude_patterns);
            }
            // As the Dockerfile frontend does for its COPY sources: the daemon asks only
            // for these paths, and symlinks along them are followed.
            if !include_patterns.is_empty() {
                l = l
                    .include_patterns(include_patterns)
                    .follow_paths(include_patterns);
            }
            State::from(l)
        }
    })
}

fn with_mounts(
    mut e: llb::Exec,
    mounts: &[Mount],
    nodes: &HashMap<NodeId, State>,
    outputs: &HashMap<OutputKey<'_>, State>,
) -> Result<llb::Exec, CompileError> {
    for m in mounts {
        e = e.mount(match m {
            Mount::Cache {
                dest,
                id,
                sharing,
                owner,
            } => {
                let m = llb::Mount::cache(
                    dest,
                    id,
                    match sharing {
                        CacheSharing::Shared => Sharing::Shared,
                        CacheSharing::Private => Sharing::Private,
                        CacheSharing::Locked => Sharing::Locked,
                    },
                );
                match owner {
                    // As Dockerfile's `--mount=type=cache,uid=…`: a new cache starts as a
                    // directory the user owns.
                    Some(uid) => m
                        .seed(
                            &llb::scratch().file(
                                FileAction::mkdir(
                                    "/cache",
                                    0o755,
                                    llb::MkdirOpts {
                                        parents: false,
                                        owner: Some(Owner::ids(*uid, *uid)),
                                    },
                                )
                                .custom_name(format!("[torchkit] cache {id}: owned by uid {uid}")),
                            ),
                        )
                        .selector("/cache"),
                    None => m,
                }
            }
            Mount::Secret { dest, id, optional } => {
                llb::Mount::secret(dest, id).optional(*optional)
            }
            Mount::Node {
                dest,
                node: id,
                path,
                readonly,
            } => llb::Mount::bind(dest, node(nodes, *id)?, path, *readonly),
            Mount::Scratch { dest } => llb::Mount::bind(dest, &llb::scratch(), "/", false),
            Mount::Output {
                dest,
                step,
                exec,
                mount,
                path,
                readonly,
            } => {
                let from = outputs.get(&(*step, *exec, mount.as_str())).ok_or_else(|| {
                    bad(format!(
                        "{dest} mounts what {mount} of `{step}` ({exec:?}) wrote, and no earlier exec writes it"
                    ))
                })?;
                llb::Mount::bind(dest, from, path, *readonly)
            }
        });
    }
    Ok(e)
}

/// Remember the writable mounts of an exec, for later mounts and the plan's output.
fn keep_outputs<'a>(
    outputs: &mut HashMap<OutputKey<'a>, State>,
    ran: &llb::ExecState,
    step: StepName,
    exec: Exec,
    mounts: &'a [Mount],
) {
    for m in mounts {
        let writable = match m {
            Mount::Scratch { .. } => true,
            Mount::Output { readonly, .. } | Mount::Node { readonly, .. } => !readonly,
            Mount::Cache { .. } | Mount::Secret { .. } => false,
        };
        if let (true, Some(s)) = (writable, ran.mount(m.dest())) {
            outputs.insert((step, exec, m.dest()), s);
        }
    }
}
