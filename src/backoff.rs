//! The one reconnect policy of both links (Room and broker): exponential, capped delays with
//! jitter ([`Backoff`]), started over only after a connection stayed healthy for a while
//! ([`Reconnect`]), so a peer that accepts and then drops us at once is retried ever more
//! slowly instead of every half second.
//!
//! Hand-written because the schedule must be resettable after a healthy period and its envelope
//! checked by property tests; it is a dozen lines. Each delay is drawn from `[d/2, d]` where `d`
//! doubles from `min` up to `max`, so many bridges restarted together do not reconnect in lockstep,
//! and no delay ever exceeds `max`.

use std::time::{Duration, Instant};

/// How long a connection must stay up before the reconnect backoff starts over.
pub const HEALTHY_PERIOD: Duration = Duration::from_secs(30);

/// A connection that ends this soon after it came up counts as cut short (a broker kicking us
/// for another client with our client id does so within milliseconds).
pub const SHORT_SESSION: Duration = Duration::from_secs(2);

/// An endless schedule of reconnect delays.
#[derive(Debug, Clone)]
pub struct Backoff {
    min: Duration,
    max: Duration,
    current: Duration,
}

impl Backoff {
    /// A schedule starting at `min` and doubling up to `max`.
    pub fn new(min: Duration, max: Duration) -> Backoff {
        let min = min.max(Duration::from_millis(1));
        let max = max.max(min);
        Backoff {
            min,
            max,
            current: min,
        }
    }

    /// The upper bound of the next delay (before jitter).
    pub fn envelope(&self) -> Duration {
        self.current
    }

    /// The next delay: uniformly in `[envelope/2, envelope]`; then the envelope doubles, capped.
    pub fn next_delay(&mut self) -> Duration {
        let envelope = self.current;
        self.current = (self.current * 2).min(self.max);
        let half = envelope / 2;
        half + half.mul_f64(fastrand::f64())
    }

    /// Starts over at `min` (after a connection stayed healthy for a while).
    pub fn reset(&mut self) {
        self.current = self.min;
    }
}

/// When to reconnect: the backoff, reset only after a healthy session, and a count of the
/// sessions in a row that were cut short right after they came up.
#[derive(Debug, Clone)]
pub struct Reconnect {
    backoff: Backoff,
    up_since: Option<Instant>,
    cut_short: u32,
}

impl Reconnect {
    /// A policy with delays from `min` doubling up to `max`.
    pub fn new(min: Duration, max: Duration) -> Reconnect {
        Reconnect {
            backoff: Backoff::new(min, max),
            up_since: None,
            cut_short: 0,
        }
    }

    /// The connection came up (authenticated, CONNACK received).
    pub fn connected(&mut self) {
        self.connected_at(Instant::now());
    }

    fn connected_at(&mut self, now: Instant) {
        self.up_since = Some(now);
    }

    /// The connection or an attempt failed: the delay before the next attempt.
    pub fn failed(&mut self) -> Duration {
        self.failed_at(Instant::now())
    }

    fn failed_at(&mut self, now: Instant) -> Duration {
        if let Some(since) = self.up_since.take() {
            let lasted = now.saturating_duration_since(since);
            if lasted >= HEALTHY_PERIOD {
                self.backoff.reset();
            }
            if lasted < SHORT_SESSION {
                self.cut_short += 1;
            } else {
                self.cut_short = 0;
            }
        }
        self.backoff.next_delay()
    }

    /// How many sessions in a row ended within [`SHORT_SESSION`] of coming up.
    pub fn cut_short(&self) -> u32 {
        self.cut_short
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn grows_and_caps() {
        let mut b = Backoff::new(Duration::from_millis(100), Duration::from_secs(1));
        let mut envelopes = Vec::new();
        for _ in 0..10 {
            envelopes.push(b.envelope());
            let d = b.next_delay();
            assert!(d <= Duration::from_secs(1));
            assert!(d >= Duration::from_millis(50));
        }
        assert!(envelopes.windows(2).all(|w| w[0] <= w[1]));
        assert_eq!(*envelopes.last().unwrap(), Duration::from_secs(1));
        b.reset();
        assert_eq!(b.envelope(), Duration::from_millis(100));
    }

    #[test]
    fn resets_only_after_a_healthy_session() {
        let min = Duration::from_millis(100);
        let mut policy = Reconnect::new(min, Duration::from_secs(10));
        let start = Instant::now();
        // Accepted and dropped at once, again and again: the delays keep growing.
        let mut envelopes = Vec::new();
        for i in 0..6 {
            let t = start + Duration::from_secs(i);
            policy.connected_at(t);
            envelopes.push(policy.backoff.envelope());
            policy.failed_at(t + Duration::from_millis(10));
        }
        assert!(envelopes.windows(2).all(|w| w[0] < w[1]), "{envelopes:?}");
        assert_eq!(policy.cut_short(), 6);
        // A failed attempt (never connected) neither resets nor counts as cut short.
        policy.failed_at(start + Duration::from_secs(7));
        assert_eq!(policy.cut_short(), 6);
        // A healthy session starts the schedule over.
        let t = start + Duration::from_secs(10);
        policy.connected_at(t);
        policy.failed_at(t + HEALTHY_PERIOD);
        assert_eq!(policy.cut_short(), 0);
        assert_eq!(policy.backoff.envelope(), min * 2);
    }
}
