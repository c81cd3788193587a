//! Shared helpers for the integration tests: a real mosquitto on a free port, an MQTT probe
//! client, a TCP proxy that can cut or blackhole a link, bounded waiting, and the bridge and
//! Room options the tests start from (short keepalives and backoffs, so failures show fast).
#![allow(dead_code)]

pub mod brokers;
pub mod plain_room;
pub mod rig;
pub mod traffic;

use std::collections::HashMap;
use std::future::Future;
use std::net::TcpListener;
use std::path::PathBuf;
use std::process::{Child, Command, Stdio};
use std::sync::{Arc, Mutex};
use std::time::{Duration, Instant};

use rumqttc::{AsyncClient, Event, MqttOptions, Packet, QoS};
use tokio::io::AsyncWriteExt;
use tokio::net::TcpStream;
use tokio::sync::{Notify, mpsc};
use tokio_util::sync::CancellationToken;
use trueconf2mqtt::bridge::{self, Bridge, BridgeOptions, RoomEntry, Tasks};
use trueconf2mqtt::mqtt::LinkOptions;
use trueconf2mqtt::room::RoomOptions;

/// A free TCP port on 127.0.0.1 (bind :0, read, release).
pub fn free_port() -> u16 {
    TcpListener::bind("127.0.0.1:0")
        .and_then(|l| l.local_addr())
        .map(|a| a.port())
        .expect("a free port")
}

/// Polls `condition` every 10 ms until it holds or `timeout` passes.
pub async fn wait_until<F: FnMut() -> bool>(timeout: Duration, what: &str, mut condition: F) {
    let deadline = Instant::now() + timeout;
    while !condition() {
        assert!(
            Instant::now() < deadline,
            "timed out after {timeout:?} waiting for {what}"
        );
        tokio::time::sleep(Duration::from_millis(10)).await;
    }
}

/// Awaits `future` for at most `timeout`.
pub async fn within<T>(timeout: Duration, what: &str, future: impl Future<Output = T>) -> T {
    tokio::time::timeout(timeout, future)
        .await
        .unwrap_or_else(|_| panic!("timed out after {timeout:?}: {what}"))
}

/// A mosquitto process on a free port, with persistence so sessions survive restarts.
pub struct Broker {
    pub port: u16,
    dir: tempfile::TempDir,
    child: Option<Child>,
    /// Lines added to the configuration (an ACL, limits).
    extra: String,
}

impl Broker {
    /// Starts mosquitto; panics with an install hint when it is missing.
    pub fn start() -> Broker {
        Broker::start_with("", &[])
    }

    /// Starts mosquitto with `set_tcp_nodelay true`, for tests that time round trips through it
    /// (with mosquitto's default, the broker's own Nagle stalls them).
    pub fn start_nodelay() -> Broker {
        Broker::start_with("set_tcp_nodelay true\n", &[])
    }

    /// Starts mosquitto with `extra` configuration lines and `files` (name, content) in its
    /// directory, which `{dir}` stands for in `extra`.
    pub fn start_with(extra: &str, files: &[(&str, &str)]) -> Broker {
        let dir = tempfile::tempdir().expect("temp dir");
        // mosquitto started as root drops to user `mosquitto`: the persistence dir must be
        // writable by it.
        #[cfg(unix)]
        {
            use std::os::unix::fs::PermissionsExt;
            let _ = std::fs::set_permissions(dir.path(), std::fs::Permissions::from_mode(0o777));
        }
        for (name, content) in files {
            std::fs::write(dir.path().join(name), content).expect("write a broker file");
        }
        let extra = extra.replace("{dir}", &dir.path().display().to_string());
        let mut broker = Broker {
            port: free_port(),
            dir,
            child: None,
            extra,
        };
        broker.spawn();
        broker
    }

    fn config_path(&self) -> PathBuf {
        self.dir.path().join("mosquitto.conf")
    }

