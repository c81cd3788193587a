//! Environment variables: which go to the `config` crate and which are room overrides.
//!
//! `TRUECONF2MQTT__<SECTION>__<KEY>` is handled by the `config` crate's `Environment` source
//! (separator `__`, names lowercased, `try_parsing(false)` so values stay strings). Rooms are an
//! array, which that source cannot address, so `TRUECONF2MQTT__ROOMS__<ID>__<KEY>` is taken out
//! here and applied to the room whose id matches.

use std::collections::HashMap;
use std::path::PathBuf;

use super::read::{ENV_PREFIX, Problems};

/// The environment variable systemd sets for `LoadCredential=`.
pub(super) const CREDENTIALS_DIRECTORY: &str = "CREDENTIALS_DIRECTORY";

/// One `TRUECONF2MQTT__ROOMS__<ID>__<KEY>` variable.
#[derive(Debug, Clone)]
pub(super) struct RoomOverride {
    /// The variable's name as given.
    pub(super) var: String,
    /// The room id, lowercased.
    pub(super) id: String,
    /// The key, lowercased.
    pub(super) key: String,
    /// The value, untouched (a PIN `0123` stays `0123`).
    pub(super) value: String,
}

impl RoomOverride {
    /// Whether this override names room `room_id` exactly (ids are lowercase).
    pub(super) fn names_exactly(&self, room_id: &str) -> bool {
        self.id == room_id
    }

    /// Whether this override names room `room_id` when `-` and `_` are taken as equal (shells do
    /// not allow `-` in variable names, so `DEMO_ROOM` addresses `demo-room`).
    pub(super) fn names_loosely(&self, room_id: &str) -> bool {
        self.id.replace('-', "_") == room_id.replace('-', "_")
    }
}

/// The environment, sorted out.
#[derive(Debug, Default)]
pub(super) struct SplitEnv {
    /// Variables for the `config` crate's `Environment` source.
    pub(super) global: HashMap<String, String>,
    /// Per-room overrides, in name order.
    pub(super) rooms: Vec<RoomOverride>,
    /// `$CREDENTIALS_DIRECTORY`, when set and not empty.
    pub(super) credentials_dir: Option<PathBuf>,
}

/// Sorts the environment `env` out; malformed room variables are reported in `problems`.
pub(super) fn split(env: HashMap<String, String>, problems: &mut Problems) -> SplitEnv {
    let prefix = format!("{}__", ENV_PREFIX.to_ascii_lowercase());
    let rooms_prefix = format!("{prefix}rooms");
    let mut out = SplitEnv::default();
    let mut vars: Vec<(String, String)> = env.into_iter().collect();
    vars.sort();
    for (var, value) in vars {
        if var == CREDENTIALS_DIRECTORY {
            if !value.is_empty() {
                out.credentials_dir = Some(PathBuf::from(value));
            }
            continue;
        }
        let lower = var.to_ascii_lowercase();
        if !lower.starts_with(&prefix) {
            continue;
        }
        let Some(rest) = lower.strip_prefix(&rooms_prefix) else {
            out.global.insert(var, value);
            continue;
        };
        let shape =
            format!("{ENV_PREFIX}__ROOMS__<ID>__<KEY>, e.g. {ENV_PREFIX}__ROOMS__BOARDROOM__PIN");
        if rest.is_empty() {
            problems.push(
                var,
                "rooms cannot be defined in the environment, only overridden",
                shape,
            );
            continue;
        }
        let Some(rest) = rest.strip_prefix("__") else {
            // `TRUECONF2MQTT__ROOMSX…`: some other, unknown top-level key; let the normal
            // unknown-key check name it.
            out.global.insert(var, value);
            continue;
        };
        match rest.rsplit_once("__") {
            Some((id, key)) if !id.is_empty() && !key.is_empty() => {
                out.rooms.push(RoomOverride {
                    var,
                    id: id.to_owned(),
                    key: key.to_owned(),
                    value,
                });
            }
            _ => problems.push(var, "does not name a room and a key", shape),
        }
    }
    out
}
