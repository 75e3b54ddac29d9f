//! [`JwksCache`]: when to fetch a JWK set (RFC 7517) again, as a sans-IO machine over any key
//! set type (jwt-assertion's `KeySet`, or another library's).
//!
//! A set is fetched when there is none, when it is older than its max age, and when a token
//! names a `kid` the set does not hold (the server may have rotated its keys: the first such
//! token is followed at once) — but that last reason at most once per `min_refetch_interval`,
//! so that a flood of tokens with made-up `kid`s cannot make the verifier fetch per request:
//! over a span `T` it fetches at most `2 + T / min_refetch_interval + T / max_age` times.
//!
//! A failed fetch is tried again while tokens need the keys (there is no set, or a token names
//! an unknown `kid`), after a backoff: 1 s after the first failure, then 2, 4, 8, 16 s, capped
//! at `min_refetch_interval` (30 s by default); a success resets it. So an endpoint back after
//! an outage is used within about the last backoff, and failures during a flood of made-up
//! `kid`s cost no more than that backoff allows (about `5 + T / min_refetch_interval`).

use std::sync::Arc;
use std::time::{Duration, Instant};

use crate::error::Error;

/// The wait after the first failed fetch; it doubles with each failure in a row, up to
/// `min_refetch_interval`.
const FIRST_RETRY: Duration = Duration::from_secs(1);

/// What to do about the key set; returned by [`JwksCache::poll`].
#[derive(Debug)]
#[must_use]
#[non_exhaustive]
pub enum JwksDecision<K> {
    /// Verify with this set.
    Use(Arc<K>),
    /// Fetch the set from `jwks_uri` and report the result with
    /// [`handle_response`](JwksCache::handle_response).
    Fetch,
    /// A fetch is in flight: wait for it, then poll again.
    Wait,
    /// No set to verify with, and none may be fetched now: the last fetch's error.
    Fail(Error),
}

/// The cached key set and the rules for fetching it again.
#[derive(Debug)]
pub struct JwksCache<K> {
    keys: Option<Arc<K>>,
    fetched_at: Option<Instant>,
    last_kid_fetch: Option<Instant>,
    /// Failed fetches in a row (0 after a success).
    failures: u32,
    /// After a failure: no fetch before this.
    retry_at: Option<Instant>,
    in_flight: bool,
    last_error: Option<Error>,
    max_age: Duration,
    min_interval: Duration,
}

impl<K> Default for JwksCache<K> {
    fn default() -> Self {
        Self {
            keys: None,
            fetched_at: None,
            last_kid_fetch: None,
            failures: 0,
            retry_at: None,
            in_flight: false,
            last_error: None,
            max_age: Duration::from_secs(600),
            min_interval: Duration::from_secs(30),
        }
    }
}

impl<K> JwksCache<K> {
    /// An empty cache: a set kept at most 10 minutes, fetched again for an unknown `kid` at
    /// most every 30 seconds.
    pub fn new() -> Self {
        Self::default()
    }

    /// How long a fetched set is used before it is fetched again.
    pub fn max_age(mut self, d: Duration) -> Self {
        self.max_age = d;
        self
    }

    /// The shortest time between two fetches caused by unknown `kid`s, and the longest wait
    /// between a failed fetch and the next one (the backoff after failures starts at 1 s and
    /// doubles up to this).
    pub fn min_refetch_interval(mut self, d: Duration) -> Self {
        self.min_interval = d;
        self
    }

    /// The cached set, if any.
    pub fn keys(&self) -> Option<&Arc<K>> {
        self.keys.as_ref()
    }

