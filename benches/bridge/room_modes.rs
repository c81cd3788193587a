//! `room_modes`: the command round trip against both behaviours of the simulated Room, each
//! next to the floor measured in the same run.
//!
//! The simulator by default behaves like a Room that tunes nothing (Nagle on, every frame
//! written as it comes, header and payload in two writes); `tuned` is the latency-minded server
//! (`TCP_NODELAY`, batched writes). A client that leaves the peer's Nagle waiting for its delayed
//! ACK pays ~40 ms per command against the first and nothing against the second, so the two
//! lines side by side show whether the bridge depends on the Room's socket options.
//!
//! For each mode, with a fresh Room and bridge on the scenario's broker:
//! - `room_link_*`: the Rust Room client alone (no MQTT), `setMicMute` one at a time;
//! - `command_*`: `set/mic_muted` published → `response/mic_muted` received through the
//!   bridge, one at a time, alternating with `floor_rtt_*`: publish → an echo client →
//!   publish back through the same broker.
//!
//! Lines: `command_untuned_room …` and `command_tuned_room …`.

use std::time::{Duration, Instant};

use serde_json::{Value, json};
use tokio::runtime::Handle;
use trueconf2mqtt::room::{RoomClient, RoomOptions};
use trueconf2mqtt::simulator::{SimConfig, SimRoom};

use crate::common::{Broker, ClientOptions, Summary, connect, drain, recv_until};
use crate::report::{Line, put_summary};
use crate::under_test::{bridge_options, start_bridge, stop_bridge, wait_bridge_ready};
use crate::{PIN, ROOM, Settings};

/// Round trips sent first and not counted, per measurement.
const WARMUP: u64 = 20;
/// The longest a single round trip is waited for before it counts as lost.
const ROUND_TRIP_LIMIT: Duration = Duration::from_secs(6);

pub async fn room_modes(s: &Settings, rt: &Handle, lines: &mut Vec<Line>) {
    let broker = Broker::start(s.broker_nodelay);
    let port = broker.port;
    let echo = start_echo(s, rt, port).await;
    for (name, tuned) in [
        ("command_untuned_room", false),
        ("command_tuned_room", true),
    ] {
        let room = SimRoom::start(SimConfig {
            pin: Some(PIN.into()),
            tuned,
            ..SimConfig::default()
        })
        .await
        .expect("simulator starts");
        let link = room_link(s, &room).await;
        let running = start_bridge(
            rt,
            bridge_options(s, port, &[(ROOM.into(), room.http_port())]),
        );
        wait_bridge_ready(&running, &[ROOM.into()], Duration::from_secs(20)).await;
        tokio::time::sleep(Duration::from_millis(300)).await;
        let (floor, command, failed, lost) = commands(s, port).await;
        stop_bridge(rt, running).await;

        let mut line = Line::new(name);
        line.put("tuned", f64::from(u8::from(tuned)));
        line.put("commands", s.commands as f64);
        line.put("failed", failed as f64);
        line.put("lost", lost as f64);
        put_summary(&mut line, "floor_rtt_", &floor);
        put_summary(&mut line, "command_", &command);
        line.put("added_p50_us", command.p50_us - floor.p50_us);
        line.put("added_p99_us", command.p99_us - floor.p99_us);
        put_summary(&mut line, "room_link_", &link);
        line.print();
        lines.push(line);
    }
    echo.abort();
}

/// An echo client on the bridge's runtime: every `bench/echo/req` goes straight back on
/// `bench/echo/resp`.
async fn start_echo(s: &Settings, rt: &Handle, port: u16) -> tokio::task::JoinHandle<()> {
    let (qos, nodelay) = (s.qos, s.nodelay);
    let (ready_tx, ready_rx) = tokio::sync::oneshot::channel();
    let task = rt.spawn(async move {
        let (client, mut rx) = connect(ClientOptions {
            qos,
            nodelay,
            ..ClientOptions::new(port, "bench-modes-echo", &["bench/echo/req"])
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
    let _ = ready_rx.await;
    task
}

/// The Room client alone: `setMicMute` round trips, one at a time.
async fn room_link(s: &Settings, room: &SimRoom) -> Summary {
    let client = RoomClient::connect(RoomOptions::new("127.0.0.1", room.http_port()).with_pin(PIN))
        .await
        .expect("the Room client connects");
    let mut samples = Vec::with_capacity(s.commands as usize);
    for i in 0..(s.commands + WARMUP) {
        let t0 = Instant::now();
        if client.set_mic_mute(i % 2 == 0).await.is_ok() && i >= WARMUP {
            samples.push(t0.elapsed().as_nanos() as u64);
        }
    }
    client.close().await;
    Summary::of_ns(&mut samples)
}

/// Floor and bridge round trips, alternating: (floor, command, failed, lost).
async fn commands(s: &Settings, port: u16) -> (Summary, Summary, u64, u64) {
    let response = format!("trueconf/{ROOM}/response/mic_muted");
    let set = format!("trueconf/{ROOM}/set/mic_muted");
    let (prober, mut rx) = connect(s.client(
        port,
        "bench-modes-prober",
        &[response.as_str(), "bench/echo/resp"],
    ))
    .await;
    let mut floor = Vec::with_capacity(s.commands as usize);
    let mut command = Vec::with_capacity(s.commands as usize);
    let (mut failed, mut lost) = (0u64, 0u64);
    for i in 0..(s.commands + WARMUP) {
        let payload = if i % 2 == 0 { "ON" } else { "OFF" };
        for (topic, reply, samples) in [
            ("bench/echo/req", "bench/echo/resp", &mut floor),
            (set.as_str(), response.as_str(), &mut command),
        ] {
            drain(&mut rx);
            let t0 = Instant::now();
            prober
                .publish(topic, s.qos, false, payload)
                .await
                .expect("publish");
            let deadline = t0 + ROUND_TRIP_LIMIT;
            loop {
                match recv_until(&mut rx, deadline).await {
                    Some(m) if m.topic == reply => {
                        if i >= WARMUP {
                            samples.push(m.at.duration_since(t0).as_nanos() as u64);
                            let ok = topic != set
                                || serde_json::from_slice::<Value>(&m.payload)
                                    .ok()
                                    .and_then(|v| v.get("status").cloned())
                                    == Some(json!("ok"));
                            failed += u64::from(!ok);
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
    let _ = prober.disconnect().await;
    (
        Summary::of_ns(&mut floor),
        Summary::of_ns(&mut command),
        failed,
        lost,
    )
}
