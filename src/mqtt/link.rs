//! The broker connection: rumqttc's event loop and the outbox that feeds it.
//!
//! Two tasks. The **event loop task** only polls rumqttc: it never awaits a client call (that
//! deadlocks once rumqttc's request channel is full, rumqtt #263/#1025), resubscribes on every
//! ConnAck (rumqttc does not, #250), hands incoming publishes to the bridge with `try_send`, and
//! sleeps with backoff after errors (rumqttc has no reconnect delay, #703/#918).
//!
//! The **outbox task** owns everything waiting to be published, with one policy per class of
//! data: retained topics (state, availability, discovery) are coalesced to their latest value
//! and the whole set is republished after every reconnect; events and responses wait in a
//! bounded queue, oldest dropped and counted past the bound. Nothing is handed to rumqttc while
//! the broker is away, so no stale burst is replayed on reconnect.

use std::collections::{HashMap, HashSet, VecDeque};
use std::sync::Arc;
use std::sync::atomic::{AtomicU64, Ordering};
use std::time::Duration;

use bytes::Bytes;
use rumqttc::QoS;
use tokio::sync::{mpsc, oneshot, watch};
use tokio_util::sync::CancellationToken;
use tracing::{debug, info, warn};

use super::client::{self, Client, EventLoop, Polled, TlsOptions, TryError, Version};
use crate::backoff::Backoff;
use crate::secret::Secret;

/// How to connect to the broker.
#[derive(Debug, Clone)]
pub struct LinkOptions {
    /// Broker host.
    pub host: String,
    /// Broker port.
    pub port: u16,
    /// MQTT client id (stable, so a persistent session can be resumed).
    pub client_id: String,
    /// Username and password.
    pub credentials: Option<(String, Secret)>,
    /// MQTT keepalive.
    pub keepalive: Duration,
    /// `false` keeps a persistent session so commands sent while we are away are delivered.
    pub clean_session: bool,
    /// QoS for everything we publish and subscribe.
    pub qos: QoS,
    /// Largest incoming packet rumqttc accepts; larger ones break the connection, so this is
    /// generous and the command size limit is enforced by the bridge instead.
    pub max_incoming_packet: usize,
    /// Events and responses kept while the broker is away.
    pub event_buffer: usize,
    /// Topic of the last will (retained `offline`).
    pub will_topic: String,
    /// Topics whose retained messages are published before others after a reconnect
    /// (Home Assistant discovery must precede state).
    pub first_prefix: Option<String>,
    /// Reconnect delays.
    pub reconnect_min: Duration,
    /// Largest reconnect delay.
    pub reconnect_max: Duration,
    /// MQTT 3.1.1 or 5.
    pub version: Version,
    /// TLS, when the broker needs it.
    pub tls: Option<TlsOptions>,
}

impl LinkOptions {
    /// Options with the defaults for a broker at `host:port`: MQTT 3.1.1, persistent session,
    /// QoS 1, keepalive 30 s, 1,000 buffered events, backoff 0.5 s → 30 s.
    pub fn new(host: impl Into<String>, port: u16, client_id: impl Into<String>) -> LinkOptions {
        LinkOptions {
            host: host.into(),
            port,
            client_id: client_id.into(),
            credentials: None,
            keepalive: Duration::from_secs(30),
            clean_session: false,
            qos: QoS::AtLeastOnce,
            max_incoming_packet: 16 << 20,
            event_buffer: 1000,
            will_topic: String::new(),
            first_prefix: None,
            reconnect_min: Duration::from_millis(500),
            reconnect_max: Duration::from_secs(30),
            version: Version::V311,
            tls: None,
        }
    }
}

/// A message to publish.
#[derive(Debug, Clone)]
pub struct Publish {
    /// Topic.
    pub topic: String,
    /// Payload.
    pub payload: Bytes,
    /// Retained state (coalesced, republished on reconnect) or a transient event/response.
    pub retain: bool,
    /// MQTT 5 Correlation Data to send with a response.
    pub correlation: Option<Bytes>,
}

impl Publish {
    /// A retained message.
    pub fn retained(topic: impl Into<String>, payload: impl Into<Bytes>) -> Publish {
        Publish {
            topic: topic.into(),
            payload: payload.into(),
            retain: true,
            correlation: None,
        }
    }

    /// A transient message (event, response).
    pub fn transient(topic: impl Into<String>, payload: impl Into<Bytes>) -> Publish {
        Publish {
            topic: topic.into(),
            payload: payload.into(),
            retain: false,
            correlation: None,
        }
    }
}

