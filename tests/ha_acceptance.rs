//! Acceptance test against a real Home Assistant: a `hass` process (2024.3.3, from
//! `scripts/ha-venv.sh`), a real mosquitto, the bridge and the simulated Room.
//!
//! Home Assistant starts from an almost empty configuration directory, is onboarded through its
//! REST API (first user → auth code → access token), gets the MQTT integration through the
//! config-flow endpoints, and from then on everything is checked through Home Assistant's own
//! API (`/api/states`, `/api/services`, the websocket registries): the device and its entities,
//! commands from Home Assistant reaching the Room, Room changes reaching Home Assistant, the Room
//! going away and coming back, and a restart of Home Assistant while the bridge keeps running.
//!
//! The interpreter is `$TRUECONF2MQTT_HA_PYTHON` or `target/ha-venv/bin/python`. Everything
//! listens on 127.0.0.1 only.

mod common;

use std::collections::{BTreeMap, HashMap};
use std::path::{Path, PathBuf};
use std::process::{Child, Command, Stdio};
use std::time::{Duration, Instant};

use futures_util::{SinkExt, StreamExt};
use serde_json::{Value, json};
use tokio::io::{AsyncReadExt, AsyncWriteExt};
use tokio::net::TcpStream;
use tokio_tungstenite::tungstenite::Message as WsMessage;
use tokio_util::sync::CancellationToken;
use trueconf2mqtt::bridge::{self, BridgeOptions};
use trueconf2mqtt::homeassistant::{DiscoveryContext, entity_topics};
use trueconf2mqtt::protocol::AppState;
use trueconf2mqtt::simulator::{SimConfig, SimRoom};

use common::{
    Broker, Probe, free_port, room_entry, test_bridge_options, test_link_options, test_room_options,
};

const ROOM: &str = "boardroom";
const ROOM_NAME: &str = "Boardroom";
/// Bound on every wait for Home Assistant to reflect something.
const WAIT: Duration = Duration::from_secs(20);
/// Bound on Home Assistant's start (it takes 5–15 s).
const HA_START: Duration = Duration::from_secs(90);
/// Bound on one HTTP exchange with Home Assistant.
const HTTP_TIMEOUT: Duration = Duration::from_secs(20);

fn manifest_dir() -> &'static Path {
    Path::new(env!("CARGO_MANIFEST_DIR"))
}

fn ha_python() -> PathBuf {
    let python = std::env::var_os("TRUECONF2MQTT_HA_PYTHON")
        .map(PathBuf::from)
        .unwrap_or_else(|| manifest_dir().join("target/ha-venv/bin/python"));
    assert!(
        python.exists(),
        "Home Assistant venv not found at {}: run scripts/ha-venv.sh first \
         (or set TRUECONF2MQTT_HA_PYTHON to a python with homeassistant==2024.3.3 and the \
         requirements of its default integrations)",
        python.display()
    );
    python
}

// ----- a tiny HTTP/1.1 client (one request per connection) ------------------------------------

struct Response {
    status: u16,
    body: String,
}

impl Response {
    fn json(&self) -> Value {
        serde_json::from_str(&self.body).unwrap_or_else(|e| panic!("not JSON ({e}): {}", self.body))
    }
}

fn dechunk(mut body: &[u8]) -> Vec<u8> {
    let mut out = Vec::new();
    loop {
        let Some(line_end) = body.windows(2).position(|w| w == b"\r\n") else {
            return out;
        };
        let size_text = String::from_utf8_lossy(&body[..line_end]);
        let size_text = size_text.split(';').next().unwrap_or("").trim();
        let Ok(size) = usize::from_str_radix(size_text, 16) else {
            return out;
        };
        body = &body[line_end + 2..];
        if size == 0 || body.len() < size {
            out.extend_from_slice(&body[..size.min(body.len())]);
            return out;
        }
        out.extend_from_slice(&body[..size]);
        body = body.get(size + 2..).unwrap_or_default();
    }
}

