//! Security profiles a client holds itself to: [`Profile::Fapi2`], the FAPI 2.0 Security
//! Profile's client rules (§5.3.2, §5.4), checked on the pieces of a client before anything is
//! sent.
//!
//! Each check returns the first rule broken as a [`ProfileViolation`] that names the missing
//! piece and how to supply it; the driver that adopts a profile (oauth-runtime's `OpenIdCore`)
//! runs them when it is built and on every authorization request, and sets what the profile
//! fixes (pushed requests, `iss` required on the redirect, the signature algorithms).

use std::fmt;
use std::time::Duration;

#[cfg(feature = "authorization-code")]
use crate::authorization::{AuthorizationRequest, PkceMethod};
use crate::client::{AssertionSigner, Client, ClientAuthentication};
use crate::discovery::ServerMetadata;

/// A security profile.
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
#[non_exhaustive]
pub enum Profile {
    /// The FAPI 2.0 Security Profile (final): pushed authorization requests, PKCE `S256`,
    /// sender-constrained tokens (DPoP or mutual TLS), `private_key_jwt` or mutual-TLS client
    /// authentication, the RFC 9207 `iss` check, and only PS256, ES256 or EdDSA signatures.
    Fapi2,
}

/// The JWS algorithms FAPI 2.0 §5.4.1 allows.
pub const FAPI2_ALGORITHMS: &[&str] = &["PS256", "ES256", "EdDSA"];

/// The longest a client assertion or request object may live under FAPI 2.0 (its §5.3.2.1
/// asks request objects for at most 60 s between `nbf` and `exp`; assertions are held to the
/// same).
pub const FAPI2_MAX_LIFETIME: Duration = Duration::from_secs(60);

/// A rule of a [`Profile`] a configuration breaks: which rule, and what to change.
#[derive(Clone, Debug, PartialEq, Eq)]
pub struct ProfileViolation {
    profile: Profile,
    rule: &'static str,
    detail: String,
}

impl ProfileViolation {
    fn new(rule: &'static str, detail: impl Into<String>) -> Self {
        Self {
            profile: Profile::Fapi2,
            rule,
            detail: detail.into(),
        }
    }

    /// The profile.
    pub fn profile(&self) -> Profile {
        self.profile
    }

    /// The rule broken, in a few words (`"client authentication"`, `"sender-constrained
    /// tokens"`, `"pushed authorization requests"`, `"PKCE S256"`, `"signature algorithm"`,
    /// `"assertion lifetime"`).
    pub fn rule(&self) -> &'static str {
        self.rule
    }

    /// What is missing or wrong, and how to fix it.
    pub fn detail(&self) -> &str {
        &self.detail
    }
}

impl fmt::Display for ProfileViolation {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        let profile = match self.profile {
            Profile::Fapi2 => "FAPI 2.0",
        };
        write!(f, "{profile} profile: {}: {}", self.rule, self.detail)
    }
}

impl std::error::Error for ProfileViolation {}

