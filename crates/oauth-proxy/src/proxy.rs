//! The proxy: settings turned into gateways and upstream clients, the request handler, the
//! server, its reload and its shutdown.

use std::collections::BTreeMap;
use std::sync::atomic::{AtomicBool, AtomicU64, Ordering};
use std::sync::{Arc, RwLock};
use std::time::{Duration, Instant, SystemTime};

use axum::body::Body;
use axum::http::{HeaderMap, HeaderName, HeaderValue, Request, Response, StatusCode, Uri};
use base64::Engine as _;
use http_body_util::BodyExt as _;
use oauth_gateway::oauth_core::Endpoint;
use oauth_gateway::{
    ApiPolicy, CacheConfig, ClientCertificate, ContractStore, Denial, DpopPolicy, DpopRequirement,
    Gateway, InvalidTokenReason, JwtIssuer, Principal, RateLimitFallback, RedbContracts,
};
use oauth_reqwest::{Client, ClientAuthentication, ClientSecret, HttpClient, HttpConfig};

use crate::config::{Auth, Config, Contracts, Dpop, Mode, ScopeCriteria, env_secret};
use crate::metrics::{Metrics, RequestCounters};
use crate::server::{ConnLimits, Current, Fixed};
use crate::upstream::Upstream;

struct Route {
    prefix: String,
    api: String,
    /// `api` as the `x-oauth-api` value, made once (`None` if it cannot be one).
    api_header: Option<HeaderValue>,
    /// The API's request counters (`/metrics`), held here so that counting needs no lookup.
    requests: Arc<RequestCounters>,
    gateway: Gateway,
    /// Whether `%25` (an encoded `%`) may appear in this route's paths.
    allow_encoded_percent: bool,
    upstream: Upstream,
    strip_prefix: bool,
    max_body_bytes: u64,
}

/// Everything a configuration file builds; replaced as a whole on reload.
pub(crate) struct App {
    routes: Vec<Route>,
    forward_token: bool,
    access_log: bool,
    limits: ConnLimits,
    tls: Option<tokio_rustls::TlsAcceptor>,
    /// The fleet's cache (Redis), if configured: its health is reported.
    fleet_cache: Option<Arc<oauth_redis::AsyncRedisStore>>,
    /// Every Redis store, by section: checked once before the configuration takes effect.
    redis: Vec<(&'static str, Arc<oauth_redis::AsyncRedisStore>)>,
    config: Config,
}

impl App {
    /// Refuses a configuration whose Redis server's certificate is not trusted (the wrong
    /// `ca_file`, the wrong host): a mistake to report at once, not a fleet part that is down.
    /// A server that does not answer is not refused: the gateway starts without it (local
    /// cache, the limits' fallback) and `/metrics` shows it down until it answers.
    async fn check_redis_trust(&self) -> Result<(), String> {
        use std::error::Error as _;
        for (section, store) in &self.redis {
            let Err(e) = store.connect_once(Duration::from_secs(5)).await else {
                continue;
            };
            let rejected = e
                .source()
                .and_then(|s| s.downcast_ref::<oauth_redis::RedisFailure>())
                .is_some_and(oauth_redis::RedisFailure::certificate_rejected);
            if rejected {
                return Err(format!("{section}: {e}"));
            }
            tracing::warn!(section, error = %e, "Redis does not answer yet");
        }
        Ok(())
    }
}

/// What the process keeps across reloads: the contract store (a redb file can be opened once),
/// and the application in force.
pub(crate) struct Shared {
    app: RwLock<Arc<App>>,
    draining: AtomicBool,
    pub(crate) metrics: Metrics,
    contracts: std::sync::Mutex<(Contracts, Arc<dyn ContractStore>)>,
    /// The listener's TLS acceptor: the configuration's, replaced when its files change.
    tls: RwLock<Option<tokio_rustls::TlsAcceptor>>,
    /// The last readiness probe of what validation needs, and when it ran (one at a time).
    probe: tokio::sync::Mutex<Option<(Instant, Result<(), String>)>>,
}

impl Shared {
    fn app(&self) -> Arc<App> {
        Arc::clone(&self.app.read().unwrap_or_else(|e| e.into_inner()))
    }

    /// Whether the gateway takes traffic: a configuration loaded, not shutting down.
    pub(crate) fn ready(&self) -> bool {
        !self.draining.load(Ordering::Relaxed)
    }

    /// Whether every route's validation can run: its issuers' key sets can be had and its
    /// introspection endpoint answers. A probe's answer is reused for `probe_interval_secs`:
    /// `/readyz` and `/metrics` are scraped every few seconds, and each probe reaches the
    /// introspection endpoint and the key sets.
    pub(crate) async fn validation_ready(&self) -> Result<(), String> {
        let mut last = self.probe.lock().await;
        let app = self.app();
        let reuse = Duration::from_secs(app.config.probe_interval_secs);
        if let Some((at, result)) = &*last
            && at.elapsed() < reuse
        {
            return result.clone();
        }
        let mut result = Ok(());
        for route in &app.routes {
            if let Err(e) = route.gateway.probe().await {
                tracing::warn!(route = route.prefix, error = %e, "not ready: validation unavailable");
                result = Err(format!("route {}: {e}", route.prefix));
                break;
            }
        }
        *last = Some((Instant::now(), result.clone()));
        result
    }

    /// Whether the fleet's cache (Redis) answers; `None` without one.
    pub(crate) async fn fleet_cache_up(&self) -> Option<bool> {
        use oauth_reqwest::FleetStore as _;
        let store = self.app().fleet_cache.clone()?;
        let read =
            tokio::time::timeout(Duration::from_secs(2), store.load("oauth-gateway:health")).await;
        match read {
            Ok(Ok(_)) => Some(true),
            Ok(Err(e)) => {
                tracing::warn!(error = %e, "the fleet's cache does not answer");
                Some(false)
            }
            Err(_) => {
                tracing::warn!("the fleet's cache does not answer: timed out");
                Some(false)
            }
        }
    }

    /// Validation results cached, by API (routes of one API add up).
    pub(crate) fn cached_results(&self) -> BTreeMap<String, usize> {
        let mut out = BTreeMap::new();
        for route in &self.app().routes {
            *out.entry(route.api.clone()).or_default() += route.gateway.cached_results();
        }
        out
    }

    /// Whether the contract store answers (a lookup that finds nothing is an answer).
    pub(crate) fn contracts_available(&self) -> bool {
        let store = Arc::clone(&self.contracts.lock().unwrap_or_else(|e| e.into_inner()).1);
        !matches!(
            store.lookup("", ""),
            oauth_gateway::ContractStatus::Unavailable
        )
    }
}

impl Current for Shared {
    async fn handle(self: Arc<Self>, request: Request<hyper::body::Incoming>) -> Response<Body> {
        // The listener's own liveness check (the admin listener has it too).
        if request.uri().path() == "/healthz" {
            let method = request.method();
            return if method == axum::http::Method::GET || method == axum::http::Method::HEAD {
                plain(StatusCode::OK, "ok")
            } else {
                let mut answer = plain(StatusCode::METHOD_NOT_ALLOWED, "");
                answer.headers_mut().insert(
                    axum::http::header::ALLOW,
                    HeaderValue::from_static("GET,HEAD"),
                );
                answer
            };
        }
        handle(self, request.map(Body::new)).await
    }

