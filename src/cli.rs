//! Command-line interface: argument definitions and the subcommands.
//!
//! Every subcommand prints one clear `error: …` line to stderr and exits non-zero when it
//! fails; nothing here panics on user input.

use std::path::PathBuf;
use std::process::ExitCode;
use std::time::Duration;

use clap::{Args, Parser, Subcommand, ValueEnum};
use serde_json::Value;
use tokio_util::sync::CancellationToken;

use crate::protocol::{catalog, redact};
use crate::room::{RoomClient, RoomOptions};
use crate::secret::Secret;
use crate::surface::Topics;

/// TrueConf Room ⇄ MQTT bridge with Home Assistant discovery.
#[derive(Debug, Parser)]
#[command(version, about, propagate_version = true)]
pub struct Cli {
    /// Log format (default: `log.format` of the configuration with `run`, else text).
    #[arg(long, global = true, value_enum, env = "TRUECONF2MQTT_LOG_FORMAT")]
    pub log_format: Option<LogFormat>,
    /// What to do.
    #[command(subcommand)]
    pub command: Command,
}

/// Log output format.
#[derive(Debug, Clone, Copy, PartialEq, Eq, ValueEnum)]
pub enum LogFormat {
    /// Human-readable lines.
    Text,
    /// One JSON object per line.
    Json,
}

/// Subcommands.
#[derive(Debug, Subcommand)]
pub enum Command {
    /// Run the bridge.
    #[command(after_help = "Example:\n  trueconf2mqtt run --config /etc/trueconf2mqtt/config.toml")]
    Run {
        /// Configuration file (TOML). Environment variables TRUECONF2MQTT__… override it.
        #[arg(long, short, env = "TRUECONF2MQTT_CONFIG")]
        config: Option<PathBuf>,
    },
    /// Validate a configuration file and explain it, or every problem in it.
    #[command(
        after_help = "Example:\n  trueconf2mqtt check-config --config config/trueconf2mqtt.example.toml"
    )]
    CheckConfig {
        /// Configuration file (TOML).
        #[arg(long, short, env = "TRUECONF2MQTT_CONFIG")]
        config: Option<PathBuf>,
    },
    /// Talk to a Room directly: send one method, or print its events.
    #[command(
        after_help = "Examples:\n  trueconf2mqtt room --host 192.0.2.10 --pin 1234 call getAppState\n  \
        trueconf2mqtt room --host 192.0.2.10 --pin 1234 call setMicMute '{\"mute\":true}'\n  \
        trueconf2mqtt room --host 192.0.2.10 --pin 1234 events"
    )]
    Room(RoomArgs),
    /// Run a simulated TrueConf Room (for tests, benchmarks and demos).
    #[command(
        after_help = "Example:\n  trueconf2mqtt simulate --http-port 8766 --ws-port 8765 --pin 1234\n\n\
        Prints `listening room=<n> http=<port> ws=<port>` per room once it listens; reads control\n\
        commands on stdin (incoming, hangup, join, leave, chat, drop, halfopen, garbage, stop,\n\
        restart, state)."
    )]
    Simulate(SimulateArgs),
    /// Run a self-contained demo: a simulated Room with scripted life, an embedded MQTT broker
    /// and the bridge between them.
    #[command(
        after_help = "Examples:\n  cargo run --release -- demo\n  trueconf2mqtt demo --broker 127.0.0.1:1883\n  \
        trueconf2mqtt demo --listen 0.0.0.0:1883 --pace 5"
    )]
    Demo(crate::demo::DemoArgs),
    /// Show each room's state as the broker holds it.
    #[command(
        after_help = "Examples:\n  trueconf2mqtt status --config /etc/trueconf2mqtt/config.toml\n  \
        trueconf2mqtt status --broker 127.0.0.1:1883"
    )]
    Status {
        /// Connect as the bridge configured in this file does (address, credentials, TLS, MQTT
        /// version) and read its base topic and instance.
        #[arg(long, short, env = "TRUECONF2MQTT_CONFIG", conflicts_with = "broker")]
        config: Option<PathBuf>,
        /// Broker as host:port (without a configuration file).
        #[arg(long)]
        broker: Option<String>,
        /// Base topic (with --broker).
        #[arg(long, default_value = "trueconf")]
        base_topic: String,
        /// The bridge instance whose state to show, `mqtt.instance` (with --broker).
        #[arg(long, requires = "broker")]
        instance: Option<String>,
        /// Print JSON instead of a table.
        #[arg(long)]
        json: bool,
    },
    /// Print the API method catalog.
    Catalog {
        /// Print the Markdown reference (docs/METHODS.md) instead of one line per method.
        #[arg(long)]
        markdown: bool,
    },
}

