//! Validation results shared by a fleet of gateways: one introspection call per token for the
//! whole fleet, not one per node.
//!
//! The store (Redis in `oauth-redis`) holds sealed records under the token's SHA-256: a record
//! is the introspection result (RFC 7662 JSON) with an HMAC-SHA256 under a key every node has,
//! bound to the token's digest, so a corrupt, foreign or moved value is ignored — never served.
//! A node that misses takes a lease for the token (`SET NX PX`); the others wait for its record
//! (polling, at most the lease) instead of calling the endpoint too. When the store fails, each
//! node validates by itself (its local cache still in front).

use std::fmt;
use std::sync::Arc;
use std::time::{Duration, Instant, SystemTime};

use oauth_core::Introspection;
use ring::hmac;

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

const VERSION: &[u8] = b"og1";
const TAG: usize = 32;

/// The shared cache as a gateway uses it: the store, the sealing key, the lease.
#[derive(Clone)]
pub(crate) struct Shared {
    store: Arc<dyn SharedCache>,
    key: hmac::Key,
    lease: Duration,
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
    /// A record another node stored.
    Result(Arc<Introspection>),
    /// This node holds the lease: validate, then [`Shared::store`].
    Leased,
    /// The store failed or nobody answered within the lease: validate alone.
    Alone,
}

#[cfg_attr(not(feature = "tower"), allow(dead_code))]
impl Shared {
    pub(crate) fn new(store: Arc<dyn SharedCache>, secret: &[u8; 32], lease: Duration) -> Self {
        Self {
            store,
            key: hmac::Key::new(hmac::HMAC_SHA256, secret),
            lease,
        }
    }

    fn tag(&self, key: &Key, payload: &[u8]) -> hmac::Tag {
        let mut ctx = hmac::Context::with_key(&self.key);
        ctx.update(VERSION);
        ctx.update(key);
        ctx.update(payload);
        ctx.sign()
    }

    /// The record for `result`.
    pub(crate) fn seal(&self, key: &Key, result: &Introspection) -> Vec<u8> {
        let payload = result.to_json();
        let tag = self.tag(key, &payload);
        let mut record = Vec::with_capacity(VERSION.len() + TAG + payload.len());
        record.extend_from_slice(VERSION);
        record.extend_from_slice(tag.as_ref());
        record.extend_from_slice(&payload);
        record
    }

    /// The result in `record`, if it is one of ours for this key; anything else is `None`.
    pub(crate) fn open(&self, key: &Key, record: &[u8]) -> Option<Introspection> {
        let rest = record.strip_prefix(VERSION)?;
        let (tag, payload) = rest.split_at_checked(TAG)?;
        let mut ctx = Vec::with_capacity(VERSION.len() + key.len() + payload.len());
        ctx.extend_from_slice(VERSION);
        ctx.extend_from_slice(key);
        ctx.extend_from_slice(payload);
        hmac::verify(&self.key, &ctx, tag).ok()?;
        let answer = oauth_core::http::Response::new(payload);
        oauth_core::parse_introspection_response(&answer).ok()
    }

    /// Looks for `key`'s record; if there is none, takes the lease or waits for the holder's
    /// record (polling every 20 ms, at most the lease).
    pub(crate) fn find(&self, key: &Key) -> Found {
        let deadline = Instant::now() + self.lease;
        loop {
            match self.store.get(key) {
                Ok(Some(record)) => match self.open(key, &record) {
                    Some(result) => return Found::Result(Arc::new(result)),
                    None => {
                        tracing::warn!("shared cache: a record that is not ours was ignored");
                    }
                },
                Ok(None) => {}
                Err(e) => {
                    tracing::warn!(error = %e, "shared cache unavailable; validating locally");
                    return Found::Alone;
                }
            }
            match self.store.try_lease(key, self.lease) {
                Ok(true) => return Found::Leased,
                Ok(false) if Instant::now() < deadline => {
                    std::thread::sleep(Duration::from_millis(20));
                }
                Ok(false) => return Found::Alone,
                Err(e) => {
                    tracing::warn!(error = %e, "shared cache unavailable; validating locally");
                    return Found::Alone;
                }
            }
        }
    }

    /// Stores the result this node obtained under its lease (for as long as the local cache
    /// would keep it) and gives the lease back; a failure gives the lease back only.
    pub(crate) fn store(
        &self,
        key: &Key,
        result: Option<&Introspection>,
        config: &CacheConfig,
        wall_now: SystemTime,
    ) {
        if let Some(result) = result {
            let ttl = config.ttl(result, wall_now);
            if !ttl.is_zero()
                && let Err(e) = self.store.put(key, &self.seal(key, result), ttl)
            {
                tracing::warn!(error = %e, "shared cache: result not stored");
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
    fn records_open_only_under_their_key_and_secret() {
        let shared = Shared::new(Arc::new(Nothing), &[7; 32], Duration::from_secs(1));
        let record = shared.seal(&[1; 32], &active());
        let opened = shared.open(&[1; 32], &record).unwrap();
        assert_eq!(opened.client_id(), Some("app"));
        // Another token's slot, another fleet's secret, a flipped bit, a truncation, garbage.
        assert!(shared.open(&[2; 32], &record).is_none());
        let other = Shared::new(Arc::new(Nothing), &[8; 32], Duration::from_secs(1));
        assert!(other.open(&[1; 32], &record).is_none());
        for i in 0..record.len() {
            let mut bad = record.clone();
            bad[i] ^= 1;
            assert!(shared.open(&[1; 32], &bad).is_none(), "bit flipped at {i}");
        }
        for n in 0..record.len() {
            assert!(shared.open(&[1; 32], &record[..n]).is_none());
        }
        assert!(
            shared
                .open(&[1; 32], br#"{"active":true,"client_id":"x"}"#)
                .is_none()
        );
    }
}
