//! DPoP (RFC 9449) with ring: the client's key that signs proofs ([`DpopKey`], oauth-core's
//! `DpopSigner`), and the checks an API makes on a proof ([`verify_proof`]).

use std::fmt;
use std::time::{Duration, SystemTime};

use base64::Engine as _;
use base64::engine::general_purpose::URL_SAFE_NO_PAD;
use ring::digest;
use serde_json::{Map, Value};

use crate::verify::VerifyingKey;
use crate::{Algorithm, KeyError, SigningKey, b64url};

/// The `typ` of a DPoP proof.
pub const PROOF_TYPE: &str = "dpop+jwt";

/// The longest proof accepted (8 KiB: an RSA-4096 key and signature fit several times).
pub const MAX_PROOF_LEN: usize = 8 * 1024;

/// A client's DPoP key: signs a proof for every request (RFC 9449 §4). ES256 by default; any
/// asymmetric algorithm of this crate (not HS*: a proof carries the public key that checks it).
pub struct DpopKey {
    key: SigningKey,
    jwk: Value,
    thumbprint: String,
    /// `base64url(header)`: the same for every proof (`typ`, `alg`, `jwk`), encoded once.
    header: String,
    /// `jti` = a random prefix drawn when the key is made, and a counter: unique without a
    /// system call per proof.
    jti_prefix: String,
    counter: std::sync::atomic::AtomicU64,
}

impl fmt::Debug for DpopKey {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        f.debug_struct("DpopKey")
            .field("alg", &self.key.algorithm())
            .field("jkt", &self.thumbprint)
            .finish_non_exhaustive()
    }
}

impl DpopKey {
    /// A new ES256 key (P-256), made from the OS's randomness.
    pub fn generate() -> Result<Self, KeyError> {
        Self::generate_for(Algorithm::ES256)
    }

    /// A new key for `alg`: ES256, ES384 or EdDSA (ring makes no RSA keys: load one with
    /// [`DpopKey::new`]).
    pub fn generate_for(alg: Algorithm) -> Result<Self, KeyError> {
        Self::new(SigningKey::generate(alg)?)
    }

    /// Proofs signed with `key` (refused for HMAC keys).
    pub fn new(key: SigningKey) -> Result<Self, KeyError> {
        let (Some(full), Some(thumbprint)) = (key.public_jwk(), key.thumbprint()) else {
            return Err(KeyError::Unsupported {
                what: "an HMAC key for DPoP",
                hint: "DPoP needs an asymmetric key: DpopKey::generate() makes an ES256 one",
            });
        };
        // The public key's own members only (RFC 7638's required ones).
        let jwk = Value::Object(
            full.as_object()
                .map(|m| {
                    m.iter()
                        .filter(|(k, _)| {
                            matches!(k.as_str(), "kty" | "crv" | "x" | "y" | "n" | "e")
                        })
                        .map(|(k, v)| (k.clone(), v.clone()))
                        .collect()
                })
                .unwrap_or_default(),
        );
        let mut header = Map::new();
        header.insert("typ".into(), Value::String(PROOF_TYPE.into()));
        header.insert("alg".into(), Value::String(key.algorithm().as_str().into()));
        header.insert("jwk".into(), jwk.clone());
        let header = b64url(Value::Object(header).to_string().as_bytes());
        let mut prefix = [0u8; 12];
        ring::rand::SecureRandom::fill(&ring::rand::SystemRandom::new(), &mut prefix)
            .map_err(|_| KeyError::Malformed("no randomness for the jti prefix"))?;
        Ok(Self {
            key,
            jwk,
            thumbprint,
            header,
            jti_prefix: b64url(&prefix),
            counter: std::sync::atomic::AtomicU64::new(0),
        })
    }

    /// The public key, as it appears in every proof's `jwk` header.
    pub fn public_jwk(&self) -> &Value {
        &self.jwk
    }

    /// The key's RFC 7638 thumbprint (`cnf.jkt`, `dpop_jkt`).
    pub fn jkt(&self) -> &str {
        &self.thumbprint
    }

    /// oauth-core's `Dpop` for a `Client::with_dpop`.
    pub fn into_dpop(self) -> oauth_core::Dpop {
        oauth_core::Dpop::new(self)
    }

