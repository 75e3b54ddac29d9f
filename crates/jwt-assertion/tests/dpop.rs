//! DPoP proofs (RFC 9449): made by `DpopKey`, checked by `verify_proof` and by an independent
//! implementation (the `jsonwebtoken` crate, RustCrypto backend, with the proof's own `jwk`);
//! RFC 9449's thumbprint and `ath` examples; every refusal.
#![allow(clippy::unwrap_used, clippy::expect_used, clippy::panic)]

use std::time::{Duration, SystemTime};

use base64::Engine as _;
use jwt_assertion::dpop::{DpopError, ProofCheck, access_token_hash, jwk_thumbprint, verify_proof};
use jwt_assertion::{Algorithm, DpopKey, SigningKey};
use oauth_core::ProofContext;
use serde_json::{Value, json};

const RSA: &str = include_str!("keys/rsa2048-pkcs8.pem");
const HTU: &str = "https://api.example/v1/things";

fn now() -> SystemTime {
    SystemTime::now()
}

fn part(token: &str, i: usize) -> Value {
    let segment = token.split('.').nth(i).unwrap();
    serde_json::from_slice(
        &base64::engine::general_purpose::URL_SAFE_NO_PAD
            .decode(segment)
            .unwrap(),
    )
    .unwrap()
}

fn keys() -> Vec<DpopKey> {
    vec![
        DpopKey::generate().unwrap(),
        DpopKey::generate_for(Algorithm::ES384).unwrap(),
        DpopKey::generate_for(Algorithm::EdDSA).unwrap(),
        DpopKey::new(SigningKey::from_pem(RSA, Algorithm::RS256).unwrap()).unwrap(),
        DpopKey::new(SigningKey::from_pem(RSA, Algorithm::PS256).unwrap()).unwrap(),
    ]
}

fn proof(key: &DpopKey, token: Option<&str>, nonce: Option<&str>) -> String {
    key.sign(
        &ProofContext::new("GET", HTU, now())
            .nonce(nonce)
            .access_token(token),
    )
    .unwrap()
}

#[test]
fn rfc_9449_examples() {
    // §6.1: the example key's thumbprint, as cnf.jkt.
    let jwk = json!({"kty": "EC", "x": "l8tFrhx-34tV3hRICRDY9zCkDlpBhF42UQUfWVAWBFs",
        "y": "9VE4jf_Ok_o64zbTTlcuNJajHmt6v9TDVrU0CdvGRDA", "crv": "P-256"});
    assert_eq!(
        jwk_thumbprint(jwk.as_object().unwrap()).as_deref(),
        Some("0ZcOCORZNYy-DWpqq30jZyJGHTN0d2HglBV3uiguA4I")
    );
    // §7.1: the example access token's ath.
    assert_eq!(
        access_token_hash("Kz~8mXK1EalYznwH-LC-1fBAo.4Ljp~zsPE_NeO.gxU"),
        "fUHyO2r2Z3DZ53EsNrWBb0xWXoaNy59IiKCAqksmQEo"
    );
}

/// Selects jsonwebtoken's RustCrypto backend, the independent implementation, for this test
/// binary. Built alone, these tests have only that backend; in a workspace build the benchmarks
/// turn on its aws-lc-rs backend too, and with both on jsonwebtoken picks neither by itself.
fn independent_backend() {
    // An error means a provider is installed already: this one, by another test.
    let _ = jsonwebtoken::crypto::rust_crypto::DEFAULT_PROVIDER.install_default();
}

