//! Endpoint URIs, checked once: https only, unless the caller opts in to plain http on loopback.

use std::fmt;
use std::net::{IpAddr, Ipv6Addr};
use std::str::FromStr;

use http::Uri;

/// Which URI schemes an [`Endpoint`] accepts.
#[derive(Clone, Copy, Debug, Default, PartialEq, Eq)]
#[non_exhaustive]
pub enum SchemePolicy {
    /// Only `https://` (the default, and the only safe choice outside development).
    #[default]
    HttpsOnly,
    /// `https://` anywhere, and also `http://` to `localhost`, `127.0.0.0/8` or `[::1]`.
    ///
    /// For development against a local authorization server only: tokens and secrets cross the
    /// loopback interface in clear text.
    DangerousAllowHttpLoopback,
}

/// An absolute endpoint URI that passed the [`SchemePolicy`] check.
///
/// Every request the crate builds goes to an `Endpoint`, so a plain `http://` token endpoint is
/// refused when it is configured rather than when a secret is about to be sent.
///
/// ```
/// use oauth_core::{Endpoint, SchemePolicy};
///
/// let token = Endpoint::new("https://oauth.org.com/as/token.oauth2")?;
/// assert_eq!(token.as_str(), "https://oauth.org.com/as/token.oauth2");
/// assert!(Endpoint::new("http://oauth.org.com/as/token.oauth2").is_err());
/// let dev = Endpoint::with_policy("http://127.0.0.1:8080/token", SchemePolicy::DangerousAllowHttpLoopback)?;
/// # let _ = dev;
/// # Ok::<(), oauth_core::EndpointError>(())
/// ```
#[derive(Clone, Debug, PartialEq, Eq)]
pub struct Endpoint {
    uri: Uri,
    text: String,
}

impl Endpoint {
    /// Parses an `https://` endpoint.
    pub fn new(uri: &str) -> Result<Self, EndpointError> {
        Self::with_policy(uri, SchemePolicy::HttpsOnly)
    }

    /// Parses an endpoint under the given scheme policy.
    pub fn with_policy(uri: &str, policy: SchemePolicy) -> Result<Self, EndpointError> {
        if uri.contains('#') {
            return Err(EndpointError::Fragment);
        }
        let parsed = Uri::from_str(uri).map_err(|_| EndpointError::Malformed)?;
        let (Some(scheme), Some(authority)) = (parsed.scheme_str(), parsed.authority()) else {
            return Err(EndpointError::NotAbsolute);
        };
        if authority.as_str().contains('@') {
            return Err(EndpointError::UserInfo);
        }
        match scheme {
            "https" => {}
            "http" => match policy {
                SchemePolicy::HttpsOnly => return Err(EndpointError::InsecureScheme),
                SchemePolicy::DangerousAllowHttpLoopback => {
                    if !is_loopback_host(authority.host()) {
                        return Err(EndpointError::HttpNotLoopback);
                    }
                }
            },
            _ => return Err(EndpointError::UnsupportedScheme),
        }
        Ok(Self {
            text: parsed.to_string(),
            uri: parsed,
        })
    }

    /// The URI.
    pub fn uri(&self) -> &Uri {
        &self.uri
    }

    /// The URI as text.
    pub fn as_str(&self) -> &str {
        &self.text
    }

    /// Whether this endpoint uses `http://` (only possible with
    /// [`SchemePolicy::DangerousAllowHttpLoopback`]).
    pub fn is_plain_http(&self) -> bool {
        self.uri.scheme_str() == Some("http")
    }

    /// The host, for error messages and logs; never includes the path or query.
    pub fn host(&self) -> &str {
        self.uri.host().unwrap_or("")
    }
}

impl fmt::Display for Endpoint {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        f.write_str(&self.text)
    }
}

impl FromStr for Endpoint {
    type Err = EndpointError;

    fn from_str(s: &str) -> Result<Self, Self::Err> {
        Self::new(s)
    }
}

impl TryFrom<&str> for Endpoint {
    type Error = EndpointError;

    fn try_from(s: &str) -> Result<Self, Self::Error> {
        Self::new(s)
    }
}

