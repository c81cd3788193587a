//! From TOML text and environment to validated [`Settings`].

use std::collections::HashMap;
use std::io;
use std::net::{IpAddr, SocketAddr};
use std::path::{Path, PathBuf};
use std::time::Duration;

use ::config::{Config, Environment, File, FileFormat, Map, Value, ValueKind};

use super::env::{self, SplitEnv};
use super::error::from_config_crate;
use super::read::{ENV_PREFIX, Problems, Section, quote, show};
use super::{
    ConfigError, HomeAssistantSettings, HttpSettings, LogFormat, LogSettings, MqttSettings,
    MqttTls, MqttVersion, PanelSettings, RoomSettings, Settings,
};
use crate::homeassistant::DiscoveryMode;
use crate::protocol::catalog;
use crate::secret::Secret;

pub(super) const ROOT_KEYS: &[&str] = &["mqtt", "log", "http", "panel", "homeassistant", "rooms"];
pub(super) const MQTT_KEYS: &[&str] = &[
    "host",
    "hosts",
    "port",
    "client_id",
    "instance",
    "username",
    "password",
    "password_file",
    "base_topic",
    "discovery",
    "discovery_prefix",
    "keepalive_secs",
    "qos",
    "version",
    "clean_session",
    "command_max_age_secs",
    "max_payload_bytes",
    "event_buffer",
    "tls",
];
pub(super) const TLS_KEYS: &[&str] = &["ca_file", "cert_file", "key_file"];
pub(super) const LOG_KEYS: &[&str] = &["level", "format"];
pub(super) const HTTP_KEYS: &[&str] = &["listen", "control", "auth_token", "auth_token_file"];
pub(super) const PANEL_KEYS: &[&str] = &["listen", "auth_token", "auth_token_file"];
pub(super) const HOMEASSISTANT_KEYS: &[&str] = &["discovery_mode"];
pub(super) const ROOM_KEYS: &[&str] = &[
    "id",
    "name",
    "host",
    "port",
    "instance",
    "ws_port",
    "area",
    "pin",
    "pin_file",
    "allow_dangerous",
    "request_timeout_ms",
    "keepalive_secs",
    "reconnect_max_secs",
    "auth_retry_secs",
];

/// Room ids that would collide with the bridge's own topics (`<base>/bridge/…`).
const RESERVED_ROOM_IDS: &[&str] = &["bridge"];

const TOPIC_EXPECTED: &str = "a topic prefix such as \"trueconf\" or \"site/trueconf\" (no + # NUL, no empty level, no leading or trailing /)";
const SECRET_FILE_EXPECTED: &str =
    "a readable file holding the secret (one trailing newline is ignored)";

/// The whole load: merge with the `config` crate, walk, validate.
pub(super) fn load(
    file_text: Option<&str>,
    file_label: &str,
    env: HashMap<String, String>,
) -> Result<Settings, ConfigError> {
    let mut problems = Problems::default();
    let env = env::split(env, &mut problems);

    let mut builder = Config::builder();
    if let Some(text) = file_text {
        builder = builder.add_source(File::from_str(text, FileFormat::Toml));
    }
    let global: Map<String, String> = env.global.clone().into_iter().collect();
    builder = builder.add_source(
        Environment::with_prefix(ENV_PREFIX)
            .separator("__")
            .try_parsing(false)
            .source(Some(global)),
    );
    let root = match builder.build() {
        Ok(config) => match config.cache.into_table() {
            Ok(root) => root,
            Err(e) => {
                problems
                    .list
                    .push(from_config_crate(e, file_label, file_text));
                return Err(ConfigError::new(problems.list));
            }
        },
        Err(e) => {
            problems
                .list
                .push(from_config_crate(e, file_label, file_text));
            return Err(ConfigError::new(problems.list));
        }
    };

    let settings = settings(root, &env, &mut problems);
    if problems.list.is_empty() {
        Ok(settings)
    } else {
        Err(ConfigError::new(problems.list))
    }
}

