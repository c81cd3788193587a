//! Home Assistant discovery payloads pass Home Assistant's own validation.
//!
//! Feeds the payloads of `trueconf2mqtt::homeassistant` to `tests/ha/validate_discovery.py`,
//! which runs them through the MQTT integration's discovery schemas of a real Home Assistant
//! (2024.3.3, installed by `scripts/ha-venv.sh` into `target/ha-venv`). The interpreter is
//! `$TRUECONF2MQTT_HA_PYTHON` or `target/ha-venv/bin/python`; without it these tests fail.

use std::io::Write;
use std::path::{Path, PathBuf};
use std::process::{Command, Stdio};

use serde_json::{Value, json};
use trueconf2mqtt::homeassistant::{
    DiscoveryContext, DiscoveryMessage, discovery_messages, removal_messages,
};
use trueconf2mqtt::protocol::{AppState, Device, Participant};
use trueconf2mqtt::room::{
    Caller, Conference, ContentSource, Panel, Preset, PtzMove, RoomState, Slideshow,
};
use trueconf2mqtt::surface::{plain_fields, state_document};

fn manifest_dir() -> &'static Path {
    Path::new(env!("CARGO_MANIFEST_DIR"))
}

fn ha_python() -> PathBuf {
    let python = std::env::var_os("TRUECONF2MQTT_HA_PYTHON")
        .map(PathBuf::from)
        .unwrap_or_else(|| manifest_dir().join("target/ha-venv/bin/python"));
    assert!(
        python.exists(),
        "Home Assistant venv not found at {}: run `scripts/ha-venv.sh` first \
         (or set TRUECONF2MQTT_HA_PYTHON to a python with homeassistant==2024.3.3)",
        python.display()
    );
    python
}

/// Runs the validator on the messages; returns (success, combined output).
fn validate(messages: &[DiscoveryMessage], extra_args: &[&str]) -> (bool, String) {
    run_validator(messages, &[], extra_args)
}

/// Runs the validator on the messages followed by runtime steps.
fn run_validator(
    messages: &[DiscoveryMessage],
    steps: &[Value],
    extra_args: &[&str],
) -> (bool, String) {
    let mut input = String::new();
    for m in messages {
        let payload = if m.payload.is_empty() {
            Value::String(String::new())
        } else {
            // The exact published text, so the validator parses what HA would receive.
            Value::String(m.payload.clone())
        };
        let line = serde_json::json!({ "topic": m.topic, "payload": payload });
        input.push_str(&line.to_string());
        input.push('\n');
    }
    for step in steps {
        input.push_str(&step.to_string());
        input.push('\n');
    }
    let mut child = Command::new(ha_python())
        .arg(manifest_dir().join("tests/ha/validate_discovery.py"))
        .args(extra_args)
        .stdin(Stdio::piped())
        .stdout(Stdio::piped())
        .stderr(Stdio::piped())
        .spawn()
        .expect("start the validator");
    child
        .stdin
        .take()
        .unwrap()
        .write_all(input.as_bytes())
        .unwrap();
    let out = child.wait_with_output().expect("validator output");
    let text = format!(
        "{}{}",
        String::from_utf8_lossy(&out.stdout),
        String::from_utf8_lossy(&out.stderr)
    );
    (out.status.success(), text)
}

fn assert_valid(prefix: &str, messages: &[DiscoveryMessage]) {
    assert!(!messages.is_empty());
    let (ok, output) = validate(messages, &["--prefix", prefix]);
    println!("{output}");
    assert!(ok, "Home Assistant rejected discovery payloads:\n{output}");
    let configs = messages.iter().filter(|m| !m.payload.is_empty()).count();
    let removals = messages.len() - configs;
    assert!(
        output.contains(&format!(
            "{configs} config(s), {removals} removal(s), 0 failure(s)"
        )),
        "validator did not check every message:\n{output}"
    );
}

