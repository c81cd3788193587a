//! A simulated TrueConf Room: a stand-in for the real thing in tests, benchmarks and demos.
//!
//! A real Room is a Windows/Linux desktop application with a camera attached; nobody can run a
//! thousand of them in CI. The simulator speaks the same wire protocol (`protocol/SPEC.md`) —
//! `config.json` discovery over HTTP, `auth`, flat JSON requests and replies, notifications —
//! and keeps a real application state machine behind it (`appState` 0–6, calls, conferences,
//! mute, devices, PTZ, settings), so a client sees the same flows it would see on a Room.
//!
//! It also does what a real Room does not do on demand: scripted life (an incoming call, a
//! participant joining, a chat message) and faults (dropped sockets, a half-open connection that
//! swallows everything, slow replies, garbage frames, refused logins, event floods).
//!
//! Where the SPEC marks behaviour as inferred (`[I]`), the simulator follows its recommendation and
//! says so in a comment; texts of error replies are in [`error_text`].
//!
//! Layout: `machine` holds the pure state machine (split by concern: replies, calls, devices,
//! scripted life, tokens), `room` the per-room shared state (and `room::auth`, who may talk),
//! `connection` and `http` the network sides (`socket`: tuned or, by default, untuned writes),
//! `control` the CLI entry point ([`run`]).

mod connection;
mod control;
mod http;
mod listener;
mod machine;
mod room;
mod socket;

use std::io;
use std::net::{IpAddr, Ipv4Addr};
use std::str::FromStr;
use std::sync::Arc;
use std::time::Duration;

use serde_json::{Value, json};
use tokio::net::TcpListener;
use tokio::time::Instant;
use tokio_tungstenite::tungstenite::Message;

pub use control::{SimulateOptions, run};
pub use machine::{DeviceKind, PtzPosition, SimSnapshot, StartState, error_text};

use machine::{Machine, Profile};
use room::{Outbound, RoomCore};

/// Configuration of one simulated Room.
#[derive(Debug, Clone)]
pub struct SimConfig {
    /// The PIN clients must send as `secured` credentials; `None` runs the Room unsecured
    /// (then `unsecured` auth is accepted).
    pub pin: Option<String>,
    /// Address to listen on.
    pub bind: IpAddr,
    /// Port of the web server serving `config.json` and `/frames/`; 0 picks a free port.
    pub http_port: u16,
    /// Port of the WebSocket API; 0 picks a free port.
    pub ws_port: u16,
    /// How long a simulated callee takes to answer (or decline) an outgoing call, and
    /// conference invitees to join.
    pub answer_delay: Duration,
    /// State at start and after [`SimRoom::restart`].
    pub start: StartState,
    /// The TrueConf server the Room is connected to at start.
    pub server: String,
    /// The TrueConf ID logged in at start.
    pub peer_id: String,
    /// The display name of that account.
    pub display_name: String,
    /// Tune the WebSocket socket like a latency-minded server (`TCP_NODELAY`, frames batched
    /// into one write). Off by default: the simulator then behaves like a server that tunes
    /// nothing — Nagle on, every frame written as it comes, header and payload separately — so
    /// that clients are tested against the worst a real Room may do.
    pub tuned: bool,
}

impl Default for SimConfig {
    fn default() -> SimConfig {
        SimConfig {
            pin: None,
            bind: IpAddr::V4(Ipv4Addr::LOCALHOST),
            http_port: 0,
            ws_port: 0,
            answer_delay: Duration::from_millis(50),
            start: StartState::LoggedIn,
            server: "sim.trueconf.local".into(),
            peer_id: "room@sim.trueconf.local".into(),
            display_name: "Meeting Room".into(),
            tuned: false,
        }
    }
}

/// Kinds of malformed or unexpected frames [`SimRoom::send_garbage`] can send.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum GarbageKind {
    /// A text frame that is not JSON.
    NotJson,
    /// A binary frame.
    Binary,
    /// A valid JSON text frame larger than [`crate::protocol::MAX_FRAME_BYTES`].
    Huge,
    /// A `getAppState` reply with a `requestId` nobody sent.
    UnknownRequestId,
    /// The last reply of each connection, once more.
    DuplicateReply,
}

