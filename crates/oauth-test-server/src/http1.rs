//! A minimal HTTP/1.1 server: one thread per connection, keep-alive, `Content-Length` bodies.
//!
//! Written for tests: it reads what real clients (reqwest, ureq) send and nothing more, and it
//! can be told to misbehave (delays, oversize bodies) by the handler.

use std::io::{self, BufRead, BufReader, Read, Write};
use std::net::{Shutdown, SocketAddr, TcpListener, TcpStream};
use std::sync::Arc;
use std::sync::atomic::{AtomicBool, Ordering};
use std::thread;
use std::time::Duration;

/// Largest request head and body the server accepts.
const MAX_HEAD: usize = 64 * 1024;
const MAX_BODY: usize = 4 * 1024 * 1024;

/// A request as the server read it.
#[derive(Clone, Debug)]
pub struct Request {
    /// `GET`, `POST`, …
    pub method: String,
    /// The path, without the query.
    pub path: String,
    /// The raw query string (without `?`), if any.
    pub query: Option<String>,
    /// Header names in lowercase, in the order received.
    pub headers: Vec<(String, String)>,
    /// The body.
    pub body: Vec<u8>,
    /// The certificate chain the client presented in the TLS handshake (DER, its own
    /// certificate first); empty when it presented none, or over plain HTTP.
    pub client_certificates: Vec<Vec<u8>>,
}

impl Request {
    /// The first header with this (lowercase) name.
    pub fn header(&self, name: &str) -> Option<&str> {
        self.headers
            .iter()
            .find(|(n, _)| n == name)
            .map(|(_, v)| v.as_str())
    }
}

/// A response to write.
#[derive(Clone, Debug)]
pub struct Response {
    /// Status code.
    pub status: u16,
    /// Headers (besides `content-length`).
    pub headers: Vec<(String, String)>,
    /// Body.
    pub body: Vec<u8>,
    /// Sleep this long before writing (a slow server).
    pub delay: Duration,
}

impl Response {
    /// A response with a status, a content type and a body.
    pub fn new(status: u16, content_type: &str, body: impl Into<Vec<u8>>) -> Self {
        Self {
            status,
            headers: vec![("content-type".into(), content_type.into())],
            body: body.into(),
            delay: Duration::ZERO,
        }
    }

    /// A JSON response.
    pub fn json(status: u16, value: &serde_json::Value) -> Self {
        Self::new(status, "application/json", value.to_string())
    }

    /// Adds a header.
    pub fn header(mut self, name: &str, value: &str) -> Self {
        self.headers.push((name.into(), value.into()));
        self
    }
}

pub(crate) type Handler = dyn Fn(&Request) -> Response + Send + Sync;

/// Accepts connections until `stop` is set, serving each on its own thread.
pub(crate) fn serve(
    listener: TcpListener,
    tls: Option<Arc<rustls::ServerConfig>>,
    handler: Arc<Handler>,
    stop: Arc<AtomicBool>,
) {
    for stream in listener.incoming() {
        if stop.load(Ordering::Acquire) {
            break;
        }
        let Ok(stream) = stream else { continue };
        let handler = handler.clone();
        let tls = tls.clone();
        let stop = stop.clone();
        thread::spawn(move || {
            let _ = stream.set_read_timeout(Some(Duration::from_secs(30)));
            let _ = stream.set_nodelay(true);
            let result = match tls {
                Some(config) => match rustls::ServerConnection::new(config) {
                    Ok(conn) => {
                        let tls = rustls::StreamOwned::new(conn, stream);
                        connection(tls, &*handler, &stop)
                    }
                    Err(e) => Err(io::Error::other(e)),
                },
                None => connection(stream, &*handler, &stop),
            };
            drop(result);
        });
    }
}

/// Unblocks a listener's `accept` so that [`serve`] sees the stop flag.
pub(crate) fn wake(addr: SocketAddr) {
    if let Ok(s) = TcpStream::connect_timeout(&addr, Duration::from_secs(1)) {
        let _ = s.shutdown(Shutdown::Both);
    }
}

/// A connection that may know the client's certificate chain.
trait PeerCertificates {
    /// The chain the client presented (DER, its own certificate first).
    fn peer_certificates(&self) -> Vec<Vec<u8>>;
}

impl PeerCertificates for TcpStream {
    fn peer_certificates(&self) -> Vec<Vec<u8>> {
        Vec::new()
    }
}

impl PeerCertificates for rustls::StreamOwned<rustls::ServerConnection, TcpStream> {
    fn peer_certificates(&self) -> Vec<Vec<u8>> {
        self.conn
            .peer_certificates()
            .map(|chain| chain.iter().map(|c| c.as_ref().to_vec()).collect())
            .unwrap_or_default()
    }
}

fn connection<S: Read + Write + PeerCertificates>(
    stream: S,
    handler: &Handler,
    stop: &AtomicBool,
) -> io::Result<()> {
    let mut reader = BufReader::new(stream);
    loop {
        let Some(mut request) = read_request(&mut reader)? else {
            return Ok(());
        };
        // Known once the handshake is done, which reading the request completed.
        request.client_certificates = reader.get_ref().peer_certificates();
        let close = request
            .header("connection")
            .is_some_and(|v| v.eq_ignore_ascii_case("close"));
        let response = handler(&request);
        if !response.delay.is_zero() {
            thread::sleep(response.delay);
        }
        write_response(reader.get_mut(), &response)?;
        if close || stop.load(Ordering::Acquire) {
            return Ok(());
        }
    }
}

