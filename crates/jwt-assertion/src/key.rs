//! Signing keys: loaded once from PEM or DER (or an HMAC secret), then reused for every
//! signature.

use std::fmt;

use ring::rand::SystemRandom;
use ring::signature::{self, EcdsaKeyPair, Ed25519KeyPair, KeyPair as _, RsaKeyPair};
use ring::{digest, hmac};
use serde_json::{Map, Value};

use crate::der::{self, Der};
use crate::{Algorithm, KeyError, SignError, b64url};

enum Inner {
    Rsa(RsaKeyPair, &'static dyn signature::RsaEncoding),
    Ecdsa(EcdsaKeyPair),
    Ed25519(Ed25519KeyPair),
    Hmac(hmac::Key),
}

/// A private key (or HMAC secret) ready to sign, with its algorithm and key id.
///
/// Parsed once; [`sign`](Self::sign) does no parsing. `Debug` shows the algorithm and key id
/// only.
///
/// ```
/// use jwt_assertion::{Algorithm, SigningKey};
///
/// let key = SigningKey::hmac(&[7u8; 32], Algorithm::HS256)?;
/// assert_eq!(key.algorithm(), Algorithm::HS256);
/// assert!(key.public_jwk().is_none());
/// # Ok::<(), jwt_assertion::KeyError>(())
/// ```
pub struct SigningKey {
    inner: Inner,
    alg: Algorithm,
    kid: Option<String>,
    jwk: Option<Jwk>,
    rng: SystemRandom,
}

impl fmt::Debug for SigningKey {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        f.debug_struct("SigningKey")
            .field("alg", &self.alg)
            .field("kid", &self.kid)
            .field("key", &format_args!("<redacted>"))
            .finish()
    }
}

impl SigningKey {
    /// Loads a private key from PEM: PKCS#8 (`PRIVATE KEY`) for every key type, PKCS#1
    /// (`RSA PRIVATE KEY`) for RSA, SEC1 (`EC PRIVATE KEY`, with or without a preceding
    /// `EC PARAMETERS` block) for P-256 and P-384.
    ///
    /// `alg` picks the signature scheme; it must suit the key (an RSA key for `RS*`/`PS*`, a
    /// P-256 key for `ES256`, an Ed25519 key for `EdDSA`).
    pub fn from_pem(pem: &str, alg: Algorithm) -> Result<Self, KeyError> {
        let blocks = der::parse_pem(pem)?;
        let mut unsupported = None;
        for block in &blocks {
            match block.label.as_str() {
                "PRIVATE KEY" => return Self::from_pkcs8_der(&block.der, alg),
                "RSA PRIVATE KEY" => return Self::from_pkcs1_der(&block.der, alg),
                "EC PRIVATE KEY" => return Self::from_sec1_der(&block.der, alg),
                "ENCRYPTED PRIVATE KEY" => return Err(KeyError::Encrypted),
                "OPENSSH PRIVATE KEY" => return Err(KeyError::OpenSsh),
                "EC PARAMETERS" => {}
                other => unsupported = Some(other.to_owned()),
            }
        }
        Err(match unsupported {
            Some(label) => KeyError::NotAPrivateKey { label },
            None => KeyError::Malformed("no PEM block found"),
        })
    }

    /// Loads a DER private key: PKCS#8, or else PKCS#1 (RSA) or SEC1 (EC).
    pub fn from_der(der: &[u8], alg: Algorithm) -> Result<Self, KeyError> {
        match Self::from_pkcs8_der(der, alg) {
            Err(KeyError::Malformed(_)) => {}
            other => return other,
        }
        match alg {
            Algorithm::ES256 | Algorithm::ES384 => Self::from_sec1_der(der, alg),
            _ => Self::from_pkcs1_der(der, alg),
        }
    }