impl FromStr for GarbageKind {
    type Err = String;

    /// Parses `nonjson`, `binary`, `huge`, `unknownid` or `duplicate`.
    fn from_str(text: &str) -> Result<GarbageKind, String> {
        match text.to_ascii_lowercase().as_str() {
            "nonjson" | "text" | "notjson" => Ok(GarbageKind::NotJson),
            "binary" => Ok(GarbageKind::Binary),
            "huge" => Ok(GarbageKind::Huge),
            "unknownid" | "unknown-id" | "unknown" => Ok(GarbageKind::UnknownRequestId),
            "duplicate" | "dup" => Ok(GarbageKind::DuplicateReply),
            other => Err(format!(
                "unknown garbage kind '{other}' (nonjson|binary|huge|unknownid|duplicate)"
            )),
        }
    }
}

/// Why a scripted-life injector could not run.
#[derive(Debug, Clone, PartialEq, Eq, thiserror::Error)]
pub enum SimError {
    /// The Room is not in a state where this can happen (e.g. a hang-up with no call).
    #[error("not possible now: {0}")]
    NotAvailable(String),
    /// The participant or device does not exist.
    #[error("not found: {0}")]
    NotFound(String),
    /// The arguments make no sense (duplicate participant, empty device name…).
    #[error("invalid: {0}")]
    Invalid(String),
}

/// [`SimRoom::wait_for`] gave up; carries the last snapshot for the assertion message.
#[derive(Debug, Clone, thiserror::Error)]
#[error("condition not met in time; last state: {0:?}")]
pub struct WaitTimeout(pub Box<SimSnapshot>);

/// Handle to one running simulated Room. Cheap to clone; the Room shuts down (listeners and
/// connections closed) when the last clone is dropped.
#[derive(Clone)]
pub struct SimRoom {
    shared: Arc<RoomCore>,
    _owner: Arc<Owner>,
}

/// Stops the room when the last handle goes away.
struct Owner(Arc<RoomCore>);

impl Drop for Owner {
    fn drop(&mut self) {
        self.0.shutdown_now();
    }
}

async fn bind(config: &SimConfig, port: u16) -> io::Result<TcpListener> {
    TcpListener::bind((config.bind, port)).await
}

/// Binds a port that was just released; the old socket may take a moment to disappear.
async fn rebind(config: &SimConfig, port: u16) -> io::Result<TcpListener> {
    let mut attempt = 0;
    loop {
        match bind(config, port).await {
            Err(e) if e.kind() == io::ErrorKind::AddrInUse && attempt < 50 => {
                attempt += 1;
                tokio::time::sleep(Duration::from_millis(20)).await;
            }
            other => return other,
        }
    }
}

/// The ports of room `index` (0-based) when `n` rooms start from the same base ports: both
/// ranges advance by one per room, or by a larger step when the ranges would overlap (e.g.
/// 8766/8765 → step 2). A base of 0 means free ports for every room.
fn port_pair(http: u16, ws: u16, n: usize, index: usize) -> io::Result<(u16, u16)> {
    let invalid = |msg: String| io::Error::new(io::ErrorKind::InvalidInput, msg);
    if http != 0 && http == ws {
        return Err(invalid(format!("http and ws port are both {http}")));
    }
    let n = u32::try_from(n).map_err(|_| invalid("too many rooms".into()))?;
    let distance = u32::from(http.abs_diff(ws));
    let step = if http == 0 || ws == 0 || distance >= n {
        1
    } else {
        distance + 1
    };
    let at = |base: u16| -> io::Result<u16> {
        if base == 0 {
            return Ok(0);
        }
        let index = u32::try_from(index).map_err(|_| invalid("too many rooms".into()))?;
        u16::try_from(u32::from(base) + index * step)
            .map_err(|_| invalid(format!("room {} would need a port above 65535", index + 1)))
    };
    Ok((at(http)?, at(ws)?))
}