fn settings(root: Map<String, Value>, env: &SplitEnv, p: &mut Problems) -> Settings {
    let creds = env.credentials_dir.as_deref();
    let mut root = Section::new("", root);

    let mqtt_sec = p
        .table(&mut root, "mqtt")
        .unwrap_or_else(|| Section::new("mqtt", Map::new()));
    let mqtt = mqtt(mqtt_sec, creds, p);

    let log_sec = p
        .table(&mut root, "log")
        .unwrap_or_else(|| Section::new("log", Map::new()));
    let log = log(log_sec, p);

    let http_sec = p
        .table(&mut root, "http")
        .unwrap_or_else(|| Section::new("http", Map::new()));
    let http = http(http_sec, creds, p);

    let panel_sec = p
        .table(&mut root, "panel")
        .unwrap_or_else(|| Section::new("panel", Map::new()));
    let panel = panel(panel_sec, creds, p);

    let ha_sec = p
        .table(&mut root, "homeassistant")
        .unwrap_or_else(|| Section::new("homeassistant", Map::new()));
    let homeassistant = homeassistant(ha_sec, p);

    let before = p.list.len();
    let items = p.array(&mut root, "rooms");
    // A malformed `rooms` was just reported; "no rooms" would say the same twice.
    let malformed = p.list.len() > before;
    let rooms = rooms(items, malformed, env, creds, p);

    p.finish(root, ROOT_KEYS);
    Settings {
        mqtt,
        log,
        http,
        panel,
        homeassistant,
        rooms,
    }
}

// ---------------------------------------------------------------------------------------------
// [mqtt]

fn mqtt(mut s: Section, creds: Option<&Path>, p: &mut Problems) -> MqttSettings {
    let hosts = p.list(&mut s, "hosts");
    let tls = p.table(&mut s, "tls").map(|t| tls(t, creds, p));
    let default_port = if tls.is_some() { 8883 } else { 1883 };
    let port = p.port(&mut s, "port").unwrap_or(default_port);
    let (host, port, failover) = match hosts {
        None => (host(p, &mut s, "host", Some("127.0.0.1")), port, Vec::new()),
        Some(hosts) => broker_nodes(p, &mut s, &hosts, port),
    };

    let client_id = p
        .string(&mut s, "client_id")
        .unwrap_or_else(|| "trueconf2mqtt".to_owned());
    if !is_client_id(&client_id) {
        p.push(
            s.key("client_id"),
            format!("{} is not a usable client id", quote(&client_id)),
            "1–64 characters from A–Z a–z 0–9 _ - (unique per broker)",
        );
    }

    let instance = p.opt_string(&mut s, "instance");
    if let Some(instance) = &instance {
        if !is_client_id(instance) {
            p.push(
                s.key("instance"),
                format!("{} is not a usable instance name", quote(instance)),
                "1–64 characters from A–Z a–z 0–9 _ -, unique among the bridges on this broker (e.g. \"east-wing\"); empty = a single bridge",
            );
        } else if crate::surface::Topics::RESERVED_INSTANCES.contains(&instance.as_str()) {
            p.push(
                s.key("instance"),
                format!(
                    "{} is reserved: <base>/bridge/{instance}/… would collide with the topics of a bridge without an instance",
                    quote(instance)
                ),
                "any other name, e.g. \"east-wing\"",
            );
        }
    }

    let username = p.opt_string(&mut s, "username");
    let (password, password_file) = secret_pair(p, &mut s, "password", "password_file", creds);
    if password.is_some() && username.is_none() {
        p.push(
            s.key("password"),
            "is set but mqtt.username is not (MQTT sends a password only with a user name)",
            "mqtt.username set as well",
        );
    }

    let base_topic = p
        .string(&mut s, "base_topic")
        .unwrap_or_else(|| "trueconf".to_owned());
    check_topic(p, &s.key("base_topic"), &base_topic);
    let discovery = p.boolean(&mut s, "discovery").unwrap_or(true);
    let discovery_prefix = p
        .string(&mut s, "discovery_prefix")
        .unwrap_or_else(|| "homeassistant".to_owned());
    check_topic(p, &s.key("discovery_prefix"), &discovery_prefix);
    if discovery {
        let inside = |a: &str, b: &str| a.starts_with(b) && a[b.len()..].starts_with('/');
        if base_topic == discovery_prefix {
            p.push(
                s.key("base_topic"),
                format!("{} is also mqtt.discovery_prefix", quote(&base_topic)),
                "a base topic different from the discovery prefix",
            );
        } else if inside(&base_topic, &discovery_prefix) || inside(&discovery_prefix, &base_topic) {
            p.push(
                s.key("base_topic"),
                format!(
                    "{} and mqtt.discovery_prefix {} overlap",
                    quote(&base_topic),
                    quote(&discovery_prefix)
                ),
                "topic trees that do not contain one another",
            );
        }
    }

    let keepalive = p.uint(&mut s, "keepalive_secs", 5..=65535, "seconds");
    let qos = p.uint_with(&mut s, "qos", 0..=1, "0 or 1; QoS 2 is not supported");
    let version = p.choice(
        &mut s,
        "version",
        &[
            ("3.1.1", MqttVersion::V311),
            ("5", MqttVersion::V5),
            ("5.0", MqttVersion::V5),
        ],
        "\"3.1.1\" or \"5\"",
    );
    let clean_session = p.boolean(&mut s, "clean_session").unwrap_or(false);
    let command_max_age = p.uint(&mut s, "command_max_age_secs", 1..=86_400, "seconds");
    let max_payload_bytes = p.uint(
        &mut s,
        "max_payload_bytes",
        1024..=16 * 1024 * 1024,
        "bytes (1 KiB–16 MiB)",
    );
    let event_buffer = p.uint(&mut s, "event_buffer", 1..=1_000_000, "events");

    p.finish(s, MQTT_KEYS);
    MqttSettings {
        host,
        port,
        failover,
        client_id,
        instance,
        username,
        password,
        password_file,
        base_topic,
        discovery,
        discovery_prefix,
        keepalive: Duration::from_secs(keepalive.unwrap_or(30)),
        qos: qos.map_or(1, |q| q as u8),
        version: version.unwrap_or_default(),
        clean_session,
        command_max_age: Duration::from_secs(command_max_age.unwrap_or(30)),
        max_payload_bytes: to_usize(max_payload_bytes.unwrap_or(65_536)),
        event_buffer: to_usize(event_buffer.unwrap_or(1000)),
        tls,
    }
}

