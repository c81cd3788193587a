//! What the bridge is told to do: the broker, the topics, Home Assistant and the Rooms.

use std::time::Duration;

use crate::mqtt::LinkOptions;
use crate::room::RoomOptions;

/// One Room to serve.
#[derive(Debug, Clone)]
pub struct RoomEntry {
    /// Id used in topics and Home Assistant ids.
    pub id: String,
    /// Display name.
    pub name: String,
    /// How to reach it.
    pub options: RoomOptions,
    /// Dangerous catalog methods allowed for this room (`*` = all).
    pub allow_dangerous: Vec<String>,
}

/// Everything the bridge needs to run.
#[derive(Debug, Clone)]
pub struct BridgeOptions {
    /// Broker connection.
    pub mqtt: LinkOptions,
    /// Base topic.
    pub base_topic: String,
    /// Home Assistant discovery prefix; `None` turns discovery off.
    pub discovery_prefix: Option<String>,
    /// How Rooms are announced to Home Assistant (discovery mode, suggested areas).
    pub homeassistant: crate::homeassistant::HaOptions,
    /// Largest command payload accepted.
    pub max_payload_bytes: usize,
    /// Commands queued for the bridge at the broker during an outage longer than this are
    /// refused instead of executed late.
    pub command_max_age: Duration,
    /// The Rooms.
    pub rooms: Vec<RoomEntry>,
}
