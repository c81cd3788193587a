//! `trueconf2mqtt demo`: the whole bridge on one machine, with nothing to install.
//!
//! ```text
//!  simulated Room ──ws──▶ bridge ──▶ MQTT broker ──▶ mosquitto_sub, Home Assistant, panels
//!   ▲ (scripted life)                (embedded rumqttd, or --broker host:port)
//!   └──── the script also answers a call through the broker, like a panel would
//! ```
//!
//! [`start_demo`] starts a simulated Room, an MQTT broker (an embedded `rumqttd` on a free
//! port unless an existing broker is named) and the bridge, configured from
//! [`Settings::embedded_default`] pointed at both; it returns once the Room is reported
//! `online` *through the broker*, so the whole chain is known to work. A script then gives the
//! Room a life: every pace (15 s by default; a step waits one to one and a half paces)
//! something happens — an incoming call that the script accepts after a third of a pace by
//! publishing `accept` to `<base>/<room>/set/call`, participants joining and leaving, a chat
//! message, the conference owner muting the microphone, the remote side hanging up, a call
//! left ringing until the caller gives up. The script is a fixed list, so what happens next is
//! predictable; anything done by hand in between (hanging up from Home Assistant, say) makes
//! the next step impossible, and the script then tidies up and starts again from the top.
//!
//! ## The embedded broker
//!
//! `rumqttd` 0.20 has no stop API and its `start()` blocks, so it runs in its own thread for
//! the life of the process, on a port picked beforehand (it cannot report the port it bound).
//! Readiness is checked with a real MQTT CONNECT, not a TCP probe. What was checked against
//! the bridge: retained messages are stored and delivered to later subscribers (with the
//! retain flag), QoS 1 publishes and subscriptions work both ways, and the last will is kept.
//! Its known limits, none of which the demo runs into:
//!
//! * retained messages are not re-sent on a *resumed* session (rumqtt #1069): the demo's
//!   bridge uses a clean session (`clean_session = true` in the embedded default);
//! * a new subscription gets at most as many retained messages as the subscriber has free
//!   in-flight slots (100, hard-coded, for QoS 1; `max_outgoing_packet_count` for QoS 0) and
//!   silently loses the rest; one Room is ~60 retained topics, so this only matters with
//!   several rooms and a `#` subscription;
//! * no persistence and no authentication: a demo broker, bound to 127.0.0.1 by default.

use std::collections::HashMap;
use std::fmt::Write as _;
use std::net::{IpAddr, Ipv4Addr, SocketAddr};
use std::sync::Arc;
use std::time::{Duration, Instant};

use clap::Args;
use tokio::sync::{mpsc, watch};
use tokio::task::JoinHandle;
use tokio_util::sync::CancellationToken;

use crate::bridge::{self, Bridge, Tasks};
use crate::config::Settings;
use crate::mqtt::{LinkOptions, MqttLink, Publish, Started};
use crate::simulator::{SimConfig, SimRoom, StartState};
use crate::surface::Topics;

/// Options of `trueconf2mqtt demo`.
#[derive(Debug, Clone, Args)]
pub struct DemoArgs {
    /// Use this MQTT broker (HOST:PORT, anonymous access) instead of starting an embedded one.
    /// TRUECONF2MQTT__MQTT__USERNAME / __PASSWORD apply when it needs a login.
    #[arg(long, value_name = "HOST:PORT")]
    pub broker: Option<String>,
    /// Where the embedded broker listens (port 0 = a free one). Use 0.0.0.0:1883 to let Home
    /// Assistant on another machine or in a container connect (no authentication!). A port
    /// already taken (e.g. by mosquitto) is an error: the demo never publishes into a broker it
    /// did not start unless --broker names it.
    #[arg(
        long,
        value_name = "ADDR:PORT",
        default_value = "127.0.0.1:0",
        conflicts_with = "broker"
    )]
    pub listen: SocketAddr,
    /// Seconds between scripted events (each step waits one to one and a half of this).
    #[arg(long, value_name = "SECONDS", default_value_t = 15,
          value_parser = clap::value_parser!(u64).range(1..=3600))]
    pub pace: u64,
}

/// Which broker the demo uses.
#[derive(Debug, Clone, PartialEq, Eq)]
pub enum BrokerChoice {
    /// Start `rumqttd` in this process, listening here (port 0 = a free one).
    Embedded {
        /// Listen address.
        listen: SocketAddr,
    },
    /// Use a running broker.
    External {
        /// Host name or address.
        host: String,
        /// Port.
        port: u16,
    },
}