fn ctx() -> DiscoveryContext<'static> {
    DiscoveryContext {
        base_topic: "trueconf",
        prefix: "homeassistant",
        room_id: "board-room_1",
        room_name: "Board room",
        host: "192.0.2.10",
        bridge_version: env!("CARGO_PKG_VERSION"),
    }
}

fn dev(name: &str, id: &str) -> Device {
    Device {
        name: name.into(),
        description: id.into(),
    }
}

/// A Room in a call, with devices, version and web port known.
fn realistic_state() -> RoomState {
    RoomState {
        app_state: Some(AppState::Conference),
        server_connected: Some(true),
        server: Some("tc.example.com:4307".into()),
        logged_in: Some(true),
        user: Some("boardroom@tc.example.com".into()),
        user_name: Some("Board room".into()),
        mic_muted: Some(false),
        camera_muted: Some(true),
        speaker_muted: Some(false),
        cameras: vec![
            dev("Logitech Rally Camera", "\\\\?\\usb#vid_046d&pid_0881"),
            dev("Integrated Camera", "\\\\?\\usb#vid_04f2&pid_b6d9"),
            dev("OBS \"Virtual\" Camera / 'test'", "obs"),
        ],
        microphones: vec![
            dev("Microphone (Rally Mic Pod)", "{0.0.1.00000000}.{a1}"),
            dev("Микрофон (Realtek Audio)", "{0.0.1.00000000}.{b2}"),
        ],
        speakers: vec![dev("Speakers (Rally Speaker)", "{0.0.0.00000000}.{c3}")],
        camera: Some(dev("Logitech Rally Camera", "\\\\?\\usb#vid_046d&pid_0881")),
        microphone: Some(dev("Microphone (Rally Mic Pod)", "{0.0.1.00000000}.{a1}")),
        speaker: Some(dev("Speakers (Rally Speaker)", "{0.0.0.00000000}.{c3}")),
        caller: None,
        conference: Some(Conference {
            conf_id: "0000a1b2@tc.example.com".into(),
            title: Some("Weekly sync".into()),
            peer_id: None,
            participants: vec![Participant {
                peer_id: "alice@tc.example.com".into(),
                peer_dn: "Alice".into(),
            }]
            .into(),
        }),
        version: Some("4.3.1.1234".into()),
        http_port: Some(8766),
        panel: Panel {
            presets: vec![
                Preset {
                    id: "1667476138528".into(),
                    camera: "Logitech Rally Camera".into(),
                    pan: Some(0),
                    tilt: Some(0),
                    zoom: Some(1),
                },
                Preset {
                    id: "1667476138529".into(),
                    camera: "Logitech Rally Camera".into(),
                    pan: Some(-6),
                    tilt: Some(3),
                    zoom: Some(3),
                },
            ],
            active_preset: Some("1667476138529".into()),
            sharing: Some("Screen 1".into()),
            content_sources: vec![
                ContentSource {
                    name: "Screen 1".into(),
                    id: 65537,
                },
                ContentSource {
                    name: "Slides – PowerPoint".into(),
                    id: 66910,
                },
            ],
            slideshow: Slideshow {
                available: true,
                started: true,
                count: 12,
                current: Some(2),
            },
            recording: Some(true),
            ..Panel::default()
        },
        ..RoomState::default()
    }
}

#[test]
fn realistic_room_passes_home_assistant_validation() {
    assert_valid(
        "homeassistant",
        &discovery_messages(&ctx(), &realistic_state()),
    );
}

#[test]
fn empty_room_state_passes_home_assistant_validation() {
    assert_valid(
        "homeassistant",
        &discovery_messages(&ctx(), &RoomState::default()),
    );
}

#[test]
fn ringing_room_with_odd_names_passes_home_assistant_validation() {
    let mut state = realistic_state();
    state.app_state = Some(AppState::Wait);
    state.caller = Some(Caller {
        peer_id: "bob@tc.example.com".into(),
        peer_dn: "Bob".into(),
        conf_title: None,
    });
    state.cameras.clear();
    state.camera = Some(dev("Only camera", "x"));
    let odd = DiscoveryContext {
        base_topic: "home/trueconf",
        prefix: "ha-discovery",
        room_id: "r2",
        room_name: "Переговорная «Север» / 2",
        host: "fe80::1",
        bridge_version: "",
    };
    assert_valid(odd.prefix, &discovery_messages(&odd, &state));
}

