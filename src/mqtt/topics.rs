//! Topic names: built in one place, parsed in one place.
//!
//! Every topic the bridge publishes or listens to is spelt here. Names that come from outside
//! (event names sent by a Room) are sanitised so a misbehaving Room can never make the bridge
//! publish to a wildcard, an empty level or a topic with NUL in it.

/// The topic tree under one base topic.
#[derive(Debug, Clone)]
pub struct Topics {
    base: String,
}

/// A command topic, parsed.
#[derive(Debug, Clone, PartialEq, Eq)]
pub enum CommandTopic {
    /// `<base>/<room>/set`: a JSON object of fields.
    Set {
        /// Room id as written in the topic.
        room: String,
    },
    /// `<base>/<room>/set/<field>`: a plain payload.
    SetField {
        /// Room id.
        room: String,
        /// Field name.
        field: String,
    },
    /// `<base>/<room>/request/<method>`: any catalog method with JSON parameters.
    Request {
        /// Room id.
        room: String,
        /// API method.
        method: String,
    },
    /// `<base>/bridge/request/<name>`: bridge-level requests (`republish`, `health_check`).
    Bridge {
        /// Request name.
        name: String,
    },
}

/// Replaces everything that must not appear in one topic level (`/`, `+`, `#`, NUL, control
/// characters) with `_`; an empty result becomes `_`.
pub fn sanitize_level(level: &str) -> String {
    let cleaned: String = level
        .chars()
        .map(|c| match c {
            '/' | '+' | '#' => '_',
            c if c.is_control() => '_',
            c => c,
        })
        .collect();
    if cleaned.is_empty() {
        "_".into()
    } else {
        cleaned
    }
}

impl Topics {
    /// Topics under `base` (validated by the config: no wildcards, no leading/trailing `/`).
    pub fn new(base: impl Into<String>) -> Topics {
        Topics { base: base.into() }
    }

    /// The base topic.
    pub fn base(&self) -> &str {
        &self.base
    }

    /// `<base>/bridge/state`: `online`/`offline`, retained, the last will.
    pub fn bridge_state(&self) -> String {
        format!("{}/bridge/state", self.base)
    }

    /// `<base>/bridge/info`: retained JSON about the bridge and its rooms.
    pub fn bridge_info(&self) -> String {
        format!("{}/bridge/info", self.base)
    }

    /// `<base>/bridge/response/<name>`.
    pub fn bridge_response(&self, name: &str) -> String {
        format!("{}/bridge/response/{}", self.base, sanitize_level(name))
    }

    /// `<base>/<room>`: retained JSON state.
    pub fn room(&self, room: &str) -> String {
        format!("{}/{}", self.base, sanitize_level(room))
    }

    /// `<base>/<room>/<field>`: retained plain value.
    pub fn field(&self, room: &str, field: &str) -> String {
        format!("{}/{}", self.room(room), sanitize_level(field))
    }

    /// `<base>/<room>/availability`.
    pub fn availability(&self, room: &str) -> String {
        self.field(room, "availability")
    }

    /// `<base>/<room>/event/<event>`.
    pub fn event(&self, room: &str, event: &str) -> String {
        format!("{}/event/{}", self.room(room), sanitize_level(event))
    }

    /// `<base>/<room>/set/<field>`.
    pub fn set_field(&self, room: &str, field: &str) -> String {
        format!("{}/set/{}", self.room(room), sanitize_level(field))
    }

    /// `<base>/<room>/response/<name>`.
    pub fn response(&self, room: &str, name: &str) -> String {
        format!("{}/response/{}", self.room(room), sanitize_level(name))
    }

    /// The filters the bridge subscribes to: its own command topics only, never `#`.
    pub fn command_filters(&self) -> Vec<String> {
        vec![
            format!("{}/+/set", self.base),
            format!("{}/+/set/+", self.base),
            format!("{}/+/request/+", self.base),
            format!("{}/bridge/request/+", self.base),
        ]
    }

    /// Parses an incoming command topic; `None` for anything else.
    pub fn parse_command(&self, topic: &str) -> Option<CommandTopic> {
        let rest = topic.strip_prefix(&self.base)?.strip_prefix('/')?;
        let levels: Vec<&str> = rest.split('/').collect();
        match levels.as_slice() {
            ["bridge", "request", name] => Some(CommandTopic::Bridge {
                name: (*name).to_owned(),
            }),
            [room, "set"] => Some(CommandTopic::Set {
                room: (*room).to_owned(),
            }),
            [room, "set", field] => Some(CommandTopic::SetField {
                room: (*room).to_owned(),
                field: (*field).to_owned(),
            }),
            [room, "request", method] => Some(CommandTopic::Request {
                room: (*room).to_owned(),
                method: (*method).to_owned(),
            }),
            _ => None,
        }
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn builds_and_parses() {
        let t = Topics::new("trueconf");
        assert_eq!(
            t.availability("boardroom"),
            "trueconf/boardroom/availability"
        );
        assert_eq!(t.event("r", "a/b+#"), "trueconf/r/event/a_b__");
        assert_eq!(t.event("r", ""), "trueconf/r/event/_");
        assert_eq!(
            t.parse_command("trueconf/r1/set/mic_muted"),
            Some(CommandTopic::SetField {
                room: "r1".into(),
                field: "mic_muted".into()
            })
        );
        assert_eq!(
            t.parse_command("trueconf/r1/request/getAppState"),
            Some(CommandTopic::Request {
                room: "r1".into(),
                method: "getAppState".into()
            })
        );
        assert_eq!(t.parse_command("trueconf/r1/state"), None);
        assert_eq!(t.parse_command("other/r1/set"), None);
        for filter in t.command_filters() {
            assert!(rumqttc::valid_filter(&filter));
        }
    }
}
