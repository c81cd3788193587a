//! The daemon: configuration in, a running bridge out.

use std::path::Path;
use std::time::Duration;

use rumqttc::QoS;
use tokio_util::sync::CancellationToken;
use tracing::info;

use crate::bridge::{self, BridgeOptions, RoomEntry};
use crate::config::{MqttSettings, MqttTls, MqttVersion, Settings, explain};
use crate::mqtt::{LinkOptions, TlsOptions, Version};
use crate::secret::Secret;

/// Maps validated settings onto the bridge's options. Fails only when the TLS files cannot be
/// used (unreadable, not PEM, key not matching).
pub fn bridge_options(settings: &Settings) -> Result<BridgeOptions, String> {
    let mqtt = &settings.mqtt;
    Ok(BridgeOptions {
        mqtt: link_options(mqtt)?,
        base_topic: mqtt.base_topic.clone(),
        discovery_prefix: mqtt.discovery.then(|| mqtt.discovery_prefix.clone()),
        homeassistant: crate::homeassistant::HaOptions {
            mode: settings.homeassistant.discovery_mode,
            areas: settings
                .rooms
                .iter()
                .filter_map(|room| Some((room.id.clone(), room.area.clone()?)))
                .collect(),
        },
        max_payload_bytes: mqtt.max_payload_bytes,
        command_max_age: mqtt.command_max_age,
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
    })
}

/// How to reach the broker: address, client id, credentials, version, TLS and session, as the
/// bridge connects (`trueconf2mqtt status` starts from the same, so both see one broker).
/// Fails only when the TLS files cannot be used.
pub fn link_options(mqtt: &MqttSettings) -> Result<LinkOptions, String> {
    let credentials = mqtt
        .username
        .as_ref()
        .filter(|u| !u.is_empty())
        .map(|user| (user.clone(), mqtt.password.clone().unwrap_or_default()));
    let tls = match &mqtt.tls {
        None => None,
        Some(tls) => Some(tls_options(tls)?),
    };
    Ok(LinkOptions {
        host: mqtt.host.clone(),
        port: mqtt.port,
        failover: mqtt.failover.clone(),
        client_id: mqtt.client_id.clone(),
        credentials,
        keepalive: mqtt.keepalive,
        clean_session: mqtt.clean_session,
        qos: if mqtt.qos == 0 {
            QoS::AtMostOnce
        } else {
            QoS::AtLeastOnce
        },
        // mqtt.max_payload_bytes plus the topic: larger publishes are skipped and acknowledged
        // by rumqttc, so they never break the connection nor come back with the session.
        max_incoming_packet: crate::mqtt::incoming_packet_limit(mqtt.max_payload_bytes),
        event_buffer: mqtt.event_buffer,
        will_topic: String::new(),
        first_prefix: None,
        reconnect_min: Duration::from_millis(500),
        reconnect_max: Duration::from_secs(30),
        version: match mqtt.version {
            MqttVersion::V311 => Version::V311,
            MqttVersion::V5 => Version::V5,
        },
        tls,
    })
}

fn tls_options(tls: &MqttTls) -> Result<TlsOptions, String> {
    let read = |what: &str, path: &Path| {
        std::fs::read(path)
            .map_err(|e| format!("mqtt.tls.{what}: cannot read {}: {e}", path.display()))
    };
    let ca = tls
        .ca_file
        .as_deref()
        .map(|p| read("ca_file", p))
        .transpose()?;
    let client_auth = match (&tls.cert_file, &tls.key_file) {
        (Some(cert), Some(key)) => {
            let key = read("key_file", key)?;
            let key = Secret::new(
                String::from_utf8(key).map_err(|_| "mqtt.tls.key_file: not PEM text".to_owned())?,
            );
            Some((read("cert_file", cert)?, key))
        }
        _ => None,
    };
    TlsOptions::from_pem(
        ca.as_deref(),
        client_auth.as_ref().map(|(c, k)| (c.as_slice(), k)),
    )
    .map_err(|e| format!("mqtt.tls: {e}"))
}

