//! The Room's application logic, with no sockets and no clocks it does not own.
//!
//! Everything a TrueConf Room *decides* lives here: which `appState` it is in, what a request
//! answers, which notifications follow and in which order. The async shell around it
//! (`room.rs`, `connection.rs`) only moves bytes. Keeping the machine pure means its flows can be
//! unit-tested request by request, and the exact event order of SPEC §7.1 is written down once.
//!
//! Things that happen "later" in a real Room (the callee answering after a few seconds) are
//! returned as [`Timer`]s; the shell sleeps and calls [`Machine::fire`]. A timer carries the
//! generation of the call it belongs to, so a call that was hung up meanwhile ignores it.

use std::collections::VecDeque;
use std::sync::atomic::{AtomicU64, Ordering};
use std::time::{Duration, Instant, SystemTime, UNIX_EPOCH};

use serde::Serialize;
use serde_json::{Map, Value, json};

use crate::protocol::catalog::{MethodSpec, ParamError, ValueType};
use crate::protocol::{AppState, Event, Participant, catalog};

use super::SimError;

/// Error texts of failed replies. The real Room's texts are unknown (SPEC §5.3); these are the
/// ones the SPEC recommends, so clients and tests can rely on them when talking to the simulator.
pub mod error_text {
    /// The method is not in the catalog.
    pub const UNKNOWN_METHOD: &str = "Unknown method";
    /// Prefix of parameter errors; the catalog's detail follows.
    pub const INVALID_PARAMETERS: &str = "Invalid parameters";
    /// The command makes no sense in the current `appState` (e.g. `accept` with nothing ringing).
    pub const NOT_AVAILABLE: &str = "Command is not available in the current state";
    /// A command other than `auth`/`setUsedApiVersion` before a successful `auth`.
    pub const NOT_AUTHORIZED: &str = "Not authorized";
    /// The frame is not a JSON object.
    pub const INVALID_JSON: &str = "Invalid JSON";
    /// `auth` with a wrong PIN/token, or `unsecured` on a secured Room.
    pub const WRONG_CREDENTIALS: &str = "Wrong credentials";
}

/// Call generations are unique across all machines of the process, so a timer of a room that
/// was restarted (new machine) can never match a call of the new machine.
static NEXT_GENERATION: AtomicU64 = AtomicU64::new(1);

fn next_generation() -> u64 {
    NEXT_GENERATION.fetch_add(1, Ordering::Relaxed)
}

/// How a simulated Room starts (and restarts).
#[derive(Debug, Clone, Copy, PartialEq, Eq, Default, Serialize)]
#[serde(rename_all = "snake_case")]
pub enum StartState {
    /// `appState` 0: not connected to a TrueConf server.
    Offline,
    /// `appState` 2: connected to the server, nobody logged in.
    Connected,
    /// `appState` 3: connected and logged in — ready to call.
    #[default]
    LoggedIn,
}

/// Which `getHardware` list a device belongs to.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Serialize)]
#[serde(rename_all = "snake_case")]
pub enum DeviceKind {
    /// `videoCapturers`.
    Camera,
    /// `audioCapturers`.
    Microphone,
    /// `audioRenderers`.
    Speaker,
}

impl DeviceKind {
    fn index(self) -> usize {
        match self {
            DeviceKind::Camera => 0,
            DeviceKind::Microphone => 1,
            DeviceKind::Speaker => 2,
        }
    }

    /// Parses `camera`, `mic`/`microphone` or `speaker` (as used by the stdin control channel).
    pub fn parse(text: &str) -> Option<DeviceKind> {
        match text.to_ascii_lowercase().as_str() {
            "camera" | "video" | "cam" => Some(DeviceKind::Camera),
            "mic" | "microphone" => Some(DeviceKind::Microphone),
            "speaker" | "speakers" | "renderer" => Some(DeviceKind::Speaker),
            _ => None,
        }
    }
}

/// Current pan/tilt/zoom positions of the selected camera.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Serialize)]
pub struct PtzPosition {
    /// Pan position (−10..10).
    pub pan: i64,
    /// Tilt position (−10..10).
    pub tilt: i64,
    /// Zoom position (1..5).
    pub zoom: i64,
}

/// What a simulated Room looks like right now, for assertions in tests and for the `state`
/// control command.
#[derive(Debug, Clone, PartialEq, Serialize)]
pub struct SimSnapshot {
    /// The current `appState`.
    pub app_state: AppState,
    /// The TrueConf server the Room is connected to (also while connecting).
    pub server: Option<String>,
    /// Whether an account is logged in.
    pub logged_in: bool,
    /// Our TrueConf ID while logged in.
    pub peer_id: Option<String>,
    /// Microphone muted (`setMicMute`).
    pub mic_muted: bool,
    /// Camera muted (`setVideoMute`).
    pub camera_muted: bool,
    /// Speaker muted (`setAudioMute`).
    pub speaker_muted: bool,
    /// Name of the selected camera; `None` when "none" is selected.
    pub camera: Option<String>,
    /// Name of the selected microphone.
    pub microphone: Option<String>,
    /// Name of the selected speaker.
    pub speaker: Option<String>,
    /// Id of the running call/conference.
    pub conference_id: Option<String>,
    /// Title of the running conference (empty for p2p calls).
    pub conference_title: Option<String>,
    /// Remote participants of the running conference (without ourselves).
    pub participants: Vec<Participant>,
    /// The caller of a pending incoming call.
    pub caller: Option<Participant>,
    /// The callee of a pending outgoing call.
    pub callee: Option<String>,
    /// PTZ position of the camera.
    pub ptz: PtzPosition,
    /// Last `changeWindowState` value (1 minimised, 2 full screen).
    pub window_state: i64,
    /// Last `stayOnTop` value.
    pub stay_on_top: bool,
    /// All settings (`getSettings`), by name.
    pub settings: Map<String, Value>,
    /// Connections that passed `auth` and are still authorised.
    pub authenticated_connections: usize,
    /// Requests received since start (all connections, including rejected ones).
    pub requests_total: u64,
    /// Whether the listeners are up (`false` after `stop`).
    pub running: bool,
}

/// Fixed facts of one simulated Room, from its configuration.
#[derive(Debug, Clone)]
pub(crate) struct Profile {
    pub server: String,
    pub server_port: u16,
    pub peer_id: String,
    pub peer_dn: String,
    pub start: StartState,
    pub answer_delay: Duration,
    pub http_port: u16,
    pub secured: bool,
}

/// Something that happens later: the shell sleeps `after`, then calls [`Machine::fire`].
#[derive(Debug, Clone, PartialEq, Eq)]
pub(crate) struct Timer {
    pub after: Duration,
    pub generation: u64,
    pub kind: TimerKind,
}

#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub(crate) enum TimerKind {
    /// The callee of an outgoing call answers (or declines).
    Answer,
    /// The invitees of a conference we created join (or decline).
    InviteesJoin,
}

/// Notifications and timers caused by one step of the machine, in order.
#[derive(Debug, Default)]
pub(crate) struct Effects {
    pub events: Vec<Event>,
    pub timers: Vec<Timer>,
}

impl Effects {
    fn emit(&mut self, name: &str, data: Value) {
        self.events.push(Event::from_data(name, data));
    }
}

/// Why a request is refused.
enum Refusal {
    UnknownMethod,
    Invalid(String),
    NotAvailable,
}

#[derive(Debug, Clone)]
struct Device {
    name: String,
    description: String,
    ptz: bool,
}

#[derive(Debug, Clone, Copy)]
struct Axis {
    min: i64,
    max: i64,
    def: i64,
    step: i64,
    current: i64,
}

impl Axis {
    fn new(min: i64, max: i64, def: i64, step: i64) -> Axis {
        Axis {
            min,
            max,
            def,
            step,
            current: def,
        }
    }

    fn json(&self, supported: bool) -> Value {
        if !supported {
            return json!({"support": false});
        }
        json!({
            "isContinuousType": false,
            "support": true,
            "minValue": self.min,
            "maxValue": self.max,
            "currentValue": self.current,
            "defValue": self.def,
            "step": self.step,
            "inverted": false,
        })
    }

    fn nudge(&mut self, direction: i64) {
        self.current = (self.current + direction * self.step).clamp(self.min, self.max);
    }

    fn set(&mut self, pos: i64) -> Result<(), Refusal> {
        if !(self.min..=self.max).contains(&pos) {
            return Err(Refusal::Invalid(format!(
                "pos {pos} is outside {}..{}",
                self.min, self.max
            )));
        }
        self.current = pos;
        Ok(())
    }
}

#[derive(Debug, Clone)]
struct Account {
    peer_id: String,
    peer_dn: String,
}

#[derive(Debug, Clone)]
struct Conference {
    conf_id: String,
    title: String,
    conf_type: i64,
    owner: String,
    /// The other side of a p2p call.
    p2p_peer: Option<Participant>,
    direction: &'static str,
    join_url: String,
    manage_url: String,
    participants: Vec<Participant>,
    pending_invites: Vec<String>,
    started: Instant,
    generation: u64,
}

#[derive(Debug, Clone)]
enum Call {
    Idle,
    Outgoing { peer: Participant, generation: u64 },
    Incoming { peer: Participant, conf_id: String },
    Active(Box<Conference>),
}

/// API tokens and HTTP tokens issued by `auth` / `getTokenForHttpServer`. Bounded: the oldest
/// are forgotten first. They stay valid until the Room restarts (SPEC §4.3: "until the app
/// closes"; the lifetimes of 5 min / 24 h are not simulated).
#[derive(Debug, Default)]
pub(crate) struct Tokens {
    api: VecDeque<String>,
    http: VecDeque<String>,
}

const MAX_TOKENS: usize = 256;

/// Settings a client may create with `setSettings` (unknown names are accepted — inferred —
/// but not without bound).
const MAX_SETTINGS: usize = 1024;

impl Tokens {
    pub fn issue_api(&mut self) -> String {
        Self::issue(&mut self.api, 1)
    }

    pub fn issue_http(&mut self) -> String {
        Self::issue(&mut self.http, 4)
    }

    pub fn api_valid(&self, token: &str) -> bool {
        self.api.iter().any(|t| t == token)
    }

