//! JWS verification with ring (RFC 7515 compact form), and JWK sets (RFC 7517).
//!
//! The caller names the algorithms it accepts; the key comes from a [`KeySet`] the caller
//! trusts (its authorization server's JWKS, or the client secret for HS*), never from the
//! token: `none`, an algorithm outside the allowed list, an algorithm that does not fit the
//! key's type, a `jwk`/`jku`/`x5u`/`x5c` header, an unknown `crit` member and oversized input
//! are refused, each with its own [`VerifyError`].
//!
//! ```text
//! JWKS bytes ──KeySet::from_jwks──► KeySet ─┐
//!                                            ├─ verify(token, &keys, &[ES256, RS256]) ──► Verified { header, claims }
//! compact JWS ───────────────────────────────┘
//! ```

use std::fmt;

use base64::Engine as _;
use base64::engine::general_purpose::URL_SAFE_NO_PAD;
use ring::signature::{self, RsaPublicKeyComponents, UnparsedPublicKey};
use serde_json::{Map, Value};

use crate::Algorithm;

/// The longest compact JWS accepted (64 KiB): far above any real id_token or access token.
pub const MAX_TOKEN_LEN: usize = 64 * 1024;

/// The longest JWK set accepted (1 MiB), and the most keys kept from it.
pub const MAX_JWKS_LEN: usize = 1024 * 1024;
/// See [`MAX_JWKS_LEN`].
pub const MAX_KEYS: usize = 100;

/// A key that verifies signatures: one member of a JWK set, or an HMAC secret.
#[derive(Clone)]
pub struct VerifyingKey {
    kid: Option<String>,
    /// The JWK's `alg`, if it names one: the key is then used for that algorithm only.
    alg: Option<Algorithm>,
    material: Material,
}

#[derive(Clone)]
enum Material {
    Rsa { n: Vec<u8>, e: Vec<u8> },
    EcP256(Vec<u8>),
    EcP384(Vec<u8>),
    Ed25519(Vec<u8>),
    Hmac(Box<HmacKeys>),
}

/// One HMAC key per hash (ring binds the hash to the key).
struct HmacKeys {
    sha256: ring::hmac::Key,
    sha384: ring::hmac::Key,
    sha512: ring::hmac::Key,
}

impl Clone for HmacKeys {
    fn clone(&self) -> Self {
        Self {
            sha256: self.sha256.clone(),
            sha384: self.sha384.clone(),
            sha512: self.sha512.clone(),
        }
    }
}

impl fmt::Debug for VerifyingKey {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        let kind = match self.material {
            Material::Rsa { .. } => "RSA",
            Material::EcP256(_) => "EC P-256",
            Material::EcP384(_) => "EC P-384",
            Material::Ed25519(_) => "OKP Ed25519",
            // The secret is never shown.
            Material::Hmac(..) => "oct <redacted>",
        };
        f.debug_struct("VerifyingKey")
            .field("kid", &self.kid)
            .field("alg", &self.alg)
            .field("kty", &kind)
            .finish()
    }
}

impl VerifyingKey {
    /// A key for HS256/384/512: the client secret, for id_tokens signed with it (OpenID
    /// Connect Core §10.1).
    pub fn hmac(secret: &[u8]) -> Self {
        Self {
            kid: None,
            alg: None,
            material: Material::Hmac(Box::new(HmacKeys {
                sha256: ring::hmac::Key::new(ring::hmac::HMAC_SHA256, secret),
                sha384: ring::hmac::Key::new(ring::hmac::HMAC_SHA384, secret),
                sha512: ring::hmac::Key::new(ring::hmac::HMAC_SHA512, secret),
            })),
        }
    }