/// Options of `room`.
#[derive(Debug, Args)]
pub struct RoomArgs {
    /// Room host.
    #[arg(long)]
    pub host: String,
    /// The Room's web port (serves config.json).
    #[arg(long, default_value_t = 80)]
    pub port: u16,
    /// WebSocket port; skips discovery.
    #[arg(long)]
    pub ws_port: Option<u16>,
    /// PIN (or set TRUECONF2MQTT_PIN); without one, auth is unsecured.
    #[arg(long, env = "TRUECONF2MQTT_PIN", hide_env_values = true)]
    pub pin: Option<String>,
    /// Request timeout in milliseconds.
    #[arg(long, default_value_t = 5000)]
    pub timeout_ms: u64,
    /// Print secrets (tokens, keys) in replies instead of ***.
    #[arg(long)]
    pub show_secrets: bool,
    /// What to do.
    #[command(subcommand)]
    pub action: RoomAction,
}

/// `room` actions.
#[derive(Debug, Subcommand)]
pub enum RoomAction {
    /// Send one API method and print the reply as JSON.
    Call {
        /// Method name, e.g. getAppState.
        method: String,
        /// Parameters as a JSON object.
        params: Option<String>,
    },
    /// Print every event, one JSON line each, until interrupted.
    Events,
}

/// Options of `simulate`.
#[derive(Debug, Args)]
pub struct SimulateArgs {
    /// HTTP port serving config.json (0 = pick a free one).
    #[arg(long, default_value_t = 0)]
    pub http_port: u16,
    /// WebSocket API port (0 = pick a free one).
    #[arg(long, default_value_t = 0)]
    pub ws_port: u16,
    /// PIN required for auth.
    #[arg(long, conflicts_with = "unsecured")]
    pub pin: Option<String>,
    /// Accept unsecured auth (the default when no PIN is given).
    #[arg(long)]
    pub unsecured: bool,
    /// Number of rooms (ports increase from the given ones, or are all picked freely).
    #[arg(long, default_value_t = 1)]
    pub rooms: usize,
    /// Address to listen on (0.0.0.0 to serve other machines or containers).
    #[arg(long, default_value = "127.0.0.1")]
    pub bind: std::net::IpAddr,
    /// Tune the WebSocket sockets (TCP_NODELAY, batched writes) instead of behaving like a
    /// server that tunes nothing.
    #[arg(long)]
    pub tuned: bool,
}

/// Runs the parsed command line.
pub fn main(cli: Cli) -> ExitCode {
    // One-shot commands report through their own `error:` line; daemons log.
    let mut default_level = match cli.command {
        Command::Run { .. } | Command::Simulate(_) => "info".to_owned(),
        // The embedded broker logs every client disconnect as an error; the demo prints its
        // own story.
        Command::Demo(_) => "warn,rumqttd=off".to_owned(),
        _ => "error".to_owned(),
    };
    let mut format = cli.log_format;
    // The daemon's `[log]` settings apply from the first line; RUST_LOG and --log-format still
    // win. A configuration that does not load is reported by `run` itself.
    if let Command::Run { config } = &cli.command
        && let Ok(settings) = crate::config::Settings::load(config.as_deref())
    {
        default_level = settings.log.level.clone();
        format = format.or(match settings.log.format {
            crate::config::LogFormat::Text => Some(LogFormat::Text),
            crate::config::LogFormat::Json => Some(LogFormat::Json),
        });
    }
    init_logging(format.unwrap_or(LogFormat::Text), &default_level);
    let runtime = match tokio::runtime::Builder::new_multi_thread()
        .enable_all()
        .build()
    {
        Ok(runtime) => runtime,
        Err(e) => {
            eprintln!("error: cannot start the async runtime: {e}");
            return ExitCode::FAILURE;
        }
    };
    match runtime.block_on(dispatch(cli.command)) {
        Ok(()) => ExitCode::SUCCESS,
        Err(message) => {
            eprintln!("error: {message}");
            ExitCode::FAILURE
        }
    }
}

/// Libraries whose TRACE records print whole WebSocket frames, in clear and in hex: the Room PIN
/// in `auth`, the tokens in its reply, passwords in `login`. Whatever the filter says
/// (`RUST_LOG=trace` included), their TRACE records are never logged; DEBUG and above are.
pub const WIRE_LOGGERS: &[&str] = &["tungstenite", "tokio_tungstenite"];

