//! The public handle of the Room client.

use std::sync::atomic::{AtomicBool, AtomicU64, Ordering};
use std::sync::{Arc, Mutex};
use std::time::Duration;

use serde_json::{Map, Value, json};
use tokio::sync::{broadcast, mpsc, oneshot, watch};
use tokio::time::Instant;
use tokio_util::sync::{CancellationToken, DropGuard};

use super::error::RoomError;
use super::limiter::{self, CredentialLimiter};
use super::session;
use super::state::RoomState;
use crate::protocol::{Device, Event, ParamError, Response, catalog, catalog::json_type_name};
use crate::secret::Secret;
use crate::supervise::Supervisor;

/// How to reach and watch over one Room.
#[derive(Debug, Clone)]
pub struct RoomOptions {
    /// Host name or address of the Room.
    pub host: String,
    /// The Room's web port that serves `config.json` (80 in TrueConf's examples).
    pub port: u16,
    /// Instance ("twin") name in `/public/<instance>/config.json`.
    pub instance: String,
    /// Skip discovery and connect to this WebSocket port.
    pub ws_port: Option<u16>,
    /// PIN or password for `secured` auth; `None` authenticates `unsecured`.
    pub pin: Option<Secret>,
    /// How long a request may wait for its reply.
    pub request_timeout: Duration,
    /// Bound on discovery + TCP connect + WebSocket handshake + auth.
    pub connect_timeout: Duration,
    /// A connection silent for this long is dead; pings and probes go out at a third of it.
    pub keepalive: Duration,
    /// First reconnect delay.
    pub reconnect_min: Duration,
    /// Largest reconnect delay.
    pub reconnect_max: Duration,
    /// Delay before retrying after the Room refused our credentials.
    pub auth_retry: Duration,
    /// What logs call this Room (the bridge sets the room id); `None`: its `host:port`.
    pub label: Option<String>,
}

impl RoomOptions {
    /// Options with the defaults for a Room at `host`, web port `port`.
    pub fn new(host: impl Into<String>, port: u16) -> RoomOptions {
        RoomOptions {
            host: host.into(),
            port,
            instance: "default".into(),
            ws_port: None,
            pin: None,
            request_timeout: Duration::from_secs(5),
            connect_timeout: Duration::from_secs(5),
            keepalive: Duration::from_secs(6),
            reconnect_min: Duration::from_millis(500),
            reconnect_max: Duration::from_secs(30),
            auth_retry: Duration::from_secs(60),
            label: None,
        }
    }

    /// Sets the PIN (builder style).
    pub fn with_pin(mut self, pin: impl Into<String>) -> RoomOptions {
        self.pin = Some(Secret::new(pin));
        self
    }
}

/// The client's view of its link to the Room.
#[derive(Debug, Clone, PartialEq, Eq)]
pub enum LinkState {
    /// Discovering, connecting or authenticating.
    Connecting,
    /// Authenticated, state resynchronised.
    Online,
    /// Not connected; a reconnect is scheduled.
    Offline {
        /// Why the last attempt or session ended.
        reason: String,
    },
    /// The Room refused our credentials; retried after `auth_retry`.
    AuthRefused {
        /// The Room's error text.
        message: String,
    },
    /// The client was shut down.
    Stopped,
}

impl LinkState {
    /// Whether the Room can take requests.
    pub fn is_online(&self) -> bool {
        matches!(self, LinkState::Online)
    }

    /// Its name in reports (`bridge/info`, `/readyz`, the systemd status line).
    pub fn name(&self) -> &'static str {
        match self {
            LinkState::Online => "online",
            LinkState::Connecting => "connecting",
            LinkState::Offline { .. } => "offline",
            LinkState::AuthRefused { .. } => "auth_refused",
            LinkState::Stopped => "stopped",
        }
    }

    /// Why the Room is not online, when there is a reason to tell.
    pub fn reason(&self) -> Option<&str> {
        match self {
            LinkState::Offline { reason } => Some(reason),
            LinkState::AuthRefused { message } => Some(message),
            _ => None,
        }
    }
}

/// Counters for health and metrics.
#[derive(Debug, Default)]
pub struct RoomStats {
    /// Successful authentications (first connect included).
    pub connects: AtomicU64,
    /// Frames from the Room that could not be parsed.
    pub bad_frames: AtomicU64,
    /// Replies that matched no request.
    pub unmatched_replies: AtomicU64,
}

