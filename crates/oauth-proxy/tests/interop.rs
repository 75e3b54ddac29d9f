//! The gateway binary in front of oidc-provider (panva's OpenID Certified server): each
//! validation mode with the provider's own tokens. Opaque access tokens through introspection,
//! JWT access tokens (RFC 9068, issued for a resource indicator) checked with the keys at its
//! `jwks_uri`, `auto` taking each where it belongs, and DPoP-bound tokens of both kinds, with
//! their proofs, on a route that requires them.
//!
//! Ignored by a plain `cargo test`: it needs Node and `npm ci` in interop/oidc-provider.
//! `cargo xtask interop` does both and runs it (CI does too).
#![allow(clippy::unwrap_used, clippy::expect_used, clippy::panic)]

mod support;

use std::time::SystemTime;

use conformance::Harness as _;
use conformance::oidc_provider::{
    self as interop, JWT_RESOURCE, OPAQUE_RESOURCE, OidcProvider, SECRET,
};
use jwt_assertion::DpopKey;
use oauth_core::TokenRequest;
use support::{Proxy, Upstream, agent, scratch};

fn route(prefix: &str, extra: &str) -> String {
    format!(
        "\n[[route]]\nprefix = \"{prefix}\"\napi = \"orders\"\nscopes = [\"api:read\"]\n{extra}\n"
    )
}

/// `GET url` with `Authorization: scheme token` and, if given, a DPoP proof.
fn call(url: &str, scheme: &str, token: &str, proof: Option<&str>) -> u16 {
    let mut request = agent()
        .get(url)
        .header("authorization", &format!("{scheme} {token}"));
    if let Some(proof) = proof {
        request = request.header("dpop", proof);
    }
    let mut response = request.call().unwrap();
    let _ = response.body_mut().read_to_string();
    response.status().as_u16()
}

