//! What waits to be published, and the policy that decides what goes first and what is dropped.
//!
//! Pure bookkeeping, no I/O: the link's outbox task feeds it and hands its output to rumqttc
//! through a `send` callback, so the policy can be tested on its own.
//!
//! - **Retained** topics (state, availability, discovery) are coalesced to their latest value and
//!   never dropped: memory is bounded by the number of topics. After every reconnect the whole
//!   set is marked for republishing; topics under the `first` prefix (Home Assistant discovery)
//!   go before the others, so an entity exists before its state arrives.
//! - **Transient** messages go in two lanes, each keeping its order: **urgent** ones (responses
//!   to commands) before **events**. A flood of one Room's events must not delay another room's
//!   command responses (issue 12, case 6), so a response never waits behind queued events, and
//!   the caller lets only a few events at a time into rumqttc's request channel (the `events`
//!   budget of [`Outbox::drain`]), where nothing can overtake them. While the broker is away
//!   both lanes together keep at most `away_limit` (the configured `event_buffer`), dropping the
//!   oldest events first; while it is connected a burst may queue up to `connected_limit`,
//!   because the producers slow down well before that (see `MqttLink::ready`).

use std::collections::{HashMap, HashSet, VecDeque};

use bytes::Bytes;

use super::client::TryError;
use super::link::Publish;

/// Transient messages a connected link may queue: a burst of events much larger than rumqttc's
/// request channel, yet a bounded amount of memory (tens of MiB at worst).
pub(crate) const CONNECTED_LIMIT: usize = 65_536;

/// The outbox's contents.
#[derive(Debug)]
pub(crate) struct Outbox {
    away_limit: usize,
    connected_limit: usize,
    first_prefix: Option<String>,
    /// Latest payload per retained topic: what the broker should hold.
    retained: HashMap<String, Bytes>,
    /// Retained topics to (re)publish: those under `first_prefix`, then the rest.
    dirty_first: VecDeque<String>,
    dirty: VecDeque<String>,
    dirty_set: HashSet<String>,
    /// Responses, oldest first: sent before any event.
    urgent: VecDeque<Publish>,
    /// Events, oldest first.
    queue: VecDeque<Publish>,
}

/// What one [`Outbox::drain`] did.
#[derive(Debug, Default, PartialEq, Eq)]
pub(crate) struct Drained {
    /// Messages handed over.
    pub sent: u64,
    /// The receiver refused one (full or failing): call again once it has room.
    pub blocked: bool,
    /// Events are left because the `events` budget ran out: call again once the receiver has
    /// taken some of them.
    pub throttled: bool,
    /// Messages dropped because they can never be sent ([`TryError::Invalid`]).
    pub invalid: u64,
}

impl Outbox {
    /// An empty outbox keeping `away_limit` transient messages while the broker is away
    /// (at least 1), and retained topics starting with `first_prefix` before the others.
    pub fn new(away_limit: usize, first_prefix: Option<String>) -> Outbox {
        let away_limit = away_limit.max(1);
        Outbox {
            away_limit,
            connected_limit: CONNECTED_LIMIT.max(away_limit),
            first_prefix,
            retained: HashMap::new(),
            dirty_first: VecDeque::new(),
            dirty: VecDeque::new(),
            dirty_set: HashSet::new(),
            urgent: VecDeque::new(),
            queue: VecDeque::new(),
        }
    }

    /// Whether anything waits to be sent.
    pub fn has_work(&self) -> bool {
        !self.dirty_first.is_empty()
            || !self.dirty.is_empty()
            || !self.urgent.is_empty()
            || !self.queue.is_empty()
    }

    /// Transient messages waiting (both lanes).
    pub fn queued(&self) -> usize {
        self.urgent.len() + self.queue.len()
    }

    /// Drops the oldest transient message: an event while there is one, else a response.
    fn drop_oldest(&mut self) {
        if self.queue.pop_front().is_none() {
            self.urgent.pop_front();
        }
    }

