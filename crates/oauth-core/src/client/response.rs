//! Token responses (RFC 6749 §5.1) and error responses (§5.2), parsed leniently.

use std::fmt;
use std::time::{Duration, SystemTime};

use http::header::CONTENT_TYPE;
use http::{Response, StatusCode};
use serde_json::{Map, Value};

use crate::authorization_details::AuthorizationDetails;
use crate::encoding::form_parse;
use crate::error::{Error, ErrorCode, ErrorResponse, UnexpectedReason, UnexpectedResponse};
use crate::scope::Scope;
use crate::secret::{AccessToken, IdToken, RefreshToken};

/// The largest body the parsers read, in bytes. Adapters cap their reads at the same size.
pub const MAX_BODY_LEN: usize = 1024 * 1024;

/// The longest lifetime taken from `expires_in` (ten years); larger values are clamped so that
/// the absolute expiry never overflows.
const MAX_EXPIRES_IN: u64 = 10 * 365 * 24 * 3600;

/// The `token_type` of an issued token (RFC 6749 §7.1), compared case-insensitively.
#[derive(Clone, Debug, PartialEq, Eq)]
#[non_exhaustive]
pub enum TokenType {
    /// `Bearer` (RFC 6750), in any case: the Anypoint pages send `bearer`.
    Bearer,
    /// `DPoP` (RFC 9449).
    DPoP,
    /// `N_A` (RFC 8693 §2.2.1): the issued token is not an access token.
    NotApplicable,
    /// Any other type, lowercased.
    Other(String),
}

impl TokenType {
    /// The type as a `token_type` value (`Bearer`, `DPoP`, `N_A`, or the other type as read).
    pub fn as_str(&self) -> &str {
        match self {
            Self::Bearer => "Bearer",
            Self::DPoP => "DPoP",
            Self::NotApplicable => "N_A",
            Self::Other(t) => t,
        }
    }

    /// Parses a `token_type`, ignoring case.
    pub fn parse(text: &str) -> Self {
        if text.eq_ignore_ascii_case("bearer") {
            Self::Bearer
        } else if text.eq_ignore_ascii_case("dpop") {
            Self::DPoP
        } else if text.eq_ignore_ascii_case("n_a") {
            Self::NotApplicable
        } else {
            Self::Other(crate::error::sanitize(&text.to_ascii_lowercase(), 64))
        }
    }
}

/// A successful token response, with its expiry made absolute.
///
/// `Debug` shows which fields are present but no token. Fields the crate does not know are kept
/// in [`extra`](Self::extra); their values are not shown by `Debug` either, since servers put
/// all sorts of credentials there.
#[derive(Clone)]
pub struct TokenResponse {
    access_token: AccessToken,
    token_type: TokenType,
    expires_in: Option<Duration>,
    expires_at: Option<SystemTime>,
    refresh_token: Option<RefreshToken>,
    scope: Option<Scope>,
    id_token: Option<IdToken>,
    issued_token_type: Option<String>,
    authorization_details: Option<AuthorizationDetails>,
    extra: Map<String, Value>,
}

impl TokenResponse {
    /// A bearer token with unknown expiry, for seeding a cache with a token obtained elsewhere.
    pub fn new(access_token: AccessToken) -> Self {
        Self {
            access_token,
            token_type: TokenType::Bearer,
            expires_in: None,
            expires_at: None,
            refresh_token: None,
            scope: None,
            id_token: None,
            issued_token_type: None,
            authorization_details: None,
            extra: Map::new(),
        }
    }

    /// Sets the absolute expiry.
    pub fn with_expires_at(mut self, expires_at: SystemTime) -> Self {
        self.expires_at = Some(expires_at);
        self
    }

    /// Sets the refresh token.
    pub fn with_refresh_token(mut self, refresh_token: RefreshToken) -> Self {
        self.refresh_token = Some(refresh_token);
        self
    }

    /// The access token.
    pub fn access_token(&self) -> &AccessToken {
        &self.access_token
    }

    /// The token type. A missing `token_type` reads as [`TokenType::Bearer`]: RFC 6749 requires
    /// it, but servers that leave it out issue bearer tokens.
    pub fn token_type(&self) -> &TokenType {
        &self.token_type
    }

    /// `expires_in` as sent (a number or a numeric string), if it was sent.
    pub fn expires_in(&self) -> Option<Duration> {
        self.expires_in
    }

