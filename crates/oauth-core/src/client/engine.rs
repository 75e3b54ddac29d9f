//! The flows an adapter drives: one token call with its retries ([`TokenCall`]), and one
//! resource call with its one retry after a rejected token ([`ResourceCall`]).
//!
//! Both are sans-IO machines in the quinn-proto style: the adapter polls them with the time,
//! does what they say (send these bytes, wait until then), and hands back what happened. Every
//! decision (retry or not, how long to wait, when to give up, whether a 401 means "get a new
//! token") is made here, once, for both adapters.
//!
//! ```text
//!  loop {
//!    match call.poll(now) {
//!      CallStep::Send { request, timeout } ──► adapter sends, reads the body ──► call.handle_response(result, now)
//!      CallStep::Wait(until)               ──► adapter sleeps until `until`
//!      CallStep::Done(result)              ──► return result
//!    }
//!  }
//! ```

use std::sync::Arc;
use std::time::{Duration, Instant, SystemTime};

use http::{HeaderMap, Method, Request, Response, StatusCode};

use crate::bearer::{Rejection, TokenVerdict, classify_resource_response};
use crate::client::Client;
use crate::endpoint::Endpoint;
use crate::error::Error;
use crate::lifecycle::Invalidated;
use crate::request::{RequestBody, TokenRequest};
use crate::response::{TokenResponse, TokenType, parse_token_response};
use crate::scrub::SentSecrets;
use crate::secret::AccessToken;
use crate::time::Now;
use crate::transport::{RetryPolicy, TransportError, TransportErrorKind, retry_after};

/// One token request, with its retries, within a deadline.
///
/// Each attempt is built afresh at the time it is sent, so client assertions and JWT bearer
/// assertions signed per request carry a new `jti`, `iat` and `exp` every time. A failed
/// attempt is retried as the [`RetryPolicy`] says, honouring `Retry-After` (seconds or
/// HTTP-date), but never past the deadline: the call as a whole ends by then, whatever the
/// server does. Whatever the server echoes of the secrets this call sent is scrubbed from the
/// error.
#[derive(Debug)]
pub struct TokenCall<'a> {
    endpoint: &'a Endpoint,
    client: &'a Client,
    request: &'a TokenRequest,
    policy: &'a RetryPolicy,
    deadline: Instant,
    attempt_timeout: Duration,
    attempt: u32,
    state: CallState,
    /// The secrets the attempt in flight sends (its body's, its `Authorization` header's, its
    /// DPoP proof), to scrub them from its answer.
    sent: SentSecrets,
    last_error: Option<Error>,
    /// Whether the call was sent again with the DPoP nonce the server asked for.
    nonce_retried: bool,
}

#[derive(Debug)]
enum CallState {
    Ready,
    InFlight,
    WaitUntil(Instant),
    Done(Result<TokenResponse, Error>),
}

/// What a [`TokenCall`] (or a [`ResourceCall`]) needs done next.
#[derive(Debug)]
#[must_use]
#[non_exhaustive]
pub enum CallStep<R, T> {
    /// Send this request, giving up after `timeout`, and report the answer (or the transport
    /// error) with `handle_response`.
    Send {
        /// The request.
        request: R,
        /// How long this attempt may take, from connecting to the last byte of the body.
        timeout: Duration,
    },
    /// Wait until this time, then poll again.
    Wait(Instant),
    /// The call is over.
    Done(T),
}

impl<'a> TokenCall<'a> {
    /// A call that starts at `now` and ends by `now + timeout` at the latest, each attempt
    /// taking at most `attempt_timeout`.
    pub fn new(
        endpoint: &'a Endpoint,
        client: &'a Client,
        request: &'a TokenRequest,
        policy: &'a RetryPolicy,
        now: Now,
        timeout: Duration,
        attempt_timeout: Duration,
    ) -> Self {
        Self {
            endpoint,
            client,
            request,
            policy,
            deadline: deadline_after(now, timeout),
            attempt_timeout,
            attempt: 0,
            state: CallState::Ready,
            sent: SentSecrets::default(),
            last_error: None,
            nonce_retried: false,
        }
    }

    /// The number of attempts sent so far.
    pub fn attempt(&self) -> u32 {
        self.attempt
    }

