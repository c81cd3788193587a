//! Property tests of the pure parts: topic building, Home Assistant discovery, command parsing,
//! the reconnect backoff and the Room state reducer.
//!
//! Each property runs `PROPTEST_CASES` cases (default 256); failing inputs are shrunk and saved in
//! `proptest-regressions/properties.txt`, which is committed so they are replayed first forever.
//! The fuzz targets in `fuzz/` cover the same code from raw bytes.

use std::time::Duration;

use proptest::collection::{btree_map, vec};
use proptest::prelude::*;
use proptest::test_runner::FileFailurePersistence;
use serde_json::{Map, Number, Value, json};
use trueconf2mqtt::backoff::Backoff;
use trueconf2mqtt::bridge::command::{CommandKind, field_action, parse_request, parse_set, plan};
use trueconf2mqtt::homeassistant::{DiscoveryContext, discovery_messages};
use trueconf2mqtt::protocol::{
    AppState, Device, Event, EventKind, Incoming, catalog, parse_incoming,
};
use trueconf2mqtt::room::RoomState;
use trueconf2mqtt::surface::fields::settable_fields;
use trueconf2mqtt::surface::{CommandTopic, RoomCommand, Topics, sanitize_level};

/// `PROPTEST_CASES` (default 256) divided by `divisor`, for the more expensive properties;
/// failures are saved in `proptest-regressions/properties.txt` (run from the package root, as
/// `cargo test` does).
fn config(divisor: u32) -> ProptestConfig {
    let default = ProptestConfig::default();
    ProptestConfig {
        cases: default.cases.div_ceil(divisor),
        failure_persistence: Some(Box::new(FileFailurePersistence::Direct(
            "proptest-regressions/properties.txt",
        ))),
        ..default
    }
}

// === Strategies =================================================================================

/// Text meant to break topic levels: wildcards, separators, NUL, empty, long unicode.
fn nasty_text() -> impl Strategy<Value = String> {
    prop_oneof![
        2 => any::<String>(),
        2 => "[+#/\\x00 a-z_éß😀\\x7f\\u{85}]{0,16}",
        1 => "\\PC{100,300}",
        1 => prop::sample::select(vec!["", "+", "#", "/", "\0", "//", "+/#", " ", "$SYS"])
            .prop_map(str::to_owned),
    ]
}

/// A room id as the configuration allows it.
fn room_id() -> impl Strategy<Value = String> {
    "[a-z0-9_-]{1,64}"
}

/// Any JSON value, nested a few levels, with keys that mean something to the command parsers.
fn json_value() -> impl Strategy<Value = Value> {
    let leaf = prop_oneof![
        Just(Value::Null),
        any::<bool>().prop_map(Value::Bool),
        any::<i64>().prop_map(Value::from),
        any::<u64>().prop_map(Value::from),
        any::<f64>().prop_filter_map("finite", |f| Number::from_f64(f).map(Value::Number)),
        any::<String>().prop_map(Value::String),
        prop::sample::select(vec![
            "ON", "OFF", "toggle", "accept", "Cam A", "none", "zoom_in"
        ])
        .prop_map(|s| Value::String(s.to_owned())),
    ];
    leaf.prop_recursive(4, 48, 6, |inner| {
        prop_oneof![
            vec(inner.clone(), 0..6).prop_map(Value::Array),
            btree_map(json_key(), inner, 0..6).prop_map(|m| Value::Object(m.into_iter().collect())),
        ]
    })
}

/// Object keys: settable fields, catalog parameter names, `transaction`, or anything.
fn json_key() -> impl Strategy<Value = String> {
    let mut known: Vec<&'static str> = settable_fields().collect();
    known.extend([
        "transaction",
        "mute",
        "peerId",
        "name",
        "description",
        "forAll",
    ]);
    prop_oneof![
        3 => prop::sample::select(known).prop_map(str::to_owned),
        1 => any::<String>(),
    ]
}

fn device_name() -> impl Strategy<Value = String> {
    prop_oneof![
        3 => any::<String>(),
        1 => "\\PC{200,300}",
        1 => "[\\x00-\\x1f\"\\\\]{1,255}",
        1 => prop::sample::select(vec!["none", "", "Cam A", "USB2.0 UVC HD Webcam"])
            .prop_map(str::to_owned),
    ]
}

fn device() -> impl Strategy<Value = Device> {
    (device_name(), any::<String>()).prop_map(|(name, description)| Device { name, description })
}

fn devices() -> impl Strategy<Value = Vec<Device>> {
    vec(device(), 0..8)
}

