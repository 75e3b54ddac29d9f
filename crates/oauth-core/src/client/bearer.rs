//! Using a token at a resource server (RFC 6750): the `Authorization: Bearer` header, the
//! `WWW-Authenticate: Bearer` challenge, and what a 401 means for the token.

use http::header::{AUTHORIZATION, WWW_AUTHENTICATE};
use http::{HeaderMap, HeaderValue, Request, Response, StatusCode};

use crate::error::{Error, ErrorCode, sanitize};
use crate::response::content_type;
use crate::scope::Scope;
use crate::secret::AccessToken;

/// Sets `Authorization: Bearer <token>` on `request` (RFC 6750 §2.1), marked sensitive so that
/// `Debug` output of the request hides it. An existing `Authorization` header is replaced.
///
/// ```
/// use oauth_core::{AccessToken, authorize_request};
///
/// let mut request = http::Request::get("https://api.domain.com/labels").body(()).unwrap();
/// authorize_request(&mut request, &AccessToken::new("YOUR_ACCESS_TOKEN"))?;
/// let header = &request.headers()["authorization"];
/// assert_eq!(header, "Bearer YOUR_ACCESS_TOKEN");
/// assert!(header.is_sensitive());
/// # Ok::<(), oauth_core::Error>(())
/// ```
pub fn authorize_request<B>(request: &mut Request<B>, token: &AccessToken) -> Result<(), Error> {
    let value = bearer_header(token)?;
    request.headers_mut().insert(AUTHORIZATION, value);
    Ok(())
}

/// The sensitive header value `Bearer <token>`.
///
/// A token issued with another `token_type` (`DPoP`, `mac`, `N_A`, ...) is refused with
/// [`Error::UnsupportedTokenType`]: RFC 6749 §7.1 says a client must not use a token whose
/// type it does not understand, and a DPoP-bound token sent as bearer would fail anyway.
pub fn bearer_header(token: &AccessToken) -> Result<HeaderValue, Error> {
    if token.token_type() != &crate::response::TokenType::Bearer {
        return Err(Error::UnsupportedTokenType(token.token_type().clone()));
    }
    let mut text = zeroize::Zeroizing::new(String::with_capacity(7 + token.expose_secret().len()));
    text.push_str("Bearer ");
    text.push_str(token.expose_secret());
    let mut value = HeaderValue::from_str(&text).map_err(|_| Error::InvalidHeaderValue {
        what: "access token",
    })?;
    value.set_sensitive(true);
    Ok(value)
}

/// A `WWW-Authenticate: Bearer` challenge (RFC 6750 §3).
#[derive(Clone, Debug, Default, PartialEq, Eq)]
pub struct BearerChallenge {
    realm: Option<String>,
    scope: Option<Scope>,
    error: Option<ErrorCode>,
    error_description: Option<String>,
    error_uri: Option<String>,
}

impl BearerChallenge {
    /// `realm`, if given.
    pub fn realm(&self) -> Option<&str> {
        self.realm.as_deref()
    }

    /// `scope`: the scopes the resource needs, if given.
    pub fn scope(&self) -> Option<&Scope> {
        self.scope.as_ref()
    }

    /// `error`, such as [`ErrorCode::InvalidToken`] or [`ErrorCode::InsufficientScope`].
    pub fn error(&self) -> Option<&ErrorCode> {
        self.error.as_ref()
    }

    /// `error_description`, if given.
    pub fn error_description(&self) -> Option<&str> {
        self.error_description.as_deref()
    }

    /// `error_uri`, if given.
    pub fn error_uri(&self) -> Option<&str> {
        self.error_uri.as_deref()
    }
}

/// The first `Bearer` challenge in the `WWW-Authenticate` headers, if any.
///
/// Handles several challenges in one header (`Basic realm="x", Bearer error="invalid_token"`)
/// and in several headers, quoted strings with escapes, and any case of the scheme name.
///
/// ```
/// use oauth_core::ErrorCode;
/// use oauth_core::client::bearer::bearer_challenge;
///
/// let mut headers = http::HeaderMap::new();
/// headers.insert("www-authenticate", r#"Bearer realm="example", error="invalid_token", error_description="The access token expired""#.parse().unwrap());
/// let challenge = bearer_challenge(&headers).unwrap();
/// assert_eq!(challenge.error(), Some(&ErrorCode::InvalidToken));
/// assert_eq!(challenge.error_description(), Some("The access token expired"));
/// ```
pub fn bearer_challenge(headers: &HeaderMap) -> Option<BearerChallenge> {
    headers
        .get_all(WWW_AUTHENTICATE)
        .iter()
        .filter_map(|v| std::str::from_utf8(v.as_bytes()).ok())
        .flat_map(parse_challenges)
        .find(|(scheme, _)| scheme.eq_ignore_ascii_case("bearer"))
        .map(|(_, params)| {
            let mut challenge = BearerChallenge::default();
            for (name, value) in params {
                match name.to_ascii_lowercase().as_str() {
                    "realm" => challenge.realm = Some(sanitize(&value, 256)),
                    "scope" => challenge.scope = Some(Scope::parse(&sanitize(&value, 1024))),
                    "error" => challenge.error = Some(ErrorCode::parse(&value)),
                    "error_description" => {
                        challenge.error_description = Some(sanitize(&value, 512))
                    }
                    "error_uri" => challenge.error_uri = Some(sanitize(&value, 256)),
                    _ => {}
                }
            }
            challenge
        })
}