    /// Gives back the memory of a queue that grew in a burst and is empty again (a flood of
    /// 100,000 events leaves megabytes of ring buffer behind otherwise).
    pub fn shrink(&mut self) {
        const KEEP: usize = 256;
        for queue in [&mut self.urgent, &mut self.queue] {
            if queue.is_empty() && queue.capacity() > KEEP {
                *queue = VecDeque::new();
            }
        }
    }

    /// Takes a message. Returns how many transient messages were dropped to make room (the
    /// oldest, events before responses; with the broker away past `away_limit`, connected past
    /// `connected_limit`).
    pub fn accept(&mut self, p: Publish, connected: bool) -> u64 {
        if p.retain {
            if self.retained.get(&p.topic) != Some(&p.payload) {
                self.retained.insert(p.topic.clone(), p.payload);
                self.mark_dirty(p.topic);
            }
            return 0;
        }
        let limit = self.limit(connected);
        let mut dropped = 0;
        while self.queued() >= limit {
            self.drop_oldest();
            dropped += 1;
        }
        if p.urgent {
            self.urgent.push_back(p);
        } else {
            self.queue.push_back(p);
        }
        dropped
    }

    /// The connection broke: only `away_limit` transient messages are kept from now on, the
    /// newest (events are dropped before responses). Returns how many were dropped.
    pub fn connection_lost(&mut self) -> u64 {
        let excess = self.queued().saturating_sub(self.away_limit);
        for _ in 0..excess {
            self.drop_oldest();
        }
        excess as u64
    }

    /// Takes back what the MQTT client held when the connection broke. Transient messages go
    /// before everything queued since (they are older), within `away_limit`: the oldest are the
    /// ones not taken back. Retained values are republished after the reconnect anyway, except a
    /// deletion (empty payload) already forgotten here, which is queued again. Transient ones go
    /// to the head of the urgent lane: they are older than every response and every event queued
    /// since, whichever they were. Returns how many were dropped.
    pub fn take_back(&mut self, unsent: Vec<Publish>) -> u64 {
        let mut dropped = 0;
        for p in unsent.into_iter().rev() {
            if p.retain {
                if p.payload.is_empty() && !self.retained.contains_key(&p.topic) {
                    self.retained.insert(p.topic.clone(), p.payload);
                    self.mark_dirty(p.topic);
                }
            } else if self.queued() >= self.away_limit {
                dropped += 1;
            } else {
                self.urgent.push_front(p);
            }
        }
        dropped
    }

    /// Marks every retained topic for republishing (after a reconnect, or when Home Assistant
    /// comes back).
    pub fn mark_all_dirty(&mut self) {
        let mut topics: Vec<String> = self.retained.keys().cloned().collect();
        topics.sort_unstable();
        for topic in topics {
            self.mark_dirty(topic);
        }
    }

    /// Marks one retained topic for republishing, if a value is held for it.
    pub fn mark_held_dirty(&mut self, topic: String) {
        if self.retained.contains_key(&topic) {
            self.mark_dirty(topic);
        }
    }

    /// Hands messages to `send` until it refuses one or nothing is left: retained topics first
    /// (under the first prefix, then the others), then responses, then at most `events` events,
    /// each lane in order. A refused message stays at the head for the next call; one that can
    /// never be sent ([`TryError::Invalid`]) is dropped and counted.
    pub fn drain(
        &mut self,
        mut events: usize,
        mut send: impl FnMut(&Publish) -> Result<(), TryError>,
    ) -> Drained {
        let mut drained = Drained::default();
        while let Some(topic) = self.dirty_first.front().or_else(|| self.dirty.front()) {
            let payload = self.retained.get(topic).cloned().unwrap_or_default();
            let message = Publish::retained(topic.clone(), payload);
            match send(&message) {
                Ok(()) => drained.sent += 1,
                Err(TryError::Invalid(_)) => drained.invalid += 1,
                Err(_) => {
                    drained.blocked = true;
                    return drained;
                }
            }
            let topic = match self.dirty_first.pop_front() {
                Some(topic) => topic,
                None => self.dirty.pop_front().unwrap_or_default(),
            };
            self.dirty_set.remove(&topic);
            // An empty retained payload deletes the topic at the broker: nothing to remember.
            if message.payload.is_empty() {
                self.retained.remove(&topic);
            }
        }
        while let Some(p) = self.urgent.front() {
            match send(p) {
                Ok(()) => drained.sent += 1,
                Err(TryError::Invalid(_)) => drained.invalid += 1,
                Err(_) => {
                    drained.blocked = true;
                    return drained;
                }
            }
            self.urgent.pop_front();
        }
        while let Some(p) = self.queue.front() {
            if events == 0 {
                drained.throttled = true;
                return drained;
            }
            match send(p) {
                Ok(()) => {
                    drained.sent += 1;
                    events -= 1;
                }
                Err(TryError::Invalid(_)) => drained.invalid += 1,
                Err(_) => {
                    drained.blocked = true;
                    return drained;
                }
            }
            self.queue.pop_front();
        }
        drained
    }

