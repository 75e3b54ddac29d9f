//! JWT access tokens (RFC 9068) validated by the gateway itself, with the keys the loopback
//! test server publishes at `/jwks`: every decision, no introspection call for a JWT from a
//! configured issuer, the cache, key rotation, a flood of unknown `kid`s, the key set
//! unavailable. Both the async (tower) and the blocking gateway.
#![allow(clippy::unwrap_used, clippy::expect_used, clippy::panic)]

use std::sync::Arc;
use std::time::Duration;

use oauth_core::http::{Request, StatusCode, header};
use oauth_core::{Client, ClientAuthentication, ClientSecret, InvalidTokenReason};
use oauth_gateway::{
    ApiPolicy, BlockingGateway, Contract, Denial, Gateway, JwtIssuer, MemoryContracts, Principal,
};
use oauth_test_server::{Behaviour, TestServer};
use serde_json::json;

const AUDIENCE: &str = "https://api.example/orders";
const HOUR: Duration = Duration::from_secs(3600);

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

fn policy() -> ApiPolicy {
    ApiPolicy::new("orders").require_scope(["orders:read"])
}

type Check = Box<dyn Fn(&str) -> Result<Principal, Denial>>;

/// Both gateways for `server`, validating its JWTs locally (keys at `jwks_path`) and
/// introspecting anything else.
fn gateways(server: &TestServer, jwks_path: &str) -> Vec<(&'static str, Check)> {
    let ca = server.ca_pem().as_bytes();
    let blocking = {
        let http = oauth_ureq::HttpClient::new(
            oauth_ureq::HttpConfig::new()
                .add_root_certificates_pem(ca)
                .unwrap()
                .timeout(Duration::from_secs(5))
                .retry(oauth_core::RetryPolicy::none()),
        )
        .unwrap();
        let issuer = JwtIssuer::new(
            server.url(""),
            AUDIENCE,
            http.endpoint(&server.url(jwks_path)).unwrap(),
        );
        let endpoint = http.endpoint(&server.url("/introspect")).unwrap();
        BlockingGateway::builder(http, endpoint, credentials())
            .jwt_issuer(issuer)
            .build(policy(), contracts())
    };
    let rt = Arc::new(
        tokio::runtime::Builder::new_multi_thread()
            .worker_threads(2)
            .enable_all()
            .build()
            .unwrap(),
    );
    let asynchronous = {
        let _guard = rt.enter();
        let http = oauth_reqwest::HttpClient::new(
            oauth_reqwest::HttpConfig::new()
                .add_root_certificates_pem(ca)
                .unwrap()
                .timeout(Duration::from_secs(5))
                .retry(oauth_core::RetryPolicy::none()),
        )
        .unwrap();
        let issuer = JwtIssuer::new(
            server.url(""),
            AUDIENCE,
            http.endpoint(&server.url(jwks_path)).unwrap(),
        );
        let endpoint = http.endpoint(&server.url("/introspect")).unwrap();
        Gateway::builder(http, endpoint, credentials())
            .jwt_issuer(issuer)
            .build(policy(), contracts())
    };
    vec![
        (
            "blocking",
            Box::new(move |token: &str| blocking.check(&request(token))),
        ),
        (
            "async",
            Box::new(move |token: &str| rt.block_on(asynchronous.check(&request(token)))),
        ),
    ]
}

fn request(token: &str) -> Request<Vec<u8>> {
    Request::get("https://api.example/orders")
        .header(header::AUTHORIZATION, format!("Bearer {token}"))
        .body(Vec::new())
        .unwrap()
}

fn now() -> u64 {
    std::time::SystemTime::now()
        .duration_since(std::time::UNIX_EPOCH)
        .unwrap()
        .as_secs()
}

