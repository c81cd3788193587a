//! Packaging: the systemd unit, the Docker image and Compose file, the mosquitto ACL example.
//!
//! Nothing here builds an image (no registry is reachable in CI); instead every file is checked
//! against what it refers to: commands parse with the real CLI, mounted configuration files load
//! with the real configuration loader (secrets mapped to temporary files), the image's health
//! check runs against a live health endpoint, the ACL example is enforced by a real mosquitto.

mod common;

use std::collections::{BTreeMap, HashMap};
use std::path::{Path, PathBuf};
use std::process::{Command, Stdio};
use std::time::Duration;

use clap::Parser;
use rumqttc::{AsyncClient, Event, MqttOptions, Packet, QoS};
use serde_json::Value;
use tokio::sync::mpsc;
use tokio_util::sync::CancellationToken;
use trueconf2mqtt::cli::{Cli, Command as CliCommand};
use trueconf2mqtt::config::Settings;

fn root() -> PathBuf {
    PathBuf::from(env!("CARGO_MANIFEST_DIR"))
}

fn read(path: &str) -> String {
    std::fs::read_to_string(root().join(path)).unwrap_or_else(|e| panic!("{path}: {e}"))
}

/// Parses `args` (without the program name) with the real command line.
fn parse_cli(args: &[String]) -> Cli {
    let argv = std::iter::once("trueconf2mqtt".to_owned()).chain(args.iter().cloned());
    Cli::try_parse_from(argv).unwrap_or_else(|e| panic!("`{}` does not parse: {e}", args.join(" ")))
}

// ----- systemd ---------------------------------------------------------------------------------

const UNIT: &str = "systemd/trueconf2mqtt.service";

/// `(section, key, value)` of every setting, and the commented-out `# Key=value` lines.
fn unit_lines() -> (Vec<(String, String, String)>, Vec<String>) {
    let mut section = String::new();
    let mut settings = Vec::new();
    let mut commented = Vec::new();
    for line in read(UNIT).lines() {
        let line = line.trim();
        if let Some(name) = line.strip_prefix('[').and_then(|l| l.strip_suffix(']')) {
            section = name.to_owned();
        } else if let Some(comment) = line.strip_prefix('#') {
            commented.push(comment.trim().to_owned());
        } else if let Some((key, value)) = line.split_once('=') {
            settings.push((section.clone(), key.to_owned(), value.to_owned()));
        }
    }
    (settings, commented)
}

fn unit_values(key: &str) -> Vec<String> {
    unit_lines()
        .0
        .into_iter()
        .filter(|(s, k, _)| s == "Service" && k == key)
        .map(|(_, _, v)| v)
        .collect()
}

fn unit_value(key: &str) -> String {
    let values = unit_values(key);
    assert_eq!(values.len(), 1, "{key}= must be set once: {values:?}");
    values[0].clone()
}

#[test]
fn systemd_unit_passes_the_security_gate() {
    let Ok(output) = Command::new("systemd-analyze")
        .args(["security", "--offline=yes", "--threshold=20"])
        .arg(root().join(UNIT))
        .output()
    else {
        panic!(
            "systemd-analyze is not installed: run `apt-get install -y systemd` (Debian/Ubuntu \
             package `systemd`; scripts/test installs it)"
        );
    };
    let stdout = String::from_utf8_lossy(&output.stdout);
    let stderr = String::from_utf8_lossy(&output.stderr);
    assert!(
        output.status.success(),
        "exposure above 2.0 or invalid unit:\n{stdout}\n{stderr}"
    );
    let score: f64 = stdout
        .lines()
        .find_map(|l| l.split_once("Overall exposure level for trueconf2mqtt.service:"))
        .and_then(|(_, rest)| rest.split_whitespace().next()?.parse().ok())
        .unwrap_or_else(|| panic!("no overall exposure in:\n{stdout}"));
    assert!(score <= 2.0, "exposure {score}");
}

