//! One face for rumqttc's MQTT 3.1.1 and MQTT 5 clients.
//!
//! rumqttc has two parallel APIs (`rumqttc` and `rumqttc::v5`) with different packet types. The
//! link needs only a handful of operations from them, so this module maps both onto one small
//! set of types instead of writing the link twice.

use std::sync::{Arc, Once};
use std::time::Duration;

use bytes::Bytes;
use rumqttc::v5::mqttbytes::v5::PublishProperties;
use rumqttc::{QoS, TlsConfiguration, Transport};

use super::link::{Inbound, LinkOptions, Publish};
use crate::secret::Secret;

/// MQTT protocol version.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Default)]
pub enum Version {
    /// MQTT 3.1.1.
    #[default]
    V311,
    /// MQTT 5: request/response properties are honoured.
    V5,
}

/// TLS settings, checked and ready: server verification and an optional client certificate.
#[derive(Clone)]
pub struct TlsOptions {
    config: Arc<rustls::ClientConfig>,
}

impl std::fmt::Debug for TlsOptions {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        f.write_str("TlsOptions")
    }
}

impl TlsOptions {
    /// Builds the TLS settings from PEM data: CA certificates that verify the broker (`None`:
    /// the system roots) and an optional client certificate chain with its key.
    pub fn from_pem(
        ca_pem: Option<&[u8]>,
        client_auth: Option<(&[u8], &Secret)>,
    ) -> Result<TlsOptions, String> {
        Ok(TlsOptions {
            config: Arc::new(tls_config(ca_pem, client_auth)?),
        })
    }
}

/// A client handle of either version.
#[derive(Clone)]
pub(crate) enum Client {
    V4(rumqttc::AsyncClient),
    V5(rumqttc::v5::AsyncClient),
}

/// Why a `try_*` call failed.
#[derive(Debug)]
pub(crate) enum TryError {
    /// rumqttc's request channel is full: try again later.
    Full,
    /// Anything else (the event loop is gone).
    Other(String),
    /// This message can never be sent (an invalid topic): drop it rather than retry.
    Invalid(String),
}

/// What one poll of the event loop produced.
pub(crate) enum Polled {
    ConnAck {
        session_present: bool,
    },
    SubAck,
    Publish(Inbound),
    /// A publish over the incoming limit: rumqttc read past it without keeping it and
    /// acknowledged it, so it is not delivered again (patches/rumqttc-0.25.1).
    Oversized {
        topic: String,
        /// Size of the whole packet in bytes.
        size: usize,
    },
    /// MQTT 5: the broker refused one of our publishes (a PUBACK with a failure reason, e.g.
    /// an ACL saying not authorized).
    Refused {
        topic: String,
        reason: String,
    },
    /// A publish left rumqttc's request channel: there is room for another.
    Sent,
    /// DISCONNECT went out: the clean stop is complete.
    Disconnected,
    Other,
}

/// A failed poll: the message, and whether the broker refused us (credentials, not authorised).
pub(crate) struct PollError {
    pub message: String,
    pub refused: bool,
}

/// The event loop of either version.
pub(crate) enum EventLoop {
    V4(Box<rumqttc::EventLoop>),
    V5(Box<rumqttc::v5::EventLoop>),
}

fn v4_error(e: rumqttc::ClientError) -> TryError {
    match e {
        rumqttc::ClientError::TryRequest(_) => TryError::Full,
        other => TryError::Other(other.to_string()),
    }
}

fn v5_error(e: rumqttc::v5::ClientError) -> TryError {
    match e {
        rumqttc::v5::ClientError::TryRequest(_) => TryError::Full,
        other => TryError::Other(other.to_string()),
    }
}

fn v5_qos(qos: QoS) -> rumqttc::v5::mqttbytes::QoS {
    match qos {
        QoS::AtMostOnce => rumqttc::v5::mqttbytes::QoS::AtMostOnce,
        QoS::AtLeastOnce => rumqttc::v5::mqttbytes::QoS::AtLeastOnce,
        QoS::ExactlyOnce => rumqttc::v5::mqttbytes::QoS::ExactlyOnce,
    }
}

