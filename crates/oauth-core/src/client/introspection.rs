//! Token introspection (RFC 7662) and revocation (RFC 7009): requests built as `http::Request`
//! values, responses parsed leniently.

use std::fmt;
use std::sync::Arc;
use std::time::{Duration, SystemTime};

use http::{Request, Response};
use serde_json::{Map, Value};

use crate::authorization_details::AuthorizationDetails;
use crate::client::Client;
use crate::endpoint::Endpoint;
use crate::error::{Error, UnexpectedReason};
use crate::request::{Params, RequestBody, build_post};
use crate::response::{TokenType, parse_object, unexpected};
use crate::scope::Scope;
use crate::secret::SecurityToken;

/// What kind of token is being introspected or revoked (`token_type_hint`, RFC 7009 §2.1).
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
#[non_exhaustive]
pub enum TokenTypeHint {
    /// `access_token`.
    AccessToken,
    /// `refresh_token`.
    RefreshToken,
}

impl TokenTypeHint {
    /// The parameter value.
    pub fn as_str(self) -> &'static str {
        match self {
            Self::AccessToken => "access_token",
            Self::RefreshToken => "refresh_token",
        }
    }
}

/// An introspection request (RFC 7662 §2.1): "is this token active, and what is it for?".
///
/// The client authenticates as for token requests ([`Client`]: Basic, post, JSON body,
/// assertion). A resource server usually introspects with its own credentials.
///
/// ```
/// use oauth_core::{Client, ClientAuthentication, ClientSecret, Endpoint, SecurityToken};
/// use oauth_core::client::introspection::{IntrospectionRequest, TokenTypeHint};
///
/// let endpoint = Endpoint::new("https://as.example/introspect")?;
/// let api = Client::new("gateway", ClientAuthentication::SecretBasic(ClientSecret::new("s3cret")));
/// let request = IntrospectionRequest::new(SecurityToken::new("mF_9.B5f-4.1JqM"))
///     .token_type_hint(TokenTypeHint::AccessToken)
///     .build(&endpoint, &api)?;
/// assert_eq!(request.body().expose_secret(), b"token=mF_9.B5f-4.1JqM&token_type_hint=access_token");
/// # Ok::<(), oauth_core::Error>(())
/// ```
#[derive(Clone, Debug)]
pub struct IntrospectionRequest {
    token: SecurityToken,
    hint: Option<TokenTypeHint>,
}

impl IntrospectionRequest {
    /// Introspects `token`.
    pub fn new(token: SecurityToken) -> Self {
        Self { token, hint: None }
    }

    /// Tells the server what kind of token it is.
    pub fn token_type_hint(mut self, hint: TokenTypeHint) -> Self {
        self.hint = Some(hint);
        self
    }

    /// Parses the answer to this request ([`parse_introspection_response`]); an error keeps
    /// nothing of the token or the client's secret, however the server echoed them.
    pub fn parse_response<B: AsRef<[u8]>>(
        &self,
        client: &Client,
        response: &Response<B>,
    ) -> Result<Introspection, Error> {
        let first = parse_introspection_response(response);
        scrub_parse(
            first,
            &self.token,
            client,
            response,
            parse_introspection_response,
        )
    }

    /// Builds the `POST` to the introspection endpoint. A client that signs an assertion per
    /// request needs the time: use [`build_at`](Self::build_at).
    pub fn build(
        &self,
        endpoint: &Endpoint,
        client: &Client,
    ) -> Result<Request<RequestBody>, Error> {
        build_token_post(&self.token, self.hint, endpoint, client, None)
    }

    /// Builds the `POST` to the introspection endpoint at `now` (the time a per-request client
    /// assertion is signed with).
    pub fn build_at(
        &self,
        endpoint: &Endpoint,
        client: &Client,
        now: SystemTime,
    ) -> Result<Request<RequestBody>, Error> {
        build_token_post(&self.token, self.hint, endpoint, client, Some(now))
    }
}

/// A revocation request (RFC 7009 §2.1).
///
/// ```
/// use oauth_core::{Client, ClientAuthentication, ClientSecret, Endpoint, SecurityToken};
/// use oauth_core::client::introspection::{RevocationRequest, TokenTypeHint};
///
/// let endpoint = Endpoint::new("https://as.example/revoke")?;
/// let client = Client::new("app", ClientAuthentication::SecretPost(ClientSecret::new("s3cret")));
/// let request = RevocationRequest::new(SecurityToken::new("45ghiukldjahdnhzdauz"))
///     .token_type_hint(TokenTypeHint::RefreshToken)
///     .build(&endpoint, &client)?;
/// assert_eq!(
///     request.body().expose_secret(),
///     b"token=45ghiukldjahdnhzdauz&token_type_hint=refresh_token&client_id=app&client_secret=s3cret"
/// );
/// # Ok::<(), oauth_core::Error>(())
/// ```
#[derive(Clone, Debug)]
pub struct RevocationRequest {
    token: SecurityToken,
    hint: Option<TokenTypeHint>,
}

