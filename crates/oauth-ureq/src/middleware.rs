//! The token source's token on a caller's own ureq requests: [`OAuthMiddleware`] (in an agent's
//! middleware chain) and [`OAuthAgent`] (around an agent, with the 401 retry).

use std::future::ready;

use oauth_core::http::{HeaderMap, Request, Response, StatusCode};
use oauth_runtime::{Downstream, block_on};
use ureq::middleware::{Middleware, MiddlewareNext};
use ureq::{AsSendBody, Body, RequestExt, SendBody};

use crate::TokenSource;

/// A [`ureq::middleware::Middleware`]: every request through the agent gets the token source's
/// token (`Authorization: Bearer`, or DPoP for a DPoP-bound token), bodies stream both ways.
///
/// ureq runs its middleware chain once per request and cannot read a [`SendBody`] twice, so
/// this middleware **never retries**: when a 401 rejects the token (as the source's
/// `RejectionClassifier` reads it), the token is dropped, so the *next* request gets a new one,
/// and the 401 is returned with the [`NotReplayed`](oauth_runtime::NotReplayed) extension.
/// For the retry, send through an [`OAuthAgent`] instead.
///
/// The middleware reads answers' statuses itself (it turns ureq's `http_status_as_error` off
/// for the request), then gives a 4xx/5xx back as `ureq::Error::StatusCode` as ureq does by
/// default; [`statuses_as_responses`](Self::statuses_as_responses) returns them as responses
/// (for an agent built with `http_status_as_error(false)`).
///
/// ```no_run
/// use oauth_ureq::{OAuthMiddleware, TokenSource};
///
/// # fn run(tokens: TokenSource) -> Result<(), ureq::Error> {
/// let agent: ureq::Agent = ureq::Agent::config_builder()
///     .middleware(OAuthMiddleware::new(tokens))
///     .build()
///     .into();
/// let things = agent.get("https://api.example.com/v1/things").call()?;
/// println!("{}", things.status());
/// # Ok(()) }
/// ```
#[derive(Clone, Debug)]
pub struct OAuthMiddleware {
    tokens: TokenSource,
    status_as_error: bool,
}

impl OAuthMiddleware {
    /// A middleware adding `tokens`' token.
    pub fn new(tokens: TokenSource) -> Self {
        Self {
            tokens,
            status_as_error: true,
        }
    }

    /// Returns 4xx and 5xx answers as responses instead of `ureq::Error::StatusCode`.
    pub fn statuses_as_responses(mut self) -> Self {
        self.status_as_error = false;
        self
    }
}

impl Middleware for OAuthMiddleware {
    fn handle(
        &self,
        request: Request<SendBody<'_>>,
        next: MiddlewareNext<'_>,
    ) -> Result<Response<Body>, ureq::Error> {
        let mut chain = Chain {
            next: Some(next),
            _body: std::marker::PhantomData,
        };
        let answer = self
            .tokens
            .authorized(&mut chain, request)
            .map_err(|e| e.0)?;
        status_as_error(answer, self.status_as_error)
    }
}

/// ureq's `http_status_as_error`, applied after the middleware has seen the answer.
fn status_as_error(answer: Response<Body>, on: bool) -> Result<Response<Body>, ureq::Error> {
    let status = answer.status();
    if on && (status.is_client_error() || status.is_server_error()) {
        return Err(ureq::Error::StatusCode(status.as_u16()));
    }
    Ok(answer)
}

struct Chain<'a, 'b> {
    next: Option<MiddlewareNext<'a>>,
    _body: std::marker::PhantomData<fn(SendBody<'b>)>,
}

/// ureq's error, which oauth-core's errors convert into.
struct UreqError(ureq::Error);

impl From<oauth_core::Error> for UreqError {
    fn from(error: oauth_core::Error) -> Self {
        Self(ureq::Error::Other(Box::new(error)))
    }
}

impl<'b> Downstream for Chain<'_, 'b> {
    type Request = Request<SendBody<'b>>;
    type Response = Response<Body>;
    type Error = UreqError;

    fn head(request: &Self::Request) -> Request<()> {
        oauth_runtime::request_head(request)
    }

    fn headers_mut(request: &mut Self::Request) -> &mut HeaderMap {
        request.headers_mut()
    }

    fn try_clone(_: &Self::Request) -> Option<Self::Request> {
        None
    }

    fn send(
        &mut self,
        request: Self::Request,
    ) -> impl Future<Output = Result<Response<Body>, UreqError>> {
        // The answer's status is read here, not turned into an error by ureq.
        // (`middleware_config` is always there inside a middleware.)
        let config = request.middleware_config();
        let answer = match (self.next.take(), config) {
            (Some(next), Some(config)) => next
                .handle(config.http_status_as_error(false).build())
                .map_err(UreqError),
            // `next` is single-use and `try_clone` gives no copy, so the call never sends twice.
            (None, _) => Err(oauth_runtime::internal_error(
                "OAuthMiddleware sent a request twice through a single-use MiddlewareNext",
            )
            .into()),
            // ureq sets a middleware config on every request a middleware sees.
            (Some(_), None) => Err(oauth_runtime::internal_error(
                "OAuthMiddleware saw a request without ureq's middleware config",
            )
            .into()),
        };
        ready(answer)
    }

    fn response_head(response: &Response<Body>) -> (StatusCode, &HeaderMap) {
        (response.status(), response.headers())
    }

    fn buffer(
        response: Response<Body>,
        limit: usize,
    ) -> impl Future<Output = Result<Response<Vec<u8>>, UreqError>> {
        ready(buffer(response, limit))
    }

    fn unbuffer(response: Response<Vec<u8>>) -> Response<Body> {
        unbuffer(response)
    }
}