/// A state with devices, mute states and a call, for command planning.
fn busy_state() -> RoomState {
    RoomState {
        mic_muted: Some(true),
        camera_muted: Some(false),
        cameras: vec![Device {
            name: "Cam A".into(),
            description: "cam-a".into(),
        }],
        microphones: vec![Device {
            name: "Mic".into(),
            description: "{0.0.1}".into(),
        }],
        ..RoomState::default()
    }
}

fn deny(_: &str) -> bool {
    false
}

// === Topics =====================================================================================

/// A topic name the bridge may publish to: rumqttc accepts it, no wildcard, no NUL, no empty
/// level.
fn check_topic(topic: &str) -> Result<(), TestCaseError> {
    prop_assert!(rumqttc::valid_topic(topic), "invalid topic {topic:?}");
    prop_assert!(
        !topic.contains(['+', '#', '\0']),
        "wildcard or NUL in {topic:?}"
    );
    prop_assert!(
        !topic.split('/').any(str::is_empty),
        "empty level in {topic:?}"
    );
    Ok(())
}

proptest! {
    #![proptest_config(config(1))]

    #[test]
    fn built_topics_are_valid(room in nasty_text(), name in nasty_text()) {
        let t = Topics::new("trueconf");
        for topic in [
            t.room(&room),
            t.field(&room, &name),
            t.availability(&room),
            t.event(&room, &name),
            t.set_field(&room, &name),
            t.response(&room, &name),
            t.bridge_response(&name),
        ] {
            check_topic(&topic)?;
        }
        let level = sanitize_level(&name);
        prop_assert!(!level.is_empty() && !level.contains(['/', '+', '#', '\0']));
    }

    #[test]
    fn set_field_topics_round_trip(room in room_id(), field in "[a-z_]{1,20}") {
        let t = Topics::new("trueconf");
        let topic = t.set_field(&room, &field);
        prop_assert_eq!(
            t.parse_command(&topic),
            Some(CommandTopic::Room { room: room.clone(), command: RoomCommand::SetField(field.clone()) })
        );
        prop_assert!(t.command_filters().iter().any(|f| rumqttc::matches(&topic, f)));
        let set = format!("{}/set", t.room(&room));
        prop_assert_eq!(t.parse_command(&set), Some(CommandTopic::Room { room, command: RoomCommand::Set }));
    }

    #[test]
    fn parsed_command_topics_have_single_levels(topic in nasty_text()) {
        let t = Topics::new("trueconf");
        let parsed = t
            .parse_command(&topic)
            .or_else(|| t.parse_command(&format!("trueconf/{topic}")));
        let parts = match parsed {
            None => vec![],
            Some(CommandTopic::Room { room, command: RoomCommand::Set }) => vec![room],
            Some(CommandTopic::Room { room, command: RoomCommand::SetField(field) }) => vec![room, field],
            Some(CommandTopic::Room { room, command: RoomCommand::Request(method) }) => vec![room, method],
            Some(CommandTopic::Bridge { name }) => vec![name],
        };
        for part in parts {
            prop_assert!(!part.contains('/'));
        }
    }
}

// === Home Assistant discovery ===================================================================

/// Largest discovery payload accepted (rumqttc's default outgoing limit is 10 KiB; the link
/// raises it, and 16 KiB leaves room for every broker default).
const MAX_DISCOVERY_PAYLOAD: usize = 16 * 1024;

proptest! {
    // Each case builds ~40 payloads: a quarter of the usual count keeps the run short.
    #![proptest_config(config(4))]

    #[test]
    fn discovery_is_valid_for_any_names(
        room in room_id(),
        room_name in device_name(),
        cameras in devices(),
        microphones in devices(),
        speakers in devices(),
        version in proptest::option::of(device_name()),
        http_port in any::<Option<u16>>(),
        pick in any::<prop::sample::Index>(),
    ) {
        let camera = (!cameras.is_empty()).then(|| cameras[pick.index(cameras.len())].clone());
        let state = RoomState {
            cameras,
            microphones,
            speakers,
            camera,
            version,
            http_port,
            ..RoomState::default()
        };
        let ctx = DiscoveryContext {
            base_topic: "trueconf",
            prefix: "homeassistant",
            room_id: &room,
            room_name: &room_name,
            host: "192.0.2.10",
            bridge_version: "0.1.0",
        };
        let messages = discovery_messages(&ctx, &state);
        prop_assert!(!messages.is_empty());
        for m in &messages {
            check_topic(&m.topic)?;
            prop_assert!(
                m.payload.len() <= MAX_DISCOVERY_PAYLOAD,
                "{} bytes on {}", m.payload.len(), m.topic
            );
            let config: Value = serde_json::from_str(&m.payload)
                .map_err(|e| TestCaseError::fail(format!("{}: {e}", m.topic)))?;
            if m.topic.contains("/select/") {
                let options = config["options"].as_array().cloned().unwrap_or_default();
                prop_assert!(!options.is_empty(), "no options on {}", m.topic);
                for option in options {
                    let option = option.as_str().unwrap_or_default();
                    prop_assert!(
                        !option.is_empty() && option.chars().count() <= 255,
                        "option {option:?} on {}", m.topic
                    );
                }
            }
        }
    }
}

