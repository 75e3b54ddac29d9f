//! Authorization server metadata (RFC 8414) and OpenID Connect discovery.

use std::fmt;

use http::header::ACCEPT;
use http::{HeaderValue, Method, Request, Response};
use serde_json::{Map, Value};

use crate::endpoint::{Endpoint, SchemePolicy};
use crate::error::{Error, UnexpectedReason};
use crate::response::{parse_object, unexpected};

/// Which well-known document to fetch.
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
#[non_exhaustive]
pub enum WellKnown {
    /// `/.well-known/openid-configuration`, appended to the issuer (OpenID Connect Discovery
    /// 1.0 §4).
    OpenIdConfiguration,
    /// `/.well-known/oauth-authorization-server`, inserted between the host and the issuer's
    /// path (RFC 8414 §3.1).
    OAuthAuthorizationServer,
}

/// The `GET` of an issuer's metadata document.
///
/// ```
/// use oauth_core::Endpoint;
/// use oauth_core::client::discovery::{WellKnown, discovery_request};
///
/// let issuer = Endpoint::new("https://as.example/tenant1")?;
/// let r = discovery_request(&issuer, WellKnown::OAuthAuthorizationServer)?;
/// assert_eq!(r.uri(), "https://as.example/.well-known/oauth-authorization-server/tenant1");
/// let r = discovery_request(&issuer, WellKnown::OpenIdConfiguration)?;
/// assert_eq!(r.uri(), "https://as.example/tenant1/.well-known/openid-configuration");
/// # Ok::<(), oauth_core::Error>(())
/// ```
pub fn discovery_request(issuer: &Endpoint, which: WellKnown) -> Result<Request<()>, Error> {
    let uri = issuer.uri();
    if uri.query().is_some() {
        return Err(Error::InvalidParameter {
            name: "issuer",
            reason: "an issuer has no query component (RFC 8414 §2)",
        });
    }
    let scheme = uri.scheme_str().unwrap_or("https");
    let authority = uri.authority().map(|a| a.as_str()).unwrap_or_default();
    let path = uri.path().trim_end_matches('/');
    let target = match which {
        WellKnown::OpenIdConfiguration => {
            format!("{scheme}://{authority}{path}/.well-known/openid-configuration")
        }
        WellKnown::OAuthAuthorizationServer => {
            format!("{scheme}://{authority}/.well-known/oauth-authorization-server{path}")
        }
    };
    Request::builder()
        .method(Method::GET)
        .uri(target)
        .header(ACCEPT, HeaderValue::from_static("application/json"))
        .body(())
        .map_err(|_| Error::InvalidHeaderValue { what: "issuer" })
}

