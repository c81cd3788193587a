//! What we know about a Room, kept up to date from replies and events.
//!
//! A pure reducer in the style of rumqttc's `state.rs`: [`RoomState::apply_event`] and
//! [`RoomState::apply_response`] change the struct and report whether anything changed; they do no
//! I/O, so every transition is unit-tested without sockets. The MQTT side publishes this struct.

use serde::Serialize;
use serde_json::{Map, Value};

use super::panel::Panel;
use super::participants::Participants;
use crate::protocol::{AppState, Device, Event, EventKind, Participant, Response};

/// The Room as far as we know it. `None` means "not known yet".
#[derive(Debug, Clone, Default, PartialEq, Serialize)]
pub struct RoomState {
    /// Application state.
    pub app_state: Option<AppState>,
    /// Connected to a TrueConf server.
    pub server_connected: Option<bool>,
    /// The server the Room is connected to.
    pub server: Option<String>,
    /// A user is logged in.
    pub logged_in: Option<bool>,
    /// The logged-in TrueConf ID.
    pub user: Option<String>,
    /// The logged-in user's display name.
    pub user_name: Option<String>,
    /// Local microphone muted.
    pub mic_muted: Option<bool>,
    /// Local camera muted.
    pub camera_muted: Option<bool>,
    /// Local speaker muted.
    pub speaker_muted: Option<bool>,
    /// Selected camera.
    pub camera: Option<Device>,
    /// Selected microphone.
    pub microphone: Option<Device>,
    /// Selected speaker.
    pub speaker: Option<Device>,
    /// Cameras the Room has.
    pub cameras: Vec<Device>,
    /// Microphones the Room has.
    pub microphones: Vec<Device>,
    /// Speakers the Room has.
    pub speakers: Vec<Device>,
    /// The party calling us while we ring.
    pub caller: Option<Caller>,
    /// The party we are calling while it rings.
    pub callee: Option<String>,
    /// The current call or conference.
    pub conference: Option<Conference>,
    /// The last call attempt that was declined, with its cause text.
    pub last_reject: Option<String>,
    /// Main window state (1 minimised, 2 full screen).
    pub window_state: Option<i64>,
    /// Port of the Room's built-in HTTP server.
    pub http_port: Option<u16>,
    /// Room application version, from `getSystemInfo` (`productInfo`: `major.minor.revision.build`).
    pub version: Option<String>,
    /// `getSystemInfo` reply data.
    pub system_info: Option<Value>,
    /// `getMonitorsInfo` reply data.
    pub monitors: Option<Value>,
    /// `getPtzControls` reply data.
    pub ptz: Option<Value>,
    /// Settings by name.
    pub settings: Map<String, Value>,
    /// Presets, content, slideshow, recording and floor requests (`super::panel`).
    pub panel: Panel,
}

/// Who is calling.
#[derive(Debug, Clone, PartialEq, Eq, Serialize)]
pub struct Caller {
    /// Caller's TrueConf ID.
    pub peer_id: String,
    /// Caller's display name.
    pub peer_dn: String,
    /// Title of the conference we are invited to, for group invitations.
    pub conf_title: Option<String>,
}

/// A call or conference in progress.
#[derive(Debug, Clone, Default, PartialEq, Eq, Serialize)]
pub struct Conference {
    /// Conference id.
    pub conf_id: String,
    /// Title (group conferences) or the other party (p2p calls).
    pub title: Option<String>,
    /// The other side of a p2p call.
    pub peer_id: Option<String>,
    /// Other participants, in join order.
    pub participants: Participants,
}

/// Sets `slot` to `value`, reporting whether it changed.
pub(super) fn set<T: PartialEq>(slot: &mut T, value: T) -> bool {
    if *slot == value {
        false
    } else {
        *slot = value;
        true
    }
}

/// The string member `key`, when it is one.
pub(super) fn str_of(map: &Map<String, Value>, key: &str) -> Option<String> {
    map.get(key).and_then(Value::as_str).map(str::to_owned)
}

