//! The device authorization grant (RFC 8628): the device authorization request, its answer,
//! and [`DevicePoll`], the machine that decides when to ask the token endpoint whether the user
//! has approved (never sooner than allowed, slower after `slow_down`, never after the code
//! expired).
//!
//! ```text
//! DeviceAuthorizationRequest ──build_at──► POST device_authorization_endpoint
//!        parse_device_authorization_response ──► DeviceAuthorization (user_code, URI, ...)
//! DevicePoll::new(&auth, now)
//!   poll(now) ─► Wait(until) ─► Send(TokenRequest) ─► handle_response(result, now)
//!                  ▲                                        │ authorization_pending / slow_down
//!                  └────────────────────────────────────────┘
//!              ─► Done(Ok(token)) | Done(Err(access_denied / expired_token / ...))
//! ```

use std::fmt;
use std::time::{Duration, Instant, SystemTime};

use http::{Request, Response};
use serde_json::{Map, Value};

use crate::client::Client;
use crate::endpoint::Endpoint;
use crate::error::{Error, ErrorCode, ErrorResponse, UnexpectedReason};
use crate::request::{Params, RequestBody, TokenRequest, build_post};
use crate::response::{parse_object, take_identifier, unexpected};
use crate::scope::Scope;
use crate::secret::SecurityToken;
use crate::time::Now;

/// The device code grant type (RFC 8628 §3.4).
pub const DEVICE_CODE_GRANT_TYPE: &str = "urn:ietf:params:oauth:grant-type:device_code";

/// The polling interval when the server names none (RFC 8628 §3.2).
pub const DEFAULT_INTERVAL: Duration = Duration::from_secs(5);
/// The longest polling interval and device code lifetime accepted from a server (one hour,
/// and one day): a longer one is an error rather than a client that waits for days.
pub const MAX_INTERVAL: Duration = Duration::from_secs(3600);
/// See [`MAX_INTERVAL`].
pub const MAX_EXPIRES_IN: Duration = Duration::from_secs(86_400);
/// What `slow_down` adds to the interval, for the rest of the flow (RFC 8628 §3.5).
pub const SLOW_DOWN_STEP: Duration = Duration::from_secs(5);

/// The device authorization request (RFC 8628 §3.1): the client (authenticated as for token
/// requests, form or JSON body) and the scopes it wants.
#[derive(Clone, Debug, Default)]
pub struct DeviceAuthorizationRequest {
    scope: Option<Scope>,
    extra: Vec<(String, String)>,
}

impl DeviceAuthorizationRequest {
    /// A request without scope.
    pub fn new() -> Self {
        Self::default()
    }

    /// Asks for these scopes, space-separated in the given order.
    pub fn scope<I, S>(mut self, scopes: I) -> Self
    where
        I: IntoIterator<Item = S>,
        S: Into<String>,
    {
        self.scope = Some(Scope::new(scopes)).filter(|s| !s.is_empty());
        self
    }

    /// Adds a parameter (`audience`, `resource`, ...). Parameters this request sets itself
    /// (`scope`, client authentication) cannot be shadowed.
    pub fn param(mut self, name: impl Into<String>, value: impl Into<String>) -> Self {
        self.extra.push((name.into(), value.into()));
        self
    }

    /// Builds the `POST` to the device authorization endpoint at `now` (the time a per-request
    /// client assertion is signed with).
    pub fn build_at(
        &self,
        endpoint: &Endpoint,
        client: &Client,
        now: SystemTime,
    ) -> Result<Request<RequestBody>, Error> {
        let assertion = client.sign_assertion(endpoint, Some(now))?;
        let mut params = Params::default();
        if let Some(scope) = &self.scope {
            params.push_plain("scope", scope.as_str());
        }
        for (name, value) in &self.extra {
            if name == "scope" || name.starts_with("client_") {
                return Err(Error::DuplicateParameter {
                    name: crate::error::sanitize(name, 64),
                });
            }
            params.push_plain(name, value);
        }
        build_post(endpoint, client, params, assertion.as_ref())
    }
}

