//! The gateway policy against the loopback test authorization server's introspection
//! endpoint: every decision, caching, one call per token, failures, and contracts that survive
//! a restart. Both the async (tower) and the blocking gateway.
#![allow(clippy::unwrap_used, clippy::expect_used, clippy::panic)]

mod support;

use std::sync::Arc;
use std::time::{Duration, Instant};

use oauth_core::http::{Request, StatusCode, header};
use oauth_core::{AccessToken, Client, ClientAuthentication, ClientSecret, InvalidTokenReason};
use oauth_gateway::{
    ApiPolicy, BearerLocations, BlockingGateway, CacheConfig, Contract, ContractSet, ContractStore,
    Denial, Gateway, MemoryContracts, Principal, RedbContracts,
};
use oauth_test_server::{Behaviour, TestServer};

fn server() -> TestServer {
    TestServer::start(Behaviour::default()).unwrap()
}

fn credentials(server: &TestServer) -> Client {
    let b = Behaviour::default();
    let _ = server;
    Client::new(
        b.client_id,
        ClientAuthentication::SecretBasic(ClientSecret::new(b.client_secret)),
    )
}

fn policy() -> ApiPolicy {
    ApiPolicy::new("orders")
        .require_scope(["orders:read"])
        .realm("orders")
}

fn contracts() -> Arc<MemoryContracts> {
    let store = MemoryContracts::new();
    store.grant(Contract::new("app-1", "orders"));
    Arc::new(store)
}

fn async_gateway(
    server: &TestServer,
    store: impl ContractStore,
    cache: CacheConfig,
    timeout: Duration,
) -> Gateway {
    let config = oauth_reqwest::HttpConfig::new()
        .add_root_certificates_pem(server.ca_pem().as_bytes())
        .unwrap()
        .timeout(timeout)
        .retry(oauth_core::RetryPolicy::none());
    let http = oauth_reqwest::HttpClient::new(config).unwrap();
    let endpoint = http.endpoint(&server.url("/introspect")).unwrap();
    Gateway::builder(http, endpoint, credentials(server))
        .cache(cache)
        .locations(BearerLocations::header_only().allow_query())
        .build(policy(), store)
}

fn blocking_gateway(
    server: &TestServer,
    store: impl ContractStore,
    cache: CacheConfig,
    timeout: Duration,
) -> BlockingGateway {
    let config = oauth_ureq::HttpConfig::new()
        .add_root_certificates_pem(server.ca_pem().as_bytes())
        .unwrap()
        .timeout(timeout)
        .retry(oauth_core::RetryPolicy::none());
    let http = oauth_ureq::HttpClient::new(config).unwrap();
    let endpoint = http.endpoint(&server.url("/introspect")).unwrap();
    BlockingGateway::builder(http, endpoint, credentials(server))
        .cache(cache)
        .build(policy(), store)
}

fn request(token: Option<&str>) -> Request<Vec<u8>> {
    let mut b = Request::get("https://api.example/orders");
    if let Some(t) = token {
        b = b.header(header::AUTHORIZATION, format!("Bearer {t}"));
    }
    b.body(Vec::new()).unwrap()
}

fn runtime() -> tokio::runtime::Runtime {
    tokio::runtime::Builder::new_multi_thread()
        .worker_threads(2)
        .enable_all()
        .build()
        .unwrap()
}

const HOUR: Duration = Duration::from_secs(3600);
const TIMEOUT: Duration = Duration::from_secs(10);

type Check<'a> = &'a dyn Fn(&Request<Vec<u8>>) -> Result<Principal, Denial>;