// === Command parsing ============================================================================

proptest! {
    #![proptest_config(config(1))]

    #[test]
    fn command_parsers_are_total_over_text(payload in any::<String>(), method in any::<String>()) {
        for result in [parse_set(&payload), parse_request(&method, &payload)] {
            match result {
                Ok(command) => {
                    for state in [RoomState::default(), busy_state()] {
                        if let Err(error) = plan(&command.kind, &state, &deny) {
                            prop_assert!(!error.to_string().is_empty());
                        }
                    }
                }
                Err((error, _)) => prop_assert!(!error.to_string().is_empty()),
            }
        }
    }

    #[test]
    fn command_parsers_are_total_over_json(value in json_value(), method in any::<String>()) {
        let payload = value.to_string();
        // As serde_json reads it back: without its `float_roundtrip` feature a float may come
        // back one ULP off, which is serde_json's documented trade-off, not the parser's doing.
        let reread: Value = serde_json::from_str(&payload).expect("serde_json reads its output");
        let transaction = reread.get("transaction").cloned();
        let has_fields = value
            .as_object()
            .is_some_and(|o| o.keys().any(|k| k != "transaction"));

        let set = parse_set(&payload);
        match &set {
            Ok(command) => {
                prop_assert!(has_fields);
                prop_assert_eq!(&command.transaction, &transaction);
                let CommandKind::Set(fields) = &command.kind else {
                    return Err(TestCaseError::fail("set parsed into a request"));
                };
                prop_assert!(fields.iter().all(|(k, _)| k != "transaction"));
            }
            Err((error, _)) => {
                prop_assert!(!has_fields);
                prop_assert!(!error.to_string().is_empty());
            }
        }
        let request = parse_request(&method, &payload);
        prop_assert_eq!(request.is_ok(), value.is_object());

        for command in [set, request].into_iter().flatten() {
            for state in [RoomState::default(), busy_state()] {
                match plan(&command.kind, &state, &deny) {
                    Ok(actions) => {
                        for action in actions {
                            let spec = catalog()
                                .validate(&action.method, &action.params)
                                .map_err(|e| TestCaseError::fail(e.to_string()))?;
                            prop_assert!(!spec.dangerous);
                        }
                    }
                    Err(error) => prop_assert!(!error.to_string().is_empty()),
                }
            }
        }
    }

    #[test]
    fn field_actions_are_total(value in nasty_text(), cameras in devices()) {
        let with_devices = RoomState { cameras, ..busy_state() };
        for field in settable_fields() {
            for state in [&RoomState::default(), &with_devices] {
                match field_action(field, &value, state) {
                    Ok(action) => {
                        prop_assert!(catalog().validate(&action.method, &action.params).is_ok());
                    }
                    Err(error) => prop_assert!(!error.to_string().is_empty()),
                }
            }
        }
    }
}

// === Backoff ====================================================================================

proptest! {
    #![proptest_config(config(1))]

    #[test]
    fn backoff_is_monotone_capped_and_jittered(
        a in 1u64..=60_000,
        b in 1u64..=60_000,
        steps in 1usize..40,
    ) {
        let (min, max) = (Duration::from_millis(a.min(b)), Duration::from_millis(a.max(b)));
        let mut backoff = Backoff::new(min, max);
        prop_assert_eq!(backoff.envelope(), min);
        let mut previous = Duration::ZERO;
        for _ in 0..steps {
            let envelope = backoff.envelope();
            prop_assert!(envelope >= previous, "envelope shrank");
            prop_assert!(envelope >= min && envelope <= max);
            let delay = backoff.next_delay();
            prop_assert!(
                delay >= envelope / 2 && delay <= envelope,
                "delay {delay:?} outside [{:?}, {envelope:?}]", envelope / 2
            );
            previous = envelope;
        }
        // 60 s / 1 ms < 2^16: after 17 doublings the envelope has reached the cap.
        if steps >= 17 {
            prop_assert_eq!(backoff.envelope(), max);
        }
        backoff.reset();
        prop_assert_eq!(backoff.envelope(), min);
    }
}