    /// The grant being requested.
    pub fn grant_type(&self) -> &str {
        self.request.grant_type()
    }

    /// Why the last attempt failed, while a retry is pending (for a log line; scrubbed).
    pub fn last_error(&self) -> Option<&Error> {
        self.last_error.as_ref()
    }

    /// What to do at `now`.
    pub fn poll(
        &mut self,
        now: Now,
    ) -> CallStep<Request<RequestBody>, Result<TokenResponse, Error>> {
        match &self.state {
            CallState::Ready => {}
            CallState::WaitUntil(until) if now.monotonic() >= *until => {}
            CallState::WaitUntil(until) => return CallStep::Wait(*until),
            CallState::InFlight => {
                // Polled before the answer was handed in: nothing to do but wait for it.
                return CallStep::Wait(self.deadline);
            }
            CallState::Done(result) => return CallStep::Done(result.clone()),
        }
        let remaining = self.deadline.saturating_duration_since(now.monotonic());
        if remaining.is_zero() && self.attempt > 0 {
            let error = self.last_error.take().unwrap_or_else(deadline_error);
            return self.finish(Err(error));
        }
        let mut request =
            match self
                .request
                .build_parts(self.endpoint, self.client, Some(now.wall()))
            {
                Ok(request) => request,
                Err(e) => return self.finish(Err(e)),
            };
        if let Some(dpop) = self.client.dpop() {
            // RFC 9449 §5: a proof for this attempt, with the server's latest nonce.
            match dpop.proof(&Method::POST, self.endpoint.uri(), now.wall(), None) {
                Ok(proof) => {
                    request.headers_mut().insert(crate::dpop::DPOP, proof);
                }
                Err(e) => return self.finish(Err(e)),
            }
        }
        self.sent = SentSecrets::of(&request);
        self.attempt += 1;
        self.state = CallState::InFlight;
        CallStep::Send {
            request,
            timeout: self
                .attempt_timeout
                .min(remaining.max(Duration::from_millis(1))),
        }
    }

    /// Reports the answer to the request from the last [`CallStep::Send`], or why there was
    /// none.
    pub fn handle_response<B: AsRef<[u8]>>(
        &mut self,
        answer: Result<Response<B>, Error>,
        now: Now,
    ) {
        let mut fresh_nonce = false;
        let (result, headers) = match answer {
            Ok(response) => {
                if let Some(dpop) = self.client.dpop() {
                    fresh_nonce = dpop.remember_nonce(self.endpoint.uri(), response.headers());
                }
                let parsed = parse_token_response(&response, now.wall());
                // A failed answer is read again with every secret sent taken out of the body
                // first, so that nothing the error keeps (cut to a few hundred characters)
                // holds a secret, or a piece of one.
                let parsed = match parsed {
                    Err(_) => parse_token_response(&self.scrubbed(&response), now.wall()),
                    ok => ok,
                };
                (parsed, Some(response.headers().clone()))
            }
            Err(e) => (Err(e), None),
        };
        let mut error = match result {
            Ok(token) => {
                self.sent = SentSecrets::default();
                self.state = CallState::Done(Ok(token));
                return;
            }
            Err(e) => e,
        };
        // RFC 9449 §8: the server wants a nonce in the proof; it gave one: once more, now.
        let nonce_asked = error
            .error_response()
            .is_some_and(|r| r.code().as_str() == "use_dpop_nonce");
        if nonce_asked && fresh_nonce && !self.nonce_retried {
            self.nonce_retried = true;
            self.state = CallState::Ready;
            return;
        }
        self.scrub(&mut error);
        let wait = headers
            .as_ref()
            .and_then(|h: &HeaderMap| retry_after(h, now.wall()));
        let delay = self
            .policy
            .retry_delay(self.attempt, &error, wait, self.request.repeat());
        // A retry needs time to be worth sending: at least a second (or the attempt timeout,
        // if shorter) before the deadline. A refresh token sent with no time left could be
        // rotated by the server and lost to a timeout here.
        let budget = self.attempt_timeout.min(MIN_RETRY_BUDGET);
        match delay.and_then(|d| now.monotonic().checked_add(d)) {
            Some(at)
                if at
                    .checked_add(budget)
                    .is_some_and(|end| end <= self.deadline) =>
            {
                self.last_error = Some(error);
                self.state = CallState::WaitUntil(at);
            }
            _ => self.state = CallState::Done(Err(error)),
        }
    }

