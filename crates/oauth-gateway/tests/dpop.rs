//! DPoP-bound tokens at the gateway (RFC 9449 §7): JWT access tokens from the loopback test
//! server carrying `cnf.jkt`, presented with proofs made by jwt-assertion's `DpopKey`; every
//! refusal with its RFC 9449 answer. Both the async (tower) and the blocking gateway.
#![allow(clippy::unwrap_used, clippy::expect_used, clippy::panic)]

mod support;

use std::sync::Arc;
use std::time::{Duration, SystemTime};

use base64::Engine as _;
use jwt_assertion::DpopKey;
use oauth_core::http::{Request, header};
use oauth_core::{InvalidTokenReason, ProofContext};
use oauth_gateway::{
    ApiPolicy, BlockingGateway, Contract, Denial, Gateway, JwtIssuer, MemoryContracts, Principal,
};
use oauth_test_server::{Behaviour, TestServer};
use serde_json::json;

const AUDIENCE: &str = "https://api.example/orders";
const URL: &str = "https://api.example/orders";

type Check = Box<dyn Fn(&Request<Vec<u8>>) -> Result<Principal, Denial>>;
type Challenge = Box<dyn Fn(&Denial) -> String>;

fn gateways(server: &TestServer) -> Vec<(&'static str, Check, Challenge)> {
    let contracts = Arc::new(MemoryContracts::new());
    contracts.grant(Contract::new("app-1", "orders"));
    let policy = || ApiPolicy::new("orders").require_scope(["orders:read"]);
    let ca = server.ca_pem().as_bytes();
    let blocking = {
        let http = oauth_ureq::HttpClient::new(
            oauth_ureq::HttpConfig::new()
                .add_root_certificates_pem(ca)
                .unwrap(),
        )
        .unwrap();
        let issuer = JwtIssuer::new(
            server.url(""),
            AUDIENCE,
            http.endpoint(&server.url("/jwks")).unwrap(),
        );
        Arc::new(
            BlockingGateway::local_builder(http)
                .jwt_issuer(issuer)
                .build(policy(), Arc::clone(&contracts)),
        )
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
                .unwrap(),
        )
        .unwrap();
        let issuer = JwtIssuer::new(
            server.url(""),
            AUDIENCE,
            http.endpoint(&server.url("/jwks")).unwrap(),
        );
        Gateway::local_builder(http)
            .jwt_issuer(issuer)
            .build(policy(), Arc::clone(&contracts))
    };
    let b2 = Arc::clone(&blocking);
    let a2 = asynchronous.clone();
    vec![
        (
            "blocking",
            Box::new(move |r: &Request<Vec<u8>>| blocking.check(r)),
            Box::new(move |d: &Denial| challenge(&b2.deny_response(d))),
        ),
        (
            "async",
            Box::new(move |r: &Request<Vec<u8>>| rt.block_on(asynchronous.check(r))),
            Box::new(move |d: &Denial| challenge(&a2.deny_response(d))),
        ),
    ]
}

fn challenge(response: &oauth_core::http::Response<Vec<u8>>) -> String {
    response
        .headers()
        .get(header::WWW_AUTHENTICATE)
        .map(|v| v.to_str().unwrap().to_owned())
        .unwrap_or_default()
}

fn bound_token(server: &TestServer, jkt: &str) -> String {
    let now = SystemTime::now()
        .duration_since(SystemTime::UNIX_EPOCH)
        .unwrap()
        .as_secs();
    server.sign_jwt(
        json!({"typ": "at+jwt"}),
        json!({
            "iss": server.url(""), "aud": AUDIENCE, "sub": "u1", "client_id": "app-1",
            "scope": "orders:read", "iat": now, "exp": now + 600, "jti": format!("t-{jkt}"),
            "cnf": {"jkt": jkt},
        }),
    )
}

fn proof(key: &DpopKey, method: &str, url: &str, token: Option<&str>, iat: SystemTime) -> String {
    key.sign(&ProofContext::new(method, url, iat).access_token(token))
        .unwrap()
}

fn request(scheme: &str, token: &str, proofs: &[&str]) -> Request<Vec<u8>> {
    let mut b = Request::get(URL).header(header::AUTHORIZATION, format!("{scheme} {token}"));
    for p in proofs {
        b = b.header("dpop", *p);
    }
    b.body(Vec::new()).unwrap()
}

