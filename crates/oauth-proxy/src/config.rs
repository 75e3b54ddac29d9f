//! The configuration file (TOML). Unknown keys are refused, so a typo is an error at start,
//! not a setting silently ignored. Secrets are never in the file: each names an environment
//! variable or a file that holds it.

use std::net::SocketAddr;
use std::path::PathBuf;

use serde::Deserialize;

/// The whole file.
#[derive(Clone, Debug, Deserialize)]
#[serde(deny_unknown_fields)]
pub(crate) struct Config {
    /// Where the proxy listens (port 0: one the system chooses, named in the "ready" log line).
    pub(crate) listen: SocketAddr,
    /// Where `/metrics`, `/healthz` and `/readyz` are served (none if unset).
    pub(crate) admin_listen: Option<SocketAddr>,
    /// HTTPS on `listen` (plain HTTP if unset).
    pub(crate) tls: Option<ListenTls>,
    /// The default upstream of the routes that name none (`http(s)://host:port`, a base path
    /// allowed).
    pub(crate) upstream: Option<String>,
    /// How long the upstream may take to answer (headers), in seconds (the routes' default).
    #[serde(default = "default_upstream_timeout")]
    pub(crate) upstream_timeout_secs: u64,
    /// The only CA trusted for `https://` upstreams (PEM; the public roots if unset), the
    /// routes' default.
    pub(crate) upstream_ca_file: Option<PathBuf>,
    /// How long in-flight requests may run after a shutdown signal, in seconds.
    #[serde(default = "default_grace")]
    pub(crate) shutdown_grace_secs: u64,
    /// How long a client may take to send a request's headers, in seconds; the connection is
    /// closed when it runs out.
    #[serde(default = "default_header_read_timeout")]
    pub(crate) header_read_timeout_secs: u64,
    /// How many connections may be sending their first request's headers at once, for all
    /// clients together; a connection that arrives beyond it is closed at once.
    #[serde(default = "default_max_pending_connections")]
    pub(crate) max_pending_connections: usize,
    /// How many connections may be open at once; one beyond it is closed at once.
    #[serde(default = "default_max_connections")]
    pub(crate) max_connections: usize,
    /// How many threads serve connections. On Linux each runs its own single-threaded
    /// runtime with its own listener socket on `listen` (`SO_REUSEPORT`: the kernel spreads
    /// new connections) and its own upstream connection pools, so a request is served on one
    /// thread from accept to answer; elsewhere they are one runtime's worker threads.
    #[serde(default = "default_workers")]
    pub(crate) workers: usize,
    /// The most bytes a request's line and headers may take (at least 8192); beyond: 431.
    #[serde(default = "default_max_header_bytes")]
    pub(crate) max_header_bytes: usize,
    /// How long a keep-alive connection may sit idle between requests, in seconds.
    #[serde(default = "default_idle_timeout")]
    pub(crate) idle_timeout_secs: u64,
    /// How long `/readyz` and `/metrics` reuse a probe of the key sets and the introspection
    /// endpoint, in seconds (each probe reaches them).
    #[serde(default = "default_probe_interval")]
    pub(crate) probe_interval_secs: u64,
    /// The largest request body, in bytes (the routes' default); beyond: 413.
    #[serde(default = "default_max_body_bytes")]
    pub(crate) max_body_bytes: u64,
    /// Whether each request is logged (one line at `info`).
    #[serde(default = "yes")]
    pub(crate) access_log: bool,
    /// How log lines are written to stderr: `text` (default) or `json` (one object a line).
    /// Levels come from `RUST_LOG` (default `info`).
    #[serde(default)]
    pub(crate) log_format: LogFormat,
    /// The scheme and authority clients address the gateway at (`https://api.example`), for
    /// the URL a DPoP proof names; the routes' default (`https://` and the `Host` if unset).
    pub(crate) public_origin: Option<String>,
    /// How many DPoP proofs each route remembers for the replay check (each for 120 s: twice
    /// the 60 s `iat` window). A proof beyond it is refused, so this bounds a route's
    /// sustained DPoP rate at `dpop_replay_capacity / 120` a second.
    #[serde(default = "default_dpop_replay_capacity")]
    pub(crate) dpop_replay_capacity: usize,
    /// Whether the caller's `Authorization` header is passed upstream (dropped by default).
    #[serde(default)]
    pub(crate) forward_token: bool,
    /// The introspection endpoint (routes in `introspection` or `auto` mode).
    pub(crate) introspection: Option<Introspection>,
    /// Issuers of JWT access tokens validated locally (routes in `jwt` or `auto` mode that
    /// name none of their own).
    #[serde(default, rename = "issuer")]
    pub(crate) issuers: Vec<Issuer>,
    #[serde(default)]
    pub(crate) contracts: Contracts,
    #[serde(default)]
    pub(crate) cache: Cache,
    /// How contracts' SLA tiers are counted.
    #[serde(default)]
    pub(crate) limits: Limits,
    /// The APIs, by path prefix (the longest matching prefix wins; no match is a 404).
    #[serde(rename = "route")]
    pub(crate) routes: Vec<Route>,
}