    /// When the token expires: the receive time plus `expires_in`. `None` when the server did
    /// not say (as on the Anypoint Exchange page); the caller's policy then decides.
    pub fn expires_at(&self) -> Option<SystemTime> {
        self.expires_at
    }

    /// The refresh token, if one was issued.
    pub fn refresh_token(&self) -> Option<&RefreshToken> {
        self.refresh_token.as_ref()
    }

    /// The granted scope, if the server said (RFC 6749 §5.1: omitted when it equals the request).
    pub fn scope(&self) -> Option<&Scope> {
        self.scope.as_ref()
    }

    /// The `authorization_details` granted (RFC 9396 §7), if the server sent them. The
    /// parser refuses a malformed value rather than drop it, so `None` means the member was
    /// absent (or `null`).
    pub fn authorization_details(&self) -> Option<&AuthorizationDetails> {
        self.authorization_details.as_ref()
    }

    /// The OpenID Connect ID token, issued when the `openid` scope was granted.
    pub fn id_token(&self) -> Option<&IdToken> {
        self.id_token.as_ref()
    }

    /// `issued_token_type` (RFC 8693 §2.2.1), for token exchange responses.
    pub fn issued_token_type(&self) -> Option<&str> {
        self.issued_token_type.as_deref()
    }

    /// Every field the crate does not interpret, as sent.
    pub fn extra(&self) -> &Map<String, Value> {
        &self.extra
    }
}

impl fmt::Debug for TokenResponse {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        f.debug_struct("TokenResponse")
            .field("access_token", &self.access_token)
            .field("token_type", &self.token_type)
            .field("expires_in", &self.expires_in)
            .field("expires_at", &self.expires_at)
            .field("refresh_token", &self.refresh_token)
            .field("scope", &self.scope)
            .field("id_token", &self.id_token)
            .field("issued_token_type", &self.issued_token_type)
            // Only the types: a payment's amounts and accounts are not for logs.
            .field(
                "authorization_details",
                &self.authorization_details.as_ref().map(|d| {
                    d.iter()
                        .map(|d| d.detail_type().to_owned())
                        .collect::<Vec<_>>()
                }),
            )
            .field("extra", &self.extra.keys().collect::<Vec<_>>())
            .finish()
    }
}

