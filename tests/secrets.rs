//! No secret ever shows: not in any log record (TRACE, every crate, `log` records included), not
//! in anything the bridge publishes, not in Debug output or error messages.
//!
//! Known secrets: a Room PIN, a wrong PIN tried against the Room, an MQTT password (mosquitto
//! with a password file), a wrong MQTT password, a login password sent through
//! `request/login`, and the tokens the Room issues (the bridge's HTTP token read back from the
//! client, and every string shaped like a TrueConf token). Each is searched for as text and as
//! hex (wire-level loggers print payloads in hex).
//!
//! The simulated Room runs in its own process (`trueconf2mqtt simulate`): this process then holds
//! only the bridge's side of the WebSocket, so whatever the capture finds came from the bridge,
//! its Room client or the libraries they use — not from the simulator reading our `auth`.

mod common;

use std::io::{BufRead, BufReader};
use std::path::PathBuf;
use std::process::{Child, Command, Stdio};
use std::time::{Duration, Instant};

use serde_json::{Value, json};
use trueconf2mqtt::bridge::{BridgeOptions, RoomEntry};
use trueconf2mqtt::config::{Settings, explain};
use trueconf2mqtt::mqtt::LinkOptions;
use trueconf2mqtt::room::{RoomClient, RoomOptions};
use trueconf2mqtt::secret::Secret;

use common::{
    LogCapture, Probe, Running, free_port, room_entry, test_bridge_options, test_link_options,
    test_room_options, wait_until, within,
};

const ROOM: &str = "boardroom";
const ROOM_PIN: &str = "PIN-7391-SECRET";
const WRONG_PIN: &str = "PIN-0000-WRONGSECRET";
const MQTT_USER: &str = "bridge-user";
const MQTT_PASSWORD: &str = "MQTT-PASS-5521-SECRET";
const WRONG_MQTT_PASSWORD: &str = "MQTT-WRONG-8812-SECRET";
const LOGIN_PASSWORD: &str = "LOGIN-PASS-2648-SECRET";
const WAIT: Duration = Duration::from_secs(10);

/// Every record at TRACE, every target, under the daemon's own unconditional policy
/// (`cli::loggable`: no TRACE records of the wire-level WebSocket loggers): exactly what the
/// daemon writes with `RUST_LOG=trace`.
fn logs() -> &'static LogCapture {
    LogCapture::install_filtered("trace", usize::MAX, trueconf2mqtt::cli::loggable)
}

// === A broker that wants a password ===

/// mosquitto with `allow_anonymous false` and a password file made by `mosquitto_passwd`.
struct AuthBroker {
    port: u16,
    _dir: tempfile::TempDir,
    child: Child,
}

impl AuthBroker {
    fn start() -> AuthBroker {
        let dir = tempfile::tempdir().expect("temp dir");
        #[cfg(unix)]
        {
            use std::os::unix::fs::PermissionsExt;
            let _ = std::fs::set_permissions(dir.path(), std::fs::Permissions::from_mode(0o755));
        }
        let passwords = dir.path().join("passwd");
        let made = Command::new("mosquitto_passwd")
            .arg("-b")
            .arg("-c")
            .arg(&passwords)
            .arg(MQTT_USER)
            .arg(MQTT_PASSWORD)
            .stdout(Stdio::null())
            .stderr(Stdio::null())
            .status()
            .expect(
                "mosquitto_passwd is not installed: run `apt-get install -y mosquitto` (it ships \
                 mosquitto_passwd; the test script installs it)",
            );
        assert!(made.success(), "mosquitto_passwd failed: {made}");
        #[cfg(unix)]
        {
            use std::os::unix::fs::PermissionsExt;
            // mosquitto started as root drops to user `mosquitto`, which must read the file.
            let _ = std::fs::set_permissions(&passwords, std::fs::Permissions::from_mode(0o644));
        }
        let port = free_port();
        let config = dir.path().join("mosquitto.conf");
        std::fs::write(
            &config,
            format!(
                "listener {port} 127.0.0.1\nallow_anonymous false\npassword_file {}\n",
                passwords.display()
            ),
        )
        .expect("write mosquitto.conf");
        let child = Command::new("mosquitto")
            .arg("-c")
            .arg(&config)
            .stdout(Stdio::null())
            .stderr(Stdio::null())
            .spawn()
            .expect(
                "mosquitto is not installed: run `apt-get install -y mosquitto mosquitto-clients`",
            );
        let deadline = Instant::now() + WAIT;
        while std::net::TcpStream::connect(("127.0.0.1", port)).is_err() {
            assert!(
                Instant::now() < deadline,
                "mosquitto did not start on {port}"
            );
            std::thread::sleep(Duration::from_millis(20));
        }
        AuthBroker {
            port,
            _dir: dir,
            child,
        }
    }
}