fn read_request<R: BufRead>(reader: &mut R) -> io::Result<Option<Request>> {
    let mut head = Vec::new();
    loop {
        let before = head.len();
        let n = reader.by_ref().take(8192).read_until(b'\n', &mut head)?;
        if n == 0 {
            return if head.is_empty() {
                Ok(None)
            } else {
                Err(io::ErrorKind::UnexpectedEof.into())
            };
        }
        if head.len() > MAX_HEAD {
            return Err(io::Error::other("request head too large"));
        }
        let line = &head[before..];
        if line == b"\r\n" || line == b"\n" {
            if before == 0 {
                head.clear(); // tolerate a stray empty line between requests
                continue;
            }
            break;
        }
    }
    let text = String::from_utf8(head).map_err(io::Error::other)?;
    let mut lines = text.lines();
    let request_line = lines.next().unwrap_or_default();
    let mut parts = request_line.split(' ');
    let method = parts.next().unwrap_or_default().to_owned();
    let target = parts.next().unwrap_or_default();
    let (path, query) = match target.split_once('?') {
        Some((p, q)) => (p.to_owned(), Some(q.to_owned())),
        None => (target.to_owned(), None),
    };
    let mut headers = Vec::new();
    for line in lines {
        if let Some((name, value)) = line.split_once(':') {
            headers.push((name.trim().to_ascii_lowercase(), value.trim().to_owned()));
        }
    }
    if path == "/upload" {
        // Streamed: counted and hashed as it arrives, never held (the clients' streaming tests
        // send more than `MAX_BODY`).
        let (bytes, sha256) = stream_body(reader, &headers)?;
        headers.push(("x-upload-bytes".into(), bytes.to_string()));
        headers.push(("x-upload-sha256".into(), sha256));
        return Ok(Some(Request {
            method,
            path,
            query,
            headers,
            body: Vec::new(),
            client_certificates: Vec::new(),
        }));
    }
    let len = headers
        .iter()
        .find(|(n, _)| n == "content-length")
        .map(|(_, v)| v.parse::<usize>())
        .transpose()
        .map_err(io::Error::other)?
        .unwrap_or(0);
    if len > MAX_BODY {
        return Err(io::Error::other("request body too large"));
    }
    let mut body = vec![0; len];
    reader.read_exact(&mut body)?;
    Ok(Some(Request {
        method,
        path,
        query,
        headers,
        body,
        client_certificates: Vec::new(),
    }))
}

/// Reads a body (`Content-Length` or chunked) without keeping it: its length and SHA-256 (hex).
fn stream_body<R: BufRead>(
    reader: &mut R,
    headers: &[(String, String)],
) -> io::Result<(u64, String)> {
    let header = |name: &str| {
        headers
            .iter()
            .find(|(n, _)| n == name)
            .map(|(_, v)| v.as_str())
    };
    let mut digest = ring::digest::Context::new(&ring::digest::SHA256);
    let mut total = 0u64;
    let mut buf = vec![0u8; 64 * 1024];
    let mut copy = |reader: &mut R, mut n: u64| -> io::Result<()> {
        while n > 0 {
            let want = n.min(buf.len() as u64) as usize;
            let got = reader.read(&mut buf[..want])?;
            if got == 0 {
                return Err(io::ErrorKind::UnexpectedEof.into());
            }
            digest.update(&buf[..got]);
            total += got as u64;
            n -= got as u64;
        }
        Ok(())
    };
    if header("transfer-encoding").is_some_and(|v| v.eq_ignore_ascii_case("chunked")) {
        loop {
            let mut line = String::new();
            reader.read_line(&mut line)?;
            let size = line.trim().split(';').next().unwrap_or_default();
            let size = u64::from_str_radix(size, 16).map_err(io::Error::other)?;
            if size == 0 {
                // Trailers (none expected) up to the empty line.
                loop {
                    line.clear();
                    reader.read_line(&mut line)?;
                    if line.trim().is_empty() {
                        break;
                    }
                }
                break;
            }
            copy(reader, size)?;
            line.clear();
            reader.read_line(&mut line)?;
        }
    } else {
        let len = header("content-length")
            .map_or(Ok(0), |v| v.parse::<u64>().map_err(io::Error::other))?;
        copy(reader, len)?;
    }
    let hex = digest
        .finish()
        .as_ref()
        .iter()
        .map(|b| format!("{b:02x}"))
        .collect();
    Ok((total, hex))
}

fn write_response<W: Write>(w: &mut W, response: &Response) -> io::Result<()> {
    let mut head = format!(
        "HTTP/1.1 {} {}\r\ncontent-length: {}\r\n",
        response.status,
        reason(response.status),
        response.body.len()
    );
    for (name, value) in &response.headers {
        head.push_str(name);
        head.push_str(": ");
        head.push_str(value);
        head.push_str("\r\n");
    }
    head.push_str("\r\n");
    w.write_all(head.as_bytes())?;
    w.write_all(&response.body)?;
    w.flush()
}

fn reason(status: u16) -> &'static str {
    match status {
        200 => "OK",
        302 => "Found",
        307 => "Temporary Redirect",
        400 => "Bad Request",
        401 => "Unauthorized",
        403 => "Forbidden",
        404 => "Not Found",
        429 => "Too Many Requests",
        500 => "Internal Server Error",
        502 => "Bad Gateway",
        503 => "Service Unavailable",
        _ => "Status",
    }
}