/// Parses a token endpoint response (RFC 6749 §5.1 and §5.2).
///
/// `received_at` is when the response arrived; the token's absolute expiry is computed from it.
///
/// Lenient where real servers differ from the RFC: `token_type` in any case, `expires_in` as a
/// number or a string or missing, `scope` as a string or an array, a form-encoded body instead
/// of JSON. Strict where it matters: an `error` member is an error whatever the status, and a
/// non-2xx status is never a token.
///
/// ```
/// use std::time::{Duration, SystemTime};
/// use oauth_core::parse_token_response;
///
/// let body = r#"{"access_token": "tok", "token_type": "bearer", "expires_in": "86399"}"#;
/// let response = http::Response::builder().status(200).body(body).unwrap();
/// let now = SystemTime::UNIX_EPOCH;
/// let token = parse_token_response(&response, now)?;
/// assert_eq!(token.expires_at(), Some(now + Duration::from_secs(86399)));
/// # Ok::<(), oauth_core::Error>(())
/// ```
pub fn parse_token_response<B: AsRef<[u8]>>(
    response: &Response<B>,
    received_at: SystemTime,
) -> Result<TokenResponse, Error> {
    let mut members = read_members(response)?;
    let unexpected = |reason| unexpected(response, reason);
    let mut take = |slot: Member| members.known[slot as usize].take();

    let access_token = match take(Member::AccessToken) {
        Some(Value::String(s)) if !s.is_empty() => {
            // RFC 6749 A.12 allows VSCHAR; a token is sent in a header, where a space, a
            // control character or non-ASCII text cannot go (RFC 6750 §2.1), so refuse it here
            // rather than cache a token that no request can carry.
            // A fold without early exit, so that the check over a long token vectorizes.
            let visible = s
                .bytes()
                .fold(true, |ok, b| ok & (b.wrapping_sub(0x21) < 0x5e));
            if !visible {
                return Err(unexpected(UnexpectedReason::InvalidField("access_token")));
            }
            s
        }
        Some(_) => return Err(unexpected(UnexpectedReason::InvalidField("access_token"))),
        None => return Err(unexpected(UnexpectedReason::MissingField("access_token"))),
    };
    let token_type = match take(Member::TokenType) {
        Some(Value::String(s)) => TokenType::parse(&s),
        None | Some(Value::Null) => TokenType::Bearer,
        Some(_) => return Err(unexpected(UnexpectedReason::InvalidField("token_type"))),
    };
    let access_token = AccessToken::with_type(access_token, token_type.clone());
    let expires_in = match take(Member::ExpiresIn) {
        None | Some(Value::Null) => None,
        Some(v) => Some(
            seconds(&v).ok_or_else(|| unexpected(UnexpectedReason::InvalidField("expires_in")))?,
        ),
    };
    let expires_at = expires_in.and_then(|d| received_at.checked_add(d));
    let refresh_token = optional_string(take(Member::RefreshToken), "refresh_token")
        .map_err(|f| unexpected(UnexpectedReason::InvalidField(f)))?
        .map(RefreshToken::new);
    let scope = match take(Member::Scope) {
        None | Some(Value::Null) => None,
        Some(Value::String(s)) => Some(Scope::parse(&s)),
        Some(Value::Array(items)) => {
            let mut tokens = Vec::with_capacity(items.len());
            for item in items {
                match item {
                    Value::String(s) => tokens.push(s),
                    _ => return Err(unexpected(UnexpectedReason::InvalidField("scope"))),
                }
            }
            Some(Scope::new(tokens))
        }
        Some(_) => return Err(unexpected(UnexpectedReason::InvalidField("scope"))),
    };
    let id_token = optional_string(take(Member::IdToken), "id_token")
        .map_err(|f| unexpected(UnexpectedReason::InvalidField(f)))?
        .map(IdToken::new);
    let issued_token_type = optional_string(take(Member::IssuedTokenType), "issued_token_type")
        .map_err(|f| unexpected(UnexpectedReason::InvalidField(f)))?;
    // RFC 9396 §7: read strictly; the member is not kept in `extra` as well.
    let authorization_details = match members.extra.remove("authorization_details") {
        None | Some(Value::Null) => None,
        Some(v) => Some(
            AuthorizationDetails::from_value(v)
                .map_err(|_| unexpected(UnexpectedReason::InvalidField("authorization_details")))?,
        ),
    };
    // Members kept for the caller: error_description and error_uri without an error.
    for (slot, name) in [
        (Member::ErrorDescription, "error_description"),
        (Member::ErrorUri, "error_uri"),
        (Member::Error, "error"),
    ] {
        if let Some(v) = members.known[slot as usize].take() {
            members.extra.insert(name.to_owned(), v);
        }
    }

    Ok(TokenResponse {
        access_token,
        token_type,
        expires_in,
        expires_at,
        refresh_token,
        scope,
        id_token,
        issued_token_type,
        authorization_details,
        extra: members.extra,
    })
}

/// The token response members the parser interprets, in slots.
#[derive(Clone, Copy)]
enum Member {
    AccessToken,
    TokenType,
    ExpiresIn,
    RefreshToken,
    Scope,
    IdToken,
    IssuedTokenType,
    Error,
    ErrorDescription,
    ErrorUri,
}

const MEMBERS: usize = 10;

impl Member {
    fn from_name(name: &str) -> Option<Self> {
        Some(match name {
            "access_token" => Self::AccessToken,
            "token_type" => Self::TokenType,
            "expires_in" => Self::ExpiresIn,
            "refresh_token" => Self::RefreshToken,
            "scope" => Self::Scope,
            "id_token" => Self::IdToken,
            "issued_token_type" => Self::IssuedTokenType,
            "error" => Self::Error,
            "error_description" => Self::ErrorDescription,
            "error_uri" => Self::ErrorUri,
            _ => return None,
        })
    }

    fn name(self) -> &'static str {
        match self {
            Self::AccessToken => "access_token",
            Self::TokenType => "token_type",
            Self::ExpiresIn => "expires_in",
            Self::RefreshToken => "refresh_token",
            Self::Scope => "scope",
            Self::IdToken => "id_token",
            Self::IssuedTokenType => "issued_token_type",
            Self::Error => "error",
            Self::ErrorDescription => "error_description",
            Self::ErrorUri => "error_uri",
        }
    }
}

/// A token endpoint's JSON object, read in one pass: known members into slots (no map
/// insertions and removals, no key allocations), the others into `extra`. As with a map, a
/// repeated member keeps its last value.
#[derive(Default)]
struct Members {
    known: [Option<Value>; MEMBERS],
    extra: Map<String, Value>,
}

