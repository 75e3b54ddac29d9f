//! Validation results shared by a fleet of gateways: one introspection call per token for the
//! whole fleet, not one per node.
//!
//! The store (Redis in `oauth-redis`) holds sealed records under the token's SHA-256: a record
//! is the compacted introspection result (RFC 7662 JSON: what decisions read) and the time it
//! may be used until, encrypted with AES-256-GCM under a key every node has, authenticated with
//! the token's digest and the introspection endpoint and client it came from — so a corrupt,
//! foreign, moved or other-gateway value is ignored, never served, and the store holds no
//! readable personal data. A node that misses takes a lease for the token (`SET NX PX`); the
//! others wait for its record (polling, at most the lease) instead of calling the endpoint too.
//! When the store fails, each node validates by itself (its local cache still in front) and
//! leaves the store alone for a few seconds.

use std::fmt;
use std::sync::Arc;
use std::time::{Duration, Instant, SystemTime};

use std::sync::atomic::{AtomicU64, Ordering};

use oauth_core::{Introspection, IntrospectionPool};
use ring::aead;
use ring::rand::SecureRandom as _;

use crate::cache::{CacheConfig, Key};

/// A store for the fleet's validation results, keyed by the token's SHA-256 (never the token).
/// Blocking: the async gateway calls it on tokio's blocking pool.
pub trait SharedCache: Send + Sync + 'static {
    /// The record stored for `key`, if any.
    fn get(&self, key: &[u8; 32]) -> Result<Option<Vec<u8>>, SharedCacheError>;

    /// Stores `record` for `ttl`.
    fn put(&self, key: &[u8; 32], record: &[u8], ttl: Duration) -> Result<(), SharedCacheError>;

    /// Takes the lease to validate `key` for `ttl` if nobody holds it (`SET NX PX`).
    fn try_lease(&self, key: &[u8; 32], ttl: Duration) -> Result<bool, SharedCacheError>;

    /// Gives the lease back (the record was stored, or validation failed).
    fn release(&self, key: &[u8; 32]) -> Result<(), SharedCacheError>;
}

impl<T: SharedCache + ?Sized> SharedCache for Arc<T> {
    fn get(&self, key: &[u8; 32]) -> Result<Option<Vec<u8>>, SharedCacheError> {
        (**self).get(key)
    }

    fn put(&self, key: &[u8; 32], record: &[u8], ttl: Duration) -> Result<(), SharedCacheError> {
        (**self).put(key, record, ttl)
    }

    fn try_lease(&self, key: &[u8; 32], ttl: Duration) -> Result<bool, SharedCacheError> {
        (**self).try_lease(key, ttl)
    }

    fn release(&self, key: &[u8; 32]) -> Result<(), SharedCacheError> {
        (**self).release(key)
    }
}

/// A shared cache that could not be used (connection refused, timeout, protocol error).
#[derive(Clone, Debug, PartialEq, Eq)]
pub struct SharedCacheError(String);

impl SharedCacheError {
    /// An error with this description (which must hold no secret).
    pub fn new(message: impl Into<String>) -> Self {
        Self(message.into())
    }
}

impl fmt::Display for SharedCacheError {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        write!(f, "shared cache: {}", self.0)
    }
}

impl std::error::Error for SharedCacheError {}

const VERSION: &[u8] = b"og2";
const NONCE: usize = aead::NONCE_LEN;

/// How long a node leaves a failing store alone.
const BACK_OFF: Duration = Duration::from_secs(5);

/// The shared cache as a gateway uses it: the store, the sealing key, what records are bound to,
/// the lease.
#[derive(Clone)]
pub(crate) struct Shared {
    store: Arc<dyn SharedCache>,
    /// (`None` is not reached: AES-256-GCM takes any 32-byte key; without one nothing opens.)
    key: Option<Arc<aead::LessSafeKey>>,
    /// The introspection endpoint and client, authenticated with every record.
    binding: Arc<[u8]>,
    lease: Duration,
    /// Milliseconds after `epoch` until which the store is not asked (after a failure).
    down_until: Arc<AtomicU64>,
    epoch: Instant,
}

impl fmt::Debug for Shared {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        f.debug_struct("Shared")
            .field("lease", &self.lease)
            .finish_non_exhaustive()
    }
}