/// The certificate and key of the HTTPS listener.
#[derive(Clone, Debug, Deserialize, PartialEq, Eq)]
#[serde(deny_unknown_fields)]
pub(crate) struct ListenTls {
    /// The certificate chain (PEM, the server's certificate first).
    pub(crate) cert_file: PathBuf,
    /// Its private key (PEM: PKCS#8, PKCS#1 or SEC1).
    pub(crate) key_file: PathBuf,
    /// Whether clients are asked for a certificate (mutual TLS, RFC 8705): `off` (default),
    /// `optional` or `required`. A certificate-bound token (`cnf.x5t#S256`) is allowed only on
    /// a connection whose client certificate is the one it names.
    #[serde(default)]
    pub(crate) client_auth: ClientAuth,
    /// The CA (PEM) client certificates must chain to. Unset with `client_auth` on: any
    /// certificate whose key the client proves in the handshake is taken (self-signed ones
    /// too, as RFC 8705 §2.2 clients use); it then only binds tokens, it names no one.
    pub(crate) client_ca_file: Option<PathBuf>,
}

/// When the HTTPS listener asks for a client certificate.
#[derive(Clone, Copy, Debug, Default, Deserialize, PartialEq, Eq)]
#[serde(rename_all = "snake_case")]
pub(crate) enum ClientAuth {
    /// Never: no certificate-bound token can pass.
    #[default]
    Off,
    /// Asked for; a connection without one is served (bound tokens are refused on it).
    Optional,
    /// A handshake without a client certificate fails.
    Required,
}

/// An issuer of JWT access tokens (RFC 9068), validated with the keys at its `jwks_uri`.
#[derive(Clone, Debug, Deserialize)]
#[serde(deny_unknown_fields)]
pub(crate) struct Issuer {
    /// Its `iss`, exactly.
    pub(crate) issuer: String,
    /// The `aud` its tokens must carry (the route's `audience` if unset).
    pub(crate) audience: Option<String>,
    /// Where its keys are published.
    pub(crate) jwks_uri: String,
    /// The signature algorithms accepted (default RS256, PS256, ES256, ES384, EdDSA; HMAC is
    /// never accepted).
    pub(crate) algorithms: Option<Vec<String>>,
    /// A private CA to trust for `jwks_uri` besides the public roots (PEM).
    pub(crate) ca_file: Option<PathBuf>,
    /// Allow `http://` to 127.0.0.1/localhost (development only).
    #[serde(default)]
    pub(crate) allow_http_loopback: bool,
}

/// A public origin: `https://` (or `http://`) and an authority, nothing after it, as DPoP's
/// `htu` compares it (RFC 9449 §4.3: without query and fragment).
fn check_origin(origin: &str) -> Result<(), String> {
    let authority = origin
        .strip_prefix("https://")
        .or_else(|| origin.strip_prefix("http://"))
        .ok_or_else(|| format!("{origin:?} is not an http(s) origin"))?;
    if authority.is_empty()
        || authority.contains(['/', '?', '#', '@'])
        || authority
            .chars()
            .any(|c| c.is_whitespace() || c.is_control())
    {
        return Err(format!(
            "{origin:?}: only a scheme and host[:port] (no path, query or credentials)"
        ));
    }
    Ok(())
}

/// The longest time setting, in seconds (a year).
const MAX_SECS: u64 = 365 * 24 * 3600;

/// The most connections a limit may allow (beyond, the process runs out of descriptors first).
const MAX_CONNECTIONS: usize = 1_000_000;

/// The most serving threads: far beyond any CPU count, and each holds a socket and a pool.
const MAX_WORKERS: usize = 1024;

fn yes() -> bool {
    true
}

/// 1,000,000 proofs (about 100 MB at most): 8,333 DPoP requests a second per route, sustained.
fn default_dpop_replay_capacity() -> usize {
    1_000_000
}

fn default_upstream_timeout() -> u64 {
    30
}

fn default_grace() -> u64 {
    10
}

fn default_header_read_timeout() -> u64 {
    10
}

fn default_max_pending_connections() -> usize {
    512
}

fn default_max_connections() -> usize {
    10_000
}

/// One per CPU the process may use (its affinity mask or cgroup quota included), as nginx's
/// `worker_processes auto`.
fn default_workers() -> usize {
    std::thread::available_parallelism().map_or(1, std::num::NonZeroUsize::get)
}

