//! Signing through `SigningKey::sign` (a prebuilt key) against raw ring on the same signing
//! input, per algorithm. Target: at most 1.05x raw ring.
//!
//! `cargo bench -p jwt-assertion`. The two sides run interleaved in rounds in one process, and
//! the report gives each side's median time per signature and the ratio of medians, so that a
//! noisy, shared machine moves both sides alike.
#![allow(clippy::print_stdout, clippy::unwrap_used, clippy::expect_used)]

use std::hint::black_box;
use std::time::{Duration, Instant};

use jwt_assertion::{Algorithm, SigningKey};
use ring::rand::SystemRandom;
use ring::signature::{self, EcdsaKeyPair, Ed25519KeyPair, RsaKeyPair};

fn pem_der(name: &str) -> Vec<u8> {
    use base64::Engine as _;
    let text = std::fs::read_to_string(format!("{}/tests/keys/{name}", env!("CARGO_MANIFEST_DIR")))
        .unwrap();
    let body: String = text.lines().filter(|l| !l.starts_with("-----")).collect();
    base64::engine::general_purpose::STANDARD
        .decode(body)
        .unwrap()
}

/// Median nanoseconds per call of `f`, over `rounds` rounds of `iters` calls.
fn time_rounds(rounds: usize, iters: u32, mut a: impl FnMut(), b: &mut dyn FnMut()) -> (f64, f64) {
    let mut ta = Vec::with_capacity(rounds);
    let mut tb = Vec::with_capacity(rounds);
    for round in 0..rounds {
        // Alternate which side goes first, so neither always runs on a warmer cache.
        let run = |f: &mut dyn FnMut(), out: &mut Vec<f64>| {
            let start = Instant::now();
            for _ in 0..iters {
                f();
            }
            out.push(start.elapsed().as_nanos() as f64 / f64::from(iters));
        };
        if round % 2 == 0 {
            run(&mut a, &mut ta);
            run(b, &mut tb);
        } else {
            run(b, &mut tb);
            run(&mut a, &mut ta);
        }
    }
    let median = |v: &mut Vec<f64>| {
        v.sort_by(f64::total_cmp);
        v[v.len() / 2]
    };
    (median(&mut ta), median(&mut tb))
}

fn main() {
    // `cargo test --benches` passes --bench; a quick run keeps CI fast while still building.
    let quick = std::env::args().any(|a| a == "--quick") || std::env::var_os("QUICK").is_some();
    let (rounds, budget) = if quick {
        (3, Duration::from_millis(5))
    } else {
        (31, Duration::from_millis(40))
    };
    let input = b"eyJhbGciOiJSUzI1NiIsInR5cCI6IkpXVCJ9.eyJpc3MiOiJjbGllbnQiLCJzdWIiOiJjbGllbnQiLCJhdWQiOiJodHRwczovL2FzLmV4YW1wbGUvdG9rZW4iLCJleHAiOjE3MDAwMDAwNjAsImlhdCI6MTcwMDAwMDAwMCwianRpIjoiYWJjIn0";
    let rng = SystemRandom::new();
    let rsa = RsaKeyPair::from_pkcs8(&pem_der("rsa2048-pkcs8.pem")).unwrap();
    let p256 = EcdsaKeyPair::from_pkcs8(
        &signature::ECDSA_P256_SHA256_FIXED_SIGNING,
        &pem_der("p256-pkcs8.pem"),
        &rng,
    )
    .unwrap();
    let ed = Ed25519KeyPair::from_pkcs8_maybe_unchecked(&pem_der("ed25519-pkcs8.pem")).unwrap();
    let p384 = EcdsaKeyPair::from_pkcs8(
        &signature::ECDSA_P384_SHA384_FIXED_SIGNING,
        &pem_der("p384-pkcs8.pem"),
        &rng,
    )
    .unwrap();

    println!(
        "{:<7} {:>14} {:>14} {:>8}",
        "alg", "ours ns/sig", "ring ns/sig", "ratio"
    );
    let key_file = |name: &str| {
        std::fs::read_to_string(format!("{}/tests/keys/{name}", env!("CARGO_MANIFEST_DIR")))
            .unwrap()
    };
    let bench = Bench {
        rounds,
        budget,
        input,
    };
    for (alg, enc) in [
        (
            Algorithm::RS256,
            &signature::RSA_PKCS1_SHA256 as &'static dyn signature::RsaEncoding,
        ),
        (Algorithm::RS384, &signature::RSA_PKCS1_SHA384),
        (Algorithm::RS512, &signature::RSA_PKCS1_SHA512),
        (Algorithm::PS256, &signature::RSA_PSS_SHA256),
        (Algorithm::PS384, &signature::RSA_PSS_SHA384),
        (Algorithm::PS512, &signature::RSA_PSS_SHA512),
    ] {
        let mut sig = vec![0u8; rsa.public().modulus_len()];
        let ours = SigningKey::from_pem(&key_file("rsa2048-pkcs8.pem"), alg).unwrap();
        bench.report(alg, &ours, &mut || {
            rsa.sign(enc, &rng, black_box(input), &mut sig).unwrap();
            black_box(&sig);
        });
    }
    let ours = SigningKey::from_pem(&key_file("p256-pkcs8.pem"), Algorithm::ES256).unwrap();
    bench.report(Algorithm::ES256, &ours, &mut || {
        black_box(p256.sign(&rng, black_box(input)).unwrap());
    });
    let ours = SigningKey::from_pem(&key_file("p384-pkcs8.pem"), Algorithm::ES384).unwrap();
    bench.report(Algorithm::ES384, &ours, &mut || {
        black_box(p384.sign(&rng, black_box(input)).unwrap());
    });
    let ours = SigningKey::from_pem(&key_file("ed25519-pkcs8.pem"), Algorithm::EdDSA).unwrap();
    bench.report(Algorithm::EdDSA, &ours, &mut || {
        black_box(ed.sign(black_box(input)));
    });
    for (alg, ring_alg, len) in [
        (Algorithm::HS256, ring::hmac::HMAC_SHA256, 32),
        (Algorithm::HS384, ring::hmac::HMAC_SHA384, 48),
        (Algorithm::HS512, ring::hmac::HMAC_SHA512, 64),
    ] {
        let secret = vec![7u8; len];
        let raw = ring::hmac::Key::new(ring_alg, &secret);
        let ours = SigningKey::hmac(&secret, alg).unwrap();
        bench.report(alg, &ours, &mut || {
            black_box(ring::hmac::sign(&raw, black_box(input)));
        });
    }
}

struct Bench<'a> {
    rounds: usize,
    budget: Duration,
    input: &'a [u8],
}

impl Bench<'_> {
    fn report(&self, alg: Algorithm, ours: &SigningKey, raw: &mut dyn FnMut()) {
        // Calibrate the number of calls per round to the time budget.
        let start = Instant::now();
        let mut n = 0u32;
        while start.elapsed() < self.budget {
            black_box(ours.sign(black_box(self.input)).unwrap());
            n += 1;
        }
        let (a, b) = time_rounds(
            self.rounds,
            n.max(1),
            || {
                black_box(ours.sign(black_box(self.input)).unwrap());
            },
            raw,
        );
        println!("{:<7} {:>14.0} {:>14.0} {:>8.3}", alg.as_str(), a, b, a / b);
    }
}
