//! JWT access tokens (RFC 9068), checked by the API itself: the claims rules, once the
//! signature has been verified with the issuer's keys (jwt-assertion's `verify`; the core does
//! no cryptography). The result is an [`Introspection`], so that [`ApiPolicy::decide`]
//! (contract, scopes, audience, expiry) treats a local validation and an introspection alike.
//!
//! [`ApiPolicy::decide`]: super::ApiPolicy::decide

use std::time::{Duration, SystemTime};

use base64::Engine as _;
use base64::engine::general_purpose::URL_SAFE_NO_PAD;
use serde_json::{Map, Value};

use super::InvalidTokenReason;
use crate::introspection::Introspection;

/// What a JWT access token must say to be accepted (RFC 9068 §4).
#[derive(Clone, Debug, PartialEq, Eq)]
pub struct JwtAccessTokenChecks {
    issuer: String,
    audience: String,
    types: Vec<String>,
    leeway: Duration,
}

impl JwtAccessTokenChecks {
    /// Tokens issued by `issuer` (compared exactly) for `audience` (one of the token's `aud`
    /// values: the API's resource identifier), of type `at+jwt`.
    pub fn new(issuer: impl Into<String>, audience: impl Into<String>) -> Self {
        Self {
            issuer: issuer.into(),
            audience: audience.into(),
            types: vec!["at+jwt".to_owned()],
            leeway: Duration::from_secs(60),
        }
    }

    /// Also accepts this `typ` (compared without case; an `application/` prefix is ignored).
    /// Some servers sign access tokens with `typ: JWT`; accepting it gives up RFC 9068's
    /// protection against an id_token being presented as an access token, so pair it with an
    /// audience that id_tokens never carry.
    pub fn accept_type(mut self, typ: impl Into<String>) -> Self {
        self.types.push(typ.into());
        self
    }

    /// The clock skew allowed for `nbf` and `iat` (60 s by default). `exp` gets none: the
    /// policy re-checks it at every decision.
    pub fn leeway(mut self, leeway: Duration) -> Self {
        self.leeway = leeway;
        self
    }

    /// The expected issuer.
    pub fn issuer(&self) -> &str {
        &self.issuer
    }

    /// The expected audience.
    pub fn audience(&self) -> &str {
        &self.audience
    }

    fn type_accepted(&self, typ: &str) -> bool {
        let bare = |t: &str| {
            let t = t.trim();
            match t.get(..12) {
                Some(prefix) if prefix.eq_ignore_ascii_case("application/") => t[12..].to_owned(),
                _ => t.to_owned(),
            }
        };
        let typ = bare(typ);
        self.types
            .iter()
            .any(|t| bare(t).eq_ignore_ascii_case(&typ))
    }
}

/// Checks a verified JWT access token's header and claims (RFC 9068 §4): `typ` accepted,
/// `iss` identical to the expected issuer, `aud` containing the API, `exp` present and in
/// the future, `nbf` and `iat` not in the future (within the leeway), and a client: `client_id`
/// (or, from servers that send only that, `azp`). Returns the claims as an active
/// [`Introspection`] for [`ApiPolicy::decide`](super::ApiPolicy::decide).
pub fn validate_jwt_access_token(
    header: &Map<String, Value>,
    mut claims: Map<String, Value>,
    checks: &JwtAccessTokenChecks,
    now: SystemTime,
) -> Result<Introspection, InvalidTokenReason> {
    match header.get("typ").and_then(Value::as_str) {
        Some(typ) if checks.type_accepted(typ) => {}
        _ => return Err(InvalidTokenReason::NotAnAccessToken),
    }
    if claims.get("iss").and_then(Value::as_str) != Some(checks.issuer.as_str()) {
        return Err(InvalidTokenReason::WrongIssuer);
    }
    // A JWT access token is a bearer token: a `token_type` claim has no meaning here, and one
    // saying otherwise must not change the decision.
    claims.remove("token_type");
    if !claims.contains_key("client_id")
        && let Some(azp) = claims.get("azp").cloned()
    {
        claims.insert("client_id".to_owned(), azp);
    }
    let result =
        Introspection::from_active_claims(claims).map_err(|_| InvalidTokenReason::Malformed)?;
    if result.client_id().is_none() {
        return Err(InvalidTokenReason::Malformed);
    }
    let Some(exp) = result.expires_at() else {
        return Err(InvalidTokenReason::Malformed);
    };
    if exp <= now {
        return Err(InvalidTokenReason::Expired);
    }
    let late = now.checked_add(checks.leeway).unwrap_or(now);
    if result.not_before().is_some_and(|nbf| nbf > late)
        || result.issued_at().is_some_and(|iat| iat > late)
    {
        return Err(InvalidTokenReason::NotYetValid);
    }
    if !result.audience().contains(&checks.audience) {
        return Err(InvalidTokenReason::WrongAudience);
    }
    Ok(result)
}

/// The `iss` a compact JWS claims, read **without verifying anything**: only to choose which
/// issuer's keys (or whether introspection) should validate the token. `None` for anything
/// that is not three base64url segments with a JSON object payload holding a string `iss`.
pub fn jwt_issuer_hint(token: &str) -> Option<String> {
    let mut parts = token.split('.');
    let (Some(_), Some(payload), Some(_), None) =
        (parts.next(), parts.next(), parts.next(), parts.next())
    else {
        return None;
    };
    let bytes = URL_SAFE_NO_PAD.decode(payload).ok()?;
    match crate::json::from_slice(&bytes).ok()? {
        Value::Object(mut claims) => match claims.remove("iss")? {
            Value::String(iss) => Some(iss),
            _ => None,
        },
        _ => None,
    }
}