    fn spawn(&mut self) {
        let config = format!(
            "listener {port} 127.0.0.1\nallow_anonymous true\npersistence true\npersistence_location {dir}/\n\
             autosave_interval 1\nmax_queued_messages 10000\n{extra}\n",
            port = self.port,
            dir = self.dir.path().display(),
            extra = self.extra
        );
        std::fs::write(self.config_path(), config).expect("write mosquitto.conf");
        let child = Command::new("mosquitto")
            .arg("-c")
            .arg(self.config_path())
            .stdout(Stdio::null())
            .stderr(Stdio::null())
            .spawn()
            .expect("mosquitto is not installed: run `apt-get install -y mosquitto mosquitto-clients` (the test script does this)");
        self.child = Some(child);
        let deadline = Instant::now() + Duration::from_secs(10);
        while std::net::TcpStream::connect(("127.0.0.1", self.port)).is_err() {
            assert!(
                Instant::now() < deadline,
                "mosquitto did not start on port {}",
                self.port
            );
            std::thread::sleep(Duration::from_millis(20));
        }
    }

    /// `host:port` address.
    pub fn addr(&self) -> (String, u16) {
        ("127.0.0.1".into(), self.port)
    }

    /// Kills the broker (SIGKILL): no clean shutdown, like a crash.
    pub fn kill(&mut self) {
        if let Some(mut child) = self.child.take() {
            let _ = child.kill();
            let _ = child.wait();
        }
    }

    /// Starts it again on the same port with an empty database (nothing retained, no
    /// sessions): everything must come from the clients again.
    pub fn restart_fresh(&mut self) {
        self.kill();
        if let Ok(entries) = std::fs::read_dir(self.dir.path()) {
            for entry in entries.flatten() {
                if entry.path().extension().is_some_and(|e| e == "db") {
                    let _ = std::fs::remove_file(entry.path());
                }
            }
        }
        self.spawn();
    }

    /// Starts it again on the same port.
    pub fn restart(&mut self) {
        self.kill();
        self.spawn();
    }
}

impl Drop for Broker {
    fn drop(&mut self) {
        self.kill();
    }
}

/// A received MQTT message.
#[derive(Debug, Clone)]
pub struct Message {
    pub topic: String,
    pub payload: String,
    pub retain: bool,
}

/// An MQTT client that records everything it receives.
#[derive(Clone)]
pub struct Probe {
    pub client: AsyncClient,
    log: Arc<Mutex<Vec<Message>>>,
    latest: Arc<Mutex<HashMap<String, String>>>,
    notify: Arc<Notify>,
}

impl Probe {
    /// Connects to the broker and subscribes to `filters` (clean session, random id).
    pub async fn connect(port: u16, filters: &[&str]) -> Probe {
        let id = format!("probe-{}", fastrand::u64(..));
        Probe::connect_with(port, filters, &id, true, None).await
    }

    /// Publishes a message (not retained).
    pub async fn publish(&self, topic: &str, payload: impl Into<Vec<u8>>) {
        self.client
            .publish(topic, QoS::AtLeastOnce, false, payload.into())
            .await
            .expect("publish");
    }

    /// Publishes a retained message.
    pub async fn publish_retained(&self, topic: &str, payload: impl Into<Vec<u8>>) {
        self.client
            .publish(topic, QoS::AtLeastOnce, true, payload.into())
            .await
            .expect("publish");
    }

    /// The latest payload seen on `topic`.
    pub fn latest(&self, topic: &str) -> Option<String> {
        self.latest.lock().unwrap().get(topic).cloned()
    }

    /// Every message seen so far.
    pub fn messages(&self) -> Vec<Message> {
        self.log.lock().unwrap().clone()
    }

    /// Messages on one topic.
    pub fn on(&self, topic: &str) -> Vec<Message> {
        self.messages()
            .into_iter()
            .filter(|m| m.topic == topic)
            .collect()
    }

    /// Forgets what was received.
    pub fn clear(&self) {
        self.log.lock().unwrap().clear();
    }

