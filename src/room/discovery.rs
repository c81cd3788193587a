//! Finding the Room's WebSocket port through its `config.json` (SPEC §2).
//!
//! The request goes through hyper's HTTP/1.1 client: status line, headers, `Content-Length`,
//! chunked bodies and keep-alive servers are its business, not ours. The body is bounded in
//! size (a Room's is ~100 bytes) and the whole exchange in time (the caller's timeout), and
//! [`parse_config`] accepts any byte sequence without panicking (it is a fuzz target).

use std::time::Duration;

use http_body_util::{BodyExt, Empty, Limited};
use hyper::body::Bytes;
use hyper_util::rt::TokioIo;
use serde_json::Value;
use tokio::net::TcpStream;

/// The documented default WebSocket port, used when discovery fails.
pub const DEFAULT_WS_PORT: u16 = 8765;
/// The documented default port of the built-in HTTP server.
pub const DEFAULT_HTTP_PORT: u16 = 8766;

/// Largest `config.json` body we read; the real one is ~100 bytes, so anything near this is not
/// a Room's answer and is refused instead of buffered.
pub const MAX_BODY_BYTES: usize = 64 * 1024;

/// Longest error detail quoted from a body (a bad value is named, a whole page is not).
const MAX_QUOTED: usize = 40;

/// Ports announced by the Room.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub struct Ports {
    /// WebSocket API port.
    pub websocket: u16,
    /// Built-in HTTP server port.
    pub http: u16,
}

