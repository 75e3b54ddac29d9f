//! OpenID Connect id_token claims (Core §2, §3.1.3.7): checked after the signature is verified
//! (by `jwt-assertion`'s `verify`, or any JWS library), with the time passed in.
//!
//! ```
//! use std::time::{Duration, SystemTime};
//! use oauth_core::client::id_token::{IdTokenChecks, validate_id_token_claims};
//!
//! let now = SystemTime::UNIX_EPOCH + Duration::from_secs(1_700_000_000);
//! let claims = serde_json::json!({
//!     "iss": "https://as.example", "sub": "alice", "aud": "my-client",
//!     "iat": 1_700_000_000u64, "exp": 1_700_000_600u64, "nonce": "n-0S6_WzA2Mj",
//! });
//! let serde_json::Value::Object(claims) = claims else { unreachable!() };
//! let checked = validate_id_token_claims(
//!     claims,
//!     &IdTokenChecks::new("https://as.example", "my-client", now).nonce("n-0S6_WzA2Mj"),
//! )?;
//! assert_eq!(checked.subject(), "alice");
//! # Ok::<(), oauth_core::Error>(())
//! ```

use std::fmt;
use std::time::{Duration, SystemTime};

use serde_json::{Map, Value};

use crate::error::Error;
use crate::secret::constant_time_eq;

/// What an id_token must say (OpenID Connect Core §3.1.3.7).
#[derive(Clone, Debug)]
pub struct IdTokenChecks<'a> {
    issuer: &'a str,
    client_id: &'a str,
    now: SystemTime,
    nonce: Option<&'a str>,
    max_age: Option<Duration>,
    leeway: Duration,
    max_iat_age: Option<Duration>,
}

impl<'a> IdTokenChecks<'a> {
    /// The token must come from `issuer` (exactly, as discovered), name `client_id` in `aud`,
    /// and be valid at `now`. The leeway for clock skew is 60 s.
    pub fn new(issuer: &'a str, client_id: &'a str, now: SystemTime) -> Self {
        Self {
            issuer,
            client_id,
            now,
            nonce: None,
            max_age: None,
            leeway: Duration::from_secs(60),
            max_iat_age: None,
        }
    }

    /// The `nonce` sent with the authorization request: the token must carry it (§3.1.3.7
    /// item 11).
    pub fn nonce(mut self, nonce: &'a str) -> Self {
        self.nonce = Some(nonce);
        self
    }

    /// The `max_age` sent with the authorization request: `auth_time` must be present and no
    /// older (§3.1.3.7 item 13).
    pub fn max_age(mut self, max_age: Duration) -> Self {
        self.max_age = Some(max_age);
        self
    }

    /// The clock skew allowed on `exp`, `iat`, `nbf` and `auth_time` (default 60 s).
    pub fn leeway(mut self, leeway: Duration) -> Self {
        self.leeway = leeway;
        self
    }

    /// Refuses tokens issued longer ago than this (§3.1.3.7 item 10 lets clients limit it).
    pub fn max_token_age(mut self, age: Duration) -> Self {
        self.max_iat_age = Some(age);
        self
    }
}

/// Why an id_token's claims were refused.
#[derive(Clone, Debug, PartialEq, Eq)]
#[non_exhaustive]
pub enum IdTokenError {
    /// A required claim is missing or has the wrong type.
    Claim(&'static str),
    /// `iss` is not the expected issuer.
    Issuer,
    /// `aud` does not contain the client id.
    Audience,
    /// Several audiences and `azp` missing or not the client id (§3.1.3.7 items 4 and 5).
    AuthorizedParty,
    /// `exp` has passed.
    Expired,
    /// `iat` is in the future, or older than allowed.
    IssuedAt,
    /// `nbf` is in the future.
    NotYetValid,
    /// `nonce` missing or not the one sent.
    Nonce,
    /// `auth_time` missing or older than `max_age`.
    AuthTime,
    /// `openid` was asked for and the token response holds no id_token.
    Missing,
    /// The signature does not verify with the issuer's keys, or uses an algorithm the client
    /// does not accept (the verifier's reason).
    Signature(String),
    /// `at_hash` does not match the access token it came with (§3.1.3.8, §3.2.2.9).
    AccessTokenHash,
    /// `c_hash` does not match the code it came with (§3.3.2.11).
    CodeHash,
    /// An id_token from a refresh names another subject than the first one (§12.2).
    Subject,
}

impl fmt::Display for IdTokenError {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        match self {
            Self::Claim(c) => write!(f, "the id_token's `{c}` claim is missing or invalid"),
            Self::Issuer => f.write_str("the id_token's issuer is not the expected one"),
            Self::Audience => f.write_str("the id_token is not meant for this client"),
            Self::AuthorizedParty => {
                f.write_str("the id_token has several audiences and this client is not its azp")
            }
            Self::Expired => f.write_str("the id_token expired"),
            Self::IssuedAt => f.write_str("the id_token's iat is in the future or too old"),
            Self::NotYetValid => f.write_str("the id_token is not valid yet (nbf)"),
            Self::Nonce => f.write_str("the id_token's nonce is not the one sent"),
            Self::AuthTime => f.write_str("the authentication is older than max_age"),
            Self::Missing => f.write_str("openid was asked for and no id_token came back"),
            Self::Signature(why) => write!(f, "the id_token's signature was refused: {why}"),
            Self::AccessTokenHash => f.write_str("the id_token's at_hash does not match"),
            Self::CodeHash => f.write_str("the id_token's c_hash does not match"),
            Self::Subject => f.write_str("the id_token's subject changed"),
        }
    }
}

