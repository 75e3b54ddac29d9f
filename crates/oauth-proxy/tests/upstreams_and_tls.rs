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

/// A client certificate and its key, PEM: self-signed, or signed by `ca`.
fn client_certificate(
    name: &str,
    ca: Option<&rcgen::Issuer<'_, rcgen::KeyPair>>,
) -> (String, String, Vec<u8>) {
    let key = rcgen::KeyPair::generate().unwrap();
    let mut params = rcgen::CertificateParams::new(Vec::<String>::new()).unwrap();
    params
        .distinguished_name
        .push(rcgen::DnType::CommonName, name);
    params.extended_key_usages = vec![rcgen::ExtendedKeyUsagePurpose::ClientAuth];
    let cert = match ca {
        None => params.self_signed(&key).unwrap(),
        Some(issuer) => params.signed_by(&key, issuer).unwrap(),
    };
    (cert.pem(), key.serialize_pem(), cert.der().to_vec())
}

/// An HTTPS client that trusts `ca_pem` alone and presents `identity` (certificate and key,
/// PEM) if given.
fn presenting(ca_pem: &str, identity: Option<&(String, String, Vec<u8>)>) -> ureq::Agent {
    use ureq::tls::{Certificate, ClientCert, PrivateKey, RootCerts, TlsConfig, TlsProvider};
    let roots = vec![Certificate::from_pem(ca_pem.as_bytes()).unwrap().to_owned()];
    let client_cert = identity.map(|(cert, key, _)| {
        ClientCert::new_with_certs(
            &[Certificate::from_pem(cert.as_bytes()).unwrap().to_owned()],
            PrivateKey::from_pem(key.as_bytes()).unwrap().to_owned(),
        )
    });
    ureq::Agent::config_builder()
        .http_status_as_error(false)
        .timeout_global(Some(Duration::from_secs(10)))
        .tls_config(
            TlsConfig::builder()
                .provider(TlsProvider::Rustls)
                .root_certs(RootCerts::Specific(Arc::new(roots)))
                .client_cert(client_cert)
                .build(),
        )
        .build()
        .into()
}

