//! DPoP (RFC 9449) for the client: proofs of possession of a key, sent with token requests and
//! with the requests that use a DPoP-bound token, and the server nonces they must carry.
//!
//! The core decides what goes into a proof and when (the method and URL, `ath` for resource
//! requests, the latest nonce for that server, one retry after `use_dpop_nonce`); the signing is
//! a [`DpopSigner`]'s (jwt-assertion's `DpopKey`, with ring).
//!
//! ```text
//! Client::with_dpop(Dpop::new(signer))
//!   token request ─► DPoP: proof(POST, token endpoint, nonce?)            ─► token_type DPoP
//!   resource call ─► Authorization: DPoP <token> + DPoP: proof(method, url, nonce?, ath)
//!   400 use_dpop_nonce / 401 DPoP error="use_dpop_nonce" + DPoP-Nonce ─► once more, with it
//! ```

use std::collections::HashMap;
use std::fmt;
use std::sync::{Arc, Mutex};
use std::time::SystemTime;

use http::header::WWW_AUTHENTICATE;
use http::{HeaderMap, HeaderName, HeaderValue, Method, Uri};

use crate::error::Error;

/// The `DPoP` request header.
pub const DPOP: HeaderName = HeaderName::from_static("dpop");
/// The `DPoP-Nonce` response header.
pub const DPOP_NONCE: HeaderName = HeaderName::from_static("dpop-nonce");

/// What a proof is about (RFC 9449 §4.2).
#[derive(Clone, Copy, Debug)]
#[non_exhaustive]
pub struct ProofContext<'a> {
    /// `htm`: the request's method.
    pub htm: &'a str,
    /// `htu`: the request's URL without query and fragment.
    pub htu: &'a str,
    /// `iat`: now.
    pub iat: SystemTime,
    /// `nonce`: the server's latest, if it gave one.
    pub nonce: Option<&'a str>,
    /// The access token the request carries: `ath` is its base64url SHA-256.
    pub access_token: Option<&'a str>,
}

impl<'a> ProofContext<'a> {
    /// A proof for `htm` `htu` at `iat`, without nonce or access token.
    pub fn new(htm: &'a str, htu: &'a str, iat: SystemTime) -> Self {
        Self {
            htm,
            htu,
            iat,
            nonce: None,
            access_token: None,
        }
    }

    /// With the server's nonce.
    pub fn nonce(mut self, nonce: Option<&'a str>) -> Self {
        self.nonce = nonce;
        self
    }

    /// For a request carrying this access token (`ath`).
    pub fn access_token(mut self, token: Option<&'a str>) -> Self {
        self.access_token = token;
        self
    }
}

/// Signs DPoP proofs with a key the client holds: header `typ: dpop+jwt`, `alg`, the public
/// `jwk`; claims `jti` (fresh), `htm`, `htu`, `iat`, and `nonce`, `ath` when given.
pub trait DpopSigner: Send + Sync {
    /// A new proof (compact JWS) for this request.
    fn sign_proof(&self, context: &ProofContext<'_>) -> Result<String, Error>;

    /// The RFC 7638 thumbprint of the public key: what the server binds tokens to
    /// (`cnf.jkt`), and the authorization request's `dpop_jkt`.
    fn thumbprint(&self) -> &str;
}

/// A client's DPoP key and the nonces servers gave it. Cheap to clone (shared).
#[derive(Clone)]
pub struct Dpop {
    signer: Arc<dyn DpopSigner>,
    nonces: Arc<Mutex<HashMap<String, String>>>,
}

impl fmt::Debug for Dpop {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        f.debug_struct("Dpop")
            .field("jkt", &self.signer.thumbprint())
            .finish_non_exhaustive()
    }
}

/// The most servers whose nonce is remembered (one per origin).
const MAX_NONCES: usize = 64;

impl Dpop {
    /// DPoP with this key.
    pub fn new(signer: impl DpopSigner + 'static) -> Self {
        Self {
            signer: Arc::new(signer),
            nonces: Arc::new(Mutex::new(HashMap::new())),
        }
    }

    /// The key's RFC 7638 thumbprint (`dpop_jkt`, `cnf.jkt`).
    pub fn thumbprint(&self) -> &str {
        self.signer.thumbprint()
    }

    /// The `DPoP` header for a request: `method` to `uri`, at `now`, carrying the latest nonce
    /// of that server, and `ath` for `access_token`.
    pub fn proof(
        &self,
        method: &Method,
        uri: &Uri,
        now: SystemTime,
        access_token: Option<&str>,
    ) -> Result<HeaderValue, Error> {
        let htu = htu(uri);
        let nonce = self.nonce(uri);
        let proof = self.signer.sign_proof(&ProofContext {
            htm: method.as_str(),
            htu: &htu,
            iat: now,
            nonce: nonce.as_deref(),
            access_token,
        })?;
        let mut value = HeaderValue::from_str(&proof)
            .map_err(|_| Error::InvalidHeaderValue { what: "DPoP" })?;
        value.set_sensitive(true);
        Ok(value)
    }

    /// The latest nonce the server at `uri` gave, if any.
    pub fn nonce(&self, uri: &Uri) -> Option<String> {
        self.lock().get(&origin(uri)).cloned()
    }

    /// Remembers the `DPoP-Nonce` of a response from the server at `uri` (RFC 9449 §8, §9);
    /// true if there was one.
    pub fn remember_nonce(&self, uri: &Uri, headers: &HeaderMap) -> bool {
        let Some(nonce) = headers
            .get(DPOP_NONCE)
            .and_then(|v| v.to_str().ok())
            .map(str::trim)
            .filter(|n| !n.is_empty() && n.len() <= 512)
        else {
            return false;
        };
        let mut nonces = self.lock();
        if nonces.len() >= MAX_NONCES && !nonces.contains_key(&origin(uri)) {
            nonces.clear();
        }
        nonces.insert(origin(uri), nonce.to_owned());
        true
    }

