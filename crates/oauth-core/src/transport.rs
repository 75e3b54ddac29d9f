//! What adapters report when a request got no usable answer, and when to try again.
//!
//! The core sends nothing, but both adapters must fail and retry the same way, so the
//! vocabulary ([`TransportError`]) and the decision ([`RetryPolicy::retry_delay`]) live here.

use std::error::Error as StdError;
use std::fmt;
use std::sync::Arc;
use std::time::Duration;

use http::HeaderMap;
use http::header::RETRY_AFTER;

use crate::error::{Error, ErrorCode, sanitize};

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

    /// How long to wait before attempt `attempt + 1`, after attempt `attempt` (counting from 1)
    /// failed with `error`; `None` means give up and report `error`.
    ///
    /// `retry_after` is the answer's `Retry-After` (see [`retry_after`]). `repeatable` says
    /// whether the server may have acted on the request already and sending it again would
    /// be harmful (an authorization code is single-use): such a request is retried only when
    /// it never reached the server.
    pub fn retry_delay(
        &self,
        attempt: u32,
        error: &Error,
        retry_after: Option<Duration>,
        repeatable: bool,
    ) -> Option<Duration> {
        if attempt >= self.max_attempts {
            return None;
        }
        let transient = match error {
            Error::Transport(t) => {
                t.kind() == TransportErrorKind::Connect || (repeatable && t.is_transient())
            }
            Error::Server(e) => {
                repeatable
                    && (matches!(
                        e.code(),
                        ErrorCode::TemporarilyUnavailable
                            | ErrorCode::ServerError
                            | ErrorCode::SlowDown
                    ) || e
                        .status()
                        .is_some_and(|s| s.is_server_error() || s.as_u16() == 429))
            }
            Error::UnexpectedResponse(u) => {
                repeatable && (u.status().is_server_error() || u.status().as_u16() == 429)
            }
            _ => false,
        };
        if !transient {
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

/// The `Retry-After` header in its delay-seconds form (RFC 9110 §10.2.3). The HTTP-date form
/// is ignored (it would need a clock); the backoff applies instead.
pub fn retry_after(headers: &HeaderMap) -> Option<Duration> {
    let value = headers.get(RETRY_AFTER)?.to_str().ok()?.trim();
    if value.is_empty() || value.len() > 9 || !value.bytes().all(|b| b.is_ascii_digit()) {
        return None;
    }
    value.parse().ok().map(Duration::from_secs)
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
            p.retry_delay(1, &e, None, true),
            Some(Duration::from_millis(200))
        );
        assert_eq!(
            p.retry_delay(2, &e, None, true),
            Some(Duration::from_millis(400))
        );
        assert_eq!(p.retry_delay(3, &e, None, true), None);
        let plain_500 = Error::UnexpectedResponse(UnexpectedResponse::new(
            StatusCode::BAD_GATEWAY,
            None,
            b"",
            UnexpectedReason::Status,
        ));
        assert!(p.retry_delay(1, &plain_500, None, true).is_some());
    }

    #[test]
    fn never_retries_client_errors_or_single_use_requests() {
        let p = RetryPolicy::default();
        assert_eq!(
            p.retry_delay(1, &server(401, "invalid_client"), None, true),
            None
        );
        assert_eq!(
            p.retry_delay(1, &server(400, "invalid_grant"), None, true),
            None
        );
        assert_eq!(
            p.retry_delay(1, &server(503, "server_error"), None, false),
            None
        );
        let timeout = Error::Transport(TransportError::new(TransportErrorKind::Timeout, ""));
        assert_eq!(p.retry_delay(1, &timeout, None, false), None);
        assert!(p.retry_delay(1, &timeout, None, true).is_some());
        let connect = Error::Transport(TransportError::new(TransportErrorKind::Connect, ""));
        assert!(p.retry_delay(1, &connect, None, false).is_some());
        let tls = Error::Transport(TransportError::new(TransportErrorKind::Tls, ""));
        assert_eq!(p.retry_delay(1, &tls, None, true), None);
    }

    #[test]
    fn honours_retry_after_up_to_the_cap() {
        let p = RetryPolicy::default();
        let e = server(429, "slow_down");
        assert_eq!(
            p.retry_delay(1, &e, Some(Duration::from_secs(2)), true),
            Some(Duration::from_secs(2))
        );
        assert_eq!(
            p.retry_delay(1, &e, Some(Duration::from_secs(60)), true),
            None
        );
        let mut h = HeaderMap::new();
        h.insert(RETRY_AFTER, HeaderValue::from_static("7"));
        assert_eq!(retry_after(&h), Some(Duration::from_secs(7)));
        h.insert(
            RETRY_AFTER,
            HeaderValue::from_static("Wed, 21 Oct 2015 07:28:00 GMT"),
        );
        assert_eq!(retry_after(&h), None);
        h.insert(RETRY_AFTER, HeaderValue::from_static("-1"));
        assert_eq!(retry_after(&h), None);
    }

    #[test]
    fn transport_error_display_and_source() {
        let e = TransportError::new(TransportErrorKind::Tls, "unknown issuer\n")
            .with_source(std::io::Error::other("inner"));
        assert_eq!(e.to_string(), "TLS handshake failed: unknown issuer\\n");
        assert!(StdError::source(&e).is_some());
    }
}
