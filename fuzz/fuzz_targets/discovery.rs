//! Authorization server metadata (RFC 8414, OpenID Connect discovery).
#![no_main]

use libfuzzer_sys::fuzz_target;
use oauth_core::SchemePolicy;

#[path = "common.rs"]
mod common;

fuzz_target!(|data: &[u8]| {
    let Some(response) = common::response(data, 100..600) else {
        return;
    };
    for issuer in ["https://as.example", "https://as.example/t1"] {
        if let Ok(m) = oauth_core::parse_server_metadata(&response, issuer, SchemePolicy::HttpsOnly) {
            assert_eq!(m.issuer(), issuer);
            for name in ["token_endpoint", "authorization_endpoint", "jwks_uri", "introspection_endpoint"] {
                if let Some(e) = m.endpoint(name) {
                    assert!(!e.is_plain_http());
                }
            }
            let _ = (m.supports_grant("client_credentials"), format!("{m:?}"));
        }
    }
});
