//! `oauth-gateway`: the API gateway policy (token validated, client's contract checked) as a reverse proxy.
//!
//! ```text
//! oauth-gateway --config gateway.toml                 # serve
//! oauth-gateway contracts --config gateway.toml add app-1 orders --scope orders:read
//! oauth-gateway contracts --config gateway.toml list
//! oauth-gateway contracts --config gateway.toml remove app-1 orders
//! oauth-gateway contracts --config gateway.toml import contracts.json
//! oauth-gateway --help | --version
//! ```
//!
//! The binary is named `oauth-gateway`, like the library crate whose `Gateway` it deploys,
//! while its package is `oauth-proxy` (`cargo install oauth-proxy` installs it; `cargo install
//! oauth-gateway` finds no binary). The name was kept on purpose: it is what operators run and
//! what the deployment docs, logs (`oauth-gateway ready`) and scripts already say, and the
//! library is only ever named in a `Cargo.toml`, where nobody looks for a program. The README's
//! crate table and ARCHITECTURE.md say which is which.
//!
//! Contracts in the redb file (the default store: `contracts.redb` beside the configuration
//! file; a relative `path` is read from the configuration file's directory) are managed with
//! `oauth-gateway contracts`. redb lets one process open a file at a time and a running gateway
//! holds it, so a running gateway listens on an admin socket beside the file
//! (`contracts.redb.admin.sock`, a Unix domain socket, mode 0600, answering only the file
//! owner's user and root): the commands send their change there, and the gateway writes it to
//! the file and applies it from the next request on; with no gateway running they open the
//! file themselves. `import FILE` replaces every contract with the file's
//! (`{"contracts": [{"client_id": "…", "api": "…", "scopes": ["…"]}]}`, `scopes` optional for
//! any scope) in one transaction. Contracts in PostgreSQL are managed in its table.
//!
//! Each request's token is validated per its route's `mode`: `introspection` (cached on the
//! node and, with `[cache.redis]`, shared by the fleet), `jwt` (locally, with the keys of the
//! route's `[[route.issuer]]` or the top-level `[[issuer]]` blocks), or `auto` (the default: a
//! JWT from one of the issuers locally, any other token by introspection); DPoP (RFC 9449) is
//! `off`, `allowed` (the default) or `required` per route, and the route's `scopes` are needed
//! `all` (the default) or `any`. The calling client's contract for the route's API is looked up
//! (a redb file, or PostgreSQL shared by the fleet — over TLS verified against `[contracts]
//! ca_file` or the public roots when asked; Redis likewise with `rediss://`) unless the route sets
//! `require_contract = false`, and only then is the request passed to the route's upstream
//! (`upstream` in the route, else the top-level one; `http://` or `https://`, trusted through
//! the public roots or `upstream_ca_file` alone; each route its own connection pool; the
//! prefix removed with `strip_prefix = true`), with who is calling in these headers (any such
//! header the caller sent is removed first) and its `x-request-id`:
//!
//! | header | value |
//! | --- | --- |
//! | `x-oauth-client-id` | the client holding the contract |
//! | `x-oauth-api` | the route's API |
//! | `x-oauth-scope` | the token's scopes, space-separated (absent if none) |
//! | `x-oauth-subject` | the resource owner, for tokens issued on a user's behalf |
//! | `x-oauth-expires-at` | the token's expiry, seconds since the epoch |
//!
//! A path is forwarded as sent; one an upstream could read as another API's path (a `.` or `..`
//! segment, raw, percent-encoded or behind `;params`; an encoded `/` or `\`; an empty segment;
//! `%25` unless the route sets `allow_encoded_percent = true`) is refused with a 400.
//!
//! Denials are RFC 6750 answers (401, 403, 503 when a validation or the contract store is
//! unavailable); an upstream that cannot be reached (or whose certificate is not trusted) is a
//! 502, one that does not answer in time a 504; a body over the route's `max_body_bytes` a
//! 413, headers over `max_header_bytes` a 431. `GET /healthz` answers 200 (`ok`); with
//! `admin_listen`, `/metrics` (Prometheus text), `/healthz` and `/readyz` (503 while draining)
//! are served there. With `[tls]` (`cert_file`, `key_file`) it listens on HTTPS (rustls); a
//! certificate renewed in those files is used for new connections within two seconds.
//! Once listening it logs `oauth-gateway ready` with the bound address
//! (`listen = "127.0.0.1:0"` lets the system choose the port). SIGHUP reloads the whole
//! configuration at once, or refuses a bad file with one log line and keeps the old one.
//! SIGTERM or Ctrl-C stops accepting connections and lets requests in flight finish (at most
//! `shutdown_grace_secs`). A client has `header_read_timeout_secs` (default 10) to send a
//! request's headers, a keep-alive connection waits `idle_timeout_secs` (default 5) for its
//! next one, at most `max_connections` (default 10,000) are open and at most
//! `max_pending_connections` (default 512) may be sending their first request's headers at
//! once; a connection beyond either is closed. `workers` threads (default: one per CPU the
//! process may use) serve connections: on Linux each with its own single-threaded runtime and
//! its own listener on `listen` (`SO_REUSEPORT`) and upstream pools, as nginx's workers. Logs (stderr) are one line per request
//! (method, path without the query, status, API, client, reason, request id, time; off with
//! `access_log = false`), at the levels `RUST_LOG` names (default `info`; `debug` adds
//! connections, `trace` the dependencies' detail), as text or, with `log_format = "json"`, one
//! JSON object a line; at no level do they hold a token or secret.
//!
//! crates/oauth-proxy/README.md has the configuration reference (every key and its default)
//! and a quickstart against the embedded test authorization server.
#![forbid(unsafe_code)]
#![allow(clippy::print_stderr, clippy::print_stdout)]