    /// Loads a PKCS#8 (v1 or v2) DER private key.
    pub fn from_pkcs8_der(der: &[u8], alg: Algorithm) -> Result<Self, KeyError> {
        let (key_oid, curve) = pkcs8_algorithm(der)?;
        match key_oid {
            o if o == der::OID_RSA => {
                let pair = RsaKeyPair::from_pkcs8(der)
                    .map_err(|e| rsa_rejected(e, pkcs8_private_key(der).ok()))?;
                Self::rsa(pair, alg)
            }
            o if o == der::OID_EC => {
                let ring_alg = ecdsa_alg(alg, curve)?;
                let pair = EcdsaKeyPair::from_pkcs8(ring_alg, der, &SystemRandom::new())
                    .map_err(rejected)?;
                Self::ecdsa(pair, alg)
            }
            o if o == der::OID_ED25519 => {
                if alg != Algorithm::EdDSA {
                    return Err(KeyError::AlgorithmMismatch {
                        key: "Ed25519",
                        alg,
                    });
                }
                // openssl writes PKCS#8 v1 (no public key); ring derives it.
                let pair = Ed25519KeyPair::from_pkcs8_maybe_unchecked(der).map_err(rejected)?;
                Self::ed25519(pair)
            }
            o if o == der::OID_RSA_PSS => Err(KeyError::Unsupported {
                what: "an RSASSA-PSS-restricted RSA key (id-RSASSA-PSS)",
                hint: "convert it to a plain RSA key: openssl pkey -in key.pem -out rsa.pem \
                       (or generate one with openssl genpkey -algorithm RSA)",
            }),
            o if o == der::OID_X25519 => Err(KeyError::Unsupported {
                what: "an X25519 key (key agreement, not signing)",
                hint: "generate a signing key: openssl genpkey -algorithm ed25519 -out key.pem",
            }),
            o if o == der::OID_ED448 => Err(KeyError::Unsupported {
                what: "an Ed448 key",
                hint: "generate an Ed25519 key: openssl genpkey -algorithm ed25519 -out key.pem",
            }),
            _ => Err(KeyError::Unsupported {
                what: "a key of an unknown type",
                hint: "use an RSA (2048 bits or more), P-256, P-384 or Ed25519 key in PKCS#8",
            }),
        }
    }

    /// Loads a PKCS#1 `RSAPrivateKey` DER (what `openssl genrsa -traditional` writes).
    pub fn from_pkcs1_der(der: &[u8], alg: Algorithm) -> Result<Self, KeyError> {
        let pair = RsaKeyPair::from_der(der).map_err(|e| rsa_rejected(e, Some(der)))?;
        Self::rsa(pair, alg)
    }

    /// Loads a SEC1 `ECPrivateKey` DER (what `openssl ecparam -genkey` writes).
    pub fn from_sec1_der(der: &[u8], alg: Algorithm) -> Result<Self, KeyError> {
        // ECPrivateKey ::= SEQUENCE { version INTEGER (1), privateKey OCTET STRING,
        //   parameters [0] OID OPTIONAL, publicKey [1] BIT STRING OPTIONAL }
        let mut outer = Der(der);
        let mut seq = Der(outer.expect(der::SEQUENCE)?);
        if seq.expect(der::INTEGER)? != [1] {
            return Err(KeyError::Malformed("SEC1 key version is not 1"));
        }
        let private = seq.expect(der::OCTET_STRING)?;
        let mut curve = None;
        let mut public = None;
        while !seq.is_empty() {
            match seq.read()? {
                (der::CONTEXT_0, v) => curve = Some(Der(v).expect(der::OID)?),
                (der::CONTEXT_1, v) => {
                    let bits = Der(v).expect(der::BIT_STRING)?;
                    // The first byte of a BIT STRING counts unused bits; it is 0 here.
                    public = bits.split_first().map(|(_, point)| point);
                }
                _ => {}
            }
        }
        let public = public.ok_or(KeyError::Unsupported {
            what: "a SEC1 EC key without its public key",
            hint: "convert it to PKCS#8: openssl pkcs8 -topk8 -nocrypt -in key.pem -out key.p8.pem",
        })?;
        let ring_alg = ecdsa_alg(alg, curve)?;
        let pair = EcdsaKeyPair::from_private_key_and_public_key(
            ring_alg,
            private,
            public,
            &SystemRandom::new(),
        )
        .map_err(rejected)?;
        Self::ecdsa(pair, alg)
    }

