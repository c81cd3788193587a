//! The field table: every field a room shows and every field it can be set through, in one
//! place.
//!
//! A row says what a field is (its value in the retained JSON state, whether it also has a plain
//! topic), how it is set (the payload grammar and the catalog method behind it) and how Home
//! Assistant shows it. Publishing ([`state_document`], [`plain_fields`]), command parsing
//! ([`Setter::action`]), Home Assistant discovery (`crate::homeassistant`), `status` and the docs
//! all read this table; adding a settable field means adding a row (and the Room call it makes).

use std::fmt;

use serde_json::{Map, Value, json};

use crate::protocol::{AppState, Device};
use crate::room::{PtzMove, RoomState};

/// Longest string published on a plain topic: Home Assistant drops longer states, and panels
/// have small buffers.
pub const MAX_PLAIN_LEN: usize = 255;

/// Most participants listed in the state document (the count is always exact).
pub const MAX_LISTED_PARTICIPANTS: usize = 100;

/// Longest piece of a payload quoted back in an error (characters).
const MAX_QUOTED: usize = 64;

/// What a field's value is, and so how its plain payload reads.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum Kind {
    /// `ON` / `OFF` on the plain topic, `true` / `false` in JSON.
    Switch,
    /// Text, truncated to [`MAX_PLAIN_LEN`] characters on the plain topic; empty when unknown.
    Text,
    /// A whole number.
    Integer,
    /// A JSON list (JSON state only).
    List,
    /// Set only: no state of its own.
    Action,
}

/// One field of a room.
pub struct Field {
    /// Name in the JSON state, the plain topic `<base>/<room>/<name>` and `set/<name>`.
    pub name: &'static str,
    /// What the value is.
    pub kind: Kind,
    /// Whether it has a retained plain topic besides its member of the JSON state.
    pub plain: bool,
    /// Its value in the JSON state; `None` for set-only fields.
    pub value: Option<fn(&RoomState) -> Value>,
    /// How it is set, when it is settable.
    pub set: Option<Setter>,
    /// The Home Assistant entities that show or set it.
    pub ha: &'static [HaEntity],
    /// One line for people (docs, `HELP`).
    pub about: &'static str,
}

/// How a settable field turns a payload into a catalog request.
#[derive(Clone, Copy)]
pub enum Setter {
    /// `ON`, `OFF` or `TOGGLE` (also `TRUE`/`FALSE`, `1`/`0`, `MUTE`/`UNMUTE`) → `method`
    /// with `{"mute": bool}`.
    Mute {
        /// Catalog method.
        method: &'static str,
        /// The current value, for `TOGGLE`.
        current: fn(&RoomState) -> Option<bool>,
    },
    /// A device name (or description) the Room lists, or `none` → `method` with
    /// `{"name", "description"}`.
    Device {
        /// Catalog method.
        method: &'static str,
        /// The devices to choose from.
        list: fn(&RoomState) -> &[Device],
    },
    /// `accept`, `reject`, `hangup`, `hangup_all` or a TrueConf ID to call.
    Call,
    /// One PTZ step: `left`, `right`, `up`, `down`, `zoom_in`, `zoom_out`, `stop`.
    Ptz,
    /// `minimized` or `fullscreen` → `changeWindowState`.
    Window,
}

/// How Home Assistant shows (or sets) a field; rendered by `crate::homeassistant`.
pub struct HaEntity {
    /// Object id, also the end of the unique id.
    pub object: &'static str,
    /// Entity name shown in Home Assistant.
    pub name: &'static str,
    /// Material Design icon.
    pub icon: &'static str,
    /// `diagnostic` or `config`, when not a primary entity.
    pub category: Option<&'static str>,
    /// Home Assistant device class, when one fits.
    pub device_class: Option<&'static str>,
    /// The platform and what it needs.
    pub component: Component,
}

