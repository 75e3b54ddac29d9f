//! What a fleet of processes shares through one key-value store (Redis, in `oauth-redis`):
//! one token per lifetime for a fleet of token sources ([`FleetTokens`], [`fleet_token`]),
//! and one validation per token for a fleet of gateways (oauth-gateway's shared cache). Both
//! go through the same store trait ([`FleetStore`]), the same record sealing ([`Sealer`], with
//! key rotation), and the same driver ([`leased`]) of oauth-core's [`LeasedFetch`] machine:
//!
//! ```text
//! look ─► usable record? ─yes─► use it (no request)
//!            │ no
//!            ▼
//!      take the lease (SET NX PX, under this process's own holder name)
//!        ├─ taken ─► look again ─► fetch ─► save (sealed, TTL = its lifetime) ─► release
//!        └─ held by another ─► wait for its release (the store notifies), look again
//! store unreachable or failing ─► fetch alone (and say so in a log line)
//! ```
//!
//! Records are sealed with AES-256-GCM (ring) under a key the user supplies, with the slot's
//! name (and what else the user binds) as associated data, so a record cannot be moved to
//! another slot, and the key's id in the record so keys can rotate. A record that does not
//! open (another key, truncated, another format) is ignored and overwritten, never served.

use std::fmt;
use std::future::Future;
use std::pin::Pin;
use std::sync::Arc;
use std::time::{Duration, Instant, SystemTime};

use oauth_core::lease::{LeaseOutcome, LeaseStep, LeasedFetch, Looked};
use oauth_core::{
    AccessToken, Client, Endpoint, Error, RefreshPolicy, TokenRequest, TokenResponse,
};
use ring::aead::{AES_256_GCM, Aad, LessSafeKey, NONCE_LEN, Nonce, UnboundKey};
use ring::rand::{SecureRandom as _, SystemRandom};

use crate::drive::{Io, request_token};

/// A store operation's future.
pub type StoreFuture<'a, T> = Pin<Box<dyn Future<Output = Result<T, StoreError>> + Send + 'a>>;

/// What went wrong with a store.
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
#[non_exhaustive]
pub enum StoreErrorKind {
    /// The store could not be reached, or did not answer in time.
    Unavailable,
    /// The store answered with an error.
    Refused,
    /// A key or a record could not be made (bad key material, no randomness).
    Key,
}

/// Why the shared store could not be used (the caller then works alone). Its message names
/// the operation; its `source()`, when there is one, is the store client's error.
#[derive(Clone)]
pub struct StoreError {
    kind: StoreErrorKind,
    what: std::borrow::Cow<'static, str>,
    source: Option<Arc<dyn std::error::Error + Send + Sync>>,
}

impl StoreError {
    /// An error of `kind` about `what` (it must hold no secret: it is logged).
    pub fn new(kind: StoreErrorKind, what: impl Into<std::borrow::Cow<'static, str>>) -> Self {
        Self {
            kind,
            what: what.into(),
            source: None,
        }
    }

    /// The same, caused by `source` (which must hold no secret either).
    #[must_use]
    pub fn with_source(mut self, source: impl std::error::Error + Send + Sync + 'static) -> Self {
        self.source = Some(Arc::new(source));
        self
    }

    /// What went wrong.
    pub fn kind(&self) -> StoreErrorKind {
        self.kind
    }
}

impl fmt::Debug for StoreError {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        f.debug_struct("StoreError")
            .field("kind", &self.kind)
            .field("what", &self.what)
            .field("source", &self.source)
            .finish()
    }
}

impl fmt::Display for StoreError {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        f.write_str(&self.what)?;
        if let Some(source) = &self.source {
            write!(f, ": {source}")?;
        }
        Ok(())
    }
}

