//! The resource server's side (RFC 6750 §2 and §3): take the bearer token from an incoming
//! request, and decide from the introspection result and the client's contract whether the
//! request may reach the API.
//!
//! This is an API gateway's policy (token in, introspection, contract check) without the I/O:
//! the caller sends the [`IntrospectionRequest`](crate::IntrospectionRequest), looks the client
//! up in its contract store, and hands both answers to [`ApiPolicy::decide`]. [`gateway`] keeps
//! a node's bookkeeping (result cache, DPoP replays, single flight) and [`rate_limit`] its SLA
//! tiers, both as machines with time passed in.

use std::borrow::Cow;
use std::fmt;
use std::sync::Arc;
use std::time::{Duration, SystemTime};

use http::header::{AUTHORIZATION, CONTENT_TYPE, WWW_AUTHENTICATE};
use http::{HeaderMap, HeaderValue, Method, Request, Response, StatusCode, Uri};

use crate::encoding::form_parse;
use crate::error::ErrorCode;
use crate::introspection::Introspection;
use crate::response::TokenType;
use crate::scope::Scope;
use crate::secret::AccessToken;

pub mod gateway;
mod jwt;
pub mod rate_limit;
pub use jwt::{JwtAccessTokenChecks, jwt_issuer_hint, validate_jwt_access_token};

// `Presentation`, `TokenScheme` and `extract_token_from_parts` are defined below.

/// Where a resource server looks for the bearer token.
///
/// The `Authorization: Bearer` header (RFC 6750 §2.1) is always read. The form-body (§2.2)
/// and query (§2.3) methods are off unless enabled: RFC 9700 §4.3.2 advises against the query
/// form, since URIs end up in logs and `Referer` headers.
///
/// Tokens longer than [`max_token_len`](Self::max_token_len) (8 KiB by default) are refused
/// before anything else is done with them: no validation endpoint is asked about a 200 KB
/// "token".
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
pub struct BearerLocations {
    form_body: bool,
    query: bool,
    max_len: usize,
}

/// The longest bearer token accepted by default: far above real JWTs (a few KB) and opaque
/// tokens, far below what would let a client make the gateway forward megabytes.
pub const DEFAULT_MAX_TOKEN_LEN: usize = 8 * 1024;

impl Default for BearerLocations {
    fn default() -> Self {
        Self {
            form_body: false,
            query: false,
            max_len: DEFAULT_MAX_TOKEN_LEN,
        }
    }
}

impl BearerLocations {
    /// Refuses tokens longer than `bytes` with [`Denial::InvalidToken`].
    pub fn max_token_len(mut self, bytes: usize) -> Self {
        self.max_len = bytes;
        self
    }

    /// The longest token accepted.
    pub fn token_len_limit(&self) -> usize {
        self.max_len
    }

    /// The `Authorization` header only.
    pub fn header_only() -> Self {
        Self::default()
    }

    /// Also accept `access_token` in a form-encoded body (RFC 6750 §2.2).
    pub fn allow_form_body(mut self) -> Self {
        self.form_body = true;
        self
    }

    /// Also accept `access_token` in the query string (RFC 6750 §2.3).
    pub fn allow_query(mut self) -> Self {
        self.query = true;
        self
    }

    /// Whether the form-body method is enabled.
    pub fn form_body(&self) -> bool {
        self.form_body
    }

    /// Whether the query method is enabled.
    pub fn query(&self) -> bool {
        self.query
    }
}

/// Takes the bearer token from an incoming request (RFC 6750 §2).
///
/// No token gives [`Denial::MissingToken`]; a malformed token, or tokens sent by more than one
/// method or more than once, give [`Denial::InvalidRequest`] (RFC 6750 §3.1).
///
/// ```
/// use oauth_core::{BearerLocations, Denial, extract_bearer_token};
///
/// let request = http::Request::get("https://api.domain.com/labels")
///     .header("authorization", "Bearer mF_9.B5f-4.1JqM")
///     .body(Vec::<u8>::new())?;
/// let token = extract_bearer_token(&request, BearerLocations::header_only())?;
/// assert_eq!(token.expose_secret(), "mF_9.B5f-4.1JqM");
///
/// let anonymous = http::Request::get("https://api.domain.com/labels").body(Vec::<u8>::new())?;
/// let denial = extract_bearer_token(&anonymous, BearerLocations::header_only()).unwrap_err();
/// assert_eq!(denial, Denial::MissingToken);
/// assert_eq!(denial.status(), 401);
/// # Ok::<(), Box<dyn std::error::Error>>(())
/// ```
pub fn extract_bearer_token<B: AsRef<[u8]>>(
    request: &Request<B>,
    locations: BearerLocations,
) -> Result<RequestToken<'_>, Denial> {
    extract_bearer_token_from_parts(
        request.method(),
        request.uri(),
        request.headers(),
        Some(request.body().as_ref()),
        locations,
    )
}

/// [`extract_bearer_token`] for servers that have not read the body yet: pass `body: None`
/// and the form-body method is skipped even when enabled.
pub fn extract_bearer_token_from_parts<'a>(
    method: &Method,
    uri: &Uri,
    headers: &'a HeaderMap,
    body: Option<&[u8]>,
    locations: BearerLocations,
) -> Result<RequestToken<'a>, Denial> {
    let mut found: Option<RequestToken<'a>> = None;
    let mut take = |token: Cow<'a, [u8]>| -> Result<(), Denial> {
        let malformed = Denial::InvalidRequest {
            reason: "the bearer token is malformed",
        };
        if token.len() > locations.max_len {
            return Err(Denial::InvalidToken {
                reason: InvalidTokenReason::TooLong,
            });
        }
        if !is_b64token(&token) {
            return Err(malformed);
        }
        // b64token is ASCII, so these conversions cannot fail.
        let token = match token {
            Cow::Borrowed(b) => Cow::Borrowed(std::str::from_utf8(b).map_err(|_| malformed)?),
            Cow::Owned(b) => Cow::Owned(String::from_utf8(b).map_err(|_| malformed)?),
        };
        if found.is_some() {
            return Err(Denial::InvalidRequest {
                reason: "more than one access token in the request",
            });
        }
        found = Some(RequestToken(token));
        Ok(())
    };

    for value in headers.get_all(AUTHORIZATION) {
        // Bytes, not `to_str`: one pass over a long token instead of two.
        let text = value.as_bytes().trim_ascii();
        let Some((scheme, rest)) = text.split_at_checked(6) else {
            continue;
        };
        if !scheme.eq_ignore_ascii_case(b"bearer") {
            continue;
        }
        match rest.first() {
            // "Bearer" alone.
            None => {
                return Err(Denial::InvalidRequest {
                    reason: "the bearer token is malformed",
                });
            }
            Some(b' ') => take(Cow::Borrowed(rest.trim_ascii_start()))?,
            // Another scheme that starts with "Bearer".
            Some(_) => continue,
        }
    }
    if locations.query
        && let Some(query) = uri.query()
    {
        for (name, value) in form_parse(query) {
            if name == "access_token" {
                take(Cow::Owned(value.into_bytes()))?;
            }
        }
    }
    if locations.form_body && *method != Method::GET {
        let is_form = headers
            .get(CONTENT_TYPE)
            .and_then(|v| v.to_str().ok())
            .and_then(|ct| ct.split(';').next())
            .is_some_and(|m| {
                m.trim()
                    .eq_ignore_ascii_case("application/x-www-form-urlencoded")
            });
        if let (true, Some(body)) = (is_form, body)
            && let Ok(text) = std::str::from_utf8(body)
        {
            for (name, value) in form_parse(text) {
                if name == "access_token" {
                    take(Cow::Owned(value.into_bytes()))?;
                }
            }
        }
    }
    found.ok_or(Denial::MissingToken)
}

