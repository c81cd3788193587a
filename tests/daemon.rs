//! The `trueconf2mqtt` binary as users and systemd run it: config file, health and metrics
//! endpoint, sd_notify, `status`, `check-config`, graceful stop on SIGTERM.

mod common;

use std::io::{Read, Write};
use std::os::unix::net::UnixDatagram;
use std::process::{Command, Stdio};
use std::time::{Duration, Instant};

use trueconf2mqtt::simulator::{SimConfig, SimRoom};

use common::{Broker, Probe, free_port, wait_until};

const BIN: &str = env!("CARGO_BIN_EXE_trueconf2mqtt");
const WAIT: Duration = Duration::from_secs(15);

fn http_get(port: u16, path: &str) -> Option<(u16, String)> {
    let mut stream = std::net::TcpStream::connect(("127.0.0.1", port)).ok()?;
    stream.set_read_timeout(Some(Duration::from_secs(3))).ok()?;
    write!(stream, "GET {path} HTTP/1.0\r\nHost: localhost\r\n\r\n").ok()?;
    let mut response = String::new();
    stream.read_to_string(&mut response).ok()?;
    let status = response.split_whitespace().nth(1)?.parse().ok()?;
    let body = response
        .split_once("\r\n\r\n")
        .map(|(_, b)| b.to_owned())
        .unwrap_or_default();
    Some((status, body))
}

fn config(broker: u16, room: &SimRoom, http: u16, pin_file: &std::path::Path) -> String {
    format!(
        r#"
[mqtt]
host = "127.0.0.1"
port = {broker}
client_id = "daemon-test-{id}"
keepalive_secs = 5
[http]
listen = "127.0.0.1:{http}"
[[rooms]]
id = "boardroom"
name = "Boardroom"
host = "127.0.0.1"
port = {room_port}
pin_file = "{pin}"
keepalive_secs = 3
"#,
        id = fastrand::u32(..),
        room_port = room.http_port(),
        pin = pin_file.display()
    )
}

