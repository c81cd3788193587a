//! Room notifications: the raw members plus a typed view of the ones the bridge acts on.

use serde::{Deserialize, Serialize};
use serde_json::{Map, Value};

/// The application state of the Room (`appState`, SPEC §7).
#[derive(Debug, Clone, Copy, PartialEq, Eq, Hash, Serialize, Deserialize)]
#[serde(rename_all = "snake_case")]
pub enum AppState {
    /// 0: not connected to a TrueConf server.
    None,
    /// 1: connecting to the server.
    Connect,
    /// 2: connected, a user must log in.
    Login,
    /// 3: logged in and idle.
    Normal,
    /// 4: ringing, outgoing or incoming.
    Wait,
    /// 5: in a call or conference.
    Conference,
    /// 6: a call is being torn down.
    Close,
}

impl AppState {
    /// Every state, in wire order.
    pub const ALL: [AppState; 7] = [
        AppState::None,
        AppState::Connect,
        AppState::Login,
        AppState::Normal,
        AppState::Wait,
        AppState::Conference,
        AppState::Close,
    ];

    /// Converts the wire value; values outside 0–6 are unknown.
    pub fn from_wire(value: i64) -> Option<AppState> {
        usize::try_from(value)
            .ok()
            .and_then(|i| Self::ALL.get(i).copied())
    }

    /// The wire value.
    pub fn wire(self) -> i64 {
        self as i64
    }

    /// The state's name as used on MQTT (`none`, `connect`, `login`, `normal`, `wait`,
    /// `conference`, `close`).
    pub fn as_str(self) -> &'static str {
        match self {
            AppState::None => "none",
            AppState::Connect => "connect",
            AppState::Login => "login",
            AppState::Normal => "normal",
            AppState::Wait => "wait",
            AppState::Conference => "conference",
            AppState::Close => "close",
        }
    }
}

/// A camera, microphone or speaker as listed by `getHardware`.
#[derive(Debug, Clone, PartialEq, Eq, Default, Serialize, Deserialize)]
pub struct Device {
    /// Display name, shown to people.
    pub name: String,
    /// Unique device id (the Room calls it description).
    #[serde(default)]
    pub description: String,
}

/// A conference participant.
#[derive(Debug, Clone, PartialEq, Eq, Serialize, Deserialize)]
pub struct Participant {
    /// InstanceId (`user@server/xxxx`) or PeerId.
    #[serde(rename = "peerId")]
    pub peer_id: String,
    /// Display name.
    #[serde(rename = "peerDn", default)]
    pub peer_dn: String,
}

/// A notification from the Room. The full member map is kept so unknown events and unknown
/// fields pass through untouched; [`Event::kind`] is the typed view of the known ones.
#[derive(Debug, Clone, PartialEq)]
pub struct Event {
    /// The `event` member: the notification's name.
    pub name: String,
    /// All members, including `method` and `event`.
    pub fields: Map<String, Value>,
    /// Typed view, parsed once on arrival.
    pub kind: EventKind,
    /// The frame exactly as received, so it can be forwarded without serialising it again.
    pub raw: Option<std::sync::Arc<str>>,
}

