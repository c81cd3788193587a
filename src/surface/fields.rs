//! The field table: every field a room shows and every field it can be set through, in one
//! place.
//!
//! A row says what a field is (its value in the retained JSON state, whether it also has a plain
//! topic), how it is set (the payload grammar and the catalog method behind it) and how Home
//! Assistant shows it. Publishing ([`state_document`], [`plain_fields`]), command parsing
//! ([`Setter::action`]), Home Assistant discovery (`crate::homeassistant`), `status` and the docs
//! all read this table; adding a settable field means adding a row (and the Room call it makes).

use serde_json::{Map, Value, json};

use crate::protocol::{AppState, Device};
use crate::room::panel::preset_label;

mod checks;
mod set;

use crate::room::RoomState;
use checks::current_monitor;
pub use checks::{check_callee, monitor_names};
pub(crate) use set::shorten;
pub use set::{Action, FieldError, field_action};

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
    /// A preset of the Room (`Preset 2`, `2` or its id) → `applyVideoCapturerPreset`.
    Preset,
    /// `new` → `addPresetFromCurrentVideoCapturer`; an existing preset →
    /// `updatePresetFromCurrentVideoCapturer`.
    PresetSave,
    /// A content source name → `startCapture`; `stop` → `stopCapture`; `stop <InstanceId>` →
    /// `sendStopContentSharing`; `default <source>` → `setDefaultContentSource`.
    Content,
    /// `start`, `stop`, `next`, `prev` or a slide number.
    Slides,
    /// `<InstanceId> ON|OFF` → `method` with `{peerId, on}`.
    Remote {
        /// Catalog method (`turnRemoteMic`, `turnRemoteCamera`).
        method: &'static str,
    },
    /// `accept|reject [<InstanceId>]` → `acceptRequestToPodium` / `rejectRequestToPodium`.
    Podium,
    /// `allow|deny` → `allowRecord` / `denyRecord` for the pending request.
    RecordConsent,
    /// `accept|reject` → `acceptRequestCameraControl` / `rejectRequestCameraControl`.
    CameraControl,
    /// A monitor name or index → `changeCurrentMonitor`.
    Monitor,
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
        &[],
        "`none`, `connect`, `login`, `normal` (idle), `wait` (ringing), `conference`, `close`, or `unknown`",
    ),
    state_field(
        "status",
        Kind::Text,
        true,
        |s| json!(status_label(s)),
        &[ha(
            "app_state",
            "State",
            "mdi:video-account",
            Component::Sensor {
                options: Some(status_labels),
                measurement: false,
                prefer: None,
                attributes: &["app_state"],
            },
        )],
        "the app state for people: `Offline`, `Connecting`, `Login required`, `Idle`, `Ringing`, `Calling`, `In call`, `Ending call`, `Unknown`",
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
    settable(
        state_field(
            "preset",
            Kind::Text,
            true,
            |s| text(s.panel.active_label().as_deref()),
            &[ha(
                "preset",
                "Camera preset",
                "mdi:camera-marker",
                Component::Select,
            )],
            "the camera preset last applied (`Preset 1`, …) while the camera stays there; empty otherwise",
        ),
        Setter::Preset,
    ),
    state_field(
        "presets",
        Kind::List,
        false,
        |s| {
            let listed: Vec<Value> = s
                .panel
                .presets
                .iter()
                .enumerate()
                .map(|(i, p)| json!({ "name": preset_label(i), "id": p.id, "camera": p.camera }))
                .collect();
            Value::Array(listed)
        },
        &[],
        "`[{name, id, camera}]`: the Room's camera presets (the API has no preset names: they are numbered in the Room's order)",
    ),
    state_field(
        "preset_count",
        Kind::Integer,
        true,
        |s| json!(s.panel.presets.len()),
        &[],
        "number of camera presets",
    ),
    settable(
        state_field(
            "content",
            Kind::Text,
            true,
            |s| text(s.panel.content()),
            &[
                ha(
                    "content",
                    "Share content",
                    "mdi:monitor-share",
                    Component::Select,
                ),
                button("content_stop", "Stop sharing", "mdi:monitor-off", "stop"),
            ],
            "the content source being shared (a name from `content_sources`); empty when none",
        ),
        Setter::Content,
    ),
    state_field(
        "content_active",
        Kind::Switch,
        true,
        |s| json!(s.panel.sharing.is_some()),
        &[ha(
            "content_active",
            "Sharing content",
            "mdi:monitor-share",
            Component::BinarySensor,
        )],
        "content (a screen or window) is being shared",
    ),
    state_field(
        "content_default",
        Kind::Text,
        false,
        |s| text(s.panel.default_content_source.as_deref()),
        &[],
        "the Room's default content source (`defaultContentSource`); empty when none is set",
    ),
    state_field(
        "content_sources",
        Kind::List,
        false,
        |s| {
            json!(
                s.panel
                    .content_sources
                    .iter()
                    .map(|c| c.name.as_str())
                    .collect::<Vec<_>>()
            )
        },
        &[],
        "content sources the Room offers (`getHardware` `DSCaptureList`)",
    ),
    state_field(
        "slideshow",
        Kind::Switch,
        true,
        |s| json!(s.panel.slideshow.started),
        &[ha(
            "slideshow",
            "Slideshow",
            "mdi:presentation-play",
            Component::BinarySensor,
        )],
        "the slideshow runs",
    ),
    state_field(
        "slide",
        Kind::Integer,
        true,
        |s| json!(s.panel.slideshow.current.map_or(0, |c| c + 1)),
        &[ha(
            "slide",
            "Slide",
            "mdi:file-presentation-box",
            sensor(&["slide_count"]),
        )],
        "the slide shown, from 1 (`0` when none)",
    ),
    state_field(
        "slide_count",
        Kind::Integer,
        true,
        |s| json!(s.panel.slideshow.count),
        &[],
        "number of slides loaded",
    ),
    state_field(
        "participant_names",
        Kind::Text,
        true,
        |s| {
            let names: Vec<&str> = s
                .conference
                .iter()
                .flat_map(|c| c.participants.iter())
                .take(MAX_LISTED_PARTICIPANTS)
                .map(|p| {
                    if p.peer_dn.is_empty() {
                        p.peer_id.as_str()
                    } else {
                        p.peer_dn.as_str()
                    }
                })
                .collect();
            json!(names.join(", "))
        },
        &[],
        "display names of the other participants, comma separated (cut at 255 characters on the plain topic)",
    ),
    state_field(
        "recording",
        Kind::Switch,
        true,
        |s| json!(s.panel.recording.unwrap_or(false)),
        &[ha(
            "recording",
            "Recording",
            "mdi:record-rec",
            Component::BinarySensor,
        )],
        "the conference is being recorded",
    ),
    state_field(
        "record_consent_pending",
        Kind::Switch,
        true,
        |s| json!(s.panel.record_request.is_some()),
        &[ha(
            "record_consent_pending",
            "Recording consent asked",
            "mdi:record-circle-outline",
            Component::BinarySensor,
        )],
        "someone asks for consent to record (answer with `record_consent`)",
    ),
    state_field(
        "record_request",
        Kind::Text,
        false,
        |s| text(s.panel.record_request.as_ref().map(|p| p.peer_id.as_str())),
        &[],
        "InstanceId of who asks to record; empty when nobody",
    ),
    state_field(
        "podium_requests",
        Kind::List,
        false,
        |s| {
            json!(
                s.panel
                    .podium_requests
                    .iter()
                    .map(|p| json!({ "peer_id": p.peer_id, "peer_dn": p.peer_dn }))
                    .collect::<Vec<_>>()
            )
        },
        &[],
        "`[{peer_id, peer_dn}]`: participants asking for the podium, oldest first",
    ),
    state_field(
        "podium_request_count",
        Kind::Integer,
        true,
        |s| json!(s.panel.podium_requests.len()),
        &[ha(
            "podium_request_count",
            "Podium requests",
            "mdi:hand-back-right",
            sensor(&["podium_requests"]),
        )],
        "number of participants asking for the podium",
    ),
    state_field(
        "camera_control_requests",
        Kind::List,
        false,
        |s| json!(s.panel.camera_control_requests),
        &[],
        "call ids asking to control our camera, oldest first",
    ),
    settable(
        state_field(
            "monitor",
            Kind::Text,
            true,
            current_monitor,
            &[config(ha(
                "monitor",
                "Main window monitor",
                "mdi:monitor",
                Component::Select,
            ))],
            "monitor showing the main window (a name from `monitors`)",
        ),
        Setter::Monitor,
    ),
    state_field(
        "monitors",
        Kind::List,
        false,
        |s| json!(monitor_names(s)),
        &[],
        "monitor names the Room has",
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
    action(
        "preset_save",
        Setter::PresetSave,
        &[
            button("preset_save", "Save new preset", "mdi:camera-plus", "new"),
            ha(
                "preset_overwrite",
                "Overwrite preset",
                "mdi:content-save-edit",
                Component::Text,
            ),
        ],
        "save the camera position: `new`, or an existing preset to overwrite",
    ),
    action(
        "slides",
        Setter::Slides,
        &[
            button(
                "slides_start",
                "Start slideshow",
                "mdi:presentation-play",
                "start",
            ),
            button("slides_stop", "Stop slideshow", "mdi:presentation", "stop"),
            button("slides_next", "Next slide", "mdi:skip-next", "next"),
            button("slides_prev", "Previous slide", "mdi:skip-previous", "prev"),
        ],
        "start, stop, next, prev, first, last or a slide number",
    ),
    action(
        "remote_mic",
        Setter::Remote {
            method: "turnRemoteMic",
        },
        &[],
        "turn a participant's microphone on or off: `<InstanceId> ON|OFF`",
    ),
    action(
        "remote_camera",
        Setter::Remote {
            method: "turnRemoteCamera",
        },
        &[],
        "turn a participant's camera on or off: `<InstanceId> ON|OFF`",
    ),
    action(
        "podium",
        Setter::Podium,
        &[
            button(
                "podium_accept",
                "Accept podium request",
                "mdi:hand-okay",
                "accept",
            ),
            button(
                "podium_reject",
                "Reject podium request",
                "mdi:hand-back-left-off",
                "reject",
            ),
        ],
        "answer a podium request: `accept|reject [<InstanceId>]`",
    ),
    action(
        "record_consent",
        Setter::RecordConsent,
        &[
            button("record_allow", "Allow recording", "mdi:record-rec", "allow"),
            button(
                "record_deny",
                "Deny recording",
                "mdi:record-circle-outline",
                "deny",
            ),
        ],
        "answer a request to record: `allow` or `deny`",
    ),
    action(
        "camera_control",
        Setter::CameraControl,
        &[],
        "answer a remote camera control request: `accept` or `reject`",
    ),
];

const fn action(
    name: &'static str,
    setter: Setter,
    ha: &'static [HaEntity],
    about: &'static str,
) -> Field {
    Field {
        name,
        kind: Kind::Action,
        plain: false,
        value: None,
        set: Some(setter),
        ha,
        about,
    }
}

/// The app state as people say it (also the Home Assistant state sensor's options).
pub fn status_label(state: &RoomState) -> &'static str {
    match state.app_state {
        None => "Unknown",
        Some(AppState::None) => "Offline",
        Some(AppState::Connect) => "Connecting",
        Some(AppState::Login) => "Login required",
        Some(AppState::Normal) => "Idle",
        // Ringing with nobody calling us: our own call rings out (an incoming call announces
        // its caller with inviteReceived before appState 4, SPEC §7.1).
        Some(AppState::Wait) if state.caller.is_none() => "Calling",
        Some(AppState::Wait) => "Ringing",
        Some(AppState::Conference) => "In call",
        Some(AppState::Close) => "Ending call",
    }
}

