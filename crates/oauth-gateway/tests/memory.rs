//! The blocking gateway's heap stays flat however many distinct tokens pass through it: after
//! the cache is full, more tokens cost no more memory (issue #26: an external test saw RSS
//! grow from 159 MB to 250 MB over 3,000 distinct tokens at cache capacity 500).
//!
//! Heap is counted by an instrumented global allocator (stats_alloc: live bytes = allocated −
//! freed, for the whole process), so the check counts bytes, not time. This file is a test
//! binary of its own because the allocator is process-wide; its one test runs its phases one
//! after the other so that nothing else allocates meanwhile.
//!
//! CI runs 20,000 tokens per phase. The measurement reported in issue #26 is the same test
//! with a million (release build, a few minutes):
//!
//! ```text
//! OAUTH_GATEWAY_MEMORY_TOKENS=1000000 cargo test --release -p oauth-gateway --test memory -- --nocapture
//! ```
#![allow(
    clippy::unwrap_used,
    clippy::expect_used,
    clippy::panic,
    clippy::print_stdout,
    clippy::print_stderr
)]

use std::alloc::System;
use std::io::{BufRead, BufReader, Read, Write};
use std::net::{TcpListener, TcpStream};
use std::sync::Arc;
use std::time::Duration;

use oauth_core::http::{Request, header};
use oauth_core::{Client, ClientAuthentication, ClientSecret};
use oauth_gateway::{
    ApiPolicy, BlockingGateway, CacheConfig, Contract, JwtIssuer, MemoryContracts,
};
use oauth_test_server::{Behaviour, TestServer};
use stats_alloc::{INSTRUMENTED_SYSTEM, StatsAlloc};

#[global_allocator]
static GLOBAL: &StatsAlloc<System> = &INSTRUMENTED_SYSTEM;

const AUDIENCE: &str = "https://api.example/orders";

/// The cache capacity of the report.
const CAPACITY: usize = 500;
/// Tokens before the first reading: the cache, its queue, the shared descriptions, the
/// connection pool and every lazily built table are at their working size by then.
const WARM_UP: usize = 5_000;
/// Threads calling the gateway at once (the single-flight map and the pool see concurrency);
/// `OAUTH_GATEWAY_MEMORY_THREADS` changes it for a measurement.
fn threads() -> usize {
    std::env::var("OAUTH_GATEWAY_MEMORY_THREADS")
        .ok()
        .and_then(|v| v.parse().ok())
        .unwrap_or(4)
        .max(1)
}
/// What the cache may legitimately hold per entry (about 240 bytes measured by the memory
/// benchmark; the worst case, every token another client and subject, is a little more).
const PER_ENTRY: usize = 1024;
/// Slack for what is not per entry (a hash table's growth step, buffers in flight).
const CONSTANT: usize = 512 * 1024;

fn live_heap() -> usize {
    let s = GLOBAL.stats();
    s.bytes_allocated.saturating_sub(s.bytes_deallocated)
}

/// Resident set size, for the report only (Linux; 0 elsewhere).
fn rss() -> usize {
    std::fs::read_to_string("/proc/self/statm")
        .ok()
        .and_then(|s| s.split_whitespace().nth(1)?.parse::<usize>().ok())
        .map_or(0, |pages| pages * 4096)
}

fn tokens_per_phase() -> usize {
    std::env::var("OAUTH_GATEWAY_MEMORY_TOKENS")
        .ok()
        .and_then(|v| v.parse().ok())
        .unwrap_or(20_000)
}

fn contracts() -> Arc<MemoryContracts> {
    let store = MemoryContracts::new();
    store.grant(Contract::new("app-1", "orders"));
    Arc::new(store)
}

fn credentials() -> Client {
    let b = Behaviour::default();
    Client::new(
        b.client_id,
        ClientAuthentication::SecretBasic(ClientSecret::new(b.client_secret)),
    )
}

fn request(token: &str) -> Request<Vec<u8>> {
    Request::get("https://api.example/orders")
        .header(header::AUTHORIZATION, format!("Bearer {token}"))
        .body(Vec::new())
        .unwrap()
}

type Outcome = Result<oauth_gateway::Principal, oauth_gateway::Denial>;