#[test]
fn systemd_unit_runs_the_daemon_hardened() {
    let exec: Vec<String> = unit_value("ExecStart")
        .split_whitespace()
        .map(str::to_owned)
        .collect();
    assert_eq!(exec[0], "/usr/bin/trueconf2mqtt");
    match parse_cli(&exec[1..]).command {
        CliCommand::Run { config } => assert_eq!(
            config.as_deref(),
            Some(Path::new("/etc/trueconf2mqtt/config.toml"))
        ),
        other => panic!("ExecStart must run the daemon, got {other:?}"),
    }
    // The daemon speaks sd_notify (tests/daemon.rs checks READY, STATUS and WATCHDOG).
    assert_eq!(unit_value("Type"), "notify");
    assert_eq!(unit_value("NotifyAccess"), "main");
    assert_eq!(unit_value("WatchdogSec"), "30s");
    for (key, value) in [
        ("DynamicUser", "yes"),
        ("NoNewPrivileges", "yes"),
        ("ProtectSystem", "strict"),
        ("ProtectHome", "yes"),
        ("PrivateTmp", "yes"),
        ("PrivateDevices", "yes"),
        ("CapabilityBoundingSet", ""),
        ("RestrictAddressFamilies", "AF_UNIX AF_INET AF_INET6"),
        ("MemoryDenyWriteExecute", "yes"),
        ("Restart", "on-failure"),
        ("ConfigurationDirectory", "trueconf2mqtt"),
    ] {
        assert_eq!(unit_value(key), value, "{key}=");
    }
    let wanted: Vec<String> = unit_lines()
        .0
        .into_iter()
        .filter(|(s, k, _)| s == "Install" && k == "WantedBy")
        .map(|(_, _, v)| v)
        .collect();
    assert_eq!(wanted, ["multi-user.target"]);
}

/// The credentials the unit loads, as `(name, source path)`.
fn unit_credentials() -> Vec<(String, String)> {
    unit_values("LoadCredential")
        .into_iter()
        .filter_map(|v| v.split_once(':').map(|(n, p)| (n.to_owned(), p.to_owned())))
        .collect()
}

