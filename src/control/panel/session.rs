//! One panel connection: lines in, replies and unsolicited `STATE` / `EVENT` lines out.

use std::collections::{BTreeSet, HashMap, VecDeque};
use std::net::SocketAddr;
use std::sync::Arc;
use std::time::Instant;

use serde_json::Value;
use tokio::io::{AsyncReadExt, AsyncWriteExt};
use tokio::net::TcpStream;
use tokio::sync::{broadcast, mpsc};
use tokio_util::sync::CancellationToken;

use super::line::{self, LineError, Lines, Request, Target, one_line};
use super::{IDLE, MAX_AUTH_FAILURES, WRITE_TIMEOUT};
use crate::bridge::Bridge;
use crate::control::auth;
use crate::control::hub::{ClientGuard, Message};
use crate::control::limit::{self, RateLimit};
use crate::secret::Secret;
use crate::surface::fields::{FIELDS, plain, plain_fields};

/// Commands of one connection waiting for their response.
const MAX_PENDING: usize = 64;
/// Longest room, field or method name accepted (room ids have at most 64 characters).
const MAX_NAME: usize = 128;

/// Tells a client over the connection limit so, and closes.
pub(super) async fn refuse(mut tcp: TcpStream) {
    let text = format!(
        "ERROR too many connections (at most {}); try again later\r\n",
        super::MAX_CONNECTIONS
    );
    let _ = tokio::time::timeout(WRITE_TIMEOUT, tcp.write_all(text.as_bytes())).await;
}

/// What a waiting command was.
enum Pending {
    Set { room: String, field: String },
    Call { room: String, method: String },
}

pub(super) struct Session {
    bridge: Arc<Bridge>,
    token: Arc<Option<Secret>>,
    peer: String,
    authed: bool,
    auth_failures: u32,
    all: bool,
    rooms: BTreeSet<String>,
    /// The plain values last sent per room, to send only changes.
    sent: HashMap<String, Vec<(&'static str, String)>>,
    /// Commands waiting for their response, by response topic, oldest first.
    pending: VecDeque<(String, Pending)>,
    limit: RateLimit,
    /// When the last rate-limit error was sent (one a second at most).
    limited_at: Option<Instant>,
    out: String,
    quit: bool,
}

impl Session {
    pub(super) fn new(
        bridge: Arc<Bridge>,
        token: Arc<Option<Secret>>,
        peer: SocketAddr,
    ) -> Session {
        let authed = token.is_none();
        Session {
            bridge,
            token,
            peer: format!("panel {peer}"),
            authed,
            auth_failures: 0,
            all: false,
            rooms: BTreeSet::new(),
            sent: HashMap::new(),
            pending: VecDeque::new(),
            limit: RateLimit::default(),
            limited_at: None,
            out: String::new(),
            quit: false,
        }
    }

    fn push(&mut self, line: impl AsRef<str>) {
        self.out.push_str(line.as_ref());
        self.out.push_str("\r\n");
    }

    fn error(&mut self, why: impl std::fmt::Display) {
        self.bridge.hub().refused();
        self.push(format!("ERROR {}", one_line(&why.to_string())));
    }

