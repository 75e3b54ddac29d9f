//! Every algorithm signed here and verified by an independent implementation (`jsonwebtoken`
//! with its RustCrypto backend, which shares no code with ring); known-answer tests; keys
//! written by openssl in every supported format, and the errors for the others.
#![allow(clippy::unwrap_used, clippy::expect_used, clippy::panic)]

use std::time::{Duration, SystemTime};

use base64::Engine as _;
use jsonwebtoken::{DecodingKey, Validation, decode};
use jwt_assertion::{Algorithm, Header, JwtClaims, KeyError, SigningKey, sign_compact};
use oauth_core::{Client, ClientAuthentication, Endpoint, TokenRequest};
use serde_json::Value;

fn key_file(name: &str) -> String {
    std::fs::read_to_string(format!("{}/tests/keys/{name}", env!("CARGO_MANIFEST_DIR"))).unwrap()
}

fn b64url_decode(s: &str) -> Vec<u8> {
    base64::engine::general_purpose::URL_SAFE_NO_PAD
        .decode(s)
        .unwrap()
}

const HMAC_SECRET: &[u8] = b"0123456789abcdef0123456789abcdef0123456789abcdef0123456789abcdef";

/// Selects jsonwebtoken's RustCrypto backend, the independent implementation, for this test
/// binary. Built alone, these tests have only that backend; in a workspace build the benchmarks
/// turn on its aws-lc-rs backend too, and with both on jsonwebtoken picks neither by itself.
fn independent_backend() {
    // An error means a provider is installed already: this one, by another test.
    let _ = jsonwebtoken::crypto::rust_crypto::DEFAULT_PROVIDER.install_default();
}

/// (algorithm, private key file, how the independent verifier gets the public key)
fn cases() -> Vec<(Algorithm, SigningKey, DecodingKey)> {
    independent_backend();
    let rsa_public = DecodingKey::from_rsa_pem(key_file("rsa2048-public.pem").as_bytes()).unwrap();
    let rsa = |alg| SigningKey::from_pem(&key_file("rsa2048-pkcs8.pem"), alg).unwrap();
    vec![
        (Algorithm::RS256, rsa(Algorithm::RS256), rsa_public.clone()),
        (Algorithm::RS384, rsa(Algorithm::RS384), rsa_public.clone()),
        (Algorithm::RS512, rsa(Algorithm::RS512), rsa_public.clone()),
        (Algorithm::PS256, rsa(Algorithm::PS256), rsa_public.clone()),
        (Algorithm::PS384, rsa(Algorithm::PS384), rsa_public.clone()),
        (Algorithm::PS512, rsa(Algorithm::PS512), rsa_public),
        (
            Algorithm::ES256,
            SigningKey::from_pem(&key_file("p256-pkcs8.pem"), Algorithm::ES256).unwrap(),
            DecodingKey::from_ec_pem(key_file("p256-public.pem").as_bytes()).unwrap(),
        ),
        (
            Algorithm::ES384,
            SigningKey::from_pem(&key_file("p384-pkcs8.pem"), Algorithm::ES384).unwrap(),
            DecodingKey::from_ec_pem(key_file("p384-public.pem").as_bytes()).unwrap(),
        ),
        (
            Algorithm::EdDSA,
            SigningKey::from_pem(&key_file("ed25519-pkcs8.pem"), Algorithm::EdDSA).unwrap(),
            DecodingKey::from_ed_pem(key_file("ed25519-public.pem").as_bytes()).unwrap(),
        ),
        (
            Algorithm::HS256,
            SigningKey::hmac(&HMAC_SECRET[..32], Algorithm::HS256).unwrap(),
            DecodingKey::from_secret(&HMAC_SECRET[..32]),
        ),
        (
            Algorithm::HS384,
            SigningKey::hmac(&HMAC_SECRET[..48], Algorithm::HS384).unwrap(),
            DecodingKey::from_secret(&HMAC_SECRET[..48]),
        ),
        (
            Algorithm::HS512,
            SigningKey::hmac(HMAC_SECRET, Algorithm::HS512).unwrap(),
            DecodingKey::from_secret(HMAC_SECRET),
        ),
    ]
}

fn their_alg(alg: Algorithm) -> jsonwebtoken::Algorithm {
    use jsonwebtoken::Algorithm as J;
    match alg {
        Algorithm::RS256 => J::RS256,
        Algorithm::RS384 => J::RS384,
        Algorithm::RS512 => J::RS512,
        Algorithm::PS256 => J::PS256,
        Algorithm::PS384 => J::PS384,
        Algorithm::PS512 => J::PS512,
        Algorithm::ES256 => J::ES256,
        Algorithm::ES384 => J::ES384,
        Algorithm::EdDSA => J::EdDSA,
        Algorithm::HS256 => J::HS256,
        Algorithm::HS384 => J::HS384,
        Algorithm::HS512 => J::HS512,
        _ => unreachable!(),
    }
}

