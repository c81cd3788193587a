//! Room frames: bytes from the WebSocket → `parse_incoming` → the state reducer → what the bridge
//! publishes.
//!
//! Input: one or more frames separated by NUL bytes (a NUL can never occur inside valid JSON, so
//! a seed that is a single frame stays a single frame). Checked for every frame:
//!
//! * `parse_incoming` never panics;
//! * a parsed frame re-serialised from its member map parses again to an equal value (an
//!   event's `raw` text aside), and the text an event is forwarded as says the same as its
//!   member map;
//! * `RoomState::apply_response` / `apply_event` never panic, and their "changed" result is true
//!   exactly when the state changed (the Room client relies on it through
//!   `watch::Sender::send_if_modified`);
//! * the state document, the plain topics and the Home Assistant discovery messages built from the
//!   resulting state never panic, and every discovery topic is a valid MQTT topic name.

#![no_main]

use std::sync::OnceLock;

use libfuzzer_sys::fuzz_target;
use serde_json::Value;
use trueconf2mqtt::surface::{plain_fields, state_document};
use trueconf2mqtt::homeassistant::{DiscoveryContext, discovery_messages};
use trueconf2mqtt::protocol::{Incoming, parse_incoming};
use trueconf2mqtt::room::RoomState;

/// Most frames taken from one input (keeps single executions fast).
const MAX_FRAMES: usize = 32;

/// A Room in the middle of a call with devices, so replies and events that refer to existing
/// state (participants leaving, hardware lists, settings) are exercised too.
fn busy_state() -> &'static RoomState {
    static STATE: OnceLock<RoomState> = OnceLock::new();
    STATE.get_or_init(|| {
        let frames = [
            include_str!("../../protocol/examples/getAppState.response.json"),
            include_str!("../../protocol/examples/getHardware.response.json"),
            include_str!("../../protocol/examples/getLogin.response.json"),
            include_str!("../../protocol/examples/inviteReceived.event.json"),
            include_str!("../../protocol/examples/conferenceCreated.event.json"),
            include_str!("../../protocol/examples/newParticipantInConference.event.json"),
            include_str!("../../protocol/examples/getConferenceParticipants.response.json"),
            include_str!("../../protocol/examples/getSettings.response.json"),
        ];
        let mut state = RoomState::default();
        for frame in frames {
            apply(
                &mut state,
                &parse_incoming(frame).expect("example frames parse"),
            );
        }
        state
    })
}

fn apply(state: &mut RoomState, incoming: &Incoming) -> bool {
    match incoming {
        Incoming::Response(r) => state.apply_response(r),
        Incoming::Event(e) => state.apply_event(e),
    }
}

/// Equal as values; an event's `raw` text (kept for forwarding) naturally differs.
fn same(a: &Incoming, b: &Incoming) -> bool {
    match (a, b) {
        (Incoming::Response(a), Incoming::Response(b)) => a == b,
        (Incoming::Event(a), Incoming::Event(b)) => {
            a.name == b.name && a.fields == b.fields && a.kind == b.kind
        }
        _ => false,
    }
}

/// Checks one frame and applies it to every state; returns whether any state changed.
fn check_frame(text: &str, states: &mut [RoomState]) -> bool {
    let Ok(incoming) = parse_incoming(text) else {
        return false;
    };

    // Round trip through the member map, the form the rest of the code keeps.
    let fields = match &incoming {
        Incoming::Response(r) => {
            let _ = (r.error_text(), r.result_code(), r.data());
            r.fields.clone()
        }
        Incoming::Event(e) => {
            let _ = e.data();
            // What the bridge forwards (the text as received) says what the member map says.
            let forwarded: Value =
                serde_json::from_str(&e.to_json()).expect("a forwarded event is JSON");
            assert_eq!(
                forwarded,
                Value::Object(e.fields.clone()),
                "forwarded {text}"
            );
            e.fields.clone()
        }
    };
    let again = Value::Object(fields).to_string();
    match parse_incoming(&again) {
        Ok(reparsed) => assert!(same(&reparsed, &incoming), "round trip of {again}"),
        Err(e) => panic!("re-serialised frame does not parse: {e}: {again}"),
    }

    let mut any_changed = false;
    for state in states.iter_mut() {
        let before = state.clone();
        let changed = apply(state, &incoming);
        assert_eq!(
            changed,
            *state != before,
            "the reducer's 'changed' flag disagrees with the state for {text}"
        );
        any_changed |= changed;
    }
    any_changed
}

fn check_outputs(state: &RoomState) {
    let document = state_document(state);
    let _ = plain_fields(&document);
    let ctx = DiscoveryContext {
        base_topic: "trueconf",
        prefix: "homeassistant",
        room_id: "fuzz-room",
        room_name: "Fuzz room",
        host: "192.0.2.1",
        bridge_version: "0.0.0",
    };
    for message in discovery_messages(&ctx, state) {
        assert!(rumqttc::valid_topic(&message.topic), "{}", message.topic);
        let _: Value = serde_json::from_str(&message.payload).expect("discovery payload is JSON");
    }
}

fuzz_target!(|data: &[u8]| {
    let mut states = [RoomState::default(), busy_state().clone()];
    let mut changed = false;
    for frame in data.split(|&b| b == 0).take(MAX_FRAMES) {
        if let Ok(text) = std::str::from_utf8(frame) {
            changed |= check_frame(text, &mut states);
        }
    }
    // Building ~40 discovery payloads is the slow part: only for states the input touched.
    if changed {
        for state in &states {
            check_outputs(state);
        }
    }
});