/// The Home Assistant platform of an entity.
pub enum Component {
    /// A sensor. Text is truncated to Home Assistant's state limit.
    Sensor {
        /// Fixed options (an `enum` sensor); an unknown value reads as unknown.
        options: Option<fn() -> Vec<&'static str>>,
        /// A number to keep statistics of (`state_class: measurement`).
        measurement: bool,
        /// A member of the JSON state shown instead of the field while not empty.
        prefer: Option<&'static str>,
        /// Members of the JSON state shown as attributes (lists bounded).
        attributes: &'static [&'static str],
    },
    /// `ON`/`OFF` as on/off.
    BinarySensor,
    /// A switch setting the field.
    Switch,
    /// A select of the devices the setter lists.
    Select,
    /// A text box setting the field.
    Text,
    /// A button that sets the field to `payload`.
    Button {
        /// The payload pressed.
        payload: &'static str,
    },
}

impl Component {
    /// The Home Assistant platform name.
    pub fn platform(&self) -> &'static str {
        match self {
            Component::Sensor { .. } => "sensor",
            Component::BinarySensor => "binary_sensor",
            Component::Switch => "switch",
            Component::Select => "select",
            Component::Text => "text",
            Component::Button { .. } => "button",
        }
    }
}

const fn sensor(attributes: &'static [&'static str]) -> Component {
    Component::Sensor {
        options: None,
        measurement: false,
        prefer: None,
        attributes,
    }
}

const fn ha(
    object: &'static str,
    name: &'static str,
    icon: &'static str,
    component: Component,
) -> HaEntity {
    HaEntity {
        object,
        name,
        icon,
        category: None,
        device_class: None,
        component,
    }
}

const fn button(
    object: &'static str,
    name: &'static str,
    icon: &'static str,
    payload: &'static str,
) -> HaEntity {
    ha(object, name, icon, Component::Button { payload })
}

const fn diagnostic(entity: HaEntity) -> HaEntity {
    HaEntity {
        category: Some("diagnostic"),
        ..entity
    }
}

const fn class(device_class: &'static str, entity: HaEntity) -> HaEntity {
    HaEntity {
        device_class: Some(device_class),
        ..entity
    }
}

const fn config(entity: HaEntity) -> HaEntity {
    HaEntity {
        category: Some("config"),
        ..entity
    }
}

const fn state_field(
    name: &'static str,
    kind: Kind,
    plain: bool,
    value: fn(&RoomState) -> Value,
    ha: &'static [HaEntity],
    about: &'static str,
) -> Field {
    Field {
        name,
        kind,
        plain,
        value: Some(value),
        set: None,
        ha,
        about,
    }
}

const fn settable(field: Field, setter: Setter) -> Field {
    Field {
        set: Some(setter),
        ..field
    }
}

fn text(value: Option<&str>) -> Value {
    json!(value.unwrap_or(""))
}

fn device_name(device: &Option<Device>) -> Value {
    json!(device.as_ref().map_or("", |d| d.name.as_str()))
}

fn device_names(list: &[Device]) -> Value {
    json!(list.iter().map(|d| d.name.as_str()).collect::<Vec<_>>())
}

fn app_states() -> Vec<&'static str> {
    AppState::ALL.iter().map(|s| s.as_str()).collect()
}

const PTZ_BUTTONS: &[HaEntity] = &[
    button("ptz_left", "PTZ left", "mdi:arrow-left-bold", "left"),
    button("ptz_right", "PTZ right", "mdi:arrow-right-bold", "right"),
    button("ptz_up", "PTZ up", "mdi:arrow-up-bold", "up"),
    button("ptz_down", "PTZ down", "mdi:arrow-down-bold", "down"),
    button("ptz_zoom_in", "PTZ zoom in", "mdi:magnify-plus", "zoom_in"),
    ha(
        "ptz_zoom_out",
        "PTZ zoom out",
        "mdi:magnify-minus",
        Component::Button {
            payload: "zoom_out",
        },
    ),
    button("ptz_stop", "PTZ stop", "mdi:stop", "stop"),
];

