//! The tasks that serve one Room: publishing its state and events, and running its commands in
//! order — while this bridge instance owns the room ([`supervise`]).

use std::sync::Arc;
use std::sync::atomic::{AtomicU64, Ordering};

use serde_json::{Value, json};
use tokio::sync::{mpsc, watch};
use tokio_util::sync::CancellationToken;
use tracing::info;

use super::command::{self, CommandError, ParsedCommand};
use super::ownership::Ownership;
use super::sweep::MigrationWatch;
use crate::control::hub::{self, Hub, Message, ReplyTo};
use crate::homeassistant::{self, DiscoveryContext, DiscoveryInputs, HaOptions};
use crate::mqtt::{MAX_OUTGOING_PAYLOAD, MqttLink, Publish};
use crate::protocol::{has_secret_field, redact};
use crate::room::{LinkState, RoomClient, RoomOptions, RoomState};
use crate::surface::{Topics, plain_fields, state_document};

/// Everything the tasks of one room need while it is served: what the room is, and the client
/// of the current connection to it.
#[derive(Clone)]
pub(crate) struct RoomContext {
    pub spec: Arc<RoomSpec>,
    pub client: RoomClient,
}

/// Per-room counters.
#[derive(Debug)]
pub struct RoomBridgeStats {
    /// How long commands took, from dequeue to the Room's last reply, in seconds.
    pub command_seconds: prometheus_client::metrics::histogram::Histogram,
    /// Events published.
    pub events: AtomicU64,
    /// Commands answered `ok`.
    pub commands_ok: AtomicU64,
    /// Commands answered `error`.
    pub commands_failed: AtomicU64,
}

/// Where a command's response goes.
#[derive(Clone)]
pub(crate) struct Reply {
    /// `<base>/<room>/response/<name>`, or the MQTT 5 Response Topic of the command.
    pub topic: String,
    /// MQTT 5 Correlation Data to echo.
    pub correlation: Option<bytes::Bytes>,
    /// A local control client that sent the command: the response goes to it alone, on
    /// `topic` (then relative to the base topic), and not to the broker.
    pub local: Option<(Arc<Hub>, ReplyTo)>,
}

impl Reply {
    /// The response as a message to publish.
    /// A body too large to publish (a huge Room reply) becomes a short error, so the command
    /// still gets its one response.
    pub fn publish(&self, body: &Value) -> Publish {
        let mut text = body.to_string();
        if text.len() > MAX_OUTGOING_PAYLOAD {
            let mut short = json!({
                "status": "error",
                "error": format!(
                    "the response of {} bytes exceeds the {MAX_OUTGOING_PAYLOAD} bytes the bridge publishes",
                    text.len()
                ),
            });
            if let Some(transaction) = body.get("transaction") {
                short["transaction"] = transaction.clone();
            }
            text = short.to_string();
        }
        Publish {
            correlation: self.correlation.clone(),
            ..Publish::response(self.topic.clone(), text)
        }
    }

    /// Sends the response: to the local client that asked, or to the broker.
    pub fn deliver(&self, link: &MqttLink, body: &Value) {
        let publish = self.publish(body);
        match &self.local {
            None => link.publish(publish),
            Some((hub, to)) => hub::reply(
                hub,
                to,
                Message {
                    topic: Arc::from(publish.topic),
                    payload: publish.payload,
                    retained: false,
                },
            ),
        }
    }
}

impl Default for RoomBridgeStats {
    fn default() -> RoomBridgeStats {
        RoomBridgeStats {
            command_seconds: prometheus_client::metrics::histogram::Histogram::new([
                0.0005, 0.001, 0.0025, 0.005, 0.01, 0.05, 0.1, 0.5, 1.0, 5.0,
            ]),
            events: AtomicU64::new(0),
            commands_ok: AtomicU64::new(0),
            commands_failed: AtomicU64::new(0),
        }
    }
}

/// What the bridge keeps of each room it was given.
pub(super) struct RoomHandle {
    pub(super) name: String,
    pub(super) commands: mpsc::Sender<QueuedCommand>,
    pub(super) ownership: tokio::sync::watch::Receiver<Ownership>,
    /// The Room client while this instance serves the room.
    pub(super) client: Arc<std::sync::Mutex<Option<RoomClient>>>,
    pub(super) stats: Arc<RoomBridgeStats>,
}

impl RoomHandle {
    /// The Room client while this instance serves the room.
    pub(super) fn client(&self) -> Option<RoomClient> {
        self.client.lock().ok().and_then(|c| c.clone())
    }
}

