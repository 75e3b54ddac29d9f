//! The introspection endpoint's answer (RFC 7662 §2.2), and the gateway decision made from it.
#![no_main]

use libfuzzer_sys::fuzz_target;
use std::sync::Arc;
use std::time::{Duration, SystemTime};

use oauth_core::{ApiPolicy, ContractStatus};

#[path = "common.rs"]
mod common;

fuzz_target!(|data: &[u8]| {
    let Some(response) = common::response(data, 100..600) else {
        return;
    };
    let Ok(result) = oauth_core::parse_introspection_response(&response) else {
        return;
    };
    assert!(response.status().is_success());
    // A member named twice is never read one way or the other: refused.
    assert!(!common::has_duplicate_member(response.body()));
    if !result.active() {
        // Nothing is read off an inactive token.
        assert!(result.client_id().is_none() && result.scope().is_none());
    }
    let result = Arc::new(result);
    let now = SystemTime::UNIX_EPOCH + Duration::from_secs(1_700_000_000);
    let policy = ApiPolicy::new("api").require_scope(["read"]).audience("https://api");
    let decision = policy.decide(&result, now, |_, _| ContractStatus::Granted {
        scopes: None,
        tier: None,
    });
    match decision {
        Ok(p) => {
            // Allowed only when active, unexpired, for this audience and scope.
            assert!(result.active());
            assert!(result.expires_at().is_none_or(|exp| exp > now));
            assert!(result.audience().iter().any(|a| a == "https://api"));
            assert!(p.scope().is_some_and(|s| s.contains("read")));
        }
        Err(denial) => {
            let r = policy.deny_response(&denial);
            assert!(r.status().is_client_error() || r.status().is_server_error());
        }
    }
});
