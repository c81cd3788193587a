//! Per-connection rate limit of the control surfaces: a token bucket.

use std::time::Instant;

/// Commands a client may send in a burst…
pub const BURST: f64 = 40.0;
/// …and per second after it.
pub const PER_SECOND: f64 = 20.0;

/// A token bucket: `BURST` messages at once, `PER_SECOND` refilled.
#[derive(Debug)]
pub struct RateLimit {
    tokens: f64,
    at: Instant,
}

impl Default for RateLimit {
    fn default() -> RateLimit {
        RateLimit {
            tokens: BURST,
            at: Instant::now(),
        }
    }
}

impl RateLimit {
    /// Whether one more message may go now (taking a token if so).
    pub fn admit(&mut self) -> bool {
        self.admit_at(Instant::now())
    }

    fn admit_at(&mut self, now: Instant) -> bool {
        let elapsed = now.saturating_duration_since(self.at).as_secs_f64();
        self.at = now;
        self.tokens = (self.tokens + elapsed * PER_SECOND).min(BURST);
        if self.tokens >= 1.0 {
            self.tokens -= 1.0;
            true
        } else {
            false
        }
    }
}

/// The limit, for error messages.
pub fn describe() -> String {
    format!("at most {PER_SECOND} messages a second (bursts of {BURST})")
}

#[cfg(test)]
mod tests {
    use super::*;
    use std::time::Duration;

    #[test]
    fn bursts_then_refills() {
        let mut limit = RateLimit::default();
        let start = limit.at;
        let admitted = (0..100).filter(|_| limit.admit_at(start)).count();
        assert_eq!(admitted, BURST as usize);
        assert!(!limit.admit_at(start));
        assert!(limit.admit_at(start + Duration::from_millis(60)));
    }
}