    /// A public key from one JWK (RFC 7517 §4; RFC 7518 §6; RFC 8037 §2). Private members, if
    /// any, are ignored. `oct` keys are refused here (a shared secret does not travel in a
    /// JWK set; use [`hmac`](Self::hmac)).
    pub fn from_jwk(jwk: &Value) -> Result<Self, JwkError> {
        let obj = jwk.as_object().ok_or(JwkError::NotAnObject)?;
        let text = |name: &'static str| -> Result<&str, JwkError> {
            obj.get(name)
                .and_then(Value::as_str)
                .ok_or(JwkError::Missing(name))
        };
        let bytes = |name: &'static str| -> Result<Vec<u8>, JwkError> {
            URL_SAFE_NO_PAD
                .decode(text(name)?)
                .map_err(|_| JwkError::Invalid(name))
        };
        let material = match text("kty")? {
            "RSA" => {
                let n = bytes("n")?;
                let e = bytes("e")?;
                // ring accepts 2048 to 8192 bits; refuse the rest here with a clear error.
                let bits = n.iter().skip_while(|b| **b == 0).count() * 8;
                if !(2040..=8192).contains(&bits) {
                    return Err(JwkError::Invalid("n (RSA keys of 2048 to 8192 bits)"));
                }
                Material::Rsa { n, e }
            }
            "EC" => {
                let (len, p256) = match text("crv")? {
                    "P-256" => (32, true),
                    "P-384" => (48, false),
                    _ => return Err(JwkError::Unsupported("crv")),
                };
                let (x, y) = (bytes("x")?, bytes("y")?);
                if x.len() != len || y.len() != len {
                    return Err(JwkError::Invalid("x/y (coordinates of the curve's size)"));
                }
                let mut point = Vec::with_capacity(1 + 2 * len);
                point.push(4);
                point.extend_from_slice(&x);
                point.extend_from_slice(&y);
                if p256 {
                    Material::EcP256(point)
                } else {
                    Material::EcP384(point)
                }
            }
            "OKP" => {
                if text("crv")? != "Ed25519" {
                    return Err(JwkError::Unsupported("crv"));
                }
                let x = bytes("x")?;
                if x.len() != 32 {
                    return Err(JwkError::Invalid("x (32 bytes)"));
                }
                Material::Ed25519(x)
            }
            "oct" => return Err(JwkError::Unsupported("kty oct (use VerifyingKey::hmac)")),
            _ => return Err(JwkError::Unsupported("kty")),
        };
        let alg = match obj.get("alg") {
            None | Some(Value::Null) => None,
            Some(Value::String(a)) => Some(parse_alg(a).ok_or(JwkError::Unsupported("alg"))?),
            Some(_) => return Err(JwkError::Invalid("alg")),
        };
        let key = Self {
            kid: obj.get("kid").and_then(Value::as_str).map(str::to_owned),
            alg,
            material,
        };
        if let Some(alg) = alg
            && !key.fits(alg)
        {
            return Err(JwkError::Invalid("alg (does not fit the key's type)"));
        }
        Ok(key)
    }

    /// The key id.
    pub fn kid(&self) -> Option<&str> {
        self.kid.as_deref()
    }

    /// Whether this key can verify `alg` (its type fits, and its own `alg`, if any, is `alg`).
    pub fn fits(&self, alg: Algorithm) -> bool {
        if self.alg.is_some_and(|a| a != alg) {
            return false;
        }
        use Algorithm::*;
        matches!(
            (&self.material, alg),
            (
                Material::Rsa { .. },
                RS256 | RS384 | RS512 | PS256 | PS384 | PS512
            ) | (Material::EcP256(_), ES256)
                | (Material::EcP384(_), ES384)
                | (Material::Ed25519(_), EdDSA)
                | (Material::Hmac(..), HS256 | HS384 | HS512)
        )
    }

    /// Whether `sig` is this key's signature of `input` with `alg` (for proofs whose key is
    /// their own, such as DPoP's).
    pub(crate) fn verify_signature(&self, alg: Algorithm, input: &[u8], sig: &[u8]) -> bool {
        self.fits(alg) && self.verify(alg, input, sig)
    }

    fn verify(&self, alg: Algorithm, input: &[u8], sig: &[u8]) -> bool {
        use Algorithm::*;
        let rsa = |params: &'static signature::RsaParameters, n: &[u8], e: &[u8]| {
            RsaPublicKeyComponents { n, e }
                .verify(params, input, sig)
                .is_ok()
        };
        match (&self.material, alg) {
            (Material::Rsa { n, e }, RS256) => rsa(&signature::RSA_PKCS1_2048_8192_SHA256, n, e),
            (Material::Rsa { n, e }, RS384) => rsa(&signature::RSA_PKCS1_2048_8192_SHA384, n, e),
            (Material::Rsa { n, e }, RS512) => rsa(&signature::RSA_PKCS1_2048_8192_SHA512, n, e),
            (Material::Rsa { n, e }, PS256) => rsa(&signature::RSA_PSS_2048_8192_SHA256, n, e),
            (Material::Rsa { n, e }, PS384) => rsa(&signature::RSA_PSS_2048_8192_SHA384, n, e),
            (Material::Rsa { n, e }, PS512) => rsa(&signature::RSA_PSS_2048_8192_SHA512, n, e),
            (Material::EcP256(point), ES256) => {
                UnparsedPublicKey::new(&signature::ECDSA_P256_SHA256_FIXED, point)
                    .verify(input, sig)
                    .is_ok()
            }
            (Material::EcP384(point), ES384) => {
                UnparsedPublicKey::new(&signature::ECDSA_P384_SHA384_FIXED, point)
                    .verify(input, sig)
                    .is_ok()
            }
            (Material::Ed25519(x), EdDSA) => UnparsedPublicKey::new(&signature::ED25519, x)
                .verify(input, sig)
                .is_ok(),
            (Material::Hmac(k), HS256) => ring::hmac::verify(&k.sha256, input, sig).is_ok(),
            (Material::Hmac(k), HS384) => ring::hmac::verify(&k.sha384, input, sig).is_ok(),
            (Material::Hmac(k), HS512) => ring::hmac::verify(&k.sha512, input, sig).is_ok(),
            _ => false,
        }
    }
}

