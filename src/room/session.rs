//! The task that owns the WebSocket: connect, authenticate, run, reconnect.
//!
//! One supervisor task per Room. It loops over sessions; a session is one authenticated
//! WebSocket connection driven by a single `select!` loop (no split halves, no locks): frames
//! from the Room, requests from handles, the keepalive tick and the cancellation token. When a
//! session ends, every request in flight fails at once and new ones are refused until the next
//! session is authenticated, so a command is never executed minutes late.

use std::collections::{HashMap, VecDeque};
use std::sync::Arc;
use std::sync::atomic::Ordering;
use std::time::Duration;

use futures_util::{SinkExt, StreamExt};
use serde_json::{Map, Value};
use tokio::sync::{mpsc, oneshot};
use tokio::time::Instant;
use tokio_tungstenite::WebSocketStream;
use tokio_tungstenite::tungstenite::Message;
use tokio_util::sync::CancellationToken;
use tracing::{debug, info, warn};

use super::client::{ClientShared, LinkState, PendingRequest};
use super::discovery::{DEFAULT_WS_PORT, discover};
use super::error::RoomError;
use super::tcp::{self, Tuned};
use crate::backoff::Reconnect;
use crate::protocol::{
    AppState, Event, EventKind, Incoming, MAX_FRAME_BYTES, Response, encode_request,
    parse_incoming, websocket_config,
};
use crate::secret::Secret;

type Socket = WebSocketStream<Tuned>;

/// Prefix of the request ids we issue: a reply carrying an id of this shape that we no longer
/// wait for is a duplicate, not a reply to some other request.
const ID_PREFIX: &str = "t2m-";

/// Requests written to the socket before one flush, when many are queued at once.
const WRITE_BATCH: usize = 256;

/// The methods read after every (re)connect (SPEC §14.6). `getConferences` and
/// `getConferenceParticipants` follow when the Room is in a conference.
const RESYNC: &[&str] = &[
    "getAppState",
    "getLogin",
    "getConnected",
    "getHardware",
    "getMicMute",
    "getVideoMute",
    "getAudioMute",
    "getSystemInfo",
    "getMonitorsInfo",
    "getSettings",
    "getPtzControls",
    // Room 4.2+; an older Room fails them, which only leaves the lists empty.
    "getAllVideoCapturerPresets",
    "getSlideShowInfo",
];

/// How a session ended.
enum End {
    /// Cancelled: stop for good.
    Stopped,
    /// The connection broke or went silent; reconnect with backoff.
    Lost(String),
}

/// Runs sessions until cancelled.
pub(crate) async fn supervise(
    shared: Arc<ClientShared>,
    commands: &mut mpsc::Receiver<PendingRequest>,
    cancel: CancellationToken,
) {
    let options = &shared.options;
    let mut reconnect = Reconnect::new(options.reconnect_min, options.reconnect_max);
    let address = match &options.label {
        Some(id) => format!("{id} ({}:{})", options.host, options.port),
        None => format!("{}:{}", options.host, options.port),
    };
    // An event a session could not hand over before it ended: the next session delivers it
    // before reading anything else, so the lossless stream stays lossless and in order.
    let mut carried = None;
    loop {
        shared.link.send_replace(LinkState::Connecting);
        let attempt = tokio::select! {
            _ = cancel.cancelled() => break,
            attempt = connect_and_authenticate(&shared) => attempt,
        };
        let delay = match attempt {
            Ok(socket) => {
                reconnect.connected();
                shared.stats.connects.fetch_add(1, Ordering::Relaxed);
                info!(room = %address, "authenticated");
                let mut session = Session::new(socket, shared.clone(), carried.take());
                let end = session.run(commands, &cancel).await;
                carried = session.held.take();
                shared.accepting.store(false, Ordering::Release);
                session.fail_pending();
                match end {
                    End::Stopped => break,
                    End::Lost(reason) => {
                        warn!(room = %address, %reason, "connection lost");
                        shared.remember(RoomError::ConnectionLost(reason.clone()));
                        shared.link.send_replace(LinkState::Offline { reason });
                    }
                }
                reconnect.failed()
            }
            Err(RoomError::AuthRefused { code, message }) => {
                shared.remember(RoomError::AuthRefused {
                    code,
                    message: message.clone(),
                });
                warn!(
                    room = %address,
                    reason = %message,
                    retry_in_s = options.auth_retry.as_secs(),
                    "the Room refused authentication; check the PIN"
                );
                shared.link.send_replace(LinkState::AuthRefused { message });
                options.auth_retry
            }
            Err(error) => {
                shared.remember(error.clone());
                let delay = reconnect.failed();
                warn!(room = %address, %error, retry_in_ms = delay.as_millis() as u64, "cannot connect");
                shared.link.send_replace(LinkState::Offline {
                    reason: error.to_string(),
                });
                delay
            }
        };
        // Wait before the next attempt, refusing requests at once meanwhile.
        let sleep = tokio::time::sleep(delay);
        tokio::pin!(sleep);
        loop {
            tokio::select! {
                _ = &mut sleep => break,
                _ = cancel.cancelled() => break,
                Some(command) = commands.recv() => command.fail(RoomError::NotConnected),
            }
        }
        if cancel.is_cancelled() {
            break;
        }
    }
    shared.accepting.store(false, Ordering::Release);
    shared.link.send_replace(LinkState::Stopped);
    commands.close();
    while let Ok(command) = commands.try_recv() {
        command.fail(RoomError::Stopped);
    }
}

