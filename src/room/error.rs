//! Errors of the Room client.

use std::time::Duration;

use serde_json::{Map, Value};

use crate::protocol::ParamError;

/// What can go wrong talking to a Room.
#[derive(Debug, Clone, thiserror::Error)]
pub enum RoomError {
    /// No authenticated session right now (the client is connecting or backing off).
    #[error("not connected to the Room")]
    NotConnected,
    /// The Room refused our credentials: a configuration problem, retried slowly.
    #[error("the Room refused authentication: {message} (check the PIN)")]
    AuthRefused {
        /// `resultCode` of the reply, if any.
        code: Option<i64>,
        /// The Room's error text.
        message: String,
    },
    /// No reply in time.
    #[error("the Room did not answer {method} within {} ms", timeout.as_millis())]
    Timeout {
        /// The method.
        method: String,
        /// The timeout that expired.
        timeout: Duration,
    },
    /// The Room answered `result: false`.
    #[error("the Room rejected {method}: {message}")]
    Rejected {
        /// The method.
        method: String,
        /// The Room's error text (or a generic one when it gave none).
        message: String,
        /// The whole reply.
        reply: Map<String, Value>,
    },
    /// The request does not fit the method table.
    #[error(transparent)]
    InvalidParams(#[from] ParamError),
    /// TCP connect, WebSocket handshake or discovery failed.
    #[error("cannot reach the Room at {addr}: {reason}")]
    Unreachable {
        /// Address tried.
        addr: String,
        /// What failed.
        reason: String,
    },
    /// The connection broke.
    #[error("connection to the Room lost: {0}")]
    ConnectionLost(String),
    /// The client was shut down.
    #[error("the Room client is stopped")]
    Stopped,
}
