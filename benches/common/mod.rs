//! Shared helpers for the benchmarks: a private mosquitto on a free port, a recording MQTT
//! client, latency statistics, a process-wide clock for timestamps carried in payloads, and
//! CPU / memory / context-switch readings from `/proc`.
//!
//! Benchmarks print figures; they assert nothing about speed.
#![allow(dead_code)]

use std::net::TcpListener;
use std::path::{Path, PathBuf};
use std::process::{Child, Command, Stdio};
use std::sync::OnceLock;
use std::time::{Duration, Instant};

use bytes::Bytes;
use rumqttc::{AsyncClient, Event, MqttOptions, Packet, QoS};
use tokio::sync::mpsc;

// ---------------------------------------------------------------------------------------------
// Environment knobs

/// An integer from the environment, or `default`.
pub fn env_u64(name: &str, default: u64) -> u64 {
    match std::env::var(name) {
        Ok(text) => text
            .trim()
            .replace('_', "")
            .parse()
            .unwrap_or_else(|_| panic!("{name}={text:?} is not a non-negative integer")),
        Err(_) => default,
    }
}

/// A float from the environment, or `default`.
pub fn env_f64(name: &str, default: f64) -> f64 {
    match std::env::var(name) {
        Ok(text) => text
            .trim()
            .parse()
            .unwrap_or_else(|_| panic!("{name}={text:?} is not a number")),
        Err(_) => default,
    }
}

// ---------------------------------------------------------------------------------------------
// Clock

static BASE: OnceLock<Instant> = OnceLock::new();

/// Nanoseconds since the first call, on the monotonic clock shared by every thread of the
/// process: a timestamp one task writes into a payload and another task subtracts from.
pub fn now_ns() -> u64 {
    let base = *BASE.get_or_init(Instant::now);
    base.elapsed().as_nanos() as u64
}

/// The instant a [`now_ns`] value stands for.
pub fn instant_of(ns: u64) -> Instant {
    *BASE.get_or_init(Instant::now) + Duration::from_nanos(ns)
}

// ---------------------------------------------------------------------------------------------
// Statistics

/// Percentiles of a set of durations (nearest rank).
#[derive(Debug, Clone, Copy, Default)]
pub struct Summary {
    pub n: usize,
    pub mean_us: f64,
    pub p50_us: f64,
    pub p90_us: f64,
    pub p99_us: f64,
    pub p999_us: f64,
    pub max_us: f64,
    pub min_us: f64,
}

impl Summary {
    /// Summarises samples given in nanoseconds (sorts them in place).
    pub fn of_ns(samples: &mut [u64]) -> Summary {
        if samples.is_empty() {
            return Summary::default();
        }
        samples.sort_unstable();
        let n = samples.len();
        let at = |q: f64| {
            let rank = ((q * n as f64).ceil() as usize).clamp(1, n);
            samples[rank - 1] as f64 / 1000.0
        };
        let sum: u128 = samples.iter().map(|&s| u128::from(s)).sum();
        Summary {
            n,
            mean_us: sum as f64 / n as f64 / 1000.0,
            p50_us: at(0.50),
            p90_us: at(0.90),
            p99_us: at(0.99),
            p999_us: at(0.999),
            max_us: samples[n - 1] as f64 / 1000.0,
            min_us: samples[0] as f64 / 1000.0,
        }
    }
}

/// Rounds to an integer for the summary lines.
pub fn int(value: f64) -> i64 {
    value.round() as i64
}

// ---------------------------------------------------------------------------------------------
// A private broker

/// A free TCP port on 127.0.0.1 (bind :0, read, release).
pub fn free_port() -> u16 {
    TcpListener::bind("127.0.0.1:0")
        .and_then(|l| l.local_addr())
        .map(|a| a.port())
        .expect("a free port")
}

/// A mosquitto of our own on a free loopback port (never the system one on 1883). No
/// persistence; queues large enough that the broker itself never drops a QoS 1 message
/// during a burst, so any loss measured is the bridge's.
pub struct Broker {
    pub port: u16,
    _dir: tempfile::TempDir,
    child: Child,
}

