//! `cargo bench --bench bridge`: the bridge end to end — simulator → bridge → a private
//! mosquitto → a Rust MQTT subscriber — next to the raw broker ("floor") in the same run.
//!
//! Three parts share the process: the **bridge** runs on a runtime of its own built like the
//! daemon's (multi-threaded, one worker per core; threads named `t2m-bridge`), so its CPU time
//! and context switches can be read per thread; the **harness** (simulated Rooms, measuring
//! subscriber, command prober) runs on a single worker thread (`harness`); **mosquitto** is a
//! child process. The floor publishers and the echo client run on the bridge's runtime, in the
//! bridge's place, so floor and bridge paths use the same threads.
//!
//! Scenarios (each prints one line `<scenario> key=value …`; all go to
//! `target/bench/bridge.json`, and the latency distributions to `target/bench/latency.svg`):
//! - `floor_latency`: Rust publisher → mosquitto → Rust subscriber, paced.
//! - `event_latency`: Room event (simulator `emit_raw`, send time in the payload) → bridge →
//!   mosquitto → subscriber, paced, with the floor at the same rate and the difference.
//! - `command_latency`: `set/mic_muted` publish → `response/mic_muted` received, sequential;
//!   floor: publish → echo client → publish back.
//! - `throughput`: a burst of events through the bridge vs the same burst published raw.
//! - `rooms`: N simulated Rooms on one bridge: time until every availability is `online`, RSS.
//! - `idle`: one idle Room: CPU % and context switches per second.
//! - `room_modes`: the command round trip (bridge, and the Room client alone) against the
//!   simulated Room untuned (its default: Nagle on, frames written piece by piece) and tuned,
//!   each beside the floor (see `room_modes.rs`).
//! - `python_client`: the Rust Room client alone and TrueConf's official Python client, each in
//!   a process of its own against the same simulated Room: connect, first response, requests
//!   one at a time, idle RSS (see `python_client.rs`).
//!
//! Knobs (environment): `BENCH_SCENARIOS` (comma list, default all), `BENCH_RATES`
//! ("100,1000"), `BENCH_LATENCY_SECONDS` (3), `BENCH_COMMANDS` (500), `BENCH_BURST` (20000),
//! `BENCH_ROOMS` ("1,100,1000"), `BENCH_ROOMS_TIMEOUT` (60 s), `BENCH_IDLE_SECONDS` (5),
//! `BENCH_QOS` (1, as the daemon's default), `BENCH_EVENT_BUFFER` (1000, the daemon's
//! `mqtt.event_buffer` default), `BENCH_NODELAY` (1: the bench's own MQTT clients
//! set TCP_NODELAY, so the floor is a floor; 0 keeps rumqttc's default, Nagle on
//! (the bridge always sets it)), `BENCH_BROKER_NODELAY` (1: mosquitto's `set_tcp_nodelay true`; 0 is
//! mosquitto's default, where every request/response round trip through the broker stalls
//! ~40 ms on Nagle + delayed ACK); for `python_client`: `BENCH_CLIENT_METHOD` (getMicMute),
//! `BENCH_CLIENT_COMMANDS` (2000), `BENCH_PY_COMMANDS` (100), `BENCH_CLIENT_IDLE_SECONDS` (3),
//! `BENCH_PYTHON` (an interpreter with `trueconf_room`; default: a virtualenv under `target/`);
//! `BENCH_BRIDGE_WORKERS` (worker threads of the bridge runtime; default one per core).

mod command;
#[path = "../common/mod.rs"]
mod common;
mod idle;
mod latency;
mod plot;
mod python_client;
mod report;
mod room_modes;
mod rooms;
mod throughput;
mod under_test;

use std::path::PathBuf;
use std::time::{Duration, Instant};

use rumqttc::QoS;
use serde_json::{Map, Value, json};

use common::{Broker, ClientOptions, env_f64, env_u64, now_ns};
use under_test::{
    Shared, bridge_options, start_bridge, start_room, stop_bridge, wait_bridge_ready,
};

pub const PIN: &str = "1357";
pub const BRIDGE_THREADS: &str = "t2m-bridge";
pub const ROOM: &str = "room1";
/// Pads events to a size typical of a Room notification (~170 bytes of JSON).
pub const PAD: &str = "incoming chat message from a participant, padded to a typical size";

// ---------------------------------------------------------------------------------------------
// Settings