/// Every field, in the order the docs list them.
pub static FIELDS: &[Field] = &[
    state_field(
        "app_state",
        Kind::Text,
        true,
        |s| json!(s.app_state.map_or("unknown", |a| a.as_str())),
        &[ha(
            "app_state",
            "State",
            "mdi:video-account",
            Component::Sensor {
                options: Some(app_states),
                measurement: false,
                prefer: None,
                attributes: &[],
            },
        )],
        "`none`, `connect`, `login`, `normal` (idle), `wait` (ringing), `conference`, `close`, or `unknown`",
    ),
    state_field(
        "in_call",
        Kind::Switch,
        true,
        |s| json!(s.in_call()),
        &[class(
            "occupancy",
            ha(
                "in_call",
                "In call",
                "mdi:phone-in-talk",
                Component::BinarySensor,
            ),
        )],
        "in a call or conference (use for occupancy)",
    ),
    state_field(
        "ringing",
        Kind::Switch,
        true,
        |s| json!(s.ringing()),
        &[ha(
            "ringing",
            "Ringing",
            "mdi:phone-ring",
            Component::BinarySensor,
        )],
        "an incoming call is ringing",
    ),
    state_field(
        "caller",
        Kind::Text,
        true,
        |s| text(s.caller.as_ref().map(|c| c.peer_id.as_str())),
        &[ha(
            "caller",
            "Caller",
            "mdi:phone-incoming",
            Component::Sensor {
                options: None,
                measurement: false,
                prefer: Some("caller_name"),
                attributes: &["caller", "caller_name"],
            },
        )],
        "TrueConf ID of the ringing caller; empty when none",
    ),
    state_field(
        "caller_name",
        Kind::Text,
        true,
        |s| text(s.caller.as_ref().map(|c| c.peer_dn.as_str())),
        &[],
        "display name of the ringing caller; empty when none",
    ),
    settable(
        state_field(
            "mic_muted",
            Kind::Switch,
            true,
            |s| json!(s.mic_muted.unwrap_or(false)),
            &[ha(
                "mic_muted",
                "Microphone mute",
                "mdi:microphone-off",
                Component::Switch,
            )],
            "local microphone muted",
        ),
        Setter::Mute {
            method: "setMicMute",
            current: |s| s.mic_muted,
        },
    ),
    settable(
        state_field(
            "camera_muted",
            Kind::Switch,
            true,
            |s| json!(s.camera_muted.unwrap_or(false)),
            &[ha(
                "camera_muted",
                "Camera mute",
                "mdi:video-off",
                Component::Switch,
            )],
            "local camera muted",
        ),
        Setter::Mute {
            method: "setVideoMute",
            current: |s| s.camera_muted,
        },
    ),
    settable(
        state_field(
            "speaker_muted",
            Kind::Switch,
            true,
            |s| json!(s.speaker_muted.unwrap_or(false)),
            &[ha(
                "speaker_muted",
                "Speaker mute",
                "mdi:volume-off",
                Component::Switch,
            )],
            "local speaker muted",
        ),
        Setter::Mute {
            method: "setAudioMute",
            current: |s| s.speaker_muted,
        },
    ),
    settable(
        state_field(
            "camera",
            Kind::Text,
            true,
            |s| device_name(&s.camera),
            &[config(ha(
                "camera",
                "Camera",
                "mdi:webcam",
                Component::Select,
            ))],
            "selected camera (a name from `cameras`)",
        ),
        Setter::Device {
            method: "setVideoCapturer",
            list: |s| &s.cameras,
        },
    ),
    settable(
        state_field(
            "microphone",
            Kind::Text,
            true,
            |s| device_name(&s.microphone),
            &[config(ha(
                "microphone",
                "Microphone",
                "mdi:microphone",
                Component::Select,
            ))],
            "selected microphone (a name from `microphones`)",
        ),
        Setter::Device {
            method: "setAudioCapturer",
            list: |s| &s.microphones,
        },
    ),
    settable(
        state_field(
            "speaker",
            Kind::Text,
            true,
            |s| device_name(&s.speaker),
            &[config(ha(
                "speaker",
                "Speaker",
                "mdi:speaker",
                Component::Select,
            ))],
            "selected speaker (a name from `speakers`)",
        ),
        Setter::Device {
            method: "setAudioRenderer",
            list: |s| &s.speakers,
        },
    ),
    state_field(
        "cameras",
        Kind::List,
        false,
        |s| device_names(&s.cameras),
        &[],
        "camera names the Room has",
    ),
    state_field(
        "microphones",
        Kind::List,
        false,
        |s| device_names(&s.microphones),
        &[],
        "microphone names the Room has",
    ),
    state_field(
        "speakers",
        Kind::List,
        false,
        |s| device_names(&s.speakers),
        &[],
        "speaker names the Room has",
    ),
    state_field(
        "participant_count",
        Kind::Integer,
        true,
        |s| json!(s.participant_count()),
        &[ha(
            "participant_count",
            "Participants",
            "mdi:account-multiple",
            Component::Sensor {
                options: None,
                measurement: true,
                prefer: None,
                attributes: &["participants"],
            },
        )],
        "other participants in the call",
    ),
    state_field(
        "participants",
        Kind::List,
        false,
        |s| {
            let listed: Vec<Value> = s
                .conference
                .iter()
                .flat_map(|c| c.participants.iter())
                .take(MAX_LISTED_PARTICIPANTS)
                .map(|p| json!({ "peer_id": p.peer_id, "peer_dn": p.peer_dn }))
                .collect();
            Value::Array(listed)
        },
        &[],
        "`[{peer_id, peer_dn}]`, at most 100 listed",
    ),
    state_field(
        "conference_title",
        Kind::Text,
        true,
        |s| text(s.conference.as_ref().and_then(|c| c.title.as_deref())),
        &[ha(
            "conference_title",
            "Conference",
            "mdi:account-group",
            sensor(&[]),
        )],
        "title of the current call; empty when none",
    ),
    state_field(
        "conference_id",
        Kind::Text,
        false,
        |s| text(s.conference.as_ref().map(|c| c.conf_id.as_str())),
        &[],
        "id of the current call; empty when none",
    ),
    state_field(
        "callee",
        Kind::Text,
        false,
        |s| text(s.callee.as_deref()),
        &[],
        "the party we are calling while it rings",
    ),
    state_field(
        "user",
        Kind::Text,
        true,
        |s| text(s.user.as_deref()),
        &[diagnostic(ha(
            "user",
            "Logged-in user",
            "mdi:account",
            sensor(&["user_name"]),
        ))],
        "logged-in TrueConf ID",
    ),
    state_field(
        "user_name",
        Kind::Text,
        false,
        |s| text(s.user_name.as_deref()),
        &[],
        "logged-in user's display name",
    ),
    state_field(
        "server",
        Kind::Text,
        false,
        |s| text(s.server.as_deref()),
        &[diagnostic(ha(
            "server",
            "Server",
            "mdi:server-network",
            sensor(&[]),
        ))],
        "TrueConf server the Room uses",
    ),
    state_field(
        "server_connected",
        Kind::Switch,
        true,
        |s| json!(s.server_connected.unwrap_or(false)),
        &[diagnostic(class(
            "connectivity",
            ha(
                "server_connected",
                "Server connected",
                "",
                Component::BinarySensor,
            ),
        ))],
        "connected to the TrueConf server",
    ),
    state_field(
        "logged_in",
        Kind::Switch,
        true,
        |s| json!(s.logged_in.unwrap_or(false)),
        &[diagnostic(ha(
            "logged_in",
            "Logged in",
            "mdi:account-check",
            Component::BinarySensor,
        ))],
        "a TrueConf account is logged in",
    ),
    state_field(
        "last_reject",
        Kind::Text,
        false,
        |s| text(s.last_reject.as_deref()),
        &[diagnostic(ha(
            "last_reject",
            "Last rejected call",
            "mdi:phone-cancel",
            sensor(&[]),
        ))],
        "last declined call and its cause",
    ),
    state_field(
        "window_state",
        Kind::Integer,
        false,
        |s| json!(s.window_state),
        &[],
        "main window: `1` minimised, `2` full screen, `null` unknown (set through `window`)",
    ),
    state_field(
        "version",
        Kind::Text,
        false,
        |s| text(s.version.as_deref()),
        &[],
        "Room application version (from `getSystemInfo`)",
    ),
    Field {
        name: "call",
        kind: Kind::Action,
        plain: false,
        value: None,
        set: Some(Setter::Call),
        ha: &[
            HaEntity {
                object: "call",
                name: "Call",
                icon: "mdi:phone-dial",
                category: None,
                device_class: None,
                component: Component::Text,
            },
            button("accept", "Accept call", "mdi:phone-check", "accept"),
            button("reject", "Reject call", "mdi:phone-cancel", "reject"),
            button("hangup", "Hang up", "mdi:phone-hangup", "hangup"),
        ],
        about: "accept, reject, hangup, hangup_all, or a TrueConf ID to call",
    },
    Field {
        name: "window",
        kind: Kind::Action,
        plain: false,
        value: None,
        set: Some(Setter::Window),
        ha: &[],
        about: "minimized or fullscreen (the state is `window_state`)",
    },
    Field {
        name: "ptz",
        kind: Kind::Action,
        plain: false,
        value: None,
        set: Some(Setter::Ptz),
        ha: PTZ_BUTTONS,
        about: "One camera step: left, right, up, down, zoom_in, zoom_out, stop",
    },
];