impl Members {
    fn from_map(mut map: Map<String, Value>) -> Self {
        let mut known: [Option<Value>; MEMBERS] = Default::default();
        for (i, slot) in known.iter_mut().enumerate() {
            let member = ALL_MEMBERS[i];
            *slot = map.remove(member.name());
        }
        Self { known, extra: map }
    }
}

const ALL_MEMBERS: [Member; MEMBERS] = [
    Member::AccessToken,
    Member::TokenType,
    Member::ExpiresIn,
    Member::RefreshToken,
    Member::Scope,
    Member::IdToken,
    Member::IssuedTokenType,
    Member::Error,
    Member::ErrorDescription,
    Member::ErrorUri,
];

enum Key {
    Known(Member),
    Other(String),
}

impl<'de> serde::Deserialize<'de> for Key {
    fn deserialize<D: serde::Deserializer<'de>>(d: D) -> Result<Self, D::Error> {
        struct KeyVisitor;
        impl serde::de::Visitor<'_> for KeyVisitor {
            type Value = Key;
            fn expecting(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
                f.write_str("a member name")
            }
            fn visit_str<E: serde::de::Error>(self, name: &str) -> Result<Key, E> {
                Ok(match Member::from_name(name) {
                    Some(m) => Key::Known(m),
                    None => Key::Other(name.to_owned()),
                })
            }
        }
        d.deserialize_str(KeyVisitor)
    }
}

impl<'de> serde::Deserialize<'de> for Members {
    fn deserialize<D: serde::Deserializer<'de>>(d: D) -> Result<Self, D::Error> {
        struct MembersVisitor;
        impl<'de> serde::de::Visitor<'de> for MembersVisitor {
            type Value = Members;
            fn expecting(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
                f.write_str("a JSON object")
            }
            fn visit_map<A: serde::de::MapAccess<'de>>(
                self,
                mut access: A,
            ) -> Result<Members, A::Error> {
                let mut members = Members::default();
                // A member named twice (at any depth) is refused: see `json`.
                let twice = || serde::de::Error::custom("a member is named twice");
                while let Some(key) = access.next_key::<Key>()? {
                    let crate::json::StrictValue(value) = access.next_value()?;
                    match key {
                        Key::Known(m) => {
                            if members.known[m as usize].replace(value).is_some() {
                                return Err(twice());
                            }
                        }
                        Key::Other(name) => {
                            if members.extra.insert(name, value).is_some() {
                                return Err(twice());
                            }
                        }
                    }
                }
                Ok(members)
            }
        }
        d.deserialize_map(MembersVisitor)
    }
}

/// Like [`parse_object`], for the token endpoint: the body's members (JSON read in one pass,
/// or form-encoded), an RFC 6749 §5.2 error whatever the status, and no token from a non-2xx.
fn read_members<B: AsRef<[u8]>>(response: &Response<B>) -> Result<Members, Error> {
    let body = response.body().as_ref();
    if body.len() > MAX_BODY_LEN {
        return Err(unexpected(
            response,
            UnexpectedReason::BodyTooLarge {
                limit: MAX_BODY_LEN,
            },
        ));
    }
    let members = if is_form(content_type(response)) {
        decode_object(content_type(response), body).map(Members::from_map)
    } else {
        serde_json::from_slice::<Members>(body).ok()
    };
    let Some(members) = members else {
        let reason = if response.status().is_success() {
            UnexpectedReason::Unparseable
        } else {
            UnexpectedReason::Status
        };
        return Err(unexpected(response, reason));
    };
    if let Some(Value::String(code)) = &members.known[Member::Error as usize] {
        let text = |m: Member| match &members.known[m as usize] {
            Some(Value::String(s)) => Some(s.as_str()),
            _ => None,
        };
        return Err(Error::Server(ErrorResponse::new(
            Some(response.status()),
            ErrorCode::parse(code),
            text(Member::ErrorDescription),
            text(Member::ErrorUri),
        )));
    }
    match &members.known[Member::Error as usize] {
        // An `error` that is not a string (an object, a number) is still an error, whatever
        // the status: never read the rest as a token.
        None | Some(Value::Null) => {}
        Some(_) => {
            return Err(unexpected(
                response,
                UnexpectedReason::InvalidField("error"),
            ));
        }
    }
    // RFC 6749 §5.1: a token comes with 200 OK; a 201, 203 or 206 is not a token response.
    if response.status() != StatusCode::OK {
        return Err(unexpected(response, UnexpectedReason::Status));
    }
    Ok(members)
}

