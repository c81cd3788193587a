//! Acceptance test against a real Home Assistant: a `hass` process, a real mosquitto, the bridge
//! and the simulated Room; Home Assistant is onboarded and given the MQTT integration over its
//! REST API, and everything is checked through Home Assistant's own API (`tests/common/ha.rs`).
//!
//! - On the current Home Assistant (2026.11, `scripts/ha-current.sh`): the device and all its
//!   entities with the ids docs/home-assistant.md documents, commands from Home Assistant reaching
//!   the Room, Room changes reaching Home Assistant (an incoming call: ringing and the event), the
//!   Room going away and coming back, and a restart of Home Assistant while the bridge keeps
//!   running.
//! - On the oldest supported one (2024.3.3, `scripts/ha-venv.sh`), a shorter pass: the device,
//!   the documented entity ids, one command each way.
//!
//! Everything listens on 127.0.0.1 only; the current Home Assistant runs in a network namespace
//! of its own.

mod common;
#[path = "common/ha.rs"]
mod ha;

use std::collections::{BTreeMap, BTreeSet};
use std::time::{Duration, Instant};

use serde_json::{Value, json};
use tokio_util::sync::CancellationToken;
use trueconf2mqtt::bridge::{self, BridgeOptions};
use trueconf2mqtt::homeassistant::{
    DiscoveryContext, DiscoveryMode, HaOptions, entity_topics, mode_topics,
};
use trueconf2mqtt::protocol::AppState;
use trueconf2mqtt::simulator::{SimConfig, SimRoom};

use common::{
    Broker, Probe, room_entry, test_bridge_options, test_link_options, test_room_options,
};
use ha::{HaInstall, HomeAssistant, WAIT};

const ROOM: &str = "boardroom";
/// A display name entity ids must not depend on (they come from the room id).
const ROOM_NAME: &str = "Переговорная";
// ----- the bridge -----------------------------------------------------------------------------

fn bridge_options(broker_port: u16, room: &SimRoom, mode: DiscoveryMode) -> BridgeOptions {
    let room_options = test_room_options(room.http_port()).with_pin("4321");
    let mut options = test_bridge_options(
        test_link_options(broker_port, "trueconf2mqtt-ha-acceptance"),
        vec![room_entry(ROOM, ROOM_NAME, room_options)],
    );
    options.homeassistant = HaOptions {
        mode,
        areas: [(ROOM.to_owned(), AREA.to_owned())].into(),
    };
    options
}

/// The area the configuration suggests for the Room's device.
const AREA: &str = "Floor 3";

fn ctx() -> DiscoveryContext<'static> {
    DiscoveryContext {
        base_topic: "trueconf",
        prefix: "homeassistant",
        room_id: ROOM,
        room_name: ROOM_NAME,
        host: "127.0.0.1",
        bridge_version: env!("CARGO_PKG_VERSION"),
    }
}

/// `(component, object)` of every entity the bridge announces for the Room.
fn expected_entities() -> Vec<(String, String)> {
    entity_topics(&ctx())
        .iter()
        .map(|topic| {
            let levels: Vec<&str> = topic.split('/').collect();
            (levels[1].to_owned(), levels[3].to_owned())
        })
        .collect()
}

/// Entity ids by `(component, object)`, from the entity registry once every expected entity is
/// registered on the Room's device; also returns that device.
async fn registered(ha: &mut HomeAssistant) -> (BTreeMap<(String, String), String>, Value) {
    let expected = expected_entities();
    let unique_id = |object: &str| format!("trueconf2mqtt_{ROOM}_{object}");
    let unique_ids: Vec<String> = expected.iter().map(|(_, o)| unique_id(o)).collect();
    let (entries, device) = ha
        .wait_registered(&unique_ids, &format!("trueconf2mqtt_{ROOM}"))
        .await;
    let mut found = BTreeMap::new();
    for (component, object) in expected {
        let entity_id = entries[&unique_id(&object)]["entity_id"]
            .as_str()
            .expect("entity_id")
            .to_owned();
        assert!(
            entity_id.starts_with(&format!("{component}.")),
            "{object} registered as {entity_id}"
        );
        found.insert((component, object), entity_id);
    }
    (found, device)
}

