//! The driver of the client middlewares (reqwest-middleware, the tower layer, ureq): a caller's
//! own request, with its own (possibly streamed) body, sent through the caller's own HTTP
//! stack with the token source's token — and the same [`ResourceCall`] rules as `send()`.
//!
//! What differs from [`send`](crate::send): the bodies are not buffered. The request body is
//! sent as it is; it is sent a second time (after a rejected token, or for a resource's DPoP
//! nonce) only when the stack can copy it ([`Downstream::try_clone`]: in-memory bodies can,
//! streams cannot). A response is handed back streaming, except a 401's, which is read (up to
//! a limit) for the [`RejectionClassifier`] to see its body. A classifier rule sees an empty
//! body for other answers.

use std::future::Future;
use std::time::Duration;

use oauth_core::http::{HeaderMap, Request, Response, StatusCode};
use oauth_core::{AccessToken, Error, RejectionClassifier, ResourceCall, ResourceStep};

use crate::{SharedToken, now};

/// The largest 401 body a middleware reads to classify it. A 401 body declared longer is
/// classified from its head alone (its `WWW-Authenticate` challenge) and handed back streaming;
/// one of undeclared length that turns out longer is an error (`BodyTooLarge`).
pub const MAX_REJECTION_BODY: usize = 64 * 1024;

/// A request's method, URI, version and headers without its body: what
/// [`Downstream::head`] gives for an `http::Request`.
pub fn request_head<B>(request: &Request<B>) -> Request<()> {
    with_body(request, ())
}

/// A copy of a request around another body (a copy of the original's): its method, URI,
/// version, headers and extensions (a stack's per-request settings, a caller's markers).
/// What [`Downstream::try_clone`] builds for an `http::Request` whose body can be copied.
pub fn copy_request<B, C>(request: &Request<B>, body: C) -> Request<C> {
    let mut copy = with_body(request, body);
    *copy.extensions_mut() = request.extensions().clone();
    copy
}

fn with_body<B, C>(request: &Request<B>, body: C) -> Request<C> {
    let mut copy = Request::new(body);
    *copy.method_mut() = request.method().clone();
    *copy.uri_mut() = request.uri().clone();
    *copy.version_mut() = request.version();
    *copy.headers_mut() = request.headers().clone();
    copy
}

/// What a client middleware provides to [`authorized`]: its request and response types, one
/// exchange, and how to read a 401 answer.
pub trait Downstream {
    /// The stack's request (head and body).
    type Request;
    /// The stack's response (head and streaming body).
    type Response;
    /// The stack's error; the token source's errors convert into it.
    type Error: From<Error>;

    /// The request's method, URI, version and headers, without the body.
    fn head(request: &Self::Request) -> Request<()>;

    /// The request's headers, to add the credentials to.
    fn headers_mut(request: &mut Self::Request) -> &mut HeaderMap;

    /// A copy to send again, or `None` when the body cannot be replayed (a stream).
    fn try_clone(request: &Self::Request) -> Option<Self::Request>;

    /// Sends the request once through the rest of the stack.
    fn send(
        &mut self,
        request: Self::Request,
    ) -> impl Future<Output = Result<Self::Response, Self::Error>>;

    /// The answer's status and headers.
    fn response_head(response: &Self::Response) -> (StatusCode, &HeaderMap);

    /// Reads the whole answer (a 401) into memory, up to `limit` bytes.
    fn buffer(
        response: Self::Response,
        limit: usize,
    ) -> impl Future<Output = Result<Response<Vec<u8>>, Self::Error>>;

    /// Turns a buffered answer back into the stack's response.
    fn unbuffer(response: Response<Vec<u8>>) -> Self::Response;
}

/// Marks a response the middleware could not retry: the resource rejected the token (it has been
/// dropped from the token source, so the next request gets a new one) but the request's body was
/// a stream that cannot be sent twice. Found in the response's extensions where the stack keeps
/// them (reqwest, tower/hyper).
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
#[non_exhaustive]
pub struct NotReplayed;