#[test]
fn proofs_check_out_here_and_with_jsonwebtoken() {
    independent_backend();
    for key in keys() {
        let token = "an-access-token";
        let p = proof(&key, Some(token), Some("n-1"));
        let header = part(&p, 0);
        let claims = part(&p, 1);
        assert_eq!(header["typ"], "dpop+jwt");
        assert!(header.get("kid").is_none());
        let jwk = header["jwk"].as_object().unwrap();
        assert!(!jwk.contains_key("d") && !jwk.contains_key("p"), "{jwk:?}");
        assert_eq!(claims["htm"], "GET");
        assert_eq!(claims["htu"], HTU);
        assert_eq!(claims["nonce"], "n-1");
        assert_eq!(claims["ath"], access_token_hash(token));
        // The thumbprint the server binds to is the one the client announces.
        assert_eq!(jwk_thumbprint(jwk).as_deref(), Some(key.jkt()));

        let checked = verify_proof(
            &p,
            &ProofCheck::new("GET", HTU, now())
                .access_token(token)
                .nonce("n-1"),
        )
        .unwrap();
        assert_eq!(checked.jkt, key.jkt());
        // A fresh jti every time.
        let again = verify_proof(
            &proof(&key, Some(token), Some("n-1")),
            &ProofCheck::new("GET", HTU, now()),
        )
        .unwrap();
        assert_ne!(checked.jti, again.jti);

        // jsonwebtoken, from the proof's own jwk.
        let their_jwk: jsonwebtoken::jwk::Jwk =
            serde_json::from_value(header["jwk"].clone()).unwrap();
        let decoding = jsonwebtoken::DecodingKey::from_jwk(&their_jwk).unwrap();
        let alg: jsonwebtoken::Algorithm = header["alg"].as_str().unwrap().parse().unwrap();
        let mut validation = jsonwebtoken::Validation::new(alg);
        validation.required_spec_claims.clear();
        validation.validate_exp = false;
        let decoded = jsonwebtoken::decode::<Value>(&p, &decoding, &validation)
            .unwrap_or_else(|e| panic!("{alg:?}: {e}"));
        assert_eq!(decoded.claims["htu"], HTU);
    }
}

#[test]
fn every_refusal_has_its_error() {
    let key = DpopKey::generate().unwrap();
    let token = "tok";
    let good = proof(&key, Some(token), None);
    let check = || ProofCheck::new("GET", HTU, now()).access_token(token);
    assert!(verify_proof(&good, &check()).is_ok());

    let b64 = |v: &Value| base64::engine::general_purpose::URL_SAFE_NO_PAD.encode(v.to_string());
    let parts: Vec<&str> = good.split('.').collect();
    let with_header = |h: Value| format!("{}.{}.{}", b64(&h), parts[1], parts[2]);
    let header = part(&good, 0);
    let mut claims = part(&good, 1);

    let mut no_typ = header.clone();
    no_typ["typ"] = json!("JWT");
    let mut none = header.clone();
    none["alg"] = json!("none");
    let mut hs = header.clone();
    hs["alg"] = json!("HS256");
    let mut private = header.clone();
    private["jwk"]["d"] = json!("c2VjcmV0");
    let mut no_jwk = header.clone();
    no_jwk.as_object_mut().unwrap().remove("jwk");
    let other_key = DpopKey::generate().unwrap();
    let mut swapped = header;
    swapped["jwk"] = other_key.public_jwk().clone();
    claims["htm"] = json!("POST");
    let resigned_claims = format!("{}.{}.{}", parts[0], b64(&claims), parts[2]);

    let cases: Vec<(&str, String, ProofCheck<'_>, DpopError)> = vec![
        ("typ", with_header(no_typ), check(), DpopError::Type),
        ("alg none", with_header(none), check(), DpopError::Algorithm),
        ("HS256", with_header(hs), check(), DpopError::Algorithm),
        ("private jwk", with_header(private), check(), DpopError::Key),
        ("no jwk", with_header(no_jwk), check(), DpopError::Key),
        (
            "another key",
            with_header(swapped),
            check(),
            DpopError::Signature,
        ),
        (
            "changed claims",
            resigned_claims,
            check(),
            DpopError::Signature,
        ),
        (
            "method",
            good.clone(),
            ProofCheck::new("POST", HTU, now()).access_token(token),
            DpopError::Method,
        ),
        (
            "url",
            good.clone(),
            ProofCheck::new("GET", "https://api.example/v1/other", now()).access_token(token),
            DpopError::Url,
        ),
        (
            "stale",
            good.clone(),
            ProofCheck::new("GET", HTU, now() + Duration::from_secs(120)).access_token(token),
            DpopError::Stale,
        ),
        (
            "future",
            good.clone(),
            ProofCheck::new("GET", HTU, now() - Duration::from_secs(120)).access_token(token),
            DpopError::Stale,
        ),
        (
            "ath",
            good.clone(),
            ProofCheck::new("GET", HTU, now()).access_token("another"),
            DpopError::AccessTokenHash,
        ),
        (
            "nonce",
            good.clone(),
            check().nonce("server-nonce"),
            DpopError::Nonce,
        ),
        (
            "garbage",
            "a.b".to_owned(),
            check(),
            DpopError::Malformed("the proof is not a compact JWS"),
        ),
    ];
    for (name, proof, check, want) in cases {
        assert_eq!(verify_proof(&proof, &check).err(), Some(want), "{name}");
    }
    // No ath when a token is presented.
    let without_ath = proof_without_token(&key);
    assert_eq!(
        verify_proof(&without_ath, &check()).err(),
        Some(DpopError::AccessTokenHash)
    );
    // HMAC keys cannot make proofs.
    assert!(
        DpopKey::new(
            SigningKey::hmac(b"a secret of at least 32 bytes long!!", Algorithm::HS256).unwrap()
        )
        .is_err()
    );
}

