//! Validation results shared by a fleet of gateways: one introspection call per token for the
//! whole fleet, not one per node.
//!
//! The store is oauth-runtime's [`FleetStore`], the fleet's one store (the token sources'
//! too), and the coordination is the runtime's [`leased`] driver of oauth-core's
//! `LeasedFetch` machine: look, take the lease, look again, introspect, save, release — or
//! wait to be woken by the holder's release. A record is the compacted introspection result
//! (RFC 7662 JSON: what decisions read) and the time it may be used until, sealed by the
//! runtime's [`Sealer`] (AES-256-GCM, key rotation) with the token's digest and the
//! introspection endpoint and client it came from as associated data — so a corrupt, foreign,
//! moved or other-gateway value is ignored, never served, and the store holds no readable
//! personal data. When the store fails, each node validates by itself (its local cache still
//! in front) and leaves the store alone for a few seconds.

use std::fmt;
use std::fmt::Write as _;
use std::future::Future;
use std::sync::Arc;
use std::sync::atomic::{AtomicU64, Ordering};
use std::time::{Duration, Instant, SystemTime};

use oauth_core::resource_server::gateway::{CacheConfig, Outcome, TokenKey};
use oauth_core::{Introspection, IntrospectionPool};
use oauth_runtime::{FleetStore, LeaseSlot, Leased, Sealer, StoreKey, holder_name, leased};

/// The records' associated-data tag (a version of their contents).
const VERSION: &[u8] = b"oauth-gateway:v2\0";

/// How long a node leaves a failing store alone.
const BACK_OFF: Duration = Duration::from_secs(5);

/// The shared cache as a gateway uses it: the store, the keys, what records are bound to, the
/// lease.
#[derive(Clone)]
pub(crate) struct Shared {
    store: Arc<dyn FleetStore>,
    sealer: Sealer,
    /// This node's name on the leases it takes (random), so that only it releases them.
    holder: Arc<str>,
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

impl Shared {
    pub(crate) fn new(store: Arc<dyn FleetStore>, key: StoreKey, lease: Duration) -> Self {
        Self {
            store,
            sealer: Sealer::new(key),
            holder: holder_name("gw-").into(),
            binding: Arc::from(&b""[..]),
            lease,
            down_until: Arc::new(AtomicU64::new(0)),
            epoch: Instant::now(),
        }
    }

    pub(crate) fn previous_key(mut self, key: StoreKey) -> Self {
        self.sealer = self.sealer.previous_key(key);
        self
    }

