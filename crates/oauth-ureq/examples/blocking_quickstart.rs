//! The blocking twin of oauth-reqwest's quickstart: a client_credentials token obtained,
//! reused, and an API call that survives a "Token expired." 401.
//!
//! ```sh
//! cargo run -p oauth-ureq --example blocking_quickstart            # against a loopback test server
//! OAUTH_TOKEN_URL=https://... OAUTH_CLIENT_ID=... OAUTH_CLIENT_SECRET=... \
//!   [OAUTH_API_URL=https://...] cargo run -p oauth-ureq --example blocking_quickstart
//! ```
//!
//! Exits non-zero when the flow fails (a refused token request, an API answering other than
//! 2xx).
#![allow(clippy::print_stdout, clippy::print_stderr)]

use std::process::ExitCode;

use oauth_test_server::{Behaviour, RejectionStyle, TestServer};
use oauth_ureq::http::{Request, Response};
use oauth_ureq::{
    Client, ClientAuthentication, ClientSecret, Error, HttpClient, HttpConfig, TokenRequest,
    TokenSource,
};

fn main() -> ExitCode {
    let result = match std::env::var("OAUTH_TOKEN_URL") {
        Ok(url) => real_server(&url),
        Err(_) => loopback(),
    };
    match result {
        Ok(()) => ExitCode::SUCCESS,
        Err(e) => {
            eprintln!("error: {e}");
            ExitCode::FAILURE
        }
    }
}

fn failed(response: &Response<Vec<u8>>) -> Error {
    Error::UnexpectedResponse(oauth_core::UnexpectedResponse::new(
        response.status(),
        None,
        response.body(),
        oauth_core::UnexpectedReason::Status,
    ))
}

fn request(url: &str) -> Result<Request<Vec<u8>>, Error> {
    Request::get(url)
        .body(Vec::new())
        .map_err(|_| Error::MissingParameter { name: "url" })
}

fn loopback() -> Result<(), Error> {
    let server = TestServer::start(Behaviour {
        rejection_style: RejectionStyle::DataloyBody,
        ..Behaviour::default()
    })
    .map_err(|_| Error::MissingParameter {
        name: "test server",
    })?;
    let http =
        HttpClient::new(HttpConfig::new().add_root_certificates_pem(server.ca_pem().as_bytes())?)?;
    let b = Behaviour::default();
    let tokens = TokenSource::builder(
        http.clone(),
        http.endpoint(&server.url("/token"))?,
        Client::new(
            b.client_id,
            ClientAuthentication::SecretBasic(ClientSecret::new(b.client_secret)),
        ),
    )
    .grant(TokenRequest::client_credentials())
    .build();
    let first = tokens.token()?;
    let again = tokens.token()?;
    println!(
        "1. a token ({} chars), reused: {}; token requests: {}",
        first.expose_secret().len(),
        first.expose_secret() == again.expose_secret(),
        server.counters().token_requests
    );
    let response = tokens.send(request(&server.url("/api"))?)?;
    println!("2. GET /api -> {}", response.status());
    if !response.status().is_success() {
        return Err(failed(&response));
    }
    server.expire_access_tokens();
    let response = tokens.send(request(&server.url("/api"))?)?;
    println!(
        "3. after \"Token expired.\": new token, retried once -> {} (token requests: {})",
        response.status(),
        server.counters().token_requests
    );
    if !response.status().is_success() {
        return Err(failed(&response));
    }
    Ok(())
}

fn real_server(url: &str) -> Result<(), Error> {
    let var =
        |name: &'static str| std::env::var(name).map_err(|_| Error::MissingParameter { name });
    let mut config = HttpConfig::new();
    if let Ok(ca) = std::env::var("OAUTH_CA_FILE") {
        let pem = std::fs::read(&ca).map_err(|_| Error::MissingParameter {
            name: "OAUTH_CA_FILE",
        })?;
        config = config.add_root_certificates_pem(&pem)?;
    }
    let http = HttpClient::new(config)?;
    let client = Client::new(
        var("OAUTH_CLIENT_ID")?,
        ClientAuthentication::SecretBasic(ClientSecret::new(var("OAUTH_CLIENT_SECRET")?)),
    );
    let mut grant = TokenRequest::client_credentials();
    if let Ok(audience) = std::env::var("OAUTH_AUDIENCE") {
        grant = grant.audience(audience);
    }
    let tokens = TokenSource::builder(http.clone(), http.endpoint(url)?, client)
        .grant(grant)
        .build();
    let token = tokens.token()?;
    println!(
        "1. obtained a token ({} chars) from {url}",
        token.expose_secret().len()
    );
    if let Ok(api) = std::env::var("OAUTH_API_URL") {
        let response = tokens.send(request(&api)?)?;
        println!("2. GET {api} -> {}", response.status());
        if !response.status().is_success() {
            return Err(failed(&response));
        }
    }
    Ok(())
}