    fn limit(&self, connected: bool) -> usize {
        if connected {
            self.connected_limit
        } else {
            self.away_limit
        }
    }

    fn mark_dirty(&mut self, topic: String) {
        if self.dirty_set.insert(topic.clone()) {
            let first = self
                .first_prefix
                .as_deref()
                .is_some_and(|prefix| topic.starts_with(prefix));
            if first {
                self.dirty_first.push_back(topic);
            } else {
                self.dirty.push_back(topic);
            }
        }
    }
}

#[cfg(test)]
mod tests {
    use super::*;
    use proptest::prelude::*;

    /// One thing that can happen to an outbox.
    #[derive(Debug, Clone)]
    enum Step {
        /// A retained value for topic `t{0}` (discovery when `first`).
        Retained {
            topic: u8,
            first: bool,
            value: u8,
        },
        /// A transient message: a response when `true`, else an event.
        Transient(bool),
        /// The connection goes up or down.
        Connected(bool),
        /// Broker accepts at most this many, then refuses; at most the second many events.
        Drain(u8, u8),
        /// The client hands back what it held: `n` of the messages sent last.
        TakeBack(u8),
        Republish,
    }

    fn step() -> impl Strategy<Value = Step> {
        prop_oneof![
            2 => (0u8..6, any::<bool>(), 0u8..4).prop_map(|(topic, first, value)| Step::Retained {
                topic,
                first,
                value
            }),
            3 => any::<bool>().prop_map(Step::Transient),
            1 => any::<bool>().prop_map(Step::Connected),
            2 => (0u8..20, 0u8..20).prop_map(|(all, events)| Step::Drain(all, events)),
            1 => (0u8..5).prop_map(Step::TakeBack),
            1 => Just(Step::Republish),
        ]
    }

    /// The lane a transient message of the property test was made for (0: response, 1: event)
    /// and its id.
    fn lane_and_id(p: &Publish) -> (usize, u64) {
        let text = std::str::from_utf8(&p.payload).unwrap();
        let lane = usize::from(text.starts_with('e'));
        (lane, text[1..].parse().unwrap())
    }

    fn topic_name(topic: u8, first: bool) -> String {
        if first {
            format!("ha/t{topic}")
        } else {
            format!("base/t{topic}")
        }
    }