    /// A proof for `context` (what [`oauth_core::DpopSigner::sign_proof`] does).
    pub fn sign(&self, context: &oauth_core::ProofContext<'_>) -> Result<String, crate::SignError> {
        let n = self
            .counter
            .fetch_add(1, std::sync::atomic::Ordering::Relaxed);
        let iat = context
            .iat
            .duration_since(SystemTime::UNIX_EPOCH)
            .map(|d| d.as_secs())
            .unwrap_or_default();
        // The claims written straight into one buffer; strings escaped by serde_json.
        let mut claims = String::with_capacity(160 + context.htu.len());
        let string = |out: &mut String, text: &str| {
            out.push_str(&serde_json::to_string(text).unwrap_or_else(|_| "\"\"".into()));
        };
        claims.push_str("{\"jti\":\"");
        claims.push_str(&self.jti_prefix);
        claims.push_str(&format!("{n:x}\",\"htm\":"));
        string(&mut claims, context.htm);
        claims.push_str(",\"htu\":");
        string(&mut claims, context.htu);
        claims.push_str(&format!(",\"iat\":{iat}"));
        if let Some(nonce) = context.nonce {
            claims.push_str(",\"nonce\":");
            string(&mut claims, nonce);
        }
        if let Some(token) = context.access_token {
            claims.push_str(",\"ath\":\"");
            claims.push_str(&access_token_hash(token));
            claims.push('"');
        }
        claims.push('}');
        let mut out = String::with_capacity(self.header.len() + claims.len() * 4 / 3 + 100);
        out.push_str(&self.header);
        out.push('.');
        URL_SAFE_NO_PAD.encode_string(claims.as_bytes(), &mut out);
        let signature = self.key.sign(out.as_bytes())?;
        out.push('.');
        URL_SAFE_NO_PAD.encode_string(signature.as_ref(), &mut out);
        Ok(out)
    }
}

impl oauth_core::DpopSigner for DpopKey {
    fn sign_proof(
        &self,
        context: &oauth_core::ProofContext<'_>,
    ) -> Result<String, oauth_core::Error> {
        self.sign(context).map_err(Into::into)
    }

    fn thumbprint(&self) -> &str {
        &self.thumbprint
    }
}

/// `ath` (RFC 9449 §4.2): the base64url SHA-256 of the access token.
pub fn access_token_hash(token: &str) -> String {
    b64url(digest::digest(&digest::SHA256, token.as_bytes()).as_ref())
}

/// The RFC 7638 thumbprint of a public JWK (EC, RSA or OKP), `None` for anything else.
pub fn jwk_thumbprint(jwk: &Map<String, Value>) -> Option<String> {
    let text = |name: &str| jwk.get(name).and_then(Value::as_str);
    let members: Vec<(&str, &str)> = match text("kty")? {
        "EC" => vec![
            ("crv", text("crv")?),
            ("kty", "EC"),
            ("x", text("x")?),
            ("y", text("y")?),
        ],
        "RSA" => vec![("e", text("e")?), ("kty", "RSA"), ("n", text("n")?)],
        "OKP" => vec![("crv", text("crv")?), ("kty", "OKP"), ("x", text("x")?)],
        _ => return None,
    };
    let mut json = Map::new();
    for (k, v) in members {
        json.insert(k.to_owned(), Value::String(v.to_owned()));
    }
    // serde_json's map is ordered by key (as RFC 7638 §3.3 wants) and writes no whitespace.
    let canonical = Value::Object(json).to_string();
    Some(b64url(
        digest::digest(&digest::SHA256, canonical.as_bytes()).as_ref(),
    ))
}

/// What a proof must match (RFC 9449 §4.3).
#[derive(Clone, Copy, Debug)]
#[non_exhaustive]
pub struct ProofCheck<'a> {
    /// The request's method.
    pub htm: &'a str,
    /// The request's URL (its query and fragment are ignored).
    pub htu: &'a str,
    /// Now.
    pub now: SystemTime,
    /// How far `iat` may be from now, either way (60 s by default).
    pub window: Duration,
    /// The access token presented with the proof: `ath` must be its hash.
    pub access_token: Option<&'a str>,
    /// The nonce the server expects, if it requires one.
    pub nonce: Option<&'a str>,
    /// The algorithms accepted (asymmetric ones only; HS* are always refused).
    pub allowed: &'a [Algorithm],
}

impl<'a> ProofCheck<'a> {
    /// A proof for `htm` `htu` at `now`, within 60 s, with any asymmetric algorithm.
    pub fn new(htm: &'a str, htu: &'a str, now: SystemTime) -> Self {
        Self {
            htm,
            htu,
            now,
            window: Duration::from_secs(60),
            access_token: None,
            nonce: None,
            allowed: &[
                Algorithm::ES256,
                Algorithm::ES384,
                Algorithm::EdDSA,
                Algorithm::RS256,
                Algorithm::RS384,
                Algorithm::RS512,
                Algorithm::PS256,
                Algorithm::PS384,
                Algorithm::PS512,
            ],
        }
    }

    /// The access token the request carries.
    pub fn access_token(mut self, token: &'a str) -> Self {
        self.access_token = Some(token);
        self
    }

    /// The nonce the server expects.
    pub fn nonce(mut self, nonce: &'a str) -> Self {
        self.nonce = Some(nonce);
        self
    }

