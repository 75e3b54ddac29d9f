//! [`HttpConfig`]: the security-relevant settings of both adapters' HTTP clients.

use std::time::{Duration, Instant};

use oauth_core::{
    Client, Endpoint, Error, MAX_BODY_LEN, Now, RetryPolicy, SchemePolicy, TokenCall, TokenRequest,
    TransportError, TransportErrorKind,
};
use rustls_pki_types::CertificateDer;
use rustls_pki_types::pem::PemObject;

/// Which certificate authorities are trusted.
#[derive(Clone, Debug, PartialEq, Eq)]
#[non_exhaustive]
pub enum Roots {
    /// Mozilla's roots, plus these.
    Mozilla(Vec<CertificateDer<'static>>),
    /// Only these: for a server behind a private CA, where no public CA should be able to
    /// vouch for it.
    Only(Vec<CertificateDer<'static>>),
}

impl Roots {
    /// Whether Mozilla's roots are trusted.
    pub fn includes_mozilla(&self) -> bool {
        matches!(self, Self::Mozilla(_))
    }

    /// The certificates added to (or replacing) Mozilla's.
    pub fn added(&self) -> &[CertificateDer<'static>] {
        match self {
            Self::Mozilla(c) | Self::Only(c) => c,
        }
    }
}

/// Settings of the HTTP client, secure by default: HTTPS only, Mozilla's root certificates,
/// no redirects, 10 s to connect, 10 s per attempt, 30 s per token call (retries included),
/// 1 MiB per OAuth response.
///
/// The fields can be read (and set) directly; the methods set them with validation.
#[derive(Clone, Debug)]
#[non_exhaustive]
pub struct HttpConfig {
    /// How long to wait for a connection (and TLS handshake).
    pub connect_timeout: Duration,
    /// How long one token call may take in all, retries and waits included; also how long a
    /// caller of `TokenSource::token` waits for a token, and how long a resource call may take.
    pub timeout: Duration,
    /// How long one attempt may take, from connecting to the last byte of the body.
    pub attempt_timeout: Duration,
    /// The largest token, introspection, revocation or discovery response body.
    pub max_response_body: usize,
    /// The largest resource (API) response body read by `send`.
    pub max_resource_body: usize,
    /// The trusted certificate authorities.
    pub roots: Roots,
    /// Which endpoint schemes are allowed.
    pub scheme_policy: SchemePolicy,
    /// How transient token-endpoint failures are retried.
    pub retry: RetryPolicy,
}

impl Default for HttpConfig {
    fn default() -> Self {
        Self {
            connect_timeout: Duration::from_secs(10),
            timeout: Duration::from_secs(30),
            attempt_timeout: Duration::from_secs(10),
            max_response_body: MAX_BODY_LEN,
            max_resource_body: 16 * 1024 * 1024,
            roots: Roots::Mozilla(Vec::new()),
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

    /// How long a whole token call may take, retries and `Retry-After` waits included (default
    /// 30 s); callers waiting for a token give up after as long.
    pub fn timeout(mut self, d: Duration) -> Self {
        self.timeout = d;
        self
    }

    /// How long one attempt may take, from connecting to the last byte of the body (default
    /// 10 s; never more than what is left of [`timeout`](Self::timeout)).
    pub fn attempt_timeout(mut self, d: Duration) -> Self {
        self.attempt_timeout = d;
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
        let certs = parse_pem(pem)?;
        match &mut self.roots {
            Roots::Mozilla(extra) | Roots::Only(extra) => extra.extend(certs),
        }
        Ok(self)
    }

    /// Trusts only the certificate authorities in `pem`, not Mozilla's roots: for servers
    /// behind a private CA, so that no public CA can vouch for an impostor.
    pub fn trust_only_root_certificates_pem(mut self, pem: &[u8]) -> Result<Self, Error> {
        self.roots = Roots::Only(parse_pem(pem)?);
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

    /// A token call under these settings, starting `now`.
    pub fn token_call<'a>(
        &'a self,
        endpoint: &'a Endpoint,
        client: &'a Client,
        request: &'a TokenRequest,
        now: Now,
    ) -> TokenCall<'a> {
        TokenCall::new(
            endpoint,
            client,
            request,
            &self.retry,
            now,
            self.timeout,
            self.attempt_timeout,
        )
    }

    /// The deadline of a caller that starts waiting `now`.
    pub fn deadline(&self, now: Now) -> Instant {
        oauth_core::deadline_after(now, self.timeout)
    }
}

fn parse_pem(pem: &[u8]) -> Result<Vec<CertificateDer<'static>>, Error> {
    let mut out = Vec::new();
    for cert in CertificateDer::pem_slice_iter(pem) {
        out.push(cert.map_err(|e| {
            TransportError::new(TransportErrorKind::Config, "unreadable CA certificate PEM")
                .with_source(e)
        })?);
    }
    if out.is_empty() {
        return Err(
            TransportError::new(TransportErrorKind::Config, "no certificate in the PEM").into(),
        );
    }
    Ok(out)
}
