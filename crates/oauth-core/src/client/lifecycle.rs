//! The token lifecycle: when to reuse a token, when to refresh it and with what, and how long to
//! wait after a failure. A sans-IO state machine; the adapters add locks and I/O around it.
//!
//! ```text
//!        poll(now, deadline)                      handle_response(result, now)
//! caller ───────────────────► TokenLifecycle ◄────────────────────────────── adapter
//!   ◄── Use(token)                │   ▲                                        ▲
//!   ◄── UseAndRefresh(token, request) ──► adapter runs a TokenCall ────────────┘
//!   ◄── Refresh(request) ─────────────► adapter runs a TokenCall, caller waits
//!   ◄── Wait { until } / Fail(error)
//! ```
//!
//! The policy in one place:
//! - a token is served until `expires_at - margin`, never after; deadlines are kept on the
//!   monotonic clock, so a wall clock stepped back does not stretch them;
//! - from `expires_at - refresh_ahead - jitter` on, it is still served while one refresh runs
//!   in the background;
//! - a refresh uses the refresh token when there is one, and runs the grant otherwise, or at
//!   once when the refresh token is refused with `invalid_grant`;
//! - only one refresh is in flight at a time;
//! - after a failure, the next attempt waits (exponential backoff scaled to the token's
//!   lifetime, capped); callers with no token to serve wait for it within their deadline
//!   rather than get the last error replayed;
//! - a token rejected by a resource server is dropped once; a replacement rejected again is
//!   dropped only after a backoff, so a resource that rejects every token cannot make each
//!   call fetch a new one.

use std::time::{Duration, Instant, SystemTime};

use crate::error::{Error, ErrorCode, ErrorResponse};
use crate::random::RandomSource;
use crate::request::Repeat;
use crate::request::TokenRequest;
use crate::response::TokenResponse;
use crate::secret::{AccessToken, RefreshToken};
use crate::time::Now;
use crate::transport::{TransportError, TransportErrorKind, is_transient};

/// What to assume about a token whose response had no `expires_in` (as Anypoint
/// Exchange's documented answers).
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
#[non_exhaustive]
pub enum UnknownExpiry {
    /// Serve it until a resource server rejects it (see
    /// [`TokenLifecycle::invalidate`]). The default.
    UntilRejected,
    /// Treat it as if `expires_in` had been this long.
    Assume(Duration),
}

/// When to refresh, and how to back off. The defaults suit tokens that live minutes to days.
#[derive(Clone, Debug, PartialEq, Eq)]
pub struct RefreshPolicy {
    refresh_ahead: Duration,
    margin: Duration,
    jitter: Duration,
    unknown_expiry: UnknownExpiry,
    backoff_initial: Duration,
    backoff_max: Duration,
}

impl Default for RefreshPolicy {
    fn default() -> Self {
        Self {
            refresh_ahead: Duration::from_secs(300),
            margin: Duration::from_secs(30),
            jitter: Duration::from_secs(30),
            unknown_expiry: UnknownExpiry::UntilRejected,
            backoff_initial: Duration::from_secs(1),
            backoff_max: Duration::from_secs(60),
        }
    }
}

/// The shortest first backoff, whatever the token's lifetime.
const MIN_BACKOFF: Duration = Duration::from_millis(50);

impl RefreshPolicy {
    /// Starts refreshing this long before expiry, while still serving the current token
    /// (default 5 minutes; at most half the token's lifetime).
    pub fn refresh_ahead(mut self, d: Duration) -> Self {
        self.refresh_ahead = d;
        self
    }

    /// Stops serving a token this long before it expires, to allow for the request's travel
    /// time and clock skew (default 30 seconds; at most a quarter of the token's lifetime).
    pub fn margin(mut self, d: Duration) -> Self {
        self.margin = d;
        self
    }

    /// Starts refreshing up to this much earlier still, at random, so that many clients that
    /// got tokens at the same time do not all refresh at once (default 30 seconds).
    pub fn jitter(mut self, d: Duration) -> Self {
        self.jitter = d;
        self
    }

    /// What to assume when the server does not say when a token expires.
    pub fn unknown_expiry(mut self, u: UnknownExpiry) -> Self {
        self.unknown_expiry = u;
        self
    }

    /// The wait after the first failed refresh (default 1 second, and at most a tenth of the
    /// last token's lifetime, so short-lived tokens recover quickly), doubling after each
    /// further failure up to `max` (default 60 seconds).
    pub fn backoff(mut self, initial: Duration, max: Duration) -> Self {
        self.backoff_initial = initial;
        self.backoff_max = max.max(initial);
        self
    }

    /// Whether a token another process of a fleet stored may be taken instead of requesting
    /// one, at `now`: it is not `replacing` (the token this process is done with), and it
    /// has more than the serving margin left (one with no stated expiry is served until
    /// rejected, as [`UnknownExpiry`] says, unless it is assumed to have expired already).
    pub fn takes_shared(
        &self,
        token: &TokenResponse,
        replacing: Option<&AccessToken>,
        now: SystemTime,
    ) -> bool {
        let different =
            replacing.is_none_or(|r| r.expose_secret() != token.access_token().expose_secret());
        let lasting = match self.shared_ttl(token, now) {
            Some(left) => left > self.margin,
            None => true,
        };
        different && lasting
    }

    /// How long a fleet's store keeps `token` from `now`: until its expiry (stated, or
    /// assumed as [`UnknownExpiry::Assume`] says); `None` for a token with no expiry served
    /// until rejected ([`UnknownExpiry::UntilRejected`]): the process that sees it rejected
    /// replaces it.
    pub fn shared_ttl(&self, token: &TokenResponse, now: SystemTime) -> Option<Duration> {
        match (token.expires_at(), &self.unknown_expiry) {
            (Some(exp), _) => Some(exp.duration_since(now).unwrap_or(Duration::ZERO)),
            (None, UnknownExpiry::Assume(d)) => Some(*d),
            (None, UnknownExpiry::UntilRejected) => None,
        }
    }

