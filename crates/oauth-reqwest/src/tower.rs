//! [`OAuthLayer`]: the token source's token on a tower client stack (hyper, tonic, ...).

use std::future::Future;
use std::pin::Pin;
use std::task::{Context, Poll};

use bytes::Bytes;
use http_body::{Body as HttpBody, Frame, SizeHint};
use http_body_util::BodyExt;
use oauth_core::http::{HeaderMap, Request, Response, StatusCode};
use oauth_runtime::Downstream;
use tower_service::Service;

use crate::TokenSource;

/// The error of an [`OAuthService`]: the inner service's, a body's, or the token source's
/// (an `oauth_core::Error`), boxed as tower stacks expect.
pub type BoxError = Box<dyn std::error::Error + Send + Sync>;

/// A request body the layer may send a second time (after a rejected token) if it can copy it.
///
/// In-memory bodies can (`Full<Bytes>`, `Empty<Bytes>`, `String`, `Vec<u8>`, `Bytes`); streams
/// cannot (`BoxBody`, `UnsyncBoxBody`, `StreamBody`): for those, a rejected token's 401 is
/// returned rather than retried. Implement it for your own body type to say which it is.
pub trait ReplayBody: Sized {
    /// A copy of the body, or `None` if it cannot be sent again.
    fn try_clone(&self) -> Option<Self>;
}

macro_rules! replayable {
    ($($t:ty),*) => {$(
        impl ReplayBody for $t {
            fn try_clone(&self) -> Option<Self> {
                Some(self.clone())
            }
        }
    )*};
}
replayable!(
    String,
    Vec<u8>,
    Bytes,
    http_body_util::Full<Bytes>,
    http_body_util::Empty<Bytes>
);

impl<E> ReplayBody for http_body_util::combinators::BoxBody<Bytes, E> {
    fn try_clone(&self) -> Option<Self> {
        None
    }
}

impl<E> ReplayBody for http_body_util::combinators::UnsyncBoxBody<Bytes, E> {
    fn try_clone(&self) -> Option<Self> {
        None
    }
}

impl<S> ReplayBody for http_body_util::StreamBody<S> {
    fn try_clone(&self) -> Option<Self> {
        None
    }
}

/// A [`tower_layer::Layer`] for the client side: every request through the wrapped service gets
/// the token source's token (`Authorization: Bearer`, or DPoP for a DPoP-bound token), and a
/// rejected token is recovered from once, exactly as [`TokenSource::send`] does (the same
/// `RejectionClassifier`, the same token cache) — with your stack and streamed bodies.
///
/// - The request is sent again after a 401 that rejects the token only when its body is
///   [`ReplayBody`] with a copy to give; otherwise the 401 is returned with the
///   [`NotReplayed`](oauth_runtime::NotReplayed) extension (the token has been dropped: the
///   next request gets a new one).
/// - Responses stream through ([`OAuthBody::Streaming`]), except a 401's, read up to 64 KiB for
///   the classifier and handed back as [`OAuthBody::Buffered`].
///
/// ```no_run
/// use http_body_util::Full;
/// use hyper_util::client::legacy::Client as HyperClient;
/// use hyper_util::rt::TokioExecutor;
/// use oauth_reqwest::{OAuthLayer, TokenSource};
/// use tower::{Layer, ServiceExt};
///
/// # async fn run(tokens: TokenSource) -> Result<(), oauth_reqwest::BoxError> {
/// let hyper = HyperClient::builder(TokioExecutor::new()).build_http::<Full<bytes::Bytes>>();
/// let api = OAuthLayer::new(tokens).layer(hyper);
/// let request = oauth_reqwest::http::Request::get("http://127.0.0.1:8080/v1/things").body(Full::default())?;
/// let response = api.oneshot(request).await?;
/// println!("{}", response.status());
/// # Ok(()) }
/// ```
#[derive(Clone, Debug)]
pub struct OAuthLayer {
    tokens: TokenSource,
}

impl OAuthLayer {
    /// A layer adding `tokens`' token.
    pub fn new(tokens: TokenSource) -> Self {
        Self { tokens }
    }
}

impl<S> tower_layer::Layer<S> for OAuthLayer {
    type Service = OAuthService<S>;

    fn layer(&self, inner: S) -> OAuthService<S> {
        OAuthService {
            inner,
            tokens: self.tokens.clone(),
        }
    }
}

/// The service of an [`OAuthLayer`].
#[derive(Clone, Debug)]
pub struct OAuthService<S> {
    inner: S,
    tokens: TokenSource,
}