/// Most nodes `mqtt.hosts` may list: a cluster is a handful of nodes; a long list is a mistake
/// (and each dead node costs a reconnect backoff before the next is tried).
const MAX_BROKER_NODES: usize = 16;

/// `mqtt.hosts`: `"host"`, `"host:port"` or `"[v6]:port"` each (port defaults to `mqtt.port`).
/// Returns the first node and the others, in order.
fn broker_nodes(
    p: &mut Problems,
    s: &mut Section,
    hosts: &[String],
    default_port: u16,
) -> (String, u16, Vec<(String, u16)>) {
    let key = s.key("hosts");
    if p.string(s, "host").is_some() {
        p.push(
            s.key("host"),
            "is set together with mqtt.hosts",
            "either mqtt.host (one broker) or mqtt.hosts (the nodes of a cluster)",
        );
    }
    if hosts.is_empty() || hosts.len() > MAX_BROKER_NODES {
        p.push(
            key.clone(),
            format!("lists {} nodes", hosts.len()),
            format!("1–{MAX_BROKER_NODES} broker nodes, e.g. [\"n1:1883\", \"n2:1883\"]"),
        );
    }
    let mut nodes = Vec::with_capacity(hosts.len());
    for (i, entry) in hosts.iter().enumerate() {
        match broker_node(entry.trim(), default_port) {
            Some(node) if !nodes.contains(&node) => nodes.push(node),
            Some(_) => p.push(
                format!("{key}[{i}]"),
                format!("{} is listed twice", quote(entry)),
                "each node once",
            ),
            None => p.push(
                format!("{key}[{i}]"),
                format!("{} is not a host or host:port", quote(entry)),
                "\"host\", \"host:port\" or \"[2001:db8::1]:port\", e.g. \"mqtt-1.example.org:1883\"",
            ),
        }
    }
    let mut nodes = nodes.into_iter();
    let (host, port) = nodes
        .next()
        .unwrap_or(("127.0.0.1".to_owned(), default_port));
    (host, port, nodes.collect())
}

fn broker_node(entry: &str, default_port: u16) -> Option<(String, u16)> {
    let port = |text: &str| text.parse::<u16>().ok().filter(|p| *p > 0);
    let (host, port) = if let Some(rest) = entry.strip_prefix('[') {
        let (v6, after) = rest.split_once(']')?;
        v6.parse::<std::net::Ipv6Addr>().ok()?;
        match after {
            "" => (v6, default_port),
            after => (v6, port(after.strip_prefix(':')?)?),
        }
    } else if entry.parse::<IpAddr>().is_ok() {
        (entry, default_port)
    } else {
        match entry.split_once(':') {
            None => (entry, default_port),
            Some((host, text)) => (host, port(text)?),
        }
    };
    is_host(host).then(|| (host.to_owned(), port))
}

fn to_usize(n: u64) -> usize {
    usize::try_from(n).unwrap_or(usize::MAX)
}

fn is_client_id(id: &str) -> bool {
    (1..=64).contains(&id.len())
        && id
            .bytes()
            .all(|b| b.is_ascii_alphanumeric() || b == b'_' || b == b'-')
}

