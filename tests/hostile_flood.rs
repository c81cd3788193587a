//! One busy Room must not starve the others (issue 12 case 6): a Room that floods the bridge
//! with `newParticipantInConference` events is handled in O(1)/O(log n) per event, another
//! room's commands keep being answered promptly meanwhile (their responses do not queue behind
//! the flood's events), its link untouched, and the memory the conference took is given back
//! when it ends.
//!
//! The flood size is bounded for CI; `FLOOD_EVENTS=100000 cargo test --release --test
//! hostile_flood -- --nocapture` prints the figures of the scenario.

mod common;

use std::sync::Arc;
use std::sync::atomic::{AtomicBool, Ordering};

use std::time::{Duration, Instant};
use tokio::sync::Notify;

use futures_util::{SinkExt, StreamExt};
use serde_json::{Value, json};
use tokio::net::TcpListener;
use tokio_tungstenite::tungstenite::Message;
use trueconf2mqtt::bridge::BridgeOptions;
use trueconf2mqtt::mqtt::LinkOptions;
use trueconf2mqtt::simulator::{SimConfig, SimRoom};

use common::{
    Broker, Probe, Running, room_entry, test_bridge_options, test_link_options, test_room_options,
    within,
};

/// Participants joining in the flood (CI default).
const DEFAULT_FLOOD: usize = 20_000;
/// Stall guard for the flood, per 1,000 participants, in a debug build: 20,000 took 3.6 s
/// after the fix and 31 s before it (per-event cost growing with the participants).
const FLOOD_GUARD_PER_1000: Duration = Duration::from_secs(1);
/// Stall guard for one command to the quiet room during the flood (figures are printed).
const COMMAND_GUARD: Duration = Duration::from_secs(5);
/// Stall guards for the quiet room's commands during the flood, median and slowest, on top of
/// two broker round trips measured meanwhile (a command crosses the broker twice, and the
/// flood loads the broker and the cores): generous, since a debug build on a loaded machine
/// answers within 12–37 ms; before responses got their own lane they queued behind thousands
/// of events (median 81–218 ms, max 232–876 ms in a release build with 100,000 events; at the
/// CI size in a debug build the flood is too short to tell: median 48 ms, max 264 ms).
const COMMAND_P50_GUARD: Duration = Duration::from_millis(50);
const COMMAND_MAX_GUARD: Duration = Duration::from_millis(500);
/// The second half of the flood may take at most this many times the first half (plus
/// [`SLACK`]): a sanity check that the per-event cost does not grow with the participants so
/// far (with the bug it took 2.1 times; 1.6 after the fix, start-up noise included).
const HALF_RATIO: f64 = 2.5;
/// Scheduling noise allowed on top of [`HALF_RATIO`].
const SLACK: Duration = Duration::from_millis(500);