    /// Waits until the latest payload on `topic` satisfies `check`; returns it.
    pub async fn wait_latest(
        &self,
        topic: &str,
        timeout: Duration,
        check: impl Fn(&str) -> bool,
    ) -> String {
        let deadline = Instant::now() + timeout;
        loop {
            let notified = self.notify.notified();
            if let Some(payload) = self.latest(topic).filter(|p| check(p)) {
                return payload;
            }
            let left = deadline.saturating_duration_since(Instant::now());
            assert!(
                !left.is_zero(),
                "timed out after {timeout:?} on {topic}; latest: {:?}",
                self.latest(topic)
            );
            let _ = tokio::time::timeout(left.min(Duration::from_millis(100)), notified).await;
        }
    }

    /// Waits until the latest payload on `topic` equals `expected`.
    pub async fn wait_value(&self, topic: &str, expected: &str, timeout: Duration) {
        self.wait_latest(topic, timeout, |p| p == expected).await;
    }

    /// Waits for a message on `topic` received after `index` (a position in the log) that
    /// satisfies `check`.
    pub async fn wait_message(
        &self,
        topic: &str,
        timeout: Duration,
        check: impl Fn(&str) -> bool,
    ) -> Message {
        let deadline = Instant::now() + timeout;
        loop {
            let notified = self.notify.notified();
            if let Some(m) = self
                .messages()
                .into_iter()
                .find(|m| m.topic == topic && check(&m.payload))
            {
                return m;
            }
            let left = deadline.saturating_duration_since(Instant::now());
            assert!(
                !left.is_zero(),
                "timed out after {timeout:?} waiting for a message on {topic}"
            );
            let _ = tokio::time::timeout(left.min(Duration::from_millis(100)), notified).await;
        }
    }
}

/// A TCP proxy between a client and a server that a test can cut or blackhole.
#[derive(Clone)]
pub struct Proxy {
    pub port: u16,
    mode: Arc<Mutex<ProxyMode>>,
    generation: Arc<tokio::sync::watch::Sender<u64>>,
}

#[derive(Debug, Clone, Copy, PartialEq, Eq)]
enum ProxyMode {
    Forward,
    Refuse,
    Blackhole,
}

impl Proxy {
    /// Starts forwarding 127.0.0.1:<port> → 127.0.0.1:<target>.
    pub async fn start(target: u16) -> Proxy {
        let listener = tokio::net::TcpListener::bind("127.0.0.1:0").await.unwrap();
        let port = listener.local_addr().unwrap().port();
        let mode = Arc::new(Mutex::new(ProxyMode::Forward));
        let generation = Arc::new(tokio::sync::watch::Sender::new(0u64));
        let proxy = Proxy {
            port,
            mode: mode.clone(),
            generation: generation.clone(),
        };
        tokio::spawn(async move {
            while let Ok((inbound, _)) = listener.accept().await {
                let current = *mode.lock().unwrap();
                if current == ProxyMode::Refuse {
                    drop(inbound);
                    continue;
                }
                let mode = mode.clone();
                let mut cut = generation.subscribe();
                tokio::spawn(async move {
                    let Ok(outbound) = TcpStream::connect(("127.0.0.1", target)).await else {
                        return;
                    };
                    let (ri, wi) = inbound.into_split();
                    let (ro, wo) = outbound.into_split();
                    let pump = |mode: Arc<Mutex<ProxyMode>>| {
                        move |mut r: tokio::net::tcp::OwnedReadHalf,
                              mut w: tokio::net::tcp::OwnedWriteHalf| async move {
                            let mut buf = vec![0u8; 16 * 1024];
                            loop {
                                use tokio::io::AsyncReadExt;
                                let n = match r.read(&mut buf).await {
                                    Ok(0) | Err(_) => break,
                                    Ok(n) => n,
                                };
                                if *mode.lock().unwrap() == ProxyMode::Blackhole {
                                    continue;
                                }
                                if w.write_all(&buf[..n]).await.is_err() {
                                    break;
                                }
                            }
                            let _ = w.shutdown().await;
                        }
                    };
                    let a = tokio::spawn(pump(mode.clone())(ri, wo));
                    let b = tokio::spawn(pump(mode.clone())(ro, wi));
                    let _ = cut.changed().await;
                    a.abort();
                    b.abort();
                });
            }
        });
        proxy
    }