    fn backoff_after(&self, failures: u32, lifetime: Option<Duration>) -> Duration {
        let initial = match lifetime {
            Some(l) => self
                .backoff_initial
                .min(l / 10)
                .max(MIN_BACKOFF.min(self.backoff_initial)),
            None => self.backoff_initial,
        };
        let factor = 1u32
            .checked_shl(failures.saturating_sub(1))
            .unwrap_or(u32::MAX);
        initial
            .checked_mul(factor)
            .unwrap_or(self.backoff_max)
            .min(self.backoff_max)
    }
}

/// The cached token and the deadlines computed for it when it was stored, on the monotonic
/// clock.
///
/// Cheap to check on a hot path: adapters keep the latest snapshot where readers can load it
/// without a lock, and only go to the [`TokenLifecycle`] when [`check`](Self::check) says so.
#[derive(Clone, Debug)]
pub struct TokenSnapshot {
    access_token: AccessToken,
    refresh_at: Option<Instant>,
    serve_until: Option<Instant>,
}

/// How fresh a [`TokenSnapshot`] is at a given time.
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
#[non_exhaustive]
pub enum Freshness {
    /// Serve it.
    Fresh,
    /// Serve it, and a refresh is due.
    RefreshDue,
    /// Do not serve it.
    Expired,
}

impl TokenSnapshot {
    /// The access token.
    pub fn access_token(&self) -> &AccessToken {
        &self.access_token
    }

    /// When a refresh becomes due, if the token's expiry is known.
    pub fn refresh_at(&self) -> Option<Instant> {
        self.refresh_at
    }

    /// The last moment the token is served, if its expiry is known.
    pub fn serve_until(&self) -> Option<Instant> {
        self.serve_until
    }

    /// How fresh the token is at `now` (monotonic).
    pub fn check(&self, now: Instant) -> Freshness {
        if self.serve_until.is_some_and(|t| now >= t) {
            Freshness::Expired
        } else if self.refresh_at.is_some_and(|t| now >= t) {
            Freshness::RefreshDue
        } else {
            Freshness::Fresh
        }
    }
}

/// What [`TokenLifecycle::invalidate`] did with a token a resource server rejected, and so
/// whether sending the request again with a new token is worth it
/// ([`retry`](Self::retry)).
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
#[non_exhaustive]
pub enum Invalidated {
    /// The rejected token was the cached one and is dropped: the next caller gets a new one.
    Dropped,
    /// The rejected token was no longer the cached one: another caller already dropped or
    /// replaced it, and a new token is there or can be had.
    AlreadyReplaced,
    /// The rejected token is kept: tokens keep being rejected (the resource refuses every
    /// token, not just an expired one), and the backoff since the last drop has not passed,
    /// so a new token would likely be refused too. Damped by design: a resource that refuses
    /// everything must not cost a token request per call.
    Damped,
    /// The rejected token was already gone and there is no way to get another one without the
    /// user (no refresh token, no grant, no request in flight).
    NoNewToken,
}

impl Invalidated {
    /// Whether the rejected request is worth sending again with a new token
    /// ([`Dropped`](Self::Dropped) or [`AlreadyReplaced`](Self::AlreadyReplaced)).
    pub fn retry(self) -> bool {
        matches!(self, Self::Dropped | Self::AlreadyReplaced)
    }
}

/// What the caller should do now; returned by [`TokenLifecycle::poll`].
#[derive(Debug)]
#[must_use]
#[non_exhaustive]
pub enum Decision {
    /// Use this token.
    Use(AccessToken),
    /// Use this token, and run this request to refresh it in the background; report the
    /// result with [`TokenLifecycle::handle_response`].
    UseAndRefresh(AccessToken, TokenRequest),
    /// There is no token to serve: run this request (the refresh token, or the grant),
    /// report its result, and poll again.
    Refresh(TokenRequest),
    /// There is no token to serve yet: wait until the lifecycle changes (the request in
    /// flight ends; it does within its own deadline), or until `until` (a backoff ends), then
    /// poll again.
    Wait {
        /// When to poll again even if nothing changed; `None` while a request is in flight.
        until: Option<Instant>,
    },
    /// There is no token to serve and none can be had within the caller's deadline, or
    /// without the user.
    Fail(Error),
}

#[derive(Clone, Copy, Debug, PartialEq, Eq)]
enum InFlight {
    None,
    RefreshToken,
    Grant,
}

/// The shortest lifetime a freshly issued token is given, whatever its `expires_in` says.
const MIN_LIFETIME: Duration = Duration::from_secs(1);

/// The token lifecycle state machine.
///
/// ```
/// use std::time::{Duration, Instant, SystemTime};
/// use oauth_core::{Now, TokenLifecycle, TokenRequest, parse_token_response};
/// use oauth_core::client::lifecycle::{Decision, RefreshPolicy};
/// # struct Rng;
/// # impl oauth_core::RandomSource for Rng {
/// #     fn fill(&self, d: &mut [u8]) -> Result<(), oauth_core::random::RandomError> { d.fill(0); Ok(()) }
/// # }
/// # let (wall, mono) = (SystemTime::UNIX_EPOCH + Duration::from_secs(1_700_000_000), Instant::now());
/// let mut lifecycle = TokenLifecycle::new(RefreshPolicy::default(), Some(TokenRequest::client_credentials()));
/// let t0 = Now::new(wall, mono); // the adapter reads both clocks
/// let deadline = mono + Duration::from_secs(30);
/// let Decision::Refresh(request) = lifecycle.poll(t0, deadline) else { unreachable!() };
/// // ... send `request`, then:
/// let body = r#"{"access_token":"tok","token_type":"Bearer","expires_in":3600}"#;
/// let response = http::Response::builder().status(200).body(body).unwrap();
/// lifecycle.handle_response(parse_token_response(&response, t0.wall()), t0, &Rng);
/// let later = t0.after(Duration::from_secs(60));
/// assert!(matches!(lifecycle.poll(later, deadline), Decision::Use(_)));
/// ```
#[derive(Debug)]
pub struct TokenLifecycle {
    policy: RefreshPolicy,
    grant: Option<TokenRequest>,
    token: Option<TokenSnapshot>,
    refresh_token: Option<RefreshToken>,
    in_flight: InFlight,
    failures: u32,
    retry_at: Option<Instant>,
    last_error: Option<Error>,
    /// The answer that refused the refresh token, kept as the evidence when nothing can
    /// replace it.
    refused: Option<ErrorResponse>,
    /// The lifetime of the last token stored, to scale the backoff.
    lifetime: Option<Duration>,
    /// Tokens rejected by resource servers in a row, and when the last one was dropped.
    rejections: u32,
    last_rejection: Option<Instant>,
}