/// What a node does after looking in the shared cache.
#[cfg_attr(not(feature = "tower"), allow(dead_code))]
pub(crate) enum Found {
    /// A record another node stored, and how much longer it may be used.
    Result(Arc<Introspection>, Duration),
    /// This node holds the lease: validate, then [`Shared::store`].
    Leased,
    /// The store failed or nobody answered within the lease: validate alone.
    Alone,
}

#[cfg_attr(not(feature = "tower"), allow(dead_code))]
impl Shared {
    pub(crate) fn new(store: Arc<dyn SharedCache>, secret: &[u8; 32], lease: Duration) -> Self {
        let key = aead::UnboundKey::new(&aead::AES_256_GCM, secret)
            .ok()
            .map(|k| Arc::new(aead::LessSafeKey::new(k)));
        Self {
            store,
            key,
            binding: Arc::from(&b""[..]),
            lease,
            down_until: Arc::new(AtomicU64::new(0)),
            epoch: Instant::now(),
        }
    }

    /// Binds records to the introspection endpoint and client they came from.
    pub(crate) fn bound_to(mut self, endpoint: &str, client_id: &str) -> Self {
        let mut binding = Vec::with_capacity(endpoint.len() + client_id.len() + 1);
        binding.extend_from_slice(endpoint.as_bytes());
        binding.push(0);
        binding.extend_from_slice(client_id.as_bytes());
        self.binding = binding.into();
        self
    }

    fn aad(&self, key: &Key) -> Vec<u8> {
        let mut aad = Vec::with_capacity(VERSION.len() + key.len() + self.binding.len());
        aad.extend_from_slice(VERSION);
        aad.extend_from_slice(key);
        aad.extend_from_slice(&self.binding);
        aad
    }

    /// The record for `result`, usable until `until` (wall clock).
    pub(crate) fn seal(
        &self,
        key: &Key,
        result: &Introspection,
        until: SystemTime,
    ) -> Option<Vec<u8>> {
        let until = until
            .duration_since(SystemTime::UNIX_EPOCH)
            .ok()
            .and_then(|d| u64::try_from(d.as_millis()).ok())?;
        let mut nonce = [0u8; NONCE];
        ring::rand::SystemRandom::new().fill(&mut nonce).ok()?;
        let mut data = until.to_be_bytes().to_vec();
        data.extend_from_slice(&result.to_json());
        self.key
            .as_ref()?
            .seal_in_place_append_tag(
                aead::Nonce::assume_unique_for_key(nonce),
                aead::Aad::from(self.aad(key)),
                &mut data,
            )
            .ok()?;
        let mut record = Vec::with_capacity(VERSION.len() + NONCE + data.len());
        record.extend_from_slice(VERSION);
        record.extend_from_slice(&nonce);
        record.extend_from_slice(&data);
        Some(record)
    }

    /// The result in `record` and how much longer it may be used, if it is one of ours for this
    /// key and still current at `now`; anything else is `None`.
    pub(crate) fn open(
        &self,
        key: &Key,
        record: &[u8],
        now: SystemTime,
    ) -> Option<(Introspection, Duration)> {
        let rest = record.strip_prefix(VERSION)?;
        let (nonce, sealed) = rest.split_at_checked(NONCE)?;
        let nonce = aead::Nonce::try_assume_unique_for_key(nonce).ok()?;
        let mut sealed = sealed.to_vec();
        let plain = self
            .key
            .as_ref()?
            .open_in_place(nonce, aead::Aad::from(self.aad(key)), &mut sealed)
            .ok()?;
        let (until, payload) = plain.split_at_checked(8)?;
        let until = u64::from_be_bytes(until.try_into().ok()?);
        let until = SystemTime::UNIX_EPOCH.checked_add(Duration::from_millis(until))?;
        let left = until.duration_since(now).ok().filter(|d| !d.is_zero())?;
        let answer = oauth_core::http::Response::new(payload);
        let result = oauth_core::parse_introspection_response(&answer).ok()?;
        Some((result, left))
    }

    fn millis(&self) -> u64 {
        u64::try_from(self.epoch.elapsed().as_millis()).unwrap_or(u64::MAX)
    }