    pub fn http_valid(&self, token: &str) -> bool {
        !token.is_empty() && self.http.iter().any(|t| t == token)
    }

    fn issue(list: &mut VecDeque<String>, prefix: u8) -> String {
        let token = new_token(prefix);
        if list.len() == MAX_TOKENS {
            list.pop_front();
        }
        list.push_back(token.clone());
        token
    }
}

/// A token shaped like the documented ones: `<n>*<16 chars>*<8 digits>*<64 hex>` (SPEC §4.3).
fn new_token(prefix: u8) -> String {
    const ALNUM: &[u8] = b"ABCDEFGHIJKLMNOPQRSTUVWXYZabcdefghijklmnopqrstuvwxyz0123456789";
    let mut token = format!("{prefix}*");
    for _ in 0..16 {
        token.push(char::from(ALNUM[fastrand::usize(..ALNUM.len())]));
    }
    token.push('*');
    for _ in 0..8 {
        token.push(fastrand::digit(10));
    }
    token.push('*');
    for _ in 0..64 {
        token.push(fastrand::digit(16).to_ascii_uppercase());
    }
    token
}

/// The display name the simulator invents for a peer id: its user part.
pub(crate) fn display_name_of(peer_id: &str) -> String {
    let base = peer_id.split('/').next().unwrap_or(peer_id);
    let user = base.split('@').next().unwrap_or(base);
    if user.is_empty() {
        peer_id.to_owned()
    } else {
        user.to_owned()
    }
}

/// How a simulated callee reacts, chosen by the start of its id: `reject…` declines (cause 0),
/// `busy…` is busy (cause 2), `noanswer…` does not answer (cause 16); everybody else answers.
fn callee_reject_cause(peer_id: &str) -> Option<i64> {
    let id = peer_id.to_ascii_lowercase();
    if id.starts_with("reject") {
        Some(0)
    } else if id.starts_with("busy") {
        Some(2)
    } else if id.starts_with("noanswer") {
        Some(16)
    } else {
        None
    }
}

fn unix_time() -> i64 {
    SystemTime::now()
        .duration_since(UNIX_EPOCH)
        .map(|d| i64::try_from(d.as_secs()).unwrap_or(i64::MAX))
        .unwrap_or(0)
}

fn object(value: Value) -> Map<String, Value> {
    match value {
        Value::Object(map) => map,
        _ => Map::new(),
    }
}

fn str_param<'a>(params: &'a Map<String, Value>, key: &str) -> &'a str {
    params.get(key).and_then(Value::as_str).unwrap_or("")
}

fn bool_param(params: &Map<String, Value>, key: &str) -> bool {
    params.get(key).and_then(Value::as_bool).unwrap_or(false)
}

fn int_param(params: &Map<String, Value>, key: &str) -> i64 {
    params.get(key).and_then(Value::as_i64).unwrap_or(0)
}

/// The head of every reply: `method`, `requestId` (echoed as given, `""` when absent), `result`.
pub(crate) fn reply_head(method: Value, request_id: Value, result: bool) -> Map<String, Value> {
    let mut reply = Map::new();
    reply.insert("method".into(), method);
    reply.insert("requestId".into(), request_id);
    reply.insert("result".into(), Value::Bool(result));
    reply
}

/// A failed reply: `{"method":…,"requestId":…,"result":false,"error":…}`.
pub(crate) fn error_reply(
    method: Option<Value>,
    request_id: Value,
    error: &str,
) -> Map<String, Value> {
    let mut reply = reply_head(Value::Null, request_id, false);
    match method {
        Some(m) => {
            reply.insert("method".into(), m);
        }
        None => {
            reply.remove("method");
        }
    }
    reply.insert("error".into(), Value::String(error.to_owned()));
    reply
}

fn initial_devices() -> [Vec<Device>; 3] {
    let dev = |name: &str, description: &str, ptz: bool| Device {
        name: name.to_owned(),
        description: description.to_owned(),
        ptz,
    };
    [
        vec![
            dev(
                "Logitech PTZ Pro 2",
                r"\\?\usb#vid_046d&pid_085f&mi_00#7&2a1b9c3d&0&0000#{e5323777-f976-4f5b-9b55-b94699c46e44}\global",
                true,
            ),
            dev(
                "Integrated Webcam",
                r"\\?\usb#vid_0c45&pid_6723&mi_00#6&1f3e5a7c&0&0000#{e5323777-f976-4f5b-9b55-b94699c46e44}\global",
                false,
            ),
        ],
        vec![
            dev(
                "Echo Cancelling Speakerphone (Jabra SPEAK 510 USB)",
                "{0.0.1.00000000}.{7c2a4f1e-8b3d-4e6a-9f5c-1d2e3f4a5b6c}",
                false,
            ),
            dev(
                "Microphone (Realtek(R) Audio)",
                "{0.0.1.00000000}.{3b9d8e2f-1a4c-4d7e-8f6a-2c5b7d9e1f3a}",
                false,
            ),
        ],
        vec![
            dev(
                "Echo Cancelling Speakerphone (Jabra SPEAK 510 USB)",
                "{0.0.0.00000000}.{5e6f7a8b-9c0d-4e1f-a2b3-c4d5e6f7a8b9}",
                false,
            ),
            dev(
                "Speakers (Realtek(R) Audio)",
                "{0.0.0.00000000}.{9a8b7c6d-5e4f-4a3b-8c2d-1e0f9a8b7c6d}",
                false,
            ),
        ],
    ]
}

/// The settings of the documented `getSettings` example (SPEC §12).
fn initial_settings() -> Map<String, Value> {
    object(json!({
        "aecEnable": true,
        "agcEnable": true,
        "appShowUserNameLabels": true,
        "audioCapturerLevel": 0.592157,
        "audioPlayLevel": 1.0,
        "autoAccept": false,
        "autoAcceptPodiumFromOwner": false,
        "autoAllowPartToTakePodium": false,
        "bestQualityForHttpServerImages": false,
        "cameraRemoteControlAccess": 1,
        "changeUserAuthPinAfterConf": false,
        "defaultMultiConfMatrix": 1,
        "defaultOutputSelfVideoRotateAngle": 0,
        "defaultP2PMatrix": 0,
        "disableSelfViewOnBlind": true,
        "displayNameAlign": 1,
        "enableAutologin": true,
        "forbidDirectConnection": false,
        "highlightActiveSpeakers": false,
        "inputBandWidth": 10240,
        "language": "en",
        "outputBandWidth": 10240,
        "qrCodeRecognition": false,
        "record": 1,
        "rejectCallsNotFromAB": false,
        "restoreWindowWhenCall": false,
        "selfViewMirror": true,
        "showCurrentUserWidget": true,
        "showIncomingRequestWidget": true,
        "showInfoConnect": true,
        "showInfoWidgets": true,
        "showLogo": true,
        "showTime": true,
        "showUpcomingMeetings": true,
    }))
}

/// The state of one simulated Room.
pub(crate) struct Machine {
    profile: Profile,
    app_state: AppState,
    server: Option<(String, u16)>,
    account: Option<Account>,
    /// The last successful login, used by auto-login after `connectToServer`.
    remembered: Option<Account>,
    call: Call,
    mic_muted: bool,
    camera_muted: bool,
    speaker_muted: bool,
    devices: [Vec<Device>; 3],
    current: [Option<Device>; 3],
    plugged: u32,
    pan: Axis,
    tilt: Axis,
    zoom: Axis,
    window_state: i64,
    stay_on_top: bool,
    settings: Map<String, Value>,
    instance: String,
    conf_counter: u32,
    /// Tokens issued to clients; they die with the machine (a restarted Room).
    pub tokens: Tokens,
}

impl Machine {
    /// A Room in its configured start state.
    pub fn new(profile: Profile) -> Machine {
        let account = Account {
            peer_id: profile.peer_id.clone(),
            peer_dn: profile.peer_dn.clone(),
        };
        let server = Some((profile.server.clone(), profile.server_port));
        let (app_state, server, logged_in) = match profile.start {
            StartState::Offline => (AppState::None, None, None),
            StartState::Connected => (AppState::Login, server, None),
            StartState::LoggedIn => (AppState::Normal, server, Some(account)),
        };
        let devices = initial_devices();
        let current = [
            devices[0].first().cloned(),
            devices[1].first().cloned(),
            devices[2].first().cloned(),
        ];
        Machine {
            app_state,
            server,
            remembered: logged_in.clone(),
            account: logged_in,
            call: Call::Idle,
            mic_muted: false,
            camera_muted: false,
            speaker_muted: false,
            devices,
            current,
            plugged: 0,
            pan: Axis::new(-10, 10, 0, 1),
            tilt: Axis::new(-10, 10, 0, 1),
            zoom: Axis::new(1, 5, 1, 1),
            window_state: 2,
            stay_on_top: false,
            settings: initial_settings(),
            instance: format!("{:08x}", fastrand::u32(..)),
            conf_counter: fastrand::u32(0x100..0x8000_0000),
            tokens: Tokens::default(),
            profile,
        }
    }

    /// The profile this machine was built from (restart builds a fresh machine from it).
    pub fn profile(&self) -> &Profile {
        &self.profile
    }

    /// Whether the Room is secured (getAuthInfo).
    fn secured(&self) -> bool {
        self.profile.secured
    }

    /// Handles one request of an authorised connection: validates it against the catalog,
    /// runs it, and returns the complete reply plus what follows it.
    pub fn request(
        &mut self,
        method: &str,
        request_id: Value,
        params: &Map<String, Value>,
    ) -> (Map<String, Value>, Effects) {
        let mut effects = Effects::default();
        let outcome = match catalog().validate(method, params) {
            Err(ParamError::UnknownMethod(_)) => Err(Refusal::UnknownMethod),
            Err(e) => Err(Refusal::Invalid(e.to_string())),
            Ok(spec) => self.dispatch(spec, params, &mut effects),
        };
        let method_value = Value::String(method.to_owned());
        match outcome {
            Ok(fields) => {
                let mut reply = reply_head(method_value, request_id, true);
                reply.extend(fields);
                (reply, effects)
            }
            Err(refusal) => {
                let text = match refusal {
                    Refusal::UnknownMethod => error_text::UNKNOWN_METHOD.to_owned(),
                    Refusal::Invalid(detail) => {
                        format!("{}: {detail}", error_text::INVALID_PARAMETERS)
                    }
                    Refusal::NotAvailable => error_text::NOT_AVAILABLE.to_owned(),
                };
                // A refused command changes nothing and announces nothing.
                (
                    error_reply(Some(method_value), request_id, &text),
                    Effects::default(),
                )
            }
        }
    }

