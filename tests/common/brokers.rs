//! Private instances of every MQTT broker the compatibility matrix covers, each on free
//! 127.0.0.1 ports with its data under a temp dir: mosquitto (see [`super::Broker`]), rumqttd
//! (in a child process, so it can be killed and restarted), RabbitMQ with its MQTT plugin (one
//! node or a cluster, with a private epmd and erlang cookie) and NATS with MQTT and JetStream.
//!
//! The machine's own broker services and their ports are never used. A broker that cannot be
//! started fails the test loudly, naming the Debian package to install; the only way to skip
//! one is the explicit opt-out [`SKIP_ENV`].
#![allow(dead_code)]

use std::net::TcpStream;
use std::path::{Path, PathBuf};
use std::process::{Child, Command, Stdio};
use std::time::{Duration, Instant};

use super::{Broker, free_port};

/// `TRUECONF2MQTT_SKIP_BROKERS=rabbitmq,nats` skips the named brokers (a skipped broker
/// prints why); without it, a broker that cannot start fails the test.
pub const SKIP_ENV: &str = "TRUECONF2MQTT_SKIP_BROKERS";

/// Set in a child test process to make it serve rumqttd on this port (see
/// [`serve_rumqttd_if_asked`]).
const RUMQTTD_PORT_ENV: &str = "TRUECONF2MQTT_TEST_RUMQTTD_PORT";

/// The test (in every test binary that uses rumqttd) that turns a child process into a broker.
pub const RUMQTTD_CHILD_TEST: &str = "rumqttd_broker_process";

/// How long a RabbitMQ node may take to boot: ~5 s on an idle machine, ~30 s measured on a
/// loaded two-core one (most of it the Erlang VM and Mnesia starting).
const RABBIT_BOOT: Duration = Duration::from_secs(120);
/// How long mosquitto, rumqttd or NATS may take to accept connections (well under 1 s idle).
const SMALL_BOOT: Duration = Duration::from_secs(20);
/// Boot attempts of a RabbitMQ node whose free port was taken by someone else meanwhile.
const BOOT_TRIES: u32 = 3;
/// The private epmd is a tiny C daemon: it listens at once.
const EPMD_BOOT: Duration = Duration::from_secs(10);

/// The brokers of the matrix.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum Kind {
    /// Eclipse Mosquitto (Debian `mosquitto`).
    Mosquitto,
    /// rumqttd, the broker `trueconf2mqtt demo` embeds (a Rust crate, no package).
    Rumqttd,
    /// RabbitMQ with `rabbitmq_mqtt` (Debian `rabbitmq-server`).
    RabbitMq,
    /// NATS with MQTT and JetStream (Debian `nats-server`).
    Nats,
}

impl Kind {
    /// Lower-case name, as in [`SKIP_ENV`].
    pub fn name(self) -> &'static str {
        match self {
            Kind::Mosquitto => "mosquitto",
            Kind::Rumqttd => "rumqttd",
            Kind::RabbitMq => "rabbitmq",
            Kind::Nats => "nats",
        }
    }

    /// Whether this broker (as the matrix runs it) speaks MQTT 5.
    pub fn supports_v5(self) -> bool {
        // rumqttd is run with its 3.1.1 listener only, as `demo` does; RabbitMQ has MQTT 5
        // from 3.13 on (Debian 12 ships 3.10); NATS 2.9 answers CONNACK 132.
        matches!(self, Kind::Mosquitto)
    }

    /// Whether a subscription with a wildcard receives retained messages.
    pub fn retained_to_wildcards(self) -> bool {
        !matches!(self, Kind::RabbitMq)
    }

    /// Whether the opt-out env var names this broker; prints the reason when it does.
    pub fn skipped(self) -> bool {
        let skip = std::env::var(SKIP_ENV).unwrap_or_default();
        let skipped = skip
            .split(',')
            .any(|s| s.trim().eq_ignore_ascii_case(self.name()));
        if skipped {
            eprintln!("SKIPPED {}: {SKIP_ENV}={skip}", self.name());
        }
        skipped
    }
}

