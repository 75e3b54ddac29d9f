//! Compact JWS verification and JWK set parsing (RFC 7515, RFC 7517): hostile tokens and key
//! sets. The input is split on the first NUL: a JWK set, then a token.
#![no_main]

use jwt_assertion::Algorithm;
use jwt_assertion::verify::{KeySet, VerifyingKey, verify};
use libfuzzer_sys::fuzz_target;

#[path = "common.rs"]
mod common;

const ALL: &[Algorithm] = &[
    Algorithm::RS256,
    Algorithm::PS256,
    Algorithm::ES256,
    Algorithm::ES384,
    Algorithm::EdDSA,
    Algorithm::HS256,
];

fuzz_target!(|data: &[u8]| {
    let (jwks, token) = match data.iter().position(|&b| b == 0) {
        Some(i) => (&data[..i], &data[i + 1..]),
        None => (data, &data[..0]),
    };
    let keys = KeySet::from_jwks(jwks)
        .unwrap_or_default()
        .with(VerifyingKey::hmac(b"fuzz-secret"));
    if let Ok(token) = std::str::from_utf8(token) {
        if let Ok(verified) = verify(token, &keys, ALL) {
            // A token that verifies names an allowed algorithm that some key in the set fits,
            // and verifies the same way again.
            assert!(ALL.contains(&verified.alg()));
            // A header or claim set naming a member twice is refused, as is such a key set.
            assert!(!common::jws_parts(token).iter().any(|p| common::has_duplicate_member(p)));
            assert!(!common::has_duplicate_member(jwks) || keys.keys().len() == 1);
            assert!(keys.keys().iter().any(|k| k.fits(verified.alg())));
            let again = verify(token, &keys, ALL).expect("verifies again");
            assert_eq!(again.claims(), verified.claims());
        }
    }
});
