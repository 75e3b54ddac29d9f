//! The gateway's upstream connections, seen from a raw TCP upstream that counts them: reused
//! while their answers are read to the end (bodies, empty bodies, `HEAD`), replaced when the
//! upstream closes them, and not reused when an answer is abandoned half-read.
#![allow(clippy::unwrap_used, clippy::expect_used, clippy::panic)]

mod support;

use std::io::{BufRead as _, BufReader, Read as _, Write as _};
use std::net::{TcpListener, TcpStream};
use std::sync::Arc;
use std::sync::atomic::{AtomicUsize, Ordering};
use std::time::Duration;

use oauth_test_server::{Behaviour, TestServer};
use support::{HOUR, Proxy, config_for, scratch, secrets};

/// An upstream that counts the connections it accepts and answers by path: `/small` 200 with
/// 5 bytes, `/empty` 204, `/big` 200 with `BIG` bytes. With `close_after_each`, it closes each
/// connection after one answer, without saying so (as an upstream whose keep-alive timeout has
/// just run out).
struct Counting {
    port: u16,
    accepted: Arc<AtomicUsize>,
}

const BIG: usize = 64 << 20;

impl Counting {
    fn start(close_after_each: bool) -> Self {
        let listener = TcpListener::bind("127.0.0.1:0").unwrap();
        let port = listener.local_addr().unwrap().port();
        let accepted = Arc::new(AtomicUsize::new(0));
        let counter = Arc::clone(&accepted);
        std::thread::spawn(move || {
            for stream in listener.incoming() {
                let Ok(stream) = stream else { continue };
                counter.fetch_add(1, Ordering::SeqCst);
                std::thread::spawn(move || serve(stream, close_after_each));
            }
        });
        Self { port, accepted }
    }

    fn accepted(&self) -> usize {
        self.accepted.load(Ordering::SeqCst)
    }
}

fn serve(stream: TcpStream, close_after_each: bool) {
    let mut reader = BufReader::new(stream.try_clone().unwrap());
    let mut writer = stream;
    loop {
        let mut line = String::new();
        if reader.read_line(&mut line).unwrap_or(0) == 0 {
            return;
        }
        let mut parts = line.split_whitespace();
        let (method, target) = (
            parts.next().unwrap_or("").to_owned(),
            parts.next().unwrap_or("").to_owned(),
        );
        loop {
            let mut header = String::new();
            if reader.read_line(&mut header).unwrap_or(0) == 0 {
                return;
            }
            if header.trim_end().is_empty() {
                break;
            }
        }
        let written = match target.as_str() {
            "/empty" => writer.write_all(b"HTTP/1.1 204 No Content\r\n\r\n"),
            "/big" => writer
                .write_all(format!("HTTP/1.1 200 OK\r\ncontent-length: {BIG}\r\n\r\n").as_bytes())
                .and_then(|()| {
                    let chunk = vec![b'x'; 1 << 20];
                    (0..BIG / chunk.len()).try_for_each(|_| writer.write_all(&chunk))
                }),
            _ => {
                let head = b"HTTP/1.1 200 OK\r\ncontent-length: 5\r\n\r\n";
                let body: &[u8] = if method == "HEAD" { b"" } else { b"hello" };
                writer.write_all(&[&head[..], body].concat())
            }
        };
        if written.is_err() || close_after_each {
            return;
        }
    }
}

fn gateway(server: &TestServer, upstream: u16, name: &str) -> Proxy {
    let dir = scratch(name);
    let routes = r#"
[[route]]
prefix = "/"
api = "any"
require_contract = false
"#;
    // One worker: every request of these tests goes through the same pool.
    let top = format!("upstream = \"http://127.0.0.1:{upstream}\"\nworkers = 1");
    Proxy::start(&config_for(server, &dir, &top, routes), &dir, &secrets(&[]))
}

/// One request on a connection of its own; its status, headers (lowercased) and body.
fn request(port: u16, method: &str, path: &str, token: &str) -> (u16, String, Vec<u8>) {
    let mut stream = TcpStream::connect(("127.0.0.1", port)).unwrap();
    stream
        .set_read_timeout(Some(Duration::from_secs(10)))
        .unwrap();
    write!(
        stream,
        "{method} {path} HTTP/1.1\r\nhost: gw\r\nauthorization: Bearer {token}\r\nconnection: close\r\n\r\n"
    )
    .unwrap();
    let mut answer = Vec::new();
    stream.read_to_end(&mut answer).unwrap();
    let end = answer
        .windows(4)
        .position(|w| w == b"\r\n\r\n")
        .expect("a whole head");
    let head = String::from_utf8_lossy(&answer[..end]).to_ascii_lowercase();
    let status = head[9..12].parse().unwrap();
    (status, head, answer[end + 4..].to_vec())
}

#[test]
fn answers_read_to_their_end_give_their_connection_back() {
    let server = TestServer::start(Behaviour::default()).unwrap();
    let upstream = Counting::start(false);
    let proxy = gateway(&server, upstream.port, "pool-reuse");
    let token = server.issue_access_token("app-1", "any", HOUR);
    for _ in 0..10 {
        let (status, head, body) = request(proxy.port, "GET", "/small", &token);
        assert_eq!((status, body.as_slice()), (200, &b"hello"[..]));
        // The length is passed on as the upstream gave it (no chunking).
        assert!(head.contains("content-length: 5"), "{head}");
        assert_eq!(request(proxy.port, "GET", "/empty", &token).0, 204);
        let (status, head, body) = request(proxy.port, "HEAD", "/small", &token);
        assert_eq!((status, body.len()), (200, 0));
        assert!(head.contains("content-length: 5"), "{head}");
    }
    // Thirty answers, one after the other, over one connection.
    assert_eq!(upstream.accepted(), 1);
}

#[test]
fn a_connection_the_upstream_closed_is_replaced() {
    let server = TestServer::start(Behaviour::default()).unwrap();
    let upstream = Counting::start(true);
    let proxy = gateway(&server, upstream.port, "pool-closed");
    let token = server.issue_access_token("app-1", "any", HOUR);
    for _ in 0..5 {
        let (status, _, body) = request(proxy.port, "GET", "/small", &token);
        assert_eq!((status, body.as_slice()), (200, &b"hello"[..]));
        // The upstream's close arrives before the next request.
        std::thread::sleep(Duration::from_millis(50));
    }
    assert_eq!(upstream.accepted(), 5);
}

#[test]
fn an_answer_abandoned_half_read_does_not_leave_its_connection_in_the_pool() {
    let server = TestServer::start(Behaviour::default()).unwrap();
    let upstream = Counting::start(false);
    let proxy = gateway(&server, upstream.port, "pool-abandoned");
    let token = server.issue_access_token("app-1", "any", HOUR);
    {
        let mut stream = TcpStream::connect(("127.0.0.1", proxy.port)).unwrap();
        write!(
            stream,
            "GET /big HTTP/1.1\r\nhost: gw\r\nauthorization: Bearer {token}\r\n\r\n"
        )
        .unwrap();
        let mut start = [0u8; 4096];
        stream.read_exact(&mut start).unwrap();
        assert!(start.starts_with(b"HTTP/1.1 200"));
        // Gone with most of the 64 MiB still to come.
    }
    std::thread::sleep(Duration::from_millis(200));
    let (status, _, body) = request(proxy.port, "GET", "/small", &token);
    assert_eq!((status, body.as_slice()), (200, &b"hello"[..]));
    // The half-read answer's connection was closed, not given to the next request.
    assert_eq!(upstream.accepted(), 2);
}