fn default_max_header_bytes() -> usize {
    32 * 1024
}

/// Short, as Apache's `KeepAliveTimeout`: an idle connection costs a slot of
/// `max_connections`, and a client reconnects cheaply. (hyper's header-read timer also runs
/// while a connection waits, so a value above `header_read_timeout_secs` has no effect.)
fn default_idle_timeout() -> u64 {
    5
}

fn default_probe_interval() -> u64 {
    5
}

fn default_max_body_bytes() -> u64 {
    10 * 1024 * 1024
}

/// How log lines are written.
#[derive(Clone, Copy, Debug, Default, Deserialize, PartialEq, Eq)]
#[serde(rename_all = "snake_case")]
pub(crate) enum LogFormat {
    /// One human-readable line per event.
    #[default]
    Text,
    /// One JSON object per line (`timestamp`, `level`, `fields`, ...).
    Json,
}

/// The authorization server's introspection endpoint and the gateway's credentials.
#[derive(Clone, Debug, Deserialize)]
#[serde(deny_unknown_fields)]
pub(crate) struct Introspection {
    pub(crate) endpoint: String,
    pub(crate) client_id: String,
    /// The environment variable holding the client secret.
    pub(crate) client_secret_env: Option<String>,
    /// Or a file holding it (trailing whitespace trimmed).
    pub(crate) client_secret_file: Option<PathBuf>,
    /// `basic` (default) or `post`.
    #[serde(default)]
    pub(crate) auth: Auth,
    /// A private CA to trust besides the public roots (PEM).
    pub(crate) ca_file: Option<PathBuf>,
    /// Allow `http://` to 127.0.0.1/localhost (development only).
    #[serde(default)]
    pub(crate) allow_http_loopback: bool,
}

/// How the gateway authenticates to the introspection endpoint.
#[derive(Clone, Copy, Debug, Default, Deserialize, PartialEq, Eq)]
#[serde(rename_all = "snake_case")]
pub(crate) enum Auth {
    #[default]
    Basic,
    Post,
}

/// Where contracts are kept.
#[derive(Clone, Debug, Deserialize, PartialEq)]
#[serde(tag = "store", rename_all = "snake_case", deny_unknown_fields)]
pub(crate) enum Contracts {
    /// A redb file on this node (the default: `contracts.redb`). A relative path is read
    /// from the configuration file's directory, not the current directory, so the gateway
    /// and `oauth-gateway contracts` find the same file wherever they are started.
    Redb {
        #[serde(default = "default_redb")]
        path: PathBuf,
    },
    /// PostgreSQL, shared by the fleet (LISTEN/NOTIFY).
    Postgres {
        /// The environment variable holding the database URL.
        url_env: String,
        /// Decisions continue from the last snapshot this long after losing the database.
        #[serde(default = "default_staleness")]
        max_staleness_secs: f64,
        /// The only CA (PEM) trusted for the database's certificate: TLS always, verified as
        /// `sslmode=verify-full`. Unset: the URL's `sslmode` decides (`require`/`verify-*`: TLS
        /// with the public roots; otherwise plain).
        #[serde(default)]
        ca_file: Option<PathBuf>,
    },
}

impl Default for Contracts {
    fn default() -> Self {
        Self::Redb {
            path: default_redb(),
        }
    }
}

fn default_redb() -> PathBuf {
    PathBuf::from("contracts.redb")
}

fn default_staleness() -> f64 {
    30.0
}

/// How validation results are cached.
#[derive(Clone, Debug, Deserialize)]
#[serde(deny_unknown_fields)]
pub(crate) struct Cache {
    /// Tokens kept per route on this node.
    #[serde(default = "default_capacity")]
    pub(crate) capacity: usize,
    /// The longest a result is reused (never past the token's `exp`), in seconds.
    #[serde(default = "default_max_age")]
    pub(crate) max_age_secs: u64,
    /// Shared by the fleet through Redis, if set.
    pub(crate) redis: Option<RedisCache>,
}

impl Default for Cache {
    fn default() -> Self {
        Self {
            capacity: default_capacity(),
            max_age_secs: default_max_age(),
            redis: None,
        }
    }
}

fn default_capacity() -> usize {
    100_000
}

fn default_max_age() -> u64 {
    300
}

/// The fleet's shared cache.
#[derive(Clone, Debug, Deserialize)]
#[serde(deny_unknown_fields)]
pub(crate) struct RedisCache {
    /// The environment variable holding the Redis URL (it may hold a password).
    pub(crate) url_env: String,
    /// The environment variable holding the records' sealing key: 32 bytes, base64, the same
    /// on every node.
    pub(crate) secret_env: String,
    /// How long a node waits for another node's introspection call, in milliseconds.
    #[serde(default = "default_lease")]
    pub(crate) lease_ms: u64,
    /// The only CA (PEM) trusted for a `rediss://` server (unset: the public roots).
    #[serde(default)]
    pub(crate) ca_file: Option<PathBuf>,
}