    fn limits(&self) -> ConnLimits {
        self.app().limits
    }

    fn tls(&self) -> Option<tokio_rustls::TlsAcceptor> {
        self.tls.read().unwrap_or_else(|e| e.into_inner()).clone()
    }
}

/// Builds everything the configuration names, then serves until a shutdown signal; SIGHUP
/// reloads `path`.
pub(crate) async fn run(config: Config, path: std::path::PathBuf) -> Result<(), String> {
    let (store, redb) = open_contracts(&config.contracts)?;
    let metrics = Metrics::new();
    let app = build(&config, Arc::clone(&store), &metrics)?;
    app.check_redis_trust().await?;
    let shared = Arc::new(Shared {
        tls: RwLock::new(app.tls.clone()),
        app: RwLock::new(Arc::new(app)),
        draining: AtomicBool::new(false),
        metrics,
        contracts: std::sync::Mutex::new((config.contracts.clone(), store)),
        probe: tokio::sync::Mutex::new(None),
    });
    // The admin socket beside the redb file: how `oauth-gateway contracts ...` reaches this
    // process, which holds the file open (see `admin`). It is removed when `run` returns.
    #[cfg(unix)]
    let _admin = redb.and_then(|(path, store)| match crate::admin::Listener::bind(&path, store) {
        Ok(listener) => {
            tracing::info!(
                socket = %listener.path().display(),
                "admin socket ready: `oauth-gateway contracts` changes apply at once"
            );
            Some(listener)
        }
        Err(e) => {
            tracing::warn!(
                error = %e,
                "no admin socket: `oauth-gateway contracts` works only while the gateway is stopped"
            );
            None
        }
    });
    #[cfg(not(unix))]
    let _ = redb;
    let (signalled, signal) = tokio::sync::watch::channel(false);
    let fixed = Arc::new(Fixed::new(
        config.max_pending_connections,
        config.max_connections,
    ));
    // The bound address: with port 0 in the configuration, the port the system chose.
    let (listen, server) = start_serving(&config, &shared, &fixed, &signal).await?;
    if let Some(admin) = config.admin_listen {
        let admin = tokio::net::TcpListener::bind(admin)
            .await
            .map_err(|e| format!("admin_listen {admin}: {e}"))?;
        let bound = admin
            .local_addr()
            .map_err(|e| format!("admin_listen: {e}"))?;
        tracing::info!(admin_listen = %bound, "metrics and health checks ready");
        tokio::spawn(crate::metrics::serve_admin(admin, Arc::clone(&shared)));
    }
    tracing::info!(
        listen = %listen,
        tls = config.tls.is_some(),
        routes = config.routes.len(),
        workers = config.workers,
        "oauth-gateway ready"
    );
    let draining = Arc::clone(&shared);
    tokio::spawn(async move {
        shutdown_signal().await;
        tracing::info!("shutting down: no new connections, finishing requests in flight");
        draining.draining.store(true, Ordering::Relaxed);
        let _ = signalled.send(true);
    });
    #[cfg(unix)]
    tokio::spawn(reload_on_hangup(Arc::clone(&shared), path));
    tokio::spawn(watch_certificate(Arc::clone(&shared)));
    #[cfg(not(unix))]
    let _ = path;
    let grace = Duration::from_secs(config.shutdown_grace_secs);
    let mut after_signal = signal;
    tokio::select! {
        () = server => Ok(()),
        () = async {
            let _ = after_signal.wait_for(|s| *s).await;
            tokio::time::sleep(grace).await;
        } => {
            tracing::warn!("requests still in flight after the grace period; stopping");
            Ok(())
        }
    }
}

/// What ends when every connection has been served after `stop`.
type Serving = std::pin::Pin<Box<dyn Future<Output = ()>>>;

/// Starts the workers (`workers` threads, each a single-threaded runtime with its own
/// listener on `listen`, as nginx's worker processes; with port 0 the first one's port is the
/// others'), and returns the bound address and what ends once they have all stopped serving.
#[cfg(target_os = "linux")]
async fn start_serving(
    config: &Config,
    shared: &Arc<Shared>,
    fixed: &Arc<Fixed>,
    stop: &tokio::sync::watch::Receiver<bool>,
) -> Result<(std::net::SocketAddr, Serving), String> {
    // Each worker holds a sender until it has stopped serving; the receiver then sees the
    // channel closed.
    let (served, mut all_served) = tokio::sync::mpsc::channel::<()>(1);
    let (release, released) = tokio::sync::watch::channel(false);
    let mut addr = config.listen;
    for index in 0..config.workers {
        let (bound, listening) = tokio::sync::oneshot::channel();
        crate::server::spawn_worker(
            index,
            addr,
            Arc::clone(shared),
            Arc::clone(fixed),
            stop.clone(),
            bound,
            served.clone(),
            released.clone(),
        )?;
        addr = listening
            .await
            .map_err(|_| format!("worker {index} stopped at start"))??;
    }
    drop(served);
    let serving = async move {
        let _ = all_served.recv().await;
        // Every worker has served its last connection: their runtimes may end.
        let _ = release.send(true);
    };
    Ok((addr, Box::pin(serving)))
}

/// One listener served by the runtime `run` is in (multi-thread, `workers` threads): without
/// `SO_REUSEPORT`'s spreading, several listeners on one address would not share the load.
#[cfg(not(target_os = "linux"))]
async fn start_serving(
    config: &Config,
    shared: &Arc<Shared>,
    fixed: &Arc<Fixed>,
    stop: &tokio::sync::watch::Receiver<bool>,
) -> Result<(std::net::SocketAddr, Serving), String> {
    let listener = tokio::net::TcpListener::bind(config.listen)
        .await
        .map_err(|e| format!("listen {}: {e}", config.listen))?;
    let listen = listener.local_addr().unwrap_or(config.listen);
    let server = crate::server::serve(
        listener,
        Arc::clone(shared),
        Arc::clone(fixed),
        stop.clone(),
    );
    Ok((listen, Box::pin(server)))
}

/// On each SIGHUP: reads the configuration file again and, if it is good, puts everything it
/// builds in force at once (requests in flight finish with the old one). A bad file is refused
/// with one log line, and the old configuration keeps serving.
#[cfg(unix)]
async fn reload_on_hangup(shared: Arc<Shared>, path: std::path::PathBuf) {
    use tokio::signal::unix::{SignalKind, signal};
    let Ok(mut hangup) = signal(SignalKind::hangup()) else {
        tracing::warn!("SIGHUP cannot be caught: no configuration reload");
        return;
    };
    while hangup.recv().await.is_some() {
        let (task_shared, path) = (Arc::clone(&shared), path.clone());
        // Building may block (opening a store, reading files).
        let outcome = tokio::task::spawn_blocking(move || reload(&task_shared, &path)).await;
        match outcome {
            Ok(Ok(routes)) => {
                shared.metrics.reloads.fetch_add(1, Ordering::Relaxed);
                tracing::info!(routes, "configuration reloaded");
            }
            Ok(Err(e)) => {
                shared
                    .metrics
                    .reloads_failed
                    .fetch_add(1, Ordering::Relaxed);
                tracing::error!(error = %e, "configuration not reloaded; the old one stays in force");
            }
            Err(_) => {
                shared
                    .metrics
                    .reloads_failed
                    .fetch_add(1, Ordering::Relaxed);
                tracing::error!("configuration not reloaded; the old one stays in force");
            }
        }
    }
}

#[cfg(unix)]
fn reload(shared: &Shared, path: &std::path::Path) -> Result<usize, String> {
    let config = Config::load(path)?;
    let old = shared.app();
    for (what, changed) in [
        ("listen", config.listen != old.config.listen),
        (
            "admin_listen",
            config.admin_listen != old.config.admin_listen,
        ),
        (
            "max_connections",
            config.max_connections != old.config.max_connections,
        ),
        (
            "max_pending_connections",
            config.max_pending_connections != old.config.max_pending_connections,
        ),
        ("log_format", config.log_format != old.config.log_format),
        ("workers", config.workers != old.config.workers),
    ] {
        if changed {
            return Err(format!("{what} cannot change without a restart"));
        }
    }
    let mut contracts = shared.contracts.lock().unwrap_or_else(|e| e.into_inner());
    let redb = |c: &Contracts| matches!(c, Contracts::Redb { .. });
    let store = if contracts.0 == config.contracts {
        Arc::clone(&contracts.1)
    } else if redb(&contracts.0) || redb(&config.contracts) {
        // The file is held open, and its admin socket serves it.
        return Err("[contracts]: a redb store cannot change without a restart".into());
    } else {
        open_contracts(&config.contracts)?.0
    };
    let app = build(&config, Arc::clone(&store), &shared.metrics)?;
    // `reload` runs on a blocking thread of the runtime: it may wait here.
    tokio::runtime::Handle::current().block_on(app.check_redis_trust())?;
    let routes = app.routes.len();
    *contracts = (config.contracts.clone(), store);
    *shared.tls.write().unwrap_or_else(|e| e.into_inner()) = app.tls.clone();
    *shared.app.write().unwrap_or_else(|e| e.into_inner()) = Arc::new(app);
    Ok(routes)
}

/// Every two seconds: if the listener's certificate or key file changed, a new acceptor takes
/// the next handshakes (connections already open keep theirs). A pair that does not load is
/// refused with one log line per change, and the old certificate stays.
async fn watch_certificate(shared: Arc<Shared>) {
    let read = |app: &App| {
        app.config.tls.as_ref().map(|t| {
            (
                t.clone(),
                std::fs::read(&t.cert_file).ok(),
                std::fs::read(&t.key_file).ok(),
            )
        })
    };
    let mut seen = read(&shared.app());
    let mut tick = tokio::time::interval(Duration::from_secs(2));
    loop {
        tick.tick().await;
        let now = read(&shared.app());
        if now == seen {
            continue;
        }
        // A change of the configuration itself (SIGHUP) already loaded the new pair.
        let same_files = matches!((&now, &seen), (Some(n), Some(s)) if n.0 == s.0);
        seen = now;
        let Some((files, _, _)) = seen.as_ref().filter(|_| same_files) else {
            continue;
        };
        match crate::server::tls_acceptor(files) {
            Ok(acceptor) => {
                *shared.tls.write().unwrap_or_else(|e| e.into_inner()) = Some(acceptor);
                tracing::info!(cert_file = %files.cert_file.display(), "TLS certificate reloaded");
            }
            Err(e) => {
                tracing::error!(error = %e, "TLS certificate not reloaded; the old one stays in force");
            }
        }
    }
}

async fn shutdown_signal() {
    let ctrl_c = tokio::signal::ctrl_c();
    #[cfg(unix)]
    {
        let Ok(mut term) =
            tokio::signal::unix::signal(tokio::signal::unix::SignalKind::terminate())
        else {
            let _ = ctrl_c.await;
            return;
        };
        tokio::select! {
            _ = ctrl_c => {}
            _ = term.recv() => {}
        }
    }
    #[cfg(not(unix))]
    {
        let _ = ctrl_c.await;
    }
}

/// An error and its chain of sources on one line ("open failed: ...: ..."), for a start-up
/// message that names the cause, not only the step.
fn with_causes(e: &dyn std::error::Error) -> String {
    let mut text = e.to_string();
    let mut next = e.source();
    while let Some(cause) = next {
        text.push_str(": ");
        text.push_str(&cause.to_string());
        next = cause.source();
    }
    text
}

/// The redb contracts file and its store, when the configuration keeps contracts there.
type RedbStore = Option<(std::path::PathBuf, Arc<RedbContracts>)>;

fn open_contracts(contracts: &Contracts) -> Result<(Arc<dyn ContractStore>, RedbStore), String> {
    match contracts {
        Contracts::Redb { path } => {
            let store = Arc::new(
                RedbContracts::open(path)
                    .map_err(|e| format!("[contracts] {}: {}", path.display(), with_causes(&e)))?,
            );
            Ok((store.clone(), Some((path.clone(), store))))
        }
        Contracts::Postgres {
            url_env,
            max_staleness_secs,
            ca_file,
        } => {
            let url = env_secret(url_env, "[contracts] url_env")?;
            let staleness = Duration::try_from_secs_f64(*max_staleness_secs)
                .map_err(|_| "[contracts] max_staleness_secs: not a duration".to_owned())?;
            let config = oauth_postgres::PostgresConfig::new().max_staleness(staleness);
            let store = match ca_file {
                None => oauth_postgres::PostgresContracts::connect(&url, config),
                Some(ca) => {
                    let pem = read_store_ca("[contracts]", ca)?;
                    oauth_postgres::PostgresTls::with_ca_pem(&pem).and_then(|tls| {
                        oauth_postgres::PostgresContracts::connect_tls(&url, config, tls)
                    })
                }
            }
            .map_err(|e| format!("[contracts] {}", with_causes(&e)))?;
            Ok((Arc::new(store), None))
        }
    }
}

/// A store's CA file (PEM), read at start and at each reload.
fn read_store_ca(section: &str, ca: &std::path::Path) -> Result<Vec<u8>, String> {
    std::fs::read(ca).map_err(|e| format!("{section} ca_file {}: {e}", ca.display()))
}

/// A Redis store at `url` (`rediss://` for TLS), trusting `ca_file` alone when given.
fn open_redis(
    url: &str,
    ca_file: Option<&std::path::Path>,
    section: &str,
) -> Result<oauth_redis::AsyncRedisStore, String> {
    match ca_file {
        None => oauth_redis::AsyncRedisStore::open(url),
        Some(ca) => oauth_redis::AsyncRedisStore::open_with_ca(url, &read_store_ca(section, ca)?),
    }
    .map_err(|e| format!("{section} {e}"))
}

/// The HTTP client the gateways call the authorization servers with (introspection and key
/// sets): every CA a section names is trusted besides the public roots.
fn as_client(config: &Config) -> Result<HttpClient, String> {
    let mut http_config = HttpConfig::new();
    let mut loopback = false;
    let mut cas = Vec::new();
    if let Some(i) = &config.introspection {
        loopback |= i.allow_http_loopback;
        cas.extend(i.ca_file.iter().map(|f| ("[introspection]", f)));
    }
    let issuers = config
        .issuers
        .iter()
        .chain(config.routes.iter().flat_map(|r| r.issuers.iter()));
    for issuer in issuers {
        loopback |= issuer.allow_http_loopback;
        cas.extend(issuer.ca_file.iter().map(|f| ("[[issuer]]", f)));
    }
    if loopback {
        http_config = http_config.dangerous_allow_http_loopback();
    }
    for (section, ca) in cas {
        let pem =
            std::fs::read(ca).map_err(|e| format!("{section} ca_file {}: {e}", ca.display()))?;
        http_config = http_config
            .add_root_certificates_pem(&pem)
            .map_err(|e| format!("{section} ca_file {}: {e}", ca.display()))?;
    }
    HttpClient::new(http_config).map_err(|e| format!("HTTP client: {e}"))
}

fn endpoint(http: &HttpClient, url: &str, what: &str) -> Result<Endpoint, String> {
    http.endpoint(url).map_err(|e| {
        if url.starts_with("http://") {
            format!(
                "{what} {url:?}: only https:// is allowed (allow_http_loopback = true permits \
                 http:// to 127.0.0.1/localhost for development)"
            )
        } else {
            format!("{what} {url:?}: {e}")
        }
    })
}

/// An upstream's connections: `pools` pools, https:// trusted through the public roots or
/// `ca_file` only.
fn upstream(
    url: &str,
    ca_file: Option<&std::path::Path>,
    timeout: Duration,
    pools: usize,
) -> Result<Upstream, String> {
    let mut roots = rustls::RootCertStore::empty();
    match ca_file {
        Some(ca) => {
            use rustls::pki_types::CertificateDer;
            use rustls::pki_types::pem::PemObject as _;
            let what =
                |e: &dyn std::fmt::Display| format!("upstream_ca_file {}: {e}", ca.display());
            for cert in CertificateDer::pem_file_iter(ca).map_err(|e| what(&e))? {
                roots
                    .add(cert.map_err(|e| what(&e))?)
                    .map_err(|e| what(&e))?;
            }
            if roots.is_empty() {
                return Err(what(&"no certificate"));
            }
        }
        None => roots.extend(webpki_roots::TLS_SERVER_ROOTS.iter().cloned()),
    }
    let provider = Arc::new(rustls::crypto::ring::default_provider());
    let tls = rustls::ClientConfig::builder_with_provider(provider)
        .with_safe_default_protocol_versions()
        .map_err(|e| format!("upstream TLS: {e}"))?
        .with_root_certificates(roots)
        .with_no_client_auth();
    Upstream::new(url, tls, timeout, pools)
}

fn build(
    config: &Config,
    contracts: Arc<dyn ContractStore>,
    metrics: &Metrics,
) -> Result<App, String> {
    let http = as_client(config)?;
    let introspection = match &config.introspection {
        None => None,
        Some(i) => {
            let endpoint = endpoint(&http, &i.endpoint, "[introspection] endpoint")?;
            let secret = match (&i.client_secret_env, &i.client_secret_file) {
                (Some(name), _) => env_secret(name, "[introspection] client_secret_env")?,
                (None, Some(file)) => std::fs::read_to_string(file)
                    .map(|s| s.trim_end().to_owned())
                    .map_err(|e| {
                        format!("[introspection] client_secret_file {}: {e}", file.display())
                    })?,
                (None, None) => return Err("[introspection]: no client secret".into()),
            };
            let secret = ClientSecret::new(secret);
            let client = Client::new(
                i.client_id.clone(),
                match i.auth {
                    Auth::Basic => ClientAuthentication::SecretBasic(secret),
                    Auth::Post => ClientAuthentication::SecretPost(secret),
                },
            );
            Some((endpoint, client))
        }
    };
    let shared = match &config.cache.redis {
        None => None,
        Some(redis) => {
            let url = env_secret(&redis.url_env, "[cache.redis] url_env")?;
            let store = open_redis(&url, redis.ca_file.as_deref(), "[cache.redis]")?;
            let key = env_secret(&redis.secret_env, "[cache.redis] secret_env")?;
            let key: [u8; 32] = base64::engine::general_purpose::STANDARD
                .decode(key.trim())
                .ok()
                .and_then(|k| k.try_into().ok())
                .ok_or("[cache.redis] secret_env: not 32 bytes in base64")?;
            Some((Arc::new(store), key, Duration::from_millis(redis.lease_ms)))
        }
    };
    let fleet_cache = shared.as_ref().map(|(store, _, _)| Arc::clone(store));
    let mut redis = Vec::new();
    if let Some(store) = &fleet_cache {
        redis.push(("[cache.redis]", Arc::clone(store)));
    }
    let cache = CacheConfig::new()
        .capacity(config.cache.capacity)
        .max_age(Duration::from_secs(config.cache.max_age_secs));
    let limits = &config.limits;
    let counter = match limits.store {
        crate::config::LimitStore::Local => None,
        crate::config::LimitStore::Redis => {
            let url_env = match (&limits.url_env, &config.cache.redis) {
                (Some(env), _) => env.as_str(),
                (None, Some(redis)) => redis.url_env.as_str(),
                (None, None) => return Err("[limits] store = \"redis\" needs url_env".into()),
            };
            let url = env_secret(url_env, "[limits] url_env")?;
            let store = Arc::new(open_redis(&url, config.limits_ca_file(), "[limits]")?);
            redis.push(("[limits]", Arc::clone(&store)));
            let fallback = match limits.fallback {
                crate::config::LimitFallback::Local => RateLimitFallback::Local {
                    fleet_size: limits.fleet_size,
                },
                crate::config::LimitFallback::Open => RateLimitFallback::Open,
                crate::config::LimitFallback::Closed => RateLimitFallback::Closed,
            };
            Some((store, fallback))
        }
    };
    let pools = if crate::server::PER_THREAD_WORKERS {
        config.workers
    } else {
        1
    };
    let mut routes = Vec::new();
    for r in &config.routes {
        let mut builder = match (r.mode, &introspection) {
            (Mode::Introspection | Mode::Auto, Some((endpoint, client))) => {
                Gateway::builder(http.clone(), endpoint.clone(), client.clone())
            }
            _ => Gateway::local_builder(http.clone()),
        };
        builder = builder.cache(cache).observer(metrics.observer(&r.api));
        if r.mode != Mode::Introspection {
            for i in r.issuers(config) {
                let Some(audience) = i.audience.as_ref().or(r.audience.as_ref()) else {
                    return Err(format!("issuer {:?}: no audience", i.issuer));
                };
                let jwks = endpoint(&http, &i.jwks_uri, "[[issuer]] jwks_uri")?;
                let mut issuer = JwtIssuer::new(i.issuer.clone(), audience.clone(), jwks);
                if let Some(names) = &i.algorithms {
                    let algorithms: Vec<_> = names
                        .iter()
                        .filter_map(|n| jwt_assertion::Algorithm::from_name(n))
                        .collect();
                    issuer = issuer.algorithms(&algorithms);
                }
                builder = builder.jwt_issuer(issuer);
            }
        }
        let mut dpop = DpopPolicy::new()
            .replay_capacity(config.dpop_replay_capacity)
            .requirement(match r.dpop {
                Dpop::Off => DpopRequirement::Off,
                Dpop::Allowed => DpopRequirement::Allowed,
                Dpop::Required => DpopRequirement::Required,
            });
        if let Some(origin) = r.public_origin.as_ref().or(config.public_origin.as_ref()) {
            dpop = dpop.public_origin(origin.clone());
        }
        builder = builder.dpop(dpop);
        if let Some((store, key, lease)) = &shared {
            builder = builder.shared_cache(Arc::clone(store), key, *lease);
        }
        if let Some((counter, fallback)) = &counter {
            builder = builder.rate_limits(Arc::clone(counter), *fallback);
        }
        builder = builder.expose_limit_headers(limits.expose_headers);
        let mut policy = ApiPolicy::new(r.api.clone())
            .require_scope(r.scopes.iter().cloned())
            .require_contract(r.require_contract);
        if r.scope_criteria == ScopeCriteria::Any {
            policy = policy.any_scope();
        }
        for detail_type in &r.authorization_details_types {
            policy = policy.require_authorization_details_type(detail_type.clone());
        }
        if let Some(audience) = &r.audience {
            policy = policy.audience(audience.clone());
        }
        let url = r
            .upstream
            .as_ref()
            .or(config.upstream.as_ref())
            .ok_or_else(|| format!("route {:?}: no upstream", r.prefix))?;
        let ca = r
            .upstream_ca_file
            .as_deref()
            .or(config.upstream_ca_file.as_deref());
        let timeout = Duration::from_secs(
            r.upstream_timeout_secs
                .unwrap_or(config.upstream_timeout_secs),
        );
        routes.push(Route {
            prefix: r.prefix.trim_end_matches('/').to_owned(),
            api: r.api.clone(),
            api_header: HeaderValue::from_str(&r.api).ok(),
            requests: metrics.requests(&r.api),
            gateway: builder.build(policy, Arc::clone(&contracts)),
            allow_encoded_percent: r.allow_encoded_percent,
            upstream: upstream(url, ca, timeout, pools)?,
            strip_prefix: r.strip_prefix,
            max_body_bytes: r.max_body_bytes.unwrap_or(config.max_body_bytes),
        });
    }
    // Longest prefix first.
    routes.sort_by_key(|r| std::cmp::Reverse(r.prefix.len()));
    let tls = match &config.tls {
        None => None,
        Some(t) => Some(crate::server::tls_acceptor(t)?),
    };
    Ok(App {
        routes,
        fleet_cache,
        redis,
        forward_token: config.forward_token,
        access_log: config.access_log,
        limits: ConnLimits {
            header_read_timeout: Duration::from_secs(config.header_read_timeout_secs),
            max_header_bytes: config.max_header_bytes,
            idle_timeout: Duration::from_secs(config.idle_timeout_secs),
        },
        tls,
        config: config.clone(),
    })
}

impl App {
    fn route(&self, path: &str) -> Option<&Route> {
        self.routes.iter().find(|r| {
            path.strip_prefix(r.prefix.as_str())
                .is_some_and(|rest| rest.is_empty() || rest.starts_with('/') || r.prefix.is_empty())
        })
    }
}

/// The request's id: the caller's `x-request-id` if it is a short printable value, else a new
/// one (unique in this process, not a secret).
fn request_id(headers: &HeaderMap) -> HeaderValue {
    static STARTED: std::sync::OnceLock<u64> = std::sync::OnceLock::new();
    static THREADS: AtomicU64 = AtomicU64::new(0);
    thread_local! {
        /// This thread's number and the ids it has made: no counter shared between threads.
        static MINE: (u64, std::cell::Cell<u64>) =
            (THREADS.fetch_add(1, Ordering::Relaxed), std::cell::Cell::new(0));
    }
    if let Some(id) = headers.get(X_REQUEST_ID)
        && !id.is_empty()
        && id.len() <= 128
        && id.as_bytes().iter().all(|b| b.is_ascii_graphic())
    {
        return id.clone();
    }
    let started = *STARTED.get_or_init(|| {
        SystemTime::now()
            .duration_since(SystemTime::UNIX_EPOCH)
            .map_or(0, |d| d.as_nanos() as u64)
    });
    let (thread, n) = MINE.with(|(thread, n)| {
        let next = n.get();
        n.set(next.wrapping_add(1));
        (*thread, next)
    });
    // `{started:016x}-{thread:04x}{n:012x}`, written without the formatting machinery (this
    // runs for every request without an id).
    let mut id = [b'-'; 33];
    let digits = b"0123456789abcdef";
    let mut put = |at: std::ops::Range<usize>, mut value: u64| {
        for i in at.rev() {
            id[i] = digits[(value & 0xf) as usize];
            value >>= 4;
        }
    };
    put(0..16, started);
    put(17..21, thread);
    put(21..33, n);
    // Hex digits and `-`: always a valid value.
    HeaderValue::from_bytes(&id).unwrap_or_else(|_| HeaderValue::from_static("-"))
}

/// Why a denied request was refused, as the metrics name it.
fn reason(denial: &Denial) -> &'static str {
    match denial {
        Denial::MissingToken => "missing_token",
        Denial::InvalidRequest { .. } => "invalid_request",
        Denial::InvalidToken {
            reason:
                InvalidTokenReason::CertificateRequired | InvalidTokenReason::CertificateMismatch,
        } => "certificate_binding",
        Denial::InvalidToken { .. } => "invalid_token",
        Denial::InsufficientScope { .. } => "insufficient_scope",
        Denial::NoContract => "no_contract",
        Denial::Unavailable { .. } => "unavailable",
        Denial::InvalidDpopProof { .. } => "invalid_dpop_proof",
        Denial::RateLimited { .. } => "rate_limited",
        Denial::InsufficientAuthorizationDetails { .. } => "insufficient_authorization_details",
        _ => "denied",
    }
}