    proptest! {
        #![proptest_config(ProptestConfig::with_cases(500))]

        /// Whatever happens: the queue never exceeds its bound; every transient message is sent
        /// or counted as dropped, never lost silently; responses go out in the order they came,
        /// and so do events (a taken-back one may go again, never out of order), and no event
        /// goes out while a response waits; the event budget is kept; once drained, the broker
        /// holds the latest value of every retained topic.
        #[test]
        fn keeps_bounds_order_and_counts(away in 1usize..8, steps in prop::collection::vec(step(), 1..120)) {
            let mut outbox = Outbox::new(away, Some("ha/".into()));
            let mut connected = false;
            let mut next_id: u64 = 0;
            let mut dropped: u64 = 0;
            let mut sent_log: Vec<Publish> = Vec::new();
            let mut latest: HashMap<String, Bytes> = HashMap::new();
            let mut broker: HashMap<String, Bytes> = HashMap::new();
            // Per lane (responses, events): the highest id sent.
            let mut highest_sent: [Option<u64>; 2] = [None, None];
            // Where the current connection's sends start in `sent_log`.
            let mut connected_at = 0;
            for step in steps {
                match step {
                    Step::Retained { topic, first, value } => {
                        let topic = topic_name(topic, first);
                        let payload = Bytes::from(vec![b'0' + value]);
                        latest.insert(topic.clone(), payload.clone());
                        prop_assert_eq!(outbox.accept(Publish::retained(topic, payload), connected), 0);
                    }
                    Step::Transient(urgent) => {
                        let message = if urgent {
                            Publish::response("base/response", format!("u{next_id}"))
                        } else {
                            Publish::transient("base/event", format!("e{next_id}"))
                        };
                        dropped += outbox.accept(message, connected);
                        next_id += 1;
                    }
                    Step::Connected(up) => {
                        if connected && !up {
                            dropped += outbox.connection_lost();
                        }
                        if up && !connected {
                            outbox.mark_all_dirty();
                            connected_at = sent_log.len();
                        }
                        connected = up;
                    }
                    Step::Drain(budget, events) => {
                        if !connected { continue; }
                        let mut budget = budget as usize;
                        let before = sent_log.len();
                        let urgent_before = outbox.urgent.len();
                        let drained = outbox.drain(events as usize, |p| {
                            if budget == 0 { return Err(TryError::Full); }
                            budget -= 1;
                            sent_log.push(p.clone());
                            Ok(())
                        });
                        prop_assert_eq!(drained.sent as usize, sent_log.len() - before);
                        let mut events_sent = 0;
                        let mut transient_sent = 0;
                        for p in &sent_log[before..] {
                            if p.retain {
                                broker.insert(p.topic.clone(), p.payload.clone());
                            } else {
                                let (lane, id) = lane_and_id(p);
                                // Never older than what already went in its lane, except a
                                // re-send.
                                if let Some(h) = highest_sent[lane] {
                                    prop_assert!(id > h, "{} sent after {} in lane {}", id, h, lane);
                                }
                                highest_sent[lane] = Some(id);
                                transient_sent += 1;
                                // The urgent lane (responses and taken-back messages) goes first.
                                if transient_sent > urgent_before {
                                    prop_assert_eq!(&p.topic, "base/event");
                                    events_sent += 1;
                                }
                            }
                        }
                        prop_assert!(events_sent <= events as usize);
                        if !drained.blocked && !drained.throttled {
                            prop_assert!(!outbox.has_work());
                            // Everything retained is at its latest value at the broker.
                            for (topic, payload) in &latest {
                                prop_assert_eq!(broker.get(topic), Some(payload));
                            }
                        }
                    }
                    Step::TakeBack(n) => {
                        // The client loses the connection holding the last `n` transient sends.
                        if !connected { continue; }
                        let mut held: Vec<Publish> = sent_log[connected_at..].iter().rev()
                            .filter(|p| !p.retain).take(n as usize).cloned().collect();
                        held.reverse();
                        for (lane, highest) in highest_sent.iter_mut().enumerate() {
                            if let Some(first) = held.iter().find(|p| lane_and_id(p).0 == lane) {
                                *highest = lane_and_id(first).1.checked_sub(1);
                            }
                        }
                        // Taken back messages were counted as sent once; they are not new.
                        let count = held.len();
                        dropped += outbox.connection_lost();
                        let lost = outbox.take_back(held);
                        dropped += lost;
                        prop_assert!(lost as usize <= count);
                        connected = false;
                    }
                    Step::Republish => outbox.mark_all_dirty(),
                }
                let limit = if connected { CONNECTED_LIMIT.max(away) } else { away };
                prop_assert!(outbox.queued() <= limit, "{} queued, limit {}", outbox.queued(), limit);
            }
            // Conservation: every event id was either delivered at least once, is still queued,
            // or was counted as dropped.
            let delivered: HashSet<u64> = sent_log.iter().filter(|p| !p.retain)
                .map(|p| lane_and_id(p).1).collect();
            let queued: HashSet<u64> = outbox.urgent.iter().chain(&outbox.queue)
                .map(|p| lane_and_id(p).1).collect();
            let unaccounted = (0..next_id).filter(|id| !delivered.contains(id) && !queued.contains(id)).count() as u64;
            prop_assert!(unaccounted <= dropped, "{} events vanished, {} counted", unaccounted, dropped);
        }
    }