impl Profile {
    /// Checks how `client` authenticates at the server whose issuer identifier is `issuer`,
    /// and how it binds its tokens: `private_key_jwt` signed with PS256, ES256 or EdDSA, living
    /// at most 60 s, with `aud` the issuer (FAPI 2.0 §5.3.2.1: an assertion for an endpoint's
    /// URL can be replayed elsewhere), or mutual TLS; and a DPoP key or mutual TLS for
    /// sender-constrained tokens.
    pub fn check_client(self, client: &Client, issuer: &str) -> Result<(), ProfileViolation> {
        let mtls = client.authentication().is_mtls();
        match client.authentication() {
            ClientAuthentication::Signed(signer) => {
                check_signer(signer.as_ref(), "client assertion")?;
                if signer.audience() != Some(issuer) {
                    return Err(ProfileViolation::new(
                        "assertion audience",
                        format!(
                            "client assertions must name the issuer {issuer} as their only \
                             audience (ClientAssertionSigner::audience)"
                        ),
                    ));
                }
            }
            _ if mtls => {}
            ClientAuthentication::SecretBasic(_)
            | ClientAuthentication::SecretBasicVerbatim(_)
            | ClientAuthentication::SecretPost(_) => {
                return Err(ProfileViolation::new(
                    "client authentication",
                    "a client secret is a shared secret; use private_key_jwt \
                     (ClientAuthentication::signed with jwt-assertion's ClientAssertionSigner) or \
                     mutual TLS (tls_client_auth, self_signed_tls_client_auth)",
                ));
            }
            ClientAuthentication::Assertion(_) => {
                return Err(ProfileViolation::new(
                    "client authentication",
                    "a fixed assertion is replayed on every request; sign one per request \
                     (ClientAuthentication::signed)",
                ));
            }
            _ => {
                return Err(ProfileViolation::new(
                    "client authentication",
                    "a public client; FAPI 2.0 clients are confidential: use private_key_jwt or \
                     mutual TLS",
                ));
            }
        }
        if client.dpop().is_none() && !mtls {
            return Err(ProfileViolation::new(
                "sender-constrained tokens",
                "the client has no DPoP key and does not use mutual TLS; give it one \
                 (Client::with_dpop) or authenticate with tls_client_auth / \
                 self_signed_tls_client_auth",
            ));
        }
        Ok(())
    }

    /// Checks the authorization server: it must take pushed authorization requests.
    pub fn check_server(self, metadata: &ServerMetadata) -> Result<(), ProfileViolation> {
        if metadata.pushed_authorization_request_endpoint().is_none() {
            return Err(ProfileViolation::new(
                "pushed authorization requests",
                format!(
                    "{} names no pushed_authorization_request_endpoint",
                    metadata.issuer()
                ),
            ));
        }
        Ok(())
    }

    /// Checks an authorization request: PKCE `S256`, the redirect's `iss` required, and a
    /// request object (if any) signed with an allowed algorithm for at most 60 s.
    #[cfg(feature = "authorization-code")]
    pub fn check_authorization_request(
        self,
        request: &AuthorizationRequest,
    ) -> Result<(), ProfileViolation> {
        match request.pkce_method() {
            Some(PkceMethod::S256) => {}
            Some(_) => {
                return Err(ProfileViolation::new(
                    "PKCE S256",
                    "the request sends PKCE plain; remove dangerous_pkce_plain",
                ));
            }
            None => {
                return Err(ProfileViolation::new(
                    "PKCE S256",
                    "the request sends no PKCE; remove dangerous_disable_pkce",
                ));
            }
        }
        if request
            .expected_issuer()
            .is_none_or(|(_, required)| !required)
        {
            return Err(ProfileViolation::new(
                "issuer identification (RFC 9207)",
                "the redirect's iss is not required; expect_issuer(issuer, true)",
            ));
        }
        if let Some((signer, lifetime)) = request.request_object_signer() {
            check_signer(signer, "request object")?;
            if lifetime > FAPI2_MAX_LIFETIME {
                return Err(ProfileViolation::new(
                    "request object lifetime",
                    format!(
                        "request objects live {} s; at most 60 s (request_object_lifetime)",
                        lifetime.as_secs()
                    ),
                ));
            }
        }
        Ok(())
    }

    /// The id_token signature algorithms this profile accepts among `offered` (the provider's
    /// `id_token_signing_alg_values_supported`, or those a relying party was told to accept),
    /// in their order; none of them is a violation.
    pub fn id_token_algorithms<'a>(
        self,
        offered: &[&'a str],
    ) -> Result<Vec<&'a str>, ProfileViolation> {
        let allowed: Vec<&str> = offered
            .iter()
            .copied()
            .filter(|a| FAPI2_ALGORITHMS.contains(a))
            .collect();
        if allowed.is_empty() {
            return Err(ProfileViolation::new(
                "signature algorithm",
                format!(
                    "id_tokens would be accepted signed with {}; only PS256, ES256 or EdDSA",
                    if offered.is_empty() {
                        "nothing".to_owned()
                    } else {
                        offered.join(", ")
                    }
                ),
            ));
        }
        Ok(allowed)
    }
}

