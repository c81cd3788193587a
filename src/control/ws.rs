//! The WebSocket API at `/api`: the retained state on connect, then live changes and events;
//! commands in, each answered to its sender only ([`crate::bridge::Bridge::submit`]).
//!
//! The upgrade is done here on hyper's connection (RFC 6455 handshake), and the session runs
//! on the tokio-tungstenite the Room client already uses. Bounds: [`super::web::MAX_WS_CLIENTS`]
//! sessions, [`MAX_MESSAGE`] bytes a message, [`super::limit`] commands a second, a client
//! must answer pings within [`IDLE`], and one that does not take a message within
//! [`WRITE_TIMEOUT`] is disconnected (counted). Bad messages get one error message back.

use std::sync::Arc;
use std::sync::atomic::{AtomicU64, Ordering};
use std::time::{Duration, Instant};

use axum::body::Body;
use axum::extract::Request;
use axum::http::{HeaderMap, StatusCode, header};
use axum::response::{IntoResponse, Response};
use futures_util::{SinkExt, StreamExt};
use hyper_util::rt::TokioIo;
use tokio::sync::{broadcast, mpsc};
use tokio_tungstenite::WebSocketStream;
use tokio_tungstenite::tungstenite::protocol::frame::coding::CloseCode;
use tokio_tungstenite::tungstenite::protocol::{CloseFrame, Role, WebSocketConfig};
use tokio_tungstenite::tungstenite::{self, Message as Frame};

use super::hub::{ClientGuard, Message};
use super::limit::{self, RateLimit};
use super::message;
use super::web::Web;

/// Largest message a client may send (bytes); a larger one closes the session (1009).
pub const MAX_MESSAGE: usize = 256 * 1024;
/// Time a client gets to take one message.
pub const WRITE_TIMEOUT: Duration = Duration::from_secs(10);
/// A ping is sent this often…
pub const PING_EVERY: Duration = Duration::from_secs(20);
/// …and a client silent (no frame, no pong) for this long is disconnected.
pub const IDLE: Duration = Duration::from_secs(60);
/// Responses waiting for one client.
const REPLY_QUEUE: usize = 64;

static SESSIONS: AtomicU64 = AtomicU64::new(0);

type Socket = WebSocketStream<TokioIo<hyper::upgrade::Upgraded>>;

/// Whether the request asks for a WebSocket, and its key.
fn handshake_key(headers: &HeaderMap) -> Option<&[u8]> {
    let has = |name: header::HeaderName, token: &str| {
        headers.get_all(name).iter().any(|v| {
            v.to_str().is_ok_and(|v| {
                v.split(',')
                    .any(|part| part.trim().eq_ignore_ascii_case(token))
            })
        })
    };
    let version = headers
        .get(header::SEC_WEBSOCKET_VERSION)
        .is_some_and(|v| v == "13");
    (has(header::CONNECTION, "upgrade") && has(header::UPGRADE, "websocket") && version)
        .then(|| headers.get(header::SEC_WEBSOCKET_KEY))
        .flatten()
        .map(|k| k.as_bytes())
}

/// Answers an (authorized) request to `/api`: switches it to a WebSocket session.
pub(super) fn upgrade(web: Arc<Web>, mut request: Request<Body>) -> Response {
    let Some(key) = handshake_key(request.headers()) else {
        return (
            StatusCode::UPGRADE_REQUIRED,
            [(header::UPGRADE, "websocket")],
            "this is the WebSocket API: connect with a WebSocket client (docs/api.md)\n",
        )
            .into_response();
    };
    let accept = tungstenite::handshake::derive_accept_key(key);
    let Ok(permit) = web.slots.clone().try_acquire_owned() else {
        web.bridge.hub().refused();
        return (
            StatusCode::SERVICE_UNAVAILABLE,
            format!(
                "too many WebSocket clients (at most {})\n",
                super::web::MAX_WS_CLIENTS
            ),
        )
            .into_response();
    };
    let on_upgrade = hyper::upgrade::on(&mut request);
    tokio::spawn(async move {
        let id = format!("ws#{}", SESSIONS.fetch_add(1, Ordering::Relaxed) + 1);
        match on_upgrade.await {
            Ok(upgraded) => {
                let config = WebSocketConfig::default()
                    .max_message_size(Some(MAX_MESSAGE))
                    .max_frame_size(Some(MAX_MESSAGE));
                let socket = WebSocketStream::from_raw_socket(
                    TokioIo::new(upgraded),
                    Role::Server,
                    Some(config),
                )
                .await;
                tracing::debug!(client = %id, "WebSocket client connected");
                Session::new(&web, id.clone()).run(socket).await;
                tracing::debug!(client = %id, "WebSocket client gone");
            }
            Err(error) => tracing::debug!(%error, "a WebSocket upgrade failed"),
        }
        drop(permit);
    });
    Response::builder()
        .status(StatusCode::SWITCHING_PROTOCOLS)
        .header(header::CONNECTION, "upgrade")
        .header(header::UPGRADE, "websocket")
        .header(header::SEC_WEBSOCKET_ACCEPT, accept)
        .body(Body::empty())
        .unwrap_or_else(|_| StatusCode::INTERNAL_SERVER_ERROR.into_response())
}

/// Why a session ends early.
#[derive(Debug)]
enum End {
    /// The client went away or broke the protocol.
    Gone,
    /// The client did not take a message in time.
    Slow,
}

struct Session<'w> {
    web: &'w Web,
    id: String,
    /// `bridge/response/error`, relative (errors about client messages).
    error_topic: String,
}