/// The columns `trueconf2mqtt status` prints after the room and its availability:
/// `(field, header)`.
pub const STATUS_COLUMNS: &[(&str, &str)] = &[
    ("app_state", "APP STATE"),
    ("in_call", "IN CALL"),
    ("mic_muted", "MIC MUTED"),
    ("camera_muted", "CAMERA MUTED"),
    ("participant_count", "PARTICIPANTS"),
    ("caller", "CALLER"),
];

/// The field named `name`, if any.
pub fn field(name: &str) -> Option<&'static Field> {
    FIELDS.iter().find(|f| f.name == name)
}

/// The names of the settable fields, in table order.
pub fn settable_fields() -> impl Iterator<Item = &'static str> {
    FIELDS.iter().filter(|f| f.set.is_some()).map(|f| f.name)
}

/// The fields that have a plain topic, in table order.
pub fn plain_field_names() -> impl Iterator<Item = &'static str> {
    FIELDS.iter().filter(|f| f.plain).map(|f| f.name)
}

/// The retained JSON state of a room: one member per field with a value.
pub fn state_document(state: &RoomState) -> Value {
    let members: Map<String, Value> = FIELDS
        .iter()
        .filter_map(|f| Some((f.name.to_owned(), (f.value?)(state))))
        .collect();
    Value::Object(members)
}

