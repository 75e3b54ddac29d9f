//! [`LeasedFetch`]: getting a value that a fleet of processes shares (a token, a validation
//! result) with one fetch for the whole fleet, as a sans-IO machine over a key-value store
//! with expiring keys and an atomic "set if absent".
//!
//! ```text
//! Load ─ found ─────────────────────────────────────────────► Done(Found)
//!   │ missing
//!   ▼
//! TryLease ─ taken ─► Load ─ found (stored meanwhile) ─► Release ─► Done(Found)
//!   │                   └ missing ─► Fetch{leased} ─► Save ─► Release ─► Done(Fetched)
//!   └ held ─► WaitRelease{until} ─► Load ...   (past `until`: Fetch alone)
//! any store failure ─► Fetch alone (the caller never fails because the store does)
//! ```
//!
//! The second look after taking the lease matters: the previous holder may have saved its
//! value and released the lease between this process's first look and its lease.
//!
//! The driver does the I/O and the cryptography (it opens a record and says whether it is
//! usable: [`Looked`]); the machine decides the order, when to wait and when to give up. Time
//! is passed in.

use std::time::{Duration, Instant};

/// What a look at the store found.
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
#[non_exhaustive]
pub enum Looked {
    /// A record that opened and is usable (the driver keeps it).
    Usable,
    /// No record, or one that is not usable (did not open, expired, the value being
    /// replaced).
    Missing,
    /// The store failed.
    Failed,
}

/// What the driver does next (see [`LeasedFetch::poll`]).
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
#[non_exhaustive]
pub enum LeaseStep {
    /// Load and open the record, then [`LeasedFetch::handle_look`].
    Load,
    /// Take the lease (set if absent, for the lease's time, under this process's holder
    /// name), then [`LeasedFetch::handle_lease`].
    TryLease(Duration),
    /// Another process holds the lease: wait until it is released (the store may notify) or
    /// until `until`, then poll again.
    WaitRelease {
        /// The latest the wait may last.
        until: Instant,
    },
    /// Fetch the value, then [`LeasedFetch::handle_fetched`]. `leased`: this process holds
    /// the lease (the fleet waits for its value); otherwise it fetches for itself alone.
    Fetch {
        /// Whether the value is for the fleet.
        leased: bool,
    },
    /// Save the fetched value's record, then [`LeasedFetch::handle_saved`].
    Save,
    /// Release the lease (only if this process still holds it), then
    /// [`LeasedFetch::handle_released`].
    Release,
    /// Finished.
    Done(LeaseOutcome),
}

/// How a [`LeasedFetch`] ended.
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
#[non_exhaustive]
pub enum LeaseOutcome {
    /// Use the record the last look found.
    Found,
    /// Use the value this process fetched.
    Fetched,
}

#[derive(Clone, Copy, Debug, PartialEq, Eq)]
enum State {
    Look,
    Lease,
    Waiting,
    /// The lease is taken: look once more.
    LookAgain,
    Fetching {
        leased: bool,
    },
    Saving,
    Releasing(LeaseOutcome),
    Done(LeaseOutcome),
    /// A step was handed out; its `handle_*` is awaited.
    Pending,
}

/// One fetch of a shared value, coordinated through the store (see the module docs).
#[derive(Debug)]
pub struct LeasedFetch {
    lease: Duration,
    give_up: Instant,
    state: State,
    /// The state the pending step's answer leads from.
    asked: State,
    store_failed: bool,
}

impl LeasedFetch {
    /// A fetch that holds the lease for `lease` when it takes it, and waits for another
    /// holder at most until `now + patience` (its lease, and the time its fetch may take).
    pub fn new(lease: Duration, patience: Duration, now: Instant) -> Self {
        Self {
            lease,
            // (At most a day: a "forever" still gives an instant to wait until.)
            give_up: now
                .checked_add(patience.min(Duration::from_secs(86_400)))
                .unwrap_or(now),
            state: State::Look,
            asked: State::Look,
            store_failed: false,
        }
    }

    /// Whether the store failed along the way (a driver leaves it alone for a while).
    pub fn store_failed(&self) -> bool {
        self.store_failed
    }