/// An authorization server's metadata: its endpoints and what it supports.
///
/// Every endpoint was checked against the scheme policy given to
/// [`parse_server_metadata`], so a metadata document cannot point a client at `http://`;
/// so was every member of `mtls_endpoint_aliases` (RFC 8705 §5).
///
/// A client that uses mutual TLS (RFC 8705: it authenticates with `tls_client_auth` or
/// `self_signed_tls_client_auth`, or presents a certificate to have its tokens bound to it)
/// asks for [`with_mtls_endpoint_aliases`](Self::with_mtls_endpoint_aliases): the endpoint
/// accessors then answer the aliases where the server has them.
#[derive(Clone)]
pub struct ServerMetadata {
    issuer: String,
    endpoints: Vec<(&'static str, Endpoint)>,
    mtls_aliases: Vec<(&'static str, Endpoint)>,
    prefer_mtls_aliases: bool,
    extra: Map<String, Value>,
}

/// The endpoints an `mtls_endpoint_aliases` member replaces for a client that uses mutual TLS
/// (RFC 8705 §5): those a client authenticates at, or presents a bound token to.
const MTLS_ALIASED: &[&str] = &[
    "token_endpoint",
    "revocation_endpoint",
    "introspection_endpoint",
    "device_authorization_endpoint",
    "registration_endpoint",
    "userinfo_endpoint",
    "pushed_authorization_request_endpoint",
];

/// The endpoint members read from a metadata document.
const ENDPOINTS: &[&str] = &[
    "authorization_endpoint",
    "token_endpoint",
    "jwks_uri",
    "registration_endpoint",
    "revocation_endpoint",
    "introspection_endpoint",
    "userinfo_endpoint",
    "device_authorization_endpoint",
    "pushed_authorization_request_endpoint",
    "end_session_endpoint",
];

impl ServerMetadata {
    /// `issuer`: identical to the one the document was fetched for.
    pub fn issuer(&self) -> &str {
        &self.issuer
    }

    /// An endpoint by its metadata name (such as `"token_endpoint"`), if the server has one.
    ///
    /// After [`with_mtls_endpoint_aliases`](Self::with_mtls_endpoint_aliases), the alias of
    /// an endpoint RFC 8705 §5 lets a server alias (token, PAR, introspection, revocation,
    /// userinfo, device authorization, registration) when there is one, else the endpoint.
    pub fn endpoint(&self, name: &str) -> Option<&Endpoint> {
        if self.prefer_mtls_aliases
            && let Some(alias) = self.mtls_endpoint_alias(name)
        {
            return Some(alias);
        }
        self.conventional_endpoint(name)
    }

    /// An endpoint by its metadata name as the document's top level gives it, whatever
    /// [`with_mtls_endpoint_aliases`](Self::with_mtls_endpoint_aliases) says.
    pub fn conventional_endpoint(&self, name: &str) -> Option<&Endpoint> {
        self.endpoints
            .iter()
            .find(|(n, _)| *n == name)
            .map(|(_, e)| e)
    }

    /// The member `name` of `mtls_endpoint_aliases` (RFC 8705 §5), if the server has one: where
    /// a client that uses mutual TLS sends what it would send to `name`.
    pub fn mtls_endpoint_alias(&self, name: &str) -> Option<&Endpoint> {
        self.mtls_aliases
            .iter()
            .find(|(n, _)| *n == name)
            .map(|(_, e)| e)
    }

    /// This metadata for a client that uses mutual TLS (RFC 8705 §5): the token, PAR,
    /// introspection, revocation, userinfo, device authorization and registration endpoints
    /// are the server's `mtls_endpoint_aliases` where it has them (the plain endpoints
    /// otherwise). For a client that authenticates with `tls_client_auth` or
    /// `self_signed_tls_client_auth`, or has a certificate it binds its tokens to.
    ///
    /// ```
    /// use oauth_core::SchemePolicy;
    /// use oauth_core::client::discovery::parse_server_metadata;
    ///
    /// let body = r#"{"issuer": "https://as.example",
    ///   "token_endpoint": "https://as.example/token",
    ///   "introspection_endpoint": "https://as.example/introspect",
    ///   "mtls_endpoint_aliases": {"token_endpoint": "https://mtls.as.example/token"}}"#;
    /// let m = parse_server_metadata(&http::Response::new(body), "https://as.example", SchemePolicy::HttpsOnly)?;
    /// assert_eq!(m.token_endpoint().unwrap().as_str(), "https://as.example/token");
    /// let m = m.with_mtls_endpoint_aliases();
    /// assert_eq!(m.token_endpoint().unwrap().as_str(), "https://mtls.as.example/token");
    /// // No alias: the plain endpoint.
    /// assert_eq!(m.introspection_endpoint().unwrap().as_str(), "https://as.example/introspect");
    /// # Ok::<(), oauth_core::Error>(())
    /// ```
    #[must_use]
    pub fn with_mtls_endpoint_aliases(mut self) -> Self {
        self.prefer_mtls_aliases = true;
        self
    }

    /// This metadata for `client`: [`with_mtls_endpoint_aliases`](Self::with_mtls_endpoint_aliases)
    /// when the client authenticates with mutual TLS, unchanged otherwise.
    #[must_use]
    pub fn for_client(self, client: &crate::client::Client) -> Self {
        if client.uses_mtls() {
            self.with_mtls_endpoint_aliases()
        } else {
            self
        }
    }

    /// Whether the endpoint accessors answer `mtls_endpoint_aliases`
    /// ([`with_mtls_endpoint_aliases`](Self::with_mtls_endpoint_aliases)).
    pub fn uses_mtls_endpoint_aliases(&self) -> bool {
        self.prefer_mtls_aliases
    }

    /// `tls_client_certificate_bound_access_tokens` (RFC 8705 §3.3): the server binds access
    /// tokens to the client's certificate when the client presents one (`false` if absent).
    pub fn tls_client_certificate_bound_access_tokens(&self) -> bool {
        self.extra
            .get("tls_client_certificate_bound_access_tokens")
            .and_then(Value::as_bool)
            .unwrap_or(false)
    }

    /// `token_endpoint_auth_methods_supported` (RFC 8414 §2; `client_secret_basic` when
    /// absent).
    pub fn token_endpoint_auth_methods_supported(&self) -> Vec<&str> {
        if self
            .extra
            .contains_key("token_endpoint_auth_methods_supported")
        {
            self.supported("token_endpoint_auth_methods_supported")
        } else {
            vec!["client_secret_basic"]
        }
    }

    /// `authorization_details_types_supported` (RFC 9396 §10): the `type`s of authorization
    /// details the server understands (empty if absent).
    pub fn authorization_details_types_supported(&self) -> Vec<&str> {
        self.supported("authorization_details_types_supported")
    }

    /// `request_object_signing_alg_values_supported` (RFC 9101 §10.1, OpenID Connect
    /// Discovery §3): the algorithms the server accepts for signed request objects (empty if
    /// absent).
    pub fn request_object_signing_alg_values_supported(&self) -> Vec<&str> {
        self.supported("request_object_signing_alg_values_supported")
    }

    /// `authorization_endpoint`.
    pub fn authorization_endpoint(&self) -> Option<&Endpoint> {
        self.endpoint("authorization_endpoint")
    }

    /// `token_endpoint`.
    pub fn token_endpoint(&self) -> Option<&Endpoint> {
        self.endpoint("token_endpoint")
    }

    /// `introspection_endpoint` (RFC 7662).
    pub fn introspection_endpoint(&self) -> Option<&Endpoint> {
        self.endpoint("introspection_endpoint")
    }

    /// `revocation_endpoint` (RFC 7009).
    pub fn revocation_endpoint(&self) -> Option<&Endpoint> {
        self.endpoint("revocation_endpoint")
    }

    /// `jwks_uri`.
    pub fn jwks_uri(&self) -> Option<&Endpoint> {
        self.endpoint("jwks_uri")
    }

    /// `userinfo_endpoint` (OpenID Connect).
    pub fn userinfo_endpoint(&self) -> Option<&Endpoint> {
        self.endpoint("userinfo_endpoint")
    }

    /// `device_authorization_endpoint` (RFC 8628).
    pub fn device_authorization_endpoint(&self) -> Option<&Endpoint> {
        self.endpoint("device_authorization_endpoint")
    }

    /// A list member such as `grant_types_supported`, or an empty list if absent.
    pub fn supported(&self, name: &str) -> Vec<&str> {
        match self.extra.get(name) {
            Some(Value::Array(items)) => items.iter().filter_map(Value::as_str).collect(),
            _ => Vec::new(),
        }
    }

    /// Whether `grant_types_supported` lists `grant_type`. When the member is absent, RFC
    /// 8414 §2 says the default is `authorization_code` and `implicit`.
    pub fn supports_grant(&self, grant_type: &str) -> bool {
        if self.extra.contains_key("grant_types_supported") {
            self.supported("grant_types_supported")
                .contains(&grant_type)
        } else {
            matches!(grant_type, "authorization_code" | "implicit")
        }
    }

    /// `authorization_response_iss_parameter_supported` (RFC 9207): the server puts `iss` on
    /// its redirects, so the client should require it.
    pub fn authorization_response_iss_parameter_supported(&self) -> bool {
        self.extra
            .get("authorization_response_iss_parameter_supported")
            .and_then(Value::as_bool)
            .unwrap_or(false)
    }

    /// `pushed_authorization_request_endpoint` (RFC 9126 §5).
    pub fn pushed_authorization_request_endpoint(&self) -> Option<&Endpoint> {
        self.endpoint("pushed_authorization_request_endpoint")
    }

    /// `require_pushed_authorization_requests` (RFC 9126 §5): authorization requests must be
    /// pushed.
    pub fn require_pushed_authorization_requests(&self) -> bool {
        self.extra
            .get("require_pushed_authorization_requests")
            .and_then(Value::as_bool)
            .unwrap_or(false)
    }

    /// `registration_endpoint` (RFC 8414 §2, RFC 7591).
    pub fn registration_endpoint(&self) -> Option<&Endpoint> {
        self.endpoint("registration_endpoint")
    }

    /// Every member other than `issuer` and the endpoints, as sent.
    pub fn extra(&self) -> &Map<String, Value> {
        &self.extra
    }
}

impl fmt::Debug for ServerMetadata {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        let mut d = f.debug_struct("ServerMetadata");
        d.field("issuer", &self.issuer);
        for (name, endpoint) in &self.endpoints {
            d.field(name, &endpoint.as_str());
        }
        if !self.mtls_aliases.is_empty() {
            let aliases: Vec<(&str, &str)> = self
                .mtls_aliases
                .iter()
                .map(|(n, e)| (*n, e.as_str()))
                .collect();
            d.field("mtls_endpoint_aliases", &aliases)
                .field("uses_mtls_endpoint_aliases", &self.prefer_mtls_aliases);
        }
        d.field("extra", &self.extra.keys().collect::<Vec<_>>())
            .finish()
    }
}

/// Parses a metadata document (RFC 8414 §3.2, OpenID Connect Discovery §4.2) fetched for
/// `expected_issuer`.
///
/// The document's `issuer` must be identical to `expected_issuer` (RFC 8414 §3.3; otherwise
/// [`Error::IssuerMismatch`]: an attacker's document, or the wrong URL). Every endpoint must
/// be an absolute URI allowed by `policy`; one that is not is an
/// [`Error::UnexpectedResponse`] naming the member, rather than silently dropped. The same
/// goes for every member of `mtls_endpoint_aliases` (RFC 8705 §5), which must be an object
/// of strings (an invalid one is named as `mtls_endpoint_aliases`); aliases of endpoints
/// this crate does not use are checked and dropped.
pub fn parse_server_metadata<B: AsRef<[u8]>>(
    response: &Response<B>,
    expected_issuer: &str,
    policy: SchemePolicy,
) -> Result<ServerMetadata, Error> {
    let mut map = parse_object(response)?;
    let issuer = match map.remove("issuer") {
        Some(Value::String(s)) => s,
        None | Some(Value::Null) => {
            return Err(unexpected(
                response,
                UnexpectedReason::MissingField("issuer"),
            ));
        }
        Some(_) => {
            return Err(unexpected(
                response,
                UnexpectedReason::InvalidField("issuer"),
            ));
        }
    };
    if issuer != expected_issuer {
        return Err(Error::IssuerMismatch);
    }
    let mut endpoints = Vec::new();
    for &name in ENDPOINTS {
        match map.remove(name) {
            None | Some(Value::Null) => {}
            Some(Value::String(s)) => match Endpoint::with_policy(&s, policy) {
                Ok(e) => endpoints.push((name, e)),
                Err(_) => {
                    return Err(unexpected(response, UnexpectedReason::InvalidField(name)));
                }
            },
            Some(_) => return Err(unexpected(response, UnexpectedReason::InvalidField(name))),
        }
    }
    let mut mtls_aliases = Vec::new();
    match map.remove("mtls_endpoint_aliases") {
        None | Some(Value::Null) => {}
        Some(Value::Object(aliases)) => {
            let invalid = || {
                unexpected(
                    response,
                    UnexpectedReason::InvalidField("mtls_endpoint_aliases"),
                )
            };
            for (name, value) in aliases {
                let Value::String(uri) = value else {
                    return Err(invalid());
                };
                let endpoint = Endpoint::with_policy(&uri, policy).map_err(|_| invalid())?;
                if let Some(&known) = MTLS_ALIASED.iter().find(|n| **n == name) {
                    mtls_aliases.push((known, endpoint));
                }
            }
        }
        Some(_) => {
            return Err(unexpected(
                response,
                UnexpectedReason::InvalidField("mtls_endpoint_aliases"),
            ));
        }
    }
    Ok(ServerMetadata {
        issuer,
        endpoints,
        mtls_aliases,
        prefer_mtls_aliases: false,
        extra: map,
    })
}

#[cfg(test)]
mod tests {
    use super::*;