fn check_topic(p: &mut Problems, key: &str, topic: &str) {
    let problem = if topic.is_empty() {
        Some("is empty".to_owned())
    } else if !rumqttc::valid_topic(topic) {
        Some(format!("{} contains a wildcard (+ or #)", quote(topic)))
    } else if topic.contains('\0') {
        Some("contains a NUL character".to_owned())
    } else if topic.starts_with('/') || topic.ends_with('/') {
        Some(format!("{} starts or ends with /", quote(topic)))
    } else if topic.contains("//") {
        Some(format!("{} has an empty level (//)", quote(topic)))
    } else if topic.starts_with('$') {
        Some(format!(
            "{} starts with $, which brokers reserve for themselves",
            quote(topic)
        ))
    } else if topic.len() > 1024 {
        Some("is longer than 1024 bytes".to_owned())
    } else {
        None
    };
    if let Some(message) = problem {
        p.push(key, message, TOPIC_EXPECTED);
    }
}

fn tls(mut s: Section, creds: Option<&Path>, p: &mut Problems) -> MqttTls {
    let ca_file = pem_file(p, &mut s, "ca_file", creds, Pem::Certificate);
    let cert_file = pem_file(p, &mut s, "cert_file", creds, Pem::Certificate);
    let key_file = pem_file(p, &mut s, "key_file", creds, Pem::PrivateKey);
    // `pem_file` returns the path even when unreadable, so presence is judged on the keys.
    match (&cert_file, &key_file) {
        (Some(_), None) => p.push(
            s.key("key_file"),
            "is missing while mqtt.tls.cert_file is set",
            "the client certificate's private key (PEM), or neither of cert_file and key_file",
        ),
        (None, Some(_)) => p.push(
            s.key("cert_file"),
            "is missing while mqtt.tls.key_file is set",
            "the client certificate (PEM), or neither of cert_file and key_file",
        ),
        _ => {}
    }
    p.finish(s, TLS_KEYS);
    MqttTls {
        ca_file,
        cert_file,
        key_file,
    }
}

#[derive(Clone, Copy)]
enum Pem {
    Certificate,
    PrivateKey,
}

/// A PEM file path, resolved and checked readable and PEM-shaped (the content is never shown).
fn pem_file(
    p: &mut Problems,
    s: &mut Section,
    name: &str,
    creds: Option<&Path>,
    kind: Pem,
) -> Option<PathBuf> {
    let raw = p.opt_string(s, name)?;
    let path = resolve(&raw, creds);
    let shown = file_subject(&raw, &path, creds);
    let key = s.key(name);
    let (expected, marker) = match kind {
        Pem::Certificate => (
            "a readable PEM certificate file",
            "-----BEGIN CERTIFICATE-----",
        ),
        Pem::PrivateKey => (
            "a readable, unencrypted PEM private key",
            "PRIVATE KEY-----",
        ),
    };
    match std::fs::read(&path) {
        Err(e) => p.push(
            &key,
            format!("cannot read {shown}: {}", io_reason(&e)),
            expected,
        ),
        Ok(bytes) => {
            let text = String::from_utf8_lossy(&bytes);
            if !text.contains(marker) {
                p.push(
                    &key,
                    format!("{shown} does not look like a PEM file ({marker} not found)"),
                    expected,
                );
            } else if text.contains("ENCRYPTED PRIVATE KEY") {
                p.push(&key, format!("{shown} holds an encrypted key"), expected);
            }
        }
    }
    Some(path)
}

// ---------------------------------------------------------------------------------------------
// Secrets

/// A `*_file` path: relative paths are taken relative to `$CREDENTIALS_DIRECTORY` when set.
fn resolve(raw: &str, creds: Option<&Path>) -> PathBuf {
    let path = PathBuf::from(raw);
    match creds {
        Some(dir) if path.is_relative() => dir.join(path),
        _ => path,
    }
}

/// How errors name the file of a `*_file` key. A value that names something on disk, or that is
/// written as a path (a `/` in it) into an existing directory other than `/`, is a file name and
/// is shown. Anything else may be the secret itself typed into the wrong key (`pin_file =
/// "0123"`, a pasted PEM block), so it is never quoted: the error speaks of "the file this key
/// names" and at most of `$CREDENTIALS_DIRECTORY`, where a bare name is looked up.
fn file_subject(raw: &str, path: &Path, creds: Option<&Path>) -> String {
    let in_a_directory = || {
        path.parent()
            .filter(|dir| dir.parent().is_some())
            .is_some_and(Path::is_dir)
    };
    if path.symlink_metadata().is_ok() || (raw.contains('/') && in_a_directory()) {
        return path.display().to_string();
    }
    let place = match creds {
        Some(dir) if Path::new(raw).is_relative() => format!(" in {}", dir.display()),
        _ => String::new(),
    };
    let why = if raw.contains('/') {
        // Written as a path, but nothing of it exists here: still possibly a pasted secret.
        "its directory does not exist"
    } else {
        "it does not look like a path"
    };
    format!(
        "the file this key names{place} (the name is not shown: {why}, and it may be a secret \
         typed into the wrong key)"
    )
}