/// Whether `host` (as it appears in a URI authority) names the loopback interface.
pub(crate) fn is_loopback_host(host: &str) -> bool {
    if host.eq_ignore_ascii_case("localhost") {
        return true;
    }
    if let Some(inner) = host.strip_prefix('[').and_then(|h| h.strip_suffix(']')) {
        return Ipv6Addr::from_str(inner).is_ok_and(|ip| ip.is_loopback());
    }
    IpAddr::from_str(host).is_ok_and(|ip| ip.is_loopback())
}

/// Why an endpoint URI was refused.
///
/// The messages name the problem but never repeat the URI, which could carry credentials.
#[derive(Clone, Debug, PartialEq, Eq)]
#[non_exhaustive]
pub enum EndpointError {
    /// The text is not a valid URI.
    Malformed,
    /// The URI has no scheme or no host.
    NotAbsolute,
    /// The scheme is neither `https` nor `http`.
    UnsupportedScheme,
    /// The URI uses `http://` and plain http was not allowed.
    InsecureScheme,
    /// Plain http was allowed for loopback only, and the host is not a loopback address.
    HttpNotLoopback,
    /// The URI has a fragment, which RFC 6749 §3.1 and §3.2 forbid for endpoints.
    Fragment,
    /// The URI carries `user:password@`; credentials belong in the client authentication.
    UserInfo,
}

impl fmt::Display for EndpointError {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        f.write_str(match self {
            Self::Malformed => "endpoint is not a valid URI",
            Self::NotAbsolute => "endpoint must be an absolute URI with a scheme and a host",
            Self::UnsupportedScheme => "endpoint scheme must be https",
            Self::InsecureScheme => {
                "endpoint uses plain http; only https is allowed (for a local development server, \
                 opt in with HttpConfig::dangerous_allow_http_loopback() in oauth-reqwest or \
                 oauth-ureq, or SchemePolicy::DangerousAllowHttpLoopback in oauth-core)"
            }
            Self::HttpNotLoopback => {
                "plain http is only allowed to localhost, 127.0.0.0/8 or [::1]; use https"
            }
            Self::Fragment => "endpoint must not contain a fragment (RFC 6749 section 3.1)",
            Self::UserInfo => {
                "endpoint must not contain user:password@; configure client authentication instead"
            }
        })
    }
}

impl std::error::Error for EndpointError {}

#[cfg(test)]
mod tests {
    use super::*;

    #[track_caller]
    fn check(uri: &str, policy: SchemePolicy, expected: Result<(), EndpointError>) {
        assert_eq!(
            Endpoint::with_policy(uri, policy).map(|_| ()),
            expected,
            "{uri}"
        );
    }

    #[test]
    fn scheme_policy() {
        use EndpointError::*;
        use SchemePolicy::*;
        check("https://oauth.org.com/as/token.oauth2", HttpsOnly, Ok(()));
        check("http://oauth.org.com/token", HttpsOnly, Err(InsecureScheme));
        check(
            "http://127.0.0.1:8080/token",
            HttpsOnly,
            Err(InsecureScheme),
        );
        check(
            "http://127.0.0.1:8080/token",
            DangerousAllowHttpLoopback,
            Ok(()),
        );
        check("http://127.9.9.9/token", DangerousAllowHttpLoopback, Ok(()));
        check("http://localhost/token", DangerousAllowHttpLoopback, Ok(()));
        check("http://[::1]:99/token", DangerousAllowHttpLoopback, Ok(()));
        check(
            "http://10.0.0.1/token",
            DangerousAllowHttpLoopback,
            Err(HttpNotLoopback),
        );
        check(
            "http://localhost.evil.com/t",
            DangerousAllowHttpLoopback,
            Err(HttpNotLoopback),
        );
        check(
            "http://127.0.0.1.nip.io/t",
            DangerousAllowHttpLoopback,
            Err(HttpNotLoopback),
        );
        check(
            "ftp://oauth.org.com/token",
            HttpsOnly,
            Err(UnsupportedScheme),
        );
        check("/token", HttpsOnly, Err(NotAbsolute));
        check("https://a.com/token#frag", HttpsOnly, Err(Fragment));
        check("https://user:pw@a.com/token", HttpsOnly, Err(UserInfo));
        check("https://a b.com/", HttpsOnly, Err(Malformed));
        check("", HttpsOnly, Err(Malformed));
    }
}
