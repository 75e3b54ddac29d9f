//! The gateway, written once: configuration, and the driver of oauth-core's gateway machine
//! over an adapter's [`Io`]. The async face (`tower.rs`) awaits it on oauth-reqwest; the
//! blocking face (`blocking.rs`) runs it with [`oauth_runtime::block_on`] on oauth-ureq. Both
//! faces therefore make the same decisions, with the same cache, single flight, DPoP replay
//! set (the node's and the fleet's), JWT issuers and fleet cache.

use std::sync::{Arc, Mutex, MutexGuard};
use std::time::{Duration, Instant};

use jwt_assertion::Algorithm;
use jwt_assertion::verify::{KeySet, Verified};
use oauth_core::http::{HeaderMap, Method, Response, StatusCode, Uri};
use oauth_core::resource_server::gateway::{
    CacheConfig, Check, CheckStep, GatewayState, Outcome, ReplaySet, TokenKey,
};
use oauth_core::resource_server::{ClientCertificate, Presented};
use oauth_core::{
    ApiPolicy, BearerLocations, Cause, Client, Denial, Endpoint, Introspection,
    IntrospectionRequest, InvalidTokenReason, JwksCache, JwtAccessTokenChecks, Now, Presentation,
    Principal, SecurityToken, TokenScheme, TokenTypeHint, extract_token_from_parts,
    jwt_issuer_hint, validate_jwt_access_token,
};
use oauth_runtime::{FleetStore, Io, KeysError, RemoteKeys, Signal, StoreKey, exchange, now};

use crate::contracts::ContractStore;
pub use crate::limits::RateLimitFallback;
use crate::shared::Shared;

/// A token's key in the node's and the fleet's tables: its SHA-256.
#[doc(hidden)]
pub fn token_key(token: &str) -> TokenKey {
    let digest = ring::digest::digest(&ring::digest::SHA256, token.as_bytes());
    let mut key = [0; 32];
    key.copy_from_slice(digest.as_ref());
    key
}

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
    pub(crate) limits: crate::limits::Limits,
    pub(crate) observer: Observer,
}

/// What a gateway reports as it works, for an operator's metrics. Every method does nothing
/// unless implemented; each is called on the request's task, so it must be quick.
pub trait GatewayObserver: Send + Sync + 'static {
    /// A request's token was decided from the node's cache (`hit`, also when it waited for
    /// another request's validation of the same token), or validated for it.
    fn cache_lookup(&self, hit: bool) {
        let _ = hit;
    }

    /// An introspection call ended after `elapsed`, with an answer (`ok`) or a failure.
    fn introspection(&self, elapsed: Duration, ok: bool) {
        let _ = (elapsed, ok);
    }

    /// An issuer's key set was fetched (a JWKS call) while a JWT was verified; `elapsed` is
    /// the whole verification's time, the fetch included.
    fn key_set_fetch(&self, elapsed: Duration) {
        let _ = elapsed;
    }
}

/// The observer a builder was given, if any.
#[derive(Clone, Default)]
pub(crate) struct Observer(Option<Arc<dyn GatewayObserver>>);

impl std::fmt::Debug for Observer {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        f.write_str(if self.0.is_some() { "Observer" } else { "None" })
    }
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
    requirement: DpopRequirement,
}

/// Whether an API takes tokens presented with DPoP (RFC 9449), bearer tokens, or both.
#[derive(Clone, Copy, Debug, Default, PartialEq, Eq)]
#[non_exhaustive]
pub enum DpopRequirement {
    /// Only bearer tokens: `Authorization: DPoP` is refused (400 `invalid_request`).
    Off,
    /// Both (the default): a DPoP-bound token needs its proof, an unbound one is a bearer
    /// token.
    #[default]
    Allowed,
    /// Only DPoP-bound tokens with their proof: a bearer presentation is refused before the
    /// token is validated (401 with a `DPoP` challenge, RFC 9449 §7.1).
    Required,
}

