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
/// the server's address, with a password: not kept).
#[derive(Debug)]
pub struct RedisFailure {
    kind: redis::ErrorKind,
    category: String,
}

impl fmt::Display for RedisFailure {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        write!(f, "{:?} ({})", self.kind, self.category)
    }
}

impl std::error::Error for RedisFailure {}

pub(crate) fn failed(what: &'static str, e: &redis::RedisError) -> StoreError {
    let failure = RedisFailure {
        kind: e.kind(),
        category: e.category().to_owned(),
    };
    let kind = if e.is_io_error() || e.is_timeout() || e.is_connection_dropped() {
        StoreErrorKind::Unavailable
    } else {
        StoreErrorKind::Refused
    };
    StoreError::new(kind, format!("redis {what}")).with_source(failure)
}

impl RedisStore {
    /// A store at `url` (`redis://[:password@]host:port/db`); nothing is connected yet.
    pub fn open(url: &str) -> Result<Self, StoreError> {
        let client = redis::Client::open(url).map_err(|e| failed("URL", &e))?;
        Ok(Self {
            client,
            connection: Mutex::new(None),
            timeout: Duration::from_millis(500),
            release: redis::Script::new(RELEASE),
            limit: redis::Script::new(limit::CHECK),
        })
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
