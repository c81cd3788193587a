use std::collections::HashMap;
use std::path::{Path, PathBuf};
use std::sync::atomic::{AtomicUsize, Ordering};
use std::time::Duration;

use super::*;

const EXAMPLE: &str = include_str!("../../config/trueconf2mqtt.example.toml");

const MINIMAL: &str = r#"
[[rooms]]
id = "boardroom"
host = "192.0.2.10"
"#;

fn env(pairs: &[(&str, &str)]) -> HashMap<String, String> {
    pairs
        .iter()
        .map(|(k, v)| ((*k).to_owned(), (*v).to_owned()))
        .collect()
}

fn load(text: &str, pairs: &[(&str, &str)]) -> Result<Settings, ConfigError> {
    Settings::load_from(Some(text), env(pairs))
}

fn problems(text: &str, pairs: &[(&str, &str)]) -> Vec<Problem> {
    match load(text, pairs) {
        Ok(s) => panic!("expected problems, got {s:?}"),
        Err(e) => e.into_problems(),
    }
}

fn keys(problems: &[Problem]) -> Vec<&str> {
    problems.iter().map(|p| p.key.as_str()).collect()
}

/// A fresh directory under the system temp dir (no tempfile crate in the dependencies).
fn temp_dir() -> PathBuf {
    static N: AtomicUsize = AtomicUsize::new(0);
    let dir = std::env::temp_dir().join(format!(
        "trueconf2mqtt-config-test-{}-{}",
        std::process::id(),
        N.fetch_add(1, Ordering::Relaxed)
    ));
    std::fs::create_dir_all(&dir).unwrap();
    dir
}

fn write(dir: &Path, name: &str, content: &str) -> PathBuf {
    let path = dir.join(name);
    std::fs::write(&path, content).unwrap();
    path
}

#[test]
fn example_file_parses() {
    let s = load(EXAMPLE, &[]).unwrap_or_else(|e| panic!("{e}"));
    assert_eq!(s.mqtt.host, "127.0.0.1");
    assert_eq!(s.mqtt.port, 1883);
    assert_eq!(s.mqtt.client_id, "trueconf2mqtt");
    assert_eq!(s.mqtt.username, None);
    assert_eq!(s.mqtt.password, None);
    assert_eq!(s.mqtt.base_topic, "trueconf");
    assert!(s.mqtt.discovery);
    assert_eq!(s.mqtt.discovery_prefix, "homeassistant");
    assert_eq!(s.mqtt.keepalive, Duration::from_secs(30));
    assert_eq!(s.mqtt.qos, 1);
    assert_eq!(s.mqtt.version, MqttVersion::V311);
    assert!(!s.mqtt.clean_session);
    assert_eq!(s.mqtt.command_max_age, Duration::from_secs(30));
    assert_eq!(s.mqtt.max_payload_bytes, 65536);
    assert_eq!(s.mqtt.event_buffer, 1000);
    assert_eq!(s.mqtt.tls, None);
    assert_eq!(s.log.level, "info");
    assert_eq!(s.log.format, LogFormat::Text);
    assert_eq!(s.http.listen, None);
    assert_eq!(s.rooms.len(), 1);
    let r = &s.rooms[0];
    assert_eq!(r.id, "boardroom");
    assert_eq!(r.name, "Boardroom");
    assert_eq!((r.host.as_str(), r.port), ("127.0.0.1", 8766));
    assert_eq!(r.instance, "default");
    assert_eq!(r.ws_port, Some(8765));
    assert_eq!(r.pin.as_ref().map(Secret::expose), Some("1234"));
    assert!(r.allow_dangerous.is_empty());
    assert_eq!(r.request_timeout, Duration::from_millis(5000));
    assert_eq!(r.keepalive, Duration::from_secs(6));
    assert_eq!(r.reconnect_max, Duration::from_secs(30));
    assert_eq!(r.auth_retry, Duration::from_secs(60));
}

#[test]
fn example_file_documents_every_key() {
    // Every key the loader knows appears in the example (commented or not).
    use super::parse::{
        HOMEASSISTANT_KEYS, HTTP_KEYS, LOG_KEYS, MQTT_KEYS, PANEL_KEYS, ROOM_KEYS, TLS_KEYS,
    };
    let tables = ["[mqtt.tls]", "[homeassistant]", "[panel]", "[[rooms]]"];
    let keys = [
        MQTT_KEYS,
        TLS_KEYS,
        LOG_KEYS,
        HTTP_KEYS,
        PANEL_KEYS,
        HOMEASSISTANT_KEYS,
        ROOM_KEYS,
    ]
    .concat();
    for key in keys.iter().filter(|k| **k != "tls").chain(&tables) {
        assert!(EXAMPLE.contains(key), "{key} is not in the example");
    }
    // `instance` is also a room key: the [mqtt] one must be there too (commented).
    assert!(
        EXAMPLE.contains("# instance = "),
        "mqtt.instance is not in the example"
    );
}

