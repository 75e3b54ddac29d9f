//! The quickstart: a client_credentials token obtained, reused, refreshed ahead of expiry, and
//! a protected API call that gets 401 "Token expired.", refreshes and succeeds.
//!
//! With no configuration it starts the loopback test authorization server (HTTPS, with a
//! certificate authority generated for the run) and talks to it. With these environment
//! variables it talks to a real server instead:
//!
//! | variable | meaning |
//! |---|---|
//! | `OAUTH_TOKEN_URL` | the token endpoint (required to use a real server) |
//! | `OAUTH_CLIENT_ID`, `OAUTH_CLIENT_SECRET` | the client's credentials |
//! | `OAUTH_CLIENT_AUTH` | `basic` (default), `post`, or `json` (secret in a JSON body) |
//! | `OAUTH_AUDIENCE`, `OAUTH_SCOPE` | optional `audience` and space-separated `scope` |
//! | `OAUTH_API_URL` | optional protected resource to call with the token |
//! | `OAUTH_CA_FILE` | optional PEM file of an extra CA to trust (a private server) |
//!
//! ```text
//! cargo run -p oauth-reqwest --example quickstart
//! ```
#![allow(clippy::print_stdout, clippy::print_stderr)]

use std::process::ExitCode;
use std::time::{Duration, Instant};

use oauth_reqwest::http::Request;
use oauth_reqwest::{
    AccessToken, BodyEncoding, Client, ClientAuthentication, ClientSecret, Error, HttpClient,
    HttpConfig, RefreshPolicy, TokenRequest, TokenSource,
};
use oauth_test_server::{Behaviour, RejectionStyle, TestServer};

#[tokio::main(flavor = "multi_thread", worker_threads = 2)]
async fn main() -> ExitCode {
    let result = match std::env::var("OAUTH_TOKEN_URL") {
        Ok(url) => real_server(&url).await,
        Err(_) => loopback().await,
    };
    match result {
        Ok(()) => ExitCode::SUCCESS,
        Err(e) => {
            eprintln!("error: {e}");
            ExitCode::FAILURE
        }
    }
}

/// The API's answer as an error: the example fails (non-zero exit) when its flow does.
fn failed(response: &oauth_reqwest::http::Response<Vec<u8>>) -> Error {
    Error::UnexpectedResponse(oauth_core::UnexpectedResponse::new(
        response.status(),
        None,
        response.body(),
        oauth_core::UnexpectedReason::Status,
    ))
}

/// What a token looks like in a log: its length and a fingerprint, never its value.
fn show(token: &AccessToken) -> String {
    let digest = ring::digest::digest(&ring::digest::SHA256, token.expose_secret().as_bytes());
    let fp: String = digest.as_ref()[..4]
        .iter()
        .map(|b| format!("{b:02x}"))
        .collect();
    format!("token#{fp} ({} chars)", token.expose_secret().len())
}