impl RevocationRequest {
    /// Revokes `token`.
    pub fn new(token: SecurityToken) -> Self {
        Self { token, hint: None }
    }

    /// Tells the server what kind of token it is.
    pub fn token_type_hint(mut self, hint: TokenTypeHint) -> Self {
        self.hint = Some(hint);
        self
    }

    /// Parses the answer to this request ([`parse_revocation_response`]); an error keeps
    /// nothing of the token or the client's secret, however the server echoed them.
    pub fn parse_response<B: AsRef<[u8]>>(
        &self,
        client: &Client,
        response: &Response<B>,
    ) -> Result<(), Error> {
        let first = parse_revocation_response(response);
        scrub_parse(
            first,
            &self.token,
            client,
            response,
            parse_revocation_response,
        )
    }

    /// Builds the `POST` to the revocation endpoint. A client that signs an assertion per
    /// request needs the time: use [`build_at`](Self::build_at).
    pub fn build(
        &self,
        endpoint: &Endpoint,
        client: &Client,
    ) -> Result<Request<RequestBody>, Error> {
        build_token_post(&self.token, self.hint, endpoint, client, None)
    }

    /// Builds the `POST` to the revocation endpoint at `now` (the time a per-request client
    /// assertion is signed with).
    pub fn build_at(
        &self,
        endpoint: &Endpoint,
        client: &Client,
        now: SystemTime,
    ) -> Result<Request<RequestBody>, Error> {
        build_token_post(&self.token, self.hint, endpoint, client, Some(now))
    }
}

/// The `POST` of an introspection or revocation request: `token` (+ hint) with the client's
/// authentication, its assertion signed at `now` when it signs per request.
fn build_token_post(
    token: &SecurityToken,
    hint: Option<TokenTypeHint>,
    endpoint: &Endpoint,
    client: &Client,
    now: Option<SystemTime>,
) -> Result<Request<RequestBody>, Error> {
    let assertion = client.sign_assertion(endpoint, now)?;
    build_post(
        endpoint,
        client,
        token_params(token, hint),
        assertion.as_ref(),
    )
}

/// `first`, the parse of `response`, if it succeeded; otherwise the parse of a copy scrubbed
/// of the token and the client's secrets, so that the error keeps none of them.
fn scrub_parse<B: AsRef<[u8]>, T>(
    first: Result<T, Error>,
    token: &SecurityToken,
    client: &Client,
    response: &Response<B>,
    parse: impl Fn(&Response<Vec<u8>>) -> Result<T, Error>,
) -> Result<T, Error> {
    if first.is_ok() {
        return first;
    }
    let client_secrets = client.sent_secrets();
    let mut secrets: Vec<&str> = client_secrets.iter().map(String::as_str).collect();
    secrets.push(token.expose_secret());
    crate::error::parse_scrubbed(response, &secrets, parse)
}

fn token_params(token: &SecurityToken, hint: Option<TokenTypeHint>) -> Params<'_> {
    let mut params = Params::default();
    params.push_secret("token", token.expose_secret());
    if let Some(hint) = hint {
        params.push_plain("token_type_hint", hint.as_str());
    }
    params
}

/// Reads a revocation response (RFC 7009 §2.2): any 200 is success (the body is ignored, and
/// revoking an unknown or already revoked token also succeeds); an OAuth error such as
/// `unsupported_token_type` is [`Error::Server`]; anything else (including 503, §2.2.1) is
/// [`Error::UnexpectedResponse`], whose status the caller can check.
pub fn parse_revocation_response<B: AsRef<[u8]>>(response: &Response<B>) -> Result<(), Error> {
    if response.status() == http::StatusCode::OK {
        return Ok(());
    }
    match parse_object(response) {
        Err(e) => Err(e),
        Ok(_) => Err(unexpected(response, UnexpectedReason::Status)),
    }
}

/// What the introspection endpoint said about a token (RFC 7662 §2.2).
///
/// Only `active` is required by the RFC; every other member is optional. `Debug` shows the
/// members this crate interprets and the names of the others (their values may be personal
/// data or credentials).
///
/// A result is small: the token's own times, and what it says about who and what (client,
/// scopes, subject, audiences, ...) behind an `Arc` that results about the same client and
/// subject can share ([`IntrospectionPool`]), so that a cache of many tokens holds each client's
/// description once.
#[derive(Clone, PartialEq)]
pub struct Introspection {
    active: bool,
    expires_at: Option<SystemTime>,
    issued_at: Option<SystemTime>,
    not_before: Option<SystemTime>,
    about: Arc<About>,
}

/// The members of a result that tokens of one client and subject have in common.
#[derive(Clone, Default, PartialEq)]
struct About {
    client_id: Option<String>,
    scope: Option<Scope>,
    subject: Option<String>,
    audience: Vec<String>,
    issuer: Option<String>,
    token_type: Option<TokenType>,
    username: Option<String>,
    extra: Map<String, Value>,
}