fn devices(map: &Map<String, Value>, key: &str) -> Vec<Device> {
    map.get(key)
        .and_then(|v| serde_json::from_value(v.clone()).ok())
        .unwrap_or_default()
}

fn current_device(map: &Map<String, Value>, prefix: &str) -> Option<Device> {
    let name = str_of(map, &format!("current{prefix}Name"))?;
    let description = str_of(map, &format!("current{prefix}Description")).unwrap_or_default();
    if name.is_empty() || name == "none" {
        return None;
    }
    Some(Device { name, description })
}

impl RoomState {
    /// Whether the Room is in a call or conference.
    pub fn in_call(&self) -> bool {
        self.app_state == Some(AppState::Conference)
    }

    /// Whether an incoming call is ringing.
    pub fn ringing(&self) -> bool {
        self.caller.is_some()
    }

    /// Number of other participants in the current conference.
    pub fn participant_count(&self) -> usize {
        self.conference.as_ref().map_or(0, |c| c.participants.len())
    }

    /// Applies a `getHardware` reply or `hardwareChanged` event payload.
    fn apply_hardware(&mut self, f: &Map<String, Value>) -> bool {
        let mut changed = false;
        changed |= set(&mut self.cameras, devices(f, "videoCapturers"));
        changed |= set(&mut self.microphones, devices(f, "audioCapturers"));
        changed |= set(&mut self.speakers, devices(f, "audioRenderers"));
        changed |= set(&mut self.camera, current_device(f, "VideoCapturer"));
        changed |= set(&mut self.microphone, current_device(f, "AudioCapturer"));
        changed |= set(&mut self.speaker, current_device(f, "AudioRenderer"));
        changed |= self.panel.apply_hardware(f);
        changed
    }

    fn set_app_state(&mut self, state: Option<AppState>) -> bool {
        let mut changed = set(&mut self.app_state, state);
        match state {
            Some(AppState::Wait) => {}
            Some(AppState::Conference) => {
                changed |= set(&mut self.caller, None);
                changed |= set(&mut self.callee, None);
            }
            _ => {
                changed |= set(&mut self.caller, None);
                changed |= set(&mut self.callee, None);
                changed |= set(&mut self.conference, None);
                changed |= self.panel.call_ended();
            }
        }
        if let Some(s) = state {
            let connected = !matches!(s, AppState::None | AppState::Connect);
            changed |= set(&mut self.server_connected, Some(connected));
            if matches!(
                s,
                AppState::Normal | AppState::Wait | AppState::Conference | AppState::Close
            ) {
                changed |= set(&mut self.logged_in, Some(true));
            } else {
                changed |= set(&mut self.logged_in, Some(false));
            }
        }
        changed
    }

