//! The crate's error type, split by whose fault it is.

use std::fmt;

use http::StatusCode;

use crate::endpoint::EndpointError;
use crate::random::RandomError;
use crate::transport::TransportError;

/// Everything that can go wrong in oauth-core.
///
/// Variants are grouped by whose fault they are (see [`Error::fault`]): the caller's (invalid
/// input or configuration), the server's (an RFC 6749 §5.2 error, or a response that does not
/// follow the protocol), or the authorization flow's (a redirect that does not belong to the
/// request). No message contains a secret.
#[derive(Clone, Debug, PartialEq, Eq)]
#[non_exhaustive]
pub enum Error {
    /// An endpoint URI was refused.
    Endpoint(EndpointError),
    /// A value cannot be sent in an HTTP header (it contains control characters or non-ASCII
    /// bytes where the header needs visible ASCII).
    InvalidHeaderValue {
        /// The header or the part of it that was refused.
        what: &'static str,
    },
    /// The request is missing something it needs.
    MissingParameter {
        /// The parameter that is missing.
        name: &'static str,
    },
    /// A parameter's value is not acceptable.
    InvalidParameter {
        /// The parameter.
        name: &'static str,
        /// What a valid value looks like.
        reason: &'static str,
    },
    /// An extra parameter has the name of one the request already sends.
    DuplicateParameter {
        /// The parameter's name.
        name: String,
    },
    /// The random source failed.
    Random(RandomError),
    /// The server answered with an OAuth error (RFC 6749 §5.2), whatever the HTTP status.
    Server(ErrorResponse),
    /// The server's answer does not follow the protocol.
    UnexpectedResponse(UnexpectedResponse),
    /// The authorization server redirected back with an error (RFC 6749 §4.1.2.1), such as
    /// `access_denied` when the user declined.
    Authorization(ErrorResponse),
    /// The `state` on the redirect does not match the one sent: the response belongs to another
    /// request, or is forged (RFC 6749 §10.12).
    StateMismatch,
    /// The redirect back from the authorization server is malformed.
    InvalidCallback {
        /// What is wrong with it.
        reason: &'static str,
    },
    /// The redirect carries an `iss` that is not the expected issuer, or lacks one that the
    /// server promised (RFC 9207 §2.4): a mix-up attack or a misconfiguration.
    IssuerMismatch,
    /// No usable token, and the token cannot be obtained again without the user (it came from
    /// an authorization code and there is no refresh token left).
    ReauthorizationRequired,
    /// The refresh token was refused (the server's answer is kept) and there is no grant to
    /// run instead: the user must authorize again.
    RefreshRefused(ErrorResponse),
    /// The token was issued with a `token_type` that this use cannot send (RFC 6749 §7.1: a
    /// client must not use a token whose type it does not understand), such as a `DPoP` token
    /// sent as `Authorization: Bearer`.
    UnsupportedTokenType(crate::response::TokenType),
    /// Signing a client assertion or a JWT bearer grant's assertion failed.
    Signing(SigningError),
    /// An id_token's claims were refused (OpenID Connect Core §3.1.3.7).
    InvalidIdToken(crate::id_token::IdTokenError),
    /// A UserInfo answer was refused (OpenID Connect Core §5.3.2, §5.3.4: no `sub`, another
    /// subject than the id_token's, or a signed answer from another issuer or for another
    /// client).
    InvalidUserInfo(crate::id_token::IdTokenError),
    /// The request got no usable HTTP answer (reported by an adapter: connect failure, timeout,
    /// TLS, a redirect, an oversize body).
    Transport(TransportError),
    /// The configuration breaks a security profile the client holds itself to (FAPI 2.0):
    /// the violation names the rule and the missing piece. Nothing was sent.
    Profile(crate::client::profile::ProfileViolation),
    /// A state machine was driven into a state its driver cannot handle: a bug in this
    /// toolkit (a driver older than the machine it drives), never the caller's input, the
    /// server's answer or the network. Please report it.
    Internal {
        /// Which driver met which state.
        what: &'static str,
    },
}