#[test]
#[ignore = "needs Node and oidc-provider: cargo xtask interop"]
fn every_mode_with_oidc_provider_tokens() {
    let p = OidcProvider::shared();
    let h: conformance::Ureq = p.harness();
    let m = p.discover(&h);
    let upstream = Upstream::start();
    let dir = scratch("interop");
    let store = oauth_gateway::RedbContracts::open(dir.join("contracts.redb")).unwrap();
    let mut set = oauth_gateway::ContractSet::new();
    set.insert(oauth_gateway::Contract::new("cc-basic", "orders"));
    store.replace_all(&set).unwrap();
    drop(store);
    let ca = dir.join("provider-ca.pem");
    std::fs::write(&ca, &p.ca_pem).unwrap();
    let routes = [
        route("/introspected", "mode = \"introspection\""),
        route("/jwt", "mode = \"jwt\""),
        route("/auto", ""),
        route("/bound", "dpop = \"required\""),
    ]
    .concat();
    let config = format!(
        r#"upstream = "http://127.0.0.1:{port}"
[introspection]
endpoint = "{introspect}"
client_id = "gateway"
client_secret_env = "GATEWAY_SECRET"
ca_file = "{ca}"

[[issuer]]
issuer = "{issuer}"
audience = "{JWT_RESOURCE}"
jwks_uri = "{jwks}"
ca_file = "{ca}"
{routes}"#,
        port = upstream.port,
        introspect = m.introspection_endpoint().unwrap().as_str(),
        ca = ca.display(),
        issuer = p.issuer,
        jwks = m.jwks_uri().unwrap().as_str(),
    );
    let proxy = Proxy::start(&config, &dir, &[("GATEWAY_SECRET", SECRET.to_owned())]);

    let endpoint = m.token_endpoint().unwrap();
    let token = |id: &str, resource: &str, client: Option<oauth_core::Client>| {
        let client = client.unwrap_or_else(|| interop::secret_client(id, id == "cc-post"));
        h.request_token(
            endpoint,
            &client,
            &TokenRequest::client_credentials()
                .scope(["api:read"])
                .resource(resource),
        )
        .unwrap_or_else(|e| panic!("{id} {resource}: {e}"))
        .access_token()
        .expose_secret()
        .to_owned()
    };
    let opaque = token("cc-basic", OPAQUE_RESOURCE, None);
    let jwt = token("cc-basic", JWT_RESOURCE, None);
    assert!(interop::jwt_claims(&jwt).is_some() && interop::jwt_claims(&opaque).is_none());
    let url = |path: &str| proxy.url(path);

    // Introspection: the opaque token. A JWT from the provider is introspected too (it is
    // active there), but its audience is the JWT resource, not checked on this route.
    assert_eq!(call(&url("/introspected/1"), "Bearer", &opaque, None), 200);
    // JWT: local validation only; an opaque token is no JWT from a configured issuer.
    assert_eq!(call(&url("/jwt/1"), "Bearer", &jwt, None), 200);
    assert_eq!(call(&url("/jwt/1"), "Bearer", &opaque, None), 401);
    // Auto: each where it belongs.
    assert_eq!(call(&url("/auto/1"), "Bearer", &jwt, None), 200);
    assert_eq!(call(&url("/auto/1"), "Bearer", &opaque, None), 200);
    // A client without a contract, either kind: 403.
    let other_opaque = token("cc-post", OPAQUE_RESOURCE, None);
    let other_jwt = token("cc-post", JWT_RESOURCE, None);
    assert_eq!(call(&url("/auto/1"), "Bearer", &other_opaque, None), 403);
    assert_eq!(call(&url("/auto/1"), "Bearer", &other_jwt, None), 403);
    // A token the provider never issued.
    assert_eq!(call(&url("/auto/1"), "Bearer", "not-a-token", None), 401);

    // DPoP-bound tokens of both kinds (`cnf.jkt` in the JWT, in introspection for the opaque
    // one): allowed with a proof of their key, refused as bearer tokens and with another key.
    let dpop = DpopKey::generate().unwrap().into_dpop();
    let other = DpopKey::generate().unwrap().into_dpop();
    let bound_client = || interop::secret_client("cc-basic", false).with_dpop(dpop.clone());
    let bound_jwt = token("cc-basic", JWT_RESOURCE, Some(bound_client()));
    let bound_opaque = token("cc-basic", OPAQUE_RESOURCE, Some(bound_client()));
    let proof = |key: &oauth_core::Dpop, path: &str, token: &str| {
        let htu: oauth_core::http::Uri = format!("https://127.0.0.1:{}{path}", proxy.port)
            .parse()
            .unwrap();
        let value = key
            .proof(
                &oauth_core::http::Method::GET,
                &htu,
                SystemTime::now(),
                Some(token),
            )
            .unwrap();
        value.to_str().unwrap().to_owned()
    };
    for (kind, token) in [("JWT", &bound_jwt), ("opaque", &bound_opaque)] {
        let p = proof(&dpop, "/bound/1", token);
        assert_eq!(
            call(&url("/bound/1"), "DPoP", token, Some(&p)),
            200,
            "{kind}"
        );
        assert_eq!(call(&url("/bound/1"), "Bearer", token, None), 401, "{kind}");
        assert_eq!(call(&url("/auto/1"), "Bearer", token, None), 401, "{kind}");
        let wrong = proof(&other, "/bound/1", token);
        assert_eq!(
            call(&url("/bound/1"), "DPoP", token, Some(&wrong)),
            401,
            "{kind}"
        );
    }
    // An unbound token on the route that requires DPoP: refused before validation.
    assert_eq!(call(&url("/bound/1"), "Bearer", &jwt, None), 401);
    assert_eq!(
        upstream.targets(),
        [
            "/introspected/1",
            "/jwt/1",
            "/auto/1",
            "/auto/1",
            "/bound/1",
            "/bound/1"
        ]
    );
}
