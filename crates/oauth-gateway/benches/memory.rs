//! Memory per cached decision: the heap a gateway node's cache holds per token, counted by an
//! instrumented global allocator (stats_alloc), for a typical introspection answer (active, exp,
//! client_id, scope, token_type, iss). Target: ≤ 256 bytes per entry, so that a million tokens
//! fit well under 512 MB.
//!
//! `cargo bench -p oauth-gateway --bench memory`
#![allow(clippy::unwrap_used, clippy::print_stdout)]

use std::alloc::System;
use std::sync::Arc;
use std::time::{Duration, Instant, SystemTime};

use oauth_gateway::__bench::key;
use oauth_gateway::CacheConfig;
use oauth_gateway::oauth_core::Now;
use oauth_gateway::oauth_core::http::Response;
use oauth_gateway::oauth_core::resource_server::gateway::ResultCache;
use oauth_gateway::oauth_core::resource_server::rate_limit::{Limit, Tier};
use oauth_gateway::oauth_core::{Introspection, parse_introspection_response};
use stats_alloc::{INSTRUMENTED_SYSTEM, Region, StatsAlloc};

#[global_allocator]
static GLOBAL: &StatsAlloc<System> = &INSTRUMENTED_SYSTEM;

fn answer(client: usize, subject: Option<usize>) -> Introspection {
    let sub = subject.map_or(String::new(), |s| format!(r#","sub":"user-{s:08}""#));
    let body = format!(
        r#"{{"active":true,"exp":4102444800,"client_id":"client-{client:04}","scope":"orders:read orders:write","token_type":"Bearer","iss":"https://auth.example.com/"{sub}}}"#
    );
    parse_introspection_response(&http_response(body)).unwrap()
}

fn http_response(body: String) -> Response<String> {
    Response::new(body)
}

/// Heap bytes per entry of a cache filled with `n` results made by `make`.
fn per_entry(n: usize, make: &dyn Fn(usize) -> Introspection) -> f64 {
    let config = CacheConfig::new()
        .capacity(n)
        .max_age(Duration::from_secs(3600));
    let region = Region::new(GLOBAL);
    let mut cache = ResultCache::new(config);
    let now = Now::new(SystemTime::now(), Instant::now());
    for i in 0..n {
        let token = format!("token-{i:012}");
        cache.insert(key(&token), &make(i), now, Duration::MAX);
    }
    let stats = region.change();
    let held = stats.bytes_allocated as f64 - stats.bytes_deallocated as f64;
    assert!(
        cache
            .get(&key("token-000000000007"), now.monotonic())
            .is_some()
    );
    drop(cache);
    held / n as f64
}

fn main() {
    const N: usize = 1_000_000;
    // What one parsed answer costs on its own, before the cache compacts and shares it.
    let region = Region::new(GLOBAL);
    let one: Vec<Arc<Introspection>> = (0..10_000)
        .map(|i| Arc::new(answer(i % 100, None)))
        .collect();
    let stats = region.change();
    let raw = (stats.bytes_allocated - stats.bytes_deallocated) as f64 / one.len() as f64;
    drop(one);

    let local = per_entry(N, &|i| answer(i % 100, None));
    let users = per_entry(N, &|i| answer(i % 100, Some(i % 10_000)));
    let distinct = per_entry(N, &|i| answer(i, Some(i)));
    // A node behind the fleet's Redis cache keeps what it opened from a record (the RFC 7662
    // JSON the record carries, parsed again): the same entry.
    let redis = per_entry(N, &|i| {
        let record = answer(i % 100, None).to_json();
        parse_introspection_response(&http_response(String::from_utf8(record).unwrap())).unwrap()
    });

    println!(
        "Heap held per entry, counted by an instrumented allocator (no timing): the first row \
         holds 10,000 parsed introspection answers as `Arc<Introspection>`; the others fill an \
         `ResultCache` (oauth-core's gateway machine) with {N} entries (key: the token's SHA-256) \
         of the answers described, as the gateway's cache stores them (compacted, shared).\n"
    );
    println!("| cached tokens: {N} | heap bytes per entry | for 1,000,000 tokens |");
    println!("| --- | ---: | ---: |");
    let row = |what: &str, bytes: f64| {
        println!("| {what} | {bytes:.0} | {:.0} MB |", bytes * 1e6 / 1e6);
    };
    row("one parsed answer, uncached (`Arc<Introspection>`)", raw);
    row("local cache, 100 clients (service tokens)", local);
    row("local cache, 100 clients × 10,000 users", users);
    row(
        "local cache, every token a distinct client and user (worst case)",
        distinct,
    );
    row("node behind the Redis-shared cache, 100 clients", redis);

    // SLA tiers: one active counter per (client, API), on this node.
    let counters = |clients: usize, limits: usize| {
        let all: Vec<Limit> = [(100, 60), (5000, 86_400), (10, 1)]
            .iter()
            .take(limits)
            .map(|&(n, s)| Limit::new(n, Duration::from_secs(s)).unwrap())
            .collect();
        let tier = Tier::new("silver", &all).unwrap();
        let region = Region::new(GLOBAL);
        let local = oauth_runtime::LocalCounters::new();
        let now = Instant::now();
        for i in 0..clients {
            local.check_pair(&format!("client-{i:08}"), "orders", &tier, now);
        }
        let stats = region.change();
        let held = stats.bytes_allocated as f64 - stats.bytes_deallocated as f64;
        drop(local);
        held / clients as f64
    };
    println!(
        "\nHeap held per active rate-limit counter (`LocalCounters`, one per client and API, \
         100,000 clients, a 15-character client id), counted the same way:\n"
    );
    println!("| tier | heap bytes per counter | of which the counter's state |");
    println!("| --- | ---: | ---: |");
    for limits in [1, 2, 3] {
        let per = counters(100_000, limits);
        println!("| {limits} limit(s) | {per:.0} | {} |", 24 + 60 * limits);
    }
}