/// Waits until something accepts TCP connections on 127.0.0.1:`port`, or panics with `what`.
/// `alive` is checked on every round so a broker that exits is reported at once.
fn wait_listening(port: u16, timeout: Duration, what: &str, mut alive: impl FnMut() -> bool) {
    let deadline = Instant::now() + timeout;
    loop {
        if TcpStream::connect(("127.0.0.1", port)).is_ok() {
            return;
        }
        assert!(alive(), "{what} exited before listening on port {port}");
        assert!(
            Instant::now() < deadline,
            "{what} did not listen on port {port} within {timeout:?}"
        );
        std::thread::sleep(Duration::from_millis(50));
    }
}

/// Spawns `command` as the leader of a new process group (so the whole tree can be killed).
fn spawn_group(command: &mut Command, what: &str, package: &str) -> Child {
    use std::os::unix::process::CommandExt;
    command
        .process_group(0)
        .stdin(Stdio::null())
        .spawn()
        .unwrap_or_else(|e| {
            panic!("cannot start {what} ({e}): install the Debian package `{package}` (scripts/test does), or opt out with {SKIP_ENV}")
        })
}

/// SIGKILLs a process group started by [`spawn_group`] and reaps its leader.
fn kill_group(child: &mut Child) {
    let _ = Command::new("kill")
        // `--`: without it procps' kill takes `-<pgid>` for an option and kills nothing.
        .args(["-KILL", "--", &format!("-{}", child.id())])
        .stdout(Stdio::null())
        .stderr(Stdio::null())
        .status();
    let _ = child.kill();
    let _ = child.wait();
}

/// How long a killed broker's listening socket may linger (the kernel closes it when the last
/// process of the group is reaped: milliseconds).
const DEATH: Duration = Duration::from_secs(20);

/// Waits until nothing accepts connections on 127.0.0.1:`port` any more: a killed broker's
/// children (beam.smp under RabbitMQ's launcher) may outlive the group leader by a moment,
/// and a restart must not find the old instance still listening.
fn wait_closed(port: u16, what: &str) {
    let deadline = Instant::now() + DEATH;
    while TcpStream::connect(("127.0.0.1", port)).is_ok() {
        assert!(
            Instant::now() < deadline,
            "{what} still listens on port {port} {DEATH:?} after SIGKILL"
        );
        std::thread::sleep(Duration::from_millis(20));
    }
}

/// Whether an MQTT 3.1.1 CONNECT on 127.0.0.1:`port` gets CONNACK "accepted" within a second:
/// a listening socket alone is not readiness (RabbitMQ's MQTT plugin accepts TCP before its
/// client-id tracker has a Raft leader, and then answers nothing).
fn mqtt_accepts(port: u16) -> bool {
    use std::io::{Read, Write};
    let Ok(mut stream) = TcpStream::connect(("127.0.0.1", port)) else {
        return false;
    };
    let _ = stream.set_read_timeout(Some(Duration::from_secs(1)));
    let id = b"t2m-ready";
    let mut connect = vec![0x10, (10 + 2 + id.len()) as u8, 0, 4];
    connect.extend_from_slice(b"MQTT");
    connect.extend_from_slice(&[4, 0x02, 0, 10, 0, id.len() as u8]);
    connect.extend_from_slice(id);
    let mut ack = [0u8; 4];
    stream.write_all(&connect).is_ok()
        && stream.read_exact(&mut ack).is_ok()
        && ack == [0x20, 0x02, 0x00, 0x00]
        && stream.write_all(&[0xE0, 0x00]).is_ok()
}

fn alive(child: &mut Option<Child>) -> bool {
    child
        .as_mut()
        .is_some_and(|c| matches!(c.try_wait(), Ok(None)))
}

// ----- rumqttd ---------------------------------------------------------------------------------

/// When this process was started by [`Rumqttd`], serves rumqttd until killed; otherwise
/// returns at once. Call it from a test named [`RUMQTTD_CHILD_TEST`].
pub fn serve_rumqttd_if_asked() -> bool {
    let Ok(port) = std::env::var(RUMQTTD_PORT_ENV) else {
        return false;
    };
    let port: u16 = port.parse().expect("a port");
    let connections = rumqttd::ConnectionSettings {
        connection_timeout_ms: 10_000,
        max_payload_size: 1 << 20,
        max_inflight_count: 100,
        auth: None,
        external_auth: None,
        dynamic_filters: true,
    };
    let server = rumqttd::ServerSettings {
        name: "matrix-v4".into(),
        listen: ([127, 0, 0, 1], port).into(),
        tls: None,
        next_connection_delay_ms: 1,
        connections,
    };
    let config = rumqttd::Config {
        id: 0,
        router: rumqttd::RouterConfig {
            max_connections: 256,
            max_outgoing_packet_count: 1000,
            max_segment_size: 4 << 20,
            max_segment_count: 4,
            ..rumqttd::RouterConfig::default()
        },
        v4: Some(std::collections::HashMap::from([("1".to_owned(), server)])),
        ..rumqttd::Config::default()
    };
    let result = rumqttd::Broker::new(config).start();
    panic!("rumqttd stopped: {result:?}");
}

