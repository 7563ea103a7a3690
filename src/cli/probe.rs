//! `torchkit probe`: report this host's NVIDIA driver, its CUDA driver API level and the GPUs.
//!
//! The report goes to stdout (human text, or one JSON object with `--json`). A host without
//! an NVIDIA driver is a normal result: the command says so and exits 0.
use std::fmt::Write as _;
use std::process::ExitCode;

use crate::probe::{self, for_resolver, HostFacts, ModuleFlavor};

/// Flags of `torchkit probe`.
#[derive(Debug, clap::Args)]
pub struct Args {
    /// Print one JSON object (the probe's host facts) instead of text.
    #[arg(long)]
    pub json: bool,
}

/// Run `torchkit probe`.
pub fn run(args: Args) -> anyhow::Result<ExitCode> {
    let facts = probe::probe();
    let out = if args.json {
        serde_json::to_string(&facts)? + "\n"
    } else {
        render(&facts)
    };
    crate::cli::write_stdout(out.as_bytes())?;
    Ok(ExitCode::SUCCESS)
}

/// The human-readable report.
pub fn render(facts: &HostFacts) -> String {
    let mut s = String::new();
    if !facts.has_driver() {
        s.push_str(
            "No NVIDIA driver found.\n\
             Images still build here; resolution then applies no driver floor and targets the \
             GPUs the spec names.\n",
        );
    } else {
        let from = facts
            .sources
            .first()
            .map(|src| format!(" (from `{src}`)"))
            .unwrap_or_default();
        let _ = writeln!(
            s,
            "driver:        {}{from}",
            facts.driver.as_deref().unwrap_or("unknown")
        );
        let _ = writeln!(
            s,
            "CUDA (driver): {}",
            match &facts.cuda_driver_api {
                Some(c) => format!("up to {c} (the driver's CUDA API level, not a host toolkit)"),
                None => "unknown".to_owned(),
            }
        );
        if let Some(m) = &facts.kernel_module {
            let flavor = match m.flavor {
                Some(ModuleFlavor::Open) => "open",
                Some(ModuleFlavor::Proprietary) => "proprietary",
                None => "unknown",
            };
            let _ = writeln!(
                s,
                "kernel module: {} ({flavor}{})",
                m.version,
                m.arch
                    .as_deref()
                    .map(|a| format!(", {a}"))
                    .unwrap_or_default()
            );
        }
        if facts.gpus.is_empty() {
            s.push_str("GPUs:          none listed\n");
        }
        for (i, g) in facts.gpus.iter().enumerate() {
            let _ = writeln!(
                s,
                "GPU {i}:         {}, compute capability {}",
                g.name,
                g.compute_capability.as_deref().unwrap_or("unknown")
            );
        }
        let (_, targets) = for_resolver(facts);
        if !targets.is_empty() {
            let _ = writeln!(s, "resolve with:  gpus = [{}]", quoted(&targets));
        }
    }
    for note in &facts.notes {
        let _ = writeln!(s, "note: {note}");
    }
    s
}

fn quoted(items: &[String]) -> String {
    items
        .iter()
        .map(|i| format!("{i:?}"))
        .collect::<Vec<_>>()
        .join(", ")
}

#[cfg(test)]
mod tests {
    use super::*;
    use crate::probe::{Gpu, KernelModule, Source};

    #[test]
    fn no_driver_is_said_plainly() {
        let facts = HostFacts {
            notes: vec!["no NVIDIA driver found on this host: x, and y".to_owned()],
            ..HostFacts::default()
        };
        let text = render(&facts);
        assert!(text.starts_with("No NVIDIA driver found.\n"), "{text}");
        assert!(text.contains("note: no NVIDIA driver found on this host"));
        assert!(
            !text.contains("GPU 0") && !text.contains("driver: "),
            "{text}"
        );
    }

    #[test]
    fn full_report() {
        let facts = HostFacts {
            driver: Some("580.159.04".to_owned()),
            cuda_driver_api: Some("13.0".to_owned()),
            gpus: vec![Gpu {
                name: "NVIDIA H200".to_owned(),
                compute_capability: Some("9.0".to_owned()),
            }],
            kernel_module: Some(KernelModule {
                version: "580.159.04".to_owned(),
                flavor: Some(ModuleFlavor::Open),
                arch: Some("x86_64".to_owned()),
            }),
            sources: vec![Source::QueryGpu, Source::SmiHeader, Source::ProcVersion],
            notes: vec![],
        };
        assert_eq!(
            render(&facts),
            "driver:        580.159.04 (from `nvidia-smi --query-gpu`)\n\
             CUDA (driver): up to 13.0 (the driver's CUDA API level, not a host toolkit)\n\
             kernel module: 580.159.04 (open, x86_64)\n\
             GPU 0:         NVIDIA H200, compute capability 9.0\n\
             resolve with:  gpus = [\"9.0\"]\n"
        );
    }
}
