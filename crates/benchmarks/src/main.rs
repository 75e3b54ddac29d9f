//! Side-by-side benchmarks: this toolkit against the crates users would otherwise pick, each
//! pair measured in the same process with interleaved rounds, so that ratios hold on a noisy
//! machine. Prints Markdown; `cargo xtask bench` writes it to BENCHMARKS.md.
//!
//! `cargo run --release -p benchmarks [-- SECTION...]` with SECTION one of
//! `exchange`, `jwt`, `verify`, `dpop`, `herd`, `loopback`.
#![allow(
    clippy::unwrap_used,
    clippy::expect_used,
    clippy::panic,
    clippy::print_stdout,
    clippy::print_stderr
)]

use std::hint::black_box;
use std::sync::Arc;
use std::time::{Duration, Instant, SystemTime};

use base64::Engine as _;

const ROUNDS: usize = 15;

/// Runs every contender `iters` times per round, rounds interleaved; median ns per call.
fn compare(iters: u32, contenders: &mut [(&str, &mut dyn FnMut())]) -> Vec<f64> {
    let mut samples: Vec<Vec<f64>> = vec![Vec::with_capacity(ROUNDS); contenders.len()];
    for (_, f) in contenders.iter_mut() {
        for _ in 0..iters / 10 + 1 {
            f(); // warm up
        }
    }
    for _ in 0..ROUNDS {
        for (i, (_, f)) in contenders.iter_mut().enumerate() {
            let start = Instant::now();
            for _ in 0..iters {
                f();
            }
            samples[i].push(start.elapsed().as_nanos() as f64 / f64::from(iters));
        }
    }
    samples
        .into_iter()
        .map(|mut v| {
            v.sort_by(f64::total_cmp);
            v[v.len() / 2]
        })
        .collect()
}

fn table(title: &str, names: &[&str], medians: &[f64], reference: usize) {
    println!("\n### {title}\n");
    println!("| contender | median | ratio to {} |", names[reference]);
    println!("|---|---|---|");
    for (name, m) in names.iter().zip(medians) {
        let shown = if *m >= 10_000.0 {
            format!("{:.1} µs", m / 1000.0)
        } else {
            format!("{m:.0} ns")
        };
        println!("| {name} | {shown} | {:.2}× |", m / medians[reference]);
    }
}

fn token_body() -> Vec<u8> {
    let token = "x".repeat(900);
    format!(
        r#"{{"access_token":"{token}","token_type":"Bearer","expires_in":3600,"scope":"read"}}"#
    )
    .into_bytes()
}

fn json_response(status: u16, body: Vec<u8>) -> oauth_core::http::Response<Vec<u8>> {
    oauth_core::http::Response::builder()
        .status(status)
        .header("content-type", "application/json")
        .body(body)
        .unwrap()
}