impl Drop for AuthBroker {
    fn drop(&mut self) {
        let _ = self.child.kill();
        let _ = self.child.wait();
    }
}

// === The simulated Room, in its own process ===

struct SimProcess {
    child: Child,
    http_port: u16,
    output: PathBuf,
    _dir: tempfile::TempDir,
}

impl SimProcess {
    fn start(pin: &str) -> SimProcess {
        let dir = tempfile::tempdir().expect("temp dir");
        let output = dir.path().join("simulator.log");
        let mut child = Command::new(env!("CARGO_BIN_EXE_trueconf2mqtt"))
            .args(["simulate", "--pin", pin])
            .stdin(Stdio::piped())
            .stdout(Stdio::piped())
            .stderr(std::fs::File::create(&output).expect("simulator log"))
            .spawn()
            .expect("start `trueconf2mqtt simulate`");
        let stdout = child.stdout.take().expect("simulator stdout");
        let mut first = String::new();
        BufReader::new(stdout)
            .read_line(&mut first)
            .expect("simulator prints its ports");
        let http_port = first
            .split_whitespace()
            .find_map(|w| w.strip_prefix("http="))
            .and_then(|p| p.parse().ok())
            .unwrap_or_else(|| panic!("unexpected first simulator line: {first:?}"));
        SimProcess {
            child,
            http_port,
            output,
            _dir: dir,
        }
    }
}

impl Drop for SimProcess {
    fn drop(&mut self) {
        let _ = self.child.kill();
        let _ = self.child.wait();
    }
}

// === Bridges ===

fn room_options(http_port: u16, pin: &str) -> RoomOptions {
    let mut options = test_room_options(http_port).with_pin(pin);
    options.auth_retry = Duration::from_secs(1);
    options
}

fn options(broker: u16, base: &str, password: &str, room: RoomOptions) -> BridgeOptions {
    let mqtt = LinkOptions {
        credentials: Some((MQTT_USER.into(), Secret::new(password))),
        ..test_link_options(broker, &format!("t2m-secrets-{base}"))
    };
    let room = RoomEntry {
        allow_dangerous: vec![
            "login".into(),
            "logout".into(),
            "getTokenForHttpServer".into(),
        ],
        ..room_entry(ROOM, "Boardroom", room)
    };
    BridgeOptions {
        base_topic: base.into(),
        discovery_prefix: Some(format!("ha-{base}")),
        homeassistant: Default::default(),
        ..test_bridge_options(mqtt, vec![room])
    }
}

/// Publishes a command and returns its response (matched by transaction).
async fn command(probe: &Probe, topic: &str, mut payload: Value, transaction: u64) -> Value {
    payload["transaction"] = json!(transaction);
    probe.publish(topic, payload.to_string()).await;
    let response_topic =
        topic
            .replacen("/request/", "/response/", 1)
            .replacen("/set/", "/response/", 1);
    let message = probe
        .wait_message(&response_topic, WAIT, |p| {
            serde_json::from_str::<Value>(p).is_ok_and(|v| v["transaction"] == json!(transaction))
        })
        .await;
    serde_json::from_str(&message.payload).unwrap()
}

// === Searching ===