async fn handle(shared: Arc<Shared>, request: Request<Body>) -> Response<Body> {
    let started = Instant::now();
    let app = shared.app();
    let id = request_id(request.headers());
    // Kept for the log line only when there is one (the URI shares its bytes: no copy).
    let logged = app
        .access_log
        .then(|| (request.method().clone(), request.uri().clone()));
    let (mut response, route, principal, reason) = decide(&app, request, &id).await;
    let status = response.status().as_u16();
    shared.metrics.request(
        route.map(|r| &*r.requests),
        status,
        reason,
        started.elapsed(),
    );
    if let Some((method, uri)) = logged {
        crate::access_log::request(&crate::access_log::Entry {
            method: &method,
            path: uri.path(),
            status,
            api: route.map_or("-", |r| r.api.as_str()),
            client_id: principal.as_ref().map_or("-", Principal::client_id),
            reason,
            request_id: id.to_str().unwrap_or("-"),
            elapsed_us: u64::try_from(started.elapsed().as_micros()).unwrap_or(u64::MAX),
        });
    }
    response.headers_mut().insert(X_REQUEST_ID, id);
    response
}

/// The answer, the route, the principal allowed and the decision's reason.
async fn decide<'a>(
    app: &'a App,
    request: Request<Body>,
    id: &HeaderValue,
) -> (
    Response<Body>,
    Option<&'a Route>,
    Option<Principal>,
    &'static str,
) {
    let path = request.uri().path();
    // The path is routed and forwarded as sent: one that an upstream could read as another
    // (dot segments, also behind `;params` or an encoding, encoded slashes, empty segments, a
    // second layer of encoding) is refused rather than normalised, so that no request reaches
    // one API's backend under another API's policy.
    let path_check = check_path(path);
    if path_check == PathCheck::Ambiguous {
        return (
            plain(StatusCode::BAD_REQUEST, "ambiguous path"),
            None,
            None,
            "ambiguous_path",
        );
    }
    let Some(route) = app.route(path) else {
        return (
            plain(StatusCode::NOT_FOUND, "no route"),
            None,
            None,
            "no_route",
        );
    };
    let api = Some(route);
    if path_check == PathCheck::EncodedPercent && !route.allow_encoded_percent {
        let answer = plain(StatusCode::BAD_REQUEST, "ambiguous path: encoded %");
        return (answer, api, None, "ambiguous_path");
    }
    let declared = request
        .headers()
        .get(axum::http::header::CONTENT_LENGTH)
        .and_then(|v| v.to_str().ok())
        .and_then(|v| v.parse::<u64>().ok());
    if declared.is_some_and(|n| n > route.max_body_bytes) {
        let answer = plain(StatusCode::PAYLOAD_TOO_LARGE, "request body too large");
        return (answer, api, None, "body_too_large");
    }
    // The connection's client certificate, which the listener put there (mutual TLS).
    let certificate = request.extensions().get::<ClientCertificate>();
    let decision = route
        .gateway
        .check_parts_with_certificate(
            request.method(),
            request.uri(),
            request.headers(),
            certificate,
        )
        .await;
    match decision {
        Err(denial) => {
            // A 503's cause (the introspection endpoint's error, the key set's) is for the
            // operator; the caller gets the generic answer.
            if let Denial::Unavailable {
                cause: Some(cause), ..
            } = &denial
            {
                tracing::warn!(api = route.api, cause = %cause, "validation unavailable");
            }
            let answer = route.gateway.deny_response(&denial).map(Body::from);
            (answer, api, None, reason(&denial))
        }
        Ok(principal) => {
            let (mut answer, reason) = forward(app, route, &principal, request, id).await;
            // What is left of the client's tier (draft-ietf-httpapi-ratelimit-headers).
            if let Some(quota) = principal.quota() {
                for (name, value) in quota.headers() {
                    answer.headers_mut().insert(name, value);
                }
            }
            (answer, api, Some(principal), reason)
        }
    }
}