#[test]
fn instance_is_optional_and_checked() {
    assert_eq!(load(MINIMAL, &[]).unwrap().mqtt.instance, None);
    let s = load(&format!("[mqtt]\ninstance = \"east-wing\"\n{MINIMAL}"), &[]).unwrap();
    assert_eq!(s.mqtt.instance.as_deref(), Some("east-wing"));
    assert!(
        explain(&s).contains("trueconf/bridge/east-wing/"),
        "{}",
        explain(&s)
    );
    let s = load(MINIMAL, &[("TRUECONF2MQTT__MQTT__INSTANCE", "west_2")]).unwrap();
    assert_eq!(s.mqtt.instance.as_deref(), Some("west_2"));
    // Empty means unset, so the environment can clear it.
    let s = load(
        &format!("[mqtt]\ninstance = \"east\"\n{MINIMAL}"),
        &[("TRUECONF2MQTT__MQTT__INSTANCE", "")],
    )
    .unwrap();
    assert_eq!(s.mqtt.instance, None);
    for (bad, fragment) in [
        ("east wing", "not a usable instance name"),
        ("a/b", "not a usable instance name"),
        ("state", "reserved"),
        ("response", "reserved"),
    ] {
        let p = problems(&format!("[mqtt]\ninstance = {bad:?}\n{MINIMAL}"), &[]);
        assert_eq!(keys(&p), ["mqtt.instance"], "{bad}");
        assert!(p[0].message.contains(fragment), "{bad}: {}", p[0]);
    }
    let long = "a".repeat(65);
    let p = problems(&format!("[mqtt]\ninstance = {long:?}\n{MINIMAL}"), &[]);
    assert_eq!(keys(&p), ["mqtt.instance"]);
}

#[test]
fn embedded_default_parses() {
    let s = load(Settings::embedded_default(), &[]).unwrap_or_else(|e| panic!("{e}"));
    assert_eq!(s.rooms.len(), 1);
    let r = &s.rooms[0];
    assert_eq!(r.id, "demo-room");
    assert_eq!(r.name, "Demo Room");
    assert_eq!(r.host, "127.0.0.1");
    assert!(!r.is_secured());
    assert_ne!(s.mqtt.client_id, "trueconf2mqtt");
}

#[test]
fn minimal_file_gets_defaults() {
    let s = load(MINIMAL, &[]).unwrap();
    assert_eq!(s.mqtt.port, 1883);
    assert_eq!(s.rooms[0].name, "boardroom");
    assert_eq!(s.rooms[0].port, 80);
    assert_eq!(s.rooms[0].ws_port, None);
    assert_eq!(s.rooms[0].pin, None);
}

#[test]
fn env_overrides_numeric_and_other_keys() {
    let s = load(
        MINIMAL,
        &[
            ("TRUECONF2MQTT__MQTT__PORT", "1884"),
            ("trueconf2mqtt__mqtt__keepalive_secs", "15"),
            ("TRUECONF2MQTT__MQTT__DISCOVERY", "false"),
            ("TRUECONF2MQTT__MQTT__VERSION", "5"),
            ("TRUECONF2MQTT__LOG__FORMAT", "json"),
            ("TRUECONF2MQTT__HTTP__LISTEN", "127.0.0.1:9180"),
            ("TRUECONF2MQTT_CONFIG", "/not/ours"),
            ("PATH", "/usr/bin"),
        ],
    )
    .unwrap_or_else(|e| panic!("{e}"));
    assert_eq!(s.mqtt.port, 1884);
    assert_eq!(s.mqtt.keepalive, Duration::from_secs(15));
    assert!(!s.mqtt.discovery);
    assert_eq!(s.mqtt.version, MqttVersion::V5);
    assert_eq!(s.log.format, LogFormat::Json);
    assert_eq!(s.http.listen, Some("127.0.0.1:9180".parse().unwrap()));
}

#[test]
fn env_value_errors_name_the_variable() {
    let p = problems(MINIMAL, &[("TRUECONF2MQTT__MQTT__PORT", "abc")]);
    assert_eq!(keys(&p), ["mqtt.port"]);
    assert!(
        p[0].message.contains("TRUECONF2MQTT__MQTT__PORT"),
        "{}",
        p[0]
    );
    assert!(
        p[0].message.contains("\"abc\" is not a whole number"),
        "{}",
        p[0]
    );
}

