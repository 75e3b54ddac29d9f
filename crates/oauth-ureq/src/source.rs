//! [`TokenSource`]: a shared, self-refreshing access token, driven on threads.

use std::sync::Arc;

use oauth_core::http::{Request, Response};
use oauth_core::{
    AccessToken, Client, Decision, Endpoint, Error, Invalidated, TokenRequest, TokenResponse,
};
use oauth_runtime::{SourceCore, SourceKind, SourceParts, block_on, now};

use crate::HttpClient;

/// Builds a [`TokenSource`]; see [`TokenSource::builder`].
pub type TokenSourceBuilder = oauth_runtime::TokenSourceBuilder<TokenSource>;

/// A shared access token that refreshes itself.
///
/// [`token`](Self::token) returns the cached token while the `RefreshPolicy` says it is
/// fresh, reading it without a lock. When a refresh is due ahead of expiry it runs on a
/// background thread: callers keep getting the still-valid token meanwhile. When there is no
/// token to serve, the first caller sends the request and every other caller waits for it
/// (within [`HttpConfig::timeout`](oauth_runtime::HttpConfig)); after a failure they wait for
/// the next attempt rather than get the error replayed. Clones share the cache.
#[derive(Clone, Debug)]
pub struct TokenSource {
    inner: Arc<SourceCore<HttpClient>>,
}

impl SourceKind for TokenSource {
    type Http = HttpClient;

    fn assemble(parts: SourceParts<HttpClient>) -> Self {
        Self {
            inner: Arc::new(parts.into_core(None)),
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
    pub fn token(&self) -> Result<AccessToken, Error> {
        match self.inner.shared.cached() {
            Some(token) => Ok(token),
            None => self.token_slow(),
        }
    }

    /// The cached token if it may be served now, without waiting or refreshing.
    pub fn cached(&self) -> Option<AccessToken> {
        self.inner.shared.cached()
    }

    fn token_slow(&self) -> Result<AccessToken, Error> {
        let deadline = self.inner.http.config().deadline(now());
        loop {
            // A waiter woken by a finished refresh takes the published token without a lock.
            if let Some(token) = self.inner.shared.cached() {
                return Ok(token);
            }
            let (decision, generation) = self.inner.shared.poll(deadline);
            match decision {
                Decision::Use(token) => return Ok(token),
                Decision::UseAndRefresh(token, request) => {
                    self.refresh_in_background(request);
                    return Ok(token);
                }
                // This caller sends the request; the others wait for it.
                Decision::Refresh(request) => refresh(&self.inner, &request),
                Decision::Wait { until } => self.inner.shared.wait(generation, until),
                Decision::Fail(error) => return Err(error),
                _ => {
                    return Err(oauth_runtime::internal_error(
                        "TokenSource::token met a Decision it does not know",
                    ));
                }
            }
        }
    }

    fn refresh_in_background(&self, request: TokenRequest) {
        let inner = self.inner.clone();
        let spawned = std::thread::Builder::new()
            .name("oauth-token-refresh".into())
            .spawn(move || refresh(&inner, &request));
        if spawned.is_err() {
            // No thread: give the refresh back so that a later caller sends it.
            self.inner.shared.cancel();
        }
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
    pub fn send(&self, request: Request<Vec<u8>>) -> Result<Response<Vec<u8>>, Error> {
        let inner = &self.inner;
        block_on(oauth_runtime::send(
            &inner.http,
            &inner.shared,
            &inner.classifier,
            inner.client.dpop(),
            request,
            || std::future::ready(self.token()),
        ))
    }

    /// The parts the middlewares drive a call with.
    pub(crate) fn parts(
        &self,
    ) -> (
        &oauth_runtime::SharedToken,
        &oauth_core::RejectionClassifier,
        Option<&oauth_core::Dpop>,
    ) {
        let inner = &self.inner;
        (&inner.shared, &inner.classifier, inner.client.dpop())
    }
}

/// Sends the refresh handed out by the lifecycle and reports its result.
fn refresh(inner: &SourceCore<HttpClient>, request: &TokenRequest) {
    let guard = inner.shared.guard();
    let result = block_on(inner.obtain(request));
    guard.finish(result);
}

#[cfg(test)]
mod tests {
    #![allow(clippy::unwrap_used, clippy::expect_used, clippy::panic)]

    use oauth_core::{Assertion, ClientAssertion, ClientAuthentication, ClientSecret};

    use super::*;
    use crate::HttpConfig;

    fn builder(auth: ClientAuthentication) -> TokenSourceBuilder {
        let config = HttpConfig::default().timeout(std::time::Duration::from_millis(500));
        let http = HttpClient::new(config).unwrap();
        // Nothing listens on port 1: a request that is sent fails as a transport error.
        let endpoint = http.endpoint("https://127.0.0.1:1/token").unwrap();
        TokenSource::builder(http, endpoint, Client::new("app", auth))
            .grant(TokenRequest::client_credentials())
    }

    fn presigned() -> ClientAuthentication {
        ClientAuthentication::Assertion(ClientAssertion::jwt(Assertion::new("h.p.s")))
    }

    #[test]
    fn a_presigned_client_assertion_is_refused_at_build_naming_the_signer() {
        let e = builder(presigned()).try_build().unwrap_err();
        assert_eq!(e.fault(), oauth_core::Fault::Caller);
        let text = e.to_string();
        assert!(text.contains("AssertionSigner"), "{text}");
        assert!(text.contains("ClientAssertionSigner"), "{text}");
        assert!(text.contains("ClientAuthentication::Signed"), "{text}");
        // The assertion itself is not in the message.
        assert!(!format!("{text} {e:?}").contains("h.p.s"));
    }

    #[test]
    fn a_source_built_anyway_from_a_presigned_assertion_sends_nothing() {
        let source = builder(presigned()).build();
        for _ in 0..2 {
            let e = source.token().unwrap_err();
            // Not a transport error: no request was sent to the endpoint.
            assert!(
                matches!(
                    e,
                    Error::InvalidParameter {
                        name: "client_assertion",
                        ..
                    }
                ),
                "{e:?}"
            );
        }
    }

    #[test]
    fn every_body_type_goes_through_the_same_door() {
        let http = builder(ClientAuthentication::None)
            .build()
            .inner
            .http
            .clone();
        let issuer = http.endpoint("https://127.0.0.1:1").unwrap();
        // discovery_request's `Request<()>`, a caller's `Vec<u8>`, a core-built RequestBody:
        // each is sent (and fails at the closed port), none needs a `map`.
        let discovery =
            oauth_core::discovery_request(&issuer, oauth_core::WellKnown::OpenIdConfiguration)
                .unwrap();
        assert!(matches!(
            http.execute_oauth(discovery.clone()),
            Err(Error::Transport(_))
        ));
        assert!(matches!(http.execute(discovery), Err(Error::Transport(_))));
        let plain = Request::post("https://127.0.0.1:1/x")
            .body(b"a".to_vec())
            .unwrap();
        assert!(matches!(http.execute(plain), Err(Error::Transport(_))));
        let built = TokenRequest::client_credentials()
            .build(&issuer, &Client::new("app", ClientAuthentication::None))
            .unwrap();
        assert!(matches!(http.execute(built), Err(Error::Transport(_))));
    }

    #[test]
    fn other_clients_build_and_send() {
        let source = builder(ClientAuthentication::SecretBasic(ClientSecret::new("s")))
            .try_build()
            .unwrap();
        // It did try the (closed) endpoint.
        assert!(matches!(source.token(), Err(Error::Transport(_))));
    }
}
