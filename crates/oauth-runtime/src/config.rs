//! [`HttpConfig`]: the security-relevant settings of both adapters' HTTP clients.

use std::time::{Duration, Instant};

use oauth_core::{
    Client, Endpoint, Error, MAX_BODY_LEN, Now, RetryPolicy, SchemePolicy, TokenCall, TokenRequest,
    TransportError, TransportErrorKind,
};
use std::fmt;
use std::sync::Arc;

use rustls_pki_types::pem::PemObject;
use rustls_pki_types::{CertificateDer, PrivateKeyDer};

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
/// 1 MiB per OAuth response, no client certificate.
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
    /// The certificate and key the client presents when a server asks for one (mutual TLS,
    /// RFC 8705): for `tls_client_auth` / `self_signed_tls_client_auth`, and for tokens bound
    /// to the certificate, which the same client then presents at the resource.
    pub client_identity: Option<ClientIdentity>,
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
            client_identity: None,
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

    /// Presents this certificate and key whenever a server asks for a client certificate
    /// (mutual TLS, RFC 8705): the token endpoint of a client that authenticates with
    /// `tls_client_auth` or `self_signed_tls_client_auth`, and every resource that receives a
    /// token bound to the certificate (`cnf.x5t#S256`): the token source's `send` and the
    /// middlewares use the same HTTP client, hence the same certificate. Discovery through
    /// this configuration then prefers the server's `mtls_endpoint_aliases` (RFC 8705 §5).
    ///
    /// ```no_run
    /// # fn pem(_: &str) -> Vec<u8> { Vec::new() }
    /// use oauth_runtime::{ClientIdentity, HttpConfig};
    ///
    /// let identity = ClientIdentity::from_pem(&pem("client.crt"), &pem("client.key"))?;
    /// let config = HttpConfig::new().client_identity(identity);
    /// # Ok::<(), oauth_runtime::ClientIdentityError>(())
    /// ```
    pub fn client_identity(mut self, identity: ClientIdentity) -> Self {
        self.client_identity = Some(identity);
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

/// A client certificate chain and its private key, presented in the TLS handshake when a
/// server asks for a certificate (mutual TLS, RFC 8705 §2).
///
/// `Debug` shows the certificate's thumbprint, never the key; the key is wiped when the last
/// clone is dropped. Cheap to clone.
#[derive(Clone)]
pub struct ClientIdentity {
    chain: Arc<[CertificateDer<'static>]>,
    key: Arc<WipedKey>,
    thumbprint: Arc<str>,
}

/// A private key zeroized on drop.
struct WipedKey(PrivateKeyDer<'static>);

impl Drop for WipedKey {
    fn drop(&mut self) {
        zeroize::Zeroize::zeroize(&mut self.0);
    }
}

impl ClientIdentity {
    /// Reads a certificate chain (the client's certificate first, then any intermediates,
    /// PEM `CERTIFICATE` blocks) and its private key (PEM: PKCS#8 `PRIVATE KEY`, PKCS#1
    /// `RSA PRIVATE KEY` or SEC1 `EC PRIVATE KEY`; the first key in `key_pem`).
    ///
    /// Whether the key belongs to the certificate is checked when an adapter's HTTP client is
    /// built (by rustls, an error then).
    ///
    /// ```
    /// use oauth_runtime::{ClientIdentity, ClientIdentityError};
    ///
    /// let err = ClientIdentity::from_pem(b"not a certificate", b"").unwrap_err();
    /// assert!(matches!(err, ClientIdentityError::NoCertificate));
    /// ```
    pub fn from_pem(cert_chain_pem: &[u8], key_pem: &[u8]) -> Result<Self, ClientIdentityError> {
        let mut chain = Vec::new();
        for cert in CertificateDer::pem_slice_iter(cert_chain_pem) {
            chain.push(cert.map_err(ClientIdentityError::Certificate)?);
        }
        let Some(leaf) = chain.first() else {
            return Err(ClientIdentityError::NoCertificate);
        };
        // The pem error is dropped: whatever it quotes of the file stays out of messages.
        let key = PrivateKeyDer::from_pem_slice(key_pem).map_err(|e| match e {
            rustls_pki_types::pem::Error::NoItemsFound => ClientIdentityError::NoPrivateKey,
            _ => ClientIdentityError::UnreadablePrivateKey,
        })?;
        let thumbprint = certificate_thumbprint(leaf).into();
        Ok(Self {
            chain: chain.into(),
            key: Arc::new(WipedKey(key)),
            thumbprint,
        })
    }

    /// The certificate chain, the client's certificate first.
    pub fn cert_chain(&self) -> &[CertificateDer<'static>] {
        &self.chain
    }

    /// The private key, for an adapter's TLS configuration.
    pub fn expose_private_key(&self) -> &PrivateKeyDer<'static> {
        &self.key.0
    }

    /// The private key in PEM (for a TLS stack that reads only PEM, such as ureq's), in a
    /// buffer wiped when dropped.
    pub fn expose_private_key_pem(&self) -> zeroize::Zeroizing<String> {
        use base64::Engine as _;
        let (label, der) = match &self.key.0 {
            PrivateKeyDer::Pkcs1(k) => ("RSA PRIVATE KEY", k.secret_pkcs1_der()),
            PrivateKeyDer::Sec1(k) => ("EC PRIVATE KEY", k.secret_sec1_der()),
            PrivateKeyDer::Pkcs8(k) => ("PRIVATE KEY", k.secret_pkcs8_der()),
            // `PrivateKeyDer` is non-exhaustive; `from_pem` made one of the three above.
            _ => ("PRIVATE KEY", self.key.0.secret_der()),
        };
        let body = zeroize::Zeroizing::new(base64::engine::general_purpose::STANDARD.encode(der));
        let mut pem = zeroize::Zeroizing::new(String::with_capacity(body.len() + 80));
        pem.push_str("-----BEGIN ");
        pem.push_str(label);
        pem.push_str("-----\n");
        for line in body.as_bytes().chunks(64) {
            // base64 is ASCII, so every chunk is valid UTF-8.
            pem.push_str(std::str::from_utf8(line).unwrap_or_default());
            pem.push('\n');
        }
        pem.push_str("-----END ");
        pem.push_str(label);
        pem.push_str("-----\n");
        pem
    }

    /// The client certificate's SHA-256 thumbprint, base64url without padding: the
    /// `x5t#S256` a server binds tokens to (RFC 8705 §3.1).
    pub fn certificate_thumbprint(&self) -> &str {
        &self.thumbprint
    }
}

impl fmt::Debug for ClientIdentity {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        f.debug_struct("ClientIdentity")
            .field("certificates", &self.chain.len())
            .field("x5t#S256", &&*self.thumbprint)
            .field("private_key", &"<redacted>")
            .finish()
    }
}

impl PartialEq for ClientIdentity {
    /// Two identities are equal when they present the same chain (the key belongs to it).
    fn eq(&self, other: &Self) -> bool {
        self.chain == other.chain
    }
}

/// `base64url(SHA-256(der))`: a certificate's `x5t#S256` (RFC 8705 §3.1).
pub fn certificate_thumbprint(der: &[u8]) -> String {
    use base64::Engine as _;
    let digest = ring::digest::digest(&ring::digest::SHA256, der);
    base64::engine::general_purpose::URL_SAFE_NO_PAD.encode(digest.as_ref())
}

/// Why a [`ClientIdentity`] could not be read. Never quotes the key.
#[derive(Debug)]
#[non_exhaustive]
pub enum ClientIdentityError {
    /// The certificate PEM holds no `CERTIFICATE` block.
    NoCertificate,
    /// A certificate block could not be read.
    Certificate(rustls_pki_types::pem::Error),
    /// The key PEM holds no private key block.
    NoPrivateKey,
    /// The private key block could not be read.
    UnreadablePrivateKey,
}

impl fmt::Display for ClientIdentityError {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        f.write_str(match self {
            Self::NoCertificate => "no certificate in the client certificate PEM",
            Self::Certificate(_) => "unreadable client certificate PEM",
            Self::NoPrivateKey => {
                "no private key in the client key PEM (PKCS#8, PKCS#1 or SEC1 expected)"
            }
            Self::UnreadablePrivateKey => "unreadable client private key PEM",
        })
    }
}

