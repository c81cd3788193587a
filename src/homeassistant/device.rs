//! Device-based discovery (Home Assistant 2024.11 and later) and the move between the two
//! discovery modes.
//!
//! In `device` mode a Room is one retained config, `<prefix>/device/trueconf2mqtt_<room>/config`:
//! the device and origin blocks, the availability every entity shares, and `components`, one per
//! entity (its platform as `platform`, its `unique_id`, its own keys; `room_connected` keeps its
//! own availability, which overrides the shared one). Unique ids and the device identifier are
//! those of `entity` mode, so Home Assistant keeps entity ids, names, areas and everything a user
//! set when a Room moves from one mode to the other.
//!
//! The move ([`switch_messages`]) follows Home Assistant's documented migration: `{"migrate_discovery":
//! true}` on each old topic (Home Assistant unloads the entity and keeps its registry entry), the
//! old topics cleared (empty retained), then the new configs. The documentation clears the old
//! topics last; Home Assistant 2026.11 then logs "Received a conflicting MQTT discovery message"
//! once per entity (the clear reaches the entity now discovered through the new topic, as both
//! share one discovery id), while clearing right after the markers reaches only unloaded entities
//! and keeps every registry entry (`tests/ha_acceptance.rs` checks both on a real Home
//! Assistant). Going back from `device` to `entity` is the same with the device topic as the old
//! one.

use std::collections::BTreeMap;

use serde_json::{Map, Value, json};

use super::{
    DiscoveryContext, DiscoveryMessage, entity_topics, node_id, per_entity_messages, render,
};
use crate::room::RoomState;

/// How the bridge announces a Room to Home Assistant (`homeassistant.discovery_mode`).
#[derive(Debug, Clone, Copy, PartialEq, Eq, Default)]
pub enum DiscoveryMode {
    /// One config per Room (Home Assistant 2024.11 and later).
    #[default]
    Device,
    /// One config per entity (every Home Assistant version; needed before 2024.11).
    Entity,
}

impl DiscoveryMode {
    /// Both modes with their configuration names.
    pub const ALL: [(&'static str, DiscoveryMode); 2] = [
        ("device", DiscoveryMode::Device),
        ("entity", DiscoveryMode::Entity),
    ];

    /// The configuration name: `device` or `entity`.
    pub fn name(self) -> &'static str {
        match self {
            DiscoveryMode::Device => "device",
            DiscoveryMode::Entity => "entity",
        }
    }

    /// The mode named `name`, or what is expected.
    pub fn parse(name: &str) -> Result<DiscoveryMode, String> {
        DiscoveryMode::ALL
            .iter()
            .find(|(n, _)| *n == name)
            .map(|(_, mode)| *mode)
            .ok_or_else(|| format!("unknown discovery mode {name:?}: \"device\" or \"entity\""))
    }
}

/// The bridge's Home Assistant settings beyond the discovery prefix.
#[derive(Debug, Clone, Default, PartialEq, Eq)]
pub struct HaOptions {
    /// How Rooms are announced.
    pub mode: DiscoveryMode,
    /// The device's `suggested_area` by room id (`[[rooms]] area`): where Home Assistant puts a
    /// Room's device when it first sees it.
    pub areas: BTreeMap<String, String>,
}

impl HaOptions {
    /// The suggested area of `room`.
    pub fn area(&self, room: &str) -> Option<&str> {
        self.areas.get(room).map(String::as_str)
    }
}

/// The migration marker Home Assistant documents, published on a topic whose config moves.
pub const MIGRATE_PAYLOAD: &str = r#"{"migrate_discovery":true}"#;

/// `<prefix>/device/trueconf2mqtt_<room>/config`.
pub fn device_topic(ctx: &DiscoveryContext) -> String {
    format!("{}/device/{}/config", ctx.prefix, node_id(ctx))
}

/// The Room's one device config (`device` mode).
pub fn device_message(
    ctx: &DiscoveryContext,
    state: &RoomState,
    bridge_state: Option<&str>,
    area: Option<&str>,
) -> DiscoveryMessage {
    let r = render(ctx, state, bridge_state, area);
    let mut components = Map::new();
    for (component, object, mut config) in r.entities {
        config.insert("platform".into(), json!(component));
        components.insert(super::id_part(object), Value::Object(config));
    }
    let payload = json!({
        "device": r.device,
        "origin": r.origin,
        "availability": r.availability,
        "availability_mode": "all",
        "components": components,
    });
    DiscoveryMessage {
        topic: device_topic(ctx),
        payload: payload.to_string(),
    }
}

/// The Room's discovery configs in `mode`.
pub fn room_messages(
    mode: DiscoveryMode,
    ctx: &DiscoveryContext,
    state: &RoomState,
    bridge_state: Option<&str>,
    area: Option<&str>,
) -> Vec<DiscoveryMessage> {
    match mode {
        DiscoveryMode::Device => vec![device_message(ctx, state, bridge_state, area)],
        DiscoveryMode::Entity => per_entity_messages(ctx, state, bridge_state, area),
    }
}

/// Every config topic of the Room in `mode` (independent of the Room state).
pub fn mode_topics(mode: DiscoveryMode, ctx: &DiscoveryContext) -> Vec<String> {
    match mode {
        DiscoveryMode::Device => vec![device_topic(ctx)],
        DiscoveryMode::Entity => entity_topics(ctx),
    }
}

/// Whether `topic` is one of the Room's config topics in the mode other than `mode`: what a
/// change of mode (or an earlier release, which had only `entity`) left retained.
pub fn is_other_mode_topic(mode: DiscoveryMode, ctx: &DiscoveryContext, topic: &str) -> bool {
    let other = match mode {
        DiscoveryMode::Device => DiscoveryMode::Entity,
        DiscoveryMode::Entity => DiscoveryMode::Device,
    };
    mode_topics(other, ctx).iter().any(|t| t == topic)
}

