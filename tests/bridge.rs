//! The bridge end to end: a real mosquitto, the simulator over WebSocket, and an MQTT probe.

mod common;

use std::sync::Arc;
use std::time::Duration;

use serde_json::{Value, json};
use tokio_util::sync::CancellationToken;
use trueconf2mqtt::bridge::{self, Bridge, BridgeOptions, RoomEntry, Tasks};
use trueconf2mqtt::mqtt::LinkOptions;
use trueconf2mqtt::protocol::AppState;
use trueconf2mqtt::room::RoomOptions;
use trueconf2mqtt::simulator::{SimConfig, SimRoom};

use common::{
    Broker, Probe, room_entry, test_bridge_options, test_link_options, test_room_options, within,
};

const WAIT: Duration = Duration::from_secs(10);
const ROOM: &str = "boardroom";

fn t(suffix: &str) -> String {
    format!("trueconf/{ROOM}/{suffix}")
}

struct Harness {
    broker: Broker,
    room: SimRoom,
    probe: Probe,
    bridge: Arc<Bridge>,
    tasks: Option<Tasks>,
    shutdown: CancellationToken,
}

fn options(broker_port: u16, room: &SimRoom) -> BridgeOptions {
    let mqtt = LinkOptions {
        event_buffer: 100,
        ..test_link_options(broker_port, "trueconf2mqtt-test")
    };
    let room = RoomEntry {
        allow_dangerous: vec!["clearCallHistory".into()],
        ..room_entry(
            ROOM,
            "Boardroom",
            test_room_options(room.http_port()).with_pin("4321"),
        )
    };
    BridgeOptions {
        command_max_age: Duration::from_secs(2),
        ..test_bridge_options(mqtt, vec![room])
    }
}

/// A simulated Room with the PIN the bridge is configured with.
async fn pinned_room() -> SimRoom {
    SimRoom::start(SimConfig {
        pin: Some("4321".into()),
        ..SimConfig::default()
    })
    .await
    .unwrap()
}

impl Harness {
    async fn start() -> Harness {
        let broker = Broker::start();
        let room = SimRoom::start(SimConfig {
            pin: Some("4321".into()),
            answer_delay: Duration::from_millis(20),
            ..SimConfig::default()
        })
        .await
        .unwrap();
        let probe = Probe::connect(broker.port, &["trueconf/#", "homeassistant/#"]).await;
        let shutdown = CancellationToken::new();
        let (bridge, tasks) = bridge::start(options(broker.port, &room), shutdown.clone());
        let h = Harness {
            broker,
            room,
            probe,
            bridge,
            tasks: Some(tasks),
            shutdown,
        };
        h.probe.wait_value(&t("availability"), "online", WAIT).await;
        h
    }

    /// Sends a command and returns its response.
    async fn command(&self, topic: &str, payload: &str, response: &str) -> Value {
        let response_topic = t(&format!("response/{response}"));
        let before = self.probe.on(&response_topic).len();
        self.probe.publish(&t(topic), payload).await;
        within(WAIT, &format!("response on {response_topic}"), async {
            loop {
                let all = self.probe.on(&response_topic);
                if all.len() > before {
                    return serde_json::from_str(&all[before].payload).expect("response is JSON");
                }
                tokio::time::sleep(Duration::from_millis(5)).await;
            }
        })
        .await
    }

    async fn stop(&mut self) {
        self.shutdown.cancel();
        if let Some(tasks) = self.tasks.take() {
            self.bridge.clone().stop(tasks).await;
        }
    }
}

