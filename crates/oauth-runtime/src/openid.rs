//! Verified tokens, for both adapters: a JWK set fetched from `jwks_uri` and cached
//! ([`RemoteKeys`], on oauth-core's `JwksCache`), and the OpenID Connect relying party
//! ([`OpenIdCore`]): the code exchange that validates the id_token by itself, refreshes, and
//! UserInfo. Signatures are jwt-assertion's (ring); the claim rules are oauth-core's.

use std::fmt;
use std::sync::atomic::{AtomicU64, Ordering};
use std::sync::{Arc, Mutex};
use std::time::{Duration, Instant};

use jwt_assertion::Algorithm;
use jwt_assertion::verify::{self, KeySet, Verified, VerifyError, VerifyingKey};
use oauth_core::client::profile::Profile;
use oauth_core::http::header::ACCEPT;
use oauth_core::http::{HeaderValue, Request, StatusCode};
use oauth_core::{
    AccessToken, Client, ClientAuthentication, Endpoint, Error, IdToken, IdTokenChecks,
    IdTokenClaims, IdTokenError, JwksCache, JwksDecision, PendingAuthorization, RefreshToken,
    RequestBody, ServerMetadata, TokenRequest, TokenResponse, TransportError, TransportErrorKind,
    UnexpectedReason, UnexpectedResponse, UserInfo, UserInfoResponse, parse_userinfo_response,
    userinfo_request_with, validate_userinfo,
};

use crate::drive::{Io, exchange, execute_oauth, request_token};
use crate::{Signal, now};

/// A JWK set at `jwks_uri`, fetched when first needed, cached, and fetched again past its max
/// age or when a token names a `kid` it does not hold — at most once per
/// `min_refetch_interval` for that reason, so a flood of tokens with made-up `kid`s costs at
/// most `2 + T / interval + T / max_age` fetches over a span `T` (10 minutes and 30 seconds by
/// default: see [`JwksCache`]). After a failed fetch, the next caller that needs the keys (no
/// set, or an unknown `kid`) fetches again once a backoff has passed (1 s, doubling up to the
/// interval; reset by a success). One fetch at a time; other callers wait for it.
pub struct RemoteKeys {
    uri: Endpoint,
    cache: Mutex<JwksCache<KeySet>>,
    fetches: AtomicU64,
    /// Raised when a fetch ends (or is abandoned), for the callers waiting on it.
    fetched: Signal,
}

impl fmt::Debug for RemoteKeys {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        f.debug_struct("RemoteKeys")
            .field("uri", &self.uri.as_str())
            .field("fetches", &self.fetches())
            .finish_non_exhaustive()
    }
}

/// Why a token could not be verified with a [`RemoteKeys`] set.
#[derive(Clone, Debug)]
#[non_exhaustive]
pub enum KeysError {
    /// The token was refused (signature, algorithm, key, format).
    Refused(VerifyError),
    /// No key set could be had (the JWKS endpoint failed and none is cached).
    Unavailable(Error),
}

impl fmt::Display for KeysError {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        match self {
            Self::Refused(e) => fmt::Display::fmt(e, f),
            Self::Unavailable(e) => write!(f, "the JWK set could not be fetched: {e}"),
        }
    }
}

impl std::error::Error for KeysError {}

impl RemoteKeys {
    /// The set at `uri` (discovery's `jwks_uri`), with [`JwksCache`]'s default timing.
    pub fn new(uri: Endpoint) -> Self {
        Self::with_cache(uri, JwksCache::new())
    }

    /// The set at `uri`, fetched again as `cache` says.
    pub fn with_cache(uri: Endpoint, cache: JwksCache<KeySet>) -> Self {
        Self {
            uri,
            cache: Mutex::new(cache),
            fetches: AtomicU64::new(0),
            fetched: Signal::new(),
        }
    }

    /// Where the set is fetched from.
    pub fn uri(&self) -> &Endpoint {
        &self.uri
    }

    /// How many times the set was fetched (successfully or not).
    pub fn fetches(&self) -> u64 {
        self.fetches.load(Ordering::Relaxed)
    }

