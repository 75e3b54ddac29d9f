//! The authorization code flow's front channel: the authorization URL (RFC 6749 §4.1.1) with
//! PKCE (RFC 7636) and the redirect back (§4.1.2), with the RFC 9207 `iss` check.

use http::{Request, Response};

use crate::authorization_details::AuthorizationDetails;
use std::sync::Arc;
use std::time::{Duration, SystemTime};

use crate::client::{AssertionSigner, Client, ClientAuthentication, ClientId};
use crate::encoding::{b64url, form_parse, query_encode_into};
use crate::endpoint::Endpoint;
use crate::error::{Error, ErrorCode, ErrorResponse, SigningError, UnexpectedReason};
use crate::random::{RandomSource, random_token};
use crate::request::{Params, RequestBody, TokenRequest, build_post};
use crate::response::{parse_object, unexpected};
use crate::scope::Scope;
use crate::secret::{AuthorizationCode, Nonce, PkceVerifier, State};
use crate::sha256::sha256;

/// A PKCE code challenge method (RFC 7636 §4.2).
#[derive(Clone, Copy, Debug, Default, PartialEq, Eq)]
#[non_exhaustive]
pub enum PkceMethod {
    /// `S256`: the challenge is the base64url SHA-256 of the verifier. The default, and the
    /// only method RFC 9700 §2.1.1 recommends.
    #[default]
    S256,
    /// `plain`: the challenge is the verifier itself. Only for servers that cannot do S256.
    Plain,
}

impl PkceMethod {
    /// The method's name on the wire.
    pub fn as_str(self) -> &'static str {
        match self {
            Self::S256 => "S256",
            Self::Plain => "plain",
        }
    }
}

/// A PKCE verifier and its challenge (RFC 7636 §4.1, §4.2).
///
/// ```
/// use oauth_core::client::authorization::{Pkce, PkceMethod};
/// use oauth_core::secret::PkceVerifier;
///
/// // RFC 7636 appendix B.
/// let pkce = Pkce::from_verifier(
///     PkceVerifier::new("dBjftJeZ4CVP-mB92K27uhbUJU1p1r_wW1gFWFOEjXk"),
///     PkceMethod::S256,
/// )?;
/// assert_eq!(pkce.challenge(), "E9Melhoa2OwvFrEMTJguCHaoeK1t8URWbuGJSstw-cM");
/// # Ok::<(), oauth_core::Error>(())
/// ```
#[derive(Clone, Debug)]
pub struct Pkce {
    verifier: PkceVerifier,
    challenge: String,
    method: PkceMethod,
}

impl Pkce {
    /// A fresh verifier of 32 random bytes (43 characters, as RFC 7636 §4.1 recommends) with its
    /// `S256` challenge.
    pub fn generate(rng: &dyn RandomSource) -> Result<Self, Error> {
        let verifier = PkceVerifier::new(random_token::<32>(rng)?);
        Self::from_verifier(verifier, PkceMethod::S256)
    }

    /// Uses a caller-supplied verifier, which must be 43 to 128 characters of
    /// `A-Z a-z 0-9 - . _ ~`.
    pub fn from_verifier(verifier: PkceVerifier, method: PkceMethod) -> Result<Self, Error> {
        Self::with_hash(verifier, method, &sha256)
    }

    fn with_hash(
        verifier: PkceVerifier,
        method: PkceMethod,
        hash: &dyn Fn(&[u8]) -> [u8; 32],
    ) -> Result<Self, Error> {
        let v = verifier.expose_secret();
        let valid_chars = v
            .bytes()
            .all(|b| b.is_ascii_alphanumeric() || matches!(b, b'-' | b'.' | b'_' | b'~'));
        if !(43..=128).contains(&v.len()) || !valid_chars {
            return Err(Error::InvalidParameter {
                name: "code_verifier",
                reason: "must be 43 to 128 characters of A-Z a-z 0-9 - . _ ~ (RFC 7636 section 4.1)",
            });
        }
        let challenge = match method {
            PkceMethod::S256 => b64url(&hash(v.as_bytes())),
            PkceMethod::Plain => v.to_owned(),
        };
        Ok(Self {
            verifier,
            challenge,
            method,
        })
    }

    /// The `code_challenge`.
    pub fn challenge(&self) -> &str {
        &self.challenge
    }

    /// The `code_challenge_method`.
    pub fn method(&self) -> PkceMethod {
        self.method
    }

    /// The `code_verifier`, sent with the token request.
    pub fn verifier(&self) -> &PkceVerifier {
        &self.verifier
    }
}

#[derive(Clone, Debug)]
enum PkceChoice {
    Generate(PkceMethod),
    Given(Pkce),
    Disabled,
}

/// A request to the authorization endpoint (RFC 6749 §4.1.1), with PKCE `S256` by default.
///
/// [`build`](Self::build) draws the `state` (and the PKCE verifier and the `nonce`, unless
/// given) from the random source and returns a [`PendingAuthorization`], which holds the URL to
/// send the user to and everything needed to check the redirect back.
///
/// ```
/// use oauth_core::Endpoint;
/// use oauth_core::client::authorization::AuthorizationRequest;
/// # struct Rng;
/// # impl oauth_core::RandomSource for Rng {
/// #     fn fill(&self, d: &mut [u8]) -> Result<(), oauth_core::random::RandomError> { d.fill(7); Ok(()) }
/// # }
/// # let rng = Rng;
///
/// let endpoint = Endpoint::new("https://anypoint.mulesoft.com/accounts/api/v2/oauth2/authorize")?;
/// let pending = AuthorizationRequest::new(endpoint, "my-client")
///     .redirect_uri("https://example.com")
///     .scope(["profile", "offline_access"])
///     .build(&rng)?;
/// assert!(pending.url().starts_with("https://anypoint.mulesoft.com/accounts/api/v2/oauth2/authorize?response_type=code&client_id=my-client"));
/// // Later, on the redirect:
/// # let redirect = format!("https://example.com/?code=abc&state={}", pending.state().expose_secret());
/// let code = pending.handle_callback(&redirect)?;
/// let token_request = pending.token_request(code);
/// # let _ = token_request;
/// # Ok::<(), oauth_core::Error>(())
/// ```
#[derive(Clone, Debug)]
#[must_use]
pub struct AuthorizationRequest {
    endpoint: Endpoint,
    client_id: ClientId,
    response_type: String,
    redirect_uri: Option<String>,
    scope: Option<Scope>,
    state: Option<State>,
    nonce: Option<Nonce>,
    pkce: PkceChoice,
    issuer: Option<(String, bool)>,
    authorization_details: Option<(AuthorizationDetails, String)>,
    request_object: Option<RequestObject>,
    extra: Vec<(String, String)>,
}

