//! Health and metrics over HTTP: `/healthz`, `/readyz` and Prometheus `/metrics`.
//!
//! Optional (`http.listen`); binds where configured, 127.0.0.1 in the examples. Everything is
//! computed at request time from the counters the bridge keeps anyway: no extra work on the hot
//! path. Connections are bounded in number, header time and lifetime (hyper's HTTP/1.1 server
//! with axum's router), so idle or slow clients cannot take the daemon's file descriptors.

use std::collections::VecDeque;
use std::net::SocketAddr;
use std::sync::atomic::Ordering;
use std::sync::{Arc, Mutex};
use std::time::Duration;

use axum::Router;
use axum::extract::State;
use axum::http::{StatusCode, header};
use axum::response::IntoResponse;
use axum::routing::get;
use prometheus_client::collector::Collector;
use prometheus_client::encoding::{DescriptorEncoder, EncodeMetric};
use prometheus_client::metrics::MetricType;
use prometheus_client::metrics::counter::ConstCounter;
use prometheus_client::metrics::gauge::ConstGauge;
use prometheus_client::registry::Registry;
use serde_json::{Value, json};
use tokio_util::sync::CancellationToken;

use crate::bridge::Bridge;
use crate::bridge::ownership::Ownership;
use crate::room::LinkState;

/// The readiness report: broker connection and each room's link.
pub fn report(bridge: &Bridge) -> (bool, Value) {
    let mqtt = bridge.link().is_connected();
    let links = bridge.room_links();
    // A room another instance serves is that instance's business: this one stands by for it
    // and is ready without it.
    let refused_by = |id: &str| match bridge.ownership(id) {
        Some(Ownership::Refused { by, .. }) => Some(by),
        _ => None,
    };
    let rooms: serde_json::Map<String, Value> = links
        .iter()
        .map(|(id, state)| match refused_by(id) {
            Some(by) => (
                id.clone(),
                json!({ "state": "refused", "reason": format!("served by bridge instance '{by}'") }),
            ),
            None => {
                let (name, reason) = (state.name(), state.reason());
                (id.clone(), json!({ "state": name, "reason": reason }))
            }
        })
        .collect();
    let tasks = bridge.task_failures();
    let ready = mqtt
        && tasks.all_running()
        && links
            .iter()
            .all(|(id, state)| state.is_online() || refused_by(id).is_some());
    let mut body = json!({
        "ready": ready,
        "mqtt": if mqtt { "connected" } else { "disconnected" },
        "rooms": rooms,
    });
    let failures = tasks.failures();
    if !failures.is_empty() {
        // Restarted tasks stay listed: a failure is a bug to report even once it recovered.
        body["task_failures"] = json!(failures);
    }
    if !mqtt {
        let last = bridge
            .link()
            .stats()
            .last_error
            .lock()
            .ok()
            .and_then(|e| e.clone());
        body["mqtt_error"] = json!(last);
    }
    (ready, body)
}

/// HTTP connections served at once. Probes and scrapers need a handful; past this the oldest
/// connection is closed to make room, so a crowd of idle or slow clients can neither hold more
/// file descriptors than this (the rest stay for the Room and broker sockets, see
/// `LimitNOFILE=` in the systemd unit) nor lock out the next probe.
pub const MAX_HTTP_CONNECTIONS: usize = 64;
/// Time a client gets to send a whole request head (slow-loris clients are cut here).
pub const HEADER_TIMEOUT: Duration = Duration::from_secs(5);
/// Longest life of one connection, idle keep-alive included: a scraper reconnects for free.
pub const CONNECTION_LIFETIME: Duration = Duration::from_secs(30);
/// Pause after a failed `accept` (out of file descriptors, say) before the next one.
const ACCEPT_BACKOFF: Duration = Duration::from_millis(50);
/// Time in-flight requests get to finish at shutdown.
const SHUTDOWN_GRACE: Duration = Duration::from_secs(1);

/// Serves the endpoints until `shutdown`.
pub async fn serve(
    listen: SocketAddr,
    bridge: Arc<Bridge>,
    shutdown: CancellationToken,
) -> std::io::Result<()> {
    let listener = tokio::net::TcpListener::bind(listen).await?;
    serve_on(listener, bridge, shutdown).await
}

/// Serves the endpoints on a bound listener until `shutdown` (the daemon binds first, so a
/// taken port stops it before anything starts).
pub async fn serve_on(
    listener: tokio::net::TcpListener,
    bridge: Arc<Bridge>,
    shutdown: CancellationToken,
) -> std::io::Result<()> {
    serve_with(listener, bridge, None, shutdown).await
}

