//! `idle`: one connected, idle Room; CPU and wakeups of the bridge's threads; then the daemon
//! itself (`trueconf2mqtt run`, its own process) on MQTT 3.1.1 and on MQTT 5 for its idle RSS,
//! next to mosquitto's RSS as the floor.

use std::time::{Duration, Instant};

use tokio::runtime::Handle;

use trueconf2mqtt::simulator::SimRoom;

use crate::common::{Broker, Usage, connect, process_cpu, recv_until, self_cpu};
use crate::report::Line;
use crate::under_test::{bridge_options, start_bridge, start_room, stop_bridge, wait_bridge_ready};
use crate::{BRIDGE_THREADS, PIN, ROOM, Settings};

pub async fn idle(s: &Settings, rt: &Handle, lines: &mut Vec<Line>) {
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
    stop_bridge(rt, running).await;
    for (version, key) in [("3.1.1", "v311"), ("5", "v5")] {
        match daemon_rss(s, &broker, &room, version).await {
            Ok((rss, hwm)) => {
                line.put(format!("daemon_{key}_rss_mb"), rss);
                line.put(format!("daemon_{key}_hwm_mb"), hwm);
            }
            Err(e) => println!("idle: daemon on MQTT {version}: skipped: {e}"),
        }
    }
    line.put("broker_rss_mb", rss_of(&broker_pid).0);
    line.print();
    lines.push(line);
    drop(room);
}

/// The daemon binary: `BENCH_DAEMON` (another build, for before/after runs) or this package's.
fn daemon_binary() -> std::path::PathBuf {
    std::env::var_os("BENCH_DAEMON")
        .map(Into::into)
        .unwrap_or_else(|| env!("CARGO_BIN_EXE_trueconf2mqtt").into())
}

/// `VmRSS` and `VmHWM` (peak) of process `pid`, in MiB.
fn rss_of(pid: &str) -> (f64, f64) {
    let status = std::fs::read_to_string(format!("/proc/{pid}/status")).unwrap_or_default();
    let field = |name: &str| {
        status
            .lines()
            .find_map(|l| l.strip_prefix(name))
            .and_then(|v| v.trim().trim_end_matches("kB").trim().parse::<f64>().ok())
            .map_or(0.0, |kb| kb / 1024.0)
    };
    (field("VmRSS:"), field("VmHWM:"))
}

/// Runs `trueconf2mqtt run` with a configuration of defaults (one Room, MQTT `version`) until
/// the Room is online on MQTT, lets it settle and idle like the bridge above, and returns its
/// RSS and peak RSS in MiB.
async fn daemon_rss(
    s: &Settings,
    broker: &Broker,
    room: &SimRoom,
    version: &str,
) -> Result<(f64, f64), String> {
    let dir = tempfile::tempdir().map_err(|e| e.to_string())?;
    let base = format!("idle{}", version.replace('.', ""));
    let pin_file = dir.path().join("pin");
    std::fs::write(&pin_file, format!("{PIN}\n")).map_err(|e| e.to_string())?;
    let config = dir.path().join("config.toml");
    std::fs::write(
        &config,
        format!(
            "[mqtt]\nhost = \"127.0.0.1\"\nport = {port}\nclient_id = \"bench-{base}-{id}\"\n\
             base_topic = \"{base}\"\nversion = \"{version}\"\n\
             [[rooms]]\nid = \"{ROOM}\"\nname = \"{ROOM}\"\nhost = \"127.0.0.1\"\n\
             port = {room_port}\npin_file = \"{pin}\"\n",
            port = broker.port,
            id = fastrand::u32(..),
            room_port = room.http_port(),
            pin = pin_file.display(),
        ),
    )
    .map_err(|e| e.to_string())?;
    let availability = format!("{base}/{ROOM}/availability");
    let (_probe, mut rx) =
        connect(s.client(broker.port, "bench-idle-probe", &[&availability])).await;
    let mut child = tokio::process::Command::new(daemon_binary())
        .args(["run", "--config"])
        .arg(&config)
        .env("RUST_LOG", "warn")
        .stdout(std::process::Stdio::null())
        .stderr(std::process::Stdio::null())
        .kill_on_drop(true)
        .spawn()
        .map_err(|e| format!("cannot start {}: {e}", daemon_binary().display()))?;
    let pid = child.id().map(|p| p.to_string()).unwrap_or_default();
    let deadline = Instant::now() + Duration::from_secs(20);
    loop {
        match recv_until(&mut rx, deadline).await {
            Some(m) if m.payload.as_ref() == b"online" => break,
            Some(_) => {}
            None => {
                let _ = child.kill().await;
                return Err("the Room did not come online within 20 s".into());
            }
        }
    }
    tokio::time::sleep(Duration::from_secs(2) + Duration::from_secs_f64(s.idle_seconds.max(0.5)))
        .await;
    let rss = rss_of(&pid);
    let _ = child.kill().await;
    Ok(rss)
}
