//! Interop with oidc-provider (panva's OpenID Certified server), through both adapters.
//!
//! Ignored by a plain `cargo test`: they need Node and `npm ci` in interop/oidc-provider.
//! `cargo xtask interop` does both and runs them (CI does too).
#![allow(clippy::unwrap_used, clippy::expect_used, clippy::panic)]

use conformance::oidc_provider::{self as interop, OidcProvider};
use conformance::{Harness, Reqwest, Ureq};

macro_rules! interop_tests {
    ($module:ident, $harness:ty; $($check:ident),* $(,)?) => {
        mod $module {
            use super::*;
            $(
                #[test]
                #[ignore = "needs Node and oidc-provider: cargo xtask interop"]
                fn $check() {
                    interop::$check::<$harness>();
                }
            )*
        }
    };
}

interop_tests!(reqwest, Reqwest;
    client_credentials_every_auth_method,
    authorization_code_pkce_openid_and_refresh,
    key_rotation_is_followed_with_one_fetch,
    device_flow_approved_through_the_verification_page,
    pushed_authorization_then_code,
    client_registration_with_private_key_jwt,
    dpop_bound_tokens,
    jwt_bearer_and_token_exchange,
    discovery_introspection_and_revocation,
    failures_are_typed,
    token_sources_sign_every_request,
    fapi2_code_flow_with_jar_rar_and_dpop,
    mtls_client_credentials_bound_tokens,
);

interop_tests!(ureq, Ureq;
    client_credentials_every_auth_method,
    authorization_code_pkce_openid_and_refresh,
    key_rotation_is_followed_with_one_fetch,
    device_flow_approved_through_the_verification_page,
    pushed_authorization_then_code,
    client_registration_with_private_key_jwt,
    dpop_bound_tokens,
    jwt_bearer_and_token_exchange,
    discovery_introspection_and_revocation,
    failures_are_typed,
    token_sources_sign_every_request,
    fapi2_code_flow_with_jar_rar_and_dpop,
    mtls_client_credentials_bound_tokens,
);

/// The gateway policy (issue #8) against oidc-provider's introspection endpoint: a client with
/// a contract is allowed, one without is refused, a revoked token is refused once its cached
/// result is gone, an unknown token is 401. Both gateways.
#[test]
#[ignore = "needs Node and oidc-provider: cargo xtask interop"]
fn gateway_against_oidc_provider_introspection() {
    use std::time::Duration;

    use oauth_core::http::{Request, StatusCode, header};
    use oauth_core::{Denial, TokenRequest, TokenTypeHint};
    use oauth_gateway::{
        ApiPolicy, BlockingGateway, CacheConfig, Contract, Gateway, MemoryContracts,
    };

    let p = OidcProvider::shared();
    let h: Ureq = p.harness();
    let m = p.discover(&h);
    let contracts = std::sync::Arc::new(MemoryContracts::new());
    contracts.grant(Contract::new("cc-basic", "orders").scopes(["api:read"]));
    let policy = || ApiPolicy::new("orders").require_scope(["api:read"]);
    let cache = CacheConfig::new().max_age(Duration::from_millis(300));
    let introspection = m.introspection_endpoint().unwrap().clone();

    let blocking = {
        let http = oauth_ureq::HttpClient::new(
            oauth_ureq::HttpConfig::new()
                .add_root_certificates_pem(p.ca_pem.as_bytes())
                .unwrap(),
        )
        .unwrap();
        BlockingGateway::builder(
            http,
            introspection.clone(),
            interop::secret_client("gateway", false),
        )
        .cache(cache)
        .build(policy(), std::sync::Arc::clone(&contracts))
    };
    let rt = tokio::runtime::Builder::new_multi_thread()
        .worker_threads(2)
        .enable_all()
        .build()
        .unwrap();
    let asynchronous = {
        let http = oauth_reqwest::HttpClient::new(
            oauth_reqwest::HttpConfig::new()
                .add_root_certificates_pem(p.ca_pem.as_bytes())
                .unwrap(),
        )
        .unwrap();
        Gateway::builder(
            http,
            introspection,
            interop::secret_client("gateway", false),
        )
        .cache(cache)
        .build(policy(), std::sync::Arc::clone(&contracts))
    };
    let check = |token: &str| {
        let request = Request::get("https://api.example/orders")
            .header(header::AUTHORIZATION, format!("Bearer {token}"))
            .body(Vec::<u8>::new())
            .unwrap();
        let a = blocking.check(&request);
        let b = rt.block_on(asynchronous.check(&request));
        assert_eq!(
            a.as_ref()
                .map(|p| p.client_id().to_owned())
                .map_err(Denial::status),
            b.as_ref()
                .map(|p| p.client_id().to_owned())
                .map_err(Denial::status),
            "the two gateways disagree"
        );
        a
    };
    let endpoint = m.token_endpoint().unwrap();
    let token = |id: &str, post: bool| {
        h.request_token(
            endpoint,
            &interop::secret_client(id, post),
            &TokenRequest::client_credentials().scope(["api:read"]),
        )
        .unwrap()
        .access_token()
        .expose_secret()
        .to_owned()
    };

    let with_contract = token("cc-basic", false);
    assert_eq!(check(&with_contract).unwrap().client_id(), "cc-basic");
    let without = token("cc-post", true);
    assert_eq!(check(&without).unwrap_err(), Denial::NoContract);
    assert_eq!(
        check("not-a-token").unwrap_err().status(),
        StatusCode::UNAUTHORIZED
    );
    interop::revoke(
        &h,
        &m,
        &interop::secret_client("cc-basic", false),
        &with_contract,
        TokenTypeHint::AccessToken,
    )
    .unwrap();
    std::thread::sleep(Duration::from_millis(400));
    assert!(matches!(
        check(&with_contract),
        Err(Denial::InvalidToken { .. })
    ));
}