/// A publish received from the broker.
#[derive(Debug, Clone)]
pub struct Inbound {
    /// Topic.
    pub topic: String,
    /// Payload bytes (not yet checked for size or UTF-8).
    pub payload: Bytes,
    /// Set when the broker replays a retained message.
    pub retain: bool,
    /// MQTT 5 Response Topic: where the sender wants the response.
    pub response_topic: Option<String>,
    /// MQTT 5 Correlation Data, echoed with the response.
    pub correlation: Option<Bytes>,
    /// MQTT 5 message expiry interval left, in seconds.
    pub expiry: Option<u32>,
    /// Set when the broker delivered this from our persistent session right after a reconnect:
    /// it was published while we were away, and the outage lasted this long (an upper bound on
    /// its age).
    pub queued_for: Option<Duration>,
}

/// Counters of the MQTT side.
#[derive(Debug, Default)]
pub struct MqttStats {
    /// ConnAcks received.
    pub connects: AtomicU64,
    /// Messages handed to the broker.
    pub published: AtomicU64,
    /// Events or responses dropped because the outbox was full while the broker was away.
    pub dropped: AtomicU64,
    /// Incoming publishes dropped because the bridge could not keep up.
    pub inbound_dropped: AtomicU64,
    /// The last connection error, for health reports (no secrets: rumqttc's messages carry
    /// none).
    pub last_error: std::sync::Mutex<Option<String>>,
}

/// Connection state seen by the outbox.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Default)]
pub struct Connection {
    /// A ConnAck was received and no error since.
    pub connected: bool,
    /// Incremented on every ConnAck.
    pub generation: u64,
}

enum OutboxMessage {
    Publish(Publish),
    /// Publishes the MQTT client still held when the connection broke, oldest first: they go
    /// out again before anything queued since.
    Unsent(Vec<Publish>),
    RepublishAll,
    Flush(oneshot::Sender<()>),
    Ping(oneshot::Sender<()>),
}

/// Retained messages on their way to the outbox, coalesced per topic: state is never dropped
/// however fast it is produced (1,000 rooms starting at once), only superseded.
#[derive(Default)]
struct RetainedInbox {
    latest: HashMap<String, Bytes>,
    /// Topics in first-seen order, so discovery published before state stays before it.
    order: Vec<String>,
}

/// Handle to the broker link.
#[derive(Clone)]
pub struct MqttLink {
    outbox: mpsc::Sender<OutboxMessage>,
    retained: Arc<(std::sync::Mutex<RetainedInbox>, tokio::sync::Notify)>,
    connection: watch::Receiver<Connection>,
    client: Client,
    stats: Arc<MqttStats>,
}

/// The running link: its handle, incoming publishes and the tasks to wait for.
pub struct Started {
    /// Handle for publishing.
    pub link: MqttLink,
    /// Incoming publishes on the subscribed filters.
    pub inbound: mpsc::Receiver<Inbound>,
    /// The event loop task; ends after [`MqttLink::disconnect`] or cancellation.
    pub task: tokio::task::JoinHandle<()>,
}

/// Capacity of rumqttc's request channel.
const REQUEST_CAPACITY: usize = 1024;
/// Incoming publishes waiting for the bridge.
const INBOUND_CAPACITY: usize = 1024;
/// Messages waiting to enter the outbox.
const OUTBOX_CAPACITY: usize = 8192;

impl MqttLink {
    /// Connects (in the background) and subscribes to `filters` after every ConnAck. The last
    /// will publishes `offline` retained on `will_topic`.
    pub fn start(options: LinkOptions, filters: Vec<String>, cancel: CancellationToken) -> Started {
        let (client, eventloop) = client::build(&options, REQUEST_CAPACITY);
        let (connection_tx, connection) = watch::channel(Connection::default());
        let (inbound_tx, inbound) = mpsc::channel(INBOUND_CAPACITY);
        let (outbox_tx, outbox_rx) = mpsc::channel(OUTBOX_CAPACITY);
        let retained = Arc::new((
            std::sync::Mutex::new(RetainedInbox::default()),
            tokio::sync::Notify::new(),
        ));
        let stats = Arc::new(MqttStats::default());

        let task = tokio::spawn(poll_loop(
            eventloop,
            client.clone(),
            options.clone(),
            filters,
            connection_tx,
            inbound_tx,
            outbox_tx.clone(),
            stats.clone(),
            cancel,
        ));
        tokio::spawn(
            Outbox {
                client: client.clone(),
                qos: options.qos,
                stats: stats.clone(),
                capacity: options.event_buffer.max(1),
                first_prefix: options.first_prefix.clone(),
                retained: HashMap::new(),
                dirty_first: VecDeque::new(),
                dirty: VecDeque::new(),
                dirty_set: HashSet::new(),
                queue: VecDeque::new(),
            }
            .run(outbox_rx, retained.clone(), connection.clone()),
        );
        Started {
            link: MqttLink {
                outbox: outbox_tx,
                retained,
                connection,
                client,
                stats,
            },
            inbound,
            task,
        }
    }

