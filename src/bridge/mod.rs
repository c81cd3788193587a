//! The bridge: Rooms on one side, the broker on the other, data flowing one way each.
//!
//! ```text
//!  Room ──ws──▶ RoomClient ──state/events──▶ publish_loop ──▶ outbox ──▶ broker
//!  broker ──▶ router ──▶ command_loop (one per room, in order) ──▶ RoomClient ──▶ Room
//!                                   └──────── response ──▶ outbox ──▶ broker
//! ```
//!
//! The two sides reconnect independently: the Room clients keep their sessions and state
//! while the broker is away (the outbox coalesces state and buffers events), and the broker
//! link stays up while a Room restarts (its availability goes `offline`, its commands are
//! answered with an error at once).
//!
//! Several bridges can share a broker, each with its own rooms ([`start_instance`]): each has
//! its own `<base>/bridge/<instance>/…` topics and last will, and a retained claim per room
//! makes sure a room configured in two instances is served by exactly one
//! ([`ownership`]); a Room is only connected to while this instance owns it.

pub mod command;
mod info;
mod options;
pub mod ownership;
mod requests;
mod room;
mod router;
mod sweep;

use std::collections::BTreeMap;
use std::sync::Arc;
use std::time::Duration;

use tokio::sync::mpsc;
use tokio_util::sync::CancellationToken;
use tracing::{info, warn};

use crate::control::hub::Hub;
use crate::mqtt::{MqttLink, Publish, Started};
use crate::room::{LinkState, RoomClient};
use crate::supervise::Supervisor;
use crate::surface::Topics;
use ownership::{Claim, Claims, Ownership};
use room::{RoomHandle, RoomSpec};
use router::Limits;

pub use options::{BridgeOptions, RoomEntry};
pub use room::RoomBridgeStats;
pub use router::NotACommand;

/// Commands queued per room before new ones are refused.
const ROOM_COMMAND_QUEUE: usize = 64;
/// Bound on the whole shutdown sequence after the signal.
const SHUTDOWN_GRACE: Duration = Duration::from_secs(4);

/// A running bridge.
pub struct Bridge {
    link: MqttLink,
    /// The name in this bridge's claims: `mqtt.instance`, or the client id.
    instance: String,
    /// Whether an instance name was configured (several bridges share the broker).
    instanced: bool,
    rooms: BTreeMap<String, RoomHandle>,
    /// Each room's last reported link state, and a counter bumped on every change.
    room_links: std::sync::Mutex<BTreeMap<String, LinkState>>,
    changes: tokio::sync::watch::Sender<u64>,
    /// The long-lived tasks' failures.
    supervisor: Arc<Supervisor>,
    /// Everything published, for the local control surfaces.
    hub: Arc<Hub>,
    topics: Topics,
    limits: Limits,
}

/// A room as seen by health reports and metrics.
pub struct RoomView<'a> {
    /// Room id.
    pub id: &'a str,
    /// Its client, while this instance serves the room.
    pub client: Option<RoomClient>,
    /// Bridge counters.
    pub stats: &'a RoomBridgeStats,
}

