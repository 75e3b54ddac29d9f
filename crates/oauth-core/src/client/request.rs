//! Token requests (RFC 6749 §4 and §6, RFC 7523 §2.1, RFC 8693 §2.1) built as `http::Request`
//! values.

use std::fmt;
use std::sync::Arc;
use std::time::SystemTime;

use http::header::{ACCEPT, AUTHORIZATION, CONTENT_TYPE};
use http::{HeaderValue, Method, Request};
use zeroize::{Zeroize, Zeroizing};

use crate::authorization_details::AuthorizationDetails;
use crate::client::{AssertionSigner, BodyEncoding, Client};
use crate::endpoint::Endpoint;
use crate::error::Error;
use crate::scope::Scope;
use crate::secret::{
    Assertion, AuthorizationCode, Password, PkceVerifier, RefreshToken, SecurityToken,
};

/// `grant_type` of the JWT bearer grant (RFC 7523 §2.1).
pub const JWT_BEARER_GRANT_TYPE: &str = "urn:ietf:params:oauth:grant-type:jwt-bearer";
/// `grant_type` of token exchange (RFC 8693 §2.1).
pub const TOKEN_EXCHANGE_GRANT_TYPE: &str = "urn:ietf:params:oauth:grant-type:token-exchange";
/// Token type identifier of an OAuth access token (RFC 8693 §3).
pub const TOKEN_TYPE_ACCESS_TOKEN: &str = "urn:ietf:params:oauth:token-type:access_token";
/// Token type identifier of a JWT (RFC 8693 §3).
pub const TOKEN_TYPE_JWT: &str = "urn:ietf:params:oauth:token-type:jwt";
/// Token type identifier of an OpenID Connect ID token (RFC 8693 §3).
pub const TOKEN_TYPE_ID_TOKEN: &str = "urn:ietf:params:oauth:token-type:id_token";

/// The body of a request built by this crate.
///
/// It usually holds secrets (a client secret, a code, a refresh token, a password), so its
/// `Debug` shows only its length, and its buffer is wiped when dropped. It also remembers which
/// of the values it carries are secrets, so that whatever turns the answer into an error can
/// scrub them ([`SentSecrets`](crate::SentSecrets)); a body built elsewhere carries none.
#[derive(Clone, Default)]
pub struct RequestBody {
    bytes: Vec<u8>,
    /// The secret values in `bytes`, as given (before any encoding).
    secrets: Vec<Zeroizing<String>>,
}

impl RequestBody {
    /// The body's bytes, to hand to an HTTP client.
    pub fn expose_secret(&self) -> &[u8] {
        &self.bytes
    }

    /// A body of these bytes (wiped on drop) carrying these secret values.
    pub(crate) fn new(bytes: Vec<u8>, secrets: Vec<Zeroizing<String>>) -> Self {
        Self { bytes, secrets }
    }

    /// The secret values this body carries, as given (before any encoding).
    pub(crate) fn secrets(&self) -> &[Zeroizing<String>] {
        &self.secrets
    }

    /// Takes the bytes out, leaving the body empty. The caller becomes responsible for them.
    pub fn into_bytes(mut self) -> Vec<u8> {
        std::mem::take(&mut self.bytes)
    }

    /// The length in bytes.
    pub fn len(&self) -> usize {
        self.bytes.len()
    }

    /// Whether the body is empty.
    pub fn is_empty(&self) -> bool {
        self.bytes.is_empty()
    }
}

/// No body, as [`discovery_request`](crate::discovery_request) and other `GET`s build it: so a
/// `Request<()>` goes wherever a `Request<RequestBody>` is taken, without a `map`.
impl From<()> for RequestBody {
    fn from((): ()) -> Self {
        Self::default()
    }
}

/// Bytes built elsewhere: wiped on drop like any request body, but with no secret known to
/// scrub from an error.
impl From<Vec<u8>> for RequestBody {
    fn from(bytes: Vec<u8>) -> Self {
        Self::new(bytes, Vec::new())
    }
}

impl PartialEq for RequestBody {
    fn eq(&self, other: &Self) -> bool {
        self.bytes == other.bytes
    }
}

impl Eq for RequestBody {}

impl fmt::Debug for RequestBody {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        write!(f, "RequestBody(<{} bytes redacted>)", self.bytes.len())
    }
}

impl Drop for RequestBody {
    fn drop(&mut self) {
        self.bytes.zeroize();
    }
}

/// Request parameters in order, borrowed from the request and the client that hold them (the
/// secret types wipe themselves; the encoded body is a wiped [`RequestBody`]), so that building
/// a request copies each value once, into the body.
#[derive(Default)]
pub(crate) struct Params<'a>(Vec<(&'a str, &'a str)>, Vec<&'a str>, Vec<&'a str>);

impl<'a> Params<'a> {
    pub(crate) fn push_plain(&mut self, name: &'a str, value: &'a str) {
        self.0.push((name, value));
    }

    /// Adds a parameter whose value is a secret: the body remembers it, to scrub it from
    /// errors.
    pub(crate) fn push_secret(&mut self, name: &'a str, value: &'a str) {
        self.0.push((name, value));
        self.1.push(value);
    }