/// What [`check_path`] found.
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
enum PathCheck {
    /// The path means the same to every reader.
    Plain,
    /// As `Plain`, but it holds `%25`: an upstream that decodes twice would read other
    /// characters than the gateway did, so only routes that opt in accept it.
    EncodedPercent,
    /// An upstream could read another path than the one the gateway routed.
    Ambiguous,
}

/// Checks the path every request passes through before it is routed. Ambiguous: a `.` or `..`
/// segment as an upstream may read it (raw, percent-decoded once, with its `;params` removed
/// before or after decoding, as Tomcat, Jetty and Spring do), an encoded `/` or `\\`, a `\\`, an
/// empty segment (`//`, or one that is only `;params`).
fn check_path(path: &str) -> PathCheck {
    // Most paths hold none of the bytes any of the checks below looks for (`%`, `;`, `.`,
    // `\\`) nor `//`: they are plain, with no allocation (this runs on every request).
    if !path
        .bytes()
        .any(|b| matches!(b, b'%' | b';' | b'.' | b'\\'))
        && !path.contains("//")
    {
        return PathCheck::Plain;
    }
    let lower = path.to_ascii_lowercase();
    if lower.contains("%2f")
        || lower.contains("%5c")
        || lower.contains('\\')
        || lower.contains("//")
    {
        return PathCheck::Ambiguous;
    }
    let dot = |segment: &[u8]| matches!(segment, b"." | b"..");
    for segment in path.split('/') {
        let bare = without_params(segment.as_bytes());
        let decoded = percent_decode(segment.as_bytes());
        if dot(segment.as_bytes())
            || dot(bare)
            || dot(&percent_decode(bare))
            || dot(&decoded)
            || dot(without_params(&decoded))
            || (!segment.is_empty() && bare.is_empty())
        {
            return PathCheck::Ambiguous;
        }
    }
    if lower.contains("%25") {
        PathCheck::EncodedPercent
    } else {
        PathCheck::Plain
    }
}