/// What [`start_demo`] starts.
#[derive(Debug, Clone)]
pub struct DemoOptions {
    /// The broker.
    pub broker: BrokerChoice,
    /// The script's pace: a step waits one to one and a half of it (accepting a call a third).
    pub pace: Duration,
    /// Environment overrides applied to the embedded default configuration
    /// (`TRUECONF2MQTT__…`, `CREDENTIALS_DIRECTORY`); the broker and Room addresses are always
    /// the demo's own.
    pub env: HashMap<String, String>,
    /// Print the script's narration on stdout.
    pub narrate: bool,
    /// How long to wait for the broker and then for the Room to be reported online.
    pub ready_timeout: Duration,
}

impl Default for DemoOptions {
    /// An embedded broker on 127.0.0.1 and a free port, a 15 s pace, no environment.
    fn default() -> DemoOptions {
        DemoOptions {
            broker: BrokerChoice::Embedded {
                listen: SocketAddr::new(IpAddr::V4(Ipv4Addr::LOCALHOST), 0),
            },
            pace: Duration::from_secs(15),
            env: HashMap::new(),
            narrate: true,
            ready_timeout: Duration::from_secs(20),
        }
    }
}

/// A running demo. Stop it with [`DemoHandle::stop`].
pub struct DemoHandle {
    /// Host to give MQTT clients on this machine.
    pub broker_host: String,
    /// Broker port.
    pub broker_port: u16,
    /// Whether the broker is the embedded `rumqttd`.
    pub embedded_broker: bool,
    /// Where the embedded broker listens (`None` for an external broker).
    pub broker_listen: Option<SocketAddr>,
    /// The simulated Room.
    pub room: SimRoom,
    /// Its id in topics (`demo-room`).
    pub room_id: String,
    /// Its display name (the Home Assistant device name).
    pub room_name: String,
    /// Base topic of the bridge.
    pub base_topic: String,
    /// Home Assistant discovery prefix (`None` when discovery is off).
    pub discovery_prefix: Option<String>,
    /// The running bridge.
    pub bridge: Arc<Bridge>,
    /// The script's pace.
    pub pace: Duration,
    tasks: Tasks,
    shutdown: CancellationToken,
    script_cancel: CancellationToken,
    script: JoinHandle<()>,
    script_link: ScriptLink,
    /// How to reach an external broker to clear the demo's retained topics at the end.
    clear_with: Option<LinkOptions>,
}

/// The longest [`clear_retained`] collects (a broker with much unrelated retained data).
const CLEAR_MAX: Duration = Duration::from_secs(5);

/// How many collect-and-delete rounds [`clear_retained`] makes at most (the broker confirms
/// nothing about a deletion, so the next round checks the previous one).
const CLEAR_ROUNDS: usize = 3;

/// Publishes an empty retained message on every retained topic the demo left on the broker:
/// `<base>/<room>/…`, the room's discovery topics, and `<base>/bridge/state|info` if
/// `bridge/info` names the demo's `instance`. Returns how many topics it cleared.
async fn clear_retained(
    mut options: LinkOptions,
    base: &str,
    room: &str,
    discovery_prefix: Option<&str>,
    instance: &str,
) -> usize {
    options.client_id = format!("{}-clear", options.client_id);
    let bridge_info = Topics::new(base).bridge_info();
    let bridge_state = Topics::new(base).bridge_state();
    let mut filters = vec![
        format!("{base}/{room}/#"),
        bridge_info.clone(),
        bridge_state.clone(),
    ];
    if let Some(prefix) = discovery_prefix {
        filters.push(format!(
            "{prefix}/+/{}_{room}/#",
            crate::homeassistant::ORIGIN_NAME
        ));
    }
    let mut cleared = std::collections::HashSet::new();
    for _ in 0..CLEAR_ROUNDS {
        let retained = collect_retained(options.clone(), filters.clone()).await;
        let ours = |payload: &[u8]| {
            serde_json::from_slice::<serde_json::Value>(payload)
                .is_ok_and(|info| info["instance"] == instance)
        };
        let demo_bridge = retained
            .iter()
            .any(|(topic, payload)| *topic == bridge_info && ours(payload));
        let clear: Vec<String> = retained
            .into_iter()
            .map(|(topic, _)| topic)
            .filter(|topic| demo_bridge || (*topic != bridge_info && *topic != bridge_state))
            .collect();
        if clear.is_empty() {
            break;
        }
        publish_deletions(options.clone(), &clear).await;
        cleared.extend(clear);
    }
    cleared.len()
}