fn claims(server: &TestServer, change: impl FnOnce(&mut serde_json::Value)) -> serde_json::Value {
    let mut c = json!({
        "iss": server.url(""), "aud": AUDIENCE, "sub": "u1", "client_id": "app-1",
        "scope": "orders:read", "iat": now(), "exp": now() + 600, "jti": "j",
    });
    change(&mut c);
    c
}

fn invalid(reason: InvalidTokenReason) -> Result<String, Denial> {
    Err(Denial::InvalidToken { reason })
}

#[test]
fn jwt_access_tokens_are_validated_without_introspection() {
    let server = TestServer::start(Behaviour::default()).unwrap();
    for (name, check) in gateways(&server, "/jwks") {
        let before = server.counters();
        let outcome = |token: &str| check(token).map(|p| p.client_id().to_owned());
        let good = server.issue_jwt_access_token("app-1", "orders:read", AUDIENCE, HOUR);
        assert_eq!(outcome(&good), Ok("app-1".into()), "{name}");
        // Served from the cache afterwards.
        for _ in 0..100 {
            assert_eq!(outcome(&good), Ok("app-1".into()), "{name}");
        }
        let no_contract = server.issue_jwt_access_token("app-2", "orders:read", AUDIENCE, HOUR);
        assert_eq!(outcome(&no_contract), Err(Denial::NoContract), "{name}");
        let no_scope = server.issue_jwt_access_token("app-1", "profile", AUDIENCE, HOUR);
        assert!(
            matches!(outcome(&no_scope), Err(Denial::InsufficientScope { .. })),
            "{name}"
        );

        let sign = |header: serde_json::Value, c: serde_json::Value| server.sign_jwt(header, c);
        let at = || json!({"typ": "at+jwt"});
        let cases = [
            (
                "another API",
                sign(
                    at(),
                    claims(&server, |c| c["aud"] = json!("https://api.example/other")),
                ),
                invalid(InvalidTokenReason::WrongAudience),
            ),
            (
                "an id_token",
                sign(json!({"typ": "JWT"}), claims(&server, |_| {})),
                invalid(InvalidTokenReason::NotAnAccessToken),
            ),
            (
                "expired",
                sign(at(), claims(&server, |c| c["exp"] = json!(now() - 1))),
                invalid(InvalidTokenReason::Expired),
            ),
            (
                "not yet valid",
                sign(at(), claims(&server, |c| c["nbf"] = json!(now() + 600))),
                invalid(InvalidTokenReason::NotYetValid),
            ),
            (
                "no client",
                sign(
                    at(),
                    claims(&server, |c| {
                        c.as_object_mut().unwrap().remove("client_id");
                    }),
                ),
                invalid(InvalidTokenReason::Malformed),
            ),
            (
                "alg none",
                format!(
                    "{}.{}.",
                    b64(&json!({"alg": "none", "typ": "at+jwt"})),
                    b64(&claims(&server, |_| {}))
                ),
                invalid(InvalidTokenReason::BadSignature),
            ),
            (
                "HS256 with the public key",
                hs256_with_public_key(&server),
                invalid(InvalidTokenReason::BadSignature),
            ),
            (
                "an embedded key",
                sign(
                    json!({"typ": "at+jwt", "jwk": {"kty": "EC"}}),
                    claims(&server, |_| {}),
                ),
                invalid(InvalidTokenReason::BadSignature),
            ),
            (
                "a tampered payload",
                tamper(&good),
                invalid(InvalidTokenReason::BadSignature),
            ),
        ];
        for (case, token, want) in cases {
            assert_eq!(outcome(&token), want, "{name}: {case}");
        }
        // None of those reached the introspection endpoint; the key set was fetched once
        // (plus once for the "unknown kid" an embedded-key or none token may trigger: none here).
        let after = server.counters();
        assert_eq!(
            after.introspection_requests, before.introspection_requests,
            "{name}"
        );
        assert_eq!(after.jwks_requests - before.jwks_requests, 1, "{name}");

        // A JWT from an issuer the gateway does not know, and an opaque token, are
        // introspected (the test server knows neither: inactive).
        let foreign = sign(
            at(),
            claims(&server, |c| c["iss"] = json!("https://other.example")),
        );
        assert_eq!(
            outcome(&foreign),
            invalid(InvalidTokenReason::Inactive),
            "{name}"
        );
        let opaque = server.issue_access_token("app-1", "orders:read", HOUR);
        assert_eq!(outcome(&opaque), Ok("app-1".into()), "{name}");
        assert_eq!(
            server.counters().introspection_requests,
            before.introspection_requests + 2
        );
    }
}