    fn response(body: &str) -> Response<Vec<u8>> {
        Response::builder()
            .status(200)
            .header("content-type", "application/json")
            .body(body.as_bytes().to_vec())
            .unwrap()
    }

    /// RFC 8414 §3.2's example.
    const RFC8414: &str = r#"{
      "issuer": "https://server.example.com",
      "authorization_endpoint": "https://server.example.com/authorize",
      "token_endpoint": "https://server.example.com/token",
      "token_endpoint_auth_methods_supported": ["client_secret_basic", "private_key_jwt"],
      "token_endpoint_auth_signing_alg_values_supported": ["RS256", "ES256"],
      "userinfo_endpoint": "https://server.example.com/userinfo",
      "jwks_uri": "https://server.example.com/jwks.json",
      "registration_endpoint": "https://server.example.com/register",
      "scopes_supported": ["openid", "profile", "email", "address", "phone", "offline_access"],
      "response_types_supported": ["code", "code token"],
      "service_documentation": "http://server.example.com/service_documentation.html",
      "ui_locales_supported": ["en-US", "en-GB", "en-CA", "fr-FR", "fr-CA"]
    }"#;

    #[test]
    fn rfc8414_example() {
        let m = parse_server_metadata(
            &response(RFC8414),
            "https://server.example.com",
            SchemePolicy::HttpsOnly,
        )
        .unwrap();
        assert_eq!(m.issuer(), "https://server.example.com");
        assert_eq!(
            m.token_endpoint().unwrap().as_str(),
            "https://server.example.com/token"
        );
        assert_eq!(
            m.jwks_uri().unwrap().as_str(),
            "https://server.example.com/jwks.json"
        );
        assert!(m.introspection_endpoint().is_none());
        assert_eq!(
            m.supported("token_endpoint_auth_methods_supported"),
            ["client_secret_basic", "private_key_jwt"]
        );
        // No grant_types_supported: the RFC's default.
        assert!(m.supports_grant("authorization_code"));
        assert!(!m.supports_grant("client_credentials"));
        // A documentation link over http is not an endpoint, so it is only kept.
        assert!(m.extra().contains_key("service_documentation"));
    }