    fn lock(&self) -> std::sync::MutexGuard<'_, HashMap<String, String>> {
        self.nonces.lock().unwrap_or_else(|e| e.into_inner())
    }
}

/// Authorizes `request` with `token`: a DPoP-bound token (`token_type` DPoP) as
/// `Authorization: DPoP` with a proof made by `dpop` at `now` (RFC 9449 §7.1), any other as
/// `Authorization: Bearer` ([`authorize_request`](crate::authorize_request): only Bearer
/// tokens; a DPoP token without the key is [`Error::UnsupportedTokenType`]).
pub fn authorize_request_with<B>(
    request: &mut http::Request<B>,
    token: &crate::AccessToken,
    dpop: Option<&Dpop>,
    now: SystemTime,
) -> Result<(), Error> {
    let (crate::TokenType::DPoP, Some(dpop)) = (token.token_type(), dpop) else {
        return crate::authorize_request(request, token);
    };
    let proof = dpop.proof(
        request.method(),
        request.uri(),
        now,
        Some(token.expose_secret()),
    )?;
    let mut text = zeroize::Zeroizing::new(String::with_capacity(5 + token.expose_secret().len()));
    text.push_str("DPoP ");
    text.push_str(token.expose_secret());
    let mut value = HeaderValue::from_str(&text).map_err(|_| Error::InvalidHeaderValue {
        what: "access token",
    })?;
    value.set_sensitive(true);
    let headers = request.headers_mut();
    headers.insert(http::header::AUTHORIZATION, value);
    headers.insert(DPOP, proof);
    Ok(())
}

/// `htu` (RFC 9449 §4.2): the URL without its query and fragment.
pub fn htu(uri: &Uri) -> String {
    let scheme = uri.scheme_str().unwrap_or("https");
    let authority = uri.authority().map(|a| a.as_str()).unwrap_or_default();
    format!("{scheme}://{authority}{}", uri.path())
}

fn origin(uri: &Uri) -> String {
    let scheme = uri.scheme_str().unwrap_or("https");
    let authority = uri.authority().map(|a| a.as_str()).unwrap_or_default();
    format!("{scheme}://{}", authority.to_ascii_lowercase())
}

/// Whether a resource's answer asks for a DPoP nonce: `WWW-Authenticate: DPoP
/// error="use_dpop_nonce"` (RFC 9449 §9).
pub fn asks_for_dpop_nonce(headers: &HeaderMap) -> bool {
    headers.get_all(WWW_AUTHENTICATE).iter().any(|v| {
        v.to_str().is_ok_and(|text| {
            let text = text.trim_start();
            text.get(..4)
                .is_some_and(|s| s.eq_ignore_ascii_case("dpop"))
                && text.contains("use_dpop_nonce")
        })
    })
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn htu_drops_query_and_fragment() {
        let uri: Uri = "https://API.example:8443/v1/things?x=1#frag"
            .parse()
            .unwrap_or_default();
        assert_eq!(htu(&uri), "https://API.example:8443/v1/things");
        let uri: Uri = "https://as.example/token".parse().unwrap_or_default();
        assert_eq!(htu(&uri), "https://as.example/token");
    }

    struct Echo;

    impl DpopSigner for Echo {
        fn sign_proof(&self, c: &ProofContext<'_>) -> Result<String, Error> {
            Ok(format!(
                "{} {} {} {}",
                c.htm,
                c.htu,
                c.nonce.unwrap_or("-"),
                c.access_token.unwrap_or("-")
            ))
        }

        fn thumbprint(&self) -> &str {
            "jkt"
        }
    }

    #[test]
    fn nonces_are_per_server_and_the_latest_wins() {
        let dpop = Dpop::new(Echo);
        let api: Uri = "https://api.example/v1?q".parse().unwrap_or_default();
        let other: Uri = "https://as.example/token".parse().unwrap_or_default();
        let mut headers = HeaderMap::new();
        headers.insert(DPOP_NONCE, HeaderValue::from_static("n-1"));
        assert!(dpop.remember_nonce(&api, &headers));
        headers.insert(DPOP_NONCE, HeaderValue::from_static("n-2"));
        assert!(dpop.remember_nonce(&api, &headers));
        assert_eq!(dpop.nonce(&api).as_deref(), Some("n-2"));
        assert_eq!(dpop.nonce(&other), None);
        let proof = dpop
            .proof(&Method::GET, &api, SystemTime::UNIX_EPOCH, Some("at"))
            .unwrap_or_else(|e| panic!("{e}"));
        assert_eq!(proof, "GET https://api.example/v1 n-2 at");
        assert!(proof.is_sensitive());
        assert!(!dpop.remember_nonce(&api, &HeaderMap::new()));
    }

    #[test]
    fn the_nonce_challenge_is_recognised() {
        let mut headers = HeaderMap::new();
        headers.insert(
            WWW_AUTHENTICATE,
            HeaderValue::from_static(r#"DPoP error="use_dpop_nonce", error_description="Resource server requires nonce in DPoP proof""#),
        );
        assert!(asks_for_dpop_nonce(&headers));
        headers.insert(
            WWW_AUTHENTICATE,
            HeaderValue::from_static(r#"Bearer error="invalid_token""#),
        );
        assert!(!asks_for_dpop_nonce(&headers));
    }
}
