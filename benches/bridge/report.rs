//! Result lines (`<scenario> key=value …`, also the JSON report) and the closing tables.

use serde_json::{Map, Value, json};

use crate::common::{Summary, int};

/// One scenario's `key=value` pairs, in print order.
pub struct Line {
    pub scenario: &'static str,
    pub pairs: Vec<(String, Value)>,
}

impl Line {
    pub fn new(scenario: &'static str) -> Line {
        Line {
            scenario,
            pairs: Vec::new(),
        }
    }

    /// Integers for counts and microseconds, one decimal for everything else.
    pub fn put(&mut self, key: impl Into<String>, value: f64) {
        let key = key.into();
        let tenths = (value * 10.0).round() / 10.0;
        let value = if key.ends_with("_us") || tenths.fract() == 0.0 || value.abs() >= 1000.0 {
            json!(int(value))
        } else {
            json!(tenths)
        };
        self.pairs.push((key, value));
    }

    pub fn print(&self) {
        let body: Vec<String> = self.pairs.iter().map(|(k, v)| format!("{k}={v}")).collect();
        println!("{} {}", self.scenario, body.join(" "));
    }

    pub fn get(&self, key: &str) -> Option<f64> {
        self.pairs
            .iter()
            .find(|(k, _)| k == key)
            .and_then(|(_, v)| v.as_f64())
    }

    pub fn to_json(&self) -> Value {
        Value::Object(self.pairs.iter().cloned().collect::<Map<String, Value>>())
    }
}

pub fn put_summary(line: &mut Line, prefix: &str, s: &Summary) {
    line.put(format!("{prefix}p50_us"), s.p50_us);
    line.put(format!("{prefix}p99_us"), s.p99_us);
    line.put(format!("{prefix}p999_us"), s.p999_us);
    line.put(format!("{prefix}max_us"), s.max_us);
}

/// Floor and bridge latency at each rate.
pub struct LatencyRow {
    pub path: &'static str,
    pub rate: f64,
    pub achieved: f64,
    pub sent: u64,
    pub summary: Summary,
    /// Every latency measured, in nanoseconds, sorted (for the plot).
    pub samples: Vec<u64>,
}

pub fn print_tables(rows: &[LatencyRow], lines: &[Line]) {
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
                    "{:>6} {:>10} {:>9} {:>15} {:>9} {:>9} {:>9} {:>10} {:>9} {:>16}",
                    "rooms",
                    "online",
                    "links up",
                    "time to online",
                    "RSS MiB",
                    "sim MiB",
                    "Δ MiB",
                    "CPU ms",
                    "dropped",
                    "broker restart"
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
                    let restart = format!(
                        "{}{:.0} ms",
                        if g("republished") < g("online") {
                            "> "
                        } else {
                            ""
                        },
                        g("republish_us") / 1000.0
                    );
                    println!(
                        "{:>6} {:>10} {:>9} {:>15} {:>9.1} {:>9.1} {:>9.1} {:>10.0} {:>9} {:>16}",
                        n,
                        online,
                        g("links_online"),
                        time,
                        g("rss_mb"),
                        g("sim_rss_mb"),
                        g("bridge_rss_delta_mb"),
                        g("startup_cpu_us") / 1000.0,
                        g("outbox_dropped"),
                        restart
                    );
                }
                println!(
                    "(online: availability `online` seen on MQTT; links up: the bridge's Room \
                     clients; sim MiB: RSS with the simulated Rooms started, before the bridge; \
                     Δ: the rest, which includes the simulator's per-connection buffers; CPU: \
                     bridge threads until all online; dropped: messages the bridge's outbox \
                     refused; broker restart: from a fresh broker accepting connections until \
                     every availability is republished, reconnect backoff included)"
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
                println!(
                    "daemon (`trueconf2mqtt run`, its own process) RSS / peak: MQTT 3.1.1 {} / {} MiB, MQTT 5 {} / {} MiB; floor (mosquitto) {} MiB",
                    v("daemon_v311_rss_mb"),
                    v("daemon_v311_hwm_mb"),
                    v("daemon_v5_rss_mb"),
                    v("daemon_v5_hwm_mb"),
                    v("broker_rss_mb")
                );
            }
            "python_client" => {
                println!();
                println!(
                    "=== Room clients, each in its own process, one request at a time against \
                     the same simulator ==="
                );
                println!(
                    "{:<36} {:>10} {:>11} {:>9} {:>10} {:>9} {:>9} {:>8} {:>6} {:>9}",
                    "client",
                    "connect µs",
                    "1st resp µs",
                    "requests",
                    "req/s",
                    "p50 µs",
                    "p99 µs",
                    "idle MiB",
                    "CPU %",
                    "wakeups/s"
                );
                let row = |label: &str, p: &str, idle: &str| {
                    if line.get(&format!("{p}commands")).is_none() {
                        return;
                    }
                    println!(
                        "{:<36} {:>10} {:>11} {:>9} {:>10} {:>9} {:>9} {:>8} {:>6} {:>9}",
                        label,
                        v(&format!("{p}connect_us")),
                        v(&format!("{p}first_response_us")),
                        v(&format!("{p}commands")),
                        v(&format!("{p}commands_per_s")),
                        v(&format!("{p}p50_us")),
                        v(&format!("{p}p99_us")),
                        v(&format!("{idle}idle_rss_mb")),
                        v(&format!("{idle}idle_cpu_pct")),
                        v(&format!("{idle}idle_wakeups_per_s")),
                    );
                };
                row("Rust RoomClient", "rust_", "rust_");
                row("official Python, library API", "py_", "py_");
                row("official Python, straight to socket", "py_direct_", "-");
                println!(
                    "(library API: room.command()/room.methods.*, sent by a thread that takes one \
                     command off a queue every 50 ms; straight to socket: the library's private \
                     __send_to_websocket, same process; idle: RSS, CPU and wakeups of the whole \
                     client process)"
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
