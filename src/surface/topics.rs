//! The topic tree: every topic the bridge publishes or listens to is built and parsed here.
//!
//! Names that come from outside
//! (event names sent by a Room) are sanitised so a misbehaving Room can never make the bridge
//! publish to a wildcard, an empty level or a topic with NUL in it.
//!
//! With an instance name (`mqtt.instance`, several bridges on one broker) the bridge's own
//! topics move one level down, `<base>/bridge/<instance>/…`, so every instance has its own
//! state, last will, info and requests; room topics never depend on the instance, so a room can
//! move between instances without panels or Home Assistant noticing.

/// The topic tree under one base topic.
#[derive(Debug, Clone)]
pub struct Topics {
    base: String,
    instance: Option<String>,
}

/// A command topic, parsed: whose it is and what it asks.
#[derive(Debug, Clone, PartialEq, Eq)]
pub enum CommandTopic {
    /// `<base>/bridge/request/<name>` (or `<base>/bridge/<instance>/request/<name>`):
    /// bridge-level requests (`republish`, `health_check`).
    Bridge {
        /// Request name.
        name: String,
    },
    /// A command for one room.
    Room {
        /// Room id as written in the topic.
        room: String,
        /// What it asks.
        command: RoomCommand,
    },
}

/// What a room command topic asks for.
#[derive(Debug, Clone, PartialEq, Eq)]
pub enum RoomCommand {
    /// `<base>/<room>/set`: a JSON object of fields.
    Set,
    /// `<base>/<room>/set/<field>`: a plain payload.
    SetField(String),
    /// `<base>/<room>/request/<method>`: any catalog method with JSON parameters.
    Request(String),
}

impl CommandTopic {
    /// The room the command is for; `None` for bridge requests.
    pub fn room(&self) -> Option<&str> {
        match self {
            CommandTopic::Bridge { .. } => None,
            CommandTopic::Room { room, .. } => Some(room),
        }
    }