/// The gateway validating oidc-provider's JWT access tokens (RFC 9068, issued for a resource
/// indicator) by itself, with the keys at the discovered `jwks_uri`: a client with a contract
/// is allowed, one without is refused, and the introspection endpoint is never asked. Both
/// gateways.
#[test]
#[ignore = "needs Node and oidc-provider: cargo xtask interop"]
fn gateway_validates_oidc_provider_jwt_access_tokens() {
    use oauth_core::http::{Request, header};
    use oauth_core::{Denial, TokenRequest};
    use oauth_gateway::{
        ApiPolicy, BlockingGateway, Contract, Gateway, JwtIssuer, MemoryContracts,
    };

    let p = OidcProvider::shared();
    let h: Ureq = p.harness();
    let m = p.discover(&h);
    let contracts = std::sync::Arc::new(MemoryContracts::new());
    contracts.grant(Contract::new("cc-basic", "orders").scopes(["api:read"]));
    let policy = || ApiPolicy::new("orders").require_scope(["api:read"]);
    let jwks_uri = m.jwks_uri().unwrap().clone();
    let issuer = || JwtIssuer::new(&p.issuer, interop::JWT_RESOURCE, jwks_uri.clone());

    let blocking = {
        let http = oauth_ureq::HttpClient::new(
            oauth_ureq::HttpConfig::new()
                .add_root_certificates_pem(p.ca_pem.as_bytes())
                .unwrap(),
        )
        .unwrap();
        BlockingGateway::local_builder(http)
            .jwt_issuer(issuer())
            .build(policy(), std::sync::Arc::clone(&contracts))
    };
    let rt = tokio::runtime::Builder::new_multi_thread()
        .worker_threads(2)
        .enable_all()
        .build()
        .unwrap();
    let asynchronous = {
        let _guard = rt.enter();
        let http = oauth_reqwest::HttpClient::new(
            oauth_reqwest::HttpConfig::new()
                .add_root_certificates_pem(p.ca_pem.as_bytes())
                .unwrap(),
        )
        .unwrap();
        Gateway::local_builder(http)
            .jwt_issuer(issuer())
            .build(policy(), std::sync::Arc::clone(&contracts))
    };
    let check = |token: &str| {
        let request = Request::get("https://api.example/orders")
            .header(header::AUTHORIZATION, format!("Bearer {token}"))
            .body(Vec::<u8>::new())
            .unwrap();
        let a = blocking.check(&request).map(|p| p.client_id().to_owned());
        let b = rt
            .block_on(asynchronous.check(&request))
            .map(|p| p.client_id().to_owned());
        assert_eq!(a, b, "the two gateways disagree");
        a
    };
    let endpoint = m.token_endpoint().unwrap();
    let token = |id: &str, post: bool, resource: &str| {
        h.request_token(
            endpoint,
            &interop::secret_client(id, post),
            &TokenRequest::client_credentials()
                .scope(["api:read"])
                .resource(resource),
        )
        .unwrap()
        .access_token()
        .expose_secret()
        .to_owned()
    };
    let with_contract = token("cc-basic", false, interop::JWT_RESOURCE);
    assert!(
        interop::jwt_claims(&with_contract).is_some(),
        "a JWT access token"
    );
    assert_eq!(interop::jwt_header(&with_contract)["typ"], "at+jwt");
    assert_eq!(check(&with_contract), Ok("cc-basic".to_owned()));
    let without = token("cc-post", true, interop::JWT_RESOURCE);
    assert_eq!(check(&without), Err(Denial::NoContract));
    // A token for another resource is not for this API.
    let other = token("cc-basic", false, interop::OPAQUE_RESOURCE);
    assert!(matches!(check(&other), Err(Denial::InvalidToken { .. })));
}