/// rumqttd in a child process (this test binary, running [`RUMQTTD_CHILD_TEST`]): in memory,
/// so a restart loses everything.
pub struct Rumqttd {
    pub port: u16,
    child: Option<Child>,
}

impl Rumqttd {
    /// Starts it on a free port.
    pub fn start() -> Rumqttd {
        let mut broker = Rumqttd {
            port: free_port(),
            child: None,
        };
        broker.spawn();
        broker
    }

    fn spawn(&mut self) {
        let exe = std::env::current_exe().expect("the test binary");
        let child = spawn_group(
            Command::new(exe)
                .args([
                    RUMQTTD_CHILD_TEST,
                    "--exact",
                    "--nocapture",
                    "--test-threads=1",
                ])
                .env(RUMQTTD_PORT_ENV, self.port.to_string())
                .stdout(Stdio::null())
                .stderr(Stdio::null()),
            "rumqttd (this test binary)",
            "none (a crate)",
        );
        self.child = Some(child);
        let child = &mut self.child;
        wait_listening(self.port, SMALL_BOOT, "rumqttd", || alive(child));
    }

    /// SIGKILL.
    pub fn kill(&mut self) {
        if let Some(mut child) = self.child.take() {
            kill_group(&mut child);
            wait_closed(self.port, "rumqttd");
        }
    }

    /// Kills it and starts it again on the same port (empty).
    pub fn restart(&mut self) {
        self.kill();
        self.spawn();
    }
}

impl Drop for Rumqttd {
    fn drop(&mut self) {
        self.kill();
    }
}

// ----- NATS ------------------------------------------------------------------------------------

/// nats-server with its MQTT listener and JetStream (which MQTT needs), data in a temp dir.
pub struct Nats {
    pub port: u16,
    client_port: u16,
    dir: tempfile::TempDir,
    child: Option<Child>,
}

impl Nats {
    /// Starts it on free ports.
    pub fn start() -> Nats {
        let mut nats = Nats {
            port: free_port(),
            client_port: free_port(),
            dir: tempfile::tempdir().expect("temp dir"),
            child: None,
        };
        nats.spawn();
        nats
    }

    fn spawn(&mut self) {
        let dir = self.dir.path();
        let config = format!(
            "listen: \"127.0.0.1:{client}\"\nserver_name: \"t2m_matrix_{name}\"\n\
             jetstream {{\n  store_dir: \"{store}\"\n}}\n\
             mqtt {{\n  listen: \"127.0.0.1:{mqtt}\"\n}}\n",
            client = self.client_port,
            name = fastrand::u32(..),
            store = dir.join("jetstream").display(),
            mqtt = self.port,
        );
        std::fs::write(dir.join("nats.conf"), config).expect("write nats.conf");
        let log = std::fs::File::create(dir.join("nats.log")).expect("nats.log");
        let child = spawn_group(
            Command::new("nats-server")
                .arg("-c")
                .arg(dir.join("nats.conf"))
                .stdout(log.try_clone().expect("log"))
                .stderr(log),
            "nats-server",
            "nats-server",
        );
        self.child = Some(child);
        let child = &mut self.child;
        wait_listening(self.port, SMALL_BOOT, "nats-server", || alive(child));
    }

    /// SIGKILL.
    pub fn kill(&mut self) {
        if let Some(mut child) = self.child.take() {
            kill_group(&mut child);
            wait_closed(self.port, "nats-server");
        }
    }

    /// Kills it and starts it again on the same ports with an empty JetStream store (no
    /// retained messages, no sessions).
    pub fn restart_fresh(&mut self) {
        self.kill();
        let _ = std::fs::remove_dir_all(self.dir.path().join("jetstream"));
        self.spawn();
    }

    /// The server's log so far (for failure messages).
    pub fn log(&self) -> String {
        std::fs::read_to_string(self.dir.path().join("nats.log")).unwrap_or_default()
    }
}