#[test]
fn removal_messages_pass_home_assistant_topic_checks() {
    assert_valid("homeassistant", &removal_messages(&ctx()));
}

/// The validator is not vacuous: it rejects what Home Assistant rejects.
#[test]
fn validator_rejects_invalid_payloads() {
    let bad = [
        // A select without options.
        (
            "homeassistant/select/n/o/config",
            r#"{"name":"x","command_topic":"a/set"}"#,
            "options",
        ),
        // A device key unknown to 2024.3 (model_id arrived later) is an error, not ignored.
        (
            "homeassistant/sensor/n/o/config",
            r#"{"state_topic":"a","device":{"identifiers":["i"],"model_id":"m"}}"#,
            "device.model_id",
        ),
        // Wildcards in a command topic.
        (
            "homeassistant/switch/n/o/config",
            r#"{"command_topic":"a/+/set","availability":[{"topic":"a"}]}"#,
            "command_topic",
        ),
        // Unknown availability mode.
        (
            "homeassistant/binary_sensor/n/o/config",
            r#"{"state_topic":"a","availability_mode":"both"}"#,
            "availability_mode",
        ),
        // Text max above 255.
        (
            "homeassistant/text/n/o/config",
            r#"{"command_topic":"a/set","max":300}"#,
            "max",
        ),
        // A top-level key 2024.3 does not know is reported.
        (
            "homeassistant/button/n/o/config",
            r#"{"command_topic":"a/set","suggested_display_precision":2}"#,
            "suggested_display_precision",
        ),
        // Illegal characters in the object id.
        (
            "homeassistant/sensor/n/o.b/config",
            r#"{"state_topic":"a"}"#,
            "illegal",
        ),
    ];
    for (topic, payload, needle) in bad {
        let msg = DiscoveryMessage {
            topic: topic.into(),
            payload: payload.into(),
        };
        let (ok, output) = validate(std::slice::from_ref(&msg), &[]);
        assert!(!ok, "validator accepted {topic} {payload}:\n{output}");
        assert!(
            output.contains(needle),
            "expected '{needle}' in the validator output for {payload}:\n{output}"
        );
    }
}

/// Runtime steps for `validate_discovery.py --runtime`.
#[derive(Default)]
struct Steps(Vec<Value>);

impl Steps {
    fn publish(&mut self, topic: &str, payload: &str, retain: bool) -> &mut Self {
        self.0
            .push(json!({ "message": { "topic": topic, "payload": payload, "retain": retain } }));
        self
    }

    fn state(&mut self, object: &str, state: &str) -> &mut Self {
        self.0
            .push(json!({ "expect": { "unique_id": uid(object), "state": state } }));
        self
    }

    fn attrs(&mut self, object: &str, attributes: Value) -> &mut Self {
        self.0.push(json!({ "expect": {
            "unique_id": uid(object),
            "state_not": ["unavailable"],
            "attributes": attributes,
        } }));
        self
    }

    fn command(
        &mut self,
        object: &str,
        service: &str,
        data: Value,
        field: &str,
        payload: &str,
    ) -> &mut Self {
        self.0.push(json!({ "command": {
            "unique_id": uid(object),
            "service": service,
            "data": data,
            "topic": format!("{ROOM}/set/{field}"),
            "payload": payload,
        } }));
        self
    }
}

const ROOM: &str = "trueconf/board-room_1";

fn uid(object: &str) -> String {
    format!("trueconf2mqtt_board-room_1_{object}")
}

/// Publishes the Room's state exactly as the bridge does: the JSON state document on
/// `<base>/<room>` and the plain per-field topics derived from it.
fn publish_state(steps: &mut Steps, state: &RoomState) {
    let document = state_document(state);
    for (field, value) in plain_fields(&document) {
        steps.publish(&format!("{ROOM}/{field}"), &value, true);
    }
    steps.publish(ROOM, &document.to_string(), true);
}

