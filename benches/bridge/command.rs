//! `command_latency`: `set/mic_muted` → `response/mic_muted`, one at a time, interleaved with
//! the floor round trip through an echo client.

use std::time::{Duration, Instant};

use serde_json::{Value, json};
use tokio::runtime::Handle;

use crate::common::{ClientOptions, Summary, connect, drain, recv_until};
use crate::report::{LatencyRow, Line};
use crate::under_test::Shared;
use crate::{ROOM, Settings};

pub async fn command_latency(
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
    let mut floor_samples = floor;
    let mut bridge_samples = bridge;
    let floor = Summary::of_ns(&mut floor_samples);
    let bridge = Summary::of_ns(&mut bridge_samples);
    rows.push(LatencyRow {
        path: "floor round trip (echo)",
        rate: 0.0,
        achieved: 0.0,
        sent: n,
        summary: floor,
        samples: floor_samples,
    });
    rows.push(LatencyRow {
        path: "command via bridge",
        rate: 0.0,
        achieved: 0.0,
        sent: n,
        summary: bridge,
        samples: bridge_samples,
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
