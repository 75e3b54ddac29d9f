//! Who the client is and how it authenticates to the authorization server (RFC 6749 §2.3).

use std::fmt;
use std::sync::Arc;
use std::time::SystemTime;

use http::HeaderValue;

use crate::endpoint::Endpoint;
use crate::error::{Error, SigningError};
use crate::secret::{Assertion, ClientSecret};

/// A client identifier (RFC 6749 §2.2). Not a secret.
#[derive(Clone, Debug, PartialEq, Eq, Hash)]
pub struct ClientId(String);

impl ClientId {
    /// Wraps a client identifier.
    pub fn new(id: impl Into<String>) -> Self {
        Self(id.into())
    }

    /// The identifier.
    pub fn as_str(&self) -> &str {
        &self.0
    }
}

impl fmt::Display for ClientId {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        f.write_str(&self.0)
    }
}

impl From<&str> for ClientId {
    fn from(id: &str) -> Self {
        Self::new(id)
    }
}

impl From<String> for ClientId {
    fn from(id: String) -> Self {
        Self(id)
    }
}

/// The `client_assertion_type` for JWT client assertions (RFC 7523 §2.2).
pub const JWT_BEARER_CLIENT_ASSERTION_TYPE: &str =
    "urn:ietf:params:oauth:client-assertion-type:jwt-bearer";

/// How the client authenticates at the token, introspection and revocation endpoints.
#[derive(Clone, Debug)]
#[non_exhaustive]
pub enum ClientAuthentication {
    /// `client_secret_basic`: HTTP Basic with the RFC 6749 §2.3.1 encoding, where the id and
    /// the secret are form-urlencoded before they are joined with `:` and base64-encoded.
    SecretBasic(ClientSecret),
    /// HTTP Basic with the id and secret joined verbatim, without the §2.3.1 encoding.
    ///
    /// Many servers decode Basic credentials without form-decoding them; with such a server a
    /// secret containing `+`, `%`, `:` or non-ASCII characters only works in this mode. For
    /// secrets of letters, digits and `-._*` both modes send identical bytes.
    SecretBasicVerbatim(ClientSecret),
    /// `client_secret_post`: `client_id` and `client_secret` in the request body.
    SecretPost(ClientSecret),
    /// A client assertion (RFC 7521 §4.2) signed once, sent as it is with every request.
    ///
    /// Servers refuse a replayed `jti` and an expired assertion, so this fits one request
    /// only; for a client that sends more than one, use [`Signed`](Self::Signed).
    Assertion(ClientAssertion),
    /// `private_key_jwt` or `client_secret_jwt` (RFC 7523 §2.2) with an assertion signed for
    /// each request, each retry and each refresh (a fresh `jti`, `iat` and `exp`): the
    /// `jwt-assertion` crate's signers implement [`AssertionSigner`].
    Signed(Arc<dyn AssertionSigner>),
    /// `none`: a public client, identified by `client_id` in the body (RFC 6749 §3.2.1).
    None,
    /// `tls_client_auth` (RFC 8705 §2.1): mutual TLS with a certificate from a certificate
    /// authority the server trusts, matched against the subject (a DN or a SAN) registered
    /// for the client. The request carries `client_id` in the body and no secret; the
    /// certificate travels in the TLS handshake, so the HTTP client must present it (oauth-
    /// runtime's `HttpConfig::client_identity`).
    TlsClientAuth,
    /// `self_signed_tls_client_auth` (RFC 8705 §2.2): mutual TLS with a self-signed
    /// certificate registered for the client (its `jwks` or `jwks_uri`, an `x5c`). As for
    /// [`TlsClientAuth`](Self::TlsClientAuth): `client_id` in the body, the certificate in
    /// the TLS handshake.
    SelfSignedTlsClientAuth,
}

impl ClientAuthentication {
    /// Client assertions signed per request by `signer` (`private_key_jwt` or
    /// `client_secret_jwt`).
    pub fn signed(signer: impl AssertionSigner + 'static) -> Self {
        Self::Signed(Arc::new(signer))
    }

    /// Whether the client authenticates with mutual TLS (RFC 8705 §2: `tls_client_auth` or
    /// `self_signed_tls_client_auth`): its HTTP client must present a certificate, and the
    /// server's `mtls_endpoint_aliases` (RFC 8705 §5) are the endpoints to use.
    ///
    /// ```
    /// use oauth_core::ClientAuthentication;
    ///
    /// assert!(ClientAuthentication::TlsClientAuth.is_mtls());
    /// assert!(ClientAuthentication::SelfSignedTlsClientAuth.is_mtls());
    /// assert!(!ClientAuthentication::None.is_mtls());
    /// ```
    pub fn is_mtls(&self) -> bool {
        matches!(self, Self::TlsClientAuth | Self::SelfSignedTlsClientAuth)
    }

