//! A fleet of OS processes sharing one token through a real Redis (`redis-server` from the
//! distribution, started here on 127.0.0.1 with a data directory of its own), against the
//! loopback test authorization server: one token request for 8 × 200 callers (half the
//! processes on oauth-ureq and `RedisStore`, half on oauth-reqwest and `AsyncRedisStore`); Redis down →
//! each process fetches its own, then sharing resumes; a lease holder killed mid-refresh;
//! corrupt records ignored and overwritten.
//!
//! The children are this test binary run again (`child_process`, ignored in normal runs).
#![allow(
    clippy::unwrap_used,
    clippy::expect_used,
    clippy::panic,
    clippy::print_stdout
)]

use std::collections::BTreeSet;
use std::path::PathBuf;
use std::process::{Child, Command, Output, Stdio};
use std::time::{Duration, Instant};

use oauth_test_server::services::Redis;
use oauth_test_server::{Behaviour, TestServer};

const SLOT_ENV: &str = "FLEET_SLOT";

/// The fleet's Redis (the test services' server: ready when it names its own process).
fn start_redis() -> Redis {
    Redis::start().unwrap_or_else(|e| panic!("{e}; .ci/run installs redis-server"))
}

fn connection(redis: &Redis) -> redis::Connection {
    redis::Client::open(redis.url())
        .unwrap()
        .get_connection_with_timeout(Duration::from_secs(5))
        .unwrap()
}

fn redis_get(redis: &Redis, key: &str) -> Option<Vec<u8>> {
    redis::cmd("GET")
        .arg(key)
        .query(&mut connection(redis))
        .unwrap()
}

fn redis_set(redis: &Redis, key: &str, value: &[u8]) {
    let () = redis::cmd("SET")
        .arg(key)
        .arg(value)
        .query(&mut connection(redis))
        .unwrap();
}

struct Fleet {
    server: TestServer,
    ca: PathBuf,
    slot: String,
}

impl Fleet {
    fn new(behaviour: Behaviour, name: &str) -> Self {
        let server = TestServer::start(behaviour).unwrap();
        let ca =
            std::env::temp_dir().join(format!("oauth-redis-ca-{}-{name}.pem", std::process::id()));
        std::fs::write(&ca, server.ca_pem()).unwrap();
        Self {
            server,
            ca,
            slot: format!("test-{name}-{}", std::process::id()),
        }
    }

    fn child(&self, redis_url: &str, callers: usize, lease_ms: u64) -> Command {
        let mut c = Command::new(std::env::current_exe().unwrap());
        c.args([
            "child_process",
            "--exact",
            "--ignored",
            "--nocapture",
            "--test-threads=1",
        ])
        .env("FLEET_CHILD", "1")
        .env("FLEET_REDIS", redis_url)
        .env("FLEET_TOKEN_URL", self.server.url("/token"))
        .env("FLEET_CA", &self.ca)
        .env("FLEET_CALLERS", callers.to_string())
        .env("FLEET_LEASE_MS", lease_ms.to_string())
        .env(SLOT_ENV, &self.slot)
        .stdout(Stdio::piped())
        .stderr(Stdio::piped());
        c
    }

    fn requests(&self) -> usize {
        self.server.counters().token_requests
    }
}

/// The tokens a child printed.
fn tokens(out: &Output) -> BTreeSet<String> {
    String::from_utf8_lossy(&out.stdout)
        .lines()
        // The first line may follow the harness's "test child_process ... ".
        .filter_map(|l| l.split("TOKEN ").nth(1).map(|t| t.trim().to_owned()))
        .collect()
}

fn succeeded(out: &Output) {
    assert!(
        out.status.success(),
        "child failed: {}\n{}",
        String::from_utf8_lossy(&out.stdout),
        String::from_utf8_lossy(&out.stderr)
    );
}