    fn dispatch(
        &mut self,
        spec: &MethodSpec,
        p: &Map<String, Value>,
        fx: &mut Effects,
    ) -> Result<Map<String, Value>, Refusal> {
        let mut fields = match spec.name.as_str() {
            "getAppState" => self.app_state_payload(),
            "getLogin" => self.login_payload(),
            "getConnected" => self.connected_payload(),
            "getAuthInfo" => {
                // inferred: SPEC §4.1 — admin can only be password-protected, user by PIN.
                let (admin, user) = if self.secured() {
                    ("password", "pin")
                } else {
                    ("unsecured", "unsecured")
                };
                object(json!({"adminAuth": admin, "userAuth": user}))
            }
            "getSystemInfo" => self.system_info(),
            "getSettings" => {
                let list: Vec<Value> = self
                    .settings
                    .iter()
                    .map(|(name, value)| json!({"name": name, "value": value}))
                    .collect();
                object(json!({"settings": list}))
            }
            "setSettings" => {
                let changes = p
                    .get("settings")
                    .and_then(Value::as_object)
                    .cloned()
                    .unwrap_or_default();
                let new = changes
                    .keys()
                    .filter(|k| !self.settings.contains_key(*k))
                    .count();
                if self.settings.len() + new > MAX_SETTINGS {
                    return Err(Refusal::Invalid(format!(
                        "setSettings: more than {MAX_SETTINGS} settings"
                    )));
                }
                for (name, value) in changes {
                    self.settings.insert(name.clone(), value.clone());
                    fx.emit("settingsChanged", json!({"name": name, "value": value}));
                }
                Map::new()
            }
            "getMicMute" => object(json!({"mute": self.mic_muted})),
            "getVideoMute" => object(json!({"mute": self.camera_muted})),
            "getAudioMute" => object(json!({"mute": self.speaker_muted})),
            "setMicMute" => {
                self.mic_muted = bool_param(p, "mute");
                fx.emit("audioCapturerMute", json!({"mute": self.mic_muted}));
                Map::new()
            }
            "setVideoMute" => {
                self.camera_muted = bool_param(p, "mute");
                fx.emit("videoCapturerMute", json!({"mute": self.camera_muted}));
                Map::new()
            }
            "setAudioMute" => {
                self.speaker_muted = bool_param(p, "mute");
                fx.emit("audioRendererMute", json!({"mute": self.speaker_muted}));
                Map::new()
            }
            "getHardware" => self.hardware_payload(),
            "setVideoCapturer" => self.select_device(DeviceKind::Camera, p, fx)?,
            "setAudioCapturer" => self.select_device(DeviceKind::Microphone, p, fx)?,
            "setAudioRenderer" => self.select_device(DeviceKind::Speaker, p, fx)?,
            "getPtzControls" => self.ptz_payload(),
            "ptzLeft" | "ptzRight" | "ptzUp" | "ptzDown" | "ptzZoomInc" | "ptzZoomDec"
            | "ptzStop" | "setPanPos" | "setTiltPos" | "setZoomPos" | "setPtzDefaults" => {
                self.ptz(&spec.name, p, fx)?
            }
            "getMonitorsInfo" => monitors_payload(),
            "changeWindowState" => {
                self.window_state = int_param(p, "windowState");
                self.stay_on_top = bool_param(p, "stayOnTop");
                fx.emit(
                    "windowStateChanged",
                    json!({"windowState": self.window_state, "stayOnTop": self.stay_on_top}),
                );
                Map::new()
            }
            "sendMessage" => {
                // SPEC §9 [D]: sendMessage accepts PeerId/CallId but not an InstanceId.
                if str_param(p, "peerId").contains('/') {
                    return Err(Refusal::Invalid(
                        "sendMessage: peerId must not be an InstanceId".into(),
                    ));
                }
                Map::new()
            }
            "fireMyEvent" => {
                fx.emit("myEvent", json!({"data": str_param(p, "data")}));
                Map::new()
            }
            "getTokenForHttpServer" => object(json!({"token": self.tokens.issue_http()})),
            "connectToServer" => self.connect_to_server(p, fx)?,
            "login" => self.login(p, fx)?,
            "logout" => self.logout(fx)?,
            "call" => self.call(p, fx)?,
            "accept" => self.accept(fx)?,
            "reject" => self.reject(fx)?,
            "hangUp" => self.hang_up(fx)?,
            "createConference" => self.create_conference(p, fx)?,
            "getConferences" => self.conferences_payload(),
            "getConferenceParticipants" => self.participants_payload(),
            _ => Map::new(),
        };
        self.fill_response_fields(spec, p, &mut fields);
        Ok(fields)
    }

    /// Adds every catalog response field the handler did not set, with a plausible value of
    /// its type, so that generic methods answer with the right shape and the official Python
    /// client's handler filters (SPEC §15.1.6) always see their keys.
    fn fill_response_fields(
        &self,
        spec: &MethodSpec,
        params: &Map<String, Value>,
        fields: &mut Map<String, Value>,
    ) {
        for field in &spec.response_fields {
            if fields.contains_key(&field.name) || matches!(field.name.as_str(), "error") {
                continue;
            }
            let value = match params.get(&field.name) {
                Some(v) if field.ty.matches(v) => v.clone(),
                _ => self.plausible(&field.name, field.ty),
            };
            fields.insert(field.name.clone(), value);
        }
    }

    fn plausible(&self, name: &str, ty: ValueType) -> Value {
        let account = self.account.as_ref();
        match (name, ty) {
            ("peerId", ValueType::String) => {
                json!(account.map(|a| a.peer_id.as_str()).unwrap_or(""))
            }
            ("peerDn", ValueType::String) => {
                json!(account.map(|a| a.peer_dn.as_str()).unwrap_or(""))
            }
            ("isLoggedIn", ValueType::Bool) => json!(account.is_some()),
            ("domain", ValueType::String) => {
                json!(self.server.as_ref().map(|s| s.0.as_str()).unwrap_or(""))
            }
            (_, ValueType::String) => json!(""),
            (_, ValueType::Int) => json!(0),
            (_, ValueType::Number) => json!(0.0),
            (_, ValueType::Bool) => json!(false),
            (_, ValueType::Object) => json!({}),
            (_, ValueType::Array | ValueType::ArrayOfStrings | ValueType::ArrayOfObjects) => {
                json!([])
            }
            (_, ValueType::Any) => Value::Null,
        }
    }

    // ----- payloads -------------------------------------------------------------------------

    fn app_state_payload(&self) -> Map<String, Value> {
        let ext_status = match self.app_state {
            AppState::Normal => 2,
            AppState::Wait | AppState::Conference | AppState::Close => 7,
            _ => 0,
        };
        object(json!({
            "appState": self.app_state.wire(),
            "embeddedHttpPort": self.profile.http_port,
            "extStatus": ext_status,
            "additionalStatus": "",
            "desktopSharing": {"running": false},
            "broadcastPicture": {"running": false},
            "audioCaptureTest": false,
            "recording": false,
        }))
    }

    fn login_payload(&self) -> Map<String, Value> {
        match &self.account {
            Some(a) => {
                object(json!({"isLoggedIn": true, "peerId": a.peer_id, "peerDn": a.peer_dn}))
            }
            None => object(json!({"isLoggedIn": false, "peerId": "", "peerDn": ""})),
        }
    }

    fn connected_payload(&self) -> Map<String, Value> {
        let state = match (&self.server, self.app_state) {
            (_, AppState::Connect) => 1,
            (Some(_), _) => 2,
            (None, _) => 0,
        };
        let (server, port) = self
            .server
            .clone()
            .unwrap_or_else(|| (String::new(), self.profile.server_port));
        object(json!({
            "state": state,
            "serverInfo": {"server": server, "service": false, "port": port, "domain": server},
        }))
    }

    fn system_info(&self) -> Map<String, Value> {
        let auth_info = match &self.account {
            Some(a) => json!({"peerId": a.peer_id, "peerDn": a.peer_dn}),
            None => json!({}),
        };
        object(json!({
            "authInfo": auth_info,
            "fileInfo": {"major": 5, "minor": 0, "revision": 2, "build": 1043},
            "productInfo": {"major": 5, "minor": 0, "revision": 2, "build": 1043, "name": "TrueConf Room (simulated)"},
            "permissionsInfo": {
                "tariffName": "PRO", "p2p": true, "createMulti": true, "symMaxNumber": 36,
                "asymMaxNumber": 120, "roleMaxNumber": 120, "rlMaxNumber": 120,
                "canUseSlideShow": true, "canUseDesktopSharing": true,
                "canChangeAddressBook": true, "canEditGroups": true, "canUseDialer": true,
            },
            "bitrateLimits": {"max": 10240, "min": 64},
            "systemRating": {
                "videoQuality": {"send": 4, "receiveP2P": 4, "receiveGroup": 4},
                "videoContentLevels": {"send": 4, "receiveP2P": 4, "receiveGroup": 4, "bench": 4},
            },
            "cameraInfo": {
                "cameraFramerate": 30, "cameraHeight": 1080, "cameraWidth": 1920,
                "sendFormat": "I420", "format": 1, "sendFramerate": 30,
                "sendHeight": 720, "sendWidth": 1280, "stereo": false,
            },
        }))
    }

