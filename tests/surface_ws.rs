//! The WebSocket API (`/api` on `[http] listen`) against the simulator, a real mosquitto and a
//! running bridge: the retained snapshot on connect, live changes and events, commands answered
//! to their sender only, operation with the broker stopped, bad input, and the token.

mod common;

use std::net::SocketAddr;
use std::time::Duration;

use futures_util::{SinkExt, StreamExt};
use serde_json::{Value, json};
use tokio::net::TcpStream;
use tokio_tungstenite::tungstenite::client::IntoClientRequest;
use tokio_tungstenite::tungstenite::{self, Message as Frame};
use tokio_tungstenite::{MaybeTlsStream, WebSocketStream};
use tokio_util::sync::CancellationToken;
use trueconf2mqtt::control::web::{Web, routes};
use trueconf2mqtt::secret::Secret;

use common::rig::{CHATTER, ROOM, WAIT, World, t};
use common::within;

const TOKEN: &str = "test-token-0123456789";

type Socket = WebSocketStream<MaybeTlsStream<TcpStream>>;

/// A WebSocket client that keeps what it read but did not look at yet (a state change may
/// come before or after the response that caused it).
struct Ws {
    socket: Socket,
    unread: std::collections::VecDeque<Value>,
}

impl Ws {
    async fn send(&mut self, frame: Frame) -> Result<(), tungstenite::Error> {
        self.socket.send(frame).await
    }

    async fn next(&mut self) -> Option<Result<Frame, tungstenite::Error>> {
        self.socket.next().await
    }
}

/// The bridge's HTTP server with the control surface, on a free port.
async fn serve(world: &World, token: Option<&str>) -> (SocketAddr, CancellationToken) {
    let listener = tokio::net::TcpListener::bind("127.0.0.1:0").await.unwrap();
    let addr = listener.local_addr().unwrap();
    let shutdown = CancellationToken::new();
    let bridge = world.running.bridge.clone();
    let web = Web::new(bridge.clone(), token.map(Secret::new), shutdown.clone());
    tokio::spawn(trueconf2mqtt::health::serve_with(
        listener,
        bridge,
        Some(routes(web)),
        shutdown.clone(),
    ));
    (addr, shutdown)
}

async fn connect(addr: SocketAddr, query: &str) -> Result<Ws, tungstenite::Error> {
    let url = format!("ws://{addr}/api{query}");
    let (socket, _) = tokio_tungstenite::connect_async(url).await?;
    Ok(Ws {
        socket,
        unread: Default::default(),
    })
}

async fn connect_ok(addr: SocketAddr) -> Ws {
    connect(addr, &format!("?token={TOKEN}"))
        .await
        .expect("connects with the token")
}

/// The next text message as JSON.
async fn next(ws: &mut Ws) -> Value {
    if let Some(m) = ws.unread.pop_front() {
        return m;
    }
    read(ws).await
}

/// The next text message from the socket.
async fn read(ws: &mut Ws) -> Value {
    loop {
        let frame = within(WAIT, "a WebSocket message", ws.next())
            .await
            .expect("the session stays open")
            .expect("a frame");
        if let Frame::Text(text) = frame {
            return serde_json::from_str(text.as_str()).expect("JSON");
        }
    }
}

/// Reads until a message on `topic` satisfies `check`; returns it.
async fn until(ws: &mut Ws, topic: &str, check: impl Fn(&Value) -> bool) -> Value {
    let matches = |m: &Value| m["topic"] == topic && check(&m["payload"]);
    if let Some(at) = ws.unread.iter().position(matches) {
        return ws.unread.remove(at).unwrap()["payload"].clone();
    }
    within(WAIT, &format!("a message on {topic}"), async {
        loop {
            let m = read(ws).await;
            if matches(&m) {
                return m["payload"].clone();
            }
            ws.unread.push_back(m);
        }
    })
    .await
}

async fn send(ws: &mut Ws, message: Value) {
    ws.send(Frame::text(message.to_string())).await.unwrap();
}