/// Splits a `WWW-Authenticate` value into challenges (RFC 9110 §11.6.1): a scheme followed by
/// either a token68 (dropped here) or comma-separated `name=value` parameters.
fn parse_challenges(input: &str) -> Vec<(String, Vec<(String, String)>)> {
    let mut cursor = Cursor {
        s: input.as_bytes(),
        i: 0,
    };
    let mut out: Vec<(String, Vec<(String, String)>)> = Vec::new();
    loop {
        cursor.skip(|b| b == b' ' || b == b'\t' || b == b',');
        if cursor.done() {
            break;
        }
        let scheme = cursor.token();
        if scheme.is_empty() {
            // Not a token character: skip it so that the loop always advances.
            cursor.i += 1;
            continue;
        }
        let mut params = Vec::new();
        loop {
            cursor.skip(|b| b == b' ' || b == b'\t');
            let start = cursor.i;
            let name = cursor.token();
            cursor.skip(|b| b == b' ' || b == b'\t');
            if name.is_empty() || cursor.peek() != Some(b'=') {
                // The next challenge's scheme (or junk): leave it for the outer loop.
                cursor.i = start;
                break;
            }
            cursor.i += 1;
            cursor.skip(|b| b == b' ' || b == b'\t');
            let value = if cursor.peek() == Some(b'"') {
                cursor.quoted()
            } else {
                let v = cursor.token();
                if v.is_empty() {
                    // A token68 such as `abc==`: skip to the next comma.
                    cursor.skip(|b| b != b',');
                    break;
                }
                v
            };
            params.push((name, value));
            cursor.skip(|b| b == b' ' || b == b'\t');
            if cursor.peek() == Some(b',') {
                cursor.i += 1;
            } else {
                break;
            }
        }
        out.push((scheme, params));
    }
    out
}

struct Cursor<'a> {
    s: &'a [u8],
    i: usize,
}

impl Cursor<'_> {
    fn done(&self) -> bool {
        self.i >= self.s.len()
    }

    fn peek(&self) -> Option<u8> {
        self.s.get(self.i).copied()
    }

    fn skip(&mut self, pred: impl Fn(u8) -> bool) {
        while self.peek().is_some_and(&pred) {
            self.i += 1;
        }
    }

    /// Reads a token (RFC 9110 §5.6.2 `tchar`s).
    fn token(&mut self) -> String {
        let start = self.i;
        self.skip(|b| b.is_ascii_alphanumeric() || b"!#$%&'*+-.^_`|~".contains(&b) || b == b'/');
        String::from_utf8_lossy(self.s.get(start..self.i).unwrap_or_default()).into_owned()
    }

    /// Reads a quoted string, starting at the opening quote, undoing `\` escapes. An
    /// unterminated string runs to the end of the input.
    fn quoted(&mut self) -> String {
        self.i += 1;
        let mut out = Vec::new();
        while let Some(b) = self.peek() {
            self.i += 1;
            match b {
                b'"' => break,
                b'\\' => {
                    if let Some(next) = self.peek() {
                        out.push(next);
                        self.i += 1;
                    }
                }
                _ => out.push(b),
            }
        }
        String::from_utf8_lossy(&out).into_owned()
    }
}

/// What a resource server's answer says about the token that was sent with the request.
#[derive(Clone, Debug, PartialEq, Eq)]
#[non_exhaustive]
pub enum TokenVerdict {
    /// The answer is not about the token (any status but 401, and 403 other than
    /// `insufficient_scope`).
    NotRejected,
    /// The token was rejected as expired, revoked or invalid: drop it, get a new token, and
    /// retry the request once.
    Rejected(Rejection),
    /// The token is valid but lacks a scope (RFC 6750 §3.1, 403 `insufficient_scope`): a new
    /// token with the same scopes will not help.
    InsufficientScope(BearerChallenge),
    /// A 401 that carries no sign that the token is the problem (such as
    /// `error="invalid_request"`): retrying with a new token would not help.
    Unauthorized(Option<BearerChallenge>),
}

