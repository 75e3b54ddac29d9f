//! SLA tiers and the rate limiter that enforces them, sans-IO: a [`Tier`] is one or more
//! [`Limit`]s (`requests` per `window`), and a [`Counter`] decides whether one more request is
//! allowed at a time passed in, and when a refused one may come back.
//!
//! # The algorithm: a sliding window of buckets, counted conservatively
//!
//! Each limit's window is cut into [`BUCKETS`] buckets of `window / BUCKETS` (at least 1 ms);
//! a counter keeps the number of allowed requests in the last `BUCKETS + 1` buckets (52 bytes
//! of state per limit). A request is allowed when the buckets that overlap the last `window`
//! hold fewer than `requests`, and then counted in the current bucket. Refused requests are not
//! counted.
//!
//! Why not GCRA (a token bucket): with a burst of `requests` it lets through up to twice the
//! limit in some windows (a full burst, then the refill), and without the burst a client may
//! not use its quota in one go. Why not a log of every request: exact, but its memory grows with
//! the limit (5,000 a day is 20 KB per client). The buckets keep the guarantee of the log —
//! **never more than `requests` allowed in any interval of length `window`** — since they count
//! a superset of that interval (at most one bucket too much: `window / BUCKETS`, rounded up to
//! whole milliseconds); the price is that a refused request may have been allowed by an exact
//! log up to about one bucket's time earlier.
//! [`Verdict::Limited`] says exactly when the counter will allow it.
//!
//! The same algorithm runs server-side in oauth-redis (a Lua script on the server's clock), so
//! a fleet counts once.

use std::fmt;
use std::sync::Arc;
use std::time::Duration;

/// How many buckets a window is cut into.
pub const BUCKETS: u64 = 12;

/// One limit of a tier: at most `requests` in any `window`.
#[derive(Clone, Copy, Debug, PartialEq, Eq, Hash)]
pub struct Limit {
    requests: u32,
    window_ms: u64,
}

impl Limit {
    /// At most `requests` (at least 1) in any `window` (at least 1 ms, at most a year).
    pub fn new(requests: u32, window: Duration) -> Option<Self> {
        let window_ms = u64::try_from(window.as_millis()).ok()?;
        if requests == 0 || window_ms == 0 || window_ms > 366 * 86_400_000 {
            return None;
        }
        Some(Self {
            requests,
            window_ms,
        })
    }

    /// The number of requests.
    pub fn requests(&self) -> u32 {
        self.requests
    }

    /// The window.
    pub fn window(&self) -> Duration {
        Duration::from_millis(self.window_ms)
    }

    /// A bucket's length, in milliseconds.
    pub fn bucket_ms(&self) -> u64 {
        self.window_ms.div_ceil(BUCKETS).max(1)
    }
}

/// An SLA tier: a name (for the `RateLimit-Policy` header) and its limits, all enforced.
#[derive(Clone, Debug, PartialEq, Eq, Hash)]
pub struct Tier(Arc<TierInner>);

/// A tier's contents, behind one reference count (a tier is cloned on every counted request).
#[derive(Debug, PartialEq, Eq, Hash)]
struct TierInner {
    name: Box<str>,
    limits: Box<[Limit]>,
}

impl Tier {
    /// The tier `name` (a token: letters, digits, `-`, `_`, `.`; 1 to 64 bytes) with `limits`
    /// (1 to 8 of them).
    pub fn new(name: &str, limits: &[Limit]) -> Option<Self> {
        let token = !name.is_empty()
            && name.len() <= 64
            && name
                .bytes()
                .all(|b| b.is_ascii_alphanumeric() || matches!(b, b'-' | b'_' | b'.'));
        if !token || limits.is_empty() || limits.len() > 8 {
            return None;
        }
        Some(Self(Arc::new(TierInner {
            name: name.into(),
            limits: limits.into(),
        })))
    }

    /// The tier's name.
    pub fn name(&self) -> &str {
        &self.0.name
    }

