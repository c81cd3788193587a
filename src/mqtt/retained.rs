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

/// How long a retained message may take to reach the other nodes of a cluster: ordinary
/// replication takes milliseconds; a broker that stores retained messages per node (RabbitMQ)
/// never shows it.
pub const REPLICATION_BOUND: Duration = Duration::from_secs(2);

/// Whether the nodes of `options` (`host:port`, then `failover`) share retained messages:
/// publishes a random token retained on `topic` at the first node, looks for it from every
/// other node for up to `bound`, and clears it. `Err` names a node that never saw it; a node
/// that cannot be reached is skipped (it is down, not proven to disagree).
pub async fn check_retained_shared(
    options: &LinkOptions,
    topic: &str,
    bound: Duration,
) -> Result<(), String> {
    let token = format!("replication-check-{}", fastrand::u64(..));
    let first = format!("{}:{}", options.host, options.port);
    publish_retained_once(options, topic, token.as_bytes(), bound).await?;
    let mut outcome = Ok(());
    for (host, port) in &options.failover {
        let node = LinkOptions {
            host: host.clone(),
            port: *port,
            failover: Vec::new(),
            ..options.clone()
        };
        let deadline = tokio::time::Instant::now() + bound;
        let mut seen = false;
        let mut reached = false;
        while !seen && tokio::time::Instant::now() < deadline {
            match read_retained(&node, "replication", &[topic.to_owned()], bound).await {
                Ok(messages) => {
                    reached = true;
                    seen = messages.iter().any(|m| m.payload == token.as_bytes());
                }
                Err(_) => break,
            }
        }
        if reached && !seen {
            outcome = Err(format!(
                "a retained message published on {first} was not visible on {host}:{port} within {} s: these broker nodes do not share retained messages (RabbitMQ stores them per node), so instances on different nodes cannot see each other's room claims",
                bound.as_secs_f32()
            ));
            break;
        }
    }
    let _ = publish_retained_once(options, topic, b"", bound).await;
    outcome
}

/// Publishes one retained message at `options.host:port` on a throwaway connection.
async fn publish_retained_once(
    options: &LinkOptions,
    topic: &str,
    payload: &[u8],
    timeout: Duration,
) -> Result<(), String> {
    let options = LinkOptions {
        client_id: format!("{}-replication-{}", options.client_id, fastrand::u32(..)),
        clean_session: true,
        will_topic: String::new(),
        ..options.clone()
    };
    let broker = format!("{}:{}", options.host, options.port);
    let (client, mut eventloop) = client::build(&options, 4);
    client
        .try_publish(
            topic,
            QoS::AtLeastOnce,
            true,
            bytes::Bytes::copy_from_slice(payload),
            None,
        )
        .map_err(|_| "cannot queue the publish".to_owned())?;
    let _ = client.try_disconnect();
    tokio::time::timeout(timeout, async {
        loop {
            match eventloop.poll().await {
                Ok(Polled::Disconnected) => return Ok(()),
                Ok(_) => {}
                Err(e) => return Err(poll_error(&broker, &options, &e.message, e.refused)),
            }
        }
    })
    .await
    .map_err(|_| format!("no answer from the broker at {broker}"))?
}