#[tokio::test]
async fn startup_publishes_availability_state_discovery_and_info() {
    let h = Harness::start().await;
    h.probe
        .wait_value("trueconf/bridge/state", "online", WAIT)
        .await;
    h.probe.wait_value(&t("app_state"), "normal", WAIT).await;
    h.probe.wait_value(&t("mic_muted"), "OFF", WAIT).await;
    h.probe
        .wait_value(&t("user"), "room@sim.trueconf.local", WAIT)
        .await;
    let state: Value = serde_json::from_str(
        &h.probe
            .wait_latest(&format!("trueconf/{ROOM}"), WAIT, |p| p.contains("cameras"))
            .await,
    )
    .unwrap();
    assert_eq!(state["app_state"], "normal");
    assert!(state["cameras"].as_array().unwrap().len() >= 2, "{state}");
    let info = h
        .probe
        .wait_latest("trueconf/bridge/info", WAIT, |p| p.contains("\"online\""))
        .await;
    let info: Value = serde_json::from_str(&info).unwrap();
    assert_eq!(info["rooms"][ROOM]["state"], "online");
    // Discovery follows the start's read of retained configs (a migration check), so it may
    // come a moment after the state.
    let is_config =
        |m: &common::Message| m.topic.starts_with("homeassistant/") && m.topic.ends_with("/config");
    common::wait_until(WAIT, "discovery configs", || {
        h.probe.messages().iter().filter(|m| is_config(m)).count() >= 20
    })
    .await;
    let configs: Vec<_> = h
        .probe
        .messages()
        .into_iter()
        .filter(|m| m.topic.starts_with("homeassistant/") && m.topic.ends_with("/config"))
        .collect();
    assert!(configs.len() >= 20, "discovery configs: {}", configs.len());
    for config in &configs {
        let payload: Value = serde_json::from_str(&config.payload).unwrap();
        assert!(
            payload["unique_id"]
                .as_str()
                .unwrap()
                .starts_with("trueconf2mqtt_")
        );
    }
}

#[tokio::test]
async fn room_changes_reach_their_topics_and_events_are_forwarded() {
    let h = Harness::start().await;
    h.room
        .incoming_call("bob@sim.trueconf.local", "Bob")
        .unwrap();
    h.probe.wait_value(&t("ringing"), "ON", WAIT).await;
    h.probe
        .wait_value(&t("caller"), "bob@sim.trueconf.local", WAIT)
        .await;
    h.probe.wait_value(&t("caller_name"), "Bob", WAIT).await;
    let invite = h
        .probe
        .wait_message(&t("event/inviteReceived"), WAIT, |_| true)
        .await;
    assert!(!invite.retain);
    let invite: Value = serde_json::from_str(&invite.payload).unwrap();
    assert_eq!(invite["peerId"], "bob@sim.trueconf.local");

    h.room.owner_mutes_mic(true).ok();
    h.room
        .chat_message("bob@sim.trueconf.local", "hello")
        .unwrap();
    let chat = h
        .probe
        .wait_message(&t("event/incomingChatMessage"), WAIT, |_| true)
        .await;
    assert!(chat.payload.contains("hello"));
    // An event the bridge does not know is forwarded too.
    h.room
        .emit_raw(json!({"method":"event","event":"someFutureEvent","x":1}));
    h.probe
        .wait_message(&t("event/someFutureEvent"), WAIT, |p| p.contains("\"x\":1"))
        .await;
}

#[tokio::test]
async fn commands_reach_the_room_and_get_exactly_one_response() {
    let h = Harness::start().await;
    let r = h.command("set/mic_muted", "ON", "mic_muted").await;
    assert_eq!(r["status"], "ok", "{r}");
    assert!(h.room.snapshot().mic_muted);
    h.probe.wait_value(&t("mic_muted"), "ON", WAIT).await;

    let r = h
        .command(
            "set",
            r#"{"camera_muted":true,"speaker_muted":"ON","transaction":"t-1"}"#,
            "set",
        )
        .await;
    assert_eq!(r, json!({"status":"ok","data":{},"transaction":"t-1"}));
    assert!(h.room.snapshot().camera_muted && h.room.snapshot().speaker_muted);

    let r = h.command("request/getAppState", "{}", "getAppState").await;
    assert_eq!(r["status"], "ok");
    assert_eq!(r["data"]["appState"], 3);

    // The first camera has PTZ; the simulator refuses moves on the others, as a real Room would.
    let r = h.command("set/ptz", "left", "ptz").await;
    assert_eq!(r["status"], "ok", "{r}");
    assert_eq!(h.room.snapshot().ptz.pan, -1);

    let cameras: Value =
        serde_json::from_str(&h.probe.latest(&format!("trueconf/{ROOM}")).unwrap()).unwrap();
    let other = cameras["cameras"]
        .as_array()
        .unwrap()
        .iter()
        .find(|c| **c != cameras["camera"])
        .unwrap()
        .as_str()
        .unwrap()
        .to_owned();
    let r = h.command("set/camera", &other, "camera").await;
    assert_eq!(r["status"], "ok", "{r}");
    assert_eq!(h.room.snapshot().camera.as_deref(), Some(other.as_str()));

    let r = h
        .command("set/call", "alice@sim.trueconf.local", "call")
        .await;
    assert_eq!(r["status"], "ok", "{r}");
    h.room
        .wait_for(|s| s.app_state == AppState::Conference, WAIT)
        .await
        .unwrap();
    h.probe.wait_value(&t("in_call"), "ON", WAIT).await;
    let r = h.command("set/call", "hangup", "call").await;
    assert_eq!(r["status"], "ok", "{r}");
    h.probe.wait_value(&t("in_call"), "OFF", WAIT).await;

    // A dangerous method allowed for this room in its config runs.
    let r = h
        .command("request/clearCallHistory", "{}", "clearCallHistory")
        .await;
    assert_eq!(r["status"], "ok", "{r}");
}

