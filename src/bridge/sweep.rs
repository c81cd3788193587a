//! Removing Home Assistant entities that no longer exist.
//!
//! Retained discovery configs outlive the entities they describe: a room removed from the
//! configuration, or an entity a newer version no longer has, would stay in Home Assistant as a
//! ghost. Shortly after start a separate, short-lived connection reads the
//! retained configs under the discovery prefix; every config this bridge published once (its
//! availability names our `bridge/state`) that is not among today's topics is cleared with an
//! empty retained payload. Configs of other tools and other bridge instances are left alone.

use std::collections::HashSet;
use std::time::Duration;

use serde_json::Value;
use tokio_util::sync::CancellationToken;
use tracing::{info, warn};

use super::BridgeOptions;
use crate::homeassistant::{DiscoveryContext, entity_topics};
use crate::mqtt::{LinkOptions, MqttLink, Publish, read_retained};

/// Longest wait for the bridge's own connection before sweeping.
const WAIT_FOR_BROKER: Duration = Duration::from_secs(30);

/// Longest time to read the retained configs.
const READ_FOR: Duration = Duration::from_secs(10);

/// Whether a retained config was published by a bridge whose `bridge/state` is `bridge_state`.
fn is_ours(payload: &[u8], bridge_state: &str) -> bool {
    let Ok(config) = serde_json::from_slice::<Value>(payload) else {
        return false;
    };
    let named = |v: &Value| v.get("topic").and_then(Value::as_str) == Some(bridge_state);
    match config.get("availability").or_else(|| config.get("avty")) {
        Some(Value::Array(entries)) => entries.iter().any(named),
        _ => config.get("availability_topic").and_then(Value::as_str) == Some(bridge_state),
    }
}

/// The config topics of today's rooms and entities: the ones not to clear.
pub(crate) fn current_topics(options: &BridgeOptions, prefix: &str) -> HashSet<String> {
    options
        .rooms
        .iter()
        .flat_map(|room| {
            entity_topics(&DiscoveryContext {
                base_topic: &options.base_topic,
                prefix,
                room_id: &room.id,
                room_name: &room.name,
                host: &room.options.host,
                bridge_version: env!("CARGO_PKG_VERSION"),
            })
        })
        .collect()
}

/// Once the bridge is connected, reads the retained configs and clears the stale ones of this
/// bridge through `link`.
pub(crate) async fn sweep(
    options: LinkOptions,
    prefix: String,
    bridge_state: String,
    current: HashSet<String>,
    link: MqttLink,
    shutdown: CancellationToken,
) {
    let filters = [format!("{prefix}/+/+/+/config")];
    let read = async {
        let mut connection = link.connection();
        tokio::time::timeout(WAIT_FOR_BROKER, connection.wait_for(|c| c.connected))
            .await
            .ok()?
            .ok()?;
        match read_retained(&options, "sweep", &filters, READ_FOR).await {
            Ok(retained) => Some(retained),
            Err(error) => {
                warn!(%error, "cannot read the retained discovery configs; stale entities stay");
                None
            }
        }
    };
    let retained = tokio::select! {
        retained = read => retained.unwrap_or_default(),
        _ = shutdown.cancelled() => return,
    };
    for message in retained {
        if !message.payload.is_empty()
            && !current.contains(&message.topic)
            && is_ours(&message.payload, &bridge_state)
        {
            info!(topic = %message.topic, "removing a Home Assistant entity that no longer exists");
            link.publish(Publish::retained(message.topic, ""));
        }
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn recognises_our_configs_only() {
        let ours = br#"{"availability":[{"topic":"trueconf/bridge/state"},{"topic":"trueconf/r/availability"}]}"#;
        assert!(is_ours(ours, "trueconf/bridge/state"));
        assert!(!is_ours(ours, "other/bridge/state"));
        assert!(!is_ours(b"not json", "trueconf/bridge/state"));
        assert!(is_ours(
            br#"{"availability_topic":"trueconf/bridge/state"}"#,
            "trueconf/bridge/state"
        ));
    }
}