/// The entity ids docs/home-assistant.md documents (its Entities section) for the room with id
/// `boardroom`: every `` `component.boardroom_…` `` there, with the `` `_suffix` `` shorthand expanded
/// after the id it follows.
fn documented_entity_ids() -> BTreeSet<String> {
    let path = std::path::Path::new(env!("CARGO_MANIFEST_DIR")).join("docs/home-assistant.md");
    let text = std::fs::read_to_string(&path).expect("docs/home-assistant.md");
    let section = text
        .split("\n## ")
        .find(|s| s.starts_with("Entities"))
        .expect("an Entities section in docs/home-assistant.md");
    let mut ids = BTreeSet::new();
    for row in section.lines().filter(|l| l.starts_with("| `")) {
        let first_cell = row.split('|').nth(1).unwrap_or_default();
        let mut prefix = String::new();
        for token in first_cell.split('`').skip(1).step_by(2) {
            if let Some(suffix) = token.strip_prefix('_') {
                ids.insert(format!("{prefix}_{suffix}"));
            } else {
                let (component, object) = token.split_once('.').expect("component.object");
                assert!(object.starts_with(ROOM), "documented id {token}");
                prefix = format!("{component}.{ROOM}");
                ids.insert(token.to_owned());
            }
        }
    }
    ids
}

/// The Room's entities in Home Assistant have exactly the ids the documentation promises.
fn assert_documented_ids(entities: &Entities) {
    let actual: BTreeSet<String> = entities.0.values().cloned().collect();
    let documented = documented_entity_ids();
    assert_eq!(
        actual,
        documented,
        "entity ids in Home Assistant vs docs/home-assistant.md: only in Home Assistant {:?}, \
         only in the docs {:?}",
        actual.difference(&documented).collect::<Vec<_>>(),
        documented.difference(&actual).collect::<Vec<_>>()
    );
}

/// Looks entities up by component and object name.
struct Entities(BTreeMap<(String, String), String>);

impl Entities {
    fn id(&self, component: &str, object: &str) -> String {
        self.0
            .get(&(component.to_owned(), object.to_owned()))
            .unwrap_or_else(|| panic!("no entity {component}.{object}"))
            .clone()
    }

    /// Every entity except the Room-connectivity sensor, which has its own availability.
    fn room_bound(&self) -> impl Iterator<Item = &String> {
        self.0
            .iter()
            .filter(|((_, object), _)| object != "room_connected")
            .map(|(_, id)| id)
    }
}

/// Waits until every entity of `entities` is (or is not) `unavailable`.
async fn wait_availability(ha: &mut HomeAssistant, entities: &Entities, available: bool) {
    for entity_id in entities.room_bound().cloned().collect::<Vec<_>>() {
        let what = if available {
            "to become available"
        } else {
            "to become unavailable"
        };
        ha.wait_state(&entity_id, what, |s| {
            (s["state"] == "unavailable") != available
        })
        .await;
    }
}

/// A broker, the simulated Room, the bridge, and a Home Assistant onboarded with the MQTT
/// integration, whose registry holds the Room's device with all its entities (ids as
/// documented), all available.
struct Setup {
    broker: Broker,
    probe: Probe,
    room: SimRoom,
    shutdown: CancellationToken,
    _bridge: (std::sync::Arc<bridge::Bridge>, bridge::Tasks),
    ha: HomeAssistant,
    entities: Entities,
    device: Value,
    started: Instant,
    ha_up: Duration,
}