fn default_lease() -> u64 {
    2000
}

/// How SLA tiers are counted: on each node (`local`, the default), or by the fleet in Redis
/// (`redis`: the `[cache.redis]` server, or `url_env`'s), with a fallback while Redis is down.
#[derive(Clone, Debug, Deserialize)]
#[serde(deny_unknown_fields)]
pub(crate) struct Limits {
    /// `local` or `redis`.
    #[serde(default)]
    pub(crate) store: LimitStore,
    /// The environment variable holding the Redis URL (default: `[cache.redis] url_env`).
    pub(crate) url_env: Option<String>,
    /// The only CA (PEM) trusted for a `rediss://` server (default: `[cache.redis] ca_file`
    /// when `url_env` is unset, i.e. the same server; else the public roots).
    #[serde(default)]
    pub(crate) ca_file: Option<PathBuf>,
    /// While Redis is down: `local` (each node counts a `fleet_size`-th of each limit, the
    /// default), `open` (requests go uncounted) or `closed` (503).
    #[serde(default)]
    pub(crate) fallback: LimitFallback,
    /// How many gateways share the tiers (for the `local` fallback).
    #[serde(default = "default_fleet_size")]
    pub(crate) fleet_size: u32,
    /// Whether allowed responses carry `RateLimit-Policy` and `RateLimit` (default true).
    #[serde(default = "default_true")]
    pub(crate) expose_headers: bool,
}

impl Default for Limits {
    fn default() -> Self {
        Self {
            store: LimitStore::Local,
            url_env: None,
            ca_file: None,
            fallback: LimitFallback::Local,
            fleet_size: default_fleet_size(),
            expose_headers: true,
        }
    }
}

fn default_fleet_size() -> u32 {
    1
}

fn default_true() -> bool {
    true
}

/// Where tiers are counted.
#[derive(Clone, Copy, Debug, Default, Deserialize, PartialEq, Eq)]
#[serde(rename_all = "snake_case")]
pub(crate) enum LimitStore {
    /// On this node.
    #[default]
    Local,
    /// In Redis, by the fleet.
    Redis,
}

/// What to do while the fleet's counter is down.
#[derive(Clone, Copy, Debug, Default, Deserialize, PartialEq, Eq)]
#[serde(rename_all = "snake_case")]
pub(crate) enum LimitFallback {
    /// Count locally, a fleet-size-th of each limit.
    #[default]
    Local,
    /// Let requests through uncounted.
    Open,
    /// Refuse with 503.
    Closed,
}

/// How a route validates tokens.
#[derive(Clone, Copy, Debug, Default, Deserialize, PartialEq, Eq)]
#[serde(rename_all = "snake_case")]
pub(crate) enum Mode {
    /// At the introspection endpoint only.
    Introspection,
    /// Locally, as JWT access tokens from the route's issuers only.
    Jwt,
    /// A JWT from one of the issuers locally, any other token by introspection (the default).
    #[default]
    Auto,
}

/// Whether a route takes DPoP-bound tokens.
#[derive(Clone, Copy, Debug, Default, Deserialize, PartialEq, Eq)]
#[serde(rename_all = "snake_case")]
pub(crate) enum Dpop {
    /// Bearer tokens only.
    Off,
    /// Both (the default).
    #[default]
    Allowed,
    /// DPoP-bound tokens with their proof only.
    Required,
}

/// Whether a request needs all the route's scopes or one of them.
#[derive(Clone, Copy, Debug, Default, Deserialize, PartialEq, Eq)]
#[serde(rename_all = "snake_case")]
pub(crate) enum ScopeCriteria {
    #[default]
    All,
    Any,
}

