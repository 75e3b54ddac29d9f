//! The 401 classifier: is this answer "token expired or invalid, get a new one"?
#![no_main]

use libfuzzer_sys::fuzz_target;
use oauth_core::TokenVerdict;
use oauth_core::http::HeaderValue;

#[path = "common.rs"]
mod common;

fuzz_target!(|data: &[u8]| {
    // The first 64 bytes (up to a NUL) are a WWW-Authenticate header.
    let split = data.iter().take(64).position(|&b| b == 0);
    let (challenge, rest) = match split {
        Some(i) => (Some(&data[..i]), &data[i + 1..]),
        None => (None, data),
    };
    let Some(mut response) = common::response(rest, 400..405) else {
        return;
    };
    if let Some(v) = challenge.and_then(|c| HeaderValue::from_bytes(c).ok()) {
        response.headers_mut().insert("www-authenticate", v);
    }
    let verdict = oauth_core::classify_resource_response(&response);
    if matches!(verdict, TokenVerdict::Rejected(_)) {
        assert_eq!(response.status(), 401);
    }
    let _ = format!("{verdict:?}");
});
