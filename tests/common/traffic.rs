//! The traffic of the chaos scenarios: a [`Panel`] sending `set` commands one at a time (so each
//! command's in-flight window is known), a [`Chatter`] making the Room chat `seq-<n>` every
//! 50 ms, and a [`Recorder`] with a persistent MQTT session counting what arrives.

use std::collections::HashMap;
use std::sync::atomic::{AtomicBool, AtomicU64, Ordering};
use std::sync::{Arc, Mutex};
use std::time::{Duration, Instant};

use rumqttc::{AsyncClient, Event, MqttOptions, Packet, QoS};
use serde_json::{Value, json};
use tokio::sync::Notify;
use tokio_util::sync::CancellationToken;
use trueconf2mqtt::simulator::SimRoom;

use super::rig::{CHATTER, WAIT, ms, t};
use super::wait_until;

// === The persistent recorder ===

#[derive(Default)]
pub struct Seen {
    /// Latest payload of every topic but events and responses.
    pub latest: HashMap<String, String>,
    /// Arrivals per chat sequence number.
    pub events: Vec<u32>,
    /// Responses on `response/set` per transaction: arrival and payload.
    pub responses: HashMap<u64, Vec<(Instant, String)>>,
    /// Responses without a usable transaction.
    pub untagged: Vec<String>,
}

/// An MQTT subscriber with a persistent session (fixed client id, clean_session = false): it
/// also gets what was published while it was reconnecting. Keeps counts, not messages, so it
/// does not grow the process with the run.
#[derive(Clone)]
pub struct Recorder {
    pub seen: Arc<Mutex<Seen>>,
    pub subscribed: Arc<AtomicBool>,
    pub notify: Arc<Notify>,
    pub cancel: CancellationToken,
}

pub fn chat_seq(payload: &[u8]) -> Option<usize> {
    let value: Value = serde_json::from_slice(payload).ok()?;
    value["message"]
        .as_str()?
        .strip_prefix("seq-")?
        .parse()
        .ok()
}

impl Recorder {
    pub async fn connect(port: u16, client_id: &str) -> Recorder {
        let mut options = MqttOptions::new(client_id, "127.0.0.1", port);
        options.set_keep_alive(Duration::from_secs(5));
        options.set_clean_session(false);
        options.set_max_packet_size(1 << 20, 1 << 20);
        let (client, mut eventloop) = AsyncClient::new(options, 64);
        let recorder = Recorder {
            seen: Arc::new(Mutex::new(Seen {
                events: Vec::with_capacity(20_000),
                responses: HashMap::with_capacity(10_000),
                ..Seen::default()
            })),
            subscribed: Arc::default(),
            notify: Arc::default(),
            cancel: CancellationToken::new(),
        };
        let r = recorder.clone();
        let events_topic = t("event/incomingChatMessage");
        let responses_topic = t("response/set");
        tokio::spawn(async move {
            loop {
                let event = tokio::select! {
                    _ = r.cancel.cancelled() => break,
                    event = eventloop.poll() => event,
                };
                match event {
                    Ok(Event::Incoming(Packet::ConnAck(_))) => {
                        for filter in ["trueconf/#", "homeassistant/#"] {
                            let _ = client.try_subscribe(filter, QoS::AtLeastOnce);
                        }
                    }
                    Ok(Event::Incoming(Packet::SubAck(_))) => {
                        r.subscribed.store(true, Ordering::SeqCst);
                        r.notify.notify_waiters();
                    }
                    Ok(Event::Incoming(Packet::Publish(p))) => {
                        let mut seen = r.seen.lock().unwrap();
                        if p.topic == events_topic {
                            if let Some(seq) = chat_seq(&p.payload) {
                                if seen.events.len() <= seq {
                                    seen.events.resize(seq + 1, 0);
                                }
                                seen.events[seq] += 1;
                            }
                        } else if p.topic == responses_topic {
                            let payload = String::from_utf8_lossy(&p.payload).into_owned();
                            let transaction = serde_json::from_str::<Value>(&payload)
                                .ok()
                                .and_then(|v| v["transaction"].as_u64());
                            match transaction {
                                Some(n) => seen
                                    .responses
                                    .entry(n)
                                    .or_default()
                                    .push((Instant::now(), payload)),
                                None => seen.untagged.push(payload),
                            }
                        } else if !p.topic.contains("/event/") {
                            let payload = String::from_utf8_lossy(&p.payload).into_owned();
                            match seen.latest.get_mut(&p.topic) {
                                Some(slot) => *slot = payload,
                                None => {
                                    seen.latest.insert(p.topic, payload);
                                }
                            }
                        }
                        drop(seen);
                        r.notify.notify_waiters();
                    }
                    Ok(_) => {}
                    Err(_) => {
                        r.subscribed.store(false, Ordering::SeqCst);
                        tokio::time::sleep(Duration::from_millis(50)).await;
                    }
                }
            }
        });
        wait_until(WAIT, "recorder subscribed", || {
            recorder.subscribed.load(Ordering::SeqCst)
        })
        .await;
        recorder
    }

