//! MQTT commands: from topic and payload to API requests, and back to exactly one response.
//!
//! Parsing is pure ([`parse`]): it turns a command into a list of [`Action`]s (catalog method +
//! validated parameters) or a precise error, using the current [`RoomState`] for things like
//! device names and toggles. Execution ([`execute`]) runs the actions in order and builds the
//! single response. Errors never mention secrets: replies are redacted before publishing.

use serde_json::{Map, Value, json};

use crate::protocol::{Device, catalog, catalog::json_type_name, redact};
use crate::room::{PtzMove, RoomClient, RoomError, RoomState};

/// One API request to make.
#[derive(Debug, Clone, PartialEq)]
pub struct Action {
    /// Catalog method.
    pub method: String,
    /// Validated parameters.
    pub params: Map<String, Value>,
}

/// What a command asks for.
#[derive(Debug, Clone, PartialEq)]
pub enum CommandKind {
    /// `set` with a JSON object or `set/<field>` with a plain payload.
    Set(Vec<(String, String)>),
    /// `request/<method>` with JSON parameters.
    Request {
        /// Method.
        method: String,
        /// Parameters.
        params: Map<String, Value>,
    },
}

/// A command accepted for execution.
#[derive(Debug, Clone, PartialEq)]
pub struct Command {
    /// What to do.
    pub kind: CommandKind,
    /// The caller's `transaction`, echoed in the response.
    pub transaction: Option<Value>,
}

/// Fields settable through `set` / `set/<field>`.
pub const SETTABLE_FIELDS: &[&str] = &[
    "mic_muted",
    "camera_muted",
    "speaker_muted",
    "camera",
    "microphone",
    "speaker",
    "call",
    "ptz",
    "window",
];

/// Who may run dangerous methods.
pub trait Policy: Send + Sync {
    /// Whether a dangerous catalog method may run for this room.
    fn allows(&self, method: &str) -> bool;
}

impl<F: Fn(&str) -> bool + Send + Sync> Policy for F {
    fn allows(&self, method: &str) -> bool {
        self(method)
    }
}

/// Parses the JSON payload of `set` or `request/<method>`: an object, or empty for none. The
/// `transaction` member is taken out.
fn json_object(payload: &str) -> Result<(Map<String, Value>, Option<Value>), String> {
    if payload.trim().is_empty() {
        return Ok((Map::new(), None));
    }
    let value: Value =
        serde_json::from_str(payload).map_err(|e| format!("payload is not valid JSON: {e}"))?;
    let Value::Object(mut object) = value else {
        return Err(format!(
            "payload must be a JSON object, got {}",
            json_type_name(&value)
        ));
    };
    let transaction = object.remove("transaction");
    Ok((object, transaction))
}

/// Parses a `set` payload (JSON object of fields).
pub fn parse_set(payload: &str) -> Result<Command, (String, Option<Value>)> {
    let (object, transaction) = json_object(payload).map_err(|e| (e, None))?;
    if object.is_empty() {
        return Err(("set needs at least one field".into(), transaction));
    }
    let fields = object
        .into_iter()
        .map(|(field, value)| {
            let text = match value {
                Value::Bool(true) => "ON".to_owned(),
                Value::Bool(false) => "OFF".to_owned(),
                Value::String(s) => s,
                other => other.to_string(),
            };
            (field, text)
        })
        .collect();
    Ok(Command {
        kind: CommandKind::Set(fields),
        transaction,
    })
}

/// Parses a `request/<method>` payload (JSON parameters).
pub fn parse_request(method: &str, payload: &str) -> Result<Command, (String, Option<Value>)> {
    let (params, transaction) = json_object(payload).map_err(|e| (e, None))?;
    Ok(Command {
        kind: CommandKind::Request {
            method: method.to_owned(),
            params,
        },
        transaction,
    })
}

fn parse_switch(field: &str, value: &str, current: Option<bool>) -> Result<bool, String> {
    match value.trim().to_ascii_uppercase().as_str() {
        "ON" | "TRUE" | "1" | "MUTE" | "MUTED" => Ok(true),
        "OFF" | "FALSE" | "0" | "UNMUTE" | "UNMUTED" => Ok(false),
        "TOGGLE" => Ok(!current.unwrap_or(false)),
        _ => Err(format!(
            "{field}: expected ON, OFF or TOGGLE, got '{}'",
            shorten(value)
        )),
    }
}

