//! `throughput`: a burst of events through the bridge against the same burst published raw.

use std::time::{Duration, Instant};

use serde_json::{Value, json};
use tokio::runtime::Handle;

use crate::common::{
    ClientOptions, Received, Usage, connect, drain, process_cpu, recv_until, self_cpu,
};
use crate::report::Line;
use crate::under_test::Shared;
use crate::{BRIDGE_THREADS, ROOM, Settings};

/// The simulator's flood event (`SimRoom::flood_events`).
pub fn flood_frame(i: u64) -> Value {
    json!({"method": "event", "event": "myEvent", "data": format!("flood-{i}")})
}

pub async fn throughput(s: &Settings, rt: &Handle, shared: &Shared, lines: &mut Vec<Line>) {
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
    line.put("outbox_dropped", dropped as f64);
    line.put("payload_bytes", flood_payload_len as f64);
    line.print();
    lines.push(line);
}
