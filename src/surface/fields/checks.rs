//! Checking what a payload names against what the Room has: call targets, participants,
//! presets, content sources, monitors. Used by [`super::Setter::action`] and the table's values.

use serde_json::{Value, json};

use super::{FieldError, shorten};
use crate::room::RoomState;

/// Splits off the first whitespace-separated word.
pub(super) fn split_word(text: &str) -> (&str, &str) {
    let text = text.trim();
    match text.find(char::is_whitespace) {
        Some(i) => (&text[..i], text[i..].trim()),
        None => (text, ""),
    }
}

/// Longest TrueConf ID accepted for a call.
const MAX_CALLEE: usize = 255;

/// Checks a call target: a TrueConf ID (`user`, `user@server`, `user@server/instance`), a
/// conference (`\c\<id>`) or an address; says what is wrong otherwise.
pub fn check_callee(callee: &str) -> Result<(), String> {
    if callee.chars().count() > MAX_CALLEE {
        return Err(format!("longer than {MAX_CALLEE} characters"));
    }
    if let Some(c) = callee.chars().find(|c| c.is_whitespace() || c.is_control()) {
        return Err(if c.is_whitespace() {
            "contains a space".to_owned()
        } else {
            "contains a control character".to_owned()
        });
    }
    if let Some(c) = callee
        .chars()
        .find(|c| matches!(c, '"' | '\'' | '<' | '>' | ',' | ';' | '|'))
    {
        return Err(format!("contains '{c}'"));
    }
    if let Some(conference) = callee.strip_prefix("\\c\\") {
        return if conference.is_empty() {
            Err("the conference id after \\c\\ is missing".to_owned())
        } else {
            Ok(())
        };
    }
    let (user, server) = match callee.split_once('@') {
        Some((user, server)) => (user, Some(server)),
        None => (callee, None),
    };
    if user.is_empty() {
        return Err("the user part before '@' is empty".to_owned());
    }
    if let Some(server) = server {
        let host = server.split('/').next().unwrap_or("");
        if host.is_empty() {
            return Err("the server part after '@' is empty".to_owned());
        }
        if host.contains('@') {
            return Err("has more than one '@'".to_owned());
        }
        if host.starts_with('.') || host.ends_with('.') || host.contains("..") {
            return Err(format!("'{}' is not a valid server name", shorten(host)));
        }
    }
    Ok(())
}

/// An InstanceId (`user@server/instance`), the only form the remote-control commands take
/// (SPEC §9).
pub(super) fn check_instance_id(field: &'static str, peer: &str) -> Result<(), FieldError> {
    let ok = peer
        .split_once('@')
        .and_then(|(user, rest)| Some((user, rest.split_once('/')?)))
        .is_some_and(|(user, (server, instance))| {
            !user.is_empty() && !server.is_empty() && !instance.is_empty()
        });
    if ok && !peer.chars().any(char::is_whitespace) {
        Ok(())
    } else {
        Err(FieldError::Invalid {
            field,
            expected: "a participant's InstanceId (user@server/instance, see `participants`)"
                .into(),
            got: shorten(peer),
        })
    }
}

/// The participant a remote-control command names: an InstanceId of the running call.
pub(super) fn find_participant(
    field: &'static str,
    state: &RoomState,
    peer: &str,
) -> Result<String, FieldError> {
    check_instance_id(field, peer)?;
    let Some(conference) = state.conference.as_ref().filter(|_| state.in_call()) else {
        return Err(FieldError::Refused {
            field,
            reason: "no call is running".into(),
        });
    };
    if conference.participants.is_empty() || conference.participants.contains(peer) {
        return Ok(peer.to_owned());
    }
    let listed: Vec<&str> = conference
        .participants
        .iter()
        .take(10)
        .map(|p| p.peer_id.as_str())
        .collect();
    Err(FieldError::Refused {
        field,
        reason: format!(
            "'{}' is not in the call (participants: {}{})",
            shorten(peer),
            listed.join(", "),
            if conference.participants.len() > listed.len() {
                ", …"
            } else {
                ""
            }
        ),
    })
}

/// The content source a payload names: its name (exact, then any case) or its id.
pub(super) fn content_source<'a>(
    state: &'a RoomState,
    wanted: &str,
) -> Option<&'a crate::room::ContentSource> {
    let sources = &state.panel.content_sources;
    let wanted = wanted.trim();
    sources
        .iter()
        .find(|s| s.name == wanted)
        .or_else(|| sources.iter().find(|s| s.name.eq_ignore_ascii_case(wanted)))
        .or_else(|| sources.iter().find(|s| s.id.to_string() == wanted))
}

pub(super) fn no_content_source(
    field: &'static str,
    state: &RoomState,
    wanted: &str,
) -> FieldError {
    let names: Vec<&str> = state
        .panel
        .content_sources
        .iter()
        .map(|s| s.name.as_str())
        .collect();
    FieldError::Refused {
        field,
        reason: format!(
            "no content source '{}' (available: {}; or stop)",
            shorten(wanted.trim()),
            if names.is_empty() {
                "none".to_owned()
            } else {
                names.join(", ")
            }
        ),
    }
}

/// The preset id a payload names, or why there is none.
pub(super) fn find_preset(
    field: &'static str,
    state: &RoomState,
    wanted: &str,
) -> Result<String, FieldError> {
    let panel = &state.panel;
    match panel.find_preset(wanted) {
        Some(i) => Ok(panel.presets[i].id.clone()),
        None if panel.presets.is_empty() => Err(FieldError::Refused {
            field,
            reason: "the Room has no camera presets (save one with preset_save = new)".into(),
        }),
        None => Err(FieldError::Refused {
            field,
            reason: format!(
                "no preset '{}' (available: {})",
                shorten(wanted.trim()),
                panel.preset_labels().join(", ")
            ),
        }),
    }
}

/// The monitors of `getMonitorsInfo`, by name, in the Room's order.
pub fn monitor_names(state: &RoomState) -> Vec<String> {
    monitor_list(state)
        .iter()
        .map(|m| {
            m.get("name")
                .and_then(Value::as_str)
                .unwrap_or("")
                .to_owned()
        })
        .collect()
}

pub(super) fn monitor_list(state: &RoomState) -> Vec<Value> {
    state
        .monitors
        .as_ref()
        .and_then(|m| m.get("monitors"))
        .and_then(Value::as_array)
        .map(|list| list.iter().take(64).cloned().collect())
        .unwrap_or_default()
}

/// The `index` of the `i`-th monitor (its position when it has none).
pub(super) fn monitor_index(state: &RoomState, i: usize) -> Option<i64> {
    let list = monitor_list(state);
    let m = list.get(i)?;
    Some(m.get("index").and_then(Value::as_i64).unwrap_or(i as i64))
}

/// The name of the monitor showing the main window.
pub(super) fn current_monitor(state: &RoomState) -> Value {
    let current = state
        .monitors
        .as_ref()
        .and_then(|m| m.get("currentMonitor"))
        .and_then(Value::as_i64);
    let name = current.and_then(|c| {
        monitor_list(state)
            .into_iter()
            .enumerate()
            .find(|(i, m)| m.get("index").and_then(Value::as_i64).unwrap_or(*i as i64) == c)
            .and_then(|(_, m)| m.get("name").and_then(Value::as_str).map(str::to_owned))
    });
    json!(name.unwrap_or_default())
}
