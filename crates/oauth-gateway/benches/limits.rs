//! What an SLA tier costs a decision: a cache-hit decision through the blocking gateway for a
//! client whose contract has no tier, then one whose contract has a tier (never reached, so
//! every request is counted and allowed), in interleaved rounds on one thread; and the core's
//! counter alone. Memory per active counter is in `benches/memory.rs`; Redis's round trip in
//! oauth-redis's `benches/limit.rs`.
//!
//! `cargo bench -p oauth-gateway --bench limits`
#![allow(
    clippy::unwrap_used,
    clippy::expect_used,
    clippy::panic,
    clippy::print_stdout
)]

use std::hint::black_box;
use std::sync::Arc;
use std::time::{Duration, Instant};

use oauth_core::resource_server::rate_limit::{Counter, Limit, Tier};
use oauth_core::{AccessToken, Client, ClientAuthentication, ClientSecret};
use oauth_gateway::{ApiPolicy, BlockingGateway, Contract, MemoryContracts};
use oauth_test_server::{Behaviour, TestServer};

const ITERS: u32 = 500_000;
const ROUNDS: usize = 7;
const HOUR: Duration = Duration::from_secs(3600);

fn median(mut v: Vec<f64>) -> f64 {
    v.sort_by(f64::total_cmp);
    v[v.len() / 2]
}

/// Nanoseconds per call of `f`.
fn ns(f: &mut dyn FnMut()) -> f64 {
    let start = Instant::now();
    for _ in 0..ITERS {
        f();
    }
    start.elapsed().as_nanos() as f64 / f64::from(ITERS)
}

fn main() {
    let server = TestServer::start(Behaviour::default()).unwrap();
    let tier = Tier::new(
        "platinum",
        &[Limit::new(u32::MAX, Duration::from_secs(60)).unwrap()],
    )
    .unwrap();
    let contracts = MemoryContracts::new();
    contracts.grant(Contract::new("app-free", "orders"));
    contracts.grant(Contract::new("app-tier", "orders").tier(tier.clone()));
    let http = oauth_ureq::HttpClient::new(
        oauth_ureq::HttpConfig::new()
            .add_root_certificates_pem(server.ca_pem().as_bytes())
            .unwrap(),
    )
    .unwrap();
    let endpoint = http.endpoint(&server.url("/introspect")).unwrap();
    let b = Behaviour::default();
    let gateway = BlockingGateway::builder(
        http,
        endpoint,
        Client::new(
            b.client_id,
            ClientAuthentication::SecretBasic(ClientSecret::new(b.client_secret)),
        ),
    )
    .build(ApiPolicy::new("orders"), Arc::new(contracts));
    let free = AccessToken::new(server.issue_access_token("app-free", "orders:read", HOUR));
    let tiered = AccessToken::new(server.issue_access_token("app-tier", "orders:read", HOUR));
    // Cached, and the tiered one counted once.
    gateway.validate(&free).unwrap();
    assert!(gateway.validate(&tiered).unwrap().quota().is_some());

    let (mut without, mut with, mut counter_ns) = (Vec::new(), Vec::new(), Vec::new());
    let mut counter = Counter::new();
    let mut now_ms = 0u64;
    for _ in 0..ROUNDS {
        without.push(ns(&mut || {
            black_box(gateway.validate(black_box(&free)).unwrap());
        }));
        with.push(ns(&mut || {
            black_box(gateway.validate(black_box(&tiered)).unwrap());
        }));
        counter_ns.push(ns(&mut || {
            now_ms += 1;
            black_box(counter.check(black_box(&tier), now_ms));
        }));
    }
    let (without, with, alone) = (median(without), median(with), median(counter_ns));
    println!(
        "# An SLA tier on the decision path (cache hit, blocking gateway, one thread; \
         {ROUNDS} interleaved rounds x {ITERS}, medians)\n"
    );
    println!("| decision | ns per decision |");
    println!("|---|---|");
    println!("| contract without a tier | {without:.0} |");
    println!("| contract with a tier (counted locally, allowed) | {with:.0} |");
    println!(
        "| added by the tier | {:.0} ({:.2}x the decision without) |",
        with - without,
        with / without
    );
    println!("| oauth-core's `Counter::check` alone (one limit) | {alone:.0} |");
}
