//! The drivers of oauth-core's machines, written once for both adapters.
//!
//! Each driver is an `async fn` generic over [`Io`], the little an adapter provides: send one
//! request and wait. oauth-reqwest's `Io` is tokio and reqwest; oauth-ureq's futures finish
//! in their first poll (ureq blocks inside them), and it runs the drivers with [`block_on`].
//! So the loops that carry out the core's decisions (the token call's retries, the resource
//! call's one retry, discovery's two locations) exist once.

use std::future::Future;
use std::pin::pin;
use std::task::{Context, Poll, Waker};
use std::time::{Duration, Instant};

use oauth_core::http::{Request, Response, StatusCode};
use oauth_core::{
    AccessToken, CallStep, Client, Endpoint, Error, Introspection, IntrospectionRequest,
    RejectionClassifier, RequestBody, ResourceCall, ResourceStep, RevocationRequest, SentSecrets,
    ServerMetadata, TokenRequest, TokenResponse, TransportError, TransportErrorKind, WellKnown,
    discovery_request, parse_server_metadata,
};

use crate::{CallEvent, HttpConfig, SharedToken, Signal, log_call, now};

/// A request body: one that holds secrets (wiped when the adapter is done with it), or any
/// other.
#[derive(Debug)]
#[non_exhaustive]
pub enum Body {
    /// A body built by oauth-core: secrets, wiped on drop.
    Secret(RequestBody),
    /// A caller's body.
    Plain(Vec<u8>),
}

/// What an adapter provides to the drivers: one exchange over HTTP, and a timer.
pub trait Io: Sync {
    /// The settings.
    fn config(&self) -> &HttpConfig;

    /// Sends `request` once, following no redirect, reading the body up to `limit` bytes,
    /// giving up after `timeout`.
    fn send(
        &self,
        request: Request<Body>,
        limit: usize,
        timeout: Duration,
    ) -> impl Future<Output = Result<Response<Vec<u8>>, Error>> + Send;

    /// Waits until `until`.
    fn sleep_until(&self, until: Instant) -> impl Future<Output = ()> + Send;

    /// Waits until `signal` is raised past generation `seen`, or until `until`, whichever
    /// comes first: how a driver waits for another caller without polling (the async adapter
    /// parks the task, the blocking one the thread).
    fn wait(&self, signal: &Signal, seen: u64, until: Instant) -> impl Future<Output = ()> + Send;
}

/// Runs a future whose every poll completes (a blocking adapter's driver) to its end.
pub fn block_on<F: Future>(future: F) -> F::Output {
    let mut future = pin!(future);
    let mut cx = Context::from_waker(Waker::noop());
    loop {
        if let Poll::Ready(output) = future.as_mut().poll(&mut cx) {
            return output;
        }
        // Not reached with a blocking `Io`, whose futures never wait; yield rather than spin.
        std::thread::yield_now();
    }
}

/// Refuses a mutual-TLS client (`tls_client_auth`, `self_signed_tls_client_auth`: RFC 8705
/// §2) on an HTTP client that presents no certificate
/// ([`HttpConfig::client_identity`](crate::HttpConfig::client_identity)), before anything is
/// sent: the server could only answer `invalid_client`, and the request would go out under
/// the client's id with no proof of it.
pub(crate) fn check_identity(config: &HttpConfig, client: &Client) -> Result<(), Error> {
    if client.uses_mtls() && config.client_identity.is_none() {
        return Err(Error::InvalidParameter {
            name: "client_identity",
            reason: "is needed by a client that authenticates with mutual TLS \
                     (tls_client_auth, self_signed_tls_client_auth): give the HTTP client its \
                     certificate and key with HttpConfig::client_identity",
        });
    }
    Ok(())
}