fn check_signer(signer: &dyn AssertionSigner, what: &str) -> Result<(), ProfileViolation> {
    match signer.algorithm() {
        Some(alg) if FAPI2_ALGORITHMS.contains(&alg) => {}
        Some(alg) => {
            return Err(ProfileViolation::new(
                "signature algorithm",
                format!("the {what} is signed with {alg}; use a PS256, ES256 or EdDSA key"),
            ));
        }
        None => {
            return Err(ProfileViolation::new(
                "signature algorithm",
                format!(
                    "the {what} signer does not say its algorithm (AssertionSigner::algorithm)"
                ),
            ));
        }
    }
    if let Some(lifetime) = signer.lifetime()
        && lifetime > FAPI2_MAX_LIFETIME
    {
        return Err(ProfileViolation::new(
            "assertion lifetime",
            format!(
                "the {what} lives {} s; at most 60 s (ClientAssertionSigner::lifetime)",
                lifetime.as_secs()
            ),
        ));
    }
    Ok(())
}

#[cfg(test)]
#[cfg(feature = "authorization-code")]
mod tests {
    #![allow(clippy::unwrap_used)]

    use std::sync::Arc;

    use super::*;
    use crate::authorization::Pkce;
    use crate::client::SigningContext;
    use crate::dpop::{Dpop, DpopSigner, ProofContext};
    use crate::endpoint::{Endpoint, SchemePolicy};
    use crate::error::Error;
    use crate::secret::Assertion;
    use crate::secret::ClientSecret;

    #[derive(Debug)]
    struct Signer(Option<&'static str>, Duration, Option<&'static str>);

    impl AssertionSigner for Signer {
        fn sign(&self, _: &SigningContext<'_>) -> Result<Assertion, Error> {
            Ok(Assertion::new("a.b.c"))
        }
        fn algorithm(&self) -> Option<&str> {
            self.0
        }
        fn lifetime(&self) -> Option<Duration> {
            Some(self.1)
        }
        fn audience(&self) -> Option<&str> {
            self.2
        }
    }

    const ISSUER: &str = "https://as.example";

    struct Key;

    impl DpopSigner for Key {
        fn sign_proof(&self, _: &ProofContext<'_>) -> Result<String, Error> {
            Ok("p.r.f".into())
        }
        fn thumbprint(&self) -> &str {
            "jkt"
        }
    }

    const MINUTE: Duration = Duration::from_secs(60);

    fn signed(alg: Option<&'static str>, lifetime: Duration) -> ClientAuthentication {
        ClientAuthentication::Signed(Arc::new(Signer(alg, lifetime, Some(ISSUER))))
    }

