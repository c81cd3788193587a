//! Home Assistant MQTT discovery for one Room: pure functions, no I/O.
//!
//! One HA device per Room, announced with one device config (`discovery_mode = "device"`, the
//! default; see [`device_message`], and [`switch_messages`] for the move between modes) or with
//! per-entity discovery topics `<prefix>/<component>/trueconf2mqtt_<room>/<object>/config`
//! (`"entity"`), payloads with full (unabbreviated) keys. Entity ids derive from the room id and
//! the entity (`default_entity_id`, and `object_id` for Home Assistant before 2025.10), never from
//! display names. `tests/ha_discovery.rs` checks every per-entity payload against Home Assistant
//! 2024.3.3's own discovery schemas and runs them in a live, in-process Home Assistant fed with the bridge's real
//! state document (see `scripts/ha-venv.sh`); payloads are kept compatible with newer releases
//! (sensor `options` only with `device_class: enum`, no `entity_category` on event entities,
//! commands never retained); CI runs them in a real Home Assistant 2026.11 too.
//!
//! The entities read the topics the bridge publishes:
//! `<base>/bridge/state` and `<base>/<room>/availability` (`online`/`offline`), the JSON state
//! `<base>/<room>`, the plain per-field topics `<base>/<room>/<field>` (booleans `ON`/`OFF`) and the
//! events `<base>/<room>/event/<eventName>`; they command through `<base>/<room>/set/<field>`.
//!
//! The entities of a field come from the field table (`crate::surface::fields`); this module
//! renders them per platform and adds the Room's connectivity and its events (tables here).
//! The set of config topics never depends on the Room state ([`entity_topics`]), but the select
//! options (device lists) and the device block (`sw_version`, `configuration_url`) do: publish
//! [`discovery_messages`] again when [`DiscoveryInputs`] change.

use serde_json::{Map, Value, json};

use crate::room::RoomState;

mod device;

use crate::surface::Topics;
use crate::surface::fields::{self, Component, FIELDS, Field, HaEntity, Kind};
pub use device::{
    DiscoveryMode, HaOptions, MIGRATE_PAYLOAD, device_message, device_topic, is_other_mode_topic,
    mode_topics, room_messages, switch_messages,
};

/// Longest state Home Assistant accepts for an entity (characters).
pub const MAX_STATE_CHARS: usize = 255;

/// Most items of a list put in an entity's attributes, e.g. participants (keeps the recorder
/// happy).
pub const MAX_LIST_ATTRIBUTE: usize = 50;

/// Longest chat message text carried in a chat event's attributes (characters).
pub const MAX_CHAT_CHARS: usize = 1024;

/// Placeholder select option used while a Room reports no device of a kind: HA's schema accepts
/// an empty `options` list, but such a select offers nothing to choose.
pub const NO_DEVICE_OPTION: &str = "none";

/// What discovery needs to know besides the Room state.
#[derive(Debug, Clone, Copy)]
pub struct DiscoveryContext<'a> {
    /// Bridge base topic (default `trueconf`).
    pub base_topic: &'a str,
    /// Home Assistant discovery prefix (default `homeassistant`).
    pub prefix: &'a str,
    /// Room id, `[a-z0-9_-]` (other characters are replaced by `_` in discovery ids).
    pub room_id: &'a str,
    /// Human name of the Room, used as the HA device name.
    pub room_name: &'a str,
    /// Host the Room runs on, for the device's `configuration_url`.
    pub host: &'a str,
    /// trueconf2mqtt version, for the `origin` block.
    pub bridge_version: &'a str,
}

/// One retained discovery message to publish.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct DiscoveryMessage {
    /// `<prefix>/<component>/<node_id>/<object_id>/config`.
    pub topic: String,
    /// Compact JSON config, or empty to remove the entity.
    pub payload: String,
}

/// Origin name sent in every payload.
pub const ORIGIN_NAME: &str = "trueconf2mqtt";

/// Support URL for the `origin` block: the crate's repository, when Cargo.toml names one.
const SUPPORT_URL: &str = env!("CARGO_PKG_REPOSITORY");

/// Keeps only `[a-zA-Z0-9_-]`, the characters HA allows in node and object ids.
fn id_part(s: &str) -> String {
    let cleaned: String = s
        .chars()
        .map(|c| {
            if c.is_ascii_alphanumeric() || c == '_' || c == '-' {
                c
            } else {
                '_'
            }
        })
        .collect();
    if cleaned.is_empty() {
        "_".into()
    } else {
        cleaned
    }
}

