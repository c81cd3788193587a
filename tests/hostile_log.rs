//! Log injection (issue 12 case 7) and `--log-format json` keys (case 11), against the real
//! binary: hostile bytes in MQTT topics and payloads never forge a log line or reach the
//! terminal raw, text logs into a pipe carry no colour codes, and every JSON record is one
//! object with unique keys.

mod common;

use std::collections::HashSet;
use std::fmt;
use std::io::Read;
use std::process::{Child, Command, Stdio};
use std::sync::{Arc, Mutex};
use std::time::Duration;

use serde::de::{Deserializer, IgnoredAny, MapAccess, Visitor};
use trueconf2mqtt::simulator::{SimConfig, SimRoom};

use common::{Broker, Probe};

const BIN: &str = env!("CARGO_BIN_EXE_trueconf2mqtt");
const WAIT: Duration = Duration::from_secs(15);

/// Commands whose refusal quotes hostile text: a forged log line, a terminal title (OSC)
/// sequence, a colour code, a C1 CSI, NUL. (mosquitto refuses control characters in topic names,
/// so they come in payloads; JSON escapes decode to the raw characters.)
const HOSTILE_COMMANDS: &[(&str, &str)] = &[
    (
        "trueconf/boardroom/set",
        "{\"x\\n2026-01-01T00:00:00.000000Z ERROR FORGED line\": true}",
    ),
    (
        "trueconf/boardroom/set",
        "{\"\\u001b]0;owned\\u0007\\u001b[31mred\\r\\u009b2J\\u0000\": true}",
    ),
    (
        "trueconf/boardroom/set/mic_muted",
        "maybe\n2026-01-01T00:00:00Z ERROR FORGED\u{1b}[2J\0",
    ),
];

/// A daemon whose stderr is collected as it comes.
struct Daemon {
    child: Child,
    stderr: Arc<Mutex<Vec<u8>>>,
    _dir: tempfile::TempDir,
}

impl Daemon {
    fn start(
        broker: u16,
        room: &SimRoom,
        pin: &str,
        args: &[&str],
        env: &[(&str, &str)],
    ) -> Daemon {
        let dir = tempfile::tempdir().unwrap();
        let pin_file = dir.path().join("pin");
        std::fs::write(&pin_file, pin).unwrap();
        let config = dir.path().join("config.toml");
        std::fs::write(
            &config,
            format!(
                r#"
[mqtt]
host = "127.0.0.1"
port = {broker}
client_id = "hostile-log-{id}"
[[rooms]]
id = "boardroom"
name = "Boardroom"
host = "127.0.0.1"
port = {room_port}
{pin}
"#,
                id = fastrand::u32(..),
                room_port = room.http_port(),
                pin = if pin.is_empty() {
                    String::new()
                } else {
                    format!("pin_file = \"{}\"", pin_file.display())
                }
            ),
        )
        .unwrap();
        let mut command = Command::new(BIN);
        command
            .args(args)
            .args(["run", "--config"])
            .arg(&config)
            .env("RUST_LOG", "info")
            .env_remove("NO_COLOR")
            .stdout(Stdio::null())
            .stderr(Stdio::piped());
        for (name, value) in env {
            command.env(name, value);
        }
        let mut child = command.spawn().unwrap();
        let stderr = Arc::new(Mutex::new(Vec::new()));
        let sink = stderr.clone();
        let mut pipe = child.stderr.take().unwrap();
        std::thread::spawn(move || {
            let mut buf = [0u8; 4096];
            while let Ok(n) = pipe.read(&mut buf) {
                if n == 0 {
                    break;
                }
                sink.lock().unwrap().extend_from_slice(&buf[..n]);
            }
        });
        Daemon {
            child,
            stderr,
            _dir: dir,
        }
    }

    fn log(&self) -> String {
        String::from_utf8_lossy(&self.stderr.lock().unwrap()).into_owned()
    }

    async fn wait_log(&self, what: &str, count: usize) {
        let deadline = std::time::Instant::now() + WAIT;
        while self.log().matches(what).count() < count {
            assert!(
                std::time::Instant::now() < deadline,
                "timed out waiting for {count} × {what:?} in:\n{}",
                self.log()
            );
            tokio::time::sleep(Duration::from_millis(20)).await;
        }
    }
}

impl Drop for Daemon {
    fn drop(&mut self) {
        let _ = self.child.kill();
        let _ = self.child.wait();
    }
}

