//! Home Assistant MQTT discovery for one Room: pure functions, no I/O.
//!
//! One HA device per Room, per-entity discovery topics
//! `<prefix>/<component>/trueconf2mqtt_<room>/<object>/config`, payloads with full (unabbreviated)
//! keys. `tests/ha_discovery.rs` checks every payload against Home Assistant 2024.3.3's own
//! discovery schemas and runs them in a live, in-process Home Assistant fed with the bridge's real
//! state document (see `scripts/ha-venv.sh`); payloads are kept compatible with newer releases
//! (no `object_id`, sensor `options` only with `device_class: enum`, no `entity_category` on
//! event entities, commands never retained).
//!
//! The entities read the topics the bridge publishes:
//! `<base>/bridge/state` and `<base>/<room>/availability` (`online`/`offline`), the JSON state
//! `<base>/<room>`, the plain per-field topics `<base>/<room>/<field>` (booleans `ON`/`OFF`) and the
//! events `<base>/<room>/event/<eventName>`; they command through `<base>/<room>/set/<field>`.
//!
//! The set of config topics never depends on the Room state ([`entity_topics`]), but the select
//! options (device lists) and the device block (`sw_version`, `configuration_url`) do: publish
//! [`discovery_messages`] again when [`needs_republish`] says so.

use serde_json::{Map, Value, json};

use crate::protocol::AppState;
use crate::room::{PtzMove, RoomState};

/// Longest state Home Assistant accepts for an entity (characters).
pub const MAX_STATE_CHARS: usize = 255;

/// Most participants put in the participant sensor's attributes (keeps the recorder happy).
pub const MAX_PARTICIPANT_ATTRIBUTES: usize = 50;

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

/// Topics of one Room, as the bridge publishes them.
struct RoomTopics {
    bridge_state: String,
    availability: String,
    state: String,
    room: String,
}

impl RoomTopics {
    /// `bridge_state`: the serving bridge's state topic; `None` is the single-bridge
    /// `<base>/bridge/state`.
    fn new(ctx: &DiscoveryContext, bridge_state: Option<&str>) -> RoomTopics {
        let room = format!("{}/{}", ctx.base_topic, ctx.room_id);
        RoomTopics {
            bridge_state: bridge_state
                .map_or_else(|| format!("{}/bridge/state", ctx.base_topic), str::to_owned),
            availability: format!("{room}/availability"),
            state: room.clone(),
            room,
        }
    }

    fn field(&self, field: &str) -> String {
        format!("{}/{field}", self.room)
    }

    fn set(&self, field: &str) -> String {
        format!("{}/set/{field}", self.room)
    }

    fn event(&self, event: &str) -> String {
        format!("{}/event/{event}", self.room)
    }
}