impl Drop for Nats {
    fn drop(&mut self) {
        self.kill();
    }
}

// ----- RabbitMQ --------------------------------------------------------------------------------

/// The Debian package's launcher (the one in /usr/sbin switches to the `rabbitmq` user and
/// its system-wide directories).
const RABBITMQ_SERVER: &str = "/usr/lib/rabbitmq/bin/rabbitmq-server";

/// A RabbitMQ cluster of one or more nodes on this host, all with the MQTT plugin, sharing a
/// private epmd and an erlang cookie of their own; the nodes find each other through
/// `classic_config` peer discovery.
pub struct RabbitCluster {
    dir: tempfile::TempDir,
    epmd_port: u16,
    epmd: Option<Child>,
    /// The nodes, in the order of their names.
    pub nodes: Vec<RabbitNode>,
}

/// One RabbitMQ node.
pub struct RabbitNode {
    /// Its MQTT port.
    pub port: u16,
    /// Erlang node name (`t2m…n1@localhost`).
    pub name: String,
    amqp_port: u16,
    dist_port: u16,
    dir: PathBuf,
    child: Option<Child>,
}

impl RabbitCluster {
    /// Starts `count` clustered nodes and waits until every one accepts MQTT connections.
    pub fn start(count: usize) -> RabbitCluster {
        assert!(
            Path::new(RABBITMQ_SERVER).exists(),
            "{RABBITMQ_SERVER} is missing: install the Debian package `rabbitmq-server` (scripts/test does), or opt out with {SKIP_ENV}=rabbitmq"
        );
        let dir = tempfile::tempdir().expect("temp dir");
        let home = dir.path().join("home");
        std::fs::create_dir_all(&home).expect("home");
        let cookie = home.join(".erlang.cookie");
        std::fs::write(&cookie, format!("T2MMATRIX{:016X}", fastrand::u64(..))).expect("cookie");
        {
            use std::os::unix::fs::PermissionsExt;
            std::fs::set_permissions(&cookie, std::fs::Permissions::from_mode(0o400))
                .expect("cookie mode");
        }
        let epmd_port = free_port();
        let epmd = spawn_group(
            Command::new("epmd")
                .args(["-port", &epmd_port.to_string(), "-address", "127.0.0.1"])
                .stdout(Stdio::null())
                .stderr(Stdio::null()),
            "epmd",
            "erlang-base",
        );
        let mut cluster = RabbitCluster {
            dir,
            epmd_port,
            epmd: Some(epmd),
            nodes: Vec::new(),
        };
        let epmd = &mut cluster.epmd;
        wait_listening(epmd_port, EPMD_BOOT, "the private epmd", || alive(epmd));
        let prefix = format!("t2m{:08x}", fastrand::u32(..));
        let names: Vec<String> = (1..=count)
            .map(|i| format!("{prefix}n{i}@localhost"))
            .collect();
        for name in &names {
            let node_dir = cluster.dir.path().join(name.split('@').next().unwrap());
            std::fs::create_dir_all(&node_dir).expect("node dir");
            let node = RabbitNode {
                port: free_port(),
                name: name.clone(),
                amqp_port: free_port(),
                dist_port: free_port(),
                dir: node_dir,
                child: None,
            };
            node.write_config(&names);
            cluster.nodes.push(node);
        }
        // The first node alone, then the others together: nodes booted all at once form the
        // cluster but each starts its own Raft group for MQTT client ids, and MQTT then refuses
        // every connection ("client ID registration timed out", leader not known).
        cluster.boot(&[0], &names);
        let others: Vec<usize> = (1..cluster.nodes.len()).collect();
        cluster.boot(&others, &names);
        cluster
    }

    /// Starts the nodes `indices` together and waits for them. A free port can be taken by
    /// another process between [`free_port`] and the node binding it: a node that exits
    /// because a port is in use gets new ports and another try, at most [`BOOT_TRIES`] in all.
    fn boot(&mut self, indices: &[usize], names: &[String]) {
        for &i in indices {
            self.spawn(i);
        }
        for &i in indices {
            let mut tries = 1;
            while let Err(problem) = self.nodes[i].ready() {
                let taken = problem.contains("already_used") || problem.contains("eaddrinuse");
                assert!(taken && tries < BOOT_TRIES, "{problem}");
                tries += 1;
                let node = &mut self.nodes[i];
                node.kill();
                (node.port, node.amqp_port, node.dist_port) =
                    (free_port(), free_port(), free_port());
                node.write_config(names);
                self.spawn(i);
            }
        }
    }