impl std::error::Error for IdTokenError {}

/// The claims of a checked id_token.
#[derive(Clone)]
pub struct IdTokenClaims {
    subject: String,
    issuer: String,
    audience: Vec<String>,
    expires_at: SystemTime,
    issued_at: SystemTime,
    auth_time: Option<SystemTime>,
    claims: Map<String, Value>,
}

impl fmt::Debug for IdTokenClaims {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        // Claims are personal data: the subject and the claim names only.
        f.debug_struct("IdTokenClaims")
            .field("subject", &self.subject)
            .field("issuer", &self.issuer)
            .field("claims", &self.claims.keys().collect::<Vec<_>>())
            .finish_non_exhaustive()
    }
}

impl IdTokenClaims {
    /// `sub`: the end user, unique within the issuer.
    pub fn subject(&self) -> &str {
        &self.subject
    }

    /// `iss`.
    pub fn issuer(&self) -> &str {
        &self.issuer
    }

    /// `aud`, as a list.
    pub fn audience(&self) -> &[String] {
        &self.audience
    }

    /// `exp`.
    pub fn expires_at(&self) -> SystemTime {
        self.expires_at
    }

    /// `iat`.
    pub fn issued_at(&self) -> SystemTime {
        self.issued_at
    }

    /// `auth_time`, when present.
    pub fn auth_time(&self) -> Option<SystemTime> {
        self.auth_time
    }

    /// A string claim (`email`, `name`, `preferred_username`, ...).
    pub fn string(&self, name: &str) -> Option<&str> {
        self.claims.get(name).and_then(Value::as_str)
    }

    /// `email`, when present.
    pub fn email(&self) -> Option<&str> {
        self.string("email")
    }

    /// `email_verified`, when present.
    pub fn email_verified(&self) -> Option<bool> {
        self.claims.get("email_verified").and_then(Value::as_bool)
    }

    /// Every claim, as sent.
    pub fn claims(&self) -> &Map<String, Value> {
        &self.claims
    }
}

fn time(
    claims: &Map<String, Value>,
    name: &'static str,
) -> Result<Option<SystemTime>, IdTokenError> {
    match claims.get(name) {
        None | Some(Value::Null) => Ok(None),
        Some(v) => {
            let secs = v
                .as_u64()
                .or_else(|| {
                    v.as_f64()
                        .filter(|f| f.is_finite() && *f >= 0.0)
                        .map(|f| f as u64)
                })
                .ok_or(IdTokenError::Claim(name))?;
            SystemTime::UNIX_EPOCH
                .checked_add(Duration::from_secs(secs))
                .map(Some)
                .ok_or(IdTokenError::Claim(name))
        }
    }
}

/// Checks a verified id_token's claims (OpenID Connect Core §3.1.3.7 items 2-5 and 9-13):
/// `iss` identical to the expected issuer, `aud` containing the client id (and `azp` equal to
/// it when there are several audiences, or whenever `azp` is present), `exp` in the future and
/// `iat` not (within the leeway), `nbf` if present, the `nonce` that was sent (compared in
/// constant time), and `auth_time` against `max_age`. The signature must have been verified
/// first, with the algorithm and keys the client expects.
pub fn validate_id_token_claims(
    claims: Map<String, Value>,
    checks: &IdTokenChecks<'_>,
) -> Result<IdTokenClaims, Error> {
    check(claims, checks).map_err(Error::InvalidIdToken)
}

