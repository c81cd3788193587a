//! Removing Home Assistant entities that no longer exist, and finding the configs of the other
//! discovery mode that are to be migrated.
//!
//! Retained discovery configs outlive the entities they describe: a room removed from the
//! configuration, or an entity a newer version no longer has, would stay in Home Assistant as a
//! ghost. Shortly after start a separate, short-lived connection reads the
//! retained configs under the discovery prefix; every config this bridge published once (its
//! availability names our `bridge/state`) that is not among today's topics is cleared with an
//! empty retained payload. Configs of other tools and other bridge instances are left alone.
//!
//! Configs of today's rooms in the other discovery mode (per-entity configs an earlier release
//! left, or a device config when going back to `entity`) are not cleared here: they are handed
//! to the rooms ([`Migration`]), which move them as Home Assistant documents (migration marker,
//! new configs, then the old topics cleared) so that entity ids and user settings survive. Rooms
//! hold their discovery until this hand-over, which comes once the read is done (or failed).

use std::collections::{HashMap, HashSet};
use std::sync::{Arc, Mutex};
use std::time::Duration;

use serde_json::Value;
use tokio::sync::watch;
use tokio_util::sync::CancellationToken;
use tracing::{info, warn};

use super::BridgeOptions;
use crate::homeassistant::{DiscoveryContext, DiscoveryMode, mode_topics};
use crate::mqtt::{LinkOptions, MqttLink, Publish, read_retained};

/// What the sweep found retained for today's rooms: configs of the other discovery mode, by
/// room id (each room takes its own once), and the rooms Home Assistant already knows (some
/// config of ours is retained for them).
#[derive(Debug, Default)]
pub(crate) struct Migration {
    old: Mutex<HashMap<String, Vec<String>>>,
    known: HashSet<String>,
}

impl Migration {
    /// The old config topics of `room` to migrate (empty when none, or when already taken).
    pub fn take(&self, room: &str) -> Vec<String> {
        self.old
            .lock()
            .ok()
            .and_then(|mut rooms| rooms.remove(room))
            .unwrap_or_default()
    }

    /// Whether a config of ours was retained for `room`: Home Assistant has its entities, and
    /// reads their retained state the moment a config changes.
    pub fn known(&self, room: &str) -> bool {
        self.known.contains(room)
    }
}

/// `None` until the sweep has read the retained configs (or given up).
pub(crate) type MigrationWatch = watch::Receiver<Option<Arc<Migration>>>;

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

/// The config topics of today's rooms in `mode` (the ones not to clear), and those of the other
/// mode (the ones to migrate), each with its room.
pub(crate) fn topics_by_mode(
    options: &BridgeOptions,
    prefix: &str,
) -> (HashMap<String, String>, HashMap<String, String>) {
    let mode = options.homeassistant.mode;
    let other = match mode {
        DiscoveryMode::Device => DiscoveryMode::Entity,
        DiscoveryMode::Entity => DiscoveryMode::Device,
    };
    let mut current = HashMap::new();
    let mut old = HashMap::new();
    for room in &options.rooms {
        let ctx = DiscoveryContext {
            base_topic: &options.base_topic,
            prefix,
            room_id: &room.id,
            room_name: &room.name,
            host: &room.options.host,
            bridge_version: env!("CARGO_PKG_VERSION"),
        };
        current.extend(
            mode_topics(mode, &ctx)
                .into_iter()
                .map(|t| (t, room.id.clone())),
        );
        old.extend(
            mode_topics(other, &ctx)
                .into_iter()
                .map(|t| (t, room.id.clone())),
        );
    }
    (current, old)
}

/// Once the bridge is connected, reads the retained configs, clears the stale ones of this
/// bridge through `link` and hands those of the other mode to their rooms through `migration`
/// (`current`, `old`: see [`topics_by_mode`]).
#[allow(clippy::too_many_arguments)]
pub(crate) async fn sweep(
    options: LinkOptions,
    prefix: String,
    bridge_state: String,
    (current, old): (HashMap<String, String>, HashMap<String, String>),
    link: MqttLink,
    migration: watch::Sender<Option<Arc<Migration>>>,
    shutdown: CancellationToken,
) {
    // Per-entity configs have five levels, device configs four.
    let filters = [
        format!("{prefix}/+/+/+/config"),
        format!("{prefix}/device/+/config"),
    ];
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
        _ = shutdown.cancelled() => {
            migration.send_replace(Some(Arc::default()));
            return;
        }
    };
    let mut to_migrate: HashMap<String, Vec<String>> = HashMap::new();
    let mut known = HashSet::new();
    for message in retained {
        if message.payload.is_empty() || !is_ours(&message.payload, &bridge_state) {
            continue;
        }
        if let Some(room) = current.get(&message.topic) {
            known.insert(room.clone());
        } else if let Some(room) = old.get(&message.topic) {
            known.insert(room.clone());
            to_migrate
                .entry(room.clone())
                .or_default()
                .push(message.topic);
        } else {
            info!(topic = %message.topic, "removing a Home Assistant entity that no longer exists");
            link.publish(Publish::retained(message.topic, ""));
        }
    }
    for topics in to_migrate.values_mut() {
        topics.sort_unstable();
    }
    migration.send_replace(Some(Arc::new(Migration {
        old: Mutex::new(to_migrate),
        known,
    })));
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
