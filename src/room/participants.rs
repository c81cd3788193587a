//! The participants of a conference: join order kept, O(log n) join and leave, O(1) clone.
//!
//! A busy conference sends a `newParticipantInConference` per guest; with a plain list every
//! join scanned it for duplicates and every state snapshot (one per change, for the publisher)
//! copied it, so 100,000 joins took quadratic time. Here the set is shared between snapshots
//! (`Arc`) and indexed by peer id; a change copies it only when a snapshot still holds the old
//! version, which the publisher drops right after reading it.

use std::collections::{BTreeMap, HashMap};
use std::fmt;
use std::sync::Arc;

use serde::{Serialize, Serializer};

use crate::protocol::Participant;

/// The participants of a conference, in join order, each peer id once.
#[derive(Clone, Default)]
pub struct Participants {
    inner: Arc<Inner>,
}

#[derive(Clone, Default)]
struct Inner {
    /// Join sequence number → participant: iteration in join order.
    by_seq: BTreeMap<u64, Participant>,
    /// Peer id → join sequence number.
    seq_of: HashMap<String, u64>,
    next: u64,
}

impl Participants {
    /// How many.
    pub fn len(&self) -> usize {
        self.inner.by_seq.len()
    }

    /// Whether there are none.
    pub fn is_empty(&self) -> bool {
        self.inner.by_seq.is_empty()
    }

    /// In join order.
    pub fn iter(&self) -> impl Iterator<Item = &Participant> {
        self.inner.by_seq.values()
    }

    /// Whether `peer_id` is among them.
    pub fn contains(&self, peer_id: &str) -> bool {
        self.inner.seq_of.contains_key(peer_id)
    }

    /// Adds `participant` at the end; false (and nothing changes) when its peer id is there.
    pub fn insert(&mut self, participant: Participant) -> bool {
        if self.contains(&participant.peer_id) {
            return false;
        }
        let inner = Arc::make_mut(&mut self.inner);
        let seq = inner.next;
        inner.next += 1;
        inner.seq_of.insert(participant.peer_id.clone(), seq);
        inner.by_seq.insert(seq, participant);
        true
    }

    /// Removes the participant with `peer_id`; false when there is none.
    pub fn remove(&mut self, peer_id: &str) -> bool {
        if !self.contains(peer_id) {
            return false;
        }
        let inner = Arc::make_mut(&mut self.inner);
        if let Some(seq) = inner.seq_of.remove(peer_id) {
            inner.by_seq.remove(&seq);
        }
        // Give memory back once a big conference has mostly left.
        if inner.seq_of.capacity() > 64 && inner.seq_of.len() < inner.seq_of.capacity() / 4 {
            inner.seq_of.shrink_to_fit();
        }
        true
    }
}

impl FromIterator<Participant> for Participants {
    /// The first occurrence of each peer id, in order.
    fn from_iter<I: IntoIterator<Item = Participant>>(items: I) -> Participants {
        let mut participants = Participants::default();
        for p in items {
            participants.insert(p);
        }
        participants
    }
}

impl From<Vec<Participant>> for Participants {
    fn from(list: Vec<Participant>) -> Participants {
        list.into_iter().collect()
    }
}

impl PartialEq for Participants {
    fn eq(&self, other: &Participants) -> bool {
        Arc::ptr_eq(&self.inner, &other.inner)
            || (self.len() == other.len() && self.iter().eq(other.iter()))
    }
}

impl Eq for Participants {}

impl fmt::Debug for Participants {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        f.debug_list().entries(self.iter()).finish()
    }
}

impl Serialize for Participants {
    fn serialize<S: Serializer>(&self, serializer: S) -> Result<S::Ok, S::Error> {
        serializer.collect_seq(self.iter())
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    fn p(id: &str) -> Participant {
        Participant {
            peer_id: id.into(),
            peer_dn: id.to_uppercase(),
        }
    }

    #[test]
    fn join_order_kept_duplicates_ignored_snapshots_unchanged() {
        let mut list: Participants = [p("a"), p("b"), p("a")].into_iter().collect();
        assert_eq!(list.len(), 2);
        let snapshot = list.clone();
        assert!(list.insert(p("c")));
        assert!(!list.insert(p("b")));
        assert!(list.remove("a"));
        assert!(!list.remove("a"));
        let ids: Vec<&str> = list.iter().map(|q| q.peer_id.as_str()).collect();
        assert_eq!(ids, ["b", "c"]);
        assert_eq!(snapshot.len(), 2, "a snapshot does not see later changes");
        assert_ne!(snapshot, list);
        assert_eq!(list, [p("b"), p("c")].into_iter().collect());
        assert_eq!(serde_json::to_value(&list).unwrap()[1]["peerId"], "c");
    }
}