    /// How far `iat` may be from now.
    pub fn window(mut self, window: Duration) -> Self {
        self.window = window;
        self
    }
}

/// A proof that checked out.
#[derive(Clone, Debug, PartialEq, Eq)]
#[non_exhaustive]
pub struct CheckedProof {
    /// The RFC 7638 thumbprint of the proof's key: what `cnf.jkt` must equal.
    pub jkt: String,
    /// `jti`, for the replay check.
    pub jti: String,
    /// `iat`.
    pub iat: SystemTime,
}

/// Why a DPoP proof was refused (each an `invalid_dpop_proof`, except [`DpopError::Nonce`],
/// which is `use_dpop_nonce`).
#[derive(Clone, Debug, PartialEq, Eq)]
#[non_exhaustive]
pub enum DpopError {
    /// Not a compact JWS with JSON header and claims, or too long.
    Malformed(&'static str),
    /// `typ` is not `dpop+jwt`.
    Type,
    /// `alg` is `none`, symmetric, unknown or not accepted.
    Algorithm,
    /// The `jwk` header is missing, holds a private key, or does not fit `alg`.
    Key,
    /// The signature does not verify with the `jwk`.
    Signature,
    /// `htm` is not the request's method.
    Method,
    /// `htu` is not the request's URL.
    Url,
    /// `iat` is outside the window.
    Stale,
    /// `ath` is missing or not the hash of the presented token.
    AccessTokenHash,
    /// The nonce is missing or not the server's.
    Nonce,
    /// `jti` was seen before (a replay).
    Replayed,
}

impl DpopError {
    /// The RFC 9449 error code.
    pub fn error_code(&self) -> &'static str {
        match self {
            Self::Nonce => "use_dpop_nonce",
            _ => "invalid_dpop_proof",
        }
    }
}

impl fmt::Display for DpopError {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        f.write_str(match self {
            Self::Malformed(what) => what,
            Self::Type => "the proof's typ is not dpop+jwt",
            Self::Algorithm => "the proof's algorithm is not accepted",
            Self::Key => "the proof's jwk is missing, private, or does not fit its algorithm",
            Self::Signature => "the proof's signature does not verify",
            Self::Method => "the proof is for another method",
            Self::Url => "the proof is for another URL",
            Self::Stale => "the proof's iat is outside the accepted window",
            Self::AccessTokenHash => "the proof's ath does not match the access token",
            Self::Nonce => "a DPoP nonce is required",
            Self::Replayed => "the proof was used before",
        })
    }
}

impl std::error::Error for DpopError {}

/// Checks a DPoP proof (RFC 9449 §4.3): a compact JWS of `typ: dpop+jwt`, signed with an
/// accepted asymmetric algorithm by the public key in its `jwk` header; `htm` and `htu` those
/// of the request; `iat` within the window; `ath` the hash of the presented access token;
/// the nonce, when the server requires one. The replay check on `jti` is the caller's (it
/// needs memory across requests).
pub fn verify_proof(proof: &str, check: &ProofCheck<'_>) -> Result<CheckedProof, DpopError> {
    if proof.len() > MAX_PROOF_LEN {
        return Err(DpopError::Malformed("the proof is too long"));
    }
    let mut parts = proof.splitn(4, '.');
    let (Some(h), Some(p), Some(s), None) =
        (parts.next(), parts.next(), parts.next(), parts.next())
    else {
        return Err(DpopError::Malformed("the proof is not a compact JWS"));
    };
    let object = |segment: &str| -> Result<Map<String, Value>, DpopError> {
        let bytes = URL_SAFE_NO_PAD
            .decode(segment)
            .map_err(|_| DpopError::Malformed("the proof is not base64url"))?;
        // A member named twice is refused (see `oauth_core::json`).
        oauth_core::json::object_from_slice(&bytes).ok_or(DpopError::Malformed(
            "the proof is not JSON objects without duplicates",
        ))
    };
    let header = object(h)?;
    if !header
        .get("typ")
        .and_then(Value::as_str)
        .is_some_and(|t| t.eq_ignore_ascii_case(PROOF_TYPE))
    {
        return Err(DpopError::Type);
    }
    let alg = header
        .get("alg")
        .and_then(Value::as_str)
        .and_then(Algorithm::from_name)
        .filter(|a| a.is_asymmetric() && check.allowed.contains(a))
        .ok_or(DpopError::Algorithm)?;
    let jwk = header
        .get("jwk")
        .and_then(Value::as_object)
        .ok_or(DpopError::Key)?;
    if ["d", "p", "q", "dp", "dq", "qi", "k"]
        .iter()
        .any(|private| jwk.contains_key(*private))
    {
        return Err(DpopError::Key);
    }
    let key = VerifyingKey::from_jwk(&Value::Object(jwk.clone())).map_err(|_| DpopError::Key)?;
    if !key.fits(alg) {
        return Err(DpopError::Key);
    }
    let signature = URL_SAFE_NO_PAD
        .decode(s)
        .map_err(|_| DpopError::Malformed("the proof's signature is not base64url"))?;
    let input = &proof.as_bytes()[..h.len() + 1 + p.len()];
    if !key.verify_signature(alg, input, &signature) {
        return Err(DpopError::Signature);
    }
    let claims = object(p)?;
    let text = |name: &str| claims.get(name).and_then(Value::as_str);
    let jti = text("jti")
        .filter(|j| !j.is_empty() && j.len() <= 256)
        .ok_or(DpopError::Malformed("the proof has no usable jti"))?;
    if text("htm") != Some(check.htm) {
        return Err(DpopError::Method);
    }
    if !same_url(text("htu").ok_or(DpopError::Url)?, check.htu) {
        return Err(DpopError::Url);
    }
    let iat = claims
        .get("iat")
        .and_then(Value::as_u64)
        .and_then(|s| SystemTime::UNIX_EPOCH.checked_add(Duration::from_secs(s)))
        .ok_or(DpopError::Stale)?;
    let skew = match check.now.duration_since(iat) {
        Ok(age) => age,
        Err(ahead) => ahead.duration(),
    };
    if skew > check.window {
        return Err(DpopError::Stale);
    }
    if let Some(token) = check.access_token {
        let expected = access_token_hash(token);
        if !text("ath")
            .is_some_and(|ath| oauth_core::constant_time_eq(ath.as_bytes(), expected.as_bytes()))
        {
            return Err(DpopError::AccessTokenHash);
        }
    }
    if let Some(nonce) = check.nonce
        && text("nonce") != Some(nonce)
    {
        return Err(DpopError::Nonce);
    }
    Ok(CheckedProof {
        jkt: jwk_thumbprint(jwk).ok_or(DpopError::Key)?,
        jti: jti.to_owned(),
        iat,
    })
}

