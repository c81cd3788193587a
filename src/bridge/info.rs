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
    mut reports: mpsc::Receiver<LinkReport>,
    mut ownership: watch::Receiver<u64>,
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
    json!({
        "version": env!("CARGO_PKG_VERSION"),
        "instance": bridge.instance,
        "rooms": rooms,
    })
}
