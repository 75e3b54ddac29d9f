//! JWT headers and claims, signed into a compact JWS (RFC 7515 §7.1).

use std::time::{Duration, SystemTime};

use oauth_core::{Assertion, ClientAssertion, RandomSource};
use serde_json::{Map, Value};

use crate::{RingRandom, SignError, SigningKey, b64url};

/// The default lifetime of an assertion: short, since it is used once, right away.
pub const DEFAULT_LIFETIME: Duration = Duration::from_secs(60);

/// The JOSE header (RFC 7515 §4). `alg` and (by default) `kid` come from the key.
///
/// Shaped so that DPoP proofs (RFC 9449: `typ: dpop+jwt` and a `jwk` header) are a small
/// step: [`param`](Self::param) adds any member.
#[derive(Clone, Debug, Default)]
pub struct Header {
    typ: Option<String>,
    kid: Option<Option<String>>,
    x5t_s256: Option<String>,
    extra: Map<String, Value>,
}

impl Header {
    /// A header with `typ: JWT`.
    pub fn new() -> Self {
        Self {
            typ: Some("JWT".into()),
            ..Self::default()
        }
    }

    /// Sets `typ`.
    pub fn typ(mut self, typ: impl Into<String>) -> Self {
        self.typ = Some(typ.into());
        self
    }

    /// Sets `kid` instead of the key's own key id; `None` sends no `kid`.
    pub fn kid(mut self, kid: Option<String>) -> Self {
        self.kid = Some(kid);
        self
    }

    /// Sets `x5t#S256`, the base64url SHA-256 thumbprint of the key's X.509 certificate (some
    /// servers, such as Microsoft Entra ID, identify certificate credentials by it).
    pub fn x5t_s256(mut self, thumbprint: impl Into<String>) -> Self {
        self.x5t_s256 = Some(thumbprint.into());
        self
    }

    /// Adds any other header member.
    pub fn param(mut self, name: impl Into<String>, value: Value) -> Self {
        self.extra.insert(name.into(), value);
        self
    }

    fn to_map(&self, key: &SigningKey) -> Map<String, Value> {
        let mut map = self.extra.clone();
        map.insert("alg".into(), Value::String(key.algorithm().as_str().into()));
        if let Some(typ) = &self.typ {
            map.insert("typ".into(), Value::String(typ.clone()));
        }
        let kid = match &self.kid {
            Some(kid) => kid.clone(),
            None => key.kid().map(str::to_owned),
        };
        if let Some(kid) = kid {
            map.insert("kid".into(), Value::String(kid));
        }
        if let Some(t) = &self.x5t_s256 {
            map.insert("x5t#S256".into(), Value::String(t.clone()));
        }
        map
    }
}

/// Signs a header and a payload into a compact JWS: `base64url(header).base64url(payload).
/// base64url(signature)`.
pub fn sign_compact(
    key: &SigningKey,
    header: &Header,
    payload: &Map<String, Value>,
) -> Result<String, SignError> {
    let header = Value::Object(header.to_map(key)).to_string();
    let payload = Value::Object(payload.clone()).to_string();
    let mut out = b64url(header.as_bytes());
    out.push('.');
    out.push_str(&b64url(payload.as_bytes()));
    let signature = key.sign(out.as_bytes())?;
    out.push('.');
    out.push_str(&b64url(signature.as_ref()));
    Ok(out)
}

/// The claims of an assertion (RFC 7523 §3), signed with [`sign`](Self::sign).
///
/// ```
/// use std::time::SystemTime;
/// use jwt_assertion::{Algorithm, JwtClaims, SigningKey};
///
/// // client_secret_jwt (HS256) for a token endpoint.
/// let key = SigningKey::hmac(b"a client secret of at least 32 bytes!", Algorithm::HS256)?;
/// let assertion = JwtClaims::client_assertion("my-client", "https://as.example/token")
///     .sign(&key, SystemTime::now())?;
/// assert_eq!(assertion.expose_secret().split('.').count(), 3);
/// # Ok::<(), Box<dyn std::error::Error>>(())
/// ```
#[derive(Clone, Debug)]
#[must_use]
pub struct JwtClaims {
    iss: Option<String>,
    sub: Option<String>,
    aud: Vec<String>,
    lifetime: Duration,
    not_before: bool,
    jti: Option<String>,
    extra: Map<String, Value>,
    header: Header,
}

impl Default for JwtClaims {
    fn default() -> Self {
        Self {
            iss: None,
            sub: None,
            aud: Vec::new(),
            lifetime: DEFAULT_LIFETIME,
            not_before: false,
            jti: None,
            extra: Map::new(),
            header: Header::new(),
        }
    }
}

impl JwtClaims {
    /// Empty claims; `exp`, `iat` and `jti` are still added when signing.
    pub fn new() -> Self {
        Self::default()
    }