/// A request on its way to the session task; its reply goes back through `reply`.
pub(crate) struct PendingRequest {
    pub(crate) method: String,
    pub(crate) params: Map<String, Value>,
    pub(crate) reply: oneshot::Sender<Result<Response, RoomError>>,
}

impl PendingRequest {
    pub(crate) fn fail(self, error: RoomError) {
        let _ = self.reply.send(Err(error));
    }
}

/// State shared by the handles and the supervisor task.
pub(crate) struct ClientShared {
    pub(crate) options: RoomOptions,
    pub(crate) commands: mpsc::Sender<PendingRequest>,
    /// Set while a session is authenticated: requests are refused at once otherwise.
    pub(crate) accepting: AtomicBool,
    pub(crate) events: broadcast::Sender<Arc<Event>>,
    /// The lossless consumer, if any ([`RoomClient::event_stream`]).
    pub(crate) event_stream: Mutex<Option<mpsc::Sender<Arc<Event>>>>,
    pub(crate) state: watch::Sender<RoomState>,
    pub(crate) link: watch::Sender<LinkState>,
    pub(crate) http_token: Mutex<Option<Secret>>,
    /// Why the last attempt or session failed, for [`RoomClient::wait_online`].
    pub(crate) last_error: Mutex<Option<RoomError>>,
    pub(crate) stats: RoomStats,
    /// Failed credential checks sent by callers ([`limiter`]).
    pub(crate) credential_checks: Mutex<CredentialLimiter>,
}

impl ClientShared {
    pub(crate) fn remember(&self, error: RoomError) {
        if let Ok(mut slot) = self.last_error.lock() {
            *slot = Some(error);
        }
    }

    /// Sends a request through the current session and waits for its reply.
    pub(crate) async fn request(
        &self,
        method: &str,
        params: Map<String, Value>,
    ) -> Result<Response, RoomError> {
        if !self.accepting.load(Ordering::Acquire) {
            return Err(RoomError::NotConnected);
        }
        // A credential check (an `auth` sent by a caller, say) is an oracle: failures are
        // rate-limited, whoever asks.
        let ticket = if catalog()
            .method(method)
            .is_some_and(|m| m.checks_credentials)
        {
            let begun = match self.credential_checks.lock() {
                Ok(mut limiter) => limiter.try_begin(Instant::now()),
                Err(_) => Err(limiter::WINDOW),
            };
            match begun {
                Ok(ticket) => Some(ticket),
                Err(retry_in) => {
                    return Err(RoomError::RateLimited {
                        method: method.to_owned(),
                        retry_in,
                    });
                }
            }
        } else {
            None
        };
        let timeout = self.options.request_timeout;
        let (reply, rx) = oneshot::channel();
        let command = PendingRequest {
            method: method.to_owned(),
            params,
            reply,
        };
        let exchange = async {
            self.commands
                .send(command)
                .await
                .map_err(|_| RoomError::Stopped)?;
            rx.await
                .unwrap_or_else(|_| Err(RoomError::ConnectionLost("session ended".into())))
        };
        let response = tokio::time::timeout(timeout, exchange)
            .await
            .map_err(|_| RoomError::Timeout {
                method: method.to_owned(),
                timeout,
            })??;
        if response.result {
            if let (Some(ticket), Ok(mut limiter)) = (ticket, self.credential_checks.lock()) {
                limiter.succeeded(ticket);
            }
            Ok(response)
        } else {
            Err(RoomError::Rejected {
                method: method.to_owned(),
                message: response
                    .error_text()
                    .unwrap_or("result: false without an error text")
                    .to_owned(),
                reply: response.fields,
            })
        }
    }
}

/// Capacity of the event fan-out; a subscriber that falls further behind is told how many it
/// missed (`RecvError::Lagged`). Preallocated per client, so kept small: a consumer that must
/// not miss events uses [`RoomClient::event_stream`] instead.
const EVENT_CAPACITY: usize = 256;
/// Requests queued towards the session task before callers wait.
const COMMAND_CAPACITY: usize = 4096;

/// An async client for one TrueConf Room: connects, authenticates, keeps the connection alive,
/// reconnects with backoff, resynchronises the state and correlates requests with replies.
///
/// Cheap to clone; the connection is shut down when [`RoomClient::close`] is called or the last
/// clone is dropped.
#[derive(Clone)]
pub struct RoomClient {
    shared: Arc<ClientShared>,
    cancel: CancellationToken,
    task: Arc<Mutex<Option<tokio::task::JoinHandle<()>>>>,
    _guard: Arc<DropGuard>,
}

