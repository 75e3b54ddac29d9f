//! The listener: accepting connections (plain or TLS), the limits an edge needs, and the
//! graceful end of every connection.

use std::sync::{Arc, Mutex};
use std::time::{Duration, Instant};

use axum::http::Request;
use oauth_gateway::ClientCertificate;
use tokio::io::{AsyncRead, AsyncWrite};
use tokio::sync::{OwnedSemaphorePermit, Semaphore, watch};

use crate::config::{ClientAuth, ListenTls};

/// What a client may cost, read from the configuration in force when its connection arrives.
#[derive(Clone, Copy, Debug)]
pub(crate) struct ConnLimits {
    /// The time a client has to send a request's headers (hyper closes the connection then).
    /// hyper's timer also runs while a connection waits for its next request.
    pub(crate) header_read_timeout: Duration,
    /// The most bytes a request's line and headers may take (hyper answers 431 beyond).
    pub(crate) max_header_bytes: usize,
    /// How long a keep-alive connection may wait for its next request.
    pub(crate) idle_timeout: Duration,
}

/// What the accept loop needs from the application: its answer to a request, and the limits
/// and TLS acceptor in force now (both change on reload).
pub(crate) trait Current: Send + Sync + 'static {
    /// The answer to `request` (called straight from hyper: no router in between).
    fn handle(
        self: Arc<Self>,
        request: Request<hyper::body::Incoming>,
    ) -> impl Future<Output = axum::response::Response> + Send + 'static;
    /// The limits for a new connection.
    fn limits(&self) -> ConnLimits;
    /// The TLS acceptor, if the listener speaks HTTPS.
    fn tls(&self) -> Option<tokio_rustls::TlsAcceptor>;
}

/// Fixed for the process's life, and shared by every worker: the limits hold for the process,
/// not per worker.
pub(crate) struct Fixed {
    /// Connections still sending their first request's headers, for all clients together.
    max_pending: usize,
    /// Connections open at once.
    max_connections: usize,
    pending: Arc<Semaphore>,
    open: Arc<Semaphore>,
}

impl Fixed {
    pub(crate) fn new(max_pending: usize, max_connections: usize) -> Self {
        Self {
            max_pending,
            max_connections,
            pending: Arc::new(Semaphore::new(max_pending)),
            open: Arc::new(Semaphore::new(max_connections)),
        }
    }
}

thread_local! {
    /// The serving worker this thread is (0 on any other thread).
    static WORKER: std::cell::Cell<usize> = const { std::cell::Cell::new(0) };
}

/// The serving worker the calling thread is: 0 to `workers - 1` on a worker's thread, 0
/// elsewhere. What a worker keeps for itself (its upstream pools) is indexed by it.
pub(crate) fn worker() -> usize {
    WORKER.get()
}

/// Whether each worker is a thread of its own with its own listener (`SO_REUSEPORT`, which
/// spreads connections across sockets on Linux only); elsewhere one multi-thread runtime
/// serves one listener.
pub(crate) const PER_THREAD_WORKERS: bool = cfg!(target_os = "linux");

/// A listener on `addr` that other sockets may share (`SO_REUSEPORT`): the kernel spreads new
/// connections across them. Must run inside the runtime that will accept on it.
#[cfg(target_os = "linux")]
pub(crate) fn reuse_port_listener(
    addr: std::net::SocketAddr,
) -> std::io::Result<tokio::net::TcpListener> {
    let socket = if addr.is_ipv4() {
        tokio::net::TcpSocket::new_v4()?
    } else {
        tokio::net::TcpSocket::new_v6()?
    };
    socket.set_reuseaddr(true)?;
    socket.set_reuseport(true)?;
    socket.bind(addr)?;
    // The backlog `TcpListener::bind` uses.
    socket.listen(1024)
}