async fn loopback() -> Result<(), Error> {
    let behaviour = Behaviour {
        expires_in: Some(8),
        token_len: 900,
        rejection_style: RejectionStyle::DataloyBody,
        ..Behaviour::default()
    };
    let server = TestServer::start(behaviour.clone()).map_err(|e| {
        oauth_reqwest::TransportError::new(oauth_reqwest::TransportErrorKind::Io, &e.to_string())
    })?;
    println!(
        "1. started the loopback authorization server at {} (HTTPS, CA generated for this run)",
        server.url("")
    );
    let http =
        HttpClient::new(HttpConfig::new().add_root_certificates_pem(server.ca_pem().as_bytes())?)?;
    let endpoint = http.endpoint(&server.url("/token"))?;
    let client = Client::new(
        behaviour.client_id.as_str(),
        ClientAuthentication::SecretBasic(ClientSecret::new(behaviour.client_secret.as_str())),
    );
    // Tokens live 8 s here: refresh from 4 s before expiry, never serve the last second.
    let policy = RefreshPolicy::default()
        .refresh_ahead(Duration::from_secs(4))
        .margin(Duration::from_secs(1))
        .jitter(Duration::ZERO);
    let tokens = TokenSource::builder(http, endpoint, client)
        .grant(TokenRequest::client_credentials().scope(["read"]))
        .policy(policy)
        .on_token(|t| {
            println!(
                "   (persist hook) new token received, expires in {:?}",
                t.expires_in().unwrap_or_default()
            )
        })
        .build();

    let first = tokens.token().await?;
    println!(
        "2. obtained {} with client_credentials; token requests so far: {}",
        show(&first),
        server.counters().token_requests
    );

    for _ in 0..3 {
        let again = tokens.token().await?;
        assert_same(&first, &again);
    }
    println!(
        "3. asked 3 more times: reused the cached token; token requests so far: {}",
        server.counters().token_requests
    );

    println!("4. waiting 4.5 s, until a refresh is due ahead of expiry ...");
    tokio::time::sleep(Duration::from_millis(4500)).await;
    let started = Instant::now();
    let during = tokens.token().await?;
    println!(
        "   token() answered in {:?} with the still-valid {} while the refresh runs in the background",
        started.elapsed(),
        show(&during)
    );
    tokio::time::sleep(Duration::from_millis(300)).await;
    let refreshed = tokens.token().await?;
    println!(
        "   now serving {}; token requests so far: {}",
        show(&refreshed),
        server.counters().token_requests
    );

    let api = || Request::get(server.url("/api")).body(Vec::new());
    let response = tokens
        .send(api().map_err(|_| Error::MissingParameter { name: "uri" })?)
        .await?;
    println!(
        "5. GET /api with Authorization: Bearer -> {}",
        response.status()
    );
    if !response.status().is_success() {
        return Err(failed(&response));
    }

    server.expire_access_tokens();
    println!("6. the server now considers the token expired (as on the Dataloy page)");
    let before = server.counters();
    let response = tokens
        .send(api().map_err(|_| Error::MissingParameter { name: "uri" })?)
        .await?;
    let after = server.counters();
    println!(
        "   GET /api -> 401 \"Token expired.\", new token, retried once -> {} ({} API calls, {} token request)",
        response.status(),
        after.resource_requests - before.resource_requests,
        after.token_requests - before.token_requests
    );
    if !response.status().is_success() {
        return Err(failed(&response));
    }
    println!(
        "done: {} token requests and {} API calls in all",
        after.token_requests, after.resource_requests
    );
    Ok(())
}

fn assert_same(a: &AccessToken, b: &AccessToken) {
    if a.expose_secret() != b.expose_secret() {
        println!("   (unexpected: the token changed)");
    }
}

async fn real_server(url: &str) -> Result<(), Error> {
    let var = |name: &str| std::env::var(name).ok().filter(|v| !v.is_empty());
    let id = var("OAUTH_CLIENT_ID").ok_or(Error::MissingParameter {
        name: "OAUTH_CLIENT_ID",
    })?;
    let secret = ClientSecret::new(var("OAUTH_CLIENT_SECRET").ok_or(Error::MissingParameter {
        name: "OAUTH_CLIENT_SECRET",
    })?);
    let client = match var("OAUTH_CLIENT_AUTH").as_deref() {
        Some("post") => Client::new(id, ClientAuthentication::SecretPost(secret)),
        Some("json") => Client::new(id, ClientAuthentication::SecretPost(secret))
            .with_body_encoding(BodyEncoding::Json),
        _ => Client::new(id, ClientAuthentication::SecretBasic(secret)),
    };
    let mut grant = TokenRequest::client_credentials();
    if let Some(aud) = var("OAUTH_AUDIENCE") {
        grant = grant.audience(aud);
    }
    if let Some(scope) = var("OAUTH_SCOPE") {
        grant = grant.scope(
            scope
                .split(' ')
                .filter(|s| !s.is_empty())
                .map(str::to_owned),
        );
    }
    let mut config = HttpConfig::new();
    if let Some(path) = var("OAUTH_CA_FILE") {
        let pem = std::fs::read(&path).map_err(|_| Error::InvalidParameter {
            name: "OAUTH_CA_FILE",
            reason: "must name a readable PEM file",
        })?;
        config = config.add_root_certificates_pem(&pem)?;
    }
    let http = HttpClient::new(config)?;
    let endpoint = http.endpoint(url)?;
    let tokens = TokenSource::builder(http, endpoint, client)
        .grant(grant)
        .build();
    let first = tokens.token().await?;
    println!("1. obtained {} from {url}", show(&first));
    let again = tokens.token().await?;
    println!(
        "2. asked again: {}",
        if again.expose_secret() == first.expose_secret() {
            "reused the cached token"
        } else {
            "got a different token"
        }
    );
    if let Some(api) = var("OAUTH_API_URL") {
        let request =
            Request::get(api.as_str())
                .body(Vec::new())
                .map_err(|_| Error::MissingParameter {
                    name: "OAUTH_API_URL",
                })?;
        let response = tokens.send(request).await?;
        println!("3. GET {api} -> {}", response.status());
        if !response.status().is_success() {
            return Err(failed(&response));
        }
    }
    Ok(())
}