    /// The method's registered name (`token_endpoint_auth_method`, RFC 7591 §2), when this
    /// variant alone determines it: [`Signed`](Self::Signed) and
    /// [`Assertion`](Self::Assertion) may be `private_key_jwt` or `client_secret_jwt`
    /// (`None` here), and both Basic variants are `client_secret_basic`.
    pub fn method_name(&self) -> Option<&'static str> {
        match self {
            Self::SecretBasic(_) | Self::SecretBasicVerbatim(_) => Some("client_secret_basic"),
            Self::SecretPost(_) => Some("client_secret_post"),
            Self::None => Some("none"),
            Self::TlsClientAuth => Some("tls_client_auth"),
            Self::SelfSignedTlsClientAuth => Some("self_signed_tls_client_auth"),
            Self::Assertion(_) | Self::Signed(_) => None,
        }
    }
}

/// What an [`AssertionSigner`] is told when an assertion is needed.
#[derive(Clone, Copy, Debug)]
#[non_exhaustive]
pub struct SigningContext<'a> {
    /// The client's identifier, if the client identifies itself.
    pub client_id: Option<&'a str>,
    /// The endpoint the request goes to: the audience of a client assertion (RFC 7523 §3).
    pub endpoint: &'a str,
    /// The wall-clock time of the request, for `iat` and `exp`.
    pub now: SystemTime,
}

impl<'a> SigningContext<'a> {
    /// A context (for signers' tests; requests make their own).
    pub fn new(client_id: Option<&'a str>, endpoint: &'a str, now: SystemTime) -> Self {
        Self {
            client_id,
            endpoint,
            now,
        }
    }
}

/// Signs an assertion for one request: the seam between the sans-IO core, which knows when a
/// request is built, and a crypto crate (`jwt-assertion` implements it with ring).
///
/// Called every time a request that needs an assertion is built, so each request, retry and
/// refresh carries a fresh one.
pub trait AssertionSigner: fmt::Debug + Send + Sync {
    /// A new signed assertion for `context`.
    fn sign(&self, context: &SigningContext<'_>) -> Result<Assertion, Error>;

    /// Signs an authorization request object (RFC 9101 §4): `claims` is the whole claim set,
    /// built by the core (`iss`, `aud`, `iat`, `nbf`, `exp`, `jti` and every authorization
    /// parameter); the signer adds the header (`typ: oauth-authz-req+jwt`, its `alg` and
    /// `kid`) and signs. It must never produce an unsigned (`alg: none`) object.
    ///
    /// The default refuses: a signer says that it signs request objects by implementing this
    /// (jwt-assertion's `ClientAssertionSigner` does, with the client's key).
    fn sign_request_object(
        &self,
        claims: &serde_json::Map<String, serde_json::Value>,
    ) -> Result<Assertion, Error> {
        let _ = claims;
        Err(Error::Signing(SigningError::msg(
            "this signer does not sign request objects (RFC 9101)",
        )))
    }

    /// The JWS algorithm it signs with (`"PS256"`, `"ES256"`, `"HS256"`, ...), if it says: a
    /// security profile ([`Profile`](crate::client::profile::Profile)) refuses a signer that
    /// does not.
    fn algorithm(&self) -> Option<&str> {
        None
    }

    /// How long each assertion it signs is valid (`exp` - `iat`), if it says.
    fn lifetime(&self) -> Option<std::time::Duration> {
        None
    }

    /// The `aud` its client assertions carry, if it is fixed (`None`: the endpoint's URL, or
    /// unknown). FAPI 2.0 requires the authorization server's issuer identifier.
    fn audience(&self) -> Option<&str> {
        None
    }
}

/// Signs with `signer`, or explains that the time is needed.
pub(crate) fn sign_now(
    signer: &dyn AssertionSigner,
    client_id: Option<&str>,
    endpoint: &Endpoint,
    now: Option<SystemTime>,
) -> Result<Assertion, Error> {
    let now = now.ok_or_else(|| {
        Error::Signing(SigningError::msg(
            "an assertion signed per request needs the time: build the request with build_at",
        ))
    })?;
    signer.sign(&SigningContext::new(client_id, endpoint.as_str(), now))
}

/// A client assertion and its type (RFC 7521 §4.2).
#[derive(Clone, Debug)]
pub struct ClientAssertion {
    assertion_type: String,
    assertion: Assertion,
}

impl ClientAssertion {
    /// A JWT client assertion (`private_key_jwt` or `client_secret_jwt`, RFC 7523 §2.2).
    pub fn jwt(assertion: Assertion) -> Self {
        Self {
            assertion_type: JWT_BEARER_CLIENT_ASSERTION_TYPE.to_owned(),
            assertion,
        }
    }