    /// Its limits.
    pub fn limits(&self) -> &[Limit] {
        &self.0.limits
    }

    /// The `RateLimit-Policy` header's value (draft-ietf-httpapi-ratelimit-headers): one item a
    /// limit, `"<tier>-<i>";q=<requests>;w=<seconds>`.
    pub fn policy_header(&self) -> String {
        let mut out = String::new();
        for (i, limit) in self.limits().iter().enumerate() {
            if i > 0 {
                out.push_str(", ");
            }
            out.push_str(&format!(
                "\"{}-{}\";q={};w={}",
                self.name(),
                i,
                limit.requests,
                limit.window_ms.div_ceil(1000)
            ));
        }
        out
    }
}

/// What the counter decided for one request.
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
#[non_exhaustive]
pub enum Verdict {
    /// Allowed (and counted). The tightest limit: what is left of it, and when it is whole
    /// again (if no more requests come).
    Allowed {
        /// Which limit of the tier is the tightest.
        limit: usize,
        /// Requests left in it.
        remaining: u32,
        /// Until its window holds none of the requests counted so far.
        reset: Duration,
    },
    /// Refused: a limit is reached. Not counted.
    Limited {
        /// Which limit is reached (the one that frees last).
        limit: usize,
        /// When the request would be allowed (if no other is made meanwhile).
        retry_after: Duration,
    },
}

impl Verdict {
    /// The `RateLimit` header's value for `tier`: `"<tier>-<i>";r=<remaining>;t=<seconds>`.
    pub fn header(&self, tier: &Tier) -> String {
        let (limit, remaining, t) = match *self {
            Self::Allowed {
                limit,
                remaining,
                reset,
            } => (limit, remaining, reset),
            Self::Limited { limit, retry_after } => (limit, 0, retry_after),
        };
        format!(
            "\"{}-{}\";r={};t={}",
            tier.name(),
            limit,
            remaining,
            seconds_up(t)
        )
    }

    /// Whether the request may go on.
    pub fn allowed(&self) -> bool {
        matches!(self, Self::Allowed { .. })
    }
}

/// A duration in whole seconds, rounded up (a client told to wait 0 s would come back too
/// soon).
pub fn seconds_up(d: Duration) -> u64 {
    d.as_secs() + u64::from(d.subsec_nanos() > 0)
}

/// One limit's buckets: the counts of the last `BUCKETS + 1` buckets, the newest last.
#[derive(Clone, Copy, Default, PartialEq, Eq)]
pub struct Buckets {
    /// The index (time / bucket length) of the newest bucket.
    newest: u64,
    counts: [u32; BUCKETS as usize + 1],
}

impl fmt::Debug for Buckets {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        f.debug_struct("Buckets")
            .field("newest", &self.newest)
            .field("counted", &self.total())
            .finish()
    }
}

impl Buckets {
    const LEN: u64 = BUCKETS + 1;

    /// Moves the newest bucket to `index`, forgetting the buckets that fall out.
    fn advance(&mut self, index: u64) {
        if index <= self.newest {
            return;
        }
        let shift = index - self.newest;
        if shift >= Self::LEN {
            self.counts = [0; BUCKETS as usize + 1];
        } else {
            let shift = shift as usize;
            self.counts.rotate_left(shift);
            let len = self.counts.len();
            for c in &mut self.counts[len - shift..] {
                *c = 0;
            }
        }
        self.newest = index;
    }

    fn total(&self) -> u64 {
        self.counts.iter().map(|&c| u64::from(c)).sum()
    }