pub(crate) fn parse_alg(text: &str) -> Option<Algorithm> {
    use Algorithm::*;
    Some(match text {
        "RS256" => RS256,
        "RS384" => RS384,
        "RS512" => RS512,
        "PS256" => PS256,
        "PS384" => PS384,
        "PS512" => PS512,
        "ES256" => ES256,
        "ES384" => ES384,
        "EdDSA" => EdDSA,
        "HS256" => HS256,
        "HS384" => HS384,
        "HS512" => HS512,
        _ => return None,
    })
}

/// The keys a verifier trusts: a JWK set's signature keys (RFC 7517 §5), or an HMAC secret.
#[derive(Clone, Debug, Default)]
pub struct KeySet {
    keys: Vec<VerifyingKey>,
}

impl KeySet {
    /// An empty set.
    pub fn new() -> Self {
        Self::default()
    }

    /// Adds a key.
    pub fn with(mut self, key: VerifyingKey) -> Self {
        self.keys.push(key);
        self
    }

    /// Parses a JWK set (`{"keys": [...]}`). Keys meant for encryption (`use: "enc"`) or whose
    /// `key_ops` do not include `verify` are left out, as are keys of a type or curve this
    /// crate does not verify with (RFC 7517 §5: ignore keys that are not understood); a
    /// malformed key of a known type is left out too, so one bad key does not take its
    /// siblings down. At most [`MAX_KEYS`] keys are kept.
    pub fn from_jwks(bytes: &[u8]) -> Result<Self, JwkError> {
        if bytes.len() > MAX_JWKS_LEN {
            return Err(JwkError::TooLarge);
        }
        // A member named twice is refused (see `oauth_core::json`).
        let doc: Value = oauth_core::json::from_slice(bytes).map_err(|_| JwkError::NotAnObject)?;
        let keys = doc
            .get("keys")
            .and_then(Value::as_array)
            .ok_or(JwkError::Missing("keys"))?;
        let mut out = Vec::new();
        for jwk in keys {
            if out.len() == MAX_KEYS {
                break;
            }
            if jwk
                .get("use")
                .and_then(Value::as_str)
                .is_some_and(|u| u != "sig")
            {
                continue;
            }
            if let Some(ops) = jwk.get("key_ops") {
                let verifies = ops
                    .as_array()
                    .is_some_and(|ops| ops.iter().any(|o| o.as_str() == Some("verify")));
                if !verifies {
                    continue;
                }
            }
            if let Ok(key) = VerifyingKey::from_jwk(jwk) {
                out.push(key);
            }
        }
        Ok(Self { keys: out })
    }