    /// After a failure: the store is left alone for a while.
    fn failed(&self, e: &SharedCacheError) {
        tracing::warn!(error = %e, "shared cache unavailable; validating locally");
        let until = self.millis().saturating_add(BACK_OFF.as_millis() as u64);
        self.down_until.store(until, Ordering::Release);
    }

    /// The record stored for `key`, opened, if there is a current one of ours.
    fn look(&self, key: &Key) -> Result<Option<(Introspection, Duration)>, SharedCacheError> {
        let Some(record) = self.store.get(key)? else {
            return Ok(None);
        };
        let opened = self.open(key, &record, SystemTime::now());
        if opened.is_none() {
            tracing::warn!("shared cache: a record that is not ours was ignored");
        }
        Ok(opened)
    }

    /// Looks for `key`'s record; if there is none, takes the lease or waits for the holder's
    /// record (polling every 20 ms, at most the lease). A store that failed recently is not asked.
    pub(crate) fn find(&self, key: &Key) -> Found {
        if self.millis() < self.down_until.load(Ordering::Acquire) {
            return Found::Alone;
        }
        let deadline = Instant::now().checked_add(self.lease);
        loop {
            match self.look(key) {
                Ok(Some((result, left))) => return Found::Result(Arc::new(result), left),
                Ok(None) => {}
                Err(e) => {
                    self.failed(&e);
                    return Found::Alone;
                }
            }
            match self.store.try_lease(key, self.lease) {
                // The previous holder may have stored its record and given the lease back
                // between the look above and this lease: look again before validating.
                Ok(true) => match self.look(key) {
                    Ok(Some((result, left))) => {
                        if let Err(e) = self.store.release(key) {
                            tracing::warn!(error = %e, "shared cache: lease not released");
                        }
                        return Found::Result(Arc::new(result), left);
                    }
                    Ok(None) => return Found::Leased,
                    Err(e) => {
                        self.failed(&e);
                        return Found::Leased;
                    }
                },
                Ok(false) if deadline.is_some_and(|d| Instant::now() < d) => {
                    std::thread::sleep(Duration::from_millis(20));
                }
                Ok(false) => return Found::Alone,
                Err(e) => {
                    self.failed(&e);
                    return Found::Alone;
                }
            }
        }
    }

    /// Records a DPoP proof's use for the fleet (`SET NX PX`): `false` if another node (or
    /// this one) saw it already. A store that fails cannot tell: the node's own replay cache
    /// has decided, and the answer is `true`.
    pub(crate) fn first_use(&self, replay: &Key, remember: Duration) -> bool {
        if self.millis() < self.down_until.load(Ordering::Acquire) {
            return true;
        }
        match self.store.try_lease(replay, remember) {
            Ok(first) => first,
            Err(e) => {
                self.failed(&e);
                true
            }
        }
    }