    /// Verifies a compact JWS with a key of the set, allowing only `allowed` algorithms. A
    /// token naming an unknown `kid` makes the set be fetched again (when the rate limit
    /// allows) and is verified once more.
    pub async fn verify<I: Io>(
        &self,
        io: &I,
        token: &str,
        allowed: &[Algorithm],
    ) -> Result<Verified, KeysError> {
        let mut unknown_kid = false;
        loop {
            let keys = self
                .keys(io, unknown_kid)
                .await
                .map_err(KeysError::Unavailable)?;
            match verify::verify(token, &keys, allowed) {
                Err(VerifyError::NoKey { .. }) if !unknown_kid => unknown_kid = true,
                result => return result.map_err(KeysError::Refused),
            }
        }
    }

    /// The set to verify with: cached, or fetched now (or by another caller, waited for).
    pub async fn keys<I: Io>(&self, io: &I, unknown_kid: bool) -> Result<Arc<KeySet>, Error> {
        let deadline = io.config().deadline(now());
        let mut unknown_kid = unknown_kid;
        loop {
            // Read before looking, so that a fetch ending after the look still wakes us.
            let seen = self.fetched.generation();
            let decision = self.lock().poll(Instant::now(), unknown_kid);
            match decision {
                JwksDecision::Use(keys) => return Ok(keys),
                JwksDecision::Fail(e) => return Err(e),
                JwksDecision::Fetch => {
                    let fetch = InFlightFetch { keys: self };
                    self.fetches.fetch_add(1, Ordering::Relaxed);
                    let result = self.fetch(io).await;
                    match &result {
                        Ok(set) => tracing::debug!(
                            jwks_uri = self.uri.as_str(),
                            keys = set.keys().len(),
                            "JWK set fetched"
                        ),
                        Err(e) => tracing::warn!(
                            jwks_uri = self.uri.as_str(),
                            error = %e,
                            "JWK set fetch failed"
                        ),
                    }
                    fetch.finish(result);
                    // Fetched (or failed): what the cache now holds decides.
                    unknown_kid = false;
                }
                JwksDecision::Wait => {
                    let now = Instant::now();
                    if now >= deadline {
                        return Err(TransportError::new(
                            TransportErrorKind::Timeout,
                            "waiting for the JWK set",
                        )
                        .into());
                    }
                    io.wait(&self.fetched, seen, deadline).await;
                }
                _ => return Err(crate::internal_error("an unknown JWK set cache decision")),
            }
        }
    }

    async fn fetch<I: Io>(&self, io: &I) -> Result<KeySet, Error> {
        let request = Request::get(self.uri.uri().clone())
            .header(
                ACCEPT,
                HeaderValue::from_static("application/jwk-set+json, application/json"),
            )
            .body(RequestBody::default())
            .map_err(|_| Error::InvalidHeaderValue { what: "jwks_uri" })?;
        let response = execute_oauth(io, request).await?;
        let content_type = response
            .headers()
            .get(oauth_core::http::header::CONTENT_TYPE)
            .and_then(|v| v.to_str().ok());
        let unexpected = |reason| {
            Error::UnexpectedResponse(UnexpectedResponse::new(
                response.status(),
                content_type,
                response.body(),
                reason,
            ))
        };
        if response.status() != StatusCode::OK {
            return Err(unexpected(UnexpectedReason::Status));
        }
        KeySet::from_jwks(response.body()).map_err(|_| unexpected(UnexpectedReason::Unparseable))
    }

    fn lock(&self) -> std::sync::MutexGuard<'_, JwksCache<KeySet>> {
        self.cache.lock().unwrap_or_else(|e| e.into_inner())
    }
}

/// A fetch handed out by the cache: reported when it ends, abandoned if its task is dropped
/// (so that the next caller fetches instead of waiting forever).
struct InFlightFetch<'a> {
    keys: &'a RemoteKeys,
}

impl InFlightFetch<'_> {
    fn finish(self, result: Result<KeySet, Error>) {
        self.keys.lock().handle_response(result, Instant::now());
        self.keys.fetched.notify();
        std::mem::forget(self);
    }
}