/// Runs a token request to its end: each attempt built (and its assertions signed) afresh,
/// transient failures retried as oauth-core's `TokenCall` decides, all within
/// [`HttpConfig::timeout`].
pub async fn request_token<I: Io>(
    io: &I,
    endpoint: &Endpoint,
    client: &Client,
    request: &TokenRequest,
) -> Result<TokenResponse, Error> {
    let config = io.config();
    check_identity(config, client)?;
    let mut call = config.token_call(endpoint, client, request, now());
    loop {
        match call.poll(now()) {
            CallStep::Send { request, timeout } => {
                log_call(&call, CallEvent::Sending);
                let answer = execute_oauth_within(io, request, timeout).await;
                // The answer holds the tokens: its buffer is wiped once it is parsed.
                let answer = answer.map(|r| r.map(zeroize::Zeroizing::new));
                call.handle_response(answer, now());
            }
            CallStep::Wait(until) => {
                log_call(&call, CallEvent::Retrying);
                io.sleep_until(until).await;
            }
            CallStep::Done(result) => {
                log_call(&call, CallEvent::Done(&result));
                return result;
            }
            _ => {
                return Err(unexpected_step(
                    "request_token met a CallStep it does not know",
                ));
            }
        }
    }
}

/// Sends a request built by oauth-core (token, introspection, revocation, discovery) once: no
/// redirect is followed, the body is read up to the OAuth response limit, within one
/// attempt's timeout (and never longer than a whole call's).
pub async fn execute_oauth<I: Io>(
    io: &I,
    request: Request<RequestBody>,
) -> Result<Response<Vec<u8>>, Error> {
    let config = io.config();
    let timeout = config.attempt_timeout.min(config.timeout);
    execute_oauth_within(io, request, timeout).await
}

/// Sends a request built by oauth-core once (as [`execute_oauth`]) and reads its answer with
/// `parse`. Whatever the request carries of secrets ([`SentSecrets::of`]: its secret body
/// parameters, its `Authorization` credential, its DPoP proof) is scrubbed from the error, in
/// every form a server may echo it; every driver here reads its answers this way, so a new
/// endpoint's errors are scrubbed without anyone remembering to.
pub async fn exchange<I: Io, T>(
    io: &I,
    request: Request<RequestBody>,
    parse: impl Fn(&Response<Vec<u8>>) -> Result<T, Error>,
) -> Result<T, Error> {
    let sent = SentSecrets::of(&request);
    let response = execute_oauth(io, request).await.map_err(|mut e| {
        sent.redact(&mut e);
        e
    })?;
    let mut response = response;
    let result = sent.parse(&response, parse);
    // The answer may hold tokens or a client secret: its buffer is wiped once it is read.
    zeroize::Zeroize::zeroize(response.body_mut());
    result
}

async fn execute_oauth_within<I: Io>(
    io: &I,
    request: Request<RequestBody>,
    timeout: Duration,
) -> Result<Response<Vec<u8>>, Error> {
    let request = request.map(Body::Secret);
    let response = io
        .send(request, io.config().max_response_body, timeout)
        .await?;
    if response.status().is_redirection() {
        return Err(TransportError::new(
            TransportErrorKind::Redirect,
            &format!("HTTP {}", response.status().as_u16()),
        )
        .into());
    }
    Ok(response)
}

/// Sends any request once, reading the body up to `limit` bytes within
/// [`HttpConfig::timeout`]. Redirects are returned, not followed.
pub async fn execute<I: Io>(
    io: &I,
    request: Request<Vec<u8>>,
    limit: usize,
) -> Result<Response<Vec<u8>>, Error> {
    io.send(request.map(Body::Plain), limit, io.config().timeout)
        .await
}

/// The server's metadata: OpenID Connect Discovery's location first, then RFC 8414's; the
/// issuer checked, every endpoint under the configured scheme policy. With a client
/// certificate configured ([`HttpConfig::client_identity`](crate::HttpConfig::client_identity))
/// the metadata answers the server's `mtls_endpoint_aliases` (RFC 8705 §5).
pub async fn discover<I: Io>(io: &I, issuer: &str) -> Result<ServerMetadata, Error> {
    let config = io.config();
    let issuer_endpoint = config.endpoint(issuer)?;
    let mut answer = None;
    for which in [
        WellKnown::OpenIdConfiguration,
        WellKnown::OAuthAuthorizationServer,
    ] {
        let request = discovery_request(&issuer_endpoint, which)?.map(|()| RequestBody::default());
        let response = execute_oauth(io, request).await?;
        let found = response.status() != StatusCode::NOT_FOUND;
        answer = Some(response);
        if found {
            break;
        }
    }
    // The loop above runs at least once, so there is always an answer.
    let response =
        answer.ok_or_else(|| unexpected_step("discover ended its loop without an answer"))?;
    let metadata = parse_server_metadata(&response, issuer, config.scheme_policy)?;
    // RFC 8705 §5: a client that presents a certificate sends what it would send to the token,
    // PAR, introspection, revocation, userinfo and device endpoints to their mTLS aliases.
    Ok(if config.client_identity.is_some() {
        metadata.with_mtls_endpoint_aliases()
    } else {
        metadata
    })
}