    pub(super) async fn run(mut self, tcp: TcpStream, shutdown: CancellationToken) {
        let hub = self.bridge.hub().clone();
        let _guard = ClientGuard::new(hub.clone());
        let (_, mut live) = hub.subscribe();
        let (reply_to, mut replies) = mpsc::channel::<Message>(MAX_PENDING);
        let (mut reader, mut writer) = tcp.into_split();
        let mut lines = Lines::default();
        let idle = tokio::time::sleep(IDLE);
        tokio::pin!(idle);
        loop {
            tokio::select! {
                _ = shutdown.cancelled() => {
                    self.push("ERROR the bridge is stopping");
                    self.quit = true;
                }
                read = async {
                    lines.buffer().reserve(4096);
                    reader.read_buf(lines.buffer()).await
                } => match read {
                    Ok(0) | Err(_) => return,
                    Ok(_) => {
                        idle.as_mut().reset(tokio::time::Instant::now() + IDLE);
                        while let Some(line) = lines.next_line() {
                            self.line(line, &reply_to);
                            if self.quit {
                                break;
                            }
                        }
                    }
                },
                message = live.recv() => match message {
                    Ok(message) => self.live(&message),
                    Err(broadcast::error::RecvError::Lagged(missed)) => {
                        hub.lagged(missed, &self.peer);
                        let rooms: Vec<String> = self.subscribed_rooms();
                        for room in rooms {
                            self.state(&room, false);
                        }
                    }
                    Err(broadcast::error::RecvError::Closed) => return,
                },
                Some(reply) = replies.recv() => self.response(&reply),
                _ = &mut idle => {
                    self.push(format!("ERROR no line for {} s; closing (send PING to keep a connection)", IDLE.as_secs()));
                    self.quit = true;
                }
            }
            if !self.out.is_empty() {
                let text = std::mem::take(&mut self.out);
                match tokio::time::timeout(WRITE_TIMEOUT, writer.write_all(text.as_bytes())).await {
                    Ok(Ok(())) => {}
                    Ok(Err(_)) => return,
                    Err(_) => {
                        hub.slow(&self.peer);
                        return;
                    }
                }
            }
            if self.quit {
                let _ = tokio::time::timeout(WRITE_TIMEOUT, writer.shutdown()).await;
                return;
            }
        }
    }

    fn subscribed_rooms(&self) -> Vec<String> {
        if self.all {
            self.bridge.room_ids().map(str::to_owned).collect()
        } else {
            self.rooms.iter().cloned().collect()
        }
    }

    fn subscribed(&self, room: &str) -> bool {
        self.all || self.rooms.contains(room)
    }

    /// One line from the client.
    fn line(&mut self, line: Result<String, LineError>, reply_to: &mpsc::Sender<Message>) {
        let request = match &line {
            Ok(text) => line::parse(text),
            Err(error) => Err(error.clone()),
        };
        if matches!(request, Ok(Request::Empty)) {
            return;
        }
        if !self.limit.admit() {
            if self.limited_at.is_none_or(|at| at.elapsed().as_secs() >= 1) {
                self.limited_at = Some(Instant::now());
                self.error(format!("rate limit: {}; lines dropped", limit::describe()));
            } else {
                self.bridge.hub().refused();
            }
            return;
        }
        let request = match request {
            Ok(request) => request,
            Err(error) => return self.error(error),
        };
        match request {
            Request::Empty => {}
            Request::Ping => self.push("PONG"),
            Request::Help => self.help(),
            Request::Quit => self.quit = true,
            Request::Auth(given) => self.auth(given),
            _ if !self.authed => self.error("authenticate first: AUTH <token>"),
            Request::Subscribe(target) => self.subscribe(target),
            Request::Unsubscribe(target) => {
                match target {
                    Target::All => {
                        self.all = false;
                        self.rooms.clear();
                    }
                    Target::Room(room) => {
                        self.rooms.remove(room);
                    }
                }
                self.sent
                    .retain(|room, _| self.all || self.rooms.contains(room));
            }
            Request::Get { room, field } => self.get(room, field),
            Request::Set { room, field, value } => {
                let (room, field) = (room.to_owned(), field.to_owned());
                let topic = format!("{room}/set/{field}");
                let response = format!("{room}/response/{field}");
                let pending = Pending::Set { room, field };
                self.submit(topic, response, value.to_owned(), pending, reply_to);
            }
            Request::Call {
                room,
                method,
                params,
            } => {
                let (room, method) = (room.to_owned(), method.to_owned());
                let topic = format!("{room}/request/{method}");
                let response = format!("{room}/response/{method}");
                let params = if params.is_empty() { "{}" } else { params };
                let pending = Pending::Call { room, method };
                self.submit(topic, response, params.to_owned(), pending, reply_to);
            }
        }
    }

