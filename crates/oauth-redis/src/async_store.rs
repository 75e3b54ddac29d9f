//! The async store: redis's connection manager on tokio.

use std::fmt;
use std::time::Duration;

use redis::aio::{ConnectionManager, ConnectionManagerConfig};
use tokio::sync::OnceCell;

use crate::{
    FleetStore, RELEASE, StoreError, StoreErrorKind, StoreFuture, failed, millis, released_channel,
    wait_for,
};

/// A Redis server, for oauth-runtime's [`FleetStore`](crate::FleetStore) users in a tokio program: oauth-reqwest
/// token sources ([`FleetTokens`](crate::FleetTokens)), oauth-gateway's `shared_cache` (the
/// tower gateway) and the `oauth-gateway` proxy.
///
/// Every operation is awaited on the caller's task — it never blocks a tokio worker thread —
/// and gives up after the timeout (500 ms by default). The connection is made on first use (a
/// Redis that is down at start only fails the operations until it is up); redis's connection
/// manager then reconnects by itself after a failure.
///
/// ```no_run
/// use oauth_redis::{AsyncRedisStore, FleetTokens, StoreKey};
///
/// # fn run() -> Result<(), Box<dyn std::error::Error>> {
/// let key = StoreKey::from_base64("2026-12", &std::env::var("TOKEN_STORE_KEY")?)?;
/// let store = FleetTokens::new(AsyncRedisStore::open("redis://127.0.0.1:6379/")?, key);
/// # let _ = store; Ok(()) }
/// ```
pub struct AsyncRedisStore {
    client: redis::Client,
    connection: OnceCell<ConnectionManager>,
    timeout: Duration,
    release: redis::Script,
    limit: redis::Script,
}

impl fmt::Debug for AsyncRedisStore {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        // The URL may hold a password: not shown.
        f.debug_struct("AsyncRedisStore")
            .field("timeout", &self.timeout)
            .finish_non_exhaustive()
    }
}

impl AsyncRedisStore {
    /// A store at `url` (`redis://[:password@]host:port/db`, or `rediss://` for TLS trusting
    /// the public roots); nothing is connected yet.
    pub fn open(url: &str) -> Result<Self, StoreError> {
        Ok(Self::with_client(crate::client(url, None)?))
    }

    /// A store at a `rediss://` `url` whose certificate must chain to one of the CA
    /// certificates in `ca_pem` (PEM) — and to nothing else; nothing is connected yet.
    pub fn open_with_ca(url: &str, ca_pem: &[u8]) -> Result<Self, StoreError> {
        Ok(Self::with_client(crate::client(url, Some(ca_pem))?))
    }

    fn with_client(client: redis::Client) -> Self {
        Self {
            client,
            connection: OnceCell::new(),
            timeout: Duration::from_millis(500),
            release: redis::Script::new(RELEASE),
            limit: redis::Script::new(crate::limit::CHECK),
        }
    }

    /// How long one operation (connecting included) may take.
    pub fn timeout(mut self, timeout: Duration) -> Self {
        self.timeout = timeout;
        self
    }

    /// The connection manager, connecting first if this is the first use (or every attempt
    /// so far failed).
    async fn connection(&self) -> Result<ConnectionManager, StoreError> {
        let connect = || async {
            let config = ConnectionManagerConfig::new()
                .set_connection_timeout(Some(self.timeout))
                .set_response_timeout(Some(self.timeout))
                .set_number_of_retries(2)
                .set_max_delay(Duration::from_secs(1));
            match tokio::time::timeout(
                self.timeout,
                ConnectionManager::new_with_config(self.client.clone(), config),
            )
            .await
            {
                Ok(Ok(manager)) => Ok(manager),
                Ok(Err(e)) => Err(failed("connect", &e)),
                Err(_) => Err(StoreError::new(
                    StoreErrorKind::Unavailable,
                    "redis connect: timed out",
                )),
            }
        };
        self.connection.get_or_try_init(connect).await.cloned()
    }

    /// Connects once — without the retries the store's own connection makes — within
    /// `deadline`, and sends `PING`. What a program runs at start to tell a server whose
    /// certificate is not trusted (the wrong `ca_file`: a configuration mistake, whose error's
    /// [`RedisFailure`](crate::RedisFailure) answers
    /// [`certificate_rejected`](crate::RedisFailure::certificate_rejected)) from one that is
    /// down or slow (the store's operations fail until it is up). The store's own connection
    /// is not made nor changed.
    pub async fn connect_once(&self, deadline: Duration) -> Result<(), StoreError> {
        let attempt = async {
            let config = redis::AsyncConnectionConfig::new()
                .set_connection_timeout(Some(deadline))
                .set_response_timeout(Some(deadline));
            let mut connection = self
                .client
                .get_multiplexed_async_connection_with_config(&config)
                .await
                .map_err(|e| failed("connect", &e))?;
            redis::cmd("PING")
                .query_async::<()>(&mut connection)
                .await
                .map_err(|e| failed("PING", &e))
        };
        match tokio::time::timeout(deadline, attempt).await {
            Ok(outcome) => outcome,
            Err(_) => Err(StoreError::new(
                StoreErrorKind::Unavailable,
                "redis connect: timed out",
            )),
        }
    }

