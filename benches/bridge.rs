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
//! `target/bench/bridge.json`):
//! - `floor_latency`: Rust publisher → mosquitto → Rust subscriber, paced.
//! - `event_latency`: Room event (simulator `emit_raw`, send time in the payload) → bridge →
//!   mosquitto → subscriber, paced, with the floor at the same rate and the difference.
//! - `command_latency`: `set/mic_muted` publish → `response/mic_muted` received, sequential;
//!   floor: publish → echo client → publish back.
//! - `throughput`: a burst of events through the bridge vs the same burst published raw.
//! - `rooms`: N simulated Rooms on one bridge: time until every availability is `online`, RSS.
//! - `idle`: one idle Room: CPU % and context switches per second.
//!
//! Knobs (environment): `BENCH_SCENARIOS` (comma list, default all), `BENCH_RATES`
//! ("100,1000"), `BENCH_LATENCY_SECONDS` (3), `BENCH_COMMANDS` (500), `BENCH_BURST` (20000),
//! `BENCH_ROOMS` ("1,100,1000"), `BENCH_ROOMS_TIMEOUT` (60 s), `BENCH_IDLE_SECONDS` (5),
//! `BENCH_QOS` (1, as the daemon's default), `BENCH_EVENT_BUFFER` (1000, the daemon's
//! `mqtt.event_buffer` default), `BENCH_NODELAY` (1: the bench's own MQTT clients
//! set TCP_NODELAY, so the floor is a floor; 0 keeps rumqttc's default, Nagle on, as the
//! bridge does), `BENCH_BROKER_NODELAY` (1: mosquitto's `set_tcp_nodelay true`; 0 is
//! mosquitto's default, where every request/response round trip through the broker stalls
//! ~40 ms on Nagle + delayed ACK).

mod common;

use std::collections::HashMap;
use std::sync::Arc;
use std::time::{Duration, Instant};

use rumqttc::QoS;
use serde_json::{Map, Value, json};
use tokio::runtime::Handle;
use tokio_util::sync::CancellationToken;
use trueconf2mqtt::bridge::{self, Bridge, BridgeOptions, RoomEntry, Tasks};
use trueconf2mqtt::mqtt::LinkOptions;
use trueconf2mqtt::room::RoomOptions;
use trueconf2mqtt::simulator::{SimConfig, SimRoom};

use common::{
    Broker, ClientOptions, Received, Summary, Usage, connect, drain, env_f64, env_u64, instant_of,
    int, now_ns, process_cpu, recv_until, rss_mb, self_cpu,
};

const PIN: &str = "1357";
const BRIDGE_THREADS: &str = "t2m-bridge";
const ROOM: &str = "room1";
/// Pads events to a size typical of a Room notification (~170 bytes of JSON).
const PAD: &str = "incoming chat message from a participant, padded to a typical size";

// ---------------------------------------------------------------------------------------------
// Settings

struct Settings {
    scenarios: Vec<String>,
    rates: Vec<f64>,
    latency_seconds: f64,
    commands: u64,
    burst: u64,
    rooms: Vec<usize>,
    rooms_timeout: Duration,
    idle_seconds: f64,
    qos: QoS,
    nodelay: bool,
    broker_nodelay: bool,
    event_buffer: usize,
}

impl Settings {
    fn from_env() -> Settings {
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
                "floor_latency,event_latency,command_latency,throughput,rooms,idle",
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
        }
    }

    fn wants(&self, scenario: &str) -> bool {
        self.scenarios.iter().any(|s| s == scenario || s == "all")
    }

    fn client<'a>(&self, port: u16, id: &'a str, filters: &'a [&'a str]) -> ClientOptions<'a> {
        ClientOptions {
            qos: self.qos,
            nodelay: self.nodelay,
            ..ClientOptions::new(port, id, filters)
        }
    }
}

// ---------------------------------------------------------------------------------------------
// Result lines

/// One scenario's `key=value` pairs, in print order.
struct Line {
    scenario: &'static str,
    pairs: Vec<(String, Value)>,
}

impl Line {
    fn new(scenario: &'static str) -> Line {
        Line {
            scenario,
            pairs: Vec::new(),
        }
    }

    /// Integers for counts and microseconds, one decimal for everything else.
    fn put(&mut self, key: impl Into<String>, value: f64) {
        let key = key.into();
        let value = if key.ends_with("_us") || value.fract() == 0.0 || value.abs() >= 1000.0 {
            json!(int(value))
        } else {
            json!((value * 10.0).round() / 10.0)
        };
        self.pairs.push((key, value));
    }

    fn print(&self) {
        let body: Vec<String> = self.pairs.iter().map(|(k, v)| format!("{k}={v}")).collect();
        println!("{} {}", self.scenario, body.join(" "));
    }

    fn get(&self, key: &str) -> Option<f64> {
        self.pairs
            .iter()
            .find(|(k, _)| k == key)
            .and_then(|(_, v)| v.as_f64())
    }