/// One API behind the gateway.
#[derive(Clone, Debug, Deserialize)]
#[serde(deny_unknown_fields)]
pub(crate) struct Route {
    /// The path prefix (`/orders` matches `/orders` and `/orders/…`).
    pub(crate) prefix: String,
    /// The API name contracts are held for.
    pub(crate) api: String,
    /// Scopes every request needs (all of them, or one with `scope_criteria = "any"`).
    #[serde(default)]
    pub(crate) scopes: Vec<String>,
    #[serde(default)]
    pub(crate) scope_criteria: ScopeCriteria,
    /// The audience tokens must carry, if checked.
    pub(crate) audience: Option<String>,
    /// Whether paths may hold `%25` (an encoded `%`). Off by default: an upstream that decodes
    /// twice would read `%252e%252e` as `..`. Turn it on only for an upstream that decodes once.
    #[serde(default)]
    pub(crate) allow_encoded_percent: bool,
    #[serde(default)]
    pub(crate) mode: Mode,
    #[serde(default)]
    pub(crate) dpop: Dpop,
    /// The scheme and authority clients address this route at (`https://api.example`), for
    /// the URL a DPoP proof names (`htu`); the top-level `public_origin`, else `https://` and
    /// the request's `Host`, if unset.
    pub(crate) public_origin: Option<String>,
    /// `authorization_details` types (RFC 9396) every token must carry, each one (none by
    /// default); a token without one is refused 403.
    #[serde(default)]
    pub(crate) authorization_details_types: Vec<String>,
    /// Whether the client must hold a contract for the API.
    #[serde(default = "yes")]
    pub(crate) require_contract: bool,
    /// This route's issuers (the top-level `[[issuer]]`s if none).
    #[serde(default, rename = "issuer")]
    pub(crate) issuers: Vec<Issuer>,
    /// This route's upstream (the top-level one if unset).
    pub(crate) upstream: Option<String>,
    pub(crate) upstream_timeout_secs: Option<u64>,
    pub(crate) upstream_ca_file: Option<PathBuf>,
    /// Whether the prefix is removed from the path passed upstream.
    #[serde(default)]
    pub(crate) strip_prefix: bool,
    /// The largest request body, in bytes (the top-level `max_body_bytes` if unset).
    pub(crate) max_body_bytes: Option<u64>,
}

impl Route {
    /// The issuers this route validates JWTs of: its own, else the configuration's.
    pub(crate) fn issuers<'a>(&'a self, config: &'a Config) -> &'a [Issuer] {
        if self.issuers.is_empty() {
            &config.issuers
        } else {
            &self.issuers
        }
    }
}

impl Config {
    /// Reads and checks the file.
    pub(crate) fn load(path: &std::path::Path) -> Result<Self, String> {
        let text = std::fs::read_to_string(path).map_err(|e| format!("{}: {e}", path.display()))?;
        let config: Self =
            toml::from_str(&text).map_err(|e| format!("{}: {}", path.display(), e.message()))?;
        let mut config = config;
        config
            .check()
            .map_err(|e| format!("{}: {e}", path.display()))?;
        // Absolute, so that log lines and messages name the file wherever one reads them.
        let dir = match path.parent() {
            Some(dir) if !dir.as_os_str().is_empty() => dir,
            _ => std::path::Path::new("."),
        };
        config.resolve_paths(&std::path::absolute(dir).unwrap_or_else(|_| dir.to_path_buf()));
        Ok(config)
    }

    /// Makes the redb file's path relative to `dir` (the configuration file's directory).
    fn resolve_paths(&mut self, dir: &std::path::Path) {
        if let Contracts::Redb { path } = &mut self.contracts
            && path.is_relative()
        {
            *path = dir.join(&*path);
        }
    }

    /// The CA file `[limits]` trusts for its Redis: its own, or `[cache.redis]`'s when it
    /// uses that server.
    pub(crate) fn limits_ca_file(&self) -> Option<&std::path::Path> {
        match (
            &self.limits.ca_file,
            &self.limits.url_env,
            &self.cache.redis,
        ) {
            (Some(ca), _, _) => Some(ca),
            (None, None, Some(redis)) => redis.ca_file.as_deref(),
            _ => None,
        }
    }

    /// The redb contracts file, if contracts are kept in one.
    pub(crate) fn redb_path(&self) -> Option<&std::path::Path> {
        match &self.contracts {
            Contracts::Redb { path } => Some(path),
            Contracts::Postgres { .. } => None,
        }
    }