/// A short reason for an I/O error.
pub(super) fn io_reason(e: &io::Error) -> String {
    match e.kind() {
        io::ErrorKind::NotFound => "no such file".to_owned(),
        io::ErrorKind::PermissionDenied => "permission denied".to_owned(),
        io::ErrorKind::IsADirectory => "it is a directory".to_owned(),
        io::ErrorKind::InvalidData => "it is not UTF-8 text".to_owned(),
        _ => e.to_string(),
    }
}

/// Reads a secret file, removing one trailing newline (`\n` or `\r\n`). Errors name the file as
/// `shown` ([`file_subject`]), never the content.
fn read_secret(path: &Path, shown: &str) -> Result<Secret, String> {
    let bytes =
        std::fs::read(path).map_err(|e| format!("cannot read {shown}: {}", io_reason(&e)))?;
    let mut text = String::from_utf8(bytes).map_err(|_| format!("{shown} is not UTF-8 text"))?;
    if text.ends_with('\n') {
        text.pop();
        if text.ends_with('\r') {
            text.pop();
        }
    }
    if text.is_empty() {
        return Err(format!("{shown} is empty"));
    }
    Ok(Secret::new(text))
}

/// `name` / `file_name`: a secret given inline or as a file, not both.
fn secret_pair(
    p: &mut Problems,
    s: &mut Section,
    name: &str,
    file_name: &str,
    creds: Option<&Path>,
) -> (Option<Secret>, Option<PathBuf>) {
    let value = p.secret(s, name);
    let file = p.opt_string(s, file_name);
    match (value, file) {
        (Some(_), Some(_)) => {
            p.push(
                s.key(name),
                format!("is set together with {}", s.key(file_name)),
                format!(
                    "either {} or {}, not both (an empty string unsets one)",
                    s.key(name),
                    s.key(file_name)
                ),
            );
            (None, None)
        }
        (Some(secret), None) => (Some(secret), None),
        (None, Some(raw)) => {
            let path = resolve(&raw, creds);
            match read_secret(&path, &file_subject(&raw, &path, creds)) {
                Ok(secret) => (Some(secret), Some(path)),
                Err(message) => {
                    p.push(s.key(file_name), message, SECRET_FILE_EXPECTED);
                    (None, Some(path))
                }
            }
        }
        (None, None) => (None, None),
    }
}

// ---------------------------------------------------------------------------------------------
// [log], [http]

fn log(mut s: Section, p: &mut Problems) -> LogSettings {
    let level = p
        .string(&mut s, "level")
        .unwrap_or_else(|| "info".to_owned());
    if let Some(message) = check_log_filter(&level) {
        p.push(
            s.key("level"),
            message,
            "trace, debug, info, warn, error or off, or directives like \"info,trueconf2mqtt=debug\"",
        );
    }
    let format = p.choice(
        &mut s,
        "format",
        &[("text", LogFormat::Text), ("json", LogFormat::Json)],
        "\"text\" or \"json\"",
    );
    p.finish(s, LOG_KEYS);
    LogSettings {
        level,
        format: format.unwrap_or_default(),
    }
}

const LEVELS: &[&str] = &["trace", "debug", "info", "warn", "error", "off"];

/// Why `filter` is not a usable default filter, if it is not. A bare word that is not a level
/// would be taken by `EnvFilter` as a target name and silently log nothing else, so it is
/// refused (`inof`).
fn check_log_filter(filter: &str) -> Option<String> {
    let trimmed = filter.trim();
    if trimmed.is_empty() {
        return Some("is empty".to_owned());
    }
    if !trimmed.contains(['=', ',', '['])
        && !LEVELS.contains(&trimmed.to_ascii_lowercase().as_str())
    {
        return Some(format!("{} is not a log level", quote(trimmed)));
    }
    match tracing_subscriber::EnvFilter::try_new(trimmed) {
        Ok(_) => None,
        Err(e) => Some(format!("{} is not a valid filter: {e}", quote(trimmed))),
    }
}

fn homeassistant(mut s: Section, p: &mut Problems) -> HomeAssistantSettings {
    let discovery_mode = p.choice(
        &mut s,
        "discovery_mode",
        &DiscoveryMode::ALL,
        "\"device\" (one config per Room, Home Assistant 2024.11 and later) or \"entity\" (one per entity)",
    );
    p.finish(s, HOMEASSISTANT_KEYS);
    HomeAssistantSettings {
        discovery_mode: discovery_mode.unwrap_or_default(),
    }
}