/// Whether a record may be logged at all: everything but the TRACE records of
/// [`WIRE_LOGGERS`]. Applied on top of the level filter by the daemon's logging setup.
pub fn loggable(metadata: &tracing::Metadata<'_>) -> bool {
    let target = metadata.target();
    let wire = WIRE_LOGGERS.iter().any(|logger| {
        target
            .strip_prefix(logger)
            .is_some_and(|rest| rest.is_empty() || rest.starts_with("::"))
    });
    !(wire && *metadata.level() == tracing::Level::TRACE)
}

fn init_logging(format: LogFormat, default_level: &str) {
    use crate::logging::{Escape, JsonLines, OneLine, colour_wanted};
    use tracing_subscriber::EnvFilter;
    use tracing_subscriber::layer::SubscriberExt;
    use tracing_subscriber::util::SubscriberInitExt;
    let filter =
        EnvFilter::try_from_default_env().unwrap_or_else(|_| EnvFilter::new(default_level));
    let secrets_out = tracing_subscriber::filter::filter_fn(loggable);
    let _ = match format {
        LogFormat::Text => {
            let colour = colour_wanted();
            let escape = if colour {
                Escape::TextColour
            } else {
                Escape::Text
            };
            tracing_subscriber::fmt()
                .with_env_filter(filter)
                .with_ansi(colour)
                .with_writer(OneLine::new(std::io::stderr, escape))
                .finish()
                .with(secrets_out)
                .try_init()
        }
        LogFormat::Json => tracing_subscriber::fmt()
            .with_env_filter(filter)
            .with_ansi(false)
            .event_format(JsonLines)
            .with_writer(OneLine::new(std::io::stderr, Escape::Json))
            .finish()
            .with(secrets_out)
            .try_init(),
    };
}

/// A token cancelled on SIGINT or SIGTERM.
pub fn shutdown_signal() -> CancellationToken {
    let token = CancellationToken::new();
    let cancel = token.clone();
    tokio::spawn(async move {
        let ctrl_c = tokio::signal::ctrl_c();
        #[cfg(unix)]
        {
            let mut term =
                match tokio::signal::unix::signal(tokio::signal::unix::SignalKind::terminate()) {
                    Ok(term) => term,
                    Err(_) => {
                        let _ = ctrl_c.await;
                        cancel.cancel();
                        return;
                    }
                };
            tokio::select! {
                _ = ctrl_c => {}
                _ = term.recv() => {}
            }
        }
        #[cfg(not(unix))]
        let _ = ctrl_c.await;
        cancel.cancel();
    });
    token
}

async fn dispatch(command: Command) -> Result<(), String> {
    match command {
        Command::Room(args) => room(args).await,
        Command::Catalog { markdown } => {
            if markdown {
                print!("{}", catalog().markdown());
            } else {
                for m in catalog().methods() {
                    let flag = if m.dangerous { "  [dangerous]" } else { "" };
                    // `getHardware()`: a method without parameters reads as a call.
                    let params = if m.params.is_empty() {
                        String::new()
                    } else {
                        m.signature()
                    };
                    println!("{}({params}){flag}", m.name);
                }
            }
            Ok(())
        }
        Command::Simulate(args) => simulate(args).await,
        Command::Status {
            config,
            broker,
            base_topic,
            instance,
            json,
        } => status(config, broker, base_topic, instance, json).await,
        Command::Run { config } => crate::app::run(config.as_deref(), shutdown_signal()).await,
        Command::CheckConfig { config } => crate::app::check_config(config.as_deref()),
        Command::Demo(args) => crate::demo::run(args, shutdown_signal()).await,
    }
}