/// A bearer token taken from an incoming request: borrowed from the `Authorization` header
/// (no copy of a long token on every request), or decoded from the query or form body.
///
/// `Debug` shows `<redacted>`; a decoded copy is wiped on drop.
pub struct RequestToken<'a>(Cow<'a, str>);

impl RequestToken<'_> {
    /// The token, to look up or send to the introspection endpoint.
    pub fn expose_secret(&self) -> &str {
        &self.0
    }

    /// An owned [`AccessToken`] with the same value.
    pub fn to_access_token(&self) -> AccessToken {
        AccessToken::new(self.0.as_ref())
    }
}

impl fmt::Debug for RequestToken<'_> {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        f.write_str("RequestToken(<redacted>)")
    }
}

impl Drop for RequestToken<'_> {
    fn drop(&mut self) {
        if let Cow::Owned(s) = &mut self.0 {
            zeroize::Zeroize::zeroize(s);
        }
    }
}

/// `b64token` (RFC 6750 §2.1): `1*( ALPHA / DIGIT / "-" / "." / "_" / "~" / "+" / "/" ) *"="`.
///
/// Checked with comparisons rather than a table, folded without an early exit over blocks of
/// 32 bytes, so that the compiler vectorises it: a gateway checks every request's token, and
/// a table lookup per byte cost a third of a 900-character JWT's cache-hit decision.
fn is_b64token(token: &[u8]) -> bool {
    #[inline(always)]
    fn allowed(c: u8) -> bool {
        let letter = (c | 0x20).wrapping_sub(b'a') < 26;
        let digit = c.wrapping_sub(b'0') < 10;
        letter
            | digit
            | (c == b'-')
            | (c == b'.')
            | (c == b'_')
            | (c == b'~')
            | (c == b'+')
            | (c == b'/')
    }
    let end = token.len() - token.iter().rev().take_while(|&&b| b == b'=').count();
    let body = &token[..end];
    !body.is_empty()
        && body
            .chunks(32)
            .all(|block| block.iter().fold(true, |ok, &c| ok & allowed(c)))
}

/// How a token was presented.
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
#[non_exhaustive]
pub enum Presentation<'a> {
    /// `Authorization: Bearer` (or the form body or query).
    Bearer,
    /// `Authorization: DPoP` with a proof that checked out, made with the key whose RFC 7638
    /// thumbprint is `jkt`.
    Dpop {
        /// The proof key's thumbprint.
        jkt: &'a str,
    },
}

/// The certificate a client presented on its TLS connection, by the SHA-256 digest of its DER
/// encoding: what a certificate-bound access token's `cnf.x5t#S256` names (RFC 8705 §3.1).
///
/// The TLS layer makes one per connection and hands it to the resource server with each
/// request (the gateway's tower layer reads it from the request's extensions). Only the
/// leaf certificate counts. The digest is public data: `Debug` shows its base64url form.
#[derive(Clone, Copy, PartialEq, Eq, Hash)]
pub struct ClientCertificate {
    sha256: [u8; 32],
}

impl ClientCertificate {
    /// The certificate whose DER encoding is `der` (the leaf of the client's chain).
    pub fn from_der(der: &[u8]) -> Self {
        Self {
            sha256: crate::common::sha256::sha256(der),
        }
    }

    /// The certificate whose DER encoding has the SHA-256 digest `digest` (for a TLS layer
    /// that hashes it itself).
    pub fn from_sha256(digest: [u8; 32]) -> Self {
        Self { sha256: digest }
    }

    /// The SHA-256 digest of the certificate's DER encoding.
    pub fn sha256(&self) -> &[u8; 32] {
        &self.sha256
    }

    /// The `x5t#S256` value of this certificate: its digest in base64url without padding.
    pub fn thumbprint(&self) -> String {
        crate::encoding::b64url(&self.sha256)
    }

    /// Whether `x5t` (a token's `cnf.x5t#S256`) names this certificate. Trailing `=` padding is
    /// tolerated; anything else that is not this digest in base64url is not a match.
    fn matches(&self, x5t: &str) -> bool {
        use base64::Engine as _;
        base64::engine::general_purpose::URL_SAFE_NO_PAD
            .decode(x5t.trim_end_matches('='))
            .is_ok_and(|digest| digest[..] == self.sha256[..])
    }
}

impl fmt::Debug for ClientCertificate {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        f.debug_tuple("ClientCertificate")
            .field(&self.thumbprint())
            .finish()
    }
}

/// How a token reached the resource server: its [`Presentation`] and the client certificate of
/// the connection it came on, if any.
///
/// A [`Presentation`] converts into one without a certificate, so
/// [`ApiPolicy::decide_with`] takes either.
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
pub struct Presented<'a> {
    presentation: Presentation<'a>,
    certificate: Option<&'a ClientCertificate>,
}

impl<'a> Presented<'a> {
    /// A token presented as `presentation`, on a connection without a client certificate.
    pub fn new(presentation: Presentation<'a>) -> Self {
        Self {
            presentation,
            certificate: None,
        }
    }

    /// The client certificate of the connection the token came on (RFC 8705 §3).
    pub fn with_certificate(mut self, certificate: Option<&'a ClientCertificate>) -> Self {
        self.certificate = certificate;
        self
    }

    /// How the token was presented.
    pub fn presentation(&self) -> Presentation<'a> {
        self.presentation
    }

    /// The connection's client certificate.
    pub fn certificate(&self) -> Option<&'a ClientCertificate> {
        self.certificate
    }
}

impl<'a> From<Presentation<'a>> for Presented<'a> {
    fn from(presentation: Presentation<'a>) -> Self {
        Self::new(presentation)
    }
}

/// The authorization scheme a token came with.
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
#[non_exhaustive]
pub enum TokenScheme {
    /// `Bearer` (header, form body or query).
    Bearer,
    /// `DPoP` (RFC 9449 §7.1): a proof must come in the `DPoP` header.
    Dpop,
}

/// [`extract_bearer_token_from_parts`] that also takes `Authorization: DPoP <token>`
/// (RFC 9449 §7.1), and says which scheme the token came with.
pub fn extract_token_from_parts<'a>(
    method: &Method,
    uri: &Uri,
    headers: &'a HeaderMap,
    body: Option<&[u8]>,
    locations: BearerLocations,
) -> Result<(RequestToken<'a>, TokenScheme), Denial> {
    let mut dpop = headers.get_all(AUTHORIZATION).iter().filter_map(|v| {
        let text = v.as_bytes().trim_ascii();
        let (scheme, rest) = text.split_at_checked(5)?;
        (scheme.eq_ignore_ascii_case(b"dpop ")).then(|| rest.trim_ascii_start())
    });
    let Some(token) = dpop.next() else {
        return extract_bearer_token_from_parts(method, uri, headers, body, locations)
            .map(|t| (t, TokenScheme::Bearer));
    };
    let bearer = extract_bearer_token_from_parts(method, uri, headers, body, locations);
    if dpop.next().is_some() || bearer.is_ok() {
        return Err(Denial::InvalidRequest {
            reason: "more than one access token in the request",
        });
    }
    if token.len() > locations.max_len {
        return Err(Denial::InvalidToken {
            reason: InvalidTokenReason::TooLong,
        });
    }
    if !is_b64token(token) {
        return Err(Denial::InvalidRequest {
            reason: "the access token is malformed",
        });
    }
    let token = std::str::from_utf8(token).map_err(|_| Denial::InvalidRequest {
        reason: "the access token is malformed",
    })?;
    Ok((RequestToken(Cow::Borrowed(token)), TokenScheme::Dpop))
}

/// What the contract store says about a client and the API it calls.
#[derive(Clone, Debug, PartialEq, Eq)]
#[non_exhaustive]
pub enum ContractStatus {
    /// The client holds a contract for the API. `scopes`, when set, limits the scopes the
    /// client may use on it.
    Granted {
        /// The scopes the contract allows, or `None` for any.
        scopes: Option<Scope>,
        /// The contract's SLA tier (its rate limits), or `None` for unlimited.
        tier: Option<rate_limit::Tier>,
    },
    /// The client holds no contract for the API.
    None,
    /// The store could not answer.
    Unavailable,
}