impl std::hash::Hash for About {
    fn hash<H: std::hash::Hasher>(&self, state: &mut H) {
        // Equal values hash equally; `extra`'s values (not hashable) are left to `eq`.
        self.client_id.hash(state);
        self.scope.as_ref().map(Scope::as_str).hash(state);
        self.subject.hash(state);
        self.audience.hash(state);
        self.issuer.hash(state);
        self.token_type.as_ref().map(TokenType::as_str).hash(state);
        self.username.hash(state);
        for key in self.extra.keys() {
            key.hash(state);
        }
    }
}

impl Eq for About {}

impl fmt::Debug for About {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        f.write_str("About { .. }")
    }
}

/// Shares the client-and-subject part of [`Introspection`] results: a cache that keeps its
/// results through a pool holds one copy of each distinct description however many tokens
/// carry it. Pure bookkeeping (no I/O); [`prune`](Self::prune) forgets descriptions no result
/// uses any more.
#[derive(Debug, Default)]
pub struct IntrospectionPool {
    shared: std::collections::HashSet<Arc<About>>,
}

impl IntrospectionPool {
    /// An empty pool.
    pub fn new() -> Self {
        Self::default()
    }

    /// How many distinct descriptions it holds.
    pub fn len(&self) -> usize {
        self.shared.len()
    }

    /// Whether it holds none.
    pub fn is_empty(&self) -> bool {
        self.shared.is_empty()
    }

    /// Forgets the descriptions no result holds any more.
    pub fn prune(&mut self) {
        self.shared.retain(|a| Arc::strong_count(a) > 1);
    }
}

impl Introspection {
    /// An inactive result, as the endpoint answers for an unknown, expired or revoked token.
    pub fn inactive() -> Self {
        Self {
            active: false,
            expires_at: None,
            issued_at: None,
            not_before: None,
            about: Arc::default(),
        }
    }

    /// This result as a cache should keep it: only the members a decision or a `Principal`
    /// reads (`client_id`, `scope`, `exp`, `nbf`, `sub`, `aud`, `iss`, `token_type`, and of the
    /// others `cnf`, which binds a DPoP token, and `authorization_details`, which an
    /// [`ApiPolicy`](crate::resource_server::ApiPolicy) may require, plus the names in `keep`), the description shared
    /// through `pool` with every other result that has an equal one.
    pub fn compacted(&self, pool: &mut IntrospectionPool, keep: &[&str]) -> Self {
        let mut about = About {
            username: None,
            extra: Map::new(),
            ..(*self.about).clone()
        };
        for (name, value) in &self.about.extra {
            if name == "cnf" || name == "authorization_details" || keep.contains(&name.as_str()) {
                about.extra.insert(name.clone(), value.clone());
            }
        }
        let about = match pool.shared.get(&about) {
            Some(shared) => Arc::clone(shared),
            None => {
                let shared = Arc::new(about);
                pool.shared.insert(Arc::clone(&shared));
                shared
            }
        };
        Self {
            active: self.active,
            expires_at: self.expires_at,
            issued_at: None,
            not_before: self.not_before,
            about,
        }
    }

    /// `active`: whether the token is currently valid at the authorization server.
    pub fn active(&self) -> bool {
        self.active
    }

    /// `client_id`: the client the token was issued to.
    pub fn client_id(&self) -> Option<&str> {
        self.about.client_id.as_deref()
    }

    /// `scope`: the scopes the token carries.
    pub fn scope(&self) -> Option<&Scope> {
        self.about.scope.as_ref()
    }

    /// `exp`, as an absolute time.
    pub fn expires_at(&self) -> Option<SystemTime> {
        self.expires_at
    }

    /// `iat`, as an absolute time.
    pub fn issued_at(&self) -> Option<SystemTime> {
        self.issued_at
    }

    /// `nbf`, as an absolute time.
    pub fn not_before(&self) -> Option<SystemTime> {
        self.not_before
    }

    /// `sub`: the resource owner, for tokens issued on a user's behalf.
    pub fn subject(&self) -> Option<&str> {
        self.about.subject.as_deref()
    }

    /// `aud`: the audiences (sent as one string or an array).
    pub fn audience(&self) -> &[String] {
        &self.about.audience
    }

    /// `iss`: the issuer.
    pub fn issuer(&self) -> Option<&str> {
        self.about.issuer.as_deref()
    }

    /// `token_type`, in any case.
    pub fn token_type(&self) -> Option<&TokenType> {
        self.about.token_type.as_ref()
    }

    /// `username`: a human-readable name of the resource owner.
    pub fn username(&self) -> Option<&str> {
        self.about.username.as_deref()
    }

    /// The `authorization_details` the token carries (RFC 9396 §9.1), if any. The parser
    /// refuses a malformed value (the whole answer is then an error, never an active result
    /// without them), so `None` means the member was absent or `null`. The raw value stays in
    /// [`extra`](Self::extra) as well.
    pub fn authorization_details(&self) -> Option<AuthorizationDetails> {
        match self.about.extra.get("authorization_details") {
            None | Some(Value::Null) => None,
            Some(value) => AuthorizationDetails::from_value(value.clone()).ok(),
        }
    }

