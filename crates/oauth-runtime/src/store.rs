//! One token for a fleet of processes: a shared store (Redis, in `oauth-redis`) consulted only
//! when this process needs a new token. The fast path stays the local, lock-free published
//! token; the store is touched near expiry.
//!
//! ```text
//! refresh due ─► store holds a newer, valid token? ─yes─► use it (no request)
//!                     │ no
//!                     ▼
//!               take the lease (SET NX PX, a value only this process knows)
//!                 ├─ taken ─► request the token ─► store it (sealed, TTL = its lifetime) ─► release
//!                 └─ held by another ─► look again every 50 ms, until its lease would have expired
//! store unreachable or failing ─► this process requests its own token (and says so in a log line)
//! ```
//!
//! Records are sealed with AES-256-GCM (ring) under a key the user supplies, the slot's name as
//! associated data (a record cannot be moved to another slot), and the key's id in the record
//! so keys can rotate. A record that does not open (another key, truncated, another format) is
//! ignored and overwritten, never served.

use std::fmt;
use std::future::Future;
use std::pin::Pin;
use std::sync::Arc;
use std::time::{Duration, Instant, SystemTime};

use oauth_core::{AccessToken, Client, Endpoint, Error, TokenRequest, TokenResponse};
use ring::aead::{AES_256_GCM, Aad, LessSafeKey, NONCE_LEN, Nonce, UnboundKey};
use ring::rand::{SecureRandom as _, SystemRandom};

use crate::drive::{Io, request_token};

/// A store operation's future.
pub type StoreFuture<'a, T> = Pin<Box<dyn Future<Output = Result<T, StoreError>> + Send + 'a>>;

/// Why the shared store could not be used (the caller then fetches its own token).
#[derive(Clone, Debug)]
pub struct StoreError(String);

impl StoreError {
    /// An error with this description (it must hold no secret: it is logged).
    pub fn new(message: impl Into<String>) -> Self {
        Self(message.into())
    }
}

impl fmt::Display for StoreError {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        f.write_str(&self.0)
    }
}

impl std::error::Error for StoreError {}

/// Where a fleet's token is kept: a key-value store with expiring keys and an atomic
/// "set if absent" (Redis: `GET`, `SET PX`, `SET NX PX`, a compare-and-delete script).
/// Values are opaque bytes (sealed by [`SharedStore`]).
pub trait TokenStore: Send + Sync {
    /// The value at `key`, if any.
    fn load<'a>(&'a self, key: &'a str) -> StoreFuture<'a, Option<Vec<u8>>>;
    /// Sets `key` to `value`, expiring after `ttl`.
    fn save<'a>(&'a self, key: &'a str, value: &'a [u8], ttl: Duration) -> StoreFuture<'a, ()>;
    /// Sets `key` to `holder` for `lease` if it is absent; whether it was.
    fn try_lease<'a>(
        &'a self,
        key: &'a str,
        holder: &'a str,
        lease: Duration,
    ) -> StoreFuture<'a, bool>;
    /// Deletes `key` if it still holds `holder` (a lease is released by its holder only).
    fn release<'a>(&'a self, key: &'a str, holder: &'a str) -> StoreFuture<'a, ()>;
}

impl<T: TokenStore + ?Sized> TokenStore for Arc<T> {
    fn load<'a>(&'a self, key: &'a str) -> StoreFuture<'a, Option<Vec<u8>>> {
        (**self).load(key)
    }
    fn save<'a>(&'a self, key: &'a str, value: &'a [u8], ttl: Duration) -> StoreFuture<'a, ()> {
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
            return Err(StoreError::new("a store key id is 1 to 64 bytes"));
        }
        let unbound = UnboundKey::new(&AES_256_GCM, bytes)
            .map_err(|_| StoreError::new("not an AES-256 key"))?;
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
            .map_err(|_| StoreError::new("the store key is not base64"))?;
        let bytes: [u8; 32] = bytes
            .try_into()
            .map_err(|_| StoreError::new("the store key is not 32 bytes"))?;
        Self::new(id, &bytes)
    }
}

/// The record format's tag.
const MAGIC: &[u8; 4] = b"OTK1";

/// A fleet's shared token: the store, the keys, and the timing of the lease.
#[derive(Clone)]
pub struct SharedStore {
    store: Arc<dyn TokenStore>,
    keys: Vec<StoreKey>,
    lease: Duration,
    poll: Duration,
    slot: Option<String>,
    rng: SystemRandom,
}