#[tokio::test]
async fn bad_commands_get_precise_errors_and_the_bridge_keeps_serving() {
    let h = Harness::start().await;
    let cases: &[(&str, &[u8], &str, &str)] = &[
        (
            "request/setMicMute",
            b"{not json",
            "setMicMute",
            "not valid JSON",
        ),
        (
            "request/setMicMute",
            br#"{"mute":"yes"}"#,
            "setMicMute",
            "parameter 'mute' must be bool",
        ),
        (
            "request/setMicMute",
            b"{}",
            "setMicMute",
            "missing required parameter 'mute'",
        ),
        (
            "request/noSuchMethod",
            b"{}",
            "noSuchMethod",
            "unknown method 'noSuchMethod'",
        ),
        (
            "request/rebootSystem",
            b"{}",
            "rebootSystem",
            "allow_dangerous",
        ),
        (
            "request/getAppState",
            b"[1,2]",
            "getAppState",
            "must be a JSON object",
        ),
        ("set/volume", b"3", "volume", "unknown field 'volume'"),
        (
            "set/mic_muted",
            b"maybe",
            "mic_muted",
            "expected ON, OFF or TOGGLE",
        ),
        ("set/camera", b"No Such Camera", "camera", "no device named"),
        (
            "set/mic_muted",
            &[0xff, 0xfe, 0x80],
            "mic_muted",
            "not valid UTF-8",
        ),
        ("set", b"{}", "set", "at least one field"),
    ];
    for (topic, payload, response, expected) in cases {
        let response_topic = t(&format!("response/{response}"));
        let before = h.probe.on(&response_topic).len();
        h.probe.publish(&t(topic), payload.to_vec()).await;
        let r = within(WAIT, topic, async {
            loop {
                let all = h.probe.on(&response_topic);
                if all.len() > before {
                    return serde_json::from_str::<Value>(&all[before].payload).unwrap();
                }
                tokio::time::sleep(Duration::from_millis(5)).await;
            }
        })
        .await;
        assert_eq!(r["status"], "error", "{topic}: {r}");
        assert!(
            r["error"].as_str().unwrap().contains(expected),
            "{topic}: {r}"
        );
    }
    let big = "x".repeat(5000);
    let r = h.command("request/sendMessage", &big, "sendMessage").await;
    assert!(
        r["error"].as_str().unwrap().contains("exceeds the limit"),
        "{r}"
    );

    // Unknown room: answered on that room's response topic.
    h.probe
        .publish("trueconf/nosuchroom/set/mic_muted", "ON")
        .await;
    let r = h
        .probe
        .wait_message("trueconf/nosuchroom/response/mic_muted", WAIT, |_| true)
        .await;
    assert!(
        r.payload.contains("unknown room 'nosuchroom'"),
        "{}",
        r.payload
    );

    // Still serving.
    let r = h.command("set/mic_muted", "ON", "mic_muted").await;
    assert_eq!(r["status"], "ok", "{r}");
}

/// The per-room command queue of the bridge (`ROOM_COMMAND_QUEUE`): one command runs, this
/// many wait, the rest are refused.
const QUEUE_LIMIT: usize = 64;