/// Moves the Room from the configs retained on `old_topics` to `new` (this mode's configs): a
/// migration marker on each old topic, each old topic cleared, then the new configs (see the
/// module documentation for the order). Each step must reach the broker before the next.
pub fn switch_messages(old_topics: &[String], new: Vec<DiscoveryMessage>) -> Vec<DiscoveryMessage> {
    let marker = |topic: &String| DiscoveryMessage {
        topic: topic.clone(),
        payload: MIGRATE_PAYLOAD.to_owned(),
    };
    let clear = |topic: &String| DiscoveryMessage {
        topic: topic.clone(),
        payload: String::new(),
    };
    old_topics
        .iter()
        .map(marker)
        .chain(old_topics.iter().map(clear))
        .chain(new)
        .collect()
}

#[cfg(test)]
mod tests {
    use super::*;
    use crate::protocol::Device;

    fn ctx() -> DiscoveryContext<'static> {
        DiscoveryContext {
            base_topic: "trueconf",
            prefix: "homeassistant",
            room_id: "board-room_1",
            room_name: "Переговорная",
            host: "192.0.2.10",
            bridge_version: "0.1.0",
        }
    }

    fn state() -> RoomState {
        RoomState {
            cameras: vec![Device {
                name: "Rally".into(),
                description: "cam-1".into(),
            }],
            version: Some("5.0.2.1043".into()),
            http_port: Some(8766),
            ..RoomState::default()
        }
    }

    fn parse(m: &DiscoveryMessage) -> Value {
        serde_json::from_str(&m.payload).expect("JSON")
    }

    #[test]
    fn modes_parse_and_name() {
        for (name, mode) in DiscoveryMode::ALL {
            assert_eq!(DiscoveryMode::parse(name), Ok(mode));
            assert_eq!(mode.name(), name);
        }
        assert!(DiscoveryMode::parse("devices").is_err());
        assert_eq!(DiscoveryMode::default(), DiscoveryMode::Device);
    }

    #[test]
    fn one_device_config_holds_every_entity_of_the_per_entity_configs() {
        let device = device_message(&ctx(), &state(), None, Some("Floor 3"));
        assert_eq!(
            device.topic,
            "homeassistant/device/trueconf2mqtt_board-room_1/config"
        );
        let config = parse(&device);
        assert_eq!(config["origin"]["name"], "trueconf2mqtt");
        assert_eq!(config["device"]["suggested_area"], "Floor 3");
        assert_eq!(config["device"]["sw_version"], "5.0.2.1043");
        assert_eq!(
            config["device"]["configuration_url"],
            "http://192.0.2.10:8766/"
        );
        assert_eq!(config["availability_mode"], "all");
        let components = config["components"].as_object().unwrap();
        let per_entity = per_entity_messages(&ctx(), &state(), None, Some("Floor 3"));
        assert_eq!(components.len(), per_entity.len());
        for m in &per_entity {
            let mut entity = parse(m).as_object().unwrap().clone();
            let levels: Vec<&str> = m.topic.split('/').collect();
            let component = &components[levels[3]];
            assert_eq!(component["platform"], levels[1], "{}", m.topic);
            // The same entity: every key but the shared blocks, which sit at the root.
            for shared in ["device", "origin", "availability", "availability_mode"] {
                if shared.starts_with("availability") && levels[3] == "room_connected" {
                    continue;
                }
                entity.remove(shared);
            }
            for (key, value) in &entity {
                assert_eq!(&component[key], value, "{} {key}", m.topic);
            }
        }
        // The Room's connectivity follows the bridge only.
        let connected = &components["room_connected"];
        assert_eq!(
            connected["availability"],
            json!([{"topic": "trueconf/bridge/state"}])
        );
    }

    #[test]
    fn entity_ids_come_from_the_room_id_not_its_name() {
        let config = parse(&device_message(&ctx(), &state(), None, None));
        let mic = &config["components"]["mic_muted"];
        assert_eq!(mic["default_entity_id"], "switch.board_room_1_mic_muted");
        assert_eq!(mic["object_id"], "board_room_1_mic_muted");
        assert_eq!(mic["unique_id"], "trueconf2mqtt_board-room_1_mic_muted");
        assert_eq!(super::super::entity_object_id("A--b.", "x"), "a_b_x");
        assert_eq!(super::super::entity_object_id("_", "_"), "trueconf_room");
        assert!(config["device"].get("suggested_area").is_none());
    }

    #[test]
    fn switching_marks_then_clears_then_publishes() {
        let old = entity_topics(&ctx());
        assert!(
            old.iter()
                .all(|t| is_other_mode_topic(DiscoveryMode::Device, &ctx(), t))
        );
        assert!(!is_other_mode_topic(DiscoveryMode::Entity, &ctx(), &old[0]));
        let new = room_messages(DiscoveryMode::Device, &ctx(), &state(), None, None);
        let messages = switch_messages(&old, new.clone());
        let n = old.len();
        assert_eq!(messages.len(), 2 * n + 1);
        assert!(messages[..n].iter().all(|m| m.payload == MIGRATE_PAYLOAD));
        assert!(messages[n..2 * n].iter().all(|m| m.payload.is_empty()));
        assert_eq!(
            messages[n..2 * n]
                .iter()
                .map(|m| &m.topic)
                .collect::<Vec<_>>(),
            old.iter().collect::<Vec<_>>()
        );
        assert_eq!(messages[2 * n], new[0]);
        // Going back: the device topic is the old one.
        let device = device_topic(&ctx());
        assert!(is_other_mode_topic(DiscoveryMode::Entity, &ctx(), &device));
    }
}