    fn auth(&mut self, given: &str) {
        match &*self.token {
            Some(token) if !auth::matches(token, given) => {
                self.auth_failures += 1;
                self.error("wrong token");
                if self.auth_failures >= MAX_AUTH_FAILURES {
                    tracing::warn!(client = %self.peer, "closing a panel connection after {MAX_AUTH_FAILURES} wrong tokens");
                    self.quit = true;
                }
            }
            _ => {
                self.authed = true;
                self.push("OK AUTH");
            }
        }
    }

    /// Whether `room` is configured; an `ERROR` line when not.
    fn known_room(&mut self, room: &str) -> bool {
        if self.bridge.room_name(room).is_some() {
            return true;
        }
        let known: Vec<&str> = self.bridge.room_ids().collect();
        let text = format!(
            "unknown room '{}' (configured: {})",
            crate::surface::fields::shorten(room),
            known.join(", ")
        );
        self.error(text);
        false
    }

    fn subscribe(&mut self, target: Target<'_>) {
        let rooms = match target {
            Target::All => {
                self.all = true;
                self.bridge.room_ids().map(str::to_owned).collect()
            }
            Target::Room(room) => {
                if !self.known_room(room) {
                    return;
                }
                self.rooms.insert(room.to_owned());
                vec![room.to_owned()]
            }
        };
        for room in rooms {
            self.sent.remove(&room);
            self.state(&room, true);
        }
    }

    /// `STATE` lines for a room: its availability (with `availability`) and the plain fields
    /// that changed since last sent (all of them the first time).
    fn state(&mut self, room: &str, availability: bool) {
        let hub = self.bridge.hub().clone();
        if availability && let Some(value) = hub.get(&format!("{room}/availability")) {
            let value = String::from_utf8_lossy(&value).into_owned();
            self.push(format!("STATE {room} availability {}", one_line(&value)));
        }
        let Some(document) = hub
            .get(room)
            .and_then(|d| serde_json::from_slice::<Value>(&d).ok())
        else {
            return;
        };
        let now = plain_fields(&document);
        let before = self.sent.get(room);
        let changed: Vec<String> = now
            .iter()
            .filter(|(field, value)| {
                before.is_none_or(|b| !b.iter().any(|(f, v)| f == field && v == value))
            })
            .map(|(field, value)| format!("STATE {room} {field} {}", one_line(value)))
            .collect();
        for line in changed {
            self.push(line);
        }
        self.sent.insert(room.to_owned(), now);
    }

    fn get(&mut self, room: &str, field: &str) {
        if !self.known_room(room) {
            return;
        }
        let hub = self.bridge.hub().clone();
        if field == "availability" {
            let value = hub
                .get(&format!("{room}/availability"))
                .map(|v| String::from_utf8_lossy(&v).into_owned())
                .unwrap_or_default();
            return self.push(format!("STATE {room} availability {}", one_line(&value)));
        }
        let document = hub
            .get(room)
            .and_then(|d| serde_json::from_slice::<Value>(&d).ok());
        let known = FIELDS.iter().any(|f| f.name == field && f.value.is_some());
        match document.as_ref().and_then(|d| d.get(field)) {
            Some(value) => self.push(format!("STATE {room} {field} {}", one_line(&plain(value)))),
            None if known => self.push(format!("STATE {room} {field} ")),
            None => {
                self.bridge.hub().refused();
                let field = one_line(&crate::surface::fields::shorten(field));
                self.push(format!("ERR {room} {field} unknown field; send HELP"));
            }
        }
    }