    fn to_json(&self) -> Value {
        Value::Object(self.pairs.iter().cloned().collect::<Map<String, Value>>())
    }
}

fn put_summary(line: &mut Line, prefix: &str, s: &Summary) {
    line.put(format!("{prefix}p50_us"), s.p50_us);
    line.put(format!("{prefix}p99_us"), s.p99_us);
    line.put(format!("{prefix}p999_us"), s.p999_us);
    line.put(format!("{prefix}max_us"), s.max_us);
}

// ---------------------------------------------------------------------------------------------
// The bridge under test

/// Options as the daemon builds them from a configuration with defaults only (mqtt: QoS 1,
/// keepalive 30 s, persistent session, event buffer 1000, 64 KiB payload limit, discovery on;
/// rooms: keepalive 6 s, request timeout 5 s), pointing at our broker and simulated Rooms.
fn bridge_options(s: &Settings, broker_port: u16, rooms: &[(String, u16)]) -> BridgeOptions {
    BridgeOptions {
        mqtt: LinkOptions {
            qos: s.qos,
            event_buffer: s.event_buffer,
            ..LinkOptions::new(
                "127.0.0.1",
                broker_port,
                format!("trueconf2mqtt-bench-{}", fastrand::u32(..)),
            )
        },
        base_topic: "trueconf".into(),
        discovery_prefix: Some("homeassistant".into()),
        max_payload_bytes: 65_536,
        command_max_age: Duration::from_secs(30),
        rooms: rooms
            .iter()
            .map(|(id, http_port)| RoomEntry {
                id: id.clone(),
                name: id.clone(),
                options: RoomOptions::new("127.0.0.1", *http_port).with_pin(PIN),
                allow_dangerous: Vec::new(),
            })
            .collect(),
    }
}

struct Running {
    bridge: Arc<Bridge>,
    tasks: Tasks,
    shutdown: CancellationToken,
}

/// Starts the bridge on its own runtime.
fn start_bridge(rt: &Handle, options: BridgeOptions) -> Running {
    let shutdown = CancellationToken::new();
    let (bridge, tasks) = {
        let _inside = rt.enter();
        bridge::start(options, shutdown.clone())
    };
    Running {
        bridge,
        tasks,
        shutdown,
    }
}

/// The graceful stop, on the bridge's runtime.
async fn stop_bridge(rt: &Handle, running: Running) {
    running.shutdown.cancel();
    let _ = rt.spawn(running.bridge.stop(running.tasks)).await;
}

async fn start_room() -> SimRoom {
    SimRoom::start(SimConfig {
        pin: Some(PIN.into()),
        ..SimConfig::default()
    })
    .await
    .expect("simulator starts")
}

/// Waits until the bridge says every room is online (Room link) and the broker is connected.
async fn wait_bridge_ready(running: &Running, rooms: &[String], timeout: Duration) {
    let deadline = Instant::now() + timeout;
    loop {
        let ready = running.bridge.link().is_connected()
            && rooms.iter().all(|id| {
                running
                    .bridge
                    .room(id)
                    .is_some_and(|c| c.link().borrow().is_online())
            });
        if ready {
            return;
        }
        assert!(
            Instant::now() < deadline,
            "bridge not ready after {timeout:?}"
        );
        tokio::time::sleep(Duration::from_millis(10)).await;
    }
}

// ---------------------------------------------------------------------------------------------
// Payloads

/// A Room notification carrying its sequence number and send time (fixed width, so every
/// payload has the same size). Keys come out sorted, as the bridge re-serialises them.
fn stamped_event(seq: u64) -> Value {
    json!({
        "method": "event",
        "event": "benchEvent",
        "seq": format!("{seq:08}"),
        "sentNs": format!("{:020}", now_ns()),
        "text": PAD,
    })
}

/// The simulator's flood event (`SimRoom::flood_events`).
fn flood_frame(i: u64) -> Value {
    json!({"method": "event", "event": "myEvent", "data": format!("flood-{i}")})
}

fn stamp_of(payload: &[u8]) -> Option<u64> {
    let value: Value = serde_json::from_slice(payload).ok()?;
    value.get("sentNs")?.as_str()?.parse().ok()
}

/// Paces `n` sends at `rate` per second on absolute deadlines (a late tick is caught up at
/// once). Returns the achieved rate.
async fn paced(n: u64, rate: f64, mut send: impl FnMut(u64)) -> f64 {
    let period = Duration::from_secs_f64(1.0 / rate);
    let start = tokio::time::Instant::now();
    for i in 0..n {
        tokio::time::sleep_until(start + period.mul_f64(i as f64)).await;
        send(i);
    }
    n as f64 / start.elapsed().as_secs_f64().max(1e-9)
}