/// A path segment without its `;params` (RFC 3986 §3.3 allows them; servlet containers drop
/// them before matching).
fn without_params(segment: &[u8]) -> &[u8] {
    segment
        .iter()
        .position(|&b| b == b';')
        .map_or(segment, |end| &segment[..end])
}

/// One round of percent-decoding; a `%` not followed by two hex digits stays as it is.
fn percent_decode(text: &[u8]) -> Vec<u8> {
    let hex = |b: u8| char::from(b).to_digit(16);
    let mut out = Vec::with_capacity(text.len());
    let mut i = 0;
    while i < text.len() {
        let escaped = match text.get(i..i + 3) {
            Some([b'%', h, l]) => hex(*h).zip(hex(*l)),
            _ => None,
        };
        match escaped {
            // Two hex digits: at most 0xff.
            Some((h, l)) => {
                out.push(u8::try_from(h * 16 + l).unwrap_or(u8::MAX));
                i += 3;
            }
            None => {
                out.push(text[i]);
                i += 1;
            }
        }
    }
    out
}

/// Headers a hop must not pass on (RFC 9110 §7.6.1), as names built once.
const HOP_BY_HOP: [HeaderName; 8] = [
    axum::http::header::CONNECTION,
    HeaderName::from_static("keep-alive"),
    axum::http::header::PROXY_AUTHENTICATE,
    axum::http::header::PROXY_AUTHORIZATION,
    axum::http::header::TE,
    axum::http::header::TRAILER,
    axum::http::header::TRANSFER_ENCODING,
    axum::http::header::UPGRADE,
];

