//! The WebSocket side of a simulated Room: accepting connections and moving frames.
//!
//! Each connection is one task running two futures side by side: a reader that hands every
//! text frame to the room (which answers synchronously, under its lock, into this connection's
//! bounded queue) and a writer that drains the queue into the socket: frame by frame as they
//! come (the default, untuned), or batching frames between flushes (tuned; see `socket`). No task is spawned per request, so a client pipelining tens of thousands of requests
//! per second costs a parse, a decision and a serialisation each.
//!
//! The task ends — dropping the socket without a close frame, like a crashed peer — when the
//! client goes away, when the room drops the connection (full queue, `drop_connections`, `stop`)
//! or when the socket fails. The half-open fault simply stops polling the socket: no reads, no
//! writes, no pongs, while the TCP connection stays established.

use std::sync::Arc;
use std::time::Duration;

use futures_util::stream::{SplitSink, SplitStream};
use futures_util::{SinkExt, StreamExt};
use tokio::net::TcpListener;
use tokio::sync::{mpsc, watch};
use tokio_tungstenite::WebSocketStream;
use tokio_tungstenite::tungstenite::Message;
use tokio_tungstenite::tungstenite::protocol::WebSocketConfig;
use tokio_util::sync::CancellationToken;

use crate::protocol::websocket_config;

use super::room::{ConnId, OUTBOUND_QUEUE, Outbound, RoomCore};
use super::socket::SimSocket;

type Ws = WebSocketStream<SimSocket>;

/// How long a client may take for the opening handshake.
const HANDSHAKE_TIMEOUT: Duration = Duration::from_secs(10);

/// Frames written between two flushes at most (tuned mode; untuned, every frame is flushed as
/// it comes, see `socket`).
const MAX_BATCH: usize = 256;

/// Free queue slots the reader waits for before taking the next request. A request queues its
/// reply and a handful of events; the rest of the headroom absorbs events from other sources.
/// Waiting here turns a client that pipelines faster than it reads into TCP backpressure rather
/// than a full queue (which drops the connection).
const READ_HEADROOM: usize = 256;

/// Bound on tungstenite's own write buffer (the largest frame we send is the "huge" garbage
/// frame, just over 1 MiB).
const MAX_WRITE_BUFFER: usize = 8 << 20;

fn ws_config() -> WebSocketConfig {
    websocket_config(MAX_WRITE_BUFFER)
}

/// Waits until the half-open fault is off. Returns `false` if the room is gone.
async fn thawed(half_open: &mut watch::Receiver<bool>) -> bool {
    half_open.wait_for(|on| !*on).await.is_ok()
}

/// Accepts WebSocket connections until `stop` is cancelled.
pub(crate) async fn accept_loop(
    shared: Arc<RoomCore>,
    listener: TcpListener,
    stop: CancellationToken,
) {
    let sockets = Arc::clone(&shared.ws_sockets);
    let tuned = shared.config.tuned;
    super::listener::accept_loop(listener, sockets, stop, |tcp, kill| {
        serve(Arc::clone(&shared), SimSocket::new(tcp, tuned), kill)
    })
    .await;
}

async fn serve(shared: Arc<RoomCore>, tcp: SimSocket, kill: CancellationToken) {
    let mut half_open = shared.half_open_watch();
    let handshake = async {
        // A frozen Room does not even complete handshakes.
        if !thawed(&mut half_open).await {
            return None;
        }
        let accept = tokio_tungstenite::accept_async_with_config(tcp, Some(ws_config()));
        tokio::time::timeout(HANDSHAKE_TIMEOUT, accept)
            .await
            .ok()?
            .ok()
    };
    let mut ws = tokio::select! {
        _ = kill.cancelled() => return,
        ws = handshake => match ws {
            Some(ws) => ws,
            None => return,
        },
    };
    ws.get_mut().start_framing();
    let max_batch = if ws.get_ref().is_tuned() {
        MAX_BATCH
    } else {
        1
    };
    let (tx, rx) = mpsc::channel(OUTBOUND_QUEUE);
    let id = shared.register(tx.clone(), kill.clone());
    let (sink, stream) = ws.split();
    tokio::select! {
        _ = kill.cancelled() => {}
        _ = read_loop(&shared, id, stream, tx, half_open.clone()) => {}
        _ = write_loop(sink, rx, half_open, max_batch) => {}
    }
    shared.unregister(id);
}

async fn read_loop(
    shared: &Arc<RoomCore>,
    id: ConnId,
    mut stream: SplitStream<Ws>,
    queue: mpsc::Sender<Outbound>,
    mut half_open: watch::Receiver<bool>,
) {
    loop {
        if !thawed(&mut half_open).await {
            return;
        }
        if queue.capacity() < READ_HEADROOM {
            // Reserving and releasing the slots waits until the writer has made room.
            match queue.reserve_many(READ_HEADROOM).await {
                Ok(permits) => drop(permits),
                Err(_) => return,
            }
        }
        let message = tokio::select! {
            biased;
            frozen = async { half_open.wait_for(|on| *on).await.is_ok() } => {
                if frozen {
                    continue;
                }
                return;
            }
            message = stream.next() => message,
        };
        match message {
            Some(Ok(Message::Text(text))) => shared.on_text(id, text.as_str()),
            // inferred: SPEC §3 — binary frames are never used; the Room ignores them.
            // Pings are answered by tungstenite itself while we keep reading.
            Some(Ok(_)) => {}
            // A frame over MAX_FRAME_BYTES cannot be skipped safely: the connection ends.
            Some(Err(e)) => {
                tracing::debug!(error = %e, "connection read failed");
                return;
            }
            None => return,
        }
    }
}

async fn write_loop(
    mut sink: SplitSink<Ws, Message>,
    mut rx: mpsc::Receiver<Outbound>,
    mut half_open: watch::Receiver<bool>,
    max_batch: usize,
) {
    while let Some(first) = rx.recv().await {
        let mut next = Some(first);
        let mut batched = 0;
        while let Some(out) = next.take() {
            if !thawed(&mut half_open).await {
                return;
            }
            if let Some(at) = out.not_before
                && at > tokio::time::Instant::now()
            {
                if sink.flush().await.is_err() {
                    return;
                }
                tokio::time::sleep_until(at).await;
            }
            if sink.feed(out.msg).await.is_err() {
                return;
            }
            batched += 1;
            if batched < max_batch {
                next = rx.try_recv().ok();
            }
        }
        if sink.flush().await.is_err() {
            return;
        }
    }
}
