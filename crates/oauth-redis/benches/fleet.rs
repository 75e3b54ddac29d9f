//! The shared store's cost on a refresh and on a gateway's cache miss, for both stores, and
//! the fleet's token requests per lifetime.
//!
//! `cargo bench -p oauth-redis --bench fleet` (needs `redis-server` on PATH; it starts its
//! own on 127.0.0.1). One process, interleaved rounds:
//! - a token source refreshing through Redis (look, lease, request, sealed record, release)
//!   against the same source without a store: oauth-ureq with the blocking `RedisStore`, and
//!   oauth-reqwest with `AsyncRedisStore`;
//! - the tower gateway deciding on a token it has never seen (a miss: look, lease, look again,
//!   introspect, sealed record, release) with `AsyncRedisStore`, with `RedisStore`, and with
//!   no shared cache.
#![allow(clippy::unwrap_used, clippy::expect_used, clippy::print_stdout)]

use std::process::{Command, Stdio};
use std::time::{Duration, Instant};

use oauth_test_server::{Behaviour, TestServer};

const ROUNDS: usize = 7;
const REFRESHES: usize = 200;

fn median(mut v: Vec<f64>) -> f64 {
    v.sort_by(f64::total_cmp);
    v[v.len() / 2]
}

fn main() {
    let port = {
        let l = std::net::TcpListener::bind("127.0.0.1:0").unwrap();
        l.local_addr().unwrap().port()
    };
    let dir = std::env::temp_dir().join(format!("oauth-redis-bench-{}", std::process::id()));
    std::fs::create_dir_all(&dir).unwrap();
    let mut redis = match Command::new("redis-server")
        .args([
            "--port",
            &port.to_string(),
            "--bind",
            "127.0.0.1",
            "--save",
            "",
            "--appendonly",
            "no",
        ])
        .arg("--dir")
        .arg(&dir)
        .stdout(Stdio::null())
        .spawn()
    {
        Ok(child) => child,
        Err(e) => {
            println!("redis-server not found ({e}): skipped");
            return;
        }
    };
    std::thread::sleep(Duration::from_millis(300));
    let url = format!("redis://127.0.0.1:{port}/");
    let server = TestServer::start(Behaviour::default()).unwrap();
    let http = oauth_ureq::HttpClient::new(
        oauth_ureq::HttpConfig::new()
            .add_root_certificates_pem(server.ca_pem().as_bytes())
            .unwrap(),
    )
    .unwrap();
    let endpoint = http.endpoint(&server.url("/token")).unwrap();
    let b = Behaviour::default();
    let client = || {
        oauth_ureq::Client::new(
            b.client_id.as_str(),
            oauth_ureq::ClientAuthentication::SecretBasic(oauth_ureq::ClientSecret::new(
                b.client_secret.as_str(),
            )),
        )
    };
    let key = oauth_redis::StoreKey::new("bench", &[9; 32]).unwrap();
    let runtime = tokio::runtime::Builder::new_multi_thread()
        .worker_threads(2)
        .enable_all()
        .build()
        .unwrap();
    let async_http = {
        let _guard = runtime.enter();
        oauth_reqwest::HttpClient::new(
            oauth_reqwest::HttpConfig::new()
                .add_root_certificates_pem(server.ca_pem().as_bytes())
                .unwrap(),
        )
        .unwrap()
    };
    let async_endpoint = async_http.endpoint(&server.url("/token")).unwrap();
    let async_client = || {
        oauth_reqwest::Client::new(
            b.client_id.as_str(),
            oauth_reqwest::ClientAuthentication::SecretBasic(oauth_reqwest::ClientSecret::new(
                b.client_secret.as_str(),
            )),
        )
    };
    let per = |start: Instant, n: usize| start.elapsed().as_secs_f64() * 1e6 / n as f64;
    let (mut plain, mut shared, mut async_plain, mut async_shared) =
        (Vec::new(), Vec::new(), Vec::new(), Vec::new());
    for round in 0..ROUNDS {
        // Without a store: a source with no token asks for one (a token request).
        let start = Instant::now();
        for _ in 0..REFRESHES {
            let source = oauth_ureq::TokenSource::builder(http.clone(), endpoint.clone(), client())
                .grant(oauth_ureq::TokenRequest::client_credentials())
                .build();
            std::hint::black_box(source.token().unwrap());
        }
        plain.push(per(start, REFRESHES));
        // Through Redis: the store is read, the lease taken, the token requested, sealed,
        // stored, the lease released (a fresh slot each time: nothing to reuse).
        let store = std::sync::Arc::new(oauth_redis::RedisStore::open(&url).unwrap());
        let start = Instant::now();
        for i in 0..REFRESHES {
            let store = oauth_redis::FleetTokens::new(std::sync::Arc::clone(&store), key.clone())
                .slot(format!("bench-{round}-{i}"));
            let source = oauth_ureq::TokenSource::builder(http.clone(), endpoint.clone(), client())
                .grant(oauth_ureq::TokenRequest::client_credentials())
                .shared_store(store)
                .build();
            std::hint::black_box(source.token().unwrap());
        }
        shared.push(per(start, REFRESHES));
        // The same with oauth-reqwest, without a store and through AsyncRedisStore.
        runtime.block_on(async {
            let start = Instant::now();
            for _ in 0..REFRESHES {
                let source = oauth_reqwest::TokenSource::builder(
                    async_http.clone(),
                    async_endpoint.clone(),
                    async_client(),
                )
                .grant(oauth_reqwest::TokenRequest::client_credentials())
                .build();
                std::hint::black_box(source.token().await.unwrap());
            }
            async_plain.push(per(start, REFRESHES));
            let store = std::sync::Arc::new(oauth_redis::AsyncRedisStore::open(&url).unwrap());
            let start = Instant::now();
            for i in 0..REFRESHES {
                let store =
                    oauth_redis::FleetTokens::new(std::sync::Arc::clone(&store), key.clone())
                        .slot(format!("bench-async-{round}-{i}"));
                let source = oauth_reqwest::TokenSource::builder(
                    async_http.clone(),
                    async_endpoint.clone(),
                    async_client(),
                )
                .grant(oauth_reqwest::TokenRequest::client_credentials())
                .shared_store(store)
                .build();
                std::hint::black_box(source.token().await.unwrap());
            }
            async_shared.push(per(start, REFRESHES));
        });
    }
    let (p, s) = (median(plain), median(shared));
    let (ap, a) = (median(async_plain), median(async_shared));
    println!(
        "# A refresh with and without the shared store ({ROUNDS} rounds x {REFRESHES} refreshes, loopback HTTPS + loopback Redis, medians)\n"
    );
    println!("Per iteration:\n");
    println!(
        "- in-process only: a new `TokenSource` (client_credentials, Basic; oauth-ureq, or oauth-reqwest awaited on a 2-thread runtime) and its first `token()`: one token request over the kept-alive loopback HTTPS connection."
    );
    println!(
        "- shared through Redis: the same, with `shared_store` on a fresh slot of one store opened before the round (`RedisStore` for oauth-ureq, `AsyncRedisStore` for oauth-reqwest): the store read (empty), the lease taken, the same token request, the record sealed (AES-256-GCM) and stored, the lease released.\n"
    );
    println!("| token source | per refresh | added by the store |");
    println!("|---|---|---|");
    println!("| oauth-ureq, in-process only | {p:.0} µs | |");
    println!(
        "| oauth-ureq, shared through `RedisStore` (one connection, reused) | {s:.0} µs | {:.0} µs ({:.2}×) |",
        s - p,
        s / p
    );
    println!("| oauth-reqwest, in-process only | {ap:.0} µs | |");
    println!(
        "| oauth-reqwest, shared through `AsyncRedisStore` (one connection manager, reused) | {a:.0} µs | {:.0} µs ({:.2}×) |",
        a - ap,
        a / ap
    );
    gateway_misses(&runtime, &server, &async_http, &url);
    println!(
        "\nToken requests per fleet per token lifetime: 1 (crates/oauth-redis/tests/fleet.rs: 8 processes × 200 callers, counted at the server). The cached `token()` path does not touch the store (section 3)."
    );
    let _ = redis.kill();
    let _ = redis.wait();
    let _ = std::fs::remove_dir_all(&dir);
}

