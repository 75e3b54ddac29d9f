//! [`HttpClient`]: oauth-runtime's [`Io`] on ureq, blocking inside futures that finish in their
//! first poll. Everything else is oauth-runtime's drivers of oauth-core's machines.

use std::sync::Arc;
use std::time::{Duration, Instant};

use oauth_core::http::{Request, Response};
use oauth_core::{
    Client, Endpoint, Error, Introspection, IntrospectionRequest, RequestBody, RevocationRequest,
    ServerMetadata, TokenRequest, TokenResponse, TransportError, TransportErrorKind,
};
use oauth_runtime::{self as drive, Body, HttpConfig, Io, block_on};

/// An HTTP client for OAuth endpoints and protected resources: a ureq agent with the
/// settings of an [`HttpConfig`]. Cheap to clone (the connection pool is shared).
#[derive(Clone, Debug)]
pub struct HttpClient {
    inner: ureq::Agent,
    config: Arc<HttpConfig>,
}

impl HttpClient {
    /// A client with these settings.
    pub fn new(config: HttpConfig) -> Result<Self, Error> {
        let agent_config = ureq::Agent::config_builder()
            .tls_config(tls_config(&config)?)
            .max_redirects(0)
            .http_status_as_error(false)
            .https_only(config.scheme_policy == oauth_core::SchemePolicy::HttpsOnly)
            .timeout_connect(Some(config.connect_timeout))
            .build();
        Ok(Self {
            inner: ureq::Agent::new_with_config(agent_config),
            config: Arc::new(config),
        })
    }

    /// The settings.
    pub fn config(&self) -> &HttpConfig {
        &self.config
    }

    /// Parses an endpoint under the configured scheme policy (`https://` only unless
    /// [`HttpConfig::dangerous_allow_http_loopback`]).
    pub fn endpoint(&self, uri: &str) -> Result<Endpoint, Error> {
        self.config.endpoint(uri)
    }

    /// Runs a token request to its end: each attempt built (and its assertions signed)
    /// afresh, transient failures retried as oauth-core's `TokenCall` decides, all within
    /// [`HttpConfig::timeout`].
    pub fn request_token(
        &self,
        endpoint: &Endpoint,
        client: &Client,
        request: &TokenRequest,
    ) -> Result<TokenResponse, Error> {
        block_on(drive::request_token(self, endpoint, client, request))
    }

    /// The server's metadata (OpenID Connect Discovery, then RFC 8414), its issuer checked.
    pub fn discover(&self, issuer: &str) -> Result<ServerMetadata, Error> {
        block_on(drive::discover(self, issuer))
    }

    /// Introspects a token (RFC 7662).
    pub fn introspect(
        &self,
        endpoint: &Endpoint,
        client: &Client,
        request: &IntrospectionRequest,
    ) -> Result<Introspection, Error> {
        block_on(drive::introspect(self, endpoint, client, request))
    }

    /// Revokes a token (RFC 7009).
    pub fn revoke(
        &self,
        endpoint: &Endpoint,
        client: &Client,
        request: &RevocationRequest,
    ) -> Result<(), Error> {
        block_on(drive::revoke(self, endpoint, client, request))
    }

    /// Asks the device authorization endpoint for a device code and a user code
    /// (RFC 8628 §3.1), authenticating as `client` like a token request.
    pub fn device_authorization(
        &self,
        endpoint: &Endpoint,
        client: &Client,
        request: &oauth_core::DeviceAuthorizationRequest,
    ) -> Result<oauth_core::DeviceAuthorization, Error> {
        block_on(drive::device_authorization(self, endpoint, client, request))
    }

    /// The whole device flow (RFC 8628): the device authorization request, `prompt` called
    /// once with the user code and verification URI to show, then the token endpoint polled
    /// (never sooner than the interval; 5 s slower after each `slow_down`) until the user
    /// approves (the token), declines (`access_denied`) or the code expires (`expired_token`,
    /// both [`Error::Authorization`]). Gives up with a timeout error at `deadline` (the code's own expiry ends it anyway).
    pub fn device_flow(
        &self,
        device_endpoint: &Endpoint,
        token_endpoint: &Endpoint,
        client: &Client,
        request: &oauth_core::DeviceAuthorizationRequest,
        prompt: impl FnOnce(&oauth_core::DeviceAuthorization) + Send,
        deadline: Option<Instant>,
    ) -> Result<TokenResponse, Error> {
        block_on(drive::device_flow(
            self,
            device_endpoint,
            token_endpoint,
            client,
            request,
            prompt,
            deadline,
        ))
    }

    /// Pushes an authorization request (RFC 9126) and returns the authorization whose URL
    /// carries only `client_id` and the `request_uri`; the callback is handled as usual.
    #[cfg(feature = "authorization-code")]
    pub fn push_authorization(
        &self,
        par_endpoint: &Endpoint,
        client: &Client,
        pending: &oauth_core::PendingAuthorization,
    ) -> Result<oauth_core::PendingAuthorization, Error> {
        block_on(drive::push_authorization(
            self,
            par_endpoint,
            client,
            pending,
        ))
    }

