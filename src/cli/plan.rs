//! `torchkit plan` (in progress).
use std::process::ExitCode;

/// Flags of `torchkit plan`.
#[derive(Debug, clap::Args)]
pub struct Args {}

/// Run `torchkit plan`.
pub fn run(_args: Args) -> anyhow::Result<ExitCode> {
    anyhow::bail!("torchkit plan is not implemented yet")
}