async fn set_up(install: HaInstall, mode: DiscoveryMode) -> Setup {
    let started = Instant::now();
    let broker = Broker::start();
    let probe = Probe::connect(
        broker.port,
        &[
            "homeassistant/status",
            "homeassistant/+/trueconf2mqtt_boardroom/+/config",
            "homeassistant/device/trueconf2mqtt_boardroom/config",
            "trueconf/boardroom/availability",
        ],
    )
    .await;
    let room = SimRoom::start(SimConfig {
        pin: Some("4321".into()),
        answer_delay: Duration::from_millis(20),
        ..SimConfig::default()
    })
    .await
    .expect("simulator");
    let shutdown = CancellationToken::new();
    let running = bridge::start(bridge_options(broker.port, &room, mode), shutdown.clone());
    probe
        .wait_value("trueconf/boardroom/availability", "online", WAIT)
        .await;

    // Home Assistant, onboarded, with the MQTT integration.
    let mut ha = HomeAssistant::new(install, broker.port);
    ha.start_and_onboard().await;
    let ha_up = started.elapsed();
    ha.add_mqtt().await;

    // The device and all its entities.
    let (found, device) = registered(&mut ha).await;
    let entities = Entities(found);
    assert_eq!(entities.0.len(), expected_entities().len());
    assert_documented_ids(&entities);
    assert_eq!(device["name"], ROOM_NAME, "{device}");
    assert_eq!(device["manufacturer"], "TrueConf", "{device}");
    assert_eq!(device["model"], "TrueConf Room", "{device}");
    assert_eq!(
        device["sw_version"], "5.0.2.1043",
        "the Room's version: {device}"
    );
    assert!(
        device["configuration_url"]
            .as_str()
            .is_some_and(|u| u.starts_with("http://127.0.0.1:")),
        "{device}"
    );
    let areas = ha
        .websocket()
        .await
        .call("config/area_registry/list", json!({}))
        .await;
    let suggested = areas
        .as_array()
        .expect("areas")
        .iter()
        .find(|a| a["name"] == AREA)
        .unwrap_or_else(|| panic!("no area {AREA} among {areas}"));
    assert_eq!(device["area_id"], suggested["area_id"], "{device}");
    wait_availability(&mut ha, &entities, true).await;
    Setup {
        broker,
        probe,
        room,
        shutdown,
        _bridge: running,
        ha,
        entities,
        device,
        started,
        ha_up,
    }
}

/// Home Assistant had nothing to complain about regarding MQTT or our entities.
fn assert_no_mqtt_problems(ha: &HomeAssistant, test: &str) {
    assert_no_mqtt_problems_but(ha, test, &[]);
}

/// [`assert_no_mqtt_problems`], except lines containing one of `expected`.
fn assert_no_mqtt_problems_but(ha: &HomeAssistant, test: &str, expected: &[&str]) {
    let (ours, others): (Vec<String>, Vec<String>) = ha
        .logged_problems()
        .into_iter()
        .filter(|l| !expected.iter().any(|e| l.contains(e)))
        .partition(|l| l.contains("mqtt") || l.contains("trueconf") || l.contains(ROOM));
    assert!(
        ours.is_empty(),
        "Home Assistant logged MQTT warnings or errors:\n{}",
        ours.join("\n")
    );
    if !others.is_empty() {
        eprintln!(
            "{test}: other Home Assistant warnings ({}), e.g.:\n{}",
            others.len(),
            others[..others.len().min(5)].join("\n")
        );
    }
}

