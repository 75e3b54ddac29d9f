//! JAR (RFC 9101): request objects built by oauth-core's `AuthorizationRequest`, signed by
//! `ClientAssertionSigner`, then verified with this crate's `verify` and read claim by claim.
#![allow(clippy::unwrap_used, clippy::expect_used, clippy::panic)]

use std::sync::Arc;
use std::time::{Duration, SystemTime};

use jwt_assertion::verify::{KeySet, VerifyingKey, verify};
use jwt_assertion::{Algorithm, ClientAssertionSigner, RingRandom, SigningKey};
use oauth_core::authorization_details::{AuthorizationDetail, AuthorizationDetails};
use oauth_core::client::authorization::AuthorizationRequest;
use oauth_core::{Client, ClientAuthentication, ClientSecret, Endpoint};
use serde_json::json;

const ISSUER: &str = "https://as.example";

fn keys() -> Vec<SigningKey> {
    let rsa = include_str!("keys/rsa2048-pkcs8.pem");
    vec![
        SigningKey::from_pem(rsa, Algorithm::RS256).unwrap(),
        SigningKey::from_pem(rsa, Algorithm::PS256).unwrap(),
        SigningKey::from_pem(include_str!("keys/p256-pkcs8.pem"), Algorithm::ES256).unwrap(),
        SigningKey::from_pem(include_str!("keys/ed25519-pkcs8.pem"), Algorithm::EdDSA).unwrap(),
    ]
}

/// An independent decoder of a query string or form body.
fn pairs(text: &str) -> Vec<(String, String)> {
    let decode = |s: &str| {
        let s = s.replace('+', " ");
        let bytes = s.as_bytes();
        let mut out = Vec::new();
        let mut i = 0;
        while i < bytes.len() {
            if bytes[i] == b'%' {
                out.push(u8::from_str_radix(&s[i + 1..i + 3], 16).unwrap());
                i += 3;
            } else {
                out.push(bytes[i]);
                i += 1;
            }
        }
        String::from_utf8(out).unwrap()
    };
    text.split('&')
        .map(|pair| {
            let (n, v) = pair.split_once('=').unwrap();
            (decode(n), decode(v))
        })
        .collect()
}

fn query(url: &str) -> Vec<(String, String)> {
    pairs(url.split_once('?').unwrap().1)
}

fn details() -> AuthorizationDetails {
    AuthorizationDetails::new().with(
        AuthorizationDetail::new("payment_initiation")
            .actions(["initiate"])
            .member(
                "instructedAmount",
                json!({"currency": "EUR", "amount": "12.00"}),
            ),
    )
}

fn at() -> SystemTime {
    SystemTime::UNIX_EPOCH + Duration::from_secs(1_800_000_000)
}

#[test]
fn request_objects_verify_with_every_algorithm_and_carry_every_parameter() {
    for key in keys() {
        let alg = key.algorithm();
        let jwk = key.public_jwk().unwrap();
        let set = KeySet::new().with(VerifyingKey::from_jwk(&jwk).unwrap());
        let pending = AuthorizationRequest::new(
            Endpoint::new("https://as.example/authorize").unwrap(),
            "app",
        )
        .redirect_uri("https://app.example/cb")
        .scope(["openid", "payments"])
        .authorization_details(details())
        .param("max_age", "300")
        .param("prompt", "login")
        .request_object(ClientAssertionSigner::new(key), ISSUER)
        .build_at(&RingRandom::new(), at())
        .unwrap();

        // Only client_id and request on the URL (RFC 9101 §5.1).
        let params = query(pending.url());
        let names: Vec<&str> = params.iter().map(|(n, _)| n.as_str()).collect();
        assert_eq!(names, ["client_id", "request"], "{alg:?}");
        assert_eq!(params[0].1, "app");

        let verified = verify(&params[1].1, &set, &[alg]).unwrap();
        assert_eq!(verified.alg(), alg);
        assert_eq!(verified.header()["typ"], "oauth-authz-req+jwt");
        assert_eq!(verified.header()["kid"], jwk["kid"]);
        let c = verified.claims();
        assert_eq!(c["iss"], "app");
        assert_eq!(c["aud"], ISSUER);
        assert_eq!(c["iat"], 1_800_000_000u64);
        assert_eq!(c["nbf"], 1_800_000_000u64);
        assert_eq!(c["exp"], 1_800_000_060u64);
        assert!(c["jti"].as_str().unwrap().len() >= 32);
        assert_eq!(c["response_type"], "code");
        assert_eq!(c["client_id"], "app");
        assert_eq!(c["redirect_uri"], "https://app.example/cb");
        assert_eq!(c["scope"], "openid payments");
        assert_eq!(c["state"], pending.state().expose_secret());
        assert_eq!(c["nonce"], pending.nonce().unwrap().expose_secret());
        assert_eq!(c["code_challenge_method"], "S256");
        assert_eq!(c["code_challenge"].as_str().unwrap().len(), 43);
        assert_eq!(c["prompt"], "login");
        assert_eq!(c["max_age"], 300);
        // The array itself, not a string holding it.
        assert_eq!(
            AuthorizationDetails::from_value(c["authorization_details"].clone()).unwrap(),
            details()
        );
        // What the pending authorization reads back still works from the object.
        assert!(pending.requests_openid());
        assert_eq!(pending.max_age(), Some(Duration::from_secs(300)));
        // Not with another algorithm allowed only.
        let other = if alg == Algorithm::ES256 {
            Algorithm::EdDSA
        } else {
            Algorithm::ES256
        };
        assert!(verify(&params[1].1, &set, &[other]).is_err());
    }
}