/// [`serve_on`], with the control surface ([`crate::control::web`]) beside the probes when
/// given. The probes stay open; the control routes check their token.
pub async fn serve_with(
    listener: tokio::net::TcpListener,
    bridge: Arc<Bridge>,
    control: Option<Router>,
    shutdown: CancellationToken,
) -> std::io::Result<()> {
    if let Ok(listen) = listener.local_addr() {
        tracing::info!(%listen, control = control.is_some(), "HTTP endpoint listening");
    }
    let mut registry = Registry::default();
    registry.register_collector(Box::new(BridgeCollector(bridge.clone())));
    let mut app = Router::new()
        .route("/healthz", get(healthz))
        .route("/readyz", get(readyz))
        .route("/metrics", get(metrics))
        .with_state((bridge, Arc::new(registry)));
    if let Some(control) = control {
        app = app.merge(control);
    }
    let slots = Arc::new(Slots::default());
    loop {
        let tcp = tokio::select! {
            _ = shutdown.cancelled() => break,
            accepted = listener.accept() => match accepted {
                Ok((tcp, _)) => tcp,
                Err(error) => {
                    tracing::warn!(%error, "cannot accept an HTTP connection");
                    tokio::time::sleep(ACCEPT_BACKOFF).await;
                    continue;
                }
            },
        };
        let (id, cut) = slots.admit();
        let service = hyper_util::service::TowerToHyperService::new(app.clone());
        let slots = slots.clone();
        let shutdown = shutdown.clone();
        tokio::spawn(async move {
            let connection = hyper::server::conn::http1::Builder::new()
                .timer(hyper_util::rt::TokioTimer::new())
                .header_read_timeout(HEADER_TIMEOUT)
                .serve_connection(hyper_util::rt::TokioIo::new(tcp), service)
                // A WebSocket (`/api`) leaves this connection once upgraded: its session is
                // bounded on its own (src/control/ws.rs), not by the lifetime below.
                .with_upgrades();
            tokio::pin!(connection);
            tokio::select! {
                _ = connection.as_mut() => {}
                _ = cut.cancelled() => {}
                _ = tokio::time::sleep(CONNECTION_LIFETIME) => {}
                _ = shutdown.cancelled() => {
                    connection.as_mut().graceful_shutdown();
                    let _ = tokio::time::timeout(SHUTDOWN_GRACE, connection).await;
                }
            }
            slots.release(id);
        });
    }
    Ok(())
}

/// The open HTTP connections, oldest first, at most [`MAX_HTTP_CONNECTIONS`].
#[derive(Default)]
struct Slots {
    open: Mutex<(u64, VecDeque<(u64, CancellationToken)>)>,
}

impl Slots {
    /// Registers a new connection, closing the oldest one when all slots are taken; returns
    /// its id and the token that closes it.
    fn admit(&self) -> (u64, CancellationToken) {
        let cut = CancellationToken::new();
        let Ok(mut guard) = self.open.lock() else {
            return (0, cut);
        };
        let (next, open) = &mut *guard;
        while open.len() >= MAX_HTTP_CONNECTIONS {
            if let Some((_, oldest)) = open.pop_front() {
                oldest.cancel();
            }
        }
        *next += 1;
        open.push_back((*next, cut.clone()));
        (*next, cut)
    }

    /// Forgets a closed connection.
    fn release(&self, id: u64) {
        if let Ok(mut guard) = self.open.lock()
            && let Some(at) = guard.1.iter().position(|(open, _)| *open == id)
        {
            guard.1.remove(at);
        }
    }
}

type AppState = (Arc<Bridge>, Arc<Registry>);

async fn healthz(State((bridge, _)): State<AppState>) -> impl IntoResponse {
    // Alive = our own publishing loop answers, whatever the broker and Rooms do.
    if bridge.link().alive(std::time::Duration::from_secs(2)).await {
        (StatusCode::OK, "ok\n")
    } else {
        (StatusCode::SERVICE_UNAVAILABLE, "outbox not responding\n")
    }
}

async fn readyz(State((bridge, _)): State<AppState>) -> impl IntoResponse {
    let (ready, body) = report(&bridge);
    let status = if ready {
        StatusCode::OK
    } else {
        StatusCode::SERVICE_UNAVAILABLE
    };
    (
        status,
        [(header::CONTENT_TYPE, "application/json")],
        body.to_string(),
    )
}

async fn metrics(State((_, registry)): State<AppState>) -> impl IntoResponse {
    let mut text = String::new();
    match prometheus_client::encoding::text::encode(&mut text, &registry) {
        Ok(()) => (
            StatusCode::OK,
            [(
                header::CONTENT_TYPE,
                "application/openmetrics-text; version=1.0.0; charset=utf-8",
            )],
            text,
        ),
        Err(_) => (
            StatusCode::INTERNAL_SERVER_ERROR,
            [(header::CONTENT_TYPE, "text/plain")],
            "encoding failed\n".to_owned(),
        ),
    }
}

/// Reads the bridge's counters at scrape time.
#[derive(Debug)]
struct BridgeCollector(Arc<Bridge>);

impl std::fmt::Debug for Bridge {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        f.write_str("Bridge")
    }
}

fn counter(
    encoder: &mut DescriptorEncoder,
    name: &str,
    help: &str,
    value: u64,
) -> std::fmt::Result {
    ConstCounter::new(value).encode(encoder.encode_descriptor(
        name,
        help,
        None,
        MetricType::Counter,
    )?)
}