    /// An assertion of another type (for example SAML 2.0, RFC 7522).
    pub fn with_type(assertion_type: impl Into<String>, assertion: Assertion) -> Self {
        Self {
            assertion_type: assertion_type.into(),
            assertion,
        }
    }

    /// The `client_assertion_type`.
    pub fn assertion_type(&self) -> &str {
        &self.assertion_type
    }

    /// The assertion.
    pub fn assertion(&self) -> &Assertion {
        &self.assertion
    }
}

/// How request parameters travel in the body.
#[derive(Clone, Copy, Debug, Default, PartialEq, Eq)]
#[non_exhaustive]
pub enum BodyEncoding {
    /// `application/x-www-form-urlencoded`, as RFC 6749 §4 specifies.
    #[default]
    Form,
    /// `application/json`, as Anypoint Platform and Dataloy document it. Values are strings;
    /// a repeated parameter (such as `resource`) becomes an array.
    Json,
}

/// A client: its identifier, how it authenticates, and how it encodes request bodies.
///
/// ```
/// use oauth_core::{BodyEncoding, Client, ClientAuthentication, ClientSecret};
///
/// // Dataloy's client credentials: client_id and client_secret in a JSON body.
/// let client = Client::new("G99j845dM4", ClientAuthentication::SecretPost(ClientSecret::new("s3cr3t")))
///     .with_body_encoding(BodyEncoding::Json);
/// assert_eq!(client.id().map(|id| id.as_str()), Some("G99j845dM4"));
/// ```
#[derive(Clone, Debug)]
pub struct Client {
    id: Option<ClientId>,
    auth: ClientAuthentication,
    encoding: BodyEncoding,
    dpop: Option<crate::dpop::Dpop>,
}

impl Client {
    /// A client with the given identifier and authentication, sending form-encoded bodies.
    pub fn new(id: impl Into<ClientId>, auth: ClientAuthentication) -> Self {
        Self {
            id: Some(id.into()),
            auth,
            encoding: BodyEncoding::Form,
            dpop: None,
        }
    }

    /// A client that does not identify itself in the request at all.
    ///
    /// For the JWT bearer grant (RFC 7523 §2.1), where the assertion's `iss` names the client
    /// and "authentication of the client is optional", as Anypoint documents it, whose request
    /// holds only `grant_type` and `assertion`.
    pub fn anonymous() -> Self {
        Self {
            id: None,
            auth: ClientAuthentication::None,
            encoding: BodyEncoding::Form,
            dpop: None,
        }
    }

    /// Sets how request bodies are encoded.
    pub fn with_body_encoding(mut self, encoding: BodyEncoding) -> Self {
        self.encoding = encoding;
        self
    }

    /// Proves possession of this DPoP key (RFC 9449) in every token request, and in every
    /// request that uses a DPoP-bound token it gets.
    pub fn with_dpop(mut self, dpop: crate::dpop::Dpop) -> Self {
        self.dpop = Some(dpop);
        self
    }

    /// The client's DPoP key, if it has one.
    pub fn dpop(&self) -> Option<&crate::dpop::Dpop> {
        self.dpop.as_ref()
    }

    /// The client identifier, unless the client is [anonymous](Self::anonymous).
    pub fn id(&self) -> Option<&ClientId> {
        self.id.as_ref()
    }

    /// How the client authenticates.
    pub fn authentication(&self) -> &ClientAuthentication {
        &self.auth
    }

    /// Whether the client authenticates with mutual TLS (RFC 8705 §2), see
    /// [`ClientAuthentication::is_mtls`].
    pub fn uses_mtls(&self) -> bool {
        self.auth.is_mtls()
    }

    /// How request bodies are encoded.
    pub fn body_encoding(&self) -> BodyEncoding {
        self.encoding
    }

    /// The client assertion for a request to `endpoint` at `now`, when the client signs one
    /// per request.
    pub(crate) fn sign_assertion(
        &self,
        endpoint: &Endpoint,
        now: Option<SystemTime>,
    ) -> Result<Option<Assertion>, Error> {
        match (&self.auth, &self.id) {
            (ClientAuthentication::Signed(signer), Some(id)) => {
                sign_now(signer.as_ref(), Some(id.as_str()), endpoint, now).map(Some)
            }
            _ => Ok(None),
        }
    }

