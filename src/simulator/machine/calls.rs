//! Server connection, login and calls: `connectToServer`, `login`/`logout`, outgoing and
//! incoming p2p calls, conferences we create, hanging up, and the [`Timer`]s that make a
//! callee answer or invitees join later (SPEC §7.1 flows, event order written down once).

use std::sync::atomic::{AtomicU64, Ordering};
use std::time::Instant;

use serde_json::{Map, Value, json};

use crate::protocol::{AppState, Participant};

use super::replies::participant_json;
use super::{Effects, Machine, Refusal, Timer, TimerKind, str_param};

/// Call generations are unique across all machines of the process, so a timer of a room that
/// was restarted (new machine) can never match a call of the new machine.
pub(super) static NEXT_GENERATION: AtomicU64 = AtomicU64::new(1);

pub(super) fn next_generation() -> u64 {
    NEXT_GENERATION.fetch_add(1, Ordering::Relaxed)
}

#[derive(Debug, Clone)]
pub(super) struct Account {
    pub(super) peer_id: String,
    pub(super) peer_dn: String,
}

#[derive(Debug, Clone)]
pub(super) struct Conference {
    pub(super) conf_id: String,
    pub(super) title: String,
    pub(super) conf_type: i64,
    pub(super) owner: String,
    /// The other side of a p2p call.
    pub(super) p2p_peer: Option<Participant>,
    pub(super) direction: &'static str,
    pub(super) join_url: String,
    pub(super) manage_url: String,
    pub(super) participants: Vec<Participant>,
    pub(super) pending_invites: Vec<String>,
    pub(super) started: Instant,
    pub(super) generation: u64,
}

#[derive(Debug, Clone)]
pub(super) enum Call {
    Idle,
    Outgoing { peer: Participant, generation: u64 },
    Incoming { peer: Participant, conf_id: String },
    Active(Box<Conference>),
}

/// The display name the simulator invents for a peer id: its user part.
pub(crate) fn display_name_of(peer_id: &str) -> String {
    let base = peer_id.split('/').next().unwrap_or(peer_id);
    let user = base.split('@').next().unwrap_or(base);
    if user.is_empty() {
        peer_id.to_owned()
    } else {
        user.to_owned()
    }
}

/// How a simulated callee reacts, chosen by the start of its id: `reject…` declines (cause 0),
/// `busy…` is busy (cause 2), `noanswer…` does not answer (cause 16); everybody else answers.
pub(super) fn callee_reject_cause(peer_id: &str) -> Option<i64> {
    let id = peer_id.to_ascii_lowercase();
    if id.starts_with("reject") {
        Some(0)
    } else if id.starts_with("busy") {
        Some(2)
    } else if id.starts_with("noanswer") {
        Some(16)
    } else {
        None
    }
}

impl Machine {
    pub(super) fn new_conf_id(&mut self) -> String {
        self.conf_counter = self.conf_counter.wrapping_add(1);
        let server = self
            .server
            .as_ref()
            .map_or("sim.trueconf.local", |s| s.0.as_str());
        format!("{:08x}@{server}#vcs", self.conf_counter)
    }

    pub(super) fn own_id(&self) -> String {
        self.account
            .as_ref()
            .map(|a| a.peer_id.clone())
            .unwrap_or_default()
    }

    pub(super) fn connect_to_server(
        &mut self,
        p: &Map<String, Value>,
        fx: &mut Effects,
    ) -> Result<Map<String, Value>, Refusal> {
        if !matches!(self.call, Call::Idle) {
            return Err(Refusal::NotAvailable);
        }
        let server = str_param(p, "server").to_owned();
        if server.is_empty() {
            return Err(Refusal::Invalid("connectToServer: server is empty".into()));
        }
        let port = p
            .get("port")
            .and_then(Value::as_u64)
            .and_then(|v| u16::try_from(v).ok())
            .unwrap_or(4307);
        // inferred: SPEC §7.1 order — an existing session ends first.
        if let Some((old, old_port)) = self.server.take() {
            self.account = None;
            fx.emit(
                "serverDisconnected",
                json!({"service": false, "server": old, "port": old_port}),
            );
        }
        self.set_state(AppState::Connect, fx);
        self.server = Some((server.clone(), port));
        fx.emit(
            "serverConnected",
            json!({"service": false, "server": server, "port": port, "domain": server}),
        );
        let autologin = self.settings.get("enableAutologin") == Some(&Value::Bool(true));
        match self.remembered.clone() {
            Some(account) if autologin => {
                fx.emit(
                    "login",
                    json!({"result": 0, "peerId": account.peer_id, "peerDn": account.peer_dn}),
                );
                self.account = Some(account);
                self.set_state(AppState::Normal, fx);
            }
            _ => self.set_state(AppState::Login, fx),
        }
        Ok(Map::new())
    }