/// The payloads drive a live Home Assistant: entities are created on one device, show the
/// bridge's states, fire events, publish the right commands (never retained), follow both
/// availabilities, and disappear with the removal messages — with no warning logged by HA.
#[test]
fn room_works_in_a_live_home_assistant() {
    let state = realistic_state();
    let configs = discovery_messages(&ctx(), &state);
    let mut s = Steps::default();
    s.0.push(json!({ "expect_device": {
        "identifier": "trueconf2mqtt_board-room_1",
        "fields": {
            "name": "Board room",
            "manufacturer": "TrueConf",
            "model": "TrueConf Room",
            "sw_version": "4.3.1.1234",
            "configuration_url": "http://192.0.2.10:8766/",
        },
        "entities": configs.len(),
    } }));
    // Nothing published yet: everything unavailable.
    s.state("in_call", "unavailable")
        .state("room_connected", "unavailable");
    s.publish("trueconf/bridge/state", "online", true).publish(
        &format!("{ROOM}/availability"),
        "online",
        true,
    );
    publish_state(&mut s, &state);
    s.state("app_state", "In call")
        .state("conference_title", "Weekly sync")
        .state("participant_count", "1")
        .attrs(
            "participant_count",
            json!({ "participants": [{ "peer_id": "alice@tc.example.com", "peer_dn": "Alice" }] }),
        )
        // An empty text is Home Assistant's "no value" (`None`): `unknown` for every sensor from
        // 2024.10 on (home-assistant/core#127032); 2024.3.3 shows a text sensor's as "None".
        .state("caller", "None")
        .state("user", "boardroom@tc.example.com")
        .attrs("user", json!({ "user_name": "Board room" }))
        .state("server", "tc.example.com:4307")
        .state("last_reject", "None")
        .state("in_call", "on")
        .state("ringing", "off")
        .state("room_connected", "on")
        .state("server_connected", "on")
        .state("logged_in", "on")
        .state("mic_muted", "off")
        .state("camera_muted", "on")
        .state("speaker_muted", "off")
        .state("camera", "Logitech Rally Camera")
        .attrs(
            "camera",
            json!({ "options": ["Logitech Rally Camera", "Integrated Camera",
                                "OBS \"Virtual\" Camera / 'test'"] }),
        )
        .state("microphone", "Microphone (Rally Mic Pod)")
        .state("speaker", "Speakers (Rally Speaker)")
        // The room panel: presets, content, slides, recording.
        .state("preset", "Preset 2")
        .attrs("preset", json!({ "options": ["Preset 1", "Preset 2"] }))
        .state("content", "Screen 1")
        .state("content_active", "on")
        .state("slideshow", "on")
        .state("slide", "3")
        .attrs("slide", json!({ "slide_count": 12 }))
        .state("recording", "on")
        .state("record_consent_pending", "off")
        .state("podium_request_count", "0")
        .state("preset_save", "unknown")
        .state("accept", "unknown")
        .state("ptz_zoom_in", "unknown")
        .state("call", "unknown")
        .state("incoming_call", "unknown")
        .attrs("incoming_call", json!({ "event_types": ["incoming_call"] }));

    // Commands: exact topics and payloads, never retained.
    s.command("mic_muted", "switch.turn_on", json!({}), "mic_muted", "ON")
        .command(
            "camera_muted",
            "switch.turn_off",
            json!({}),
            "camera_muted",
            "OFF",
        )
        .command(
            "speaker_muted",
            "switch.toggle",
            json!({}),
            "speaker_muted",
            "ON",
        )
        .command(
            "camera",
            "select.select_option",
            json!({ "option": "OBS \"Virtual\" Camera / 'test'" }),
            "camera",
            "OBS \"Virtual\" Camera / 'test'",
        )
        .command(
            "microphone",
            "select.select_option",
            json!({ "option": "Микрофон (Realtek Audio)" }),
            "microphone",
            "Микрофон (Realtek Audio)",
        )
        .command("accept", "button.press", json!({}), "call", "accept")
        .command("reject", "button.press", json!({}), "call", "reject")
        .command("hangup", "button.press", json!({}), "call", "hangup");
    for m in PtzMove::ALL {
        let w = m.as_str();
        s.command(&format!("ptz_{w}"), "button.press", json!({}), "ptz", w);
    }
    s.command(
        "call",
        "text.set_value",
        json!({ "value": "alice@tc.example.com" }),
        "call",
        "alice@tc.example.com",
    );

    // Events, from the Room's raw event JSON.
    let ev = |name: &str| format!("{ROOM}/event/{name}");
    s.publish(
        &ev("inviteReceived"),
        r#"{"method":"event","event":"inviteReceived","peerId":"bob@tc.example.com","peerDn":"Bob","type":0,"confId":"c1"}"#,
        false,
    )
    .attrs(
        "incoming_call",
        json!({ "event_type": "incoming_call", "peer_id": "bob@tc.example.com",
                "peer_dn": "Bob", "conf_id": "c1", "conf_title": "", "invite_type": 0 }),
    );
    s.publish(
        &ev("inviteReceived"),
        r#"{"method":"event","event":"inviteReceived","peerId":"g@tc","peerDn":"G","type":2,"confId":"c2","confTitle":"All hands"}"#,
        false,
    )
    .attrs(
        "incoming_call",
        json!({ "event_type": "incoming_call", "conf_title": "All hands", "invite_type": 2 }),
    );
    let long_message = "ж".repeat(2000);
    s.publish(
        &ev("incomingChatMessage"),
        &json!({ "method": "event", "event": "incomingChatMessage", "peerId": "alice@tc",
                 "peerDn": "Alice", "message": long_message, "time": 1700000000,
                 "confId": "c1" })
        .to_string(),
        false,
    )
    .attrs(
        "chat_message",
        json!({ "event_type": "chat_message", "peer_id": "alice@tc", "peer_dn": "Alice",
                "message": "ж".repeat(1024), "time": 1700000000, "conf_id": "c1" }),
    );
    s.publish(
        &ev("newParticipantInConference"),
        r#"{"method":"event","event":"newParticipantInConference","peerId":"carol@tc","peerDn":"Carol"}"#,
        false,
    )
    .attrs(
        "participant_joined",
        json!({ "event_type": "participant_joined", "peer_id": "carol@tc", "peer_dn": "Carol" }),
    );
    s.publish(
        &ev("participantLeftConference"),
        r#"{"method":"event","event":"participantLeftConference","peerId":"carol@tc"}"#,
        false,
    )
    .attrs(
        "participant_left",
        json!({ "event_type": "participant_left", "peer_id": "carol@tc" }),
    );
    s.publish(
        &ev("rejectReceived"),
        r#"{"method":"event","event":"rejectReceived","cause":2,"peerId":"dave@tc","peerDn":"Dave"}"#,
        false,
    )
    .attrs(
        "call_rejected",
        json!({ "event_type": "call_rejected", "peer_id": "dave@tc", "peer_dn": "Dave",
                "cause": 2 }),
    );
    s.publish(
        &ev("stopCalling"),
        r#"{"method":"event","event":"stopCalling","peerId":"bob@tc","side":1}"#,
        false,
    )
    .attrs(
        "call_cancelled",
        json!({ "event_type": "call_cancelled", "peer_id": "bob@tc" }),
    );

    // Ringing, with an over-long title: states stay within HA's 255 characters.
    let mut ringing = state.clone();
    ringing.app_state = Some(AppState::Wait);
    ringing.caller = Some(Caller {
        peer_id: "bob@tc.example.com".into(),
        peer_dn: "Bob".into(),
        conf_title: None,
    });
    ringing.conference = Some(Conference {
        conf_id: "c9".into(),
        title: Some("t".repeat(300)),
        peer_id: None,
        participants: Default::default(),
    });
    ringing.camera = None;
    publish_state(&mut s, &ringing);
    s.state("app_state", "Ringing")
        .state("ringing", "on")
        .state("in_call", "off")
        .state("caller", "Bob")
        .attrs(
            "caller",
            json!({ "caller": "bob@tc.example.com", "caller_name": "Bob" }),
        )
        .state("conference_title", &"t".repeat(255))
        .state("participant_count", "0")
        .attrs("participant_count", json!({ "participants": [] }))
        // No camera selected: the select shows no current option.
        .state("camera", "unknown");

    // Room offline: all but the connectivity sensor go unavailable; that one shows "off".
    s.publish(&format!("{ROOM}/availability"), "offline", true)
        .state("in_call", "unavailable")
        .state("mic_muted", "unavailable")
        .state("incoming_call", "unavailable")
        .state("room_connected", "off");
    s.publish(&format!("{ROOM}/availability"), "online", true)
        .state("in_call", "off");
    // Bridge offline: everything unavailable.
    s.publish("trueconf/bridge/state", "offline", true)
        .state("room_connected", "unavailable")
        .state("camera", "unavailable");

    // Removal: every entity and the device go away.
    for m in removal_messages(&ctx()) {
        s.publish(&m.topic, &m.payload, true);
    }
    for object in [
        "app_state",
        "in_call",
        "room_connected",
        "camera",
        "call",
        "ptz_stop",
    ] {
        s.0.push(json!({ "expect": { "unique_id": uid(object), "absent": true } }));
    }
    s.0.push(json!({ "expect_device": {
        "identifier": "trueconf2mqtt_board-room_1", "absent": true } }));

    let (ok, output) = run_validator(&configs, &s.0, &["--runtime"]);
    println!("{output}");
    assert!(ok, "Home Assistant runtime check failed:\n{output}");
    assert!(
        output.contains(&format!(
            "runtime: {} config(s) delivered, {} step(s), 0 failure(s)",
            configs.len(),
            s.0.len()
        )),
        "{output}"
    );
}