/// Where mosquitto lives; `MOSQUITTO` overrides.
fn mosquitto_binary() -> PathBuf {
    if let Ok(path) = std::env::var("MOSQUITTO") {
        return path.into();
    }
    for candidate in ["/usr/sbin/mosquitto", "/usr/local/sbin/mosquitto"] {
        if Path::new(candidate).exists() {
            return candidate.into();
        }
    }
    "mosquitto".into()
}

impl Broker {
    /// Starts mosquitto and waits until it accepts connections.
    /// `nodelay` sets mosquitto's `set_tcp_nodelay` (off by default in mosquitto: with it off,
    /// a round trip through the broker can stall ~40 ms on Nagle + delayed ACK).
    pub fn start(nodelay: bool) -> Broker {
        let dir = tempfile::tempdir().expect("temp dir");
        #[cfg(unix)]
        {
            use std::os::unix::fs::PermissionsExt;
            // mosquitto started as root drops to user `mosquitto`.
            let _ = std::fs::set_permissions(dir.path(), std::fs::Permissions::from_mode(0o755));
        }
        // Retry a few times: the port is free when picked but could be taken before mosquitto
        // binds it.
        for _ in 0..5 {
            let port = free_port();
            let config = dir.path().join("mosquitto.conf");
            std::fs::write(
                &config,
                format!(
                    "listener {port} 127.0.0.1\nallow_anonymous true\npersistence false\n\
                     max_queued_messages 1000000\nmax_inflight_messages 100\nlog_dest none\n\
                     set_tcp_nodelay {nodelay}\n"
                ),
            )
            .expect("write mosquitto.conf");
            if let Some(child) = spawn_and_wait(&config, port) {
                return Broker {
                    port,
                    _dir: dir,
                    child,
                };
            }
        }
        panic!("could not start mosquitto on a free port");
    }

    /// Kills the broker and starts a fresh one (no persistence: nothing retained) on the same
    /// port, like a broker restart after a crash.
    pub fn restart(&mut self) {
        let _ = self.child.kill();
        let _ = self.child.wait();
        let config = self._dir.path().join("mosquitto.conf");
        for _ in 0..50 {
            if let Some(child) = spawn_and_wait(&config, self.port) {
                self.child = child;
                return;
            }
            // The old socket may linger a moment.
            std::thread::sleep(Duration::from_millis(100));
        }
        panic!("could not restart mosquitto on port {}", self.port);
    }

    /// The broker's process id (for its CPU time).
    pub fn pid(&self) -> u32 {
        self.child.id()
    }
}

/// Starts mosquitto with `config` and waits until it accepts connections on `port`; `None` if it
/// exited (port taken) or did not come up in 10 s.
fn spawn_and_wait(config: &Path, port: u16) -> Option<Child> {
    let mut child = Command::new(mosquitto_binary())
        .arg("-c")
        .arg(config)
        .stdout(Stdio::null())
        .stderr(Stdio::null())
        .spawn()
        .expect("mosquitto is not installed (apt-get install -y mosquitto)");
    let deadline = Instant::now() + Duration::from_secs(10);
    loop {
        if std::net::TcpStream::connect(("127.0.0.1", port)).is_ok() {
            return Some(child);
        }
        if let Ok(Some(_)) = child.try_wait() {
            return None; // exited: port taken
        }
        if Instant::now() > deadline {
            let _ = child.kill();
            let _ = child.wait();
            return None;
        }
        std::thread::sleep(Duration::from_millis(10));
    }
}

impl Drop for Broker {
    fn drop(&mut self) {
        let _ = self.child.kill();
        let _ = self.child.wait();
    }
}

// ---------------------------------------------------------------------------------------------
// MQTT clients

/// A publish as received, stamped on arrival.
#[derive(Debug)]
pub struct Received {
    pub at: Instant,
    pub topic: String,
    pub payload: Bytes,
}

/// Options for [`connect`].
pub struct ClientOptions<'a> {
    pub port: u16,
    pub id: &'a str,
    pub filters: &'a [&'a str],
    pub qos: QoS,
    /// TCP_NODELAY (rumqttc's default is off, as in the bridge).
    pub nodelay: bool,
    /// rumqttc request channel capacity.
    pub capacity: usize,
}

