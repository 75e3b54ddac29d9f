//! What the async and the blocking gateway share: configuration, the cache, the decision.

use std::collections::{HashMap, VecDeque};
use std::sync::{Arc, Mutex};
use std::time::{Duration, Instant, SystemTime};

use jwt_assertion::Algorithm;
use jwt_assertion::verify::{KeySet, Verified};
use oauth_core::http::{HeaderMap, Method, Response, StatusCode, Uri};
use oauth_core::{
    ApiPolicy, BearerLocations, Client, Denial, Endpoint, Error, Introspection,
    IntrospectionRequest, InvalidTokenReason, JwksCache, JwtAccessTokenChecks, Presentation,
    Principal, RequestBody, SecurityToken, TokenTypeHint, jwt_issuer_hint,
    validate_jwt_access_token,
};
use oauth_runtime::{KeysError, RemoteKeys};

use crate::cache::{CacheConfig, IntrospectionCache, Key};
use crate::contracts::ContractStore;
use crate::shared::Shared;

/// An introspection outcome, shared by every request that waited for it.
pub(crate) type Outcome = Result<Arc<Introspection>, Denial>;

/// Builds a gateway. `H` is the adapter's HTTP client: `oauth_reqwest::HttpClient` builds the
/// async [`Gateway`](crate::Gateway), `oauth_ureq::HttpClient` the
/// [`BlockingGateway`](crate::BlockingGateway).
#[derive(Debug)]
pub struct GatewayBuilder<H> {
    pub(crate) http: H,
    pub(crate) introspection: Option<(Endpoint, Client)>,
    pub(crate) issuers: Vec<JwtIssuer>,
    pub(crate) cache: CacheConfig,
    pub(crate) locations: BearerLocations,
    pub(crate) dpop: DpopPolicy,
    pub(crate) shared: Option<Shared>,
}

/// How DPoP-bound tokens (RFC 9449) are accepted: `Authorization: DPoP <token>` with a proof in
/// the `DPoP` header, signed by the key the token is bound to (`cnf.jkt`), for this request's
/// method and URL, made within the window, never seen before. A DPoP-bound token presented as
/// a bearer token is refused.
#[derive(Clone, Debug)]
pub struct DpopPolicy {
    origin: Option<String>,
    window: Duration,
    replay_capacity: usize,
}

impl Default for DpopPolicy {
    /// The URL from the request (absolute-form, else `https://` and its `Host`), a 60 s
    /// window, 100,000 proofs remembered.
    fn default() -> Self {
        Self {
            origin: None,
            window: Duration::from_secs(60),
            replay_capacity: 100_000,
        }
    }
}

impl DpopPolicy {
    /// The defaults.
    pub fn new() -> Self {
        Self::default()
    }

    /// The API's public origin (`https://api.example`), for the `htu` check behind a proxy
    /// that changes the host or the scheme.
    pub fn public_origin(mut self, origin: impl Into<String>) -> Self {
        self.origin = Some(origin.into().trim_end_matches('/').to_owned());
        self
    }

    /// How far a proof's `iat` may be from now (and how long its `jti` is remembered).
    pub fn window(mut self, window: Duration) -> Self {
        self.window = window;
        self
    }

    /// How many proofs are remembered for the replay check. When full, a proof that cannot be
    /// remembered is refused rather than risk accepting a replay.
    pub fn replay_capacity(mut self, proofs: usize) -> Self {
        self.replay_capacity = proofs;
        self
    }
}

/// Proof ids seen, and their order of arrival (for forgetting the old ones).
type Seen = (HashMap<String, Instant>, VecDeque<(Instant, String)>);

/// The `jti`s of the proofs seen within the window (RFC 9449 §11.1).
pub(crate) struct ReplayCache {
    seen: Mutex<Seen>,
    capacity: usize,
    window: Duration,
}

impl ReplayCache {
    fn new(capacity: usize, window: Duration) -> Self {
        Self {
            seen: Mutex::new((HashMap::new(), VecDeque::new())),
            capacity,
            window,
        }
    }

