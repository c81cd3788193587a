//! Setting a field: the payload grammar of each [`Setter`], checked against the Room's state,
//! turned into the one catalog request ([`Action`]) that sets it, or a [`FieldError`] saying why
//! not.

use std::fmt;

use serde_json::{Map, Value, json};

use super::checks::{
    check_callee, check_instance_id, content_source, find_participant, find_preset, monitor_index,
    monitor_names, no_content_source, split_word,
};
use super::{MAX_QUOTED, Setter, field, settable_fields};
use crate::protocol::Device;
use crate::room::{PtzMove, RoomState};

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
    /// The value is well formed but the Room cannot take it now; `reason` says why.
    Refused {
        /// The field.
        field: &'static str,
        /// Why, for people.
        reason: String,
    },
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
            FieldError::Refused { field, reason } => write!(f, "{field}: {reason}"),
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
                _ => {
                    let callee = value.trim();
                    if let Err(problem) = check_callee(callee) {
                        return Err(FieldError::Invalid {
                            field: name,
                            expected: format!(
                                "accept, reject, hangup, hangup_all or a TrueConf ID such as \
                                 user@server ({problem})"
                            ),
                            got: shorten(value),
                        });
                    }
                    Action::new("call", json!({ "peerId": callee }))
                }
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
            Setter::Preset => {
                let preset = find_preset(name, state, value)?;
                Action::new("applyVideoCapturerPreset", json!({ "presetId": preset }))
            }
            Setter::PresetSave => {
                if matches!(word.as_str(), "new" | "add") {
                    Action::new("addPresetFromCurrentVideoCapturer", json!({}))
                } else if word.is_empty() {
                    return Err(invalid("`new` or an existing preset to overwrite"));
                } else {
                    let preset = find_preset(name, state, value)?;
                    Action::new(
                        "updatePresetFromCurrentVideoCapturer",
                        json!({ "presetId": preset }),
                    )
                }
            }
            Setter::Content => {
                let (verb, rest) = split_word(value);
                let verb = verb.to_ascii_lowercase();
                // A source's own name wins over the words (a window may be called "Stop …").
                if let Some(source) = content_source(state, value) {
                    Action::new("startCapture", json!({ "captureId": source.id }))
                } else if matches!(word.as_str(), "stop" | "off" | "none") {
                    Action::new("stopCapture", json!({}))
                } else if verb == "stop" {
                    // `stop <InstanceId>`: ask a participant to stop sharing.
                    check_instance_id(name, rest)?;
                    Action::new("sendStopContentSharing", json!({ "peerId": rest }))
                } else if verb == "default" && !rest.is_empty() {
                    let Some(source) = content_source(state, rest) else {
                        return Err(no_content_source(name, state, rest));
                    };
                    Action::new("setDefaultContentSource", json!({ "name": source.name }))
                } else {
                    return Err(no_content_source(name, state, value));
                }
            }
            Setter::Slides => {
                let show = &state.panel.slideshow;
                match word.as_str() {
                    "start" | "on" => Action::new("startSlideShow", json!({})),
                    "stop" | "off" => Action::new("stopSlideShow", json!({})),
                    "next" => Action::new("showNextSlide", json!({})),
                    "prev" | "previous" | "back" => Action::new("showPrevSlide", json!({})),
                    "first" => Action::new("showFirstSlide", json!({})),
                    "last" => Action::new("showLastSlide", json!({})),
                    _ => {
                        let Ok(n) = word.parse::<usize>() else {
                            return Err(invalid(
                                "start, stop, next, prev, first, last or a slide number",
                            ));
                        };
                        if n == 0 || n > show.count {
                            return Err(FieldError::Refused {
                                field: name,
                                reason: if show.count == 0 {
                                    format!("no slide {n}: no slides are loaded")
                                } else {
                                    format!("no slide {n}: slides are 1..={}", show.count)
                                },
                            });
                        }
                        Action::new("showSlide", json!({ "idx": n - 1 }))
                    }
                }
            }
            Setter::Remote { method } => {
                let (peer, rest) = split_word(value);
                let on = match rest.to_ascii_lowercase().as_str() {
                    "on" | "true" | "1" | "unmute" => true,
                    "off" | "false" | "0" | "mute" => false,
                    _ => return Err(invalid("`<InstanceId> ON` or `<InstanceId> OFF`")),
                };
                let peer = find_participant(name, state, peer)?;
                Action::new(method, json!({ "peerId": peer, "on": on }))
            }
            Setter::Podium => {
                let (verb, peer) = split_word(value);
                let method = match verb.to_ascii_lowercase().as_str() {
                    "accept" | "allow" => "acceptRequestToPodium",
                    "reject" | "deny" => "rejectRequestToPodium",
                    _ => {
                        return Err(invalid(
                            "`accept [<InstanceId>]` or `reject [<InstanceId>]`",
                        ));
                    }
                };
                let requests = &state.panel.podium_requests;
                let peer = if peer.is_empty() {
                    match requests.first() {
                        Some(p) => p.peer_id.clone(),
                        None => {
                            return Err(FieldError::Refused {
                                field: name,
                                reason: "nobody asks for the podium".into(),
                            });
                        }
                    }
                } else {
                    check_instance_id(name, peer)?;
                    peer.to_owned()
                };
                Action::new(method, json!({ "peerId": peer }))
            }
            Setter::RecordConsent => {
                let method = match word.as_str() {
                    "allow" | "accept" | "yes" => "allowRecord",
                    "deny" | "reject" | "no" => "denyRecord",
                    _ => return Err(invalid("allow or deny")),
                };
                let Some(request) = &state.panel.record_request else {
                    return Err(FieldError::Refused {
                        field: name,
                        reason: "nobody asks to record".into(),
                    });
                };
                Action::new(method, json!({ "peerId": request.peer_id }))
            }
            Setter::CameraControl => {
                let (verb, call_id) = split_word(value);
                let requests = &state.panel.camera_control_requests;
                let call_id = if call_id.is_empty() {
                    requests.first().cloned()
                } else {
                    Some(call_id.to_owned())
                };
                match verb.to_ascii_lowercase().as_str() {
                    "accept" | "allow" => {
                        let Some(call_id) = call_id else {
                            return Err(FieldError::Refused {
                                field: name,
                                reason: "nobody asks to control the camera".into(),
                            });
                        };
                        Action::new("acceptRequestCameraControl", json!({ "callId": call_id }))
                    }
                    // The catalog's rejectRequestCameraControl takes no parameters.
                    "reject" | "deny" => Action::new("rejectRequestCameraControl", json!({})),
                    _ => return Err(invalid("accept or reject")),
                }
            }
            Setter::Monitor => {
                let names = monitor_names(state);
                let wanted = value.trim();
                let index = names
                    .iter()
                    .position(|n| n == wanted)
                    .or_else(|| names.iter().position(|n| n.eq_ignore_ascii_case(wanted)))
                    .and_then(|i| monitor_index(state, i))
                    .or_else(|| {
                        let i: i64 = wanted.parse().ok()?;
                        (0..names.len() as i64).contains(&i).then_some(i)
                    });
                let Some(index) = index else {
                    return Err(FieldError::Refused {
                        field: name,
                        reason: format!(
                            "no monitor '{}' (available: {})",
                            shorten(wanted),
                            if names.is_empty() {
                                "none".to_owned()
                            } else {
                                names.join(", ")
                            }
                        ),
                    });
                };
                Action::new("changeCurrentMonitor", json!({ "monitorIndex": index }))
            }
        })
    }

    /// The values a select offers for this setter, when it has a fixed list (devices,
    /// presets, content sources, monitors).
    pub fn options(self, state: &RoomState) -> Option<Vec<String>> {
        match self {
            Setter::Device { list, .. } => {
                Some(list(state).iter().map(|d| d.name.clone()).collect())
            }
            Setter::Preset => Some(state.panel.preset_labels()),
            Setter::Content => Some(
                state
                    .panel
                    .content_sources
                    .iter()
                    .map(|s| s.name.clone())
                    .collect(),
            ),
            Setter::Monitor => Some(monitor_names(state)),
            _ => None,
        }
    }

    /// The payloads it accepts, for people.
    pub fn grammar(self) -> &'static str {
        match self {
            Setter::Mute { .. } => "`ON`, `OFF`, `TOGGLE` (also `true`/`false`/`1`/`0`)",
            Setter::Device { .. } => "a device name (or its id; `none` for no device)",
            Setter::Call => "`accept`, `reject`, `hangup`, `hangup_all`, or a TrueConf ID to call",
            Setter::Ptz => "`left`, `right`, `up`, `down`, `zoom_in`, `zoom_out`, `stop`",
            Setter::Window => "`minimized`, `fullscreen`",
            Setter::Preset => "a preset: `Preset 2`, `2` or its id (see `presets`)",
            Setter::PresetSave => {
                "`new` (save the camera position as a new preset) or an existing preset to overwrite"
            }
            Setter::Content => {
                "a content source name (see `content_sources`) to share it, `stop`; \
                 `stop <InstanceId>` asks a participant to stop sharing, `default <source>` sets the default source"
            }
            Setter::Slides => "`start`, `stop`, `next`, `prev`, `first`, `last` or a slide number",
            Setter::Remote { .. } => {
                "`<InstanceId> ON` or `<InstanceId> OFF` (a participant's `peer_id`)"
            }
            Setter::Podium => {
                "`accept` or `reject`, optionally followed by the InstanceId (default: the oldest request)"
            }
            Setter::RecordConsent => "`allow` or `deny` (the pending `record_request`)",
            Setter::CameraControl => "`accept` or `reject` (the oldest camera control request)",
            Setter::Monitor => "a monitor name (see `monitors`) or its index",
        }
    }

    /// The catalog methods this setter can call (for the docs and the table's tests).
    pub fn methods(self) -> Vec<&'static str> {
        match self {
            Setter::Mute { method, .. } | Setter::Device { method, .. } => vec![method],
            Setter::Call => vec!["accept", "reject", "hangUp", "call"],
            Setter::Ptz => PtzMove::ALL.iter().map(|m| m.method()).collect(),
            Setter::Window => vec!["changeWindowState"],
            Setter::Preset => vec!["applyVideoCapturerPreset"],
            Setter::PresetSave => vec![
                "addPresetFromCurrentVideoCapturer",
                "updatePresetFromCurrentVideoCapturer",
            ],
            Setter::Content => vec![
                "startCapture",
                "stopCapture",
                "sendStopContentSharing",
                "setDefaultContentSource",
            ],
            Setter::Slides => vec![
                "startSlideShow",
                "stopSlideShow",
                "showNextSlide",
                "showPrevSlide",
                "showFirstSlide",
                "showLastSlide",
                "showSlide",
            ],
            Setter::Remote { method } => vec![method],
            Setter::Podium => vec!["acceptRequestToPodium", "rejectRequestToPodium"],
            Setter::RecordConsent => vec!["allowRecord", "denyRecord"],
            Setter::CameraControl => {
                vec!["acceptRequestCameraControl", "rejectRequestCameraControl"]
            }
            Setter::Monitor => vec!["changeCurrentMonitor"],
        }
    }
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
