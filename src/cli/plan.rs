//! `torchkit plan`: print the resolved plan — base image, helper nodes, steps in order with
//! their commands, mounts and cache rules, and the image config. Data on stdout (text, or
//! JSON with `--json`: exactly what `plan::lower` turns into LLB).

use crate::plan::VerifyStage;
use std::process::ExitCode;

use crate::buildkit::session::read_context_excludes;
use crate::cli::common::{self, SpecArgs};
use crate::plan::{self, CacheRule, CompileOptions, Mount, NodeSource, Output, Plan, Run};

/// Flags of `torchkit plan`.
#[derive(Debug, clap::Args)]
pub struct Args {
    #[command(flatten)]
    spec: SpecArgs,
    /// Print the plan as one JSON object.
    #[arg(long)]
    json: bool,
    /// Pin the base by digest through the registry (no daemon needed).
    #[arg(long)]
    resolve_digest: bool,
}

/// Run `torchkit plan`.
pub fn run(args: Args) -> anyhow::Result<ExitCode> {
    let plan = load_plan(&args.spec, args.resolve_digest)?;
    let out = if args.json {
        serde_json::to_string_pretty(&plan)? + "\n"
    } else {
        render(&plan)
    };
    crate::cli::write_stdout(out.as_bytes())?;
    Ok(ExitCode::SUCCESS)
}

/// The plan of a spec as `plan` and `graph` show it: what `torchkit llb` would lower
/// (overrides applied, the context's excludes read), with a placeholder for the per-build
/// token; `resolve_digest` pins the base through the registry.
pub fn load_plan(spec: &SpecArgs, resolve_digest: bool) -> anyhow::Result<Plan> {
    let loaded = common::load(spec)?;
    let context_dir = loaded
        .path
        .parent()
        .map(|p| p.to_path_buf())
        .unwrap_or_default();
    let mut opts = CompileOptions {
        build_token: Some("<per-build token>".into()),
        context_excludes: read_context_excludes(&loaded.path, &context_dir)
            .map_err(crate::cli::hinted)?,
        ..loaded.compile_options()
    };
    if resolve_digest {
        common::pin_base_from_registry(&loaded, &mut opts)?;
    }
    plan::plan(&loaded.spec, &loaded.resolution, &opts).map_err(crate::cli::hinted)
}

/// The human-readable plan: the same content as `--json`, one line per fact (file contents
/// summarised).
pub fn render(p: &Plan) -> String {
    let r = &p.resolution;
    let mut o = String::new();
    let mut line = |s: String| {
        o.push_str(&s);
        o.push('\n');
    };
    line(format!("spec      {}", p.spec));
    line(format!("profile   {}", p.profile));
    line(format!("platform  {}", p.platform));
    line(format!("base      {}", p.base.pinned_reference()));
    if p.base.digest.is_none() {
        line(if p.check_buildable().is_err() {
            "          (unpinned: a release build needs it pinned; `torchkit build` pins it through the daemon)".into()
        } else {
            "          (unpinned: `torchkit build` pins it by digest through the daemon)".into()
        });
    }
    for (k, v) in &p.base.env {
        line(format!("          env {k}={v}"));
    }
    line(format!(
        "torch     {} · CUDA {} · cuDNN {} · Python {} · torchvision {} · torchaudio {}",
        r.torch,
        r.cuda.as_deref().unwrap_or("none (CPU)"),
        r.cudnn.as_deref().unwrap_or("-"),
        r.python,
        r.torchvision,
        r.torchaudio
    ));
    if let Some(d) = &r.min_driver {
        line(format!("driver    >= {d}"));
    }
    if let Some(e) = &p.epoch {
        line(format!(
            "epoch     {e} (dependency steps mount the epoch node)"
        ));
    }
    if !p.nodes.is_empty() {
        line(String::new());
        line("nodes".into());
    }
    for n in &p.nodes {
        line(format!("  {:<12} {}", n.id.as_str(), n.name));
        match &n.source {
            NodeSource::Files { files } => {
                for f in files {
                    let lines = f.content.lines().count();
                    line(format!(
                        "  {:<12}   file {} ({lines} line{}, mode {:04o})",
                        "",
                        f.path,
                        if lines == 1 { "" } else { "s" },
                        f.mode
                    ));
                }
            }
            NodeSource::Local {
                name,
                session_id,
                exclude_patterns,
                include_patterns,
                ..
            } => {
                let mut l = format!("  {:<12}   local {name}", "");
                if !include_patterns.is_empty() {
                    l.push_str(&format!(" only {}", include_patterns.join(" ")));
                }
                if let Some(id) = session_id {
                    l.push_str(&format!(" (session {id})"));
                }
                if !exclude_patterns.is_empty() {
                    l.push_str(&format!(" excluding {}", exclude_patterns.join(" ")));
                }
                line(l);
            }
        }
    }
    line(String::new());
    line("steps".into());
    for s in &p.steps {
        render_step(p, s, &mut line);
    }
    line(String::new());
    match &p.verify {
        VerifyStage::Skipped { reason } => line(format!("verify    skipped: {reason}")),
        VerifyStage::Planned(v) => {
            line("verify    on the image's root filesystem, not exported".into());
            line(format!(
                "  expect  {}",
                serde_json::to_string(&v.expect).unwrap_or_default()
            ));
            if !v.devices.is_empty() {
                line(format!("  devices {} (CDI)", v.devices.join(" ")));
            }
            for s in &v.steps {
                render_step(p, s, &mut line);
            }
        }
    }
    line(String::new());
    match &p.output {
        Output::Directory { dest } => {
            line(format!("output    the directory {dest} of the last step"))
        }
        Output::Verify => line(format!(
            "output    the verify stage's report directory ({})",
            crate::plan::verify::VERIFY_DIR
        )),
        Output::Image(image) => {
            line("image".into());
            line(format!("  user {}  workdir {}", image.user, image.workdir));
            for (k, v) in &image.env {
                line(format!("  env {k}={v}"));
            }
            if let Some(e) = &image.entrypoint {
                line(format!("  entrypoint {e:?}"));
            }
            if let Some(c) = &image.cmd {
                line(format!("  cmd {c:?}"));
            }
            for (k, v) in &image.labels {
                line(format!("  label {k}={v}"));
            }
            if let Some(c) = &image.created {
                line(format!("  created {c}"));
            }
        }
    }
    for w in &r.warnings {
        line(format!("warning: {w}"));
    }
    o
}

