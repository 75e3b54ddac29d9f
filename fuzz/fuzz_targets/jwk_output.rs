//! JWK output (RFC 7517/8037) and RFC 7638 thumbprints, for Ed25519 keys made from arbitrary
//! seeds and for arbitrary DER that happens to load: the JWK is JSON with the right members,
//! and the thumbprint is the kid.
#![no_main]

use base64::Engine as _;
use base64::engine::general_purpose::URL_SAFE_NO_PAD;
use jwt_assertion::{Algorithm, SigningKey};
use libfuzzer_sys::fuzz_target;

/// PKCS#8 v1 prefix of an Ed25519 private key (RFC 8410 §7), followed by the 32-byte seed.
const ED25519_PKCS8_PREFIX: [u8; 16] = [
    0x30, 0x2e, 0x02, 0x01, 0x00, 0x30, 0x05, 0x06, 0x03, 0x2b, 0x65, 0x70, 0x04, 0x22, 0x04, 0x20,
];

fn check(key: &SigningKey) {
    let Some(jwk) = key.public_jwk() else {
        return;
    };
    let text = jwk.to_string();
    let parsed: serde_json::Value = serde_json::from_str(&text).expect("JWK is JSON");
    let kty = parsed["kty"].as_str().expect("kty");
    assert!(matches!(kty, "RSA" | "EC" | "OKP"), "{kty}");
    for member in ["n", "e", "x", "y"] {
        if let Some(v) = parsed.get(member).and_then(|v| v.as_str()) {
            URL_SAFE_NO_PAD.decode(v).expect("base64url member");
        }
    }
    assert!(parsed.get("d").is_none(), "private part in a public JWK");
    let thumbprint = key.thumbprint().expect("thumbprint");
    assert_eq!(URL_SAFE_NO_PAD.decode(&thumbprint).map(|b| b.len()), Ok(32));
    assert_eq!(key.kid(), Some(thumbprint.as_str()));
}

fuzz_target!(|data: &[u8]| {
    if data.len() >= 32 {
        let mut der = ED25519_PKCS8_PREFIX.to_vec();
        der.extend_from_slice(&data[..32]);
        let key = SigningKey::from_der(&der, Algorithm::EdDSA).expect("any 32-byte seed is a key");
        check(&key);
    }
    for alg in [Algorithm::RS256, Algorithm::ES256, Algorithm::ES384, Algorithm::EdDSA] {
        if let Ok(key) = SigningKey::from_der(data, alg) {
            check(&key);
        }
    }
});