/// What an API requires of a request (the gateway policy), and the decision.
///
/// ```
/// use std::sync::Arc;
/// use std::time::{Duration, SystemTime};
/// use oauth_core::{ApiPolicy, ContractStatus, Denial, parse_introspection_response};
///
/// let policy = ApiPolicy::new("labels-api").require_scope(["labels:read"]);
/// let now = SystemTime::UNIX_EPOCH + Duration::from_secs(1_700_000_000);
/// let body = r#"{"active": true, "client_id": "app-1", "scope": "labels:read", "exp": 1700003600}"#;
/// let answer = http::Response::builder().status(200).body(body)?;
/// let introspection = Arc::new(parse_introspection_response(&answer)?);
///
/// // app-1 holds a contract for labels-api.
/// let principal = policy.decide(&introspection, now, |client, api| {
///     assert_eq!((client, api), ("app-1", "labels-api"));
///     ContractStatus::Granted { scopes: None, tier: None }
/// })?;
/// assert_eq!(principal.client_id(), "app-1");
///
/// // Without a contract: 403.
/// let denial = policy.decide(&introspection, now, |_, _| ContractStatus::None).unwrap_err();
/// assert_eq!(denial.status(), 403);
/// # Ok::<(), Box<dyn std::error::Error>>(())
/// ```
#[derive(Clone, Debug)]
pub struct ApiPolicy {
    api: String,
    required: Scope,
    audience: Option<String>,
    realm: Option<String>,
    not_before_leeway: Duration,
    any_scope: bool,
    require_contract: bool,
    required_details_types: Vec<String>,
}

impl ApiPolicy {
    /// The policy of the API named `api` (the name the contract store knows it by).
    pub fn new(api: impl Into<String>) -> Self {
        Self {
            api: api.into(),
            required: Scope::default(),
            audience: None,
            realm: None,
            not_before_leeway: Duration::from_secs(60),
            any_scope: false,
            require_contract: true,
            required_details_types: Vec::new(),
        }
    }

    /// Requires the token to carry an `authorization_details` object of this `type` (RFC
    /// 9396 §9.1: the resource server decides what the details allow). May be repeated: every
    /// type given is required. A token without one is refused with
    /// [`Denial::InsufficientAuthorizationDetails`] (403 `insufficient_scope`; RFC 9396 defines
    /// no error code of its own for a resource server). What the object allows (amounts,
    /// accounts, `locations`) is the API's to check, from
    /// [`Introspection::authorization_details`](crate::client::introspection::Introspection::authorization_details)
    /// on the [`Principal`].
    pub fn require_authorization_details_type(mut self, detail_type: impl Into<String>) -> Self {
        self.required_details_types.push(detail_type.into());
        self
    }

    /// The `authorization_details` types every request's token must carry.
    pub fn required_authorization_details_types(&self) -> &[String] {
        &self.required_details_types
    }

    /// Scopes every request must carry (all of them).
    pub fn require_scope<I, S>(mut self, scopes: I) -> Self
    where
        I: IntoIterator<Item = S>,
        S: Into<String>,
    {
        self.required = Scope::new(scopes);
        self
    }

    /// Requires one of the scopes given to [`require_scope`](Self::require_scope), not all of
    /// them (an OR instead of an AND). With no scopes required, it changes nothing.
    pub fn any_scope(mut self) -> Self {
        self.any_scope = true;
        self
    }

    /// Whether the client must hold a contract for the API (`true`, the default). With
    /// `false` the contract store is not asked: any client whose token passes the other checks
    /// is allowed, with the token's scopes checked alone; the token must still name a client.
    pub fn require_contract(mut self, required: bool) -> Self {
        self.require_contract = required;
        self
    }

    /// Requires the token's `aud` to contain `audience` (RFC 9700 §2.3: audience-restricted
    /// tokens). A token without `aud` is then refused.
    pub fn audience(mut self, audience: impl Into<String>) -> Self {
        self.audience = Some(audience.into());
        self
    }

    /// The `realm` sent in `WWW-Authenticate` challenges.
    pub fn realm(mut self, realm: impl Into<String>) -> Self {
        self.realm = Some(realm.into());
        self
    }

    /// The API's name.
    pub fn api(&self) -> &str {
        &self.api
    }

    /// The scopes every request must carry.
    pub fn required_scope(&self) -> &Scope {
        &self.required
    }

    /// Decides on a request whose token the introspection endpoint described.
    ///
    /// Checks, in order: the token is active, not expired at `now` (so a cached result is never
    /// used past `exp`), already valid (`nbf`, with 60 s leeway), a bearer token, for this
    /// audience (if required), issued to a client; then `contract(client_id, api)`; then the
    /// required scopes, which must be in the token's scope and, if the contract limits scopes,
    /// in the contract's.
    pub fn decide<F>(
        &self,
        introspection: &Arc<Introspection>,
        now: SystemTime,
        contract: F,
    ) -> Result<Principal, Denial>
    where
        F: FnOnce(&str, &str) -> ContractStatus,
    {
        self.decide_with(introspection, now, Presentation::Bearer, contract)
    }