    fn hardware_payload(&self) -> Map<String, Value> {
        let list = |kind: DeviceKind| -> Value {
            self.devices[kind.index()]
                .iter()
                .map(|d| json!({"name": d.name, "description": d.description, "type": 1}))
                .collect()
        };
        // inferred: SPEC §7 — "none"/"none" selects no device; the Room is assumed to report
        // the selection back the same way.
        let current = |kind: DeviceKind| -> (String, String, i64) {
            match &self.current[kind.index()] {
                Some(d) => (d.name.clone(), d.description.clone(), 1),
                None => ("none".into(), "none".into(), 0),
            }
        };
        let (cam_n, cam_d, cam_t) = current(DeviceKind::Camera);
        let (mic_n, mic_d, mic_t) = current(DeviceKind::Microphone);
        let (spk_n, spk_d, spk_t) = current(DeviceKind::Speaker);
        object(json!({
            "audioCapturers": list(DeviceKind::Microphone),
            "currentAudioCapturerName": mic_n,
            "currentAudioCapturerDescription": mic_d,
            "currentAudioCapturerType": mic_t,
            "audioRenderers": list(DeviceKind::Speaker),
            "currentAudioRendererName": spk_n,
            "currentAudioRendererDescription": spk_d,
            "currentAudioRendererType": spk_t,
            "videoCapturers": list(DeviceKind::Camera),
            "currentVideoCapturerName": cam_n,
            "currentVideoCapturerDescription": cam_d,
            "currentVideoCapturerType": cam_t,
            "defaultContentSource": "",
            "DSCaptureList": [{"name": "Screen 1", "id": 65537}],
            "comPorts": [],
        }))
    }

    fn ptz_supported(&self) -> bool {
        self.current[DeviceKind::Camera.index()]
            .as_ref()
            .is_some_and(|d| d.ptz)
    }

    fn ptz_payload(&self) -> Map<String, Value> {
        let supported = self.ptz_supported();
        let (name, description) = match &self.current[DeviceKind::Camera.index()] {
            Some(d) => (d.name.clone(), d.description.clone()),
            None => (String::new(), String::new()),
        };
        object(json!({
            "pan": self.pan.json(supported),
            "tilt": self.tilt.json(supported),
            "zoom": self.zoom.json(supported),
            "videoCapturerName": name,
            "videoCapturerDescription": description,
        }))
    }

    fn conferences_payload(&self) -> Map<String, Value> {
        match &self.call {
            Call::Active(c) => {
                let mut m = object(json!({
                    "confId": c.conf_id,
                    "confType": c.conf_type,
                    "isSmartMeeting": false,
                    "slideShowPresent": false,
                    "duration": c.started.elapsed().as_secs(),
                    "joinUrl": c.join_url,
                    "autoJoin": false,
                    "confTitle": c.title,
                    "conferenceOwner": c.owner,
                    "realTimeConferenceManagmentUrl": c.manage_url,
                    "confState": 1,
                    "isWaitingRoomSwitchingSupported": false,
                    "isWaitingRoomEnabled": false,
                    "maxParticipants": 450,
                    "maxParticipantsOnPodium": 4,
                }));
                if let Some(peer) = &c.p2p_peer {
                    m.insert("type".into(), json!("p2p"));
                    m.insert("direction".into(), json!(c.direction));
                    m.insert("peerId".into(), json!(peer.peer_id));
                    m.insert("peerDn".into(), json!(peer.peer_dn));
                }
                m
            }
            // inferred: catalog note "confState 0 seen for ringing p2p".
            Call::Outgoing { peer, .. } => object(json!({
                "confId": "", "confType": 0, "confState": 0, "type": "p2p",
                "direction": "outgoing", "peerId": peer.peer_id, "peerDn": peer.peer_dn,
            })),
            Call::Incoming { peer, conf_id } => object(json!({
                "confId": conf_id, "confType": 0, "confState": 0, "type": "p2p",
                "direction": "incoming", "peerId": peer.peer_id, "peerDn": peer.peer_dn,
            })),
            Call::Idle => object(json!({"confId": ""})),
        }
    }

    fn participants_payload(&self) -> Map<String, Value> {
        let Call::Active(c) = &self.call else {
            return object(json!({"confId": "", "participants": []}));
        };
        // inferred: the documented example lists the owner too, so we list ourselves first.
        let mut list = Vec::with_capacity(c.participants.len() + 1);
        if let Some(a) = &self.account {
            let mut me = participant_json(&Participant {
                peer_id: format!("{}/{}", a.peer_id, self.instance),
                peer_dn: a.peer_dn.clone(),
            });
            me.insert("mic".into(), json!(if self.mic_muted { 1 } else { 2 }));
            me.insert("video".into(), json!(if self.camera_muted { 1 } else { 2 }));
            if c.owner == a.peer_id {
                me.insert("role".into(), json!(2));
            }
            list.push(Value::Object(me));
        }
        list.extend(
            c.participants
                .iter()
                .map(|p| Value::Object(participant_json(p))),
        );
        object(json!({"confId": c.conf_id, "participants": list}))
    }

    // ----- state changes ----------------------------------------------------------------------

    fn set_state(&mut self, state: AppState, fx: &mut Effects) {
        self.app_state = state;
        fx.emit("appStateChanged", Value::Object(self.app_state_payload()));
    }

    fn is_idle_and_ready(&self) -> bool {
        self.app_state == AppState::Normal && matches!(self.call, Call::Idle)
    }

    fn new_conf_id(&mut self) -> String {
        self.conf_counter = self.conf_counter.wrapping_add(1);
        let server = self
            .server
            .as_ref()
            .map_or("sim.trueconf.local", |s| s.0.as_str());
        format!("{:08x}@{server}#vcs", self.conf_counter)
    }

    fn own_id(&self) -> String {
        self.account
            .as_ref()
            .map(|a| a.peer_id.clone())
            .unwrap_or_default()
    }

    fn connect_to_server(
        &mut self,
        p: &Map<String, Value>,
        fx: &mut Effects,
    ) -> Result<Map<String, Value>, Refusal> {
        if !matches!(self.call, Call::Idle) {
            return Err(Refusal::NotAvailable);
        }
        let server = str_param(p, "server").to_owned();
        if server.is_empty() {
            return Err(Refusal::Invalid("connectToServer: server is empty".into()));
        }
        let port = p
            .get("port")
            .and_then(Value::as_u64)
            .and_then(|v| u16::try_from(v).ok())
            .unwrap_or(4307);
        // inferred: SPEC §7.1 order — an existing session ends first.
        if let Some((old, old_port)) = self.server.take() {
            self.account = None;
            fx.emit(
                "serverDisconnected",
                json!({"service": false, "server": old, "port": old_port}),
            );
        }
        self.set_state(AppState::Connect, fx);
        self.server = Some((server.clone(), port));
        fx.emit(
            "serverConnected",
            json!({"service": false, "server": server, "port": port, "domain": server}),
        );
        let autologin = self.settings.get("enableAutologin") == Some(&Value::Bool(true));
        match self.remembered.clone() {
            Some(account) if autologin => {
                fx.emit(
                    "login",
                    json!({"result": 0, "peerId": account.peer_id, "peerDn": account.peer_dn}),
                );
                self.account = Some(account);
                self.set_state(AppState::Normal, fx);
            }
            _ => self.set_state(AppState::Login, fx),
        }
        Ok(Map::new())
    }

    fn login(
        &mut self,
        p: &Map<String, Value>,
        fx: &mut Effects,
    ) -> Result<Map<String, Value>, Refusal> {
        if self.app_state != AppState::Login {
            return Err(Refusal::NotAvailable);
        }
        let login = str_param(p, "login");
        if login.is_empty() {
            return Err(Refusal::Invalid("login: login is empty".into()));
        }
        let server = self.server.as_ref().map_or("", |s| s.0.as_str());
        let peer_id = if login.contains('@') {
            login.to_owned()
        } else {
            format!("{login}@{server}")
        };
        // Simulator convention: the password "wrong" fails with result 3 (wrong login/password).
        if str_param(p, "password") == "wrong" {
            fx.emit("login", json!({"result": 3, "peerId": "", "peerDn": ""}));
            return Ok(Map::new());
        }
        let account = Account {
            peer_dn: display_name_of(&peer_id),
            peer_id,
        };
        fx.emit(
            "login",
            json!({"result": 0, "peerId": account.peer_id, "peerDn": account.peer_dn}),
        );
        self.remembered = Some(account.clone());
        self.account = Some(account);
        self.set_state(AppState::Normal, fx);
        // The catalog's reply fields (isLoggedIn, peerId, peerDn) are filled from the new state.
        Ok(Map::new())
    }

    fn logout(&mut self, fx: &mut Effects) -> Result<Map<String, Value>, Refusal> {
        if !self.is_idle_and_ready() {
            return Err(Refusal::NotAvailable);
        }
        self.account = None;
        // inferred: SPEC §7.1 "Logout".
        fx.emit("logout", json!({"result": 0, "cause": 0}));
        self.set_state(AppState::Login, fx);
        Ok(Map::new())
    }

    fn call(
        &mut self,
        p: &Map<String, Value>,
        fx: &mut Effects,
    ) -> Result<Map<String, Value>, Refusal> {
        if !self.is_idle_and_ready() {
            return Err(Refusal::NotAvailable);
        }
        let peer_id = str_param(p, "peerId");
        if peer_id.is_empty() {
            return Err(Refusal::Invalid("call: peerId is empty".into()));
        }
        let generation = next_generation();
        self.call = Call::Outgoing {
            peer: Participant {
                peer_id: peer_id.to_owned(),
                peer_dn: display_name_of(peer_id),
            },
            generation,
        };
        self.set_state(AppState::Wait, fx);
        fx.timers.push(Timer {
            after: self.profile.answer_delay,
            generation,
            kind: TimerKind::Answer,
        });
        Ok(Map::new())
    }

    fn accept(&mut self, fx: &mut Effects) -> Result<Map<String, Value>, Refusal> {
        let Call::Incoming { peer, conf_id } = &self.call else {
            return Err(Refusal::NotAvailable);
        };
        let (peer, conf_id) = (peer.clone(), conf_id.clone());
        self.start_p2p(peer, conf_id, "incoming", fx);
        Ok(Map::new())
    }