fn validation(alg: Algorithm) -> Validation {
    let mut v = Validation::new(their_alg(alg));
    v.set_audience(&["https://as.example/token"]);
    v.set_issuer(&["client-1"]);
    v.set_required_spec_claims(&["exp", "iss", "sub", "aud"]);
    v
}

#[test]
fn every_algorithm_verifies_independently_and_tampering_fails() {
    let now = SystemTime::now();
    for (alg, key, public) in cases() {
        let assertion = JwtClaims::client_assertion("client-1", "https://as.example/token")
            .claim("custom", Value::from(7))
            .sign(&key, now)
            .unwrap();
        let token = assertion.expose_secret();
        let data = decode::<Value>(token, &public, &validation(alg))
            .unwrap_or_else(|e| panic!("{alg}: independent verification failed: {e}"));
        let claims = data.claims;
        assert_eq!(claims["iss"], "client-1", "{alg}");
        assert_eq!(claims["sub"], "client-1", "{alg}");
        assert_eq!(claims["custom"], 7, "{alg}");
        let iat = claims["iat"].as_u64().unwrap();
        assert_eq!(claims["exp"].as_u64().unwrap(), iat + 60, "{alg}");
        assert_eq!(
            b64url_decode(claims["jti"].as_str().unwrap()).len(),
            16,
            "{alg}"
        );
        assert_eq!(data.header.alg, their_alg(alg));
        assert_eq!(data.header.kid.as_deref(), key.kid(), "{alg}");

        // Flip one bit in each part: the verifier must refuse every one.
        let parts: Vec<&str> = token.split('.').collect();
        for i in 0..3 {
            let mut bytes = b64url_decode(parts[i]);
            let mid = bytes.len() / 2;
            bytes[mid] ^= 0x01;
            let mut tampered = parts.clone();
            let encoded = base64::engine::general_purpose::URL_SAFE_NO_PAD.encode(&bytes);
            tampered[i] = &encoded;
            let tampered = tampered.join(".");
            assert!(
                decode::<Value>(&tampered, &public, &validation(alg)).is_err(),
                "{alg}: tampered part {i} still verifies"
            );
        }
        // And a signature from another key fails.
        if alg == Algorithm::HS256 {
            let other = SigningKey::hmac(&[9u8; 32], alg).unwrap();
            let forged = JwtClaims::client_assertion("client-1", "https://as.example/token")
                .sign(&other, now)
                .unwrap();
            assert!(decode::<Value>(forged.expose_secret(), &public, &validation(alg)).is_err());
        }
    }
}

#[test]
fn public_jwk_verifies_and_has_rfc7638_kid() {
    let now = SystemTime::now();
    for (alg, key, _) in cases() {
        let Some(jwk) = key.public_jwk() else {
            assert!(matches!(
                alg,
                Algorithm::HS256 | Algorithm::HS384 | Algorithm::HS512
            ));
            continue;
        };
        assert_eq!(jwk["kid"].as_str(), key.kid());
        assert_eq!(jwk["kid"].as_str(), key.thumbprint().as_deref());
        assert_eq!(jwk["alg"], alg.as_str());
        let parsed: jsonwebtoken::jwk::Jwk = serde_json::from_value(jwk).unwrap();
        let public = DecodingKey::from_jwk(&parsed).unwrap();
        let assertion = JwtClaims::client_assertion("client-1", "https://as.example/token")
            .sign(&key, now)
            .unwrap();
        decode::<Value>(assertion.expose_secret(), &public, &validation(alg))
            .unwrap_or_else(|e| panic!("{alg}: JWK does not verify: {e}"));
    }
}

