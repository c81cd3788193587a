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
use crate::mqtt::Inbound;
use crate::surface::{CommandTopic, RoomCommand, Topics};

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
    mut inbound: mpsc::Receiver<Inbound>,
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
        dispatch(&bridge, &topics, limits, target, message);
    }
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
) {
    if answered_elsewhere(bridge, &target, &message.topic) {
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
    };
    let respond = |body: Value| bridge.link.publish(reply.publish(&body));
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
