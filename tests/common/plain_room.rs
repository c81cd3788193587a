//! A Room stand-in written without any of this project's WebSocket code, the way a server that
//! tunes nothing behaves: no socket options at all (Nagle on, the kernel's delayed ACKs), the
//! opening handshake parsed by hand, and every frame written as it comes — its header in one
//! `write`, its payload in a second. A client that leaves the peer's Nagle waiting for a delayed
//! ACK shows it here as a ~40 ms round trip.
//!
//! It speaks just enough of the documented protocol for the Room client: `auth` (any
//! credentials), `getAppState`, the mute getters and setters (a setter's reply is followed by
//! its event, as on a real Room) and an empty successful reply for everything else.

use std::net::SocketAddr;
use std::sync::Arc;
use std::sync::atomic::{AtomicU64, Ordering};

use serde_json::{Map, Value, json};
use tokio::io::{AsyncReadExt, AsyncWriteExt};
use tokio::net::{TcpListener, TcpStream};
use tokio_tungstenite::tungstenite::handshake::derive_accept_key;
use tokio_util::sync::CancellationToken;

/// Largest request head or frame the stand-in reads; the client's frames are small.
const MAX_INPUT: usize = 1 << 20;

/// A running stand-in; stops (listener and connections) when dropped.
pub struct PlainRoom {
    addr: SocketAddr,
    requests: Arc<AtomicU64>,
    stop: CancellationToken,
}

impl PlainRoom {
    /// Listens on a free port of 127.0.0.1.
    pub async fn start() -> PlainRoom {
        let listener = TcpListener::bind("127.0.0.1:0").await.expect("bind");
        let addr = listener.local_addr().expect("local addr");
        let stop = CancellationToken::new();
        let requests = Arc::new(AtomicU64::new(0));
        let (token, counter) = (stop.clone(), requests.clone());
        tokio::spawn(async move {
            loop {
                let accepted = tokio::select! {
                    _ = token.cancelled() => return,
                    accepted = listener.accept() => accepted,
                };
                let Ok((tcp, _)) = accepted else { continue };
                let (token, counter) = (token.clone(), counter.clone());
                tokio::spawn(async move {
                    tokio::select! {
                        _ = token.cancelled() => {}
                        _ = serve(tcp, &counter) => {}
                    }
                });
            }
        });
        PlainRoom {
            addr,
            requests,
            stop,
        }
    }

    /// The WebSocket port (there is no HTTP side: clients are given the port directly).
    pub fn port(&self) -> u16 {
        self.addr.port()
    }

    /// Requests answered so far, all connections.
    pub fn requests(&self) -> u64 {
        self.requests.load(Ordering::Relaxed)
    }
}

impl Drop for PlainRoom {
    fn drop(&mut self) {
        self.stop.cancel();
    }
}

async fn serve(mut tcp: TcpStream, requests: &AtomicU64) -> Option<()> {
    handshake(&mut tcp).await?;
    let mut state = Muted::default();
    loop {
        let (opcode, payload) = read_frame(&mut tcp).await?;
        match opcode {
            0x1 => {
                let text = String::from_utf8(payload).ok()?;
                for frame in answer(&text, &mut state) {
                    requests.fetch_add(1, Ordering::Relaxed);
                    write_frame(&mut tcp, 0x1, frame.as_bytes()).await?;
                }
            }
            0x8 => {
                write_frame(&mut tcp, 0x8, &[]).await?;
                return Some(());
            }
            0x9 => write_frame(&mut tcp, 0xA, &payload).await?,
            _ => {}
        }
    }
}

/// Reads the HTTP upgrade request and answers it (RFC 6455 §4.2).
async fn handshake(tcp: &mut TcpStream) -> Option<()> {
    let mut head = Vec::with_capacity(1024);
    let mut byte = [0u8; 1];
    while !head.ends_with(b"\r\n\r\n") {
        if tcp.read(&mut byte).await.ok()? == 0 || head.len() > MAX_INPUT {
            return None;
        }
        head.push(byte[0]);
    }
    let head = String::from_utf8(head).ok()?;
    let key = head.lines().find_map(|line| {
        let (name, value) = line.split_once(':')?;
        name.trim()
            .eq_ignore_ascii_case("sec-websocket-key")
            .then(|| value.trim().to_owned())
    })?;
    let response = format!(
        "HTTP/1.1 101 Switching Protocols\r\nUpgrade: websocket\r\nConnection: Upgrade\r\n\
         Sec-WebSocket-Accept: {}\r\n\r\n",
        derive_accept_key(key.as_bytes())
    );
    tcp.write_all(response.as_bytes()).await.ok()
}