/// Runs the same decision table through both gateways.
fn decisions(check: Check<'_>, server: &TestServer, reads_query: bool) {
    let introspections = || server.counters().introspection_requests;

    // Allow, with who is calling; the second request is served from the cache.
    let good = server.issue_access_token("app-1", "orders:read profile", HOUR);
    let principal = check(&request(Some(&good))).unwrap();
    assert_eq!(principal.client_id(), "app-1");
    assert!(principal.scope().unwrap().contains("orders:read"));
    assert_eq!(introspections(), 1);
    check(&request(Some(&good))).unwrap();
    assert_eq!(introspections(), 1);

    // No token: 401, and the endpoint is not asked.
    assert_eq!(check(&request(None)).unwrap_err(), Denial::MissingToken);
    assert_eq!(introspections(), 1);

    // An unknown token: inactive, cached briefly.
    let unknown = check(&request(Some("not-a-token"))).unwrap_err();
    assert_eq!(
        unknown,
        Denial::InvalidToken {
            reason: InvalidTokenReason::Inactive
        }
    );
    assert_eq!(introspections(), 2);
    check(&request(Some("not-a-token"))).unwrap_err();
    assert_eq!(introspections(), 2);

    // Missing scope: 403 insufficient_scope.
    let narrow = server.issue_access_token("app-1", "profile", HOUR);
    assert!(matches!(
        check(&request(Some(&narrow))),
        Err(Denial::InsufficientScope { .. })
    ));

    // No contract: 403, until the contract is granted (contracts are not cached).
    let stranger = server.issue_access_token("app-2", "orders:read", HOUR);
    assert_eq!(
        check(&request(Some(&stranger))).unwrap_err(),
        Denial::NoContract
    );
    assert_eq!(introspections(), 4);

    // Expired: a result is never reused past the token's exp; the endpoint then says
    // inactive.
    let short = server.issue_access_token("app-1", "orders:read", Duration::from_millis(1500));
    check(&request(Some(&short))).unwrap();
    let before = introspections();
    std::thread::sleep(Duration::from_millis(1600));
    assert!(matches!(
        check(&request(Some(&short))),
        Err(Denial::InvalidToken { .. })
    ));
    assert_eq!(introspections(), before + 1);

    // A 200 KB "token" is refused before the validation endpoint is asked about it.
    let before = introspections();
    let huge = "a".repeat(200 * 1024);
    assert!(matches!(
        check(&request(Some(&huge))),
        Err(Denial::InvalidToken {
            reason: InvalidTokenReason::TooLong
        })
    ));
    assert_eq!(introspections(), before);

    // Two tokens in one request: 400.
    let mut two = request(Some(&good));
    *two.uri_mut() = format!("https://api.example/orders?access_token={good}")
        .parse()
        .unwrap();
    // The async gateway here also reads the query; the blocking one the header only.
    match check(&two) {
        Err(d) if reads_query => assert_eq!(d.status(), StatusCode::BAD_REQUEST),
        Ok(p) if !reads_query => assert_eq!(p.client_id(), "app-1"),
        other => panic!("{other:?}"),
    }
}

#[test]
fn async_gateway_decisions() {
    let server = server();
    let store = contracts();
    let gateway = async_gateway(&server, Arc::clone(&store), CacheConfig::default(), TIMEOUT);
    let rt = runtime();
    decisions(&|r| rt.block_on(gateway.check(r)), &server, true);
    // The stranger gets its contract: allowed without asking the endpoint again.
    store.grant(Contract::new("app-2", "orders"));
    let stranger = server.issue_access_token("app-2", "orders:read", HOUR);
    rt.block_on(gateway.check(&request(Some(&stranger))))
        .unwrap();
}

#[test]
fn blocking_gateway_decisions() {
    let server = server();
    let gateway = blocking_gateway(&server, contracts(), CacheConfig::default(), TIMEOUT);
    decisions(&|r| gateway.check(r), &server, false);
}

