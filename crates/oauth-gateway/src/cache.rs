//! The introspection cache: one entry per token, keyed by the token's SHA-256 so that the
//! cache holds no usable token.

use std::collections::{HashMap, VecDeque};
use std::sync::{Arc, Mutex};
use std::time::{Duration, Instant, SystemTime};

use oauth_core::{Introspection, IntrospectionPool};

/// How introspection results are cached.
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
pub struct CacheConfig {
    capacity: usize,
    max_age: Duration,
    negative_ttl: Duration,
    pub(crate) keep: &'static [&'static str],
}

impl Default for CacheConfig {
    /// 10,000 tokens, results kept at most 5 minutes, "inactive" answers 5 seconds.
    fn default() -> Self {
        Self {
            capacity: 10_000,
            max_age: Duration::from_secs(300),
            negative_ttl: Duration::from_secs(5),
            keep: &[],
        }
    }
}

impl CacheConfig {
    /// The defaults.
    pub fn new() -> Self {
        Self::default()
    }

    /// No caching: every request is introspected (concurrent requests with the same token
    /// still share one call).
    pub fn disabled() -> Self {
        Self {
            capacity: 0,
            ..Self::default()
        }
    }

    /// The most tokens kept. When full, the oldest entry is dropped.
    pub fn capacity(mut self, tokens: usize) -> Self {
        self.capacity = tokens;
        self
    }

    /// The longest an active result is reused (it is never reused past the token's `exp`).
    /// A shorter age notices revocation sooner, at the cost of more introspection calls.
    pub fn max_age(mut self, age: Duration) -> Self {
        self.max_age = age;
        self
    }

    /// How long an "inactive" answer is reused, so that a client retrying with a dead token
    /// does not reach the introspection endpoint on every request.
    pub fn negative_ttl(mut self, ttl: Duration) -> Self {
        self.negative_ttl = ttl;
        self
    }

    /// Keeps these members of introspection answers in cached results too, for the
    /// application to read through `Principal::introspection().extra()`. By default a cached
    /// result holds only what decisions and `Principal` read (client, scopes, times, subject,
    /// audiences, issuer, token type, `cnf`): a node holds a million tokens in a few hundred
    /// megabytes, and results about one client and subject share one description.
    pub fn keep_members(mut self, names: &'static [&'static str]) -> Self {
        self.keep = names;
        self
    }

    /// How long `result` may be reused from `wall_now`: an active one until its `exp` and at
    /// most the maximum age, an inactive one the negative TTL.
    pub(crate) fn ttl(&self, result: &Introspection, wall_now: SystemTime) -> Duration {
        if result.active() {
            let left = match result.expires_at() {
                Some(exp) => exp.duration_since(wall_now).unwrap_or(Duration::ZERO),
                None => self.max_age,
            };
            left.min(self.max_age)
        } else {
            self.negative_ttl
        }
    }
}

/// A token's cache key.
pub type Key = [u8; 32];

/// A token's cache key: its SHA-256.
pub fn key(token: &str) -> Key {
    let digest = ring::digest::digest(&ring::digest::SHA256, token.as_bytes());
    let mut key = [0; 32];
    key.copy_from_slice(digest.as_ref());
    key
}

struct Entry {
    result: Arc<Introspection>,
    /// Milliseconds after the cache's epoch (8 bytes where an `Instant` takes 16).
    until: u64,
    seq: u64,
}

#[derive(Default)]
struct Inner {
    map: HashMap<Key, Entry>,
    /// Insertion order, for eviction; stale items (replaced entries) are skipped.
    order: VecDeque<(Key, u64)>,
    seq: u64,
    /// The descriptions cached results share.
    pool: IntrospectionPool,
    /// The pool's size after its last pruning.
    pruned_at: usize,
}

/// The node's cache of validation results (public only for the memory benchmark).
pub struct IntrospectionCache {
    pub(crate) config: CacheConfig,
    epoch: Instant,
    inner: Mutex<Inner>,
}

impl IntrospectionCache {
    /// An empty cache.
    pub fn new(config: CacheConfig) -> Self {
        Self {
            config,
            epoch: Instant::now(),
            inner: Mutex::new(Inner::default()),
        }
    }

    fn millis(&self, at: Instant) -> u64 {
        u64::try_from(at.saturating_duration_since(self.epoch).as_millis()).unwrap_or(u64::MAX)
    }

