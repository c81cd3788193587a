//! Finding the Room's WebSocket port through its `config.json` (SPEC §2).

use std::time::Duration;

use serde_json::Value;
use tokio::io::{AsyncReadExt, AsyncWriteExt};
use tokio::net::TcpStream;

/// The documented default WebSocket port, used when discovery fails.
pub const DEFAULT_WS_PORT: u16 = 8765;
/// The documented default port of the built-in HTTP server.
pub const DEFAULT_HTTP_PORT: u16 = 8766;

/// Largest `config.json` response we read; the real one is ~100 bytes.
const MAX_RESPONSE_BYTES: usize = 64 * 1024;

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

/// Fetches `http://<host>:<port>/public/<instance>/config.json` and reads the ports from it.
pub async fn discover(
    host: &str,
    port: u16,
    instance: &str,
    timeout: Duration,
) -> Result<Ports, DiscoveryError> {
    tokio::time::timeout(timeout, fetch(host, port, instance))
        .await
        .map_err(|_| DiscoveryError::Timeout)?
}

async fn fetch(host: &str, port: u16, instance: &str) -> Result<Ports, DiscoveryError> {
    let mut stream = TcpStream::connect((host, port)).await?;
    let request = format!(
        "GET /public/{instance}/config.json HTTP/1.1\r\nHost: {host}:{port}\r\n\
         Accept: application/json\r\nConnection: close\r\n\r\n"
    );
    stream.write_all(request.as_bytes()).await?;
    let mut raw = Vec::with_capacity(512);
    let mut chunk = [0u8; 4096];
    loop {
        let n = stream.read(&mut chunk).await?;
        if n == 0 {
            break;
        }
        raw.extend_from_slice(&chunk[..n]);
        if raw.len() > MAX_RESPONSE_BYTES {
            return Err(DiscoveryError::Body("response too large".into()));
        }
    }
    parse_response(&raw)
}

/// Parses a raw HTTP response carrying `config.json`.
pub fn parse_response(raw: &[u8]) -> Result<Ports, DiscoveryError> {
    let text = String::from_utf8_lossy(raw);
    let (head, body) = text
        .split_once("\r\n\r\n")
        .ok_or_else(|| DiscoveryError::Body("no HTTP header end".into()))?;
    let status_line = head.lines().next().unwrap_or_default();
    let status = status_line.split_whitespace().nth(1).unwrap_or_default();
    if status != "200" {
        return Err(DiscoveryError::Status(status_line.to_owned()));
    }
    // A chunked body would need decoding; the Room sends a plain body (inferred from every
    // client, which read it with a simple GET). Take the JSON object wherever it starts.
    let start = body
        .find('{')
        .ok_or_else(|| DiscoveryError::Body("no JSON".into()))?;
    let end = body
        .rfind('}')
        .ok_or_else(|| DiscoveryError::Body("no JSON".into()))?;
    parse_config(&body[start..=end])
}

/// Reads the ports from a `config.json` body.
pub fn parse_config(body: &str) -> Result<Ports, DiscoveryError> {
    let value: Value =
        serde_json::from_str(body).map_err(|e| DiscoveryError::Body(e.to_string()))?;
    let port_at = |pointer: &str| {
        value
            .pointer(pointer)
            .and_then(Value::as_u64)
            .and_then(|p| u16::try_from(p).ok())
            .filter(|&p| p != 0)
    };
    let websocket = port_at("/config/websocket/port")
        .ok_or_else(|| DiscoveryError::Body("config.websocket.port missing".into()))?;
    let http = port_at("/config/http/port").unwrap_or(DEFAULT_HTTP_PORT);
    Ok(Ports { websocket, http })
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
    fn parses_a_response_and_rejects_errors() {
        let ok = b"HTTP/1.1 200 OK\r\nContent-Type: application/json\r\n\r\n{\"config\":{\"websocket\":{\"port\":9001},\"http\":{\"port\":9002}}}";
        assert_eq!(parse_response(ok).unwrap().websocket, 9001);
        assert!(matches!(
            parse_response(b"HTTP/1.1 404 Not Found\r\n\r\n"),
            Err(DiscoveryError::Status(_))
        ));
        assert!(parse_response(b"HTTP/1.1 200 OK\r\n\r\n{\"config\":{}}").is_err());
        assert!(parse_response(b"garbage").is_err());
    }
}