    fn spawn(&mut self, index: usize) {
        let home = self.dir.path().join("home");
        let epmd_port = self.epmd_port;
        let node = &mut self.nodes[index];
        let dir = &node.dir;
        let log = std::fs::File::create(dir.join("stdout.log")).expect("stdout.log");
        let child = spawn_group(
            Command::new(RABBITMQ_SERVER)
                .env_clear()
                .env("PATH", std::env::var("PATH").unwrap_or_default())
                .env("LANG", "C.UTF-8")
                .env("HOME", &home)
                .env("ERL_EPMD_PORT", epmd_port.to_string())
                .env("ERL_EPMD_ADDRESS", "127.0.0.1")
                .env("RABBITMQ_NODENAME", &node.name)
                .env("RABBITMQ_NODE_IP_ADDRESS", "127.0.0.1")
                .env("RABBITMQ_NODE_PORT", node.amqp_port.to_string())
                .env("RABBITMQ_DIST_PORT", node.dist_port.to_string())
                .env("RABBITMQ_MNESIA_BASE", dir.join("mnesia"))
                .env("RABBITMQ_LOG_BASE", dir.join("log"))
                .env("RABBITMQ_CONFIG_FILE", dir.join("rabbitmq.conf"))
                .env("RABBITMQ_ADVANCED_CONFIG_FILE", dir.join("advanced.config"))
                .env("RABBITMQ_CONF_ENV_FILE", dir.join("rabbitmq-env.conf"))
                .env("RABBITMQ_ENABLED_PLUGINS_FILE", dir.join("enabled_plugins"))
                .env("RABBITMQ_PID_FILE", dir.join("pid"))
                .current_dir(dir)
                .stdout(log.try_clone().expect("log"))
                .stderr(log),
            "rabbitmq-server",
            "rabbitmq-server",
        );
        node.child = Some(child);
    }

    /// Runs `rabbitmqctl` against the first node (a few seconds: it boots an Erlang VM);
    /// panics with its output when it fails.
    pub fn ctl(&self, args: &[&str]) {
        let output = Command::new("/usr/lib/rabbitmq/bin/rabbitmqctl")
            .env("HOME", self.dir.path().join("home"))
            .env("ERL_EPMD_PORT", self.epmd_port.to_string())
            .env(
                "RABBITMQ_CONF_ENV_FILE",
                self.nodes[0].dir.join("rabbitmq-env.conf"),
            )
            .args(["-n", &self.nodes[0].name])
            .args(args)
            .output()
            .expect("rabbitmqctl (Debian package rabbitmq-server)");
        assert!(
            output.status.success(),
            "rabbitmqctl {args:?}: {}{}",
            String::from_utf8_lossy(&output.stdout),
            String::from_utf8_lossy(&output.stderr)
        );
    }

    /// SIGKILLs node `index` (like a crash of its host).
    pub fn kill(&mut self, index: usize) {
        self.nodes[index].kill();
    }

    /// Starts node `index` again with its data (it rejoins the cluster) and waits for it.
    pub fn restart(&mut self, index: usize) {
        self.nodes[index].kill();
        self.spawn(index);
        self.nodes[index].wait_ready();
    }

    /// Kills node `index`, deletes its data and starts it again (a fresh single node: only
    /// for a cluster of one) and waits for it.
    pub fn restart_fresh(&mut self, index: usize) {
        assert_eq!(self.nodes.len(), 1, "a fresh node cannot rejoin a cluster");
        self.nodes[index].kill();
        let _ = std::fs::remove_dir_all(self.nodes[index].dir.join("mnesia"));
        self.spawn(index);
        self.nodes[index].wait_ready();
    }
}