    fn finish(
        &mut self,
        result: Result<TokenResponse, Error>,
    ) -> CallStep<Request<RequestBody>, Result<TokenResponse, Error>> {
        self.state = CallState::Done(result.clone());
        CallStep::Done(result)
    }

    /// Removes the secrets this call sent from what the error keeps of the answer.
    fn scrub(&self, error: &mut Error) {
        self.sent.redact(error);
    }

    /// A copy of `response` whose body holds none of the secrets this call sent.
    fn scrubbed<B: AsRef<[u8]>>(&self, response: &Response<B>) -> Response<Vec<u8>> {
        self.sent.scrubbed_response(response)
    }
}

/// The least time left before the deadline for which a retry is still sent.
const MIN_RETRY_BUDGET: Duration = Duration::from_secs(1);

/// The longest timeout taken as given; longer ones ("no limit") are a year.
const MAX_TIMEOUT: Duration = Duration::from_secs(365 * 24 * 3600);

/// `now + timeout` on the monotonic clock, for any timeout: one over a year (`Duration::MAX`
/// for "no limit") counts as a year, instead of overflowing into "no time at all".
pub fn deadline_after(now: Now, timeout: Duration) -> Instant {
    let t = now.monotonic();
    t.checked_add(timeout.min(MAX_TIMEOUT))
        .or_else(|| t.checked_add(Duration::from_secs(24 * 3600)))
        .unwrap_or(t)
}

fn deadline_error() -> Error {
    Error::Transport(TransportError::new(
        TransportErrorKind::Timeout,
        "the token call did not finish within its deadline",
    ))
}

/// Decides whether a resource's answer means "the token was rejected: get a new one and retry
/// once". The default recognises RFC 6750 challenges and the common "token expired" bodies
/// ([`classify_resource_response`]); add your provider's own wording with
/// [`phrase`](Self::phrase), or a rule of your own with [`rule`](Self::rule).
///
/// ```
/// use oauth_core::client::{bearer::TokenVerdict, engine::RejectionClassifier};
///
/// let classifier = RejectionClassifier::default().phrase("session has timed out");
/// let answer = http::Response::builder().status(401).body("Your session has timed out").unwrap();
/// assert!(matches!(classifier.classify(&answer), TokenVerdict::Rejected(_)));
/// ```
#[derive(Clone, Default)]
pub struct RejectionClassifier {
    phrases: Vec<String>,
    rule: Option<Arc<ClassifierRule>>,
}

type ClassifierRule = dyn Fn(StatusCode, &HeaderMap, &[u8]) -> bool + Send + Sync;

impl std::fmt::Debug for RejectionClassifier {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        f.debug_struct("RejectionClassifier")
            .field("phrases", &self.phrases)
            .field("rule", &self.rule.is_some())
            .finish()
    }
}

impl RejectionClassifier {
    /// Also treats a 401 whose body contains `phrase` (any case) as a rejected token.
    pub fn phrase(mut self, phrase: impl Into<String>) -> Self {
        self.phrases.push(phrase.into().to_ascii_lowercase());
        self
    }

    /// Also treats any answer for which `rule(status, headers, body)` is true as a rejected
    /// token.
    pub fn rule(
        mut self,
        rule: impl Fn(StatusCode, &HeaderMap, &[u8]) -> bool + Send + Sync + 'static,
    ) -> Self {
        self.rule = Some(Arc::new(rule));
        self
    }

    /// Classifies an answer.
    pub fn classify<B: AsRef<[u8]>>(&self, response: &Response<B>) -> TokenVerdict {
        let verdict = classify_resource_response(response);
        if !matches!(
            verdict,
            TokenVerdict::NotRejected | TokenVerdict::Unauthorized(_)
        ) {
            return verdict;
        }
        let body = response.body().as_ref();
        if response.status() == StatusCode::UNAUTHORIZED && !self.phrases.is_empty() {
            let head =
                String::from_utf8_lossy(body.get(..4096).unwrap_or(body)).to_ascii_lowercase();
            if let Some(p) = self.phrases.iter().find(|p| head.contains(p.as_str())) {
                return TokenVerdict::Rejected(Rejection::Body {
                    message: crate::error::sanitize(p, 100),
                });
            }
        }
        if let Some(rule) = &self.rule
            && rule(response.status(), response.headers(), body)
        {
            return TokenVerdict::Rejected(Rejection::Body {
                message: "rejected by the caller's rule".to_owned(),
            });
        }
        verdict
    }
}