/// 1. One client_credentials exchange in process, the error path, and the authorization URL.
fn exchange() {
    use oauth_core::{
        AuthorizationRequest, Client, ClientAuthentication, ClientSecret, Endpoint, TokenRequest,
        parse_token_response,
    };
    use oauth2::basic::BasicClient;
    use oauth2::{AuthUrl, CsrfToken, PkceCodeChallenge, RedirectUrl, TokenUrl};

    println!("\n## 1. One client_credentials exchange in process (no network)\n");
    println!(
        "Build the request (Basic client authentication, `scope=read`) and parse a canned answer \
         with a 900-character token. Per iteration each contender copies the same prebuilt \
         `http::Response<Vec<u8>>` (`clone()`: headers and the whole body, {} bytes for the \
         token answer) and reads its copy; oauth2 has to own the response its HTTP client \
         returns, so all three pay for that copy.\n\n\
         - oauth-core: `TokenRequest::client_credentials().scope([\"read\"]).build(..)` \
         (form body, Basic header, `http::Request`), then `parse_token_response` of the copy.\n\
         - oauth2 5.0: `exchange_client_credentials().add_scope(..).request(&http)`, its closure \
         HTTP client taking the built `http::Request` and returning the copy, which oauth2 \
         parses.\n\
         - floor: form-encode the body, build the Basic header, and `serde_json::from_slice` the \
         copy's body into a `Value` (what any implementation must do; no checks).",
        token_body().len()
    );
    let endpoint = Endpoint::new("https://as.example/token").unwrap();
    let client = Client::new(
        "my-client",
        ClientAuthentication::SecretBasic(ClientSecret::new("my-secret")),
    );
    let oauth2_client = BasicClient::new(oauth2::ClientId::new("my-client".into()))
        .set_client_secret(oauth2::ClientSecret::new("my-secret".into()))
        .set_auth_uri(AuthUrl::new("https://as.example/authorize".into()).unwrap())
        .set_token_uri(TokenUrl::new("https://as.example/token".into()).unwrap())
        .set_redirect_uri(RedirectUrl::new("https://app.example/cb".into()).unwrap());

    for (label, status, body) in [
        ("200 with a token", 200u16, token_body()),
        (
            "400 invalid_client",
            400,
            br#"{"error":"invalid_client","error_description":"Client authentication failed"}"#
                .to_vec(),
        ),
    ] {
        // One prebuilt response; every contender copies it once per call (oauth2's HTTP client
        // must return an owned response, so the others copy too rather than borrow).
        let canned = json_response(status, body);
        let ok = status == 200;
        let mut ours = || {
            let request = TokenRequest::client_credentials()
                .scope(["read"])
                .build(&endpoint, &client)
                .unwrap();
            black_box(&request);
            let response = black_box(&canned).clone();
            let parsed = parse_token_response(&response, SystemTime::UNIX_EPOCH);
            assert_eq!(parsed.is_ok(), ok);
            black_box(parsed.ok());
        };
        let http = |request: oauth2::HttpRequest| -> Result<oauth2::HttpResponse, std::io::Error> {
            black_box(&request);
            Ok(black_box(&canned).clone())
        };
        let mut theirs = || {
            let result = oauth2_client
                .exchange_client_credentials()
                .add_scope(oauth2::Scope::new("read".into()))
                .request(&http);
            assert_eq!(result.is_ok(), ok);
            black_box(result.ok());
        };
        let mut floor = || {
            let body = black_box("grant_type=client_credentials&scope=read").to_owned();
            let basic = format!(
                "Basic {}",
                base64::engine::general_purpose::STANDARD.encode("my-client:my-secret")
            );
            black_box((&body, &basic));
            let response = black_box(&canned).clone();
            let value: serde_json::Value = serde_json::from_slice(response.body()).unwrap();
            black_box(value);
        };
        let names = ["oauth-core", "oauth2 5.0", "floor"];
        let medians = compare(
            50_000,
            &mut [
                ("oauth-core", &mut ours),
                ("oauth2", &mut theirs),
                ("floor", &mut floor),
            ],
        );
        table(&format!("client_credentials, {label}"), &names, &medians, 0);
        println!(
            "\noauth2 / oauth-core = {:.2}×; oauth-core / floor = {:.2}×",
            medians[1] / medians[0],
            medians[0] / medians[2]
        );
    }

    let rng = oauth_reqwest::SystemRandom;
    let auth_endpoint = Endpoint::new("https://as.example/authorize").unwrap();
    let mut ours = || {
        let pending = AuthorizationRequest::new(auth_endpoint.clone(), "my-client")
            .redirect_uri("https://app.example/cb")
            .scope(["read"])
            .build(&rng)
            .unwrap();
        let _ = black_box(pending);
    };
    let mut theirs = || {
        let (challenge, verifier) = PkceCodeChallenge::new_random_sha256();
        let (url, state) = oauth2_client
            .authorize_url(CsrfToken::new_random)
            .add_scope(oauth2::Scope::new("read".into()))
            .set_pkce_challenge(challenge)
            .url();
        let _ = black_box((url, state, verifier));
    };
    // Where the time goes: the same build with the OS draw replaced by bytes drawn from the OS
    // once up front (a measurement aid, not a generator anyone should use).
    struct Pool(std::cell::RefCell<(Vec<u8>, usize)>);
    impl oauth_core::RandomSource for Pool {
        fn fill(&self, dest: &mut [u8]) -> Result<(), oauth_core::RandomError> {
            let mut pool = self.0.borrow_mut();
            let (bytes, at) = &mut *pool;
            if *at + dest.len() > bytes.len() {
                *at = 0;
            }
            dest.copy_from_slice(&bytes[*at..*at + dest.len()]);
            *at += dest.len();
            Ok(())
        }
        fn sha256(&self, data: &[u8]) -> [u8; 32] {
            oauth_core::RandomSource::sha256(&oauth_reqwest::SystemRandom, data)
        }
    }
    let mut bytes = vec![0u8; 1 << 20];
    oauth_core::RandomSource::fill(&rng, &mut bytes).unwrap();
    let pool = Pool(std::cell::RefCell::new((bytes, 0)));
    let mut pooled = || {
        let pending = AuthorizationRequest::new(auth_endpoint.clone(), "my-client")
            .redirect_uri("https://app.example/cb")
            .scope(["read"])
            .build(&pool)
            .unwrap();
        let _ = black_box(pending);
    };
    let names = [
        "oauth-core (getrandom per call)",
        "oauth2 5.0 (rand's ThreadRng)",
        "oauth-core, OS draw excluded",
    ];
    let medians = compare(
        20_000,
        &mut [
            ("oauth-core", &mut ours),
            ("oauth2", &mut theirs),
            ("pooled", &mut pooled),
        ],
    );
    table(
        "Authorization URL with PKCE S256 and state (randomness included)",
        &names,
        &medians,
        0,
    );
    println!(
        "\noauth2 / oauth-core = {:.2}×; without the OS draw: oauth2 / oauth-core = {:.2}×. \
         oauth-core asks the OS for every `state`, `nonce` and verifier (one `getrandom` per \
         authorization request): no userspace generator whose state a `fork` or a VM snapshot \
         would duplicate (rand's ThreadRng is not reseeded on fork).",
        medians[1] / medians[0],
        medians[1] / medians[2]
    );
}

fn pem_der(pem: &str) -> Vec<u8> {
    let b64: String = pem.lines().filter(|l| !l.starts_with("-----")).collect();
    base64::engine::general_purpose::STANDARD
        .decode(b64)
        .unwrap()
}

/// The signing input of a compact JWS (everything before the last dot).
fn signing_input(jwt: &str) -> Vec<u8> {
    jwt.rsplit_once('.').unwrap().0.as_bytes().to_vec()
}

/// Prints what each JWT library spends above its own crypto library's floor.
fn above_floor(ours: f64, ring: f64, theirs: f64, aws_lc: f64, aws_lc_parse: f64, what: &str) {
    let us = |ns: f64| ns / 1000.0;
    println!(
        "\njsonwebtoken / jwt-assertion = {:.2}×. Above its own crypto library's floor: \
         jwt-assertion {:+.1} µs over raw ring ({:.2}×), jsonwebtoken {:+.1} µs over raw \
         aws-lc-rs ({:.2}×). Parsing the key for every {what}, as jsonwebtoken's backend does, \
         costs raw aws-lc-rs {:+.1} µs by itself (a separate row, so noise can put it above \
         jsonwebtoken's whole excess).",
        theirs / ours,
        us(ours - ring),
        ours / ring,
        us(theirs - aws_lc),
        theirs / aws_lc,
        us(aws_lc_parse - aws_lc),
    );
}

/// Claims for jsonwebtoken: what `JwtClaims::client_assertion` puts in an assertion.
#[derive(serde::Serialize)]
struct AssertionClaims<'a> {
    iss: &'a str,
    sub: &'a str,
    aud: &'a str,
    iat: u64,
    exp: u64,
    jti: String,
}

