//! Requests per second and added latency through `oauth-gateway` (allowed, cache hit), measured
//! with a load generator on loopback beside direct calls to the same upstream, in interleaved
//! rounds: `cargo bench -p oauth-proxy --bench proxy`.
//!
//! The upstream is a minimal hyper server answering 200 with a short body; the gateway is the
//! release binary with the embedded defaults (contracts in redb, the local cache) introspecting
//! at the loopback test authorization server once. Each round keeps `CONNECTIONS` keep-alive
//! HTTP/1.1 connections busy for `ROUND`, recording every request's latency.
#![allow(
    clippy::unwrap_used,
    clippy::expect_used,
    clippy::print_stdout,
    clippy::panic
)]

use std::convert::Infallible;
use std::net::SocketAddr;
use std::process::{Command, Stdio};
use std::time::{Duration, Instant};

use bytes::Bytes;
use http_body_util::{BodyExt, Empty, Full};
use hyper::{Request, Response};
use hyper_util::rt::TokioIo;
use oauth_test_server::{Behaviour, TestServer};

const CONNECTIONS: usize = 16;
const ROUND: Duration = Duration::from_secs(3);
const ROUNDS: usize = 3;

async fn upstream() -> SocketAddr {
    let listener = tokio::net::TcpListener::bind("127.0.0.1:0").await.unwrap();
    let addr = listener.local_addr().unwrap();
    tokio::spawn(async move {
        loop {
            let Ok((stream, _)) = listener.accept().await else {
                continue;
            };
            tokio::spawn(async move {
                let service =
                    hyper::service::service_fn(|_req: Request<hyper::body::Incoming>| async {
                        Ok::<_, Infallible>(Response::new(Full::new(Bytes::from_static(
                            b"{\"ok\":true}",
                        ))))
                    });
                let _ = hyper::server::conn::http1::Builder::new()
                    .serve_connection(TokioIo::new(stream), service)
                    .await;
            });
        }
    });
    addr
}

/// One round: latencies (µs) of every request completed in `ROUND` over `CONNECTIONS`.
async fn round(target: SocketAddr, path: &'static str, token: Option<String>) -> Vec<u32> {
    let deadline = Instant::now() + ROUND;
    let mut tasks = Vec::new();
    for _ in 0..CONNECTIONS {
        let token = token.clone();
        tasks.push(tokio::spawn(async move {
            let stream = tokio::net::TcpStream::connect(target).await.unwrap();
            stream.set_nodelay(true).unwrap();
            let (mut send, conn) = hyper::client::conn::http1::handshake(TokioIo::new(stream))
                .await
                .unwrap();
            tokio::spawn(conn);
            let mut latencies = Vec::new();
            while Instant::now() < deadline {
                let mut request = Request::get(path).header("host", "127.0.0.1");
                if let Some(token) = &token {
                    request = request.header("authorization", format!("Bearer {token}"));
                }
                let request = request.body(Empty::<Bytes>::new()).unwrap();
                let started = Instant::now();
                send.ready().await.unwrap();
                let response = send.send_request(request).await.unwrap();
                assert_eq!(response.status(), 200);
                response.into_body().collect().await.unwrap();
                latencies.push(u32::try_from(started.elapsed().as_micros()).unwrap_or(u32::MAX));
            }
            latencies
        }));
    }
    let mut all = Vec::new();
    for t in tasks {
        all.extend(t.await.unwrap());
    }
    all
}

fn percentile(sorted: &[u32], p: f64) -> u32 {
    sorted[((sorted.len() - 1) as f64 * p) as usize]
}

