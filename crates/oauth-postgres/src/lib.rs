//! A PostgreSQL [`ContractStore`] for oauth-gateway: the contracts of a fleet of gateways in
//! one table, each node deciding from an in-memory snapshot that PostgreSQL keeps current.
//!
//! - [`PostgresContracts::connect`] creates the table if needed (the migration this crate ships,
//!   [`MIGRATION`], under an advisory lock so that nodes starting together do not race), loads
//!   the snapshot and starts a listener thread: a trigger on the table sends `NOTIFY
//!   oauth_gateway_contracts` on every change, whatever wrote it, and each node reloads at once
//!   — a revoked contract is enforced by the whole fleet within a round trip.
//! - Lookups never touch the database: they read the snapshot (an `arc-swap` load).
//! - A row that fails validation (an empty or non-printable client id or API, a scope token
//!   RFC 6749 §3.3 does not allow) is skipped with a log line; the others load.
//! - When PostgreSQL cannot be reached, the node keeps deciding from its last snapshot for
//!   [`PostgresConfig::max_staleness`] after the last moment it was known current, then answers
//!   every lookup [`ContractStatus::Unavailable`] (the gateway's 503) until the database is back.
//!
//! ```no_run
//! use oauth_postgres::{PostgresConfig, PostgresContracts};
//!
//! # fn run() -> Result<(), Box<dyn std::error::Error>> {
//! let url = std::env::var("DATABASE_URL")?; // postgresql://gateway@10.0.0.7/gateways
//! let contracts = PostgresContracts::connect(&url, PostgresConfig::new())?;
//! // Gateway::builder(http, endpoint, credentials).build(policy, contracts)
//! # let _ = contracts; Ok(()) }
//! ```
//!
//! Rows are written by whatever manages contracts:
//! `INSERT INTO oauth_gateway_contracts (client_id, api, scopes) VALUES ('app-1', 'orders',
//! 'orders:read')`, `DELETE FROM oauth_gateway_contracts WHERE client_id = 'app-1'`. A
//! contract's SLA tier is two more columns ([`MIGRATION_TIERS`]): `UPDATE
//! oauth_gateway_contracts SET tier_name = 'silver', tier_limits = '100/60,5000/86400' WHERE
//! client_id = 'app-1'` (100 requests a minute and 5,000 a day); a row with an invalid tier is
//! skipped and logged, as an invalid contract is.
//!
//! # TLS
//!
//! [`PostgresContracts::connect_tls`] connects over TLS only, with `sslmode=verify-full`
//! semantics: the server's chain must lead to a CA of the [`PostgresTls`] given (a private CA's
//! PEM, or the public roots) and its certificate must be for the host of the URL (a name or an
//! IP address); there is no fallback to a plain connection. [`PostgresContracts::connect`]
//! does the same with the public roots when the URL says `sslmode=require`, `verify-ca` or
//! `verify-full` (all three verified in full), and connects in plain TCP (or over a Unix
//! socket) otherwise — for a database on loopback or a private network.
//!
//! ```no_run
//! use oauth_postgres::{PostgresConfig, PostgresContracts, PostgresTls};
//!
//! # fn run() -> Result<(), Box<dyn std::error::Error>> {
//! let url = std::env::var("DATABASE_URL")?; // postgresql://gateway@db.internal/gateways
//! let tls = PostgresTls::with_ca_pem(&std::fs::read("/etc/gateway/db-ca.pem")?)?;
//! let contracts = PostgresContracts::connect_tls(&url, PostgresConfig::new(), tls)?;
//! # let _ = contracts; Ok(()) }
//! ```
//!
//! A server whose certificate is not trusted fails the start with a [`PostgresError`] whose
//! [`certificate_rejected`](PostgresError::certificate_rejected) is true.
//!
//! # Features
//!
//! None.
#![forbid(unsafe_code)]

use std::fmt;
use std::sync::atomic::{AtomicBool, AtomicU64, Ordering};
use std::sync::{Arc, Mutex};
use std::time::{Duration, Instant};

use oauth_gateway::oauth_core::resource_server::rate_limit::Tier;
use oauth_gateway::oauth_core::{ContractStatus, Scope};
use oauth_gateway::{Contract, ContractSet, ContractStore, MemoryContracts};
use postgres::fallible_iterator::FallibleIterator as _;

/// The table, its notification trigger, and the function the trigger calls.
pub const MIGRATION: &str = include_str!("../migrations/0001_contracts.sql");