/// A JSON value as a panel-friendly plain string: `ON`/`OFF`, numbers, text truncated to
/// [`MAX_PLAIN_LEN`] characters.
pub fn plain(value: &Value) -> String {
    let text = match value {
        Value::Bool(true) => "ON".to_owned(),
        Value::Bool(false) => "OFF".to_owned(),
        Value::Null => String::new(),
        Value::String(s) => s.clone(),
        other => other.to_string(),
    };
    if text.chars().count() > MAX_PLAIN_LEN {
        text.chars().take(MAX_PLAIN_LEN).collect()
    } else {
        text
    }
}

/// `(field, plain value)` for every plain topic, read from a state document.
pub fn plain_fields(document: &Value) -> Vec<(&'static str, String)> {
    plain_field_names()
        .map(|name| (name, plain(document.get(name).unwrap_or(&Value::Null))))
        .collect()
}

/// One API request a command makes.
#[derive(Debug, Clone, PartialEq)]
pub struct Action {
    /// Catalog method.
    pub method: String,
    /// Parameters (validated against the catalog before they are sent).
    pub params: Map<String, Value>,
}

impl Action {
    fn new(method: &str, params: Value) -> Action {
        Action {
            method: method.to_owned(),
            params: match params {
                Value::Object(map) => map,
                _ => Map::new(),
            },
        }
    }
}

