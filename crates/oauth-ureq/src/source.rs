//! [`TokenSource`]: a shared, self-refreshing access token.

use std::sync::atomic::{AtomicBool, Ordering};
use std::sync::{Arc, Condvar, Mutex, MutexGuard};
use std::time::{Duration, SystemTime};

use arc_swap::ArcSwapOption;
use oauth_core::http::{Request, Response};
use oauth_core::{
    AccessToken, Client, Decision, Endpoint, Error, RefreshPolicy, TokenLifecycle, TokenRequest,
    TokenResponse, TokenSnapshot, TokenVerdict, authorize_request, classify_resource_response,
};

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
                state: Mutex::new(State {
                    lifecycle,
                    generation: 0,
                }),
                changed: Condvar::new(),
            }),
        }
    }
}

/// A shared access token that refreshes itself.
///
/// [`token`](Self::token) returns the cached token while the [`RefreshPolicy`] says it is
/// fresh, reading it without a lock. When a refresh is due ahead of expiry it runs on a
/// background thread: callers keep getting the still-valid token meanwhile. When there is no
/// token to serve, the first caller sends the request and every other caller waits for it; a
/// failure reaches them all (then the lifecycle backs off). Clones share the cache.
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
    state: Mutex<State>,
    /// Signalled after every change of the lifecycle by a refresh.
    changed: Condvar,
}

struct State {
    lifecycle: TokenLifecycle,
    /// Counts publications, so that waiters know when something changed.
    generation: u64,
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
    pub fn token(&self) -> Result<AccessToken, Error> {
        if let Some(published) = &*self.inner.current.load() {
            let now = coarsetime::Instant::now();
            if published.fresh_until.is_none_or(|t| now < t)
                || (published.serve_until.is_none_or(|t| now < t)
                    && self.inner.refreshing.load(Ordering::Acquire))
            {
                return Ok(published.token.clone());
            }
        }
        self.token_slow()
    }

    fn token_slow(&self) -> Result<AccessToken, Error> {
        let mut state = self.inner.lock();
        loop {
            match state.lifecycle.poll(SystemTime::now()) {
                Decision::Use(token) => return Ok(token),
                Decision::UseAndRefresh(token, request) => {
                    drop(state);
                    self.refresh_in_background(request);
                    return Ok(token);
                }
                Decision::Refresh(request) => {
                    self.inner.refreshing.store(true, Ordering::Release);
                    drop(state);
                    // This caller sends the request; the others wait for it.
                    refresh(&self.inner, request);
                    state = self.inner.lock();
                }
                Decision::Wait => {
                    let seen = state.generation;
                    while state.generation == seen {
                        state = self
                            .inner
                            .changed
                            .wait(state)
                            .unwrap_or_else(|e| e.into_inner());
                    }
                }
                Decision::BackingOff { error, .. } | Decision::Fail(error) => return Err(error),
                _ => return Err(Error::ReauthorizationRequired),
            }
        }
    }

    fn refresh_in_background(&self, request: TokenRequest) {
        self.inner.refreshing.store(true, Ordering::Release);
        let inner = self.inner.clone();
        let spawned = std::thread::Builder::new()
            .name("oauth-token-refresh".into())
            .spawn(move || refresh(&inner, request));
        if spawned.is_err() {
            // No thread: give the refresh back so that a later caller sends it.
            let mut state = self.inner.lock();
            state.lifecycle.cancel_refresh();
            self.inner.publish(&mut state);
        }
    }

    /// Drops `token` from the cache because a resource server rejected it, unless it was
    /// already replaced.
    pub fn invalidate(&self, token: &AccessToken) {
        let mut state = self.inner.lock();
        if state.lifecycle.invalidate(token) {
            self.inner.publish(&mut state);
        }
    }

    /// Stores a token obtained elsewhere (for example the authorization code exchange).
    pub fn store(&self, token: TokenResponse) {
        let mut state = self.inner.lock();
        state
            .lifecycle
            .store(token, SystemTime::now(), &SystemRandom);
        self.inner.publish(&mut state);
    }

    /// Sends a request to a protected resource with `Authorization: Bearer`. If the resource
    /// rejects the token (a 401 that oauth-core classifies as an expired or invalid token,
    /// such as Dataloy's `"Token expired."`), drops it, gets a new one and sends the request
    /// again, once. Redirects are returned, not followed.
    pub fn send(&self, request: Request<Vec<u8>>) -> Result<Response<Vec<u8>>, Error> {
        self.inner.http.endpoint(&request.uri().to_string())?;
        let token = self.token()?;
        let response = self.send_with(&request, &token)?;
        if !matches!(
            classify_resource_response(&response),
            TokenVerdict::Rejected(_)
        ) {
            return Ok(response);
        }
        tracing::info!("the resource rejected the token; getting a new one and retrying once");
        self.invalidate(&token);
        let token = self.token()?;
        self.send_with(&request, &token)
    }

    fn send_with(
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
        self.inner.http.execute(copy, limit)
    }
}

/// Sends the refresh handed out by the lifecycle and reports its result.
fn refresh(inner: &Inner, request: TokenRequest) {
    let mut guard = RefreshGuard { inner, done: false };
    let request = match (&inner.grant, request.grant_type()) {
        (Some(grant), t) if t != "refresh_token" => grant(),
        _ => Ok(request),
    };
    let result = request.and_then(|request| {
        inner
            .http
            .request_token(&inner.endpoint, &inner.client, &request)
    });
    if let (Ok(token), Some(persist)) = (&result, &inner.on_token) {
        persist(token);
    }
    let mut state = inner.lock();
    state
        .lifecycle
        .handle_response(result, SystemTime::now(), &SystemRandom);
    inner.publish(&mut state);
    guard.done = true;
}

impl Inner {
    fn lock(&self) -> MutexGuard<'_, State> {
        self.state.lock().unwrap_or_else(|e| e.into_inner())
    }

    /// Makes the lifecycle's current token visible to the hot path and wakes waiters. Called
    /// with the lifecycle locked, so publications are ordered.
    fn publish(&self, state: &mut State) {
        self.current
            .store(state.lifecycle.snapshot().map(Published::new).map(Arc::new));
        self.refreshing
            .store(state.lifecycle.is_refreshing(), Ordering::Release);
        state.generation = state.generation.wrapping_add(1);
        self.changed.notify_all();
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

/// Ends a refresh that did not finish (it panicked), so that the next
/// caller starts another instead of waiting forever.
struct RefreshGuard<'a> {
    inner: &'a Inner,
    done: bool,
}

impl Drop for RefreshGuard<'_> {
    fn drop(&mut self) {
        if !self.done {
            let mut state = self.inner.lock();
            state.lifecycle.cancel_refresh();
            self.inner.publish(&mut state);
        }
    }
}