/// The non-empty retained messages on `filters`, as the broker replays them to a new
/// subscription. The end of the replay is a marker the client sends itself after subscribing
/// (outside the bridge's topics): the broker delivers it after the retained messages of the
/// subscriptions made before it.
async fn collect_retained(
    options: LinkOptions,
    mut filters: Vec<String>,
) -> Vec<(String, bytes::Bytes)> {
    let marker = format!("trueconf2mqtt-demo/clear/{}", fastrand::u64(..));
    filters.push(marker.clone());
    let cancel = CancellationToken::new();
    let Started {
        link,
        mut inbound,
        task,
    } = MqttLink::start(options, filters, cancel.clone());
    let mut retained = Vec::new();
    let until = tokio::time::Instant::now() + CLEAR_MAX;
    let mut connection = link.connection();
    let connected = tokio::time::timeout_at(until, connection.wait_for(|c| c.connected))
        .await
        .is_ok_and(|r| r.is_ok());
    drop(connection);
    if connected {
        link.publish(Publish::transient(marker.clone(), b"end".to_vec()));
        while let Ok(Some(message)) = tokio::time::timeout_at(until, inbound.recv()).await {
            if message.topic == marker {
                break;
            }
            if message.retain && !message.payload.is_empty() {
                retained.push((message.topic, message.payload));
            }
            if tokio::time::Instant::now() >= until {
                break;
            }
        }
    }
    let _ = tokio::time::timeout(Duration::from_millis(500), link.disconnect()).await;
    cancel.cancel();
    let _ = task.await;
    retained
}

/// Deletes `topics` (empty retained payloads) from a client that subscribes to nothing.
async fn publish_deletions(mut options: LinkOptions, topics: &[String]) {
    options.client_id.push_str("-2");
    let cancel = CancellationToken::new();
    let Started { link, task, .. } = MqttLink::start(options, Vec::new(), cancel.clone());
    let mut connection = link.connection();
    let _ = tokio::time::timeout(CLEAR_MAX, connection.wait_for(|c| c.connected)).await;
    drop(connection);
    for topic in topics {
        link.publish(Publish::retained(topic.clone(), ""));
    }
    link.flush(Duration::from_secs(2)).await;
    let _ = tokio::time::timeout(Duration::from_millis(500), link.disconnect()).await;
    let _ = tokio::time::timeout(Duration::from_secs(1), task).await;
    cancel.cancel();
}

/// Parses `host:port`, `[v6]:port` or a bare host (port 1883).
pub fn parse_broker(text: &str) -> Result<(String, u16), String> {
    let text = text.trim();
    if let Ok(addr) = text.parse::<SocketAddr>() {
        return Ok((addr.ip().to_string(), addr.port()));
    }
    let (host, port) = match text.rsplit_once(':') {
        Some((host, port)) if !host.contains(':') => {
            let port = port
                .parse::<u16>()
                .ok()
                .filter(|p| *p != 0)
                .ok_or_else(|| format!("--broker: '{port}' is not a port (1–65535)"))?;
            (host, port)
        }
        _ => (text.trim_start_matches('[').trim_end_matches(']'), 1883),
    };
    if host.is_empty() || host.contains(['/', ' ']) {
        return Err(format!(
            "--broker: expected HOST:PORT (e.g. 127.0.0.1:1883), got '{text}'"
        ));
    }
    Ok((host.to_owned(), port))
}

/// `trueconf2mqtt demo`: starts everything, prints how to watch it, runs until `shutdown`.
pub async fn run(args: DemoArgs, shutdown: CancellationToken) -> Result<(), String> {
    let broker = match &args.broker {
        Some(text) => {
            let (host, port) = parse_broker(text)?;
            BrokerChoice::External { host, port }
        }
        None => BrokerChoice::Embedded {
            listen: args.listen,
        },
    };
    let env = std::env::vars()
        .filter(|(k, _)| {
            k.to_ascii_uppercase().starts_with("TRUECONF2MQTT__") || k == "CREDENTIALS_DIRECTORY"
        })
        .collect();
    let options = DemoOptions {
        broker,
        pace: Duration::from_secs(args.pace),
        env,
        ..DemoOptions::default()
    };
    println!("starting the demo: simulated Room, MQTT broker, bridge …");
    let demo = tokio::select! {
        demo = start_demo(options) => demo?,
        _ = shutdown.cancelled() => return Ok(()),
    };
    println!("{}", demo.instructions());
    shutdown.cancelled().await;
    println!("stopping …");
    demo.stop().await;
    println!("stopped");
    Ok(())
}

