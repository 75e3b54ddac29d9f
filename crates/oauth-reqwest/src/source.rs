//! [`TokenSource`]: a shared, self-refreshing access token.

use std::sync::atomic::{AtomicBool, Ordering};
use std::sync::{Arc, Mutex, MutexGuard};
use std::time::{Duration, SystemTime};

use arc_swap::ArcSwapOption;
use oauth_core::http::{Request, Response};
use oauth_core::{
    AccessToken, Client, Decision, Endpoint, Error, RefreshPolicy, TokenLifecycle, TokenRequest,
    TokenResponse, TokenSnapshot, TokenVerdict, authorize_request, classify_resource_response,
};
use tokio::sync::Notify;

use crate::{HttpClient, SystemRandom};

type GrantFn = dyn Fn() -> Result<TokenRequest, Error> + Send + Sync;
type PersistFn = dyn Fn(&TokenResponse) + Send + Sync;

/// Builds a [`TokenSource`].
pub struct TokenSourceBuilder {
    http: HttpClient,
    endpoint: Endpoint,
    client: Client,
    policy: RefreshPolicy,
    grant: Option<Arc<GrantFn>>,
    seed: Option<TokenResponse>,
    on_token: Option<Arc<PersistFn>>,
}

impl TokenSourceBuilder {
    /// The request that obtains a token without the user (client credentials, password, JWT
    /// bearer…), sent whenever there is no refresh token to use.
    pub fn grant(self, request: TokenRequest) -> Self {
        self.grant_with(move || Ok(request.clone()))
    }

    /// Like [`grant`](Self::grant), but builds the request each time: for a JWT bearer grant,
    /// whose assertion must be signed afresh.
    pub fn grant_with(
        mut self,
        f: impl Fn() -> Result<TokenRequest, Error> + Send + Sync + 'static,
    ) -> Self {
        self.grant = Some(Arc::new(f));
        self
    }

    /// When to refresh, how much margin to keep, how to back off.
    pub fn policy(mut self, policy: RefreshPolicy) -> Self {
        self.policy = policy;
        self
    }

    /// Starts with this token (persisted by an earlier run, or obtained with the authorization
    /// code flow). Its refresh token, if any, is used for the next refresh.
    pub fn seed(mut self, token: TokenResponse) -> Self {
        self.seed = Some(token);
        self
    }

    /// Called after every successful token response, before callers see the new token: the
    /// place to persist a rotated refresh token. It runs on the refreshing task, so it should
    /// be quick.
    pub fn on_token(mut self, f: impl Fn(&TokenResponse) + Send + Sync + 'static) -> Self {
        self.on_token = Some(Arc::new(f));
        self
    }

    /// The token source.
    pub fn build(self) -> TokenSource {
        // The lifecycle only needs to know that a grant exists: the request it hands out is
        // replaced by a fresh one from the builder's function when it is sent.
        let grant = self
            .grant
            .as_ref()
            .map(|_| TokenRequest::extension("grant built when sent"));
        let mut lifecycle = TokenLifecycle::new(self.policy, grant);
        if let Some(seed) = self.seed {
            lifecycle.store(seed, SystemTime::now(), &SystemRandom);
        }
        let current = ArcSwapOption::new(lifecycle.snapshot().map(Published::new).map(Arc::new));
        TokenSource {
            inner: Arc::new(Inner {
                http: self.http,
                endpoint: self.endpoint,
                client: self.client,
                grant: self.grant,
                on_token: self.on_token,
                current,
                refreshing: AtomicBool::new(false),
                lifecycle: Mutex::new(lifecycle),
                changed: Notify::new(),
            }),
        }
    }
}

/// A shared access token that refreshes itself.
///
/// [`token`](Self::token) returns the cached token while the [`RefreshPolicy`] says it is
/// fresh, reading it without a lock. When a refresh is due it is started on a tokio task:
/// callers keep getting the still-valid token meanwhile; when there is no token to serve,
/// every caller waits for the same single request, and a failure reaches them all (then the
/// lifecycle backs off). Clones share the cache.
#[derive(Clone)]
pub struct TokenSource {
    inner: Arc<Inner>,
}