#[test]
fn key_rotation_and_a_flood_of_unknown_kids() {
    let server = TestServer::start(Behaviour::default()).unwrap();
    // 10,000 tokens naming random unknown kids, signed beforehand: only their checks must fit
    // in the 30 s rate limit, however slow the machine signs.
    let flood: Vec<String> = (0..10_000)
        .map(|i| {
            server.sign_jwt(
                json!({"typ": "at+jwt", "kid": format!("made-up-{i}")}),
                claims(&server, |c| c["jti"] = json!(i)),
            )
        })
        .collect();
    for (name, check) in gateways(&server, "/jwks") {
        let jwks = || server.counters().jwks_requests;
        let start = jwks();
        let first = server.issue_jwt_access_token("app-1", "orders:read", AUDIENCE, HOUR);
        assert!(check(&first).is_ok(), "{name}");
        assert_eq!(jwks(), start + 1);
        // The server replaces its key: the first token with the new kid is followed with one
        // fetch; later ones need none.
        server.rotate_jwt_key(false);
        let rotated = server.issue_jwt_access_token("app-1", "orders:read", AUDIENCE, HOUR);
        assert!(check(&rotated).is_ok(), "{name}");
        assert_eq!(jwks(), start + 2, "{name}");
        let again = server.issue_jwt_access_token("app-1", "orders:read profile", AUDIENCE, HOUR);
        assert!(check(&again).is_ok(), "{name}");
        assert_eq!(jwks(), start + 2, "{name}");
        // 10,000 tokens naming random unknown kids: refused, and within the 30 s rate limit
        // the key set is not fetched again (bound: 2 + T/30 s + T/10 min fetches over T).
        for token in &flood {
            assert_eq!(
                check(token).map(|p| p.client_id().to_owned()),
                invalid(InvalidTokenReason::BadSignature),
                "{name}"
            );
        }
        assert_eq!(
            jwks(),
            start + 2,
            "{name}: a flood of unknown kids fetched the key set"
        );
    }
}

#[test]
fn no_key_set_is_503_never_allowed() {
    let server = TestServer::start(Behaviour::default()).unwrap();
    for (name, check) in gateways(&server, "/no-such-jwks") {
        let token = server.issue_jwt_access_token("app-1", "orders:read", AUDIENCE, HOUR);
        let denial = check(&token).unwrap_err();
        assert_eq!(denial.status(), StatusCode::SERVICE_UNAVAILABLE, "{name}");
    }
}

