//! The deployable gateway as a fleet: three `oauth-gateway` processes in front of one upstream,
//! contracts in a real PostgreSQL, results shared through a real Redis (both the distribution's
//! packages, started here on 127.0.0.1 with data directories of their own), tokens introspected
//! at the loopback test authorization server.
#![allow(
    clippy::unwrap_used,
    clippy::expect_used,
    clippy::panic,
    clippy::print_stdout
)]

mod support;

use std::process::Command;
use std::sync::atomic::{AtomicUsize, Ordering};
use std::time::{Duration, Instant};

use oauth_test_server::services::{Postgres, Redis};
use oauth_test_server::{Behaviour, TestServer};
use support::{
    HOUR, Proxy, Upstream, assert_no_secret, config, config_with, get, get_with, scratch, secrets,
};

const CACHE_SECRET: &str = "MDEyMzQ1Njc4OWFiY2RlZjAxMjM0NTY3ODlhYmNkZWY="; // 32 bytes

fn redis_key(token: &str) -> String {
    let digest = ring::digest::digest(&ring::digest::SHA256, token.as_bytes());
    let hex: String = digest.as_ref().iter().map(|b| format!("{b:02x}")).collect();
    format!("oauth-gateway:v2:{hex}")
}

fn redis_set(redis: &Redis, key: &str, value: &[u8]) {
    let mut c = redis::Client::open(redis.url())
        .unwrap()
        .get_connection()
        .unwrap();
    redis::cmd("SET").arg(key).arg(value).exec(&mut c).unwrap();
}