fn hex(text: &str, upper: bool) -> String {
    text.bytes()
        .map(|b| {
            if upper {
                format!("{b:02X}")
            } else {
                format!("{b:02x}")
            }
        })
        .collect()
}

/// Every way `secret` could show in a text: as is, and as hex.
fn forms(secret: &str) -> Vec<String> {
    vec![secret.to_owned(), hex(secret, false), hex(secret, true)]
}

/// Strings shaped like a TrueConf token, `<n>*<16 alnum>*<8 digits>*<64 hex>` (SPEC §4.3).
fn token_shaped(text: &str) -> Vec<String> {
    /// The length and character class of each `*`-separated part after `<n>*`.
    const PARTS: [(usize, u8); 3] = [(16, b'a'), (8, b'd'), (64, b'x')];
    let fits = |b: u8, class: u8| match class {
        b'a' => b.is_ascii_alphanumeric(),
        b'd' => b.is_ascii_digit(),
        _ => b.is_ascii_hexdigit(),
    };
    let bytes = text.as_bytes();
    let mut found = Vec::new();
    for start in 0..bytes.len().saturating_sub(2) {
        if !(bytes[start].is_ascii_digit() && bytes[start + 1] == b'*') {
            continue;
        }
        let mut at = start + 2;
        let whole = PARTS.iter().enumerate().all(|(i, (len, class))| {
            let end = at + len;
            if end > bytes.len() || !bytes[at..end].iter().all(|b| fits(*b, *class)) {
                return false;
            }
            at = end;
            if i + 1 < PARTS.len() {
                if bytes.get(at) != Some(&b'*') {
                    return false;
                }
                at += 1;
            }
            true
        });
        if whole {
            found.push(text[start..at].to_owned());
        }
    }
    found
}

/// Where `needle` occurs in `haystack`, with some context, at most `limit`.
fn contexts(haystack: &str, needle: &str, limit: usize) -> Vec<String> {
    haystack
        .match_indices(needle)
        .take(limit)
        .map(|(i, _)| {
            let mut from = i.saturating_sub(120);
            while !haystack.is_char_boundary(from) {
                from -= 1;
            }
            let mut to = (i + needle.len() + 80).min(haystack.len());
            while !haystack.is_char_boundary(to) {
                to += 1;
            }
            haystack[from..to].replace('\n', "⏎")
        })
        .collect()
}

/// Occurrences of each secret (any form) and of token-shaped strings, per corpus.
fn leaks(corpora: &[(&str, &str)], secrets: &[(&str, String)]) -> Vec<String> {
    let mut found = Vec::new();
    for (corpus, text) in corpora {
        for (name, secret) in secrets {
            for form in forms(secret) {
                let hits = text.matches(form.as_str()).count();
                if hits > 0 {
                    found.push(format!(
                        "{corpus}: {hits}× {name} ({form}), e.g. {:?}",
                        contexts(text, &form, 3)
                    ));
                }
            }
        }
        let tokens = token_shaped(text);
        if !tokens.is_empty() {
            found.push(format!(
                "{corpus}: {} token-shaped strings, e.g. {:?}",
                tokens.len(),
                tokens
                    .iter()
                    .take(2)
                    .flat_map(|t| contexts(text, t, 1))
                    .collect::<Vec<_>>()
            ));
        }
    }
    found
}

#[test]
fn the_token_matcher_finds_tokens() {
    let token = format!(
        "1*{}*{}*{}",
        "aB3".repeat(5) + "x",
        "01234567",
        "ab".repeat(32)
    );
    assert_eq!(token_shaped(&format!("x\"{token}\"y")), vec![token]);
    assert!(token_shaped("1***").is_empty());
    assert_eq!(hex("PIN", false), "50494e");
}