    /// Adds a parameter whose value is JSON text (RFC 9396 `authorization_details`): a form
    /// body carries the text, a JSON body the value itself.
    pub(crate) fn push_json(&mut self, name: &'a str, value: &'a str) {
        self.0.push((name, value));
        self.2.push(name);
    }

    /// The secret values pushed, as owned copies wiped on drop.
    fn secrets(&self) -> Vec<Zeroizing<String>> {
        self.1
            .iter()
            .map(|s| Zeroizing::new((*s).to_owned()))
            .collect()
    }

    fn contains(&self, name: &str) -> bool {
        self.0.iter().any(|(n, _)| *n == name)
    }

    fn to_form(&self) -> Vec<u8> {
        let len = self.0.iter().map(|(n, v)| n.len() + v.len() + 2).sum();
        let mut out = String::with_capacity(len);
        for (name, value) in &self.0 {
            if !out.is_empty() {
                out.push('&');
            }
            crate::encoding::form_encode_into(&mut out, name);
            out.push('=');
            crate::encoding::form_encode_into(&mut out, value);
        }
        out.into_bytes()
    }

    /// A JSON object; a name given more than once becomes an array, in order. Written directly
    /// (no intermediate `Value` holding copies of the secrets).
    fn to_json(&self) -> Vec<u8> {
        let mut out = Vec::with_capacity(self.0.iter().map(|(n, v)| n.len() + v.len() + 6).sum());
        out.push(b'{');
        for (i, (name, _)) in self.0.iter().enumerate() {
            if self.0[..i].iter().any(|(n, _)| n == name) {
                continue; // written with its first occurrence
            }
            if out.len() > 1 {
                out.push(b',');
            }
            json_string(&mut out, name);
            out.push(b':');
            let values: Vec<&str> = self.0[i..]
                .iter()
                .filter(|(n, _)| n == name)
                .map(|(_, v)| *v)
                .collect();
            if self.2.contains(name) {
                // Written as it was serialized: JSON text from `serde_json`.
                out.extend_from_slice(values.first().copied().unwrap_or("null").as_bytes());
            } else if let [value] = values.as_slice() {
                json_string(&mut out, value);
            } else {
                out.push(b'[');
                for (j, value) in values.iter().enumerate() {
                    if j > 0 {
                        out.push(b',');
                    }
                    json_string(&mut out, value);
                }
                out.push(b']');
            }
        }
        out.push(b'}');
        out
    }

    pub(crate) fn into_body(self, encoding: BodyEncoding) -> (Vec<u8>, &'static str) {
        match encoding {
            BodyEncoding::Form => (self.to_form(), FORM_CONTENT_TYPE),
            BodyEncoding::Json => (self.to_json(), JSON_CONTENT_TYPE),
        }
    }
}

/// Appends `text` as a JSON string literal (RFC 8259 §7 escaping).
fn json_string(out: &mut Vec<u8>, text: &str) {
    const HEX: &[u8; 16] = b"0123456789abcdef";
    out.push(b'"');
    let bytes = text.as_bytes();
    let mut start = 0;
    for (i, &b) in bytes.iter().enumerate() {
        let escape: &[u8] = match b {
            b'"' => b"\\\"",
            b'\\' => b"\\\\",
            b'\n' => b"\\n",
            b'\r' => b"\\r",
            b'\t' => b"\\t",
            0x00..=0x1f => b"",
            _ => continue,
        };
        out.extend_from_slice(&bytes[start..i]);
        if escape.is_empty() {
            out.extend_from_slice(b"\\u00");
            out.push(HEX[usize::from(b >> 4)]);
            out.push(HEX[usize::from(b & 0xf)]);
        } else {
            out.extend_from_slice(escape);
        }
        start = i + 1;
    }
    out.extend_from_slice(&bytes[start..]);
    out.push(b'"');
}

pub(crate) const FORM_CONTENT_TYPE: &str = "application/x-www-form-urlencoded";
pub(crate) const JSON_CONTENT_TYPE: &str = "application/json";

/// Builds a `POST` to `endpoint` with client authentication and the given parameters.
/// `client_assertion` is the client's per-request assertion, signed by the caller with
/// [`Client::sign_assertion`].
pub(crate) fn build_post<'a>(
    endpoint: &Endpoint,
    client: &'a Client,
    mut params: Params<'a>,
    client_assertion: Option<&'a Assertion>,
) -> Result<Request<RequestBody>, Error> {
    let authorization = client.authenticate(&mut params, client_assertion)?;
    let secrets = params.secrets();
    let (body, content_type) = params.into_body(client.body_encoding());
    // Filled in place rather than through `http::request::Builder`, which moves its parts on
    // every call (measurable on the in-process exchange benchmark).
    let mut request = Request::new(RequestBody::new(body, secrets));
    *request.method_mut() = Method::POST;
    *request.uri_mut() = endpoint.uri().clone();
    let headers = request.headers_mut();
    headers.reserve(3);
    headers.insert(CONTENT_TYPE, HeaderValue::from_static(content_type));
    headers.insert(ACCEPT, HeaderValue::from_static(JSON_CONTENT_TYPE));
    if let Some(authorization) = authorization {
        headers.insert(AUTHORIZATION, authorization);
    }
    Ok(request)
}