    /// Records `id`; false if it was seen within the window (or there is no room).
    fn first_use(&self, id: String, now: Instant) -> bool {
        let mut guard = self.seen.lock().unwrap_or_else(|e| e.into_inner());
        let (map, order) = &mut *guard;
        // Forget what is older than twice the window: such a proof is stale anyway.
        while let Some((at, _)) = order.front() {
            if now.saturating_duration_since(*at) <= self.window * 2 {
                break;
            }
            if let Some((_, old)) = order.pop_front() {
                map.remove(&old);
            }
        }
        if map.contains_key(&id) {
            return false;
        }
        if map.len() >= self.capacity {
            return false;
        }
        map.insert(id.clone(), now);
        order.push_back((now, id));
        true
    }
}

/// An issuer whose JWT access tokens (RFC 9068) the gateway validates itself, with the keys
/// at its `jwks_uri`: signature (asymmetric algorithms only), `typ: at+jwt`, `iss`, `aud`,
/// `exp`/`nbf`, a client id; then the same contract check as an introspected token.
///
/// A token is validated locally when it is a JWT whose (unverified) `iss` names a configured
/// issuer; any other token goes to the introspection endpoint, or is refused if the gateway
/// has none ([`Gateway::local_builder`](crate::Gateway::local_builder)).
#[derive(Debug)]
pub struct JwtIssuer {
    checks: JwtAccessTokenChecks,
    jwks_uri: Endpoint,
    algorithms: Vec<Algorithm>,
    key_cache: JwksCache<KeySet>,
}

impl JwtIssuer {
    /// Tokens from `issuer` (exactly) for `audience` (the API's resource identifier), signed
    /// with a key at `jwks_uri` (discovery's), with RS256, PS256, ES256, ES384 or EdDSA.
    pub fn new(issuer: impl Into<String>, audience: impl Into<String>, jwks_uri: Endpoint) -> Self {
        Self {
            checks: JwtAccessTokenChecks::new(issuer, audience),
            jwks_uri,
            algorithms: vec![
                Algorithm::RS256,
                Algorithm::PS256,
                Algorithm::ES256,
                Algorithm::ES384,
                Algorithm::EdDSA,
            ],
            key_cache: JwksCache::new(),
        }
    }

    /// Accepts only these algorithms (HS* are never accepted: a gateway holds no issuer's
    /// secret).
    pub fn algorithms(mut self, allowed: &[Algorithm]) -> Self {
        self.algorithms = allowed
            .iter()
            .copied()
            .filter(|a| a.is_asymmetric())
            .collect();
        self
    }

    /// Also accepts this `typ` besides `at+jwt` (see
    /// [`JwtAccessTokenChecks::accept_type`]).
    pub fn accept_type(mut self, typ: impl Into<String>) -> Self {
        self.checks = self.checks.accept_type(typ);
        self
    }

    /// How the key set is fetched again (max age; unknown `kid`s at most once per interval).
    pub fn key_cache(mut self, cache: JwksCache<KeySet>) -> Self {
        self.key_cache = cache;
        self
    }
}

/// A configured issuer, with its key set.
pub(crate) struct IssuerKeys {
    pub(crate) checks: JwtAccessTokenChecks,
    pub(crate) keys: RemoteKeys,
    pub(crate) algorithms: Vec<Algorithm>,
}

/// A DPoP proof that passed: its key's thumbprint, and what the fleet must remember of it.
pub(crate) struct Proof {
    pub(crate) jkt: String,
    #[cfg_attr(not(feature = "tower"), allow(dead_code))]
    pub(crate) replay: Key,
    #[cfg_attr(not(feature = "tower"), allow(dead_code))]
    pub(crate) remember: Duration,
}

/// How a token is validated.
pub(crate) enum Route<'a> {
    Local(&'a IssuerKeys),
    Introspect,
}

impl<H> GatewayBuilder<H> {
    pub(crate) fn new(http: H, introspection: Option<(Endpoint, Client)>) -> Self {
        Self {
            http,
            introspection,
            issuers: Vec::new(),
            cache: CacheConfig::default(),
            locations: BearerLocations::header_only(),
            dpop: DpopPolicy::default(),
            shared: None,
        }
    }