impl Error {
    /// Whose fault this error is.
    pub fn fault(&self) -> Fault {
        match self {
            Self::Endpoint(_)
            | Self::InvalidHeaderValue { .. }
            | Self::MissingParameter { .. }
            | Self::InvalidParameter { .. }
            | Self::DuplicateParameter { .. }
            | Self::UnsupportedTokenType(_)
            | Self::Signing(_)
            | Self::Profile(_) => Fault::Caller,
            Self::Random(_) => Fault::Environment,
            Self::Server(_)
            | Self::UnexpectedResponse(_)
            | Self::InvalidIdToken(_)
            | Self::InvalidUserInfo(_) => Fault::Server,
            Self::Authorization(_)
            | Self::StateMismatch
            | Self::InvalidCallback { .. }
            | Self::IssuerMismatch
            | Self::ReauthorizationRequired
            | Self::RefreshRefused(_) => Fault::Authorization,
            Self::Transport(_) => Fault::Transport,
            Self::Internal { .. } => Fault::Bug,
        }
    }

    /// The OAuth error response, if the server sent one (on the token endpoint or on the
    /// redirect).
    pub fn error_response(&self) -> Option<&ErrorResponse> {
        match self {
            Self::Server(e) | Self::Authorization(e) | Self::RefreshRefused(e) => Some(e),
            _ => None,
        }
    }
}

/// Whose fault an [`Error`] is.
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
#[non_exhaustive]
pub enum Fault {
    /// Invalid input or configuration from the caller.
    Caller,
    /// The server refused the request or broke the protocol.
    Server,
    /// The authorization flow failed (user declined, forged or mixed-up redirect, consent
    /// needed again).
    Authorization,
    /// The environment failed (the random source).
    Environment,
    /// The network or the HTTP client failed; see [`TransportError`].
    Transport,
    /// A bug in this toolkit ([`Error::Internal`]): nothing the caller, the server or the
    /// network did.
    Bug,
}

impl fmt::Display for Error {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        match self {
            Self::Endpoint(e) => fmt::Display::fmt(e, f),
            Self::InvalidHeaderValue { what } => {
                write!(
                    f,
                    "{what} contains characters that cannot be sent in an HTTP header"
                )
            }
            Self::MissingParameter { name } => write!(f, "the request needs `{name}`"),
            Self::InvalidParameter { name, reason } => write!(f, "`{name}` {reason}"),
            Self::InvalidCallback { reason } => {
                write!(f, "invalid authorization redirect: {reason}")
            }
            Self::DuplicateParameter { name } => {
                write!(f, "parameter `{name}` is already sent by the request")
            }
            Self::Random(e) => fmt::Display::fmt(e, f),
            Self::Server(e) => write!(f, "the server refused the request: {e}"),
            Self::UnexpectedResponse(e) => fmt::Display::fmt(e, f),
            Self::Authorization(e) => write!(f, "authorization failed: {e}"),
            Self::StateMismatch => f.write_str(
                "the redirect's state does not match the request: the response is for another \
                 request or forged",
            ),
            Self::IssuerMismatch => f.write_str(
                "the redirect's iss parameter does not match the expected issuer (RFC 9207)",
            ),
            Self::ReauthorizationRequired => f.write_str(
                "the token expired and there is no refresh token: the user must authorize again",
            ),
            Self::RefreshRefused(e) => write!(
                f,
                "the refresh token was refused and there is no grant to run instead: the user \
                 must authorize again ({e})"
            ),
            Self::UnsupportedTokenType(t) => {
                write!(f, "a token of type {t:?} cannot be sent as a bearer token")
            }
            Self::Signing(e) => fmt::Display::fmt(e, f),
            Self::InvalidIdToken(e) => fmt::Display::fmt(e, f),
            Self::InvalidUserInfo(e) => write!(f, "userinfo refused: {e}"),
            Self::Transport(e) => fmt::Display::fmt(e, f),
            Self::Profile(e) => fmt::Display::fmt(e, f),
            Self::Internal { what } => {
                write!(f, "internal error (a bug in the OAuth toolkit): {what}")
            }
        }
    }
}

impl Error {
    /// Replaces every occurrence of the given secrets (and of their URL-, form- and
    /// JSON-encoded forms) in what the error keeps of a server's answer: a server that echoes
    /// the request into `error_description` or an error page must not put the client secret,
    /// a password or a token into a log line.
    pub(crate) fn redact(&mut self, secrets: &[&str]) {
        match self {
            Self::Server(e) | Self::Authorization(e) | Self::RefreshRefused(e) => {
                for text in [&mut e.description, &mut e.uri].into_iter().flatten() {
                    redact_text(text, secrets);
                }
                if let ErrorCode::Other(code) = &mut e.code {
                    redact_text(code, secrets);
                }
            }
            Self::UnexpectedResponse(u) => {
                if let Some(text) = &mut u.body_excerpt {
                    redact_text(text, secrets);
                }
            }
            _ => {}
        }
    }
}