#[test]
fn room_env_pin_stays_a_string() {
    let s = load(
        MINIMAL,
        &[
            ("TRUECONF2MQTT__ROOMS__BOARDROOM__PIN", "0123"),
            ("TRUECONF2MQTT__ROOMS__boardroom__PORT", "8766"),
            (
                "TRUECONF2MQTT__ROOMS__BOARDROOM__ALLOW_DANGEROUS",
                "rebootSystem, shutdown",
            ),
        ],
    )
    .unwrap_or_else(|e| panic!("{e}"));
    let r = &s.rooms[0];
    assert_eq!(r.pin.as_ref().map(Secret::expose), Some("0123"));
    assert_eq!(r.port, 8766);
    assert_eq!(r.allow_dangerous, ["rebootSystem", "shutdown"]);
}

#[test]
fn room_env_matches_dash_ids_with_underscores() {
    let s = load(
        Settings::embedded_default(),
        &[("TRUECONF2MQTT__ROOMS__DEMO_ROOM__WS_PORT", "18765")],
    )
    .unwrap();
    assert_eq!(s.rooms[0].ws_port, Some(18765));
}

#[test]
fn room_env_for_unknown_room_or_key_is_a_problem() {
    let p = problems(
        MINIMAL,
        &[
            ("TRUECONF2MQTT__ROOMS__LOBBY__PIN", "1"),
            ("TRUECONF2MQTT__ROOMS__BOARDROOM__PINN", "1"),
            ("TRUECONF2MQTT__ROOMS__BOARDROOM__ID", "x"),
            ("TRUECONF2MQTT__ROOMS", "x"),
        ],
    );
    assert_eq!(
        keys(&p),
        [
            "TRUECONF2MQTT__ROOMS",
            "TRUECONF2MQTT__ROOMS__BOARDROOM__ID",
            "TRUECONF2MQTT__ROOMS__LOBBY__PIN",
            "rooms[0].pinn",
        ],
        "{p:#?}"
    );
    assert!(p[2].expected.contains("boardroom"));
    assert!(p[3].message.contains("did you mean \"pin\""), "{}", p[3]);
    assert!(
        p[3].message
            .contains("TRUECONF2MQTT__ROOMS__BOARDROOM__PINN")
    );
}

#[test]
fn pin_file_with_trailing_newline() {
    let dir = temp_dir();
    let file = write(&dir, "pin", "0123\n");
    let text = format!("{MINIMAL}pin_file = {:?}\n", file.display().to_string());
    let s = load(&text, &[]).unwrap_or_else(|e| panic!("{e}"));
    assert_eq!(s.rooms[0].pin.as_ref().map(Secret::expose), Some("0123"));
    assert_eq!(s.rooms[0].pin_file.as_deref(), Some(file.as_path()));

    // Only one newline is removed; CRLF counts as one.
    write(&dir, "crlf", "ab\r\n");
    write(&dir, "two", "ab\n\n");
    for (name, want) in [("crlf", "ab"), ("two", "ab\n")] {
        let text = format!(
            "{MINIMAL}pin_file = {:?}\n",
            dir.join(name).display().to_string()
        );
        let s = load(&text, &[]).unwrap();
        assert_eq!(s.rooms[0].pin.as_ref().unwrap().expose(), want);
    }
    std::fs::remove_dir_all(dir).unwrap();
}

#[test]
fn relative_secret_files_use_the_credentials_directory() {
    let dir = temp_dir();
    write(&dir, "mqtt-password", "s3cret\n");
    let text =
        format!("[mqtt]\nusername = \"bridge\"\npassword_file = \"mqtt-password\"\n{MINIMAL}");
    let s = load(&text, &[("CREDENTIALS_DIRECTORY", dir.to_str().unwrap())])
        .unwrap_or_else(|e| panic!("{e}"));
    assert_eq!(s.mqtt.password.as_ref().unwrap().expose(), "s3cret");
    assert_eq!(s.mqtt.password_file, Some(dir.join("mqtt-password")));
    std::fs::remove_dir_all(dir).unwrap();
}

#[test]
fn unreadable_or_empty_secret_file_names_the_path() {
    let dir = temp_dir();
    write(&dir, "empty", "\n");
    let missing = dir.join("missing");
    let text = format!(
        "{MINIMAL}pin_file = {:?}\n[[rooms]]\nid = \"b\"\nhost = \"h\"\npin_file = {:?}\n",
        missing.display().to_string(),
        dir.join("empty").display().to_string()
    );
    let p = problems(&text, &[]);
    assert_eq!(keys(&p), ["rooms[0].pin_file", "rooms[1].pin_file"]);
    assert!(p[0].message.contains(&missing.display().to_string()));
    assert!(p[0].message.contains("no such file"), "{}", p[0]);
    assert!(p[1].message.contains("is empty"), "{}", p[1]);
    std::fs::remove_dir_all(dir).unwrap();
}