/// A parameter value added by the caller.
#[derive(Clone)]
enum ParamValue {
    Plain(String),
    Secret(SecurityToken),
}

impl fmt::Debug for ParamValue {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        match self {
            Self::Plain(v) => fmt::Debug::fmt(v, f),
            Self::Secret(v) => fmt::Debug::fmt(v, f),
        }
    }
}

#[derive(Clone, Debug)]
enum Grant {
    ClientCredentials,
    AuthorizationCode {
        code: AuthorizationCode,
        redirect_uri: Option<String>,
        code_verifier: Option<PkceVerifier>,
    },
    RefreshToken(RefreshToken),
    Password {
        username: String,
        password: Password,
    },
    JwtBearer(Assertion),
    JwtBearerSigned(Arc<dyn AssertionSigner>),
    TokenExchange(TokenExchange),
    Extension(String),
}

/// The parameters of an RFC 8693 token exchange.
///
/// ```
/// use oauth_core::{SecurityToken, TokenRequest};
/// use oauth_core::client::{TOKEN_TYPE_ACCESS_TOKEN, TokenExchange};
///
/// let exchange = TokenExchange::new(SecurityToken::new("incoming-token"), TOKEN_TYPE_ACCESS_TOKEN)
///     .requested_token_type(TOKEN_TYPE_ACCESS_TOKEN);
/// let request = TokenRequest::token_exchange(exchange).audience("https://backend.example");
/// # let _ = request;
/// ```
#[derive(Clone, Debug)]
pub struct TokenExchange {
    subject_token: SecurityToken,
    subject_token_type: String,
    actor: Option<(SecurityToken, String)>,
    requested_token_type: Option<String>,
}

impl TokenExchange {
    /// Exchanges `subject_token`, of the given type (such as [`TOKEN_TYPE_ACCESS_TOKEN`]).
    pub fn new(subject_token: SecurityToken, subject_token_type: impl Into<String>) -> Self {
        Self {
            subject_token,
            subject_token_type: subject_token_type.into(),
            actor: None,
            requested_token_type: None,
        }
    }

    /// Adds the `actor_token` and its type, for delegation (RFC 8693 §1.1).
    pub fn actor_token(mut self, token: SecurityToken, token_type: impl Into<String>) -> Self {
        self.actor = Some((token, token_type.into()));
        self
    }

    /// Asks for a token of this type (`requested_token_type`).
    pub fn requested_token_type(mut self, token_type: impl Into<String>) -> Self {
        self.requested_token_type = Some(token_type.into());
        self
    }
}

/// A request to the token endpoint: one grant, plus the parameters that any grant can carry.
///
/// Build it with one constructor per grant, add parameters, then turn it into an
/// `http::Request` with [`build`](Self::build). The request is a plain value: clone it, keep
/// it to run the grant again, or inspect it in tests.
///
/// ```
/// use oauth_core::{Client, ClientAuthentication, ClientSecret, Endpoint, TokenRequest};
///
/// let endpoint = Endpoint::new("https://oauth.org.com/as/token.oauth2")?;
/// let client = Client::new("my-app", ClientAuthentication::SecretBasic(ClientSecret::new("s3cr3t")));
/// let request = TokenRequest::client_credentials()
///     .scope(["read", "write"])
///     .build(&endpoint, &client)?;
/// assert_eq!(request.method(), "POST");
/// assert_eq!(request.body().expose_secret(), b"grant_type=client_credentials&scope=read+write");
/// # Ok::<(), oauth_core::Error>(())
/// ```
#[derive(Clone, Debug)]
#[must_use]
pub struct TokenRequest {
    grant: Grant,
    scope: Option<Scope>,
    audience: Vec<String>,
    resource: Vec<String>,
    authorization_details: Option<(AuthorizationDetails, String)>,
    extra: Vec<(String, ParamValue)>,
}

impl TokenRequest {
    fn new(grant: Grant) -> Self {
        Self {
            grant,
            scope: None,
            audience: Vec::new(),
            resource: Vec::new(),
            authorization_details: None,
            extra: Vec::new(),
        }
    }

    /// The client credentials grant (RFC 6749 §4.4).
    pub fn client_credentials() -> Self {
        Self::new(Grant::ClientCredentials)
    }

    /// The authorization code grant (RFC 6749 §4.1.3), with the PKCE `code_verifier`
    /// (RFC 7636 §4.5) when one was used.
    ///
    /// With the authorization code flow, prefer
    /// [`PendingAuthorization::token_request`](crate::PendingAuthorization::token_request),
    /// which fills in the redirect URI and verifier that were sent.
    pub fn authorization_code(
        code: AuthorizationCode,
        redirect_uri: Option<String>,
        code_verifier: Option<PkceVerifier>,
    ) -> Self {
        Self::new(Grant::AuthorizationCode {
            code,
            redirect_uri,
            code_verifier,
        })
    }

    /// The refresh token grant (RFC 6749 §6).
    pub fn refresh_token(refresh_token: RefreshToken) -> Self {
        Self::new(Grant::RefreshToken(refresh_token))
    }

