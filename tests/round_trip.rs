//! No Nagle stalls: a command's round trip against Rooms that tune nothing stays far below the
//! ~40 ms a delayed ACK costs. The peer is a hand-written stand-in (`common::plain_room`) that
//! shares no code with the project's WebSocket sides and writes every frame's header and
//! payload separately.
//!
//! These are stall guards, not benchmarks (figures are in `cargo bench`): the bound, 5 ms at p99
//! on an idle machine, is an order of magnitude above a healthy round trip and an order below a
//! stall.

mod common;

use std::time::{Duration, Instant};

use trueconf2mqtt::room::{RoomClient, RoomOptions};

use common::plain_room::PlainRoom;

/// The stall guard: p99 of a command round trip on an idle machine.
const P99_BOUND: Duration = Duration::from_millis(5);
/// Commands measured per peer: enough for a p99 that is not the single worst sample.
const COMMANDS: usize = 300;
/// Commands sent first and not measured (connection warm-up, the kernel's quick-ACK start).
const WARMUP: usize = 30;

fn options(host_port: u16, ws_port: Option<u16>) -> RoomOptions {
    let mut o = RoomOptions::new("127.0.0.1", host_port);
    o.ws_port = ws_port;
    o.request_timeout = Duration::from_secs(3);
    o
}

/// p50 and p99 of `COMMANDS` one-at-a-time `setMicMute` commands, each waited for.
async fn round_trips(client: &RoomClient) -> (Duration, Duration) {
    let mut samples = Vec::with_capacity(COMMANDS);
    for i in 0..WARMUP + COMMANDS {
        let started = Instant::now();
        client
            .set_mic_mute(i % 2 == 0)
            .await
            .expect("the command succeeds");
        if i >= WARMUP {
            samples.push(started.elapsed());
        }
    }
    samples.sort_unstable();
    let at = |q: f64| samples[((samples.len() - 1) as f64 * q).round() as usize];
    (at(0.50), at(0.99))
}

fn check(peer: &str, (p50, p99): (Duration, Duration)) {
    println!(
        "round_trip peer={peer} commands={COMMANDS} p50_us={} p99_us={}",
        p50.as_micros(),
        p99.as_micros()
    );
    assert!(
        p99 <= P99_BOUND,
        "{peer}: command round trip p99 {p99:?} (p50 {p50:?}) exceeds {P99_BOUND:?}: a Nagle stall?"
    );
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn commands_against_a_hand_written_untuned_room_do_not_stall() {
    let room = PlainRoom::start().await;
    let client = RoomClient::connect(options(1, Some(room.port())))
        .await
        .expect("connects to the stand-in");
    let figures = round_trips(&client).await;
    client.close().await;
    assert!(room.requests() >= COMMANDS as u64);
    check("plain_room", figures);
}

/// Against any Room or stand-in already running on 127.0.0.1: set `ROUND_TRIP_WS_PORT` (and
/// `ROUND_TRIP_PIN` if it is secured) and run
/// `cargo test --test round_trip -- --ignored --nocapture an_external_room`.
#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
#[ignore = "needs a Room on ROUND_TRIP_WS_PORT"]
async fn an_external_room_does_not_stall() {
    let port = std::env::var("ROUND_TRIP_WS_PORT")
        .ok()
        .and_then(|p| p.parse().ok())
        .expect("ROUND_TRIP_WS_PORT=<port of the Room's WebSocket>");
    let mut o = options(1, Some(port));
    if let Ok(pin) = std::env::var("ROUND_TRIP_PIN") {
        o = o.with_pin(pin);
    }
    let client = RoomClient::connect(o).await.expect("connects to the Room");
    let figures = round_trips(&client).await;
    client.close().await;
    check("external", figures);
}
