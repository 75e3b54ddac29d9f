//! What the gateway's process tests share: a scratch directory, an upstream that echoes what it
//! was sent, one `oauth-gateway` process started from a configuration, and HTTP helpers.
// Each test file uses part of it.
#![allow(dead_code)]

use std::collections::BTreeMap;
use std::io::{BufRead as _, BufReader, Read as _, Write as _};
use std::net::{TcpListener, TcpStream};
use std::path::{Path, PathBuf};
use std::process::{Child, Command, Stdio};
use std::sync::atomic::{AtomicUsize, Ordering};
use std::sync::{Arc, Mutex};
use std::time::{Duration, Instant};

use oauth_test_server::{Behaviour, TestServer};

pub(crate) const HOUR: Duration = Duration::from_secs(3600);

pub(crate) fn scratch(name: &str) -> PathBuf {
    static N: AtomicUsize = AtomicUsize::new(0);
    let dir = std::env::temp_dir().join(format!(
        "oauth-proxy-{name}-{}-{}",
        std::process::id(),
        N.fetch_add(1, Ordering::Relaxed)
    ));
    let _ = std::fs::remove_dir_all(&dir);
    std::fs::create_dir_all(&dir).unwrap();
    dir
}

/// An upstream service: answers every request with the headers it received, as JSON; counts,
/// and keeps each request target as it arrived.
pub(crate) struct Upstream {
    pub(crate) port: u16,
    pub(crate) seen: Arc<AtomicUsize>,
    pub(crate) targets: Arc<Mutex<Vec<String>>>,
}

impl Upstream {
    pub(crate) fn start() -> Self {
        let listener = TcpListener::bind("127.0.0.1:0").unwrap();
        let port = listener.local_addr().unwrap().port();
        let seen = Arc::new(AtomicUsize::new(0));
        let targets = Arc::new(Mutex::new(Vec::new()));
        let (counter, kept) = (Arc::clone(&seen), Arc::clone(&targets));
        std::thread::spawn(move || {
            for stream in listener.incoming() {
                let Ok(stream) = stream else { continue };
                let (counter, kept) = (Arc::clone(&counter), Arc::clone(&kept));
                std::thread::spawn(move || {
                    let mut reader = BufReader::new(stream);
                    loop {
                        let mut headers = serde_json::Map::new();
                        let mut line = String::new();
                        if reader.read_line(&mut line).unwrap_or(0) == 0 {
                            return;
                        }
                        let request_line = line.clone();
                        let mut length = 0usize;
                        loop {
                            line.clear();
                            if reader.read_line(&mut line).unwrap_or(0) == 0 {
                                return;
                            }
                            let l = line.trim_end();
                            if l.is_empty() {
                                break;
                            }
                            if let Some((n, v)) = l.split_once(':') {
                                let n = n.trim().to_ascii_lowercase();
                                if n == "content-length" {
                                    length = v.trim().parse().unwrap_or(0);
                                }
                                headers.insert(n, v.trim().into());
                            }
                        }
                        let mut body = vec![0; length];
                        if reader.read_exact(&mut body).is_err() {
                            return;
                        }
                        // A chunked body is read to its end (its size in `x-body-bytes`).
                        if headers.get("transfer-encoding").and_then(|v| v.as_str())
                            == Some("chunked")
                        {
                            let mut total = 0usize;
                            loop {
                                line.clear();
                                if reader.read_line(&mut line).unwrap_or(0) == 0 {
                                    return;
                                }
                                let size = usize::from_str_radix(line.trim(), 16).unwrap_or(0);
                                let mut chunk = vec![0; size + 2];
                                if reader.read_exact(&mut chunk).is_err() {
                                    return;
                                }
                                total += size;
                                if size == 0 {
                                    break;
                                }
                            }
                            headers.insert("x-body-bytes".into(), total.into());
                        }
                        if let Some(target) = request_line.split_whitespace().nth(1) {
                            kept.lock().unwrap().push(target.to_owned());
                        }
                        counter.fetch_add(1, Ordering::Relaxed);
                        if request_line.contains("/slow") {
                            std::thread::sleep(Duration::from_millis(800));
                        }
                        let json = serde_json::Value::Object(headers).to_string();
                        let answer = format!(
                            "HTTP/1.1 200 OK\r\ncontent-type: application/json\r\ncontent-length: {}\r\n\r\n{json}",
                            json.len()
                        );
                        if reader.get_mut().write_all(answer.as_bytes()).is_err() {
                            return;
                        }
                    }
                });
            }
        });
        Self {
            port,
            seen,
            targets,
        }
    }