// === State reducer ==============================================================================

/// Event names the reducer knows, plus a few it does not.
const EVENT_NAMES: &[&str] = &[
    "appStateChanged",
    "audioCapturerMute",
    "videoCapturerMute",
    "audioRendererMute",
    "micStateChangedByConferenceOwner",
    "cameraStateChangedByConferenceOwner",
    "inviteReceived",
    "rejectReceived",
    "rejectSent",
    "stopCalling",
    "conferenceCreated",
    "conferenceDeleted",
    "newParticipantInConference",
    "participantLeftConference",
    "hardwareChanged",
    "login",
    "logout",
    "serverConnected",
    "serverDisconnected",
    "incomingChatMessage",
    "authorizationNeeded",
    "windowStateChanged",
    "settingsChanged",
    "monitorsInfoUpdated",
    "ptzControlsChanged",
    "requestInviteReceived",
    "videoCapturerPresetAdded",
    "videoCapturerPresetUpdated",
    "videoCapturerPresetRemoved",
    "videoCapturerPresetApplied",
    "mySlideShowStarted",
    "mySlideShowStopped",
    "currentSlideIndexChanged",
    "slideRemoved",
    "recordRequest",
    "roleEventOccured",
    "requestCameraControlReceived",
    "brandNewEvent",
];

/// Reply methods the reducer reads.
const REPLY_METHODS: &[&str] = &[
    "getAppState",
    "getMicMute",
    "getVideoMute",
    "getAudioMute",
    "getHardware",
    "getLogin",
    "getConnected",
    "getConferences",
    "getConferenceParticipants",
    "getSystemInfo",
    "getMonitorsInfo",
    "getPtzControls",
    "getSettings",
    "getCallHistory",
    "getAllVideoCapturerPresets",
    "addPresetFromCurrentVideoCapturer",
    "getSlideShowInfo",
];

/// Members that mean something in events or replies; each gets mostly well-typed values.
const KEYS: &[&str] = &[
    "appState",
    "embeddedHttpPort",
    "mute",
    "peerId",
    "peerDn",
    "confId",
    "confTitle",
    "cause",
    "result",
    "server",
    "windowState",
    "name",
    "value",
    "videoCapturers",
    "audioCapturers",
    "audioRenderers",
    "currentVideoCapturerName",
    "currentAudioCapturerName",
    "currentAudioRendererName",
    "participants",
    "isLoggedIn",
    "state",
    "serverInfo",
    "settings",
    "productInfo",
    "presetId",
    "presets",
    "pan",
    "desktopSharing",
    "DSCaptureList",
    "slides",
    "currentSlideIdx",
    "currentIdx",
    "role",
    "callId",
];

fn small_json() -> impl Strategy<Value = Value> {
    prop_oneof![
        Just(Value::Null),
        any::<bool>().prop_map(Value::Bool),
        (-3i64..100_000).prop_map(Value::from),
        any::<f64>().prop_filter_map("finite", |f| Number::from_f64(f).map(Value::Number)),
        ".{0,8}".prop_map(Value::String),
    ]
}

fn peer() -> impl Strategy<Value = String> {
    prop_oneof![
        4 => prop::sample::select(vec!["a@srv", "a@srv/1", "b@srv", "b@srv/2", "me@srv", ""])
            .prop_map(str::to_owned),
        1 => ".{0,12}",
    ]
}

fn device_list() -> impl Strategy<Value = Value> {
    vec(
        (
            prop::sample::select(vec!["Cam A", "Cam B", "Mic", "none", ""]),
            ".{0,6}",
        )
            .prop_map(|(n, d)| json!({"name": n, "description": d})),
        0..4,
    )
    .prop_map(Value::Array)
}