    fn submit(
        &mut self,
        topic: String,
        response: String,
        payload: String,
        pending: Pending,
        reply_to: &mpsc::Sender<Message>,
    ) {
        let (room, name) = match &pending {
            Pending::Set { room, field } => (room.clone(), field.clone()),
            Pending::Call { room, method } => (room.clone(), method.clone()),
        };
        let bad_name = |n: &str| {
            n.len() > MAX_NAME
                || n.chars()
                    .any(|c| matches!(c, '/' | '+' | '#') || c.is_control())
        };
        if bad_name(&room) || bad_name(&name) {
            return self.error("room, field and method names are single words without / + #");
        }
        if self.pending.len() >= MAX_PENDING {
            return self.reply_error(
                &pending,
                "too many commands waiting on this connection; wait for their replies",
            );
        }
        self.pending.push_back((response, pending));
        if let Err(error) = self.bridge.submit(&topic, payload.into(), reply_to.clone())
            && let Some((_, pending)) = self.pending.pop_back()
        {
            self.reply_error(&pending, &error.to_string());
        }
    }

    fn reply_error(&mut self, pending: &Pending, why: &str) {
        self.bridge.hub().refused();
        let line = match pending {
            Pending::Set { room, field } => format!("ERR {room} {field} {}", one_line(why)),
            Pending::Call { room, method } => {
                let body = serde_json::json!({ "status": "error", "error": why });
                format!("RESULT {room} {method} {body}")
            }
        };
        self.push(line);
    }

    /// The response to one of this connection's commands.
    fn response(&mut self, reply: &Message) {
        let Some(at) = self.pending.iter().position(|(t, _)| **t == *reply.topic) else {
            return;
        };
        let Some((_, pending)) = self.pending.remove(at) else {
            return;
        };
        let body: Value = serde_json::from_slice(&reply.payload).unwrap_or(Value::Null);
        let line = match pending {
            Pending::Set { room, field } => match body["status"].as_str() {
                Some("ok") => format!("OK {room} {field}"),
                _ => {
                    let why = body["error"].as_str().unwrap_or("failed");
                    format!("ERR {room} {field} {}", one_line(why))
                }
            },
            Pending::Call { room, method } => format!("RESULT {room} {method} {body}"),
        };
        self.push(line);
    }

    /// A live message: state changes and events of subscribed rooms.
    fn live(&mut self, message: &Message) {
        let mut levels = message.topic.splitn(3, '/');
        let (Some(room), second, third) = (levels.next(), levels.next(), levels.next()) else {
            return;
        };
        if room == "bridge" || !self.subscribed(room) || !self.authed {
            return;
        }
        match (second, third) {
            (None, None) => {
                let room = room.to_owned();
                self.state(&room, false);
            }
            (Some("availability"), None) => {
                let value = String::from_utf8_lossy(&message.payload).into_owned();
                self.push(format!("STATE {room} availability {}", one_line(&value)));
            }
            (Some("event"), Some(name)) => {
                let json = String::from_utf8_lossy(&message.payload).into_owned();
                self.push(format!("EVENT {room} {name} {}", one_line(&json)));
            }
            _ => {}
        }
    }

    fn help(&mut self) {
        self.push("HELP commands: AUTH <token> | SUBSCRIBE <room>|* | UNSUBSCRIBE <room>|* | GET <room> <field> | SET <room> <field> <value> | CALL <room> <method> [<json>] | PING | HELP | QUIT");
        self.push("HELP replies: STATE <room> <field> <value> | EVENT <room> <name> <json> | OK <room> <field> | ERR <room> <field> <message> | RESULT <room> <method> <json> | PONG | ERROR <message>");
        let rooms: Vec<&str> = self.bridge.room_ids().collect();
        let rooms = rooms.join(" ");
        self.push(format!("HELP rooms: {rooms}"));
        let plain: Vec<&str> = FIELDS.iter().filter(|f| f.plain).map(|f| f.name).collect();
        self.push(format!("HELP state: availability {}", plain.join(" ")));
        let settable: Vec<String> = FIELDS
            .iter()
            .filter_map(|f| {
                Some(format!(
                    "HELP set {}: {}",
                    f.name,
                    f.set?.grammar().replace('`', "")
                ))
            })
            .collect();
        for line in settable {
            self.push(line);
        }
        self.push("HELP END");
    }
}