/// After a Home Assistant restart everything is retained: configs arrive after the bridge's
/// state, and the entities pick the state up from the broker's retained replay.
#[test]
fn retained_state_before_discovery_is_picked_up() {
    let state = realistic_state();
    let configs = discovery_messages(&ctx(), &state);
    let mut s = Steps::default();
    s.publish("trueconf/bridge/state", "online", true).publish(
        &format!("{ROOM}/availability"),
        "online",
        true,
    );
    publish_state(&mut s, &state);
    s.0.push(json!({ "discover": {} }));
    s.state("app_state", "In call")
        .state("in_call", "on")
        .state("room_connected", "on")
        .state("camera_muted", "on")
        .state("camera", "Logitech Rally Camera")
        .state("server", "tc.example.com:4307")
        .attrs(
            "participant_count",
            json!({ "participants": [{ "peer_id": "alice@tc.example.com", "peer_dn": "Alice" }] }),
        );
    let (ok, output) = run_validator(&configs, &s.0, &["--runtime"]);
    println!("{output}");
    assert!(ok, "Home Assistant runtime check failed:\n{output}");
}

/// The live check is not vacuous: HA's complaints and wrong states fail it.
#[test]
fn live_check_reports_home_assistant_errors() {
    let configs = discovery_messages(&ctx(), &realistic_state());
    let mut s = Steps::default();
    s.publish("trueconf/bridge/state", "online", true)
        .publish(&format!("{ROOM}/availability"), "online", true)
        .publish(&format!("{ROOM}/camera"), "No such camera", true)
        .publish(&format!("{ROOM}/in_call"), "ON", true)
        .state("in_call", "off");
    let (ok, output) = run_validator(&configs, &s.0, &["--runtime"]);
    assert!(!ok, "{output}");
    assert!(output.contains("Invalid option"), "{output}");
    assert!(output.contains("state 'on', expected 'off'"), "{output}");
}
