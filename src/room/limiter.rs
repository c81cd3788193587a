//! Rate limit for credential checks: a Room answers whether a PIN or password is right, so
//! whoever may send `auth` (or another method the catalog marks `checks_credentials`) could
//! guess PINs as fast as the Room answers. Allowed or not, at most [`MAX_FAILURES`] such
//! attempts per [`WINDOW`] may fail for one Room; beyond that they are refused without
//! reaching it.

use std::collections::VecDeque;
use std::time::Duration;

use tokio::time::Instant;

/// Failed credential checks allowed per [`WINDOW`] and Room: enough for a person mistyping a
/// PIN a few times, while 10,000 four-digit PINs take over a day.
pub const MAX_FAILURES: usize = 5;
/// The sliding window of [`MAX_FAILURES`].
pub const WINDOW: Duration = Duration::from_secs(60);

/// Attempts that failed or are still in flight, within the window. An attempt counts from the
/// moment it is let through, so concurrent guesses cannot overrun the limit before their
/// replies arrive; a success gives its slot back.
#[derive(Debug, Default)]
pub struct CredentialLimiter {
    attempts: VecDeque<Instant>,
}

/// A let-through attempt; report its outcome with [`CredentialLimiter::succeeded`] (a dropped
/// ticket counts as failed).
#[derive(Debug)]
pub struct Ticket(Instant);

impl CredentialLimiter {
    /// Lets an attempt through, or says how long until one may be.
    pub fn try_begin(&mut self, now: Instant) -> Result<Ticket, Duration> {
        while self
            .attempts
            .front()
            .is_some_and(|&at| now.saturating_duration_since(at) >= WINDOW)
        {
            self.attempts.pop_front();
        }
        if self.attempts.len() >= MAX_FAILURES {
            let oldest = self.attempts.front().copied().unwrap_or(now);
            return Err(WINDOW.saturating_sub(now.saturating_duration_since(oldest)));
        }
        self.attempts.push_back(now);
        Ok(Ticket(now))
    }

    /// The attempt succeeded: it does not count.
    pub fn succeeded(&mut self, ticket: Ticket) {
        if let Some(pos) = self.attempts.iter().position(|&at| at == ticket.0) {
            self.attempts.remove(pos);
        }
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn failures_are_limited_per_window_and_successes_are_free() {
        let start = Instant::now();
        let mut limiter = CredentialLimiter::default();
        let ok = limiter.try_begin(start).unwrap();
        limiter.succeeded(ok);
        for _ in 0..MAX_FAILURES {
            let _failed = limiter.try_begin(start).unwrap();
        }
        let wait = limiter
            .try_begin(start + Duration::from_secs(10))
            .unwrap_err();
        assert_eq!(wait, WINDOW - Duration::from_secs(10));
        assert!(limiter.try_begin(start + WINDOW).is_ok());
    }
}