    /// Stores the result this node obtained under its lease (compacted, for as long as the
    /// local cache would keep it) and gives the lease back; a failure gives the lease back only.
    pub(crate) fn store(
        &self,
        key: &Key,
        result: Option<&Introspection>,
        config: &CacheConfig,
        wall_now: SystemTime,
    ) {
        if let Some(result) = result {
            let ttl = config.ttl(result, wall_now);
            let compact = result.compacted(&mut IntrospectionPool::new(), config.keep);
            let record = wall_now
                .checked_add(ttl)
                .and_then(|until| self.seal(key, &compact, until));
            if !ttl.is_zero()
                && let Some(record) = record
                && let Err(e) = self.store.put(key, &record, ttl)
            {
                self.failed(&e);
            }
        }
        if let Err(e) = self.store.release(key) {
            tracing::warn!(error = %e, "shared cache: lease not released");
        }
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    struct Nothing;

    impl SharedCache for Nothing {
        fn get(&self, _: &[u8; 32]) -> Result<Option<Vec<u8>>, SharedCacheError> {
            Ok(None)
        }
        fn put(&self, _: &[u8; 32], _: &[u8], _: Duration) -> Result<(), SharedCacheError> {
            Ok(())
        }
        fn try_lease(&self, _: &[u8; 32], _: Duration) -> Result<bool, SharedCacheError> {
            Ok(true)
        }
        fn release(&self, _: &[u8; 32]) -> Result<(), SharedCacheError> {
            Ok(())
        }
    }

    fn active() -> Introspection {
        let body = r#"{"active":true,"client_id":"app","scope":"a b","exp":4000000000}"#;
        oauth_core::parse_introspection_response(&oauth_core::http::Response::new(body)).unwrap()
    }

    #[test]
    fn records_open_only_under_their_key_secret_and_binding_and_in_time() {
        let shared = Shared::new(Arc::new(Nothing), &[7; 32], Duration::from_secs(1))
            .bound_to("https://as.example/introspect", "gw");
        let now = SystemTime::now();
        let record = shared
            .seal(&[1; 32], &active(), now + Duration::from_secs(60))
            .unwrap();
        let (opened, left) = shared.open(&[1; 32], &record, now).unwrap();
        assert_eq!(opened.client_id(), Some("app"));
        assert!(left <= Duration::from_secs(60) && left > Duration::from_secs(59));
        // Nothing readable in the store.
        assert!(!record.windows(3).any(|w| w == b"app"));
        // Past its time; another token's slot; another fleet's secret; another gateway's
        // endpoint or client; a flipped bit; a truncation; garbage.
        assert!(
            shared
                .open(&[1; 32], &record, now + Duration::from_secs(61))
                .is_none()
        );
        assert!(shared.open(&[2; 32], &record, now).is_none());
        let other = Shared::new(Arc::new(Nothing), &[8; 32], Duration::from_secs(1))
            .bound_to("https://as.example/introspect", "gw");
        assert!(other.open(&[1; 32], &record, now).is_none());
        let elsewhere = Shared::new(Arc::new(Nothing), &[7; 32], Duration::from_secs(1))
            .bound_to("https://as.example/introspect", "gw2");
        assert!(elsewhere.open(&[1; 32], &record, now).is_none());
        for i in 0..record.len() {
            let mut bad = record.clone();
            bad[i] ^= 1;
            assert!(
                shared.open(&[1; 32], &bad, now).is_none(),
                "bit flipped at {i}"
            );
        }
        for n in 0..record.len() {
            assert!(shared.open(&[1; 32], &record[..n], now).is_none());
        }
        assert!(
            shared
                .open(&[1; 32], br#"{"active":true,"client_id":"x"}"#, now)
                .is_none()
        );
    }

    /// Another node stores its record and gives the lease back between this node's first
    /// look and its lease: the record is used, not validated a second time.
    #[test]
    fn a_record_stored_just_before_the_lease_is_used() {
        use std::sync::Mutex;

        #[derive(Default)]
        struct Racy {
            record: Mutex<Option<Vec<u8>>>,
            gets: AtomicU64,
            released: AtomicU64,
        }
        impl SharedCache for Racy {
            fn get(&self, _: &[u8; 32]) -> Result<Option<Vec<u8>>, SharedCacheError> {
                // The first look misses; the record is there from the second on.
                if self.gets.fetch_add(1, Ordering::SeqCst) == 0 {
                    return Ok(None);
                }
                Ok(self.record.lock().unwrap().clone())
            }
            fn put(&self, _: &[u8; 32], _: &[u8], _: Duration) -> Result<(), SharedCacheError> {
                Ok(())
            }
            fn try_lease(&self, _: &[u8; 32], _: Duration) -> Result<bool, SharedCacheError> {
                Ok(true)
            }
            fn release(&self, _: &[u8; 32]) -> Result<(), SharedCacheError> {
                self.released.fetch_add(1, Ordering::SeqCst);
                Ok(())
            }
        }

        let store = Arc::new(Racy::default());
        let shared = Shared::new(store.clone(), &[7; 32], Duration::from_secs(1));
        let until = SystemTime::now() + Duration::from_secs(60);
        *store.record.lock().unwrap() = shared.seal(&[1; 32], &active(), until);
        match shared.find(&[1; 32]) {
            Found::Result(result, _) => assert_eq!(result.client_id(), Some("app")),
            Found::Leased => panic!("validated although the record was there"),
            Found::Alone => panic!("alone"),
        }
        assert_eq!(store.gets.load(Ordering::SeqCst), 2);
        assert_eq!(store.released.load(Ordering::SeqCst), 1);
    }

    #[test]
    fn a_huge_lease_does_not_overflow() {
        let shared = Shared::new(Arc::new(Nothing), &[7; 32], Duration::MAX);
        assert!(matches!(shared.find(&[1; 32]), Found::Leased));
    }
}