impl RabbitNode {
    fn write_config(&self, cluster: &[String]) {
        let mut config = format!(
            "listeners.tcp.default = 127.0.0.1:{amqp}\n\
             mqtt.listeners.tcp.default = 127.0.0.1:{mqtt}\n\
             mqtt.allow_anonymous = true\n\
             loopback_users = none\n\
             log.console = false\n\
             log.file.level = info\n",
            amqp = self.amqp_port,
            mqtt = self.port,
        );
        if cluster.len() > 1 {
            config.push_str("cluster_formation.peer_discovery_backend = classic_config\n");
            for (i, name) in cluster.iter().enumerate() {
                config.push_str(&format!(
                    "cluster_formation.classic_config.nodes.{} = {name}\n",
                    i + 1
                ));
            }
        }
        std::fs::write(self.dir.join("rabbitmq.conf"), config).expect("rabbitmq.conf");
        std::fs::write(self.dir.join("rabbitmq-env.conf"), "").expect("rabbitmq-env.conf");
        std::fs::write(self.dir.join("advanced.config"), "[].\n").expect("advanced.config");
        std::fs::write(self.dir.join("enabled_plugins"), "[rabbitmq_mqtt].\n")
            .expect("enabled_plugins");
    }

    fn wait_ready(&mut self) {
        if let Err(problem) = self.ready() {
            panic!("{problem}");
        }
    }

    /// Waits until the node accepts MQTT connections; the reason (with its log) when it exits
    /// or runs out of time.
    fn ready(&mut self) -> Result<(), String> {
        let deadline = Instant::now() + RABBIT_BOOT;
        loop {
            if mqtt_accepts(self.port) {
                return Ok(());
            }
            let exited = !alive(&mut self.child);
            if exited || Instant::now() >= deadline {
                let why = if exited {
                    "exited".to_owned()
                } else {
                    format!("did not accept MQTT within {RABBIT_BOOT:?}")
                };
                return Err(format!(
                    "RabbitMQ node {} (MQTT port {}) {why}; log:\n{}",
                    self.name,
                    self.port,
                    self.log_tail()
                ));
            }
            std::thread::sleep(Duration::from_millis(100));
        }
    }

    fn kill(&mut self) {
        if let Some(mut child) = self.child.take() {
            kill_group(&mut child);
            wait_closed(self.port, &self.name);
        }
    }

    /// The last lines of its log (for failure messages).
    pub fn log_tail(&self) -> String {
        let mut text = std::fs::read_to_string(self.dir.join("stdout.log")).unwrap_or_default();
        if let Ok(entries) = std::fs::read_dir(self.dir.join("log")) {
            for entry in entries.flatten() {
                text.push_str(&std::fs::read_to_string(entry.path()).unwrap_or_default());
            }
        }
        let lines: Vec<&str> = text.lines().collect();
        lines[lines.len().saturating_sub(15)..].join("\n")
    }
}

impl Drop for RabbitCluster {
    fn drop(&mut self) {
        for node in &mut self.nodes {
            node.kill();
        }
        if let Some(mut epmd) = self.epmd.take() {
            kill_group(&mut epmd);
        }
    }
}

// ----- any of them ------------------------------------------------------------------------------

/// One broker of the matrix, single node.
pub enum AnyBroker {
    /// mosquitto.
    Mosquitto(Broker),
    /// rumqttd.
    Rumqttd(Rumqttd),
    /// A one-node RabbitMQ.
    RabbitMq(RabbitCluster),
    /// NATS.
    Nats(Nats),
}

impl AnyBroker {
    /// Starts a private instance of `kind`.
    pub fn start(kind: Kind) -> AnyBroker {
        match kind {
            Kind::Mosquitto => AnyBroker::Mosquitto(Broker::start()),
            Kind::Rumqttd => AnyBroker::Rumqttd(Rumqttd::start()),
            Kind::RabbitMq => AnyBroker::RabbitMq(RabbitCluster::start(1)),
            Kind::Nats => AnyBroker::Nats(Nats::start()),
        }
    }

    /// Its MQTT port on 127.0.0.1.
    pub fn port(&self) -> u16 {
        match self {
            AnyBroker::Mosquitto(b) => b.port,
            AnyBroker::Rumqttd(b) => b.port,
            AnyBroker::RabbitMq(c) => c.nodes[0].port,
            AnyBroker::Nats(b) => b.port,
        }
    }

    /// Kills it (SIGKILL) and starts it again on the same port with nothing retained and no
    /// sessions: whatever subscribers see afterwards was published again by the clients.
    pub fn restart_fresh(&mut self) {
        match self {
            AnyBroker::Mosquitto(b) => b.restart_fresh(),
            AnyBroker::Rumqttd(b) => b.restart(),
            AnyBroker::RabbitMq(c) => c.restart_fresh(0),
            AnyBroker::Nats(b) => b.restart_fresh(),
        }
    }
}
