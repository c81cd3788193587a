//! The bridge under test: built with the daemon's defaults, started on its own runtime.

use std::sync::Arc;
use std::time::{Duration, Instant};

use tokio::runtime::Handle;
use tokio_util::sync::CancellationToken;
use trueconf2mqtt::bridge::{self, Bridge, BridgeOptions, RoomEntry, Tasks};
use trueconf2mqtt::mqtt::LinkOptions;
use trueconf2mqtt::room::RoomOptions;
use trueconf2mqtt::simulator::{SimConfig, SimRoom};

use crate::common::Broker;
use crate::{PIN, Settings};

/// Options as the daemon builds them from a configuration with defaults only (mqtt: QoS 1,
/// keepalive 30 s, persistent session, event buffer 1000, 64 KiB payload limit, discovery on;
/// rooms: keepalive 6 s, request timeout 5 s), pointing at our broker and simulated Rooms.
pub fn bridge_options(s: &Settings, broker_port: u16, rooms: &[(String, u16)]) -> BridgeOptions {
    BridgeOptions {
        mqtt: LinkOptions {
            qos: s.qos,
            event_buffer: s.event_buffer,
            ..LinkOptions::new(
                "127.0.0.1",
                broker_port,
                format!("trueconf2mqtt-bench-{}", fastrand::u32(..)),
            )
        },
        base_topic: "trueconf".into(),
        discovery_prefix: Some("homeassistant".into()),
        homeassistant: Default::default(),
        max_payload_bytes: 65_536,
        command_max_age: Duration::from_secs(30),
        rooms: rooms
            .iter()
            .map(|(id, http_port)| RoomEntry {
                id: id.clone(),
                name: id.clone(),
                options: RoomOptions::new("127.0.0.1", *http_port).with_pin(PIN),
                allow_dangerous: Vec::new(),
            })
            .collect(),
    }
}

pub struct Running {
    pub bridge: Arc<Bridge>,
    pub tasks: Tasks,
    pub shutdown: CancellationToken,
}

/// Starts the bridge on its own runtime.
pub fn start_bridge(rt: &Handle, options: BridgeOptions) -> Running {
    let shutdown = CancellationToken::new();
    let (bridge, tasks) = {
        let _inside = rt.enter();
        bridge::start(options, shutdown.clone())
    };
    Running {
        bridge,
        tasks,
        shutdown,
    }
}

/// The graceful stop, on the bridge's runtime.
pub async fn stop_bridge(rt: &Handle, running: Running) {
    running.shutdown.cancel();
    let _ = rt.spawn(running.bridge.stop(running.tasks)).await;
}

pub async fn start_room() -> SimRoom {
    SimRoom::start(SimConfig {
        pin: Some(PIN.into()),
        ..SimConfig::default()
    })
    .await
    .expect("simulator starts")
}

/// Waits until the bridge says every room is online (Room link) and the broker is connected.
pub async fn wait_bridge_ready(running: &Running, rooms: &[String], timeout: Duration) {
    let deadline = Instant::now() + timeout;
    loop {
        let ready = running.bridge.link().is_connected()
            && rooms.iter().all(|id| {
                running
                    .bridge
                    .room(id)
                    .is_some_and(|c| c.link().borrow().is_online())
            });
        if ready {
            return;
        }
        assert!(
            Instant::now() < deadline,
            "bridge not ready after {timeout:?}"
        );
        tokio::time::sleep(Duration::from_millis(10)).await;
    }
}

pub struct Shared {
    pub broker: Broker,
    pub room: SimRoom,
    pub running: Running,
}
