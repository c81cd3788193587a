//! The bridge's own requests, `<base>/bridge[/<instance>]/request/<name>`: `republish` and
//! `health_check`.

use serde_json::{Map, Value, json};

use super::Bridge;
use super::command::{self, CommandError};
use super::ownership::Ownership;

/// The response to bridge request `name`.
pub(super) fn answer(bridge: &Bridge, name: &str) -> Value {
    match name {
        "republish" => {
            bridge.link.republish_all();
            command::response(Ok(json!({})), None)
        }
        "health_check" => command::response(Ok(health(bridge)), None),
        other => command::response(
            Err(CommandError::UnknownBridgeRequest(other.to_owned())),
            None,
        ),
    }
}

/// Each room's link and ownership, as `health_check` reports them.
fn health(bridge: &Bridge) -> Value {
    let rooms: Map<String, Value> = bridge
        .rooms
        .iter()
        .map(|(id, r)| {
            let online = r.client().is_some_and(|c| c.link().borrow().is_online());
            (id.clone(), json!(online))
        })
        .collect();
    let owners: Map<String, Value> = bridge
        .rooms
        .iter()
        .map(|(id, r)| {
            let owner = match &*r.ownership.borrow() {
                Ownership::Refused { by, .. } => format!("refused: served by '{by}'"),
                other => other.as_str().to_owned(),
            };
            (id.clone(), json!(owner))
        })
        .collect();
    json!({
        "healthy": true,
        "instance": bridge.instance,
        "rooms": rooms,
        "ownership": owners,
    })
}