#[tokio::test]
async fn a_flood_of_commands_is_bounded_per_room_and_every_command_is_answered_once() {
    const FLOOD: usize = 200;
    // How long the stalled Room holds its first reply: long enough for the whole flood to be
    // routed (milliseconds), short of the 5 s request timeout.
    const STALL: Duration = Duration::from_secs(3);
    let broker = Broker::start();
    let (room, other) = (pinned_room().await, pinned_room().await);
    let probe = Probe::connect(broker.port, &["trueconf/#"]).await;
    let mut opts = options(broker.port, &room);
    let mut other_options = RoomOptions::new("127.0.0.1", other.http_port()).with_pin("4321");
    other_options.keepalive = Duration::from_millis(900);
    opts.rooms.push(RoomEntry {
        id: "huddle".into(),
        name: "Huddle".into(),
        options: other_options,
        allow_dangerous: vec![],
    });
    let shutdown = CancellationToken::new();
    let (bridge, tasks) = bridge::start(opts, shutdown.clone());
    probe.wait_value(&t("availability"), "online", WAIT).await;
    probe
        .wait_value("trueconf/huddle/availability", "online", WAIT)
        .await;

    // The Room stalls: the first command's reply is held, so the rest pile up in the queue.
    room.set_reply_delay(STALL);
    let stalled = std::time::Instant::now();
    for i in 0..FLOOD {
        let payload = json!({ "mute": i % 2 == 0, "transaction": i }).to_string();
        probe.publish(&t("request/setMicMute"), payload).await;
    }
    let responses = t("response/setMicMute");
    let parsed = |topic: &str| -> Vec<Value> {
        probe
            .on(topic)
            .iter()
            .map(|m| serde_json::from_str(&m.payload).expect("response is JSON"))
            .collect()
    };
    let refused = FLOOD - QUEUE_LIMIT - 1;
    within(WAIT, "the refusals past the limit", async {
        while parsed(&responses).len() < refused {
            tokio::time::sleep(Duration::from_millis(10)).await;
        }
    })
    .await;

    // Another room is served meanwhile.
    probe.publish("trueconf/huddle/set/mic_muted", "ON").await;
    let r = probe
        .wait_message("trueconf/huddle/response/mic_muted", WAIT, |_| true)
        .await;
    assert!(r.payload.contains("\"status\":\"ok\""), "{}", r.payload);
    assert!(other.snapshot().mic_muted);
    let early = parsed(&responses);
    assert!(
        stalled.elapsed() < STALL && early.iter().all(|r| r["status"] == "error"),
        "the other room and the refusals were answered while the Room stalled ({:?}): {early:?}",
        stalled.elapsed()
    );

    // The Room answers again; the queued commands run.
    room.set_reply_delay(Duration::ZERO);
    within(WAIT + STALL, "a response to every command", async {
        while parsed(&responses).len() < FLOOD {
            tokio::time::sleep(Duration::from_millis(10)).await;
        }
    })
    .await;
    // Anything duplicated would arrive right behind.
    tokio::time::sleep(Duration::from_millis(300)).await;
    let all = parsed(&responses);
    let mut by_transaction = vec![Vec::new(); FLOOD];
    for r in &all {
        let i = r["transaction"].as_u64().expect("transaction echoed") as usize;
        by_transaction[i].push(r.clone());
    }
    let mut ok = Vec::new();
    for (i, answers) in by_transaction.iter().enumerate() {
        assert_eq!(answers.len(), 1, "transaction {i}: {answers:?}");
        let r = &answers[0];
        if r["status"] == "ok" {
            ok.push(i);
        } else {
            let error = r["error"].as_str().unwrap_or_default();
            assert!(
                error.contains("too many commands queued for room 'boardroom' (limit 64)"),
                "transaction {i}: {r}"
            );
        }
    }
    // One running and the queue full: exactly those, the first ones in publishing order.
    assert!(
        (QUEUE_LIMIT..=QUEUE_LIMIT + 1).contains(&ok.len()),
        "{} accepted",
        ok.len()
    );
    assert_eq!(ok, (0..ok.len()).collect::<Vec<_>>(), "accepted in order");
    // Refused commands never reached the Room; accepted ones ran in order.
    let sent = room
        .requests_received()
        .iter()
        .filter(|r| r["method"] == "setMicMute")
        .count();
    assert_eq!(sent, ok.len());
    let last = ok.len() - 1;
    assert_eq!(room.snapshot().mic_muted, last % 2 == 0);
    shutdown.cancel();
    bridge.stop(tasks).await;
}

