//! `trueconf2mqtt status`: each room's state, read from the broker's retained messages.

use std::collections::BTreeMap;
use std::time::Duration;

use rumqttc::{AsyncClient, Event, MqttOptions, Packet, QoS};
use serde_json::Value;

/// What the broker holds about the bridge and its rooms.
#[derive(Debug, Default)]
pub struct Snapshot {
    /// `bridge/state`.
    pub bridge: Option<String>,
    /// Room id → availability.
    pub availability: BTreeMap<String, String>,
    /// Room id → state document.
    pub state: BTreeMap<String, Value>,
}

/// Connects to the broker, reads the retained topics under `base`, and returns once nothing new
/// arrived for a moment (at most `timeout`).
pub async fn read(
    host: &str,
    port: u16,
    credentials: Option<(String, String)>,
    base: &str,
    timeout: Duration,
) -> Result<Snapshot, String> {
    let mut options = MqttOptions::new(
        format!("trueconf2mqtt-status-{}", fastrand::u32(..)),
        host,
        port,
    );
    options.set_keep_alive(Duration::from_secs(10));
    options.set_max_packet_size(4 << 20, 64 << 10);
    if let Some((user, password)) = credentials {
        options.set_credentials(user, password);
    }
    let (client, mut eventloop) = AsyncClient::new(options, 16);
    for filter in [
        format!("{base}/bridge/state"),
        format!("{base}/+/availability"),
        format!("{base}/+"),
    ] {
        client
            .try_subscribe(filter, QoS::AtMostOnce)
            .map_err(|e| e.to_string())?;
    }
    let mut snapshot = Snapshot::default();
    let deadline = tokio::time::Instant::now() + timeout;
    let mut quiet_until: Option<tokio::time::Instant> = None;
    loop {
        let wait_until = quiet_until.map_or(deadline, |q| q.min(deadline));
        let event = match tokio::time::timeout_at(wait_until, eventloop.poll()).await {
            Err(_) if quiet_until.is_some() => break,
            Err(_) => return Err(format!("no answer from the broker at {host}:{port}")),
            Ok(Err(e)) => return Err(format!("broker {host}:{port}: {e}")),
            Ok(Ok(event)) => event,
        };
        match event {
            Event::Incoming(Packet::SubAck(_)) => {
                quiet_until = Some(tokio::time::Instant::now() + Duration::from_millis(300));
            }
            Event::Incoming(Packet::Publish(p)) => {
                quiet_until = Some(tokio::time::Instant::now() + Duration::from_millis(300));
                let payload = String::from_utf8_lossy(&p.payload).into_owned();
                let rest = p
                    .topic
                    .strip_prefix(base)
                    .and_then(|r| r.strip_prefix('/'))
                    .unwrap_or("");
                match rest.split('/').collect::<Vec<_>>().as_slice() {
                    ["bridge", "state"] => snapshot.bridge = Some(payload),
                    ["bridge"] => {}
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
            _ => {}
        }
    }
    let _ = client.try_disconnect();
    Ok(snapshot)
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
    let mut out = format!(
        "bridge: {}\n",
        snapshot
            .bridge
            .as_deref()
            .unwrap_or("unknown (no retained bridge/state)")
    );
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