/// The device authorization response (RFC 8628 §3.2).
#[derive(Clone)]
pub struct DeviceAuthorization {
    device_code: SecurityToken,
    user_code: String,
    verification_uri: String,
    verification_uri_complete: Option<String>,
    expires_at: Instant,
    expires_in: Duration,
    interval: Duration,
    extra: Map<String, Value>,
}

impl fmt::Debug for DeviceAuthorization {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        // The device code is the credential; the user code is shown to the user anyway.
        f.debug_struct("DeviceAuthorization")
            .field("device_code", &self.device_code)
            .field("user_code", &self.user_code)
            .field("verification_uri", &self.verification_uri)
            .field("expires_in", &self.expires_in)
            .field("interval", &self.interval)
            .finish_non_exhaustive()
    }
}

impl DeviceAuthorization {
    /// The code the user types at the verification URI.
    pub fn user_code(&self) -> &str {
        &self.user_code
    }

    /// Where the user goes to approve (`verification_uri`; Google's `verification_url` too).
    pub fn verification_uri(&self) -> &str {
        &self.verification_uri
    }

    /// The verification URI with the user code in it, if the server gave one (for a QR code).
    pub fn verification_uri_complete(&self) -> Option<&str> {
        self.verification_uri_complete.as_deref()
    }

    /// The device code (the secret the client polls with).
    pub fn device_code(&self) -> &SecurityToken {
        &self.device_code
    }

    /// When the codes expire (monotonic clock).
    pub fn expires_at(&self) -> Instant {
        self.expires_at
    }

    /// `expires_in`, as sent.
    pub fn expires_in(&self) -> Duration {
        self.expires_in
    }

    /// The polling interval the server asked for (5 s when it named none).
    pub fn interval(&self) -> Duration {
        self.interval
    }

    /// Every other member, as sent.
    pub fn extra(&self) -> &Map<String, Value> {
        &self.extra
    }

    /// The token request that polls for this authorization.
    pub fn token_request(&self) -> TokenRequest {
        TokenRequest::extension(DEVICE_CODE_GRANT_TYPE)
            .secret_param("device_code", self.device_code.clone())
    }
}

/// Parses the device authorization response (RFC 8628 §3.2), received at `now`. `device_code`,
/// `user_code`, `verification_uri` (or `verification_url`) and `expires_in` are required;
/// `interval` defaults to 5 s; an `interval` of 0 or over an hour, or an `expires_in` of 0 or
/// over a day, is refused.
pub fn parse_device_authorization_response<B: AsRef<[u8]>>(
    response: &Response<B>,
    now: Now,
) -> Result<DeviceAuthorization, Error> {
    let mut map = parse_object(response)?;
    let missing = |name| unexpected(response, UnexpectedReason::MissingField(name));
    let invalid = |name| unexpected(response, UnexpectedReason::InvalidField(name));
    // The codes go into a body and onto the user's terminal, the URIs into a browser: RFC 6749
    // Appendix A's VSCHAR, bounded (a control character on a terminal is an escape sequence).
    let mut text = |name: &'static str, max: usize, spaces: bool| {
        take_identifier(&mut map, name, max, spaces).map_err(invalid)
    };
    let device_code =
        text("device_code", MAX_CODE_LEN, true)?.ok_or_else(|| missing("device_code"))?;
    let user_code =
        text("user_code", MAX_USER_CODE_LEN, true)?.ok_or_else(|| missing("user_code"))?;
    let verification_uri = match text("verification_uri", MAX_URI_LEN, false)? {
        Some(uri) => uri,
        None => text("verification_url", MAX_URI_LEN, false)?
            .ok_or_else(|| missing("verification_uri"))?,
    };
    let verification_uri_complete = text("verification_uri_complete", MAX_URI_LEN, false)?;
    let mut seconds = |name: &'static str| -> Result<Option<u64>, Error> {
        match map.remove(name) {
            None | Some(Value::Null) => Ok(None),
            Some(Value::Number(n)) => n.as_u64().map(Some).ok_or_else(|| invalid(name)),
            Some(Value::String(s)) => s.trim().parse().map(Some).map_err(|_| invalid(name)),
            Some(_) => Err(invalid(name)),
        }
    };
    let expires_in = seconds("expires_in")?.ok_or_else(|| missing("expires_in"))?;
    let expires_in = Duration::from_secs(expires_in);
    if expires_in.is_zero() || expires_in > MAX_EXPIRES_IN {
        return Err(invalid("expires_in"));
    }
    let interval = match seconds("interval")? {
        None => DEFAULT_INTERVAL,
        Some(s) => Duration::from_secs(s),
    };
    if interval.is_zero() || interval > MAX_INTERVAL {
        return Err(invalid("interval"));
    }
    let expires_at = now
        .monotonic()
        .checked_add(expires_in)
        .ok_or_else(|| invalid("expires_in"))?;
    Ok(DeviceAuthorization {
        device_code: SecurityToken::new(device_code),
        user_code,
        verification_uri,
        verification_uri_complete,
        expires_at,
        expires_in,
        interval,
        extra: map,
    })
}