/// Collects send→receive latencies of stamped messages on topics accepted by `wanted` until
/// `n` arrived or `deadline` passed.
async fn collect_latencies(
    rx: &mut tokio::sync::mpsc::UnboundedReceiver<Received>,
    n: u64,
    deadline: Instant,
    wanted: impl Fn(&str) -> bool,
) -> Vec<u64> {
    let mut samples = Vec::with_capacity(n as usize);
    while (samples.len() as u64) < n {
        let Some(m) = recv_until(rx, deadline).await else {
            break;
        };
        if !wanted(&m.topic) {
            continue;
        }
        if let Some(sent) = stamp_of(&m.payload) {
            samples.push(m.at.saturating_duration_since(instant_of(sent)).as_nanos() as u64);
        }
    }
    samples
}

// ---------------------------------------------------------------------------------------------
// Scenarios

struct Shared {
    broker: Broker,
    room: SimRoom,
    running: Running,
}

/// Floor and bridge latency at each rate.
struct LatencyRow {
    path: &'static str,
    rate: f64,
    achieved: f64,
    sent: u64,
    summary: Summary,
}

async fn floor_at(
    s: &Settings,
    rt: &Handle,
    broker_port: u16,
    rate: f64,
    n: u64,
) -> (Summary, f64) {
    let (_sub, mut rx) = connect(s.client(broker_port, "bench-floor-sub", &["bench/floor"])).await;
    let (qos, nodelay) = (s.qos, s.nodelay);
    // The publisher runs on the bridge's runtime, in the bridge's place.
    let sender = rt.spawn(async move {
        let (client, _rx) = connect(ClientOptions {
            qos,
            nodelay,
            ..ClientOptions::new(broker_port, "bench-floor-pub", &[])
        })
        .await;
        paced(n, rate, |i| {
            let payload = stamped_event(i).to_string();
            let _ = client.try_publish("bench/floor", qos, false, payload);
        })
        .await
    });
    let deadline = Instant::now() + Duration::from_secs_f64(n as f64 / rate + 5.0);
    let mut samples = collect_latencies(&mut rx, n, deadline, |t| t == "bench/floor").await;
    let achieved = sender.await.unwrap_or(0.0);
    (Summary::of_ns(&mut samples), achieved)
}

async fn event_at(s: &Settings, shared: &Shared, rate: f64, n: u64) -> (Summary, f64) {
    let topic = format!("trueconf/{ROOM}/event/benchEvent");
    let filter = format!("trueconf/{ROOM}/event/#");
    let (_sub, mut rx) = connect(s.client(shared.broker.port, "bench-event-sub", &[&filter])).await;
    let room = shared.room.clone();
    let sender =
        tokio::spawn(async move { paced(n, rate, |i| room.emit_raw(stamped_event(i))).await });
    let deadline = Instant::now() + Duration::from_secs_f64(n as f64 / rate + 5.0);
    let mut samples = collect_latencies(&mut rx, n, deadline, |t| t == topic).await;
    let achieved = sender.await.unwrap_or(0.0);
    (Summary::of_ns(&mut samples), achieved)
}

async fn latency_scenarios(
    s: &Settings,
    rt: &Handle,
    shared: &Shared,
    lines: &mut Vec<Line>,
    rows: &mut Vec<LatencyRow>,
) {
    let mut floor_line = Line::new("floor_latency");
    let mut event_line = Line::new("event_latency");
    for &rate in &s.rates {
        let n = (rate * s.latency_seconds).round().max(1.0) as u64;
        let r = format!("r{}_", int(rate));
        let (floor, floor_rate) = floor_at(s, rt, shared.broker.port, rate, n).await;
        rows.push(LatencyRow {
            path: "floor (raw mosquitto)",
            rate,
            achieved: floor_rate,
            sent: n,
            summary: floor,
        });
        if s.wants("floor_latency") {
            floor_line.put(format!("{r}rate_per_s"), rate);
            floor_line.put(format!("{r}lost"), (n - floor.n as u64) as f64);
            put_summary(&mut floor_line, &r, &floor);
        }
        if s.wants("event_latency") {
            let (event, event_rate) = event_at(s, shared, rate, n).await;
            rows.push(LatencyRow {
                path: "event via bridge",
                rate,
                achieved: event_rate,
                sent: n,
                summary: event,
            });
            event_line.put(format!("{r}rate_per_s"), rate);
            event_line.put(format!("{r}lost"), (n - event.n as u64) as f64);
            put_summary(&mut event_line, &r, &event);
            event_line.put(format!("{r}floor_p50_us"), floor.p50_us);
            event_line.put(format!("{r}floor_p99_us"), floor.p99_us);
            event_line.put(format!("{r}floor_p999_us"), floor.p999_us);
            event_line.put(format!("{r}added_p50_us"), event.p50_us - floor.p50_us);
            event_line.put(format!("{r}added_p99_us"), event.p99_us - floor.p99_us);
            event_line.put(format!("{r}added_p999_us"), event.p999_us - floor.p999_us);
        }
    }
    if s.wants("floor_latency") {
        floor_line.put("payload_bytes", stamped_event(0).to_string().len() as f64);
        floor_line.print();
        lines.push(floor_line);
    }
    if s.wants("event_latency") {
        event_line.print();
        lines.push(event_line);
    }
}

