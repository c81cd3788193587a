//! `python_client`: the Rust `RoomClient` alone and TrueConf's official Python client
//! (python-trueconf-room, from PyPI), each in a process of its own, one after the other against
//! the same simulated Room (on this process's harness runtime).
//!
//! Both run the same workload and report the same figures as one JSON line: time from opening
//! the session until authenticated, the first response, requests one at a time (requests/s,
//! p50/p99), then RSS (`VmRSS`), CPU and wakeups over a few idle seconds. The Rust side is this
//! benchmark binary started again with [`CHILD_ENV`] set; the Python side is
//! `benches/python_client.py`, which also times the same requests written straight to the
//! WebSocket, past the library's 50 ms send queue.
//!
//! The Python client comes from a virtualenv: `BENCH_PYTHON` if set, else `target/interop-venv`
//! (made by `scripts/test`) or `target/bench-venv` if one has the library, else
//! `target/bench-venv` is made with `python3 -m venv` and `pip install python-trueconf-room`.
//! Without network or python3 the Python half is skipped with a line saying why.

use std::path::{Path, PathBuf};
use std::time::{Duration, Instant};

use serde_json::{Map, Value, json};
use tokio::process::Command;
use trueconf2mqtt::room::{RoomClient, RoomOptions};

use crate::common::{Summary, Usage, rss_mb};
use crate::plot::{self, Panel, Series};
use crate::report::Line;
use crate::under_test::start_room;
use crate::{PIN, Settings};

/// Set (to the Room's HTTP port) in the environment of the Rust client's process.
pub const CHILD_ENV: &str = "T2M_BENCH_ROOM_CLIENT";

/// Figures both clients report, copied into the summary line under their prefix.
const KEYS: [&str; 11] = [
    "connect_us",
    "first_response_us",
    "commands",
    "errors",
    "commands_per_s",
    "p50_us",
    "p99_us",
    "max_us",
    "idle_rss_mb",
    "idle_cpu_pct",
    "idle_wakeups_per_s",
];

// ---------------------------------------------------------------------------------------------
// The Rust client's process

/// Entry point of the child process: runs the workload on a runtime like the daemon's and
/// prints the JSON line.
pub fn child(port: &str) {
    let port: u16 = port.parse().expect("the Room's HTTP port");
    let settings = Settings::from_env();
    let rt = tokio::runtime::Builder::new_multi_thread()
        .thread_name("room-client")
        .enable_all()
        .build()
        .expect("client runtime");
    let result = rt
        .block_on(rt.spawn(rust_client(
            port,
            settings.client_method.clone(),
            settings.client_commands,
            settings.client_idle_seconds,
        )))
        .expect("client task");
    println!("{result}");
}

async fn rust_client(port: u16, method: String, commands: u64, idle_seconds: f64) -> Value {
    let started = Instant::now();
    let client = RoomClient::connect(RoomOptions::new("127.0.0.1", port).with_pin(PIN))
        .await
        .expect("the Rust client connects");
    let connect = started.elapsed();
    let one = || async {
        let sent = Instant::now();
        match client.request_unchecked(&method, Map::new()).await {
            Ok(reply) if reply.result => Some(sent.elapsed().as_nanos() as u64),
            _ => None,
        }
    };
    let first = one().await.unwrap_or(0);
    let mut samples = Vec::with_capacity(commands as usize);
    let mut errors = 0u64;
    let run = Instant::now();
    for _ in 0..commands {
        match one().await {
            Some(ns) => samples.push(ns),
            None => errors += 1,
        }
    }
    let per_s = samples.len() as f64 / run.elapsed().as_secs_f64().max(1e-9);
    let summary = Summary::of_ns(&mut samples);

    tokio::time::sleep(Duration::from_millis(500)).await;
    let usage0 = Usage::of("");
    let idle = Instant::now();
    tokio::time::sleep(Duration::from_secs_f64(idle_seconds)).await;
    let usage = Usage::of("").since(usage0);
    let wall = idle.elapsed().as_secs_f64();
    let rss = rss_mb();
    client.close().await;
    json!({
        "client": format!("trueconf2mqtt RoomClient {}", env!("CARGO_PKG_VERSION")),
        "connect_us": connect.as_nanos() as f64 / 1000.0,
        "first_response_us": first as f64 / 1000.0,
        "commands": samples.len(),
        "errors": errors,
        "commands_per_s": per_s,
        "p50_us": summary.p50_us,
        "p99_us": summary.p99_us,
        "max_us": summary.max_us,
        "samples_ns": samples,
        "idle_rss_mb": rss,
        "idle_cpu_pct": usage.cpu_ns as f64 / 1e9 / wall * 100.0,
        "idle_wakeups_per_s": usage.voluntary as f64 / wall,
    })
}

