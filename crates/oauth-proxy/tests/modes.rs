//! Validation modes per route, run as one `oauth-gateway` process in front of the loopback
//! test authorization server: introspection, local JWT validation, both (`auto`); DPoP off,
//! allowed and required; scope criteria `all` and `any`; `require_contract = false`.
#![allow(clippy::unwrap_used, clippy::expect_used, clippy::panic)]

mod support;

use std::time::SystemTime;

use jwt_assertion::DpopKey;
use oauth_core::ProofContext;
use oauth_test_server::{Behaviour, TestServer};
use serde_json::json;
use support::{HOUR, Proxy, Upstream, agent, get, scratch, secrets};

const AUDIENCE: &str = "https://api.example/orders";

/// Contracts for `app-1` on `orders` only.
fn grant(dir: &std::path::Path) {
    let store = oauth_gateway::RedbContracts::open(dir.join("contracts.redb")).unwrap();
    let mut set = oauth_gateway::ContractSet::new();
    set.insert(oauth_gateway::Contract::new("app-1", "orders"));
    store.replace_all(&set).unwrap();
}

fn route(prefix: &str, api: &str, extra: &str) -> String {
    format!("\n[[route]]\nprefix = \"{prefix}\"\napi = \"{api}\"\n{extra}\n")
}

fn start(server: &TestServer, upstream: &Upstream, routes: &str) -> Proxy {
    let dir = scratch("modes");
    grant(&dir);
    let ca = dir.join("ca.pem");
    std::fs::write(&ca, server.ca_pem()).unwrap();
    let text = format!(
        r#"upstream = "http://127.0.0.1:{port}"
[introspection]
endpoint = "{introspect}"
client_id = "{client}"
client_secret_env = "GATEWAY_SECRET"
ca_file = "{ca}"

[[issuer]]
issuer = "{issuer}"
audience = "{AUDIENCE}"
jwks_uri = "{jwks}"
algorithms = ["ES256"]
ca_file = "{ca}"
{routes}"#,
        port = upstream.port,
        introspect = server.url("/introspect"),
        client = Behaviour::default().client_id,
        ca = ca.display(),
        issuer = server.url(""),
        jwks = server.url("/jwks"),
    );
    Proxy::start(&text, &dir, &secrets(&[]))
}

fn now() -> u64 {
    SystemTime::now()
        .duration_since(SystemTime::UNIX_EPOCH)
        .unwrap()
        .as_secs()
}

/// A JWT access token for `app-1`, bound to `jkt` if given.
fn jwt(server: &TestServer, scope: &str, jkt: Option<&str>) -> String {
    let now = now();
    let mut claims = json!({
        "iss": server.url(""), "aud": AUDIENCE, "sub": "u1", "client_id": "app-1",
        "scope": scope, "iat": now, "exp": now + 600, "jti": format!("t-{scope}-{jkt:?}"),
    });
    if let Some(jkt) = jkt {
        claims["cnf"] = json!({"jkt": jkt});
    }
    server.sign_jwt(json!({"typ": "at+jwt"}), claims)
}

/// `GET url` with `Authorization: scheme token` and, if given, a DPoP proof.
fn call(url: &str, scheme: &str, token: &str, proof: Option<&str>) -> (u16, String) {
    let mut request = agent()
        .get(url)
        .header("authorization", &format!("{scheme} {token}"));
    if let Some(proof) = proof {
        request = request.header("dpop", proof);
    }
    let mut response = request.call().unwrap();
    let challenge = response
        .headers()
        .get("www-authenticate")
        .map(|v| v.to_str().unwrap().to_owned())
        .unwrap_or_default();
    let _ = response.body_mut().read_to_string();
    (response.status().as_u16(), challenge)
}