/// Discovers the port, opens the WebSocket and authenticates, all within `connect_timeout`.
async fn connect_and_authenticate(shared: &ClientShared) -> Result<Socket, RoomError> {
    let options = &shared.options;
    let address = match &options.label {
        Some(id) => format!("{id} ({}:{})", options.host, options.port),
        None => format!("{}:{}", options.host, options.port),
    };
    let unreachable = |reason: String| RoomError::Unreachable {
        addr: address.clone(),
        reason,
    };
    let deadline = Instant::now() + options.connect_timeout;

    let mut discovery_note = String::new();
    let ws_port = match options.ws_port {
        Some(port) => port,
        None => match discover(
            &options.host,
            options.port,
            &options.instance,
            options.connect_timeout / 2,
        )
        .await
        {
            Ok(ports) => ports.websocket,
            Err(error) => {
                // The official client falls back silently; we say so (SPEC §2.5).
                debug!(room = %address, %error, "port discovery failed, trying the default {DEFAULT_WS_PORT}");
                discovery_note =
                    format!(" (config.json discovery failed: {error}; tried the default port)");
                DEFAULT_WS_PORT
            }
        },
    };
    let url = format!("ws://{}:{ws_port}/", options.host);
    let config = websocket_config(4 * MAX_FRAME_BYTES);
    // Nagle off and quick ACKs on (`tcp`): no ~40 ms stalls, whatever the Room's own socket does.
    let connect = async {
        let stream = tcp::connect(&options.host, ws_port)
            .await
            .map_err(tokio_tungstenite::tungstenite::Error::Io)?;
        tokio_tungstenite::client_async_with_config(url.as_str(), stream, Some(config)).await
    };
    let (mut socket, _) = tokio::time::timeout_at(deadline, connect)
        .await
        .map_err(|_| unreachable(format!("WebSocket {url} did not open in time")))?
        .map_err(|e| unreachable(format!("WebSocket {url}: {e}{discovery_note}")))?;

    let mut auth = Map::new();
    match &options.pin {
        Some(pin) => {
            auth.insert("type".into(), "secured".into());
            auth.insert("credentials".into(), pin.expose().into());
        }
        None => {
            auth.insert("type".into(), "unsecured".into());
        }
    }
    let auth_id = format!("{ID_PREFIX}auth");
    let frame = encode_request("auth", Some(&auth_id), &auth);
    // Whatever arrived before we asked cannot be the answer (an `auth` success among it would
    // otherwise be taken for one): skip it, counted.
    while let Some(Some(frame)) = futures_util::FutureExt::now_or_never(socket.next()) {
        if matches!(frame, Ok(Message::Text(_))) {
            shared
                .stats
                .unmatched_replies
                .fetch_add(1, Ordering::Relaxed);
        }
    }
    socket
        .send(Message::text(frame))
        .await
        .map_err(|e| unreachable(format!("sending auth: {e}")))?;

    let reply = tokio::time::timeout_at(deadline, async {
        while let Some(frame) = socket.next().await {
            let text = match frame {
                Ok(Message::Text(text)) => text,
                Ok(Message::Close(_)) => break,
                Ok(_) => continue,
                Err(e) => return Err(unreachable(format!("during auth: {e}"))),
            };
            match parse_incoming(&text) {
                // Ours: our id echoed, or none (older Rooms answer `"requestId":""`, SPEC §4).
                Ok(Incoming::Response(r))
                    if r.method == "auth"
                        && r.request_id
                            .as_deref()
                            .is_none_or(|id| id.is_empty() || id == auth_id) =>
                {
                    return Ok(r);
                }
                Ok(Incoming::Response(r)) if r.method == "auth" => {
                    shared
                        .stats
                        .unmatched_replies
                        .fetch_add(1, Ordering::Relaxed);
                    warn!(room = %address, "ignoring an auth reply to a request we never sent");
                }
                // Anything else before the auth reply is not expected (SPEC §4.5); skip it.
                _ => continue,
            }
        }
        Err(unreachable("connection closed during auth".into()))
    })
    .await
    .map_err(|_| unreachable("no auth reply in time".into()))??;

    if !reply.result {
        return Err(RoomError::AuthRefused {
            code: reply.result_code(),
            message: reply.error_text().unwrap_or("result: false").to_owned(),
        });
    }
    let token = reply
        .fields
        .get("tokenForHttpServer")
        .and_then(Value::as_str);
    if let Ok(mut slot) = shared.http_token.lock() {
        *slot = token.map(Secret::new);
    }
    Ok(socket)
}

