//! A real Home Assistant process for the tests: started from an almost empty configuration
//! directory, onboarded through its REST API (first user → auth code → access token), given the
//! MQTT integration through the config-flow endpoints, and then read through its own API
//! (`/api/states`, `/api/services`, the websocket registries).
//!
//! Two installations, both made by the project's scripts (see `scripts/test`):
//! - [`HaInstall::oldest`]: Home Assistant 2024.3.3, the oldest supported version, in a Python
//!   venv on the host (`scripts/ha-venv.sh`, `target/ha-venv`, or `$TRUECONF2MQTT_HA_PYTHON`);
//! - [`HaInstall::current`]: Home Assistant 2026.11.0 in a Debian testing root
//!   (`scripts/ha-current.sh`), run in a mount and network namespace of its own: its HTTP port
//!   and the test's broker port are the only ones forwarded between it and the host's loopback.
//!
//! Included by the tests that use it with `#[path = "common/ha.rs"] mod ha;` (next to
//! `mod common;`), so the other test binaries do not compile it. Each test uses a part of it.
#![allow(dead_code)]

use std::collections::HashMap;
use std::io::Write;
use std::path::{Path, PathBuf};
use std::process::{Child, Command, Stdio};
use std::time::{Duration, Instant};

use futures_util::{SinkExt, StreamExt};
use serde_json::{Map, Value, json};
use tokio::net::TcpStream;
use tokio_tungstenite::tungstenite::Message as WsMessage;

use crate::common::free_port;

/// Bound on every wait for Home Assistant to reflect something.
pub const WAIT: Duration = Duration::from_secs(20);
/// Bound on Home Assistant's start (5–15 s on these machines; 2026.11 loads more integrations).
pub const HA_START: Duration = Duration::from_secs(120);
/// Bound on one HTTP exchange with Home Assistant.
pub const HTTP_TIMEOUT: Duration = Duration::from_secs(20);
/// Bound on a stop by SIGTERM before SIGKILL (Home Assistant saves its storage meanwhile).
pub const STOP_TIMEOUT: Duration = Duration::from_secs(30);

fn manifest_dir() -> &'static Path {
    Path::new(env!("CARGO_MANIFEST_DIR"))
}

/// How a Home Assistant is started.
#[derive(Clone, Debug)]
pub enum HaInstall {
    /// `python -m homeassistant` of a venv on the host.
    Venv {
        /// The venv's python.
        python: PathBuf,
    },
    /// `scripts/ha-current.sh hass`: the pinned current version in its Debian root.
    Root {
        /// The script.
        script: PathBuf,
        /// The version it installs.
        version: String,
    },
}

impl HaInstall {
    /// Home Assistant 2024.3.3 from the venv `scripts/ha-venv.sh` makes; panics with what to run
    /// when it is missing.
    pub fn oldest() -> HaInstall {
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
        HaInstall::Venv { python }
    }

    /// The current Home Assistant from `scripts/ha-current.sh`. `None`, after a loud message on
    /// stderr, only where that script found the machine unable to make it (no debootstrap, Debian
    /// mirror or package index); panics with what to run when it was simply not set up.
    pub fn current(test: &str) -> Option<HaInstall> {
        let script = manifest_dir().join("scripts/ha-current.sh");
        let run = |arg: &str| {
            let out = Command::new(&script)
                .arg(arg)
                .output()
                .unwrap_or_else(|e| panic!("run {} {arg}: {e}", script.display()));
            assert!(
                out.status.success(),
                "{} {arg} failed: {}",
                script.display(),
                String::from_utf8_lossy(&out.stderr)
            );
            String::from_utf8_lossy(&out.stdout).trim().to_owned()
        };
        let version = run("version");
        let status = run("status");
        let (word, detail) = status.split_once(' ').unwrap_or((&status, ""));
        match word {
            "ready" => Some(HaInstall::Root { script, version }),
            "unavailable" => {
                let bar = "!".repeat(78);
                // Straight to stderr, not through eprintln!, which the test harness captures
                // (and shows only for failed tests): a skip is never silent.
                let _ = writeln!(
                    std::io::stderr(),
                    "\n{bar}\n!! SKIPPED {test}: Home Assistant {version} cannot be installed on \
                     this machine:\n!! {detail}\n!! (scripts/ha-current.sh setup; the test runs \
                     wherever debootstrap and the Debian mirror are available)\n{bar}\n"
                );
                None
            }
            _ => panic!(
                "Home Assistant {version} is not installed ({detail}): run \
                 `scripts/ha-current.sh setup` first (scripts/test does)"
            ),
        }
    }

