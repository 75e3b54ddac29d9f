//! Redis as oauth-runtime's [`FleetStore`], the fleet's one store: one token per lifetime for
//! a whole fleet of processes (oauth-reqwest and oauth-ureq token sources), and one
//! introspection call per token for a fleet of gateways (oauth-gateway's `shared_cache`).
//!
//! Two implementations of the same commands:
//!
//! | store | for | how it waits |
//! | --- | --- | --- |
//! | [`AsyncRedisStore`] (feature `tokio`, default) | oauth-reqwest token sources, the tower gateway, the proxy | redis's async connection manager on tokio: a store operation never blocks a worker thread; it reconnects by itself |
//! | [`RedisStore`] | oauth-ureq token sources, blocking programs | the blocking protocol: the calling thread waits (at most the timeout) |
//!
//! ```no_run
//! use oauth_redis::RedisStore;
//! use oauth_ureq::{Client, ClientAuthentication, ClientSecret, HttpClient, HttpConfig, FleetTokens, StoreKey, TokenRequest, TokenSource};
//!
//! # fn run() -> Result<(), Box<dyn std::error::Error>> {
//! let key = StoreKey::from_base64("2026-12", &std::env::var("TOKEN_STORE_KEY")?)?; // 32 random bytes, shared by the fleet
//! let store = FleetTokens::new(RedisStore::open("redis://127.0.0.1:6379/")?, key);
//! let http = HttpClient::new(HttpConfig::new())?;
//! let tokens = TokenSource::builder(http.clone(), http.endpoint("https://as.example/token")?,
//!         Client::new("svc", ClientAuthentication::SecretBasic(ClientSecret::new("s3cret"))))
//!     .grant(TokenRequest::client_credentials())
//!     .shared_store(store)
//!     .build();
//! let token = tokens.token()?; // from this process's memory; Redis only near expiry
//! # let _ = token; Ok(()) }
//! ```
//!
//! # TLS
//!
//! A `rediss://` URL connects over TLS (rustls with ring): [`RedisStore::open`] and
//! [`AsyncRedisStore::open`] trust the public roots (Mozilla's, from webpki-roots),
//! [`RedisStore::open_with_ca`] and [`AsyncRedisStore::open_with_ca`] only the CA (PEM) given —
//! a private CA's. Either way the chain and the host name (or IP address) in the URL are
//! verified. A server whose certificate is not trusted is a [`StoreError`] of kind
//! [`Unavailable`](StoreErrorKind::Unavailable) whose message says so
//! (`redis connect: TLS: server certificate not trusted`) and whose source, a
//! [`RedisFailure`], answers [`certificate_rejected`](RedisFailure::certificate_rejected).
//!
//! ```no_run
//! use oauth_redis::RedisStore;
//!
//! # fn run() -> Result<(), Box<dyn std::error::Error>> {
//! let ca = std::fs::read("/etc/gateway/redis-ca.pem")?;
//! let store = RedisStore::open_with_ca("rediss://redis.internal:6380/", &ca)?;
//! # let _ = store; Ok(()) }
//! ```
//!
//! Both speak plain Redis commands (`GET`, `SET … PX`, `SET … NX PX`, and a compare-and-delete
//! script to release a lease only by its holder), so any Redis 6+ (or Valkey) works. Each
//! operation has a short timeout (500 ms by default). `RedisStore` drops a failed connection
//! and opens it again on the next use; `AsyncRedisStore` connects on first use and its
//! connection manager reconnects in the background.
//!
//! # Features
//!
//! | feature | default | what it adds |
//! | --- | --- | --- |
//! | `tokio` | yes | [`AsyncRedisStore`] (redis's `tokio-comp` and `connection-manager`) |
#![forbid(unsafe_code)]
#![cfg_attr(docsrs, feature(doc_cfg))]

use std::fmt;
use std::sync::Mutex;
use std::time::Duration;

pub use oauth_runtime::{
    FleetStore, FleetTokens, LocalCounters, RateCounter, StoreError, StoreErrorKind, StoreFuture,
    StoreKey,
};
#[doc(hidden)]
pub use oauth_runtime::{SharedStore, TokenStore};

