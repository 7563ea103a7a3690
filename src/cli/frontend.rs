//! `torchkit frontend` (in progress).
use std::process::ExitCode;

/// Flags of `torchkit frontend`.
#[derive(Debug, clap::Args)]
pub struct Args {}

/// Run `torchkit frontend`.
pub fn run(_args: Args) -> anyhow::Result<ExitCode> {
    anyhow::bail!("torchkit frontend is not implemented yet")
}