    /// Queues a message. Never blocks. Retained messages are coalesced per topic and never
    /// dropped; if the outbox is full of events and responses (the bridge produces faster than
    /// anything can drain), a transient message is dropped and counted.
    pub fn publish(&self, message: Publish) {
        if message.retain {
            let (inbox, wake) = &*self.retained;
            if let Ok(mut inbox) = inbox.lock()
                && inbox
                    .latest
                    .insert(message.topic.clone(), message.payload)
                    .is_none()
            {
                inbox.order.push(message.topic);
            }
            wake.notify_one();
            return;
        }
        if self
            .outbox
            .try_send(OutboxMessage::Publish(message))
            .is_err()
        {
            self.stats.dropped.fetch_add(1, Ordering::Relaxed);
        }
    }

    /// Republishes every retained message (after a Home Assistant birth message).
    pub fn republish_all(&self) {
        let _ = self.outbox.try_send(OutboxMessage::RepublishAll);
    }

    /// Waits until everything queued so far was handed to rumqttc (or `timeout` passes).
    pub async fn flush(&self, timeout: Duration) -> bool {
        let (tx, rx) = oneshot::channel();
        if self.outbox.send(OutboxMessage::Flush(tx)).await.is_err() {
            return false;
        }
        tokio::time::timeout(timeout, rx)
            .await
            .is_ok_and(|r| r.is_ok())
    }

    /// Whether the outbox task answers within `timeout`: a liveness check of our own loop (for
    /// the systemd watchdog), independent of the broker being reachable.
    pub async fn alive(&self, timeout: Duration) -> bool {
        let (tx, rx) = oneshot::channel();
        if self.outbox.try_send(OutboxMessage::Ping(tx)).is_err() {
            return false;
        }
        tokio::time::timeout(timeout, rx)
            .await
            .is_ok_and(|r| r.is_ok())
    }

    /// Watches the broker connection.
    pub fn connection(&self) -> watch::Receiver<Connection> {
        self.connection.clone()
    }

    /// Whether the broker is connected now.
    pub fn is_connected(&self) -> bool {
        self.connection.borrow().connected
    }

    /// Counters.
    pub fn stats(&self) -> &MqttStats {
        &self.stats
    }

    /// Sends DISCONNECT after what was queued before it (a clean disconnect suppresses the last
    /// will, so publish `offline` first).
    pub async fn disconnect(&self) {
        let _ = self.client.try_disconnect();
    }
}

