//! Hostile and careless input on the MQTT side, against a real mosquitto: one message costs at
//! most one response, never the broker link; copy-pasted configurations are reported, not
//! looped on.

mod common;

use std::sync::atomic::Ordering;
use std::time::Duration;

use trueconf2mqtt::bridge::BridgeOptions;
use trueconf2mqtt::mqtt::LinkOptions;
use trueconf2mqtt::simulator::{SimConfig, SimRoom};

use common::{
    Broker, LogCapture, Probe, Running, room_entry, test_bridge_options, test_link_options,
    test_room_options, wait_until,
};

const WAIT: Duration = Duration::from_secs(10);
const ROOM: &str = "boardroom";

fn options(broker_port: u16, room: &SimRoom, client_id: Option<&str>) -> BridgeOptions {
    let mut mqtt = test_link_options(broker_port, "hostile");
    if let Some(id) = client_id {
        mqtt.client_id = id.into();
    }
    let room = room_entry(ROOM, "Boardroom", test_room_options(room.http_port()));
    test_bridge_options(mqtt, vec![room])
}

/// Every response the probe has seen (room and bridge responses).
fn responses(probe: &Probe) -> Vec<common::Message> {
    probe
        .messages()
        .into_iter()
        .filter(|m| m.topic.contains("/response/"))
        .collect()
}