#[cfg(feature = "tokio")]
mod async_store;
mod limit;
#[cfg(feature = "tokio")]
pub use async_store::AsyncRedisStore;

/// Deletes the lease only if it still holds the caller's value, and tells those waiting for
/// it (on the channel `<lease>:released`).
pub(crate) const RELEASE: &str = r#"if redis.call("get", KEYS[1]) == ARGV[1] then redis.call("del", KEYS[1]); redis.call("publish", KEYS[1] .. ":released", "1"); return 1 else return 0 end"#;

/// The channel a lease's release is announced on.
pub(crate) fn released_channel(lease: &str) -> String {
    format!("{lease}:released")
}

/// How long to wait for `lease`, whose remaining time Redis reported as `pttl` (ms; -2: gone,
/// -1: no expiry), at most until `until`: `None` if it is gone already.
pub(crate) fn wait_for(pttl: i64, until: std::time::Instant) -> Option<Duration> {
    let left = until.saturating_duration_since(std::time::Instant::now());
    match pttl {
        -2 => None,
        ms if ms >= 0 => Some(left.min(Duration::from_millis(ms as u64))),
        _ => Some(left),
    }
}

/// A Redis server, for [`FleetTokens`] and the gateway's fleet cache, through the blocking protocol: the calling thread waits
/// for each operation (at most the timeout). In a tokio program, use [`AsyncRedisStore`].
pub struct RedisStore {
    client: redis::Client,
    connection: Mutex<Option<redis::Connection>>,
    timeout: Duration,
    release: redis::Script,
    limit: redis::Script,
}

impl fmt::Debug for RedisStore {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        // The URL may hold a password: not shown.
        f.debug_struct("RedisStore")
            .field("timeout", &self.timeout)
            .finish_non_exhaustive()
    }
}

/// The redis error's kind and category, as a source for [`StoreError`] (its detail may name
/// the server's address, with a password: not kept), and the TLS rejection if that was it.
#[derive(Debug)]
pub struct RedisFailure {
    kind: redis::ErrorKind,
    category: String,
    /// rustls' reason, when the server's certificate was not trusted (it names no secret).
    certificate: Option<rustls::CertificateError>,
}

impl RedisFailure {
    /// Whether the TLS handshake failed because the server's certificate was not trusted: not
    /// signed by a trusted CA (the wrong `ca_file`?), not for the URL's host, expired.
    pub fn certificate_rejected(&self) -> bool {
        self.certificate.is_some()
    }
}

impl fmt::Display for RedisFailure {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        match &self.certificate {
            Some(reason) => write!(f, "server certificate not trusted: {reason:?}"),
            None => write!(f, "{:?} ({})", self.kind, self.category),
        }
    }
}

impl std::error::Error for RedisFailure {}

/// rustls' reason if `e` is a TLS handshake that failed on the server's certificate: the
/// TLS stream's `io::Error` wraps the `rustls::Error`, and redis keeps that `io::Error` in an
/// `Arc` that it gives as its `source()` (whose own `source()` skips the `io::Error`'s payload).
fn certificate_error(e: &redis::RedisError) -> Option<rustls::CertificateError> {
    type Shared = std::sync::Arc<dyn std::error::Error + Send + Sync>;
    fn rustls_error<'a>(error: &'a (dyn std::error::Error + 'static)) -> Option<&'a rustls::Error> {
        if let Some(found) = error.downcast_ref::<rustls::Error>() {
            return Some(found);
        }
        if let Some(shared) = error.downcast_ref::<Shared>() {
            let inner: &'a (dyn std::error::Error + 'static) = &**shared;
            return rustls_error(inner);
        }
        let io = error.downcast_ref::<std::io::Error>()?;
        let inner: &'a (dyn std::error::Error + 'static) = io.get_ref()?;
        rustls_error(inner)
    }
    let mut next: Option<&(dyn std::error::Error + 'static)> = Some(e);
    while let Some(error) = next {
        if let Some(rustls::Error::InvalidCertificate(reason)) = rustls_error(error) {
            return Some(reason.clone());
        }
        next = error.source();
    }
    None
}