#[tokio::test]
async fn bridge_requests_and_unknown_rooms_echo_the_transaction() {
    let h = Harness::start().await;
    // Publishes `payload` on `topic`; returns the next message on `response`.
    let ask = |topic: &'static str, payload: &'static str, response: &'static str| {
        let probe = h.probe.clone();
        async move {
            let before = probe.on(response).len();
            probe.publish(topic, payload).await;
            within(WAIT, response, async {
                loop {
                    if let Some(m) = probe.on(response).get(before) {
                        return serde_json::from_str::<Value>(&m.payload).unwrap();
                    }
                    tokio::time::sleep(Duration::from_millis(5)).await;
                }
            })
            .await
        }
    };
    let health = "trueconf/bridge/response/health_check";
    let r = ask(
        "trueconf/bridge/request/health_check",
        r#"{"transaction":"h-1"}"#,
        health,
    )
    .await;
    assert_eq!(r["status"], "ok", "{r}");
    assert_eq!(r["data"]["rooms"][ROOM], true, "{r}");
    assert_eq!(r["transaction"], "h-1", "{r}");
    let r = ask(
        "trueconf/bridge/request/republish",
        r#"{"transaction":7}"#,
        "trueconf/bridge/response/republish",
    )
    .await;
    assert_eq!(r, json!({"status": "ok", "data": {}, "transaction": 7}));
    let r = ask(
        "trueconf/bridge/request/nope",
        r#"{"transaction":[1,2]}"#,
        "trueconf/bridge/response/nope",
    )
    .await;
    assert_eq!(r["status"], "error", "{r}");
    assert_eq!(r["transaction"], json!([1, 2]), "{r}");
    // Payloads that are not a JSON object are still accepted, with nothing to echo.
    for payload in ["1", "not json"] {
        let before = h.probe.on(health).len();
        h.probe
            .publish("trueconf/bridge/request/health_check", payload)
            .await;
        within(WAIT, "health_check answered", async {
            while h.probe.on(health).len() == before {
                tokio::time::sleep(Duration::from_millis(5)).await;
            }
        })
        .await;
        let r: Value = serde_json::from_str(&h.probe.on(health)[before].payload).unwrap();
        assert_eq!(r["status"], "ok", "{payload:?}: {r}");
        assert!(r.get("transaction").is_none(), "{payload:?}: {r}");
    }
    // A command for a room that does not exist.
    let r = ask(
        "trueconf/nosuchroom/request/getAppState",
        r#"{"transaction":"r-9"}"#,
        "trueconf/nosuchroom/response/getAppState",
    )
    .await;
    assert!(r["error"].as_str().unwrap().contains("unknown room"), "{r}");
    assert_eq!(r["transaction"], "r-9", "{r}");
}

#[tokio::test]
async fn a_retained_command_replayed_on_subscribe_is_never_executed() {
    let broker = Broker::start();
    let probe = Probe::connect(broker.port, &["trueconf/#"]).await;
    // Published retained by mistake, before the bridge subscribes.
    probe
        .publish_retained(&t("set/call"), "bob@sim.trueconf.local")
        .await;
    let room = pinned_room().await;
    let shutdown = CancellationToken::new();
    let (bridge, tasks) = bridge::start(options(broker.port, &room), shutdown.clone());
    let r = probe
        .wait_message(&t("response/call"), WAIT, |_| true)
        .await;
    let r: Value = serde_json::from_str(&r.payload).unwrap();
    assert_eq!(r["status"], "error");
    assert!(
        r["error"]
            .as_str()
            .unwrap()
            .contains("retained commands are refused"),
        "{r}"
    );
    probe.wait_value(&t("availability"), "online", WAIT).await;
    assert_eq!(
        room.snapshot().app_state,
        AppState::Normal,
        "the stale call was not placed"
    );
    assert!(room.snapshot().callee.is_none());
    // Clearing it as the error says (an empty retained payload) reaches the bridge as an empty
    // message: ignored, no second error. A later command is the fence: its answer is the
    // second response on the topic, not the third.
    probe.publish_retained(&t("set/call"), "").await;
    probe.publish(&t("set/call"), "hangup").await;
    common::wait_until(WAIT, "the fence answered", || {
        probe.on(&t("response/call")).len() >= 2
    })
    .await;
    // In order on one connection: had the clear been answered, its answer would come second.
    let second = &probe.on(&t("response/call"))[1].payload;
    assert!(
        !second.contains("retained") && !second.contains("call: expected"),
        "the clear of the retained command was answered: {second}"
    );
    shutdown.cancel();
    bridge.stop(tasks).await;
}

