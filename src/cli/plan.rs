//! `torchkit plan`: print the resolved plan — base image, steps in order, the cache rule of
//! each step and the image config. Data on stdout (text, or JSON with `--json`).
#![allow(clippy::print_stdout)]

use std::process::ExitCode;

use crate::cli::common::{self, SpecArgs};
use crate::plan::{self, CacheRule, CompileOptions, Plan, Run};

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
    let loaded = common::load(&args.spec)?;
    let mut opts = CompileOptions {
        profile: Some(loaded.profile),
        build_token: Some("<per-build token>".into()),
        ..CompileOptions::default()
    };
    if args.resolve_digest {
        common::pin_base_from_registry(&loaded, &mut opts)?;
    }
    let plan = plan::plan(&loaded.spec, &loaded.resolution, &opts).map_err(crate::cli::hinted)?;
    if args.json {
        println!("{}", serde_json::to_string_pretty(&plan)?);
    } else {
        print!("{}", render(&plan));
    }
    Ok(ExitCode::SUCCESS)
}

/// The human-readable plan.
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
        line("          (unpinned: `torchkit build` pins it by digest through the daemon)".into());
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
    line(String::new());
    line("steps".into());
    for s in &p.steps {
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
            Run::Exec { args, user, .. } => {
                if let Some(r) = &s.resolve {
                    line(format!(
                        "      resolve as {user}: pip install --dry-run --report {} -> {}",
                        shell_words(&r.pip_args),
                        plan::RESOLVED_MOUNT
                    ));
                }
                line(format!("      run as {user}: {}", shell_words(args)))
            }
            Run::Copy { copies, owner } => {
                for (src, dest) in copies {
                    line(format!("      copy {src} -> {dest} (owner {owner})"));
                }
            }
            Run::Image { reference } => line(format!("      image {reference}")),
        }
        for m in &s.cache_mounts {
            line(format!("      cache mount {} (id {})", m.dest, m.id));
        }
        for id in &s.secrets {
            line(format!("      secret {id}"));
        }
    }
    line(String::new());
    line("image".into());
    line(format!(
        "  user {}  workdir {}",
        p.image.user, p.image.workdir
    ));
    for (k, v) in &p.image.env {
        line(format!("  env {k}={v}"));
    }
    if let Some(e) = &p.image.entrypoint {
        line(format!("  entrypoint {e:?}"));
    }
    if let Some(c) = &p.image.cmd {
        line(format!("  cmd {c:?}"));
    }
    for (k, v) in &p.image.labels {
        line(format!("  label {k}={v}"));
    }
    for w in &r.warnings {
        line(format!("warning: {w}"));
    }
    o
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