impl TokenLifecycle {
    /// A lifecycle with no token yet. `grant` is the request that obtains a token without the
    /// user (client credentials, password, JWT bearer, …); pass `None` for tokens from the
    /// authorization code flow, and [`store`](Self::store) the first response.
    pub fn new(policy: RefreshPolicy, grant: Option<TokenRequest>) -> Self {
        Self {
            policy,
            grant: grant.filter(TokenRequest::is_repeatable),
            token: None,
            refresh_token: None,
            in_flight: InFlight::None,
            failures: 0,
            retry_at: None,
            last_error: None,
            refused: None,
            lifetime: None,
            rejections: 0,
            last_rejection: None,
        }
    }

    /// Replaces the grant that is run when there is no refresh token.
    pub fn set_grant(&mut self, grant: Option<TokenRequest>) {
        self.grant = grant.filter(TokenRequest::is_repeatable);
    }

    /// The policy.
    pub fn policy(&self) -> &RefreshPolicy {
        &self.policy
    }

    /// The cached token and its refresh times, if there is one.
    pub fn snapshot(&self) -> Option<&TokenSnapshot> {
        self.token.as_ref()
    }

    /// The current refresh token, to persist it.
    pub fn refresh_token(&self) -> Option<&RefreshToken> {
        self.refresh_token.as_ref()
    }

    /// Whether a refresh is in flight.
    pub fn is_refreshing(&self) -> bool {
        self.in_flight != InFlight::None
    }

    /// The next time at which [`poll`](Self::poll) may answer differently without any input:
    /// when a refresh becomes due, the token stops being served, or a backoff ends.
    pub fn poll_timeout(&self) -> Option<Instant> {
        let token_times = self
            .token
            .as_ref()
            .map(|t| [t.refresh_at, t.serve_until])
            .unwrap_or_default();
        token_times
            .into_iter()
            .chain([self.retry_at])
            .flatten()
            .min()
    }

    /// Decides what to do at `now` for a caller that waits at most until `deadline`
    /// (monotonic). When the answer includes a request, the lifecycle counts that request as
    /// in flight until [`handle_response`](Self::handle_response) is called, and no further
    /// request is handed out meanwhile.
    pub fn poll(&mut self, now: Now, deadline: Instant) -> Decision {
        let mono = now.monotonic();
        let freshness = self.token.as_ref().map(|t| t.check(mono));
        let servable = match (&self.token, freshness) {
            (Some(t), Some(Freshness::Fresh | Freshness::RefreshDue)) => {
                Some(t.access_token.clone())
            }
            _ => None,
        };
        if (freshness == Some(Freshness::Fresh)
            || (servable.is_some() && self.in_flight != InFlight::None))
            && let Some(token) = servable
        {
            return Decision::Use(token);
        }
        if self.in_flight != InFlight::None {
            // The request in flight ends within its own deadline, which is no later than this
            // caller's (it started first, under the same timeout): wait for it, no timer needed.
            return if mono < deadline {
                Decision::Wait { until: None }
            } else {
                self.fail_late()
            };
        }
        if let Some(until) = self.retry_at.filter(|t| mono < *t) {
            let transient = self
                .last_error
                .as_ref()
                .is_some_and(|e| is_transient(e, Repeat::Always));
            return match servable {
                Some(token) => Decision::Use(token),
                // A failure that may pass: wait for the next attempt within the deadline.
                None if transient => self.wait_or_fail(mono, until, deadline),
                // One that will not (wrong credentials, a refused grant): say so at once; the
                // backoff only keeps the server from being asked again and again.
                None => Decision::Fail(
                    self.last_error
                        .clone()
                        .unwrap_or(Error::ReauthorizationRequired),
                ),
            };
        }
        if servable.is_none() && mono >= deadline {
            // Past the caller's deadline: no new request on its behalf.
            return self.fail_late();
        }
        let request = if let Some(rt) = &self.refresh_token {
            self.in_flight = InFlight::RefreshToken;
            TokenRequest::refresh_token(rt.clone())
        } else if let Some(grant) = &self.grant {
            self.in_flight = InFlight::Grant;
            grant.clone()
        } else {
            return match servable {
                Some(token) => Decision::Use(token),
                None => Decision::Fail(match &self.refused {
                    Some(answer) => Error::RefreshRefused(answer.clone()),
                    None => Error::ReauthorizationRequired,
                }),
            };
        };
        match servable {
            Some(token) => Decision::UseAndRefresh(token, request),
            None => Decision::Refresh(request),
        }
    }

    /// Wait until `until` if that is within the caller's `deadline`; otherwise fail with the
    /// last error.
    fn wait_or_fail(&self, now: Instant, until: Instant, deadline: Instant) -> Decision {
        if now < deadline && until < deadline {
            return Decision::Wait { until: Some(until) };
        }
        self.fail_late()
    }

    /// The caller's deadline has come (or would come first): the last error, or a timeout.
    fn fail_late(&self) -> Decision {
        Decision::Fail(self.last_error.clone().unwrap_or_else(|| {
            Error::Transport(TransportError::new(
                TransportErrorKind::Timeout,
                "no token within the deadline",
            ))
        }))
    }

