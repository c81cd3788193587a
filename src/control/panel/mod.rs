//! The TCP line protocol on `[panel] listen`, for control systems that speak plain TCP
//! (Crestron, Extron, Q-SYS, Companion): see docs/panels.md.
//!
//! [`line`] frames and parses lines (pure); [`session`] serves one connection; [`serve`]
//! accepts them, at most [`MAX_CONNECTIONS`] at once.

pub mod line;
mod session;

use std::net::SocketAddr;
use std::sync::Arc;
use std::time::Duration;

use tokio::net::TcpListener;
use tokio::sync::Semaphore;
use tokio_util::sync::CancellationToken;

use crate::bridge::Bridge;
use crate::secret::Secret;

/// Connections served at once; one more is told so and closed.
pub const MAX_CONNECTIONS: usize = 32;
/// A connection that sends no line for this long is closed (send `PING` to keep it).
pub const IDLE: Duration = Duration::from_secs(600);
/// Time a client gets to take what is written to it.
pub const WRITE_TIMEOUT: Duration = Duration::from_secs(10);
/// Wrong `AUTH` attempts before the connection is closed.
pub const MAX_AUTH_FAILURES: u32 = 3;

/// Pause after a failed `accept` (out of file descriptors, say).
const ACCEPT_BACKOFF: Duration = Duration::from_millis(50);

/// Serves the protocol on `listener` until `shutdown`.
pub async fn serve(
    listener: TcpListener,
    bridge: Arc<Bridge>,
    token: Option<Secret>,
    shutdown: CancellationToken,
) -> std::io::Result<()> {
    if let Ok(listen) = listener.local_addr() {
        tracing::info!(%listen, token = token.is_some(), "panel TCP protocol listening");
    }
    let slots = Arc::new(Semaphore::new(MAX_CONNECTIONS));
    let token = Arc::new(token);
    loop {
        let (tcp, peer): (_, SocketAddr) = tokio::select! {
            _ = shutdown.cancelled() => return Ok(()),
            accepted = listener.accept() => match accepted {
                Ok(accepted) => accepted,
                Err(error) => {
                    tracing::warn!(%error, "cannot accept a panel connection");
                    tokio::time::sleep(ACCEPT_BACKOFF).await;
                    continue;
                }
            },
        };
        let _ = tcp.set_nodelay(true);
        let Ok(permit) = slots.clone().try_acquire_owned() else {
            bridge.hub().refused();
            tracing::warn!(%peer, "refusing a panel connection: {MAX_CONNECTIONS} are open");
            tokio::spawn(session::refuse(tcp));
            continue;
        };
        let (bridge, token, shutdown) = (bridge.clone(), token.clone(), shutdown.clone());
        tokio::spawn(async move {
            tracing::debug!(%peer, "panel client connected");
            session::Session::new(bridge, token, peer)
                .run(tcp, shutdown)
                .await;
            tracing::debug!(%peer, "panel client gone");
            drop(permit);
        });
    }
}
