//! SLA tiers through both gateway faces, against the loopback test authorization server: a
//! contract's tier is enforced (429 with `Retry-After` and the `RateLimit` fields), allowed
//! requests carry their quota, contracts without a tier are unlimited, and a failing fleet
//! counter falls back as configured.
#![allow(clippy::unwrap_used, clippy::expect_used, clippy::panic)]

use std::sync::Arc;
use std::time::Duration;

use oauth_core::http::{Request, StatusCode, header};
use oauth_core::resource_server::rate_limit::{Limit, Tier, Verdict};
use oauth_core::{AccessToken, Client, ClientAuthentication, ClientSecret};
use oauth_gateway::{
    ApiPolicy, BlockingGateway, Contract, Denial, Gateway, MemoryContracts, Principal,
    RateLimitFallback,
};
use oauth_runtime::{RateCounter, StoreError, StoreErrorKind, StoreFuture};
use oauth_test_server::{Behaviour, TestServer};

const HOUR: Duration = Duration::from_secs(3600);

fn tier(requests: u32) -> Tier {
    Tier::new(
        "silver",
        &[Limit::new(requests, Duration::from_secs(60)).unwrap()],
    )
    .unwrap()
}

fn contracts() -> Arc<MemoryContracts> {
    let store = MemoryContracts::new();
    store.grant(Contract::new("app-1", "orders").tier(tier(5)));
    // app-2's contract has no tier: unlimited.
    store.grant(Contract::new("app-2", "orders"));
    Arc::new(store)
}

fn credentials() -> Client {
    let b = Behaviour::default();
    Client::new(
        b.client_id,
        ClientAuthentication::SecretBasic(ClientSecret::new(b.client_secret)),
    )
}

type Check = Box<dyn Fn(&str) -> Result<Principal, Denial>>;

/// Both faces, each with its own counters (and the failing fleet counter, with `fallback`).
fn faces(server: &TestServer, fallback: Option<RateLimitFallback>) -> Vec<(&'static str, Check)> {
    let policy = || ApiPolicy::new("orders");
    let http = oauth_ureq::HttpClient::new(
        oauth_ureq::HttpConfig::new()
            .add_root_certificates_pem(server.ca_pem().as_bytes())
            .unwrap(),
    )
    .unwrap();
    let endpoint = http.endpoint(&server.url("/introspect")).unwrap();
    let mut blocking = BlockingGateway::builder(http, endpoint, credentials());
    if let Some(fallback) = fallback {
        blocking = blocking.rate_limits(Failing, fallback);
    }
    let blocking = blocking.build(policy(), contracts());
    let rt = Arc::new(
        tokio::runtime::Builder::new_multi_thread()
            .worker_threads(1)
            .enable_all()
            .build()
            .unwrap(),
    );
    let tower = {
        let _guard = rt.enter();
        let http = oauth_reqwest::HttpClient::new(
            oauth_reqwest::HttpConfig::new()
                .add_root_certificates_pem(server.ca_pem().as_bytes())
                .unwrap(),
        )
        .unwrap();
        let endpoint = http.endpoint(&server.url("/introspect")).unwrap();
        let mut builder = Gateway::builder(http, endpoint, credentials());
        if let Some(fallback) = fallback {
            builder = builder.rate_limits(Failing, fallback);
        }
        builder.build(policy(), contracts())
    };
    vec![
        (
            "blocking",
            Box::new(move |t: &str| blocking.validate(&AccessToken::new(t))),
        ),
        (
            "tower",
            Box::new(move |t: &str| rt.block_on(tower.validate(&AccessToken::new(t)))),
        ),
    ]
}

/// A fleet counter that is down.
struct Failing;

impl RateCounter for Failing {
    fn check<'a>(&'a self, _: &'a str, _: &'a Tier) -> StoreFuture<'a, Verdict> {
        Box::pin(std::future::ready(Err(StoreError::new(
            StoreErrorKind::Unavailable,
            "redis: connection refused",
        ))))
    }
}

