//! The upstream side: one pool of HTTP/1.1 connections per upstream and worker, each
//! connection driven by hyper's client connection on the worker's own thread.
//!
//! A request takes an idle connection (the one used last first), or opens one, sends over it,
//! and gives it back when the answer's body has been read to its end. An answer dropped before
//! its end closes its connection (HTTP/1 cannot reuse it). Nothing here is shared between
//! workers: no lock is contended, no hash of the upstream's name is taken per request, and no
//! task is spawned per request (hyper-util's pooled client did all three).

use std::pin::Pin;
use std::sync::{Arc, Mutex};
use std::task::{Context, Poll};
use std::time::{Duration, Instant};

use axum::body::Body;
use axum::http::{HeaderValue, Request, Response, Uri};
use hyper::body::{Bytes, Frame, Incoming, SizeHint};
use hyper::client::conn::http1::SendRequest;
use hyper_rustls::HttpsConnector;
use hyper_util::client::legacy::connect::HttpConnector;
use tower_service::Service as _;

/// An idle connection is closed after this long unused (hyper-util's pooled client's default).
const IDLE_TIMEOUT: Duration = Duration::from_secs(90);
/// The most idle connections a worker keeps to one upstream; more are closed when they free up.
const MAX_IDLE: usize = 256;

/// An upstream service: where it is, its connections (one pool per worker), its timeout.
pub(crate) struct Upstream {
    /// Its scheme and authority (what connections are opened to), and the base path (no
    /// trailing slash).
    origin: Uri,
    authority: axum::http::uri::Authority,
    pub(crate) base: String,
    connector: HttpsConnector<HttpConnector>,
    /// Indexed by [`crate::server::worker`]: a worker's requests go over connections its own
    /// thread drives, so no other thread has to be woken to send one or read its answer.
    pools: Vec<Arc<Pool>>,
    /// The time a request has to get its answer's head, connection included.
    pub(crate) timeout: Duration,
}

/// One worker's idle connections to one upstream, the last freed at the end.
#[derive(Default)]
struct Pool {
    idle: Mutex<Vec<Idle>>,
}

struct Idle {
    sender: SendRequest<Body>,
    since: Instant,
}

impl Pool {
    /// The most recently used connection that is still open, if any; those closed or idle too
    /// long are dropped on the way.
    fn take(&self) -> Option<SendRequest<Body>> {
        let mut idle = self.idle.lock().unwrap_or_else(|e| e.into_inner());
        while let Some(conn) = idle.pop() {
            if !conn.sender.is_closed() && conn.since.elapsed() < IDLE_TIMEOUT {
                return Some(conn.sender);
            }
        }
        None
    }

    fn put(&self, sender: SendRequest<Body>) {
        if sender.is_closed() {
            return;
        }
        let mut idle = self.idle.lock().unwrap_or_else(|e| e.into_inner());
        if idle.len() < MAX_IDLE {
            idle.push(Idle {
                sender,
                since: Instant::now(),
            });
        }
    }
}

/// Why a request got no answer from its upstream.
#[derive(Debug)]
pub(crate) enum SendError {
    /// No connection could be opened (refused, unreachable, TLS refused).
    Connect(Box<dyn std::error::Error + Send + Sync>),
    /// The connection failed while the request was sent or its answer read.
    Http(hyper::Error),
}

impl std::fmt::Display for SendError {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        match self {
            Self::Connect(e) => write!(f, "connect: {e}"),
            Self::Http(e) => write!(f, "{e}"),
        }
    }
}

impl std::error::Error for SendError {
    fn source(&self) -> Option<&(dyn std::error::Error + 'static)> {
        match self {
            Self::Connect(e) => e.source(),
            Self::Http(e) => std::error::Error::source(e),
        }
    }
}

impl Upstream {
    /// An upstream at `url` (`http://` or `https://`, with a base path or none) whose TLS
    /// connections trust `tls`, with `pools` pools (one per worker).
    pub(crate) fn new(
        url: &str,
        tls: rustls::ClientConfig,
        timeout: Duration,
        pools: usize,
    ) -> Result<Self, String> {
        let uri: Uri = url.parse().map_err(|e| format!("upstream {url:?}: {e}"))?;
        let (Some(scheme), Some(authority)) = (uri.scheme().cloned(), uri.authority().cloned())
        else {
            return Err(format!("upstream {url:?}: not an absolute URL"));
        };
        let origin = Uri::builder()
            .scheme(scheme)
            .authority(authority.clone())
            .path_and_query("/")
            .build()
            .map_err(|e| format!("upstream {url:?}: {e}"))?;
        // No Nagle delay on the upstream connections (nginx's `tcp_nodelay on`): a request's
        // head goes out at once even when the previous answer's ACK is still pending.
        let mut tcp = HttpConnector::new();
        tcp.set_nodelay(true);
        tcp.enforce_http(false);
        let connector = hyper_rustls::HttpsConnectorBuilder::new()
            .with_tls_config(tls)
            .https_or_http()
            .enable_http1()
            .wrap_connector(tcp);
        Ok(Self {
            origin,
            authority,
            base: uri.path().trim_end_matches('/').to_owned(),
            connector,
            pools: (0..pools.max(1)).map(|_| Arc::default()).collect(),
            timeout,
        })
    }