/// 2. JWT assertion signing.
fn jwt() {
    use aws_lc_rs::signature as lc;
    use jwt_assertion::{Algorithm, JwtClaims, SigningKey};
    use ring::rand::SecureRandom as _;
    use ring::signature::{self, EcdsaKeyPair, Ed25519KeyPair, RsaKeyPair};

    const RSA: &str = include_str!("../../jwt-assertion/tests/keys/rsa2048-pkcs8.pem");
    const P256: &str = include_str!("../../jwt-assertion/tests/keys/p256-pkcs8.pem");
    const ED25519: &str = include_str!("../../jwt-assertion/tests/keys/ed25519-pkcs8.pem");

    println!("\n## 2. JWT assertion signing\n");
    println!(
        "A client assertion from claims to compact JWS (iss, sub, aud, iat, exp, a 16-byte \
         random `jti`), each JWT library against the raw signing of its own crypto library, so \
         that the time a JWT library adds above its crypto can be told from the crypto. Per \
         iteration:\n\n\
         - jwt-assertion: `JwtClaims::client_assertion(..).sign(&key, SystemTime::now())`: reads \
         the clock, draws the `jti` from the OS (getrandom), serialises header and claims, \
         base64url, signs with ring using the key parsed once.\n\
         - raw ring: `sign` of jwt-assertion's signing input (same length) with the key parsed \
         once: the floor under jwt-assertion.\n\
         - jsonwebtoken 10 (aws-lc-rs): `encode` of a `#[derive(Serialize)]` claims struct built \
         per call with the clock read and a `jti` drawn from the OS the same way; its \
         `EncodingKey` parsed from PEM once (its aws-lc-rs backend parses the DER into an \
         aws-lc key again on every call).\n\
         - raw aws-lc-rs: `sign` of jsonwebtoken's signing input with the key parsed once: the \
         floor under jsonwebtoken.\n\
         - raw aws-lc-rs, key parsed per call: the key parsed from PKCS#8, then `sign`; \
         jsonwebtoken's backend parses its key on every call the same way (`RsaKeyPair::from_der` \
         of the PKCS#1 form, `EcdsaKeyPair::from_pkcs8`, `Ed25519KeyPair::from_pkcs8`); for \
         reference: it shows how much of jsonwebtoken's time above its floor is that parse.\n\n\
         Earlier runs used jsonwebtoken's RustCrypto backend, which measured RustCrypto against \
         ring more than the JWT handling."
    );
    let ring_rng = ring::rand::SystemRandom::new();
    let lc_rng = aws_lc_rs::rand::SystemRandom::new();
    for (name, pem, alg, jalg) in [
        (
            "RS256",
            RSA,
            Algorithm::RS256,
            jsonwebtoken::Algorithm::RS256,
        ),
        (
            "PS256",
            RSA,
            Algorithm::PS256,
            jsonwebtoken::Algorithm::PS256,
        ),
        (
            "ES256",
            P256,
            Algorithm::ES256,
            jsonwebtoken::Algorithm::ES256,
        ),
        (
            "EdDSA",
            ED25519,
            Algorithm::EdDSA,
            jsonwebtoken::Algorithm::EdDSA,
        ),
    ] {
        let key = SigningKey::from_pem(pem, alg).unwrap();
        let der = pem_der(pem);
        let mut ours = || {
            let jwt = JwtClaims::client_assertion("my-client", "https://as.example/token")
                .sign(&key, SystemTime::now())
                .unwrap();
            black_box(jwt);
        };
        let jkey = match name {
            "RS256" | "PS256" => jsonwebtoken::EncodingKey::from_rsa_pem(pem.as_bytes()).unwrap(),
            "ES256" => jsonwebtoken::EncodingKey::from_ec_pem(pem.as_bytes()).unwrap(),
            _ => jsonwebtoken::EncodingKey::from_ed_pem(pem.as_bytes()).unwrap(),
        };
        let header = jsonwebtoken::Header::new(jalg);
        let their_claims = || {
            let iat = SystemTime::now()
                .duration_since(SystemTime::UNIX_EPOCH)
                .unwrap()
                .as_secs();
            let mut jti = [0u8; 16];
            ring_rng.fill(&mut jti).unwrap();
            AssertionClaims {
                iss: "my-client",
                sub: "my-client",
                aud: "https://as.example/token",
                iat,
                exp: iat + 60,
                jti: base64::engine::general_purpose::URL_SAFE_NO_PAD.encode(jti),
            }
        };
        let mut theirs = || {
            black_box(jsonwebtoken::encode(&header, &their_claims(), &jkey).unwrap());
        };
        // Each floor signs its own library's signing input (the two differ by a few bytes).
        let our_input = signing_input(
            JwtClaims::client_assertion("my-client", "https://as.example/token")
                .sign(&key, SystemTime::now())
                .unwrap()
                .expose_secret(),
        );
        let their_input =
            signing_input(&jsonwebtoken::encode(&header, &their_claims(), &jkey).unwrap());
        // (raw ring, raw aws-lc-rs, raw aws-lc-rs parsing the key per call)
        type Floors = (Box<dyn FnMut()>, Box<dyn FnMut()>, Box<dyn FnMut()>);
        let (mut ring_floor, mut lc_floor, mut lc_parse): Floors = match name {
            "RS256" | "PS256" => {
                let pair = RsaKeyPair::from_pkcs8(&der).unwrap();
                let enc: &'static dyn signature::RsaEncoding = if name == "RS256" {
                    &signature::RSA_PKCS1_SHA256
                } else {
                    &signature::RSA_PSS_SHA256
                };
                let lc_enc: &'static dyn lc::RsaEncoding = if name == "RS256" {
                    &lc::RSA_PKCS1_SHA256
                } else {
                    &lc::RSA_PSS_SHA256
                };
                let lc_pair = lc::RsaKeyPair::from_pkcs8(&der).unwrap();
                let (ring_rng, lc_rng, der) = (ring_rng.clone(), lc_rng.clone(), der.clone());
                let (our_input, their_input) = (our_input.clone(), their_input.clone());
                let their_input2 = their_input.clone();
                let lc_rng2 = lc_rng.clone();
                (
                    Box::new(move || {
                        let mut sig = vec![0; pair.public().modulus_len()];
                        pair.sign(enc, &ring_rng, black_box(&our_input), &mut sig)
                            .unwrap();
                        black_box(sig);
                    }),
                    Box::new(move || {
                        let mut sig = vec![0; lc_pair.public_modulus_len()];
                        lc_pair
                            .sign(lc_enc, &lc_rng, black_box(&their_input), &mut sig)
                            .unwrap();
                        black_box(sig);
                    }),
                    Box::new(move || {
                        let pair = lc::RsaKeyPair::from_pkcs8(black_box(&der)).unwrap();
                        let mut sig = vec![0; pair.public_modulus_len()];
                        pair.sign(lc_enc, &lc_rng2, black_box(&their_input2), &mut sig)
                            .unwrap();
                        black_box(sig);
                    }),
                )
            }
            "ES256" => {
                let pair = EcdsaKeyPair::from_pkcs8(
                    &signature::ECDSA_P256_SHA256_FIXED_SIGNING,
                    &der,
                    &ring_rng,
                )
                .unwrap();
                let lc_pair =
                    lc::EcdsaKeyPair::from_pkcs8(&lc::ECDSA_P256_SHA256_FIXED_SIGNING, &der)
                        .unwrap();
                let (ring_rng, lc_rng, der) = (ring_rng.clone(), lc_rng.clone(), der.clone());
                let (our_input, their_input) = (our_input.clone(), their_input.clone());
                let their_input2 = their_input.clone();
                let lc_rng2 = lc_rng.clone();
                (
                    Box::new(move || {
                        black_box(pair.sign(&ring_rng, black_box(&our_input)).unwrap());
                    }),
                    Box::new(move || {
                        black_box(lc_pair.sign(&lc_rng, black_box(&their_input)).unwrap());
                    }),
                    Box::new(move || {
                        let pair = lc::EcdsaKeyPair::from_pkcs8(
                            &lc::ECDSA_P256_SHA256_FIXED_SIGNING,
                            black_box(&der),
                        )
                        .unwrap();
                        black_box(pair.sign(&lc_rng2, black_box(&their_input2)).unwrap());
                    }),
                )
            }
            _ => {
                let pair = Ed25519KeyPair::from_pkcs8_maybe_unchecked(&der).unwrap();
                let lc_pair = lc::Ed25519KeyPair::from_pkcs8(&der).unwrap();
                let der = der.clone();
                let (our_input, their_input) = (our_input.clone(), their_input.clone());
                let their_input2 = their_input.clone();
                (
                    Box::new(move || {
                        black_box(pair.sign(black_box(&our_input)));
                    }),
                    Box::new(move || {
                        black_box(lc_pair.sign(black_box(&their_input)));
                    }),
                    Box::new(move || {
                        let pair = lc::Ed25519KeyPair::from_pkcs8(black_box(&der)).unwrap();
                        black_box(pair.sign(black_box(&their_input2)));
                    }),
                )
            }
        };
        let iters = if name.starts_with("RS") || name.starts_with("PS") {
            300
        } else {
            3000
        };
        let names = [
            "jwt-assertion",
            "raw ring",
            "jsonwebtoken 10 (aws-lc-rs)",
            "raw aws-lc-rs",
            "raw aws-lc-rs, key parsed per call",
        ];
        let medians = compare(
            iters,
            &mut [
                ("jwt-assertion", &mut ours),
                ("ring", &mut ring_floor),
                ("jsonwebtoken", &mut theirs),
                ("aws-lc-rs", &mut lc_floor),
                ("aws-lc-rs parse", &mut lc_parse),
            ],
        );
        table(&format!("{name}: a whole JWT"), &names, &medians, 0);
        above_floor(
            medians[0],
            medians[1],
            medians[2],
            medians[3],
            medians[4],
            "signature",
        );
    }
}