impl RoomClient {
    /// Starts the client in the background; it connects and reconnects by itself. Watch
    /// [`RoomClient::link`] or call [`RoomClient::wait_online`] to know when it is usable.
    pub fn start(options: RoomOptions) -> RoomClient {
        let (commands, commands_rx) = mpsc::channel(COMMAND_CAPACITY);
        let (events, _) = broadcast::channel(EVENT_CAPACITY);
        let shared = Arc::new(ClientShared {
            options,
            commands,
            accepting: AtomicBool::new(false),
            events,
            event_stream: Mutex::new(None),
            state: watch::Sender::new(RoomState::default()),
            link: watch::Sender::new(LinkState::Connecting),
            http_token: Mutex::new(None),
            last_error: Mutex::new(None),
            stats: RoomStats::default(),
            credential_checks: Mutex::new(CredentialLimiter::default()),
        });
        let cancel = CancellationToken::new();
        // The session task is restarted if it ever fails; the failure shows as the link's
        // reason (in `/readyz` and `bridge/info`) until the next session is up.
        let name = format!(
            "room client {}:{}",
            shared.options.host, shared.options.port
        );
        let task = tokio::spawn(Supervisor::new().keep_reporting(
            name,
            cancel.clone(),
            commands_rx,
            {
                let (shared, cancel) = (shared.clone(), cancel.clone());
                move |commands| {
                    Box::pin(session::supervise(shared.clone(), commands, cancel.clone()))
                }
            },
            {
                let shared = shared.clone();
                move |why| {
                    shared.link.send_replace(LinkState::Offline {
                        reason: format!("the Room client task {why}; restarting it"),
                    });
                }
            },
        ));
        RoomClient {
            shared,
            _guard: Arc::new(cancel.clone().drop_guard()),
            cancel,
            task: Arc::new(Mutex::new(Some(task))),
        }
    }

    /// Starts the client and waits until it is online, or fails with the reason the first
    /// attempt failed (unreachable, refused PIN…). For one-shot tools like the CLI.
    pub async fn connect(options: RoomOptions) -> Result<RoomClient, RoomError> {
        let wait = options.connect_timeout + options.request_timeout;
        let client = RoomClient::start(options);
        client.wait_online(wait).await?;
        Ok(client)
    }

    /// Waits until the link is online. Fails as soon as an attempt fails, with its reason.
    pub async fn wait_online(&self, timeout: Duration) -> Result<(), RoomError> {
        let mut link = self.shared.link.subscribe();
        let outcome = tokio::time::timeout(timeout, async {
            loop {
                match &*link.borrow_and_update() {
                    LinkState::Online => return Ok(()),
                    LinkState::AuthRefused { .. } | LinkState::Offline { .. } => {
                        let last = self.shared.last_error.lock().ok().and_then(|e| e.clone());
                        return Err(last.unwrap_or(RoomError::NotConnected));
                    }
                    LinkState::Stopped => return Err(RoomError::Stopped),
                    LinkState::Connecting => {}
                }
                if link.changed().await.is_err() {
                    return Err(RoomError::Stopped);
                }
            }
        })
        .await;
        outcome.unwrap_or_else(|_| {
            Err(RoomError::Unreachable {
                addr: self.address(),
                reason: format!("not online after {} ms", timeout.as_millis()),
            })
        })
    }

    /// `host:port` of the Room, for messages.
    pub fn address(&self) -> String {
        format!("{}:{}", self.shared.options.host, self.shared.options.port)
    }

    /// The options this client runs with.
    pub fn options(&self) -> &RoomOptions {
        &self.shared.options
    }

    /// Sends an API method by name after validating `params` (a JSON object, or `null` for
    /// none) against the method table, and returns the reply's data members.
    pub async fn request(
        &self,
        method: &str,
        params: Value,
    ) -> Result<Map<String, Value>, RoomError> {
        let params = match params {
            Value::Object(map) => map,
            Value::Null => Map::new(),
            other => return Err(ParamError::NotAnObject(json_type_name(&other)).into()),
        };
        catalog().validate(method, &params)?;
        self.request_unchecked(method, params)
            .await
            .map(|r| r.data())
    }

    /// Sends a request without consulting the method table and returns the whole reply. For
    /// methods newer than the catalog, and for tests.
    pub async fn request_unchecked(
        &self,
        method: &str,
        params: Map<String, Value>,
    ) -> Result<Response, RoomError> {
        self.shared.request(method, params).await
    }

