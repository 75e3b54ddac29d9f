//! The authorization redirect back to the client (RFC 6749 §4.1.2): any query string.
#![no_main]

use libfuzzer_sys::fuzz_target;
use oauth_core::{AuthorizationRequest, Endpoint, RandomError, RandomSource};

struct Fixed;

impl RandomSource for Fixed {
    fn fill(&self, dest: &mut [u8]) -> Result<(), RandomError> {
        dest.fill(7);
        Ok(())
    }
}

fuzz_target!(|data: &[u8]| {
    let Ok(text) = std::str::from_utf8(data) else {
        return;
    };
    let Ok(endpoint) = Endpoint::new("https://as.example/authorize") else {
        return;
    };
    let Ok(pending) = AuthorizationRequest::new(endpoint, "client")
        .redirect_uri("https://app.example/cb")
        .scope(["openid"])
        .expect_issuer("https://as.example", false)
        .build(&Fixed)
    else {
        return;
    };
    // Both a full redirect URI and a bare query.
    for redirect in [format!("https://app.example/cb?{text}"), text.to_owned()] {
        if let Ok(code) = pending.handle_callback(&redirect) {
            // A code is only accepted with the right state.
            assert!(redirect.contains(pending.state().expose_secret()));
            let _ = format!("{code:?}");
        }
    }
});