#[allow(clippy::too_many_arguments)]
async fn poll_loop(
    mut eventloop: EventLoop,
    client: Client,
    options: LinkOptions,
    filters: Vec<String>,
    connection: watch::Sender<Connection>,
    inbound: mpsc::Sender<Inbound>,
    outbox: mpsc::Sender<OutboxMessage>,
    stats: Arc<MqttStats>,
    cancel: CancellationToken,
) {
    let mut backoff = Backoff::new(options.reconnect_min, options.reconnect_max);
    let broker = format!("{}:{}", options.host, options.port);
    let mut failures: u64 = 0;
    // When the link went down, and (after a reconnect that resumed the session, until our
    // subscriptions are confirmed) how long the outage lasted: what the broker delivers in that
    // window was queued for us while we were away.
    let mut down_since: Option<std::time::Instant> = None;
    let mut backlog: Option<Duration> = None;
    loop {
        let event = tokio::select! {
            _ = cancel.cancelled() => break,
            event = eventloop.poll() => event,
        };
        match event {
            Ok(Polled::ConnAck { session_present }) => {
                backlog = down_since
                    .take()
                    .filter(|_| session_present)
                    .map(|since| since.elapsed());
                backoff.reset();
                failures = 0;
                stats.connects.fetch_add(1, Ordering::Relaxed);
                info!(%broker, session_present, "connected to the MQTT broker");
                // Always resubscribe: idempotent, and the broker may have lost the session.
                for filter in &filters {
                    if let Err(e) = client.try_subscribe(filter, options.qos) {
                        warn!(%filter, error = ?e, "cannot queue a subscription");
                    }
                }
                connection.send_modify(|c| {
                    c.connected = true;
                    c.generation += 1;
                });
            }
            Ok(Polled::SubAck) => backlog = None,
            Ok(Polled::Publish(mut message)) => {
                message.queued_for = backlog;
                if inbound.try_send(message).is_err() {
                    stats.inbound_dropped.fetch_add(1, Ordering::Relaxed);
                    warn!("dropping an incoming MQTT message: the bridge is not keeping up");
                }
            }
            Ok(Polled::Disconnected) => {
                debug!("sent DISCONNECT");
                connection.send_modify(|c| c.connected = false);
                break;
            }
            Ok(Polled::Other) => {}
            Err(error) => {
                down_since.get_or_insert_with(std::time::Instant::now);
                connection.send_if_modified(|c| std::mem::replace(&mut c.connected, false));
                // What was in flight goes back to the outbox, which sends it again after the
                // reconnect even if the broker lost our session (rumqttc would drop it then).
                let unsent = eventloop.take_unsent();
                if !unsent.is_empty() {
                    let count = unsent.iter().filter(|p| !p.retain).count() as u64;
                    debug!(count, "handing unacknowledged publishes back to the outbox");
                    if outbox.try_send(OutboxMessage::Unsent(unsent)).is_err() {
                        stats.dropped.fetch_add(count, Ordering::Relaxed);
                        warn!(count, "outbox full: dropping unacknowledged events");
                    }
                }
                failures += 1;
                let delay = backoff.next_delay();
                let refused = error.refused;
                let error = error.message;
                if let Ok(mut last) = stats.last_error.lock() {
                    *last = Some(error.clone());
                }
                // One line per attempt; attempts are spaced by the backoff, never a hot loop.
                if failures <= 3 || failures.is_power_of_two() || refused {
                    warn!(%broker, %error, attempt = failures, retry_in_ms = delay.as_millis() as u64, "MQTT connection failed");
                }
                tokio::select! {
                    _ = cancel.cancelled() => break,
                    _ = tokio::time::sleep(delay) => {}
                }
            }
        }
    }
    connection.send_modify(|c| c.connected = false);
}

struct Outbox {
    client: Client,
    qos: QoS,
    stats: Arc<MqttStats>,
    capacity: usize,
    first_prefix: Option<String>,
    /// Latest payload per retained topic: what the broker should hold.
    retained: HashMap<String, Bytes>,
    /// Retained topics to (re)publish, discovery first.
    dirty_first: VecDeque<String>,
    dirty: VecDeque<String>,
    dirty_set: HashSet<String>,
    /// Events and responses, in order.
    queue: VecDeque<Publish>,
}

impl Outbox {
    async fn run(
        mut self,
        mut rx: mpsc::Receiver<OutboxMessage>,
        retained: Arc<(std::sync::Mutex<RetainedInbox>, tokio::sync::Notify)>,
        mut connection: watch::Receiver<Connection>,
    ) {
        let (inbox, wake) = &*retained;
        let mut generation = 0;
        let mut blocked = false;
        let mut flushes: Vec<oneshot::Sender<()>> = Vec::new();
        loop {
            tokio::select! {
                message = rx.recv() => match message {
                    None => break,
                    Some(OutboxMessage::Publish(p)) => self.accept(p),
                    Some(OutboxMessage::Unsent(unsent)) => self.take_back(unsent),
                    Some(OutboxMessage::RepublishAll) => self.mark_all_dirty(),
                    Some(OutboxMessage::Flush(done)) => flushes.push(done),
                    Some(OutboxMessage::Ping(pong)) => {
                        let _ = pong.send(());
                    }
                },
                changed = connection.changed() => {
                    if changed.is_err() {
                        break;
                    }
                    let now = *connection.borrow_and_update();
                    if now.connected && now.generation != generation {
                        generation = now.generation;
                        self.mark_all_dirty();
                    }
                }
                _ = tokio::time::sleep(Duration::from_millis(5)), if blocked => {}
                _ = wake.notified() => {}
            }
            // Take the retained messages queued since the last turn (cheap when there are none).
            let taken = inbox
                .lock()
                .map(|mut i| std::mem::take(&mut *i))
                .unwrap_or_default();
            let RetainedInbox { mut latest, order } = taken;
            for topic in order {
                if let Some(payload) = latest.remove(&topic) {
                    self.accept(Publish::retained(topic, payload));
                }
            }
            if connection.borrow().connected {
                blocked = !self.drain();
            }
            if !self.has_work() {
                for done in flushes.drain(..) {
                    let _ = done.send(());
                }
            }
        }
    }

