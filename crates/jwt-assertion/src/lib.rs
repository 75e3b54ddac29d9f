//! Signed JWT assertions for OAuth 2.0 (RFC 7523), with [ring].
//!
//! - The JWT bearer grant (RFC 7523 §2.1): [`JwtClaims::jwt_bearer`], sent with
//!   `oauth_core::TokenRequest::jwt_bearer`.
//! - Client authentication with `private_key_jwt` and `client_secret_jwt` (RFC 7523 §2.2):
//!   [`ClientAssertionSigner`], which signs a fresh assertion for every request, retry and
//!   refresh (`oauth_core::ClientAuthentication::signed`); or one assertion with
//!   [`JwtClaims::client_assertion`].
//! - The JWT bearer grant signed per request: [`JwtBearerSigner`]
//!   (`oauth_core::TokenRequest::jwt_bearer_signed`).
//! - Any other JWS: [`sign_compact`] with a [`Header`] (a DPoP proof is a header with
//!   `typ: dpop+jwt` and a `jwk`, and a few claims).
//!
//! - Verifying compact JWS (RFC 7515) against a JWK set (RFC 7517) or an HMAC secret:
//!   [`verify::verify`], with the caller's allowed algorithms; `none`, algorithm/key-type
//!   confusion, embedded keys and unknown `crit` are refused with typed errors.
//!
//! It does **not** check claims (`exp`, `iss`, `aud`: the caller's), encrypt (JWE), or fetch
//! keys. Keys are parsed once into a [`SigningKey`]; signing reuses the parsed key.
//!
//! ```text
//! PEM / DER / HMAC secret ──SigningKey::from_pem──► SigningKey ──public_jwk()──► register it
//!                                                       │
//! JwtClaims::jwt_bearer(..) ──sign(&key, now)──► oauth_core::Assertion ──► TokenRequest::jwt_bearer
//! JwtClaims::client_assertion(..) ──sign_client_assertion──► ClientAuthentication::Assertion
//! ```
//!
//! ```
//! use std::time::SystemTime;
//! use jwt_assertion::{Algorithm, JwtClaims, SigningKey};
//! use oauth_core::{Client, Endpoint, TokenRequest};
//!
//! # let pem = include_str!("../tests/keys/ed25519-pkcs8.pem");
//! let key = SigningKey::from_pem(pem, Algorithm::EdDSA)?;
//! let token_endpoint = "https://anypoint.mulesoft.com/accounts/api/v2/oauth2/token";
//! let assertion = JwtClaims::jwt_bearer(
//!     "my-client-id",
//!     "v2|0b132ac3-d8f6-44b2-953c-2333df741f05|jsmith|john|smith|jsmith@gmail.com|[community]",
//!     token_endpoint,
//! )
//! .sign(&key, SystemTime::now())?;
//! let request = TokenRequest::jwt_bearer(assertion)
//!     .build(&Endpoint::new(token_endpoint)?, &Client::anonymous())?;
//! # let _ = request;
//! # Ok::<(), Box<dyn std::error::Error>>(())
//! ```
//!
//! Algorithms: RS256, RS384, RS512, PS256, PS384, PS512 (RSA of 2048 bits or more), ES256,
//! ES384, EdDSA (Ed25519), HS256, HS384, HS512. Private keys and secrets never appear in
//! `Debug` output or errors.
//!
//! [ring]: https://docs.rs/ring
//!
//! # Features
//!
//! None: signing and verification are ring's, always on.
#![forbid(unsafe_code)]

mod der;
pub mod dpop;
mod jwt;
mod key;
mod signer;
pub mod verify;

use std::fmt;

pub use dpop::DpopKey;
pub use jwt::{DEFAULT_LIFETIME, Header, JwtClaims, sign_compact};
pub use key::{Signature, SigningKey};
pub use signer::{ClientAssertionSigner, JwtBearerSigner};

/// A JWS algorithm (RFC 7518 §3, RFC 8037 §3.1).
#[derive(Clone, Copy, Debug, PartialEq, Eq, Hash)]
#[non_exhaustive]
pub enum Algorithm {
    /// RSASSA-PKCS1-v1_5 with SHA-256.
    RS256,
    /// RSASSA-PKCS1-v1_5 with SHA-384.
    RS384,
    /// RSASSA-PKCS1-v1_5 with SHA-512.
    RS512,
    /// RSASSA-PSS with SHA-256.
    PS256,
    /// RSASSA-PSS with SHA-384.
    PS384,
    /// RSASSA-PSS with SHA-512.
    PS512,
    /// ECDSA on P-256 with SHA-256.
    ES256,
    /// ECDSA on P-384 with SHA-384.
    ES384,
    /// Ed25519.
    EdDSA,
    /// HMAC with SHA-256.
    HS256,
    /// HMAC with SHA-384.
    HS384,
    /// HMAC with SHA-512.
    HS512,
}

impl Algorithm {
    /// The algorithm an `alg` value names (exactly, as RFC 7518 spells it).
    pub fn from_name(name: &str) -> Option<Self> {
        verify::parse_alg(name)
    }

    /// Whether it signs with a public key (everything but HS*).
    pub fn is_asymmetric(self) -> bool {
        !matches!(self, Self::HS256 | Self::HS384 | Self::HS512)
    }