/// `trueconf2mqtt_<room>`: the discovery node id, HA device identifier and unique_id prefix.
pub fn node_id(ctx: &DiscoveryContext) -> String {
    format!("{ORIGIN_NAME}_{}", id_part(ctx.room_id))
}

/// An entity before the shared keys (device, origin, availability, unique_id) are added.
struct Entity {
    component: &'static str,
    object: &'static str,
    /// With `availability` when the entity has its own instead of bridge + Room availability.
    config: Map<String, Value>,
}

fn obj(value: Value) -> Map<String, Value> {
    match value {
        Value::Object(map) => map,
        _ => unreachable!("entity configs are JSON objects"),
    }
}

/// Jinja string literal (single-quoted) for a value we put into a template.
fn jinja_str(s: &str) -> String {
    let mut out = String::with_capacity(s.len() + 2);
    out.push('\'');
    for c in s.chars() {
        match c {
            '\\' => out.push_str("\\\\"),
            '\'' => out.push_str("\\'"),
            '\n' => out.push_str("\\n"),
            '\r' => out.push_str("\\r"),
            c => out.push(c),
        }
    }
    out.push('\'');
    out
}

/// `value_json.<key>` with a default when the key is missing.
fn jv(key: &str, default: &str) -> String {
    format!("value_json.{key} | default({default})")
}

/// A template reading a string member of the JSON state, truncated to the HA state limit.
/// A text member of the JSON state, cut to the state limit; empty reads as unknown (`None`),
/// as for every text sensor.
fn json_text_template(key: &str) -> String {
    format!(
        "{{{{ (({}) or 'None')[:{MAX_STATE_CHARS}] }}}}",
        jv(key, "''")
    )
}

/// `{{ {'a': expr, …} | tojson }}`: a JSON object built from `(name, expression)` pairs.
fn object_template(pairs: &[(&str, String)]) -> String {
    let parts: Vec<String> = pairs
        .iter()
        .map(|(name, expr)| format!("{}: {expr}", jinja_str(name)))
        .collect();
    format!("{{{{ {{{}}} | tojson }}}}", parts.join(", "))
}

/// A member of the JSON state as an attribute expression: lists bounded, text as is.
fn attribute_expression(member: &str) -> String {
    match fields::field(member).map(|f| f.kind) {
        Some(Kind::List) => format!("({})[:{MAX_LIST_ATTRIBUTE}]", jv(member, "[]")),
        _ => jv(member, "''"),
    }
}

/// An event entity: event type (also its object id), name, icon, the Room event it listens to
/// and its attributes, each read from a member of the Room's event JSON.
struct EventEntity {
    event_type: &'static str,
    name: &'static str,
    icon: &'static str,
    room_event: &'static str,
    attributes: &'static [EventAttribute],
}

