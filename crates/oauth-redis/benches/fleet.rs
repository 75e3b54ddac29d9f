//! The shared store's cost on a refresh, and the fleet's token requests per lifetime.
//!
//! `cargo bench -p oauth-redis --bench fleet` (needs `redis-server` on PATH; it starts its
//! own on 127.0.0.1). One process, interleaved rounds: a token source refreshing through
//! Redis (lease, request, sealed record, release) against the same source without a store.
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
    let mut plain = Vec::new();
    let mut shared = Vec::new();
    for round in 0..ROUNDS {
        // Without a store: a source with no token asks for one (a token request).
        let start = Instant::now();
        for _ in 0..REFRESHES {
            let source = oauth_ureq::TokenSource::builder(http.clone(), endpoint.clone(), client())
                .grant(oauth_ureq::TokenRequest::client_credentials())
                .build();
            std::hint::black_box(source.token().unwrap());
        }
        plain.push(start.elapsed().as_secs_f64() * 1e6 / REFRESHES as f64);
        // Through Redis: the store is read, the lease taken, the token requested, sealed,
        // stored, the lease released (a fresh slot each time: nothing to reuse).
        let start = Instant::now();
        for i in 0..REFRESHES {
            let store = oauth_redis::SharedStore::new(
                oauth_redis::RedisStore::open(&url).unwrap(),
                key.clone(),
            )
            .slot(format!("bench-{round}-{i}"));
            let source = oauth_ureq::TokenSource::builder(http.clone(), endpoint.clone(), client())
                .grant(oauth_ureq::TokenRequest::client_credentials())
                .shared_store(store)
                .build();
            std::hint::black_box(source.token().unwrap());
        }
        shared.push(start.elapsed().as_secs_f64() * 1e6 / REFRESHES as f64);
    }
    let (p, s) = (median(plain), median(shared));
    println!(
        "# A refresh with and without the shared store ({ROUNDS} rounds x {REFRESHES} refreshes, loopback HTTPS + loopback Redis, medians)\n"
    );
    println!("| token source | per refresh | added by the store |");
    println!("|---|---|---|");
    println!("| in-process only | {p:.0} µs | |");
    println!(
        "| shared through Redis (connecting included) | {s:.0} µs | {:.0} µs ({:.2}×) |",
        s - p,
        s / p
    );
    println!(
        "\nToken requests per fleet per token lifetime: 1 (crates/oauth-redis/tests/fleet.rs: 8 processes × 200 callers, counted at the server). The cached `token()` path does not touch the store (section 3)."
    );
    let _ = redis.kill();
    let _ = redis.wait();
    let _ = std::fs::remove_dir_all(&dir);
}
