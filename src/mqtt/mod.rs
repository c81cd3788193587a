//! The MQTT side: the broker link (rumqttc) and the topic tree.

mod link;
mod topics;

pub use link::{Connection, Inbound, LinkOptions, MqttLink, MqttStats, Publish, Started};
pub use topics::{CommandTopic, Topics, sanitize_level};