#[test]
fn validation_endpoint_down_denies_with_503() {
    let server = server();
    let token = server.issue_access_token("app-1", "orders:read", HOUR);
    let rt = runtime();
    let fast = Duration::from_secs(2);
    let a = async_gateway(&server, contracts(), CacheConfig::disabled(), fast);
    let b = blocking_gateway(&server, contracts(), CacheConfig::disabled(), fast);
    let both = |expect: StatusCode| {
        for denial in [
            rt.block_on(a.check(&request(Some(&token)))).unwrap_err(),
            b.check(&request(Some(&token))).unwrap_err(),
        ] {
            assert_eq!(denial.status(), expect, "{denial:?}");
            let response = a.deny_response(&denial);
            assert_eq!(response.status(), expect);
        }
    };
    // 5xx.
    for status in [500, 502, 503] {
        server.configure(|b| b.introspection_failure = Some(status));
        both(StatusCode::SERVICE_UNAVAILABLE);
    }
    // A timeout.
    server.configure(|b| {
        b.introspection_failure = None;
        b.introspection_delay = Duration::from_secs(10);
    });
    let started = Instant::now();
    both(StatusCode::SERVICE_UNAVAILABLE);
    // Two checks of at most 2 s each, not the endpoint's 10 s.
    assert!(started.elapsed() < Duration::from_secs(8));
    // Back up: allowed again (failures are not cached).
    server.configure(|b| b.introspection_delay = Duration::ZERO);
    rt.block_on(a.check(&request(Some(&token)))).unwrap();
    b.check(&request(Some(&token))).unwrap();
    // The gateway's own credentials refused (invalid_client): 503, not the caller's fault.
    let http = oauth_ureq::HttpClient::new(
        oauth_ureq::HttpConfig::new()
            .add_root_certificates_pem(server.ca_pem().as_bytes())
            .unwrap(),
    )
    .unwrap();
    let endpoint = http.endpoint(&server.url("/introspect")).unwrap();
    let wrong = Client::new(
        "test-client",
        ClientAuthentication::SecretBasic(ClientSecret::new("wrong")),
    );
    let g = BlockingGateway::builder(http, endpoint, wrong).build(policy(), contracts());
    assert_eq!(
        g.check(&request(Some(&token))).unwrap_err().status(),
        StatusCode::SERVICE_UNAVAILABLE
    );
    // Nothing listening at all.
    let url = server.url("/introspect");
    drop(server);
    let http = oauth_ureq::HttpClient::new(oauth_ureq::HttpConfig::new()).unwrap();
    let g = BlockingGateway::builder(
        http.clone(),
        http.endpoint(&url).unwrap(),
        credentials_default(),
    )
    .build(policy(), contracts());
    assert_eq!(
        g.check(&request(Some(&token))).unwrap_err().status(),
        StatusCode::SERVICE_UNAVAILABLE
    );
}

fn credentials_default() -> Client {
    let b = Behaviour::default();
    Client::new(
        b.client_id,
        ClientAuthentication::SecretBasic(ClientSecret::new(b.client_secret)),
    )
}

#[test]
fn concurrent_requests_with_one_token_make_one_call() {
    let server = server();
    server.configure(|b| b.introspection_delay = Duration::from_millis(300));
    // Async: 200 tasks.
    let a = async_gateway(&server, contracts(), CacheConfig::default(), TIMEOUT);
    let token = server.issue_access_token("app-1", "orders:read", HOUR);
    let rt = runtime();
    let results = rt.block_on(async {
        let tasks: Vec<_> = (0..200)
            .map(|_| {
                let a = a.clone();
                let t = AccessToken::new(token.clone());
                tokio::spawn(async move { a.validate(&t).await })
            })
            .collect();
        let mut out = Vec::new();
        for t in tasks {
            out.push(t.await.unwrap());
        }
        out
    });
    assert!(results.iter().all(Result::is_ok));
    assert_eq!(server.counters().introspection_requests, 1);

    // Blocking: 50 threads, another token.
    let b = blocking_gateway(&server, contracts(), CacheConfig::default(), TIMEOUT);
    let token = server.issue_access_token("app-1", "orders:read", HOUR);
    let barrier = Arc::new(std::sync::Barrier::new(50));
    let threads: Vec<_> = (0..50)
        .map(|_| {
            let (b, t, barrier) = (
                b.clone(),
                AccessToken::new(token.clone()),
                Arc::clone(&barrier),
            );
            std::thread::spawn(move || {
                barrier.wait();
                b.validate(&t)
            })
        })
        .collect();
    for t in threads {
        t.join().unwrap().unwrap();
    }
    assert_eq!(server.counters().introspection_requests, 2);
}