    /// What to do next, at `now`.
    pub fn poll(&mut self, now: Instant) -> LeaseStep {
        let state = std::mem::replace(&mut self.state, State::Pending);
        self.asked = state;
        match state {
            State::Look | State::LookAgain => LeaseStep::Load,
            State::Lease => LeaseStep::TryLease(self.lease),
            State::Waiting if now >= self.give_up => {
                // The holder never released it (it died, or its fetch hangs): fetch alone.
                self.asked = State::Fetching { leased: false };
                LeaseStep::Fetch { leased: false }
            }
            State::Waiting => {
                self.asked = State::Look;
                self.state = State::Look;
                LeaseStep::WaitRelease {
                    until: self.give_up,
                }
            }
            State::Fetching { leased } => LeaseStep::Fetch { leased },
            State::Saving => LeaseStep::Save,
            State::Releasing(_) => LeaseStep::Release,
            State::Done(outcome) => {
                self.state = State::Done(outcome);
                LeaseStep::Done(outcome)
            }
            State::Pending => {
                // Polled again before the last step's answer: a driver bug. Fetching alone
                // is always safe.
                debug_assert!(false, "LeasedFetch polled before the last step's answer");
                self.asked = State::Fetching { leased: false };
                LeaseStep::Fetch { leased: false }
            }
        }
    }

    /// What the look ([`LeaseStep::Load`]) found.
    pub fn handle_look(&mut self, looked: Looked) {
        let again = self.asked == State::LookAgain;
        self.state = match (looked, again) {
            (Looked::Usable, false) => State::Done(LeaseOutcome::Found),
            (Looked::Usable, true) => State::Releasing(LeaseOutcome::Found),
            (Looked::Missing, false) => State::Lease,
            (Looked::Missing, true) => State::Fetching { leased: true },
            (Looked::Failed, false) => {
                self.store_failed = true;
                State::Fetching { leased: false }
            }
            // The lease is held: fetch for the fleet anyway (saving may work).
            (Looked::Failed, true) => {
                self.store_failed = true;
                State::Fetching { leased: true }
            }
        };
    }

    /// Whether the lease was taken (`Ok(true)`), held by another (`Ok(false)`), or the
    /// store failed (`Err(())`).
    pub fn handle_lease(&mut self, taken: Result<bool, ()>) {
        self.state = match taken {
            Ok(true) => State::LookAgain,
            Ok(false) => State::Waiting,
            Err(()) => {
                self.store_failed = true;
                State::Fetching { leased: false }
            }
        };
    }

    /// The fetch is done; `save`: whether its value is worth saving for the fleet (it
    /// succeeded, and it may be kept).
    pub fn handle_fetched(&mut self, save: bool) {
        self.state = match self.asked {
            State::Fetching { leased: true } if save => State::Saving,
            State::Fetching { leased: true } => State::Releasing(LeaseOutcome::Fetched),
            _ => State::Done(LeaseOutcome::Fetched),
        };
    }

    /// The save is done (or failed).
    pub fn handle_saved(&mut self, saved: bool) {
        if !saved {
            self.store_failed = true;
        }
        self.state = State::Releasing(LeaseOutcome::Fetched);
    }