impl<S, B, R> Service<Request<B>> for OAuthService<S>
where
    S: Service<Request<B>, Response = Response<R>> + Clone + Send + 'static,
    S::Future: Send,
    S::Error: Into<BoxError>,
    B: ReplayBody + Send + 'static,
    R: HttpBody<Data = Bytes> + Send + 'static,
    R::Error: Into<BoxError>,
{
    type Response = Response<OAuthBody<R>>;
    type Error = BoxError;
    type Future = Pin<Box<dyn Future<Output = Result<Self::Response, BoxError>> + Send>>;

    fn poll_ready(&mut self, cx: &mut Context<'_>) -> Poll<Result<(), BoxError>> {
        self.inner.poll_ready(cx).map_err(Into::into)
    }

    fn call(&mut self, request: Request<B>) -> Self::Future {
        // The ready service takes this call; a clone (made ready when used) takes a retry.
        let ready = self.inner.clone();
        let ready = std::mem::replace(&mut self.inner, ready);
        let tokens = self.tokens.clone();
        Box::pin(async move {
            let mut stack = Stack {
                ready: Some(ready),
                spare: None,
                _body: std::marker::PhantomData,
            };
            tokens
                .authorized(&mut stack, request)
                .await
                .map_err(|e| e.0)
        })
    }
}

/// A response body from an [`OAuthService`].
#[derive(Debug)]
#[non_exhaustive]
pub enum OAuthBody<R> {
    /// The inner service's body, as it streams.
    Streaming(R),
    /// A body read into memory (a 401 the classifier looked at).
    Buffered(Option<Bytes>),
}

impl<R> HttpBody for OAuthBody<R>
where
    R: HttpBody<Data = Bytes> + Unpin,
    R::Error: Into<BoxError>,
{
    type Data = Bytes;
    type Error = BoxError;

    fn poll_frame(
        self: Pin<&mut Self>,
        cx: &mut Context<'_>,
    ) -> Poll<Option<Result<Frame<Bytes>, BoxError>>> {
        match self.get_mut() {
            Self::Streaming(body) => Pin::new(body).poll_frame(cx).map_err(Into::into),
            Self::Buffered(bytes) => Poll::Ready(bytes.take().map(|b| Ok(Frame::data(b)))),
        }
    }

    fn is_end_stream(&self) -> bool {
        match self {
            Self::Streaming(body) => body.is_end_stream(),
            Self::Buffered(bytes) => bytes.is_none(),
        }
    }

    fn size_hint(&self) -> SizeHint {
        match self {
            Self::Streaming(body) => body.size_hint(),
            Self::Buffered(bytes) => {
                SizeHint::with_exact(bytes.as_ref().map_or(0, |b| b.len() as u64))
            }
        }
    }
}

struct Stack<S, B> {
    /// The service made ready by the caller's `poll_ready`, for the first attempt.
    ready: Option<S>,
    /// A clone for a retry.
    spare: Option<S>,
    _body: std::marker::PhantomData<fn(B)>,
}

struct StackError(BoxError);

impl From<oauth_core::Error> for StackError {
    fn from(error: oauth_core::Error) -> Self {
        Self(Box::new(error))
    }
}

impl<S, B, R> Downstream for Stack<S, B>
where
    S: Service<Request<B>, Response = Response<R>> + Clone + Send + 'static,
    S::Future: Send,
    S::Error: Into<BoxError>,
    B: ReplayBody + Send + 'static,
    R: HttpBody<Data = Bytes> + Send + 'static,
    R::Error: Into<BoxError>,
{
    type Request = Request<B>;
    type Response = Response<OAuthBody<R>>;
    type Error = StackError;

    fn head(request: &Request<B>) -> Request<()> {
        oauth_runtime::request_head(request)
    }

    fn headers_mut(request: &mut Request<B>) -> &mut HeaderMap {
        request.headers_mut()
    }

    fn try_clone(request: &Request<B>) -> Option<Request<B>> {
        // Request-level settings (a caller's markers) go too.
        Some(oauth_runtime::copy_request(
            request,
            request.body().try_clone()?,
        ))
    }

    async fn send(&mut self, request: Request<B>) -> Result<Self::Response, StackError> {
        let service = match self.ready.take() {
            Some(ready) => {
                self.spare = Some(ready.clone());
                ready
            }
            None => {
                let mut service = self
                    .spare
                    .clone()
                    .ok_or_else(|| StackError("no service for a retry".into()))?;
                std::future::poll_fn(|cx| service.poll_ready(cx))
                    .await
                    .map_err(|e| StackError(e.into()))?;
                service
            }
        };
        let mut service = service;
        let response = service
            .call(request)
            .await
            .map_err(|e| StackError(e.into()))?;
        Ok(response.map(OAuthBody::Streaming))
    }

    fn response_head(response: &Self::Response) -> (StatusCode, &HeaderMap) {
        (response.status(), response.headers())
    }

    async fn buffer(
        response: Self::Response,
        limit: usize,
    ) -> Result<Response<Vec<u8>>, StackError> {
        let (parts, body) = response.into_parts();
        let body = match body {
            OAuthBody::Streaming(body) => http_body_util::Limited::new(body, limit)
                .collect()
                .await
                .map_err(StackError)?
                .to_bytes(),
            OAuthBody::Buffered(bytes) => bytes.unwrap_or_default(),
        };
        Ok(Response::from_parts(parts, body.to_vec()))
    }

    fn unbuffer(response: Response<Vec<u8>>) -> Self::Response {
        response.map(|body| OAuthBody::Buffered(Some(Bytes::from(body))))
    }
}
