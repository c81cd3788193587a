//! `/api/schema`: what a client needs to build its controls and forms, read from the tables the
//! bridge itself works from (the field table and the method catalog), so a UI never keeps a
//! list of its own.

use serde_json::{Value, json};

use crate::bridge::Bridge;
use crate::protocol::{Device, catalog};
use crate::room::{PtzMove, RoomState};
use crate::surface::fields::{FIELDS, Kind, Setter};

/// The description: rooms, fields, methods and events.
pub fn schema(bridge: &Bridge) -> Value {
    let topics = bridge.topics();
    let rooms: Vec<Value> = bridge
        .room_ids()
        .map(|id| json!({ "id": id, "name": bridge.room_name(id).unwrap_or(id) }))
        .collect();
    let methods: Vec<Value> = catalog()
        .methods()
        .iter()
        .map(|m| {
            let params: Vec<Value> = m
                .params
                .iter()
                .map(|p| {
                    json!({
                        "name": p.name,
                        "type": p.ty.as_str(),
                        "required": p.required,
                        "note": p.note,
                    })
                })
                .collect();
            json!({
                "name": m.name,
                "category": m.category,
                "params": params,
                "dangerous": m.dangerous,
                "note": m.note,
            })
        })
        .collect();
    let events: Vec<&str> = catalog().events().iter().map(|e| e.name.as_str()).collect();
    json!({
        "base_topic": topics.base(),
        "instance": topics.instance(),
        "rooms": rooms,
        "fields": FIELDS.iter().map(field).collect::<Vec<_>>(),
        "methods": methods,
        "events": events,
    })
}

fn field(f: &crate::surface::Field) -> Value {
    let kind = match f.kind {
        Kind::Switch => "switch",
        Kind::Text => "text",
        Kind::Integer => "integer",
        Kind::List => "list",
        Kind::Action => "action",
    };
    let mut out = json!({
        "name": f.name,
        "kind": kind,
        "plain": f.plain,
        "settable": f.set.is_some(),
        "about": f.about,
    });
    if let Some(setter) = f.set {
        out["grammar"] = json!(setter.grammar().replace('`', ""));
        out["set"] = setter_description(setter);
    }
    out
}

/// How a setter is driven: fixed choices, or the state member listing them (devices).
fn setter_description(setter: Setter) -> Value {
    match setter {
        Setter::Mute { .. } => json!({ "type": "switch", "options": ["ON", "OFF", "TOGGLE"] }),
        Setter::Device { list, .. } => {
            json!({ "type": "device", "options_from": device_list_member(list) })
        }
        Setter::Call => json!({
            "type": "call",
            "options": ["accept", "reject", "hangup", "hangup_all"],
            "free_text": "a TrueConf ID to call",
        }),
        Setter::Ptz => json!({
            "type": "ptz",
            "options": PtzMove::ALL.iter().map(|m| m.as_str()).collect::<Vec<_>>(),
        }),
        Setter::Window => json!({ "type": "window", "options": ["minimized", "fullscreen"] }),
        Setter::Preset => json!({ "type": "select", "options_from": "presets" }),
        Setter::PresetSave => json!({
            "type": "select",
            "options": ["new"],
            "options_from": "presets",
        }),
        Setter::Content => json!({
            "type": "select",
            "options": ["stop"],
            "options_from": "content_sources",
            "free_text": "stop <peer_id> | default <source>",
        }),
        Setter::Slides => json!({
            "type": "slides",
            "options": ["start", "stop", "prev", "next", "first", "last"],
            "free_text": "a slide number",
        }),
        Setter::Remote { .. } => json!({ "type": "remote", "free_text": "<peer_id> ON|OFF" }),
        Setter::Podium => json!({
            "type": "podium",
            "options": ["accept", "reject"],
            "free_text": "accept|reject <peer_id>",
        }),
        Setter::RecordConsent => json!({ "type": "consent", "options": ["allow", "deny"] }),
        Setter::CameraControl => json!({ "type": "consent", "options": ["accept", "reject"] }),
        Setter::Monitor => json!({ "type": "select", "options_from": "monitors" }),
    }
}

/// The JSON state member a device setter chooses from (`cameras`, `microphones`, `speakers`):
/// found by asking the setter's list function about a state whose lists name themselves.
fn device_list_member(list: fn(&RoomState) -> &[Device]) -> Option<String> {
    let named = |name: &str| {
        vec![Device {
            name: name.to_owned(),
            description: name.to_owned(),
        }]
    };
    let probe = RoomState {
        cameras: named("cameras"),
        microphones: named("microphones"),
        speakers: named("speakers"),
        ..RoomState::default()
    };
    list(&probe).first().map(|d| d.name.clone())
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn device_setters_name_their_list() {
        let members: Vec<Option<String>> = FIELDS
            .iter()
            .filter_map(|f| match f.set? {
                Setter::Device { list, .. } => Some(device_list_member(list)),
                _ => None,
            })
            .collect();
        assert!(members.len() >= 3);
        for m in &members {
            let m = m.as_deref().unwrap();
            assert!(
                crate::surface::fields::field(m).is_some(),
                "{m} is a state field"
            );
        }
    }
}
