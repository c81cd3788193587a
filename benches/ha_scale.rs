//! `cargo bench --bench ha_scale`: how long a real Home Assistant (the current one, 2026.11 from
//! `scripts/ha-current.sh`) takes to create every entity of many Rooms, and its memory, with
//! per-entity discovery configs (one retained config per entity) and with device configs (one
//! per Room).
//!
//! For each mode: a private mosquitto, a fresh Home Assistant onboarded with the MQTT
//! integration, then the discovery configs of `BENCH_HA_ROOMS` Rooms (the bridge's own payloads,
//! from `trueconf2mqtt::homeassistant`) published retained at once. Measured:
//! - `publish`: until the broker acknowledged every config (QoS 1) — the floor: nothing of
//!   Home Assistant's is in it;
//! - `created`: from the first publish until Home Assistant's registry holds every entity
//!   (polled once a second: `integration_entities('mqtt') | count`);
//! - `restart`: Home Assistant stopped and started again with the configs retained: from the
//!   start until every entity is back (HA's own start time included; `start_floor` is the same
//!   Home Assistant's start without any entity, measured in the same run);
//! - memory of the Home Assistant process (`VmRSS` before and after, `VmHWM` peak).
//!
//! Knobs: `BENCH_HA_ROOMS` (1000), `BENCH_HA_MODES` ("device,entity"), `BENCH_HA_TIMEOUT`
//! (seconds per wait, 1800). Prints one line per mode; asserts nothing about speed.

#[path = "../tests/common/mod.rs"]
mod common;
#[path = "../tests/common/ha.rs"]
mod ha;

use std::time::{Duration, Instant};

use serde_json::json;
use trueconf2mqtt::homeassistant::{
    DiscoveryContext, DiscoveryMessage, DiscoveryMode, entity_topics, room_messages,
};
use trueconf2mqtt::room::RoomState;

use common::{Broker, Probe};
use ha::{HaInstall, HomeAssistant};

/// How often Home Assistant's entity count is read.
const POLL: Duration = Duration::from_secs(1);

fn env_u64(name: &str, default: u64) -> u64 {
    std::env::var(name).map_or(default, |v| {
        v.trim()
            .parse()
            .unwrap_or_else(|_| panic!("{name}={v:?} is not a number"))
    })
}

/// `(VmRSS, VmHWM)` of a process in MiB.
fn memory(pid: u32) -> (f64, f64) {
    let status = std::fs::read_to_string(format!("/proc/{pid}/status")).unwrap_or_default();
    let field = |name: &str| {
        status
            .lines()
            .find(|l| l.starts_with(name))
            .and_then(|l| l.split_whitespace().nth(1))
            .and_then(|kb| kb.parse::<f64>().ok())
            .map_or(f64::NAN, |kb| kb / 1024.0)
    };
    (field("VmRSS:"), field("VmHWM:"))
}

fn load() -> String {
    std::fs::read_to_string("/proc/loadavg")
        .unwrap_or_default()
        .split_whitespace()
        .take(3)
        .collect::<Vec<_>>()
        .join(" ")
}

/// The discovery configs the bridge publishes for `rooms` idle Rooms.
fn configs(mode: DiscoveryMode, rooms: u64) -> (Vec<DiscoveryMessage>, usize) {
    let state = RoomState::default();
    let mut messages = Vec::new();
    let mut entities = 0;
    for i in 0..rooms {
        let id = format!("room{i:04}");
        let name = format!("Room {i:04}");
        let ctx = DiscoveryContext {
            base_topic: "trueconf",
            prefix: "homeassistant",
            room_id: &id,
            room_name: &name,
            host: "127.0.0.1",
            bridge_version: env!("CARGO_PKG_VERSION"),
        };
        messages.extend(room_messages(mode, &ctx, &state, None, None));
        entities += entity_topics(&ctx).len();
    }
    (messages, entities)
}