mod access_log;
mod admin;
mod config;
mod metrics;
mod proxy;
mod server;
mod upstream;

use std::path::{Path, PathBuf};
use std::process::ExitCode;

use clap::{Parser, Subcommand};

/// The OAuth 2.0 gateway as a reverse proxy: every request's bearer token validated
/// (introspection or a JWT), the caller's contract for the API checked, then forwarded.
#[derive(Parser)]
#[command(
    name = "oauth-gateway",
    version,
    after_help = "Without a command it serves with the configuration file given: \
                  `oauth-gateway --config gateway.toml`. Logs go to stderr at the levels \
                  RUST_LOG names (default info). SIGTERM or Ctrl-C stops it gracefully."
)]
struct Cli {
    /// The configuration file (TOML).
    #[arg(long, value_name = "PATH")]
    config: Option<PathBuf>,
    #[command(subcommand)]
    command: Option<Command>,
}

#[derive(Subcommand)]
enum Command {
    /// Manage the contracts in the redb file the configuration names (default:
    /// contracts.redb beside the configuration file). A running gateway applies each change
    /// at once, through its admin socket beside that file.
    Contracts {
        /// The gateway's configuration file (TOML).
        #[arg(long, value_name = "PATH", global = true)]
        config: Option<PathBuf>,
        #[command(subcommand)]
        action: ContractsAction,
    },
}

#[derive(Subcommand)]
enum ContractsAction {
    /// Add a client's contract for an API (replacing one it has).
    Add {
        /// The client that may call the API.
        client_id: String,
        /// The API (a route's `api`).
        api: String,
        /// A scope the client may use on the API (repeat, or space-separated); none: any.
        #[arg(long = "scope", short = 's')]
        scopes: Vec<String>,
        /// The contract's SLA tier: NAME=REQUESTS/SECONDS[,REQUESTS/SECONDS…]
        /// (`silver=100/60,5000/86400`: 100 a minute and 5,000 a day); none: unlimited.
        #[arg(long)]
        tier: Option<String>,
    },
    /// Remove a client's contract for an API.
    Remove {
        /// The client.
        client_id: String,
        /// The API.
        api: String,
    },
    /// Show the contracts, one a line (`--json`: the import format).
    List {
        /// Print the JSON that `import` reads.
        #[arg(long)]
        json: bool,
    },
    /// Replace every contract with a JSON file's, in one transaction:
    /// {"contracts": [{"client_id": "…", "api": "…", "scopes": ["…"]}]} (scopes optional: any).
    Import {
        /// The JSON file (`-`: stdin).
        file: PathBuf,
    },
}

fn main() -> ExitCode {
    let cli = Cli::parse();
    match cli.command {
        Some(Command::Contracts { config, action }) => {
            match contracts(config.as_deref().or(cli.config.as_deref()), action) {
                Ok(()) => ExitCode::SUCCESS,
                Err(e) => {
                    eprintln!("oauth-gateway: {e}");
                    ExitCode::from(2)
                }
            }
        }
        None => match cli.config {
            Some(path) => serve(&path),
            None => {
                eprintln!(
                    "oauth-gateway: --config PATH is required (oauth-gateway --help shows the usage)"
                );
                ExitCode::from(2)
            }
        },
    }
}

fn serve(path: &Path) -> ExitCode {
    let config = match config::Config::load(path) {
        Ok(config) => config,
        Err(e) => {
            eprintln!("oauth-gateway: {e}");
            return ExitCode::from(2);
        }
    };
    logging(config.log_format);
    // On Linux each worker is a thread with its own runtime (see `proxy::run`), and this
    // runtime only runs what is not a request: signals, reloads, the admin listener and
    // sockets. Elsewhere this runtime's threads are the workers.
    let threads = if cfg!(target_os = "linux") {
        1
    } else {
        config.workers
    };
    let runtime = match tokio::runtime::Builder::new_multi_thread()
        .worker_threads(threads)
        .enable_all()
        .build()
    {
        Ok(runtime) => runtime,
        Err(e) => {
            eprintln!("oauth-gateway: {e}");
            return ExitCode::FAILURE;
        }
    };
    match runtime.block_on(proxy::run(config, path.to_path_buf())) {
        Ok(()) => ExitCode::SUCCESS,
        Err(e) => {
            eprintln!("oauth-gateway: {e}");
            ExitCode::from(2)
        }
    }
}