    /// Whether the token carries an `authorization_details` object of this `type` (RFC 9396
    /// §9.1), read without copying the value.
    pub fn has_authorization_details_type(&self, detail_type: &str) -> bool {
        match self.about.extra.get("authorization_details") {
            Some(Value::Array(items)) => items
                .iter()
                .any(|item| item.get("type").and_then(Value::as_str) == Some(detail_type)),
            _ => false,
        }
    }

    /// `cnf.x5t#S256` (RFC 8705 §3.2): the token is bound to the client certificate whose
    /// DER encoding has this SHA-256 digest (base64url, no padding); it must be presented
    /// over a TLS connection authenticated with that certificate. `None` when the member is
    /// absent or not a string.
    ///
    /// ```
    /// use oauth_core::client::introspection::parse_introspection_response;
    ///
    /// let body = r#"{"active":true,"cnf":{"x5t#S256":"bwcK0esc3ACC3DB2Y5_lESsXE8o9ltc05O89jdN-dg2"}}"#;
    /// let i = parse_introspection_response(&http::Response::new(body))?;
    /// assert_eq!(i.certificate_thumbprint(), Some("bwcK0esc3ACC3DB2Y5_lESsXE8o9ltc05O89jdN-dg2"));
    /// assert_eq!(i.jwk_thumbprint(), None);
    /// # Ok::<(), oauth_core::Error>(())
    /// ```
    pub fn certificate_thumbprint(&self) -> Option<&str> {
        self.confirmation("x5t#S256")
    }

    /// `cnf.jkt` (RFC 9449 §6.2): the token is bound to the DPoP key with this RFC 7638
    /// thumbprint. `None` when the member is absent or not a string.
    pub fn jwk_thumbprint(&self) -> Option<&str> {
        self.confirmation("jkt")
    }

    /// A string member of `cnf` (RFC 7800 §3.1).
    fn confirmation(&self, method: &str) -> Option<&str> {
        self.about
            .extra
            .get("cnf")
            .and_then(|cnf| cnf.get(method))
            .and_then(Value::as_str)
    }

    /// Every other member, as sent.
    pub fn extra(&self) -> &Map<String, Value> {
        &self.about.extra
    }

    /// This result as an RFC 7662 answer body, which [`parse_introspection_response`] reads
    /// back to an equal result (a gateway fleet's shared cache stores it so).
    ///
    /// ```
    /// use oauth_core::client::introspection::parse_introspection_response;
    ///
    /// let body = r#"{"active":true,"client_id":"app","scope":"a b","exp":1900000000,"tenant":"t1"}"#;
    /// let first = parse_introspection_response(&http::Response::new(body))?;
    /// let again = parse_introspection_response(&http::Response::new(first.to_json()))?;
    /// assert_eq!(again.client_id(), Some("app"));
    /// assert_eq!(again.expires_at(), first.expires_at());
    /// assert_eq!(again.extra()["tenant"], "t1");
    /// # Ok::<(), oauth_core::Error>(())
    /// ```
    pub fn to_json(&self) -> Vec<u8> {
        let about = &*self.about;
        let mut map = about.extra.clone();
        map.insert("active".into(), Value::Bool(self.active));
        let secs = |t: SystemTime| {
            t.duration_since(std::time::UNIX_EPOCH)
                .map_or(0, |d| d.as_secs())
        };
        let mut put = |name: &str, value: Option<Value>| {
            if let Some(value) = value {
                map.insert(name.into(), value);
            }
        };
        put("client_id", about.client_id.clone().map(Value::String));
        put(
            "scope",
            about
                .scope
                .as_ref()
                .map(|s| Value::String(s.as_str().to_owned())),
        );
        put("exp", self.expires_at.map(|t| secs(t).into()));
        put("iat", self.issued_at.map(|t| secs(t).into()));
        put("nbf", self.not_before.map(|t| secs(t).into()));
        put("sub", about.subject.clone().map(Value::String));
        put("iss", about.issuer.clone().map(Value::String));
        put("username", about.username.clone().map(Value::String));
        put(
            "token_type",
            about
                .token_type
                .as_ref()
                .map(|t| Value::String(t.as_str().to_owned())),
        );
        if !about.audience.is_empty() {
            map.insert(
                "aud".into(),
                Value::Array(about.audience.iter().cloned().map(Value::String).collect()),
            );
        }
        serde_json::to_vec(&Value::Object(map)).unwrap_or_default()
    }
}

impl fmt::Debug for Introspection {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        f.debug_struct("Introspection")
            .field("active", &self.active)
            .field("client_id", &self.about.client_id)
            .field("scope", &self.about.scope)
            .field("expires_at", &self.expires_at)
            .field("issued_at", &self.issued_at)
            .field("not_before", &self.not_before)
            .field("subject", &self.about.subject.as_ref().map(|_| "<present>"))
            .field("audience", &self.about.audience)
            .field("issuer", &self.about.issuer)
            .field("token_type", &self.about.token_type)
            .field(
                "username",
                &self.about.username.as_ref().map(|_| "<present>"),
            )
            .field("extra", &self.about.extra.keys().collect::<Vec<_>>())
            .finish()
    }
}