    /// An HMAC key for `HS256`, `HS384` or `HS512` (`client_secret_jwt`): the client secret's
    /// bytes. RFC 7518 §3.2 requires at least as many bytes as the hash output (32, 48, 64).
    pub fn hmac(secret: &[u8], alg: Algorithm) -> Result<Self, KeyError> {
        let (ring_alg, min) = match alg {
            Algorithm::HS256 => (hmac::HMAC_SHA256, 32),
            Algorithm::HS384 => (hmac::HMAC_SHA384, 48),
            Algorithm::HS512 => (hmac::HMAC_SHA512, 64),
            _ => {
                return Err(KeyError::AlgorithmMismatch {
                    key: "an HMAC secret",
                    alg,
                });
            }
        };
        if secret.len() < min {
            return Err(KeyError::SecretTooShort { alg, min });
        }
        Ok(Self {
            inner: Inner::Hmac(hmac::Key::new(ring_alg, secret)),
            alg,
            kid: None,
            jwk: None,
            rng: SystemRandom::new(),
        })
    }

    fn rsa(pair: RsaKeyPair, alg: Algorithm) -> Result<Self, KeyError> {
        let encoding: &'static dyn signature::RsaEncoding = match alg {
            Algorithm::RS256 => &signature::RSA_PKCS1_SHA256,
            Algorithm::RS384 => &signature::RSA_PKCS1_SHA384,
            Algorithm::RS512 => &signature::RSA_PKCS1_SHA512,
            Algorithm::PS256 => &signature::RSA_PSS_SHA256,
            Algorithm::PS384 => &signature::RSA_PSS_SHA384,
            Algorithm::PS512 => &signature::RSA_PSS_SHA512,
            _ => return Err(KeyError::AlgorithmMismatch { key: "RSA", alg }),
        };
        let bits = pair.public().modulus_len() * 8;
        if bits < 2048 {
            return Err(KeyError::RsaTooSmall { bits });
        }
        // ring checks the key's structure but not every CRT value; it does verify each
        // signature before returning it. Sign once here, so that a damaged key file is refused
        // when loaded (found by the key_loading fuzz target) rather than on every request.
        let mut probe = vec![0; pair.public().modulus_len()];
        pair.sign(encoding, &SystemRandom::new(), b"key self-test", &mut probe)
            .map_err(|_| {
                KeyError::Rejected("the RSA private key's values are inconsistent".into())
            })?;
        // RSAPublicKey ::= SEQUENCE { modulus INTEGER, publicExponent INTEGER }
        let mut seq = Der(Der(pair.public().as_ref()).expect(der::SEQUENCE)?);
        let n = strip_zero(seq.expect(der::INTEGER)?);
        let e = strip_zero(seq.expect(der::INTEGER)?);
        let jwk = Jwk::new(vec![
            ("e", b64url(e)),
            ("kty", "RSA".into()),
            ("n", b64url(n)),
        ]);
        Ok(Self::asymmetric(Inner::Rsa(pair, encoding), alg, jwk))
    }

    fn ecdsa(pair: EcdsaKeyPair, alg: Algorithm) -> Result<Self, KeyError> {
        let point = pair.public_key().as_ref();
        let (crv, len) = match alg {
            Algorithm::ES256 => ("P-256", 32),
            _ => ("P-384", 48),
        };
        // Uncompressed point: 0x04 || x || y.
        let coords = point
            .get(1..)
            .filter(|c| c.len() == 2 * len)
            .ok_or(KeyError::Malformed("unexpected EC public key encoding"))?;
        let (x, y) = coords.split_at(len);
        let jwk = Jwk::new(vec![
            ("crv", crv.into()),
            ("kty", "EC".into()),
            ("x", b64url(x)),
            ("y", b64url(y)),
        ]);
        Ok(Self::asymmetric(Inner::Ecdsa(pair), alg, jwk))
    }

    fn ed25519(pair: Ed25519KeyPair) -> Result<Self, KeyError> {
        let x = b64url(pair.public_key().as_ref());
        let jwk = Jwk::new(vec![
            ("crv", "Ed25519".into()),
            ("kty", "OKP".into()),
            ("x", x),
        ]);
        Ok(Self::asymmetric(
            Inner::Ed25519(pair),
            Algorithm::EdDSA,
            jwk,
        ))
    }

    fn asymmetric(inner: Inner, alg: Algorithm, jwk: Jwk) -> Self {
        Self {
            inner,
            alg,
            kid: Some(jwk.thumbprint()),
            jwk: Some(jwk),
            rng: SystemRandom::new(),
        }
    }

    /// A new key for `alg`, made from the OS's randomness: ES256, ES384 or EdDSA (ring makes
    /// no RSA keys; HMAC secrets come from the server).
    pub fn generate(alg: Algorithm) -> Result<Self, KeyError> {
        let rng = SystemRandom::new();
        let failed = |_| KeyError::Malformed("the key could not be generated");
        let pkcs8 = match alg {
            Algorithm::ES256 => {
                EcdsaKeyPair::generate_pkcs8(&signature::ECDSA_P256_SHA256_FIXED_SIGNING, &rng)
                    .map_err(failed)?
            }
            Algorithm::ES384 => {
                EcdsaKeyPair::generate_pkcs8(&signature::ECDSA_P384_SHA384_FIXED_SIGNING, &rng)
                    .map_err(failed)?
            }
            Algorithm::EdDSA => Ed25519KeyPair::generate_pkcs8(&rng).map_err(failed)?,
            _ => {
                return Err(KeyError::Unsupported {
                    what: "generating a key for this algorithm",
                    hint: "generate ES256, ES384 or EdDSA keys, or load an RSA key from PEM",
                });
            }
        };
        Self::from_pkcs8_der(pkcs8.as_ref(), alg)
    }

    /// Replaces the key id (by default the RFC 7638 thumbprint of the public key; none for HMAC).
    pub fn with_kid(mut self, kid: impl Into<String>) -> Self {
        self.kid = Some(kid.into());
        self
    }

    /// The algorithm.
    pub fn algorithm(&self) -> Algorithm {
        self.alg
    }

    /// The key id sent in the `kid` header.
    pub fn kid(&self) -> Option<&str> {
        self.kid.as_deref()
    }

    /// The public key as a JWK (RFC 7517), to register with the authorization server (an
    /// Anypoint connected app's `public_keys`, a client's `jwks`). `None` for HMAC.
    pub fn public_jwk(&self) -> Option<Value> {
        let jwk = self.jwk.as_ref()?;
        let mut map = jwk.members();
        if let Some(kid) = &self.kid {
            map.insert("kid".into(), Value::String(kid.clone()));
        }
        map.insert("alg".into(), Value::String(self.alg.as_str().into()));
        map.insert("use".into(), Value::String("sig".into()));
        Some(Value::Object(map))
    }

    /// The RFC 7638 SHA-256 thumbprint of the public key, base64url. `None` for HMAC.
    pub fn thumbprint(&self) -> Option<String> {
        self.jwk.as_ref().map(Jwk::thumbprint)
    }

    /// Signs `signing_input` (the `header.payload` of a JWS) and returns the raw signature.
    pub fn sign(&self, signing_input: &[u8]) -> Result<Signature, SignError> {
        Ok(Signature(match &self.inner {
            Inner::Rsa(pair, encoding) => {
                let mut sig = vec![0; pair.public().modulus_len()];
                pair.sign(*encoding, &self.rng, signing_input, &mut sig)
                    .map_err(|_| SignError::Crypto)?;
                SignatureBytes::Rsa(sig)
            }
            Inner::Ecdsa(pair) => SignatureBytes::Ring(
                pair.sign(&self.rng, signing_input)
                    .map_err(|_| SignError::Crypto)?,
            ),
            Inner::Ed25519(pair) => SignatureBytes::Ring(pair.sign(signing_input)),
            Inner::Hmac(key) => SignatureBytes::Hmac(hmac::sign(key, signing_input)),
        }))
    }
}