#[tokio::test]
async fn the_daemon_serves_health_metrics_status_and_stops_cleanly() {
    let broker = Broker::start();
    let room = SimRoom::start(SimConfig {
        pin: Some("0123".into()),
        ..SimConfig::default()
    })
    .await
    .unwrap();
    let dir = tempfile::tempdir().unwrap();
    let pin_file = dir.path().join("pin");
    std::fs::write(&pin_file, "0123\n").unwrap();
    let http = free_port();
    let config_path = dir.path().join("config.toml");
    std::fs::write(&config_path, config(broker.port, &room, http, &pin_file)).unwrap();

    // check-config accepts it and never prints the PIN.
    let out = Command::new(BIN)
        .args(["check-config", "--config"])
        .arg(&config_path)
        .output()
        .unwrap();
    assert!(
        out.status.success(),
        "{}",
        String::from_utf8_lossy(&out.stderr)
    );
    assert!(!String::from_utf8_lossy(&out.stdout).contains("0123"));

    let notify_path = dir.path().join("notify.sock");
    let notify = UnixDatagram::bind(&notify_path).unwrap();
    notify
        .set_read_timeout(Some(Duration::from_millis(200)))
        .unwrap();
    let probe = Probe::connect(broker.port, &["trueconf/#"]).await;
    let mut child = Command::new(BIN)
        .args(["run", "--config"])
        .arg(&config_path)
        .env("NOTIFY_SOCKET", &notify_path)
        .env("WATCHDOG_USEC", "1000000")
        .env("RUST_LOG", "warn,trueconf2mqtt::room=info")
        .stdout(Stdio::null())
        .stderr(Stdio::piped())
        .spawn()
        .unwrap();

    probe
        .wait_value("trueconf/boardroom/availability", "online", WAIT)
        .await;

    // sd_notify: READY, a STATUS line naming the room, and watchdog pings.
    let mut seen = String::new();
    let deadline = Instant::now() + WAIT;
    while !(seen.contains("READY=1")
        && seen.contains("boardroom: online")
        && seen.contains("WATCHDOG=1"))
    {
        assert!(Instant::now() < deadline, "notifications so far: {seen}");
        let mut buf = [0u8; 1024];
        if let Ok(n) = notify.recv(&mut buf) {
            seen.push_str(&String::from_utf8_lossy(&buf[..n]));
            seen.push('\n');
        }
    }

    wait_until(WAIT, "ready", || {
        http_get(http, "/readyz").is_some_and(|(s, _)| s == 200)
    })
    .await;
    let (status, body) = http_get(http, "/healthz").unwrap();
    assert_eq!((status, body.trim()), (200, "ok"));
    let (_, readyz) = http_get(http, "/readyz").unwrap();
    assert!(readyz.contains("\"mqtt\":\"connected\""), "{readyz}");
    probe
        .publish("trueconf/boardroom/set/mic_muted", "ON")
        .await;
    probe
        .wait_value("trueconf/boardroom/mic_muted", "ON", WAIT)
        .await;
    let (_, metrics) = http_get(http, "/metrics").unwrap();
    for needle in [
        "trueconf2mqtt_mqtt_connected 1",
        "trueconf2mqtt_room_online{room=\"boardroom\"} 1",
        "trueconf2mqtt_commands_ok_total{room=\"boardroom\"} 1",
        "trueconf2mqtt_command_duration_seconds_count{room=\"boardroom\"} 1",
    ] {
        assert!(metrics.contains(needle), "{needle} missing in:\n{metrics}");
    }

    // `status` reads the rooms from the broker.
    let out = Command::new(BIN)
        .args(["status", "--broker", &format!("127.0.0.1:{}", broker.port)])
        .output()
        .unwrap();
    let table = String::from_utf8_lossy(&out.stdout);
    assert!(
        out.status.success(),
        "{}",
        String::from_utf8_lossy(&out.stderr)
    );
    assert!(table.contains("bridge: online"), "{table}");
    let row = table
        .lines()
        .find(|l| l.starts_with("boardroom"))
        .unwrap_or_default();
    assert!(
        row.contains("online") && row.contains("normal") && row.contains("ON"),
        "{table}"
    );

    // With `mqtt.hosts`, `status` goes on to the next node when the first does not answer, and
    // `check-config` lists every node.
    let dead = free_port();
    let cluster = dir.path().join("cluster.toml");
    std::fs::write(
        &cluster,
        format!(
            "[mqtt]\nhosts = [\"127.0.0.1:{dead}\", \"127.0.0.1:{}\"]\n\
             [[rooms]]\nid = \"boardroom\"\nhost = \"127.0.0.1\"\n",
            broker.port
        ),
    )
    .unwrap();
    let out = Command::new(BIN)
        .args(["check-config", "--config"])
        .arg(&cluster)
        .output()
        .unwrap();
    let summary = String::from_utf8_lossy(&out.stdout);
    assert!(
        summary.contains(&format!("mqtt://127.0.0.1:{dead}"))
            && summary.contains(&format!("further node: mqtt://127.0.0.1:{}", broker.port)),
        "{summary}"
    );
    let out = Command::new(BIN)
        .args(["status", "--config"])
        .arg(&cluster)
        .output()
        .unwrap();
    let table = String::from_utf8_lossy(&out.stdout);
    assert!(
        out.status.success() && table.contains("bridge: online"),
        "{table}{}",
        String::from_utf8_lossy(&out.stderr)
    );

    // SIGTERM: offline published, exit 0 within 5 s.
    let started = Instant::now();
    let _ = Command::new("kill")
        .args(["-TERM", &child.id().to_string()])
        .status();
    let status = loop {
        if let Some(status) = child.try_wait().unwrap() {
            break status;
        }
        assert!(
            started.elapsed() < Duration::from_secs(5),
            "did not stop within 5 s"
        );
        std::thread::sleep(Duration::from_millis(20));
    };
    assert!(status.success(), "exit status {status}");
    probe
        .wait_value("trueconf/boardroom/availability", "offline", WAIT)
        .await;
    probe
        .wait_value("trueconf/bridge/state", "offline", WAIT)
        .await;
    // The retained bridge/info agrees: every room stopped, none still "online".
    let info = probe
        .wait_latest("trueconf/bridge/info", WAIT, |p| p.contains("\"stopped\""))
        .await;
    let info: serde_json::Value = serde_json::from_str(&info).unwrap();
    assert_eq!(info["rooms"]["boardroom"]["state"], "stopped", "{info}");
    assert!(info["rooms"]["boardroom"]["reason"].is_string(), "{info}");
    let mut stderr = String::new();
    child
        .stderr
        .take()
        .unwrap()
        .read_to_string(&mut stderr)
        .unwrap();
    assert!(!stderr.contains("0123"), "the PIN never reaches the log");
    // The log names the room by its id, not only by host:port.
    let plain = strip_ansi(&stderr);
    let authenticated = plain
        .lines()
        .find(|l| l.contains("authenticated"))
        .unwrap_or_default();
    assert!(
        authenticated.contains("room=boardroom"),
        "{authenticated}\n{stderr}"
    );
}

