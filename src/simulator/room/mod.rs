//! One simulated Room at run time: its machine, its connections and its fault knobs.
//!
//! All of a room's mutable state sits behind one `std::sync::Mutex`. Every frame is handled
//! start to finish while holding it — parse outside, then decide, serialise the reply, and
//! `try_send` the reply and the resulting events into the bounded per-connection queues — and the
//! lock is never held across an `.await`. Holding the lock while queueing is what makes the order
//! "reply first, then its events" hold for every connection, and what keeps events of two
//! sources (a request and an injected incoming call) from interleaving halfway.
//!
//! A connection whose queue is full is not waited for: it is dropped (its socket closed), the way
//! a server sheds a client that stopped reading. Nothing here allocates per room except on
//! demand, so a thousand idle rooms cost a thousand idle listeners and nothing more.
//!
//! Who may send what — `auth`, the admin and user modes, `setUsedApiVersion` — is in `auth`.

mod auth;

use std::collections::{HashMap, VecDeque};
use std::net::SocketAddr;
use std::sync::atomic::{AtomicBool, AtomicU64, Ordering};
use std::sync::{Arc, Mutex, MutexGuard, PoisonError, Weak};
use std::time::Duration;

use serde_json::{Map, Value, json};
use tokio::net::TcpListener;
use tokio::sync::{mpsc, watch};
use tokio::task::JoinHandle;
use tokio::time::Instant;
use tokio_tungstenite::tungstenite::{Message, Utf8Bytes};
use tokio_util::sync::CancellationToken;

use crate::protocol::{Event, MAX_FRAME_BYTES, redact};

use super::listener::SocketCount;
use super::machine::{Effects, Machine, SimSnapshot, Timer, error_reply, error_text};
use super::{GarbageKind, SimConfig};

use auth::Mode;

/// Identifies one WebSocket connection of a room.
pub(crate) type ConnId = u64;

/// Requests kept for `requests_received` (oldest dropped first)…
pub(crate) const LOG_CAPACITY: usize = 10_000;
/// …and at most this many bytes of them (measured as received).
const LOG_MAX_BYTES: usize = 32 << 20;

/// Frames queued for one connection before it counts as "not reading" and is dropped.
pub(crate) const OUTBOUND_QUEUE: usize = 8_192;

/// A frame waiting in a connection's queue. `not_before` implements the reply-delay fault: the
/// writer holds the frame (and everything queued behind it) until then.
#[derive(Debug)]
pub(crate) struct Outbound {
    pub msg: Message,
    pub not_before: Option<Instant>,
}

struct Conn {
    tx: mpsc::Sender<Outbound>,
    kill: CancellationToken,
    mode: Option<Mode>,
    last_reply: Option<Utf8Bytes>,
}

/// The mutable part of a room.
pub(crate) struct RoomState {
    pub machine: Machine,
    conns: HashMap<ConnId, Conn>,
    owners: [Option<ConnId>; 2],
    log: VecDeque<(Value, usize)>,
    log_bytes: usize,
    requests_total: u64,
    /// Half-open fault: nothing is queued for any connection.
    frozen: bool,
}

impl RoomState {
    fn new(machine: Machine) -> RoomState {
        RoomState {
            machine,
            conns: HashMap::new(),
            owners: [None, None],
            log: VecDeque::new(),
            log_bytes: 0,
            requests_total: 0,
            frozen: false,
        }
    }

    fn is_authorised(&self, id: ConnId) -> bool {
        self.conns.get(&id).is_some_and(|c| c.mode.is_some())
    }

    fn authenticated(&self) -> usize {
        self.conns.values().filter(|c| c.mode.is_some()).count()
    }

    /// Queues a frame for one connection; a connection that cannot take it is dropped.
    fn send(&mut self, id: ConnId, out: Outbound) {
        if self.frozen {
            return;
        }
        let Some(conn) = self.conns.get(&id) else {
            return;
        };
        if conn.tx.try_send(out).is_err() {
            self.remove(id);
        }
    }