    /// Decides at `now` for a token whose `kid` the cached set does not hold
    /// (`unknown_kid`; false when the token names none or the set holds it).
    pub fn poll(&mut self, now: Instant, unknown_kid: bool) -> JwksDecision<K> {
        let within = |last: Option<Instant>| {
            last.and_then(|t| t.checked_add(self.min_interval))
                .is_some_and(|until| now < until)
        };
        // After a failure, wait out the backoff before trying again; for unknown kids, wait
        // between fetches made for that reason (a rotation right after a scheduled fetch is
        // still followed). A failed fetch for an unknown kid is tried again after the backoff,
        // not the interval: the interval bounds successful fetches, the backoff failed ones.
        let backing_off = self.retry_at.is_some_and(|at| now < at);
        let kid_limited = if self.failures > 0 {
            backing_off
        } else {
            within(self.last_kid_fetch)
        };
        let stale = self
            .fetched_at
            .and_then(|t| t.checked_add(self.max_age))
            .is_none_or(|until| now >= until);
        if self.in_flight {
            return match &self.keys {
                Some(keys) if !unknown_kid && !stale => JwksDecision::Use(Arc::clone(keys)),
                _ => JwksDecision::Wait,
            };
        }
        let wanted = match &self.keys {
            None => !backing_off,
            Some(_) if stale => true,
            Some(_) => unknown_kid && !kid_limited,
        };
        if wanted {
            self.in_flight = true;
            if self.keys.is_some() && !stale {
                self.last_kid_fetch = Some(now);
            }
            return JwksDecision::Fetch;
        }
        match (&self.keys, &self.last_error) {
            (Some(keys), _) => JwksDecision::Use(Arc::clone(keys)),
            (None, Some(e)) => JwksDecision::Fail(e.clone()),
            (None, None) => JwksDecision::Wait,
        }
    }

    /// Reports the fetch handed out by [`poll`](Self::poll), at `now` (when it ended). A failed
    /// fetch keeps the set already cached (still used until a fetch succeeds) and starts or
    /// doubles the backoff before the next one; a success resets it.
    pub fn handle_response(&mut self, result: Result<K, Error>, now: Instant) {
        self.in_flight = false;
        match result {
            Ok(keys) => {
                self.keys = Some(Arc::new(keys));
                self.fetched_at = Some(now);
                self.last_error = None;
                self.failures = 0;
                self.retry_at = None;
            }
            Err(e) => {
                self.last_error = Some(e);
                self.failures = self.failures.saturating_add(1);
                self.retry_at = now.checked_add(self.backoff());
                // Keep a stale set usable for another max age rather than fail every token
                // while the JWKS endpoint is down.
                if self.keys.is_some() {
                    self.fetched_at = Some(now);
                }
            }
        }
    }

    /// The wait after the latest of `failures` failed fetches in a row: 1 s, doubled per
    /// failure, capped at `min_refetch_interval`.
    fn backoff(&self) -> Duration {
        let doublings = self.failures.saturating_sub(1).min(31);
        FIRST_RETRY
            .saturating_mul(1 << doublings)
            .min(self.min_interval)
    }

    /// Abandons the fetch in flight (its task was cancelled).
    pub fn cancel(&mut self) {
        self.in_flight = false;
    }
}

#[cfg(test)]
mod tests {
    use super::*;
    use crate::time::test_support::at;
    use crate::transport::{TransportError, TransportErrorKind};

    fn t(ms: u64) -> Instant {
        at(0).monotonic() + Duration::from_millis(ms)
    }

    /// A key set: the kids it holds.
    type Kids = Vec<String>;

    #[test]
    fn first_fetch_rotation_and_max_age() {
        let mut cache: JwksCache<Kids> = JwksCache::new();
        assert!(matches!(cache.poll(t(0), false), JwksDecision::Fetch));
        assert!(matches!(cache.poll(t(1), false), JwksDecision::Wait));
        cache.handle_response(Ok(vec!["k1".into()]), t(5));
        assert!(matches!(cache.poll(t(6), false), JwksDecision::Use(_)));
        // A token names k2, unknown: the server rotated; fetched at once.
        assert!(matches!(cache.poll(t(10_000), true), JwksDecision::Fetch));
        cache.handle_response(Ok(vec!["k1".into(), "k2".into()]), t(10_010));
        let JwksDecision::Use(keys) = cache.poll(t(10_020), false) else {
            panic!()
        };
        assert!(keys.contains(&"k2".to_owned()));
        // Another unknown kid within 30 s of that fetch: use what we have (the caller then
        // gets "no key"); afterwards, fetch once more.
        assert!(matches!(cache.poll(t(20_000), true), JwksDecision::Use(_)));
        assert!(matches!(cache.poll(t(40_010), true), JwksDecision::Fetch));
        cache.handle_response(Ok(vec!["k1".into(), "k2".into()]), t(40_020));
        // After the max age: fetched again.
        assert!(matches!(cache.poll(t(640_020), false), JwksDecision::Fetch));
    }