async fn room(args: RoomArgs) -> Result<(), String> {
    let mut options = RoomOptions::new(&args.host, args.port);
    options.ws_port = args.ws_port;
    options.pin = args.pin.map(Secret::new);
    options.request_timeout = Duration::from_millis(args.timeout_ms.max(1));
    // A one-shot tool should not wait a minute before telling the user the PIN is wrong.
    options.auth_retry = Duration::from_secs(1);
    let show = |value: &Value| {
        if args.show_secrets {
            value.to_string()
        } else {
            redact(value).to_string()
        }
    };
    match args.action {
        RoomAction::Call { method, params } => {
            let params: Value = match params.as_deref() {
                None | Some("") => Value::Null,
                Some(text) => serde_json::from_str(text)
                    .map_err(|e| format!("parameters are not valid JSON: {e}"))?,
            };
            // Validate before connecting so a typo fails fast, without a Room.
            let map = match &params {
                Value::Object(map) => map.clone(),
                Value::Null => Default::default(),
                other => {
                    return Err(format!(
                        "parameters must be a JSON object, got {}",
                        crate::protocol::catalog::json_type_name(other)
                    ));
                }
            };
            catalog()
                .validate(&method, &map)
                .map_err(|e| e.to_string())?;
            let client = RoomClient::connect(options)
                .await
                .map_err(|e| e.to_string())?;
            let outcome = client.request(&method, params).await;
            client.close().await;
            let data = outcome.map_err(|e| e.to_string())?;
            println!("{}", show(&Value::Object(data)));
            Ok(())
        }
        RoomAction::Events => {
            let client = RoomClient::connect(options)
                .await
                .map_err(|e| e.to_string())?;
            let mut events = client.events();
            eprintln!(
                "trueconf2mqtt: connected; printing the Room's events, one JSON per line (Ctrl-C stops)"
            );
            let shutdown = shutdown_signal();
            loop {
                tokio::select! {
                    _ = shutdown.cancelled() => break,
                    event = events.recv() => match event {
                        Ok(event) => {
                            println!("{}", show(&Value::Object(event.fields.clone())));
                            if event.name == "authorizationNeeded" {
                                eprintln!("{}", lost_control(&event.fields));
                            }
                        }
                        Err(tokio::sync::broadcast::error::RecvError::Lagged(n)) => {
                            eprintln!("warning: {n} events missed (output too slow)");
                        }
                        Err(_) => break,
                    },
                }
            }
            client.close().await;
            Ok(())
        }
    }
}

/// The line `room events` prints when another client takes the Room over.
fn lost_control(fields: &serde_json::Map<String, Value>) -> String {
    let cause = fields.get("cause").and_then(Value::as_i64).unwrap_or(-1);
    let text = crate::protocol::catalog()
        .enum_text("auth_needed_causes", cause)
        .unwrap_or("unknown cause");
    format!(
        "trueconf2mqtt: lost control of the Room ({text}, cause {cause}): the Room serves one \
         controller at a time and another client (a bridge, another `room` command) has \
         authenticated; events that client causes are not sent here. Reconnecting to take control \
         back (which takes it from the other client)."
    )
}

async fn status(
    config: Option<PathBuf>,
    broker: Option<String>,
    base_topic: String,
    instance: Option<String>,
    json: bool,
) -> Result<(), String> {
    let (options, topics) = match broker {
        Some(address) => {
            let (host, port) = address
                .rsplit_once(':')
                .and_then(|(h, p)| Some((h.to_owned(), p.parse::<u16>().ok()?)))
                .ok_or_else(|| format!("--broker must be host:port, got '{address}'"))?;
            (
                crate::mqtt::LinkOptions::new(host, port, "trueconf2mqtt-status"),
                Topics::with_instance(base_topic, instance.filter(|i| !i.is_empty())),
            )
        }
        None => {
            let settings = crate::config::Settings::load(config.as_deref())
                .map_err(|e| format!("invalid configuration:\n{e}"))?;
            // The bridge's own connection settings (TLS, credentials, version), so `status`
            // reaches every broker the bridge reaches.
            let options = crate::app::link_options(&settings.mqtt)?;
            let mqtt = settings.mqtt;
            (
                options,
                Topics::with_instance(mqtt.base_topic, mqtt.instance),
            )
        }
    };
    let snapshot = crate::status::read(options, &topics, Duration::from_secs(5)).await?;
    if json {
        let value = serde_json::json!({
            "instance": snapshot.instance,
            "bridge": snapshot.bridge,
            "availability": snapshot.availability,
            "state": snapshot.state,
        });
        println!("{value}");
    } else {
        print!("{}", crate::status::table(&snapshot));
    }
    Ok(())
}

async fn simulate(args: SimulateArgs) -> Result<(), String> {
    let options = crate::simulator::SimulateOptions {
        http_port: args.http_port,
        ws_port: args.ws_port,
        pin: if args.unsecured { None } else { args.pin },
        rooms: args.rooms.max(1),
        bind: args.bind,
        tuned: args.tuned,
    };
    let shutdown = shutdown_signal();
    crate::simulator::run(options, shutdown.cancelled_owned())
        .await
        .map_err(|e| e.to_string())
}