#[test]
fn a_fleet_of_three_shares_one_introspection_and_follows_postgres() {
    let server = TestServer::start(Behaviour::default()).unwrap();
    let mut pg = Postgres::start().unwrap();
    let redis = Redis::start().unwrap();
    let upstream = Upstream::start();
    let dir = scratch("fleet");
    let text = config_with(
        &server,
        upstream.port,
        "admin_listen = \"127.0.0.1:0\"",
        "[contracts]\nstore = \"postgres\"\nurl_env = \"DATABASE_URL\"\nmax_staleness_secs = 2",
        "[cache.redis]\nurl_env = \"REDIS_URL\"\nsecret_env = \"CACHE_SECRET\"",
    );
    let env = secrets(&[
        ("DATABASE_URL", pg.url()),
        ("REDIS_URL", redis.url()),
        ("CACHE_SECRET", CACHE_SECRET.into()),
    ]);
    let proxies: Vec<Proxy> = (0..3).map(|_| Proxy::start(&text, &dir, &env)).collect();
    pg.psql(
        "INSERT INTO oauth_gateway_contracts VALUES ('app-1', 'orders', NULL), \
         ('app-9', 'orders', 'not\"valid')",
    )
    .unwrap();
    // The invalid row is skipped with a log line, on every node; the valid one loads.
    for proxy in &proxies {
        proxy.wait_for_log(&["contracts loaded", "contracts=1", "skipped=1"]);
        let log = proxy.log_text();
        assert!(log.contains("contract row skipped"), "{log}");
        assert!(log.contains("invalid scopes"), "{log}");
    }

    // 1,000 requests with one new token, spread over the three: one introspection call.
    let token = server.issue_access_token("app-1", "orders:read", HOUR);
    let before = server.counters().introspection_requests;
    let allowed = AtomicUsize::new(0);
    std::thread::scope(|s| {
        for t in 0..20 {
            let (proxies, token, allowed) = (&proxies, &token, &allowed);
            s.spawn(move || {
                for i in 0..50 {
                    let proxy = &proxies[(t + i) % 3];
                    let (status, _) = get(&proxy.url("/orders/1"), Some(token));
                    if status == 200 {
                        allowed.fetch_add(1, Ordering::Relaxed);
                    }
                }
            });
        }
    });
    let logs = || {
        let logs: Vec<String> = proxies.iter().map(Proxy::log_text).collect();
        logs.join("\n----\n")
    };
    assert_eq!(allowed.load(Ordering::Relaxed), 1000, "{}", logs());
    assert_eq!(
        server.counters().introspection_requests - before,
        1,
        "{}",
        logs()
    );
    assert!(upstream.seen.load(Ordering::Relaxed) >= 1000);

    // What the fleet shares in Redis is sealed: nothing readable about the token or client.
    let mut c = redis::Client::open(redis.url())
        .unwrap()
        .get_connection()
        .unwrap();
    let stored: Vec<u8> = redis::cmd("GET")
        .arg(redis_key(&token))
        .query(&mut c)
        .unwrap();
    assert!(stored.starts_with(b"OFS1") && stored.len() > 40);
    assert!(!stored.windows(5).any(|w| w == b"app-1" || w == b"order"));

    // The upstream sees who calls, never what the caller claims, and no token.
    let (status, body) = get_with(
        &proxies[0].url("/orders/2?x=1"),
        Some(&token),
        &[
            ("x-oauth-client-id", "admin"),
            ("X-OAuth-Scope", "everything"),
        ],
    );
    assert_eq!(status, 200);
    let seen: serde_json::Value = serde_json::from_str(&body).unwrap();
    assert_eq!(seen["x-oauth-client-id"], "app-1");
    assert_eq!(seen["x-oauth-scope"], "orders:read");
    assert_eq!(seen["x-oauth-api"], "orders");
    assert!(seen.get("authorization").is_none());

    // Tokens introspection calls inactive are never allowed, wherever they arrive; neither is a
    // forged "active" record planted in Redis, nor garbage.
    let forged = "never-issued-token";
    // (The record format: tag, key id, a 12-byte nonce, then AES-256-GCM ciphertext and tag.)
    let mut record = b"OFS1\x07gateway".to_vec();
    record.extend_from_slice(&[0; 12]);
    record.extend_from_slice(&[0, 0, 1, 0, 0, 0, 0, 0]);
    record.extend_from_slice(br#"{"active":true,"client_id":"app-1","scope":"orders:read"}"#);
    record.extend_from_slice(&[0; 16]);
    redis_set(&redis, &redis_key(forged), &record);
    for proxy in &proxies {
        assert_eq!(get(&proxy.url("/orders/1"), Some(forged)).0, 401);
        assert_eq!(get(&proxy.url("/orders/1"), Some("unknown")).0, 401);
    }
    let fresh = server.issue_access_token("app-1", "orders:read", HOUR);
    redis_set(&redis, &redis_key(&fresh), b"\x00garbage");
    let before = server.counters().introspection_requests;
    for proxy in &proxies {
        assert_eq!(get(&proxy.url("/orders/1"), Some(&fresh)).0, 200);
    }
    assert_eq!(server.counters().introspection_requests - before, 1);

    // The fleet's cache is up, and `/metrics` says so; then Redis goes away: each node
    // validates by itself (its local cache in front), and says so.
    let shared_cache_up = |proxy: &Proxy| {
        let (_, metrics) = get(&proxy.admin_url("/metrics"), None);
        metrics
            .lines()
            .find_map(|l| l.strip_prefix("oauth_gateway_shared_cache_up "))
            .map(str::to_owned)
    };
    assert_eq!(shared_cache_up(&proxies[1]).as_deref(), Some("1"));
    let mut redis = redis;
    redis.stop();
    assert_eq!(shared_cache_up(&proxies[1]).as_deref(), Some("0"));
    let alone = server.issue_access_token("app-1", "orders:read", HOUR);
    let before = server.counters().introspection_requests;
    for proxy in &proxies {
        for _ in 0..3 {
            assert_eq!(get(&proxy.url("/orders/1"), Some(&alone)).0, 200);
        }
    }
    assert_eq!(server.counters().introspection_requests - before, 3);
    assert!(
        proxies[0]
            .log_text()
            .contains("shared store is unavailable")
    );

    // A contract revoked in PostgreSQL: every node denies within a second.
    pg.psql("DELETE FROM oauth_gateway_contracts WHERE client_id = 'app-1'")
        .unwrap();
    // (Timed from the commit: psql has returned.)
    let revoked = Instant::now();
    for proxy in &proxies {
        while get(&proxy.url("/orders/1"), Some(&token)).0 != 403 {
            assert!(
                revoked.elapsed() < Duration::from_secs(1),
                "not denied within 1 s"
            );
            std::thread::sleep(Duration::from_millis(10));
        }
    }
    let took = revoked.elapsed();
    println!("revocation enforced by 3 nodes in {took:?}");

    // PostgreSQL stops: decisions continue from the snapshot for the configured 2 s, then 503.
    pg.psql("INSERT INTO oauth_gateway_contracts VALUES ('app-1', 'orders', NULL)")
        .unwrap();
    for proxy in &proxies {
        let deadline = Instant::now() + Duration::from_secs(1);
        while get(&proxy.url("/orders/1"), Some(&token)).0 != 200 {
            assert!(Instant::now() < deadline);
            std::thread::sleep(Duration::from_millis(10));
        }
    }
    assert_eq!(
        get(&proxies[1].admin_url("/readyz"), None),
        (200, "ready".into())
    );
    // (Timed from before the stop: the last contact was at most one heartbeat before it.)
    let down = Instant::now();
    pg.stop().unwrap();
    let stopping = down.elapsed();
    assert_eq!(
        get(&proxies[1].url("/orders/1"), Some(&token)).0,
        200,
        "stopping took {stopping:?}"
    );
    loop {
        let status = get(&proxies[1].url("/orders/1"), Some(&token)).0;
        if status == 503 {
            break;
        }
        assert_eq!(status, 200);
        assert!(down.elapsed() < Duration::from_secs(5), "never became 503");
        std::thread::sleep(Duration::from_millis(20));
    }
    let kept = down.elapsed();
    // The limit counts from the last heartbeat (every 500 ms) before the stop.
    assert!(
        kept >= Duration::from_millis(1200),
        "snapshot used only {kept:?}"
    );
    for proxy in &proxies {
        assert_eq!(get(&proxy.url("/orders/1"), Some(&token)).0, 503);
    }
    // Not ready either, and the metrics say why.
    assert_eq!(
        get(&proxies[1].admin_url("/readyz"), None),
        (503, "contracts unavailable".into())
    );
    let (_, metrics) = get(&proxies[1].admin_url("/metrics"), None);
    assert!(
        metrics
            .lines()
            .any(|l| l == "oauth_gateway_contract_store_up 0"),
        "{metrics}"
    );
    let logs: String = proxies.iter().map(Proxy::log_text).collect();
    assert_no_secret(
        &logs,
        &[&token, &fresh, &Behaviour::default().client_secret],
    );
}

#[test]
fn a_single_node_with_the_defaults_and_its_failures() {
    let server = TestServer::start(Behaviour::default()).unwrap();
    let upstream = Upstream::start();
    let dir = scratch("single");
    // The embedded defaults: contracts in a redb file, a local cache.
    let text = config(&server, upstream.port, "", "");
    let env = secrets(&[]);
    {
        // Contracts loaded into the redb file the gateway opens.
        let store = oauth_gateway::RedbContracts::open(dir.join("contracts.redb")).unwrap();
        let mut set = oauth_gateway::ContractSet::new();
        set.insert(oauth_gateway::Contract::new("app-1", "orders"));
        store.replace_all(&set).unwrap();
    }
    let proxy = Proxy::start(&text, &dir, &env);
    let token = server.issue_access_token("app-1", "orders:read", HOUR);
    assert_eq!(get(&proxy.url("/orders"), Some(&token)).0, 200);
    assert_eq!(get(&proxy.url("/orders"), None).0, 401);
    assert_eq!(get(&proxy.url("/elsewhere"), Some(&token)).0, 404);
    let narrow = server.issue_access_token("app-1", "profile", HOUR);
    assert_eq!(get(&proxy.url("/orders"), Some(&narrow)).0, 403);

    // SIGTERM with a request in flight: it is answered, then the process ends cleanly.
    let mut proxy = proxy;
    let before = upstream.seen.load(Ordering::Relaxed);
    let slow = {
        let (url, token) = (proxy.url("/orders/slow"), token.clone());
        std::thread::spawn(move || get(&url, Some(&token)))
    };
    // In flight: the upstream has it (and answers 800 ms later).
    let deadline = Instant::now() + Duration::from_secs(10);
    while upstream.seen.load(Ordering::Relaxed) == before {
        assert!(Instant::now() < deadline, "the slow request never arrived");
        std::thread::sleep(Duration::from_millis(5));
    }
    let term = Command::new("kill")
        .args(["-TERM", &proxy.child.id().to_string()])
        .status()
        .unwrap();
    assert!(term.success());
    assert_eq!(
        slow.join().unwrap().0,
        200,
        "the request in flight was answered"
    );
    let status = proxy.child.wait().unwrap();
    // (It exited: nothing listens on its port any more.)
    assert!(status.success(), "{status:?}: {}", proxy.log_text());
    drop(proxy);

    // An upstream that is down: 502, promptly.
    // Port 1 (tcpmux): privileged and outside the ephemeral range, so no parallel test's
    // listener can be given it.
    let nothing = 1;
    let text = config(&server, nothing, "", "");
    let proxy = Proxy::start(&text, &dir, &env);
    let started = Instant::now();
    assert_eq!(get(&proxy.url("/orders"), Some(&token)).0, 502);
    assert!(started.elapsed() < Duration::from_secs(3));
    drop(proxy);

    // Refused at start, with a clear message: an unknown key, an http:// endpoint.
    let refused = |text: &str| {
        let path = dir.join("bad.toml");
        std::fs::write(&path, format!("listen = \"127.0.0.1:0\"\n{text}")).unwrap();
        let out = Command::new(env!("CARGO_BIN_EXE_oauth-gateway"))
            .arg("--config")
            .arg(&path)
            .env("GATEWAY_SECRET", "x")
            .output()
            .unwrap();
        assert_eq!(out.status.code(), Some(2));
        String::from_utf8_lossy(&out.stderr).into_owned()
    };
    let err = refused(&text.replace("upstream_timeout_secs", "upstream_timeout"));
    assert!(err.contains("unknown field `upstream_timeout`"), "{err}");
    let http = text.replace("https://", "http://");
    let err = refused(&http);
    assert!(err.contains("only https:// is allowed"), "{err}");
}

/// Counts the answers of `n` requests spread over `proxies` from 20 threads: (200s, 429s), and
/// whether every 429 had a `Retry-After`.
fn burst(proxies: &[Proxy], token: &str, n: usize) -> (usize, usize, bool) {
    let (ok, limited, retry_after) = (
        AtomicUsize::new(0),
        AtomicUsize::new(0),
        std::sync::atomic::AtomicBool::new(true),
    );
    std::thread::scope(|s| {
        for t in 0..20 {
            let (ok, limited, retry_after) = (&ok, &limited, &retry_after);
            s.spawn(move || {
                for i in (t..n).step_by(20) {
                    let url = proxies[i % proxies.len()].url("/orders/1");
                    let response = support::agent()
                        .get(&url)
                        .header("authorization", &format!("Bearer {token}"))
                        .call()
                        .unwrap();
                    match response.status().as_u16() {
                        200 => ok.fetch_add(1, Ordering::SeqCst),
                        429 => {
                            if response.headers().get("retry-after").is_none() {
                                retry_after.store(false, Ordering::SeqCst);
                            }
                            limited.fetch_add(1, Ordering::SeqCst)
                        }
                        other => panic!("status {other}"),
                    };
                }
            });
        }
    });
    (
        ok.into_inner(),
        limited.into_inner(),
        retry_after.into_inner(),
    )
}

/// An SLA tier of 50 requests / 10 s enforced exactly by three gateways sharing Redis and
/// PostgreSQL; a tier changed in PostgreSQL applies everywhere within a second; Redis down,
/// each node counts a third; Redis back, exact again.
#[test]
fn a_fleet_enforces_a_tier_exactly_once() {
    let server = TestServer::start(Behaviour::default()).unwrap();
    let pg = Postgres::start().unwrap();
    let mut redis = Redis::start().unwrap();
    let upstream = Upstream::start();
    let dir = scratch("tiers");
    let text = config(
        &server,
        upstream.port,
        "[contracts]\nstore = \"postgres\"\nurl_env = \"DATABASE_URL\"\n\n\
         [limits]\nstore = \"redis\"\nurl_env = \"REDIS_URL\"\nfleet_size = 3",
        "",
    );
    let env = secrets(&[("DATABASE_URL", pg.url()), ("REDIS_URL", redis.url())]);
    let proxies: Vec<Proxy> = (0..3).map(|_| Proxy::start(&text, &dir, &env)).collect();
    pg.psql(
        "INSERT INTO oauth_gateway_contracts (client_id, api, scopes, tier_name, tier_limits) \
         VALUES ('app-1', 'orders', NULL, 'silver', '50/10')",
    )
    .unwrap();
    for proxy in &proxies {
        proxy.wait_for_log(&["contracts loaded", "contracts=1"]);
    }
    let token = server.issue_access_token("app-1", "orders:read", HOUR);
    // Warm the caches, so that the burst is counted, not introspected.
    for proxy in &proxies {
        let (status, _) = get(&proxy.url("/orders/1"), Some(&token));
        assert_eq!(status, 200);
    }
    let started = Instant::now();
    let (ok, limited, retry_after) = burst(&proxies, &token, 297);
    assert!(
        started.elapsed() < Duration::from_secs(8),
        "the burst took too long to count"
    );
    assert_eq!(
        (ok + 3, limited),
        (50, 250),
        "exactly the tier across the fleet"
    );
    assert!(retry_after, "every 429 says when to come back");
    // The quota on an allowed answer, from any node, is the fleet's.
    let denied = support::agent()
        .get(&proxies[1].url("/orders/1"))
        .header("authorization", &format!("Bearer {token}"))
        .call()
        .unwrap();
    assert_eq!(denied.status().as_u16(), 429);
    assert_eq!(
        denied.headers()["ratelimit-policy"].to_str().unwrap(),
        "\"silver-0\";q=50;w=10"
    );

    // The tier raised in PostgreSQL: every node allows again within a second.
    pg.psql("UPDATE oauth_gateway_contracts SET tier_name = 'gold', tier_limits = '500/10'")
        .unwrap();
    let changed = Instant::now();
    for proxy in &proxies {
        while get(&proxy.url("/orders/1"), Some(&token)).0 != 200 {
            assert!(
                changed.elapsed() < Duration::from_secs(1),
                "not applied within 1 s"
            );
            std::thread::sleep(Duration::from_millis(10));
        }
    }
    pg.psql("UPDATE oauth_gateway_contracts SET tier_name = 'silver', tier_limits = '30/10'")
        .unwrap();
    for proxy in &proxies {
        proxy.wait_for_log(&["contracts loaded"]);
    }
    std::thread::sleep(Duration::from_millis(300));

    // Redis down: each node counts alone, a third of the tier (30 / 3 = 10 each), and says so.
    redis.stop();
    let (ok, limited, _) = burst(&proxies, &token, 90);
    assert_eq!((ok, limited), (30, 60), "10 per node while Redis is down");
    for proxy in &proxies {
        assert!(
            proxy
                .log_text()
                .contains("the shared rate-limit counter is unavailable")
        );
    }
    // Redis back (empty): counted by the fleet again, exactly.
    redis.restart().unwrap();
    let deadline = Instant::now() + Duration::from_secs(10);
    loop {
        let (status, _) = get(&proxies[0].url("/orders/1"), Some(&token));
        if status == 200 && proxies[0].log_text().contains("counted by the fleet again") {
            break;
        }
        assert!(Instant::now() < deadline, "Redis never used again");
        std::thread::sleep(Duration::from_millis(100));
    }
    // Every node has noticed (its local share is used up, so each 200 is the fleet's), then a
    // burst: the fleet's 30 less those.
    let mut used = 1;
    for proxy in &proxies[1..] {
        loop {
            if get(&proxy.url("/orders/1"), Some(&token)).0 == 200 {
                used += 1;
            }
            if proxy.log_text().contains("counted by the fleet again") {
                break;
            }
            assert!(Instant::now() < deadline, "Redis never used again");
            std::thread::sleep(Duration::from_millis(100));
        }
    }
    let (ok, limited, _) = burst(&proxies, &token, 90);
    assert_eq!(
        ok + used,
        30,
        "exact again: {ok} + {used} allowed, {limited} refused"
    );
}
