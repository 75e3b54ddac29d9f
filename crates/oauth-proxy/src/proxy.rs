//! The proxy: settings turned into gateways, the request handler, the server and its shutdown.

use std::sync::Arc;
use std::time::{Duration, Instant, SystemTime};

use axum::body::Body;
use axum::extract::State;
use axum::http::{HeaderMap, HeaderName, HeaderValue, Request, Response, StatusCode, Uri};
use base64::Engine as _;
use hyper_util::client::legacy::Client as Upstream;
use hyper_util::client::legacy::connect::HttpConnector;
use oauth_gateway::{
    ApiPolicy, CacheConfig, ContractStore, Denial, Gateway, Principal, RateLimitFallback,
    RedbContracts,
};
use oauth_reqwest::{Client, ClientAuthentication, ClientSecret, HttpClient, HttpConfig};

use crate::config::{Auth, Config, Contracts, env_secret};

struct Route {
    prefix: String,
    api: String,
    gateway: Gateway,
    /// Whether `%25` (an encoded `%`) may appear in this route's paths.
    allow_encoded_percent: bool,
}

struct App {
    routes: Vec<Route>,
    /// `scheme://authority` and the base path (no trailing slash) of the upstream.
    origin: String,
    base: String,
    upstream: Upstream<HttpConnector, Body>,
    timeout: Duration,
    forward_token: bool,
}

/// Builds everything the configuration names, then serves until a shutdown signal.
pub(crate) async fn run(config: Config) -> Result<(), String> {
    let (app, redb) = build(&config)?;
    let app = Arc::new(app);
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
    let listener = tokio::net::TcpListener::bind(config.listen)
        .await
        .map_err(|e| format!("listen {}: {e}", config.listen))?;
    // The bound address: with port 0 in the configuration, the port the system chose.
    let listen = listener.local_addr().unwrap_or(config.listen);
    tracing::info!(
        listen = %listen,
        routes = app.routes.len(),
        "oauth-gateway ready"
    );
    let router = axum::Router::new()
        .route("/healthz", axum::routing::get(|| async { "ok" }))
        .fallback(handle)
        .with_state(app);
    let (signalled, signal) = tokio::sync::watch::channel(false);
    tokio::spawn(async move {
        shutdown_signal().await;
        tracing::info!("shutting down: no new connections, finishing requests in flight");
        let _ = signalled.send(true);
    });
    let server = serve(
        listener,
        router,
        Limits {
            header_read_timeout: config.header_read_timeout(),
            max_pending: config.max_pending_connections,
        },
        signal.clone(),
    );
    let grace = config.grace();
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

/// What a client may cost before it has sent a request.
struct Limits {
    /// The time a client has to send a request's headers (hyper closes the connection then).
    header_read_timeout: Duration,
    /// Connections still sending their first request's headers, for all clients together.
    max_pending: usize,
}

/// Accepts connections and serves each with hyper's HTTP/1 connection until `stop` turns true,
/// then lets every connection finish its request in flight.
///
/// A client that sends its headers slowly (slowloris) holds a connection for at most
/// `header_read_timeout`, and at most `max_pending` connections can be in that state at once:
/// the limit is global, not per client address, because behind a load balancer every client
/// has the balancer's address, and the timeout already bounds how long one slot is held.
async fn serve(
    listener: tokio::net::TcpListener,
    router: axum::Router,
    limits: Limits,
    mut stop: tokio::sync::watch::Receiver<bool>,
) {
    let pending = Arc::new(tokio::sync::Semaphore::new(limits.max_pending));
    let graceful = hyper_util::server::graceful::GracefulShutdown::new();
    let mut http = hyper::server::conn::http1::Builder::new();
    http.timer(hyper_util::rt::TokioTimer::new())
        .header_read_timeout(limits.header_read_timeout);
    // Connections closed for the limit since the last warning, and when that was.
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
        let Ok(permit) = Arc::clone(&pending).try_acquire_owned() else {
            // One line a second at most, with the count: a flood must not flood the log too.
            refused += 1;
            if last_warning.is_none_or(|at| at.elapsed() >= Duration::from_secs(1)) {
                tracing::warn!(
                    %peer,
                    refused,
                    max_pending_connections = limits.max_pending,
                    "too many connections still sending request headers; connection closed"
                );
                refused = 0;
                last_warning = Some(Instant::now());
            }
            continue;
        };
        tracing::debug!(%peer, "connection accepted");
        let service = Admitted {
            pending: std::sync::Mutex::new(Some(permit)),
            inner: hyper_util::service::TowerToHyperService::new(router.clone()),
        };
        let connection =
            graceful.watch(http.serve_connection(hyper_util::rt::TokioIo::new(stream), service));
        tokio::spawn(async move {
            match connection.await {
                Ok(()) => tracing::debug!(%peer, "connection closed"),
                Err(e) if e.is_timeout() => {
                    tracing::debug!(%peer, "request headers not received in time; connection closed");
                }
                Err(e) => tracing::debug!(%peer, error = %e, "connection closed"),
            }
        });
    }
    drop(listener);
    graceful.shutdown().await;
}