impl Client {
    /// Queues a publish; `correlation` is sent as MQTT 5 Correlation Data (ignored on 3.1.1).
    pub fn try_publish(
        &self,
        topic: &str,
        qos: QoS,
        retain: bool,
        payload: Bytes,
        correlation: Option<Bytes>,
    ) -> Result<(), TryError> {
        // rumqttc reports an invalid topic like a full channel; told apart here, so one bad
        // message cannot block everything queued behind it.
        if !rumqttc::valid_topic(topic) {
            return Err(TryError::Invalid(format!("invalid topic {topic:?}")));
        }
        // Not encodable (an MQTT string holds at most 65,535 bytes) or over our outgoing packet
        // limit: rumqttc would fail the connection on it and retry it after every reconnect.
        if topic.len() > MAX_TOPIC_BYTES || payload.len() > MAX_OUTGOING_PAYLOAD {
            return Err(TryError::Invalid(format!(
                "topic of {} bytes or payload of {} bytes too large to publish",
                topic.len(),
                payload.len()
            )));
        }
        match self {
            Client::V4(c) => c.try_publish(topic, qos, retain, payload).map_err(v4_error),
            Client::V5(c) => match correlation {
                None => c
                    .try_publish(topic, v5_qos(qos), retain, payload)
                    .map_err(v5_error),
                Some(data) => {
                    let properties = PublishProperties {
                        correlation_data: Some(data),
                        ..PublishProperties::default()
                    };
                    c.try_publish_with_properties(topic, v5_qos(qos), retain, payload, properties)
                        .map_err(v5_error)
                }
            },
        }
    }

    /// Requests waiting in rumqttc's request channel (patches/rumqttc-0.25.1).
    pub fn queued_requests(&self) -> usize {
        match self {
            Client::V4(c) => c.queued_requests(),
            Client::V5(c) => c.queued_requests(),
        }
    }

    pub fn try_subscribe(&self, filter: &str, qos: QoS) -> Result<(), TryError> {
        match self {
            Client::V4(c) => c.try_subscribe(filter, qos).map_err(v4_error),
            Client::V5(c) => c.try_subscribe(filter, v5_qos(qos)).map_err(v5_error),
        }
    }

    pub fn try_disconnect(&self) -> Result<(), TryError> {
        match self {
            Client::V4(c) => c.try_disconnect().map_err(v4_error),
            Client::V5(c) => c.try_disconnect().map_err(v5_error),
        }
    }
}

impl EventLoop {
    /// Takes the publishes rumqttc keeps to send again on the next connection: those not yet
    /// acknowledged, and those still queued, when the connection broke. rumqttc drops them
    /// without a word when the broker comes back without our session (`session_present =
    /// false`: it restarted without persistence, or crashed before saving); taken out here, the
    /// outbox sends them again whatever the broker remembers. Other requests stay.
    pub fn take_unsent(&mut self) -> Vec<Publish> {
        let mut taken = Vec::new();
        // Requests still in the channel join `pending` first (rumqttc moved what it had when
        // the connection broke; this takes what came after).
        match self {
            EventLoop::V4(l) => l.clean(),
            EventLoop::V5(l) => l.clean(),
        }
        match self {
            EventLoop::V4(l) => l.pending.retain(|request| match request {
                rumqttc::Request::Publish(p) => {
                    taken.push(Publish {
                        topic: p.topic.clone(),
                        payload: p.payload.clone(),
                        retain: p.retain,
                        correlation: None,
                        urgent: false,
                    });
                    false
                }
                _ => true,
            }),
            EventLoop::V5(l) => l.pending.retain(|request| match request {
                rumqttc::v5::Request::Publish(p) => {
                    taken.push(Publish {
                        topic: String::from_utf8_lossy(&p.topic).into_owned(),
                        payload: p.payload.clone(),
                        retain: p.retain,
                        correlation: p
                            .properties
                            .as_ref()
                            .and_then(|props| props.correlation_data.clone()),
                        urgent: false,
                    });
                    false
                }
                _ => true,
            }),
        }
        taken
    }