/// A signature, kept in the buffer ring produced it in (no copy on the signing path).
#[derive(Clone)]
pub struct Signature(SignatureBytes);

impl fmt::Debug for Signature {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        write!(f, "Signature({} bytes)", self.as_ref().len())
    }
}

#[derive(Clone)]
enum SignatureBytes {
    Rsa(Vec<u8>),
    Ring(signature::Signature),
    Hmac(hmac::Tag),
}

impl AsRef<[u8]> for Signature {
    fn as_ref(&self) -> &[u8] {
        match &self.0 {
            SignatureBytes::Rsa(v) => v,
            SignatureBytes::Ring(s) => s.as_ref(),
            SignatureBytes::Hmac(t) => t.as_ref(),
        }
    }
}

fn rejected(e: ring::error::KeyRejected) -> KeyError {
    KeyError::Rejected(e.to_string())
}

/// ring refuses RSA keys under 2048 bits itself; say so with the size and the fix.
fn rsa_rejected(e: ring::error::KeyRejected, pkcs1: Option<&[u8]>) -> KeyError {
    let bits = pkcs1.and_then(|der| {
        let mut seq = Der(Der(der).expect(der::SEQUENCE).ok()?);
        seq.expect(der::INTEGER).ok()?;
        let n = strip_zero(seq.expect(der::INTEGER).ok()?);
        let top = n.first()?;
        Some((n.len() - 1) * 8 + (8 - top.leading_zeros() as usize))
    });
    match bits {
        Some(bits) if bits < 2048 => KeyError::RsaTooSmall { bits },
        _ => rejected(e),
    }
}

