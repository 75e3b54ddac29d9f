//! PostgresContracts against a real PostgreSQL (Debian's package, started here on 127.0.0.1
//! with a data directory of its own): rows loaded and validated, changes pushed by
//! LISTEN/NOTIFY within a second, the snapshot kept while the database is down, then 503.
#![allow(clippy::unwrap_used, clippy::expect_used, clippy::panic)]

use std::time::{Duration, Instant};

use oauth_gateway::ContractStore;
use oauth_gateway::oauth_core::ContractStatus;
use oauth_postgres::{PostgresConfig, PostgresContracts};
use oauth_test_server::services::Postgres;

fn granted(store: &PostgresContracts, client: &str, api: &str) -> bool {
    matches!(store.lookup(client, api), ContractStatus::Granted { .. })
}

/// Polls until `f` holds, returning how long it took (panics after 5 s).
fn within(what: &str, f: impl Fn() -> bool) -> Duration {
    let start = Instant::now();
    while !f() {
        assert!(
            start.elapsed() < Duration::from_secs(5),
            "{what}: not within 5 s"
        );
        std::thread::sleep(Duration::from_millis(5));
    }
    start.elapsed()
}

#[test]
fn contracts_follow_the_table_and_survive_an_outage_for_a_bounded_time() {
    let mut pg = Postgres::start().unwrap();
    // Two gateways' stores: the first creates the table, the second finds it.
    let config = PostgresConfig::new()
        .max_staleness(Duration::from_millis(1500))
        .heartbeat(Duration::from_millis(100));
    let a = PostgresContracts::connect(&pg.url(), config).unwrap();
    let b = PostgresContracts::connect(&pg.url(), config).unwrap();
    assert!(a.is_empty());

    // Valid rows load; invalid ones are skipped without blocking the others.
    pg.psql(
        "INSERT INTO oauth_gateway_contracts (client_id, api, scopes) VALUES \
         ('app-1', 'orders', 'orders:read orders:write'), ('app-2', 'orders', NULL), \
         ('', 'orders', NULL), ('app-3', 'orders', 'bad\"scope'), ('app-4', E'ord\\ners', NULL)",
    )
    .unwrap();
    for store in [&a, &b] {
        let took = within("the insert", || granted(store, "app-2", "orders"));
        assert!(took < Duration::from_secs(1), "{took:?}");
        assert_eq!(store.len(), 2);
    }
    match a.lookup("app-1", "orders") {
        ContractStatus::Granted {
            scopes: Some(s), ..
        } => assert!(s.contains("orders:write")),
        other => panic!("{other:?}"),
    }
    assert!(!granted(&a, "app-3", "orders"));
    assert!(matches!(a.lookup("app-1", "billing"), ContractStatus::None));

    // A revoked contract is enforced by every node within a second.
    pg.psql("DELETE FROM oauth_gateway_contracts WHERE client_id = 'app-1'")
        .unwrap();
    for store in [&a, &b] {
        let took = within("the revocation", || !granted(store, "app-1", "orders"));
        assert!(took < Duration::from_secs(1), "{took:?}");
    }

    // The database goes away: decisions continue from the snapshot, then stop (503).
    // (Timed from before the stop: the last contact was at most one heartbeat before it.)
    let down = Instant::now();
    pg.stop().unwrap();
    let stopping = down.elapsed();
    assert!(granted(&a, "app-2", "orders"), "stopping took {stopping:?}");
    within("staleness", || {
        matches!(a.lookup("app-2", "orders"), ContractStatus::Unavailable)
    });
    let kept = down.elapsed();
    assert!(
        kept >= Duration::from_millis(1200) && kept < stopping + Duration::from_millis(2500),
        "the snapshot was used for {kept:?} (limit 1.5 s; stopping took {stopping:?})"
    );

    // Back: the node reconnects, reloads, and decides again.
    pg.resume().unwrap();
    pg.psql("INSERT INTO oauth_gateway_contracts VALUES ('app-5', 'orders', NULL)")
        .unwrap();
    within("the reconnection", || {
        granted(&a, "app-5", "orders") && granted(&b, "app-2", "orders")
    });
}

#[test]
fn a_bad_url_or_an_absent_server_is_a_clear_error() {
    let err = PostgresContracts::connect("postgresql://127.0.0.1:1/none", PostgresConfig::new())
        .unwrap_err()
        .to_string();
    assert!(err.starts_with("postgres: connect"), "{err}");
    let err = PostgresContracts::connect("postgresql://[", PostgresConfig::new())
        .unwrap_err()
        .to_string();
    assert!(err.contains("URL"), "{err}");
}