/// A child process: a token source on the shared store, `FLEET_CALLERS` threads asking at once.
#[test]
#[ignore = "run as a child process by the fleet tests"]
fn child_process() {
    if std::env::var_os("FLEET_CHILD").is_none() {
        return;
    }
    tracing_subscriber::fmt()
        .with_writer(std::io::stderr)
        .with_max_level(tracing::Level::WARN)
        .init();
    let env = |name: &str| std::env::var(name).unwrap();
    if std::env::var_os("FLEET_ASYNC").is_some() {
        return async_child();
    }
    let ca = std::fs::read(env("FLEET_CA")).unwrap();
    let http = oauth_ureq::HttpClient::new(
        oauth_ureq::HttpConfig::new()
            .add_root_certificates_pem(&ca)
            .unwrap()
            .timeout(Duration::from_secs(20)),
    )
    .unwrap();
    let b = Behaviour::default();
    let client = oauth_ureq::Client::new(
        b.client_id,
        oauth_ureq::ClientAuthentication::SecretBasic(oauth_ureq::ClientSecret::new(
            b.client_secret,
        )),
    );
    let store = oauth_redis::FleetTokens::new(
        // (A generous timeout: eight test processes start at once on a small machine, and a
        // timed-out operation would make that process request its own token.)
        oauth_redis::RedisStore::open(&env("FLEET_REDIS"))
            .unwrap()
            .timeout(Duration::from_secs(5)),
        oauth_redis::StoreKey::new("k1", &[7; 32]).unwrap(),
    )
    .lease(Duration::from_millis(
        env("FLEET_LEASE_MS").parse().unwrap(),
    ))
    .slot(env(SLOT_ENV));
    let source = oauth_ureq::TokenSource::builder(
        http.clone(),
        http.endpoint(&env("FLEET_TOKEN_URL")).unwrap(),
        client,
    )
    .grant(oauth_ureq::TokenRequest::client_credentials())
    .shared_store(store)
    .build();
    let callers: usize = env("FLEET_CALLERS").parse().unwrap();
    let barrier = std::sync::Barrier::new(callers);
    let started = Instant::now();
    let got: BTreeSet<String> = std::thread::scope(|s| {
        let handles: Vec<_> = (0..callers)
            .map(|_| {
                let (barrier, source) = (&barrier, &source);
                std::thread::Builder::new()
                    .stack_size(256 * 1024)
                    .spawn_scoped(s, move || {
                        barrier.wait();
                        source.token().unwrap().expose_secret().to_owned()
                    })
                    .unwrap()
            })
            .collect();
        handles.into_iter().map(|h| h.join().unwrap()).collect()
    });
    for t in got {
        println!("TOKEN {t}");
    }
    println!("ELAPSED_MS {}", started.elapsed().as_millis());
}

/// The async child: oauth-reqwest's token source on `AsyncRedisStore`, `FLEET_CALLERS` tasks
/// asking at once on a tokio runtime.
fn async_child() {
    let env = |name: &str| std::env::var(name).unwrap();
    let ca = std::fs::read(env("FLEET_CA")).unwrap();
    let runtime = tokio::runtime::Builder::new_multi_thread()
        .worker_threads(2)
        .enable_all()
        .build()
        .unwrap();
    runtime.block_on(async {
        let http = oauth_reqwest::HttpClient::new(
            oauth_reqwest::HttpConfig::new()
                .add_root_certificates_pem(&ca)
                .unwrap()
                .timeout(Duration::from_secs(20)),
        )
        .unwrap();
        let b = Behaviour::default();
        let client = oauth_reqwest::Client::new(
            b.client_id,
            oauth_reqwest::ClientAuthentication::SecretBasic(oauth_reqwest::ClientSecret::new(
                b.client_secret,
            )),
        );
        let store = oauth_redis::FleetTokens::new(
            oauth_redis::AsyncRedisStore::open(&env("FLEET_REDIS"))
                .unwrap()
                .timeout(Duration::from_secs(5)),
            oauth_redis::StoreKey::new("k1", &[7; 32]).unwrap(),
        )
        .lease(Duration::from_millis(
            env("FLEET_LEASE_MS").parse().unwrap(),
        ))
        .slot(env(SLOT_ENV));
        let source = oauth_reqwest::TokenSource::builder(
            http.clone(),
            http.endpoint(&env("FLEET_TOKEN_URL")).unwrap(),
            client,
        )
        .grant(oauth_reqwest::TokenRequest::client_credentials())
        .shared_store(store)
        .build();
        let callers: usize = env("FLEET_CALLERS").parse().unwrap();
        let started = Instant::now();
        let barrier = std::sync::Arc::new(tokio::sync::Barrier::new(callers));
        let tasks: Vec<_> = (0..callers)
            .map(|_| {
                let (barrier, source) = (barrier.clone(), source.clone());
                tokio::spawn(async move {
                    barrier.wait().await;
                    source.token().await.unwrap().expose_secret().to_owned()
                })
            })
            .collect();
        let mut got = BTreeSet::new();
        for task in tasks {
            got.insert(task.await.unwrap());
        }
        for t in got {
            println!("TOKEN {t}");
        }
        println!("ELAPSED_MS {}", started.elapsed().as_millis());
    });
}

#[test]
fn eight_processes_two_hundred_callers_one_token_request() {
    let mut redis = start_redis();
    let fleet = Fleet::new(Behaviour::default(), "eight");
    // Half the fleet blocking (oauth-ureq, `RedisStore`), half async (oauth-reqwest,
    // `AsyncRedisStore`): one record format, one lease, one token.
    let children: Vec<Child> = (0..8)
        .map(|i| {
            let mut child = fleet.child(&redis.url(), 200, 5000);
            if i % 2 == 1 {
                child.env("FLEET_ASYNC", "1");
            }
            child.spawn().unwrap()
        })
        .collect();
    let mut all = BTreeSet::new();
    let mut warnings = String::new();
    for child in children {
        let out = child.wait_with_output().unwrap();
        succeeded(&out);
        warnings.push_str(&String::from_utf8_lossy(&out.stderr));
        let t = tokens(&out);
        assert_eq!(
            t.len(),
            1,
            "one token per process: {}\n{}",
            String::from_utf8_lossy(&out.stdout),
            String::from_utf8_lossy(&out.stderr)
        );
        all.extend(t);
    }
    assert_eq!(all.len(), 1, "every process has the same token");
    assert_eq!(
        fleet.requests(),
        1,
        "one token request for the fleet; the processes said: {warnings}"
    );
    // The record is sealed: the token is not in it, nor any JSON.
    let token = all.into_iter().next().unwrap();
    let record = redis_get(&redis, &format!("oauth:token:{}", fleet.slot)).expect("a record");
    assert!(record.starts_with(b"OFS1"));
    assert!(!record.windows(token.len()).any(|w| w == token.as_bytes()));
    assert!(serde_json_free(&record));
    redis.stop();
}

