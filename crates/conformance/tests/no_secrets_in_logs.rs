//! Every `tracing` event both adapters emit, at every level, captured while they obtain,
//! refresh, retry and fail: no secret appears in any of them, nor in any error's `Display` or
//! `Debug`.
#![allow(clippy::unwrap_used, clippy::expect_used, clippy::panic)]

use std::io::Write;
use std::sync::{Arc, Mutex};
use std::time::Duration;

use conformance::{Harness, Reqwest, Setup, SourceSpec, Ureq};
use oauth_core::http::Request;
use oauth_core::{
    Client, ClientAuthentication, ClientSecret, Password, RefreshPolicy, RetryPolicy, TokenRequest,
};
use oauth_test_server::{Behaviour, RejectionStyle, Scripted, TestServer};

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

/// Runs the flows and returns every secret that went over the wire, plus every error text.
fn exercise<H: Harness>(secrets: &mut Vec<String>, texts: &mut Vec<String>) {
    let b = Behaviour {
        expires_in: Some(2),
        rejection_style: RejectionStyle::DataloyBody,
        ..Behaviour::default()
    };
    secrets.push(b.client_secret.clone());
    secrets.push(b.password.clone());
    let server = TestServer::start(b.clone()).unwrap();
    let h = H::new(&Setup {
        ca_pem: Some(server.ca_pem().to_owned()),
        retry: Some(
            RetryPolicy::default().backoff(Duration::from_millis(5), Duration::from_millis(10)),
        ),
        ..Setup::default()
    })
    .unwrap();
    let endpoint = h.endpoint(&server.url("/token")).unwrap();
    let basic = Client::new(
        b.client_id.as_str(),
        ClientAuthentication::SecretBasic(ClientSecret::new(b.client_secret.as_str())),
    );
    let source = h.source(
        endpoint.clone(),
        basic.clone(),
        SourceSpec {
            grant: Some(TokenRequest::password("alice", Password::new("wonderland"))),
            policy: Some(RefreshPolicy::default().jitter(Duration::ZERO)),
            ..SourceSpec::default()
        },
    );
    texts.push(format!("{source:?}"));
    // Obtain, use, get rejected, retry; then refresh with the refresh token.
    server.script([Scripted::Status(503)]);
    let api = || Request::get(server.url("/api")).body(Vec::new()).unwrap();
    h.send(&source, api()).unwrap();
    server.expire_access_tokens();
    h.send(&source, api()).unwrap();
    std::thread::sleep(Duration::from_millis(1700));
    h.token(&source).unwrap();
    // Failures: wrong secret, wrong password.
    let wrong = Client::new(
        "test-client",
        ClientAuthentication::SecretPost(ClientSecret::new("not-the-secret-xyz")),
    );
    secrets.push("not-the-secret-xyz".into());
    let e = h
        .request_token(&endpoint, &wrong, &TokenRequest::client_credentials())
        .unwrap_err();
    texts.push(format!("{e} {e:?}"));
    let e = h
        .request_token(
            &endpoint,
            &basic,
            &TokenRequest::password("alice", Password::new("bad-password-abc")),
        )
        .unwrap_err();
    secrets.push("bad-password-abc".into());
    texts.push(format!("{e} {e:?}"));
    // Every token the server issued.
    for request in server.token_requests() {
        let body = String::from_utf8_lossy(&request.body).into_owned();
        for pair in body.split('&') {
            if let Some(v) = pair.strip_prefix("refresh_token=") {
                secrets.push(v.to_owned());
            }
        }
    }
    let token = h.token(&source).unwrap();
    secrets.push(token.expose_secret().to_owned());
    texts.push(format!("{token:?}"));
    exercise_mtls::<H>(&server, secrets, texts);
}