    /// Reports the result of the request handed out by [`poll`](Self::poll).
    ///
    /// `rng` draws the refresh jitter. A refresh response without a refresh token keeps the
    /// previous one (RFC 6749 §6). A refresh token refused with `invalid_grant` is dropped, and
    /// the next poll runs the grant (when there is one) without waiting.
    pub fn handle_response(
        &mut self,
        result: Result<TokenResponse, Error>,
        now: Now,
        rng: &dyn RandomSource,
    ) {
        let in_flight = std::mem::replace(&mut self.in_flight, InFlight::None);
        match result {
            Ok(response) => {
                // A token that the server says is already expired (`expires_in: 0`) would never
                // be served, and every caller would ask for another at once: serve it briefly.
                let floor = now.wall().checked_add(MIN_LIFETIME);
                let response = match (response.expires_at(), floor) {
                    (Some(at), Some(floor)) if at < floor => response.with_expires_at(floor),
                    _ => response,
                };
                self.store(response, now, rng)
            }
            Err(error) => {
                let refused_refresh = in_flight == InFlight::RefreshToken
                    && error
                        .error_response()
                        .is_some_and(|e| e.code() == &ErrorCode::InvalidGrant);
                if refused_refresh {
                    self.refresh_token = None;
                    self.refused = error.error_response().cloned();
                    if self.grant.is_some() {
                        // The refresh token is gone for good; the grant does not depend on
                        // it, so run it at once instead of waiting out a backoff.
                        self.retry_at = None;
                        self.last_error = Some(error);
                        return;
                    }
                }
                self.failures = self.failures.saturating_add(1);
                let wait = self.policy.backoff_after(self.failures, self.lifetime);
                self.retry_at = now.monotonic().checked_add(wait);
                self.last_error = Some(match (refused_refresh, &self.refused) {
                    // Nothing can replace the refresh token: say so, with the server's answer.
                    (true, Some(answer)) => Error::RefreshRefused(answer.clone()),
                    _ => error,
                });
            }
        }
    }

    /// Abandons the in-flight request without a result (for example when the task sending it
    /// was cancelled), so that the next poll can start another.
    pub fn cancel_refresh(&mut self) {
        self.in_flight = InFlight::None;
    }

    /// Stores a token: a response obtained outside [`poll`](Self::poll) (the authorization
    /// code exchange, or a token persisted by an earlier run). Resets the backoff.
    pub fn store(&mut self, response: TokenResponse, now: Now, rng: &dyn RandomSource) {
        if let Some(rt) = response.refresh_token() {
            self.refresh_token = Some(rt.clone());
            self.refused = None;
        }
        let expires_at = response
            .expires_at()
            .or_else(|| match self.policy.unknown_expiry {
                UnknownExpiry::UntilRejected => None,
                UnknownExpiry::Assume(d) => now.wall().checked_add(d),
            });
        let mono = now.monotonic();
        let (refresh_at, serve_until) = match expires_at {
            None => {
                self.lifetime = None;
                (None, None)
            }
            Some(expires_at) => {
                let lifetime = expires_at
                    .duration_since(now.wall())
                    .unwrap_or(Duration::ZERO);
                self.lifetime = Some(lifetime);
                let expires = now.monotonic_at(expires_at);
                let margin = self.policy.margin.min(lifetime / 4);
                let ahead = self.policy.refresh_ahead.min(lifetime / 2).max(margin);
                let jitter = random_duration(rng, self.policy.jitter.min(lifetime / 4));
                let serve_until = expires.checked_sub(margin).unwrap_or(mono);
                let refresh_at = expires
                    .checked_sub(ahead.saturating_add(jitter))
                    .unwrap_or(mono)
                    .max(mono)
                    .min(serve_until);
                (Some(refresh_at), Some(serve_until))
            }
        };
        self.token = Some(TokenSnapshot {
            access_token: response.access_token().clone(),
            refresh_at,
            serve_until,
        });
        self.failures = 0;
        self.retry_at = None;
        self.last_error = None;
    }

    /// Drops the access token because a resource server rejected it (see
    /// [`classify_resource_response`](crate::classify_resource_response)), keeping the refresh
    /// token, and says what it did ([`Invalidated`]; [`Invalidated::retry`] is whether a new
    /// token is worth asking for).
    ///
    /// Does nothing if the cached token is no longer `rejected` (another caller already
    /// replaced it: [`Invalidated::AlreadyReplaced`], or [`Invalidated::NoNewToken`] when there
    /// is nothing to get another with). When tokens keep being rejected (the resource refuses
    /// every token, not just an expired one), a token is dropped only once the backoff since
    /// the last drop has passed ([`Invalidated::Damped`] before), so that each call does not
    /// fetch a new one.
    pub fn invalidate(&mut self, rejected: &AccessToken, now: Now) -> Invalidated {
        let current = self
            .token
            .as_ref()
            .is_some_and(|t| t.access_token.ct_eq(rejected.expose_secret()));
        if !current {
            // Already dropped or replaced by another caller: a new token can be had (or is
            // there), so the caller may retry.
            let renewable = self.token.is_some()
                || self.in_flight != InFlight::None
                || self.refresh_token.is_some()
                || self.grant.is_some();
            return if renewable {
                Invalidated::AlreadyReplaced
            } else {
                Invalidated::NoNewToken
            };
        }
        let mono = now.monotonic();
        if self.rejections > 0 {
            let wait = self.policy.backoff_after(self.rejections, self.lifetime);
            if self
                .last_rejection
                .and_then(|t| t.checked_add(wait))
                .is_some_and(|until| mono < until)
            {
                return Invalidated::Damped;
            }
        }
        self.rejections = self.rejections.saturating_add(1);
        self.last_rejection = Some(mono);
        self.token = None;
        Invalidated::Dropped
    }