/// A request waiting for its reply.
struct Pending {
    method: String,
    /// `None` for the session's own requests (probes, follow-ups): their replies only update
    /// the state.
    reply: Option<oneshot::Sender<Result<Response, RoomError>>>,
}

/// One authenticated connection.
struct Session {
    socket: Socket,
    shared: Arc<ClientShared>,
    pending: HashMap<String, Pending>,
    /// Ids per method in send order, for replies without a usable id (SPEC §5.2: the Room
    /// answers the commands of one connection in order — inferred).
    by_method: HashMap<String, VecDeque<String>>,
    next_id: u64,
    last_heard: Instant,
    /// An event the lossless consumer had no room for: the socket is not read until it is
    /// delivered (backpressure instead of loss).
    held: Option<HeldEvent>,
}

/// An event waiting for room in the lossless consumer's channel, with that channel.
type HeldEvent = (mpsc::Sender<Arc<Event>>, Arc<Event>);

impl Session {
    fn new(socket: Socket, shared: Arc<ClientShared>, held: Option<HeldEvent>) -> Session {
        Session {
            socket,
            shared,
            pending: HashMap::new(),
            by_method: HashMap::new(),
            next_id: 0,
            last_heard: Instant::now(),
            held,
        }
    }

    async fn run(
        &mut self,
        commands: &mut mpsc::Receiver<PendingRequest>,
        cancel: &CancellationToken,
    ) -> End {
        let keepalive = self.shared.options.keepalive;
        let mut tick = tokio::time::interval(keepalive / 3);
        tick.set_missed_tick_behavior(tokio::time::MissedTickBehavior::Delay);
        tick.reset();

        self.shared.accepting.store(true, Ordering::Release);
        let resync = tokio::spawn(resync(self.shared.clone()));
        let end = loop {
            let held_tx = self.held.as_ref().map(|(tx, _)| tx.clone());
            tokio::select! {
                _ = cancel.cancelled() => {
                    // Best effort clean close, bounded.
                    let _ = tokio::time::timeout(Duration::from_secs(1), self.socket.close(None)).await;
                    break End::Stopped;
                }
                permit = reserve_held(held_tx), if self.held.is_some() => {
                    let held = self.held.take();
                    if let (Ok(permit), Some((_, event))) = (permit, held) {
                        permit.send(event);
                    }
                    // The Room was not silent: we were not listening.
                    self.last_heard = Instant::now();
                }
                frame = self.socket.next(), if self.held.is_none() => {
                    self.last_heard = Instant::now();
                    match frame {
                        Some(Ok(Message::Text(text))) => {
                            if let Some(end) = self.on_text(&text) {
                                break end;
                            }
                            // Frames parsed from the WebSocket's buffer never touch the socket,
                            // so a flood would not yield on its own: one unit of the task
                            // budget per frame lets other rooms run every 128 frames.
                            tokio::task::consume_budget().await;
                        }
                        Some(Ok(Message::Binary(bytes))) => {
                            self.shared.stats.bad_frames.fetch_add(1, Ordering::Relaxed);
                            warn!(bytes = bytes.len(), "ignoring a binary frame from the Room");
                        }
                        Some(Ok(Message::Close(frame))) => {
                            break End::Lost(format!("closed by the Room ({frame:?})"));
                        }
                        Some(Ok(_)) => {}
                        // A text frame that is not UTF-8 is one bad frame, not a broken link
                        // (the WebSocket layer keeps reading after it; see patches/).
                        Some(Err(tokio_tungstenite::tungstenite::Error::Utf8(detail))) => {
                            self.shared.stats.bad_frames.fetch_add(1, Ordering::Relaxed);
                            warn!(error = %detail, "ignoring a text frame from the Room that is not UTF-8");
                        }
                        Some(Err(e)) => break End::Lost(e.to_string()),
                        None => break End::Lost("connection closed".into()),
                    }
                }
                command = commands.recv() => {
                    let Some(command) = command else { break End::Stopped };
                    if let Err(e) = self.write_batch(command, commands).await {
                        break End::Lost(e);
                    }
                }
                _ = tick.tick(), if self.held.is_none() => {
                    // Not while an event is held: the socket is not read then, so silence
                    // would be ours, not the Room's.
                    let silent = self.last_heard.elapsed();
                    if silent >= keepalive {
                        break End::Lost(format!("no frame from the Room for {} ms", silent.as_millis()));
                    }
                    self.pending.retain(|_, p| p.reply.as_ref().is_none_or(|r| !r.is_closed()));
                    if silent >= keepalive / 3 {
                        // The Room is not known to answer pings (SPEC §8, inferred), so a cheap
                        // request serves as the fallback probe.
                        let probe = self.enqueue("getAppState", &Map::new(), None);
                        let sent = tokio::time::timeout(keepalive, async {
                            self.socket.feed(Message::Ping(Vec::new().into())).await?;
                            self.socket.feed(Message::text(probe)).await?;
                            self.socket.flush().await
                        }).await;
                        match sent {
                            Ok(Ok(())) => {}
                            Ok(Err(e)) => break End::Lost(e.to_string()),
                            Err(_) => break End::Lost("the Room stopped reading".into()),
                        }
                    }
                }
            }
        };
        resync.abort();
        end
    }