/// How to sign the request as a request object (RFC 9101).
#[derive(Clone, Debug)]
struct RequestObject {
    signer: Arc<dyn AssertionSigner>,
    audience: String,
    lifetime: Duration,
}

/// `typ` of a request object (RFC 9101 §4, §10.8).
pub const REQUEST_OBJECT_TYPE: &str = "oauth-authz-req+jwt";

/// How long a request object is valid by default: long enough to reach the server, short
/// enough that a leaked one is soon useless (FAPI 2.0 asks for at most 60 s between `nbf` and
/// `exp`).
pub const REQUEST_OBJECT_LIFETIME: Duration = Duration::from_secs(60);

impl AuthorizationRequest {
    /// A `response_type=code` request for `client_id` at the authorization endpoint.
    pub fn new(endpoint: Endpoint, client_id: impl Into<ClientId>) -> Self {
        Self {
            endpoint,
            client_id: client_id.into(),
            response_type: "code".to_owned(),
            redirect_uri: None,
            scope: None,
            state: None,
            nonce: None,
            pkce: PkceChoice::Generate(PkceMethod::S256),
            issuer: None,
            authorization_details: None,
            request_object: None,
            extra: Vec::new(),
        }
    }

    /// Sets `redirect_uri` (RFC 6749 §3.1.2). The same value is sent with the token request.
    pub fn redirect_uri(mut self, uri: impl Into<String>) -> Self {
        self.redirect_uri = Some(uri.into());
        self
    }

    /// Asks for these scopes. With `openid` among them, a `nonce` is generated unless one is
    /// given.
    pub fn scope<I, S>(mut self, scopes: I) -> Self
    where
        I: IntoIterator<Item = S>,
        S: Into<String>,
    {
        // An empty list sends no `scope` at all: `scope=` is not a valid value (§3.3).
        self.scope = Some(Scope::new(scopes)).filter(|s| !s.is_empty());
        self
    }

    /// Uses this `state` instead of a random one.
    pub fn state(mut self, state: State) -> Self {
        self.state = Some(state);
        self
    }

    /// Sends this `nonce` (OpenID Connect Core §3.1.2.1).
    pub fn nonce(mut self, nonce: Nonce) -> Self {
        self.nonce = Some(nonce);
        self
    }

    /// Uses this PKCE verifier and method instead of a random `S256` one.
    pub fn pkce(mut self, pkce: Pkce) -> Self {
        self.pkce = PkceChoice::Given(pkce);
        self
    }

    /// Generates the PKCE verifier but sends the `plain` method, for servers without `S256`.
    pub fn dangerous_pkce_plain(mut self) -> Self {
        self.pkce = PkceChoice::Generate(PkceMethod::Plain);
        self
    }

    /// Sends no PKCE at all, for servers that reject the parameters. RFC 9700 §2.1.1 requires
    /// PKCE for public clients; without it a stolen code can be redeemed.
    pub fn dangerous_disable_pkce(mut self) -> Self {
        self.pkce = PkceChoice::Disabled;
        self
    }

    /// Expects the redirect's `iss` to equal `issuer` (RFC 9207). With `required`, a redirect
    /// without `iss` is refused too: set it when the server's metadata says
    /// `authorization_response_iss_parameter_supported`.
    pub fn expect_issuer(mut self, issuer: impl Into<String>, required: bool) -> Self {
        self.issuer = Some((issuer.into(), required));
        self
    }

    /// Binds the authorization code to a DPoP key (RFC 9449 §10): `dpop_jkt`, the key's
    /// thumbprint (`Dpop::thumbprint`). The code can then be redeemed only with proofs of that
    /// key.
    pub fn dpop_jkt(self, thumbprint: impl Into<String>) -> Self {
        self.param("dpop_jkt", thumbprint)
    }

    /// Asks for these `authorization_details` (RFC 9396 §3): sent as JSON text in the URL, in
    /// a pushed request's body ([`PendingAuthorization::push_request`]), or as a JSON array
    /// inside a request object. An empty list sends nothing.
    pub fn authorization_details(mut self, details: AuthorizationDetails) -> Self {
        self.authorization_details = if details.is_empty() {
            None
        } else {
            let json = details.to_json();
            Some((details, json))
        };
        self
    }

    /// Sends the request as a signed request object (JAR, RFC 9101): every parameter goes
    /// into a JWT signed by `signer` ([`AssertionSigner::sign_request_object`]; jwt-assertion's
    /// `ClientAssertionSigner` with the client's RS256, PS256, ES256 or EdDSA key), with
    /// `typ: oauth-authz-req+jwt`, `iss` = the client id, `aud` = `audience` (the
    /// authorization server's issuer identifier, §4), `iat` = `nbf` = the time given to
    /// [`build_at`](Self::build_at), `exp` 60 s later (see
    /// [`request_object_lifetime`](Self::request_object_lifetime)) and a random `jti`. The URL
    /// then carries only `client_id` and `request` (§5.1); pushed (RFC 9126 §3,
    /// [`PendingAuthorization::push_request`]), the body carries `request` and the client's
    /// authentication. Build with [`build_at`](Self::build_at): [`build`](Self::build) has no
    /// time to sign with and fails.
    pub fn request_object(
        mut self,
        signer: impl AssertionSigner + 'static,
        audience: impl Into<String>,
    ) -> Self {
        self.request_object = Some(RequestObject {
            signer: Arc::new(signer),
            audience: audience.into(),
            lifetime: REQUEST_OBJECT_LIFETIME,
        });
        self
    }

    /// How long the request object is valid (`exp` - `iat`; 60 s by default). Without
    /// [`request_object`](Self::request_object), nothing.
    pub fn request_object_lifetime(mut self, lifetime: Duration) -> Self {
        if let Some(object) = &mut self.request_object {
            object.lifetime = lifetime;
        }
        self
    }

