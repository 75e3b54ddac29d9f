//! Assertions signed per request: the `oauth_core::AssertionSigner` implementations.

use std::sync::Arc;
use std::time::Duration;

use oauth_core::{
    Assertion, AssertionSigner, ClientAuthentication, Error, SigningContext, SigningError,
    TokenRequest,
};
use serde_json::{Map, Value};

use crate::{Header, JwtClaims, RingRandom, SignError, SigningKey, sign_compact};

impl From<SignError> for Error {
    fn from(e: SignError) -> Self {
        Self::Signing(SigningError::new(&e.to_string(), e))
    }
}

/// `private_key_jwt` (or `client_secret_jwt` with an HMAC key): a client assertion signed for
/// each request (RFC 7523 §2.2, OpenID Connect Core §9), with `iss` = `sub` = the client id,
/// `aud` = the endpoint the request goes to (or the audience set here), a fresh `jti`, and
/// `exp` = `iat` + the lifetime (60 s by default).
///
/// ```
/// use jwt_assertion::{Algorithm, ClientAssertionSigner, SigningKey};
/// use oauth_core::{Client, ClientAuthentication, Endpoint, TokenRequest};
///
/// # let pem = include_str!("../tests/keys/p256-pkcs8.pem");
/// let key = SigningKey::from_pem(pem, Algorithm::ES256)?;
/// let client = Client::new("my-client", ClientAuthentication::signed(ClientAssertionSigner::new(key)));
/// let endpoint = Endpoint::new("https://as.example/token")?;
/// let first = TokenRequest::client_credentials().build_at(&endpoint, &client, std::time::SystemTime::now())?;
/// let second = TokenRequest::client_credentials().build_at(&endpoint, &client, std::time::SystemTime::now())?;
/// assert_ne!(first.body(), second.body()); // a new jti each time
/// # Ok::<(), Box<dyn std::error::Error>>(())
/// ```
#[derive(Clone, Debug)]
pub struct ClientAssertionSigner {
    key: Arc<SigningKey>,
    audience: Option<String>,
    lifetime: Duration,
    rng: RingRandom,
}

impl ClientAssertionSigner {
    /// Signs with `key` (a `SigningKey`, or an `Arc` of one shared with other signers).
    pub fn new(key: impl Into<Arc<SigningKey>>) -> Self {
        Self {
            key: key.into(),
            audience: None,
            lifetime: crate::DEFAULT_LIFETIME,
            rng: RingRandom::new(),
        }
    }

    /// Uses this `aud` instead of the endpoint's URI (some servers want their issuer).
    pub fn audience(mut self, audience: impl Into<String>) -> Self {
        self.audience = Some(audience.into());
        self
    }

    /// How long each assertion is valid (default 60 s).
    pub fn lifetime(mut self, lifetime: Duration) -> Self {
        self.lifetime = lifetime;
        self
    }

    /// This signer as a client's authentication.
    pub fn into_authentication(self) -> ClientAuthentication {
        ClientAuthentication::signed(self)
    }
}

impl AssertionSigner for ClientAssertionSigner {
    fn sign(&self, context: &SigningContext<'_>) -> Result<Assertion, Error> {
        let client_id = context.client_id.ok_or(Error::MissingParameter {
            name: "client_id (a client assertion names its client)",
        })?;
        let audience = self.audience.as_deref().unwrap_or(context.endpoint);
        Ok(JwtClaims::client_assertion(client_id, audience)
            .lifetime(self.lifetime)
            .sign_with_rng(&self.key, context.now, &self.rng)?)
    }

    /// A request object (RFC 9101 §4) with the client's key: `typ: oauth-authz-req+jwt`, the
    /// key's `alg` and `kid`, the claims as oauth-core built them (`AuthorizationRequest::
    /// request_object`). A `SigningKey` always signs: there is no `alg: none`.
    fn sign_request_object(&self, claims: &Map<String, Value>) -> Result<Assertion, Error> {
        Ok(
            sign_compact(&self.key, &Header::new().typ(REQUEST_OBJECT_TYPE), claims)
                .map(Assertion::new)?,
        )
    }

    fn algorithm(&self) -> Option<&str> {
        Some(self.key.algorithm().as_str())
    }

    fn lifetime(&self) -> Option<Duration> {
        Some(self.lifetime)
    }

    fn audience(&self) -> Option<&str> {
        self.audience.as_deref()
    }
}

/// `typ` of a request object (RFC 9101 §4).
const REQUEST_OBJECT_TYPE: &str = "oauth-authz-req+jwt";

/// The JWT bearer grant's assertion (RFC 7523 §2.1), signed each time the grant is sent: `iss`
/// and `sub` as given (the Anypoint page: the client id and the user), `aud` the token endpoint
/// (or the audience set here), a fresh `jti`, `exp` = `iat` + the lifetime.
///
/// ```
/// use jwt_assertion::{Algorithm, JwtBearerSigner, SigningKey};
/// use oauth_core::{Client, Endpoint, TokenRequest};
///
/// # let pem = include_str!("../tests/keys/ed25519-pkcs8.pem");
/// let key = SigningKey::from_pem(pem, Algorithm::EdDSA)?;
/// let grant = TokenRequest::jwt_bearer_signed(JwtBearerSigner::new(key, "my-client-id", "jsmith"));
/// let endpoint = Endpoint::new("https://anypoint.mulesoft.com/accounts/api/v2/oauth2/token")?;
/// let request = grant.build_at(&endpoint, &Client::anonymous(), std::time::SystemTime::now())?;
/// # let _ = request;
/// # Ok::<(), Box<dyn std::error::Error>>(())
/// ```
#[derive(Clone, Debug)]
pub struct JwtBearerSigner {
    key: Arc<SigningKey>,
    claims: JwtClaims,
    audience: Option<String>,
    rng: RingRandom,
}