impl std::error::Error for StoreError {
    fn source(&self) -> Option<&(dyn std::error::Error + 'static)> {
        self.source
            .as_deref()
            .map(|e| e as &(dyn std::error::Error + 'static))
    }
}

/// The store a fleet shares: a key-value store with expiring keys, an atomic "set if absent"
/// for leases released only by their holder, and a way to wait for a lease's release (Redis:
/// `GET`, `SET PX`, `SET NX PX`, a compare-and-delete script, pub/sub). Values are opaque
/// bytes (sealed by [`Sealer`]).
///
/// The futures may finish in their first poll (a blocking store, for oauth-ureq and the
/// blocking gateway) or wait (an async store, for oauth-reqwest and the tower gateway).
pub trait FleetStore: Send + Sync {
    /// The value at `key`, if any.
    fn load<'a>(&'a self, key: &'a str) -> StoreFuture<'a, Option<Vec<u8>>>;
    /// Sets `key` to `value`, expiring after `ttl` (never, if `None`).
    fn save<'a>(
        &'a self,
        key: &'a str,
        value: &'a [u8],
        ttl: Option<Duration>,
    ) -> StoreFuture<'a, ()>;
    /// Sets `key` to `holder` for `lease` if it is absent; whether it was.
    fn try_lease<'a>(
        &'a self,
        key: &'a str,
        holder: &'a str,
        lease: Duration,
    ) -> StoreFuture<'a, bool>;
    /// Deletes `key` if it still holds `holder` (a lease is released by its holder only), and
    /// tells those waiting on it ([`wait_released`](Self::wait_released)).
    fn release<'a>(&'a self, key: &'a str, holder: &'a str) -> StoreFuture<'a, ()>;
    /// Waits until the lease `key` is released or gone (ends at once if it is already), or
    /// until `until`.
    fn wait_released<'a>(&'a self, key: &'a str, until: Instant) -> StoreFuture<'a, ()>;
}

/// The old name of [`FleetStore`] (kept for one release).
#[doc(hidden)]
pub use FleetStore as TokenStore;

impl<T: FleetStore + ?Sized> FleetStore for Arc<T> {
    fn load<'a>(&'a self, key: &'a str) -> StoreFuture<'a, Option<Vec<u8>>> {
        (**self).load(key)
    }
    fn save<'a>(
        &'a self,
        key: &'a str,
        value: &'a [u8],
        ttl: Option<Duration>,
    ) -> StoreFuture<'a, ()> {
        (**self).save(key, value, ttl)
    }
    fn try_lease<'a>(
        &'a self,
        key: &'a str,
        holder: &'a str,
        lease: Duration,
    ) -> StoreFuture<'a, bool> {
        (**self).try_lease(key, holder, lease)
    }
    fn release<'a>(&'a self, key: &'a str, holder: &'a str) -> StoreFuture<'a, ()> {
        (**self).release(key, holder)
    }
    fn wait_released<'a>(&'a self, key: &'a str, until: Instant) -> StoreFuture<'a, ()> {
        (**self).wait_released(key, until)
    }
}

/// A key that seals the records: AES-256-GCM, with an id stored in each record.
#[derive(Clone)]
pub struct StoreKey {
    id: String,
    key: Arc<LessSafeKey>,
}

impl fmt::Debug for StoreKey {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        f.debug_struct("StoreKey")
            .field("id", &self.id)
            .finish_non_exhaustive()
    }
}

impl StoreKey {
    /// The key `bytes` (32 random bytes, the same in every process of the fleet) named `id`
    /// (at most 64 bytes).
    pub fn new(id: &str, bytes: &[u8; 32]) -> Result<Self, StoreError> {
        if id.is_empty() || id.len() > 64 {
            return Err(StoreError::new(
                StoreErrorKind::Key,
                "a store key id is 1 to 64 bytes",
            ));
        }
        let unbound = UnboundKey::new(&AES_256_GCM, bytes)
            .map_err(|_| StoreError::new(StoreErrorKind::Key, "not an AES-256 key"))?;
        Ok(Self {
            id: id.to_owned(),
            key: Arc::new(LessSafeKey::new(unbound)),
        })
    }

    /// The key from 32 bytes in standard base64 (as `openssl rand -base64 32` prints them).
    pub fn from_base64(id: &str, text: &str) -> Result<Self, StoreError> {
        use base64::Engine as _;
        let bytes = base64::engine::general_purpose::STANDARD
            .decode(text.trim())
            .map_err(|_| StoreError::new(StoreErrorKind::Key, "the store key is not base64"))?;
        let bytes: [u8; 32] = bytes
            .try_into()
            .map_err(|_| StoreError::new(StoreErrorKind::Key, "the store key is not 32 bytes"))?;
        Self::new(id, &bytes)
    }
}