/// A Room in a conference that accepts one connection, answers every request with
/// `result: true`, and once the client has resynchronised sends `n` participants joining, as
/// fast as the socket takes them; when `end` is notified, the conference ends.
async fn flooding_room(n: usize, started: Arc<AtomicBool>, end: Arc<Notify>) -> u16 {
    let listener = TcpListener::bind("127.0.0.1:0").await.unwrap();
    let port = listener.local_addr().unwrap().port();
    tokio::spawn(async move {
        let (tcp, _) = listener.accept().await.unwrap();
        let ws = tokio_tungstenite::accept_async(tcp).await.unwrap();
        let (mut sink, mut stream) = ws.split();
        // (reply, whether it ends the client's resync: the flood starts after it, so the
        // participant list it resets is not the flood's)
        let (replies, mut to_send) = tokio::sync::mpsc::unbounded_channel::<(String, bool)>();
        tokio::spawn(async move {
            while let Some(Ok(message)) = stream.next().await {
                let Ok(text) = message.into_text() else {
                    continue;
                };
                let Ok(request) = serde_json::from_str::<Value>(&text) else {
                    continue;
                };
                let mut reply = json!({"method": request["method"], "requestId": request["requestId"], "result": true});
                if request["method"] == "getAppState" {
                    reply["appState"] = json!(5);
                }
                let last = request["method"] == "getConferenceParticipants";
                if replies.send((reply.to_string(), last)).is_err() {
                    return;
                }
            }
        });
        let mut sent = 0;
        let mut resynced = false;
        let mut ended = false;
        loop {
            let flood = resynced && sent < n;
            tokio::select! {
                biased;
                _ = end.notified(), if !ended => {
                    ended = true;
                    for event in [
                        json!({"method": "event", "event": "appStateChanged", "appState": 6}),
                        json!({"method": "event", "event": "conferenceDeleted", "confId": "flood"}),
                        json!({"method": "event", "event": "appStateChanged", "appState": 3}),
                    ] {
                        if sink.send(Message::text(event.to_string())).await.is_err() {
                            return;
                        }
                    }
                }
                reply = to_send.recv() => {
                    let Some((reply, last)) = reply else { return };
                    if sink.send(Message::text(reply)).await.is_err() {
                        return;
                    }
                    resynced |= last;
                }
                fed = sink.feed(Message::text(json!({
                    "method": "event",
                    "event": "newParticipantInConference",
                    "peerId": format!("guest{sent}@sim.trueconf.local/{sent}"),
                    "peerDn": format!("Guest {sent}"),
                }).to_string())), if flood => {
                    if fed.is_err() { return; }
                    started.store(true, Ordering::Relaxed);
                    sent += 1;
                    if sent % 64 == 0 || sent == n {
                        let _ = sink.flush().await;
                    }
                }
            }
        }
    });
    port
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn a_participant_flood_in_one_room_does_not_starve_another() {
    let n: usize = std::env::var("FLOOD_EVENTS")
        .ok()
        .and_then(|v| v.parse().ok())
        .unwrap_or(DEFAULT_FLOOD);
    let broker = Broker::start();
    let quiet = SimRoom::start(SimConfig::default()).await.unwrap();
    let started = Arc::new(AtomicBool::new(false));
    let end = Arc::new(Notify::new());
    let busy_port = flooding_room(n, started.clone(), end.clone()).await;

    let mut busy_options = test_room_options(busy_port);
    busy_options.ws_port = Some(busy_port);
    let mut quiet_options = test_room_options(quiet.http_port());
    quiet_options.keepalive = Duration::from_secs(2);
    let mqtt = LinkOptions {
        ..test_link_options(broker.port, "hostile-flood")
    };
    let options: BridgeOptions = test_bridge_options(
        mqtt,
        vec![
            room_entry("busy", "Busy", busy_options),
            room_entry("quiet", "Quiet", quiet_options),
        ],
    );
    let probe = Probe::connect(
        broker.port,
        &[
            "trueconf/quiet/#",
            "trueconf/busy/participant_count",
            "floor/echo",
        ],
    )
    .await;
    let mut bridge = Running::start(options);
    probe
        .wait_value(
            "trueconf/quiet/availability",
            "online",
            Duration::from_secs(15),
        )
        .await;
    let quiet_connects = || {
        bridge
            .bridge
            .rooms()
            .find(|r| r.id == "quiet")
            .and_then(|r| {
                r.client
                    .as_ref()
                    .map(|c| c.stats().connects.load(Ordering::Relaxed))
            })
    };
    let connects_before = quiet_connects();
    let rss_before = rss_kib();
    let availability_before = probe.on("trueconf/quiet/availability").len();

    within(Duration::from_secs(15), "the flood starts", async {
        while !started.load(Ordering::Relaxed) {
            tokio::time::sleep(Duration::from_millis(5)).await;
        }
    })
    .await;
    let flood_started = Instant::now();
    let flood_guard = FLOOD_GUARD_PER_1000 * u32::try_from(n.div_ceil(1000)).unwrap_or(u32::MAX);
    let count_topic = "trueconf/busy/participant_count";
    let count = |probe: &Probe| {
        probe
            .latest(count_topic)
            .and_then(|c| c.parse::<usize>().ok())
            .unwrap_or(0)
    };
    // When the count passes half and all of the flood, polled on its own.
    let halves = {
        let probe = probe.clone();
        tokio::spawn(async move {
            let mut half = None;
            loop {
                let now = count(&probe);
                if half.is_none() && now >= n / 2 {
                    half = Some(flood_started.elapsed());
                }
                if now >= n {
                    return (half.unwrap_or_default(), flood_started.elapsed());
                }
                assert!(
                    flood_started.elapsed() < flood_guard,
                    "{n} participants not handled within {flood_guard:?} (count {now})"
                );
                tokio::time::sleep(Duration::from_millis(2)).await;
            }
        })
    };

    // Commands to the quiet room while the busy one floods.
    let mut latencies = Vec::new();
    let mut floor = Vec::new();
    let mut mute = true;
    while !halves.is_finished() {
        let value = if mute { "ON" } else { "OFF" };
        let before = probe.on("trueconf/quiet/response/mic_muted").len();
        let sent = Instant::now();
        probe.publish("trueconf/quiet/set/mic_muted", value).await;
        within(
            COMMAND_GUARD,
            "the quiet room's command during the flood",
            async {
                while probe.on("trueconf/quiet/response/mic_muted").len() == before {
                    tokio::time::sleep(Duration::from_millis(1)).await;
                }
            },
        )
        .await;
        latencies.push(sent.elapsed());
        mute = !mute;
        // The floor: a round trip through the broker alone, under the same load.
        let before = probe.on("floor/echo").len();
        let sent = Instant::now();
        probe.publish("floor/echo", "x").await;
        within(COMMAND_GUARD, "the broker echo during the flood", async {
            while probe.on("floor/echo").len() == before {
                tokio::time::sleep(Duration::from_millis(1)).await;
            }
        })
        .await;
        floor.push(sent.elapsed());
        tokio::time::sleep(Duration::from_millis(20)).await;
    }
    let (half, flood_time) = halves.await.expect("the flood watcher");
    let rss_flood = rss_kib();
    // The call ends: the participants are forgotten and their memory is given back.
    end.notify_one();
    within(
        Duration::from_secs(30),
        "the participant count back to 0",
        async {
            while count(&probe) != 0 {
                tokio::time::sleep(Duration::from_millis(5)).await;
            }
        },
    )
    .await;
    // Let the bridge's queues run dry and shrink.
    tokio::time::sleep(Duration::from_millis(500)).await;
    let rss_after = rss_kib();
    let held = probe.messages();
    let held_bytes: usize = held.iter().map(|m| m.topic.len() + m.payload.len()).sum();
    println!(
        "RSS of the test process (bridge, both Rooms, probe): {} KiB before the flood, {} KiB \
         with {n} participants, {} KiB after the call ended (the probe holds {} messages, {} KiB \
         of topics and payloads)",
        rss_before,
        rss_flood,
        rss_after,
        held.len(),
        held_bytes / 1024
    );
    let (median, max) = median_max(&mut latencies);
    let (floor_median, floor_max) = median_max(&mut floor);
    println!(
        "flood of {n} participants handled in {flood_time:?} ({:.0}/s; first half {half:?}, \
         second {:?}); quiet room: {} commands, median {median:?}, max {max:?}; broker round \
         trip meanwhile (floor): median {floor_median:?}, max {floor_max:?}",
        n as f64 / flood_time.as_secs_f64(),
        flood_time - half,
        latencies.len()
    );
    assert!(
        (flood_time - half).as_secs_f64() <= HALF_RATIO * half.as_secs_f64() + SLACK.as_secs_f64(),
        "the second half of the flood took {:?}, the first {half:?}: the cost per event grows",
        flood_time - half
    );
    assert!(
        median < COMMAND_P50_GUARD + 2 * floor_median && max < COMMAND_MAX_GUARD + 2 * floor_max,
        "the quiet room's commands waited behind the flood: median {median:?}, max {max:?} \
         (broker round trip: median {floor_median:?}, max {floor_max:?})"
    );
    assert_eq!(
        quiet_connects(),
        connects_before,
        "the quiet room's link was dropped during the flood"
    );
    let availability = probe.on("trueconf/quiet/availability");
    assert!(
        availability[availability_before..]
            .iter()
            .all(|m| m.payload != "offline"),
        "the quiet room went offline during the flood: {availability:?}"
    );
    bridge.stop().await;
}

/// Resident memory of this process (KiB), from `/proc/self/status`; 0 where there is none.
fn rss_kib() -> u64 {
    std::fs::read_to_string("/proc/self/status")
        .ok()
        .and_then(|status| {
            status.lines().find_map(|l| {
                l.strip_prefix("VmRSS:")
                    .and_then(|v| v.trim().trim_end_matches("kB").trim().parse().ok())
            })
        })
        .unwrap_or(0)
}

/// Median and maximum.
fn median_max(samples: &mut [Duration]) -> (Duration, Duration) {
    samples.sort();
    let median = samples.get(samples.len() / 2).copied().unwrap_or_default();
    (median, samples.last().copied().unwrap_or_default())
}