/// Runs `serve` on a thread of its own, in a single-threaded runtime with its own listener on
/// `addr` (`SO_REUSEPORT`), as worker `index`. `bound` gets the listener's address (or why
/// there is none) once it listens. When `serve` returns, the thread drops `served` and keeps
/// its runtime going until `release` turns true: tasks another worker depends on (a pooled
/// connection of a shared client, say) may live in it.
#[cfg(target_os = "linux")]
#[allow(clippy::too_many_arguments)]
pub(crate) fn spawn_worker<C: Current>(
    index: usize,
    addr: std::net::SocketAddr,
    current: Arc<C>,
    fixed: Arc<Fixed>,
    stop: watch::Receiver<bool>,
    bound: tokio::sync::oneshot::Sender<Result<std::net::SocketAddr, String>>,
    served: tokio::sync::mpsc::Sender<()>,
    mut release: watch::Receiver<bool>,
) -> Result<(), String> {
    let runtime = tokio::runtime::Builder::new_current_thread()
        .enable_all()
        .build()
        .map_err(|e| format!("worker {index}: {e}"))?;
    std::thread::Builder::new()
        .name(format!("oauth-gateway-{index}"))
        .spawn(move || {
            WORKER.set(index);
            crate::access_log::buffer_this_thread();
            runtime.block_on(async move {
                // The access log's lines wait in this thread's buffer at most this long.
                tokio::spawn(async {
                    let mut tick = tokio::time::interval(crate::access_log::FLUSH_EVERY);
                    tick.set_missed_tick_behavior(tokio::time::MissedTickBehavior::Delay);
                    loop {
                        tick.tick().await;
                        crate::access_log::flush_this_thread();
                    }
                });
                let listener = match reuse_port_listener(addr) {
                    Ok(listener) => listener,
                    Err(e) => {
                        let _ = bound.send(Err(format!("listen {addr}: {e}")));
                        return;
                    }
                };
                let _ = bound.send(Ok(listener.local_addr().unwrap_or(addr)));
                serve(listener, current, fixed, stop).await;
                crate::access_log::flush_this_thread();
                drop(served);
                let _ = release.wait_for(|r| *r).await;
            });
        })
        .map(drop)
        .map_err(|e| format!("worker {index}: {e}"))
}

/// Accepts connections and serves each with hyper's HTTP/1 connection until `stop` turns true,
/// then lets every connection finish its request in flight.
///
/// A client that sends its headers slowly (slowloris) holds a connection for at most the
/// header-read timeout, and at most `max_pending` connections can be in that state at once:
/// the limit is global, not per client address, because behind a load balancer every client
/// has the balancer's address, and the timeout already bounds how long one slot is held.
pub(crate) async fn serve<C: Current>(
    listener: tokio::net::TcpListener,
    current: Arc<C>,
    fixed: Arc<Fixed>,
    mut stop: watch::Receiver<bool>,
) {
    let (pending, open) = (&fixed.pending, &fixed.open);
    // Connections closed for a limit since the last warning, and when that was.
    let (mut refused, mut last_warning) = (0u64, None::<Instant>);
    loop {
        let (stream, peer) = tokio::select! {
            accepted = listener.accept() => match accepted {
                Ok(accepted) => accepted,
                Err(e) => {
                    // Out of file descriptors, say: wait for connections to end rather than spin.
                    tracing::warn!(error = %e, "accept failed");
                    tokio::time::sleep(Duration::from_millis(100)).await;
                    continue;
                }
            },
            _ = stop.wait_for(|s| *s) => break,
        };
        let permits = Arc::clone(open)
            .try_acquire_owned()
            .ok()
            .zip(Arc::clone(pending).try_acquire_owned().ok());
        let Some((open_permit, pending_permit)) = permits else {
            // One line a second at most, with the count: a flood must not flood the log too.
            refused += 1;
            if last_warning.is_none_or(|at| at.elapsed() >= Duration::from_secs(1)) {
                tracing::warn!(
                    %peer,
                    refused,
                    max_connections = fixed.max_connections,
                    max_pending_connections = fixed.max_pending,
                    "too many connections still sending request headers, or open; connection closed"
                );
                refused = 0;
                last_warning = Some(Instant::now());
            }
            continue;
        };
        tracing::debug!(%peer, "connection accepted");
        let limits = current.limits();
        let tls = current.tls();
        let handler = Arc::clone(&current);
        let service = move |certificate| Admitted {
            pending: Mutex::new(Some(pending_permit)),
            activity: Arc::new(Mutex::new(Activity {
                in_flight: 0,
                served: false,
                last: Instant::now(),
            })),
            certificate,
            inner: handler,
        };
        let stop = stop.clone();
        tokio::spawn(async move {
            let _open = open_permit;
            match tls {
                None => connection(stream, service(None), limits, stop, peer).await,
                Some(acceptor) => {
                    // The handshake is part of what a client must finish in time.
                    let accepted =
                        tokio::time::timeout(limits.header_read_timeout, acceptor.accept(stream))
                            .await;
                    match accepted {
                        Ok(Ok(stream)) => {
                            // Hashed once for the connection's life: what a certificate-bound
                            // token's `cnf.x5t#S256` is compared with (RFC 8705 §3).
                            let certificate =
                                oauth_gateway::tls::client_certificate(stream.get_ref().1);
                            let service = service(certificate);
                            connection(stream, service, limits, stop, peer).await;
                        }
                        Ok(Err(e)) => tracing::debug!(%peer, error = %e, "TLS handshake failed"),
                        Err(_) => tracing::debug!(%peer, "TLS handshake not finished in time"),
                    }
                }
            }
        });
    }
    drop(listener);
    // Every connection holds an `open` permit until it ends: this waits for every worker's.
    let all = u32::try_from(fixed.max_connections).unwrap_or(u32::MAX);
    let _ = open.acquire_many(all).await;
}

