//! [`HttpClient`]: oauth-runtime's [`Io`] on reqwest: one exchange over HTTP, and tokio's
//! timer. Everything else is oauth-runtime's drivers of oauth-core's machines.

use std::error::Error as _;
use std::sync::Arc;
use std::time::{Duration, Instant};

use oauth_core::http::{HeaderMap, Request, Response};
use oauth_core::{
    Client, Endpoint, Error, Introspection, IntrospectionRequest, RequestBody, RevocationRequest,
    ServerMetadata, TokenRequest, TokenResponse, TransportError, TransportErrorKind,
};
use oauth_runtime::{self as drive, Body, HttpConfig, Io};
use zeroize::Zeroizing;

/// An HTTP client for OAuth endpoints and protected resources: reqwest with the settings of
/// an [`HttpConfig`]. Cheap to clone (the connection pool is shared).
#[derive(Clone, Debug)]
pub struct HttpClient {
    inner: reqwest::Client,
    config: Arc<HttpConfig>,
}

impl HttpClient {
    /// A client with these settings.
    pub fn new(config: HttpConfig) -> Result<Self, Error> {
        let inner = reqwest::Client::builder()
            .tls_backend_preconfigured(rustls_client_config(&config)?)
            .redirect(reqwest::redirect::Policy::none())
            .https_only(config.scheme_policy == oauth_core::SchemePolicy::HttpsOnly)
            .connect_timeout(config.connect_timeout)
            .build()
            .map_err(|e| transport(TransportErrorKind::Config, e))?;
        Ok(Self {
            inner,
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
    pub async fn request_token(
        &self,
        endpoint: &Endpoint,
        client: &Client,
        request: &TokenRequest,
    ) -> Result<TokenResponse, Error> {
        drive::request_token(self, endpoint, client, request).await
    }

    /// The server's metadata (OpenID Connect Discovery, then RFC 8414), its issuer checked.
    pub async fn discover(&self, issuer: &str) -> Result<ServerMetadata, Error> {
        drive::discover(self, issuer).await
    }

    /// Introspects a token (RFC 7662).
    pub async fn introspect(
        &self,
        endpoint: &Endpoint,
        client: &Client,
        request: &IntrospectionRequest,
    ) -> Result<Introspection, Error> {
        drive::introspect(self, endpoint, client, request).await
    }

    /// Revokes a token (RFC 7009).
    pub async fn revoke(
        &self,
        endpoint: &Endpoint,
        client: &Client,
        request: &RevocationRequest,
    ) -> Result<(), Error> {
        drive::revoke(self, endpoint, client, request).await
    }

    /// Asks the device authorization endpoint for a device code and a user code
    /// (RFC 8628 §3.1), authenticating as `client` like a token request.
    pub async fn device_authorization(
        &self,
        endpoint: &Endpoint,
        client: &Client,
        request: &oauth_core::DeviceAuthorizationRequest,
    ) -> Result<oauth_core::DeviceAuthorization, Error> {
        drive::device_authorization(self, endpoint, client, request).await
    }

    /// The whole device flow (RFC 8628): the device authorization request, `prompt` called
    /// once with the user code and verification URI to show, then the token endpoint polled
    /// (never sooner than the interval; 5 s slower after each `slow_down`) until the user
    /// approves (the token), declines (`access_denied`) or the code expires (`expired_token`,
    /// both [`Error::Authorization`]). Cancel it by dropping the future.
    pub async fn device_flow(
        &self,
        device_endpoint: &Endpoint,
        token_endpoint: &Endpoint,
        client: &Client,
        request: &oauth_core::DeviceAuthorizationRequest,
        prompt: impl FnOnce(&oauth_core::DeviceAuthorization) + Send,
    ) -> Result<TokenResponse, Error> {
        drive::device_flow(
            self,
            device_endpoint,
            token_endpoint,
            client,
            request,
            prompt,
            None,
        )
        .await
    }

    /// Pushes an authorization request (RFC 9126) and returns the authorization whose URL
    /// carries only `client_id` and the `request_uri`; the callback is handled as usual.
    #[cfg(feature = "authorization-code")]
    pub async fn push_authorization(
        &self,
        par_endpoint: &Endpoint,
        client: &Client,
        pending: &oauth_core::PendingAuthorization,
    ) -> Result<oauth_core::PendingAuthorization, Error> {
        drive::push_authorization(self, par_endpoint, client, pending).await
    }

    /// Registers a client (RFC 7591).
    pub async fn register_client(
        &self,
        endpoint: &Endpoint,
        request: &oauth_core::RegistrationRequest,
    ) -> Result<oauth_core::RegisteredClient, Error> {
        drive::register_client(self, endpoint, request).await
    }

    /// Reads a client's registration (RFC 7592 §2.1).
    pub async fn read_client_registration(
        &self,
        client: &oauth_core::RegisteredClient,
    ) -> Result<oauth_core::RegisteredClient, Error> {
        drive::read_client_registration(self, client).await
    }

    /// Replaces a client's registered metadata (RFC 7592 §2.2).
    pub async fn update_client_registration(
        &self,
        client: &oauth_core::RegisteredClient,
        metadata: &oauth_core::ClientMetadata,
    ) -> Result<oauth_core::RegisteredClient, Error> {
        drive::update_client_registration(self, client, metadata).await
    }

    /// Deletes a client's registration (RFC 7592 §2.3).
    pub async fn delete_client_registration(
        &self,
        client: &oauth_core::RegisteredClient,
    ) -> Result<(), Error> {
        drive::delete_client_registration(self, client).await
    }

    /// Sends a request built by oauth-core once: no redirect followed, the body read up to the
    /// OAuth response limit, within one attempt's timeout. The body is a [`RequestBody`], or
    /// `()` (a `GET` such as `discovery_request`'s) or `Vec<u8>`: no `map` needed.
    pub async fn execute_oauth<B: Into<RequestBody>>(
        &self,
        request: Request<B>,
    ) -> Result<Response<Vec<u8>>, Error> {
        drive::execute_oauth(self, request.map(Into::into)).await
    }

    /// Sends any request once, reading the body up to [`HttpConfig::max_resource_body`].
    /// Redirects are returned, not followed. The body is `()`, `Vec<u8>` or a [`RequestBody`]
    /// (wiped once sent).
    pub async fn execute<B: Into<Body>>(
        &self,
        request: Request<B>,
    ) -> Result<Response<Vec<u8>>, Error> {
        self.execute_limited(request, self.config.max_resource_body)
            .await
    }

    /// Sends any request once, reading the body up to `limit` bytes (bodies as for
    /// [`execute`](Self::execute)).
    pub async fn execute_limited<B: Into<Body>>(
        &self,
        request: Request<B>,
        limit: usize,
    ) -> Result<Response<Vec<u8>>, Error> {
        Io::send(self, request.map(Into::into), limit, self.config.timeout).await
    }
}

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
        let body = match body {
            // reqwest gets a buffer that is wiped when it is done with it.
            Body::Secret(secret) => bytes::Bytes::from_owner(Zeroizing::new(secret.into_bytes())),
            Body::Plain(plain) => plain.into(),
            _ => bytes::Bytes::new(),
        };
        let mut builder = self
            .inner
            .request(parts.method, parts.uri.to_string())
            .headers(parts.headers)
            .version(parts.version)
            .timeout(timeout);
        if !body.is_empty() {
            builder = builder.body(body);
        }
        let mut response = builder.send().await.map_err(map_error)?;
        let mut body = drive::body_buffer(response.content_length(), limit)?;
        let mut out = Response::builder()
            .status(response.status())
            .version(response.version());
        if let Some(headers) = out.headers_mut() {
            *headers = std::mem::replace(response.headers_mut(), HeaderMap::new());
        }
        while let Some(chunk) = response.chunk().await.map_err(map_error)? {
            if body.len() + chunk.len() > limit {
                return Err(drive::too_large(limit));
            }
            body.extend_from_slice(&chunk);
        }
        out.body(drive::trim(body))
            .map_err(|e| transport(TransportErrorKind::Io, e))
    }

    async fn sleep_until(&self, until: Instant) {
        tokio::time::sleep_until(until.into()).await;
    }

    async fn wait(&self, signal: &oauth_runtime::Signal, seen: u64, until: Instant) {
        // Ends at the signal or at the deadline; which one, the caller looks.
        let _ = tokio::time::timeout_at(until.into(), signal.changed(seen)).await;
    }
}

/// The TLS settings of an [`HttpConfig`] as a rustls client configuration (ring, TLS 1.2 and
/// 1.3, the configured roots, the client certificate if there is one, ALPN `h2` and
/// `http/1.1`): what [`HttpClient`] uses, for a client of your own that must present the same
/// certificate.
///
/// A token bound to the client certificate (`cnf.x5t#S256`, RFC 8705 §3) is refused unless it
/// arrives over a connection authenticated with that certificate: the token source's `send`
/// uses its [`HttpClient`], and so presents it; the client under an `OAuthMiddleware` (feature
/// `middleware`) or an `OAuthLayer` (feature `tower`) is yours, so build it with this
/// configuration:
///
/// ```no_run
/// # fn main() -> Result<(), oauth_reqwest::Error> {
/// # let config = oauth_reqwest::HttpConfig::new();
/// let api = reqwest::Client::builder()
///     .tls_backend_preconfigured(oauth_reqwest::rustls_client_config(&config)?)
///     .build();
/// # Ok(()) }
/// ```
pub fn rustls_client_config(config: &HttpConfig) -> Result<rustls::ClientConfig, Error> {
    let config_error = |e: rustls::Error| {
        Error::from(
            TransportError::new(TransportErrorKind::Config, "TLS configuration").with_source(e),
        )
    };
    let mut roots = rustls::RootCertStore::empty();
    if config.roots.includes_mozilla() {
        roots.extend(webpki_roots::TLS_SERVER_ROOTS.iter().cloned());
    }
    for cert in config.roots.added() {
        roots.add(cert.clone()).map_err(config_error)?;
    }
    let provider = Arc::new(rustls::crypto::ring::default_provider());
    let builder = rustls::ClientConfig::builder_with_provider(provider)
        .with_safe_default_protocol_versions()
        .map_err(config_error)?
        .with_root_certificates(roots);
    // Mutual TLS (RFC 8705): rustls refuses a key that does not belong to the certificate.
    let mut tls = match &config.client_identity {
        Some(identity) => builder
            .with_client_auth_cert(
                identity.cert_chain().to_vec(),
                identity.expose_private_key().clone_key(),
            )
            .map_err(|e| {
                Error::from(
                    TransportError::new(
                        TransportErrorKind::Config,
                        "the client certificate and key do not fit together",
                    )
                    .with_source(e),
                )
            })?,
        None => builder.with_no_client_auth(),
    };
    tls.alpn_protocols = vec![b"h2".to_vec(), b"http/1.1".to_vec()];
    Ok(tls)
}

fn transport(kind: TransportErrorKind, e: impl std::error::Error + Send + Sync + 'static) -> Error {
    TransportError::new(kind, &e.to_string())
        .with_source(e)
        .into()
}

/// Maps a reqwest error to a transport error, without the URL.
fn map_error(e: reqwest::Error) -> Error {
    let e = e.without_url();
    let kind = if e.is_timeout() {
        TransportErrorKind::Timeout
    } else if is_tls(&e) {
        TransportErrorKind::Tls
    } else if e.is_connect() {
        TransportErrorKind::Connect
    } else if e.is_builder() {
        TransportErrorKind::Config
    } else {
        TransportErrorKind::Io
    };
    let mut detail = String::new();
    let mut source = e.source();
    while let Some(s) = source {
        detail = s.to_string();
        source = s.source();
    }
    TransportError::new(kind, &detail).with_source(e).into()
}

/// Whether a rustls error is somewhere in the chain, including inside (nested) `io::Error`s,
/// whose `source` skips the error they wrap.
fn is_tls(e: &reqwest::Error) -> bool {
    fn wraps_rustls(e: &(dyn std::error::Error + 'static)) -> bool {
        if e.is::<rustls::Error>() {
            return true;
        }
        if let Some(inner) = e
            .downcast_ref::<std::io::Error>()
            .and_then(|io| io.get_ref())
        {
            return wraps_rustls(inner);
        }
        false
    }
    let mut source = e.source();
    while let Some(s) = source {
        if wraps_rustls(s) {
            return true;
        }
        source = s.source();
    }
    false
}