/// The oldest supported Home Assistant: the device and the documented entity ids, the Room's
/// state, a command from Home Assistant and an incoming call from the Room.
#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn the_oldest_supported_home_assistant_sees_and_drives_the_room() {
    // Every part is bound to a name: what `..` skips is dropped (the broker would stop).
    let Setup {
        broker: _broker,
        probe: _probe,
        room,
        shutdown,
        _bridge,
        mut ha,
        entities,
        device: _device,
        started,
        ha_up,
    } = set_up(HaInstall::oldest(), DiscoveryMode::Entity).await;
    ha.wait_value(&entities.id("sensor", "app_state"), "Idle")
        .await;
    let mic = entities.id("switch", "mic_muted");
    ha.wait_value(&mic, "off").await;
    ha.service("switch", "turn_on", json!({"entity_id": mic}))
        .await;
    room.wait_for(|s| s.mic_muted, WAIT)
        .await
        .expect("the Room's microphone muted by Home Assistant");
    ha.wait_value(&mic, "on").await;
    // Camera presets: the select lists the Room's, choosing one moves the camera there.
    presets(&mut ha, &entities, &room).await;
    room.incoming_call("bob@sim.trueconf.local", "Bob").unwrap();
    ha.wait_value(&entities.id("binary_sensor", "ringing"), "on")
        .await;
    let event = ha
        .wait_state(&entities.id("event", "incoming_call"), "to fire", |s| {
            s["attributes"]["event_type"] == "incoming_call"
        })
        .await;
    assert_eq!(event["attributes"]["peer_dn"], "Bob", "{event}");
    assert_no_mqtt_problems(&ha, "ha_acceptance (2024.3.3)");
    shutdown.cancel();
    ha.stop().await;
    eprintln!(
        "ha_acceptance (2024.3.3): Home Assistant up after {ha_up:.1?}, whole test {:.1?}",
        started.elapsed()
    );
}

/// Camera presets from Home Assistant: the select offers the Room's presets, selecting one
/// moves the camera to its position, the save button adds a preset the select then offers.
async fn presets(ha: &mut HomeAssistant, entities: &Entities, room: &SimRoom) {
    let select = entities.id("select", "preset");
    let state = ha
        .wait_state(&select, "to list the presets", |s| {
            s["attributes"]["options"] == json!(["Preset 1", "Preset 2"])
        })
        .await;
    assert_eq!(
        state["attributes"]["friendly_name"]
            .as_str()
            .map(|n| n.ends_with("Camera preset")),
        Some(true),
        "{state}"
    );
    ha.service(
        "select",
        "select_option",
        json!({"entity_id": select, "option": "Preset 2"}),
    )
    .await;
    room.wait_for(|s| (s.ptz.pan, s.ptz.tilt, s.ptz.zoom) == (-6, 3, 3), WAIT)
        .await
        .expect("the camera moved to preset 2 by Home Assistant");
    ha.wait_value(&select, "Preset 2").await;
    ha.service(
        "button",
        "press",
        json!({"entity_id": entities.id("button", "preset_save")}),
    )
    .await;
    room.wait_for(|s| s.presets.len() == 3, WAIT)
        .await
        .expect("a preset saved from Home Assistant");
    ha.wait_state(&select, "to offer the saved preset", |s| {
        s["attributes"]["options"] == json!(["Preset 1", "Preset 2", "Preset 3"])
    })
    .await;
}