    /// An assertion for the JWT bearer grant (RFC 7523 §2.1): `iss` is the client (the
    /// Anypoint page: the client id), `sub` the principal (the Anypoint page:
    /// `v2|<idp id>|<username>|<first>|<last>|<email>|[<groups>]`), `aud` the token endpoint.
    pub fn jwt_bearer(
        issuer: impl Into<String>,
        subject: impl Into<String>,
        audience: impl Into<String>,
    ) -> Self {
        Self::new()
            .issuer(issuer)
            .subject(subject)
            .audience(audience)
    }

    /// A client assertion for `private_key_jwt` or `client_secret_jwt` (RFC 7523 §2.2,
    /// OpenID Connect Core §9): `iss` = `sub` = the client id, `aud` the token endpoint (or the
    /// issuer, as some servers want).
    pub fn client_assertion(client_id: impl Into<String>, audience: impl Into<String>) -> Self {
        let client_id = client_id.into();
        Self::new()
            .issuer(client_id.clone())
            .subject(client_id)
            .audience(audience)
    }

    /// Sets `iss`.
    pub fn issuer(mut self, iss: impl Into<String>) -> Self {
        self.iss = Some(iss.into());
        self
    }

    /// Sets `sub`.
    pub fn subject(mut self, sub: impl Into<String>) -> Self {
        self.sub = Some(sub.into());
        self
    }

    /// Adds an audience. One audience is sent as a string, several as an array.
    pub fn audience(mut self, aud: impl Into<String>) -> Self {
        self.aud.push(aud.into());
        self
    }

    /// Sets the lifetime: `exp` = now + lifetime (default [`DEFAULT_LIFETIME`]).
    pub fn lifetime(mut self, lifetime: Duration) -> Self {
        self.lifetime = lifetime;
        self
    }

    /// Adds `nbf` = now.
    pub fn not_before(mut self) -> Self {
        self.not_before = true;
        self
    }

    /// Uses this `jti` instead of a random one (it must be unique per assertion).
    pub fn jwt_id(mut self, jti: impl Into<String>) -> Self {
        self.jti = Some(jti.into());
        self
    }

    /// Adds any other claim.
    pub fn claim(mut self, name: impl Into<String>, value: Value) -> Self {
        self.extra.insert(name.into(), value);
        self
    }

    /// Uses this header instead of the default (`typ: JWT`, the key's `kid`).
    pub fn header(mut self, header: Header) -> Self {
        self.header = header;
        self
    }

    /// The claims as they will be signed at `now`, with `jti` drawn from `rng` unless set.
    pub fn to_payload(
        &self,
        now: SystemTime,
        rng: &dyn RandomSource,
    ) -> Result<Map<String, Value>, SignError> {
        let iat = now
            .duration_since(SystemTime::UNIX_EPOCH)
            .map_err(|_| SignError::TimeBeforeEpoch)?
            .as_secs();
        let exp = iat.saturating_add(self.lifetime.as_secs());
        let mut map = self.extra.clone();
        if let Some(iss) = &self.iss {
            map.insert("iss".into(), Value::String(iss.clone()));
        }
        if let Some(sub) = &self.sub {
            map.insert("sub".into(), Value::String(sub.clone()));
        }
        match self.aud.as_slice() {
            [] => {}
            [one] => {
                map.insert("aud".into(), Value::String(one.clone()));
            }
            many => {
                map.insert(
                    "aud".into(),
                    Value::Array(many.iter().cloned().map(Value::String).collect()),
                );
            }
        }
        map.insert("iat".into(), Value::from(iat));
        map.insert("exp".into(), Value::from(exp));
        if self.not_before {
            map.insert("nbf".into(), Value::from(iat));
        }
        let jti = match &self.jti {
            Some(jti) => jti.clone(),
            None => {
                let mut bytes = [0u8; 16];
                rng.fill(&mut bytes).map_err(|_| SignError::Random)?;
                b64url(&bytes)
            }
        };
        map.insert("jti".into(), Value::String(jti));
        Ok(map)
    }

    /// Signs at `now`, with a `jti` from the operating system's random source.
    pub fn sign(&self, key: &SigningKey, now: SystemTime) -> Result<Assertion, SignError> {
        self.sign_with_rng(key, now, &RingRandom::new())
    }

    /// Signs at `now`, with a `jti` drawn from `rng`.
    pub fn sign_with_rng(
        &self,
        key: &SigningKey,
        now: SystemTime,
        rng: &dyn RandomSource,
    ) -> Result<Assertion, SignError> {
        let payload = self.to_payload(now, rng)?;
        sign_compact(key, &self.header, &payload).map(Assertion::new)
    }

    /// Signs at `now` and wraps the result for `ClientAuthentication::Assertion` in oauth-core.
    pub fn sign_client_assertion(
        &self,
        key: &SigningKey,
        now: SystemTime,
    ) -> Result<ClientAssertion, SignError> {
        self.sign(key, now).map(ClientAssertion::jwt)
    }
}
