//! `/metrics` (the Prometheus text format, version 0.0.4, written here: a few counters and
//! histograms need no metrics crate), `/healthz` and `/readyz`, on `admin_listen`.

use std::collections::BTreeMap;
use std::fmt::Write as _;
use std::sync::atomic::{AtomicU64, Ordering};
use std::sync::{Arc, Mutex, OnceLock};
use std::time::Duration;

use axum::extract::State;
use axum::http::{StatusCode, header};
use axum::response::IntoResponse;

use crate::proxy::Shared;

/// The request-latency buckets, in seconds.
const BUCKETS: [f64; 12] = [
    0.001, 0.0025, 0.005, 0.01, 0.025, 0.05, 0.1, 0.25, 0.5, 1.0, 2.5, 10.0,
];

/// A latency histogram (cumulative buckets when written).
#[derive(Default)]
struct Histogram {
    counts: [AtomicU64; BUCKETS.len()],
    count: AtomicU64,
    sum_micros: AtomicU64,
}

impl Histogram {
    fn observe(&self, elapsed: Duration) {
        let secs = elapsed.as_secs_f64();
        if let Some(i) = BUCKETS.iter().position(|&le| secs <= le) {
            self.counts[i].fetch_add(1, Ordering::Relaxed);
        }
        self.count.fetch_add(1, Ordering::Relaxed);
        let micros = u64::try_from(elapsed.as_micros()).unwrap_or(u64::MAX);
        self.sum_micros.fetch_add(micros, Ordering::Relaxed);
    }

    fn write(&self, out: &mut String, name: &str, labels: &str) {
        let sep = if labels.is_empty() { "" } else { "," };
        let mut cumulative = 0;
        for (le, count) in BUCKETS.iter().zip(&self.counts) {
            cumulative += count.load(Ordering::Relaxed);
            let _ = writeln!(
                out,
                "{name}_bucket{{{labels}{sep}le=\"{le}\"}} {cumulative}"
            );
        }
        let count = self.count.load(Ordering::Relaxed);
        let _ = writeln!(out, "{name}_bucket{{{labels}{sep}le=\"+Inf\"}} {count}");
        let sum = self.sum_micros.load(Ordering::Relaxed) as f64 / 1e6;
        let braces = |s: &str| {
            if s.is_empty() {
                String::new()
            } else {
                format!("{{{s}}}")
            }
        };
        let _ = writeln!(out, "{name}_sum{} {sum}", braces(labels));
        let _ = writeln!(out, "{name}_count{} {count}", braces(labels));
    }
}

/// One API's gateway counters (kept across reloads, by API name).
#[derive(Default)]
struct ApiCounters {
    cache_hits: AtomicU64,
    cache_misses: AtomicU64,
    introspections_ok: AtomicU64,
    introspections_failed: AtomicU64,
    introspection_latency: Histogram,
    key_set_fetches: AtomicU64,
    key_set_latency: Histogram,
}

/// The gateway's observer for one API.
struct Observer(Arc<ApiCounters>);

impl oauth_gateway::GatewayObserver for Observer {
    fn cache_lookup(&self, hit: bool) {
        let counter = if hit {
            &self.0.cache_hits
        } else {
            &self.0.cache_misses
        };
        counter.fetch_add(1, Ordering::Relaxed);
    }

    fn introspection(&self, elapsed: Duration, ok: bool) {
        let counter = if ok {
            &self.0.introspections_ok
        } else {
            &self.0.introspections_failed
        };
        counter.fetch_add(1, Ordering::Relaxed);
        self.0.introspection_latency.observe(elapsed);
    }

    fn key_set_fetch(&self, elapsed: Duration) {
        self.0.key_set_fetches.fetch_add(1, Ordering::Relaxed);
        self.0.key_set_latency.observe(elapsed);
    }
}

/// Every decision reason a request is counted under. A reason not listed here is still
/// counted (in [`RequestCounters::other`], behind a mutex); listing it keeps its count off
/// the lock.
const REASONS: [&str; 18] = [
    "allowed",
    "ambiguous_path",
    "bad_target",
    "body_too_large",
    "certificate_binding",
    "denied",
    "insufficient_authorization_details",
    "insufficient_scope",
    "invalid_dpop_proof",
    "invalid_request",
    "invalid_token",
    "missing_token",
    "no_contract",
    "no_route",
    "rate_limited",
    "unavailable",
    "upstream_timeout",
    "upstream_unreachable",
];

/// The status codes an HTTP answer can have (`http::StatusCode`: 100 to 999).
const STATUSES: std::ops::RangeInclusive<u16> = 100..=999;

