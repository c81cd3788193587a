//! The Room's application logic, with no sockets and no clocks it does not own.
//!
//! Everything a TrueConf Room *decides* lives here: which `appState` it is in, what a request
//! answers, which notifications follow and in which order. The async shell around it
//! (`room`, `connection`) only moves bytes. Keeping the machine pure means its flows can be
//! unit-tested request by request, and the exact event order of SPEC §7.1 is written down once.
//!
//! Things that happen "later" in a real Room (the callee answering after a few seconds) are
//! returned as [`Timer`]s; the shell sleeps and calls [`Machine::fire`]. A timer carries the
//! generation of the call it belongs to, so a call that was hung up meanwhile ignores it.
//!
//! This file owns the [`Machine`] itself, the request entry point (catalog validation, the
//! method table in `dispatch`, filling the catalog's reply fields), the settings, the public
//! snapshot and the types the shell sees. The rest is split by concern, each adding methods to
//! [`Machine`]: `replies` (reply heads and the payloads of the getters), `calls` (server,
//! login, calls and conferences, timers), `devices` (hardware lists, selection, hot-plug, PTZ),
//! `scenario` (scripted life injected by tests and the control channel) and `tokens` (API and
//! HTTP tokens).

mod calls;
mod devices;
mod panel;
mod replies;
mod scenario;
#[cfg(test)]
mod tests;
mod tokens;

use std::time::Duration;

use serde::Serialize;
use serde_json::{Map, Value, json};

use crate::protocol::catalog::{MethodSpec, ParamError, ValueType};
use crate::protocol::{AppState, Event, Participant, catalog};

pub use devices::{DeviceKind, PtzPosition};
pub(crate) use replies::{error_reply, reply_head};
pub(crate) use tokens::Tokens;

use calls::{Account, Call};
use devices::{Axis, Device, initial_devices};
use panel::PanelState;

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
    /// Camera preset ids, in order.
    pub presets: Vec<String>,
    /// The content source being shared.
    pub content: Option<String>,
    /// The slide shown while the slideshow runs (0-based).
    pub slide: Option<usize>,
    /// The Room records.
    pub recording: bool,
    /// Who asks to record us.
    pub record_request: Option<String>,
    /// Who asks for the podium, oldest first.
    pub podium_requests: Vec<String>,
    /// Who asks to control the camera, oldest first.
    pub camera_control_requests: Vec<String>,
    /// Index of the monitor showing the main window.
    pub current_monitor: i64,
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

/// Settings a client may create with `setSettings` (unknown names are accepted — inferred —
/// but not without bound).
const MAX_SETTINGS: usize = 1024;

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
    panel: PanelState,
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
        let panel = PanelState::new(devices[0].first());
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
            panel,
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
            "getMonitorsInfo" => self.monitors_payload(),
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
            other => match self.panel_request(other, p, fx) {
                Some(outcome) => outcome?,
                None => Map::new(),
            },
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

    fn set_state(&mut self, state: AppState, fx: &mut Effects) {
        if state != AppState::Conference {
            self.leave_call_panel(fx);
        }
        self.app_state = state;
        fx.emit("appStateChanged", Value::Object(self.app_state_payload()));
    }

    fn is_idle_and_ready(&self) -> bool {
        self.app_state == AppState::Normal && matches!(self.call, Call::Idle)
    }

    /// A call can start only from an idle, logged-in Room.
    fn require_idle(&self) -> Result<(), Refusal> {
        if self.is_idle_and_ready() {
            Ok(())
        } else {
            Err(Refusal::NotAvailable)
        }
    }

    /// A participant from a TrueConf ID and a display name (made up from the ID when empty).
    fn participant(peer_id: &str, peer_dn: &str) -> Participant {
        Participant {
            peer_id: peer_id.to_owned(),
            peer_dn: if peer_dn.is_empty() {
                calls::display_name_of(peer_id)
            } else {
                peer_dn.to_owned()
            },
        }
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
            presets: self
                .panel
                .presets
                .iter()
                .map(|p| p.id().to_owned())
                .collect(),
            content: self.panel.sharing.as_ref().map(|s| s.1.clone()),
            slide: self.panel.slideshow,
            recording: self.panel.recording,
            record_request: self
                .panel
                .record_request
                .as_ref()
                .map(|p| p.peer_id.clone()),
            podium_requests: self
                .panel
                .podium_requests
                .iter()
                .map(|p| p.peer_id.clone())
                .collect(),
            camera_control_requests: self.panel.camera_requests.clone(),
            current_monitor: self.panel.current_monitor,
            authenticated_connections: 0,
            requests_total: 0,
            running: false,
        }
    }
}
