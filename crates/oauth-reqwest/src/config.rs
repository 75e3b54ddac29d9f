//! [`HttpConfig`]: the security-relevant settings of the HTTP client.

use std::sync::Arc;
use std::time::Duration;

use oauth_core::{
    Endpoint, Error, MAX_BODY_LEN, RetryPolicy, SchemePolicy, TransportError, TransportErrorKind,
};
use rustls::pki_types::CertificateDer;
use rustls::pki_types::pem::PemObject;

/// Settings of the HTTP client, secure by default: HTTPS only, Mozilla's root certificates,
/// no redirects, 10 s to connect, 30 s per request, 1 MiB per OAuth response.
#[derive(Clone, Debug)]
pub struct HttpConfig {
    pub(crate) connect_timeout: Duration,
    pub(crate) timeout: Duration,
    pub(crate) max_response_body: usize,
    pub(crate) max_resource_body: usize,
    pub(crate) extra_roots: Vec<CertificateDer<'static>>,
    pub(crate) scheme_policy: SchemePolicy,
    pub(crate) retry: RetryPolicy,
}

impl Default for HttpConfig {
    fn default() -> Self {
        Self {
            connect_timeout: Duration::from_secs(10),
            timeout: Duration::from_secs(30),
            max_response_body: MAX_BODY_LEN,
            max_resource_body: 16 * 1024 * 1024,
            extra_roots: Vec::new(),
            scheme_policy: SchemePolicy::HttpsOnly,
            retry: RetryPolicy::default(),
        }
    }
}

impl HttpConfig {
    /// The defaults.
    pub fn new() -> Self {
        Self::default()
    }

    /// How long to wait for a connection (and TLS handshake).
    pub fn connect_timeout(mut self, d: Duration) -> Self {
        self.connect_timeout = d;
        self
    }

    /// How long a whole request may take, from connecting to the last byte of the body.
    pub fn timeout(mut self, d: Duration) -> Self {
        self.timeout = d;
        self
    }

    /// The largest token, introspection or revocation response body accepted (1 MiB by
    /// default).
    pub fn max_response_body(mut self, bytes: usize) -> Self {
        self.max_response_body = bytes;
        self
    }

    /// The largest resource (API) response body accepted by `send` (16 MiB by default).
    pub fn max_resource_body(mut self, bytes: usize) -> Self {
        self.max_resource_body = bytes;
        self
    }

    /// Trusts the certificate authorities in `pem` in addition to Mozilla's roots: for a
    /// private authorization server, or a test server.
    pub fn add_root_certificates_pem(mut self, pem: &[u8]) -> Result<Self, Error> {
        let before = self.extra_roots.len();
        for cert in CertificateDer::pem_slice_iter(pem) {
            let cert = cert.map_err(|e| {
                TransportError::new(TransportErrorKind::Config, "unreadable CA certificate PEM")
                    .with_source(e)
            })?;
            self.extra_roots.push(cert);
        }
        if self.extra_roots.len() == before {
            return Err(TransportError::new(
                TransportErrorKind::Config,
                "no certificate in the PEM",
            )
            .into());
        }
        Ok(self)
    }

    /// Allows `http://` to loopback hosts (127.0.0.1, ::1, localhost), for local development
    /// only. Every other `http://` endpoint is still refused.
    pub fn dangerous_allow_http_loopback(mut self) -> Self {
        self.scheme_policy = SchemePolicy::DangerousAllowHttpLoopback;
        self
    }

    /// How transient token-endpoint failures are retried.
    pub fn retry(mut self, policy: RetryPolicy) -> Self {
        self.retry = policy;
        self
    }

    /// Parses an endpoint under this configuration's scheme policy.
    pub fn endpoint(&self, uri: &str) -> Result<Endpoint, Error> {
        Ok(Endpoint::with_policy(uri, self.scheme_policy)?)
    }

    /// The rustls configuration: ring, TLS 1.2 and 1.3, Mozilla's roots plus the added ones.
    pub(crate) fn rustls(&self) -> Result<rustls::ClientConfig, Error> {
        let config_error = |e: rustls::Error| {
            Error::from(
                TransportError::new(TransportErrorKind::Config, "TLS configuration").with_source(e),
            )
        };
        let mut roots = rustls::RootCertStore {
            roots: webpki_roots::TLS_SERVER_ROOTS.to_vec(),
        };
        for cert in &self.extra_roots {
            roots.add(cert.clone()).map_err(config_error)?;
        }
        let provider = Arc::new(rustls::crypto::ring::default_provider());
        let mut config = rustls::ClientConfig::builder_with_provider(provider)
            .with_safe_default_protocol_versions()
            .map_err(config_error)?
            .with_root_certificates(roots)
            .with_no_client_auth();
        config.alpn_protocols = vec![b"h2".to_vec(), b"http/1.1".to_vec()];
        Ok(config)
    }
}