    /// The resource owner password credentials grant (RFC 6749 §4.3).
    ///
    /// RFC 9700 §2.4 says this grant must not be used; it is here because providers (such as
    /// Anypoint) still offer it.
    pub fn password(username: impl Into<String>, password: Password) -> Self {
        Self::new(Grant::Password {
            username: username.into(),
            password,
        })
    }

    /// The JWT bearer grant (RFC 7523 §2.1), with an assertion signed by the caller (see the
    /// `jwt-assertion` crate).
    pub fn jwt_bearer(assertion: Assertion) -> Self {
        Self::new(Grant::JwtBearer(assertion))
    }

    /// The JWT bearer grant (RFC 7523 §2.1) with an assertion signed by `signer` each time the
    /// request is built: every request, retry and re-run carries a fresh `jti`, `iat` and
    /// `exp`. A [`TokenSource`](https://docs.rs/oauth-reqwest) can run it as its grant for as
    /// long as it lives; the `jwt-assertion` crate's `JwtBearerSigner` implements the signer.
    pub fn jwt_bearer_signed(signer: impl AssertionSigner + 'static) -> Self {
        Self::new(Grant::JwtBearerSigned(Arc::new(signer)))
    }

    /// Token exchange (RFC 8693 §2.1).
    pub fn token_exchange(exchange: TokenExchange) -> Self {
        Self::new(Grant::TokenExchange(exchange))
    }

    /// Any other grant, by its `grant_type`; add its parameters with [`param`](Self::param) or
    /// [`secret_param`](Self::secret_param).
    pub fn extension(grant_type: impl Into<String>) -> Self {
        Self::new(Grant::Extension(grant_type.into()))
    }

    /// Asks for these scopes (RFC 6749 §3.3), sent space-separated in the given order.
    pub fn scope<I, S>(mut self, scopes: I) -> Self
    where
        I: IntoIterator<Item = S>,
        S: Into<String>,
    {
        // An empty list sends no `scope` at all: `scope=` is not a valid value (§3.3).
        self.scope = Some(Scope::new(scopes)).filter(|s| !s.is_empty());
        self
    }

    /// Adds an `audience` (RFC 8693 §2.1; also used by Auth0-style servers with
    /// client_credentials, as on the Dataloy page). May be repeated.
    pub fn audience(mut self, audience: impl Into<String>) -> Self {
        self.audience.push(audience.into());
        self
    }

    /// Adds a `resource` indicator (RFC 8707 §2). May be repeated.
    pub fn resource(mut self, resource: impl Into<String>) -> Self {
        self.resource.push(resource.into());
        self
    }

    /// Asks for these `authorization_details` (RFC 9396 §6: with any grant, such as
    /// client credentials, or to narrow what a code or refresh token was granted). Sent as JSON
    /// text (form-encoded), or as the JSON array itself in a JSON body; an empty list sends
    /// nothing. What was granted comes back in
    /// [`TokenResponse::authorization_details`](crate::TokenResponse::authorization_details).
    ///
    /// ```
    /// use oauth_core::{Client, ClientAuthentication, ClientSecret, Endpoint, TokenRequest};
    /// use oauth_core::authorization_details::{AuthorizationDetail, AuthorizationDetails};
    ///
    /// let details = AuthorizationDetails::new()
    ///     .with(AuthorizationDetail::new("payment_initiation").actions(["initiate"]));
    /// let client = Client::new("c", ClientAuthentication::SecretPost(ClientSecret::new("s")));
    /// let request = TokenRequest::client_credentials()
    ///     .authorization_details(details)
    ///     .build(&Endpoint::new("https://as.example/token")?, &client)?;
    /// assert_eq!(
    ///     request.body().expose_secret(),
    ///     b"grant_type=client_credentials&authorization_details=%5B%7B%22type%22%3A%22payment_initiation%22%2C%22actions%22%3A%5B%22initiate%22%5D%7D%5D&client_id=c&client_secret=s",
    /// );
    /// # Ok::<(), oauth_core::Error>(())
    /// ```
    pub fn authorization_details(mut self, details: AuthorizationDetails) -> Self {
        self.authorization_details = if details.is_empty() {
            None
        } else {
            let json = details.to_json();
            Some((details, json))
        };
        self
    }

    /// The `authorization_details` this request asks for.
    pub fn requested_authorization_details(&self) -> Option<&AuthorizationDetails> {
        self.authorization_details.as_ref().map(|(d, _)| d)
    }

    /// Adds any other parameter.
    ///
    /// A name that the request already sends (such as `grant_type` or `client_secret`) makes
    /// [`build`](Self::build) fail rather than send an ambiguous request.
    pub fn param(mut self, name: impl Into<String>, value: impl Into<String>) -> Self {
        self.extra
            .push((name.into(), ParamValue::Plain(value.into())));
        self
    }

    /// Adds a parameter whose value is secret (such as an RFC 8628 `device_code`): it never
    /// appears in `Debug` output.
    pub fn secret_param(mut self, name: impl Into<String>, value: SecurityToken) -> Self {
        self.extra.push((name.into(), ParamValue::Secret(value)));
        self
    }