    /// Queues a frame for every authorised connection.
    fn broadcast(&mut self, text: &Utf8Bytes) {
        if self.frozen {
            return;
        }
        let mut dead = Vec::new();
        for (id, conn) in &self.conns {
            if conn.mode.is_none() {
                continue;
            }
            let out = Outbound {
                msg: Message::Text(text.clone()),
                not_before: None,
            };
            if conn.tx.try_send(out).is_err() {
                dead.push(*id);
            }
        }
        for id in dead {
            self.remove(id);
        }
    }

    fn broadcast_events(&mut self, events: &[Event]) {
        for event in events {
            let text = encode(&event.fields);
            self.broadcast(&text);
        }
    }

    /// Forgets a connection and closes its socket (no close frame).
    fn remove(&mut self, id: ConnId) {
        if let Some(conn) = self.conns.remove(&id) {
            conn.kill.cancel();
        }
        for owner in &mut self.owners {
            if *owner == Some(id) {
                *owner = None;
            }
        }
    }

    fn remove_all(&mut self) {
        let ids: Vec<ConnId> = self.conns.keys().copied().collect();
        for id in ids {
            self.remove(id);
        }
    }

    fn log_request(&mut self, request: Value, size: usize) {
        self.log_bytes += size;
        self.log.push_back((request, size));
        while self.log.len() > LOG_CAPACITY || self.log_bytes > LOG_MAX_BYTES {
            match self.log.pop_front() {
                Some((_, size)) => self.log_bytes -= size,
                None => break,
            }
        }
    }
}

fn object(value: Value) -> Map<String, Value> {
    match value {
        Value::Object(map) => map,
        _ => Map::new(),
    }
}

/// Serialises a frame once; the bytes are shared by every connection that gets it.
pub(crate) fn encode(fields: &Map<String, Value>) -> Utf8Bytes {
    Utf8Bytes::from(serde_json::to_string(fields).unwrap_or_default())
}

/// Listener tasks of a running room.
#[derive(Default)]
struct Lifecycle {
    stop: CancellationToken,
    tasks: Vec<JoinHandle<()>>,
}

/// One room, shared by its handle, its listeners and its connections.
pub(crate) struct RoomCore {
    pub config: SimConfig,
    pub http_port: u16,
    pub ws_port: u16,
    state: Mutex<RoomState>,
    changes: watch::Sender<u64>,
    half_open: watch::Sender<bool>,
    reply_delay_us: AtomicU64,
    refuse_auth: AtomicBool,
    running: AtomicBool,
    next_conn: AtomicU64,
    pub ws_sockets: Arc<SocketCount>,
    pub http_sockets: Arc<SocketCount>,
    runtime: tokio::runtime::Handle,
    lifecycle: Mutex<Lifecycle>,
    /// Serialises stop/restart.
    pub admin: tokio::sync::Mutex<()>,
}

/// Simultaneous WebSocket connections per room.
const MAX_WS_SOCKETS: usize = 256;
/// Simultaneous HTTP requests per room.
const MAX_HTTP_SOCKETS: usize = 64;

impl RoomCore {
    pub fn new(config: SimConfig, http_port: u16, ws_port: u16, machine: Machine) -> RoomCore {
        RoomCore {
            config,
            http_port,
            ws_port,
            state: Mutex::new(RoomState::new(machine)),
            changes: watch::Sender::new(0),
            half_open: watch::Sender::new(false),
            reply_delay_us: AtomicU64::new(0),
            refuse_auth: AtomicBool::new(false),
            running: AtomicBool::new(false),
            next_conn: AtomicU64::new(1),
            ws_sockets: SocketCount::new(MAX_WS_SOCKETS),
            http_sockets: SocketCount::new(MAX_HTTP_SOCKETS),
            runtime: tokio::runtime::Handle::current(),
            lifecycle: Mutex::new(Lifecycle::default()),
            admin: tokio::sync::Mutex::new(()),
        }
    }