fn http(mut s: Section, creds: Option<&Path>, p: &mut Problems) -> HttpSettings {
    let listen = listen_address(
        &mut s,
        p,
        "e.g. \"127.0.0.1:9180\" or \"[::]:9180\"; empty = off",
    );
    let control = p.boolean(&mut s, "control").unwrap_or(true);
    let (auth_token, auth_token_file) = token(&mut s, creds, p);
    if let Some(addr) = listen.filter(|_| control && auth_token.is_none()) {
        require_token(
            &s,
            p,
            format!(
                "is not set, and http.listen = \"{addr}\" is reachable from other hosts: the control surface (the WebSocket API at /api, the web UI) would be open to anyone there"
            ),
            addr,
            "http.auth_token or http.auth_token_file (e.g. from `openssl rand -hex 16`), or listen on 127.0.0.1, or http.control = false (health and metrics only)",
        );
    }
    p.finish(s, HTTP_KEYS);
    HttpSettings {
        listen,
        control,
        auth_token,
        auth_token_file,
    }
}

/// A control surface listening beyond loopback without a token is a problem on `auth_token`
/// (unless `auth_token_file` is already reported as unreadable).
fn require_token(
    s: &Section,
    p: &mut Problems,
    problem: String,
    addr: std::net::SocketAddr,
    ways_out: &'static str,
) {
    if crate::control::auth::needs_token(addr) && !has_problem(p, &s.key("auth_token_file")) {
        p.push(s.key("auth_token"), problem, ways_out);
    }
}

fn panel(mut s: Section, creds: Option<&Path>, p: &mut Problems) -> PanelSettings {
    let listen = listen_address(
        &mut s,
        p,
        "e.g. \"127.0.0.1:9181\" or \"[::]:9181\"; empty = off",
    );
    let (auth_token, auth_token_file) = token(&mut s, creds, p);
    if let Some(addr) = listen.filter(|_| auth_token.is_none()) {
        require_token(
            &s,
            p,
            format!(
                "is not set, and panel.listen = \"{addr}\" is reachable from other hosts: anyone there could control the rooms"
            ),
            addr,
            "panel.auth_token or panel.auth_token_file (clients send AUTH <token>), or listen on 127.0.0.1",
        );
    }
    p.finish(s, PANEL_KEYS);
    PanelSettings {
        listen,
        auth_token,
        auth_token_file,
    }
}

/// Whether a problem was already reported for `key`.
fn has_problem(p: &Problems, key: &str) -> bool {
    p.list.iter().any(|problem| problem.key == key)
}

/// Shortest token accepted.
pub(super) const MIN_TOKEN_LEN: usize = 12;

/// `auth_token` / `auth_token_file` of a control surface: at least [`MIN_TOKEN_LEN`]
/// characters, no spaces or control characters (it travels in a header, a URL and a line).
fn token(
    s: &mut Section,
    creds: Option<&Path>,
    p: &mut Problems,
) -> (Option<Secret>, Option<PathBuf>) {
    let (token, file) = secret_pair(p, s, "auth_token", "auth_token_file", creds);
    let Some(token) = token else {
        return (None, file);
    };
    let key = if file.is_some() {
        s.key("auth_token_file")
    } else {
        s.key("auth_token")
    };
    let text = token.expose();
    let problem = if text.chars().count() < MIN_TOKEN_LEN {
        Some(format!(
            "is too short ({} characters)",
            text.chars().count()
        ))
    } else if text.chars().any(|c| c.is_whitespace() || c.is_control()) {
        Some("contains spaces or control characters".to_owned())
    } else {
        None
    };
    match problem {
        Some(message) => {
            p.push(
                key,
                message,
                format!("at least {MIN_TOKEN_LEN} characters without spaces, e.g. from `openssl rand -hex 16`"),
            );
            (None, file)
        }
        None => (Some(token), file),
    }
}

/// `listen`: an IP address with a port; empty = off.
fn listen_address(s: &mut Section, p: &mut Problems, expected: &str) -> Option<SocketAddr> {
    p.opt_string(s, "listen")
        .and_then(|raw| match raw.trim().parse::<SocketAddr>() {
            Ok(addr) if addr.port() != 0 => Some(addr),
            Ok(_) => {
                p.push(
                    s.key("listen"),
                    format!("{}: port 0 is out of range", quote(&raw)),
                    "a port 1–65535",
                );
                None
            }
            Err(_) => {
                p.push(
                    s.key("listen"),
                    format!("{} is not an IP address with a port", quote(&raw)),
                    expected,
                );
                None
            }
        })
}

// ---------------------------------------------------------------------------------------------
// [[rooms]]

