//! `torchkit frontend`: run as a BuildKit gateway frontend (`# syntax=` image). The daemon
//! starts it with the LLBBridge gRPC connection on stdin/stdout and the build's options in
//! `BUILDKIT_FRONTEND_OPT_*`; all logic lives in [`crate::frontend`].
use std::process::ExitCode;

/// Flags of `torchkit frontend` (none: everything comes from the environment).
#[derive(Debug, clap::Args)]
pub struct Args {}

/// Run `torchkit frontend`.
pub fn run(_args: Args) -> anyhow::Result<ExitCode> {
    crate::frontend::run_from_environment()
}
