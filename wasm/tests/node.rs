//! Run under Node by wasm-bindgen-test (`cargo xtask wasm`): the core builds the seed page's
//! client_credentials request and reads real answers, inside the wasm module.
#![cfg(target_arch = "wasm32")]

use oauth_core_wasm::{client_credentials_request, parse_token_response};
use serde_json::Value;
use wasm_bindgen_test::wasm_bindgen_test;

#[wasm_bindgen_test]
fn builds_the_request_the_host_sends() {
    let json = client_credentials_request(
        "https://oauth.org.com/as/token.oauth2",
        "app",
        "s3cret & more",
        Some("read write".into()),
    )
    .unwrap_or_else(|_| panic!("built"));
    let request: Value = serde_json::from_str(&json).unwrap_or_default();
    assert_eq!(request["method"], "POST");
    assert_eq!(request["url"], "https://oauth.org.com/as/token.oauth2");
    assert_eq!(
        request["headers"]["content-type"],
        "application/x-www-form-urlencoded"
    );
    // RFC 6749 §2.3.1: base64("app:s3cret+%26+more").
    assert_eq!(
        request["headers"]["authorization"],
        "Basic YXBwOnMzY3JldCslMjYrbW9yZQ=="
    );
    assert_eq!(
        request["body"],
        "grant_type=client_credentials&scope=read+write"
    );
    // http:// is refused outside loopback, on wasm as anywhere.
    assert!(client_credentials_request("http://as.example/token", "app", "s", None).is_err());
}

#[wasm_bindgen_test]
fn reads_the_answer_with_the_hosts_time() {
    let now_ms = 1_700_000_000_000.0;
    let body = br#"{"access_token":"at-1","token_type":"bearer","expires_in":3600,"scope":"read"}"#;
    let json = parse_token_response(200, "application/json", body, now_ms)
        .unwrap_or_else(|_| panic!("parsed"));
    let token: Value = serde_json::from_str(&json).unwrap_or_default();
    assert_eq!(token["access_token"], "at-1");
    assert_eq!(token["token_type"], "Bearer");
    assert_eq!(token["expires_at_ms"], 1_700_003_600_000u64);
    assert_eq!(token["scope"], "read");
    assert_eq!(token["has_refresh_token"], false);
    // An OAuth error, a member named twice, a token in a 500: errors.
    for (status, body) in [
        (401, &br#"{"error":"invalid_client"}"#[..]),
        (
            200,
            br#"{"access_token":"a","access_token":"b","token_type":"Bearer"}"#,
        ),
        (500, br#"{"access_token":"a","token_type":"Bearer"}"#),
    ] {
        assert!(parse_token_response(status, "application/json", body, now_ms).is_err());
    }
}
