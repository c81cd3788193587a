//! Command payloads that are valid but unusual (issue 12): the bridge's own parse and response
//! path, through the public API the daemon uses.

mod common;

use serde_json::Value;
use std::time::Duration;
use trueconf2mqtt::bridge::command::{CommandError, parse_request, parse_set, response};

use tokio_util::sync::CancellationToken;
use trueconf2mqtt::bridge::{self, BridgeOptions, RoomEntry};
use trueconf2mqtt::mqtt::LinkOptions;
use trueconf2mqtt::room::limiter::MAX_FAILURES;
use trueconf2mqtt::simulator::{SimConfig, SimRoom};

use common::{
    Broker, Probe, room_entry, test_bridge_options, test_link_options, test_room_options, within,
};

/// Issue 12 case 11: a `transaction` is echoed as the caller wrote it, whatever number it is
/// (a big integer came back as `1.2345678901234568e+29`).
#[test]
fn a_transaction_comes_back_exactly_as_sent() {
    for text in [
        "123456789012345678901234567890",
        "-98765432109876543210987654321",
        "18446744073709551616",
        "0.1000000000000000055511151231257827",
        "-0",
        "7",
        "\"t-1\"",
        "{\"id\":123456789012345678901234567890,\"n\":[1.50]}",
    ] {
        let set = format!(r#"{{"mic_muted":true,"transaction":{text}}}"#);
        let command = parse_set(&set).unwrap();
        let echoed = response(Ok(Value::Null), command.transaction).to_string();
        assert!(
            echoed.ends_with(&format!(r#""transaction":{text}}}"#)),
            "sent {text}, got {echoed}"
        );
        // Refused commands echo it too.
        let request = format!(r#"{{"mute":"yes","transaction":{text}}}"#);
        let command = parse_request("setMicMute", &request).unwrap();
        let echoed = response(Err(CommandError::EmptySet), command.transaction).to_string();
        assert!(
            echoed.contains(&format!(r#""transaction":{text}"#)),
            "{echoed}"
        );
    }
}

const WAIT: Duration = Duration::from_secs(15);
const PIN: &str = "4321";

/// A bridge for one room `boardroom` with `allow_dangerous`, a simulated Room and a probe.
async fn bridge_with(allow_dangerous: &[&str]) -> (Broker, SimRoom, Probe, CancellationToken) {
    let broker = Broker::start();
    let room = SimRoom::start(SimConfig {
        pin: Some(PIN.into()),
        ..SimConfig::default()
    })
    .await
    .unwrap();
    let probe = Probe::connect(broker.port, &["trueconf/#"]).await;
    let mqtt = LinkOptions {
        ..test_link_options(broker.port, "hostile-commands")
    };
    let entry = RoomEntry {
        allow_dangerous: allow_dangerous.iter().map(|m| (*m).to_owned()).collect(),
        ..room_entry(
            "boardroom",
            "Boardroom",
            test_room_options(room.http_port()).with_pin(PIN),
        )
    };
    let options: BridgeOptions = test_bridge_options(mqtt, vec![entry]);
    let shutdown = CancellationToken::new();
    let (_bridge, _tasks) = bridge::start(options, shutdown.clone());
    probe
        .wait_value("trueconf/boardroom/availability", "online", WAIT)
        .await;
    (broker, room, probe, shutdown)
}

/// Publishes `payload` to `request/<method>` and returns the response.
async fn request(probe: &Probe, method: &str, payload: &str) -> Value {
    let topic = format!("trueconf/boardroom/response/{method}");
    let before = probe.on(&topic).len();
    probe
        .publish(&format!("trueconf/boardroom/request/{method}"), payload)
        .await;
    within(WAIT, &topic, async {
        loop {
            let all = probe.on(&topic);
            if all.len() > before {
                return serde_json::from_str(&all[before].payload).expect("JSON response");
            }
            tokio::time::sleep(Duration::from_millis(5)).await;
        }
    })
    .await
}

fn auths_received(room: &SimRoom) -> usize {
    room.requests_received()
        .iter()
        .filter(|r| r["method"] == "auth")
        .count()
}

/// Issue 12 case 4: `request/auth` was a PIN oracle for anyone allowed to publish commands.
/// Methods that carry, reveal or check a secret are dangerous: refused unless allowed.
#[tokio::test]
async fn auth_and_methods_carrying_secrets_are_refused_unless_allowed() {
    let (_broker, room, probe, shutdown) = bridge_with(&[]).await;
    let own = auths_received(&room);
    for (method, payload) in [
        ("auth", r#"{"type":"secured","credentials":"0000"}"#),
        (
            "setAuthParams",
            r#"{"userType":"user","authType":"unsecured"}"#,
        ),
        ("checkFileTransferPIN", r#"{"pin":"0000"}"#),
        ("getFileTransferPIN", "{}"),
        ("getTokenForHttpServer", "{}"),
        ("getWebManagerUrl", "{}"),
    ] {
        let r = request(&probe, method, payload).await;
        assert_eq!(r["status"], "error", "{method}: {r}");
        assert!(
            r["error"].as_str().unwrap().contains("allow_dangerous"),
            "{method}: {r}"
        );
    }
    assert_eq!(auths_received(&room), own, "no guess reached the Room");
    shutdown.cancel();
}

/// Even where `auth` is allowed, failed credential checks are rate-limited per room: at most
/// `MAX_FAILURES` per minute reach the Room, the rest are refused at once.
#[tokio::test]
async fn failed_auth_replies_are_rate_limited_even_when_allowed() {
    let (_broker, room, probe, shutdown) = bridge_with(&["auth"]).await;
    let own = auths_received(&room);
    let mut limited = 0;
    for guess in 0..20 {
        let payload = format!(r#"{{"type":"secured","credentials":"{guess:04}"}}"#);
        let r = request(&probe, "auth", &payload).await;
        assert_eq!(r["status"], "error", "{r}");
        if r["error"]
            .as_str()
            .unwrap()
            .contains("too many failed auth attempts")
        {
            limited += 1;
        }
    }
    assert_eq!(limited, 20 - MAX_FAILURES);
    assert_eq!(
        auths_received(&room) - own,
        MAX_FAILURES,
        "guesses that reached the Room"
    );
    shutdown.cancel();
}
