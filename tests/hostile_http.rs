//! Idle and slow HTTP clients (issue 12 case 3), against the real binary and mosquitto: with
//! `[http] listen` set and a small file-descriptor limit, a crowd of slow-loris connections
//! can neither take the descriptors the Room needs nor lock `/healthz` out.

mod common;

use std::io::{Read, Write};
use std::net::TcpStream;
use std::process::{Child, Command, Stdio};
use std::time::{Duration, Instant};

use trueconf2mqtt::simulator::{SimConfig, SimRoom};

use common::{Broker, Probe, free_port};

const BIN: &str = env!("CARGO_BIN_EXE_trueconf2mqtt");
const WAIT: Duration = Duration::from_secs(15);
/// The daemon's descriptor limit in this test: far below the slow clients' number.
const NOFILE: usize = 160;
/// Slow-loris connections opened (bounded; 127.0.0.1 only).
const SLOW_CLIENTS: usize = 300;
/// Stall guard for one `/healthz` during the attack.
const HEALTHZ_GUARD: Duration = Duration::from_secs(2);

struct Daemon(Child);

impl Drop for Daemon {
    fn drop(&mut self) {
        let _ = self.0.kill();
        let _ = self.0.wait();
    }
}

fn healthz(port: u16) -> Result<String, String> {
    let address = std::net::SocketAddr::from(([127, 0, 0, 1], port));
    let mut stream =
        TcpStream::connect_timeout(&address, HEALTHZ_GUARD).map_err(|e| e.to_string())?;
    stream
        .set_read_timeout(Some(HEALTHZ_GUARD))
        .map_err(|e| e.to_string())?;
    stream
        .write_all(b"GET /healthz HTTP/1.1\r\nHost: localhost\r\nConnection: close\r\n\r\n")
        .map_err(|e| e.to_string())?;
    let mut response = String::new();
    stream
        .read_to_string(&mut response)
        .map_err(|e| e.to_string())?;
    Ok(response)
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn slow_http_clients_cannot_exhaust_descriptors_or_lock_out_healthz() {
    let broker = Broker::start();
    let room = SimRoom::start(SimConfig::default()).await.unwrap();
    let http = free_port();
    let dir = tempfile::tempdir().unwrap();
    let config = dir.path().join("config.toml");
    std::fs::write(
        &config,
        format!(
            r#"
[mqtt]
host = "127.0.0.1"
port = {broker}
client_id = "hostile-http-{id}"
[http]
listen = "127.0.0.1:{http}"
[[rooms]]
id = "boardroom"
name = "Boardroom"
host = "127.0.0.1"
port = {room_port}
keepalive_secs = 3
"#,
            broker = broker.port,
            id = fastrand::u32(..),
            room_port = room.http_port(),
        ),
    )
    .unwrap();
    let probe = Probe::connect(broker.port, &["trueconf/boardroom/availability"]).await;
    let _daemon = Daemon(
        Command::new("sh")
            .arg("-c")
            .arg(format!(
                "ulimit -n {NOFILE} && exec \"$0\" run --config \"$1\""
            ))
            .arg(BIN)
            .arg(&config)
            .env("RUST_LOG", "error")
            .stdout(Stdio::null())
            .stderr(Stdio::null())
            .spawn()
            .unwrap(),
    );
    probe
        .wait_value("trueconf/boardroom/availability", "online", WAIT)
        .await;
    assert!(healthz(http).unwrap().starts_with("HTTP/1.1 200"));

    // The attack: connections that trickle a request head, one byte at a time.
    let mut slow = Vec::new();
    for _ in 0..SLOW_CLIENTS {
        if let Ok(mut s) = TcpStream::connect(("127.0.0.1", http)) {
            let _ = s.write_all(b"GET /metrics HTTP/1.1\r\nHost: x");
            slow.push(s);
        }
    }
    let trickle = std::thread::spawn(move || {
        let end = Instant::now() + Duration::from_secs(4);
        while Instant::now() < end {
            for s in &mut slow {
                let _ = s.write_all(b"x");
            }
            std::thread::sleep(Duration::from_millis(500));
        }
        slow
    });

    // Meanwhile the Room drops its connection: the bridge must get a socket to reconnect.
    let connections_before = room.authenticated_connections();
    assert_eq!(connections_before, 1);
    room.drop_connections();
    let started = Instant::now();
    let mut probes = 0;
    while started.elapsed() < Duration::from_secs(3) {
        let asked = Instant::now();
        let answer = tokio::task::spawn_blocking(move || healthz(http))
            .await
            .unwrap();
        let answer = answer.unwrap_or_else(|e| panic!("/healthz during the attack: {e}"));
        assert!(answer.starts_with("HTTP/1.1 200"), "{answer}");
        assert!(asked.elapsed() < HEALTHZ_GUARD, "{:?}", asked.elapsed());
        probes += 1;
        tokio::time::sleep(Duration::from_millis(100)).await;
    }
    assert!(probes > 5);
    let deadline = Instant::now() + WAIT;
    while room.authenticated_connections() == 0 {
        assert!(
            Instant::now() < deadline,
            "the bridge could not reconnect to the Room during the attack"
        );
        tokio::time::sleep(Duration::from_millis(20)).await;
    }
    let _slow = tokio::task::spawn_blocking(move || trickle.join().unwrap())
        .await
        .unwrap();
}
