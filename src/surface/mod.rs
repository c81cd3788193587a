//! The bridge's public surface, as data: the topic tree ([`Topics`]) and the field table
//! ([`fields::FIELDS`]). Pure: no I/O, no tasks.
//!
//! Everything that shows a room to the outside reads these two: publishing (`crate::bridge`),
//! command parsing, Home Assistant discovery (`crate::homeassistant`), `status` and the docs'
//! tables. `crate::mqtt` is only the broker link; it never names a topic of its own.

pub mod fields;
mod topics;

pub use fields::{Action, FIELDS, Field, FieldError, field_action, plain_fields, state_document};
pub use topics::{CommandTopic, RoomCommand, Topics, sanitize_level};