/// Why a `field = value` cannot be set. The message quotes at most 64 characters of the
/// payload.
#[derive(Debug, Clone, PartialEq, Eq)]
pub enum FieldError {
    /// No settable field has this name.
    UnknownField {
        /// The name asked for (shortened).
        field: String,
    },
    /// The value does not fit the field's grammar; `expected` says what would.
    Invalid {
        /// The field.
        field: &'static str,
        /// What the grammar accepts.
        expected: String,
        /// The value given (shortened).
        got: String,
    },
    /// No device of that name; `available` lists the Room's.
    NoDevice {
        /// The field.
        field: &'static str,
        /// The name asked for (shortened).
        wanted: String,
        /// The Room's devices of this kind.
        available: Vec<String>,
    },
    /// `call` with an empty payload.
    EmptyCall,
}

impl fmt::Display for FieldError {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        match self {
            FieldError::UnknownField { field } => {
                let settable: Vec<&str> = settable_fields().collect();
                write!(
                    f,
                    "unknown field '{field}' (settable: {})",
                    settable.join(", ")
                )
            }
            FieldError::Invalid {
                field,
                expected,
                got,
            } => write!(f, "{field}: expected {expected}, got '{got}'"),
            FieldError::NoDevice {
                field,
                wanted,
                available,
            } => write!(
                f,
                "{field}: no device named '{wanted}' (available: {})",
                if available.is_empty() {
                    "none".to_owned()
                } else {
                    available.join(", ")
                }
            ),
            FieldError::EmptyCall => {
                f.write_str("call: expected accept, reject, hangup or a TrueConf ID to call")
            }
        }
    }
}

impl std::error::Error for FieldError {}

/// `text`, cut to [`MAX_QUOTED`] characters for an error message.
pub(crate) fn shorten(text: &str) -> String {
    if text.chars().count() > MAX_QUOTED {
        format!("{}…", text.chars().take(MAX_QUOTED).collect::<String>())
    } else {
        text.to_owned()
    }
}

/// Turns one `field = value` into the request that sets it, using the current state for
/// device names and toggles.
pub fn field_action(name: &str, value: &str, state: &RoomState) -> Result<Action, FieldError> {
    let Some((field, setter)) = field(name).and_then(|f| Some((f, f.set?))) else {
        return Err(FieldError::UnknownField {
            field: shorten(name),
        });
    };
    setter.action(field.name, value, state)
}

impl Setter {
    /// The request that sets field `name` to `value`.
    pub fn action(
        self,
        name: &'static str,
        value: &str,
        state: &RoomState,
    ) -> Result<Action, FieldError> {
        let invalid = |expected: &str| FieldError::Invalid {
            field: name,
            expected: expected.to_owned(),
            got: shorten(value),
        };
        let word = value.trim().to_ascii_lowercase();
        Ok(match self {
            Setter::Mute { method, current } => {
                let mute = match word.as_str() {
                    "on" | "true" | "1" | "mute" | "muted" => true,
                    "off" | "false" | "0" | "unmute" | "unmuted" => false,
                    "toggle" => !current(state).unwrap_or(false),
                    _ => return Err(invalid("ON, OFF or TOGGLE")),
                };
                Action::new(method, json!({ "mute": mute }))
            }
            Setter::Device { method, list } => {
                let device = find_device(name, list(state), value)?;
                Action::new(
                    method,
                    json!({ "name": device.name, "description": device.description }),
                )
            }
            Setter::Call => match word.as_str() {
                "accept" | "answer" => Action::new("accept", json!({})),
                "reject" | "decline" => Action::new("reject", json!({})),
                "hangup" | "hang_up" | "end" => Action::new("hangUp", json!({})),
                "hangup_all" | "end_for_all" => Action::new("hangUp", json!({ "forAll": true })),
                "" => return Err(FieldError::EmptyCall),
                _ => Action::new("call", json!({ "peerId": value.trim() })),
            },
            Setter::Ptz => {
                let Some(movement) = PtzMove::parse(value) else {
                    let words: Vec<&str> = PtzMove::ALL.iter().map(|m| m.as_str()).collect();
                    return Err(invalid(&format!("one of {}", words.join(", "))));
                };
                Action::new(movement.method(), json!({}))
            }
            Setter::Window => {
                let window_state = match word.as_str() {
                    "minimized" | "minimised" | "1" => 1,
                    "fullscreen" | "full_screen" | "maximized" | "2" => 2,
                    _ => return Err(invalid("minimized or fullscreen")),
                };
                Action::new(
                    "changeWindowState",
                    json!({ "windowState": window_state, "stayOnTop": false }),
                )
            }
        })
    }