impl Bridge {
    /// Every room, in id order.
    pub fn rooms(&self) -> impl Iterator<Item = RoomView<'_>> {
        self.rooms.iter().map(|(id, r)| RoomView {
            id,
            client: r.client(),
            stats: &r.stats,
        })
    }

    /// The name this bridge claims rooms with (`mqtt.instance`, or the client id).
    pub fn instance(&self) -> &str {
        &self.instance
    }

    /// Whether this instance serves a room, stands by for it or is still claiming it.
    pub fn ownership(&self, id: &str) -> Option<Ownership> {
        self.rooms.get(id).map(|r| r.ownership.borrow().clone())
    }

    /// Each room's link state as last reported.
    pub fn room_links(&self) -> BTreeMap<String, LinkState> {
        self.room_links
            .lock()
            .map(|m| m.clone())
            .unwrap_or_default()
    }

    /// Notified whenever a room's link changes (the value counts changes).
    pub fn changes(&self) -> tokio::sync::watch::Receiver<u64> {
        self.changes.subscribe()
    }

    /// The broker link (for tests and the status endpoint).
    pub fn link(&self) -> &MqttLink {
        &self.link
    }

    /// The Room client of a room, while this instance serves it.
    pub fn room(&self, id: &str) -> Option<RoomClient> {
        self.rooms.get(id).and_then(RoomHandle::client)
    }

    /// Tasks that failed (and were restarted), for `/readyz`.
    pub fn task_failures(&self) -> &Supervisor {
        &self.supervisor
    }

    /// What the bridge publishes, for the local control surfaces.
    pub fn hub(&self) -> &Arc<Hub> {
        &self.hub
    }

    /// The topic tree.
    pub fn topics(&self) -> &Topics {
        &self.topics
    }

    /// The display name of a room.
    pub fn room_name(&self, id: &str) -> Option<&str> {
        self.rooms.get(id).map(|r| r.name.as_str())
    }

    /// The ids of the configured rooms, in order.
    pub fn room_ids(&self) -> impl Iterator<Item = &str> {
        self.rooms.keys().map(String::as_str)
    }

    /// A command from a local control surface: `topic` relative to the base topic
    /// (`<room>/set/<field>`, `<room>/set`, `<room>/request/<method>`, `bridge/request/<name>`).
    /// It takes the same path as one from the broker (limits, parsing, the dangerous-method
    /// policy, the room's queue); its one response goes to `reply_to` only, never to the
    /// broker. `Err`: the topic is not a command topic (nothing was submitted).
    pub fn submit(
        &self,
        topic: &str,
        payload: bytes::Bytes,
        reply_to: crate::control::hub::ReplyTo,
    ) -> Result<(), NotACommand> {
        router::submit_local(self, topic, payload, reply_to)
    }

    /// Counters of a room.
    pub fn room_stats(&self, id: &str) -> Option<&RoomBridgeStats> {
        self.rooms.get(id).map(|r| r.stats.as_ref())
    }
}

/// Runs the bridge until `shutdown` is cancelled, then stops gracefully: `offline` published,
/// queued commands answered, WebSockets closed, DISCONNECT sent — within a few seconds.
pub async fn run(options: BridgeOptions, shutdown: CancellationToken) {
    run_instance(options, None, shutdown).await;
}

/// [`run`] as one of several instances on the broker ([`start_instance`]).
pub async fn run_instance(
    options: BridgeOptions,
    instance: Option<String>,
    shutdown: CancellationToken,
) {
    let (bridge, tasks) = start_instance(options, instance, shutdown.clone());
    shutdown.cancelled().await;
    bridge.stop(tasks).await;
}

/// The background tasks of a running bridge.
pub struct Tasks {
    inner: CancellationToken,
    mqtt_cancel: CancellationToken,
    mqtt: tokio::task::JoinHandle<()>,
    router: tokio::task::JoinHandle<()>,
    rooms: Vec<tokio::task::JoinHandle<()>>,
    topics: Topics,
}

/// Starts the bridge in the background.
pub fn start(options: BridgeOptions, shutdown: CancellationToken) -> (Arc<Bridge>, Tasks) {
    start_instance(options, None, shutdown)
}