    /// The `grant_type` this request sends.
    pub fn grant_type(&self) -> &str {
        match &self.grant {
            Grant::ClientCredentials => "client_credentials",
            Grant::AuthorizationCode { .. } => "authorization_code",
            Grant::RefreshToken(_) => "refresh_token",
            Grant::Password { .. } => "password",
            Grant::JwtBearer(_) | Grant::JwtBearerSigned(_) => JWT_BEARER_GRANT_TYPE,
            Grant::TokenExchange(_) => TOKEN_EXCHANGE_GRANT_TYPE,
            Grant::Extension(grant_type) => grant_type,
        }
    }

    /// Whether this is a refresh token grant (RFC 6749 §6), decided from the grant itself: an
    /// extension grant that happens to be named `refresh_token` is not one.
    pub fn is_refresh(&self) -> bool {
        matches!(self.grant, Grant::RefreshToken(_))
    }

    /// Whether sending this request again can give a new token without the user: false for an
    /// authorization code (single use) and a refresh token (it is refreshed by the token
    /// lifecycle itself).
    pub fn is_repeatable(&self) -> bool {
        self.repeat() == Repeat::Always
    }

    /// When this request may be sent again after a failure (see [`Repeat`]).
    pub fn repeat(&self) -> Repeat {
        match self.grant {
            // An authorization code is single-use, and a refresh token may rotate once the
            // server has acted on the request.
            Grant::AuthorizationCode { .. } => Repeat::IfNotSent,
            Grant::RefreshToken(_) => Repeat::IfNotProcessed,
            _ => Repeat::Always,
        }
    }

    /// The scopes asked for, if any.
    pub fn requested_scope(&self) -> Option<&Scope> {
        self.scope.as_ref()
    }

    /// Builds the `POST` to the token endpoint.
    ///
    /// A request that signs an assertion per request (a [`ClientAuthentication::Signed`](crate::ClientAuthentication::Signed)
    /// client, or [`jwt_bearer_signed`](Self::jwt_bearer_signed)) needs the time: use
    /// [`build_at`](Self::build_at).
    pub fn build(
        &self,
        endpoint: &Endpoint,
        client: &Client,
    ) -> Result<Request<RequestBody>, Error> {
        self.build_parts(endpoint, client, None)
    }

    /// Builds the `POST` to the token endpoint at `now`, signing the assertions that are
    /// signed per request.
    pub fn build_at(
        &self,
        endpoint: &Endpoint,
        client: &Client,
        now: SystemTime,
    ) -> Result<Request<RequestBody>, Error> {
        self.build_parts(endpoint, client, Some(now))
    }

    /// Builds the request, signing its assertions at `now` (the body remembers them as
    /// secrets, like every other secret it carries).
    pub(crate) fn build_parts(
        &self,
        endpoint: &Endpoint,
        client: &Client,
        now: Option<SystemTime>,
    ) -> Result<Request<RequestBody>, Error> {
        let grant_assertion = match &self.grant {
            Grant::JwtBearerSigned(signer) => Some(crate::client::sign_now(
                signer.as_ref(),
                client.id().map(|id| id.as_str()),
                endpoint,
                now,
            )?),
            _ => None,
        };
        let client_assertion = client.sign_assertion(endpoint, now)?;
        self.build_with(
            endpoint,
            client,
            grant_assertion.as_ref(),
            client_assertion.as_ref(),
        )
    }

    fn build_with(
        &self,
        endpoint: &Endpoint,
        client: &Client,
        grant_assertion: Option<&Assertion>,
        client_assertion: Option<&Assertion>,
    ) -> Result<Request<RequestBody>, Error> {
        let mut params = Params::default();
        params.push_plain("grant_type", self.grant_type());
        match &self.grant {
            Grant::ClientCredentials | Grant::Extension(_) => {}
            Grant::AuthorizationCode {
                code,
                redirect_uri,
                code_verifier,
            } => {
                params.push_secret("code", code.expose_secret());
                if let Some(uri) = redirect_uri {
                    params.push_plain("redirect_uri", uri);
                }
                if let Some(verifier) = code_verifier {
                    params.push_secret("code_verifier", verifier.expose_secret());
                }
            }
            Grant::RefreshToken(token) => {
                params.push_secret("refresh_token", token.expose_secret())
            }
            Grant::Password { username, password } => {
                params.push_plain("username", username);
                params.push_secret("password", password.expose_secret());
            }
            Grant::JwtBearer(assertion) => {
                params.push_secret("assertion", assertion.expose_secret())
            }
            Grant::JwtBearerSigned(_) => {
                let assertion =
                    grant_assertion.ok_or(Error::MissingParameter { name: "assertion" })?;
                params.push_secret("assertion", assertion.expose_secret())
            }
            Grant::TokenExchange(exchange) => {
                params.push_secret("subject_token", exchange.subject_token.expose_secret());
                params.push_plain("subject_token_type", &exchange.subject_token_type);
                if let Some((token, token_type)) = &exchange.actor {
                    params.push_secret("actor_token", token.expose_secret());
                    params.push_plain("actor_token_type", token_type);
                }
                if let Some(t) = &exchange.requested_token_type {
                    params.push_plain("requested_token_type", t);
                }
            }
        }
        if let Some(scope) = &self.scope {
            params.push_plain("scope", scope.as_str());
        }
        for audience in &self.audience {
            params.push_plain("audience", audience);
        }
        for resource in &self.resource {
            params.push_plain("resource", resource);
        }
        if let Some((details, json)) = &self.authorization_details {
            details.check()?;
            params.push_json("authorization_details", json);
        }
        for (name, value) in &self.extra {
            if params.contains(name) || RESERVED.contains(&name.as_str()) {
                return Err(Error::DuplicateParameter {
                    name: crate::error::sanitize(name, 64),
                });
            }
            match value {
                ParamValue::Plain(v) => params.push_plain(name, v),
                ParamValue::Secret(v) => params.push_secret(name, v.expose_secret()),
            }
        }
        build_post(endpoint, client, params, client_assertion)
    }
}

