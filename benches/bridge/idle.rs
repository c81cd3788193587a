//! `idle`: one connected, idle Room; CPU and wakeups of the bridge's threads.

use std::time::{Duration, Instant};

use tokio::runtime::Handle;

use crate::common::{Broker, Usage, process_cpu, self_cpu};
use crate::report::Line;
use crate::under_test::{bridge_options, start_bridge, start_room, stop_bridge, wait_bridge_ready};
use crate::{BRIDGE_THREADS, ROOM, Settings};

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
    line.print();
    lines.push(line);
    stop_bridge(rt, running).await;
    drop(room);
}
