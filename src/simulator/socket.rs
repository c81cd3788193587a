//! How a simulated Room's WebSocket socket behaves on the wire: tuned, or like a server that
//! tunes nothing (the default).
//!
//! A real Room is a Qt application whose socket options nobody outside TrueConf knows. If the
//! simulator tuned its side (`TCP_NODELAY`, several frames per write), every test and benchmark
//! would hide the stalls a client can suffer against an untuned peer: with Nagle on, a frame
//! written in two pieces sends its header at once and holds the payload until the client
//! acknowledges the header, which a client that delays its ACKs does ~40 ms later. So by
//! default the simulator does exactly that:
//!
//! - no socket options at all (Nagle on);
//! - every frame written as it is produced, no batching (the connection's writer flushes
//!   frame by frame);
//! - each frame's header and payload in two separate writes, as servers that write a frame
//!   piece by piece do.
//!
//! `SimConfig::tuned` switches to the tuned behaviour: `TCP_NODELAY`, frames batched between
//! flushes, one write per batch.

use std::io;
use std::pin::Pin;
use std::task::{Context, Poll};

use tokio::io::{AsyncRead, AsyncWrite, ReadBuf};
use tokio::net::TcpStream;

/// A server socket that writes each WebSocket frame's header and payload separately once
/// [`SimSocket::start_framing`] was called (the opening handshake is written as it comes).
#[derive(Debug)]
pub(crate) struct SimSocket {
    inner: TcpStream,
    tuned: bool,
    framing: bool,
    /// Header bytes of the current frame not yet written.
    header_left: usize,
    /// Payload bytes of the current frame not yet written.
    payload_left: u64,
}

impl SimSocket {
    /// Wraps an accepted socket; `tuned` sets `TCP_NODELAY` and writes everything as given.
    pub fn new(inner: TcpStream, tuned: bool) -> SimSocket {
        if tuned {
            // Replies are small and latency matters more than packet count.
            let _ = inner.set_nodelay(true);
        }
        SimSocket {
            inner,
            tuned,
            framing: false,
            header_left: 0,
            payload_left: 0,
        }
    }

    /// Whether this socket is tuned.
    pub fn is_tuned(&self) -> bool {
        self.tuned
    }

    /// The handshake is done: from now on every write starts or continues a frame.
    pub fn start_framing(&mut self) {
        self.framing = !self.tuned;
    }

    /// How much of `buf` the next write may take.
    fn next_piece(&mut self, buf: &[u8]) -> usize {
        if !self.framing {
            return buf.len();
        }
        if self.header_left == 0
            && self.payload_left == 0
            && let Some((header, payload)) = frame_lengths(buf)
        {
            self.header_left = header;
            self.payload_left = payload;
        }
        if self.header_left > 0 {
            self.header_left.min(buf.len())
        } else if self.payload_left > 0 {
            usize::try_from(self.payload_left).map_or(buf.len(), |left| left.min(buf.len()))
        } else {
            buf.len()
        }
    }

    /// Accounts for `written` bytes of the current frame.
    fn wrote(&mut self, written: usize) {
        if self.header_left > 0 {
            self.header_left -= written.min(self.header_left);
        } else {
            self.payload_left = self.payload_left.saturating_sub(written as u64);
        }
    }
}

/// Header and payload lengths of the server frame starting `buf` (servers do not mask), or
/// `None` when `buf` does not hold the whole header.
fn frame_lengths(buf: &[u8]) -> Option<(usize, u64)> {
    let second = *buf.get(1)?;
    let (header, payload) = match second & 0x7f {
        126 => (
            4,
            u64::from(u16::from_be_bytes([*buf.get(2)?, *buf.get(3)?])),
        ),
        127 => {
            let bytes: [u8; 8] = buf.get(2..10)?.try_into().ok()?;
            (10, u64::from_be_bytes(bytes))
        }
        n => (2, u64::from(n)),
    };
    Some((header, payload))
}

