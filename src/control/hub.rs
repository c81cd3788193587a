//! What the bridge publishes, for the local control surfaces: the current retained values and
//! a live feed, both with topics relative to `mqtt.base_topic`.
//!
//! The hub watches [`crate::mqtt::MqttLink::publish`] (a [`crate::mqtt::Tap`]), so it sees the
//! same messages in the same order whether the broker is connected or not. Everything is
//! bounded: the retained map holds one value per topic, the live feed is a broadcast channel of
//! [`LIVE_CAPACITY`] messages; a client that falls further behind is resynced from the
//! retained map (its missed events are lost and counted), never waited for.

use std::collections::BTreeMap;
use std::sync::atomic::{AtomicU64, Ordering};
use std::sync::{Arc, Mutex};

use bytes::Bytes;
use tokio::sync::{broadcast, mpsc};

use crate::mqtt::Publish;

/// Live messages a slow client may fall behind by before it is resynced.
pub const LIVE_CAPACITY: usize = 4096;

/// One message for a local client: a topic relative to the base topic and its payload.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct Message {
    /// Relative topic: `boardroom/mic_muted`, `bridge/state`, `boardroom/event/…`.
    pub topic: Arc<str>,
    /// The payload, exactly as published to the broker. Empty: a retained value was cleared.
    pub payload: Bytes,
    /// Retained state (kept and sent to every new client) or a transient event or response.
    pub retained: bool,
}

/// Where the response to one client's command goes.
pub type ReplyTo = mpsc::Sender<Message>;

/// Counters of the local surfaces.
#[derive(Debug, Default)]
pub struct HubStats {
    /// Times a client fell more than [`LIVE_CAPACITY`] messages behind and was resynced.
    pub resyncs: AtomicU64,
    /// Live messages those clients missed.
    pub missed: AtomicU64,
    /// Clients disconnected because they did not take their messages in time.
    pub slow_clients: AtomicU64,
    /// Responses dropped because their client had gone or its reply queue was full.
    pub replies_dropped: AtomicU64,
    /// Client messages refused (malformed, unauthenticated, over a limit).
    pub refused: AtomicU64,
    /// Commands submitted by local clients.
    pub commands: AtomicU64,
    /// Clients connected now (WebSocket and TCP).
    pub clients: AtomicU64,
}

/// The retained values and the live feed.
pub struct Hub {
    /// `<base>/`.
    prefix: String,
    retained: Mutex<BTreeMap<Arc<str>, Bytes>>,
    live: broadcast::Sender<Message>,
    stats: HubStats,
}

impl std::fmt::Debug for Hub {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        f.debug_struct("Hub").field("prefix", &self.prefix).finish()
    }
}

impl Hub {
    /// A hub for the topics under `base`.
    pub fn new(base: &str) -> Arc<Hub> {
        Arc::new(Hub {
            prefix: format!("{base}/"),
            retained: Mutex::default(),
            live: broadcast::channel(LIVE_CAPACITY).0,
            stats: HubStats::default(),
        })
    }

