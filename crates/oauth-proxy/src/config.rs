//! The configuration file (TOML). Unknown keys are refused, so a typo is an error at start,
//! not a setting silently ignored. Secrets are never in the file: each names an environment
//! variable or a file that holds it.

use std::net::SocketAddr;
use std::path::PathBuf;
use std::time::Duration;

use serde::Deserialize;

/// The whole file.
#[derive(Clone, Debug, Deserialize)]
#[serde(deny_unknown_fields)]
pub(crate) struct Config {
    /// Where the proxy listens (port 0: one the system chooses, named in the "ready" log line).
    pub(crate) listen: SocketAddr,
    /// The service behind the gateway (`http://host:port`, a base path allowed).
    pub(crate) upstream: String,
    /// How long the upstream may take to answer (headers), in seconds.
    #[serde(default = "default_upstream_timeout")]
    pub(crate) upstream_timeout_secs: u64,
    /// How long in-flight requests may run after a shutdown signal, in seconds.
    #[serde(default = "default_grace")]
    pub(crate) shutdown_grace_secs: u64,
    /// How long a client may take to send a request's headers, in seconds; the connection is
    /// closed when it runs out. It also bounds how long an idle keep-alive connection is kept.
    #[serde(default = "default_header_read_timeout")]
    pub(crate) header_read_timeout_secs: u64,
    /// How many connections may be sending their first request's headers at once, for all
    /// clients together; a connection that arrives beyond it is closed at once.
    #[serde(default = "default_max_pending_connections")]
    pub(crate) max_pending_connections: usize,
    /// How log lines are written to stderr: `text` (default) or `json` (one object a line).
    /// Levels come from `RUST_LOG` (default `info`).
    #[serde(default)]
    pub(crate) log_format: LogFormat,
    /// Whether the caller's `Authorization` header is passed upstream (dropped by default).
    #[serde(default)]
    pub(crate) forward_token: bool,
    pub(crate) introspection: Introspection,
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
#[derive(Clone, Debug, Deserialize)]
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

/// One API behind the gateway.
#[derive(Clone, Debug, Deserialize)]
#[serde(deny_unknown_fields)]
pub(crate) struct Route {
    /// The path prefix (`/orders` matches `/orders` and `/orders/…`).
    pub(crate) prefix: String,
    /// The API name contracts are held for.
    pub(crate) api: String,
    /// Scopes every request needs.
    #[serde(default)]
    pub(crate) scopes: Vec<String>,
    /// The audience tokens must carry, if checked.
    pub(crate) audience: Option<String>,
    /// Whether paths may hold `%25` (an encoded `%`). Off by default: an upstream that decodes
    /// twice would read `%252e%252e` as `..`. Turn it on only for an upstream that decodes once.
    #[serde(default)]
    pub(crate) allow_encoded_percent: bool,
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
        for route in &self.routes {
            if !route.prefix.starts_with('/') {
                return Err(format!("route prefix {:?} must start with /", route.prefix));
            }
        }
        if self.header_read_timeout_secs == 0 {
            return Err("header_read_timeout_secs must be at least 1".into());
        }
        if self.max_pending_connections == 0 {
            return Err("max_pending_connections must be at least 1".into());
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
        let upstream = self.upstream.as_str();
        if !(upstream.starts_with("http://") || upstream.starts_with("https://")) {
            return Err(format!("upstream {upstream:?} is not an http(s) URL"));
        }
        if upstream.starts_with("https://") {
            return Err(
                "upstream: https is not supported yet; put the proxy beside the service".into(),
            );
        }
        match (
            &self.introspection.client_secret_env,
            &self.introspection.client_secret_file,
        ) {
            (Some(_), Some(_)) => {
                Err("[introspection]: client_secret_env or client_secret_file, not both".into())
            }
            (None, None) => {
                Err("[introspection]: client_secret_env or client_secret_file is required".into())
            }
            _ => Ok(()),
        }
    }

    pub(crate) fn upstream_timeout(&self) -> Duration {
        Duration::from_secs(self.upstream_timeout_secs)
    }

    pub(crate) fn grace(&self) -> Duration {
        Duration::from_secs(self.shutdown_grace_secs)
    }

    pub(crate) fn header_read_timeout(&self) -> Duration {
        Duration::from_secs(self.header_read_timeout_secs)
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
    fn defaults_and_refusals() {
        let config = parse(GOOD).unwrap();
        assert!(matches!(config.contracts, Contracts::Redb { .. }));
        assert!(config.cache.redis.is_none());
        assert!(!config.forward_token);
        assert!(!config.routes[0].allow_encoded_percent);
        assert_eq!(config.log_format, LogFormat::Text);
        let json = parse(&format!("log_format = \"json\"\n{GOOD}")).unwrap();
        assert_eq!(json.log_format, LogFormat::Json);
        let err = parse(&format!("log_format = \"xml\"\n{GOOD}")).unwrap_err();
        assert!(err.contains("unknown variant `xml`"), "{err}");
        assert_eq!(config.header_read_timeout(), Duration::from_secs(10));
        assert_eq!(config.max_pending_connections, 512);
        for zero in [
            "header_read_timeout_secs = 0",
            "max_pending_connections = 0",
        ] {
            let err = parse(&format!("{zero}\n{GOOD}")).unwrap_err();
            assert!(err.contains("must be at least 1"), "{err}");
        }
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
}