    fn rule(result: Result<(), ProfileViolation>) -> &'static str {
        result.unwrap_err().rule()
    }

    #[test]
    fn each_client_rule_is_named() {
        let fapi = Profile::Fapi2;
        let dpop = |auth| Client::new("c", auth).with_dpop(Dpop::new(Key));
        assert_eq!(
            fapi.check_client(&dpop(signed(Some("PS256"), MINUTE)), ISSUER),
            Ok(())
        );
        assert_eq!(
            fapi.check_client(&dpop(signed(Some("EdDSA"), MINUTE)), ISSUER),
            Ok(())
        );
        for auth in [
            ClientAuthentication::SecretBasic(ClientSecret::new("s")),
            ClientAuthentication::SecretPost(ClientSecret::new("s")),
            ClientAuthentication::None,
        ] {
            assert_eq!(
                rule(fapi.check_client(&dpop(auth), ISSUER)),
                "client authentication"
            );
        }
        let rs256 = fapi
            .check_client(&dpop(signed(Some("RS256"), MINUTE)), ISSUER)
            .unwrap_err();
        assert_eq!(rs256.rule(), "signature algorithm");
        assert!(rs256.detail().contains("RS256"), "{rs256}");
        assert_eq!(
            rule(fapi.check_client(&dpop(signed(Some("HS256"), MINUTE)), ISSUER)),
            "signature algorithm"
        );
        assert_eq!(
            rule(fapi.check_client(&dpop(signed(None, MINUTE)), ISSUER)),
            "signature algorithm"
        );
        let long = fapi
            .check_client(&dpop(signed(Some("ES256"), 5 * MINUTE)), ISSUER)
            .unwrap_err();
        assert_eq!(long.rule(), "assertion lifetime");
        assert!(long.to_string().starts_with("FAPI 2.0 profile: "), "{long}");
        // An assertion for the endpoint's URL (the signer's default), or another audience.
        for audience in [None, Some("https://as.example/token")] {
            let auth =
                ClientAuthentication::Signed(Arc::new(Signer(Some("ES256"), MINUTE, audience)));
            let e = fapi.check_client(&dpop(auth), ISSUER).unwrap_err();
            assert_eq!(e.rule(), "assertion audience");
            assert!(e.detail().contains(ISSUER), "{e}");
        }
        // Mutual TLS authenticates the client and binds its tokens: no DPoP key needed.
        for auth in [
            ClientAuthentication::TlsClientAuth,
            ClientAuthentication::SelfSignedTlsClientAuth,
        ] {
            assert_eq!(fapi.check_client(&Client::new("c", auth), ISSUER), Ok(()));
        }
        // No DPoP key and no mutual TLS: nothing constrains the tokens.
        let unbound = Client::new("c", signed(Some("ES256"), MINUTE));
        let e = fapi.check_client(&unbound, ISSUER).unwrap_err();
        assert_eq!(e.rule(), "sender-constrained tokens");
        assert!(e.detail().contains("Client::with_dpop"), "{e}");
        // As an `Error`: the caller's fault, the violation kept.
        let error = Error::from(e.clone());
        assert_eq!(error.fault(), crate::Fault::Caller);
        assert_eq!(error, Error::Profile(e));
    }

    #[test]
    fn each_request_rule_is_named() {
        let fapi = Profile::Fapi2;
        let endpoint =
            Endpoint::with_policy("https://as.example/authorize", SchemePolicy::HttpsOnly).unwrap();
        let request = || {
            AuthorizationRequest::new(endpoint.clone(), "c")
                .redirect_uri("https://app.example/cb")
                .expect_issuer("https://as.example", true)
        };
        assert_eq!(fapi.check_authorization_request(&request()), Ok(()));
        assert_eq!(
            rule(fapi.check_authorization_request(&request().dangerous_pkce_plain())),
            "PKCE S256"
        );
        assert_eq!(
            rule(fapi.check_authorization_request(&request().dangerous_disable_pkce())),
            "PKCE S256"
        );
        let rng = crate::random::test_support::SeededRandom::new(7);
        let given_plain = Pkce::generate(&rng).unwrap();
        let given = Pkce::from_verifier(given_plain.verifier().clone(), PkceMethod::Plain).unwrap();
        assert_eq!(
            rule(fapi.check_authorization_request(&request().pkce(given))),
            "PKCE S256"
        );
        let optional_iss = AuthorizationRequest::new(endpoint.clone(), "c")
            .expect_issuer("https://as.example", false);
        assert_eq!(
            rule(fapi.check_authorization_request(&optional_iss)),
            "issuer identification (RFC 9207)"
        );
        let jar = |alg, lifetime| {
            request()
                .request_object(Signer(alg, MINUTE, None), "https://as.example")
                .request_object_lifetime(lifetime)
        };
        assert_eq!(
            fapi.check_authorization_request(&jar(Some("ES256"), MINUTE)),
            Ok(())
        );
        assert_eq!(
            rule(fapi.check_authorization_request(&jar(Some("RS256"), MINUTE))),
            "signature algorithm"
        );
        assert_eq!(
            rule(fapi.check_authorization_request(&jar(Some("PS256"), 2 * MINUTE))),
            "request object lifetime"
        );
    }

    #[test]
    fn id_token_algorithms_are_narrowed() {
        let fapi = Profile::Fapi2;
        assert_eq!(
            fapi.id_token_algorithms(&["RS256", "PS256", "ES256", "HS256"]),
            Ok(vec!["PS256", "ES256"])
        );
        let none = fapi.id_token_algorithms(&["RS256", "HS256"]).unwrap_err();
        assert_eq!(none.rule(), "signature algorithm");
        assert!(none.detail().contains("RS256, HS256"), "{none}");
    }
}