    /// Registers a request and returns its frame.
    fn enqueue(
        &mut self,
        method: &str,
        params: &Map<String, Value>,
        reply: Option<oneshot::Sender<Result<Response, RoomError>>>,
    ) -> String {
        self.next_id += 1;
        let id = format!("{ID_PREFIX}{}", self.next_id);
        let frame = encode_request(method, Some(&id), params);
        self.by_method
            .entry(method.to_owned())
            .or_default()
            .push_back(id.clone());
        self.pending.insert(
            id,
            Pending {
                method: method.to_owned(),
                reply,
            },
        );
        frame
    }

    /// Writes `first` and whatever else is already queued, then flushes once.
    async fn write_batch(
        &mut self,
        first: PendingRequest,
        commands: &mut mpsc::Receiver<PendingRequest>,
    ) -> Result<(), String> {
        let timeout = self.shared.options.request_timeout;
        let mut next = Some(first);
        let mut written = 0;
        let outcome = tokio::time::timeout(timeout, async {
            while let Some(PendingRequest {
                method,
                params,
                reply,
            }) = next.take()
            {
                let frame = self.enqueue(&method, &params, Some(reply));
                self.socket
                    .feed(Message::text(frame))
                    .await
                    .map_err(|e| e.to_string())?;
                written += 1;
                if written < WRITE_BATCH {
                    next = commands.try_recv().ok();
                }
            }
            self.socket.flush().await.map_err(|e| e.to_string())
        })
        .await;
        outcome.unwrap_or_else(|_| Err("the Room stopped reading".into()))
    }

    /// Hands an event to the broadcast subscribers and the lossless consumer. When the latter
    /// is full the event is held and the socket is not read until it is taken.
    fn deliver(&mut self, event: Arc<Event>) {
        if self.shared.events.receiver_count() > 0 {
            let _ = self.shared.events.send(event.clone());
        }
        let Ok(mut stream) = self.shared.event_stream.lock() else {
            return;
        };
        let Some(tx) = stream.as_ref() else {
            return;
        };
        match tx.try_send(event) {
            Ok(()) => {}
            Err(mpsc::error::TrySendError::Full(event)) => self.held = Some((tx.clone(), event)),
            // The consumer is gone: stop feeding it.
            Err(mpsc::error::TrySendError::Closed(_)) => *stream = None,
        }
    }

