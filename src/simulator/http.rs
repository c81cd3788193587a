//! The HTTP side of a simulated Room: port discovery and the self-view frame.
//!
//! Clients learn the WebSocket port from `GET /public/default/config.json` (SPEC §2) and may
//! fetch a camera still from `/frames/?token=…` (SPEC §10). That is all a bridge needs, so this
//! is a deliberately tiny HTTP/1.1 responder over a raw `TcpStream`: one request per connection,
//! `Connection: close`, a bounded request head and a timeout. No HTTP library is worth pulling in
//! for two routes.

use std::sync::Arc;
use std::time::Duration;

use tokio::io::{AsyncReadExt, AsyncWriteExt};
use tokio::net::{TcpListener, TcpStream};
use tokio_util::sync::CancellationToken;

use super::room::RoomCore;

/// Largest request head accepted.
const MAX_HEAD: usize = 8 * 1024;

/// Time a client gets to send its request and read the answer.
const REQUEST_TIMEOUT: Duration = Duration::from_secs(10);

/// A JPEG-shaped body (SOI, JFIF APP0, a comment, EOI) — enough for clients that check the
/// content type or magic bytes; it does not decode to a picture.
const FRAME_BODY: &[u8] = &[
    0xFF, 0xD8, // SOI
    0xFF, 0xE0, 0x00, 0x10, b'J', b'F', b'I', b'F', 0x00, 0x01, 0x01, 0x00, 0x00, 0x01, 0x00, 0x01,
    0x00, 0x00, // APP0 JFIF 1.1, 1x1 aspect, no thumbnail
    0xFF, 0xFE, 0x00, 0x11, b't', b'r', b'u', b'e', b'c', b'o', b'n', b'f', b'2', b'm', b'q', b't',
    b't', b' ', b's', // COM "trueconf2mqtt s"
    0xFF, 0xD9, // EOI
];

/// Accepts HTTP connections until `stop` is cancelled.
pub(crate) async fn accept_loop(
    shared: Arc<RoomCore>,
    listener: TcpListener,
    stop: CancellationToken,
) {
    let sockets = Arc::clone(&shared.http_sockets);
    super::listener::accept_loop(listener, sockets, stop, |tcp, kill| {
        let shared = Arc::clone(&shared);
        async move {
            tokio::select! {
                _ = kill.cancelled() => {}
                _ = serve(&shared, tcp) => {}
            }
        }
    })
    .await;
}

async fn serve(shared: &Arc<RoomCore>, mut tcp: TcpStream) {
    // The half-open fault freezes the whole Room, its web server included.
    let mut half_open = shared.half_open_watch();
    if half_open.wait_for(|on| !*on).await.is_err() {
        return;
    }
    let _ = tokio::time::timeout(REQUEST_TIMEOUT, answer(shared, &mut tcp)).await;
}

async fn answer(shared: &Arc<RoomCore>, tcp: &mut TcpStream) -> std::io::Result<()> {
    let mut head = Vec::with_capacity(512);
    let mut chunk = [0u8; 1024];
    while !head.windows(4).any(|w| w == b"\r\n\r\n") && head.len() < MAX_HEAD {
        let n = tcp.read(&mut chunk).await?;
        if n == 0 {
            break;
        }
        head.extend_from_slice(&chunk[..n]);
    }
    let response = respond(&head, shared.http_port, shared.ws_port, |token| {
        shared.http_token_valid(token)
    });
    tcp.write_all(&response).await?;
    tcp.shutdown().await
}

/// Builds the complete response to a request head.
fn respond(head: &[u8], http_port: u16, ws_port: u16, token_ok: impl Fn(&str) -> bool) -> Vec<u8> {
    let line = head
        .split(|b| *b == b'\n')
        .next()
        .and_then(|l| std::str::from_utf8(l).ok())
        .unwrap_or("")
        .trim_end_matches('\r');
    let mut parts = line.split(' ');
    let (method, target) = (parts.next().unwrap_or(""), parts.next().unwrap_or(""));
    let head_only = method == "HEAD";
    if method != "GET" && !head_only {
        return response(
            405,
            "Method Not Allowed",
            "text/plain",
            b"method not allowed\n",
            false,
        );
    }
    let (path, query) = target.split_once('?').unwrap_or((target, ""));
    let segments: Vec<&str> = path.split('/').collect();
    match segments.as_slice() {
        // `/public/<twin>/config.json`; `default` is the usual twin (SPEC §2.3).
        ["", "public", twin, "config.json"] if !twin.is_empty() => {
            let body = format!(
                r#"{{"config":{{"websocket":{{"hostname":null,"port":{ws_port}}},"http":{{"hostname":null,"port":{http_port}}}}}}}"#
            );
            response(200, "OK", "application/json", body.as_bytes(), head_only)
        }
        ["", "frames"] | ["", "frames", ""] => {
            let token = query_param(query, "token").unwrap_or_default();
            if token_ok(&token) {
                response(200, "OK", "image/jpeg", FRAME_BODY, head_only)
            } else {
                response(
                    401,
                    "Unauthorized",
                    "text/plain",
                    b"invalid token\n",
                    head_only,
                )
            }
        }
        _ => response(404, "Not Found", "text/plain", b"not found\n", head_only),
    }
}