/// A fleet of two gateways, one of each face, sharing one store: the token is introspected
/// once for the fleet, whichever face asks first; each node then answers from its own cache.
#[test]
fn a_fleet_of_both_faces_makes_one_introspection_call_per_token() {
    let server = server();
    let store = Arc::new(support::MemoryFleet::default());
    let rt = runtime();
    let _guard = rt.enter();
    let tokio_http = oauth_reqwest::HttpClient::new(
        oauth_reqwest::HttpConfig::new()
            .add_root_certificates_pem(server.ca_pem().as_bytes())
            .unwrap(),
    )
    .unwrap();
    let endpoint = tokio_http.endpoint(&server.url("/introspect")).unwrap();
    let a = Gateway::builder(tokio_http, endpoint, credentials(&server))
        .shared_cache(Arc::clone(&store), &[5; 32], Duration::from_secs(2))
        .build(policy(), contracts());
    let ureq_http = oauth_ureq::HttpClient::new(
        oauth_ureq::HttpConfig::new()
            .add_root_certificates_pem(server.ca_pem().as_bytes())
            .unwrap(),
    )
    .unwrap();
    let endpoint = ureq_http.endpoint(&server.url("/introspect")).unwrap();
    let b = BlockingGateway::builder(ureq_http, endpoint, credentials(&server))
        .shared_cache(Arc::clone(&store), &[5; 32], Duration::from_secs(2))
        .build(policy(), contracts());
    // The async node first, then the blocking one: one call.
    let first = server.issue_access_token("app-1", "orders:read", HOUR);
    rt.block_on(a.validate(&AccessToken::new(first.clone())))
        .unwrap();
    b.validate(&AccessToken::new(first)).unwrap();
    assert_eq!(server.counters().introspection_requests, 1);
    // The blocking node first, then the async one: one more.
    let second = server.issue_access_token("app-1", "orders:read", HOUR);
    b.validate(&AccessToken::new(second.clone())).unwrap();
    rt.block_on(a.validate(&AccessToken::new(second))).unwrap();
    assert_eq!(server.counters().introspection_requests, 2);
}

/// A request validating a token is cancelled (its client went away) while others wait for
/// its call: one of them takes over at once instead of waiting out the whole timeout.
#[test]
fn a_cancelled_validation_hands_over_to_a_waiting_request() {
    let server = server();
    server.configure(|b| b.introspection_delay = Duration::from_millis(400));
    let a = async_gateway(&server, contracts(), CacheConfig::default(), TIMEOUT);
    let token = server.issue_access_token("app-1", "orders:read", HOUR);
    let rt = runtime();
    let started = Instant::now();
    let result = rt.block_on(async {
        let leader = {
            let (a, t) = (a.clone(), AccessToken::new(token.clone()));
            tokio::spawn(async move { a.validate(&t).await })
        };
        tokio::time::sleep(Duration::from_millis(100)).await;
        let waiter = {
            let (a, t) = (a.clone(), AccessToken::new(token.clone()));
            tokio::spawn(async move { a.validate(&t).await })
        };
        tokio::time::sleep(Duration::from_millis(100)).await;
        leader.abort();
        waiter.await.unwrap()
    });
    assert!(result.is_ok(), "{result:?}");
    // The waiter called again itself, well before the 10 s it could have waited.
    assert!(
        started.elapsed() < Duration::from_secs(5),
        "{:?}",
        started.elapsed()
    );
    assert_eq!(server.counters().introspection_requests, 2);
}

