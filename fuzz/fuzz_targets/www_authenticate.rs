//! `WWW-Authenticate` headers (RFC 9110 §11.6.1 challenges, RFC 6750 §3 Bearer parameters).
#![no_main]

use libfuzzer_sys::fuzz_target;
use oauth_core::http::{HeaderMap, HeaderValue};

fuzz_target!(|data: &[u8]| {
    let mut headers = HeaderMap::new();
    // Split on a NUL byte into several header lines.
    for part in data.split(|&b| b == 0) {
        if let Ok(v) = HeaderValue::from_bytes(part) {
            headers.append("www-authenticate", v);
        }
    }
    if let Some(c) = oauth_core::bearer_challenge(&headers) {
        let _ = (c.realm(), c.scope(), c.error(), c.error_description(), c.error_uri());
        let _ = format!("{c:?}");
    }
});
