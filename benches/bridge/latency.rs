//! `floor_latency` and `event_latency`: paced stamped messages, raw through mosquitto and as
//! Room events through the bridge.

use std::time::{Duration, Instant};

use serde_json::{Value, json};
use tokio::runtime::Handle;

use crate::common::{
    ClientOptions, Received, Summary, connect, instant_of, int, now_ns, recv_until,
};
use crate::report::{LatencyRow, Line, put_summary};
use crate::under_test::Shared;
use crate::{PAD, ROOM, Settings};

// ---------------------------------------------------------------------------------------------
// Payloads

/// A Room notification carrying its sequence number and send time (fixed width, so every
/// payload has the same size). Keys come out sorted, as the bridge re-serialises them.
pub fn stamped_event(seq: u64) -> Value {
    json!({
        "method": "event",
        "event": "benchEvent",
        "seq": format!("{seq:08}"),
        "sentNs": format!("{:020}", now_ns()),
        "text": PAD,
    })
}

pub fn stamp_of(payload: &[u8]) -> Option<u64> {
    let value: Value = serde_json::from_slice(payload).ok()?;
    value.get("sentNs")?.as_str()?.parse().ok()
}

/// Paces `n` sends at `rate` per second on absolute deadlines (a late tick is caught up at
/// once). Returns the achieved rate.
pub async fn paced(n: u64, rate: f64, mut send: impl FnMut(u64)) -> f64 {
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
pub async fn collect_latencies(
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

pub async fn floor_at(
    s: &Settings,
    rt: &Handle,
    broker_port: u16,
    rate: f64,
    n: u64,
) -> (Summary, f64, Vec<u64>) {
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
    (Summary::of_ns(&mut samples), achieved, samples)
}

pub async fn event_at(
    s: &Settings,
    shared: &Shared,
    rate: f64,
    n: u64,
) -> (Summary, f64, Vec<u64>) {
    let topic = format!("trueconf/{ROOM}/event/benchEvent");
    let filter = format!("trueconf/{ROOM}/event/#");
    let (_sub, mut rx) = connect(s.client(shared.broker.port, "bench-event-sub", &[&filter])).await;
    let room = shared.room.clone();
    let sender =
        tokio::spawn(async move { paced(n, rate, |i| room.emit_raw(stamped_event(i))).await });
    let deadline = Instant::now() + Duration::from_secs_f64(n as f64 / rate + 5.0);
    let mut samples = collect_latencies(&mut rx, n, deadline, |t| t == topic).await;
    let achieved = sender.await.unwrap_or(0.0);
    (Summary::of_ns(&mut samples), achieved, samples)
}

pub async fn latency_scenarios(
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
        let (floor, floor_rate, floor_samples) = floor_at(s, rt, shared.broker.port, rate, n).await;
        rows.push(LatencyRow {
            path: "floor (raw mosquitto)",
            rate,
            achieved: floor_rate,
            sent: n,
            summary: floor,
            samples: floor_samples,
        });
        if s.wants("floor_latency") {
            floor_line.put(format!("{r}rate_per_s"), rate);
            floor_line.put(format!("{r}lost"), (n - floor.n as u64) as f64);
            put_summary(&mut floor_line, &r, &floor);
        }
        if s.wants("event_latency") {
            let (event, event_rate, event_samples) = event_at(s, shared, rate, n).await;
            rows.push(LatencyRow {
                path: "event via bridge",
                rate,
                achieved: event_rate,
                sent: n,
                summary: event,
                samples: event_samples,
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