    /// Registers a client (RFC 7591).
    pub fn register_client(
        &self,
        endpoint: &Endpoint,
        request: &oauth_core::RegistrationRequest,
    ) -> Result<oauth_core::RegisteredClient, Error> {
        block_on(drive::register_client(self, endpoint, request))
    }

    /// Reads a client's registration (RFC 7592 §2.1).
    pub fn read_client_registration(
        &self,
        client: &oauth_core::RegisteredClient,
    ) -> Result<oauth_core::RegisteredClient, Error> {
        block_on(drive::read_client_registration(self, client))
    }

    /// Replaces a client's registered metadata (RFC 7592 §2.2).
    pub fn update_client_registration(
        &self,
        client: &oauth_core::RegisteredClient,
        metadata: &oauth_core::ClientMetadata,
    ) -> Result<oauth_core::RegisteredClient, Error> {
        block_on(drive::update_client_registration(self, client, metadata))
    }

    /// Deletes a client's registration (RFC 7592 §2.3).
    pub fn delete_client_registration(
        &self,
        client: &oauth_core::RegisteredClient,
    ) -> Result<(), Error> {
        block_on(drive::delete_client_registration(self, client))
    }

    /// Sends a request built by oauth-core once: no redirect followed, the body read up to the
    /// OAuth response limit, within one attempt's timeout. The body is a [`RequestBody`], or
    /// `()` (a `GET` such as `discovery_request`'s) or `Vec<u8>`: no `map` needed.
    pub fn execute_oauth<B: Into<RequestBody>>(
        &self,
        request: Request<B>,
    ) -> Result<Response<Vec<u8>>, Error> {
        block_on(drive::execute_oauth(self, request.map(Into::into)))
    }

    /// Sends any request once, reading the body up to [`HttpConfig::max_resource_body`].
    /// Redirects are returned, not followed. The body is `()`, `Vec<u8>` or a [`RequestBody`]
    /// (wiped once sent).
    pub fn execute<B: Into<Body>>(&self, request: Request<B>) -> Result<Response<Vec<u8>>, Error> {
        self.execute_limited(request, self.config.max_resource_body)
    }

    /// Sends any request once, reading the body up to `limit` bytes (bodies as for
    /// [`execute`](Self::execute)).
    pub fn execute_limited<B: Into<Body>>(
        &self,
        request: Request<B>,
        limit: usize,
    ) -> Result<Response<Vec<u8>>, Error> {
        block_on(Io::send(
            self,
            request.map(Into::into),
            limit,
            self.config.timeout,
        ))
    }

    fn run<B: ureq::AsSendBody>(
        &self,
        request: Request<B>,
        limit: usize,
        timeout: Duration,
    ) -> Result<Response<Vec<u8>>, Error> {
        let request = self
            .inner
            .configure_request(request)
            .timeout_global(Some(timeout))
            .build();
        let response = self.inner.run(request).map_err(map_error)?;
        let mut out = drive::body_buffer(response.body().content_length(), limit)?;
        let (parts, mut body) = response.into_parts();
        use std::io::Read as _;
        body.with_config()
            .limit(limit as u64)
            .reader()
            .read_to_end(&mut out)
            .map_err(|e| match e.downcast::<ureq::Error>() {
                Ok(ureq::Error::BodyExceedsLimit(_)) => drive::too_large(limit),
                Ok(e) => map_error(e),
                Err(io) => map_error(ureq::Error::Io(io)),
            })?;
        Ok(Response::from_parts(parts, drive::trim(out)))
    }
}

/// Blocking I/O: each future finishes in its first poll.
impl Io for HttpClient {
    fn config(&self) -> &HttpConfig {
        &self.config
    }

    async fn send(
        &self,
        request: Request<Body>,
        limit: usize,
        timeout: Duration,
    ) -> Result<Response<Vec<u8>>, Error> {
        let (parts, body) = request.into_parts();
        match body {
            // ureq borrows the body, so the wiped `RequestBody` stays ours and is wiped on drop.
            Body::Secret(secret) => self.run(
                Request::from_parts(parts, secret.expose_secret()),
                limit,
                timeout,
            ),
            Body::Plain(plain) => self.run(Request::from_parts(parts, plain), limit, timeout),
            _ => self.run(Request::from_parts(parts, ()), limit, timeout),
        }
    }

    async fn sleep_until(&self, until: Instant) {
        std::thread::sleep(until.saturating_duration_since(Instant::now()));
    }

    async fn wait(&self, signal: &oauth_runtime::Signal, seen: u64, until: Instant) {
        signal.wait_blocking(seen, until);
    }
}