async fn http(
    port: u16,
    method: &str,
    path: &str,
    token: Option<&str>,
    body: Option<(&str, String)>,
) -> std::io::Result<Response> {
    let exchange = async {
        let mut stream = TcpStream::connect(("127.0.0.1", port)).await?;
        let mut request = format!(
            "{method} {path} HTTP/1.1\r\nHost: 127.0.0.1:{port}\r\nConnection: close\r\n\
             Accept: application/json\r\n"
        );
        if let Some(token) = token {
            request.push_str(&format!("Authorization: Bearer {token}\r\n"));
        }
        let body = body.map(|(content_type, text)| {
            request.push_str(&format!(
                "Content-Type: {content_type}\r\nContent-Length: {}\r\n",
                text.len()
            ));
            text
        });
        request.push_str("\r\n");
        if let Some(body) = body {
            request.push_str(&body);
        }
        stream.write_all(request.as_bytes()).await?;
        let mut raw = Vec::new();
        stream.read_to_end(&mut raw).await?;
        let split = raw
            .windows(4)
            .position(|w| w == b"\r\n\r\n")
            .ok_or_else(|| std::io::Error::other("no HTTP header end"))?;
        let head = String::from_utf8_lossy(&raw[..split]).into_owned();
        let status = head
            .split_whitespace()
            .nth(1)
            .and_then(|s| s.parse().ok())
            .ok_or_else(|| std::io::Error::other(format!("bad status line: {head}")))?;
        let mut body = raw[split + 4..].to_vec();
        if head
            .to_ascii_lowercase()
            .contains("transfer-encoding: chunked")
        {
            body = dechunk(&body);
        }
        Ok(Response {
            status,
            body: String::from_utf8_lossy(&body).into_owned(),
        })
    };
    tokio::time::timeout(HTTP_TIMEOUT, exchange)
        .await
        .unwrap_or_else(|_| Err(std::io::Error::other("HTTP exchange timed out")))
}

fn form_encode(value: &str) -> String {
    value
        .bytes()
        .map(|b| {
            if b.is_ascii_alphanumeric() || b"-_.~".contains(&b) {
                (b as char).to_string()
            } else {
                format!("%{b:02X}")
            }
        })
        .collect()
}

// ----- the Home Assistant process -------------------------------------------------------------

/// A `hass` process in a temporary config directory; killed when dropped.
struct HomeAssistant {
    python: PathBuf,
    /// The config directory; kept (not deleted) when the test fails.
    config: Option<tempfile::TempDir>,
    port: u16,
    child: Option<Child>,
    runs: u32,
    token: String,
    refresh_token: String,
}

impl HomeAssistant {
    fn new(python: PathBuf) -> HomeAssistant {
        let config = tempfile::Builder::new()
            .prefix("ha-acceptance-")
            .tempdir()
            .expect("temp dir");
        let port = free_port();
        // Fixed core settings: nothing to detect (no network), metric, UTC.
        let yaml = format!(
            "homeassistant:\n  name: Acceptance\n  latitude: 52.52\n  longitude: 13.40\n  \
             elevation: 34\n  unit_system: metric\n  time_zone: UTC\n  currency: EUR\n  \
             country: DE\nhttp:\n  server_host: 127.0.0.1\n  server_port: {port}\n\
             logger:\n  default: info\n"
        );
        std::fs::write(config.path().join("configuration.yaml"), yaml)
            .expect("write configuration.yaml");
        HomeAssistant {
            python,
            config: Some(config),
            port,
            child: None,
            runs: 0,
            token: String::new(),
            refresh_token: String::new(),
        }
    }

    fn dir(&self) -> &Path {
        self.config.as_ref().expect("config dir").path()
    }

    fn client_id(&self) -> String {
        format!("http://127.0.0.1:{}/", self.port)
    }

    fn log_path(&self) -> PathBuf {
        self.dir().join(format!("run-{}.log", self.runs))
    }

    /// The last `lines` lines of the current run's output that are not INFO or DEBUG records
    /// (warnings, errors, tracebacks).
    fn log_tail(&self, lines: usize) -> String {
        let text = std::fs::read_to_string(self.log_path()).unwrap_or_default();
        let notable: Vec<&str> = text
            .lines()
            .filter(|l| !l.contains(" INFO (") && !l.contains(" DEBUG ("))
            .collect();
        notable[notable.len().saturating_sub(lines)..].join("\n")
    }

    fn spawn(&mut self) {
        self.runs += 1;
        let log = std::fs::File::create(self.log_path()).expect("HA log file");
        let child = Command::new(&self.python)
            .args(["-m", "homeassistant", "--config"])
            .arg(self.dir())
            .arg("--skip-pip")
            .stdin(Stdio::null())
            .stdout(log.try_clone().expect("log handle"))
            .stderr(log)
            .spawn()
            .unwrap_or_else(|e| panic!("could not start {}: {e}", self.python.display()));
        self.child = Some(child);
    }