/// How a 401 showed that the token was rejected.
#[derive(Clone, Debug, PartialEq, Eq)]
#[non_exhaustive]
pub enum Rejection {
    /// A `WWW-Authenticate: Bearer` challenge with `error="invalid_token"`, or with no error
    /// (RFC 6750 §3.1), answering a request that carried a token.
    Challenge(BearerChallenge),
    /// No challenge, but a body that says the token expired or is invalid, such as Dataloy's
    /// `{"statusCode": 401, "message": "Token expired."}`.
    Body {
        /// The message, cut to a safe length.
        message: String,
    },
}

/// Phrases in a 401 body that mean the token itself is the problem.
const REJECTION_PHRASES: &[&str] = &[
    "token expired",
    "expired token",
    "token has expired",
    "token is expired",
    "jwt expired",
    "invalid token",
    "token is invalid",
    "invalid_token",
    "token revoked",
    "token has been revoked",
];

/// How much of a 401 body is searched for [`REJECTION_PHRASES`].
const BODY_SCAN_LEN: usize = 4096;

/// Classifies a resource server's answer to a request that carried a bearer token.
///
/// ```
/// use oauth_core::client::bearer::{TokenVerdict, classify_resource_response};
///
/// // Dataloy's documented answer to an expired token.
/// let body = r#"{"statusCode": 401, "statusText": "Unauthorized", "message": "Token expired."}"#;
/// let response = http::Response::builder().status(401).body(body).unwrap();
/// assert!(matches!(classify_resource_response(&response), TokenVerdict::Rejected(_)));
/// ```
pub fn classify_resource_response<B: AsRef<[u8]>>(response: &Response<B>) -> TokenVerdict {
    let challenge = bearer_challenge(response.headers());
    match response.status() {
        StatusCode::UNAUTHORIZED => {}
        StatusCode::FORBIDDEN => {
            return match challenge {
                Some(c) if c.error() == Some(&ErrorCode::InsufficientScope) => {
                    TokenVerdict::InsufficientScope(c)
                }
                _ => TokenVerdict::NotRejected,
            };
        }
        _ => return TokenVerdict::NotRejected,
    }
    if let Some(challenge) = challenge {
        return match challenge.error() {
            None | Some(ErrorCode::InvalidToken) => {
                TokenVerdict::Rejected(Rejection::Challenge(challenge))
            }
            Some(ErrorCode::InsufficientScope) => TokenVerdict::InsufficientScope(challenge),
            Some(_) => TokenVerdict::Unauthorized(Some(challenge)),
        };
    }
    match body_rejection(content_type(response), response.body().as_ref()) {
        Some(message) => TokenVerdict::Rejected(Rejection::Body { message }),
        None => TokenVerdict::Unauthorized(None),
    }
}

/// Looks for a sign in a 401 body that the token expired or is invalid. Reads the JSON
/// `message`, `error`, `error_description` or `detail` when the body parses; otherwise (the
/// Dataloy page's sample itself is cut short) searches the start of the text.
fn body_rejection(content_type: Option<&str>, body: &[u8]) -> Option<String> {
    let head = body.get(..BODY_SCAN_LEN).unwrap_or(body);
    let text = String::from_utf8_lossy(head);
    let matches = |t: &str| {
        let lower = t.to_ascii_lowercase();
        REJECTION_PHRASES.iter().any(|p| lower.contains(p))
    };
    if let Some(map) = crate::response::decode_object(content_type, body) {
        for field in [
            "message",
            "error",
            "error_description",
            "detail",
            "statusText",
        ] {
            if let Some(serde_json::Value::String(s)) = map.get(field)
                && matches(s)
            {
                return Some(sanitize(s, 256));
            }
        }
        return None;
    }
    matches(&text).then(|| sanitize(text.trim(), 256))
}

#[cfg(test)]
mod tests {
    use super::*;