/// Publishes `payload` on `topic`, then a fence command, and returns how many responses the
/// hostile message got (the fence's own excluded). Commands of one connection are handled in
/// order, so the hostile message's answer, if any, comes before the fence's.
async fn responses_to(probe: &Probe, topic: &str, payload: &[u8], fence: u64) -> usize {
    let before = responses(probe).len();
    probe.publish(topic, payload.to_vec()).await;
    let marker = format!(r#""transaction":{fence}"#);
    probe
        .publish(
            &format!("trueconf/{ROOM}/request/getAppState"),
            format!(r#"{{"transaction":{fence}}}"#),
        )
        .await;
    let shown: String = topic.chars().take(60).collect();
    let what = format!(
        "the fence's answer after {shown}… ({} bytes)",
        payload.len()
    );
    wait_until(WAIT, &what, || {
        responses(probe)[before..]
            .iter()
            .any(|m| m.payload.contains(&marker))
    })
    .await;
    responses(probe)[before..]
        .iter()
        .filter(|m| !m.payload.contains(&marker))
        .count()
}

/// Hostile topics and payloads for every command topic family: sizes around the limits (the
/// payload limit, the response-topic limit, what MQTT can encode), encodings and nesting.
fn hostile_cases(max_payload: usize) -> Vec<(String, Vec<u8>)> {
    let base = format!("trueconf/{ROOM}");
    let long = |n: usize| "f".repeat(n);
    let mut cases: Vec<(String, Vec<u8>)> = Vec::new();
    let families = [
        format!("{base}/set"),
        format!("{base}/set/mic_muted"),
        format!("{base}/set/call"),
        format!("{base}/request/getAppState"),
        format!("{base}/request/setMicMute"),
        "trueconf/bridge/request/health_check".to_owned(),
    ];
    let payloads: Vec<Vec<u8>> = vec![
        b"ON".to_vec(),
        b"{}".to_vec(),
        b"{\"transaction\":123456789012345678901234567890}".to_vec(),
        vec![0xff, 0xfe, 0x00, 0x80],
        b"\0".to_vec(),
        "é".repeat(200).into_bytes(),
        format!("{}{}", "[".repeat(10_000), "]".repeat(10_000)).into_bytes(),
        format!(
            "{{\"a\":{}1{}}}",
            "{\"b\":".repeat(2_000),
            "}".repeat(2_000)
        )
        .into_bytes(),
        vec![b'x'; max_payload],
        vec![b'x'; max_payload + 1],
        format!("{{\"mic_muted\":\"{}\"}}", "y".repeat(max_payload - 16)).into_bytes(),
    ];
    for family in &families {
        for payload in &payloads {
            cases.push((family.clone(), payload.clone()));
        }
    }
    // Topic levels around the response-topic limit and what MQTT can encode.
    for n in [1000, 1024, 1100, 65_000, 65_400] {
        cases.push((format!("{base}/set/{}", long(n)), b"ON".to_vec()));
        cases.push((format!("{base}/request/{}", long(n)), b"{}".to_vec()));
        cases.push((format!("trueconf/{}/set", long(n)), b"{\"x\":1}".to_vec()));
        cases.push((
            format!("trueconf/bridge/request/{}", long(n)),
            b"{}".to_vec(),
        ));
    }
    // Odd levels: unknown rooms and fields, non-ASCII. (Control characters in a topic make
    // mosquitto drop the publisher: they never reach the bridge.)
    for topic in [
        format!("{base}/set/καμέρα"),
        "trueconf/nosuchroom/set/mic_muted".to_owned(),
        format!("{base}/request/rebootSystem"),
        format!("{base}/request/auth"),
    ] {
        cases.push((topic, b"{}".to_vec()));
    }
    cases
}

#[tokio::test]
async fn one_hostile_message_costs_at_most_one_response_and_never_the_link() {
    let broker = Broker::start();
    let room = SimRoom::start(SimConfig::default()).await.unwrap();
    let probe = Probe::connect(broker.port, &["trueconf/#"]).await;
    let options = options(broker.port, &room, None);
    let max_payload = options.max_payload_bytes;
    let mut bridge = Running::start(options);
    probe
        .wait_value(&format!("trueconf/{ROOM}/availability"), "online", WAIT)
        .await;
    let connects = || {
        bridge
            .bridge
            .link()
            .stats()
            .connects
            .load(Ordering::Relaxed)
    };
    let connected_once = connects();
    let cases = hostile_cases(max_payload);
    for (i, (topic, payload)) in cases.iter().enumerate() {
        let answered = responses_to(&probe, topic, payload, i as u64).await;
        let shown: String = topic.chars().take(80).collect();
        assert!(
            answered <= 1,
            "{answered} responses to {shown}… ({} bytes of payload)",
            payload.len()
        );
        assert_eq!(
            connects(),
            connected_once,
            "the broker link was dropped by {shown}… ({} bytes of payload)",
            payload.len()
        );
    }
    // The long topics were answered on the bounded error topic, not echoed.
    let errors = probe.on("trueconf/bridge/response/error");
    assert!(
        errors.iter().any(|m| m.payload.contains("too long")),
        "no answer on bridge/response/error: {errors:?}"
    );
    assert!(
        responses(&probe).iter().all(|m| m.topic.len() <= 1024),
        "a response topic longer than 1 KiB was published"
    );
    bridge.stop().await;
}

#[tokio::test]
async fn two_bridges_with_one_client_id_are_reported_and_back_off() {
    let capture = LogCapture::install("warn,trueconf2mqtt=info", 20_000);
    let mark = capture.mark();
    let broker = Broker::start();
    let room_a = SimRoom::start(SimConfig::default()).await.unwrap();
    let room_b = SimRoom::start(SimConfig::default()).await.unwrap();
    let id = format!("copied-{}", fastrand::u32(..));
    // The daemon's default reconnect policy (0.5 s doubling to 30 s).
    let with_defaults = |room: &SimRoom| {
        let mut options = options(broker.port, room, Some(&id));
        let defaults = LinkOptions::new("127.0.0.1", broker.port, id.clone());
        options.mqtt.reconnect_min = defaults.reconnect_min;
        options.mqtt.reconnect_max = defaults.reconnect_max;
        options
    };
    let mut a = Running::start(with_defaults(&room_a));
    let mut b = Running::start(with_defaults(&room_b));
    let started = tokio::time::Instant::now();
    wait_until(
        Duration::from_secs(15),
        "the client id clash reported",
        || capture.count_since(mark, &["another client is probably using client_id"]) > 0,
    )
    .await;
    // Keep watching for a fixed window: before, each kicked the other off ~3 times a second.
    let window = Duration::from_secs(8);
    tokio::time::sleep_until(started + window).await;
    let total = a.bridge.link().stats().connects.load(Ordering::Relaxed)
        + b.bridge.link().stats().connects.load(Ordering::Relaxed);
    assert!(
        total <= 16,
        "{total} connections in {window:?}: the two bridges keep knocking each other off"
    );
    a.stop().await;
    b.stop().await;
}

#[tokio::test]
async fn a_second_bridge_on_the_same_topics_cannot_leave_the_first_offline() {
    let capture = LogCapture::install("warn,trueconf2mqtt=info", 20_000);
    let mark = capture.mark();
    let broker = Broker::start();
    let room_a = SimRoom::start(SimConfig::default()).await.unwrap();
    let room_b = SimRoom::start(SimConfig::default()).await.unwrap();
    let probe = Probe::connect(broker.port, &["trueconf/bridge/state"]).await;
    let mut first = Running::start(options(broker.port, &room_a, None));
    probe
        .wait_value("trueconf/bridge/state", "online", WAIT)
        .await;
    // A copy of the configuration without mqtt.instance, started and stopped by mistake.
    let mut second = Running::start(options(broker.port, &room_b, None));
    wait_until(WAIT, "the second bridge connected", || {
        second.bridge.link().is_connected()
    })
    .await;
    second.stop().await;
    probe
        .wait_message("trueconf/bridge/state", WAIT, |p| p == "offline")
        .await;
    // The first bridge is still running: it says so again.
    probe
        .wait_latest("trueconf/bridge/state", WAIT, |p| p == "online")
        .await;
    assert!(
        capture.count_since(
            mark,
            &["another bridge set this bridge's state topic offline"]
        ) > 0,
        "the clash was not logged"
    );
    first.stop().await;
}

#[tokio::test]
async fn a_publish_refused_by_the_broker_acl_is_logged_once_and_counted() {
    let capture = LogCapture::install("warn,trueconf2mqtt=info", 20_000);
    let mark = capture.mark();
    // Anonymous clients may do anything under trueconf/ except write one plain state topic.
    let acl = format!(
        "topic readwrite trueconf/#\ntopic readwrite homeassistant/#\ntopic deny trueconf/{ROOM}/ringing\n"
    );
    let broker = Broker::start_with("acl_file {dir}/acl\n", &[("acl", &acl)]);
    let room = SimRoom::start(SimConfig::default()).await.unwrap();
    let probe = Probe::connect(broker.port, &["trueconf/#"]).await;
    let mut options = options(broker.port, &room, None);
    options.mqtt.version = trueconf2mqtt::mqtt::Version::V5;
    let mut bridge = Running::start(options);
    probe
        .wait_value(&format!("trueconf/{ROOM}/availability"), "online", WAIT)
        .await;
    let refused = || {
        bridge
            .bridge
            .link()
            .stats()
            .publish_refused
            .load(Ordering::Relaxed)
    };
    wait_until(WAIT, "the refusal counted", || refused() > 0).await;
    // Every state change publishes `ringing` again: counted each time, logged once.
    bridge.bridge.link().republish_all();
    wait_until(WAIT, "the second refusal counted", || refused() > 1).await;
    let lines = capture.since(mark);
    let logged: Vec<&String> = lines
        .iter()
        .filter(|l| l.contains("the broker refused a publish"))
        .collect();
    assert_eq!(logged.len(), 1, "{logged:?}");
    assert!(
        logged[0].contains(&format!("trueconf/{ROOM}/ringing")),
        "{}",
        logged[0]
    );
    assert!(probe.latest(&format!("trueconf/{ROOM}/ringing")).is_none());
    bridge.stop().await;
}