/// Starts the Room, the broker (unless external), the bridge and the script; returns once the
/// Room is reported `online` through the broker.
pub async fn start_demo(options: DemoOptions) -> Result<DemoHandle, String> {
    let room = SimRoom::start(SimConfig {
        bind: IpAddr::V4(Ipv4Addr::LOCALHOST),
        answer_delay: Duration::from_secs(2),
        start: StartState::LoggedIn,
        server: "demo.trueconf.local".into(),
        peer_id: "demo-room@demo.trueconf.local".into(),
        display_name: "Demo Room".into(),
        ..SimConfig::default()
    })
    .await
    .map_err(|e| format!("cannot start the simulated Room: {e}"))?;

    let deadline = tokio::time::Instant::now() + options.ready_timeout;
    let (broker_host, broker_port, broker_listen) = match &options.broker {
        BrokerChoice::Embedded { listen } => {
            let listen = if listen.port() == 0 {
                // rumqttd cannot report the port it bound: pick a free one first.
                std::net::TcpListener::bind(SocketAddr::new(listen.ip(), 0))
                    .and_then(|l| l.local_addr())
                    .map_err(|e| format!("cannot find a free port on {}: {e}", listen.ip()))?
            } else {
                // The broker thread cannot tell that its bind failed before the script has
                // connected, and another broker on the port would answer in its place: bind
                // here first, so a taken port is an error and never someone else's broker.
                std::net::TcpListener::bind(*listen).map_err(|e| {
                    format!(
                        "cannot listen on {listen} for the embedded MQTT broker: {e} (another \
                         broker, e.g. mosquitto, may use it). Use --listen {}:0 for a free port, \
                         or --broker {}:{} to publish into that broker (the demo clears its \
                         retained topics there when it stops)",
                        listen.ip(),
                        listen.ip(),
                        listen.port()
                    )
                })?;
                *listen
            };
            let host = if listen.ip().is_unspecified() {
                "127.0.0.1".to_owned()
            } else {
                listen.ip().to_string()
            };
            (host, listen.port(), Some(listen))
        }
        BrokerChoice::External { host, port } => (host.clone(), *port, None),
    };

    let mut env = options.env.clone();
    for (key, value) in [
        ("MQTT__HOST", broker_host.clone()),
        ("MQTT__PORT", broker_port.to_string()),
        ("ROOMS__DEMO_ROOM__HOST", "127.0.0.1".to_owned()),
        ("ROOMS__DEMO_ROOM__PORT", room.http_port().to_string()),
        ("ROOMS__DEMO_ROOM__PIN", String::new()),
        ("ROOMS__DEMO_ROOM__PIN_FILE", String::new()),
    ] {
        env.insert(format!("TRUECONF2MQTT__{key}"), value);
    }
    let settings = Settings::load_from(Some(Settings::embedded_default()), env)
        .map_err(|e| format!("invalid demo configuration:\n{e}"))?;
    if settings.mqtt.tls.is_some() {
        return Err("mqtt.tls is not supported by the demo".into());
    }
    // Before anything is started, so an error leaves nothing running.
    let bridge_options = crate::app::bridge_options(&settings)?;
    let room_settings = settings
        .rooms
        .first()
        .ok_or("the demo configuration has no room")?;
    let room_id = room_settings.id.clone();
    let room_name = room_settings.name.clone();
    let base_topic = settings.mqtt.base_topic.clone();
    let discovery_prefix = settings
        .mqtt
        .discovery
        .then(|| settings.mqtt.discovery_prefix.clone());

    let broker_thread = match broker_listen {
        Some(listen) => Some(spawn_embedded_broker(listen)?),
        None => None,
    };
    // The script's own MQTT client: its CONNACK proves the broker is up; it then sees the
    // Room come online and answers calls.
    let topics = ScriptTopics::new(&base_topic, &room_id);
    let script_link = ScriptLink::start(&broker_host, broker_port, &settings, &topics);
    let clear_with = broker_listen
        .is_none()
        .then(|| ScriptLink::options(&broker_host, broker_port, &settings));
    let broker_gone = || broker_thread.as_ref().is_some_and(|t| t.is_finished());
    if !script_link.wait_connected(deadline, broker_gone).await {
        script_link.stop().await;
        room.stop().await;
        return Err(match broker_listen {
            Some(listen) => format!(
                "the embedded MQTT broker did not start on {listen} (port in use?); try \
                 another --listen port, or --broker HOST:PORT"
            ),
            None => format!(
                "no MQTT broker answered at {broker_host}:{broker_port} within {:?}",
                options.ready_timeout
            ),
        });
    }

    let shutdown = CancellationToken::new();
    let (bridge, tasks) = bridge::start(bridge_options, shutdown.clone());

    let online = script_link.wait_online(deadline).await;
    if !online {
        bridge.stop(tasks).await;
        script_link.stop().await;
        room.stop().await;
        return Err(format!(
            "the Room was not reported online on {} within {:?}",
            topics.availability, options.ready_timeout
        ));
    }

    let script_cancel = CancellationToken::new();
    let narrator = Narrator {
        start: Instant::now(),
        on: options.narrate,
    };
    let script = tokio::spawn(run_script(
        room.clone(),
        script_link.clone(),
        topics,
        options.pace,
        narrator,
        script_cancel.clone(),
    ));
    Ok(DemoHandle {
        embedded_broker: broker_listen.is_some(),
        broker_listen,
        broker_host,
        broker_port,
        room,
        room_id,
        room_name,
        base_topic,
        discovery_prefix,
        bridge,
        pace: options.pace,
        tasks,
        shutdown,
        script_cancel,
        script,
        script_link,
        clear_with,
    })
}

