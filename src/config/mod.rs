//! Configuration: a TOML file, overridden by environment variables, checked all at once.
//!
//! The annotated reference is `config/trueconf2mqtt.example.toml`. Loading goes:
//!
//! 1. the file (optional) is parsed as TOML by the `config` crate;
//! 2. `TRUECONF2MQTT__<SECTION>__<KEY>` variables override it (the `config` crate's
//!    `Environment` source with separator `__`, names case-insensitive, `try_parsing(false)` so
//!    every value stays a string until this module converts it: `TRUECONF2MQTT__MQTT__PORT=1884`,
//!    `TRUECONF2MQTT__MQTT__TLS__CA_FILE=/etc/ssl/ca.pem`);
//! 3. rooms are an array, which that source cannot address, so
//!    `TRUECONF2MQTT__ROOMS__<ID>__<KEY>` is applied here to the room whose id matches
//!    (case-insensitively, `_` also matching `-`, so `…__ROOMS__DEMO_ROOM__PIN` reaches room
//!    `demo-room`); a PIN `0123` stays `"0123"`. Rooms cannot be added from the environment, and
//!    lists are given comma-separated (`…__ALLOW_DANGEROUS=rebootSystem,shutdown`);
//! 4. secrets given as files (`password_file`, `pin_file`) are read, one trailing newline
//!    removed. A relative `*_file` path is taken relative to `$CREDENTIALS_DIRECTORY` when that is
//!    set (systemd `LoadCredential=`); Docker secrets are plain absolute paths
//!    (`/run/secrets/…`);
//! 5. everything is validated, and *every* problem is reported with the key it concerns, what is
//!    wrong and what is expected ([`ConfigError`]).
//!
//! An empty string means "not set" for every optional key (`username`, `password`, `*_file`,
//! `pin`, `http.listen`, TLS files), so an environment variable can also clear a value from the
//! file. Secrets are held as [`Secret`], whose `Debug`/`Display` print `***`; neither error
//! messages nor [`explain()`] ever show them.
//!
//! ```
//! use std::collections::HashMap;
//! use trueconf2mqtt::config::Settings;
//!
//! let env = HashMap::from([("TRUECONF2MQTT__MQTT__PORT".to_owned(), "1884".to_owned())]);
//! let settings = Settings::load_from(Some(Settings::embedded_default()), env).unwrap();
//! assert_eq!(settings.mqtt.port, 1884);
//! assert_eq!(settings.rooms[0].id, "demo-room");
//! ```

mod env;
mod error;
mod explain;
mod parse;
mod read;
#[cfg(test)]
mod tests;

use std::collections::HashMap;
use std::fmt;
use std::net::SocketAddr;
use std::path::{Path, PathBuf};
use std::time::Duration;

pub use error::{ConfigError, Problem};
pub use explain::explain;

use crate::protocol::catalog;
use crate::room::RoomOptions;
use crate::secret::Secret;

/// The configuration `trueconf2mqtt demo` starts from (one unsecured room on 127.0.0.1; the demo
/// overrides hosts and ports).
const EMBEDDED_DEFAULT: &str = include_str!("demo.toml");

/// Everything the bridge is configured with, validated.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct Settings {
    /// The MQTT broker and topics.
    pub mqtt: MqttSettings,
    /// Logging.
    pub log: LogSettings,
    /// The optional health/metrics endpoint and control surface.
    pub http: HttpSettings,
    /// The optional TCP line protocol for panels.
    pub panel: PanelSettings,
    /// How Rooms are announced to Home Assistant.
    pub homeassistant: HomeAssistantSettings,
    /// The Rooms to bridge; at least one, ids unique.
    pub rooms: Vec<RoomSettings>,
}