fn test_server() -> oauth_test_server::TestServer {
    oauth_test_server::TestServer::start(oauth_test_server::Behaviour {
        token_len: 900,
        ..oauth_test_server::Behaviour::default()
    })
    .unwrap()
}

fn credentials() -> oauth_core::Client {
    let b = oauth_test_server::Behaviour::default();
    oauth_core::Client::new(
        b.client_id,
        oauth_core::ClientAuthentication::SecretBasic(oauth_core::ClientSecret::new(
            b.client_secret,
        )),
    )
}

/// 2c. DPoP proof creation: jwt-assertion's `DpopKey::sign` (fresh jti, JSON, `ath`, base64url,
/// the signature) against raw ring signing a signing input of the same claims.
fn dpop() {
    use jwt_assertion::{Algorithm, SigningKey};
    use ring::signature::{self, EcdsaKeyPair};
    const P256: &str = include_str!("../../jwt-assertion/tests/keys/p256-pkcs8.pem");
    println!("\n## 2c. DPoP proofs (RFC 9449)\n");
    println!(
        "Per iteration:\n\n\
         - jwt-assertion DpopKey::sign: a whole ES256 proof for a GET with an access token: a \
         fresh `jti` (random prefix + counter), `htm`, `htu`, `iat`, `ath` (SHA-256 of the \
         token), the claims serialised and base64url-encoded after the header encoded once, \
         the signature (ring).\n\
         - raw ring sign: ring signing a prebuilt signing input of the same proof (the floor).\n\
         - jwt-assertion verify_proof: check one proof as a gateway does (`typ`, `alg`, the \
         embedded `jwk`, the signature, `htm`/`htu`, the `iat` window, `ath`); no contender."
    );
    let key = SigningKey::from_pem(P256, Algorithm::ES256).unwrap();
    let dpop = jwt_assertion::DpopKey::new(key).unwrap();
    let token = "eyJhbGciOiJFUzI1NiJ9.an-access-token-of-ordinary-length.sig";
    let now = SystemTime::now();
    let context = oauth_core::ProofContext::new("GET", "https://api.example/v1/things", now)
        .access_token(Some(token));
    // The same proof's signing input, made once, for the floor.
    let sample = dpop.sign(&context).unwrap();
    let input: Vec<u8> = sample
        .rsplit_once('.')
        .map(|(i, _)| i.as_bytes().to_vec())
        .unwrap();
    let rng = ring::rand::SystemRandom::new();
    let pair = EcdsaKeyPair::from_pkcs8(
        &signature::ECDSA_P256_SHA256_FIXED_SIGNING,
        &pem_der(P256),
        &rng,
    )
    .unwrap();
    let mut ours = || {
        black_box(dpop.sign(black_box(&context)).unwrap());
    };
    let mut raw = || {
        black_box(pair.sign(&rng, black_box(&input)).unwrap());
    };
    let medians = compare(
        3000,
        &mut [("DpopKey::sign", &mut ours), ("ring", &mut raw)],
    );
    table(
        "ES256: a whole proof (jti, htm, htu, iat, ath) vs signing the same input",
        &["jwt-assertion DpopKey::sign", "raw ring sign"],
        &medians,
        1,
    );
    let proof = dpop.sign(&context).unwrap();
    let check = jwt_assertion::dpop::ProofCheck::new("GET", "https://api.example/v1/things", now)
        .access_token(token);
    let mut verify = || {
        black_box(jwt_assertion::dpop::verify_proof(black_box(&proof), &check).unwrap());
    };
    let medians = compare(3000, &mut [("verify_proof", &mut verify)]);
    table(
        "ES256: checking a proof (the gateway's cost per DPoP request)",
        &["jwt-assertion verify_proof"],
        &medians,
        0,
    );
}