/// The SLA tier columns (`tier_name`, `tier_limits`), applied after [`MIGRATION`].
pub const MIGRATION_TIERS: &str = include_str!("../migrations/0002_tiers.sql");

/// The notification channel the trigger sends on.
pub const CHANNEL: &str = "oauth_gateway_contracts";

/// How a [`PostgresContracts`] keeps its snapshot.
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
pub struct PostgresConfig {
    max_staleness: Duration,
    heartbeat: Duration,
    connect_timeout: Duration,
}

impl Default for PostgresConfig {
    /// Decisions from a snapshot at most 30 s past the last contact; a heartbeat every 500 ms;
    /// 2 s to connect.
    fn default() -> Self {
        Self {
            max_staleness: Duration::from_secs(30),
            heartbeat: Duration::from_millis(500),
            connect_timeout: Duration::from_secs(2),
        }
    }
}

impl PostgresConfig {
    /// The defaults.
    pub fn new() -> Self {
        Self::default()
    }

    /// How long after the last contact with PostgreSQL the snapshot is still used; after that,
    /// lookups are `Unavailable` (503) until the database answers again.
    pub fn max_staleness(mut self, limit: Duration) -> Self {
        self.max_staleness = limit;
        self
    }

    /// How often the listener checks that the database is there (and reconnects when not).
    pub fn heartbeat(mut self, every: Duration) -> Self {
        self.heartbeat = every.max(Duration::from_millis(10));
        self
    }
}

/// PostgreSQL could not be used at start (the URL, the TLS settings, the connection, the
/// migration, the load).
///
/// [`operation`](Self::operation) says which step failed; the driver's (or the operating
/// system's) own error is the [`source`](std::error::Error::source), when there is one.
#[derive(Debug)]
pub struct PostgresError {
    operation: &'static str,
    source: Option<Box<dyn std::error::Error + Send + Sync + 'static>>,
}

impl PostgresError {
    /// The step that failed: "the database URL", "the TLS CA", "connect", "migrate",
    /// "LISTEN", "load", "start the listener thread" or "the listener thread ended before it
    /// started".
    pub fn operation(&self) -> &'static str {
        self.operation
    }

    /// Whether the TLS handshake failed because the server's certificate was not trusted: not
    /// signed by a trusted CA (the wrong CA file?), not for the URL's host, or expired.
    pub fn certificate_rejected(&self) -> bool {
        self.source
            .as_deref()
            .is_some_and(|e| certificate_error(e).is_some())
    }
}

impl fmt::Display for PostgresError {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        write!(f, "postgres: {} failed", self.operation)?;
        if let Some(reason) = self.source.as_deref().and_then(certificate_error) {
            write!(f, ": TLS: server certificate not trusted ({reason:?})")?;
        }
        Ok(())
    }
}

/// rustls' reason if `e` (or a cause of it) is a TLS handshake that failed on the server's
/// certificate: the TLS stream's `io::Error` carries the `rustls::Error`.
fn certificate_error<'a>(
    e: &'a (dyn std::error::Error + Send + Sync + 'static),
) -> Option<&'a rustls::CertificateError> {
    let mut next: Option<&'a (dyn std::error::Error + 'static)> = Some(e);
    while let Some(error) = next {
        let found = error.downcast_ref::<rustls::Error>().or_else(|| {
            error
                .downcast_ref::<std::io::Error>()
                .and_then(|io| io.get_ref())
                .and_then(|inner| inner.downcast_ref::<rustls::Error>())
        });
        if let Some(rustls::Error::InvalidCertificate(reason)) = found {
            return Some(reason);
        }
        next = error.source();
    }
    None
}

/// The CAs a TLS connection to PostgreSQL trusts, and the rustls settings built on them
/// (ring, TLS 1.2 and 1.3). The chain and the host name are always verified.
#[derive(Clone)]
pub struct PostgresTls {
    connector: tokio_postgres_rustls::MakeRustlsConnect,
}

impl fmt::Debug for PostgresTls {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        f.debug_struct("PostgresTls").finish_non_exhaustive()
    }
}

impl PostgresTls {
    /// Trusts the public roots (Mozilla's, from webpki-roots; no OS lookup).
    pub fn public_roots() -> Self {
        let roots = rustls::RootCertStore {
            roots: webpki_roots::TLS_SERVER_ROOTS.to_vec(),
        };
        Self::from_roots(roots)
    }

