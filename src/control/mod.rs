//! The local control surfaces: for panels, AV control systems and browsers that do not speak
//! MQTT. They talk to the bridge directly, not through the broker, so they work while it is
//! away.
//!
//! - [`hub`]: what the bridge publishes (retained values and a live feed), relative to
//!   `mqtt.base_topic`, tapped where the bridge hands messages to the broker link.
//! - [`web`] and [`ws`]: the WebSocket API at `/api` on `[http] listen` (and `/api/schema`).
//! - [`message`]: the WebSocket API's JSON messages; pure.
//! - [`panel`]: the TCP line protocol on `[panel] listen`.
//! - [`auth`]: tokens; [`limit`]: the per-connection rate limit; [`schema`]: the field table and
//!   the catalog as JSON, for clients that build forms.
//!
//! Commands take the MQTT commands' path ([`crate::bridge::Bridge::submit`]): the same limits,
//! parsing, dangerous-method policy and one response, sent to the asking client alone.

pub mod auth;
pub mod hub;
pub mod limit;
pub mod message;
pub mod panel;
pub mod schema;
pub mod web;
pub mod ws;
