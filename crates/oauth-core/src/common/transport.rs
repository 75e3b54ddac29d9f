//! What adapters report when a request got no usable answer, and when to try again.
//!
//! The core sends nothing, but both adapters must fail and retry the same way, so the
//! vocabulary ([`TransportError`]) and the decision ([`RetryPolicy::retry_delay`]) live here.

use std::error::Error as StdError;
use std::fmt;
use std::sync::Arc;
use std::time::{Duration, SystemTime};

use http::HeaderMap;
use http::header::RETRY_AFTER;

use crate::error::{Error, ErrorCode, sanitize};
use crate::request::Repeat;

/// Why a request got no usable answer.
#[derive(Clone, Copy, Debug, PartialEq, Eq, Hash)]
#[non_exhaustive]
pub enum TransportErrorKind {
    /// The connection could not be made (DNS, refused, unreachable, connect timeout).
    Connect,
    /// The answer did not arrive within the overall timeout.
    Timeout,
    /// The TLS handshake failed (for example an untrusted certificate).
    Tls,
    /// The server answered with a redirect; token, introspection and revocation requests never
    /// follow one (RFC 9700 §4.11).
    Redirect,
    /// The body is larger than the configured cap.
    BodyTooLarge,
    /// The connection broke while sending or receiving.
    Io,
    /// The HTTP client could not be built or configured (for example an unreadable CA
    /// certificate).
    Config,
}

/// A request that got no usable HTTP answer. Its message never contains a URL's query, a
/// header or a body.
#[derive(Clone)]
pub struct TransportError {
    kind: TransportErrorKind,
    detail: String,
    source: Option<Arc<dyn StdError + Send + Sync>>,
}

impl TransportError {
    /// A transport error of this kind, with a short description (cut and sanitized).
    pub fn new(kind: TransportErrorKind, detail: &str) -> Self {
        Self {
            kind,
            detail: sanitize(detail, 200),
            source: None,
        }
    }

    /// Attaches the HTTP client's own error, reachable through
    /// [`std::error::Error::source`] for downcasting.
    pub fn with_source(mut self, source: impl StdError + Send + Sync + 'static) -> Self {
        self.source = Some(Arc::new(source));
        self
    }

    /// The kind.
    pub fn kind(&self) -> TransportErrorKind {
        self.kind
    }

    /// The short description.
    pub fn detail(&self) -> &str {
        &self.detail
    }

    /// Whether trying again may succeed.
    pub fn is_transient(&self) -> bool {
        matches!(
            self.kind,
            TransportErrorKind::Connect | TransportErrorKind::Timeout | TransportErrorKind::Io
        )
    }
}

impl fmt::Debug for TransportError {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        f.debug_struct("TransportError")
            .field("kind", &self.kind)
            .field("detail", &self.detail)
            .finish()
    }
}

impl fmt::Display for TransportError {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        let what = match self.kind {
            TransportErrorKind::Connect => "could not connect",
            TransportErrorKind::Timeout => "timed out",
            TransportErrorKind::Tls => "TLS handshake failed",
            TransportErrorKind::Redirect => "the server answered with a redirect, not followed",
            TransportErrorKind::BodyTooLarge => "the response body exceeds the size limit",
            TransportErrorKind::Io => "the connection failed",
            TransportErrorKind::Config => "the HTTP client could not be configured",
        };
        f.write_str(what)?;
        if !self.detail.is_empty() {
            write!(f, ": {}", self.detail)?;
        }
        Ok(())
    }
}