/// A 503 keeps its cause (for the gateway's logs and `source()`), while the answer to the
/// caller stays generic.
#[test]
fn an_unavailable_denial_keeps_its_cause_but_answers_generically() {
    let server = server();
    server.configure(|b| b.introspection_failure = Some(500));
    let g = blocking_gateway(&server, contracts(), CacheConfig::default(), TIMEOUT);
    let token = server.issue_access_token("app-1", "orders:read", HOUR);
    let denial = g.validate(&AccessToken::new(token)).unwrap_err();
    let Denial::Unavailable { cause, .. } = &denial else {
        panic!("{denial:?}");
    };
    let cause = cause.as_ref().expect("a cause");
    assert!(cause.to_string().contains("500"), "{cause}");
    assert!(std::error::Error::source(&denial).is_some());
    let response = g.deny_response(&denial);
    assert_eq!(response.status(), StatusCode::SERVICE_UNAVAILABLE);
    let body = String::from_utf8(response.into_body()).unwrap();
    assert!(!body.contains("500"), "{body}");
}

#[test]
fn ten_thousand_requests_with_a_hundred_tokens_make_a_hundred_calls() {
    let server = server();
    let tokens: Vec<String> = (0..100)
        .map(|_| server.issue_access_token("app-1", "orders:read", HOUR))
        .collect();
    let b = blocking_gateway(&server, contracts(), CacheConfig::default(), TIMEOUT);
    for i in 0..10_000 {
        let token = &tokens[(i * 7919) % tokens.len()];
        b.validate(&AccessToken::new(token.as_str())).unwrap();
    }
    assert_eq!(server.counters().introspection_requests, 100);
}

fn temp_path(name: &str) -> std::path::PathBuf {
    let nanos = std::time::SystemTime::now()
        .duration_since(std::time::UNIX_EPOCH)
        .unwrap()
        .as_nanos();
    std::env::temp_dir().join(format!(
        "oauth-gateway-{name}-{}-{nanos}.redb",
        std::process::id()
    ))
}

#[test]
fn contracts_survive_a_restart() {
    let server = server();
    let path = temp_path("restart");
    let export = br#"{"contracts": [
        {"client_id": "app-1", "api": "orders", "scopes": ["orders:read", "orders:write"]},
        {"client_id": "app-3", "api": "billing"}
    ]}"#;
    {
        let store = RedbContracts::open(&path).unwrap();
        store
            .replace_all(&ContractSet::from_json(export).unwrap())
            .unwrap();
        store.grant(&Contract::new("app-2", "orders")).unwrap();
        assert!(store.revoke("app-3", "billing").unwrap());
    } // The process "stops": the database is closed.

    let store = RedbContracts::open(&path).unwrap();
    let exported = store.export().unwrap();
    assert_eq!(
        exported
            .iter()
            .map(|c| (c.client_id.as_str(), c.api.as_str()))
            .collect::<Vec<_>>(),
        [("app-1", "orders"), ("app-2", "orders")]
    );
    assert_eq!(
        ContractSet::from_json(&exported.to_json()).unwrap(),
        exported
    );
    let gateway = blocking_gateway(&server, store, CacheConfig::default(), TIMEOUT);
    for client in ["app-1", "app-2"] {
        let token = server.issue_access_token(client, "orders:read", HOUR);
        assert_eq!(
            gateway.check(&request(Some(&token))).unwrap().client_id(),
            client
        );
    }
    let token = server.issue_access_token("app-3", "orders:read", HOUR);
    assert_eq!(
        gateway.check(&request(Some(&token))).unwrap_err(),
        Denial::NoContract
    );
    drop(gateway);
    let _ = std::fs::remove_file(&path);
}