/// No `"access_token"` in the stored bytes.
fn serde_json_free(record: &[u8]) -> bool {
    !record.windows(12).any(|w| w == b"access_token")
}

#[test]
fn redis_down_each_process_fetches_its_own_then_sharing_resumes() {
    // Nobody listening: port 1 (tcpmux) is privileged and outside the ephemeral range, so no
    // parallel test's server can be given it.
    let url = "redis://127.0.0.1:1/".to_owned();
    let fleet = Fleet::new(Behaviour::default(), "down");
    let outputs: Vec<Output> = (0..3)
        .map(|_| fleet.child(&url, 20, 5000).spawn().unwrap())
        .collect::<Vec<_>>()
        .into_iter()
        .map(|c| c.wait_with_output().unwrap())
        .collect();
    for out in &outputs {
        succeeded(out);
        assert_eq!(tokens(out).len(), 1);
        // And says so.
        assert!(
            String::from_utf8_lossy(&out.stderr).contains("shared store is unavailable"),
            "{}",
            String::from_utf8_lossy(&out.stderr)
        );
    }
    assert_eq!(fleet.requests(), 3, "each process fetched its own");
    // Redis there: the next processes share again.
    let mut redis = start_redis();
    let outputs: Vec<Output> = (0..3)
        .map(|_| fleet.child(&redis.url(), 20, 5000).spawn().unwrap())
        .collect::<Vec<_>>()
        .into_iter()
        .map(|c| c.wait_with_output().unwrap())
        .collect();
    let mut all = BTreeSet::new();
    for out in &outputs {
        succeeded(out);
        all.extend(tokens(out));
    }
    assert_eq!(all.len(), 1);
    assert_eq!(fleet.requests(), 4, "one more request for the three");
    redis.stop();
}

#[test]
fn a_lease_holder_killed_mid_refresh_is_taken_over_after_its_lease() {
    let mut redis = start_redis();
    let delay = Duration::from_secs(2);
    let lease = Duration::from_millis(1500);
    let fleet = Fleet::new(
        Behaviour {
            token_delay: delay,
            ..Behaviour::default()
        },
        "lease",
    );
    let mut holder = fleet
        .child(&redis.url(), 1, lease.as_millis() as u64)
        .spawn()
        .unwrap();
    // Let it take the lease and send its request, then kill it.
    let deadline = Instant::now() + Duration::from_secs(5);
    while fleet.requests() == 0 {
        assert!(Instant::now() < deadline, "the first process never asked");
        std::thread::sleep(Duration::from_millis(20));
    }
    holder.kill().unwrap();
    let _ = holder.wait();
    let started = Instant::now();
    let out = fleet
        .child(&redis.url(), 5, lease.as_millis() as u64)
        .output()
        .unwrap();
    succeeded(&out);
    assert_eq!(tokens(&out).len(), 1);
    let waited = started.elapsed();
    // The lease plus one request (and process start-up), not the wait for a lease that is
    // never released (the lease plus the 20 s HTTP timeout).
    assert!(
        waited < lease + delay + Duration::from_secs(5),
        "{waited:?}"
    );
    redis.stop();
}

#[test]
fn corrupt_or_foreign_records_are_ignored_and_overwritten() {
    let mut redis = start_redis();
    let fleet = Fleet::new(Behaviour::default(), "corrupt");
    let key = format!("oauth:token:{}", fleet.slot);
    let junk: [&[u8]; 4] = [
        b"not a record",
        b"OFS1",
        br#"{"access_token":"forged","token_type":"Bearer"}"#,
        b"OFS1\x02k9aaaaaaaaaaaabbbbbbbbbbbbbbbbbbbbbbbbbbbbbbbb",
    ];
    for (i, value) in junk.iter().enumerate() {
        redis_set(&redis, &key, value);
        let out = fleet.child(&redis.url(), 3, 5000).output().unwrap();
        succeeded(&out);
        let t = tokens(&out);
        assert_eq!(t.len(), 1);
        assert!(!t.contains("forged"), "a forged record was served");
        assert_eq!(fleet.requests(), i + 1, "a request replaced junk #{i}");
        assert!(redis_get(&redis, &key).unwrap().starts_with(b"OFS1\x02k1"));
    }
    // Now valid: the next process takes it without a request.
    let out = fleet.child(&redis.url(), 3, 5000).output().unwrap();
    succeeded(&out);
    assert_eq!(fleet.requests(), junk.len());
    redis.stop();
}
