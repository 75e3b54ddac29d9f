//! DPoP proofs as a gateway receives them (RFC 9449 §4.3): never a panic, and whatever is
//! accepted names a key and a jti, for this request, and verifies again the same way.
#![no_main]

use std::time::{Duration, SystemTime};

use libfuzzer_sys::fuzz_target;
use jwt_assertion::dpop::{ProofCheck, verify_proof};

#[path = "common.rs"]
mod common;

fuzz_target!(|data: &[u8]| {
    let text = String::from_utf8_lossy(data);
    let now = SystemTime::UNIX_EPOCH + Duration::from_secs(1_700_000_000);
    let check = ProofCheck::new("GET", "https://api.example/v1/things", now).access_token("tok");
    if let Ok(proof) = verify_proof(&text, &check) {
        assert!(!proof.jkt.is_empty() && !proof.jti.is_empty());
        // A header or claim set naming a member twice is refused.
        assert!(!common::jws_parts(&text).iter().any(|p| common::has_duplicate_member(p)));
        assert_eq!(verify_proof(&text, &check).ok(), Some(proof));
    }
    let _ = verify_proof(&text, &ProofCheck::new("POST", "https://api.example/", now));
});