    /// The payloads it accepts, for people.
    pub fn grammar(self) -> &'static str {
        match self {
            Setter::Mute { .. } => "`ON`, `OFF`, `TOGGLE` (also `true`/`false`/`1`/`0`)",
            Setter::Device { .. } => "a device name (or its id; `none` for no device)",
            Setter::Call => "`accept`, `reject`, `hangup`, `hangup_all`, or a TrueConf ID to call",
            Setter::Ptz => "`left`, `right`, `up`, `down`, `zoom_in`, `zoom_out`, `stop`",
            Setter::Window => "`minimized`, `fullscreen`",
        }
    }

    /// The catalog methods this setter can call (for the docs and the table's tests).
    pub fn methods(self) -> Vec<&'static str> {
        match self {
            Setter::Mute { method, .. } | Setter::Device { method, .. } => vec![method],
            Setter::Call => vec!["accept", "reject", "hangUp", "call"],
            Setter::Ptz => PtzMove::ALL.iter().map(|m| m.method()).collect(),
            Setter::Window => vec!["changeWindowState"],
        }
    }
}

/// The README's field tables, generated from [`FIELDS`]: the state fields (JSON members, *plain*
/// ones with a topic of their own) and the settable fields.
pub fn markdown() -> String {
    let mut out = String::from(
        "State fields (in the JSON document; those marked *plain* also have their own topic):\n\n\
         | field | | meaning |\n|---|---|---|\n",
    );
    for f in FIELDS.iter().filter(|f| f.value.is_some()) {
        let plain = if f.plain { "plain" } else { "" };
        out.push_str(&format!("| `{}` | {plain} | {} |\n", f.name, f.about));
    }
    out.push_str(
        "\nSettable fields (`set` / `set/<field>`):\n\n| field | payload | API call |\n|---|---|---|\n",
    );
    for f in FIELDS {
        let Some(setter) = f.set else { continue };
        let methods: Vec<String> = setter.methods().iter().map(|m| format!("`{m}`")).collect();
        out.push_str(&format!(
            "| `{}` | {} | {} |\n",
            f.name,
            setter.grammar(),
            methods.join(", ")
        ));
    }
    out
}

fn find_device(field: &'static str, list: &[Device], wanted: &str) -> Result<Device, FieldError> {
    let wanted = wanted.trim();
    if wanted.eq_ignore_ascii_case("none") {
        return Ok(Device {
            name: "none".into(),
            description: "none".into(),
        });
    }
    list.iter()
        .find(|d| d.name == wanted || d.description == wanted)
        .or_else(|| list.iter().find(|d| d.name.eq_ignore_ascii_case(wanted)))
        .cloned()
        .ok_or_else(|| FieldError::NoDevice {
            field,
            wanted: shorten(wanted),
            available: list.iter().map(|d| d.name.clone()).collect(),
        })
}

#[cfg(test)]
mod tests {
    use super::*;
    use crate::protocol::catalog;