    fn reject(&mut self, fx: &mut Effects) -> Result<Map<String, Value>, Refusal> {
        let Call::Incoming { peer, conf_id } = &self.call else {
            return Err(Refusal::NotAvailable);
        };
        // `recordAllowed` is not sent by the real Room, but the official Python client's filter
        // requires it (SPEC §15.1.6), so the simulator adds it.
        fx.emit(
            "rejectSent",
            json!({"peerId": peer.peer_id, "peerDn": peer.peer_dn, "cause": 0,
                   "confId": conf_id, "recordAllowed": false}),
        );
        self.call = Call::Idle;
        self.set_state(AppState::Normal, fx);
        Ok(Map::new())
    }

    fn hang_up(&mut self, fx: &mut Effects) -> Result<Map<String, Value>, Refusal> {
        match &self.call {
            Call::Idle => Err(Refusal::NotAvailable),
            Call::Incoming { .. } => self.reject(fx),
            Call::Outgoing { .. } => {
                // SPEC §7.1 [D]: hangUp while ringing cancels the outgoing call.
                self.call = Call::Idle;
                self.set_state(AppState::Normal, fx);
                Ok(Map::new())
            }
            Call::Active(_) => {
                self.end_conference(fx);
                Ok(Map::new())
            }
        }
    }

    fn create_conference(
        &mut self,
        p: &Map<String, Value>,
        fx: &mut Effects,
    ) -> Result<Map<String, Value>, Refusal> {
        if !self.is_idle_and_ready() {
            return Err(Refusal::NotAvailable);
        }
        let conf_type = match str_param(p, "confType") {
            "symmetric" => 1,
            "asymmetric" => 2,
            "role" => 3,
            other => {
                return Err(Refusal::Invalid(format!(
                    "createConference: confType '{other}' is not symmetric|asymmetric|role"
                )));
            }
        };
        let invites: Vec<String> = p
            .get("inviteList")
            .and_then(Value::as_array)
            .map(|l| {
                l.iter()
                    .filter_map(Value::as_str)
                    .map(str::to_owned)
                    .collect()
            })
            .unwrap_or_default();
        let conf_id = self.new_conf_id();
        let server = self.server.as_ref().map_or("", |s| s.0.as_str()).to_owned();
        let generation = next_generation();
        let conference = Conference {
            join_url: format!(
                "https://{server}/c/{}",
                fastrand::u64(100_000_000_000..1_000_000_000_000)
            ),
            manage_url: format!(
                "https://{server}/tools/real-time?k={:016X}",
                fastrand::u64(..)
            ),
            conf_id,
            title: str_param(p, "title").to_owned(),
            conf_type,
            owner: self.own_id(),
            p2p_peer: None,
            direction: "outgoing",
            participants: Vec::new(),
            pending_invites: invites,
            started: Instant::now(),
            generation,
        };
        self.enter_conference(conference, fx);
        fx.timers.push(Timer {
            after: self.profile.answer_delay,
            generation,
            kind: TimerKind::InviteesJoin,
        });
        Ok(Map::new())
    }

    fn start_p2p(
        &mut self,
        peer: Participant,
        conf_id: String,
        direction: &'static str,
        fx: &mut Effects,
    ) {
        let owner = if direction == "incoming" {
            peer.peer_id.clone()
        } else {
            self.own_id()
        };
        let conference = Conference {
            conf_id,
            title: String::new(),
            conf_type: 0,
            owner,
            p2p_peer: Some(peer.clone()),
            direction,
            join_url: String::new(),
            manage_url: String::new(),
            participants: Vec::new(),
            pending_invites: Vec::new(),
            started: Instant::now(),
            generation: next_generation(),
        };
        self.enter_conference(conference, fx);
        self.add_participant(peer, fx);
    }

    /// conferenceCreated, then appStateChanged 5 (SPEC §7.1, order inferred).
    fn enter_conference(&mut self, c: Conference, fx: &mut Effects) {
        let mut created = json!({
            "confId": c.conf_id,
            "confTitle": c.title,
            "confType": c.conf_type,
            "conferenceOwner": c.owner,
            "joinUrl": c.join_url,
            "realTimeConferenceManagmentUrl": c.manage_url,
            "isSmartMeeting": false,
        });
        if let (Some(peer), Value::Object(m)) = (&c.p2p_peer, &mut created) {
            m.insert("peerId".into(), json!(peer.peer_id));
        }
        fx.emit("conferenceCreated", created);
        self.call = Call::Active(Box::new(c));
        self.set_state(AppState::Conference, fx);
    }

    /// appStateChanged 6, conferenceDeleted, appStateChanged 3 (SPEC §7.1 "Hang up", inferred).
    fn end_conference(&mut self, fx: &mut Effects) {
        let Call::Active(c) = std::mem::replace(&mut self.call, Call::Idle) else {
            return;
        };
        self.set_state(AppState::Close, fx);
        fx.emit("conferenceDeleted", json!({"confId": c.conf_id}));
        self.set_state(AppState::Normal, fx);
    }

    fn add_participant(&mut self, peer: Participant, fx: &mut Effects) {
        let Call::Active(c) = &mut self.call else {
            return;
        };
        let mut event = participant_json(&peer);
        event.insert("confId".into(), json!(c.conf_id));
        c.participants.push(peer);
        fx.emit("newParticipantInConference", Value::Object(event));
    }

    /// A timer set by `call` or `createConference` expired.
    pub fn fire(&mut self, timer: &Timer) -> Effects {
        let mut fx = Effects::default();
        match timer.kind {
            TimerKind::Answer => {
                let Call::Outgoing { peer, generation } = &self.call else {
                    return fx;
                };
                if *generation != timer.generation {
                    return fx;
                }
                let peer = peer.clone();
                match callee_reject_cause(&peer.peer_id) {
                    Some(cause) => {
                        self.call = Call::Idle;
                        fx.emit(
                            "rejectReceived",
                            json!({"cause": cause, "peerId": peer.peer_id, "peerDn": peer.peer_dn}),
                        );
                        self.set_state(AppState::Normal, &mut fx);
                    }
                    None => {
                        let conf_id = self.new_conf_id();
                        self.start_p2p(peer, conf_id, "outgoing", &mut fx);
                    }
                }
            }
            TimerKind::InviteesJoin => {
                let invites = match &mut self.call {
                    Call::Active(c) if c.generation == timer.generation => {
                        std::mem::take(&mut c.pending_invites)
                    }
                    _ => return fx,
                };
                for id in invites {
                    let peer = Participant {
                        peer_dn: display_name_of(&id),
                        peer_id: id,
                    };
                    match callee_reject_cause(&peer.peer_id) {
                        // inferred: an invitee who declines is reported like a declined call.
                        Some(cause) => fx.emit(
                            "rejectReceived",
                            json!({"cause": cause, "peerId": peer.peer_id, "peerDn": peer.peer_dn}),
                        ),
                        None => self.add_participant(peer, &mut fx),
                    }
                }
            }
        }
        fx
    }

    fn select_device(
        &mut self,
        kind: DeviceKind,
        p: &Map<String, Value>,
        fx: &mut Effects,
    ) -> Result<Map<String, Value>, Refusal> {
        let name = str_param(p, "name");
        let description = str_param(p, "description");
        let selected = if name == "none" && description == "none" {
            None
        } else {
            // `description` is the unique device id (SPEC §7); the name must match too.
            let found = self.devices[kind.index()]
                .iter()
                .find(|d| d.description == description && d.name == name)
                .cloned();
            match found {
                Some(d) => Some(d),
                None => {
                    return Err(Refusal::Invalid(format!(
                        "no such device '{name}' / '{description}'"
                    )));
                }
            }
        };
        self.current[kind.index()] = selected;
        self.hardware_changed(kind, fx);
        Ok(Map::new())
    }

    /// hardwareChanged with the full getHardware payload; after a camera change also
    /// ptzControlsChanged, since the PTZ controls belong to the camera (inferred).
    fn hardware_changed(&mut self, kind: DeviceKind, fx: &mut Effects) {
        fx.emit("hardwareChanged", Value::Object(self.hardware_payload()));
        if kind == DeviceKind::Camera {
            fx.emit("ptzControlsChanged", Value::Object(self.ptz_payload()));
        }
    }

    fn ptz(
        &mut self,
        method: &str,
        p: &Map<String, Value>,
        fx: &mut Effects,
    ) -> Result<Map<String, Value>, Refusal> {
        if !self.ptz_supported() {
            return Err(Refusal::NotAvailable);
        }
        // Relative moves "start moving" on a real camera; the simulator moves one step at once
        // and has no running motion to stop, so ptzStop only answers.
        match method {
            "ptzLeft" => self.pan.nudge(-1),
            "ptzRight" => self.pan.nudge(1),
            "ptzUp" => self.tilt.nudge(1),
            "ptzDown" => self.tilt.nudge(-1),
            "ptzZoomInc" => self.zoom.nudge(1),
            "ptzZoomDec" => self.zoom.nudge(-1),
            "setPanPos" => self.pan.set(int_param(p, "pos"))?,
            "setTiltPos" => self.tilt.set(int_param(p, "pos"))?,
            "setZoomPos" => self.zoom.set(int_param(p, "pos"))?,
            "setPtzDefaults" => {
                for axis in [&mut self.pan, &mut self.tilt, &mut self.zoom] {
                    axis.current = axis.def;
                }
            }
            _ => return Ok(Map::new()),
        }
        fx.emit("ptzControlsChanged", Value::Object(self.ptz_payload()));
        Ok(Map::new())
    }

    // ----- scripted life (injectors) ----------------------------------------------------------

    fn not_available(&self, what: &str) -> SimError {
        SimError::NotAvailable(format!("{what} (appState {})", self.app_state.wire()))
    }

    /// Someone calls the Room: inviteReceived, appStateChanged 4 (and, with the `autoAccept`
    /// setting, the accept sequence at once).
    pub fn incoming_call(&mut self, peer_id: &str, peer_dn: &str) -> Result<Effects, SimError> {
        if !self.is_idle_and_ready() {
            return Err(self.not_available("an incoming call needs an idle, logged-in Room"));
        }
        let mut fx = Effects::default();
        let peer = Participant {
            peer_id: peer_id.to_owned(),
            peer_dn: if peer_dn.is_empty() {
                display_name_of(peer_id)
            } else {
                peer_dn.to_owned()
            },
        };
        let conf_id = self.new_conf_id();
        fx.emit(
            "inviteReceived",
            json!({"peerId": peer.peer_id, "peerDn": peer.peer_dn, "type": 0, "confId": conf_id}),
        );
        self.call = Call::Incoming {
            peer: peer.clone(),
            conf_id: conf_id.clone(),
        };
        self.set_state(AppState::Wait, &mut fx);
        if self.settings.get("autoAccept") == Some(&Value::Bool(true)) {
            self.start_p2p(peer, conf_id, "incoming", &mut fx);
        }
        Ok(fx)
    }