/// The events the bridge reacts to; everything else is [`EventKind::Other`].
#[derive(Debug, Clone, PartialEq)]
#[non_exhaustive]
pub enum EventKind {
    /// `appStateChanged`.
    AppStateChanged {
        /// The new state (`None` for a value outside 0–6).
        state: Option<AppState>,
    },
    /// `audioCapturerMute`: the local microphone.
    MicMuted(bool),
    /// `videoCapturerMute`: the local camera.
    CameraMuted(bool),
    /// `audioRendererMute`: the local speaker.
    SpeakerMuted(bool),
    /// `micStateChangedByConferenceOwner`.
    MicMutedByOwner(bool),
    /// `cameraStateChangedByConferenceOwner`.
    CameraMutedByOwner(bool),
    /// `inviteReceived`: an incoming call or conference invitation.
    InviteReceived {
        /// Caller.
        peer_id: String,
        /// Caller's display name.
        peer_dn: String,
        /// Conference id.
        conf_id: String,
        /// Conference title for group invitations.
        conf_title: Option<String>,
    },
    /// `rejectReceived`: the callee declined or did not answer.
    RejectReceived {
        /// Reject cause (catalog `reject_causes`).
        cause: i64,
        /// Callee.
        peer_id: String,
    },
    /// `rejectSent`: we declined an incoming call.
    RejectSent {
        /// Caller.
        peer_id: String,
    },
    /// `stopCalling`: the caller gave up.
    StopCalling {
        /// Caller.
        peer_id: String,
    },
    /// `conferenceCreated`: a call or conference started.
    ConferenceCreated {
        /// Conference id.
        conf_id: String,
        /// Title, for group conferences.
        conf_title: Option<String>,
        /// The other side of a p2p call.
        peer_id: Option<String>,
    },
    /// `conferenceDeleted`.
    ConferenceDeleted,
    /// `newParticipantInConference`.
    ParticipantJoined(Participant),
    /// `participantLeftConference`.
    ParticipantLeft {
        /// The participant who left.
        peer_id: String,
    },
    /// `hardwareChanged`: carries the full `getHardware` payload.
    HardwareChanged,
    /// `login`: `result` 0 is success.
    Login {
        /// Login result code.
        result: i64,
        /// Our TrueConf ID.
        peer_id: Option<String>,
        /// Our display name.
        peer_dn: Option<String>,
    },
    /// `logout`.
    Logout,
    /// `serverConnected`.
    ServerConnected {
        /// Server address.
        server: String,
    },
    /// `serverDisconnected`.
    ServerDisconnected,
    /// `incomingChatMessage`.
    ChatMessage {
        /// Sender.
        peer_id: String,
        /// Text.
        message: String,
    },
    /// `authorizationNeeded`: this connection lost its authorisation.
    AuthorizationNeeded {
        /// Cause (catalog `auth_needed_causes`).
        cause: i64,
    },
    /// `windowStateChanged`.
    WindowStateChanged {
        /// 1 minimised, 2 full screen.
        window_state: i64,
    },
    /// `settingsChanged`: one setting.
    SettingChanged {
        /// Setting name.
        name: String,
        /// New value.
        value: Value,
    },
    /// `monitorsInfoUpdated`.
    MonitorsChanged,
    /// `ptzControlsChanged`.
    PtzChanged,
    /// Any other event, known to the catalog or not.
    Other,
}

fn str_field(fields: &Map<String, Value>, key: &str) -> Option<String> {
    fields.get(key).and_then(Value::as_str).map(str::to_owned)
}

fn bool_field(fields: &Map<String, Value>, key: &str) -> Option<bool> {
    fields.get(key).and_then(Value::as_bool)
}

fn int_field(fields: &Map<String, Value>, key: &str) -> Option<i64> {
    fields
        .get(key)
        .and_then(|v| v.as_i64().or_else(|| v.as_f64().map(|f| f as i64)))
}

impl EventKind {
    /// Builds the typed view. An event whose members do not have the expected types is `Other`
    /// (it is still delivered raw).
    fn parse(name: &str, f: &Map<String, Value>) -> Option<EventKind> {
        let s = |k| str_field(f, k);
        Some(match name {
            "appStateChanged" => EventKind::AppStateChanged {
                state: AppState::from_wire(int_field(f, "appState")?),
            },
            "audioCapturerMute" => EventKind::MicMuted(bool_field(f, "mute")?),
            "videoCapturerMute" => EventKind::CameraMuted(bool_field(f, "mute")?),
            "audioRendererMute" => EventKind::SpeakerMuted(bool_field(f, "mute")?),
            "micStateChangedByConferenceOwner" => {
                EventKind::MicMutedByOwner(bool_field(f, "mute")?)
            }
            "cameraStateChangedByConferenceOwner" => {
                EventKind::CameraMutedByOwner(bool_field(f, "mute")?)
            }
            "inviteReceived" => EventKind::InviteReceived {
                peer_id: s("peerId")?,
                peer_dn: s("peerDn").unwrap_or_default(),
                conf_id: s("confId").unwrap_or_default(),
                conf_title: s("confTitle"),
            },
            "rejectReceived" => EventKind::RejectReceived {
                cause: int_field(f, "cause").unwrap_or(0),
                peer_id: s("peerId").unwrap_or_default(),
            },
            "rejectSent" => EventKind::RejectSent {
                peer_id: s("peerId").unwrap_or_default(),
            },
            "stopCalling" => EventKind::StopCalling {
                peer_id: s("peerId").unwrap_or_default(),
            },
            "conferenceCreated" => EventKind::ConferenceCreated {
                conf_id: s("confId").unwrap_or_default(),
                conf_title: s("confTitle").filter(|t| !t.is_empty()),
                peer_id: s("peerId").filter(|p| !p.is_empty()),
            },
            "conferenceDeleted" => EventKind::ConferenceDeleted,
            "newParticipantInConference" => EventKind::ParticipantJoined(Participant {
                peer_id: s("peerId")?,
                peer_dn: s("peerDn").unwrap_or_default(),
            }),
            "participantLeftConference" => EventKind::ParticipantLeft {
                peer_id: s("peerId")?,
            },
            "hardwareChanged" => EventKind::HardwareChanged,
            "login" => EventKind::Login {
                result: int_field(f, "result")?,
                peer_id: s("peerId"),
                peer_dn: s("peerDn"),
            },
            "logout" => EventKind::Logout,
            "serverConnected" => EventKind::ServerConnected {
                server: s("server").unwrap_or_default(),
            },
            "serverDisconnected" => EventKind::ServerDisconnected,
            "incomingChatMessage" => EventKind::ChatMessage {
                peer_id: s("peerId").unwrap_or_default(),
                message: s("message").unwrap_or_default(),
            },
            "authorizationNeeded" => EventKind::AuthorizationNeeded {
                cause: int_field(f, "cause").unwrap_or(0),
            },
            "windowStateChanged" => EventKind::WindowStateChanged {
                window_state: int_field(f, "windowState")?,
            },
            "settingsChanged" => EventKind::SettingChanged {
                name: s("name")?,
                value: f.get("value").cloned().unwrap_or(Value::Null),
            },
            "monitorsInfoUpdated" => EventKind::MonitorsChanged,
            "ptzControlsChanged" => EventKind::PtzChanged,
            _ => return None,
        })
    }
}

