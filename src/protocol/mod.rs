//! The TrueConf Room API v1 wire protocol: frames, typed events, the method catalog.
//!
//! The protocol is JSON over WebSocket text frames, one flat object per frame (see
//! `protocol/SPEC.md`). A client sends `{"method":…,"requestId":…,<params>}`; the Room answers with
//! `{"method":…,"requestId":<echo or "">,"result":bool,<fields>}` and pushes notifications shaped
//! `{"method":"event","event":<name>,<fields>}`. This module only converts between bytes and values;
//! it performs no I/O, so the Room client, the simulator and the fuzz targets share it.

pub mod catalog;
mod event;
mod frame;
mod secrets;

pub use catalog::{ParamError, catalog};
pub use event::{AppState, Device, Event, EventKind, Participant};
pub use frame::{
    FrameError, Incoming, MAX_FRAME_BYTES, Response, encode_request, parse_incoming,
    websocket_config,
};
pub use secrets::{SECRET_FIELDS, has_secret, has_secret_field, redact};