/// Serves one connection until it ends, it has been idle too long, or the server stops.
async fn connection<I, C>(
    io: I,
    service: Admitted<C>,
    limits: ConnLimits,
    mut stop: watch::Receiver<bool>,
    peer: std::net::SocketAddr,
) where
    I: AsyncRead + AsyncWrite + Unpin + Send + 'static,
    C: Current,
{
    let mut http = hyper::server::conn::http1::Builder::new();
    http.timer(hyper_util::rt::TokioTimer::new())
        .header_read_timeout(limits.header_read_timeout)
        .max_buf_size(limits.max_header_bytes);
    let activity = Arc::clone(&service.activity);
    let conn = http.serve_connection(hyper_util::rt::TokioIo::new(io), service);
    tokio::pin!(conn);
    let mut closing = false;
    // The stop signal and the idle time are looked at on this tick, not on every wake-up of
    // the connection: the stop signal is one `watch` for all workers, and waiting on it would
    // take its lock (which every worker shares) each time the connection's task runs. A
    // connection learns of a stop within a tick.
    let mut tick = tokio::time::interval(Duration::from_millis(250));
    let result = loop {
        tokio::select! {
            result = conn.as_mut() => break result,
            _ = tick.tick(), if !closing => {
                if *stop.borrow_and_update() {
                    closing = true;
                    conn.as_mut().graceful_shutdown();
                    continue;
                }
                let idle = activity
                    .lock()
                    .map(|a| a.served && a.in_flight == 0 && a.last.elapsed() >= limits.idle_timeout)
                    .unwrap_or(false);
                if idle {
                    tracing::debug!(%peer, "keep-alive connection idle; closed");
                    closing = true;
                    conn.as_mut().graceful_shutdown();
                }
            }
        }
    };
    match result {
        Ok(()) => tracing::debug!(%peer, "connection closed"),
        Err(e) if e.is_timeout() => {
            tracing::debug!(%peer, "request headers not received in time; connection closed");
        }
        Err(e) => tracing::debug!(%peer, error = %e, "connection closed"),
    }
}

/// Requests in flight on a connection, and when one last ended. Before its first request a
/// connection is bounded by the header-read timeout alone.
struct Activity {
    in_flight: usize,
    served: bool,
    last: Instant,
}

/// A connection's service: counts the connection as pending (holds a permit) until its first
/// request's headers have arrived, and keeps its activity for the idle timeout.
struct Admitted<C> {
    pending: Mutex<Option<OwnedSemaphorePermit>>,
    activity: Arc<Mutex<Activity>>,
    /// The client certificate of the connection (mutual TLS), given to each request.
    certificate: Option<ClientCertificate>,
    inner: Arc<C>,
}

/// Marks a request's end when dropped (answered or cancelled).
struct InFlight(Arc<Mutex<Activity>>);

impl Drop for InFlight {
    fn drop(&mut self) {
        if let Ok(mut a) = self.0.lock() {
            a.in_flight = a.in_flight.saturating_sub(1);
            a.last = Instant::now();
        }
    }
}