/// A command on its way to a room's command task.
pub(crate) struct QueuedCommand {
    /// Name for logs (field or method).
    pub name: String,
    pub reply: Reply,
    pub command: ParsedCommand,
}

/// A room's link changed: for `bridge/info`.
pub(crate) struct LinkReport {
    pub room: String,
    pub state: LinkState,
}

/// Events the Room client may hand over before it stops reading the Room: enough to ride over
/// scheduling hiccups, small enough that backpressure reaches the Room quickly.
const EVENT_STREAM: usize = 1024;

/// Publishes availability, state, discovery and events of one room until cancelled.
pub(crate) async fn publish_loop(
    ctx: RoomContext,
    reports: mpsc::Sender<LinkReport>,
    cancel: CancellationToken,
) {
    let mut state_rx = ctx.client.state();
    let mut link_rx = ctx.client.link();
    let mut events = ctx.client.event_stream(EVENT_STREAM);
    let mut event_topics = EventTopics::default();
    let mut discovery_inputs = None;
    // Discovery waits until the sweep has looked for configs to migrate (a device config must
    // not reach Home Assistant while the per-entity configs it replaces are still loaded).
    let mut migration_rx = ctx.spec.migration.clone();
    let mut awaiting_migration =
        ctx.spec.discovery_prefix.is_some() && migration_rx.borrow_and_update().is_none();

    let publish_link = |state: &LinkState| {
        let payload = if state.is_online() {
            "online"
        } else {
            "offline"
        };
        ctx.spec.link.publish(Publish::retained(
            ctx.spec.topics.availability(&ctx.spec.id),
            payload,
        ));
        let _ = reports.try_send(LinkReport {
            room: ctx.spec.id.clone(),
            state: state.clone(),
        });
    };
    publish_link(&link_rx.borrow_and_update().clone());
    let initial = state_rx.borrow_and_update().clone();
    publish_state(&ctx, &initial, &mut discovery_inputs, false);
    if !awaiting_migration {
        let (old, known) = taken_migration(&ctx, &migration_rx);
        announce(&ctx, &mut state_rx, &mut discovery_inputs, old, known).await;
    }

    'serve: loop {
        tokio::select! {
            _ = cancel.cancelled() => break,
            changed = migration_rx.changed(), if awaiting_migration => {
                awaiting_migration = false;
                if changed.is_ok() {
                    let (old, known) = taken_migration(&ctx, &migration_rx);
                    announce(&ctx, &mut state_rx, &mut discovery_inputs, old, known).await;
                }
            }
            changed = state_rx.changed() => {
                if changed.is_err() { break; }
                let state = state_rx.borrow_and_update().clone();
                publish_state(&ctx, &state, &mut discovery_inputs, !awaiting_migration);
            }
            changed = link_rx.changed() => {
                if changed.is_err() { break; }
                let state = link_rx.borrow_and_update().clone();
                publish_link(&state);
            }
            event = events.recv() => {
                let Some(mut event) = event else { break };
                // Events already waiting are published in one go, up to EVENT_BATCH, without a
                // trip through this select each (a burst's events come many at a time).
                for published in 1..=EVENT_BATCH {
                    // Backpressure: while the broker is connected but behind, wait for it; the
                    // Room client stops reading meanwhile, so nothing is dropped on the way.
                    if !ctx.spec.link.has_room() {
                        tokio::select! {
                            _ = cancel.cancelled() => break 'serve,
                            _ = ctx.spec.link.ready() => {}
                        }
                    }
                    publish_event(&ctx.spec, &mut event_topics, &event);
                    if published == EVENT_BATCH {
                        break;
                    }
                    match events.try_recv() {
                        Ok(next) => event = next,
                        Err(_) => break,
                    }
                }
            }
        }
    }
}

/// Events [`publish_loop`] publishes in one turn when they are waiting.
const EVENT_BATCH: usize = 64;

/// Publishes one event of the Room.
fn publish_event(spec: &RoomSpec, topics: &mut EventTopics, event: &crate::protocol::Event) {
    // Secrets are looked for at any depth, as `redact` masks them.
    let payload: bytes::Bytes = if has_secret_field(&event.fields) {
        redact(&Value::Object(event.fields.clone()))
            .to_string()
            .into()
    } else {
        // The Room's own bytes, passed through without a copy.
        event.json_bytes()
    };
    let topic = topics.get(spec, &event.name);
    spec.link.publish(Publish::transient(topic, payload));
    spec.stats.events.fetch_add(1, Ordering::Relaxed);
}