/// A copy of `response` whose body holds none of `secrets` (in any form [`redact_text`]
/// knows), so that an error parsed from it keeps no secret, nor a piece of one cut at an
/// excerpt's end.
pub(crate) fn scrubbed_response<B: AsRef<[u8]>>(
    response: &http::Response<B>,
    secrets: &[&str],
) -> http::Response<Vec<u8>> {
    let mut text = String::from_utf8_lossy(response.body().as_ref()).into_owned();
    redact_text(&mut text, secrets);
    let mut copy = http::Response::new(text.into_bytes());
    *copy.status_mut() = response.status();
    *copy.headers_mut() = response.headers().clone();
    copy
}

/// Parses `response` with `parse`; on failure, parses a copy scrubbed of `secrets` instead and
/// redacts the error too, so that the error keeps none of them.
pub(crate) fn parse_scrubbed<B: AsRef<[u8]>, T>(
    response: &http::Response<B>,
    secrets: &[&str],
    parse: impl Fn(&http::Response<Vec<u8>>) -> Result<T, Error>,
) -> Result<T, Error> {
    let scrubbed = scrubbed_response(response, secrets);
    parse(&scrubbed).map_err(|mut e| {
        e.redact(secrets);
        e
    })
}

/// Replaces each secret, in each form a server may echo it, with `<redacted>`.
pub(crate) fn redact_text(text: &mut String, secrets: &[&str]) {
    for secret in secrets {
        // Short values (a one-letter password) would redact ordinary words; a server that
        // echoes those leaks little.
        if secret.len() < 4 {
            continue;
        }
        let mut forms = vec![(*secret).to_owned()];
        let mut form = String::new();
        crate::encoding::form_encode_into(&mut form, secret);
        forms.push(form.clone());
        forms.push(form.replace('+', "%20"));
        if let Ok(json) = serde_json::to_string(secret) {
            forms.push(json.trim_matches('"').to_owned());
        }
        forms.push(sanitize(secret, usize::MAX));
        // JSON writers that escape '/' (PHP's default), and lowercase percent-encoding.
        forms.push(secret.replace('/', "\\/"));
        forms.push(lower_percent(&form));
        forms.push(lower_percent(&form.replace('+', "%20")));
        for form in forms {
            if !form.is_empty() && text.contains(&form) {
                *text = text.replace(&form, "<redacted>");
            }
        }
    }
}

/// `text` with the hex digits of its `%XX` escapes in lowercase.
fn lower_percent(text: &str) -> String {
    let mut out = String::with_capacity(text.len());
    let mut escape = 0;
    for c in text.chars() {
        if c == '%' {
            escape = 2;
            out.push(c);
        } else if escape > 0 {
            escape -= 1;
            out.push(c.to_ascii_lowercase());
        } else {
            out.push(c);
        }
    }
    out
}

/// Why signing an assertion failed (the key's type does not allow the algorithm, the random
/// source failed, ...). The signer's own error is kept as the [`source`](std::error::Error::source).
#[derive(Clone)]
pub struct SigningError {
    message: String,
    source: Option<std::sync::Arc<dyn std::error::Error + Send + Sync>>,
}

impl SigningError {
    /// A signing error with a message (no key material) and the signer's error.
    pub fn new(message: &str, source: impl std::error::Error + Send + Sync + 'static) -> Self {
        Self {
            message: sanitize(message, 200),
            source: Some(std::sync::Arc::new(source)),
        }
    }

    /// A signing error with a message only.
    pub fn msg(message: &str) -> Self {
        Self {
            message: sanitize(message, 200),
            source: None,
        }
    }
}

impl fmt::Debug for SigningError {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        f.debug_struct("SigningError")
            .field("message", &self.message)
            .finish()
    }
}

impl fmt::Display for SigningError {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        write!(f, "signing the assertion failed: {}", self.message)
    }
}