#[cfg(test)]
mod tests {
    use super::*;
    use serde_json::json;

    fn now() -> SystemTime {
        SystemTime::UNIX_EPOCH + Duration::from_secs(1_700_000_000)
    }

    fn checks() -> JwtAccessTokenChecks {
        JwtAccessTokenChecks::new("https://as.example", "https://api.example/orders")
    }

    fn header(typ: &str) -> Map<String, Value> {
        json!({"alg": "ES256", "typ": typ})
            .as_object()
            .cloned()
            .unwrap_or_default()
    }

    fn claims(change: impl FnOnce(&mut Map<String, Value>)) -> Map<String, Value> {
        let mut map = json!({
            "iss": "https://as.example", "aud": ["https://api.example/orders"], "sub": "alice",
            "client_id": "app-1", "scope": "orders:read orders:write", "jti": "j1",
            "iat": 1_700_000_000u64 - 10, "exp": 1_700_000_000u64 + 300,
        })
        .as_object()
        .cloned()
        .unwrap_or_default();
        change(&mut map);
        map
    }

    #[test]
    fn a_valid_token_becomes_an_active_result() {
        let result = validate_jwt_access_token(&header("at+jwt"), claims(|_| {}), &checks(), now())
            .map_err(|e| format!("{e:?}"));
        let Ok(result) = result else {
            panic!("{result:?}")
        };
        assert!(result.active());
        assert_eq!(result.client_id(), Some("app-1"));
        assert!(result.scope().is_some_and(|s| s.contains("orders:write")));
        assert_eq!(result.subject(), Some("alice"));
        assert_eq!(result.issuer(), Some("https://as.example"));
        // The media type's long form, in any case, is the same type.
        assert!(
            validate_jwt_access_token(
                &header("Application/AT+JWT"),
                claims(|_| {}),
                &checks(),
                now()
            )
            .is_ok()
        );
    }

    #[test]
    fn each_rule_has_its_reason() {
        use InvalidTokenReason as R;
        type Case = (&'static str, Map<String, Value>, Map<String, Value>, R);
        let cases: Vec<Case> = vec![
            (
                "id_token typ",
                header("JWT"),
                claims(|_| {}),
                R::NotAnAccessToken,
            ),
            ("no typ", Map::new(), claims(|_| {}), R::NotAnAccessToken),
            (
                "other issuer",
                header("at+jwt"),
                claims(|c| {
                    c.insert("iss".into(), json!("https://evil.example"));
                }),
                R::WrongIssuer,
            ),
            (
                "issuer prefix",
                header("at+jwt"),
                claims(|c| {
                    c.insert("iss".into(), json!("https://as.example/"));
                }),
                R::WrongIssuer,
            ),
            (
                "other audience",
                header("at+jwt"),
                claims(|c| {
                    c.insert("aud".into(), json!("https://api.example/other"));
                }),
                R::WrongAudience,
            ),
            (
                "expired",
                header("at+jwt"),
                claims(|c| {
                    c.insert("exp".into(), json!(1_700_000_000u64));
                }),
                R::Expired,
            ),
            (
                "no exp",
                header("at+jwt"),
                claims(|c| {
                    c.remove("exp");
                }),
                R::Malformed,
            ),
            (
                "nbf ahead",
                header("at+jwt"),
                claims(|c| {
                    c.insert("nbf".into(), json!(1_700_000_000u64 + 120));
                }),
                R::NotYetValid,
            ),
            (
                "no client",
                header("at+jwt"),
                claims(|c| {
                    c.remove("client_id");
                }),
                R::Malformed,
            ),
            (
                "scope of the wrong type",
                header("at+jwt"),
                claims(|c| {
                    c.insert("scope".into(), json!(7));
                }),
                R::Malformed,
            ),
        ];
        for (name, header, claims, want) in cases {
            let got = validate_jwt_access_token(&header, claims, &checks(), now()).err();
            assert_eq!(got, Some(want), "{name}");
        }
    }

    #[test]
    fn azp_stands_in_for_client_id_and_token_type_is_ignored() {
        let c = claims(|c| {
            c.remove("client_id");
            c.insert("azp".into(), json!("app-2"));
            c.insert("token_type".into(), json!("refresh_token"));
        });
        let result = validate_jwt_access_token(&header("at+jwt"), c, &checks(), now());
        assert_eq!(
            result.ok().and_then(|r| r.client_id().map(str::to_owned)),
            Some("app-2".into())
        );
    }

    #[test]
    fn a_configured_type_is_accepted() {
        let checks = checks().accept_type("JWT");
        assert!(validate_jwt_access_token(&header("jwt"), claims(|_| {}), &checks, now()).is_ok());
    }

    #[test]
    fn issuer_hint() {
        let enc = |v: &Value| URL_SAFE_NO_PAD.encode(v.to_string());
        let token = format!(
            "{}.{}.sig",
            enc(&json!({"alg": "RS256"})),
            enc(&json!({"iss": "https://as.example"}))
        );
        assert_eq!(
            jwt_issuer_hint(&token).as_deref(),
            Some("https://as.example")
        );
        for bad in [
            "opaque-token",
            "a.b",
            "a.b.c.d",
            "..",
            "x.!!.y",
            &format!("a.{}.c", enc(&json!({"iss": 5}))),
        ] {
            assert_eq!(jwt_issuer_hint(bad), None, "{bad}");
        }
    }
}
