//! `AsyncRedisStore` never blocks the tokio thread it runs on: on a `current_thread` runtime,
//! a timer task keeps firing while a store operation waits on a Redis that does not answer.
//! The blocking `RedisStore` on the same runtime stops the timer for the whole wait — which
//! shows that the measurement can tell the two apart.
#![allow(clippy::unwrap_used, clippy::expect_used, clippy::panic)]

use std::sync::Arc;
use std::sync::atomic::{AtomicU32, Ordering};
use std::time::Duration;

use oauth_redis::{AsyncRedisStore, RedisStore, TokenStore};

/// How many 10 ms ticks another task got while `store.load` waited.
async fn ticks_during(store: impl TokenStore) -> u32 {
    let ticks = Arc::new(AtomicU32::new(0));
    let counter = Arc::clone(&ticks);
    let ticker = tokio::spawn(async move {
        let mut interval = tokio::time::interval(Duration::from_millis(10));
        loop {
            interval.tick().await;
            counter.fetch_add(1, Ordering::Relaxed);
        }
    });
    // Let the ticker start.
    tokio::time::sleep(Duration::from_millis(30)).await;
    let before = ticks.load(Ordering::Relaxed);
    let answer = store.load("oauth:token:never").await;
    assert!(answer.is_err(), "a silent server cannot answer");
    let during = ticks.load(Ordering::Relaxed) - before;
    ticker.abort();
    during
}

#[test]
fn a_silent_redis_does_not_stall_the_runtime() {
    // A "Redis" that accepts connections and never says a word.
    let listener = std::net::TcpListener::bind("127.0.0.1:0").unwrap();
    let url = format!("redis://{}/", listener.local_addr().unwrap());
    std::thread::spawn(move || {
        let mut held = Vec::new();
        for connection in listener.incoming() {
            match connection {
                Ok(c) => held.push(c),
                Err(_) => break,
            }
        }
    });
    let runtime = tokio::runtime::Builder::new_current_thread()
        .enable_all()
        .build()
        .unwrap();
    let wait = Duration::from_millis(800);
    let async_ticks = runtime.block_on(ticks_during(
        AsyncRedisStore::open(&url).unwrap().timeout(wait),
    ));
    let blocking_ticks =
        runtime.block_on(ticks_during(RedisStore::open(&url).unwrap().timeout(wait)));
    // 80 ticks are due during the wait; a loaded machine may deliver fewer, never ~none.
    assert!(
        async_ticks >= 20,
        "the timer fired {async_ticks} times during an 800 ms async store wait"
    );
    assert!(
        blocking_ticks <= 2,
        "the blocking store let the timer fire {blocking_ticks} times: the check cannot tell"
    );
}