fn proof_without_token(key: &DpopKey) -> String {
    proof(key, None, None)
}

/// A proof whose header or claims name a member twice is refused, signature valid or not.
#[test]
fn a_proof_naming_a_member_twice_is_refused() {
    let b64 = |b: &[u8]| base64::engine::general_purpose::URL_SAFE_NO_PAD.encode(b);
    let key = SigningKey::generate(Algorithm::ES256).unwrap();
    let jwk = key.public_jwk().unwrap();
    let iat = now()
        .duration_since(std::time::UNIX_EPOCH)
        .unwrap()
        .as_secs();
    let signed = |header: String, claims: String| {
        let input = format!("{}.{}", b64(header.as_bytes()), b64(claims.as_bytes()));
        let sig = key.sign(input.as_bytes()).unwrap();
        format!("{input}.{}", b64(sig.as_ref()))
    };
    let header = format!(r#"{{"typ":"dpop+jwt","alg":"ES256","jwk":{jwk}}}"#);
    let claims =
        |extra: &str| format!(r#"{{"jti":"j-1","htm":"GET","htu":"{HTU}","iat":{iat}{extra}}}"#);
    let check = ProofCheck::new("GET", HTU, now());
    assert!(verify_proof(&signed(header.clone(), claims("")), &check).is_ok());
    for proof in [
        signed(
            header.clone(),
            claims(r#","htu":"https://elsewhere.example/""#),
        ),
        signed(header, claims(r#","jti":"j-2""#)),
        signed(
            format!(r#"{{"typ":"dpop+jwt","alg":"ES256","alg":"ES256","jwk":{jwk}}}"#),
            claims(""),
        ),
    ] {
        assert!(
            matches!(verify_proof(&proof, &check), Err(DpopError::Malformed(_))),
            "{proof}"
        );
    }
}

/// The `iat` window's edges on simulated time: a proof made at `T` is accepted from `T - w`
/// to `T + w` inclusive (its clock may be ahead or behind), and refused a second outside.
#[test]
fn the_window_edges_on_simulated_time() {
    let key = DpopKey::generate().unwrap();
    let made = SystemTime::UNIX_EPOCH + Duration::from_secs(1_800_000_000);
    let proof = key.sign(&ProofContext::new("GET", HTU, made)).unwrap();
    let window = Duration::from_secs(30);
    let check =
        |at: SystemTime| verify_proof(&proof, &ProofCheck::new("GET", HTU, at).window(window));
    for edge in [made, made + window, made - window] {
        assert!(check(edge).is_ok(), "{edge:?}");
    }
    for outside in [
        made + window + Duration::from_secs(1),
        made - window - Duration::from_secs(1),
    ] {
        assert_eq!(check(outside).unwrap_err(), DpopError::Stale);
    }
}