#[test]
fn a_secret_typed_into_a_file_key_is_never_quoted() {
    let dir = temp_dir();
    let creds = dir.to_str().unwrap();
    // (key, value, under systemd's credentials): values that do not look like paths to anything.
    let cases = [
        ("rooms[0].pin_file", "0123", false),
        ("rooms[0].pin_file", "0123", true),
        ("mqtt.password_file", "s3cr/et+Pa55", false),
        ("mqtt.password_file", "/Zx9secret", false),
        (
            "mqtt.tls.ca_file",
            "-----BEGIN CERTIFICATE-----MIIB/x+y",
            false,
        ),
    ];
    for (key, value, under_systemd) in cases {
        let pairs: &[(&str, &str)] = if under_systemd {
            &[("CREDENTIALS_DIRECTORY", creds)]
        } else {
            &[]
        };
        let text = match key {
            "rooms[0].pin_file" => format!("{MINIMAL}pin_file = {value:?}\n"),
            "mqtt.password_file" => {
                format!("[mqtt]\nusername = \"u\"\npassword_file = {value:?}\n{MINIMAL}")
            }
            _ => format!("[mqtt.tls]\nca_file = {value:?}\n{MINIMAL}"),
        };
        let err = load(&text, pairs).unwrap_err();
        assert_eq!(keys(err.problems()), [key], "{err}");
        let shown = err.to_string();
        assert!(!shown.contains(value), "{key} = {value:?} quoted: {shown}");
        assert!(
            shown.contains("cannot read the file this key names"),
            "{shown}"
        );
        assert!(shown.contains("no such file"), "{shown}");
        if under_systemd {
            assert!(shown.contains(&format!("names in {creds} (")), "{shown}");
        }
    }
    // Real paths are named: an existing file, or a missing one in an existing directory.
    write(&dir, "empty", "\n");
    let err = load(
        &format!("{MINIMAL}pin_file = \"empty\"\n"),
        &[("CREDENTIALS_DIRECTORY", creds)],
    )
    .unwrap_err();
    let empty = dir.join("empty").display().to_string();
    assert!(
        err.to_string().contains(&format!("{empty} is empty")),
        "{err}"
    );
    let missing = dir.join("pin").display().to_string();
    let err = load(&format!("{MINIMAL}pin_file = {missing:?}\n"), &[]).unwrap_err();
    assert!(
        err.to_string()
            .contains(&format!("cannot read {missing}: no such file")),
        "{err}"
    );
    std::fs::remove_dir_all(dir).unwrap();
}

#[test]
fn pin_and_pin_file_together_is_a_problem() {
    let text = format!("{MINIMAL}pin = \"1234\"\npin_file = \"/run/secrets/pin\"\n");
    let p = problems(&text, &[]);
    assert_eq!(keys(&p), ["rooms[0].pin"]);
    assert!(p[0].message.contains("rooms[0].pin_file"), "{}", p[0]);
    // The environment can clear one of them.
    let dir = temp_dir();
    let file = write(&dir, "pin", "9999");
    let s = load(
        &text,
        &[
            ("TRUECONF2MQTT__ROOMS__BOARDROOM__PIN", ""),
            (
                "TRUECONF2MQTT__ROOMS__BOARDROOM__PIN_FILE",
                file.to_str().unwrap(),
            ),
        ],
    )
    .unwrap_or_else(|e| panic!("{e}"));
    assert_eq!(s.rooms[0].pin.as_ref().unwrap().expose(), "9999");
    std::fs::remove_dir_all(dir).unwrap();
}

#[test]
fn password_and_password_file_together_is_a_problem() {
    let p = problems(
        MINIMAL,
        &[
            ("TRUECONF2MQTT__MQTT__USERNAME", "u"),
            ("TRUECONF2MQTT__MQTT__PASSWORD", "hunter2"),
            ("TRUECONF2MQTT__MQTT__PASSWORD_FILE", "/x"),
        ],
    );
    assert_eq!(keys(&p), ["mqtt.password"]);
}

#[test]
fn unknown_key_is_named() {
    let text = format!("[mqtt]\npasswrd = \"x\"\n{MINIMAL}");
    let p = problems(&text, &[]);
    assert_eq!(keys(&p), ["mqtt.passwrd"]);
    assert!(
        p[0].message.contains("did you mean \"password\""),
        "{}",
        p[0]
    );

    let p = problems(
        &format!("[mqt]\nport = 1\n{MINIMAL}reconect_max_secs = 3\n"),
        &[],
    );
    assert_eq!(keys(&p), ["rooms[0].reconect_max_secs", "mqt"]);

    let p = problems(MINIMAL, &[("TRUECONF2MQTT__MQTT__PASWORD", "x")]);
    assert_eq!(keys(&p), ["mqtt.pasword"]);
    assert!(p[0].message.contains("TRUECONF2MQTT__MQTT__PASWORD"));
}