/// `oauth-gateway contracts ...`.
fn contracts(config: Option<&Path>, action: ContractsAction) -> Result<(), String> {
    let path = config.ok_or("contracts: --config PATH is required")?;
    let config = config::Config::load(path)?;
    let db = config.redb_path().ok_or(
        "contracts: the configuration keeps contracts in PostgreSQL; manage them in its \
         oauth_gateway_contracts table",
    )?;
    let json = matches!(action, ContractsAction::List { json: true });
    let change = match action {
        ContractsAction::Add {
            client_id,
            api,
            scopes,
            tier,
        } => {
            if client_id.is_empty() || api.is_empty() {
                return Err("contracts add: the client id and the API must not be empty".into());
            }
            let mut contract = admin::contract(client_id, api, &scopes);
            if let Some(tier) = tier {
                let (name, limits) = tier
                    .split_once('=')
                    .ok_or("contracts add: --tier NAME=REQUESTS/SECONDS[,...]")?;
                let tier = oauth_gateway::tier_from_spec(name, limits)
                    .map_err(|e| format!("contracts add: --tier: {e}"))?;
                contract = contract.tier(tier);
            }
            admin::Change::Add([contract].into_iter().collect())
        }
        ContractsAction::Remove { client_id, api } => admin::Change::Remove { client_id, api },
        ContractsAction::List { .. } => admin::Change::List,
        ContractsAction::Import { file } => {
            let bytes = if file == Path::new("-") {
                let mut bytes = Vec::new();
                std::io::Read::read_to_end(&mut std::io::stdin(), &mut bytes)
                    .map_err(|e| format!("stdin: {e}"))?;
                bytes
            } else {
                std::fs::read(&file).map_err(|e| format!("{}: {e}", file.display()))?
            };
            let set = oauth_gateway::ContractSet::from_json(&bytes)
                .map_err(|e| format!("{}: {e}", file.display()))?;
            admin::Change::Import(set)
        }
    };
    let (outcome, route) = admin::run(db, &change)?;
    let via = match route {
        admin::Route::RunningGateway => "applied by the running gateway",
        admin::Route::File => "written to the file (no gateway running)",
    };
    match outcome {
        admin::Outcome::Added(n) => println!("added {n} contract(s) in {}: {via}", db.display()),
        admin::Outcome::Removed(true) => {
            println!("removed 1 contract from {}: {via}", db.display())
        }
        admin::Outcome::Removed(false) => {
            return Err(format!("no such contract in {}", db.display()));
        }
        admin::Outcome::Imported(n) => {
            println!(
                "replaced every contract in {} with {n}: {via}",
                db.display()
            );
        }
        admin::Outcome::Listed(set) if json => {
            println!("{}", String::from_utf8_lossy(&set.to_json()));
        }
        admin::Outcome::Listed(set) => {
            for c in set.iter() {
                let scopes = c
                    .scopes
                    .as_ref()
                    .map_or_else(|| "(any scope)".to_owned(), |s| s.as_str().to_owned());
                let tier = c.tier.as_ref().map_or_else(
                    || "(unlimited)".to_owned(),
                    |t| {
                        let limits: Vec<String> = t
                            .limits()
                            .iter()
                            .map(|l| format!("{}/{}", l.requests(), l.window().as_secs()))
                            .collect();
                        format!("{}={}", t.name(), limits.join(","))
                    },
                );
                println!("{}\t{}\t{scopes}\t{tier}", c.client_id, c.api);
            }
        }
    }
    Ok(())
}

/// Logs to stderr at the levels `RUST_LOG` names (`info` if unset; an invalid value is
/// reported and `info` used), in the configured format. `log` records of the dependencies
/// that use that crate are included.
fn logging(format: config::LogFormat) {
    use tracing_subscriber::EnvFilter;
    use tracing_subscriber::filter::LevelFilter;
    let builder = EnvFilter::builder().with_default_directive(LevelFilter::INFO.into());
    let filter = match std::env::var("RUST_LOG") {
        Ok(value) => builder.parse(&value).unwrap_or_else(|e| {
            eprintln!("oauth-gateway: RUST_LOG {value:?} ignored ({e}); logging at info");
            EnvFilter::new("info")
        }),
        Err(_) => builder.parse_lossy(""),
    };
    let subscriber = tracing_subscriber::fmt()
        .with_env_filter(filter)
        .with_target(false)
        .with_writer(access_log::Writer);
    access_log::use_json(format == config::LogFormat::Json);
    match format {
        config::LogFormat::Text => subscriber.init(),
        config::LogFormat::Json => subscriber.json().init(),
    }
}