/// The longest `device_code` taken from a server.
const MAX_CODE_LEN: usize = 8 * 1024;
/// The longest `user_code` taken from a server (RFC 8628 §6.1: short, for a person to type).
const MAX_USER_CODE_LEN: usize = 256;
/// The longest verification URI taken from a server.
const MAX_URI_LEN: usize = 2048;

/// What to do next in a device flow; returned by [`DevicePoll::poll`].
#[derive(Debug)]
#[must_use]
#[non_exhaustive]
pub enum DeviceStep {
    /// Not before `until`: poll again then.
    Wait(Instant),
    /// Send this token request (through a `TokenCall`, with its retries) and report the result
    /// with [`DevicePoll::handle_response`].
    Send(TokenRequest),
    /// The flow is over: a token, or why not (`access_denied` when the user declined,
    /// `expired_token` when the code expired first: [`Error::Authorization`]).
    Done(Result<crate::response::TokenResponse, Error>),
}

/// The polling loop of the device flow (RFC 8628 §3.4, §3.5), as a machine: it says when to
/// ask the token endpoint, and reads its answers.
///
/// Rules: the first poll comes one interval after the authorization; `authorization_pending`
/// waits one interval more; `slow_down` adds 5 s to the interval for the rest of the flow;
/// `access_denied` and `expired_token` end the flow; no poll is sent at or after the codes'
/// expiry (the flow ends with `expired_token` then); one request at a time.
#[derive(Debug)]
pub struct DevicePoll {
    request: TokenRequest,
    interval: Duration,
    next_at: Instant,
    expires_at: Instant,
    in_flight: bool,
    done: bool,
    polls: u32,
}

impl DevicePoll {
    /// Starts polling for `authorization`, received at `now`.
    pub fn new(authorization: &DeviceAuthorization, now: Now) -> Self {
        let start = now.monotonic();
        Self {
            request: authorization.token_request(),
            interval: authorization.interval,
            next_at: start.checked_add(authorization.interval).unwrap_or(start),
            expires_at: authorization.expires_at,
            in_flight: false,
            done: false,
            polls: 0,
        }
    }

    /// The interval now in force (grown by every `slow_down`).
    pub fn interval(&self) -> Duration {
        self.interval
    }

    /// How many token requests were handed out.
    pub fn polls(&self) -> u32 {
        self.polls
    }

    /// The earliest time of the next poll.
    pub fn next_at(&self) -> Instant {
        self.next_at
    }

    /// Decides at `now`.
    pub fn poll(&mut self, now: Now) -> DeviceStep {
        let now = now.monotonic();
        if self.done {
            return DeviceStep::Done(Err(expired("the device flow is over")));
        }
        if self.next_at >= self.expires_at || now >= self.expires_at {
            self.done = true;
            return DeviceStep::Done(Err(expired(
                "the device code expired before the user approved",
            )));
        }
        if self.in_flight || now < self.next_at {
            return DeviceStep::Wait(self.next_at.max(now));
        }
        self.in_flight = true;
        self.polls += 1;
        DeviceStep::Send(self.request.clone())
    }

