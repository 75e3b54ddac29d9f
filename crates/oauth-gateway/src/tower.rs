//! The async gateway on oauth-reqwest, and its `tower` Layer/Service.

use std::future::Future;
use std::pin::Pin;
use std::sync::Arc;
use std::task::{Context, Poll};

use oauth_core::http::{Method, Request, Response, Uri};
use oauth_core::resource_server::{ClientCertificate, Presented};
use oauth_core::{AccessToken, ApiPolicy, Denial, Presentation, Principal};
use oauth_reqwest::HttpClient;

use crate::contracts::ContractStore;
use crate::engine::{Engine, GatewayBuilder, ProbeError};

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
    /// body too, since the body is here), and the connection's client certificate from the
    /// request's extensions (a [`ClientCertificate`] the TLS acceptor put there).
    pub async fn check<B: AsRef<[u8]>>(&self, request: &Request<B>) -> Result<Principal, Denial> {
        let body = Some(request.body().as_ref());
        let certificate = request.extensions().get::<ClientCertificate>();
        let (engine, http) = (&self.inner.engine, &self.inner.http);
        engine
            .check(
                http,
                request.method(),
                request.uri(),
                request.headers(),
                body,
                certificate,
            )
            .await
    }

    /// Decides on a request whose body has not been read (the form-body method is skipped),
    /// on a connection without a client certificate: a certificate-bound token is refused.
    pub async fn check_parts(
        &self,
        method: &Method,
        uri: &Uri,
        headers: &oauth_core::http::HeaderMap,
    ) -> Result<Principal, Denial> {
        self.check_parts_with_certificate(method, uri, headers, None)
            .await
    }

    /// [`check_parts`](Self::check_parts) for a request that came on a connection whose
    /// client presented `certificate` (RFC 8705 §3: a token bound to a certificate is allowed
    /// only with that certificate).
    pub async fn check_parts_with_certificate(
        &self,
        method: &Method,
        uri: &Uri,
        headers: &oauth_core::http::HeaderMap,
        certificate: Option<&ClientCertificate>,
    ) -> Result<Principal, Denial> {
        let (engine, http) = (&self.inner.engine, &self.inner.http);
        engine
            .check(http, method, uri, headers, None, certificate)
            .await
    }

    /// Decides on a token presented as a bearer token without a client certificate: from the
    /// cache, or after one validation shared by every concurrent request with the same token.
    pub async fn validate(&self, token: &AccessToken) -> Result<Principal, Denial> {
        let (engine, http) = (&self.inner.engine, &self.inner.http);
        let presented = Presented::new(Presentation::Bearer);
        engine
            .decide_token(http, token.expose_secret(), presented)
            .await
    }

    /// A readiness probe: whether each issuer's key set can be had and the introspection
    /// endpoint answers (one introspection call, about a token no server issued). Meant for a
    /// `/readyz` handler; space the calls out (every few seconds), they reach the servers.
    pub async fn probe(&self) -> Result<(), ProbeError> {
        let (engine, http) = (&self.inner.engine, &self.inner.http);
        engine.probe(http).await
    }

    /// How many validation results the node's cache holds now (for a metrics gauge).
    pub fn cached_results(&self) -> usize {
        self.inner.engine.cached_results()
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
        let wait = self.http.config().timeout;
        let (http, engine) = self.engine(policy, contracts, wait);
        Gateway {
            inner: Arc::new(Inner { engine, http }),
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
            let certificate = request.extensions().get::<ClientCertificate>();
            let decision = gateway
                .check_parts_with_certificate(
                    request.method(),
                    request.uri(),
                    request.headers(),
                    certificate,
                )
                .await;
            match decision {
                Ok(principal) => {
                    let quota = principal.quota().cloned();
                    request.extensions_mut().insert(principal);
                    let mut response = inner.call(request).await?;
                    // The quota left (draft-ietf-httpapi-ratelimit-headers), when counted.
                    if let Some(quota) = quota {
                        for (name, value) in quota.headers() {
                            response.headers_mut().insert(name, value);
                        }
                    }
                    Ok(response)
                }
                Err(denial) => Ok(gateway.deny_response(&denial).map(ResBody::from)),
            }
        })
    }
}