struct Inner {
    http: HttpClient,
    endpoint: Endpoint,
    client: Client,
    grant: Option<Arc<GrantFn>>,
    on_token: Option<Arc<PersistFn>>,
    /// The latest token, for the lock-free hot path.
    current: ArcSwapOption<Published>,
    /// Whether a refresh is in flight (so the hot path can serve a refresh-due token).
    refreshing: AtomicBool,
    lifecycle: Mutex<TokenLifecycle>,
    /// Signalled after every change of the lifecycle by a refresh.
    changed: Notify,
}

impl std::fmt::Debug for TokenSource {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        f.debug_struct("TokenSource")
            .field("endpoint", &self.inner.endpoint.as_str())
            .field("client", &self.inner.client)
            .finish_non_exhaustive()
    }
}

impl TokenSource {
    /// Starts building a token source for `client` at the token `endpoint`.
    pub fn builder(http: HttpClient, endpoint: Endpoint, client: Client) -> TokenSourceBuilder {
        TokenSourceBuilder {
            http,
            endpoint,
            client,
            policy: RefreshPolicy::default(),
            grant: None,
            seed: None,
            on_token: None,
        }
    }

    /// A valid access token: the cached one while it is fresh, otherwise a new one.
    pub async fn token(&self) -> Result<AccessToken, Error> {
        if let Some(published) = &*self.inner.current.load() {
            let now = coarsetime::Instant::now();
            if published.fresh_until.is_none_or(|t| now < t)
                || (published.serve_until.is_none_or(|t| now < t)
                    && self.inner.refreshing.load(Ordering::Acquire))
            {
                return Ok(published.token.clone());
            }
        }
        self.token_slow().await
    }

    async fn token_slow(&self) -> Result<AccessToken, Error> {
        loop {
            let changed = self.inner.changed.notified();
            tokio::pin!(changed);
            // Registered before polling, so a refresh that ends in between still wakes us.
            changed.as_mut().enable();
            let decision = self.inner.lock().poll(SystemTime::now());
            match decision {
                Decision::Use(token) => return Ok(token),
                Decision::UseAndRefresh(token, request) => {
                    self.spawn_refresh(request);
                    return Ok(token);
                }
                Decision::Refresh(request) => {
                    self.spawn_refresh(request);
                    changed.await;
                }
                Decision::Wait => changed.await,
                Decision::BackingOff { error, .. } | Decision::Fail(error) => return Err(error),
                _ => return Err(Error::ReauthorizationRequired),
            }
        }
    }

    /// Sends the refresh on its own task, so that a caller that stops waiting does not cancel
    /// it for the others.
    fn spawn_refresh(&self, request: TokenRequest) {
        self.inner.refreshing.store(true, Ordering::Release);
        let inner = self.inner.clone();
        tokio::spawn(async move {
            let mut guard = RefreshGuard {
                inner: &inner,
                done: false,
            };
            let request = match (&inner.grant, request.grant_type()) {
                (Some(grant), t) if t != "refresh_token" => grant(),
                _ => Ok(request),
            };
            let result = match request {
                Ok(request) => {
                    inner
                        .http
                        .request_token(&inner.endpoint, &inner.client, &request)
                        .await
                }
                Err(e) => Err(e),
            };
            if let (Ok(token), Some(persist)) = (&result, &inner.on_token) {
                persist(token);
            }
            {
                let mut lifecycle = inner.lock();
                lifecycle.handle_response(result, SystemTime::now(), &SystemRandom);
                inner.publish(&lifecycle);
            }
            guard.done = true;
        });
    }

    /// Drops `token` from the cache because a resource server rejected it, unless it was
    /// already replaced.
    pub fn invalidate(&self, token: &AccessToken) {
        let mut lifecycle = self.inner.lock();
        if lifecycle.invalidate(token) {
            self.inner.publish(&lifecycle);
        }
    }

    /// Stores a token obtained elsewhere (for example the authorization code exchange).
    pub fn store(&self, token: TokenResponse) {
        let mut lifecycle = self.inner.lock();
        lifecycle.store(token, SystemTime::now(), &SystemRandom);
        self.inner.publish(&lifecycle);
    }