    /// The caller of a pending incoming call hangs up: stopCalling, appStateChanged 3.
    pub fn caller_gives_up(&mut self) -> Result<Effects, SimError> {
        let Call::Incoming { peer, .. } = &self.call else {
            return Err(self.not_available("no incoming call is ringing"));
        };
        let mut fx = Effects::default();
        // inferred: `side` is undocumented; 1 is used for "the remote side".
        fx.emit("stopCalling", json!({"peerId": peer.peer_id, "side": 1}));
        self.call = Call::Idle;
        self.set_state(AppState::Normal, &mut fx);
        Ok(fx)
    }

    /// The remote side ends the call: the same tail as a local hangUp.
    pub fn remote_hangup(&mut self) -> Result<Effects, SimError> {
        if !matches!(self.call, Call::Active(_)) {
            return Err(self.not_available("no call is running"));
        }
        let mut fx = Effects::default();
        self.end_conference(&mut fx);
        Ok(fx)
    }

    /// A participant joins the running conference.
    pub fn participant_joins(&mut self, peer_id: &str, peer_dn: &str) -> Result<Effects, SimError> {
        let Call::Active(c) = &self.call else {
            return Err(self.not_available("no conference is running"));
        };
        if c.participants.iter().any(|p| p.peer_id == peer_id) {
            return Err(SimError::Invalid(format!(
                "{peer_id} is already in the conference"
            )));
        }
        let mut fx = Effects::default();
        let peer = Participant {
            peer_id: peer_id.to_owned(),
            peer_dn: if peer_dn.is_empty() {
                display_name_of(peer_id)
            } else {
                peer_dn.to_owned()
            },
        };
        self.add_participant(peer, &mut fx);
        Ok(fx)
    }

    /// A participant leaves (matched by exact id, or by PeerId for an InstanceId entry).
    pub fn participant_leaves(&mut self, peer_id: &str) -> Result<Effects, SimError> {
        let Call::Active(c) = &mut self.call else {
            return Err(self.not_available("no conference is running"));
        };
        let position = c
            .participants
            .iter()
            .position(|p| p.peer_id == peer_id)
            .or_else(|| {
                c.participants
                    .iter()
                    .position(|p| p.peer_id.split('/').next() == Some(peer_id))
            });
        let Some(index) = position else {
            return Err(SimError::NotFound(format!(
                "{peer_id} is not in the conference"
            )));
        };
        let peer = c.participants.remove(index);
        let mut fx = Effects::default();
        // inferred: catalog note "confId may also be present".
        fx.emit(
            "participantLeftConference",
            json!({"peerId": peer.peer_id, "confId": c.conf_id}),
        );
        Ok(fx)
    }

    /// A chat message arrives.
    pub fn chat_message(&mut self, peer_id: &str, text: &str) -> Effects {
        let (peer_dn, conf_id) = match &self.call {
            Call::Active(c) => (
                c.participants
                    .iter()
                    .find(|p| p.peer_id == peer_id)
                    .map(|p| p.peer_dn.clone())
                    .unwrap_or_else(|| display_name_of(peer_id)),
                c.conf_id.clone(),
            ),
            _ => (display_name_of(peer_id), String::new()),
        };
        let mut fx = Effects::default();
        fx.emit(
            "incomingChatMessage",
            json!({"peerId": peer_id, "peerDn": peer_dn, "message": text,
                   "time": unix_time(), "confId": conf_id}),
        );
        fx
    }

    /// The conference owner mutes or unmutes our microphone.
    pub fn owner_mutes_mic(&mut self, mute: bool) -> Result<Effects, SimError> {
        let Call::Active(c) = &self.call else {
            return Err(self.not_available("no conference is running"));
        };
        let mut fx = Effects::default();
        fx.emit(
            "micStateChangedByConferenceOwner",
            json!({"mute": mute, "confId": c.conf_id}),
        );
        // inferred: the local mute state follows, announced like a local change.
        self.mic_muted = mute;
        fx.emit("audioCapturerMute", json!({"mute": mute}));
        Ok(fx)
    }

    /// A device is plugged in (it is not selected automatically).
    pub fn plug_device(&mut self, kind: DeviceKind, name: &str) -> Result<Effects, SimError> {
        if name.is_empty() || name == "none" {
            return Err(SimError::Invalid(format!("bad device name '{name}'")));
        }
        if self.devices[kind.index()].iter().any(|d| d.name == name) {
            return Err(SimError::Invalid(format!(
                "device '{name}' is already plugged in"
            )));
        }
        self.plugged += 1;
        let n = self.plugged;
        let description = match kind {
            DeviceKind::Camera => format!(
                r"\\?\usb#vid_1209&pid_{n:04x}&mi_00#sim&{n:08x}&0&0000#{{e5323777-f976-4f5b-9b55-b94699c46e44}}\global"
            ),
            DeviceKind::Microphone => {
                format!("{{0.0.1.00000000}}.{{5151{n:04x}-0000-4000-8000-000000000000}}")
            }
            DeviceKind::Speaker => {
                format!("{{0.0.0.00000000}}.{{5151{n:04x}-0000-4000-8000-000000000000}}")
            }
        };
        self.devices[kind.index()].push(Device {
            name: name.to_owned(),
            description,
            ptz: false,
        });
        let mut fx = Effects::default();
        self.hardware_changed(kind, &mut fx);
        Ok(fx)
    }

    /// A device is unplugged (by name or description). If it was selected, the first remaining
    /// device of its kind is selected instead (or none).
    pub fn unplug_device(&mut self, kind: DeviceKind, name: &str) -> Result<Effects, SimError> {
        let list = &mut self.devices[kind.index()];
        let Some(index) = list
            .iter()
            .position(|d| d.name == name || d.description == name)
        else {
            return Err(SimError::NotFound(format!("no device '{name}'")));
        };
        let removed = list.remove(index);
        let current = &mut self.current[kind.index()];
        if current
            .as_ref()
            .is_some_and(|c| c.description == removed.description)
        {
            *current = list.first().cloned();
        }
        let mut fx = Effects::default();
        self.hardware_changed(kind, &mut fx);
        Ok(fx)
    }

    /// The current state as seen by tests. Connection counters are filled in by the caller.
    pub fn snapshot(&self) -> SimSnapshot {
        let name = |kind: DeviceKind| self.current[kind.index()].as_ref().map(|d| d.name.clone());
        let (conference_id, conference_title, participants) = match &self.call {
            Call::Active(c) => (
                Some(c.conf_id.clone()),
                Some(c.title.clone()),
                c.participants.clone(),
            ),
            _ => (None, None, Vec::new()),
        };
        SimSnapshot {
            app_state: self.app_state,
            server: self.server.as_ref().map(|s| s.0.clone()),
            logged_in: self.account.is_some(),
            peer_id: self.account.as_ref().map(|a| a.peer_id.clone()),
            mic_muted: self.mic_muted,
            camera_muted: self.camera_muted,
            speaker_muted: self.speaker_muted,
            camera: name(DeviceKind::Camera),
            microphone: name(DeviceKind::Microphone),
            speaker: name(DeviceKind::Speaker),
            conference_id,
            conference_title,
            participants,
            caller: match &self.call {
                Call::Incoming { peer, .. } => Some(peer.clone()),
                _ => None,
            },
            callee: match &self.call {
                Call::Outgoing { peer, .. } => Some(peer.peer_id.clone()),
                _ => None,
            },
            ptz: PtzPosition {
                pan: self.pan.current,
                tilt: self.tilt.current,
                zoom: self.zoom.current,
            },
            window_state: self.window_state,
            stay_on_top: self.stay_on_top,
            settings: self.settings.clone(),
            authenticated_connections: 0,
            requests_total: 0,
            running: false,
        }
    }
}

/// A participant as listed by getConferenceParticipants / newParticipantInConference.
fn participant_json(p: &Participant) -> Map<String, Value> {
    object(json!({
        "peerId": p.peer_id,
        "peerDn": p.peer_dn,
        "mic": 2,
        "video": 2,
        "slideShow": false,
        "role": 1,
        "broadcast": false,
        "audioReceiving": true,
        "videoReceiving": true,
        "extraVideo": 0,
        "leaderType": 0,
        "recordingMe": false,
        "recordingByMe": false,
        "pinned": false,
        "isInWaitingRoom": false,
    }))
}

/// The two monitors of the documented getMonitorsInfo example.
fn monitors_payload() -> Map<String, Value> {
    object(json!({
        "monitors": [
            {"name": "PHL 275E1", "primary": true, "index": 0, "ignored": false,
             "geomMonitor": {"x": 0, "y": 0, "width": 2560, "height": 1440},
             "geomWork": {"x": 0, "y": 0, "width": 2560, "height": 1380},
             "deviceInstancePath": r"display\phl2751e\4&16666148&0&uid265988",
             "id": r"display\phl2751e\4&16666148&0&uid265988"},
            {"name": "Generic PnP Monitor", "primary": false, "index": 1, "ignored": false,
             "geomMonitor": {"x": 2560, "y": 0, "width": 1920, "height": 1080},
             "geomWork": {"x": 2560, "y": 0, "width": 1920, "height": 1032},
             "deviceInstancePath": r"display\lgd0457\4&1e135148&0&uid589647",
             "id": r"display\lgd0457\4&1e135148&0&uid589647"},
        ],
        "currentMonitor": 0,
    }))
}

#[cfg(test)]
mod tests {
    use super::*;
    use crate::protocol::EventKind;

