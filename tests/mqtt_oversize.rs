//! A publish larger than `mqtt.max_payload_bytes` allows, sent QoS 1 to a command topic of a
//! bridge with a persistent session (issue 12, case 2): it is refused without losing the
//! session. The link stays up, the next command gets its response, and a restarted bridge does
//! not receive it again. On MQTT 3.1.1 rumqttc reads past it and acknowledges it (counted as
//! oversized); on MQTT 5 the broker knows our Maximum Packet Size and never sends it.

mod common;

use std::process::{Command, Stdio};
use std::sync::atomic::Ordering;
use std::time::Duration;

use trueconf2mqtt::mqtt::{LinkOptions, Version, incoming_packet_limit};
use trueconf2mqtt::simulator::{SimConfig, SimRoom};

use common::{
    Broker, Probe, Running, room_entry, test_bridge_options, test_link_options, test_room_options,
    wait_until, within,
};

const WAIT: Duration = Duration::from_secs(15);
const ROOM: &str = "boardroom";
/// Over mosquitto's default limits for nothing, and over 16 MiB as in the report.
const BIG: usize = 17_000_000;

fn t(suffix: &str) -> String {
    format!("trueconf/{ROOM}/{suffix}")
}

/// Publishes `size` bytes QoS 1 to `topic` with `mosquitto_pub`, as an operator would.
async fn publish_big(port: u16, topic: &str, size: usize) {
    let dir = tempfile::tempdir().unwrap();
    let file = dir.path().join("big");
    std::fs::write(&file, vec![b'a'; size]).unwrap();
    let mut child = tokio::process::Command::new("mosquitto_pub")
        .args([
            "-h",
            "127.0.0.1",
            "-p",
            &port.to_string(),
            "-q",
            "1",
            "-t",
            topic,
            "-f",
        ])
        .arg(&file)
        .stdout(Stdio::null())
        .stderr(Stdio::piped())
        .kill_on_drop(true)
        .spawn()
        .expect("mosquitto_pub is not installed: apt-get install -y mosquitto-clients");
    let status = within(WAIT, "mosquitto_pub", child.wait()).await.unwrap();
    assert!(status.success(), "mosquitto_pub failed");
}

/// Sends `payload` to `set/mic_muted` and waits for the response after the `before`-th.
async fn command(probe: &Probe, payload: &str) -> String {
    let before = probe.on(&t("response/mic_muted")).len();
    probe.publish(&t("set/mic_muted"), payload).await;
    wait_until(WAIT, "the command's response", || {
        probe.on(&t("response/mic_muted")).len() > before
    })
    .await;
    probe.on(&t("response/mic_muted"))[before].payload.clone()
}

async fn oversized_command_is_refused_without_losing_the_session(version: Version) {
    assert!(
        Command::new("mosquitto_pub").arg("--help").output().is_ok(),
        "mosquitto_pub is not installed: apt-get install -y mosquitto-clients"
    );
    let broker = Broker::start();
    let room = SimRoom::start(SimConfig::default()).await.unwrap();
    let mut options = test_bridge_options(
        LinkOptions {
            version,
            ..test_link_options(broker.port, "oversize")
        },
        vec![room_entry(
            ROOM,
            "Boardroom",
            test_room_options(room.http_port()),
        )],
    );
    options.mqtt.max_incoming_packet = incoming_packet_limit(options.max_payload_bytes);
    assert!(!options.mqtt.clean_session, "a persistent session");
    let probe = Probe::connect(
        broker.port,
        &[&t("availability"), &t("response/#"), &t("mic_muted")],
    )
    .await;

    let mut bridge = Running::start(options.clone());
    probe.wait_value(&t("availability"), "online", WAIT).await;
    let stats = |bridge: &Running, what: &str| {
        let s = bridge.bridge.link().stats();
        match what {
            "connects" => s.connects.load(Ordering::Relaxed),
            _ => s.inbound_oversized.load(Ordering::Relaxed),
        }
    };

    publish_big(broker.port, &t("set/mic_muted"), BIG).await;
    if version == Version::V311 {
        wait_until(WAIT, "the oversized publish counted", || {
            stats(&bridge, "oversized") == 1
        })
        .await;
    }
    // Still the first connection, and the next command is answered.
    let response = command(&probe, "ON").await;
    assert!(response.contains("\"status\":\"ok\""), "{response}");
    probe.wait_value(&t("mic_muted"), "ON", WAIT).await;
    assert!(bridge.bridge.link().is_connected());
    assert_eq!(stats(&bridge, "connects"), 1, "the link was dropped");
    if version == Version::V5 {
        assert_eq!(
            stats(&bridge, "oversized"),
            0,
            "the broker sent it despite our Maximum Packet Size"
        );
    }

    // A restart resumes the session: the big message is not delivered again (it would come
    // before this command, which the broker queues behind it).
    bridge.stop().await;
    let bridge = Running::start(options);
    wait_until(WAIT, "the restarted bridge connects", || {
        bridge.bridge.link().is_connected()
    })
    .await;
    let response = command(&probe, "OFF").await;
    assert!(response.contains("\"status\":\"ok\""), "{response}");
    probe.wait_value(&t("mic_muted"), "OFF", WAIT).await;
    assert_eq!(stats(&bridge, "oversized"), 0, "delivered again");
    assert_eq!(stats(&bridge, "connects"), 1, "the link was dropped");
    assert!(bridge.bridge.link().is_connected());
}

#[tokio::test]
async fn an_oversized_command_is_refused_without_losing_the_session_on_mqtt_3_1_1() {
    oversized_command_is_refused_without_losing_the_session(Version::V311).await;
}

#[tokio::test]
async fn an_oversized_command_is_refused_without_losing_the_session_on_mqtt_5() {
    oversized_command_is_refused_without_losing_the_session(Version::V5).await;
}