/// A connection's service: counts the connection as pending (holds a permit) until its first
/// request's headers have arrived.
struct Admitted<S> {
    pending: std::sync::Mutex<Option<tokio::sync::OwnedSemaphorePermit>>,
    inner: S,
}

impl<S, B> hyper::service::Service<Request<B>> for Admitted<S>
where
    S: hyper::service::Service<Request<B>>,
{
    type Response = S::Response;
    type Error = S::Error;
    type Future = S::Future;

    fn call(&self, request: Request<B>) -> Self::Future {
        if let Ok(mut permit) = self.pending.lock() {
            permit.take();
        }
        self.inner.call(request)
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

fn build(config: &Config) -> Result<(App, RedbStore), String> {
    let i = &config.introspection;
    let mut http_config = HttpConfig::new();
    if i.allow_http_loopback {
        http_config = http_config.dangerous_allow_http_loopback();
    }
    if let Some(ca) = &i.ca_file {
        let pem = std::fs::read(ca)
            .map_err(|e| format!("[introspection] ca_file {}: {e}", ca.display()))?;
        http_config = http_config
            .add_root_certificates_pem(&pem)
            .map_err(|e| format!("[introspection] ca_file {}: {e}", ca.display()))?;
    }
    let http = HttpClient::new(http_config).map_err(|e| format!("HTTP client: {e}"))?;
    let endpoint = http.endpoint(&i.endpoint).map_err(|e| {
        if i.endpoint.starts_with("http://") {
            format!(
                "[introspection] endpoint {:?}: only https:// is allowed (allow_http_loopback = true \
                 permits http:// to 127.0.0.1/localhost for development)",
                i.endpoint
            )
        } else {
            format!("[introspection] endpoint {:?}: {e}", i.endpoint)
        }
    })?;
    let secret = match (&i.client_secret_env, &i.client_secret_file) {
        (Some(name), _) => env_secret(name, "[introspection] client_secret_env")?,
        (None, Some(file)) => std::fs::read_to_string(file)
            .map(|s| s.trim_end().to_owned())
            .map_err(|e| format!("[introspection] client_secret_file {}: {e}", file.display()))?,
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
    let mut redb = None;
    let contracts: Arc<dyn ContractStore> = match &config.contracts {
        Contracts::Redb { path } => {
            let store = Arc::new(
                RedbContracts::open(path)
                    .map_err(|e| format!("[contracts] {}: {}", path.display(), with_causes(&e)))?,
            );
            redb = Some((path.clone(), Arc::clone(&store)));
            store
        }
        Contracts::Postgres {
            url_env,
            max_staleness_secs,
        } => {
            let url = env_secret(url_env, "[contracts] url_env")?;
            let staleness = Duration::try_from_secs_f64(*max_staleness_secs)
                .map_err(|_| "[contracts] max_staleness_secs: not a duration".to_owned())?;
            Arc::new(
                oauth_postgres::PostgresContracts::connect(
                    &url,
                    oauth_postgres::PostgresConfig::new().max_staleness(staleness),
                )
                .map_err(|e| format!("[contracts] {}", with_causes(&e)))?,
            )
        }
    };
    let shared = match &config.cache.redis {
        None => None,
        Some(redis) => {
            let url = env_secret(&redis.url_env, "[cache.redis] url_env")?;
            let store = oauth_redis::AsyncRedisStore::open(&url)
                .map_err(|e| format!("[cache.redis] {e}"))?;
            let key = env_secret(&redis.secret_env, "[cache.redis] secret_env")?;
            let key: [u8; 32] = base64::engine::general_purpose::STANDARD
                .decode(key.trim())
                .ok()
                .and_then(|k| k.try_into().ok())
                .ok_or("[cache.redis] secret_env: not 32 bytes in base64")?;
            Some((Arc::new(store), key, Duration::from_millis(redis.lease_ms)))
        }
    };
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
            let store =
                oauth_redis::AsyncRedisStore::open(&url).map_err(|e| format!("[limits] {e}"))?;
            let fallback = match limits.fallback {
                crate::config::LimitFallback::Local => RateLimitFallback::Local {
                    fleet_size: limits.fleet_size,
                },
                crate::config::LimitFallback::Open => RateLimitFallback::Open,
                crate::config::LimitFallback::Closed => RateLimitFallback::Closed,
            };
            Some((Arc::new(store), fallback))
        }
    };
    let mut routes = Vec::new();
    for r in &config.routes {
        let mut builder =
            Gateway::builder(http.clone(), endpoint.clone(), client.clone()).cache(cache);
        if let Some((store, key, lease)) = &shared {
            builder = builder.shared_cache(Arc::clone(store), key, *lease);
        }
        if let Some((counter, fallback)) = &counter {
            builder = builder.rate_limits(Arc::clone(counter), *fallback);
        }
        builder = builder.expose_limit_headers(limits.expose_headers);
        let mut policy = ApiPolicy::new(r.api.clone()).require_scope(r.scopes.iter().cloned());
        if let Some(audience) = &r.audience {
            policy = policy.audience(audience.clone());
        }
        routes.push(Route {
            prefix: r.prefix.trim_end_matches('/').to_owned(),
            api: r.api.clone(),
            gateway: builder.build(policy, Arc::clone(&contracts)),
            allow_encoded_percent: r.allow_encoded_percent,
        });
    }
    // Longest prefix first.
    routes.sort_by_key(|r| std::cmp::Reverse(r.prefix.len()));
    let upstream: Uri = config
        .upstream
        .parse()
        .map_err(|e| format!("upstream {:?}: {e}", config.upstream))?;
    let (Some(scheme), Some(authority)) = (upstream.scheme_str(), upstream.authority()) else {
        return Err(format!(
            "upstream {:?}: not an absolute URL",
            config.upstream
        ));
    };
    let app = App {
        routes,
        origin: format!("{scheme}://{authority}"),
        base: upstream.path().trim_end_matches('/').to_owned(),
        upstream: Upstream::builder(hyper_util::rt::TokioExecutor::new()).build_http(),
        timeout: config.upstream_timeout(),
        forward_token: config.forward_token,
    };
    Ok((app, redb))
}

impl App {
    fn route(&self, path: &str) -> Option<&Route> {
        self.routes.iter().find(|r| {
            path.strip_prefix(r.prefix.as_str())
                .is_some_and(|rest| rest.is_empty() || rest.starts_with('/') || r.prefix.is_empty())
        })
    }
}

async fn handle(State(app): State<Arc<App>>, request: Request<Body>) -> Response<Body> {
    let started = Instant::now();
    let method = request.method().clone();
    let path = request.uri().path().to_owned();
    // The path is routed and forwarded as sent: one that an upstream could read as another
    // (dot segments, also behind `;params` or an encoding, encoded slashes, empty segments, a
    // second layer of encoding) is refused rather than normalised, so that no request reaches
    // one API's backend under another API's policy.
    let path_check = check_path(&path);
    if path_check == PathCheck::Ambiguous {
        tracing::info!(%method, status = 400, "ambiguous path refused");
        return plain(StatusCode::BAD_REQUEST, "ambiguous path");
    }
    let Some(route) = app.route(&path) else {
        tracing::info!(%method, path, status = 404, "no route");
        return plain(StatusCode::NOT_FOUND, "no route");
    };
    if path_check == PathCheck::EncodedPercent && !route.allow_encoded_percent {
        tracing::info!(%method, status = 400, api = route.api, "encoded % in path refused");
        return plain(StatusCode::BAD_REQUEST, "ambiguous path: encoded %");
    }
    let decision = route
        .gateway
        .check_parts(request.method(), request.uri(), request.headers())
        .await;
    let (response, client) = match decision {
        Err(denial) => {
            // A 503's cause (the introspection endpoint's error, the key set's) is for the
            // operator; the caller gets the generic answer.
            if let Denial::Unavailable {
                cause: Some(cause), ..
            } = &denial
            {
                tracing::warn!(api = route.api, cause = %cause, "validation unavailable");
            }
            (route.gateway.deny_response(&denial).map(Body::from), None)
        }
        Ok(principal) => {
            let client = principal.client_id().to_owned();
            let mut response = forward(&app, route, &principal, request).await;
            // What is left of the client's tier (draft-ietf-httpapi-ratelimit-headers).
            if let Some(quota) = principal.quota() {
                for (name, value) in quota.headers() {
                    response.headers_mut().insert(name, value);
                }
            }
            (response, Some(client))
        }
    };
    tracing::info!(
        %method,
        path,
        status = response.status().as_u16(),
        api = route.api,
        client_id = client.as_deref().unwrap_or("-"),
        elapsed_us = started.elapsed().as_micros() as u64,
        "request"
    );
    response
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

/// Headers a hop must not pass on (RFC 9110 §7.6.1).
const HOP_BY_HOP: [&str; 8] = [
    "connection",
    "keep-alive",
    "proxy-authenticate",
    "proxy-authorization",
    "te",
    "trailer",
    "transfer-encoding",
    "upgrade",
];

/// Removes what the upstream must not see from the caller: principal headers it could spoof,
/// hop-by-hop headers, and (unless configured) its token.
fn strip(headers: &mut HeaderMap, forward_token: bool) {
    // `x_oauth_…` too: CGI-style upstreams read `_` and `-` alike.
    let spoofed: Vec<HeaderName> = headers
        .keys()
        .filter(|n| n.as_str().replace('_', "-").starts_with("x-oauth-"))
        .cloned()
        .collect();
    for name in spoofed {
        headers.remove(&name);
    }
    strip_hop_by_hop(headers);
    if !forward_token {
        headers.remove(axum::http::header::AUTHORIZATION);
        headers.remove("dpop");
    }
}

/// Removes the hop-by-hop headers, and those the `Connection` header names.
fn strip_hop_by_hop(headers: &mut HeaderMap) {
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

fn principal_headers(headers: &mut HeaderMap, api: &str, principal: &Principal) {
    let mut put = |name: &'static str, value: &str| match HeaderValue::from_str(value) {
        Ok(value) => {
            headers.insert(name, value);
        }
        Err(_) => tracing::warn!(
            header = name,
            "a principal value is not a header value; not sent"
        ),
    };
    put("x-oauth-client-id", principal.client_id());
    put("x-oauth-api", api);
    if let Some(scope) = principal.scope() {
        put("x-oauth-scope", scope.as_str());
    }
    if let Some(subject) = principal.subject() {
        put("x-oauth-subject", subject);
    }
    if let Some(exp) = principal.expires_at() {
        let secs = exp
            .duration_since(SystemTime::UNIX_EPOCH)
            .map_or(0, |d| d.as_secs());
        put("x-oauth-expires-at", &secs.to_string());
    }
}

async fn forward(
    app: &App,
    route: &Route,
    principal: &Principal,
    request: Request<Body>,
) -> Response<Body> {
    let (mut parts, body) = request.into_parts();
    strip(&mut parts.headers, app.forward_token);
    principal_headers(&mut parts.headers, &route.api, principal);
    let target = parts.uri.path_and_query().map_or("/", |p| p.as_str());
    parts.uri = match format!("{}{}{target}", app.origin, app.base).parse() {
        Ok(uri) => uri,
        Err(_) => return plain(StatusCode::BAD_REQUEST, "bad request target"),
    };
    parts.version = axum::http::Version::HTTP_11;
    let request = Request::from_parts(parts, body);
    match tokio::time::timeout(app.timeout, app.upstream.request(request)).await {
        Ok(Ok(response)) => {
            let (mut parts, body) = response.into_parts();
            strip_hop_by_hop(&mut parts.headers);
            Response::from_parts(parts, Body::new(body))
        }
        Ok(Err(e)) => {
            tracing::warn!(error = %e, "upstream unreachable");
            plain(StatusCode::BAD_GATEWAY, "upstream unreachable")
        }
        Err(_) => {
            tracing::warn!("upstream did not answer in time");
            plain(StatusCode::GATEWAY_TIMEOUT, "upstream timeout")
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