    /// The request targets received so far.
    pub(crate) fn targets(&self) -> Vec<String> {
        self.targets.lock().unwrap().clone()
    }
}

/// One `oauth-gateway` process.
pub(crate) struct Proxy {
    pub(crate) child: Child,
    pub(crate) port: u16,
    pub(crate) log: PathBuf,
    /// Its configuration file.
    pub(crate) config: PathBuf,
}

impl Proxy {
    /// Starts a gateway on a port the system chooses (read from its "ready" line, so no other
    /// listener can be mistaken for it) and waits for its health check. `RUST_LOG` is not
    /// inherited from the test's environment; `env` may set it.
    pub(crate) fn start(config: &str, dir: &Path, env: &[(&str, String)]) -> Self {
        static N: AtomicUsize = AtomicUsize::new(0);
        let n = N.fetch_add(1, Ordering::Relaxed);
        let path = dir.join(format!("gateway-{n}.toml"));
        std::fs::write(&path, format!("listen = \"127.0.0.1:0\"\n{config}")).unwrap();
        let log = dir.join(format!("gateway-{n}.log"));
        let mut cmd = Command::new(env!("CARGO_BIN_EXE_oauth-gateway"));
        cmd.arg("--config")
            .arg(&path)
            .current_dir(dir)
            .env_remove("RUST_LOG")
            .stdout(Stdio::null())
            .stderr(std::fs::File::create(&log).unwrap());
        for (k, v) in env {
            cmd.env(k, v);
        }
        let mut proxy = Self {
            child: cmd.spawn().unwrap(),
            port: 0,
            log,
            config: path,
        };
        let deadline = Instant::now() + Duration::from_secs(20);
        loop {
            // The text format (`listen=127.0.0.1:port`) or JSON (`"listen":"127.0.0.1:port"`).
            let port = proxy.log_text().lines().find_map(|l| {
                if !l.contains("oauth-gateway ready") {
                    return None;
                }
                let rest = l
                    .split("listen=127.0.0.1:")
                    .nth(1)
                    .or_else(|| l.split("\"listen\":\"127.0.0.1:").nth(1))?;
                let digits: String = rest.chars().take_while(char::is_ascii_digit).collect();
                digits.parse::<u16>().ok()
            });
            if let Some(port) = port {
                proxy.port = port;
                break;
            }
            assert!(
                proxy.child.try_wait().unwrap().is_none(),
                "the gateway exited: {}",
                proxy.log_text()
            );
            assert!(
                Instant::now() < deadline,
                "the gateway did not start: {}",
                proxy.log_text()
            );
            std::thread::sleep(Duration::from_millis(20));
        }
        // An HTTPS listener is checked by its test, with its CA.
        if !config.contains("\n[tls]") {
            assert_eq!(get(&proxy.url("/healthz"), None), (200, "ok".to_owned()));
        }
        proxy
    }

    /// The admin listener's URL for `path` (from its "ready" line).
    pub(crate) fn admin_url(&self, path: &str) -> String {
        self.wait_for_log(&["metrics and health checks ready"]);
        let port: String = self
            .log_text()
            .lines()
            .find(|l| l.contains("metrics and health checks ready"))
            .and_then(|l| l.split("admin_listen=127.0.0.1:").nth(1))
            .map(|rest| rest.chars().take_while(char::is_ascii_digit).collect())
            .unwrap_or_default();
        format!("http://127.0.0.1:{port}{path}")
    }