/// How a phase calls the gateway.
struct Load<'a> {
    gateway: &'a BlockingGateway,
    /// The `i`th distinct token.
    token: &'a (dyn Fn(usize) -> String + Sync),
    /// Whether a decision is the one expected.
    expect: fn(&Outcome) -> bool,
    /// A new thread for each request, as a thread-per-request server has (else
    /// [`threads()`] threads that live through the phase).
    thread_per_request: bool,
}

/// Sends tokens `from..to` through the gateway on [`threads()`] threads at a time.
fn drive(load: &Load<'_>, (from, to): (usize, usize)) {
    let threads = threads();
    let one = |i: usize| {
        let outcome = load.gateway.check(&request(&(load.token)(i)));
        assert!((load.expect)(&outcome), "token {i}: {outcome:?}");
    };
    if load.thread_per_request {
        for batch in (from..to).step_by(threads) {
            std::thread::scope(|s| {
                for i in batch..(batch + threads).min(to) {
                    s.spawn(move || one(i));
                }
            });
        }
        return;
    }
    std::thread::scope(|s| {
        for t in 0..threads {
            s.spawn(move || {
                let mut i = from + t;
                while i < to {
                    one(i);
                    i += threads;
                }
            });
        }
    });
}

/// Readings of one phase, in bytes.
struct Phase {
    name: &'static str,
    warm: usize,
    end: usize,
    peak: usize,
    rss_warm: usize,
    rss_end: usize,
}

fn measure(name: &'static str, load: &Load<'_>) -> Phase {
    let n = tokens_per_phase().max(WARM_UP + 1);
    drive(load, (0, WARM_UP));
    let (warm, rss_warm) = (live_heap(), rss());
    let mut peak = warm;
    // Ten readings along the way, so that growth shows as a trend, not only at the end.
    let step = (n - WARM_UP).div_ceil(10);
    let mut done = WARM_UP;
    while done < n {
        let next = (done + step).min(n);
        drive(load, (done, next));
        peak = peak.max(live_heap());
        done = next;
    }
    let phase = Phase {
        name,
        warm,
        end: live_heap(),
        peak,
        rss_warm,
        rss_end: rss(),
    };
    println!(
        "{name}: {n} distinct tokens, capacity {CAPACITY}: live heap after {WARM_UP} {} B, \
         after {n} {} B (change {:+} B, peak {} B); RSS {} MB -> {} MB",
        phase.warm,
        phase.end,
        phase.end as i64 - phase.warm as i64,
        phase.peak,
        phase.rss_warm / 1_000_000,
        phase.rss_end / 1_000_000,
    );
    phase
}

/// A plain-HTTP introspection endpoint on loopback that keeps no state: every token is active,
/// for client `app-1`, with a subject of its own (the cache's worst case: no two results
/// share a description).
fn stateless_introspection_server() -> String {
    let listener = TcpListener::bind("127.0.0.1:0").unwrap();
    let addr = listener.local_addr().unwrap();
    std::thread::spawn(move || {
        for stream in listener.incoming().flatten() {
            std::thread::spawn(move || serve(stream));
        }
    });
    format!("http://{addr}/introspect")
}

fn serve(stream: TcpStream) {
    let mut reader = BufReader::new(stream.try_clone().unwrap());
    let mut writer = stream;
    let mut line = String::new();
    loop {
        let mut length = 0;
        line.clear();
        if reader.read_line(&mut line).unwrap_or(0) == 0 {
            return;
        }
        loop {
            line.clear();
            if reader.read_line(&mut line).unwrap_or(0) == 0 {
                return;
            }
            let l = line.trim_end();
            if l.is_empty() {
                break;
            }
            if let Some((name, value)) = l.split_once(':')
                && name.eq_ignore_ascii_case("content-length")
            {
                length = value.trim().parse().unwrap_or(0);
            }
        }
        let mut body = vec![0; length];
        if reader.read_exact(&mut body).is_err() {
            return;
        }
        let body = String::from_utf8_lossy(&body);
        let token = body
            .split('&')
            .find_map(|p| p.strip_prefix("token="))
            .unwrap_or("");
        let answer = format!(
            r#"{{"active":true,"client_id":"app-1","scope":"orders:read","exp":4102444800,"token_type":"Bearer","iss":"https://as.example","sub":"user-{token}"}}"#
        );
        let response = format!(
            "HTTP/1.1 200 OK\r\ncontent-type: application/json\r\ncontent-length: {}\r\n\r\n{answer}",
            answer.len()
        );
        if writer.write_all(response.as_bytes()).is_err() {
            return;
        }
    }
}