/// The record format's tag: `OFS1`, key id length, key id, nonce, sealed payload.
const MAGIC: &[u8; 4] = b"OFS1";

/// Seals and opens a fleet's records: the first key seals, every key opens (rotation).
#[derive(Clone, Debug)]
pub struct Sealer {
    keys: Vec<StoreKey>,
}

impl Sealer {
    /// Records sealed with `key`.
    pub fn new(key: StoreKey) -> Self {
        Self { keys: vec![key] }
    }

    /// Also opens records sealed with this older key.
    #[must_use]
    pub fn previous_key(mut self, key: StoreKey) -> Self {
        self.keys.push(key);
        self
    }

    /// Seals `plain` (wiped afterwards), bound to `aad` (the slot's name, and what else the
    /// record belongs to).
    pub fn seal(&self, aad: &[u8], mut plain: Vec<u8>) -> Result<Vec<u8>, StoreError> {
        let wipe = |plain: &mut Vec<u8>| zeroize::Zeroize::zeroize(plain);
        let Some(key) = self.keys.first() else {
            wipe(&mut plain);
            return Err(StoreError::new(StoreErrorKind::Key, "no store key"));
        };
        let mut nonce = [0u8; NONCE_LEN];
        if SystemRandom::new().fill(&mut nonce).is_err() {
            wipe(&mut plain);
            return Err(StoreError::new(StoreErrorKind::Key, "no randomness"));
        }
        if key
            .key
            .seal_in_place_append_tag(
                Nonce::assume_unique_for_key(nonce),
                Aad::from(aad),
                &mut plain,
            )
            .is_err()
        {
            wipe(&mut plain);
            return Err(StoreError::new(StoreErrorKind::Key, "sealing failed"));
        }
        let mut out = Vec::with_capacity(MAGIC.len() + 1 + key.id.len() + NONCE_LEN + plain.len());
        out.extend_from_slice(MAGIC);
        out.push(key.id.len() as u8);
        out.extend_from_slice(key.id.as_bytes());
        out.extend_from_slice(&nonce);
        out.extend_from_slice(&plain);
        Ok(out)
    }

    /// Opens a record bound to `aad`: `None` for anything not sealed by one of the keys for
    /// it. The plaintext is wiped when dropped.
    pub fn open(&self, aad: &[u8], record: &[u8]) -> Option<zeroize::Zeroizing<Vec<u8>>> {
        let rest = record.strip_prefix(MAGIC.as_slice())?;
        let (&id_len, rest) = rest.split_first()?;
        let (id, rest) = rest.split_at_checked(usize::from(id_len))?;
        let (nonce, sealed) = rest.split_at_checked(NONCE_LEN)?;
        let key = self.keys.iter().find(|k| k.id.as_bytes() == id)?;
        let mut buffer = zeroize::Zeroizing::new(sealed.to_vec());
        let nonce = Nonce::try_assume_unique_for_key(nonce).ok()?;
        let len = key
            .key
            .open_in_place(nonce, Aad::from(aad), &mut buffer)
            .ok()?
            .len();
        buffer.truncate(len);
        Some(buffer)
    }
}

/// A random holder name for leases (so that only this process releases them).
pub fn holder_name(prefix: &str) -> String {
    let mut bytes = [0u8; 16];
    // A failing OS random source leaves zeros: the leases still work, only the holder names
    // of such processes could coincide.
    let _ = SystemRandom::new().fill(&mut bytes);
    let mut name = String::with_capacity(prefix.len() + 32);
    name.push_str(prefix);
    for b in bytes {
        name.push_str(&format!("{b:02x}"));
    }
    name
}