/// Both gateways accepting oidc-provider's DPoP-bound tokens (RFC 9449 §7): a JWT access token
/// (`cnf.jkt` in its claims, validated locally) and an opaque one (`cnf.jkt` from
/// introspection), each with a proof made by the key it is bound to; refused as Bearer.
#[test]
#[ignore = "needs Node and oidc-provider: cargo xtask interop"]
fn gateway_accepts_oidc_provider_dpop_bound_tokens() {
    use std::time::SystemTime;

    use oauth_core::http::{Request, header};
    use oauth_core::{Denial, InvalidTokenReason, TokenRequest};
    use oauth_gateway::{
        ApiPolicy, BlockingGateway, Contract, Gateway, JwtIssuer, MemoryContracts,
    };

    let p = OidcProvider::shared();
    let h: Ureq = p.harness();
    let m = p.discover(&h);
    let contracts = std::sync::Arc::new(MemoryContracts::new());
    contracts.grant(Contract::new("cc-basic", "orders").scopes(["api:read"]));
    let policy = || ApiPolicy::new("orders").require_scope(["api:read"]);
    let jwks_uri = m.jwks_uri().unwrap().clone();
    let introspection = m.introspection_endpoint().unwrap().clone();
    let rt = tokio::runtime::Builder::new_multi_thread()
        .worker_threads(2)
        .enable_all()
        .build()
        .unwrap();
    let blocking = {
        let http = oauth_ureq::HttpClient::new(
            oauth_ureq::HttpConfig::new()
                .add_root_certificates_pem(p.ca_pem.as_bytes())
                .unwrap(),
        )
        .unwrap();
        BlockingGateway::builder(
            http,
            introspection.clone(),
            interop::secret_client("gateway", false),
        )
        .jwt_issuer(JwtIssuer::new(
            &p.issuer,
            interop::JWT_RESOURCE,
            jwks_uri.clone(),
        ))
        .build(policy(), std::sync::Arc::clone(&contracts))
    };
    let asynchronous = {
        let _guard = rt.enter();
        let http = oauth_reqwest::HttpClient::new(
            oauth_reqwest::HttpConfig::new()
                .add_root_certificates_pem(p.ca_pem.as_bytes())
                .unwrap(),
        )
        .unwrap();
        Gateway::builder(
            http,
            introspection,
            interop::secret_client("gateway", false),
        )
        .jwt_issuer(JwtIssuer::new(&p.issuer, interop::JWT_RESOURCE, jwks_uri))
        .build(policy(), std::sync::Arc::clone(&contracts))
    };
    let dpop = jwt_assertion::DpopKey::generate().unwrap().into_dpop();
    let url = "https://api.example/orders";
    let request = |scheme: &str, token: &str| {
        let mut b = Request::get(url).header(header::AUTHORIZATION, format!("{scheme} {token}"));
        if scheme == "DPoP" {
            let proof = dpop
                .proof(
                    &oauth_core::http::Method::GET,
                    &url.parse().unwrap(),
                    SystemTime::now(),
                    Some(token),
                )
                .unwrap();
            b = b.header("dpop", proof);
        }
        b.body(Vec::<u8>::new()).unwrap()
    };
    let client = interop::secret_client("cc-basic", false).with_dpop(dpop.clone());
    for resource in [interop::JWT_RESOURCE, interop::OPAQUE_RESOURCE] {
        let token = h
            .request_token(
                m.token_endpoint().unwrap(),
                &client,
                &TokenRequest::client_credentials()
                    .scope(["api:read"])
                    .resource(resource),
            )
            .unwrap();
        let token = token.access_token().expose_secret().to_owned();
        let a = blocking
            .check(&request("DPoP", &token))
            .map(|p| p.client_id().to_owned());
        let b = rt
            .block_on(asynchronous.check(&request("DPoP", &token)))
            .map(|p| p.client_id().to_owned());
        assert_eq!(a, Ok("cc-basic".to_owned()), "{resource}");
        assert_eq!(a, b, "{resource}: the two gateways disagree");
        assert_eq!(
            blocking.check(&request("Bearer", &token)).unwrap_err(),
            Denial::InvalidToken {
                reason: InvalidTokenReason::DpopBoundAsBearer
            },
            "{resource}"
        );
    }
}