pub(crate) fn is_form(content_type: Option<&str>) -> bool {
    content_type.is_some_and(|ct| {
        ct.split(';').next().is_some_and(|m| {
            m.trim()
                .eq_ignore_ascii_case("application/x-www-form-urlencoded")
        })
    })
}

fn optional_string(
    value: Option<Value>,
    name: &'static str,
) -> Result<Option<String>, &'static str> {
    match value {
        None | Some(Value::Null) => Ok(None),
        Some(Value::String(s)) if s.is_empty() => Ok(None),
        Some(Value::String(s)) => Ok(Some(s)),
        Some(_) => Err(name),
    }
}

/// Reads a non-negative number of seconds from a JSON number or a numeric string, clamped to
/// ten years. Fractions are dropped.
pub(crate) fn seconds(value: &Value) -> Option<Duration> {
    let secs = match value {
        Value::Number(n) => match n.as_u64() {
            Some(u) => u,
            None => {
                let f = n.as_f64()?;
                if f.is_nan() || f < 0.0 {
                    return None;
                }
                // Saturating float-to-int conversion; the clamp below bounds it anyway.
                f as u64
            }
        },
        Value::String(s) => {
            let s = s.trim();
            match s.parse::<u64>() {
                Ok(u) => u,
                Err(_) => {
                    let f = s.parse::<f64>().ok()?;
                    if f.is_nan() || f < 0.0 {
                        return None;
                    }
                    f as u64
                }
            }
        }
        _ => return None,
    };
    Some(Duration::from_secs(secs.min(MAX_EXPIRES_IN)))
}

/// The `Content-Type` of a response, if it is valid text.
pub(crate) fn content_type<B>(response: &Response<B>) -> Option<&str> {
    response
        .headers()
        .get(CONTENT_TYPE)
        .and_then(|v| v.to_str().ok())
}

pub(crate) fn unexpected<B: AsRef<[u8]>>(
    response: &Response<B>,
    reason: UnexpectedReason,
) -> Error {
    Error::UnexpectedResponse(UnexpectedResponse::new(
        response.status(),
        content_type(response),
        response.body().as_ref(),
        reason,
    ))
}

/// Whether `value`, handed to us by a server, may later go into a header, a URL, a terminal
/// or a file name: 1 to `max` bytes of RFC 6749 Appendix A's VSCHAR (`%x20-7E`), or of
/// `%x21-7E` when `spaces` is false (a URI, a token). No CR/LF, no control character, nothing
/// outside ASCII, nothing unbounded.
pub(crate) fn is_identifier(value: &str, max: usize, spaces: bool) -> bool {
    let low = if spaces { 0x20 } else { 0x21 };
    !value.is_empty() && value.len() <= max && value.bytes().all(|b| (low..=0x7e).contains(&b))
}

/// Takes member `name` out of `map` when it is absent, `null`, or a string that
/// [`is_identifier`]; `Err(name)` for anything else (a number, CR/LF, too long).
pub(crate) fn take_identifier(
    map: &mut Map<String, Value>,
    name: &'static str,
    max: usize,
    spaces: bool,
) -> Result<Option<String>, &'static str> {
    match map.remove(name) {
        None | Some(Value::Null) => Ok(None),
        Some(Value::String(s)) if is_identifier(&s, max, spaces) => Ok(Some(s)),
        Some(_) => Err(name),
    }
}

/// Reads a JSON object (or a form-encoded body) from an OAuth endpoint's response, turning
/// an RFC 6749 §5.2 error, whatever the status, into [`Error::Server`], and a non-2xx status
/// without one into [`Error::UnexpectedResponse`].
pub(crate) fn parse_object<B: AsRef<[u8]>>(
    response: &Response<B>,
) -> Result<Map<String, Value>, Error> {
    let body = response.body().as_ref();
    if body.len() > MAX_BODY_LEN {
        return Err(unexpected(
            response,
            UnexpectedReason::BodyTooLarge {
                limit: MAX_BODY_LEN,
            },
        ));
    }
    let Some(map) = decode_object(content_type(response), body) else {
        let reason = if response.status().is_success() {
            UnexpectedReason::Unparseable
        } else {
            UnexpectedReason::Status
        };
        return Err(unexpected(response, reason));
    };
    if let Some(error) = error_response(&map, response.status()) {
        return Err(Error::Server(error));
    }
    if !response.status().is_success() {
        return Err(unexpected(response, UnexpectedReason::Status));
    }
    Ok(map)
}