impl ClientOptions<'_> {
    pub fn new<'a>(port: u16, id: &'a str, filters: &'a [&'a str]) -> ClientOptions<'a> {
        ClientOptions {
            port,
            id,
            filters,
            qos: QoS::AtLeastOnce,
            nodelay: false,
            capacity: 1024,
        }
    }
}

/// Connects an MQTT client, subscribes to `filters` and waits for the SubAcks. Every received
/// publish is stamped the moment rumqttc hands it over and sent down the returned channel.
/// The event loop runs on the current runtime.
pub async fn connect(
    options: ClientOptions<'_>,
) -> (AsyncClient, mpsc::UnboundedReceiver<Received>) {
    let mut mqtt = MqttOptions::new(options.id, "127.0.0.1", options.port);
    mqtt.set_keep_alive(Duration::from_secs(30));
    mqtt.set_max_packet_size(1 << 20, 1 << 20);
    mqtt.set_inflight(100);
    let (client, mut eventloop) = AsyncClient::new(mqtt, options.capacity);
    let mut network = rumqttc::NetworkOptions::new();
    network.set_tcp_nodelay(options.nodelay);
    eventloop.set_network_options(network);
    let (tx, rx) = mpsc::unbounded_channel();
    let (ready_tx, mut ready) = mpsc::channel::<()>(1);
    let filters: Vec<String> = options.filters.iter().map(|f| f.to_string()).collect();
    let qos = options.qos;
    let subscriber = client.clone();
    tokio::spawn(async move {
        let mut acks_missing = filters.len();
        if acks_missing == 0 {
            // Nothing to wait for but the ConnAck.
        }
        loop {
            match eventloop.poll().await {
                Ok(Event::Incoming(Packet::Publish(p))) => {
                    let at = Instant::now();
                    if tx
                        .send(Received {
                            at,
                            topic: p.topic,
                            payload: p.payload,
                        })
                        .is_err()
                    {
                        // Nobody listens any more; keep acknowledging.
                    }
                }
                Ok(Event::Incoming(Packet::ConnAck(_))) => {
                    for f in &filters {
                        let _ = subscriber.try_subscribe(f, qos);
                    }
                    if filters.is_empty() {
                        let _ = ready_tx.try_send(());
                    }
                }
                Ok(Event::Incoming(Packet::SubAck(_))) => {
                    acks_missing = acks_missing.saturating_sub(1);
                    if acks_missing == 0 {
                        let _ = ready_tx.try_send(());
                    }
                }
                Ok(Event::Outgoing(rumqttc::Outgoing::Disconnect)) => break,
                Ok(_) => {}
                // No reconnecting: a benchmark client lives as long as its broker; ending here
                // also closes the channel, which ends whoever reads it.
                Err(_) => break,
            }
        }
    });
    tokio::time::timeout(Duration::from_secs(10), ready.recv())
        .await
        .expect("MQTT client did not connect/subscribe within 10 s");
    (client, rx)
}

/// Receives until `deadline`; `None` when it passed.
pub async fn recv_until(
    rx: &mut mpsc::UnboundedReceiver<Received>,
    deadline: Instant,
) -> Option<Received> {
    tokio::time::timeout_at(deadline.into(), rx.recv())
        .await
        .ok()
        .flatten()
}

/// Throws away whatever is queued.
pub fn drain(rx: &mut mpsc::UnboundedReceiver<Received>) -> usize {
    let mut n = 0;
    while rx.try_recv().is_ok() {
        n += 1;
    }
    n
}

// ---------------------------------------------------------------------------------------------
// /proc readings

fn clock_ticks() -> u64 {
    static TICKS: OnceLock<u64> = OnceLock::new();
    *TICKS.get_or_init(|| {
        Command::new("getconf")
            .arg("CLK_TCK")
            .output()
            .ok()
            .and_then(|o| String::from_utf8(o.stdout).ok())
            .and_then(|s| s.trim().parse().ok())
            .unwrap_or(100)
    })
}