#[test]
fn several_problems_are_collected() {
    let text = r#"
[mqtt]
port = 70000
qos = 2
keepalive_secs = 1
base_topic = "trueconf/#"
discovery_prefix = "/ha"
version = "4.0"
max_payload_bytes = 10
event_buffer = 0
typo = 1

[log]
level = "inof"

[http]
listen = "localhost"

[[rooms]]
id = "Board Room"
host = "http://192.0.2.1/"
port = 0

[[rooms]]
id = "lobby"
host = "h"
request_timeout_ms = 0

[[rooms]]
id = "lobby"
host = "h"
"#;
    let p = problems(text, &[]);
    assert_eq!(
        keys(&p),
        [
            "mqtt.port",
            "mqtt.base_topic",
            "mqtt.discovery_prefix",
            "mqtt.keepalive_secs",
            "mqtt.qos",
            "mqtt.version",
            "mqtt.max_payload_bytes",
            "mqtt.event_buffer",
            "mqtt.typo",
            "log.level",
            "http.listen",
            "rooms[0].id",
            "rooms[0].host",
            "rooms[0].port",
            "rooms[1].request_timeout_ms",
            "rooms[2].id",
        ],
        "{p:#?}"
    );
    let shown = ConfigError::new(p.clone()).to_string();
    assert_eq!(shown.lines().count(), p.len());
    assert!(
        shown.contains("mqtt.port: 70000 is out of range (expected 1–65535)"),
        "{shown}"
    );
    assert!(shown.contains("rooms[2].id: \"lobby\" is also the id of rooms[1]"));
    assert!(shown.contains("QoS 2 is not supported"));
}

#[test]
fn room_port_out_of_range_display() {
    let err = load(&format!("{MINIMAL}port = 70000\n"), &[]).unwrap_err();
    assert_eq!(
        err.to_string(),
        "rooms[0].port: 70000 is out of range (expected 1–65535)"
    );
}

#[test]
fn no_rooms_is_a_problem() {
    let p = problems("[mqtt]\nhost = \"broker\"\n", &[]);
    assert_eq!(keys(&p), ["rooms"]);
    let err = Settings::load_from(None, HashMap::new()).unwrap_err();
    assert_eq!(keys(err.problems()), ["rooms"]);
}

#[test]
fn room_ids_are_checked() {
    for (id, fragment) in [
        ("", "is empty"),
        ("Boardroom", "lowercase"),
        ("a/b", "contains '/'"),
        ("bridge", "reserved"),
    ] {
        let p = problems(&format!("[[rooms]]\nid = {id:?}\nhost = \"h\"\n"), &[]);
        assert_eq!(keys(&p), ["rooms[0].id"], "{id}");
        assert!(p[0].message.contains(fragment), "{id}: {}", p[0]);
    }
    let long = "a".repeat(65);
    let p = problems(&format!("[[rooms]]\nid = {long:?}\nhost = \"h\"\n"), &[]);
    assert_eq!(keys(&p), ["rooms[0].id"]);
    load(
        &format!("[[rooms]]\nid = {:?}\nhost = \"h\"\n", "a".repeat(64)),
        &[],
    )
    .unwrap();
}

#[test]
fn topics_must_not_overlap() {
    let p = problems(
        &format!("[mqtt]\nbase_topic = \"homeassistant\"\n{MINIMAL}"),
        &[],
    );
    assert_eq!(keys(&p), ["mqtt.base_topic"]);
    let p = problems(
        &format!("[mqtt]\nbase_topic = \"homeassistant/trueconf\"\n{MINIMAL}"),
        &[],
    );
    assert_eq!(keys(&p), ["mqtt.base_topic"]);
    // Without discovery the prefix does not matter.
    load(
        &format!("[mqtt]\nbase_topic = \"homeassistant\"\ndiscovery = false\n{MINIMAL}"),
        &[],
    )
    .unwrap();
    load(
        &format!("[mqtt]\nbase_topic = \"site/trueconf\"\n{MINIMAL}"),
        &[],
    )
    .unwrap();
}

#[test]
fn password_needs_a_username() {
    let p = problems(&format!("[mqtt]\npassword = \"pw\"\n{MINIMAL}"), &[]);
    assert_eq!(keys(&p), ["mqtt.password"]);
}

