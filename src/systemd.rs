//! systemd integration: `READY=1`, readable `STATUS=` lines and the watchdog.
//!
//! All of it is a no-op outside systemd (`NOTIFY_SOCKET` unset). `READY=1` is sent once the
//! configuration is valid and the tasks are running, not when the Room and broker answer: an
//! outage at boot must show as a degraded status, not as a start timeout and a restart loop.

use std::sync::Arc;
use std::time::Duration;

use sd_notify::NotifyState;
use tokio_util::sync::CancellationToken;

use crate::bridge::Bridge;

/// Tells systemd the daemon is up.
pub fn ready() {
    let _ = sd_notify::notify(&[NotifyState::Ready]);
}

/// Tells systemd the daemon is stopping.
pub fn stopping() {
    let _ = sd_notify::notify(&[NotifyState::Stopping, NotifyState::Status("stopping")]);
}

/// One line for `systemctl status`: the broker and every room.
pub fn status_line(bridge: &Bridge) -> String {
    let mqtt = if bridge.link().is_connected() {
        "connected"
    } else {
        "reconnecting"
    };
    let links = bridge.room_links();
    let online = links.values().filter(|l| l.is_online()).count();
    let rooms: Vec<String> = links
        .iter()
        .map(|(id, state)| format!("{id}: {}", state.name()))
        .collect();
    format!(
        "mqtt {mqtt}; rooms online {online}/{}; {}",
        links.len(),
        rooms.join(", ")
    )
}

/// Keeps `STATUS=` current and, when systemd asks for it, sends `WATCHDOG=1` while our own
/// loops answer (so a hung daemon is restarted, but a broker outage is not a reason to).
pub fn supervise(bridge: Arc<Bridge>, shutdown: CancellationToken) {
    let watchdog = sd_notify::watchdog_enabled();
    let status_bridge = bridge.clone();
    let status_shutdown = shutdown.clone();
    tokio::spawn(async move {
        let bridge = status_bridge;
        let mut changes = bridge.changes();
        let mut connection = bridge.link().connection();
        loop {
            let _ = sd_notify::notify(&[NotifyState::Status(&status_line(&bridge))]);
            tokio::select! {
                _ = status_shutdown.cancelled() => break,
                r = changes.changed() => if r.is_err() { break },
                r = connection.changed() => if r.is_err() { break },
            }
        }
    });
    if let Some(interval) = watchdog {
        tokio::spawn(async move {
            let period = (interval / 2).max(Duration::from_millis(100));
            let mut tick = tokio::time::interval(period);
            loop {
                tokio::select! {
                    _ = shutdown.cancelled() => break,
                    _ = tick.tick() => {
                        if bridge.link().alive(period / 2).await {
                            let _ = sd_notify::notify(&[NotifyState::Watchdog]);
                        } else {
                            tracing::error!("the publishing loop does not answer; withholding the watchdog ping");
                        }
                    }
                }
            }
        });
    }
}