/// Publishes the hostile commands and waits until the daemon has refused all of them.
async fn send_hostile_commands(broker: &Broker, daemon: &Daemon) {
    let probe = Probe::connect(broker.port, &["trueconf/#"]).await;
    probe
        .wait_value("trueconf/boardroom/availability", "online", WAIT)
        .await;
    for (topic, payload) in HOSTILE_COMMANDS {
        probe.publish(topic, *payload).await;
    }
    daemon
        .wait_log("command failed", HOSTILE_COMMANDS.len())
        .await;
}

#[tokio::test]
async fn hostile_bytes_never_forge_a_log_line_or_reach_the_terminal() {
    let broker = Broker::start();
    let room = SimRoom::start(SimConfig::default()).await.unwrap();
    let daemon = Daemon::start(broker.port, &room, "", &[], &[]);
    send_hostile_commands(&broker, &daemon).await;
    let raw = daemon.stderr.lock().unwrap().clone();
    let log = daemon.log();
    assert!(
        !raw.iter().any(|b| (*b < 0x20 && *b != b'\n') || *b == 0x7f),
        "control bytes in the log (colour codes into a pipe, or raw hostile bytes):\n{log:?}"
    );
    assert!(!log.contains('\u{9b}'), "a C1 control in the log:\n{log:?}");
    for line in log.lines() {
        assert!(
            !line.contains("FORGED") || line.contains("command failed"),
            "a forged line: {line:?}\nin:\n{log}"
        );
    }
    assert!(
        log.contains("\\n2026-01-01"),
        "the newline is shown escaped:\n{log}"
    );
    assert!(
        log.contains("\\x1b]0;owned"),
        "the OSC is shown escaped:\n{log}"
    );
}

/// Colour is for people: with `NO_COLOR` set there is none, and into a pipe there is none
/// either (the test above); a terminal is not available to the test.
#[tokio::test]
async fn no_color_is_honoured() {
    let broker = Broker::start();
    let room = SimRoom::start(SimConfig::default()).await.unwrap();
    let daemon = Daemon::start(broker.port, &room, "", &[], &[("NO_COLOR", "1")]);
    daemon.wait_log("authenticated", 1).await;
    assert!(!daemon.log().contains('\x1b'), "{:?}", daemon.log());
}

/// The keys of one JSON object, in order, duplicates included.
fn keys_of(line: &str) -> Result<Vec<String>, serde_json::Error> {
    struct Keys;
    impl<'de> Visitor<'de> for Keys {
        type Value = Vec<String>;
        fn expecting(&self, f: &mut fmt::Formatter) -> fmt::Result {
            f.write_str("a JSON object")
        }
        fn visit_map<A: MapAccess<'de>>(self, mut map: A) -> Result<Vec<String>, A::Error> {
            let mut keys = Vec::new();
            while let Some(key) = map.next_key::<String>()? {
                let _: IgnoredAny = map.next_value()?;
                keys.push(key);
            }
            Ok(keys)
        }
    }
    serde_json::Deserializer::from_str(line).deserialize_map(Keys)
}

#[tokio::test]
async fn json_log_records_are_one_object_with_unique_keys() {
    let broker = Broker::start();
    // A wrong PIN: the refusal is logged with the Room's message as a field.
    let room = SimRoom::start(SimConfig {
        pin: Some("0123".into()),
        ..SimConfig::default()
    })
    .await
    .unwrap();
    let daemon = Daemon::start(broker.port, &room, "9999", &["--log-format", "json"], &[]);
    daemon.wait_log("refused authentication", 1).await;
    let log = daemon.log();
    let mut refusal = None;
    for line in log.lines() {
        let keys = keys_of(line).unwrap_or_else(|e| panic!("not one JSON object ({e}): {line:?}"));
        let unique: HashSet<&String> = keys.iter().collect();
        assert_eq!(unique.len(), keys.len(), "a repeated key: {line}");
        for key in ["timestamp", "level", "target", "message"] {
            assert!(keys.iter().any(|k| k == key), "no {key}: {line}");
        }
        if line.contains("refused authentication") {
            refusal = Some(serde_json::from_str::<serde_json::Value>(line).unwrap());
        }
    }
    let refusal = refusal.expect("the refusal was logged");
    assert!(
        refusal["message"]
            .as_str()
            .is_some_and(|m| m.contains("refused authentication")),
        "{refusal}"
    );
    assert!(!log.contains("9999"), "the PIN never reaches the log");
}
