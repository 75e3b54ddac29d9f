//! JAR (RFC 9101): an authorization request built from arbitrary parameters and sent as a
//! signed request object either fails with a typed error or yields a URL holding exactly
//! `client_id` and `request`, whose JWT verifies with the client's key and carries every
//! parameter as given (`iss` the client, `aud` the audience, a `typ` of
//! `oauth-authz-req+jwt`), never a panic.
//!
//! The input is lines: the client id, the audience, the scope (space-separated), then
//! `name=value` parameters.
#![no_main]

use std::sync::{Arc, OnceLock};
use std::time::{Duration, SystemTime};

use jwt_assertion::verify::{KeySet, VerifyingKey, verify};
use jwt_assertion::{Algorithm, ClientAssertionSigner, SigningKey};
use libfuzzer_sys::fuzz_target;
use oauth_core::client::authorization::AuthorizationRequest;
use oauth_core::random::{RandomError, RandomSource};
use oauth_core::Endpoint;

struct Counter(std::cell::Cell<u8>);

impl RandomSource for Counter {
    fn fill(&self, dest: &mut [u8]) -> Result<(), RandomError> {
        for b in dest {
            self.0.set(self.0.get().wrapping_add(1));
            *b = self.0.get();
        }
        Ok(())
    }
}

fn key() -> &'static (Arc<SigningKey>, KeySet) {
    static KEY: OnceLock<(Arc<SigningKey>, KeySet)> = OnceLock::new();
    KEY.get_or_init(|| {
        let key = SigningKey::generate(Algorithm::ES256).expect("a P-256 key");
        let jwk = key.public_jwk().expect("its public JWK");
        let set = KeySet::new().with(VerifyingKey::from_jwk(&jwk).expect("a verifying key"));
        (Arc::new(key), set)
    })
}

/// An independent decoder of the URL's query (percent-decoding, `+` as a space).
fn query(url: &str) -> Option<Vec<(String, String)>> {
    let decode = |s: &str| -> Option<String> {
        let bytes = s.as_bytes();
        let mut out = Vec::new();
        let mut i = 0;
        while i < bytes.len() {
            match bytes[i] {
                b'%' => {
                    let hex = std::str::from_utf8(bytes.get(i + 1..i + 3)?).ok()?;
                    out.push(u8::from_str_radix(hex, 16).ok()?);
                    i += 3;
                }
                b'+' => {
                    out.push(b' ');
                    i += 1;
                }
                b => {
                    out.push(b);
                    i += 1;
                }
            }
        }
        String::from_utf8(out).ok()
    };
    url.split_once('?')?
        .1
        .split('&')
        .map(|pair| {
            let (n, v) = pair.split_once('=')?;
            Some((decode(n)?, decode(v)?))
        })
        .collect()
}

fuzz_target!(|data: &[u8]| {
    let Ok(text) = std::str::from_utf8(data) else {
        return;
    };
    let mut lines = text.split('\n');
    let (Some(client_id), Some(audience), Some(scope)) = (lines.next(), lines.next(), lines.next())
    else {
        return;
    };
    let extras: Vec<(&str, &str)> = lines.filter_map(|l| l.split_once('=')).collect();
    let (signer_key, keys) = key();
    let endpoint = Endpoint::new("https://as.example/authorize").expect("an https endpoint");
    let mut request = AuthorizationRequest::new(endpoint, client_id)
        .redirect_uri("https://app.example/cb")
        .scope(scope.split(' ').filter(|s| !s.is_empty()));
    for (name, value) in &extras {
        request = request.param(*name, *value);
    }
    let now = SystemTime::UNIX_EPOCH + Duration::from_secs(1_800_000_000);
    let request = request.request_object(ClientAssertionSigner::new(Arc::clone(signer_key)), audience);
    let Ok(pending) = request.build_at(&Counter(std::cell::Cell::new(0)), now) else {
        return;
    };
    let params = query(pending.url()).expect("the URL's query decodes");
    let names: Vec<&str> = params.iter().map(|(n, _)| n.as_str()).collect();
    assert_eq!(names, ["client_id", "request"]);
    assert_eq!(params[0].1, client_id);
    let verified = verify(&params[1].1, keys, &[Algorithm::ES256]).expect("our object verifies");
    assert_eq!(verified.header()["typ"], "oauth-authz-req+jwt");
    let claims = verified.claims();
    assert_eq!(claims["iss"], client_id);
    assert_eq!(claims["client_id"], client_id);
    assert_eq!(claims["aud"], audience);
    assert_eq!(claims["exp"], 1_800_000_060u64);
    assert_eq!(claims["response_type"], "code");
    for (name, value) in &extras {
        match &claims[*name] {
            serde_json::Value::String(s) => assert_eq!(s, value, "{name}"),
            // Members RFC 9101 / OpenID Connect type as JSON (`max_age` a number,
            // `authorization_details` an array, `claims` an object) are sent typed.
            other => assert!(
                matches!(*name, "max_age" | "authorization_details" | "claims"),
                "{name}: {other}"
            ),
        }
    }
});