type BoxFuture<T> = std::pin::Pin<Box<dyn Future<Output = T> + Send>>;

impl<C: Current> hyper::service::Service<Request<hyper::body::Incoming>> for Admitted<C> {
    type Response = axum::response::Response;
    type Error = std::convert::Infallible;
    type Future = BoxFuture<Result<axum::response::Response, std::convert::Infallible>>;

    fn call(&self, mut request: Request<hyper::body::Incoming>) -> Self::Future {
        if let Some(certificate) = self.certificate {
            request.extensions_mut().insert(certificate);
        }
        if let Ok(mut permit) = self.pending.lock() {
            permit.take();
        }
        if let Ok(mut a) = self.activity.lock() {
            a.in_flight += 1;
            a.served = true;
        }
        let guard = InFlight(Arc::clone(&self.activity));
        let inner = Arc::clone(&self.inner);
        // The handler's future is made inside the box, not moved into it (it is kilobytes).
        Box::pin(async move {
            let response = inner.handle(request).await;
            drop(guard);
            Ok(response)
        })
    }
}

/// The HTTPS listener's acceptor: its PEM certificate chain and key, and what it asks of a
/// client's certificate (mutual TLS).
pub(crate) fn tls_acceptor(tls: &ListenTls) -> Result<tokio_rustls::TlsAcceptor, String> {
    use rustls::pki_types::pem::PemObject as _;
    use rustls::pki_types::{CertificateDer, PrivateKeyDer};
    let (cert_file, key_file) = (&tls.cert_file, &tls.key_file);
    let certs = CertificateDer::pem_file_iter(cert_file)
        .and_then(Iterator::collect::<Result<Vec<_>, _>>)
        .map_err(|e| format!("[tls] cert_file {}: {e}", cert_file.display()))?;
    if certs.is_empty() {
        return Err(format!(
            "[tls] cert_file {}: no certificate",
            cert_file.display()
        ));
    }
    // The key's own error could quote it; only its kind is said.
    let key = PrivateKeyDer::from_pem_file(key_file).map_err(|_| {
        format!(
            "[tls] key_file {}: no readable PEM private key",
            key_file.display()
        )
    })?;
    let provider = Arc::new(rustls::crypto::ring::default_provider());
    let builder = rustls::ServerConfig::builder_with_provider(Arc::clone(&provider))
        .with_safe_default_protocol_versions()
        .map_err(|e| format!("[tls]: {e}"))?;
    let required = tls.client_auth == ClientAuth::Required;
    let builder = match (tls.client_auth, &tls.client_ca_file) {
        (ClientAuth::Off, _) => builder.with_no_client_auth(),
        (_, Some(ca_file)) => {
            let mut roots = rustls::RootCertStore::empty();
            let cas = CertificateDer::pem_file_iter(ca_file)
                .and_then(Iterator::collect::<Result<Vec<_>, _>>)
                .map_err(|e| format!("[tls] client_ca_file {}: {e}", ca_file.display()))?;
            let (added, _) = roots.add_parsable_certificates(cas);
            if added == 0 {
                return Err(format!(
                    "[tls] client_ca_file {}: no CA certificate",
                    ca_file.display()
                ));
            }
            let verifier = rustls::server::WebPkiClientVerifier::builder_with_provider(
                Arc::new(roots),
                Arc::clone(&provider),
            );
            let verifier = if required {
                verifier
            } else {
                verifier.allow_unauthenticated()
            };
            let verifier = verifier
                .build()
                .map_err(|e| format!("[tls] client_ca_file {}: {e}", ca_file.display()))?;
            builder.with_client_cert_verifier(verifier)
        }
        // Any certificate whose key the client proves (the chain unchecked): it only binds
        // tokens to the connection (RFC 8705 §3), as self-signed certificates do (§2.2).
        (_, None) => builder.with_client_cert_verifier(Arc::new(
            oauth_gateway::tls::AnyClientCertificate::new(&provider, required),
        )),
    };
    let mut config = builder
        .with_single_cert(certs, key)
        .map_err(|e| format!("[tls] the certificate and key: {e}"))?;
    config.alpn_protocols = vec![b"http/1.1".to_vec()];
    Ok(tokio_rustls::TlsAcceptor::from(Arc::new(config)))
}