impl Collector for BridgeCollector {
    fn encode(&self, mut encoder: DescriptorEncoder) -> std::fmt::Result {
        let bridge = &self.0;
        let mqtt = bridge.link().stats();
        ConstGauge::new(i64::from(bridge.link().is_connected())).encode(
            encoder.encode_descriptor(
                "trueconf2mqtt_mqtt_connected",
                "1 while the broker connection is up",
                None,
                MetricType::Gauge,
            )?,
        )?;
        counter(
            &mut encoder,
            "trueconf2mqtt_mqtt_connects",
            "Connections to the broker",
            mqtt.connects.load(Ordering::Relaxed),
        )?;
        counter(
            &mut encoder,
            "trueconf2mqtt_mqtt_published",
            "Messages handed to the broker",
            mqtt.published.load(Ordering::Relaxed),
        )?;
        counter(
            &mut encoder,
            "trueconf2mqtt_mqtt_dropped",
            "Events or responses dropped while the broker was away",
            mqtt.dropped.load(Ordering::Relaxed),
        )?;
        counter(
            &mut encoder,
            "trueconf2mqtt_mqtt_inbound_dropped",
            "Incoming messages dropped because the bridge fell behind",
            mqtt.inbound_dropped.load(Ordering::Relaxed),
        )?;
        counter(
            &mut encoder,
            "trueconf2mqtt_task_failures",
            "Long-lived tasks that panicked or ended unexpectedly (each was restarted)",
            bridge
                .task_failures()
                .failures()
                .values()
                .map(|f| f.failures)
                .sum(),
        )?;
        counter(
            &mut encoder,
            "trueconf2mqtt_mqtt_inbound_oversized",
            "Incoming messages over mqtt.max_payload_bytes, skipped unread and acknowledged",
            mqtt.inbound_oversized.load(Ordering::Relaxed),
        )?;
        counter(
            &mut encoder,
            "trueconf2mqtt_mqtt_publish_refused",
            "Publishes the broker refused (MQTT 5 PUBACK with a failure reason, e.g. an ACL)",
            mqtt.publish_refused.load(Ordering::Relaxed),
        )?;

        let links = bridge.room_links();
        let rooms: Vec<_> = bridge.rooms().collect();
        let mut family = |name: &str,
                          help: &str,
                          is_counter: bool,
                          value: &dyn Fn(&crate::bridge::RoomView) -> u64|
         -> std::fmt::Result {
            let kind = if is_counter {
                MetricType::Counter
            } else {
                MetricType::Gauge
            };
            let mut metric = encoder.encode_descriptor(name, help, None, kind)?;
            for room in &rooms {
                let labels = [("room", room.id)];
                let v = value(room);
                let e = metric.encode_family(&labels)?;
                if is_counter {
                    ConstCounter::new(v).encode(e)?;
                } else {
                    ConstGauge::new(i64::try_from(v).unwrap_or(i64::MAX)).encode(e)?;
                }
            }
            Ok(())
        };
        family(
            "trueconf2mqtt_room_online",
            "1 while the Room is connected and authenticated",
            false,
            &|r| u64::from(links.get(r.id).is_some_and(LinkState::is_online)),
        )?;
        family(
            "trueconf2mqtt_room_owned",
            "1 while this bridge instance serves the room (0: claiming it, or another instance does)",
            false,
            &|r| u64::from(bridge.ownership(r.id) == Some(Ownership::Owned)),
        )?;
        family(
            "trueconf2mqtt_room_connects",
            "Authenticated sessions with the Room",
            true,
            &|r| {
                r.client
                    .as_ref()
                    .map_or(0, |c| c.stats().connects.load(Ordering::Relaxed))
            },
        )?;
        family(
            "trueconf2mqtt_room_bad_frames",
            "Frames from the Room that could not be parsed",
            true,
            &|r| {
                r.client
                    .as_ref()
                    .map_or(0, |c| c.stats().bad_frames.load(Ordering::Relaxed))
            },
        )?;
        family(
            "trueconf2mqtt_room_unmatched_replies",
            "Replies from the Room that matched no request",
            true,
            &|r| {
                r.client
                    .as_ref()
                    .map_or(0, |c| c.stats().unmatched_replies.load(Ordering::Relaxed))
            },
        )?;
        family(
            "trueconf2mqtt_events",
            "Room events published",
            true,
            &|r| r.stats.events.load(Ordering::Relaxed),
        )?;
        family(
            "trueconf2mqtt_commands_ok",
            "Commands answered ok",
            true,
            &|r| r.stats.commands_ok.load(Ordering::Relaxed),
        )?;
        family(
            "trueconf2mqtt_commands_failed",
            "Commands answered with an error by the room task",
            true,
            &|r| r.stats.commands_failed.load(Ordering::Relaxed),
        )?;
        let mut histogram = encoder.encode_descriptor(
            "trueconf2mqtt_command_duration_seconds",
            "Time to run a command against the Room",
            None,
            MetricType::Histogram,
        )?;
        for room in &rooms {
            let labels = [("room", room.id)];
            room.stats
                .command_seconds
                .encode(histogram.encode_family(&labels)?)?;
        }
        Ok(())
    }
}
