//! Incoming publishes: ownership messages to the claim task, Home Assistant's birth message to
//! a republish, commands admitted (or refused with one response) and queued for their room.

use std::time::Duration;

use serde_json::Value;
use tokio::sync::mpsc;
use tokio_util::sync::CancellationToken;
use tracing::{debug, info, warn};

use super::command::{self, CommandError, ParsedCommand};
use super::ownership::Ownership;
use super::room::{QueuedCommand, Reply};
use super::{Bridge, ROOM_COMMAND_QUEUE, requests};
use std::sync::Arc;

use crate::control::hub::{Hub, ReplyTo};
use crate::mqtt::Inbound;
use crate::surface::{CommandTopic, RoomCommand, Topics};

/// Longest response topic the bridge publishes (bytes). Commands whose response topic would be
/// longer (room ids and names are far shorter) are answered on `<base>/bridge/response/error`.
pub(super) const MAX_RESPONSE_TOPIC: usize = 1024;

/// Limits on incoming commands.
#[derive(Debug, Clone, Copy)]
pub(super) struct Limits {
    pub max_payload: usize,
    pub max_age: Duration,
}

/// Reads incoming publishes until `shutdown` and dispatches them.
pub(super) async fn route(
    bridge: std::sync::Arc<Bridge>,
    topics: Topics,
    ha_status: Option<String>,
    claims: mpsc::Sender<Inbound>,
    limits: Limits,
    inbound: &mut mpsc::Receiver<Inbound>,
    shutdown: CancellationToken,
) {
    while let Some(message) = tokio::select! {
        m = inbound.recv() => m,
        _ = shutdown.cancelled() => None,
    } {
        if ha_status.as_deref() == Some(message.topic.as_str()) {
            if message.payload.as_ref().eq_ignore_ascii_case(b"online") {
                // Let Home Assistant finish subscribing before everything arrives again.
                let link = bridge.link.clone();
                let delay = Duration::from_millis(500 + fastrand::u64(..1500));
                info!(
                    delay_ms = delay.as_millis() as u64,
                    "Home Assistant came online; republishing"
                );
                tokio::spawn(async move {
                    tokio::time::sleep(delay).await;
                    link.republish_all();
                });
            }
            continue;
        }
        if topics.is_any_bridge_state(&message.topic)
            || topics.parse_owner(&message.topic).is_some()
        {
            if claims.try_send(message).is_err() {
                warn!("dropping an ownership message: the claim task is not keeping up");
            }
            continue;
        }
        let Some(target) = topics.parse_command(&message.topic) else {
            continue;
        };
        dispatch(&bridge, &topics, limits, target, message, None);
    }
}

/// A local command's topic is not a command topic.
#[derive(Debug, thiserror::Error)]
#[error(
    "'{0}' is not a command topic (expected <room>/set, <room>/set/<field>, <room>/request/<method> or bridge/request/<name>)"
)]
pub struct NotACommand(pub String);

/// A command from a local control surface ([`Bridge::submit`]).
pub(super) fn submit_local(
    bridge: &Bridge,
    topic: &str,
    payload: bytes::Bytes,
    reply_to: ReplyTo,
) -> Result<(), NotACommand> {
    let full = format!("{}/{topic}", bridge.topics.base());
    let Some(target) = bridge.topics.parse_command(&full) else {
        return Err(NotACommand(crate::surface::fields::shorten(topic)));
    };
    bridge
        .hub
        .stats()
        .commands
        .fetch_add(1, std::sync::atomic::Ordering::Relaxed);
    let message = Inbound {
        topic: full,
        payload,
        retain: false,
        response_topic: None,
        correlation: None,
        expiry: None,
        queued_for: None,
    };
    let local = (bridge.hub.clone(), reply_to);
    dispatch(
        bridge,
        &bridge.topics,
        bridge.limits,
        target,
        message,
        Some(local),
    );
    Ok(())
}

/// Whether another instance answers commands for this room (so this one stays silent).
fn answered_elsewhere(bridge: &Bridge, target: &CommandTopic, topic: &str) -> bool {
    let Some(room) = target.room() else {
        return false;
    };
    match bridge.rooms.get(room).map(|r| r.ownership.borrow().clone()) {
        Some(Ownership::Refused { by, .. }) => {
            debug!(%topic, owner = %by, "command for a room another instance serves");
            true
        }
        None if bridge.instanced => {
            debug!(%topic, "command for a room this instance does not have");
            true
        }
        _ => false,
    }
}

