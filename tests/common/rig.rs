//! The chaos rig: one Room (`boardroom`, behind a PIN) on the simulator, a bridge with short
//! timeouts, a broker, and the checks of what the broker retains against what the Room is.
//! [`World`] puts them together (optionally through a [`Proxy`] that can cut the broker link);
//! the process helpers read this process's RSS and resume a SIGSTOPped broker.

use std::collections::HashMap;
use std::time::{Duration, Instant};

use rumqttc::{AsyncClient, Event, MqttOptions, Packet, QoS};
use serde_json::{Value, json};
use trueconf2mqtt::bridge::{Bridge, BridgeOptions};
use trueconf2mqtt::mqtt::LinkOptions;
use trueconf2mqtt::room::RoomOptions;
use trueconf2mqtt::simulator::{SimConfig, SimRoom, SimSnapshot};

use super::{
    Broker, Probe, Proxy, Running, room_entry, test_bridge_options, test_link_options,
    test_room_options, wait_until,
};

pub const ROOM: &str = "boardroom";
pub const PIN: &str = "4321";
pub const WAIT: Duration = Duration::from_secs(10);
pub const MIC_CONFIG: &str = "homeassistant/switch/trueconf2mqtt_boardroom/mic_muted/config";
/// `mqtt.event_buffer` of the cycle scenarios: far above what a short outage produces.
pub const EVENT_BUFFER: usize = 200;
/// How long after a message was sent a broker kill may still catch it in flight.
pub const IN_FLIGHT: Duration = Duration::from_millis(250);
pub const CHATTER: &str = "bob@sim.trueconf.local";

pub fn t(suffix: &str) -> String {
    format!("trueconf/{ROOM}/{suffix}")
}

pub fn ms(range: std::ops::Range<u64>) -> Duration {
    Duration::from_millis(fastrand::u64(range))
}

pub fn room_options(http_port: u16, pin: &str) -> RoomOptions {
    let mut options = test_room_options(http_port).with_pin(pin);
    options.connect_timeout = Duration::from_secs(1);
    options.request_timeout = Duration::from_secs(2);
    options.auth_retry = Duration::from_secs(1);
    options
}

pub fn bridge_options(broker_port: u16, room: RoomOptions) -> BridgeOptions {
    let mqtt = LinkOptions {
        event_buffer: EVENT_BUFFER,
        ..test_link_options(broker_port, "t2m-chaos")
    };
    test_bridge_options(mqtt, vec![room_entry(ROOM, "Boardroom", room)])
}

pub async fn sim() -> SimRoom {
    SimRoom::start(SimConfig {
        pin: Some(PIN.into()),
        answer_delay: Duration::from_millis(20),
        ..SimConfig::default()
    })
    .await
    .unwrap()
}

// === Reading the broker's retained store with a fresh client ===

/// The retained messages on `filters`, read by a new clean-session client; waits until every
/// topic of `expect` was seen (or `timeout`).
pub async fn retained(
    port: u16,
    filters: &[&str],
    expect: &[&str],
    timeout: Duration,
) -> HashMap<String, String> {
    let id = format!("retained-reader-{}", fastrand::u64(..));
    let mut options = MqttOptions::new(id, "127.0.0.1", port);
    options.set_keep_alive(Duration::from_secs(5));
    options.set_max_packet_size(1 << 20, 1 << 20);
    let (client, mut eventloop) = AsyncClient::new(options, 16);
    let mut seen = HashMap::new();
    let deadline = tokio::time::Instant::now() + timeout;
    let mut subacks = 0;
    loop {
        if subacks >= filters.len() && expect.iter().all(|t| seen.contains_key(*t)) {
            break;
        }
        match tokio::time::timeout_at(deadline, eventloop.poll()).await {
            Err(_) => break,
            Ok(Ok(Event::Incoming(Packet::ConnAck(_)))) => {
                for f in filters {
                    let _ = client.try_subscribe(*f, QoS::AtMostOnce);
                }
            }
            Ok(Ok(Event::Incoming(Packet::SubAck(_)))) => subacks += 1,
            Ok(Ok(Event::Incoming(Packet::Publish(p)))) if p.retain => {
                seen.insert(p.topic, String::from_utf8_lossy(&p.payload).into_owned());
            }
            Ok(Ok(_)) => {}
            Ok(Err(_)) => tokio::time::sleep(Duration::from_millis(50)).await,
        }
    }
    let _ = client.try_disconnect();
    let _ = tokio::time::timeout(Duration::from_millis(200), eventloop.poll()).await;
    seen
}

/// The plain topics and JSON members that must mirror the simulator.
pub fn expected_state(s: &SimSnapshot) -> Vec<(&'static str, Value)> {
    let on = |b: bool| json!(b);
    vec![
        ("app_state", json!(s.app_state.as_str())),
        (
            "in_call",
            on(s.app_state == trueconf2mqtt::protocol::AppState::Conference),
        ),
        ("mic_muted", on(s.mic_muted)),
        ("camera_muted", on(s.camera_muted)),
        ("speaker_muted", on(s.speaker_muted)),
        ("camera", json!(s.camera.clone().unwrap_or_default())),
        (
            "microphone",
            json!(s.microphone.clone().unwrap_or_default()),
        ),
        ("speaker", json!(s.speaker.clone().unwrap_or_default())),
        ("participant_count", json!(s.participants.len())),
        ("logged_in", on(s.logged_in)),
    ]
}