    /// The PKCE method the request will send (`None`: no PKCE, see
    /// [`dangerous_disable_pkce`](Self::dangerous_disable_pkce)).
    pub fn pkce_method(&self) -> Option<PkceMethod> {
        match &self.pkce {
            PkceChoice::Generate(method) => Some(*method),
            PkceChoice::Given(pkce) => Some(pkce.method()),
            PkceChoice::Disabled => None,
        }
    }

    /// The signer and lifetime of the request object, if the request is sent as one.
    pub(crate) fn request_object_signer(&self) -> Option<(&dyn AssertionSigner, Duration)> {
        self.request_object
            .as_ref()
            .map(|o| (o.signer.as_ref(), o.lifetime))
    }

    /// Whether the redirect must carry `iss` (RFC 9207), and which.
    pub(crate) fn expected_issuer(&self) -> Option<(&str, bool)> {
        self.issuer
            .as_ref()
            .map(|(i, required)| (i.as_str(), *required))
    }

    /// Adds any other parameter (such as `prompt`, `audience` or `resource`).
    pub fn param(mut self, name: impl Into<String>, value: impl Into<String>) -> Self {
        self.extra.push((name.into(), value.into()));
        self
    }

    /// Draws the random values and builds the URL. A request sent as a request object needs
    /// the time: use [`build_at`](Self::build_at).
    pub fn build(self, rng: &dyn RandomSource) -> Result<PendingAuthorization, Error> {
        self.build_inner(rng, None)
    }

    /// [`build`](Self::build), with the wall-clock time a request object
    /// ([`request_object`](Self::request_object)) is signed at.
    pub fn build_at(
        self,
        rng: &dyn RandomSource,
        now: SystemTime,
    ) -> Result<PendingAuthorization, Error> {
        self.build_inner(rng, Some(now))
    }

    fn build_inner(
        self,
        rng: &dyn RandomSource,
        now: Option<SystemTime>,
    ) -> Result<PendingAuthorization, Error> {
        let wants_nonce = self.scope.as_ref().is_some_and(|s| s.contains("openid"));
        // Every random value in one draw (one system call with an OS source), in the order
        // state, nonce, PKCE verifier; 32 bytes each.
        let draws = usize::from(self.state.is_none())
            + usize::from(self.nonce.is_none() && wants_nonce)
            + usize::from(matches!(self.pkce, PkceChoice::Generate(_)));
        let mut random = zeroize::Zeroizing::new([0u8; 96]);
        if draws > 0 {
            rng.fill(&mut random[..32 * draws])?;
        }
        let mut chunks = random[..32 * draws].chunks_exact(32);
        let mut next = || chunks.next().map(b64url).unwrap_or_default();
        let state = match self.state {
            Some(state) => state,
            None => State::new(next()),
        };
        let nonce = match self.nonce {
            Some(nonce) => Some(nonce),
            None if wants_nonce => Some(Nonce::new(next())),
            None => None,
        };
        let pkce = match self.pkce {
            PkceChoice::Generate(method) => {
                let hash = |data: &[u8]| rng.sha256(data);
                Some(Pkce::with_hash(PkceVerifier::new(next()), method, &hash)?)
            }
            PkceChoice::Given(pkce) => Some(pkce),
            PkceChoice::Disabled => None,
        };

        let mut pairs: Vec<(&str, &str)> = vec![
            ("response_type", &self.response_type),
            ("client_id", self.client_id.as_str()),
        ];
        if let Some(uri) = &self.redirect_uri {
            pairs.push(("redirect_uri", uri));
        }
        if let Some(scope) = &self.scope {
            pairs.push(("scope", scope.as_str()));
        }
        pairs.push(("state", state.expose_secret()));
        if let Some(nonce) = &nonce {
            pairs.push(("nonce", nonce.expose_secret()));
        }
        if let Some(pkce) = &pkce {
            pairs.push(("code_challenge", pkce.challenge()));
            pairs.push(("code_challenge_method", pkce.method().as_str()));
        }
        if let Some((details, json)) = &self.authorization_details {
            details.check()?;
            pairs.push(("authorization_details", json));
        }
        for (name, value) in &self.extra {
            if pairs.iter().any(|(n, _)| n == name) {
                return Err(Error::DuplicateParameter {
                    name: crate::error::sanitize(name, 64),
                });
            }
            pairs.push((name, value));
        }
        let request_object;
        if let Some(object) = &self.request_object {
            let now = now.ok_or_else(|| {
                Error::Signing(SigningError::msg(
                    "a request object is signed at the time given: build the request with build_at",
                ))
            })?;
            let jti = random_token::<32>(rng)?;
            let claims = request_object_claims(&pairs, object, self.client_id.as_str(), &jti, now)?;
            request_object = object.signer.sign_request_object(&claims)?;
            // RFC 9101 §5: `client_id` outside too, so the server knows whose key to verify
            // with; nothing else outside.
            pairs = vec![
                ("client_id", self.client_id.as_str()),
                ("request", request_object.expose_secret()),
            ];
        }

        // Sized for the encoded pairs up front, so the URL is allocated once.
        let estimate: usize = pairs.iter().map(|(n, v)| n.len() + v.len() * 3 + 2).sum();
        let mut url = String::with_capacity(self.endpoint.as_str().len() + 1 + estimate);
        url.push_str(self.endpoint.as_str());
        url.push(if self.endpoint.uri().query().is_some() {
            '&'
        } else {
            '?'
        });
        for (i, (name, value)) in pairs.iter().enumerate() {
            if i > 0 {
                url.push('&');
            }
            query_encode_into(&mut url, name);
            url.push('=');
            query_encode_into(&mut url, value);
        }

        Ok(PendingAuthorization {
            url,
            state,
            nonce,
            code_verifier: pkce.map(|p| p.verifier),
            redirect_uri: self.redirect_uri,
            issuer: self.issuer,
        })
    }
}

