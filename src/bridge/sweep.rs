//! Removing Home Assistant entities that no longer exist.
//!
//! Retained discovery configs outlive the entities they describe: a room removed from the
//! configuration, or an entity a newer version no longer has, would stay in Home Assistant as a
//! ghost (zigbee2mqtt #2678). Shortly after start a separate, short-lived connection reads the
//! retained configs under the discovery prefix; every config this bridge published once (its
//! availability names our `bridge/state`) that is not among today's topics is cleared with an
//! empty retained payload. Configs of other tools and other bridge instances are left alone.

use std::collections::HashSet;
use std::time::Duration;

use serde_json::Value;
use tokio_util::sync::CancellationToken;
use tracing::info;

use crate::mqtt::{LinkOptions, MqttLink, Publish, Started};

/// How long to collect retained configs after subscribing.
const COLLECT_FOR: Duration = Duration::from_secs(3);

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

/// Reads the retained configs and clears the stale ones of this bridge through `link`.
pub(crate) async fn sweep(
    options: LinkOptions,
    prefix: String,
    bridge_state: String,
    current: HashSet<String>,
    link: MqttLink,
    shutdown: CancellationToken,
) {
    let mut options = options;
    options.client_id = format!("{}-sweep", options.client_id);
    options.clean_session = true;
    options.will_topic = format!("{prefix}/trueconf2mqtt-sweep-unused");
    let cancel = shutdown.child_token();
    let filter = format!("{prefix}/+/+/+/config");
    let Started {
        link: reader,
        mut inbound,
        task,
    } = MqttLink::start(options, vec![filter], cancel.clone());
    let mut connection = reader.connection();
    let mut stale = Vec::new();
    let collect = async {
        // Wait for the connection (bounded), then collect for a while.
        let connected = matches!(
            tokio::time::timeout(
                Duration::from_secs(30),
                connection.wait_for(|c| c.connected)
            )
            .await,
            Ok(Ok(_))
        );
        if !connected {
            return;
        }
        let deadline = tokio::time::Instant::now() + COLLECT_FOR;
        while let Ok(Some(message)) = tokio::time::timeout_at(deadline, inbound.recv()).await {
            if message.retain
                && !message.payload.is_empty()
                && !current.contains(&message.topic)
                && is_ours(&message.payload, &bridge_state)
            {
                stale.push(message.topic);
            }
        }
    };
    tokio::select! {
        _ = collect => {}
        _ = shutdown.cancelled() => {
            cancel.cancel();
            return;
        }
    }
    reader.disconnect().await;
    let _ = tokio::time::timeout(Duration::from_secs(2), task).await;
    cancel.cancel();
    for topic in stale {
        info!(%topic, "removing a Home Assistant entity that no longer exists");
        link.publish(Publish::retained(topic, ""));
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
