//! `trueconf2mqtt status`: each room's state, read from the broker's retained messages.

use std::collections::BTreeMap;
use std::time::Duration;

use serde_json::Value;

use crate::mqtt::{LinkOptions, read_retained};
use crate::surface::Topics;
use crate::surface::fields::STATUS_COLUMNS;

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
/// `options`), reads the retained topics of `topics` and returns once nothing new arrived for a
/// moment (at most `timeout`). See [`read_retained`] for the session it uses.
pub async fn read(
    options: LinkOptions,
    topics: &Topics,
    timeout: Duration,
) -> Result<Snapshot, String> {
    let options = LinkOptions {
        client_id: "trueconf2mqtt".into(),
        ..options
    };
    let retained = read_from_any_node(&options, &topics.status_filters(), timeout).await?;
    let mut snapshot = Snapshot {
        instance: topics.instance().map(str::to_owned),
        ..Snapshot::default()
    };
    let bridge_state = topics.bridge_state();
    for message in retained {
        let payload = String::from_utf8_lossy(&message.payload).into_owned();
        if message.topic == bridge_state {
            snapshot.bridge = Some(payload);
            continue;
        }
        match topics.parse_room_topic(&message.topic) {
            Some((room, Some("availability"))) => {
                snapshot.availability.insert(room.to_owned(), payload);
            }
            Some((room, None)) => {
                if let Ok(value) = serde_json::from_str(&payload) {
                    snapshot.state.insert(room.to_owned(), value);
                }
            }
            _ => {}
        }
    }
    Ok(snapshot)
}

/// Reads the retained state from the first broker node that answers: `mqtt.host`, then each
/// further node of `mqtt.hosts` (the nodes of a cluster share retained messages). The error names
/// every node tried.
async fn read_from_any_node(
    options: &LinkOptions,
    filters: &[String],
    timeout: Duration,
) -> Result<Vec<crate::mqtt::Inbound>, String> {
    let nodes = std::iter::once((options.host.clone(), options.port))
        .chain(options.failover.iter().cloned())
        .collect::<Vec<_>>();
    let mut errors = Vec::new();
    for (host, port) in &nodes {
        let node = LinkOptions {
            host: host.clone(),
            port: *port,
            failover: Vec::new(),
            ..options.clone()
        };
        match read_retained(&node, "status", filters, timeout).await {
            Ok(retained) => return Ok(retained),
            Err(e) if nodes.len() == 1 => return Err(e),
            Err(e) => errors.push(e),
        }
    }
    Err(format!(
        "no broker node answered:\n  {}",
        errors.join("\n  ")
    ))
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
    let mut header = vec!["ROOM", "AVAILABILITY"];
    header.extend(STATUS_COLUMNS.iter().map(|(_, title)| *title));
    let mut rows = vec![header.iter().map(|s| s.to_string()).collect::<Vec<_>>()];
    for room in rooms {
        let state = snapshot.state.get(room).cloned().unwrap_or(Value::Null);
        let availability = snapshot.availability.get(room).cloned();
        let mut row = vec![room.clone(), availability.unwrap_or_else(|| "-".into())];
        row.extend(STATUS_COLUMNS.iter().map(|(field, _)| text(&state, field)));
        rows.push(row);
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