/// One call to a protected resource with `Authorization: Bearer`, and the one retry when the
/// resource rejects the token (RFC 6750 §3.1 `invalid_token`, or a "token expired" body).
///
/// ```text
/// NeedToken ─token()─► Send ─answer─► rejected? ─► Invalidate(token) ─dropped─► NeedToken ─► Send ─► Done
///                                        └── no ──► Done(answer)          └─ kept ─► Done(answer)
/// ```
#[derive(Debug)]
pub struct ResourceCall<'a, B> {
    request: &'a Request<B>,
    classifier: &'a RejectionClassifier,
    timeout: Duration,
    state: ResourceState<B>,
    token: Option<AccessToken>,
    retried: bool,
    dpop: Option<&'a crate::dpop::Dpop>,
    nonce_retried: bool,
}

#[derive(Debug)]
enum ResourceState<B> {
    NeedToken,
    Send(Request<B>),
    Sent,
    Rejected(Response<Vec<u8>>),
    Finished {
        response: Response<Vec<u8>>,
        accepted: Option<AccessToken>,
    },
    Over,
}

/// What a [`ResourceCall`] needs done next.
#[derive(Debug)]
#[must_use]
#[non_exhaustive]
pub enum ResourceStep<B> {
    /// Get a token from the token source and hand it in with
    /// [`handle_token`](ResourceCall::handle_token).
    NeedToken,
    /// Send this request and hand in the answer with
    /// [`handle_response`](ResourceCall::handle_response).
    Send {
        /// The request, with its `Authorization` header.
        request: Request<B>,
        /// How long it may take.
        timeout: Duration,
    },
    /// The resource rejected this token: drop it from the token source
    /// (`TokenLifecycle::invalidate`) and report whether it was dropped with
    /// [`handle_invalidated`](ResourceCall::handle_invalidated).
    Invalidate(AccessToken),
    /// Tell the token source that this token was accepted (`TokenLifecycle::note_accepted`),
    /// then poll again.
    Accepted(AccessToken),
    /// Waiting for a `handle_*` call (polled out of turn).
    Pending,
    /// The call is over: the resource's answer.
    Done(Response<Vec<u8>>),
}

impl<'a, B: Clone> ResourceCall<'a, B> {
    /// A call sending `request` (whose `Authorization` header is set for each attempt).
    pub fn new(
        request: &'a Request<B>,
        classifier: &'a RejectionClassifier,
        timeout: Duration,
    ) -> Self {
        Self {
            request,
            classifier,
            timeout,
            state: ResourceState::NeedToken,
            token: None,
            retried: false,
            dpop: None,
            nonce_retried: false,
        }
    }

    /// Sends DPoP-bound tokens (`token_type` DPoP) with `Authorization: DPoP` and a proof made
    /// with this key (RFC 9449 §7), and retries once with the nonce a resource asks for.
    pub fn dpop(mut self, dpop: Option<&'a crate::dpop::Dpop>) -> Self {
        self.dpop = dpop;
        self
    }

    /// What to do next.
    pub fn poll(&mut self) -> ResourceStep<B> {
        match std::mem::replace(&mut self.state, ResourceState::Sent) {
            ResourceState::NeedToken => {
                self.state = ResourceState::NeedToken;
                ResourceStep::NeedToken
            }
            ResourceState::Send(request) => ResourceStep::Send {
                request,
                timeout: self.timeout,
            },
            ResourceState::Rejected(response) => {
                let step = match &self.token {
                    Some(token) => ResourceStep::Invalidate(token.clone()),
                    None => ResourceStep::Pending,
                };
                self.state = ResourceState::Rejected(response);
                step
            }
            ResourceState::Finished {
                response,
                accepted: Some(token),
            } => {
                self.state = ResourceState::Finished {
                    response,
                    accepted: None,
                };
                ResourceStep::Accepted(token)
            }
            ResourceState::Finished {
                response,
                accepted: None,
            } => {
                self.state = ResourceState::Over;
                ResourceStep::Done(response)
            }
            state @ (ResourceState::Sent | ResourceState::Over) => {
                self.state = state;
                ResourceStep::Pending
            }
        }
    }

