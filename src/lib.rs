//! trueconf2mqtt: a bridge between TrueConf Room meeting-room endpoints and MQTT, with Home
//! Assistant discovery, plus an async client library for the TrueConf Room API.
//!
//! Layout, following the data:
//!
//! - [`protocol`]: the wire format (frames, typed events) and the method catalog, the one table
//!   that describes every API method; no I/O.
//! - [`room`]: the Room client: discovery, auth, request correlation, keepalive, reconnect,
//!   resync, and the [`room::RoomState`] model.
//! - [`simulator`]: a stand-in Room speaking the same protocol, for tests, benchmarks and demos.
//! - [`mqtt`]: the broker link (rumqttc event loop and outbox) and the topic tree.
//! - [`homeassistant`]: discovery payloads, pure functions of a room's state.
//! - [`bridge`]: state and events out, commands in; one publisher and one command task per room.
//! - [`config`]: settings from TOML, environment and secret files, with precise validation.
//! - [`app`] and [`cli`]: the daemon and the command line; `main.rs` only calls [`cli::main`];
//!   [`logging`]: its log output (one record per line, colour only for a terminal).
#![warn(missing_docs)]

pub mod app;
pub mod backoff;
pub mod bridge;
pub mod cli;
pub mod config;
pub mod demo;
pub mod health;
pub mod homeassistant;
pub mod logging;
pub mod mqtt;
pub mod protocol;
pub mod room;
pub mod secret;
pub mod simulator;
pub mod status;
pub mod systemd;