#[test]
fn secrets_never_shown() {
    // Wrong type for the PIN: no value in the message.
    let p = problems(&format!("{MINIMAL}pin = 987654\n"), &[]);
    assert_eq!(keys(&p), ["rooms[0].pin"]);
    let shown = ConfigError::new(p).to_string();
    assert!(shown.contains("must be a string"), "{shown}");
    assert!(!shown.contains("987654"), "{shown}");

    // A TOML syntax error on the password line: no excerpt of the line.
    let text = format!("[mqtt]\nusername = \"u\"\npassword = \"hunter2\n{MINIMAL}");
    let err = load(&text, &[]).unwrap_err();
    let shown = err.to_string();
    assert!(!shown.contains("hunter2"), "{shown}");
    assert_eq!(keys(err.problems()), ["mqtt.password"], "{shown}");
    assert!(shown.contains("line 3"), "{shown}");

    // Debug of settings and explain() hide the secrets.
    let s = load(
        &format!("[mqtt]\nusername = \"u\"\npassword = \"hunter2\"\n{MINIMAL}pin = \"987654\"\n"),
        &[],
    )
    .unwrap();
    let debug = format!("{s:?}");
    assert!(
        !debug.contains("hunter2") && !debug.contains("987654"),
        "{debug}"
    );
    let summary = explain(&s);
    assert!(
        !summary.contains("hunter2") && !summary.contains("987654"),
        "{summary}"
    );
    assert!(summary.contains("secured"), "{summary}");
}

#[test]
fn allow_dangerous_entries_are_checked() {
    let text = format!(
        "{MINIMAL}allow_dangerous = [\"rebootSystem\", \"setMicMute\", \"noSuchMethod\", \"shutdownsystem\", 3]\n"
    );
    let p = problems(&text, &[]);
    assert_eq!(
        keys(&p),
        [
            "rooms[0].allow_dangerous[4]",
            "rooms[0].allow_dangerous[1]",
            "rooms[0].allow_dangerous[2]",
            "rooms[0].allow_dangerous[3]",
        ],
        "{p:#?}"
    );
    assert!(p[1].message.contains("not a dangerous method"), "{}", p[1]);
    assert!(
        p[2].message.contains("not a method of the catalog"),
        "{}",
        p[2]
    );
    assert!(
        p[3].message.contains("did you mean \"shutdownSystem\""),
        "{}",
        p[3]
    );
}

#[test]
fn allows_follows_the_policy() {
    let s = load(
        &format!("{MINIMAL}allow_dangerous = [\"rebootSystem\"]\n"),
        &[],
    )
    .unwrap();
    let r = &s.rooms[0];
    assert!(r.allows("setMicMute"));
    assert!(r.allows("rebootSystem"));
    assert!(!r.allows("shutdownSystem"));
    assert!(!r.allows("noSuchMethod"));

    let s = load(&format!("{MINIMAL}allow_dangerous = [\"*\"]\n"), &[]).unwrap();
    assert!(s.rooms[0].allows("shutdownSystem"));
    assert!(s.rooms[0].allows("noSuchMethod"));

    let s = load(MINIMAL, &[]).unwrap();
    assert!(!s.rooms[0].allows("rebootSystem"));
    assert!(s.rooms[0].allows("setMicMute"));
}

#[test]
fn room_options_carry_the_settings() {
    let text = r#"
[[rooms]]
id = "r"
host = "192.0.2.7"
port = 8080
instance = "twin2"
ws_port = 9000
pin = "0007"
request_timeout_ms = 2500
keepalive_secs = 9
reconnect_max_secs = 12
auth_retry_secs = 120
"#;
    let s = load(text, &[]).unwrap();
    let o = s.rooms[0].room_options();
    assert_eq!((o.host.as_str(), o.port), ("192.0.2.7", 8080));
    assert_eq!(o.instance, "twin2");
    assert_eq!(o.ws_port, Some(9000));
    assert_eq!(o.pin.as_ref().unwrap().expose(), "0007");
    assert_eq!(o.request_timeout, Duration::from_millis(2500));
    assert_eq!(o.keepalive, Duration::from_secs(9));
    assert_eq!(o.reconnect_max, Duration::from_secs(12));
    assert_eq!(o.auth_retry, Duration::from_secs(120));
}