    /// Sends the gateway a signal (`HUP`, `TERM`).
    pub(crate) fn signal(&self, name: &str) {
        let status = Command::new("kill")
            .arg(format!("-{name}"))
            .arg(self.child.id().to_string())
            .status()
            .unwrap();
        assert!(status.success());
    }

    /// Waits (at most 10 s) until the gateway's log has a line containing every one of `parts`.
    pub(crate) fn wait_for_log(&self, parts: &[&str]) {
        let deadline = Instant::now() + Duration::from_secs(10);
        while !self
            .log_text()
            .lines()
            .any(|l| parts.iter().all(|p| l.contains(p)))
        {
            assert!(
                Instant::now() < deadline,
                "no log line with {parts:?}: {}",
                self.log_text()
            );
            std::thread::sleep(Duration::from_millis(20));
        }
    }

    pub(crate) fn url(&self, path: &str) -> String {
        format!("http://127.0.0.1:{}{path}", self.port)
    }

    pub(crate) fn log_text(&self) -> String {
        std::fs::read_to_string(&self.log).unwrap_or_default()
    }

    /// Sends `GET target` exactly as written (no client-side normalisation) on a new
    /// connection and returns the status (0 if the connection closed without an answer).
    pub(crate) fn raw_get(&self, target: &str, token: Option<&str>) -> u16 {
        let mut stream = TcpStream::connect(("127.0.0.1", self.port)).unwrap();
        stream
            .set_read_timeout(Some(Duration::from_secs(10)))
            .unwrap();
        let auth = token.map_or(String::new(), |t| format!("authorization: Bearer {t}\r\n"));
        write!(
            stream,
            "GET {target} HTTP/1.1\r\nhost: 127.0.0.1\r\n{auth}connection: close\r\n\r\n"
        )
        .unwrap();
        let mut answer = String::new();
        let _ = stream.read_to_string(&mut answer);
        answer
            .strip_prefix("HTTP/1.1 ")
            .and_then(|rest| rest.get(..3))
            .and_then(|code| code.parse().ok())
            .unwrap_or(0)
    }
}

impl Drop for Proxy {
    fn drop(&mut self) {
        let _ = self.child.kill();
        let _ = self.child.wait();
    }
}

pub(crate) fn agent() -> ureq::Agent {
    ureq::Agent::config_builder()
        .http_status_as_error(false)
        .timeout_global(Some(Duration::from_secs(10)))
        .build()
        .into()
}

/// GET with an optional bearer token: the status and the body.
pub(crate) fn get(url: &str, token: Option<&str>) -> (u16, String) {
    get_with(url, token, &[])
}

pub(crate) fn get_with(url: &str, token: Option<&str>, headers: &[(&str, &str)]) -> (u16, String) {
    let mut request = agent().get(url);
    if let Some(token) = token {
        request = request.header("authorization", &format!("Bearer {token}"));
    }
    for (n, v) in headers {
        request = request.header(*n, *v);
    }
    match request.call() {
        Ok(mut r) => (
            r.status().as_u16(),
            r.body_mut().read_to_string().unwrap_or_default(),
        ),
        Err(_) => (0, String::new()),
    }
}

