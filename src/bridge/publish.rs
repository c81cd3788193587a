//! How a Room's state looks on MQTT.
//!
//! [`state_document`] is the one definition of the retained JSON on `<base>/<room>`; the plain
//! per-field topics for panels are derived from it ([`PLAIN_FIELDS`]), so the two can never
//! disagree.

use serde_json::{Value, json};

use crate::room::RoomState;

/// Fields that also get a plain retained topic `<base>/<room>/<field>` (booleans as `ON`/`OFF`).
pub const PLAIN_FIELDS: &[&str] = &[
    "app_state",
    "in_call",
    "ringing",
    "caller",
    "caller_name",
    "mic_muted",
    "camera_muted",
    "speaker_muted",
    "camera",
    "microphone",
    "speaker",
    "participant_count",
    "conference_title",
    "user",
    "server_connected",
    "logged_in",
];

/// Longest string published on a plain topic: Home Assistant drops longer states, and panels
/// have small buffers.
pub const MAX_PLAIN_LEN: usize = 255;

/// Most participants listed in the state document (the count is always exact).
pub const MAX_LISTED_PARTICIPANTS: usize = 100;

fn name_or_empty(device: &Option<crate::protocol::Device>) -> &str {
    device.as_ref().map_or("", |d| d.name.as_str())
}

/// The retained JSON state of a room.
pub fn state_document(state: &RoomState) -> Value {
    let conference = state.conference.as_ref();
    let participants: Vec<Value> = conference
        .map(|c| {
            c.participants
                .iter()
                .take(MAX_LISTED_PARTICIPANTS)
                .map(|p| json!({ "peer_id": p.peer_id, "peer_dn": p.peer_dn }))
                .collect()
        })
        .unwrap_or_default();
    let names = |list: &[crate::protocol::Device]| -> Vec<String> {
        list.iter().map(|d| d.name.clone()).collect()
    };
    json!({
        "app_state": state.app_state.map_or("unknown", |s| s.as_str()),
        "in_call": state.in_call(),
        "ringing": state.ringing(),
        "caller": state.caller.as_ref().map_or("", |c| c.peer_id.as_str()),
        "caller_name": state.caller.as_ref().map_or("", |c| c.peer_dn.as_str()),
        "mic_muted": state.mic_muted.unwrap_or(false),
        "camera_muted": state.camera_muted.unwrap_or(false),
        "speaker_muted": state.speaker_muted.unwrap_or(false),
        "camera": name_or_empty(&state.camera),
        "microphone": name_or_empty(&state.microphone),
        "speaker": name_or_empty(&state.speaker),
        "cameras": names(&state.cameras),
        "microphones": names(&state.microphones),
        "speakers": names(&state.speakers),
        "participant_count": state.participant_count(),
        "participants": participants,
        "conference_title": conference.and_then(|c| c.title.as_deref()).unwrap_or(""),
        "conference_id": conference.map_or("", |c| c.conf_id.as_str()),
        "callee": state.callee.as_deref().unwrap_or(""),
        "user": state.user.as_deref().unwrap_or(""),
        "user_name": state.user_name.as_deref().unwrap_or(""),
        "server": state.server.as_deref().unwrap_or(""),
        "server_connected": state.server_connected.unwrap_or(false),
        "logged_in": state.logged_in.unwrap_or(false),
        "last_reject": state.last_reject.as_deref().unwrap_or(""),
        "window_state": state.window_state,
        "version": state.version.as_deref().unwrap_or(""),
    })
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

/// `(field, plain value)` for every plain topic.
pub fn plain_fields(document: &Value) -> Vec<(&'static str, String)> {
    PLAIN_FIELDS
        .iter()
        .map(|&field| (field, plain(document.get(field).unwrap_or(&Value::Null))))
        .collect()
}

#[cfg(test)]
mod tests {
    use super::*;
    use crate::protocol::AppState;

    #[test]
    fn plain_values_follow_the_document() {
        let state = RoomState {
            app_state: Some(AppState::Conference),
            mic_muted: Some(true),
            ..RoomState::default()
        };
        let doc = state_document(&state);
        let fields = plain_fields(&doc);
        assert!(fields.contains(&("app_state", "conference".into())));
        assert!(fields.contains(&("in_call", "ON".into())));
        assert!(fields.contains(&("mic_muted", "ON".into())));
        assert!(fields.contains(&("ringing", "OFF".into())));
        assert_eq!(fields.len(), PLAIN_FIELDS.len());
    }

    #[test]
    fn long_text_is_truncated() {
        let long = Value::String("é".repeat(1000));
        assert_eq!(plain(&long).chars().count(), MAX_PLAIN_LEN);
    }
}