/// The claim set of a request object (RFC 9101 §4): the parameters (`authorization_details`
/// as its JSON array, `max_age` as a number), then `iss`, `aud`, `iat`, `nbf`, `exp`, `jti`.
fn request_object_claims(
    pairs: &[(&str, &str)],
    object: &RequestObject,
    client_id: &str,
    jti: &str,
    now: SystemTime,
) -> Result<serde_json::Map<String, serde_json::Value>, Error> {
    use serde_json::Value;
    let iat = now
        .duration_since(SystemTime::UNIX_EPOCH)
        .map_err(|_| Error::InvalidParameter {
            name: "now",
            reason: "a time after 1970 (a request object's iat)",
        })?
        .as_secs();
    let mut claims = serde_json::Map::new();
    for (name, value) in pairs {
        // The object's own claims are the request object's, not a parameter's to replace.
        if matches!(*name, "iss" | "aud" | "iat" | "nbf" | "exp" | "jti") {
            return Err(Error::DuplicateParameter {
                name: (*name).to_owned(),
            });
        }
        let value = match *name {
            "authorization_details" => {
                crate::json::from_slice(value.as_bytes()).map_err(|_| Error::InvalidParameter {
                    name: "authorization_details",
                    reason: "JSON text",
                })?
            }
            "max_age" => value
                .parse::<u64>()
                .map_or_else(|_| Value::String((*value).to_owned()), Value::from),
            _ => Value::String((*value).to_owned()),
        };
        claims.insert((*name).to_owned(), value);
    }
    claims.insert("iss".into(), Value::String(client_id.to_owned()));
    claims.insert("aud".into(), Value::String(object.audience.clone()));
    claims.insert("iat".into(), Value::from(iat));
    claims.insert("nbf".into(), Value::from(iat));
    claims.insert(
        "exp".into(),
        Value::from(iat.saturating_add(object.lifetime.as_secs().max(1))),
    );
    claims.insert("jti".into(), Value::String(jti.to_owned()));
    Ok(claims)
}

/// An authorization in progress: the URL to send the user to, and what is needed to check the
/// redirect back and redeem the code. Keep it (server-side, or in an encrypted session) until
/// the redirect arrives.
#[derive(Clone)]
#[must_use]
pub struct PendingAuthorization {
    url: String,
    state: State,
    nonce: Option<Nonce>,
    code_verifier: Option<PkceVerifier>,
    redirect_uri: Option<String>,
    issuer: Option<(String, bool)>,
}

impl std::fmt::Debug for PendingAuthorization {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        // The URL carries the state and nonce in clear: show only where it points.
        let endpoint = self.url.split('?').next().unwrap_or_default();
        f.debug_struct("PendingAuthorization")
            .field("url", &format_args!("{endpoint}?<redacted>"))
            .field("state", &self.state)
            .field("nonce", &self.nonce)
            .field("code_verifier", &self.code_verifier)
            .field("redirect_uri", &self.redirect_uri)
            .field("issuer", &self.issuer)
            .finish()
    }
}

/// Everything a [`PendingAuthorization`] holds, to persist it between the redirect to the
/// authorization server and the callback, which may reach another instance of a web app:
/// store these (the `state`, `nonce` and `code_verifier` are secrets: keep them server-side or
/// encrypted), then rebuild with [`PendingAuthorization::from_parts`]. `Debug` redacts the
/// secrets and the URL's query.
///
/// ```
/// # use oauth_core::Endpoint;
/// # use oauth_core::client::authorization::{AuthorizationRequest, PendingAuthorization, PendingParts};
/// # use oauth_core::secret::{PkceVerifier, State};
/// # struct Rng;
/// # impl oauth_core::RandomSource for Rng {
/// #     fn fill(&self, d: &mut [u8]) -> Result<(), oauth_core::random::RandomError> { d.fill(7); Ok(()) }
/// # }
/// let pending = AuthorizationRequest::new(Endpoint::new("https://as.example/authorize")?, "app")
///     .redirect_uri("https://app.example/cb")
///     .build(&Rng)?;
/// // Instance A stores the parts...
/// let parts = pending.into_parts();
/// let (state, verifier) = (parts.state.expose_secret().to_owned(),
///                          parts.code_verifier.as_ref().map(|v| v.expose_secret().to_owned()));
/// // ... instance B rebuilds it when the redirect arrives.
/// let mut restored = PendingParts::new(parts.url.clone(), State::new(state));
/// restored.code_verifier = verifier.map(PkceVerifier::new);
/// restored.redirect_uri = parts.redirect_uri.clone();
/// let pending = PendingAuthorization::from_parts(restored);
/// # let _ = pending;
/// # Ok::<(), oauth_core::Error>(())
/// ```
#[derive(Clone)]
#[non_exhaustive]
pub struct PendingParts {
    /// The authorization URL (holds the `state` and `nonce` in clear).
    pub url: String,
    /// The `state` sent.
    pub state: State,
    /// The `nonce` sent, if any.
    pub nonce: Option<Nonce>,
    /// The PKCE `code_verifier`, if PKCE was used.
    pub code_verifier: Option<PkceVerifier>,
    /// The `redirect_uri` sent, if any (the token request repeats it).
    pub redirect_uri: Option<String>,
    /// The issuer the redirect's `iss` must name (RFC 9207), if set.
    pub issuer: Option<String>,
    /// Whether a redirect without `iss` is refused.
    pub issuer_required: bool,
}

impl PendingParts {
    /// Parts with the URL and the `state`; set the other fields as stored.
    pub fn new(url: String, state: State) -> Self {
        Self {
            url,
            state,
            nonce: None,
            code_verifier: None,
            redirect_uri: None,
            issuer: None,
            issuer_required: false,
        }
    }
}

impl std::fmt::Debug for PendingParts {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        let endpoint = self.url.split('?').next().unwrap_or_default();
        f.debug_struct("PendingParts")
            .field("url", &format_args!("{endpoint}?<redacted>"))
            .field("state", &self.state)
            .field("nonce", &self.nonce)
            .field("code_verifier", &self.code_verifier)
            .field("redirect_uri", &self.redirect_uri)
            .field("issuer", &self.issuer)
            .field("issuer_required", &self.issuer_required)
            .finish()
    }
}

/// The longest `request_uri` taken from a PAR answer (RFC 9126 §2.2).
const MAX_REQUEST_URI_LEN: usize = 2048;

