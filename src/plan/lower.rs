//! Plan → LLB. Every step becomes one op, named with its progress title and located at the
//! spec key it comes from, so BuildKit errors point at `torchkit.toml` lines.

use std::sync::Arc;

use crate::llb::{
    self, pb, CopyOpts, Exec, FileAction, Mount, Owner, Platform, Range, Sharing, SourceInfo,
    SourceLocation, State,
};
use crate::spec::{Span, Spec};
use crate::vocab::Step as StepName;

use super::{
    CacheRule, CompileError, CompileOptions, Plan, Run, Step, CA_SECRET_ID, CA_SECRET_PATH,
    CONSTRAINTS_MOUNT, DEFAULT_PATH, LOCK_MOUNT, REQUIREMENTS_MOUNT, RESOLVED_DIR, RESOLVED_FILE,
    RESOLVED_MOUNT, RESOLVE_SCRIPT, RESOLVE_SCRIPT_MOUNT,
};

/// Where the epoch node is mounted in dependency steps.
pub const EPOCH_MOUNT: &str = "/run/torchkit/epoch";
/// Where the bust node is mounted in busted steps.
pub const BUST_MOUNT: &str = "/run/torchkit/bust";

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

/// The env the base image defines (`config.Env`), or the pytorch images' PATH.
pub(super) fn base_env(opts: &CompileOptions) -> Vec<(String, String)> {
    let from_config: Option<Vec<(String, String)>> = opts
        .base
        .config
        .as_ref()
        .and_then(|c| c.pointer("/config/Env"))
        .and_then(|e| e.as_array())
        .map(|list| {
            list.iter()
                .filter_map(|v| v.as_str())
                .filter_map(|kv| kv.split_once('='))
                .map(|(k, v)| (k.to_string(), v.to_string()))
                .collect()
        });
    from_config.unwrap_or_else(|| vec![("PATH".into(), DEFAULT_PATH.into())])
}

pub(super) fn lower(
    spec: &Spec,
    plan: &Plan,
    opts: &CompileOptions,
) -> Result<pb::Definition, CompileError> {
    let src = SourceInfo::new(&spec.filename, spec.text.as_bytes(), "toml");
    let platform = Platform::linux_amd64();
    let res = &plan.resolution;

    // Small named nodes the steps mount read-only; their content is part of each
    // consumer's cache key.
    let constraints = {
        let mut text = format!("torch=={}\n", res.torch);
        text.push_str(&format!("torchvision=={}\n", res.torchvision));
        text.push_str(&format!("torchaudio=={}\n", res.torchaudio));
        llb::scratch().file(
            FileAction::mkfile("/constraints.txt", 0o644, text, None).custom_name(format!(
                "[torchkit] constraints: torch=={} torchvision=={} torchaudio=={}",
                res.torch, res.torchvision, res.torchaudio
            )),
        )
    };
    let epoch = spec.cache.epoch.as_ref().map(|e| {
        llb::scratch().file(
            FileAction::mkfile("/epoch", 0o644, e.as_bytes().to_vec(), None)
                .custom_name(format!("[torchkit] epoch {e}"))
                .source_location(location(&src, spec.span_of("cache.epoch"))),
        )
    });
    let bust = match (&opts.build_token, plan.busted.is_empty()) {
        (Some(token), false) => Some(llb::scratch().file(
            FileAction::mkfile("/bust", 0o644, token.as_bytes().to_vec(), None).custom_name(
                format!(
                        "[torchkit] bust: {}",
                        plan.busted
                            .iter()
                            .map(|s| s.as_str())
                            .collect::<Vec<_>>()
                            .join(", ")
                    ),
            ),
        )),
        _ => None,
    };
    // A locked build installs from the lock, not from the context's requirements file.
    let lock = opts
        .lock
        .as_ref()
        .filter(|_| plan.steps.iter().any(|s| s.name == StepName::Pip))
        .map(|l| {
            llb::scratch().file(
                FileAction::mkfile("/lock.txt", 0o644, l.python.as_bytes().to_vec(), None)
                    .custom_name(format!(
                        "[torchkit] lock: {} python packages on {}",
                        l.python_count, l.digest
                    )),
            )
        });
    let requirements = spec
        .python
        .requirements
        .as_deref()
        .filter(|_| opts.lock.is_none());
    let needs_context = requirements.is_some() || !spec.image.copy.is_empty();
    let context = needs_context.then(|| {
        let mut l = llb::local("context")
            .shared_key_hint("context")
            .custom_name("[torchkit] context");
        if let Some(id) = &opts.session_id {
            l = l.session_id(id);
        }
        if !opts.context_excludes.is_empty() {
            l = l.exclude_patterns(&opts.context_excludes);
        }
        State::from(l)
    });

    let resolver = plan.steps.iter().any(|s| s.resolve.is_some()).then(|| {
        llb::scratch().file(
            FileAction::mkfile("/resolve.py", 0o644, RESOLVE_SCRIPT, None)
                .custom_name("[torchkit] resolver script"),
        )
    });
    let nodes = Nodes {
        resolver,
        constraints,
        epoch,
        bust,
        context,
        requirements,
        lock,
    };

    let mut state: Option<State> = None;
    for step in &plan.steps {
        let loc = location(&src, step.span);
        let ignore = matches!(step.cache, CacheRule::IgnoreCache { .. });
        state = Some(match &step.run {
            Run::Image { .. } => {
                let s: State = llb::image(&plan.base.reference)
                    .digest(plan.base.digest.as_deref())
                    .platform(platform.clone())
                    .custom_name(&step.title)
                    .ignore_cache(ignore)
                    .source_location(loc)
                    .into();
                let mut s = s.add_envs(base_env(opts));
                for (k, v) in &spec.image.env {
                    s = s.add_env(k, v);
                }
                s
            }
            Run::Exec {
                args,
                env,
                user,
                cwd,
            } => {
                let cur = state.as_ref().expect("base comes first");
                let exec = |argv: &[String], title: &str| {
                    let mut e = Exec::new(argv)
                        .cwd(cwd)
                        .user(user)
                        .custom_name(title)
                        .ignore_cache(ignore)
                        .source_location(loc.clone());
                    for (k, v) in env {
                        e = e.env(k, v);
                    }
                    if let Some(t) = opts.source_date_epoch {
                        e = e.env("SOURCE_DATE_EPOCH", &t.to_string());
                    }
                    e
                };
                match &step.resolve {
                    None => cur
                        .run(mounts(exec(args, &step.title), step, Part::Whole, &nodes))
                        .root(),
                    Some(r) => {
                        let script = nodes.resolver.as_ref().expect("made for resolving steps");
                        let resolve = exec(&r.argv(), &r.title)
                            .mount(Mount::bind(
                                RESOLVE_SCRIPT_MOUNT,
                                script,
                                "/resolve.py",
                                true,
                            ))
                            .mount(Mount::bind(RESOLVED_DIR, &llb::scratch(), "/", false));
                        let set = cur
                            .run(mounts(resolve, step, Part::Resolve, &nodes))
                            .mount(RESOLVED_DIR)
                            .expect("a writable bind has an output");
                        let install = exec(args, &step.title).mount(Mount::bind(
                            RESOLVED_MOUNT,
                            &set,
                            &format!("/{RESOLVED_FILE}"),
                            true,
                        ));
                        cur.run(mounts(install, step, Part::Install, &nodes)).root()
                    }
                }
            }
            Run::Copy { copies, .. } => {
                let cur = state.as_ref().expect("base comes first");
                let ctx = nodes.context.as_ref().expect("copies need the context");
                let uid = spec.image.user.uid;
                let opts = CopyOpts {
                    owner: Some(Owner::ids(uid, uid)),
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
                    .expect("a copy step has copies")
                    .custom_name(&step.title)
                    .ignore_cache(ignore)
                    .source_location(loc);
                cur.file(action)
            }
        });
    }
    let state = state.expect("the plan has a base step");
    Ok(llb::marshal(&state)?)
}

/// The small nodes exec steps mount.
struct Nodes<'a> {
    /// The resolve script, when a step resolves.
    resolver: Option<State>,
    constraints: State,
    epoch: Option<State>,
    bust: Option<State>,
    context: Option<State>,
    /// The requirements file's path in the context, when its step reads it from there.
    requirements: Option<&'a str>,
    lock: Option<State>,
}