    /// Shares introspection results with the other async gateways of a fleet through `store`,
    /// oauth-runtime's [`TokenStore`](oauth_runtime::TokenStore) (Redis: oauth-redis's
    /// `AsyncRedisStore`, whose operations never block a tokio worker): one introspection
    /// call per token for the fleet. `secret` (32 bytes, the same on every node, from your secret store) seals the
    /// records, so a value the fleet did not write is ignored. A node waits at most `lease`
    /// (for example 2 s) for another node's call before calling itself. If the store fails,
    /// each node introspects alone. Local JWT validation is not shared (it needs no call). The
    /// async gateway also records each DPoP proof it accepts there (`SET NX PX` on a digest of
    /// its key and `jti`), so a proof used on one node is a replay on every other.
    pub fn shared_cache(
        mut self,
        store: impl oauth_runtime::TokenStore + 'static,
        secret: &[u8; 32],
        lease: Duration,
    ) -> Self {
        self.shared = Some(Shared::new(Arc::new(store), secret, lease));
        self
    }

    /// How DPoP proofs are checked ([`DpopPolicy::default`] otherwise).
    pub fn dpop(mut self, policy: DpopPolicy) -> Self {
        self.dpop = policy;
        self
    }

    /// Validates JWT access tokens from this issuer locally (see [`JwtIssuer`]). Several
    /// issuers may be added.
    pub fn jwt_issuer(mut self, issuer: JwtIssuer) -> Self {
        self.issuers.push(issuer);
        self
    }

    /// How introspection results are cached ([`CacheConfig::default`] otherwise).
    pub fn cache(mut self, config: CacheConfig) -> Self {
        self.cache = config;
        self
    }

    /// Where tokens are looked for (the `Authorization` header only, otherwise).
    pub fn locations(mut self, locations: BearerLocations) -> Self {
        self.locations = locations;
        self
    }

    pub(crate) fn engine(self, policy: ApiPolicy, contracts: impl ContractStore) -> (H, Engine) {
        let engine = Engine {
            policy,
            contracts: Box::new(contracts),
            cache: IntrospectionCache::new(self.cache),
            locations: self.locations,
            replays: ReplayCache::new(self.dpop.replay_capacity, self.dpop.window),
            dpop: self.dpop,
            shared: match (self.shared, &self.introspection) {
                (Some(shared), Some((endpoint, client))) => Some(
                    shared.bound_to(endpoint.as_str(), client.id().map_or("", |id| id.as_str())),
                ),
                (shared, _) => shared,
            },
            introspection: self.introspection,
            issuers: self
                .issuers
                .into_iter()
                .map(|i| IssuerKeys {
                    checks: i.checks,
                    keys: RemoteKeys::with_cache(i.jwks_uri, i.key_cache),
                    algorithms: i.algorithms,
                })
                .collect(),
        };
        (self.http, engine)
    }
}

pub(crate) struct Engine {
    pub(crate) policy: ApiPolicy,
    contracts: Box<dyn ContractStore>,
    pub(crate) cache: IntrospectionCache,
    pub(crate) locations: BearerLocations,
    introspection: Option<(Endpoint, Client)>,
    issuers: Vec<IssuerKeys>,
    dpop: DpopPolicy,
    replays: ReplayCache,
    /// The fleet's shared cache (used by the async gateway).
    #[cfg_attr(not(feature = "tower"), allow(dead_code))]
    pub(crate) shared: Option<Shared>,
}

impl Engine {
    pub(crate) fn cached(&self, key: &Key) -> Option<Arc<Introspection>> {
        self.cache.get(key, Instant::now())
    }

