//! `oauth-gateway`: the first provider page's gateway policy as a reverse proxy.
//!
//! ```text
//! oauth-gateway --config gateway.toml
//! ```
//!
//! Each request's bearer token is validated (introspection, cached on the node and, with
//! `[cache.redis]`, shared by the fleet), the calling client's contract for the route's API is
//! looked up (a redb file, or PostgreSQL shared by the fleet), and only then is the request
//! passed to the upstream service, with who is calling in these headers (any such header the
//! caller sent is removed first):
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
//! unavailable); an upstream that cannot be reached is a 502, one that does not answer in time a
//! 504. `GET /healthz` answers 200 (`ok`). Once listening it logs `oauth-gateway ready` with the
//! bound address (`listen = "127.0.0.1:0"` lets the system choose the port). SIGTERM or Ctrl-C
//! stops accepting connections and lets requests in flight finish (at most
//! `shutdown_grace_secs`). A client has `header_read_timeout_secs` (default 10) to send a
//! request's headers, and at most `max_pending_connections` (default 512) connections may be
//! sending their first request's headers at once; a connection beyond that is closed. Logs (stderr)
//! are one line per request (method, path without the query, status, API, client, time), at
//! the levels `RUST_LOG` names (default `info`; `debug` adds connections, `trace` the
//! dependencies' detail), as text or, with `log_format = "json"`, one JSON object a line; at no
//! level do they hold a token or secret.
#![forbid(unsafe_code)]
#![allow(clippy::print_stderr)]

mod config;
mod proxy;

use std::process::ExitCode;

fn main() -> ExitCode {
    let args: Vec<String> = std::env::args().skip(1).collect();
    let path = match args.as_slice() {
        [flag, path] if flag == "--config" => path.clone(),
        _ => {
            eprintln!("usage: oauth-gateway --config gateway.toml");
            return ExitCode::from(2);
        }
    };
    let config = match config::Config::load(std::path::Path::new(&path)) {
        Ok(config) => config,
        Err(e) => {
            eprintln!("oauth-gateway: {e}");
            return ExitCode::from(2);
        }
    };
    logging(config.log_format);
    let runtime = match tokio::runtime::Builder::new_multi_thread()
        .enable_all()
        .build()
    {
        Ok(runtime) => runtime,
        Err(e) => {
            eprintln!("oauth-gateway: {e}");
            return ExitCode::FAILURE;
        }
    };
    match runtime.block_on(proxy::run(config)) {
        Ok(()) => ExitCode::SUCCESS,
        Err(e) => {
            eprintln!("oauth-gateway: {e}");
            ExitCode::from(2)
        }
    }
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
        .with_writer(std::io::stderr);
    match format {
        config::LogFormat::Text => subscriber.init(),
        config::LogFormat::Json => subscriber.json().init(),
    }
}
