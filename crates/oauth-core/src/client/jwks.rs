//! [`JwksCache`]: when to fetch a JWK set (RFC 7517) again, as a sans-IO machine over any key
//! set type (jwt-assertion's `KeySet`, or another library's).
//!
//! A set is fetched when there is none, when it is older than its max age, and when a token
//! names a `kid` the set does not hold (the server may have rotated its keys: the first such
//! token is followed at once) — but that last reason at most once per `min_refetch_interval`,
//! so that a flood of tokens with made-up `kid`s cannot make the verifier fetch per request:
//! over a span `T` it fetches at most `2 + T / min_refetch_interval + T / max_age` times.

use std::sync::Arc;
use std::time::{Duration, Instant};

use crate::error::Error;

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
    last_fetch: Option<Instant>,
    last_kid_fetch: Option<Instant>,
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
            last_fetch: None,
            last_kid_fetch: None,
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

    /// The shortest time between two fetches caused by unknown `kid`s, and between a failed
    /// fetch and the next one.
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
        // After a failure, wait before trying again; for unknown kids, wait between fetches
        // made for that reason (a rotation right after a scheduled fetch is still followed).
        let retry_limited = within(self.last_fetch);
        let kid_limited = within(self.last_kid_fetch);
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
            None => !retry_limited,
            Some(_) if stale => true,
            Some(_) => unknown_kid && !kid_limited,
        };
        if wanted {
            self.in_flight = true;
            self.last_fetch = Some(now);
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

    /// Reports the fetch handed out by [`poll`](Self::poll). A failed fetch keeps the set
    /// already cached (still used until a fetch succeeds).
    pub fn handle_response(&mut self, result: Result<K, Error>, now: Instant) {
        self.in_flight = false;
        match result {
            Ok(keys) => {
                self.keys = Some(Arc::new(keys));
                self.fetched_at = Some(now);
                self.last_error = None;
            }
            Err(e) => {
                self.last_error = Some(e);
                // Keep a stale set usable for another max age rather than fail every token
                // while the JWKS endpoint is down.
                if self.keys.is_some() {
                    self.fetched_at = Some(now);
                }
            }
        }
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
}