impl Drop for InFlightFetch<'_> {
    fn drop(&mut self) {
        self.keys.lock().cancel();
        self.keys.fetched.notify();
    }
}

/// The result of an authorization-code exchange or a refresh with an OpenID Connect provider:
/// the tokens, and the id_token's claims once validated.
#[derive(Clone, Debug)]
#[non_exhaustive]
pub struct Login {
    /// The token response.
    pub token: TokenResponse,
    /// The id_token's claims, verified (signature, then OpenID Connect Core §3.1.3.7), when
    /// the response held an id_token. Always present when `openid` was asked for.
    pub id_token: Option<IdTokenClaims>,
}

/// An OpenID Connect relying party, the part both adapters share: the provider's discovered
/// metadata, this client, the provider's keys, and the rules for accepting its id_tokens.
pub struct OpenIdCore {
    metadata: ServerMetadata,
    client: Client,
    token_endpoint: Endpoint,
    keys: RemoteKeys,
    allowed: Vec<Algorithm>,
    hmac: Option<KeySet>,
    leeway: Duration,
    profile: Option<Profile>,
}

impl fmt::Debug for OpenIdCore {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        f.debug_struct("OpenIdCore")
            .field("issuer", &self.metadata.issuer())
            .field("client", &self.client)
            .field("keys", &self.keys)
            .field("allowed", &self.allowed)
            .field("profile", &self.profile)
            .finish_non_exhaustive()
    }
}

impl OpenIdCore {
    /// The relying party for `client` at the provider `metadata` describes (it must name a
    /// token endpoint and a `jwks_uri`). id_tokens are accepted when signed with an
    /// asymmetric algorithm the provider lists in `id_token_signing_alg_values_supported`
    /// (RS256 when it lists none, OpenID Connect's default). A client that authenticates with
    /// mutual TLS (RFC 8705 §2) uses the provider's `mtls_endpoint_aliases` (§5).
    pub fn new(metadata: ServerMetadata, client: Client) -> Result<Self, Error> {
        // A client that authenticates with mutual TLS uses the server's mTLS aliases.
        let metadata = metadata.for_client(&client);
        let missing = |name| Error::MissingParameter { name };
        let token_endpoint = metadata
            .token_endpoint()
            .cloned()
            .ok_or(missing("token_endpoint"))?;
        let jwks_uri = metadata.jwks_uri().cloned().ok_or(missing("jwks_uri"))?;
        let mut allowed: Vec<Algorithm> = metadata
            .supported("id_token_signing_alg_values_supported")
            .into_iter()
            .filter_map(Algorithm::from_name)
            .filter(|a| a.is_asymmetric())
            .collect();
        if allowed.is_empty() {
            allowed.push(Algorithm::RS256);
        }
        Ok(Self {
            metadata,
            client,
            token_endpoint,
            keys: RemoteKeys::new(jwks_uri),
            allowed,
            hmac: None,
            leeway: Duration::from_secs(60),
            profile: None,
        })
    }

    /// Holds this relying party to `profile`, or says which rule its configuration breaks
    /// ([`Error::Profile`], naming the missing piece); nothing is sent either way.
    ///
    /// With [`Profile::Fapi2`]: the client must authenticate with `private_key_jwt` (PS256,
    /// ES256 or EdDSA; assertions living at most 60 s, for the issuer as their audience) or
    /// mutual TLS, and hold a DPoP key or
    /// use mutual TLS; the provider must take pushed authorization requests. Then every
    /// authorization request is pushed ([`begin`](Self::begin)), must use PKCE `S256`,
    /// requires the redirect's `iss` (RFC 9207), and a request object in it must be signed
    /// with an allowed algorithm for at most 60 s; id_tokens are accepted only with PS256,
    /// ES256 or EdDSA signatures (and never with the client secret).
    ///
    /// ```no_run
    /// # fn run(metadata: oauth_core::ServerMetadata, client: oauth_core::Client) -> Result<(), oauth_core::Error> {
    /// use oauth_core::client::profile::Profile;
    /// let rp = oauth_runtime::OpenIdCore::new(metadata, client)?.profile(Profile::Fapi2)?;
    /// # let _ = rp; Ok(()) }
    /// ```
    pub fn profile(mut self, profile: Profile) -> Result<Self, Error> {
        profile.check_client(&self.client, self.metadata.issuer())?;
        profile.check_server(&self.metadata)?;
        let names: Vec<&str> = self.allowed.iter().map(|a| a.as_str()).collect();
        let kept: Vec<Algorithm> = profile
            .id_token_algorithms(&names)?
            .into_iter()
            .filter_map(Algorithm::from_name)
            .collect();
        self.allowed = kept;
        self.hmac = None;
        self.profile = Some(profile);
        Ok(self)
    }