impl SimRoom {
    /// Binds both ports and starts serving.
    pub async fn start(config: SimConfig) -> io::Result<SimRoom> {
        let mut config = config;
        config.pin = config.pin.filter(|p| !p.is_empty());
        let http = bind(&config, config.http_port).await?;
        let ws = bind(&config, config.ws_port).await?;
        let http_port = http.local_addr()?.port();
        let ws_port = ws.local_addr()?.port();
        let profile = Profile {
            server: config.server.clone(),
            server_port: 4307,
            peer_id: config.peer_id.clone(),
            peer_dn: config.display_name.clone(),
            start: config.start,
            answer_delay: config.answer_delay,
            http_port,
            secured: config.pin.is_some(),
        };
        let shared = Arc::new(RoomCore::new(
            config,
            http_port,
            ws_port,
            Machine::new(profile),
        ));
        shared.launch(http, ws);
        Ok(SimRoom {
            _owner: Arc::new(Owner(Arc::clone(&shared))),
            shared,
        })
    }

    /// Starts `n` rooms from one base configuration. Ports follow [`SimulateOptions`]'s rule
    /// (consecutive from the base ports, or free ports for a base of 0). Room *i* (1-based,
    /// from 2 on) gets the TrueConf ID `room<i>@…` and the display name `"… <i>"`.
    pub async fn start_many(n: usize, base: SimConfig) -> io::Result<Vec<SimRoom>> {
        let mut rooms = Vec::with_capacity(n);
        for index in 0..n {
            let (http_port, ws_port) = port_pair(base.http_port, base.ws_port, n, index)?;
            let mut config = SimConfig {
                http_port,
                ws_port,
                ..base.clone()
            };
            if index > 0 {
                let number = index + 1;
                config.peer_id = match base.peer_id.split_once('@') {
                    Some((user, server)) => format!("{user}{number}@{server}"),
                    None => format!("{}{number}", base.peer_id),
                };
                config.display_name = format!("{} {number}", base.display_name);
            }
            rooms.push(SimRoom::start(config).await?);
        }
        Ok(rooms)
    }

    /// Port of the web server (`config.json`, `/frames/`).
    pub fn http_port(&self) -> u16 {
        self.shared.http_port
    }

    /// Port of the WebSocket API.
    pub fn ws_port(&self) -> u16 {
        self.shared.ws_port
    }

    /// `ws://<bind>:<ws_port>`, the URL clients connect to.
    pub fn ws_url(&self) -> String {
        format!("ws://{}", self.shared.addr(self.shared.ws_port))
    }

    /// The Room's state now.
    pub fn snapshot(&self) -> SimSnapshot {
        self.shared.snapshot()
    }

    /// Waits until `condition` holds for the Room's state (checked after every change), or
    /// `timeout` passes.
    pub async fn wait_for(
        &self,
        condition: impl Fn(&SimSnapshot) -> bool,
        timeout: Duration,
    ) -> Result<SimSnapshot, WaitTimeout> {
        let far_future = Duration::from_secs(100 * 365 * 24 * 3600);
        let deadline = Instant::now() + timeout.min(far_future);
        let mut changes = self.shared.subscribe();
        loop {
            changes.borrow_and_update();
            let snapshot = self.snapshot();
            if condition(&snapshot) {
                return Ok(snapshot);
            }
            match tokio::time::timeout_at(deadline, changes.changed()).await {
                Ok(Ok(())) => {}
                _ => return Err(WaitTimeout(Box::new(self.snapshot()))),
            }
        }
    }

    /// Someone calls the Room (PeerId and display name; an empty name is derived from the id).
    pub fn incoming_call(&self, peer_id: &str, peer_dn: &str) -> Result<(), SimError> {
        self.shared
            .with_machine(|m| m.incoming_call(peer_id, peer_dn))
    }

    /// The caller of the ringing incoming call hangs up before it was answered.
    pub fn caller_gives_up(&self) -> Result<(), SimError> {
        self.shared.with_machine(Machine::caller_gives_up)
    }

    /// The remote side ends the running call or conference.
    pub fn remote_hangup(&self) -> Result<(), SimError> {
        self.shared.with_machine(Machine::remote_hangup)
    }

    /// A participant joins the running conference.
    pub fn participant_joins(&self, peer_id: &str, peer_dn: &str) -> Result<(), SimError> {
        self.shared
            .with_machine(|m| m.participant_joins(peer_id, peer_dn))
    }