fn rooms(
    items: Option<Vec<Value>>,
    malformed: bool,
    env: &SplitEnv,
    creds: Option<&Path>,
    p: &mut Problems,
) -> Vec<RoomSettings> {
    let items = items.unwrap_or_default();
    if items.is_empty() && !malformed {
        p.push(
            "rooms",
            "no rooms are configured",
            "at least one [[rooms]] section with id and host",
        );
    }
    let mut sections: Vec<Section> = Vec::with_capacity(items.len());
    for (i, item) in items.into_iter().enumerate() {
        let path = format!("rooms[{i}]");
        match item.kind {
            ValueKind::Table(entries) => sections.push(Section::new(path, entries)),
            _ => {
                let message = format!("must be a table, found {}", show(&item));
                p.push(path, message, "a [[rooms]] section");
            }
        }
    }

    apply_room_env(&mut sections, env, p);

    let mut out: Vec<RoomSettings> = Vec::with_capacity(sections.len());
    let mut seen: HashMap<String, String> = HashMap::new();
    for section in sections {
        let path = section.key("id");
        let room = room(section, creds, p);
        if !room.id.is_empty() {
            if let Some(first) = seen.get(&room.id) {
                p.push(
                    path,
                    format!("{} is also the id of {first}", quote(&room.id)),
                    "a unique room id",
                );
            } else {
                seen.insert(room.id.clone(), path.trim_end_matches(".id").to_owned());
            }
        }
        out.push(room);
    }
    out
}

/// Applies `TRUECONF2MQTT__ROOMS__<ID>__<KEY>` to the rooms they name.
fn apply_room_env(sections: &mut [Section], env: &SplitEnv, p: &mut Problems) {
    let ids: Vec<Option<String>> = sections
        .iter()
        .map(|s| s.peek_str("id").map(str::to_owned))
        .collect();
    for ov in &env.rooms {
        let mut targets: Vec<usize> = ids
            .iter()
            .enumerate()
            .filter(|(_, id)| id.as_deref().is_some_and(|id| ov.names_exactly(id)))
            .map(|(i, _)| i)
            .collect();
        if targets.is_empty() {
            targets = ids
                .iter()
                .enumerate()
                .filter(|(_, id)| id.as_deref().is_some_and(|id| ov.names_loosely(id)))
                .map(|(i, _)| i)
                .collect();
        }
        let known: Vec<&str> = ids.iter().flatten().map(String::as_str).collect();
        match targets.as_slice() {
            [] => p.push(
                &ov.var,
                format!("no room has the id {}", quote(&ov.id)),
                format!(
                    "{ENV_PREFIX}__ROOMS__<ID>__<KEY> with one of the room ids: {}",
                    known.join(", ")
                ),
            ),
            [i] if ov.key == "id" => p.push(
                &ov.var,
                format!("the id of rooms[{i}] cannot be changed from the environment"),
                "the id set in the file",
            ),
            [i] => sections[*i].set(
                &ov.key,
                Value::new(Some(&ov.var), ValueKind::String(ov.value.clone())),
            ),
            several => p.push(
                &ov.var,
                format!(
                    "matches several rooms ({})",
                    several
                        .iter()
                        .map(|i| format!("rooms[{i}]"))
                        .collect::<Vec<_>>()
                        .join(", ")
                ),
                "room ids that differ by more than - versus _",
            ),
        }
    }
}

fn room(mut s: Section, creds: Option<&Path>, p: &mut Problems) -> RoomSettings {
    let id = match p.string(&mut s, "id") {
        Some(id) => {
            if let Some(message) = check_room_id(&id) {
                p.push(
                    s.key("id"),
                    message,
                    "1–64 characters from a–z 0–9 _ -, e.g. \"boardroom\"",
                );
            }
            id
        }
        None => {
            p.push(
                s.key("id"),
                "is missing",
                "a unique id of a–z 0–9 _ -, e.g. \"boardroom\" (used in topics)",
            );
            String::new()
        }
    };
    let name = match p.string(&mut s, "name") {
        Some(name) => {
            if is_bad_name(&name) {
                p.push(
                    s.key("name"),
                    format!("{} is not a usable display name", quote(&name)),
                    "1–128 printable characters",
                );
            }
            name
        }
        None => id.clone(),
    };
    let host = host(p, &mut s, "host", None);
    let port = p.port(&mut s, "port").unwrap_or(80);
    let instance = p
        .string(&mut s, "instance")
        .unwrap_or_else(|| "default".to_owned());
    if !is_instance(&instance) {
        p.push(
            s.key("instance"),
            format!("{} is not an instance name", quote(&instance)),
            "1–64 characters from A–Z a–z 0–9 . _ -, usually \"default\"",
        );
    }
    let ws_port = p.port(&mut s, "ws_port");
    let area = p.string(&mut s, "area");
    if let Some(area) = &area
        && is_bad_name(area)
    {
        p.push(
            s.key("area"),
            format!("{} is not a usable area name", quote(area)),
            "1–128 printable characters, e.g. \"Floor 3\"",
        );
    }
    let (pin, pin_file) = secret_pair(p, &mut s, "pin", "pin_file", creds);
    let allow_dangerous = p.list(&mut s, "allow_dangerous").unwrap_or_default();
    let list_key = s.key("allow_dangerous");
    for (j, entry) in allow_dangerous.iter().enumerate() {
        check_dangerous(p, &format!("{list_key}[{j}]"), entry);
    }
    let request_timeout = p.uint(&mut s, "request_timeout_ms", 100..=600_000, "ms");
    let keepalive = p.uint(&mut s, "keepalive_secs", 3..=3600, "seconds");
    let reconnect_max = p.uint(&mut s, "reconnect_max_secs", 1..=3600, "seconds");
    let auth_retry = p.uint(&mut s, "auth_retry_secs", 1..=86_400, "seconds");
    p.finish(s, ROOM_KEYS);
    RoomSettings {
        id,
        name,
        host,
        port,
        instance,
        ws_port,
        area,
        pin,
        pin_file,
        allow_dangerous,
        request_timeout: Duration::from_millis(request_timeout.unwrap_or(5000)),
        keepalive: Duration::from_secs(keepalive.unwrap_or(6)),
        reconnect_max: Duration::from_secs(reconnect_max.unwrap_or(30)),
        auth_retry: Duration::from_secs(auth_retry.unwrap_or(60)),
    }
}