    /// The version this installation runs, as `/api/config` reports it.
    pub fn expected_version(&self) -> &str {
        match self {
            HaInstall::Venv { .. } => "2024.3.3",
            HaInstall::Root { version, .. } => version,
        }
    }
}

// ----- HTTP to Home Assistant's REST API (hyper's HTTP/1.1 client) ------------------------------

/// A response: status and body.
pub struct Response {
    /// HTTP status.
    pub status: u16,
    /// The body.
    pub body: String,
}

impl Response {
    /// The body as JSON; panics with the body otherwise.
    pub fn json(&self) -> Value {
        serde_json::from_str(&self.body).unwrap_or_else(|e| panic!("not JSON ({e}): {}", self.body))
    }
}

/// One HTTP exchange with 127.0.0.1:`port` on a fresh connection, bounded by [`HTTP_TIMEOUT`].
pub async fn http(
    port: u16,
    method: &str,
    path: &str,
    token: Option<&str>,
    body: Option<(&str, String)>,
) -> std::io::Result<Response> {
    use http_body_util::{BodyExt, Full};
    use hyper::body::Bytes;
    let error = |e: &dyn std::fmt::Display| std::io::Error::other(e.to_string());
    let exchange = async {
        let stream = TcpStream::connect(("127.0.0.1", port)).await?;
        let (mut sender, connection) =
            hyper::client::conn::http1::handshake(hyper_util::rt::TokioIo::new(stream))
                .await
                .map_err(|e| error(&e))?;
        let driver = tokio::spawn(connection);
        let mut request = hyper::Request::builder()
            .method(method)
            .uri(path)
            .header(hyper::header::HOST, format!("127.0.0.1:{port}"))
            .header(hyper::header::ACCEPT, "application/json");
        if let Some(token) = token {
            request = request.header(hyper::header::AUTHORIZATION, format!("Bearer {token}"));
        }
        let text = match body {
            Some((content_type, text)) => {
                request = request.header(hyper::header::CONTENT_TYPE, content_type);
                text
            }
            None => String::new(),
        };
        let request = request
            .body(Full::new(Bytes::from(text)))
            .map_err(|e| error(&e))?;
        let response = sender.send_request(request).await.map_err(|e| error(&e))?;
        let status = response.status().as_u16();
        let body = response
            .into_body()
            .collect()
            .await
            .map_err(|e| error(&e))?
            .to_bytes();
        driver.abort();
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

/// Fills a config-flow form the way the UI does: the given values, and every other field's
/// default (sections — `expandable` fields — filled the same way, recursively).
fn fill_form(schema: &Value, values: &Map<String, Value>) -> Value {
    let mut form = Map::new();
    for field in schema.as_array().into_iter().flatten() {
        let Some(name) = field["name"].as_str() else {
            continue;
        };
        if let Some(value) = values.get(name) {
            form.insert(name.to_owned(), value.clone());
        } else if field["type"] == "expandable" {
            form.insert(name.to_owned(), fill_form(&field["schema"], values));
        } else if let Some(default) = field.get("default") {
            form.insert(name.to_owned(), default.clone());
        } else if field["required"] == true {
            // What a user leaves as it is: a switch off; in a list, "off" or the first choice.
            let selector = &field["selector"];
            if selector.get("boolean").is_some() {
                form.insert(name.to_owned(), json!(false));
            } else if let Some(options) = selector["select"]["options"].as_array() {
                let value = |o: &Value| o.get("value").cloned().unwrap_or_else(|| o.clone());
                let choice = options
                    .iter()
                    .map(value)
                    .find(|v| v == "off")
                    .or_else(|| options.first().map(value));
                if let Some(choice) = choice {
                    form.insert(name.to_owned(), choice);
                }
            }
        }
    }
    Value::Object(form)
}

// ----- the Home Assistant process -------------------------------------------------------------

/// A `hass` process in a temporary config directory; killed when dropped.
pub struct HomeAssistant {
    install: HaInstall,
    /// The config directory; kept (not deleted) when the test fails.
    config: Option<tempfile::TempDir>,
    /// Its HTTP port on 127.0.0.1.
    pub port: u16,
    broker_port: u16,
    child: Option<Child>,
    runs: u32,
    token: String,
    refresh_token: String,
}

impl HomeAssistant {
    /// A Home Assistant (not started yet) that will use the broker on 127.0.0.1:`broker_port`.
    pub fn new(install: HaInstall, broker_port: u16) -> HomeAssistant {
        let config = tempfile::Builder::new()
            .prefix("ha-test-")
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
            install,
            config: Some(config),
            port,
            broker_port,
            child: None,
            runs: 0,
            token: String::new(),
            refresh_token: String::new(),
        }
    }

    /// The config directory (on the host).
    pub fn dir(&self) -> &Path {
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
    pub fn log_tail(&self, lines: usize) -> String {
        let text = std::fs::read_to_string(self.log_path()).unwrap_or_default();
        let notable: Vec<&str> = text
            .lines()
            .filter(|l| !l.contains(" INFO (") && !l.contains(" DEBUG ("))
            .collect();
        notable[notable.len().saturating_sub(lines)..].join("\n")
    }

    /// The process id of Home Assistant while it runs.
    pub fn pid(&self) -> Option<u32> {
        self.child.as_ref().map(Child::id)
    }

    /// The current run's whole output.
    pub fn log(&self) -> String {
        std::fs::read_to_string(self.log_path()).unwrap_or_default()
    }

    fn spawn(&mut self) {
        self.runs += 1;
        let log = std::fs::File::create(self.log_path()).expect("HA log file");
        let mut command = match &self.install {
            HaInstall::Venv { python } => {
                let mut c = Command::new(python);
                c.args(["-m", "homeassistant", "--config"])
                    .arg(self.dir())
                    .arg("--skip-pip");
                c
            }
            HaInstall::Root { script, .. } => {
                let mut c = Command::new(script);
                c.arg("hass")
                    .args(["--into", &self.port.to_string()])
                    .args(["--out", &self.broker_port.to_string()])
                    .arg(self.dir());
                c
            }
        };
        let child = command
            .stdin(Stdio::null())
            .stdout(log.try_clone().expect("log handle"))
            .stderr(log)
            .spawn()
            .unwrap_or_else(|e| panic!("could not start Home Assistant ({:?}): {e}", self.install));
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
    pub async fn poll<T, F, Fut>(&mut self, timeout: Duration, what: &str, mut probe: F) -> T
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

    /// First start: waits for the HTTP API, creates the owner through onboarding, gets a token,
    /// waits until the core runs and checks the version.
    pub async fn start_and_onboard(&mut self) {
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
        let config = self.wait_running().await;
        assert_eq!(
            config["version"],
            self.install.expected_version(),
            "the Home Assistant version under test"
        );
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

    /// Waits until `/api/config` reports the core `RUNNING` (every integration set up); returns
    /// that config.
    pub async fn wait_running(&mut self) -> Value {
        self.poll(
            HA_START,
            "waiting for Home Assistant to run",
            |port, token| async move {
                let r = http(port, "GET", "/api/config", Some(&token), None)
                    .await
                    .ok()?;
                let config = (r.status == 200).then(|| r.json())?;
                (config["state"] == "RUNNING").then_some(config)
            },
        )
        .await
    }

    /// Stops Home Assistant like a service manager would (SIGTERM, bounded), so it saves its
    /// storage; SIGKILL if it does not stop in time.
    pub async fn stop(&mut self) {
        let Some(mut child) = self.child.take() else {
            return;
        };
        let _ = Command::new("kill")
            .args(["-TERM", &child.id().to_string()])
            .status();
        let deadline = Instant::now() + STOP_TIMEOUT;
        loop {
            if let Ok(Some(_)) = child.try_wait() {
                return;
            }
            if Instant::now() >= deadline {
                eprintln!(
                    "Home Assistant did not stop within {STOP_TIMEOUT:?} of SIGTERM: killing it"
                );
                let _ = child.kill();
                let _ = child.wait();
                return;
            }
            tokio::time::sleep(Duration::from_millis(100)).await;
        }
    }

    /// Starts again with the same config directory, refreshes the token, waits until running.
    pub async fn restart(&mut self) {
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

    /// An authenticated GET.
    pub async fn get(&mut self, path: &str) -> Response {
        self.assert_alive(path);
        http(self.port, "GET", path, Some(&self.token), None)
            .await
            .unwrap_or_else(|e| panic!("GET {path}: {e}"))
    }

    /// An authenticated POST of JSON.
    pub async fn post(&mut self, path: &str, body: Value) -> Response {
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

    /// Adds the MQTT integration through its config flow, for the broker given to [`Self::new`]:
    /// the broker form is filled from the schema the flow returns (2024.3 asks for broker and
    /// port; 2025 and later add a required `other_settings` section), everything else at its
    /// default (discovery on `homeassistant`, birth message, MQTT 5 from 2026.6 on).
    pub async fn add_mqtt(&mut self) {
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
        let mut values = Map::new();
        values.insert("broker".into(), json!("127.0.0.1"));
        values.insert("port".into(), json!(self.broker_port));
        let answer = fill_form(&form["data_schema"], &values);
        let r = self
            .post(
                &format!("/api/config/config_entries/flow/{flow_id}"),
                answer.clone(),
            )
            .await;
        assert_eq!(r.status, 200, "MQTT broker step ({answer}): {}", r.body);
        let done = r.json();
        assert_eq!(done["type"], "create_entry", "{answer} → {done}");
        assert_eq!(done["result"]["state"], "loaded", "{done}");
    }

    /// The websocket API, authenticated.
    pub async fn websocket(&mut self) -> HaSocket {
        self.assert_alive("opening the websocket");
        HaSocket::connect(self.port, &self.token).await
    }

    /// `/api/states/<entity_id>`, or `None` while the entity has no state.
    pub async fn state(&mut self, entity_id: &str) -> Option<Value> {
        let r = self.get(&format!("/api/states/{entity_id}")).await;
        match r.status {
            200 => Some(r.json()),
            404 => None,
            status => panic!("GET /api/states/{entity_id}: {status} {}", r.body),
        }
    }

    /// Waits until the state object of `entity_id` satisfies `check`; returns it.
    pub async fn wait_state(
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
    pub async fn wait_value(&mut self, entity_id: &str, expected: &str) -> Value {
        self.wait_state(entity_id, &format!("to be '{expected}'"), |s| {
            s["state"] == expected
        })
        .await
    }

    /// Calls a service.
    pub async fn service(&mut self, domain: &str, service: &str, data: Value) {
        let path = format!("/api/services/{domain}/{service}");
        let r = self.post(&path, data).await;
        assert_eq!(r.status, 200, "POST {path}: {}", r.body);
    }

    /// Waits until the MQTT entities with these `unique_ids` are all registered and belong to the
    /// device with identifier `("mqtt", device_identifier)`; returns their registry entries by
    /// unique id, and the device.
    pub async fn wait_registered(
        &mut self,
        unique_ids: &[String],
        device_identifier: &str,
    ) -> (HashMap<String, Value>, Value) {
        let deadline = Instant::now() + WAIT;
        loop {
            let mut ws = self.websocket().await;
            let entries = ws.call("config/entity_registry/list", json!({})).await;
            let devices = ws.call("config/device_registry/list", json!({})).await;
            let mut by_unique_id: HashMap<String, Value> = entries
                .as_array()
                .expect("registry list")
                .iter()
                .filter(|e| e["platform"] == "mqtt")
                .filter_map(|e| Some((e["unique_id"].as_str()?.to_owned(), e.clone())))
                .collect();
            by_unique_id.retain(|id, _| unique_ids.contains(id));
            let missing: Vec<&String> = unique_ids
                .iter()
                .filter(|id| !by_unique_id.contains_key(*id))
                .collect();
            let device = devices.as_array().expect("device list").iter().find(|d| {
                d["identifiers"]
                    .as_array()
                    .is_some_and(|ids| ids.contains(&json!(["mqtt", device_identifier])))
            });
            if missing.is_empty()
                && let Some(device) = device
            {
                for (unique_id, entry) in &by_unique_id {
                    assert_eq!(
                        entry["device_id"], device["id"],
                        "{unique_id} belongs to the device {device_identifier}: {entry}"
                    );
                }
                return (by_unique_id, device.clone());
            }
            assert!(
                Instant::now() < deadline,
                "timed out after {WAIT:?} waiting for Home Assistant to register \
                 {device_identifier}: missing entities {missing:?}, device found: {}\n\
                 Home Assistant's output ends with:\n{}",
                device.is_some(),
                self.log_tail(25)
            );
            tokio::time::sleep(Duration::from_millis(250)).await;
        }
    }

    /// Every warning and error Home Assistant logged so far (all runs).
    pub fn logged_problems(&self) -> Vec<String> {
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
pub struct HaSocket {
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

    /// Sends a command of type `kind` with the fields of `data` and returns its `result`.
    pub async fn call(&mut self, kind: &str, data: Value) -> Value {
        let id = self.next_id;
        self.next_id += 1;
        let mut message = json!({"id": id, "type": kind});
        if let (Some(message), Some(data)) = (message.as_object_mut(), data.as_object()) {
            message.extend(data.clone());
        }
        self.send(message).await;
        loop {
            let reply = self.receive().await;
            if reply["id"] == id && reply["type"] == "result" {
                assert_eq!(reply["success"], true, "{kind}: {reply}");
                return reply["result"].clone();
            }
        }
    }
}
