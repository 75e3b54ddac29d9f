//! Validation results shared by a fleet of gateways: one introspection call per token for the
//! whole fleet, not one per node.
//!
//! The store is oauth-runtime's [`TokenStore`], the one fleet store trait (the token sources'
//! too): `oauth-redis`'s `AsyncRedisStore` for the async gateway, `RedisStore` where blocking
//! is fine. It holds sealed records under the token's SHA-256: a record
//! is the compacted introspection result (RFC 7662 JSON: what decisions read) and the time it
//! may be used until, encrypted with AES-256-GCM under a key every node has, authenticated with
//! the token's digest and the introspection endpoint and client it came from — so a corrupt,
//! foreign, moved or other-gateway value is ignored, never served, and the store holds no
//! readable personal data. A node that misses takes a lease for the token (`SET NX PX`, held
//! under this node's own holder name and released only by it); the others wait for its record
//! (polling, at most the lease) instead of calling the endpoint too.
//! When the store fails, each node validates by itself (its local cache still in front) and
//! leaves the store alone for a few seconds.

use std::fmt;
use std::fmt::Write as _;
use std::future::Future;
use std::sync::Arc;
use std::sync::atomic::{AtomicU64, Ordering};
use std::time::{Duration, Instant, SystemTime};

use oauth_core::{Introspection, IntrospectionPool};
use oauth_runtime::{StoreError, TokenStore};
use ring::aead;
use ring::rand::SecureRandom as _;

use crate::cache::{CacheConfig, Key};

const VERSION: &[u8] = b"og2";
const NONCE: usize = aead::NONCE_LEN;

/// How long a node leaves a failing store alone.
const BACK_OFF: Duration = Duration::from_secs(5);