/// `[homeassistant]`: how Rooms are announced (discovery itself is `mqtt.discovery`).
#[derive(Debug, Clone, Copy, PartialEq, Eq, Default)]
pub struct HomeAssistantSettings {
    /// `homeassistant.discovery_mode`: `"device"` (default; one config per Room, Home Assistant
    /// 2024.11 and later) or `"entity"` (one config per entity, for older Home Assistant).
    pub discovery_mode: crate::homeassistant::DiscoveryMode,
}

/// `[mqtt]`: how to reach the broker and where to publish.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct MqttSettings {
    /// Broker host name or address (`mqtt.host`, default `127.0.0.1`).
    pub host: String,
    /// Broker port (`mqtt.port`, default 1883, or 8883 when TLS is configured).
    pub port: u16,
    /// Further nodes of a broker cluster: `mqtt.hosts = ["n1:1883", "n2:1883", …]` sets
    /// `host`/`port` to the first node and lists the others here (tried in turn after a lost
    /// connection); empty with `mqtt.host`.
    pub failover: Vec<(String, u16)>,
    /// MQTT client id, unique per broker (`mqtt.client_id`, default `trueconf2mqtt`; 1–64 of
    /// `A–Z a–z 0–9 _ -`); also the name rooms are claimed with when `instance` is not set.
    pub client_id: String,
    /// This bridge's name among several on one broker (`mqtt.instance`; 1–64 of
    /// `A–Z a–z 0–9 _ -`, not `state`, `info`, `request` or `response`). When set, the bridge's
    /// own topics are `<base>/bridge/<instance>/…` and rooms are claimed under this name;
    /// `None` keeps `<base>/bridge/…` and claims with the client id.
    pub instance: Option<String>,
    /// User name, if any (`mqtt.username`).
    pub username: Option<String>,
    /// Password, from `mqtt.password` or read from `mqtt.password_file`.
    pub password: Option<Secret>,
    /// The file the password was read from, when it came from one (resolved path).
    pub password_file: Option<PathBuf>,
    /// Prefix of every bridge topic (`mqtt.base_topic`, default `trueconf`).
    pub base_topic: String,
    /// Whether to publish Home Assistant discovery (`mqtt.discovery`, default true).
    pub discovery: bool,
    /// Home Assistant discovery prefix (`mqtt.discovery_prefix`, default `homeassistant`).
    pub discovery_prefix: String,
    /// MQTT keep-alive (`mqtt.keepalive_secs`, default 30 s, 5–65535 s).
    pub keepalive: Duration,
    /// QoS of state, events and responses: 0 or 1 (`mqtt.qos`, default 1; 2 is refused).
    pub qos: u8,
    /// Protocol version (`mqtt.version`, default 3.1.1).
    pub version: MqttVersion,
    /// Start a clean session (`mqtt.clean_session`, default false: a persistent session, so
    /// commands sent while the bridge is away are delivered when it is back).
    pub clean_session: bool,
    /// Commands older than this are refused (`mqtt.command_max_age_secs`, default 30 s).
    pub command_max_age: Duration,
    /// Largest payload accepted on any subscribed topic (`mqtt.max_payload_bytes`, default
    /// 64 KiB, 1 KiB–16 MiB): larger commands are refused with a response, and messages larger
    /// than this plus the topic are not even read (skipped and acknowledged, so a persistent
    /// session never gets them back; MQTT 5: the broker is told the limit).
    pub max_payload_bytes: usize,
    /// Events kept while the broker is away; the oldest are dropped past it
    /// (`mqtt.event_buffer`, default 1000, 1–1 000 000).
    pub event_buffer: usize,
    /// TLS, when an `[mqtt.tls]` section is present.
    pub tls: Option<MqttTls>,
}

/// `[mqtt.tls]`: its presence turns TLS on. Paths are resolved and checked readable.
#[derive(Debug, Clone, PartialEq, Eq, Default)]
pub struct MqttTls {
    /// PEM CA certificates to verify the broker with; `None` = the system roots.
    pub ca_file: Option<PathBuf>,
    /// PEM client certificate (set together with `key_file`).
    pub cert_file: Option<PathBuf>,
    /// PEM private key of the client certificate.
    pub key_file: Option<PathBuf>,
}