impl std::error::Error for SigningError {
    fn source(&self) -> Option<&(dyn std::error::Error + 'static)> {
        self.source
            .as_deref()
            .map(|e| e as &(dyn std::error::Error + 'static))
    }
}

impl PartialEq for SigningError {
    fn eq(&self, other: &Self) -> bool {
        self.message == other.message
    }
}

impl Eq for SigningError {}

impl From<SigningError> for Error {
    fn from(e: SigningError) -> Self {
        Self::Signing(e)
    }
}

impl std::error::Error for Error {
    fn source(&self) -> Option<&(dyn std::error::Error + 'static)> {
        match self {
            Self::Endpoint(e) => Some(e),
            Self::Random(e) => Some(e),
            Self::Transport(e) => Some(e),
            Self::Signing(e) => Some(e),
            Self::InvalidIdToken(e) | Self::InvalidUserInfo(e) => Some(e),
            Self::Profile(e) => Some(e),
            _ => None,
        }
    }
}

impl From<crate::client::profile::ProfileViolation> for Error {
    fn from(e: crate::client::profile::ProfileViolation) -> Self {
        Self::Profile(e)
    }
}

impl From<EndpointError> for Error {
    fn from(e: EndpointError) -> Self {
        Self::Endpoint(e)
    }
}

impl From<TransportError> for Error {
    fn from(e: TransportError) -> Self {
        Self::Transport(e)
    }
}

impl From<RandomError> for Error {
    fn from(e: RandomError) -> Self {
        Self::Random(e)
    }
}

/// An OAuth error code (RFC 6749 §4.1.2.1, §5.2 and the registry's extensions).
#[derive(Clone, Debug, PartialEq, Eq, Hash)]
#[non_exhaustive]
pub enum ErrorCode {
    /// `invalid_request`
    InvalidRequest,
    /// `invalid_client`: client authentication failed.
    InvalidClient,
    /// `invalid_grant`: the code, refresh token, credentials or assertion is invalid, expired,
    /// revoked or was issued to another client.
    InvalidGrant,
    /// `unauthorized_client`
    UnauthorizedClient,
    /// `unsupported_grant_type`
    UnsupportedGrantType,
    /// `invalid_scope`
    InvalidScope,
    /// `invalid_target` (RFC 8707): a `resource` is unknown or not allowed.
    InvalidTarget,
    /// `access_denied`: the resource owner or the server declined.
    AccessDenied,
    /// `unsupported_response_type`
    UnsupportedResponseType,
    /// `server_error`
    ServerError,
    /// `temporarily_unavailable`
    TemporarilyUnavailable,
    /// `authorization_pending` (RFC 8628)
    AuthorizationPending,
    /// `slow_down` (RFC 8628)
    SlowDown,
    /// `expired_token` (RFC 8628)
    ExpiredToken,
    /// `interaction_required` (OpenID Connect Core §3.1.2.6)
    InteractionRequired,
    /// `login_required` (OpenID Connect Core §3.1.2.6)
    LoginRequired,
    /// `consent_required` (OpenID Connect Core §3.1.2.6)
    ConsentRequired,
    /// `invalid_token` (RFC 6750 §3.1)
    InvalidToken,
    /// `insufficient_scope` (RFC 6750 §3.1)
    InsufficientScope,
    /// Any other code, as sent.
    Other(String),
}

impl ErrorCode {
    /// Parses a code; unknown codes become [`ErrorCode::Other`].
    pub fn parse(code: &str) -> Self {
        match code {
            "invalid_request" => Self::InvalidRequest,
            "invalid_client" => Self::InvalidClient,
            "invalid_grant" => Self::InvalidGrant,
            "unauthorized_client" => Self::UnauthorizedClient,
            "unsupported_grant_type" => Self::UnsupportedGrantType,
            "invalid_scope" => Self::InvalidScope,
            "invalid_target" => Self::InvalidTarget,
            "access_denied" => Self::AccessDenied,
            "unsupported_response_type" => Self::UnsupportedResponseType,
            "server_error" => Self::ServerError,
            "temporarily_unavailable" => Self::TemporarilyUnavailable,
            "authorization_pending" => Self::AuthorizationPending,
            "slow_down" => Self::SlowDown,
            "expired_token" => Self::ExpiredToken,
            "interaction_required" => Self::InteractionRequired,
            "login_required" => Self::LoginRequired,
            "consent_required" => Self::ConsentRequired,
            "invalid_token" => Self::InvalidToken,
            "insufficient_scope" => Self::InsufficientScope,
            other => Self::Other(sanitize(other, 64)),
        }
    }

    /// The code as sent on the wire.
    pub fn as_str(&self) -> &str {
        match self {
            Self::InvalidRequest => "invalid_request",
            Self::InvalidClient => "invalid_client",
            Self::InvalidGrant => "invalid_grant",
            Self::UnauthorizedClient => "unauthorized_client",
            Self::UnsupportedGrantType => "unsupported_grant_type",
            Self::InvalidScope => "invalid_scope",
            Self::InvalidTarget => "invalid_target",
            Self::AccessDenied => "access_denied",
            Self::UnsupportedResponseType => "unsupported_response_type",
            Self::ServerError => "server_error",
            Self::TemporarilyUnavailable => "temporarily_unavailable",
            Self::AuthorizationPending => "authorization_pending",
            Self::SlowDown => "slow_down",
            Self::ExpiredToken => "expired_token",
            Self::InteractionRequired => "interaction_required",
            Self::LoginRequired => "login_required",
            Self::ConsentRequired => "consent_required",
            Self::InvalidToken => "invalid_token",
            Self::InsufficientScope => "insufficient_scope",
            Self::Other(s) => s,
        }
    }
}

impl fmt::Display for ErrorCode {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        f.write_str(self.as_str())
    }
}

/// An OAuth error response (RFC 6749 §5.2 on the token endpoint, §4.1.2.1 on the redirect).
///
/// Text from the server is kept with control characters escaped and cut to a few hundred
/// characters, so that it is safe to log.
#[derive(Clone, Debug, PartialEq, Eq)]
pub struct ErrorResponse {
    status: Option<StatusCode>,
    code: ErrorCode,
    description: Option<String>,
    uri: Option<String>,
}

impl ErrorResponse {
    /// Builds an error response from its parts.
    pub fn new(
        status: Option<StatusCode>,
        code: ErrorCode,
        description: Option<&str>,
        uri: Option<&str>,
    ) -> Self {
        Self {
            status,
            code,
            description: description.map(|d| sanitize(d, 512)),
            uri: uri.map(|u| sanitize(u, 256)),
        }
    }