    /// [`decide`](Self::decide) for a token presented as `presented` says: a bearer token
    /// must not be DPoP-bound (`cnf.jkt` or `token_type` DPoP, RFC 9449 §7.2); a token
    /// presented with a checked DPoP proof must be bound to the proof's key; a token bound to a
    /// certificate (`cnf.x5t#S256`, RFC 8705 §3) must come on a connection whose client
    /// certificate is that one.
    pub fn decide_with<'p, F>(
        &self,
        introspection: &Arc<Introspection>,
        now: SystemTime,
        presented: impl Into<Presented<'p>>,
        contract: F,
    ) -> Result<Principal, Denial>
    where
        F: FnOnce(&str, &str) -> ContractStatus,
    {
        let presented = presented.into();
        let presentation = presented.presentation;
        let invalid = |reason| Err(Denial::InvalidToken { reason });
        let cnf = introspection.extra().get("cnf");
        let bound_to = cnf
            .and_then(|c| c.get("jkt"))
            .and_then(serde_json::Value::as_str);
        // A `cnf` with an `x5t#S256` that is not a string binds the token to nothing a
        // connection can show: it is refused like a mismatch, not ignored.
        let certificate_bound = cnf.and_then(|c| c.get("x5t#S256"));
        if introspection.active()
            && let Some(bound) = certificate_bound
        {
            match (presented.certificate, bound.as_str()) {
                (None, _) => return invalid(InvalidTokenReason::CertificateRequired),
                (Some(cert), Some(x5t)) if cert.matches(x5t) => {}
                (Some(_), _) => return invalid(InvalidTokenReason::CertificateMismatch),
            }
        }
        let dpop_typed = introspection
            .token_type()
            .is_some_and(|t| *t == TokenType::DPoP);
        if introspection.active() {
            match (presentation, bound_to) {
                (Presentation::Bearer, Some(_)) => {
                    return invalid(InvalidTokenReason::DpopBoundAsBearer);
                }
                (Presentation::Bearer, None) if dpop_typed => {
                    return invalid(InvalidTokenReason::DpopBoundAsBearer);
                }
                (Presentation::Dpop { .. }, None) => {
                    return invalid(InvalidTokenReason::NotDpopBound);
                }
                (Presentation::Dpop { jkt }, Some(bound)) if bound != jkt => {
                    return Err(Denial::InvalidDpopProof {
                        reason: "The proof's key is not the one the access token is bound to.",
                    });
                }
                _ => {}
            }
        }
        if !introspection.active() {
            return invalid(InvalidTokenReason::Inactive);
        }
        if introspection.expires_at().is_some_and(|exp| exp <= now) {
            return invalid(InvalidTokenReason::Expired);
        }
        if introspection
            .not_before()
            .is_some_and(|nbf| nbf > now + self.not_before_leeway)
        {
            return invalid(InvalidTokenReason::NotYetValid);
        }
        if introspection
            .token_type()
            .is_some_and(|t| *t != TokenType::Bearer && *t != TokenType::DPoP)
        {
            return invalid(InvalidTokenReason::NotAnAccessToken);
        }
        if let Some(audience) = &self.audience
            && !introspection.audience().iter().any(|a| a == audience)
        {
            return invalid(InvalidTokenReason::WrongAudience);
        }
        let Some(client_id) = introspection.client_id() else {
            return Err(Denial::NoContract);
        };
        let status = if self.require_contract {
            contract(client_id, &self.api)
        } else {
            ContractStatus::Granted {
                scopes: None,
                tier: None,
            }
        };
        let (contract_scopes, tier) = match status {
            ContractStatus::Granted { scopes, tier } => (scopes, tier),
            ContractStatus::None => return Err(Denial::NoContract),
            ContractStatus::Unavailable => {
                return Err(Denial::Unavailable {
                    reason: "The contract store could not be read.",
                    cause: None,
                });
            }
        };
        let in_contract =
            |needed: &str| contract_scopes.as_ref().is_none_or(|a| a.contains(needed));
        let in_token = |needed: &str| introspection.scope().is_some_and(|s| s.contains(needed));
        if self.any_scope && !self.required.is_empty() {
            // One scope both the token and the contract hold is enough; if the token holds
            // some only the contract lacks, the contract is what is missing.
            if !self.required.iter().any(|n| in_token(n) && in_contract(n)) {
                if self.required.iter().any(in_token) {
                    return Err(Denial::NoContract);
                }
                return Err(Denial::InsufficientScope {
                    required: self.required.clone(),
                });
            }
        } else {
            for needed in self.required.iter() {
                if !in_contract(needed) {
                    return Err(Denial::NoContract);
                }
                if !in_token(needed) {
                    return Err(Denial::InsufficientScope {
                        required: self.required.clone(),
                    });
                }
            }
        }
        for needed in &self.required_details_types {
            if !introspection.has_authorization_details_type(needed) {
                return Err(Denial::InsufficientAuthorizationDetails {
                    required: needed.clone(),
                });
            }
        }
        Ok(Principal {
            introspection: Arc::clone(introspection),
            tier,
            quota: None,
        })
    }

    /// The HTTP response for a denial: the status, a `WWW-Authenticate: Bearer` challenge with
    /// this policy's realm where RFC 6750 §3 calls for one, and a small JSON body.
    pub fn deny_response(&self, denial: &Denial) -> Response<Vec<u8>> {
        denial.to_response(self.realm.as_deref())
    }
}

/// An allowed request: who is calling, under which SLA tier, and what is left of its quota.
#[derive(Clone)]
pub struct Principal {
    introspection: Arc<Introspection>,
    tier: Option<rate_limit::Tier>,
    quota: Option<Quota>,
}

/// What is left of a request's quota, as the draft-ietf-httpapi-ratelimit-headers fields say
/// it: the tier and the counter's verdict, turned into text only when the fields are written
/// ([`headers`](Self::headers)), so that counting costs no formatting.
#[derive(Clone, Debug, PartialEq, Eq)]
pub struct Quota {
    tier: rate_limit::Tier,
    verdict: rate_limit::Verdict,
}

impl Quota {
    /// The quota `verdict` leaves of `tier`.
    pub fn new(tier: rate_limit::Tier, verdict: rate_limit::Verdict) -> Self {
        Self { tier, verdict }
    }

    /// The tier.
    pub fn tier(&self) -> &rate_limit::Tier {
        &self.tier
    }

    /// The counter's verdict.
    pub fn verdict(&self) -> &rate_limit::Verdict {
        &self.verdict
    }

    /// The `RateLimit-Policy` value: the tier's limits.
    pub fn policy(&self) -> String {
        self.tier.policy_header()
    }

    /// The `RateLimit` value: the tightest limit's remaining requests and reset.
    pub fn state(&self) -> String {
        self.verdict.header(&self.tier)
    }

    /// The two header fields (`RateLimit-Policy`, `RateLimit`), for the response.
    pub fn headers(&self) -> [(http::HeaderName, HeaderValue); 2] {
        let value = |v: String| {
            HeaderValue::try_from(v).unwrap_or_else(|_| HeaderValue::from_static("\"default\""))
        };
        [
            (
                http::HeaderName::from_static("ratelimit-policy"),
                value(self.policy()),
            ),
            (
                http::HeaderName::from_static("ratelimit"),
                value(self.state()),
            ),
        ]
    }
}

impl Principal {
    /// The contract's SLA tier, if it has one (its requests are counted against it).
    pub fn tier(&self) -> Option<&rate_limit::Tier> {
        self.tier.as_ref()
    }

    /// What is left of the quota after this request, once the rate limiter counted it.
    pub fn quota(&self) -> Option<&Quota> {
        self.quota.as_ref()
    }

    /// This principal, with what the rate limiter left of its quota.
    #[must_use]
    pub fn with_quota(mut self, quota: Quota) -> Self {
        self.quota = Some(quota);
        self
    }

    /// The calling client's id (the one that holds the contract).
    pub fn client_id(&self) -> &str {
        self.introspection.client_id().unwrap_or_default()
    }

    /// The token's scopes.
    pub fn scope(&self) -> Option<&Scope> {
        self.introspection.scope()
    }

    /// The resource owner, when the token was issued on a user's behalf.
    pub fn subject(&self) -> Option<&str> {
        self.introspection.subject()
    }

    /// When the token expires, if the endpoint said.
    pub fn expires_at(&self) -> Option<SystemTime> {
        self.introspection.expires_at()
    }

    /// Everything the introspection endpoint said.
    pub fn introspection(&self) -> &Introspection {
        &self.introspection
    }
}

impl fmt::Debug for Principal {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        f.debug_struct("Principal")
            .field("client_id", &self.client_id())
            .field("scope", &self.scope())
            .field("subject", &self.subject().map(|_| "<present>"))
            .finish()
    }
}

/// Why a token was found invalid.
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
#[non_exhaustive]
pub enum InvalidTokenReason {
    /// The introspection endpoint said `active: false` (unknown, expired or revoked).
    Inactive,
    /// `exp` has passed.
    Expired,
    /// `nbf` is in the future.
    NotYetValid,
    /// `token_type` is not `Bearer` (a refresh token, or a sender-constrained token).
    NotAnAccessToken,
    /// `aud` does not name this API.
    WrongAudience,
    /// The token is longer than the API accepts (see [`BearerLocations::max_token_len`]).
    TooLong,
    /// A JWT access token whose signature does not verify with its issuer's keys (or whose
    /// algorithm or key the API does not accept).
    BadSignature,
    /// A JWT access token from an issuer this API does not trust.
    WrongIssuer,
    /// A DPoP-bound token (`cnf.jkt`, or `token_type` DPoP) presented as a bearer token
    /// (RFC 9449 §7.2).
    DpopBoundAsBearer,
    /// A token presented with a DPoP proof but not bound to a key.
    NotDpopBound,
    /// A JWT access token without a claim RFC 9068 requires (`exp`, a client), or with one of
    /// the wrong type.
    Malformed,
    /// A token bound to a client certificate (`cnf.x5t#S256`, RFC 8705 §3) presented on a
    /// connection without one.
    CertificateRequired,
    /// A token bound to a client certificate other than the connection's.
    CertificateMismatch,
}

