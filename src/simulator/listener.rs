//! The accept loop both simulated servers (the web server and the WebSocket API) share: a
//! bounded number of open sockets, one task per connection, and a stop that reaches every
//! connection.

use std::future::Future;
use std::sync::Arc;
use std::sync::atomic::{AtomicUsize, Ordering};
use std::time::Duration;

use tokio::net::{TcpListener, TcpStream};
use tokio_util::sync::CancellationToken;

/// Counts the open sockets of one listener, to bound them.
pub(crate) struct SocketCount {
    open: AtomicUsize,
    max: usize,
}

/// Releases a socket slot when dropped.
pub(crate) struct SocketSlot(Arc<SocketCount>);

impl SocketCount {
    pub fn new(max: usize) -> Arc<SocketCount> {
        Arc::new(SocketCount {
            open: AtomicUsize::new(0),
            max,
        })
    }

    pub fn acquire(self: &Arc<Self>) -> Option<SocketSlot> {
        let previous = self.open.fetch_add(1, Ordering::AcqRel);
        if previous >= self.max {
            self.open.fetch_sub(1, Ordering::AcqRel);
            return None;
        }
        Some(SocketSlot(Arc::clone(self)))
    }
}

impl Drop for SocketSlot {
    fn drop(&mut self) {
        self.0.open.fetch_sub(1, Ordering::AcqRel);
    }
}

/// Accepts connections on `listener` until `stop` is cancelled and serves each one on a task of
/// its own with `serve(socket, kill)`, where `kill` is cancelled when the listener stops. Past
/// `sockets`' bound a connection is closed at once.
pub(crate) async fn accept_loop<F, Fut>(
    listener: TcpListener,
    sockets: Arc<SocketCount>,
    stop: CancellationToken,
    serve: F,
) where
    F: Fn(TcpStream, CancellationToken) -> Fut,
    Fut: Future<Output = ()> + Send + 'static,
{
    loop {
        let accepted = tokio::select! {
            _ = stop.cancelled() => return,
            accepted = listener.accept() => accepted,
        };
        match accepted {
            Ok((tcp, _)) => {
                let Some(slot) = sockets.acquire() else {
                    tracing::debug!("too many connections; refusing one");
                    continue;
                };
                let connection = serve(tcp, stop.child_token());
                tokio::spawn(async move {
                    let _slot = slot;
                    connection.await;
                });
            }
            Err(e) => {
                // Typically EMFILE: back off instead of spinning.
                tracing::debug!(error = %e, "accept failed");
                tokio::time::sleep(Duration::from_millis(20)).await;
            }
        }
    }
}
