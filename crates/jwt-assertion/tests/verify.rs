//! JWS verification: RFC 7515 / RFC 8037 known answers, tokens signed by an independent
//! implementation (`jsonwebtoken` with its RustCrypto backend) for every algorithm, every
//! tampering and confusion case with its typed error, and JWK set parsing.
#![allow(clippy::unwrap_used, clippy::expect_used, clippy::panic)]

use base64::Engine as _;
use jsonwebtoken::{EncodingKey, Header as TheirHeader, encode};
use jwt_assertion::verify::{JwkError, KeySet, VerifyError, VerifyingKey, verify};
use jwt_assertion::{Algorithm, Header, JwtClaims, SigningKey, sign_compact};
use serde_json::{Value, json};

fn key_file(name: &str) -> String {
    std::fs::read_to_string(format!("{}/tests/keys/{name}", env!("CARGO_MANIFEST_DIR"))).unwrap()
}

fn b64(bytes: &[u8]) -> String {
    base64::engine::general_purpose::URL_SAFE_NO_PAD.encode(bytes)
}

const ALL: &[Algorithm] = &[
    Algorithm::RS256,
    Algorithm::RS384,
    Algorithm::RS512,
    Algorithm::PS256,
    Algorithm::PS384,
    Algorithm::PS512,
    Algorithm::ES256,
    Algorithm::ES384,
    Algorithm::EdDSA,
    Algorithm::HS256,
    Algorithm::HS384,
    Algorithm::HS512,
];

const SECRET: &[u8] = b"0123456789abcdef0123456789abcdef0123456789abcdef0123456789abcdef";

/// Selects jsonwebtoken's RustCrypto backend, the independent implementation, for this test
/// binary. Built alone, these tests have only that backend; in a workspace build the benchmarks
/// turn on its aws-lc-rs backend too, and with both on jsonwebtoken picks neither by itself.
fn independent_backend() {
    // An error means a provider is installed already: this one, by another test.
    let _ = jsonwebtoken::crypto::rust_crypto::DEFAULT_PROVIDER.install_default();
}