    #[test]
    fn issuer_must_match_and_endpoints_must_be_https() {
        let r = response(RFC8414);
        for wrong in ["https://server.example.com/", "https://evil.example", ""] {
            assert_eq!(
                parse_server_metadata(&r, wrong, SchemePolicy::HttpsOnly).unwrap_err(),
                Error::IssuerMismatch
            );
        }
        let http =
            response(r#"{"issuer":"https://a.example","token_endpoint":"http://a.example/token"}"#);
        match parse_server_metadata(&http, "https://a.example", SchemePolicy::HttpsOnly) {
            Err(Error::UnexpectedResponse(u)) => {
                assert_eq!(
                    u.reason(),
                    &UnexpectedReason::InvalidField("token_endpoint")
                );
            }
            other => panic!("{other:?}"),
        }
        for body in [
            r#"{"token_endpoint":"https://a.example/t"}"#,
            r#"{"issuer":5}"#,
            r#"{"issuer":"https://a.example","jwks_uri":["x"]}"#,
        ] {
            assert!(matches!(
                parse_server_metadata(
                    &response(body),
                    "https://a.example",
                    SchemePolicy::HttpsOnly
                ),
                Err(Error::UnexpectedResponse(_))
            ));
        }
    }

    /// RFC 8705 §5's example document, with the fields of RFC 9396 and RFC 9101.
    const RFC8705: &str = r#"{
      "issuer": "https://server.example.com",
      "authorization_endpoint": "https://server.example.com/authz",
      "token_endpoint": "https://server.example.com/token",
      "introspection_endpoint": "https://server.example.com/introspect",
      "revocation_endpoint": "https://server.example.com/revo",
      "jwks_uri": "https://server.example.com/jwks",
      "userinfo_endpoint": "https://server.example.com/userinfo",
      "device_authorization_endpoint": "https://server.example.com/device",
      "pushed_authorization_request_endpoint": "https://server.example.com/par",
      "token_endpoint_auth_methods_supported": ["client_secret_basic", "tls_client_auth",
        "self_signed_tls_client_auth"],
      "tls_client_certificate_bound_access_tokens": true,
      "authorization_details_types_supported": ["payment_initiation", "account_information"],
      "request_object_signing_alg_values_supported": ["PS256", "ES256"],
      "mtls_endpoint_aliases": {
        "token_endpoint": "https://mtls.example.com/token",
        "revocation_endpoint": "https://mtls.example.com/revo",
        "introspection_endpoint": "https://mtls.example.com/introspect",
        "userinfo_endpoint": "https://mtls.example.com/userinfo",
        "device_authorization_endpoint": "https://mtls.example.com/device",
        "pushed_authorization_request_endpoint": "https://mtls.example.com/par",
        "backchannel_authentication_endpoint": "https://mtls.example.com/bc-authn"
      }
    }"#;