pub(crate) fn failed(what: &'static str, e: &redis::RedisError) -> StoreError {
    let certificate = certificate_error(e);
    let message = if certificate.is_some() {
        format!("redis {what}: TLS: server certificate not trusted")
    } else {
        format!("redis {what}")
    };
    let failure = RedisFailure {
        kind: e.kind(),
        category: e.category().to_owned(),
        certificate,
    };
    let kind = if failure.certificate.is_some()
        || e.is_io_error()
        || e.is_timeout()
        || e.is_connection_dropped()
    {
        StoreErrorKind::Unavailable
    } else {
        StoreErrorKind::Refused
    };
    StoreError::new(kind, message).with_source(failure)
}

/// The redis client for `url`: over TLS for `rediss://`, trusting `ca_pem`'s certificates
/// only when given (and then the URL must be `rediss://`), the public roots otherwise.
pub(crate) fn client(url: &str, ca_pem: Option<&[u8]>) -> Result<redis::Client, StoreError> {
    let tls = url
        .get(..9)
        .is_some_and(|scheme| scheme.eq_ignore_ascii_case("rediss://"));
    if tls {
        install_crypto_provider();
    }
    let Some(pem) = ca_pem else {
        return redis::Client::open(url).map_err(|e| failed("URL", &e));
    };
    if !tls {
        return Err(StoreError::new(
            StoreErrorKind::Refused,
            "redis URL: a CA is given but the URL is not rediss://",
        ));
    }
    ca_certificates(pem)?;
    let certificates = redis::TlsCertificates {
        client_tls: None,
        root_cert: Some(pem.to_vec()),
    };
    redis::Client::build_with_tls(url, certificates).map_err(|e| failed("TLS settings", &e))
}

/// Checks that `pem` holds at least one certificate (redis would take an empty file and trust
/// nothing, which shows only at the first connection).
fn ca_certificates(pem: &[u8]) -> Result<(), StoreError> {
    use rustls::pki_types::pem::PemObject as _;
    let mut count = 0usize;
    for certificate in rustls::pki_types::CertificateDer::pem_slice_iter(pem) {
        if certificate.is_err() {
            return Err(StoreError::new(
                StoreErrorKind::Refused,
                "redis TLS settings: the CA is not valid PEM",
            ));
        }
        count += 1;
    }
    if count == 0 {
        return Err(StoreError::new(
            StoreErrorKind::Refused,
            "redis TLS settings: the CA holds no certificate",
        ));
    }
    Ok(())
}

/// redis builds its TLS settings with rustls' process-wide crypto provider: ring's is
/// installed unless the program chose one (rustls would panic if it found two compiled in and
/// none chosen).
fn install_crypto_provider() {
    if rustls::crypto::CryptoProvider::get_default().is_none() {
        // Another thread may have installed one in between: either way there is one.
        let _ = rustls::crypto::ring::default_provider().install_default();
    }
}

impl RedisStore {
    /// A store at `url` (`redis://[:password@]host:port/db`, or `rediss://` for TLS trusting
    /// the public roots); nothing is connected yet.
    pub fn open(url: &str) -> Result<Self, StoreError> {
        Ok(Self::with_client(client(url, None)?))
    }

    /// A store at a `rediss://` `url` whose certificate must chain to one of the CA
    /// certificates in `ca_pem` (PEM) — and to nothing else; nothing is connected yet.
    pub fn open_with_ca(url: &str, ca_pem: &[u8]) -> Result<Self, StoreError> {
        Ok(Self::with_client(client(url, Some(ca_pem))?))
    }

    fn with_client(client: redis::Client) -> Self {
        Self {
            client,
            connection: Mutex::new(None),
            timeout: Duration::from_millis(500),
            release: redis::Script::new(RELEASE),
            limit: redis::Script::new(limit::CHECK),
        }
    }

    /// How long one operation (connecting included) may take.
    pub fn timeout(mut self, timeout: Duration) -> Self {
        self.timeout = timeout;
        self
    }

