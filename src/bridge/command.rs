//! MQTT commands: from payload to API requests, and back to exactly one response.
//!
//! Parsing is pure ([`parse_set`], [`parse_request`], [`plan`]): a command becomes a list of
//! [`Action`]s (catalog method + validated parameters) or a [`CommandError`], using the current
//! [`RoomState`] for things like device names and toggles and the field table
//! ([`crate::surface::fields`]) for what each field means. Execution ([`execute`]) runs the
//! actions in order; [`response`] builds the single answer. Errors never mention secrets: replies
//! are redacted before publishing.

use std::time::Duration;

use serde_json::{Map, Value, json};

use crate::protocol::{ParamError, catalog, catalog::json_type_name, redact};
use crate::room::{RoomClient, RoomError, RoomState};
pub use crate::surface::fields::{Action, FieldError, field_action};

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

/// A command parsed from its payload, ready to plan.
#[derive(Debug, Clone, PartialEq)]
pub struct ParsedCommand {
    /// What to do.
    pub kind: CommandKind,
    /// The caller's `transaction`, echoed in the response.
    pub transaction: Option<Value>,
}

/// Why a command was not executed, or failed. Its text is what the response's `error` says.
#[derive(Debug, thiserror::Error)]
pub enum CommandError {
    /// The payload of `set` or `request/…` is not JSON.
    #[error("payload is not valid JSON: {0}")]
    NotJson(String),
    /// The payload is JSON but not an object.
    #[error("payload must be a JSON object, got {0}")]
    NotObject(&'static str),
    /// `set` with no field.
    #[error("set needs at least one field")]
    EmptySet,
    /// A field cannot take the value.
    #[error(transparent)]
    Field(#[from] FieldError),
    /// The request does not fit the catalog.
    #[error(transparent)]
    Params(#[from] ParamError),
    /// A dangerous method not allowed for the room.
    #[error(
        "{method} is refused: {reason}; allow it for this room with allow_dangerous = [\"{method}\"] in its [[rooms]] entry"
    )]
    Dangerous {
        /// The method.
        method: String,
        /// Why the catalog flags it.
        reason: String,
    },
    /// The Room failed the request.
    #[error("room '{room}': {error}")]
    Room {
        /// Room id.
        room: String,
        /// What failed.
        error: Box<RoomError>,
    },
    /// The bridge stops; queued commands are answered with this.
    #[error("the bridge is shutting down; command not executed")]
    ShuttingDown,
    /// Published with the retain flag.
    #[error(
        "retained commands are refused: publish commands without the retain flag (and clear this retained message with an empty retained payload)"
    )]
    Retained,
    /// Queued at the broker for longer than `mqtt.command_max_age_secs`.
    #[error(
        "published while the bridge was away from the broker for {:.1} s, longer than mqtt.command_max_age_secs ({} s); not executed",
        away.as_secs_f64(),
        max_age.as_secs()
    )]
    TooOld {
        /// How long the bridge was away.
        away: Duration,
        /// The limit.
        max_age: Duration,
    },
    /// The payload exceeds `mqtt.max_payload_bytes`.
    #[error("payload of {size} bytes exceeds the limit of {max} bytes (mqtt.max_payload_bytes)")]
    TooBig {
        /// Payload size.
        size: usize,
        /// The limit.
        max: usize,
    },
    /// The command topic is so long its response topic could not be published.
    #[error(
        "command topic of {bytes} bytes is too long: its response topic would exceed {max} bytes; answered on bridge/response/error"
    )]
    TopicTooLong {
        /// Length of the command topic.
        bytes: usize,
        /// The response topic limit.
        max: usize,
    },
    /// The payload is not UTF-8.
    #[error("payload is not valid UTF-8")]
    NotUtf8,
    /// No such room in this bridge.
    #[error("unknown room '{room}' (configured: {})", known.join(", "))]
    UnknownRoom {
        /// The room asked for.
        room: String,
        /// The configured rooms.
        known: Vec<String>,
    },
    /// A local command for a room another bridge instance serves.
    #[error("room '{room}' is served by bridge instance '{by}'; send its commands there")]
    ServedElsewhere {
        /// Room id.
        room: String,
        /// The instance serving it.
        by: String,
    },
    /// The room's queue is full.
    #[error("too many commands queued for room '{room}' (limit {limit}); try again")]
    QueueFull {
        /// Room id.
        room: String,
        /// Queue length.
        limit: usize,
    },
    /// An unknown `bridge/request/<name>`.
    #[error("unknown bridge request '{0}' (known: republish, health_check)")]
    UnknownBridgeRequest(String),
}

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

/// A refusal, with the transaction of the command when it was read.
pub type Refusal = (CommandError, Option<Value>);

