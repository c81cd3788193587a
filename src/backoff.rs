//! Reconnect delays: exponential, capped, with jitter.
//!
//! Hand-written because the schedule must be resettable after a healthy period and its envelope
//! checked by property tests; it is a dozen lines. Each delay is drawn from `[d/2, d]` where `d`
//! doubles from `min` up to `max`, so many bridges restarted together do not reconnect in lockstep,
//! and no delay ever exceeds `max`.

use std::time::Duration;

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
}
