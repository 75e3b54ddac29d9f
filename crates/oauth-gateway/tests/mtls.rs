//! Certificate-bound access tokens (RFC 8705 §3) at the gateway: a token whose `cnf.x5t#S256`
//! names a client certificate is allowed only on a connection with that certificate, which
//! the TLS acceptor hands over as a [`ClientCertificate`] in the request's extensions. Both
//! faces, their `check_parts_with_certificate`, and the tower layer; a cached result never
//! lets the token through on another connection.
#![allow(clippy::unwrap_used, clippy::expect_used, clippy::panic)]

use std::sync::Arc;
use std::time::{Duration, SystemTime, UNIX_EPOCH};

use oauth_core::http::{Request, Response, StatusCode, header};
use oauth_core::{Client, ClientAuthentication, ClientSecret, InvalidTokenReason};
use oauth_gateway::{
    ApiPolicy, BlockingGateway, ClientCertificate, Contract, Denial, Gateway, JwtIssuer,
    MemoryContracts,
};
use oauth_test_server::{Behaviour, TestServer};
use serde_json::json;

const AUDIENCE: &str = "https://api.example/orders";

fn credentials() -> Client {
    let b = Behaviour::default();
    Client::new(
        b.client_id,
        ClientAuthentication::SecretBasic(ClientSecret::new(b.client_secret)),
    )
}

fn contracts() -> Arc<MemoryContracts> {
    let store = MemoryContracts::new();
    store.grant(Contract::new("app-1", "orders"));
    Arc::new(store)
}

fn request(token: &str, certificate: Option<ClientCertificate>) -> Request<Vec<u8>> {
    let mut request = Request::get("https://api.example/orders")
        .header(header::AUTHORIZATION, format!("Bearer {token}"))
        .body(Vec::new())
        .unwrap();
    if let Some(certificate) = certificate {
        request.extensions_mut().insert(certificate);
    }
    request
}

/// A JWT access token from `server` bound to `certificate`.
fn bound_token(server: &TestServer, certificate: &ClientCertificate) -> String {
    let now = SystemTime::now().duration_since(UNIX_EPOCH).unwrap();
    server.sign_jwt(
        json!({"typ": "at+jwt"}),
        json!({
            "iss": server.url(""), "aud": AUDIENCE, "sub": "u1", "client_id": "app-1",
            "iat": now.as_secs(), "exp": now.as_secs() + 600, "jti": "bound",
            "cnf": {"x5t#S256": certificate.thumbprint()},
        }),
    )
}

fn invalid(reason: InvalidTokenReason) -> Result<(), Denial> {
    Err(Denial::InvalidToken { reason })
}