    /// The time (ms) at which, with no new requests, fewer than `below` are counted: when the
    /// oldest buckets holding the excess have fallen out.
    fn frees_at(&self, bucket_ms: u64, below: u64) -> u64 {
        let mut left = self.total();
        let oldest = self.newest.saturating_sub(Self::LEN - 1);
        for (i, &count) in self.counts.iter().enumerate() {
            if left < below {
                // Bucket `oldest + i - 1` was the last to have to go: it leaves the counted
                // span once the newest index is `LEN` past it.
                return (oldest + i as u64 - 1 + Self::LEN).saturating_mul(bucket_ms);
            }
            left -= u64::from(count);
        }
        (self.newest + Self::LEN).saturating_mul(bucket_ms)
    }
}

/// A (client, API) counter: one [`Buckets`] per limit of its tier.
#[derive(Clone, Debug, Default, PartialEq, Eq)]
pub struct Counter {
    /// One a limit, allocated to the tier's size exactly.
    limits: Box<[Buckets]>,
    /// When nothing counted is left in any window (ms).
    idle_at: u64,
}

impl Counter {
    /// A counter with nothing counted.
    pub fn new() -> Self {
        Self::default()
    }

    /// Decides on one request at `now_ms` (milliseconds on any clock that never goes back,
    /// the same for every call of this counter) under `tier`, and counts it if allowed.
    pub fn check(&mut self, tier: &Tier, now_ms: u64) -> Verdict {
        if self.limits.len() != tier.limits().len() {
            // The tier changed (or this is the first request): limits kept where they still
            // line up, the others start empty.
            let mut limits = vec![Buckets::default(); tier.limits().len()].into_boxed_slice();
            for (new, old) in limits.iter_mut().zip(self.limits.iter()) {
                *new = *old;
            }
            self.limits = limits;
        }
        let mut limited: Option<(usize, u64)> = None;
        for (i, (limit, buckets)) in tier.limits().iter().zip(self.limits.iter_mut()).enumerate() {
            let bucket = limit.bucket_ms();
            buckets.advance(now_ms / bucket);
            if buckets.total() >= u64::from(limit.requests) {
                let at = buckets.frees_at(bucket, u64::from(limit.requests));
                if limited.is_none_or(|(_, later)| at > later) {
                    limited = Some((i, at));
                }
            }
        }
        if let Some((limit, at)) = limited {
            return Verdict::Limited {
                limit,
                retry_after: Duration::from_millis(at.saturating_sub(now_ms)),
            };
        }
        let mut tightest = (0, u32::MAX, Duration::ZERO);
        for (i, (limit, buckets)) in tier.limits().iter().zip(self.limits.iter_mut()).enumerate() {
            if let Some(newest) = buckets.counts.last_mut() {
                *newest = newest.saturating_add(1);
            }
            let used = u32::try_from(buckets.total()).unwrap_or(u32::MAX);
            let remaining = limit.requests.saturating_sub(used);
            let reset = (buckets.newest + Buckets::LEN)
                .saturating_mul(limit.bucket_ms())
                .saturating_sub(now_ms);
            if remaining < tightest.1 {
                tightest = (i, remaining, Duration::from_millis(reset));
            }
            self.idle_at = self.idle_at.max(now_ms.saturating_add(reset));
        }
        Verdict::Allowed {
            limit: tightest.0,
            remaining: tightest.1,
            reset: tightest.2,
        }
    }

    /// Whether nothing counted is still inside a window at `now_ms` (the counter may be
    /// dropped).
    pub fn idle(&self, now_ms: u64) -> bool {
        now_ms >= self.idle_at
    }
}

#[cfg(test)]
mod tests {
    use super::*;
    use proptest::prelude::*;

    fn tier(limits: &[(u32, u64)]) -> Tier {
        let limits: Vec<Limit> = limits
            .iter()
            .map(|&(n, ms)| Limit::new(n, Duration::from_millis(ms)).unwrap())
            .collect();
        Tier::new("silver", &limits).unwrap()
    }