/// When a request may be sent again after it failed.
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
#[non_exhaustive]
pub enum Repeat {
    /// Whenever the failure is transient: sending it twice does no harm (client credentials,
    /// password, JWT bearer, token exchange, introspection).
    Always,
    /// Only when the server certainly did not act on it: the connection was never made, or the
    /// server answered 503, 429 or `temporarily_unavailable` (a refresh token). After a timeout
    /// or a broken connection the server may have rotated the refresh token.
    IfNotProcessed,
    /// Only when the request provably never reached the server: the connection was never
    /// made (an authorization code). A 503 may come from a proxy after the server consumed
    /// the code, and a code redeemed twice makes the server revoke every token issued from it
    /// (RFC 6749 §4.1.2, RFC 9700 §4.5).
    IfNotSent,
}

/// Parameters that client authentication adds, so that an extra parameter cannot shadow them.
const RESERVED: &[&str] = &[
    "client_id",
    "client_secret",
    "client_assertion",
    "client_assertion_type",
];

#[cfg(test)]
pub(crate) mod tests {
    use super::*;
    use crate::client::{ClientAssertion, ClientAuthentication};
    use crate::encoding::form_parse;
    use crate::secret::ClientSecret;

    #[test]
    fn bodies_convert_without_a_map() {
        let discovery = crate::discovery_request(
            &Endpoint::new("https://as.example").unwrap(),
            crate::WellKnown::OpenIdConfiguration,
        )
        .unwrap();
        let request: Request<RequestBody> = discovery.map(Into::into);
        assert!(request.body().is_empty());
        let body = RequestBody::from(b"a=1".to_vec());
        assert_eq!(body.expose_secret(), b"a=1");
        // Bytes built elsewhere carry no secret known to scrub.
        assert!(body.secrets().is_empty());
    }

    #[test]
    fn is_refresh_is_the_grant_not_its_name() {
        assert!(TokenRequest::refresh_token(RefreshToken::new("rt")).is_refresh());
        assert!(!TokenRequest::client_credentials().is_refresh());
        assert!(!TokenRequest::password("u", Password::new("p")).is_refresh());
        // Same `grant_type` on the wire, but not the lifecycle's refresh.
        let named = TokenRequest::extension("refresh_token");
        assert_eq!(named.grant_type(), "refresh_token");
        assert!(!named.is_refresh());
    }

    /// Renders a built request as text: the method and URI, the sorted headers (sensitive ones
    /// marked), and the body decoded one parameter per line (sorted for JSON, whose key order
    /// carries no meaning).
    pub(crate) fn render(request: &Request<RequestBody>) -> String {
        let mut out = format!("{} {}\n", request.method(), request.uri());
        let mut headers: Vec<String> = request
            .headers()
            .iter()
            .map(|(name, value)| {
                let sensitive = if value.is_sensitive() {
                    " (sensitive)"
                } else {
                    ""
                };
                format!(
                    "{name}: {}{sensitive}",
                    value.to_str().unwrap_or("<binary>")
                )
            })
            .collect();
        headers.sort();
        for h in headers {
            out.push_str(&h);
            out.push('\n');
        }
        let body = request.body().expose_secret();
        let content_type = request
            .headers()
            .get(CONTENT_TYPE)
            .and_then(|v| v.to_str().ok())
            .unwrap_or("");
        if content_type == JSON_CONTENT_TYPE {
            let value: serde_json::Value = serde_json::from_slice(body).unwrap();
            for (k, v) in value.as_object().unwrap() {
                out.push_str(&format!("{k}={v}\n"));
            }
        } else {
            for (k, v) in form_parse(std::str::from_utf8(body).unwrap()) {
                out.push_str(&format!("{k}={v}\n"));
            }
        }
        out
    }

    #[track_caller]
    pub(crate) fn check(request: &TokenRequest, endpoint: &str, client: &Client, expected: &str) {
        let endpoint = Endpoint::new(endpoint).unwrap();
        let built = request.build(&endpoint, client).unwrap();
        let rendered = render(&built);
        let expected = expected
            .lines()
            .map(str::trim)
            .filter(|l| !l.is_empty())
            .collect::<Vec<_>>()
            .join("\n")
            + "\n";
        assert_eq!(
            rendered, expected,
            "\n--- got ---\n{rendered}--- expected ---\n{expected}"
        );
    }

    fn basic(id: &str, secret: &str) -> Client {
        Client::new(
            id,
            ClientAuthentication::SecretBasic(ClientSecret::new(secret)),
        )
    }