    /// Trusts the CA certificates in `pem` (PEM), and nothing else: a private CA's.
    pub fn with_ca_pem(pem: &[u8]) -> Result<Self, PostgresError> {
        use rustls::pki_types::pem::PemObject as _;
        let mut roots = rustls::RootCertStore::empty();
        for certificate in rustls::pki_types::CertificateDer::pem_slice_iter(pem) {
            let certificate = certificate.map_err(|e| failed("the TLS CA", e))?;
            roots
                .add(certificate)
                .map_err(|e| failed("the TLS CA", e))?;
        }
        if roots.is_empty() {
            return Err(failed(
                "the TLS CA",
                "the CA holds no certificate".to_owned(),
            ));
        }
        Ok(Self::from_roots(roots))
    }

    fn from_roots(roots: rustls::RootCertStore) -> Self {
        let provider = Arc::new(rustls::crypto::ring::default_provider());
        let config = match rustls::ClientConfig::builder_with_provider(provider)
            .with_safe_default_protocol_versions()
        {
            Ok(builder) => builder,
            // ring's provider supports the safe defaults; should that change, the builder
            // from the process default (ring unless the program chose one) takes over.
            Err(_) => rustls::ClientConfig::builder(),
        }
        .with_root_certificates(roots)
        .with_no_client_auth();
        Self {
            connector: tokio_postgres_rustls::MakeRustlsConnect::new(config),
        }
    }
}

/// How the connections are made: plain, or TLS with the server verified.
#[derive(Clone)]
enum Transport {
    Plain,
    Tls(tokio_postgres_rustls::MakeRustlsConnect),
}

impl Transport {
    fn connect(&self, config: &postgres::Config) -> Result<postgres::Client, postgres::Error> {
        match self {
            Self::Plain => config.connect(postgres::NoTls),
            Self::Tls(connector) => config.connect(connector.clone()),
        }
    }
}

/// libpq's `sslmode` values that rust-postgres does not parse (`verify-ca`, `verify-full`) as
/// `require`, and whether the URL asks for TLS at all (`require` or either of those): with TLS
/// the chain and the host name are always verified, so all three mean `verify-full` here.
fn libpq_sslmode(url: &str) -> (std::borrow::Cow<'_, str>, bool) {
    let mut tls = false;
    let mut url = std::borrow::Cow::Borrowed(url);
    for (libpq, ours) in [
        ("sslmode=verify-full", "sslmode=require"),
        ("sslmode=verify-ca", "sslmode=require"),
    ] {
        if url.contains(libpq) {
            url = std::borrow::Cow::Owned(url.replace(libpq, ours));
        }
    }
    if url.contains("sslmode=require") {
        tls = true;
    }
    (url, tls)
}

impl std::error::Error for PostgresError {
    fn source(&self) -> Option<&(dyn std::error::Error + 'static)> {
        self.source.as_deref().map(|e| e as _)
    }
}

/// Keeps `e` as the source of the failure of `operation`. The driver's error names no password
/// (the URL is never in it).
fn failed(
    operation: &'static str,
    e: impl Into<Box<dyn std::error::Error + Send + Sync + 'static>>,
) -> PostgresError {
    PostgresError {
        operation,
        source: Some(e.into()),
    }
}

/// Contracts in PostgreSQL, decided from an in-memory snapshot (see the crate docs).
pub struct PostgresContracts {
    shared: Arc<Shared>,
}

struct Shared {
    snapshot: MemoryContracts,
    epoch: Instant,
    /// Milliseconds since `epoch` of the last moment the snapshot was known current.
    current_at: AtomicU64,
    config: PostgresConfig,
    stop: AtomicBool,
    rows: Mutex<usize>,
}

impl Shared {
    fn mark_current(&self) {
        let ms = u64::try_from(self.epoch.elapsed().as_millis()).unwrap_or(u64::MAX);
        self.current_at.store(ms, Ordering::Release);
    }

    fn stale(&self) -> bool {
        let at = Duration::from_millis(self.current_at.load(Ordering::Acquire));
        self.epoch.elapsed().saturating_sub(at) > self.config.max_staleness
    }
}

impl fmt::Debug for PostgresContracts {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        f.debug_struct("PostgresContracts")
            .field("config", &self.shared.config)
            .finish_non_exhaustive()
    }
}

