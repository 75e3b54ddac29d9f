//! The token endpoint's answer (RFC 6749 §5.1): any status, content type and body.
#![no_main]

use libfuzzer_sys::fuzz_target;
use std::time::{Duration, SystemTime};

#[path = "common.rs"]
mod common;

fuzz_target!(|data: &[u8]| {
    let Some(response) = common::response(data, 100..600) else {
        return;
    };
    let now = SystemTime::UNIX_EPOCH + Duration::from_secs(1_700_000_000);
    match oauth_core::parse_token_response(&response, now) {
        Ok(token) => {
            // A token is only ever read from a 2xx answer, and expiry never precedes receipt.
            assert!(response.status().is_success());
            // A member named twice is never read one way or the other: refused.
            assert!(!common::has_duplicate_member(response.body()));
            if let Some(at) = token.expires_at() {
                assert!(at >= now);
            }
            let _ = format!("{token:?}");
        }
        Err(e) => {
            let _ = (format!("{e:?}"), e.to_string(), e.fault());
        }
    }
});
