//! The OpenID Connect UserInfo request and response (OpenID Connect Core §5.3): a GET with
//! the access token, answered with a JSON claim set or a signed JWT (`application/jwt`, whose
//! signature the caller verifies with the issuer's keys, then hands the claims back here).

use std::fmt;

use http::header::ACCEPT;
use http::{HeaderValue, Method, Request, Response};
use serde_json::{Map, Value};

use crate::bearer::bearer_header;
use crate::endpoint::Endpoint;
use crate::error::{Error, UnexpectedReason};
use crate::id_token::IdTokenError;
use crate::request::RequestBody;
use crate::response::{MAX_BODY_LEN, content_type, parse_object, unexpected};
use crate::secret::AccessToken;

/// The UserInfo request: `GET` with `Authorization: Bearer` (RFC 6750 §2.1), asking for JSON
/// or a signed JWT.
pub fn userinfo_request(
    endpoint: &Endpoint,
    token: &AccessToken,
) -> Result<Request<RequestBody>, Error> {
    let mut request = Request::builder()
        .method(Method::GET)
        .uri(endpoint.uri().clone())
        .header(
            ACCEPT,
            HeaderValue::from_static("application/json, application/jwt"),
        )
        .body(RequestBody::default())
        .map_err(|_| Error::InvalidHeaderValue { what: "userinfo" })?;
    request
        .headers_mut()
        .insert(http::header::AUTHORIZATION, bearer_header(token)?);
    Ok(request)
}

/// [`userinfo_request`] for a token that may be DPoP-bound: sent as `Authorization: DPoP` with
/// a proof made by `dpop` at `now` when it is (RFC 9449 §7.1).
pub fn userinfo_request_with(
    endpoint: &Endpoint,
    token: &AccessToken,
    dpop: Option<&crate::dpop::Dpop>,
    now: std::time::SystemTime,
) -> Result<Request<RequestBody>, Error> {
    let mut request = Request::builder()
        .method(Method::GET)
        .uri(endpoint.uri().clone())
        .header(
            ACCEPT,
            HeaderValue::from_static("application/json, application/jwt"),
        )
        .body(RequestBody::default())
        .map_err(|_| Error::InvalidHeaderValue { what: "userinfo" })?;
    crate::dpop::authorize_request_with(&mut request, token, dpop, now)?;
    Ok(request)
}

/// What the UserInfo endpoint answered, before any check.
#[derive(Clone)]
#[non_exhaustive]
pub enum UserInfoResponse {
    /// A JSON claim set (`application/json`).
    Claims(Map<String, Value>),
    /// A signed JWT (`application/jwt`): verify it with the issuer's keys, then pass its
    /// claims to [`validate_userinfo`] with the issuer and client id.
    Signed(String),
}

impl fmt::Debug for UserInfoResponse {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        match self {
            Self::Claims(c) => f
                .debug_tuple("Claims")
                .field(&c.keys().collect::<Vec<_>>())
                .finish(),
            Self::Signed(_) => f.write_str("Signed(<redacted>)"),
        }
    }
}

/// Parses the UserInfo endpoint's answer (200 only). An error answer is
/// [`Error::Server`] when it carries an OAuth error body, else [`Error::UnexpectedResponse`]
/// (a 401's `WWW-Authenticate` challenge is the caller's to read, with
/// [`bearer_challenge`](crate::bearer_challenge)).
pub fn parse_userinfo_response<B: AsRef<[u8]>>(
    response: &Response<B>,
) -> Result<UserInfoResponse, Error> {
    let jwt = content_type(response).is_some_and(|t| {
        t.split(';')
            .next()
            .is_some_and(|m| m.trim().eq_ignore_ascii_case("application/jwt"))
    });
    if !jwt || !response.status().is_success() {
        return parse_object(response).map(UserInfoResponse::Claims);
    }
    if response.status() != http::StatusCode::OK {
        return Err(unexpected(response, UnexpectedReason::Status));
    }
    let body = response.body().as_ref();
    if body.len() > MAX_BODY_LEN {
        return Err(unexpected(
            response,
            UnexpectedReason::BodyTooLarge {
                limit: MAX_BODY_LEN,
            },
        ));
    }
    match std::str::from_utf8(body) {
        Ok(text) if !text.trim().is_empty() => Ok(UserInfoResponse::Signed(text.trim().to_owned())),
        _ => Err(unexpected(response, UnexpectedReason::Unparseable)),
    }
}

/// The claims about the user, checked.
#[derive(Clone)]
pub struct UserInfo {
    subject: String,
    claims: Map<String, Value>,
}

impl fmt::Debug for UserInfo {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        // Personal data: names only.
        f.debug_struct("UserInfo")
            .field("claims", &self.claims.keys().collect::<Vec<_>>())
            .finish_non_exhaustive()
    }
}

impl UserInfo {
    /// `sub`.
    pub fn subject(&self) -> &str {
        &self.subject
    }

    /// A string claim (`name`, `email`, `preferred_username`, ...).
    pub fn string(&self, name: &str) -> Option<&str> {
        self.claims.get(name).and_then(Value::as_str)
    }

    /// `email`.
    pub fn email(&self) -> Option<&str> {
        self.string("email")
    }

    /// Every claim, as sent.
    pub fn claims(&self) -> &Map<String, Value> {
        &self.claims
    }
}