    #[test]
    fn a_burst_is_allowed_up_to_the_limit_then_refused_until_the_window_passes() {
        let t = tier(&[(50, 10_000)]);
        let mut c = Counter::new();
        let start = 1_000_000;
        for i in 0..50 {
            assert!(c.check(&t, start + i).allowed(), "request {i}");
        }
        let Verdict::Limited { retry_after, .. } = c.check(&t, start + 50) else {
            panic!("the 51st is refused");
        };
        // Allowed again when it says, not a millisecond before.
        let back = start + 50 + retry_after.as_millis() as u64;
        assert!(!c.check(&t, back - 1).allowed());
        assert!(c.check(&t, back).allowed());
        // No later than one bucket after an exact log would (the burst was at `start`).
        assert!(back <= start + 10_000 + t.limits()[0].bucket_ms());
    }

    #[test]
    fn headers() {
        let t = tier(&[(100, 60_000), (5000, 86_400_000)]);
        assert_eq!(
            t.policy_header(),
            "\"silver-0\";q=100;w=60, \"silver-1\";q=5000;w=86400"
        );
        let mut c = Counter::new();
        let v = c.check(&t, 0);
        assert_eq!(
            v,
            Verdict::Allowed {
                limit: 0,
                remaining: 99,
                reset: Duration::from_millis(65_000)
            }
        );
        assert_eq!(v.header(&t), "\"silver-0\";r=99;t=65");
    }

    #[test]
    fn tiers_and_limits_refuse_nonsense() {
        assert!(Limit::new(0, Duration::from_secs(1)).is_none());
        assert!(Limit::new(1, Duration::ZERO).is_none());
        assert!(Limit::new(1, Duration::from_secs(400 * 86_400)).is_none());
        let one = Limit::new(1, Duration::from_secs(1)).unwrap();
        assert!(Tier::new("", &[one]).is_none());
        assert!(Tier::new("a b", &[one]).is_none());
        assert!(Tier::new("a\"b", &[one]).is_none());
        assert!(Tier::new("gold", &[]).is_none());
        assert!(Tier::new("gold", &[one; 9]).is_none());
    }

    proptest! {
        /// Against the reference (a log of every allowed request): never more than `requests`
        /// allowed in any interval of length `window`; every refusal is one the log would make
        /// or one at most a bucket after the log would allow again; and a refused request is
        /// allowed exactly at its `Retry-After`.
        #[test]
        fn never_more_than_the_limit_in_any_window(
            limits in prop::collection::vec((1u32..20, 1u64..5_000), 1..3),
            gaps in prop::collection::vec(0u64..400, 1..300),
        ) {
            let t = tier(&limits);
            let mut c = Counter::new();
            let mut allowed: Vec<u64> = Vec::new();
            let mut now = 10_000_000u64;
            for gap in gaps {
                now += gap;
                let before = c.clone();
                match c.check(&t, now) {
                    Verdict::Allowed { .. } => allowed.push(now),
                    Verdict::Limited { retry_after, .. } => {
                        // Retry-After is exact for this counter.
                        let back = now + retry_after.as_millis() as u64;
                        let mut probe = before.clone();
                        prop_assert!(probe.check(&t, back).allowed());
                        if back > now {
                            let mut early = before.clone();
                            prop_assert!(!early.check(&t, back - 1).allowed());
                        }
                        // Conservative by at most the buckets' span past the window: the log of
                        // the 13 buckets up to now holds the limit.
                        let log_refuses = t.limits().iter().any(|l| {
                            let b = l.bucket_ms();
                            let since = (now / b).saturating_sub(BUCKETS) * b;
                            allowed.iter().filter(|&&a| a >= since).count() as u64
                                >= u64::from(l.requests)
                        });
                        prop_assert!(log_refuses);
                    }
                }
                for l in t.limits() {
                    // Any interval of length `window` ending now.
                    let since = now.saturating_sub(l.window_ms);
                    let n = allowed.iter().filter(|&&a| a > since).count();
                    prop_assert!(n as u64 <= u64::from(l.requests),
                        "{n} allowed in {} ms, limit {}", l.window_ms, l.requests);
                }
            }
        }
    }
}