/// A request body [`OAuthAgent`] may send a second time (after a rejected token): in-memory
/// bodies can (`Vec<u8>`, `String`, `&[u8]`, `&str`, `()`); a [`SendBody`] (a reader, a
/// file) cannot.
pub trait ReplayBody: AsSendBody + Sized {
    /// A copy of the body, or `None` if it cannot be sent again.
    fn try_clone(&self) -> Option<Self>;
}

macro_rules! replayable {
    ($($t:ty),*) => {$(
        impl ReplayBody for $t {
            fn try_clone(&self) -> Option<Self> {
                Some(self.clone())
            }
        }
    )*};
}
replayable!(Vec<u8>, String, &[u8], &str, ());

impl ReplayBody for SendBody<'_> {
    fn try_clone(&self) -> Option<Self> {
        None
    }
}

/// A [`ureq::Agent`] (with any middleware of its own) that sends requests with the token
/// source's token and recovers once from a rejected token, exactly as [`TokenSource::send`] —
/// the same classifier and token cache — with the body streamed: an in-memory body
/// ([`ReplayBody`]) is sent again with a new token after a 401 that rejects the token; a
/// [`SendBody`] stream is not (the 401 is returned with the
/// [`NotReplayed`](oauth_runtime::NotReplayed) extension). Responses stream, except a 401's,
/// read up to 64 KiB for the classifier. A 4xx/5xx comes back as `ureq::Error::StatusCode`
/// if the agent is configured so (ureq's default).
///
/// ```no_run
/// use oauth_ureq::{OAuthAgent, TokenSource};
///
/// # fn run(tokens: TokenSource) -> Result<(), ureq::Error> {
/// let api = OAuthAgent::new(ureq::Agent::new_with_defaults(), tokens);
/// let request = oauth_ureq::http::Request::post("https://api.example.com/v1/things")
///     .body(r#"{"name":"x"}"#.to_owned())?;
/// let mut answer = api.run(request)?;
/// println!("{}", answer.body_mut().read_to_string()?);
/// # Ok(()) }
/// ```
#[derive(Clone, Debug)]
pub struct OAuthAgent {
    agent: ureq::Agent,
    tokens: TokenSource,
}

impl OAuthAgent {
    /// Sends through `agent` with `tokens`' token.
    pub fn new(agent: ureq::Agent, tokens: TokenSource) -> Self {
        Self { agent, tokens }
    }

    /// Sends `request` (see the type's documentation for when it is sent twice).
    pub fn run<B: ReplayBody>(&self, request: Request<B>) -> Result<Response<Body>, ureq::Error> {
        let mut agent = AgentStack {
            agent: &self.agent,
            _body: std::marker::PhantomData,
        };
        let answer = self
            .tokens
            .authorized(&mut agent, request)
            .map_err(|e| e.0)?;
        status_as_error(answer, self.agent.config().http_status_as_error())
    }
}

struct AgentStack<'a, B> {
    agent: &'a ureq::Agent,
    _body: std::marker::PhantomData<fn(B)>,
}

impl<B: ReplayBody> Downstream for AgentStack<'_, B> {
    type Request = Request<B>;
    type Response = Response<Body>;
    type Error = UreqError;

    fn head(request: &Request<B>) -> Request<()> {
        oauth_runtime::request_head(request)
    }

    fn headers_mut(request: &mut Request<B>) -> &mut HeaderMap {
        request.headers_mut()
    }

    fn try_clone(request: &Request<B>) -> Option<Request<B>> {
        // Request-level settings (ureq's per-request config, a caller's markers) go too.
        Some(oauth_runtime::copy_request(
            request,
            request.body().try_clone()?,
        ))
    }

    fn send(
        &mut self,
        request: Request<B>,
    ) -> impl Future<Output = Result<Response<Body>, UreqError>> {
        // The answer's status is read here, not turned into an error by ureq.
        let answer = request
            .with_agent(self.agent)
            .configure()
            .http_status_as_error(false)
            .run();
        ready(answer.map_err(UreqError))
    }

    fn response_head(response: &Response<Body>) -> (StatusCode, &HeaderMap) {
        (response.status(), response.headers())
    }

    fn buffer(
        response: Response<Body>,
        limit: usize,
    ) -> impl Future<Output = Result<Response<Vec<u8>>, UreqError>> {
        ready(buffer(response, limit))
    }

    fn unbuffer(response: Response<Vec<u8>>) -> Response<Body> {
        unbuffer(response)
    }
}

fn buffer(response: Response<Body>, limit: usize) -> Result<Response<Vec<u8>>, UreqError> {
    let (parts, mut body) = response.into_parts();
    let bytes = body
        .with_config()
        .limit(limit as u64)
        .read_to_vec()
        .map_err(UreqError)?;
    Ok(Response::from_parts(parts, bytes))
}

fn unbuffer(response: Response<Vec<u8>>) -> Response<Body> {
    let mime = response
        .headers()
        .get(oauth_core::http::header::CONTENT_TYPE)
        .and_then(|v| v.to_str().ok())
        .map(|v| v.split(';').next().unwrap_or_default().trim().to_owned());
    let (parts, bytes) = response.into_parts();
    let mut body = Body::builder();
    if let Some(mime) = mime {
        body = body.mime_type(mime);
    }
    Response::from_parts(parts, body.data(bytes))
}

impl TokenSource {
    /// Sends a caller's request through a caller's stack with the token (the middlewares'
    /// common path), blocking.
    fn authorized<D: Downstream>(
        &self,
        downstream: &mut D,
        request: D::Request,
    ) -> Result<D::Response, D::Error> {
        let (shared, classifier, dpop) = self.parts();
        block_on(oauth_runtime::authorized(
            downstream,
            shared,
            classifier,
            dpop,
            request,
            || ready(self.token()),
        ))
    }
}