    /// Reports the answer to the token request handed out by [`poll`](Self::poll), at `now`.
    /// Returns the step that follows (a wait, or the end).
    pub fn handle_response(
        &mut self,
        result: Result<crate::response::TokenResponse, Error>,
        now: Now,
    ) -> DeviceStep {
        self.in_flight = false;
        let at = now.monotonic();
        let code = match &result {
            Ok(_) => None,
            Err(e) => e.error_response().map(|r| r.code().clone()),
        };
        match code {
            Some(ErrorCode::AuthorizationPending) => {}
            Some(ErrorCode::SlowDown) => {
                self.interval = (self.interval + SLOW_DOWN_STEP).min(MAX_INTERVAL);
            }
            Some(ErrorCode::AccessDenied | ErrorCode::ExpiredToken) => {
                self.done = true;
                return DeviceStep::Done(result.map_err(|e| match e {
                    Error::Server(r) => Error::Authorization(r),
                    other => other,
                }));
            }
            _ => {
                self.done = true;
                return DeviceStep::Done(result);
            }
        }
        // Never sooner than one interval after this answer, nor than the schedule said.
        let after = at.checked_add(self.interval).unwrap_or(at);
        self.next_at = self.next_at.max(after);
        self.poll(now)
    }
}

fn expired(description: &str) -> Error {
    Error::Authorization(ErrorResponse::new(
        None,
        ErrorCode::ExpiredToken,
        Some(description),
        None,
    ))
}

#[cfg(test)]
mod tests {
    use super::*;
    use crate::time::test_support::{at, t0};
    use http::StatusCode;
    use proptest::prelude::*;

    fn answer(body: &str) -> Response<Vec<u8>> {
        Response::builder()
            .status(200)
            .header("content-type", "application/json")
            .body(body.as_bytes().to_vec())
            .unwrap_or_default()
    }