/// `(attribute, member of the event JSON, default, longest text kept)`.
struct EventAttribute(&'static str, &'static str, &'static str, Option<usize>);

const PEER_ID: EventAttribute = EventAttribute("peer_id", "peerId", "''", None);
const PEER_DN: EventAttribute = EventAttribute("peer_dn", "peerDn", "''", None);
const CONF_ID: EventAttribute = EventAttribute("conf_id", "confId", "''", None);

/// The Room events shown as Home Assistant event entities.
const EVENTS: &[EventEntity] = &[
    EventEntity {
        event_type: "incoming_call",
        name: "Incoming call",
        icon: "mdi:phone-incoming",
        room_event: "inviteReceived",
        attributes: &[
            PEER_ID,
            PEER_DN,
            CONF_ID,
            EventAttribute("conf_title", "confTitle", "''", None),
            EventAttribute("invite_type", "type", "0", None),
        ],
    },
    EventEntity {
        event_type: "call_cancelled",
        name: "Call cancelled",
        icon: "mdi:phone-missed",
        room_event: "stopCalling",
        attributes: &[PEER_ID],
    },
    EventEntity {
        event_type: "call_rejected",
        name: "Call rejected",
        icon: "mdi:phone-cancel",
        room_event: "rejectReceived",
        attributes: &[
            PEER_ID,
            PEER_DN,
            EventAttribute("cause", "cause", "-1", None),
        ],
    },
    EventEntity {
        event_type: "chat_message",
        name: "Chat message",
        icon: "mdi:message-text",
        room_event: "incomingChatMessage",
        attributes: &[
            PEER_ID,
            PEER_DN,
            EventAttribute("message", "message", "''", Some(MAX_CHAT_CHARS)),
            EventAttribute("time", "time", "''", None),
            CONF_ID,
        ],
    },
    EventEntity {
        event_type: "participant_joined",
        name: "Participant joined",
        icon: "mdi:account-plus",
        room_event: "newParticipantInConference",
        attributes: &[PEER_ID, PEER_DN],
    },
    EventEntity {
        event_type: "participant_left",
        name: "Participant left",
        icon: "mdi:account-minus",
        room_event: "participantLeftConference",
        attributes: &[PEER_ID],
    },
];

impl EventEntity {
    fn entity(&self, room: &str, t: &Topics) -> Entity {
        let mut pairs = vec![("event_type", jinja_str(self.event_type))];
        for EventAttribute(name, member, default, max) in self.attributes {
            let expr = jv(member, default);
            pairs.push((
                name,
                match max {
                    Some(max) => format!("({expr})[:{max}]"),
                    None => expr,
                },
            ));
        }
        Entity {
            component: "event",
            object: self.event_type,
            config: obj(json!({
                "name": self.name,
                "icon": self.icon,
                "state_topic": t.event(room, self.room_event),
                "event_types": [self.event_type],
                "value_template": object_template(&pairs),
            })),
        }
    }
}

/// Select options: the device names (unique, in Room order, each representable as an HA state),
/// or the one placeholder [`NO_DEVICE_OPTION`] when there are none (HA shows a select without
/// options as unusable). Depends on the device lists only, so discovery needs republishing only
/// when they change.
fn device_options(names: &[String]) -> Vec<String> {
    let mut options: Vec<String> = Vec::new();
    for name in names {
        let name = name.as_str();
        if !name.is_empty()
            && name.chars().count() <= MAX_STATE_CHARS
            && !options.iter().any(|o| o == name)
        {
            options.push(name.to_owned());
        }
    }
    if options.is_empty() {
        options.push(NO_DEVICE_OPTION.to_owned());
    }
    options
}

/// The configuration URL of the Room's built-in web server, when its port is known and the host
/// makes a valid URL.
fn configuration_url(host: &str, port: Option<u16>) -> Option<String> {
    let port = port?;
    let host = host.trim();
    let bare = host.trim_start_matches('[').trim_end_matches(']');
    if bare.is_empty()
        || !bare
            .chars()
            .all(|c| c.is_ascii_alphanumeric() || matches!(c, '.' | '-' | '_' | ':' | '%'))
    {
        return None;
    }
    if bare.contains(':') {
        Some(format!("http://[{bare}]:{port}/"))
    } else {
        Some(format!("http://{bare}:{port}/"))
    }
}

fn device_block(ctx: &DiscoveryContext, state: &RoomState) -> Value {
    let mut device = obj(json!({
        "identifiers": [node_id(ctx)],
        "name": if ctx.room_name.trim().is_empty() { ctx.room_id } else { ctx.room_name },
        "manufacturer": "TrueConf",
        "model": "TrueConf Room",
    }));
    if let Some(version) = state.version.as_deref().filter(|v| !v.is_empty()) {
        device.insert("sw_version".into(), json!(version));
    }
    if let Some(url) = configuration_url(ctx.host, state.http_port) {
        device.insert("configuration_url".into(), json!(url));
    }
    Value::Object(device)
}

fn origin_block(ctx: &DiscoveryContext) -> Value {
    let mut origin = obj(json!({ "name": ORIGIN_NAME }));
    if !ctx.bridge_version.is_empty() {
        origin.insert("sw_version".into(), json!(ctx.bridge_version));
    }
    if !SUPPORT_URL.is_empty() {
        origin.insert("support_url".into(), json!(SUPPORT_URL));
    }
    Value::Object(origin)
}

/// The entity `e` of `field`.
fn field_entity(room: &str, t: &Topics, field: &Field, e: &HaEntity, state: &RoomState) -> Entity {
    let mut config = obj(json!({ "name": e.name }));
    if !e.icon.is_empty() {
        config.insert("icon".into(), json!(e.icon));
    }
    if let Some(category) = e.category {
        config.insert("entity_category".into(), json!(category));
    }
    if let Some(device_class) = e.device_class {
        config.insert("device_class".into(), json!(device_class));
    }
    let plain_topic = t.field(room, field.name);
    let command_topic = t.set_field(room, field.name);
    let mut set = |key: &str, value: Value| {
        config.insert(key.to_owned(), value);
    };
    match &e.component {
        Component::Sensor {
            options,
            measurement,
            prefer,
            attributes,
        } => {
            if let Some(options) = options {
                let options = options();
                let list: Vec<String> = options.iter().map(|o| jinja_str(o)).collect();
                set("device_class", json!("enum"));
                set("options", json!(options));
                set("state_topic", json!(plain_topic));
                // An unknown or empty value makes the sensor "unknown", not an invalid option.
                let template = format!(
                    "{{{{ value if value in [{}] else 'None' }}}}",
                    list.join(", ")
                );
                set("value_template", json!(template));
            } else if let Some(prefer) = prefer {
                set("state_topic", json!(t.room(room)));
                // Empty reads as unknown (`None`), like every other text sensor.
                let template = format!(
                    "{{{{ (({}) or ({}) or 'None')[:{MAX_STATE_CHARS}] }}}}",
                    jv(prefer, "''"),
                    jv(field.name, "''")
                );
                set("value_template", json!(template));
            } else if !field.plain {
                set("state_topic", json!(t.room(room)));
                set("value_template", json!(json_text_template(field.name)));
            } else if field.kind == Kind::Text {
                // From the JSON state, where an empty text stays "" (an empty retained plain
                // topic is deleted by the broker, which would leave the sensor unknown instead).
                set("state_topic", json!(t.room(room)));
                set("value_template", json!(json_text_template(field.name)));
            } else {
                set("state_topic", json!(plain_topic));
            }
            if *measurement {
                set("state_class", json!("measurement"));
            }
            if !attributes.is_empty() {
                let pairs: Vec<(&str, String)> = attributes
                    .iter()
                    .map(|member| (*member, attribute_expression(member)))
                    .collect();
                set("json_attributes_topic", json!(t.room(room)));
                set("json_attributes_template", json!(object_template(&pairs)));
            }
        }
        Component::BinarySensor => {
            set("state_topic", json!(plain_topic));
            set("payload_on", json!("ON"));
            set("payload_off", json!("OFF"));
        }
        Component::Switch => {
            set("state_topic", json!(plain_topic));
            set("command_topic", json!(command_topic));
            set("payload_on", json!("ON"));
            set("payload_off", json!("OFF"));
            set("state_on", json!("ON"));
            set("state_off", json!("OFF"));
        }
        Component::Select => {
            let names = field
                .set
                .and_then(|setter| setter.options(state))
                .unwrap_or_default();
            set("state_topic", json!(plain_topic));
            set("command_topic", json!(command_topic));
            set("options", json!(device_options(&names)));
            // Nothing selected ("") reads as no current option.
            set("value_template", json!("{{ value if value else 'None' }}"));
        }
        Component::Text => {
            set("command_topic", json!(command_topic));
            set("min", json!(1));
            set("max", json!(MAX_STATE_CHARS));
            set("mode", json!("text"));
        }
        Component::Button { payload } => {
            set("command_topic", json!(command_topic));
            set("payload_press", json!(payload));
        }
    }
    Entity {
        component: e.component.platform(),
        object: e.object,
        config,
    }
}

/// `room_connected`: the Room's availability itself, so it follows the bridge only.
fn room_connected(room: &str, t: &Topics, bridge_state: &str) -> Entity {
    Entity {
        component: "binary_sensor",
        object: "room_connected",
        config: obj(json!({
            "name": "Room connected",
            "device_class": "connectivity",
            "entity_category": "diagnostic",
            "state_topic": t.availability(room),
            "payload_on": "online",
            "payload_off": "offline",
            "availability": [{ "topic": bridge_state }],
        })),
    }
}

/// Every entity of a Room: one or more per field of the field table, the Room's connectivity,
/// and its events. The list of (component, object) pairs never depends on `state`.
fn entities(
    ctx: &DiscoveryContext,
    state: &RoomState,
    t: &Topics,
    bridge_state: &str,
) -> Vec<Entity> {
    let room = ctx.room_id;
    let mut out: Vec<Entity> = FIELDS
        .iter()
        .flat_map(|field| field.ha.iter().map(move |e| (field, e)))
        .map(|(field, e)| field_entity(room, t, field, e, state))
        .collect();
    out.push(room_connected(room, t, bridge_state));
    out.extend(EVENTS.iter().map(|e| e.entity(room, t)));
    out
}

/// What discovery reads from the Room state: the Room version and web port (device block) and
/// the device lists (select options). Discovery is published again only when these change,
/// not on every state change.
#[derive(Debug, PartialEq, Eq, Default)]
pub struct DiscoveryInputs {
    version: Option<String>,
    http_port: Option<u16>,
    devices: Vec<Vec<String>>,
}

impl DiscoveryInputs {
    /// The inputs in `state`.
    pub fn of(state: &RoomState) -> DiscoveryInputs {
        let devices = FIELDS
            .iter()
            .filter_map(|f| f.set?.options(state))
            .collect();
        DiscoveryInputs {
            version: state.version.clone(),
            http_port: state.http_port,
            devices,
        }
    }
}

fn config_topic(ctx: &DiscoveryContext, component: &str, object: &str) -> String {
    format!(
        "{}/{component}/{}/{}/config",
        ctx.prefix,
        node_id(ctx),
        id_part(object)
    )
}

/// Discovery configs for every entity of the Room, one topic per entity (`discovery_mode =
/// "entity"`), built from what `state` knows (device lists for the selects, Room version and web
/// port for the device block). Publish them retained.
pub fn discovery_messages(ctx: &DiscoveryContext, state: &RoomState) -> Vec<DiscoveryMessage> {
    discovery_messages_via(ctx, state, None)
}

/// [`discovery_messages`] for a room served by one of several bridge instances: availability
/// follows that instance's `bridge_state` topic (`<base>/bridge/<instance>/state`) instead of
/// `<base>/bridge/state`, so its rooms go unavailable when it does, and only then.
pub fn discovery_messages_via(
    ctx: &DiscoveryContext,
    state: &RoomState,
    bridge_state: Option<&str>,
) -> Vec<DiscoveryMessage> {
    per_entity_messages(ctx, state, bridge_state, None)
}

/// The Room's entities as Home Assistant sees them, before they are put into one or several
/// configs: the device block, the origin, the availability most of them share, and each entity's
/// own config (with `unique_id` and the keys that make its entity id).
pub(crate) struct Rendered {
    pub device: Value,
    pub origin: Value,
    pub availability: Value,
    /// `(component, object, config)`; a config with `availability` keeps its own.
    pub entities: Vec<(&'static str, &'static str, Map<String, Value>)>,
}

/// Renders every entity of the Room; `area` is the device's `suggested_area`.
pub(crate) fn render(
    ctx: &DiscoveryContext,
    state: &RoomState,
    bridge_state: Option<&str>,
    area: Option<&str>,
) -> Rendered {
    let t = Topics::new(ctx.base_topic);
    let bridge_state = bridge_state.map_or_else(|| t.bridge_state(), str::to_owned);
    let node = node_id(ctx);
    let mut device = device_block(ctx, state);
    if let (Some(area), Some(block)) = (
        area.filter(|a| !a.trim().is_empty()),
        device.as_object_mut(),
    ) {
        block.insert("suggested_area".into(), json!(area.trim()));
    }
    let entities = entities(ctx, state, &t, &bridge_state)
        .into_iter()
        .map(|e| {
            let mut config = e.config;
            config.insert(
                "unique_id".into(),
                json!(format!("{node}_{}", id_part(e.object))),
            );
            // The entity id comes from the room id and the entity, never from display names:
            // `default_entity_id` for Home Assistant 2025.10 and later, `object_id` before
            // (ignored from 2026.4; both together draw no warning from 2024.3 to 2026.11).
            let object_id = entity_object_id(ctx.room_id, e.object);
            config.insert(
                "default_entity_id".into(),
                json!(format!("{}.{object_id}", e.component)),
            );
            config.insert("object_id".into(), json!(object_id));
            (e.component, e.object, config)
        })
        .collect();
    Rendered {
        device,
        origin: origin_block(ctx),
        availability: json!([{ "topic": bridge_state }, { "topic": t.availability(ctx.room_id) }]),
        entities,
    }
}

/// One config per entity, each carrying the device, origin and availability.
pub(crate) fn per_entity_messages(
    ctx: &DiscoveryContext,
    state: &RoomState,
    bridge_state: Option<&str>,
    area: Option<&str>,
) -> Vec<DiscoveryMessage> {
    let r = render(ctx, state, bridge_state, area);
    r.entities
        .into_iter()
        .map(|(component, object, mut config)| {
            config.insert("device".into(), r.device.clone());
            config.insert("origin".into(), r.origin.clone());
            if !config.contains_key("availability") {
                config.insert("availability".into(), r.availability.clone());
                config.insert("availability_mode".into(), json!("all"));
            }
            DiscoveryMessage {
                topic: config_topic(ctx, component, object),
                payload: Value::Object(config).to_string(),
            }
        })
        .collect()
}

/// The object part of an entity id: `<room id>_<object>`, lowercase, `[a-z0-9_]`, no doubled,
/// leading or trailing `_` (what Home Assistant accepts in an entity id).
pub fn entity_object_id(room_id: &str, object: &str) -> String {
    let raw = format!("{room_id}_{object}").to_lowercase();
    let mut out = String::with_capacity(raw.len());
    for c in raw.chars() {
        let c = if c.is_ascii_lowercase() || c.is_ascii_digit() {
            c
        } else {
            '_'
        };
        if c != '_' || !(out.is_empty() || out.ends_with('_')) {
            out.push(c);
        }
    }
    let out = out.trim_end_matches('_');
    if out.is_empty() {
        "trueconf_room".to_owned()
    } else {
        out.to_owned()
    }
}

/// Every config topic this module can publish for the Room (independent of the Room state).
pub fn entity_topics(ctx: &DiscoveryContext) -> Vec<String> {
    let t = Topics::new(ctx.base_topic);
    entities(ctx, &RoomState::default(), &t, &t.bridge_state())
        .iter()
        .map(|e| config_topic(ctx, e.component, e.object))
        .collect()
}

/// Empty (retained) payloads for every config topic of the Room: removes its entities and, with
/// them, its HA device.
pub fn removal_messages(ctx: &DiscoveryContext) -> Vec<DiscoveryMessage> {
    entity_topics(ctx)
        .into_iter()
        .map(|topic| DiscoveryMessage {
            topic,
            payload: String::new(),
        })
        .collect()
}

#[cfg(test)]
mod tests {
    use super::*;
    use crate::protocol::Device;
    use std::collections::HashSet;

    fn ctx() -> DiscoveryContext<'static> {
        DiscoveryContext {
            base_topic: "trueconf",
            prefix: "homeassistant",
            room_id: "board-room_1",
            room_name: "Board room",
            host: "192.0.2.10",
            bridge_version: "0.1.0",
        }
    }

    fn dev(name: &str) -> Device {
        Device {
            name: name.into(),
            description: format!("id-{name}"),
        }
    }

    fn full_state() -> RoomState {
        RoomState {
            app_state: Some(crate::protocol::AppState::Normal),
            cameras: vec![dev("Logitech Rally"), dev("Integrated Camera")],
            microphones: vec![dev("Rally Mic Pod")],
            speakers: vec![dev("Rally Speaker"), dev("HDMI")],
            camera: Some(dev("Logitech Rally")),
            microphone: Some(dev("Rally Mic Pod")),
            speaker: Some(dev("HDMI")),
            version: Some("4.3.1.123".into()),
            http_port: Some(8766),
            ..RoomState::default()
        }
    }

    fn parsed(msgs: &[DiscoveryMessage]) -> Vec<(String, Map<String, Value>)> {
        msgs.iter()
            .map(|m| {
                let v: Value = serde_json::from_str(&m.payload).expect("payload is JSON");
                (m.topic.clone(), obj(v))
            })
            .collect()
    }

    fn valid_topic(topic: &str) -> bool {
        !topic.is_empty()
            && !topic.contains(['+', '#', '\0'])
            && topic.split('/').all(|level| !level.is_empty())
    }

    fn component(topic: &str) -> &str {
        topic.split('/').nth(1).unwrap()
    }

    #[test]
    fn topics_are_valid_and_shaped() {
        for state in [RoomState::default(), full_state()] {
            for (topic, config) in parsed(&discovery_messages(&ctx(), &state)) {
                assert!(valid_topic(&topic), "{topic}");
                let levels: Vec<&str> = topic.split('/').collect();
                assert_eq!(levels.len(), 5, "{topic}");
                assert_eq!(levels[0], "homeassistant");
                assert_eq!(levels[2], "trueconf2mqtt_board-room_1");
                assert_eq!(levels[4], "config");
                for id in [levels[2], levels[3]] {
                    assert!(
                        id.chars()
                            .all(|c| c.is_ascii_alphanumeric() || c == '_' || c == '-'),
                        "{id}"
                    );
                }
                for (key, value) in &config {
                    if key.ends_with("_topic") {
                        let t = value.as_str().unwrap();
                        assert!(valid_topic(t), "{key}={t}");
                        assert!(t.starts_with("trueconf/"), "{key}={t}");
                    }
                }
                for a in config
                    .get("availability")
                    .and_then(Value::as_array)
                    .unwrap()
                {
                    assert!(valid_topic(a["topic"].as_str().unwrap()));
                }
            }
        }
    }

    #[test]
    fn unique_ids_and_topics_are_unique_and_stable() {
        let msgs = parsed(&discovery_messages(&ctx(), &full_state()));
        let ids: HashSet<String> = msgs
            .iter()
            .map(|(_, c)| c["unique_id"].as_str().unwrap().to_owned())
            .collect();
        assert_eq!(ids.len(), msgs.len());
        for id in &ids {
            assert!(id.starts_with("trueconf2mqtt_board-room_1_"), "{id}");
        }
        let topics: HashSet<&String> = msgs.iter().map(|(t, _)| t).collect();
        assert_eq!(topics.len(), msgs.len());
        // The topic set does not depend on the state, and removal covers it.
        let empty: Vec<String> = discovery_messages(&ctx(), &RoomState::default())
            .into_iter()
            .map(|m| m.topic)
            .collect();
        let full: Vec<String> = msgs.iter().map(|(t, _)| t.clone()).collect();
        assert_eq!(empty, full);
        assert_eq!(entity_topics(&ctx()), full);
        let removal = removal_messages(&ctx());
        assert_eq!(removal.len(), full.len());
        assert!(removal.iter().all(|m| m.payload.is_empty()));
    }

    #[test]
    fn availability_everywhere() {
        for (topic, config) in parsed(&discovery_messages(&ctx(), &full_state())) {
            let avail = config["availability"].as_array().expect(&topic);
            assert_eq!(avail[0]["topic"], "trueconf/bridge/state", "{topic}");
            if topic.ends_with("/room_connected/config") {
                assert_eq!(avail.len(), 1);
                assert!(!config.contains_key("availability_mode"));
                assert_eq!(config["state_topic"], "trueconf/board-room_1/availability");
                assert_eq!(config["entity_category"], "diagnostic");
            } else {
                assert_eq!(avail.len(), 2, "{topic}");
                assert_eq!(avail[1]["topic"], "trueconf/board-room_1/availability");
                assert_eq!(config["availability_mode"], "all");
            }
        }
    }

    #[test]
    fn an_instance_s_rooms_follow_its_own_bridge_state() {
        let own = "trueconf/bridge/east/state";
        let msgs = parsed(&discovery_messages_via(&ctx(), &full_state(), Some(own)));
        assert!(!msgs.is_empty());
        for (topic, config) in msgs {
            let avail = config["availability"].as_array().expect(&topic);
            assert_eq!(avail[0]["topic"], own, "{topic}");
        }
        // Same entities either way: a room can move between instances.
        let topics = |m: Vec<DiscoveryMessage>| m.into_iter().map(|m| m.topic).collect::<Vec<_>>();
        assert_eq!(
            topics(discovery_messages_via(&ctx(), &full_state(), Some(own))),
            topics(discovery_messages(&ctx(), &full_state()))
        );
    }

    #[test]
    fn selects_have_options() {
        for state in [RoomState::default(), full_state()] {
            for (topic, config) in parsed(&discovery_messages(&ctx(), &state)) {
                if component(&topic) == "select" {
                    let options = config["options"].as_array().unwrap();
                    assert!(!options.is_empty(), "{topic}");
                    let set: HashSet<&str> = options.iter().map(|o| o.as_str().unwrap()).collect();
                    assert_eq!(set.len(), options.len());
                }
            }
        }
        let msgs = parsed(&discovery_messages(&ctx(), &full_state()));
        let camera = msgs
            .iter()
            .find(|(t, _)| t.ends_with("/select/trueconf2mqtt_board-room_1/camera/config"))
            .unwrap();
        assert_eq!(
            camera.1["options"],
            json!(["Logitech Rally", "Integrated Camera"])
        );
        let empty = parsed(&discovery_messages(&ctx(), &RoomState::default()));
        let camera = empty
            .iter()
            .find(|(t, _)| t.ends_with("/camera/config"))
            .unwrap();
        assert_eq!(camera.1["options"], json!([NO_DEVICE_OPTION]));
    }

    #[test]
    fn duplicate_and_overlong_device_names() {
        let long = "x".repeat(300);
        let opts = device_options(&["A".to_owned(), "A".to_owned(), long.clone(), String::new()]);
        assert_eq!(opts, vec!["A".to_owned()]);
        assert_eq!(device_options(&[]), vec!["none".to_owned()]);
        assert_eq!(device_options(std::slice::from_ref(&long)), vec!["none"]);
    }

    #[test]
    fn payloads_are_small_and_commands_not_retained() {
        let mut state = full_state();
        state.cameras = (0..20)
            .map(|i| dev(&format!("Camera number {i} {}", "y".repeat(100))))
            .collect();
        for m in discovery_messages(&ctx(), &state) {
            assert!(
                m.payload.len() <= 16 * 1024,
                "{} {}",
                m.topic,
                m.payload.len()
            );
            let v: Value = serde_json::from_str(&m.payload).unwrap();
            assert!(v.get("retain").is_none());
            // Both entity-id keys, consistent with each other.
            let object_id = v["object_id"].as_str().unwrap();
            let component = m.topic.split('/').nth(1).unwrap();
            assert_eq!(v["default_entity_id"], format!("{component}.{object_id}"));
        }
    }

    #[test]
    fn device_block_and_origin() {
        let msgs = parsed(&discovery_messages(&ctx(), &full_state()));
        let dev = &msgs[0].1["device"];
        assert_eq!(dev["identifiers"], json!(["trueconf2mqtt_board-room_1"]));
        assert_eq!(dev["name"], "Board room");
        assert_eq!(dev["manufacturer"], "TrueConf");
        assert_eq!(dev["model"], "TrueConf Room");
        assert_eq!(dev["sw_version"], "4.3.1.123");
        assert_eq!(dev["configuration_url"], "http://192.0.2.10:8766/");
        assert_eq!(msgs[0].1["origin"]["name"], "trueconf2mqtt");
        assert_eq!(msgs[0].1["origin"]["sw_version"], "0.1.0");

        let empty = parsed(&discovery_messages(&ctx(), &RoomState::default()));
        let dev = &empty[0].1["device"];
        assert!(dev.get("sw_version").is_none());
        assert!(dev.get("configuration_url").is_none());
    }

    #[test]
    fn configuration_urls() {
        assert_eq!(
            configuration_url("room.local", Some(80)).as_deref(),
            Some("http://room.local:80/")
        );
        assert_eq!(
            configuration_url("fe80::1", Some(8766)).as_deref(),
            Some("http://[fe80::1]:8766/")
        );
        assert_eq!(
            configuration_url("[::1]", Some(1)).as_deref(),
            Some("http://[::1]:1/")
        );
        assert_eq!(configuration_url("room.local", None), None);
        assert_eq!(configuration_url("", Some(80)), None);
        assert_eq!(configuration_url("bad host/x", Some(80)), None);
    }

    #[test]
    fn odd_room_ids_are_sanitised_in_ids() {
        let c = DiscoveryContext {
            room_id: "a.b c",
            ..ctx()
        };
        assert_eq!(node_id(&c), "trueconf2mqtt_a_b_c");
        for t in entity_topics(&c) {
            assert!(t.contains("/trueconf2mqtt_a_b_c/"), "{t}");
        }
    }

    #[test]
    fn expected_entities() {
        let topics = entity_topics(&ctx());
        let objects: Vec<String> = topics
            .iter()
            .map(|t| {
                let l: Vec<&str> = t.split('/').collect();
                format!("{}.{}", l[1], l[3])
            })
            .collect();
        for want in [
            "sensor.app_state",
            "sensor.conference_title",
            "sensor.participant_count",
            "sensor.caller",
            "sensor.user",
            "sensor.server",
            "binary_sensor.in_call",
            "binary_sensor.ringing",
            "binary_sensor.room_connected",
            "switch.mic_muted",
            "switch.camera_muted",
            "switch.speaker_muted",
            "select.camera",
            "select.microphone",
            "select.speaker",
            "button.accept",
            "button.reject",
            "button.hangup",
            "button.ptz_left",
            "button.ptz_zoom_in",
            "button.ptz_stop",
            "text.call",
            "event.incoming_call",
            "event.chat_message",
            "event.participant_joined",
            "event.participant_left",
            "event.call_rejected",
        ] {
            assert!(objects.iter().any(|o| o == want), "missing {want}");
        }
    }

    #[test]
    fn republish_detection() {
        let a = full_state();
        let mut b = a.clone();
        assert_eq!(DiscoveryInputs::of(&a), DiscoveryInputs::of(&b));
        b.mic_muted = Some(true);
        b.app_state = Some(crate::protocol::AppState::Conference);
        assert_eq!(DiscoveryInputs::of(&a), DiscoveryInputs::of(&b));
        // Equal inputs, equal discovery: the inputs cover everything discovery reads.
        assert_eq!(
            discovery_messages(&ctx(), &a),
            discovery_messages(&ctx(), &b)
        );
        b.cameras.push(dev("New cam"));
        assert_ne!(DiscoveryInputs::of(&a), DiscoveryInputs::of(&b));
        assert_ne!(
            discovery_messages(&ctx(), &a),
            discovery_messages(&ctx(), &b)
        );
    }

    #[test]
    fn jinja_strings_are_escaped() {
        assert_eq!(jinja_str("it's \\ ok"), "'it\\'s \\\\ ok'");
    }
}