    fn post(id: &str, secret: &str) -> Client {
        Client::new(
            id,
            ClientAuthentication::SecretPost(ClientSecret::new(secret)),
        )
    }

    /// RFC 8705 §2: an mTLS client sends its `client_id` in the body and nothing secret; the
    /// certificate is the TLS layer's.
    #[test]
    fn mtls_clients_send_their_id_and_no_secret() {
        for auth in [
            ClientAuthentication::TlsClientAuth,
            ClientAuthentication::SelfSignedTlsClientAuth,
        ] {
            let client = Client::new("mtls-app", auth);
            assert!(client.uses_mtls());
            assert!(client.sent_secrets().is_empty());
            check(
                &TokenRequest::client_credentials().scope(["read"]),
                "https://mtls.as.example/token",
                &client,
                "POST https://mtls.as.example/token
                 accept: application/json
                 content-type: application/x-www-form-urlencoded
                 grant_type=client_credentials
                 scope=read
                 client_id=mtls-app",
            );
        }
        assert_eq!(
            ClientAuthentication::TlsClientAuth.method_name(),
            Some("tls_client_auth")
        );
        assert_eq!(
            ClientAuthentication::SelfSignedTlsClientAuth.method_name(),
            Some("self_signed_tls_client_auth")
        );
        assert!(!post("a", "b").uses_mtls());
    }

    #[test]
    fn every_grant_form_encoded() {
        let client = basic("app", "sec");
        // "app:sec" in base64.
        let auth = "authorization: Basic YXBwOnNlYw== (sensitive)";
        let cases: Vec<(TokenRequest, &str)> = vec![
            (
                TokenRequest::client_credentials(),
                "grant_type=client_credentials",
            ),
            (
                TokenRequest::authorization_code(
                    AuthorizationCode::new("c0de"),
                    Some("https://example.com/cb".into()),
                    Some(PkceVerifier::new("v")),
                ),
                "grant_type=authorization_code\ncode=c0de\nredirect_uri=https://example.com/cb\ncode_verifier=v",
            ),
            (
                TokenRequest::refresh_token(RefreshToken::new("rt")),
                "grant_type=refresh_token\nrefresh_token=rt",
            ),
            (
                TokenRequest::password("jsmith", Password::new("pw")),
                "grant_type=password\nusername=jsmith\npassword=pw",
            ),
            (
                TokenRequest::jwt_bearer(Assertion::new("a.b.c")),
                "grant_type=urn:ietf:params:oauth:grant-type:jwt-bearer\nassertion=a.b.c",
            ),
            (
                TokenRequest::token_exchange(
                    TokenExchange::new(SecurityToken::new("subj"), TOKEN_TYPE_ACCESS_TOKEN)
                        .actor_token(SecurityToken::new("act"), TOKEN_TYPE_JWT)
                        .requested_token_type(TOKEN_TYPE_ACCESS_TOKEN),
                ),
                "grant_type=urn:ietf:params:oauth:grant-type:token-exchange
                 subject_token=subj
                 subject_token_type=urn:ietf:params:oauth:token-type:access_token
                 actor_token=act
                 actor_token_type=urn:ietf:params:oauth:token-type:jwt
                 requested_token_type=urn:ietf:params:oauth:token-type:access_token",
            ),
            (
                TokenRequest::extension("urn:ietf:params:oauth:grant-type:device_code")
                    .secret_param("device_code", SecurityToken::new("dc")),
                "grant_type=urn:ietf:params:oauth:grant-type:device_code\ndevice_code=dc",
            ),
        ];
        for (request, body) in cases {
            check(
                &request,
                "https://as.example/token",
                &client,
                &format!(
                    "POST https://as.example/token
                     accept: application/json
                     {auth}
                     content-type: application/x-www-form-urlencoded
                     {body}"
                ),
            );
        }
    }

    #[test]
    fn common_parameters_in_order() {
        check(
            &TokenRequest::client_credentials()
                .scope(["b", "a", "c"])
                .audience("https://api.example")
                .resource("https://r1.example")
                .resource("https://r2.example")
                .param("x", "y"),
            "https://as.example/token",
            &post("app", "sec"),
            "POST https://as.example/token
             accept: application/json
             content-type: application/x-www-form-urlencoded
             grant_type=client_credentials
             scope=b a c
             audience=https://api.example
             resource=https://r1.example
             resource=https://r2.example
             x=y
             client_id=app
             client_secret=sec",
        );
    }

    #[test]
    fn json_body_repeats_become_arrays() {
        check(
            &TokenRequest::client_credentials()
                .resource("https://r1.example")
                .resource("https://r2.example"),
            "https://as.example/token",
            &post("app", "sec").with_body_encoding(BodyEncoding::Json),
            r#"POST https://as.example/token
               accept: application/json
               content-type: application/json
               client_id="app"
               client_secret="sec"
               grant_type="client_credentials"
               resource=["https://r1.example","https://r2.example"]"#,
        );
    }

    fn payment() -> AuthorizationDetails {
        use crate::authorization_details::AuthorizationDetail;
        AuthorizationDetails::new().with(
            AuthorizationDetail::new("payment_initiation")
                .actions(["initiate"])
                .member(
                    "amount",
                    serde_json::json!({"currency": "EUR", "value": "1.50"}),
                ),
        )
    }

