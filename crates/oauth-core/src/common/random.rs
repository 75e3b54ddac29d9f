//! Entropy as a capability.
//!
//! oauth-core never asks the operating system for randomness. Anything that needs fresh random
//! values (PKCE verifiers, `state`, `nonce`, refresh jitter) takes a [`RandomSource`]. The
//! adapters pass one backed by the OS; tests pass a seeded one.

use std::fmt;

/// A source of cryptographically secure random bytes.
///
/// Implementations must be suitable for secrets: a PKCE verifier or a `state` value is only as
/// strong as the bytes that made it.
///
/// The platform's primitives come together here: besides entropy, a source may supply a faster
/// SHA-256 (the PKCE `S256` challenge) than the core's portable one, such as a hardware-backed
/// implementation; the adapters' source uses ring's.
pub trait RandomSource {
    /// Fills `dest` entirely with random bytes, or fails.
    fn fill(&self, dest: &mut [u8]) -> Result<(), RandomError>;

    /// The SHA-256 digest of `data`. The default is the core's portable implementation.
    #[cfg(feature = "authorization-code")]
    fn sha256(&self, data: &[u8]) -> [u8; 32] {
        crate::sha256::sha256(data)
    }
}

impl<R: RandomSource + ?Sized> RandomSource for &R {
    fn fill(&self, dest: &mut [u8]) -> Result<(), RandomError> {
        (**self).fill(dest)
    }

    #[cfg(feature = "authorization-code")]
    fn sha256(&self, data: &[u8]) -> [u8; 32] {
        (**self).sha256(data)
    }
}

/// The random source failed to produce bytes.
#[derive(Clone, Debug, PartialEq, Eq)]
#[non_exhaustive]
pub struct RandomError;

impl RandomError {
    /// Creates the error; for [`RandomSource`] implementations.
    pub fn new() -> Self {
        Self
    }
}

impl Default for RandomError {
    fn default() -> Self {
        Self::new()
    }
}

impl fmt::Display for RandomError {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        f.write_str("the random source failed to produce bytes")
    }
}

impl std::error::Error for RandomError {}

#[cfg_attr(not(feature = "authorization-code"), allow(dead_code))]
/// Draws `N` random bytes and returns them base64url-encoded without padding.
pub(crate) fn random_token<const N: usize>(rng: &dyn RandomSource) -> Result<String, RandomError> {
    let mut buf = [0u8; N];
    rng.fill(&mut buf)?;
    let out = crate::encoding::b64url(&buf);
    zeroize::Zeroize::zeroize(&mut buf);
    Ok(out)
}

#[cfg(test)]
pub(crate) mod test_support {
    use std::cell::Cell;

    use super::*;

    /// A deterministic, *insecure* generator for tests (xorshift64*).
    pub(crate) struct SeededRandom(Cell<u64>);

    impl SeededRandom {
        pub(crate) fn new(seed: u64) -> Self {
            Self(Cell::new(seed | 1))
        }
    }

    impl RandomSource for SeededRandom {
        fn fill(&self, dest: &mut [u8]) -> Result<(), RandomError> {
            for b in dest {
                let mut x = self.0.get();
                x ^= x >> 12;
                x ^= x << 25;
                x ^= x >> 27;
                self.0.set(x);
                *b = (x.wrapping_mul(0x2545_F491_4F6C_DD1D) >> 56) as u8;
            }
            Ok(())
        }
    }

    /// Always fails.
    pub(crate) struct BrokenRandom;

    impl RandomSource for BrokenRandom {
        fn fill(&self, _: &mut [u8]) -> Result<(), RandomError> {
            Err(RandomError::new())
        }
    }
}