    /// Handles one text frame; returns `Some` when the session must end.
    fn on_text(&mut self, text: &str) -> Option<End> {
        match parse_incoming(text) {
            Err(error) => {
                self.shared.stats.bad_frames.fetch_add(1, Ordering::Relaxed);
                warn!(%error, "ignoring a frame from the Room");
                None
            }
            Ok(Incoming::Event(event)) => {
                let mut follow_up = false;
                let mut end = None;
                match &event.kind {
                    EventKind::AppStateChanged {
                        state: Some(AppState::Conference),
                    } => follow_up = true,
                    EventKind::AuthorizationNeeded { cause } => {
                        let text = crate::protocol::catalog()
                            .enum_text("auth_needed_causes", *cause)
                            .unwrap_or("unknown cause");
                        end = Some(End::Lost(format!(
                            "the Room revoked our authorisation: {text} (cause {cause})"
                        )));
                    }
                    _ => {}
                }
                self.shared
                    .state
                    .send_if_modified(|s| s.apply_event(&event));
                self.deliver(Arc::new(event));
                if follow_up {
                    self.follow_up_conference();
                }
                end
            }
            Ok(Incoming::Response(response)) => {
                // Only the reply to a request we sent may change the state.
                if let Some(pending) = self.take_pending(&response) {
                    self.shared
                        .state
                        .send_if_modified(|s| s.apply_response(&response));
                    if let Some(reply) = pending.reply {
                        let _ = reply.send(Ok(response));
                    }
                }
                None
            }
        }
    }

    /// When a call starts, read the conference and its participants, as the official client
    /// does (SPEC §15.1 item 7). The replies only update the state.
    fn follow_up_conference(&mut self) {
        for method in ["getConferences", "getConferenceParticipants"] {
            let frame = self.enqueue(method, &Map::new(), None);
            // Best effort: a full socket is caught by the next write or the keepalive.
            let _ = futures_util::FutureExt::now_or_never(self.socket.feed(Message::text(frame)));
        }
        let _ = futures_util::FutureExt::now_or_never(self.socket.flush());
    }

    /// The request `response` answers, taken off the books; `None` (counted) for a reply to
    /// nothing we are waiting for: a duplicate, a foreign id, or nothing of that method pending.
    fn take_pending(&mut self, response: &Response) -> Option<Pending> {
        let id = match response.request_id.as_deref() {
            Some(id) if self.pending.contains_key(id) => Some(id.to_owned()),
            // No usable id: matched by method, in order (SPEC §5.2).
            None | Some("") => self.oldest_pending(&response.method),
            Some(id) => {
                // One of ours already answered or timed out, or an id we never used.
                self.shared
                    .stats
                    .unmatched_replies
                    .fetch_add(1, Ordering::Relaxed);
                debug!(method = %response.method, %id, "dropping a reply to no request of ours");
                return None;
            }
        };
        let Some(pending) = id.as_ref().and_then(|id| self.pending.remove(id)) else {
            self.shared
                .stats
                .unmatched_replies
                .fetch_add(1, Ordering::Relaxed);
            warn!(method = %response.method, error = ?response.error_text(), "a reply matching no request");
            return None;
        };
        let id = id.unwrap_or_default();
        if let Some(queue) = self.by_method.get_mut(&pending.method) {
            if let Some(pos) = queue.iter().position(|q| q == &id) {
                queue.remove(pos);
            }
            if queue.is_empty() {
                self.by_method.remove(&pending.method);
            }
        }
        Some(pending)
    }

    /// The oldest request of `method` still waiting.
    fn oldest_pending(&mut self, method: &str) -> Option<String> {
        let queue = self.by_method.get_mut(method)?;
        while let Some(id) = queue.front() {
            if self.pending.contains_key(id) {
                return Some(id.clone());
            }
            queue.pop_front();
        }
        None
    }

    /// Fails every request in flight: the connection is gone, whether they ran is unknown.
    fn fail_pending(&mut self) {
        for (_, pending) in self.pending.drain() {
            if let Some(reply) = pending.reply {
                let _ = reply.send(Err(RoomError::ConnectionLost(format!(
                    "connection lost before the reply to {}",
                    pending.method
                ))));
            }
        }
        self.by_method.clear();
    }
}

/// Reads the whole state after a (re)connect, then reports the link online.
async fn resync(shared: Arc<ClientShared>) {
    let requests = RESYNC
        .iter()
        .map(|method| shared.request(method, Map::new()));
    for (method, outcome) in RESYNC
        .iter()
        .zip(futures_util::future::join_all(requests).await)
    {
        if let Err(error) = outcome {
            debug!(method, %error, "resync request failed");
        }
    }
    if shared.state.borrow().in_call() {
        for method in ["getConferences", "getConferenceParticipants"] {
            let _ = shared.request(method, Map::new()).await;
        }
    }
    shared.link.send_replace(LinkState::Online);
}

/// Waits until the lossless consumer has room for the held event.
async fn reserve_held(
    tx: Option<mpsc::Sender<Arc<Event>>>,
) -> Result<mpsc::OwnedPermit<Arc<Event>>, mpsc::error::SendError<()>> {
    match tx {
        Some(tx) => tx
            .reserve_owned()
            .await
            .map_err(|_| mpsc::error::SendError(())),
        None => std::future::pending().await,
    }
}