    #[test]
    fn mtls_endpoint_aliases_replace_the_endpoints_of_an_mtls_client() {
        let m = parse_server_metadata(
            &response(RFC8705),
            "https://server.example.com",
            SchemePolicy::HttpsOnly,
        )
        .unwrap();
        assert!(m.tls_client_certificate_bound_access_tokens());
        assert_eq!(
            m.token_endpoint_auth_methods_supported(),
            [
                "client_secret_basic",
                "tls_client_auth",
                "self_signed_tls_client_auth"
            ]
        );
        assert_eq!(
            m.authorization_details_types_supported(),
            ["payment_initiation", "account_information"]
        );
        assert_eq!(
            m.request_object_signing_alg_values_supported(),
            ["PS256", "ES256"]
        );
        assert!(!m.extra().contains_key("mtls_endpoint_aliases"));
        let names = [
            ("token_endpoint", "token"),
            ("revocation_endpoint", "revo"),
            ("introspection_endpoint", "introspect"),
            ("userinfo_endpoint", "userinfo"),
            ("device_authorization_endpoint", "device"),
            ("pushed_authorization_request_endpoint", "par"),
        ];
        // Not asked for: the conventional endpoints.
        assert!(!m.uses_mtls_endpoint_aliases());
        for (name, path) in names {
            assert_eq!(
                m.endpoint(name).unwrap().as_str(),
                format!("https://server.example.com/{path}")
            );
        }
        let plain = crate::Client::new("c", crate::ClientAuthentication::None);
        assert!(!m.clone().for_client(&plain).uses_mtls_endpoint_aliases());
        let mtls = crate::Client::new("c", crate::ClientAuthentication::TlsClientAuth);
        let m = m.for_client(&mtls);
        assert!(m.uses_mtls_endpoint_aliases());
        for (name, path) in names {
            assert_eq!(
                m.endpoint(name).unwrap().as_str(),
                format!("https://mtls.example.com/{path}")
            );
            assert_eq!(
                m.conventional_endpoint(name).unwrap().as_str(),
                format!("https://server.example.com/{path}")
            );
        }
        assert_eq!(
            m.token_endpoint().unwrap().as_str(),
            "https://mtls.example.com/token"
        );
        assert_eq!(
            m.pushed_authorization_request_endpoint().unwrap().as_str(),
            "https://mtls.example.com/par"
        );
        // Never aliased: the browser's endpoint and the key set.
        assert_eq!(
            m.authorization_endpoint().unwrap().as_str(),
            "https://server.example.com/authz"
        );
        assert_eq!(
            m.jwks_uri().unwrap().as_str(),
            "https://server.example.com/jwks"
        );
        // An alias of an endpoint this crate does not use is dropped.
        assert!(
            m.mtls_endpoint_alias("backchannel_authentication_endpoint")
                .is_none()
        );
        assert!(format!("{m:?}").contains("https://mtls.example.com/token"));
    }