    fn assert_alive(&mut self, what: &str) {
        if let Some(child) = self.child.as_mut()
            && let Ok(Some(status)) = child.try_wait()
        {
            panic!(
                "Home Assistant exited ({status}) while {what}; its output ends with:\n{}",
                self.log_tail(40)
            );
        }
    }

    /// Polls until `probe` returns `Some`, checking that the process lives.
    async fn poll<T, F, Fut>(&mut self, timeout: Duration, what: &str, mut probe: F) -> T
    where
        F: FnMut(u16, String) -> Fut,
        Fut: std::future::Future<Output = Option<T>>,
    {
        let deadline = Instant::now() + timeout;
        loop {
            self.assert_alive(what);
            if let Some(value) = probe(self.port, self.token.clone()).await {
                return value;
            }
            assert!(
                Instant::now() < deadline,
                "timed out after {timeout:?} {what}; Home Assistant's output ends with:\n{}",
                self.log_tail(40)
            );
            tokio::time::sleep(Duration::from_millis(200)).await;
        }
    }

    /// First start: waits for the HTTP API, creates the owner through onboarding and gets a
    /// token.
    async fn start_and_onboard(&mut self) {
        self.spawn();
        let steps = self
            .poll(
                HA_START,
                "waiting for the onboarding API",
                |port, _| async move {
                    let r = http(port, "GET", "/api/onboarding", None, None)
                        .await
                        .ok()?;
                    (r.status == 200).then(|| r.json())
                },
            )
            .await;
        assert_eq!(steps[0]["step"], "user", "{steps}");
        assert_eq!(steps[0]["done"], false, "{steps}");
        let user = json!({
            "client_id": self.client_id(),
            "name": "Acceptance",
            "username": "acceptance",
            "password": "acceptance-password",
            "language": "en",
        });
        let r = http(
            self.port,
            "POST",
            "/api/onboarding/users",
            None,
            Some(("application/json", user.to_string())),
        )
        .await
        .expect("onboarding user");
        assert_eq!(r.status, 200, "onboarding user: {}", r.body);
        let code = r.json()["auth_code"]
            .as_str()
            .expect("auth_code")
            .to_owned();
        let form = format!(
            "grant_type=authorization_code&code={}&client_id={}",
            form_encode(&code),
            form_encode(&self.client_id())
        );
        let tokens = self.token_request(form).await;
        self.refresh_token = tokens["refresh_token"]
            .as_str()
            .expect("refresh_token")
            .to_owned();
        self.wait_running().await;
    }

    async fn token_request(&mut self, form: String) -> Value {
        let r = http(
            self.port,
            "POST",
            "/auth/token",
            None,
            Some(("application/x-www-form-urlencoded", form)),
        )
        .await
        .expect("token request");
        assert_eq!(r.status, 200, "/auth/token: {}", r.body);
        let tokens = r.json();
        self.token = tokens["access_token"]
            .as_str()
            .expect("access_token")
            .to_owned();
        tokens
    }

    /// Waits until `/api/config` reports the core `RUNNING` (every integration set up).
    async fn wait_running(&mut self) {
        self.poll(
            HA_START,
            "waiting for Home Assistant to run",
            |port, token| async move {
                let r = http(port, "GET", "/api/config", Some(&token), None)
                    .await
                    .ok()?;
                (r.status == 200 && r.json()["state"] == "RUNNING").then_some(())
            },
        )
        .await;
    }

    /// Stops Home Assistant like a service manager would (SIGTERM, bounded), so it saves its
    /// storage; SIGKILL if it does not stop in time.
    async fn stop(&mut self) {
        let Some(mut child) = self.child.take() else {
            return;
        };
        let _ = Command::new("kill")
            .args(["-TERM", &child.id().to_string()])
            .status();
        let deadline = Instant::now() + Duration::from_secs(30);
        loop {
            if let Ok(Some(_)) = child.try_wait() {
                return;
            }
            if Instant::now() >= deadline {
                eprintln!("Home Assistant did not stop within 30 s of SIGTERM: killing it");
                let _ = child.kill();
                let _ = child.wait();
                return;
            }
            tokio::time::sleep(Duration::from_millis(100)).await;
        }
    }