/// The `privateKey` OCTET STRING of a PKCS#8 `PrivateKeyInfo`.
fn pkcs8_private_key(der: &[u8]) -> Result<&[u8], KeyError> {
    let mut seq = Der(Der(der).expect(der::SEQUENCE)?);
    seq.expect(der::INTEGER)?;
    seq.expect(der::SEQUENCE)?;
    seq.expect(der::OCTET_STRING)
}

fn strip_zero(int: &[u8]) -> &[u8] {
    match int.split_first() {
        Some((0, rest)) if !rest.is_empty() => rest,
        _ => int,
    }
}

fn ecdsa_alg(
    alg: Algorithm,
    curve: Option<&[u8]>,
) -> Result<&'static signature::EcdsaSigningAlgorithm, KeyError> {
    let (ring_alg, oid) = match alg {
        Algorithm::ES256 => (&signature::ECDSA_P256_SHA256_FIXED_SIGNING, der::OID_P256),
        Algorithm::ES384 => (&signature::ECDSA_P384_SHA384_FIXED_SIGNING, der::OID_P384),
        _ => return Err(KeyError::AlgorithmMismatch { key: "EC", alg }),
    };
    match curve {
        Some(c) if c == oid => Ok(ring_alg),
        Some(c) if c == der::OID_P256 || c == der::OID_P384 => {
            let key = if c == der::OID_P256 { "P-256" } else { "P-384" };
            Err(KeyError::AlgorithmMismatch { key, alg })
        }
        Some(_) => Err(KeyError::Unsupported {
            what: "an EC key on a curve other than P-256 or P-384",
            hint: "generate a P-256 key: openssl genpkey -algorithm EC -pkeyopt ec_paramgen_curve:P-256 -out key.pem",
        }),
        // ring checks the curve itself when the parameters are absent.
        None => Ok(ring_alg),
    }
}

/// The key algorithm OID and (for EC) the curve OID of a PKCS#8 `PrivateKeyInfo`.
fn pkcs8_algorithm(der: &[u8]) -> Result<(&[u8], Option<&[u8]>), KeyError> {
    let mut seq = Der(Der(der).expect(der::SEQUENCE)?);
    seq.expect(der::INTEGER)?;
    let mut alg = Der(seq.expect(der::SEQUENCE)?);
    let oid = alg.expect(der::OID)?;
    let curve = match alg.peek_tag() {
        Some(der::OID) => Some(alg.expect(der::OID)?),
        _ => None,
    };
    Ok((oid, curve))
}

/// The public members of a JWK, kept sorted by name for the RFC 7638 thumbprint.
#[derive(Clone, Debug)]
struct Jwk {
    members: Vec<(&'static str, String)>,
}

impl Jwk {
    fn new(members: Vec<(&'static str, String)>) -> Self {
        Self { members }
    }

    fn members(&self) -> Map<String, Value> {
        self.members
            .iter()
            .map(|(k, v)| ((*k).to_owned(), Value::String(v.clone())))
            .collect()
    }

    /// RFC 7638 §3: SHA-256 of the required members, sorted, without whitespace.
    fn thumbprint(&self) -> String {
        let mut json = String::from("{");
        for (i, (k, v)) in self.members.iter().enumerate() {
            if i > 0 {
                json.push(',');
            }
            // Member values are base64url or fixed names: no escaping is needed.
            json.push_str(&format!("\"{k}\":\"{v}\""));
        }
        json.push('}');
        b64url(digest::digest(&digest::SHA256, json.as_bytes()).as_ref())
    }
}