    /// Hands in the token to send, at `now` (the time a DPoP proof is signed with): a Bearer
    /// token as `Authorization: Bearer`, a DPoP-bound one as `Authorization: DPoP` with a proof
    /// when the call has the key; any other type is refused
    /// ([`Error::UnsupportedTokenType`]), as is one that cannot be a header value.
    pub fn handle_token(&mut self, token: AccessToken, now: SystemTime) -> Result<(), Error> {
        let mut request = clone_request(self.request);
        crate::dpop::authorize_request_with(&mut request, &token, self.dpop, now)?;
        self.token = Some(token);
        self.state = ResourceState::Send(request);
        Ok(())
    }

    /// Hands in the resource's answer.
    pub fn handle_response(&mut self, response: Response<Vec<u8>>) {
        if let Some(dpop) = self.dpop {
            let fresh = dpop.remember_nonce(self.request.uri(), response.headers());
            // RFC 9449 §9: the resource wants a nonce in the proof: the same token once more,
            // with a proof carrying it.
            if fresh
                && !self.nonce_retried
                && response.status() == StatusCode::UNAUTHORIZED
                && crate::dpop::asks_for_dpop_nonce(response.headers())
                && self
                    .token
                    .as_ref()
                    .is_some_and(|t| *t.token_type() == TokenType::DPoP)
            {
                self.nonce_retried = true;
                self.token = None;
                self.state = ResourceState::NeedToken;
                return;
            }
        }
        let verdict = self.classifier.classify(&response);
        if matches!(verdict, TokenVerdict::Rejected(_)) && !self.retried {
            self.state = ResourceState::Rejected(response);
            return;
        }
        let accepted = matches!(verdict, TokenVerdict::NotRejected)
            && response.status() != StatusCode::UNAUTHORIZED;
        let token = self.token.take();
        self.state = ResourceState::Finished {
            response,
            accepted: token.filter(|_| accepted),
        };
    }

    /// Reports what the token source did with the rejected token
    /// ([`TokenLifecycle::invalidate`](crate::TokenLifecycle::invalidate)): if a new token is
    /// worth asking for ([`Invalidated::retry`]), the call gets one and sends the request once
    /// more; if not (tokens keep being rejected, or none can be had), the rejection is the
    /// answer.
    pub fn handle_invalidated(&mut self, outcome: Invalidated) {
        let ResourceState::Rejected(response) =
            std::mem::replace(&mut self.state, ResourceState::Sent)
        else {
            return;
        };
        self.token = None;
        self.retried = true;
        self.state = if outcome.retry() {
            ResourceState::NeedToken
        } else {
            ResourceState::Finished {
                response,
                accepted: None,
            }
        };
    }
}

fn clone_request<B: Clone>(request: &Request<B>) -> Request<B> {
    let mut copy = Request::new(request.body().clone());
    *copy.method_mut() = request.method().clone();
    *copy.uri_mut() = request.uri().clone();
    *copy.version_mut() = request.version();
    *copy.headers_mut() = request.headers().clone();
    copy
}

#[cfg(test)]
mod tests {
    use super::*;
    use crate::client::{AssertionSigner, ClientAuthentication, SigningContext};
    use crate::secret::Assertion;
    use crate::secret::ClientSecret;
    use crate::time::test_support::at;
    use std::sync::atomic::{AtomicU32, Ordering};

    fn endpoint() -> Endpoint {
        Endpoint::new("https://as.example/token").unwrap()
    }

    fn answer(
        status: u16,
        headers: &[(&str, &str)],
        body: &str,
    ) -> Result<Response<Vec<u8>>, Error> {
        let mut b = Response::builder()
            .status(status)
            .header("content-type", "application/json");
        for (n, v) in headers {
            b = b.header(*n, *v);
        }
        Ok(b.body(body.as_bytes().to_vec()).unwrap())
    }

    const TOKEN: &str = r#"{"access_token":"tok","token_type":"Bearer","expires_in":60}"#;