    /// Subscribes to the Room's notifications. Every event arrives, unknown ones included; a
    /// subscriber that lags more than 256 events behind is told how many it missed.
    pub fn events(&self) -> broadcast::Receiver<Arc<Event>> {
        self.shared.events.subscribe()
    }

    /// The Room's notifications without loss, for one consumer that must see them all (the
    /// bridge's publisher). When `capacity` events wait unread, the client stops reading the
    /// WebSocket until the consumer catches up, so TCP flow control slows the Room down instead
    /// of events being dropped. Replies wait behind those events too, so a consumer that stops
    /// reading for longer than the keepalive makes the link drop. A second call replaces the
    /// first stream.
    pub fn event_stream(&self, capacity: usize) -> mpsc::Receiver<Arc<Event>> {
        let (tx, rx) = mpsc::channel(capacity.max(1));
        if let Ok(mut stream) = self.shared.event_stream.lock() {
            *stream = Some(tx);
        }
        rx
    }

    /// Watches the Room state model.
    pub fn state(&self) -> watch::Receiver<RoomState> {
        self.shared.state.subscribe()
    }

    /// Watches the link state.
    pub fn link(&self) -> watch::Receiver<LinkState> {
        self.shared.link.subscribe()
    }

    /// Counters of this client.
    pub fn stats(&self) -> &RoomStats {
        &self.shared.stats
    }

    /// The token for the Room's built-in HTTP server from the last `auth` reply.
    pub fn http_token(&self) -> Option<Secret> {
        self.shared.http_token.lock().ok().and_then(|t| t.clone())
    }

    /// Closes the WebSocket cleanly and stops reconnecting. In-flight requests fail with
    /// [`RoomError::Stopped`].
    pub async fn close(&self) {
        self.cancel.cancel();
        let task = self.task.lock().ok().and_then(|mut t| t.take());
        if let Some(task) = task {
            let _ = task.await;
        }
    }

    // === Typed helpers for the common methods (all go through `request`) ===

    /// Calls a TrueConf ID, CallId or InstanceId (`call`).
    pub async fn call(&self, peer_id: &str) -> Result<(), RoomError> {
        self.request("call", json!({ "peerId": peer_id }))
            .await
            .map(drop)
    }

    /// Accepts the ringing incoming call (`accept`).
    pub async fn accept(&self) -> Result<(), RoomError> {
        self.request("accept", Value::Null).await.map(drop)
    }

    /// Declines the ringing incoming call (`reject`).
    pub async fn reject(&self) -> Result<(), RoomError> {
        self.request("reject", Value::Null).await.map(drop)
    }

    /// Leaves the call; `for_all` ends a group conference for everybody (`hangUp`).
    pub async fn hang_up(&self, for_all: bool) -> Result<(), RoomError> {
        self.request("hangUp", json!({ "forAll": for_all }))
            .await
            .map(drop)
    }

    /// Mutes or unmutes the microphone (`setMicMute`).
    pub async fn set_mic_mute(&self, mute: bool) -> Result<(), RoomError> {
        self.request("setMicMute", json!({ "mute": mute }))
            .await
            .map(drop)
    }

    /// Turns the camera off or on (`setVideoMute`).
    pub async fn set_camera_mute(&self, mute: bool) -> Result<(), RoomError> {
        self.request("setVideoMute", json!({ "mute": mute }))
            .await
            .map(drop)
    }

    /// Mutes or unmutes the speaker (`setAudioMute`).
    pub async fn set_speaker_mute(&self, mute: bool) -> Result<(), RoomError> {
        self.request("setAudioMute", json!({ "mute": mute }))
            .await
            .map(drop)
    }

    /// Whether the microphone is muted (`getMicMute`).
    pub async fn mic_muted(&self) -> Result<bool, RoomError> {
        self.get_mute("getMicMute").await
    }

    /// Whether the camera is off (`getVideoMute`).
    pub async fn camera_muted(&self) -> Result<bool, RoomError> {
        self.get_mute("getVideoMute").await
    }

    /// Whether the speaker is muted (`getAudioMute`).
    pub async fn speaker_muted(&self) -> Result<bool, RoomError> {
        self.get_mute("getAudioMute").await
    }

    async fn get_mute(&self, method: &str) -> Result<bool, RoomError> {
        let data = self.request(method, Value::Null).await?;
        data.get("mute")
            .and_then(Value::as_bool)
            .ok_or_else(|| RoomError::Rejected {
                method: method.to_owned(),
                message: "reply has no boolean 'mute'".into(),
                reply: data,
            })
    }