    /// Updates the state from a notification; returns whether anything changed.
    pub fn apply_event(&mut self, event: &Event) -> bool {
        let f = &event.fields;
        match &event.kind {
            EventKind::AppStateChanged { state } => {
                let mut changed = self.set_app_state(*state);
                if let Some(port) = f.get("embeddedHttpPort").and_then(Value::as_u64) {
                    changed |= set(&mut self.http_port, u16::try_from(port).ok());
                }
                changed | self.panel.apply_app_state(f)
            }
            EventKind::MicMuted(m) | EventKind::MicMutedByOwner(m) => {
                set(&mut self.mic_muted, Some(*m))
            }
            EventKind::CameraMuted(m) | EventKind::CameraMutedByOwner(m) => {
                set(&mut self.camera_muted, Some(*m))
            }
            EventKind::SpeakerMuted(m) => set(&mut self.speaker_muted, Some(*m)),
            EventKind::InviteReceived {
                peer_id,
                peer_dn,
                conf_title,
                ..
            } => set(
                &mut self.caller,
                Some(Caller {
                    peer_id: peer_id.clone(),
                    peer_dn: peer_dn.clone(),
                    conf_title: conf_title.clone(),
                }),
            ),
            EventKind::RejectReceived { cause, peer_id } => {
                let text = crate::protocol::catalog()
                    .reject_cause(*cause)
                    .unwrap_or("unknown cause");
                let mut changed = set(&mut self.callee, None);
                changed |= set(
                    &mut self.last_reject,
                    Some(format!("{peer_id}: {text} ({cause})")),
                );
                changed
            }
            EventKind::RejectSent { .. } | EventKind::StopCalling { .. } => {
                set(&mut self.caller, None)
            }
            EventKind::ConferenceCreated {
                conf_id,
                conf_title,
                peer_id,
            } => {
                let title = conf_title.clone().or_else(|| peer_id.clone());
                let participants = self
                    .conference
                    .as_ref()
                    .filter(|c| &c.conf_id == conf_id)
                    .map(|c| c.participants.clone())
                    .unwrap_or_default();
                let mut changed = set(&mut self.caller, None);
                changed |= set(&mut self.callee, None);
                changed |= set(
                    &mut self.conference,
                    Some(Conference {
                        conf_id: conf_id.clone(),
                        title,
                        peer_id: peer_id.clone(),
                        participants,
                    }),
                );
                changed
            }
            EventKind::ConferenceDeleted => set(&mut self.conference, None),
            EventKind::ParticipantJoined(p) => {
                let conference = self.conference.get_or_insert_with(Conference::default);
                !conference.participants.contains(&p.peer_id)
                    && conference.participants.insert(p.clone())
            }
            EventKind::ParticipantLeft { peer_id } => match &mut self.conference {
                Some(c) => c.participants.remove(peer_id),
                None => false,
            },
            EventKind::HardwareChanged => self.apply_hardware(f),
            EventKind::Login {
                result,
                peer_id,
                peer_dn,
            } => {
                if *result != 0 {
                    return false;
                }
                let mut changed = set(&mut self.logged_in, Some(true));
                changed |= set(&mut self.user, peer_id.clone());
                changed |= set(&mut self.user_name, peer_dn.clone());
                changed
            }
            EventKind::Logout => {
                let mut changed = set(&mut self.logged_in, Some(false));
                changed |= set(&mut self.user, None);
                changed |= set(&mut self.user_name, None);
                changed
            }
            EventKind::ServerConnected { server } => {
                let mut changed = set(&mut self.server_connected, Some(true));
                changed |= set(&mut self.server, Some(server.clone()));
                changed
            }
            EventKind::ServerDisconnected => set(&mut self.server_connected, Some(false)),
            EventKind::WindowStateChanged { window_state } => {
                set(&mut self.window_state, Some(*window_state))
            }
            EventKind::SettingChanged { name, value } => {
                if self.settings.get(name) == Some(value) {
                    false
                } else {
                    self.settings.insert(name.clone(), value.clone());
                    true
                }
            }
            EventKind::MonitorsChanged => {
                set(&mut self.monitors, Some(Value::Object(event.data())))
            }
            EventKind::PtzChanged => {
                let changed = self.panel.apply_ptz(f);
                changed | set(&mut self.ptz, Some(Value::Object(event.data())))
            }
            _ => self.panel.apply_event(&event.name, f),
        }
    }