/// The event topics of one room by event name: built once per name instead of once per event
/// (sanitising and formatting the levels was about a seventh of the bridge's instructions per
/// event in a burst). A Room sends a few dozen kinds of event; past [`EVENT_TOPICS_KEPT`]
/// names (a Room making names up) the cache starts over, so memory stays bounded.
#[derive(Default)]
struct EventTopics {
    by_name: std::collections::HashMap<String, String>,
}

/// Event names whose topics are kept.
const EVENT_TOPICS_KEPT: usize = 256;

impl EventTopics {
    fn get(&mut self, spec: &RoomSpec, name: &str) -> String {
        if let Some(topic) = self.by_name.get(name) {
            return topic.clone();
        }
        if self.by_name.len() >= EVENT_TOPICS_KEPT {
            self.by_name.clear();
        }
        let topic = spec.topics.event(&spec.id, name);
        self.by_name.insert(name.to_owned(), topic.clone());
        topic
    }
}

/// Publishes discovery (migrating `old` configs of the other mode) and the state with it. When
/// Home Assistant already knows the room (`known`), it first waits (bounded) for the Room's
/// resync: Home Assistant applies a changed config (or re-creates moved entities) and reads the
/// retained state at once, so the selects' options must be the Room's device lists by then, or
/// the retained selection is an invalid option.
async fn announce(
    ctx: &RoomContext,
    state_rx: &mut watch::Receiver<RoomState>,
    discovery_inputs: &mut Option<DiscoveryInputs>,
    old: Vec<String>,
    known: bool,
) {
    if known || !old.is_empty() {
        let _ = tokio::time::timeout(MIGRATION_WAIT_FOR_ROOM, state_rx.wait_for(resynced)).await;
    }
    let state = state_rx.borrow_and_update().clone();
    publish_discovery(ctx, &state, discovery_inputs, old).await;
    publish_state(ctx, &state, discovery_inputs, true);
}

/// Whether the Room's resync answered both `getHardware` (device lists and selections) and
/// `getSystemInfo` (version): answers may come in any order. A Room without any device never
/// looks resynced; the wait for it is bounded.
fn resynced(s: &RoomState) -> bool {
    let hardware = !(s.cameras.is_empty() && s.microphones.is_empty() && s.speakers.is_empty())
        || s.camera.is_some()
        || s.microphone.is_some()
        || s.speaker.is_some();
    hardware && s.system_info.is_some()
}

/// The old-mode config topics of this room the sweep found (once; later calls get none), and
/// whether Home Assistant already knows the room (a config of ours was retained for it).
fn taken_migration(ctx: &RoomContext, migration: &MigrationWatch) -> (Vec<String>, bool) {
    migration
        .borrow()
        .as_ref()
        .map(|m| (m.take(&ctx.spec.id), m.known(&ctx.spec.id)))
        .unwrap_or_default()
}

/// Bound on waiting, before announcing a room Home Assistant knows, for the Room's resync
/// ([`resynced`]): a Room that is away is announced without its device lists.
const MIGRATION_WAIT_FOR_ROOM: std::time::Duration = std::time::Duration::from_secs(10);

/// Bound on waiting for the outbox to hand a migration step to the MQTT client: the steps must
/// reach Home Assistant in order (markers, clearing, new configs), and the outbox coalesces
/// retained values per topic, so each step is flushed before the next. Past it the step goes on.
const MIGRATION_STEP_FLUSH: std::time::Duration = std::time::Duration::from_secs(5);

/// The room's discovery configs from `state`, or `None` when discovery is off.
fn room_configs(
    ctx: &RoomContext,
    state: &RoomState,
) -> Option<Vec<homeassistant::DiscoveryMessage>> {
    let prefix = ctx.spec.discovery_prefix.as_deref()?;
    let discovery = DiscoveryContext {
        base_topic: ctx.spec.topics.base(),
        prefix,
        room_id: &ctx.spec.id,
        room_name: &ctx.spec.name,
        host: &ctx.spec.options.host,
        bridge_version: env!("CARGO_PKG_VERSION"),
    };
    let via = ctx.spec.bridge_state.as_deref();
    let area = ctx.spec.ha.area(&ctx.spec.id);
    Some(homeassistant::room_messages(
        ctx.spec.ha.mode,
        &discovery,
        state,
        via,
        area,
    ))
}

