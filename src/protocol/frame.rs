//! Parsing incoming frames and encoding requests.

use serde_json::{Map, Value};
use tokio_tungstenite::tungstenite::protocol::WebSocketConfig;

use super::event::Event;

/// The largest frame either side accepts (1 MiB). Real Room messages are a few KiB at most; the
/// limit bounds memory when a peer sends garbage.
pub const MAX_FRAME_BYTES: usize = 1 << 20;

/// The WebSocket settings of both ends (the Room client and the simulator): frames up to
/// [`MAX_FRAME_BYTES`], at most `max_write_buffer` bytes waiting to be written, and small I/O
/// buffers. This API's frames are mostly under 1 KiB; tungstenite's defaults (128 KiB each way,
/// the read buffer zero-filled on every read) cost about 0.2 MiB and CPU per connection, which
/// adds up with a thousand Rooms.
pub fn websocket_config(max_write_buffer: usize) -> WebSocketConfig {
    WebSocketConfig::default()
        .max_message_size(Some(MAX_FRAME_BYTES))
        .max_frame_size(Some(MAX_FRAME_BYTES))
        .read_buffer_size(8 << 10)
        .write_buffer_size(16 << 10)
        .max_write_buffer_size(max_write_buffer)
}

/// A frame received from the Room.
#[derive(Debug, Clone, PartialEq)]
pub enum Incoming {
    /// The reply to a request.
    Response(Response),
    /// A notification (`"method":"event"`).
    Event(Event),
}

/// A reply to a request, as sent by the Room.
#[derive(Debug, Clone, PartialEq)]
pub struct Response {
    /// The method this answers (empty when the Room did not say, e.g. for unparsable input).
    pub method: String,
    /// The echoed request id; `None` when absent or empty (the Room sends `""` for requests
    /// without one).
    pub request_id: Option<String>,
    /// `result` of the reply. For action commands `true` only means "accepted".
    pub result: bool,
    /// The whole reply object, including `method`, `requestId` and `result`.
    pub fields: Map<String, Value>,
}

impl Response {
    /// The Room's error text of a failed reply (`error` member), if any.
    pub fn error_text(&self) -> Option<&str> {
        self.fields.get("error").and_then(Value::as_str)
    }

    /// `resultCode`, sent with `auth` replies.
    pub fn result_code(&self) -> Option<i64> {
        self.fields.get("resultCode").and_then(Value::as_i64)
    }

    /// The data members of the reply: everything but `method`, `requestId` and `result`.
    pub fn data(&self) -> Map<String, Value> {
        self.fields
            .iter()
            .filter(|(k, _)| !matches!(k.as_str(), "method" | "requestId" | "result"))
            .map(|(k, v)| (k.clone(), v.clone()))
            .collect()
    }
}

/// Why a frame could not be understood.
#[derive(Debug, Clone, PartialEq, Eq, thiserror::Error)]
pub enum FrameError {
    /// Larger than [`MAX_FRAME_BYTES`].
    #[error("frame of {0} bytes exceeds the limit of {MAX_FRAME_BYTES} bytes")]
    TooLarge(usize),
    /// Not JSON.
    #[error("invalid JSON: {0}")]
    InvalidJson(String),
    /// JSON, but not an object.
    #[error("frame is JSON but not an object")]
    NotAnObject,
    /// An event without an `event` name.
    #[error("event frame without an 'event' name")]
    EventWithoutName,
}

/// Parses one text frame from the Room.
///
/// Lenient where the Room is known to vary: `requestId` may be missing, empty or (untested, SPEC
/// §5.1) a number; `result` may be missing (treated as `false` unless the frame has no `error`
/// and is not a reply at all).
pub fn parse_incoming(text: &str) -> Result<Incoming, FrameError> {
    if text.len() > MAX_FRAME_BYTES {
        return Err(FrameError::TooLarge(text.len()));
    }
    let value: Value =
        serde_json::from_str(text).map_err(|e| FrameError::InvalidJson(e.to_string()))?;
    let Value::Object(fields) = value else {
        return Err(FrameError::NotAnObject);
    };
    let method = fields.get("method").and_then(Value::as_str).unwrap_or("");
    if method == "event" {
        let name = fields
            .get("event")
            .and_then(Value::as_str)
            .ok_or(FrameError::EventWithoutName)?
            .to_owned();
        let mut event = Event::new(name, fields);
        event.raw = Some(text.into());
        return Ok(Incoming::Event(event));
    }
    let request_id = match fields.get("requestId") {
        Some(Value::String(s)) if !s.is_empty() => Some(s.clone()),
        Some(Value::Number(n)) => Some(n.to_string()),
        _ => None,
    };
    let result = fields
        .get("result")
        .and_then(Value::as_bool)
        .unwrap_or(false);
    Ok(Incoming::Response(Response {
        method: method.to_owned(),
        request_id,
        result,
        fields,
    }))
}

/// Encodes a request frame: `{"method":…,"requestId":…,<params>}`.
pub fn encode_request(
    method: &str,
    request_id: Option<&str>,
    params: &Map<String, Value>,
) -> String {
    let mut object = Map::with_capacity(params.len() + 2);
    object.insert("method".into(), Value::String(method.to_owned()));
    if let Some(id) = request_id {
        object.insert("requestId".into(), Value::String(id.to_owned()));
    }
    for (k, v) in params {
        object.insert(k.clone(), v.clone());
    }
    Value::Object(object).to_string()
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn parses_responses_with_and_without_request_id() {
        let Incoming::Response(r) =
            parse_incoming(r#"{"method":"getMicMute","requestId":"7","mute":true,"result":true}"#)
                .unwrap()
        else {
            panic!("not a response")
        };
        assert_eq!(r.request_id.as_deref(), Some("7"));
        assert!(r.result);
        assert_eq!(r.data().get("mute"), Some(&Value::Bool(true)));

        let Incoming::Response(r) =
            parse_incoming(r#"{"requestId":"","method":"auth","result":true}"#).unwrap()
        else {
            panic!("not a response")
        };
        assert_eq!(r.request_id, None);
    }

    #[test]
    fn rejects_garbage_without_panicking() {
        assert!(matches!(
            parse_incoming("not json"),
            Err(FrameError::InvalidJson(_))
        ));
        assert_eq!(parse_incoming("[1,2]"), Err(FrameError::NotAnObject));
        assert_eq!(
            parse_incoming(r#"{"method":"event"}"#),
            Err(FrameError::EventWithoutName)
        );
        let huge = "x".repeat(MAX_FRAME_BYTES + 1);
        assert!(matches!(
            parse_incoming(&huge),
            Err(FrameError::TooLarge(_))
        ));
    }

    #[test]
    fn encodes_flat_requests() {
        let params = serde_json::json!({"mute": true});
        let text = encode_request("setMicMute", Some("3"), params.as_object().unwrap());
        let back: Value = serde_json::from_str(&text).unwrap();
        assert_eq!(
            back,
            serde_json::json!({"method":"setMicMute","requestId":"3","mute":true})
        );
    }
}
