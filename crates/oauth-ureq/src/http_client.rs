//! [`HttpClient`]: sends oauth-core's requests with ureq and drives its token calls.

use std::sync::Arc;
use std::time::{Duration, Instant};

use oauth_core::http::{Request, Response};
use oauth_core::{
    CallStep, Client, Endpoint, Error, Introspection, IntrospectionRequest, RequestBody,
    RevocationRequest, ServerMetadata, TokenRequest, TokenResponse, TransportError,
    TransportErrorKind, WellKnown, discovery_request, parse_introspection_response,
    parse_revocation_response, parse_server_metadata,
};
use oauth_runtime::{CallEvent, HttpConfig, log_call, now};

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
            .tls_config(tls_config(&config))
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

    /// Runs a token request to its end: each attempt built (and its assertions signed) afresh,
    /// transient failures retried as oauth-core's `TokenCall` decides, all within
    /// [`HttpConfig::timeout`].
    pub fn request_token(
        &self,
        endpoint: &Endpoint,
        client: &Client,
        request: &TokenRequest,
    ) -> Result<TokenResponse, Error> {
        let mut call = self.config.token_call(endpoint, client, request, now());
        loop {
            match call.poll(now()) {
                CallStep::Send { request, timeout } => {
                    log_call(&call, CallEvent::Sending);
                    let answer = self.send_oauth(request, timeout);
                    call.handle_response(answer, now());
                }
                CallStep::Wait(until) => {
                    log_call(&call, CallEvent::Retrying);
                    std::thread::sleep(until.saturating_duration_since(Instant::now()));
                }
                CallStep::Done(result) => {
                    log_call(&call, CallEvent::Done(&result));
                    return result;
                }
                _ => return Err(internal()),
            }
        }
    }

    /// The server's metadata (OpenID Connect Discovery, then RFC 8414), its issuer checked.
    pub fn discover(&self, issuer: &str) -> Result<ServerMetadata, Error> {
        let issuer_endpoint = self.endpoint(issuer)?;
        let mut last = None;
        for which in [
            WellKnown::OpenIdConfiguration,
            WellKnown::OAuthAuthorizationServer,
        ] {
            let (parts, ()) = discovery_request(&issuer_endpoint, which)?.into_parts();
            let response =
                self.execute_oauth(Request::from_parts(parts, RequestBody::default()))?;
            if response.status() == oauth_core::http::StatusCode::NOT_FOUND {
                last = Some(response);
                continue;
            }
            return parse_server_metadata(&response, issuer, self.config.scheme_policy);
        }
        let response = last.ok_or_else(internal)?;
        parse_server_metadata(&response, issuer, self.config.scheme_policy)
    }

    /// Introspects a token (RFC 7662).
    pub fn introspect(
        &self,
        endpoint: &Endpoint,
        client: &Client,
        request: &IntrospectionRequest,
    ) -> Result<Introspection, Error> {
        let built = request.build_at(endpoint, client, now().wall())?;
        parse_introspection_response(&self.execute_oauth(built)?)
    }

    /// Revokes a token (RFC 7009).
    pub fn revoke(
        &self,
        endpoint: &Endpoint,
        client: &Client,
        request: &RevocationRequest,
    ) -> Result<(), Error> {
        let built = request.build_at(endpoint, client, now().wall())?;
        parse_revocation_response(&self.execute_oauth(built)?)
    }

    /// Sends a request built by oauth-core (token, introspection, revocation, discovery) once:
    /// no redirect is followed, the body is read up to the OAuth response limit, within one
    /// attempt's timeout (and never longer than the whole call's).
    pub fn execute_oauth(&self, request: Request<RequestBody>) -> Result<Response<Vec<u8>>, Error> {
        self.send_oauth(
            request,
            self.config.attempt_timeout.min(self.config.timeout),
        )
    }

    fn send_oauth(
        &self,
        request: Request<RequestBody>,
        timeout: Duration,
    ) -> Result<Response<Vec<u8>>, Error> {
        // ureq borrows the body, so the wiped `RequestBody` stays ours and is wiped on drop.
        let (parts, body) = request.into_parts();
        let request = Request::from_parts(parts, body.expose_secret());
        let response = self.send(request, self.config.max_response_body, timeout)?;
        if response.status().is_redirection() {
            return Err(TransportError::new(
                TransportErrorKind::Redirect,
                &format!("HTTP {}", response.status().as_u16()),
            )
            .into());
        }
        Ok(response)
    }

    /// Sends any request once, reading the body up to [`HttpConfig::max_resource_body`].
    /// Redirects are returned, not followed.
    pub fn execute(&self, request: Request<Vec<u8>>) -> Result<Response<Vec<u8>>, Error> {
        self.execute_limited(request, self.config.max_resource_body)
    }

    /// Sends any request once, reading the body up to `limit` bytes.
    pub fn execute_limited(
        &self,
        request: Request<Vec<u8>>,
        limit: usize,
    ) -> Result<Response<Vec<u8>>, Error> {
        self.send(request, limit, self.config.timeout)
    }

    fn send<B: ureq::AsSendBody>(
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
        let declared = response.body().content_length();
        if declared.is_some_and(|n| n > limit as u64) {
            return Err(too_large(limit));
        }
        let (parts, mut body) = response.into_parts();
        // Sized from Content-Length, so the buffer is allocated once and never doubles.
        let mut out = Vec::with_capacity(declared.map_or(0, |n| n as usize));
        use std::io::Read as _;
        body.with_config()
            .limit(limit as u64)
            .reader()
            .read_to_end(&mut out)
            .map_err(|e| match e.downcast::<ureq::Error>() {
                Ok(ureq::Error::BodyExceedsLimit(_)) => too_large(limit),
                Ok(e) => map_error(e),
                Err(io) => map_error(ureq::Error::Io(io)),
            })?;
        if out.capacity() > out.len() + out.len() / 4 + 64 {
            out.shrink_to_fit();
        }
        Ok(Response::from_parts(parts, out))
    }
}

/// ureq's TLS settings: rustls with ring and the configured roots.
fn tls_config(config: &HttpConfig) -> ureq::tls::TlsConfig {
    use ureq::tls::{Certificate, RootCerts, TlsConfig, TlsProvider};
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
    TlsConfig::builder()
        .provider(TlsProvider::Rustls)
        .root_certs(roots)
        .build()
}

fn internal() -> Error {
    TransportError::new(TransportErrorKind::Io, "unexpected state of the call").into()
}

fn too_large(limit: usize) -> Error {
    TransportError::new(
        TransportErrorKind::BodyTooLarge,
        &format!("more than {limit} bytes"),
    )
    .into()
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
