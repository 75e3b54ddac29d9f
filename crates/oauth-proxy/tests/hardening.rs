//! One `oauth-gateway` process against hostile requests (paths an upstream could read as
//! another API's, connections that send their headers slowly), and its logs at every level.
#![allow(
    clippy::unwrap_used,
    clippy::expect_used,
    clippy::panic,
    clippy::print_stdout
)]

mod support;

use std::io::{Read as _, Write as _};
use std::net::TcpStream;
use std::time::{Duration, Instant};

use oauth_test_server::{Behaviour, TestServer};
use support::{
    HOUR, Proxy, Upstream, assert_no_secret, config, config_with, get, scratch, secrets,
};

/// Contracts for `app-1` on `orders` and `files`, in the redb file a gateway started in `dir`
/// opens.
fn grant(dir: &std::path::Path) {
    let store = oauth_gateway::RedbContracts::open(dir.join("contracts.redb")).unwrap();
    let mut set = oauth_gateway::ContractSet::new();
    set.insert(oauth_gateway::Contract::new("app-1", "orders"));
    set.insert(oauth_gateway::Contract::new("app-1", "files"));
    store.replace_all(&set).unwrap();
}

#[test]
fn paths_an_upstream_could_read_as_another_are_refused() {
    let server = TestServer::start(Behaviour::default()).unwrap();
    let upstream = Upstream::start();
    let dir = scratch("paths");
    grant(&dir);
    // `/files` accepts `%25` (its upstream decodes once); `/orders` has the default.
    let text = format!(
        "{}\n[[route]]\nprefix = \"/files\"\napi = \"files\"\nallow_encoded_percent = true\n",
        config(&server, upstream.port, "", "")
    );
    let proxy = Proxy::start(&text, &dir, &secrets(&[]));
    let token = server.issue_access_token("app-1", "orders:read", HOUR);
    let cases: &[(&str, u16)] = &[
        ("/orders/1", 200),
        // Tomcat, Jetty and Spring drop `;params` per segment: `/admin/x` under `/orders`.
        ("/orders/..;/admin/x", 400),
        ("/orders/..;x=1/admin/x", 400),
        ("/orders/%2e%2e;x/admin/x", 400),
        ("/orders/.;jsessionid=1/x", 400),
        ("/orders/..%3B/admin/x", 400),
        ("/orders/;x/admin", 400),
        // Decoded twice: `..`.
        ("/orders/%252e%252e/admin/x", 400),
        ("/orders/100%25", 400),
        // A route that accepts `%25` still refuses dot segments.
        ("/files/100%25", 200),
        ("/files/..;/admin/x", 400),
        ("/orders/1;v=2", 200),
    ];
    let wrong: Vec<String> = cases
        .iter()
        .filter_map(|&(target, expected)| {
            let status = proxy.raw_get(target, Some(&token));
            (status != expected).then(|| format!("{target}: {status}, expected {expected}"))
        })
        .collect();
    assert!(
        wrong.is_empty(),
        "{}\n{}",
        wrong.join("\n"),
        proxy.log_text()
    );
    // The upstream saw the allowed requests only, as sent.
    assert_eq!(
        upstream.targets(),
        ["/svc/orders/1", "/svc/files/100%25", "/svc/orders/1;v=2"]
    );
}

/// Connects to the gateway.
fn connect(proxy: &Proxy) -> TcpStream {
    TcpStream::connect(("127.0.0.1", proxy.port)).unwrap()
}

/// Reads until the gateway closes the connection: what it sent, or an error if it has not
/// closed it `within` this long.
fn read_to_close(stream: &mut TcpStream, within: Duration) -> Result<Vec<u8>, std::io::Error> {
    let deadline = Instant::now() + within;
    let mut answer = Vec::new();
    let mut buf = [0u8; 1024];
    loop {
        let left = deadline.saturating_duration_since(Instant::now());
        if left.is_zero() {
            return Err(std::io::ErrorKind::TimedOut.into());
        }
        stream.set_read_timeout(Some(left)).unwrap();
        match stream.read(&mut buf) {
            Ok(0) => return Ok(answer),
            Ok(n) => answer.extend_from_slice(&buf[..n]),
            Err(e) if e.kind() == std::io::ErrorKind::ConnectionReset => return Ok(answer),
            Err(e) => return Err(e),
        }
    }
}