impl PostgresContracts {
    /// Connects to `url` (`postgresql://user[:password]@host[:port]/db`, or `host=… user=…`),
    /// applies [`MIGRATION`], loads the contracts and starts the listener thread. Blocks until
    /// the contracts are loaded (from an async context, a start-up step or `spawn_blocking`).
    ///
    /// A URL with `sslmode=require`, `verify-ca` or `verify-full` connects over TLS, verified
    /// in full against the public roots ([`PostgresTls::public_roots`]); any other, in plain
    /// TCP (or over a Unix socket).
    pub fn connect(url: &str, config: PostgresConfig) -> Result<Self, PostgresError> {
        let (url, tls) = libpq_sslmode(url);
        let transport = if tls {
            Transport::Tls(PostgresTls::public_roots().connector)
        } else {
            Transport::Plain
        };
        Self::start_with(&url, config, transport)
    }

    /// Connects to `url` over TLS only, whatever its `sslmode` says: the server's certificate
    /// must chain to a CA of `tls` and be for the URL's host (`sslmode=verify-full`); never a
    /// plain connection. Then as [`connect`](Self::connect).
    pub fn connect_tls(
        url: &str,
        config: PostgresConfig,
        tls: PostgresTls,
    ) -> Result<Self, PostgresError> {
        let (url, _) = libpq_sslmode(url);
        Self::start_with(&url, config, Transport::Tls(tls.connector))
    }

    fn start_with(
        url: &str,
        config: PostgresConfig,
        transport: Transport,
    ) -> Result<Self, PostgresError> {
        let mut pg_config: postgres::Config = url
            .parse()
            .map_err(|e: postgres::Error| failed("the database URL", e))?;
        if let Transport::Tls(_) = transport {
            pg_config.ssl_mode(postgres::config::SslMode::Require);
        }
        // A dropped link must not hold the listener for the kernel's minutes-long default:
        // keepalives and a send timeout bound how long a dead connection goes unnoticed.
        pg_config
            .connect_timeout(config.connect_timeout)
            .keepalives(true)
            .keepalives_idle(Duration::from_secs(5))
            .keepalives_interval(Duration::from_secs(2))
            .keepalives_retries(3)
            .tcp_user_timeout(Duration::from_secs(10));
        let shared = Arc::new(Shared {
            snapshot: MemoryContracts::new(),
            epoch: Instant::now(),
            current_at: AtomicU64::new(0),
            config,
            stop: AtomicBool::new(false),
            rows: Mutex::new(0),
        });
        // The start and the listener run on a thread of their own: the synchronous client
        // drives a runtime of its own, which may not be started from inside an async caller's.
        let (started, result) = std::sync::mpsc::channel();
        let listener = Arc::clone(&shared);
        std::thread::Builder::new()
            .name("oauth-postgres".into())
            .spawn(move || match start(&pg_config, &transport, &listener) {
                Ok(client) => {
                    let _ = started.send(Ok(()));
                    listen(pg_config, &transport, client, &listener);
                }
                Err(e) => {
                    let _ = started.send(Err(e));
                }
            })
            .map_err(|e| failed("start the listener thread", e))?;
        result.recv().map_err(|_| PostgresError {
            operation: "the listener thread ended before it started",
            source: None,
        })??;
        Ok(Self { shared })
    }

    /// The contracts in the current snapshot.
    pub fn len(&self) -> usize {
        *self.shared.rows.lock().unwrap_or_else(|e| e.into_inner())
    }

    /// Whether the snapshot holds no contract.
    pub fn is_empty(&self) -> bool {
        self.len() == 0
    }
}

impl Drop for PostgresContracts {
    fn drop(&mut self) {
        // The listener sees it at its next heartbeat and closes its connection.
        self.shared.stop.store(true, Ordering::Release);
    }
}

impl ContractStore for PostgresContracts {
    fn lookup(&self, client_id: &str, api: &str) -> ContractStatus {
        if self.shared.stale() {
            return ContractStatus::Unavailable;
        }
        self.shared.snapshot.lookup(client_id, api)
    }
}

/// Connects, migrates, listens and loads.
fn start(
    config: &postgres::Config,
    transport: &Transport,
    shared: &Shared,
) -> Result<postgres::Client, PostgresError> {
    let mut client = transport
        .connect(config)
        .map_err(|e| failed("connect", e))?;
    migrate(&mut client)?;
    client
        .batch_execute(&format!("LISTEN {CHANNEL}"))
        .map_err(|e| failed("LISTEN", e))?;
    reload(&mut client, shared).map_err(|e| failed("load", e))?;
    Ok(client)
}