/// Mutual TLS at the listener (RFC 8705 §3): a JWT access token bound to a client certificate
/// (`cnf.x5t#S256`) passes only on a connection that presented that certificate. With
/// `client_auth = "optional"` and no `client_ca_file` any certificate whose key the client
/// proves is taken (self-signed ones, RFC 8705 §2.2); with `required` and a `client_ca_file`
/// a connection without a certificate from that CA does not get through the handshake.
#[test]
fn mutual_tls_binds_tokens_to_the_connections_certificate() {
    use base64::Engine as _;
    let server = TestServer::start(Behaviour::default()).unwrap();
    let upstream = Upstream::start();
    let listener = LoopbackCertificates::generate().unwrap();
    let client_ca_key = rcgen::KeyPair::generate().unwrap();
    let mut ca_params = rcgen::CertificateParams::new(Vec::<String>::new()).unwrap();
    ca_params.is_ca = rcgen::IsCa::Ca(rcgen::BasicConstraints::Unconstrained);
    ca_params.key_usages = vec![rcgen::KeyUsagePurpose::KeyCertSign];
    let client_ca = ca_params.self_signed(&client_ca_key).unwrap();
    let client_ca_issuer = rcgen::Issuer::new(ca_params, client_ca_key);
    let ours = client_certificate("app-1", None);
    let another = client_certificate("app-1 again", None);
    let from_ca = client_certificate("app-1 by the CA", Some(&client_ca_issuer));

    // The thumbprint as the RFC defines it, computed here with ring (not the gateway's code).
    let thumbprint = |der: &[u8]| {
        let digest = ring::digest::digest(&ring::digest::SHA256, der);
        base64::engine::general_purpose::URL_SAFE_NO_PAD.encode(digest.as_ref())
    };
    let now = std::time::SystemTime::now()
        .duration_since(std::time::UNIX_EPOCH)
        .unwrap()
        .as_secs();
    let jwt = |bound_to: Option<&[u8]>| {
        let mut claims = serde_json::json!({
            "iss": server.url(""), "aud": "orders", "sub": "u1", "client_id": "app-1",
            "iat": now, "exp": now + 600, "jti": format!("{bound_to:?}"),
        });
        if let Some(der) = bound_to {
            claims["cnf"] = serde_json::json!({"x5t#S256": thumbprint(der)});
        }
        server.sign_jwt(serde_json::json!({"typ": "at+jwt"}), claims)
    };

    let start = |name: &str, tls: &str| {
        let dir = scratch(name);
        grant_orders_and_files(&dir);
        let (cert, key) = (dir.join("cert.pem"), dir.join("key.pem"));
        std::fs::write(&cert, &listener.chain_pem).unwrap();
        std::fs::write(&key, &listener.key_pem).unwrap();
        std::fs::write(dir.join("client-ca.pem"), client_ca.pem()).unwrap();
        std::fs::write(dir.join("jwks-ca.pem"), server.ca_pem()).unwrap();
        let top = format!(
            "upstream = \"http://127.0.0.1:{}\"\nadmin_listen = \"127.0.0.1:0\"\n[tls]\ncert_file = \"{}\"\nkey_file = \"{}\"\n{tls}\n",
            upstream.port,
            cert.display(),
            key.display(),
        );
        let routes = format!(
            "[[issuer]]\nissuer = \"{}\"\njwks_uri = \"{}\"\nca_file = \"{}\"\n\n[[route]]\nprefix = \"/orders\"\napi = \"orders\"\nmode = \"jwt\"\naudience = \"orders\"\n",
            server.url(""),
            server.url("/jwks"),
            dir.join("jwks-ca.pem").display(),
        );
        let text = config_for(&server, &dir, &top, &routes).replace(
            "client-ca.pem-DIR",
            &dir.join("client-ca.pem").display().to_string(),
        );
        Proxy::start(&text, &dir, &secrets(&[]))
    };
    let call = |proxy: &Proxy, identity, token: &str| {
        let url = format!("https://127.0.0.1:{}/orders/1", proxy.port);
        presenting(&listener.ca_pem, identity)
            .get(url)
            .header("authorization", &format!("Bearer {token}"))
            .call()
            .map(|r| {
                let challenge = r
                    .headers()
                    .get("www-authenticate")
                    .map(|v| v.to_str().unwrap().to_owned())
                    .unwrap_or_default();
                (r.status().as_u16(), challenge)
            })
    };

    // Optional, any certificate.
    let proxy = start("mtls-optional", "client_auth = \"optional\"");
    let bound = jwt(Some(&ours.2));
    assert_eq!(call(&proxy, Some(&ours), &bound).unwrap().0, 200);
    let (status, challenge) = call(&proxy, None, &bound).unwrap();
    assert_eq!(status, 401);
    assert!(challenge.contains("invalid_token"), "{challenge}");
    assert!(challenge.contains("mutual TLS"), "{challenge}");
    let (status, challenge) = call(&proxy, Some(&another), &bound).unwrap();
    assert_eq!(status, 401);
    assert!(
        challenge.contains("another client certificate"),
        "{challenge}"
    );
    // An unbound token needs no certificate, and a certificate changes nothing for it.
    let unbound = jwt(None);
    assert_eq!(call(&proxy, None, &unbound).unwrap().0, 200);
    assert_eq!(call(&proxy, Some(&another), &unbound).unwrap().0, 200);
    // Counted under their own reason.
    let (_, metrics) = get(&proxy.admin_url("/metrics"), None);
    assert!(
        metrics.contains(
            "oauth_gateway_requests_total{api=\"orders\",status=\"401\",reason=\"certificate_binding\"} 2"
        ),
        "{metrics}"
    );
    drop(proxy);

    // Required, from the client CA only.
    let proxy = start(
        "mtls-required",
        "client_auth = \"required\"\nclient_ca_file = \"client-ca.pem-DIR\"",
    );
    let bound = jwt(Some(&from_ca.2));
    assert_eq!(call(&proxy, Some(&from_ca), &bound).unwrap().0, 200);
    assert!(
        call(&proxy, None, &unbound).is_err(),
        "no certificate: no handshake"
    );
    assert!(
        call(&proxy, Some(&ours), &unbound).is_err(),
        "a certificate from another issuer: no handshake"
    );
    let bound_elsewhere = jwt(Some(&ours.2));
    assert_eq!(
        call(&proxy, Some(&from_ca), &bound_elsewhere).unwrap().0,
        401
    );
}