#[test]
fn a_client_that_sends_its_headers_slowly_is_cut_off() {
    let server = TestServer::start(Behaviour::default()).unwrap();
    let upstream = Upstream::start();
    let dir = scratch("slowloris");
    grant(&dir);
    let text = config_with(
        &server,
        upstream.port,
        "header_read_timeout_secs = 1\nmax_pending_connections = 4",
        "",
        "",
    );
    let proxy = Proxy::start(&text, &dir, &secrets(&[]));
    let token = server.issue_access_token("app-1", "orders:read", HOUR);

    // A request line, then header lines that never end, at 5 bytes a second: the gateway
    // closes the connection once its 1 s is up, without an answer (the writer stops when the
    // connection is gone).
    let mut stream = connect(&proxy);
    let started = Instant::now();
    let mut writer = stream.try_clone().unwrap();
    let dribble = std::thread::spawn(move || {
        let line = b"GET /orders/1 HTTP/1.1\r\n".iter();
        for &byte in line.chain(b"x-slow: 1\r\n".iter().cycle()) {
            if writer.write_all(&[byte]).is_err() {
                return;
            }
            std::thread::sleep(Duration::from_millis(200));
        }
    });
    let answer = read_to_close(&mut stream, Duration::from_secs(15));
    let took = started.elapsed();
    assert!(
        matches!(&answer, Ok(bytes) if bytes.is_empty()),
        "{answer:?} after {took:?}"
    );
    assert!(
        took >= Duration::from_millis(900) && took < Duration::from_secs(10),
        "closed after {took:?}"
    );
    // (The writer notices within two writes.)
    let _ = stream.shutdown(std::net::Shutdown::Both);
    drop(stream);
    dribble.join().unwrap();

    // A client that sends its request at once is served, on a keep-alive connection too.
    let mut stream = connect(&proxy);
    for _ in 0..2 {
        write!(
            stream,
            "GET /orders/1 HTTP/1.1\r\nhost: 127.0.0.1\r\nauthorization: Bearer {token}\r\n\r\n"
        )
        .unwrap();
        let mut head = [0u8; 12];
        stream.read_exact(&mut head).unwrap();
        assert_eq!(&head, b"HTTP/1.1 200");
        // (The body is the upstream's JSON; the next read starts after it.)
        let mut rest = Vec::new();
        let mut byte = [0u8; 1];
        while !rest.ends_with(b"\r\n\r\n") {
            stream.read_exact(&mut byte).unwrap();
            rest.push(byte[0]);
        }
        let text = String::from_utf8_lossy(&rest).to_ascii_lowercase();
        let length: usize = text
            .split("content-length:")
            .nth(1)
            .and_then(|v| v.split_whitespace().next())
            .and_then(|v| v.parse().ok())
            .unwrap();
        let mut body = vec![0u8; length];
        stream.read_exact(&mut body).unwrap();
    }
    // An idle keep-alive connection is closed after the same timeout.
    let idle = read_to_close(&mut stream, Duration::from_secs(15));
    assert!(matches!(&idle, Ok(bytes) if bytes.is_empty()), "{idle:?}");
}

#[test]
fn connections_still_sending_headers_are_limited() {
    let server = TestServer::start(Behaviour::default()).unwrap();
    let upstream = Upstream::start();
    let dir = scratch("pending");
    let text = config_with(
        &server,
        upstream.port,
        // One worker: with two, each accepting from its own `SO_REUSEPORT` queue, the third
        // connection could be accepted before the second, and the second be the one refused.
        "header_read_timeout_secs = 60\nmax_pending_connections = 2\nworkers = 1",
        "",
        "",
    );
    let proxy = Proxy::start(&text, &dir, &secrets(&[]));
    // Two connections with half a request head each: the limit. (Accepted in the order they
    // connected, so the third is the one beyond it.)
    let mut first = connect(&proxy);
    let mut second = connect(&proxy);
    first.write_all(b"GET /orders/1 HTTP/1.1\r\n").unwrap();
    second.write_all(b"GET /orders/1 HTTP/1.1\r\n").unwrap();
    let mut third = connect(&proxy);
    let started = Instant::now();
    let refused = read_to_close(&mut third, Duration::from_secs(15));
    assert!(
        matches!(&refused, Ok(bytes) if bytes.is_empty()),
        "{refused:?}"
    );
    assert!(started.elapsed() < Duration::from_secs(10));
    proxy.wait_for_log(&[
        "too many connections still sending request headers",
        "max_pending_connections=2",
    ]);
    // One of them goes away: a new client is served again (once the gateway has seen it go).
    drop(first);
    let deadline = Instant::now() + Duration::from_secs(20);
    while get(&proxy.url("/healthz"), None).0 != 200 {
        assert!(Instant::now() < deadline, "{}", proxy.log_text());
        std::thread::sleep(Duration::from_millis(20));
    }
    drop(second);
}