    #[test]
    fn a_flood_of_unknown_kids_is_bounded() {
        // 10,000 tokens with random kids over 60 s of simulated time.
        let mut cache: JwksCache<Kids> = JwksCache::new();
        let mut fetches = 0;
        for i in 0..10_000u64 {
            let now = t(i * 6); // one token every 6 ms: 60 s in all
            let holds = cache
                .keys()
                .is_some_and(|k| k.contains(&format!("kid-{i}")));
            match cache.poll(now, !holds) {
                JwksDecision::Fetch => {
                    fetches += 1;
                    cache.handle_response(Ok(vec!["k1".into()]), now);
                }
                JwksDecision::Use(_) | JwksDecision::Wait => {}
                JwksDecision::Fail(e) => panic!("{e}"),
            }
        }
        // The first fetch, the first unknown kid, then one per 30 s: 2 + 60 / 30.
        assert!(fetches <= 4, "{fetches} fetches");
    }

    #[test]
    fn failures_keep_the_old_set_and_are_not_retried_per_token() {
        let down = || Error::Transport(TransportError::new(TransportErrorKind::Connect, ""));
        let mut cache: JwksCache<Kids> = JwksCache::new();
        assert!(matches!(cache.poll(t(0), false), JwksDecision::Fetch));
        cache.handle_response(Err(down()), t(1));
        // No set, the endpoint down: the error, not a fetch per token.
        assert!(matches!(cache.poll(t(2), false), JwksDecision::Fail(_)));
        assert!(matches!(cache.poll(t(30_000), false), JwksDecision::Fetch));
        cache.handle_response(Ok(vec!["k1".into()]), t(30_001));
        // Stale, the refetch fails: the old set is still used.
        assert!(matches!(cache.poll(t(700_000), false), JwksDecision::Fetch));
        cache.handle_response(Err(down()), t(700_001));
        assert!(matches!(
            cache.poll(t(700_002), false),
            JwksDecision::Use(_)
        ));
    }

    fn down() -> Error {
        Error::Transport(TransportError::new(TransportErrorKind::Connect, ""))
    }

    /// Feeds `cache` one token every `step_ms` from `from_ms` to `to_ms` (simulated time),
    /// answering each fetch at once with `endpoint(now)`; returns the times of the fetches and
    /// the first time a token could be verified (a `Use` holding a set with `kid`).
    fn drive(
        cache: &mut JwksCache<Kids>,
        (from_ms, to_ms, step_ms): (u64, u64, u64),
        kid: &dyn Fn(u64) -> String,
        endpoint: &dyn Fn(u64) -> Result<Kids, Error>,
    ) -> (Vec<u64>, Option<u64>) {
        let (mut fetches, mut verified) = (Vec::new(), None);
        let mut ms = from_ms;
        while ms <= to_ms {
            let kid = kid(ms);
            let mut unknown = cache.keys().is_some_and(|k| !k.contains(&kid));
            loop {
                match cache.poll(t(ms), unknown) {
                    JwksDecision::Fetch => {
                        fetches.push(ms);
                        cache.handle_response(endpoint(ms), t(ms));
                        // Fetched: what the cache holds now decides, as in `RemoteKeys`.
                        unknown = false;
                    }
                    JwksDecision::Use(keys) => {
                        if keys.contains(&kid) && verified.is_none() {
                            verified = Some(ms);
                        }
                        break;
                    }
                    JwksDecision::Wait | JwksDecision::Fail(_) => break,
                }
            }
            ms += step_ms;
        }
        (fetches, verified)
    }

    #[test]
    fn after_a_failed_first_fetch_the_next_token_a_second_later_fetches_again() {
        // Issue #26: one 503 at t = 0 used to fail every token for 30 s (the refetch
        // interval), however soon the endpoint was back.
        let mut cache: JwksCache<Kids> = JwksCache::new();
        assert!(matches!(cache.poll(t(0), false), JwksDecision::Fetch));
        cache.handle_response(Err(down()), t(0));
        // Within the first backoff: the error, not a fetch per token.
        assert!(matches!(cache.poll(t(999), false), JwksDecision::Fail(_)));
        // A second after the failure, a token needs the keys: fetched again, and it succeeds.
        assert!(matches!(cache.poll(t(1_000), false), JwksDecision::Fetch));
        cache.handle_response(Ok(vec!["k1".into()]), t(1_010));
        assert!(matches!(cache.poll(t(1_020), false), JwksDecision::Use(_)));
    }