/// One mount, as `dest <- what`.
fn mount(m: &Mount) -> String {
    let ro = |readonly: bool| if readonly { "read-only" } else { "writable" };
    match m {
        Mount::Cache {
            dest, id, sharing, ..
        } => {
            format!(
                "mount {dest} <- cache {id} ({})",
                format!("{sharing:?}").to_lowercase()
            )
        }
        Mount::Secret {
            dest,
            id,
            optional: false,
        } => format!("mount {dest} <- secret {id}"),
        Mount::Secret { dest, id, .. } => format!("mount {dest} <- secret {id} (if given)"),
        Mount::Node {
            dest,
            node,
            path,
            readonly,
        } => format!("mount {dest} <- node {node}:{path} ({})", ro(*readonly)),
        Mount::Scratch { dest } => format!("mount {dest} <- empty directory (output)"),
        Mount::Output {
            dest,
            step,
            exec,
            mount,
            path,
            readonly,
        } => {
            let which = match exec {
                plan::Exec::Resolve => "resolve",
                plan::Exec::Run => "run",
            };
            format!(
                "mount {dest} <- {step} {which} output {mount}:{path} ({})",
                ro(*readonly)
            )
        }
    }
}

fn shell_words(args: &[String]) -> String {
    args.iter()
        .map(|a| {
            if a.chars()
                .all(|c| c.is_ascii_alphanumeric() || "-_./=:@+,".contains(c))
            {
                a.clone()
            } else {
                format!("'{}'", a.replace('\'', r"'\''"))
            }
        })
        .collect::<Vec<_>>()
        .join(" ")
}

/// One step as `render` prints it: title, cache rule and origin, then how it runs.
fn render_step(p: &Plan, s: &plan::Step, line: &mut impl FnMut(String)) {
    let rule = match &s.cache {
        CacheRule::Reuse => "cached".to_string(),
        CacheRule::Epoch => "cached until the epoch changes".to_string(),
        CacheRule::Bust { reason } => {
            format!("re-runs every build ({reason}); download caches kept")
        }
        CacheRule::Reresolve { reason } => format!(
            "resolution re-runs every build ({reason}); the install re-runs when the resolved set changes"
        ),
        CacheRule::IgnoreCache { reason } => {
            format!("re-runs every build ({reason}); ignore_cache")
        }
    };
    if let Some(r) = &s.resolve {
        line(format!("  {}", r.title));
    }
    line(format!("  {}", s.title));
    line(format!(
        "      cache: {rule}    from {}:{} ({})",
        p.spec, s.span.line, s.origin
    ));
    match &s.run {
        Run::Exec {
            args,
            env,
            user,
            cwd,
            mounts,
            offline,
            devices,
        } => {
            let at = if cwd == "/" {
                String::new()
            } else {
                format!(" in {cwd}")
            };
            if !env.is_empty() {
                let vars: Vec<String> = env.iter().map(|(k, v)| format!("{k}={v}")).collect();
                line(format!("      env {}", vars.join(" ")));
            }
            if let Some(r) = &s.resolve {
                line(format!(
                    "      resolve as {user}{at}: {}",
                    shell_words(&r.args)
                ));
                for m in &r.mounts {
                    line(format!("        {}", mount(m)));
                }
            }
            line(format!("      run as {user}{at}: {}", shell_words(args)));
            if *offline {
                line("        network none".into());
            }
            for d in devices {
                line(format!("        device {d} (CDI)"));
            }
            for m in mounts {
                line(format!("        {}", mount(m)));
            }
        }
        Run::Copy {
            from,
            copies,
            uid,
            gid,
        } => {
            for (src, dest) in copies {
                line(format!(
                    "      copy {from}:{src} -> {dest} (owner {uid}:{gid})"
                ));
            }
        }
        Run::Image => line(format!(
            "      image {} ({})",
            p.base.pinned_reference(),
            p.platform
        )),
    }
}
