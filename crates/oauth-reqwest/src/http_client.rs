//! [`HttpClient`]: executes oauth-core's requests with reqwest.

use std::error::Error as _;
use std::time::{Instant, SystemTime};

use oauth_core::http::{HeaderMap, Request, Response};
use oauth_core::{
    Client, Endpoint, Error, RequestBody, TokenRequest, TokenResponse, TransportError,
    TransportErrorKind, parse_token_response, retry_after,
};

use crate::HttpConfig;

/// An HTTP client for OAuth endpoints and protected resources: reqwest with the settings of
/// an [`HttpConfig`]. Cheap to clone (the connection pool is shared).
#[derive(Clone, Debug)]
pub struct HttpClient {
    inner: reqwest::Client,
    config: HttpConfig,
}

impl HttpClient {
    /// A client with these settings.
    pub fn new(config: HttpConfig) -> Result<Self, Error> {
        let tls = config.rustls()?;
        let inner = reqwest::Client::builder()
            .tls_backend_preconfigured(tls)
            .redirect(reqwest::redirect::Policy::none())
            .https_only(config.scheme_policy == oauth_core::SchemePolicy::HttpsOnly)
            .connect_timeout(config.connect_timeout)
            .timeout(config.timeout)
            .build()
            .map_err(|e| transport(TransportErrorKind::Config, e))?;
        Ok(Self { inner, config })
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

    /// Sends a token request and parses the answer, retrying transient failures as the
    /// [`RetryPolicy`](oauth_core::RetryPolicy) of the configuration says.
    pub async fn request_token(
        &self,
        endpoint: &Endpoint,
        client: &Client,
        request: &TokenRequest,
    ) -> Result<TokenResponse, Error> {
        let mut attempt = 1;
        loop {
            let built = request.build(endpoint, client)?;
            let started = Instant::now();
            tracing::debug!(
                grant_type = request.grant_type(),
                host = endpoint.host(),
                path = endpoint.uri().path(),
                attempt,
                "token request"
            );
            let (result, retry_after) = match self.execute_oauth(built).await {
                Ok(response) => {
                    let retry_after = retry_after(response.headers());
                    let status = response.status().as_u16();
                    let parsed = parse_token_response(&response, SystemTime::now());
                    tracing::debug!(
                        status,
                        elapsed_ms = started.elapsed().as_millis() as u64,
                        ok = parsed.is_ok(),
                        "token response"
                    );
                    (parsed, retry_after)
                }
                Err(e) => (Err(e), None),
            };
            let error = match result {
                Ok(token) => return Ok(token),
                Err(e) => e,
            };
            let repeatable = request.is_repeatable();
            match self
                .config
                .retry
                .retry_delay(attempt, &error, retry_after, repeatable)
            {
                Some(delay) => {
                    tracing::warn!(
                        attempt,
                        delay_ms = delay.as_millis() as u64,
                        error = %error,
                        "token request failed; retrying"
                    );
                    tokio::time::sleep(delay).await;
                    attempt += 1;
                }
                None => {
                    tracing::warn!(attempt, error = %error, "token request failed");
                    return Err(error);
                }
            }
        }
    }

    /// Sends a request built by oauth-core (token, introspection, revocation) once: no
    /// redirect is followed, and the body is read up to the OAuth response limit.
    pub async fn execute_oauth(
        &self,
        request: Request<RequestBody>,
    ) -> Result<Response<Vec<u8>>, Error> {
        let (parts, body) = request.into_parts();
        let request = Request::from_parts(parts, body.into_bytes());
        let response = self.execute(request, self.config.max_response_body).await?;
        if response.status().is_redirection() {
            return Err(TransportError::new(
                TransportErrorKind::Redirect,
                &format!("HTTP {}", response.status().as_u16()),
            )
            .into());
        }
        Ok(response)
    }

    /// Sends any request once, reading the body up to `limit` bytes. Redirects are returned,
    /// not followed.
    pub async fn execute(
        &self,
        request: Request<Vec<u8>>,
        limit: usize,
    ) -> Result<Response<Vec<u8>>, Error> {
        let (parts, body) = request.into_parts();
        let url = parts.uri.to_string();
        let mut builder = self
            .inner
            .request(parts.method, url)
            .headers(parts.headers)
            .version(parts.version);
        if !body.is_empty() {
            builder = builder.body(body);
        }
        let mut response = builder.send().await.map_err(map_error)?;
        if response.content_length().is_some_and(|n| n > limit as u64) {
            return Err(too_large(limit));
        }
        let mut out = Response::builder()
            .status(response.status())
            .version(response.version());
        if let Some(headers) = out.headers_mut() {
            *headers = std::mem::replace(response.headers_mut(), HeaderMap::new());
        }
        let mut body = Vec::new();
        while let Some(chunk) = response.chunk().await.map_err(map_error)? {
            if body.len() + chunk.len() > limit {
                return Err(too_large(limit));
            }
            body.extend_from_slice(&chunk);
        }
        out.body(body)
            .map_err(|e| transport(TransportErrorKind::Io, e))
    }

    /// The configured limit for resource responses.
    pub(crate) fn resource_limit(&self) -> usize {
        self.config.max_resource_body
    }
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