#[test]
fn introspection_jwt_and_auto_modes() {
    let server = TestServer::start(Behaviour::default()).unwrap();
    let upstream = Upstream::start();
    let routes = [
        route(
            "/intro",
            "orders",
            "mode = \"introspection\"\nscopes = [\"orders:read\"]",
        ),
        route(
            "/jwt",
            "orders",
            "mode = \"jwt\"\nscopes = [\"orders:read\"]",
        ),
        route("/auto", "orders", "scopes = [\"orders:read\"]"),
    ]
    .concat();
    let proxy = start(&server, &upstream, &routes);
    let opaque = server.issue_access_token("app-1", "orders:read", HOUR);
    let jwt = jwt(&server, "orders:read", None);

    // Introspection mode: the opaque token is introspected; the JWT too, and the test server
    // does not know it (it only signs it).
    assert_eq!(get(&proxy.url("/intro/1"), Some(&opaque)).0, 200);
    let before = server.counters().introspection_requests;
    assert_eq!(get(&proxy.url("/intro/2"), Some(&jwt)).0, 401);
    assert_eq!(server.counters().introspection_requests, before + 1);

    // JWT mode: the JWT is verified locally (one key set fetch, no introspection), the opaque
    // token refused without a call.
    let before = server.counters();
    assert_eq!(get(&proxy.url("/jwt/1"), Some(&jwt)).0, 200);
    assert_eq!(get(&proxy.url("/jwt/1"), Some(&opaque)).0, 401);
    let after = server.counters();
    assert_eq!(after.introspection_requests, before.introspection_requests);
    assert_eq!(after.jwks_requests, before.jwks_requests + 1);
    // A JWT from the right issuer with a bad signature: 401.
    let mut forged = jwt.clone();
    forged.truncate(forged.len() - 4);
    forged.push_str("AAAA");
    assert_eq!(get(&proxy.url("/jwt/1"), Some(&forged)).0, 401);

    // Auto: both, each its own way.
    let before = server.counters().introspection_requests;
    assert_eq!(get(&proxy.url("/auto/1"), Some(&jwt)).0, 200);
    assert_eq!(server.counters().introspection_requests, before);
    assert_eq!(get(&proxy.url("/auto/1"), Some(&opaque)).0, 200);
    assert_eq!(server.counters().introspection_requests, before + 1);
    assert_eq!(
        upstream.targets(),
        ["/intro/1", "/jwt/1", "/auto/1", "/auto/1"]
    );
}