    /// A participant leaves the running conference.
    pub fn participant_leaves(&self, peer_id: &str) -> Result<(), SimError> {
        self.shared.with_machine(|m| m.participant_leaves(peer_id))
    }

    /// A chat message from `peer_id` arrives (`incomingChatMessage`).
    pub fn chat_message(&self, peer_id: &str, text: &str) -> Result<(), SimError> {
        self.shared
            .with_machine(|m| Ok(m.chat_message(peer_id, text)))
    }

    /// The conference owner mutes (or unmutes) our microphone.
    pub fn owner_mutes_mic(&self, mute: bool) -> Result<(), SimError> {
        self.shared.with_machine(|m| m.owner_mutes_mic(mute))
    }

    /// Someone at the Room saves the camera position as a new preset
    /// (`videoCapturerPresetAdded`).
    pub fn room_saves_preset(&self) -> Result<(), SimError> {
        self.shared.with_machine(Machine::room_saves_preset)
    }

    /// Someone at the Room applies a preset (its number from 1, or its id).
    pub fn room_applies_preset(&self, preset: &str) -> Result<(), SimError> {
        self.shared.with_machine(|m| m.room_applies_preset(preset))
    }

    /// Someone at the Room removes a preset (its number from 1, or its id).
    pub fn room_removes_preset(&self, preset: &str) -> Result<(), SimError> {
        self.shared.with_machine(|m| m.room_removes_preset(preset))
    }

    /// Someone at the Room shares a content source (by name), or stops (`None`).
    pub fn room_shares(&self, source: Option<&str>) -> Result<(), SimError> {
        self.shared.with_machine(|m| m.room_shares(source))
    }

    /// The presenter at the Room drives the slideshow: `start`, `stop`, `next`, `prev` or a
    /// slide number from 1.
    pub fn room_slides(&self, what: &str) -> Result<(), SimError> {
        self.shared.with_machine(|m| m.room_slides(what))
    }

    /// A participant (InstanceId) asks for the podium.
    pub fn podium_request(&self, peer_id: &str) -> Result<(), SimError> {
        self.shared.with_machine(|m| m.podium_request(peer_id))
    }

    /// A participant (InstanceId) asks to control the Room's camera.
    pub fn camera_control_request(&self, peer_id: &str) -> Result<(), SimError> {
        self.shared
            .with_machine(|m| m.camera_control_request(peer_id))
    }

    /// A participant (InstanceId) asks for consent to record.
    pub fn record_request(&self, peer_id: &str) -> Result<(), SimError> {
        self.shared.with_machine(|m| m.record_request(peer_id))
    }

    /// The Room starts or stops recording.
    pub fn set_recording(&self, on: bool) -> Result<(), SimError> {
        self.shared.with_machine(|m| m.set_recording(on))
    }

    /// A device is plugged in (`hardwareChanged`).
    pub fn plug_device(&self, kind: DeviceKind, name: &str) -> Result<(), SimError> {
        self.shared.with_machine(|m| m.plug_device(kind, name))
    }

    /// A device (by name or description) is unplugged (`hardwareChanged`).
    pub fn unplug_device(&self, kind: DeviceKind, name: &str) -> Result<(), SimError> {
        self.shared.with_machine(|m| m.unplug_device(kind, name))
    }

    /// Sends `frame` as-is (serialised as JSON text) to every authorised connection.
    pub fn emit_raw(&self, frame: Value) {
        self.shared.emit_raw(&frame);
    }

    /// The last requests received (at most 10,000, oldest first), as parsed, on all
    /// connections; `auth` credentials are masked.
    pub fn requests_received(&self) -> Vec<Value> {
        self.shared.requests_received()
    }

    /// Connections that are authorised now.
    pub fn authenticated_connections(&self) -> usize {
        self.shared.authenticated_connections()
    }

    /// Closes every WebSocket connection's TCP socket at once, without a close frame.
    pub fn drop_connections(&self) {
        self.shared.drop_connections();
    }

    /// Half-open fault: while on, the Room stops polling its sockets entirely — no replies,
    /// no events, no pongs, no new handshakes or HTTP answers — but keeps them open. Events
    /// arising meanwhile are discarded, not queued.
    pub fn set_half_open(&self, on: bool) {
        self.shared.set_half_open(on);
    }