    fn machine(start: StartState) -> Machine {
        Machine::new(Profile {
            server: "sim.trueconf.local".into(),
            server_port: 4307,
            peer_id: "room@sim.trueconf.local".into(),
            peer_dn: "Meeting Room".into(),
            start,
            answer_delay: Duration::from_millis(10),
            http_port: 8766,
            secured: true,
        })
    }

    fn req(m: &mut Machine, method: &str, params: Value) -> (Map<String, Value>, Effects) {
        m.request(method, json!("7"), &object(params))
    }

    fn names(fx: &Effects) -> Vec<&str> {
        fx.events.iter().map(|e| e.name.as_str()).collect()
    }

    fn states(fx: &Effects) -> Vec<i64> {
        fx.events
            .iter()
            .filter(|e| e.name == "appStateChanged")
            .map(|e| e.fields["appState"].as_i64().unwrap())
            .collect()
    }

    fn ok(reply: &Map<String, Value>) {
        assert_eq!(reply["result"], json!(true), "{reply:?}");
    }

    fn refused(reply: &Map<String, Value>, text: &str) {
        assert_eq!(reply["result"], json!(false), "{reply:?}");
        assert!(
            reply["error"].as_str().unwrap().starts_with(text),
            "{reply:?}"
        );
    }

    /// A value of the given type, for calling every catalog method.
    fn sample(ty: ValueType) -> Value {
        match ty {
            ValueType::String | ValueType::Any => json!("x"),
            ValueType::Int | ValueType::Number => json!(1),
            ValueType::Bool => json!(false),
            ValueType::Object => json!({}),
            ValueType::Array | ValueType::ArrayOfStrings | ValueType::ArrayOfObjects => json!([]),
        }
    }

    #[test]
    fn every_catalog_method_answers_with_its_shape() {
        for start in [
            StartState::Offline,
            StartState::Connected,
            StartState::LoggedIn,
        ] {
            for spec in catalog().methods() {
                if spec.name == "auth" || spec.name == "setUsedApiVersion" {
                    continue; // handled per connection, not by the machine
                }
                let mut m = machine(start);
                let params: Map<String, Value> = spec
                    .params
                    .iter()
                    .filter(|p| p.required)
                    .map(|p| (p.name.clone(), sample(p.ty)))
                    .collect();
                let (reply, _) = m.request(&spec.name, json!(""), &params);
                assert_eq!(reply["method"], json!(spec.name));
                assert_eq!(reply["requestId"], json!(""));
                if reply["result"] == json!(true) {
                    for field in spec
                        .response_fields
                        .iter()
                        .filter(|f| f.python_handler_requires)
                    {
                        assert!(
                            reply.contains_key(&field.name),
                            "{}: missing {}",
                            spec.name,
                            field.name
                        );
                    }
                } else {
                    let error = reply["error"].as_str().unwrap();
                    assert!(
                        error == error_text::NOT_AVAILABLE
                            || error.starts_with(error_text::INVALID_PARAMETERS),
                        "{}: {error}",
                        spec.name
                    );
                }
            }
        }
    }

    #[test]
    fn get_app_state_has_what_the_python_client_needs() {
        let mut m = machine(StartState::LoggedIn);
        let (reply, fx) = req(&mut m, "getAppState", json!({}));
        ok(&reply);
        assert!(fx.events.is_empty());
        assert_eq!(reply["appState"], json!(3));
        assert_eq!(reply["embeddedHttpPort"], json!(8766));
        assert_eq!(reply["requestId"], json!("7"));
    }

    #[test]
    fn unknown_and_invalid_requests() {
        let mut m = machine(StartState::LoggedIn);
        refused(&req(&mut m, "danceTheTango", json!({})).0, "Unknown method");
        refused(
            &req(&mut m, "setMicMute", json!({"mute": "yes"})).0,
            "Invalid parameters: setMicMute: parameter 'mute' must be bool",
        );
        refused(
            &req(&mut m, "setMicMute", json!({})).0,
            "Invalid parameters",
        );
        refused(
            &req(&mut m, "accept", json!({})).0,
            error_text::NOT_AVAILABLE,
        );
        refused(
            &req(&mut m, "hangUp", json!({})).0,
            error_text::NOT_AVAILABLE,
        );
    }

    #[test]
    fn outgoing_call_answered_then_hung_up() {
        let mut m = machine(StartState::LoggedIn);
        let (reply, fx) = req(&mut m, "call", json!({"peerId": "alice@srv"}));
        ok(&reply);
        assert_eq!(states(&fx), [4]);
        assert_eq!(fx.timers.len(), 1);
        assert_eq!(m.snapshot().callee.as_deref(), Some("alice@srv"));
        refused(
            &req(&mut m, "call", json!({"peerId": "bob@srv"})).0,
            error_text::NOT_AVAILABLE,
        );

        let fx = m.fire(&fx.timers[0]);
        assert_eq!(
            names(&fx),
            [
                "conferenceCreated",
                "appStateChanged",
                "newParticipantInConference"
            ]
        );
        let created = &fx.events[0];
        assert_eq!(created.fields["confType"], json!(0));
        assert_eq!(created.fields["peerId"], json!("alice@srv"));
        assert!(matches!(created.kind, EventKind::ConferenceCreated { .. }));
        assert_eq!(states(&fx), [5]);
        let snap = m.snapshot();
        assert_eq!(snap.app_state, AppState::Conference);
        assert_eq!(snap.participants.len(), 1);

        let (reply, _) = req(&mut m, "getConferenceParticipants", json!({}));
        let list = reply["participants"].as_array().unwrap();
        assert_eq!(list.len(), 2, "ourselves plus alice");
        assert_eq!(list[1]["peerId"], json!("alice@srv"));
        let (reply, _) = req(&mut m, "getConferences", json!({}));
        assert_eq!(reply["confId"], json!(snap.conference_id.unwrap()));
        assert_eq!(reply["type"], json!("p2p"));

        let (reply, fx) = req(&mut m, "hangUp", json!({"forAll": false}));
        ok(&reply);
        assert_eq!(
            names(&fx),
            ["appStateChanged", "conferenceDeleted", "appStateChanged"]
        );
        assert_eq!(states(&fx), [6, 3]);
        assert_eq!(m.snapshot().conference_id, None);
    }

    #[test]
    fn callees_that_decline() {
        for (callee, cause) in [("reject1@srv", 0), ("busy@srv", 2), ("noanswer@srv", 16)] {
            let mut m = machine(StartState::LoggedIn);
            let (_, fx) = req(&mut m, "call", json!({"peerId": callee}));
            let fx = m.fire(&fx.timers[0]);
            assert_eq!(names(&fx), ["rejectReceived", "appStateChanged"]);
            assert_eq!(fx.events[0].fields["cause"], json!(cause));
            assert_eq!(fx.events[0].fields["peerId"], json!(callee));
            assert_eq!(states(&fx), [3]);
        }
    }

    #[test]
    fn hang_up_while_ringing_cancels_and_stale_timers_are_ignored() {
        let mut m = machine(StartState::LoggedIn);
        let (_, first) = req(&mut m, "call", json!({"peerId": "alice@srv"}));
        let (reply, fx) = req(&mut m, "hangUp", json!({}));
        ok(&reply);
        assert_eq!(states(&fx), [3]);
        let (_, second) = req(&mut m, "call", json!({"peerId": "bob@srv"}));
        assert!(m.fire(&first.timers[0]).events.is_empty(), "stale timer");
        let fx = m.fire(&second.timers[0]);
        assert_eq!(fx.events[0].fields["peerId"], json!("bob@srv"));
    }

    #[test]
    fn incoming_call_accepted_rejected_or_abandoned() {
        let mut m = machine(StartState::LoggedIn);
        let fx = m.incoming_call("carol@srv", "Carol").unwrap();
        assert_eq!(names(&fx), ["inviteReceived", "appStateChanged"]);
        let invite = &fx.events[0].fields;
        assert_eq!(invite["type"], json!(0));
        let conf_id = invite["confId"].clone();
        assert_eq!(m.snapshot().caller.unwrap().peer_dn, "Carol");
        assert!(m.incoming_call("dave@srv", "").is_err(), "already ringing");
        let (reply, fx) = req(&mut m, "accept", json!({}));
        ok(&reply);
        assert_eq!(
            names(&fx),
            [
                "conferenceCreated",
                "appStateChanged",
                "newParticipantInConference"
            ]
        );
        assert_eq!(fx.events[0].fields["confId"], conf_id);
        let fx = m.remote_hangup().unwrap();
        assert_eq!(states(&fx), [6, 3]);

        m.incoming_call("carol@srv", "Carol").unwrap();
        let (reply, fx) = req(&mut m, "reject", json!({}));
        ok(&reply);
        assert_eq!(names(&fx), ["rejectSent", "appStateChanged"]);
        assert_eq!(fx.events[0].fields["recordAllowed"], json!(false));
        assert_eq!(fx.events[0].fields["cause"], json!(0));

        m.incoming_call("carol@srv", "").unwrap();
        let fx = m.caller_gives_up().unwrap();
        assert_eq!(names(&fx), ["stopCalling", "appStateChanged"]);
        assert_eq!(states(&fx), [3]);
        assert!(m.caller_gives_up().is_err());
    }

    #[test]
    fn auto_accept_setting_answers_incoming_calls() {
        let mut m = machine(StartState::LoggedIn);
        let (_, fx) = req(
            &mut m,
            "setSettings",
            json!({"settings": {"autoAccept": true}}),
        );
        assert_eq!(names(&fx), ["settingsChanged"]);
        let fx = m.incoming_call("carol@srv", "Carol").unwrap();
        assert_eq!(states(&fx), [4, 5]);
    }