    /// Starts again with the same config directory, refreshes the token, waits until running.
    async fn restart(&mut self) {
        self.stop().await;
        self.spawn();
        let form = format!(
            "grant_type=refresh_token&refresh_token={}&client_id={}",
            form_encode(&self.refresh_token),
            form_encode(&self.client_id())
        );
        let access = self
            .poll(
                HA_START,
                "waiting for /auth/token after the restart",
                |port, _| {
                    let form = form.clone();
                    async move {
                        let r = http(
                            port,
                            "POST",
                            "/auth/token",
                            None,
                            Some(("application/x-www-form-urlencoded", form)),
                        )
                        .await
                        .ok()?;
                        (r.status == 200)
                            .then(|| r.json()["access_token"].as_str().map(str::to_owned))?
                    }
                },
            )
            .await;
        self.token = access;
        self.wait_running().await;
    }

    async fn get(&mut self, path: &str) -> Response {
        self.assert_alive(path);
        http(self.port, "GET", path, Some(&self.token), None)
            .await
            .unwrap_or_else(|e| panic!("GET {path}: {e}"))
    }

    async fn post(&mut self, path: &str, body: Value) -> Response {
        self.assert_alive(path);
        http(
            self.port,
            "POST",
            path,
            Some(&self.token),
            Some(("application/json", body.to_string())),
        )
        .await
        .unwrap_or_else(|e| panic!("POST {path}: {e}"))
    }

    /// Adds the MQTT integration through its config flow (HA 2024.3.3 asks for broker and port;
    /// username and password are optional), with the default discovery prefix and birth message.
    async fn add_mqtt(&mut self, broker_port: u16) {
        let r = self
            .post(
                "/api/config/config_entries/flow",
                json!({"handler": "mqtt"}),
            )
            .await;
        assert_eq!(r.status, 200, "start the MQTT config flow: {}", r.body);
        let form = r.json();
        assert_eq!(form["type"], "form", "{form}");
        assert_eq!(form["step_id"], "broker", "{form}");
        let flow_id = form["flow_id"].as_str().expect("flow_id").to_owned();
        let r = self
            .post(
                &format!("/api/config/config_entries/flow/{flow_id}"),
                json!({"broker": "127.0.0.1", "port": broker_port}),
            )
            .await;
        assert_eq!(r.status, 200, "MQTT broker step: {}", r.body);
        let done = r.json();
        assert_eq!(done["type"], "create_entry", "{done}");
        assert_eq!(done["result"]["state"], "loaded", "{done}");
    }

    async fn websocket(&mut self) -> HaSocket {
        self.assert_alive("opening the websocket");
        HaSocket::connect(self.port, &self.token).await
    }

    /// `/api/states/<entity_id>`, or `None` while the entity has no state.
    async fn state(&mut self, entity_id: &str) -> Option<Value> {
        let r = self.get(&format!("/api/states/{entity_id}")).await;
        match r.status {
            200 => Some(r.json()),
            404 => None,
            status => panic!("GET /api/states/{entity_id}: {status} {}", r.body),
        }
    }

    /// Waits until the state object of `entity_id` satisfies `check`; returns it.
    async fn wait_state(
        &mut self,
        entity_id: &str,
        what: &str,
        check: impl Fn(&Value) -> bool,
    ) -> Value {
        let deadline = Instant::now() + WAIT;
        loop {
            let state = self.state(entity_id).await;
            if let Some(state) = state.as_ref().filter(|s| check(s)) {
                return state.clone();
            }
            assert!(
                Instant::now() < deadline,
                "timed out after {WAIT:?} waiting for {entity_id} {what}; last state: {}\n\
                 Home Assistant's output ends with:\n{}",
                state.map_or("none".into(), |s| s.to_string()),
                self.log_tail(25)
            );
            tokio::time::sleep(Duration::from_millis(100)).await;
        }
    }

    /// Waits until `entity_id`'s state is `expected`.
    async fn wait_value(&mut self, entity_id: &str, expected: &str) -> Value {
        self.wait_state(entity_id, &format!("to be '{expected}'"), |s| {
            s["state"] == expected
        })
        .await
    }

    /// Calls a service on one entity.
    async fn service(&mut self, domain: &str, service: &str, data: Value) {
        let path = format!("/api/services/{domain}/{service}");
        let r = self.post(&path, data).await;
        assert_eq!(r.status, 200, "POST {path}: {}", r.body);
    }