/// Mutual TLS (RFC 8705): a client certificate's key, its token, and the errors of a key that
/// does not fit and of the wrong certificate.
fn exercise_mtls<H: Harness>(
    server: &TestServer,
    secrets: &mut Vec<String>,
    texts: &mut Vec<String>,
) {
    use oauth_test_server::{ClientCertificate, MtlsClient};
    let certificate = ClientCertificate::self_signed("self.example").unwrap();
    let other = ClientCertificate::self_signed("other.example").unwrap();
    for key in [&certificate.key_pem, &other.key_pem] {
        secrets.extend(
            key.lines()
                .filter(|l| !l.starts_with("-----"))
                .map(str::to_owned),
        );
    }
    server.register_mtls_client(MtlsClient::self_signed("mtls-app", &certificate));
    let setup = |chain: &str, key: &str| Setup {
        ca_pem: Some(server.ca_pem().to_owned()),
        client_identity: Some((chain.to_owned(), key.to_owned())),
        ..Setup::default()
    };
    let client = Client::new("mtls-app", ClientAuthentication::SelfSignedTlsClientAuth);
    let h = H::new(&setup(&certificate.chain_pem, &certificate.key_pem)).unwrap();
    let m = h.discover(&server.url("")).unwrap();
    texts.push(format!("{m:?}"));
    let token = h
        .request_token(
            m.token_endpoint().unwrap(),
            &client,
            &TokenRequest::client_credentials(),
        )
        .unwrap();
    secrets.push(token.access_token().expose_secret().to_owned());
    // The wrong certificate, and a key that is not the certificate's.
    let wrong = H::new(&setup(&other.chain_pem, &other.key_pem)).unwrap();
    let e = wrong
        .request_token(
            m.token_endpoint().unwrap(),
            &client,
            &TokenRequest::client_credentials(),
        )
        .unwrap_err();
    texts.push(format!("{e} {e:?}"));
    let Err(e) = H::new(&setup(&certificate.chain_pem, &other.key_pem)) else {
        panic!("a key that is not the certificate's was accepted");
    };
    texts.push(format!("{e} {e:?}"));
}

/// Bytes that ureq-proto-style hex dumps (rows of `xxxx xxxx ...`) would carry, decoded and
/// joined, so a secret split over rows is still found.
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

/// Every form in which a secret can leave the process: raw, form-encoded, base64 (a Basic
/// header), hex.
fn forms(secret: &str, client_id: &str) -> Vec<String> {
    use base64::Engine as _;
    let b64 = |s: &str| base64::engine::general_purpose::STANDARD.encode(s);
    let mut encoded = String::new();
    for byte in secret.bytes() {
        match byte {
            b'a'..=b'z' | b'A'..=b'Z' | b'0'..=b'9' | b'-' | b'.' | b'_' | b'*' => {
                encoded.push(byte as char)
            }
            b' ' => encoded.push('+'),
            _ => encoded.push_str(&format!("%{byte:02X}")),
        }
    }
    let hex: String = secret.bytes().map(|b| format!("{b:02x}")).collect();
    vec![
        secret.to_owned(),
        encoded.clone(),
        b64(&format!("{client_id}:{secret}")),
        b64(&format!("{client_id}:{encoded}")),
        hex,
    ]
}

#[test]
fn no_secret_in_logs_or_errors() {
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
    // The bridge works: a `log` record reaches the capture. (TRACE records of the `log` crate
    // are compiled out by oauth-ureq's `hide-http-trace-dumps` feature, on by default.)
    log::debug!(target: "bridge_check", "log bridge marker");
    let mut secrets = Vec::new();
    let mut texts = Vec::new();
    exercise::<Ureq>(&mut secrets, &mut texts);
    exercise::<Reqwest>(&mut secrets, &mut texts);
    // Every request type against a server that echoes each request into its errors.
    for echoed in [
        conformance::echo::exercise::<Ureq>(),
        conformance::echo::exercise::<Reqwest>(),
    ] {
        secrets.extend(echoed.planted);
        texts.extend(echoed.errors.into_iter().map(|(_, text)| text));
    }

    let log = String::from_utf8(capture.0.lock().unwrap().clone()).unwrap();
    assert!(
        log.contains("log bridge marker"),
        "the log bridge is not installed"
    );
    // ureq's own DEBUG records came through the bridge.
    assert!(log.contains("ureq"), "no ureq record bridged");
    // The log is not empty: the adapters did report what they did.
    assert!(log.contains("token request"), "{log}");
    assert!(log.contains("retrying"), "{log}");
    assert!(log.contains("rejected the token"), "{log}");
    assert!(secrets.len() > 8);
    let dumped = hex_dumped_bytes(&log);
    for secret in &secrets {
        assert!(!secret.is_empty());
        for form in forms(secret, "test-client") {
            assert!(
                !log.contains(form.as_str()),
                "a secret ({form}) is in the log:\n{log}"
            );
            for text in &texts {
                assert!(!text.contains(form.as_str()), "a secret is in {text}");
            }
        }
        assert!(
            !dumped.windows(secret.len()).any(|w| w == secret.as_bytes()),
            "a secret is hex-dumped in the log"
        );
    }
}
