//! trueconf2mqtt: a bridge between TrueConf Room meeting-room endpoints and MQTT, with Home
//! Assistant discovery, plus an async client library for the TrueConf Room API.
//!
//! Layout, bottom to top; each layer uses only those below it:
//!
//! - [`protocol`]: the wire format (frames, typed events) and the method catalog, the one table
//!   of API methods; no I/O.
//! - [`room`]: the Room client: discovery, auth, request correlation, keepalive, reconnect,
//!   resync, and the [`room::RoomState`] model. Never imports `mqtt`.
//! - [`simulator`]: a stand-in Room speaking the same protocol, for tests, benchmarks and demos.
//!   Imports neither `bridge` nor `mqtt`.
//! - [`mqtt`]: the broker link only (rumqttc event loop, outbox, reading retained topics). Never
//!   imports `room`, and names no topic of its own.
//! - [`surface`]: the bridge's public surface as data: the topic tree and the field table (what
//!   each field is, how it is set, how Home Assistant shows it); no I/O.
//! - [`homeassistant`]: discovery payloads rendered from the field table; pure.
//! - [`config`]: settings from TOML, environment and secret files, with precise validation.
//! - [`bridge`]: state and events out, commands in; per room a publisher and a command task,
//!   one router, bridge info and requests, ownership among instances.
//! - [`health`] (with [`web`], the UI at `/`), [`systemd`], [`status`], [`demo`]: what runs
//!   beside the bridge.
//! - [`app`] and [`cli`]: the daemon and the command line; `main.rs` only calls [`cli::main`];
//!   [`logging`]: its log output (one record per line, colour only for a terminal).
//!
//! [`backoff`] (the reconnect policy both links share), [`supervise`] (restarting failed tasks)
//! and [`secret`] are used throughout.
#![warn(missing_docs)]

pub mod app;
pub mod backoff;
pub mod bridge;
pub mod cli;
pub mod config;
pub mod control;
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
pub mod supervise;
pub mod surface;
pub mod systemd;
pub mod web;