    /// Every warning and error Home Assistant logged so far (all runs).
    fn logged_problems(&self) -> Vec<String> {
        let mut problems = Vec::new();
        for run in 1..=self.runs {
            let path = self.dir().join(format!("run-{run}.log"));
            let text = std::fs::read_to_string(path).unwrap_or_default();
            problems.extend(
                text.lines()
                    .filter(|l| l.contains(" WARNING ") || l.contains(" ERROR "))
                    .map(str::to_owned),
            );
        }
        problems
    }
}

impl Drop for HomeAssistant {
    fn drop(&mut self) {
        if let Some(mut child) = self.child.take() {
            let _ = child.kill();
            let _ = child.wait();
        }
        if std::thread::panicking() && self.runs > 0 {
            let tail = self.log_tail(40);
            if let Some(config) = self.config.take() {
                eprintln!(
                    "--- Home Assistant run {}: warnings, errors (last lines) ---\n{tail}\n\
                     --- its config directory and full logs (run-<n>.log) are kept in {} ---",
                    self.runs,
                    config.keep().display()
                );
            }
        }
    }
}

/// Home Assistant's websocket API, authenticated.
struct HaSocket {
    socket: tokio_tungstenite::WebSocketStream<
        tokio_tungstenite::MaybeTlsStream<tokio::net::TcpStream>,
    >,
    next_id: u64,
}

impl HaSocket {
    async fn connect(port: u16, token: &str) -> HaSocket {
        let url = format!("ws://127.0.0.1:{port}/api/websocket");
        let (socket, _) = tokio::time::timeout(HTTP_TIMEOUT, tokio_tungstenite::connect_async(url))
            .await
            .expect("websocket connect in time")
            .expect("websocket connect");
        let mut ws = HaSocket { socket, next_id: 1 };
        let hello = ws.receive().await;
        assert_eq!(hello["type"], "auth_required", "{hello}");
        ws.send(json!({"type": "auth", "access_token": token}))
            .await;
        let auth = ws.receive().await;
        assert_eq!(auth["type"], "auth_ok", "{auth}");
        ws
    }

    async fn send(&mut self, message: Value) {
        self.socket
            .send(WsMessage::text(message.to_string()))
            .await
            .expect("websocket send");
    }

    async fn receive(&mut self) -> Value {
        loop {
            let message = tokio::time::timeout(HTTP_TIMEOUT, self.socket.next())
                .await
                .expect("websocket message in time")
                .expect("websocket open")
                .expect("websocket message");
            if let WsMessage::Text(text) = message {
                return serde_json::from_str(text.as_str()).expect("websocket JSON");
            }
        }
    }

    /// Sends a command and returns its `result`.
    async fn call(&mut self, kind: &str) -> Value {
        let id = self.next_id;
        self.next_id += 1;
        self.send(json!({"id": id, "type": kind})).await;
        loop {
            let message = self.receive().await;
            if message["id"] == id && message["type"] == "result" {
                assert_eq!(message["success"], true, "{kind}: {message}");
                return message["result"].clone();
            }
        }
    }
}

// ----- the bridge -----------------------------------------------------------------------------

fn bridge_options(broker_port: u16, room: &SimRoom) -> BridgeOptions {
    let room_options = test_room_options(room.http_port()).with_pin("4321");
    test_bridge_options(
        test_link_options(broker_port, "trueconf2mqtt-ha-acceptance"),
        vec![room_entry(ROOM, ROOM_NAME, room_options)],
    )
}

/// `(component, object)` of every entity the bridge announces for the Room.
fn expected_entities() -> Vec<(String, String)> {
    let ctx = DiscoveryContext {
        base_topic: "trueconf",
        prefix: "homeassistant",
        room_id: ROOM,
        room_name: ROOM_NAME,
        host: "127.0.0.1",
        bridge_version: env!("CARGO_PKG_VERSION"),
    };
    entity_topics(&ctx)
        .iter()
        .map(|topic| {
            let levels: Vec<&str> = topic.split('/').collect();
            (levels[1].to_owned(), levels[3].to_owned())
        })
        .collect()
}