impl Event {
    /// Wraps a parsed event frame.
    pub fn new(name: String, fields: Map<String, Value>) -> Event {
        let kind = EventKind::parse(&name, &fields).unwrap_or(EventKind::Other);
        Event {
            name,
            fields,
            kind,
            raw: None,
        }
    }

    /// Builds an event from its name and data members (used by the simulator and tests).
    pub fn from_data(name: &str, data: Value) -> Event {
        let mut fields = Map::new();
        fields.insert("method".into(), Value::String("event".into()));
        fields.insert("event".into(), Value::String(name.to_owned()));
        if let Value::Object(extra) = data {
            fields.extend(extra);
        }
        Event::new(name.to_owned(), fields)
    }

    /// The data members: everything but `method` and `event`.
    pub fn data(&self) -> Map<String, Value> {
        self.fields
            .iter()
            .filter(|(k, _)| !matches!(k.as_str(), "method" | "event"))
            .map(|(k, v)| (k.clone(), v.clone()))
            .collect()
    }

    /// The frame as JSON text: as received when known, else serialised.
    pub fn to_json(&self) -> String {
        match &self.raw {
            Some(raw) => raw.to_string(),
            None => Value::Object(self.fields.clone()).to_string(),
        }
    }

    /// The frame as JSON bytes, for publishing: the received text itself, shared rather than
    /// copied, when known; else serialised.
    pub fn json_bytes(&self) -> bytes::Bytes {
        match &self.raw {
            Some(raw) => bytes::Bytes::from_owner(SharedText(raw.clone())),
            None => Value::Object(self.fields.clone()).to_string().into(),
        }
    }
}

/// Received text lent to a [`bytes::Bytes`] without a copy.
struct SharedText(std::sync::Arc<str>);

impl AsRef<[u8]> for SharedText {
    fn as_ref(&self) -> &[u8] {
        self.0.as_bytes()
    }
}

#[cfg(test)]
mod tests {
    use super::*;
    use serde_json::json;

    #[test]
    fn typed_view_of_known_events() {
        let e = Event::from_data("appStateChanged", json!({"appState": 5}));
        assert_eq!(
            e.kind,
            EventKind::AppStateChanged {
                state: Some(AppState::Conference)
            }
        );
        let e = Event::from_data("audioCapturerMute", json!({"mute": true}));
        assert_eq!(e.kind, EventKind::MicMuted(true));
    }

    #[test]
    fn received_bytes_pass_through_unchanged() {
        // Key order and spacing as the Room sent them: published as is, not re-serialised.
        let text = r#"{ "event":"myEvent", "method":"event","data" : [1, 2] }"#;
        let Ok(crate::protocol::Incoming::Event(e)) = crate::protocol::parse_incoming(text) else {
            panic!("an event");
        };
        assert_eq!(&e.json_bytes()[..], text.as_bytes());
        let built = Event::from_data("x", json!(1));
        let value: Value = serde_json::from_slice(&built.json_bytes()).unwrap();
        assert_eq!(value["event"], "x");
    }

    #[test]
    fn unknown_and_malformed_events_stay_raw() {
        let e = Event::from_data("brandNewEvent", json!({"x": 1}));
        assert_eq!(e.kind, EventKind::Other);
        assert_eq!(e.data().get("x"), Some(&json!(1)));
        let e = Event::from_data("audioCapturerMute", json!({"mute": "yes"}));
        assert_eq!(e.kind, EventKind::Other);
    }

    #[test]
    fn app_state_wire_values() {
        for s in AppState::ALL {
            assert_eq!(AppState::from_wire(s.wire()), Some(s));
        }
        assert_eq!(AppState::from_wire(7), None);
        assert_eq!(AppState::from_wire(-1), None);
    }
}