    /// Reports that a resource accepted `token`: if it is the current token, the count of
    /// rejections in a row starts again (an older token accepted by another resource says
    /// nothing about the current one).
    pub fn note_accepted(&mut self, token: &AccessToken) {
        let current = self
            .token
            .as_ref()
            .is_some_and(|t| t.access_token.ct_eq(token.expose_secret()));
        if current {
            self.rejections = 0;
            self.last_rejection = None;
        }
    }

    /// Whether tokens were rejected in a row without one being accepted since (so an adapter
    /// knows when [`note_accepted`](Self::note_accepted) is worth a lock).
    pub fn has_rejections(&self) -> bool {
        self.rejections > 0
    }
}

/// A uniformly random duration in `[0, max]`, at millisecond resolution. A failing random
/// source gives no jitter rather than an error: jitter only spreads load.
fn random_duration(rng: &dyn RandomSource, max: Duration) -> Duration {
    let max_ms = u64::try_from(max.as_millis()).unwrap_or(u64::MAX);
    if max_ms == 0 {
        return Duration::ZERO;
    }
    let mut buf = [0u8; 8];
    if rng.fill(&mut buf).is_err() {
        return Duration::ZERO;
    }
    Duration::from_millis(u64::from_le_bytes(buf) % max_ms.saturating_add(1))
}

#[cfg(test)]
mod tests {
    use super::*;
    use crate::error::ErrorResponse;
    use crate::random::test_support::SeededRandom;
    use crate::transport::{TransportError, TransportErrorKind};
    use http::StatusCode;

    fn t(secs: u64) -> Now {
        crate::time::test_support::at(secs)
    }

    /// A caller that waits as long as needed.
    fn far() -> Instant {
        t(1_000_000_000).monotonic()
    }

    fn token(name: &str, at: u64, expires_in: Option<u64>, refresh: Option<&str>) -> TokenResponse {
        let mut r = TokenResponse::new(AccessToken::new(name));
        if let Some(e) = expires_in {
            r = r.with_expires_at(t(at + e).wall());
        }
        if let Some(rt) = refresh {
            r = r.with_refresh_token(RefreshToken::new(rt));
        }
        r
    }

    fn no_jitter() -> RefreshPolicy {
        RefreshPolicy::default().jitter(Duration::ZERO)
    }

    fn name(d: &Decision) -> String {
        match d {
            Decision::Use(t) => format!("use {}", t.expose_secret()),
            Decision::UseAndRefresh(t, r) => {
                format!("use {} + refresh via {}", t.expose_secret(), r.grant_type())
            }
            Decision::Refresh(r) => format!("refresh via {}", r.grant_type()),
            Decision::Wait { .. } => "wait".into(),
            Decision::Fail(e) => format!("fail: {e}"),
        }
    }

    fn invalid_grant() -> Error {
        Error::Server(ErrorResponse::new(
            Some(StatusCode::BAD_REQUEST),
            ErrorCode::InvalidGrant,
            None,
            None,
        ))
    }

    fn unavailable() -> Error {
        Error::Server(ErrorResponse::new(
            Some(StatusCode::SERVICE_UNAVAILABLE),
            ErrorCode::TemporarilyUnavailable,
            None,
            None,
        ))
    }

    #[test]
    fn an_already_expired_answer_is_served_briefly_not_refreshed_in_a_loop() {
        let rng = SeededRandom::new(1);
        let mut lc = TokenLifecycle::new(no_jitter(), Some(TokenRequest::client_credentials()));
        assert_eq!(
            name(&lc.poll(t(0), far())),
            "refresh via client_credentials"
        );
        lc.handle_response(Ok(token("a", 0, Some(0), None)), t(0), &rng);
        assert_eq!(name(&lc.poll(t(0), far())), "use a");
        // Still bounded: it is refreshed within the minimum lifetime.
        assert_eq!(
            name(&lc.poll(t(1), far())),
            "refresh via client_credentials"
        );
    }

    #[test]
    fn client_credentials_timeline() {
        let rng = SeededRandom::new(1);
        let mut lc = TokenLifecycle::new(no_jitter(), Some(TokenRequest::client_credentials()));
        assert_eq!(
            name(&lc.poll(t(0), far())),
            "refresh via client_credentials"
        );
        // Only one refresh at a time.
        assert_eq!(name(&lc.poll(t(0), far())), "wait");
        lc.handle_response(Ok(token("a", 0, Some(3600), None)), t(0), &rng);
        assert_eq!(name(&lc.poll(t(1), far())), "use a");
        assert_eq!(lc.poll_timeout(), Some(t(3300).monotonic()));
        // Refresh ahead: serve a while one refresh runs.
        assert_eq!(
            name(&lc.poll(t(3300), far())),
            "use a + refresh via client_credentials"
        );
        assert_eq!(name(&lc.poll(t(3301), far())), "use a");
        // The refresh fails: keep serving until the margin, backing off.
        lc.handle_response(Err(invalid_grant()), t(3302), &rng);
        assert_eq!(name(&lc.poll(t(3302), far())), "use a");
        assert_eq!(
            name(&lc.poll(t(3303), far())),
            "use a + refresh via client_credentials"
        );
        lc.handle_response(Err(invalid_grant()), t(3303), &rng);
        // Past expiry minus the 30 s margin: no longer served.
        assert_eq!(
            name(&lc.poll(t(3570), far())),
            "refresh via client_credentials"
        );
        lc.handle_response(Err(unavailable()), t(3570), &rng);
        // Nothing to serve after a failure that may pass: a caller that can wait waits for the
        // backoff to end...
        let Decision::Wait { until } = lc.poll(t(3571), far()) else {
            panic!()
        };
        assert_eq!(until, Some(t(3574).monotonic())); // third failure: 1 s, 2 s, 4 s
        // ...and one whose deadline comes first gets the last error, not a wait.
        let Decision::Fail(error) = lc.poll(t(3571), t(3573).monotonic()) else {
            panic!()
        };
        assert_eq!(error, unavailable());
        assert_eq!(
            name(&lc.poll(t(3574), far())),
            "refresh via client_credentials"
        );
        lc.handle_response(Ok(token("b", 3574, Some(3600), None)), t(3574), &rng);
        assert_eq!(name(&lc.poll(t(3575), far())), "use b");
    }