pub struct Settings {
    pub scenarios: Vec<String>,
    pub rates: Vec<f64>,
    pub latency_seconds: f64,
    pub commands: u64,
    pub burst: u64,
    pub rooms: Vec<usize>,
    pub rooms_timeout: Duration,
    pub idle_seconds: f64,
    pub qos: QoS,
    pub nodelay: bool,
    pub broker_nodelay: bool,
    pub event_buffer: usize,
    pub client_method: String,
    pub client_commands: u64,
    pub py_commands: u64,
    pub client_idle_seconds: f64,
    pub python: Option<PathBuf>,
}

impl Settings {
    pub fn from_env() -> Settings {
        let list = |name: &str, default: &str| -> Vec<String> {
            std::env::var(name)
                .unwrap_or_else(|_| default.into())
                .split(',')
                .map(|s| s.trim().to_owned())
                .filter(|s| !s.is_empty())
                .collect()
        };
        Settings {
            scenarios: list(
                "BENCH_SCENARIOS",
                "floor_latency,event_latency,command_latency,throughput,room_modes,rooms,idle,python_client",
            ),
            rates: list("BENCH_RATES", "100,1000")
                .iter()
                .map(|r| r.parse().expect("BENCH_RATES: numbers"))
                .collect(),
            latency_seconds: env_f64("BENCH_LATENCY_SECONDS", 3.0),
            commands: env_u64("BENCH_COMMANDS", 500),
            burst: env_u64("BENCH_BURST", 20_000),
            rooms: list("BENCH_ROOMS", "1,100,1000")
                .iter()
                .map(|r| r.parse().expect("BENCH_ROOMS: integers"))
                .collect(),
            rooms_timeout: Duration::from_secs(env_u64("BENCH_ROOMS_TIMEOUT", 60)),
            idle_seconds: env_f64("BENCH_IDLE_SECONDS", 5.0),
            qos: if env_u64("BENCH_QOS", 1) == 0 {
                QoS::AtMostOnce
            } else {
                QoS::AtLeastOnce
            },
            nodelay: env_u64("BENCH_NODELAY", 1) != 0,
            broker_nodelay: env_u64("BENCH_BROKER_NODELAY", 1) != 0,
            event_buffer: env_u64("BENCH_EVENT_BUFFER", 1000).max(1) as usize,
            client_method: std::env::var("BENCH_CLIENT_METHOD")
                .unwrap_or_else(|_| "getMicMute".into()),
            client_commands: env_u64("BENCH_CLIENT_COMMANDS", 2000).max(1),
            py_commands: env_u64("BENCH_PY_COMMANDS", 100).max(1),
            client_idle_seconds: env_f64("BENCH_CLIENT_IDLE_SECONDS", 3.0).max(0.5),
            python: std::env::var_os("BENCH_PYTHON").map(PathBuf::from),
        }
    }

    pub fn wants(&self, scenario: &str) -> bool {
        self.scenarios.iter().any(|s| s == scenario || s == "all")
    }

    pub fn client<'a>(&self, port: u16, id: &'a str, filters: &'a [&'a str]) -> ClientOptions<'a> {
        ClientOptions {
            qos: self.qos,
            nodelay: self.nodelay,
            ..ClientOptions::new(port, id, filters)
        }
    }
}

// ---------------------------------------------------------------------------------------------
// Main

fn loadavg() -> String {
    std::fs::read_to_string("/proc/loadavg")
        .map(|s| s.split_whitespace().take(3).collect::<Vec<_>>().join(" "))
        .unwrap_or_default()
}

/// Cargo's target directory (`CARGO_TARGET_DIR` or `target/` of the crate).
pub fn target_dir() -> PathBuf {
    std::env::var_os("CARGO_TARGET_DIR")
        .map(PathBuf::from)
        .unwrap_or_else(|| std::path::Path::new(env!("CARGO_MANIFEST_DIR")).join("target"))
}

