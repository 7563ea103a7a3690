//! `torchkit graph`: the build graph as people read it — steps in order with their cache
//! rule and spec line, the helper nodes and mounts they take, re-running nodes marked — as
//! Graphviz DOT, a Mermaid flowchart, or SVG drawn by Graphviz's `dot`. Data on stdout.
#![allow(clippy::print_stdout)]

use std::io::{Read as _, Write as _};
use std::process::{Command, ExitCode, Stdio};

use crate::cli::common::SpecArgs;
use crate::cli::Hinted;
use crate::plan::graph;

/// Flags of `torchkit graph`.
#[derive(Debug, clap::Args)]
pub struct Args {
    #[command(flatten)]
    spec: SpecArgs,
    /// What to print: Graphviz DOT, a Mermaid flowchart, or SVG (runs Graphviz `dot`).
    #[arg(long, value_enum, default_value_t = Format::Dot)]
    format: Format,
    /// Pin the base by digest through the registry (no daemon needed).
    #[arg(long)]
    resolve_digest: bool,
}

/// Output formats of `torchkit graph`.
#[derive(Debug, Clone, Copy, PartialEq, Eq, clap::ValueEnum)]
pub enum Format {
    /// Graphviz DOT.
    Dot,
    /// A Mermaid flowchart.
    Mermaid,
    /// SVG, drawn by Graphviz `dot -Tsvg`.
    Svg,
}

/// Run `torchkit graph`.
pub fn run(args: Args) -> anyhow::Result<ExitCode> {
    let plan = crate::cli::plan::load_plan(&args.spec, args.resolve_digest)?;
    let g = graph::graph(&plan);
    // Everything is produced before anything is written: a failure leaves stdout empty.
    let out = match args.format {
        Format::Dot => g.to_dot().into_bytes(),
        Format::Mermaid => g.to_mermaid().into_bytes(),
        Format::Svg => svg(&g.to_dot())?,
    };
    crate::cli::write_stdout(&out)?;
    Ok(ExitCode::SUCCESS)
}

/// The Graphviz program `--format svg` runs.
const DOT: &str = "dot";

/// DOT text → SVG through Graphviz.
fn svg(dot: &str) -> anyhow::Result<Vec<u8>> {
    let mut child = match Command::new(DOT)
        .arg("-Tsvg")
        .stdin(Stdio::piped())
        .stdout(Stdio::piped())
        .stderr(Stdio::piped())
        .spawn()
    {
        Ok(c) => c,
        Err(e) if e.kind() == std::io::ErrorKind::NotFound => {
            return Err(anyhow::Error::new(Hinted::new(
                "`--format svg` needs Graphviz, and its `dot` program is not on PATH",
                Some(
                    "install Graphviz: `apt-get install graphviz` (Debian/Ubuntu package `graphviz`), `brew install graphviz` (macOS)\nor print DOT with `--format dot` (or Mermaid with `--format mermaid`) and render it elsewhere"
                        .into(),
                ),
            )))
        }
        Err(e) => return Err(anyhow::anyhow!("cannot run `{DOT} -Tsvg`: {e}")),
    };
    let mut stdin = child.stdin.take().expect("stdin is piped");
    let mut stderr = child.stderr.take().expect("stderr is piped");
    let mut svg = vec![];
    // dot reads all of its input before it writes; stderr is drained beside stdout so
    // neither pipe can fill up and stall it.
    let (errors, wrote) = std::thread::scope(|s| -> anyhow::Result<_> {
        let writer = s.spawn(move || stdin.write_all(dot.as_bytes()));
        let errors = s.spawn(move || {
            let mut text = String::new();
            stderr.read_to_string(&mut text).map(|_| text)
        });
        child
            .stdout
            .take()
            .expect("stdout is piped")
            .read_to_end(&mut svg)?;
        let wrote = writer.join().expect("writer thread");
        Ok((errors.join().expect("stderr thread")?, wrote))
    })?;
    let status = child.wait()?;
    if !status.success() {
        return Err(anyhow::anyhow!(
            "`{DOT} -Tsvg` failed ({status}): {}",
            errors.trim()
        ));
    }
    // A write error matters only when dot did not fail first (then its message says why).
    wrote?;
    Ok(svg)
}