/// Where a [`leased`] fetch keeps its value and its lease, and for how long.
#[derive(Clone, Copy, Debug)]
pub struct LeaseSlot<'a> {
    /// The record's key.
    pub record: &'a str,
    /// The lease's key.
    pub lease: &'a str,
    /// This process's holder name.
    pub holder: &'a str,
    /// How long the lease is held.
    pub hold: Duration,
    /// How long to wait for another holder (its lease, and its fetch's time).
    pub patience: Duration,
}

/// How a [`leased`] fetch ended.
#[derive(Debug)]
pub enum Leased<T, R> {
    /// Another process's record, opened.
    Found(T),
    /// This process's own fetch.
    Fetched(R),
}

/// Runs oauth-core's [`LeasedFetch`] over `store`: `open` opens a record and says whether it
/// is usable; `fetch` gets the value; `seal` turns a fetched value into a record and its TTL
/// (`None`: not worth sharing). Every store failure is logged and means working alone.
pub async fn leased<S, T, R, F, Fut>(
    store: &S,
    slot: LeaseSlot<'_>,
    mut open: impl FnMut(&[u8]) -> Option<T>,
    mut fetch: F,
    seal: impl Fn(&R) -> Option<(Vec<u8>, Option<Duration>)>,
) -> (Leased<T, R>, bool)
where
    S: FleetStore + ?Sized,
    F: FnMut() -> Fut,
    Fut: Future<Output = R>,
{
    let mut machine = LeasedFetch::new(slot.hold, slot.patience, Instant::now());
    let mut found = None;
    let mut fetched = None;
    let warn = |what: &str, e: &StoreError| {
        tracing::warn!(error = %e, "the shared store is unavailable ({what}); this process works alone");
    };
    loop {
        match machine.poll(Instant::now()) {
            LeaseStep::Load => {
                let looked = match store.load(slot.record).await {
                    Ok(Some(record)) => match open(&record) {
                        Some(value) => {
                            found = Some(value);
                            Looked::Usable
                        }
                        None => Looked::Missing,
                    },
                    Ok(None) => Looked::Missing,
                    Err(e) => {
                        warn("load", &e);
                        Looked::Failed
                    }
                };
                machine.handle_look(looked);
            }
            LeaseStep::TryLease(hold) => {
                let taken = store.try_lease(slot.lease, slot.holder, hold).await;
                machine.handle_lease(taken.map_err(|e| warn("lease", &e)));
            }
            LeaseStep::WaitRelease { until } => {
                if let Err(e) = store.wait_released(slot.lease, until).await {
                    warn("wait", &e);
                    // The next step is a look: the store is failing, so skip it.
                    let _ = machine.poll(Instant::now());
                    machine.handle_look(Looked::Failed);
                }
            }
            LeaseStep::Fetch { .. } => {
                let value = fetch().await;
                let worth = seal(&value);
                fetched = Some((value, worth));
                machine.handle_fetched(fetched.as_ref().is_some_and(|(_, w)| w.is_some()));
            }
            LeaseStep::Save => {
                let saved = match fetched.as_ref().and_then(|(_, w)| w.as_ref()) {
                    Some((record, ttl)) => match store.save(slot.record, record, *ttl).await {
                        Ok(()) => true,
                        Err(e) => {
                            warn("save", &e);
                            false
                        }
                    },
                    None => false,
                };
                machine.handle_saved(saved);
            }
            LeaseStep::Release => {
                if let Err(e) = store.release(slot.lease, slot.holder).await {
                    tracing::warn!(error = %e, "the fleet's store: a lease was not released (it expires by itself)");
                }
                machine.handle_released();
            }
            LeaseStep::Done(LeaseOutcome::Found) if found.is_some() => {
                if let Some(value) = found {
                    return (Leased::Found(value), machine.store_failed());
                }
            }
            LeaseStep::Done(_) if fetched.is_some() => {
                if let Some((value, _)) = fetched {
                    return (Leased::Fetched(value), machine.store_failed());
                }
            }
            other => {
                // Done without the value it names, or a step this driver does not know: a
                // bug. Fetch alone, which is always safe.
                debug_assert!(false, "unexpected lease step {other:?}");
                return (Leased::Fetched(fetch().await), true);
            }
        }
    }
}