    /// Sends `request` (its URI in origin form: a path and query) and returns the answer, whose
    /// body gives its connection back to the pool when read to its end.
    pub(crate) async fn send(
        &self,
        mut request: Request<Body>,
    ) -> Result<Response<Body>, SendError> {
        if !request.headers().contains_key(axum::http::header::HOST)
            && let Ok(host) = HeaderValue::from_str(self.authority.as_str())
        {
            request.headers_mut().insert(axum::http::header::HOST, host);
        }
        let pool = &self.pools[crate::server::worker() % self.pools.len()];
        // Idle connections first; one the upstream has just closed gives the request back
        // unsent, and the next is tried, then a new one.
        while let Some(mut sender) = pool.take() {
            if sender.ready().await.is_err() {
                continue;
            }
            match sender.try_send_request(request).await {
                Ok(response) => return Ok(returning(response, sender, pool)),
                Err(mut e) => match e.take_message() {
                    Some(unsent) => request = unsent,
                    None => return Err(SendError::Http(e.into_error())),
                },
            }
        }
        // On the heap: a connection's setup (TCP, TLS, the handshake) is most of this
        // future's size, and a request on a pooled connection never needs it.
        let mut sender = Box::pin(self.connect()).await?;
        match sender.send_request(request).await {
            Ok(response) => Ok(returning(response, sender, pool)),
            Err(e) => Err(SendError::Http(e)),
        }
    }

    /// A new connection, driven by a task on the calling worker's runtime.
    async fn connect(&self) -> Result<SendRequest<Body>, SendError> {
        let mut connector = self.connector.clone();
        std::future::poll_fn(|cx| connector.poll_ready(cx))
            .await
            .map_err(SendError::Connect)?;
        let io = connector
            .call(self.origin.clone())
            .await
            .map_err(SendError::Connect)?;
        let (sender, conn) = hyper::client::conn::http1::handshake(io)
            .await
            .map_err(SendError::Http)?;
        tokio::spawn(async move {
            if let Err(e) = conn.await {
                tracing::debug!(error = %e, "upstream connection closed");
            }
        });
        Ok(sender)
    }
}

/// `response` with a body that gives `sender` back to `pool` once read to its end.
fn returning(
    response: Response<Incoming>,
    sender: SendRequest<Body>,
    pool: &Arc<Pool>,
) -> Response<Body> {
    response.map(|body| {
        Body::new(Returning {
            body,
            connection: Some((sender, Arc::clone(pool))),
        })
    })
}

/// An upstream answer's body, holding the connection it arrives on until its end.
struct Returning {
    body: Incoming,
    connection: Option<(SendRequest<Body>, Arc<Pool>)>,
}

impl Returning {
    /// Gives the connection back, once the whole body has arrived.
    fn release_if_done(&mut self) {
        if hyper::body::Body::is_end_stream(&self.body)
            && let Some((sender, pool)) = self.connection.take()
        {
            pool.put(sender);
        }
    }
}

impl hyper::body::Body for Returning {
    type Data = Bytes;
    type Error = hyper::Error;

    fn poll_frame(
        self: Pin<&mut Self>,
        cx: &mut Context<'_>,
    ) -> Poll<Option<Result<Frame<Bytes>, hyper::Error>>> {
        let this = self.get_mut();
        let frame = std::task::ready!(Pin::new(&mut this.body).poll_frame(cx));
        match &frame {
            // The end, or an error (the connection is not given back then).
            None => this.release_if_done(),
            Some(Err(_)) => this.connection = None,
            Some(Ok(_)) => this.release_if_done(),
        }
        Poll::Ready(frame)
    }

    fn is_end_stream(&self) -> bool {
        self.body.is_end_stream()
    }

    fn size_hint(&self) -> SizeHint {
        self.body.size_hint()
    }
}

impl Drop for Returning {
    /// A body with nothing to read (a 204, a `HEAD` answer) may never be polled.
    fn drop(&mut self) {
        self.release_if_done();
    }
}