/// The tower gateway's miss path: a token it has never seen, decided with each shared cache.
fn gateway_misses(
    runtime: &tokio::runtime::Runtime,
    server: &TestServer,
    http: &oauth_reqwest::HttpClient,
    url: &str,
) {
    use oauth_gateway::{ApiPolicy, Contract, Gateway, MemoryContracts};
    use std::sync::Arc;

    const TOKENS: usize = 200;
    let b = Behaviour::default();
    let contracts = Arc::new(MemoryContracts::new());
    contracts.grant(Contract::new("app-1", "orders"));
    let gateway = |store: Option<Arc<dyn oauth_redis::TokenStore>>| {
        let client = oauth_reqwest::Client::new(
            b.client_id.as_str(),
            oauth_reqwest::ClientAuthentication::SecretBasic(oauth_reqwest::ClientSecret::new(
                b.client_secret.as_str(),
            )),
        );
        let mut builder = Gateway::builder(
            http.clone(),
            http.endpoint(&server.url("/introspect")).unwrap(),
            client,
        );
        if let Some(store) = store {
            builder = builder.shared_cache(store, &[5; 32], Duration::from_secs(2));
        }
        builder.build(ApiPolicy::new("orders"), Arc::clone(&contracts))
    };
    let (mut none, mut blocking, mut asynchronous) = (Vec::new(), Vec::new(), Vec::new());
    for _ in 0..ROUNDS {
        for (times, store) in [
            (&mut none, None),
            (
                &mut blocking,
                Some(Arc::new(oauth_redis::RedisStore::open(url).unwrap())
                    as Arc<dyn oauth_redis::TokenStore>),
            ),
            (
                &mut asynchronous,
                Some(Arc::new(oauth_redis::AsyncRedisStore::open(url).unwrap())
                    as Arc<dyn oauth_redis::TokenStore>),
            ),
        ] {
            let gateway = gateway(store);
            let tokens: Vec<String> = (0..TOKENS)
                .map(|_| server.issue_access_token("app-1", "read", Duration::from_secs(600)))
                .collect();
            let start = Instant::now();
            runtime.block_on(async {
                for token in &tokens {
                    let request = oauth_core::http::Request::get("https://api.example/orders")
                        .header("authorization", format!("Bearer {token}"))
                        .body(Vec::<u8>::new())
                        .unwrap();
                    std::hint::black_box(gateway.check(&request).await.unwrap());
                }
            });
            times.push(start.elapsed().as_secs_f64() * 1e6 / TOKENS as f64);
        }
    }
    let (n, bl, a) = (median(none), median(blocking), median(asynchronous));
    println!(
        "\n# The tower gateway's miss path ({ROUNDS} rounds x {TOKENS} new tokens, loopback HTTPS introspection + loopback Redis, medians)\n"
    );
    println!(
        "Per iteration: the tower gateway's `check` of a request bearing a token it has never seen (issued beforehand): no shared cache → one introspection call over loopback HTTPS, the result cached; with a store → look (miss), lease (`SET NX PX`), look again, the same introspection call, the record sealed and stored, the lease released. Each store opened once per round.\n"
    );
    println!("| shared cache | per miss | added by the store |");
    println!("|---|---|---|");
    println!("| none (this node only) | {n:.0} µs | |");
    println!(
        "| `AsyncRedisStore` (awaited on the request's task) | {a:.0} µs | {:.0} µs |",
        a - n
    );
    println!(
        "| `RedisStore` (blocks the worker while Redis answers) | {bl:.0} µs | {:.0} µs |",
        bl - n
    );
}