/// Creates the table and its trigger, one node at a time.
fn migrate(client: &mut postgres::Client) -> Result<(), PostgresError> {
    let mut tx = client.transaction().map_err(|e| failed("migrate", e))?;
    tx.batch_execute("SELECT pg_advisory_xact_lock(7273947025116)")
        .map_err(|e| failed("migrate", e))?;
    tx.batch_execute(MIGRATION)
        .map_err(|e| failed("migrate", e))?;
    tx.batch_execute(MIGRATION_TIERS)
        .map_err(|e| failed("migrate", e))?;
    tx.commit().map_err(|e| failed("migrate", e))
}

/// Reads every row into a new snapshot, skipping (and logging) the invalid ones.
fn reload(client: &mut postgres::Client, shared: &Shared) -> Result<(), postgres::Error> {
    let rows = client.query(
        "SELECT client_id, api, scopes, tier_name, tier_limits FROM oauth_gateway_contracts",
        &[],
    )?;
    let mut set = ContractSet::new();
    let mut skipped = 0usize;
    for row in &rows {
        let client_id: Option<String> = row.try_get(0).ok().flatten();
        let api: Option<String> = row.try_get(1).ok().flatten();
        let scopes: Option<String> = row.try_get(2).ok().flatten();
        let tier_name: Option<String> = row.try_get(3).ok().flatten();
        let tier_limits: Option<String> = row.try_get(4).ok().flatten();
        let tier = match tier(tier_name, tier_limits) {
            Ok(tier) => tier,
            Err(reason) => {
                skipped += 1;
                tracing::warn!(reason, "contract row skipped");
                continue;
            }
        };
        match validate(client_id, api, scopes).map(|c| match tier {
            Some(tier) => c.tier(tier),
            None => c,
        }) {
            Ok(contract) => set.insert(contract),
            Err(reason) => {
                skipped += 1;
                tracing::warn!(reason, "contract row skipped");
            }
        }
    }
    let loaded = set.len();
    shared.snapshot.replace_all(&set);
    *shared.rows.lock().unwrap_or_else(|e| e.into_inner()) = loaded;
    shared.mark_current();
    tracing::info!(contracts = loaded, skipped, "contracts loaded");
    Ok(())
}

/// A row's tier (`None`: unlimited), or why it is not one.
fn tier(name: Option<String>, limits: Option<String>) -> Result<Option<Tier>, &'static str> {
    let (name, limits) = match (name, limits) {
        (None, None) => return Ok(None),
        (Some(name), Some(limits)) => (name, limits),
        _ => return Err("tier_name and tier_limits go together"),
    };
    oauth_gateway::tier_from_spec(&name, &limits)
        .map(Some)
        .map_err(|_| "invalid tier")
}

/// A row as a contract, or why it is not one.
fn validate(
    client_id: Option<String>,
    api: Option<String>,
    scopes: Option<String>,
) -> Result<Contract, &'static str> {
    let name = |value: &str| {
        !value.is_empty() && value.len() <= 1024 && value.chars().all(|c| !c.is_control())
    };
    let client_id = client_id.filter(|c| name(c)).ok_or("invalid client_id")?;
    let api = api.filter(|a| name(a)).ok_or("invalid api")?;
    let mut contract = Contract::new(client_id, api);
    if let Some(scopes) = scopes {
        // RFC 6749 §3.3: scope-token = 1*( %x21 / %x23-5B / %x5D-7E )
        let token_ok = |t: &str| {
            t.bytes()
                .all(|b| b == 0x21 || (0x23..=0x5B).contains(&b) || (0x5D..=0x7E).contains(&b))
        };
        if !scopes.split(' ').filter(|t| !t.is_empty()).all(token_ok) {
            return Err("invalid scopes");
        }
        contract.scopes = Some(Scope::parse(&scopes));
    }
    Ok(contract)
}

/// The listener thread: reloads on every notification, checks the connection at each
/// heartbeat, reconnects (and reloads) after a failure.
fn listen(
    config: postgres::Config,
    transport: &Transport,
    client: postgres::Client,
    shared: &Shared,
) {
    let mut client = Some(client);
    while !shared.stop.load(Ordering::Acquire) {
        let Some(connected) = client.as_mut() else {
            std::thread::sleep(shared.config.heartbeat);
            client = reconnect(&config, transport, shared);
            continue;
        };
        match wait(connected, shared) {
            Ok(()) => {}
            Err(e) => {
                tracing::warn!(error = %e, "contracts database unreachable; deciding from the last snapshot");
                client = None;
            }
        }
    }
}