/// Reads how many MQTT entities Home Assistant has registered.
async fn mqtt_entities(ha: &mut HomeAssistant) -> usize {
    let r = ha
        .post(
            "/api/template",
            json!({"template": "{{ integration_entities('mqtt') | count }}"}),
        )
        .await;
    assert_eq!(r.status, 200, "/api/template: {}", r.body);
    r.body.trim().parse().unwrap_or(0)
}

/// Waits until Home Assistant has `expected` MQTT entities; returns how long it took.
async fn wait_entities(
    ha: &mut HomeAssistant,
    expected: usize,
    since: Instant,
    timeout: Duration,
) -> Duration {
    loop {
        let count = mqtt_entities(ha).await;
        if count >= expected {
            return since.elapsed();
        }
        assert!(
            since.elapsed() < timeout,
            "Home Assistant has {count} of {expected} entities after {timeout:?}"
        );
        tokio::time::sleep(POLL).await;
    }
}

async fn run(install: &HaInstall, mode: DiscoveryMode, rooms: u64, timeout: Duration) {
    let (messages, entities) = configs(mode, rooms);
    let bytes: usize = messages.iter().map(|m| m.payload.len()).sum();
    let broker = Broker::start();
    let mut ha = HomeAssistant::new(install.clone(), broker.port);
    let start = Instant::now();
    ha.start_and_onboard().await;
    let start_floor = start.elapsed();
    ha.add_mqtt().await;
    let pid = ha.pid().expect("Home Assistant's pid");
    let (rss_before, _) = memory(pid);

    let publisher = Probe::connect(broker.port, &["bench/done"]).await;
    let first_publish = Instant::now();
    for m in &messages {
        publisher
            .publish_retained(&m.topic, m.payload.clone())
            .await;
    }
    // The broker handles one client's messages in order: this one arriving means all did.
    publisher.publish("bench/done", "1").await;
    publisher.wait_value("bench/done", "1", timeout).await;
    let publish = first_publish.elapsed();
    let created = wait_entities(&mut ha, entities, first_publish, timeout).await;
    let (rss_after, hwm) = memory(pid);

    ha.stop().await;
    let restart_began = Instant::now();
    ha.restart().await;
    let restart = wait_entities(&mut ha, entities, restart_began, timeout).await;
    let pid = ha.pid().expect("Home Assistant's pid");
    let (rss_restart, hwm_restart) = memory(pid);
    ha.stop().await;

    println!(
        "ha_scale mode={} rooms={rooms} configs={} entities={entities} config_bytes={bytes} \
         publish_s={:.1} created_s={:.1} start_floor_s={:.1} restart_s={:.1} \
         rss_before_mib={rss_before:.0} rss_after_mib={rss_after:.0} hwm_mib={hwm:.0} \
         rss_after_restart_mib={rss_restart:.0} hwm_restart_mib={hwm_restart:.0} load=\"{}\"",
        mode.name(),
        messages.len(),
        publish.as_secs_f64(),
        created.as_secs_f64(),
        start_floor.as_secs_f64(),
        restart.as_secs_f64(),
        load()
    );
}

fn main() {
    let rooms = env_u64("BENCH_HA_ROOMS", 1000);
    let timeout = Duration::from_secs(env_u64("BENCH_HA_TIMEOUT", 1800));
    let modes = std::env::var("BENCH_HA_MODES").unwrap_or_else(|_| "device,entity".into());
    let Some(install) = HaInstall::current("ha_scale") else {
        println!("ha_scale: skipped: the current Home Assistant cannot be installed here");
        return;
    };
    let runtime = tokio::runtime::Builder::new_multi_thread()
        .worker_threads(2)
        .enable_all()
        .build()
        .expect("runtime");
    for mode in modes.split(',').map(str::trim).filter(|m| !m.is_empty()) {
        let mode = DiscoveryMode::parse(mode).unwrap_or_else(|e| panic!("BENCH_HA_MODES: {e}"));
        runtime.block_on(run(&install, mode, rooms, timeout));
    }
}
