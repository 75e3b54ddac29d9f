//! Error answers (RFC 6749 §5.2) on 4xx/5xx, including non-JSON bodies: never a token, always
//! a typed error whose text is safe to log (bounded, no control characters).
#![no_main]

use libfuzzer_sys::fuzz_target;
use std::time::SystemTime;

#[path = "common.rs"]
mod common;

fuzz_target!(|data: &[u8]| {
    let Some(response) = common::response(data, 400..600) else {
        return;
    };
    let e = oauth_core::parse_token_response(&response, SystemTime::UNIX_EPOCH)
        .expect_err("a non-2xx answer is never a token");
    let text = e.to_string();
    assert!(!text.chars().any(|c| c.is_control()), "control character in {text:?}");
    assert!(text.len() < 4096, "error text of {} bytes", text.len());
    if let Some(r) = e.error_response() {
        let _ = (r.code().as_str(), r.description(), r.uri());
    }
    let _ = oauth_core::parse_revocation_response(&response);
});