    /// How long a node waits for another's validation.
    pub(crate) fn lease(&self) -> Duration {
        self.lease
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

    fn aad(&self, key: &TokenKey) -> Vec<u8> {
        let mut aad = Vec::with_capacity(VERSION.len() + key.len() + self.binding.len());
        aad.extend_from_slice(VERSION);
        aad.extend_from_slice(key);
        aad.extend_from_slice(&self.binding);
        aad
    }

    /// The record for `result`, usable until `until` (wall clock).
    pub(crate) fn seal(
        &self,
        key: &TokenKey,
        result: &Introspection,
        until: SystemTime,
    ) -> Option<Vec<u8>> {
        let until = until
            .duration_since(SystemTime::UNIX_EPOCH)
            .ok()
            .and_then(|d| u64::try_from(d.as_millis()).ok())?;
        let mut plain = until.to_be_bytes().to_vec();
        plain.extend_from_slice(&result.to_json());
        self.sealer.seal(&self.aad(key), plain).ok()
    }

    /// The result in `record` and how much longer it may be used, if it is one of ours for this
    /// key and still current at `now`; anything else is `None`.
    pub(crate) fn open(
        &self,
        key: &TokenKey,
        record: &[u8],
        now: SystemTime,
    ) -> Option<(Introspection, Duration)> {
        let plain = self.sealer.open(&self.aad(key), record)?;
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

    fn down(&self) -> bool {
        self.millis() < self.down_until.load(Ordering::Acquire)
    }

    /// After a failure: the store is left alone for a while.
    fn failed(&self) {
        let until = self.millis().saturating_add(BACK_OFF.as_millis() as u64);
        self.down_until.store(until, Ordering::Release);
    }

    /// Validates `key` for the fleet: another node's record if there is one (or once the
    /// node validating it releases its lease), else `introspect` under the lease, its result
    /// saved for the fleet (compacted, for as long as `config` would keep it). Returns the
    /// outcome and what is left of a found record's time. A store that failed recently is not
    /// asked.
    pub(crate) async fn validate<F, Fut>(
        &self,
        key: &TokenKey,
        config: &CacheConfig,
        mut introspect: F,
    ) -> (Outcome, Duration)
    where
        F: FnMut() -> Fut,
        Fut: Future<Output = Outcome>,
    {
        if self.down() {
            return (introspect().await, Duration::MAX);
        }
        let record = record_name(key);
        let lease = format!("{record}:lease");
        let slot = LeaseSlot {
            record: &record,
            lease: &lease,
            holder: &self.holder,
            hold: self.lease,
            patience: self.lease,
        };
        let open = |bytes: &[u8]| {
            let opened = self.open(key, bytes, SystemTime::now());
            if opened.is_none() {
                tracing::warn!("shared cache: a record that is not ours was ignored");
            }
            opened
        };
        let seal = |outcome: &Outcome| {
            let result = outcome.as_ref().ok()?;
            let wall = SystemTime::now();
            let ttl = config.ttl(result, wall);
            if ttl.is_zero() {
                return None;
            }
            let compact = result.compacted(&mut IntrospectionPool::new(), config.kept_members());
            let record = self.seal(key, &compact, wall.checked_add(ttl)?)?;
            Some((record, Some(ttl)))
        };
        let (found, store_failed) =
            leased(self.store.as_ref(), slot, open, &mut introspect, seal).await;
        if store_failed {
            self.failed();
        }
        match found {
            Leased::Found((result, left)) => (Ok(Arc::new(result)), left),
            Leased::Fetched(outcome) => (outcome, Duration::MAX),
        }
    }

    /// Records a DPoP proof's use for the fleet (`SET NX PX`): `false` if another node (or
    /// this one) saw it already. A store that fails cannot tell: the node's own replay set
    /// has decided, and the answer is `true`.
    pub(crate) async fn first_use(&self, replay: &TokenKey, remember: Duration) -> bool {
        if self.down() {
            return true;
        }
        let mut name = String::with_capacity(20 + 64);
        name.push_str("oauth-gateway:dpop:");
        hex_into(&mut name, replay);
        match self.store.try_lease(&name, &self.holder, remember).await {
            Ok(first) => first,
            Err(e) => {
                tracing::warn!(error = %e, "shared cache unavailable; DPoP replays checked on this node only");
                self.failed();
                true
            }
        }
    }
}

/// `oauth-gateway:v2:<the token's SHA-256, hex>`: a record's name in the store.
fn record_name(key: &TokenKey) -> String {
    let mut name = String::with_capacity(17 + 64);
    name.push_str("oauth-gateway:v2:");
    hex_into(&mut name, key);
    name
}

fn hex_into(out: &mut String, bytes: &[u8]) {
    for b in bytes {
        let _ = write!(out, "{b:02x}");
    }
}

#[cfg(test)]
mod tests {
    use super::*;
    use oauth_runtime::{StoreError, StoreFuture};

    fn ready<'a, T: Send + 'a>(value: Result<T, StoreError>) -> StoreFuture<'a, T> {
        Box::pin(std::future::ready(value))
    }

    struct Nothing;

    impl FleetStore for Nothing {
        fn load<'a>(&'a self, _: &'a str) -> StoreFuture<'a, Option<Vec<u8>>> {
            ready(Ok(None))
        }
        fn save<'a>(&'a self, _: &'a str, _: &'a [u8], _: Option<Duration>) -> StoreFuture<'a, ()> {
            ready(Ok(()))
        }
        fn try_lease<'a>(&'a self, _: &'a str, _: &'a str, _: Duration) -> StoreFuture<'a, bool> {
            ready(Ok(true))
        }
        fn release<'a>(&'a self, _: &'a str, _: &'a str) -> StoreFuture<'a, ()> {
            ready(Ok(()))
        }
        fn wait_released<'a>(&'a self, _: &'a str, _: Instant) -> StoreFuture<'a, ()> {
            ready(Ok(()))
        }
    }

    fn key(id: &str, byte: u8) -> StoreKey {
        StoreKey::new(id, &[byte; 32]).unwrap()
    }

    fn active() -> Introspection {
        let body = r#"{"active":true,"client_id":"app","scope":"a b","exp":4000000000}"#;
        oauth_core::parse_introspection_response(&oauth_core::http::Response::new(body)).unwrap()
    }

    #[test]
    fn records_open_only_under_their_key_secret_and_binding_and_in_time() {
        let shared = Shared::new(Arc::new(Nothing), key("k1", 7), Duration::from_secs(1))
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
        let other = Shared::new(Arc::new(Nothing), key("k1", 8), Duration::from_secs(1))
            .bound_to("https://as.example/introspect", "gw");
        assert!(other.open(&[1; 32], &record, now).is_none());
        let elsewhere = Shared::new(Arc::new(Nothing), key("k1", 7), Duration::from_secs(1))
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
        // Rotation: a node with a new key still opens records sealed with the old one.
        let rotated = Shared::new(Arc::new(Nothing), key("k2", 9), Duration::from_secs(1))
            .previous_key(key("k1", 7))
            .bound_to("https://as.example/introspect", "gw");
        assert!(rotated.open(&[1; 32], &record, now).is_some());
    }
}
