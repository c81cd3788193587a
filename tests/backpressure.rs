//! A burst of Room events while the broker is up is slowed down, never dropped: the bridge stops
//! reading the Room's WebSocket while the broker is behind, so every event arrives, in order,
//! even with an `event_buffer` far smaller than the burst (that bound is for broker outages).

mod common;

use std::time::Duration;

use tokio_util::sync::CancellationToken;
use trueconf2mqtt::bridge::{self, BridgeOptions, RoomEntry};
use trueconf2mqtt::mqtt::LinkOptions;
use trueconf2mqtt::room::RoomOptions;
use trueconf2mqtt::simulator::{SimConfig, SimRoom};

use common::{Broker, Probe, wait_until};

const BURST: usize = 10_000;
const EVENTS: &str = "trueconf/r1/event/myEvent";

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn a_burst_while_the_broker_is_up_arrives_complete_and_in_order() {
    let broker = Broker::start();
    let room = SimRoom::start(SimConfig::default()).await.unwrap();
    let probe = Probe::connect(broker.port, &[EVENTS]).await;
    let options = BridgeOptions {
        mqtt: LinkOptions {
            // Far below the burst: were the bound applied while connected, most would be lost.
            event_buffer: 10,
            ..LinkOptions::new("127.0.0.1", broker.port, "backpressure-bridge")
        },
        base_topic: "trueconf".into(),
        discovery_prefix: None,
        homeassistant: Default::default(),
        max_payload_bytes: 4096,
        command_max_age: Duration::from_secs(30),
        rooms: vec![RoomEntry {
            id: "r1".into(),
            name: "Room 1".into(),
            options: RoomOptions::new("127.0.0.1", room.http_port()),
            allow_dangerous: Vec::new(),
        }],
    };
    let shutdown = CancellationToken::new();
    let (running, tasks) = bridge::start(options, shutdown.clone());
    wait_until(
        Duration::from_secs(10),
        "the bridge online with the Room",
        || {
            running
                .room("r1")
                .is_some_and(|c| c.link().borrow().is_online())
                && running.link().is_connected()
        },
    )
    .await;

    // The simulator writes as fast as the socket takes it (and waits when it does not).
    room.flood_events(BURST).await;
    wait_until(
        Duration::from_secs(60),
        "every event of the burst on MQTT",
        || probe.on(EVENTS).len() >= BURST,
    )
    .await;

    let received: Vec<String> = probe
        .on(EVENTS)
        .iter()
        .map(|m| {
            let event: serde_json::Value = serde_json::from_str(&m.payload).expect("JSON event");
            event["data"].as_str().expect("data").to_owned()
        })
        .collect();
    let expected: Vec<String> = (0..BURST).map(|i| format!("flood-{i}")).collect();
    assert_eq!(received, expected, "complete, in order, no duplicates");
    let dropped = running
        .link()
        .stats()
        .dropped
        .load(std::sync::atomic::Ordering::Relaxed);
    assert_eq!(dropped, 0, "nothing dropped while the broker was up");
    assert!(
        room.authenticated_connections() == 1,
        "the Room session survived the burst"
    );

    shutdown.cancel();
    running.stop(tasks).await;
}
