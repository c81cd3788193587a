//! The panel TCP line protocol (`[panel] listen`) against the simulator, a real mosquitto and
//! a running bridge: authentication, SUBSCRIBE's STATE lines (derived from the field table),
//! SET/GET/CALL, events, the broker stopped, bad input and limits; and the documented clients
//! (the `socat` recipe of docs/panels.md and scripts/panel-client.py) as real programs.

mod common;

use std::collections::VecDeque;
use std::net::SocketAddr;
use std::path::Path;
use std::process::Command;
use std::time::Duration;

use tokio::io::{AsyncBufReadExt, AsyncWriteExt, BufReader};
use tokio::net::TcpStream;
use tokio::net::tcp::{OwnedReadHalf, OwnedWriteHalf};
use tokio_util::sync::CancellationToken;
use trueconf2mqtt::control::panel::{self, MAX_CONNECTIONS, line::MAX_LINE};
use trueconf2mqtt::secret::Secret;
use trueconf2mqtt::surface::fields::plain_field_names;

use common::rig::{CHATTER, ROOM, WAIT, World};
use common::within;

const TOKEN: &str = "panel-token-0123456789";

async fn serve(world: &World) -> (SocketAddr, CancellationToken) {
    let listener = tokio::net::TcpListener::bind("127.0.0.1:0").await.unwrap();
    let addr = listener.local_addr().unwrap();
    let shutdown = CancellationToken::new();
    tokio::spawn(panel::serve(
        listener,
        world.running.bridge.clone(),
        Some(Secret::new(TOKEN)),
        shutdown.clone(),
    ));
    (addr, shutdown)
}

/// A line client that keeps lines it read but did not look at yet.
struct Client {
    reader: BufReader<OwnedReadHalf>,
    writer: OwnedWriteHalf,
    unread: VecDeque<String>,
}

impl Client {
    async fn connect(addr: SocketAddr) -> Client {
        let (read, writer) = TcpStream::connect(addr).await.unwrap().into_split();
        Client {
            reader: BufReader::new(read),
            writer,
            unread: VecDeque::new(),
        }
    }

    async fn authed(addr: SocketAddr) -> Client {
        let mut c = Client::connect(addr).await;
        c.send(&format!("AUTH {TOKEN}")).await;
        c.expect(|l| l == "OK AUTH").await;
        c
    }

    async fn send(&mut self, line: &str) {
        self.send_raw(format!("{line}\r\n").as_bytes()).await;
    }

    async fn send_raw(&mut self, bytes: &[u8]) {
        self.writer.write_all(bytes).await.unwrap();
    }

    /// The next line from the socket; `None` when the bridge closed the connection.
    async fn read(&mut self) -> Option<String> {
        let mut line = String::new();
        let n = within(WAIT, "a line", self.reader.read_line(&mut line))
            .await
            .unwrap_or(0);
        assert!(
            n == 0 || line.ends_with("\r\n"),
            "lines end with CRLF: {line:?}"
        );
        (n > 0).then(|| line.trim_end().to_owned())
    }

    /// Reads until a line satisfies `check`; returns it.
    async fn expect(&mut self, check: impl Fn(&str) -> bool) -> String {
        if let Some(at) = self.unread.iter().position(|l| check(l)) {
            return self.unread.remove(at).unwrap();
        }
        let mut seen = Vec::new();
        loop {
            let Some(line) = self.read().await else {
                panic!("connection closed; lines: {seen:?}");
            };
            if check(&line) {
                return line;
            }
            seen.push(line.clone());
            self.unread.push_back(line);
        }
    }

