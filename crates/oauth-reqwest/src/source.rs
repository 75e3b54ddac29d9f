//! [`TokenSource`]: a shared, self-refreshing access token, driven on tokio.

use std::sync::Arc;

use oauth_core::http::{Request, Response};
use oauth_core::{
    AccessToken, Client, Decision, Endpoint, Error, Invalidated, TokenRequest, TokenResponse,
};
use oauth_runtime::{OwnedRefresh, SourceCore, SourceKind, SourceParts, now};
use tokio::sync::Notify;

use crate::HttpClient;

/// Builds a [`TokenSource`]; see [`TokenSource::builder`].
pub type TokenSourceBuilder = oauth_runtime::TokenSourceBuilder<TokenSource>;

/// A shared access token that refreshes itself.
///
/// [`token`](Self::token) returns the cached token while the `RefreshPolicy` says it is
/// fresh, reading it without a lock. When a refresh is due it is started on a tokio task:
/// callers keep getting the still-valid token meanwhile; when there is no token to serve,
/// every caller waits for the same single request (within [`HttpConfig::timeout`](oauth_runtime::HttpConfig)),
/// and after a failure they wait for the next attempt rather than get the error replayed. Clones
/// share the cache.
#[derive(Clone, Debug)]
pub struct TokenSource {
    inner: Arc<SourceCore<HttpClient>>,
    /// Woken after every change of the shared state.
    changed: Arc<Notify>,
}

impl SourceKind for TokenSource {
    type Http = HttpClient;

    fn assemble(parts: SourceParts<HttpClient>) -> Self {
        let changed = Arc::new(Notify::new());
        let wake = changed.clone();
        let inner = parts.into_core(Some(Box::new(move || wake.notify_waiters())));
        Self {
            inner: Arc::new(inner),
            changed,
        }
    }
}

impl TokenSource {
    /// Starts building a token source for `client` at the token `endpoint`.
    pub fn builder(http: HttpClient, endpoint: Endpoint, client: Client) -> TokenSourceBuilder {
        TokenSourceBuilder::new(http, endpoint, client)
    }

    /// A valid access token: the cached one while it is fresh, otherwise a new one.
    #[inline]
    pub async fn token(&self) -> Result<AccessToken, Error> {
        match self.inner.shared.cached() {
            Some(token) => Ok(token),
            None => Box::pin(self.token_slow()).await,
        }
    }

    /// The cached token if it may be served now, without waiting or refreshing.
    pub fn cached(&self) -> Option<AccessToken> {
        self.inner.shared.cached()
    }

    async fn token_slow(&self) -> Result<AccessToken, Error> {
        let deadline = self.inner.http.config().deadline(now());
        loop {
            // A waiter woken by a finished refresh takes the published token without a lock:
            // a herd of waiters does not queue on the lifecycle's mutex or the `Notify`.
            if let Some(token) = self.inner.shared.cached() {
                return Ok(token);
            }
            let changed = self.changed.notified();
            tokio::pin!(changed);
            // Registered before polling, so a refresh that ends in between still wakes us.
            changed.as_mut().enable();
            // A refresh is in flight: wait for its end without taking the lifecycle's lock (a
            // herd of callers would queue on it). It ends within its own deadline.
            if self.inner.shared.refreshing() {
                changed.await;
                continue;
            }
            match self.inner.shared.poll(deadline).0 {
                Decision::Use(token) => return Ok(token),
                Decision::UseAndRefresh(token, request) => {
                    self.spawn_refresh(request);
                    return Ok(token);
                }
                Decision::Refresh(request) => {
                    self.spawn_refresh(request);
                    changed.await;
                }
                // A refresh in flight: its end wakes us (no timer per waiter).
                Decision::Wait { until: None } => changed.await,
                Decision::Wait { until: Some(until) } => {
                    let _ = tokio::time::timeout_at(until.into(), changed).await;
                }
                Decision::Fail(error) => return Err(error),
                _ => {
                    return Err(oauth_runtime::internal_error(
                        "TokenSource::token met a Decision it does not know",
                    ));
                }
            }
        }
    }

    /// Sends the refresh on its own task, so that a caller that stops waiting does not cancel
    /// it for the others. The refresh is taken in charge before the spawn: if the task never
    /// runs, it is given back.
    fn spawn_refresh(&self, request: TokenRequest) {
        let refresh = OwnedRefresh::new(Arc::clone(&self.inner));
        tokio::spawn(async move {
            let result = refresh.core().obtain(&request).await;
            refresh.finish(result);
        });
    }

    /// Drops `token` from the cache because a resource server rejected it, and says what
    /// happened: [`Invalidated::Dropped`]; [`Invalidated::AlreadyReplaced`] (another caller
    /// got there first); [`Invalidated::Damped`] (tokens keep being rejected and the backoff
    /// since the last drop has not passed, so the token is kept rather than a new one fetched
    /// per call); or [`Invalidated::NoNewToken`]. [`Invalidated::retry`] is whether sending
    /// the request again with a new token is worth it. `send()` does all this itself.
    pub fn invalidate(&self, token: &AccessToken) -> Invalidated {
        self.inner.shared.invalidate(token)
    }

    /// Stores a token obtained elsewhere (for example the authorization code exchange).
    pub fn store(&self, token: TokenResponse) {
        self.inner.shared.store(token);
    }

    /// Sends a request to a protected resource with `Authorization: Bearer` — or, for a token
    /// issued as `DPoP` to a client built `with_dpop`, `Authorization: DPoP` and a proof
    /// (RFC 9449; once more with the nonce a resource asks for). If the resource rejects the
    /// token (a 401 that the source's `RejectionClassifier` reads as an expired or invalid
    /// token, such as Dataloy's `"Token expired."`), drops it, gets a new one and sends the
    /// request again, once. A token of another type (`mac`, or `DPoP` without the key) is
    /// refused with `Error::UnsupportedTokenType`. Redirects are returned, not followed.
    pub async fn send(&self, request: Request<Vec<u8>>) -> Result<Response<Vec<u8>>, Error> {
        let inner = &self.inner;
        oauth_runtime::send(
            &inner.http,
            &inner.shared,
            &inner.classifier,
            inner.client.dpop(),
            request,
            || self.token(),
        )
        .await
    }

    /// Sends a caller's request through a caller's stack with the token (the client
    /// middlewares' common path).
    #[cfg(any(feature = "middleware", feature = "tower"))]
    pub(crate) async fn authorized<D: oauth_runtime::Downstream>(
        &self,
        downstream: &mut D,
        request: D::Request,
    ) -> Result<D::Response, D::Error> {
        let inner = &self.inner;
        oauth_runtime::authorized(
            downstream,
            &inner.shared,
            &inner.classifier,
            inner.client.dpop(),
            request,
            || self.token(),
        )
        .await
    }
}