fn main() {
    if let Ok(port) = std::env::var(python_client::CHILD_ENV) {
        // This binary started again as the Rust client's process of `python_client`.
        python_client::child(&port);
        return;
    }
    let settings = Settings::from_env();
    let (cpus, model) = common::machine();
    let load_start = loadavg();
    println!("bridge benchmark — {cpus} CPUs, {model}; load average {load_start}");
    println!(
        "scenarios: {}; QoS {:?}; TCP_NODELAY: bench clients {}, mosquitto {}, bridge: on (its own setting)",
        settings.scenarios.join(","),
        settings.qos,
        settings.nodelay,
        settings.broker_nodelay
    );
    let _ = now_ns();
    let started = Instant::now();

    let mut bridge_rt = tokio::runtime::Builder::new_multi_thread();
    if let Some(workers) = std::env::var("BENCH_BRIDGE_WORKERS")
        .ok()
        .and_then(|v| v.parse().ok())
    {
        bridge_rt.worker_threads(workers);
    }
    let bridge_rt = bridge_rt
        .thread_name(BRIDGE_THREADS)
        .enable_all()
        .build()
        .expect("bridge runtime");
    let harness_rt = tokio::runtime::Builder::new_multi_thread()
        .worker_threads(1)
        .thread_name("harness")
        .enable_all()
        .build()
        .expect("harness runtime");
    let rt = bridge_rt.handle().clone();

    let (lines, rows, client_panel) = harness_rt.block_on(async move {
        tokio::spawn(async move {
            let s = &settings;
            let mut lines = Vec::new();
            let mut rows = Vec::new();
            let first = [
                "floor_latency",
                "event_latency",
                "command_latency",
                "throughput",
            ];
            if first.iter().any(|x| s.wants(x)) {
                let broker = Broker::start(s.broker_nodelay);
                let room = start_room().await;
                let running = start_bridge(
                    &rt,
                    bridge_options(s, broker.port, &[(ROOM.into(), room.http_port())]),
                );
                wait_bridge_ready(&running, &[ROOM.into()], Duration::from_secs(20)).await;
                tokio::time::sleep(Duration::from_millis(500)).await;
                let shared = Shared {
                    broker,
                    room,
                    running,
                };
                if s.wants("floor_latency") || s.wants("event_latency") {
                    latency::latency_scenarios(s, &rt, &shared, &mut lines, &mut rows).await;
                }
                if s.wants("command_latency") {
                    command::command_latency(s, &rt, &shared, &mut lines, &mut rows).await;
                }
                if s.wants("throughput") {
                    throughput::throughput(s, &rt, &shared, &mut lines).await;
                }
                stop_bridge(&rt, shared.running).await;
            }
            if s.wants("room_modes") {
                room_modes::room_modes(s, &rt, &mut lines).await;
            }
            if s.wants("idle") {
                idle::idle(s, &rt, &mut lines).await;
            }
            let mut client_panel = None;
            if s.wants("python_client") {
                client_panel = python_client::python_client(s, &mut lines).await;
            }
            if s.wants("rooms") {
                rooms::rooms(s, &rt, &mut lines).await;
            }
            (lines, rows, client_panel)
        })
        .await
        .expect("benchmark task")
    });

    report::print_tables(&rows, &lines);
    let load_end = loadavg();
    println!(
        "total {:.0} s; load average at start {load_start}, at end {load_end} (other work on the machine skews figures)",
        started.elapsed().as_secs_f64()
    );

    let scenarios: Map<String, Value> = lines
        .iter()
        .map(|l| (l.scenario.to_owned(), l.to_json()))
        .collect();
    let report = json!({
        "machine": {
            "cpus": cpus,
            "model": model,
            "loadavg_start": load_start,
            "loadavg_end": load_end,
        },
        "notes": {
            "process": "bridge, simulated Rooms and measuring clients share one process; bridge_* \
                        figures are the bridge runtime's threads only (schedstat), process_* the \
                        whole process, rss_mb the whole process (VmRSS)",
            "qos": format!("{:?}", Settings::from_env().qos),
        },
        "scenarios": scenarios,
    });
    let dir = target_dir().join("bench");
    let _ = std::fs::create_dir_all(&dir);
    let path = dir.join("bridge.json");
    match std::fs::write(&path, serde_json::to_string_pretty(&report).unwrap()) {
        Ok(()) => println!("wrote {}", path.display()),
        Err(e) => println!("cannot write {}: {e}", path.display()),
    }
    let mut panels = plot::latency_panels(&rows);
    panels.extend(client_panel);
    if !panels.is_empty() {
        let path = dir.join("latency.svg");
        let title = format!(
            "trueconf2mqtt latency, {cpus} CPUs, QoS {}, load average {load_start}",
            match Settings::from_env().qos {
                QoS::AtMostOnce => 0,
                _ => 1,
            }
        );
        match plot::write(&path, &title, &panels) {
            Ok(()) => println!("wrote {}", path.display()),
            Err(e) => println!("cannot write {}: {e}", path.display()),
        }
    }
    harness_rt.shutdown_timeout(Duration::from_secs(2));
    bridge_rt.shutdown_timeout(Duration::from_secs(2));
}
