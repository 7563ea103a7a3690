//! `torchkit dial-stdio`: the far end of a connection helper, as `buildctl dial-stdio`.
//!
//! It dials the daemon (`--addr`, else the usual search) and copies bytes both ways
//! between that connection and its own stdin/stdout, so that `docker exec -i CONTAINER
//! torchkit dial-stdio --addr docker://…` serves wherever a `buildctl dial-stdio` is
//! expected, also in front of dockerd's BuildKit, which buildctl cannot reach. It ends
//! when the daemon closes the connection; the end of stdin only closes the write side.
use std::process::ExitCode;

use anyhow::Context as _;
use tokio::io::{AsyncWriteExt as _, BufWriter};

use crate::buildkit::transport::{Dialer, Target};
use crate::buildkit::TlsOptions;

/// Flags of `torchkit dial-stdio`.
#[derive(Debug, clap::Args)]
pub struct Args {
    /// The daemon to connect stdio to (as `torchkit build --addr`). Default: as
    /// `torchkit build`.
    #[arg(long, value_name = "ADDR")]
    addr: Option<String>,
}

/// Run `torchkit dial-stdio`.
pub fn run(args: Args) -> anyhow::Result<ExitCode> {
    let target = Target::from_env(args.addr.as_deref(), None).map_err(super::hinted)?;
    let tls = if target.tls.is_enabled() {
        target.tls.clone()
    } else {
        TlsOptions::default()
    };
    let dialer = Dialer::new(target.addr, &tls).map_err(super::hinted)?;
    let rt = tokio::runtime::Runtime::new().context("starting the async runtime")?;
    let result = rt.block_on(async move {
        let stream = dialer.dial().await.map_err(super::hinted)?;
        let (mut from_daemon, mut to_daemon) = tokio::io::split(stream);
        // Up: stdin to the daemon, then half-close, in the background.
        tokio::spawn(async move {
            let mut stdin = tokio::io::stdin();
            let _ = tokio::io::copy(&mut stdin, &mut to_daemon).await;
            let _ = to_daemon.shutdown().await;
        });
        // Down: the daemon to stdout, until it closes the connection.
        let mut stdout = BufWriter::new(tokio::io::stdout());
        let mut buf = vec![0u8; 64 << 10];
        loop {
            use tokio::io::AsyncReadExt as _;
            let n = from_daemon
                .read(&mut buf)
                .await
                .context("reading from the daemon")?;
            if n == 0 {
                break;
            }
            stdout
                .write_all(&buf[..n])
                .await
                .map_err(super::stdout_error)?;
            stdout.flush().await.map_err(super::stdout_error)?;
        }
        anyhow::Ok(())
    });
    // The stdin reader blocks a thread; do not wait for it.
    rt.shutdown_background();
    result.map(|()| ExitCode::SUCCESS)
}