    fn check(&self) -> Result<(), String> {
        if self.routes.is_empty() {
            return Err("no [[route]]: nothing to protect".into());
        }
        if let Some(tls) = &self.tls
            && tls.client_auth == ClientAuth::Off
            && tls.client_ca_file.is_some()
        {
            return Err("[tls] client_ca_file is set but client_auth is \"off\": set client_auth = \"optional\" or \"required\"".into());
        }
        for route in &self.routes {
            let name = &route.prefix;
            if !route.prefix.starts_with('/') {
                return Err(format!("route prefix {name:?} must start with /"));
            }
            let Some(upstream) = route.upstream.as_ref().or(self.upstream.as_ref()) else {
                return Err(format!(
                    "route {name:?}: no upstream (set `upstream` in the route or at the top)"
                ));
            };
            let Some((_, rest)) = upstream
                .split_once("://")
                .filter(|(scheme, _)| matches!(*scheme, "http" | "https"))
            else {
                return Err(format!("upstream {upstream:?} is not an http(s) URL"));
            };
            // Credentials in the URL would reach logs and errors; the gateway sends none.
            if rest
                .split(['/', '?'])
                .next()
                .is_some_and(|a| a.contains('@'))
            {
                return Err(format!(
                    "route {name:?}: the upstream URL must not hold credentials"
                ));
            }
            if let Some(origin) = route.public_origin.as_ref().or(self.public_origin.as_ref()) {
                check_origin(origin).map_err(|e| format!("route {name:?}: public_origin {e}"))?;
            }
            let issuers = route.issuers(self);
            match route.mode {
                Mode::Introspection if self.introspection.is_none() => {
                    return Err(format!(
                        "route {name:?}: mode \"introspection\" needs [introspection]"
                    ));
                }
                Mode::Jwt if issuers.is_empty() => {
                    return Err(format!(
                        "route {name:?}: mode \"jwt\" needs an [[issuer]] or [[route.issuer]]"
                    ));
                }
                Mode::Auto if issuers.is_empty() && self.introspection.is_none() => {
                    return Err(format!(
                        "route {name:?}: no [introspection] and no [[issuer]]: no token can pass"
                    ));
                }
                _ => {}
            }
            if route.mode != Mode::Introspection {
                for issuer in issuers {
                    if issuer.audience.is_none() && route.audience.is_none() {
                        return Err(format!(
                            "route {name:?}: issuer {:?} needs an audience (in the issuer or \
                             the route)",
                            issuer.issuer
                        ));
                    }
                    for alg in issuer.algorithms.iter().flatten() {
                        match jwt_assertion::Algorithm::from_name(alg) {
                            Some(a) if a.is_asymmetric() => {}
                            _ => {
                                return Err(format!(
                                    "issuer {:?}: algorithm {alg:?} is not accepted (RS256, \
                                     RS384, RS512, PS256, PS384, PS512, ES256, ES384, EdDSA)",
                                    issuer.issuer
                                ));
                            }
                        }
                    }
                }
            }
        }
        for (value, key) in [
            (self.header_read_timeout_secs, "header_read_timeout_secs"),
            (self.idle_timeout_secs, "idle_timeout_secs"),
            (self.probe_interval_secs, "probe_interval_secs"),
        ] {
            if value == 0 {
                return Err(format!("{key} must be at least 1"));
            }
        }
        // Timers add these to the clock: a year is the most, so no deadline can overflow.
        let route_timeouts = self
            .routes
            .iter()
            .filter_map(|r| r.upstream_timeout_secs)
            .map(|t| (t, "upstream_timeout_secs"));
        for (value, key) in [
            (self.header_read_timeout_secs, "header_read_timeout_secs"),
            (self.idle_timeout_secs, "idle_timeout_secs"),
            (self.probe_interval_secs, "probe_interval_secs"),
            (self.upstream_timeout_secs, "upstream_timeout_secs"),
            (self.shutdown_grace_secs, "shutdown_grace_secs"),
        ]
        .into_iter()
        .chain(route_timeouts)
        {
            if value > MAX_SECS {
                return Err(format!("{key} must be at most {MAX_SECS} (a year)"));
            }
        }
        if self.limits.fleet_size == 0 {
            return Err("[limits] fleet_size must be at least 1".into());
        }
        if self.limits.store == LimitStore::Redis
            && self.limits.url_env.is_none()
            && self.cache.redis.is_none()
        {
            return Err("[limits] store = \"redis\" needs url_env or [cache.redis]".into());
        }
        for (value, key) in [
            (self.max_pending_connections, "max_pending_connections"),
            (self.max_connections, "max_connections"),
        ] {
            if value == 0 {
                return Err(format!("{key} must be at least 1"));
            }
            if value > MAX_CONNECTIONS {
                return Err(format!("{key} must be at most {MAX_CONNECTIONS}"));
            }
        }
        if self.workers == 0 {
            return Err("workers must be at least 1".into());
        }
        if self.workers > MAX_WORKERS {
            return Err(format!("workers must be at most {MAX_WORKERS}"));
        }
        if self.max_header_bytes < 8192 {
            return Err("max_header_bytes must be at least 8192".into());
        }
        let Some(i) = &self.introspection else {
            return Ok(());
        };
        match (&i.client_secret_env, &i.client_secret_file) {
            (Some(_), Some(_)) => {
                Err("[introspection]: client_secret_env or client_secret_file, not both".into())
            }
            (None, None) => {
                Err("[introspection]: client_secret_env or client_secret_file is required".into())
            }
            _ => Ok(()),
        }
    }
}

/// Reads a secret from the environment variable `name`.
pub(crate) fn env_secret(name: &str, what: &str) -> Result<String, String> {
    std::env::var(name).map_err(|_| format!("{what}: the environment variable {name} is not set"))
}

#[cfg(test)]
mod tests {
    use super::*;