impl std::error::Error for ClientIdentityError {
    fn source(&self) -> Option<&(dyn std::error::Error + 'static)> {
        match self {
            Self::Certificate(e) => Some(e),
            _ => None,
        }
    }
}

impl From<ClientIdentityError> for Error {
    fn from(e: ClientIdentityError) -> Self {
        TransportError::new(TransportErrorKind::Config, &e.to_string())
            .with_source(e)
            .into()
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

#[cfg(test)]
mod tests {
    #![allow(clippy::unwrap_used, clippy::panic)]

    use super::*;
    use oauth_test_server::{ClientCa, ClientCertificate};

    /// The base64 lines of a PEM block: what must never be printed.
    fn secret_lines(pem: &str) -> Vec<&str> {
        pem.lines().filter(|l| !l.starts_with("-----")).collect()
    }

    #[test]
    fn reads_a_chain_and_its_key() {
        let ca = ClientCa::generate().unwrap();
        let cert = ca.issue("client.example").unwrap();
        let identity =
            ClientIdentity::from_pem(cert.chain_pem.as_bytes(), cert.key_pem.as_bytes()).unwrap();
        assert_eq!(identity.cert_chain().len(), 2);
        assert_eq!(identity.cert_chain()[0].as_ref(), cert.der());
        assert_eq!(identity.certificate_thumbprint(), cert.thumbprint());
        assert_eq!(
            identity.certificate_thumbprint(),
            certificate_thumbprint(cert.der())
        );
        // The PEM written for ureq reads back to the same key.
        let pem = identity.expose_private_key_pem();
        assert!(pem.starts_with("-----BEGIN PRIVATE KEY-----\n"));
        let again = PrivateKeyDer::from_pem_slice(pem.as_bytes()).unwrap();
        assert_eq!(
            again.secret_der(),
            identity.expose_private_key().secret_der()
        );
        let config = HttpConfig::new().client_identity(identity.clone());
        assert_eq!(config.client_identity.as_ref(), Some(&identity));
        // Neither Debug shows the key.
        for shown in [format!("{identity:?}"), format!("{config:?}")] {
            assert!(shown.contains(&cert.thumbprint()), "{shown}");
            assert!(shown.contains("<redacted>"), "{shown}");
            for line in secret_lines(&cert.key_pem) {
                assert!(!shown.contains(line), "{shown}");
            }
        }
    }

    #[test]
    fn bad_pem_is_a_typed_error() {
        let cert = ClientCertificate::self_signed("self.example").unwrap();
        let key = cert.key_pem.as_bytes();
        let chain = cert.chain_pem.as_bytes();
        let garbled_key = "-----BEGIN PRIVATE KEY-----\n!!!!\n-----END PRIVATE KEY-----\n";
        type Expected = fn(&ClientIdentityError) -> bool;
        let cases: [(&[u8], &[u8], Expected); 5] = [
            (b"", key, |e| {
                matches!(e, ClientIdentityError::NoCertificate)
            }),
            (key, key, |e| {
                matches!(e, ClientIdentityError::NoCertificate)
            }),
            (
                b"-----BEGIN CERTIFICATE-----\n!!!!\n-----END CERTIFICATE-----\n",
                key,
                |e| matches!(e, ClientIdentityError::Certificate(_)),
            ),
            (chain, chain, |e| {
                matches!(e, ClientIdentityError::NoPrivateKey)
            }),
            (chain, garbled_key.as_bytes(), |e| {
                matches!(e, ClientIdentityError::UnreadablePrivateKey)
            }),
        ];
        for (chain, key, expected) in cases {
            let e = ClientIdentity::from_pem(chain, key).unwrap_err();
            assert!(expected(&e), "{e:?}");
            // As the adapters' error: a configuration fault.
            match Error::from(e) {
                Error::Transport(t) => assert_eq!(t.kind(), TransportErrorKind::Config),
                other => panic!("{other:?}"),
            }
        }
    }
}