    #[test]
    fn conference_with_invitees_and_participants() {
        let mut m = machine(StartState::LoggedIn);
        let params = json!({"title": "Weekly", "confType": "symmetric", "autoAccept": false,
                            "inviteList": ["a@srv", "busy-b@srv"]});
        let (reply, fx) = req(&mut m, "createConference", params);
        ok(&reply);
        assert_eq!(names(&fx), ["conferenceCreated", "appStateChanged"]);
        assert_eq!(fx.events[0].fields["confType"], json!(1));
        assert_eq!(fx.events[0].fields["confTitle"], json!("Weekly"));
        let fx = m.fire(&fx.timers[0]);
        assert_eq!(names(&fx), ["newParticipantInConference", "rejectReceived"]);

        m.participant_joins("x@srv/1234", "X").unwrap();
        assert!(m.participant_joins("x@srv/1234", "X").is_err());
        let fx = m.participant_leaves("x@srv").unwrap();
        assert_eq!(fx.events[0].fields["peerId"], json!("x@srv/1234"));
        assert!(m.participant_leaves("nobody@srv").is_err());
        assert_eq!(m.snapshot().participants.len(), 1);
        assert_eq!(m.snapshot().conference_title.as_deref(), Some("Weekly"));

        let fx = m.owner_mutes_mic(true).unwrap();
        assert_eq!(
            names(&fx),
            ["micStateChangedByConferenceOwner", "audioCapturerMute"]
        );
        assert!(m.snapshot().mic_muted);
        let fx = m.chat_message("a@srv", "hi");
        assert_eq!(
            fx.events[0].fields["confId"],
            json!(m.snapshot().conference_id.unwrap())
        );
    }

    #[test]
    fn mute_commands_and_getters() {
        let mut m = machine(StartState::LoggedIn);
        for (set, get, event) in [
            ("setMicMute", "getMicMute", "audioCapturerMute"),
            ("setVideoMute", "getVideoMute", "videoCapturerMute"),
            ("setAudioMute", "getAudioMute", "audioRendererMute"),
        ] {
            let (reply, fx) = req(&mut m, set, json!({"mute": true}));
            ok(&reply);
            assert_eq!(names(&fx), [event]);
            assert_eq!(fx.events[0].fields["mute"], json!(true));
            assert_eq!(req(&mut m, get, json!({})).0["mute"], json!(true));
        }
        let s = m.snapshot();
        assert!(s.mic_muted && s.camera_muted && s.speaker_muted);
    }

    #[test]
    fn devices_selection_and_hotplug() {
        let mut m = machine(StartState::LoggedIn);
        let (hw, _) = req(&mut m, "getHardware", json!({}));
        let cams = hw["videoCapturers"].as_array().unwrap().clone();
        assert_eq!(cams.len(), 2);
        assert_eq!(hw["audioCapturers"].as_array().unwrap().len(), 2);
        assert_eq!(hw["audioRenderers"].as_array().unwrap().len(), 2);
        assert_eq!(hw["currentVideoCapturerName"], cams[0]["name"]);

        let second = json!({"name": cams[1]["name"], "description": cams[1]["description"]});
        let (reply, fx) = req(&mut m, "setVideoCapturer", second);
        ok(&reply);
        assert_eq!(names(&fx), ["hardwareChanged", "ptzControlsChanged"]);
        assert_eq!(
            fx.events[0].fields["currentVideoCapturerName"],
            cams[1]["name"]
        );
        assert_eq!(m.snapshot().camera.as_deref(), cams[1]["name"].as_str());
        // The integrated webcam has no PTZ.
        refused(
            &req(&mut m, "ptzLeft", json!({})).0,
            error_text::NOT_AVAILABLE,
        );

        let bogus = json!({"name": "Nope", "description": "nope"});
        refused(
            &req(&mut m, "setAudioCapturer", bogus).0,
            "Invalid parameters",
        );
        let none = json!({"name": "none", "description": "none"});
        let (reply, fx) = req(&mut m, "setAudioRenderer", none);
        ok(&reply);
        assert_eq!(
            fx.events[0].fields["currentAudioRendererName"],
            json!("none")
        );
        assert_eq!(m.snapshot().speaker, None);

        let fx = m.plug_device(DeviceKind::Microphone, "USB Mic").unwrap();
        assert_eq!(names(&fx), ["hardwareChanged"]);
        assert_eq!(
            fx.events[0].fields["audioCapturers"]
                .as_array()
                .unwrap()
                .len(),
            3
        );
        assert!(m.plug_device(DeviceKind::Microphone, "USB Mic").is_err());
        let first_mic = m.snapshot().microphone.unwrap();
        m.unplug_device(DeviceKind::Microphone, &first_mic).unwrap();
        assert_ne!(
            m.snapshot().microphone.unwrap(),
            first_mic,
            "falls back to another mic"
        );
        assert!(m.unplug_device(DeviceKind::Camera, "ghost").is_err());
    }

    #[test]
    fn ptz_moves_within_limits() {
        let mut m = machine(StartState::LoggedIn);
        let (reply, _) = req(&mut m, "getPtzControls", json!({}));
        assert_eq!(reply["pan"]["support"], json!(true));
        let (reply, fx) = req(&mut m, "ptzRight", json!({}));
        ok(&reply);
        assert_eq!(names(&fx), ["ptzControlsChanged"]);
        assert_eq!(fx.events[0].fields["pan"]["currentValue"], json!(1));
        ok(&req(&mut m, "setZoomPos", json!({"pos": 3})).0);
        refused(
            &req(&mut m, "setPanPos", json!({"pos": 99})).0,
            "Invalid parameters",
        );
        let (_, fx) = req(&mut m, "ptzStop", json!({}));
        assert!(fx.events.is_empty());
        assert_eq!(
            m.snapshot().ptz,
            PtzPosition {
                pan: 1,
                tilt: 0,
                zoom: 3
            }
        );
        req(&mut m, "setPtzDefaults", json!({}));
        assert_eq!(
            m.snapshot().ptz,
            PtzPosition {
                pan: 0,
                tilt: 0,
                zoom: 1
            }
        );
    }

    #[test]
    fn settings_window_and_misc() {
        let mut m = machine(StartState::LoggedIn);
        let (reply, fx) = req(
            &mut m,
            "setSettings",
            json!({"settings": {"audioPlayLevel": 0.55, "language": "de"}}),
        );
        ok(&reply);
        assert_eq!(names(&fx), ["settingsChanged", "settingsChanged"]);
        let (reply, _) = req(&mut m, "getSettings", json!({}));
        let list = reply["settings"].as_array().unwrap();
        assert!(list.contains(&json!({"name": "language", "value": "de"})));

        let (_, fx) = req(
            &mut m,
            "changeWindowState",
            json!({"windowState": 1, "stayOnTop": true}),
        );
        assert_eq!(names(&fx), ["windowStateChanged"]);
        assert_eq!(m.snapshot().window_state, 1);

        refused(
            &req(
                &mut m,
                "sendMessage",
                json!({"peerId": "a@srv/12", "message": "x"}),
            )
            .0,
            "Invalid parameters",
        );
        ok(&req(
            &mut m,
            "sendMessage",
            json!({"peerId": "a@srv", "message": "x"}),
        )
        .0);
        let (_, fx) = req(&mut m, "fireMyEvent", json!({"data": "hello"}));
        assert_eq!(fx.events[0].fields["data"], json!("hello"));

        let (reply, _) = req(&mut m, "getTokenForHttpServer", json!({}));
        assert!(m.tokens.http_valid(reply["token"].as_str().unwrap()));
        let (reply, _) = req(&mut m, "getAuthInfo", json!({}));
        assert_eq!(reply["userAuth"], json!("pin"));
        // Generic methods echo parameters with the same name as a reply field.
        let (reply, _) = req(&mut m, "block", json!({"peerId": "spam@srv"}));
        assert_eq!(reply["peerId"], json!("spam@srv"));
    }

    #[test]
    fn connect_login_logout_flow() {
        let mut m = machine(StartState::Offline);
        refused(
            &req(&mut m, "call", json!({"peerId": "a@srv"})).0,
            error_text::NOT_AVAILABLE,
        );
        let (reply, fx) = req(
            &mut m,
            "connectToServer",
            json!({"server": "tc.example.com"}),
        );
        ok(&reply);
        assert_eq!(
            names(&fx),
            ["appStateChanged", "serverConnected", "appStateChanged"]
        );
        assert_eq!(states(&fx), [1, 2]);
        assert_eq!(fx.events[1].fields["port"], json!(4307));

        let login = json!({"login": "user1", "password": "wrong", "encryptPassword": false});
        let (reply, fx) = req(&mut m, "login", login);
        ok(&reply);
        assert_eq!(fx.events[0].fields["result"], json!(3));
        assert_eq!(m.snapshot().app_state, AppState::Login);

        let login = json!({"login": "user1", "password": "secret", "encryptPassword": false});
        let (reply, fx) = req(&mut m, "login", login);
        ok(&reply);
        assert_eq!(names(&fx), ["login", "appStateChanged"]);
        assert_eq!(fx.events[0].fields["peerId"], json!("user1@tc.example.com"));
        assert_eq!(states(&fx), [3]);
        assert_eq!(
            req(&mut m, "getLogin", json!({})).0["isLoggedIn"],
            json!(true)
        );

        let (reply, fx) = req(&mut m, "logout", json!({}));
        ok(&reply);
        assert_eq!(names(&fx), ["logout", "appStateChanged"]);
        assert_eq!(states(&fx), [2]);

        // Auto-login with the remembered account on the next connect.
        let (_, fx) = req(
            &mut m,
            "connectToServer",
            json!({"server": "tc.example.com"}),
        );
        assert_eq!(
            names(&fx),
            [
                "serverDisconnected",
                "appStateChanged",
                "serverConnected",
                "login",
                "appStateChanged"
            ]
        );
        assert_eq!(states(&fx), [1, 3]);
        let (reply, _) = req(&mut m, "getConnected", json!({}));
        assert_eq!(reply["state"], json!(2));
        assert_eq!(reply["serverInfo"]["server"], json!("tc.example.com"));
    }

    #[test]
    fn tokens_look_like_the_documented_ones() {
        let token = new_token(1);
        let parts: Vec<&str> = token.split('*').collect();
        assert_eq!(parts.len(), 4);
        assert_eq!(parts[0], "1");
        assert_eq!(parts[1].len(), 16);
        assert_eq!(parts[2].len(), 8);
        assert_eq!(parts[3].len(), 64);
        let mut tokens = Tokens::default();
        let first = tokens.issue_api();
        for _ in 0..MAX_TOKENS {
            tokens.issue_api();
        }
        assert!(
            !tokens.api_valid(&first),
            "bounded: the oldest token is forgotten"
        );
    }
}
