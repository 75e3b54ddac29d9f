//! oauth-core alone on WebAssembly: the sans-IO core builds a token request and reads the
//! answer inside a wasm module, and the host (a browser's or Node's `fetch`) sends the bytes.
//! Time comes from the host too (`Date.now()`): the core never reads a clock, which is what
//! lets it run where `std::time::SystemTime::now` does not.
//!
//! ```text
//! JS: client_credentials_request(url, id, secret) ─► {method, url, headers, body} ─► fetch()
//! JS: parse_token_response(status, type, body, Date.now()) ◄─ response ◄────────────┘
//! ```
//!
//! `cargo xtask wasm` builds it for `wasm32-unknown-unknown` and runs its tests under Node
//! with wasm-bindgen-test.

use std::time::{Duration, SystemTime};

use oauth_core::http::Response;
use oauth_core::{Client, ClientAuthentication, ClientSecret, Endpoint, Scope, TokenRequest};
use serde_json::{Map, Value, json};
use wasm_bindgen::prelude::*;

/// Builds a `client_credentials` token request (RFC 6749 §4.4) with the secret in a Basic
/// header (RFC 6749 §2.3.1), and returns it as JSON for the host to send: `method`, `url`,
/// `headers` (an object) and `body` (the form-encoded text).
#[wasm_bindgen]
pub fn client_credentials_request(
    token_url: &str,
    client_id: &str,
    client_secret: &str,
    scope: Option<String>,
) -> Result<String, JsError> {
    build(token_url, client_id, client_secret, scope.as_deref()).map_err(|e| JsError::new(&e))
}

/// Reads the token endpoint's answer, received at `now_ms` (milliseconds since the Unix epoch,
/// the host's `Date.now()`), and returns JSON: `access_token`, `token_type`, `expires_at_ms`
/// (absent when the server sent no `expires_in`), `scope`, `has_refresh_token`. An OAuth error,
/// an unreadable body or a token in anything but a 2xx is an error with the core's message.
#[wasm_bindgen]
pub fn parse_token_response(
    status: u16,
    content_type: &str,
    body: &[u8],
    now_ms: f64,
) -> Result<String, JsError> {
    parse(status, content_type, body, now_ms).map_err(|e| JsError::new(&e))
}

fn build(
    token_url: &str,
    client_id: &str,
    client_secret: &str,
    scope: Option<&str>,
) -> Result<String, String> {
    let endpoint = Endpoint::new(token_url).map_err(|e| e.to_string())?;
    let client = Client::new(
        client_id,
        ClientAuthentication::SecretBasic(ClientSecret::new(client_secret)),
    );
    let mut request = TokenRequest::client_credentials();
    if let Some(scope) = scope {
        request = request.scope(scope.split_whitespace());
    }
    let built = request
        .build(&endpoint, &client)
        .map_err(|e| e.to_string())?;
    let mut headers = Map::new();
    for (name, value) in built.headers() {
        let value = value
            .to_str()
            .map_err(|_| "a header is not text".to_owned())?;
        headers.insert(name.as_str().to_owned(), Value::String(value.to_owned()));
    }
    let body = String::from_utf8_lossy(built.body().expose_secret()).into_owned();
    Ok(json!({
        "method": built.method().as_str(),
        "url": built.uri().to_string(),
        "headers": headers,
        "body": body,
    })
    .to_string())
}

fn parse(status: u16, content_type: &str, body: &[u8], now_ms: f64) -> Result<String, String> {
    let mut builder = Response::builder().status(status);
    if !content_type.is_empty() {
        builder = builder.header("content-type", content_type);
    }
    let response = builder.body(body.to_vec()).map_err(|e| e.to_string())?;
    let now = if now_ms.is_finite() && now_ms >= 0.0 {
        SystemTime::UNIX_EPOCH + Duration::from_millis(now_ms as u64)
    } else {
        return Err("now_ms is not a time".to_owned());
    };
    let token = oauth_core::parse_token_response(&response, now).map_err(|e| e.to_string())?;
    let expires_at_ms = token
        .expires_at()
        .and_then(|at| at.duration_since(SystemTime::UNIX_EPOCH).ok())
        .map(|d| d.as_millis() as u64);
    Ok(json!({
        "access_token": token.access_token().expose_secret(),
        "token_type": token.token_type().as_str(),
        "expires_at_ms": expires_at_ms,
        "scope": token.scope().map(Scope::as_str),
        "has_refresh_token": token.refresh_token().is_some(),
    })
    .to_string())
}
