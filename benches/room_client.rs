//! `cargo bench --bench room_client`: request throughput and latency of the Rust Room client
//! against the simulator over loopback WebSocket.
//!
//! The simulator runs on a runtime of its own (one worker thread, `sim`), the client on a
//! multi-threaded runtime like the daemon's (`room-client`, one worker per core), so the CPU
//! time of each side can be read per thread. Both share the machine's cores.
//!
//! Knobs (environment):
//! - `ROOM_CLIENT_REQUESTS` (100000): pipelined requests in the main run
//! - `ROOM_CLIENT_SECONDS` (5): time limit of the main run
//! - `ROOM_CLIENT_INFLIGHT` (128): requests in flight in the main run
//! - `ROOM_CLIENT_SWEEP` ("1,16,64,256"): other in-flight levels, ~1.5 s each (empty: skip)
//! - `ROOM_CLIENT_SERIAL` (5000): one-at-a-time requests
//! - `ROOM_CLIENT_METHOD` (getMicMute): the method sent
//! - `ROOM_CLIENT_SIM_TUNED` (0): 1 runs the simulator tuned (`TCP_NODELAY`, batched writes)
//!   instead of its untuned default

mod common;

use std::sync::Arc;
use std::sync::atomic::{AtomicU64, Ordering};
use std::time::{Duration, Instant};

use serde_json::Map;
use trueconf2mqtt::room::{RoomClient, RoomOptions};
use trueconf2mqtt::simulator::{SimConfig, SimRoom};

use common::{Summary, Usage, env_f64, env_u64, int};

/// Outcome of one run.
struct Run {
    inflight: usize,
    completed: u64,
    errors: u64,
    elapsed: Duration,
    latency: Summary,
    client: Usage,
    sim: Usage,
}

impl Run {
    fn per_s(&self) -> f64 {
        self.completed as f64 / self.elapsed.as_secs_f64()
    }
}

/// `inflight` tasks each sending one request after the other until `total` were sent or
/// `limit` passed. Latency is send → reply as seen by the caller of `request_unchecked`.
async fn pipelined(
    client: &RoomClient,
    method: &'static str,
    inflight: usize,
    total: u64,
    limit: Duration,
) -> Run {
    let remaining = Arc::new(AtomicU64::new(total));
    let errors = Arc::new(AtomicU64::new(0));
    let client_before = Usage::of("room-client");
    let sim_before = Usage::of("sim");
    let started = Instant::now();
    let deadline = started + limit;
    let mut workers = Vec::with_capacity(inflight);
    for _ in 0..inflight {
        let client = client.clone();
        let remaining = remaining.clone();
        let errors = errors.clone();
        workers.push(tokio::spawn(async move {
            let expected = (total / inflight.max(1) as u64).min(1 << 20) as usize;
            let mut samples = Vec::with_capacity(expected + 1);
            loop {
                // Claim one request.
                if remaining
                    .fetch_update(Ordering::Relaxed, Ordering::Relaxed, |n| n.checked_sub(1))
                    .is_err()
                {
                    break;
                }
                let t0 = Instant::now();
                if t0 >= deadline {
                    break;
                }
                match client.request_unchecked(method, Map::new()).await {
                    Ok(reply) if reply.result => {
                        samples.push(t0.elapsed().as_nanos() as u64);
                    }
                    _ => {
                        errors.fetch_add(1, Ordering::Relaxed);
                    }
                }
            }
            samples
        }));
    }
    let mut samples = Vec::new();
    for worker in workers {
        samples.extend(worker.await.expect("worker"));
    }
    let elapsed = started.elapsed();
    Run {
        inflight,
        completed: samples.len() as u64,
        errors: errors.load(Ordering::Relaxed),
        elapsed,
        latency: Summary::of_ns(&mut samples),
        client: Usage::of("room-client").since(client_before),
        sim: Usage::of("sim").since(sim_before),
    }
}

fn row(label: &str, run: &Run) {
    let per_req = |u: &Usage| u.cpu_ns as f64 / 1000.0 / run.completed.max(1) as f64;
    println!(
        "{label:<12} {:>8} {:>9} {:>10.0} {:>8.1} {:>8.1} {:>8.1} {:>8.1} {:>9.2} {:>9.2} {:>6}",
        run.inflight,
        run.completed,
        run.per_s(),
        run.latency.p50_us,
        run.latency.p99_us,
        run.latency.p999_us,
        run.latency.max_us,
        per_req(&run.client),
        per_req(&run.sim),
        run.errors,
    );
}

