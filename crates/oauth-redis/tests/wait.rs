//! Waiting for a lease's release without polling, on a real Redis: a waiter wakes when the
//! holder releases (pub/sub), not at its deadline; a lease already gone ends the wait at once;
//! a lease whose holder died ends it at the lease's expiry. Both stores.
#![allow(clippy::unwrap_used, clippy::expect_used, clippy::panic)]

use std::future::Future;
use std::pin::Pin;
use std::time::{Duration, Instant};

/// A store operation run to its end by the test.
type Job<'a> = Pin<Box<dyn Future<Output = ()> + Send + 'a>>;

use oauth_redis::{AsyncRedisStore, FleetStore, RedisStore};
use oauth_test_server::services::Redis;

fn start_redis() -> Redis {
    Redis::start().unwrap_or_else(|e| panic!("{e}; .ci/run installs redis-server"))
}

/// Runs the three cases on `store`, with `block` running a store future to its end.
fn cases(
    store: &(dyn FleetStore + Sync),
    other: &(dyn FleetStore + Sync),
    run: &(dyn Fn(Job<'_>) + Sync),
) {
    let far = || Instant::now() + Duration::from_secs(20);
    // Released by its holder 200 ms in: the waiter wakes then.
    run(Box::pin(async {
        assert!(
            other
                .try_lease("l1", "holder", Duration::from_secs(30))
                .await
                .unwrap()
        );
    }));
    let started = Instant::now();
    std::thread::scope(|s| {
        s.spawn(|| {
            std::thread::sleep(Duration::from_millis(200));
            run(Box::pin(async {
                other.release("l1", "holder").await.unwrap();
            }));
        });
        run(Box::pin(async {
            store.wait_released("l1", far()).await.unwrap();
        }));
    });
    let waited = started.elapsed();
    assert!(waited >= Duration::from_millis(150), "{waited:?}");
    assert!(
        waited < Duration::from_secs(5),
        "woken by the release: {waited:?}"
    );

    // No lease: no wait.
    let started = Instant::now();
    run(Box::pin(async {
        store.wait_released("l2", far()).await.unwrap();
    }));
    assert!(started.elapsed() < Duration::from_secs(2));

    // A holder that died: the wait ends with the lease (300 ms), not at the far deadline.
    run(Box::pin(async {
        assert!(
            other
                .try_lease("l3", "dead", Duration::from_millis(300))
                .await
                .unwrap()
        );
    }));
    let started = Instant::now();
    run(Box::pin(async {
        store.wait_released("l3", far()).await.unwrap();
    }));
    assert!(
        started.elapsed() < Duration::from_secs(5),
        "{:?}",
        started.elapsed()
    );
}

#[test]
fn a_waiter_wakes_at_the_release_not_at_its_deadline() {
    let redis = start_redis();
    let blocking = RedisStore::open(&redis.url()).unwrap();
    let holder = RedisStore::open(&redis.url()).unwrap();
    cases(&blocking, &holder, &|f| oauth_runtime::block_on(f));

    let rt = tokio::runtime::Builder::new_multi_thread()
        .worker_threads(2)
        .enable_all()
        .build()
        .unwrap();
    let store = {
        let _guard = rt.enter();
        AsyncRedisStore::open(&redis.url()).unwrap()
    };
    let holder = RedisStore::open(&redis.url()).unwrap();
    // Fresh lease names for the async store's turn.
    redis_flush(&redis);
    cases(&store, &holder, &|f| rt.block_on(f));
}

fn redis_flush(redis: &Redis) {
    let client = redis::Client::open(redis.url()).unwrap();
    let mut c = client.get_connection().unwrap();
    let _: () = redis::cmd("FLUSHALL").query(&mut c).unwrap();
}