/// RFC 7638 §3.1: the thumbprint of the RFC 7515 A.2 RSA key... is given for the key of
/// RFC 7638 §3.1, which is another key; here we check the A.2 key's JWK members against the
/// RFC text and the thumbprint against an independent computation.
#[test]
fn rfc7515_a2_rs256_known_answer() {
    let key = SigningKey::from_pem(&key_file("rfc7515-a2-pkcs1.pem"), Algorithm::RS256).unwrap();
    let signing_input = "eyJhbGciOiJSUzI1NiJ9.eyJpc3MiOiJqb2UiLA0KICJleHAiOjEzMDA4MTkzODAsDQogImh0dHA6Ly9leGFtcGxlLmNvbS9pc19yb290Ijp0cnVlfQ";
    let expected = "cC4hiUPoj9Eetdgtv3hF80EGrhuB__dzERat0XF9g2VtQgr9PJbu3XOiZj5RZmh7AAuHIm4Bh-0Qc_lF5YKt_O8W2Fp5jujGbds9uJdbF9CUAr7t1dnZcAcQjbKBYNX4BAynRFdiuB--f_nZLgrnbyTyWzO75vRK5h6xBArLIARNPvkSjtQBMHlb1L07Qe7K0GarZRmB_eSN9383LcOLn6_dO--xi12jzDwusC-eOkHWEsqtFZESc6BfI7noOPqvhJ1phCnvWh6IeYI2w9QOYEUipUTI8np6LbgGY9Fs98rqVt5AXLIhWkWywlVmtVrBp0igcN_IoypGlUPQGe77Rw";
    let signature = key.sign(signing_input.as_bytes()).unwrap();
    assert_eq!(b64url_decode(expected), signature.as_ref());
    let jwk = key.public_jwk().unwrap();
    assert_eq!(jwk["e"], "AQAB");
    assert!(
        jwk["n"]
            .as_str()
            .unwrap()
            .starts_with("ofgWCuLjybRlzo0tZWJjNiuSfb4p4fAkd_wWJcyQoTbji9k0l8W26mPddx")
    );
}

/// RFC 8037 appendix A.4 (Ed25519 is deterministic), with the key of A.1 wrapped in PKCS#8 v1
/// as openssl writes it.
#[test]
fn rfc8037_a4_ed25519_known_answer() {
    let seed = b64url_decode("nWGxne_9WmC6hEr0kuwsxERJxWl7MmkZcDusAxyuf2A");
    let mut pkcs8 = vec![
        0x30, 0x2e, 0x02, 0x01, 0x00, 0x30, 0x05, 0x06, 0x03, 0x2b, 0x65, 0x70, 0x04, 0x22, 0x04,
        0x20,
    ];
    pkcs8.extend_from_slice(&seed);
    let key = SigningKey::from_pkcs8_der(&pkcs8, Algorithm::EdDSA).unwrap();
    let signature = key
        .sign(b"eyJhbGciOiJFZERTQSJ9.RXhhbXBsZSBvZiBFZDI1NTE5IHNpZ25pbmc")
        .unwrap();
    assert_eq!(
        signature.as_ref(),
        b64url_decode(
            "hgyY0il_MGCjP0JzlnLWG1PPOt7-09PGcvMg3AIbQR6dWbhijcNR4ki4iylGjg5BhVsPt9g7sVvpAr_MuM0KAg"
        )
    );
    let jwk = key.public_jwk().unwrap();
    assert_eq!(jwk["x"], "11qYAYKxCrfVS_7TyWQHOg7hcvPapiMlrwIaaPcHURo");
    // RFC 8037 appendix A.3: the JWK thumbprint of that public key.
    assert_eq!(
        key.kid(),
        Some("kPrK_qmxVWaYVA9wwBF6Iuo3vVzz7TxHCTwXBygrS4k")
    );
}

/// RFC 7515 appendix A.1 (HS256).
#[test]
fn rfc7515_a1_hs256_known_answer() {
    let secret = b64url_decode(
        "AyM1SysPpbyDfgZld3umj1qzKObwVMkoqQ-EstJQLr_T-1qS0gZH75aKtMN3Yj0iPS4hcgUuTwjAzZr1Z9CAow",
    );
    let key = SigningKey::hmac(&secret, Algorithm::HS256).unwrap();
    let input = "eyJ0eXAiOiJKV1QiLA0KICJhbGciOiJIUzI1NiJ9.eyJpc3MiOiJqb2UiLA0KICJleHAiOjEzMDA4MTkzODAsDQogImh0dHA6Ly9leGFtcGxlLmNvbS9pc19yb290Ijp0cnVlfQ";
    assert_eq!(
        key.sign(input.as_bytes()).unwrap().as_ref(),
        b64url_decode("dBjftJeZ4CVP-mB92K27uhbUJU1p1r_wW1gFWFOEjXk")
    );
}