/// The current Home Assistant, everything.
#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn the_current_home_assistant_sees_and_drives_the_room() {
    let Some(install) = HaInstall::current("the_current_home_assistant_sees_and_drives_the_room")
    else {
        return;
    };
    let version = install.expected_version().to_owned();
    let Setup {
        broker: _broker,
        probe,
        room,
        shutdown,
        mut ha,
        entities,
        _bridge,
        device,
        started,
        ha_up,
    } = set_up(install, DiscoveryMode::Device).await;

    // ----- 1. the Room's states ---------------------------------------------------------------

    let snapshot = room.snapshot();
    for (component, object, expected) in [
        ("sensor", "app_state", "Idle"),
        ("sensor", "user", "room@sim.trueconf.local"),
        ("sensor", "participant_count", "0"),
        ("switch", "mic_muted", "off"),
        ("switch", "camera_muted", "off"),
        ("switch", "speaker_muted", "off"),
        ("binary_sensor", "in_call", "off"),
        ("binary_sensor", "ringing", "off"),
        ("binary_sensor", "room_connected", "on"),
        ("binary_sensor", "server_connected", "on"),
        ("binary_sensor", "logged_in", "on"),
        ("event", "incoming_call", "unknown"),
        // Empty text (no call): unknown, the same for every text sensor.
        ("sensor", "caller", "unknown"),
        ("sensor", "conference_title", "unknown"),
        ("select", "preset", "unknown"),
        ("binary_sensor", "content_active", "off"),
        ("binary_sensor", "slideshow", "off"),
        ("binary_sensor", "recording", "off"),
    ] {
        ha.wait_value(&entities.id(component, object), expected)
            .await;
    }
    let camera = ha
        .wait_value(
            &entities.id("select", "camera"),
            snapshot.camera.as_deref().expect("a selected camera"),
        )
        .await;
    let in_call = ha
        .state(&entities.id("binary_sensor", "in_call"))
        .await
        .unwrap();
    assert_eq!(
        in_call["attributes"]["device_class"], "occupancy",
        "{in_call}"
    );
    assert_eq!(
        in_call["attributes"]["friendly_name"], "Переговорная In call",
        "{in_call}"
    );

    // ----- 2. Home Assistant commands reach the Room ------------------------------------------
    let mic = entities.id("switch", "mic_muted");
    ha.service("switch", "turn_on", json!({"entity_id": mic}))
        .await;
    room.wait_for(|s| s.mic_muted, WAIT)
        .await
        .expect("the Room's microphone muted by Home Assistant");
    ha.wait_value(&mic, "on").await;
    ha.service("switch", "turn_off", json!({"entity_id": mic}))
        .await;
    room.wait_for(|s| !s.mic_muted, WAIT)
        .await
        .expect("the Room's microphone unmuted by Home Assistant");
    ha.wait_value(&mic, "off").await;

    let other_camera = camera["attributes"]["options"]
        .as_array()
        .expect("select options")
        .iter()
        .filter_map(Value::as_str)
        .find(|o| Some(*o) != snapshot.camera.as_deref())
        .expect("a second camera")
        .to_owned();
    let camera_select = entities.id("select", "camera");
    ha.service(
        "select",
        "select_option",
        json!({"entity_id": camera_select, "option": other_camera}),
    )
    .await;
    room.wait_for(|s| s.camera.as_deref() == Some(&other_camera), WAIT)
        .await
        .expect("the Room's camera switched by Home Assistant");
    ha.wait_value(&camera_select, &other_camera).await;

    // ----- 2b. camera presets ------------------------------------------------------------------
    presets(&mut ha, &entities, &room).await;

    // ----- 3. an incoming call: ringing, and the incoming_call event --------------------------
    room.incoming_call("bob@sim.trueconf.local", "Bob").unwrap();
    ha.wait_value(&entities.id("binary_sensor", "ringing"), "on")
        .await;
    ha.wait_value(&entities.id("sensor", "caller"), "Bob").await;
    ha.wait_value(&entities.id("sensor", "app_state"), "Ringing")
        .await;
    let event = ha
        .wait_state(&entities.id("event", "incoming_call"), "to fire", |s| {
            s["attributes"]["event_type"] == "incoming_call"
        })
        .await;
    let fired = event["state"].as_str().unwrap();
    assert!(
        fired.len() >= 19 && fired.as_bytes()[10] == b'T' && fired[..4].parse::<u32>().is_ok(),
        "the event entity's state is the time it fired: {event}"
    );
    assert_eq!(
        event["attributes"]["peer_id"], "bob@sim.trueconf.local",
        "{event}"
    );
    assert_eq!(event["attributes"]["peer_dn"], "Bob", "{event}");
    assert_eq!(
        event["attributes"]["event_types"],
        json!(["incoming_call"]),
        "{event}"
    );

    // ----- 4. answering it from Home Assistant: a call makes the Room occupied ----------------
    ha.service(
        "button",
        "press",
        json!({"entity_id": entities.id("button", "accept")}),
    )
    .await;
    room.wait_for(|s| s.app_state == AppState::Conference, WAIT)
        .await
        .expect("the Room answered from Home Assistant");
    ha.wait_value(&entities.id("binary_sensor", "in_call"), "on")
        .await;
    ha.wait_value(&entities.id("binary_sensor", "ringing"), "off")
        .await;
    ha.wait_value(&entities.id("sensor", "app_state"), "In call")
        .await;

    // ----- 5. the Room goes away and comes back -----------------------------------------------
    room.stop().await;
    wait_availability(&mut ha, &entities, false).await;
    ha.wait_value(&entities.id("binary_sensor", "room_connected"), "off")
        .await;
    room.restart().await.expect("restart the Room");
    wait_availability(&mut ha, &entities, true).await;
    ha.wait_value(&entities.id("binary_sensor", "room_connected"), "on")
        .await;
    // A restarted Room starts idle: Home Assistant shows its fresh state.
    ha.wait_value(&entities.id("binary_sensor", "in_call"), "off")
        .await;
    ha.wait_value(&entities.id("sensor", "app_state"), "Idle")
        .await;

    // ----- 6. Home Assistant restarts; the bridge keeps running -------------------------------
    let before_restart = probe.messages().len();
    let restart_started = Instant::now();
    ha.stop().await;
    // Home Assistant never disconnects cleanly: the broker publishes its will.
    probe
        .wait_latest("homeassistant/status", WAIT, |p| p == "offline")
        .await;
    // Something happens while Home Assistant is down.
    room.incoming_call("carol@sim.trueconf.local", "Carol")
        .unwrap();
    room.wait_for(|s| s.caller.is_some(), WAIT).await.unwrap();
    ha.restart().await;
    let restart_took = restart_started.elapsed();
    probe
        .wait_latest("homeassistant/status", WAIT, |p| p == "online")
        .await;
    let (found_again, device_again) = registered(&mut ha).await;
    assert_eq!(found_again, entities.0, "entity ids survive the restart");
    assert_eq!(
        device_again["id"], device["id"],
        "the device survives the restart"
    );
    wait_availability(&mut ha, &entities, true).await;
    ha.wait_value(&entities.id("binary_sensor", "ringing"), "on")
        .await;
    ha.wait_value(&entities.id("sensor", "caller"), "Carol")
        .await;
    ha.wait_value(&entities.id("binary_sensor", "room_connected"), "on")
        .await;
    // The bridge answered the birth message by publishing discovery again.
    let configs_after_birth = || {
        let messages = probe.messages();
        let birth = messages
            .iter()
            .enumerate()
            .skip(before_restart)
            .find(|(_, m)| m.topic == "homeassistant/status" && m.payload == "online")
            .map(|(i, _)| i);
        birth.map_or(0, |birth| {
            messages[birth..]
                .iter()
                .filter(|m| m.topic.ends_with("/config") && !m.payload.is_empty())
                .count()
        })
    };
    common::wait_until(
        WAIT,
        "discovery republished after the birth message",
        || configs_after_birth() >= mode_topics(DiscoveryMode::Device, &ctx()).len(),
    )
    .await;
    // And Home Assistant still drives the Room.
    ha.service(
        "button",
        "press",
        json!({"entity_id": entities.id("button", "reject")}),
    )
    .await;
    room.wait_for(
        |s| s.caller.is_none() && s.app_state == AppState::Normal,
        WAIT,
    )
    .await
    .expect("the call rejected from Home Assistant");
    ha.wait_value(&entities.id("binary_sensor", "ringing"), "off")
        .await;
    ha.service("switch", "turn_on", json!({"entity_id": mic}))
        .await;
    room.wait_for(|s| s.mic_muted, WAIT)
        .await
        .expect("the Room's microphone muted after the restart");
    ha.wait_value(&mic, "on").await;

    assert_no_mqtt_problems(&ha, &format!("ha_acceptance ({version})"));

    shutdown.cancel();
    ha.stop().await;
    eprintln!(
        "ha_acceptance ({version}): Home Assistant up after {:.1?} (first start), restarted in {:.1?}, \
         whole test {:.1?}",
        ha_up,
        restart_took,
        started.elapsed()
    );
}