/// Admits one command and queues it for its room, or answers it at once: exactly one response.
fn dispatch(
    bridge: &Bridge,
    topics: &Topics,
    limits: Limits,
    target: CommandTopic,
    message: Inbound,
    local: Option<(Arc<Hub>, ReplyTo)>,
) {
    // A local client is always answered: it has no other instance to ask.
    if local.is_none() && answered_elsewhere(bridge, &target, &message.topic) {
        return;
    }
    // An empty MQTT payload is how a retained message is cleared (`mosquitto_pub -r -n`); the broker
    // forwards the clear to subscribers as an ordinary message. It is never a command.
    // A local client's empty payload is just that (no parameters): it is answered.
    if message.payload.is_empty() && local.is_none() {
        debug!(topic = %message.topic, "ignoring an empty command payload");
        return;
    }
    // MQTT 5 request/response: answer where the caller asked, with its correlation data.
    let reply = Reply {
        topic: message
            .response_topic
            .clone()
            .filter(|t| rumqttc::valid_topic(t))
            .unwrap_or_else(|| match target.room() {
                Some(room) => topics.response(room, target.name()),
                None => topics.bridge_response(target.name()),
            }),
        correlation: message.correlation.clone(),
        local: None,
    };
    // A response topic echoes the command topic's levels: one built from a huge topic would be
    // too long to publish (rumqttc would send a malformed packet and lose the connection).
    let mut reply = reply;
    let oversized = reply.topic.len() > MAX_RESPONSE_TOPIC;
    if oversized {
        reply.topic = topics.bridge_response("error");
    }
    if local.is_some() {
        // Local clients see topics relative to the base topic.
        let base = topics.base().len() + 1;
        reply.topic = reply.topic.get(base..).unwrap_or_default().to_owned();
        reply.local = local;
    }
    let respond = |body: Value| reply.deliver(&bridge.link, &body);
    let refuse = |error: CommandError, transaction: Option<Value>| {
        warn!(topic = %message.topic, %error, "refusing a command");
        respond(command::response(Err(error), transaction));
    };
    // Refused before parsing, a JSON command still gets its `transaction` back, so the caller
    // can tell which command was refused.
    let early_transaction = || {
        if message.payload.len() > limits.max_payload {
            return None;
        }
        serde_json::from_slice::<Value>(&message.payload)
            .ok()?
            .get("transaction")
            .cloned()
    };

    if oversized {
        let error = CommandError::TopicTooLong {
            bytes: message.topic.len(),
            max: MAX_RESPONSE_TOPIC,
        };
        return refuse(error, None);
    }
    // A retained command would fire again on every resubscribe: never run it.
    if message.retain {
        return refuse(CommandError::Retained, early_transaction());
    }
    // Queued for us while we were away longer than the command age limit: too old to act on.
    if let Some(away) = message.queued_for.filter(|away| *away > limits.max_age) {
        let error = CommandError::TooOld {
            away,
            max_age: limits.max_age,
        };
        return refuse(error, early_transaction());
    }
    if message.payload.len() > limits.max_payload {
        let error = CommandError::TooBig {
            size: message.payload.len(),
            max: limits.max_payload,
        };
        return refuse(error, None);
    }
    let Ok(payload) = std::str::from_utf8(&message.payload) else {
        return refuse(CommandError::NotUtf8, None);
    };

    let (room_id, command) = match &target {
        CommandTopic::Bridge { name } => {
            let mut body = requests::answer(bridge, name);
            // Like a room command, a JSON request gets its `transaction` back; any other
            // payload (empty, `1`) is still accepted.
            if let Some(transaction) = early_transaction() {
                body["transaction"] = transaction;
            }
            return respond(body);
        }
        CommandTopic::Room { room, command } => (room, command),
    };
    let Some(room) = bridge.rooms.get(room_id) else {
        let error = CommandError::UnknownRoom {
            room: room_id.clone(),
            known: bridge.rooms.keys().cloned().collect(),
        };
        return refuse(error, early_transaction());
    };
    if let Ownership::Refused { by, .. } = &*room.ownership.borrow() {
        // Only a local command gets here (one from the broker is left to the owner).
        let error = CommandError::ServedElsewhere {
            room: room_id.clone(),
            by: by.clone(),
        };
        return refuse(error, early_transaction());
    }
    let parsed: Result<ParsedCommand, _> = match command {
        RoomCommand::Set => command::parse_set(payload),
        RoomCommand::SetField(field) => Ok(command::parse_set_field(field, payload)),
        RoomCommand::Request(method) => command::parse_request(method, payload),
    };
    let command = match parsed {
        Err((error, transaction)) => return refuse(error, transaction),
        Ok(command) => command,
    };
    let transaction = command.transaction.clone();
    let queued = room.commands.try_send(QueuedCommand {
        name: target.name().to_owned(),
        reply: reply.clone(),
        command,
    });
    if queued.is_err() {
        let error = CommandError::QueueFull {
            room: room_id.clone(),
            limit: ROOM_COMMAND_QUEUE,
        };
        refuse(error, transaction);
    }
}