    /// Selects a camera (`setVideoCapturer`).
    pub async fn select_camera(&self, device: &Device) -> Result<(), RoomError> {
        self.select("setVideoCapturer", device).await
    }

    /// Selects a microphone (`setAudioCapturer`).
    pub async fn select_microphone(&self, device: &Device) -> Result<(), RoomError> {
        self.select("setAudioCapturer", device).await
    }

    /// Selects a speaker (`setAudioRenderer`).
    pub async fn select_speaker(&self, device: &Device) -> Result<(), RoomError> {
        self.select("setAudioRenderer", device).await
    }

    async fn select(&self, method: &str, device: &Device) -> Result<(), RoomError> {
        let params = json!({ "name": device.name, "description": device.description });
        self.request(method, params).await.map(drop)
    }

    /// Starts or stops a relative PTZ move: `ptzLeft`, `ptzRight`, `ptzUp`, `ptzDown`,
    /// `ptzZoomInc`, `ptzZoomDec` or `ptzStop`.
    pub async fn ptz(&self, movement: PtzMove) -> Result<(), RoomError> {
        self.request(movement.method(), Value::Null).await.map(drop)
    }

    /// Sends a chat message to a TrueConf ID (`sendMessage`).
    pub async fn send_message(&self, peer_id: &str, message: &str) -> Result<(), RoomError> {
        self.request(
            "sendMessage",
            json!({ "peerId": peer_id, "message": message }),
        )
        .await
        .map(drop)
    }

    /// Changes the main window: 1 minimised, 2 full screen (`changeWindowState`).
    pub async fn change_window_state(
        &self,
        window_state: i64,
        stay_on_top: bool,
    ) -> Result<(), RoomError> {
        let params = json!({ "windowState": window_state, "stayOnTop": stay_on_top });
        self.request("changeWindowState", params).await.map(drop)
    }

    /// Connects the Room to a TrueConf server (`connectToServer`).
    pub async fn connect_to_server(
        &self,
        server: &str,
        port: Option<u16>,
    ) -> Result<(), RoomError> {
        let mut params = json!({ "server": server });
        if let Some(port) = port {
            params["port"] = json!(port);
        }
        self.request("connectToServer", params).await.map(drop)
    }

    /// Logs a user in (`login`).
    pub async fn login(
        &self,
        login: &str,
        password: &Secret,
        encrypt_password: bool,
    ) -> Result<(), RoomError> {
        let params = json!({
            "login": login,
            "password": password.expose(),
            "encryptPassword": encrypt_password
        });
        self.request("login", params).await.map(drop)
    }
}

/// Relative camera moves.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum PtzMove {
    /// Pan left.
    Left,
    /// Pan right.
    Right,
    /// Tilt up.
    Up,
    /// Tilt down.
    Down,
    /// Zoom in.
    ZoomIn,
    /// Zoom out.
    ZoomOut,
    /// Stop moving.
    Stop,
}

impl PtzMove {
    /// Every move, for discovery and parsing.
    pub const ALL: [PtzMove; 7] = [
        PtzMove::Left,
        PtzMove::Right,
        PtzMove::Up,
        PtzMove::Down,
        PtzMove::ZoomIn,
        PtzMove::ZoomOut,
        PtzMove::Stop,
    ];

    /// The API method for this move.
    pub fn method(self) -> &'static str {
        match self {
            PtzMove::Left => "ptzLeft",
            PtzMove::Right => "ptzRight",
            PtzMove::Up => "ptzUp",
            PtzMove::Down => "ptzDown",
            PtzMove::ZoomIn => "ptzZoomInc",
            PtzMove::ZoomOut => "ptzZoomDec",
            PtzMove::Stop => "ptzStop",
        }
    }

    /// The lower-case word used on MQTT (`left`, `right`, `up`, `down`, `zoom_in`, `zoom_out`,
    /// `stop`).
    pub fn as_str(self) -> &'static str {
        match self {
            PtzMove::Left => "left",
            PtzMove::Right => "right",
            PtzMove::Up => "up",
            PtzMove::Down => "down",
            PtzMove::ZoomIn => "zoom_in",
            PtzMove::ZoomOut => "zoom_out",
            PtzMove::Stop => "stop",
        }
    }

    /// Parses the MQTT word.
    pub fn parse(word: &str) -> Option<PtzMove> {
        PtzMove::ALL
            .into_iter()
            .find(|m| m.as_str().eq_ignore_ascii_case(word.trim()))
    }
}
