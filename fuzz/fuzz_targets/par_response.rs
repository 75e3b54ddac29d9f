//! The pushed authorization response (RFC 9126 §2.2): whatever the server says, the URL the
//! browser is sent to holds only `client_id` and `request_uri`, at the authorization endpoint.
#![no_main]

use libfuzzer_sys::fuzz_target;
use oauth_core::http::Response;
use oauth_core::{AuthorizationRequest, Endpoint, RandomError, RandomSource};

struct Fixed;

impl RandomSource for Fixed {
    fn fill(&self, dest: &mut [u8]) -> Result<(), RandomError> {
        dest.fill(7);
        Ok(())
    }
}

fuzz_target!(|data: &[u8]| {
    let Ok(endpoint) = Endpoint::new("https://as.example/authorize") else {
        return;
    };
    let Ok(pending) = AuthorizationRequest::new(endpoint, "app")
        .redirect_uri("https://app.example/cb")
        .scope(["openid"])
        .build(&Fixed)
    else {
        return;
    };
    for status in [200u16, 201, 400] {
        let response = Response::builder()
            .status(status)
            .header("content-type", "application/json")
            .body(data.to_vec())
            .unwrap_or_default();
        if let Ok(pushed) = pending.pushed(&response) {
            let url = pushed.url();
            assert!(url.starts_with("https://as.example/authorize?client_id=app&request_uri="));
            let query = url.split_once('?').map(|(_, q)| q).unwrap_or_default();
            assert_eq!(query.matches('&').count(), 1, "{url}");
            assert_eq!(pushed.state().expose_secret(), pending.state().expose_secret());
        }
    }
});