    /// The lease is released (or the release failed: it expires by itself).
    pub fn handle_released(&mut self) {
        self.state = match self.asked {
            State::Releasing(outcome) => State::Done(outcome),
            _ => State::Done(LeaseOutcome::Fetched),
        };
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    fn secs(s: u64) -> Duration {
        Duration::from_secs(s)
    }

    #[test]
    fn a_stored_value_is_used_without_a_lease() {
        let t = crate::time::test_support::t0().monotonic();
        let mut f = LeasedFetch::new(secs(2), secs(2), t);
        assert_eq!(f.poll(t), LeaseStep::Load);
        f.handle_look(Looked::Usable);
        assert_eq!(f.poll(t), LeaseStep::Done(LeaseOutcome::Found));
        assert_eq!(f.poll(t), LeaseStep::Done(LeaseOutcome::Found));
    }

    #[test]
    fn the_lease_holder_looks_again_fetches_saves_and_releases() {
        let t = crate::time::test_support::t0().monotonic();
        let mut f = LeasedFetch::new(secs(2), secs(2), t);
        assert_eq!(f.poll(t), LeaseStep::Load);
        f.handle_look(Looked::Missing);
        assert_eq!(f.poll(t), LeaseStep::TryLease(secs(2)));
        f.handle_lease(Ok(true));
        assert_eq!(f.poll(t), LeaseStep::Load);
        f.handle_look(Looked::Missing);
        assert_eq!(f.poll(t), LeaseStep::Fetch { leased: true });
        f.handle_fetched(true);
        assert_eq!(f.poll(t), LeaseStep::Save);
        f.handle_saved(true);
        assert_eq!(f.poll(t), LeaseStep::Release);
        f.handle_released();
        assert_eq!(f.poll(t), LeaseStep::Done(LeaseOutcome::Fetched));
        assert!(!f.store_failed());
    }

    /// The previous holder saved its value and released the lease between this process's
    /// first look and its lease: the value is used, and no second fetch is made.
    #[test]
    fn a_value_saved_just_before_the_lease_is_used() {
        let t = crate::time::test_support::t0().monotonic();
        let mut f = LeasedFetch::new(secs(2), secs(2), t);
        f.poll(t);
        f.handle_look(Looked::Missing);
        f.poll(t);
        f.handle_lease(Ok(true));
        assert_eq!(f.poll(t), LeaseStep::Load);
        f.handle_look(Looked::Usable);
        assert_eq!(f.poll(t), LeaseStep::Release);
        f.handle_released();
        assert_eq!(f.poll(t), LeaseStep::Done(LeaseOutcome::Found));
    }

    #[test]
    fn a_failed_fetch_releases_without_saving() {
        let t = crate::time::test_support::t0().monotonic();
        let mut f = LeasedFetch::new(secs(2), secs(2), t);
        f.poll(t);
        f.handle_look(Looked::Missing);
        f.poll(t);
        f.handle_lease(Ok(true));
        f.poll(t);
        f.handle_look(Looked::Missing);
        assert_eq!(f.poll(t), LeaseStep::Fetch { leased: true });
        f.handle_fetched(false);
        assert_eq!(f.poll(t), LeaseStep::Release);
    }

    #[test]
    fn a_waiter_looks_again_after_each_release_and_gives_up_in_time() {
        let t = crate::time::test_support::t0().monotonic();
        let mut f = LeasedFetch::new(secs(2), secs(5), t);
        f.poll(t);
        f.handle_look(Looked::Missing);
        f.poll(t);
        f.handle_lease(Ok(false));
        assert_eq!(f.poll(t), LeaseStep::WaitRelease { until: t + secs(5) });
        // Woken: look again; still nothing, the lease is held again.
        assert_eq!(f.poll(t + secs(1)), LeaseStep::Load);
        f.handle_look(Looked::Missing);
        assert_eq!(f.poll(t + secs(1)), LeaseStep::TryLease(secs(2)));
        f.handle_lease(Ok(false));
        // Past the patience: fetch alone, without the lease.
        assert_eq!(f.poll(t + secs(5)), LeaseStep::Fetch { leased: false });
        f.handle_fetched(true);
        assert_eq!(f.poll(t + secs(5)), LeaseStep::Done(LeaseOutcome::Fetched));
    }

    #[test]
    fn store_failures_mean_fetching_alone() {
        let t = crate::time::test_support::t0().monotonic();
        let mut f = LeasedFetch::new(secs(2), secs(2), t);
        f.poll(t);
        f.handle_look(Looked::Failed);
        assert_eq!(f.poll(t), LeaseStep::Fetch { leased: false });
        f.handle_fetched(true);
        assert_eq!(f.poll(t), LeaseStep::Done(LeaseOutcome::Fetched));
        assert!(f.store_failed());

        let mut f = LeasedFetch::new(secs(2), secs(2), t);
        f.poll(t);
        f.handle_look(Looked::Missing);
        f.poll(t);
        f.handle_lease(Err(()));
        assert_eq!(f.poll(t), LeaseStep::Fetch { leased: false });
        assert!(f.store_failed());
    }

    #[test]
    fn a_huge_lease_does_not_overflow() {
        let t = crate::time::test_support::t0().monotonic();
        let mut f = LeasedFetch::new(Duration::MAX, Duration::MAX, t);
        f.poll(t);
        f.handle_look(Looked::Missing);
        assert_eq!(f.poll(t), LeaseStep::TryLease(Duration::MAX));
        f.handle_lease(Ok(false));
        assert!(matches!(f.poll(t), LeaseStep::WaitRelease { .. }));
    }
}
