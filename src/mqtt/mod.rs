//! The broker link (rumqttc): connect, subscribe, publish with an outbox, reconnect. Topics and
//! payloads are the caller's business (`crate::surface` names them).

pub(crate) mod client;
mod link;
mod outbox;
mod retained;

pub use client::{MAX_OUTGOING_PAYLOAD, TlsOptions, Version, incoming_packet_limit};
pub use link::{Connection, Inbound, LinkOptions, MqttLink, MqttStats, Publish, Started, Tap};
pub use retained::{REPLICATION_BOUND, check_retained_shared, read_retained};
