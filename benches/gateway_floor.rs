//! The cheapest useful `# syntax=` frontend, for `benches/frontend-vs-dockerfile.sh`: it
//! builds `FROM <build-arg:FLOOR_BASE>` and nothing else, with the calls the builtin
//! Dockerfile frontend makes for that one line (ResolveImageConfig, Solve, Return with the
//! image config). Built against a one-line Dockerfile through the same daemon, the gap is
//! what BuildKit charges any gateway frontend image: resolving and pulling the frontend
//! image, starting its container, tearing it down. It reads no spec and compiles nothing, so
//! no frontend can be cheaper.
//!
//! Not part of torchkit: the bench builds it as a static binary and packages it FROM scratch
//! with the labels of frontend.Dockerfile.

use std::collections::BTreeMap;
use std::process::ExitCode;

use torchkit::buildkit::client::{SolveOptions, IMAGE_CONFIG_KEY};
use torchkit::buildkit::Bridge;
use torchkit::frontend::{options, stdio};
use torchkit::llb::{self, Platform};

#[allow(clippy::print_stderr)]
fn main() -> ExitCode {
    let (opts, _session) = options::from_env_vars(std::env::vars());
    let Some(base) = opts.get("build-arg:FLOOR_BASE").cloned() else {
        eprintln!("gateway-floor: pass --build-arg FLOOR_BASE=<image>");
        return ExitCode::FAILURE;
    };
    let rt = match tokio::runtime::Builder::new_current_thread()
        .enable_all()
        .build()
    {
        Ok(rt) => rt,
        Err(e) => {
            eprintln!("gateway-floor: {e}");
            return ExitCode::FAILURE;
        }
    };
    let out = rt.block_on(async move {
        let channel = stdio::connect(stdio::Stdio::process()).await?;
        let bridge = Bridge::new(channel, None)?;
        let platform = Platform::linux_amd64();
        let img = bridge
            .resolve_image_config(&base, Some(platform.to_pb()))
            .await?;
        let def = llb::image(&base)
            .digest(Some(&img.digest))
            .platform(platform)
            .into_state()
            .marshal()?;
        let r = bridge.solve(Some(def), SolveOptions::default()).await?;
        let metadata = BTreeMap::from([(IMAGE_CONFIG_KEY.to_string(), img.config)]);
        bridge.return_result(Some(r), metadata).await?;
        anyhow::Ok(())
    });
    rt.shutdown_background();
    match out {
        Ok(()) => ExitCode::SUCCESS,
        Err(e) => {
            eprintln!("gateway-floor: {e:#}");
            ExitCode::FAILURE
        }
    }
}