    async fn closed(&mut self) -> bool {
        within(WAIT, "the close", async {
            while self.read().await.is_some() {}
        })
        .await;
        true
    }
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn subscribe_set_get_call_and_events() {
    let world = World::start(false, |_| {}).await;
    let (addr, _stop) = serve(&world).await;
    let mut c = Client::connect(addr).await;

    // Before AUTH: PING and HELP only.
    c.send("ping").await;
    c.expect(|l| l == "PONG").await;
    c.send("SUBSCRIBE *").await;
    c.expect(|l| l.starts_with("ERROR authenticate first"))
        .await;
    c.send("AUTH wrong-token-0123456789").await;
    c.expect(|l| l == "ERROR wrong token").await;
    c.send(&format!("AUTH {TOKEN}")).await;
    c.expect(|l| l == "OK AUTH").await;

    // SUBSCRIBE: availability, then one STATE line per plain field of the table.
    c.send(&format!("SUBSCRIBE {ROOM}")).await;
    c.expect(|l| l == format!("STATE {ROOM} availability online"))
        .await;
    let mut mic = String::new();
    for field in plain_field_names() {
        let prefix = format!("STATE {ROOM} {field} ");
        let line = c
            .expect(|l| l.starts_with(&prefix) || l == prefix.trim_end())
            .await;
        if field == "mic_muted" {
            mic = line[prefix.len()..].to_owned();
        }
    }
    let wanted = if mic == "ON" { "OFF" } else { "ON" };

    // SET: OK, and the change comes as a STATE line.
    c.send(&format!("SET {ROOM} mic_muted {wanted}")).await;
    c.expect(|l| l == format!("OK {ROOM} mic_muted")).await;
    c.expect(|l| l == format!("STATE {ROOM} mic_muted {wanted}"))
        .await;
    c.send(&format!("GET {ROOM} mic_muted")).await;
    c.expect(|l| l == format!("STATE {ROOM} mic_muted {wanted}"))
        .await;
    c.send(&format!("GET {ROOM} nonsense")).await;
    c.expect(|l| l.starts_with(&format!("ERR {ROOM} nonsense unknown field")))
        .await;

    // Refusals keep the SET shape; CALL answers with the MQTT response JSON.
    c.send(&format!("SET {ROOM} camera No Such Camera 3")).await;
    let err = c
        .expect(|l| l.starts_with(&format!("ERR {ROOM} camera ")))
        .await;
    assert!(err.contains("No Such Camera 3"), "{err}");
    c.send(&format!("SET {ROOM} volume 3")).await;
    c.expect(|l| l.starts_with(&format!("ERR {ROOM} volume unknown field")))
        .await;
    c.send(&format!("CALL {ROOM} getAppState")).await;
    let result = c
        .expect(|l| l.starts_with(&format!("RESULT {ROOM} getAppState ")))
        .await;
    assert!(result.contains(r#""status":"ok""#), "{result}");
    c.send(&format!("CALL {ROOM} rebootSystem {{}}")).await;
    let result = c
        .expect(|l| l.starts_with(&format!("RESULT {ROOM} rebootSystem ")))
        .await;
    assert!(
        result.contains("allow_dangerous"),
        "the MQTT policy: {result}"
    );
    c.send(&format!("CALL {ROOM} setMicMute {{oops")).await;
    let result = c
        .expect(|l| l.starts_with(&format!("RESULT {ROOM} setMicMute ")))
        .await;
    assert!(result.contains("not valid JSON"), "{result}");
    c.send("SET nosuchroom mic_muted ON").await;
    c.expect(|l| l.starts_with("ERR nosuchroom mic_muted unknown room"))
        .await;

    // Events of subscribed rooms.
    world.room.chat_message(CHATTER, "hello crestron").unwrap();
    let event = c
        .expect(|l| l.starts_with(&format!("EVENT {ROOM} incomingChatMessage {{")))
        .await;
    assert!(event.contains("hello crestron"), "{event}");

    // A second client that did not subscribe gets no STATE lines, and no one else's replies.
    let mut other = Client::authed(addr).await;
    c.send(&format!("SET {ROOM} mic_muted {mic}")).await;
    c.expect(|l| l == format!("OK {ROOM} mic_muted")).await;
    other.send("PING").await;
    let next = other.read().await.unwrap();
    assert_eq!(next, "PONG", "nothing unsolicited before it");

    c.send("HELP").await;
    c.expect(|l| l.starts_with("HELP set mic_muted: ON, OFF, TOGGLE"))
        .await;
    c.expect(|l| l == "HELP END").await;
    c.send("QUIT").await;
    assert!(c.closed().await);
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn works_while_the_broker_is_away() {
    let mut world = World::start(false, |_| {}).await;
    let (addr, _stop) = serve(&world).await;
    world.broker.kill();
    common::wait_until(WAIT, "the bridge notices", || {
        !world.running.bridge.link().is_connected()
    })
    .await;
    let mut c = Client::authed(addr).await;
    c.send(&format!("GET {ROOM} speaker_muted")).await;
    let line = c
        .expect(|l| l.starts_with(&format!("STATE {ROOM} speaker_muted ")))
        .await;
    let wanted = if line.ends_with(" ON") { "OFF" } else { "ON" };
    c.send(&format!("SUBSCRIBE {ROOM}")).await;
    c.send(&format!("SET {ROOM} speaker_muted {wanted}")).await;
    c.expect(|l| l == format!("OK {ROOM} speaker_muted")).await;
    c.expect(|l| l == format!("STATE {ROOM} speaker_muted {wanted}"))
        .await;
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn bad_input_and_limits() {
    let world = World::start(false, |_| {}).await;
    let (addr, _stop) = serve(&world).await;
    let mut c = Client::authed(addr).await;

    c.send("FROB boardroom").await;
    c.expect(|l| l.starts_with("ERROR unknown command 'FROB'"))
        .await;
    c.send("SET boardroom").await;
    c.expect(|l| l.starts_with("ERROR usage: SET")).await;
    c.send_raw(b"GET boardroom \xff\xfe\r\n").await;
    c.expect(|l| l.starts_with("ERROR line is not UTF-8")).await;
    c.send_raw(&vec![b'A'; MAX_LINE * 4]).await;
    c.send_raw(b"\r\n").await;
    c.expect(|l| l.starts_with("ERROR line too long")).await;
    c.send("SET boardroom/x mic_muted ON").await;
    c.expect(|l| l.starts_with("ERROR room, field and method names"))
        .await;
    c.send("PING").await;
    c.expect(|l| l == "PONG").await;

    // A flood: rate limited, one error a second, the connection kept.
    let flood = "PING\r\n".repeat(500);
    c.send_raw(flood.as_bytes()).await;
    c.expect(|l| l.starts_with("ERROR rate limit")).await;
    tokio::time::sleep(Duration::from_millis(300)).await;
    c.send("GET boardroom availability").await;
    c.expect(|l| l == "STATE boardroom availability online")
        .await;

    // Three wrong tokens close the connection.
    let mut guesser = Client::connect(addr).await;
    for i in 0..3 {
        guesser.send(&format!("AUTH guess-number-{i}-xxxx")).await;
    }
    assert!(guesser.closed().await);

    // Connections past the limit are told so and closed.
    let mut open = Vec::new();
    for _ in 0..MAX_CONNECTIONS - 1 {
        open.push(Client::authed(addr).await);
    }
    let mut extra = Client::connect(addr).await;
    let line = extra.read().await.unwrap();
    assert!(line.starts_with("ERROR too many connections"), "{line}");
    drop(open);
    let refused = world
        .running
        .bridge
        .hub()
        .stats()
        .refused
        .load(std::sync::atomic::Ordering::Relaxed);
    assert!(refused >= 8, "{refused}");
}

/// The fenced block after `marker` in docs/panels.md.
fn doc_block(marker: &str) -> String {
    let doc = std::fs::read_to_string(Path::new(env!("CARGO_MANIFEST_DIR")).join("docs/panels.md"))
        .unwrap();
    let after = &doc[doc
        .find(marker)
        .unwrap_or_else(|| panic!("'{marker}' in docs/panels.md"))..];
    let start = after.find("```sh\n").expect("a sh block") + 6;
    after[start..start + after[start..].find("```").unwrap()].to_owned()
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn the_documented_clients_work() {
    let world = World::start(false, |_| {}).await;
    let (addr, _stop) = serve(&world).await;
    let port = addr.port().to_string();

    // docs/panels.md: the socat recipe, as written (token and port filled in).
    let block = doc_block("<!-- recipe: socat -->")
        .replace("<token>", TOKEN)
        .replace("9181", &port);
    let out = tokio::task::spawn_blocking(move || {
        Command::new("bash").arg("-c").arg(&block).output().unwrap()
    })
    .await
    .unwrap();
    let text = String::from_utf8_lossy(&out.stdout).into_owned();
    assert!(
        out.status.success(),
        "{text}{}",
        String::from_utf8_lossy(&out.stderr)
    );
    for needle in [
        "OK AUTH",
        "STATE boardroom availability online",
        "STATE boardroom mic_muted ",
        "OK boardroom mic_muted",
    ] {
        assert!(
            text.contains(needle),
            "socat recipe: no '{needle}' in\n{text}"
        );
    }

    // docs/panels.md: the Python client.
    let block = doc_block("<!-- recipe: python -->")
        .replace("<token>", TOKEN)
        .replace("9181", &port);
    let out = tokio::task::spawn_blocking(move || {
        Command::new("bash")
            .arg("-c")
            .arg(&block)
            .current_dir(env!("CARGO_MANIFEST_DIR"))
            .output()
            .unwrap()
    })
    .await
    .unwrap();
    let text = String::from_utf8_lossy(&out.stdout).into_owned();
    assert!(
        out.status.success(),
        "{text}{}",
        String::from_utf8_lossy(&out.stderr)
    );
    for needle in [
        "OK AUTH",
        "OK boardroom camera_muted",
        "RESULT boardroom getAppState {\"data\"",
    ] {
        assert!(
            text.contains(needle),
            "python client: no '{needle}' in\n{text}"
        );
    }
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn a_client_that_never_reads_does_not_slow_the_bridge() {
    let world = World::start(false, |_| {}).await;
    let (addr, _stop) = serve(&world).await;
    // Subscribed to everything, with a tiny receive window, and never reading.
    let socket = tokio::net::TcpSocket::new_v4().unwrap();
    socket.set_recv_buffer_size(2048).unwrap();
    let mut stuck = socket.connect(addr).await.unwrap();
    stuck
        .write_all(format!("AUTH {TOKEN}\r\nSUBSCRIBE *\r\n").as_bytes())
        .await
        .unwrap();

    // Far more than socket buffers hold (~18 MB of EVENT lines) and than the live feed keeps.
    let count = 12_000;
    let padding = "x".repeat(1500);
    let started = std::time::Instant::now();
    for i in 0..count {
        world
            .room
            .chat_message(CHATTER, &format!("flood {i} {padding}"))
            .unwrap();
    }
    // Every event still reaches the broker, promptly.
    let last = format!("flood {} ", count - 1);
    world
        .probe
        .wait_message(
            &common::rig::t("event/incomingChatMessage"),
            Duration::from_secs(60),
            |p| p.contains(&last),
        )
        .await;
    let through = started.elapsed();
    // And another client is served meanwhile.
    let mut c = Client::authed(addr).await;
    c.send(&format!("GET {ROOM} availability")).await;
    c.expect(|l| l == format!("STATE {ROOM} availability online"))
        .await;
    let stats = world.running.bridge.hub().stats();
    let load = |c: &std::sync::atomic::AtomicU64| c.load(std::sync::atomic::Ordering::Relaxed);
    // The stuck client is cut once a write waited WRITE_TIMEOUT for it, and counted.
    let deadline = std::time::Instant::now() + panel::WRITE_TIMEOUT + Duration::from_secs(10);
    while load(&stats.slow_clients) < 1 {
        assert!(
            std::time::Instant::now() < deadline,
            "the stuck client is not counted: resyncs {}, missed {}, slow {}, clients {}",
            load(&stats.resyncs),
            load(&stats.missed),
            load(&stats.slow_clients),
            load(&stats.clients)
        );
        tokio::time::sleep(Duration::from_millis(50)).await;
    }
    println!(
        "{count} events through with a stuck client in {:?} (resyncs {}, missed {}, slow {})",
        through,
        load(&stats.resyncs),
        load(&stats.missed),
        load(&stats.slow_clients)
    );
    drop(stuck);
}
