//! The async gateway on oauth-reqwest, and its `tower` Layer/Service.

use std::future::Future;
use std::pin::Pin;
use std::sync::Arc;
use std::task::{Context, Poll};
use std::time::{Instant, SystemTime};

use oauth_core::http::{Method, Request, Response, Uri};
use oauth_core::{
    AccessToken, ApiPolicy, Denial, Introspection, Presentation, Principal, TokenScheme,
    extract_token_from_parts,
};
use oauth_reqwest::HttpClient;
use tokio::sync::OnceCell;

use crate::cache::{Key, key};
use crate::contracts::ContractStore;
use crate::engine::{Engine, GatewayBuilder, InFlight, Outcome, Route};
use crate::shared::Found;

/// The gateway policy for async servers: takes the bearer token from a request, validates it
/// at the introspection endpoint (cached, one call per token at a time), checks the client's
/// contract, and allows or denies.
///
/// Cheap to clone (an `Arc`). Use it directly ([`Gateway::check`]) or as a `tower` layer
/// ([`Gateway::layer`]) in front of an axum, hyper or tonic service.
///
/// ```no_run
/// # async fn run() -> Result<(), Box<dyn std::error::Error>> {
/// use oauth_gateway::{ApiPolicy, Contract, Gateway, MemoryContracts};
/// use oauth_gateway::oauth_core::{Client, ClientAuthentication, ClientSecret};
/// use oauth_reqwest::{HttpClient, HttpConfig};
///
/// let http = HttpClient::new(HttpConfig::new())?;
/// let endpoint = http.endpoint("https://as.example/introspect")?;
/// let credentials = Client::new("gateway", ClientAuthentication::SecretBasic(ClientSecret::new("s3cret")));
/// let contracts = MemoryContracts::new();
/// contracts.grant(Contract::new("app-1", "orders"));
/// let gateway = Gateway::builder(http, endpoint, credentials)
///     .build(ApiPolicy::new("orders").require_scope(["orders:read"]), contracts);
/// // axum: Router::new().route(...).layer(gateway.layer())
/// # let _ = gateway; Ok(()) }
/// ```
#[derive(Clone)]
pub struct Gateway {
    inner: Arc<Inner>,
}

struct Inner {
    engine: Engine,
    http: HttpClient,
    in_flight: InFlight<OnceCell<Outcome>>,
}

impl Gateway {
    /// Starts building a gateway that introspects at `endpoint`, authenticating as `client`.
    pub fn builder(
        http: HttpClient,
        endpoint: oauth_core::Endpoint,
        client: oauth_core::Client,
    ) -> GatewayBuilder<HttpClient> {
        GatewayBuilder::new(http, Some((endpoint, client)))
    }

    /// Starts building a gateway without an introspection endpoint: only JWT access tokens
    /// from the issuers added with [`GatewayBuilder::jwt_issuer`] are accepted.
    pub fn local_builder(http: HttpClient) -> GatewayBuilder<HttpClient> {
        GatewayBuilder::new(http, None)
    }

    /// The policy enforced.
    pub fn policy(&self) -> &ApiPolicy {
        &self.inner.engine.policy
    }

    /// Decides on a request, reading the token from the places the builder allowed (the form
    /// body too, since the body is here).
    pub async fn check<B: AsRef<[u8]>>(&self, request: &Request<B>) -> Result<Principal, Denial> {
        let (token, scheme) = extract_token_from_parts(
            request.method(),
            request.uri(),
            request.headers(),
            Some(request.body().as_ref()),
            self.inner.engine.locations,
        )?;
        self.decide_presented(
            request.method(),
            request.uri(),
            request.headers(),
            token.expose_secret(),
            scheme,
        )
        .await
    }

    /// Decides on a request whose body has not been read (the form-body method is skipped).
    pub async fn check_parts(
        &self,
        method: &Method,
        uri: &Uri,
        headers: &oauth_core::http::HeaderMap,
    ) -> Result<Principal, Denial> {
        let (token, scheme) =
            extract_token_from_parts(method, uri, headers, None, self.inner.engine.locations)?;
        self.decide_presented(method, uri, headers, token.expose_secret(), scheme)
            .await
    }

    /// Decides on a token: from the cache, or after one introspection call shared by every
    /// concurrent request with the same token.
    pub async fn validate(&self, token: &AccessToken) -> Result<Principal, Denial> {
        self.decide_token(token.expose_secret(), Presentation::Bearer)
            .await
    }

    async fn decide_presented(
        &self,
        method: &Method,
        uri: &Uri,
        headers: &oauth_core::http::HeaderMap,
        token: &str,
        scheme: TokenScheme,
    ) -> Result<Principal, Denial> {
        match scheme {
            TokenScheme::Dpop => {
                let proof = self.inner.engine.dpop_proof(method, uri, headers, token)?;
                // A fleet remembers proofs together: one used on another node is a replay.
                if let Some(shared) = &self.inner.engine.shared
                    && !shared.first_use(&proof.replay, proof.remember).await
                {
                    return Err(Denial::InvalidDpopProof {
                        reason: "The DPoP proof was used before.",
                    });
                }
                self.decide_token(token, Presentation::Dpop { jkt: &proof.jkt })
                    .await
            }
            _ => self.decide_token(token, Presentation::Bearer).await,
        }
    }