    /// Drops every live connection and refuses new ones.
    pub fn cut(&self) {
        *self.mode.lock().unwrap() = ProxyMode::Refuse;
        self.generation.send_modify(|g| *g += 1);
    }

    /// Keeps connections open but forwards nothing (a half-open link).
    pub fn blackhole(&self) {
        *self.mode.lock().unwrap() = ProxyMode::Blackhole;
    }

    /// Forwards again (new connections; blackholed ones resume).
    pub fn restore(&self) {
        *self.mode.lock().unwrap() = ProxyMode::Forward;
    }
}

impl Broker {
    /// Process id of the running mosquitto (for SIGSTOP/SIGCONT), if it runs.
    pub fn pid(&self) -> Option<u32> {
        self.child.as_ref().map(Child::id)
    }
}

impl Probe {
    /// Like [`Probe::connect`], with a chosen client id, session kind and credentials.
    pub async fn connect_with(
        port: u16,
        filters: &[&str],
        client_id: &str,
        clean_session: bool,
        credentials: Option<(&str, &str)>,
    ) -> Probe {
        let mut options = MqttOptions::new(client_id, "127.0.0.1", port);
        options.set_keep_alive(Duration::from_secs(5));
        options.set_clean_session(clean_session);
        options.set_max_packet_size(1 << 20, 1 << 20);
        if let Some((user, password)) = credentials {
            options.set_credentials(user, password);
        }
        let (client, mut eventloop) = AsyncClient::new(options, 1024);
        let log = Arc::new(Mutex::new(Vec::new()));
        let latest = Arc::new(Mutex::new(HashMap::new()));
        let notify = Arc::new(Notify::new());
        let (subscribed_tx, mut subscribed) = mpsc::channel(1);
        {
            let (log, latest, notify, client) =
                (log.clone(), latest.clone(), notify.clone(), client.clone());
            let filters: Vec<String> = filters.iter().map(|f| f.to_string()).collect();
            tokio::spawn(async move {
                loop {
                    match eventloop.poll().await {
                        Ok(Event::Incoming(Packet::ConnAck(_))) => {
                            for f in &filters {
                                let _ = client.try_subscribe(f, QoS::AtLeastOnce);
                            }
                        }
                        Ok(Event::Incoming(Packet::SubAck(_))) => {
                            let _ = subscribed_tx.try_send(());
                        }
                        Ok(Event::Incoming(Packet::Publish(p))) => {
                            let payload = String::from_utf8_lossy(&p.payload).into_owned();
                            latest
                                .lock()
                                .unwrap()
                                .insert(p.topic.clone(), payload.clone());
                            log.lock().unwrap().push(Message {
                                topic: p.topic,
                                payload,
                                retain: p.retain,
                            });
                            notify.notify_waiters();
                        }
                        Ok(_) => {}
                        Err(_) => tokio::time::sleep(Duration::from_millis(100)).await,
                    }
                }
            });
        }
        within(
            Duration::from_secs(10),
            "probe subscription",
            subscribed.recv(),
        )
        .await;
        tokio::time::sleep(Duration::from_millis(50)).await;
        Probe {
            client,
            log,
            latest,
            notify,
        }
    }
}

/// Every log record of the test process (tracing events, and `log` records through
/// tracing-log), kept in memory for assertions.
pub struct LogCapture {
    inner: Mutex<CapturedLines>,
}

struct CapturedLines {
    /// The newest records, oldest first.
    lines: std::collections::VecDeque<String>,
    /// Records ever captured (so marks survive the bound).
    total: u64,
    max_lines: usize,
}