    #[test]
    fn mtls_endpoint_aliases_obey_the_scheme_policy() {
        for aliases in [
            r#"{"token_endpoint": "http://mtls.example.com/token"}"#,
            r#"{"userinfo_endpoint": "https://mtls.example.com/u", "backchannel_authentication_endpoint": "http://x.example/b"}"#,
            r#"{"token_endpoint": "/token"}"#,
            r#"{"token_endpoint": 5}"#,
            r#"["https://mtls.example.com/token"]"#,
            r#""https://mtls.example.com/token""#,
        ] {
            let body = format!(
                r#"{{"issuer":"https://a.example","token_endpoint":"https://a.example/t","mtls_endpoint_aliases":{aliases}}}"#
            );
            match parse_server_metadata(
                &response(&body),
                "https://a.example",
                SchemePolicy::HttpsOnly,
            ) {
                Err(Error::UnexpectedResponse(u)) => assert_eq!(
                    u.reason(),
                    &UnexpectedReason::InvalidField("mtls_endpoint_aliases"),
                    "{aliases}"
                ),
                other => panic!("{aliases}: {other:?}"),
            }
        }
        // Loopback http only with the explicit opt-in.
        let body = r#"{"issuer":"http://127.0.0.1:1","mtls_endpoint_aliases":{"token_endpoint":"http://127.0.0.1:1/mtls/token"}}"#;
        let m = parse_server_metadata(
            &response(body),
            "http://127.0.0.1:1",
            SchemePolicy::DangerousAllowHttpLoopback,
        )
        .unwrap()
        .with_mtls_endpoint_aliases();
        assert_eq!(
            m.token_endpoint().unwrap().as_str(),
            "http://127.0.0.1:1/mtls/token"
        );
        // Absent: nothing bound, nothing aliased, the RFC 8414 default method.
        let m = parse_server_metadata(
            &response(RFC8414),
            "https://server.example.com",
            SchemePolicy::HttpsOnly,
        )
        .unwrap()
        .with_mtls_endpoint_aliases();
        assert!(!m.tls_client_certificate_bound_access_tokens());
        assert_eq!(
            m.token_endpoint().unwrap().as_str(),
            "https://server.example.com/token"
        );
        assert!(m.authorization_details_types_supported().is_empty());
    }

    #[test]
    fn well_known_locations() {
        let e = |s| Endpoint::new(s).unwrap();
        let at = |issuer, which| {
            discovery_request(&e(issuer), which)
                .unwrap()
                .uri()
                .to_string()
        };
        use WellKnown::*;
        assert_eq!(
            at("https://as.example", OAuthAuthorizationServer),
            "https://as.example/.well-known/oauth-authorization-server"
        );
        assert_eq!(
            at("https://as.example/", OpenIdConfiguration),
            "https://as.example/.well-known/openid-configuration"
        );
        assert_eq!(
            at("https://as.example:8443/t/1", OpenIdConfiguration),
            "https://as.example:8443/t/1/.well-known/openid-configuration"
        );
        assert!(discovery_request(&e("https://as.example/?x=1"), OpenIdConfiguration).is_err());
    }

    proptest::proptest! {
        #[test]
        fn parser_never_panics(body in proptest::collection::vec(proptest::prelude::any::<u8>(), 0..300), issuer in ".{0,20}") {
            let r = Response::builder().status(200).body(body).unwrap();
            let _ = parse_server_metadata(&r, &issuer, SchemePolicy::DangerousAllowHttpLoopback);
        }
    }
}