/// Reads one (unfragmented) client frame and unmasks it.
async fn read_frame(tcp: &mut TcpStream) -> Option<(u8, Vec<u8>)> {
    let mut head = [0u8; 2];
    tcp.read_exact(&mut head).await.ok()?;
    let opcode = head[0] & 0x0f;
    let masked = head[1] & 0x80 != 0;
    let len = match head[1] & 0x7f {
        126 => {
            let mut b = [0u8; 2];
            tcp.read_exact(&mut b).await.ok()?;
            usize::from(u16::from_be_bytes(b))
        }
        127 => {
            let mut b = [0u8; 8];
            tcp.read_exact(&mut b).await.ok()?;
            usize::try_from(u64::from_be_bytes(b)).ok()?
        }
        n => usize::from(n),
    };
    if len > MAX_INPUT {
        return None;
    }
    let mut mask = [0u8; 4];
    if masked {
        tcp.read_exact(&mut mask).await.ok()?;
    }
    let mut payload = vec![0u8; len];
    tcp.read_exact(&mut payload).await.ok()?;
    if masked {
        for (i, b) in payload.iter_mut().enumerate() {
            *b ^= mask[i % 4];
        }
    }
    Some((opcode, payload))
}

/// Writes one unmasked frame: the header, then the payload, in two writes.
async fn write_frame(tcp: &mut TcpStream, opcode: u8, payload: &[u8]) -> Option<()> {
    let mut header = vec![0x80 | opcode];
    match payload.len() {
        n if n < 126 => header.push(n as u8),
        n if n <= usize::from(u16::MAX) => {
            header.push(126);
            header.extend_from_slice(&(n as u16).to_be_bytes());
        }
        n => {
            header.push(127);
            header.extend_from_slice(&(n as u64).to_be_bytes());
        }
    }
    tcp.write_all(&header).await.ok()?;
    if !payload.is_empty() {
        tcp.write_all(payload).await.ok()?;
    }
    Some(())
}

#[derive(Default)]
struct Muted {
    mic: bool,
    camera: bool,
    speaker: bool,
}

/// The frames answering one request: its reply, then the events it causes.
fn answer(text: &str, muted: &mut Muted) -> Vec<String> {
    let Ok(Value::Object(request)) = serde_json::from_str::<Value>(text) else {
        return vec![json!({"result": false, "error": "Invalid JSON"}).to_string()];
    };
    let method = request.get("method").and_then(Value::as_str).unwrap_or("");
    let mut reply = Map::new();
    reply.insert("method".into(), json!(method));
    reply.insert(
        "requestId".into(),
        request.get("requestId").cloned().unwrap_or(json!("")),
    );
    reply.insert("result".into(), json!(true));
    let mute = request
        .get("mute")
        .and_then(Value::as_bool)
        .unwrap_or(false);
    let mut events = Vec::new();
    match method {
        "auth" => {
            reply.insert("token".into(), json!("1*plainroomtoken"));
            reply.insert("tokenForHttpServer".into(), json!("4*plainroomtoken"));
        }
        "getAppState" => {
            reply.insert("appState".into(), json!(3));
        }
        "getMicMute" => {
            reply.insert("mute".into(), json!(muted.mic));
        }
        "getVideoMute" => {
            reply.insert("mute".into(), json!(muted.camera));
        }
        "getAudioMute" => {
            reply.insert("mute".into(), json!(muted.speaker));
        }
        "setMicMute" => {
            muted.mic = mute;
            events.push(json!({"method": "event", "event": "audioCapturerMute", "mute": mute}));
        }
        "setVideoMute" => {
            muted.camera = mute;
            events.push(json!({"method": "event", "event": "videoCapturerMute", "mute": mute}));
        }
        "setAudioMute" => {
            muted.speaker = mute;
            events.push(json!({"method": "event", "event": "audioRendererMute", "mute": mute}));
        }
        _ => {}
    }
    let mut frames = vec![Value::Object(reply).to_string()];
    frames.extend(events.iter().map(Value::to_string));
    frames
}