#[test]
fn systemd_credentials_reach_the_configuration() {
    let credentials = unit_credentials();
    let names: Vec<&str> = credentials.iter().map(|(n, _)| n.as_str()).collect();
    assert_eq!(names, ["mqtt-password", "room-pin"]);
    for (_, source) in &credentials {
        assert!(source.starts_with("/etc/trueconf2mqtt/"), "{source}");
    }
    // What systemd does: copies each source into $CREDENTIALS_DIRECTORY/<name>; the
    // configuration names them relatively, as the unit's header explains.
    let dir = tempfile::tempdir().unwrap();
    std::fs::write(dir.path().join("mqtt-password"), "s3cret\n").unwrap();
    std::fs::write(dir.path().join("room-pin"), "0123\n").unwrap();
    let header = read(UNIT);
    assert!(header.contains(r#"password_file = "mqtt-password""#));
    assert!(header.contains(r#"pin_file = "room-pin""#));
    let toml = r#"
        [mqtt]
        username = "trueconf2mqtt"
        password_file = "mqtt-password"
        [[rooms]]
        id = "boardroom"
        host = "192.0.2.10"
        pin_file = "room-pin"
    "#;
    let env = HashMap::from([(
        "CREDENTIALS_DIRECTORY".to_owned(),
        dir.path().display().to_string(),
    )]);
    let settings = Settings::load_from(Some(toml), env).expect("loads with credentials");
    assert_eq!(settings.mqtt.password.unwrap().expose(), "s3cret");
    assert_eq!(settings.rooms[0].pin.as_ref().unwrap().expose(), "0123");
}

// ----- Dockerfile ------------------------------------------------------------------------------

/// Instructions of the Dockerfile, continuation lines joined, comments dropped:
/// `(INSTRUCTION, arguments)`.
fn dockerfile() -> Vec<(String, String)> {
    let mut out = Vec::new();
    let mut current = String::new();
    for line in read("Dockerfile").lines() {
        let trimmed = line.trim();
        if trimmed.starts_with('#') || (trimmed.is_empty() && current.is_empty()) {
            continue;
        }
        if let Some(head) = trimmed.strip_suffix('\\') {
            current.push_str(head);
            current.push(' ');
            continue;
        }
        current.push_str(trimmed);
        let (instruction, args) = current.split_once(' ').unwrap_or((&current, ""));
        out.push((instruction.to_ascii_uppercase(), args.trim().to_owned()));
        current.clear();
    }
    out
}

fn docker_instruction(name: &str) -> Vec<String> {
    dockerfile()
        .into_iter()
        .filter(|(i, _)| i == name)
        .map(|(_, a)| a)
        .collect()
}

/// A JSON ("exec form") argument list.
fn exec_form(text: &str) -> Vec<String> {
    serde_json::from_str(text).unwrap_or_else(|e| panic!("not an exec-form list: {text}: {e}"))
}

#[test]
fn dockerfile_builds_locked_and_runs_unprivileged() {
    let from = docker_instruction("FROM");
    assert_eq!(from.len(), 2, "{from:?}");
    assert_eq!(from[0], "rust:1-slim-bookworm AS builder");
    assert_eq!(from[1], "debian:bookworm-slim");
    let runs = docker_instruction("RUN").join("\n");
    assert!(runs.contains("cargo build --release --locked"), "{runs}");
    let user = docker_instruction("USER");
    assert_eq!(user.len(), 1);
    let uid = user[0].split(':').next().unwrap();
    assert!(uid != "0" && uid != "root", "USER {uid}");
    let copies = docker_instruction("COPY");
    let entrypoint = exec_form(&docker_instruction("ENTRYPOINT")[0]);
    assert_eq!(entrypoint, ["/usr/local/bin/trueconf2mqtt"]);
    assert!(
        copies
            .iter()
            .any(|c| c.starts_with("--from=builder") && c.ends_with(&entrypoint[0])),
        "{copies:?}"
    );
    // Every file copied from the build context exists.
    for copy in copies.iter().filter(|c| !c.starts_with("--from")) {
        let source = copy.split_whitespace().next().unwrap();
        assert!(root().join(source).exists(), "COPY {source}: missing");
    }
    // CMD names a real subcommand with valid arguments.
    let cmd = exec_form(&docker_instruction("CMD")[0]);
    match parse_cli(&cmd).command {
        CliCommand::Run { config } => {
            assert_eq!(config.as_deref(), Some(Path::new("/config/config.toml")))
        }
        other => panic!("CMD must run the daemon, got {other:?}"),
    }
}

#[test]
fn dockerignore_keeps_what_the_build_needs() {
    let ignored: Vec<String> = read(".dockerignore")
        .lines()
        .map(str::trim)
        .filter(|l| !l.is_empty() && !l.starts_with('#'))
        .map(str::to_owned)
        .collect();
    for excluded in ["target", ".git", "docker/secrets"] {
        assert!(
            ignored.iter().any(|l| l == excluded),
            "{excluded} not ignored"
        );
    }
    for needed in [
        "Cargo.toml",
        "Cargo.lock",
        "src",
        "protocol",
        "config",
        "benches",
    ] {
        assert!(
            !ignored
                .iter()
                .any(|l| l == needed || needed.starts_with(&format!("{l}/"))),
            "{needed} must reach the build"
        );
    }
}

/// The HEALTHCHECK's command and the port variable it reads.
fn healthcheck() -> (Vec<String>, u16) {
    let checks = docker_instruction("HEALTHCHECK");
    assert_eq!(checks.len(), 1);
    let cmd = checks[0]
        .split_once("CMD ")
        .map(|(_, c)| exec_form(c))
        .expect("HEALTHCHECK … CMD [..]");
    let port = docker_instruction("ENV")
        .iter()
        .find_map(|e| e.strip_prefix("HEALTHCHECK_PORT="))
        .and_then(|p| p.parse().ok())
        .expect("ENV HEALTHCHECK_PORT=");
    (cmd, port)
}

fn run_healthcheck(cmd: &[String], port: u16) -> bool {
    Command::new(&cmd[0])
        .args(&cmd[1..])
        .env("HEALTHCHECK_PORT", port.to_string())
        .stdout(Stdio::null())
        .stderr(Stdio::null())
        .status()
        .expect("bash")
        .success()
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn the_image_healthcheck_asks_the_health_endpoint() {
    let (cmd, _) = healthcheck();
    // A bridge (broker and Room unreachable: liveness must not care) with its health endpoint.
    let toml = r#"
        [mqtt]
        port = 1
        [[rooms]]
        id = "r"
        host = "127.0.0.1"
        port = 2
    "#;
    let settings = Settings::load_from(Some(toml), HashMap::new()).unwrap();
    let shutdown = CancellationToken::new();
    let (bridge, tasks) = trueconf2mqtt::bridge::start(
        trueconf2mqtt::app::bridge_options(&settings).unwrap(),
        shutdown.clone(),
    );
    let port = common::free_port();
    let listen = ([127, 0, 0, 1], port).into();
    let server = tokio::spawn(trueconf2mqtt::health::serve(
        listen,
        bridge.clone(),
        shutdown.clone(),
    ));
    common::wait_until(Duration::from_secs(5), "health endpoint", || {
        std::net::TcpStream::connect(listen).is_ok()
    })
    .await;
    let healthy = {
        let cmd = cmd.clone();
        tokio::task::spawn_blocking(move || run_healthcheck(&cmd, port))
            .await
            .unwrap()
    };
    assert!(healthy, "HEALTHCHECK failed against a live /healthz");
    shutdown.cancel();
    let _ = server.await;
    bridge.stop(tasks).await;
    let closed = common::free_port();
    let unhealthy = tokio::task::spawn_blocking(move || run_healthcheck(&cmd, closed))
        .await
        .unwrap();
    assert!(!unhealthy, "HEALTHCHECK passed with nothing listening");
}

// ----- docker-compose.yml ----------------------------------------------------------------------

fn compose() -> Value {
    serde_norway::from_str(&read("docker-compose.yml")).expect("docker-compose.yml is YAML")
}

fn strings(value: &Value) -> Vec<String> {
    value
        .as_array()
        .map(|a| {
            a.iter()
                .map(|v| v.as_str().expect("a string").to_owned())
                .collect()
        })
        .unwrap_or_default()
}

/// `--flag value` from an argument list.
fn flag(args: &[String], name: &str) -> Option<String> {
    args.iter()
        .position(|a| a == name)
        .and_then(|i| args.get(i + 1).cloned())
}

#[test]
fn compose_services_images_and_profiles() {
    let compose = compose();
    let services = compose["services"].as_object().expect("services");
    let names: Vec<&str> = services.keys().map(String::as_str).collect();
    for name in ["mosquitto", "room", "trueconf2mqtt", "homeassistant"] {
        assert!(names.contains(&name), "service {name} missing: {names:?}");
    }
    // Only Home Assistant is optional.
    for (name, service) in services {
        let profiles = strings(&service["profiles"]);
        if name == "homeassistant" {
            assert_eq!(profiles, ["ha"]);
        } else {
            assert!(profiles.is_empty(), "{name} has profiles {profiles:?}");
        }
    }
    let ha = &services["homeassistant"];
    assert_eq!(ha["image"], "ghcr.io/home-assistant/home-assistant:stable");
    assert!(
        strings(&ha["ports"])
            .iter()
            .any(|p| p.ends_with("8123:8123"))
    );

    let mosquitto = &services["mosquitto"];
    assert_eq!(mosquitto["image"], "eclipse-mosquitto:2");
    let config = strings(&mosquitto["volumes"])
        .into_iter()
        .find(|v| v.contains(":/mosquitto/config/mosquitto.conf"))
        .expect("mosquitto.conf mounted");
    let conf = read(config.split(':').next().unwrap());
    assert!(conf.lines().any(|l| l.trim() == "allow_anonymous true"));
    assert!(conf.lines().any(|l| l.trim().starts_with("listener 1883")));

    // The bridge and the simulated Room are this repository's image, with real subcommands.
    for name in ["room", "trueconf2mqtt"] {
        let service = &services[name];
        assert_eq!(service["build"], ".", "{name}");
        assert!(root().join("Dockerfile").exists());
        parse_cli(&strings(&service["command"]));
    }
    let room_cmd = strings(&services["room"]["command"]);
    assert!(matches!(
        parse_cli(&room_cmd).command,
        CliCommand::Simulate(_)
    ));
    assert_eq!(flag(&room_cmd, "--bind").as_deref(), Some("0.0.0.0"));
    let depends = strings(&services["trueconf2mqtt"]["depends_on"]);
    assert!(depends.contains(&"mosquitto".to_owned()) && depends.contains(&"room".to_owned()));
}

/// An image name as podman and Docker resolve a Docker Hub short name
/// (`debian:x` → `docker.io/library/debian:x`, `owner/name:x` → `docker.io/owner/name:x`).
fn qualified(image: &str) -> String {
    match image.split_once('/') {
        Some((host, _)) if host.contains('.') || host.contains(':') => image.to_owned(),
        Some(_) => format!("docker.io/{image}"),
        None => format!("docker.io/library/{image}"),
    }
}

#[test]
fn the_container_test_makes_every_image_it_cannot_pull() {
    // scripts/container-test.sh builds the Dockerfile and starts docker-compose.yml without any
    // registry: each base image and each default service's image that is not built from this
    // repository must be one scripts/container-base-images.sh makes, under the same name.
    let made: Vec<String> = read("scripts/container-base-images.sh")
        .lines()
        .filter_map(|l| l.split_once("_IMAGE="))
        .map(|(_, image)| image.trim().to_owned())
        .collect();
    assert_eq!(made.len(), 3, "{made:?}");
    let mut needed = Vec::new();
    let mut stages: Vec<String> = Vec::new();
    for from in docker_instruction("FROM") {
        let words: Vec<&str> = from.split_whitespace().collect();
        if !stages.iter().any(|s| s == words[0]) {
            needed.push(qualified(words[0]));
        }
        if let [_, as_, stage] = words[..] {
            assert!(as_.eq_ignore_ascii_case("as"), "FROM {from}");
            stages.push(stage.to_owned());
        }
    }
    let compose = compose();
    for (name, service) in compose["services"].as_object().expect("services") {
        if service["profiles"].is_null() && service["build"].is_null() {
            let image = service["image"]
                .as_str()
                .unwrap_or_else(|| panic!("{name}: image"));
            needed.push(qualified(image));
        }
    }
    assert_eq!(needed.len(), 3, "{needed:?}");
    for image in &needed {
        assert!(
            made.contains(image),
            "{image} is needed but not made: {made:?}"
        );
    }
}

#[test]
fn compose_bridge_configuration_loads_with_its_secrets() {
    let compose = compose();
    let services = compose["services"].as_object().unwrap();
    let bridge = &services["trueconf2mqtt"];

    // The mounted configuration file, at the path the command names.
    let command = strings(&bridge["command"]);
    let config_in_container = flag(&command, "--config").expect("--config");
    let mount = strings(&bridge["volumes"])
        .into_iter()
        .find(|v| v.split(':').nth(1) == Some(config_in_container.as_str()))
        .expect("the configuration is mounted where --config points");
    let host_config = mount.split(':').next().unwrap().to_owned();
    assert_eq!(host_config, "./config/docker.toml");
    let mut text = read(&host_config);

    // Secrets: declared at the top level from existing files, mounted at /run/secrets/<name>.
    let declared = compose["secrets"].as_object().expect("top-level secrets");
    let used = strings(&bridge["secrets"]);
    assert_eq!(used, ["mqtt_password", "room_pin"]);
    let dir = tempfile::tempdir().unwrap();
    let mut secret_values = BTreeMap::new();
    for name in &used {
        let source = declared[name]["file"].as_str().expect("file secret");
        let value = read(source);
        let container_path = format!("/run/secrets/{name}");
        assert!(
            text.contains(&container_path),
            "{name} not used by the config"
        );
        let temp = dir.path().join(name);
        std::fs::write(&temp, &value).unwrap();
        text = text.replace(&container_path, &temp.display().to_string());
        secret_values.insert(name.clone(), value.trim_end().to_owned());
    }
    let env: HashMap<String, String> = bridge["environment"]
        .as_object()
        .map(|e| {
            e.iter()
                .map(|(k, v)| (k.clone(), v.as_str().unwrap_or_default().to_owned()))
                .collect()
        })
        .unwrap_or_default();
    let settings = Settings::load_from(Some(&text), env)
        .unwrap_or_else(|e| panic!("{host_config} does not load:\n{e}"));

    // It points at the Compose services, with the simulated Room's port and PIN.
    assert_eq!(settings.mqtt.host, "mosquitto");
    assert_eq!(settings.mqtt.port, 1883);
    assert_eq!(
        settings.mqtt.password.as_ref().unwrap().expose(),
        secret_values["mqtt_password"]
    );
    let room_cmd = strings(&services["room"]["command"]);
    let room = &settings.rooms[0];
    assert_eq!(room.host, "room");
    assert_eq!(Some(room.port.to_string()), flag(&room_cmd, "--http-port"));
    assert_eq!(
        room.pin.as_ref().map(|p| p.expose().to_owned()),
        flag(&room_cmd, "--pin")
    );
    assert_eq!(flag(&room_cmd, "--pin").unwrap(), secret_values["room_pin"]);
    // The image's health check finds the endpoint.
    let (_, port) = healthcheck();
    assert_eq!(
        settings.http.listen.map(|l| l.port()),
        Some(port),
        "[http] listen must use the HEALTHCHECK port"
    );
}

// ----- mosquitto ACL ---------------------------------------------------------------------------

struct Mosquitto {
    child: std::process::Child,
    port: u16,
    _dir: tempfile::TempDir,
}

impl Drop for Mosquitto {
    fn drop(&mut self) {
        let _ = self.child.kill();
        let _ = self.child.wait();
    }
}

const USERS: &[(&str, &str)] = &[
    ("trueconf2mqtt", "bridge-pw"),
    ("homeassistant", "ha-pw"),
    ("panel", "panel-pw"),
];

fn mosquitto_with_acl() -> Mosquitto {
    let dir = tempfile::tempdir().unwrap();
    #[cfg(unix)]
    {
        // mosquitto started as root drops to user `mosquitto`, which must read these files.
        use std::os::unix::fs::PermissionsExt;
        std::fs::set_permissions(dir.path(), std::fs::Permissions::from_mode(0o755)).unwrap();
    }
    let passwd = dir.path().join("passwd");
    std::fs::write(&passwd, "").unwrap();
    for (user, password) in USERS {
        let status = Command::new("mosquitto_passwd")
            .arg("-b")
            .arg(&passwd)
            .args([user, password])
            .status()
            .expect(
                "mosquitto_passwd is not installed: run `apt-get install -y mosquitto \
                 mosquitto-clients` (scripts/test does)",
            );
        assert!(status.success());
    }
    let acl = dir.path().join("acl");
    std::fs::write(&acl, read("config/mosquitto-acl.example")).unwrap();
    let port = common::free_port();
    let conf = dir.path().join("mosquitto.conf");
    std::fs::write(
        &conf,
        format!(
            "listener {port} 127.0.0.1\nallow_anonymous false\npassword_file {}\nacl_file {}\n",
            passwd.display(),
            acl.display()
        ),
    )
    .unwrap();
    #[cfg(unix)]
    for file in [&passwd, &acl, &conf] {
        use std::os::unix::fs::PermissionsExt;
        std::fs::set_permissions(file, std::fs::Permissions::from_mode(0o644)).unwrap();
    }
    let child = Command::new("mosquitto")
        .arg("-c")
        .arg(&conf)
        .stdout(Stdio::null())
        .stderr(Stdio::null())
        .spawn()
        .expect("mosquitto is not installed: run `apt-get install -y mosquitto`");
    let deadline = std::time::Instant::now() + Duration::from_secs(10);
    while std::net::TcpStream::connect(("127.0.0.1", port)).is_err() {
        assert!(
            std::time::Instant::now() < deadline,
            "mosquitto did not start"
        );
        std::thread::sleep(Duration::from_millis(20));
    }
    Mosquitto {
        child,
        port,
        _dir: dir,
    }
}

/// A logged-in client subscribed to `filters`; received publishes arrive on the channel.
async fn login(
    port: u16,
    user: &str,
    filters: &[&str],
) -> (AsyncClient, mpsc::UnboundedReceiver<(String, String)>) {
    let password = USERS.iter().find(|(u, _)| *u == user).unwrap().1;
    let mut options = MqttOptions::new(format!("{user}-{}", fastrand::u32(..)), "127.0.0.1", port);
    options.set_credentials(user, password);
    let (client, mut eventloop) = AsyncClient::new(options, 64);
    let (tx, rx) = mpsc::unbounded_channel();
    let (subscribed_tx, mut subscribed) = mpsc::channel(1);
    let filters: Vec<String> = filters.iter().map(|f| f.to_string()).collect();
    let sub_client = client.clone();
    tokio::spawn(async move {
        let mut pending = filters.len();
        loop {
            match eventloop.poll().await {
                Ok(Event::Incoming(Packet::ConnAck(_))) => {
                    for f in &filters {
                        let _ = sub_client.try_subscribe(f, QoS::AtLeastOnce);
                    }
                    if filters.is_empty() {
                        let _ = subscribed_tx.try_send(());
                    }
                }
                Ok(Event::Incoming(Packet::SubAck(_))) => {
                    pending = pending.saturating_sub(1);
                    if pending == 0 {
                        let _ = subscribed_tx.try_send(());
                    }
                }
                Ok(Event::Incoming(Packet::Publish(p))) => {
                    let payload = String::from_utf8_lossy(&p.payload).into_owned();
                    let _ = tx.send((p.topic, payload));
                }
                Ok(_) => {}
                Err(e) => panic!("{e}"),
            }
        }
    });
    common::within(Duration::from_secs(5), "login", subscribed.recv()).await;
    (client, rx)
}

async fn next(rx: &mut mpsc::UnboundedReceiver<(String, String)>) -> (String, String) {
    common::within(Duration::from_secs(5), "a message", rx.recv())
        .await
        .unwrap()
}

#[tokio::test]
async fn the_acl_example_confines_the_bridge_and_the_panel() {
    let broker = mosquitto_with_acl();
    let (bridge, mut bridge_rx) = login(
        broker.port,
        "trueconf2mqtt",
        // `homeassistant/#` too: the ACL must keep everything but the birth message from it.
        &[
            "trueconf/+/set/+",
            "homeassistant/status",
            "homeassistant/#",
        ],
    )
    .await;
    let (ha, mut ha_rx) = login(
        broker.port,
        "homeassistant",
        &["homeassistant/#", "trueconf/#"],
    )
    .await;
    let (panel, mut panel_rx) = login(broker.port, "panel", &["trueconf/boardroom/#"]).await;
    let publish = |client: &AsyncClient, topic: &str, payload: &str| {
        client
            .try_publish(topic, QoS::AtLeastOnce, false, payload.as_bytes().to_vec())
            .unwrap()
    };

    // The bridge publishes state and discovery; Home Assistant and the panel get them.
    publish(&bridge, "trueconf/boardroom/mic_muted", "ON");
    assert_eq!(next(&mut ha_rx).await.0, "trueconf/boardroom/mic_muted");
    assert_eq!(next(&mut panel_rx).await.0, "trueconf/boardroom/mic_muted");
    publish(
        &bridge,
        "homeassistant/switch/trueconf2mqtt_boardroom/mic_muted/config",
        "{}",
    );
    assert_eq!(
        next(&mut ha_rx).await.0,
        "homeassistant/switch/trueconf2mqtt_boardroom/mic_muted/config"
    );
    // The bridge may read discovery configs (it clears its stale ones at start) …
    assert_eq!(
        next(&mut bridge_rx).await.0,
        "homeassistant/switch/trueconf2mqtt_boardroom/mic_muted/config"
    );
    // … device configs too (it migrates between the discovery modes) …
    publish(
        &bridge,
        "homeassistant/device/trueconf2mqtt_boardroom/config",
        "{}",
    );
    assert_eq!(
        next(&mut ha_rx).await.0,
        "homeassistant/device/trueconf2mqtt_boardroom/config"
    );
    assert_eq!(
        next(&mut bridge_rx).await.0,
        "homeassistant/device/trueconf2mqtt_boardroom/config"
    );
    // … and Home Assistant's birth message …
    publish(&ha, "homeassistant/status", "online");
    assert_eq!(next(&mut bridge_rx).await.0, "homeassistant/status");
    let _ = next(&mut ha_rx).await; // HA sees its own birth message
    // … but nothing else under the prefix: a message it may not read is dropped, so the next
    // one it can read arrives first.
    publish(&ha, "homeassistant/sensor/other_node/other/state", "42");
    let _ = next(&mut ha_rx).await;
    publish(&ha, "homeassistant/sensor/other_node/other/config", "{}");
    let _ = next(&mut ha_rx).await;
    assert_eq!(
        next(&mut bridge_rx).await.0,
        "homeassistant/sensor/other_node/other/config"
    );
    publish(&ha, "trueconf/boardroom/set/mic_muted", "OFF");
    assert_eq!(
        next(&mut bridge_rx).await.0,
        "trueconf/boardroom/set/mic_muted"
    );
    assert_eq!(next(&mut ha_rx).await.0, "trueconf/boardroom/set/mic_muted");
    assert_eq!(
        next(&mut panel_rx).await.0,
        "trueconf/boardroom/set/mic_muted"
    );
    // The panel commands its own room only, and reads nothing of other rooms.
    publish(&bridge, "trueconf/lobby/mic_muted", "ON");
    publish(&bridge, "trueconf/boardroom/camera_muted", "ON");
    assert_eq!(next(&mut ha_rx).await.0, "trueconf/lobby/mic_muted");
    assert_eq!(
        next(&mut panel_rx).await.0,
        "trueconf/boardroom/camera_muted"
    );
    publish(&panel, "trueconf/lobby/set/mic_muted", "ON");
    publish(&panel, "trueconf/boardroom/set/speaker_muted", "ON");
    let (topic, payload) = next(&mut bridge_rx).await;
    assert_eq!(
        (topic.as_str(), payload.as_str()),
        ("trueconf/boardroom/set/speaker_muted", "ON")
    );
}
