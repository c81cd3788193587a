//! Which bridge instance serves a room, when several share one broker.
//!
//! Rooms are assigned to instances in their configurations; nothing on the broker assigns
//! them (no shared subscriptions). What the broker does carry is a retained **claim** per room,
//! `<base>/<room>/owner`:
//!
//! ```json
//! {"instance":"east","since":1718000000000,"bridge_state":"trueconf/bridge/east/state","at":…}
//! ```
//!
//! `since` is when this process started bridging (unix ms), `bridge_state` the claimer's
//! liveness topic (its last will), `at` when the claim was (re)asserted (it also keeps two
//! assertions from being coalesced into one by the outbox). Designed here, not taken from any
//! standard; the rules are:
//!
//! 1. **Look before claiming.** An instance first publishes a transient *intent* (the same JSON
//!    plus `"intent":true`) on the owner topic it is subscribed to. The broker delivers the
//!    retained claim (if any) before echoing the intent back (one connection, SUBSCRIBE before
//!    PUBLISH), so when the echo arrives every existing claim has been seen.
//! 2. **The earliest live claim wins**: smaller `since`, ties broken by the smaller instance
//!    name. A claim is *live* unless its `bridge_state` topic holds `offline` (a clean stop or
//!    the last will after a crash). A claim whose liveness is not known yet counts as live.
//! 3. Nobody live and earlier: publish the retained claim, wait [`SETTLE`] for a competing
//!    claim (two instances started at the same moment), then serve.
//! 4. Someone live and earlier: **refuse** the room — one error line naming the room and the
//!    other instance, nothing published for it, commands left to the owner (so each command
//!    still gets exactly one response), the conflict shown in `bridge/info`. A claim this
//!    instance had published is cleared first, so it is never republished from its outbox.
//! 5. The owner re-asserts its claim whenever it sees it overwritten or cleared.
//! 6. A clean stop clears the claim (empty retained payload) and publishes `offline` on the
//!    bridge state; a crash leaves the claim, and the last will marks it dead. Either way an
//!    instance that refused the room takes it over (from rule 1) once the owner's bridge state
//!    is `offline`. The owner, restarted, then finds a live claim earlier than its new `since`
//!    and stays in standby: no flapping.
//!
//! A claim carrying our own instance name but another `since` is an earlier run of this
//! instance (a crash, then a restart) and is simply replaced. Instance names must therefore be
//! unique, like client ids; a second live process with the same name is reported, not resolved.

use std::collections::{BTreeMap, HashSet};
use std::time::Duration;

use serde::{Deserialize, Serialize};
use tokio::sync::{mpsc, watch};
use tokio::time::Instant;
use tokio_util::sync::CancellationToken;
use tracing::{error, info, warn};

use crate::mqtt::{Inbound, MqttLink, Publish};
use crate::surface::Topics;

/// How long a fresh claim must stand unchallenged before the room is served: covers two
/// instances started at the same moment (a claim crosses a broker, or a cluster, in
/// milliseconds).
pub const SETTLE: Duration = Duration::from_millis(700);
/// An intent whose echo did not come back (the connection broke meanwhile) is sent again.
const RESEND_INTENT: Duration = Duration::from_secs(3);

/// Sleeps until `deadline` (never called without one).
async fn sleep_until(deadline: Option<Instant>) {
    match deadline {
        Some(deadline) => tokio::time::sleep_until(deadline).await,
        None => std::future::pending().await,
    }
}

/// Whether this instance serves a room.
#[derive(Debug, Clone, PartialEq, Eq)]
pub enum Ownership {
    /// Looking for other claims; nothing is published for the room yet.
    Pending,
    /// Ours: serving it.
    Owned,
    /// Another live instance claimed it earlier; this one stands by.
    Refused {
        /// The other instance.
        by: String,
        /// When it started bridging (unix ms).
        since: u64,
    },
}