#[test]
fn a_bound_token_passes_only_with_its_certificate_on_both_faces() {
    let server = TestServer::start(Behaviour::default()).unwrap();
    let ca = server.ca_pem().as_bytes();
    let ours = ClientCertificate::from_der(b"DER of the client's certificate");
    let other = ClientCertificate::from_der(b"DER of another certificate");
    let token = bound_token(&server, &ours);
    let policy = ApiPolicy::new("orders");

    let blocking = {
        let http = oauth_ureq::HttpClient::new(
            oauth_ureq::HttpConfig::new()
                .add_root_certificates_pem(ca)
                .unwrap()
                .timeout(Duration::from_secs(5)),
        )
        .unwrap();
        let issuer = JwtIssuer::new(
            server.url(""),
            AUDIENCE,
            http.endpoint(&server.url("/jwks")).unwrap(),
        );
        let endpoint = http.endpoint(&server.url("/introspect")).unwrap();
        BlockingGateway::builder(http, endpoint, credentials())
            .jwt_issuer(issuer)
            .build(policy.clone(), contracts())
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
                .add_root_certificates_pem(ca)
                .unwrap()
                .timeout(Duration::from_secs(5)),
        )
        .unwrap();
        let issuer = JwtIssuer::new(
            server.url(""),
            AUDIENCE,
            http.endpoint(&server.url("/jwks")).unwrap(),
        );
        let endpoint = http.endpoint(&server.url("/introspect")).unwrap();
        Gateway::builder(http, endpoint, credentials())
            .jwt_issuer(issuer)
            .build(policy, contracts())
    };

    type Face<'a> = Box<dyn Fn(Request<Vec<u8>>) -> Result<(), Denial> + 'a>;
    let faces: Vec<(&str, Face<'_>)> = vec![
        (
            "blocking check",
            Box::new(|r: Request<Vec<u8>>| blocking.check(&r).map(|_| ())),
        ),
        (
            "blocking check_parts_with_certificate",
            Box::new(|r: Request<Vec<u8>>| {
                blocking
                    .check_parts_with_certificate(
                        r.method(),
                        r.uri(),
                        r.headers(),
                        r.extensions().get(),
                    )
                    .map(|_| ())
            }),
        ),
        (
            "async check",
            Box::new(|r: Request<Vec<u8>>| rt.block_on(asynchronous.check(&r)).map(|_| ())),
        ),
        (
            "async check_parts_with_certificate",
            Box::new(|r: Request<Vec<u8>>| {
                rt.block_on(asynchronous.check_parts_with_certificate(
                    r.method(),
                    r.uri(),
                    r.headers(),
                    r.extensions().get(),
                ))
                .map(|_| ())
            }),
        ),
    ];
    for (name, check) in &faces {
        // The first check validates and caches; the ones after it come from the cache, and
        // the binding is still checked on each.
        assert_eq!(check(request(&token, Some(ours))), Ok(()), "{name}");
        assert_eq!(
            check(request(&token, None)),
            invalid(InvalidTokenReason::CertificateRequired),
            "{name}"
        );
        assert_eq!(
            check(request(&token, Some(other))),
            invalid(InvalidTokenReason::CertificateMismatch),
            "{name}"
        );
        assert_eq!(check(request(&token, Some(ours))), Ok(()), "{name}");
    }
    // One token, one cached result in each gateway.
    assert_eq!(blocking.cached_results(), 1);
    assert_eq!(asynchronous.cached_results(), 1);
    // `check_parts` and `validate` have no connection: a bound token is refused there.
    let r = request(&token, Some(ours));
    assert!(matches!(
        blocking.check_parts(r.method(), r.uri(), r.headers()),
        Err(Denial::InvalidToken {
            reason: InvalidTokenReason::CertificateRequired
        })
    ));
    let as_token = oauth_core::AccessToken::new(token.clone());
    assert!(matches!(
        rt.block_on(asynchronous.validate(&as_token)),
        Err(Denial::InvalidToken {
            reason: InvalidTokenReason::CertificateRequired
        })
    ));

    // The tower layer reads the extension the acceptor set.
    use tower::{Layer as _, ServiceExt as _};
    let service =
        asynchronous
            .layer()
            .layer(tower::service_fn(|_request: Request<Vec<u8>>| async move {
                Ok::<_, std::convert::Infallible>(Response::new(b"ok".to_vec()))
            }));
    let status = |certificate| {
        let service = service.clone();
        rt.block_on(service.oneshot(request(&token, certificate)))
            .unwrap()
            .status()
    };
    assert_eq!(status(Some(ours)), StatusCode::OK);
    assert_eq!(status(None), StatusCode::UNAUTHORIZED);
    assert_eq!(status(Some(other)), StatusCode::UNAUTHORIZED);
    let denied = rt
        .block_on(service.clone().oneshot(request(&token, None)))
        .unwrap();
    let challenge = denied.headers()[header::WWW_AUTHENTICATE].to_str().unwrap();
    assert!(
        challenge.contains(r#"error="invalid_token""#),
        "{challenge}"
    );
    // Validated locally, once per gateway: no introspection, one key-set fetch each.
    let counters = server.counters();
    assert_eq!(counters.introspection_requests, 0);
    assert_eq!(counters.jwks_requests, 2);
}