    /// Updates the state from a successful reply; returns whether anything changed.
    pub fn apply_response(&mut self, response: &Response) -> bool {
        if !response.result {
            return false;
        }
        let f = &response.fields;
        match response.method.as_str() {
            "getAppState" => {
                let state = f
                    .get("appState")
                    .and_then(Value::as_i64)
                    .and_then(AppState::from_wire);
                let mut changed = self.set_app_state(state);
                if let Some(port) = f.get("embeddedHttpPort").and_then(Value::as_u64) {
                    changed |= set(&mut self.http_port, u16::try_from(port).ok());
                }
                changed | self.panel.apply_app_state(f)
            }
            "getMicMute" => set(&mut self.mic_muted, f.get("mute").and_then(Value::as_bool)),
            "getVideoMute" => set(
                &mut self.camera_muted,
                f.get("mute").and_then(Value::as_bool),
            ),
            "getAudioMute" => set(
                &mut self.speaker_muted,
                f.get("mute").and_then(Value::as_bool),
            ),
            "getHardware" => self.apply_hardware(f),
            "getLogin" => {
                let logged_in = f.get("isLoggedIn").and_then(Value::as_bool);
                let mut changed = set(&mut self.logged_in, logged_in);
                if logged_in == Some(true) {
                    changed |= set(&mut self.user, str_of(f, "peerId"));
                    changed |= set(&mut self.user_name, str_of(f, "peerDn"));
                } else {
                    changed |= set(&mut self.user, None);
                    changed |= set(&mut self.user_name, None);
                }
                changed
            }
            "getConnected" => {
                // state: 0 not connected, 1 connecting, 2 connected (catalog enums.connection_state).
                let connected = f.get("state").and_then(Value::as_i64).map(|s| s == 2);
                let server = f
                    .get("serverInfo")
                    .and_then(Value::as_object)
                    .and_then(|info| str_of(info, "server"));
                let mut changed = set(&mut self.server_connected, connected);
                if connected == Some(true) {
                    changed |= set(&mut self.server, server);
                }
                changed
            }
            "getConferences" => {
                let Some(conf_id) = str_of(f, "confId").filter(|c| !c.is_empty()) else {
                    return false;
                };
                let conference = self.conference.get_or_insert_with(Conference::default);
                let mut changed = set(&mut conference.conf_id, conf_id);
                if let Some(title) = str_of(f, "confTitle").filter(|t| !t.is_empty()) {
                    changed |= set(&mut conference.title, Some(title));
                }
                changed
            }
            "getConferenceParticipants" => {
                let participants: Vec<Participant> = f
                    .get("participants")
                    .and_then(|v| serde_json::from_value(v.clone()).ok())
                    .unwrap_or_default();
                // The Room lists itself too; keep only the others (inferred: our own entry
                // carries our logged-in peer id as its prefix).
                let me = self.user.clone().unwrap_or_default();
                let others: Participants = participants
                    .into_iter()
                    .filter(|p| me.is_empty() || !p.peer_id.starts_with(&me))
                    .collect();
                // Creating the conference and changing its id are changes too: the Room client
                // only notifies watchers when this returns true.
                let mut changed = self.conference.is_none();
                let conference = self.conference.get_or_insert_with(Conference::default);
                if let Some(conf_id) = str_of(f, "confId") {
                    changed |= set(&mut conference.conf_id, conf_id);
                }
                changed |= set(&mut conference.participants, others);
                changed
            }
            "getSystemInfo" => {
                let data = Value::Object(response.data());
                let version = product_version(&data);
                let mut changed = set(&mut self.version, version);
                changed |= set(&mut self.system_info, Some(data));
                changed
            }
            "getMonitorsInfo" => set(&mut self.monitors, Some(Value::Object(response.data()))),
            "getPtzControls" => {
                let changed = self.panel.apply_ptz(f);
                changed | set(&mut self.ptz, Some(Value::Object(response.data())))
            }
            "getSettings" => {
                let mut settings = Map::new();
                for item in f
                    .get("settings")
                    .and_then(Value::as_array)
                    .into_iter()
                    .flatten()
                {
                    if let (Some(name), Some(value)) =
                        (item.get("name").and_then(Value::as_str), item.get("value"))
                    {
                        settings.insert(name.to_owned(), value.clone());
                    }
                }
                set(&mut self.settings, settings)
            }
            method => self.panel.apply_response(method, f),
        }
    }
}

/// The Room's version from `getSystemInfo`: `productInfo` is `{major, minor, revision, build}`
/// (the protocol catalog), shown as `5.0.2.1043`; a `version` string there is taken as is.
fn product_version(data: &Value) -> Option<String> {
    let info = data.get("productInfo")?;
    if let Some(version) = info.get("version").and_then(Value::as_str) {
        return Some(version.to_owned());
    }
    let parts: Vec<String> = ["major", "minor", "revision", "build"]
        .iter()
        .map_while(|k| info.get(*k).and_then(Value::as_u64).map(|n| n.to_string()))
        .collect();
    (!parts.is_empty()).then(|| parts.join("."))
}

