//! Keeping long-lived tasks alive.
//!
//! A task that panics, or returns while it should still run, is logged, counted and started
//! again after a backoff ([`Supervisor::keep`]); its state (channel receivers, say) lives in the
//! supervisor and is lent to each run, so a restarted task picks up where the failed one left
//! off. What failed is kept for `/readyz` and `bridge/info` ([`Supervisor::failures`]).

use std::collections::BTreeMap;
use std::future::Future;
use std::panic::AssertUnwindSafe;
use std::pin::Pin;
use std::sync::{Arc, Mutex};
use std::time::Duration;

use futures_util::FutureExt;
use serde::Serialize;
use tokio_util::sync::CancellationToken;
use tracing::error;

use crate::backoff::Backoff;

/// First restart delay of a failed task.
const RESTART_MIN: Duration = Duration::from_millis(100);
/// Longest restart delay: a task failing on every start costs one log line per half minute.
const RESTART_MAX: Duration = Duration::from_secs(30);

/// A future borrowing its task's state.
pub type TaskFuture<'a> = Pin<Box<dyn Future<Output = ()> + Send + 'a>>;

/// What went wrong with one task.
#[derive(Debug, Clone, Default, PartialEq, Eq, Serialize)]
pub struct TaskFailures {
    /// How often it failed (and was restarted).
    pub failures: u64,
    /// The last failure, in words.
    pub last: String,
    /// Whether it is waiting to be restarted right now.
    pub restarting: bool,
}

/// The failures of the tasks it keeps.
#[derive(Debug, Default)]
pub struct Supervisor {
    failures: Mutex<BTreeMap<String, TaskFailures>>,
}

impl Supervisor {
    /// A supervisor with nothing failed yet.
    pub fn new() -> Arc<Supervisor> {
        Arc::default()
    }

    /// Every task that failed at least once, by name.
    pub fn failures(&self) -> BTreeMap<String, TaskFailures> {
        self.failures.lock().map(|f| f.clone()).unwrap_or_default()
    }

    /// Whether every task that failed has been restarted.
    pub fn all_running(&self) -> bool {
        self.failures().values().all(|f| !f.restarting)
    }

    fn update(&self, name: &str, change: impl FnOnce(&mut TaskFailures)) {
        if let Ok(mut failures) = self.failures.lock() {
            change(failures.entry(name.to_owned()).or_default());
        }
    }

    /// Runs `run(&mut state)` until `cancel`; when a run panics or returns before that, logs
    /// it, counts it and runs it again after a backoff.
    pub async fn keep<S: Send>(
        self: Arc<Self>,
        name: impl Into<String>,
        cancel: CancellationToken,
        state: S,
        run: impl for<'a> FnMut(&'a mut S) -> TaskFuture<'a> + Send,
    ) {
        self.keep_reporting(name, cancel, state, run, |_| {}).await;
    }

    /// [`Supervisor::keep`], also telling `failed` why each failed run ended.
    pub async fn keep_reporting<S: Send>(
        self: Arc<Self>,
        name: impl Into<String>,
        cancel: CancellationToken,
        mut state: S,
        mut run: impl for<'a> FnMut(&'a mut S) -> TaskFuture<'a> + Send,
        failed: impl Fn(&str) + Send,
    ) {
        let name = name.into();
        let mut backoff = Backoff::new(RESTART_MIN, RESTART_MAX);
        loop {
            let outcome = AssertUnwindSafe(run(&mut state)).catch_unwind().await;
            if cancel.is_cancelled() {
                return;
            }
            let why = match outcome {
                Ok(()) => "ended unexpectedly".to_owned(),
                Err(panic) => format!("panicked: {}", panic_message(panic.as_ref())),
            };
            let delay = backoff.next_delay();
            error!(task = %name, %why, restart_in_ms = delay.as_millis() as u64, "a task failed; restarting it");
            failed(&why);
            self.update(&name, |f| {
                f.failures += 1;
                f.last = why;
                f.restarting = true;
            });
            tokio::select! {
                _ = cancel.cancelled() => return,
                _ = tokio::time::sleep(delay) => {}
            }
            self.update(&name, |f| f.restarting = false);
        }
    }
}

/// A panic payload in words (`panic!` with a message gives a `&str` or a `String`).
pub fn panic_message(panic: &(dyn std::any::Any + Send)) -> String {
    panic
        .downcast_ref::<&str>()
        .map(|s| (*s).to_owned())
        .or_else(|| panic.downcast_ref::<String>().cloned())
        .unwrap_or_else(|| "a panic without a message".to_owned())
}

#[cfg(test)]
mod tests {
    use super::*;

    #[tokio::test]
    async fn a_failing_task_is_counted_and_restarted_with_its_state() {
        let supervisor = Supervisor::new();
        let cancel = CancellationToken::new();
        let (tx, rx) = tokio::sync::mpsc::channel::<u32>(8);
        let (seen_tx, mut seen) = tokio::sync::mpsc::channel::<u32>(8);
        let task = tokio::spawn(
            supervisor
                .clone()
                .keep("reader", cancel.clone(), rx, move |rx| {
                    let seen_tx = seen_tx.clone();
                    Box::pin(async move {
                        while let Some(n) = rx.recv().await {
                            assert!(n != 2, "two is not allowed");
                            let _ = seen_tx.send(n).await;
                            if n == 3 {
                                return; // ends while it should run
                            }
                        }
                    })
                }),
        );
        for n in 1..=4 {
            tx.send(n).await.unwrap();
        }
        // 2 panicked, 3 ended the run: both restarted, and the receiver survived both.
        let mut got = Vec::new();
        while got.len() < 3 {
            got.push(seen.recv().await.unwrap());
        }
        assert_eq!(got, [1, 3, 4]);
        let failures = supervisor.failures();
        let reader = &failures["reader"];
        assert_eq!(reader.failures, 2);
        assert_eq!(reader.last, "ended unexpectedly");
        assert!(supervisor.all_running());
        cancel.cancel();
        drop(tx);
        task.await.unwrap();
    }
}
