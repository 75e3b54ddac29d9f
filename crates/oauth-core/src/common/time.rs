//! [`Now`]: one reading of the two clocks, taken by the adapter and passed in.

use std::time::{Duration, Instant, SystemTime};

/// The time at one moment, on both clocks.
///
/// The core reads no clock: an adapter reads both once and passes them in. Deadlines (when to
/// refresh, when to stop serving a token, when a backoff or a call ends) are kept on the
/// monotonic clock, so a wall clock stepped back or forward cannot stretch or cut them; the
/// wall clock is used only for what is absolute by nature: an `expires_in` turned into an
/// `expires_at` to persist, and the `iat`/`exp` of a signed assertion.
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
pub struct Now {
    wall: SystemTime,
    monotonic: Instant,
}

impl Now {
    /// The two readings, taken together.
    pub fn new(wall: SystemTime, monotonic: Instant) -> Self {
        Self { wall, monotonic }
    }

    /// The wall clock.
    pub fn wall(&self) -> SystemTime {
        self.wall
    }

    /// The monotonic clock.
    pub fn monotonic(&self) -> Instant {
        self.monotonic
    }

    /// Both clocks `d` later (for simulated time).
    #[must_use]
    pub fn after(self, d: Duration) -> Self {
        Self {
            wall: self.wall.checked_add(d).unwrap_or(self.wall),
            monotonic: self.monotonic.checked_add(d).unwrap_or(self.monotonic),
        }
    }

    /// The monotonic instant at which the wall clock will read `at`, as seen from now (`now`
    /// if `at` is already past).
    pub fn monotonic_at(&self, at: SystemTime) -> Instant {
        let ahead = at.duration_since(self.wall).unwrap_or(Duration::ZERO);
        self.monotonic.checked_add(ahead).unwrap_or(self.monotonic)
    }
}

#[cfg(test)]
pub(crate) mod test_support {
    use super::*;

    /// A fixed starting point for simulated time: wall clock at 2023-11-14, monotonic at the
    /// first reading of this process.
    #[allow(clippy::disallowed_methods)] // tests need one real Instant to offset from
    pub(crate) fn t0() -> Now {
        use std::sync::OnceLock;
        static BASE: OnceLock<Instant> = OnceLock::new();
        Now::new(
            SystemTime::UNIX_EPOCH + Duration::from_secs(1_700_000_000),
            *BASE.get_or_init(Instant::now),
        )
    }

    /// `secs` seconds after [`t0`] on both clocks.
    pub(crate) fn at(secs: u64) -> Now {
        t0().after(Duration::from_secs(secs))
    }
}