    /// The HTTP status it came with; `None` for an error on the authorization redirect.
    pub fn status(&self) -> Option<StatusCode> {
        self.status
    }

    /// The `error` code.
    pub fn code(&self) -> &ErrorCode {
        &self.code
    }

    /// The `error_description`, if any.
    pub fn description(&self) -> Option<&str> {
        self.description.as_deref()
    }

    /// The `error_uri`, if any.
    pub fn uri(&self) -> Option<&str> {
        self.uri.as_deref()
    }
}

impl fmt::Display for ErrorResponse {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        f.write_str(self.code.as_str())?;
        if let Some(status) = self.status {
            write!(f, " (HTTP {})", status.as_u16())?;
        }
        if let Some(d) = &self.description {
            write!(f, ": {d}")?;
        }
        if let Some(u) = &self.uri {
            write!(f, " (see {u})")?;
        }
        Ok(())
    }
}

/// A response that does not follow the protocol, kept for diagnosis.
#[derive(Clone, Debug, PartialEq, Eq)]
pub struct UnexpectedResponse {
    status: StatusCode,
    content_type: Option<String>,
    body_len: usize,
    body_excerpt: Option<String>,
    reason: UnexpectedReason,
}

/// What was wrong with an [`UnexpectedResponse`].
#[derive(Clone, Debug, PartialEq, Eq)]
#[non_exhaustive]
pub enum UnexpectedReason {
    /// The body is larger than the parser accepts.
    BodyTooLarge {
        /// The limit, in bytes.
        limit: usize,
    },
    /// The body is neither JSON nor form-encoded, or does not parse as either.
    Unparseable,
    /// A required field is missing.
    MissingField(&'static str),
    /// A field has the wrong type or an invalid value.
    InvalidField(&'static str),
    /// The status is an error and the body carries no OAuth error.
    Status,
    /// The token type is one this crate cannot use as a bearer token (for example `mac`).
    UnsupportedTokenType(String),
}

/// How much of an unexpected body is kept for diagnosis.
pub(crate) const EXCERPT_LEN: usize = 256;

impl UnexpectedResponse {
    /// Records an unexpected response.
    ///
    /// A copy of the body (cut to 256 characters) is kept only when the status is not a
    /// success: the body of a 2xx answer from a token endpoint may hold a token, so only its
    /// length is kept.
    pub fn new(
        status: StatusCode,
        content_type: Option<&str>,
        body: &[u8],
        reason: UnexpectedReason,
    ) -> Self {
        let body_excerpt = (!status.is_success() && !body.is_empty())
            .then(|| sanitize(&String::from_utf8_lossy(body), EXCERPT_LEN));
        Self {
            status,
            content_type: content_type.map(|c| sanitize(c, 100)),
            body_len: body.len(),
            body_excerpt,
            reason,
        }
    }

    /// The HTTP status.
    pub fn status(&self) -> StatusCode {
        self.status
    }

    /// The `Content-Type` the server sent.
    pub fn content_type(&self) -> Option<&str> {
        self.content_type.as_deref()
    }

    /// The body's length in bytes.
    pub fn body_len(&self) -> usize {
        self.body_len
    }

    /// The start of the body, for non-success statuses only.
    pub fn body_excerpt(&self) -> Option<&str> {
        self.body_excerpt.as_deref()
    }

    /// What was wrong.
    pub fn reason(&self) -> &UnexpectedReason {
        &self.reason
    }
}

impl fmt::Display for UnexpectedResponse {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        match &self.reason {
            UnexpectedReason::BodyTooLarge { limit } => {
                write!(f, "response body is larger than {limit} bytes")?
            }
            UnexpectedReason::Unparseable => f.write_str("response body is not valid JSON")?,
            UnexpectedReason::MissingField(name) => {
                write!(f, "response is missing the required field `{name}`")?
            }
            UnexpectedReason::InvalidField(name) => {
                write!(f, "response field `{name}` has an invalid value")?
            }
            UnexpectedReason::Status => f.write_str("unexpected HTTP status")?,
            UnexpectedReason::UnsupportedTokenType(t) => write!(f, "unsupported token_type `{t}`")?,
        }
        write!(f, " (HTTP {}", self.status.as_u16())?;
        if let Some(ct) = &self.content_type {
            write!(f, ", {ct}")?;
        }
        write!(f, ", {} bytes)", self.body_len)?;
        if let Some(excerpt) = &self.body_excerpt {
            write!(f, ": {excerpt}")?;
        }
        Ok(())
    }
}

/// Cuts `text` to `max` characters and escapes control characters, so that server-supplied text
/// cannot forge log lines or flood them.
pub(crate) fn sanitize(text: &str, max: usize) -> String {
    let mut out = String::with_capacity(text.len().min(max));
    for (i, c) in text.chars().enumerate() {
        if i == max {
            out.push('…');
            break;
        }
        if c.is_control() {
            out.extend(c.escape_default());
        } else {
            out.push(c);
        }
    }
    out
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn codes_round_trip() {
        for code in [
            "invalid_client",
            "invalid_grant",
            "invalid_target",
            "access_denied",
        ] {
            assert_eq!(ErrorCode::parse(code).as_str(), code);
        }
        assert_eq!(
            ErrorCode::parse("custom"),
            ErrorCode::Other("custom".into())
        );
    }

    #[test]
    fn internal_error_is_a_bug_not_a_transport_failure() {
        let e = Error::Internal {
            what: "request_token met an unknown CallStep",
        };
        assert_eq!(e.fault(), Fault::Bug);
        assert!(e.error_response().is_none());
        assert_eq!(
            e.to_string(),
            "internal error (a bug in the OAuth toolkit): request_token met an unknown CallStep"
        );
    }

    #[test]
    fn sanitize_escapes_and_cuts() {
        assert_eq!(sanitize("a\nb", 10), "a\\nb");
        assert_eq!(sanitize("abcdef", 3), "abc…");
    }

    #[test]
    fn excerpt_only_for_errors() {
        let e = UnexpectedResponse::new(
            StatusCode::OK,
            Some("text/html"),
            b"<html>token</html>",
            UnexpectedReason::Unparseable,
        );
        assert_eq!(e.body_excerpt(), None);
        assert_eq!(e.body_len(), 18);
        let e = UnexpectedResponse::new(
            StatusCode::BAD_GATEWAY,
            Some("text/html"),
            b"<html>Bad gateway</html>",
            UnexpectedReason::Status,
        );
        assert_eq!(e.body_excerpt(), Some("<html>Bad gateway</html>"));
        assert_eq!(
            e.to_string(),
            "unexpected HTTP status (HTTP 502, text/html, 24 bytes): <html>Bad gateway</html>"
        );
    }
}