impl InvalidTokenReason {
    fn description(self) -> &'static str {
        match self {
            Self::Inactive => "The access token is not active.",
            Self::Expired => "The access token expired.",
            Self::NotYetValid => "The access token is not valid yet.",
            Self::NotAnAccessToken => "The token is not a bearer access token.",
            Self::WrongAudience => "The access token is not meant for this API.",
            Self::TooLong => "The access token is longer than this API accepts.",
            Self::BadSignature => "The access token's signature is not valid.",
            Self::WrongIssuer => "The access token's issuer is not trusted by this API.",
            Self::Malformed => "The access token lacks a required claim.",
            Self::DpopBoundAsBearer => "The access token is DPoP-bound: present it with a proof.",
            Self::NotDpopBound => "The access token is not bound to a DPoP key.",
            Self::CertificateRequired => {
                "The access token is bound to a client certificate: present it over mutual TLS."
            }
            Self::CertificateMismatch => "The access token is bound to another client certificate.",
        }
    }
}

/// Why a request is refused, and how to answer it.
#[derive(Clone, Debug, PartialEq, Eq)]
#[non_exhaustive]
pub enum Denial {
    /// No token: 401 with a bare `WWW-Authenticate: Bearer` challenge (RFC 6750 §3.1 says to
    /// send no error code then).
    MissingToken,
    /// A malformed request (bad token syntax, several tokens): 400 `invalid_request`.
    InvalidRequest {
        /// What is wrong.
        reason: &'static str,
    },
    /// The token is not valid: 401 `invalid_token`.
    InvalidToken {
        /// Why.
        reason: InvalidTokenReason,
    },
    /// The token lacks a required scope: 403 `insufficient_scope`, with the scopes needed.
    InsufficientScope {
        /// The scopes the API requires.
        required: Scope,
    },
    /// The client holds no contract for this API (or its contract does not cover the scopes
    /// required): 403.
    NoContract,
    /// The token carries no `authorization_details` object of a type the API requires (RFC
    /// 9396 §9.1, [`ApiPolicy::require_authorization_details_type`]): 403 with
    /// `insufficient_scope` (RFC 6750 §3.1: "the request requires higher privileges than
    /// provided by the access token"; RFC 9396 defines no resource-server error code) and a
    /// description that names authorization details.
    InsufficientAuthorizationDetails {
        /// The `type` that is missing.
        required: String,
    },
    /// The token could not be validated (the introspection endpoint or the contract store is
    /// down or answered nonsense): 503. Never an allow.
    Unavailable {
        /// What failed, safe to send to the client.
        reason: &'static str,
        /// Why, for the gateway's logs (never sent): the introspection endpoint's error, the
        /// key set's, the contract store's. [`Denial`]'s `source()` too.
        cause: Option<Cause>,
    },
    /// The DPoP proof is missing, malformed, for another request, replayed, or made with
    /// another key than the token is bound to: 401 with `WWW-Authenticate: DPoP
    /// error="invalid_dpop_proof"` (RFC 9449 §7.1).
    InvalidDpopProof {
        /// Why.
        reason: &'static str,
    },
    /// The client's SLA tier for this API is used up: 429 with `Retry-After` and the
    /// `RateLimit-Policy` / `RateLimit` fields.
    RateLimited {
        /// When the request would be allowed.
        retry_after: Duration,
        /// The quota's header fields.
        quota: Quota,
    },
}

impl Denial {
    /// The HTTP status to answer with.
    pub fn status(&self) -> StatusCode {
        match self {
            Self::MissingToken | Self::InvalidToken { .. } | Self::InvalidDpopProof { .. } => {
                StatusCode::UNAUTHORIZED
            }
            Self::InvalidRequest { .. } => StatusCode::BAD_REQUEST,
            Self::InsufficientScope { .. }
            | Self::InsufficientAuthorizationDetails { .. }
            | Self::NoContract => StatusCode::FORBIDDEN,
            Self::Unavailable { .. } => StatusCode::SERVICE_UNAVAILABLE,
            Self::RateLimited { .. } => StatusCode::TOO_MANY_REQUESTS,
        }
    }

    /// The OAuth error code, if the response carries one.
    pub fn error_code(&self) -> Option<ErrorCode> {
        match self {
            Self::MissingToken => None,
            Self::InvalidRequest { .. } => Some(ErrorCode::InvalidRequest),
            Self::InvalidToken { .. } => Some(ErrorCode::InvalidToken),
            Self::InsufficientScope { .. } | Self::InsufficientAuthorizationDetails { .. } => {
                Some(ErrorCode::InsufficientScope)
            }
            Self::NoContract => Some(ErrorCode::AccessDenied),
            Self::Unavailable { .. } => Some(ErrorCode::TemporarilyUnavailable),
            Self::InvalidDpopProof { .. } => Some(ErrorCode::parse("invalid_dpop_proof")),
            Self::RateLimited { .. } => Some(ErrorCode::parse("rate_limited")),
        }
    }

    /// A human-readable description, safe to send to the client.
    pub fn description(&self) -> &'static str {
        match self {
            Self::MissingToken => "An access token is required.",
            Self::InvalidRequest { reason }
            | Self::Unavailable { reason, .. }
            | Self::InvalidDpopProof { reason } => reason,
            Self::InvalidToken { reason } => reason.description(),
            Self::InsufficientScope { .. } => "The access token lacks a scope this API requires.",
            Self::InsufficientAuthorizationDetails { .. } => {
                "The access token lacks authorization_details of a type this API requires."
            }
            Self::NoContract => "The client has no contract for this API.",
            Self::RateLimited { .. } => "The client's rate limit for this API is reached.",
        }
    }

    /// The `WWW-Authenticate` value (RFC 6750 §3), for 400, 401 and `insufficient_scope`.
    pub fn challenge(&self, realm: Option<&str>) -> Option<HeaderValue> {
        let code = match self {
            Self::MissingToken => None,
            Self::InvalidRequest { .. }
            | Self::InvalidToken { .. }
            | Self::InsufficientScope { .. }
            | Self::InsufficientAuthorizationDetails { .. }
            | Self::InvalidDpopProof { .. } => self.error_code(),
            Self::NoContract | Self::Unavailable { .. } | Self::RateLimited { .. } => return None,
        };
        let mut params: Vec<(&str, &str)> = Vec::new();
        if let Some(realm) = realm {
            params.push(("realm", realm));
        }
        let code_text = code.as_ref().map(ErrorCode::as_str);
        if let Some(code) = code_text {
            params.push(("error", code));
            params.push(("error_description", self.description()));
        }
        if let Self::InsufficientScope { required } = self {
            params.push(("scope", required.as_str()));
        }
        let dpop = matches!(self, Self::InvalidDpopProof { .. });
        if dpop {
            // RFC 9449 §7.1: the algorithms a proof may use.
            params.push((
                "algs",
                "ES256 ES384 EdDSA RS256 RS384 RS512 PS256 PS384 PS512",
            ));
        }
        let mut text = String::from(if dpop { "DPoP" } else { "Bearer" });
        for (i, (name, value)) in params.iter().enumerate() {
            text.push_str(if i == 0 { " " } else { ", " });
            text.push_str(name);
            text.push_str("=\"");
            for c in value.chars() {
                // Only visible ASCII and spaces may be quoted in a header value.
                match c {
                    '"' | '\\' => {
                        text.push('\\');
                        text.push(c);
                    }
                    ' '..='~' => text.push(c),
                    _ => text.push('?'),
                }
            }
            text.push('"');
        }
        HeaderValue::from_str(&text).ok()
    }

    /// The whole response: status, challenge and a JSON body
    /// (`{"error": …, "error_description": …}`; empty when no token was sent).
    pub fn to_response(&self, realm: Option<&str>) -> Response<Vec<u8>> {
        let body = match self.error_code() {
            Some(code) if *self != Self::MissingToken => serde_json::json!({
                "error": code.as_str(),
                "error_description": self.description(),
            })
            .to_string()
            .into_bytes(),
            _ => Vec::new(),
        };
        let mut response = Response::new(body);
        *response.status_mut() = self.status();
        if let Some(challenge) = self.challenge(realm) {
            response.headers_mut().insert(WWW_AUTHENTICATE, challenge);
        }
        if !response.body().is_empty() {
            response
                .headers_mut()
                .insert(CONTENT_TYPE, HeaderValue::from_static("application/json"));
        }
        if let Self::RateLimited { retry_after, quota } = self {
            let seconds = rate_limit::seconds_up(*retry_after);
            response
                .headers_mut()
                .insert(http::header::RETRY_AFTER, HeaderValue::from(seconds));
            for (name, value) in quota.headers() {
                response.headers_mut().insert(name, value);
            }
        }
        response
    }
}