    pub fn is_subscribed(&self) -> bool {
        self.subscribed.load(Ordering::SeqCst)
    }

    pub fn events_seen(&self, seq: usize) -> u32 {
        self.seen
            .lock()
            .unwrap()
            .events
            .get(seq)
            .copied()
            .unwrap_or(0)
    }

    /// Whether every event `0..n` arrived.
    pub fn all_events_below(&self, n: usize) -> bool {
        let seen = self.seen.lock().unwrap();
        seen.events.len() >= n && seen.events[..n].iter().all(|c| *c > 0)
    }

    /// Whether every transaction `1..=n` got a response.
    pub fn all_responses_up_to(&self, n: u64) -> bool {
        let seen = self.seen.lock().unwrap();
        (1..=n).all(|t| seen.responses.contains_key(&t))
    }

    pub fn latest(&self, topic: &str) -> Option<String> {
        self.seen.lock().unwrap().latest.get(topic).cloned()
    }
}

// === The panel sending commands, the Room chatting ===

/// One command the panel sent: when, and when the broker acknowledged it.
#[derive(Clone, Copy)]
pub struct Sent {
    pub at: Instant,
    pub acked: Option<Instant>,
}

/// A panel publishing `set` `{"mic_muted": ON|OFF, "transaction": n}` one at a time (stop and
/// wait for the broker's PUBACK, so the in-flight window of each command is known).
pub struct Panel {
    /// Connected once (it reconnects by itself).
    pub connected: Arc<AtomicBool>,
    pub sent: Arc<Mutex<Vec<Sent>>>,
    pub paused: Arc<AtomicBool>,
    pub in_flight: Arc<AtomicBool>,
    pub cancel: CancellationToken,
}

impl Panel {
    pub fn start(port: u16) -> Panel {
        let mut options = MqttOptions::new(
            format!("chaos-panel-{}", fastrand::u32(..)),
            "127.0.0.1",
            port,
        );
        options.set_keep_alive(Duration::from_secs(5));
        options.set_clean_session(false);
        let (client, mut eventloop) = AsyncClient::new(options, 16);
        let acks = Arc::new(AtomicU64::new(0));
        let acked = Arc::new(Notify::new());
        let cancel = CancellationToken::new();
        let connected = Arc::new(AtomicBool::new(false));
        {
            let (acks, acked, cancel, connected) = (
                acks.clone(),
                acked.clone(),
                cancel.clone(),
                connected.clone(),
            );
            tokio::spawn(async move {
                loop {
                    let event = tokio::select! {
                        _ = cancel.cancelled() => break,
                        event = eventloop.poll() => event,
                    };
                    match event {
                        Ok(Event::Incoming(Packet::ConnAck(_))) => {
                            connected.store(true, Ordering::SeqCst);
                        }
                        Ok(Event::Incoming(Packet::PubAck(_))) => {
                            acks.fetch_add(1, Ordering::SeqCst);
                            acked.notify_waiters();
                        }
                        Ok(_) => {}
                        Err(_) => tokio::time::sleep(Duration::from_millis(50)).await,
                    }
                }
            });
        }
        let panel = Panel {
            connected,
            sent: Arc::new(Mutex::new(Vec::with_capacity(10_000))),
            paused: Arc::new(AtomicBool::new(true)),
            in_flight: Arc::default(),
            cancel,
        };
        let (sent, paused, in_flight, cancel) = (
            panel.sent.clone(),
            panel.paused.clone(),
            panel.in_flight.clone(),
            panel.cancel.clone(),
        );
        tokio::spawn(async move {
            while !cancel.is_cancelled() {
                // Dekker-style with `pause`: claim first, then look.
                in_flight.store(true, Ordering::SeqCst);
                if paused.load(Ordering::SeqCst) {
                    in_flight.store(false, Ordering::SeqCst);
                    tokio::time::sleep(Duration::from_millis(10)).await;
                    continue;
                }
                let transaction = {
                    let mut sent = sent.lock().unwrap();
                    sent.push(Sent {
                        at: Instant::now(),
                        acked: None,
                    });
                    sent.len() as u64
                };
                let mute = if transaction % 2 == 0 { "ON" } else { "OFF" };
                let payload = json!({ "mic_muted": mute, "transaction": transaction }).to_string();
                let before = acks.load(Ordering::SeqCst);
                let _ = client
                    .publish(t("set"), QoS::AtLeastOnce, false, payload)
                    .await;
                let deadline = Instant::now() + Duration::from_secs(20);
                loop {
                    let notified = acked.notified();
                    if acks.load(Ordering::SeqCst) > before {
                        sent.lock().unwrap()[transaction as usize - 1].acked = Some(Instant::now());
                        break;
                    }
                    if Instant::now() > deadline || cancel.is_cancelled() {
                        break;
                    }
                    let _ = tokio::time::timeout(Duration::from_millis(50), notified).await;
                }
                in_flight.store(false, Ordering::SeqCst);
                tokio::time::sleep(ms(60..140)).await;
            }
        });
        panel
    }