#[test]
fn concurrent_readers_during_a_reload() {
    let path = temp_path("readers");
    let store = Arc::new(RedbContracts::open(&path).unwrap());
    let old: ContractSet = (0..200)
        .map(|i| Contract::new(format!("old-{i}"), "orders"))
        .collect();
    let new: ContractSet = (0..200)
        .map(|i| Contract::new(format!("new-{i}"), "orders"))
        .collect();
    store.replace_all(&old).unwrap();
    let stop = Arc::new(std::sync::atomic::AtomicBool::new(false));
    // The writes start once every reader is reading, so the two overlap.
    let started = Arc::new(std::sync::Barrier::new(5));
    let readers: Vec<_> = (0..4)
        .map(|_| {
            let (store, stop) = (Arc::clone(&store), Arc::clone(&stop));
            let started = Arc::clone(&started);
            std::thread::spawn(move || {
                let mut reads = 0u64;
                let mut first = true;
                while first || !stop.load(std::sync::atomic::Ordering::Relaxed) {
                    // Readers never fail or wait on a writer's transaction.
                    let o = store.lookup("old-7", "orders");
                    let n = store.lookup("new-7", "orders");
                    assert_ne!(o, oauth_core::ContractStatus::Unavailable);
                    assert_ne!(n, oauth_core::ContractStatus::Unavailable);
                    reads += 1;
                    if first {
                        first = false;
                        started.wait();
                    }
                }
                reads
            })
        })
        .collect();
    started.wait();
    for i in 0..20 {
        store
            .replace_all(if i % 2 == 0 { &new } else { &old })
            .unwrap();
    }
    stop.store(true, std::sync::atomic::Ordering::Relaxed);
    let reads: u64 = readers.into_iter().map(|r| r.join().unwrap()).sum();
    assert!(reads > 0);
    assert_eq!(store.export().unwrap(), old);
    drop(store);
    let _ = std::fs::remove_file(&path);
}

