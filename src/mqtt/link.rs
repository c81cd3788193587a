//! The broker connection: rumqttc's event loop and the outbox that feeds it.
//!
//! Two tasks. The **event loop task** only polls rumqttc: it never awaits a client call (that
//! deadlocks once rumqttc's request channel is full, rumqtt #263/#1025), resubscribes on every
//! ConnAck (rumqttc does not, #250), hands incoming publishes to the bridge with `try_send`, and
//! sleeps with backoff after errors (rumqttc has no reconnect delay, #703/#918).
//!
//! The **outbox task** owns everything waiting to be published and applies the policy of
//! [`super::outbox`]: retained topics coalesced and republished after every reconnect, events
//! and responses in a bounded queue. Nothing is handed to rumqttc while the broker is away, so
//! no stale burst is replayed on reconnect; while it is connected, rumqttc is fed as fast as it
//! takes requests (the event loop signals each one it took), and producers that call
//! [`MqttLink::ready`] slow down instead of having their events dropped.

use std::collections::{HashMap, VecDeque};
use std::sync::Arc;
use std::sync::atomic::{AtomicBool, AtomicU64, AtomicUsize, Ordering};
use std::time::Duration;

use bytes::Bytes;
use rumqttc::QoS;
use tokio::sync::{Notify, mpsc, oneshot, watch};
use tokio_util::sync::CancellationToken;
use tracing::{debug, error, info, warn};

use super::client::{self, Client, EventLoop, Polled, TlsOptions, TryError, Version};
use super::outbox::{CONNECTED_LIMIT, Outbox};
use crate::backoff::{Reconnect, SHORT_SESSION};
use crate::secret::Secret;

/// How to connect to the broker.
#[derive(Debug, Clone)]
pub struct LinkOptions {
    /// Broker host.
    pub host: String,
    /// Broker port.
    pub port: u16,
    /// Further nodes of a broker cluster (`mqtt.hosts` after the first): after each failed or
    /// lost connection the link tries the next node in turn, `host:port` first.
    pub failover: Vec<(String, u16)>,
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
    /// Largest incoming packet kept ([`super::incoming_packet_limit`]); larger publishes are
    /// skipped and acknowledged unread, counted in [`MqttStats::inbound_oversized`].
    pub max_incoming_packet: usize,
    /// Events and responses kept while the broker is away.
    pub event_buffer: usize,
    /// Topic of the last will (retained `offline`); empty: no last will (one-shot clients).
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
            failover: Vec::new(),
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
    /// A transient message that goes before queued events: a response to a command, which must
    /// not wait behind another room's flood of events.
    pub urgent: bool,
}

impl Publish {
    /// A retained message.
    pub fn retained(topic: impl Into<String>, payload: impl Into<Bytes>) -> Publish {
        Publish {
            topic: topic.into(),
            payload: payload.into(),
            retain: true,
            correlation: None,
            urgent: false,
        }
    }

    /// A transient message (event, response).
    pub fn transient(topic: impl Into<String>, payload: impl Into<Bytes>) -> Publish {
        Publish {
            topic: topic.into(),
            payload: payload.into(),
            retain: false,
            correlation: None,
            urgent: false,
        }
    }

