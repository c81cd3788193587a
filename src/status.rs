//! `trueconf2mqtt status`: each room's state, read from the broker's retained messages.

use std::collections::BTreeMap;
use std::time::Duration;

use rumqttc::QoS;
use serde_json::Value;

use crate::mqtt::client::{self, Polled};
use crate::mqtt::{LinkOptions, Topics};

/// What the broker holds about the bridge and its rooms.
#[derive(Debug, Default)]
pub struct Snapshot {
    /// The bridge instance read (`mqtt.instance`), when set.
    pub instance: Option<String>,
    /// `bridge/state` (or `bridge/<instance>/state`).
    pub bridge: Option<String>,
    /// Room id → availability.
    pub availability: BTreeMap<String, String>,
    /// Room id → state document.
    pub state: BTreeMap<String, Value>,
}

/// Connects to the broker as the bridge would (address, credentials, MQTT version and TLS from
/// `options`), reads the retained topics of `topics`, and returns once nothing new arrived for
/// a moment (at most `timeout`).
///
/// The session is our own: a random client id, a clean session and no last will, so reading
/// never takes over the bridge's session nor leaves anything behind on the broker.
pub async fn read(
    options: LinkOptions,
    topics: &Topics,
    timeout: Duration,
) -> Result<Snapshot, String> {
    let options = LinkOptions {
        client_id: format!("trueconf2mqtt-status-{}", fastrand::u32(..)),
        clean_session: true,
        will_topic: String::new(),
        keepalive: Duration::from_secs(10),
        max_incoming_packet: 4 << 20,
        ..options
    };
    let broker = format!("{}:{}", options.host, options.port);
    let (client, mut eventloop) = client::build(&options, 16);
    let base = topics.base();
    let bridge_state = topics.bridge_state();
    for filter in [
        bridge_state.clone(),
        format!("{base}/+/availability"),
        format!("{base}/+"),
    ] {
        client
            .try_subscribe(&filter, QoS::AtMostOnce)
            .map_err(|_| "cannot queue the subscriptions".to_owned())?;
    }
    let mut snapshot = Snapshot {
        instance: topics.instance().map(str::to_owned),
        ..Snapshot::default()
    };
    let deadline = tokio::time::Instant::now() + timeout;
    let mut quiet_until: Option<tokio::time::Instant> = None;
    loop {
        let wait_until = quiet_until.map_or(deadline, |q| q.min(deadline));
        let polled = match tokio::time::timeout_at(wait_until, eventloop.poll()).await {
            Err(_) if quiet_until.is_some() => break,
            Err(_) => return Err(format!("no answer from the broker at {broker}")),
            Ok(Err(e)) => return Err(poll_error(&broker, &options, &e.message, e.refused)),
            Ok(Ok(polled)) => polled,
        };
        let inbound = match polled {
            Polled::SubAck => {
                quiet_until = Some(tokio::time::Instant::now() + Duration::from_millis(300));
                continue;
            }
            Polled::Publish(inbound) => inbound,
            _ => continue,
        };
        quiet_until = Some(tokio::time::Instant::now() + Duration::from_millis(300));
        let payload = String::from_utf8_lossy(&inbound.payload).into_owned();
        if inbound.topic == bridge_state {
            snapshot.bridge = Some(payload);
            continue;
        }
        let rest = inbound
            .topic
            .strip_prefix(base)
            .and_then(|r| r.strip_prefix('/'))
            .unwrap_or("");
        match rest.split('/').collect::<Vec<_>>().as_slice() {
            ["bridge", ..] => {}
            [room, "availability"] => {
                snapshot.availability.insert((*room).to_owned(), payload);
            }
            [room] => {
                if let Ok(value) = serde_json::from_str(&payload) {
                    snapshot.state.insert((*room).to_owned(), value);
                }
            }
            _ => {}
        }
    }
    let _ = client.try_disconnect();
    Ok(snapshot)
}

/// A connection failure in words, with what to check. rumqttc's messages name the cause
/// (refusal code, TLS alert, certificate problem) and never the credentials.
fn poll_error(broker: &str, options: &LinkOptions, message: &str, refused: bool) -> String {
    let lower = message.to_lowercase();
    if refused {
        let hint = if options.credentials.is_some() {
            "check mqtt.username and mqtt.password"
        } else {
            "the broker may need mqtt.username and mqtt.password"
        };
        format!("broker {broker} refused the connection: {message} ({hint})")
    } else if options.tls.is_some() && (lower.contains("tls") || lower.contains("certificate")) {
        format!(
            "TLS with broker {broker} failed: {message} (check mqtt.tls.ca_file: the CA that \
             signed the broker's certificate for mqtt.host; cert_file and key_file if the broker \
             asks for a client certificate)"
        )
    } else {
        format!("broker {broker}: {message}")
    }
}

/// The snapshot as a table for people.
pub fn table(snapshot: &Snapshot) -> String {
    let mut rooms: Vec<&String> = snapshot
        .availability
        .keys()
        .chain(snapshot.state.keys())
        .collect();
    rooms.sort();
    rooms.dedup();
    let text = |v: &Value, key: &str| -> String {
        match v.get(key) {
            Some(Value::Bool(true)) => "ON".into(),
            Some(Value::Bool(false)) => "OFF".into(),
            Some(Value::String(s)) if s.is_empty() => "-".into(),
            Some(Value::String(s)) => s.clone(),
            Some(other) => other.to_string(),
            None => "-".into(),
        }
    };
    let header = [
        "ROOM",
        "AVAILABILITY",
        "APP STATE",
        "IN CALL",
        "MIC MUTED",
        "CAMERA MUTED",
        "PARTICIPANTS",
        "CALLER",
    ];
    let mut rows = vec![header.iter().map(|s| s.to_string()).collect::<Vec<_>>()];
    for room in rooms {
        let state = snapshot.state.get(room).cloned().unwrap_or(Value::Null);
        rows.push(vec![
            room.clone(),
            snapshot
                .availability
                .get(room)
                .cloned()
                .unwrap_or_else(|| "-".into()),
            text(&state, "app_state"),
            text(&state, "in_call"),
            text(&state, "mic_muted"),
            text(&state, "camera_muted"),
            text(&state, "participant_count"),
            text(&state, "caller"),
        ]);
    }
    let widths: Vec<usize> = (0..header.len())
        .map(|i| rows.iter().map(|r| r[i].chars().count()).max().unwrap_or(0))
        .collect();
    let mut out = match &snapshot.instance {
        None => format!(
            "bridge: {}\n",
            snapshot
                .bridge
                .as_deref()
                .unwrap_or("unknown (no retained bridge/state)")
        ),
        Some(instance) => format!(
            "bridge {instance}: {}\n",
            snapshot.bridge.as_deref().map_or_else(
                || format!("unknown (no retained bridge/{instance}/state)"),
                str::to_owned
            )
        ),
    };
    for row in rows {
        let line: Vec<String> = row
            .iter()
            .zip(&widths)
            .map(|(cell, width)| format!("{cell:<width$}"))
            .collect();
        out.push_str(line.join("  ").trim_end());
        out.push('\n');
    }
    out
}