/// Parses an introspection response (RFC 7662 §2.2), leniently where leniency cannot let a
/// token through: `active` must be the JSON `true` (or `true` in a form-encoded answer) for an
/// active token, while the string `"false"` reads as inactive; a member named twice is
/// refused (a parser differential is an authentication bypass); `exp`, `iat`, `nbf` as numbers or numeric strings (seconds since
/// the epoch); `scope` as a string or an array; `aud` as a string or an array; `token_type` in
/// any case; a form-encoded body instead of JSON. Strict where a wrong guess would let a
/// request through: a response without a readable `active` is an error, never "active".
///
/// An OAuth error (RFC 7662 §2.3: `invalid_client` when the resource server's own credentials
/// are wrong) is [`Error::Server`]; a non-2xx status is [`Error::UnexpectedResponse`].
///
/// ```
/// use oauth_core::client::introspection::parse_introspection_response;
///
/// let body = r#"{"active": true, "client_id": "l238j323ds-23ij4", "scope": "read write",
///               "exp": "1419356238", "sub": "Z5O3upPC88QrAjx00dis", "aud": "https://protected.example.net/resource"}"#;
/// let response = http::Response::builder().status(200).header("content-type", "application/json").body(body)?;
/// let introspection = parse_introspection_response(&response)?;
/// assert!(introspection.active());
/// assert_eq!(introspection.client_id(), Some("l238j323ds-23ij4"));
/// assert!(introspection.scope().is_some_and(|s| s.contains("write")));
/// assert_eq!(introspection.audience(), ["https://protected.example.net/resource"]);
/// # Ok::<(), Box<dyn std::error::Error>>(())
/// ```
pub fn parse_introspection_response<B: AsRef<[u8]>>(
    response: &Response<B>,
) -> Result<Introspection, Error> {
    let mut map = parse_object(response)?;
    let invalid = |field| unexpected(response, UnexpectedReason::InvalidField(field));

    // RFC 7662 §2.2: `active` is a boolean. Only the JSON `true` makes a token active; a
    // string "true" is refused (a server that sends one is broken, and reading it as active
    // is how a parser differential lets a token through), while a string "false" still
    // means inactive, the safe reading.
    let form = crate::response::is_form(crate::response::content_type(response));
    let active = match map.remove("active") {
        Some(Value::Bool(b)) => b,
        // A form-encoded answer has only strings.
        Some(Value::String(s)) if form && s == "true" => true,
        Some(Value::String(s)) if s.eq_ignore_ascii_case("false") => false,
        None | Some(Value::Null) => {
            return Err(unexpected(
                response,
                UnexpectedReason::MissingField("active"),
            ));
        }
        Some(_) => return Err(invalid("active")),
    };
    if !active {
        // RFC 7662 §2.2: an inactive token's other members are meaningless; drop them so that
        // nobody reads a client id or a scope off a dead token.
        return Ok(Introspection::inactive());
    }
    Introspection::from_active_claims(map).map_err(invalid)
}

impl Introspection {
    /// An active result from a claim set (the members of an introspection answer, or the
    /// claims of a verified JWT access token, RFC 9068 §2.2), read as leniently as
    /// [`parse_introspection_response`] reads them. The error names the member with an
    /// invalid value.
    pub(crate) fn from_active_claims(mut map: Map<String, Value>) -> Result<Self, &'static str> {
        let mut result = Self::inactive();
        result.active = true;
        let mut about = About {
            client_id: text(&mut map, "client_id")?,
            ..About::default()
        };
        about.scope = match map.remove("scope") {
            None | Some(Value::Null) => None,
            Some(Value::String(s)) => Some(Scope::parse(&s)),
            Some(Value::Array(items)) => Some(Scope::new(strings(items).ok_or("scope")?)),
            Some(_) => return Err("scope"),
        };
        result.expires_at = instant(&mut map, "exp")?;
        result.issued_at = instant(&mut map, "iat")?;
        result.not_before = instant(&mut map, "nbf")?;
        about.subject = text(&mut map, "sub")?;
        about.audience = match map.remove("aud") {
            None | Some(Value::Null) => Vec::new(),
            Some(Value::String(s)) => vec![s],
            Some(Value::Array(items)) => strings(items).ok_or("aud")?,
            Some(_) => return Err("aud"),
        };
        about.issuer = text(&mut map, "iss")?;
        about.token_type = text(&mut map, "token_type")?.map(|t| TokenType::parse(&t));
        about.username = text(&mut map, "username")?;
        // RFC 9396 §9.1: checked here, kept as sent in `extra` (so the fleet's cache record,
        // `to_json`, carries it unchanged).
        match map.get("authorization_details") {
            None | Some(Value::Null) => {}
            Some(value) => {
                let _checked = AuthorizationDetails::from_value(value.clone())
                    .map_err(|_| "authorization_details")?;
            }
        }
        about.extra = map;
        result.about = Arc::new(about);
        Ok(result)
    }
}

