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
/// [`parse_server_metadata`], so a metadata document cannot point a client at `http://`.
#[derive(Clone)]
pub struct ServerMetadata {
    issuer: String,
    endpoints: Vec<(&'static str, Endpoint)>,
    extra: Map<String, Value>,
}

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
    pub fn endpoint(&self, name: &str) -> Option<&Endpoint> {
        self.endpoints
            .iter()
            .find(|(n, _)| *n == name)
            .map(|(_, e)| e)
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
/// [`Error::UnexpectedResponse`] naming the member, rather than silently dropped.
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
    Ok(ServerMetadata {
        issuer,
        endpoints,
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