    const GOOD: &str = r#"
listen = "127.0.0.1:8080"
upstream = "http://127.0.0.1:9000"
[introspection]
endpoint = "https://as.example/introspect"
client_id = "gateway"
client_secret_env = "SECRET"
[[route]]
prefix = "/orders"
api = "orders"
scopes = ["orders:read"]
"#;

    fn parse(text: &str) -> Result<Config, String> {
        let config: Config = toml::from_str(text).map_err(|e| e.message().to_owned())?;
        config.check()?;
        Ok(config)
    }

    #[test]
    fn mutual_tls_keys() {
        let top = "[tls]\ncert_file = \"c.pem\"\nkey_file = \"k.pem\"\n";
        // `[tls]` is a table: the route keys come first.
        let with = |extra: &str| parse(&format!("{GOOD}\n{top}{extra}"));
        let off = with("").unwrap();
        let tls = off.tls.as_ref().unwrap();
        assert_eq!(
            (tls.client_auth, tls.client_ca_file.is_none()),
            (ClientAuth::Off, true)
        );
        let optional = with("client_auth = \"optional\"").unwrap();
        assert_eq!(optional.tls.unwrap().client_auth, ClientAuth::Optional);
        let required = with("client_auth = \"required\"\nclient_ca_file = \"ca.pem\"").unwrap();
        assert_eq!(required.tls.unwrap().client_auth, ClientAuth::Required);
        let err = with("client_ca_file = \"ca.pem\"").unwrap_err();
        assert!(err.contains("client_auth is \"off\""), "{err}");
        let err = with("client_auth = \"sometimes\"").unwrap_err();
        assert!(err.contains("unknown variant `sometimes`"), "{err}");
    }

    #[test]
    fn public_origins() {
        let route = |origin: &str| {
            parse(&GOOD.replace(
                "api = \"orders\"",
                &format!("api = \"orders\"\npublic_origin = \"{origin}\""),
            ))
        };
        assert!(route("https://api.example").is_ok());
        assert!(route("https://api.example:8443").is_ok());
        for bad in [
            "api.example",
            "https://",
            "https://api.example/orders",
            "https://u:p@api.example",
            "https://api.example?x",
            "ftp://api.example",
        ] {
            let err = route(bad).unwrap_err();
            assert!(err.contains("public_origin"), "{bad}: {err}");
        }
        let top = parse(&format!("public_origin = \"https://edge.example\"\n{GOOD}")).unwrap();
        assert_eq!(top.public_origin.as_deref(), Some("https://edge.example"));
        let err = parse(&format!(
            "public_origin = \"https://edge.example/x\"\n{GOOD}"
        ))
        .unwrap_err();
        assert!(err.contains("public_origin"), "{err}");
    }

