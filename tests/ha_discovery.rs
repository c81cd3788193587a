//! Home Assistant discovery payloads pass Home Assistant's own validation.
//!
//! Feeds the payloads of `trueconf2mqtt::homeassistant` to `tests/ha/validate_discovery.py`,
//! which runs them through the MQTT integration's discovery schemas of a real Home Assistant
//! (2024.3.3, installed by `scripts/ha-venv.sh` into `target/ha-venv`). The interpreter is
//! `$TRUECONF2MQTT_HA_PYTHON` or `target/ha-venv/bin/python`; without it these tests fail.

use std::io::Write;
use std::path::{Path, PathBuf};
use std::process::{Command, Stdio};

use serde_json::Value;
use trueconf2mqtt::homeassistant::{
    DiscoveryContext, DiscoveryMessage, discovery_messages, removal_messages,
};
use trueconf2mqtt::protocol::{AppState, Device, Participant};
use trueconf2mqtt::room::{Caller, Conference, RoomState};

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
            }],
        }),
        version: Some("4.3.1.1234".into()),
        http_port: Some(8766),
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
            r#"{"command_topic":"a/set","default_entity_id":"button.x"}"#,
            "default_entity_id",
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