    fn lock(&self) -> std::sync::MutexGuard<'_, Inner> {
        self.inner.lock().unwrap_or_else(|e| e.into_inner())
    }

    /// The result for `key`, if kept and fresh at `now`.
    pub fn get(&self, key: &Key, now: Instant) -> Option<Arc<Introspection>> {
        if self.config.capacity == 0 {
            return None;
        }
        let mut inner = self.lock();
        match inner.map.get(key) {
            Some(entry) if entry.until > self.millis(now) => Some(Arc::clone(&entry.result)),
            Some(_) => {
                inner.map.remove(key);
                None
            }
            None => None,
        }
    }

    /// Keeps `result` for as long as the configuration and the token's `exp` allow.
    pub fn insert(&self, key: Key, result: Arc<Introspection>, now: Instant, wall_now: SystemTime) {
        self.insert_within(key, result, now, wall_now, Duration::MAX);
    }

    /// Keeps `result` as [`insert`](Self::insert) does, and never longer than `limit` (what is
    /// left of a shared record's time).
    pub(crate) fn insert_within(
        &self,
        key: Key,
        result: Arc<Introspection>,
        now: Instant,
        wall_now: SystemTime,
        limit: Duration,
    ) {
        let ttl = self.config.ttl(&result, wall_now).min(limit);
        if self.config.capacity == 0 || ttl.is_zero() {
            return;
        }
        let Some(until) = now.checked_add(ttl) else {
            return;
        };
        let until = self.millis(until);
        let mut inner = self.lock();
        let inner = &mut *inner;
        while inner.map.len() >= self.config.capacity && !inner.map.contains_key(&key) {
            let Some((old, seq)) = inner.order.pop_front() else {
                break;
            };
            if inner.map.get(&old).is_some_and(|e| e.seq == seq) {
                inner.map.remove(&old);
            }
        }
        inner.seq += 1;
        let seq = inner.seq;
        let result = Arc::new(result.compacted(&mut inner.pool, self.config.keep));
        if inner.pool.len() > 2 * inner.pruned_at.max(1024) {
            inner.pool.prune();
            inner.pruned_at = inner.pool.len();
        }
        inner.map.insert(key, Entry { result, until, seq });
        inner.order.push_back((key, seq));
        // Replaced and expired entries leave stale items behind; drop them before the queue
        // outgrows the map.
        if inner.order.len() > 2 * self.config.capacity {
            let map = &inner.map;
            inner
                .order
                .retain(|(k, s)| map.get(k).is_some_and(|e| e.seq == *s));
        }
    }

    #[cfg(test)]
    fn len(&self) -> usize {
        self.lock().map.len()
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    fn active(exp: Option<u64>) -> Arc<Introspection> {
        let body = match exp {
            Some(exp) => format!(r#"{{"active":true,"client_id":"c","exp":{exp}}}"#),
            None => r#"{"active":true,"client_id":"c"}"#.to_owned(),
        };
        let r = oauth_core::http::Response::builder()
            .status(200)
            .body(body)
            .unwrap();
        Arc::new(oauth_core::parse_introspection_response(&r).unwrap())
    }

    fn wall(secs: u64) -> SystemTime {
        SystemTime::UNIX_EPOCH + Duration::from_secs(secs)
    }

    #[test]
    fn lifetimes() {
        let cache = IntrospectionCache::new(
            CacheConfig::new()
                .max_age(Duration::from_secs(60))
                .negative_ttl(Duration::from_secs(5)),
        );
        let t0 = Instant::now();
        let s = Duration::from_secs;
        // Bounded by exp (10 s left).
        cache.insert([1; 32], active(Some(1010)), t0, wall(1000));
        assert!(cache.get(&[1; 32], t0 + s(9)).is_some());
        assert!(cache.get(&[1; 32], t0 + s(10)).is_none());
        // Bounded by max age.
        cache.insert([2; 32], active(Some(5000)), t0, wall(1000));
        assert!(cache.get(&[2; 32], t0 + s(59)).is_some());
        assert!(cache.get(&[2; 32], t0 + s(60)).is_none());
        cache.insert([3; 32], active(None), t0, wall(1000));
        assert!(cache.get(&[3; 32], t0 + s(60)).is_none());
        // Negative results briefly.
        cache.insert([4; 32], Arc::new(Introspection::inactive()), t0, wall(1000));
        assert!(cache.get(&[4; 32], t0 + s(4)).is_some());
        assert!(cache.get(&[4; 32], t0 + s(5)).is_none());
        // Already expired: not kept at all.
        cache.insert([5; 32], active(Some(999)), t0, wall(1000));
        assert!(cache.get(&[5; 32], t0).is_none());
        // Disabled.
        let off = IntrospectionCache::new(CacheConfig::disabled());
        off.insert([1; 32], active(None), t0, wall(1000));
        assert!(off.get(&[1; 32], t0).is_none());
    }

    #[test]
    fn bounded_and_evicts_oldest() {
        let cache = IntrospectionCache::new(CacheConfig::new().capacity(3));
        let t0 = Instant::now();
        for i in 0..10u8 {
            cache.insert([i; 32], active(None), t0, wall(0));
            assert!(cache.len() <= 3);
        }
        assert!(cache.get(&[9; 32], t0).is_some());
        assert!(cache.get(&[6; 32], t0).is_none());
        // Re-inserting one key many times keeps the queue bounded too.
        for _ in 0..100 {
            cache.insert([9; 32], active(None), t0, wall(0));
        }
        assert!(cache.lock().order.len() <= 6);
        assert_eq!(cache.len(), 3);
    }

    #[test]
    fn key_is_a_digest() {
        let k = key("abc");
        // SHA-256("abc"), FIPS 180-2 appendix B.1.
        assert_eq!(k[..4], [0xba, 0x78, 0x16, 0xbf]);
    }
}