    #[test]
    fn a_failure_that_will_not_pass_is_reported_at_once() {
        let rng = SeededRandom::new(10);
        let mut lc = TokenLifecycle::new(no_jitter(), Some(TokenRequest::client_credentials()));
        let _ = lc.poll(t(0), far());
        let refused = Error::Server(ErrorResponse::new(
            Some(StatusCode::UNAUTHORIZED),
            ErrorCode::InvalidClient,
            None,
            None,
        ));
        lc.handle_response(Err(refused.clone()), t(0), &rng);
        // No waiting out the backoff for wrong credentials, and no new request either.
        let Decision::Fail(error) = lc.poll(t(0), far()) else {
            panic!()
        };
        assert_eq!(error, refused);
        assert_eq!(
            name(&lc.poll(t(1), far())),
            "refresh via client_credentials"
        );
    }

    #[test]
    fn refresh_token_rotation_and_fallback() {
        let rng = SeededRandom::new(2);
        let mut lc = TokenLifecycle::new(
            no_jitter(),
            Some(TokenRequest::password("u", crate::Password::new("p"))),
        );
        assert_eq!(name(&lc.poll(t(0), far())), "refresh via password");
        lc.handle_response(Ok(token("a", 0, Some(600), Some("r1"))), t(0), &rng);
        // 600 s token: refresh ahead clamps to 300 s.
        assert_eq!(
            name(&lc.poll(t(300), far())),
            "use a + refresh via refresh_token"
        );
        // The response carries no refresh token: the old one is kept.
        lc.handle_response(Ok(token("b", 300, Some(600), None)), t(300), &rng);
        assert_eq!(lc.refresh_token().unwrap().expose_secret(), "r1");
        assert_eq!(
            lc.invalidate(&AccessToken::new("b"), t(300)),
            Invalidated::Dropped
        );
        assert_eq!(name(&lc.poll(t(301), far())), "refresh via refresh_token");
        lc.handle_response(Ok(token("c", 301, Some(600), Some("r2"))), t(301), &rng);
        assert_eq!(lc.refresh_token().unwrap().expose_secret(), "r2");
        // A stale rejection does not drop the newer token (and says to retry with it).
        assert_eq!(
            lc.invalidate(&AccessToken::new("b"), t(302)),
            Invalidated::AlreadyReplaced
        );
        assert_eq!(name(&lc.poll(t(302), far())), "use c");
        // The refresh token is refused: fall back to the grant at once.
        assert_eq!(
            lc.invalidate(&AccessToken::new("c"), t(302)),
            Invalidated::Dropped
        );
        assert_eq!(name(&lc.poll(t(303), far())), "refresh via refresh_token");
        lc.handle_response(Err(invalid_grant()), t(303), &rng);
        assert!(lc.refresh_token().is_none());
        assert_eq!(name(&lc.poll(t(303), far())), "refresh via password");
    }

    #[test]
    fn authorization_code_without_refresh_token_needs_the_user() {
        let rng = SeededRandom::new(3);
        let code = TokenRequest::authorization_code(crate::AuthorizationCode::new("c"), None, None);
        let mut lc = TokenLifecycle::new(no_jitter(), Some(code));
        assert!(matches!(
            lc.poll(t(0), far()),
            Decision::Fail(Error::ReauthorizationRequired)
        ));
        lc.store(token("a", 0, Some(100), None), t(0), &rng);
        assert_eq!(name(&lc.poll(t(10), far())), "use a");
        // Past refresh time, nothing to refresh with: keep serving until the margin.
        assert_eq!(name(&lc.poll(t(60), far())), "use a");
        assert!(matches!(
            lc.poll(t(100), far()),
            Decision::Fail(Error::ReauthorizationRequired)
        ));
    }

    #[test]
    fn unknown_expiry() {
        let rng = SeededRandom::new(4);
        let mut lc = TokenLifecycle::new(no_jitter(), Some(TokenRequest::client_credentials()));
        let _ = lc.poll(t(0), far());
        lc.handle_response(Ok(token("a", 0, None, None)), t(0), &rng);
        assert_eq!(name(&lc.poll(t(1_000_000), far())), "use a");
        assert_eq!(lc.poll_timeout(), None);
        let _ = lc.invalidate(&AccessToken::new("a"), t(1_000_000));
        assert_eq!(
            name(&lc.poll(t(1_000_001), far())),
            "refresh via client_credentials"
        );

        let mut lc = TokenLifecycle::new(
            no_jitter().unknown_expiry(UnknownExpiry::Assume(Duration::from_secs(3600))),
            Some(TokenRequest::client_credentials()),
        );
        let _ = lc.poll(t(0), far());
        lc.handle_response(Ok(token("a", 0, None, None)), t(0), &rng);
        assert_eq!(
            name(&lc.poll(t(3300), far())),
            "use a + refresh via client_credentials"
        );
    }

    #[test]
    fn jitter_moves_refresh_earlier_within_bounds() {
        let policy = RefreshPolicy::default().jitter(Duration::from_secs(60));
        let mut seen = std::collections::BTreeSet::new();
        for seed in 0..50 {
            let mut lc = TokenLifecycle::new(policy.clone(), None);
            lc.store(
                token("a", 0, Some(3600), None),
                t(0),
                &SeededRandom::new(seed),
            );
            let at = lc.snapshot().unwrap().refresh_at().unwrap();
            assert!(
                at >= t(3240).monotonic() && at <= t(3300).monotonic(),
                "{at:?}"
            );
            seen.insert(at);
        }
        assert!(
            seen.len() > 10,
            "jitter is not spreading refreshes: {seen:?}"
        );
    }