    /// Drives a call on simulated time: each answer is handed in as it comes; waits advance the
    /// clock. Returns the result, the times attempts were sent (seconds, as millis), and the
    /// timeouts given.
    fn drive(
        call: &mut TokenCall<'_>,
        mut answers: Vec<Result<Response<Vec<u8>>, Error>>,
    ) -> (Result<TokenResponse, Error>, Vec<u128>, Vec<Duration>) {
        let start = at(0);
        let mut now = start;
        let (mut sent, mut timeouts) = (Vec::new(), Vec::new());
        answers.reverse();
        loop {
            match call.poll(now) {
                CallStep::Send { timeout, .. } => {
                    sent.push(
                        now.monotonic()
                            .duration_since(start.monotonic())
                            .as_millis(),
                    );
                    timeouts.push(timeout);
                    let a = answers.pop().expect("an answer for every attempt");
                    call.handle_response(a, now);
                }
                CallStep::Wait(until) => {
                    now = now.after(until.duration_since(now.monotonic()));
                }
                CallStep::Done(r) => return (r, sent, timeouts),
            }
        }
    }

    fn client() -> Client {
        Client::new(
            "app",
            ClientAuthentication::SecretPost(ClientSecret::new("client-secret-1")),
        )
    }

    #[test]
    fn retries_with_backoff_and_retry_after_in_both_forms() {
        let (e, c, r) = (endpoint(), client(), TokenRequest::client_credentials());
        let policy = RetryPolicy::default().max_attempts(4);
        let mut call = TokenCall::new(
            &e,
            &c,
            &r,
            &policy,
            at(0),
            Duration::from_secs(30),
            Duration::from_secs(10),
        );
        // 2023-11-14 22:13:20 + 5 s as an HTTP-date.
        let (result, sent, _) = drive(
            &mut call,
            vec![
                answer(503, &[], ""),
                answer(429, &[("retry-after", "2")], ""),
                answer(503, &[("retry-after", "Tue, 14 Nov 2023 22:13:25 GMT")], ""),
                answer(200, &[], TOKEN),
            ],
        );
        assert!(result.is_ok());
        // 200 ms backoff, then 2 s, then until the date (5 s after t0).
        assert_eq!(sent, vec![0, 200, 2200, 5000]);
    }

    #[test]
    fn the_deadline_bounds_the_whole_call() {
        let (e, c, r) = (endpoint(), client(), TokenRequest::client_credentials());
        let policy = RetryPolicy::default().max_attempts(10);
        let mut call = TokenCall::new(
            &e,
            &c,
            &r,
            &policy,
            at(0),
            Duration::from_secs(3),
            Duration::from_secs(10),
        );
        // A Retry-After past the deadline is not waited for: the error comes at once.
        let (result, sent, timeouts) =
            drive(&mut call, vec![answer(503, &[("retry-after", "5")], "")]);
        assert!(matches!(result, Err(Error::UnexpectedResponse(_))));
        assert_eq!(sent, vec![0]);
        // The attempt may not outlast the call.
        assert_eq!(timeouts, vec![Duration::from_secs(3)]);
        // After the call is done, polling keeps returning its result.
        assert!(matches!(call.poll(at(100)), CallStep::Done(Err(_))));
    }

    #[test]
    fn no_retry_without_time_left_and_no_overflow_for_an_endless_timeout() {
        let (e, c, r) = (endpoint(), client(), TokenRequest::client_credentials());
        let policy = RetryPolicy::default();
        // 1.1 s call: a 503 at once, a 200 ms backoff, but the retry would have < 1 s left.
        let mut call = TokenCall::new(
            &e,
            &c,
            &r,
            &policy,
            at(0),
            Duration::from_millis(1100),
            Duration::from_secs(10),
        );
        let (result, sent, _) = drive(&mut call, vec![answer(503, &[], "")]);
        assert!(result.is_err());
        assert_eq!(sent, vec![0]);
        // `Duration::MAX` means "no limit", not "no time".
        let mut call = TokenCall::new(&e, &c, &r, &policy, at(0), Duration::MAX, Duration::MAX);
        let (result, _, timeouts) = drive(&mut call, vec![answer(200, &[], TOKEN)]);
        assert!(result.is_ok());
        assert!(timeouts[0] > Duration::from_secs(3600));
    }