/// Sends `request` through `downstream` with the token (`Authorization: Bearer`, or DPoP with
/// `dpop`), following the same [`ResourceCall`] as `send()`: a rejected token (as `classifier`
/// reads the 401) is dropped from `shared` and the request sent once more with a new one —
/// when its body can be copied; otherwise the 401 is returned (marked [`NotReplayed`]) and a
/// log line says why. `token` is the source's `token()`.
pub async fn authorized<D, F, Fut>(
    downstream: &mut D,
    shared: &SharedToken,
    classifier: &RejectionClassifier,
    dpop: Option<&oauth_core::Dpop>,
    request: D::Request,
    mut token: F,
) -> Result<D::Response, D::Error>
where
    D: Downstream,
    F: FnMut() -> Fut,
    Fut: Future<Output = Result<AccessToken, Error>>,
{
    let head = D::head(&request);
    let mut call = ResourceCall::new(&head, classifier, Duration::MAX).dpop(dpop);
    // The first attempt sends the caller's request; a later one a copy of the spare.
    let spare = D::try_clone(&request);
    let mut first = Some(request);
    // The last answer, kept to be returned when a retry is impossible.
    let mut last: Option<Last<D::Response>> = None;
    loop {
        match call.poll() {
            ResourceStep::NeedToken => {
                if first.is_none()
                    && spare.is_none()
                    && let Some(answer) = last.take()
                {
                    return Ok(answer.not_replayed::<D>());
                }
                call.handle_token(token().await?, now().wall())?;
            }
            ResourceStep::Send {
                request: authorized,
                ..
            } => {
                let Some(mut request) = first
                    .take()
                    .or_else(|| spare.as_ref().and_then(D::try_clone))
                else {
                    // Unreachable: `NeedToken` returned the last answer when nothing was left.
                    return Err(
                        crate::internal_error("authorized had no request left to send").into(),
                    );
                };
                copy_credentials(authorized.headers(), D::headers_mut(&mut request));
                let response = downstream.send(request).await?;
                let (status, headers) = D::response_head(&response);
                if status != StatusCode::UNAUTHORIZED || declared_over(headers) {
                    // Classified from its head; the body streams to the caller.
                    let mut seen = Response::new(Vec::new());
                    *seen.status_mut() = status;
                    *seen.headers_mut() = headers.clone();
                    last = Some(Last::Streamed(response));
                    call.handle_response(seen);
                } else {
                    let answer = D::buffer(response, MAX_REJECTION_BODY).await?;
                    last = Some(Last::Buffered(copy_response(&answer)));
                    call.handle_response(answer);
                }
            }
            ResourceStep::Invalidate(rejected) => {
                let outcome = shared.invalidate(&rejected);
                if outcome.retry() && spare.is_none() {
                    tracing::info!(
                        "the resource rejected the token; it was dropped, but the request body is a \
                         stream that cannot be sent twice: the 401 is returned, not retried"
                    );
                    if let Some(answer) = last.take() {
                        return Ok(answer.not_replayed::<D>());
                    }
                }
                tracing::info!(
                    "the resource rejected the token; getting a new one and retrying once"
                );
                call.handle_invalidated(outcome);
            }
            ResourceStep::Accepted(token) => shared.accepted(&token),
            ResourceStep::Done(answer) => {
                return Ok(match last.take() {
                    Some(Last::Streamed(response)) => response,
                    _ => D::unbuffer(answer),
                });
            }
            _ => {
                return Err(crate::internal_error(
                    "authorized met a ResourceStep it does not know",
                )
                .into());
            }
        }
    }
}

/// The last answer of a call: read into memory (a 401 the classifier looked at) or streaming.
enum Last<R> {
    Buffered(Response<Vec<u8>>),
    Streamed(R),
}

impl<R> Last<R> {
    /// The answer for the caller when it cannot be retried: a buffered one is marked
    /// [`NotReplayed`] (a streaming one keeps its stack's type, which may have no extensions).
    fn not_replayed<D: Downstream<Response = R>>(self) -> R {
        match self {
            Self::Buffered(answer) => not_replayed::<D>(answer),
            Self::Streamed(response) => response,
        }
    }
}

fn declared_over(headers: &HeaderMap) -> bool {
    headers
        .get(oauth_core::http::header::CONTENT_LENGTH)
        .and_then(|v| v.to_str().ok())
        .and_then(|v| v.parse::<u64>().ok())
        .is_some_and(|n| n > MAX_REJECTION_BODY as u64)
}

fn copy_credentials(from: &HeaderMap, to: &mut HeaderMap) {
    use oauth_core::http::header::{AUTHORIZATION, HeaderName};
    for name in [AUTHORIZATION, HeaderName::from_static("dpop")] {
        to.remove(&name);
        if let Some(value) = from.get(&name) {
            to.insert(name, value.clone());
        }
    }
}

fn copy_response(answer: &Response<Vec<u8>>) -> Response<Vec<u8>> {
    let mut copy = Response::new(answer.body().clone());
    *copy.status_mut() = answer.status();
    *copy.version_mut() = answer.version();
    *copy.headers_mut() = answer.headers().clone();
    copy
}

fn not_replayed<D: Downstream>(mut answer: Response<Vec<u8>>) -> D::Response {
    answer.extensions_mut().insert(NotReplayed);
    D::unbuffer(answer)
}