    /// Every form in which this client's secret travels: the secret itself and its Basic
    /// header's base64 (both encodings), to scrub them from what a server echoes.
    pub(crate) fn sent_secrets(&self) -> Vec<String> {
        use base64::Engine as _;
        let Some(secret) = self.secret() else {
            return Vec::new();
        };
        let mut out = vec![secret.to_owned()];
        if let Some(id) = &self.id {
            let b64 = |s: &str| base64::engine::general_purpose::STANDARD.encode(s.as_bytes());
            let mut encoded = String::new();
            crate::encoding::form_encode_into(&mut encoded, id.as_str());
            encoded.push(':');
            crate::encoding::form_encode_into(&mut encoded, secret);
            out.push(b64(&format!("{}:{secret}", id.as_str())));
            out.push(b64(&encoded));
        }
        out
    }

    /// The secret this client sends, if any.
    pub(crate) fn secret(&self) -> Option<&str> {
        match &self.auth {
            ClientAuthentication::SecretBasic(s)
            | ClientAuthentication::SecretBasicVerbatim(s)
            | ClientAuthentication::SecretPost(s) => Some(s.expose_secret()),
            ClientAuthentication::Assertion(a) => Some(a.assertion().expose_secret()),
            _ => None,
        }
    }

    /// Adds the client's identification to a request: an `Authorization` header (returned) and
    /// body parameters (appended to `params`). `signed` is the assertion from
    /// [`sign_assertion`](Self::sign_assertion).
    pub(crate) fn authenticate<'a>(
        &'a self,
        params: &mut crate::request::Params<'a>,
        signed: Option<&'a Assertion>,
    ) -> Result<Option<HeaderValue>, Error> {
        let id = match &self.id {
            Some(id) => id.as_str(),
            None => return Ok(None),
        };
        match &self.auth {
            ClientAuthentication::SecretBasic(secret) => {
                // RFC 6749 §2.3.1: each part form-encoded, into one wiped buffer.
                let secret = secret.expose_secret();
                let mut joined =
                    zeroize::Zeroizing::new(String::with_capacity(id.len() + secret.len() + 8));
                crate::encoding::form_encode_into(&mut joined, id);
                joined.push(':');
                crate::encoding::form_encode_into(&mut joined, secret);
                basic_from_joined(&joined).map(Some)
            }
            ClientAuthentication::SecretBasicVerbatim(secret) => {
                basic_header(id, secret.expose_secret()).map(Some)
            }
            ClientAuthentication::SecretPost(secret) => {
                params.push_plain("client_id", id);
                params.push_secret("client_secret", secret.expose_secret());
                Ok(None)
            }
            ClientAuthentication::Assertion(assertion) => {
                params.push_plain("client_id", id);
                params.push_plain("client_assertion_type", assertion.assertion_type());
                params.push_secret("client_assertion", assertion.assertion().expose_secret());
                Ok(None)
            }
            ClientAuthentication::Signed(_) => {
                let assertion = signed.ok_or(Error::MissingParameter {
                    name: "client_assertion",
                })?;
                params.push_plain("client_id", id);
                params.push_plain("client_assertion_type", JWT_BEARER_CLIENT_ASSERTION_TYPE);
                params.push_secret("client_assertion", assertion.expose_secret());
                Ok(None)
            }
            // RFC 8705 §2: the client is identified by `client_id` and authenticated by the
            // certificate of the TLS connection, which the body does not name.
            ClientAuthentication::None
            | ClientAuthentication::TlsClientAuth
            | ClientAuthentication::SelfSignedTlsClientAuth => {
                params.push_plain("client_id", id);
                Ok(None)
            }
        }
    }
}

/// Builds a sensitive `Basic` authorization header from a user and password, verbatim.
pub(crate) fn basic_header(user: &str, password: &str) -> Result<HeaderValue, Error> {
    if user.contains(':') {
        // RFC 7617 §2: the user-id cannot contain a colon. After the §2.3.1 encoding it never
        // does; in verbatim mode it would silently move the split point.
        return Err(Error::InvalidHeaderValue {
            what: "client_id (a Basic user-id cannot contain ':')",
        });
    }
    let mut joined =
        zeroize::Zeroizing::new(String::with_capacity(user.len() + password.len() + 1));
    joined.push_str(user);
    joined.push(':');
    joined.push_str(password);
    basic_from_joined(&joined)
}

/// `Basic base64(user:password)`, every intermediate buffer wiped.
fn basic_from_joined(joined: &str) -> Result<HeaderValue, Error> {
    use base64::Engine as _;
    let mut value =
        zeroize::Zeroizing::new(String::with_capacity(6 + joined.len().div_ceil(3) * 4));
    value.push_str("Basic ");
    base64::engine::general_purpose::STANDARD.encode_string(joined.as_bytes(), &mut value);
    let mut header = HeaderValue::from_str(&value).map_err(|_| Error::InvalidHeaderValue {
        what: "Authorization",
    })?;
    header.set_sensitive(true);
    Ok(header)
}