    /// The `alg` value.
    pub fn as_str(self) -> &'static str {
        match self {
            Self::RS256 => "RS256",
            Self::RS384 => "RS384",
            Self::RS512 => "RS512",
            Self::PS256 => "PS256",
            Self::PS384 => "PS384",
            Self::PS512 => "PS512",
            Self::ES256 => "ES256",
            Self::ES384 => "ES384",
            Self::EdDSA => "EdDSA",
            Self::HS256 => "HS256",
            Self::HS384 => "HS384",
            Self::HS512 => "HS512",
        }
    }
}

impl fmt::Display for Algorithm {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        f.write_str(self.as_str())
    }
}

/// Why a key could not be loaded. Messages say how to fix or convert the key, and never
/// contain key material.
#[derive(Clone, Debug, PartialEq, Eq)]
#[non_exhaustive]
pub enum KeyError {
    /// The PEM or DER is not well formed.
    Malformed(&'static str),
    /// The key is encrypted.
    Encrypted,
    /// An OpenSSH-format key.
    OpenSsh,
    /// The PEM holds something other than a private key (a certificate, a public key, ...).
    NotAPrivateKey {
        /// The PEM label found.
        label: String,
    },
    /// A key type this crate cannot sign with.
    Unsupported {
        /// What the key is.
        what: &'static str,
        /// How to get a usable key.
        hint: &'static str,
    },
    /// The key does not suit the algorithm.
    AlgorithmMismatch {
        /// The kind of key.
        key: &'static str,
        /// The algorithm asked for.
        alg: Algorithm,
    },
    /// The RSA key is shorter than 2048 bits (RFC 7518 §3.3).
    RsaTooSmall {
        /// Its size.
        bits: usize,
    },
    /// The HMAC secret is shorter than the hash output (RFC 7518 §3.2).
    SecretTooShort {
        /// The algorithm.
        alg: Algorithm,
        /// The minimum length in bytes.
        min: usize,
    },
    /// ring rejected the key (ring's reason).
    Rejected(String),
}

impl fmt::Display for KeyError {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        match self {
            Self::Malformed(why) => write!(f, "the key is malformed: {why}"),
            Self::Encrypted => f.write_str(
                "the key is encrypted; decrypt it to PKCS#8: \
                 openssl pkcs8 -topk8 -nocrypt -in key.pem -out key-plain.pem",
            ),
            Self::OpenSsh => f.write_str(
                "OpenSSH private keys are not supported; convert to PKCS#8: \
                 ssh-keygen -p -N \"\" -m PKCS8 -f key (this rewrites the file)",
            ),
            Self::NotAPrivateKey { label } => write!(
                f,
                "the PEM holds a `{}`, not a private key; use the PRIVATE KEY file",
                oauth_core_sanitize(label)
            ),
            Self::Unsupported { what, hint } => write!(f, "unsupported key: {what}; {hint}"),
            Self::AlgorithmMismatch { key, alg } => {
                write!(f, "a {key} key cannot sign {alg}")
            }
            Self::RsaTooSmall { bits } => write!(
                f,
                "the RSA key has {bits} bits; at least 2048 are required: \
                 openssl genpkey -algorithm RSA -pkeyopt rsa_keygen_bits:2048 -out key.pem"
            ),
            Self::SecretTooShort { alg, min } => {
                write!(
                    f,
                    "{alg} needs a secret of at least {min} bytes (RFC 7518 section 3.2)"
                )
            }
            Self::Rejected(why) => write!(
                f,
                "the key was rejected ({why}); PKCS#8 is the most widely accepted form: \
                 openssl pkcs8 -topk8 -nocrypt -in key.pem -out key.p8.pem"
            ),
        }
    }
}

impl std::error::Error for KeyError {}

fn oauth_core_sanitize(label: &str) -> String {
    label.chars().filter(|c| !c.is_control()).take(40).collect()
}

/// Why signing failed.
#[derive(Clone, Debug, PartialEq, Eq)]
#[non_exhaustive]
pub enum SignError {
    /// The cryptographic operation failed (ring gives no reason).
    Crypto,
    /// The random source failed while drawing a `jti`.
    Random,
    /// `now` is before 1970, so `iat` and `exp` cannot be expressed.
    TimeBeforeEpoch,
}

impl fmt::Display for SignError {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        f.write_str(match self {
            Self::Crypto => "signing failed",
            Self::Random => "the random source failed while drawing a jti",
            Self::TimeBeforeEpoch => "the time given is before 1970-01-01",
        })
    }
}

impl std::error::Error for SignError {}

/// ring's operating-system random source, as an oauth-core [`RandomSource`](oauth_core::RandomSource).
#[derive(Clone, Debug)]
pub struct RingRandom(ring::rand::SystemRandom);

impl RingRandom {
    /// The operating system's random source.
    pub fn new() -> Self {
        Self(ring::rand::SystemRandom::new())
    }
}

impl Default for RingRandom {
    fn default() -> Self {
        Self::new()
    }
}

impl oauth_core::RandomSource for RingRandom {
    fn fill(&self, dest: &mut [u8]) -> Result<(), oauth_core::RandomError> {
        ring::rand::SecureRandom::fill(&self.0, dest).map_err(|_| oauth_core::RandomError::new())
    }
}

pub(crate) fn b64url(bytes: &[u8]) -> String {
    use base64::Engine as _;
    base64::engine::general_purpose::URL_SAFE_NO_PAD.encode(bytes)
}