    /// The name its response is published under: the request, `set`, the field or the method.
    pub fn name(&self) -> &str {
        match self {
            CommandTopic::Bridge { name } => name,
            CommandTopic::Room { command, .. } => match command {
                RoomCommand::Set => "set",
                RoomCommand::SetField(field) => field,
                RoomCommand::Request(method) => method,
            },
        }
    }
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
    /// Instance names that would make `<base>/bridge/<instance>/…` collide with the topics of a
    /// bridge without an instance (`<base>/bridge/response/state` vs `<base>/bridge/+/state`).
    pub const RESERVED_INSTANCES: &'static [&'static str] =
        &["state", "info", "request", "response"];

    /// Topics under `base` (validated by the config: no wildcards, no leading/trailing `/`).
    pub fn new(base: impl Into<String>) -> Topics {
        Topics {
            base: base.into(),
            instance: None,
        }
    }

    /// Topics of one of several bridge instances (validated by the config: one level of
    /// `A–Z a–z 0–9 _ -`, not one of [`Topics::RESERVED_INSTANCES`]); `None` is [`Topics::new`].
    pub fn with_instance(base: impl Into<String>, instance: Option<String>) -> Topics {
        Topics {
            base: base.into(),
            instance: instance.map(|i| sanitize_level(&i)),
        }
    }

    /// The base topic.
    pub fn base(&self) -> &str {
        &self.base
    }

    /// The instance name, when set.
    pub fn instance(&self) -> Option<&str> {
        self.instance.as_deref()
    }

    /// `<base>/bridge` or `<base>/bridge/<instance>`: where this bridge's own topics live.
    fn bridge(&self) -> String {
        match &self.instance {
            Some(instance) => format!("{}/bridge/{instance}", self.base),
            None => format!("{}/bridge", self.base),
        }
    }

    /// `<base>/bridge[/<instance>]/state`: `online`/`offline`, retained, the last will.
    pub fn bridge_state(&self) -> String {
        format!("{}/state", self.bridge())
    }

    /// `<base>/bridge[/<instance>]/info`: retained JSON about the bridge and its rooms.
    pub fn bridge_info(&self) -> String {
        format!("{}/info", self.bridge())
    }

    /// `<base>/bridge[/<instance>]/response/<name>`.
    pub fn bridge_response(&self, name: &str) -> String {
        format!("{}/response/{}", self.bridge(), sanitize_level(name))
    }

    /// `<base>/<room>/owner`: the retained claim of the instance serving the room.
    pub fn owner(&self, room: &str) -> String {
        self.field(room, "owner")
    }

    /// Filters for the ownership protocol: every bridge's state (to know which claims are
    /// alive) and the owner topics of `rooms` (only ours, never `#`). Bridge states first, so
    /// their retained values arrive before the claims that name them.
    pub fn ownership_filters<'a>(&self, rooms: impl IntoIterator<Item = &'a str>) -> Vec<String> {
        let mut filters = vec![
            format!("{}/bridge/state", self.base),
            format!("{}/bridge/+/state", self.base),
        ];
        filters.extend(rooms.into_iter().map(|room| self.owner(room)));
        filters
    }

    /// Whether `topic` is the state topic of some bridge on this base (any instance).
    pub fn is_any_bridge_state(&self, topic: &str) -> bool {
        let Some(rest) = topic
            .strip_prefix(&self.base)
            .and_then(|r| r.strip_prefix("/bridge/"))
        else {
            return false;
        };
        match rest.split('/').collect::<Vec<_>>().as_slice() {
            ["state"] => true,
            [instance, "state"] => !Self::RESERVED_INSTANCES.contains(instance),
            _ => false,
        }
    }

    /// The room whose owner topic `topic` is.
    pub fn parse_owner<'t>(&self, topic: &'t str) -> Option<&'t str> {
        let rest = topic.strip_prefix(&self.base)?.strip_prefix('/')?;
        match rest.split('/').collect::<Vec<_>>().as_slice() {
            [room, "owner"] if *room != "bridge" => Some(room),
            _ => None,
        }
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
            format!("{}/request/+", self.bridge()),
        ]
    }

    /// Parses an incoming command topic; `None` for anything else.
    pub fn parse_command(&self, topic: &str) -> Option<CommandTopic> {
        let rest = topic.strip_prefix(&self.base)?.strip_prefix('/')?;
        let levels: Vec<&str> = rest.split('/').collect();
        match (levels.as_slice(), self.instance.as_deref()) {
            (["bridge", "request", name], None) => Some(CommandTopic::Bridge {
                name: (*name).to_owned(),
            }),
            (["bridge", instance, "request", name], Some(ours)) if *instance == ours => {
                Some(CommandTopic::Bridge {
                    name: (*name).to_owned(),
                })
            }
            // `bridge` is never a room id (the config refuses it): another instance's topics.
            (["bridge", ..], Some(_)) => None,
            (levels, _) => Self::parse_room_command(levels),
        }
    }

    fn parse_room_command(levels: &[&str]) -> Option<CommandTopic> {
        let (room, command) = match levels {
            [room, "set"] => (room, RoomCommand::Set),
            [room, "set", field] => (room, RoomCommand::SetField((*field).to_owned())),
            [room, "request", method] => (room, RoomCommand::Request((*method).to_owned())),
            _ => return None,
        };
        Some(CommandTopic::Room {
            room: (*room).to_owned(),
            command,
        })
    }

    /// Filters for reading what the bridge holds retained: its state, each room's availability
    /// and JSON state (`status`).
    pub fn status_filters(&self) -> Vec<String> {
        vec![
            self.bridge_state(),
            format!("{}/+/availability", self.base),
            format!("{}/+", self.base),
        ]
    }

    /// Reads a topic of [`Topics::status_filters`]: `(room, None)` for a room's JSON state,
    /// `(room, Some(field))` for one of its per-room topics; `None` for the bridge's own topics
    /// and anything else.
    pub fn parse_room_topic<'t>(&self, topic: &'t str) -> Option<(&'t str, Option<&'t str>)> {
        let rest = topic.strip_prefix(&self.base)?.strip_prefix('/')?;
        match rest.split('/').collect::<Vec<_>>().as_slice() {
            ["bridge", ..] => None,
            [room] => Some((room, None)),
            [room, field] => Some((room, Some(field))),
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
            t.parse_command("trueconf/r1/set/some_field"),
            Some(CommandTopic::Room {
                room: "r1".into(),
                command: RoomCommand::SetField("some_field".into())
            })
        );
        assert_eq!(
            t.parse_command("trueconf/r1/request/getAppState"),
            Some(CommandTopic::Room {
                room: "r1".into(),
                command: RoomCommand::Request("getAppState".into())
            })
        );
        assert_eq!(t.parse_command("trueconf/r1/state"), None);
        assert_eq!(t.parse_command("other/r1/set"), None);
        for filter in t.command_filters() {
            assert!(rumqttc::valid_filter(&filter));
        }
    }

    #[test]
    fn without_an_instance_the_bridge_topics_are_unchanged() {
        let t = Topics::new("trueconf");
        assert_eq!(t.bridge_state(), "trueconf/bridge/state");
        assert_eq!(t.bridge_info(), "trueconf/bridge/info");
        assert_eq!(t.bridge_response("x"), "trueconf/bridge/response/x");
        assert!(
            t.command_filters()
                .contains(&"trueconf/bridge/request/+".to_owned())
        );
        assert_eq!(
            t.parse_command("trueconf/bridge/request/republish"),
            Some(CommandTopic::Bridge {
                name: "republish".into()
            })
        );
        assert_eq!(t.parse_command("trueconf/bridge/a/request/republish"), None);
    }

    #[test]
    fn an_instance_has_its_own_bridge_topics() {
        let t = Topics::with_instance("trueconf", Some("east".into()));
        assert_eq!(t.bridge_state(), "trueconf/bridge/east/state");
        assert_eq!(t.bridge_info(), "trueconf/bridge/east/info");
        assert_eq!(t.bridge_response("x"), "trueconf/bridge/east/response/x");
        assert_eq!(t.availability("r1"), "trueconf/r1/availability");
        assert_eq!(t.owner("r1"), "trueconf/r1/owner");
        let filters = t.command_filters();
        assert!(filters.contains(&"trueconf/bridge/east/request/+".to_owned()));
        assert!(!filters.contains(&"trueconf/bridge/request/+".to_owned()));
        assert_eq!(
            t.parse_command("trueconf/bridge/east/request/health_check"),
            Some(CommandTopic::Bridge {
                name: "health_check".into()
            })
        );
        // Another instance's requests, and the un-instanced form, are not ours; nor is `bridge`
        // ever taken for a room.
        assert_eq!(
            t.parse_command("trueconf/bridge/west/request/republish"),
            None
        );
        assert_eq!(t.parse_command("trueconf/bridge/request/republish"), None);
        assert_eq!(t.parse_command("trueconf/bridge/set"), None);
        assert_eq!(
            t.parse_command("trueconf/r1/set"),
            Some(CommandTopic::Room {
                room: "r1".into(),
                command: RoomCommand::Set
            })
        );
    }

    #[test]
    fn ownership_topics() {
        let t = Topics::with_instance("site/tc", Some("east".into()));
        let filters = t.ownership_filters(["r1", "r2"]);
        assert_eq!(
            filters,
            [
                "site/tc/bridge/state",
                "site/tc/bridge/+/state",
                "site/tc/r1/owner",
                "site/tc/r2/owner"
            ]
        );
        for filter in &filters {
            assert!(rumqttc::valid_filter(filter));
        }
        assert!(t.is_any_bridge_state("site/tc/bridge/state"));
        assert!(t.is_any_bridge_state("site/tc/bridge/west/state"));
        assert!(!t.is_any_bridge_state("site/tc/bridge/response/state"));
        assert!(!t.is_any_bridge_state("site/tc/r1/state"));
        assert_eq!(t.parse_owner("site/tc/r1/owner"), Some("r1"));
        assert_eq!(t.parse_owner("site/tc/bridge/owner"), None);
        assert_eq!(t.parse_owner("site/tc/r1/set"), None);
    }
}