async fn command_latency(
    s: &Settings,
    rt: &Handle,
    shared: &Shared,
    lines: &mut Vec<Line>,
    rows: &mut Vec<LatencyRow>,
) {
    let port = shared.broker.port;
    let response = format!("trueconf/{ROOM}/response/mic_muted");
    let set = format!("trueconf/{ROOM}/set/mic_muted");

    // Floor: an echo client on the bridge's runtime sends every request straight back.
    let echo_ready = {
        let (qos, nodelay) = (s.qos, s.nodelay);
        let (ready_tx, ready_rx) = tokio::sync::oneshot::channel();
        rt.spawn(async move {
            let (client, mut rx) = connect(ClientOptions {
                qos,
                nodelay,
                ..ClientOptions::new(port, "bench-echo", &["bench/echo/req"])
            })
            .await;
            let _ = ready_tx.send(());
            while let Some(m) = rx.recv().await {
                if client
                    .publish("bench/echo/resp", qos, false, m.payload)
                    .await
                    .is_err()
                {
                    break;
                }
            }
        });
        ready_rx
    };
    let _ = echo_ready.await;
    let (prober, mut rx) = connect(s.client(
        port,
        "bench-prober",
        &[response.as_str(), "bench/echo/resp"],
    ))
    .await;

    let n = s.commands;
    let mut floor = Vec::with_capacity(n as usize);
    let mut bridge = Vec::with_capacity(n as usize);
    let mut failed = 0u64;
    let mut lost = 0u64;
    // Warm-up, then alternate floor and bridge so both see the same conditions.
    for i in 0..(n + 20) {
        let warm = i < 20;
        let payload = if i % 2 == 0 { "ON" } else { "OFF" };
        for (topic, reply, samples) in [
            ("bench/echo/req", "bench/echo/resp", &mut floor),
            (set.as_str(), response.as_str(), &mut bridge),
        ] {
            drain(&mut rx);
            let t0 = Instant::now();
            prober
                .publish(topic, s.qos, false, payload)
                .await
                .expect("publish");
            let deadline = t0 + Duration::from_secs(6);
            loop {
                match recv_until(&mut rx, deadline).await {
                    Some(m) if m.topic == reply => {
                        if !warm {
                            samples.push(m.at.duration_since(t0).as_nanos() as u64);
                            let ok = topic != set
                                || serde_json::from_slice::<Value>(&m.payload)
                                    .ok()
                                    .and_then(|v| v.get("status").cloned())
                                    == Some(json!("ok"));
                            if !ok {
                                failed += 1;
                            }
                        }
                        break;
                    }
                    Some(_) => {}
                    None => {
                        lost += 1;
                        break;
                    }
                }
            }
        }
    }
    let floor = Summary::of_ns(&mut floor);
    let bridge = Summary::of_ns(&mut bridge);
    rows.push(LatencyRow {
        path: "floor round trip (echo)",
        rate: 0.0,
        achieved: 0.0,
        sent: n,
        summary: floor,
    });
    rows.push(LatencyRow {
        path: "command via bridge",
        rate: 0.0,
        achieved: 0.0,
        sent: n,
        summary: bridge,
    });
    let mut line = Line::new("command_latency");
    line.put("commands", n as f64);
    line.put("failed", failed as f64);
    line.put("lost", lost as f64);
    line.put("p50_us", bridge.p50_us);
    line.put("p99_us", bridge.p99_us);
    line.put("max_us", bridge.max_us);
    line.put("floor_rtt_p50_us", floor.p50_us);
    line.put("floor_rtt_p99_us", floor.p99_us);
    line.put("added_p50_us", bridge.p50_us - floor.p50_us);
    line.put("added_p99_us", bridge.p99_us - floor.p99_us);
    line.print();
    lines.push(line);
    let _ = prober.disconnect().await;
}