fn text(map: &mut Map<String, Value>, name: &'static str) -> Result<Option<String>, &'static str> {
    match map.remove(name) {
        None | Some(Value::Null) => Ok(None),
        Some(Value::String(s)) => Ok(Some(s)),
        // Some servers send numeric client ids or subjects.
        Some(Value::Number(n)) => Ok(Some(n.to_string())),
        Some(_) => Err(name),
    }
}

fn strings(items: Vec<Value>) -> Option<Vec<String>> {
    items
        .into_iter()
        .map(|v| match v {
            Value::String(s) => Some(s),
            _ => None,
        })
        .collect()
}

/// The latest instant taken from a timestamp (year 2500); later values are clamped.
const MAX_TIMESTAMP: u64 = 16_725_225_600;

/// Reads seconds since the epoch from a number or a numeric string.
fn instant(
    map: &mut Map<String, Value>,
    name: &'static str,
) -> Result<Option<SystemTime>, &'static str> {
    let secs = match map.remove(name) {
        None | Some(Value::Null) => return Ok(None),
        Some(Value::Number(n)) => number(n.as_u64(), n.as_f64()),
        Some(Value::String(s)) => {
            let s = s.trim();
            number(s.parse::<u64>().ok(), s.parse::<f64>().ok())
        }
        Some(_) => None,
    };
    let secs = secs.ok_or(name)?;
    Ok(SystemTime::UNIX_EPOCH.checked_add(Duration::from_secs(secs.min(MAX_TIMESTAMP))))
}

fn number(integer: Option<u64>, float: Option<f64>) -> Option<u64> {
    if let Some(u) = integer {
        return Some(u);
    }
    let f = float?;
    if f.is_nan() || f < 0.0 {
        return None;
    }
    // Saturating float-to-int conversion; the caller clamps.
    Some(f as u64)
}