/// Parses the JSON payload of `set` or `request/<method>`: an object, or empty for none. The
/// `transaction` member is taken out.
fn json_object(payload: &str) -> Result<(Map<String, Value>, Option<Value>), CommandError> {
    if payload.trim().is_empty() {
        return Ok((Map::new(), None));
    }
    let value: Value =
        serde_json::from_str(payload).map_err(|e| CommandError::NotJson(e.to_string()))?;
    let Value::Object(mut object) = value else {
        return Err(CommandError::NotObject(json_type_name(&value)));
    };
    let transaction = object.remove("transaction");
    Ok((object, transaction))
}

/// Parses a `set` payload (JSON object of fields).
pub fn parse_set(payload: &str) -> Result<ParsedCommand, Refusal> {
    let (object, transaction) = json_object(payload).map_err(|e| (e, None))?;
    if object.is_empty() {
        return Err((CommandError::EmptySet, transaction));
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
    Ok(ParsedCommand {
        kind: CommandKind::Set(fields),
        transaction,
    })
}

/// Parses a `set/<field>` payload (plain text).
pub fn parse_set_field(field: &str, payload: &str) -> ParsedCommand {
    ParsedCommand {
        kind: CommandKind::Set(vec![(field.to_owned(), payload.to_owned())]),
        transaction: None,
    }
}

/// Parses a `request/<method>` payload (JSON parameters).
pub fn parse_request(method: &str, payload: &str) -> Result<ParsedCommand, Refusal> {
    let (params, transaction) = json_object(payload).map_err(|e| (e, None))?;
    Ok(ParsedCommand {
        kind: CommandKind::Request {
            method: method.to_owned(),
            params,
        },
        transaction,
    })
}

/// Plans a command: the actions to run, validated against the method table and the policy.
pub fn plan(
    command: &CommandKind,
    state: &RoomState,
    policy: &dyn Policy,
) -> Result<Vec<Action>, CommandError> {
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
        let spec = catalog().validate(&action.method, &action.params)?;
        if spec.dangerous && !policy.allows(&spec.name) {
            return Err(CommandError::Dangerous {
                method: spec.name.clone(),
                reason: spec
                    .danger_reason
                    .clone()
                    .unwrap_or_else(|| "flagged dangerous in the catalog".into()),
            });
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
pub fn response(outcome: Result<Value, CommandError>, transaction: Option<Value>) -> Value {
    let mut body = match outcome {
        Ok(data) => json!({ "status": "ok", "data": data }),
        Err(error) => json!({ "status": "error", "error": error.to_string() }),
    };
    if let Some(transaction) = transaction {
        body["transaction"] = transaction;
    }
    body
}

#[cfg(test)]
mod tests {
    use super::*;
    use crate::protocol::Device;

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
    fn requests_are_validated_and_dangerous_ones_refused() {
        let s = state();
        let cmd = parse_request("setMicMute", r#"{"mute":"yes","transaction":7}"#).unwrap();
        assert_eq!(cmd.transaction, Some(json!(7)));
        assert!(matches!(
            plan(&cmd.kind, &s, &deny),
            Err(CommandError::Params(ParamError::WrongType { .. }))
        ));
        let cmd = parse_request("rebootSystem", "").unwrap();
        let err = plan(&cmd.kind, &s, &deny).unwrap_err();
        assert!(
            matches!(&err, CommandError::Dangerous { method, .. } if method == "rebootSystem"),
            "{err}"
        );
        assert!(
            err.to_string()
                .contains("allow_dangerous = [\"rebootSystem\"]")
        );
        assert!(plan(&cmd.kind, &s, &|m: &str| m == "rebootSystem").is_ok());
        let cmd = parse_request("noSuchMethod", "{}").unwrap();
        assert!(matches!(
            plan(&cmd.kind, &s, &deny),
            Err(CommandError::Params(ParamError::UnknownMethod(_)))
        ));
        let cmd = parse_set_field("volume", "1");
        assert!(matches!(
            plan(&cmd.kind, &s, &deny),
            Err(CommandError::Field(FieldError::UnknownField { .. }))
        ));
    }

    #[test]
    fn bad_payloads_are_explained() {
        assert!(matches!(
            parse_request("getAppState", "{oops"),
            Err((CommandError::NotJson(_), None))
        ));
        assert!(matches!(
            parse_request("getAppState", "[1]"),
            Err((CommandError::NotObject("array"), None))
        ));
        assert!(matches!(
            parse_set(r#"{"transaction":1}"#),
            Err((CommandError::EmptySet, Some(_)))
        ));
        let cmd = parse_set(r#"{"speaker_muted":true,"transaction":"t1"}"#).unwrap();
        assert_eq!(
            cmd.kind,
            CommandKind::Set(vec![("speaker_muted".into(), "ON".into())])
        );
        assert_eq!(cmd.transaction, Some(json!("t1")));
    }

    #[test]
    fn responses_echo_the_transaction() {
        assert_eq!(
            response(Err(CommandError::EmptySet), Some(json!(1))),
            json!({"status":"error","error":"set needs at least one field","transaction":1})
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
            let payload = format!(r#"{{"speaker_muted":true,"transaction":{text}}}"#);
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