/// Hands one buffer per record to the capture.
struct CaptureMakeWriter(&'static LogCapture);

/// Collects one formatted record; hands it over when dropped.
pub struct CaptureLine {
    capture: &'static LogCapture,
    buffer: Vec<u8>,
}

impl std::io::Write for CaptureLine {
    fn write(&mut self, bytes: &[u8]) -> std::io::Result<usize> {
        self.buffer.extend_from_slice(bytes);
        Ok(bytes.len())
    }

    fn flush(&mut self) -> std::io::Result<()> {
        Ok(())
    }
}

impl Drop for CaptureLine {
    fn drop(&mut self) {
        if self.buffer.is_empty() {
            return;
        }
        let line = String::from_utf8_lossy(&self.buffer).into_owned();
        let mut inner = self.capture.inner.lock().unwrap_or_else(|e| e.into_inner());
        inner.total += 1;
        inner.lines.push_back(line);
        while inner.lines.len() > inner.max_lines {
            inner.lines.pop_front();
        }
    }
}

impl<'a> tracing_subscriber::fmt::MakeWriter<'a> for CaptureMakeWriter {
    type Writer = CaptureLine;

    fn make_writer(&'a self) -> CaptureLine {
        CaptureLine {
            capture: self.0,
            buffer: Vec::new(),
        }
    }
}

impl LogCapture {
    /// Installs, once per test process, a global subscriber with `directives` (an `EnvFilter`
    /// string such as `trace` or `warn,trueconf2mqtt=info`) that keeps the newest `max_lines`
    /// records in memory; later calls return the same capture whatever they ask for.
    pub fn install(directives: &str, max_lines: usize) -> &'static LogCapture {
        LogCapture::install_filtered(directives, max_lines, |_| true)
    }

    /// [`LogCapture::install`] with a policy applied on top of the level filter: records for
    /// which `loggable` is false are never formatted (the daemon's `cli::loggable`, say).
    pub fn install_filtered(
        directives: &str,
        max_lines: usize,
        loggable: fn(&tracing::Metadata<'_>) -> bool,
    ) -> &'static LogCapture {
        use tracing_subscriber::layer::SubscriberExt;
        use tracing_subscriber::util::SubscriberInitExt;
        static CAPTURE: std::sync::OnceLock<&'static LogCapture> = std::sync::OnceLock::new();
        CAPTURE.get_or_init(|| {
            let capture: &'static LogCapture = Box::leak(Box::new(LogCapture {
                inner: Mutex::new(CapturedLines {
                    lines: std::collections::VecDeque::new(),
                    total: 0,
                    max_lines: max_lines.max(1),
                }),
            }));
            tracing_subscriber::fmt()
                .with_env_filter(tracing_subscriber::EnvFilter::new(directives))
                .with_ansi(false)
                .with_writer(CaptureMakeWriter(capture))
                .finish()
                .with(tracing_subscriber::filter::filter_fn(loggable))
                .try_init()
                .expect("no other global subscriber in this test process");
            capture
        })
    }

    /// A position: records captured from now on are "after" it.
    pub fn mark(&self) -> u64 {
        self.inner.lock().unwrap().total
    }

    /// Records captured after `mark` that are still kept.
    pub fn since(&self, mark: u64) -> Vec<String> {
        let inner = self.inner.lock().unwrap();
        let first_kept = inner.total - inner.lines.len() as u64;
        let skip = mark.saturating_sub(first_kept) as usize;
        inner.lines.iter().skip(skip).cloned().collect()
    }

    /// Records after `mark` containing every one of `needles`.
    pub fn count_since(&self, mark: u64, needles: &[&str]) -> usize {
        self.since(mark)
            .iter()
            .filter(|line| needles.iter().all(|n| line.contains(n)))
            .count()
    }

    /// Every record still kept, joined.
    pub fn text(&self) -> String {
        let inner = self.inner.lock().unwrap();
        inner.lines.iter().map(String::as_str).collect()
    }

    /// Records ever captured.
    pub fn total(&self) -> u64 {
        self.mark()
    }
}

