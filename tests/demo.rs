//! `trueconf2mqtt demo` in-process: the embedded rumqttd broker, the simulated Room with its
//! scripted life, and the bridge, observed from the outside with an MQTT client.

mod common;

use std::collections::{HashMap, HashSet};
use std::net::SocketAddr;
use std::time::Duration;

use trueconf2mqtt::demo::{BrokerChoice, DemoOptions, start_demo};
use trueconf2mqtt::homeassistant::{DiscoveryContext, DiscoveryMode, mode_topics};

use common::{Broker, Probe};

/// Generous bounds: the script's pace in these tests is 300 ms, a whole loop ~4 s.
const WAIT: Duration = Duration::from_secs(15);

fn options(broker: BrokerChoice) -> DemoOptions {
    DemoOptions {
        broker,
        pace: Duration::from_millis(300),
        env: HashMap::new(),
        narrate: true,
        ready_timeout: Duration::from_secs(20),
    }
}

fn embedded() -> BrokerChoice {
    BrokerChoice::Embedded {
        listen: "127.0.0.1:0".parse::<SocketAddr>().unwrap(),
    }
}

#[tokio::test(flavor = "multi_thread", worker_threads = 4)]
async fn embedded_broker_carries_the_scripted_life() {
    let demo = start_demo(options(embedded())).await.expect("demo starts");
    assert!(demo.embedded_broker);
    assert_eq!(demo.room_id, "demo-room");
    let (base, room) = (demo.base_topic.clone(), demo.room_id.clone());
    let t = |suffix: &str| format!("{base}/{room}/{suffix}");
    let text = demo.instructions();
    assert!(
        text.contains(&format!(
            "mosquitto_sub -h 127.0.0.1 -p {} -v -t 'trueconf/#'",
            demo.broker_port
        )),
        "{text}"
    );
    assert!(text.contains("set/mic_muted -m ON"), "{text}");
    assert!(text.contains("discovery prefix: homeassistant"), "{text}");

    // A subscriber arriving now sees the retained state: rumqttd stores retained QoS 1
    // publishes and replays them, flagged retained, to a new subscription.
    let probe = Probe::connect(demo.broker_port, &["trueconf/#", "homeassistant/#"]).await;
    probe
        .wait_value(&t("availability"), "online", Duration::from_secs(5))
        .await;
    let availability = probe.on(&t("availability"));
    assert!(availability[0].retain, "{availability:?}");
    probe
        .wait_value("trueconf/bridge/state", "online", Duration::from_secs(5))
        .await;
    probe
        .wait_latest(&t("app_state"), Duration::from_secs(5), |s| !s.is_empty())
        .await;

    // Every discovery config arrives (rumqttd truncates retained replays to the free in-flight
    // slots; one Room stays well below that).
    let ctx = DiscoveryContext {
        base_topic: &demo.base_topic,
        prefix: demo.discovery_prefix.as_deref().unwrap(),
        room_id: &demo.room_id,
        room_name: &demo.room_name,
        host: "127.0.0.1",
        bridge_version: env!("CARGO_PKG_VERSION"),
    };
    // The demo announces the Room as the daemon does by default: one device config.
    let expected: HashSet<String> = mode_topics(DiscoveryMode::default(), &ctx)
        .into_iter()
        .collect();
    common::wait_until(Duration::from_secs(5), "all discovery configs", || {
        let seen: HashSet<String> = probe
            .messages()
            .into_iter()
            // Live or retained: the device config follows the start's read of retained configs,
            // so it may arrive after this probe subscribed.
            .filter(|m| !m.payload.is_empty())
            .map(|m| m.topic)
            .collect();
        expected.is_subset(&seen)
    })
    .await;

    // The scripted life: a call comes in (event + state), the script accepts it through the
    // broker (QoS 1 command, response), participants and chat follow, the call ends.
    probe
        .wait_message(&t("event/inviteReceived"), WAIT, |_| true)
        .await;
    probe.wait_message(&t("ringing"), WAIT, |p| p == "ON").await;
    probe
        .wait_message(&t("response/call"), WAIT, |p| p.contains("\"ok\""))
        .await;
    probe.wait_message(&t("in_call"), WAIT, |p| p == "ON").await;
    probe
        .wait_message(&t("event/newParticipantInConference"), WAIT, |p| {
            p.contains("Bob Smith")
        })
        .await;
    probe
        .wait_message(&t("event/incomingChatMessage"), WAIT, |_| true)
        .await;
    probe
        .wait_message(&t("mic_muted"), WAIT, |p| p == "ON")
        .await;
    probe
        .wait_message(&t("in_call"), WAIT, |p| p == "OFF")
        .await;
    probe
        .wait_message(&t("event/stopCalling"), WAIT, |_| true)
        .await;

    // Graceful stop: the Room and the bridge go offline on the broker.
    probe.clear();
    common::within(Duration::from_secs(10), "demo stops", demo.stop()).await;
    probe
        .wait_message(&t("availability"), Duration::from_secs(5), |p| {
            p == "offline"
        })
        .await;
    probe
        .wait_message("trueconf/bridge/state", Duration::from_secs(5), |p| {
            p == "offline"
        })
        .await;
}

