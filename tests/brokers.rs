//! The broker compatibility matrix: the bridge's core behaviour against mosquitto, rumqttd,
//! RabbitMQ's MQTT plugin and NATS's MQTT, each a private instance on free 127.0.0.1 ports
//! (see `common::brokers`). Every broker runs the same checks in one session, in order: state
//! and plain topics, events, commands with exactly one response, Home Assistant's birth
//! message replaying discovery, the last will when the bridge's TCP link is cut, a restart of
//! the broker with nothing retained (everything republished), and MQTT 5 where the broker does
//! not speak it (an error that says to set `mqtt.version = "3.1.1"`; attempts stay
//! spaced by the backoff).

mod common;

use std::time::{Duration, Instant};

use serde_json::Value;
use trueconf2mqtt::bridge::BridgeOptions;
use trueconf2mqtt::mqtt::{LinkOptions, Version};
use trueconf2mqtt::simulator::{SimConfig, SimRoom};

use common::brokers::{AnyBroker, Kind, RabbitCluster, serve_rumqttd_if_asked};
use common::{
    Probe, Proxy, Running, room_entry, test_bridge_options, test_link_options, test_room_options,
    wait_until, within,
};

/// Generous bound for anything the bridge does after a change (a few ms when idle; the
/// brokers share two loaded cores with the rest of the suite).
const WAIT: Duration = Duration::from_secs(20);
const ROOM: &str = "boardroom";
const MIC_CONFIG: &str = "homeassistant/switch/trueconf2mqtt_boardroom/mic_muted/config";

fn t(suffix: &str) -> String {
    format!("trueconf/{ROOM}/{suffix}")
}

/// Not a test of its own: the child process that [`common::brokers::Rumqttd`] starts.
#[test]
fn rumqttd_broker_process() {
    // In the normal run this returns false at once; in the child it serves until killed.
    assert!(!serve_rumqttd_if_asked());
}

fn options(port: u16, room: &SimRoom, version: Version) -> BridgeOptions {
    let mqtt = LinkOptions {
        version,
        ..test_link_options(port, "t2m-matrix")
    };
    test_bridge_options(
        mqtt,
        vec![room_entry(
            ROOM,
            "Boardroom",
            test_room_options(room.http_port()),
        )],
    )
}

/// Sends `payload` to `trueconf/<room>/<topic>` and returns the one response on
/// `response/<name>`.
async fn command(probe: &Probe, topic: &str, payload: &str, name: &str) -> Value {
    let response_topic = t(&format!("response/{name}"));
    let before = probe.on(&response_topic).len();
    probe.publish(&t(topic), payload).await;
    within(WAIT, &format!("a response on {response_topic}"), async {
        loop {
            let all = probe.on(&response_topic);
            if all.len() > before {
                return serde_json::from_str(&all[before].payload).expect("response is JSON");
            }
            tokio::time::sleep(Duration::from_millis(10)).await;
        }
    })
    .await
}