fn status_labels() -> Vec<&'static str> {
    vec![
        "Offline",
        "Connecting",
        "Login required",
        "Idle",
        "Ringing",
        "Calling",
        "In call",
        "Ending call",
    ]
}

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
    fn panel_fields_validate_their_payloads() {
        use crate::room::panel::{ContentSource, Preset};
        let mut s = state();
        s.panel.presets = vec![
            Preset {
                id: "100".into(),
                ..Preset::default()
            },
            Preset {
                id: "200".into(),
                ..Preset::default()
            },
        ];
        s.panel.content_sources = vec![ContentSource {
            name: "Screen 1".into(),
            id: 65537,
        }];
        s.panel.slideshow.count = 3;
        let action = |f: &str, v: &str| field_action(f, v, &s);
        assert_eq!(
            action("preset", "preset 2").unwrap().params["presetId"],
            "200"
        );
        assert_eq!(action("preset", "100").unwrap().params["presetId"], "100");
        assert_eq!(
            action("preset_save", "NEW").unwrap().method,
            "addPresetFromCurrentVideoCapturer"
        );
        assert_eq!(
            action("preset_save", "2").unwrap().method,
            "updatePresetFromCurrentVideoCapturer"
        );
        assert!(matches!(
            action("preset_save", " "),
            Err(FieldError::Invalid { .. })
        ));
        assert_eq!(
            action("content", "screen 1").unwrap().params["captureId"],
            65537
        );
        assert_eq!(action("content", "stop").unwrap().method, "stopCapture");
        assert_eq!(
            action("content", "stop bob@srv/1").unwrap().method,
            "sendStopContentSharing"
        );
        assert!(action("content", "stop bob").is_err());
        assert_eq!(
            action("content", "default screen 1").unwrap().params["name"],
            "Screen 1"
        );
        assert!(action("content", "default Screen 9").is_err());
        assert_eq!(action("slides", "3").unwrap().params["idx"], 2);
        assert!(action("slides", "0").is_err());
        assert!(action("slides", "4").is_err());
        assert_eq!(action("slides", "prev").unwrap().method, "showPrevSlide");
        let message = |f: &str, v: &str| action(f, v).unwrap_err().to_string();
        assert_eq!(
            message("record_consent", "allow"),
            "record_consent: nobody asks to record"
        );
        assert_eq!(
            message("remote_mic", "a@b/c ON"),
            "remote_mic: no call is running"
        );
        assert_eq!(
            message("podium", "accept"),
            "podium: nobody asks for the podium"
        );
        assert_eq!(
            action("podium", "reject a@b/c").unwrap().method,
            "rejectRequestToPodium"
        );
        assert!(message("podium", "accept a@b").contains("InstanceId"));
        s.panel.presets.clear();
        assert_eq!(
            field_action("preset", "1", &s).unwrap_err().to_string(),
            "preset: the Room has no camera presets (save one with preset_save = new)"
        );
    }

    #[test]
    fn callees_are_checked() {
        for ok in [
            "bob@srv",
            "bob",
            "bob@srv.example.com/1a2b",
            "\\c\\000002c6@srv#vcs",
            "192.0.2.1",
        ] {
            assert_eq!(check_callee(ok), Ok(()), "{ok}");
        }
        for (bad, says) in [
            ("bob smith", "contains a space"),
            ("@srv", "user part"),
            ("bob@", "server part"),
            ("a@b@c", "more than one"),
            ("a@b..c", "not a valid server"),
            ("a\"b", "contains '\"'"),
            ("\\c\\", "conference id"),
        ] {
            assert!(check_callee(bad).unwrap_err().contains(says), "{bad}");
        }
        assert!(check_callee(&"x".repeat(300)).is_err());
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