impl<'w> Session<'w> {
    fn new(web: &'w Web, id: String) -> Session<'w> {
        let topics = web.bridge.topics();
        let full = topics.bridge_response("error");
        let error_topic = full
            .get(topics.base().len() + 1..)
            .unwrap_or("bridge/response/error")
            .to_owned();
        Session {
            web,
            id,
            error_topic,
        }
    }

    async fn run(self, mut socket: Socket) {
        let hub = self.web.bridge.hub().clone();
        let _guard = ClientGuard::new(hub.clone());
        let (snapshot, mut live) = hub.subscribe();
        let (reply_to, mut replies) = mpsc::channel::<Message>(REPLY_QUEUE);
        let mut limit = RateLimit::default();
        let mut ping = tokio::time::interval(PING_EVERY);
        ping.tick().await;
        let mut heard = Instant::now();
        let ended = async {
            self.send_all(&mut socket, &snapshot).await?;
            loop {
                tokio::select! {
                    _ = self.web.shutdown.cancelled() => {
                        let _ = self.close(&mut socket, CloseCode::Away, "the bridge is stopping").await;
                        return Ok(());
                    }
                    live_message = live.recv() => match live_message {
                        Ok(m) => self.send(&mut socket, &m).await?,
                        Err(broadcast::error::RecvError::Lagged(missed)) => {
                            hub.lagged(missed, &self.id);
                            self.send_all(&mut socket, &hub.snapshot()).await?;
                        }
                        Err(broadcast::error::RecvError::Closed) => return Ok(()),
                    },
                    Some(reply) = replies.recv() => self.send(&mut socket, &reply).await?,
                    frame = socket.next() => {
                        heard = Instant::now();
                        match frame {
                            None => return Err(End::Gone),
                            Some(Ok(Frame::Text(text))) => {
                                if !limit.admit() {
                                    hub.refused();
                                    let why = format!("rate limit: {}; message dropped", limit::describe());
                                    self.error(&mut socket, &why).await?;
                                    continue;
                                }
                                self.command(&mut socket, text.as_str(), &reply_to).await?;
                            }
                            Some(Ok(Frame::Binary(_))) => {
                                hub.refused();
                                self.error(&mut socket, "binary messages are not accepted: send JSON text").await?;
                            }
                            Some(Ok(Frame::Close(_))) => return Err(End::Gone),
                            Some(Ok(_)) => {} // ping (answered by tungstenite), pong
                            Some(Err(tungstenite::Error::Capacity(error))) => {
                                hub.refused();
                                let why = format!("message too large ({error}); at most {MAX_MESSAGE} bytes");
                                let _ = self.error(&mut socket, &why).await;
                                let _ = self.close(&mut socket, CloseCode::Size, "message too large").await;
                                return Err(End::Gone);
                            }
                            Some(Err(error)) => {
                                hub.refused();
                                tracing::debug!(client = %self.id, %error, "WebSocket client broke the protocol");
                                return Err(End::Gone);
                            }
                        }
                    }
                    _ = ping.tick() => {
                        if heard.elapsed() > IDLE {
                            let _ = self.close(&mut socket, CloseCode::Policy, "no pong: idle too long").await;
                            return Err(End::Gone);
                        }
                        self.write(&mut socket, Frame::Ping(Default::default())).await?;
                    }
                }
            }
        }
        .await;
        if let Err(End::Slow) = ended {
            hub.slow(&self.id);
        }
    }

    /// One client message: a command for the bridge, or an error back.
    async fn command(
        &self,
        socket: &mut Socket,
        text: &str,
        reply_to: &mpsc::Sender<Message>,
    ) -> Result<(), End> {
        let hub = self.web.bridge.hub();
        let command = match message::decode(text) {
            Ok(command) => command,
            Err(why) => {
                hub.refused();
                return self.error(socket, &why).await;
            }
        };
        if let Err(error) =
            self.web
                .bridge
                .submit(&command.topic, command.payload, reply_to.clone())
        {
            hub.refused();
            return self.error(socket, &error.to_string()).await;
        }
        Ok(())
    }

    async fn error(&self, socket: &mut Socket, why: &str) -> Result<(), End> {
        let text = message::encode_parts(&self.error_topic, message::error_payload(why).as_bytes());
        self.write(socket, Frame::text(text)).await
    }

    async fn send(&self, socket: &mut Socket, message: &Message) -> Result<(), End> {
        self.write(socket, Frame::text(message::encode(message)))
            .await
    }

    async fn send_all(&self, socket: &mut Socket, messages: &[Message]) -> Result<(), End> {
        for m in messages {
            let frame = Frame::text(message::encode(m));
            match tokio::time::timeout(WRITE_TIMEOUT, socket.feed(frame)).await {
                Ok(Ok(())) => {}
                Ok(Err(_)) => return Err(End::Gone),
                Err(_) => return Err(End::Slow),
            }
        }
        match tokio::time::timeout(WRITE_TIMEOUT, socket.flush()).await {
            Ok(Ok(())) => Ok(()),
            Ok(Err(_)) => Err(End::Gone),
            Err(_) => Err(End::Slow),
        }
    }

    async fn write(&self, socket: &mut Socket, frame: Frame) -> Result<(), End> {
        match tokio::time::timeout(WRITE_TIMEOUT, socket.send(frame)).await {
            Ok(Ok(())) => Ok(()),
            Ok(Err(_)) => Err(End::Gone),
            Err(_) => Err(End::Slow),
        }
    }

    async fn close(&self, socket: &mut Socket, code: CloseCode, reason: &str) -> Result<(), End> {
        let frame = CloseFrame {
            code,
            reason: reason.into(),
        };
        self.write(socket, Frame::Close(Some(frame))).await
    }
}