#[test]
fn a_jwks_outage_ends_for_tokens_about_a_second_after_the_endpoint_is_back() {
    // Issue #26: the JWKS endpoint answers 503 once, then the keys. The first fetch failing
    // used to refuse every token (503) for the 30 s refetch interval; now the next token to
    // need the keys a second later (the first backoff) fetches again and is verified.
    let server = TestServer::start(Behaviour::default()).unwrap();
    for (name, check) in gateways(&server, "/jwks") {
        let start = server.counters().jwks_requests;
        server.fail_jwks(1);
        let token = server.issue_jwt_access_token("app-1", "orders:read", AUDIENCE, HOUR);
        let denial = check(&token).unwrap_err();
        assert_eq!(denial.status(), StatusCode::SERVICE_UNAVAILABLE, "{name}");
        // The 503 was the endpoint's last: it is back from here.
        let back = std::time::Instant::now();
        assert_eq!(server.counters().jwks_requests, start + 1, "{name}");
        let verified_after = loop {
            std::thread::sleep(Duration::from_millis(100));
            match check(&token) {
                Ok(principal) => {
                    assert_eq!(principal.client_id(), "app-1", "{name}");
                    break back.elapsed();
                }
                Err(denial) => {
                    assert_eq!(denial.status(), StatusCode::SERVICE_UNAVAILABLE, "{name}");
                    // Generous: about 1 s is expected; 30 s was the bug.
                    assert!(
                        back.elapsed() < Duration::from_secs(10),
                        "{name}: still refused {:?} after the JWKS endpoint came back",
                        back.elapsed()
                    );
                }
            }
        };
        assert!(
            verified_after < Duration::from_secs(5),
            "{name}: verified only {verified_after:?} after the endpoint came back"
        );
        // One failed fetch, one that worked: not a fetch per refused request.
        assert_eq!(server.counters().jwks_requests, start + 2, "{name}");
    }
}

#[test]
fn a_local_only_gateway_refuses_what_it_cannot_validate() {
    let server = TestServer::start(Behaviour::default()).unwrap();
    let http = oauth_ureq::HttpClient::new(
        oauth_ureq::HttpConfig::new()
            .add_root_certificates_pem(server.ca_pem().as_bytes())
            .unwrap(),
    )
    .unwrap();
    let issuer = JwtIssuer::new(
        server.url(""),
        AUDIENCE,
        http.endpoint(&server.url("/jwks")).unwrap(),
    );
    let gateway = BlockingGateway::local_builder(http)
        .jwt_issuer(issuer)
        .build(policy(), contracts());
    let good = server.issue_jwt_access_token("app-1", "orders:read", AUDIENCE, HOUR);
    assert_eq!(gateway.check(&request(&good)).unwrap().client_id(), "app-1");
    let opaque = server.issue_access_token("app-1", "orders:read", HOUR);
    assert_eq!(
        gateway.check(&request(&opaque)).unwrap_err(),
        Denial::InvalidToken {
            reason: InvalidTokenReason::WrongIssuer
        }
    );
    assert_eq!(server.counters().introspection_requests, 0);
}

fn b64(v: &serde_json::Value) -> String {
    use base64::Engine as _;
    base64::engine::general_purpose::URL_SAFE_NO_PAD.encode(v.to_string())
}

/// A token whose payload was changed after signing.
fn tamper(token: &str) -> String {
    use base64::Engine as _;
    let parts: Vec<&str> = token.split('.').collect();
    let b = base64::engine::general_purpose::URL_SAFE_NO_PAD;
    let mut claims: serde_json::Value =
        serde_json::from_slice(&b.decode(parts[1]).unwrap()).unwrap();
    claims["client_id"] = json!("app-1");
    claims["scope"] = json!("orders:read orders:admin");
    format!("{}.{}.{}", parts[0], b64(&claims), parts[2])
}

/// The algorithm-confusion attack: HS256 keyed with the public JWK's bytes.
fn hs256_with_public_key(server: &TestServer) -> String {
    use base64::Engine as _;
    let header = b64(&json!({"alg": "HS256", "typ": "at+jwt", "kid": "test-key-0"}));
    let payload = b64(&claims(server, |_| {}));
    let input = format!("{header}.{payload}");
    let key = ring::hmac::Key::new(ring::hmac::HMAC_SHA256, b"the server's public key bytes");
    let sig = ring::hmac::sign(&key, input.as_bytes());
    format!(
        "{input}.{}",
        base64::engine::general_purpose::URL_SAFE_NO_PAD.encode(sig.as_ref())
    )
}