    /// Checks the DPoP proof of a request presenting `token` with the `DPoP` scheme (RFC 9449
    /// §7.1, §4.3) and returns the proof key's thumbprint, with the proof's replay key (for the
    /// fleet's shared check) and how long it must be remembered.
    pub(crate) fn dpop_proof(
        &self,
        method: &Method,
        uri: &Uri,
        headers: &HeaderMap,
        token: &str,
    ) -> Result<Proof, Denial> {
        let invalid = |reason| Err(Denial::InvalidDpopProof { reason });
        let mut proofs = headers.get_all(oauth_core::DPOP).iter();
        let (Some(proof), None) = (proofs.next(), proofs.next()) else {
            return invalid("Exactly one DPoP proof is required.");
        };
        let Ok(proof) = proof.to_str() else {
            return invalid("The DPoP proof is malformed.");
        };
        let htu = match (&self.dpop.origin, uri.scheme_str(), uri.authority()) {
            (Some(origin), _, _) => format!("{origin}{}", uri.path()),
            (None, Some(scheme), Some(authority)) => {
                format!("{scheme}://{authority}{}", uri.path())
            }
            (None, _, _) => match headers
                .get(oauth_core::http::header::HOST)
                .and_then(|h| h.to_str().ok())
            {
                Some(host) => format!("https://{host}{}", uri.path()),
                None => return invalid("The request's URL is unknown."),
            },
        };
        let check = jwt_assertion::dpop::ProofCheck::new(method.as_str(), &htu, SystemTime::now())
            .access_token(token)
            .window(self.dpop.window);
        let checked = jwt_assertion::dpop::verify_proof(proof, &check).map_err(|e| {
            tracing::debug!(api = self.policy.api(), error = %e, "DPoP proof refused");
            Denial::InvalidDpopProof {
                reason: match e {
                    jwt_assertion::dpop::DpopError::Method
                    | jwt_assertion::dpop::DpopError::Url => {
                        "The DPoP proof is for another request."
                    }
                    jwt_assertion::dpop::DpopError::Stale => {
                        "The DPoP proof is too old or too new."
                    }
                    jwt_assertion::dpop::DpopError::AccessTokenHash => {
                        "The DPoP proof is for another access token."
                    }
                    jwt_assertion::dpop::DpopError::Algorithm => {
                        "The DPoP proof's algorithm is not accepted."
                    }
                    jwt_assertion::dpop::DpopError::Signature => {
                        "The DPoP proof's signature is not valid."
                    }
                    _ => "The DPoP proof is not valid.",
                },
            }
        })?;
        let seen = format!("{}:{}", checked.jkt, checked.jti);
        if !self.replays.first_use(seen.clone(), Instant::now()) {
            return invalid("The DPoP proof was used before.");
        }
        // Not a token's digest (those hash the token alone): the two never share a key.
        let replay = crate::cache::key(&format!("dpop-jti\0{seen}"));
        Ok(Proof {
            jkt: checked.jkt,
            replay,
            remember: self.dpop.window.saturating_mul(2),
        })
    }

    pub(crate) fn decide(
        &self,
        introspection: &Arc<Introspection>,
        presentation: Presentation<'_>,
    ) -> Result<Principal, Denial> {
        let decision = self.policy.decide_with(
            introspection,
            SystemTime::now(),
            presentation,
            |client, api| self.contracts.lookup(client, api),
        );
        if let Err(denial) = &decision {
            tracing::debug!(
                api = self.policy.api(),
                client_id = introspection.client_id().unwrap_or("-"),
                status = denial.status().as_u16(),
                reason = denial.description(),
                "request denied"
            );
        }
        decision
    }