    /// Accepts only these algorithms for id_tokens and signed UserInfo.
    pub fn algorithms(mut self, allowed: &[Algorithm]) -> Self {
        self.allowed = allowed.to_vec();
        if self.profile.is_some() {
            // A profile's algorithms stay the only ones accepted.
            self.allowed
                .retain(|a| oauth_core::client::profile::FAPI2_ALGORITHMS.contains(&a.as_str()));
        }
        self
    }

    /// Also accepts id_tokens signed with the client secret (HS256/384/512, OpenID Connect
    /// Core §10.1), for providers configured that way. Refused for a client without a secret.
    pub fn allow_client_secret_signatures(mut self) -> Result<Self, Error> {
        if let Some(profile) = self.profile {
            profile.id_token_algorithms(&["HS256", "HS384", "HS512"])?;
        }
        let secret = match self.client.authentication() {
            ClientAuthentication::SecretBasic(s)
            | ClientAuthentication::SecretBasicVerbatim(s)
            | ClientAuthentication::SecretPost(s) => s.expose_secret().as_bytes().to_vec(),
            _ => {
                return Err(Error::MissingParameter {
                    name: "client_secret",
                });
            }
        };
        self.hmac = Some(KeySet::new().with(VerifyingKey::hmac(&secret)));
        for alg in [Algorithm::HS256, Algorithm::HS384, Algorithm::HS512] {
            if !self.allowed.contains(&alg) {
                self.allowed.push(alg);
            }
        }
        Ok(self)
    }

    /// The clock skew allowed for `exp`, `iat`, `nbf` and `auth_time` (60 s by default).
    pub fn leeway(mut self, leeway: Duration) -> Self {
        self.leeway = leeway;
        self
    }

    /// How the provider's JWK set is fetched again (max age, rate limit for unknown `kid`s).
    pub fn key_cache(mut self, cache: JwksCache<KeySet>) -> Self {
        self.keys = RemoteKeys::with_cache(self.keys.uri.clone(), cache);
        self
    }

    /// An authorization request to the provider for this client, redirecting to
    /// `redirect_uri`, expecting the provider's `iss` on the redirect (RFC 9207; required
    /// when the provider says it sends it). Add the scopes (`openid`, ...) and build it.
    pub fn authorization_request(
        &self,
        redirect_uri: &str,
    ) -> Result<oauth_core::AuthorizationRequest, Error> {
        let endpoint =
            self.metadata
                .authorization_endpoint()
                .cloned()
                .ok_or(Error::MissingParameter {
                    name: "authorization_endpoint",
                })?;
        let client_id = self
            .client
            .id()
            .cloned()
            .ok_or(Error::MissingParameter { name: "client_id" })?;
        Ok(oauth_core::AuthorizationRequest::new(endpoint, client_id)
            .redirect_uri(redirect_uri)
            .expect_issuer(
                self.metadata.issuer(),
                self.profile.is_some()
                    || self
                        .metadata
                        .authorization_response_iss_parameter_supported(),
            ))
    }

    /// The provider's metadata.
    pub fn metadata(&self) -> &ServerMetadata {
        &self.metadata
    }

    /// The client.
    pub fn client(&self) -> &Client {
        &self.client
    }

    /// The provider's keys.
    pub fn keys(&self) -> &RemoteKeys {
        &self.keys
    }