#[tokio::test]
async fn a_broker_restart_loses_nothing_and_republishes_everything() {
    let mut h = Harness::start().await;
    h.probe.wait_value(&t("app_state"), "normal", WAIT).await;
    h.broker.kill();
    // Meanwhile the Room session stays up and events are buffered.
    h.room
        .chat_message("bob@sim.trueconf.local", "during the outage")
        .unwrap();
    h.room.owner_mutes_mic(true).ok();
    h.room.set_half_open(false);
    tokio::time::sleep(Duration::from_millis(300)).await;
    assert!(
        h.bridge.room(ROOM).unwrap().link().borrow().is_online(),
        "Room session unaffected"
    );
    h.broker.restart_fresh();
    let probe = Probe::connect(h.broker.port, &["trueconf/#", "homeassistant/#"]).await;
    // The fresh broker has nothing retained: all of it comes from the bridge.
    probe
        .wait_value("trueconf/bridge/state", "online", WAIT)
        .await;
    probe.wait_value(&t("availability"), "online", WAIT).await;
    probe.wait_value(&t("app_state"), "normal", WAIT).await;
    probe
        .wait_latest(
            "homeassistant/switch/trueconf2mqtt_boardroom/mic_muted/config",
            WAIT,
            |p| !p.is_empty(),
        )
        .await;
    // Commands work again.
    let before = probe.on(&t("response/mic_muted")).len();
    probe.publish(&t("set/mic_muted"), "OFF").await;
    within(WAIT, "response after restart", async {
        while probe.on(&t("response/mic_muted")).len() == before {
            tokio::time::sleep(Duration::from_millis(5)).await;
        }
    })
    .await;
    h.stop().await;
}

#[tokio::test]
async fn events_during_a_broker_outage_are_delivered_after_it() {
    let mut h = Harness::start().await;
    // A second subscriber with a persistent session would see the events; simpler: our probe
    // reconnects to the same broker, which keeps retained state, and we look for the event.
    h.broker.kill();
    h.room
        .chat_message("bob@sim.trueconf.local", "buffered while away")
        .unwrap();
    let client = h.bridge.room(ROOM).unwrap().clone();
    common::wait_until(WAIT, "event seen by the bridge", || {
        h.bridge
            .room_stats(ROOM)
            .unwrap()
            .events
            .load(std::sync::atomic::Ordering::Relaxed)
            > 0
    })
    .await;
    h.broker.restart();
    let probe = Probe::connect(h.broker.port, &["trueconf/+/event/#"]).await;
    probe
        .wait_message(&t("event/incomingChatMessage"), WAIT, |p| {
            p.contains("buffered while away")
        })
        .await;
    assert!(client.link().borrow().is_online());
    h.stop().await;
}

#[tokio::test]
async fn a_room_restart_is_seen_and_commands_fail_fast_meanwhile() {
    let h = Harness::start().await;
    h.room.stop().await;
    h.probe
        .wait_value(&t("availability"), "offline", WAIT)
        .await;
    let started = std::time::Instant::now();
    let r = h.command("set/mic_muted", "ON", "mic_muted").await;
    assert_eq!(r["status"], "error");
    assert!(
        r["error"].as_str().unwrap().contains("not connected"),
        "{r}"
    );
    assert!(
        started.elapsed() < Duration::from_secs(2),
        "answered at once"
    );
    h.probe
        .wait_value("trueconf/bridge/state", "online", WAIT)
        .await;
    h.room.restart().await.unwrap();
    h.probe.wait_value(&t("availability"), "online", WAIT).await;
    let r = h.command("set/mic_muted", "ON", "mic_muted").await;
    assert_eq!(r["status"], "ok", "{r}");
    assert!(h.room.snapshot().mic_muted);
}