impl Broker {
    /// Waits until mosquitto saved its database (`autosave_interval 1`) after this call, so a
    /// SIGKILL from now on keeps every session and retained message that existed before it.
    pub async fn wait_saved(&self, timeout: Duration) {
        let db = self.dir.path().join("mosquitto.db");
        let modified = || std::fs::metadata(&db).and_then(|m| m.modified()).ok();
        let before = modified();
        let since = std::time::SystemTime::now();
        let deadline = Instant::now() + timeout;
        loop {
            if modified().is_some_and(|at| Some(at) != before && at >= since) {
                return;
            }
            assert!(
                Instant::now() < deadline,
                "mosquitto did not save its database within {timeout:?}"
            );
            tokio::time::sleep(Duration::from_millis(20)).await;
        }
    }
}

/// Link options for a broker on 127.0.0.1: client id `<client_prefix>-<random>`, keepalive 5 s,
/// reconnect backoff 50–300 ms.
pub fn test_link_options(broker_port: u16, client_prefix: &str) -> LinkOptions {
    LinkOptions {
        keepalive: Duration::from_secs(5),
        reconnect_min: Duration::from_millis(50),
        reconnect_max: Duration::from_millis(300),
        ..LinkOptions::new(
            "127.0.0.1",
            broker_port,
            format!("{client_prefix}-{}", fastrand::u32(..)),
        )
    }
}

/// Options for a Room on 127.0.0.1 (no PIN): keepalive 0.9 s, reconnect backoff 50–300 ms.
pub fn test_room_options(http_port: u16) -> RoomOptions {
    let mut options = RoomOptions::new("127.0.0.1", http_port);
    options.keepalive = Duration::from_millis(900);
    options.reconnect_min = Duration::from_millis(50);
    options.reconnect_max = Duration::from_millis(300);
    options
}

/// A room entry without dangerous methods allowed.
pub fn room_entry(id: &str, name: &str, options: RoomOptions) -> RoomEntry {
    RoomEntry {
        id: id.into(),
        name: name.into(),
        options,
        allow_dangerous: Vec::new(),
    }
}

/// Bridge options under `trueconf` with Home Assistant discovery on `homeassistant`, 4 KiB
/// commands and a 5 s command age limit; tests override what they are about.
pub fn test_bridge_options(mqtt: LinkOptions, rooms: Vec<RoomEntry>) -> BridgeOptions {
    BridgeOptions {
        mqtt,
        base_topic: "trueconf".into(),
        discovery_prefix: Some("homeassistant".into()),
        // Per-entity configs: the tests about other things look at single entities' topics.
        // Device configs (the default) are tested in src/homeassistant and tests/ha_acceptance.
        homeassistant: trueconf2mqtt::homeassistant::HaOptions {
            mode: trueconf2mqtt::homeassistant::DiscoveryMode::Entity,
            ..Default::default()
        },
        max_payload_bytes: 4096,
        command_max_age: Duration::from_secs(5),
        rooms,
    }
}

/// A running bridge and how to stop it.
pub struct Running {
    pub bridge: Arc<Bridge>,
    tasks: Option<Tasks>,
    shutdown: CancellationToken,
}

impl Running {
    /// Starts a bridge (no instance name).
    pub fn start(options: BridgeOptions) -> Running {
        Running::start_with(options, None)
    }

    /// Starts a bridge as instance `instance` (`mqtt.instance`).
    pub fn start_instance(options: BridgeOptions, instance: &str) -> Running {
        Running::start_with(options, Some(instance.to_owned()))
    }

    fn start_with(options: BridgeOptions, instance: Option<String>) -> Running {
        let shutdown = CancellationToken::new();
        let (bridge, tasks) = bridge::start_instance(options, instance, shutdown.clone());
        Running {
            bridge,
            tasks: Some(tasks),
            shutdown,
        }
    }

    /// Stops it and waits for its tasks; a second call does nothing.
    pub async fn stop(&mut self) {
        self.shutdown.cancel();
        if let Some(tasks) = self.tasks.take() {
            self.bridge.clone().stop(tasks).await;
        }
    }
}
