//! JWT verification for client assertions and the JWT bearer grant, with ring.

use base64::Engine;
use base64::engine::general_purpose::URL_SAFE_NO_PAD;
use ring::signature::{self, UnparsedPublicKey};
use serde_json::Value;

/// Verifies a compact JWS with the client's secret (HS*) or its public JWK, and returns the
/// claims.
pub(crate) fn verify(token: &str, secret: &str, jwk: Option<&Value>) -> Result<Value, String> {
    let mut parts = token.split('.');
    let (Some(h), Some(p), Some(s), None) =
        (parts.next(), parts.next(), parts.next(), parts.next())
    else {
        return Err("not a compact JWS".into());
    };
    let decode = |x: &str| URL_SAFE_NO_PAD.decode(x).map_err(|e| e.to_string());
    let header: Value = serde_json::from_slice(&decode(h)?).map_err(|e| e.to_string())?;
    let claims: Value = serde_json::from_slice(&decode(p)?).map_err(|e| e.to_string())?;
    let sig = decode(s)?;
    let input = &token.as_bytes()[..h.len() + 1 + p.len()];
    let alg = header["alg"].as_str().unwrap_or_default();
    let jwk_bytes = |name: &str| -> Result<Vec<u8>, String> {
        let v = jwk
            .and_then(|j| j[name].as_str())
            .ok_or("no key registered")?;
        decode(v)
    };
    let ok = match alg {
        "HS256" | "HS384" | "HS512" => {
            let a = match alg {
                "HS256" => ring::hmac::HMAC_SHA256,
                "HS384" => ring::hmac::HMAC_SHA384,
                _ => ring::hmac::HMAC_SHA512,
            };
            let key = ring::hmac::Key::new(a, secret.as_bytes());
            ring::hmac::verify(&key, input, &sig).is_ok()
        }
        "RS256" | "PS256" => {
            let n = jwk_bytes("n")?;
            let e = jwk_bytes("e")?;
            let params: &signature::RsaParameters = if alg == "RS256" {
                &signature::RSA_PKCS1_2048_8192_SHA256
            } else {
                &signature::RSA_PSS_2048_8192_SHA256
            };
            signature::RsaPublicKeyComponents { n, e }
                .verify(params, input, &sig)
                .is_ok()
        }
        "ES256" => {
            let mut point = vec![4];
            point.extend(jwk_bytes("x")?);
            point.extend(jwk_bytes("y")?);
            UnparsedPublicKey::new(&signature::ECDSA_P256_SHA256_FIXED, point)
                .verify(input, &sig)
                .is_ok()
        }
        "EdDSA" | "Ed25519" => UnparsedPublicKey::new(&signature::ED25519, jwk_bytes("x")?)
            .verify(input, &sig)
            .is_ok(),
        other => return Err(format!("unsupported alg {other}")),
    };
    if ok {
        Ok(claims)
    } else {
        Err("bad signature".into())
    }
}