    pub async fn poll(&mut self) -> Result<Polled, PollError> {
        match self {
            EventLoop::V4(l) => {
                use rumqttc::{Event, Outgoing, Packet};
                match l.poll().await {
                    Ok(Event::Incoming(Packet::ConnAck(ack))) => Ok(Polled::ConnAck {
                        session_present: ack.session_present,
                    }),
                    Ok(Event::Incoming(Packet::SubAck(_))) => Ok(Polled::SubAck),
                    Ok(Event::Incoming(Packet::OversizedPublish(o))) => Ok(Polled::Oversized {
                        topic: o.publish.topic,
                        size: o.size,
                    }),
                    Ok(Event::Incoming(Packet::Publish(p))) => Ok(Polled::Publish(Inbound {
                        topic: p.topic,
                        payload: p.payload,
                        retain: p.retain,
                        response_topic: None,
                        correlation: None,
                        expiry: None,
                        queued_for: None,
                    })),
                    Ok(Event::Outgoing(Outgoing::Publish(_))) => Ok(Polled::Sent),
                    Ok(Event::Outgoing(Outgoing::Disconnect)) => Ok(Polled::Disconnected),
                    Ok(_) => Ok(Polled::Other),
                    Err(e) => Err(PollError {
                        refused: matches!(e, rumqttc::ConnectionError::ConnectionRefused(_)),
                        message: e.to_string(),
                    }),
                }
            }
            EventLoop::V5(l) => {
                use rumqttc::Outgoing;
                use rumqttc::v5::mqttbytes::v5::Packet;
                use rumqttc::v5::{ConnectionError, Event};
                match l.poll().await {
                    Ok(Event::Incoming(Packet::ConnAck(ack))) => Ok(Polled::ConnAck {
                        session_present: ack.session_present,
                    }),
                    Ok(Event::Incoming(Packet::SubAck(_))) => Ok(Polled::SubAck),
                    Ok(Event::Incoming(Packet::OversizedPublish(o))) => Ok(Polled::Oversized {
                        topic: String::from_utf8_lossy(&o.publish.topic).into_owned(),
                        size: o.size,
                    }),
                    Ok(Event::Incoming(Packet::PubAckRefused(r))) => Ok(Polled::Refused {
                        topic: String::from_utf8_lossy(&r.topic).into_owned(),
                        reason: format!("{:?}", r.reason),
                    }),
                    Ok(Event::Incoming(Packet::Publish(p))) => {
                        let properties = p.properties.unwrap_or_default();
                        Ok(Polled::Publish(Inbound {
                            topic: String::from_utf8_lossy(&p.topic).into_owned(),
                            payload: p.payload,
                            retain: p.retain,
                            response_topic: properties.response_topic,
                            correlation: properties.correlation_data,
                            expiry: properties.message_expiry_interval,
                            queued_for: None,
                        }))
                    }
                    Ok(Event::Outgoing(Outgoing::Publish(_))) => Ok(Polled::Sent),
                    Ok(Event::Outgoing(Outgoing::Disconnect)) => Ok(Polled::Disconnected),
                    Ok(_) => Ok(Polled::Other),
                    Err(e) => Err(PollError {
                        refused: matches!(e, ConnectionError::ConnectionRefused(_)),
                        message: e.to_string(),
                    }),
                }
            }
        }
    }
}

/// Installs the `ring` crypto provider once: rustls panics at first use when it cannot tell
/// which provider to use.
fn install_crypto_provider() {
    static ONCE: Once = Once::new();
    ONCE.call_once(|| {
        let _ = rustls::crypto::ring::default_provider().install_default();
    });
}