// ---------------------------------------------------------------------------------------------
// The Python virtualenv

/// Whether `python` can import `trueconf_room` (checked without importing it: the import
/// writes a log file into the working directory).
async fn has_library(python: &Path) -> bool {
    Command::new(python)
        .args([
            "-c",
            "import importlib.util, sys; sys.exit(importlib.util.find_spec('trueconf_room') is None)",
        ])
        .output()
        .await
        .is_ok_and(|o| o.status.success())
}

/// Why a command failed, from what it wrote: a panic's message, or the last line.
fn last_line(output: &std::process::Output) -> String {
    let text = String::from_utf8_lossy(&output.stderr);
    let text = if text.trim().is_empty() {
        String::from_utf8_lossy(&output.stdout)
    } else {
        text
    };
    let lines: Vec<&str> = text
        .lines()
        .map(str::trim)
        .filter(|l| !l.is_empty())
        .collect();
    if let Some(at) = lines.iter().position(|l| l.contains("panicked at")) {
        return lines[at..lines.len().min(at + 2)].join(" ");
    }
    lines.last().copied().unwrap_or("no output").to_owned()
}

/// A Python interpreter with python-trueconf-room, making `target/bench-venv` if needed.
async fn python_with_library(s: &Settings) -> Result<PathBuf, String> {
    if let Some(python) = &s.python {
        return if has_library(python).await {
            Ok(python.clone())
        } else {
            Err(format!(
                "BENCH_PYTHON={} cannot import trueconf_room",
                python.display()
            ))
        };
    }
    let target = crate::target_dir();
    for venv in ["interop-venv", "bench-venv"] {
        let python = target.join(venv).join("bin").join("python");
        if python.exists() && has_library(&python).await {
            return Ok(python);
        }
    }
    let venv = target.join("bench-venv");
    println!(
        "python_client: creating {} with python-trueconf-room from PyPI",
        venv.display()
    );
    let made = Command::new("python3")
        .args(["-m", "venv"])
        .arg(&venv)
        .output()
        .await
        .map_err(|e| format!("cannot run python3: {e}"))?;
    if !made.status.success() {
        return Err(format!("python3 -m venv failed: {}", last_line(&made)));
    }
    let pip = venv.join("bin").join("pip");
    let installed = Command::new(&pip)
        .args([
            "install",
            "-q",
            "--disable-pip-version-check",
            "--timeout",
            "15",
            "--retries",
            "1",
            "python-trueconf-room",
        ])
        .output()
        .await
        .map_err(|e| format!("cannot run {}: {e}", pip.display()))?;
    if !installed.status.success() {
        return Err(format!(
            "pip install python-trueconf-room failed (no network?): {}",
            last_line(&installed)
        ));
    }
    let python = venv.join("bin").join("python");
    if has_library(&python).await {
        Ok(python)
    } else {
        Err(format!("{} cannot import trueconf_room", python.display()))
    }
}

// ---------------------------------------------------------------------------------------------
// The scenario