    #[test]
    fn an_endpoint_back_at_one_and_a_half_seconds_is_used_within_two_more() {
        // The JWKS endpoint fails from t = 0 until t = 1.5 s; a token every 100 ms needs the
        // keys. Fetches at 0 (fails), 1 s (fails), 3 s (the endpoint is back): verified at 3 s.
        let mut cache: JwksCache<Kids> = JwksCache::new();
        let endpoint = |ms: u64| {
            if ms < 1_500 {
                Err(down())
            } else {
                Ok(vec!["k1".into()])
            }
        };
        let (fetches, verified) = drive(&mut cache, (0, 60_000, 100), &|_| "k1".into(), &endpoint);
        assert_eq!(fetches, [0, 1_000, 3_000]);
        assert_eq!(verified, Some(3_000));
    }

    #[test]
    fn consecutive_failures_back_off_up_to_the_interval_and_a_success_resets() {
        let mut cache: JwksCache<Kids> = JwksCache::new();
        // The endpoint down for 120 s, a token every 10 ms: fetches 1, 2, 4, 8, 16, 30, 30 s
        // apart.
        let (fetches, verified) = drive(&mut cache, (0, 120_000, 10), &|_| "k1".into(), &|_| {
            Err(down())
        });
        let gaps: Vec<u64> = fetches.windows(2).map(|w| (w[1] - w[0]) / 1_000).collect();
        assert_eq!(gaps, [1, 2, 4, 8, 16, 30, 30]);
        assert_eq!(verified, None);
        // Back: the next fetch (30 s after the last failure) succeeds.
        let last = *fetches.last().unwrap();
        assert!(matches!(
            cache.poll(t(last + 29_999), false),
            JwksDecision::Fail(_)
        ));
        assert!(matches!(
            cache.poll(t(last + 30_000), false),
            JwksDecision::Fetch
        ));
        cache.handle_response(Ok(vec!["k1".into()]), t(last + 30_000));
        // A token names an unknown kid later (a rotation): fetched, and that fetch fails. The
        // backoff starts again at 1 s: the success reset it.
        let s = last + 30_000;
        assert!(matches!(
            cache.poll(t(s + 60_000), true),
            JwksDecision::Fetch
        ));
        cache.handle_response(Err(down()), t(s + 60_000));
        assert!(matches!(
            cache.poll(t(s + 60_999), true),
            JwksDecision::Use(_)
        ));
        assert!(matches!(
            cache.poll(t(s + 61_000), true),
            JwksDecision::Fetch
        ));
        cache.handle_response(Ok(vec!["k1".into(), "k2".into()]), t(s + 61_000));
        let JwksDecision::Use(keys) = cache.poll(t(s + 61_001), false) else {
            panic!()
        };
        assert!(keys.contains(&"k2".to_owned()));
    }

    #[test]
    fn a_flood_of_unknown_kids_while_the_endpoint_fails_is_bounded_by_the_backoff() {
        // A set fetched at t = 0; then the endpoint fails and 10,000 tokens with made-up kids
        // arrive over 60 s: fetches at 0 (the set), then for the kids at 6 ms and after 1, 2, 4,
        // 8, 16, 30 s of backoff.
        let mut cache: JwksCache<Kids> = JwksCache::new();
        let endpoint = |ms: u64| {
            if ms == 0 {
                Ok(vec!["k1".into()])
            } else {
                Err(down())
            }
        };
        let (fetches, _) = drive(
            &mut cache,
            (0, 60_000, 6),
            &|ms| format!("kid-{ms}"),
            &endpoint,
        );
        assert!(
            fetches.len() <= 2 + 6,
            "{} fetches: {fetches:?}",
            fetches.len()
        );
        // And with no set at all: the same bound.
        let mut cache: JwksCache<Kids> = JwksCache::new();
        let (fetches, _) = drive(
            &mut cache,
            (0, 60_000, 6),
            &|ms| format!("kid-{ms}"),
            &|_| Err(down()),
        );
        assert!(
            fetches.len() <= 1 + 6,
            "{} fetches: {fetches:?}",
            fetches.len()
        );
    }
}