#[test]
fn tls_files_are_checked() {
    let dir = temp_dir();
    let ca = write(
        &dir,
        "ca.pem",
        "-----BEGIN CERTIFICATE-----\nMII\n-----END CERTIFICATE-----\n",
    );
    let not_pem = write(&dir, "cert.txt", "hello");
    let text = format!(
        "[mqtt.tls]\nca_file = {:?}\n{MINIMAL}",
        ca.display().to_string()
    );
    let s = load(&text, &[]).unwrap_or_else(|e| panic!("{e}"));
    assert_eq!(s.mqtt.port, 8883);
    assert_eq!(
        s.mqtt.tls.as_ref().unwrap().ca_file.as_deref(),
        Some(ca.as_path())
    );

    let text = format!(
        "[mqtt.tls]\nca_file = {:?}\ncert_file = {:?}\n{MINIMAL}",
        dir.join("nope.pem").display().to_string(),
        not_pem.display().to_string()
    );
    let p = problems(&text, &[]);
    assert_eq!(
        keys(&p),
        [
            "mqtt.tls.ca_file",
            "mqtt.tls.cert_file",
            "mqtt.tls.key_file"
        ],
        "{p:#?}"
    );
    assert!(!ConfigError::new(p).to_string().contains("hello"));

    // Empty section: TLS with system roots; env can turn TLS on.
    let s = load(&format!("[mqtt.tls]\n{MINIMAL}"), &[]).unwrap();
    assert_eq!(s.mqtt.tls, Some(MqttTls::default()));
    let s = load(
        MINIMAL,
        &[("TRUECONF2MQTT__MQTT__TLS__CA_FILE", ca.to_str().unwrap())],
    )
    .unwrap();
    assert!(s.mqtt.tls.is_some());
    std::fs::remove_dir_all(dir).unwrap();
}

#[test]
fn version_and_formats() {
    let s = load(&format!("[mqtt]\nversion = 5\n{MINIMAL}"), &[]).unwrap();
    assert_eq!(s.mqtt.version, MqttVersion::V5);
    let p = problems(&format!("[mqtt]\nversion = \"3.1\"\n{MINIMAL}"), &[]);
    assert_eq!(keys(&p), ["mqtt.version"]);
    let s = load(
        &format!("[log]\nlevel = \"warn,trueconf2mqtt=debug\"\n{MINIMAL}"),
        &[],
    )
    .unwrap();
    assert_eq!(s.log.level, "warn,trueconf2mqtt=debug");
}

#[test]
fn wrong_types_are_reported_with_the_key() {
    let p = problems(
        &format!("mqtt = 5\n[log]\nlevel = 3\n{MINIMAL}name = 5\n"),
        &[],
    );
    assert_eq!(keys(&p), ["mqtt", "log.level", "rooms[0].name"], "{p:#?}");
    let p = problems("rooms = \"x\"\n", &[]);
    assert_eq!(keys(&p), ["rooms"], "{p:#?}");
    assert!(
        p[0].message.contains("must be an array of tables"),
        "{}",
        p[0]
    );
}

#[test]
fn missing_file_is_a_problem() {
    let err = Settings::load(Some(Path::new("/nonexistent/trueconf2mqtt.toml"))).unwrap_err();
    assert_eq!(keys(err.problems()), ["/nonexistent/trueconf2mqtt.toml"]);
    assert!(err.to_string().contains("no such file"), "{err}");
}

#[test]
fn explain_summarises() {
    let s = load(EXAMPLE, &[]).unwrap();
    let text = explain(&s);
    assert!(text.contains("mqtt://127.0.0.1:1883"), "{text}");
    assert!(
        text.contains("boardroom (\"Boardroom\"): 127.0.0.1:8766"),
        "{text}"
    );
    assert!(text.contains("secured with a PIN"), "{text}");
    assert!(text.contains("dangerous methods allowed: none"), "{text}");
    assert!(!text.contains("1234"), "{text}");
}

#[test]
fn discovery_mode_and_area() {
    use crate::homeassistant::DiscoveryMode;
    let s = load(MINIMAL, &[]).unwrap();
    assert_eq!(s.homeassistant.discovery_mode, DiscoveryMode::Device);
    assert_eq!(s.rooms[0].area, None);
    let example = load(EXAMPLE, &[]).unwrap();
    assert_eq!(example.rooms[0].area.as_deref(), Some("Floor 3"));
    let s = load(
        MINIMAL,
        &[("TRUECONF2MQTT__HOMEASSISTANT__DISCOVERY_MODE", "entity")],
    )
    .unwrap_or_else(|e| panic!("{e}"));
    assert_eq!(s.homeassistant.discovery_mode, DiscoveryMode::Entity);
    let text = format!("{MINIMAL}\n[homeassistant]\ndiscovery_mode = \"devices\"\n");
    let p = problems(&text, &[]);
    assert_eq!(keys(&p), ["homeassistant.discovery_mode"]);
    assert!(p[0].to_string().contains("\"device\""), "{}", p[0]);
    let text = format!("{MINIMAL}\n[homeassistant]\nmode = \"device\"\n");
    assert_eq!(keys(&problems(&text, &[])), ["homeassistant.mode"]);
}

