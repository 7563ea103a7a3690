//! `torchkit llb` (in progress).
use std::process::ExitCode;

/// Flags of `torchkit llb`.
#[derive(Debug, clap::Args)]
pub struct Args {}

/// Run `torchkit llb`.
pub fn run(_args: Args) -> anyhow::Result<ExitCode> {
    anyhow::bail!("torchkit llb is not implemented yet")
}