fn check(claims: Map<String, Value>, c: &IdTokenChecks<'_>) -> Result<IdTokenClaims, IdTokenError> {
    let string = |name: &'static str| -> Result<String, IdTokenError> {
        claims
            .get(name)
            .and_then(Value::as_str)
            .filter(|s| !s.is_empty())
            .map(str::to_owned)
            .ok_or(IdTokenError::Claim(name))
    };
    let issuer = string("iss")?;
    if issuer != c.issuer {
        return Err(IdTokenError::Issuer);
    }
    let subject = string("sub")?;
    let audience: Vec<String> = match claims.get("aud") {
        Some(Value::String(a)) => vec![a.clone()],
        Some(Value::Array(list)) => list
            .iter()
            .map(|a| {
                a.as_str()
                    .map(str::to_owned)
                    .ok_or(IdTokenError::Claim("aud"))
            })
            .collect::<Result<_, _>>()?,
        _ => return Err(IdTokenError::Claim("aud")),
    };
    if !audience.iter().any(|a| a == c.client_id) {
        return Err(IdTokenError::Audience);
    }
    match claims.get("azp") {
        None | Some(Value::Null) if audience.len() == 1 => {}
        Some(Value::String(azp)) if azp == c.client_id => {}
        _ => return Err(IdTokenError::AuthorizedParty),
    }
    let expires_at = time(&claims, "exp")?.ok_or(IdTokenError::Claim("exp"))?;
    if c.now >= expires_at.checked_add(c.leeway).unwrap_or(expires_at) {
        return Err(IdTokenError::Expired);
    }
    let issued_at = time(&claims, "iat")?.ok_or(IdTokenError::Claim("iat"))?;
    if issued_at > c.now.checked_add(c.leeway).unwrap_or(c.now) {
        return Err(IdTokenError::IssuedAt);
    }
    if let Some(max) = c.max_iat_age
        && c.now.duration_since(issued_at).unwrap_or(Duration::ZERO) > max + c.leeway
    {
        return Err(IdTokenError::IssuedAt);
    }
    if let Some(nbf) = time(&claims, "nbf")?
        && nbf > c.now.checked_add(c.leeway).unwrap_or(c.now)
    {
        return Err(IdTokenError::NotYetValid);
    }
    if let Some(expected) = c.nonce {
        let sent = claims.get("nonce").and_then(Value::as_str).unwrap_or("");
        if !constant_time_eq(sent.as_bytes(), expected.as_bytes()) {
            return Err(IdTokenError::Nonce);
        }
    }
    let auth_time = time(&claims, "auth_time")?;
    if let Some(max_age) = c.max_age {
        let at = auth_time.ok_or(IdTokenError::AuthTime)?;
        if c.now.duration_since(at).unwrap_or(Duration::ZERO) > max_age + c.leeway {
            return Err(IdTokenError::AuthTime);
        }
    }
    Ok(IdTokenClaims {
        subject,
        issuer,
        audience,
        expires_at,
        issued_at,
        auth_time,
        claims,
    })
}

#[cfg(test)]
mod tests {
    use super::*;
    use serde_json::json;

    fn now() -> SystemTime {
        SystemTime::UNIX_EPOCH + Duration::from_secs(1_700_000_000)
    }

    fn base() -> Value {
        json!({
            "iss": "https://as.example", "sub": "alice", "aud": "app",
            "iat": 1_700_000_000u64, "exp": 1_700_000_600u64, "nonce": "n1",
            "auth_time": 1_699_999_900u64, "email": "alice@example.com", "email_verified": true,
        })
    }

    fn run(
        edit: impl FnOnce(&mut Map<String, Value>),
        checks: IdTokenChecks<'_>,
    ) -> Result<IdTokenClaims, IdTokenError> {
        let Value::Object(mut claims) = base() else {
            unreachable!()
        };
        edit(&mut claims);
        check(claims, &checks)
    }

