//! PostgresContracts over TLS against a real PostgreSQL started with `ssl=on` and a certificate
//! from a CA made for the run: with that CA the contracts load and follow the table (the
//! server's `pg_stat_ssl` shows the gateway's connection encrypted, also after the database
//! restarts and the listener reconnects); with another CA, or the
//! public roots (`sslmode=verify-full` in the URL), the start fails with a typed error —
//! never a plain connection instead, never a panic, no password in the message.
#![allow(clippy::unwrap_used, clippy::expect_used, clippy::panic)]

use std::time::{Duration, Instant};

use oauth_gateway::ContractStore;
use oauth_gateway::oauth_core::ContractStatus;
use oauth_postgres::{PostgresConfig, PostgresContracts, PostgresTls};
use oauth_test_server::LoopbackCertificates;
use oauth_test_server::services::Postgres;

fn start() -> (Postgres, LoopbackCertificates) {
    let certs = LoopbackCertificates::generate().unwrap();
    let pg =
        Postgres::start_tls(&certs).unwrap_or_else(|e| panic!("{e}; .ci/run installs postgresql"));
    (pg, certs)
}

/// The URL with a password (trust authentication ignores it) that no error may show.
fn url(pg: &Postgres, query: &str) -> String {
    format!(
        "postgresql://postgres:hunter2@127.0.0.1:{}/gateway?application_name=oauth-gw-tls{query}",
        pg.port()
    )
}

#[test]
fn contracts_load_and_follow_the_table_over_tls_with_the_right_ca() {
    let (mut pg, certs) = start();
    let tls = PostgresTls::with_ca_pem(certs.ca_pem.as_bytes()).unwrap();
    let config = PostgresConfig::new().heartbeat(Duration::from_millis(100));
    // `sslmode=disable` in the URL does not turn TLS off: connect_tls is TLS only.
    let store = PostgresContracts::connect_tls(&url(&pg, "&sslmode=disable"), config, tls).unwrap();
    assert!(store.is_empty());
    // The gateway's connection (named by application_name) is encrypted, as the server sees.
    let ssl = pg
        .psql(
            "SELECT bool_and(s.ssl) FROM pg_stat_ssl s JOIN pg_stat_activity a USING (pid) \
             WHERE a.application_name = 'oauth-gw-tls'",
        )
        .unwrap();
    assert_eq!(ssl, "t");
    // A change is pushed over the TLS connection (LISTEN/NOTIFY).
    pg.psql("INSERT INTO oauth_gateway_contracts (client_id, api) VALUES ('app-1', 'orders')")
        .unwrap();
    let loaded = |client: &str| {
        let started = Instant::now();
        while !matches!(
            store.lookup(client, "orders"),
            ContractStatus::Granted { .. }
        ) {
            assert!(
                started.elapsed() < Duration::from_secs(10),
                "{client} not loaded"
            );
            std::thread::sleep(Duration::from_millis(10));
        }
    };
    loaded("app-1");
    // The database restarts: the listener reconnects over TLS too, and follows the table again.
    pg.stop().unwrap();
    pg.resume().unwrap();
    pg.psql("INSERT INTO oauth_gateway_contracts (client_id, api) VALUES ('app-2', 'orders')")
        .unwrap();
    loaded("app-2");
    let ssl = pg
        .psql(
            "SELECT bool_and(s.ssl) FROM pg_stat_ssl s JOIN pg_stat_activity a USING (pid) \
             WHERE a.application_name = 'oauth-gw-tls'",
        )
        .unwrap();
    assert_eq!(ssl, "t", "the new connection is encrypted");
}

fn assert_untrusted(e: &oauth_postgres::PostgresError) {
    assert_eq!(e.operation(), "connect", "{e:?}");
    assert!(e.certificate_rejected(), "{e:?}");
    assert!(
        e.to_string().contains("server certificate not trusted"),
        "{e}"
    );
    assert!(!format!("{e} {e:?}").contains("hunter2"), "{e:?}");
}

#[test]
fn a_server_of_another_ca_is_refused() {
    let (pg, _certs) = start();
    let other = LoopbackCertificates::generate().unwrap();
    let tls = PostgresTls::with_ca_pem(other.ca_pem.as_bytes()).unwrap();
    let e = PostgresContracts::connect_tls(&url(&pg, ""), PostgresConfig::new(), tls).unwrap_err();
    assert_untrusted(&e);
    // The server accepts plain connections too; that was not used instead.
    let plain = PostgresContracts::connect(&url(&pg, ""), PostgresConfig::new());
    assert!(plain.is_ok(), "plain still allowed when asked for");
}

#[test]
fn verify_full_in_the_url_means_tls_with_the_public_roots() {
    let (pg, _certs) = start();
    // libpq's spelling parses; the run's CA is no public root: refused, no plain fallback.
    for mode in ["verify-full", "verify-ca", "require"] {
        let e = PostgresContracts::connect(
            &url(&pg, &format!("&sslmode={mode}")),
            PostgresConfig::new(),
        )
        .unwrap_err();
        assert_untrusted(&e);
    }
}

#[test]
fn a_ca_without_a_certificate_is_refused() {
    for pem in [
        &b""[..],
        b"not a pem",
        b"-----BEGIN CERTIFICATE-----\n!!\n-----END CERTIFICATE-----\n",
    ] {
        let e = PostgresTls::with_ca_pem(pem).unwrap_err();
        assert_eq!(e.operation(), "the TLS CA", "{e:?}");
        assert!(!e.certificate_rejected());
    }
}