    /// The topic relative to the base topic, if it is one the surfaces show: the bridge's own
    /// bookkeeping (room claims, `<room>/owner`) and anything outside the base (discovery) are
    /// not.
    pub fn relative<'t>(&self, topic: &'t str) -> Option<&'t str> {
        let rest = topic.strip_prefix(&self.prefix)?;
        let mut levels = rest.split('/');
        let first = levels.next()?;
        let second = levels.next();
        let is_owner = first != "bridge" && second == Some("owner") && levels.next().is_none();
        (!rest.is_empty() && !is_owner).then_some(rest)
    }

    /// Takes in one published message (the link's tap).
    pub fn observe(&self, publish: &Publish) {
        let Some(topic) = self.relative(&publish.topic) else {
            return;
        };
        // A response is for whoever sent the command: a local client gets its own privately
        // (`ReplyTo`), and answers to MQTT clients are not broadcast to the surfaces.
        if !publish.retain && topic.split('/').nth(1) == Some("response") {
            return;
        }
        let Ok(mut retained) = self.retained.lock() else {
            return;
        };
        let topic: Arc<str> = if publish.retain {
            // State is republished whole on every change: only what changed goes out live.
            match retained.get_key_value(topic) {
                Some((_, value)) if *value == publish.payload => return,
                None if publish.payload.is_empty() => return,
                Some(_) if publish.payload.is_empty() => {
                    retained.remove(topic);
                    Arc::from(topic)
                }
                Some((key, _)) => {
                    let key = key.clone();
                    retained.insert(key.clone(), publish.payload.clone());
                    key
                }
                None => {
                    let key: Arc<str> = Arc::from(topic);
                    retained.insert(key.clone(), publish.payload.clone());
                    key
                }
            }
        } else {
            Arc::from(topic)
        };
        // Sent under the lock, so a client subscribing gets each change either in its
        // snapshot or live, never both or neither. No receivers is fine.
        let _ = self.live.send(Message {
            topic,
            payload: publish.payload.clone(),
            retained: publish.retain,
        });
    }

    /// The retained values now, in topic order, and the live feed from this moment on.
    pub fn subscribe(&self) -> (Vec<Message>, broadcast::Receiver<Message>) {
        let Ok(retained) = self.retained.lock() else {
            return (Vec::new(), self.live.subscribe());
        };
        let live = self.live.subscribe();
        (Self::list(&retained), live)
    }

    /// The retained values now, in topic order.
    pub fn snapshot(&self) -> Vec<Message> {
        self.retained
            .lock()
            .map(|r| Self::list(&r))
            .unwrap_or_default()
    }

    /// The retained value of one relative topic.
    pub fn get(&self, topic: &str) -> Option<Bytes> {
        self.retained.lock().ok()?.get(topic).cloned()
    }

    fn list(retained: &BTreeMap<Arc<str>, Bytes>) -> Vec<Message> {
        retained
            .iter()
            .map(|(topic, payload)| Message {
                topic: topic.clone(),
                payload: payload.clone(),
                retained: true,
            })
            .collect()
    }

    /// The counters.
    pub fn stats(&self) -> &HubStats {
        &self.stats
    }

    /// Counts a client that fell behind by `missed` messages (it is resynced).
    pub fn lagged(&self, missed: u64, client: &str) {
        self.stats.resyncs.fetch_add(1, Ordering::Relaxed);
        self.stats.missed.fetch_add(missed, Ordering::Relaxed);
        tracing::warn!(
            client,
            missed,
            "a control client fell behind the live feed; resyncing it from the retained state"
        );
    }

    /// Counts one client message refused.
    pub fn refused(&self) {
        self.stats.refused.fetch_add(1, Ordering::Relaxed);
    }

    /// Counts a client disconnected for being slow.
    pub fn slow(&self, client: &str) {
        self.stats.slow_clients.fetch_add(1, Ordering::Relaxed);
        tracing::warn!(
            client,
            "disconnecting a control client that does not take its messages"
        );
    }
}

/// Hands a response to the client that asked; a client that is gone or not reading loses it
/// (counted): the bridge never waits for a client.
pub fn reply(hub: &Hub, to: &ReplyTo, message: Message) {
    if to.try_send(message).is_err() {
        hub.stats.replies_dropped.fetch_add(1, Ordering::Relaxed);
    }
}

/// Guards one connected client in [`HubStats::clients`].
pub struct ClientGuard(Arc<Hub>);

impl ClientGuard {
    /// Counts a client in until the guard is dropped.
    pub fn new(hub: Arc<Hub>) -> ClientGuard {
        hub.stats.clients.fetch_add(1, Ordering::Relaxed);
        ClientGuard(hub)
    }
}

impl Drop for ClientGuard {
    fn drop(&mut self) {
        self.0.stats.clients.fetch_sub(1, Ordering::Relaxed);
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn keeps_changes_under_the_base_and_skips_claims() {
        let hub = Hub::new("tc");
        let (snapshot, mut live) = hub.subscribe();
        assert!(snapshot.is_empty());
        hub.observe(&Publish::retained("tc/r1/mic_muted", "ON"));
        hub.observe(&Publish::retained("tc/r1/mic_muted", "ON"));
        hub.observe(&Publish::retained("tc/r1/owner", "{}"));
        hub.observe(&Publish::retained("homeassistant/device/x/config", "{}"));
        hub.observe(&Publish::transient("tc/r1/response/mic_muted", "{}"));
        hub.observe(&Publish::transient("tc/bridge/response/health_check", "{}"));
        hub.observe(&Publish::transient("tc/r1/event/x", "{}"));
        let first = live.try_recv().unwrap();
        assert_eq!(&*first.topic, "r1/mic_muted");
        assert!(first.retained);
        // Answers to MQTT clients are theirs: the next live message is the event.
        assert_eq!(&*live.try_recv().unwrap().topic, "r1/event/x");
        assert!(
            live.try_recv().is_err(),
            "an unchanged value is not sent twice"
        );
        assert_eq!(hub.get("r1/mic_muted").as_deref(), Some(&b"ON"[..]));
        assert_eq!(hub.snapshot().len(), 1);
        hub.observe(&Publish::retained("tc/r1/mic_muted", ""));
        assert!(hub.snapshot().is_empty());
        assert!(live.try_recv().unwrap().payload.is_empty());
        assert_eq!(hub.relative("tc/bridge/owner"), Some("bridge/owner"));
        assert_eq!(hub.relative("tcx/r1"), None);
    }
}