impl JwtBearerSigner {
    /// Signs assertions with `key` (a `SigningKey`, or an `Arc` of one) for `subject`, issued
    /// by `issuer`.
    pub fn new(
        key: impl Into<Arc<SigningKey>>,
        issuer: impl Into<String>,
        subject: impl Into<String>,
    ) -> Self {
        Self {
            key: key.into(),
            claims: JwtClaims::new().issuer(issuer).subject(subject),
            audience: None,
            rng: RingRandom::new(),
        }
    }

    /// Uses this `aud` instead of the token endpoint's URI.
    pub fn audience(mut self, audience: impl Into<String>) -> Self {
        self.audience = Some(audience.into());
        self
    }

    /// How long each assertion is valid (default 60 s).
    pub fn lifetime(mut self, lifetime: Duration) -> Self {
        self.claims = self.claims.lifetime(lifetime);
        self
    }

    /// Adds a claim to every assertion.
    pub fn claim(mut self, name: impl Into<String>, value: Value) -> Self {
        self.claims = self.claims.claim(name, value);
        self
    }

    /// The grant request that signs with this signer each time it is built.
    pub fn into_grant(self) -> TokenRequest {
        TokenRequest::jwt_bearer_signed(self)
    }
}

impl AssertionSigner for JwtBearerSigner {
    fn sign(&self, context: &SigningContext<'_>) -> Result<Assertion, Error> {
        let audience = self.audience.as_deref().unwrap_or(context.endpoint);
        Ok(self.claims.clone().audience(audience).sign_with_rng(
            &self.key,
            context.now,
            &self.rng,
        )?)
    }
}

#[cfg(test)]
mod tests {
    use super::*;
    use crate::Algorithm;
    use oauth_core::{Client, Endpoint};
    use std::time::{SystemTime, UNIX_EPOCH};

    fn claims_of(jwt: &str) -> Value {
        use base64::Engine as _;
        let payload = jwt.split('.').nth(1).unwrap();
        serde_json::from_slice(
            &base64::engine::general_purpose::URL_SAFE_NO_PAD
                .decode(payload)
                .unwrap(),
        )
        .unwrap()
    }

    #[test]
    fn each_build_signs_a_new_client_assertion_for_the_endpoint() {
        let key = SigningKey::hmac(&[7u8; 32], Algorithm::HS256).unwrap();
        let client = Client::new("app", ClientAssertionSigner::new(key).into_authentication());
        let endpoint = Endpoint::new("https://as.example/token").unwrap();
        let now = UNIX_EPOCH + Duration::from_secs(1_800_000_000);
        let mut jtis = std::collections::HashSet::new();
        for i in 0..5 {
            let at = now + Duration::from_secs(i);
            let request = TokenRequest::client_credentials()
                .build_at(&endpoint, &client, at)
                .unwrap();
            let body = String::from_utf8(request.body().expose_secret().to_vec()).unwrap();
            let jwt = body.split("client_assertion=").nth(1).unwrap();
            let c = claims_of(jwt);
            assert_eq!(c["iss"], "app");
            assert_eq!(c["sub"], "app");
            assert_eq!(c["aud"], "https://as.example/token");
            assert_eq!(c["iat"], 1_800_000_000 + i);
            assert_eq!(c["exp"], 1_800_000_060 + i);
            assert!(jtis.insert(c["jti"].as_str().unwrap().to_owned()));
        }
        // Without the time, building explains what is needed.
        let e = TokenRequest::client_credentials()
            .build(&endpoint, &client)
            .unwrap_err();
        assert!(e.to_string().contains("build_at"), "{e}");
    }

    #[test]
    fn jwt_bearer_grant_signs_per_build_with_its_audience() {
        let key = SigningKey::hmac(&[9u8; 32], Algorithm::HS256).unwrap();
        let grant = JwtBearerSigner::new(key, "client-id", "jsmith")
            .audience("https://anypoint.example/token")
            .claim("scope", Value::from("read"))
            .into_grant();
        let endpoint = Endpoint::new("https://as.example/token").unwrap();
        let body = |at| {
            let r = grant.build_at(&endpoint, &Client::anonymous(), at).unwrap();
            String::from_utf8(r.body().expose_secret().to_vec()).unwrap()
        };
        let (a, b) = (body(SystemTime::now()), body(SystemTime::now()));
        assert_ne!(a, b);
        let c = claims_of(a.split("assertion=").nth(1).unwrap());
        assert_eq!(
            (c["iss"].as_str(), c["sub"].as_str()),
            (Some("client-id"), Some("jsmith"))
        );
        assert_eq!(c["aud"], "https://anypoint.example/token");
        assert_eq!(c["scope"], "read");
    }

    #[test]
    fn a_signing_failure_is_a_typed_core_error_with_its_source() {
        let e: Error = SignError::TimeBeforeEpoch.into();
        assert!(matches!(e, Error::Signing(_)));
        assert_eq!(e.fault(), oauth_core::Fault::Caller);
        let source = std::error::Error::source(&e).unwrap();
        assert!(source.to_string().contains("before 1970"), "{source}");
    }
}