    /// How `token` is validated: locally if it is a JWT from a configured issuer, else by
    /// introspection, else refused.
    pub(crate) fn route(&self, token: &str) -> Result<Route<'_>, Denial> {
        if token.len() > self.locations.token_len_limit() {
            return Err(Denial::InvalidToken {
                reason: InvalidTokenReason::TooLong,
            });
        }
        let issuer = if self.issuers.is_empty() {
            None
        } else {
            jwt_issuer_hint(token)
                .and_then(|iss| self.issuers.iter().find(|i| i.checks.issuer() == iss))
        };
        if let Some(issuer) = issuer {
            return Ok(Route::Local(issuer));
        }
        if self.introspection.is_some() {
            return Ok(Route::Introspect);
        }
        Err(Denial::InvalidToken {
            reason: InvalidTokenReason::WrongIssuer,
        })
    }

    /// Turns a local verification into an outcome: the claims checked (RFC 9068), cached
    /// until `exp` at most; a refused token is 401; no key set to verify with is 503.
    pub(crate) fn local_outcome(
        &self,
        key: Key,
        issuer: &IssuerKeys,
        verified: Result<Verified, KeysError>,
    ) -> Outcome {
        let claims = match verified {
            Ok(v) => validate_jwt_access_token(
                v.header(),
                v.claims().clone(),
                &issuer.checks,
                SystemTime::now(),
            ),
            Err(KeysError::Refused(e)) => {
                tracing::debug!(api = self.policy.api(), error = %e, "JWT access token refused");
                Err(InvalidTokenReason::BadSignature)
            }
            Err(e) => {
                tracing::warn!(api = self.policy.api(), error = %e, "JWT access token not verifiable");
                return Err(Denial::Unavailable {
                    reason: "The token could not be validated.",
                });
            }
        };
        match claims {
            Ok(result) => {
                let result = Arc::new(result);
                self.cache
                    .insert(key, Arc::clone(&result), Instant::now(), SystemTime::now());
                Ok(result)
            }
            Err(reason) => Err(Denial::InvalidToken { reason }),
        }
    }

    pub(crate) fn request(
        &self,
        token: &str,
    ) -> Result<oauth_core::http::Request<RequestBody>, Denial> {
        let Some((endpoint, client)) = &self.introspection else {
            return Err(Denial::InvalidToken {
                reason: InvalidTokenReason::WrongIssuer,
            });
        };
        IntrospectionRequest::new(SecurityToken::new(token))
            .token_type_hint(TokenTypeHint::AccessToken)
            // Built at the time it is sent, so a gateway client that signs its assertions per
            // request (`private_key_jwt`) sends a fresh one with every introspection.
            .build_at(endpoint, client, SystemTime::now())
            .map_err(|e| {
                tracing::warn!(error = %e, "introspection request could not be built");
                Denial::Unavailable {
                    reason: "The token could not be validated.",
                }
            })
    }

    /// Turns the introspection endpoint's answer into an outcome, caches it, and maps every
    /// failure (transport, 5xx, a refused gateway client, nonsense) to 503: a failure never
    /// lets a request through, and never blames the caller's token.
    pub(crate) fn outcome(
        &self,
        key: Key,
        token: &str,
        answer: Result<Response<Vec<u8>>, Error>,
        started: Instant,
    ) -> Outcome {
        // Parsed through the request, so that an error (and the warning that prints it) keeps
        // nothing of the caller's token or the gateway's credentials if the server echoes them.
        let Some((_, client)) = &self.introspection else {
            return Err(Denial::Unavailable {
                reason: "The token could not be validated.",
            });
        };
        let parsed = answer.and_then(|r| {
            IntrospectionRequest::new(SecurityToken::new(token))
                .parse_response(client, &r)
                .map(Arc::new)
        });
        match parsed {
            Ok(result) => {
                tracing::debug!(
                    api = self.policy.api(),
                    active = result.active(),
                    elapsed_us = started.elapsed().as_micros() as u64,
                    "token introspected"
                );
                self.cache
                    .insert(key, Arc::clone(&result), Instant::now(), SystemTime::now());
                Ok(result)
            }
            Err(e) => {
                tracing::warn!(api = self.policy.api(), error = %e, "introspection failed");
                Err(Denial::Unavailable {
                    reason: "The token could not be validated.",
                })
            }
        }
    }

    pub(crate) fn deny_response(&self, denial: &Denial) -> Response<Vec<u8>> {
        let mut response = self.policy.deny_response(denial);
        if denial.status() == StatusCode::SERVICE_UNAVAILABLE {
            response.headers_mut().insert(
                oauth_core::http::header::RETRY_AFTER,
                oauth_core::http::HeaderValue::from_static("1"),
            );
        }
        response
    }
}

/// The calls in flight, one per token: concurrent requests with the same uncached token wait
/// for one introspection call. `C` is the async or the blocking once-cell.
pub(crate) struct InFlight<C> {
    calls: Mutex<HashMap<Key, Arc<C>>>,
}

impl<C: Default> InFlight<C> {
    pub(crate) fn new() -> Self {
        Self {
            calls: Mutex::new(HashMap::new()),
        }
    }

    /// Joins the call for `key`, or starts one. The guard forgets the call when dropped
    /// (completed or cancelled), so that the map never outlives the calls in it.
    pub(crate) fn join(&self, key: Key) -> InFlightGuard<'_, C> {
        let mut calls = self.calls.lock().unwrap_or_else(|e| e.into_inner());
        let cell = Arc::clone(calls.entry(key).or_default());
        InFlightGuard {
            owner: self,
            key,
            cell,
        }
    }
}

pub(crate) struct InFlightGuard<'a, C> {
    owner: &'a InFlight<C>,
    key: Key,
    pub(crate) cell: Arc<C>,
}

impl<C> Drop for InFlightGuard<'_, C> {
    fn drop(&mut self) {
        let mut calls = self.owner.calls.lock().unwrap_or_else(|e| e.into_inner());
        if calls
            .get(&self.key)
            .is_some_and(|c| Arc::ptr_eq(c, &self.cell))
        {
            calls.remove(&self.key);
        }
    }
}
