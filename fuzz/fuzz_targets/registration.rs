//! Client registration answers (RFC 7591 §3.2.1, RFC 7592): a client id is always there, the
//! management URI is always https, and the management requests build or fail cleanly.
#![no_main]

use libfuzzer_sys::fuzz_target;
use oauth_core::http::Response;
use oauth_core::{SchemePolicy, parse_registration_response};

fuzz_target!(|data: &[u8]| {
    for status in [200u16, 201, 400] {
        let response = Response::builder()
            .status(status)
            .header("content-type", "application/json")
            .body(data.to_vec())
            .unwrap_or_default();
        if let Ok(client) = parse_registration_response(&response, SchemePolicy::HttpsOnly) {
            assert!(!client.client_id().is_empty());
            if let Some(uri) = client.registration_client_uri() {
                assert!(uri.as_str().starts_with("https://"));
            }
            let _ = client.client();
            let _ = client.read_request();
            let _ = client.update_request(client.metadata());
            let _ = client.delete_request();
        }
    }
});
