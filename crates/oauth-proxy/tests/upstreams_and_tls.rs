//! Per-route upstreams and `strip_prefix`, https:// upstreams trusted through their CA file
//! only, and an HTTPS listener, each with a real `oauth-gateway` process on loopback.
#![allow(clippy::unwrap_used, clippy::expect_used, clippy::panic)]

mod support;

use std::sync::Arc;
use std::time::Duration;

use oauth_test_server::{Behaviour, LoopbackCertificates, TestServer};
use support::{
    HOUR, Proxy, Upstream, agent, config_for, get, grant_orders_and_files, scratch, secrets,
};

#[test]
fn per_route_upstreams_and_strip_prefix() {
    let server = TestServer::start(Behaviour::default()).unwrap();
    let (default, files) = (Upstream::start(), Upstream::start());
    let dir = scratch("upstreams");
    grant_orders_and_files(&dir);
    let routes = format!(
        r#"
[[route]]
prefix = "/orders"
api = "orders"

[[route]]
prefix = "/files"
api = "files"
upstream = "http://127.0.0.1:{files}/store"
strip_prefix = true
upstream_timeout_secs = 5
"#,
        files = files.port
    );
    let top = format!("upstream = \"http://127.0.0.1:{}/svc\"", default.port);
    let proxy = Proxy::start(
        &config_for(&server, &dir, &top, &routes),
        &dir,
        &secrets(&[]),
    );
    let token = server.issue_access_token("app-1", "files:read", HOUR);
    for path in ["/orders/1?x=1", "/files/a/b?y=2", "/files", "/files?z=3"] {
        assert_eq!(get(&proxy.url(path), Some(&token)).0, 200, "{path}");
    }
    assert_eq!(default.targets(), ["/svc/orders/1?x=1"]);
    assert_eq!(
        files.targets(),
        ["/store/a/b?y=2", "/store/", "/store/?z=3"]
    );
}

#[test]
fn https_upstreams_trust_their_ca_file_only() {
    let server = TestServer::start(Behaviour::default()).unwrap();
    // Two HTTPS services, each with a CA of its own: the test server's discovery document
    // stands for an upstream API.
    let (trusted, other) = (
        TestServer::start(Behaviour::default()).unwrap(),
        TestServer::start(Behaviour::default()).unwrap(),
    );
    let dir = scratch("https-upstream");
    let ca = dir.join("upstream-ca.pem");
    std::fs::write(&ca, trusted.ca_pem()).unwrap();
    let routes = format!(
        r#"
[[route]]
prefix = "/.well-known"
api = "meta"
require_contract = false
upstream = "{trusted}"
upstream_ca_file = "{ca}"

[[route]]
prefix = "/other/.well-known"
api = "meta"
require_contract = false
upstream = "{other}"
upstream_ca_file = "{ca}"
strip_prefix = true

[[route]]
prefix = "/public/.well-known"
api = "meta"
require_contract = false
upstream = "{trusted}"
strip_prefix = true
"#,
        trusted = trusted.url(""),
        other = other.url(""),
        ca = ca.display(),
    );
    let proxy = Proxy::start(&config_for(&server, &dir, "", &routes), &dir, &secrets(&[]));
    let token = server.issue_access_token("app-1", "", HOUR);
    let (status, body) = get(
        &proxy.url("/.well-known/openid-configuration"),
        Some(&token),
    );
    assert_eq!(status, 200, "{body}\n{}", proxy.log_text());
    assert!(body.contains(&trusted.url("/token")), "{body}");
    // Another CA's certificate, and the loopback CA under the public roots: refused, 502.
    for path in ["/other", "/public"] {
        let url = proxy.url(&format!("{path}/.well-known/openid-configuration"));
        assert_eq!(get(&url, Some(&token)).0, 502, "{path}");
    }
    proxy.wait_for_log(&["upstream unreachable", "UnknownIssuer"]);
}

#[test]
fn an_https_listener_and_its_certificate_renewed() {
    let server = TestServer::start(Behaviour::default()).unwrap();
    let upstream = Upstream::start();
    let dir = scratch("https-listener");
    grant_orders_and_files(&dir);
    let certs = LoopbackCertificates::generate().unwrap();
    let (cert, key) = (dir.join("cert.pem"), dir.join("key.pem"));
    std::fs::write(&cert, &certs.chain_pem).unwrap();
    std::fs::write(&key, &certs.key_pem).unwrap();
    let top = format!(
        "upstream = \"http://127.0.0.1:{}\"\nidle_timeout_secs = 60\nheader_read_timeout_secs = 60\n[tls]\ncert_file = \"{}\"\nkey_file = \"{}\"\n",
        upstream.port,
        cert.display(),
        key.display()
    );
    let routes = "[[route]]\nprefix = \"/orders\"\napi = \"orders\"\n";
    let proxy = Proxy::start(
        &config_for(&server, &dir, &top, routes),
        &dir,
        &secrets(&[]),
    );
    let https = trusting(&certs.ca_pem);
    let url = |path: &str| format!("https://127.0.0.1:{}{path}", proxy.port);
    let token = server.issue_access_token("app-1", "orders:read", HOUR);
    let mut ok = https
        .get(url("/orders/1"))
        .header("authorization", &format!("Bearer {token}"))
        .call()
        .unwrap();
    assert_eq!(ok.status(), 200);
    assert!(
        ok.body_mut()
            .read_to_string()
            .unwrap()
            .contains("x-oauth-client-id")
    );
    let denied = https.get(url("/orders/1")).call().unwrap();
    assert_eq!(denied.status(), 401);
    // Plain HTTP on the TLS port gets no answer; a client that trusts another CA refuses it.
    assert_eq!(get(&proxy.url("/healthz"), None).0, 0);
    assert!(agent().get(url("/healthz")).call().is_err());

    // A new certificate (from another CA) in the same files: the next handshakes use it,
    // without a restart or a signal.
    let renewed = LoopbackCertificates::generate().unwrap();
    for (path, pem) in [(&key, &renewed.key_pem), (&cert, &renewed.chain_pem)] {
        let next = path.with_extension("new");
        std::fs::write(&next, pem).unwrap();
        std::fs::rename(&next, path).unwrap();
    }
    proxy.wait_for_log(&["TLS certificate reloaded"]);
    let renewed_client = trusting(&renewed.ca_pem);
    let deadline = std::time::Instant::now() + Duration::from_secs(10);
    while renewed_client.get(url("/healthz")).call().is_err() {
        assert!(std::time::Instant::now() < deadline, "{}", proxy.log_text());
        std::thread::sleep(Duration::from_millis(100));
    }
    // A new connection trusting the old CA only is refused; the connection the first client
    // kept open was not dropped.
    assert!(trusting(&certs.ca_pem).get(url("/healthz")).call().is_err());
    assert_eq!(https.get(url("/healthz")).call().unwrap().status(), 200);
    assert!(
        !proxy.log_text().contains("not reloaded"),
        "{}",
        proxy.log_text()
    );
}

/// An HTTPS client that trusts `ca_pem` alone.
fn trusting(ca_pem: &str) -> ureq::Agent {
    use ureq::tls::{Certificate, RootCerts, TlsConfig, TlsProvider};
    let roots = vec![Certificate::from_pem(ca_pem.as_bytes()).unwrap().to_owned()];
    ureq::Agent::config_builder()
        .http_status_as_error(false)
        .timeout_global(Some(Duration::from_secs(10)))
        .tls_config(
            TlsConfig::builder()
                .provider(TlsProvider::Rustls)
                .root_certs(RootCerts::Specific(Arc::new(roots)))
                .build(),
        )
        .build()
        .into()
}