/// A value for `key`: usually of the expected type, sometimes anything.
fn value_for(key: &'static str) -> BoxedStrategy<Value> {
    let typed: BoxedStrategy<Value> = match key {
        "appState" | "windowState" | "cause" | "result" | "state" => {
            (-1i64..8).prop_map(Value::from).boxed()
        }
        "embeddedHttpPort" => (0u64..70_000).prop_map(Value::from).boxed(),
        "mute" | "isLoggedIn" => any::<bool>().prop_map(Value::Bool).boxed(),
        "peerId" | "peerDn" | "confId" | "confTitle" | "server" => {
            peer().prop_map(Value::String).boxed()
        }
        "name"
        | "currentVideoCapturerName"
        | "currentAudioCapturerName"
        | "currentAudioRendererName" => prop::sample::select(vec!["Cam A", "Mic", "none", ""])
            .prop_map(|s| Value::String(s.to_owned()))
            .boxed(),
        "videoCapturers" | "audioCapturers" | "audioRenderers" => device_list().boxed(),
        "participants" => vec(
            (peer(), ".{0,6}").prop_map(|(p, d)| json!({"peerId": p, "peerDn": d})),
            0..4,
        )
        .prop_map(Value::Array)
        .boxed(),
        "serverInfo" => peer().prop_map(|s| json!({"server": s})).boxed(),
        "settings" => vec(
            (prop::sample::select(vec!["a", "b"]), small_json())
                .prop_map(|(n, v)| json!({"name": n, "value": v})),
            0..3,
        )
        .prop_map(Value::Array)
        .boxed(),
        "productInfo" => ".{0,6}".prop_map(|v| json!({"version": v})).boxed(),
        _ => small_json().boxed(),
    };
    prop_oneof![4 => typed, 1 => small_json()].boxed()
}

/// A member map: a random subset of [`KEYS`] with values for them.
fn members() -> impl Strategy<Value = Map<String, Value>> {
    let per_key: Vec<BoxedStrategy<Option<(String, Value)>>> = KEYS
        .iter()
        .map(|&key| {
            proptest::option::weighted(0.3, value_for(key).prop_map(move |v| (key.to_owned(), v)))
                .boxed()
        })
        .collect();
    per_key.prop_map(|entries| entries.into_iter().flatten().collect())
}

#[derive(Debug, Clone)]
enum Step {
    Event(&'static str, Map<String, Value>),
    Reply(&'static str, bool, Map<String, Value>),
}

fn step() -> impl Strategy<Value = Step> {
    prop_oneof![
        3 => (prop::sample::select(EVENT_NAMES), members())
            .prop_map(|(name, m)| Step::Event(name, m)),
        1 => (prop::sample::select(REPLY_METHODS), prop::bool::weighted(0.9), members())
            .prop_map(|(method, ok, m)| Step::Reply(method, ok, m)),
    ]
}

/// Whether the step tells the reducer the Room is now in a conference.
fn enters_conference(step: &Step) -> bool {
    match step {
        Step::Event(name, data) => matches!(
            Event::from_data(name, Value::Object(data.clone())).kind,
            EventKind::AppStateChanged {
                state: Some(AppState::Conference)
            } | EventKind::ConferenceCreated { .. }
        ),
        Step::Reply(method, ok, data) => {
            *method == "getAppState"
                && *ok
                && data.get("appState").and_then(Value::as_i64) == Some(5)
        }
    }
}

fn apply(state: &mut RoomState, step: &Step) -> bool {
    match step {
        Step::Event(name, data) => {
            state.apply_event(&Event::from_data(name, Value::Object(data.clone())))
        }
        Step::Reply(method, ok, data) => {
            let mut frame = data.clone();
            frame.insert("method".into(), json!(method));
            frame.insert("requestId".into(), json!("1"));
            frame.insert("result".into(), json!(ok));
            match parse_incoming(&Value::Object(frame).to_string()) {
                Ok(Incoming::Response(r)) => state.apply_response(&r),
                other => panic!("a reply frame parsed as {other:?}"),
            }
        }
    }
}

proptest! {
    // Sequences of up to 60 steps: a quarter of the usual case count.
    #![proptest_config(config(4))]

    #[test]
    fn reducer_keeps_its_invariants(steps in vec(step(), 1..60)) {
        let mut state = RoomState::default();
        // An invitation that arrived while the Room was already in a conference: the reducer
        // reports it (ringing while in a call) rather than hide a real incoming call.
        let mut invited_during_call = false;
        for step in &steps {
            let before = state.clone();
            let changed = apply(&mut state, step);
            prop_assert_eq!(
                changed,
                state != before,
                "'changed' disagrees with the state after {:?}", step
            );
            prop_assert_eq!(
                state.participant_count(),
                state.conference.as_ref().map_or(0, |c| c.participants.len())
            );
            prop_assert_eq!(state.in_call(), state.app_state == Some(AppState::Conference));
            if enters_conference(step) {
                prop_assert!(!state.ringing(), "still ringing after {:?}", step);
                invited_during_call = false;
            }
            if matches!(step, Step::Event("inviteReceived", _)) && state.ringing() {
                invited_during_call = state.in_call();
            }
            if state.ringing() && state.in_call() {
                prop_assert!(
                    invited_during_call,
                    "ringing in a conference without an invitation during it, after {:?}", step
                );
            }
        }
    }
}
