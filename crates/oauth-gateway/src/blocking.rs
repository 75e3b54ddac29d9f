//! The blocking gateway on oauth-ureq, for thread-per-request servers.

use std::sync::{Arc, OnceLock};
use std::time::Instant;

use oauth_core::http::{Method, Request, Response, Uri};
use oauth_core::{
    AccessToken, ApiPolicy, Denial, Presentation, Principal, TokenScheme, extract_token_from_parts,
};
use oauth_ureq::HttpClient;

use crate::cache::key;
use crate::contracts::ContractStore;
use crate::engine::{Engine, GatewayBuilder, InFlight, Outcome, Route};

/// The gateway policy for blocking servers: the same decisions as [`Gateway`](crate::Gateway),
/// as plain functions. Cheap to clone and share between threads.
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
    in_flight: InFlight<OnceLock<Outcome>>,
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

    /// Decides on a request, reading the token from the places the builder allowed.
    pub fn check<B: AsRef<[u8]>>(&self, request: &Request<B>) -> Result<Principal, Denial> {
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
    }

    /// Decides on a token: from the cache, or after one introspection call shared by every
    /// concurrent request with the same token (the others block until it answers).
    pub fn validate(&self, token: &AccessToken) -> Result<Principal, Denial> {
        self.decide_token(token.expose_secret(), Presentation::Bearer)
    }

    fn decide_presented(
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
                self.decide_token(token, Presentation::Dpop { jkt: &proof.jkt })
            }
            _ => self.decide_token(token, Presentation::Bearer),
        }
    }

    fn decide_token(
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
            .get_or_init(|| {
                if let Some(result) = engine.cached(&key) {
                    return Ok(result);
                }
                match engine.route(token)? {
                    Route::Local(issuer) => {
                        let verified = oauth_runtime::block_on(issuer.keys.verify(
                            &self.inner.http,
                            token,
                            &issuer.algorithms,
                        ));
                        engine.local_outcome(key, issuer, verified)
                    }
                    Route::Introspect => {
                        let started = Instant::now();
                        let request = engine.request(token)?;
                        let answer = self.inner.http.execute_oauth(request);
                        engine.outcome(key, token, answer, started)
                    }
                }
            })
            .clone();
        drop(call);
        engine.decide(&outcome?, presentation)
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
        let (http, engine) = self.engine(policy, contracts);
        BlockingGateway {
            inner: Arc::new(Inner {
                engine,
                http,
                in_flight: InFlight::new(),
            }),
        }
    }
}