#[test]
fn another_key_does_not_verify_it() {
    let key = SigningKey::generate(Algorithm::ES256).unwrap();
    let other = SigningKey::generate(Algorithm::ES256).unwrap();
    let pending = AuthorizationRequest::new(Endpoint::new("https://as.example/a").unwrap(), "app")
        .request_object(ClientAssertionSigner::new(key), ISSUER)
        .build_at(&RingRandom::new(), at())
        .unwrap();
    let set = KeySet::new().with(VerifyingKey::from_jwk(&other.public_jwk().unwrap()).unwrap());
    assert!(verify(&query(pending.url())[1].1, &set, &[Algorithm::ES256]).is_err());
}

#[test]
fn a_fresh_jti_each_time_and_the_lifetime_is_configurable() {
    let key = Arc::new(
        SigningKey::from_pem(include_str!("keys/p256-pkcs8.pem"), Algorithm::ES256).unwrap(),
    );
    let set = KeySet::new().with(VerifyingKey::from_jwk(&key.public_jwk().unwrap()).unwrap());
    let mut seen = std::collections::HashSet::new();
    for _ in 0..3 {
        let pending =
            AuthorizationRequest::new(Endpoint::new("https://as.example/a").unwrap(), "app")
                .request_object(ClientAssertionSigner::new(Arc::clone(&key)), ISSUER)
                .request_object_lifetime(Duration::from_secs(30))
                .build_at(&RingRandom::new(), at())
                .unwrap();
        let request = &query(pending.url())[1].1;
        let c = verify(request, &set, &[Algorithm::ES256])
            .unwrap()
            .into_claims();
        assert_eq!(c["exp"], 1_800_000_030u64);
        assert!(seen.insert(c["jti"].as_str().unwrap().to_owned()));
    }
}

#[test]
fn a_request_object_needs_the_time_and_a_signer_that_signs_them() {
    let key = SigningKey::from_pem(include_str!("keys/p256-pkcs8.pem"), Algorithm::ES256).unwrap();
    let endpoint = Endpoint::new("https://as.example/a").unwrap();
    let err = AuthorizationRequest::new(endpoint.clone(), "app")
        .request_object(ClientAssertionSigner::new(key), ISSUER)
        .build(&RingRandom::new())
        .unwrap_err();
    assert!(err.to_string().contains("build_at"), "{err}");

    // A signer that does not implement request objects refuses: no unsigned object.
    #[derive(Debug)]
    struct OnlyAssertions;
    impl oauth_core::AssertionSigner for OnlyAssertions {
        fn sign(
            &self,
            _: &oauth_core::client::SigningContext<'_>,
        ) -> Result<oauth_core::Assertion, oauth_core::Error> {
            Ok(oauth_core::Assertion::new("x.y.z"))
        }
    }
    let err = AuthorizationRequest::new(endpoint, "app")
        .request_object(OnlyAssertions, ISSUER)
        .build_at(&RingRandom::new(), at())
        .unwrap_err();
    assert!(err.to_string().contains("request objects"), "{err}");
}

#[test]
fn pushed_the_body_carries_the_object_and_client_authentication() {
    let key =
        SigningKey::from_pem(include_str!("keys/ed25519-pkcs8.pem"), Algorithm::EdDSA).unwrap();
    let set = KeySet::new().with(VerifyingKey::from_jwk(&key.public_jwk().unwrap()).unwrap());
    let pending = AuthorizationRequest::new(Endpoint::new("https://as.example/a").unwrap(), "app")
        .authorization_details(details())
        .request_object(ClientAssertionSigner::new(key), ISSUER)
        .build_at(&RingRandom::new(), at())
        .unwrap();
    let client = Client::new(
        "app",
        ClientAuthentication::SecretPost(ClientSecret::new("s")),
    );
    let push = pending
        .push_request(
            &Endpoint::new("https://as.example/par").unwrap(),
            &client,
            at(),
        )
        .unwrap();
    let body = pairs(std::str::from_utf8(push.body().expose_secret()).unwrap());
    let names: Vec<&str> = body.iter().map(|(n, _)| n.as_str()).collect();
    assert_eq!(names, ["request", "client_id", "client_secret"]);
    let c = verify(&body[0].1, &set, &[Algorithm::EdDSA])
        .unwrap()
        .into_claims();
    assert_eq!(c["authorization_details"][0]["type"], "payment_initiation");
}

/// A parameter named like one of the object's own claims (`iss`, `aud`, `iat`, `nbf`, `exp`,
/// `jti`) is refused rather than silently replaced (found by the `request_object` fuzz target).
#[test]
fn a_parameter_cannot_stand_for_the_objects_own_claims() {
    let key = Arc::new(SigningKey::generate(Algorithm::ES256).unwrap());
    for name in ["iss", "aud", "iat", "nbf", "exp", "jti"] {
        let built =
            AuthorizationRequest::new(Endpoint::new("https://as.example/a").unwrap(), "app")
                .param(name, "x")
                .request_object(ClientAssertionSigner::new(Arc::clone(&key)), ISSUER)
                .build_at(&RingRandom::new(), at());
        assert_eq!(
            built.err(),
            Some(oauth_core::Error::DuplicateParameter { name: name.into() }),
            "{name}"
        );
    }
    // Without a request object they are plain parameters.
    assert!(
        AuthorizationRequest::new(Endpoint::new("https://as.example/a").unwrap(), "app")
            .param("aud", "x")
            .build(&RingRandom::new())
            .is_ok()
    );
}