#[tokio::test]
async fn home_assistant_birth_republishes_discovery_and_state() {
    let h = Harness::start().await;
    let config = "homeassistant/switch/trueconf2mqtt_boardroom/mic_muted/config";
    h.probe.wait_latest(config, WAIT, |p| !p.is_empty()).await;
    let before = h.probe.on(config).len();
    let state_before = h.probe.on(&t("mic_muted")).len();
    h.probe.publish("homeassistant/status", "online").await;
    within(WAIT, "discovery republished", async {
        while h.probe.on(config).len() == before
            || h.probe.on(&t("mic_muted")).len() == state_before
        {
            tokio::time::sleep(Duration::from_millis(20)).await;
        }
    })
    .await;
}

#[tokio::test]
async fn graceful_stop_publishes_offline() {
    let mut h = Harness::start().await;
    let started = std::time::Instant::now();
    h.stop().await;
    assert!(started.elapsed() < Duration::from_secs(5));
    h.probe
        .wait_value(&t("availability"), "offline", WAIT)
        .await;
    h.probe
        .wait_value("trueconf/bridge/state", "offline", WAIT)
        .await;
}

/// Starts a bridge that reaches the broker through a proxy the test can cut.
async fn behind_proxy(
    broker: &Broker,
    room: &SimRoom,
) -> (common::Proxy, Arc<Bridge>, Tasks, CancellationToken) {
    let proxy = common::Proxy::start(broker.port).await;
    let shutdown = CancellationToken::new();
    let (bridge, tasks) = bridge::start(options(proxy.port, room), shutdown.clone());
    (proxy, bridge, tasks, shutdown)
}

#[tokio::test]
async fn commands_sent_during_a_short_outage_arrive_and_old_ones_are_refused() {
    let broker = Broker::start();
    let room = pinned_room().await;
    let probe = Probe::connect(broker.port, &["trueconf/#"]).await;
    let (proxy, bridge, tasks, shutdown) = behind_proxy(&broker, &room).await;
    probe.wait_value(&t("availability"), "online", WAIT).await;

    // Short outage: the persistent session keeps the command; it runs after the reconnect.
    proxy.cut();
    common::wait_until(WAIT, "bridge sees the outage", || {
        !bridge.link().is_connected()
    })
    .await;
    probe.publish(&t("set/mic_muted"), "ON").await;
    proxy.restore();
    let r = probe
        .wait_message(&t("response/mic_muted"), WAIT, |_| true)
        .await;
    assert!(r.payload.contains("\"status\":\"ok\""), "{}", r.payload);
    assert!(room.snapshot().mic_muted);

    // Outage longer than command_max_age (2 s): the queued command is refused, not run.
    proxy.cut();
    common::wait_until(WAIT, "bridge sees the outage", || {
        !bridge.link().is_connected()
    })
    .await;
    probe.publish(&t("set/camera_muted"), "ON").await;
    tokio::time::sleep(Duration::from_millis(2500)).await; // the outage itself
    proxy.restore();
    let r = probe
        .wait_message(&t("response/camera_muted"), WAIT, |_| true)
        .await;
    assert!(r.payload.contains("longer than"), "{}", r.payload);
    assert!(!room.snapshot().camera_muted);
    shutdown.cancel();
    bridge.stop(tasks).await;
}