    pub(super) fn login(
        &mut self,
        p: &Map<String, Value>,
        fx: &mut Effects,
    ) -> Result<Map<String, Value>, Refusal> {
        if self.app_state != AppState::Login {
            return Err(Refusal::NotAvailable);
        }
        let login = str_param(p, "login");
        if login.is_empty() {
            return Err(Refusal::Invalid("login: login is empty".into()));
        }
        let server = self.server.as_ref().map_or("", |s| s.0.as_str());
        let peer_id = if login.contains('@') {
            login.to_owned()
        } else {
            format!("{login}@{server}")
        };
        // Simulator convention: the password "wrong" fails with result 3 (wrong login/password).
        if str_param(p, "password") == "wrong" {
            fx.emit("login", json!({"result": 3, "peerId": "", "peerDn": ""}));
            return Ok(Map::new());
        }
        let account = Account {
            peer_dn: display_name_of(&peer_id),
            peer_id,
        };
        fx.emit(
            "login",
            json!({"result": 0, "peerId": account.peer_id, "peerDn": account.peer_dn}),
        );
        self.remembered = Some(account.clone());
        self.account = Some(account);
        self.set_state(AppState::Normal, fx);
        // The catalog's reply fields (isLoggedIn, peerId, peerDn) are filled from the new state.
        Ok(Map::new())
    }

    pub(super) fn logout(&mut self, fx: &mut Effects) -> Result<Map<String, Value>, Refusal> {
        self.require_idle()?;
        self.account = None;
        // inferred: SPEC §7.1 "Logout".
        fx.emit("logout", json!({"result": 0, "cause": 0}));
        self.set_state(AppState::Login, fx);
        Ok(Map::new())
    }

    pub(super) fn call(
        &mut self,
        p: &Map<String, Value>,
        fx: &mut Effects,
    ) -> Result<Map<String, Value>, Refusal> {
        self.require_idle()?;
        let peer_id = str_param(p, "peerId");
        if peer_id.is_empty() {
            return Err(Refusal::Invalid("call: peerId is empty".into()));
        }
        let generation = next_generation();
        self.call = Call::Outgoing {
            peer: Participant {
                peer_id: peer_id.to_owned(),
                peer_dn: display_name_of(peer_id),
            },
            generation,
        };
        self.set_state(AppState::Wait, fx);
        fx.timers.push(Timer {
            after: self.profile.answer_delay,
            generation,
            kind: TimerKind::Answer,
        });
        Ok(Map::new())
    }

    pub(super) fn accept(&mut self, fx: &mut Effects) -> Result<Map<String, Value>, Refusal> {
        let Call::Incoming { peer, conf_id } = &self.call else {
            return Err(Refusal::NotAvailable);
        };
        let (peer, conf_id) = (peer.clone(), conf_id.clone());
        self.start_p2p(peer, conf_id, "incoming", fx);
        Ok(Map::new())
    }

    pub(super) fn reject(&mut self, fx: &mut Effects) -> Result<Map<String, Value>, Refusal> {
        let Call::Incoming { peer, conf_id } = &self.call else {
            return Err(Refusal::NotAvailable);
        };
        // `recordAllowed` is not sent by the real Room, but the official Python client's filter
        // requires it (SPEC §15.1.6), so the simulator adds it.
        fx.emit(
            "rejectSent",
            json!({"peerId": peer.peer_id, "peerDn": peer.peer_dn, "cause": 0,
                   "confId": conf_id, "recordAllowed": false}),
        );
        self.call = Call::Idle;
        self.set_state(AppState::Normal, fx);
        Ok(Map::new())
    }

    pub(super) fn hang_up(&mut self, fx: &mut Effects) -> Result<Map<String, Value>, Refusal> {
        match &self.call {
            Call::Idle => Err(Refusal::NotAvailable),
            Call::Incoming { .. } => self.reject(fx),
            Call::Outgoing { .. } => {
                // SPEC §7.1 [D]: hangUp while ringing cancels the outgoing call.
                self.call = Call::Idle;
                self.set_state(AppState::Normal, fx);
                Ok(Map::new())
            }
            Call::Active(_) => {
                self.end_conference(fx);
                Ok(Map::new())
            }
        }
    }