#[test]
fn scope_criteria_and_contracts() {
    let server = TestServer::start(Behaviour::default()).unwrap();
    let upstream = Upstream::start();
    let scopes = "scopes = [\"orders:read\", \"orders:admin\"]";
    let routes = [
        route("/all", "orders", scopes),
        route(
            "/any",
            "orders",
            &format!("{scopes}\nscope_criteria = \"any\""),
        ),
        route("/billing", "billing", "scopes = [\"orders:read\"]"),
        route(
            "/open",
            "billing",
            "scopes = [\"orders:read\"]\nrequire_contract = false",
        ),
    ]
    .concat();
    let proxy = start(&server, &upstream, &routes);
    let read = server.issue_access_token("app-1", "orders:read", HOUR);
    let other = server.issue_access_token("app-1", "files:read", HOUR);
    assert_eq!(get(&proxy.url("/all/1"), Some(&read)).0, 403);
    assert_eq!(get(&proxy.url("/any/1"), Some(&read)).0, 200);
    assert_eq!(get(&proxy.url("/any/1"), Some(&other)).0, 403);
    // app-1 holds no contract for `billing`: refused unless the route asks for none.
    assert_eq!(get(&proxy.url("/billing/1"), Some(&read)).0, 403);
    let (status, body) = get(&proxy.url("/open/1"), Some(&read));
    assert_eq!(status, 200);
    assert!(body.contains(r#""x-oauth-client-id":"app-1""#), "{body}");
    // Without contracts the token's scopes still count.
    assert_eq!(get(&proxy.url("/open/1"), Some(&other)).0, 403);
    assert_eq!(upstream.targets(), ["/any/1", "/open/1"]);
}

#[test]
fn dpop_off_allowed_and_required() {
    let server = TestServer::start(Behaviour::default()).unwrap();
    let upstream = Upstream::start();
    let routes = [
        route("/off", "orders", "mode = \"jwt\"\ndpop = \"off\""),
        route("/allowed", "orders", "mode = \"jwt\""),
        route("/required", "orders", "mode = \"jwt\"\ndpop = \"required\""),
    ]
    .concat();
    let proxy = start(&server, &upstream, &routes);
    let key = DpopKey::generate().unwrap();
    let bound = jwt(&server, "orders:read", Some(key.jkt()));
    let unbound = jwt(&server, "orders:read", None);
    // The gateway listens on plain HTTP: the URL a proof names is `https://` and the `Host`.
    let proof = |path: &str| {
        let htu = format!("https://127.0.0.1:{}{path}", proxy.port);
        key.sign(&ProofContext::new("GET", &htu, SystemTime::now()).access_token(Some(&bound)))
            .unwrap()
    };

    // Off: bearer tokens only.
    assert_eq!(call(&proxy.url("/off/1"), "Bearer", &unbound, None).0, 200);
    let p = proof("/off/1");
    assert_eq!(call(&proxy.url("/off/1"), "DPoP", &bound, Some(&p)).0, 400);

    // Allowed: both; a bound token still needs its proof.
    assert_eq!(
        call(&proxy.url("/allowed/1"), "Bearer", &unbound, None).0,
        200
    );
    assert_eq!(
        call(&proxy.url("/allowed/1"), "Bearer", &bound, None).0,
        401
    );
    let p = proof("/allowed/1");
    assert_eq!(
        call(&proxy.url("/allowed/1"), "DPoP", &bound, Some(&p)).0,
        200
    );

    // Required: a bearer presentation is refused with a DPoP challenge, even of a good token,
    // before anything is validated.
    let jwks = server.counters().jwks_requests;
    let (status, challenge) = call(&proxy.url("/required/1"), "Bearer", &unbound, None);
    assert_eq!(status, 401);
    assert!(challenge.starts_with("DPoP "), "{challenge}");
    assert_eq!(server.counters().jwks_requests, jwks);
    let p = proof("/required/1");
    assert_eq!(
        call(&proxy.url("/required/1"), "DPoP", &bound, Some(&p)).0,
        200
    );
    // The same proof again: a replay.
    assert_eq!(
        call(&proxy.url("/required/1"), "DPoP", &bound, Some(&p)).0,
        401
    );
    assert_eq!(
        upstream.targets(),
        ["/off/1", "/allowed/1", "/allowed/1", "/required/1"]
    );
}

/// Behind a load balancer the gateway's `Host` is not what clients address: a route's
/// `public_origin` is the origin a DPoP proof's `htu` must name.
#[test]
fn dpop_proofs_name_the_public_origin() {
    let server = TestServer::start(Behaviour::default()).unwrap();
    let upstream = Upstream::start();
    let routes = [
        route(
            "/public",
            "orders",
            "mode = \"jwt\"\ndpop = \"required\"\npublic_origin = \"https://api.example\"",
        ),
        route("/host", "orders", "mode = \"jwt\"\ndpop = \"required\""),
    ]
    .concat();
    let proxy = start(&server, &upstream, &routes);
    let key = DpopKey::generate().unwrap();
    let bound = jwt(&server, "orders:read", Some(key.jkt()));
    let proof = |htu: &str| {
        key.sign(&ProofContext::new("GET", htu, SystemTime::now()).access_token(Some(&bound)))
            .unwrap()
    };
    let at_host = |path: &str| format!("https://127.0.0.1:{}{path}", proxy.port);
    let p = proof("https://api.example/public/1");
    assert_eq!(
        call(&proxy.url("/public/1"), "DPoP", &bound, Some(&p)).0,
        200
    );
    // The gateway's own address is not the public one there, and is elsewhere.
    let p = proof(&at_host("/public/1"));
    assert_eq!(
        call(&proxy.url("/public/1"), "DPoP", &bound, Some(&p)).0,
        401
    );
    let p = proof("https://api.example/host/1");
    assert_eq!(call(&proxy.url("/host/1"), "DPoP", &bound, Some(&p)).0, 401);
    let p = proof(&at_host("/host/1"));
    assert_eq!(call(&proxy.url("/host/1"), "DPoP", &bound, Some(&p)).0, 200);
    assert_eq!(upstream.targets(), ["/public/1", "/host/1"]);
}

/// A route requiring an `authorization_details` type (RFC 9396): a JWT carrying one of that
/// type passes, one without it (or of another type) is 403.
#[test]
fn a_route_can_require_an_authorization_details_type() {
    let server = TestServer::start(Behaviour::default()).unwrap();
    let upstream = Upstream::start();
    let routes = route(
        "/payments",
        "orders",
        "mode = \"jwt\"\nauthorization_details_types = [\"payment_initiation\"]",
    );
    let proxy = start(&server, &upstream, &routes);
    let with = |details: Option<serde_json::Value>| {
        let now = now();
        let mut claims = json!({
            "iss": server.url(""), "aud": AUDIENCE, "sub": "u1", "client_id": "app-1",
            "iat": now, "exp": now + 600, "jti": format!("rar-{details:?}"),
        });
        if let Some(details) = details {
            claims["authorization_details"] = details;
        }
        server.sign_jwt(json!({"typ": "at+jwt"}), claims)
    };
    let paying = with(Some(
        json!([{"type": "payment_initiation", "actions": ["initiate"]}]),
    ));
    let reading = with(Some(json!([{"type": "account_information"}])));
    let none = with(None);
    assert_eq!(
        call(&proxy.url("/payments/1"), "Bearer", &paying, None).0,
        200
    );
    let (status, challenge) = call(&proxy.url("/payments/1"), "Bearer", &reading, None);
    assert_eq!(status, 403);
    assert!(challenge.contains("insufficient_scope"), "{challenge}");
    assert_eq!(
        call(&proxy.url("/payments/1"), "Bearer", &none, None).0,
        403
    );
    assert_eq!(upstream.targets(), ["/payments/1"]);
}

#[test]
fn a_mode_without_what_it_needs_is_refused_at_start() {
    let dir = scratch("modes-refused");
    let path = dir.join("gateway.toml");
    for (text, expected) in [
        (
            "[[route]]\nprefix = \"/a\"\napi = \"a\"\nmode = \"jwt\"\n",
            "mode \"jwt\" needs an [[issuer]]",
        ),
        (
            "[[route]]\nprefix = \"/a\"\napi = \"a\"\nmode = \"introspection\"\n",
            "mode \"introspection\" needs [introspection]",
        ),
        (
            "[[route]]\nprefix = \"/a\"\napi = \"a\"\n",
            "no [introspection] and no [[issuer]]",
        ),
        (
            "[[issuer]]\nissuer = \"https://as\"\njwks_uri = \"https://as/jwks\"\n\
             [[route]]\nprefix = \"/a\"\napi = \"a\"\n",
            "needs an audience",
        ),
        (
            "[[issuer]]\nissuer = \"https://as\"\naudience = \"x\"\njwks_uri = \"https://as/jwks\"\n\
             algorithms = [\"HS256\"]\n[[route]]\nprefix = \"/a\"\napi = \"a\"\n",
            "algorithm \"HS256\" is not accepted",
        ),
    ] {
        std::fs::write(
            &path,
            format!("listen = \"127.0.0.1:0\"\nupstream = \"http://127.0.0.1:9\"\n{text}"),
        )
        .unwrap();
        let out = std::process::Command::new(env!("CARGO_BIN_EXE_oauth-gateway"))
            .arg("--config")
            .arg(&path)
            .output()
            .unwrap();
        let stderr = String::from_utf8_lossy(&out.stderr);
        assert_eq!(out.status.code(), Some(2), "{stderr}");
        assert!(stderr.contains(expected), "{expected:?} not in {stderr}");
    }
}
