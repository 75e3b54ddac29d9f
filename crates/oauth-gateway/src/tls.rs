//! TLS for an API that takes certificate-bound access tokens (RFC 8705 §3) on connections it
//! terminates itself with rustls (tokio-rustls, say): the client-certificate verifier for
//! clients whose certificates no CA of the API's vouches for, and the [`ClientCertificate`] of
//! a connection.
//!
//! With mutual-TLS client authentication at the authorization server (RFC 8705 §2), the
//! certificates clients present may be self-signed (§2.2) or issued by CAs the API has never
//! heard of: the authorization server checked them when it issued the token, and bound the
//! token to the certificate (`cnf.x5t#S256`). What the API must check is that the connection
//! holds that certificate's private key, which the TLS handshake proves. [`AnyClientCertificate`]
//! does exactly that; a connection's certificate then allows nothing by itself: only a token
//! bound to it does.
//!
//! ```ignore
//! let provider = Arc::new(rustls::crypto::ring::default_provider());
//! let verifier = AnyClientCertificate::new(&provider, false);
//! let config = rustls::ServerConfig::builder_with_provider(provider)
//!     .with_safe_default_protocol_versions()?
//!     .with_client_cert_verifier(Arc::new(verifier))
//!     .with_single_cert(chain, key)?;
//! // After each handshake: the certificate every request of the connection carries.
//! let certificate = oauth_gateway::tls::client_certificate(tls_stream.get_ref().1);
//! ```

use std::sync::Arc;

use rustls::client::danger::HandshakeSignatureValid;
use rustls::crypto::{CryptoProvider, WebPkiSupportedAlgorithms};
use rustls::pki_types::{CertificateDer, UnixTime};
use rustls::server::danger::{ClientCertVerified, ClientCertVerifier};
use rustls::{DigitallySignedStruct, DistinguishedName, SignatureScheme};

use crate::ClientCertificate;

/// A rustls client-certificate verifier that asks every client for a certificate and takes
/// any certificate whose private key the client proves it holds: the handshake's signature is
/// verified, the chain is not (no CA, no expiry, no name).
///
/// Use it only where the certificate binds tokens (RFC 8705 §3), never to authenticate a
/// client: any client can make a certificate this verifier takes. For certificates a CA must
/// have issued, use rustls's `WebPkiClientVerifier`.
#[derive(Debug, Clone)]
pub struct AnyClientCertificate {
    algorithms: WebPkiSupportedAlgorithms,
    required: bool,
}

impl AnyClientCertificate {
    /// The verifier, checking handshake signatures with `provider`'s algorithms. With
    /// `required`, a client without a certificate is refused in the handshake; without, it
    /// connects, and a certificate-bound token on its connection is refused by the gateway.
    pub fn new(provider: &Arc<CryptoProvider>, required: bool) -> Self {
        Self {
            algorithms: provider.signature_verification_algorithms,
            required,
        }
    }
}

impl ClientCertVerifier for AnyClientCertificate {
    fn offer_client_auth(&self) -> bool {
        true
    }

    fn client_auth_mandatory(&self) -> bool {
        self.required
    }

    fn root_hint_subjects(&self) -> &[DistinguishedName] {
        &[]
    }

    fn verify_client_cert(
        &self,
        _end_entity: &CertificateDer<'_>,
        _intermediates: &[CertificateDer<'_>],
        _now: UnixTime,
    ) -> Result<ClientCertVerified, rustls::Error> {
        Ok(ClientCertVerified::assertion())
    }

    fn verify_tls12_signature(
        &self,
        message: &[u8],
        cert: &CertificateDer<'_>,
        dss: &DigitallySignedStruct,
    ) -> Result<HandshakeSignatureValid, rustls::Error> {
        rustls::crypto::verify_tls12_signature(message, cert, dss, &self.algorithms)
    }

    fn verify_tls13_signature(
        &self,
        message: &[u8],
        cert: &CertificateDer<'_>,
        dss: &DigitallySignedStruct,
    ) -> Result<HandshakeSignatureValid, rustls::Error> {
        rustls::crypto::verify_tls13_signature(message, cert, dss, &self.algorithms)
    }

    fn supported_verify_schemes(&self) -> Vec<SignatureScheme> {
        self.algorithms.supported_schemes()
    }
}

/// The certificate the client of `connection` presented (the leaf of its chain), hashed once:
/// what each request of the connection hands the gateway. `None` before the handshake ends or
/// when the client sent none.
pub fn client_certificate(connection: &rustls::ServerConnection) -> Option<ClientCertificate> {
    connection
        .peer_certificates()
        .and_then(<[_]>::first)
        .map(|leaf| ClientCertificate::from_der(leaf))
}