// === The scenarios ===

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn no_secret_reaches_logs_mqtt_debug_output_or_errors() {
    let capture = logs();
    let started = Instant::now();
    let broker = AuthBroker::start();
    let sim = SimProcess::start(ROOM_PIN);
    let probe = Probe::connect_with(
        broker.port,
        &["#"],
        &format!("secrets-probe-{}", fastrand::u32(..)),
        true,
        Some((MQTT_USER, MQTT_PASSWORD)),
    )
    .await;
    let mut debug_and_errors = Vec::new();

    // 1. The bridge, right PIN, right MQTT password; commands carrying and minting secrets.
    let main_options = options(
        broker.port,
        "trueconf",
        MQTT_PASSWORD,
        room_options(sim.http_port, ROOM_PIN),
    );
    debug_and_errors.push(format!("{main_options:?}"));
    let mut main = Running::start(main_options);
    probe
        .wait_value(&format!("trueconf/{ROOM}/availability"), "online", WAIT)
        .await;
    let client = main.bridge.room(ROOM).unwrap().clone();
    debug_and_errors.push(format!("{:?}", client.options()));
    let http_token = client
        .http_token()
        .expect("the Room issued an HTTP token at auth");
    debug_and_errors.push(format!("{http_token:?} {http_token}"));
    let http_token = http_token.expose().to_owned();
    assert!(!http_token.is_empty());

    let base = format!("trueconf/{ROOM}");
    let r = command(
        &probe,
        &format!("{base}/request/getTokenForHttpServer"),
        json!({}),
        1,
    )
    .await;
    assert_eq!(r["status"], "ok", "{r}");
    assert_eq!(r["data"]["token"], "***", "minted token redacted: {r}");
    let r = command(&probe, &format!("{base}/request/logout"), json!({}), 2).await;
    assert_eq!(r["status"], "ok", "{r}");
    probe
        .wait_value(&format!("{base}/app_state"), "login", WAIT)
        .await;
    let r = command(
        &probe,
        &format!("{base}/request/login"),
        json!({"login": "alice", "password": LOGIN_PASSWORD, "encryptPassword": false}),
        3,
    )
    .await;
    assert_eq!(r["status"], "ok", "{r}");
    probe
        .wait_value(&format!("{base}/logged_in"), "ON", WAIT)
        .await;
    // A malformed login: the error names the parameter, never its value.
    let r = command(
        &probe,
        &format!("{base}/request/login"),
        json!({"login": "alice", "password": LOGIN_PASSWORD, "encryptPassword": "no"}),
        4,
    )
    .await;
    assert_eq!(r["status"], "error", "{r}");
    let r = command(
        &probe,
        &format!("{base}/request/login"),
        json!({"login": "alice", "password": LOGIN_PASSWORD, "encryptPassword": false, "extra": LOGIN_PASSWORD}),
        5,
    )
    .await;
    assert_eq!(r["status"], "error", "{r}");
    probe
        .publish("trueconf/bridge/request/health_check", "{}")
        .await;
    let r = probe
        .wait_message("trueconf/bridge/response/health_check", WAIT, |_| true)
        .await;
    assert!(r.payload.contains("\"healthy\":true"), "{}", r.payload);

    // 2. A bridge whose PIN the Room refuses.
    let mut refused = Running::start(options(
        broker.port,
        "wrongpin",
        MQTT_PASSWORD,
        room_options(sim.http_port, WRONG_PIN),
    ));
    probe
        .wait_latest("wrongpin/bridge/info", WAIT, |p| p.contains("auth_refused"))
        .await;
    // 3. A bridge whose MQTT password the broker refuses.
    let mark = capture.mark();
    let mut locked_out = Running::start(options(
        broker.port,
        "wrongmqtt",
        WRONG_MQTT_PASSWORD,
        room_options(sim.http_port, ROOM_PIN),
    ));
    wait_until(WAIT, "the broker refused the wrong MQTT password", || {
        capture.count_since(mark, &["MQTT connection failed"]) >= 2
    })
    .await;
    assert_eq!(
        locked_out
            .bridge
            .link()
            .stats()
            .connects
            .load(std::sync::atomic::Ordering::Relaxed),
        0
    );
    locked_out.stop().await;
    refused.stop().await;
    main.stop().await;

    // 4. The Room client on its own: a refused PIN, and Debug of its options.
    let mut wrong = room_options(sim.http_port, WRONG_PIN);
    wrong.connect_timeout = Duration::from_secs(3);
    debug_and_errors.push(format!("{wrong:?}"));
    let error = within(WAIT, "a refused connect", RoomClient::connect(wrong))
        .await
        .err()
        .expect("the Room refuses the wrong PIN");
    assert!(error.to_string().contains("refused"), "{error}");
    debug_and_errors.push(format!("{error} {error:?}"));
    let right = within(
        WAIT,
        "a connect",
        RoomClient::connect(room_options(sim.http_port, ROOM_PIN)),
    )
    .await
    .expect("the right PIN is accepted");
    let token = right.http_token().expect("an HTTP token");
    debug_and_errors.push(format!("{:?} {token:?}", right.options()));
    let login_error = right
        .login("nobody", &Secret::new(LOGIN_PASSWORD), false)
        .await
        .expect_err("login is refused while logged in");
    debug_and_errors.push(format!("{login_error} {login_error:?}"));
    let secret_http_token = token.expose().to_owned();
    right.close().await;

    // 5. The binary's own logging setup at its most verbose (`RUST_LOG=trace`), end to end: a
    // one-shot `room call` authenticates with the PIN and mints a token.
    let cli = tokio::process::Command::new(env!("CARGO_BIN_EXE_trueconf2mqtt"))
        .args(["room", "--host", "127.0.0.1", "--port"])
        .arg(sim.http_port.to_string())
        .args(["call", "getTokenForHttpServer"])
        .env("RUST_LOG", "trace")
        .env("NO_COLOR", "1")
        .env("TRUECONF2MQTT_PIN", ROOM_PIN)
        .output();
    let cli = within(WAIT, "trueconf2mqtt room call", cli)
        .await
        .expect("run trueconf2mqtt room");
    let cli_output = format!(
        "{}{}",
        String::from_utf8_lossy(&cli.stdout),
        String::from_utf8_lossy(&cli.stderr)
    );
    assert!(cli.status.success(), "{cli_output}");
    assert!(
        cli_output.contains("\"***\"") && cli_output.contains("tungstenite::handshake"),
        "the CLI printed a redacted token and logged at TRACE: {cli_output}"
    );

    // Let the last records and messages land.
    tokio::time::sleep(Duration::from_millis(300)).await;

    tracing::trace!(target: "secrets_test", "trace-level control record");
    let log_text = capture.text();
    assert!(
        log_text.contains("rumqttc") && log_text.contains("DEBUG tungstenite"),
        "the capture sees the libraries' `log` records"
    );
    assert!(
        log_text.contains("trace-level control record"),
        "the capture sees TRACE records"
    );
    // Regression: tungstenite prints every frame at TRACE (`Sending frame: …`, `Received
    // message …`, hex dumps), the `auth` frame with the PIN and its reply with the tokens
    // included; the daemon never lets those through.
    assert_eq!(
        log_text.matches("TRACE tungstenite").count(),
        0,
        "wire-level TRACE records of tungstenite reached the log"
    );
    assert!(
        log_text.contains("refused authentication"),
        "the refused PIN was logged"
    );
    // MQTT traffic the bridges published (not the commands this test sent).
    let mqtt_text: String = probe
        .messages()
        .iter()
        .filter(|m| !m.topic.contains("/request/") && !m.topic.contains("/set"))
        .map(|m| format!("{} {}\n", m.topic, m.payload))
        .collect();
    assert!(
        mqtt_text.contains("auth_refused"),
        "bridge/info was captured"
    );
    let simulator_output = std::fs::read_to_string(&sim.output).unwrap_or_default();
    let debug_text = debug_and_errors.join("\n");

    let secrets: Vec<(&str, String)> = vec![
        ("Room PIN", ROOM_PIN.into()),
        ("wrong Room PIN", WRONG_PIN.into()),
        ("MQTT password", MQTT_PASSWORD.into()),
        ("wrong MQTT password", WRONG_MQTT_PASSWORD.into()),
        ("login password", LOGIN_PASSWORD.into()),
        ("bridge's HTTP token", http_token),
        ("client's HTTP token", secret_http_token),
    ];
    let found = leaks(
        &[
            ("logs", &log_text),
            ("MQTT", &mqtt_text),
            ("Debug output and errors", &debug_text),
            ("`RUST_LOG=trace trueconf2mqtt room` output", &cli_output),
        ],
        &secrets,
    );
    let simulator_leaks = leaks(&[("simulator process output", &simulator_output)], &secrets);
    println!(
        "secrets: log_records={} log_bytes={} mqtt_messages={} debug_strings={} leaks={} \
         simulator_output_leaks={} elapsed_s={:.1}",
        capture.total(),
        log_text.len(),
        probe.messages().len(),
        debug_and_errors.len(),
        found.len(),
        simulator_leaks.len(),
        started.elapsed().as_secs_f64()
    );
    assert!(found.is_empty(), "secrets leaked: {found:#?}");
}

