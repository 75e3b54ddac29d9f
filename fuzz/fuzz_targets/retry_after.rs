//! `Retry-After` (RFC 9110 §10.2.3): delay-seconds or an HTTP-date, read against a clock.
#![no_main]

use std::time::{Duration, SystemTime};

use libfuzzer_sys::fuzz_target;
use oauth_core::http::{HeaderMap, HeaderValue};

fuzz_target!(|data: &[u8]| {
    let mut headers = HeaderMap::new();
    if let Ok(v) = HeaderValue::from_bytes(data) {
        headers.insert("retry-after", v);
    }
    for now in [
        SystemTime::UNIX_EPOCH,
        SystemTime::UNIX_EPOCH + Duration::from_secs(1_700_000_000),
    ] {
        if let Some(d) = oauth_core::retry_after(&headers, now) {
            // Delay-seconds has at most 9 digits; a date is at most year 9999.
            assert!(d <= Duration::from_secs(253_402_300_800), "{d:?}");
        }
    }
});