/// A fleet's shared token: the store, the keys, and the timing of the lease.
#[derive(Clone)]
pub struct FleetTokens {
    store: Arc<dyn FleetStore>,
    sealer: Sealer,
    lease: Duration,
    slot: Option<String>,
}

/// The old name of [`FleetTokens`] (kept for one release).
#[doc(hidden)]
pub type SharedStore = FleetTokens;

impl fmt::Debug for FleetTokens {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        f.debug_struct("FleetTokens")
            .field("sealer", &self.sealer)
            .field("lease", &self.lease)
            .finish_non_exhaustive()
    }
}

impl FleetTokens {
    /// Tokens shared through `store`, sealed with `key`. The lease lasts 35 s (one token call
    /// with its retries, `HttpConfig::timeout`, plus a margin); waiting processes are woken
    /// by the store when it is released.
    pub fn new(store: impl FleetStore + 'static, key: StoreKey) -> Self {
        Self {
            store: Arc::new(store),
            sealer: Sealer::new(key),
            lease: Duration::from_secs(35),
            slot: None,
        }
    }

    /// Also opens records sealed with this older key (rotation: new records use the first).
    pub fn previous_key(mut self, key: StoreKey) -> Self {
        self.sealer = self.sealer.previous_key(key);
        self
    }

    /// How long a refreshing process holds the lease. If it dies, others take over after this.
    pub fn lease(mut self, lease: Duration) -> Self {
        self.lease = lease;
        self
    }

    /// Names the slot (the store key) instead of deriving it from the endpoint, client id,
    /// grant and scope: for sources that differ in what the derivation does not see
    /// (`audience`, `resource`, extras).
    pub fn slot(mut self, name: impl Into<String>) -> Self {
        self.slot = Some(name.into());
        self
    }

    /// The store key for a token source.
    pub fn slot_for(&self, endpoint: &Endpoint, client: &Client, request: &TokenRequest) -> String {
        if let Some(slot) = &self.slot {
            return format!("oauth:token:{slot}");
        }
        let identity = format!(
            "{}\n{}\n{}\n{}",
            endpoint.as_str(),
            client.id().map(|c| c.as_str()).unwrap_or_default(),
            request.grant_type(),
            request
                .requested_scope()
                .map(|s| s.as_str())
                .unwrap_or_default(),
        );
        let digest = ring::digest::digest(&ring::digest::SHA256, identity.as_bytes());
        let hex: String = digest.as_ref()[..16]
            .iter()
            .map(|b| format!("{b:02x}"))
            .collect();
        format!("oauth:token:{hex}")
    }

    /// Seals `token` for `slot`, with `expires_at` (the stated expiry, or the assumed one).
    pub fn seal(
        &self,
        token: &TokenResponse,
        slot: &str,
        expires_at: Option<SystemTime>,
    ) -> Result<Vec<u8>, StoreError> {
        let expires_at = expires_at
            .and_then(|t| t.duration_since(SystemTime::UNIX_EPOCH).ok())
            .map(|d| d.as_secs());
        let plain = serde_json::to_vec(&serde_json::json!({
            "access_token": token.access_token().expose_secret(),
            "token_type": token.access_token().token_type().as_str(),
            "expires_at": expires_at,
            "scope": token.scope().map(|s| s.as_str()),
        }))
        .map_err(|e| {
            StoreError::new(StoreErrorKind::Key, "the token could not be encoded").with_source(e)
        })?;
        self.sealer.seal(slot.as_bytes(), plain)
    }

    /// Opens a record of `slot` at `now`: `None` for anything that is not a record sealed by
    /// one of the keys for this slot, or whose token has expired.
    pub fn open(&self, record: &[u8], slot: &str, now: SystemTime) -> Option<TokenResponse> {
        let plain = self.sealer.open(slot.as_bytes(), record)?;
        let fields: serde_json::Value = serde_json::from_slice(&plain).ok()?;
        let now_s = now.duration_since(SystemTime::UNIX_EPOCH).ok()?.as_secs();
        let mut body = serde_json::json!({
            "access_token": fields.get("access_token")?.as_str()?,
            "token_type": fields.get("token_type")?.as_str()?,
        });
        if let Some(exp) = fields.get("expires_at").and_then(serde_json::Value::as_u64) {
            if exp <= now_s {
                return None;
            }
            body["expires_in"] = (exp - now_s).into();
        }
        if let Some(scope) = fields.get("scope").and_then(serde_json::Value::as_str) {
            body["scope"] = scope.into();
        }
        let response = oauth_core::http::Response::builder()
            .status(200)
            .header("content-type", "application/json")
            .body(body.to_string().into_bytes())
            .ok()?;
        oauth_core::parse_token_response(&response, now).ok()
    }
}

