//! `torchkit build` (in progress).
use std::process::ExitCode;

/// Flags of `torchkit build`.
#[derive(Debug, clap::Args)]
pub struct Args {}

/// Run `torchkit build`.
pub fn run(_args: Args) -> anyhow::Result<ExitCode> {
    anyhow::bail!("torchkit build is not implemented yet")
}