/// The readiness probe, through both faces: ready while the key set and the introspection
/// endpoint answer; not ready, naming which, when the introspection endpoint fails or refuses
/// the gateway's credentials, or when no key set can be fetched.
#[test]
fn the_readiness_probe_names_what_does_not_answer() {
    let server = TestServer::start(Behaviour::default()).unwrap();
    let ca = server.ca_pem().as_bytes();
    let rt = tokio::runtime::Builder::new_multi_thread()
        .worker_threads(1)
        .enable_all()
        .build()
        .unwrap();
    type Probe<'a> = Box<dyn Fn() -> Result<(), oauth_gateway::ProbeError> + 'a>;
    let probes = |credentials: Client| -> Vec<(&str, Probe<'_>)> {
        let blocking = {
            let http = oauth_ureq::HttpClient::new(
                oauth_ureq::HttpConfig::new()
                    .add_root_certificates_pem(ca)
                    .unwrap()
                    .retry(oauth_core::RetryPolicy::none()),
            )
            .unwrap();
            let issuer = JwtIssuer::new(
                server.url(""),
                AUDIENCE,
                http.endpoint(&server.url("/jwks")).unwrap(),
            );
            let endpoint = http.endpoint(&server.url("/introspect")).unwrap();
            BlockingGateway::builder(http, endpoint, credentials.clone())
                .jwt_issuer(issuer)
                .build(policy(), contracts())
        };
        let asynchronous = {
            let _guard = rt.enter();
            let http = oauth_reqwest::HttpClient::new(
                oauth_reqwest::HttpConfig::new()
                    .add_root_certificates_pem(ca)
                    .unwrap()
                    .retry(oauth_core::RetryPolicy::none()),
            )
            .unwrap();
            let issuer = JwtIssuer::new(
                server.url(""),
                AUDIENCE,
                http.endpoint(&server.url("/jwks")).unwrap(),
            );
            let endpoint = http.endpoint(&server.url("/introspect")).unwrap();
            Gateway::builder(http, endpoint, credentials)
                .jwt_issuer(issuer)
                .build(policy(), contracts())
        };
        let rt = &rt;
        vec![
            ("blocking", Box::new(move || blocking.probe())),
            ("async", Box::new(move || rt.block_on(asynchronous.probe()))),
        ]
    };
    for (name, probe) in probes(credentials()) {
        let before = server.counters();
        assert!(probe().is_ok(), "{name}");
        let after = server.counters();
        assert_eq!(
            after.introspection_requests,
            before.introspection_requests + 1,
            "{name}"
        );
        assert_eq!(after.jwks_requests, before.jwks_requests + 1, "{name}");
        // The key set held is enough the second time.
        assert!(probe().is_ok(), "{name}");
        assert_eq!(
            server.counters().jwks_requests,
            after.jwks_requests,
            "{name}"
        );
        server.configure(|b| b.introspection_failure = Some(503));
        let e = probe().unwrap_err();
        assert!(
            e.what().starts_with("the introspection endpoint https://"),
            "{name}: {e}"
        );
        server.configure(|b| b.introspection_failure = None);
        assert!(probe().is_ok(), "{name}");
    }
    // Credentials the introspection endpoint refuses.
    let wrong = Client::new(
        Behaviour::default().client_id,
        ClientAuthentication::SecretBasic(ClientSecret::new("wrong")),
    );
    for (name, probe) in probes(wrong) {
        let e = probe().unwrap_err();
        assert!(
            e.what().starts_with("the introspection endpoint"),
            "{name}: {e}"
        );
        assert!(!e.to_string().contains("wrong"), "{name}: {e}");
    }
    // No key set to be had (new gateways hold none yet; a failed fetch is not retried at
    // once, so that a probe cannot hammer a failing endpoint).
    for (name, probe) in probes(credentials()) {
        server.fail_jwks(1);
        let e = probe().unwrap_err();
        assert_eq!(
            e.what(),
            format!("the key set of {}", server.url("")),
            "{name}"
        );
    }
}