impl fmt::Debug for SharedStore {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        f.debug_struct("SharedStore")
            .field("keys", &self.keys)
            .field("lease", &self.lease)
            .finish_non_exhaustive()
    }
}

impl SharedStore {
    /// Tokens shared through `store`, sealed with `key`. The lease lasts 35 s (one token call
    /// with its retries, `HttpConfig::timeout`, plus a margin); waiting processes look again
    /// every 50 ms.
    pub fn new(store: impl TokenStore + 'static, key: StoreKey) -> Self {
        Self {
            store: Arc::new(store),
            keys: vec![key],
            lease: Duration::from_secs(35),
            poll: Duration::from_millis(50),
            slot: None,
            rng: SystemRandom::new(),
        }
    }

    /// Also opens records sealed with this older key (rotation: new records use the first).
    pub fn previous_key(mut self, key: StoreKey) -> Self {
        self.keys.push(key);
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

    /// Seals `token` for `slot`.
    pub fn seal(&self, token: &TokenResponse, slot: &str) -> Result<Vec<u8>, StoreError> {
        let key = self
            .keys
            .first()
            .ok_or_else(|| StoreError::new("no store key"))?;
        let expires_at = token
            .expires_at()
            .and_then(|t| t.duration_since(SystemTime::UNIX_EPOCH).ok())
            .map(|d| d.as_secs());
        let mut plain = serde_json::to_vec(&serde_json::json!({
            "access_token": token.access_token().expose_secret(),
            "token_type": token.access_token().token_type().as_str(),
            "expires_at": expires_at,
            "scope": token.scope().map(|s| s.as_str()),
        }))
        .map_err(|_| StoreError::new("the token could not be encoded"))?;
        let mut nonce = [0u8; NONCE_LEN];
        self.rng
            .fill(&mut nonce)
            .map_err(|_| StoreError::new("no randomness"))?;
        key.key
            .seal_in_place_append_tag(
                Nonce::assume_unique_for_key(nonce),
                Aad::from(slot.as_bytes()),
                &mut plain,
            )
            .map_err(|_| StoreError::new("sealing failed"))?;
        let mut out = Vec::with_capacity(MAGIC.len() + 1 + key.id.len() + NONCE_LEN + plain.len());
        out.extend_from_slice(MAGIC);
        out.push(key.id.len() as u8);
        out.extend_from_slice(key.id.as_bytes());
        out.extend_from_slice(&nonce);
        out.extend_from_slice(&plain);
        zeroize::Zeroize::zeroize(&mut plain);
        Ok(out)
    }

    /// Opens a record of `slot` at `now`: `None` for anything that is not a record sealed by
    /// one of the keys for this slot, or whose token has expired.
    pub fn open(&self, record: &[u8], slot: &str, now: SystemTime) -> Option<TokenResponse> {
        let rest = record.strip_prefix(MAGIC.as_slice())?;
        let (&id_len, rest) = rest.split_first()?;
        let (id, rest) = rest.split_at_checked(usize::from(id_len))?;
        let (nonce, sealed) = rest.split_at_checked(NONCE_LEN)?;
        let key = self.keys.iter().find(|k| k.id.as_bytes() == id)?;
        let mut buffer = zeroize::Zeroizing::new(sealed.to_vec());
        let nonce = Nonce::try_assume_unique_for_key(nonce).ok()?;
        let plain = key
            .key
            .open_in_place(nonce, Aad::from(slot.as_bytes()), &mut buffer)
            .ok()?;
        let fields: serde_json::Value = serde_json::from_slice(plain).ok()?;
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

    fn holder(&self) -> String {
        let mut bytes = [0u8; 16];
        let _ = self.rng.fill(&mut bytes);
        bytes.iter().map(|b| format!("{b:02x}")).collect()
    }
}

/// The least lifetime a stored token must have left to be taken instead of a new one.
const MIN_LEFT: Duration = Duration::from_secs(5);

fn usable(token: &TokenResponse, replacing: Option<&AccessToken>, now: SystemTime) -> bool {
    let different =
        replacing.is_none_or(|r| r.expose_secret() != token.access_token().expose_secret());
    let lasting = token
        .expires_at()
        .is_none_or(|exp| exp.duration_since(now).is_ok_and(|left| left >= MIN_LEFT));
    different && lasting
}

/// The token stored in `slot`, if it opens, is newer than `replacing` and lasts.
async fn stored_token(
    shared: &SharedStore,
    slot: &str,
    replacing: Option<&AccessToken>,
) -> Result<Option<TokenResponse>, StoreError> {
    let Some(record) = shared.store.load(slot).await? else {
        return Ok(None);
    };
    let Some(token) = shared.open(&record, slot, crate::now().wall()) else {
        tracing::warn!("a record in the shared token store does not open; it will be replaced");
        return Ok(None);
    };
    if usable(&token, replacing, crate::now().wall()) {
        tracing::debug!("token taken from the shared store");
        return Ok(Some(token));
    }
    Ok(None)
}

/// Gets a new token for a fleet: the one another process stored, if it is newer than
/// `replacing` and lasts; else this process takes the lease, requests it and stores it; or
/// waits for the process that holds the lease. Any failure of the store means this process
/// requests its own token (a caller never fails only because the shared store is down).
pub async fn fleet_token<I: Io>(
    io: &I,
    shared: &SharedStore,
    slot: &str,
    replacing: Option<&AccessToken>,
    endpoint: &Endpoint,
    client: &Client,
    request: &TokenRequest,
) -> Result<TokenResponse, Error> {
    let lease_key = format!("{slot}:lease");
    let holder = shared.holder();
    // Wait at most for a lease to run out, and for the request after it.
    let give_up = Instant::now() + shared.lease + io.config().timeout;
    let own = |why: &StoreError| {
        tracing::warn!(
            error = %why,
            "the shared token store is unavailable; this process requests its own token"
        );
    };
    loop {
        match stored_token(shared, slot, replacing).await {
            Ok(Some(token)) => return Ok(token),
            Ok(None) => {}
            Err(e) => {
                own(&e);
                return request_token(io, endpoint, client, request).await;
            }
        }
        match shared
            .store
            .try_lease(&lease_key, &holder, shared.lease)
            .await
        {
            Ok(true) => {
                // The previous holder may have stored its token and given the lease back
                // between the look above and this lease: look again before requesting.
                if let Ok(Some(token)) = stored_token(shared, slot, replacing).await {
                    if let Err(e) = shared.store.release(&lease_key, &holder).await {
                        tracing::warn!(error = %e, "the shared token store's lease could not be released");
                    }
                    return Ok(token);
                }
                let result = request_token(io, endpoint, client, request).await;
                if let Ok(token) = &result {
                    let ttl = token
                        .expires_at()
                        .and_then(|exp| exp.duration_since(crate::now().wall()).ok())
                        .unwrap_or(Duration::from_secs(3600));
                    let stored = match shared.seal(token, slot) {
                        Ok(record) => shared.store.save(slot, &record, ttl).await,
                        Err(e) => Err(e),
                    };
                    if let Err(e) = stored {
                        tracing::warn!(error = %e, "the new token could not be shared");
                    }
                }
                if let Err(e) = shared.store.release(&lease_key, &holder).await {
                    tracing::warn!(error = %e, "the shared token store's lease could not be released");
                }
                return result;
            }
            Ok(false) => {
                if Instant::now() >= give_up {
                    tracing::warn!(
                        "the shared token store's lease was never released; requesting a token"
                    );
                    return request_token(io, endpoint, client, request).await;
                }
                io.sleep_until(Instant::now() + shared.poll).await;
            }
            Err(e) => {
                own(&e);
                return request_token(io, endpoint, client, request).await;
            }
        }
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
        fn save<'a>(&'a self, _: &'a str, _: &'a [u8], _: Duration) -> StoreFuture<'a, ()> {
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
        let shared = SharedStore::new(Nothing, key("k1", 1));
        let record = shared.seal(&token(600), "slot-a").unwrap_or_default();
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
        let other = SharedStore::new(Nothing, key("k1", 2));
        assert!(other.open(&record, "slot-a", SystemTime::now()).is_none());
        let rotated = SharedStore::new(Nothing, key("k2", 3)).previous_key(key("k1", 1));
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
            fn save<'a>(&'a self, _: &'a str, _: &'a [u8], _: Duration) -> StoreFuture<'a, ()> {
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
        }

        let state = Arc::new(State::default());
        let shared = SharedStore::new(Racy(Arc::clone(&state)), key("k1", 1));
        let theirs = shared.seal(&token(600), "slot").unwrap_or_default();
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
        let fresh = token(600);
        assert!(usable(&fresh, None, SystemTime::now()));
        assert!(!usable(
            &fresh,
            Some(fresh.access_token()),
            SystemTime::now()
        ));
        assert!(!usable(&token(2), None, SystemTime::now()));
    }
}