/// A configuration for one `/orders` route (API `orders`, scope `orders:read`) in front of the
/// upstream on `upstream`, introspecting at `server`; `contracts` and `cache` are TOML added in
/// their sections, `top` is TOML added at the top level.
pub(crate) fn config_with(
    server: &TestServer,
    upstream: u16,
    top: &str,
    contracts: &str,
    cache: &str,
) -> String {
    let ca = server.ca_pem();
    let dir = scratch("ca");
    let ca_path = dir.join("ca.pem");
    std::fs::write(&ca_path, ca).unwrap();
    format!(
        r#"upstream = "http://127.0.0.1:{upstream}/svc"
upstream_timeout_secs = 5
{top}

[introspection]
endpoint = "{endpoint}"
client_id = "{client}"
client_secret_env = "GATEWAY_SECRET"
ca_file = "{ca}"

{contracts}

[cache]
max_age_secs = 60
{cache}

[[route]]
prefix = "/orders"
api = "orders"
scopes = ["orders:read"]
"#,
        endpoint = server.url("/introspect"),
        client = Behaviour::default().client_id,
        ca = ca_path.display(),
    )
}

pub(crate) fn config(server: &TestServer, upstream: u16, contracts: &str, cache: &str) -> String {
    config_with(server, upstream, "", contracts, cache)
}

pub(crate) fn secrets(extra: &[(&str, String)]) -> Vec<(&'static str, String)> {
    let mut env = vec![("GATEWAY_SECRET", Behaviour::default().client_secret)];
    for (k, v) in extra {
        env.push((Box::leak(k.to_string().into_boxed_str()), v.clone()));
    }
    env
}

/// `text` as an `application/x-www-form-urlencoded` value (RFC 6749 appendix B).
fn form_encoded(text: &str) -> String {
    text.bytes()
        .map(|b| match b {
            b'A'..=b'Z' | b'a'..=b'z' | b'0'..=b'9' | b'-' | b'.' | b'_' | b'*' => {
                char::from(b).to_string()
            }
            b' ' => "+".to_owned(),
            _ => format!("%{b:02X}"),
        })
        .collect()
}

/// Fragments of every form in which `secret` could reach a log: as it is, form-encoded, and,
/// for its longest prefix that no encoding changes (its stem), in hex and in base64 (standard
/// and URL-safe, at each of the three alignments, alone and after `client_id:` as in a Basic
/// header), so that a differently encoded tail or what surrounds it does not hide it.
fn forms(secret: &str, client_id: &str) -> Vec<String> {
    use base64::Engine as _;
    use base64::engine::general_purpose::{STANDARD_NO_PAD, URL_SAFE_NO_PAD};
    let stem: String = secret
        .chars()
        .take_while(|c| c.is_ascii_alphanumeric() || "-._".contains(*c))
        .collect();
    assert!(
        stem.len() >= 8,
        "the secret {secret:?} needs a longer plain prefix"
    );
    let mut forms = vec![
        secret.to_owned(),
        form_encoded(secret),
        stem.clone(),
        stem.bytes().map(|b| format!("{b:02x}")).collect(),
    ];
    for text in [stem.clone(), format!("{client_id}:{stem}")] {
        for shift in 0..3 {
            // `shift` bytes before it: the first group holds them, the last may hold what
            // follows; only the groups in between are certain.
            let mut bytes = vec![0u8; shift];
            bytes.extend_from_slice(text.as_bytes());
            let whole = bytes.len() / 3 * 3;
            let skip = if shift == 0 { 0 } else { 4 };
            for engine in [&STANDARD_NO_PAD, &URL_SAFE_NO_PAD] {
                let encoded = engine.encode(&bytes[..whole]);
                forms.push(encoded[skip..].to_owned());
            }
        }
    }
    forms
}

/// Panics if `log` holds any of `secrets` in any of the forms [`forms`] lists.
pub(crate) fn assert_no_secret(log: &str, secrets: &[&str]) {
    let client_id = Behaviour::default().client_id;
    for secret in secrets {
        for form in forms(secret, &client_id) {
            assert!(
                !log.contains(&form),
                "the log holds a secret ({secret:?} as {form:?})"
            );
        }
    }
}