impl Ownership {
    /// `pending`, `owned` or `refused`.
    pub fn as_str(&self) -> &'static str {
        match self {
            Ownership::Pending => "pending",
            Ownership::Owned => "owned",
            Ownership::Refused { .. } => "refused",
        }
    }
}

/// A claim as carried on `<base>/<room>/owner`.
#[derive(Debug, Clone, PartialEq, Eq, Serialize, Deserialize)]
pub struct Claim {
    /// Instance name (`mqtt.instance`, or the client id when unset).
    pub instance: String,
    /// When that process started bridging, unix ms.
    pub since: u64,
    /// Its bridge state topic: `offline` there makes the claim dead.
    pub bridge_state: String,
    /// When this claim was (re)asserted, unix ms.
    #[serde(default)]
    pub at: u64,
    /// A transient "about to claim" message (rule 1), never retained.
    #[serde(default, skip_serializing_if = "std::ops::Not::not")]
    pub intent: bool,
}

impl Claim {
    /// Whether this claim wins against `other` (rule 2, liveness aside).
    pub fn precedes(&self, other: &Claim) -> bool {
        (self.since, &self.instance) < (other.since, &other.instance)
    }
}

/// Unix time in ms.
pub fn now_ms() -> u64 {
    std::time::SystemTime::now()
        .duration_since(std::time::UNIX_EPOCH)
        .map_or(0, |d| u64::try_from(d.as_millis()).unwrap_or(u64::MAX))
}

#[derive(Debug)]
enum Phase {
    Probing { sent: Instant },
    Settling { until: Instant },
    Owned,
    Refused { by: Claim },
}

/// The claim state of every room of this instance, driven by owner and bridge-state messages.
pub(crate) struct Claims {
    me: Claim,
    topics: Topics,
    link: MqttLink,
    rooms: BTreeMap<String, (Phase, watch::Sender<Ownership>)>,
    /// Bridge state topics currently `offline`.
    offline: HashSet<String>,
    changed: watch::Sender<u64>,
}

impl Claims {
    /// Claims for `rooms`; nothing is sent before [`Claims::run`]. Every room starts
    /// [`Ownership::Pending`], or [`Ownership::Owned`] when `owned_at_start`: a lone bridge
    /// (no `mqtt.instance`) serves its Rooms whether or not the broker is there yet, and still
    /// steps back if it finds an earlier live claim (a second deployment by mistake).
    pub fn new(
        me: Claim,
        topics: Topics,
        link: MqttLink,
        rooms: &[String],
        owned_at_start: bool,
    ) -> (Claims, BTreeMap<String, watch::Receiver<Ownership>>) {
        let mut receivers = BTreeMap::new();
        let rooms = rooms
            .iter()
            .map(|id| {
                let (phase, ownership) = if owned_at_start {
                    (Phase::Owned, Ownership::Owned)
                } else {
                    let sent = Instant::now();
                    (Phase::Probing { sent }, Ownership::Pending)
                };
                let (tx, rx) = watch::channel(ownership);
                receivers.insert(id.clone(), rx);
                (id.clone(), (phase, tx))
            })
            .collect();
        let claims = Claims {
            me,
            topics,
            link,
            rooms,
            offline: HashSet::new(),
            changed: watch::Sender::new(0),
        };
        (claims, receivers)
    }

    /// Bumped whenever a room's ownership changes (for `bridge/info`).
    pub fn changes(&self) -> watch::Receiver<u64> {
        self.changed.subscribe()
    }

    fn claim(&self, intent: bool) -> String {
        let claim = Claim {
            at: now_ms(),
            intent,
            ..self.me.clone()
        };
        serde_json::to_string(&claim).unwrap_or_default()
    }

    fn alive(&self, claim: &Claim) -> bool {
        !self.offline.contains(&claim.bridge_state)
    }