    #[test]
    fn a_refresh_token_is_retried_after_503_but_not_after_a_timeout() {
        let (e, c) = (endpoint(), client());
        let r = TokenRequest::refresh_token(crate::secret::RefreshToken::new("rt"));
        let policy = RetryPolicy::default();
        let mut call = TokenCall::new(
            &e,
            &c,
            &r,
            &policy,
            at(0),
            Duration::from_secs(30),
            Duration::from_secs(10),
        );
        let (result, sent, _) = drive(
            &mut call,
            vec![answer(503, &[], ""), answer(200, &[], TOKEN)],
        );
        assert!(result.is_ok());
        assert_eq!(sent.len(), 2);
        let mut call = TokenCall::new(
            &e,
            &c,
            &r,
            &policy,
            at(0),
            Duration::from_secs(30),
            Duration::from_secs(10),
        );
        let timeout = Err(Error::Transport(TransportError::new(
            TransportErrorKind::Timeout,
            "",
        )));
        let (result, sent, _) = drive(&mut call, vec![timeout]);
        assert!(result.is_err());
        assert_eq!(sent.len(), 1);
    }

    #[derive(Debug, Default)]
    struct CountingSigner(AtomicU32);

    impl AssertionSigner for CountingSigner {
        fn sign(&self, context: &SigningContext<'_>) -> Result<Assertion, Error> {
            let n = self.0.fetch_add(1, Ordering::SeqCst);
            let secs = context
                .now
                .duration_since(std::time::UNIX_EPOCH)
                .unwrap()
                .as_secs();
            Ok(Assertion::new(format!(
                "signed-{n}-for-{}-at-{secs}",
                context.endpoint
            )))
        }
    }

    #[test]
    fn every_attempt_signs_a_new_assertion_and_an_echo_is_scrubbed() {
        let signer = Arc::new(CountingSigner::default());
        let e = endpoint();
        let c = Client::new("app", ClientAuthentication::Signed(signer.clone()));
        let r = TokenRequest::password("alice", crate::secret::Password::new("pa55word!"));
        let policy = RetryPolicy::default().max_attempts(2);
        let mut call = TokenCall::new(
            &e,
            &c,
            &r,
            &policy,
            at(0),
            Duration::from_secs(30),
            Duration::from_secs(10),
        );
        let mut bodies = Vec::new();
        let mut now = at(0);
        let mut answers = vec![
            answer(
                500,
                &[],
                "echo: client_assertion=signed-1-for-https://as.example/token-at-1700000000&password=pa55word%21",
            ),
            answer(503, &[], ""),
        ];
        let result = loop {
            match call.poll(now) {
                CallStep::Send { request, .. } => {
                    bodies
                        .push(String::from_utf8(request.body().expose_secret().to_vec()).unwrap());
                    call.handle_response(answers.pop().unwrap(), now);
                }
                CallStep::Wait(until) => now = now.after(until.duration_since(now.monotonic())),
                CallStep::Done(r) => break r,
            }
        };
        assert_eq!(signer.0.load(Ordering::SeqCst), 2);
        assert!(
            bodies[0].contains("client_assertion=signed-0"),
            "{}",
            bodies[0]
        );
        assert!(
            bodies[1].contains("client_assertion=signed-1"),
            "{}",
            bodies[1]
        );
        let error = result.unwrap_err();
        let text = format!("{error} {error:?}");
        assert!(!text.contains("signed-1"), "{text}");
        assert!(!text.contains("pa55word"), "{text}");
        assert!(text.contains("<redacted>"), "{text}");
    }

    #[test]
    fn an_error_description_echoing_the_client_secret_is_scrubbed() {
        let (e, c, r) = (endpoint(), client(), TokenRequest::client_credentials());
        let policy = RetryPolicy::none();
        let mut call = TokenCall::new(
            &e,
            &c,
            &r,
            &policy,
            at(0),
            Duration::from_secs(30),
            Duration::from_secs(10),
        );
        let (result, _, _) = drive(
            &mut call,
            vec![answer(
                401,
                &[],
                r#"{"error":"invalid_client","error_description":"bad secret client-secret-1"}"#,
            )],
        );
        let error = result.unwrap_err();
        assert_eq!(
            error.error_response().map(|e| e.code().as_str()),
            Some("invalid_client")
        );
        assert!(!format!("{error} {error:?}").contains("client-secret-1"));
    }

