//! A cached `token()` through each adapter's token source, at 1 and 2 threads, against the
//! floor: the least work that yields the same result, an `arc-swap` `load()` of the published
//! token and a clone of it (what `SharedToken::cached` does, without its freshness check).
//! Rounds interleave the contenders so that the ratios come from the same moments of a noisy
//! machine; medians are reported.
//!
//! `cargo bench -p conformance --bench cached_token`
#![allow(
    clippy::unwrap_used,
    clippy::expect_used,
    clippy::panic,
    clippy::print_stdout
)]

use std::hint::black_box;
use std::sync::{Arc, Barrier};
use std::time::{Duration, Instant, SystemTime};

use arc_swap::ArcSwap;
use oauth_core::{AccessToken, Client, ClientAuthentication, ClientSecret, TokenResponse};

const ITERS: u64 = 2_000_000;
const ROUNDS: usize = 11;

fn seed() -> TokenResponse {
    TokenResponse::new(AccessToken::new("x".repeat(900)))
        .with_expires_at(SystemTime::now() + Duration::from_secs(3600))
}

fn client() -> Client {
    Client::new(
        "bench",
        ClientAuthentication::SecretBasic(ClientSecret::new("s")),
    )
}

/// Runs `f` ITERS times on each of `threads` threads, started together; ns per call.
fn per_call(threads: usize, f: impl Fn() + Sync) -> f64 {
    let barrier = Barrier::new(threads);
    let elapsed: Vec<Duration> = std::thread::scope(|s| {
        let handles: Vec<_> = (0..threads)
            .map(|_| {
                s.spawn(|| {
                    barrier.wait();
                    let start = Instant::now();
                    for _ in 0..ITERS {
                        f();
                    }
                    start.elapsed()
                })
            })
            .collect();
        handles.into_iter().map(|h| h.join().unwrap()).collect()
    });
    let max = elapsed.into_iter().max().unwrap();
    max.as_nanos() as f64 / ITERS as f64
}

fn median(mut v: Vec<f64>) -> f64 {
    v.sort_by(f64::total_cmp);
    v[v.len() / 2]
}

fn main() {
    // What a token source publishes: the token, whose clone is a reference count increment.
    let floor = ArcSwap::from_pointee(seed().access_token().clone());
    let ureq = oauth_ureq::TokenSource::builder(
        oauth_ureq::HttpClient::new(oauth_ureq::HttpConfig::new()).unwrap(),
        oauth_ureq::HttpConfig::new()
            .endpoint("https://auth.example.com/token")
            .unwrap(),
        client(),
    )
    .seed(seed())
    .build();
    let runtime = tokio::runtime::Builder::new_current_thread()
        .build()
        .unwrap();
    let reqwest = {
        let _guard = runtime.enter();
        oauth_reqwest::TokenSource::builder(
            oauth_reqwest::HttpClient::new(oauth_reqwest::HttpConfig::new()).unwrap(),
            oauth_reqwest::HttpConfig::new()
                .endpoint("https://auth.example.com/token")
                .unwrap(),
            client(),
        )
        .seed(seed())
        .build()
    };
    let reqwest = Arc::new(reqwest);
    // A waker-free poll loop: the cached path is ready at once, so no runtime is involved.
    let poll_once = |source: &oauth_reqwest::TokenSource| {
        let fut = std::pin::pin!(source.token());
        let waker = std::task::Waker::noop();
        let mut cx = std::task::Context::from_waker(waker);
        match fut.poll(&mut cx) {
            std::task::Poll::Ready(t) => t.unwrap(),
            std::task::Poll::Pending => panic!("a cached token is ready at once"),
        }
    };
    use std::future::Future;

    println!(
        "cached token read, ns per call (median of {ROUNDS} rounds of {ITERS} calls per thread); \
         oauth-reqwest's token() future: {} bytes",
        size_of_val(&reqwest.token())
    );
    println!("per call:");
    println!(
        "  floor: arc-swap load() (a guard: no reference count while a debt slot is free) + \
         AccessToken::clone() (one atomic increment)"
    );
    println!(
        "  oauth-ureq token(): the same load and clone plus the coarse clock read and the \
         freshness check, through the blocking source"
    );
    println!(
        "  oauth-reqwest token(): the same through the async source, its future polled once with \
         a no-op waker"
    );
    println!("{:<34} {:>8} {:>8}", "", "1 thread", "2 threads");
    let mut table: Vec<(&str, [f64; 2])> = Vec::new();
    let mut samples = vec![[Vec::new(), Vec::new()]; 3];
    for _ in 0..ROUNDS {
        for (t, threads) in [1usize, 2].into_iter().enumerate() {
            samples[0][t].push(per_call(threads, || {
                black_box(AccessToken::clone(&floor.load()));
            }));
            samples[1][t].push(per_call(threads, || {
                black_box(ureq.token().unwrap());
            }));
            samples[2][t].push(per_call(threads, || {
                black_box(poll_once(&reqwest));
            }));
        }
    }
    for (name, s) in [
        "arc-swap load() + clone (floor)",
        "oauth-ureq token()",
        "oauth-reqwest token()",
    ]
    .into_iter()
    .zip(samples)
    {
        let [one, two] = s;
        table.push((name, [median(one), median(two)]));
    }
    let floor = table[0].1;
    for (name, [one, two]) in &table {
        println!(
            "{name:<34} {one:>8.1} {two:>8.1}   ratio to floor: {:.2}x / {:.2}x",
            one / floor[0],
            two / floor[1]
        );
    }
}