    #[test]
    fn a_wall_clock_stepped_back_does_not_stretch_a_token() {
        let rng = SeededRandom::new(5);
        let mut lc = TokenLifecycle::new(no_jitter(), Some(TokenRequest::client_credentials()));
        let _ = lc.poll(t(0), far());
        lc.handle_response(Ok(token("a", 0, Some(3600), None)), t(0), &rng);
        // An hour later by the monotonic clock, but the wall clock was stepped back an hour.
        let stepped = Now::new(t(0).wall(), t(3575).monotonic());
        assert_eq!(
            name(&lc.poll(stepped, far())),
            "refresh via client_credentials"
        );
        // And a wall clock stepped forward does not cut a fresh token short.
        lc.handle_response(Ok(token("b", 3575, Some(3600), None)), t(3575), &rng);
        let jumped = Now::new(t(100_000).wall(), t(3576).monotonic());
        assert_eq!(name(&lc.poll(jumped, far())), "use b");
    }

    #[test]
    fn a_refused_refresh_token_after_failures_falls_back_to_the_grant_at_once() {
        let rng = SeededRandom::new(6);
        let mut lc = TokenLifecycle::new(no_jitter(), Some(TokenRequest::client_credentials()));
        let _ = lc.poll(t(0), far());
        lc.handle_response(Ok(token("a", 0, Some(60), Some("r"))), t(0), &rng);
        assert_eq!(name(&lc.poll(t(60), far())), "refresh via refresh_token");
        let unavailable = Error::Transport(TransportError::new(TransportErrorKind::Timeout, ""));
        lc.handle_response(Err(unavailable), t(60), &rng);
        // Backoff: a tenth of the 60 s lifetime, capped at 1 s.
        assert!(matches!(lc.poll(t(60), far()), Decision::Wait { .. }));
        assert_eq!(name(&lc.poll(t(61), far())), "refresh via refresh_token");
        lc.handle_response(Err(invalid_grant()), t(61), &rng);
        // No wait, although a failure came before.
        assert_eq!(
            name(&lc.poll(t(61), far())),
            "refresh via client_credentials"
        );
    }

    #[test]
    fn a_refused_refresh_token_without_a_grant_keeps_the_servers_answer() {
        let rng = SeededRandom::new(7);
        let mut lc = TokenLifecycle::new(no_jitter(), None);
        lc.store(token("a", 0, Some(600), Some("r")), t(0), &rng);
        assert_eq!(
            lc.invalidate(&AccessToken::new("a"), t(1)),
            Invalidated::Dropped
        );
        assert_eq!(name(&lc.poll(t(1), far())), "refresh via refresh_token");
        lc.handle_response(Err(invalid_grant()), t(1), &rng);
        let Decision::Fail(error) = lc.poll(t(2), far()) else {
            panic!()
        };
        assert!(matches!(&error, Error::RefreshRefused(e) if e.code() == &ErrorCode::InvalidGrant));
        assert!(error.to_string().contains("invalid_grant"), "{error}");
    }

    #[test]
    fn short_lived_tokens_back_off_briefly() {
        let rng = SeededRandom::new(8);
        let mut lc = TokenLifecycle::new(no_jitter(), Some(TokenRequest::client_credentials()));
        let _ = lc.poll(t(0), far());
        lc.handle_response(Ok(token("a", 0, Some(3), None)), t(0), &rng);
        assert_eq!(
            name(&lc.poll(t(3), far())),
            "refresh via client_credentials"
        );
        lc.handle_response(Err(unavailable()), t(3), &rng);
        let Decision::Wait { until: Some(until) } = lc.poll(t(3), far()) else {
            panic!()
        };
        assert_eq!(until - t(3).monotonic(), Duration::from_millis(300));
    }

    #[test]
    fn concurrent_rejections_of_one_token_all_retry() {
        let rng = SeededRandom::new(11);
        let mut lc = TokenLifecycle::new(no_jitter(), Some(TokenRequest::client_credentials()));
        let _ = lc.poll(t(0), far());
        lc.handle_response(Ok(token("a", 0, Some(3600), None)), t(0), &rng);
        let a = AccessToken::new("a");
        // Two calls got a 401 for `a`: the first drops it, the second finds it gone before any
        // new token was asked for; both may retry.
        assert_eq!(lc.invalidate(&a, t(1)), Invalidated::Dropped);
        assert_eq!(lc.invalidate(&a, t(1)), Invalidated::AlreadyReplaced);
        // Without a grant or a refresh token there is nothing to retry with.
        let mut lc = TokenLifecycle::new(no_jitter(), None);
        lc.store(token("a", 0, Some(3600), None), t(0), &rng);
        assert_eq!(lc.invalidate(&a, t(1)), Invalidated::Dropped);
        assert_eq!(lc.invalidate(&a, t(1)), Invalidated::NoNewToken);
        assert!(!Invalidated::NoNewToken.retry());
    }

    #[test]
    fn a_caller_past_its_deadline_starts_no_request() {
        let mut lc = TokenLifecycle::new(no_jitter(), Some(TokenRequest::client_credentials()));
        assert!(matches!(
            lc.poll(t(10), t(10).monotonic()),
            Decision::Fail(_)
        ));
        assert!(!lc.is_refreshing());
        assert_eq!(
            name(&lc.poll(t(10), far())),
            "refresh via client_credentials"
        );
    }