    fn auth(interval: Option<u64>, expires_in: u64) -> DeviceAuthorization {
        let interval = interval
            .map(|i| format!(r#","interval":{i}"#))
            .unwrap_or_default();
        let body = format!(
            r#"{{"device_code":"GmRh-dev","user_code":"WDJB-MJHT","verification_uri":"https://as.example/device","expires_in":{expires_in}{interval}}}"#
        );
        parse_device_authorization_response(&answer(&body), at(0)).unwrap_or_else(|e| panic!("{e}"))
    }

    fn server_error(code: &str) -> Result<crate::response::TokenResponse, Error> {
        Err(Error::Server(ErrorResponse::new(
            Some(StatusCode::BAD_REQUEST),
            ErrorCode::parse(code),
            None,
            None,
        )))
    }

    fn token() -> Result<crate::response::TokenResponse, Error> {
        let response = answer(r#"{"access_token":"at","token_type":"Bearer","expires_in":60}"#);
        crate::response::parse_token_response(&response, SystemTime::UNIX_EPOCH)
    }

    /// The instant `ms` after the start.
    fn t(ms: u64) -> Now {
        t0().after(Duration::from_millis(ms))
    }

    #[test]
    fn parses_the_rfc_example_and_refuses_bad_answers() {
        // RFC 8628 §3.2's example.
        let rfc = r#"{"device_code": "GmRhmhcxhwAzkoEqiMEg_DnyEysNkuNhszIySk9eS",
            "user_code": "WDJB-MJHT", "verification_uri": "https://example.com/device",
            "verification_uri_complete": "https://example.com/device?user_code=WDJB-MJHT",
            "expires_in": 1800, "interval": 5}"#;
        let a = parse_device_authorization_response(&answer(rfc), at(0))
            .unwrap_or_else(|e| panic!("{e}"));
        assert_eq!(a.user_code(), "WDJB-MJHT");
        assert_eq!(a.verification_uri(), "https://example.com/device");
        assert_eq!(
            a.verification_uri_complete(),
            Some("https://example.com/device?user_code=WDJB-MJHT")
        );
        assert_eq!(a.expires_in(), Duration::from_secs(1800));
        assert_eq!(a.interval(), Duration::from_secs(5));
        assert!(!format!("{a:?}").contains("GmRhmhcx"));
        // Google's spelling, and no interval: 5 s.
        let google = r#"{"device_code":"d","user_code":"u","verification_url":"https://www.google.com/device","expires_in":"1800"}"#;
        let g = parse_device_authorization_response(&answer(google), at(0))
            .unwrap_or_else(|e| panic!("{e}"));
        assert_eq!(g.verification_uri(), "https://www.google.com/device");
        assert_eq!(g.interval(), DEFAULT_INTERVAL);

        let bad = [
            (
                r#"{"user_code":"u","verification_uri":"https://x","expires_in":600}"#,
                "device_code",
            ),
            (
                r#"{"device_code":"d","verification_uri":"https://x","expires_in":600}"#,
                "user_code",
            ),
            (
                r#"{"device_code":"d","user_code":"u","expires_in":600}"#,
                "verification_uri",
            ),
            (
                r#"{"device_code":"d","user_code":"u","verification_uri":"https://x"}"#,
                "expires_in",
            ),
            (
                r#"{"device_code":"d","user_code":"u","verification_uri":"https://x","expires_in":600,"interval":0}"#,
                "interval",
            ),
            (
                r#"{"device_code":"d","user_code":"u","verification_uri":"https://x","expires_in":600,"interval":99999999}"#,
                "interval",
            ),
            (
                r#"{"device_code":"d","user_code":"u","verification_uri":"https://x","expires_in":0}"#,
                "expires_in",
            ),
            (
                r#"{"device_code":7,"user_code":"u","verification_uri":"https://x","expires_in":600}"#,
                "device_code",
            ),
        ];
        for (body, field) in bad {
            let e = parse_device_authorization_response(&answer(body), at(0)).err();
            let reason = match &e {
                Some(Error::UnexpectedResponse(u)) => Some(u.reason().clone()),
                _ => None,
            };
            assert!(
                matches!(reason, Some(UnexpectedReason::MissingField(f) | UnexpectedReason::InvalidField(f)) if f == field),
                "{body}: {e:?}"
            );
        }
    }

    #[test]
    fn codes_and_uris_are_visible_ascii_and_bounded() {
        let parse = |user_code: &str, uri: &str| {
            let body = serde_json::json!({
                "device_code": "GmRh-dev", "user_code": user_code,
                "verification_uri": uri, "expires_in": 600,
            });
            parse_device_authorization_response(&answer(&body.to_string()), at(0))
        };
        assert!(parse("WDJB-MJHT", "https://as.example/device").is_ok());
        for (code, uri) in [
            ("WDJB\u{1b}[2J", "https://as.example/device"),
            ("WDJB\nMJHT", "https://as.example/device"),
            (&"W".repeat(257), "https://as.example/device"),
            ("WDJB-MJHT", "https://as.example/de vice"),
            (
                "WDJB-MJHT",
                &format!("https://as.example/{}", "d".repeat(2048)),
            ),
        ] {
            assert!(parse(code, uri).is_err(), "{code:?} {uri}");
        }
    }

    #[test]
    fn pending_slow_down_twice_then_approved() {
        let a = auth(Some(5), 600);
        let mut p = DevicePoll::new(&a, t(0));
        // Not before one interval.
        assert!(matches!(p.poll(t(0)), DeviceStep::Wait(u) if u == t(5_000).monotonic()));
        assert!(matches!(p.poll(t(4_999)), DeviceStep::Wait(_)));
        let DeviceStep::Send(request) = p.poll(t(5_000)) else {
            panic!()
        };
        assert_eq!(request.grant_type(), DEVICE_CODE_GRANT_TYPE);
        // One request at a time.
        assert!(matches!(p.poll(t(5_001)), DeviceStep::Wait(_)));
        let step = p.handle_response(server_error("authorization_pending"), t(5_100));
        assert!(matches!(step, DeviceStep::Wait(u) if u == t(10_100).monotonic()));
        let DeviceStep::Send(_) = p.poll(t(10_100)) else {
            panic!()
        };
        // slow_down: +5 s, kept.
        let step = p.handle_response(server_error("slow_down"), t(10_200));
        assert!(matches!(step, DeviceStep::Wait(u) if u == t(20_200).monotonic()));
        assert_eq!(p.interval(), Duration::from_secs(10));
        let DeviceStep::Send(_) = p.poll(t(20_200)) else {
            panic!()
        };
        let step = p.handle_response(server_error("slow_down"), t(20_300));
        assert!(matches!(step, DeviceStep::Wait(u) if u == t(35_300).monotonic()));
        let DeviceStep::Send(_) = p.poll(t(35_300)) else {
            panic!()
        };
        let step = p.handle_response(server_error("authorization_pending"), t(35_400));
        // The slowed interval stays.
        assert!(matches!(step, DeviceStep::Wait(u) if u == t(50_400).monotonic()));
        let DeviceStep::Send(_) = p.poll(t(50_400)) else {
            panic!()
        };
        assert!(matches!(
            p.handle_response(token(), t(50_500)),
            DeviceStep::Done(Ok(_))
        ));
        assert_eq!(p.polls(), 5);
    }

    #[test]
    fn denied_expired_and_the_deadline_end_the_flow() {
        for code in ["access_denied", "expired_token"] {
            let mut p = DevicePoll::new(&auth(Some(1), 600), t(0));
            let DeviceStep::Send(_) = p.poll(t(1_000)) else {
                panic!()
            };
            let step = p.handle_response(server_error(code), t(1_100));
            assert!(
                matches!(&step, DeviceStep::Done(Err(Error::Authorization(r))) if r.code().as_str() == code),
                "{code}: {step:?}"
            );
            assert!(matches!(p.poll(t(9_000)), DeviceStep::Done(Err(_))));
        }
        // The code expires while the user has not approved: no poll at or after expiry.
        let mut p = DevicePoll::new(&auth(Some(5), 12), t(0));
        let DeviceStep::Send(_) = p.poll(t(5_000)) else {
            panic!()
        };
        let step = p.handle_response(server_error("authorization_pending"), t(5_000));
        assert!(matches!(step, DeviceStep::Wait(_)));
        let DeviceStep::Send(_) = p.poll(t(10_000)) else {
            panic!()
        };
        let step = p.handle_response(server_error("authorization_pending"), t(10_000));
        assert!(
            matches!(&step, DeviceStep::Done(Err(Error::Authorization(r))) if *r.code() == ErrorCode::ExpiredToken),
            "{step:?}"
        );
        // Any other error ends it as it is.
        let mut p = DevicePoll::new(&auth(None, 600), t(0));
        let DeviceStep::Send(_) = p.poll(t(5_000)) else {
            panic!()
        };
        assert!(matches!(
            p.handle_response(server_error("invalid_client"), t(5_001)),
            DeviceStep::Done(Err(Error::Server(_)))
        ));
    }

    /// One device poll's answer as the server sends it: an RFC 8628 code, with a status real
    /// servers use for it (400, and 429 or 503 that some send with `slow_down`).
    fn http_answer(kind: u8) -> Response<Vec<u8>> {
        let (status, code) = match kind {
            0 => (400, "authorization_pending"),
            1 => (400, "slow_down"),
            2 => (429, "slow_down"),
            3 => (503, "slow_down"),
            _ => (503, "authorization_pending"),
        };
        Response::builder()
            .status(status)
            .header("content-type", "application/json")
            .body(format!(r#"{{"error":"{code}"}}"#).into_bytes())
            .unwrap_or_default()
    }

    proptest! {
        /// The same promise with the retry layer in the loop, as oauth-runtime drives it: each
        /// poll is a `TokenCall` with the default retry policy, and the server answers every
        /// HTTP request with a device-flow code (any status). No HTTP request is ever sent
        /// sooner than the interval in force after the previous answer: a flow's own codes are
        /// the machine's to act on, never the retry policy's (RFC 8628 §3.5).
        #[test]
        fn never_polls_earlier_than_allowed_through_the_token_call(
            interval in 1u64..10,
            answers in proptest::collection::vec(0u8..5, 1..25),
            lag in 0u64..300,
        ) {
            let endpoint = Endpoint::new("https://as.example/token")
                .unwrap_or_else(|e| panic!("{e}"));
            let client = Client::new("app", crate::client::ClientAuthentication::None);
            let policy = crate::transport::RetryPolicy::default();
            let a = auth(Some(interval), 3600);
            let mut p = DevicePoll::new(&a, t(0));
            let mut now = 0u64;
            let mut last_answer: Option<(u64, Duration)> = None;
            let mut answers = answers.into_iter();
            let mut sends = 0;
            'flow: loop {
                let request = match p.poll(t(now)) {
                    DeviceStep::Send(request) => request,
                    DeviceStep::Wait(until) => {
                        now = (until - t0().monotonic()).as_millis() as u64 + lag;
                        continue;
                    }
                    DeviceStep::Done(_) => break,
                };
                let mut call = crate::engine::TokenCall::new(
                    &endpoint,
                    &client,
                    &request,
                    &policy,
                    t(now),
                    Duration::from_secs(30),
                    Duration::from_secs(10),
                );
                let result = loop {
                    match call.poll(t(now)) {
                        crate::engine::CallStep::Send { .. } => {
                            if let Some((at, interval)) = last_answer {
                                let allowed = at + interval.as_millis() as u64;
                                prop_assert!(
                                    now >= allowed,
                                    "HTTP request at {now} ms, allowed from {allowed} ms"
                                );
                            }
                            sends += 1;
                            let Some(kind) = answers.next() else { break 'flow };
                            call.handle_response(Ok(http_answer(kind)), t(now));
                            // The interval the answer puts in force is known once the machine
                            // has read it; until then, the one before.
                            last_answer = Some((now, p.interval()));
                        }
                        crate::engine::CallStep::Wait(until) => {
                            now = (until - t0().monotonic()).as_millis() as u64;
                        }
                        crate::engine::CallStep::Done(result) => break result,
                    }
                };
                let _ = p.handle_response(result, t(now));
                if let Some((at, _)) = last_answer {
                    last_answer = Some((at, p.interval()));
                }
            }
            prop_assert!(sends >= 1);
        }
    }

    proptest! {
        /// Whatever the server answers and whenever the driver polls, a request is never handed
        /// out before the interval in force has passed since the last answer, never while one
        /// is in flight, and never at or after the expiry.
        #[test]
        fn never_polls_earlier_than_allowed(
            interval in 1u64..20,
            expires in 1u64..300,
            events in proptest::collection::vec((0u64..30_000, 0u8..5), 1..60),
        ) {
            let a = auth(Some(interval), expires);
            let mut p = DevicePoll::new(&a, t(0));
            let mut now = 0u64;
            let mut earliest = interval * 1000;
            let mut in_flight = false;
            for (step_ms, answer) in events {
                now += step_ms;
                let clock = t(now);
                if in_flight {
                    in_flight = false;
                    let result = match answer {
                        0 => server_error("authorization_pending"),
                        1 => server_error("slow_down"),
                        2 => server_error("authorization_pending"),
                        3 => server_error("slow_down"),
                        _ => server_error("authorization_pending"),
                    };
                    let _ = p.handle_response(result, clock);
                    earliest = earliest.max(now + p.interval().as_millis() as u64);
                    continue;
                }
                match p.poll(clock) {
                    DeviceStep::Send(_) => {
                        prop_assert!(now >= earliest, "polled at {now} ms, allowed from {earliest}");
                        prop_assert!(now < expires * 1000);
                        in_flight = true;
                    }
                    DeviceStep::Wait(until) => prop_assert!(until >= clock.monotonic()),
                    DeviceStep::Done(r) => {
                        prop_assert!(r.is_err());
                        break;
                    }
                }
            }
        }
    }
}