    fn resource() -> Request<Vec<u8>> {
        Request::get("https://api.example/things")
            .body(Vec::new())
            .unwrap()
    }

    fn status(code: u16, body: &str) -> Response<Vec<u8>> {
        Response::builder()
            .status(code)
            .body(body.as_bytes().to_vec())
            .unwrap()
    }

    /// Runs a resource call against scripted answers; `drop_ok` is what invalidation reports.
    fn run(
        answers: Vec<Response<Vec<u8>>>,
        drop_ok: bool,
        classifier: &RejectionClassifier,
    ) -> (u16, Vec<String>) {
        let request = resource();
        let mut call = ResourceCall::new(&request, classifier, Duration::from_secs(5));
        let mut log = Vec::new();
        let mut answers = answers.into_iter();
        let mut n = 0;
        loop {
            match call.poll() {
                ResourceStep::NeedToken => {
                    n += 1;
                    log.push(format!("token {n}"));
                    call.handle_token(AccessToken::new(format!("t{n}")), SystemTime::UNIX_EPOCH)
                        .unwrap();
                }
                ResourceStep::Send { request, .. } => {
                    log.push(format!("send {:?}", request.headers()["authorization"]));
                    call.handle_response(answers.next().unwrap());
                }
                ResourceStep::Invalidate(t) => {
                    log.push(format!("invalidate {}", t.expose_secret()));
                    call.handle_invalidated(if drop_ok {
                        Invalidated::Dropped
                    } else {
                        Invalidated::Damped
                    });
                }
                ResourceStep::Accepted(t) => log.push(format!("accepted {}", t.expose_secret())),
                ResourceStep::Done(r) => return (r.status().as_u16(), log),
                ResourceStep::Pending => panic!("pending"),
            }
        }
    }

    #[test]
    fn a_rejected_token_is_replaced_once_never_twice() {
        let c = RejectionClassifier::default();
        let expired = || status(401, r#"{"message":"Token expired."}"#);
        let (code, log) = run(vec![expired(), status(200, "ok")], true, &c);
        assert_eq!(code, 200);
        assert_eq!(
            log,
            [
                "token 1",
                "send Sensitive",
                "invalidate t1",
                "token 2",
                "send Sensitive",
                "accepted t2"
            ]
        );
        let (code, log) = run(vec![expired(), expired()], true, &c);
        assert_eq!(code, 401);
        assert_eq!(log.iter().filter(|l| l.starts_with("send")).count(), 2);
        // The token source kept the token (rejections in a row): no second send.
        let (code, log) = run(vec![expired()], false, &c);
        assert_eq!(code, 401);
        assert_eq!(log, ["token 1", "send Sensitive", "invalidate t1"]);
        // Other answers are not about the token.
        let (code, log) = run(vec![status(500, "")], true, &c);
        assert_eq!((code, log.len()), (500, 3));
    }

    #[test]
    fn a_providers_own_wording_is_pluggable() {
        let wording = || status(401, "Your session has timed out, log in again");
        let (_, log) = run(vec![wording()], true, &RejectionClassifier::default());
        assert!(!log.iter().any(|l| l.starts_with("invalidate")));
        let c = RejectionClassifier::default().phrase("Session has timed out");
        let (code, log) = run(vec![wording(), status(200, "")], true, &c);
        assert_eq!(code, 200);
        assert!(log.contains(&"invalidate t1".to_owned()));
        let c = RejectionClassifier::default().rule(|s, _, _| s.as_u16() == 419);
        let (code, _) = run(vec![status(419, ""), status(204, "")], true, &c);
        assert_eq!(code, 204);
    }

    #[test]
    fn a_token_of_another_type_is_not_sent_as_bearer() {
        let c = RejectionClassifier::default();
        let request = resource();
        for t in [
            TokenType::DPoP,
            TokenType::NotApplicable,
            TokenType::parse("mac"),
        ] {
            let mut call = ResourceCall::new(&request, &c, Duration::from_secs(5));
            let err = call
                .handle_token(
                    AccessToken::with_type("tok", t.clone()),
                    SystemTime::UNIX_EPOCH,
                )
                .unwrap_err();
            assert_eq!(err, Error::UnsupportedTokenType(t));
            assert!(err.to_string().contains("cannot be sent as a bearer token"));
        }
    }
}
