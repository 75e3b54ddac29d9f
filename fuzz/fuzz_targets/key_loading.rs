//! Private key files: PEM (PKCS#8, PKCS#1, SEC1, with junk around) and DER, for every
//! algorithm. Never a panic; a key that loads can sign.
#![no_main]

use jwt_assertion::{Algorithm, SigningKey};
use libfuzzer_sys::fuzz_target;

const ALGORITHMS: &[Algorithm] = &[
    Algorithm::RS256,
    Algorithm::PS256,
    Algorithm::ES256,
    Algorithm::ES384,
    Algorithm::EdDSA,
];

fuzz_target!(|data: &[u8]| {
    let Some((&pick, rest)) = data.split_first() else {
        return;
    };
    let alg = ALGORITHMS[usize::from(pick) % ALGORITHMS.len()];
    let loaded = match std::str::from_utf8(rest) {
        Ok(pem) if pick & 0x80 == 0 => SigningKey::from_pem(pem, alg),
        _ => SigningKey::from_der(rest, alg),
    };
    match loaded {
        Ok(key) => {
            assert_eq!(key.algorithm(), alg);
            key.sign(b"header.payload").expect("a loaded key signs");
        }
        Err(e) => {
            let _ = (e.to_string(), format!("{e:?}"));
        }
    }
});
