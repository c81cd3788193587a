//! The daemon: configuration in, a running bridge out.

use std::path::Path;
use std::time::Duration;

use rumqttc::QoS;
use tokio_util::sync::CancellationToken;
use tracing::{info, warn};

use crate::bridge::{self, BridgeOptions, RoomEntry};
use crate::config::{MqttVersion, Settings, explain};
use crate::mqtt::LinkOptions;

/// Maps validated settings onto the bridge's options.
pub fn bridge_options(settings: &Settings) -> BridgeOptions {
    let mqtt = &settings.mqtt;
    let credentials = mqtt
        .username
        .as_ref()
        .filter(|u| !u.is_empty())
        .map(|user| (user.clone(), mqtt.password.clone().unwrap_or_default()));
    BridgeOptions {
        mqtt: LinkOptions {
            host: mqtt.host.clone(),
            port: mqtt.port,
            client_id: mqtt.client_id.clone(),
            credentials,
            keepalive: mqtt.keepalive,
            clean_session: mqtt.clean_session,
            qos: if mqtt.qos == 0 {
                QoS::AtMostOnce
            } else {
                QoS::AtLeastOnce
            },
            // Generous so an oversize command is refused with a response instead of breaking
            // the connection (and being redelivered forever with a persistent session).
            max_incoming_packet: (mqtt.max_payload_bytes * 4).max(16 << 20),
            event_buffer: mqtt.event_buffer,
            will_topic: String::new(),
            first_prefix: None,
            reconnect_min: Duration::from_millis(500),
            reconnect_max: Duration::from_secs(30),
        },
        base_topic: mqtt.base_topic.clone(),
        discovery_prefix: mqtt.discovery.then(|| mqtt.discovery_prefix.clone()),
        max_payload_bytes: mqtt.max_payload_bytes,
        rooms: settings
            .rooms
            .iter()
            .map(|room| RoomEntry {
                id: room.id.clone(),
                name: room.name.clone(),
                options: room.room_options(),
                allow_dangerous: room.allow_dangerous.clone(),
            })
            .collect(),
    }
}

/// `trueconf2mqtt run`: loads the configuration, refuses to start on any problem, runs until
/// `shutdown`.
pub async fn run(config: Option<&Path>, shutdown: CancellationToken) -> Result<(), String> {
    let settings = Settings::load(config).map_err(|e| format!("invalid configuration:\n{e}"))?;
    if settings.mqtt.version == MqttVersion::V5 {
        warn!("mqtt.version = \"5\" is not supported yet; connecting with MQTT 3.1.1");
    }
    if settings.mqtt.tls.is_some() {
        return Err("mqtt.tls is not supported yet by this build; remove [mqtt.tls] or use a local TLS-terminating proxy".into());
    }
    info!(
        version = env!("CARGO_PKG_VERSION"),
        broker = %format!("{}:{}", settings.mqtt.host, settings.mqtt.port),
        rooms = settings.rooms.len(),
        "starting"
    );
    bridge::run(bridge_options(&settings), shutdown).await;
    info!("stopped");
    Ok(())
}

/// `trueconf2mqtt check-config`: explains a valid configuration or lists every problem.
pub fn check_config(config: Option<&Path>) -> Result<(), String> {
    match Settings::load(config) {
        Ok(settings) => {
            println!("{}", explain(&settings));
            println!("configuration is valid");
            Ok(())
        }
        Err(e) => Err(format!("the configuration has problems:\n{e}")),
    }
}