    fn response<'a>(status: u16, challenge: Option<&str>, body: &'a str) -> Response<&'a str> {
        let mut b = Response::builder().status(status);
        if let Some(c) = challenge {
            b = b.header(WWW_AUTHENTICATE, c);
        }
        b.body(body).unwrap()
    }

    #[test]
    fn challenge_parsing() {
        // (header, expected (realm, error, error_description) of the Bearer challenge)
        type Expected<'a> = Option<(&'a str, Option<&'a str>, Option<&'a str>)>;
        let cases: &[(&str, Expected<'_>)] = &[
            // RFC 6750 §3 examples.
            (r#"Bearer realm="example""#, Some(("example", None, None))),
            (
                r#"Bearer realm="example", error="invalid_token", error_description="The access token expired""#,
                Some((
                    "example",
                    Some("invalid_token"),
                    Some("The access token expired"),
                )),
            ),
            (
                r#"Basic realm="b", Bearer realm="x", error="insufficient_scope", scope="a b""#,
                Some(("x", Some("insufficient_scope"), None)),
            ),
            (
                r#"Negotiate abc==, bearer realm=r"#,
                Some(("r", None, None)),
            ),
            (
                r#"Bearer realm="q\"uote", error=invalid_token"#,
                Some(("q\"uote", Some("invalid_token"), None)),
            ),
            (r#"Basic realm="only basic""#, None),
            (
                r#"Bearer realm="unterminated"#,
                Some(("unterminated", None, None)),
            ),
            ("", None),
        ];
        for (header, expected) in cases {
            let mut headers = HeaderMap::new();
            headers.insert(WWW_AUTHENTICATE, header.parse().unwrap());
            let got = bearer_challenge(&headers);
            match expected {
                None => assert_eq!(got, None, "{header}"),
                Some((realm, error, desc)) => {
                    let got = got.unwrap_or_else(|| panic!("no challenge in {header}"));
                    assert_eq!(got.realm(), Some(*realm), "{header}");
                    assert_eq!(got.error().map(|e| e.as_str()), *error, "{header}");
                    assert_eq!(got.error_description(), *desc, "{header}");
                }
            }
        }
        let mut headers = HeaderMap::new();
        headers.append(WWW_AUTHENTICATE, "Basic realm=\"a\"".parse().unwrap());
        headers.append(
            WWW_AUTHENTICATE,
            "Bearer scope=\"read write\"".parse().unwrap(),
        );
        assert_eq!(
            bearer_challenge(&headers)
                .unwrap()
                .scope()
                .unwrap()
                .as_str(),
            "read write"
        );
    }

    #[test]
    fn verdicts() {
        // The Dataloy page's body, cut short exactly as the page shows it.
        let dataloy = r#"{
    "statusCode": 401,
    "statusText": "Unauthorized",
    "message": "Token expired.",
    "date": "2019-11-13T06:26:01",
    "statusFamily": "CLIENT_ERROR",
    "method": "GET",
    "uri": "http://platform-dev.dataloy.com/ws/rest/Cargo?filter=subCargos.freight%28GTE%292500000""#;
        let rejected = |v: &TokenVerdict| matches!(v, TokenVerdict::Rejected(_));
        assert!(rejected(&classify_resource_response(&response(
            401, None, dataloy
        ))));
        let complete = format!("{dataloy}}}");
        assert_eq!(
            classify_resource_response(&response(401, None, &complete)),
            TokenVerdict::Rejected(Rejection::Body {
                message: "Token expired.".into()
            })
        );
        assert!(rejected(&classify_resource_response(&response(
            401,
            Some("Bearer error=\"invalid_token\""),
            ""
        ))));
        assert!(rejected(&classify_resource_response(&response(
            401,
            Some("Bearer realm=\"api\""),
            ""
        ))));
        assert!(rejected(&classify_resource_response(&response(
            401,
            None,
            "Unauthorized: JWT expired at 2019"
        ))));
        assert!(matches!(
            classify_resource_response(&response(
                401,
                Some("Bearer error=\"invalid_request\""),
                ""
            )),
            TokenVerdict::Unauthorized(Some(_))
        ));
        assert_eq!(
            classify_resource_response(&response(401, None, "{\"message\":\"nope\"}")),
            TokenVerdict::Unauthorized(None)
        );
        assert_eq!(
            classify_resource_response(&response(401, None, "")),
            TokenVerdict::Unauthorized(None)
        );
        assert!(matches!(
            classify_resource_response(&response(
                403,
                Some("Bearer error=\"insufficient_scope\", scope=\"admin\""),
                ""
            )),
            TokenVerdict::InsufficientScope(_)
        ));
        assert_eq!(
            classify_resource_response(&response(403, None, "Token expired")),
            TokenVerdict::NotRejected
        );
        assert_eq!(
            classify_resource_response(&response(200, None, "Token expired")),
            TokenVerdict::NotRejected
        );
        assert_eq!(
            classify_resource_response(&response(500, None, "")),
            TokenVerdict::NotRejected
        );
    }

    #[test]
    fn header_is_sensitive_and_rejects_bad_tokens() {
        let v = bearer_header(&AccessToken::new("abc")).unwrap();
        assert!(v.is_sensitive());
        assert_eq!(
            bearer_header(&AccessToken::new("a\nb")).unwrap_err(),
            Error::InvalidHeaderValue {
                what: "access token"
            }
        );
    }

    proptest::proptest! {
        #[test]
        fn challenge_parser_never_panics(s in "[ -~]{0,200}") {
            let _ = parse_challenges(&s);
        }

        #[test]
        fn classifier_never_panics(body in proptest::collection::vec(proptest::prelude::any::<u8>(), 0..300), status in 100u16..600) {
            let resp = Response::builder().status(status).body(body).unwrap();
            let _ = classify_resource_response(&resp);
        }
    }
}