    pub(super) fn create_conference(
        &mut self,
        p: &Map<String, Value>,
        fx: &mut Effects,
    ) -> Result<Map<String, Value>, Refusal> {
        self.require_idle()?;
        let conf_type = match str_param(p, "confType") {
            "symmetric" => 1,
            "asymmetric" => 2,
            "role" => 3,
            other => {
                return Err(Refusal::Invalid(format!(
                    "createConference: confType '{other}' is not symmetric|asymmetric|role"
                )));
            }
        };
        let invites: Vec<String> = p
            .get("inviteList")
            .and_then(Value::as_array)
            .map(|l| {
                l.iter()
                    .filter_map(Value::as_str)
                    .map(str::to_owned)
                    .collect()
            })
            .unwrap_or_default();
        let conf_id = self.new_conf_id();
        let server = self.server.as_ref().map_or("", |s| s.0.as_str()).to_owned();
        let generation = next_generation();
        let conference = Conference {
            join_url: format!(
                "https://{server}/c/{}",
                fastrand::u64(100_000_000_000..1_000_000_000_000)
            ),
            manage_url: format!(
                "https://{server}/tools/real-time?k={:016X}",
                fastrand::u64(..)
            ),
            conf_id,
            title: str_param(p, "title").to_owned(),
            conf_type,
            owner: self.own_id(),
            p2p_peer: None,
            direction: "outgoing",
            participants: Vec::new(),
            pending_invites: invites,
            started: Instant::now(),
            generation,
        };
        self.enter_conference(conference, fx);
        fx.timers.push(Timer {
            after: self.profile.answer_delay,
            generation,
            kind: TimerKind::InviteesJoin,
        });
        Ok(Map::new())
    }

    pub(super) fn start_p2p(
        &mut self,
        peer: Participant,
        conf_id: String,
        direction: &'static str,
        fx: &mut Effects,
    ) {
        let owner = if direction == "incoming" {
            peer.peer_id.clone()
        } else {
            self.own_id()
        };
        let conference = Conference {
            conf_id,
            title: String::new(),
            conf_type: 0,
            owner,
            p2p_peer: Some(peer.clone()),
            direction,
            join_url: String::new(),
            manage_url: String::new(),
            participants: Vec::new(),
            pending_invites: Vec::new(),
            started: Instant::now(),
            generation: next_generation(),
        };
        self.enter_conference(conference, fx);
        self.add_participant(peer, fx);
    }

    /// conferenceCreated, then appStateChanged 5 (SPEC §7.1, order inferred).
    pub(super) fn enter_conference(&mut self, c: Conference, fx: &mut Effects) {
        let mut created = json!({
            "confId": c.conf_id,
            "confTitle": c.title,
            "confType": c.conf_type,
            "conferenceOwner": c.owner,
            "joinUrl": c.join_url,
            "realTimeConferenceManagmentUrl": c.manage_url,
            "isSmartMeeting": false,
        });
        if let (Some(peer), Value::Object(m)) = (&c.p2p_peer, &mut created) {
            m.insert("peerId".into(), json!(peer.peer_id));
        }
        fx.emit("conferenceCreated", created);
        self.call = Call::Active(Box::new(c));
        self.set_state(AppState::Conference, fx);
    }

    /// appStateChanged 6, conferenceDeleted, appStateChanged 3 (SPEC §7.1 "Hang up", inferred).
    pub(super) fn end_conference(&mut self, fx: &mut Effects) {
        let Call::Active(c) = std::mem::replace(&mut self.call, Call::Idle) else {
            return;
        };
        self.set_state(AppState::Close, fx);
        fx.emit("conferenceDeleted", json!({"confId": c.conf_id}));
        self.set_state(AppState::Normal, fx);
    }

    pub(super) fn add_participant(&mut self, peer: Participant, fx: &mut Effects) {
        let Call::Active(c) = &mut self.call else {
            return;
        };
        let mut event = participant_json(&peer);
        event.insert("confId".into(), json!(c.conf_id));
        c.participants.push(peer);
        fx.emit("newParticipantInConference", Value::Object(event));
    }

    /// A timer set by `call` or `createConference` expired.
    pub fn fire(&mut self, timer: &Timer) -> Effects {
        let mut fx = Effects::default();
        match timer.kind {
            TimerKind::Answer => {
                let Call::Outgoing { peer, generation } = &self.call else {
                    return fx;
                };
                if *generation != timer.generation {
                    return fx;
                }
                let peer = peer.clone();
                match callee_reject_cause(&peer.peer_id) {
                    Some(cause) => {
                        self.call = Call::Idle;
                        fx.emit(
                            "rejectReceived",
                            json!({"cause": cause, "peerId": peer.peer_id, "peerDn": peer.peer_dn}),
                        );
                        self.set_state(AppState::Normal, &mut fx);
                    }
                    None => {
                        let conf_id = self.new_conf_id();
                        self.start_p2p(peer, conf_id, "outgoing", &mut fx);
                    }
                }
            }
            TimerKind::InviteesJoin => {
                let invites = match &mut self.call {
                    Call::Active(c) if c.generation == timer.generation => {
                        std::mem::take(&mut c.pending_invites)
                    }
                    _ => return fx,
                };
                for id in invites {
                    let peer = Participant {
                        peer_dn: display_name_of(&id),
                        peer_id: id,
                    };
                    match callee_reject_cause(&peer.peer_id) {
                        // inferred: an invitee who declines is reported like a declined call.
                        Some(cause) => fx.emit(
                            "rejectReceived",
                            json!({"cause": cause, "peerId": peer.peer_id, "peerDn": peer.peer_dn}),
                        ),
                        None => self.add_participant(peer, &mut fx),
                    }
                }
            }
        }
        fx
    }
}