/// Which exec of a step is being mounted: a plain step, or the resolve or install half of
/// a resolved dependency step.
#[derive(Clone, Copy, PartialEq, Eq)]
enum Part {
    Whole,
    Resolve,
    Install,
}

fn mounts(mut e: Exec, step: &Step, part: Part, n: &Nodes<'_>) -> Exec {
    for m in &step.cache_mounts {
        e = e.mount(Mount::cache(&m.dest, &m.id, Sharing::Locked));
    }
    if step.secrets.iter().any(|s| s == CA_SECRET_ID) {
        e = e.mount(Mount::secret(CA_SECRET_PATH, CA_SECRET_ID));
    }
    if step.name.is_dependency() {
        // The constraints steer a resolution; the install of a resolved set needs none.
        if part != Part::Install {
            e = e.mount(Mount::bind(
                CONSTRAINTS_MOUNT,
                &n.constraints,
                "/constraints.txt",
                true,
            ));
        }
        // A new epoch re-runs both halves: it asks for a reinstall, not only a re-resolve.
        if let Some(ep) = &n.epoch {
            e = e.mount(Mount::bind(EPOCH_MOUNT, ep, "/epoch", true));
        }
    }
    // The test profile busts only the resolve; the install follows the resolved set.
    let bust = matches!(
        (&step.cache, part),
        (CacheRule::Bust { .. }, _) | (CacheRule::Reresolve { .. }, Part::Resolve)
    );
    if let (true, Some(b)) = (bust, &n.bust) {
        e = e.mount(Mount::bind(BUST_MOUNT, b, "/bust", true));
    }
    if let (Some(ctx), Some(path), StepName::Requirements, false) =
        (&n.context, n.requirements, step.name, part == Part::Install)
    {
        e = e.mount(Mount::bind(
            REQUIREMENTS_MOUNT,
            ctx,
            &format!("/{path}"),
            true,
        ));
    }
    if let (Some(l), StepName::Pip) = (&n.lock, step.name) {
        e = e.mount(Mount::bind(LOCK_MOUNT, l, "/lock.txt", true));
    }
    e
}