/// Builds the rustls configuration: our own, because rumqttc's default loads the system roots
/// with an `unwrap` (rumqtt #992).
fn tls_config(
    ca_pem: Option<&[u8]>,
    client_auth: Option<(&[u8], &Secret)>,
) -> Result<rustls::ClientConfig, String> {
    use rustls::pki_types::pem::PemObject;
    use rustls::pki_types::{CertificateDer, PrivateKeyDer};
    install_crypto_provider();
    let mut roots = rustls::RootCertStore::empty();
    match ca_pem {
        Some(pem) => {
            for cert in CertificateDer::pem_slice_iter(pem) {
                let cert = cert.map_err(|e| format!("CA file: {e}"))?;
                roots
                    .add(cert)
                    .map_err(|e| format!("CA file: unusable certificate: {e}"))?;
            }
            if roots.is_empty() {
                return Err("CA file: no certificate found".into());
            }
        }
        None => {
            let native = rustls_native_certs::load_native_certs();
            let (added, _) = roots.add_parsable_certificates(native.certs);
            if added == 0 {
                return Err("no system CA certificates found; set mqtt.tls.ca_file".into());
            }
        }
    }
    let builder = rustls::ClientConfig::builder().with_root_certificates(roots);
    match client_auth {
        None => Ok(builder.with_no_client_auth()),
        Some((cert_pem, key_pem)) => {
            let certs = CertificateDer::pem_slice_iter(cert_pem)
                .collect::<Result<Vec<_>, _>>()
                .map_err(|e| format!("client certificate: {e}"))?;
            let key = PrivateKeyDer::from_pem_slice(key_pem.expose().as_bytes())
                .map_err(|_| "client key: not a PEM private key".to_owned())?;
            builder
                .with_client_auth_cert(certs, key)
                .map_err(|e| format!("client certificate and key: {e}"))
        }
    }
}

/// Longest topic MQTT can encode (a length-prefixed string).
pub(crate) const MAX_TOPIC_BYTES: usize = 65_535;

/// Largest payload the bridge publishes; rumqttc's outgoing limit is set to it.
pub const MAX_OUTGOING_PAYLOAD: usize = 1 << 20;

/// Most requests rumqttc writes before one flush: a burst of events goes out in a few large
/// writes instead of one system call per publish (over half of the bridge's CPU in a burst
/// before). QoS 1 publishes are bounded by [`INFLIGHT`] anyway; this bounds QoS 0 and the time
/// one batch keeps the event loop from reading.
const REQUEST_BATCH: usize = 128;

/// Unacknowledged QoS 1 publishes on the wire, both versions. Without it rumqttc's MQTT 5 client
/// preallocates 65,535 inflight slots (about 220 bytes each) when it is built: the idle daemon
/// took 24 MiB (peak 37) on MQTT 5 against 10 MiB on 3.1.1.
const INFLIGHT: u16 = 100;

/// Room in an incoming packet beyond its payload: the fixed header, the topic and an MQTT 5
/// response topic at their longest (2 + 65,535 bytes each), the packet id and other
/// properties.
const PACKET_HEADROOM: usize = 2 * (2 + MAX_TOPIC_BYTES) + 4096;

/// Largest incoming packet accepted for a `max_payload_bytes` payload limit
/// (`mqtt.max_payload_bytes`). Larger publishes are skipped and acknowledged by rumqttc
/// without being kept (the session survives them); on MQTT 5 the broker is told this limit in
/// CONNECT (Maximum Packet Size) and does not send them at all. Payloads between the two
/// limits reach the bridge, which refuses them with a response.
pub fn incoming_packet_limit(max_payload_bytes: usize) -> usize {
    max_payload_bytes.saturating_add(PACKET_HEADROOM)
}

/// Socket options: Nagle off, or a response waits ~40 ms for the broker's delayed ACK after the
/// command's PUBACK (measured with the bridge benchmark, benches/bridge/: 43.7 ms → 0.8 ms per command).
fn network_options() -> rumqttc::NetworkOptions {
    let mut network = rumqttc::NetworkOptions::new();
    network.set_tcp_nodelay(true);
    network
}