#[test]
fn mqtt_hosts_lists_the_nodes_of_a_cluster() {
    let text = format!(
        "[mqtt]\nport = 1884\nhosts = [\"n1.example.org\", \"n2:1885\", \"[2001:db8::3]:1886\", \"192.0.2.4\"]\n{MINIMAL}"
    );
    let s = load(&text, &[]).unwrap_or_else(|e| panic!("{e}"));
    assert_eq!(
        (s.mqtt.host.as_str(), s.mqtt.port),
        ("n1.example.org", 1884)
    );
    assert_eq!(
        s.mqtt.failover,
        vec![
            ("n2".to_owned(), 1885),
            ("2001:db8::3".to_owned(), 1886),
            ("192.0.2.4".to_owned(), 1884),
        ]
    );
    // From the environment, comma-separated.
    let s = load(MINIMAL, &[("TRUECONF2MQTT__MQTT__HOSTS", "a:1,b:2")]).unwrap();
    assert_eq!((s.mqtt.host.as_str(), s.mqtt.port), ("a", 1));
    assert_eq!(s.mqtt.failover, vec![("b".to_owned(), 2)]);
    // Plain `host` keeps working, with no other nodes.
    let s = load(MINIMAL, &[]).unwrap();
    assert!(s.mqtt.failover.is_empty());
}

#[test]
fn mqtt_hosts_errors_name_the_entry() {
    let text = format!(
        "[mqtt]\nhost = \"x\"\nhosts = [\"ok:1883\", \"bad host\", \"n:0\", \"ok:1883\", \"[::1\"]\n{MINIMAL}"
    );
    let problems = problems(&text, &[]);
    let keys = keys(&problems);
    for key in [
        "mqtt.host",
        "mqtt.hosts[1]",
        "mqtt.hosts[2]",
        "mqtt.hosts[3]",
        "mqtt.hosts[4]",
    ] {
        assert!(keys.contains(&key), "{key} missing from {keys:?}");
    }
    let problems = problems_of(&format!("[mqtt]\nhosts = []\n{MINIMAL}"));
    assert_eq!(keys_of(&problems), vec!["mqtt.hosts"]);
}

fn problems_of(text: &str) -> Vec<Problem> {
    problems(text, &[])
}

fn keys_of(problems: &[Problem]) -> Vec<&str> {
    keys(problems)
}

#[test]
fn control_surfaces_off_loopback_need_a_token() {
    // Loopback: no token needed.
    let s = load(
        &format!(
            "[http]\nlisten = \"127.0.0.1:9180\"\n[panel]\nlisten = \"[::1]:9181\"\n{MINIMAL}"
        ),
        &[],
    )
    .unwrap();
    assert!(s.http.control_enabled() && s.http.auth_token.is_none());
    assert_eq!(s.panel.listen, Some("[::1]:9181".parse().unwrap()));
    // Any other address without a token refuses to start, naming the key and the ways out.
    let found = problems(
        &format!(
            "[http]\nlisten = \"0.0.0.0:9180\"\n[panel]\nlisten = \"192.0.2.1:9181\"\n{MINIMAL}"
        ),
        &[],
    );
    assert_eq!(keys(&found), ["http.auth_token", "panel.auth_token"]);
    assert!(
        found[0].expected.contains("http.control = false"),
        "{found:?}"
    );
    // Health and metrics only: the Docker setup.
    let s = load(
        &format!("[http]\nlisten = \"0.0.0.0:9180\"\ncontrol = false\n{MINIMAL}"),
        &[],
    )
    .unwrap();
    assert!(!s.http.control_enabled());
    // A token (inline, from the environment or a file) opens it; never shown.
    let token = "Zq9-token-4f1e2d";
    let s = load(
        &format!("[http]\nlisten = \"0.0.0.0:9180\"\n{MINIMAL}"),
        &[("TRUECONF2MQTT__HTTP__AUTH_TOKEN", token)],
    )
    .unwrap();
    assert_eq!(s.http.auth_token.as_ref().map(Secret::expose), Some(token));
    assert!(!format!("{s:?}").contains(token));
    assert!(!super::explain(&s).contains(token));
    let dir = temp_dir();
    std::fs::write(dir.join("panel-token"), format!("{token}\n")).unwrap();
    let s = load(
        &format!(
            "[panel]\nlisten = \"0.0.0.0:9181\"\nauth_token_file = {:?}\n{MINIMAL}",
            dir.join("panel-token")
        ),
        &[],
    )
    .unwrap();
    assert_eq!(s.panel.auth_token.as_ref().map(Secret::expose), Some(token));
    // Short or spaced tokens are refused without being quoted.
    for bad in ["x7q2", "has a space in it"] {
        let found = problems(&format!("[panel]\nauth_token = {bad:?}\n{MINIMAL}"), &[]);
        assert_eq!(keys(&found), ["panel.auth_token"], "{bad}");
        assert!(!format!("{found:?}").contains(bad));
    }
}
