//! [`HttpClient`]: sends oauth-core's requests with reqwest and drives its token calls.

use std::error::Error as _;
use std::sync::Arc;
use std::time::Duration;

use oauth_core::http::{HeaderMap, Request, Response};
use oauth_core::{
    CallStep, Client, Endpoint, Error, Introspection, IntrospectionRequest, RequestBody,
    RevocationRequest, ServerMetadata, TokenRequest, TokenResponse, TransportError,
    TransportErrorKind, WellKnown, discovery_request, parse_introspection_response,
    parse_revocation_response, parse_server_metadata,
};
use oauth_runtime::{CallEvent, HttpConfig, log_call, now};
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
            .tls_backend_preconfigured(rustls_config(&config)?)
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

    /// Runs a token request to its end: each attempt built (and its assertions signed) afresh,
    /// transient failures retried as oauth-core's `TokenCall` decides, all within
    /// [`HttpConfig::timeout`].
    pub async fn request_token(
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
                    let answer = self.send_oauth(request, timeout).await;
                    call.handle_response(answer, now());
                }
                CallStep::Wait(until) => {
                    log_call(&call, CallEvent::Retrying);
                    tokio::time::sleep_until(until.into()).await;
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
    pub async fn discover(&self, issuer: &str) -> Result<ServerMetadata, Error> {
        let issuer_endpoint = self.endpoint(issuer)?;
        let mut last = None;
        for which in [
            WellKnown::OpenIdConfiguration,
            WellKnown::OAuthAuthorizationServer,
        ] {
            let (parts, ()) = discovery_request(&issuer_endpoint, which)?.into_parts();
            let request = Request::from_parts(parts, RequestBody::default());
            let response = self.execute_oauth(request).await?;
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
    pub async fn introspect(
        &self,
        endpoint: &Endpoint,
        client: &Client,
        request: &IntrospectionRequest,
    ) -> Result<Introspection, Error> {
        let built = request.build_at(endpoint, client, now().wall())?;
        parse_introspection_response(&self.execute_oauth(built).await?)
    }

    /// Revokes a token (RFC 7009).
    pub async fn revoke(
        &self,
        endpoint: &Endpoint,
        client: &Client,
        request: &RevocationRequest,
    ) -> Result<(), Error> {
        let built = request.build_at(endpoint, client, now().wall())?;
        parse_revocation_response(&self.execute_oauth(built).await?)
    }

    /// Sends a request built by oauth-core (token, introspection, revocation, discovery) once:
    /// no redirect is followed, the body is read up to the OAuth response limit, within one
    /// attempt's timeout (and never longer than the whole call's).
    pub async fn execute_oauth(
        &self,
        request: Request<RequestBody>,
    ) -> Result<Response<Vec<u8>>, Error> {
        self.send_oauth(
            request,
            self.config.attempt_timeout.min(self.config.timeout),
        )
        .await
    }

    async fn send_oauth(
        &self,
        request: Request<RequestBody>,
        timeout: Duration,
    ) -> Result<Response<Vec<u8>>, Error> {
        let (parts, body) = request.into_parts();
        // The body holds secrets: reqwest gets a buffer that is wiped when it is done with it.
        let body = bytes::Bytes::from_owner(Zeroizing::new(body.into_bytes()));
        let response = self
            .send(parts, body, self.config.max_response_body, timeout)
            .await?;
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
    pub async fn execute(&self, request: Request<Vec<u8>>) -> Result<Response<Vec<u8>>, Error> {
        let limit = self.config.max_resource_body;
        self.execute_limited(request, limit).await
    }

    /// Sends any request once, reading the body up to `limit` bytes.
    pub async fn execute_limited(
        &self,
        request: Request<Vec<u8>>,
        limit: usize,
    ) -> Result<Response<Vec<u8>>, Error> {
        let (parts, body) = request.into_parts();
        self.send(parts, body.into(), limit, self.config.timeout)
            .await
    }

    async fn send(
        &self,
        parts: oauth_core::http::request::Parts,
        body: bytes::Bytes,
        limit: usize,
        timeout: Duration,
    ) -> Result<Response<Vec<u8>>, Error> {
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
        let declared = response.content_length();
        if declared.is_some_and(|n| n > limit as u64) {
            return Err(too_large(limit));
        }
        let mut out = Response::builder()
            .status(response.status())
            .version(response.version());
        if let Some(headers) = out.headers_mut() {
            *headers = std::mem::replace(response.headers_mut(), HeaderMap::new());
        }
        // Sized from Content-Length, so the buffer is allocated once and never doubles.
        let mut body = Vec::with_capacity(declared.map_or(0, |n| n as usize));
        while let Some(chunk) = response.chunk().await.map_err(map_error)? {
            if body.len() + chunk.len() > limit {
                return Err(too_large(limit));
            }
            body.extend_from_slice(&chunk);
        }
        if body.capacity() > body.len() + body.len() / 4 + 64 {
            body.shrink_to_fit();
        }
        out.body(body)
            .map_err(|e| transport(TransportErrorKind::Io, e))
    }
}

fn internal() -> Error {
    TransportError::new(TransportErrorKind::Io, "unexpected state of the call").into()
}

/// The rustls configuration: ring, TLS 1.2 and 1.3, the configured roots.
fn rustls_config(config: &HttpConfig) -> Result<rustls::ClientConfig, Error> {
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
    let mut tls = rustls::ClientConfig::builder_with_provider(provider)
        .with_safe_default_protocol_versions()
        .map_err(config_error)?
        .with_root_certificates(roots)
        .with_no_client_auth();
    tls.alpn_protocols = vec![b"h2".to_vec(), b"http/1.1".to_vec()];
    Ok(tls)
}

fn too_large(limit: usize) -> Error {
    TransportError::new(
        TransportErrorKind::BodyTooLarge,
        &format!("more than {limit} bytes"),
    )
    .into()
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