    /// Builds `request` (state, nonce, PKCE drawn from the OS; a request object, RFC 9101,
    /// signed now), and pushes it (RFC 9126) when the provider says authorization requests
    /// must be pushed (`require_pushed_authorization_requests`) or a [profile](Self::profile)
    /// says so; a request the profile does not allow is refused before anything is sent.
    pub async fn begin<I: Io>(
        &self,
        io: &I,
        request: oauth_core::AuthorizationRequest,
    ) -> Result<PendingAuthorization, Error> {
        if let Some(profile) = self.profile {
            profile.check_authorization_request(&request)?;
        }
        let pending = request.build_at(&crate::SystemRandom, now().wall())?;
        if self.profile.is_some() || self.metadata.require_pushed_authorization_requests() {
            return self.push(io, &pending).await;
        }
        Ok(pending)
    }

    /// Pushes `pending` to the provider's `pushed_authorization_request_endpoint` (RFC 9126)
    /// with this client's authentication.
    pub async fn push<I: Io>(
        &self,
        io: &I,
        pending: &PendingAuthorization,
    ) -> Result<PendingAuthorization, Error> {
        let endpoint = self
            .metadata
            .pushed_authorization_request_endpoint()
            .ok_or(Error::MissingParameter {
                name: "pushed_authorization_request_endpoint",
            })?;
        crate::flows::push_authorization(io, endpoint, &self.client, pending).await
    }

    /// Redeems the code in `redirect` (checked against `pending`: state, RFC 9207 issuer) and
    /// validates the id_token: required when `openid` was asked for, and checked whenever
    /// present (signature with the provider's keys, issuer, audience, expiry, the `nonce`
    /// sent, `auth_time` against the `max_age` sent, `at_hash` against the access token).
    pub async fn exchange_code<I: Io>(
        &self,
        io: &I,
        pending: &PendingAuthorization,
        redirect: &str,
    ) -> Result<Login, Error> {
        let code = pending.handle_callback(redirect)?;
        let code_text = zeroize::Zeroizing::new(code.expose_secret().to_owned());
        let request = pending.token_request(code);
        let token = request_token(io, &self.token_endpoint, &self.client, &request).await?;
        let id_token = match token.id_token() {
            Some(id_token) => Some(
                self.verify_id_token(
                    io,
                    id_token,
                    IdTokenExpectations {
                        nonce: pending.nonce().map(|n| n.expose_secret()),
                        max_age: pending.max_age(),
                        access_token: Some(token.access_token()),
                        code: Some(code_text.as_str()),
                        subject: None,
                    },
                )
                .await?,
            ),
            None if pending.requests_openid() => {
                return Err(Error::InvalidIdToken(IdTokenError::Missing));
            }
            None => None,
        };
        Ok(Login { token, id_token })
    }

    /// Refreshes, validating the id_token when the response holds one (OpenID Connect Core
    /// §12.2: same issuer and subject as `previous`, no nonce).
    pub async fn refresh<I: Io>(
        &self,
        io: &I,
        refresh_token: &RefreshToken,
        previous: Option<&IdTokenClaims>,
    ) -> Result<Login, Error> {
        let request = TokenRequest::refresh_token(refresh_token.clone());
        let token = request_token(io, &self.token_endpoint, &self.client, &request).await?;
        let id_token = match token.id_token() {
            Some(id_token) => Some(
                self.verify_id_token(
                    io,
                    id_token,
                    IdTokenExpectations {
                        access_token: Some(token.access_token()),
                        subject: previous.map(IdTokenClaims::subject),
                        ..IdTokenExpectations::default()
                    },
                )
                .await?,
            ),
            None => None,
        };
        Ok(Login { token, id_token })
    }

