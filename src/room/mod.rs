//! The Room side: an async client for the TrueConf Room API v1.
//!
//! The Rust counterpart of the official Python library `python-trueconf-room`: port discovery
//! through `config.json`, PIN auth, every API method by name with `requestId` correlation, typed
//! events, keepalive, reconnect with backoff and a state resync after every reconnect.
//!
//! ```no_run
//! # async fn demo() -> Result<(), trueconf2mqtt::room::RoomError> {
//! use trueconf2mqtt::room::{RoomClient, RoomOptions};
//! let room = RoomClient::connect(RoomOptions::new("192.0.2.10", 80).with_pin("1234")).await?;
//! room.set_mic_mute(true).await?;
//! let reply = room.request("getAppState", serde_json::Value::Null).await?;
//! println!("{reply:?}");
//! # Ok(()) }
//! ```
//!
//! Layout: [`client`] is the public handle, `session` the task that owns the WebSocket,
//! [`state`] the pure reducer that turns replies and events into a [`RoomState`], [`discovery`]
//! the `config.json` lookup, `tcp` the socket tuning (no Nagle, no delayed ACKs).

pub mod client;
pub mod discovery;
mod error;
pub mod limiter;
pub mod panel;
pub mod participants;
mod session;
pub mod state;
mod tcp;

pub use client::{LinkState, PtzMove, RoomClient, RoomOptions, RoomStats};
pub use error::RoomError;
pub use panel::{ContentSource, Panel, Preset, Slideshow};
pub use state::{Caller, Conference, RoomState};
