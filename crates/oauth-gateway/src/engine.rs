//! What the async and the blocking gateway share: configuration, the cache, the decision.

use std::collections::HashMap;
use std::sync::{Arc, Mutex};
use std::time::{Instant, SystemTime};

use jwt_assertion::Algorithm;
use jwt_assertion::verify::{KeySet, Verified};
use oauth_core::http::{Response, StatusCode};
use oauth_core::{
    ApiPolicy, BearerLocations, Client, Denial, Endpoint, Error, Introspection,
    IntrospectionRequest, InvalidTokenReason, JwksCache, JwtAccessTokenChecks, Principal,
    RequestBody, SecurityToken, TokenTypeHint, jwt_issuer_hint, validate_jwt_access_token,
};
use oauth_runtime::{KeysError, RemoteKeys};

use crate::cache::{CacheConfig, IntrospectionCache, Key};
use crate::contracts::ContractStore;

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
        }
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
}

impl Engine {
    pub(crate) fn cached(&self, key: &Key) -> Option<Arc<Introspection>> {
        self.cache.get(key, Instant::now())
    }

    pub(crate) fn decide(&self, introspection: &Arc<Introspection>) -> Result<Principal, Denial> {
        let decision = self
            .policy
            .decide(introspection, SystemTime::now(), |client, api| {
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