#[test]
fn openssl_key_formats_load() {
    let ok: &[(&str, Algorithm)] = &[
        ("rsa2048-pkcs8.pem", Algorithm::RS256),
        ("rsa2048-pkcs1.pem", Algorithm::PS256),
        ("p256-pkcs8.pem", Algorithm::ES256),
        ("p256-sec1.pem", Algorithm::ES256),
        ("p384-pkcs8.pem", Algorithm::ES384),
        ("p384-sec1.pem", Algorithm::ES384),
        ("ed25519-pkcs8.pem", Algorithm::EdDSA),
    ];
    for (file, alg) in ok {
        let key =
            SigningKey::from_pem(&key_file(file), *alg).unwrap_or_else(|e| panic!("{file}: {e}"));
        assert_eq!(key.algorithm(), *alg);
    }
    // The same key through PKCS#8 PEM, PKCS#1 PEM and PKCS#8 DER has the same public key.
    let der = std::fs::read(format!(
        "{}/tests/keys/rsa2048-pkcs8.der",
        env!("CARGO_MANIFEST_DIR")
    ))
    .unwrap();
    let from_der = SigningKey::from_der(&der, Algorithm::RS256).unwrap();
    let from_pkcs1 =
        SigningKey::from_pem(&key_file("rsa2048-pkcs1.pem"), Algorithm::RS256).unwrap();
    let from_pkcs8 =
        SigningKey::from_pem(&key_file("rsa2048-pkcs8.pem"), Algorithm::RS256).unwrap();
    assert_eq!(from_der.kid(), from_pkcs8.kid());
    assert_eq!(from_pkcs1.kid(), from_pkcs8.kid());
}

#[test]
fn unsupported_keys_fail_with_the_promised_message() {
    let cases: &[(&str, Algorithm, &str)] = &[
        (
            "p256-encrypted.pem",
            Algorithm::ES256,
            "openssl pkcs8 -topk8 -nocrypt",
        ),
        (
            "openssh-ed25519.pem",
            Algorithm::EdDSA,
            "ssh-keygen -p -N \"\" -m PKCS8",
        ),
        ("ed25519-public.pem", Algorithm::EdDSA, "not a private key"),
        ("rsa1024-pkcs8.pem", Algorithm::RS256, "at least 2048"),
        (
            "rsapss-pkcs8.pem",
            Algorithm::PS256,
            "convert it to a plain RSA key",
        ),
        (
            "x25519-pkcs8.pem",
            Algorithm::EdDSA,
            "genpkey -algorithm ed25519",
        ),
        (
            "secp256k1-pkcs8.pem",
            Algorithm::ES256,
            "other than P-256 or P-384",
        ),
        (
            "p256-pkcs8.pem",
            Algorithm::ES384,
            "P-256 key cannot sign ES384",
        ),
        (
            "rsa2048-pkcs8.pem",
            Algorithm::EdDSA,
            "RSA key cannot sign EdDSA",
        ),
        (
            "ed25519-pkcs8.pem",
            Algorithm::RS256,
            "Ed25519 key cannot sign RS256",
        ),
    ];
    for (file, alg, message) in cases {
        let err = SigningKey::from_pem(&key_file(file), *alg).unwrap_err();
        assert!(err.to_string().contains(message), "{file}: {err}");
    }
    assert!(matches!(
        SigningKey::hmac(&[0; 31], Algorithm::HS256),
        Err(KeyError::SecretTooShort { min: 32, .. })
    ));
    assert!(SigningKey::from_pem("no pem here", Algorithm::RS256).is_err());
    assert!(SigningKey::from_der(&[0x30, 0x03, 0x02, 0x01], Algorithm::RS256).is_err());
}

/// Regression: the key_loading fuzz target found RSA keys with damaged CRT values that ring
/// loads but cannot sign with. They are now refused when loaded, for every RSA algorithm.
#[test]
fn damaged_rsa_keys_are_refused_at_load() {
    for file in ["fuzz-damaged-rsa-pkcs1.pem", "fuzz-damaged-rsa-pkcs8.pem"] {
        for alg in [Algorithm::RS256, Algorithm::PS256, Algorithm::RS512] {
            let err = SigningKey::from_pem(&key_file(file), alg).unwrap_err();
            assert!(
                err.to_string().contains("values are inconsistent"),
                "{file} {alg:?}: {err}"
            );
        }
    }
}