    /// A response to a command: transient, and sent before queued events.
    pub fn response(topic: impl Into<String>, payload: impl Into<Bytes>) -> Publish {
        Publish {
            urgent: true,
            ..Publish::transient(topic, payload)
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
    /// Events or responses dropped: past `event_buffer` while the broker was away, or past the
    /// outbox's hard bound while it was connected.
    pub dropped: AtomicU64,
    /// Incoming publishes dropped because the bridge could not keep up.
    pub inbound_dropped: AtomicU64,
    /// Incoming publishes over `max_incoming_packet`, skipped and acknowledged unread.
    pub inbound_oversized: AtomicU64,
    /// MQTT 5: our publishes the broker refused (a PUBACK with a failure reason, e.g. an ACL).
    pub publish_refused: AtomicU64,
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

/// Control messages for the outbox task; the messages to publish go through [`Inbox`].
enum Control {
    /// Publishes the MQTT client still held when the connection broke, oldest first: they go
    /// out again before anything queued since.
    Unsent(Vec<Publish>),
    RepublishAll,
    /// Publishes one retained topic again, even though its value did not change.
    Republish(String),
    Flush(oneshot::Sender<()>),
    Ping(oneshot::Sender<()>),
}

/// Messages on their way from the producers to the outbox task. Retained ones are coalesced per
/// topic here already, so state is never dropped however fast it is produced (1,000 rooms
/// starting at once), only superseded.
#[derive(Default)]
struct Inbox {
    latest: HashMap<String, Bytes>,
    /// Retained topics in first-seen order, so discovery published before state stays before it.
    order: Vec<String>,
    /// Events and responses, oldest first.
    transient: VecDeque<Publish>,
}

/// What the producers, the outbox task and the event loop task share.
#[derive(Default)]
struct LinkShared {
    inbox: std::sync::Mutex<Inbox>,
    /// Wakes the outbox task: something was put in the inbox.
    wake: Notify,
    /// Events and responses accepted and not yet handed to rumqttc (or dropped).
    backlog: AtomicUsize,
    /// Wakes producers waiting in [`MqttLink::ready`].
    room: Notify,
    /// Set by the outbox task when rumqttc refused a request or the outbox held events back
    /// ([`EVENT_DEPTH`]); the event loop task then signals `space` once rumqttc's request
    /// channel holds at most `space_below` requests.
    space_wanted: AtomicBool,
    space_below: AtomicUsize,
    space: Notify,
}

/// Events the outbox lets wait in rumqttc's request channel at a time. A response (or anything
/// else) handed to rumqttc goes behind whatever waits there, so this bounds how long another
/// room's flood of events can delay it: about this many publishes plus rumqttc's inflight
/// window (100) at the broker's pace, a few ms. Still a full batch for rumqttc's writes
/// (`max_request_batch`).
const EVENT_DEPTH: usize = 128;

/// Producers waiting in [`MqttLink::ready`] go on once the backlog is below this…
const LOW_WATER: usize = 2048;
/// …and wait while it is above this (several times rumqttc's request channel, so the channel
/// never runs dry while they wait).
const HIGH_WATER: usize = 8192;

/// Handle to the broker link.
#[derive(Clone)]
pub struct MqttLink {
    control: mpsc::Sender<Control>,
    shared: Arc<LinkShared>,
    connection: watch::Receiver<Connection>,
    client: Client,
    qos: QoS,
    stats: Arc<MqttStats>,
    /// Sees every message handed to [`MqttLink::publish`] (the local control surfaces).
    tap: Option<Tap>,
}

/// A watcher of everything published through a link, broker connected or not. It must return
/// quickly: it runs in the publisher's call.
pub type Tap = Arc<dyn Fn(&Publish) + Send + Sync>;

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
/// Control messages waiting for the outbox task.
const CONTROL_CAPACITY: usize = 64;

impl MqttLink {
    /// Connects (in the background) and subscribes to `filters` after every ConnAck. The last
    /// will publishes `offline` retained on `will_topic`.
    pub fn start(options: LinkOptions, filters: Vec<String>, cancel: CancellationToken) -> Started {
        let (client, eventloop) = client::build(&options, REQUEST_CAPACITY);
        let (connection_tx, connection) = watch::channel(Connection::default());
        let (inbound_tx, inbound) = mpsc::channel(INBOUND_CAPACITY);
        let (control_tx, control_rx) = mpsc::channel(CONTROL_CAPACITY);
        let shared = Arc::new(LinkShared::default());
        let stats = Arc::new(MqttStats::default());

        let task = tokio::spawn(poll_loop(
            eventloop,
            client.clone(),
            options.clone(),
            filters,
            connection_tx,
            inbound_tx,
            control_tx.clone(),
            shared.clone(),
            stats.clone(),
            cancel,
        ));
        tokio::spawn(
            OutboxTask {
                outbox: Outbox::new(options.event_buffer, options.first_prefix.clone()),
                client: client.clone(),
                qos: options.qos,
                stats: stats.clone(),
                shared: shared.clone(),
                event_buffer: options.event_buffer.max(1),
            }
            .run(control_rx, connection.clone()),
        );
        Started {
            link: MqttLink {
                control: control_tx,
                shared,
                connection,
                client,
                qos: options.qos,
                stats,
                tap: None,
            },
            inbound,
            task,
        }
    }

    /// Queues a message. Never blocks. Retained messages are coalesced per topic and never
    /// dropped; events and responses keep their order and are bounded (see [`super::outbox`]):
    /// past the bound the oldest is dropped and counted.
    pub fn publish(&self, message: Publish) {
        if let Some(tap) = &self.tap {
            tap(&message);
        }
        if !message.retain && self.publish_directly(&message) {
            return;
        }
        let shared = &*self.shared;
        let Ok(mut inbox) = shared.inbox.lock() else {
            return;
        };
        // The outbox task takes the whole inbox on each turn: it needs waking only for the
        // first message of a turn (one wake-up per batch, not per message of a burst).
        let was_empty = inbox.latest.is_empty() && inbox.transient.is_empty();
        if message.retain {
            if inbox
                .latest
                .insert(message.topic.clone(), message.payload)
                .is_none()
            {
                inbox.order.push(message.topic);
            }
        } else {
            if inbox.transient.len() >= CONNECTED_LIMIT {
                inbox.transient.pop_front();
                self.stats.dropped.fetch_add(1, Ordering::Relaxed);
            } else {
                shared.backlog.fetch_add(1, Ordering::Relaxed);
            }
            inbox.transient.push_back(message);
        }
        drop(inbox);
        if was_empty {
            shared.wake.notify_one();
        }
    }

    /// This link, with `tap` seeing every message published through it from now on (clones
    /// made afterwards included).
    pub fn with_tap(mut self, tap: Tap) -> MqttLink {
        self.tap = Some(tap);
        self
    }

    /// The fast path of an event or response: straight into rumqttc's request channel, one task
    /// hop less, when the broker is connected and nothing is waiting in the outbox ahead of it
    /// (the backlog only reaches zero once every earlier message was handed over, so order is
    /// kept). `false`: take the outbox.
    fn publish_directly(&self, message: &Publish) -> bool {
        if self.shared.backlog.load(Ordering::Acquire) != 0 || !self.is_connected() {
            return false;
        }
        // An event may not lengthen rumqttc's queue past [`EVENT_DEPTH`]: past it the outbox
        // paces events, so responses do not wait behind them.
        if !message.urgent && self.client.queued_requests() >= EVENT_DEPTH {
            return false;
        }
        let sent = self
            .client
            .try_publish(
                &message.topic,
                self.qos,
                false,
                message.payload.clone(),
                message.correlation.clone(),
            )
            .is_ok();
        if sent {
            self.stats.published.fetch_add(1, Ordering::Relaxed);
        }
        sent
    }

    /// Waits while the broker is connected and many events and responses are still waiting for
    /// it. A producer that awaits this before each [`MqttLink::publish`] of an event is slowed
    /// to the broker's pace instead of having its events dropped. Returns at once while the
    /// broker is away: then the `event_buffer` policy applies.
    pub async fn ready(&self) {
        loop {
            let room = self.shared.room.notified();
            tokio::pin!(room);
            room.as_mut().enable();
            if !self.is_connected() || self.shared.backlog.load(Ordering::Relaxed) < HIGH_WATER {
                return;
            }
            room.await;
        }
    }

    /// Whether [`MqttLink::ready`] would return at once: a check without awaiting, for a
    /// producer's loop.
    pub fn has_room(&self) -> bool {
        !self.is_connected() || self.shared.backlog.load(Ordering::Relaxed) < HIGH_WATER
    }

    /// Republishes every retained message (after a Home Assistant birth message).
    pub fn republish_all(&self) {
        let _ = self.control.try_send(Control::RepublishAll);
    }

    /// Publishes the retained value held for `topic` again (someone else overwrote it on the
    /// broker); nothing when no value is held.
    pub fn republish(&self, topic: &str) {
        let _ = self.control.try_send(Control::Republish(topic.to_owned()));
    }

    /// Waits until everything queued so far was handed to rumqttc (or `timeout` passes).
    pub async fn flush(&self, timeout: Duration) -> bool {
        let (tx, rx) = oneshot::channel();
        if self.control.send(Control::Flush(tx)).await.is_err() {
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
        if self.control.try_send(Control::Ping(tx)).is_err() {
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

/// MQTT 5 configured and no CONNACK ever received: brokers without MQTT 5 (RabbitMQ before
/// 3.13, NATS, rumqttd's 3.1.1 listener) close the connection or answer "unsupported protocol
/// version", which alone reads like a network fault. Says what to change instead.
fn explain_v5(options: &LinkOptions, stats: &MqttStats, error: String) -> String {
    if options.version != Version::V5 || stats.connects.load(Ordering::Relaxed) > 0 {
        return error;
    }
    format!(
        "{error} (mqtt.version = \"5\" and the broker never accepted a connection: it probably does not support MQTT 5; set mqtt.version = \"3.1.1\")"
    )
}

/// How long a clean disconnect may take to write what was queued before DISCONNECT.
const DISCONNECT_DRAIN: Duration = Duration::from_secs(1);

#[allow(clippy::too_many_arguments)]
async fn poll_loop(
    mut eventloop: EventLoop,
    client: Client,
    options: LinkOptions,
    filters: Vec<String>,
    connection: watch::Sender<Connection>,
    inbound: mpsc::Sender<Inbound>,
    outbox: mpsc::Sender<Control>,
    shared: Arc<LinkShared>,
    stats: Arc<MqttStats>,
    cancel: CancellationToken,
) {
    let mut reconnect = Reconnect::new(options.reconnect_min, options.reconnect_max);
    let nodes: Vec<(String, u16)> = std::iter::once((options.host.clone(), options.port))
        .chain(options.failover.iter().cloned())
        .collect();
    let mut node = 0;
    let mut broker = format!("{}:{}", options.host, options.port);
    let mut failures: u64 = 0;
    // When the link went down, and (after a reconnect that resumed the session, until our
    // subscriptions are confirmed) how long the outage lasted: what the broker delivers in that
    // window was queued for us while we were away.
    let mut down_since: Option<std::time::Instant> = None;
    let mut refused_topics: std::collections::HashSet<String> = std::collections::HashSet::new();
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
                reconnect.connected();
                failures = 0;
                stats.connects.fetch_add(1, Ordering::Relaxed);
                info!(%broker, client_id = %options.client_id, session_present, "connected to the MQTT broker");
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
            Ok(Polled::Oversized { topic, size }) => {
                let count = stats.inbound_oversized.fetch_add(1, Ordering::Relaxed) + 1;
                if count.is_power_of_two() {
                    warn!(
                        ?topic,
                        size,
                        limit = options.max_incoming_packet,
                        count,
                        "skipped an incoming MQTT message over the size limit (mqtt.max_payload_bytes)"
                    );
                }
            }
            Ok(Polled::Refused { topic, reason }) => {
                stats.publish_refused.fetch_add(1, Ordering::Relaxed);
                // Once per topic (a bounded memory of them): an ACL refuses the same topics on
                // every state change.
                if refused_topics.len() < REFUSED_TOPICS_REMEMBERED
                    && refused_topics.insert(topic.clone())
                {
                    warn!(%topic, %reason, "the broker refused a publish (check its ACL for this client); further refusals on this topic are only counted");
                }
            }
            Ok(Polled::Sent) => {
                if shared.space_wanted.load(Ordering::Acquire)
                    && client.queued_requests() <= shared.space_below.load(Ordering::Acquire)
                    && shared.space_wanted.swap(false, Ordering::AcqRel)
                {
                    shared.space.notify_one();
                }
            }
            Ok(Polled::Disconnected) => {
                debug!("sent DISCONNECT");
                connection.send_modify(|c| c.connected = false);
                // rumqttc reports DISCONNECT when it is queued: poll on until the broker closes
                // the connection, so what was queued before it is written, not dropped with the
                // socket (and the last will is not fired).
                let _ = tokio::time::timeout(DISCONNECT_DRAIN, async {
                    while eventloop.poll().await.is_ok() {}
                })
                .await;
                break;
            }
            Ok(Polled::Other) => {}
            Err(error) => {
                down_since.get_or_insert_with(std::time::Instant::now);
                connection.send_if_modified(|c| std::mem::replace(&mut c.connected, false));
                failures += 1;
                let delay = reconnect.failed();
                let refused = error.refused;
                let error = explain_v5(&options, &stats, error.message);
                if let Ok(mut last) = stats.last_error.lock() {
                    *last = Some(error.clone());
                }
                // One line per attempt; attempts are spaced by the backoff, never a hot loop.
                if failures <= 3 || failures.is_power_of_two() || refused {
                    warn!(%broker, %error, attempt = failures, retry_in_ms = delay.as_millis() as u64, "MQTT connection failed");
                }
                // Accepted, then dropped at once, again and again: the broker's usual answer to
                // a second connection with the same client id (it drops the older one).
                let cut_short = reconnect.cut_short();
                if cut_short == CLIENT_ID_CLASH_AFTER
                    || (cut_short > CLIENT_ID_CLASH_AFTER && cut_short.is_power_of_two())
                {
                    if let Ok(mut last) = stats.last_error.lock() {
                        *last = Some(format!(
                            "another client is probably using client_id '{}'",
                            options.client_id
                        ));
                    }
                    error!(
                        %broker,
                        client_id = %options.client_id,
                        times = cut_short,
                        "the broker closed the connection within {} s of accepting it, {cut_short} times in a row: another client is probably using client_id '{}' (a broker keeps one connection per client id); give each bridge its own mqtt.client_id",
                        SHORT_SESSION.as_secs(),
                        options.client_id
                    );
                }
                tokio::select! {
                    _ = cancel.cancelled() => break,
                    _ = tokio::time::sleep(delay) => {}
                }
                // What was in flight goes back to the outbox, which sends it again after the
                // reconnect even if the broker lost our session (rumqttc would drop it then).
                // Taken after the backoff, just before reconnecting: a publish that slipped into
                // rumqttc's channel before the outbox saw the link go down is taken with the
                // rest, in order, instead of overtaking them on the new connection.
                if nodes.len() > 1 {
                    node = (node + 1) % nodes.len();
                    let (host, port) = &nodes[node];
                    eventloop.set_broker(&options, host, *port);
                    broker = format!("{host}:{port}");
                    info!(%broker, "trying the next broker node");
                }
                let unsent = eventloop.take_unsent();
                if !unsent.is_empty() {
                    let count = unsent.iter().filter(|p| !p.retain).count() as u64;
                    debug!(count, "handing unacknowledged publishes back to the outbox");
                    if outbox.try_send(Control::Unsent(unsent)).is_err() {
                        stats.dropped.fetch_add(count, Ordering::Relaxed);
                        warn!(count, "outbox full: dropping unacknowledged events");
                    }
                }
            }
        }
    }
    connection.send_modify(|c| c.connected = false);
}

/// Topics whose refusal by the broker is logged (each once); more are only counted.
const REFUSED_TOPICS_REMEMBERED: usize = 1024;

/// Sessions cut short in a row before a client-id clash is reported.
const CLIENT_ID_CLASH_AFTER: u32 = 3;

/// The task that owns the [`Outbox`] and feeds rumqttc from it.
struct OutboxTask {
    outbox: Outbox,
    client: Client,
    qos: QoS,
    stats: Arc<MqttStats>,
    shared: Arc<LinkShared>,
    event_buffer: usize,
}

impl OutboxTask {
    async fn run(
        mut self,
        mut control: mpsc::Receiver<Control>,
        mut connection: watch::Receiver<Connection>,
    ) {
        let shared = self.shared.clone();
        let mut generation = 0;
        let mut connected = false;
        let mut blocked = false;
        let mut flushes: Vec<oneshot::Sender<()>> = Vec::new();
        loop {
            tokio::select! {
                message = control.recv() => match message {
                    None => break,
                    Some(Control::Unsent(unsent)) => {
                        let count = unsent.iter().filter(|p| !p.retain).count();
                        shared.backlog.fetch_add(count, Ordering::Relaxed);
                        let dropped = self.outbox.take_back(unsent);
                        self.dropped(dropped);
                    }
                    Some(Control::RepublishAll) => self.outbox.mark_all_dirty(),
                    Some(Control::Republish(topic)) => self.outbox.mark_held_dirty(topic),
                    Some(Control::Flush(done)) => flushes.push(done),
                    Some(Control::Ping(pong)) => {
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
                        self.outbox.mark_all_dirty();
                    }
                    if connected && !now.connected {
                        let dropped = self.outbox.connection_lost();
                        self.dropped(dropped);
                    }
                    connected = now.connected;
                    blocked = false;
                }
                _ = shared.space.notified(), if blocked => {}
                _ = shared.wake.notified() => {}
            }
            // Take what the producers queued since the last turn (cheap when nothing is there).
            let Inbox {
                mut latest,
                order,
                transient,
            } = shared
                .inbox
                .lock()
                .map(|mut inbox| std::mem::take(&mut *inbox))
                .unwrap_or_default();
            for topic in order {
                if let Some(payload) = latest.remove(&topic) {
                    self.outbox
                        .accept(Publish::retained(topic, payload), connected);
                }
            }
            for message in transient {
                let dropped = self.outbox.accept(message, connected);
                self.dropped(dropped);
            }
            if connected {
                // Set before trying, so a request rumqttc takes meanwhile is not missed. Woken
                // again once rumqttc's channel is half empty: refilled in batches, not one
                // request per wake-up.
                shared.space_below.store(EVENT_DEPTH / 2, Ordering::Release);
                shared.space_wanted.store(true, Ordering::Release);
                let (client, qos) = (&self.client, self.qos);
                let before = self.outbox.queued();
                let events = EVENT_DEPTH.saturating_sub(client.queued_requests());
                let drained = self.outbox.drain(events, |p| {
                    client
                        .try_publish(
                            &p.topic,
                            qos,
                            p.retain,
                            p.payload.clone(),
                            p.correlation.clone(),
                        )
                        .inspect_err(|e| match e {
                            TryError::Other(e) => {
                                warn!(topic = %p.topic, error = %e, "cannot publish")
                            }
                            TryError::Invalid(e) => {
                                warn!(error = %e, "dropping a message that can never be published")
                            }
                            TryError::Full => {}
                        })
                });
                blocked = drained.blocked || drained.throttled;
                if drained.blocked {
                    // The channel is full (retained messages after a reconnect): refill it
                    // once half of it went out.
                    shared
                        .space_below
                        .store(REQUEST_CAPACITY / 2, Ordering::Release);
                }
                if !blocked {
                    shared.space_wanted.store(false, Ordering::Release);
                    self.outbox.shrink();
                }
                self.stats
                    .published
                    .fetch_add(drained.sent, Ordering::Relaxed);
                self.stats
                    .dropped
                    .fetch_add(drained.invalid, Ordering::Relaxed);
                self.left_backlog(before - self.outbox.queued());
            }
            if !connected || shared.backlog.load(Ordering::Relaxed) < LOW_WATER {
                shared.room.notify_waiters();
            }
            if !self.outbox.has_work() {
                for done in flushes.drain(..) {
                    let _ = done.send(());
                }
            }
        }
    }

    /// `count` events or responses left the outbox (sent or dropped); producers counted them in.
    fn left_backlog(&self, count: usize) {
        // Release: a producer that sees the backlog at zero (and takes the fast path) also sees
        // the messages handed to rumqttc before, so its own goes after them.
        let _ = self
            .shared
            .backlog
            .fetch_update(Ordering::Release, Ordering::Relaxed, |b| {
                Some(b.saturating_sub(count))
            });
    }

    /// Counts (and now and then logs) events and responses dropped past the bounds.
    fn dropped(&self, count: u64) {
        if count == 0 {
            return;
        }
        self.left_backlog(count as usize);
        let before = self.stats.dropped.fetch_add(count, Ordering::Relaxed);
        let total = before + count;
        // Logged when the total crosses a power of two: a few lines, however long the outage.
        if (before + 1).next_power_of_two() <= total {
            warn!(
                dropped = total,
                event_buffer = self.event_buffer,
                "outbox full: dropping the oldest events and responses"
            );
        }
    }
}