const DPOP: HeaderName = HeaderName::from_static("dpop");

/// Removes what the upstream must not see from the caller: principal headers it could spoof,
/// hop-by-hop headers, and (unless configured) its token.
fn strip(headers: &mut HeaderMap, forward_token: bool) {
    // `x_oauth_…` too: CGI-style upstreams read `_` and `-` alike. (Compared in place: this
    // runs for every header of every request.)
    let spoofable = |name: &HeaderName| {
        name.as_str().as_bytes().get(..8).is_some_and(|prefix| {
            prefix
                .iter()
                .zip(b"x-oauth-")
                .all(|(&got, &want)| got == want || (got == b'_' && want == b'-'))
        })
    };
    // One pass over the names first: most requests carry none of these, and then nothing is
    // looked up or removed.
    if headers.keys().any(|n| spoofable(n) || is_hop_by_hop(n)) {
        let spoofed: Vec<HeaderName> = headers.keys().filter(|n| spoofable(n)).cloned().collect();
        for name in spoofed {
            headers.remove(&name);
        }
        strip_hop_by_hop(headers);
    }
    if !forward_token {
        headers.remove(axum::http::header::AUTHORIZATION);
        headers.remove(DPOP);
    }
}

/// Whether `name` is a hop-by-hop header (RFC 9110 §7.6.1), or `Connection` itself.
fn is_hop_by_hop(name: &HeaderName) -> bool {
    HOP_BY_HOP.contains(name)
}

