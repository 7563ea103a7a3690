//! `torchkit matrix`: the compatibility matrix compiled into this binary.
//!
//! `show` prints it: without `--torch`, the matrix date, one line per torch release, the CUDA
//! toolkits with their driver floors and the sources; with `--torch V`, that release in full.
//! What it prints is the data asked for, so it goes to stdout (`--json`: the same as one JSON
//! object, shaped as [`crate::matrix::show`] documents). `--torch` is read by the resolver's
//! parser, so it accepts and refuses exactly what `torchkit resolve --torch` does.

use std::io::{self, Write};
use std::process::ExitCode;

use crate::cli::hinted;
use crate::matrix::show;

/// Flags of `torchkit matrix`.
#[derive(Debug, clap::Args)]
pub struct Args {
    #[command(subcommand)]
    pub command: MatrixCommand,
}

/// The subcommands of `torchkit matrix`.
#[derive(Debug, clap::Subcommand)]
pub enum MatrixCommand {
    /// Print the matrix: releases, CUDA toolkits and driver floors, sources (`--torch`: one release in full).
    Show(ShowArgs),
}

/// Flags of `torchkit matrix show`.
#[derive(Debug, clap::Args)]
pub struct ShowArgs {
    /// One torch release in full, e.g. 2.14.1 (or 2.14 for its newest patch).
    #[arg(long, value_name = "V")]
    pub torch: Option<String>,

    /// Print one JSON object instead of the text.
    #[arg(long)]
    pub json: bool,
}

/// Run `torchkit matrix`.
pub fn run(args: Args) -> anyhow::Result<ExitCode> {
    match args.command {
        MatrixCommand::Show(a) => run_show(a),
    }
}

fn run_show(args: ShowArgs) -> anyhow::Result<ExitCode> {
    let m = crate::matrix::matrix();
    let out = match &args.torch {
        None => {
            let o = show::overview(m);
            if args.json {
                serde_json::to_string_pretty(&o)? + "\n"
            } else {
                o.render()
            }
        }
        Some(input) => {
            let (release, patch) = crate::resolve::find_release(input).map_err(hinted)?;
            let d = show::release(m, release, &patch);
            if args.json {
                serde_json::to_string_pretty(&d)? + "\n"
            } else {
                d.render()
            }
        }
    };
    let mut stdout = io::stdout().lock();
    match stdout
        .write_all(out.as_bytes())
        .and_then(|()| stdout.flush())
    {
        Err(e) if e.kind() != io::ErrorKind::BrokenPipe => Err(e.into()),
        _ => Ok(ExitCode::SUCCESS),
    }
}