    /// Runs `f` on the connection, connecting first if needed; a failure drops the
    /// connection so that the next use reconnects.
    fn with<T>(
        &self,
        what: &'static str,
        f: impl FnOnce(&mut redis::Connection) -> redis::RedisResult<T>,
    ) -> Result<T, StoreError> {
        let mut guard = self.connection.lock().unwrap_or_else(|e| e.into_inner());
        if guard.is_none() {
            let connection = self
                .client
                .get_connection_with_timeout(self.timeout)
                .map_err(|e| failed("connect", &e))?;
            connection
                .set_read_timeout(Some(self.timeout))
                .and_then(|()| connection.set_write_timeout(Some(self.timeout)))
                .map_err(|e| failed("connect", &e))?;
            *guard = Some(connection);
        }
        let Some(connection) = guard.as_mut() else {
            return Err(StoreError::new(
                StoreErrorKind::Unavailable,
                "redis: no connection",
            ));
        };
        match f(connection) {
            Ok(value) => Ok(value),
            Err(e) => {
                *guard = None;
                Err(failed(what, &e))
            }
        }
    }
}

pub(crate) fn millis(d: Duration) -> u64 {
    u64::try_from(d.as_millis()).unwrap_or(u64::MAX).max(1)
}

impl FleetStore for RedisStore {
    fn load<'a>(&'a self, key: &'a str) -> StoreFuture<'a, Option<Vec<u8>>> {
        let result = self.with("GET", |c| redis::cmd("GET").arg(key).query(c));
        Box::pin(std::future::ready(result))
    }

    fn save<'a>(
        &'a self,
        key: &'a str,
        value: &'a [u8],
        ttl: Option<Duration>,
    ) -> StoreFuture<'a, ()> {
        let result = self.with("SET", |c| {
            let mut command = redis::cmd("SET");
            command.arg(key).arg(value);
            if let Some(ttl) = ttl {
                command.arg("PX").arg(millis(ttl));
            }
            command.query(c)
        });
        Box::pin(std::future::ready(result))
    }

    fn try_lease<'a>(
        &'a self,
        key: &'a str,
        holder: &'a str,
        lease: Duration,
    ) -> StoreFuture<'a, bool> {
        let result = self.with("SET NX", |c| {
            redis::cmd("SET")
                .arg(key)
                .arg(holder)
                .arg("NX")
                .arg("PX")
                .arg(millis(lease))
                .query::<Option<String>>(c)
        });
        Box::pin(std::future::ready(result.map(|ok| ok.is_some())))
    }

    fn release<'a>(&'a self, key: &'a str, holder: &'a str) -> StoreFuture<'a, ()> {
        let result = self.with("release", |c| {
            self.release
                .key(key)
                .arg(holder)
                .invoke::<i64>(c)
                .map(|_| ())
        });
        Box::pin(std::future::ready(result))
    }

    /// Subscribes to the lease's release channel on a connection of its own, then asks
    /// whether the lease is still held (so a release in between is not missed), then waits
    /// for the announcement, the lease's expiry, or `until`.
    fn wait_released<'a>(&'a self, key: &'a str, until: std::time::Instant) -> StoreFuture<'a, ()> {
        let wait = || -> Result<(), StoreError> {
            let mut connection = self
                .client
                .get_connection_with_timeout(self.timeout)
                .map_err(|e| failed("connect", &e))?;
            connection
                .set_write_timeout(Some(self.timeout))
                .map_err(|e| failed("connect", &e))?;
            let mut pubsub = connection.as_pubsub();
            pubsub
                .subscribe(released_channel(key))
                .map_err(|e| failed("SUBSCRIBE", &e))?;
            let pttl: i64 = self.with("PTTL", |c| redis::cmd("PTTL").arg(key).query(c))?;
            let Some(wait) = wait_for(pttl, until) else {
                return Ok(());
            };
            if wait.is_zero() {
                return Ok(());
            }
            pubsub
                .set_read_timeout(Some(wait))
                .map_err(|e| failed("SUBSCRIBE", &e))?;
            match pubsub.get_message() {
                Ok(_) => Ok(()),
                Err(e) if e.is_timeout() => Ok(()),
                Err(e) => Err(failed("SUBSCRIBE", &e)),
            }
        };
        Box::pin(std::future::ready(wait()))
    }
}