    /// The rate-limit script.
    pub(crate) fn limit_script(&self) -> &redis::Script {
        &self.limit
    }

    /// Runs one command on the connection within the timeout.
    pub(crate) async fn run<'a, T: redis::FromRedisValue>(
        &'a self,
        what: &'static str,
        command: impl FnOnce(ConnectionManager) -> redis::RedisFuture<'a, T>,
    ) -> Result<T, StoreError> {
        let connection = self.connection().await?;
        match tokio::time::timeout(self.timeout, command(connection)).await {
            Ok(Ok(value)) => Ok(value),
            Ok(Err(e)) => Err(failed(what, &e)),
            Err(_) => Err(StoreError::new(
                StoreErrorKind::Unavailable,
                format!("redis {what}: timed out"),
            )),
        }
    }
}

impl FleetStore for AsyncRedisStore {
    fn load<'a>(&'a self, key: &'a str) -> StoreFuture<'a, Option<Vec<u8>>> {
        let command = redis::cmd("GET").arg(key).clone();
        Box::pin(self.run("GET", move |mut c| {
            Box::pin(async move { command.query_async(&mut c).await })
        }))
    }

    fn save<'a>(
        &'a self,
        key: &'a str,
        value: &'a [u8],
        ttl: Option<Duration>,
    ) -> StoreFuture<'a, ()> {
        let mut command = redis::cmd("SET");
        command.arg(key).arg(value);
        if let Some(ttl) = ttl {
            command.arg("PX").arg(millis(ttl));
        }
        Box::pin(self.run("SET", move |mut c| {
            Box::pin(async move { command.query_async(&mut c).await })
        }))
    }

    fn try_lease<'a>(
        &'a self,
        key: &'a str,
        holder: &'a str,
        lease: Duration,
    ) -> StoreFuture<'a, bool> {
        let command = redis::cmd("SET")
            .arg(key)
            .arg(holder)
            .arg("NX")
            .arg("PX")
            .arg(millis(lease))
            .clone();
        Box::pin(async move {
            let set: Option<String> = self
                .run("SET NX", move |mut c| {
                    Box::pin(async move { command.query_async(&mut c).await })
                })
                .await?;
            Ok(set.is_some())
        })
    }

    fn release<'a>(&'a self, key: &'a str, holder: &'a str) -> StoreFuture<'a, ()> {
        Box::pin(async move {
            let _: i64 = self
                .run("release", move |mut c| {
                    Box::pin(async move {
                        let mut invocation = self.release.key(key);
                        invocation.arg(holder);
                        invocation.invoke_async(&mut c).await
                    })
                })
                .await?;
            Ok(())
        })
    }

    /// Subscribes to the lease's release channel (a connection of its own), then asks whether
    /// the lease is still held (so a release in between is not missed), then waits for the
    /// announcement, the lease's expiry, or `until` — parked on the task, never polling.
    fn wait_released<'a>(&'a self, key: &'a str, until: std::time::Instant) -> StoreFuture<'a, ()> {
        Box::pin(async move {
            let connect = self.client.get_async_pubsub();
            let mut pubsub = match tokio::time::timeout(self.timeout, connect).await {
                Ok(Ok(pubsub)) => pubsub,
                Ok(Err(e)) => return Err(failed("connect", &e)),
                Err(_) => {
                    return Err(StoreError::new(
                        StoreErrorKind::Unavailable,
                        "redis connect: timed out",
                    ));
                }
            };
            match tokio::time::timeout(self.timeout, pubsub.subscribe(released_channel(key))).await
            {
                Ok(Ok(())) => {}
                Ok(Err(e)) => return Err(failed("SUBSCRIBE", &e)),
                Err(_) => {
                    return Err(StoreError::new(
                        StoreErrorKind::Unavailable,
                        "redis SUBSCRIBE: timed out",
                    ));
                }
            }
            let command = redis::cmd("PTTL").arg(key).clone();
            let pttl: i64 = self
                .run("PTTL", move |mut c| {
                    Box::pin(async move { command.query_async(&mut c).await })
                })
                .await?;
            let Some(wait) = wait_for(pttl, until) else {
                return Ok(());
            };
            let mut messages = pubsub.on_message();
            // Released (a message), expired or past `until` (the timeout): either way, look.
            let _ = tokio::time::timeout(wait, futures_util::StreamExt::next(&mut messages)).await;
            Ok(())
        })
    }
}
