//! A Redis [`TokenStore`] for oauth-reqwest and oauth-ureq token sources: one token per
//! lifetime for a whole fleet of processes.
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
//! The store speaks plain Redis commands (`GET`, `SET … PX`, `SET … NX PX`, and a
//! compare-and-delete script to release a lease), so any Redis 6+ (or Valkey) works. Each
//! operation has a short timeout (500 ms by default); a failed connection is dropped and opened
//! again on the next use. The operations block: a loopback round trip, made only when a token
//! source needs a new token (with the async adapter, on its refresh task).
//!
//! # Features
//!
//! | feature | default | what it adds |
//! | --- | --- | --- |
//! | `gateway` | no | `RedisStore` as oauth-gateway's `SharedCache`: a gateway fleet's introspection results, one call per token for the fleet |
#![forbid(unsafe_code)]

use std::fmt;
use std::sync::Mutex;
use std::time::Duration;

pub use oauth_runtime::{SharedStore, StoreError, StoreFuture, StoreKey, TokenStore};

/// Deletes the lease only if it still holds the caller's value.
const RELEASE: &str = r#"if redis.call("get", KEYS[1]) == ARGV[1] then return redis.call("del", KEYS[1]) else return 0 end"#;

/// A Redis server, for [`SharedStore`].
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

fn failed(what: &str, e: &redis::RedisError) -> StoreError {
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

fn millis(d: Duration) -> u64 {
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

/// The gateway fleet's shared validation cache (feature `gateway`): records under
/// `oauth-gateway:v1:<sha-256 of the token, hex>`, leases under the same name with `:lease`,
/// released only by the node that holds them.
#[cfg(feature = "gateway")]
impl oauth_gateway::SharedCache for RedisStore {
    fn get(&self, key: &[u8; 32]) -> Result<Option<Vec<u8>>, oauth_gateway::SharedCacheError> {
        self.with("GET", |c| redis::cmd("GET").arg(record_key(key)).query(c))
            .map_err(gateway_error)
    }

    fn put(
        &self,
        key: &[u8; 32],
        record: &[u8],
        ttl: Duration,
    ) -> Result<(), oauth_gateway::SharedCacheError> {
        self.with("SET", |c| {
            redis::cmd("SET")
                .arg(record_key(key))
                .arg(record)
                .arg("PX")
                .arg(millis(ttl))
                .query(c)
        })
        .map_err(gateway_error)
    }

    fn try_lease(
        &self,
        key: &[u8; 32],
        ttl: Duration,
    ) -> Result<bool, oauth_gateway::SharedCacheError> {
        let holder = node_id();
        TokenStore::try_lease(self, &format!("{}:lease", record_key(key)), holder, ttl)
            .now()
            .map_err(gateway_error)
    }

    fn release(&self, key: &[u8; 32]) -> Result<(), oauth_gateway::SharedCacheError> {
        TokenStore::release(self, &format!("{}:lease", record_key(key)), node_id())
            .now()
            .map_err(gateway_error)
    }
}

#[cfg(feature = "gateway")]
fn record_key(key: &[u8; 32]) -> String {
    use std::fmt::Write as _;
    let mut name = String::with_capacity(17 + 64);
    name.push_str("oauth-gateway:v1:");
    for b in key {
        let _ = write!(name, "{b:02x}");
    }
    name
}

/// This process's lease holder name.
#[cfg(feature = "gateway")]
fn node_id() -> &'static str {
    static ID: std::sync::OnceLock<String> = std::sync::OnceLock::new();
    ID.get_or_init(|| {
        let nanos = std::time::SystemTime::now()
            .duration_since(std::time::UNIX_EPOCH)
            .map_or(0, |d| d.as_nanos());
        format!("{}-{nanos}", std::process::id())
    })
}

#[cfg(feature = "gateway")]
fn gateway_error(e: StoreError) -> oauth_gateway::SharedCacheError {
    oauth_gateway::SharedCacheError::new(e.to_string())
}

/// The store's futures finish in their first poll (the operations block).
#[cfg(feature = "gateway")]
trait Now<T> {
    fn now(self) -> Result<T, StoreError>;
}

#[cfg(feature = "gateway")]
impl<T> Now<T> for StoreFuture<'_, T> {
    fn now(self) -> Result<T, StoreError> {
        oauth_runtime::block_on(self)
    }
}