    /// Verifies an id_token: the signature with the provider's keys (fetched, cached, fetched
    /// again for a new `kid`), then the claims and hashes `expect` names.
    pub async fn verify_id_token<I: Io>(
        &self,
        io: &I,
        id_token: &IdToken,
        expect: IdTokenExpectations<'_>,
    ) -> Result<IdTokenClaims, Error> {
        let token = id_token.expose_secret();
        // An HS* token verifies with the client secret; any other finds no key there and is
        // verified with the provider's set (fetched, cached, fetched again for a new kid).
        let hmac = self
            .hmac
            .as_ref()
            .map(|secret| verify::verify(token, secret, &self.allowed));
        let verified = match hmac {
            Some(result) if !matches!(result, Err(VerifyError::NoKey { .. })) => {
                result.map_err(|e| Error::InvalidIdToken(IdTokenError::Signature(e.to_string())))?
            }
            _ => self
                .keys
                .verify(io, token, &self.allowed)
                .await
                .map_err(|e| match e {
                    KeysError::Unavailable(e) => e,
                    KeysError::Refused(e) => {
                        Error::InvalidIdToken(IdTokenError::Signature(e.to_string()))
                    }
                })?,
        };
        let now = now().wall();
        let mut checks = IdTokenChecks::new(
            self.metadata.issuer(),
            self.client.id().map(|id| id.as_str()).unwrap_or_default(),
            now,
        )
        .leeway(self.leeway);
        if let Some(nonce) = expect.nonce {
            checks = checks.nonce(nonce);
        }
        if let Some(max_age) = expect.max_age {
            checks = checks.max_age(max_age);
        }
        let claims = verify::check_id_token(
            verified,
            &checks,
            expect.access_token.map(AccessToken::expose_secret),
            expect.code,
        )?;
        if expect.subject.is_some_and(|s| s != claims.subject()) {
            return Err(Error::InvalidIdToken(IdTokenError::Subject));
        }
        Ok(claims)
    }

    /// Asks the UserInfo endpoint about the user `token` was issued for (OpenID Connect Core
    /// §5.3): a JSON answer, or a signed JWT verified with the provider's keys and checked for
    /// issuer and audience. `expected_subject` (the id_token's `sub`) must match the answer's.
    pub async fn userinfo<I: Io>(
        &self,
        io: &I,
        token: &AccessToken,
        expected_subject: Option<&str>,
    ) -> Result<UserInfo, Error> {
        let endpoint = self
            .metadata
            .userinfo_endpoint()
            .ok_or(Error::MissingParameter {
                name: "userinfo_endpoint",
            })?;
        let request = userinfo_request_with(endpoint, token, self.client.dpop(), now().wall())?;
        match exchange(io, request, parse_userinfo_response).await? {
            UserInfoResponse::Claims(claims) => validate_userinfo(claims, expected_subject, None),
            UserInfoResponse::Signed(jwt) => {
                let verified =
                    self.keys
                        .verify(io, &jwt, &self.allowed)
                        .await
                        .map_err(|e| match e {
                            KeysError::Unavailable(e) => e,
                            KeysError::Refused(e) => {
                                Error::InvalidUserInfo(IdTokenError::Signature(e.to_string()))
                            }
                        })?;
                let client_id = self.client.id().map(|id| id.as_str()).unwrap_or_default();
                validate_userinfo(
                    verified.into_claims(),
                    expected_subject,
                    Some((self.metadata.issuer(), client_id)),
                )
            }
            _ => Err(Error::MissingParameter { name: "userinfo" }),
        }
    }
}

/// What an id_token must match besides the provider's rules.
#[derive(Clone, Copy, Debug, Default)]
#[non_exhaustive]
pub struct IdTokenExpectations<'a> {
    /// The `nonce` sent with the authorization request.
    pub nonce: Option<&'a str>,
    /// The `max_age` sent.
    pub max_age: Option<Duration>,
    /// The access token it came with (`at_hash`).
    pub access_token: Option<&'a AccessToken>,
    /// The code it came with (`c_hash`).
    pub code: Option<&'a str>,
    /// The subject it must name (a refresh's id_token names the first one's).
    pub subject: Option<&'a str>,
}

impl<'a> IdTokenExpectations<'a> {
    /// No expectation beyond the provider's rules.
    pub fn new() -> Self {
        Self::default()
    }

    /// The `nonce` sent.
    pub fn nonce(mut self, nonce: &'a str) -> Self {
        self.nonce = Some(nonce);
        self
    }

    /// The access token it came with.
    pub fn access_token(mut self, token: &'a AccessToken) -> Self {
        self.access_token = Some(token);
        self
    }

    /// The subject it must name.
    pub fn subject(mut self, subject: &'a str) -> Self {
        self.subject = Some(subject);
        self
    }
}