fn check_room_id(id: &str) -> Option<String> {
    if id.is_empty() {
        return Some("is empty".to_owned());
    }
    if id.len() > 64 {
        return Some(format!("is {} characters long", id.chars().count()));
    }
    if let Some(c) = id
        .chars()
        .find(|c| !(c.is_ascii_lowercase() || c.is_ascii_digit() || *c == '_' || *c == '-'))
    {
        let hint = if c.is_ascii_uppercase() {
            ", ids are lowercase"
        } else {
            ""
        };
        return Some(format!("{} contains {c:?}{hint}", quote(id)));
    }
    if RESERVED_ROOM_IDS.contains(&id) {
        return Some(format!(
            "{} is reserved for the bridge's own topics",
            quote(id)
        ));
    }
    None
}

fn is_bad_name(name: &str) -> bool {
    let count = name.chars().count();
    name.trim().is_empty() || count > 128 || name.chars().any(char::is_control)
}

fn is_instance(instance: &str) -> bool {
    (1..=64).contains(&instance.len())
        && instance
            .bytes()
            .all(|b| b.is_ascii_alphanumeric() || matches!(b, b'.' | b'_' | b'-'))
        && instance != "."
        && instance != ".."
}

fn check_dangerous(p: &mut Problems, key: &str, entry: &str) {
    const EXPECTED: &str = "\"*\" or the name of a method the catalog marks dangerous, as listed by `trueconf2mqtt catalog`";
    if entry == "*" {
        return;
    }
    match catalog().method(entry) {
        Some(spec) if spec.dangerous => {}
        Some(_) => p.push(
            key,
            format!(
                "{} is not a dangerous method; it is always allowed",
                quote(entry)
            ),
            EXPECTED,
        ),
        None => {
            let hint = catalog()
                .methods()
                .iter()
                .find(|m| m.name.eq_ignore_ascii_case(entry))
                .map(|m| format!("; did you mean {:?}?", m.name))
                .unwrap_or_default();
            p.push(
                key,
                format!("{} is not a method of the catalog{hint}", quote(entry)),
                EXPECTED,
            );
        }
    }
}

// ---------------------------------------------------------------------------------------------
// Hosts

/// A host key: an IP address or a DNS name, without scheme, port or path.
fn host(p: &mut Problems, s: &mut Section, name: &str, default: Option<&str>) -> String {
    let Some(host) = p.string(s, name).or_else(|| default.map(str::to_owned)) else {
        p.push(
            s.key(name),
            "is missing",
            "the host name or IP address of the Room",
        );
        return String::new();
    };
    if !is_host(&host) {
        p.push(
            s.key(name),
            format!("{} is not a host name or IP address", quote(&host)),
            "a host only, without scheme, port or path, e.g. \"192.0.2.10\" or \"room.example.org\"",
        );
    }
    host
}

fn is_host(host: &str) -> bool {
    if host.parse::<IpAddr>().is_ok() {
        return true;
    }
    !host.is_empty()
        && host.len() <= 253
        && host.split('.').all(|label| {
            !label.is_empty()
                && label.len() <= 63
                && !label.starts_with('-')
                && label
                    .bytes()
                    .all(|b| b.is_ascii_alphanumeric() || b == b'-' || b == b'_')
        })
}
