//! The MQTT side: the broker link (rumqttc) and the topic tree.

pub(crate) mod client;
mod link;
mod outbox;
mod topics;

pub use client::{TlsOptions, Version};
pub use link::{Connection, Inbound, LinkOptions, MqttLink, MqttStats, Publish, Started};
pub use topics::{CommandTopic, Topics, sanitize_level};