/// Entity ids by `(component, object)`, read from the entity registry; waits until every
/// expected entity is registered. Also returns the Room's device (from the device registry).
async fn registered(ha: &mut HomeAssistant) -> (BTreeMap<(String, String), String>, Value) {
    let expected = expected_entities();
    let deadline = Instant::now() + WAIT;
    loop {
        let mut ws = ha.websocket().await;
        let entries = ws.call("config/entity_registry/list").await;
        let devices = ws.call("config/device_registry/list").await;
        let by_unique_id: HashMap<&str, &Value> = entries
            .as_array()
            .expect("registry list")
            .iter()
            .filter(|e| e["platform"] == "mqtt")
            .filter_map(|e| Some((e["unique_id"].as_str()?, e)))
            .collect();
        let mut found = BTreeMap::new();
        let mut missing = Vec::new();
        let mut device_ids = Vec::new();
        for (component, object) in &expected {
            let unique_id = format!("trueconf2mqtt_{ROOM}_{object}");
            match by_unique_id.get(unique_id.as_str()) {
                Some(entry) => {
                    let entity_id = entry["entity_id"].as_str().unwrap().to_owned();
                    assert!(
                        entity_id.starts_with(&format!("{component}.")),
                        "{unique_id} registered as {entity_id}"
                    );
                    device_ids.push(entry["device_id"].clone());
                    found.insert((component.clone(), object.clone()), entity_id);
                }
                None => missing.push(format!("{component}.{object}")),
            }
        }
        let device = devices.as_array().expect("device list").iter().find(|d| {
            d["identifiers"]
                .as_array()
                .is_some_and(|ids| ids.contains(&json!(["mqtt", format!("trueconf2mqtt_{ROOM}")])))
        });
        if missing.is_empty()
            && let Some(device) = device
        {
            for id in device_ids {
                assert_eq!(
                    id, device["id"],
                    "every entity belongs to the Room's device"
                );
            }
            return (found, device.clone());
        }
        assert!(
            Instant::now() < deadline,
            "timed out after {WAIT:?} waiting for Home Assistant to register the Room: missing \
             entities {missing:?}, device found: {}\nHome Assistant's output ends with:\n{}",
            device.is_some(),
            ha.log_tail(25)
        );
        tokio::time::sleep(Duration::from_millis(250)).await;
    }
}

/// Looks entities up by component and object name.
struct Entities(BTreeMap<(String, String), String>);

impl Entities {
    fn id(&self, component: &str, object: &str) -> String {
        self.0
            .get(&(component.to_owned(), object.to_owned()))
            .unwrap_or_else(|| panic!("no entity {component}.{object}"))
            .clone()
    }

    /// Every entity except the Room-connectivity sensor, which has its own availability.
    fn room_bound(&self) -> impl Iterator<Item = &String> {
        self.0
            .iter()
            .filter(|((_, object), _)| object != "room_connected")
            .map(|(_, id)| id)
    }
}