/// Why discovery failed (the caller falls back to the defaults).
#[derive(Debug, thiserror::Error)]
pub enum DiscoveryError {
    /// TCP or I/O failure.
    #[error("cannot fetch config.json: {0}")]
    Io(#[from] std::io::Error),
    /// The HTTP exchange failed (malformed response, connection closed early…).
    #[error("config.json request failed: {0}")]
    Http(String),
    /// No answer in time.
    #[error("config.json request timed out")]
    Timeout,
    /// Not `200 OK`.
    #[error("config.json request answered with status {0}")]
    Status(String),
    /// The body is not the documented shape.
    #[error("config.json has no usable websocket port: {0}")]
    Body(String),
}

/// Fetches `http://<host>:<port>/public/<instance>/config.json` and reads the ports from it,
/// all within `timeout`.
pub async fn discover(
    host: &str,
    port: u16,
    instance: &str,
    timeout: Duration,
) -> Result<Ports, DiscoveryError> {
    let body = tokio::time::timeout(timeout, fetch(host, port, instance))
        .await
        .map_err(|_| DiscoveryError::Timeout)??;
    parse_config(&body)
}

/// One GET over a fresh connection; returns the body (at most [`MAX_BODY_BYTES`]).
async fn fetch(host: &str, port: u16, instance: &str) -> Result<Bytes, DiscoveryError> {
    let http = |e: hyper::Error| DiscoveryError::Http(e.to_string());
    let stream = TcpStream::connect((host, port)).await?;
    let (mut sender, connection) = hyper::client::conn::http1::handshake(TokioIo::new(stream))
        .await
        .map_err(http)?;
    // The connection future drives the socket; it ends with the request (or this function).
    let driver = tokio::spawn(connection);
    let _abort = AbortOnDrop(driver.abort_handle());

    let authority = if host.contains(':') {
        format!("[{host}]:{port}")
    } else {
        format!("{host}:{port}")
    };
    let request = hyper::Request::get(format!("/public/{instance}/config.json"))
        .header(hyper::header::HOST, authority)
        .header(hyper::header::ACCEPT, "application/json")
        .body(Empty::<Bytes>::new())
        .map_err(|e| DiscoveryError::Http(e.to_string()))?;
    let response = sender.send_request(request).await.map_err(http)?;
    let status = response.status();
    if status != hyper::StatusCode::OK {
        return Err(DiscoveryError::Status(status.to_string()));
    }
    let body = Limited::new(response.into_body(), MAX_BODY_BYTES)
        .collect()
        .await
        .map_err(|e| DiscoveryError::Body(format!("body not read: {e}")))?;
    Ok(body.to_bytes())
}

/// Aborts the connection task when the request is done or abandoned (timeout).
struct AbortOnDrop(tokio::task::AbortHandle);

impl Drop for AbortOnDrop {
    fn drop(&mut self) {
        self.0.abort();
    }
}

/// Reads the ports from a `config.json` body: any bytes, never a panic.
pub fn parse_config(body: impl AsRef<[u8]>) -> Result<Ports, DiscoveryError> {
    let body = body.as_ref();
    // A UTF-8 byte order mark is tolerated; serde_json does not skip it.
    let body = body.strip_prefix(b"\xEF\xBB\xBF").unwrap_or(body);
    let value: Value =
        serde_json::from_slice(body).map_err(|e| DiscoveryError::Body(e.to_string()))?;
    let websocket = port_at(&value, "/config/websocket/port", "config.websocket.port")?
        .ok_or_else(|| DiscoveryError::Body("config.websocket.port missing".into()))?;
    // The web port only serves camera stills: a bad one falls back to the default rather than
    // costing the WebSocket port that was announced fine.
    let http = port_at(&value, "/config/http/port", "config.http.port")
        .ok()
        .flatten()
        .unwrap_or(DEFAULT_HTTP_PORT);
    Ok(Ports { websocket, http })
}

/// The port at `pointer`: `None` when absent or null, an error naming the value when it is not
/// a TCP port (1–65535).
fn port_at(value: &Value, pointer: &str, name: &str) -> Result<Option<u16>, DiscoveryError> {
    let Some(found) = value.pointer(pointer).filter(|v| !v.is_null()) else {
        return Ok(None);
    };
    match found.as_u64().map(u16::try_from) {
        Some(Ok(port)) if port != 0 => Ok(Some(port)),
        _ => Err(DiscoveryError::Body(format!(
            "{name} is {}, not a port number (1-65535)",
            quoted(found)
        ))),
    }
}

/// A JSON value as text, cut to [`MAX_QUOTED`] characters.
fn quoted(value: &Value) -> String {
    let text = value.to_string();
    match text.char_indices().nth(MAX_QUOTED) {
        Some((cut, _)) => format!("{}…", &text[..cut]),
        None => text,
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn parses_the_documented_body() {
        let body = std::fs::read_to_string(concat!(
            env!("CARGO_MANIFEST_DIR"),
            "/protocol/examples/config.json.http.json"
        ))
        .unwrap();
        assert_eq!(
            parse_config(&body).unwrap(),
            Ports {
                websocket: 8765,
                http: 8766
            }
        );
    }

    #[test]
    fn odd_bodies_are_errors_not_panics() {
        for body in [
            &b"} {"[..],
            b"",
            b"{",
            b"}",
            b"\xff\xfe",
            b"[]",
            b"null",
            b"{\"config\":{}}",
        ] {
            assert!(parse_config(body).is_err(), "{body:?}");
        }
        let bom = b"\xEF\xBB\xBF{\"config\":{\"websocket\":{\"port\":9001}}}";
        assert_eq!(parse_config(bom).unwrap().websocket, 9001);
    }

    #[test]
    fn a_bad_port_is_named() {
        for (bad, shown) in [
            ("0", "0"),
            ("65536", "65536"),
            ("\"27771\"", "\"27771\""),
            ("-1", "-1"),
            ("8765.5", "8765.5"),
        ] {
            let body = format!("{{\"config\":{{\"websocket\":{{\"port\":{bad}}}}}}}");
            let error = parse_config(&body).unwrap_err().to_string();
            assert!(
                error.contains(&format!("config.websocket.port is {shown},")),
                "{bad}: {error}"
            );
        }
        let body = r#"{"config":{"websocket":{"port":9001},"http":{"port":70000}}}"#;
        let ports = parse_config(body).unwrap();
        assert_eq!((ports.websocket, ports.http), (9001, DEFAULT_HTTP_PORT));
        let long = format!(
            r#"{{"config":{{"websocket":{{"port":"{}"}}}}}}"#,
            "x".repeat(500)
        );
        assert!(parse_config(&long).unwrap_err().to_string().len() < 200);
    }
}