/// Waits one heartbeat for notifications; reloads if any came, else checks the connection.
fn wait(client: &mut postgres::Client, shared: &Shared) -> Result<(), postgres::Error> {
    let mut changed = false;
    {
        let mut notifications = client.notifications();
        let first = notifications.timeout_iter(shared.config.heartbeat).next()?;
        changed |= first.is_some_and(|n| n.channel() == CHANNEL);
        // What else arrived, without waiting again: one reload for a burst of changes.
        let mut more = notifications.iter();
        while let Some(n) = more.next()? {
            changed |= n.channel() == CHANNEL;
        }
    }
    if changed {
        reload(client, shared)
    } else {
        client.simple_query("SELECT 1")?;
        shared.mark_current();
        Ok(())
    }
}

fn reconnect(
    config: &postgres::Config,
    transport: &Transport,
    shared: &Shared,
) -> Option<postgres::Client> {
    let mut client = transport.connect(config).ok()?;
    client.batch_execute(&format!("LISTEN {CHANNEL}")).ok()?;
    match reload(&mut client, shared) {
        Ok(()) => {
            tracing::info!("contracts database reachable again");
            Some(client)
        }
        Err(_) => None,
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn a_bad_url_names_the_step_and_keeps_the_drivers_error() {
        use std::error::Error as _;
        let e = PostgresContracts::connect(
            "postgresql://u:hunter2@host:notaport/db",
            PostgresConfig::new(),
        )
        .unwrap_err();
        assert_eq!(e.operation(), "the database URL");
        assert_eq!(e.to_string(), "postgres: the database URL failed");
        let source = e.source().expect("a source");
        assert!(
            source.downcast_ref::<postgres::Error>().is_some(),
            "{source:?}"
        );
        // Neither the message nor the chain shows the password.
        assert!(!format!("{e} {e:?} {source}").contains("hunter2"));
    }

    #[test]
    fn an_unreachable_server_is_a_connect_failure_with_a_source() {
        use std::error::Error as _;
        // Port 1 on loopback: nothing listens there, so the connection is refused at once.
        let e = PostgresContracts::connect(
            "host=127.0.0.1 port=1 user=nobody dbname=none connect_timeout=2",
            PostgresConfig::new(),
        )
        .unwrap_err();
        assert_eq!(e.operation(), "connect");
        assert!(
            e.source()
                .and_then(|s| s.downcast_ref::<postgres::Error>())
                .is_some(),
            "{e:?}"
        );
    }

    #[test]
    fn rows_are_validated() {
        let s = |v: &str| Some(v.to_owned());
        assert!(validate(s("app"), s("orders"), None).is_ok());
        let c = validate(s("app"), s("orders"), s("a b")).unwrap();
        assert!(c.scopes.is_some_and(|sc| sc.contains("b")));
        assert_eq!(
            validate(None, s("orders"), None).unwrap_err(),
            "invalid client_id"
        );
        assert_eq!(
            validate(s(""), s("orders"), None).unwrap_err(),
            "invalid client_id"
        );
        assert_eq!(
            validate(s("a\nb"), s("orders"), None).unwrap_err(),
            "invalid client_id"
        );
        assert_eq!(validate(s("app"), None, None).unwrap_err(), "invalid api");
        assert_eq!(
            validate(s("app"), s("o"), s("a \"b\"")).unwrap_err(),
            "invalid scopes"
        );
        assert_eq!(
            validate(s("app"), s("o"), s("a\\b")).unwrap_err(),
            "invalid scopes"
        );
    }

    #[test]
    fn tier_columns_are_validated() {
        let s = |v: &str| Some(v.to_owned());
        assert_eq!(tier(None, None), Ok(None));
        let silver = tier(s("silver"), s("100/60, 5000/86400")).unwrap().unwrap();
        assert_eq!(silver.limits().len(), 2);
        assert_eq!(silver.limits()[1].window(), Duration::from_secs(86_400));
        for (name, limits) in [
            (s("silver"), None),
            (None, s("1/1")),
            (s("silver"), s("")),
            (s("silver"), s("0/60")),
            (s("silver"), s("10/0")),
            (s("silver"), s("ten/60")),
            (s("a b"), s("1/1")),
        ] {
            assert!(tier(name, limits).is_err());
        }
    }
}
