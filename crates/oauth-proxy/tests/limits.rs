//! The limits an edge needs, on a real `oauth-gateway` process: the request body size per
//! route (413, declared or chunked) and the header size (431).
#![allow(clippy::unwrap_used, clippy::expect_used, clippy::panic)]

mod support;

use std::time::{Duration, Instant};

use oauth_test_server::{Behaviour, TestServer};
use support::{
    HOUR, Proxy, Upstream, config_for, get, grant_orders_and_files, raw, scratch, secrets,
};

#[test]
fn body_and_header_limits() {
    let server = TestServer::start(Behaviour::default()).unwrap();
    let upstream = Upstream::start();
    let dir = scratch("limits");
    grant_orders_and_files(&dir);
    let top = format!(
        "upstream = \"http://127.0.0.1:{}\"\nmax_header_bytes = 8192\nmax_body_bytes = 1000",
        upstream.port
    );
    let routes = "[[route]]\nprefix = \"/orders\"\napi = \"orders\"\n\
                  [[route]]\nprefix = \"/files\"\napi = \"files\"\nmax_body_bytes = 100000\n";
    let proxy = Proxy::start(
        &config_for(&server, &dir, &top, routes),
        &dir,
        &secrets(&[]),
    );
    let token = server.issue_access_token("app-1", "orders:read", HOUR);
    let head = |path: &str, extra: &str| {
        format!(
            "POST {path} HTTP/1.1\r\nhost: 127.0.0.1\r\nauthorization: Bearer {token}\r\n\
             connection: close\r\n{extra}"
        )
    };
    // A declared length over the route's limit: 413 before the body is read.
    let big = vec![b'x'; 5000];
    let (status, _) = raw(proxy.port, &head("/orders/1", "content-length: 5000"), &big);
    assert_eq!(status, 413);
    let (status, _) = raw(
        proxy.port,
        &head("/orders/1", "content-length: 1000"),
        &big[..1000],
    );
    assert_eq!(status, 200);
    // The other route allows more.
    let (status, _) = raw(proxy.port, &head("/files/1", "content-length: 5000"), &big);
    assert_eq!(status, 200);
    // A chunked body is cut at the limit: 413; under it, it reaches the upstream whole.
    let chunked = |n: usize| format!("{n:x}\r\n{}\r\n0\r\n\r\n", "y".repeat(n));
    let (status, _) = raw(
        proxy.port,
        &head("/orders/1", "transfer-encoding: chunked"),
        chunked(5000).as_bytes(),
    );
    assert_eq!(status, 413);
    let (status, answer) = raw(
        proxy.port,
        &head("/orders/1", "transfer-encoding: chunked"),
        chunked(500).as_bytes(),
    );
    assert_eq!(status, 200, "{answer}");
    assert!(answer.contains(r#""x-body-bytes":500"#), "{answer}");
    // Headers over max_header_bytes: 431, and the gateway is fine after it.
    let padding = format!("x-padding: {}", "p".repeat(9000));
    let (status, _) = raw(proxy.port, &head("/orders/1", &padding), b"");
    assert_eq!(status, 431);
    let started = Instant::now();
    assert_eq!(get(&proxy.url("/orders/1"), Some(&token)).0, 200);
    assert!(started.elapsed() < Duration::from_secs(5));
}