impl fmt::Display for Denial {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        write!(f, "{} ({})", self.description(), self.status().as_u16())
    }
}

impl std::error::Error for Denial {
    fn source(&self) -> Option<&(dyn std::error::Error + 'static)> {
        match self {
            Self::Unavailable {
                cause: Some(cause), ..
            } => Some(cause.0.as_ref()),
            _ => None,
        }
    }
}

/// Why a token could not be validated ([`Denial::Unavailable`]): the error underneath,
/// kept for logs and `source()`, never put in the answer to the client.
#[derive(Clone)]
pub struct Cause(Arc<dyn std::error::Error + Send + Sync>);

impl Cause {
    /// The cause `error`.
    pub fn new(error: impl std::error::Error + Send + Sync + 'static) -> Self {
        Self(Arc::new(error))
    }

    /// The error underneath.
    pub fn get(&self) -> &(dyn std::error::Error + Send + Sync + 'static) {
        self.0.as_ref()
    }
}

impl fmt::Debug for Cause {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        fmt::Debug::fmt(&self.0, f)
    }
}

impl fmt::Display for Cause {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        fmt::Display::fmt(&self.0, f)
    }
}

/// Two causes are equal when they say the same (errors are not comparable otherwise).
impl PartialEq for Cause {
    fn eq(&self, other: &Self) -> bool {
        Arc::ptr_eq(&self.0, &other.0) || self.0.to_string() == other.0.to_string()
    }
}

impl Eq for Cause {}

#[cfg(test)]
mod tests {
    use super::*;
    use crate::bearer::{TokenVerdict, classify_resource_response};
    use crate::introspection::parse_introspection_response;

    fn request(auth: &[&str], uri: &str, body: Option<&str>) -> Request<Vec<u8>> {
        let mut b = Request::builder().uri(uri);
        for a in auth {
            b = b.header(AUTHORIZATION, *a);
        }
        if let Some(body) = body {
            b = b
                .method(Method::POST)
                .header(CONTENT_TYPE, "application/x-www-form-urlencoded");
            return b.body(body.as_bytes().to_vec()).unwrap();
        }
        b.body(Vec::new()).unwrap()
    }

    fn extract(r: &Request<Vec<u8>>, l: BearerLocations) -> Result<String, Denial> {
        extract_bearer_token(r, l).map(|t| t.expose_secret().to_owned())
    }

    #[test]
    fn b64token_is_exactly_the_rfc_6750_alphabet() {
        let reference = |c: u8| {
            c.is_ascii_alphanumeric() || matches!(c, b'-' | b'.' | b'_' | b'~' | b'+' | b'/')
        };
        for c in 0..=255u8 {
            assert_eq!(is_b64token(&[c]), reference(c), "byte {c:#04x}");
            // Anywhere in a long token (every block position), and before padding.
            for at in [0usize, 31, 32, 63, 899] {
                let mut token = vec![b'a'; 900];
                token[at] = c;
                assert_eq!(
                    is_b64token(&token),
                    reference(c) || (c == b'=' && at == 899)
                );
            }
            let padded = [b'a', c, b'=', b'='];
            assert_eq!(is_b64token(&padded), reference(c) || c == b'=');
        }
        assert!(!is_b64token(b""));
        assert!(!is_b64token(b"=="));
    }

    #[test]
    fn extraction() {
        let all = BearerLocations::header_only()
            .allow_query()
            .allow_form_body();
        let h = BearerLocations::header_only();
        let ok = |s: &str| Ok(s.to_owned());
        assert_eq!(extract(&request(&["Bearer abc"], "/", None), h), ok("abc"));
        assert_eq!(
            extract(&request(&["bearer  a.b-c_d~e+f/g=="], "/", None), h),
            ok("a.b-c_d~e+f/g==")
        );
        assert_eq!(
            extract(&request(&["Basic dXNlcjpwdw=="], "/", None), h),
            Err(Denial::MissingToken)
        );
        assert_eq!(
            extract(&request(&[], "/?access_token=q", None), h),
            Err(Denial::MissingToken)
        );
        assert_eq!(
            extract(&request(&[], "/?access_token=q", None), all),
            ok("q")
        );
        assert_eq!(
            extract(&request(&[], "/", Some("x=1&access_token=f")), all),
            ok("f")
        );
        assert_eq!(
            extract(&request(&[], "/", Some("access_token=f")), h),
            Err(Denial::MissingToken)
        );
        let malformed = Err(Denial::InvalidRequest {
            reason: "the bearer token is malformed",
        });
        for bad in [
            "Bearer",
            "Bearer a b",
            "Bearer a\"b",
            "Bearer ==",
            "Bearer é",
        ] {
            let r = Request::builder()
                .header(
                    AUTHORIZATION,
                    HeaderValue::from_bytes(bad.as_bytes()).unwrap(),
                )
                .body(Vec::new())
                .unwrap();
            assert_eq!(extract(&r, h), malformed, "{bad}");
        }
        let multiple = Err(Denial::InvalidRequest {
            reason: "more than one access token in the request",
        });
        assert_eq!(
            extract(&request(&["Bearer a", "Bearer b"], "/", None), h),
            multiple
        );
        assert_eq!(
            extract(&request(&["Bearer a"], "/?access_token=a", None), all),
            multiple
        );
        assert_eq!(
            extract(&request(&[], "/?access_token=a&access_token=b", None), all),
            multiple
        );
        assert_eq!(
            extract(&request(&["Bearer a"], "/", Some("access_token=b")), all),
            multiple
        );
        // A GET's body is never read (RFC 6750 §2.2).
        let mut get = request(&[], "/", Some("access_token=f"));
        *get.method_mut() = Method::GET;
        assert_eq!(extract(&get, all), Err(Denial::MissingToken));
    }

    fn introspection(body: &str) -> Arc<Introspection> {
        let r = Response::builder().status(200).body(body).unwrap();
        Arc::new(parse_introspection_response(&r).unwrap())
    }

    fn at(secs: u64) -> SystemTime {
        SystemTime::UNIX_EPOCH + Duration::from_secs(secs)
    }