fn main() {
    let runtime = tokio::runtime::Builder::new_multi_thread()
        .enable_all()
        .build()
        .unwrap();
    let server = TestServer::start(Behaviour::default()).unwrap();
    let dir = std::env::temp_dir().join(format!("oauth-proxy-bench-{}", std::process::id()));
    std::fs::create_dir_all(&dir).unwrap();
    std::fs::write(dir.join("ca.pem"), server.ca_pem()).unwrap();
    {
        let store = oauth_gateway::RedbContracts::open(dir.join("contracts.redb")).unwrap();
        let mut set = oauth_gateway::ContractSet::new();
        set.insert(oauth_gateway::Contract::new("app-1", "orders"));
        store.replace_all(&set).unwrap();
    }
    let upstream = runtime.block_on(upstream());
    let port = std::net::TcpListener::bind("127.0.0.1:0")
        .unwrap()
        .local_addr()
        .unwrap()
        .port();
    let b = Behaviour::default();
    std::fs::write(
        dir.join("gateway.toml"),
        format!(
            "listen = \"127.0.0.1:{port}\"\nupstream = \"http://{upstream}\"\n\
             [introspection]\nendpoint = \"{}\"\nclient_id = \"{}\"\nclient_secret_env = \"S\"\nca_file = \"{}\"\n\
             [[route]]\nprefix = \"/orders\"\napi = \"orders\"\n",
            server.url("/introspect"),
            b.client_id,
            dir.join("ca.pem").display()
        ),
    )
    .unwrap();
    let mut proxy = Command::new(env!("CARGO_BIN_EXE_oauth-gateway"))
        .arg("--config")
        .arg(dir.join("gateway.toml"))
        .current_dir(&dir)
        .env("S", &b.client_secret)
        // The request log lines are the proxy's normal work; here they go nowhere.
        .stderr(Stdio::null())
        .spawn()
        .unwrap();
    let gateway: SocketAddr = format!("127.0.0.1:{port}").parse().unwrap();
    let started = Instant::now();
    while std::net::TcpStream::connect(gateway).is_err() {
        assert!(
            started.elapsed() < Duration::from_secs(20),
            "the gateway did not start"
        );
        std::thread::sleep(Duration::from_millis(50));
    }
    let token = server.issue_access_token("app-1", "orders:read", Duration::from_secs(3600));
    let mut direct = Vec::new();
    let mut through = Vec::new();
    let mut rates = (Vec::new(), Vec::new());
    runtime.block_on(async {
        // Warm-up: the one introspection call, connections, caches.
        round(gateway, "/orders/1", Some(token.clone())).await;
        for _ in 0..ROUNDS {
            let d = round(upstream, "/orders/1", None).await;
            rates.0.push(d.len() as f64 / ROUND.as_secs_f64());
            direct.extend(d);
            let p = round(gateway, "/orders/1", Some(token.clone())).await;
            rates.1.push(p.len() as f64 / ROUND.as_secs_f64());
            through.extend(p);
        }
    });
    let _ = proxy.kill();
    let _ = proxy.wait();
    let _ = std::fs::remove_dir_all(&dir);
    assert_eq!(server.counters().introspection_requests, 1);
    direct.sort_unstable();
    through.sort_unstable();
    let median = |mut v: Vec<f64>| {
        v.sort_by(f64::total_cmp);
        v[v.len() / 2]
    };
    let (rd, rp) = (median(rates.0), median(rates.1));
    println!(
        "{CONNECTIONS} keep-alive connections, {ROUNDS} interleaved rounds of {} s each; one \
         machine runs the load generator, the upstream and the gateway.\n",
        ROUND.as_secs()
    );
    println!(
        "Per request, on each of the {CONNECTIONS} connections, back to back for {} s:\n\n\
         - upstream, direct: `GET /orders/1` to the upstream (a hyper server answering 200 with \
         a 11-byte body), the whole answer read.\n\
         - through oauth-gateway: the same request with a Bearer token, to the gateway, which \
         takes the token, finds its decision in its cache (introspected once, in the warm-up), \
         and forwards the request to the same upstream over its own connections.\n",
        ROUND.as_secs()
    );
    println!("| | requests/s (median round) | p50 | p99 |");
    println!("| --- | ---: | ---: | ---: |");
    let row = |what: &str, rate: f64, v: &[u32]| {
        println!(
            "| {what} | {rate:.0} | {} µs | {} µs |",
            percentile(v, 0.50),
            percentile(v, 0.99)
        );
    };
    row("upstream, direct", rd, &direct);
    row("through oauth-gateway (allowed, cache hit)", rp, &through);
    println!(
        "\nAdded by the gateway: p50 +{} µs, p99 +{} µs; throughput {:.2}× the direct calls'.",
        percentile(&through, 0.50).saturating_sub(percentile(&direct, 0.50)),
        percentile(&through, 0.99).saturating_sub(percentile(&direct, 0.99)),
        rp / rd
    );
}