#[test]
fn a_bad_configuration_never_starts_and_names_every_problem() {
    let dir = tempfile::tempdir().unwrap();
    let path = dir.path().join("bad.toml");
    std::fs::write(
        &path,
        "[mqtt]\nport = 70000\npasswrd = \"x\"\n[[rooms]]\nid = \"Bad Id\"\nhost = \"h\"\npin = \"SECRET-PIN\"\n",
    )
    .unwrap();
    for subcommand in ["check-config", "run"] {
        let out = Command::new(BIN)
            .args([subcommand, "--config"])
            .arg(&path)
            .output()
            .unwrap();
        assert!(!out.status.success());
        let err = String::from_utf8_lossy(&out.stderr);
        assert!(err.contains("mqtt.port"), "{err}");
        assert!(err.contains("mqtt.passwrd"), "{err}");
        assert!(err.contains("rooms[0].id"), "{err}");
        assert!(!err.contains("SECRET-PIN"), "{err}");
    }
}

#[tokio::test]
async fn a_taken_http_port_stops_the_daemon_at_start() {
    let broker = Broker::start();
    let room = SimRoom::start(SimConfig {
        pin: Some("0123".into()),
        ..SimConfig::default()
    })
    .await
    .unwrap();
    let dir = tempfile::tempdir().unwrap();
    let pin_file = dir.path().join("pin");
    std::fs::write(&pin_file, "0123\n").unwrap();
    let taken = std::net::TcpListener::bind("127.0.0.1:0").unwrap();
    let http = taken.local_addr().unwrap().port();
    let config_path = dir.path().join("config.toml");
    std::fs::write(&config_path, config(broker.port, &room, http, &pin_file)).unwrap();
    let probe = Probe::connect(broker.port, &["trueconf/#"]).await;
    let mut child = Command::new(BIN)
        .args(["run", "--config"])
        .arg(&config_path)
        .env("RUST_LOG", "warn")
        .stdout(Stdio::null())
        .stderr(Stdio::piped())
        .spawn()
        .unwrap();
    let started = Instant::now();
    let status = loop {
        if let Some(status) = child.try_wait().unwrap() {
            break status;
        }
        if started.elapsed() > WAIT {
            let _ = child.kill();
            panic!("the daemon kept running without its health endpoint");
        }
        std::thread::sleep(Duration::from_millis(20));
    };
    assert!(!status.success());
    let mut stderr = String::new();
    child
        .stderr
        .take()
        .unwrap()
        .read_to_string(&mut stderr)
        .unwrap();
    assert!(
        stderr.contains("http.listen") && stderr.contains(&http.to_string()),
        "{stderr}"
    );
    // Nothing was started: the Room never appeared on the broker.
    tokio::time::sleep(Duration::from_millis(300)).await;
    assert!(probe.latest("trueconf/boardroom/availability").is_none());
    drop(taken);
}

#[test]
fn a_closed_stdout_ends_a_subcommand_quietly() {
    // `trueconf2mqtt catalog | head`: the reader goes away before the output ends.
    for args in [&["catalog"][..], &["catalog", "--markdown"], &["--help"]] {
        let mut child = Command::new(BIN)
            .args(args)
            .stdout(Stdio::piped())
            .stderr(Stdio::piped())
            .spawn()
            .unwrap();
        drop(child.stdout.take());
        let out = child.wait_with_output().unwrap();
        let err = String::from_utf8_lossy(&out.stderr);
        assert!(out.status.success(), "{args:?}: {} {err}", out.status);
        assert!(!err.contains("panicked"), "{args:?}: {err}");
    }
    // Methods without parameters read as calls, not `accept((none))`.
    let out = Command::new(BIN).arg("catalog").output().unwrap();
    let text = String::from_utf8_lossy(&out.stdout);
    assert!(text.lines().any(|l| l == "accept()"), "{text}");
    assert!(!text.contains("(none)"), "{text}");
}