#[cfg(test)]
mod tests {
    use super::*;
    use crate::protocol::{Incoming, parse_incoming};
    use serde_json::json;

    fn event(name: &str, data: Value) -> Event {
        Event::from_data(name, data)
    }

    fn response(text: &str) -> Response {
        match parse_incoming(text).unwrap() {
            Incoming::Response(r) => r,
            Incoming::Event(_) => panic!("not a response"),
        }
    }

    #[test]
    fn incoming_call_accepted_then_hung_up() {
        let mut s = RoomState::default();
        assert!(s.apply_event(&event(
            "inviteReceived",
            json!({"peerId":"bob@srv","peerDn":"Bob","type":0,"confId":"c1"})
        )));
        assert!(s.apply_event(&event("appStateChanged", json!({"appState":4}))));
        assert!(s.ringing());
        assert_eq!(s.caller.as_ref().unwrap().peer_dn, "Bob");
        s.apply_event(&event(
            "conferenceCreated",
            json!({"confId":"c1","confType":0,"peerId":"bob@srv"}),
        ));
        s.apply_event(&event("appStateChanged", json!({"appState":5})));
        s.apply_event(&event(
            "newParticipantInConference",
            json!({"peerId":"bob@srv/1","peerDn":"Bob"}),
        ));
        assert!(s.in_call());
        assert!(!s.ringing());
        assert_eq!(s.participant_count(), 1);
        s.apply_event(&event(
            "participantLeftConference",
            json!({"peerId":"bob@srv/1"}),
        ));
        assert_eq!(s.participant_count(), 0);
        s.apply_event(&event("appStateChanged", json!({"appState":6})));
        s.apply_event(&event("conferenceDeleted", json!({"confId":"c1"})));
        s.apply_event(&event("appStateChanged", json!({"appState":3})));
        assert!(!s.in_call());
        assert!(s.conference.is_none());
    }

    #[test]
    fn mutes_and_devices() {
        let mut s = RoomState::default();
        assert!(s.apply_response(&response(
            r#"{"method":"getMicMute","requestId":"1","mute":true,"result":true}"#
        )));
        assert_eq!(s.mic_muted, Some(true));
        assert!(!s.apply_event(&event("audioCapturerMute", json!({"mute":true}))));
        assert!(s.apply_event(&event("audioCapturerMute", json!({"mute":false}))));
        let hw = std::fs::read_to_string(concat!(
            env!("CARGO_MANIFEST_DIR"),
            "/protocol/examples/getHardware.response.json"
        ))
        .unwrap();
        assert!(s.apply_response(&response(&hw)));
        assert_eq!(s.cameras.len(), 1);
        assert_eq!(s.camera.as_ref().unwrap().name, "USB2.0 UVC HD Webcam");
        assert_eq!(s.microphones.len(), 2);
    }

    #[test]
    fn participant_replies_report_every_change() {
        // Found by the reducer property test and the room_frame fuzz target: an empty list
        // created the conference, and a new confId replaced the old one, without reporting it.
        let mut s = RoomState::default();
        assert!(s.apply_response(&response(
            r#"{"method":"getConferenceParticipants","result":true}"#
        )));
        assert!(s.conference.is_some());
        assert!(s.apply_response(&response(
            r#"{"method":"getConferenceParticipants","confId":"c2","participants":[],"result":true}"#
        )));
        assert_eq!(s.conference.as_ref().unwrap().conf_id, "c2");
        assert!(!s.apply_response(&response(
            r#"{"method":"getConferenceParticipants","confId":"c2","participants":[],"result":true}"#
        )));
    }

    #[test]
    fn failed_replies_change_nothing() {
        let mut s = RoomState::default();
        assert!(!s.apply_response(&response(
            r#"{"method":"getMicMute","result":false,"error":"x"}"#
        )));
        assert_eq!(s, RoomState::default());
    }
}