/// utime + stime of a process from `/proc/<pid>/stat` (all its threads, exited ones included;
/// clock-tick resolution, usually 10 ms).
pub fn process_cpu(pid: &str) -> Duration {
    let Ok(stat) = std::fs::read_to_string(format!("/proc/{pid}/stat")) else {
        return Duration::ZERO;
    };
    // Fields after the command name, which is in parentheses and may contain spaces.
    let rest = stat.rsplit_once(')').map_or("", |(_, r)| r);
    let fields: Vec<&str> = rest.split_whitespace().collect();
    // rest starts at field 3 (state); utime is field 14, stime 15.
    let ticks: u64 = fields
        .get(11..13)
        .map(|f| f.iter().filter_map(|v| v.parse::<u64>().ok()).sum())
        .unwrap_or(0);
    Duration::from_nanos(ticks * 1_000_000_000 / clock_ticks())
}

/// CPU time of this process.
pub fn self_cpu() -> Duration {
    process_cpu("self")
}

/// One thread of this process.
#[derive(Debug, Clone)]
pub struct ThreadSample {
    pub name: String,
    /// On-CPU time from `/proc/self/task/<tid>/schedstat` (nanoseconds, precise).
    pub cpu_ns: u64,
    pub voluntary: u64,
    pub involuntary: u64,
}

/// Every live thread of this process.
pub fn threads() -> Vec<ThreadSample> {
    let mut out = Vec::new();
    let Ok(tasks) = std::fs::read_dir("/proc/self/task") else {
        return out;
    };
    for task in tasks.flatten() {
        let dir = task.path();
        let name = std::fs::read_to_string(dir.join("comm"))
            .unwrap_or_default()
            .trim()
            .to_owned();
        let cpu_ns = std::fs::read_to_string(dir.join("schedstat"))
            .ok()
            .and_then(|s| s.split_whitespace().next()?.parse().ok())
            .unwrap_or(0);
        let status = std::fs::read_to_string(dir.join("status")).unwrap_or_default();
        let field = |key: &str| {
            status
                .lines()
                .find_map(|l| l.strip_prefix(key))
                .and_then(|v| v.trim().parse().ok())
                .unwrap_or(0)
        };
        out.push(ThreadSample {
            name,
            cpu_ns,
            voluntary: field("voluntary_ctxt_switches:"),
            involuntary: field("nonvoluntary_ctxt_switches:"),
        });
    }
    out
}

/// CPU and context switches of a group of threads (by name prefix), or of all of them.
#[derive(Debug, Clone, Copy, Default)]
pub struct Usage {
    pub cpu_ns: u64,
    pub voluntary: u64,
    pub involuntary: u64,
}

impl Usage {
    /// Sums over live threads whose name starts with `prefix` (`""`: all threads).
    pub fn of(prefix: &str) -> Usage {
        threads()
            .into_iter()
            .filter(|t| t.name.starts_with(prefix))
            .fold(Usage::default(), |a, t| Usage {
                cpu_ns: a.cpu_ns + t.cpu_ns,
                voluntary: a.voluntary + t.voluntary,
                involuntary: a.involuntary + t.involuntary,
            })
    }

    /// `self - earlier`.
    pub fn since(self, earlier: Usage) -> Usage {
        Usage {
            cpu_ns: self.cpu_ns.saturating_sub(earlier.cpu_ns),
            voluntary: self.voluntary.saturating_sub(earlier.voluntary),
            involuntary: self.involuntary.saturating_sub(earlier.involuntary),
        }
    }
}

/// Resident set size of this process in MiB (`VmRSS`).
pub fn rss_mb() -> f64 {
    std::fs::read_to_string("/proc/self/status")
        .ok()
        .and_then(|s| {
            s.lines()
                .find_map(|l| l.strip_prefix("VmRSS:"))
                .and_then(|v| v.trim().trim_end_matches("kB").trim().parse::<f64>().ok())
        })
        .map_or(0.0, |kb| kb / 1024.0)
}

/// `nproc` and the CPU model, for the record.
pub fn machine() -> (usize, String) {
    let cpus = std::thread::available_parallelism().map_or(0, |n| n.get());
    let model = std::fs::read_to_string("/proc/cpuinfo")
        .ok()
        .and_then(|s| {
            s.lines()
                .find_map(|l| l.strip_prefix("model name"))
                .map(|v| v.trim_start_matches([' ', '\t', ':']).trim().to_owned())
        })
        .unwrap_or_else(|| "unknown".into());
    (cpus, model)
}