    #[test]
    fn certificate_bound_tokens_need_their_certificate() {
        let policy = ApiPolicy::new("orders");
        let granted = |_: &str, _: &str| ContractStatus::Granted {
            scopes: None,
            tier: None,
        };
        let ours = ClientCertificate::from_der(b"the client's certificate");
        let other = ClientCertificate::from_der(b"another certificate");
        let bound = format!(
            r#"{{"active":true,"client_id":"c1","cnf":{{"x5t#S256":"{}"}}}}"#,
            ours.thumbprint()
        );
        let check = |body: &str, cert: Option<&ClientCertificate>| {
            let presented = Presented::new(Presentation::Bearer).with_certificate(cert);
            policy
                .decide_with(&introspection(body), at(1000), presented, granted)
                .map(|p| p.client_id().to_owned())
        };
        fn refused<T>(reason: InvalidTokenReason) -> Result<T, Denial> {
            Err(Denial::InvalidToken { reason })
        }
        assert_eq!(check(&bound, Some(&ours)), Ok("c1".to_owned()));
        assert_eq!(
            check(&bound, None),
            refused(InvalidTokenReason::CertificateRequired)
        );
        assert_eq!(
            check(&bound, Some(&other)),
            refused(InvalidTokenReason::CertificateMismatch)
        );
        // `decide` is a connection without a certificate.
        assert_eq!(
            policy
                .decide(&introspection(&bound), at(1000), granted)
                .map(|_| ()),
            refused(InvalidTokenReason::CertificateRequired)
        );
        // Padding is tolerated; a thumbprint in another encoding, or not a string, is not.
        let padded = bound.replace(&ours.thumbprint(), &format!("{}=", ours.thumbprint()));
        assert_eq!(check(&padded, Some(&ours)), Ok("c1".to_owned()));
        let hex: String = ours.sha256().iter().map(|b| format!("{b:02x}")).collect();
        let in_hex = bound.replace(&ours.thumbprint(), &hex);
        assert_eq!(
            check(&in_hex, Some(&ours)),
            refused(InvalidTokenReason::CertificateMismatch)
        );
        let not_a_string = r#"{"active":true,"client_id":"c1","cnf":{"x5t#S256":7}}"#;
        assert_eq!(
            check(not_a_string, Some(&ours)),
            refused(InvalidTokenReason::CertificateMismatch)
        );
        // An unbound token is allowed with or without a certificate.
        let unbound = r#"{"active":true,"client_id":"c1"}"#;
        assert_eq!(check(unbound, Some(&ours)), Ok("c1".to_owned()));
        assert_eq!(check(unbound, None), Ok("c1".to_owned()));
        // An inactive bound token is inactive, whatever the certificate.
        let inactive = r#"{"active":false,"cnf":{"x5t#S256":"x"}}"#;
        assert_eq!(check(inactive, None), refused(InvalidTokenReason::Inactive));
        // A token bound both ways needs both.
        let both = format!(
            r#"{{"active":true,"client_id":"c1","cnf":{{"jkt":"k1","x5t#S256":"{}"}}}}"#,
            ours.thumbprint()
        );
        let dpop = |jkt, cert| {
            let presented = Presented::new(Presentation::Dpop { jkt }).with_certificate(cert);
            policy
                .decide_with(&introspection(&both), at(1000), presented, granted)
                .map(|_| ())
        };
        assert_eq!(dpop("k1", Some(&ours)), Ok(()));
        assert_eq!(
            dpop("k1", None),
            refused(InvalidTokenReason::CertificateRequired)
        );
        assert!(matches!(
            dpop("k2", Some(&ours)),
            Err(Denial::InvalidDpopProof { .. })
        ));
        // 401 invalid_token, the reason in the description.
        let r = Denial::InvalidToken {
            reason: InvalidTokenReason::CertificateMismatch,
        }
        .to_response(None);
        assert_eq!(r.status(), 401);
        let challenge = r.headers()[WWW_AUTHENTICATE].to_str().unwrap();
        assert!(
            challenge.contains(r#"error="invalid_token""#),
            "{challenge}"
        );
        assert!(
            challenge.contains("another client certificate"),
            "{challenge}"
        );
    }

    #[test]
    fn a_certificate_thumbprint_is_the_rfc_8705_one() {
        // RFC 8705 §3.1's example is the base64url SHA-256 of a certificate's DER; the digest
        // of "abc" (FIPS 180-2's known answer) pins the encoding.
        let cert = ClientCertificate::from_der(b"abc");
        assert_eq!(
            cert.thumbprint(),
            "ungWv48Bz-pBQUDeXa4iI7ADYaOWF3qctBD_YfIAFa0"
        );
        assert_eq!(cert, ClientCertificate::from_sha256(*cert.sha256()));
        assert_eq!(
            format!("{cert:?}"),
            "ClientCertificate(\"ungWv48Bz-pBQUDeXa4iI7ADYaOWF3qctBD_YfIAFa0\")"
        );
    }

    #[test]
    fn required_authorization_details_type() {
        let policy = ApiPolicy::new("payments")
            .require_scope(["pay"])
            .require_authorization_details_type("payment_initiation");
        assert_eq!(
            policy.required_authorization_details_types(),
            ["payment_initiation"]
        );
        let granted = |_: &str, _: &str| ContractStatus::Granted {
            scopes: None,
            tier: None,
        };
        let check = |body: &str| {
            policy
                .decide(&introspection(body), at(1000), granted)
                .map(|p| p.client_id().to_owned())
        };
        let missing = Err(Denial::InsufficientAuthorizationDetails {
            required: "payment_initiation".into(),
        });
        assert_eq!(
            check(r#"{"active":true,"client_id":"c1","scope":"pay"}"#),
            missing
        );
        assert_eq!(
            check(
                r#"{"active":true,"client_id":"c1","scope":"pay","authorization_details":[{"type":"account_information"}]}"#
            ),
            missing
        );
        assert_eq!(
            check(
                r#"{"active":true,"client_id":"c1","scope":"pay","authorization_details":[{"type":"account_information"},{"type":"payment_initiation","actions":["initiate"]}]}"#
            ),
            Ok("c1".to_owned())
        );
        // The scope is still checked first.
        assert!(matches!(
            check(
                r#"{"active":true,"client_id":"c1","authorization_details":[{"type":"payment_initiation"}]}"#
            ),
            Err(Denial::InsufficientScope { .. })
        ));
        // Every type given is required.
        let both = policy
            .clone()
            .require_authorization_details_type("account_information");
        assert_eq!(
            both.decide(
                &introspection(
                    r#"{"active":true,"client_id":"c1","scope":"pay","authorization_details":[{"type":"payment_initiation"}]}"#
                ),
                at(1000),
                granted
            )
            .map(|_| ()),
            Err(Denial::InsufficientAuthorizationDetails {
                required: "account_information".into()
            })
        );
        // 403 insufficient_scope with a description naming authorization details.
        let r = Denial::InsufficientAuthorizationDetails {
            required: "payment_initiation".into(),
        }
        .to_response(Some("api"));
        assert_eq!(r.status(), 403);
        let challenge = r.headers()[WWW_AUTHENTICATE].to_str().unwrap();
        assert!(challenge.starts_with(r#"Bearer realm="api", error="insufficient_scope""#));
        assert!(challenge.contains("authorization_details"));
        let body: serde_json::Value = serde_json::from_slice(r.body()).unwrap();
        assert_eq!(body["error"], "insufficient_scope");
    }

    #[test]
    fn decisions() {
        let policy = ApiPolicy::new("orders").require_scope(["orders:read"]);
        let granted = |_: &str, _: &str| ContractStatus::Granted {
            scopes: None,
            tier: None,
        };
        let now = at(1000);
        let good = introspection(
            r#"{"active":true,"client_id":"c1","scope":"orders:read x","exp":2000,"sub":"u","token_type":"Bearer"}"#,
        );
        let p = policy.decide(&good, now, granted).unwrap();
        assert_eq!((p.client_id(), p.subject()), ("c1", Some("u")));
        assert!(!format!("{p:?}").contains("\"u\""));

        let invalid = |reason| Err(Denial::InvalidToken { reason });
        let check = |body: &str| {
            policy
                .decide(&introspection(body), now, granted)
                .map(|_| ())
        };
        assert_eq!(
            check(r#"{"active":false}"#),
            invalid(InvalidTokenReason::Inactive)
        );
        assert_eq!(
            check(r#"{"active":true,"client_id":"c1","scope":"orders:read","exp":1000}"#),
            invalid(InvalidTokenReason::Expired)
        );
        assert_eq!(
            check(r#"{"active":true,"client_id":"c1","scope":"orders:read","nbf":1061}"#),
            invalid(InvalidTokenReason::NotYetValid)
        );
        assert_eq!(
            check(r#"{"active":true,"client_id":"c1","scope":"orders:read","nbf":1060}"#),
            Ok(())
        );
        assert_eq!(
            check(
                r#"{"active":true,"client_id":"c1","scope":"orders:read","token_type":"refresh_token"}"#
            ),
            invalid(InvalidTokenReason::NotAnAccessToken)
        );
        assert_eq!(
            check(r#"{"active":true,"client_id":"c1","scope":"orders:write"}"#),
            Err(Denial::InsufficientScope {
                required: Scope::parse("orders:read")
            })
        );
        assert!(matches!(
            check(r#"{"active":true,"client_id":"c1"}"#),
            Err(Denial::InsufficientScope { .. })
        ));
        assert_eq!(
            check(r#"{"active":true,"scope":"orders:read"}"#),
            Err(Denial::NoContract)
        );

        // The contract store is asked about this client and this API only.
        let mut asked = None;
        let r = policy.decide(&good, now, |c, a| {
            asked = Some((c.to_owned(), a.to_owned()));
            ContractStatus::None
        });
        assert_eq!(r.unwrap_err(), Denial::NoContract);
        assert_eq!(asked, Some(("c1".to_owned(), "orders".to_owned())));
        assert_eq!(
            policy
                .decide(&good, now, |_, _| ContractStatus::Unavailable)
                .unwrap_err()
                .status(),
            StatusCode::SERVICE_UNAVAILABLE
        );
        // A contract limited to other scopes does not cover the request.
        let limited = |_: &str, _: &str| ContractStatus::Granted {
            scopes: Some(Scope::parse("orders:write")),
            tier: None,
        };
        assert_eq!(
            policy.decide(&good, now, limited).unwrap_err(),
            Denial::NoContract
        );
        let covering = |_: &str, _: &str| ContractStatus::Granted {
            scopes: Some(Scope::parse("orders:read")),
            tier: None,
        };
        assert!(policy.decide(&good, now, covering).is_ok());

        // Audience restriction.
        let aud = ApiPolicy::new("orders").audience("https://orders.example");
        let with = introspection(
            r#"{"active":true,"client_id":"c","aud":["x","https://orders.example"]}"#,
        );
        let without = introspection(r#"{"active":true,"client_id":"c"}"#);
        assert!(aud.decide(&with, now, granted).is_ok());
        assert_eq!(
            aud.decide(&without, now, granted).unwrap_err(),
            Denial::InvalidToken {
                reason: InvalidTokenReason::WrongAudience
            }
        );
    }

    #[test]
    fn any_scope_and_no_contract() {
        let now = at(1000);
        let granted = |_: &str, _: &str| ContractStatus::Granted {
            scopes: None,
            tier: None,
        };
        let token = |scope: &str| {
            introspection(&format!(
                r#"{{"active":true,"client_id":"c1","scope":"{scope}"}}"#
            ))
        };
        let all = ApiPolicy::new("orders").require_scope(["a", "b"]);
        let any = all.clone().any_scope();
        let insufficient = Err(Denial::InsufficientScope {
            required: Scope::parse("a b"),
        });
        let decide = |p: &ApiPolicy, scope: &str| p.decide(&token(scope), now, granted).map(|_| ());
        assert_eq!(decide(&all, "a"), insufficient);
        assert_eq!(decide(&all, "a b"), Ok(()));
        assert_eq!(decide(&any, "b"), Ok(()));
        assert_eq!(decide(&any, "c"), insufficient);
        // Any: the contract must allow the scope the token holds.
        let only_a = |_: &str, _: &str| ContractStatus::Granted {
            scopes: Some(Scope::parse("a")),
            tier: None,
        };
        assert_eq!(
            any.decide(&token("b"), now, only_a).map(|_| ()),
            Err(Denial::NoContract)
        );
        assert!(any.decide(&token("a b"), now, only_a).is_ok());
        // With no scopes required, `any` changes nothing.
        let none = ApiPolicy::new("orders").any_scope();
        assert!(none.decide(&token(""), now, granted).is_ok());

        // Without contracts the store is not asked; the token's scopes still count.
        let open = ApiPolicy::new("orders")
            .require_scope(["a"])
            .require_contract(false);
        let never = |_: &str, _: &str| -> ContractStatus { unreachable!("asked") };
        assert!(open.decide(&token("a"), now, never).is_ok());
        assert_eq!(open.decide(&token("b"), now, never).map(|_| ()), {
            Err(Denial::InsufficientScope {
                required: Scope::parse("a"),
            })
        });
        let anonymous = introspection(r#"{"active":true,"scope":"a"}"#);
        assert_eq!(
            open.decide(&anonymous, now, never).map(|_| ()),
            Err(Denial::NoContract)
        );
    }

    #[test]
    fn responses_follow_rfc6750_and_our_classifier_reads_them() {
        let realm = Some("api \"one\"");
        let r = Denial::MissingToken.to_response(realm);
        assert_eq!(r.status(), 401);
        assert_eq!(
            r.headers()[WWW_AUTHENTICATE],
            r#"Bearer realm="api \"one\"""#
        );
        assert!(r.body().is_empty());

        let r = Denial::InvalidToken {
            reason: InvalidTokenReason::Expired,
        }
        .to_response(None);
        assert_eq!(r.status(), 401);
        assert_eq!(
            r.headers()[WWW_AUTHENTICATE],
            r#"Bearer error="invalid_token", error_description="The access token expired.""#
        );
        // A client using this crate drops the token and retries on this answer.
        assert!(matches!(
            classify_resource_response(&r),
            TokenVerdict::Rejected(_)
        ));

        let r = Denial::InsufficientScope {
            required: Scope::parse("a b"),
        }
        .to_response(None);
        assert_eq!(r.status(), 403);
        assert!(
            r.headers()[WWW_AUTHENTICATE]
                .to_str()
                .unwrap()
                .ends_with(r#"scope="a b""#)
        );
        assert!(matches!(
            classify_resource_response(&r),
            TokenVerdict::InsufficientScope(_)
        ));

        let r = Denial::NoContract.to_response(None);
        assert_eq!(r.status(), 403);
        assert!(r.headers().get(WWW_AUTHENTICATE).is_none());
        let body: serde_json::Value = serde_json::from_slice(r.body()).unwrap();
        assert_eq!(body["error"], "access_denied");
        assert!(matches!(
            classify_resource_response(&r),
            TokenVerdict::NotRejected
        ));

        let r = Denial::Unavailable {
            reason: "down",
            cause: None,
        }
        .to_response(None);
        assert_eq!(r.status(), 503);
        let r = Denial::InvalidRequest { reason: "x" }.to_response(None);
        assert_eq!(r.status(), 400);
        assert!(
            r.headers()[WWW_AUTHENTICATE]
                .to_str()
                .unwrap()
                .contains(r#"error="invalid_request""#)
        );
        // A realm that is not visible ASCII still gives a valid header.
        assert!(Denial::MissingToken.challenge(Some("réalm\n")).is_some());
    }

    proptest::proptest! {
        #[test]
        fn extraction_never_panics(header in proptest::collection::vec(proptest::prelude::any::<u8>(), 0..80), query in "[ -~]{0,80}", body in proptest::collection::vec(proptest::prelude::any::<u8>(), 0..80)) {
            let mut headers = HeaderMap::new();
            if let Ok(v) = HeaderValue::from_bytes(&header) {
                headers.insert(AUTHORIZATION, v);
            }
            headers.insert(CONTENT_TYPE, HeaderValue::from_static("application/x-www-form-urlencoded"));
            let uri: Uri = format!("/p?{}", query.replace(['#', ' ', '"', '<', '>', '\\', '^', '`', '{', '|', '}'], "")).parse().unwrap_or_default();
            let all = BearerLocations::header_only().allow_query().allow_form_body();
            let _ = extract_bearer_token_from_parts(&Method::POST, &uri, &headers, Some(&body), all);
        }
    }
}
