//! Gateway decisions per second on a cache hit (one thread), and introspection calls for
//! 10,000 requests carrying 100 distinct tokens, against the loopback test server.
//!
//! `cargo bench -p oauth-gateway --bench decisions`
#![allow(
    clippy::unwrap_used,
    clippy::expect_used,
    clippy::panic,
    clippy::print_stdout
)]

use std::hint::black_box;
use std::sync::Arc;
use std::time::{Duration, Instant};

use oauth_core::http::{Request, header};
use oauth_core::{AccessToken, Client, ClientAuthentication, ClientSecret};
use oauth_gateway::{
    ApiPolicy, BlockingGateway, CacheConfig, Contract, ContractStore, Gateway, JwtIssuer,
    MemoryContracts, RedbContracts,
};
use oauth_test_server::{Behaviour, TestServer};

const ITERS: u32 = 1_000_000;
const ROUNDS: usize = 7;
const HOUR: Duration = Duration::from_secs(3600);
const AUDIENCE: &str = "https://api.example/orders";

/// A JWT access token of `len` characters (a padding claim makes up the length).
fn jwt_of_len(server: &TestServer, len: usize) -> String {
    let base = server.issue_jwt_access_token("app-7", "orders:read", AUDIENCE, HOUR);
    let now = std::time::SystemTime::now()
        .duration_since(std::time::UNIX_EPOCH)
        .unwrap()
        .as_secs();
    let claims = |pad: usize| {
        serde_json::json!({
            "iss": server.url(""), "aud": AUDIENCE, "sub": "user-1", "client_id": "app-7",
            "scope": "orders:read", "iat": now, "exp": now + 3600, "jti": "bench",
            "pad": "x".repeat(pad),
        })
    };
    let header = serde_json::json!({"typ": "at+jwt"});
    let unpadded = server.sign_jwt(header.clone(), claims(0)).len();
    let pad = (len.saturating_sub(unpadded) * 3).div_ceil(4);
    let token = server.sign_jwt(header, claims(pad));
    assert!(base.len() < token.len() + 200);
    token
}

fn credentials() -> Client {
    let b = Behaviour::default();
    Client::new(
        b.client_id,
        ClientAuthentication::SecretBasic(ClientSecret::new(b.client_secret)),
    )
}

fn policy() -> ApiPolicy {
    ApiPolicy::new("orders").require_scope(["orders:read"])
}

fn blocking(server: &TestServer, store: impl ContractStore) -> BlockingGateway {
    let config = oauth_ureq::HttpConfig::new()
        .add_root_certificates_pem(server.ca_pem().as_bytes())
        .unwrap();
    let http = oauth_ureq::HttpClient::new(config).unwrap();
    let endpoint = http.endpoint(&server.url("/introspect")).unwrap();
    let issuer = JwtIssuer::new(
        server.url(""),
        AUDIENCE,
        http.endpoint(&server.url("/jwks")).unwrap(),
    );
    BlockingGateway::builder(http, endpoint, credentials())
        .jwt_issuer(issuer)
        .build(policy(), store)
}

fn asynchronous(server: &TestServer, store: impl ContractStore) -> Gateway {
    let config = oauth_reqwest::HttpConfig::new()
        .add_root_certificates_pem(server.ca_pem().as_bytes())
        .unwrap();
    let http = oauth_reqwest::HttpClient::new(config).unwrap();
    let endpoint = http.endpoint(&server.url("/introspect")).unwrap();
    let issuer = JwtIssuer::new(
        server.url(""),
        AUDIENCE,
        http.endpoint(&server.url("/jwks")).unwrap(),
    );
    Gateway::builder(http, endpoint, credentials())
        .jwt_issuer(issuer)
        .cache(CacheConfig::default())
        .build(policy(), store)
}

fn memory() -> Arc<MemoryContracts> {
    let store = MemoryContracts::new();
    for i in 0..1000 {
        store.grant(Contract::new(format!("app-{i}"), "orders"));
    }
    Arc::new(store)
}

fn rate(f: &mut dyn FnMut()) -> f64 {
    let start = Instant::now();
    for _ in 0..ITERS {
        f();
    }
    f64::from(ITERS) / start.elapsed().as_secs_f64()
}

fn median(mut v: Vec<f64>) -> f64 {
    v.sort_by(f64::total_cmp);
    v[v.len() / 2]
}

