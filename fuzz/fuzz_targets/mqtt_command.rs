//! MQTT commands: (topic, payload) → topic parsing → command parsing → planning, as the bridge's
//! command path does it (`bridge::dispatch` and the per-room command task).
//!
//! Input: `<topic> NUL <payload>` (no NUL: the whole input is the topic, the payload is empty).
//! Checked:
//!
//! * `Topics::parse_command`, `parse_set`, `parse_request`, `field_action` and `plan` never panic;
//! * every error is a non-empty string;
//! * the response topic built for a parsed command topic is a valid MQTT topic name;
//! * every planned action passes the catalog's validation, and with a deny-all policy no
//!   dangerous method is planned;
//! * the response body serialises.

#![no_main]

use std::sync::OnceLock;

use libfuzzer_sys::fuzz_target;
use serde_json::{Value, json};
use trueconf2mqtt::bridge::command::{
    CommandKind, field_action, parse_request, parse_set, parse_set_field, plan, response,
};
use trueconf2mqtt::surface::fields::settable_fields;
use trueconf2mqtt::surface::{CommandTopic, RoomCommand, Topics};
use trueconf2mqtt::protocol::{Device, catalog};
use trueconf2mqtt::room::RoomState;

fn device(name: &str, description: &str) -> Device {
    Device {
        name: name.into(),
        description: description.into(),
    }
}

/// An empty state and one with devices, mute states and a call, so device selection and toggles
/// have something to work on.
fn states() -> &'static [RoomState; 2] {
    static STATES: OnceLock<[RoomState; 2]> = OnceLock::new();
    STATES.get_or_init(|| {
        let busy = RoomState {
            mic_muted: Some(true),
            camera_muted: Some(false),
            cameras: vec![
                device("Cam A", "cam-a"),
                device("USB2.0 UVC HD Webcam", "\\\\?\\usb#vid_0c45"),
            ],
            microphones: vec![device("Microphone (Realtek)", "{0.0.1.00000000}")],
            speakers: vec![device("Speakers", "spk"), device("Кухня", "ю")],
            camera: Some(device("Cam A", "cam-a")),
            ..RoomState::default()
        };
        [RoomState::default(), busy]
    })
}

fn deny_all(_: &str) -> bool {
    false
}

fn allow_all(_: &str) -> bool {
    true
}

/// A policy and whether it allows dangerous methods.
type NamedPolicy = (bool, fn(&str) -> bool);

const POLICIES: [NamedPolicy; 2] = [(false, deny_all), (true, allow_all)];

fn check_plan(kind: &CommandKind, transaction: Option<Value>) {
    for state in states() {
        for (allow, policy) in POLICIES {
            let outcome = match plan(kind, state, &policy) {
                Ok(actions) => {
                    for action in &actions {
                        let spec = catalog()
                            .validate(&action.method, &action.params)
                            .unwrap_or_else(|e| panic!("planned action fails validation: {e}"));
                        assert!(allow || !spec.dangerous, "dangerous {} planned", spec.name);
                    }
                    Ok(json!({}))
                }
                Err(error) => {
                    assert!(!error.to_string().is_empty(), "empty planning error for {kind:?}");
                    Err(error)
                }
            };
            let _ = response(outcome, transaction.clone()).to_string();
        }
    }
}

fuzz_target!(|data: &[u8]| {
    let (topic, payload) = match data.iter().position(|&b| b == 0) {
        Some(i) => (&data[..i], &data[i + 1..]),
        None => (data, &[][..]),
    };
    let Ok(topic) = std::str::from_utf8(topic) else {
        return;
    };
    let topics = Topics::new("trueconf");
    let Some(target) = topics.parse_command(topic) else {
        return;
    };
    let reply_topic = match target.room() {
        None => topics.bridge_response(target.name()),
        Some(room) => topics.response(room, target.name()),
    };
    assert!(rumqttc::valid_topic(&reply_topic), "{reply_topic}");

    let Ok(payload) = std::str::from_utf8(payload) else {
        return;
    };
    let CommandTopic::Room { command, .. } = &target else {
        return;
    };
    let parsed = match command {
        RoomCommand::Set => parse_set(payload),
        RoomCommand::SetField(field) => {
            // Every settable field with this payload, not only the one in the topic.
            for settable in settable_fields() {
                for state in states() {
                    if let Err(error) = field_action(settable, payload, state) {
                        assert!(!error.to_string().is_empty(), "empty error for {settable}");
                    }
                }
            }
            Ok(parse_set_field(field, payload))
        }
        RoomCommand::Request(method) => parse_request(method, payload),
    };
    match parsed {
        Err((error, transaction)) => {
            assert!(!error.to_string().is_empty(), "empty parse error for {payload:?}");
            let _ = response(Err(error), transaction).to_string();
        }
        Ok(command) => check_plan(&command.kind, command.transaction),
    }
});
