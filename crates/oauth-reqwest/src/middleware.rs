//! [`OAuthMiddleware`]: the token source's token on a [`reqwest_middleware`] client.

use oauth_core::http::{Extensions, HeaderMap, Request, Response, StatusCode};
use oauth_runtime::Downstream;
use reqwest_middleware::{Next, Result as MwResult};

use crate::TokenSource;

/// A [`reqwest_middleware::Middleware`] that sends every request with the token source's token
/// (`Authorization: Bearer`, or DPoP for a DPoP-bound token) and recovers once from a rejected
/// token, exactly as [`TokenSource::send`] — the same `RejectionClassifier` (set on the source's
/// builder), the same token cache — but on your own client, with streamed bodies.
///
/// - Request bodies are sent as they are. After a 401 that rejects the token, the token is
///   dropped and the request sent again with a new one **when its body can be copied**
///   (`reqwest::Request::try_clone`: bytes, strings, JSON, forms); a streamed body
///   (`Body::wrap_stream`) cannot be sent twice, so the 401 is returned, carrying the
///   [`NotReplayed`](oauth_runtime::NotReplayed) extension, and the next request gets the new
///   token.
/// - Response bodies are streamed, except a 401's, which is read (up to 64 KiB) for the
///   classifier; that response is handed back rebuilt from the bytes read (its
///   `Response::url()` is then not the request's).
///
/// ```no_run
/// use oauth_reqwest::{Client, ClientAuthentication, ClientSecret, HttpClient, HttpConfig};
/// use oauth_reqwest::{OAuthMiddleware, TokenRequest, TokenSource};
///
/// # async fn run() -> Result<(), Box<dyn std::error::Error>> {
/// let http = HttpClient::new(HttpConfig::new())?;
/// let endpoint = http.endpoint("https://auth.example.com/oauth/token")?;
/// let client = Client::new("my-client", ClientAuthentication::SecretBasic(ClientSecret::new("s3cret")));
/// let tokens = TokenSource::builder(http, endpoint, client)
///     .grant(TokenRequest::client_credentials())
///     .build();
///
/// let api = reqwest_middleware::ClientBuilder::new(reqwest::Client::new())
///     .with(OAuthMiddleware::new(tokens))
///     .build();
/// let things = api.get("https://api.example.com/v1/things").send().await?;
/// println!("{}", things.status());
/// # Ok(()) }
/// ```
#[derive(Clone, Debug)]
pub struct OAuthMiddleware {
    tokens: TokenSource,
}

impl OAuthMiddleware {
    /// A middleware adding `tokens`' token.
    pub fn new(tokens: TokenSource) -> Self {
        Self { tokens }
    }
}

#[async_trait::async_trait]
impl reqwest_middleware::Middleware for OAuthMiddleware {
    async fn handle(
        &self,
        request: reqwest::Request,
        extensions: &mut Extensions,
        next: Next<'_>,
    ) -> MwResult<reqwest::Response> {
        let mut downstream = Stack { next, extensions };
        self.tokens
            .authorized(&mut downstream, request)
            .await
            .map_err(|e| e.0)
    }
}

struct Stack<'a> {
    next: Next<'a>,
    extensions: &'a mut Extensions,
}

/// reqwest-middleware's error, which oauth-core's errors convert into.
struct StackError(reqwest_middleware::Error);

impl From<oauth_core::Error> for StackError {
    fn from(error: oauth_core::Error) -> Self {
        Self(reqwest_middleware::Error::middleware(error))
    }
}

impl Downstream for Stack<'_> {
    type Request = reqwest::Request;
    type Response = reqwest::Response;
    type Error = StackError;

    fn head(request: &reqwest::Request) -> Request<()> {
        let mut head = Request::new(());
        *head.method_mut() = request.method().clone();
        if let Ok(uri) = request.url().as_str().parse() {
            *head.uri_mut() = uri;
        }
        *head.version_mut() = request.version();
        *head.headers_mut() = request.headers().clone();
        head
    }

    fn headers_mut(request: &mut reqwest::Request) -> &mut HeaderMap {
        request.headers_mut()
    }

    fn try_clone(request: &reqwest::Request) -> Option<reqwest::Request> {
        request.try_clone()
    }

    async fn send(&mut self, request: reqwest::Request) -> Result<reqwest::Response, StackError> {
        self.next
            .clone()
            .run(request, self.extensions)
            .await
            .map_err(StackError)
    }

    fn response_head(response: &reqwest::Response) -> (StatusCode, &HeaderMap) {
        (response.status(), response.headers())
    }

    async fn buffer(
        mut response: reqwest::Response,
        limit: usize,
    ) -> Result<Response<Vec<u8>>, StackError> {
        let mut body = Vec::new();
        while let Some(chunk) = response.chunk().await.map_err(|e| StackError(e.into()))? {
            if body.len() + chunk.len() > limit {
                return Err(oauth_runtime::too_large(limit).into());
            }
            body.extend_from_slice(&chunk);
        }
        let mut answer = Response::new(body);
        *answer.status_mut() = response.status();
        *answer.version_mut() = response.version();
        *answer.headers_mut() = std::mem::take(response.headers_mut());
        Ok(answer)
    }

    fn unbuffer(response: Response<Vec<u8>>) -> reqwest::Response {
        reqwest::Response::from(response)
    }
}