#[test]
fn logs_follow_rust_log_and_log_format_and_never_hold_a_secret() {
    let server = TestServer::start(Behaviour::default()).unwrap();
    let upstream = Upstream::start();
    let dir = scratch("logs");
    grant(&dir);
    // A gateway with `top` in its configuration and `RUST_LOG`; a request that it introspects
    // (with its client secret) and forwards, one with an unknown token; then its log, and the
    // bearer tokens it was sent.
    let run = |top: &str, rust_log: Option<&str>| {
        let mut env = secrets(&[]);
        if let Some(level) = rust_log {
            env.push(("RUST_LOG", level.to_owned()));
        }
        let proxy = Proxy::start(
            &config_with(&server, upstream.port, top, "", ""),
            &dir,
            &env,
        );
        let token = server.issue_access_token("app-1", "orders:read", HOUR);
        let unknown = format!("unknown-{token}");
        assert_eq!(proxy.raw_get("/orders/1", Some(&token)), 200);
        assert_eq!(proxy.raw_get("/orders/1", Some(&unknown)), 401);
        // The request lines wait in the worker's buffer for at most 100 ms.
        proxy.wait_for_log(&["request_id", "401"]);
        let log = proxy.log_text();
        (log, [token, unknown])
    };
    let client_secret = Behaviour::default().client_secret;

    // The default: INFO, text.
    let (log, _) = run("", None);
    assert!(log.contains(" INFO "), "{log}");
    assert!(
        !log.contains("DEBUG") && !log.contains("connection accepted"),
        "{log}"
    );

    // RUST_LOG=debug: the gateway's connection lines appear.
    let (log, _) = run("", Some("debug"));
    assert!(
        log.lines()
            .any(|l| l.contains("DEBUG") && l.contains("connection accepted")),
        "{log}"
    );

    // An invalid RUST_LOG: said so, and INFO.
    let (log, _) = run("", Some("oauth_gateway=loud"));
    assert!(
        log.contains("RUST_LOG \"oauth_gateway=loud\" ignored"),
        "{log}"
    );
    assert!(log.contains(" INFO ") && !log.contains("DEBUG"), "{log}");

    // RUST_LOG=trace, as text and as JSON: everything, and no secret in any form.
    for (top, json) in [("", false), ("log_format = \"json\"", true)] {
        let (log, tokens) = run(top, Some("trace"));
        assert!(log.contains("TRACE"), "{log}");
        for line in log.lines().filter(|l| !l.trim().is_empty()) {
            let parsed = serde_json::from_str::<serde_json::Value>(line);
            assert_eq!(parsed.is_ok(), json, "{line}");
        }
        if json {
            let lines: Vec<serde_json::Value> = log
                .lines()
                .map(|l| serde_json::from_str(l).unwrap())
                .collect();
            assert!(
                lines.iter().any(|l| l["fields"]["message"] == "request"
                    && l["fields"]["status"] == 401
                    && l["level"] == "INFO"),
                "{log}"
            );
        }
        let secrets: Vec<&str> = tokens
            .iter()
            .map(String::as_str)
            .chain([client_secret.as_str()])
            .collect();
        assert_no_secret(&log, &secrets);
    }
}

#[test]
#[should_panic(expected = "the log holds a secret")]
fn the_secret_check_finds_a_basic_header() {
    use base64::Engine as _;
    let b = Behaviour::default();
    // RFC 6749 §2.3.1: each part form-encoded, then base64.
    let header = format!("{}:test-secret~%3F%3A%25%2B%26+with+spaces", b.client_id);
    let log = format!(
        "authorization: Basic {}",
        base64::engine::general_purpose::STANDARD.encode(header)
    );
    assert_no_secret(&log, &[&b.client_secret]);
}
