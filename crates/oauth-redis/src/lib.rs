//! Redis as oauth-runtime's [`TokenStore`], the fleet's one store: one token per lifetime for
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
//! use oauth_ureq::{Client, ClientAuthentication, ClientSecret, HttpClient, HttpConfig, SharedStore, StoreKey, TokenRequest, TokenSource};
//!
//! # fn run() -> Result<(), Box<dyn std::error::Error>> {
//! let key = StoreKey::from_base64("2026-12", &std::env::var("TOKEN_STORE_KEY")?)?; // 32 random bytes, shared by the fleet
//! let store = SharedStore::new(RedisStore::open("redis://127.0.0.1:6379/")?, key);
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

pub use oauth_runtime::{SharedStore, StoreError, StoreFuture, StoreKey, TokenStore};

#[cfg(feature = "tokio")]
mod async_store;
#[cfg(feature = "tokio")]
pub use async_store::AsyncRedisStore;

/// Deletes the lease only if it still holds the caller's value.
pub(crate) const RELEASE: &str = r#"if redis.call("get", KEYS[1]) == ARGV[1] then return redis.call("del", KEYS[1]) else return 0 end"#;

/// A Redis server, for [`SharedStore`], through the blocking protocol: the calling thread waits
/// for each operation (at most the timeout). In a tokio program, use [`AsyncRedisStore`].
pub struct RedisStore {
    client: redis::Client,
    connection: Mutex<Option<redis::Connection>>,
    timeout: Duration,
    release: redis::Script,
}

impl fmt::Debug for RedisStore {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        // The URL may hold a password: not shown.
        f.debug_struct("RedisStore")
            .field("timeout", &self.timeout)
            .finish_non_exhaustive()
    }
}

pub(crate) fn failed(what: &str, e: &redis::RedisError) -> StoreError {
    // The error's kind and category, not its detail (which may name the server's address).
    StoreError::new(format!("redis {what}: {:?} ({})", e.kind(), e.category()))
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
        what: &str,
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
            return Err(StoreError::new("redis: no connection"));
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

impl TokenStore for RedisStore {
    fn load<'a>(&'a self, key: &'a str) -> StoreFuture<'a, Option<Vec<u8>>> {
        let result = self.with("GET", |c| redis::cmd("GET").arg(key).query(c));
        Box::pin(std::future::ready(result))
    }

    fn save<'a>(&'a self, key: &'a str, value: &'a [u8], ttl: Duration) -> StoreFuture<'a, ()> {
        let result = self.with("SET", |c| {
            redis::cmd("SET")
                .arg(key)
                .arg(value)
                .arg("PX")
                .arg(millis(ttl))
                .query(c)
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
}