impl DemoHandle {
    /// What to run to watch and drive the demo, and how to point Home Assistant at it.
    pub fn instructions(&self) -> String {
        let (host, port) = (&self.broker_host, self.broker_port);
        let base = &self.base_topic;
        let room = &self.room_id;
        let mut text = String::new();
        let broker = if self.embedded_broker {
            "embedded rumqttd"
        } else {
            "external"
        };
        let _ = writeln!(text, "\nThe demo is running (Ctrl-C stops it).");
        let _ = writeln!(
            text,
            "  Room    \"{}\" (room id {room}), simulated: http://127.0.0.1:{} ws://127.0.0.1:{}",
            self.room_name,
            self.room.http_port(),
            self.room.ws_port()
        );
        let _ = writeln!(text, "  broker  {host}:{port} ({broker})");
        let _ = writeln!(text, "  bridge  connected; the Room is online\n");
        let _ = writeln!(text, "Watch everything the bridge publishes:");
        let _ = writeln!(
            text,
            "  mosquitto_sub -h {host} -p {port} -v -t '{base}/#'\n"
        );
        let _ = writeln!(
            text,
            "Send a command (the answer arrives on {base}/{room}/response/<field>):"
        );
        let _ = writeln!(
            text,
            "  mosquitto_pub -h {host} -p {port} -t {base}/{room}/set/mic_muted -m ON"
        );
        let _ = writeln!(
            text,
            "  mosquitto_pub -h {host} -p {port} -t {base}/{room}/set/call -m hangup\n"
        );
        match &self.discovery_prefix {
            Some(prefix) => {
                let _ = writeln!(
                    text,
                    "Home Assistant: Settings → Devices & services → Add integration → MQTT"
                );
                let ha_host = match self.broker_listen {
                    Some(listen) if listen.ip().is_unspecified() => {
                        "this machine's address".to_owned()
                    }
                    _ => host.clone(),
                };
                let _ = writeln!(
                    text,
                    "  broker {ha_host}, port {port}, no username or password"
                );
                let _ = writeln!(
                    text,
                    "  discovery prefix: {prefix} (MQTT → Configure → Options; it is the default)"
                );
                let _ = writeln!(
                    text,
                    "  the device \"{}\" then appears with its entities",
                    self.room_name
                );
                if matches!(self.broker_listen, Some(l) if l.ip().is_loopback()) {
                    let _ = writeln!(
                        text,
                        "  (Home Assistant in a container or on another machine cannot reach \
                         {host}: restart with --listen 0.0.0.0:{port})"
                    );
                }
            }
            None => {
                let _ = writeln!(text, "Home Assistant discovery is off (mqtt.discovery).");
            }
        }
        let tenths = |secs: f64| (secs * 10.0).round() / 10.0;
        let (low, high) = (
            tenths(self.pace.as_secs_f64()),
            tenths(self.pace.as_secs_f64() * 1.5),
        );
        let _ = write!(
            text,
            "\nScripted life: something happens every {low}–{high} s; each step is printed below."
        );
        text
    }

    /// Stops the script and the bridge (the Room goes `offline` on the broker), then the Room.
    /// On an external broker it then clears every retained topic the demo left there (the
    /// room's state and discovery, and `bridge/state`/`bridge/info` when they are the demo's
    /// own), so the broker is as it was. The embedded broker thread cannot be stopped; it ends
    /// with the process.
    pub async fn stop(self) {
        self.script_cancel.cancel();
        let _ = self.script.await;
        self.shutdown.cancel();
        let instance = self.bridge.instance().to_owned();
        self.bridge.stop(self.tasks).await;
        self.script_link.stop().await;
        if let Some(options) = self.clear_with {
            let cleared = clear_retained(
                options,
                &self.base_topic,
                &self.room_id,
                self.discovery_prefix.as_deref(),
                &instance,
            )
            .await;
            tracing::info!(
                cleared,
                "cleared the demo's retained topics on the external broker"
            );
        }
        self.room.stop().await;
    }
}

// ----- the embedded broker ---------------------------------------------------------------------

/// Starts `rumqttd` on `listen` in a thread of its own. The thread ends only when the broker
/// fails (e.g. the port is taken), which is how a failed start is detected.
fn spawn_embedded_broker(listen: SocketAddr) -> Result<std::thread::JoinHandle<()>, String> {
    let config = rumqttd_config(listen);
    std::thread::Builder::new()
        .name("demo-broker".into())
        .spawn(move || {
            let mut broker = rumqttd::Broker::new(config);
            // Returns only when its server threads end, i.e. when binding failed.
            if let Err(e) = broker.start() {
                tracing::error!(error = %e, "the embedded MQTT broker stopped");
            }
        })
        .map_err(|e| format!("cannot start the embedded broker thread: {e}"))
}