async fn throughput(s: &Settings, rt: &Handle, shared: &Shared, lines: &mut Vec<Line>) {
    let port = shared.broker.port;
    let n = s.burst;
    let flood_payload_len = flood_frame(n / 2).to_string().len();
    let topic = format!("trueconf/{ROOM}/event/myEvent");
    let (_sub, mut rx) = connect(s.client(port, "bench-burst-sub", &[&topic, "bench/burst"])).await;
    let idle_gap = Duration::from_secs(3);

    // Counts messages on `topic` until all arrived or nothing came for `idle_gap`.
    async fn count(
        rx: &mut tokio::sync::mpsc::UnboundedReceiver<Received>,
        topic: &str,
        n: u64,
        idle_gap: Duration,
        hard: Instant,
    ) -> (u64, Option<Instant>) {
        let mut received = 0;
        let mut last = None;
        while received < n {
            let deadline = (Instant::now() + idle_gap).min(hard);
            match recv_until(rx, deadline).await {
                Some(m) if m.topic == topic => {
                    received += 1;
                    last = Some(m.at);
                }
                Some(_) => {}
                None => break,
            }
        }
        (received, last)
    }

    // Raw: the same number of same-size messages published as fast as rumqttc takes them, by
    // a publisher on the bridge's runtime.
    let broker_pid = shared.broker.pid().to_string();
    let (qos, nodelay) = (s.qos, s.nodelay);
    let raw_cpu0 = Usage::of(BRIDGE_THREADS);
    let raw_broker0 = process_cpu(&broker_pid);
    let publisher = rt.spawn(async move {
        let (client, _rx) = connect(ClientOptions {
            qos,
            nodelay,
            ..ClientOptions::new(port, "bench-burst-pub", &[])
        })
        .await;
        let start = Instant::now();
        for i in 0..n {
            // Byte for byte what the bridge publishes for the simulator's flood.
            let payload = flood_frame(i).to_string();
            if client
                .publish("bench/burst", qos, false, payload)
                .await
                .is_err()
            {
                break;
            }
        }
        (start, client)
    });
    let hard = Instant::now() + Duration::from_secs(120);
    let (raw_received, raw_last) = count(&mut rx, "bench/burst", n, idle_gap, hard).await;
    let (raw_start, raw_client) = publisher.await.expect("raw publisher");
    let raw_cpu = Usage::of(BRIDGE_THREADS).since(raw_cpu0);
    let raw_broker = process_cpu(&broker_pid).saturating_sub(raw_broker0);
    let _ = raw_client.disconnect().await;
    let raw_elapsed = raw_last
        .map_or(Duration::ZERO, |l| l.duration_since(raw_start))
        .max(Duration::from_micros(1));
    let raw_rate = raw_received as f64 / raw_elapsed.as_secs_f64();

    // Through the bridge.
    tokio::time::sleep(Duration::from_millis(300)).await;
    drain(&mut rx);
    let stats = shared.running.bridge.room_stats(ROOM).expect("room stats");
    let lagged0 = stats
        .events_lagged
        .load(std::sync::atomic::Ordering::Relaxed);
    let dropped0 = shared
        .running
        .bridge
        .link()
        .stats()
        .dropped
        .load(std::sync::atomic::Ordering::Relaxed);
    let cpu0 = Usage::of(BRIDGE_THREADS);
    let process0 = self_cpu();
    let broker0 = process_cpu(&broker_pid);
    let t0 = Instant::now();
    let room = shared.room.clone();
    let flood = tokio::spawn(async move { room.flood_events(n as usize).await });
    let (received, last) = count(&mut rx, &topic, n, idle_gap, hard).await;
    let _ = flood.await;
    let cpu = Usage::of(BRIDGE_THREADS).since(cpu0);
    let process = self_cpu().saturating_sub(process0);
    let broker = process_cpu(&broker_pid).saturating_sub(broker0);
    let elapsed = last
        .map_or(Duration::ZERO, |l| l.duration_since(t0))
        .max(Duration::from_micros(1));
    let rate = received as f64 / elapsed.as_secs_f64();
    let lagged = stats
        .events_lagged
        .load(std::sync::atomic::Ordering::Relaxed)
        - lagged0;
    let dropped = shared
        .running
        .bridge
        .link()
        .stats()
        .dropped
        .load(std::sync::atomic::Ordering::Relaxed)
        - dropped0;

    let per_1000 = |d: u64, count: u64| d as f64 / 1000.0 / count.max(1) as f64 * 1000.0;
    let mut line = Line::new("throughput");
    line.put("events", n as f64);
    line.put("received", received as f64);
    line.put("lost", n.saturating_sub(received) as f64);
    line.put("events_per_s", rate);
    line.put("elapsed_us", elapsed.as_nanos() as f64 / 1000.0);
    line.put("raw_received", raw_received as f64);
    line.put("raw_msgs_per_s", raw_rate);
    line.put("ratio_pct", rate / raw_rate.max(1e-9) * 100.0);
    // Per event the bridge took in from the Room (lost ones included: they were read, parsed
    // and fanned out before being dropped).
    line.put("bridge_cpu_us_per_1000_events", per_1000(cpu.cpu_ns, n));
    line.put(
        "process_cpu_us_per_1000_events",
        per_1000(process.as_nanos() as u64, n),
    );
    line.put(
        "broker_cpu_us_per_1000_events",
        per_1000(broker.as_nanos() as u64, received),
    );
    line.put(
        "raw_publisher_cpu_us_per_1000_msgs",
        per_1000(raw_cpu.cpu_ns, raw_received),
    );
    line.put(
        "raw_broker_cpu_us_per_1000_msgs",
        per_1000(raw_broker.as_nanos() as u64, raw_received),
    );
    line.put("lagged", lagged as f64);
    line.put("outbox_dropped", dropped as f64);
    line.put("payload_bytes", flood_payload_len as f64);
    line.print();
    lines.push(line);
}