/// The shared cache as a gateway uses it: the store, the sealing key, what records are bound to,
/// the lease.
#[derive(Clone)]
pub(crate) struct Shared {
    store: Arc<dyn TokenStore>,
    /// This node's name on the leases it takes (random), so that only it releases them.
    holder: Arc<str>,
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
    pub(crate) fn new(store: Arc<dyn TokenStore>, secret: &[u8; 32], lease: Duration) -> Self {
        let key = aead::UnboundKey::new(&aead::AES_256_GCM, secret)
            .ok()
            .map(|k| Arc::new(aead::LessSafeKey::new(k)));
        let mut id = [0u8; 16];
        // A failing OS random source leaves zeros: the leases still work, only the holder
        // names of such nodes could coincide.
        let _ = ring::rand::SystemRandom::new().fill(&mut id);
        let mut holder = String::with_capacity(40);
        holder.push_str("gw-");
        for b in id {
            let _ = write!(holder, "{b:02x}");
        }
        Self {
            store,
            holder: holder.into(),
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
    fn failed(&self, e: &StoreError) {
        tracing::warn!(error = %e, "shared cache unavailable; validating locally");
        let until = self.millis().saturating_add(BACK_OFF.as_millis() as u64);
        self.down_until.store(until, Ordering::Release);
    }

    /// The record stored for `key`, opened, if there is a current one of ours.
    async fn look(&self, key: &Key) -> Result<Option<(Introspection, Duration)>, StoreError> {
        let Some(record) = self.store.load(&record_name(key)).await? else {
            return Ok(None);
        };
        let opened = self.open(key, &record, SystemTime::now());
        if opened.is_none() {
            tracing::warn!("shared cache: a record that is not ours was ignored");
        }
        Ok(opened)
    }

    async fn release(&self, key: &Key) {
        if let Err(e) = self.store.release(&lease_name(key), &self.holder).await {
            tracing::warn!(error = %e, "shared cache: lease not released");
        }
    }

    /// Looks for `key`'s record; if there is none, takes the lease or waits for the holder's
    /// record (looking again every 20 ms with `sleep`, at most the lease). A store that failed
    /// recently is not asked.
    pub(crate) async fn find<S, F>(&self, key: &Key, sleep: S) -> Found
    where
        S: Fn(Duration) -> F,
        F: Future<Output = ()>,
    {
        if self.millis() < self.down_until.load(Ordering::Acquire) {
            return Found::Alone;
        }
        let deadline = Instant::now().checked_add(self.lease);
        let lease = lease_name(key);
        loop {
            match self.look(key).await {
                Ok(Some((result, left))) => return Found::Result(Arc::new(result), left),
                Ok(None) => {}
                Err(e) => {
                    self.failed(&e);
                    return Found::Alone;
                }
            }
            match self.store.try_lease(&lease, &self.holder, self.lease).await {
                // The previous holder may have stored its record and given the lease back
                // between the look above and this lease: look again before validating.
                Ok(true) => match self.look(key).await {
                    Ok(Some((result, left))) => {
                        self.release(key).await;
                        return Found::Result(Arc::new(result), left);
                    }
                    Ok(None) => return Found::Leased,
                    Err(e) => {
                        self.failed(&e);
                        return Found::Leased;
                    }
                },
                Ok(false) if deadline.is_some_and(|d| Instant::now() < d) => {
                    sleep(Duration::from_millis(20)).await;
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
    pub(crate) async fn first_use(&self, replay: &Key, remember: Duration) -> bool {
        if self.millis() < self.down_until.load(Ordering::Acquire) {
            return true;
        }
        let mut name = String::with_capacity(20 + 64);
        name.push_str("oauth-gateway:dpop:");
        hex_into(&mut name, replay);
        match self.store.try_lease(&name, &self.holder, remember).await {
            Ok(first) => first,
            Err(e) => {
                self.failed(&e);
                true
            }
        }
    }

    /// Stores the result this node obtained under its lease (compacted, for as long as the
    /// local cache would keep it) and gives the lease back; a failure gives the lease back only.
    pub(crate) async fn store(
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
                && let Err(e) = self.store.save(&record_name(key), &record, ttl).await
            {
                self.failed(&e);
            }
        }
        self.release(key).await;
    }
}

/// `oauth-gateway:v1:<the token's SHA-256, hex>`: a record's name in the store.
fn record_name(key: &Key) -> String {
    let mut name = String::with_capacity(17 + 64);
    name.push_str("oauth-gateway:v1:");
    hex_into(&mut name, key);
    name
}

/// The lease on a token's record.
fn lease_name(key: &Key) -> String {
    let mut name = record_name(key);
    name.push_str(":lease");
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
    use oauth_runtime::StoreFuture;

    fn ready<'a, T: Send + 'a>(value: Result<T, StoreError>) -> StoreFuture<'a, T> {
        Box::pin(std::future::ready(value))
    }

    struct Nothing;

    impl TokenStore for Nothing {
        fn load<'a>(&'a self, _: &'a str) -> StoreFuture<'a, Option<Vec<u8>>> {
            ready(Ok(None))
        }
        fn save<'a>(&'a self, _: &'a str, _: &'a [u8], _: Duration) -> StoreFuture<'a, ()> {
            ready(Ok(()))
        }
        fn try_lease<'a>(&'a self, _: &'a str, _: &'a str, _: Duration) -> StoreFuture<'a, bool> {
            ready(Ok(true))
        }
        fn release<'a>(&'a self, _: &'a str, _: &'a str) -> StoreFuture<'a, ()> {
            ready(Ok(()))
        }
    }

    fn no_sleep(_: Duration) -> std::future::Ready<()> {
        std::future::ready(())
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
        impl TokenStore for Racy {
            fn load<'a>(&'a self, _: &'a str) -> StoreFuture<'a, Option<Vec<u8>>> {
                // The first look misses; the record is there from the second on.
                if self.gets.fetch_add(1, Ordering::SeqCst) == 0 {
                    return ready(Ok(None));
                }
                ready(Ok(self.record.lock().unwrap().clone()))
            }
            fn save<'a>(&'a self, _: &'a str, _: &'a [u8], _: Duration) -> StoreFuture<'a, ()> {
                ready(Ok(()))
            }
            fn try_lease<'a>(
                &'a self,
                _: &'a str,
                _: &'a str,
                _: Duration,
            ) -> StoreFuture<'a, bool> {
                ready(Ok(true))
            }
            fn release<'a>(&'a self, _: &'a str, _: &'a str) -> StoreFuture<'a, ()> {
                self.released.fetch_add(1, Ordering::SeqCst);
                ready(Ok(()))
            }
        }

        let store = Arc::new(Racy::default());
        let shared = Shared::new(store.clone(), &[7; 32], Duration::from_secs(1));
        let until = SystemTime::now() + Duration::from_secs(60);
        *store.record.lock().unwrap() = shared.seal(&[1; 32], &active(), until);
        match oauth_runtime::block_on(shared.find(&[1; 32], no_sleep)) {
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
        assert!(matches!(
            oauth_runtime::block_on(shared.find(&[1; 32], no_sleep)),
            Found::Leased
        ));
    }
}