#[test]
fn a_tier_is_enforced_with_429_and_the_ratelimit_fields() {
    let server = TestServer::start(Behaviour::default()).unwrap();
    for (face, check) in faces(&server, None) {
        let limited = server.issue_access_token("app-1", "orders:read", HOUR);
        for left in (0..5).rev() {
            let principal = check(&limited).unwrap_or_else(|d| panic!("{face}: {d:?}"));
            let quota = principal.quota().expect("a quota");
            assert_eq!(quota.policy(), "\"silver-0\";q=5;w=60", "{face}");
            assert!(
                quota
                    .state()
                    .starts_with(&format!("\"silver-0\";r={left};t=")),
                "{face}: {}",
                quota.state()
            );
        }
        for _ in 0..3 {
            let denial = check(&limited).unwrap_err();
            let Denial::RateLimited { retry_after, .. } = &denial else {
                panic!("{face}: {denial:?}");
            };
            assert!(*retry_after <= Duration::from_secs(65), "{face}");
            let response = denial.to_response(None);
            assert_eq!(response.status(), StatusCode::TOO_MANY_REQUESTS);
            let h = response.headers();
            let seconds: u64 = h[header::RETRY_AFTER].to_str().unwrap().parse().unwrap();
            assert!((1..=65).contains(&seconds), "{face}: {seconds}");
            assert_eq!(h["ratelimit-policy"], "\"silver-0\";q=5;w=60");
            assert!(h["ratelimit"].to_str().unwrap().contains(";r=0;"), "{face}");
        }
        // The tier is the client's, whatever token it presents.
        let another = server.issue_access_token("app-1", "orders:read", HOUR);
        assert!(matches!(check(&another), Err(Denial::RateLimited { .. })));
        // No tier: unlimited, and no quota.
        let free = server.issue_access_token("app-2", "orders:read", HOUR);
        for _ in 0..20 {
            assert!(check(&free).unwrap().quota().is_none(), "{face}");
        }
    }
}

#[test]
fn a_failing_fleet_counter_falls_back_as_configured() {
    let server = TestServer::start(Behaviour::default()).unwrap();
    // Local, a third each for a fleet of 3: 5 / 3 → 1 request a minute on this node.
    for (face, check) in faces(&server, Some(RateLimitFallback::Local { fleet_size: 3 })) {
        let token = server.issue_access_token("app-1", "orders:read", HOUR);
        assert!(check(&token).is_ok(), "{face}");
        assert!(
            matches!(check(&token), Err(Denial::RateLimited { .. })),
            "{face}"
        );
    }
    for (face, check) in faces(&server, Some(RateLimitFallback::Open)) {
        let token = server.issue_access_token("app-1", "orders:read", HOUR);
        for _ in 0..10 {
            assert!(check(&token).is_ok(), "{face}");
        }
    }
    for (face, check) in faces(&server, Some(RateLimitFallback::Closed)) {
        let token = server.issue_access_token("app-1", "orders:read", HOUR);
        let denial = check(&token).unwrap_err();
        assert!(
            matches!(denial, Denial::Unavailable { cause: Some(_), .. }),
            "{face}: {denial:?}"
        );
    }
}

#[test]
fn the_tower_layer_puts_the_quota_on_the_response() {
    use tower_service::Service as _;
    let server = TestServer::start(Behaviour::default()).unwrap();
    let rt = tokio::runtime::Builder::new_multi_thread()
        .worker_threads(1)
        .enable_all()
        .build()
        .unwrap();
    let _guard = rt.enter();
    let http = oauth_reqwest::HttpClient::new(
        oauth_reqwest::HttpConfig::new()
            .add_root_certificates_pem(server.ca_pem().as_bytes())
            .unwrap(),
    )
    .unwrap();
    let endpoint = http.endpoint(&server.url("/introspect")).unwrap();
    let gateway = Gateway::builder(http, endpoint, credentials())
        .build(ApiPolicy::new("orders"), contracts());
    let backend = tower::service_fn(|_: Request<Vec<u8>>| async {
        Ok::<_, std::convert::Infallible>(oauth_core::http::Response::new(b"ok".to_vec()))
    });
    let mut service = tower_layer::Layer::layer(&gateway.layer(), backend);
    let token = server.issue_access_token("app-1", "orders:read", HOUR);
    let request = || {
        Request::get("https://api.example/orders")
            .header(header::AUTHORIZATION, format!("Bearer {token}"))
            .body(Vec::new())
            .unwrap()
    };
    let first = rt.block_on(service.call(request())).unwrap();
    assert_eq!(first.status(), StatusCode::OK);
    assert!(
        first.headers()["ratelimit"]
            .to_str()
            .unwrap()
            .contains(";r=4;")
    );
    assert_eq!(first.headers()["ratelimit-policy"], "\"silver-0\";q=5;w=60");
    for _ in 0..4 {
        rt.block_on(service.call(request())).unwrap();
    }
    let refused = rt.block_on(service.call(request())).unwrap();
    assert_eq!(refused.status(), StatusCode::TOO_MANY_REQUESTS);
    assert!(refused.headers().contains_key(header::RETRY_AFTER));
}