#[test]
fn no_key_material_in_debug_or_errors() {
    let pem = key_file("p256-pkcs8.pem");
    let body_line = pem.lines().nth(1).unwrap();
    let key = SigningKey::from_pem(&pem, Algorithm::ES256).unwrap();
    let debug = format!("{key:?}");
    assert!(
        !debug.contains(body_line) && debug.contains("<redacted>"),
        "{debug}"
    );
    let hmac = SigningKey::hmac(b"super-secret-value-0123456789abcdef", Algorithm::HS256).unwrap();
    assert!(!format!("{hmac:?}").contains("super-secret"));
    let assertion = JwtClaims::client_assertion("c", "a")
        .sign(&key, SystemTime::now())
        .unwrap();
    assert!(!format!("{assertion:?}").contains(assertion.expose_secret()));
    let err = SigningKey::from_pem(&pem, Algorithm::RS256).unwrap_err();
    assert!(!err.to_string().contains(body_line) && !format!("{err:?}").contains(body_line));
}

#[test]
fn claims_shape_and_plugging_into_oauth_core() {
    let key = SigningKey::from_pem(&key_file("ed25519-pkcs8.pem"), Algorithm::EdDSA).unwrap();
    let now = SystemTime::UNIX_EPOCH + Duration::from_secs(1_700_000_000);
    let subject =
        "v2|0b132ac3-d8f6-44b2-953c-2333df741f05|jsmith|john|smith|jsmith@gmail.com|[community]";
    let token_endpoint = "https://anypoint.mulesoft.com/accounts/api/v2/oauth2/token";
    let claims = JwtClaims::jwt_bearer("client-id", subject, token_endpoint)
        .audience("https://second.example")
        .lifetime(Duration::from_secs(300))
        .not_before()
        .jwt_id("fixed-jti");
    let assertion = claims.sign(&key, now).unwrap();
    let parts: Vec<&str> = assertion.expose_secret().split('.').collect();
    let header: Value = serde_json::from_slice(&b64url_decode(parts[0])).unwrap();
    let payload: Value = serde_json::from_slice(&b64url_decode(parts[1])).unwrap();
    assert_eq!(header["alg"], "EdDSA");
    assert_eq!(header["typ"], "JWT");
    assert_eq!(header["kid"].as_str(), key.kid());
    assert_eq!(
        payload,
        serde_json::json!({
            "iss": "client-id",
            "sub": subject,
            "aud": [token_endpoint, "https://second.example"],
            "iat": 1_700_000_000u64,
            "nbf": 1_700_000_000u64,
            "exp": 1_700_000_300u64,
            "jti": "fixed-jti",
        })
    );

    // The Anypoint page's JWT bearer request.
    let request = TokenRequest::jwt_bearer(assertion.clone())
        .build(
            &Endpoint::new(token_endpoint).unwrap(),
            &Client::anonymous(),
        )
        .unwrap();
    let body = String::from_utf8(request.body().expose_secret().to_vec()).unwrap();
    assert_eq!(
        body,
        format!(
            "grant_type=urn%3Aietf%3Aparams%3Aoauth%3Agrant-type%3Ajwt-bearer&assertion={}",
            assertion.expose_secret()
        )
    );

    // private_key_jwt through ClientAuthentication::Assertion.
    let client_assertion = JwtClaims::client_assertion("client-id", token_endpoint)
        .sign_client_assertion(&key, now)
        .unwrap();
    let client = Client::new(
        "client-id",
        ClientAuthentication::Assertion(client_assertion),
    );
    let request = TokenRequest::client_credentials()
        .build(&Endpoint::new(token_endpoint).unwrap(), &client)
        .unwrap();
    let body = String::from_utf8(request.body().expose_secret().to_vec()).unwrap();
    assert!(body.contains(
        "client_assertion_type=urn%3Aietf%3Aparams%3Aoauth%3Aclient-assertion-type%3Ajwt-bearer"
    ));

    // Fresh jti each time; custom header members (the shape DPoP needs).
    let a = JwtClaims::client_assertion("c", "a")
        .sign(&key, now)
        .unwrap();
    let b = JwtClaims::client_assertion("c", "a")
        .sign(&key, now)
        .unwrap();
    assert_ne!(a.expose_secret(), b.expose_secret());
    let proof = sign_compact(
        &key,
        &Header::new()
            .typ("dpop+jwt")
            .kid(None)
            .param("jwk", key.public_jwk().unwrap()),
        &serde_json::Map::from_iter([("htm".to_owned(), Value::from("POST"))]),
    )
    .unwrap();
    let header: Value =
        serde_json::from_slice(&b64url_decode(proof.split('.').next().unwrap())).unwrap();
    assert_eq!(header["typ"], "dpop+jwt");
    assert!(header.get("kid").is_none());
    assert_eq!(header["jwk"]["kty"], "OKP");

    assert!(
        JwtClaims::new()
            .sign(&key, SystemTime::UNIX_EPOCH - Duration::from_secs(1))
            .is_err()
    );
}