fn response(
    status: u16,
    reason: &str,
    content_type: &str,
    body: &[u8],
    head_only: bool,
) -> Vec<u8> {
    let mut out = format!(
        "HTTP/1.1 {status} {reason}\r\nContent-Type: {content_type}\r\nContent-Length: {}\r\n\
         Connection: close\r\n\r\n",
        body.len()
    )
    .into_bytes();
    if !head_only {
        out.extend_from_slice(body);
    }
    out
}

/// The percent-decoded value of `name` in a query string.
fn query_param(query: &str, name: &str) -> Option<String> {
    query.split('&').find_map(|pair| {
        let (key, value) = pair.split_once('=').unwrap_or((pair, ""));
        (percent_decode(key) == name).then(|| percent_decode(value))
    })
}

fn percent_decode(text: &str) -> String {
    let bytes = text.as_bytes();
    let mut out = Vec::with_capacity(bytes.len());
    let mut i = 0;
    while i < bytes.len() {
        let hex = |b: u8| char::from(b).to_digit(16);
        match (bytes[i], bytes.get(i + 1), bytes.get(i + 2)) {
            (b'%', Some(&h), Some(&l)) if hex(h).is_some() && hex(l).is_some() => {
                let value = hex(h).unwrap_or(0) * 16 + hex(l).unwrap_or(0);
                out.push(u8::try_from(value).unwrap_or(b'?'));
                i += 3;
            }
            (b, _, _) => {
                out.push(b);
                i += 1;
            }
        }
    }
    String::from_utf8_lossy(&out).into_owned()
}

#[cfg(test)]
mod tests {
    use super::*;

    fn get(target: &str) -> String {
        let head = format!("GET {target} HTTP/1.1\r\nHost: x\r\n\r\n");
        String::from_utf8_lossy(&respond(head.as_bytes(), 8766, 8765, |t| t == "4*ok")).into_owned()
    }

    #[test]
    fn config_json_for_any_twin() {
        for twin in ["default", "second"] {
            let r = get(&format!("/public/{twin}/config.json"));
            assert!(r.starts_with("HTTP/1.1 200 OK\r\n"), "{r}");
            assert!(r.contains("Connection: close"));
            let body = r.split("\r\n\r\n").nth(1).unwrap();
            let v: serde_json::Value = serde_json::from_str(body).unwrap();
            assert_eq!(v["config"]["websocket"]["port"], 8765);
            assert_eq!(v["config"]["http"]["port"], 8766);
            assert!(v["config"]["websocket"]["hostname"].is_null());
        }
        assert!(get("/public//config.json").starts_with("HTTP/1.1 404"));
        assert!(get("/public/default/other.json").starts_with("HTTP/1.1 404"));
        assert!(get("/").starts_with("HTTP/1.1 404"));
    }

    #[test]
    fn frames_need_a_token() {
        assert!(get("/frames/?peerId=%23self%3A0&token=4%2Aok").starts_with("HTTP/1.1 200"));
        assert!(get("/frames/?peerId=%23self%3A0&token=4*ok").contains("image/jpeg"));
        assert!(get("/frames/?token=bad").starts_with("HTTP/1.1 401"));
        assert!(get("/frames/").starts_with("HTTP/1.1 401"));
    }

    #[test]
    fn garbage_requests_do_not_panic() {
        for head in [
            &b""[..],
            b"\xff\xfe\r\n\r\n",
            b"POST / HTTP/1.1\r\n\r\n",
            b"GET",
        ] {
            let r = respond(head, 1, 2, |_| true);
            assert!(r.starts_with(b"HTTP/1.1 "));
        }
        assert_eq!(percent_decode("%zz%4"), "%zz%4");
        assert_eq!(percent_decode("a%2Ab"), "a*b");
    }
}