/// The MQTT protocol version.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Hash, Default)]
pub enum MqttVersion {
    /// MQTT 3.1.1 (`version = "3.1.1"`).
    #[default]
    V311,
    /// MQTT 5 (`version = "5"`).
    V5,
}

impl fmt::Display for MqttVersion {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        f.write_str(match self {
            MqttVersion::V311 => "3.1.1",
            MqttVersion::V5 => "5",
        })
    }
}

/// `[log]`.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct LogSettings {
    /// Filter used when `RUST_LOG` is not set (`log.level`, default `info`): a level
    /// (`trace`…`error`, `off`) or `tracing` directives such as `info,trueconf2mqtt=debug`.
    pub level: String,
    /// Output format (`log.format`, default text).
    pub format: LogFormat,
}

/// How log lines are written.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Hash, Default)]
pub enum LogFormat {
    /// Human-readable lines (`format = "text"`).
    #[default]
    Text,
    /// One JSON object per line (`format = "json"`).
    Json,
}

impl fmt::Display for LogFormat {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        f.write_str(match self {
            LogFormat::Text => "text",
            LogFormat::Json => "json",
        })
    }
}

/// `[http]`: the health/metrics endpoint, and the control surface beside it.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct HttpSettings {
    /// Address to listen on (`http.listen`, e.g. `127.0.0.1:9180`); `None` = off.
    pub listen: Option<SocketAddr>,
    /// `http.control`: serve the WebSocket API (`/api`) and the web UI (`/`) besides the
    /// probes (default `true`). Off anywhere but loopback unless a token is set.
    pub control: bool,
    /// `http.auth_token` (or read from `http.auth_token_file`): what control clients must send.
    /// Required when `listen` is not a loopback address and `control` is on.
    pub auth_token: Option<Secret>,
    /// Where the token was read from.
    pub auth_token_file: Option<PathBuf>,
}

impl Default for HttpSettings {
    fn default() -> HttpSettings {
        HttpSettings {
            listen: None,
            control: true,
            auth_token: None,
            auth_token_file: None,
        }
    }
}

impl HttpSettings {
    /// Whether the control surface is served: listening, and `control` on.
    pub fn control_enabled(&self) -> bool {
        self.listen.is_some() && self.control
    }
}

/// `[panel]`: the TCP line protocol for control systems (off by default).
#[derive(Debug, Clone, PartialEq, Eq, Default)]
pub struct PanelSettings {
    /// Address to listen on (`panel.listen`, e.g. `127.0.0.1:9181`); `None` = off.
    pub listen: Option<SocketAddr>,
    /// `panel.auth_token` (or `panel.auth_token_file`): what a client sends with `AUTH`.
    /// Required when `listen` is not a loopback address.
    pub auth_token: Option<Secret>,
    /// Where the token was read from.
    pub auth_token_file: Option<PathBuf>,
}

/// One `[[rooms]]` entry.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct RoomSettings {
    /// Id used in topics and Home Assistant ids: 1–64 of `a–z 0–9 _ -`, unique, not `bridge`.
    pub id: String,
    /// Display name (default: the id).
    pub name: String,
    /// Host name or address of the Room.
    pub host: String,
    /// The Room's web port serving `/public/<instance>/config.json` (default 80).
    pub port: u16,
    /// Instance ("twin") name (default `default`).
    pub instance: String,
    /// WebSocket port; when set, discovery through `config.json` is skipped.
    pub ws_port: Option<u16>,
    /// Home Assistant area suggested for the Room's device (`area`; 1–128 printable characters).
    pub area: Option<String>,
    /// PIN for `secured` auth, from `pin` or `pin_file`; `None` = unsecured.
    pub pin: Option<Secret>,
    /// The file the PIN was read from, when it came from one (resolved path).
    pub pin_file: Option<PathBuf>,
    /// Catalog methods flagged dangerous that may be called anyway; `"*"` allows all.
    pub allow_dangerous: Vec<String>,
    /// How long a request may wait for its reply (`request_timeout_ms`, default 5000 ms).
    pub request_timeout: Duration,
    /// Link silence after which the connection is dead (`keepalive_secs`, default 6 s).
    pub keepalive: Duration,
    /// Largest reconnect delay (`reconnect_max_secs`, default 30 s).
    pub reconnect_max: Duration,
    /// Delay before retrying after the Room refused the PIN (`auth_retry_secs`, default 60 s).
    pub auth_retry: Duration,
}