fn shorten(text: &str) -> String {
    if text.chars().count() > 64 {
        format!("{}…", text.chars().take(64).collect::<String>())
    } else {
        text.to_owned()
    }
}

fn find_device<'a>(field: &str, list: &'a [Device], wanted: &str) -> Result<Device, String> {
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
        .ok_or_else(|| {
            let known: Vec<&str> = list
                .iter()
                .map(|d| d.name.as_str())
                .collect::<Vec<&'a str>>();
            format!(
                "{field}: no device named '{}' (available: {})",
                shorten(wanted),
                if known.is_empty() {
                    "none".to_owned()
                } else {
                    known.join(", ")
                }
            )
        })
}

fn action(method: &str, params: Value) -> Action {
    Action {
        method: method.to_owned(),
        params: params.as_object().cloned().unwrap_or_default(),
    }
}

/// Turns one `field = value` into an action.
pub fn field_action(field: &str, value: &str, state: &RoomState) -> Result<Action, String> {
    Ok(match field {
        "mic_muted" => action(
            "setMicMute",
            json!({ "mute": parse_switch(field, value, state.mic_muted)? }),
        ),
        "camera_muted" => action(
            "setVideoMute",
            json!({ "mute": parse_switch(field, value, state.camera_muted)? }),
        ),
        "speaker_muted" => action(
            "setAudioMute",
            json!({ "mute": parse_switch(field, value, state.speaker_muted)? }),
        ),
        "camera" | "microphone" | "speaker" => {
            let (method, list) = match field {
                "camera" => ("setVideoCapturer", &state.cameras),
                "microphone" => ("setAudioCapturer", &state.microphones),
                _ => ("setAudioRenderer", &state.speakers),
            };
            let device = find_device(field, list, value)?;
            action(
                method,
                json!({ "name": device.name, "description": device.description }),
            )
        }
        "call" => match value.trim().to_ascii_lowercase().as_str() {
            "accept" | "answer" => action("accept", json!({})),
            "reject" | "decline" => action("reject", json!({})),
            "hangup" | "hang_up" | "end" => action("hangUp", json!({})),
            "hangup_all" | "end_for_all" => action("hangUp", json!({ "forAll": true })),
            "" => {
                return Err(
                    "call: expected accept, reject, hangup or a TrueConf ID to call".into(),
                );
            }
            _ => action("call", json!({ "peerId": value.trim() })),
        },
        "ptz" => {
            let movement = PtzMove::parse(value).ok_or_else(|| {
                let words: Vec<&str> = PtzMove::ALL.iter().map(|m| m.as_str()).collect();
                format!(
                    "ptz: expected one of {}, got '{}'",
                    words.join(", "),
                    shorten(value)
                )
            })?;
            action(movement.method(), json!({}))
        }
        "window" => {
            let window_state = match value.trim().to_ascii_lowercase().as_str() {
                "minimized" | "minimised" | "1" => 1,
                "fullscreen" | "full_screen" | "maximized" | "2" => 2,
                _ => {
                    return Err(format!(
                        "window: expected minimized or fullscreen, got '{}'",
                        shorten(value)
                    ));
                }
            };
            action(
                "changeWindowState",
                json!({ "windowState": window_state, "stayOnTop": false }),
            )
        }
        _ => {
            return Err(format!(
                "unknown field '{}' (settable: {})",
                shorten(field),
                SETTABLE_FIELDS.join(", ")
            ));
        }
    })
}

/// Plans a command: the actions to run, validated against the method table and the policy.
pub fn plan(
    command: &CommandKind,
    state: &RoomState,
    policy: &dyn Policy,
) -> Result<Vec<Action>, String> {
    let actions = match command {
        CommandKind::Set(fields) => fields
            .iter()
            .map(|(field, value)| field_action(field, value, state))
            .collect::<Result<Vec<_>, _>>()?,
        CommandKind::Request { method, params } => vec![Action {
            method: method.clone(),
            params: params.clone(),
        }],
    };
    for action in &actions {
        let spec = catalog()
            .validate(&action.method, &action.params)
            .map_err(|e| e.to_string())?;
        if spec.dangerous && !policy.allows(&spec.name) {
            let why = spec
                .danger_reason
                .as_deref()
                .unwrap_or("flagged dangerous in the catalog");
            return Err(format!(
                "{} is refused: {why}; allow it for this room with allow_dangerous = [\"{}\"] in its [[rooms]] entry",
                spec.name, spec.name
            ));
        }
    }
    Ok(actions)
}