async fn rooms(s: &Settings, rt: &Handle, lines: &mut Vec<Line>) {
    let mut line = Line::new("rooms");
    for &n in &s.rooms {
        let broker = Broker::start(s.broker_nodelay);
        let rss_before = rss_mb();
        let sims = match SimRoom::start_many(
            n,
            SimConfig {
                pin: Some(PIN.into()),
                ..SimConfig::default()
            },
        )
        .await
        {
            Ok(sims) => sims,
            Err(e) => {
                println!("rooms: cannot start {n} simulated rooms: {e}; skipped");
                continue;
            }
        };
        let rss_sims = rss_mb();
        let (_sub, mut rx) = connect(s.client(
            broker.port,
            "bench-availability",
            &["trueconf/+/availability"],
        ))
        .await;
        let entries: Vec<(String, u16)> = sims
            .iter()
            .enumerate()
            .map(|(i, sim)| (format!("room{}", i + 1), sim.http_port()))
            .collect();
        let cpu0 = Usage::of(BRIDGE_THREADS);
        let t0 = Instant::now();
        let running = start_bridge(rt, bridge_options(s, broker.port, &entries));
        let deadline = t0 + s.rooms_timeout;
        let mut online: HashMap<String, bool> = HashMap::new();
        let mut count = 0;
        let mut next_report = t0 + Duration::from_secs(5);
        while count < n {
            let now = Instant::now();
            if now >= deadline {
                break;
            }
            if now >= next_report {
                next_report += Duration::from_secs(5);
                let stats = running.bridge.link().stats();
                let links = entries
                    .iter()
                    .filter(|(id, _)| {
                        running
                            .bridge
                            .room(id)
                            .is_some_and(|c| c.link().borrow().is_online())
                    })
                    .count();
                println!(
                    "rooms: {n} rooms, {:>3.0} s: {count} online on MQTT, {links} Room links up, {} published, {} dropped by the outbox",
                    now.duration_since(t0).as_secs_f64(),
                    stats.published.load(std::sync::atomic::Ordering::Relaxed),
                    stats.dropped.load(std::sync::atomic::Ordering::Relaxed),
                );
            }
            let Some(m) = recv_until(&mut rx, deadline.min(next_report)).await else {
                continue;
            };
            let up = m.payload.as_ref() == b"online";
            let was = online.insert(m.topic, up).unwrap_or(false);
            match (was, up) {
                (false, true) => count += 1,
                (true, false) => count -= 1,
                _ => {}
            }
        }
        let elapsed = t0.elapsed();
        let cpu = Usage::of(BRIDGE_THREADS).since(cpu0);
        let links_online = entries
            .iter()
            .filter(|(id, _)| {
                running
                    .bridge
                    .room(id)
                    .is_some_and(|c| c.link().borrow().is_online())
            })
            .count();
        let published = running
            .bridge
            .link()
            .stats()
            .published
            .load(std::sync::atomic::Ordering::Relaxed);
        // Let the retained state and discovery settle before reading the memory.
        tokio::time::sleep(Duration::from_millis(500)).await;
        let rss_all = rss_mb();
        let k = format!("rooms{n}_");
        line.put(format!("{k}online"), count as f64);
        line.put(format!("{k}online_us"), elapsed.as_nanos() as f64 / 1000.0);
        line.put(format!("{k}links_online"), links_online as f64);
        line.put(format!("{k}published"), published as f64);
        line.put(
            format!("{k}outbox_dropped"),
            running
                .bridge
                .link()
                .stats()
                .dropped
                .load(std::sync::atomic::Ordering::Relaxed) as f64,
        );
        line.put(format!("{k}rss_mb"), rss_all);
        line.put(format!("{k}sim_rss_mb"), rss_sims);
        line.put(format!("{k}bridge_rss_delta_mb"), rss_all - rss_sims);
        line.put(format!("{k}startup_cpu_us"), cpu.cpu_ns as f64 / 1000.0);
        line.put(format!("{k}rss_before_mb"), rss_before);
        if count < n {
            println!(
                "rooms: only {count} of {n} rooms online after {:?}",
                s.rooms_timeout
            );
        }
        stop_bridge(rt, running).await;
        drop(sims);
        drop(broker);
        tokio::time::sleep(Duration::from_millis(200)).await;
    }
    line.print();
    lines.push(line);
}