    pub fn lock(&self) -> MutexGuard<'_, RoomState> {
        // A panic while holding the lock cannot leave the state half-updated in a way that
        // matters to a test double; keep serving instead of poisoning every later call.
        self.state.lock().unwrap_or_else(PoisonError::into_inner)
    }

    fn bump(&self) {
        self.changes.send_modify(|v| *v = v.wrapping_add(1));
    }

    pub fn subscribe(&self) -> watch::Receiver<u64> {
        self.changes.subscribe()
    }

    pub fn half_open_watch(&self) -> watch::Receiver<bool> {
        self.half_open.subscribe()
    }

    pub fn set_half_open(&self, on: bool) {
        self.lock().frozen = on;
        self.half_open.send_replace(on);
        self.bump();
    }

    pub fn set_reply_delay(&self, delay: Duration) {
        let us = u64::try_from(delay.as_micros()).unwrap_or(u64::MAX);
        self.reply_delay_us.store(us, Ordering::Relaxed);
    }

    fn reply_delay(&self) -> Option<Duration> {
        match self.reply_delay_us.load(Ordering::Relaxed) {
            0 => None,
            us => Some(Duration::from_micros(us)),
        }
    }

    pub fn set_refuse_auth(&self, refuse: bool) {
        self.refuse_auth.store(refuse, Ordering::Relaxed);
    }

    pub fn is_running(&self) -> bool {
        self.running.load(Ordering::Acquire)
    }

    pub fn http_token_valid(&self, token: &str) -> bool {
        self.lock().machine.tokens.http_valid(token)
    }

    /// Adds an accepted WebSocket connection (not yet authorised).
    pub fn register(&self, tx: mpsc::Sender<Outbound>, kill: CancellationToken) -> ConnId {
        let id = self.next_conn.fetch_add(1, Ordering::Relaxed);
        self.lock().conns.insert(
            id,
            Conn {
                tx,
                kill,
                mode: None,
                last_reply: None,
            },
        );
        self.bump();
        id
    }

    pub fn unregister(&self, id: ConnId) {
        self.lock().remove(id);
        self.bump();
    }

    /// Handles one text frame of connection `id`.
    pub fn on_text(self: &Arc<Self>, id: ConnId, text: &str) {
        let not_before = self
            .reply_delay()
            .and_then(|d| Instant::now().checked_add(d));
        let Ok(Value::Object(mut request)) = serde_json::from_str::<Value>(text) else {
            // SPEC §5.3 [I]: no method or requestId to echo.
            let reply = object(json!({"result": false, "error": error_text::INVALID_JSON}));
            let mut st = self.lock();
            st.requests_total += 1;
            st.send(
                id,
                Outbound {
                    msg: Message::Text(encode(&reply)),
                    not_before,
                },
            );
            drop(st);
            self.bump();
            return;
        };
        let sent_id = request.remove("requestId");
        let request_id = sent_id.clone().unwrap_or_else(|| json!(""));
        let method = request.remove("method");
        let mut timers = Vec::new();
        {
            let mut st = self.lock();
            st.requests_total += 1;
            let mut kicks = Vec::new();
            let mut events = Vec::new();
            let reply = match method.as_ref().and_then(Value::as_str) {
                None => error_reply(method.clone(), request_id, error_text::UNKNOWN_METHOD),
                Some("auth") => {
                    let refuse = self.refuse_auth.load(Ordering::Relaxed);
                    let (reply, k) =
                        st.auth(id, request_id, &request, self.config.pin.as_deref(), refuse);
                    kicks = k;
                    reply
                }
                Some("setUsedApiVersion") => st.set_api_version(request_id, &request),
                Some(_) if !st.is_authorised(id) => {
                    // SPEC §15.1.3: answer, keep the socket open.
                    error_reply(method.clone(), request_id, error_text::NOT_AUTHORIZED)
                }
                Some(name) => {
                    let (reply, effects) = st.machine.request(name, request_id, &request);
                    events = effects.events;
                    timers = effects.timers;
                    reply
                }
            };
            let is_auth = method.as_ref().and_then(Value::as_str) == Some("auth");
            if let Some(m) = method {
                request.insert("method".into(), m);
            }
            if let Some(rid) = sent_id {
                request.insert("requestId".into(), rid);
            }
            let logged = Value::Object(request);
            let logged = if is_auth { redact(&logged) } else { logged };
            st.log_request(logged, text.len());

            let reply_text = encode(&reply);
            if let Some(conn) = st.conns.get_mut(&id) {
                conn.last_reply = Some(reply_text.clone());
            }
            st.send(
                id,
                Outbound {
                    msg: Message::Text(reply_text),
                    not_before,
                },
            );
            for (target, event) in kicks {
                let out = Outbound {
                    msg: Message::Text(encode(&event.fields)),
                    not_before: None,
                };
                st.send(target, out);
            }
            st.broadcast_events(&events);
        }
        self.bump();
        self.spawn_timers(timers);
    }

    /// Runs `f` on the machine under the lock and delivers what it returns, atomically.
    pub fn with_machine<T>(
        self: &Arc<Self>,
        f: impl FnOnce(&mut Machine) -> Result<Effects, T>,
    ) -> Result<(), T> {
        let timers = {
            let mut st = self.lock();
            let effects = f(&mut st.machine)?;
            st.broadcast_events(&effects.events);
            effects.timers
        };
        self.bump();
        self.spawn_timers(timers);
        Ok(())
    }

    fn spawn_timers(self: &Arc<Self>, timers: Vec<Timer>) {
        for timer in timers {
            let room: Weak<RoomCore> = Arc::downgrade(self);
            self.runtime.spawn(async move {
                tokio::time::sleep(timer.after).await;
                if let Some(room) = room.upgrade() {
                    room.with_machine::<()>(|m| Ok(m.fire(&timer))).ok();
                }
            });
        }
    }

    pub fn emit_raw(&self, frame: &Value) {
        let text = Utf8Bytes::from(frame.to_string());
        self.lock().broadcast(&text);
    }

    pub fn send_garbage(&self, kind: GarbageKind) {
        let mut st = self.lock();
        let frame = match kind {
            GarbageKind::NotJson => Some(Message::text("this is not JSON {")),
            GarbageKind::Binary => Some(Message::binary(vec![0x00, 0xff, b'{', b'}', 0x80])),
            GarbageKind::Huge => {
                let filler = "x".repeat(MAX_FRAME_BYTES + 1024);
                let text = format!(r#"{{"method":"event","event":"myEvent","data":"{filler}"}}"#);
                Some(Message::text(text))
            }
            GarbageKind::UnknownRequestId => {
                let id = json!(format!("sim-unknown-{:08x}", fastrand::u32(..)));
                let (reply, _) = st.machine.request("getAppState", id, &Map::new());
                Some(Message::Text(encode(&reply)))
            }
            GarbageKind::DuplicateReply => None,
        };
        let ids: Vec<ConnId> = st
            .conns
            .iter()
            .filter(|(_, c)| c.mode.is_some())
            .map(|(id, _)| *id)
            .collect();
        for id in ids {
            let msg = match &frame {
                Some(m) => m.clone(),
                None => match st.conns.get(&id).and_then(|c| c.last_reply.clone()) {
                    Some(text) => Message::Text(text),
                    None => continue,
                },
            };
            st.send(
                id,
                Outbound {
                    msg,
                    not_before: None,
                },
            );
        }
    }

    /// Senders of all authorised connections (for the paced event flood).
    pub fn authorised_senders(&self) -> Vec<(ConnId, mpsc::Sender<Outbound>)> {
        let st = self.lock();
        if st.frozen {
            return Vec::new();
        }
        st.conns
            .iter()
            .filter(|(_, c)| c.mode.is_some())
            .map(|(id, c)| (*id, c.tx.clone()))
            .collect()
    }

    pub fn drop_connection(&self, id: ConnId) {
        self.lock().remove(id);
        self.bump();
    }

    pub fn drop_connections(&self) {
        self.lock().remove_all();
        self.bump();
    }

    pub fn authenticated_connections(&self) -> usize {
        self.lock().authenticated()
    }

    pub fn requests_received(&self) -> Vec<Value> {
        self.lock().log.iter().map(|(r, _)| r.clone()).collect()
    }

    pub fn snapshot(&self) -> SimSnapshot {
        let st = self.lock();
        let mut snapshot = st.machine.snapshot();
        snapshot.authenticated_connections = st.authenticated();
        snapshot.requests_total = st.requests_total;
        snapshot.running = self.is_running();
        snapshot
    }

    /// Starts the accept loops on bound listeners.
    pub fn launch(self: &Arc<Self>, http: TcpListener, ws: TcpListener) {
        let stop = CancellationToken::new();
        let tasks = vec![
            self.runtime.spawn(super::http::accept_loop(
                Arc::clone(self),
                http,
                stop.clone(),
            )),
            self.runtime.spawn(super::connection::accept_loop(
                Arc::clone(self),
                ws,
                stop.clone(),
            )),
        ];
        *self
            .lifecycle
            .lock()
            .unwrap_or_else(PoisonError::into_inner) = Lifecycle { stop, tasks };
        self.running.store(true, Ordering::Release);
        self.bump();
    }

    /// Cancels listeners and connections at once, without waiting (used on drop).
    pub fn shutdown_now(&self) {
        let lifecycle = self
            .lifecycle
            .lock()
            .unwrap_or_else(PoisonError::into_inner);
        lifecycle.stop.cancel();
        drop(lifecycle);
        self.running.store(false, Ordering::Release);
        self.lock().remove_all();
    }

    /// Closes listeners and connections and waits until the listening sockets are gone.
    pub async fn stop(&self) {
        let lifecycle = std::mem::take(
            &mut *self
                .lifecycle
                .lock()
                .unwrap_or_else(PoisonError::into_inner),
        );
        lifecycle.stop.cancel();
        self.running.store(false, Ordering::Release);
        self.lock().remove_all();
        for task in lifecycle.tasks {
            let _ = task.await;
        }
        self.bump();
    }

    /// Replaces the machine by a fresh one in the start state (restart).
    pub fn reset_machine(&self) {
        let mut st = self.lock();
        let profile = st.machine.profile().clone();
        st.machine = Machine::new(profile);
    }

    pub fn addr(&self, port: u16) -> SocketAddr {
        SocketAddr::new(self.config.bind, port)
    }
}

