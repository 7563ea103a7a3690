//! `torchkit probe` (in progress).
use std::process::ExitCode;

/// Flags of `torchkit probe`.
#[derive(Debug, clap::Args)]
pub struct Args {}

/// Run `torchkit probe`.
pub fn run(_args: Args) -> anyhow::Result<ExitCode> {
    anyhow::bail!("torchkit probe is not implemented yet")
}