/// One API's answered requests, by status and reason: a row of counters per status code,
/// allocated the first time an answer has that status, so counting takes no lock and no
/// allocation once a status has been seen.
pub(crate) struct RequestCounters {
    by_status: Box<[OnceLock<Box<[AtomicU64; REASONS.len()]>>]>,
    /// Counts under a status or reason outside the tables (none the proxy answers with).
    other: Mutex<BTreeMap<(u16, &'static str), u64>>,
}

impl Default for RequestCounters {
    fn default() -> Self {
        Self {
            by_status: STATUSES.map(|_| OnceLock::new()).collect(),
            other: Mutex::default(),
        }
    }
}

impl RequestCounters {
    fn count(&self, status: u16, reason: &'static str) {
        let row = STATUSES
            .contains(&status)
            .then(|| usize::from(status - STATUSES.start()))
            .zip(REASONS.iter().position(|r| *r == reason));
        match row {
            Some((row, column)) => {
                self.by_status[row].get_or_init(Default::default)[column]
                    .fetch_add(1, Ordering::Relaxed);
            }
            None => {
                let mut other = self.other.lock().unwrap_or_else(|e| e.into_inner());
                *other.entry((status, reason)).or_default() += 1;
            }
        }
    }

    /// The non-zero counts, by status then reason (the order of a map keyed by both).
    fn counts(&self) -> BTreeMap<(u16, &'static str), u64> {
        let mut out = self.other.lock().unwrap_or_else(|e| e.into_inner()).clone();
        for (status, row) in STATUSES.zip(self.by_status.iter()) {
            let Some(row) = row.get() else { continue };
            for (reason, n) in REASONS.iter().zip(row.iter()) {
                let n = n.load(Ordering::Relaxed);
                if n > 0 {
                    *out.entry((status, *reason)).or_default() += n;
                }
            }
        }
        out
    }
}

/// Everything `/metrics` reports.
#[derive(Default)]
pub(crate) struct Metrics {
    /// Requests by API (`-`: no route), then status and decision reason. A route holds its
    /// API's counters; the map is only read when rendering and written when a route is built.
    requests: Mutex<BTreeMap<String, Arc<RequestCounters>>>,
    /// The requests no route took (`-`).
    unrouted: Arc<RequestCounters>,
    latency: Histogram,
    apis: Mutex<BTreeMap<String, Arc<ApiCounters>>>,
    /// Configuration reloads: done, refused.
    pub(crate) reloads: AtomicU64,
    pub(crate) reloads_failed: AtomicU64,
}

impl Metrics {
    pub(crate) fn new() -> Self {
        let metrics = Self::default();
        metrics
            .requests
            .lock()
            .unwrap_or_else(|e| e.into_inner())
            .insert("-".to_owned(), Arc::clone(&metrics.unrouted));
        metrics
    }

    /// The observer to give the gateway of the API `api`.
    pub(crate) fn observer(&self, api: &str) -> impl oauth_gateway::GatewayObserver + use<> {
        let mut apis = self.apis.lock().unwrap_or_else(|e| e.into_inner());
        Observer(Arc::clone(apis.entry(api.to_owned()).or_default()))
    }

    /// The request counters of the API `api` (the same ones across reloads), for its routes
    /// to hold.
    pub(crate) fn requests(&self, api: &str) -> Arc<RequestCounters> {
        let mut requests = self.requests.lock().unwrap_or_else(|e| e.into_inner());
        Arc::clone(requests.entry(api.to_owned()).or_default())
    }

    /// Counts one answered request of an API (`None`: no route took it).
    pub(crate) fn request(
        &self,
        api: Option<&RequestCounters>,
        status: u16,
        reason: &'static str,
        elapsed: Duration,
    ) {
        api.unwrap_or(&self.unrouted).count(status, reason);
        self.latency.observe(elapsed);
    }

