//! What counting a request in Redis costs: one `RateCounter::check` (the rate-limit script,
//! decided on the server) against one plain `GET` on the same connection — the round trip
//! every Redis operation pays — in interleaved rounds, through both stores; and the throughput
//! of one node's counter from 8 threads.
//!
//! `cargo bench -p oauth-redis --bench limit` (starts its own `redis-server` on 127.0.0.1)
#![allow(
    clippy::unwrap_used,
    clippy::expect_used,
    clippy::panic,
    clippy::print_stdout
)]

use std::future::Future;
use std::hint::black_box;
use std::pin::Pin;
use std::time::{Duration, Instant};

use oauth_core::resource_server::rate_limit::{Limit, Tier};
use oauth_redis::{AsyncRedisStore, FleetStore, RateCounter, RedisStore};
use oauth_test_server::services::Redis;

const N: u32 = 5_000;
const ROUNDS: usize = 5;

fn median(mut v: Vec<f64>) -> f64 {
    v.sort_by(f64::total_cmp);
    v[v.len() / 2]
}

/// Microseconds per call.
fn us(f: &mut dyn FnMut()) -> f64 {
    let start = Instant::now();
    for _ in 0..N {
        f();
    }
    start.elapsed().as_secs_f64() * 1e6 / f64::from(N)
}

fn main() {
    let redis = Redis::start().unwrap();
    // Never reached: every request is counted and allowed.
    let tier = Tier::new(
        "platinum",
        &[
            Limit::new(u32::MAX, Duration::from_secs(60)).unwrap(),
            Limit::new(u32::MAX, Duration::from_secs(86_400)).unwrap(),
        ],
    )
    .unwrap();
    let one = Tier::new(
        "gold",
        &[Limit::new(u32::MAX, Duration::from_secs(60)).unwrap()],
    )
    .unwrap();
    let blocking = RedisStore::open(&redis.url()).unwrap();
    let rt = tokio::runtime::Builder::new_current_thread()
        .enable_all()
        .build()
        .unwrap();
    let asynchronous = {
        let _guard = rt.enter();
        AsyncRedisStore::open(&redis.url()).unwrap()
    };
    let run = |f: Pin<Box<dyn Future<Output = ()> + '_>>| rt.block_on(f);
    let (mut get, mut check1, mut check2, mut aget, mut acheck) =
        (vec![], vec![], vec![], vec![], vec![]);
    for _ in 0..ROUNDS {
        get.push(us(&mut || {
            black_box(oauth_runtime::block_on(blocking.load("absent")).unwrap());
        }));
        check1.push(us(&mut || {
            black_box(oauth_runtime::block_on(blocking.check("app-1\0orders", &one)).unwrap());
        }));
        check2.push(us(&mut || {
            black_box(oauth_runtime::block_on(blocking.check("app-2\0orders", &tier)).unwrap());
        }));
        aget.push(us(&mut || {
            run(Box::pin(async {
                black_box(asynchronous.load("absent").await.unwrap());
            }));
        }));
        acheck.push(us(&mut || {
            run(Box::pin(async {
                black_box(asynchronous.check("app-3\0orders", &one).await.unwrap());
            }));
        }));
    }
    let (get, check1, check2, aget, acheck) = (
        median(get),
        median(check1),
        median(check2),
        median(aget),
        median(acheck),
    );
    println!(
        "# Counting a request in Redis (redis-server on loopback, one connection, {ROUNDS} \
         interleaved rounds x {N} sequential calls, medians)\n"
    );
    println!("| operation | µs per request | vs. one GET |");
    println!("|---|---|---|");
    println!("| `RedisStore`: GET (one round trip) | {get:.1} | 1.00x |");
    println!(
        "| `RedisStore`: rate-limit check, 1 limit | {check1:.1} | {:.2}x |",
        check1 / get
    );
    println!(
        "| `RedisStore`: rate-limit check, 2 limits | {check2:.1} | {:.2}x |",
        check2 / get
    );
    println!("| `AsyncRedisStore`: GET | {aget:.1} | 1.00x |");
    println!(
        "| `AsyncRedisStore`: rate-limit check, 1 limit | {acheck:.1} | {:.2}x |",
        acheck / aget
    );

    // One node's throughput: 8 threads, each with its own connection, one client's counter.
    let threads = 8;
    let started = Instant::now();
    std::thread::scope(|s| {
        for t in 0..threads {
            let (url, one) = (redis.url(), &one);
            s.spawn(move || {
                let store = RedisStore::open(&url).unwrap();
                for _ in 0..N {
                    black_box(
                        oauth_runtime::block_on(store.check(&format!("app-{t}\0orders"), one))
                            .unwrap(),
                    );
                }
            });
        }
    });
    let per_second = f64::from(N) * f64::from(threads) / started.elapsed().as_secs_f64();
    println!(
        "\n{threads} threads, one connection each, one counter each: {per_second:.0} counted \
         requests/s (one Redis server, 2 cores shared with the threads)."
    );
}