impl PendingAuthorization {
    /// Its parts, to persist them (see [`PendingParts`]).
    pub fn into_parts(self) -> PendingParts {
        let (issuer, issuer_required) = match self.issuer {
            Some((issuer, required)) => (Some(issuer), required),
            None => (None, false),
        };
        PendingParts {
            url: self.url,
            state: self.state,
            nonce: self.nonce,
            code_verifier: self.code_verifier,
            redirect_uri: self.redirect_uri,
            issuer,
            issuer_required,
        }
    }

    /// Rebuilds a pending authorization from persisted parts.
    pub fn from_parts(parts: PendingParts) -> Self {
        Self {
            url: parts.url,
            state: parts.state,
            nonce: parts.nonce,
            code_verifier: parts.code_verifier,
            redirect_uri: parts.redirect_uri,
            issuer: parts.issuer.map(|i| (i, parts.issuer_required)),
        }
    }

    /// The authorization URL. It contains the `state` and `nonce`, so treat it as sensitive.
    pub fn url(&self) -> &str {
        &self.url
    }

    /// The `state` sent.
    pub fn state(&self) -> &State {
        &self.state
    }

    /// The `nonce` sent, to compare with the ID token's `nonce` claim.
    pub fn nonce(&self) -> Option<&Nonce> {
        self.nonce.as_ref()
    }

    /// The PKCE verifier, if PKCE is in use.
    pub fn code_verifier(&self) -> Option<&PkceVerifier> {
        self.code_verifier.as_ref()
    }

    /// Whether the request asked for the `openid` scope: the token response must then carry an
    /// id_token, and the id_token must be validated (OpenID Connect Core §3.1.3.3).
    pub fn requests_openid(&self) -> bool {
        self.query_param("scope")
            .is_some_and(|scope| scope.split(' ').any(|s| s == "openid"))
    }

    /// The `max_age` sent (OpenID Connect Core §3.1.2.1), which the id_token's `auth_time`
    /// must then honour.
    pub fn max_age(&self) -> Option<Duration> {
        self.query_param("max_age")
            .and_then(|v| v.parse::<u64>().ok())
            .map(Duration::from_secs)
    }

    fn query_param(&self, name: &str) -> Option<String> {
        let query = self.url.split_once('?')?.1;
        let query = query.split('#').next().unwrap_or(query);
        let pairs = form_parse(query);
        if let Some((_, v)) = pairs.iter().find(|(n, _)| n == name) {
            return Some(v.clone());
        }
        // A request object (RFC 9101) holds the parameters: read our own claims (signed by
        // us, so not verified here).
        let (_, object) = pairs.iter().find(|(n, _)| n == "request")?;
        let payload = object.split('.').nth(1)?;
        let payload =
            base64::Engine::decode(&base64::engine::general_purpose::URL_SAFE_NO_PAD, payload)
                .ok()?;
        match crate::json::from_slice(&payload).ok()?.get(name)? {
            serde_json::Value::String(s) => Some(s.clone()),
            serde_json::Value::Number(n) => Some(n.to_string()),
            _ => None,
        }
    }

    /// The pushed authorization request (RFC 9126 §2.1) for this authorization: every
    /// parameter of its URL, `POST`ed to the `pushed_authorization_request_endpoint` with the
    /// client's authentication (a per-request assertion signed at `now`). Hand the answer to
    /// [`pushed`](Self::pushed).
    pub fn push_request(
        &self,
        par_endpoint: &Endpoint,
        client: &Client,
        now: SystemTime,
    ) -> Result<Request<RequestBody>, Error> {
        let query = self.url.split_once('?').map(|(_, q)| q).unwrap_or_default();
        let mut pairs = form_parse(query);
        // Client authentication other than Basic sends `client_id` itself.
        let auth_sends_id = !matches!(
            client.authentication(),
            ClientAuthentication::SecretBasic(_) | ClientAuthentication::SecretBasicVerbatim(_)
        );
        let mut params = Params::default();
        for (name, value) in pairs.iter() {
            if name == "client_id" && auth_sends_id {
                continue;
            }
            params.push_plain(name, value);
        }
        let assertion = client.sign_assertion(par_endpoint, Some(now))?;
        let request = build_post(par_endpoint, client, params, assertion.as_ref());
        // The state and nonce were copied into the body; wipe the decoded copies.
        for (_, value) in &mut pairs {
            zeroize::Zeroize::zeroize(value);
        }
        request
    }

    /// Reads the pushed authorization response (RFC 9126 §2.2; a `request_uri` of at most
    /// 2048 visible ASCII characters: `request_uri`, `expires_in`)
    /// and returns this authorization with its URL reduced to `client_id` and `request_uri`
    /// (§4); the state, nonce, verifier and issuer for the callback are unchanged.
    pub fn pushed<B: AsRef<[u8]>>(&self, response: &Response<B>) -> Result<Self, Error> {
        let mut map = parse_object(response)?;
        let invalid = |name| unexpected(response, UnexpectedReason::InvalidField(name));
        // It goes into the authorization URL: a URI (no spaces, no control characters) of a
        // sensible length (RFC 9126 §2.2; a 100 KB one would make a 100 KB URL).
        let request_uri = match map.remove("request_uri") {
            Some(serde_json::Value::String(uri))
                if crate::response::is_identifier(&uri, MAX_REQUEST_URI_LEN, false) =>
            {
                uri
            }
            None | Some(serde_json::Value::Null) => {
                return Err(unexpected(
                    response,
                    UnexpectedReason::MissingField("request_uri"),
                ));
            }
            Some(_) => return Err(invalid("request_uri")),
        };
        match map.get("expires_in") {
            Some(v) if v.as_u64().is_some_and(|s| s > 0) => {}
            None => {
                return Err(unexpected(
                    response,
                    UnexpectedReason::MissingField("expires_in"),
                ));
            }
            Some(_) => return Err(invalid("expires_in")),
        }
        let (endpoint, query) = self.url.split_once('?').unwrap_or((self.url.as_str(), ""));
        let client_id = form_parse(query)
            .into_iter()
            .find(|(n, _)| n == "client_id")
            .map(|(_, v)| v)
            .unwrap_or_default();
        let mut url = String::with_capacity(endpoint.len() + request_uri.len() * 3 + 64);
        url.push_str(endpoint);
        url.push_str("?client_id=");
        query_encode_into(&mut url, &client_id);
        url.push_str("&request_uri=");
        query_encode_into(&mut url, &request_uri);
        Ok(Self {
            url,
            ..self.clone()
        })
    }