impl Default for DpopPolicy {
    /// The URL from the request (absolute-form, else `https://` and its `Host`), a 60 s
    /// window, 100,000 proofs remembered.
    fn default() -> Self {
        Self {
            origin: None,
            window: Duration::from_secs(60),
            replay_capacity: 100_000,
            requirement: DpopRequirement::Allowed,
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

    /// Whether DPoP is off, allowed (the default) or required.
    pub fn requirement(mut self, requirement: DpopRequirement) -> Self {
        self.requirement = requirement;
        self
    }

    /// How long a proof is remembered: twice the window (its `iat` may be a window either
    /// side of now).
    fn remember(&self) -> Duration {
        self.window.saturating_mul(2)
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

/// A DPoP proof that passed: its key's thumbprint, and its digest for the replay sets.
struct Proof {
    jkt: String,
    replay: TokenKey,
}

/// How a token is validated.
enum Route<'a> {
    Local(&'a IssuerKeys),
    Introspect(&'a Endpoint, &'a Client),
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
            limits: crate::limits::Limits::default(),
            observer: Observer::default(),
        }
    }

    /// Counts the requests of contracts with an SLA tier in `counter`, the fleet's (oauth-redis's
    /// `AsyncRedisStore` for the async gateway, `RedisStore` for the blocking one: one atomic
    /// step on the Redis server a request, so the fleet enforces each tier once). Without it,
    /// tiers are counted on this node ([`oauth_runtime::LocalCounters`]). If the counter
    /// fails, `fallback` says what to do (by default: count on this node, each limit divided
    /// by the fleet's size).
    pub fn rate_limits(
        mut self,
        counter: impl oauth_runtime::RateCounter + 'static,
        fallback: RateLimitFallback,
    ) -> Self {
        self.limits = self.limits.shared(Arc::new(counter), fallback);
        self
    }

    /// Whether allowed requests carry their quota (`Principal::quota`, and the tower layer's
    /// `RateLimit-Policy` / `RateLimit` response headers). On by default.
    pub fn expose_limit_headers(mut self, expose: bool) -> Self {
        self.limits = self.limits.expose(expose);
        self
    }

    /// Reports cache lookups, introspection calls and key set fetches to `observer` (for
    /// metrics).
    pub fn observer(mut self, observer: impl GatewayObserver) -> Self {
        self.observer = Observer(Some(Arc::new(observer)));
        self
    }

    /// Shares validation results with the other gateways of a fleet through `store`, the
    /// fleet's [`FleetStore`] (Redis: oauth-redis's `AsyncRedisStore` for the async gateway,
    /// whose operations never block a tokio worker; `RedisStore` for the blocking one): one
    /// introspection call per token for the fleet. `secret` (32 bytes, the same on every node,
    /// from your secret store) seals the records, so a value the fleet did not write is
    /// ignored. A node waits at most `lease` (for example 2 s) for another node's call before
    /// calling itself; it is woken when that call's record is stored. If the store fails, each
    /// node introspects alone. Local JWT validation is not shared (it needs no call). Each DPoP
    /// proof a gateway accepts is recorded there too (`SET NX PX` on a digest of its key and
    /// `jti`), so a proof used on one node is a replay on every other.
    pub fn shared_cache(
        self,
        store: impl FleetStore + 'static,
        secret: &[u8; 32],
        lease: Duration,
    ) -> Self {
        match StoreKey::new("gateway", secret) {
            Ok(key) => self.shared_cache_key(store, key, lease),
            // Not reached: any 32 bytes are an AES-256 key, and the id is valid.
            Err(_) => self,
        }
    }

    /// [`shared_cache`](Self::shared_cache) with a named key, so that keys can rotate
    /// ([`previous_shared_key`](Self::previous_shared_key)).
    pub fn shared_cache_key(
        mut self,
        store: impl FleetStore + 'static,
        key: StoreKey,
        lease: Duration,
    ) -> Self {
        self.shared = Some(Shared::new(Arc::new(store), key, lease));
        self
    }

    /// Also opens the fleet's records sealed with this older key (rotation: new records use
    /// the key given to [`shared_cache_key`](Self::shared_cache_key)).
    pub fn previous_shared_key(mut self, key: StoreKey) -> Self {
        self.shared = self.shared.map(|s| s.previous_key(key));
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

    /// How validation results are cached ([`CacheConfig::default`] otherwise).
    pub fn cache(mut self, config: CacheConfig) -> Self {
        self.cache = config;
        self
    }

    /// Where tokens are looked for (the `Authorization` header only, otherwise).
    pub fn locations(mut self, locations: BearerLocations) -> Self {
        self.locations = locations;
        self
    }

    /// The engine, and the HTTP client it runs over. `max_wait`: how long a request waits for
    /// another's validation of the same token (the adapter's whole-call timeout).
    pub(crate) fn engine(
        self,
        policy: ApiPolicy,
        contracts: impl ContractStore,
        max_wait: Duration,
    ) -> (H, Engine) {
        let shared = match (self.shared, &self.introspection) {
            (Some(shared), Some((endpoint, client))) => {
                Some(shared.bound_to(endpoint.as_str(), client.id().map_or("", |id| id.as_str())))
            }
            (shared, _) => shared,
        };
        let wait = shared
            .as_ref()
            .map_or(max_wait, |s| max_wait.saturating_add(s.lease()));
        let engine = Engine {
            policy,
            contracts: Box::new(contracts),
            state: Mutex::new(GatewayState::new(
                self.cache,
                ReplaySet::new(self.dpop.replay_capacity, self.dpop.window),
                wait,
            )),
            signal: Signal::new(),
            cache: self.cache,
            locations: self.locations,
            dpop: self.dpop,
            shared,
            limits: self.limits,
            observer: self.observer,
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

/// What a readiness probe ([`Gateway::probe`](crate::Gateway::probe)) could not reach.
#[derive(Debug)]
pub struct ProbeError {
    what: String,
    source: oauth_core::Error,
}

impl ProbeError {
    /// What did not answer: `the key set of <issuer>` or `the introspection endpoint <uri>`.
    pub fn what(&self) -> &str {
        &self.what
    }

    /// Why (a transport error, an error answer, an answer that is not the protocol's).
    pub fn error(&self) -> &oauth_core::Error {
        &self.source
    }
}

impl std::fmt::Display for ProbeError {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        write!(f, "{} did not answer: {}", self.what, self.source)
    }
}

impl std::error::Error for ProbeError {
    fn source(&self) -> Option<&(dyn std::error::Error + 'static)> {
        Some(&self.source)
    }
}

/// The gateway's configuration and its node state, driven over any [`Io`].
pub(crate) struct Engine {
    pub(crate) policy: ApiPolicy,
    contracts: Box<dyn ContractStore>,
    /// The core's machine state: cache, DPoP replays, validations in flight.
    state: Mutex<GatewayState>,
    /// Raised after each validation ends (or is abandoned), for the requests waiting on it.
    signal: Signal,
    cache: CacheConfig,
    pub(crate) locations: BearerLocations,
    introspection: Option<(Endpoint, Client)>,
    issuers: Vec<IssuerKeys>,
    dpop: DpopPolicy,
    shared: Option<Shared>,
    limits: crate::limits::Limits,
    observer: Observer,
}

/// The generic reason of a 503: the cause goes to the log and `source()`, never to the caller.
const UNVALIDATED: &str = "The token could not be validated.";

fn unavailable(cause: impl std::error::Error + Send + Sync + 'static) -> Denial {
    Denial::Unavailable {
        reason: UNVALIDATED,
        cause: Some(Cause::new(cause)),
    }
}

impl Engine {
    fn lock(&self) -> MutexGuard<'_, GatewayState> {
        self.state.lock().unwrap_or_else(|e| e.into_inner())
    }

    /// Decides on a request: the token from where the builder allows (the form body only if
    /// `body` is given), its DPoP proof if it is presented with one, then the token, with the
    /// client certificate of the connection it came on (for certificate-bound tokens).
    #[allow(clippy::too_many_arguments)]
    pub(crate) async fn check<I: Io>(
        &self,
        io: &I,
        method: &Method,
        uri: &Uri,
        headers: &HeaderMap,
        body: Option<&[u8]>,
        certificate: Option<&ClientCertificate>,
    ) -> Result<Principal, Denial> {
        let (token, scheme) = extract_token_from_parts(method, uri, headers, body, self.locations)?;
        let token = token.expose_secret();
        match (scheme, self.dpop.requirement) {
            (TokenScheme::Dpop, DpopRequirement::Off) => Err(Denial::InvalidRequest {
                reason: "this API does not accept DPoP; present the token as a bearer token",
            }),
            (TokenScheme::Dpop, _) => {
                let proof = self.dpop_proof(method, uri, headers, token, now())?;
                // A fleet remembers proofs together: one used on another node is a replay.
                if let Some(shared) = &self.shared
                    && !shared.first_use(&proof.replay, self.dpop.remember()).await
                {
                    return Err(Denial::InvalidDpopProof {
                        reason: "The DPoP proof was used before.",
                    });
                }
                let presented = Presented::new(Presentation::Dpop { jkt: &proof.jkt })
                    .with_certificate(certificate);
                self.decide_token(io, token, presented).await
            }
            _ => {
                let presented = Presented::new(Presentation::Bearer).with_certificate(certificate);
                self.decide_token(io, token, presented).await
            }
        }
    }

    /// Decides on a token: from the cache, by waiting for the validation another request of
    /// this node is making, or by validating it (the fleet's cache first).
    pub(crate) async fn decide_token<I: Io>(
        &self,
        io: &I,
        token: &str,
        presented: Presented<'_>,
    ) -> Result<Principal, Denial> {
        // Refused before any validation: no introspection call for a presentation that cannot
        // pass.
        if presented.presentation() == Presentation::Bearer
            && self.dpop.requirement == DpopRequirement::Required
        {
            return Err(Denial::InvalidDpopProof {
                reason: "This API accepts only DPoP-bound tokens presented with a proof.",
            });
        }
        let mut check = Running {
            engine: self,
            check: Check::new(token_key(token)),
        };
        let mut validated_here = false;
        let report = |validated_here: bool| {
            if let Some(observer) = &self.observer.0 {
                observer.cache_lookup(!validated_here);
            }
        };
        loop {
            // Read before looking, so that a validation ending after the look still wakes us.
            let seen = self.signal.generation();
            let step = check.check.poll(&mut self.lock(), Instant::now());
            match step {
                CheckStep::Validated(result) => {
                    report(validated_here);
                    // One reading of the clocks for the decision and the count.
                    let at = now();
                    let principal = self.decide(&result, presented, at)?;
                    let api = self.policy.api();
                    return self.limits.count(principal, api, at.monotonic()).await;
                }
                CheckStep::Denied(denial) => {
                    report(validated_here);
                    return Err(denial);
                }
                CheckStep::Wait { until } => io.wait(&self.signal, seen, until).await,
                CheckStep::Validate => {
                    validated_here = true;
                    // On the heap: a validation's future (an introspection call, a key set
                    // fetch) is most of this one's size, and a cache hit never needs it.
                    let (outcome, limit) =
                        Box::pin(self.validate(io, check.check.key(), token)).await;
                    check
                        .check
                        .handle_outcome(&mut self.lock(), outcome, now(), limit);
                    self.signal.notify();
                }
                _ => {
                    let bug = oauth_runtime::internal_error("an unknown gateway step");
                    return Err(unavailable(bug));
                }
            }
        }
    }

    /// How many validation results the node's cache holds.
    pub(crate) fn cached_results(&self) -> usize {
        self.lock().cache().len()
    }

    /// Whether what validation needs answers: each issuer's key set (fetched if none is held,
    /// else the one held) and the introspection endpoint (asked about a token no server
    /// issued: any well-formed answer, `active: false` included, means it is reachable and
    /// takes the gateway's credentials).
    pub(crate) async fn probe<I: Io>(&self, io: &I) -> Result<(), ProbeError> {
        for issuer in &self.issuers {
            issuer
                .keys
                .keys(io, false)
                .await
                .map_err(|source| ProbeError {
                    what: format!("the key set of {}", issuer.checks.issuer()),
                    source,
                })?;
        }
        if let Some((endpoint, client)) = &self.introspection {
            let request =
                IntrospectionRequest::new(SecurityToken::new("oauth-gateway-readiness-probe"))
                    .token_type_hint(TokenTypeHint::AccessToken);
            let built = request
                .build_at(endpoint, client, now().wall())
                .map_err(|source| ProbeError {
                    what: "the introspection request".into(),
                    source,
                })?;
            exchange(io, built, |r| request.parse_response(client, r))
                .await
                .map_err(|source| ProbeError {
                    what: format!("the introspection endpoint {}", endpoint.as_str()),
                    source,
                })?;
        }
        Ok(())
    }

    /// Validates a token this node has no result for: locally if it is a JWT from a
    /// configured issuer, else at the introspection endpoint (through the fleet's cache if
    /// there is one), else refused. Returns the outcome and how long it may be kept at most
    /// (what is left of a fleet record's time).
    async fn validate<I: Io>(&self, io: &I, key: &TokenKey, token: &str) -> (Outcome, Duration) {
        match self.route(token) {
            Err(denial) => (Err(denial), Duration::MAX),
            Ok(Route::Local(issuer)) => {
                let (fetches, started) = (issuer.keys.fetches(), Instant::now());
                let verified = issuer.keys.verify(io, token, &issuer.algorithms).await;
                if let Some(observer) = &self.observer.0
                    && issuer.keys.fetches() != fetches
                {
                    observer.key_set_fetch(started.elapsed());
                }
                (self.local_outcome(issuer, verified), Duration::MAX)
            }
            Ok(Route::Introspect(endpoint, client)) => match &self.shared {
                Some(shared) => {
                    let introspect = || self.introspect(io, endpoint, client, token);
                    shared.validate(key, &self.cache, introspect).await
                }
                None => (
                    self.introspect(io, endpoint, client, token).await,
                    Duration::MAX,
                ),
            },
        }
    }

    /// One introspection call; every failure (transport, 5xx, a refused gateway client,
    /// nonsense) is a 503 that keeps its cause: a failure never lets a request through, and
    /// never blames the caller's token.
    async fn introspect<I: Io>(
        &self,
        io: &I,
        endpoint: &Endpoint,
        client: &Client,
        token: &str,
    ) -> Outcome {
        let started = Instant::now();
        let request = IntrospectionRequest::new(SecurityToken::new(token))
            .token_type_hint(TokenTypeHint::AccessToken);
        // Built when sent, so that a gateway client signing its assertions per request
        // (`private_key_jwt`) sends a fresh one each time; parsed through the request, so that
        // an error keeps nothing of the token or the gateway's credentials if echoed.
        let result = match request.build_at(endpoint, client, now().wall()) {
            Ok(built) => exchange(io, built, |r| request.parse_response(client, r)).await,
            Err(e) => Err(e),
        };
        if let Some(observer) = &self.observer.0 {
            observer.introspection(started.elapsed(), result.is_ok());
        }
        match result {
            Ok(result) => {
                tracing::debug!(
                    api = self.policy.api(),
                    active = result.active(),
                    elapsed_us = started.elapsed().as_micros() as u64,
                    "token introspected"
                );
                Ok(Arc::new(result))
            }
            Err(e) => {
                tracing::warn!(api = self.policy.api(), error = %e, "introspection failed");
                Err(unavailable(e))
            }
        }
    }

    /// Checks the DPoP proof of a request presenting `token` with the `DPoP` scheme (RFC 9449
    /// §7.1, §4.3) at `now`, records it in the node's replay set, and returns the proof key's
    /// thumbprint and the proof's digest (for the fleet's replay set).
    fn dpop_proof(
        &self,
        method: &Method,
        uri: &Uri,
        headers: &HeaderMap,
        token: &str,
        now: Now,
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
        let check = jwt_assertion::dpop::ProofCheck::new(method.as_str(), &htu, now.wall())
            .access_token(token)
            .window(self.dpop.window);
        let checked = jwt_assertion::dpop::verify_proof(proof, &check).map_err(|e| {
            tracing::debug!(api = self.policy.api(), error = %e, "DPoP proof refused");
            use jwt_assertion::dpop::DpopError;
            Denial::InvalidDpopProof {
                reason: match e {
                    DpopError::Method | DpopError::Url => "The DPoP proof is for another request.",
                    DpopError::Stale => "The DPoP proof is too old or too new.",
                    DpopError::AccessTokenHash => "The DPoP proof is for another access token.",
                    DpopError::Algorithm => "The DPoP proof's algorithm is not accepted.",
                    DpopError::Signature => "The DPoP proof's signature is not valid.",
                    // Whatever else a proof may get wrong, the answer is the generic one.
                    _ => "The DPoP proof is not valid.",
                },
            }
        })?;
        // Not a token's digest (those hash the token alone): the two never share a key.
        let replay = token_key(&format!("dpop-jti\0{}:{}", checked.jkt, checked.jti));
        if !self.lock().first_use(replay, now.monotonic()) {
            return invalid("The DPoP proof was used before.");
        }
        Ok(Proof {
            jkt: checked.jkt,
            replay,
        })
    }

    fn decide(
        &self,
        introspection: &Arc<Introspection>,
        presented: Presented<'_>,
        at: Now,
    ) -> Result<Principal, Denial> {
        let decision =
            self.policy
                .decide_with(introspection, at.wall(), presented, |client, api| {
                    self.contracts.lookup(client, api)
                });
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
    fn route(&self, token: &str) -> Result<Route<'_>, Denial> {
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
        match &self.introspection {
            Some((endpoint, client)) => Ok(Route::Introspect(endpoint, client)),
            None => Err(Denial::InvalidToken {
                reason: InvalidTokenReason::WrongIssuer,
            }),
        }
    }

    /// Turns a local verification into an outcome: the claims checked (RFC 9068); a refused
    /// token is 401; no key set to verify with is 503, with the key set's error as its cause.
    fn local_outcome(&self, issuer: &IssuerKeys, verified: Result<Verified, KeysError>) -> Outcome {
        let claims = match verified {
            Ok(v) => validate_jwt_access_token(
                v.header(),
                v.claims().clone(),
                &issuer.checks,
                now().wall(),
            ),
            Err(KeysError::Refused(e)) => {
                tracing::debug!(api = self.policy.api(), error = %e, "JWT access token refused");
                Err(InvalidTokenReason::BadSignature)
            }
            Err(e) => {
                tracing::warn!(api = self.policy.api(), error = %e, "JWT access token not verifiable");
                return Err(unavailable(e));
            }
        };
        claims
            .map(Arc::new)
            .map_err(|reason| Denial::InvalidToken { reason })
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

/// A check in progress; dropped before its end (a cancelled request), it gives up its part
/// so that requests waiting on its validation go on.
struct Running<'a> {
    engine: &'a Engine,
    check: Check,
}

impl Drop for Running<'_> {
    fn drop(&mut self) {
        if !self.check.is_done() {
            self.check.abandon(&mut self.engine.lock());
            self.engine.signal.notify();
        }
    }
}