impl Settings {
    /// Loads the configuration: the TOML file at `path` (none: defaults and environment only),
    /// overridden by the process environment (`TRUECONF2MQTT__…`, `CREDENTIALS_DIRECTORY`).
    pub fn load(path: Option<&Path>) -> Result<Settings, ConfigError> {
        let env: HashMap<String, String> = std::env::vars_os()
            .filter_map(|(k, v)| Some((k.into_string().ok()?, v.to_string_lossy().into_owned())))
            .collect();
        match path {
            Some(path) => {
                let label = path.display().to_string();
                let text = std::fs::read_to_string(path).map_err(|e| {
                    Problem::new(
                        label.clone(),
                        format!(
                            "cannot read the configuration file: {}",
                            parse::io_reason(&e)
                        ),
                        "a readable UTF-8 TOML file",
                    )
                })?;
                parse::load(Some(&text), &label, env)
            }
            None => parse::load(None, "the configuration", env),
        }
    }

    /// Loads from a TOML text (or none) and an explicit environment, without touching the process
    /// environment; secret and TLS files are still read from disk.
    pub fn load_from(
        file_text: Option<&str>,
        env: HashMap<String, String>,
    ) -> Result<Settings, ConfigError> {
        parse::load(file_text, "the configuration", env)
    }

    /// The built-in TOML used by `trueconf2mqtt demo`: one unsecured room `demo-room` ("Demo
    /// Room") on 127.0.0.1, a distinct client id so a running bridge is not kicked off the broker.
    pub fn embedded_default() -> &'static str {
        EMBEDDED_DEFAULT
    }

    /// The room with this id.
    pub fn room(&self, id: &str) -> Option<&RoomSettings> {
        self.rooms.iter().find(|r| r.id == id)
    }
}

impl RoomSettings {
    /// Options for the Room client built from these settings (connect timeout and first
    /// reconnect delay keep the client's defaults).
    pub fn room_options(&self) -> RoomOptions {
        let mut options = RoomOptions::new(self.host.clone(), self.port);
        options.instance = self.instance.clone();
        options.ws_port = self.ws_port;
        options.pin = self.pin.clone();
        options.request_timeout = self.request_timeout;
        options.keepalive = self.keepalive;
        options.reconnect_max = self.reconnect_max;
        options.reconnect_min = options.reconnect_min.min(self.reconnect_max);
        options.auth_retry = self.auth_retry;
        options.label = Some(self.id.clone());
        options
    }

    /// Whether the bridge may call `method` on this room: methods the catalog does not flag
    /// dangerous always; dangerous ones only when listed in `allow_dangerous` (or `"*"` is).
    /// A method missing from the catalog counts as dangerous (only `"*"` allows it).
    pub fn allows(&self, method: &str) -> bool {
        let all = self.allow_dangerous.iter().any(|m| m == "*");
        match catalog().method(method) {
            Some(spec) if !spec.dangerous => true,
            Some(_) => all || self.allow_dangerous.iter().any(|m| m == method),
            None => all,
        }
    }

    /// Whether the room authenticates with a PIN.
    pub fn is_secured(&self) -> bool {
        self.pin.is_some()
    }
}