#[cfg(test)]
mod tests {
    #[test]
    fn authorization_details_read_and_kept_when_compacted() {
        use super::*;
        let body = r#"{"active":true,"client_id":"app","authorization_details":[{"type":"payment_initiation","actions":["initiate"]},{"type":"account_information"}],"tenant":"t"}"#;
        let result = parse_introspection_response(&Response::new(body)).unwrap();
        let details = result.authorization_details().unwrap();
        assert_eq!(details.len(), 2);
        assert!(result.has_authorization_details_type("payment_initiation"));
        assert!(result.has_authorization_details_type("account_information"));
        assert!(!result.has_authorization_details_type("payment"));
        let compact = result.compacted(&mut IntrospectionPool::new(), &[]);
        assert!(compact.has_authorization_details_type("payment_initiation"));
        assert!(!compact.extra().contains_key("tenant"));
        let again = parse_introspection_response(&Response::new(compact.to_json())).unwrap();
        assert_eq!(again.authorization_details(), Some(details));
        let none = parse_introspection_response(&Response::new(r#"{"active":true}"#)).unwrap();
        assert!(none.authorization_details().is_none());
        assert!(!none.has_authorization_details_type("payment_initiation"));
        for bad in [
            r#"{"active":true,"authorization_details":{"type":"a"}}"#,
            r#"{"active":true,"authorization_details":[{"type":1}]}"#,
        ] {
            match parse_introspection_response(&Response::new(bad)) {
                Err(Error::UnexpectedResponse(e)) => assert_eq!(
                    e.reason(),
                    &UnexpectedReason::InvalidField("authorization_details")
                ),
                other => panic!("{bad}: {other:?}"),
            }
        }
    }

    #[test]
    fn errors_keep_nothing_of_an_echoed_token_or_credentials() {
        use crate::client::ClientAuthentication;
        use crate::secret::ClientSecret;
        let client = Client::new(
            "gateway",
            ClientAuthentication::SecretBasic(ClientSecret::new("gw-secret/with+chars")),
        );
        let token = "caller-token-0123456789/abcdef";
        let request = IntrospectionRequest::new(SecurityToken::new(token));
        let basic = "Z2F0ZXdheTpndy1zZWNyZXQlMkZ3aXRoJTJCY2hhcnM="; // gateway:gw-secret%2Fwith%2Bchars
        // An echo in an OAuth error, a long echo cut in an excerpt, JSON `\/` escapes.
        let long = format!("{}{token} {basic}", "x".repeat(240));
        for (status, body) in [
            (
                401,
                format!(
                    r#"{{"error":"invalid_client","error_description":"got {basic} for {token}"}}"#
                ),
            ),
            (500, long),
            (
                400,
                format!(
                    r#"{{"error":"invalid_request","error_description":"{}"}}"#,
                    token.replace('/', "\\/")
                ),
            ),
        ] {
            let response = Response::builder()
                .status(status)
                .body(body.into_bytes())
                .unwrap();
            let e = request.parse_response(&client, &response).unwrap_err();
            let text = format!("{e} {e:?}");
            for secret in [token, "caller-token-0123", basic, "gw-secret"] {
                assert!(!text.contains(secret), "{secret} in {text}");
            }
        }
        let e = RevocationRequest::new(SecurityToken::new(token))
            .parse_response(
                &client,
                &Response::builder()
                    .status(503)
                    .body(token.as_bytes().to_vec())
                    .unwrap(),
            )
            .unwrap_err();
        assert!(!format!("{e} {e:?}").contains(token));
    }

    use super::*;
    use crate::client::{BodyEncoding, ClientAuthentication};
    use crate::error::ErrorCode;
    use crate::secret::ClientSecret;

    fn response(status: u16, content_type: &str, body: &str) -> Response<Vec<u8>> {
        Response::builder()
            .status(status)
            .header("content-type", content_type)
            .body(body.as_bytes().to_vec())
            .unwrap()
    }

    fn json(body: &str) -> Result<Introspection, Error> {
        parse_introspection_response(&response(200, "application/json", body))
    }

    fn at(secs: u64) -> SystemTime {
        SystemTime::UNIX_EPOCH + Duration::from_secs(secs)
    }

    #[test]
    fn rfc7662_example_response() {
        // RFC 7662 §2.2.
        let i = json(
            r#"{
              "active": true,
              "client_id": "l238j323ds-23ij4",
              "username": "jdoe",
              "scope": "read write dolphin",
              "sub": "Z5O3upPC88QrAjx00dis",
              "aud": "https://protected.example.net/resource",
              "iss": "https://server.example.com/",
              "exp": 1419356238,
              "iat": 1419350238,
              "extension_field": "twenty-seven"
            }"#,
        )
        .unwrap();
        assert!(i.active());
        assert_eq!(i.client_id(), Some("l238j323ds-23ij4"));
        assert_eq!(i.username(), Some("jdoe"));
        assert_eq!(i.scope().unwrap().as_str(), "read write dolphin");
        assert_eq!(i.subject(), Some("Z5O3upPC88QrAjx00dis"));
        assert_eq!(i.audience(), ["https://protected.example.net/resource"]);
        assert_eq!(i.issuer(), Some("https://server.example.com/"));
        assert_eq!(i.expires_at(), Some(at(1419356238)));
        assert_eq!(i.issued_at(), Some(at(1419350238)));
        assert_eq!(i.extra()["extension_field"], "twenty-seven");
        let debug = format!("{i:?}");
        assert!(!debug.contains("jdoe") && !debug.contains("Z5O3upPC88QrAjx00dis"));
        assert!(!debug.contains("twenty-seven"));
    }

    #[test]
    fn strict_where_a_token_could_get_through() {
        // `active` is the JSON boolean; a string "true" in JSON is refused, never active.
        for body in [
            r#"{"active":"TRUE"}"#,
            r#"{"active":"true"}"#,
            r#"{"active":1}"#,
            r#"{"active":false,"client_id":"c","active":true}"#,
            r#"{"active":true,"active":true}"#,
            r#"{"active":true,"cnf":{"jkt":"a","jkt":"b"}}"#,
            r#"{"active":true,"client_id":"a","client_id":"b"}"#,
        ] {
            assert!(json(body).is_err(), "{body}");
        }
        let form = |body: &str| {
            parse_introspection_response(&response(200, "application/x-www-form-urlencoded", body))
        };
        assert!(form("active=true&active=false").is_err());
        assert!(form("active=TRUE").is_err());
        // Inactive however it is said.
        assert!(!json(r#"{"active":"false"}"#).unwrap().active());
        assert!(!form("active=false").unwrap().active());
    }

    #[test]
    fn lenient_forms() {
        let i = json(
            r#"{"active":true,"exp":"1419356238","nbf":1419350000.5,"scope":["a","b"],
                "aud":["x","y"],"token_type":"bearer","client_id":42}"#,
        )
        .unwrap();
        assert!(i.active());
        assert_eq!(i.expires_at(), Some(at(1419356238)));
        assert_eq!(i.not_before(), Some(at(1419350000)));
        assert_eq!(i.scope().unwrap().as_str(), "a b");
        assert_eq!(i.audience(), ["x", "y"]);
        assert_eq!(i.token_type(), Some(&TokenType::Bearer));
        assert_eq!(i.client_id(), Some("42"));
        // Far future timestamps are clamped rather than overflowing.
        let far = json(r#"{"active":true,"exp":1e300}"#).unwrap();
        assert_eq!(far.expires_at(), Some(at(MAX_TIMESTAMP)));
        // A form-encoded answer.
        let form = parse_introspection_response(&response(
            200,
            "application/x-www-form-urlencoded",
            "active=true&client_id=c&exp=100",
        ))
        .unwrap();
        assert_eq!(form.client_id(), Some("c"));
        assert_eq!(form.expires_at(), Some(at(100)));
    }

    #[test]
    fn inactive_drops_everything_else() {
        for body in [
            r#"{"active":false}"#,
            r#"{"active":"false","client_id":"c","scope":"admin"}"#,
        ] {
            let i = json(body).unwrap();
            assert_eq!(i, Introspection::inactive(), "{body}");
        }
    }

    #[test]
    fn strict_where_it_matters() {
        for (body, field) in [
            (
                r#"{"client_id":"c"}"#,
                UnexpectedReason::MissingField("active"),
            ),
            (
                r#"{"active":null}"#,
                UnexpectedReason::MissingField("active"),
            ),
            (r#"{"active":1}"#, UnexpectedReason::InvalidField("active")),
            (
                r#"{"active":"yes"}"#,
                UnexpectedReason::InvalidField("active"),
            ),
            (
                r#"{"active":true,"exp":"soon"}"#,
                UnexpectedReason::InvalidField("exp"),
            ),
            (
                r#"{"active":true,"exp":-5}"#,
                UnexpectedReason::InvalidField("exp"),
            ),
            (
                r#"{"active":true,"scope":[1]}"#,
                UnexpectedReason::InvalidField("scope"),
            ),
            (
                r#"{"active":true,"aud":{}}"#,
                UnexpectedReason::InvalidField("aud"),
            ),
            (
                r#"{"active":true,"client_id":[]}"#,
                UnexpectedReason::InvalidField("client_id"),
            ),
        ] {
            match json(body) {
                Err(Error::UnexpectedResponse(u)) => assert_eq!(u.reason(), &field, "{body}"),
                other => panic!("{body}: {other:?}"),
            }
        }
        // RFC 7662 §2.3: the resource server's own credentials refused.
        let e = parse_introspection_response(&response(
            401,
            "application/json",
            r#"{"error":"invalid_client"}"#,
        ))
        .unwrap_err();
        assert_eq!(
            e.error_response().unwrap().code(),
            &ErrorCode::InvalidClient
        );
        // A 200 that is not an object, and a 5xx.
        assert!(matches!(
            parse_introspection_response(&response(200, "text/html", "<html>")),
            Err(Error::UnexpectedResponse(_))
        ));
        assert!(matches!(
            parse_introspection_response(&response(503, "text/plain", "down")),
            Err(Error::UnexpectedResponse(_))
        ));
        // A 5xx that says active: true is still not a result.
        assert!(
            parse_introspection_response(&response(500, "application/json", r#"{"active":true}"#))
                .is_err()
        );
    }

    #[test]
    fn requests_use_client_authentication_and_body_style() {
        let endpoint = Endpoint::new("https://as.example/introspect").unwrap();
        let token = SecurityToken::new("a b&c");
        let basic = Client::new(
            "rs",
            ClientAuthentication::SecretBasic(ClientSecret::new("p w")),
        );
        let request = IntrospectionRequest::new(token.clone())
            .build(&endpoint, &basic)
            .unwrap();
        assert_eq!(request.method(), http::Method::POST);
        assert_eq!(request.body().expose_secret(), b"token=a+b%26c");
        assert_eq!(request.headers()["authorization"], "Basic cnM6cCt3");
        assert!(request.headers()["authorization"].is_sensitive());

        let json_client = Client::new(
            "rs",
            ClientAuthentication::SecretPost(ClientSecret::new("pw")),
        )
        .with_body_encoding(BodyEncoding::Json);
        let request = RevocationRequest::new(token)
            .token_type_hint(TokenTypeHint::AccessToken)
            .build(&endpoint, &json_client)
            .unwrap();
        assert_eq!(request.headers()["content-type"], "application/json");
        let body: Value = serde_json::from_slice(request.body().expose_secret()).unwrap();
        assert_eq!(
            body,
            serde_json::json!({"token":"a b&c","token_type_hint":"access_token","client_id":"rs","client_secret":"pw"})
        );
        assert!(!format!("{request:?}").contains("a b&c"));
    }

    #[test]
    fn revocation_responses() {
        assert!(parse_revocation_response(&response(200, "text/plain", "")).is_ok());
        assert!(parse_revocation_response(&response(200, "application/json", "{}")).is_ok());
        let e = parse_revocation_response(&response(
            400,
            "application/json",
            r#"{"error":"unsupported_token_type"}"#,
        ))
        .unwrap_err();
        assert_eq!(
            e.error_response().unwrap().code(),
            &ErrorCode::Other("unsupported_token_type".into())
        );
        match parse_revocation_response(&response(503, "text/plain", "busy")) {
            Err(Error::UnexpectedResponse(u)) => {
                assert_eq!(u.status(), http::StatusCode::SERVICE_UNAVAILABLE)
            }
            other => panic!("{other:?}"),
        }
    }

    proptest::proptest! {
        #[test]
        fn parser_never_panics(body in proptest::collection::vec(proptest::prelude::any::<u8>(), 0..200), status in 100u16..600) {
            let r = Response::builder().status(status).body(body).unwrap();
            let _ = parse_introspection_response(&r);
            let _ = parse_revocation_response(&r);
        }
    }
}