/// Gets a new token for a fleet: the one another process stored, if `policy` takes it
/// ([`RefreshPolicy::takes_shared`]: newer than `replacing`, lasting); else this process
/// takes the lease, requests it and stores it (for as long as [`RefreshPolicy::shared_ttl`]
/// says); or waits for the process that holds the lease. Any failure of the store means this
/// process requests its own token (a caller never fails only because the shared store is
/// down).
#[allow(clippy::too_many_arguments)]
pub async fn fleet_token<I: Io>(
    io: &I,
    shared: &FleetTokens,
    policy: &RefreshPolicy,
    slot: &str,
    replacing: Option<&AccessToken>,
    endpoint: &Endpoint,
    client: &Client,
    request: &TokenRequest,
) -> Result<TokenResponse, Error> {
    let lease = format!("{slot}:lease");
    let holder = holder_name("");
    let place = LeaseSlot {
        record: slot,
        lease: &lease,
        holder: &holder,
        hold: shared.lease,
        // A lease may run out, and the request after it take its whole time.
        patience: shared.lease.saturating_add(io.config().timeout),
    };
    let open = |record: &[u8]| {
        let now = crate::now().wall();
        let token = shared.open(record, slot, now);
        if token.is_none() {
            tracing::warn!("a record in the shared token store does not open; it will be replaced");
        }
        token.filter(|t| policy.takes_shared(t, replacing, now))
    };
    let seal = |result: &Result<TokenResponse, Error>| {
        let token = result.as_ref().ok()?;
        let now = crate::now().wall();
        let ttl = policy.shared_ttl(token, now);
        if ttl.is_some_and(|t| t.is_zero()) {
            return None;
        }
        let expires_at = ttl.and_then(|t| now.checked_add(t));
        match shared.seal(token, slot, expires_at) {
            Ok(record) => Some((record, ttl)),
            Err(e) => {
                tracing::warn!(error = %e, "the new token could not be shared");
                None
            }
        }
    };
    let fetch = || request_token(io, endpoint, client, request);
    match leased(shared.store.as_ref(), place, open, fetch, seal).await {
        (Leased::Found(token), _) => {
            tracing::debug!("token taken from the shared store");
            Ok(token)
        }
        (Leased::Fetched(result), _) => result,
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    fn token(expires_in: u64) -> TokenResponse {
        let body = format!(
            r#"{{"access_token":"at-secret-1","token_type":"Bearer","expires_in":{expires_in},"scope":"read"}}"#
        );
        let response = oauth_core::http::Response::builder()
            .status(200)
            .body(body.into_bytes())
            .unwrap_or_default();
        oauth_core::parse_token_response(&response, SystemTime::now())
            .unwrap_or_else(|e| panic!("{e}"))
    }

    struct Nothing;

    impl TokenStore for Nothing {
        fn load<'a>(&'a self, _: &'a str) -> StoreFuture<'a, Option<Vec<u8>>> {
            Box::pin(std::future::ready(Ok(None)))
        }
        fn save<'a>(&'a self, _: &'a str, _: &'a [u8], _: Option<Duration>) -> StoreFuture<'a, ()> {
            Box::pin(std::future::ready(Ok(())))
        }
        fn wait_released<'a>(&'a self, _: &'a str, _: Instant) -> StoreFuture<'a, ()> {
            Box::pin(std::future::ready(Ok(())))
        }
        fn try_lease<'a>(&'a self, _: &'a str, _: &'a str, _: Duration) -> StoreFuture<'a, bool> {
            Box::pin(std::future::ready(Ok(true)))
        }
        fn release<'a>(&'a self, _: &'a str, _: &'a str) -> StoreFuture<'a, ()> {
            Box::pin(std::future::ready(Ok(())))
        }
    }

    fn key(id: &str, byte: u8) -> StoreKey {
        StoreKey::new(id, &[byte; 32]).unwrap_or_else(|e| panic!("{e}"))
    }

    #[test]
    fn records_open_only_with_the_key_and_for_the_slot() {
        let shared = FleetTokens::new(Nothing, key("k1", 1));
        let record = shared
            .seal(
                &token(600),
                "slot-a",
                SystemTime::now().checked_add(Duration::from_secs(600)),
            )
            .unwrap_or_default();
        assert!(
            !record.windows(11).any(|w| w == b"at-secret-1"),
            "the token is not in clear"
        );
        let opened = shared.open(&record, "slot-a", SystemTime::now());
        assert_eq!(
            opened
                .map(|t| t.access_token().expose_secret().to_owned())
                .as_deref(),
            Some("at-secret-1")
        );
        // Another slot, another key, a rotated key, tampering, truncation, another format.
        assert!(shared.open(&record, "slot-b", SystemTime::now()).is_none());
        let other = FleetTokens::new(Nothing, key("k1", 2));
        assert!(other.open(&record, "slot-a", SystemTime::now()).is_none());
        let rotated = FleetTokens::new(Nothing, key("k2", 3)).previous_key(key("k1", 1));
        assert!(rotated.open(&record, "slot-a", SystemTime::now()).is_some());
        let mut tampered = record.clone();
        if let Some(last) = tampered.last_mut() {
            *last ^= 1;
        }
        assert!(
            shared
                .open(&tampered, "slot-a", SystemTime::now())
                .is_none()
        );
        for cut in [0, 3, 5, 10, record.len() - 1] {
            assert!(
                shared
                    .open(&record[..cut], "slot-a", SystemTime::now())
                    .is_none()
            );
        }
        assert!(
            shared
                .open(br#"{"access_token":"x"}"#, "slot-a", SystemTime::now())
                .is_none()
        );
        // Expired by the time it is read.
        let later = SystemTime::now() + Duration::from_secs(601);
        assert!(shared.open(&record, "slot-a", later).is_none());
    }

    /// Another process stores its token and gives the lease back between this process's
    /// first look and its lease: the stored token is used, and no second request is made.
    #[test]
    fn a_token_stored_just_before_the_lease_is_used() {
        use std::sync::Mutex;
        use std::sync::atomic::{AtomicUsize, Ordering};

        #[derive(Default)]
        struct State {
            record: Mutex<Option<Vec<u8>>>,
            loads: AtomicUsize,
            released: AtomicUsize,
        }
        struct Racy(Arc<State>);
        impl TokenStore for Racy {
            fn load<'a>(&'a self, _: &'a str) -> StoreFuture<'a, Option<Vec<u8>>> {
                // The first look misses; the record is there from the second on.
                let record = if self.0.loads.fetch_add(1, Ordering::SeqCst) == 0 {
                    None
                } else {
                    self.0.record.lock().map(|r| r.clone()).unwrap_or_default()
                };
                Box::pin(std::future::ready(Ok(record)))
            }
            fn save<'a>(
                &'a self,
                _: &'a str,
                _: &'a [u8],
                _: Option<Duration>,
            ) -> StoreFuture<'a, ()> {
                Box::pin(std::future::ready(Ok(())))
            }
            fn wait_released<'a>(&'a self, _: &'a str, _: Instant) -> StoreFuture<'a, ()> {
                Box::pin(std::future::ready(Ok(())))
            }
            fn try_lease<'a>(
                &'a self,
                _: &'a str,
                _: &'a str,
                _: Duration,
            ) -> StoreFuture<'a, bool> {
                Box::pin(std::future::ready(Ok(true)))
            }
            fn release<'a>(&'a self, _: &'a str, _: &'a str) -> StoreFuture<'a, ()> {
                self.0.released.fetch_add(1, Ordering::SeqCst);
                Box::pin(std::future::ready(Ok(())))
            }
        }

        /// An authorization server that counts token requests.
        struct Counting(crate::HttpConfig, AtomicUsize);
        impl Io for Counting {
            fn config(&self) -> &crate::HttpConfig {
                &self.0
            }
            fn send(
                &self,
                _: oauth_core::http::Request<crate::Body>,
                _: usize,
                _: Duration,
            ) -> impl Future<Output = Result<oauth_core::http::Response<Vec<u8>>, Error>> + Send
            {
                self.1.fetch_add(1, Ordering::SeqCst);
                let body = br#"{"access_token":"at-own","token_type":"Bearer","expires_in":600}"#;
                std::future::ready(Ok(oauth_core::http::Response::new(body.to_vec())))
            }
            fn sleep_until(&self, _: Instant) -> impl Future<Output = ()> + Send {
                std::future::ready(())
            }
            fn wait(
                &self,
                _: &crate::Signal,
                _: u64,
                _: Instant,
            ) -> impl Future<Output = ()> + Send {
                std::future::ready(())
            }
        }

        let state = Arc::new(State::default());
        let shared = FleetTokens::new(Racy(Arc::clone(&state)), key("k1", 1));
        let theirs = shared
            .seal(
                &token(600),
                "slot",
                SystemTime::now().checked_add(Duration::from_secs(600)),
            )
            .unwrap_or_default();
        *state.record.lock().unwrap_or_else(|e| e.into_inner()) = Some(theirs);
        let io = Counting(crate::HttpConfig::new(), AtomicUsize::new(0));
        let endpoint = io
            .config()
            .endpoint("https://as.example/token")
            .unwrap_or_else(|e| panic!("{e}"));
        let client = Client::new("app", oauth_core::ClientAuthentication::None);
        let got = crate::block_on(fleet_token(
            &io,
            &shared,
            &RefreshPolicy::default(),
            "slot",
            None,
            &endpoint,
            &client,
            &TokenRequest::client_credentials(),
        ))
        .unwrap_or_else(|e| panic!("{e}"));
        assert_eq!(got.access_token().expose_secret(), "at-secret-1");
        assert_eq!(io.1.load(Ordering::SeqCst), 0, "no token request");
        assert_eq!(state.loads.load(Ordering::SeqCst), 2);
        assert_eq!(state.released.load(Ordering::SeqCst), 1);
    }

    #[test]
    fn a_stored_token_is_taken_only_if_newer_and_lasting() {
        // The lifecycle's rule (its serving margin, 30 s by default), not one of the store's.
        let policy = RefreshPolicy::default();
        let fresh = token(600);
        assert!(policy.takes_shared(&fresh, None, SystemTime::now()));
        assert!(!policy.takes_shared(&fresh, Some(fresh.access_token()), SystemTime::now()));
        assert!(!policy.takes_shared(&token(20), None, SystemTime::now()));
        assert_eq!(
            policy
                .shared_ttl(&fresh, SystemTime::now())
                .map(|d| d.as_secs() / 10),
            Some(59)
        );
    }

    /// A token with no stated expiry is kept until a process replaces it, as
    /// `UnknownExpiry::UntilRejected` serves it (no invented TTL); an assumed expiry is used
    /// when the policy assumes one.
    #[test]
    fn a_token_with_no_expiry_is_shared_as_the_lifecycle_serves_it() {
        let body = br#"{"access_token":"at-secret-1","token_type":"Bearer"}"#;
        let response = oauth_core::http::Response::new(body.to_vec());
        let token = oauth_core::parse_token_response(&response, SystemTime::now())
            .unwrap_or_else(|e| panic!("{e}"));
        let now = SystemTime::now();
        assert_eq!(RefreshPolicy::default().shared_ttl(&token, now), None);
        assert!(RefreshPolicy::default().takes_shared(&token, None, now));
        let assumed = RefreshPolicy::default()
            .unknown_expiry(oauth_core::UnknownExpiry::Assume(Duration::from_secs(900)));
        assert_eq!(
            assumed.shared_ttl(&token, now),
            Some(Duration::from_secs(900))
        );
    }
}