    /// Delays every reply (and whatever is queued behind it) by `delay`; zero turns it off.
    pub fn set_reply_delay(&self, delay: Duration) {
        self.shared.set_reply_delay(delay);
    }

    /// Sends a malformed or unexpected frame to every authorised connection.
    pub fn send_garbage(&self, kind: GarbageKind) {
        self.shared.send_garbage(kind);
    }

    /// While on, every `auth` fails with "Wrong credentials".
    pub fn set_refuse_auth(&self, refuse: bool) {
        self.shared.set_refuse_auth(refuse);
    }

    /// Sends `n` `myEvent` notifications (`data` = `"flood-<i>"`) to every authorised
    /// connection as fast as each one reads; a connection that does not take a frame within
    /// 5 s is dropped. Returns when all are queued.
    pub async fn flood_events(&self, n: usize) {
        const CHUNK: usize = 256;
        let mut sent = 0;
        while sent < n {
            let senders = self.shared.authorised_senders();
            if senders.is_empty() {
                return;
            }
            let end = (sent + CHUNK).min(n);
            for i in sent..end {
                let frame =
                    json!({"method": "event", "event": "myEvent", "data": format!("flood-{i}")});
                let text = tokio_tungstenite::tungstenite::Utf8Bytes::from(frame.to_string());
                for (id, tx) in &senders {
                    let out = Outbound {
                        msg: Message::Text(text.clone()),
                        not_before: None,
                    };
                    let sent_in_time = tokio::time::timeout(Duration::from_secs(5), tx.send(out))
                        .await
                        .is_ok_and(|r| r.is_ok());
                    if !sent_in_time {
                        self.shared.drop_connection(*id);
                    }
                }
            }
            sent = end;
        }
    }

    /// Closes the listeners and all connections; the Room's state is kept and visible in
    /// [`SimRoom::snapshot`]. Returns when the ports are released.
    pub async fn stop(&self) {
        let _serial = self.shared.admin.lock().await;
        self.shared.stop().await;
    }

    /// Restarts the Room on the same ports, like a restarted application: connections are
    /// dropped, the state goes back to the configured start state and issued tokens become
    /// invalid. Fault settings (reply delay, refused auth, half-open) are kept.
    pub async fn restart(&self) -> io::Result<()> {
        let _serial = self.shared.admin.lock().await;
        self.shared.stop().await;
        let config = &self.shared.config;
        let http = rebind(config, self.shared.http_port).await?;
        let ws = rebind(config, self.shared.ws_port).await?;
        self.shared.reset_machine();
        self.shared.launch(http, ws);
        Ok(())
    }
}

impl std::fmt::Debug for SimRoom {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        f.debug_struct("SimRoom")
            .field("http_port", &self.http_port())
            .field("ws_port", &self.ws_port())
            .finish_non_exhaustive()
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn port_pairs_never_collide() {
        assert_eq!(port_pair(8766, 8765, 1, 0).unwrap(), (8766, 8765));
        let pairs: Vec<_> = (0..5)
            .map(|i| port_pair(8766, 8765, 5, i).unwrap())
            .collect();
        assert_eq!(pairs[1], (8768, 8767));
        let mut all: Vec<u16> = pairs.iter().flat_map(|(a, b)| [*a, *b]).collect();
        all.sort_unstable();
        all.dedup();
        assert_eq!(all.len(), 10);
        assert_eq!(port_pair(10000, 20000, 3, 2).unwrap(), (10002, 20002));
        assert_eq!(port_pair(0, 0, 3, 2).unwrap(), (0, 0));
        assert!(port_pair(8000, 8000, 2, 0).is_err());
        assert!(port_pair(65535, 1000, 2, 1).is_err());
    }

    #[test]
    fn garbage_kinds_parse() {
        assert_eq!("huge".parse::<GarbageKind>(), Ok(GarbageKind::Huge));
        assert_eq!(
            "unknownid".parse::<GarbageKind>(),
            Ok(GarbageKind::UnknownRequestId)
        );
        assert!("nope".parse::<GarbageKind>().is_err());
    }
}