/// Removes the hop-by-hop headers, and those the `Connection` header names.
fn strip_hop_by_hop(headers: &mut HeaderMap) {
    if !headers.keys().any(is_hop_by_hop) {
        return;
    }
    let named: Vec<String> = headers
        .get_all(axum::http::header::CONNECTION)
        .iter()
        .filter_map(|v| v.to_str().ok())
        .flat_map(|v| v.split(','))
        .map(|t| t.trim().to_ascii_lowercase())
        .filter(|t| !t.is_empty())
        .collect();
    for name in named {
        headers.remove(name.as_str());
    }
    for name in HOP_BY_HOP {
        headers.remove(name);
    }
}

/// The headers the gateway writes, as names built once: inserting a `&'static str` name that is
/// not a standard header copies it into a new buffer on every request.
const X_REQUEST_ID: HeaderName = HeaderName::from_static("x-request-id");
const X_OAUTH_CLIENT_ID: HeaderName = HeaderName::from_static("x-oauth-client-id");
const X_OAUTH_API: HeaderName = HeaderName::from_static("x-oauth-api");
const X_OAUTH_SCOPE: HeaderName = HeaderName::from_static("x-oauth-scope");
const X_OAUTH_SUBJECT: HeaderName = HeaderName::from_static("x-oauth-subject");
const X_OAUTH_EXPIRES_AT: HeaderName = HeaderName::from_static("x-oauth-expires-at");

fn principal_headers(headers: &mut HeaderMap, route: &Route, principal: &Principal) {
    put(headers, X_OAUTH_CLIENT_ID, principal.client_id());
    match &route.api_header {
        Some(api) => {
            headers.insert(X_OAUTH_API, api.clone());
        }
        None => put(headers, X_OAUTH_API, &route.api),
    }
    if let Some(scope) = principal.scope() {
        put(headers, X_OAUTH_SCOPE, scope.as_str());
    }
    if let Some(subject) = principal.subject() {
        put(headers, X_OAUTH_SUBJECT, subject);
    }
    if let Some(exp) = principal.expires_at() {
        let secs = exp
            .duration_since(SystemTime::UNIX_EPOCH)
            .map_or(0, |d| d.as_secs());
        headers.insert(X_OAUTH_EXPIRES_AT, HeaderValue::from(secs));
    }
}

/// Sets `name` to `value`, or leaves it out (with a warning) when `value` cannot be one.
fn put(headers: &mut HeaderMap, name: HeaderName, value: &str) {
    match HeaderValue::from_str(value) {
        Ok(value) => {
            headers.insert(name, value);
        }
        Err(_) => tracing::warn!(
            header = name.as_str(),
            "a principal value is not a header value; not sent"
        ),
    }
}

async fn forward(
    app: &App,
    route: &Route,
    principal: &Principal,
    request: Request<Body>,
    id: &HeaderValue,
) -> (Response<Body>, &'static str) {
    let (mut parts, body) = request.into_parts();
    strip(&mut parts.headers, app.forward_token);
    principal_headers(&mut parts.headers, route, principal);
    parts.headers.insert(X_REQUEST_ID, id.clone());
    let full = parts.uri.path_and_query().map_or("/", |p| p.as_str());
    // With `strip_prefix`, `/orders/1?x` goes upstream as `/1?x`, and `/orders` as `/`.
    let target = match full.strip_prefix(route.prefix.as_str()) {
        Some(rest) if route.strip_prefix && (rest.is_empty() || rest.starts_with('?')) => {
            format!("/{rest}")
        }
        Some(rest) if route.strip_prefix => rest.to_owned(),
        _ => full.to_owned(),
    };
    let upstream = &route.upstream;
    // The path is the upstream's base and the target, built in one buffer that the URI then
    // owns; it goes in origin form (the connection knows where it goes).
    let mut path = String::with_capacity(upstream.base.len() + target.len());
    path.push_str(&upstream.base);
    path.push_str(&target);
    parts.uri = match axum::http::uri::PathAndQuery::try_from(path) {
        Ok(path) => Uri::from(path),
        Err(_) => {
            return (
                plain(StatusCode::BAD_REQUEST, "bad request target"),
                "bad_target",
            );
        }
    };
    parts.version = axum::http::Version::HTTP_11;
    // A request without a body (most GETs) goes as it is: nothing to count or cut.
    if hyper::body::Body::is_end_stream(&body) {
        let request = Request::from_parts(parts, body);
        return send(route, request, None).await;
    }
    // A body without a declared length is cut at the limit; the upstream call then fails, and
    // the caller gets a 413.
    let over = Arc::new(AtomicBool::new(false));
    let limit = usize::try_from(route.max_body_bytes).unwrap_or(usize::MAX);
    let flag = Arc::clone(&over);
    let body = http_body_util::Limited::new(body, limit).map_err(move |e| {
        if e.is::<http_body_util::LengthLimitError>() {
            flag.store(true, Ordering::Relaxed);
        }
        e
    });
    let request = Request::from_parts(parts, Body::new(body));
    send(route, request, Some(&over)).await
}