    /// The keys.
    pub fn keys(&self) -> &[VerifyingKey] {
        &self.keys
    }

    /// Whether a key with this `kid` is in the set.
    pub fn contains_kid(&self, kid: &str) -> bool {
        self.keys.iter().any(|k| k.kid() == Some(kid))
    }
}

/// Why a JWK or a JWK set was refused.
#[derive(Clone, Debug, PartialEq, Eq)]
#[non_exhaustive]
pub enum JwkError {
    /// Not a JSON object (or not JSON).
    NotAnObject,
    /// A required member is missing.
    Missing(&'static str),
    /// A member has an invalid value.
    Invalid(&'static str),
    /// A key type, curve or algorithm this crate does not verify with.
    Unsupported(&'static str),
    /// The set is larger than [`MAX_JWKS_LEN`].
    TooLarge,
}

impl fmt::Display for JwkError {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        match self {
            Self::NotAnObject => f.write_str("the JWK (set) is not a JSON object"),
            Self::Missing(m) => write!(f, "the JWK (set) lacks `{m}`"),
            Self::Invalid(m) => write!(f, "the JWK has an invalid `{m}`"),
            Self::Unsupported(m) => write!(f, "unsupported JWK `{m}`"),
            Self::TooLarge => write!(f, "the JWK set is larger than {MAX_JWKS_LEN} bytes"),
        }
    }
}

impl std::error::Error for JwkError {}

/// A verified JWS: its protected header and its payload as a JSON object.
#[derive(Clone)]
pub struct Verified {
    alg: Algorithm,
    header: Map<String, Value>,
    claims: Map<String, Value>,
}

impl fmt::Debug for Verified {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        // Claims may hold personal data; show their names only.
        f.debug_struct("Verified")
            .field("alg", &self.alg)
            .field("claims", &self.claims.keys().collect::<Vec<_>>())
            .finish_non_exhaustive()
    }
}

impl Verified {
    /// The algorithm it was signed with.
    pub fn alg(&self) -> Algorithm {
        self.alg
    }

    /// The protected header.
    pub fn header(&self) -> &Map<String, Value> {
        &self.header
    }

    /// The claims.
    pub fn claims(&self) -> &Map<String, Value> {
        &self.claims
    }