/// (algorithm, our signing key (for its public JWK), the independent signer's key)
fn cases() -> Vec<(Algorithm, SigningKey, EncodingKey)> {
    independent_backend();
    let rsa_pem = key_file("rsa2048-pkcs8.pem");
    let rsa = |alg| SigningKey::from_pem(&rsa_pem, alg).unwrap();
    let their_rsa = || EncodingKey::from_rsa_pem(rsa_pem.as_bytes()).unwrap();
    vec![
        (Algorithm::RS256, rsa(Algorithm::RS256), their_rsa()),
        (Algorithm::RS384, rsa(Algorithm::RS384), their_rsa()),
        (Algorithm::RS512, rsa(Algorithm::RS512), their_rsa()),
        (Algorithm::PS256, rsa(Algorithm::PS256), their_rsa()),
        (Algorithm::PS384, rsa(Algorithm::PS384), their_rsa()),
        (Algorithm::PS512, rsa(Algorithm::PS512), their_rsa()),
        (
            Algorithm::ES256,
            SigningKey::from_pem(&key_file("p256-pkcs8.pem"), Algorithm::ES256).unwrap(),
            EncodingKey::from_ec_pem(key_file("p256-pkcs8.pem").as_bytes()).unwrap(),
        ),
        (
            Algorithm::ES384,
            SigningKey::from_pem(&key_file("p384-pkcs8.pem"), Algorithm::ES384).unwrap(),
            EncodingKey::from_ec_pem(key_file("p384-pkcs8.pem").as_bytes()).unwrap(),
        ),
        (
            Algorithm::EdDSA,
            SigningKey::from_pem(&key_file("ed25519-pkcs8.pem"), Algorithm::EdDSA).unwrap(),
            EncodingKey::from_ed_pem(key_file("ed25519-pkcs8.pem").as_bytes()).unwrap(),
        ),
        (
            Algorithm::HS256,
            SigningKey::hmac(&SECRET[..32], Algorithm::HS256).unwrap(),
            EncodingKey::from_secret(&SECRET[..32]),
        ),
        (
            Algorithm::HS384,
            SigningKey::hmac(&SECRET[..48], Algorithm::HS384).unwrap(),
            EncodingKey::from_secret(&SECRET[..48]),
        ),
        (
            Algorithm::HS512,
            SigningKey::hmac(SECRET, Algorithm::HS512).unwrap(),
            EncodingKey::from_secret(SECRET),
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

/// The key set a verifier would have for `key`: its public JWK, or the shared secret.
fn keys_for(alg: Algorithm, key: &SigningKey) -> KeySet {
    match alg {
        Algorithm::HS256 => KeySet::new().with(VerifyingKey::hmac(&SECRET[..32])),
        Algorithm::HS384 => KeySet::new().with(VerifyingKey::hmac(&SECRET[..48])),
        Algorithm::HS512 => KeySet::new().with(VerifyingKey::hmac(SECRET)),
        _ => {
            let jwks = json!({ "keys": [key.public_jwk().unwrap()] });
            KeySet::from_jwks(jwks.to_string().as_bytes()).unwrap()
        }
    }
}

#[test]
fn tokens_from_an_independent_signer_verify_for_every_algorithm() {
    for (alg, ours, theirs) in cases() {
        let keys = keys_for(alg, &ours);
        assert_eq!(keys.keys().len(), 1, "{alg}");
        let mut header = TheirHeader::new(their_alg(alg));
        header.kid = ours.kid().map(str::to_owned);
        let claims = json!({"iss": "https://as.example", "sub": "alice", "exp": 4_000_000_000u64});
        let token = encode(&header, &claims, &theirs).unwrap();
        let verified = verify(&token, &keys, ALL).unwrap_or_else(|e| panic!("{alg}: {e}"));
        assert_eq!(verified.alg(), alg);
        assert_eq!(verified.claims()["sub"], "alice");
        // Every part tampered with: refused.
        let (h, rest) = token.split_once('.').unwrap();
        let (p, s) = rest.split_once('.').unwrap();
        let flip = |seg: &str| {
            let mut bytes = base64::engine::general_purpose::URL_SAFE_NO_PAD
                .decode(seg)
                .unwrap();
            let last = bytes.len() - 1;
            bytes[last] ^= 1;
            b64(&bytes)
        };
        for bad in [
            format!("{}.{p}.{s}", flip(h)),
            format!("{h}.{}.{s}", flip(p)),
            format!("{h}.{p}.{}", flip(s)),
        ] {
            assert!(
                verify(&bad, &keys, ALL).is_err(),
                "{alg}: tampered token verified"
            );
        }
        assert_eq!(
            verify(&format!("{h}.{p}.{}", flip(s)), &keys, ALL).unwrap_err(),
            VerifyError::BadSignature
        );
        // Our own signer's tokens verify too.
        let ours_token = JwtClaims::new()
            .subject("bob")
            .header(Header::new().kid(ours.kid().map(str::to_owned)))
            .sign(&ours, std::time::SystemTime::now())
            .unwrap();
        let v = verify(ours_token.expose_secret(), &keys, &[alg]).unwrap();
        assert_eq!(v.claims()["sub"], "bob");
    }
}

/// RFC 7520 §4 ("Examples of Protecting Content Using JSON Object Signing and Encryption"): the
/// RFC's signatures over its plain-text payload. The signature is checked before the payload is
/// read, so a verified signature shows as the payload being refused (it is not a claim set);
/// a changed signature is a bad signature. §4.3 (ES512, P-521) is outside the algorithms this
/// crate verifies: its key is skipped.
#[test]
fn rfc7520_known_answers() {
    let not_claims = VerifyError::Malformed("the payload is not a base64url JSON object");
    let rsa = json!({"kty": "RSA", "kid": "bilbo.baggins@hobbiton.example", "use": "sig",
        "n": "n4EPtAOCc9AlkeQHPzHStgAbgs7bTZLwUBZdR8_KuKPEHLd4rHVTeT-O-XV2jRojdNhxJWTDvNd7nqQ0VEiZQHz_AJmSCpMaJMRBSFKrKb2wqVwGU_NsYOYL-QtiWN2lbzcEe6XC0dApr5ydQLrHqkHHig3RBordaZ6Aj-oBHqFEHYpPe7Tpe-OfVfHd1E6cS6M1FZcD1NNLYD5lFHpPI9bTwJlsde3uhGqC0ZCuEHg8lhzwOHrtIQbS0FVbb9k3-tVTU4fg_3L_vniUFAKwuCLqKnS2BYwdq_mzSnbLY7h_qixoR7jig3__kRhuaxwUkRz5iaiQkqgc5gHdrNP5zw", "e": "AQAB"});
    let keys = KeySet::new().with(VerifyingKey::from_jwk(&rsa).unwrap());
    // §4.1: RS256.
    let rs256 = "eyJhbGciOiJSUzI1NiIsImtpZCI6ImJpbGJvLmJhZ2dpbnNAaG9iYml0b24uZXhhbXBsZSJ9.SXTigJlzIGEgZGFuZ2Vyb3VzIGJ1c2luZXNzLCBGcm9kbywgZ29pbmcgb3V0IHlvdXIgZG9vci4gWW91IHN0ZXAgb250byB0aGUgcm9hZCwgYW5kIGlmIHlvdSBkb24ndCBrZWVwIHlvdXIgZmVldCwgdGhlcmXigJlzIG5vIGtub3dpbmcgd2hlcmUgeW91IG1pZ2h0IGJlIHN3ZXB0IG9mZiB0by4.MRjdkly7_-oTPTS3AXP41iQIGKa80A0ZmTuV5MEaHoxnW2e5CZ5NlKtainoFmKZopdHM1O2U4mwzJdQx996ivp83xuglII7PNDi84wnB-BDkoBwA78185hX-Es4JIwmDLJK3lfWRa-XtL0RnltuYv746iYTh_qHRD68BNt1uSNCrUCTJDt5aAE6x8wW1Kt9eRo4QPocSadnHXFxnt8Is9UzpERV0ePPQdLuW3IS_de3xyIrDaLGdjluPxUAhb6L2aXic1U12podGU0KLUQSE_oI-ZnmKJ3F4uOZDnd6QZWJushZ41Axf_fcIe8u9ipH84ogoree7vjbU5y18kDquDg";
    assert_eq!(
        verify(rs256, &keys, &[Algorithm::RS256]).err(),
        Some(not_claims.clone())
    );
    let tampered = format!("{}A", &rs256[..rs256.len() - 1]);
    assert_eq!(
        verify(&tampered, &keys, &[Algorithm::RS256]).err(),
        Some(VerifyError::BadSignature)
    );
    // §4.2: PS384 (a randomised signature: the RFC's one verifies).
    let ps384 = "eyJhbGciOiJQUzM4NCIsImtpZCI6ImJpbGJvLmJhZ2dpbnNAaG9iYml0b24uZXhhbXBsZSJ9.SXTigJlzIGEgZGFuZ2Vyb3VzIGJ1c2luZXNzLCBGcm9kbywgZ29pbmcgb3V0IHlvdXIgZG9vci4gWW91IHN0ZXAgb250byB0aGUgcm9hZCwgYW5kIGlmIHlvdSBkb24ndCBrZWVwIHlvdXIgZmVldCwgdGhlcmXigJlzIG5vIGtub3dpbmcgd2hlcmUgeW91IG1pZ2h0IGJlIHN3ZXB0IG9mZiB0by4.cu22eBqkYDKgIlTpzDXGvaFfz6WGoz7fUDcfT0kkOy42miAh2qyBzk1xEsnk2IpN6-tPid6VrklHkqsGqDqHCdP6O8TTB5dDDItllVo6_1OLPpcbUrhiUSMxbbXUvdvWXzg-UD8biiReQFlfz28zGWVsdiNAUf8ZnyPEgVFn442ZdNqiVJRmBqrYRXe8P_ijQ7p8Vdz0TTrxUeT3lm8d9shnr2lfJT8ImUjvAA2Xez2Mlp8cBE5awDzT0qI0n6uiP1aCN_2_jLAeQTlqRHtfa64QQSUmFAAjVKPbByi7xho0uTOcbH510a6GYmJUAfmWjwZ6oD4ifKo8DYM-X72Eaw";
    assert_eq!(
        verify(ps384, &keys, &[Algorithm::PS384]).err(),
        Some(not_claims.clone())
    );
    // §4.4: HS256 with the RFC's symmetric key.
    let secret = base64::engine::general_purpose::URL_SAFE_NO_PAD
        .decode("hJtXIZ2uSN5kbQfbtTNWbpdmhkV8FJG-Onbc6mxCcYg")
        .unwrap();
    let hmac = KeySet::new().with(VerifyingKey::hmac(&secret));
    let hs256 = "eyJhbGciOiJIUzI1NiIsImtpZCI6IjAxOGMwYWU1LTRkOWItNDcxYi1iZmQ2LWVlZjMxNGJjNzAzNyJ9.SXTigJlzIGEgZGFuZ2Vyb3VzIGJ1c2luZXNzLCBGcm9kbywgZ29pbmcgb3V0IHlvdXIgZG9vci4gWW91IHN0ZXAgb250byB0aGUgcm9hZCwgYW5kIGlmIHlvdSBkb24ndCBrZWVwIHlvdXIgZmVldCwgdGhlcmXigJlzIG5vIGtub3dpbmcgd2hlcmUgeW91IG1pZ2h0IGJlIHN3ZXB0IG9mZiB0by4.s0h6KThzkfBBBkLspW1h84VsJZFTsPPqMDA7g1Md7p0";
    assert_eq!(
        verify(hs256, &hmac, &[Algorithm::HS256]).err(),
        Some(not_claims)
    );
    let wrong = KeySet::new().with(VerifyingKey::hmac(b"another key of at least 32 bytes!!"));
    assert_eq!(
        verify(hs256, &wrong, &[Algorithm::HS256]).err(),
        Some(VerifyError::BadSignature)
    );
    // §4.3: ES512 on P-521: the key is not one this crate verifies with.
    let p521 = json!({"keys": [{"kty": "EC", "kid": "bilbo.baggins@hobbiton.example", "use": "sig",
        "crv": "P-521", "x": "AHKZLLOsCOzz5cY97ewNUajB957y-C-U88c3v13nmGZx6sYl_oJXu9A5RkTKqjqvjyekWF-7ytDyRXYgCF5cj0Kt", "y": "AdymlHvOiLxXkEhayXQnNCvDX4h9htZaCJN34kfmC6pV5OhQHiraVySsUdaQkAgDPrwQrJmbnX9cwlGfP-HqHZR1"}]});
    assert!(
        KeySet::from_jwks(p521.to_string().as_bytes())
            .unwrap()
            .keys()
            .is_empty()
    );
    let es512 = "eyJhbGciOiJFUzUxMiIsImtpZCI6ImJpbGJvLmJhZ2dpbnNAaG9iYml0b24uZXhhbXBsZSJ9.SXTigJlzIGEgZGFuZ2Vyb3VzIGJ1c2luZXNzLCBGcm9kbywgZ29pbmcgb3V0IHlvdXIgZG9vci4gWW91IHN0ZXAgb250byB0aGUgcm9hZCwgYW5kIGlmIHlvdSBkb24ndCBrZWVwIHlvdXIgZmVldCwgdGhlcmXigJlzIG5vIGtub3dpbmcgd2hlcmUgeW91IG1pZ2h0IGJlIHN3ZXB0IG9mZiB0by4.AE_R_YZCChjn4791jSQCrdPZCNYqHXCTZH0-JZGYNlaAjP2kqaluUIIUnC9qvbu9Plon7KRTzoNEuT4Va2cmL1eJAQy3mtPBu_u_sDDyYjnAMDxXPn7XrT0lw-kvAD890jl8e2puQens_IEKBpHABlsbEPX6sFY8OcGDqoRuBomu9xQ2";
    assert!(matches!(
        verify(es512, &keys, &[Algorithm::RS256]),
        Err(VerifyError::UnknownAlgorithm(_))
    ));
}

#[test]
fn rfc7515_known_answers() {
    // A.1: HS256 with the RFC's key.
    let secret = base64::engine::general_purpose::URL_SAFE_NO_PAD
        .decode("AyM1SysPpbyDfgZld3umj1qzKObwVMkoqQ-EstJQLr_T-1qS0gZH75aKtMN3Yj0iPS4hcgUuTwjAzZr1Z9CAow")
        .unwrap();
    let a1 = "eyJ0eXAiOiJKV1QiLA0KICJhbGciOiJIUzI1NiJ9.eyJpc3MiOiJqb2UiLA0KICJleHAiOjEzMDA4MTkzODAsDQogImh0dHA6Ly9leGFtcGxlLmNvbS9pc19yb290Ijp0cnVlfQ.dBjftJeZ4CVP-mB92K27uhbUJU1p1r_wW1gFWFOEjXk";
    let v = verify(
        a1,
        &KeySet::new().with(VerifyingKey::hmac(&secret)),
        &[Algorithm::HS256],
    )
    .unwrap();
    assert_eq!(v.claims()["iss"], "joe");
    assert_eq!(v.claims()["http://example.com/is_root"], true);

    // A.2: RS256, the RFC's signature, verified with the public half of the RFC's key.
    let key = SigningKey::from_pem(&key_file("rfc7515-a2-pkcs1.pem"), Algorithm::RS256).unwrap();
    let a2 = "eyJhbGciOiJSUzI1NiJ9.eyJpc3MiOiJqb2UiLA0KICJleHAiOjEzMDA4MTkzODAsDQogImh0dHA6Ly9leGFtcGxlLmNvbS9pc19yb290Ijp0cnVlfQ.cC4hiUPoj9Eetdgtv3hF80EGrhuB__dzERat0XF9g2VtQgr9PJbu3XOiZj5RZmh7AAuHIm4Bh-0Qc_lF5YKt_O8W2Fp5jujGbds9uJdbF9CUAr7t1dnZcAcQjbKBYNX4BAynRFdiuB--f_nZLgrnbyTyWzO75vRK5h6xBArLIARNPvkSjtQBMHlb1L07Qe7K0GarZRmB_eSN9383LcOLn6_dO--xi12jzDwusC-eOkHWEsqtFZESc6BfI7noOPqvhJ1phCnvWh6IeYI2w9QOYEUipUTI8np6LbgGY9Fs98rqVt5AXLIhWkWywlVmtVrBp0igcN_IoypGlUPQGe77Rw";
    let keys = KeySet::new().with(VerifyingKey::from_jwk(&key.public_jwk().unwrap()).unwrap());
    assert_eq!(
        verify(a2, &keys, &[Algorithm::RS256]).unwrap().claims()["iss"],
        "joe"
    );

    // A.3: ES256 with the RFC's public key (x, y) and signature.
    let p256 = json!({
        "kty": "EC", "crv": "P-256",
        "x": "f83OJ3D2xF1Bg8vub9tLe1gHMzV76e8Tus9uPHvRVEU",
        "y": "x_FEzRu9m36HLN_tue659LNpXW6pCyStikYjKIWI5a0",
    });
    let a3 = "eyJhbGciOiJFUzI1NiJ9.eyJpc3MiOiJqb2UiLA0KICJleHAiOjEzMDA4MTkzODAsDQogImh0dHA6Ly9leGFtcGxlLmNvbS9pc19yb290Ijp0cnVlfQ.DtEhU3ljbEg8L38VWAfUAqOyKAM6-Xx-F4GawxaepmXFCgfTjDxw5djxLa8ISlSApmWQxfKTUJqPP3-Kg6NU1Q";
    let keys = KeySet::new().with(VerifyingKey::from_jwk(&p256).unwrap());
    assert_eq!(
        verify(a3, &keys, &[Algorithm::ES256]).unwrap().claims()["iss"],
        "joe"
    );
}

#[test]
fn rfc8037_a4_ed25519_known_answer() {
    let okp =
        json!({"kty": "OKP", "crv": "Ed25519", "x": "11qYAYKxCrfVS_7TyWQHOg7hcvPapiMlrwIaaPcHURo"});
    let keys = KeySet::new().with(VerifyingKey::from_jwk(&okp).unwrap());
    let token = "eyJhbGciOiJFZERTQSJ9.RXhhbXBsZSBvZiBFZDI1NTE5IHNpZ25pbmc.hgyY0il_MGCjP0JzlnLWG1PPOt7-09PGcvMg3AIbQR6dWbhijcNR4ki4iylGjg5BhVsPt9g7sVvpAr_MuM0KAg";
    // The signature verifies; the payload ("Example of Ed25519 signing") is not a claims set.
    assert_eq!(
        verify(token, &keys, &[Algorithm::EdDSA]).unwrap_err(),
        VerifyError::Malformed("the payload is not a base64url JSON object")
    );
    let forged = token.replace(".hgyY0", ".hgyY1");
    assert_eq!(
        verify(&forged, &keys, &[Algorithm::EdDSA]).unwrap_err(),
        VerifyError::BadSignature
    );
}

fn token(header: Value, claims: Value, key: &SigningKey) -> String {
    let mut h = Header::new().typ("JWT").kid(None);
    if let Value::Object(map) = header {
        for (k, v) in map {
            h = h.param(k, v);
        }
    }
    sign_compact(key, &h, claims.as_object().unwrap()).unwrap()
}

#[test]
fn confusion_and_refusals_are_typed() {
    let es = SigningKey::from_pem(&key_file("p256-pkcs8.pem"), Algorithm::ES256).unwrap();
    let keys = keys_for(Algorithm::ES256, &es);
    let claims = json!({"sub": "alice"});
    let good = token(json!({}), claims.clone(), &es);
    assert!(verify(&good, &keys, &[Algorithm::ES256]).is_ok());
    // The caller did not allow ES256.
    assert_eq!(
        verify(&good, &keys, &[Algorithm::RS256]).unwrap_err(),
        VerifyError::AlgorithmNotAllowed(Algorithm::ES256)
    );
    // alg none, in any case, with or without a signature.
    let (_, rest) = good.split_once('.').unwrap();
    for none in ["none", "None", "NONE"] {
        let h = b64(format!(r#"{{"alg":"{none}"}}"#).as_bytes());
        let payload = rest.split_once('.').unwrap().0;
        for t in [format!("{h}.{payload}."), format!("{h}.{payload}.c2ln")] {
            assert_eq!(
                verify(&t, &keys, &[Algorithm::ES256]).unwrap_err(),
                VerifyError::Unsigned
            );
        }
    }
    // The classic confusion: an HS256 token "signed" with the public key's text as the secret,
    // offered to a set that holds only the EC key: no key of the right type, whatever the
    // caller allowed.
    let public_text = es.public_jwk().unwrap().to_string();
    let hs = SigningKey::hmac(public_text.as_bytes(), Algorithm::HS256).unwrap();
    let confused = token(json!({}), claims.clone(), &hs);
    assert_eq!(
        verify(&confused, &keys, &[Algorithm::ES256, Algorithm::HS256]).unwrap_err(),
        VerifyError::NoKey { kid: None }
    );
    // A header naming its own key.
    for (name, value) in [
        ("jwk", es.public_jwk().unwrap()),
        ("jku", json!("https://evil.example/jwks")),
        ("x5u", json!("https://evil.example/cert")),
        ("x5c", json!(["MIIB"])),
    ] {
        let t = token(json!({ name: value }), claims.clone(), &es);
        assert!(
            matches!(verify(&t, &keys, &[Algorithm::ES256]).unwrap_err(), VerifyError::EmbeddedKey(n) if n == name),
            "{name}"
        );
    }
    // An unknown critical extension.
    let t = token(
        json!({"crit": ["exp-ext"], "exp-ext": 1}),
        claims.clone(),
        &es,
    );
    assert_eq!(
        verify(&t, &keys, &[Algorithm::ES256]).unwrap_err(),
        VerifyError::UnknownCritical("exp-ext".into())
    );
    // An unknown kid (the server may have rotated its keys).
    let kid_keys = KeySet::from_jwks(
        json!({"keys": [es.public_jwk().unwrap()]})
            .to_string()
            .as_bytes(),
    )
    .unwrap();
    assert!(kid_keys.contains_kid(es.kid().unwrap()));
    let t = token(json!({"kid": "rotated-away"}), claims, &es);
    assert_eq!(
        verify(&t, &kid_keys, &[Algorithm::ES256]).unwrap_err(),
        VerifyError::NoKey {
            kid: Some("rotated-away".into())
        }
    );
    // Size and shape.
    let huge = format!("{}.{}.{}", "a".repeat(40_000), "b".repeat(40_000), "c");
    assert_eq!(
        verify(&huge, &keys, ALL).unwrap_err(),
        VerifyError::TooLarge
    );
    for bad in ["", "a.b", "a.b.c.d", "!!.e30.sig", "e30.e30.sig"] {
        assert!(
            matches!(
                verify(bad, &keys, ALL).unwrap_err(),
                VerifyError::Malformed(_)
            ),
            "{bad}"
        );
    }
    // Errors and keys never show key material.
    let hmac = VerifyingKey::hmac(b"a-very-secret-client-secret-value");
    assert!(!format!("{hmac:?}").contains("very-secret"));
}

#[test]
fn jwk_sets_keep_only_signature_keys_they_understand() {
    let es = SigningKey::from_pem(&key_file("p256-pkcs8.pem"), Algorithm::ES256).unwrap();
    let ed = SigningKey::from_pem(&key_file("ed25519-pkcs8.pem"), Algorithm::EdDSA).unwrap();
    let mut enc = es.public_jwk().unwrap();
    enc["use"] = json!("enc");
    enc["kid"] = json!("enc-key");
    let mut wrap_only = ed.public_jwk().unwrap();
    wrap_only["key_ops"] = json!(["wrapKey"]);
    wrap_only["kid"] = json!("wrap-key");
    let mut verify_ops = ed.public_jwk().unwrap();
    verify_ops["key_ops"] = json!(["verify"]);
    let jwks = json!({"keys": [
        es.public_jwk().unwrap(),
        enc,
        wrap_only,
        verify_ops,
        {"kty": "EC", "crv": "secp256k1", "x": "AA", "y": "AA"},
        {"kty": "RSA", "n": "AQAB", "e": "AQAB"},
        {"kty": "oct", "k": "c2VjcmV0"},
        {"kty": "EC", "crv": "P-256", "x": "f83OJ3D2xF1Bg8vub9tLe1gHMzV76e8Tus9uPHvRVEU", "y": "x_FEzRu9m36HLN_tue659LNpXW6pCyStikYjKIWI5a0", "alg": "RS256"},
        "not an object",
    ]});
    let keys = KeySet::from_jwks(jwks.to_string().as_bytes()).unwrap();
    let kids: Vec<_> = keys
        .keys()
        .iter()
        .map(|k| k.kid().map(str::to_owned))
        .collect();
    assert_eq!(
        kids,
        [es.kid().map(str::to_owned), ed.kid().map(str::to_owned)]
    );
    assert_eq!(
        KeySet::from_jwks(b"[]").unwrap_err(),
        JwkError::Missing("keys")
    );
    assert_eq!(
        KeySet::from_jwks(b"nope").unwrap_err(),
        JwkError::NotAnObject
    );
    // A key's own alg restricts it.
    let mut pinned = es.public_jwk().unwrap();
    pinned["alg"] = json!("ES256");
    let key = VerifyingKey::from_jwk(&pinned).unwrap();
    assert!(key.fits(Algorithm::ES256));
    assert!(!key.fits(Algorithm::ES384));
}

#[test]
fn at_hash_known_answer() {
    // OpenID Connect Core appendix A.3 (id_token + token, RS256).
    let access_token = "jHkWEdUXMU1BwAsC4vtUsZwnNvTIxEl0z9K3vx5KF0Y";
    assert!(jwt_assertion::verify::token_hash_matches(
        Algorithm::RS256,
        "77QmUPtjPfzWtF2AnpK9RQ",
        access_token
    ));
    assert!(!jwt_assertion::verify::token_hash_matches(
        Algorithm::RS256,
        "77QmUPtjPfzWtF2AnpK9RQ",
        "another-token"
    ));
    assert!(!jwt_assertion::verify::token_hash_matches(
        Algorithm::RS384,
        "77QmUPtjPfzWtF2AnpK9RQ",
        access_token
    ));
}

proptest::proptest! {
    #[test]
    fn verification_never_panics(token in "\\PC{0,300}", dots in 0usize..4) {
        let keys = KeySet::new().with(VerifyingKey::hmac(b"k"));
        let t = format!("{token}{}", ".".repeat(dots));
        let _ = verify(&t, &keys, ALL);
    }

    #[test]
    fn jwks_parsing_never_panics(bytes in proptest::collection::vec(proptest::num::u8::ANY, 0..400)) {
        let _ = KeySet::from_jwks(&bytes);
    }
}

/// A JWT whose header or claims name a member twice is refused even with a valid signature:
/// the issuer and this verifier could read different values (RFC 8259 §4 leaves it open).
#[test]
fn a_member_named_twice_is_refused() {
    let es = SigningKey::from_pem(&key_file("p256-pkcs8.pem"), Algorithm::ES256).unwrap();
    let keys = keys_for(Algorithm::ES256, &es);
    let signed = |header: &str, claims: &str| {
        let input = format!("{}.{}", b64(header.as_bytes()), b64(claims.as_bytes()));
        let sig = es.sign(input.as_bytes()).unwrap();
        format!("{input}.{}", b64(sig.as_ref()))
    };
    let header = r#"{"alg":"ES256","typ":"JWT"}"#;
    assert!(
        verify(
            &signed(header, r#"{"sub":"alice"}"#),
            &keys,
            &[Algorithm::ES256]
        )
        .is_ok()
    );
    for (header, claims) in [
        (header, r#"{"sub":"alice","sub":"admin"}"#),
        (header, r#"{"sub":"alice","cnf":{"jkt":"a","jkt":"b"}}"#),
        (
            r#"{"alg":"ES256","typ":"JWT","typ":"at+jwt"}"#,
            r#"{"sub":"alice"}"#,
        ),
    ] {
        assert!(
            matches!(
                verify(&signed(header, claims), &keys, &[Algorithm::ES256]),
                Err(VerifyError::Malformed(_))
            ),
            "{header} {claims}"
        );
    }
    // A JWK set naming a member twice, at any depth.
    let jwk = es.public_jwk().unwrap();
    let set = format!(r#"{{"keys":[{jwk}],"keys":[]}}"#);
    assert!(KeySet::from_jwks(set.as_bytes()).is_err());
    let mut one = jwk.to_string();
    one.insert_str(1, r#""kty":"EC","#);
    assert!(
        KeySet::from_jwks(format!(r#"{{"keys":[{one}]}}"#).as_bytes()).is_err(),
        "{one}"
    );
}