impl AsyncRead for SimSocket {
    fn poll_read(
        mut self: Pin<&mut Self>,
        cx: &mut Context<'_>,
        buf: &mut ReadBuf<'_>,
    ) -> Poll<io::Result<()>> {
        Pin::new(&mut self.inner).poll_read(cx, buf)
    }
}

impl AsyncWrite for SimSocket {
    fn poll_write(
        mut self: Pin<&mut Self>,
        cx: &mut Context<'_>,
        buf: &[u8],
    ) -> Poll<io::Result<usize>> {
        let piece = self.next_piece(buf);
        let polled = Pin::new(&mut self.inner).poll_write(cx, &buf[..piece]);
        if let Poll::Ready(Ok(written)) = polled {
            self.wrote(written);
        }
        polled
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
    use super::*;

    #[test]
    fn frame_lengths_of_every_header_size() {
        assert_eq!(frame_lengths(&[0x81, 5, b'h']), Some((2, 5)));
        assert_eq!(frame_lengths(&[0x81, 126, 0x01, 0x00]), Some((4, 256)));
        let mut long = vec![0x81, 127];
        long.extend_from_slice(&(70_000u64).to_be_bytes());
        assert_eq!(frame_lengths(&long), Some((10, 70_000)));
        assert_eq!(frame_lengths(&[0x81]), None);
        assert_eq!(frame_lengths(&[0x81, 126, 0x01]), None);
    }

    /// The pieces an untuned socket writes `buf` in, assuming every write takes all it is given.
    fn pieces(socket: &mut SimSocket, buf: &[u8]) -> Vec<usize> {
        let mut pieces = Vec::new();
        let mut at = 0;
        while at < buf.len() {
            let piece = socket.next_piece(&buf[at..]);
            socket.wrote(piece);
            pieces.push(piece);
            at += piece;
        }
        pieces
    }

    #[tokio::test]
    async fn untuned_writes_header_and_payload_apart_after_the_handshake() {
        let listener = tokio::net::TcpListener::bind("127.0.0.1:0").await.unwrap();
        let client = TcpStream::connect(listener.local_addr().unwrap());
        let (client, accepted) = tokio::join!(client, listener.accept());
        let (_client, server) = (client.unwrap(), accepted.unwrap().0);
        let mut socket = SimSocket::new(server, false);
        let handshake = b"HTTP/1.1 101 Switching Protocols\r\n\r\n";
        assert_eq!(pieces(&mut socket, handshake), [handshake.len()]);
        socket.start_framing();
        let mut two_frames = vec![0x81, 5];
        two_frames.extend_from_slice(b"hello");
        two_frames.extend_from_slice(&[0x81, 126, 0x01, 0x00]);
        two_frames.extend_from_slice(&[b'x'; 256]);
        assert_eq!(pieces(&mut socket, &two_frames), [2, 5, 4, 256]);
        // A partial header write continues where it stopped.
        let frame = [0x81, 3, b'a', b'b', b'c'];
        assert_eq!(socket.next_piece(&frame), 2);
        socket.wrote(1);
        assert_eq!(socket.next_piece(&frame[1..]), 1);
        socket.wrote(1);
        assert_eq!(socket.next_piece(&frame[2..]), 3);
    }

    #[tokio::test]
    async fn tuned_writes_everything_as_given() {
        let listener = tokio::net::TcpListener::bind("127.0.0.1:0").await.unwrap();
        let client = TcpStream::connect(listener.local_addr().unwrap());
        let (client, accepted) = tokio::join!(client, listener.accept());
        let (_client, server) = (client.unwrap(), accepted.unwrap().0);
        let mut socket = SimSocket::new(server, true);
        socket.start_framing();
        assert!(socket.is_tuned());
        assert!(socket.inner.nodelay().unwrap());
        assert_eq!(pieces(&mut socket, &[0x81, 2, b'h', b'i', 0x81, 0]), [6]);
    }
}