    #[test]
    fn authorization_details_on_every_grant() {
        // RFC 9396 §6: with any grant; form-encoded JSON text.
        let grants = [
            TokenRequest::client_credentials(),
            TokenRequest::refresh_token(RefreshToken::new("rt")),
            TokenRequest::authorization_code(AuthorizationCode::new("c"), None, None),
            TokenRequest::password("u", Password::new("p")),
            TokenRequest::jwt_bearer(Assertion::new("a.b.c")),
            TokenRequest::extension("urn:x"),
        ];
        let endpoint = Endpoint::new("https://as.example/token").unwrap();
        for grant in grants {
            let request = grant
                .authorization_details(payment())
                .build(&endpoint, &post("app", "sec"))
                .unwrap();
            let body = String::from_utf8(request.body().expose_secret().to_vec()).unwrap();
            let sent = form_parse(&body)
                .into_iter()
                .find(|(n, _)| n == "authorization_details")
                .map(|(_, v)| v)
                .expect(&body);
            assert_eq!(
                AuthorizationDetails::parse(&sent).unwrap(),
                payment(),
                "{body}"
            );
        }
        check(
            &TokenRequest::client_credentials()
                .scope(["a"])
                .authorization_details(payment()),
            "https://as.example/token",
            &post("app", "sec"),
            r#"POST https://as.example/token
               accept: application/json
               content-type: application/x-www-form-urlencoded
               grant_type=client_credentials
               scope=a
               authorization_details=[{"type":"payment_initiation","actions":["initiate"],"amount":{"currency":"EUR","value":"1.50"}}]
               client_id=app
               client_secret=sec"#,
        );
        // A JSON body carries the array itself, not a string holding it.
        let request = TokenRequest::client_credentials()
            .authorization_details(payment())
            .build(
                &endpoint,
                &post("app", "sec").with_body_encoding(BodyEncoding::Json),
            )
            .unwrap();
        let body: serde_json::Value =
            serde_json::from_slice(request.body().expose_secret()).unwrap();
        assert_eq!(
            AuthorizationDetails::from_value(body["authorization_details"].clone()).unwrap(),
            payment()
        );
        // Empty: nothing sent. An empty `type`: refused before sending.
        let request = TokenRequest::client_credentials()
            .authorization_details(AuthorizationDetails::new())
            .build(&endpoint, &post("app", "sec"))
            .unwrap();
        assert_eq!(
            request.body().expose_secret(),
            b"grant_type=client_credentials&client_id=app&client_secret=sec"
        );
        let empty_type = AuthorizationDetails::new()
            .with(crate::authorization_details::AuthorizationDetail::new(""));
        assert!(matches!(
            TokenRequest::client_credentials()
                .authorization_details(empty_type)
                .build(&endpoint, &post("app", "sec")),
            Err(Error::InvalidParameter {
                name: "authorization_details",
                ..
            })
        ));
        // The parameter cannot be given twice.
        assert!(matches!(
            TokenRequest::client_credentials()
                .authorization_details(payment())
                .param("authorization_details", "[]")
                .build(&endpoint, &post("app", "sec")),
            Err(Error::DuplicateParameter { .. })
        ));
    }

    #[test]
    fn client_authentication_methods() {
        let request = TokenRequest::client_credentials();
        let endpoint = "https://as.example/token";
        check(
            &request,
            endpoint,
            &Client::new("app", ClientAuthentication::None),
            "POST https://as.example/token
             accept: application/json
             content-type: application/x-www-form-urlencoded
             grant_type=client_credentials
             client_id=app",
        );
        check(
            &request,
            endpoint,
            &Client::new(
                "app",
                ClientAuthentication::Assertion(ClientAssertion::jwt(Assertion::new("h.p.s"))),
            ),
            "POST https://as.example/token
             accept: application/json
             content-type: application/x-www-form-urlencoded
             grant_type=client_credentials
             client_id=app
             client_assertion_type=urn:ietf:params:oauth:client-assertion-type:jwt-bearer
             client_assertion=h.p.s",
        );
        check(
            &request,
            endpoint,
            &Client::anonymous(),
            "POST https://as.example/token
             accept: application/json
             content-type: application/x-www-form-urlencoded
             grant_type=client_credentials",
        );
    }

    #[test]
    fn extra_parameter_cannot_shadow() {
        let endpoint = Endpoint::new("https://as.example/token").unwrap();
        for name in ["grant_type", "client_secret", "scope"] {
            let request = TokenRequest::client_credentials()
                .scope(["a"])
                .param(name, "x");
            assert_eq!(
                request.build(&endpoint, &post("app", "sec")).unwrap_err(),
                Error::DuplicateParameter { name: name.into() }
            );
        }
    }

    #[test]
    fn repeatable_grants() {
        assert!(TokenRequest::client_credentials().is_repeatable());
        assert!(TokenRequest::password("u", Password::new("p")).is_repeatable());
        assert!(!TokenRequest::refresh_token(RefreshToken::new("r")).is_repeatable());
        assert!(
            !TokenRequest::authorization_code(AuthorizationCode::new("c"), None, None)
                .is_repeatable()
        );
    }
}