fn main() {
    let server = TestServer::start(Behaviour::default()).unwrap();
    let redb_path = std::env::temp_dir().join(format!("gateway-bench-{}.redb", std::process::id()));
    let redb = RedbContracts::open(&redb_path).unwrap();
    redb.replace_all(&memory().export()).unwrap();
    let redb = Arc::new(redb);

    println!(
        "# Decisions per second on a cache hit, one thread ({ROUNDS} rounds x {ITERS} decisions, medians)\n"
    );
    println!(
        "Per iteration, on a cache hit (the token introspected or verified once before the \
         clock starts, so no introspection call and no signature check is timed):\n\n\
         - blocking check(request): `BlockingGateway::check(&request)`: the bearer token taken \
         from the `Authorization` header, its SHA-256, the cache lookup, `ApiPolicy::decide` \
         (expiry checked again, the client's contract looked up) → a `Principal`.\n\
         - blocking validate(token): `BlockingGateway::validate(&token)`: the same without \
         reading the request (the token given).\n\
         - redb contracts: the same as the first, the contracts loaded from a redb file (and \
         mirrored in memory).\n\
         - async check(request): the tower `Gateway::check(&request).await` on a current-thread \
         runtime, memory contracts.\n"
    );
    println!("| token | contenders | decisions/s |");
    println!("|---|---|---|");
    for (label, len, jwt) in [
        ("43 chars, introspected", 43usize, false),
        ("900 chars, introspected", 900, false),
        ("JWT, validated locally", 900, true),
    ] {
        server.configure(|b| b.token_len = len);
        let token = if jwt {
            jwt_of_len(&server, len)
        } else {
            server.issue_access_token("app-7", "orders:read", HOUR)
        };
        let label = format!("{label} ({} chars)", token.len());
        let request = Request::get("https://api.example/orders")
            .header(header::AUTHORIZATION, format!("Bearer {token}"))
            .body(Vec::<u8>::new())
            .unwrap();
        let access = AccessToken::new(token.as_str());
        let b_mem = blocking(&server, memory());
        let b_redb = blocking(&server, Arc::clone(&redb));
        let a_mem = asynchronous(&server, memory());
        let rt = tokio::runtime::Builder::new_current_thread()
            .enable_all()
            .build()
            .unwrap();
        // Warm the caches (one introspection or verification each).
        let introspections = server.counters().introspection_requests;
        b_mem.check(&request).unwrap();
        b_redb.check(&request).unwrap();
        rt.block_on(a_mem.check(&request)).unwrap();
        assert_eq!(
            server.counters().introspection_requests - introspections,
            if jwt { 0 } else { 3 },
            "{label}"
        );

        let mut results: Vec<(&str, Vec<f64>)> = vec![
            ("blocking check(request), memory contracts", vec![]),
            ("blocking validate(token), memory contracts", vec![]),
            ("blocking check(request), redb contracts", vec![]),
            ("async check(request), memory contracts", vec![]),
        ];
        for _ in 0..ROUNDS {
            results[0].1.push(rate(&mut || {
                black_box(b_mem.check(black_box(&request)).unwrap());
            }));
            results[1].1.push(rate(&mut || {
                black_box(b_mem.validate(black_box(&access)).unwrap());
            }));
            results[2].1.push(rate(&mut || {
                black_box(b_redb.check(black_box(&request)).unwrap());
            }));
            results[3].1.push(rt.block_on(async {
                let start = Instant::now();
                for _ in 0..ITERS {
                    black_box(a_mem.check(black_box(&request)).await.unwrap());
                }
                f64::from(ITERS) / start.elapsed().as_secs_f64()
            }));
        }
        for (name, r) in results {
            println!("| {label} | {name} | {:.0} |", median(r));
        }
    }

    // DPoP: a bound JWT on a cache hit, each request with its own proof (checked every time:
    // signature, htm/htu, iat, ath, jti replay, binding).
    {
        const PROOFS: usize = 5_000;
        let key = jwt_assertion::DpopKey::generate().unwrap();
        let now_s = std::time::SystemTime::now()
            .duration_since(std::time::UNIX_EPOCH)
            .unwrap()
            .as_secs();
        let token = server.sign_jwt(
            serde_json::json!({"typ": "at+jwt"}),
            serde_json::json!({
                "iss": server.url(""), "aud": AUDIENCE, "sub": "u", "client_id": "app-7",
                "scope": "orders:read", "iat": now_s, "exp": now_s + 3600, "jti": "dpop-bench",
                "cnf": {"jkt": key.jkt()},
            }),
        );
        let url = "https://api.example/orders";
        let gateway = blocking(&server, memory());
        let mut rounds = Vec::new();
        let mut plain = Vec::new();
        let bearer = server.issue_jwt_access_token("app-7", "orders:read", AUDIENCE, HOUR);
        let bearer_request = Request::get(url)
            .header(header::AUTHORIZATION, format!("Bearer {bearer}"))
            .body(Vec::<u8>::new())
            .unwrap();
        gateway.check(&bearer_request).unwrap();
        for _ in 0..ROUNDS {
            let requests: Vec<Request<Vec<u8>>> = (0..PROOFS)
                .map(|_| {
                    let proof = key
                        .sign(
                            &oauth_core::ProofContext::new(
                                "GET",
                                url,
                                std::time::SystemTime::now(),
                            )
                            .access_token(Some(&token)),
                        )
                        .unwrap();
                    Request::get(url)
                        .header(header::AUTHORIZATION, format!("DPoP {token}"))
                        .header("dpop", proof)
                        .body(Vec::<u8>::new())
                        .unwrap()
                })
                .collect();
            let start = Instant::now();
            for r in &requests {
                black_box(gateway.check(black_box(r)).unwrap());
            }
            rounds.push(PROOFS as f64 / start.elapsed().as_secs_f64());
            let start = Instant::now();
            for _ in 0..PROOFS {
                black_box(gateway.check(black_box(&bearer_request)).unwrap());
            }
            plain.push(PROOFS as f64 / start.elapsed().as_secs_f64());
        }
        let (dpop, bearer) = (median(rounds), median(plain));
        println!(
            "\n# DPoP-bound JWT on a cache hit, a fresh ES256 proof per request (blocking check, one thread, {ROUNDS} rounds x {PROOFS})\n"
        );
        println!(
            "Per iteration, blocking `check(&request)`, the token's decision cached:\n\n\
             - Bearer JWT (no proof): a request with a Bearer JWT access token.\n\
             - DPoP JWT + proof: a request with a DPoP-bound JWT and its own ES256 proof (made \
             before the clock starts): the proof checked (signature, `htm`/`htu`, `iat`, `ath`), \
             its `jti` recorded against replay, the binding to `cnf.jkt`, then the same decision.\n"
        );
        println!("| presentation | decisions/s | cost per decision |");
        println!("|---|---|---|");
        println!(
            "| Bearer JWT (no proof) | {bearer:.0} | {:.2} µs |",
            1e6 / bearer
        );
        println!("| DPoP JWT + proof | {dpop:.0} | {:.2} µs |", 1e6 / dpop);
        println!(
            "\nThe proof check is {:.0}× the rest of a decision ({:.1} of {:.1} µs).",
            (1e6 / dpop - 1e6 / bearer) / (1e6 / bearer),
            1e6 / dpop - 1e6 / bearer,
            1e6 / dpop
        );
    }

    println!("\n# Introspection calls for 10,000 requests carrying 100 distinct tokens\n");
    println!(
        "- blocking, 1 thread: `validate(&token)` 10,000 times in a row, the 100 tokens in a \
         scattered order.\n\
         - async: 10,000 tasks spawned at once on a 2-thread runtime, each `validate(&token)` \
         once; every token's first requests arrive together (the single flight).\n"
    );
    println!("| gateway | requests | distinct tokens | introspection calls | elapsed |");
    println!("|---|---|---|---|---|");
    server.configure(|b| b.token_len = 43);
    // Blocking, one thread, tokens in a scattered order.
    {
        let tokens: Vec<String> = (0..100)
            .map(|i| server.issue_access_token(&format!("app-{i}"), "orders:read", HOUR))
            .collect();
        let gateway = blocking(&server, memory());
        let before = server.counters().introspection_requests;
        let start = Instant::now();
        for i in 0..10_000 {
            let t = AccessToken::new(tokens[(i * 7919) % 100].as_str());
            gateway.validate(&t).unwrap();
        }
        let calls = server.counters().introspection_requests - before;
        println!(
            "| blocking, 1 thread | 10000 | 100 | {calls} | {:?} |",
            start.elapsed()
        );
    }
    // Async, all 10,000 requests at once on a 2-thread runtime: every token's first
    // requests arrive together, so this also measures the single flight.
    {
        let tokens: Vec<String> = (0..100)
            .map(|i| server.issue_access_token(&format!("app-{i}"), "orders:read", HOUR))
            .collect();
        let gateway = asynchronous(&server, memory());
        let rt = tokio::runtime::Builder::new_multi_thread()
            .worker_threads(2)
            .enable_all()
            .build()
            .unwrap();
        let before = server.counters().introspection_requests;
        let start = Instant::now();
        rt.block_on(async {
            let tasks: Vec<_> = (0..10_000)
                .map(|i| {
                    let g = gateway.clone();
                    let t = AccessToken::new(tokens[(i * 7919) % 100].as_str());
                    tokio::spawn(async move { g.validate(&t).await })
                })
                .collect();
            for t in tasks {
                t.await.unwrap().unwrap();
            }
        });
        let calls = server.counters().introspection_requests - before;
        println!(
            "| async, 10,000 concurrent tasks | 10000 | 100 | {calls} | {:?} |",
            start.elapsed()
        );
    }
    drop(redb);
    let _ = std::fs::remove_file(&redb_path);
}