/// An in-memory MQTT 3.1.1 broker on `listen`, generous enough for the bridge's retained set.
fn rumqttd_config(listen: SocketAddr) -> rumqttd::Config {
    let connections = rumqttd::ConnectionSettings {
        connection_timeout_ms: 10_000,
        // Discovery payloads are a few KiB; leave room for commands up to the bridge's limit.
        max_payload_size: 1 << 20,
        max_inflight_count: 100,
        auth: None,
        external_auth: None,
        dynamic_filters: true,
    };
    let server = rumqttd::ServerSettings {
        name: "demo-v4".into(),
        listen,
        tls: None,
        next_connection_delay_ms: 1,
        connections,
    };
    rumqttd::Config {
        id: 0,
        router: rumqttd::RouterConfig {
            max_connections: 256,
            // Also the number of retained messages a QoS 0 subscription can receive at once.
            max_outgoing_packet_count: 1000,
            max_segment_size: 4 << 20,
            max_segment_count: 4,
            ..rumqttd::RouterConfig::default()
        },
        v4: Some(HashMap::from([("1".to_owned(), server)])),
        ..rumqttd::Config::default()
    }
}

// ----- the script's MQTT client --------------------------------------------------------------

#[derive(Debug, Clone)]
struct ScriptTopics {
    availability: String,
    set_call: String,
    response_call: String,
}

impl ScriptTopics {
    fn new(base: &str, room: &str) -> ScriptTopics {
        let topics = Topics::new(base);
        ScriptTopics {
            availability: topics.availability(room),
            set_call: topics.set_field(room, "call"),
            response_call: topics.response(room, "call"),
        }
    }
}

/// The script's connection to the broker (the bridge's own link type, as a panel would use
/// one): watches the Room's availability, sends commands and collects their responses.
#[derive(Clone)]
struct ScriptLink {
    link: MqttLink,
    availability: watch::Receiver<String>,
    responses: Arc<tokio::sync::Mutex<mpsc::Receiver<String>>>,
    cancel: CancellationToken,
    task: Arc<std::sync::Mutex<Option<JoinHandle<()>>>>,
}

impl ScriptLink {
    /// A clean-session client of the demo's broker, with the configured login.
    fn options(host: &str, port: u16, settings: &Settings) -> LinkOptions {
        let mut options =
            LinkOptions::new(host, port, format!("{}-script", settings.mqtt.client_id));
        options.keepalive = Duration::from_secs(15);
        options.clean_session = true;
        options.reconnect_min = Duration::from_millis(50);
        options.reconnect_max = Duration::from_secs(1);
        if let Some(user) = settings.mqtt.username.as_ref().filter(|u| !u.is_empty()) {
            let password = settings.mqtt.password.clone().unwrap_or_default();
            options.credentials = Some((user.clone(), password));
        }
        options
    }

    fn start(host: &str, port: u16, settings: &Settings, topics: &ScriptTopics) -> ScriptLink {
        let options = ScriptLink::options(host, port, settings);
        let cancel = CancellationToken::new();
        let filters = vec![topics.availability.clone(), topics.response_call.clone()];
        let Started {
            link,
            mut inbound,
            task,
        } = MqttLink::start(options, filters, cancel.clone());
        let (availability_tx, availability) = watch::channel(String::new());
        let (responses_tx, responses) = mpsc::channel(16);
        let watched = topics.clone();
        let mut connection = link.connection();
        let reader = tokio::spawn(async move {
            loop {
                tokio::select! {
                    message = inbound.recv() => {
                        let Some(message) = message else { break };
                        let payload = String::from_utf8_lossy(&message.payload).into_owned();
                        if message.topic == watched.availability {
                            availability_tx.send_replace(payload);
                        } else if message.topic == watched.response_call {
                            let _ = responses_tx.try_send(payload);
                        }
                    }
                    changed = connection.changed() => {
                        if changed.is_err() { break; }
                        if !connection.borrow_and_update().connected {
                            availability_tx.send_replace(String::new());
                        }
                    }
                }
            }
        });
        let task = tokio::spawn(async move {
            let _ = task.await;
            reader.abort();
        });
        ScriptLink {
            link,
            availability,
            responses: Arc::new(tokio::sync::Mutex::new(responses)),
            cancel,
            task: Arc::new(std::sync::Mutex::new(Some(task))),
        }
    }

    /// Waits for the broker connection; `false` after `deadline` or as soon as `give_up` says
    /// so.
    async fn wait_connected(
        &self,
        deadline: tokio::time::Instant,
        give_up: impl Fn() -> bool,
    ) -> bool {
        let mut connection = self.link.connection();
        while tokio::time::Instant::now() < deadline && !give_up() {
            let step = tokio::time::Instant::now() + Duration::from_millis(100);
            if let Ok(Ok(_)) =
                tokio::time::timeout_at(step.min(deadline), connection.wait_for(|c| c.connected))
                    .await
            {
                return true;
            }
        }
        false
    }