impl StdError for TransportError {
    fn source(&self) -> Option<&(dyn StdError + 'static)> {
        self.source
            .as_deref()
            .map(|e| e as &(dyn StdError + 'static))
    }
}

impl PartialEq for TransportError {
    fn eq(&self, other: &Self) -> bool {
        self.kind == other.kind && self.detail == other.detail
    }
}

impl Eq for TransportError {}

/// How transient token-endpoint failures are retried: connect errors, timeouts, broken
/// connections, 5xx answers, 429, and the `temporarily_unavailable` / `slow_down` codes.
///
/// Attempts are spaced by exponential backoff from `initial` up to `max`, or by the server's
/// `Retry-After` when it sends one (capped at `max_retry_after`; a longer wait is not retried).
#[derive(Clone, Debug, PartialEq, Eq)]
pub struct RetryPolicy {
    max_attempts: u32,
    initial: Duration,
    max: Duration,
    max_retry_after: Duration,
}

impl Default for RetryPolicy {
    /// Three attempts, 200 ms then 400 ms apart, honouring a `Retry-After` of up to 10 s.
    fn default() -> Self {
        Self {
            max_attempts: 3,
            initial: Duration::from_millis(200),
            max: Duration::from_secs(5),
            max_retry_after: Duration::from_secs(10),
        }
    }
}

impl RetryPolicy {
    /// No retries.
    pub fn none() -> Self {
        Self {
            max_attempts: 1,
            ..Self::default()
        }
    }

    /// At most `n` attempts in all (at least one).
    pub fn max_attempts(mut self, n: u32) -> Self {
        self.max_attempts = n.max(1);
        self
    }

    /// The first delay and the cap of the exponential backoff.
    pub fn backoff(mut self, initial: Duration, max: Duration) -> Self {
        self.initial = initial;
        self.max = max.max(initial);
        self
    }

    /// The longest `Retry-After` that is waited for.
    pub fn max_retry_after(mut self, d: Duration) -> Self {
        self.max_retry_after = d;
        self
    }

    /// The number of attempts in all.
    pub fn attempts(&self) -> u32 {
        self.max_attempts
    }

    /// How long to wait before attempt `attempt + 1`, after attempt `attempt` (counting from 1)
    /// failed with `error`; `None` means give up and report `error`.
    ///
    /// `retry_after` is the answer's `Retry-After` (see [`retry_after`]). `repeat` says whether
    /// the server may have acted on the request already (see [`Repeat`]): a single-use request
    /// is retried only when the server certainly did not act on it.
    pub fn retry_delay(
        &self,
        attempt: u32,
        error: &Error,
        retry_after: Option<Duration>,
        repeat: Repeat,
    ) -> Option<Duration> {
        if attempt >= self.max_attempts {
            return None;
        }
        if !is_transient(error, repeat) {
            return None;
        }
        match retry_after {
            Some(d) if d > self.max_retry_after => None,
            Some(d) => Some(d),
            None => {
                let factor = 1u32
                    .checked_shl(attempt.saturating_sub(1))
                    .unwrap_or(u32::MAX);
                Some(
                    self.initial
                        .checked_mul(factor)
                        .unwrap_or(self.max)
                        .min(self.max),
                )
            }
        }
    }
}

/// Whether trying `error`'s request again later may succeed: a connection that failed or
/// broke, a 5xx, 429, `temporarily_unavailable`; for a request that must not be repeated once
/// processed, only the failures that show it was not; for one that must not be repeated once
/// sent ([`Repeat::IfNotSent`], an authorization code), only a connection never made.
///
/// An answer that carries an OAuth error code the RFCs define is the server's decision, not a
/// hiccup: the codes a flow owns (`authorization_pending`, `slow_down`, `use_dpop_nonce`,
/// `access_denied`, ...) are for that flow's machine to act on (the device flow's
/// [`DevicePoll`](crate::DevicePoll) waits the interval, plus 5 s after `slow_down`), so the
/// retry policy never re-sends them, whatever the status. Only `temporarily_unavailable` and
/// `server_error` say "try again later"; those, and a code no RFC defines, are judged by their
/// status like a body without one (any 5xx for a request that may be repeated, else only 503
/// and 429).
pub fn is_transient(error: &Error, repeat: Repeat) -> bool {
    if repeat == Repeat::IfNotSent {
        // An authorization code consumed by the server and sent again makes it revoke every
        // token issued from it (RFC 6749 §4.1.2, RFC 9700 §4.5): a 503 may come from a proxy
        // after the server acted, so only a connection that was never made is proof.
        return matches!(error, Error::Transport(t) if t.kind() == TransportErrorKind::Connect);
    }
    let always = repeat == Repeat::Always;
    let unprocessed_status = |s: http::StatusCode| s.as_u16() == 503 || s.as_u16() == 429;
    let status_says =
        |s: http::StatusCode| unprocessed_status(s) || (always && s.is_server_error());
    match error {
        Error::Transport(t) => {
            t.kind() == TransportErrorKind::Connect || (always && t.is_transient())
        }
        Error::Server(e) => match e.code() {
            ErrorCode::TemporarilyUnavailable => true,
            ErrorCode::ServerError => always || e.status().is_some_and(status_says),
            ErrorCode::Other(code) if RFC_CODES.contains(&code.as_str()) => false,
            ErrorCode::Other(_) => e.status().is_some_and(status_says),
            _ => false,
        },
        Error::UnexpectedResponse(u) => status_says(u.status()),
        _ => false,
    }
}

/// Error codes other RFCs define (beyond [`ErrorCode`]'s variants): each is a decision of the
/// server that a flow acts on, never a reason to send the same request again.
const RFC_CODES: &[&str] = &[
    // RFC 9449 (DPoP)
    "use_dpop_nonce",
    "invalid_dpop_proof",
    // RFC 7591 (registration)
    "invalid_redirect_uri",
    "invalid_client_metadata",
    "invalid_software_statement",
    "unapproved_software_statement",
    // RFC 7009 (revocation)
    "unsupported_token_type",
    // RFC 9101 (JAR), RFC 9126 (PAR), RFC 9396 (RAR), OpenID Connect Core §3.1.2.6
    "invalid_request_uri",
    "invalid_request_object",
    "request_not_supported",
    "request_uri_not_supported",
    "registration_not_supported",
    "invalid_authorization_details",
    "account_selection_required",
];

/// The `Retry-After` header (RFC 9110 §10.2.3) as a delay from `now`: delay-seconds, or an
/// HTTP-date (IMF-fixdate, the form RFC 9110 §5.6.7 says senders use) turned into a delay with
/// the wall clock passed in. A date in the past means no wait; anything unreadable is ignored
/// (the backoff applies instead).
pub fn retry_after(headers: &HeaderMap, now: SystemTime) -> Option<Duration> {
    let value = headers.get(RETRY_AFTER)?.to_str().ok()?.trim();
    if value.is_empty() {
        return None;
    }
    if value.bytes().all(|b| b.is_ascii_digit()) {
        if value.len() > 9 {
            return None;
        }
        return value.parse().ok().map(Duration::from_secs);
    }
    let at = parse_http_date(value)?;
    Some(at.duration_since(now).unwrap_or(Duration::ZERO))
}

/// Parses an IMF-fixdate: `Sun, 06 Nov 1994 08:49:37 GMT`.
pub(crate) fn parse_http_date(text: &str) -> Option<SystemTime> {
    let b = text.as_bytes();
    if b.len() != 29 || &b[3..5] != b", " || &b[25..] != b" GMT" {
        return None;
    }
    const DAYS: [&[u8]; 7] = [b"Mon", b"Tue", b"Wed", b"Thu", b"Fri", b"Sat", b"Sun"];
    if !DAYS.contains(&&b[..3]) {
        return None;
    }
    const MONTHS: [&[u8]; 12] = [
        b"Jan", b"Feb", b"Mar", b"Apr", b"May", b"Jun", b"Jul", b"Aug", b"Sep", b"Oct", b"Nov",
        b"Dec",
    ];
    let num = |range: std::ops::Range<usize>| -> Option<u64> {
        let part = b.get(range)?;
        if !part.iter().all(u8::is_ascii_digit) {
            return None;
        }
        std::str::from_utf8(part).ok()?.parse().ok()
    };
    let day = num(5..7)?;
    let month = MONTHS.iter().position(|m| *m == &b[8..11])? as u64 + 1;
    let year = num(12..16)?;
    let (hour, minute, second) = (num(17..19)?, num(20..22)?, num(23..25)?);
    if b[7] != b' ' || b[11] != b' ' || b[16] != b' ' || b[19] != b':' || b[22] != b':' {
        return None;
    }
    if !(1..=31).contains(&day) || hour > 23 || minute > 59 || second > 60 || year < 1970 {
        return None;
    }
    // Days from 1970-01-01 to the civil date (Howard Hinnant's algorithm).
    let (y, m) = if month <= 2 {
        (year - 1, month + 9)
    } else {
        (year, month - 3)
    };
    let era = y / 400;
    let yoe = y - era * 400;
    let doy = (153 * m + 2) / 5 + day - 1;
    let doe = yoe * 365 + yoe / 4 - yoe / 100 + doy;
    let days = (era * 146_097 + doe).checked_sub(719_468)?;
    let secs = days * 86_400 + hour * 3600 + minute * 60 + second;
    SystemTime::UNIX_EPOCH.checked_add(Duration::from_secs(secs))
}

#[cfg(test)]
mod tests {
    use super::*;
    use crate::error::{ErrorResponse, UnexpectedReason, UnexpectedResponse};
    use http::{HeaderValue, StatusCode};

    fn server(status: u16, code: &str) -> Error {
        Error::Server(ErrorResponse::new(
            StatusCode::from_u16(status).ok(),
            ErrorCode::parse(code),
            None,
            None,
        ))
    }

    #[test]
    fn retries_transient_failures_with_backoff_then_gives_up() {
        let p = RetryPolicy::default();
        let e = server(503, "server_error");
        assert_eq!(
            p.retry_delay(1, &e, None, Repeat::Always),
            Some(Duration::from_millis(200))
        );
        assert_eq!(
            p.retry_delay(2, &e, None, Repeat::Always),
            Some(Duration::from_millis(400))
        );
        assert_eq!(p.retry_delay(3, &e, None, Repeat::Always), None);
        let plain_500 = Error::UnexpectedResponse(UnexpectedResponse::new(
            StatusCode::BAD_GATEWAY,
            None,
            b"",
            UnexpectedReason::Status,
        ));
        assert!(p.retry_delay(1, &plain_500, None, Repeat::Always).is_some());
    }

    #[test]
    fn never_retries_client_errors_or_single_use_requests() {
        let p = RetryPolicy::default();
        assert_eq!(
            p.retry_delay(1, &server(401, "invalid_client"), None, Repeat::Always),
            None
        );
        assert_eq!(
            p.retry_delay(1, &server(400, "invalid_grant"), None, Repeat::Always),
            None
        );
        // A refresh token or a code: 503 means the server did nothing, 500 may not.
        assert!(
            p.retry_delay(
                1,
                &server(503, "server_error"),
                None,
                Repeat::IfNotProcessed
            )
            .is_some()
        );
        assert!(
            p.retry_delay(
                1,
                &server(400, "temporarily_unavailable"),
                None,
                Repeat::IfNotProcessed
            )
            .is_some()
        );
        assert_eq!(
            p.retry_delay(
                1,
                &server(500, "server_error"),
                None,
                Repeat::IfNotProcessed
            ),
            None
        );
        let timeout = Error::Transport(TransportError::new(TransportErrorKind::Timeout, ""));
        assert_eq!(
            p.retry_delay(1, &timeout, None, Repeat::IfNotProcessed),
            None
        );
        assert!(p.retry_delay(1, &timeout, None, Repeat::Always).is_some());
        let connect = Error::Transport(TransportError::new(TransportErrorKind::Connect, ""));
        assert!(
            p.retry_delay(1, &connect, None, Repeat::IfNotProcessed)
                .is_some()
        );
        let tls = Error::Transport(TransportError::new(TransportErrorKind::Tls, ""));
        assert_eq!(p.retry_delay(1, &tls, None, Repeat::Always), None);
    }

    #[test]
    fn a_flows_own_codes_are_never_retried_and_a_code_only_when_never_sent() {
        let p = RetryPolicy::default();
        // RFC 8628 §3.5: `slow_down` is the device machine's (wait the interval + 5 s), with
        // whatever status it comes.
        for status in [400, 429, 503] {
            for code in [
                "slow_down",
                "authorization_pending",
                "use_dpop_nonce",
                "access_denied",
            ] {
                for repeat in [Repeat::Always, Repeat::IfNotProcessed, Repeat::IfNotSent] {
                    assert_eq!(
                        p.retry_delay(1, &server(status, code), None, repeat),
                        None,
                        "{status} {code} {repeat:?}"
                    );
                }
            }
        }
        // An authorization code: a 503 may come from a proxy after the server consumed it.
        for e in [
            server(503, "server_error"),
            server(503, "temporarily_unavailable"),
            server(429, "rate_limited"),
            Error::Transport(TransportError::new(TransportErrorKind::Timeout, "")),
            Error::Transport(TransportError::new(TransportErrorKind::Io, "")),
        ] {
            assert_eq!(p.retry_delay(1, &e, None, Repeat::IfNotSent), None, "{e}");
        }
        let connect = Error::Transport(TransportError::new(TransportErrorKind::Connect, ""));
        assert!(
            p.retry_delay(1, &connect, None, Repeat::IfNotSent)
                .is_some()
        );
        // A code no RFC defines is judged by its status.
        assert!(
            p.retry_delay(1, &server(429, "rate_limited"), None, Repeat::Always)
                .is_some()
        );
        assert_eq!(
            p.retry_delay(1, &server(400, "rate_limited"), None, Repeat::Always),
            None
        );
    }

    #[test]
    fn honours_retry_after_up_to_the_cap() {
        let p = RetryPolicy::default();
        let e = server(429, "rate_limited");
        assert_eq!(
            p.retry_delay(1, &e, Some(Duration::from_secs(2)), Repeat::Always),
            Some(Duration::from_secs(2))
        );
        assert_eq!(
            p.retry_delay(1, &e, Some(Duration::from_secs(60)), Repeat::Always),
            None
        );
        let mut h = HeaderMap::new();
        h.insert(RETRY_AFTER, HeaderValue::from_static("7"));
        let now = SystemTime::UNIX_EPOCH + Duration::from_secs(1_445_412_470); // 07:27:50
        assert_eq!(retry_after(&h, now), Some(Duration::from_secs(7)));
        h.insert(
            RETRY_AFTER,
            HeaderValue::from_static("Wed, 21 Oct 2015 07:28:00 GMT"),
        );
        assert_eq!(retry_after(&h, now), Some(Duration::from_secs(10)));
        // A date already past: no wait.
        assert_eq!(
            retry_after(&h, now + Duration::from_secs(60)),
            Some(Duration::ZERO)
        );
        for bad in [
            "-1",
            "Wed, 21 Oct 2015 07:28:00 UTC",
            "Wed, 32 Oct 2015 07:28:00 GMT",
            "Xyz, 21 Oct 2015 07:28:00 GMT",
            "Wed, 21 Foo 2015 07:28:00 GMT",
            "Wed, 21 Oct 2015 25:28:00 GMT",
            "1.5",
            "Wed, 21 Oct 2015 07:28:00 GMT trailing",
        ] {
            h.insert(RETRY_AFTER, HeaderValue::from_static(bad));
            assert_eq!(retry_after(&h, now), None, "{bad}");
        }
    }

    #[test]
    fn http_dates_known_answers() {
        // RFC 9110 §5.6.7's example, and a leap-year date.
        assert_eq!(
            parse_http_date("Sun, 06 Nov 1994 08:49:37 GMT"),
            Some(SystemTime::UNIX_EPOCH + Duration::from_secs(784_111_777))
        );
        assert_eq!(
            parse_http_date("Thu, 29 Feb 2024 00:00:00 GMT"),
            Some(SystemTime::UNIX_EPOCH + Duration::from_secs(1_709_164_800))
        );
    }

    proptest::proptest! {
        #[test]
        fn retry_after_never_panics(text in "\\PC{0,40}") {
            let mut h = HeaderMap::new();
            if let Ok(v) = HeaderValue::from_str(&text) {
                h.insert(RETRY_AFTER, v);
                let _ = retry_after(&h, SystemTime::UNIX_EPOCH);
            }
        }
    }

    #[test]
    fn transport_error_display_and_source() {
        let e = TransportError::new(TransportErrorKind::Tls, "unknown issuer\n")
            .with_source(std::io::Error::other("inner"));
        assert_eq!(e.to_string(), "TLS handshake failed: unknown issuer\\n");
        assert!(StdError::source(&e).is_some());
    }
}
