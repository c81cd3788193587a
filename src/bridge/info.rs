//! `<base>/bridge[/<instance>]/info`: the retained document about this bridge and its rooms,
//! kept up to date with each room's link state and ownership.

use std::collections::HashMap;
use std::sync::Arc;

use serde_json::{Map, Value, json};
use tokio::sync::{mpsc, watch};
use tokio_util::sync::CancellationToken;

use super::Bridge;
use super::ownership::Ownership;
use super::room::LinkReport;
use crate::mqtt::Publish;
use crate::room::LinkState;
use crate::surface::Topics;

/// Publishes `bridge/info` on every link report or ownership change, until the reports end.
pub(super) async fn info_loop(
    bridge: Arc<Bridge>,
    topics: Topics,
    reports: &mut mpsc::Receiver<LinkReport>,
    ownership: &mut watch::Receiver<u64>,
    cancel: CancellationToken,
) {
    let mut states: HashMap<String, LinkState> = HashMap::new();
    let mut claims_running = true;
    loop {
        tokio::select! {
            report = reports.recv() => match report {
                Some(report) => {
                    states.insert(report.room, report.state);
                }
                None => break,
            },
            changed = ownership.changed(), if claims_running && !cancel.is_cancelled() => {
                // The claim task ended (the bridge stops): link reports still count.
                claims_running = changed.is_ok();
                if !claims_running {
                    continue;
                }
            }
        }
        while let Ok(report) = reports.try_recv() {
            states.insert(report.room, report.state);
        }
        if let Ok(mut links) = bridge.room_links.lock() {
            links.extend(states.iter().map(|(k, v)| (k.clone(), v.clone())));
        }
        bridge.changes.send_modify(|n| *n += 1);
        let info = document(&bridge, &states);
        bridge
            .link
            .publish(Publish::retained(topics.bridge_info(), info.to_string()));
    }
}

/// The stop sequence's last word: the rooms this instance owns `offline` and released (a
/// standby instance may take them over; rooms another instance serves are not ours to touch),
/// and a final retained `bridge/info` in which every room is `stopped`, so the retained document
/// never says `online` while `bridge/state` says `offline`. Runs after the info loop ended.
pub(super) fn publish_stopped(bridge: &Bridge, topics: &Topics) {
    for (id, room) in &bridge.rooms {
        if *room.ownership.borrow() != Ownership::Owned {
            continue;
        }
        bridge
            .link
            .publish(Publish::retained(topics.availability(id), "offline"));
        bridge.link.publish(Publish::retained(topics.owner(id), ""));
    }
    let states = bridge
        .rooms
        .keys()
        .map(|id| (id.clone(), LinkState::Stopped))
        .collect();
    let mut info = document(bridge, &states);
    if let Some(rooms) = info["rooms"].as_object_mut() {
        for room in rooms.values_mut() {
            room["state"] = json!(LinkState::Stopped.name());
            room["reason"] = json!(STOPPED_REASON);
        }
    }
    bridge
        .link
        .publish(Publish::retained(topics.bridge_info(), info.to_string()));
    bridge
        .link
        .publish(Publish::retained(topics.bridge_state(), "offline"));
}

/// `reason` of every room in the document published when the bridge stops.
const STOPPED_REASON: &str = "the bridge stopped (bridge/state is offline)";

/// `{"version", "instance", "rooms": {<id>: {"name", "state", "owner", "reason"?, "owned_by"?}}}`.
fn document(bridge: &Bridge, states: &HashMap<String, LinkState>) -> Value {
    let rooms: Map<String, Value> = bridge
        .rooms
        .iter()
        .map(|(id, handle)| {
            let state = states.get(id).cloned().unwrap_or(LinkState::Connecting);
            let owner = handle.ownership.borrow().clone();
            let mut room =
                json!({ "name": handle.name, "state": state.name(), "owner": owner.as_str() });
            let reason = match &owner {
                Ownership::Refused { by, since } => {
                    room["state"] = json!("refused");
                    room["owned_by"] = json!({ "instance": by, "since": since });
                    Some(format!(
                        "served by bridge instance '{by}', which claimed it first; this instance \
                         stands by and takes over when that one goes offline"
                    ))
                }
                _ => state.reason().map(str::to_owned),
            };
            if let Some(reason) = reason {
                room["reason"] = json!(reason);
            }
            (id.clone(), room)
        })
        .collect();
    let mut info = json!({
        "version": env!("CARGO_PKG_VERSION"),
        "instance": bridge.instance,
        "rooms": rooms,
    });
    let failures = bridge.supervisor.failures();
    if !failures.is_empty() {
        info["task_failures"] = json!(failures);
    }
    info
}