/// Decodes a body as a JSON object, or as form pairs when the server says it is form-encoded
/// (some servers answer token requests that way).
pub(crate) fn decode_object(content_type: Option<&str>, body: &[u8]) -> Option<Map<String, Value>> {
    if is_form(content_type) {
        let text = std::str::from_utf8(body).ok()?;
        let mut map = Map::new();
        for (name, value) in form_parse(text.trim()) {
            // A parameter given twice is refused, as a JSON member named twice is.
            if map.insert(name, Value::String(value)).is_some() {
                return None;
            }
        }
        return Some(map);
    }
    // A member named twice is refused: see `json`.
    crate::json::object_from_slice(body)
}

/// An RFC 6749 §5.2 error, if `map` carries a string `error`.
pub(crate) fn error_response(
    map: &Map<String, Value>,
    status: StatusCode,
) -> Option<ErrorResponse> {
    let Some(Value::String(code)) = map.get("error") else {
        return None;
    };
    let text = |name| match map.get(name) {
        Some(Value::String(s)) => Some(s.as_str()),
        _ => None,
    };
    Some(ErrorResponse::new(
        Some(status),
        ErrorCode::parse(code),
        text("error_description"),
        text("error_uri"),
    ))
}

#[cfg(test)]
mod tests {
    use super::*;

    fn response(status: u16, content_type: Option<&str>, body: &str) -> Response<Vec<u8>> {
        let mut b = Response::builder().status(status);
        if let Some(ct) = content_type {
            b = b.header(CONTENT_TYPE, ct);
        }
        b.body(body.as_bytes().to_vec()).unwrap()
    }

    fn now() -> SystemTime {
        SystemTime::UNIX_EPOCH + Duration::from_secs(1_700_000_000)
    }

    #[test]
    fn a_member_named_twice_is_refused() {
        for body in [
            r#"{"access_token":"a","access_token":"b","token_type":"Bearer"}"#,
            r#"{"access_token":"a","token_type":"Bearer","token_type":"DPoP"}"#,
            r#"{"access_token":"a","token_type":"Bearer","x":1,"x":2}"#,
            r#"{"access_token":"a","token_type":"Bearer","authorization_details":[{"t":1,"t":2}]}"#,
            r#"{"error":"invalid_grant","error":"x"}"#,
        ] {
            assert!(
                parse_token_response(&response(200, Some("application/json"), body), now())
                    .is_err(),
                "{body}"
            );
        }
        let form = "access_token=a&token_type=Bearer&access_token=b";
        assert!(
            parse_token_response(
                &response(200, Some("application/x-www-form-urlencoded"), form),
                now()
            )
            .is_err()
        );
    }