/// Starts the bridge as instance `instance` of several on one broker (`mqtt.instance`): its
/// own topics live under `<base>/bridge/<instance>/…` (state and last will, info, requests),
/// and commands for rooms it does not have are left to the other instances instead of being
/// answered "unknown room". `None` is [`start`]: `<base>/bridge/…`, as for a single bridge.
/// Either way every room is claimed on `<base>/<room>/owner` before it is served.
pub fn start_instance(
    options: BridgeOptions,
    instance: Option<String>,
    shutdown: CancellationToken,
) -> (Arc<Bridge>, Tasks) {
    let topics = Topics::with_instance(options.base_topic.clone(), instance.clone());
    // Cancelled with `shutdown` too: the router ends then, and the tasks fed by it (the claims)
    // end with it as expected rather than "unexpectedly".
    let inner = shutdown.child_token();
    let ha_status = options
        .discovery_prefix
        .as_ref()
        .map(|p| format!("{p}/status"));
    let mut filters = topics.command_filters();
    filters.extend(ha_status.clone());
    filters.extend(topics.ownership_filters(options.rooms.iter().map(|r| r.id.as_str())));

    let mut mqtt_options = options.mqtt.clone();
    mqtt_options.will_topic = topics.bridge_state();
    mqtt_options.first_prefix = options.discovery_prefix.clone();
    // The broker link outlives the rooms during a stop: it must still carry `offline`.
    let mqtt_cancel = CancellationToken::new();
    let Started {
        link,
        inbound,
        task: mqtt,
    } = MqttLink::start(mqtt_options, filters, mqtt_cancel.clone());
    // The local control surfaces see what the broker is sent, broker connected or not.
    let hub = Hub::new(&options.base_topic);
    let link = link.with_tap({
        let hub = hub.clone();
        Arc::new(move |p: &Publish| hub.observe(p))
    });
    link.publish(Publish::retained(topics.bridge_state(), "online"));

    let me = Claim {
        instance: instance
            .clone()
            .unwrap_or_else(|| options.mqtt.client_id.clone()),
        since: ownership::now_ms(),
        bridge_state: topics.bridge_state(),
        at: 0,
        intent: false,
    };
    let ids: Vec<String> = options.rooms.iter().map(|r| r.id.clone()).collect();
    let (claims, mut ownerships) = Claims::new(
        me.clone(),
        topics.clone(),
        link.clone(),
        &ids,
        instance.is_none(),
    );
    let ownership_changes = claims.changes();
    let (claims_tx, claims_rx) = mpsc::channel(1024);

    let (reports_tx, reports_rx) = mpsc::channel(1024);
    let mut rooms = BTreeMap::new();
    let supervisor = Supervisor::new();
    let mut tasks = vec![tokio::spawn(supervisor.clone().keep(
        "claims",
        inner.clone(),
        (claims, claims_rx),
        {
            let cancel = inner.clone();
            move |(claims, rx)| Box::pin(claims.run(rx, cancel.clone()))
        },
    ))];
    // Availability in Home Assistant follows this instance's own bridge state.
    let bridge_state = instance.as_ref().map(|_| topics.bridge_state());
    let ha = Arc::new(options.homeassistant.clone());
    // Filled by the sweep: rooms hold their discovery until it has looked for configs to migrate.
    let (migration_tx, migration) = tokio::sync::watch::channel(None);
    for entry in &options.rooms {
        let Some(ownership) = ownerships.remove(&entry.id) else {
            continue;
        };
        let client = Arc::new(std::sync::Mutex::new(None));
        let stats: Arc<RoomBridgeStats> = Arc::default();
        let spec = RoomSpec {
            id: entry.id.clone(),
            name: entry.name.clone(),
            options: entry.options.clone(),
            link: link.clone(),
            topics: topics.clone(),
            discovery_prefix: options.discovery_prefix.clone(),
            ha: ha.clone(),
            migration: migration.clone(),
            bridge_state: bridge_state.clone(),
            allow_dangerous: Arc::new(entry.allow_dangerous.clone()),
            stats: stats.clone(),
            client: client.clone(),
        };
        let (commands, commands_rx) = mpsc::channel(ROOM_COMMAND_QUEUE);
        let (spec, reports, cancel) = (Arc::new(spec), reports_tx.clone(), inner.clone());
        tasks.push(tokio::spawn(supervisor.clone().keep(
            format!("room {}", entry.id),
            inner.clone(),
            (ownership.clone(), commands_rx),
            move |(ownership, commands)| {
                Box::pin(room::supervise(
                    spec.clone(),
                    ownership,
                    commands,
                    reports.clone(),
                    cancel.clone(),
                ))
            },
        )));
        rooms.insert(
            entry.id.clone(),
            RoomHandle {
                name: entry.name.clone(),
                commands,
                ownership,
                client,
                stats,
            },
        );
    }
    drop(reports_tx);
    let limits = Limits {
        max_payload: options.max_payload_bytes,
        max_age: options.command_max_age,
    };
    let room_links = rooms
        .keys()
        .map(|id| (id.clone(), LinkState::Connecting))
        .collect();
    let bridge = Arc::new(Bridge {
        link,
        instance: me.instance,
        instanced: instance.is_some(),
        rooms,
        room_links: std::sync::Mutex::new(room_links),
        changes: tokio::sync::watch::Sender::new(0),
        supervisor: supervisor.clone(),
        hub,
        topics: topics.clone(),
        limits,
    });
    tasks.push(tokio::spawn(supervisor.clone().keep(
        "bridge info",
        inner.clone(),
        (reports_rx, ownership_changes),
        {
            let (bridge, topics, cancel) = (bridge.clone(), topics.clone(), inner.clone());
            move |(reports, ownership)| {
                Box::pin(info::info_loop(
                    bridge.clone(),
                    topics.clone(),
                    reports,
                    ownership,
                    cancel.clone(),
                ))
            }
        },
    )));
    if let Some(prefix) = &options.discovery_prefix {
        tasks.push(tokio::spawn(sweep::sweep(
            options.mqtt.clone(),
            prefix.clone(),
            topics.bridge_state(),
            sweep::topics_by_mode(&options, prefix),
            bridge.link.clone(),
            migration_tx,
            inner.clone(),
        )));
    }
    let router = tokio::spawn(supervisor.keep("router", shutdown.clone(), inbound, {
        let (bridge, topics) = (bridge.clone(), topics.clone());
        move |inbound| {
            Box::pin(router::route(
                bridge.clone(),
                topics.clone(),
                ha_status.clone(),
                claims_tx.clone(),
                limits,
                inbound,
                shutdown.clone(),
            ))
        }
    }));
    (
        bridge,
        Tasks {
            inner,
            mqtt_cancel,
            mqtt,
            router,
            rooms: tasks,
            topics,
        },
    )
}