async fn matrix(kind: Kind) {
    if kind.skipped() {
        return;
    }
    let started = Instant::now();
    let mut broker = tokio::task::block_in_place(|| AnyBroker::start(kind));
    let booted = started.elapsed();
    let port = broker.port();
    let room = SimRoom::start(SimConfig::default()).await.unwrap();
    let probe = Probe::connect(port, &["trueconf/#", "homeassistant/#"]).await;
    // The bridge reaches the broker through a proxy the test can cut (for the last will).
    let proxy = Proxy::start(port).await;
    let mut bridge = Running::start(options(proxy.port, &room, Version::V311));

    // State and plain topics, discovery.
    probe.wait_value(&t("availability"), "online", WAIT).await;
    probe
        .wait_value("trueconf/bridge/state", "online", WAIT)
        .await;
    probe.wait_value(&t("app_state"), "normal", WAIT).await;
    probe.wait_value(&t("mic_muted"), "OFF", WAIT).await;
    // The JSON state follows the plain topics; the latest one settles on the same values.
    let state = probe
        .wait_latest(&format!("trueconf/{ROOM}"), WAIT, |p| {
            serde_json::from_str::<Value>(p)
                .is_ok_and(|v| v["app_state"] == "normal" && v["cameras"].is_array())
        })
        .await;
    let state: Value = serde_json::from_str(&state).unwrap();
    assert!(
        state["cameras"].as_array().unwrap().len() >= 2,
        "{kind:?}: {state}"
    );
    probe.wait_latest(MIC_CONFIG, WAIT, |p| !p.is_empty()).await;

    // Events.
    room.incoming_call("bob@sim.trueconf.local", "Bob").unwrap();
    probe.wait_value(&t("ringing"), "ON", WAIT).await;
    let invite = probe
        .wait_message(&t("event/inviteReceived"), WAIT, |_| true)
        .await;
    assert!(!invite.retain, "{kind:?}: events are not retained");
    room.caller_gives_up().unwrap();

    // Commands, each with exactly one response.
    let r = command(&probe, "set/mic_muted", "ON", "mic_muted").await;
    assert_eq!(r["status"], "ok", "{kind:?}: {r}");
    probe.wait_value(&t("mic_muted"), "ON", WAIT).await;
    assert!(room.snapshot().mic_muted);
    let r = command(&probe, "request/getAppState", "{}", "getAppState").await;
    assert_eq!(r["status"], "ok", "{kind:?}: {r}");
    assert_eq!(
        probe.on(&t("response/mic_muted")).len(),
        1,
        "{kind:?}: one command, one response"
    );

    // Home Assistant's birth message replays discovery and state (on RabbitMQ this is how HA's
    // wildcard subscription gets discovery at all: retained messages do not reach it there).
    let configs = probe.on(MIC_CONFIG).len();
    let states = probe.on(&t("mic_muted")).len();
    probe.publish("homeassistant/status", "online").await;
    wait_until(WAIT, "discovery and state replayed", || {
        probe.on(MIC_CONFIG).len() > configs && probe.on(&t("mic_muted")).len() > states
    })
    .await;

    // Last will: the bridge's TCP link dies without DISCONNECT; the broker says offline.
    proxy.cut();
    probe
        .wait_value("trueconf/bridge/state", "offline", WAIT)
        .await;
    proxy.restore();
    probe
        .wait_value("trueconf/bridge/state", "online", WAIT)
        .await;

    // The broker restarts with nothing retained and no sessions: the bridge republishes its
    // whole retained set. A subscriber to exact topics (retained messages reach those on
    // every broker of the matrix) that connects afterwards sees it.
    let restart = Instant::now();
    tokio::task::block_in_place(|| broker.restart_fresh());
    let restarted = restart.elapsed();
    let late = Probe::connect(
        port,
        &[
            &t("availability"),
            &t("mic_muted"),
            "trueconf/bridge/state",
            MIC_CONFIG,
        ],
    )
    .await;
    late.wait_value(&t("availability"), "online", WAIT).await;
    late.wait_value(&t("mic_muted"), "ON", WAIT).await;
    late.wait_value("trueconf/bridge/state", "online", WAIT)
        .await;
    late.wait_latest(MIC_CONFIG, WAIT, |p| !p.is_empty()).await;
    if kind.retained_to_wildcards() {
        let wildcard = Probe::connect(port, &["trueconf/#"]).await;
        wildcard
            .wait_value(&t("availability"), "online", WAIT)
            .await;
    }
    // Commands work again (the bridge subscribed again on the fresh broker).
    let responses = Probe::connect(port, &[&t("response/#")]).await;
    let r = command(&responses, "set/mic_muted", "OFF", "mic_muted").await;
    assert_eq!(r["status"], "ok", "{kind:?}: {r}");
    wait_until(WAIT, "the room unmuted", || !room.snapshot().mic_muted).await;
    bridge.stop().await;

    // MQTT 5 where the broker has no MQTT 5: a clear error, attempts spaced by the backoff.
    if !kind.supports_v5() {
        let mut v5 = Running::start(options(port, &room, Version::V5));
        let error = || {
            v5.bridge
                .link()
                .stats()
                .last_error
                .lock()
                .unwrap()
                .clone()
                .unwrap_or_default()
        };
        wait_until(WAIT, "an MQTT 5 refusal", || !error().is_empty()).await;
        assert!(
            error().contains("does not support MQTT 5") && error().contains("3.1.1"),
            "{kind:?}: {}",
            error()
        );
        assert!(!v5.bridge.link().is_connected(), "{kind:?}");
        v5.stop().await;
    }
    eprintln!(
        "{kind:?}: boot {booted:?}, restart {restarted:?}, whole run {:?}",
        started.elapsed()
    );
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn mosquitto() {
    matrix(Kind::Mosquitto).await;
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn rumqttd() {
    matrix(Kind::Rumqttd).await;
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn rabbitmq() {
    matrix(Kind::RabbitMq).await;
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn nats() {
    matrix(Kind::Nats).await;
}

/// `mqtt.hosts` with independent brokers (two mosquittos): when the first dies the bridge
/// moves to the second within its backoff and publishes everything there; commands work.
#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn failover_to_the_next_listed_broker() {
    let mut first = common::Broker::start();
    let second = common::Broker::start();
    let room = SimRoom::start(SimConfig::default()).await.unwrap();
    let mut options = options(first.port, &room, Version::V311);
    options.mqtt.failover = vec![("127.0.0.1".to_owned(), second.port)];
    let mut bridge = Running::start(options);
    let on_first = Probe::connect(first.port, &["trueconf/#"]).await;
    on_first
        .wait_value(&t("availability"), "online", WAIT)
        .await;
    let on_second = Probe::connect(second.port, &["trueconf/#"]).await;
    let killed = Instant::now();
    first.kill();
    on_second
        .wait_value(&t("availability"), "online", WAIT)
        .await;
    on_second.wait_value(&t("mic_muted"), "OFF", WAIT).await;
    on_second
        .wait_value("trueconf/bridge/state", "online", WAIT)
        .await;
    let moved = killed.elapsed();
    let r = command(&on_second, "set/mic_muted", "ON", "mic_muted").await;
    assert_eq!(r["status"], "ok", "{r}");
    wait_until(WAIT, "the room muted", || room.snapshot().mic_muted).await;
    bridge.stop().await;
    eprintln!("failover to the second broker took {moved:?}");
}

/// `mqtt.hosts` on a three-node RabbitMQ cluster on this host: the node the bridge is on is
/// killed; the bridge moves to the next node within its backoff, republishes state and
/// availability there, and commands keep working. The probe sits on the third node, so it
/// sees the cluster's routing, not just one node.
#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn rabbitmq_cluster_failover() {
    if Kind::RabbitMq.skipped() {
        return;
    }
    let started = Instant::now();
    let mut cluster = tokio::task::block_in_place(|| RabbitCluster::start(3));
    let booted = started.elapsed();
    let ports: Vec<u16> = cluster.nodes.iter().map(|n| n.port).collect();
    let room = SimRoom::start(SimConfig::default()).await.unwrap();
    let probe = Probe::connect(ports[2], &["trueconf/#"]).await;
    let mut options = options(ports[0], &room, Version::V311);
    // RabbitMQ 3.10 keeps an MQTT session in a classic queue on the node the client first
    // connected to: with that node dead, every other node closes the connection right after
    // CONNACK (queue.declare: "home node … is down"), whatever the clean-session flag. Mirrored
    // session queues (a policy, as docs/scaling.md tells operators) survive the node.
    let policy = Instant::now();
    tokio::task::block_in_place(|| {
        cluster.ctl(&[
            "set_policy",
            "--apply-to",
            "queues",
            "mqtt-sessions",
            "^mqtt-subscription-",
            r#"{"ha-mode":"all","ha-sync-mode":"automatic"}"#,
        ])
    });
    eprintln!("policy set in {:?}", policy.elapsed());
    options.mqtt.failover = vec![
        ("127.0.0.1".to_owned(), ports[1]),
        ("127.0.0.1".to_owned(), ports[2]),
    ];
    let mut bridge = Running::start(options);
    probe.wait_value(&t("availability"), "online", WAIT).await;
    let r = command(&probe, "set/mic_muted", "ON", "mic_muted").await;
    assert_eq!(r["status"], "ok", "{r}");

    // The bridge's node dies; everything it published must come again through another node.
    probe.clear();
    let killed = Instant::now();
    tokio::task::block_in_place(|| cluster.kill(0));
    probe
        .wait_message(&t("availability"), WAIT, |p| p == "online")
        .await;
    probe
        .wait_message(&t("mic_muted"), WAIT, |p| p == "ON")
        .await;
    probe
        .wait_message("trueconf/bridge/state", WAIT, |p| p == "online")
        .await;
    let moved = killed.elapsed();
    assert!(bridge.bridge.link().is_connected());
    let r = command(&probe, "set/mic_muted", "OFF", "mic_muted").await;
    assert_eq!(r["status"], "ok", "{r}");
    wait_until(WAIT, "the room unmuted", || !room.snapshot().mic_muted).await;
    bridge.stop().await;
    eprintln!(
        "RabbitMQ cluster: boot {booted:?}, moved to another node {moved:?} after the kill, whole run {:?}",
        started.elapsed()
    );
}

/// Two instances on two RabbitMQ nodes would each see only their own retained room claim and
/// both serve the room: with `mqtt.instance` and `mqtt.hosts`, the daemon first checks that a
/// retained message published on one node is visible on the others, and refuses to start with
/// a clear error when it is not. On nodes that share retained messages the check passes.
#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn multi_instance_on_nodes_without_shared_retained_messages_is_refused() {
    // Shared retained messages (one mosquitto reached as two "nodes"): the check passes.
    let broker = common::Broker::start();
    let mut shared = test_link_options(broker.port, "t2m-replication");
    shared.failover = vec![("127.0.0.1".to_owned(), broker.port)];
    within(
        WAIT,
        "the replication check",
        trueconf2mqtt::mqtt::check_retained_shared(
            &shared,
            "trueconf/bridge/east/replication-check",
            trueconf2mqtt::mqtt::REPLICATION_BOUND,
        ),
    )
    .await
    .expect("one broker shares its retained messages with itself");

    if Kind::RabbitMq.skipped() {
        return;
    }
    let cluster = tokio::task::block_in_place(|| RabbitCluster::start(2));
    let room = SimRoom::start(SimConfig::default()).await.unwrap();
    let dir = tempfile::tempdir().unwrap();
    let config = dir.path().join("east.toml");
    std::fs::write(
        &config,
        format!(
            "[mqtt]\ninstance = \"east\"\nclient_id = \"t2m-east\"\nhosts = [\"127.0.0.1:{}\", \"127.0.0.1:{}\"]\n\n[[rooms]]\nid = \"{ROOM}\"\nhost = \"127.0.0.1\"\nport = {}\n",
            cluster.nodes[0].port,
            cluster.nodes[1].port,
            room.http_port()
        ),
    )
    .unwrap();
    let shutdown = tokio_util::sync::CancellationToken::new();
    let refused = within(
        WAIT,
        "the daemon's answer",
        trueconf2mqtt::app::run(Some(&config), shutdown.clone()),
    )
    .await;
    shutdown.cancel();
    let error = refused.expect_err("multi-instance mode on RabbitMQ nodes must be refused");
    assert!(
        error.contains("refusing multi-instance mode") && error.contains("do not share retained"),
        "{error}"
    );
    // Nothing was claimed: the refusal came before the bridge started.
    let claims = Probe::connect(cluster.nodes[0].port, &[&t("owner")]).await;
    tokio::time::sleep(Duration::from_millis(500)).await;
    assert!(claims.latest(&t("owner")).is_none_or(|p| p.is_empty()));
}