/// Upgrading from per-entity configs (an earlier release, or `discovery_mode = "entity"`) to the
/// device config on the current Home Assistant: the bridge migrates on start, and what the user
/// changed in Home Assistant (an entity renamed and put in an area, another one's entity id)
/// stays; no entity is orphaned or duplicated, and the Room is driven as before.
#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn per_entity_configs_migrate_to_a_device_config_keeping_what_the_user_changed() {
    let Some(install) = HaInstall::current(
        "per_entity_configs_migrate_to_a_device_config_keeping_what_the_user_changed",
    ) else {
        return;
    };
    let started = Instant::now();
    let broker = Broker::start();
    let probe = Probe::connect(broker.port, &["homeassistant/#"]).await;
    let room = SimRoom::start(SimConfig {
        pin: Some("4321".into()),
        ..SimConfig::default()
    })
    .await
    .expect("simulator");

    // ----- before: per-entity configs; the user customises ----------------------------------
    let mut old = common::Running::start(bridge_options(broker.port, &room, DiscoveryMode::Entity));
    let mut ha = HomeAssistant::new(install, broker.port);
    ha.start_and_onboard().await;
    ha.add_mqtt().await;
    let (before, device_before) = registered(&mut ha).await;
    let entities = Entities(before.clone());
    let mic = entities.id("switch", "mic_muted");
    let camera = entities.id("select", "camera");
    let mut ws = ha.websocket().await;
    let area = ws
        .call("config/area_registry/create", json!({"name": "Podium"}))
        .await["area_id"]
        .as_str()
        .expect("area_id")
        .to_owned();
    ws.call(
        "config/entity_registry/update",
        json!({"entity_id": mic, "name": "Podium microphone", "area_id": area}),
    )
    .await;
    ws.call(
        "config/entity_registry/update",
        json!({"entity_id": camera, "new_entity_id": "select.podium_camera"}),
    )
    .await;
    drop(ws);
    let (customised, _) = registered(&mut ha).await;
    assert_eq!(
        customised[&("select".into(), "camera".into())],
        "select.podium_camera"
    );

    // ----- the upgrade: the new release starts with device discovery --------------------------
    old.stop().await;
    let old_topics = entity_topics(&ctx());
    let mut new = common::Running::start(bridge_options(broker.port, &room, DiscoveryMode::Device));
    let device_topic = mode_topics(DiscoveryMode::Device, &ctx()).remove(0);
    probe
        .wait_latest(&device_topic, WAIT, |p| p.contains("\"components\""))
        .await;
    for topic in &old_topics {
        probe.wait_latest(topic, WAIT, str::is_empty).await;
    }
    // Marker on every old topic, then clearing, then the device config (src/homeassistant/device.rs).
    let sequence: Vec<(String, String)> = probe
        .messages()
        .into_iter()
        .filter(|m| m.topic == device_topic || old_topics.contains(&m.topic))
        .map(|m| (m.topic, m.payload))
        .collect();
    let device_at = sequence
        .iter()
        .position(|(t, _)| *t == device_topic)
        .expect("the device config");
    for topic in &old_topics {
        let marker = sequence
            .iter()
            .position(|(t, p)| t == topic && p.contains("migrate_discovery"));
        let cleared = sequence
            .iter()
            .rposition(|(t, p)| t == topic && p.is_empty());
        assert!(
            marker.is_some_and(|m| m < device_at)
                && cleared.is_some_and(|c| marker.is_some_and(|m| m < c) && c < device_at),
            "{topic}: marker {marker:?}, device config {device_at}, cleared {cleared:?}"
        );
    }

    // ----- after: same entities, same ids, what the user set is kept ------------------------
    let (after, device_after) = registered(&mut ha).await;
    assert_eq!(after, customised, "every entity keeps its entity id");
    assert_eq!(device_after["id"], device_before["id"], "the same device");
    let mut ws = ha.websocket().await;
    let renamed = ws
        .call("config/entity_registry/get", json!({"entity_id": mic}))
        .await;
    assert_eq!(renamed["name"], "Podium microphone", "{renamed}");
    assert_eq!(renamed["area_id"], area, "{renamed}");
    let all = ws.call("config/entity_registry/list", json!({})).await;
    let mqtt: Vec<&Value> = all
        .as_array()
        .expect("entity list")
        .iter()
        .filter(|e| e["platform"] == "mqtt")
        .collect();
    assert_eq!(
        mqtt.len(),
        expected_entities().len(),
        "no duplicated or orphaned MQTT entity: {:?}",
        mqtt.iter().map(|e| &e["entity_id"]).collect::<Vec<_>>()
    );
    drop(ws);
    let entities = Entities(after);
    wait_availability(&mut ha, &entities, true).await;
    ha.service("switch", "turn_on", json!({"entity_id": mic}))
        .await;
    room.wait_for(|s| s.mic_muted, WAIT)
        .await
        .expect("the renamed switch still drives the Room");
    ha.wait_value(&mic, "on").await;

    // The upgrade itself drew no MQTT warning or error at all.
    assert_no_mqtt_problems(&ha, "ha_acceptance (migration)");
    let problems_before_going_back = ha.logged_problems().len();

    // ----- and back: `discovery_mode = "entity"` migrates the other way -----------------------
    new.stop().await;
    let mut back =
        common::Running::start(bridge_options(broker.port, &room, DiscoveryMode::Entity));
    probe.wait_latest(&device_topic, WAIT, str::is_empty).await;
    for topic in &old_topics {
        probe
            .wait_latest(topic, WAIT, |p| p.contains("unique_id"))
            .await;
    }
    let (again, device_again) = registered(&mut ha).await;
    assert_eq!(
        again, customised,
        "every entity keeps its entity id going back"
    );
    assert_eq!(device_again["id"], device_before["id"], "the same device");
    let mut ws = ha.websocket().await;
    let renamed = ws
        .call("config/entity_registry/get", json!({"entity_id": mic}))
        .await;
    assert_eq!(renamed["name"], "Podium microphone", "{renamed}");
    assert_eq!(renamed["area_id"], area, "{renamed}");
    let count = ws
        .call("config/entity_registry/list", json!({}))
        .await
        .as_array()
        .expect("list")
        .iter()
        .filter(|e| e["platform"] == "mqtt")
        .count();
    assert_eq!(
        count,
        expected_entities().len(),
        "no duplicate after going back"
    );
    drop(ws);
    wait_availability(&mut ha, &entities, true).await;
    ha.service("switch", "turn_off", json!({"entity_id": mic}))
        .await;
    room.wait_for(|s| !s.mic_muted, WAIT)
        .await
        .expect("the renamed switch drives the Room after going back");
    // Going back, Home Assistant 2026.11 notes the cleared device topic once (whichever order:
    // cleared after the per-entity configs, it warns per entity instead). Known issue: under
    // load, the re-created selects now and then get the retained selection before their options
    // (an "Invalid option … ['none']" error, gone with the next state); tolerated here only.
    let cleanup_note = "No device components to cleanup for trueconf2mqtt_boardroom";
    let invalid_option = "Invalid option for select.";
    // Moving ~60 entities back and forth makes the MQTT integration log a few INFO lines each;
    // past 200 Home Assistant's log throttle says so in a WARNING about the volume, not a problem.
    let throttled = "is logging too frequently";
    let going_back: Vec<String> = ha.logged_problems()[problems_before_going_back..].to_vec();
    let notes = going_back
        .iter()
        .filter(|l| l.contains(cleanup_note))
        .count();
    assert!(notes <= 1, "{notes} device cleanup warnings");
    let unexpected: Vec<&String> = going_back
        .iter()
        .filter(|l| l.contains("mqtt") || l.contains("trueconf") || l.contains(ROOM))
        .filter(|l| {
            !l.contains(cleanup_note) && !l.contains(invalid_option) && !l.contains(throttled)
        })
        .collect();
    assert!(
        unexpected.is_empty(),
        "Home Assistant logged MQTT warnings or errors going back:\n{unexpected:#?}"
    );
    back.stop().await;
    ha.stop().await;
    eprintln!(
        "ha_acceptance (migration): whole test {:.1?}",
        started.elapsed()
    );
}
