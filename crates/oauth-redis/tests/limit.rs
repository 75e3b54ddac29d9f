//! SLA tiers counted in a real Redis (the server's clock, one script a request): exactly the
//! limit across concurrent callers and both stores, refusals not counted, allowed again when
//! `Retry-After` says.
#![allow(clippy::unwrap_used, clippy::expect_used, clippy::panic)]

use std::sync::Arc;
use std::sync::atomic::{AtomicU32, Ordering};
use std::time::Duration;

use oauth_core::resource_server::rate_limit::{Limit, Tier, Verdict};
use oauth_redis::{AsyncRedisStore, RateCounter, RedisStore};
use oauth_test_server::services::Redis;

fn tier(requests: u32, window: Duration) -> Tier {
    Tier::new("silver", &[Limit::new(requests, window).unwrap()]).unwrap()
}

#[test]
fn exactly_the_limit_across_threads_and_both_stores() {
    let redis = Redis::start().unwrap_or_else(|e| panic!("{e}; .ci/run installs redis-server"));
    let tier = tier(50, Duration::from_secs(10));
    let allowed = Arc::new(AtomicU32::new(0));
    let limited = Arc::new(AtomicU32::new(0));
    let rt = tokio::runtime::Builder::new_multi_thread()
        .worker_threads(2)
        .enable_all()
        .build()
        .unwrap();
    let async_store = {
        let _guard = rt.enter();
        Arc::new(AsyncRedisStore::open(&redis.url()).unwrap())
    };
    std::thread::scope(|s| {
        // 10 blocking threads and 10 async tasks, 15 requests each: 300 in all.
        for _ in 0..10 {
            let (tier, allowed, limited) = (&tier, &allowed, &limited);
            let url = redis.url();
            s.spawn(move || {
                let store = RedisStore::open(&url).unwrap();
                for _ in 0..15 {
                    match oauth_runtime::block_on(store.check("app-1\0orders", tier)).unwrap() {
                        Verdict::Allowed { .. } => allowed.fetch_add(1, Ordering::SeqCst),
                        _ => limited.fetch_add(1, Ordering::SeqCst),
                    };
                }
            });
        }
        rt.block_on(async {
            let tasks: Vec<_> = (0..10)
                .map(|_| {
                    let (store, tier) = (Arc::clone(&async_store), tier.clone());
                    let (allowed, limited) = (Arc::clone(&allowed), Arc::clone(&limited));
                    tokio::spawn(async move {
                        for _ in 0..15 {
                            match store.check("app-1\0orders", &tier).await.unwrap() {
                                Verdict::Allowed { .. } => allowed.fetch_add(1, Ordering::SeqCst),
                                _ => limited.fetch_add(1, Ordering::SeqCst),
                            };
                        }
                    })
                })
                .collect();
            for t in tasks {
                t.await.unwrap();
            }
        });
    });
    assert_eq!(allowed.load(Ordering::SeqCst), 50);
    assert_eq!(limited.load(Ordering::SeqCst), 250);
    // Another client, another API: counted apart.
    let store = RedisStore::open(&redis.url()).unwrap();
    assert!(
        oauth_runtime::block_on(store.check("app-2\0orders", &tier))
            .unwrap()
            .allowed()
    );
}

#[test]
fn allowed_again_when_retry_after_says() {
    let redis = Redis::start().unwrap_or_else(|e| panic!("{e}; .ci/run installs redis-server"));
    let store = RedisStore::open(&redis.url()).unwrap();
    let tier = tier(3, Duration::from_millis(1200));
    for _ in 0..3 {
        assert!(
            oauth_runtime::block_on(store.check("k", &tier))
                .unwrap()
                .allowed()
        );
    }
    let Verdict::Limited { retry_after, .. } =
        oauth_runtime::block_on(store.check("k", &tier)).unwrap()
    else {
        panic!("the fourth is refused");
    };
    // At most the window and one bucket (100 ms).
    assert!(
        retry_after <= Duration::from_millis(1300),
        "{retry_after:?}"
    );
    // Refusals are not counted: more of them do not push the time back.
    for _ in 0..5 {
        match oauth_runtime::block_on(store.check("k", &tier)).unwrap() {
            Verdict::Limited {
                retry_after: again, ..
            } => assert!(again <= retry_after),
            other => panic!("{other:?}"),
        }
    }
    std::thread::sleep(retry_after + Duration::from_millis(50));
    assert!(
        oauth_runtime::block_on(store.check("k", &tier))
            .unwrap()
            .allowed()
    );
}