/// Whether two URLs are the same for `htu` (RFC 9449 §4.3: scheme and host without case, the
/// default port implied, query and fragment ignored, the path exact).
fn same_url(a: &str, b: &str) -> bool {
    fn parts(url: &str) -> Option<(String, String, String)> {
        let url = url.split(['?', '#']).next()?;
        let (scheme, rest) = url.split_once("://")?;
        let scheme = scheme.to_ascii_lowercase();
        let (authority, path) = match rest.find('/') {
            Some(i) => (&rest[..i], &rest[i..]),
            None => (rest, "/"),
        };
        let mut authority = authority.to_ascii_lowercase();
        let default = if scheme == "https" { ":443" } else { ":80" };
        if authority.ends_with(default) {
            authority.truncate(authority.len() - default.len());
        }
        Some((scheme, authority, path.to_owned()))
    }
    matches!((parts(a), parts(b)), (Some(x), Some(y)) if x == y)
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn urls_compare_as_rfc_9449_says() {
        assert!(same_url(
            "https://API.example:443/v1/x",
            "https://api.example/v1/x?q=1"
        ));
        assert!(!same_url(
            "https://api.example/v1/x",
            "https://api.example/v1/X"
        ));
        assert!(!same_url(
            "https://api.example/v1/x",
            "http://api.example/v1/x"
        ));
        assert!(!same_url(
            "https://api.example:8443/v1",
            "https://api.example/v1"
        ));
        assert!(!same_url("not a url", "https://api.example/"));
    }

    #[test]
    fn rfc_7638_thumbprint_example() {
        // RFC 7638 §3.1.
        let jwk = serde_json::json!({
            "kty": "RSA",
            "n": "0vx7agoebGcQSuuPiLJXZptN9nndrQmbXEps2aiAFbWhM78LhWx4cbbfAAtVT86zwu1RK7aPFFxuhDR1L6tSoc_BJECPebWKRXjBZCiFV4n3oknjhMstn64tZ_2W-5JsGY4Hc5n9yBXArwl93lqt7_RN5w6Cf0h4QyQ5v-65YGjQR0_FDW2QvzqY368QQMicAtaSqzs8KJZgnYb9c7d0zgdAZHzu6qMQvRL5hajrn1n91CbOpbISD08qNLyrdkt-bFTWhAI4vMQFh6WeZu0fM4lFd2NcRwr3XPksINHaQ-G_xBniIqbw0Ls1jF44-csFCur-kEgU8awapJzKnqDKgw",
            "e": "AQAB", "alg": "RS256", "kid": "2011-04-29",
        });
        let map = jwk.as_object().cloned().unwrap_or_default();
        assert_eq!(
            jwk_thumbprint(&map).as_deref(),
            Some("NzbLsXh8uDCcd-6MNwXF4W_7noWXFZAfHkxZsRGC9Xs")
        );
    }
}