#[test]
fn settings_debug_explain_and_config_errors_hide_secrets() {
    let dir = tempfile::tempdir().unwrap();
    let pin_file = dir.path().join("pin");
    std::fs::write(&pin_file, format!("{ROOM_PIN}\n")).unwrap();
    let base = format!(
        "[mqtt]\nusername = \"{MQTT_USER}\"\npassword = \"{MQTT_PASSWORD}\"\n\n[[rooms]]\nid = \"{ROOM}\"\nhost = \"127.0.0.1\"\n"
    );
    let mut shown = Vec::new();

    let inline = Settings::load_from(
        Some(&format!("{base}pin = \"{ROOM_PIN}\"\n")),
        Default::default(),
    )
    .expect("valid");
    shown.push(format!("{inline:?}"));
    shown.push(explain(&inline));
    let from_file = Settings::load_from(
        Some(&format!("{base}pin_file = \"{}\"\n", pin_file.display())),
        Default::default(),
    )
    .expect("valid");
    assert_eq!(
        from_file.rooms[0].pin.as_ref().map(Secret::expose),
        Some(ROOM_PIN)
    );
    shown.push(format!("{from_file:?}"));
    shown.push(explain(&from_file));
    shown.push(format!("{:?}", from_file.rooms[0].room_options()));

    // Wrong types, conflicts and syntax errors around secrets: messages name keys, not values.
    let numeric = "73915521";
    let broken = [
        format!("{base}pin = {numeric}\n"),
        format!(
            "{base}pin = \"{ROOM_PIN}\"\npin_file = \"{}\"\n",
            pin_file.display()
        ),
        format!("{base}pin = [\"{ROOM_PIN}\"]\n"),
        format!("{base}pin = \"{ROOM_PIN}\n"),
        format!("{base}pin = \"{ROOM_PIN}\"\npassword = \"{MQTT_PASSWORD}\"\n"),
        format!("{base}pin = \"{ROOM_PIN}\"\nport = \"x\"\n"),
    ];
    for text in &broken {
        let error =
            Settings::load_from(Some(text), Default::default()).expect_err("invalid configuration");
        shown.push(format!("{error}\n{error:?}"));
    }
    let env = std::collections::HashMap::from([
        (
            "TRUECONF2MQTT__ROOMS__BOARDROOM__PIN".to_owned(),
            ROOM_PIN.to_owned(),
        ),
        (
            "TRUECONF2MQTT__MQTT__PASSWORD_FILE".to_owned(),
            "/nonexistent/password".to_owned(),
        ),
    ]);
    let error = Settings::load_from(Some(&base), env).expect_err("unreadable password file");
    shown.push(format!("{error}\n{error:?}"));

    let text = shown.join("\n");
    let secrets: Vec<(&str, String)> = vec![
        ("Room PIN", ROOM_PIN.into()),
        ("numeric PIN", numeric.into()),
        ("MQTT password", MQTT_PASSWORD.into()),
    ];
    let found = leaks(&[("settings Debug/explain/errors", &text)], &secrets);
    assert!(found.is_empty(), "secrets leaked: {found:#?}\n{text}");
}
