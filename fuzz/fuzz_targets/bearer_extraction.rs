//! The bearer token in an incoming request (RFC 6750 §2): headers, query and form body.
#![no_main]

use libfuzzer_sys::fuzz_target;
use oauth_core::http::{HeaderMap, HeaderValue, Method, Uri};
use oauth_core::{BearerLocations, Denial};

fuzz_target!(|data: &[u8]| {
    // header NUL header NUL query NUL body
    let mut parts = data.splitn(4, |&b| b == 0);
    let mut headers = HeaderMap::new();
    for _ in 0..2 {
        if let Some(v) = parts.next().and_then(|h| HeaderValue::from_bytes(h).ok()) {
            headers.append("authorization", v);
        }
    }
    headers.insert("content-type", HeaderValue::from_static("application/x-www-form-urlencoded"));
    let query = parts.next().and_then(|q| std::str::from_utf8(q).ok()).unwrap_or("");
    let uri: Uri = format!("/api?{query}").parse().unwrap_or_default();
    let body = parts.next();
    let all = BearerLocations::header_only().allow_query().allow_form_body();
    match oauth_core::extract_bearer_token_from_parts(&Method::POST, &uri, &headers, body, all) {
        Ok(token) => {
            let t = token.expose_secret();
            assert!(!t.is_empty());
            assert!(t.bytes().all(|b| b.is_ascii_alphanumeric() || b"-._~+/=".contains(&b)));
            assert_eq!(format!("{token:?}"), "RequestToken(<redacted>)");
        }
        Err(d) => {
            assert!(matches!(d, Denial::MissingToken | Denial::InvalidRequest { .. }));
        }
    }
});
