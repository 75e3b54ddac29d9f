//! The blocking gateway on oauth-ureq, for thread-per-request servers.

use std::sync::Arc;

use oauth_core::http::{Method, Request, Response, Uri};
use oauth_core::resource_server::{ClientCertificate, Presented};
use oauth_core::{AccessToken, ApiPolicy, Denial, Presentation, Principal};
use oauth_runtime::block_on;
use oauth_ureq::HttpClient;

use crate::contracts::ContractStore;
use crate::engine::{Engine, GatewayBuilder, ProbeError};

/// The gateway policy for blocking servers: the same engine as [`Gateway`](crate::Gateway) (the
/// same cache, single flight, DPoP replay sets, JWT issuers and fleet cache), run to its end
/// on the calling thread. Cheap to clone and share between threads. Its fleet store
/// ([`GatewayBuilder::shared_cache`]) must be a blocking one (oauth-redis's `RedisStore`).
///
/// ```no_run
/// use oauth_gateway::{ApiPolicy, BlockingGateway, Contract, MemoryContracts};
/// use oauth_gateway::oauth_core::{Client, ClientAuthentication, ClientSecret};
/// use oauth_ureq::{HttpClient, HttpConfig};
///
/// let http = HttpClient::new(HttpConfig::new())?;
/// let endpoint = http.endpoint("https://as.example/introspect")?;
/// let credentials = Client::new("gateway", ClientAuthentication::SecretBasic(ClientSecret::new("s3cret")));
/// let contracts = MemoryContracts::new();
/// contracts.grant(Contract::new("app-1", "orders"));
/// let gateway = BlockingGateway::builder(http, endpoint, credentials)
///     .build(ApiPolicy::new("orders"), contracts);
///
/// // In the request handler:
/// # let request = oauth_core::http::Request::new(Vec::<u8>::new());
/// let response = match gateway.check(&request) {
///     // Allowed: the backend answers, knowing who calls.
///     Ok(principal) => oauth_core::http::Response::new(
///         format!("orders for {}", principal.client_id()).into_bytes(),
///     ),
///     Err(denial) => gateway.deny_response(&denial),
/// };
/// # let _: oauth_core::http::Response<Vec<u8>> = response;
/// # Ok::<(), Box<dyn std::error::Error>>(())
/// ```
#[derive(Clone)]
pub struct BlockingGateway {
    inner: Arc<Inner>,
}

struct Inner {
    engine: Engine,
    http: HttpClient,
}

impl BlockingGateway {
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

    /// Decides on a request, reading the token from the places the builder allowed, and the
    /// connection's client certificate from the request's extensions (a
    /// [`ClientCertificate`] the TLS acceptor put there).
    pub fn check<B: AsRef<[u8]>>(&self, request: &Request<B>) -> Result<Principal, Denial> {
        let body = Some(request.body().as_ref());
        let certificate = request.extensions().get::<ClientCertificate>();
        let (engine, http) = (&self.inner.engine, &self.inner.http);
        block_on(engine.check(
            http,
            request.method(),
            request.uri(),
            request.headers(),
            body,
            certificate,
        ))
    }

    /// Decides on a request whose body has not been read (the form-body method is skipped),
    /// on a connection without a client certificate: a certificate-bound token is refused.
    pub fn check_parts(
        &self,
        method: &Method,
        uri: &Uri,
        headers: &oauth_core::http::HeaderMap,
    ) -> Result<Principal, Denial> {
        self.check_parts_with_certificate(method, uri, headers, None)
    }

    /// [`check_parts`](Self::check_parts) for a request that came on a connection whose
    /// client presented `certificate` (RFC 8705 §3: a token bound to a certificate is allowed
    /// only with that certificate).
    pub fn check_parts_with_certificate(
        &self,
        method: &Method,
        uri: &Uri,
        headers: &oauth_core::http::HeaderMap,
        certificate: Option<&ClientCertificate>,
    ) -> Result<Principal, Denial> {
        let (engine, http) = (&self.inner.engine, &self.inner.http);
        block_on(engine.check(http, method, uri, headers, None, certificate))
    }

    /// Decides on a token presented as a bearer token without a client certificate: from the
    /// cache, or after one validation shared by every concurrent request with the same token
    /// (the others block until it ends).
    pub fn validate(&self, token: &AccessToken) -> Result<Principal, Denial> {
        let (engine, http) = (&self.inner.engine, &self.inner.http);
        let presented = Presented::new(Presentation::Bearer);
        block_on(engine.decide_token(http, token.expose_secret(), presented))
    }

    /// A readiness probe: whether each issuer's key set can be had and the introspection
    /// endpoint answers (one introspection call, about a token no server issued). Meant for a
    /// `/readyz` handler; space the calls out (every few seconds), they reach the servers.
    pub fn probe(&self) -> Result<(), ProbeError> {
        let (engine, http) = (&self.inner.engine, &self.inner.http);
        block_on(engine.probe(http))
    }

    /// How many validation results the node's cache holds now (for a metrics gauge).
    pub fn cached_results(&self) -> usize {
        self.inner.engine.cached_results()
    }

    /// The response for a denial (RFC 6750 status, challenge and JSON body).
    pub fn deny_response(&self, denial: &Denial) -> Response<Vec<u8>> {
        self.inner.engine.deny_response(denial)
    }
}

impl std::fmt::Debug for BlockingGateway {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        f.debug_struct("BlockingGateway")
            .field("policy", &self.inner.engine.policy)
            .finish_non_exhaustive()
    }
}

impl GatewayBuilder<HttpClient> {
    /// Builds the blocking gateway enforcing `policy` with `contracts`.
    pub fn build(self, policy: ApiPolicy, contracts: impl ContractStore) -> BlockingGateway {
        let wait = self.http.config().timeout;
        let (http, engine) = self.engine(policy, contracts, wait);
        BlockingGateway {
            inner: Arc::new(Inner { engine, http }),
        }
    }
}