    #[test]
    fn expires_in_forms() {
        let cases = [
            (r#"{"access_token":"t","expires_in":3600}"#, Some(3600)),
            (r#"{"access_token":"t","expires_in":"86399"}"#, Some(86399)),
            (r#"{"access_token":"t","expires_in":" 60 "}"#, Some(60)),
            (r#"{"access_token":"t","expires_in":59.9}"#, Some(59)),
            (r#"{"access_token":"t","expires_in":null}"#, None),
            (r#"{"access_token":"t"}"#, None),
            (
                r#"{"access_token":"t","expires_in":1e300}"#,
                Some(MAX_EXPIRES_IN),
            ),
        ];
        for (body, expected) in cases {
            let token = parse_token_response(&response(200, Some("application/json"), body), now())
                .unwrap();
            assert_eq!(token.expires_in().map(|d| d.as_secs()), expected, "{body}");
            assert_eq!(
                token.expires_at(),
                expected.map(|s| now() + Duration::from_secs(s)),
                "{body}"
            );
        }
        for body in [
            r#"{"access_token":"t","expires_in":-1}"#,
            r#"{"access_token":"t","expires_in":"soon"}"#,
            r#"{"access_token":"t","expires_in":true}"#,
            r#"{"access_token":"t","expires_in":"NaN"}"#,
        ] {
            let err = parse_token_response(&response(200, None, body), now()).unwrap_err();
            assert!(
                matches!(&err, Error::UnexpectedResponse(u) if *u.reason() == UnexpectedReason::InvalidField("expires_in")),
                "{body}: {err:?}"
            );
        }
    }

    #[test]
    fn token_type_any_case() {
        for (text, expected) in [
            ("Bearer", TokenType::Bearer),
            ("bearer", TokenType::Bearer),
            ("BEARER", TokenType::Bearer),
            ("DPoP", TokenType::DPoP),
            ("N_A", TokenType::NotApplicable),
            ("MAC", TokenType::Other("mac".into())),
        ] {
            let body = format!(r#"{{"access_token":"t","token_type":"{text}"}}"#);
            let token = parse_token_response(&response(200, None, &body), now()).unwrap();
            assert_eq!(token.token_type(), &expected);
        }
    }

    #[test]
    fn authorization_details_read_strictly() {
        let ok = r#"{"access_token":"t","authorization_details":[{"type":"payment_initiation","actions":["initiate"]}]}"#;
        let token = parse_token_response(&response(200, None, ok), now()).unwrap();
        let details = token.authorization_details().unwrap();
        assert!(details.contains_type("payment_initiation"));
        assert_eq!(details.iter().next().unwrap().actions_list(), ["initiate"]);
        assert!(!token.extra().contains_key("authorization_details"));
        // Debug shows the types, not the values.
        assert!(format!("{token:?}").contains("payment_initiation"));
        for absent in [
            r#"{"access_token":"t"}"#,
            r#"{"access_token":"t","authorization_details":null}"#,
        ] {
            let token = parse_token_response(&response(200, None, absent), now()).unwrap();
            assert!(token.authorization_details().is_none());
        }
        for bad in [
            r#"{"access_token":"t","authorization_details":{"type":"a"}}"#,
            r#"{"access_token":"t","authorization_details":"[{\"type\":\"a\"}]"}"#,
            r#"{"access_token":"t","authorization_details":[{"type":""}]}"#,
            r#"{"access_token":"t","authorization_details":[{"actions":["a"]}]}"#,
        ] {
            match parse_token_response(&response(200, None, bad), now()) {
                Err(Error::UnexpectedResponse(e)) => assert_eq!(
                    e.reason(),
                    &UnexpectedReason::InvalidField("authorization_details"),
                    "{bad}"
                ),
                other => panic!("{bad}: {other:?}"),
            }
        }
    }

    #[test]
    fn full_response_and_extras() {
        let body = r#"{"access_token":"at","token_type":"Bearer","expires_in":3600,
            "refresh_token":"rt","scope":"openid profile","id_token":"h.p.s",
            "issued_token_type":"urn:ietf:params:oauth:token-type:access_token","custom":{"a":1}}"#;
        let token = parse_token_response(
            &response(200, Some("application/json;charset=UTF-8"), body),
            now(),
        )
        .unwrap();
        assert_eq!(token.access_token().expose_secret(), "at");
        assert_eq!(token.refresh_token().unwrap().expose_secret(), "rt");
        assert_eq!(token.scope().unwrap().as_str(), "openid profile");
        assert_eq!(token.id_token().unwrap().expose_secret(), "h.p.s");
        assert_eq!(
            token.issued_token_type(),
            Some("urn:ietf:params:oauth:token-type:access_token")
        );
        assert_eq!(
            token.extra().get("custom"),
            Some(&serde_json::json!({"a": 1}))
        );
        let debug = format!("{token:?}");
        assert!(
            !debug.contains("\"at\"") && !debug.contains("rt\"") && !debug.contains("h.p.s"),
            "{debug}"
        );
    }

    #[test]
    fn scope_as_array() {
        let body = r#"{"access_token":"t","scope":["a","b"]}"#;
        let token = parse_token_response(&response(200, None, body), now()).unwrap();
        assert_eq!(token.scope().unwrap().as_str(), "a b");
    }

    #[test]
    fn form_encoded_token_response() {
        let body = "access_token=e72e16c7e42f292c6912e7710c838347ae178b4a&scope=repo%2Cgist&token_type=bearer";
        let token = parse_token_response(
            &response(200, Some("application/x-www-form-urlencoded"), body),
            now(),
        )
        .unwrap();
        assert_eq!(
            token.access_token().expose_secret(),
            "e72e16c7e42f292c6912e7710c838347ae178b4a"
        );
        assert_eq!(token.token_type(), &TokenType::Bearer);
        assert_eq!(token.scope().unwrap().as_str(), "repo,gist");
    }

    #[test]
    fn errors_by_status_and_body() {
        // RFC 6749 §5.2 example.
        let err = parse_token_response(
            &response(
                400,
                Some("application/json"),
                r#"{"error":"invalid_request"}"#,
            ),
            now(),
        )
        .unwrap_err();
        let Error::Server(e) = &err else {
            panic!("{err:?}")
        };
        assert_eq!(e.code(), &ErrorCode::InvalidRequest);
        assert_eq!(e.status(), Some(StatusCode::BAD_REQUEST));

        // An error with a 200 status is still an error.
        let err = parse_token_response(
            &response(
                200,
                Some("application/json"),
                r#"{"error":"invalid_client","error_description":"Bad\nsecret","error_uri":"https://e/x"}"#,
            ),
            now(),
        )
        .unwrap_err();
        let Error::Server(e) = &err else {
            panic!("{err:?}")
        };
        assert_eq!(e.code(), &ErrorCode::InvalidClient);
        assert_eq!(e.description(), Some("Bad\\nsecret"));
        assert_eq!(
            err.to_string(),
            "the server refused the request: invalid_client (HTTP 200): Bad\\nsecret (see https://e/x)"
        );

        // Form-encoded error.
        let err = parse_token_response(
            &response(
                400,
                Some("application/x-www-form-urlencoded"),
                "error=invalid_grant&error_description=expired",
            ),
            now(),
        )
        .unwrap_err();
        assert_eq!(
            err.error_response().unwrap().code(),
            &ErrorCode::InvalidGrant
        );

        // HTML error page.
        let err = parse_token_response(
            &response(502, Some("text/html"), "<html>Bad Gateway</html>"),
            now(),
        )
        .unwrap_err();
        let Error::UnexpectedResponse(u) = &err else {
            panic!("{err:?}")
        };
        assert_eq!(u.reason(), &UnexpectedReason::Status);
        assert_eq!(u.body_excerpt(), Some("<html>Bad Gateway</html>"));

        // HTML with a 200.
        let err = parse_token_response(
            &response(200, Some("text/html"), "<html>login</html>"),
            now(),
        )
        .unwrap_err();
        let Error::UnexpectedResponse(u) = &err else {
            panic!("{err:?}")
        };
        assert_eq!(u.reason(), &UnexpectedReason::Unparseable);
        assert_eq!(u.body_excerpt(), None);

        // A JSON error without `error`, such as the Dataloy 401 body.
        let err = parse_token_response(
            &response(
                401,
                Some("application/json"),
                r#"{"statusCode":401,"message":"Token expired."}"#,
            ),
            now(),
        )
        .unwrap_err();
        let Error::UnexpectedResponse(u) = &err else {
            panic!("{err:?}")
        };
        assert_eq!(u.reason(), &UnexpectedReason::Status);
        assert!(u.body_excerpt().unwrap().contains("Token expired."));

        // Missing or empty token.
        for body in [
            r#"{"token_type":"bearer"}"#,
            r#"{"access_token":""}"#,
            r#"{"access_token":5}"#,
            "[]",
            "\"x\"",
        ] {
            assert!(
                parse_token_response(&response(200, None, body), now()).is_err(),
                "{body}"
            );
        }

        // Too large.
        let big = format!(r#"{{"access_token":"{}"}}"#, "a".repeat(MAX_BODY_LEN));
        let err = parse_token_response(&response(200, None, &big), now()).unwrap_err();
        let Error::UnexpectedResponse(u) = &err else {
            panic!("{err:?}")
        };
        assert_eq!(
            u.reason(),
            &UnexpectedReason::BodyTooLarge {
                limit: MAX_BODY_LEN
            }
        );
    }

    proptest::proptest! {
        #[test]
        fn never_panics(body in proptest::collection::vec(proptest::prelude::any::<u8>(), 0..512), status in 100u16..600, form in proptest::prelude::any::<bool>()) {
            let ct = if form { "application/x-www-form-urlencoded" } else { "application/json" };
            let resp = Response::builder().status(status).header(CONTENT_TYPE, ct).body(body).unwrap();
            let _ = parse_token_response(&resp, now());
        }

        #[test]
        fn never_panics_on_json_shapes(at in proptest::option::of("[a-z]{0,4}"), ei in proptest::option::of(proptest::prelude::any::<i64>()), tt in proptest::option::of("\\PC{0,8}")) {
            let mut m = Map::new();
            if let Some(at) = at { m.insert("access_token".into(), Value::String(at)); }
            if let Some(ei) = ei { m.insert("expires_in".into(), Value::from(ei)); }
            if let Some(tt) = tt { m.insert("token_type".into(), Value::String(tt)); }
            let resp = Response::builder().status(200).body(Value::Object(m).to_string()).unwrap();
            let _ = parse_token_response(&resp, now());
            let _ = parse_token_response(&resp, SystemTime::UNIX_EPOCH + Duration::from_secs(i64::MAX as u64 - 10));
        }
    }
}