/// Introspects a token (RFC 7662).
pub async fn introspect<I: Io>(
    io: &I,
    endpoint: &Endpoint,
    client: &Client,
    request: &IntrospectionRequest,
) -> Result<Introspection, Error> {
    check_identity(io.config(), client)?;
    let built = request.build_at(endpoint, client, now().wall())?;
    exchange(io, built, |r| request.parse_response(client, r)).await
}

/// Revokes a token (RFC 7009).
pub async fn revoke<I: Io>(
    io: &I,
    endpoint: &Endpoint,
    client: &Client,
    request: &RevocationRequest,
) -> Result<(), Error> {
    check_identity(io.config(), client)?;
    let built = request.build_at(endpoint, client, now().wall())?;
    exchange(io, built, |r| request.parse_response(client, r)).await
}

/// Sends `request` to a protected resource with the token source's token, and once more with
/// a new token if the resource rejects it, as oauth-core's `ResourceCall` decides. `token`
/// is the source's `token()`.
pub async fn send<I, F, Fut>(
    io: &I,
    shared: &SharedToken,
    classifier: &RejectionClassifier,
    dpop: Option<&oauth_core::Dpop>,
    request: Request<Vec<u8>>,
    mut token: F,
) -> Result<Response<Vec<u8>>, Error>
where
    I: Io,
    F: FnMut() -> Fut,
    Fut: Future<Output = Result<AccessToken, Error>>,
{
    let config = io.config();
    config.endpoint(&request.uri().to_string())?;
    let mut call = ResourceCall::new(&request, classifier, config.timeout).dpop(dpop);
    loop {
        match call.poll() {
            ResourceStep::NeedToken => call.handle_token(token().await?, now().wall())?,
            ResourceStep::Send { request, timeout } => {
                let limit = config.max_resource_body;
                let answer = io.send(request.map(Body::Plain), limit, timeout).await?;
                call.handle_response(answer);
            }
            ResourceStep::Invalidate(rejected) => {
                tracing::info!(
                    "the resource rejected the token; getting a new one and retrying once"
                );
                call.handle_invalidated(shared.invalidate(&rejected));
            }
            ResourceStep::Accepted(token) => shared.accepted(&token),
            ResourceStep::Done(response) => return Ok(response),
            _ => return Err(unexpected_step("send met a ResourceStep it does not know")),
        }
    }
}

/// A machine's step this driver does not know (oauth-core's step enums are
/// `#[non_exhaustive]`): a bug of ours, reported as one rather than as a network failure.
fn unexpected_step(what: &'static str) -> Error {
    crate::internal_error(what)
}

/// The error for a body over the limit.
pub fn too_large(limit: usize) -> Error {
    TransportError::new(
        TransportErrorKind::BodyTooLarge,
        &format!("more than {limit} bytes"),
    )
    .into()
}

/// A body buffer sized from the declared length (so it is allocated once and never doubles),
/// or refused when the declared length is over `limit`.
pub fn body_buffer(declared: Option<u64>, limit: usize) -> Result<Vec<u8>, Error> {
    match declared {
        Some(n) if n > limit as u64 => Err(too_large(limit)),
        Some(n) => Ok(Vec::with_capacity(n as usize)),
        None => Ok(Vec::new()),
    }
}

/// Gives back the spare capacity of a body read without a declared length.
pub fn trim(mut body: Vec<u8>) -> Vec<u8> {
    if body.capacity() > body.len() + body.len() / 4 + 64 {
        body.shrink_to_fit();
    }
    body
}