#[tokio::test]
async fn mqtt5_response_topic_and_correlation_data_are_honoured() {
    use rumqttc::v5::mqttbytes::QoS;
    use rumqttc::v5::mqttbytes::v5::{Packet, PublishProperties};
    use rumqttc::v5::{AsyncClient, Event, MqttOptions};

    let broker = Broker::start();
    let room = pinned_room().await;
    let mut opts = options(broker.port, &room);
    opts.mqtt.version = trueconf2mqtt::mqtt::Version::V5;
    let shutdown = CancellationToken::new();
    let (bridge, tasks) = bridge::start(opts, shutdown.clone());
    let probe = Probe::connect(broker.port, &["trueconf/#"]).await;
    probe.wait_value(&t("availability"), "online", WAIT).await;

    let (client, mut eventloop) =
        AsyncClient::new(MqttOptions::new("v5-caller", "127.0.0.1", broker.port), 16);
    client
        .subscribe("caller/inbox", QoS::AtLeastOnce)
        .await
        .unwrap();
    let (tx, mut rx) = tokio::sync::mpsc::channel(4);
    tokio::spawn(async move {
        loop {
            match eventloop.poll().await {
                Ok(Event::Incoming(Packet::Publish(p))) => {
                    let _ = tx.send(p).await;
                }
                Ok(Event::Incoming(Packet::SubAck(_))) => {
                    let _ = tx.try_send(Default::default());
                }
                Ok(_) => {}
                Err(_) => tokio::time::sleep(Duration::from_millis(50)).await,
            }
        }
    });
    within(WAIT, "suback", rx.recv()).await;
    let properties = PublishProperties {
        response_topic: Some("caller/inbox".into()),
        correlation_data: Some(bytes::Bytes::from_static(b"req-7")),
        ..Default::default()
    };
    client
        .publish_with_properties(
            t("set/mic_muted"),
            QoS::AtLeastOnce,
            false,
            "ON",
            properties,
        )
        .await
        .unwrap();
    let reply = within(WAIT, "v5 response", rx.recv()).await.unwrap();
    assert_eq!(&reply.topic[..], b"caller/inbox");
    let body: Value = serde_json::from_slice(&reply.payload).unwrap();
    assert_eq!(body["status"], "ok", "{body}");
    assert_eq!(
        reply.properties.unwrap().correlation_data.as_deref(),
        Some(&b"req-7"[..])
    );
    assert!(room.snapshot().mic_muted);

    // A bridge request too, with its transaction.
    let properties = PublishProperties {
        response_topic: Some("caller/inbox".into()),
        correlation_data: Some(bytes::Bytes::from_static(b"req-8")),
        ..Default::default()
    };
    client
        .publish_with_properties(
            "trueconf/bridge/request/health_check",
            QoS::AtLeastOnce,
            false,
            r#"{"transaction":8}"#,
            properties,
        )
        .await
        .unwrap();
    let reply = within(WAIT, "v5 bridge response", rx.recv()).await.unwrap();
    assert_eq!(&reply.topic[..], b"caller/inbox");
    let body: Value = serde_json::from_slice(&reply.payload).unwrap();
    assert_eq!(body["status"], "ok", "{body}");
    assert_eq!(body["transaction"], 8, "{body}");
    assert_eq!(
        reply.properties.unwrap().correlation_data.as_deref(),
        Some(&b"req-8"[..])
    );
    shutdown.cancel();
    bridge.stop(tasks).await;
}

#[tokio::test]
async fn stale_discovery_of_this_bridge_is_removed_and_others_are_left_alone() {
    let broker = Broker::start();
    let probe = Probe::connect(broker.port, &["homeassistant/#", "trueconf/#"]).await;
    let ours = "homeassistant/switch/trueconf2mqtt_oldroom/mic_muted/config";
    let foreign = "homeassistant/switch/trueconf2mqtt_otherroom/mic_muted/config";
    probe
        .publish_retained(ours, r#"{"availability":[{"topic":"trueconf/bridge/state"}],"command_topic":"trueconf/oldroom/set/mic_muted"}"#)
        .await;
    probe
        .publish_retained(foreign, r#"{"availability":[{"topic":"elsewhere/bridge/state"}],"command_topic":"elsewhere/otherroom/set/mic_muted"}"#)
        .await;
    let room = pinned_room().await;
    let shutdown = CancellationToken::new();
    let (bridge, tasks) = bridge::start(options(broker.port, &room), shutdown.clone());
    probe.wait_value(ours, "", WAIT).await;
    // A fresh subscriber sees no retained config for the removed room, the foreign one stays,
    // and the current entities are there.
    let fresh = Probe::connect(broker.port, &["homeassistant/#"]).await;
    fresh
        .wait_latest(
            "homeassistant/switch/trueconf2mqtt_boardroom/mic_muted/config",
            WAIT,
            |p| !p.is_empty(),
        )
        .await;
    assert!(fresh.latest(ours).is_none(), "stale config removed");
    assert!(
        fresh.latest(foreign).is_some(),
        "other bridges' configs untouched"
    );
    shutdown.cancel();
    bridge.stop(tasks).await;
}