fn active_for_app_1(outcome: &Outcome) -> bool {
    outcome.as_ref().is_ok_and(|p| p.client_id() == "app-1")
}

fn cache() -> CacheConfig {
    CacheConfig::new()
        .capacity(CAPACITY)
        .max_age(Duration::from_secs(3600))
        .negative_ttl(Duration::from_secs(3600))
}

#[test]
fn heap_stays_flat_over_distinct_tokens_at_capacity_500() {
    println!(
        "before any token: live heap {} B, RSS {} MB; {} threads",
        live_heap(),
        rss() / 1_000_000,
        threads()
    );
    let mut phases = Vec::new();

    // Active answers, each with its own subject, from a loopback endpoint over plain HTTP:
    // first on threads that live through the phase, then a thread per request.
    {
        let config = oauth_ureq::HttpConfig::new()
            .dangerous_allow_http_loopback()
            .timeout(Duration::from_secs(10))
            .retry(oauth_core::RetryPolicy::none());
        let http = oauth_ureq::HttpClient::new(config).unwrap();
        let endpoint = http.endpoint(&stateless_introspection_server()).unwrap();
        let gateway = BlockingGateway::builder(http, endpoint, credentials())
            .cache(cache())
            .build(ApiPolicy::new("orders"), contracts());
        for (name, tag, thread_per_request) in [
            ("active, plain HTTP", "active", false),
            ("active, plain HTTP, a thread per request", "fresh", true),
        ] {
            let token = move |i: usize| format!("{tag}-{i:09}");
            let load = Load {
                gateway: &gateway,
                token: &token,
                expect: active_for_app_1,
                thread_per_request,
            };
            phases.push(measure(name, &load));
        }
    }

    // The test authorization server over HTTPS (rustls on both ends), which answers
    // "inactive" for tokens it did not issue and keeps nothing per introspection.
    {
        let server = TestServer::start(Behaviour::default()).unwrap();
        let config = oauth_ureq::HttpConfig::new()
            .add_root_certificates_pem(server.ca_pem().as_bytes())
            .unwrap()
            .timeout(Duration::from_secs(10))
            .retry(oauth_core::RetryPolicy::none());
        let http = oauth_ureq::HttpClient::new(config).unwrap();
        let endpoint = http.endpoint(&server.url("/introspect")).unwrap();
        let gateway = BlockingGateway::builder(http, endpoint, credentials())
            .cache(cache())
            .build(ApiPolicy::new("orders"), contracts());
        let token = |i: usize| format!("unknown-{i:09}");
        let load = Load {
            gateway: &gateway,
            token: &token,
            expect: |o| {
                o.as_ref()
                    .is_err_and(|d| d.status() == oauth_core::http::StatusCode::UNAUTHORIZED)
            },
            thread_per_request: false,
        };
        phases.push(measure("inactive, HTTPS", &load));

        // JWT access tokens from the same server, validated locally with its JWK set (each
        // signed when sent, with its own `jti`: the signing is counted too, and freed).
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
            .cache(cache())
            .build(ApiPolicy::new("orders"), contracts());
        let server = &server;
        let token = move |i: usize| {
            server.sign_jwt(
                serde_json::json!({"typ": "at+jwt"}),
                serde_json::json!({
                    "iss": server.url(""), "aud": AUDIENCE, "sub": format!("user-{i}"),
                    "client_id": "app-1", "scope": "orders:read", "exp": 4102444800u64,
                    "jti": format!("jti-{i}"),
                }),
            )
        };
        let load = Load {
            gateway: &gateway,
            token: &token,
            expect: active_for_app_1,
            thread_per_request: false,
        };
        phases.push(measure("JWT, validated locally", &load));
    }

    let bound = CAPACITY * PER_ENTRY + CONSTANT;
    for p in &phases {
        assert!(
            p.end <= p.warm + bound && p.peak <= p.warm + bound,
            "{}: live heap grew from {} B after warm-up to {} B (peak {} B); bound {} B",
            p.name,
            p.warm,
            p.end,
            p.peak,
            bound
        );
    }
}
