//! The gateway transport: gRPC over the frontend process's stdin and stdout.
//!
//! The daemon runs the frontend image with its stdin/stdout as one HTTP/2 connection,
//! prior knowledge, no TLS, authority `localhost`, the daemon being the server (BuildKit
//! `frontend/gateway/grpcclient/client.go` `stdioConn`). [`connect`] hands tonic a
//! one-shot connector that yields [`Stdio`], stdin and stdout joined into one duplex
//! stream; a second dial (tonic reconnecting after the pipe broke) fails, since a pipe
//! cannot be reopened.
//!
//! Nothing else may write to stdout while this runs: every byte there is HTTP/2.

use std::io;
use std::pin::Pin;
use std::sync::{Arc, Mutex};
use std::task::{Context, Poll};

use hyper_util::rt::TokioIo;
use tokio::io::{AsyncRead, AsyncWrite, ReadBuf};
use tonic::transport::{Channel, Endpoint};

use crate::buildkit::transport::MAX_MESSAGE_SIZE;

/// Any reader and writer joined into one duplex byte stream: stdin/stdout in the frontend,
/// in-memory pipes in tests.
#[derive(Debug)]
pub struct Stdio<R, W> {
    reader: R,
    writer: W,
}

impl<R, W> Stdio<R, W> {
    /// Join `reader` (what the daemon sends) and `writer` (what it receives).
    pub fn new(reader: R, writer: W) -> Self {
        Stdio { reader, writer }
    }
}

impl Stdio<tokio::io::Stdin, tokio::io::Stdout> {
    /// The process's own stdin and stdout.
    pub fn process() -> Self {
        Stdio::new(tokio::io::stdin(), tokio::io::stdout())
    }
}

impl<R: AsyncRead + Unpin, W: Unpin> AsyncRead for Stdio<R, W> {
    fn poll_read(
        mut self: Pin<&mut Self>,
        cx: &mut Context<'_>,
        buf: &mut ReadBuf<'_>,
    ) -> Poll<io::Result<()>> {
        Pin::new(&mut self.reader).poll_read(cx, buf)
    }
}

impl<R: Unpin, W: AsyncWrite + Unpin> AsyncWrite for Stdio<R, W> {
    fn poll_write(
        mut self: Pin<&mut Self>,
        cx: &mut Context<'_>,
        buf: &[u8],
    ) -> Poll<io::Result<usize>> {
        Pin::new(&mut self.writer).poll_write(cx, buf)
    }

    fn poll_flush(mut self: Pin<&mut Self>, cx: &mut Context<'_>) -> Poll<io::Result<()>> {
        Pin::new(&mut self.writer).poll_flush(cx)
    }

    fn poll_shutdown(mut self: Pin<&mut Self>, cx: &mut Context<'_>) -> Poll<io::Result<()>> {
        Pin::new(&mut self.writer).poll_shutdown(cx)
    }
}

/// A tonic channel over `io`, dialled once (eagerly, here): HTTP/2 with prior knowledge,
/// authority `localhost`, 16 MiB windows as BuildKit's own clients.
pub async fn connect<R, W>(io: Stdio<R, W>) -> Result<Channel, tonic::transport::Error>
where
    R: AsyncRead + Unpin + Send + 'static,
    W: AsyncWrite + Unpin + Send + 'static,
{
    let slot = Arc::new(Mutex::new(Some(io)));
    let connector = tower::service_fn(move |_uri: http::Uri| {
        let taken = slot.lock().map(|mut s| s.take()).unwrap_or(None);
        async move {
            taken.map(TokioIo::new).ok_or_else(|| {
                io::Error::new(
                    io::ErrorKind::NotConnected,
                    "the gateway's stdin/stdout connection closed and cannot be reopened",
                )
            })
        }
    });
    Endpoint::from_static("http://localhost")
        .initial_connection_window_size(Some(MAX_MESSAGE_SIZE as u32))
        .initial_stream_window_size(Some(4 << 20))
        .connect_with_connector(connector)
        .await
}