impl Bridge {
    /// The graceful stop sequence.
    pub async fn stop(self: Arc<Self>, tasks: Tasks) {
        info!("stopping");
        let sequence = async {
            // 1. No new commands; queued ones are answered with an error by their room task.
            tasks.router.abort();
            tasks.inner.cancel();
            for task in tasks.rooms {
                let _ = task.await;
            }
            // 2. Our rooms offline and released (a standby instance may take them over), the
            //    final `bridge/info` saying so, the bridge offline.
            info::publish_stopped(&self, &tasks.topics);
            self.link.flush(Duration::from_secs(2)).await;
            // 3. DISCONNECT (after the queued publishes) and close the WebSockets.
            self.link.disconnect().await;
            let clients: Vec<RoomClient> =
                self.rooms.values().filter_map(RoomHandle::client).collect();
            futures_util::future::join_all(clients.iter().map(RoomClient::close)).await;
        };
        if tokio::time::timeout(SHUTDOWN_GRACE, sequence)
            .await
            .is_err()
        {
            warn!("graceful stop took too long; exiting anyway");
        }
        // The event loop ends by itself after sending DISCONNECT; if the broker is away it
        // never will, so stop it.
        let mut mqtt = tasks.mqtt;
        if tokio::time::timeout(Duration::from_secs(1), &mut mqtt)
            .await
            .is_err()
        {
            tasks.mqtt_cancel.cancel();
            let _ = mqtt.await;
        }
    }
}