/// Creates the client and event loop for `options`. An empty `will_topic` means no last will: a
/// short-lived reader (`trueconf2mqtt status`) must never leave a retained `offline` behind.
pub(crate) fn build(options: &LinkOptions, capacity: usize) -> (Client, EventLoop) {
    match options.version {
        Version::V311 => {
            let mqtt = v4_options(options, &options.host, options.port);
            let (client, mut eventloop) = rumqttc::AsyncClient::new(mqtt, capacity);
            eventloop.set_network_options(network_options());
            (Client::V4(client), EventLoop::V4(Box::new(eventloop)))
        }
        Version::V5 => {
            let mqtt = v5_options(options, &options.host, options.port);
            let (client, eventloop) = rumqttc::v5::AsyncClient::new(mqtt, capacity);
            (Client::V5(client), EventLoop::V5(Box::new(eventloop)))
        }
    }
}

impl EventLoop {
    /// Points the next connection attempt at another broker node, every other option kept
    /// (rumqttc reads its options on each connect).
    pub fn set_broker(&mut self, options: &LinkOptions, host: &str, port: u16) {
        match self {
            EventLoop::V4(l) => l.mqtt_options = v4_options(options, host, port),
            EventLoop::V5(l) => l.options = v5_options(options, host, port),
        }
    }
}

fn transport(options: &LinkOptions) -> Transport {
    match &options.tls {
        None => Transport::tcp(),
        Some(tls) => Transport::tls_with_config(TlsConfiguration::Rustls(tls.config.clone())),
    }
}

fn v4_options(options: &LinkOptions, host: &str, port: u16) -> rumqttc::MqttOptions {
    use rumqttc::{LastWill, MqttOptions};
    let keepalive = options.keepalive.max(Duration::from_secs(1));
    let transport = transport(options);
    let mut mqtt = MqttOptions::new(&options.client_id, host, port);
    mqtt.set_keep_alive(keepalive);
    mqtt.set_clean_session(options.clean_session);
    mqtt.set_max_packet_size(options.max_incoming_packet, MAX_OUTGOING_PAYLOAD);
    if !options.will_topic.is_empty() {
        mqtt.set_last_will(LastWill::new(
            &options.will_topic,
            "offline",
            QoS::AtLeastOnce,
            true,
        ));
    }
    mqtt.set_inflight(INFLIGHT);
    mqtt.set_max_request_batch(REQUEST_BATCH);
    mqtt.set_transport(transport);
    if let Some((user, password)) = &options.credentials {
        mqtt.set_credentials(user, password.expose());
    }
    mqtt
}

fn v5_options(options: &LinkOptions, host: &str, port: u16) -> rumqttc::v5::MqttOptions {
    use rumqttc::v5::MqttOptions;
    use rumqttc::v5::mqttbytes::v5::LastWill;
    let keepalive = options.keepalive.max(Duration::from_secs(1));
    let transport = transport(options);
    let mut mqtt = MqttOptions::new(&options.client_id, host, port);
    mqtt.set_keep_alive(keepalive);
    mqtt.set_clean_start(options.clean_session);
    if !options.clean_session {
        // MQTT 5 ends a session at disconnect unless an expiry is set: keep it a day.
        mqtt.set_session_expiry_interval(Some(24 * 3600));
    }
    mqtt.set_max_packet_size(Some(
        u32::try_from(options.max_incoming_packet).unwrap_or(u32::MAX),
    ));
    if !options.will_topic.is_empty() {
        mqtt.set_last_will(LastWill::new(
            &options.will_topic,
            "offline",
            v5_qos(QoS::AtLeastOnce),
            true,
            None,
        ));
    }
    mqtt.set_outgoing_inflight_upper_limit(INFLIGHT);
    mqtt.set_max_request_batch(REQUEST_BATCH);
    mqtt.set_transport(transport);
    mqtt.set_network_options(network_options());
    if let Some((user, password)) = &options.credentials {
        mqtt.set_credentials(user, password.expose());
    }
    mqtt
}