#[tokio::test(flavor = "multi_thread", worker_threads = 4)]
async fn an_external_broker_can_be_used() {
    let broker = Broker::start();
    let demo = start_demo(options(BrokerChoice::External {
        host: "127.0.0.1".into(),
        port: broker.port,
    }))
    .await
    .expect("demo starts against mosquitto");
    assert!(!demo.embedded_broker);
    assert_eq!(demo.broker_port, broker.port);
    let probe = Probe::connect(broker.port, &["trueconf/#"]).await;
    probe
        .wait_value("trueconf/demo-room/availability", "online", WAIT)
        .await;
    probe
        .wait_message("trueconf/demo-room/ringing", WAIT, |p| p == "ON")
        .await;
    common::within(Duration::from_secs(15), "demo stops", demo.stop()).await;

    // The broker is as it was: a fresh subscriber finds none of the demo's retained topics.
    let after = Probe::connect(broker.port, &["trueconf/#", "homeassistant/#"]).await;
    tokio::time::sleep(Duration::from_millis(500)).await;
    let left: Vec<String> = after
        .messages()
        .into_iter()
        .filter(|m| m.retain && !m.payload.is_empty())
        .map(|m| format!("{} {}", m.topic, m.payload))
        .collect();
    assert!(left.is_empty(), "retained topics left behind: {left:?}");
}

#[tokio::test]
async fn an_unreachable_broker_is_reported() {
    let port = common::free_port();
    let mut options = options(BrokerChoice::External {
        host: "127.0.0.1".into(),
        port,
    });
    options.ready_timeout = Duration::from_secs(1);
    let error = start_demo(options).await.err().expect("must fail");
    assert!(
        error.contains(&format!("no MQTT broker answered at 127.0.0.1:{port}")),
        "{error}"
    );
}

#[tokio::test]
async fn a_taken_listen_port_is_reported() {
    let taken = std::net::TcpListener::bind("127.0.0.1:0").unwrap();
    let listen = taken.local_addr().unwrap();
    let mut options = options(BrokerChoice::Embedded { listen });
    options.ready_timeout = Duration::from_secs(3);
    let error = start_demo(options).await.err().expect("must fail");
    assert!(
        error.contains("cannot listen on") && error.contains(&listen.to_string()),
        "{error}"
    );
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn another_broker_on_the_listen_port_is_never_written_to() {
    // Debian's mosquitto on 1883, then `demo --listen 127.0.0.1:1883`: an error, and not one
    // retained topic in that broker.
    let broker = Broker::start();
    let listen: SocketAddr = format!("127.0.0.1:{}", broker.port).parse().unwrap();
    let mut options = options(BrokerChoice::Embedded { listen });
    options.ready_timeout = Duration::from_secs(3);
    let error = start_demo(options).await.err().expect("must fail");
    assert!(
        error.contains("cannot listen on") && error.contains("--broker"),
        "{error}"
    );
    let probe = Probe::connect(broker.port, &["#"]).await;
    tokio::time::sleep(Duration::from_millis(500)).await;
    assert!(probe.messages().is_empty(), "{:?}", probe.messages().len());
}