    /// Stops sending and waits until no command is in flight.
    pub async fn pause(&self) {
        self.paused.store(true, Ordering::SeqCst);
        wait_until(Duration::from_secs(25), "panel idle", || {
            !self.in_flight.load(Ordering::SeqCst)
        })
        .await;
    }

    pub fn resume(&self) {
        self.paused.store(false, Ordering::SeqCst);
    }

    pub fn count(&self) -> u64 {
        self.sent.lock().unwrap().len() as u64
    }
}

impl Drop for Panel {
    fn drop(&mut self) {
        self.cancel.cancel();
    }
}

/// The Room chatting `seq-<n>` every 50 ms while it is up (and the test lets it).
pub struct Chatter {
    pub emitted: Arc<Mutex<Vec<Instant>>>,
    /// Emission allowed: the Room is up and the bridge authenticated to it.
    pub room_up: Arc<Mutex<bool>>,
    pub cancel: CancellationToken,
}

impl Chatter {
    pub fn start(room: &SimRoom) -> Chatter {
        let chatter = Chatter {
            emitted: Arc::new(Mutex::new(Vec::with_capacity(20_000))),
            room_up: Arc::new(Mutex::new(true)),
            cancel: CancellationToken::new(),
        };
        let (emitted, room_up, cancel, room) = (
            chatter.emitted.clone(),
            chatter.room_up.clone(),
            chatter.cancel.clone(),
            room.clone(),
        );
        tokio::spawn(async move {
            while !cancel.is_cancelled() {
                {
                    let up = room_up.lock().unwrap();
                    if *up {
                        let mut emitted = emitted.lock().unwrap();
                        let seq = emitted.len();
                        emitted.push(Instant::now());
                        room.chat_message(CHATTER, &format!("seq-{seq}")).unwrap();
                    }
                }
                tokio::time::sleep(Duration::from_millis(50)).await;
            }
        });
        chatter
    }

    pub fn count(&self) -> usize {
        self.emitted.lock().unwrap().len()
    }

    /// Stops emitting (the Room is about to go) and waits, bounded, until everything emitted
    /// so far arrived.
    pub async fn hold_and_drain(&self, recorder: &Recorder) {
        *self.room_up.lock().unwrap() = false;
        let n = self.count();
        let deadline = Instant::now() + Duration::from_secs(3);
        while !recorder.all_events_below(n) && Instant::now() < deadline {
            tokio::time::sleep(Duration::from_millis(5)).await;
        }
    }

    /// Emits again once the bridge is authenticated to the restarted Room.
    pub async fn release_when_authenticated(&self, room: &SimRoom) {
        wait_until(WAIT, "the bridge authenticated to the Room", || {
            room.authenticated_connections() > 0
        })
        .await;
        *self.room_up.lock().unwrap() = true;
    }
}

impl Drop for Chatter {
    fn drop(&mut self) {
        self.cancel.cancel();
    }
}
