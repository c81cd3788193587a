//! The Room client's TCP socket, tuned so that neither side's kernel holds a command back.
//!
//! Two stalls of ~40 ms each sit in the TCP stack of a request/response protocol, and only one
//! of them is ours to switch off directly:
//!
//! - **Our Nagle.** A small write while an earlier one is unacknowledged waits for its ACK.
//!   [`connect`] sets `TCP_NODELAY`.
//! - **The peer's Nagle, released by our delayed ACK.** A Room that tunes nothing (Nagle on) and
//!   writes a frame in two pieces — header, then payload — sends the header at once and holds
//!   the payload until we acknowledge the header. A client that just wrote a request is in the
//!   kernel's "interactive" mode, where ACKs are delayed (40 ms minimum on Linux) in the hope of
//!   riding on the next write; but nothing will be written until the payload arrives. Measured
//!   against a hand-written peer that does this: 44 ms per command (`tests/round_trip.rs`).
//!   [`Tuned`] turns `TCP_QUICKACK` on after every read that returned data, which sends a
//!   pending ACK at once and leaves interactive mode; the flag does not stick on Linux, hence
//!   after every read. Elsewhere (no `TCP_QUICKACK`) it reads plainly.

use std::io;
use std::pin::Pin;
use std::task::{Context, Poll};

use tokio::io::{AsyncRead, AsyncWrite, ReadBuf};
use tokio::net::TcpStream;

/// A TCP stream that acknowledges what it read at once (see the module doc).
#[derive(Debug)]
pub(crate) struct Tuned {
    inner: TcpStream,
}

/// Connects to `host:port` with Nagle off and quick ACKs on.
pub(crate) async fn connect(host: &str, port: u16) -> io::Result<Tuned> {
    let inner = TcpStream::connect((host, port)).await?;
    inner.set_nodelay(true)?;
    let tuned = Tuned { inner };
    tuned.ack_now();
    Ok(tuned)
}

impl Tuned {
    /// Sends a pending ACK now and keeps acknowledging at once until the kernel decides
    /// otherwise. Failing to set the flag only costs latency, never correctness.
    fn ack_now(&self) {
        #[cfg(any(target_os = "linux", target_os = "android"))]
        {
            let _ = socket2::SockRef::from(&self.inner).set_tcp_quickack(true);
        }
    }
}

impl AsyncRead for Tuned {
    fn poll_read(
        mut self: Pin<&mut Self>,
        cx: &mut Context<'_>,
        buf: &mut ReadBuf<'_>,
    ) -> Poll<io::Result<()>> {
        let before = buf.filled().len();
        let polled = Pin::new(&mut self.inner).poll_read(cx, buf);
        if matches!(polled, Poll::Ready(Ok(()))) && buf.filled().len() > before {
            self.ack_now();
        }
        polled
    }
}

impl AsyncWrite for Tuned {
    fn poll_write(
        mut self: Pin<&mut Self>,
        cx: &mut Context<'_>,
        buf: &[u8],
    ) -> Poll<io::Result<usize>> {
        Pin::new(&mut self.inner).poll_write(cx, buf)
    }

    fn poll_write_vectored(
        mut self: Pin<&mut Self>,
        cx: &mut Context<'_>,
        bufs: &[io::IoSlice<'_>],
    ) -> Poll<io::Result<usize>> {
        Pin::new(&mut self.inner).poll_write_vectored(cx, bufs)
    }

    fn is_write_vectored(&self) -> bool {
        self.inner.is_write_vectored()
    }

    fn poll_flush(mut self: Pin<&mut Self>, cx: &mut Context<'_>) -> Poll<io::Result<()>> {
        Pin::new(&mut self.inner).poll_flush(cx)
    }

    fn poll_shutdown(mut self: Pin<&mut Self>, cx: &mut Context<'_>) -> Poll<io::Result<()>> {
        Pin::new(&mut self.inner).poll_shutdown(cx)
    }
}

#[cfg(test)]
mod tests {
    use tokio::io::{AsyncReadExt, AsyncWriteExt};

    use super::*;

    #[tokio::test]
    async fn connects_without_nagle_and_moves_bytes_both_ways() {
        let listener = tokio::net::TcpListener::bind("127.0.0.1:0").await.unwrap();
        let port = listener.local_addr().unwrap().port();
        let (tuned, accepted) = tokio::join!(connect("127.0.0.1", port), listener.accept());
        let (mut tuned, mut peer) = (tuned.unwrap(), accepted.unwrap().0);
        assert!(tuned.inner.nodelay().unwrap());
        tuned.write_all(b"ping").await.unwrap();
        let mut buf = [0u8; 4];
        peer.read_exact(&mut buf).await.unwrap();
        assert_eq!(&buf, b"ping");
        peer.write_all(b"pong").await.unwrap();
        tuned.read_exact(&mut buf).await.unwrap();
        assert_eq!(&buf, b"pong");
    }
}