/// 2b. JWS verification: jwt-assertion's `verify` against jsonwebtoken 10's `decode` (on
/// aws-lc-rs), each above its own crypto library's floor.
fn verification() {
    use aws_lc_rs::signature as lc;
    use jsonwebtoken::{DecodingKey, EncodingKey, Validation, decode};
    use jwt_assertion::verify::{KeySet, verify};
    use jwt_assertion::{Algorithm, SigningKey};

    const RSA: &str = include_str!("../../jwt-assertion/tests/keys/rsa2048-pkcs8.pem");
    const RSA_PUBLIC: &str = include_str!("../../jwt-assertion/tests/keys/rsa2048-public.pem");
    const P256: &str = include_str!("../../jwt-assertion/tests/keys/p256-pkcs8.pem");
    const P256_PUBLIC: &str = include_str!("../../jwt-assertion/tests/keys/p256-public.pem");

    println!("\n## 2b. JWS verification\n");
    println!(
        "One id_token-sized JWT (iss, sub, aud, exp, iat, nonce), signed once; each contender \
         checks its signature and reads `sub`. Per iteration:\n\n\
         - jwt-assertion verify: `verify(token, &keys, &[alg])`: split, decode and parse the \
         header, check the algorithm against the allowed list, pick the key from a JWK set \
         (parsed once), verify with ring, decode and parse the claims (duplicate members \
         refused).\n\
         - raw ring: verify the token's signing input and decoded signature with the public key \
         as components (RSA `n`, `e`; the EC point), which ring parses on each call (it has no \
         pre-parsed public key): the floor under jwt-assertion; no JWT parsing at all.\n\
         - jsonwebtoken 10 decode (aws-lc-rs): `decode::<serde_json::Value>` with a \
         `DecodingKey` made from PEM once and claim validation switched off (signature only); \
         its backend hands the key's DER to aws-lc on each call.\n\
         - raw aws-lc-rs: `ParsedPublicKey::verify_sig` on jsonwebtoken's signing input, the key \
         parsed once: the floor under jsonwebtoken.\n\
         - raw aws-lc-rs, key parsed per call: `UnparsedPublicKey::verify` with the same DER \
         jsonwebtoken holds, which is what its backend calls (for reference).\n\n\
         Earlier runs used jsonwebtoken's RustCrypto backend, which measured RustCrypto against \
         ring more than the JWT handling."
    );
    let claims = serde_json::json!({
        "iss": "https://as.example", "sub": "alice", "aud": "my-client",
        "exp": 4_000_000_000u64, "iat": 1_700_000_000u64, "nonce": "n-0S6_WzA2Mj",
    });
    for (alg, pem, public, theirs_alg) in [
        (
            Algorithm::RS256,
            RSA,
            RSA_PUBLIC,
            jsonwebtoken::Algorithm::RS256,
        ),
        (
            Algorithm::ES256,
            P256,
            P256_PUBLIC,
            jsonwebtoken::Algorithm::ES256,
        ),
    ] {
        let key = SigningKey::from_pem(pem, alg).unwrap();
        let encoding = match alg {
            Algorithm::RS256 => EncodingKey::from_rsa_pem(pem.as_bytes()).unwrap(),
            _ => EncodingKey::from_ec_pem(pem.as_bytes()).unwrap(),
        };
        // One token, verified by every contender.
        let token =
            jsonwebtoken::encode(&jsonwebtoken::Header::new(theirs_alg), &claims, &encoding)
                .unwrap();
        let keys = KeySet::from_jwks(
            serde_json::json!({"keys": [key.public_jwk().unwrap()]})
                .to_string()
                .as_bytes(),
        )
        .unwrap();
        let decoding = match alg {
            Algorithm::RS256 => DecodingKey::from_rsa_pem(public.as_bytes()).unwrap(),
            _ => DecodingKey::from_ec_pem(public.as_bytes()).unwrap(),
        };
        let mut validation = Validation::new(theirs_alg);
        validation.validate_exp = false;
        validation.validate_aud = false;
        validation.required_spec_claims.clear();
        let mut ours = || {
            let v = verify(black_box(&token), &keys, &[alg]).unwrap();
            black_box(v.claims()["sub"].as_str());
        };
        let mut theirs = || {
            let v = decode::<serde_json::Value>(black_box(&token), &decoding, &validation).unwrap();
            black_box(v.claims["sub"].as_str());
        };
        let (input, sig) = token.rsplit_once('.').unwrap();
        let sig = base64::engine::general_purpose::URL_SAFE_NO_PAD
            .decode(sig)
            .unwrap();
        let jwk = key.public_jwk().unwrap();
        let b64 = |name: &str| {
            base64::engine::general_purpose::URL_SAFE_NO_PAD
                .decode(jwk[name].as_str().unwrap())
                .unwrap()
        };
        let (n, e) = if alg == Algorithm::RS256 {
            (b64("n"), b64("e"))
        } else {
            (Vec::new(), Vec::new())
        };
        let point = if alg == Algorithm::ES256 {
            [vec![4u8], b64("x"), b64("y")].concat()
        } else {
            Vec::new()
        };
        let mut ring_floor = || {
            let ok = if alg == Algorithm::RS256 {
                ring::signature::RsaPublicKeyComponents { n: &n, e: &e }
                    .verify(
                        &ring::signature::RSA_PKCS1_2048_8192_SHA256,
                        black_box(input.as_bytes()),
                        &sig,
                    )
                    .is_ok()
            } else {
                ring::signature::UnparsedPublicKey::new(
                    &ring::signature::ECDSA_P256_SHA256_FIXED,
                    &point,
                )
                .verify(black_box(input.as_bytes()), &sig)
                .is_ok()
            };
            assert!(ok);
        };
        // The bytes jsonwebtoken's `DecodingKey` holds: for RSA the PKCS#1 `RSAPublicKey` inside
        // the PEM's SubjectPublicKeyInfo, for EC the uncompressed point.
        let (lc_alg, lc_der): (&'static dyn lc::VerificationAlgorithm, Vec<u8>) =
            if alg == Algorithm::RS256 {
                (&lc::RSA_PKCS1_2048_8192_SHA256, rsa_public_key_der(&n, &e))
            } else {
                (&lc::ECDSA_P256_SHA256_FIXED, point.clone())
            };
        let parsed = lc::ParsedPublicKey::new(lc_alg, &lc_der).unwrap();
        let mut lc_floor = || {
            assert!(parsed.verify_sig(black_box(input.as_bytes()), &sig).is_ok());
        };
        let mut lc_parse = || {
            assert!(
                lc::UnparsedPublicKey::new(lc_alg, black_box(&lc_der))
                    .verify(black_box(input.as_bytes()), &sig)
                    .is_ok()
            );
        };
        let names = [
            "jwt-assertion verify",
            "raw ring",
            "jsonwebtoken 10 decode (aws-lc-rs)",
            "raw aws-lc-rs",
            "raw aws-lc-rs, key parsed per call",
        ];
        let medians = compare(
            2_000,
            &mut [
                ("ours", &mut ours),
                ("ring", &mut ring_floor),
                ("theirs", &mut theirs),
                ("aws-lc-rs", &mut lc_floor),
                ("aws-lc-rs parse", &mut lc_parse),
            ],
        );
        table(&format!("{alg}: verify a JWT"), &names, &medians, 0);
        above_floor(
            medians[0],
            medians[1],
            medians[2],
            medians[3],
            medians[4],
            "verification",
        );
    }
}

/// DER of an RSA public key (`RSAPublicKey`, RFC 8017 A.1.1) from its modulus and exponent.
fn rsa_public_key_der(n: &[u8], e: &[u8]) -> Vec<u8> {
    fn integer(bytes: &[u8]) -> Vec<u8> {
        let mut value = bytes.to_vec();
        if value.first().is_some_and(|b| b & 0x80 != 0) {
            value.insert(0, 0);
        }
        [vec![0x02], length(value.len()), value].concat()
    }
    fn length(len: usize) -> Vec<u8> {
        match len {
            0..0x80 => vec![len as u8],
            0x80..0x100 => vec![0x81, len as u8],
            _ => vec![0x82, (len >> 8) as u8, len as u8],
        }
    }
    let body = [integer(n), integer(e)].concat();
    [vec![0x30], length(body.len()), body].concat()
}

/// huskarl's in-memory cache over its client-credentials grant, trusting the test server's CA.
type HuskarlCache = huskarl::cache::InMemoryTokenCache<
    huskarl::cache::GrantTokenSource<
        huskarl::grant::client_credentials::ClientCredentialsGrant,
        huskarl::cache::InMemoryRefreshTokenStore,
    >,
>;

fn huskarl_client(server: &oauth_test_server::TestServer) -> huskarl_reqwest::ReqwestClient {
    let mut roots = rustls::RootCertStore::empty();
    use rustls::pki_types::pem::PemObject as _;
    for cert in rustls::pki_types::CertificateDer::pem_slice_iter(server.ca_pem().as_bytes()) {
        roots.add(cert.unwrap()).unwrap();
    }
    let tls = rustls::ClientConfig::builder_with_provider(Arc::new(
        rustls::crypto::ring::default_provider(),
    ))
    .with_safe_default_protocol_versions()
    .unwrap()
    .with_root_certificates(roots)
    .with_no_client_auth();
    let client = reqwest::Client::builder()
        .tls_backend_preconfigured(tls)
        .redirect(reqwest::redirect::Policy::none())
        .timeout(Duration::from_secs(30))
        .build()
        .unwrap();
    huskarl_reqwest::ReqwestClient::from(client)
}

fn huskarl_cache(
    server: &oauth_test_server::TestServer,
    client: huskarl_reqwest::ReqwestClient,
) -> HuskarlCache {
    use huskarl::cache::{GrantTokenSource, InMemoryRefreshTokenStore, InMemoryTokenCache};
    use huskarl::core::client_auth::ClientSecret;
    use huskarl::core::secrets::{ProvidedSecret, SecretString};
    use huskarl::grant::client_credentials::{
        ClientCredentialsGrant, ClientCredentialsGrantParameters,
    };
    let b = oauth_test_server::Behaviour::default();
    let grant = ClientCredentialsGrant::builder()
        .client_id(b.client_id.as_str())
        .http_client(client)
        .client_auth(
            ClientSecret::builder()
                .client_secret(ProvidedSecret::new(SecretString::new(
                    b.client_secret.as_str(),
                )))
                .prefer_basic_auth(true)
                .build(),
        )
        .token_endpoint(server.url("/token").parse().unwrap())
        .build();
    let source = GrantTokenSource::builder()
        .grant(grant)
        .grant_parameters(ClientCredentialsGrantParameters::new())
        .refresh_store(InMemoryRefreshTokenStore::default())
        .build();
    InMemoryTokenCache::builder().source(source).build()
}

/// 4. Herd: 10,000 concurrent callers on an empty cache.
fn herd() {
    use huskarl::cache::TokenSource as _;
    const CALLERS: usize = 10_000;
    const ROUNDS: usize = 9;
    println!("\n## 4. Herd: {CALLERS} concurrent callers on an empty cache\n");
    println!(
        "A new token source for each round, {CALLERS} callers (tokio tasks on a 2-thread \
         runtime; OS threads for the blocking adapter) call `token()` at once against the \
         loopback HTTPS test server (900-character tokens); the time until every caller has its \
         token. huskarl 0.11: its `InMemoryTokenCache` over its client-credentials grant, on a \
         reqwest 0.13 client with the same TLS set-up, in the same runtime. {ROUNDS} rounds, \
         contenders interleaved; medians. Per round (the source is built before the clock \
         starts; each HTTP client is built once, so connections are reused after round 1):\n\n\
         - oauth-reqwest: a new `TokenSource` (client_credentials, Basic); {CALLERS} spawned \
         tasks each await `token()` once.\n\
         - huskarl 0.11: a new `InMemoryTokenCache` (client_credentials, Basic); {CALLERS} \
         spawned tasks each await `token()` once.\n\
         - oauth-ureq (threads): a new `TokenSource`; {CALLERS} OS threads (128 KiB stacks, \
         spawned before the clock starts, released by a barrier) each call `token()` once."
    );
    let server = test_server();
    let rt = tokio::runtime::Builder::new_multi_thread()
        .worker_threads(2)
        .enable_all()
        .build()
        .unwrap();
    let http = oauth_reqwest::HttpClient::new(
        oauth_reqwest::HttpConfig::new()
            .add_root_certificates_pem(server.ca_pem().as_bytes())
            .unwrap(),
    )
    .unwrap();
    let blocking = oauth_ureq::HttpClient::new(
        oauth_ureq::HttpConfig::new()
            .add_root_certificates_pem(server.ca_pem().as_bytes())
            .unwrap(),
    )
    .unwrap();
    let endpoint = http.endpoint(&server.url("/token")).unwrap();
    // Each HTTP client is made once, so every contender reuses its connection after round 1.
    let husk = huskarl_client(&server);
    let mut times: [Vec<f64>; 3] = Default::default();
    let mut requests = [0usize; 3];
    for _ in 0..ROUNDS {
        // oauth-reqwest.
        let source =
            oauth_reqwest::TokenSource::builder(http.clone(), endpoint.clone(), credentials())
                .grant(oauth_core::TokenRequest::client_credentials())
                .build();
        let before = server.counters().token_requests;
        let elapsed = rt.block_on(async {
            let start = Instant::now();
            let tasks: Vec<_> = (0..CALLERS)
                .map(|_| {
                    let s = source.clone();
                    tokio::spawn(async move { s.token().await.is_ok() })
                })
                .collect();
            let mut ok = 0;
            for t in tasks {
                ok += usize::from(t.await.unwrap());
            }
            assert_eq!(ok, CALLERS);
            start.elapsed()
        });
        times[0].push(elapsed.as_secs_f64() * 1e3);
        requests[0] += server.counters().token_requests - before;

        // huskarl.
        let cache = Arc::new(huskarl_cache(&server, husk.clone()));
        let before = server.counters().token_requests;
        let elapsed = rt.block_on(async {
            let start = Instant::now();
            let tasks: Vec<_> = (0..CALLERS)
                .map(|_| {
                    let c = Arc::clone(&cache);
                    tokio::spawn(async move { c.token().await.is_ok() })
                })
                .collect();
            let mut ok = 0;
            for t in tasks {
                ok += usize::from(t.await.unwrap());
            }
            assert_eq!(ok, CALLERS);
            start.elapsed()
        });
        times[1].push(elapsed.as_secs_f64() * 1e3);
        requests[1] += server.counters().token_requests - before;

        // oauth-ureq, threads.
        let source =
            oauth_ureq::TokenSource::builder(blocking.clone(), endpoint.clone(), credentials())
                .grant(oauth_core::TokenRequest::client_credentials())
                .build();
        let before = server.counters().token_requests;
        let barrier = Arc::new(std::sync::Barrier::new(CALLERS + 1));
        let threads: Vec<_> = (0..CALLERS)
            .map(|_| {
                let (s, b) = (source.clone(), Arc::clone(&barrier));
                std::thread::Builder::new()
                    .stack_size(128 * 1024)
                    .spawn(move || {
                        b.wait();
                        s.token().is_ok()
                    })
                    .unwrap()
            })
            .collect();
        let start = Instant::now();
        barrier.wait();
        let ok: usize = threads
            .into_iter()
            .map(|t| usize::from(t.join().unwrap()))
            .sum();
        times[2].push(start.elapsed().as_secs_f64() * 1e3);
        assert_eq!(ok, CALLERS);
        requests[2] += server.counters().token_requests - before;
    }
    let median = |v: &mut Vec<f64>| {
        v.sort_by(f64::total_cmp);
        v[v.len() / 2]
    };
    let m: Vec<f64> = times.iter_mut().map(median).collect();
    println!(
        "\n| contender | token requests per round | time until every caller has its token (median) | ratio to oauth-reqwest |"
    );
    println!("|---|---|---|---|");
    for (i, name) in ["oauth-reqwest", "huskarl 0.11", "oauth-ureq (threads)"]
        .iter()
        .enumerate()
    {
        println!(
            "| {name} | {:.1} | {:.1} ms | {:.2}× |",
            requests[i] as f64 / ROUNDS as f64,
            m[i],
            m[i] / m[0]
        );
    }
    println!("\nhuskarl / oauth-reqwest = {:.2}×", m[1] / m[0]);
}

/// 5. Token exchanges per second over loopback HTTPS.
fn loopback() {
    const EXCHANGES: u32 = 400;
    println!("\n## 5. client_credentials exchanges per second over loopback HTTPS\n");
    println!(
        "Sequential exchanges against the loopback test server (TLS 1.3, keep-alive), \
         {EXCHANGES} per round, rounds interleaved: oauth-reqwest's `HttpClient::request_token` \
         (reqwest 0.13) against oauth2 5.0's `request_async` on its reqwest 0.12 client. Both \
         clients trust only the run's CA, follow no redirects, reuse connections and have the \
         same connect (10 s) and overall (30 s) timeouts. Per iteration each does one \
         client_credentials exchange (no scope, Basic client authentication): build the request, \
         send it on the kept-alive TLS connection, read the answer (a 900-character token) and \
         parse it into its token type."
    );
    let server = test_server();
    let rt = tokio::runtime::Builder::new_multi_thread()
        .worker_threads(2)
        .enable_all()
        .build()
        .unwrap();
    let ours = oauth_reqwest::HttpClient::new(
        oauth_reqwest::HttpConfig::new()
            .add_root_certificates_pem(server.ca_pem().as_bytes())
            .unwrap(),
    )
    .unwrap();
    let endpoint = ours.endpoint(&server.url("/token")).unwrap();
    let client = credentials();
    let request = oauth_core::TokenRequest::client_credentials();

    let ca = reqwest012::Certificate::from_pem(server.ca_pem().as_bytes()).unwrap();
    let theirs_http = reqwest012::Client::builder()
        .tls_built_in_root_certs(false)
        .add_root_certificate(ca)
        .redirect(reqwest012::redirect::Policy::none())
        // The same timeouts as oauth-reqwest's defaults (each request then carries a timer).
        .connect_timeout(Duration::from_secs(10))
        .timeout(Duration::from_secs(30))
        .build()
        .unwrap();
    let b = oauth_test_server::Behaviour::default();
    let theirs = oauth2::basic::BasicClient::new(oauth2::ClientId::new(b.client_id.clone()))
        .set_client_secret(oauth2::ClientSecret::new(b.client_secret))
        .set_token_uri(oauth2::TokenUrl::new(server.url("/token")).unwrap());

    let mut samples = [Vec::new(), Vec::new()];
    for round in 0..7 {
        for (i, s) in samples.iter_mut().enumerate() {
            let start = Instant::now();
            rt.block_on(async {
                for _ in 0..EXCHANGES {
                    if i == 0 {
                        ours.request_token(&endpoint, &client, &request)
                            .await
                            .unwrap();
                    } else {
                        theirs
                            .exchange_client_credentials()
                            .request_async(&theirs_http)
                            .await
                            .unwrap();
                    }
                }
            });
            if round > 0 {
                s.push(f64::from(EXCHANGES) / start.elapsed().as_secs_f64());
            }
        }
    }
    let medians: Vec<f64> = samples
        .into_iter()
        .map(|mut v| {
            v.sort_by(f64::total_cmp);
            v[v.len() / 2]
        })
        .collect();
    println!("\n| client | exchanges/s (median of 6 rounds) | ratio to oauth2 |");
    println!("|---|---|---|");
    println!(
        "| oauth-reqwest | {:.0} | {:.2}× |",
        medians[0],
        medians[0] / medians[1]
    );
    println!("| oauth2 5.0 + reqwest 0.12 | {:.0} | 1.00× |", medians[1]);
}

fn main() {
    // jsonwebtoken on aws-lc-rs, chosen explicitly: in a workspace build its RustCrypto backend
    // is on as well (jwt-assertion's tests use it), and with both on it picks neither by itself.
    jsonwebtoken::crypto::aws_lc::DEFAULT_PROVIDER
        .install_default()
        .expect("nothing else in this process installs a jsonwebtoken provider");
    let args: Vec<String> = std::env::args().skip(1).collect();
    let run = |name: &str| args.is_empty() || args.iter().any(|a| a == name);
    if run("exchange") {
        exchange();
    }
    if run("jwt") {
        jwt();
    }
    if run("verify") {
        verification();
    }
    if run("dpop") {
        dpop();
    }
    if run("herd") {
        herd();
    }
    if run("loopback") {
        loopback();
    }
    if args.iter().any(|a| a == "profile-authurl") {
        let endpoint = oauth_core::Endpoint::new("https://as.example/authorize").unwrap();
        let rng = oauth_reqwest::SystemRandom;
        for _ in 0..300_000 {
            let pending = oauth_core::AuthorizationRequest::new(endpoint.clone(), "my-client")
                .redirect_uri("https://app.example/cb")
                .scope(["read"])
                .build(&rng)
                .unwrap();
            let _ = black_box(pending);
        }
    }
    if args.iter().any(|a| a == "profile-herd") {
        // For `perf record`: oauth-reqwest's herd alone, many rounds.
        let server = test_server();
        let rt = tokio::runtime::Builder::new_multi_thread()
            .worker_threads(2)
            .enable_all()
            .build()
            .unwrap();
        let http = oauth_reqwest::HttpClient::new(
            oauth_reqwest::HttpConfig::new()
                .add_root_certificates_pem(server.ca_pem().as_bytes())
                .unwrap(),
        )
        .unwrap();
        let endpoint = http.endpoint(&server.url("/token")).unwrap();
        for _ in 0..40 {
            let source =
                oauth_reqwest::TokenSource::builder(http.clone(), endpoint.clone(), credentials())
                    .grant(oauth_core::TokenRequest::client_credentials())
                    .build();
            rt.block_on(async {
                let tasks: Vec<_> = (0..10_000)
                    .map(|_| {
                        let s = source.clone();
                        tokio::spawn(async move { s.token().await.is_ok() })
                    })
                    .collect();
                for t in tasks {
                    assert!(t.await.unwrap());
                }
            });
        }
    }
    if args.iter().any(|a| a == "profile-exchange") {
        // For `perf record`: oauth-core's exchange alone, in a loop.
        let endpoint = oauth_core::Endpoint::new("https://as.example/token").unwrap();
        let client = oauth_core::Client::new(
            "my-client",
            oauth_core::ClientAuthentication::SecretBasic(oauth_core::ClientSecret::new(
                "my-secret",
            )),
        );
        let canned = json_response(200, token_body());
        for _ in 0..1_000_000 {
            let request = oauth_core::TokenRequest::client_credentials()
                .scope(["read"])
                .build(&endpoint, &client)
                .unwrap();
            black_box(&request);
            black_box(
                oauth_core::parse_token_response(black_box(&canned), SystemTime::UNIX_EPOCH).ok(),
            );
        }
    }
}