/// An event entity: event type (also its object id), name, icon, the Room event it listens to,
/// and its attributes as `(name, Jinja expression)` pairs.
struct EventSpec(
    &'static str,
    &'static str,
    &'static str,
    &'static str,
    Vec<(&'static str, String)>,
);

/// An entity before the shared keys (device, origin, availability, unique_id) are added.
struct Entity {
    component: &'static str,
    object: String,
    config: Map<String, Value>,
    /// Uses its own availability instead of bridge + Room availability.
    own_availability: bool,
}

fn obj(value: Value) -> Map<String, Value> {
    match value {
        Value::Object(map) => map,
        _ => unreachable!("entity configs are JSON objects"),
    }
}

fn entity(component: &'static str, object: &str, config: Value) -> Entity {
    Entity {
        component,
        object: object.to_owned(),
        config: obj(config),
        own_availability: false,
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

/// A template truncating a plain payload to the HA state limit.
fn plain_text_template() -> String {
    format!("{{{{ value[:{MAX_STATE_CHARS}] }}}}")
}

/// A template reading a string member of the JSON state, truncated to the HA state limit.
fn json_text_template(key: &str) -> String {
    format!("{{{{ ({})[:{MAX_STATE_CHARS}] }}}}", jv(key, "''"))
}

/// A template building an event entity's JSON: `event_type` plus attributes read from the Room's
/// event JSON (`(attribute, expression)` pairs).
fn event_template(event_type: &str, attrs: &[(&str, String)]) -> String {
    let mut parts = vec![format!("'event_type': {}", jinja_str(event_type))];
    for (name, expr) in attrs {
        parts.push(format!("{}: {expr}", jinja_str(name)));
    }
    format!("{{{{ {{{}}} | tojson }}}}", parts.join(", "))
}

/// Select options: the device names (unique, in Room order, each representable as an HA state),
/// or the one placeholder [`NO_DEVICE_OPTION`] when there are none (HA shows a select without
/// options as unusable). Depends on the device lists only, so discovery needs republishing only
/// when they change.
fn device_options(devices: &[crate::protocol::Device]) -> Vec<String> {
    let mut options: Vec<String> = Vec::new();
    for d in devices {
        let name = d.name.as_str();
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

/// Every entity of a Room. The list of (component, object) pairs never depends on `state`.
fn entities(ctx: &DiscoveryContext, state: &RoomState, bridge_state: Option<&str>) -> Vec<Entity> {
    let t = RoomTopics::new(ctx, bridge_state);
    let mut out = Vec::new();

    // --- sensors -------------------------------------------------------------------------------
    let app_states: Vec<&str> = AppState::ALL.iter().map(|s| s.as_str()).collect();
    let app_state_list = app_states
        .iter()
        .map(|s| jinja_str(s))
        .collect::<Vec<_>>()
        .join(", ");
    out.push(entity(
        "sensor",
        "app_state",
        json!({
            "name": "State",
            "icon": "mdi:video-account",
            "device_class": "enum",
            "options": app_states,
            "state_topic": t.field("app_state"),
            // An unknown or empty value makes the sensor "unknown" instead of an invalid option.
            "value_template": format!("{{{{ value if value in [{app_state_list}] else 'None' }}}}"),
        }),
    ));
    out.push(entity(
        "sensor",
        "conference_title",
        json!({
            "name": "Conference",
            "icon": "mdi:account-group",
            "state_topic": t.field("conference_title"),
            "value_template": plain_text_template(),
        }),
    ));
    out.push(entity(
        "sensor",
        "participant_count",
        json!({
            "name": "Participants",
            "icon": "mdi:account-multiple",
            "state_class": "measurement",
            "state_topic": t.field("participant_count"),
            "json_attributes_topic": t.state,
            "json_attributes_template": format!(
                "{{{{ {{'participants': ({})[:{MAX_PARTICIPANT_ATTRIBUTES}]}} | tojson }}}}",
                jv("participants", "[]")
            ),
        }),
    ));
    out.push(entity(
        "sensor",
        "caller",
        json!({
            "name": "Caller",
            "icon": "mdi:phone-incoming",
            "state_topic": t.state,
            "value_template": format!(
                "{{{{ (({}) or ({}))[:{MAX_STATE_CHARS}] }}}}",
                jv("caller_name", "''"),
                jv("caller", "''")
            ),
            "json_attributes_topic": t.state,
            "json_attributes_template": format!(
                "{{{{ {{'caller': {}, 'caller_name': {}}} | tojson }}}}",
                jv("caller", "''"),
                jv("caller_name", "''")
            ),
        }),
    ));
    out.push(entity(
        "sensor",
        "user",
        json!({
            "name": "Logged-in user",
            "icon": "mdi:account",
            "entity_category": "diagnostic",
            "state_topic": t.field("user"),
            "value_template": plain_text_template(),
            "json_attributes_topic": t.state,
            "json_attributes_template": format!(
                "{{{{ {{'user_name': {}}} | tojson }}}}",
                jv("user_name", "''")
            ),
        }),
    ));
    out.push(entity(
        "sensor",
        "server",
        json!({
            "name": "Server",
            "icon": "mdi:server-network",
            "entity_category": "diagnostic",
            "state_topic": t.state,
            "value_template": json_text_template("server"),
        }),
    ));
    out.push(entity(
        "sensor",
        "last_reject",
        json!({
            "name": "Last rejected call",
            "icon": "mdi:phone-cancel",
            "entity_category": "diagnostic",
            "state_topic": t.state,
            "value_template": json_text_template("last_reject"),
        }),
    ));

    // --- binary sensors ------------------------------------------------------------------------
    out.push(entity(
        "binary_sensor",
        "in_call",
        json!({
            "name": "In call",
            "device_class": "occupancy",
            "icon": "mdi:phone-in-talk",
            "state_topic": t.field("in_call"),
            "payload_on": "ON",
            "payload_off": "OFF",
        }),
    ));
    out.push(entity(
        "binary_sensor",
        "ringing",
        json!({
            "name": "Ringing",
            "icon": "mdi:phone-ring",
            "state_topic": t.field("ringing"),
            "payload_on": "ON",
            "payload_off": "OFF",
        }),
    ));
    let mut connected = entity(
        "binary_sensor",
        "room_connected",
        json!({
            "name": "Room connected",
            "device_class": "connectivity",
            "entity_category": "diagnostic",
            "state_topic": t.availability,
            "payload_on": "online",
            "payload_off": "offline",
            // Only the bridge's availability: this entity shows the Room being offline.
            "availability": [{ "topic": t.bridge_state }],
        }),
    );
    connected.own_availability = true;
    out.push(connected);
    out.push(entity(
        "binary_sensor",
        "server_connected",
        json!({
            "name": "Server connected",
            "device_class": "connectivity",
            "entity_category": "diagnostic",
            "state_topic": t.field("server_connected"),
            "payload_on": "ON",
            "payload_off": "OFF",
        }),
    ));
    out.push(entity(
        "binary_sensor",
        "logged_in",
        json!({
            "name": "Logged in",
            "icon": "mdi:account-check",
            "entity_category": "diagnostic",
            "state_topic": t.field("logged_in"),
            "payload_on": "ON",
            "payload_off": "OFF",
        }),
    ));

    // --- switches ------------------------------------------------------------------------------
    for (field, name, icon) in [
        ("mic_muted", "Microphone mute", "mdi:microphone-off"),
        ("camera_muted", "Camera mute", "mdi:video-off"),
        ("speaker_muted", "Speaker mute", "mdi:volume-off"),
    ] {
        out.push(entity(
            "switch",
            field,
            json!({
                "name": name,
                "icon": icon,
                "state_topic": t.field(field),
                "command_topic": t.set(field),
                "payload_on": "ON",
                "payload_off": "OFF",
                "state_on": "ON",
                "state_off": "OFF",
            }),
        ));
    }

    // --- selects -------------------------------------------------------------------------------
    for (field, name, icon, devices) in [
        ("camera", "Camera", "mdi:webcam", &state.cameras),
        (
            "microphone",
            "Microphone",
            "mdi:microphone",
            &state.microphones,
        ),
        ("speaker", "Speaker", "mdi:speaker", &state.speakers),
    ] {
        out.push(entity(
            "select",
            field,
            json!({
                "name": name,
                "icon": icon,
                "entity_category": "config",
                "state_topic": t.field(field),
                "command_topic": t.set(field),
                "options": device_options(devices),
                // Nothing selected ("") reads as no current option.
                "value_template": "{{ value if value else 'None' }}",
            }),
        ));
    }

    // --- buttons -------------------------------------------------------------------------------
    for (object, name, icon, payload) in [
        ("accept", "Accept call", "mdi:phone-check", "accept"),
        ("reject", "Reject call", "mdi:phone-cancel", "reject"),
        ("hangup", "Hang up", "mdi:phone-hangup", "hangup"),
    ] {
        out.push(entity(
            "button",
            object,
            json!({
                "name": name,
                "icon": icon,
                "command_topic": t.set("call"),
                "payload_press": payload,
            }),
        ));
    }
    for movement in PtzMove::ALL {
        let word = movement.as_str();
        let (name, icon) = match movement {
            PtzMove::Left => ("PTZ left", "mdi:arrow-left-bold"),
            PtzMove::Right => ("PTZ right", "mdi:arrow-right-bold"),
            PtzMove::Up => ("PTZ up", "mdi:arrow-up-bold"),
            PtzMove::Down => ("PTZ down", "mdi:arrow-down-bold"),
            PtzMove::ZoomIn => ("PTZ zoom in", "mdi:magnify-plus"),
            PtzMove::ZoomOut => ("PTZ zoom out", "mdi:magnify-minus"),
            PtzMove::Stop => ("PTZ stop", "mdi:stop"),
        };
        out.push(entity(
            "button",
            &format!("ptz_{word}"),
            json!({
                "name": name,
                "icon": icon,
                "command_topic": t.set("ptz"),
                "payload_press": word,
            }),
        ));
    }

    // --- text ----------------------------------------------------------------------------------
    out.push(entity(
        "text",
        "call",
        json!({
            "name": "Call",
            "icon": "mdi:phone-dial",
            "command_topic": t.set("call"),
            "min": 1,
            "max": MAX_STATE_CHARS,
            "mode": "text",
        }),
    ));

    // --- events --------------------------------------------------------------------------------
    let peer_id = || jv("peerId", "''");
    let peer_dn = || jv("peerDn", "''");
    let events: [EventSpec; 6] = [
        EventSpec(
            "incoming_call",
            "Incoming call",
            "mdi:phone-incoming",
            "inviteReceived",
            vec![
                ("peer_id", peer_id()),
                ("peer_dn", peer_dn()),
                ("conf_id", jv("confId", "''")),
                ("conf_title", jv("confTitle", "''")),
                ("invite_type", jv("type", "0")),
            ],
        ),
        EventSpec(
            "call_cancelled",
            "Call cancelled",
            "mdi:phone-missed",
            "stopCalling",
            vec![("peer_id", peer_id())],
        ),
        EventSpec(
            "call_rejected",
            "Call rejected",
            "mdi:phone-cancel",
            "rejectReceived",
            vec![
                ("peer_id", peer_id()),
                ("peer_dn", peer_dn()),
                ("cause", jv("cause", "-1")),
            ],
        ),
        EventSpec(
            "chat_message",
            "Chat message",
            "mdi:message-text",
            "incomingChatMessage",
            vec![
                ("peer_id", peer_id()),
                ("peer_dn", peer_dn()),
                (
                    "message",
                    format!("({})[:{MAX_CHAT_CHARS}]", jv("message", "''")),
                ),
                ("time", jv("time", "''")),
                ("conf_id", jv("confId", "''")),
            ],
        ),
        EventSpec(
            "participant_joined",
            "Participant joined",
            "mdi:account-plus",
            "newParticipantInConference",
            vec![("peer_id", peer_id()), ("peer_dn", peer_dn())],
        ),
        EventSpec(
            "participant_left",
            "Participant left",
            "mdi:account-minus",
            "participantLeftConference",
            vec![("peer_id", peer_id())],
        ),
    ];
    for EventSpec(event_type, name, icon, room_event, attrs) in events {
        out.push(entity(
            "event",
            event_type,
            json!({
                "name": name,
                "icon": icon,
                "state_topic": t.event(room_event),
                "event_types": [event_type],
                "value_template": event_template(event_type, &attrs),
            }),
        ));
    }

    out
}

fn config_topic(ctx: &DiscoveryContext, component: &str, object: &str) -> String {
    format!(
        "{}/{component}/{}/{}/config",
        ctx.prefix,
        node_id(ctx),
        id_part(object)
    )
}

/// Discovery configs for every entity of the Room, built from what `state` knows (device lists
/// for the selects, Room version and web port for the device block). Publish them retained.
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
    let t = RoomTopics::new(ctx, bridge_state);
    let node = node_id(ctx);
    let device = device_block(ctx, state);
    let origin = origin_block(ctx);
    let availability = json!([{ "topic": t.bridge_state }, { "topic": t.availability }]);
    entities(ctx, state, bridge_state)
        .into_iter()
        .map(|e| {
            let mut config = e.config;
            config.insert(
                "unique_id".into(),
                json!(format!("{node}_{}", id_part(&e.object))),
            );
            config.insert("device".into(), device.clone());
            config.insert("origin".into(), origin.clone());
            if !e.own_availability {
                config.insert("availability".into(), availability.clone());
                config.insert("availability_mode".into(), json!("all"));
            }
            DiscoveryMessage {
                topic: config_topic(ctx, e.component, &e.object),
                payload: Value::Object(config).to_string(),
            }
        })
        .collect()
}

/// Every config topic this module can publish for the Room (independent of the Room state).
pub fn entity_topics(ctx: &DiscoveryContext) -> Vec<String> {
    entities(ctx, &RoomState::default(), None)
        .iter()
        .map(|e| config_topic(ctx, e.component, &e.object))
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

/// Whether the discovery payloads for `new` differ from those for `old` (device lists, Room
/// version or web port changed), i.e. whether discovery must be published again.
pub fn needs_republish(ctx: &DiscoveryContext, old: &RoomState, new: &RoomState) -> bool {
    discovery_messages(ctx, old) != discovery_messages(ctx, new)
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
            app_state: Some(AppState::Normal),
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
        let opts = device_options(&[dev("A"), dev("A"), dev(&long), dev("")]);
        assert_eq!(opts, vec!["A".to_owned()]);
        assert_eq!(device_options(&[]), vec!["none".to_owned()]);
        assert_eq!(device_options(&[dev(&long)]), vec!["none"]);
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
            assert!(v.get("object_id").is_none());
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
        assert!(!needs_republish(&ctx(), &a, &b));
        b.mic_muted = Some(true);
        assert!(!needs_republish(&ctx(), &a, &b));
        b.cameras.push(dev("New cam"));
        assert!(needs_republish(&ctx(), &a, &b));
    }

    #[test]
    fn jinja_strings_are_escaped() {
        assert_eq!(jinja_str("it's \\ ok"), "'it\\'s \\\\ ok'");
    }
}
