//! Every `tracing` event both gateways emit while they allow, deny, cache, and fail to reach
//! the introspection endpoint: no access token and no gateway credential appears in any of
//! them, nor in any denial's text.
#![allow(clippy::unwrap_used, clippy::expect_used, clippy::panic)]

use std::io::Write;
use std::sync::{Arc, Mutex};
use std::time::Duration;

use oauth_core::http::{Request, header};
use oauth_core::{Client, ClientAuthentication, ClientSecret};
use oauth_gateway::{ApiPolicy, BlockingGateway, CacheConfig, Contract, Gateway, MemoryContracts};
use oauth_test_server::{Behaviour, TestServer};

#[derive(Clone, Default)]
struct Capture(Arc<Mutex<Vec<u8>>>);

impl Write for Capture {
    fn write(&mut self, buf: &[u8]) -> std::io::Result<usize> {
        self.0.lock().unwrap().extend_from_slice(buf);
        Ok(buf.len())
    }
    fn flush(&mut self) -> std::io::Result<()> {
        Ok(())
    }
}

/// The bytes in hex-dump rows (`xxxx xxxx ...`, as ureq's protocol crate writes at TRACE),
/// decoded and joined, so that a secret split over rows is still found.
fn hex_dumped_bytes(log: &str) -> Vec<u8> {
    let mut out = Vec::new();
    for line in log.lines() {
        let digits: String = line
            .split_whitespace()
            .filter(|w| w.len() == 4 && w.bytes().all(|b| b.is_ascii_hexdigit()))
            .collect();
        for pair in digits.as_bytes().chunks(2) {
            if let Ok(byte) = u8::from_str_radix(std::str::from_utf8(pair).unwrap_or(""), 16) {
                out.push(byte);
            }
        }
    }
    out
}

#[test]
fn no_secret_in_gateway_logs() {
    // The usual set-up: `log` records bridged into `tracing`, everything at TRACE.
    tracing_log::LogTracer::init().unwrap();
    let capture = Capture::default();
    let writer = capture.clone();
    tracing::subscriber::set_global_default(
        tracing_subscriber::fmt()
            .with_max_level(tracing::Level::TRACE)
            .with_ansi(false)
            .with_writer(move || writer.clone())
            .finish(),
    )
    .unwrap();

    let server = TestServer::start(Behaviour::default()).unwrap();
    let b = Behaviour::default();
    let mut secrets = vec![
        b.client_secret.clone(),
        "wrong-gateway-secret-123".to_owned(),
    ];
    let contracts = Arc::new(MemoryContracts::new());
    contracts.grant(Contract::new("app-1", "orders"));
    let policy = || ApiPolicy::new("orders").require_scope(["orders:read"]);
    let cache = CacheConfig::new().negative_ttl(Duration::ZERO);
    let credentials = |secret: &str| {
        Client::new(
            b.client_id.as_str(),
            ClientAuthentication::SecretBasic(ClientSecret::new(secret)),
        )
    };
    let blocking = |secret: &str| {
        let http = oauth_ureq::HttpClient::new(
            oauth_ureq::HttpConfig::new()
                .add_root_certificates_pem(server.ca_pem().as_bytes())
                .unwrap()
                .timeout(Duration::from_millis(500))
                .retry(oauth_core::RetryPolicy::none()),
        )
        .unwrap();
        let endpoint = http.endpoint(&server.url("/introspect")).unwrap();
        BlockingGateway::builder(http, endpoint, credentials(secret))
            .cache(cache)
            .build(policy(), Arc::clone(&contracts))
    };
    let rt = tokio::runtime::Builder::new_multi_thread()
        .worker_threads(2)
        .enable_all()
        .build()
        .unwrap();
    let asynchronous = {
        let http = oauth_reqwest::HttpClient::new(
            oauth_reqwest::HttpConfig::new()
                .add_root_certificates_pem(server.ca_pem().as_bytes())
                .unwrap()
                .timeout(Duration::from_millis(500))
                .retry(oauth_core::RetryPolicy::none()),
        )
        .unwrap();
        let endpoint = http.endpoint(&server.url("/introspect")).unwrap();
        Gateway::builder(http, endpoint, credentials(&b.client_secret))
            .cache(cache)
            .build(policy(), Arc::clone(&contracts))
    };
    let good = blocking(&b.client_secret);
    let wrong = blocking("wrong-gateway-secret-123");
    let request = |token: &str| {
        Request::get("https://api.example/orders")
            .header(header::AUTHORIZATION, format!("Bearer {token}"))
            .body(Vec::<u8>::new())
            .unwrap()
    };
    let mut texts = Vec::new();
    let mut run = |token: &str| {
        for result in [
            good.check(&request(token)),
            wrong.check(&request(token)),
            rt.block_on(asynchronous.check(&request(token))),
        ] {
            match result {
                Ok(p) => texts.push(format!("{p:?}")),
                Err(d) => texts.push(format!("{d} {d:?} {:?}", good.deny_response(&d))),
            }
        }
    };
    let allowed = server.issue_access_token("app-1", "orders:read", Duration::from_secs(3600));
    let no_contract = server.issue_access_token("app-2", "orders:read", Duration::from_secs(3600));
    let narrow = server.issue_access_token("app-1", "profile", Duration::from_secs(3600));
    let unknown = "unknown-token-value-0123456789".to_owned();
    for token in [&allowed, &no_contract, &narrow, &unknown] {
        run(token);
        run(token);
        secrets.push(token.clone());
    }
    server.configure(|b| b.introspection_failure = Some(503));
    let fresh = server.issue_access_token("app-1", "orders:read", Duration::from_secs(3600));
    run(&fresh);
    server.configure(|b| {
        b.introspection_failure = None;
        b.introspection_delay = Duration::from_secs(2);
    });
    let slow = server.issue_access_token("app-1", "orders:read", Duration::from_secs(3600));
    run(&slow);
    secrets.extend([fresh, slow]);

    let log = String::from_utf8(capture.0.lock().unwrap().clone()).unwrap();
    // The gateways did report what they did.
    for expected in [
        "token introspected",
        "request denied",
        "introspection failed",
    ] {
        assert!(log.contains(expected), "no {expected:?} in:\n{log}");
    }
    log::debug!(target: "bridge_check", "log bridge marker");
    let log = String::from_utf8(capture.0.lock().unwrap().clone()).unwrap();
    assert!(
        log.contains("log bridge marker"),
        "the log bridge is not installed"
    );
    let dumped = hex_dumped_bytes(&log);
    for secret in &secrets {
        use base64::Engine as _;
        let basic =
            base64::engine::general_purpose::STANDARD.encode(format!("{}:{secret}", b.client_id));
        for form in [secret.clone(), basic] {
            assert!(
                !log.contains(form.as_str()),
                "a secret is in the log:\n{log}"
            );
        }
        assert!(
            !dumped.windows(secret.len()).any(|w| w == secret.as_bytes()),
            "a secret is hex-dumped in the log"
        );
        for text in &texts {
            assert!(!text.contains(secret.as_str()), "a secret is in {text}");
        }
    }
}