    fn state() -> RoomState {
        RoomState {
            app_state: Some(AppState::Conference),
            mic_muted: Some(true),
            cameras: vec![Device {
                name: "Cam A".into(),
                description: "cam-a".into(),
            }],
            ..RoomState::default()
        }
    }

    #[test]
    fn plain_values_follow_the_document() {
        let doc = state_document(&state());
        let fields = plain_fields(&doc);
        assert!(fields.contains(&("app_state", "conference".into())));
        assert!(fields.contains(&("in_call", "ON".into())));
        assert!(fields.contains(&("mic_muted", "ON".into())));
        assert!(fields.contains(&("ringing", "OFF".into())));
        assert_eq!(fields.len(), plain_field_names().count());
    }

    #[test]
    fn long_text_is_truncated() {
        let long = Value::String("é".repeat(1000));
        assert_eq!(plain(&long).chars().count(), MAX_PLAIN_LEN);
    }

    #[test]
    fn the_table_is_consistent() {
        let mut names = std::collections::HashSet::new();
        for f in FIELDS {
            assert!(names.insert(f.name), "{} twice", f.name);
            assert_eq!(f.value.is_none(), f.kind == Kind::Action, "{}", f.name);
            assert!(
                !f.plain || f.value.is_some(),
                "{} plain without a value",
                f.name
            );
            if let Some(setter) = f.set {
                for method in setter.methods() {
                    assert!(catalog().method(method).is_some(), "{}: {method}", f.name);
                }
            }
            let needs_setter = f.ha.iter().any(|e| {
                matches!(
                    e.component,
                    Component::Switch
                        | Component::Select
                        | Component::Text
                        | Component::Button { .. }
                )
            });
            assert!(
                !needs_setter || f.set.is_some(),
                "{} commands nothing",
                f.name
            );
        }
    }

    #[test]
    fn status_columns_are_fields() {
        for (name, _) in STATUS_COLUMNS {
            assert!(field(name).and_then(|f| f.value).is_some(), "{name}");
        }
    }

    #[test]
    fn plain_fields_become_actions() {
        let s = state();
        assert_eq!(
            field_action("mic_muted", "OFF", &s).unwrap().params["mute"],
            json!(false)
        );
        assert_eq!(
            field_action("mic_muted", "toggle", &s).unwrap().params["mute"],
            json!(false)
        );
        assert_eq!(
            field_action("camera", "cam a", &s).unwrap().params["description"],
            json!("cam-a")
        );
        assert_eq!(field_action("call", "accept", &s).unwrap().method, "accept");
        assert_eq!(
            field_action("call", "bob@srv", &s).unwrap().params["peerId"],
            json!("bob@srv")
        );
        assert_eq!(
            field_action("ptz", "zoom_in", &s).unwrap().method,
            "ptzZoomInc"
        );
        assert_eq!(
            field_action("camera", "nope", &s),
            Err(FieldError::NoDevice {
                field: "camera",
                wanted: "nope".into(),
                available: vec!["Cam A".into()]
            })
        );
        assert!(matches!(
            field_action("mic_muted", "maybe", &s),
            Err(FieldError::Invalid {
                field: "mic_muted",
                ..
            })
        ));
        assert!(matches!(
            field_action("volume", "1", &s),
            Err(FieldError::UnknownField { .. })
        ));
        assert!(matches!(
            field_action("app_state", "normal", &s),
            Err(FieldError::UnknownField { .. })
        ));
        assert_eq!(field_action("call", " ", &s), Err(FieldError::EmptyCall));
    }

    #[test]
    fn errors_read_as_before() {
        let s = state();
        let message = |f: &str, v: &str| field_action(f, v, &s).unwrap_err().to_string();
        assert_eq!(
            message("mic_muted", "maybe"),
            "mic_muted: expected ON, OFF or TOGGLE, got 'maybe'"
        );
        assert_eq!(
            message("camera", "nope"),
            "camera: no device named 'nope' (available: Cam A)"
        );
        assert!(message("volume", "1").starts_with("unknown field 'volume' (settable: mic_muted,"));
    }
}