async fn idle(s: &Settings, rt: &Handle, lines: &mut Vec<Line>) {
    let broker = Broker::start(s.broker_nodelay);
    let room = start_room().await;
    let running = start_bridge(
        rt,
        bridge_options(s, broker.port, &[(ROOM.into(), room.http_port())]),
    );
    wait_bridge_ready(&running, &[ROOM.into()], Duration::from_secs(20)).await;
    // Let startup (resync, discovery, retained state) finish.
    tokio::time::sleep(Duration::from_secs(2)).await;
    let seconds = s.idle_seconds.max(0.5);
    let bridge0 = Usage::of(BRIDGE_THREADS);
    let all0 = Usage::of("");
    let process0 = self_cpu();
    let broker_pid = broker.pid().to_string();
    let broker0 = process_cpu(&broker_pid);
    let t0 = Instant::now();
    tokio::time::sleep(Duration::from_secs_f64(seconds)).await;
    let wall = t0.elapsed().as_secs_f64();
    let bridge = Usage::of(BRIDGE_THREADS).since(bridge0);
    let all = Usage::of("").since(all0);
    let process = self_cpu().saturating_sub(process0);
    let broker_cpu = process_cpu(&broker_pid).saturating_sub(broker0);
    let mut line = Line::new("idle");
    line.put("seconds", (wall * 10.0).round() / 10.0);
    line.put("bridge_cpu_pct", bridge.cpu_ns as f64 / 1e9 / wall * 100.0);
    line.put("bridge_wakeups_per_s", bridge.voluntary as f64 / wall);
    line.put(
        "bridge_ctxt_switches_per_s",
        (bridge.voluntary + bridge.involuntary) as f64 / wall,
    );
    line.put("process_cpu_pct", all.cpu_ns as f64 / 1e9 / wall * 100.0);
    line.put("process_stat_cpu_pct", process.as_secs_f64() / wall * 100.0);
    line.put("process_wakeups_per_s", all.voluntary as f64 / wall);
    line.put(
        "process_ctxt_switches_per_s",
        (all.voluntary + all.involuntary) as f64 / wall,
    );
    line.put("broker_cpu_pct", broker_cpu.as_secs_f64() / wall * 100.0);
    line.print();
    lines.push(line);
    stop_bridge(rt, running).await;
    drop(room);
}

// ---------------------------------------------------------------------------------------------
// Main

fn loadavg() -> String {
    std::fs::read_to_string("/proc/loadavg")
        .map(|s| s.split_whitespace().take(3).collect::<Vec<_>>().join(" "))
        .unwrap_or_default()
}

