//! `rediss://` against a real redis-server that serves TLS only (its certificate from a CA
//! made for the run): both stores work when given that CA (load, save, lease, release, wait,
//! the rate-limit script); given another CA, or the public roots, every operation fails with
//! a typed error that says the certificate was not trusted — no panic, no secret in it.
#![allow(clippy::unwrap_used, clippy::expect_used, clippy::panic)]

use std::time::{Duration, Instant};

use oauth_redis::{AsyncRedisStore, FleetStore, RedisFailure, RedisStore, StoreErrorKind};
use oauth_test_server::LoopbackCertificates;
use oauth_test_server::services::Redis;

fn start_tls_redis() -> (Redis, LoopbackCertificates) {
    let certs = LoopbackCertificates::generate().unwrap();
    let redis = Redis::start_tls(&certs)
        .unwrap_or_else(|e| panic!("{e}; .ci/run installs redis-server (built with TLS)"));
    assert!(redis.url().starts_with("rediss://127.0.0.1:"));
    (redis, certs)
}

/// Every operation of the fleet store, on `store`.
async fn round_trip(store: &dyn FleetStore) {
    store
        .save("tls:k", b"value", Some(Duration::from_secs(60)))
        .await
        .unwrap();
    assert_eq!(
        store.load("tls:k").await.unwrap().as_deref(),
        Some(&b"value"[..])
    );
    assert!(
        store
            .try_lease("tls:lease", "me", Duration::from_secs(5))
            .await
            .unwrap()
    );
    assert!(
        !store
            .try_lease("tls:lease", "other", Duration::from_secs(5))
            .await
            .unwrap()
    );
    store.release("tls:lease", "me").await.unwrap();
    // Released: no wait (the pub/sub connection is over TLS too).
    let started = Instant::now();
    store
        .wait_released("tls:lease", Instant::now() + Duration::from_secs(10))
        .await
        .unwrap();
    assert!(started.elapsed() < Duration::from_secs(3));
}

/// The error of a store that does not trust the server: typed, says so, names no URL.
fn assert_untrusted(e: &oauth_redis::StoreError) {
    use std::error::Error as _;
    assert_eq!(e.kind(), StoreErrorKind::Unavailable, "{e:?}");
    assert!(
        e.to_string().contains("server certificate not trusted"),
        "{e}"
    );
    let failure = e
        .source()
        .and_then(|s| s.downcast_ref::<RedisFailure>())
        .unwrap_or_else(|| panic!("a RedisFailure source: {e:?}"));
    assert!(failure.certificate_rejected(), "{failure:?}");
    assert!(!format!("{e} {e:?} {failure}").contains("hunter2"));
}

#[test]
fn blocking_store_over_tls_with_the_right_ca() {
    let (redis, certs) = start_tls_redis();
    let store = RedisStore::open_with_ca(&redis.url(), certs.ca_pem.as_bytes()).unwrap();
    futures_block(round_trip(&store));
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn async_store_over_tls_with_the_right_ca() {
    let (redis, certs) = start_tls_redis();
    let store = AsyncRedisStore::open_with_ca(&redis.url(), certs.ca_pem.as_bytes())
        .unwrap()
        .timeout(Duration::from_secs(5));
    store.connect_once(Duration::from_secs(5)).await.unwrap();
    round_trip(&store).await;
}

/// `connect_once` tells a certificate not trusted (a configuration mistake) from a server that
/// is not there, whatever the store's own (short) timeout, with which its retrying connection
/// would only say "timed out".
#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn connect_once_tells_an_untrusted_certificate_from_a_server_that_is_down() {
    use std::error::Error as _;
    let (redis, _certs) = start_tls_redis();
    let other = LoopbackCertificates::generate().unwrap();
    let url = format!("rediss://:hunter2@127.0.0.1:{}/", redis.port());
    let store = AsyncRedisStore::open_with_ca(&url, other.ca_pem.as_bytes())
        .unwrap()
        .timeout(Duration::from_millis(50));
    assert_untrusted(
        &store
            .connect_once(Duration::from_secs(5))
            .await
            .unwrap_err(),
    );
    // Nothing listening: unavailable, and not a certificate's fault.
    let port = {
        let listener = std::net::TcpListener::bind("127.0.0.1:0").unwrap();
        listener.local_addr().unwrap().port()
    };
    let down = AsyncRedisStore::open_with_ca(
        &format!("rediss://:hunter2@127.0.0.1:{port}/"),
        other.ca_pem.as_bytes(),
    )
    .unwrap();
    let e = down.connect_once(Duration::from_secs(5)).await.unwrap_err();
    assert_eq!(e.kind(), StoreErrorKind::Unavailable, "{e:?}");
    let failure = e.source().and_then(|s| s.downcast_ref::<RedisFailure>());
    assert!(failure.is_some_and(|f| !f.certificate_rejected()), "{e:?}");
    assert!(!format!("{e} {e:?}").contains("hunter2"));
}

#[test]
fn blocking_store_refuses_a_server_of_another_ca() {
    let (redis, _certs) = start_tls_redis();
    let other = LoopbackCertificates::generate().unwrap();
    // A password in the URL, which no error may show.
    let url = format!("rediss://:hunter2@127.0.0.1:{}/", redis.port());
    let store = RedisStore::open_with_ca(&url, other.ca_pem.as_bytes()).unwrap();
    let e = futures_block(store.load("k")).unwrap_err();
    assert_untrusted(&e);
    // The public roots do not hold the run's CA either.
    let public = RedisStore::open(&url).unwrap();
    assert_untrusted(&futures_block(public.save("k", b"v", None)).unwrap_err());
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn async_store_refuses_a_server_of_another_ca() {
    let (redis, _certs) = start_tls_redis();
    let other = LoopbackCertificates::generate().unwrap();
    let url = format!("rediss://:hunter2@127.0.0.1:{}/", redis.port());
    let store = AsyncRedisStore::open_with_ca(&url, other.ca_pem.as_bytes())
        .unwrap()
        .timeout(Duration::from_secs(5));
    assert_untrusted(&store.load("k").await.unwrap_err());
    let public = AsyncRedisStore::open(&url)
        .unwrap()
        .timeout(Duration::from_secs(5));
    assert_untrusted(&public.load("k").await.unwrap_err());
    assert_untrusted(
        &public
            .wait_released("k", Instant::now() + Duration::from_secs(1))
            .await
            .unwrap_err(),
    );
}

#[test]
fn a_ca_needs_rediss_and_a_certificate() {
    let certs = LoopbackCertificates::generate().unwrap();
    let plain = RedisStore::open_with_ca("redis://:hunter2@127.0.0.1:1/", certs.ca_pem.as_bytes())
        .unwrap_err();
    assert_eq!(plain.kind(), StoreErrorKind::Refused);
    assert!(plain.to_string().contains("not rediss://"), "{plain}");
    for pem in [
        &b""[..],
        b"not a pem",
        b"-----BEGIN CERTIFICATE-----\n!!\n-----END CERTIFICATE-----\n",
    ] {
        let e = AsyncRedisStore::open_with_ca("rediss://:hunter2@127.0.0.1:1/", pem).unwrap_err();
        assert_eq!(e.kind(), StoreErrorKind::Refused, "{e}");
        assert!(!format!("{e} {e:?}").contains("hunter2"));
    }
}

/// Runs a store future to its end on this thread (the blocking store's futures are ready at
/// once).
fn futures_block<F: Future>(future: F) -> F::Output {
    tokio::runtime::Builder::new_current_thread()
        .enable_all()
        .build()
        .unwrap()
        .block_on(future)
}