    #[test]
    fn defaults_and_refusals() {
        let config = parse(GOOD).unwrap();
        assert!(matches!(config.contracts, Contracts::Redb { .. }));
        assert!(config.cache.redis.is_none());
        assert_eq!(config.dpop_replay_capacity, 1_000_000);
        assert!(!config.forward_token);
        assert!(!config.routes[0].allow_encoded_percent);
        assert_eq!(config.log_format, LogFormat::Text);
        let json = parse(&format!("log_format = \"json\"\n{GOOD}")).unwrap();
        assert_eq!(json.log_format, LogFormat::Json);
        let err = parse(&format!("log_format = \"xml\"\n{GOOD}")).unwrap_err();
        assert!(err.contains("unknown variant `xml`"), "{err}");
        assert_eq!(config.header_read_timeout_secs, 10);
        let route = &config.routes[0];
        assert_eq!(
            (route.mode, route.dpop, route.scope_criteria),
            (Mode::Auto, Dpop::Allowed, ScopeCriteria::All)
        );
        assert!(route.require_contract && !route.strip_prefix && config.access_log);
        assert_eq!(
            (
                config.max_header_bytes,
                config.max_body_bytes,
                config.max_connections,
                config.idle_timeout_secs
            ),
            (32 * 1024, 10 * 1024 * 1024, 10_000, 5)
        );
        assert!(config.admin_listen.is_none() && config.tls.is_none());
        let small = parse(&format!("max_header_bytes = 4096\n{GOOD}")).unwrap_err();
        assert!(small.contains("at least 8192"), "{small}");
        let userinfo = GOOD.replace("http://127.0.0.1:9000", "http://u:p@127.0.0.1:9000");
        let err = parse(&userinfo).unwrap_err();
        assert!(
            err.contains("must not hold credentials") && !err.contains("u:p"),
            "{err}"
        );
        let no_upstream = parse(&GOOD.replace("upstream = \"http://127.0.0.1:9000\"", ""));
        assert!(no_upstream.unwrap_err().contains("no upstream"));
        let bad_mode = parse(&GOOD.replace("api = \"orders\"", "api = \"orders\"\nmode = \"x\""));
        assert!(bad_mode.unwrap_err().contains("unknown variant `x`"));
        assert_eq!(config.max_pending_connections, 512);
        assert_eq!(
            config.workers,
            std::thread::available_parallelism().map_or(1, std::num::NonZeroUsize::get)
        );
        let many = parse(&format!("workers = 100000\n{GOOD}")).unwrap_err();
        assert!(many.contains("workers must be at most"), "{many}");
        for zero in [
            "header_read_timeout_secs = 0",
            "max_pending_connections = 0",
            "max_connections = 0",
            "idle_timeout_secs = 0",
            "workers = 0",
        ] {
            let err = parse(&format!("{zero}\n{GOOD}")).unwrap_err();
            assert!(err.contains("must be at least 1"), "{err}");
        }
        for huge in [
            "header_read_timeout_secs = 9223372036854775807",
            "shutdown_grace_secs = 31536001",
            "max_connections = 9223372036854775807",
        ] {
            let err = parse(&format!("{huge}\n{GOOD}")).unwrap_err();
            assert!(err.contains("must be at most"), "{err}");
        }
        let route_timeout = GOOD.replace(
            "api = \"orders\"",
            "api = \"orders\"\nupstream_timeout_secs = 99999999999",
        );
        assert!(parse(&route_timeout).unwrap_err().contains("at most"));
        let percent = GOOD.replace(
            "api = \"orders\"",
            "api = \"orders\"\nallow_encoded_percent = true",
        );
        assert!(parse(&percent).unwrap().routes[0].allow_encoded_percent);
        let unknown = GOOD.replace("api = \"orders\"", "api = \"orders\"\nscope = [\"x\"]");
        let err = parse(&unknown).unwrap_err();
        assert!(err.contains("unknown field `scope`"), "{err}");
        let no_secret = GOOD.replace("client_secret_env = \"SECRET\"", "");
        assert!(parse(&no_secret).unwrap_err().contains("client_secret"));
        let bad_prefix = GOOD.replace("prefix = \"/orders\"", "prefix = \"orders\"");
        assert!(
            parse(&bad_prefix)
                .unwrap_err()
                .contains("must start with /")
        );
        let mut beside = parse(GOOD).unwrap();
        beside.resolve_paths(std::path::Path::new("/etc/gateway"));
        assert_eq!(
            beside.redb_path(),
            Some(std::path::Path::new("/etc/gateway/contracts.redb"))
        );
        let mut absolute = parse(&format!(
            "{GOOD}\n[contracts]\nstore = \"redb\"\npath = \"/var/lib/c.redb\"\n"
        ))
        .unwrap();
        absolute.resolve_paths(std::path::Path::new("/etc/gateway"));
        assert_eq!(
            absolute.redb_path(),
            Some(std::path::Path::new("/var/lib/c.redb"))
        );
        let pg = format!("{GOOD}\n[contracts]\nstore = \"postgres\"\nurl_env = \"DB\"\n");
        assert!(matches!(
            parse(&pg).unwrap().contracts,
            Contracts::Postgres { .. }
        ));
    }

    #[test]
    fn each_store_has_its_ca_file() {
        let path = |p: &str| Some(PathBuf::from(p));
        let text = format!(
            "{GOOD}\n[contracts]\nstore = \"postgres\"\nurl_env = \"DB\"\nca_file = \"/pg.pem\"\n\
             [cache.redis]\nurl_env = \"R\"\nsecret_env = \"K\"\nca_file = \"/redis.pem\"\n\
             [limits]\nstore = \"redis\"\n"
        );
        let config = parse(&text).unwrap();
        assert!(matches!(
            &config.contracts,
            Contracts::Postgres { ca_file, .. } if *ca_file == path("/pg.pem")
        ));
        // [limits] on [cache.redis]'s server trusts its CA; on a server of its own, its own.
        assert_eq!(
            config.limits_ca_file(),
            Some(std::path::Path::new("/redis.pem"))
        );
        let own = text.replace(
            "store = \"redis\"\n",
            "store = \"redis\"\nurl_env = \"L\"\n",
        );
        assert_eq!(parse(&own).unwrap().limits_ca_file(), None);
        let own_ca = own.replace("url_env = \"L\"", "url_env = \"L\"\nca_file = \"/l.pem\"");
        assert_eq!(
            parse(&own_ca).unwrap().limits_ca_file(),
            Some(std::path::Path::new("/l.pem"))
        );
        // Not a key of redb contracts.
        let redb = format!("{GOOD}\n[contracts]\nstore = \"redb\"\nca_file = \"/x.pem\"\n");
        assert!(parse(&redb).unwrap_err().contains("ca_file"));
    }
}