fn print_tables(rows: &[LatencyRow], lines: &[Line]) {
    println!();
    println!("=== latency (µs; send → receive on the same monotonic clock) ===");
    println!(
        "{:<26} {:>8} {:>9} {:>6} {:>8} {:>8} {:>8} {:>8} {:>8}",
        "path", "rate/s", "achieved", "n", "p50", "p99", "p99.9", "max", "mean"
    );
    for row in rows {
        let rate = if row.rate > 0.0 {
            format!("{}", int(row.rate))
        } else {
            "serial".into()
        };
        let achieved = if row.achieved > 0.0 {
            format!("{:.0}", row.achieved)
        } else {
            "-".into()
        };
        println!(
            "{:<26} {:>8} {:>9} {:>6} {:>8.0} {:>8.0} {:>8.0} {:>8.0} {:>8.0}",
            row.path,
            rate,
            achieved,
            format!("{}/{}", row.summary.n, row.sent),
            row.summary.p50_us,
            row.summary.p99_us,
            row.summary.p999_us,
            row.summary.max_us,
            row.summary.mean_us
        );
    }
    for line in lines {
        let v = |k: &str| line.get(k).map_or("-".into(), |v| format!("{v}"));
        match line.scenario {
            "throughput" => {
                println!();
                println!("=== throughput (burst of {} events) ===", v("events"));
                println!(
                    "{:<26} {:>10} {:>12} {:>6} {:>22}",
                    "path", "received", "msgs/s", "lost", "CPU µs / 1000 msgs"
                );
                println!(
                    "{:<26} {:>10} {:>12} {:>6} {:>22}",
                    "raw mosquitto",
                    v("raw_received"),
                    v("raw_msgs_per_s"),
                    "-",
                    format!("{} (publisher)", v("raw_publisher_cpu_us_per_1000_msgs"))
                );
                println!(
                    "{:<26} {:>10} {:>12} {:>6} {:>22}",
                    "bridge",
                    v("received"),
                    v("events_per_s"),
                    v("lost"),
                    format!("{} (bridge)", v("bridge_cpu_us_per_1000_events"))
                );
                println!(
                    "bridge/raw: {} %; whole process (bridge + simulator + subscriber): {} µs CPU per 1000 events; mosquitto: {} µs",
                    v("ratio_pct"),
                    v("process_cpu_us_per_1000_events"),
                    v("broker_cpu_us_per_1000_events")
                );
            }
            "rooms" => {
                println!();
                println!(
                    "=== rooms (RSS is the whole process: bridge + simulated Rooms + harness) ==="
                );
                println!(
                    "{:>6} {:>10} {:>9} {:>15} {:>9} {:>9} {:>9} {:>10} {:>9}",
                    "rooms",
                    "online",
                    "links up",
                    "time to online",
                    "RSS MiB",
                    "sim MiB",
                    "Δ MiB",
                    "CPU ms",
                    "dropped"
                );
                let mut counts: Vec<&str> = line
                    .pairs
                    .iter()
                    .filter_map(|(k, _)| k.strip_prefix("rooms")?.strip_suffix("_online_us"))
                    .collect();
                counts.dedup();
                for n in counts {
                    let g = |suffix: &str| line.get(&format!("rooms{n}_{suffix}")).unwrap_or(0.0);
                    let online = format!("{}/{n}", g("online"));
                    let time = if g("online") as usize == n.parse::<usize>().unwrap_or(0) {
                        format!("{:.0} ms", g("online_us") / 1000.0)
                    } else {
                        format!("> {:.0} ms", g("online_us") / 1000.0)
                    };
                    println!(
                        "{:>6} {:>10} {:>9} {:>15} {:>9.1} {:>9.1} {:>9.1} {:>10.0} {:>9}",
                        n,
                        online,
                        g("links_online"),
                        time,
                        g("rss_mb"),
                        g("sim_rss_mb"),
                        g("bridge_rss_delta_mb"),
                        g("startup_cpu_us") / 1000.0,
                        g("outbox_dropped")
                    );
                }
                println!(
                    "(online: availability `online` seen on MQTT; links up: the bridge's Room \
                     clients; sim MiB: RSS with the simulated Rooms started, before the bridge; \
                     Δ: the rest, which includes the simulator's per-connection buffers; CPU: \
                     bridge threads until all online; dropped: messages the bridge's outbox \
                     refused)"
                );
            }
            "idle" => {
                println!();
                println!("=== idle (1 Room, {} s) ===", v("seconds"));
                println!(
                    "bridge threads: {} % CPU, {} wakeups/s, {} context switches/s",
                    v("bridge_cpu_pct"),
                    v("bridge_wakeups_per_s"),
                    v("bridge_ctxt_switches_per_s")
                );
                println!(
                    "whole process (bridge + simulator): {} % CPU, {} wakeups/s, {} context switches/s; mosquitto {} %",
                    v("process_cpu_pct"),
                    v("process_wakeups_per_s"),
                    v("process_ctxt_switches_per_s"),
                    v("broker_cpu_pct")
                );
            }
            _ => {}
        }
    }
    println!();
    println!(
        "reference (issue): floor event latency p50/p99 200/410 µs; Python bridge 410/800 µs; \
         Node-RED 610/2910 µs; command round trip Python 50400/51100 µs; 20k burst: Python \
         19500/s, Node-RED 7400/s"
    );
}

fn output_path() -> std::path::PathBuf {
    let target = std::env::var_os("CARGO_TARGET_DIR")
        .map(std::path::PathBuf::from)
        .unwrap_or_else(|| std::path::Path::new(env!("CARGO_MANIFEST_DIR")).join("target"));
    target.join("bench").join("bridge.json")
}

fn main() {
    let settings = Settings::from_env();
    let (cpus, model) = common::machine();
    let load_start = loadavg();
    println!("bridge benchmark — {cpus} CPUs, {model}; load average {load_start}");
    println!(
        "scenarios: {}; QoS {:?}; TCP_NODELAY: bench clients {}, mosquitto {}, bridge: rumqttc default",
        settings.scenarios.join(","),
        settings.qos,
        settings.nodelay,
        settings.broker_nodelay
    );
    let _ = now_ns();
    let started = Instant::now();

    let bridge_rt = tokio::runtime::Builder::new_multi_thread()
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

    let (lines, rows) = harness_rt.block_on(async move {
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
                    latency_scenarios(s, &rt, &shared, &mut lines, &mut rows).await;
                }
                if s.wants("command_latency") {
                    command_latency(s, &rt, &shared, &mut lines, &mut rows).await;
                }
                if s.wants("throughput") {
                    throughput(s, &rt, &shared, &mut lines).await;
                }
                stop_bridge(&rt, shared.running).await;
            }
            if s.wants("idle") {
                idle(s, &rt, &mut lines).await;
            }
            if s.wants("rooms") {
                rooms(s, &rt, &mut lines).await;
            }
            (lines, rows)
        })
        .await
        .expect("benchmark task")
    });

    print_tables(&rows, &lines);
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
    let path = output_path();
    if let Some(dir) = path.parent() {
        let _ = std::fs::create_dir_all(dir);
    }
    match std::fs::write(&path, serde_json::to_string_pretty(&report).unwrap()) {
        Ok(()) => println!("wrote {}", path.display()),
        Err(e) => println!("cannot write {}: {e}", path.display()),
    }
    harness_rt.shutdown_timeout(Duration::from_secs(2));
    bridge_rt.shutdown_timeout(Duration::from_secs(2));
}