    /// Checks the redirect back (RFC 6749 §4.1.2) and returns the code.
    ///
    /// `redirect` is the full redirect URI or just its query string. The `state` is compared in
    /// constant time; an `iss` is checked when an issuer is expected (RFC 9207); an `error`
    /// becomes [`Error::Authorization`] (such as `access_denied` when the user declined).
    pub fn handle_callback(&self, redirect: &str) -> Result<AuthorizationCode, Error> {
        let query = match redirect.split_once('?') {
            Some((_, q)) => q,
            None => redirect,
        };
        let query = query.split('#').next().unwrap_or(query);
        let params = form_parse(query);
        let get = |name: &'static str| -> Result<Option<&str>, Error> {
            let mut found = params.iter().filter(|(n, _)| n == name);
            let first = found.next().map(|(_, v)| v.as_str());
            if found.next().is_some() {
                // RFC 6749 §3.1: parameters must not be included more than once.
                return Err(Error::InvalidCallback {
                    reason: "a parameter appears more than once",
                });
            }
            Ok(first)
        };

        match get("state")? {
            Some(state) if self.state.ct_eq(state) => {}
            _ => return Err(Error::StateMismatch),
        }
        if let Some((expected, required)) = &self.issuer {
            match get("iss")? {
                Some(iss) if iss == expected => {}
                None if !required => {}
                _ => return Err(Error::IssuerMismatch),
            }
        }
        if let Some(code) = get("error")? {
            return Err(Error::Authorization(ErrorResponse::new(
                None,
                ErrorCode::parse(code),
                get("error_description")?,
                get("error_uri")?,
            )));
        }
        match get("code")? {
            Some(code) if !code.is_empty() => Ok(AuthorizationCode::new(code)),
            _ => Err(Error::InvalidCallback {
                reason: "the redirect carries neither code nor error",
            }),
        }
    }

    /// The token request that redeems `code`, with the `redirect_uri` and `code_verifier` of
    /// this authorization.
    pub fn token_request(&self, code: AuthorizationCode) -> TokenRequest {
        TokenRequest::authorization_code(
            code,
            self.redirect_uri.clone(),
            self.code_verifier.clone(),
        )
    }
}

#[cfg(test)]
mod tests {
    use super::*;
    use crate::random::test_support::{BrokenRandom, SeededRandom};

    fn endpoint() -> Endpoint {
        Endpoint::new("https://anypoint.mulesoft.com/accounts/api/v2/oauth2/authorize").unwrap()
    }

    #[test]
    fn authorization_details_in_the_url_and_the_pushed_body() {
        use crate::authorization_details::AuthorizationDetail;
        let details = AuthorizationDetails::new().with(
            AuthorizationDetail::new("payment_initiation")
                .actions(["initiate"])
                .locations(["https://bank.example/payments"]),
        );
        let pending = AuthorizationRequest::new(endpoint(), "app")
            .authorization_details(details.clone())
            .build(&SeededRandom::new(1))
            .unwrap();
        let sent = pending.query_param("authorization_details").unwrap();
        assert_eq!(AuthorizationDetails::parse(&sent).unwrap(), details);
        let par = Endpoint::new("https://anypoint.mulesoft.com/par").unwrap();
        let client = Client::new(
            "app",
            ClientAuthentication::SecretPost(crate::ClientSecret::new("s")),
        );
        let push = pending
            .push_request(&par, &client, SystemTime::UNIX_EPOCH)
            .unwrap();
        let body = std::str::from_utf8(push.body().expose_secret()).unwrap();
        let pushed = form_parse(body)
            .into_iter()
            .find(|(n, _)| n == "authorization_details")
            .unwrap()
            .1;
        assert_eq!(AuthorizationDetails::parse(&pushed).unwrap(), details);
        // Given twice (typed and raw): refused, not sent twice.
        assert!(matches!(
            AuthorizationRequest::new(endpoint(), "app")
                .authorization_details(details)
                .param("authorization_details", "[]")
                .build(&SeededRandom::new(1)),
            Err(Error::DuplicateParameter { .. })
        ));
    }