    fn has_work(&self) -> bool {
        !self.dirty_first.is_empty() || !self.dirty.is_empty() || !self.queue.is_empty()
    }

    fn accept(&mut self, p: Publish) {
        if p.retain {
            if self.retained.get(&p.topic) == Some(&p.payload) {
                return;
            }
            self.retained.insert(p.topic.clone(), p.payload);
            self.mark_dirty(p.topic);
        } else {
            if self.queue.len() >= self.capacity {
                self.queue.pop_front();
                let dropped = self.stats.dropped.fetch_add(1, Ordering::Relaxed) + 1;
                if dropped.is_power_of_two() {
                    warn!(
                        dropped,
                        capacity = self.capacity,
                        "outbox full while the broker is away: dropping the oldest events"
                    );
                }
            }
            self.queue.push_back(p);
        }
    }

    /// Takes back what the MQTT client held when the connection broke. Events and responses go
    /// before everything queued since (they are older), within the same bound; retained values
    /// are republished after the reconnect anyway, except a deletion (empty payload) that the
    /// outbox already forgot, which is queued again.
    fn take_back(&mut self, unsent: Vec<Publish>) {
        for p in unsent.into_iter().rev() {
            if p.retain {
                if p.payload.is_empty() && !self.retained.contains_key(&p.topic) {
                    self.retained.insert(p.topic.clone(), p.payload);
                    self.mark_dirty(p.topic);
                }
            } else if self.queue.len() >= self.capacity {
                // The oldest of all: the one not taken back.
                let dropped = self.stats.dropped.fetch_add(1, Ordering::Relaxed) + 1;
                if dropped.is_power_of_two() {
                    warn!(
                        dropped,
                        capacity = self.capacity,
                        "outbox full while the broker is away: dropping the oldest events"
                    );
                }
            } else {
                self.queue.push_front(p);
            }
        }
    }

    fn mark_dirty(&mut self, topic: String) {
        if self.dirty_set.insert(topic.clone()) {
            let first = self
                .first_prefix
                .as_deref()
                .is_some_and(|prefix| topic.starts_with(prefix));
            if first {
                self.dirty_first.push_back(topic);
            } else {
                self.dirty.push_back(topic);
            }
        }
    }

    fn mark_all_dirty(&mut self) {
        let mut topics: Vec<String> = self.retained.keys().cloned().collect();
        topics.sort_unstable();
        for topic in topics {
            self.mark_dirty(topic);
        }
    }

    /// Hands queued messages to rumqttc; `false` when its channel is full.
    fn drain(&mut self) -> bool {
        while let Some(topic) = self
            .dirty_first
            .front()
            .or_else(|| self.dirty.front())
            .cloned()
        {
            let payload = self.retained.get(&topic).cloned().unwrap_or_default();
            match self
                .client
                .try_publish(&topic, self.qos, true, payload.clone(), None)
            {
                Ok(()) => {
                    self.stats.published.fetch_add(1, Ordering::Relaxed);
                    if !self.dirty_first.is_empty() {
                        self.dirty_first.pop_front();
                    } else {
                        self.dirty.pop_front();
                    }
                    self.dirty_set.remove(&topic);
                    // An empty retained payload deletes the topic at the broker; no need to
                    // remember it.
                    if payload.is_empty() {
                        self.retained.remove(&topic);
                    }
                }
                Err(TryError::Full) => return false,
                Err(TryError::Other(e)) => {
                    warn!(%topic, error = %e, "cannot publish");
                    return false;
                }
            }
        }
        while let Some(p) = self.queue.front() {
            match self.client.try_publish(
                &p.topic,
                self.qos,
                false,
                p.payload.clone(),
                p.correlation.clone(),
            ) {
                Ok(()) => {
                    self.stats.published.fetch_add(1, Ordering::Relaxed);
                    self.queue.pop_front();
                }
                Err(_) => return false,
            }
        }
        true
    }
}