/// Runs a client process until it prints its JSON line (or `limit` passes).
async fn run_client(mut command: Command, limit: Duration) -> Result<Value, String> {
    command
        .stdin(std::process::Stdio::null())
        .stdout(std::process::Stdio::piped())
        .stderr(std::process::Stdio::piped())
        .kill_on_drop(true);
    let child = command.spawn().map_err(|e| format!("cannot start: {e}"))?;
    let output = tokio::time::timeout(limit, child.wait_with_output())
        .await
        .map_err(|_| format!("no result after {limit:?}"))?
        .map_err(|e| e.to_string())?;
    let stdout = String::from_utf8_lossy(&output.stdout);
    match stdout
        .lines()
        .rev()
        .find_map(|l| serde_json::from_str(l).ok())
    {
        Some(value @ Value::Object(_)) if output.status.success() => Ok(value),
        _ => Err(format!("{}: {}", output.status, last_line(&output))),
    }
}

fn samples_of(result: &Value, key: &str) -> Vec<u64> {
    result
        .get(key)
        .and_then(Value::as_array)
        .map(|a| a.iter().filter_map(Value::as_u64).collect())
        .unwrap_or_default()
}

fn put_figures(line: &mut Line, prefix: &str, result: &Value) {
    for key in KEYS {
        if let Some(value) = result.get(key).and_then(Value::as_f64) {
            line.put(format!("{prefix}{key}"), value);
        }
    }
}

/// The scenario; returns the plot panel of the request latencies.
pub async fn python_client(s: &Settings, lines: &mut Vec<Line>) -> Option<Panel> {
    let python = python_with_library(s).await;
    let room = start_room().await;
    let port = room.http_port().to_string();
    let mut line = Line::new("python_client");
    let mut panel = Panel {
        title: format!("Room client: {} one at a time", s.client_method),
        series: Vec::new(),
    };

    let mut rust = Command::new(std::env::current_exe().expect("this benchmark's path"));
    rust.env(CHILD_ENV, &port);
    let limit = Duration::from_secs(60) + Duration::from_millis(5 * s.client_commands);
    match run_client(rust, limit).await {
        Ok(result) => {
            put_figures(&mut line, "rust_", &result);
            panel.series.push(Series {
                label: "Rust RoomClient".into(),
                samples: samples_of(&result, "samples_ns"),
                color: plot::RUST,
            });
        }
        Err(e) => println!("python_client: the Rust client failed: {e}"),
    }

    match python {
        Ok(python) => {
            let script = Path::new(env!("CARGO_MANIFEST_DIR")).join("benches/python_client.py");
            let mut py = Command::new(&python);
            py.arg(script)
                .args(["--port", &port, "--pin", PIN, "--method", &s.client_method])
                .args(["--queued", &s.py_commands.to_string()])
                .args(["--direct", &s.client_commands.to_string()])
                .args(["--idle", &s.client_idle_seconds.to_string()]);
            let limit = Duration::from_secs(60)
                + Duration::from_millis(200 * s.py_commands + 20 * s.client_commands);
            match run_client(py, limit).await {
                Ok(result) => {
                    put_figures(&mut line, "py_", &result);
                    for key in ["commands", "commands_per_s", "p50_us", "p99_us"] {
                        if let Some(v) = result.get(format!("direct_{key}")).and_then(Value::as_f64)
                        {
                            line.put(format!("py_direct_{key}"), v);
                        }
                    }
                    let version = result.get("client").and_then(Value::as_str).unwrap_or("");
                    println!("python_client: {version} from {}", python.display());
                    panel.series.push(Series {
                        label: "Python, straight to the WebSocket".into(),
                        samples: samples_of(&result, "direct_samples_ns"),
                        color: plot::PYTHON_DIRECT,
                    });
                    panel.series.push(Series {
                        label: "Python, library API (50 ms queue)".into(),
                        samples: samples_of(&result, "samples_ns"),
                        color: plot::PYTHON,
                    });
                }
                Err(e) => {
                    println!("python_client: skipped: the official Python client failed: {e}")
                }
            }
        }
        Err(reason) => println!("python_client: skipped: {reason}"),
    }
    drop(room);
    line.print();
    lines.push(line);
    panel.series.retain(|series| !series.samples.is_empty());
    (!panel.series.is_empty()).then_some(panel)
}