    #[test]
    fn a_resource_that_rejects_every_token_does_not_get_a_new_one_per_call() {
        let rng = SeededRandom::new(9);
        let mut lc = TokenLifecycle::new(no_jitter(), Some(TokenRequest::client_credentials()));
        let mut fetched = 0;
        let mut now = t(0);
        for _ in 0..20 {
            // One send(): a token, rejected; a new one if the lifecycle says so.
            for _attempt in 0..2 {
                let token = match lc.poll(now, far()) {
                    Decision::Use(t) => t,
                    Decision::Refresh(_) => {
                        fetched += 1;
                        let name = format!("t{fetched}");
                        lc.handle_response(Ok(token(&name, 0, Some(100_000), None)), now, &rng);
                        lc.snapshot().unwrap().access_token().clone()
                    }
                    d => panic!("{}", name(&d)),
                };
                if !lc.invalidate(&token, now).retry() {
                    break;
                }
            }
            now = now.after(Duration::from_millis(10));
        }
        // 20 calls within 200 ms: the first drop, its replacement, and no more.
        assert_eq!(fetched, 2);
        // The replacement is rejected too, within the backoff: kept, and said so.
        let kept = lc.snapshot().unwrap().access_token().clone();
        assert_eq!(lc.invalidate(&kept, now), Invalidated::Damped);
        assert!(!Invalidated::Damped.retry());
        // An older token accepted elsewhere does not reset the count; the current one does.
        lc.note_accepted(&AccessToken::new("t1"));
        assert!(lc.has_rejections());
        let current = lc.snapshot().unwrap().access_token().clone();
        lc.note_accepted(&current);
        assert!(!lc.has_rejections());
    }

    /// Property: driven by arbitrary times and results, the lifecycle never serves a token past
    /// its expiry minus the margin, never hands out a second request while one is in flight,
    /// and never retries before its backoff ends.
    #[derive(Clone, Debug)]
    enum Step {
        Advance(u16),
        Poll,
        Succeed(Option<u16>, bool),
        Fail(bool),
        Invalidate,
    }

    fn step() -> impl proptest::strategy::Strategy<Value = Step> {
        use proptest::prelude::*;
        prop_oneof![
            // Small steps, short lifetimes, and results rarer than polls, so that runs reach
            // the last seconds before expiry with a refresh still in flight or failing: where
            // the invariants bite.
            4 => (0u16..120).prop_map(Step::Advance),
            4 => Just(Step::Poll),
            1 => (proptest::option::of(0u16..600), any::<bool>()).prop_map(|(e, r)| Step::Succeed(e, r)),
            1 => any::<bool>().prop_map(Step::Fail),
            1 => Just(Step::Invalidate),
        ]
    }

    proptest::proptest! {
        #[test]
        fn lifecycle_invariants(steps in proptest::collection::vec(step(), 1..120), seed in 0u64..1000) {
            let rng = SeededRandom::new(seed);
            let margin = Duration::from_secs(30);
            let policy = RefreshPolicy::default().margin(margin);
            let mut lc = TokenLifecycle::new(policy, Some(TokenRequest::client_credentials()));
            let mut now = t(0);
            let mut in_flight = false;
            // Expiry and effective margin of each token handed to the lifecycle, by name.
            let mut issued: Vec<(String, Option<SystemTime>, Duration)> = Vec::new();
            let mut not_before: Option<SystemTime> = None;
            let mut last_failure_permanent = false;
            for s in steps {
                match s {
                    Step::Advance(secs) => now = now.after(Duration::from_secs(u64::from(secs))),
                    Step::Poll => {
                        let d = lc.poll(now, far());
                        // With a grant and a patient caller, there is always a token, a
                        // request or a wait, unless the last failure will not pass by waiting.
                        proptest::prop_assert!(
                            !matches!(d, Decision::Fail(_)) || last_failure_permanent,
                            "failed a patient caller"
                        );
                        let (served, requested) = match &d {
                            Decision::Use(t) => (Some(t), false),
                            Decision::UseAndRefresh(t, _) => (Some(t), true),
                            Decision::Refresh(_) => (None, true),
                            _ => (None, false),
                        };
                        if requested {
                            proptest::prop_assert!(!in_flight, "two refreshes at once");
                            if let Some(nb) = not_before {
                                proptest::prop_assert!(now.wall() >= nb, "retried during backoff");
                            }
                            in_flight = true;
                        }
                        if let Some(tok) = served {
                            let (_, exp, eff_margin) = issued.iter().rev().find(|(n, _, _)| n == tok.expose_secret()).unwrap();
                            if let Some(exp) = exp {
                                proptest::prop_assert!(now.wall() < *exp - *eff_margin, "served past expiry minus margin");
                            }
                        }
                    }
                    Step::Succeed(expires_in, with_refresh) if in_flight => {
                        in_flight = false;
                        let name = format!("t{}", issued.len());
                        let exp = expires_in.map(|e| now.wall() + Duration::from_secs(u64::from(e)));
                        // A fresh answer lives at least MIN_LIFETIME, whatever it says.
                        let lifetime = Duration::from_secs(u64::from(expires_in.unwrap_or(0))).max(MIN_LIFETIME);
                        let effective = exp.map(|_| now.wall() + lifetime);
                        issued.push((name.clone(), effective, margin.min(lifetime / 4)));
                        let mut r = TokenResponse::new(AccessToken::new(name));
                        if let Some(exp) = exp { r = r.with_expires_at(exp); }
                        if with_refresh { r = r.with_refresh_token(RefreshToken::new("r")); }
                        lc.handle_response(Ok(r), now, &rng);
                        not_before = None;
                        last_failure_permanent = false;
                    }
                    Step::Fail(grant_error) if in_flight => {
                        in_flight = false;
                        let e = if grant_error { invalid_grant() } else { unavailable() };
                        last_failure_permanent = grant_error;
                        let had_rt = lc.refresh_token().is_some();
                        lc.handle_response(Err(e), now, &rng);
                        // Falling back from a refused refresh token to the grant may skip the wait.
                        if !(grant_error && had_rt) {
                            // The first backoff is at least 50 ms, whatever the lifetime.
                            not_before = Some(now.wall() + Duration::from_millis(49));
                        }
                    }
                    Step::Invalidate => {
                        if let Some(s) = lc.snapshot() {
                            let tok = s.access_token().clone();
                            let _ = lc.invalidate(&tok, now);
                        }
                    }
                    _ => {}
                }
            }
        }
    }
}
