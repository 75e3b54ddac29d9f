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

/// The largest 401 body a middleware reads to classify it (a 401 body declared longer is
/// classified from its head alone and handed back streaming).
pub const MAX_REJECTION_BODY: usize = 64 * 1024;

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
    let mut last: Option<Response<Vec<u8>>> = None;
    loop {
        match call.poll() {
            ResourceStep::NeedToken => {
                let request_left = first.is_some() || spare.is_some();
                if let (false, Some(answer)) = (request_left, last.take()) {
                    return Ok(not_replayed::<D>(answer));
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
                    return Err(Error::ReauthorizationRequired.into());
                };
                copy_credentials(authorized.headers(), D::headers_mut(&mut request));
                let response = downstream.send(request).await?;
                let (status, headers) = D::response_head(&response);
                if status != StatusCode::UNAUTHORIZED || declared_over(headers) {
                    let mut seen = Response::new(Vec::new());
                    *seen.status_mut() = status;
                    *seen.headers_mut() = headers.clone();
                    call.handle_response(seen);
                    // `false`: the resource asked for a DPoP nonce in a 401 too long to read;
                    // the call sends again when it can.
                    if finish(&mut call, shared) || spare.is_none() {
                        return Ok(response);
                    }
                    last = None;
                    continue;
                }
                let answer = D::buffer(response, MAX_REJECTION_BODY).await?;
                last = Some(copy_response(&answer));
                call.handle_response(answer);
            }
            ResourceStep::Invalidate(rejected) => {
                let dropped = shared.invalidate(&rejected);
                if dropped && spare.is_none() {
                    tracing::info!(
                        "the resource rejected the token; it was dropped, but the request body is a \
                         stream that cannot be sent twice: the 401 is returned, not retried"
                    );
                    if let Some(answer) = last.take() {
                        return Ok(not_replayed::<D>(answer));
                    }
                }
                tracing::info!(
                    "the resource rejected the token; getting a new one and retrying once"
                );
                call.handle_invalidated(dropped);
            }
            ResourceStep::Accepted(token) => shared.accepted(&token),
            ResourceStep::Done(answer) => return Ok(D::unbuffer(answer)),
            _ => return Err(Error::ReauthorizationRequired.into()),
        }
    }
}

/// Runs the call's bookkeeping steps after a streamed answer: `true` when the call is over,
/// `false` when it wants to send again.
fn finish(call: &mut ResourceCall<'_, ()>, shared: &SharedToken) -> bool {
    loop {
        match call.poll() {
            ResourceStep::Accepted(token) => shared.accepted(&token),
            ResourceStep::Invalidate(rejected) => {
                // A 401 too long to read, rejected from its head alone: the token is dropped
                // for the next request, and this answer (streaming) is the caller's.
                let _ = shared.invalidate(&rejected);
                return true;
            }
            ResourceStep::NeedToken => return false,
            _ => return true,
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