/// `trueconf2mqtt run`: loads the configuration, refuses to start on any problem, runs until
/// `shutdown`.
pub async fn run(config: Option<&Path>, shutdown: CancellationToken) -> Result<(), String> {
    let settings = Settings::load(config).map_err(|e| format!("invalid configuration:\n{e}"))?;
    let options = bridge_options(&settings)?;
    if let Some(instance) = &settings.mqtt.instance
        && !options.mqtt.failover.is_empty()
    {
        // Room claims are retained messages: instances on nodes that do not share them would
        // each serve the same rooms. Checked before anything is claimed.
        let topic = format!(
            "{}/bridge/{instance}/replication-check",
            settings.mqtt.base_topic
        );
        crate::mqtt::check_retained_shared(&options.mqtt, &topic, crate::mqtt::REPLICATION_BOUND)
            .await
            .map_err(|e| {
                format!(
                    "refusing multi-instance mode (mqtt.instance with mqtt.hosts): {e}; connect every instance to one node with mqtt.host (docs/scaling.md)"
                )
            })?;
    }
    info!(
        version = env!("CARGO_PKG_VERSION"),
        broker = %format!("{}:{}", settings.mqtt.host, settings.mqtt.port),
        rooms = settings.rooms.len(),
        "starting"
    );
    // Bound before anything starts: a taken port is a configuration problem, not a
    // half-working daemon without health checks.
    let health_listener = match settings.http.listen {
        Some(listen) => Some(tokio::net::TcpListener::bind(listen).await.map_err(|e| {
            format!(
                "http.listen = \"{listen}\": cannot listen there: {e} (is another process, or \
                 another trueconf2mqtt, using the port? choose another one or remove [http] listen)"
            )
        })?),
        None => None,
    };
    let panel_listener = match settings.panel.listen {
        Some(listen) => Some(tokio::net::TcpListener::bind(listen).await.map_err(|e| {
            format!(
                "panel.listen = \"{listen}\": cannot listen there: {e} (choose another port or \
                 remove [panel] listen)"
            )
        })?),
        None => None,
    };
    let (bridge, tasks) =
        bridge::start_instance(options, settings.mqtt.instance.clone(), shutdown.clone());
    if let Some(listener) = panel_listener {
        let (bridge, token, shutdown) = (
            bridge.clone(),
            settings.panel.auth_token.clone(),
            shutdown.clone(),
        );
        tokio::spawn(async move {
            if let Err(error) =
                crate::control::panel::serve(listener, bridge, token, shutdown.clone()).await
            {
                tracing::error!(%error, "the panel TCP protocol failed; stopping");
                shutdown.cancel();
            }
        });
    }
    let health = health_listener.map(|listener| {
        let control = settings.http.control.then(|| {
            crate::control::web::routes(crate::control::web::Web::new(
                bridge.clone(),
                settings.http.auth_token.clone(),
                shutdown.clone(),
            ))
        });
        tokio::spawn(crate::health::serve_with(
            listener,
            bridge.clone(),
            control,
            shutdown.clone(),
        ))
    });
    crate::systemd::supervise(bridge.clone(), shutdown.clone());
    crate::systemd::ready();
    // The endpoint ending on its own (it retries failed accepts itself, so only a broken
    // listener ends it) is fatal too: the service manager restarts the daemon whole.
    let failed = match health {
        Some(mut health) => tokio::select! {
            _ = shutdown.cancelled() => None,
            ended = &mut health => Some(match ended {
                Ok(Ok(())) => "the health and metrics endpoint stopped".to_owned(),
                Ok(Err(e)) => format!("the health and metrics endpoint failed: {e}"),
                Err(e) => format!("the health and metrics endpoint failed: {e}"),
            }),
        },
        None => {
            shutdown.cancelled().await;
            None
        }
    };
    // Stopping serves the endpoint's graceful end too: only an end of its own is a failure.
    let failed = failed.filter(|_| !shutdown.is_cancelled());
    if let Some(why) = &failed {
        tracing::error!(error = %why, "stopping");
        shutdown.cancel();
    }
    crate::systemd::stopping();
    bridge.stop(tasks).await;
    info!("stopped");
    failed.map_or(Ok(()), Err)
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