    async fn decide_token(
        &self,
        token: &str,
        presentation: Presentation<'_>,
    ) -> Result<Principal, Denial> {
        let engine = &self.inner.engine;
        let key = key(token);
        if let Some(result) = engine.cached(&key) {
            return engine.decide(&result, presentation);
        }
        let call = self.inner.in_flight.join(key);
        let outcome = call
            .cell
            .get_or_init(|| async {
                // Another call may have filled the cache while this one queued.
                if let Some(result) = engine.cached(&key) {
                    return Ok(result);
                }
                match engine.route(token)? {
                    Route::Local(issuer) => {
                        let verified = issuer
                            .keys
                            .verify(&self.inner.http, token, &issuer.algorithms)
                            .await;
                        engine.local_outcome(key, issuer, verified)
                    }
                    Route::Introspect => {
                        let leased = match self.shared_find(key).await {
                            Found::Result(result, left) => {
                                engine.cache.insert_within(
                                    key,
                                    Arc::clone(&result),
                                    Instant::now(),
                                    SystemTime::now(),
                                    left,
                                );
                                return Ok(result);
                            }
                            Found::Leased => true,
                            Found::Alone => false,
                        };
                        let started = Instant::now();
                        let answer = match engine.request(token) {
                            Ok(request) => self.inner.http.execute_oauth(request).await,
                            Err(denial) => {
                                self.shared_store(leased, key, None).await;
                                return Err(denial);
                            }
                        };
                        let outcome = engine.outcome(key, token, answer, started);
                        self.shared_store(leased, key, outcome.as_ref().ok().cloned())
                            .await;
                        outcome
                    }
                }
            })
            .await
            .clone();
        drop(call);
        engine.decide(&outcome?, presentation)
    }

    /// Looks in the fleet's shared cache, if there is one (its store's futures are awaited on
    /// this task: use an async store, such as oauth-redis's `AsyncRedisStore`).
    async fn shared_find(&self, key: Key) -> Found {
        let Some(shared) = &self.inner.engine.shared else {
            return Found::Alone;
        };
        shared.find(&key, tokio::time::sleep).await
    }

    /// Stores this node's result in the fleet's shared cache and releases the lease, on a task
    /// of its own so that a cancelled request does not leave the lease held.
    async fn shared_store(&self, leased: bool, key: Key, result: Option<Arc<Introspection>>) {
        let (true, Some(shared)) = (leased, self.inner.engine.shared.clone()) else {
            return;
        };
        let config = self.inner.engine.cache.config;
        let _ = tokio::spawn(async move {
            shared
                .store(&key, result.as_deref(), &config, SystemTime::now())
                .await;
        })
        .await;
    }

    /// The response for a denial (RFC 6750 status, challenge and JSON body).
    pub fn deny_response(&self, denial: &Denial) -> Response<Vec<u8>> {
        self.inner.engine.deny_response(denial)
    }

    /// A `tower` layer that runs this gateway in front of a service. Allowed requests reach
    /// the service with the [`Principal`] in their extensions; denied ones are answered by
    /// the layer.
    pub fn layer(&self) -> GatewayLayer {
        GatewayLayer {
            gateway: self.clone(),
        }
    }
}

impl std::fmt::Debug for Gateway {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        f.debug_struct("Gateway")
            .field("policy", &self.inner.engine.policy)
            .finish_non_exhaustive()
    }
}

impl GatewayBuilder<HttpClient> {
    /// Builds the async gateway enforcing `policy` with `contracts`.
    pub fn build(self, policy: ApiPolicy, contracts: impl ContractStore) -> Gateway {
        let (http, engine) = self.engine(policy, contracts);
        Gateway {
            inner: Arc::new(Inner {
                engine,
                http,
                in_flight: InFlight::new(),
            }),
        }
    }
}

/// The `tower` layer of a [`Gateway`].
#[derive(Clone, Debug)]
pub struct GatewayLayer {
    gateway: Gateway,
}

impl<S> tower_layer::Layer<S> for GatewayLayer {
    type Service = GatewayService<S>;

    fn layer(&self, inner: S) -> Self::Service {
        GatewayService {
            gateway: self.gateway.clone(),
            inner,
        }
    }
}

/// A service behind the gateway (made by [`GatewayLayer`]).
///
/// The token is read from the `Authorization` header (and the query, if enabled); the
/// form-body method needs the body, so it is not available here (use [`Gateway::check`]).
#[derive(Clone, Debug)]
pub struct GatewayService<S> {
    gateway: Gateway,
    inner: S,
}

impl<S, ReqBody, ResBody> tower_service::Service<Request<ReqBody>> for GatewayService<S>
where
    S: tower_service::Service<Request<ReqBody>, Response = Response<ResBody>>
        + Clone
        + Send
        + 'static,
    S::Future: Send + 'static,
    S::Error: Send + 'static,
    ReqBody: Send + 'static,
    ResBody: From<Vec<u8>> + Send + 'static,
{
    type Response = Response<ResBody>;
    type Error = S::Error;
    type Future = Pin<Box<dyn Future<Output = Result<Self::Response, Self::Error>> + Send>>;

    fn poll_ready(&mut self, cx: &mut Context<'_>) -> Poll<Result<(), Self::Error>> {
        self.inner.poll_ready(cx)
    }

    fn call(&mut self, mut request: Request<ReqBody>) -> Self::Future {
        // The clone is not ready; the ready one goes into the future (tower's usual dance).
        let clone = self.inner.clone();
        let mut inner = std::mem::replace(&mut self.inner, clone);
        let gateway = self.gateway.clone();
        Box::pin(async move {
            let decision = gateway
                .check_parts(request.method(), request.uri(), request.headers())
                .await;
            match decision {
                Ok(principal) => {
                    request.extensions_mut().insert(principal);
                    inner.call(request).await
                }
                Err(denial) => Ok(gateway.deny_response(&denial).map(ResBody::from)),
            }
        })
    }
}
