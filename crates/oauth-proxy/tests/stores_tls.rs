//! The gateway's stores over TLS: contracts in a PostgreSQL that has `ssl=on`, the shared cache
//! and the fleet's rate-limit counter in a Redis that serves TLS only (`rediss://`), each
//! trusted through its section's `ca_file` (a CA made for the run). With the wrong CA the
//! gateway refuses to start and says why.
#![allow(
    clippy::unwrap_used,
    clippy::expect_used,
    clippy::panic,
    clippy::print_stdout
)]

mod support;

use std::process::Command;

use oauth_redis::FleetStore as _;
use oauth_test_server::services::{Postgres, Redis};
use oauth_test_server::{Behaviour, LoopbackCertificates, TestServer};
use support::{HOUR, Proxy, Upstream, config, get, scratch, secrets};

const CACHE_SECRET: &str = "MDEyMzQ1Njc4OWFiY2RlZjAxMjM0NTY3ODlhYmNkZWY="; // 32 bytes

fn redis_key(token: &str) -> String {
    let digest = ring::digest::digest(&ring::digest::SHA256, token.as_bytes());
    let hex: String = digest.as_ref().iter().map(|b| format!("{b:02x}")).collect();
    format!("oauth-gateway:v2:{hex}")
}

#[test]
fn the_gateway_uses_postgres_and_redis_over_tls_with_ca_file() {
    let server = TestServer::start(Behaviour::default()).unwrap();
    let (pg_certs, redis_certs) = (
        LoopbackCertificates::generate().unwrap(),
        LoopbackCertificates::generate().unwrap(),
    );
    let pg = Postgres::start_tls(&pg_certs).unwrap();
    let redis = Redis::start_tls(&redis_certs).unwrap();
    let upstream = Upstream::start();
    let dir = scratch("stores-tls");
    let (pg_ca, redis_ca) = (dir.join("pg-ca.pem"), dir.join("redis-ca.pem"));
    std::fs::write(&pg_ca, &pg_certs.ca_pem).unwrap();
    std::fs::write(&redis_ca, &redis_certs.ca_pem).unwrap();
    let text = |pg_ca: &std::path::Path, redis_ca: &std::path::Path| {
        config(
            &server,
            upstream.port,
            &format!(
                "[contracts]\nstore = \"postgres\"\nurl_env = \"DATABASE_URL\"\nca_file = \"{}\"\n\n\
                 [limits]\nstore = \"redis\"\nfallback = \"closed\"",
                pg_ca.display()
            ),
            &format!(
                "[cache.redis]\nurl_env = \"REDIS_URL\"\nsecret_env = \"CACHE_SECRET\"\nca_file = \"{}\"",
                redis_ca.display()
            ),
        )
    };
    // A password in the database URL (trust authentication ignores it): it must show nowhere.
    let database_url = format!(
        "postgresql://postgres:hunter2@127.0.0.1:{}/gateway?application_name=gateway-tls",
        pg.port()
    );
    let env = secrets(&[
        ("DATABASE_URL", database_url),
        ("REDIS_URL", redis.url()),
        ("CACHE_SECRET", CACHE_SECRET.into()),
    ]);
    let proxy = Proxy::start(&text(&pg_ca, &redis_ca), &dir, &env);
    pg.psql(
        "INSERT INTO oauth_gateway_contracts (client_id, api, scopes, tier_name, tier_limits) \
         VALUES ('app-1', 'orders', NULL, 'silver', '1000/60')",
    )
    .unwrap();
    proxy.wait_for_log(&["contracts loaded", "contracts=1"]);
    let ssl = pg
        .psql(
            "SELECT bool_and(s.ssl) FROM pg_stat_ssl s JOIN pg_stat_activity a USING (pid) \
             WHERE a.application_name = 'gateway-tls'",
        )
        .unwrap();
    assert_eq!(ssl, "t", "the gateway's database connection is encrypted");

    // Allowed: the contract from PostgreSQL, the tier counted in Redis (fallback "closed"
    // would answer 503 were Redis unusable), the result shared through Redis.
    let token = server.issue_access_token("app-1", "orders:read", HOUR);
    for _ in 0..3 {
        assert_eq!(
            get(&proxy.url("/orders/1"), Some(&token)).0,
            200,
            "{}",
            proxy.log_text()
        );
    }
    let store =
        oauth_redis::RedisStore::open_with_ca(&redis.url(), redis_certs.ca_pem.as_bytes()).unwrap();
    let runtime = tokio::runtime::Builder::new_current_thread()
        .enable_all()
        .build()
        .unwrap();
    let record = runtime.block_on(store.load(&redis_key(&token))).unwrap();
    assert!(
        record.is_some_and(|r| r.starts_with(b"OFS1")),
        "the shared cache's sealed record is in Redis"
    );
    let log = proxy.log_text();
    assert!(!log.contains("unavailable"), "{log}");
    assert!(!log.contains("hunter2"));
    drop(proxy);

    // The wrong CA for PostgreSQL, then for Redis: refused at start, with the section and the
    // reason, and no password.
    let refused = |text: String| {
        let path = dir.join("wrong-ca.toml");
        std::fs::write(&path, format!("listen = \"127.0.0.1:0\"\n{text}")).unwrap();
        let mut cmd = Command::new(env!("CARGO_BIN_EXE_oauth-gateway"));
        cmd.arg("--config").arg(&path).env_remove("RUST_LOG");
        for (k, v) in &env {
            cmd.env(k, v);
        }
        let out = cmd.output().unwrap();
        let err = String::from_utf8_lossy(&out.stderr).into_owned();
        assert_eq!(out.status.code(), Some(2), "{err}");
        assert!(err.contains("server certificate not trusted"), "{err}");
        assert!(!err.contains("hunter2"), "{err}");
        err
    };
    let err = refused(text(&redis_ca, &redis_ca));
    assert!(err.contains("[contracts]"), "{err}");
    let err = refused(text(&pg_ca, &pg_ca));
    assert!(err.contains("[cache.redis]"), "{err}");
}