    async fn wait_online(&self, deadline: tokio::time::Instant) -> bool {
        let mut availability = self.availability.clone();
        tokio::time::timeout_at(deadline, availability.wait_for(|a| a == "online"))
            .await
            .is_ok_and(|r| r.is_ok())
    }

    /// Publishes `payload` on `topic` (not retained) and waits up to `timeout` for the next
    /// response; `None` when none came.
    async fn command(&self, topic: &str, payload: &str, timeout: Duration) -> Option<String> {
        let mut responses = self.responses.lock().await;
        while responses.try_recv().is_ok() {}
        if !self.link.is_connected() {
            return None;
        }
        self.link
            .publish(Publish::transient(topic, payload.as_bytes().to_vec()));
        tokio::time::timeout(timeout, responses.recv())
            .await
            .ok()
            .flatten()
    }

    async fn stop(&self) {
        let task = self.task.lock().ok().and_then(|mut t| t.take());
        let _ = tokio::time::timeout(Duration::from_millis(500), self.link.disconnect()).await;
        if let Some(mut task) = task
            && tokio::time::timeout(Duration::from_millis(500), &mut task)
                .await
                .is_err()
        {
            self.cancel.cancel();
            let _ = task.await;
        }
    }
}

// ----- the script ------------------------------------------------------------------------------

/// Prints what the script does, with the time since the demo started.
#[derive(Debug, Clone, Copy)]
struct Narrator {
    start: Instant,
    on: bool,
}

impl Narrator {
    fn say(&self, text: &str) {
        if self.on {
            let secs = self.start.elapsed().as_secs();
            println!("[{:>3}:{:02}] {text}", secs / 60, secs % 60);
        }
    }
}