/// Waits until every entity of `entities` is (or is not) `unavailable`.
async fn wait_availability(ha: &mut HomeAssistant, entities: &Entities, available: bool) {
    for entity_id in entities.room_bound().cloned().collect::<Vec<_>>() {
        let what = if available {
            "to become available"
        } else {
            "to become unavailable"
        };
        ha.wait_state(&entity_id, what, |s| {
            (s["state"] == "unavailable") != available
        })
        .await;
    }
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn a_real_home_assistant_sees_and_drives_the_room() {
    let python = ha_python();
    let started = Instant::now();

    let broker = Broker::start();
    let probe = Probe::connect(
        broker.port,
        &[
            "homeassistant/status",
            "homeassistant/+/trueconf2mqtt_boardroom/+/config",
            "trueconf/boardroom/availability",
        ],
    )
    .await;
    let room = SimRoom::start(SimConfig {
        pin: Some("4321".into()),
        answer_delay: Duration::from_millis(20),
        ..SimConfig::default()
    })
    .await
    .expect("simulator");
    let shutdown = CancellationToken::new();
    let (_bridge, _tasks) = bridge::start(bridge_options(broker.port, &room), shutdown.clone());
    probe
        .wait_value("trueconf/boardroom/availability", "online", WAIT)
        .await;

    // ----- Home Assistant, onboarded, with the MQTT integration -------------------------------
    let mut ha = HomeAssistant::new(python);
    ha.start_and_onboard().await;
    let ha_up = started.elapsed();
    ha.add_mqtt(broker.port).await;

    // ----- 1. the device and all its entities, with the Room's states -------------------------
    let (found, device) = registered(&mut ha).await;
    let entities = Entities(found);
    assert_eq!(entities.0.len(), expected_entities().len());
    assert_eq!(device["name"], ROOM_NAME, "{device}");
    assert_eq!(device["manufacturer"], "TrueConf", "{device}");
    assert_eq!(device["model"], "TrueConf Room", "{device}");
    wait_availability(&mut ha, &entities, true).await;

    let snapshot = room.snapshot();
    for (component, object, expected) in [
        ("sensor", "app_state", "normal"),
        ("sensor", "user", "room@sim.trueconf.local"),
        ("sensor", "participant_count", "0"),
        ("switch", "mic_muted", "off"),
        ("switch", "camera_muted", "off"),
        ("switch", "speaker_muted", "off"),
        ("binary_sensor", "in_call", "off"),
        ("binary_sensor", "ringing", "off"),
        ("binary_sensor", "room_connected", "on"),
        ("binary_sensor", "server_connected", "on"),
        ("binary_sensor", "logged_in", "on"),
        ("event", "incoming_call", "unknown"),
        // Empty text (no call): unknown, the same for every text sensor.
        ("sensor", "caller", "unknown"),
        ("sensor", "conference_title", "unknown"),
    ] {
        ha.wait_value(&entities.id(component, object), expected)
            .await;
    }
    let camera = ha
        .wait_value(
            &entities.id("select", "camera"),
            snapshot.camera.as_deref().expect("a selected camera"),
        )
        .await;
    let in_call = ha
        .state(&entities.id("binary_sensor", "in_call"))
        .await
        .unwrap();
    assert_eq!(
        in_call["attributes"]["device_class"], "occupancy",
        "{in_call}"
    );
    assert_eq!(
        in_call["attributes"]["friendly_name"], "Boardroom In call",
        "{in_call}"
    );

    // ----- 2. Home Assistant commands reach the Room ------------------------------------------
    let mic = entities.id("switch", "mic_muted");
    ha.service("switch", "turn_on", json!({"entity_id": mic}))
        .await;
    room.wait_for(|s| s.mic_muted, WAIT)
        .await
        .expect("the Room's microphone muted by Home Assistant");
    ha.wait_value(&mic, "on").await;
    ha.service("switch", "turn_off", json!({"entity_id": mic}))
        .await;
    room.wait_for(|s| !s.mic_muted, WAIT)
        .await
        .expect("the Room's microphone unmuted by Home Assistant");
    ha.wait_value(&mic, "off").await;

    let other_camera = camera["attributes"]["options"]
        .as_array()
        .expect("select options")
        .iter()
        .filter_map(Value::as_str)
        .find(|o| Some(*o) != snapshot.camera.as_deref())
        .expect("a second camera")
        .to_owned();
    let camera_select = entities.id("select", "camera");
    ha.service(
        "select",
        "select_option",
        json!({"entity_id": camera_select, "option": other_camera}),
    )
    .await;
    room.wait_for(|s| s.camera.as_deref() == Some(&other_camera), WAIT)
        .await
        .expect("the Room's camera switched by Home Assistant");
    ha.wait_value(&camera_select, &other_camera).await;

    // ----- 3. an incoming call: ringing, and the incoming_call event --------------------------
    room.incoming_call("bob@sim.trueconf.local", "Bob").unwrap();
    ha.wait_value(&entities.id("binary_sensor", "ringing"), "on")
        .await;
    ha.wait_value(&entities.id("sensor", "caller"), "Bob").await;
    ha.wait_value(&entities.id("sensor", "app_state"), "wait")
        .await;
    let event = ha
        .wait_state(&entities.id("event", "incoming_call"), "to fire", |s| {
            s["attributes"]["event_type"] == "incoming_call"
        })
        .await;
    let fired = event["state"].as_str().unwrap();
    assert!(
        fired.len() >= 19 && fired.as_bytes()[10] == b'T' && fired[..4].parse::<u32>().is_ok(),
        "the event entity's state is the time it fired: {event}"
    );
    assert_eq!(
        event["attributes"]["peer_id"], "bob@sim.trueconf.local",
        "{event}"
    );
    assert_eq!(event["attributes"]["peer_dn"], "Bob", "{event}");
    assert_eq!(
        event["attributes"]["event_types"],
        json!(["incoming_call"]),
        "{event}"
    );

    // ----- 4. answering it from Home Assistant: a call makes the Room occupied ----------------
    ha.service(
        "button",
        "press",
        json!({"entity_id": entities.id("button", "accept")}),
    )
    .await;
    room.wait_for(|s| s.app_state == AppState::Conference, WAIT)
        .await
        .expect("the Room answered from Home Assistant");
    ha.wait_value(&entities.id("binary_sensor", "in_call"), "on")
        .await;
    ha.wait_value(&entities.id("binary_sensor", "ringing"), "off")
        .await;
    ha.wait_value(&entities.id("sensor", "app_state"), "conference")
        .await;

    // ----- 5. the Room goes away and comes back -----------------------------------------------
    room.stop().await;
    wait_availability(&mut ha, &entities, false).await;
    ha.wait_value(&entities.id("binary_sensor", "room_connected"), "off")
        .await;
    room.restart().await.expect("restart the Room");
    wait_availability(&mut ha, &entities, true).await;
    ha.wait_value(&entities.id("binary_sensor", "room_connected"), "on")
        .await;
    // A restarted Room starts idle: Home Assistant shows its fresh state.
    ha.wait_value(&entities.id("binary_sensor", "in_call"), "off")
        .await;
    ha.wait_value(&entities.id("sensor", "app_state"), "normal")
        .await;

    // ----- 6. Home Assistant restarts; the bridge keeps running -------------------------------
    let before_restart = probe.messages().len();
    let restart_started = Instant::now();
    ha.stop().await;
    // Home Assistant never disconnects cleanly: the broker publishes its will.
    probe
        .wait_latest("homeassistant/status", WAIT, |p| p == "offline")
        .await;
    // Something happens while Home Assistant is down.
    room.incoming_call("carol@sim.trueconf.local", "Carol")
        .unwrap();
    room.wait_for(|s| s.caller.is_some(), WAIT).await.unwrap();
    ha.restart().await;
    let restart_took = restart_started.elapsed();
    probe
        .wait_latest("homeassistant/status", WAIT, |p| p == "online")
        .await;
    let (found_again, device_again) = registered(&mut ha).await;
    assert_eq!(found_again, entities.0, "entity ids survive the restart");
    assert_eq!(
        device_again["id"], device["id"],
        "the device survives the restart"
    );
    wait_availability(&mut ha, &entities, true).await;
    ha.wait_value(&entities.id("binary_sensor", "ringing"), "on")
        .await;
    ha.wait_value(&entities.id("sensor", "caller"), "Carol")
        .await;
    ha.wait_value(&entities.id("binary_sensor", "room_connected"), "on")
        .await;
    // The bridge answered the birth message by publishing discovery again.
    let configs_after_birth = || {
        let messages = probe.messages();
        let birth = messages
            .iter()
            .enumerate()
            .skip(before_restart)
            .find(|(_, m)| m.topic == "homeassistant/status" && m.payload == "online")
            .map(|(i, _)| i);
        birth.map_or(0, |birth| {
            messages[birth..]
                .iter()
                .filter(|m| m.topic.ends_with("/config") && !m.payload.is_empty())
                .count()
        })
    };
    common::wait_until(
        WAIT,
        "discovery republished after the birth message",
        || configs_after_birth() >= expected_entities().len(),
    )
    .await;
    // And Home Assistant still drives the Room.
    ha.service(
        "button",
        "press",
        json!({"entity_id": entities.id("button", "reject")}),
    )
    .await;
    room.wait_for(
        |s| s.caller.is_none() && s.app_state == AppState::Normal,
        WAIT,
    )
    .await
    .expect("the call rejected from Home Assistant");
    ha.wait_value(&entities.id("binary_sensor", "ringing"), "off")
        .await;
    ha.service("switch", "turn_on", json!({"entity_id": mic}))
        .await;
    room.wait_for(|s| s.mic_muted, WAIT)
        .await
        .expect("the Room's microphone muted after the restart");
    ha.wait_value(&mic, "on").await;

    // Home Assistant had nothing to complain about regarding MQTT or our entities.
    let (ours, others): (Vec<String>, Vec<String>) = ha
        .logged_problems()
        .into_iter()
        .partition(|l| l.contains("mqtt") || l.contains("trueconf") || l.contains(ROOM));
    assert!(
        ours.is_empty(),
        "Home Assistant logged MQTT warnings or errors:\n{}",
        ours.join("\n")
    );
    if !others.is_empty() {
        eprintln!(
            "ha_acceptance: other Home Assistant warnings:\n{}",
            others.join("\n")
        );
    }

    shutdown.cancel();
    ha.stop().await;
    eprintln!(
        "ha_acceptance: Home Assistant up after {:.1?} (first start), restarted in {:.1?}, \
         whole test {:.1?}",
        ha_up,
        restart_took,
        started.elapsed()
    );
}