#[test]
fn tower_layer_in_front_of_an_axum_router() {
    use axum::Router;
    use axum::body::Body;
    use axum::extract::Extension;
    use axum::routing::get;
    use tower::ServiceExt as _;

    let server = server();
    let gateway = async_gateway(&server, contracts(), CacheConfig::default(), TIMEOUT);
    let app = Router::new()
        .route(
            "/orders",
            get(|Extension(p): Extension<Principal>| async move {
                format!("orders for {}", p.client_id())
            }),
        )
        .layer(gateway.layer());
    let rt = runtime();
    let token = server.issue_access_token("app-1", "orders:read", HOUR);
    let call = |auth: Option<String>| {
        let mut b = Request::get("/orders");
        if let Some(a) = auth {
            b = b.header("authorization", a);
        }
        let response = rt
            .block_on(app.clone().oneshot(b.body(Body::empty()).unwrap()))
            .unwrap();
        let status = response.status();
        let challenge = response
            .headers()
            .get("www-authenticate")
            .map(|v| v.to_str().unwrap().to_owned());
        let body = rt
            .block_on(axum::body::to_bytes(response.into_body(), 1 << 16))
            .unwrap();
        (status, challenge, String::from_utf8(body.to_vec()).unwrap())
    };
    let (status, _, body) = call(Some(format!("Bearer {token}")));
    assert_eq!(
        (status, body.as_str()),
        (StatusCode::OK, "orders for app-1")
    );
    let (status, challenge, body) = call(None);
    assert_eq!(status, StatusCode::UNAUTHORIZED);
    assert_eq!(challenge.as_deref(), Some(r#"Bearer realm="orders""#));
    assert!(body.is_empty());
    let (status, challenge, body) = call(Some("Bearer revoked-or-unknown".into()));
    assert_eq!(status, StatusCode::UNAUTHORIZED);
    assert!(challenge.unwrap().contains(r#"error="invalid_token""#));
    assert!(body.contains("invalid_token"));
}

/// RFC 9396 end to end: tokens obtained from the test server's token endpoint by
/// client_credentials, one with `authorization_details` of type `payment_initiation`, one
/// without; both gateways (reqwest, ureq) introspect them and an API requiring the type lets
/// the first through (its details on the principal) and refuses the second with 403
/// `insufficient_scope`.
#[test]
fn both_gateways_require_the_authorization_details_type() {
    use oauth_core::authorization_details::{AuthorizationDetail, AuthorizationDetails};
    let server = server();
    let b = Behaviour::default();
    let http = oauth_ureq::HttpClient::new(
        oauth_ureq::HttpConfig::new()
            .add_root_certificates_pem(server.ca_pem().as_bytes())
            .unwrap(),
    )
    .unwrap();
    let token_endpoint = http.endpoint(&server.url("/token")).unwrap();
    let details = AuthorizationDetails::new().with(
        AuthorizationDetail::new("payment_initiation")
            .actions(["initiate"])
            .locations(["https://api.example/payments"]),
    );
    let with = http
        .request_token(
            &token_endpoint,
            &credentials(&server),
            &oauth_core::TokenRequest::client_credentials()
                .scope(["pay"])
                .authorization_details(details.clone()),
        )
        .unwrap();
    assert_eq!(with.authorization_details(), Some(&details));
    let without = http
        .request_token(
            &token_endpoint,
            &credentials(&server),
            &oauth_core::TokenRequest::client_credentials().scope(["pay"]),
        )
        .unwrap();
    assert!(without.authorization_details().is_none());
    let other_type = http
        .request_token(
            &token_endpoint,
            &credentials(&server),
            &oauth_core::TokenRequest::client_credentials()
                .scope(["pay"])
                .authorization_details(
                    AuthorizationDetails::new()
                        .with(AuthorizationDetail::new("account_information")),
                ),
        )
        .unwrap();

    let policy = || {
        ApiPolicy::new("payments")
            .require_scope(["pay"])
            .require_authorization_details_type("payment_initiation")
    };
    let store = || {
        let store = MemoryContracts::new();
        store.grant(Contract::new(b.client_id.as_str(), "payments"));
        Arc::new(store)
    };
    let rt = runtime();
    let reqwest_http = oauth_reqwest::HttpClient::new(
        oauth_reqwest::HttpConfig::new()
            .add_root_certificates_pem(server.ca_pem().as_bytes())
            .unwrap(),
    )
    .unwrap();
    let endpoint = reqwest_http.endpoint(&server.url("/introspect")).unwrap();
    let async_gw =
        Gateway::builder(reqwest_http, endpoint, credentials(&server)).build(policy(), store());
    let endpoint = http.endpoint(&server.url("/introspect")).unwrap();
    let blocking_gw =
        BlockingGateway::builder(http, endpoint, credentials(&server)).build(policy(), store());
    let checks: [(&str, Check<'_>); 2] = [
        ("reqwest", &|r| rt.block_on(async_gw.check(r))),
        ("ureq", &|r| blocking_gw.check(r)),
    ];
    for (name, check) in checks {
        let principal = check(&request(Some(with.access_token().expose_secret()))).unwrap();
        assert_eq!(principal.client_id(), b.client_id, "{name}");
        assert_eq!(
            principal.introspection().authorization_details(),
            Some(details.clone()),
            "{name}"
        );
        for refused in [&without, &other_type] {
            let denial = check(&request(Some(refused.access_token().expose_secret()))).unwrap_err();
            assert_eq!(
                denial,
                Denial::InsufficientAuthorizationDetails {
                    required: "payment_initiation".into()
                },
                "{name}"
            );
            let response = denial.to_response(None);
            assert_eq!(response.status(), StatusCode::FORBIDDEN);
            assert!(
                response.headers()[header::WWW_AUTHENTICATE]
                    .to_str()
                    .unwrap()
                    .contains(r#"error="insufficient_scope""#)
            );
        }
    }
}