/// Contracts for `app-1` on `orders` and `files`.
pub(crate) fn grant_orders_and_files(dir: &Path) {
    let store = oauth_gateway::RedbContracts::open(dir.join("contracts.redb")).unwrap();
    let mut set = oauth_gateway::ContractSet::new();
    set.insert(oauth_gateway::Contract::new("app-1", "orders"));
    set.insert(oauth_gateway::Contract::new("app-1", "files"));
    store.replace_all(&set).unwrap();
}

/// The top of a configuration introspecting at `server`, with `top` added (keys before the
/// sections) and `routes` after.
pub(crate) fn config_for(server: &TestServer, dir: &Path, top: &str, routes: &str) -> String {
    let ca = dir.join("as-ca.pem");
    std::fs::write(&ca, server.ca_pem()).unwrap();
    format!(
        r#"{top}
[introspection]
endpoint = "{introspect}"
client_id = "{client}"
client_secret_env = "GATEWAY_SECRET"
ca_file = "{ca}"
{routes}"#,
        introspect = server.url("/introspect"),
        client = Behaviour::default().client_id,
        ca = ca.display(),
    )
}

/// Sends `head` (a request line and headers, without the blank line) and `body` on a new
/// connection; returns the status line's code and the whole answer.
pub(crate) fn raw(port: u16, head: &str, body: &[u8]) -> (u16, String) {
    let mut stream = TcpStream::connect(("127.0.0.1", port)).unwrap();
    stream
        .set_read_timeout(Some(Duration::from_secs(10)))
        .unwrap();
    stream
        .write_all(format!("{head}\r\n\r\n").as_bytes())
        .unwrap();
    // The gateway may answer (and close) before it has read the body.
    let _ = stream.write_all(body);
    let mut answer = Vec::new();
    let _ = stream.read_to_end(&mut answer);
    let answer = String::from_utf8_lossy(&answer).into_owned();
    let status = answer
        .strip_prefix("HTTP/1.1 ")
        .and_then(|rest| rest.get(..3))
        .and_then(|code| code.parse().ok())
        .unwrap_or(0);
    (status, answer)
}

/// The samples of a Prometheus text exposition, read by a Prometheus text-format parser
/// (prometheus-parse), after checking that every line is a comment, a type, help or a
/// sample (the parser skips what it cannot read). Keyed by name and labels sorted by name
/// (`name{a="1",b="2"}`); a histogram's buckets as `name_bucket{...,le="0.005"}`, its sum
/// and count as written.
pub(crate) fn samples(text: &str) -> BTreeMap<String, f64> {
    use prometheus_parse::{LineInfo, Scrape, Value};
    for line in text.lines() {
        assert_ne!(
            LineInfo::parse(line),
            LineInfo::Ignored,
            "not the Prometheus text format: {line:?}"
        );
    }
    let scrape = Scrape::parse(text.lines().map(|l| Ok(l.to_owned()))).unwrap();
    let key = |name: &str, labels: String| {
        if labels.is_empty() {
            name.to_owned()
        } else {
            format!("{name}{{{labels}}}")
        }
    };
    let mut samples = BTreeMap::new();
    for sample in scrape.samples {
        let labels = sample.labels.to_string();
        match sample.value {
            Value::Counter(v) | Value::Gauge(v) | Value::Untyped(v) => {
                assert!(
                    samples.insert(key(&sample.metric, labels), v).is_none(),
                    "a sample written twice"
                );
            }
            Value::Histogram(buckets) => {
                let name = format!("{}_bucket", sample.metric);
                for b in buckets {
                    let le = if b.less_than.is_infinite() {
                        "+Inf".to_owned()
                    } else {
                        b.less_than.to_string()
                    };
                    let labels = if labels.is_empty() {
                        format!("le=\"{le}\"")
                    } else {
                        format!("{labels},le=\"{le}\"")
                    };
                    samples.insert(key(&name, labels), b.count);
                }
            }
            Value::Summary(_) => panic!("no summary is exposed"),
        }
    }
    samples
}
