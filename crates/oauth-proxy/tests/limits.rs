//! The limits an edge needs, on a real `oauth-gateway` process: the request body size per
//! route (413, declared or chunked), the header size (431), the number of open connections and
//! the keep-alive idle timeout.
#![allow(clippy::unwrap_used, clippy::expect_used, clippy::panic)]

mod support;

use std::io::{Read as _, Write as _};
use std::net::TcpStream;
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

/// Reads until the gateway closes the connection; how long that took (at most `within`).
fn time_to_close(stream: &mut TcpStream, within: Duration) -> Option<Duration> {
    let started = Instant::now();
    stream.set_read_timeout(Some(within)).unwrap();
    let mut buf = [0u8; 4096];
    loop {
        match stream.read(&mut buf) {
            Ok(0) => return Some(started.elapsed()),
            Ok(_) => {}
            Err(e) if e.kind() == std::io::ErrorKind::ConnectionReset => {
                return Some(started.elapsed());
            }
            Err(_) => return None,
        }
    }
}

#[test]
fn open_connections_and_idle_keep_alive_are_limited() {
    let server = TestServer::start(Behaviour::default()).unwrap();
    let upstream = Upstream::start();
    let dir = scratch("connections");
    grant_orders_and_files(&dir);
    let top = format!(
        "upstream = \"http://127.0.0.1:{}\"\nmax_connections = 2\nidle_timeout_secs = 1\n\
         header_read_timeout_secs = 30",
        upstream.port
    );
    let routes = "[[route]]\nprefix = \"/orders\"\napi = \"orders\"\n";
    let proxy = Proxy::start(
        &config_for(&server, &dir, &top, routes),
        &dir,
        &secrets(&[]),
    );
    let token = server.issue_access_token("app-1", "orders:read", HOUR);
    // The start's health check connection has gone.
    std::thread::sleep(Duration::from_millis(300));
    let request = format!(
        "GET /orders/1 HTTP/1.1\r\nhost: 127.0.0.1\r\nauthorization: Bearer {token}\r\n\r\n"
    );
    let open = || {
        let mut stream = TcpStream::connect(("127.0.0.1", proxy.port)).unwrap();
        stream.write_all(request.as_bytes()).unwrap();
        stream
    };
    // Two keep-alive connections, each answered: the limit.
    let (mut first, mut second) = (open(), open());
    let mut buf = [0u8; 12];
    first.read_exact(&mut buf).unwrap();
    assert_eq!(&buf, b"HTTP/1.1 200");
    second.read_exact(&mut buf).unwrap();
    assert_eq!(&buf, b"HTTP/1.1 200");
    // A third is closed at once, unanswered.
    let mut third = open();
    let mut answer = Vec::new();
    third
        .set_read_timeout(Some(Duration::from_secs(5)))
        .unwrap();
    let _ = third.read_to_end(&mut answer);
    assert!(answer.is_empty(), "{}", String::from_utf8_lossy(&answer));
    proxy.wait_for_log(&["too many connections", "max_connections=2"]);
    // The two idle ones are closed after about a second (not the 30 s header-read timeout),
    // and then a new client is served.
    let idle = time_to_close(&mut first, Duration::from_secs(10)).expect("not closed");
    assert!(idle < Duration::from_secs(5), "{idle:?}");
    assert!(time_to_close(&mut second, Duration::from_secs(10)).is_some());
    std::thread::sleep(Duration::from_millis(100));
    assert_eq!(get(&proxy.url("/orders/2"), Some(&token)).0, 200);
}