pub fn plain(value: &Value) -> String {
    match value {
        Value::Bool(true) => "ON".into(),
        Value::Bool(false) => "OFF".into(),
        Value::String(s) => s.clone(),
        other => other.to_string(),
    }
}

/// Differences between the broker's retained view and what it must be, given the Room.
pub fn retained_problems(
    seen: &HashMap<String, String>,
    snapshot: &SimSnapshot,
    availability: &str,
) -> Vec<String> {
    let mut problems = Vec::new();
    let mut check = |topic: String, expected: &str| match seen.get(&topic) {
        Some(actual) if actual == expected => {}
        other => problems.push(format!("{topic}: {other:?}, expected {expected:?}")),
    };
    check("trueconf/bridge/state".into(), "online");
    check(t("availability"), availability);
    let fields = expected_state(snapshot);
    for (field, value) in &fields {
        check(t(field), &plain(value));
    }
    match seen
        .get(&format!("trueconf/{ROOM}"))
        .and_then(|p| serde_json::from_str::<Value>(p).ok())
    {
        None => problems.push("no retained JSON state".into()),
        Some(document) => {
            for (field, value) in &fields {
                if document.get(*field) != Some(value) {
                    problems.push(format!(
                        "JSON state {field}: {:?}, expected {value}",
                        document.get(*field)
                    ));
                }
            }
        }
    }
    if seen.get(MIC_CONFIG).is_none_or(|p| p.is_empty()) {
        problems.push(format!("discovery {MIC_CONFIG} missing"));
    }
    problems
}

/// Waits until the broker retains availability `availability`, `bridge/state` online,
/// discovery, and a state equal to the simulator's.
pub async fn assert_retained_matches(port: u16, room: &SimRoom, availability: &str, what: &str) {
    let filters = [
        "trueconf/bridge/state",
        "trueconf/boardroom",
        "trueconf/boardroom/+",
        MIC_CONFIG,
    ];
    let expect = [
        "trueconf/bridge/state",
        "trueconf/boardroom",
        "trueconf/boardroom/availability",
        "trueconf/boardroom/mic_muted",
        MIC_CONFIG,
    ];
    let deadline = Instant::now() + WAIT;
    loop {
        let seen = retained(port, &filters, &expect, Duration::from_secs(2)).await;
        let problems = retained_problems(&seen, &room.snapshot(), availability);
        if problems.is_empty() {
            return;
        }
        assert!(
            Instant::now() < deadline,
            "{what}: the broker's retained view does not match the Room after {WAIT:?}: {problems:#?}"
        );
        tokio::time::sleep(Duration::from_millis(100)).await;
    }
}

// === A broker, a Room, a bridge and a probe ===

/// A broker, a Room, a bridge (through a proxy when `proxy`), and a clean-session probe.
pub struct World {
    pub broker: Broker,
    pub room: SimRoom,
    pub proxy: Option<Proxy>,
    pub probe: Probe,
    pub running: Running,
}

impl World {
    pub async fn start(proxy: bool, tweak: impl FnOnce(&mut BridgeOptions)) -> World {
        let broker = Broker::start();
        let room = sim().await;
        let proxy = match proxy {
            true => Some(Proxy::start(broker.port).await),
            false => None,
        };
        let port = proxy.as_ref().map_or(broker.port, |p| p.port);
        let probe = Probe::connect(broker.port, &["trueconf/#", "homeassistant/#"]).await;
        let mut options = bridge_options(port, room_options(room.http_port(), PIN));
        tweak(&mut options);
        let running = Running::start(options);
        probe.wait_value(&t("availability"), "online", WAIT).await;
        wait_until(WAIT, "bridge connected", || {
            running.bridge.link().is_connected()
        })
        .await;
        World {
            broker,
            room,
            proxy,
            probe,
            running,
        }
    }

    pub fn bridge(&self) -> &Bridge {
        &self.running.bridge
    }

    pub fn proxy(&self) -> &Proxy {
        self.proxy.as_ref().expect("started with a proxy")
    }

    pub fn chat(&self, text: &str) {
        self.room.chat_message(CHATTER, text).unwrap();
    }

    pub async fn wait_chat(&self, text: &str) {
        self.probe
            .wait_message(&t("event/incomingChatMessage"), WAIT, |p| {
                p.contains(&format!("\"{text}\""))
            })
            .await;
    }

    pub fn auth_requests(&self) -> usize {
        auth_requests(&self.room)
    }
}

pub fn auth_requests(room: &SimRoom) -> usize {
    room.requests_received()
        .iter()
        .filter(|r| r["method"] == "auth")
        .count()
}

// === Process helpers ===

/// VmRSS of this process in KiB.
pub fn rss_kib() -> u64 {
    let status = std::fs::read_to_string("/proc/self/status").expect("/proc/self/status");
    status
        .lines()
        .find_map(|l| l.strip_prefix("VmRSS:"))
        .and_then(|v| v.trim().trim_end_matches("kB").trim().parse().ok())
        .expect("VmRSS in /proc/self/status")
}

/// Sends SIGCONT when dropped, so a failing test never leaves mosquitto stopped.
pub struct Continue(pub u32);

impl Drop for Continue {
    fn drop(&mut self) {
        let _ = std::process::Command::new("kill")
            .args(["-CONT", &self.0.to_string()])
            .status();
    }
}