/// Runs the actions in order; the first failure stops the rest. Returns the response data.
pub async fn execute(client: &RoomClient, actions: Vec<Action>) -> Result<Value, RoomError> {
    let mut last = Map::new();
    for action in actions {
        let reply = client
            .request_unchecked(&action.method, action.params)
            .await?;
        last = reply.data();
    }
    Ok(redact(&Value::Object(last)))
}

/// The response payload: `{"status":"ok","data":…}` or `{"status":"error","error":…}`, with the
/// caller's transaction echoed.
pub fn response(outcome: Result<Value, String>, transaction: Option<Value>) -> Value {
    let mut body = match outcome {
        Ok(data) => json!({ "status": "ok", "data": data }),
        Err(error) => json!({ "status": "error", "error": error }),
    };
    if let Some(transaction) = transaction {
        body["transaction"] = transaction;
    }
    body
}

#[cfg(test)]
mod tests {
    use super::*;

    fn state() -> RoomState {
        RoomState {
            mic_muted: Some(true),
            cameras: vec![Device {
                name: "Cam A".into(),
                description: "cam-a".into(),
            }],
            ..RoomState::default()
        }
    }

    fn deny(_: &str) -> bool {
        false
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
        assert!(
            field_action("camera", "nope", &s)
                .unwrap_err()
                .contains("available: Cam A")
        );
        assert!(
            field_action("mic_muted", "maybe", &s)
                .unwrap_err()
                .contains("expected ON, OFF")
        );
        assert!(
            field_action("volume", "1", &s)
                .unwrap_err()
                .contains("unknown field")
        );
    }

    #[test]
    fn requests_are_validated_and_dangerous_ones_refused() {
        let s = state();
        let cmd = parse_request("setMicMute", r#"{"mute":"yes","transaction":7}"#).unwrap();
        assert_eq!(cmd.transaction, Some(json!(7)));
        assert!(
            plan(&cmd.kind, &s, &deny)
                .unwrap_err()
                .contains("must be bool")
        );
        let cmd = parse_request("rebootSystem", "").unwrap();
        let err = plan(&cmd.kind, &s, &deny).unwrap_err();
        assert!(
            err.contains("allow_dangerous = [\"rebootSystem\"]"),
            "{err}"
        );
        assert!(plan(&cmd.kind, &s, &|m: &str| m == "rebootSystem").is_ok());
        let cmd = parse_request("noSuchMethod", "{}").unwrap();
        assert!(
            plan(&cmd.kind, &s, &deny)
                .unwrap_err()
                .contains("unknown method")
        );
    }

    #[test]
    fn bad_payloads_are_explained() {
        assert!(
            parse_request("getAppState", "{oops")
                .unwrap_err()
                .0
                .contains("not valid JSON")
        );
        assert!(
            parse_request("getAppState", "[1]")
                .unwrap_err()
                .0
                .contains("must be a JSON object")
        );
        assert!(parse_set("{}").is_err());
        let cmd = parse_set(r#"{"mic_muted":true,"transaction":"t1"}"#).unwrap();
        assert_eq!(
            cmd.kind,
            CommandKind::Set(vec![("mic_muted".into(), "ON".into())])
        );
        assert_eq!(cmd.transaction, Some(json!("t1")));
    }

    #[test]
    fn responses_echo_the_transaction() {
        assert_eq!(
            response(Err("x".into()), Some(json!(1))),
            json!({"status":"error","error":"x","transaction":1})
        );
        assert_eq!(
            response(Ok(json!({})), None),
            json!({"status":"ok","data":{}})
        );
    }

    #[test]
    fn a_float_transaction_is_echoed_exactly() {
        // serde_json's default float parser may land one ulp off; `float_roundtrip` is on.
        for text in [
            "-8.03287712452469e74",
            "0.30000000000000004",
            "5e-324",
            "123.456",
        ] {
            let payload = format!(r#"{{"mic_muted":true,"transaction":{text}}}"#);
            let cmd = parse_set(&payload).unwrap();
            let echoed = response(Ok(json!({})), cmd.transaction).to_string();
            let expected: f64 = text.parse().unwrap();
            let back: Value = serde_json::from_str(&echoed).unwrap();
            assert_eq!(
                back["transaction"].as_f64(),
                Some(expected),
                "{text} → {echoed}"
            );
        }
    }
}