/// One thing that happens to the Room.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
enum Step {
    /// Someone calls: the Room rings.
    Incoming(&'static str, &'static str),
    /// The script accepts the ringing call through MQTT, as a panel would.
    Accept,
    /// A participant joins the call.
    Join(&'static str, &'static str),
    /// A participant leaves.
    Leave(&'static str),
    /// A chat message arrives.
    Chat(&'static str, &'static str),
    /// The conference owner mutes (or unmutes) the Room's microphone.
    OwnerMutesMic(bool),
    /// The other side ends the call.
    RemoteHangup,
    /// The caller of a ringing call hangs up before anyone answered.
    CallerGivesUp,
}

const ALICE: (&str, &str) = ("alice@demo.trueconf.local", "Alice Johnson");
const BOB: (&str, &str) = ("bob@demo.trueconf.local", "Bob Smith");
const CAROL: (&str, &str) = ("carol@demo.trueconf.local", "Carol White");
const DAVE: (&str, &str) = ("dave@demo.trueconf.local", "Dave Miller");

/// The script: (wait before the step, in percent of the pace; the step). About 3½ minutes
/// at the default pace, then it starts again.
const SCRIPT: &[(u32, Step)] = &[
    (100, Step::Incoming(ALICE.0, ALICE.1)),
    (33, Step::Accept),
    (100, Step::Join(BOB.0, BOB.1)),
    (100, Step::Chat(BOB.0, "Can everyone see my slides?")),
    (100, Step::OwnerMutesMic(true)),
    (100, Step::Join(CAROL.0, CAROL.1)),
    (100, Step::OwnerMutesMic(false)),
    (100, Step::Leave(BOB.0)),
    (100, Step::RemoteHangup),
    (150, Step::Incoming(DAVE.0, DAVE.1)),
    (150, Step::CallerGivesUp),
    (
        100,
        Step::Chat(CAROL.0, "Thanks for the meeting, notes follow by mail."),
    ),
];

async fn run_script(
    room: SimRoom,
    link: ScriptLink,
    topics: ScriptTopics,
    pace: Duration,
    narrator: Narrator,
    cancel: CancellationToken,
) {
    let mut index = 0;
    loop {
        let (percent, step) = SCRIPT[index];
        let wait = pace.mul_f64(f64::from(percent) / 100.0);
        tokio::select! {
            _ = cancel.cancelled() => return,
            _ = tokio::time::sleep(wait) => {}
        }
        let outcome = tokio::select! {
            _ = cancel.cancelled() => return,
            outcome = perform(&room, &link, &topics, step, pace, narrator) => outcome,
        };
        index = match outcome {
            Ok(()) => (index + 1) % SCRIPT.len(),
            Err(why) => {
                narrator.say(&format!(
                    "(script) skipped: {why}; tidying up and starting over"
                ));
                tidy_up(&room);
                0
            }
        };
    }
}

/// Ends whatever call is going on, so the script can start from the top.
fn tidy_up(room: &SimRoom) {
    let snapshot = room.snapshot();
    if snapshot.conference_id.is_some() {
        let _ = room.remote_hangup();
    } else if snapshot.caller.is_some() {
        let _ = room.caller_gives_up();
    }
}

async fn perform(
    room: &SimRoom,
    link: &ScriptLink,
    topics: &ScriptTopics,
    step: Step,
    pace: Duration,
    narrator: Narrator,
) -> Result<(), String> {
    let done = |r: Result<(), crate::simulator::SimError>| r.map_err(|e| e.to_string());
    match step {
        Step::Incoming(peer, name) => {
            done(room.incoming_call(peer, name))?;
            narrator.say(&format!(
                "incoming call from {name} <{peer}>: the Room rings (ringing ON, caller_name)"
            ));
        }
        Step::Accept => {
            if room.snapshot().caller.is_none() {
                return Err("no call is ringing any more".into());
            }
            narrator.say(&format!(
                "(script, like a panel) publishes {} accept",
                topics.set_call
            ));
            let timeout = pace.clamp(Duration::from_secs(2), Duration::from_secs(10));
            match link.command(&topics.set_call, "accept", timeout).await {
                Some(response) if response.contains("\"ok\"") => {
                    narrator.say(&format!(
                        "call accepted: in_call ON; {} {response}",
                        topics.response_call
                    ));
                }
                Some(response) => return Err(format!("accept was refused: {response}")),
                None => return Err("no response to accept (is the bridge connected?)".into()),
            }
        }
        Step::Join(peer, name) => {
            done(room.participant_joins(peer, name))?;
            let count = room.snapshot().participants.len();
            narrator.say(&format!(
                "{name} joins the call (participant_count {count})"
            ));
        }
        Step::Leave(peer) => {
            done(room.participant_leaves(peer))?;
            let count = room.snapshot().participants.len();
            narrator.say(&format!(
                "{peer} leaves the call (participant_count {count})"
            ));
        }
        Step::Chat(peer, text) => {
            done(room.chat_message(peer, text))?;
            narrator.say(&format!(
                "chat message from {peer}: \"{text}\" (event incomingChatMessage)"
            ));
        }
        Step::OwnerMutesMic(mute) => {
            done(room.owner_mutes_mic(mute))?;
            let what = if mute { "mutes" } else { "unmutes" };
            let value = if mute { "ON" } else { "OFF" };
            narrator.say(&format!(
                "the conference owner {what} the Room's microphone (mic_muted {value})"
            ));
        }
        Step::RemoteHangup => {
            done(room.remote_hangup())?;
            narrator.say("the other side hangs up: the call ends (in_call OFF)");
        }
        Step::CallerGivesUp => {
            done(room.caller_gives_up())?;
            narrator.say("nobody answered: the caller gives up (ringing OFF, event stopCalling)");
        }
    }
    Ok(())
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn broker_addresses_parse() {
        assert_eq!(
            parse_broker("127.0.0.1:1884"),
            Ok(("127.0.0.1".into(), 1884))
        );
        assert_eq!(
            parse_broker("mqtt.local:8883"),
            Ok(("mqtt.local".into(), 8883))
        );
        assert_eq!(parse_broker("mqtt.local"), Ok(("mqtt.local".into(), 1883)));
        assert_eq!(parse_broker("[::1]:1885"), Ok(("::1".into(), 1885)));
        assert!(parse_broker("host:0").is_err());
        assert!(parse_broker("host:http").is_err());
        assert!(parse_broker(":1883").is_err());
    }

    #[test]
    fn the_script_is_a_plausible_loop() {
        // Every step's wait is 1/3 to 1.5 paces, and the script ends as it began: idle.
        assert!(SCRIPT.iter().all(|(p, _)| (33..=150).contains(p)));
        assert!(matches!(SCRIPT[0].1, Step::Incoming(..)));
        let mut in_call = false;
        let mut ringing = false;
        for (_, step) in SCRIPT {
            match step {
                Step::Incoming(..) => {
                    assert!(!in_call && !ringing);
                    ringing = true;
                }
                Step::Accept => {
                    assert!(ringing);
                    (ringing, in_call) = (false, true);
                }
                Step::CallerGivesUp => {
                    assert!(ringing);
                    ringing = false;
                }
                Step::RemoteHangup => {
                    assert!(in_call);
                    in_call = false;
                }
                Step::Join(..) | Step::Leave(..) | Step::OwnerMutesMic(_) => assert!(in_call),
                Step::Chat(..) => {}
            }
        }
        assert!(!in_call && !ringing);
    }

    #[test]
    fn the_embedded_default_is_usable() {
        let settings = Settings::load_from(Some(Settings::embedded_default()), HashMap::new())
            .expect("embedded default");
        assert!(settings.mqtt.clean_session, "rumqtt #1069: keep it clean");
        assert_eq!(settings.rooms.len(), 1);
    }
}