#[cfg(test)]
mod tests {
    use super::*;
    use crate::simulator::machine::{Profile, StartState};

    pub(super) fn state(pin: Option<&str>) -> RoomState {
        RoomState::new(Machine::new(Profile {
            server: "sim.trueconf.local".into(),
            server_port: 4307,
            peer_id: "room@sim.trueconf.local".into(),
            peer_dn: "Meeting Room".into(),
            start: StartState::LoggedIn,
            answer_delay: Duration::from_millis(1),
            http_port: 8766,
            secured: pin.is_some(),
        }))
    }

    pub(super) fn conn(st: &mut RoomState, id: ConnId) -> mpsc::Receiver<Outbound> {
        let (tx, rx) = mpsc::channel(4);
        st.conns.insert(
            id,
            Conn {
                tx,
                kill: CancellationToken::new(),
                mode: None,
                last_reply: None,
            },
        );
        rx
    }

    pub(super) fn params(v: Value) -> Map<String, Value> {
        object(v)
    }

    #[test]
    fn full_queue_drops_the_connection() {
        let mut st = state(None);
        let _rx = conn(&mut st, 1);
        st.conns.get_mut(&1).unwrap().mode = Some(Mode::Admin);
        let text = Utf8Bytes::from("{}");
        for _ in 0..5 {
            st.broadcast(&text);
        }
        assert!(
            st.conns.is_empty(),
            "a client that does not read is dropped"
        );
    }

    #[test]
    fn request_log_is_bounded_by_count_and_bytes() {
        let mut st = state(None);
        for i in 0..LOG_CAPACITY + 5 {
            st.log_request(json!(i), 10);
        }
        assert_eq!(st.log.len(), LOG_CAPACITY);
        assert_eq!(st.log.front().unwrap().0, json!(5));
        for _ in 0..40 {
            st.log_request(json!("big"), 1 << 20);
        }
        assert!(st.log_bytes <= LOG_MAX_BYTES);
        assert_eq!(st.log.back().unwrap().0, json!("big"));
    }
}
