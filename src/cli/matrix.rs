//! `torchkit matrix`: the compatibility matrix compiled into this binary.
//!
//! `show` prints it: without `--torch`, the matrix date, one line per torch release, the CUDA
//! toolkits with their driver floors and the sources; with `--torch V`, that release in full.
//! What it prints is the data asked for, so it goes to stdout (`--json`: the same as one JSON
//! object, shaped as [`crate::matrix::show`] documents). `--torch` is read by the resolver's
//! parser, so it accepts and refuses exactly what `torchkit resolve --torch` does.
//!
//! `refresh` (a maintainer command) reads PyPI, the wheel indexes and the registry's tags
//! ([`crate::registry::refresh`]), prints how they differ from the matrix
//! ([`crate::matrix::refresh`]) and, with `--write PATH`, writes the matrix with the new
//! facts added. Exit 0 whether or not something differs; `--exit-code` makes a difference 1.

use std::io::{self, Write};
use std::path::PathBuf;
use std::process::ExitCode;

use anyhow::Context as _;

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
    /// Compare the matrix with PyPI, the wheel indexes and the registry's tags (maintainers).
    Refresh(RefreshArgs),
}

/// Flags of `torchkit matrix refresh`.
#[derive(Debug, clap::Args)]
pub struct RefreshArgs {
    /// Read the URLs' paths as files under DIR instead of the network (a missing file is a 404).
    #[arg(long, value_name = "DIR")]
    pub offline_from: Option<PathBuf>,

    /// Write the refreshed matrix to PATH (the old file is kept as PATH.bak). PATH must hold
    /// the matrix compiled into this torchkit (src/matrix/matrix.toml of its tree).
    #[arg(long, value_name = "PATH")]
    pub write: Option<PathBuf>,

    /// PyPI's root (serving the JSON API).
    #[arg(long, value_name = "URL", env = crate::registry::online::PYPI_ENV, default_value = crate::registry::online::DEFAULT_PYPI)]
    pub pypi_url: String,

    /// The wheel indexes' root (`<URL>/cu132/torch/`).
    #[arg(long, value_name = "URL", default_value = crate::registry::refresh::DEFAULT_INDEX)]
    pub index_url: String,

    /// The pytorch/pytorch repository whose tags to list (a mirror: 127.0.0.1:5000/pytorch/pytorch).
    #[arg(long, value_name = "NAME", default_value = crate::registry::refresh::DEFAULT_IMAGES)]
    pub images: String,

    /// Print one JSON object instead of the text.
    #[arg(long)]
    pub json: bool,

    /// Exit with 1 when something differs (as `git diff --exit-code`).
    #[arg(long)]
    pub exit_code: bool,

    /// The day the sources are read, YYYY-MM-DD (default: today, UTC): the new source's
    /// date and the matrix's `gathered`.
    #[arg(long, value_name = "YYYY-MM-DD")]
    pub today: Option<String>,
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
        MatrixCommand::Refresh(a) => run_refresh(a),
    }
}

fn run_refresh(args: RefreshArgs) -> anyhow::Result<ExitCode> {
    use crate::registry::refresh::{self as edge, Reader};
    let m = crate::matrix::matrix();
    // Check PATH before reading anything: a refresh edits the text it was compiled from.
    if let Some(path) = &args.write {
        let text =
            std::fs::read_to_string(path).with_context(|| format!("reading {}", path.display()))?;
        anyhow::ensure!(
            text == crate::matrix::matrix_toml(),
            "{} is not the matrix compiled into this torchkit (matrix gathered {}): build torchkit from the tree that holds it",
            path.display(),
            m.gathered
        );
    }
    let today = match args.today {
        Some(t) => t,
        None => today_utc()?,
    };
    let src = edge::Sources {
        pypi: args.pypi_url.trim_end_matches('/').to_string(),
        index: args.index_url.trim_end_matches('/').to_string(),
        images: args.images.trim_end_matches('/').to_string(),
    };
    let reader = match args.offline_from {
        Some(dir) => Reader::Dir(dir),
        None => Reader::Http(crate::registry::RegistryClient::new(
            crate::credentials::DockerAuth::from_env(),
        )),
    };
    let rt = tokio::runtime::Builder::new_current_thread()
        .enable_all()
        .build()
        .context("starting the async runtime")?;
    let gathered = rt
        .block_on(edge::gather(&reader, &src, m))
        .map_err(hinted)?;
    let r = crate::matrix::refresh::compare(m, &gathered, &today).map_err(anyhow::Error::msg)?;
    let out = if args.json {
        serde_json::to_string_pretty(&r)? + "\n"
    } else {
        r.render()
    };
    write_stdout(&out)?;
    if let Some(path) = &args.write {
        let mut err = io::stderr().lock();
        if r.changes_matrix() {
            let text = crate::matrix::refresh::edit_toml(crate::matrix::matrix_toml(), m, &r)
                .map_err(anyhow::Error::msg)?;
            let bak = edge::write_with_backup(path, &text)
                .with_context(|| format!("writing {}", path.display()))?;
            writeln!(
                err,
                "wrote {} (the old file is {}); check the uncertain marks and [{}] before merging",
                path.display(),
                bak.display(),
                r.source.id
            )?;
        } else {
            writeln!(err, "nothing to write: {} left as it is", path.display())?;
        }
    }
    Ok(if args.exit_code && !r.up_to_date() {
        ExitCode::from(1)
    } else {
        ExitCode::SUCCESS
    })
}

/// Today in UTC, `YYYY-MM-DD` (the civil-from-days algorithm of H. Hinnant).
fn today_utc() -> anyhow::Result<String> {
    let secs = std::time::SystemTime::now()
        .duration_since(std::time::UNIX_EPOCH)
        .context("the clock is before 1970")?
        .as_secs();
    let z = (secs / 86_400) as i64 + 719_468;
    let era = z.div_euclid(146_097);
    let doe = z - era * 146_097;
    let yoe = (doe - doe / 1_460 + doe / 36_524 - doe / 146_096) / 365;
    let doy = doe - (365 * yoe + yoe / 4 - yoe / 100);
    let mp = (5 * doy + 2) / 153;
    let d = doy - (153 * mp + 2) / 5 + 1;
    let m = if mp < 10 { mp + 3 } else { mp - 9 };
    let y = yoe + era * 400 + i64::from(m <= 2);
    Ok(format!("{y:04}-{m:02}-{d:02}"))
}

/// Write the data to stdout ([`crate::cli::write_stdout`]).
fn write_stdout(out: &str) -> anyhow::Result<()> {
    crate::cli::write_stdout(out.as_bytes())
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
    write_stdout(&out)?;
    Ok(ExitCode::SUCCESS)
}