/// Publishes the room's discovery; with `old` config topics of the other mode, moves them as
/// Home Assistant documents ([`homeassistant::switch_messages`]): marker on each, each cleared,
/// then the new configs.
async fn publish_discovery(
    ctx: &RoomContext,
    state: &RoomState,
    discovery_inputs: &mut Option<DiscoveryInputs>,
    old: Vec<String>,
) {
    let Some(new) = room_configs(ctx, state) else {
        return;
    };
    let link = &ctx.spec.link;
    if old.is_empty() {
        for message in new {
            link.publish(Publish::retained(message.topic, message.payload));
        }
    } else {
        tracing::info!(
            room = %ctx.spec.id,
            configs = old.len(),
            mode = ctx.spec.ha.mode.name(),
            "migrating the room's Home Assistant discovery configs"
        );
        let n = old.len();
        let steps = homeassistant::switch_messages(&old, new);
        for (i, message) in steps.into_iter().enumerate() {
            if i == n || i == 2 * n {
                link.flush(MIGRATION_STEP_FLUSH).await;
            }
            link.publish(Publish::retained(message.topic, message.payload));
        }
    }
    *discovery_inputs = Some(DiscoveryInputs::of(state));
}

fn publish_state(
    ctx: &RoomContext,
    state: &RoomState,
    discovery_inputs: &mut Option<DiscoveryInputs>,
    discovery_ready: bool,
) {
    let inputs = DiscoveryInputs::of(state);
    // Republished only from a state the Room has filled in (its resync reached getSystemInfo,
    // after getHardware): a state cleared when the Room goes away or the bridge stops would
    // announce selects without options while their retained selection still names a device.
    if discovery_ready
        && state.system_info.is_some()
        && discovery_inputs.as_ref() != Some(&inputs)
        && let Some(configs) = room_configs(ctx, state)
    {
        for message in configs {
            ctx.spec
                .link
                .publish(Publish::retained(message.topic, message.payload));
        }
        *discovery_inputs = Some(inputs);
    }
    let document = state_document(state);
    for (field, value) in plain_fields(&document) {
        ctx.spec.link.publish(Publish::retained(
            ctx.spec.topics.field(&ctx.spec.id, field),
            value,
        ));
    }
    ctx.spec.link.publish(Publish::retained(
        ctx.spec.topics.room(&ctx.spec.id),
        document.to_string(),
    ));
}

/// Runs the room's commands one after another (so "mute" then "unmute" happen in that order)
/// and answers each exactly once. After `cancel` (the bridge stops), queued commands are
/// answered with an error instead of being run; after `lost` (another instance took the room)
/// it returns at once, leaving them to [`supervise`].
pub(crate) async fn command_loop(
    ctx: RoomContext,
    commands: &mut mpsc::Receiver<QueuedCommand>,
    cancel: CancellationToken,
    lost: CancellationToken,
) {
    let allow = ctx.spec.allow_dangerous.clone();
    let policy = move |method: &str| allow.iter().any(|m| m == "*" || m == method);
    loop {
        let next = tokio::select! {
            biased;
            _ = cancel.cancelled() => {
                commands.close();
                commands.recv().await
            }
            _ = lost.cancelled() => return,
            next = commands.recv() => next,
        };
        let Some(QueuedCommand {
            name,
            reply,
            command,
        }) = next
        else {
            break;
        };
        let started = std::time::Instant::now();
        let outcome = if cancel.is_cancelled() {
            Err(CommandError::ShuttingDown)
        } else {
            let state = ctx.client.state().borrow().clone();
            match command::plan(&command.kind, &state, &policy) {
                Err(error) => Err(error),
                Ok(actions) => command::execute(&ctx.client, actions)
                    .await
                    .map_err(|error| CommandError::Room {
                        room: ctx.spec.id.clone(),
                        error: Box::new(error),
                    }),
            }
        };
        ctx.spec
            .stats
            .command_seconds
            .observe(started.elapsed().as_secs_f64());
        match &outcome {
            Ok(_) => ctx.spec.stats.commands_ok.fetch_add(1, Ordering::Relaxed),
            Err(error) => {
                info!(room = %ctx.spec.id, command = %name, %error, "command failed");
                ctx.spec
                    .stats
                    .commands_failed
                    .fetch_add(1, Ordering::Relaxed)
            }
        };
        let body = command::response(outcome, command.transaction);
        reply.deliver(&ctx.spec.link, &body);
    }
}