/// `check-config` on `[mqtt]` + one room with `extra_mqtt` and `extra_room` lines added.
fn check(extra_mqtt: &str, extra_room: &str) -> (bool, String) {
    let dir = tempfile::tempdir().unwrap();
    let path = dir.path().join("c.toml");
    std::fs::write(
        &path,
        format!(
            "[mqtt]\nhost = \"127.0.0.1\"\n{extra_mqtt}\n[[rooms]]\nid = \"a\"\nhost = \"h\"\n{extra_room}\n"
        ),
    )
    .unwrap();
    let out = Command::new(BIN)
        .args(["check-config", "--config"])
        .arg(&path)
        .output()
        .unwrap();
    (
        out.status.success(),
        String::from_utf8_lossy(&out.stderr).into_owned(),
    )
}

#[test]
fn check_config_follows_the_one_type_rule_of_the_example_config() {
    // The rule the example configuration states: the TOML type or a string holding it; text
    // keys take strings only; a number is never a boolean.
    let example = std::fs::read_to_string(concat!(
        env!("CARGO_MANIFEST_DIR"),
        "/config/trueconf2mqtt.example.toml"
    ))
    .unwrap();
    assert!(example.contains("TYPES: one rule"), "the rule is stated");
    for (mqtt, room) in [
        ("port = \"1883\"", ""),
        ("port = 1883", ""),
        ("discovery = \"yes\"", ""),
        ("discovery = false", ""),
        ("", "pin = \"0123\""),
    ] {
        let (ok, err) = check(mqtt, room);
        assert!(ok, "{mqtt}{room}: {err}");
    }
    for (mqtt, room, key) in [
        ("discovery = 0", "", "mqtt.discovery"),
        ("", "pin = 1234", "rooms[0].pin"),
        ("port = \"x\"", "", "mqtt.port"),
    ] {
        let (ok, err) = check(mqtt, room);
        assert!(!ok && err.contains(key), "{mqtt}{room}: {err}");
    }
    // An absolute path whose directory is missing: not "does not look like a path".
    let (ok, err) = check("", "pin_file = \"/nonexistent-dir-t2m/boardroom-pin\"");
    assert!(!ok, "{err}");
    assert!(!err.contains("does not look like a path"), "{err}");
    assert!(err.contains("directory does not exist"), "{err}");
}

#[tokio::test]
async fn room_events_says_when_another_client_takes_the_room() {
    let room = SimRoom::start(SimConfig::default()).await.unwrap();
    let mut child = Command::new(BIN)
        .args(["room", "--host", "127.0.0.1", "--port"])
        .arg(room.http_port().to_string())
        .arg("events")
        .env("RUST_LOG", "off")
        .stdout(Stdio::null())
        .stderr(Stdio::piped())
        .spawn()
        .unwrap();
    let stderr = child.stderr.take().unwrap();
    // Read on a thread, awaited here: the simulated Room runs on this test's runtime, which a
    // blocking wait would stall.
    let (tx, mut rx) = tokio::sync::mpsc::unbounded_channel();
    std::thread::spawn(move || {
        use std::io::BufRead;
        for line in std::io::BufReader::new(stderr)
            .lines()
            .map_while(Result::ok)
        {
            let _ = tx.send(line);
        }
    });
    // Online (authenticated and resynchronised), not merely authenticated: a second controller
    // arriving during the first's resync would make its connect fail instead.
    let connected = tokio::time::timeout(WAIT, rx.recv())
        .await
        .ok()
        .flatten()
        .expect("room events said nothing");
    assert!(connected.contains("connected; printing"), "{connected}");
    // A second controller: the bridge, another `room` command …
    let other =
        trueconf2mqtt::room::RoomClient::connect(common::test_room_options(room.http_port()))
            .await
            .unwrap();
    let deadline = Instant::now() + WAIT;
    let mut seen = Vec::new();
    let line = loop {
        let left = deadline.saturating_duration_since(Instant::now());
        match tokio::time::timeout(left, rx.recv()).await {
            Ok(Some(line)) if line.contains("lost control of the Room") => break line,
            Ok(Some(line)) => seen.push(line),
            _ => {
                let _ = child.kill();
                panic!("room events never said it lost control: {seen:?}");
            }
        }
    };
    assert!(line.contains("one controller"), "{line}");
    let _ = child.kill();
    let _ = child.wait();
    other.close().await;
}

/// The text without ANSI colour sequences (`ESC [ … m`).
fn strip_ansi(text: &str) -> String {
    let mut out = String::with_capacity(text.len());
    let mut chars = text.chars();
    while let Some(c) = chars.next() {
        if c == '\u{1b}' {
            for c in chars.by_ref() {
                if c.is_ascii_alphabetic() {
                    break;
                }
            }
        } else {
            out.push(c);
        }
    }
    out
}
