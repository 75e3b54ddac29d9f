//! [`Signal`]: "something changed, look again", for tasks and threads alike.
//!
//! A driver that must wait for another caller (a JWK set fetch in flight, another request
//! validating the same token) waits on a signal through [`Io::wait`](crate::Io::wait) instead
//! of polling: the async adapter parks the task (a waker), the blocking one the thread (a
//! condition variable). Whoever changes the state raises the signal.

use std::future::Future;
use std::pin::Pin;
use std::sync::{Condvar, Mutex, MutexGuard};
use std::task::{Context, Poll, Waker};
use std::time::Instant;

/// A change counter that tasks and threads can wait on.
///
/// To wait without missing a change: read [`generation`](Self::generation) while the state
/// looked at is still locked (or before looking), then wait for a generation past it.
#[derive(Default)]
pub struct Signal {
    state: Mutex<State>,
    changed: Condvar,
}

#[derive(Default)]
struct State {
    generation: u64,
    wakers: Vec<Waker>,
}

impl std::fmt::Debug for Signal {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        f.debug_struct("Signal")
            .field("generation", &self.generation())
            .finish_non_exhaustive()
    }
}

impl Signal {
    /// A signal never raised.
    pub fn new() -> Self {
        Self::default()
    }

    fn lock(&self) -> MutexGuard<'_, State> {
        self.state.lock().unwrap_or_else(|e| e.into_inner())
    }

    /// How many times it was raised.
    pub fn generation(&self) -> u64 {
        self.lock().generation
    }

    /// Raises it: every waiter wakes and looks again.
    pub fn notify(&self) {
        let wakers = {
            let mut state = self.lock();
            state.generation = state.generation.wrapping_add(1);
            std::mem::take(&mut state.wakers)
        };
        self.changed.notify_all();
        for waker in wakers {
            waker.wake();
        }
    }

    /// A future that is ready once the generation is past `seen` (an async adapter bounds
    /// it with its timer).
    pub fn changed(&self, seen: u64) -> Changed<'_> {
        Changed { signal: self, seen }
    }

    /// Blocks the thread until the generation is past `seen`, or until `until`.
    pub fn wait_blocking(&self, seen: u64, until: Instant) {
        let mut state = self.lock();
        while state.generation == seen {
            let left = until.saturating_duration_since(Instant::now());
            if left.is_zero() {
                return;
            }
            state = match self.changed.wait_timeout(state, left) {
                Ok((state, _)) => state,
                Err(poisoned) => poisoned.into_inner().0,
            };
        }
    }
}

/// The future of [`Signal::changed`].
#[derive(Debug)]
pub struct Changed<'a> {
    signal: &'a Signal,
    seen: u64,
}

impl Future for Changed<'_> {
    type Output = ();

    fn poll(self: Pin<&mut Self>, cx: &mut Context<'_>) -> Poll<()> {
        let mut state = self.signal.lock();
        if state.generation != self.seen {
            return Poll::Ready(());
        }
        if !state.wakers.iter().any(|w| w.will_wake(cx.waker())) {
            state.wakers.push(cx.waker().clone());
        }
        Poll::Pending
    }
}

#[cfg(test)]
mod tests {
    use super::*;
    use std::sync::Arc;
    use std::time::Duration;

    #[test]
    fn a_blocked_thread_wakes_on_notify_not_at_its_deadline() {
        let signal = Arc::new(Signal::new());
        let seen = signal.generation();
        let other = Arc::clone(&signal);
        let started = Instant::now();
        let notifier = std::thread::spawn(move || {
            std::thread::sleep(Duration::from_millis(50));
            other.notify();
        });
        signal.wait_blocking(seen, Instant::now() + Duration::from_secs(30));
        assert!(started.elapsed() < Duration::from_secs(10));
        assert_ne!(signal.generation(), seen);
        let _ = notifier.join();
    }

    #[test]
    fn a_missed_notification_is_not_waited_for() {
        let signal = Signal::new();
        let seen = signal.generation();
        signal.notify();
        // Already past `seen`: returns at once, however far the deadline.
        signal.wait_blocking(seen, Instant::now() + Duration::from_secs(3600));
        assert!(crate::block_on(async {
            signal.changed(seen).await;
            true
        }));
    }

    #[test]
    fn a_wait_ends_at_its_deadline() {
        let signal = Signal::new();
        let until = Instant::now() + Duration::from_millis(20);
        signal.wait_blocking(signal.generation(), until);
        assert!(Instant::now() >= until);
    }
}