    /// Takes the claims out.
    pub fn into_claims(self) -> Map<String, Value> {
        self.claims
    }
}

/// Why a JWS was refused.
#[derive(Clone, Debug, PartialEq, Eq)]
#[non_exhaustive]
pub enum VerifyError {
    /// Longer than [`MAX_TOKEN_LEN`].
    TooLarge,
    /// Not three base64url segments with a JSON object header and payload.
    Malformed(&'static str),
    /// `alg: none`: an unsigned token is never accepted.
    Unsigned,
    /// An `alg` this crate does not know.
    UnknownAlgorithm(String),
    /// An `alg` the caller did not allow.
    AlgorithmNotAllowed(Algorithm),
    /// The header names its own key (`jwk`, `jku`, `x5u`, `x5c`): keys come from the
    /// verifier's key set only.
    EmbeddedKey(&'static str),
    /// `crit` names an extension this crate does not understand (RFC 7515 §4.1.11).
    UnknownCritical(String),
    /// No key in the set fits the `kid` and the algorithm (fetch the JWKS again if the `kid`
    /// is new: the server may have rotated its keys).
    NoKey {
        /// The token's `kid`.
        kid: Option<String>,
    },
    /// The signature does not verify with any fitting key.
    BadSignature,
}

impl fmt::Display for VerifyError {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        match self {
            Self::TooLarge => write!(f, "the token is longer than {MAX_TOKEN_LEN} bytes"),
            Self::Malformed(what) => write!(f, "malformed JWS: {what}"),
            Self::Unsigned => f.write_str("unsigned tokens (alg none) are not accepted"),
            Self::UnknownAlgorithm(a) => write!(f, "unknown JWS algorithm {a:?}"),
            Self::AlgorithmNotAllowed(a) => write!(f, "algorithm {a} is not allowed here"),
            Self::EmbeddedKey(h) => {
                write!(f, "the header names its own key (`{h}`): not accepted")
            }
            Self::UnknownCritical(c) => write!(f, "unknown critical header parameter {c:?}"),
            Self::NoKey { kid: Some(kid) } => write!(f, "no key with kid {kid:?} fits"),
            Self::NoKey { kid: None } => f.write_str("no key fits the token's algorithm"),
            Self::BadSignature => f.write_str("the signature does not verify"),
        }
    }
}

impl std::error::Error for VerifyError {}

/// Verifies a compact JWS with a key from `keys`, allowing only the algorithms in `allowed`.
///
/// The key is chosen by `kid` when the token names one, otherwise every key that fits the
/// algorithm is tried. Claims are returned unchecked: `exp`, `iss`, `aud` and friends are the
/// caller's (or a claims validator's) to check.
pub fn verify(token: &str, keys: &KeySet, allowed: &[Algorithm]) -> Result<Verified, VerifyError> {
    if token.len() > MAX_TOKEN_LEN {
        return Err(VerifyError::TooLarge);
    }
    let mut parts = token.splitn(4, '.');
    let (Some(h), Some(p), Some(s), None) =
        (parts.next(), parts.next(), parts.next(), parts.next())
    else {
        return Err(VerifyError::Malformed("not three segments"));
    };
    let object = |segment: &str, what: &'static str| -> Result<Map<String, Value>, VerifyError> {
        let bytes = URL_SAFE_NO_PAD
            .decode(segment)
            .map_err(|_| VerifyError::Malformed(what))?;
        // A member named twice is refused (see `oauth_core::json`).
        oauth_core::json::object_from_slice(&bytes).ok_or(VerifyError::Malformed(what))
    };
    let header = object(h, "the header is not a base64url JSON object")?;
    let alg = match header.get("alg") {
        Some(Value::String(a)) if a.eq_ignore_ascii_case("none") => {
            return Err(VerifyError::Unsigned);
        }
        Some(Value::String(a)) => parse_alg(a).ok_or_else(|| {
            VerifyError::UnknownAlgorithm(a.chars().filter(|c| !c.is_control()).take(32).collect())
        })?,
        _ => return Err(VerifyError::Malformed("no alg")),
    };
    if !allowed.contains(&alg) {
        return Err(VerifyError::AlgorithmNotAllowed(alg));
    }
    for embedded in ["jwk", "jku", "x5u", "x5c"] {
        if header.contains_key(embedded) {
            return Err(VerifyError::EmbeddedKey(embedded));
        }
    }
    if let Some(crit) = header.get("crit") {
        let names = crit
            .as_array()
            .filter(|a| !a.is_empty())
            .ok_or(VerifyError::Malformed("crit is not a non-empty array"))?;
        if let Some(first) = names.first() {
            // No extension is understood, so any critical one is refused.
            let name = first.as_str().unwrap_or("?");
            return Err(VerifyError::UnknownCritical(
                name.chars().filter(|c| !c.is_control()).take(32).collect(),
            ));
        }
    }
    let sig = URL_SAFE_NO_PAD
        .decode(s)
        .map_err(|_| VerifyError::Malformed("the signature is not base64url"))?;
    let kid = match header.get("kid") {
        None | Some(Value::Null) => None,
        Some(Value::String(k)) => Some(k.as_str()),
        Some(_) => return Err(VerifyError::Malformed("kid is not a string")),
    };
    let input = &token.as_bytes()[..h.len() + 1 + p.len()];
    let mut fitting = keys
        .keys
        .iter()
        .filter(|k| k.fits(alg))
        .filter(|k| kid.is_none() || k.kid.is_none() || k.kid.as_deref() == kid)
        .peekable();
    if fitting.peek().is_none() {
        return Err(VerifyError::NoKey {
            kid: kid.map(|k| k.chars().filter(|c| !c.is_control()).take(64).collect()),
        });
    }
    if !fitting.any(|k| k.verify(alg, input, &sig)) {
        return Err(VerifyError::BadSignature);
    }
    let claims = object(p, "the payload is not a base64url JSON object")?;
    Ok(Verified {
        alg,
        header,
        claims,
    })
}

/// Whether an id_token's `at_hash` (or `c_hash`) matches `value`, the access token (or the
/// code) it came with (OpenID Connect Core §3.1.3.8, §3.3.2.11): the base64url of the left half
/// of the hash of `value` with the hash of the token's algorithm (SHA-512 for EdDSA with
/// Ed25519). Compared in constant time.
pub fn token_hash_matches(alg: Algorithm, hash_claim: &str, value: &str) -> bool {
    use ring::digest;
    let algorithm = match alg {
        Algorithm::RS256 | Algorithm::PS256 | Algorithm::ES256 | Algorithm::HS256 => {
            &digest::SHA256
        }
        Algorithm::RS384 | Algorithm::PS384 | Algorithm::ES384 | Algorithm::HS384 => {
            &digest::SHA384
        }
        _ => &digest::SHA512,
    };
    let hash = digest::digest(algorithm, value.as_bytes());
    let half = &hash.as_ref()[..hash.as_ref().len() / 2];
    let expected = URL_SAFE_NO_PAD.encode(half);
    oauth_core::constant_time_eq(expected.as_bytes(), hash_claim.as_bytes())
}

/// Verifies an id_token end to end: the signature with `keys` and one of the `allowed`
/// algorithms, then `at_hash` against the `access_token` and `c_hash` against the `code` it
/// came with (when the token carries them and the value is given), then the claims
/// (oauth-core's [`validate_id_token_claims`](oauth_core::validate_id_token_claims): issuer,
/// audience, expiry, nonce, `auth_time`).
pub fn verify_id_token(
    token: &str,
    keys: &KeySet,
    allowed: &[Algorithm],
    checks: &oauth_core::IdTokenChecks<'_>,
    access_token: Option<&str>,
    code: Option<&str>,
) -> Result<oauth_core::IdTokenClaims, oauth_core::Error> {
    use oauth_core::{Error, IdTokenError};
    let verified = verify(token, keys, allowed)
        .map_err(|e| Error::InvalidIdToken(IdTokenError::Signature(e.to_string())))?;
    check_id_token(verified, checks, access_token, code)
}

/// The checks of [`verify_id_token`] after the signature: `at_hash`/`c_hash` (when present and
/// the value is given), then the claims. For an id_token verified elsewhere (by a key set that
/// fetches its keys).
pub fn check_id_token(
    verified: Verified,
    checks: &oauth_core::IdTokenChecks<'_>,
    access_token: Option<&str>,
    code: Option<&str>,
) -> Result<oauth_core::IdTokenClaims, oauth_core::Error> {
    use oauth_core::{Error, IdTokenError};
    let hash_checks = [
        ("at_hash", access_token, IdTokenError::AccessTokenHash),
        ("c_hash", code, IdTokenError::CodeHash),
    ];
    for (claim, value, error) in hash_checks {
        if let (Some(Value::String(hash)), Some(value)) = (verified.claims.get(claim), value)
            && !token_hash_matches(verified.alg, hash, value)
        {
            return Err(Error::InvalidIdToken(error));
        }
    }
    oauth_core::validate_id_token_claims(verified.claims, checks)
}

/// Verifies a JWT access token (RFC 9068) end to end: the signature with the issuer's `keys`
/// and one of the `allowed` algorithms, then the claims (oauth-core's
/// [`validate_jwt_access_token`](oauth_core::validate_jwt_access_token)). The result is an
/// active introspection result for `ApiPolicy::decide`.
pub fn verify_access_token(
    token: &str,
    keys: &KeySet,
    allowed: &[Algorithm],
    checks: &oauth_core::JwtAccessTokenChecks,
    now: std::time::SystemTime,
) -> Result<oauth_core::Introspection, oauth_core::InvalidTokenReason> {
    let verified =
        verify(token, keys, allowed).map_err(|_| oauth_core::InvalidTokenReason::BadSignature)?;
    oauth_core::validate_jwt_access_token(&verified.header, verified.claims, checks, now)
}