    fn set(&mut self, room: &str, phase: Phase) {
        let Some((current, tx)) = self.rooms.get_mut(room) else {
            return;
        };
        let ownership = match &phase {
            Phase::Probing { .. } | Phase::Settling { .. } => Ownership::Pending,
            Phase::Owned => Ownership::Owned,
            Phase::Refused { by } => Ownership::Refused {
                by: by.instance.clone(),
                since: by.since,
            },
        };
        *current = phase;
        if tx.send_if_modified(|o| std::mem::replace(o, ownership.clone()) != ownership) {
            self.changed.send_modify(|n| *n += 1);
        }
    }

    fn probe(&mut self, room: &str) {
        self.link.publish(Publish::transient(
            self.topics.owner(room),
            self.claim(true),
        ));
        self.set(
            room,
            Phase::Probing {
                sent: Instant::now(),
            },
        );
    }

    fn assert_claim(&self, room: &str) {
        self.link.publish(Publish::retained(
            self.topics.owner(room),
            self.claim(false),
        ));
    }

    /// Sends the first intents (or claims, for rooms owned from the start), then follows
    /// `inbound` (owner and bridge-state messages) until `cancel`.
    pub async fn run(mut self, mut inbound: mpsc::Receiver<Inbound>, cancel: CancellationToken) {
        let ids: Vec<String> = self.rooms.keys().cloned().collect();
        for id in &ids {
            if matches!(self.rooms.get(id), Some((Phase::Owned, _))) {
                self.assert_claim(id);
            } else {
                self.probe(id);
            }
        }
        let mut connection = self.link.connection();
        loop {
            // Woken only by messages, the broker connection and the next deadline of a room
            // being claimed: an idle bridge does not tick.
            let deadline = self.next_deadline();
            tokio::select! {
                _ = cancel.cancelled() => break,
                changed = connection.changed() => {
                    if changed.is_err() {
                        break;
                    }
                    connection.borrow_and_update();
                }
                message = inbound.recv() => match message {
                    Some(message) => self.handle(&message),
                    None => break,
                },
                _ = sleep_until(deadline), if deadline.is_some() => self.on_deadline(),
            }
        }
    }

    /// When a settling room may be served, or (while the broker is connected) an unanswered
    /// intent sent again.
    fn next_deadline(&self) -> Option<Instant> {
        let connected = self.link.is_connected();
        self.rooms
            .values()
            .filter_map(|(phase, _)| match phase {
                Phase::Settling { until } => Some(*until),
                Phase::Probing { sent } if connected => Some(*sent + RESEND_INTENT),
                _ => None,
            })
            .min()
    }

    fn on_deadline(&mut self) {
        let now = Instant::now();
        let connected = self.link.is_connected();
        let due: Vec<(String, bool)> = self
            .rooms
            .iter()
            .filter_map(|(id, (phase, _))| match phase {
                Phase::Settling { until } if *until <= now => Some((id.clone(), true)),
                Phase::Probing { sent } if connected && now - *sent >= RESEND_INTENT => {
                    Some((id.clone(), false))
                }
                _ => None,
            })
            .collect();
        for (id, settled) in due {
            if settled {
                info!(room = %id, instance = %self.me.instance, "room claimed; serving it");
                self.set(&id, Phase::Owned);
            } else {
                self.probe(&id);
            }
        }
    }

    fn handle(&mut self, message: &Inbound) {
        if self.topics.is_any_bridge_state(&message.topic) {
            self.on_bridge_state(&message.topic, &message.payload);
        } else if let Some(room) = self.topics.parse_owner(&message.topic) {
            let room = room.to_owned();
            self.on_owner(&room, message);
        }
    }

    fn on_bridge_state(&mut self, topic: &str, payload: &[u8]) {
        if payload == b"offline" {
            self.offline.insert(topic.to_owned());
        } else {
            self.offline.remove(topic);
            return;
        }
        let orphaned: Vec<String> = self
            .rooms
            .iter()
            .filter(|(_, (phase, _))| matches!(phase, Phase::Refused { by } if by.bridge_state == topic))
            .map(|(id, _)| id.clone())
            .collect();
        for id in orphaned {
            info!(room = %id, "the instance serving this room went offline; taking it over");
            self.probe(&id);
        }
    }