    #[test]
    fn pushed_authorization_request_and_answer() {
        let rng = SeededRandom::new(3);
        let pending = AuthorizationRequest::new(endpoint(), "app")
            .redirect_uri("https://app.example/cb")
            .scope(["openid"])
            .build(&rng)
            .unwrap();
        let par = Endpoint::new("https://anypoint.mulesoft.com/par").unwrap();
        // Basic: the body holds client_id once (from the URL); post: once (from the auth).
        for (client, auth_header) in [
            (
                Client::new(
                    "app",
                    ClientAuthentication::SecretBasic(crate::ClientSecret::new("s")),
                ),
                true,
            ),
            (
                Client::new(
                    "app",
                    ClientAuthentication::SecretPost(crate::ClientSecret::new("s")),
                ),
                false,
            ),
        ] {
            let request = pending
                .push_request(&par, &client, SystemTime::UNIX_EPOCH)
                .unwrap();
            let body = String::from_utf8_lossy(request.body().expose_secret()).into_owned();
            assert_eq!(body.matches("client_id=app").count(), 1, "{body}");
            assert!(
                body.contains("code_challenge=") && body.contains("state="),
                "{body}"
            );
            assert_eq!(request.headers().contains_key("authorization"), auth_header);
        }
        let answer = |status: u16, body: &str| {
            Response::builder()
                .status(status)
                .header("content-type", "application/json")
                .body(body.as_bytes().to_vec())
                .unwrap()
        };
        let pushed = pending
            .pushed(&answer(201, r#"{"request_uri":"urn:ietf:params:oauth:request_uri:6esc_11ACC5bwc014ltc14eY22c","expires_in":60}"#))
            .unwrap();
        assert_eq!(
            pushed.url(),
            "https://anypoint.mulesoft.com/accounts/api/v2/oauth2/authorize?client_id=app&request_uri=urn%3Aietf%3Aparams%3Aoauth%3Arequest_uri%3A6esc_11ACC5bwc014ltc14eY22c"
        );
        assert_eq!(
            pushed.state().expose_secret(),
            pending.state().expose_secret()
        );
        for (status, body, field) in [
            (201, r#"{"expires_in":60}"#, "request_uri"),
            (201, r#"{"request_uri":"urn:x"}"#, "expires_in"),
            (201, r#"{"request_uri":7,"expires_in":60}"#, "request_uri"),
            (
                201,
                r#"{"request_uri":"urn:x","expires_in":0}"#,
                "expires_in",
            ),
        ] {
            let e = pending.pushed(&answer(status, body)).err();
            let reason = match &e {
                Some(Error::UnexpectedResponse(u)) => Some(u.reason().clone()),
                _ => None,
            };
            assert!(
                matches!(reason, Some(UnexpectedReason::MissingField(f) | UnexpectedReason::InvalidField(f)) if f == field),
                "{body}: {e:?}"
            );
        }
        assert!(matches!(
            pending.pushed(&answer(400, r#"{"error":"invalid_request"}"#)),
            Err(Error::Server(_))
        ));
        // The request_uri goes into the URL: bounded, no spaces or control characters.
        let uri = |value: String| {
            pending.pushed(&answer(
                201,
                &serde_json::json!({"request_uri": value, "expires_in": 60}).to_string(),
            ))
        };
        assert!(uri(format!("urn:x:{}", "a".repeat(2042))).is_ok());
        assert!(uri(format!("urn:x:{}", "a".repeat(2043))).is_err());
        assert!(uri(format!("urn:x:{}", "a".repeat(100_000))).is_err());
        for bad in ["urn:x\r\nLocation: evil", "urn:x y", "urn:caf\u{e9}", ""] {
            assert!(uri(bad.to_owned()).is_err(), "{bad:?}");
        }
    }

    #[test]
    fn openid_and_max_age_are_read_back_from_the_url() {
        let rng = SeededRandom::new(1);
        let plain = AuthorizationRequest::new(endpoint(), "app")
            .scope(["profile", "openid-ish"])
            .build(&rng)
            .unwrap();
        assert!(!plain.requests_openid());
        assert_eq!(plain.max_age(), None);
        let oidc = AuthorizationRequest::new(endpoint(), "app")
            .scope(["email", "openid"])
            .param("max_age", "300")
            .build(&rng)
            .unwrap();
        assert!(oidc.requests_openid());
        assert_eq!(oidc.max_age(), Some(Duration::from_secs(300)));
        // Rebuilt from its parts, it still knows.
        assert!(PendingAuthorization::from_parts(oidc.into_parts()).requests_openid());
    }

    #[test]
    fn a_pending_authorization_survives_persistence() {
        let rng = SeededRandom::new(42);
        let pending = AuthorizationRequest::new(endpoint(), "app")
            .redirect_uri("https://app.example/cb")
            .scope(["openid"])
            .expect_issuer("https://anypoint.mulesoft.com", true)
            .build(&rng)
            .unwrap();
        let state = pending.state().expose_secret().to_owned();
        let verifier = pending.code_verifier().unwrap().expose_secret().to_owned();
        let nonce = pending.nonce().unwrap().expose_secret().to_owned();
        let parts = pending.clone().into_parts();
        let shown = format!("{parts:?}");
        for secret in [&state, &verifier, &nonce] {
            assert!(!shown.contains(secret.as_str()), "{shown}");
        }
        // Stored as strings, rebuilt elsewhere.
        let mut stored = PendingParts::new(parts.url.clone(), State::new(state.clone()));
        stored.nonce = Some(Nonce::new(nonce));
        stored.code_verifier = Some(PkceVerifier::new(verifier.clone()));
        stored.redirect_uri = parts.redirect_uri.clone();
        stored.issuer = parts.issuer.clone();
        stored.issuer_required = parts.issuer_required;
        let restored = PendingAuthorization::from_parts(stored);
        assert_eq!(restored.url(), pending.url());
        let callback = format!(
            "https://app.example/cb?code=c1&state={state}&iss=https%3A%2F%2Fanypoint.mulesoft.com"
        );
        let code = restored.handle_callback(&callback).unwrap();
        let request = restored.token_request(code);
        let built = request
            .build(
                &Endpoint::new("https://as.example/token").unwrap(),
                &Client::new("app", ClientAuthentication::None),
            )
            .unwrap();
        let body = String::from_utf8(built.body().expose_secret().to_vec()).unwrap();
        assert!(
            body.contains(&format!("code_verifier={verifier}")),
            "{body}"
        );
        // The issuer requirement came along: a redirect without iss is refused.
        assert!(
            restored
                .handle_callback(&format!("https://app.example/cb?code=c1&state={state}"))
                .is_err()
        );
    }

    #[test]
    fn rfc7636_appendix_b() {
        let pkce = Pkce::from_verifier(
            PkceVerifier::new("dBjftJeZ4CVP-mB92K27uhbUJU1p1r_wW1gFWFOEjXk"),
            PkceMethod::S256,
        )
        .unwrap();
        assert_eq!(
            pkce.challenge(),
            "E9Melhoa2OwvFrEMTJguCHaoeK1t8URWbuGJSstw-cM"
        );
        assert_eq!(pkce.method().as_str(), "S256");
    }

    #[test]
    fn verifier_validation() {
        for bad in ["short", &"a".repeat(129), &format!("{}!", "a".repeat(43))] {
            assert!(Pkce::from_verifier(PkceVerifier::new(bad), PkceMethod::S256).is_err());
        }
        let generated = Pkce::generate(&SeededRandom::new(1)).unwrap();
        assert_eq!(generated.verifier().expose_secret().len(), 43);
    }

    /// The Anypoint page's step 2, with the page's nonce, and our state and PKCE on top.
    #[test]
    fn anypoint_authorization_url() {
        let pending = AuthorizationRequest::new(endpoint(), "<client_id>")
            .scope(["profile", "offline_access"])
            .redirect_uri("https://example.com")
            .nonce(Nonce::new("123456"))
            .state(State::new("st"))
            .pkce(
                Pkce::from_verifier(
                    PkceVerifier::new("dBjftJeZ4CVP-mB92K27uhbUJU1p1r_wW1gFWFOEjXk"),
                    PkceMethod::S256,
                )
                .unwrap(),
            )
            .build(&BrokenRandom)
            .unwrap();
        let url = pending.url();
        let (path, query) = url.split_once('?').unwrap();
        assert_eq!(
            path,
            "https://anypoint.mulesoft.com/accounts/api/v2/oauth2/authorize"
        );
        let params = form_parse(query);
        let expected: Vec<(String, String)> = [
            ("response_type", "code"),
            ("client_id", "<client_id>"),
            ("redirect_uri", "https://example.com"),
            ("scope", "profile offline_access"),
            ("state", "st"),
            ("nonce", "123456"),
            (
                "code_challenge",
                "E9Melhoa2OwvFrEMTJguCHaoeK1t8URWbuGJSstw-cM",
            ),
            ("code_challenge_method", "S256"),
        ]
        .iter()
        .map(|(a, b)| (a.to_string(), b.to_string()))
        .collect();
        assert_eq!(params, expected);
        // The page writes `scope=profile%20offline_access`; we do the same.
        assert!(query.contains("scope=profile%20offline_access"));
    }

    #[test]
    fn generated_values_and_openid_nonce() {
        let pending = AuthorizationRequest::new(endpoint(), "c")
            .scope(["openid"])
            .param("prompt", "consent")
            .build(&SeededRandom::new(7))
            .unwrap();
        assert_eq!(pending.state().expose_secret().len(), 43);
        assert!(pending.nonce().is_some());
        assert!(pending.code_verifier().is_some());
        assert!(
            pending
                .url()
                .ends_with("&code_challenge_method=S256&prompt=consent")
        );

        let no_pkce = AuthorizationRequest::new(endpoint(), "c")
            .dangerous_disable_pkce()
            .build(&SeededRandom::new(7))
            .unwrap();
        assert!(!no_pkce.url().contains("code_challenge"));
        assert!(no_pkce.nonce().is_none());

        assert_eq!(
            AuthorizationRequest::new(endpoint(), "c")
                .build(&BrokenRandom)
                .unwrap_err(),
            Error::Random(crate::RandomError::new())
        );
        assert!(matches!(
            AuthorizationRequest::new(endpoint(), "c")
                .param("state", "x")
                .build(&SeededRandom::new(1)),
            Err(Error::DuplicateParameter { .. })
        ));
        let with_query = Endpoint::new("https://as.example/authorize?tenant=t").unwrap();
        let pending = AuthorizationRequest::new(with_query, "c")
            .build(&SeededRandom::new(1))
            .unwrap();
        assert!(
            pending
                .url()
                .starts_with("https://as.example/authorize?tenant=t&response_type=code")
        );
    }

    #[test]
    fn callback_checks() {
        let pending = AuthorizationRequest::new(endpoint(), "c")
            .state(State::new("xyz"))
            .redirect_uri("https://example.com/cb")
            .expect_issuer("https://as.example", false)
            .build(&SeededRandom::new(3))
            .unwrap();
        let code = pending
            .handle_callback("https://example.com/cb?code=SplxlOBeZQQYbYS6WxSbIA&state=xyz")
            .unwrap();
        assert_eq!(code.expose_secret(), "SplxlOBeZQQYbYS6WxSbIA");
        assert!(
            pending
                .handle_callback("code=c&state=xyz&iss=https%3A%2F%2Fas.example")
                .is_ok()
        );

        let cases: [(&str, Error); 7] = [
            ("code=c&state=xyZ", Error::StateMismatch),
            ("code=c", Error::StateMismatch),
            (
                "code=c&state=xyz&iss=https://evil.example",
                Error::IssuerMismatch,
            ),
            (
                "code=c&state=xyz&state=xyz",
                Error::InvalidCallback {
                    reason: "a parameter appears more than once",
                },
            ),
            (
                "state=xyz",
                Error::InvalidCallback {
                    reason: "the redirect carries neither code nor error",
                },
            ),
            (
                "error=access_denied&error_description=The+user+declined&state=xyz",
                Error::Authorization(ErrorResponse::new(
                    None,
                    ErrorCode::AccessDenied,
                    Some("The user declined"),
                    None,
                )),
            ),
            // A forged error without the right state is a state mismatch first.
            ("error=access_denied&state=other", Error::StateMismatch),
        ];
        for (query, expected) in cases {
            assert_eq!(
                pending.handle_callback(query).unwrap_err(),
                expected,
                "{query}"
            );
        }

        let strict = AuthorizationRequest::new(endpoint(), "c")
            .state(State::new("s"))
            .expect_issuer("https://as.example", true)
            .build(&SeededRandom::new(3))
            .unwrap();
        assert_eq!(
            strict.handle_callback("code=c&state=s").unwrap_err(),
            Error::IssuerMismatch
        );
    }

    #[test]
    fn token_request_carries_verifier_and_redirect() {
        let pending = AuthorizationRequest::new(endpoint(), "c")
            .redirect_uri("https://example.com")
            .build(&SeededRandom::new(9))
            .unwrap();
        let verifier = pending.code_verifier().unwrap().expose_secret().to_owned();
        let token_endpoint =
            Endpoint::new("https://anypoint.mulesoft.com/accounts/api/v2/oauth2/token").unwrap();
        let client = Client::new("c", ClientAuthentication::None);
        let request = pending
            .token_request(AuthorizationCode::new("the-code"))
            .build(&token_endpoint, &client)
            .unwrap();
        let body = std::str::from_utf8(request.body().expose_secret()).unwrap();
        assert_eq!(
            body,
            format!(
                "grant_type=authorization_code&code=the-code&redirect_uri=https%3A%2F%2Fexample.com&code_verifier={verifier}&client_id=c"
            )
        );
    }

    proptest::proptest! {
        #[test]
        fn callback_never_panics(s in proptest::prelude::any::<String>()) {
            let pending = AuthorizationRequest::new(endpoint(), "c").build(&SeededRandom::new(3)).unwrap();
            let _ = pending.handle_callback(&s);
        }
    }
}