    /// Sends a request to a protected resource with `Authorization: Bearer`. If the resource
    /// rejects the token (a 401 that oauth-core classifies as an expired or invalid token,
    /// such as Dataloy's `"Token expired."`), drops it, gets a new one and sends the request
    /// again, once. Redirects are returned, not followed.
    pub async fn send(&self, request: Request<Vec<u8>>) -> Result<Response<Vec<u8>>, Error> {
        self.inner.http.endpoint(&request.uri().to_string())?;
        let token = self.token().await?;
        let response = self.send_with(&request, &token).await?;
        if !matches!(
            classify_resource_response(&response),
            TokenVerdict::Rejected(_)
        ) {
            return Ok(response);
        }
        tracing::info!("the resource rejected the token; getting a new one and retrying once");
        self.invalidate(&token);
        let token = self.token().await?;
        self.send_with(&request, &token).await
    }

    async fn send_with(
        &self,
        request: &Request<Vec<u8>>,
        token: &AccessToken,
    ) -> Result<Response<Vec<u8>>, Error> {
        let mut copy = Request::new(request.body().clone());
        *copy.method_mut() = request.method().clone();
        *copy.uri_mut() = request.uri().clone();
        *copy.version_mut() = request.version();
        *copy.headers_mut() = request.headers().clone();
        authorize_request(&mut copy, token)?;
        let limit = self.inner.http.resource_limit();
        self.inner.http.execute(copy, limit).await
    }
}

impl Inner {
    fn lock(&self) -> MutexGuard<'_, TokenLifecycle> {
        self.lifecycle.lock().unwrap_or_else(|e| e.into_inner())
    }

    /// Makes the lifecycle's current token visible to the hot path and wakes waiters. Called
    /// with the lifecycle locked, so publications are ordered.
    fn publish(&self, lifecycle: &TokenLifecycle) {
        self.current
            .store(lifecycle.snapshot().map(Published::new).map(Arc::new));
        self.refreshing
            .store(lifecycle.is_refreshing(), Ordering::Release);
        self.changed.notify_waiters();
    }
}

/// The token as the hot path sees it: its deadlines moved onto the coarse monotonic clock
/// (`CLOCK_MONOTONIC_COARSE`, a few nanoseconds to read where `SystemTime::now` takes ~30),
/// and pulled earlier by [`SLACK`] to cover that clock's resolution. Past a deadline, the
/// caller takes the slow path, where the lifecycle decides with the wall clock.
struct Published {
    token: AccessToken,
    /// Until when the token is fresh (`None`: no known expiry).
    fresh_until: Option<coarsetime::Instant>,
    /// Until when it may be served while a refresh is in flight.
    serve_until: Option<coarsetime::Instant>,
}

/// More than the coarse clock's resolution (one jiffy, 1 to 10 ms).
const SLACK: Duration = Duration::from_millis(20);

impl Published {
    fn new(snapshot: &TokenSnapshot) -> Self {
        let wall = SystemTime::now();
        let coarse = coarsetime::Instant::now();
        let on_coarse_clock = |t: SystemTime| {
            let ahead = t.duration_since(wall).unwrap_or(Duration::ZERO);
            match ahead.checked_sub(SLACK) {
                Some(d) => coarse + coarsetime::Duration::from(d),
                None => coarse, // already due
            }
        };
        Self {
            token: snapshot.access_token().clone(),
            fresh_until: snapshot.refresh_at().map(on_coarse_clock),
            serve_until: snapshot.serve_until().map(on_coarse_clock),
        }
    }
}

/// Ends a refresh that did not finish (its task was cancelled or panicked), so that the next
/// caller starts another instead of waiting forever.
struct RefreshGuard<'a> {
    inner: &'a Inner,
    done: bool,
}

impl Drop for RefreshGuard<'_> {
    fn drop(&mut self) {
        if !self.done {
            let mut lifecycle = self.inner.lock();
            lifecycle.cancel_refresh();
            self.inner.publish(&lifecycle);
        }
    }
}
