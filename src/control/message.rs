//! The WebSocket API's messages: `{"topic": "<relative topic>", "payload": …}` both ways. Pure.
//!
//! Out: the payload is the JSON value when the published payload is JSON (`{"status":…}`, the
//! state document, `3`, `true`), else the text (`ON`, `online`, a caller's name). In: a string
//! payload is sent as its text (`"ON"`), `null` as nothing, anything else as its JSON text
//! (`{"mic_muted": true}`), so `{"topic": "boardroom/set", "payload": {"mic_muted": true}}`
//! is the MQTT command `boardroom/set` with that JSON.

use bytes::Bytes;
use serde_json::{Value, json};

use super::hub::Message;

/// A client message: a command topic and its payload as the MQTT payload would be.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct Command {
    /// Relative command topic.
    pub topic: String,
    /// Payload text.
    pub payload: Bytes,
}

/// The JSON text of an outgoing message.
pub fn encode(message: &Message) -> String {
    encode_parts(&message.topic, &message.payload)
}

/// The JSON text of `{"topic": topic, "payload": payload}`.
pub fn encode_parts(topic: &str, payload: &[u8]) -> String {
    let value = serde_json::from_slice::<Value>(payload)
        .unwrap_or_else(|_| Value::String(String::from_utf8_lossy(payload).into_owned()));
    json!({ "topic": topic, "payload": value }).to_string()
}

/// Reads a client's text message. `Err`: what is wrong with it, for the one error reply.
pub fn decode(text: &str) -> Result<Command, String> {
    let value: Value = serde_json::from_str(text).map_err(|e| {
        format!("not JSON ({e}); send {{\"topic\": \"<room>/set/<field>\", \"payload\": \"ON\"}}")
    })?;
    let Value::Object(mut object) = value else {
        return Err("expected a JSON object with \"topic\" and \"payload\"".to_owned());
    };
    let topic = match object.remove("topic") {
        Some(Value::String(topic)) if !topic.is_empty() => topic,
        Some(_) => return Err("\"topic\" must be a non-empty string".to_owned()),
        None => return Err("missing \"topic\"".to_owned()),
    };
    let payload = match object.remove("payload") {
        None | Some(Value::Null) => Bytes::new(),
        Some(Value::String(text)) => Bytes::from(text),
        Some(other) => Bytes::from(other.to_string()),
    };
    if let Some(key) = object.keys().next() {
        return Err(format!(
            "unknown member \"{}\": a message has only \"topic\" and \"payload\"",
            crate::surface::fields::shorten(key)
        ));
    }
    Ok(Command { topic, payload })
}

/// The payload of an error reply: `{"status":"error","error":…}` like a refused command's.
pub fn error_payload(error: &str) -> String {
    json!({ "status": "error", "error": error }).to_string()
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn payloads_as_json_or_text() {
        assert_eq!(
            encode_parts("r/mic_muted", b"ON"),
            r#"{"payload":"ON","topic":"r/mic_muted"}"#
        );
        assert_eq!(
            encode_parts("r/response/x", br#"{"status":"ok"}"#),
            r#"{"payload":{"status":"ok"},"topic":"r/response/x"}"#
        );
        assert_eq!(
            encode_parts("r/x", &[0xff, b'a']),
            r#"{"payload":"\ufffda","topic":"r/x"}"#.replace("\\ufffd", "\u{fffd}")
        );
    }

    #[test]
    fn commands_read_like_mqtt() {
        let c = decode(r#"{"topic":"r/set/mic_muted","payload":"ON"}"#).unwrap();
        assert_eq!(
            (c.topic.as_str(), &c.payload[..]),
            ("r/set/mic_muted", &b"ON"[..])
        );
        let c = decode(r#"{"topic":"r/set","payload":{"mic_muted":true}}"#).unwrap();
        assert_eq!(&c.payload[..], br#"{"mic_muted":true}"#);
        let c = decode(r#"{"topic":"bridge/request/republish"}"#).unwrap();
        assert!(c.payload.is_empty());
        for bad in [
            "",
            "[1]",
            "{oops",
            r#"{"payload":1}"#,
            r#"{"topic":5}"#,
            r#"{"topic":"a","x":1}"#,
        ] {
            assert!(decode(bad).is_err(), "{bad}");
        }
    }
}
