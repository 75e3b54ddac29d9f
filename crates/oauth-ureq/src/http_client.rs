//! [`HttpClient`]: executes oauth-core's requests with ureq.

use std::time::{Instant, SystemTime};

use oauth_core::http::{Request, Response};
use oauth_core::{
    Client, Endpoint, Error, RequestBody, TokenRequest, TokenResponse, TransportError,
    TransportErrorKind, parse_token_response, retry_after,
};

use crate::HttpConfig;

/// An HTTP client for OAuth endpoints and protected resources: a ureq agent with the
/// settings of an [`HttpConfig`]. Cheap to clone (the connection pool is shared).
#[derive(Clone, Debug)]
pub struct HttpClient {
    inner: ureq::Agent,
    config: HttpConfig,
}

impl HttpClient {
    /// A client with these settings.
    pub fn new(config: HttpConfig) -> Result<Self, Error> {
        let agent_config = ureq::Agent::config_builder()
            .tls_config(config.tls())
            .max_redirects(0)
            .http_status_as_error(false)
            .https_only(config.scheme_policy == oauth_core::SchemePolicy::HttpsOnly)
            .timeout_connect(Some(config.connect_timeout))
            .timeout_global(Some(config.timeout))
            .build();
        let inner = ureq::Agent::new_with_config(agent_config);
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
    pub fn request_token(
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
            let (result, retry_after) = match self.execute_oauth(built) {
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
                    std::thread::sleep(delay);
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
    pub fn execute_oauth(&self, request: Request<RequestBody>) -> Result<Response<Vec<u8>>, Error> {
        let (parts, body) = request.into_parts();
        let request = Request::from_parts(parts, body.into_bytes());
        let response = self.execute(request, self.config.max_response_body)?;
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
    pub fn execute(
        &self,
        request: Request<Vec<u8>>,
        limit: usize,
    ) -> Result<Response<Vec<u8>>, Error> {
        let response = self.inner.run(request).map_err(map_error)?;
        if response
            .body()
            .content_length()
            .is_some_and(|n| n > limit as u64)
        {
            return Err(too_large(limit));
        }
        let (parts, mut body) = response.into_parts();
        let body = body
            .with_config()
            .limit(limit as u64)
            .read_to_vec()
            .map_err(|e| match e {
                ureq::Error::BodyExceedsLimit(_) => too_large(limit),
                e => map_error(e),
            })?;
        Ok(Response::from_parts(parts, body))
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
