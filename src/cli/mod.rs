//! Command line: clap derive, one file per subcommand. Each subcommand parses its flags,
//! calls the library, and writes *data only* to stdout (the plan, LLB bytes, JSON);
//! everything for humans (progress, warnings, errors) goes to stderr.
#![allow(clippy::print_stdout, clippy::print_stderr)]

use std::process::ExitCode;

use clap::{Parser, Subcommand};

use crate::error::Hint;

pub mod build;
pub mod common;
pub mod dial_stdio;
pub mod frontend;
pub mod graph;
pub mod llb;
pub mod lock;
pub mod matrix;
pub mod plan;
pub mod probe;
pub mod resolve;

/// `0.1.0 (matrix 2026-12-03)`: the release, and the day the compiled-in matrix's facts were
/// gathered (torch releases after it are unknown to this binary).
pub fn version() -> &'static str {
    static VERSION: std::sync::LazyLock<String> = std::sync::LazyLock::new(|| {
        format!(
            "{} (matrix {})",
            env!("CARGO_PKG_VERSION"),
            crate::matrix::gathered()
        )
    });
    VERSION.as_str()
}

/// Reproducible PyTorch/CUDA images on BuildKit.
#[derive(Debug, Parser)]
#[command(name = "torchkit", version = version(), about, long_about = None)]
pub struct Cli {
    #[command(subcommand)]
    command: Command,
}

#[derive(Debug, Subcommand)]
enum Command {
    /// Report this host's NVIDIA driver and GPUs.
    Probe(probe::Args),
    /// Pick the base image for a torch/CUDA/driver/GPU combination and explain why.
    Resolve(resolve::Args),
    /// Print the resolved build plan: steps, cache rules, image config.
    Plan(plan::Args),
    /// Draw the build graph: steps, cache rules, helper nodes, mounts (DOT, Mermaid, SVG).
    Graph(graph::Args),
    /// Write the LLB Definition to stdout (for `buildctl build`).
    Llb(llb::Args),
    /// Build the image on BuildKit.
    Build(Box<build::Args>),
    /// Resolve the exact environment on BuildKit and write torchkit.lock (`--check`: verify it).
    Lock(Box<lock::Args>),
    /// Show the compatibility matrix compiled into this binary (and refresh it: maintainers).
    Matrix(matrix::Args),
    /// Run as a BuildKit gateway frontend (LLBBridge over stdin/stdout).
    #[command(hide = true)]
    Frontend(frontend::Args),
    /// Proxy stdin/stdout to the daemon (the far end of a connection helper, as
    /// `buildctl dial-stdio`).
    #[command(hide = true)]
    DialStdio(dial_stdio::Args),
}

/// An error that carries a fix, printed as `hint:` after the message.
#[derive(Debug)]
pub struct Hinted {
    message: String,
    hint: Option<String>,
}

impl std::fmt::Display for Hinted {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        f.write_str(&self.message)
    }
}

impl std::error::Error for Hinted {}

impl Hinted {
    /// An error with a message and an optional fix.
    pub fn new(message: impl Into<String>, hint: Option<String>) -> Self {
        Self {
            message: message.into(),
            hint,
        }
    }
}

/// The exit status of a command whose reader closed stdout: 128 + SIGPIPE (13), what a
/// shell reports for a process SIGPIPE killed, and what git and coreutils give (Rust ignores
/// SIGPIPE, so the write fails with EPIPE instead of killing the process).
pub const STDOUT_CLOSED_EXIT: u8 = 141;

/// The reader of stdout went away (EPIPE): the command stops without a message, exiting
/// [`STDOUT_CLOSED_EXIT`] ([`main`] turns this error into that status).
#[derive(Debug, thiserror::Error)]
#[error("stdout was closed by its reader")]
pub struct StdoutClosed;

/// Write data to stdout and flush it: the one way commands write their data. A closed pipe
/// ends the command quietly ([`StdoutClosed`]); any other failure (a full disk: ENOSPC) is an
/// error, `writing to stdout: …`, never a panic as `println!` gives.
pub fn write_stdout(data: &[u8]) -> anyhow::Result<()> {
    use std::io::Write as _;
    let mut out = std::io::stdout().lock();
    out.write_all(data)
        .and_then(|()| out.flush())
        .map_err(stdout_error)
}

/// The error for a failed write to stdout (see [`write_stdout`]).
pub fn stdout_error(e: std::io::Error) -> anyhow::Error {
    if e.kind() == std::io::ErrorKind::BrokenPipe {
        return anyhow::Error::new(StdoutClosed);
    }
    // `No space left on device (os error 28)`: the OS's words are enough.
    let text = e.to_string();
    let text = match (text.rfind(" (os error "), e.raw_os_error()) {
        (Some(i), Some(_)) => text[..i].to_string(),
        _ => text,
    };
    anyhow::Error::new(Hinted::new(
        format!("writing to stdout: {text}"),
        Some(
            "nothing was written in full; redirect stdout to a file or pipe that can take it"
                .into(),
        ),
    ))
}

/// Print a warning to stderr, in the same style as errors.
pub fn warn(msg: &str) {
    eprintln!("warning: {msg}");
}

/// Wrap a typed error so its hint survives the trip through `anyhow`.
pub fn hinted<E: std::fmt::Display + Hint>(e: E) -> anyhow::Error {
    anyhow::Error::new(Hinted {
        message: e.to_string(),
        hint: e.hint(),
    })
}

/// Entry point of the binary.
pub fn main() -> ExitCode {
    let cli = Cli::parse();
    let result = match cli.command {
        Command::Probe(a) => probe::run(a),
        Command::Resolve(a) => resolve::run(a),
        Command::Plan(a) => plan::run(a),
        Command::Graph(a) => graph::run(a),
        Command::Llb(a) => llb::run(a),
        Command::Build(a) => build::run(*a),
        Command::Lock(a) => lock::run(*a),
        Command::Matrix(a) => matrix::run(a),
        Command::Frontend(a) => frontend::run(a),
        Command::DialStdio(a) => dial_stdio::run(a),
    };
    match result {
        Ok(code) => code,
        Err(e) if e.is::<StdoutClosed>() => ExitCode::from(STDOUT_CLOSED_EXIT),
        Err(e) => {
            report(&e);
            ExitCode::FAILURE
        }
    }
}

/// Print an error chain and its hints to stderr, in cargo's style.
pub fn report(e: &anyhow::Error) {
    eprintln!("error: {e}");
    for cause in e.chain().skip(1) {
        eprintln!("  caused by: {cause}");
    }
    for cause in e.chain() {
        if let Some(h) = cause
            .downcast_ref::<Hinted>()
            .and_then(|h| h.hint.as_deref())
        {
            for line in h.lines() {
                eprintln!("hint: {line}");
            }
        }
    }
}