    fn on_owner(&mut self, room: &str, message: &Inbound) {
        let Some((phase, _)) = self.rooms.get(room) else {
            return;
        };
        if message.payload.is_empty() {
            // Cleared: by a stopping owner (its `offline` follows), or by a loser tidying up.
            match phase {
                Phase::Owned | Phase::Settling { .. } => self.assert_claim(room),
                Phase::Refused { by } if !self.alive(by) => self.probe(room),
                _ => {}
            }
            return;
        }
        let claim = match serde_json::from_slice::<Claim>(&message.payload) {
            Ok(claim) => claim,
            Err(e) => {
                warn!(room, error = %e, "ignoring an unreadable claim on the owner topic");
                return;
            }
        };
        if claim.instance == self.me.instance {
            if claim.since == self.me.since {
                // Our intent came back: every claim the broker held has been seen (rule 1).
                if claim.intent && matches!(phase, Phase::Probing { .. }) {
                    self.assert_claim(room);
                    self.set(
                        room,
                        Phase::Settling {
                            until: Instant::now() + SETTLE,
                        },
                    );
                }
            } else if !message.retain && claim.since > self.me.since {
                error!(
                    room,
                    instance = %claim.instance,
                    "another process runs with this mqtt.instance; instance names must be unique"
                );
            }
            // Otherwise a claim of an earlier run of this instance: ours to replace.
            return;
        }
        let earlier = claim.precedes(&self.me) && self.alive(&claim);
        match phase {
            Phase::Refused { by } => {
                if earlier && by.instance != claim.instance {
                    self.set(room, Phase::Refused { by: claim });
                } else if !self.alive(by) || (!earlier && by.instance == claim.instance) {
                    // The owner is gone (or no longer earlier than us): try again.
                    self.probe(room);
                }
            }
            _ if earlier => {
                error!(
                    room,
                    owner = %claim.instance,
                    owner_since = claim.since,
                    instance = %self.me.instance,
                    "room '{room}' is already served by bridge instance '{}'; not serving it here \
                     (two instances are configured with this room)",
                    claim.instance
                );
                if matches!(phase, Phase::Owned | Phase::Settling { .. }) {
                    // Our retained claim must not come back from our outbox after a reconnect;
                    // the owner re-asserts its own when it sees this.
                    self.link
                        .publish(Publish::retained(self.topics.owner(room), ""));
                }
                self.set(room, Phase::Refused { by: claim });
            }
            Phase::Owned | Phase::Settling { .. } if !claim.intent => {
                // A later or dead claim overwrote ours (rule 5).
                self.assert_claim(room);
            }
            _ => {}
        }
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    fn claim(instance: &str, since: u64) -> Claim {
        Claim {
            instance: instance.into(),
            since,
            bridge_state: format!("t/bridge/{instance}/state"),
            at: 0,
            intent: false,
        }
    }

    #[test]
    fn the_earliest_claim_wins_and_ties_go_to_the_smaller_name() {
        assert!(claim("b", 1).precedes(&claim("a", 2)));
        assert!(!claim("b", 2).precedes(&claim("a", 1)));
        assert!(claim("a", 5).precedes(&claim("b", 5)));
        assert!(!claim("a", 5).precedes(&claim("a", 5)));
    }

    #[test]
    fn claims_round_trip_and_intents_are_marked() {
        let mut c = claim("east", 42);
        let retained = serde_json::to_string(&c).unwrap();
        assert!(!retained.contains("intent"), "{retained}");
        c.intent = true;
        let intent = serde_json::to_string(&c).unwrap();
        assert!(intent.contains("\"intent\":true"), "{intent}");
        let back: Claim = serde_json::from_str(&intent).unwrap();
        assert_eq!(back, c);
        // A minimal claim written by hand (or an older version) still parses.
        let min: Claim =
            serde_json::from_str(r#"{"instance":"x","since":1,"bridge_state":"t/bridge/state"}"#)
                .unwrap();
        assert_eq!(min.at, 0);
        assert!(!min.intent);
    }
}