/// The TLS settings of an [`HttpConfig`] as ureq's (rustls with ring, the configured roots,
/// the client certificate if there is one): what [`HttpClient`] uses, for an agent of your own
/// that must present the same certificate.
///
/// A token bound to the client certificate (`cnf.x5t#S256`, RFC 8705 §3) is refused unless it
/// arrives over a connection authenticated with that certificate: the token source's `send`
/// uses its [`HttpClient`], and so presents it; the agent under an [`OAuthAgent`] or an
/// [`OAuthMiddleware`] is yours, so build it with these settings:
///
/// ```no_run
/// # fn main() -> Result<(), oauth_ureq::Error> {
/// # let config = oauth_ureq::HttpConfig::new();
/// let agent: ureq::Agent = ureq::Agent::config_builder()
///     .tls_config(oauth_ureq::tls_config(&config)?)
///     .build()
///     .into();
/// # Ok(()) }
/// ```
///
/// [`OAuthAgent`]: crate::OAuthAgent
/// [`OAuthMiddleware`]: crate::OAuthMiddleware
pub fn tls_config(config: &HttpConfig) -> Result<ureq::tls::TlsConfig, Error> {
    use ureq::tls::{Certificate, ClientCert, PrivateKey, RootCerts, TlsConfig, TlsProvider};
    let roots = if config.roots.includes_mozilla() && config.roots.added().is_empty() {
        RootCerts::WebPki
    } else {
        let mozilla: &[_] = if config.roots.includes_mozilla() {
            webpki_root_certs::TLS_SERVER_ROOT_CERTS
        } else {
            &[]
        };
        let certs: Vec<Certificate<'static>> = mozilla
            .iter()
            .chain(config.roots.added())
            .map(|c| Certificate::from_der(c.as_ref()).to_owned())
            .collect();
        RootCerts::Specific(Arc::new(certs))
    };
    let client_cert = match &config.client_identity {
        None => None,
        Some(identity) => {
            // ureq builds rustls's configuration at the first connection; check now that the
            // key fits the certificate, as rustls does, so a bad pair fails here.
            let provider = rustls::crypto::ring::default_provider();
            rustls::sign::CertifiedKey::from_der(
                identity.cert_chain().to_vec(),
                identity.expose_private_key().clone_key(),
                &provider,
            )
            .map_err(|e| {
                Error::from(
                    TransportError::new(
                        TransportErrorKind::Config,
                        "the client certificate and key do not fit together",
                    )
                    .with_source(e),
                )
            })?;
            let chain: Vec<Certificate<'static>> = identity
                .cert_chain()
                .iter()
                .map(|c| Certificate::from_der(c.as_ref()).to_owned())
                .collect();
            // ureq names key kinds only through PEM.
            let key = PrivateKey::from_pem(identity.expose_private_key_pem().as_bytes())
                .map_err(map_error)?;
            Some(ClientCert::new_with_certs(&chain, key))
        }
    };
    Ok(TlsConfig::builder()
        .provider(TlsProvider::Rustls)
        .root_certs(roots)
        .client_cert(client_cert)
        .build())
}

/// Maps a ureq error to a transport error.
fn map_error(e: ureq::Error) -> Error {
    use std::io::ErrorKind;
    let kind = match &e {
        ureq::Error::Timeout(_) => TransportErrorKind::Timeout,
        ureq::Error::HostNotFound | ureq::Error::ConnectionFailed => TransportErrorKind::Connect,
        ureq::Error::Io(io)
            if matches!(
                io.kind(),
                ErrorKind::ConnectionRefused | ErrorKind::AddrNotAvailable | ErrorKind::NotFound
            ) =>
        {
            TransportErrorKind::Connect
        }
        ureq::Error::Io(io) if io.kind() == ErrorKind::TimedOut => TransportErrorKind::Timeout,
        ureq::Error::Tls(_) | ureq::Error::Rustls(_) => TransportErrorKind::Tls,
        ureq::Error::Io(io)
            if io
                .get_ref()
                .is_some_and(|inner| inner.downcast_ref::<rustls::Error>().is_some()) =>
        {
            TransportErrorKind::Tls
        }
        ureq::Error::BodyExceedsLimit(_) => TransportErrorKind::BodyTooLarge,
        ureq::Error::TooManyRedirects | ureq::Error::RedirectFailed => TransportErrorKind::Redirect,
        ureq::Error::RequireHttpsOnly(_)
        | ureq::Error::BadUri(_)
        | ureq::Error::InvalidProxyUrl => TransportErrorKind::Config,
        _ => TransportErrorKind::Io,
    };
    let detail = match &e {
        // These carry the URI; keep it out of messages.
        ureq::Error::RequireHttpsOnly(_) => "https is required".to_owned(),
        ureq::Error::BadUri(_) => "invalid URI".to_owned(),
        e => e.to_string(),
    };
    TransportError::new(kind, &detail).with_source(e).into()
}