/// Whether a message on `topic` arrives within `wait`.
async fn arrives(ws: &mut Ws, topic: &str, wait: Duration) -> bool {
    if ws.unread.iter().any(|m| m["topic"] == topic) {
        return true;
    }
    tokio::time::timeout(wait, async {
        loop {
            let m = read(ws).await;
            if m["topic"] == topic {
                return;
            }
            ws.unread.push_back(m);
        }
    })
    .await
    .is_ok()
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn snapshot_live_changes_events_and_private_responses() {
    let world = World::start(false, |_| {}).await;
    let (addr, _stop) = serve(&world, Some(TOKEN)).await;

    // On connect: the retained state, as MQTT has it, topics relative to the base topic.
    let mut ws = connect_ok(addr).await;
    let mut seen = std::collections::BTreeMap::new();
    within(WAIT, "the snapshot", async {
        while ![
            "boardroom/availability",
            "boardroom/mic_muted",
            "boardroom",
            "bridge/state",
            "bridge/info",
        ]
        .iter()
        .all(|topic| seen.contains_key(*topic))
        {
            let m = next(&mut ws).await;
            seen.insert(
                m["topic"].as_str().unwrap().to_owned(),
                m["payload"].clone(),
            );
        }
    })
    .await;
    assert_eq!(seen["boardroom/availability"], "online");
    assert_eq!(seen["bridge/state"], "online");
    assert!(
        seen["boardroom"].is_object(),
        "the JSON state is sent as JSON"
    );
    assert!(
        !seen.keys().any(|k| k.ends_with("/owner")),
        "claims are bookkeeping: {seen:?}"
    );
    let muted = seen["boardroom/mic_muted"].as_str().unwrap() == "ON";
    let wanted = if muted { "OFF" } else { "ON" };

    // A second client sees the change but not the first one's response.
    let mut other = connect_ok(addr).await;
    world.probe.clear();
    send(
        &mut ws,
        json!({"topic": "boardroom/set/mic_muted", "payload": wanted}),
    )
    .await;
    let response = until(&mut ws, "boardroom/response/mic_muted", |_| true).await;
    assert_eq!(response["status"], "ok", "{response}");
    until(&mut ws, "boardroom/mic_muted", |p| p == wanted).await;
    until(&mut other, "boardroom/mic_muted", |p| p == wanted).await;
    assert!(
        !arrives(
            &mut other,
            "boardroom/response/mic_muted",
            Duration::from_millis(300)
        )
        .await,
        "a response goes to its sender only"
    );
    world.probe.wait_value(&t("mic_muted"), wanted, WAIT).await;
    assert!(
        world.probe.on(&t("response/mic_muted")).is_empty(),
        "a local command's response is not published to the broker"
    );

    // A JSON `set` with a transaction, and a request, as over MQTT.
    send(
        &mut ws,
        json!({"topic": "boardroom/set", "payload": {"mic_muted": muted, "transaction": 7}}),
    )
    .await;
    let response = until(&mut ws, "boardroom/response/set", |_| true).await;
    assert_eq!(
        (response["status"].clone(), response["transaction"].clone()),
        (json!("ok"), json!(7))
    );
    send(
        &mut ws,
        json!({"topic": "boardroom/request/getAppState", "payload": {}}),
    )
    .await;
    let response = until(&mut ws, "boardroom/response/getAppState", |_| true).await;
    assert_eq!(response["status"], "ok", "{response}");
    send(
        &mut ws,
        json!({"topic": "bridge/request/health_check", "payload": ""}),
    )
    .await;
    let response = until(&mut ws, "bridge/response/health_check", |_| true).await;
    assert!(response.is_object(), "{response}");

    // The same dangerous-method policy as MQTT.
    send(&mut ws, json!({"topic": "boardroom/request/rebootSystem"})).await;
    let response = until(&mut ws, "boardroom/response/rebootSystem", |_| true).await;
    assert!(
        response["error"]
            .as_str()
            .unwrap()
            .contains("allow_dangerous"),
        "{response}"
    );

    // Events, live.
    world.room.chat_message(CHATTER, "hello panel").unwrap();
    until(&mut other, "boardroom/event/incomingChatMessage", |p| {
        p.to_string().contains("hello panel")
    })
    .await;
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn works_while_the_broker_is_away() {
    let mut world = World::start(false, |_| {}).await;
    let (addr, _stop) = serve(&world, Some(TOKEN)).await;
    world.broker.kill();
    common::wait_until(WAIT, "the bridge notices", || {
        !world.running.bridge.link().is_connected()
    })
    .await;

    let mut ws = connect_ok(addr).await;
    let state = until(&mut ws, "boardroom/camera_muted", |_| true).await;
    let wanted = if state == "ON" { "OFF" } else { "ON" };
    send(
        &mut ws,
        json!({"topic": "boardroom/set/camera_muted", "payload": wanted}),
    )
    .await;
    let response = until(&mut ws, "boardroom/response/camera_muted", |_| true).await;
    assert_eq!(response["status"], "ok", "{response}");
    until(&mut ws, "boardroom/camera_muted", |p| p == wanted).await;
    assert_eq!(world.room.snapshot().camera_muted, wanted == "ON");
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn bad_input_gets_one_error_and_the_session_goes_on() {
    let world = World::start(false, |_| {}).await;
    let (addr, _stop) = serve(&world, Some(TOKEN)).await;
    let mut ws = connect_ok(addr).await;
    let error = |p: &Value| p["status"] == "error";

    for (bad, says) in [
        ("{oops", "not JSON"),
        ("[1,2]", "JSON object"),
        (r#"{"payload":"ON"}"#, "missing \"topic\""),
        (
            r#"{"topic":"boardroom/mic_muted","payload":"ON"}"#,
            "not a command topic",
        ),
        (
            r#"{"topic":"a/b/c/d/e","payload":"ON"}"#,
            "not a command topic",
        ),
    ] {
        ws.send(Frame::text(bad)).await.unwrap();
        let p = until(&mut ws, "bridge/response/error", error).await;
        assert!(p["error"].as_str().unwrap().contains(says), "{bad}: {p}");
    }
    ws.send(Frame::binary(vec![1u8, 2, 3])).await.unwrap();
    until(&mut ws, "bridge/response/error", |p| {
        p.to_string().contains("binary")
    })
    .await;

    // Refused by the command path itself: answered on the response topic, like MQTT.
    send(
        &mut ws,
        json!({"topic": "nosuchroom/set/mic_muted", "payload": "ON"}),
    )
    .await;
    let p = until(&mut ws, "nosuchroom/response/mic_muted", error).await;
    assert!(p["error"].as_str().unwrap().contains("unknown room"), "{p}");
    send(
        &mut ws,
        json!({"topic": "boardroom/set/volume", "payload": "11"}),
    )
    .await;
    until(&mut ws, "boardroom/response/volume", error).await;
    send(
        &mut ws,
        json!({"topic": "boardroom/set", "payload": "not json"}),
    )
    .await;
    until(&mut ws, "boardroom/response/set", error).await;
    let big = "x".repeat(8192); // over the tests' max_payload_bytes (4096)
    send(
        &mut ws,
        json!({"topic": "boardroom/set/caller", "payload": big}),
    )
    .await;
    let p = until(&mut ws, "boardroom/response/caller", error).await;
    assert!(p["error"].as_str().unwrap().contains("exceeds"), "{p}");

    // Still served after all that.
    send(&mut ws, json!({"topic": "boardroom/request/getAppState"})).await;
    until(&mut ws, "boardroom/response/getAppState", |p| {
        p["status"] == "ok"
    })
    .await;

    // A flood is rate limited, with errors, not a disconnect.
    for _ in 0..100 {
        send(&mut ws, json!({"topic": "boardroom/request/getAppState"})).await;
    }
    until(&mut ws, "bridge/response/error", |p| {
        p.to_string().contains("rate limit")
    })
    .await;

    // A message over the size limit closes the session with 1009 after saying why.
    let huge = "y".repeat(trueconf2mqtt::control::ws::MAX_MESSAGE + 1);
    let _ = ws.send(Frame::text(huge)).await;
    let closed = within(WAIT, "the close", async {
        loop {
            match ws.next().await {
                Some(Ok(Frame::Close(frame))) => return frame.map(|f| u16::from(f.code)),
                Some(Ok(_)) => {}
                _ => return None,
            }
        }
    })
    .await;
    // 1009 when the client reads the close before the server drops the socket it still writes.
    assert!(matches!(closed, None | Some(1009)), "{closed:?}");
    let mut again = connect_ok(addr).await;
    send(
        &mut again,
        json!({"topic": "boardroom/request/getAppState"}),
    )
    .await;
    until(&mut again, "boardroom/response/getAppState", |p| {
        p["status"] == "ok"
    })
    .await;
    assert!(
        world
            .running
            .bridge
            .hub()
            .stats()
            .refused
            .load(std::sync::atomic::Ordering::Relaxed)
            >= 8
    );
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn the_token_is_required_and_the_probes_stay_open() {
    let world = World::start(false, |_| {}).await;
    let (addr, _stop) = serve(&world, Some(TOKEN)).await;
    for query in ["", "?token=wrong-token-0123456789", "?token="] {
        match connect(addr, query).await {
            Err(tungstenite::Error::Http(response)) => {
                assert_eq!(response.status(), 401, "{query}")
            }
            other => panic!("{query}: expected 401, got {:?}", other.map(|_| ())),
        }
    }
    // `Authorization: Bearer` works too.
    let mut request = format!("ws://{addr}/api").into_client_request().unwrap();
    request
        .headers_mut()
        .insert("Authorization", format!("Bearer {TOKEN}").parse().unwrap());
    let (socket, _) = tokio_tungstenite::connect_async(request).await.unwrap();
    let mut ws = Ws {
        socket,
        unread: Default::default(),
    };
    until(&mut ws, "bridge/state", |p| p == "online").await;

    // The schema needs the token; the probes do not.
    let get = |path: &str| {
        let path = path.to_owned();
        async move {
            let mut tcp = TcpStream::connect(addr).await.unwrap();
            use tokio::io::{AsyncReadExt, AsyncWriteExt};
            tcp.write_all(format!("GET {path} HTTP/1.0\r\nHost: x\r\n\r\n").as_bytes())
                .await
                .unwrap();
            let mut out = String::new();
            tcp.read_to_string(&mut out).await.unwrap();
            out
        }
    };
    assert!(get("/api/schema").await.starts_with("HTTP/1.0 401"));
    assert!(get("/healthz").await.starts_with("HTTP/1.0 200"));
    let schema = get(&format!("/api/schema?token={TOKEN}")).await;
    assert!(schema.starts_with("HTTP/1.0 200"), "{schema}");
    let body: Value = serde_json::from_str(schema.split("\r\n\r\n").nth(1).unwrap()).unwrap();
    assert_eq!(body["rooms"][0]["id"], ROOM);
    let mic = body["fields"]
        .as_array()
        .unwrap()
        .iter()
        .find(|f| f["name"] == "mic_muted")
        .unwrap();
    assert_eq!(mic["settable"], true);
    let camera = body["fields"]
        .as_array()
        .unwrap()
        .iter()
        .find(|f| f["name"] == "camera")
        .unwrap();
    assert_eq!(camera["set"]["options_from"], "cameras");
    let call = body["methods"]
        .as_array()
        .unwrap()
        .iter()
        .find(|m| m["name"] == "call")
        .unwrap();
    assert!(!call["params"].as_array().unwrap().is_empty());
    let metrics = get("/metrics").await;
    assert!(
        metrics.contains("trueconf2mqtt_control_refused_total"),
        "{metrics}"
    );
    assert!(
        metrics.contains("trueconf2mqtt_control_clients 1"),
        "{metrics}"
    );
    // Without the WebSocket handshake, /api says what it is.
    assert!(
        get(&format!("/api?token={TOKEN}"))
            .await
            .starts_with("HTTP/1.0 426")
    );
}

const BIN: &str = env!("CARGO_BIN_EXE_trueconf2mqtt");

fn daemon_config(broker: u16, room_port: u16, http: &str, panel: &str, tokens: &str) -> String {
    format!(
        r#"
[mqtt]
host = "127.0.0.1"
port = {broker}
client_id = "surface-test-{id}"
[http]
listen = "{http}"
{tokens}
[panel]
listen = "{panel}"
[[rooms]]
id = "boardroom"
host = "127.0.0.1"
port = {room_port}
pin = "4321"
"#,
        id = fastrand::u32(..),
    )
}

#[test]
fn a_control_surface_off_loopback_without_a_token_never_starts() {
    let dir = tempfile::tempdir().unwrap();
    let path = dir.path().join("open.toml");
    let port = common::free_port();
    std::fs::write(
        &path,
        daemon_config(1, 2, &format!("0.0.0.0:{port}"), "", ""),
    )
    .unwrap();
    for subcommand in ["check-config", "run"] {
        let out = std::process::Command::new(BIN)
            .args([subcommand, "--config"])
            .arg(&path)
            .output()
            .unwrap();
        assert!(!out.status.success(), "{subcommand} started");
        let err = String::from_utf8_lossy(&out.stderr);
        assert!(
            err.contains("http.auth_token") && err.contains("http.control = false"),
            "{err}"
        );
    }
    // With a token it is valid, and the token is never shown.
    let token = "Yv3-secret-token-77";
    std::fs::write(
        &path,
        daemon_config(
            1,
            2,
            &format!("0.0.0.0:{port}"),
            "",
            &format!("auth_token = \"{token}\""),
        ),
    )
    .unwrap();
    let out = std::process::Command::new(BIN)
        .args(["check-config", "--config"])
        .arg(&path)
        .output()
        .unwrap();
    let text = String::from_utf8_lossy(&out.stdout);
    assert!(
        out.status.success(),
        "{text}{}",
        String::from_utf8_lossy(&out.stderr)
    );
    assert!(text.contains("control surface /api token set"), "{text}");
    assert!(!text.contains(token));
}

/// The daemon (`run`) serves both surfaces from its configuration.
#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn the_daemon_serves_the_websocket_api_and_the_panel_protocol() {
    let broker = common::Broker::start();
    let room = common::rig::sim().await;
    let (http, panel) = (common::free_port(), common::free_port());
    let dir = tempfile::tempdir().unwrap();
    let path = dir.path().join("config.toml");
    std::fs::write(
        &path,
        daemon_config(
            broker.port,
            room.http_port(),
            &format!("127.0.0.1:{http}"),
            &format!("127.0.0.1:{panel}"),
            &format!("auth_token = \"{TOKEN}\""),
        ),
    )
    .unwrap();
    let mut child = std::process::Command::new(BIN)
        .args(["run", "--config"])
        .arg(&path)
        .stdout(std::process::Stdio::null())
        .stderr(std::process::Stdio::null())
        .spawn()
        .unwrap();
    let addr: SocketAddr = format!("127.0.0.1:{http}").parse().unwrap();
    let mut ws = within(WAIT, "the WebSocket API", async {
        loop {
            if let Ok(ws) = connect(addr, &format!("?token={TOKEN}")).await {
                return ws;
            }
            tokio::time::sleep(Duration::from_millis(100)).await;
        }
    })
    .await;
    until(&mut ws, "boardroom/availability", |p| p == "online").await;

    // The panel protocol: loopback without a token, so AUTH is not needed.
    use tokio::io::{AsyncBufReadExt, AsyncWriteExt, BufReader};
    let tcp = TcpStream::connect(("127.0.0.1", panel)).await.unwrap();
    let (read, mut write) = tcp.into_split();
    let mut lines = BufReader::new(read).lines();
    write
        .write_all(b"GET boardroom availability\r\n")
        .await
        .unwrap();
    let line = within(WAIT, "a STATE line", lines.next_line())
        .await
        .unwrap();
    assert_eq!(line.as_deref(), Some("STATE boardroom availability online"));
    child.kill().unwrap();
    child.wait().unwrap();
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn a_client_that_never_reads_is_cut_without_slowing_the_bridge() {
    let world = World::start(false, |_| {}).await;
    let (addr, _stop) = serve(&world, Some(TOKEN)).await;
    // A WebSocket over a socket with a tiny receive window, never read.
    let socket = tokio::net::TcpSocket::new_v4().unwrap();
    socket.set_recv_buffer_size(2048).unwrap();
    let tcp = socket.connect(addr).await.unwrap();
    let (_stuck, _) =
        tokio_tungstenite::client_async(format!("ws://{addr}/api?token={TOKEN}"), tcp)
            .await
            .unwrap();

    // Far more than socket buffers hold (~18 MB of messages).
    let count = 12_000;
    let padding = "x".repeat(1500);
    for i in 0..count {
        world
            .room
            .chat_message(CHATTER, &format!("flood {i} {padding}"))
            .unwrap();
    }
    let last = format!("flood {} ", count - 1);
    world
        .probe
        .wait_message(
            &t("event/incomingChatMessage"),
            Duration::from_secs(60),
            |p| p.contains(&last),
        )
        .await;
    // Another client is served meanwhile.
    let mut other = connect_ok(addr).await;
    until(&mut other, "bridge/state", |p| p == "online").await;
    // The stuck one is cut once a write waited WRITE_TIMEOUT, and counted.
    let stats = world.running.bridge.hub().stats();
    common::wait_until(
        trueconf2mqtt::control::ws::WRITE_TIMEOUT + Duration::from_secs(10),
        "the stuck client cut and counted",
        || {
            stats
                .slow_clients
                .load(std::sync::atomic::Ordering::Relaxed)
                >= 1
        },
    )
    .await;
}