fn main() {
    let total = env_u64("ROOM_CLIENT_REQUESTS", 100_000);
    let seconds = env_f64("ROOM_CLIENT_SECONDS", 5.0);
    let inflight = env_u64("ROOM_CLIENT_INFLIGHT", 128).max(1) as usize;
    let serial = env_u64("ROOM_CLIENT_SERIAL", 5_000);
    let sweep: Vec<usize> = std::env::var("ROOM_CLIENT_SWEEP")
        .unwrap_or_else(|_| "1,16,64,256".into())
        .split(',')
        .filter_map(|s| s.trim().parse().ok())
        .filter(|&n: &usize| n > 0)
        .collect();
    let method: &'static str = Box::leak(
        std::env::var("ROOM_CLIENT_METHOD")
            .unwrap_or_else(|_| "getMicMute".into())
            .into_boxed_str(),
    );

    let tuned = env_u64("ROOM_CLIENT_SIM_TUNED", 0) != 0;

    let (cpus, model) = common::machine();
    println!("room_client benchmark — {cpus} CPUs, {model}");
    println!(
        "method {method}; main run: {inflight} in flight, {total} requests or {seconds} s; serial: {serial}; simulator {}",
        if tuned { "tuned" } else { "untuned" }
    );

    // The simulator: its own single worker thread.
    let sim_rt = tokio::runtime::Builder::new_multi_thread()
        .worker_threads(1)
        .thread_name("sim")
        .enable_all()
        .build()
        .expect("simulator runtime");
    let room = sim_rt
        .block_on(async {
            let _ = common::now_ns();
            SimRoom::start(SimConfig {
                pin: Some("2468".into()),
                tuned,
                ..SimConfig::default()
            })
            .await
        })
        .expect("simulator starts");

    // The client: a runtime like the daemon's (one worker per core).
    let client_rt = tokio::runtime::Builder::new_multi_thread()
        .thread_name("room-client")
        .enable_all()
        .build()
        .expect("client runtime");
    let http_port = room.http_port();
    client_rt.block_on(async move {
        // Everything below runs on a worker so the main thread does not take part.
        tokio::spawn(async move {
            let client = RoomClient::connect(RoomOptions::new("127.0.0.1", http_port).with_pin("2468"))
                .await
                .expect("client connects");

            // Warm-up: connections, allocator, caches.
            let warm = pipelined(&client, method, inflight, 20_000, Duration::from_secs(2)).await;
            println!(
                "warm-up: {} requests, {:.0}/s, {} errors",
                warm.completed,
                warm.per_s(),
                warm.errors
            );

            let main = pipelined(
                &client,
                method,
                inflight,
                total,
                Duration::from_secs_f64(seconds),
            )
            .await;

            let mut others = Vec::new();
            for &level in &sweep {
                if level == inflight {
                    continue;
                }
                others.push(
                    pipelined(&client, method, level, u64::MAX, Duration::from_millis(1500)).await,
                );
            }

            // One at a time: no pipelining at all.
            let serial_run =
                pipelined(&client, method, 1, serial, Duration::from_secs(30)).await;

            println!();
            println!(
                "{:<12} {:>8} {:>9} {:>10} {:>8} {:>8} {:>8} {:>8} {:>9} {:>9} {:>6}",
                "run",
                "inflight",
                "requests",
                "req/s",
                "p50 µs",
                "p99 µs",
                "p99.9 µs",
                "max µs",
                "client µs",
                "sim µs",
                "errors"
            );
            println!(
                "{:<12} {:>8} {:>9} {:>10} {:>8} {:>8} {:>8} {:>8} {:>9} {:>9} {:>6}",
                "", "", "", "", "", "", "", "", "CPU/req", "CPU/req", ""
            );
            row("main", &main);
            for run in &others {
                row("sweep", run);
            }
            row("serial", &serial_run);
            println!();
            println!(
                "(client/sim CPU/req: on-CPU time of the client's runtime threads and of the \
                 simulator's thread per request, from /proc/self/task/*/schedstat)"
            );
            println!(
                "(with k requests in flight, mean latency = k / throughput (Little's law): a \
                 pipelined run's latency is mostly queueing; the serial run is the per-request \
                 latency)"
            );
            println!(
                "goal: >= 20000 requests/s and p99 < 1000 µs; official Python client: ~20 commands/s"
            );
            println!();
            println!(
                "room_client requests_per_s={} p50_us={} p99_us={}",
                int(main.per_s()),
                int(main.latency.p50_us),
                int(main.latency.p99_us)
            );
            println!(
                "room_client_serial p50_us={} p99_us={}",
                int(serial_run.latency.p50_us),
                int(serial_run.latency.p99_us)
            );
            client.close().await;
        })
        .await
        .expect("benchmark task");
    });
    drop(room);
    client_rt.shutdown_timeout(Duration::from_secs(1));
    sim_rt.shutdown_timeout(Duration::from_secs(1));
}
