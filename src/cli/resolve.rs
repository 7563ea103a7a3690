//! `torchkit resolve` (in progress).
use std::process::ExitCode;

/// Flags of `torchkit resolve`.
#[derive(Debug, clap::Args)]
pub struct Args {}

/// Run `torchkit resolve`.
pub fn run(_args: Args) -> anyhow::Result<ExitCode> {
    anyhow::bail!("torchkit resolve is not implemented yet")
}
