//! A human summary of a loaded configuration (`trueconf2mqtt check-config`).

use std::fmt::Write as _;

use super::{MqttVersion, RoomSettings, Settings};

/// Summarises `settings` for a human: broker, topics, logging, HTTP endpoint, and each room with
/// its address, whether it is secured (never the PIN or password itself) and which dangerous
/// methods it allows.
pub fn explain(settings: &Settings) -> String {
    let mut out = String::new();
    let m = &settings.mqtt;
    let scheme = if m.tls.is_some() { "mqtts" } else { "mqtt" };
    let version = match m.version {
        MqttVersion::V311 => "MQTT 3.1.1",
        MqttVersion::V5 => "MQTT 5",
    };
    let _ = writeln!(
        out,
        "Broker: {scheme}://{}:{} ({version}, client id {:?})",
        host_port_host(&m.host),
        m.port,
        m.client_id
    );
    for (host, port) in &m.failover {
        let _ = writeln!(
            out,
            "  further node: {scheme}://{}:{port} (failover, in this order)",
            host_port_host(host)
        );
    }
    let auth = match (&m.username, &m.password, &m.password_file) {
        (None, _, _) => "anonymous".to_owned(),
        (Some(user), None, _) => format!("user {user:?} without password"),
        (Some(user), Some(_), Some(file)) => {
            format!("user {user:?}, password from {}", file.display())
        }
        (Some(user), Some(_), None) => format!("user {user:?} with password"),
    };
    let _ = writeln!(out, "  login: {auth}");
    if let Some(tls) = &m.tls {
        let ca = tls.ca_file.as_ref().map_or_else(
            || "system roots".to_owned(),
            |p| format!("CA {}", p.display()),
        );
        let client = match &tls.cert_file {
            Some(cert) => format!(", client certificate {}", cert.display()),
            None => String::new(),
        };
        let _ = writeln!(out, "  TLS: {ca}{client}");
    } else {
        let _ = writeln!(out, "  TLS: off");
    }
    let _ = writeln!(
        out,
        "  session: {}, keep-alive {} s, QoS {}, commands older than {} s refused, payload limit {} bytes, {} events buffered while offline",
        if m.clean_session {
            "clean"
        } else {
            "persistent"
        },
        m.keepalive.as_secs(),
        m.qos,
        m.command_max_age.as_secs(),
        m.max_payload_bytes,
        m.event_buffer
    );
    let _ = writeln!(out, "Topics: {}/<room>/…", m.base_topic);
    match &m.instance {
        Some(instance) => {
            let _ = writeln!(
                out,
                "  instance {instance:?}: bridge topics under {}/bridge/{instance}/…, rooms claimed on {}/<room>/owner",
                m.base_topic, m.base_topic
            );
        }
        None => {
            let _ = writeln!(
                out,
                "  single bridge: bridge topics under {}/bridge/…, rooms claimed as {:?}",
                m.base_topic, m.client_id
            );
        }
    }
    if m.discovery {
        let _ = writeln!(
            out,
            "  Home Assistant discovery: on, under {}/…, one config per {}",
            m.discovery_prefix,
            match settings.homeassistant.discovery_mode {
                crate::homeassistant::DiscoveryMode::Device => "Room (discovery_mode = \"device\")",
                crate::homeassistant::DiscoveryMode::Entity =>
                    "entity (discovery_mode = \"entity\")",
            }
        );
    } else {
        let _ = writeln!(out, "  Home Assistant discovery: off");
    }
    let _ = writeln!(
        out,
        "Log: {} ({}; RUST_LOG takes precedence)",
        settings.log.level, settings.log.format
    );
    match settings.http.listen {
        Some(addr) if settings.http.control => {
            let _ = writeln!(
                out,
                "HTTP: http://{addr}/ (health and metrics; control surface /api {})",
                token_summary(&settings.http.auth_token, &settings.http.auth_token_file)
            );
        }
        Some(addr) => {
            let _ = writeln!(
                out,
                "HTTP: http://{addr}/ (health and metrics; control surface off: http.control = false)"
            );
        }
        None => {
            let _ = writeln!(out, "HTTP: off");
        }
    }
    match settings.panel.listen {
        Some(addr) => {
            let _ = writeln!(
                out,
                "Panel TCP protocol: {addr} ({})",
                token_summary(&settings.panel.auth_token, &settings.panel.auth_token_file)
            );
        }
        None => {
            let _ = writeln!(out, "Panel TCP protocol: off");
        }
    }
    let _ = writeln!(out, "Rooms ({}):", settings.rooms.len());
    for room in &settings.rooms {
        room_summary(&mut out, room);
    }
    out
}

/// IPv6 addresses need brackets in front of a port.
fn host_port_host(host: &str) -> String {
    if host.contains(':') {
        format!("[{host}]")
    } else {
        host.to_owned()
    }
}

fn room_summary(out: &mut String, room: &RoomSettings) {
    let name = if room.name == room.id {
        String::new()
    } else {
        format!(" ({:?})", room.name)
    };
    let ws = match room.ws_port {
        Some(port) => format!("WebSocket port {port} (no discovery)"),
        None => format!("WebSocket port from /public/{}/config.json", room.instance),
    };
    let _ = writeln!(
        out,
        "  {}{name}: {}:{}, {ws}",
        room.id,
        host_port_host(&room.host),
        room.port
    );
    let security = match (&room.pin, &room.pin_file) {
        (None, _) => "unsecured (no PIN)".to_owned(),
        (Some(_), Some(file)) => format!("secured, PIN from {}", file.display()),
        (Some(_), None) => "secured with a PIN".to_owned(),
    };
    let _ = writeln!(out, "    auth: {security}");
    let dangerous = if room.allow_dangerous.iter().any(|m| m == "*") {
        "ALL (\"*\")".to_owned()
    } else if room.allow_dangerous.is_empty() {
        "none".to_owned()
    } else {
        room.allow_dangerous.join(", ")
    };
    let _ = writeln!(out, "    dangerous methods allowed: {dangerous}");
    let _ = writeln!(
        out,
        "    timing: request timeout {} ms, keep-alive {} s, reconnect up to {} s, auth retry {} s",
        room.request_timeout.as_millis(),
        room.keepalive.as_secs(),
        room.reconnect_max.as_secs(),
        room.auth_retry.as_secs()
    );
}

/// How a control surface is protected, without the token.
fn token_summary(
    token: &Option<crate::secret::Secret>,
    file: &Option<std::path::PathBuf>,
) -> String {
    match (token, file) {
        (Some(_), Some(path)) => format!("token from {}", path.display()),
        (Some(_), None) => "token set".to_owned(),
        (None, _) => "no token: loopback only".to_owned(),
    }
}
