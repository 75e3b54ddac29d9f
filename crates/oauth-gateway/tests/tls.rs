//! `tls::AnyClientCertificate` and `tls::client_certificate` in real TLS handshakes on
//! loopback (rustls on both sides): a self-signed client certificate is taken and becomes the
//! connection's `ClientCertificate`; a client without one connects unless one is required.
#![cfg(feature = "rustls")]
#![allow(clippy::unwrap_used, clippy::expect_used, clippy::panic)]

use std::io::{Read as _, Write as _};
use std::net::{TcpListener, TcpStream};
use std::sync::Arc;

use oauth_gateway::ClientCertificate;
use oauth_gateway::tls::{AnyClientCertificate, client_certificate};
use oauth_test_server::LoopbackCertificates;
use rustls::pki_types::pem::PemObject as _;
use rustls::pki_types::{CertificateDer, PrivateKeyDer, ServerName};

fn provider() -> Arc<rustls::crypto::CryptoProvider> {
    Arc::new(rustls::crypto::ring::default_provider())
}

/// Accepts one connection with `AnyClientCertificate::new(required)` and returns what
/// `client_certificate` saw after the handshake (`Err` when the handshake failed), while a
/// client with `identity` (a PEM chain and key) or none connects.
fn handshake(
    required: bool,
    identity: Option<(&str, &str)>,
) -> Result<Option<ClientCertificate>, String> {
    let server_certs = LoopbackCertificates::generate().unwrap();
    let config = rustls::ServerConfig::builder_with_provider(provider())
        .with_safe_default_protocol_versions()
        .unwrap()
        .with_client_cert_verifier(Arc::new(AnyClientCertificate::new(&provider(), required)))
        .with_single_cert(
            CertificateDer::pem_slice_iter(server_certs.chain_pem.as_bytes())
                .collect::<Result<_, _>>()
                .unwrap(),
            PrivateKeyDer::from_pem_slice(server_certs.key_pem.as_bytes()).unwrap(),
        )
        .unwrap();
    let listener = TcpListener::bind("127.0.0.1:0").unwrap();
    let port = listener.local_addr().unwrap().port();
    let server = std::thread::spawn(move || {
        let (tcp, _) = listener.accept().unwrap();
        let connection = rustls::ServerConnection::new(Arc::new(config)).unwrap();
        let mut tls = rustls::StreamOwned::new(connection, tcp);
        let mut byte = [0u8; 1];
        // The handshake ends with the first read of application data.
        tls.read_exact(&mut byte).map_err(|e| e.to_string())?;
        let seen = client_certificate(&tls.conn);
        tls.write_all(b"k").map_err(|e| e.to_string())?;
        Ok(seen)
    });
    let mut roots = rustls::RootCertStore::empty();
    roots
        .add(CertificateDer::from_pem_slice(server_certs.ca_pem.as_bytes()).unwrap())
        .unwrap();
    let builder = rustls::ClientConfig::builder_with_provider(provider())
        .with_safe_default_protocol_versions()
        .unwrap()
        .with_root_certificates(roots);
    let config = match identity {
        None => builder.with_no_client_auth(),
        Some((chain, key)) => builder
            .with_client_auth_cert(
                CertificateDer::pem_slice_iter(chain.as_bytes())
                    .collect::<Result<_, _>>()
                    .unwrap(),
                PrivateKeyDer::from_pem_slice(key.as_bytes()).unwrap(),
            )
            .unwrap(),
    };
    let name = ServerName::try_from("127.0.0.1").unwrap();
    let connection = rustls::ClientConnection::new(Arc::new(config), name).unwrap();
    let mut tls =
        rustls::StreamOwned::new(connection, TcpStream::connect(("127.0.0.1", port)).unwrap());
    let _ = tls
        .write_all(b"h")
        .and_then(|()| tls.read_exact(&mut [0u8; 1]));
    server.join().unwrap()
}

#[test]
fn a_self_signed_certificate_becomes_the_connections_client_certificate() {
    let client = oauth_test_server::ClientCertificate::self_signed("client.example").unwrap();
    let seen = handshake(false, Some((&client.chain_pem, &client.key_pem))).unwrap();
    assert_eq!(seen, Some(ClientCertificate::from_der(client.der())));
    assert_eq!(seen.unwrap().thumbprint(), client.thumbprint());
    // Required: the same client still gets in.
    let seen = handshake(true, Some((&client.chain_pem, &client.key_pem))).unwrap();
    assert_eq!(seen, Some(ClientCertificate::from_der(client.der())));
}

#[test]
fn a_client_without_a_certificate_connects_unless_one_is_required() {
    assert_eq!(handshake(false, None), Ok(None));
    let refused = handshake(true, None).unwrap_err();
    assert!(refused.to_lowercase().contains("certificate"), "{refused}");
}
