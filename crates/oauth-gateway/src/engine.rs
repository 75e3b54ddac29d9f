//! What the async and the blocking gateway share: configuration, the cache, the decision.

use std::collections::HashMap;
use std::sync::{Arc, Mutex};
use std::time::{Instant, SystemTime};

use oauth_core::http::{Response, StatusCode};
use oauth_core::{
    ApiPolicy, BearerLocations, Client, Denial, Endpoint, Error, Introspection,
    IntrospectionRequest, Principal, RequestBody, SecurityToken, TokenTypeHint,
};

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
    pub(crate) endpoint: Endpoint,
    pub(crate) client: Client,
    pub(crate) cache: CacheConfig,
    pub(crate) locations: BearerLocations,
}

impl<H> GatewayBuilder<H> {
    pub(crate) fn new(http: H, endpoint: Endpoint, client: Client) -> Self {
        Self {
            http,
            endpoint,
            client,
            cache: CacheConfig::default(),
            locations: BearerLocations::header_only(),
        }
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
            endpoint: self.endpoint,
            client: self.client,
        };
        (self.http, engine)
    }
}

pub(crate) struct Engine {
    pub(crate) policy: ApiPolicy,
    contracts: Box<dyn ContractStore>,
    pub(crate) cache: IntrospectionCache,
    pub(crate) locations: BearerLocations,
    endpoint: Endpoint,
    client: Client,
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

    pub(crate) fn request(
        &self,
        token: &str,
    ) -> Result<oauth_core::http::Request<RequestBody>, Denial> {
        if token.len() > self.locations.token_len_limit() {
            return Err(Denial::InvalidToken {
                reason: oauth_core::InvalidTokenReason::TooLong,
            });
        }
        IntrospectionRequest::new(SecurityToken::new(token))
            .token_type_hint(TokenTypeHint::AccessToken)
            // Built at the time it is sent, so a gateway client that signs its assertions per
            // request (`private_key_jwt`) sends a fresh one with every introspection.
            .build_at(&self.endpoint, &self.client, SystemTime::now())
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
        let parsed = answer.and_then(|r| {
            IntrospectionRequest::new(SecurityToken::new(token))
                .parse_response(&self.client, &r)
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
