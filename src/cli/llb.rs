//! `torchkit llb`: write the LLB Definition to stdout, protobuf by default, so that
//! `torchkit llb | buildctl build --local context=. --output …` works; `--format json` is a
//! readable dump of the ops.
#![allow(clippy::print_stdout)]

use std::process::ExitCode;

use crate::buildkit::session::read_context_excludes;
use crate::buildkit::token;
use crate::cli::common::{self, SpecArgs};
use crate::llb;
use crate::plan::{self, CaSecret, CompileOptions, NoCache};
use crate::vocab::Step;

/// Flags of `torchkit llb`.
#[derive(Debug, clap::Args)]
pub struct Args {
    #[command(flatten)]
    spec: SpecArgs,
    /// Output format.
    #[arg(long, default_value = "pb", value_parser = ["pb", "json"])]
    format: String,
    /// Re-run every step.
    #[arg(long)]
    no_cache: bool,
    /// Re-run these steps (comma-separated step names).
    #[arg(long, value_delimiter = ',', value_name = "STEPS", value_parser = common::value::<crate::vocab::Step>)]
    no_cache_filter: Vec<crate::vocab::Step>,
    /// Pin the base by digest through the registry (no daemon needed); a `release` build
    /// needs a pinned base.
    #[arg(long)]
    resolve_digest: bool,
    /// Mount the CA bundle secret `torchkit-ca` in downloading steps (pass it to buildctl
    /// with `--secret id=torchkit-ca,src=/etc/ssl/certs/ca-certificates.crt`).
    #[arg(long)]
    ca_secret: bool,
    /// Stop after this step, as `torchkit build --target`; `verify` gives the verify stage
    /// (its result is the report directory).
    #[arg(long, value_name = "STEP", value_parser = common::value::<Step>)]
    target: Option<Step>,
}

/// Run `torchkit llb`.
pub fn run(args: Args) -> anyhow::Result<ExitCode> {
    let loaded = common::load(&args.spec)?;
    let no_cache = NoCache::from_flags(args.no_cache, &args.no_cache_filter);
    let context_dir = loaded
        .path
        .parent()
        .map(|p| p.to_path_buf())
        .unwrap_or_default();
    let mut opts = CompileOptions {
        build_token: Some(token::random_token()),
        no_cache,
        ca_secret: if args.ca_secret {
            CaSecret::Required
        } else {
            CaSecret::None
        },
        target: args.target,
        context_excludes: read_context_excludes(&loaded.path, &context_dir)
            .map_err(crate::cli::hinted)?,
        ..loaded.compile_options()
    };
    if args.resolve_digest {
        common::pin_base_from_registry(&loaded, &mut opts)?;
    }
    let compiled =
        plan::compile(&loaded.spec, &loaded.resolution, &opts).map_err(crate::cli::hinted)?;
    let out = match args.format.as_str() {
        "json" => {
            let v = llb::dump(&compiled.definition).map_err(crate::cli::hinted)?;
            let mut out = serde_json::to_vec_pretty(&v)?;
            out.push(b'\n');
            out
        }
        _ => llb::definition_bytes(&compiled.definition),
    };
    crate::cli::write_stdout(&out)?;
    Ok(ExitCode::SUCCESS)
}