/// Certificate-bound tokens from oidc-provider (RFC 8705: `tls_client_auth` and
/// `self_signed_tls_client_auth` clients, opaque tokens through introspection and JWT access
/// tokens checked locally) at both gateways: allowed on a connection that presented the
/// certificate (the `ClientCertificate` a TLS acceptor puts in the request's extensions),
/// refused without it and with another.
#[test]
#[ignore = "needs Node and oidc-provider: cargo xtask interop"]
fn gateway_enforces_oidc_provider_certificate_bound_tokens() {
    use oauth_core::http::{Request, header};
    use oauth_core::{ClientAuthentication, Denial, InvalidTokenReason, TokenRequest};
    use oauth_gateway::{
        ApiPolicy, BlockingGateway, ClientCertificate, Contract, Gateway, JwtIssuer,
        MemoryContracts,
    };

    let p = OidcProvider::shared();
    let plain: Ureq = p.harness();
    let m = p.discover(&plain);
    let contracts = std::sync::Arc::new(MemoryContracts::new());
    for id in [interop::MTLS_CA_CLIENT, interop::MTLS_SELF_SIGNED_CLIENT] {
        contracts.grant(Contract::new(id, "orders"));
    }
    let introspection = m.introspection_endpoint().unwrap().clone();
    let issuer = || {
        JwtIssuer::new(
            &p.issuer,
            interop::JWT_RESOURCE,
            m.jwks_uri().unwrap().clone(),
        )
    };
    let blocking = {
        let http = oauth_ureq::HttpClient::new(
            oauth_ureq::HttpConfig::new()
                .add_root_certificates_pem(p.ca_pem.as_bytes())
                .unwrap(),
        )
        .unwrap();
        BlockingGateway::builder(
            http,
            introspection.clone(),
            interop::secret_client("gateway", false),
        )
        .jwt_issuer(issuer())
        .build(ApiPolicy::new("orders"), std::sync::Arc::clone(&contracts))
    };
    let rt = tokio::runtime::Builder::new_multi_thread()
        .worker_threads(1)
        .enable_all()
        .build()
        .unwrap();
    let asynchronous = {
        let _guard = rt.enter();
        let http = oauth_reqwest::HttpClient::new(
            oauth_reqwest::HttpConfig::new()
                .add_root_certificates_pem(p.ca_pem.as_bytes())
                .unwrap(),
        )
        .unwrap();
        Gateway::builder(
            http,
            introspection,
            interop::secret_client("gateway", false),
        )
        .jwt_issuer(issuer())
        .build(ApiPolicy::new("orders"), std::sync::Arc::clone(&contracts))
    };
    let check = |token: &str, certificate: Option<ClientCertificate>| {
        let mut request = Request::get("https://api.example/orders")
            .header(header::AUTHORIZATION, format!("Bearer {token}"))
            .body(Vec::<u8>::new())
            .unwrap();
        if let Some(certificate) = certificate {
            request.extensions_mut().insert(certificate);
        }
        let a = blocking.check(&request).map(|p| p.client_id().to_owned());
        let b = rt
            .block_on(asynchronous.check(&request))
            .map(|p| p.client_id().to_owned());
        assert_eq!(a, b, "the two gateways disagree");
        a
    };
    let other = ClientCertificate::from_der(p.mtls.unregistered.der());
    for (id, auth, certificate) in [
        (
            interop::MTLS_CA_CLIENT,
            ClientAuthentication::TlsClientAuth,
            &p.mtls.ca_issued,
        ),
        (
            interop::MTLS_SELF_SIGNED_CLIENT,
            ClientAuthentication::SelfSignedTlsClientAuth,
            &p.mtls.self_signed,
        ),
    ] {
        let h: Ureq = p.mtls_harness(certificate);
        let mm = p.discover(&h);
        let client = oauth_core::Client::new(id, auth);
        let ours = ClientCertificate::from_der(certificate.der());
        for resource in [interop::OPAQUE_RESOURCE, interop::JWT_RESOURCE] {
            let token = h
                .request_token(
                    mm.token_endpoint().unwrap(),
                    &client,
                    &TokenRequest::client_credentials()
                        .scope(["api:read"])
                        .resource(resource),
                )
                .unwrap_or_else(|e| panic!("{id} {resource}: {e}"));
            let token = token.access_token().expose_secret();
            assert_eq!(
                check(token, Some(ours)),
                Ok(id.to_owned()),
                "{id} {resource}"
            );
            assert_eq!(
                check(token, None),
                Err(Denial::InvalidToken {
                    reason: InvalidTokenReason::CertificateRequired
                }),
                "{id} {resource}"
            );
            assert_eq!(
                check(token, Some(other)),
                Err(Denial::InvalidToken {
                    reason: InvalidTokenReason::CertificateMismatch
                }),
                "{id} {resource}"
            );
        }
    }
}