    fn checks() -> IdTokenChecks<'static> {
        IdTokenChecks::new("https://as.example", "app", now()).nonce("n1")
    }

    #[test]
    fn a_good_token_and_its_claims() {
        let c = run(|_| {}, checks().max_age(Duration::from_secs(300))).unwrap();
        assert_eq!(c.subject(), "alice");
        assert_eq!(c.email(), Some("alice@example.com"));
        assert_eq!(c.email_verified(), Some(true));
        assert_eq!(c.audience(), ["app"]);
        assert!(!format!("{c:?}").contains("alice@example.com"));
    }

    #[test]
    fn every_rule_refuses_with_its_reason() {
        use IdTokenError::*;
        type Edit = Box<dyn FnOnce(&mut Map<String, Value>)>;
        let cases: Vec<(Edit, IdTokenError)> = vec![
            (
                Box::new(|m| {
                    m.remove("iss");
                }),
                Claim("iss"),
            ),
            (
                Box::new(|m| {
                    m.insert("iss".into(), json!("https://as.example/"));
                }),
                Issuer,
            ),
            (
                Box::new(|m| {
                    m.remove("sub");
                }),
                Claim("sub"),
            ),
            (
                Box::new(|m| {
                    m.insert("aud".into(), json!("other"));
                }),
                Audience,
            ),
            (
                Box::new(|m| {
                    m.insert("aud".into(), json!(["app", "other"]));
                }),
                AuthorizedParty,
            ),
            (
                Box::new(|m| {
                    m.insert("azp".into(), json!("other"));
                }),
                AuthorizedParty,
            ),
            (
                Box::new(|m| {
                    m.insert("aud".into(), json!(7));
                }),
                Claim("aud"),
            ),
            (
                Box::new(|m| {
                    m.insert("exp".into(), json!(1_699_999_900u64));
                }),
                Expired,
            ),
            (
                Box::new(|m| {
                    m.remove("exp");
                }),
                Claim("exp"),
            ),
            (
                Box::new(|m| {
                    m.insert("exp".into(), json!("soon"));
                }),
                Claim("exp"),
            ),
            (
                Box::new(|m| {
                    m.insert("iat".into(), json!(1_700_000_100u64));
                }),
                IssuedAt,
            ),
            (
                Box::new(|m| {
                    m.insert("nbf".into(), json!(1_700_000_100u64));
                }),
                NotYetValid,
            ),
            (
                Box::new(|m| {
                    m.insert("nonce".into(), json!("n2"));
                }),
                Nonce,
            ),
            (
                Box::new(|m| {
                    m.remove("nonce");
                }),
                Nonce,
            ),
            (
                Box::new(|m| {
                    m.insert("auth_time".into(), json!(1_699_990_000u64));
                }),
                AuthTime,
            ),
            (
                Box::new(|m| {
                    m.remove("auth_time");
                }),
                AuthTime,
            ),
        ];
        for (edit, expected) in cases {
            let got = run(edit, checks().max_age(Duration::from_secs(300))).unwrap_err();
            assert_eq!(got, expected);
        }
        // Several audiences with azp = the client: accepted.
        let ok = run(
            |m| {
                m.insert("aud".into(), json!(["app", "other"]));
                m.insert("azp".into(), json!("app"));
            },
            checks(),
        );
        assert!(ok.is_ok());
        // Within the leeway: accepted; a token older than max_token_age: refused.
        assert!(
            run(
                |m| {
                    m.insert("exp".into(), json!(1_699_999_970u64));
                },
                checks()
            )
            .is_ok()
        );
        assert_eq!(
            run(
                |_| {},
                checks()
                    .max_token_age(Duration::ZERO)
                    .leeway(Duration::ZERO)
            )
            .map(|_| ()),
            Ok(())
        );
        let later = IdTokenChecks::new(
            "https://as.example",
            "app",
            now() + Duration::from_secs(120),
        )
        .max_token_age(Duration::from_secs(30))
        .leeway(Duration::ZERO);
        assert_eq!(run(|_| {}, later).unwrap_err(), IssuedAt);
    }

    proptest::proptest! {
        #[test]
        fn never_panics(iat in proptest::num::u64::ANY, exp in proptest::num::f64::ANY, aud in "\\PC{0,8}") {
            let claims = json!({"iss": "https://as.example", "sub": "x", "aud": aud, "iat": iat, "exp": exp});
            let Value::Object(claims) = claims else { unreachable!() };
            let _ = check(claims, &checks().max_age(Duration::from_secs(u64::MAX / 4)));
        }
    }
}