    #[test]
    fn away_limit_drops_oldest_and_connected_queue_does_not() {
        let mut outbox = Outbox::new(2, None);
        let dropped: u64 = (0..5)
            .map(|i| outbox.accept(Publish::transient("e", i.to_string()), false))
            .sum();
        assert_eq!(dropped, 3);
        let mut sent = Vec::new();
        outbox.drain(usize::MAX, |p| {
            sent.push(p.payload.clone());
            Ok(())
        });
        assert_eq!(sent, vec![Bytes::from("3"), Bytes::from("4")]);

        let dropped: u64 = (0..5000)
            .map(|i| outbox.accept(Publish::transient("e", i.to_string()), true))
            .sum();
        assert_eq!(dropped, 0, "a burst while connected is kept");
        assert_eq!(outbox.connection_lost(), 4998);
        assert_eq!(outbox.queued(), 2);
    }

    #[test]
    fn responses_overtake_queued_events_and_events_keep_to_their_budget() {
        let mut outbox = Outbox::new(10, None);
        for i in 0..5 {
            outbox.accept(Publish::transient("event", i.to_string()), true);
        }
        outbox.accept(Publish::response("response", "a"), true);
        let mut sent = Vec::new();
        let drained = outbox.drain(2, |p| {
            sent.push(format!(
                "{}={}",
                p.topic,
                String::from_utf8_lossy(&p.payload)
            ));
            Ok(())
        });
        assert_eq!(sent, ["response=a", "event=0", "event=1"]);
        assert!(drained.throttled && !drained.blocked);
        outbox.accept(Publish::response("response", "b"), true);
        sent.clear();
        let drained = outbox.drain(usize::MAX, |p| {
            sent.push(format!(
                "{}={}",
                p.topic,
                String::from_utf8_lossy(&p.payload)
            ));
            Ok(())
        });
        assert_eq!(sent, ["response=b", "event=2", "event=3", "event=4"]);
        assert!(!drained.throttled && !outbox.has_work());
        // A burst's ring buffer is given back once it ran dry.
        for i in 0..5000 {
            outbox.accept(Publish::transient("event", i.to_string()), true);
        }
        outbox.drain(usize::MAX, |_| Ok(()));
        outbox.shrink();
        assert!(outbox.queue.capacity() < 1000);
    }

    #[test]
    fn a_message_that_can_never_be_sent_does_not_block_the_rest() {
        let mut outbox = Outbox::new(10, None);
        outbox.accept(Publish::transient("bad/+", "x"), true);
        outbox.accept(Publish::transient("good", "y"), true);
        let mut sent = Vec::new();
        let drained = outbox.drain(usize::MAX, |p| {
            if p.topic.contains('+') {
                return Err(TryError::Invalid("invalid topic".into()));
            }
            sent.push(p.topic.clone());
            Ok(())
        });
        assert_eq!(
            drained,
            Drained {
                sent: 1,
                blocked: false,
                throttled: false,
                invalid: 1
            }
        );
        assert_eq!(sent, ["good"]);
        assert!(!outbox.has_work());
    }

    #[test]
    fn discovery_goes_first_and_deletions_are_forgotten() {
        let mut outbox = Outbox::new(10, Some("homeassistant/".into()));
        outbox.accept(Publish::retained("trueconf/r/state", "a"), true);
        outbox.accept(Publish::retained("homeassistant/x/config", "{}"), true);
        outbox.accept(Publish::retained("trueconf/old", ""), true);
        let mut order = Vec::new();
        outbox.drain(usize::MAX, |p| {
            order.push(p.topic.clone());
            Ok(())
        });
        assert_eq!(
            order,
            ["homeassistant/x/config", "trueconf/r/state", "trueconf/old"]
        );
        outbox.mark_all_dirty();
        let mut again = Vec::new();
        outbox.drain(usize::MAX, |p| {
            again.push(p.topic.clone());
            Ok(())
        });
        assert_eq!(again, ["homeassistant/x/config", "trueconf/r/state"]);
    }
}