#[test]
fn dpop_bound_tokens_need_a_proof_of_the_bound_key() {
    let server = TestServer::start(Behaviour::default()).unwrap();
    let key = DpopKey::generate().unwrap();
    let other = DpopKey::generate().unwrap();
    let token = bound_token(&server, key.jkt());
    let now = SystemTime::now;
    for (name, check, challenge_of) in gateways(&server) {
        let good = proof(&key, "GET", URL, Some(&token), now());
        assert_eq!(
            check(&request("DPoP", &token, &[&good])).map(|p| p.client_id().to_owned()),
            Ok("app-1".to_owned()),
            "{name}"
        );
        // The same proof again: a replay.
        let replayed = check(&request("DPoP", &token, &[&good])).unwrap_err();
        assert!(
            matches!(replayed, Denial::InvalidDpopProof { .. }),
            "{name}: {replayed:?}"
        );
        let shown = challenge_of(&replayed);
        assert!(
            shown.starts_with("DPoP ") && shown.contains(r#"error="invalid_dpop_proof""#),
            "{shown}"
        );
        assert!(shown.contains("algs="), "{shown}");

        let b64 = |v: serde_json::Value| {
            base64::engine::general_purpose::URL_SAFE_NO_PAD.encode(v.to_string())
        };
        let fresh = || proof(&key, "GET", URL, Some(&token), now());
        let swap_header = |p: &str, change: &dyn Fn(&mut serde_json::Value)| {
            let parts: Vec<&str> = p.split('.').collect();
            let mut h: serde_json::Value = serde_json::from_slice(
                &base64::engine::general_purpose::URL_SAFE_NO_PAD
                    .decode(parts[0])
                    .unwrap(),
            )
            .unwrap();
            change(&mut h);
            format!("{}.{}.{}", b64(h), parts[1], parts[2])
        };
        let hs256 = {
            let header = b64(json!({"typ": "dpop+jwt", "alg": "HS256", "jwk": key.public_jwk()}));
            let claims = b64(json!({"jti": "x", "htm": "GET", "htu": URL, "iat": 1}));
            format!("{header}.{claims}.c2ln")
        };
        let dpop_denial = |proofs: Vec<String>| {
            let refs: Vec<&str> = proofs.iter().map(String::as_str).collect();
            check(&request("DPoP", &token, &refs))
        };
        let cases: Vec<(&str, Vec<String>)> = vec![
            ("no proof", vec![]),
            ("two proofs", vec![fresh(), fresh()]),
            (
                "another method",
                vec![proof(&key, "POST", URL, Some(&token), now())],
            ),
            (
                "another URL",
                vec![proof(
                    &key,
                    "GET",
                    "https://api.example/admin",
                    Some(&token),
                    now(),
                )],
            ),
            (
                "stale iat",
                vec![proof(
                    &key,
                    "GET",
                    URL,
                    Some(&token),
                    now() - Duration::from_secs(300),
                )],
            ),
            (
                "another token's ath",
                vec![proof(&key, "GET", URL, Some("another-token"), now())],
            ),
            ("no ath", vec![proof(&key, "GET", URL, None, now())]),
            (
                "another key",
                vec![proof(&other, "GET", URL, Some(&token), now())],
            ),
            (
                "alg none",
                vec![swap_header(&fresh(), &|h| h["alg"] = json!("none"))],
            ),
            ("HS256", vec![hs256.clone()]),
            (
                "private key in jwk",
                vec![swap_header(&fresh(), &|h| h["jwk"]["d"] = json!("AAAA"))],
            ),
        ];
        for (case, proofs) in cases {
            let denial = dpop_denial(proofs).unwrap_err();
            assert!(
                matches!(denial, Denial::InvalidDpopProof { .. }),
                "{name}: {case}: {denial:?}"
            );
            assert_eq!(denial.status(), 401);
        }
        // The bound token presented as a bearer token.
        assert_eq!(
            check(&request("Bearer", &token, &[])).unwrap_err(),
            Denial::InvalidToken {
                reason: InvalidTokenReason::DpopBoundAsBearer
            },
            "{name}"
        );
        // An unbound token presented with a proof.
        let plain = server.issue_jwt_access_token(
            "app-1",
            "orders:read",
            AUDIENCE,
            Duration::from_secs(600),
        );
        let p = proof(&key, "GET", URL, Some(&plain), now());
        assert_eq!(
            check(&request("DPoP", &plain, &[&p])).unwrap_err(),
            Denial::InvalidToken {
                reason: InvalidTokenReason::NotDpopBound
            },
            "{name}"
        );
        // And a plain bearer token is still fine.
        assert!(check(&request("Bearer", &plain, &[])).is_ok(), "{name}");
    }
}

/// Two gateways of one fleet, one async and one blocking: a proof accepted by one is a replay
/// at the other (RFC 9449 §11.1), whichever face, while a fresh proof is accepted anywhere.
#[test]
fn a_fleet_remembers_dpop_proofs_together() {
    let server = TestServer::start(Behaviour::default()).unwrap();
    let key = DpopKey::generate().unwrap();
    let token = bound_token(&server, key.jkt());
    let rt = tokio::runtime::Builder::new_multi_thread()
        .worker_threads(2)
        .enable_all()
        .build()
        .unwrap();
    let _guard = rt.enter();
    let contracts = Arc::new(MemoryContracts::new());
    contracts.grant(Contract::new("app-1", "orders"));
    let store = Arc::new(support::MemoryFleet::default());
    let node = || {
        let http = oauth_reqwest::HttpClient::new(
            oauth_reqwest::HttpConfig::new()
                .add_root_certificates_pem(server.ca_pem().as_bytes())
                .unwrap(),
        )
        .unwrap();
        let issuer = JwtIssuer::new(
            server.url(""),
            AUDIENCE,
            http.endpoint(&server.url("/jwks")).unwrap(),
        );
        Gateway::local_builder(http)
            .jwt_issuer(issuer)
            .shared_cache(Arc::clone(&store), &[9; 32], Duration::from_secs(1))
            .build(
                ApiPolicy::new("orders").require_scope(["orders:read"]),
                Arc::clone(&contracts),
            )
    };
    let blocking_node = || {
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
        BlockingGateway::local_builder(http)
            .jwt_issuer(issuer)
            .shared_cache(Arc::clone(&store), &[9; 32], Duration::from_secs(1))
            .build(
                ApiPolicy::new("orders").require_scope(["orders:read"]),
                Arc::clone(&contracts),
            )
    };
    let (a, b) = (node(), blocking_node());
    let good = proof(&key, "GET", URL, Some(&token), SystemTime::now());
    assert!(
        rt.block_on(a.check(&request("DPoP", &token, &[&good])))
            .is_ok()
    );
    let replayed = b.check(&request("DPoP", &token, &[&good])).unwrap_err();
    assert!(
        matches!(replayed, Denial::InvalidDpopProof { reason } if reason.contains("used before")),
        "{replayed:?}"
    );
    // And the other way round.
    let fresh = proof(&key, "GET", URL, Some(&token), SystemTime::now());
    assert!(b.check(&request("DPoP", &token, &[&fresh])).is_ok());
    let replayed = rt
        .block_on(a.check(&request("DPoP", &token, &[&fresh])))
        .unwrap_err();
    assert!(
        matches!(replayed, Denial::InvalidDpopProof { .. }),
        "{replayed:?}"
    );
}

#[test]
fn dpop_can_be_required_or_turned_off() {
    use oauth_gateway::{DpopPolicy, DpopRequirement};
    let server = TestServer::start(Behaviour::default()).unwrap();
    let key = DpopKey::generate().unwrap();
    let bound = bound_token(&server, key.jkt());
    let unbound =
        server.issue_jwt_access_token("app-1", "orders:read", AUDIENCE, Duration::from_secs(600));
    let contracts = Arc::new(MemoryContracts::new());
    contracts.grant(Contract::new("app-1", "orders"));
    let rt = tokio::runtime::Builder::new_current_thread()
        .enable_all()
        .build()
        .unwrap();
    let _guard = rt.enter();
    let gateway = |requirement| {
        let http = oauth_reqwest::HttpClient::new(
            oauth_reqwest::HttpConfig::new()
                .add_root_certificates_pem(server.ca_pem().as_bytes())
                .unwrap(),
        )
        .unwrap();
        let issuer = JwtIssuer::new(
            server.url(""),
            AUDIENCE,
            http.endpoint(&server.url("/jwks")).unwrap(),
        );
        Gateway::local_builder(http)
            .jwt_issuer(issuer)
            .dpop(DpopPolicy::new().requirement(requirement))
            .build(ApiPolicy::new("orders"), Arc::clone(&contracts))
    };
    let required = gateway(DpopRequirement::Required);
    let jwks = server.counters().jwks_requests;
    // A bearer presentation is refused before anything is fetched, by `check` and `validate`.
    let denial = rt
        .block_on(required.check(&request("Bearer", &unbound, &[])))
        .unwrap_err();
    assert!(
        matches!(denial, Denial::InvalidDpopProof { .. }),
        "{denial:?}"
    );
    assert!(challenge(&required.deny_response(&denial)).starts_with("DPoP "));
    let token = oauth_core::AccessToken::new(unbound.clone());
    assert!(rt.block_on(required.validate(&token)).is_err());
    assert_eq!(server.counters().jwks_requests, jwks);
    let good = proof(&key, "GET", URL, Some(&bound), SystemTime::now());
    assert!(
        rt.block_on(required.check(&request("DPoP", &bound, &[&good])))
            .is_ok()
    );

    let off = gateway(DpopRequirement::Off);
    let good = proof(&key, "GET", URL, Some(&bound), SystemTime::now());
    let denial = rt
        .block_on(off.check(&request("DPoP", &bound, &[&good])))
        .unwrap_err();
    assert_eq!(denial.status(), 400, "{denial:?}");
    assert!(
        rt.block_on(off.check(&request("Bearer", &unbound, &[])))
            .is_ok()
    );
}
