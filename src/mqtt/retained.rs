//! Reading what a broker holds retained, on a short connection of its own: `status` reads the
//! bridge's state with it, and the discovery sweep the configs it published once.
//!
//! The session is throwaway: a client id of its own, a clean session and no last will, so
//! reading never takes over another session nor leaves anything behind on the broker.

use std::time::Duration;

use rumqttc::QoS;

use super::client::{self, Polled};
use super::{Inbound, LinkOptions};

/// How long after the last retained message (or the SUBACK) the broker counts as done sending.
const QUIET: Duration = Duration::from_millis(300);

/// Connects as `options` say (address, credentials, MQTT version, TLS), with client id
/// `<client_id>-<suffix>-<random>`, subscribes to `filters` and returns the retained messages
/// that arrive until nothing new came for a moment (at most `timeout`).
pub async fn read_retained(
    options: &LinkOptions,
    suffix: &str,
    filters: &[String],
    timeout: Duration,
) -> Result<Vec<Inbound>, String> {
    let options = LinkOptions {
        client_id: format!("{}-{suffix}-{}", options.client_id, fastrand::u32(..)),
        clean_session: true,
        will_topic: String::new(),
        keepalive: Duration::from_secs(10),
        max_incoming_packet: 4 << 20,
        ..options.clone()
    };
    let broker = format!("{}:{}", options.host, options.port);
    let (client, mut eventloop) = client::build(&options, filters.len().max(1));
    for filter in filters {
        client
            .try_subscribe(filter, QoS::AtMostOnce)
            .map_err(|_| "cannot queue the subscriptions".to_owned())?;
    }
    let mut retained = Vec::new();
    let deadline = tokio::time::Instant::now() + timeout;
    let mut quiet_until: Option<tokio::time::Instant> = None;
    loop {
        let wait_until = quiet_until.map_or(deadline, |q| q.min(deadline));
        let polled = match tokio::time::timeout_at(wait_until, eventloop.poll()).await {
            Err(_) if quiet_until.is_some() => break,
            Err(_) => return Err(format!("no answer from the broker at {broker}")),
            Ok(Err(e)) => return Err(poll_error(&broker, &options, &e.message, e.refused)),
            Ok(Ok(polled)) => polled,
        };
        match polled {
            Polled::SubAck => quiet_until = Some(tokio::time::Instant::now() + QUIET),
            Polled::Publish(inbound) => {
                quiet_until = Some(tokio::time::Instant::now() + QUIET);
                if inbound.retain {
                    retained.push(inbound);
                }
            }
            _ => {}
        }
    }
    let _ = client.try_disconnect();
    // Let the DISCONNECT go out (bounded): a dropped socket would be a lost connection to the
    // broker, not a clean goodbye.
    let _ = tokio::time::timeout(Duration::from_millis(500), async {
        while let Ok(polled) = eventloop.poll().await {
            if matches!(polled, Polled::Disconnected) {
                break;
            }
        }
    })
    .await;
    Ok(retained)
}

/// A connection failure in words, with what to check. rumqttc's messages name the cause
/// (refusal code, TLS alert, certificate problem) and never the credentials.
fn poll_error(broker: &str, options: &LinkOptions, message: &str, refused: bool) -> String {
    let lower = message.to_lowercase();
    if refused {
        let hint = if options.credentials.is_some() {
            "check mqtt.username and mqtt.password"
        } else {
            "the broker may need mqtt.username and mqtt.password"
        };
        format!("broker {broker} refused the connection: {message} ({hint})")
    } else if options.tls.is_some() && (lower.contains("tls") || lower.contains("certificate")) {
        format!(
            "TLS with broker {broker} failed: {message} (check mqtt.tls.ca_file: the CA that \
             signed the broker's certificate for mqtt.host; cert_file and key_file if the broker \
             asks for a client certificate)"
        )
    } else {
        format!("broker {broker}: {message}")
    }
}