    /// The text format.
    pub(crate) fn render(&self, ready: bool) -> String {
        let mut out = String::new();
        let help = |out: &mut String, name: &str, kind: &str, text: &str| {
            let _ = writeln!(out, "# HELP {name} {text}\n# TYPE {name} {kind}");
        };
        help(
            &mut out,
            "oauth_gateway_requests_total",
            "counter",
            "Requests answered, by API, status and decision reason.",
        );
        let requests = self.requests.lock().unwrap_or_else(|e| e.into_inner());
        for (api, counters) in requests.iter() {
            for ((status, reason), n) in counters.counts() {
                let _ = writeln!(
                    out,
                    "oauth_gateway_requests_total{{api=\"{}\",status=\"{status}\",reason=\"{reason}\"}} {n}",
                    escape(api)
                );
            }
        }
        drop(requests);
        help(
            &mut out,
            "oauth_gateway_request_duration_seconds",
            "histogram",
            "Time from a request's headers to its answer's headers.",
        );
        self.latency
            .write(&mut out, "oauth_gateway_request_duration_seconds", "");
        let apis = self.apis.lock().unwrap_or_else(|e| e.into_inner());
        let load = |n: &AtomicU64| n.load(Ordering::Relaxed);
        for (name, text, values) in [
            (
                "oauth_gateway_cache_lookups_total",
                "Token decisions from the node's cache (hit) or after a validation (miss).",
                (|c: &ApiCounters| [("hit", &c.cache_hits), ("miss", &c.cache_misses)])
                    as fn(&ApiCounters) -> [(&'static str, &AtomicU64); 2],
            ),
            (
                "oauth_gateway_introspection_calls_total",
                "Introspection calls, answered (ok) or failed.",
                |c: &ApiCounters| {
                    [
                        ("ok", &c.introspections_ok),
                        ("failed", &c.introspections_failed),
                    ]
                },
            ),
        ] {
            help(&mut out, name, "counter", text);
            for (api, c) in apis.iter() {
                for (result, n) in values(c) {
                    let _ = writeln!(
                        out,
                        "{name}{{api=\"{}\",result=\"{result}\"}} {}",
                        escape(api),
                        load(n)
                    );
                }
            }
        }
        let name = "oauth_gateway_jwks_fetches_total";
        help(
            &mut out,
            name,
            "counter",
            "Key set (JWKS) fetches made while verifying JWT access tokens.",
        );
        for (api, c) in apis.iter() {
            let n = load(&c.key_set_fetches);
            let _ = writeln!(out, "{name}{{api=\"{}\"}} {n}", escape(api));
        }
        for (name, text, pick) in [
            (
                "oauth_gateway_introspection_duration_seconds",
                "Introspection call latency.",
                (|c: &ApiCounters| &c.introspection_latency) as fn(&ApiCounters) -> &Histogram,
            ),
            (
                "oauth_gateway_jwks_fetch_duration_seconds",
                "JWT verification latency when it fetched a key set.",
                |c: &ApiCounters| &c.key_set_latency,
            ),
        ] {
            help(&mut out, name, "histogram", text);
            for (api, c) in apis.iter() {
                pick(c).write(&mut out, name, &format!("api=\"{}\"", escape(api)));
            }
        }
        drop(apis);
        help(
            &mut out,
            "oauth_gateway_config_reloads_total",
            "counter",
            "Configuration reloads (SIGHUP), applied or refused.",
        );
        let _ = writeln!(
            out,
            "oauth_gateway_config_reloads_total{{result=\"applied\"}} {}",
            self.reloads.load(Ordering::Relaxed)
        );
        let _ = writeln!(
            out,
            "oauth_gateway_config_reloads_total{{result=\"refused\"}} {}",
            self.reloads_failed.load(Ordering::Relaxed)
        );
        help(
            &mut out,
            "oauth_gateway_ready",
            "gauge",
            "1 while the gateway takes traffic, 0 while it drains.",
        );
        let _ = writeln!(out, "oauth_gateway_ready {}", u8::from(ready));
        out
    }
}

/// A label value as the text format writes it.
fn escape(value: &str) -> String {
    value
        .replace('\\', "\\\\")
        .replace('"', "\\\"")
        .replace('\n', "\\n")
}

/// Serves `/metrics`, `/healthz` and `/readyz` on the admin listener until the process ends.
pub(crate) async fn serve_admin(listener: tokio::net::TcpListener, shared: Arc<Shared>) {
    let router = axum::Router::new()
        .route("/metrics", axum::routing::get(metrics))
        .route("/healthz", axum::routing::get(|| async { "ok" }))
        .route("/readyz", axum::routing::get(readyz))
        .with_state(shared);
    if let Err(e) = axum::serve(listener, router).await {
        tracing::warn!(error = %e, "admin listener stopped");
    }
}

/// Asks the contract store, off the async workers (a redb read touches the disk).
async fn contracts_available(shared: &Arc<Shared>) -> bool {
    let shared = Arc::clone(shared);
    tokio::task::spawn_blocking(move || shared.contracts_available())
        .await
        .unwrap_or(false)
}

async fn metrics(State(shared): State<Arc<Shared>>) -> impl IntoResponse {
    let mut text = shared.metrics.render(shared.ready());
    let up = contracts_available(&shared).await;
    let gauge = |text: &mut String, name: &str, help: &str, value: u8| {
        let _ = writeln!(
            text,
            "# HELP {name} {help}\n# TYPE {name} gauge\n{name} {value}"
        );
    };
    gauge(
        &mut text,
        "oauth_gateway_contract_store_up",
        "1 if the contract store answers.",
        u8::from(up),
    );
    let validation = shared.validation_ready().await.is_ok();
    gauge(
        &mut text,
        "oauth_gateway_validation_up",
        "1 if every route's key sets and introspection endpoint answer (probed at most every 5 s).",
        u8::from(validation),
    );
    if let Some(up) = shared.fleet_cache_up().await {
        gauge(
            &mut text,
            "oauth_gateway_shared_cache_up",
            "1 if the fleet's cache (Redis) answers.",
            u8::from(up),
        );
    }
    let _ = writeln!(
        text,
        "# HELP oauth_gateway_cache_entries Validation results in this node's cache.\n\
         # TYPE oauth_gateway_cache_entries gauge"
    );
    for (api, n) in shared.cached_results() {
        let _ = writeln!(
            text,
            "oauth_gateway_cache_entries{{api=\"{}\"}} {n}",
            escape(&api)
        );
    }
    ([(header::CONTENT_TYPE, "text/plain; version=0.0.4")], text)
}

async fn readyz(State(shared): State<Arc<Shared>>) -> impl IntoResponse {
    if !shared.ready() {
        (StatusCode::SERVICE_UNAVAILABLE, "draining".to_owned())
    } else if !contracts_available(&shared).await {
        (
            StatusCode::SERVICE_UNAVAILABLE,
            "contracts unavailable".to_owned(),
        )
    } else if let Err(e) = shared.validation_ready().await {
        (
            StatusCode::SERVICE_UNAVAILABLE,
            format!("validation unavailable: {e}"),
        )
    } else {
        (StatusCode::OK, "ready".to_owned())
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn the_text_format() {
        let m = Metrics::new();
        let orders = m.requests("orders");
        m.request(Some(&orders), 200, "allowed", Duration::from_millis(3));
        m.request(Some(&orders), 200, "allowed", Duration::from_millis(30));
        m.request(None, 404, "no_route", Duration::from_micros(10));
        let o = m.observer("orders");
        oauth_gateway::GatewayObserver::cache_lookup(&o, false);
        oauth_gateway::GatewayObserver::introspection(&o, Duration::from_millis(2), true);
        let text = m.render(true);
        for line in [
            "oauth_gateway_requests_total{api=\"orders\",status=\"200\",reason=\"allowed\"} 2",
            "oauth_gateway_requests_total{api=\"-\",status=\"404\",reason=\"no_route\"} 1",
            "oauth_gateway_request_duration_seconds_bucket{le=\"0.005\"} 2",
            "oauth_gateway_request_duration_seconds_bucket{le=\"+Inf\"} 3",
            "oauth_gateway_request_duration_seconds_count 3",
            "oauth_gateway_cache_lookups_total{api=\"orders\",result=\"miss\"} 1",
            "oauth_gateway_cache_lookups_total{api=\"orders\",result=\"hit\"} 0",
            "oauth_gateway_introspection_calls_total{api=\"orders\",result=\"ok\"} 1",
            "oauth_gateway_jwks_fetches_total{api=\"orders\"} 0",
            "oauth_gateway_introspection_duration_seconds_count{api=\"orders\"} 1",
            "oauth_gateway_ready 1",
        ] {
            assert!(text.lines().any(|l| l == line), "no {line:?} in\n{text}");
        }
        assert_eq!(escape("a\"b\\"), "a\\\"b\\\\");
    }

    #[test]
    fn a_status_or_reason_outside_the_tables_is_still_counted() {
        let m = Metrics::new();
        let orders = m.requests("orders");
        m.request(Some(&orders), 299, "allowed", Duration::ZERO);
        m.request(Some(&orders), 299, "something_new", Duration::ZERO);
        m.request(Some(&orders), 299, "something_new", Duration::ZERO);
        let text = m.render(true);
        let lines: Vec<_> = text
            .lines()
            .filter(|l| l.starts_with("oauth_gateway_requests_total{"))
            .collect();
        assert_eq!(
            lines,
            [
                "oauth_gateway_requests_total{api=\"orders\",status=\"299\",reason=\"allowed\"} 1",
                "oauth_gateway_requests_total{api=\"orders\",status=\"299\",reason=\"something_new\"} 2",
            ]
        );
        assert!(REASONS.is_sorted());
    }
}