/// What a room is, independent of any one connection to it.
pub(crate) struct RoomSpec {
    pub id: String,
    pub name: String,
    pub options: RoomOptions,
    pub link: MqttLink,
    pub topics: Topics,
    pub discovery_prefix: Option<String>,
    /// Discovery mode and suggested areas.
    pub ha: Arc<HaOptions>,
    /// Configs of the other discovery mode to migrate, once the sweep has read them.
    pub migration: MigrationWatch,
    /// The bridge state topic Home Assistant availability follows; `None` = `<base>/bridge/state`.
    pub bridge_state: Option<String>,
    pub allow_dangerous: Arc<Vec<String>>,
    pub stats: Arc<RoomBridgeStats>,
    /// The Room client while the room is served (for health reports and the stop sequence).
    pub client: Arc<std::sync::Mutex<Option<RoomClient>>>,
}

/// Serves a room while this instance owns it: connects to the Room only then (a Room takes one
/// controller at a time, so a standby instance must stay away), publishes and runs commands,
/// and lets go of the Room when another instance wins it. Commands for a room another instance
/// owns are dropped here, unanswered: the owner answers them. Commands that arrive while the
/// claim is pending wait for it.
pub(crate) async fn supervise(
    spec: Arc<RoomSpec>,
    ownership: &mut watch::Receiver<Ownership>,
    commands: &mut mpsc::Receiver<QueuedCommand>,
    reports: mpsc::Sender<LinkReport>,
    cancel: CancellationToken,
) {
    loop {
        // Wait until the room is ours.
        loop {
            let now = ownership.borrow_and_update().clone();
            if now == Ownership::Owned {
                break;
            }
            let refused = matches!(now, Ownership::Refused { .. });
            tokio::select! {
                biased;
                _ = cancel.cancelled() => {
                    // Never served here: a stop answers what waited (the claim never settled).
                    drain(&spec, commands, refused).await;
                    return;
                }
                changed = ownership.changed() => if changed.is_err() { return },
                Some(command) = commands.recv(), if refused => {
                    tracing::debug!(room = %spec.id, command = %command.name, "command left to the instance that owns the room");
                }
            }
        }

        let client = RoomClient::start(spec.options.clone());
        if let Ok(mut slot) = spec.client.lock() {
            *slot = Some(client.clone());
        }
        let ctx = RoomContext {
            spec: spec.clone(),
            client: client.clone(),
        };
        let lost = cancel.child_token();
        let publisher = tokio::spawn(publish_loop(ctx.clone(), reports.clone(), lost.clone()));
        let watcher = {
            let mut ownership = ownership.clone();
            let lost = lost.clone();
            tokio::spawn(async move {
                while ownership.changed().await.is_ok() {
                    if *ownership.borrow_and_update() != Ownership::Owned {
                        break;
                    }
                }
                lost.cancel();
            })
        };
        let mut publisher = publisher;
        let published = tokio::select! {
            _ = command_loop(ctx, commands, cancel.clone(), lost.clone()) => None,
            ended = &mut publisher => Some(ended),
        };
        lost.cancel();
        watcher.abort();
        let published = match published {
            Some(ended) => ended,
            None => publisher.await,
        };
        if let Err(failed) = published
            && failed.is_panic()
        {
            // The room's state would silently stop reaching the broker: fail the whole room
            // task, so its supervisor logs it and serves the room again.
            client.close().await;
            std::panic::resume_unwind(failed.into_panic());
        }
        if cancel.is_cancelled() {
            // The stop sequence closes the client after publishing `offline`.
            return;
        }
        // Lost to another instance: let go of the Room so the owner can hold it.
        client.close().await;
        if let Ok(mut slot) = spec.client.lock() {
            *slot = None;
        }
        let _ = reports.try_send(LinkReport {
            room: spec.id.clone(),
            state: LinkState::Stopped,
        });
    }
}

/// Answers what is queued when the bridge stops before the room was ever served here (or drops
/// it silently when another instance owns the room and answers it).
async fn drain(spec: &RoomSpec, commands: &mut mpsc::Receiver<QueuedCommand>, refused: bool) {
    commands.close();
    while let Some(command) = commands.recv().await {
        if refused {
            continue;
        }
        let body = command::response(Err(CommandError::ShuttingDown), command.command.transaction);
        command.reply.deliver(&spec.link, &body);
    }
}