/// Checks UserInfo claims (OpenID Connect Core §5.3.2, §5.3.4): `sub` present and, when the
/// id_token's subject is given, equal to it (otherwise the answer is about someone else and
/// must not be used). For a signed response, `signed_by = Some((issuer, client_id))`: `iss`
/// and `aud`, when present, must name them.
pub fn validate_userinfo(
    claims: Map<String, Value>,
    expected_subject: Option<&str>,
    signed_by: Option<(&str, &str)>,
) -> Result<UserInfo, Error> {
    let invalid = |e| Err(Error::InvalidUserInfo(e));
    let Some(subject) = claims
        .get("sub")
        .and_then(Value::as_str)
        .filter(|s| !s.is_empty())
        .map(str::to_owned)
    else {
        return invalid(IdTokenError::Claim("sub"));
    };
    if expected_subject.is_some_and(|expected| expected != subject) {
        return invalid(IdTokenError::Subject);
    }
    if let Some((issuer, client_id)) = signed_by {
        match claims.get("iss") {
            None => {}
            Some(Value::String(iss)) if iss == issuer => {}
            Some(_) => return invalid(IdTokenError::Issuer),
        }
        let audience_ok = match claims.get("aud") {
            None => true,
            Some(Value::String(aud)) => aud == client_id,
            Some(Value::Array(list)) => list.iter().any(|a| a.as_str() == Some(client_id)),
            Some(_) => false,
        };
        if !audience_ok {
            return invalid(IdTokenError::Audience);
        }
    }
    Ok(UserInfo { subject, claims })
}

#[cfg(test)]
mod tests {
    use super::*;
    use http::header::CONTENT_TYPE;
    use serde_json::json;

    fn answer(status: u16, content_type: &str, body: &str) -> Response<Vec<u8>> {
        Response::builder()
            .status(status)
            .header(CONTENT_TYPE, content_type)
            .body(body.as_bytes().to_vec())
            .unwrap_or_default()
    }

    fn claims(v: Value) -> Map<String, Value> {
        v.as_object().cloned().unwrap_or_default()
    }

    #[test]
    fn request_shape() {
        let endpoint = Endpoint::new("https://as.example/me").unwrap_or_else(|e| panic!("{e}"));
        let request = userinfo_request(&endpoint, &AccessToken::new("at-1"))
            .unwrap_or_else(|e| panic!("{e}"));
        assert_eq!(request.method(), Method::GET);
        assert_eq!(request.uri(), "https://as.example/me");
        assert_eq!(request.headers()["authorization"], "Bearer at-1");
        assert!(request.headers()["authorization"].is_sensitive());
        assert!(request.body().is_empty());
    }

    #[test]
    fn json_jwt_and_errors() {
        let json = parse_userinfo_response(&answer(
            200,
            "application/json",
            r#"{"sub":"u1","email":"a@x"}"#,
        ));
        assert!(matches!(json, Ok(UserInfoResponse::Claims(c)) if c["sub"] == "u1"));
        let jwt =
            parse_userinfo_response(&answer(200, "application/jwt; charset=utf-8", "a.b.c\n"));
        assert!(matches!(jwt, Ok(UserInfoResponse::Signed(t)) if t == "a.b.c"));
        let denied = parse_userinfo_response(&answer(
            401,
            "application/json",
            r#"{"error":"invalid_token"}"#,
        ));
        assert!(matches!(denied, Err(Error::Server(_))));
        let empty = parse_userinfo_response(&answer(200, "application/jwt", ""));
        assert!(matches!(empty, Err(Error::UnexpectedResponse(_))));
        let html = parse_userinfo_response(&answer(200, "text/html", "<html>"));
        assert!(matches!(html, Err(Error::UnexpectedResponse(_))));
    }

    #[test]
    fn debug_shows_no_claim_values_and_no_token() {
        let signed = UserInfoResponse::Signed("eyJhbGciOi.secret-payload.sig".into());
        assert_eq!(format!("{signed:?}"), "Signed(<redacted>)");
        let info = validate_userinfo(claims(json!({"sub": "u-777", "email": "a@x"})), None, None)
            .unwrap_or_else(|e| panic!("{e}"));
        let shown = format!("{info:?}");
        assert!(
            !shown.contains("u-777") && !shown.contains("a@x"),
            "{shown}"
        );
    }

    #[test]
    fn subject_issuer_and_audience() {
        let ok = validate_userinfo(
            claims(json!({"sub": "u1", "email": "a@x"})),
            Some("u1"),
            None,
        );
        assert_eq!(ok.as_ref().ok().and_then(UserInfo::email), Some("a@x"));
        let cases = [
            (
                json!({"email": "a@x"}),
                Some("u1"),
                None,
                IdTokenError::Claim("sub"),
            ),
            (
                json!({"sub": "u2"}),
                Some("u1"),
                None,
                IdTokenError::Subject,
            ),
            (
                json!({"sub": "u1", "iss": "https://evil"}),
                None,
                Some(("https://as", "app")),
                IdTokenError::Issuer,
            ),
            (
                json!({"sub": "u1", "aud": ["other"]}),
                None,
                Some(("https://as", "app")),
                IdTokenError::Audience,
            ),
        ];
        for (c, sub, signed, want) in cases {
            let got = validate_userinfo(claims(c), sub, signed);
            assert!(
                matches!(got, Err(Error::InvalidUserInfo(ref e)) if *e == want),
                "{want:?}: {got:?}"
            );
        }
        let signed = validate_userinfo(
            claims(json!({"sub": "u1", "iss": "https://as", "aud": "app"})),
            Some("u1"),
            Some(("https://as", "app")),
        );
        assert!(signed.is_ok());
    }
}