/// Sends `request` to the route's upstream within its timeout; `over` says whether the body
/// was cut at the limit (then a failure is the caller's 413).
async fn send(
    route: &Route,
    request: Request<Body>,
    over: Option<&AtomicBool>,
) -> (Response<Body>, &'static str) {
    let upstream = &route.upstream;
    match tokio::time::timeout(upstream.timeout, upstream.send(request)).await {
        Ok(Ok(mut response)) => {
            strip_hop_by_hop(response.headers_mut());
            (response, "allowed")
        }
        Ok(Err(_)) if over.is_some_and(|o| o.load(Ordering::Relaxed)) => (
            plain(StatusCode::PAYLOAD_TOO_LARGE, "request body too large"),
            "body_too_large",
        ),
        Ok(Err(e)) => {
            // The chain of causes: a TLS refusal is in a source, not in the top error.
            let mut cause = e.to_string();
            let mut source = std::error::Error::source(&e);
            while let Some(s) = source {
                cause = format!("{cause}: {s}");
                source = s.source();
            }
            tracing::warn!(api = route.api, error = %cause, "upstream unreachable");
            (
                plain(StatusCode::BAD_GATEWAY, "upstream unreachable"),
                "upstream_unreachable",
            )
        }
        Err(_) => {
            tracing::warn!(api = route.api, "upstream did not answer in time");
            (
                plain(StatusCode::GATEWAY_TIMEOUT, "upstream timeout"),
                "upstream_timeout",
            )
        }
    }
}

fn plain(status: StatusCode, text: &'static str) -> Response<Body> {
    let mut response = Response::new(Body::from(text));
    *response.status_mut() = status;
    response
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn a_contract_store_that_cannot_open_names_the_step_and_the_cause() {
        let path = std::env::temp_dir()
            .join(format!("oauth-proxy-{}-no-such-dir", std::process::id()))
            .join("c.redb");
        let e = RedbContracts::open(&path).unwrap_err();
        let text = with_causes(&e);
        // The step, then redb's reason (and its own cause, the OS error).
        assert!(
            text.starts_with("contract database: open failed: "),
            "{text}"
        );
        assert!(
            text.len() > "contract database: open failed: ".len() + 5,
            "{text}"
        );
    }

    #[test]
    fn request_ids_are_kept_or_made_unique_across_threads() {
        let mut given = HeaderMap::new();
        given.insert(X_REQUEST_ID, HeaderValue::from_static("req-7"));
        assert_eq!(request_id(&given), "req-7");
        // Not printable, or empty: replaced.
        given.insert(X_REQUEST_ID, HeaderValue::from_static(""));
        assert_ne!(request_id(&given), "");
        let made = |n| {
            (0..n)
                .map(|_| request_id(&HeaderMap::new()))
                .collect::<Vec<_>>()
        };
        let mut all = made(1000);
        all.extend(std::thread::spawn(move || made(1000)).join().unwrap());
        for id in &all {
            let text = id.to_str().unwrap();
            assert_eq!(text.len(), 33, "{text}");
            assert!(
                text.bytes().all(|b| b.is_ascii_hexdigit() || b == b'-'),
                "{text}"
            );
        }
        let distinct: std::collections::BTreeSet<_> = all.iter().map(|v| v.as_bytes()).collect();
        assert_eq!(distinct.len(), 2000);
    }

    #[test]
    fn spoofed_and_hop_by_hop_headers_are_removed() {
        let mut h = HeaderMap::new();
        h.insert("x-oauth-client-id", HeaderValue::from_static("admin"));
        h.insert("X-OAuth-Scope", HeaderValue::from_static("everything"));
        h.insert("authorization", HeaderValue::from_static("Bearer t"));
        h.insert("x_oauth_subject", HeaderValue::from_static("admin"));
        h.insert("connection", HeaderValue::from_static("close, x-internal"));
        h.insert("x-internal", HeaderValue::from_static("1"));
        h.insert("accept", HeaderValue::from_static("*/*"));
        strip(&mut h, false);
        assert_eq!(h.len(), 1, "{h:?}");
        assert!(h.contains_key("accept"));
        // Each kind alone is found too (the first pass looks for either).
        for (name, value) in [
            ("x_oauth_api", "orders"),
            ("keep-alive", "timeout=5"),
            ("te", "trailers"),
        ] {
            let mut h = HeaderMap::new();
            h.insert(name, HeaderValue::from_static(value));
            h.insert("accept", HeaderValue::from_static("*/*"));
            strip(&mut h, true);
            assert_eq!(h.len(), 1, "{name}: {h:?}");
        }
        // A request with none keeps every header, its token too when forwarded.
        let mut h = HeaderMap::new();
        h.insert("authorization", HeaderValue::from_static("Bearer t"));
        h.insert("accept", HeaderValue::from_static("*/*"));
        strip(&mut h, true);
        assert_eq!(h.len(), 2);
    }

    /// One case per line: the path and what the check must find.
    fn check(cases: &[(&str, PathCheck)]) {
        let wrong: Vec<String> = cases
            .iter()
            .filter(|(path, expected)| check_path(path) != *expected)
            .map(|(path, expected)| {
                format!("{path}: {:?}, expected {expected:?}", check_path(path))
            })
            .collect();
        assert!(wrong.is_empty(), "{}", wrong.join("\n"));
    }

    #[test]
    fn ambiguous_paths_are_refused() {
        use PathCheck::{Ambiguous, EncodedPercent, Plain};
        check(&[
            ("/orders", Plain),
            ("/orders/", Plain),
            ("/orders/1", Plain),
            ("/orders/a.b", Plain),
            ("/orders/..x", Plain),
            ("/orders/...", Plain),
            ("/orders/.x;y", Plain),
            ("/orders/1;v=2", Plain),
            ("/orders/%41", Plain),
            ("/orders/100%", Plain),
            ("/orders/%zz", Plain),
            ("/", Plain),
            ("/orders/../admin", Ambiguous),
            ("/orders/%2e%2E/admin", Ambiguous),
            ("/orders/.%2e/admin", Ambiguous),
            ("/orders/./1", Ambiguous),
            ("//admin", Ambiguous),
            ("/orders//x", Ambiguous),
            ("/orders%2fadmin", Ambiguous),
            ("/orders/%5Cadmin", Ambiguous),
            ("/orders\\admin", Ambiguous),
            ("/orders/..", Ambiguous),
            // `;params` are dropped per segment by servlet containers.
            ("/orders/..;/admin/x", Ambiguous),
            ("/orders/..;x=1/admin", Ambiguous),
            ("/orders/.;jsessionid=1/x", Ambiguous),
            ("/orders/%2e%2e;x/admin", Ambiguous),
            ("/orders/%2E;/x", Ambiguous),
            // An encoded `;`, read after decoding.
            ("/orders/..%3b/admin", Ambiguous),
            ("/orders/%2e%2e%3Bx/admin", Ambiguous),
            // A segment that is only `;params` is an empty segment.
            ("/orders/;x/admin", Ambiguous),
            ("/orders/;", Ambiguous),
            // A second layer of encoding: refused unless the route accepts `%25`.
            ("/orders/%252e%252e/admin", EncodedPercent),
            ("/orders/100%25", EncodedPercent),
            ("/orders/%252F", EncodedPercent),
        ]);
    }
}
