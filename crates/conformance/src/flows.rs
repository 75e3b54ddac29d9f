//! The flows beyond one token request, through both adapters against the test server: the
//! device authorization grant (RFC 8628), pushed authorization requests (RFC 9126), client
//! registration (RFC 7591/7592), Anypoint's connected-app creation, and mutual TLS client
//! authentication with certificate-bound tokens (RFC 8705).

use std::time::{Duration, Instant};

use oauth_core::http::Request;
use oauth_core::{
    AccessToken, AuthorizationRequest, ClientMetadata, DeviceAuthorizationRequest, Error,
    ErrorCode, RegistrationRequest, TokenRequest, anypoint::ConnectedApp,
};
use oauth_test_server::{Behaviour, TestServer};

use crate::{Harness, Setup};

fn start(behaviour: Behaviour) -> TestServer {
    TestServer::start(behaviour).expect("test server")
}

fn harness<H: Harness>(server: &TestServer) -> H {
    H::new(&Setup {
        ca_pem: Some(server.ca_pem().to_owned()),
        ..Setup::default()
    })
    .expect("http client")
}

fn basic(b: &Behaviour) -> oauth_core::Client {
    oauth_core::Client::new(
        b.client_id.as_str(),
        oauth_core::ClientAuthentication::SecretBasic(oauth_core::ClientSecret::new(
            b.client_secret.as_str(),
        )),
    )
}

fn error_code(result: &Result<oauth_core::TokenResponse, Error>) -> Option<ErrorCode> {
    result
        .as_ref()
        .err()
        .and_then(|e| e.error_response().map(|r| r.code().clone()))
}

/// The user approves on another device while the client polls: one token, polls spaced by the
/// interval (the server answers `slow_down` to a client polling faster: none here).
pub fn device_flow_approved<H: Harness>() {
    let server = std::sync::Arc::new(start(Behaviour::default()));
    let h: H = harness(&server);
    let b = Behaviour::default();
    let (device, token) = (
        h.endpoint(&server.url("/device_authorization")).unwrap(),
        h.endpoint(&server.url("/token")).unwrap(),
    );
    let approver = std::sync::Arc::clone(&server);
    let shown = std::sync::Arc::new(std::sync::Mutex::new(None));
    let seen = std::sync::Arc::clone(&shown);
    let started = Instant::now();
    let result = h.device_flow(
        &device,
        &token,
        &basic(&b),
        &DeviceAuthorizationRequest::new().scope(["read"]),
        Box::new(move |auth| {
            *seen.lock().unwrap() = Some((
                auth.user_code().to_owned(),
                auth.verification_uri().to_owned(),
            ));
            let code = auth.user_code().to_owned();
            // The user approves on their phone after the client's first (pending) poll.
            std::thread::spawn(move || {
                let deadline = Instant::now() + Duration::from_secs(10);
                while approver.counters().device_polls == 0 && Instant::now() < deadline {
                    std::thread::sleep(Duration::from_millis(10));
                }
                assert!(approver.decide_device(&code, true));
            });
        }),
        Some(Instant::now() + Duration::from_secs(20)),
    );
    let token = result.unwrap_or_else(|e| panic!("device flow: {e}"));
    assert!(!token.access_token().expose_secret().is_empty());
    let (user_code, uri) = shown
        .lock()
        .unwrap()
        .clone()
        .expect("the prompt was called");
    assert!(user_code.starts_with("USER-"));
    assert_eq!(uri, server.url("/device"));
    // Approved after the first poll, with a 1 s interval: polls at about 1 s (pending) and
    // 2 s (the token); a third only if the approval took a second to land.
    let polls = server.counters().device_polls;
    assert!((2..=3).contains(&polls), "{polls} polls");
    assert!(started.elapsed() >= Duration::from_secs(2));
}

/// The user declines: `access_denied`, as an authorization error, after one poll.
pub fn device_flow_declined<H: Harness>() {
    let server = std::sync::Arc::new(start(Behaviour::default()));
    let h: H = harness(&server);
    let b = Behaviour::default();
    let decider = std::sync::Arc::clone(&server);
    let result = h.device_flow(
        &h.endpoint(&server.url("/device_authorization")).unwrap(),
        &h.endpoint(&server.url("/token")).unwrap(),
        &basic(&b),
        &DeviceAuthorizationRequest::new(),
        Box::new(move |auth| assert!(decider.decide_device(auth.user_code(), false))),
        None,
    );
    assert_eq!(error_code(&result), Some(ErrorCode::AccessDenied));
    assert!(matches!(result, Err(Error::Authorization(_))));
    assert_eq!(server.counters().device_polls, 1);
}

/// Nobody approves: the flow ends when the code expires (2 s), without polling past it; and a
/// deadline shorter than that ends it sooner.
pub fn device_flow_code_expires<H: Harness>() {
    let server = start(Behaviour {
        device_expires_in: 2,
        ..Behaviour::default()
    });
    let h: H = harness(&server);
    let b = Behaviour::default();
    let (device, token) = (
        h.endpoint(&server.url("/device_authorization")).unwrap(),
        h.endpoint(&server.url("/token")).unwrap(),
    );
    let started = Instant::now();
    let result = h.device_flow(
        &device,
        &token,
        &basic(&b),
        &DeviceAuthorizationRequest::new(),
        Box::new(|_| {}),
        None,
    );
    assert_eq!(error_code(&result), Some(ErrorCode::ExpiredToken));
    assert!(started.elapsed() < Duration::from_secs(4));
    assert_eq!(
        server.counters().device_polls,
        1,
        "one poll at 1 s; none at 2 s"
    );

    let server = start(Behaviour::default());
    let h: H = harness(&server);
    let started = Instant::now();
    let result = h.device_flow(
        &h.endpoint(&server.url("/device_authorization")).unwrap(),
        &h.endpoint(&server.url("/token")).unwrap(),
        &basic(&b),
        &DeviceAuthorizationRequest::new(),
        Box::new(|_| {}),
        Some(Instant::now() + Duration::from_millis(2500)),
    );
    assert!(
        matches!(&result, Err(Error::Transport(t)) if t.kind() == oauth_core::TransportErrorKind::Timeout),
        "{result:?}"
    );
    let elapsed = started.elapsed();
    assert!(
        elapsed >= Duration::from_millis(2400) && elapsed < Duration::from_secs(5),
        "{elapsed:?}"
    );
}

/// PAR: the parameters pushed with client authentication, the browser sent with `client_id`
/// and `request_uri` only, the callback and the code exchange as usual.
pub fn pushed_authorization_request_then_code<H: Harness>() {
    let server = start(Behaviour::default());
    let h: H = harness(&server);
    let b = Behaviour::default();
    let pending = AuthorizationRequest::new(
        h.endpoint(&server.url("/authorize")).unwrap(),
        b.client_id.as_str(),
    )
    .redirect_uri("https://app.example/cb")
    .scope(["openid", "read"])
    .build(&oauth_ureq::SystemRandom)
    .unwrap();
    let par = h.endpoint(&server.url("/par")).unwrap();
    let pushed = h.push_authorization(&par, &basic(&b), &pending).unwrap();
    assert_eq!(server.counters().par_requests, 1);
    let url = pushed.url().to_owned();
    let query = url.split_once('?').map(|(_, q)| q).unwrap_or_default();
    let names: Vec<&str> = query
        .split('&')
        .filter_map(|p| p.split('=').next())
        .collect();
    assert_eq!(names, ["client_id", "request_uri"], "{url}");
    assert!(!url.contains("state=") && !url.contains("code_challenge"));
    // The user's browser follows the short URL.
    let answer = h
        .execute(Request::get(&url).body(Vec::new()).unwrap())
        .unwrap();
    assert_eq!(answer.status(), 302);
    let location = answer.headers()["location"].to_str().unwrap().to_owned();
    let code = pushed.handle_callback(&location).unwrap();
    let token = h
        .request_token(
            &h.endpoint(&server.url("/token")).unwrap(),
            &basic(&b),
            &pushed.token_request(code),
        )
        .unwrap();
    assert!(token.refresh_token().is_some());
    // A request_uri is used once.
    let again = h
        .execute(Request::get(&url).body(Vec::new()).unwrap())
        .unwrap();
    assert_eq!(again.status(), 400);
}

/// RFC 7591/7592: registered with the initial access token (refused without), used for
/// client_credentials, read, updated, deleted (then unusable for management).
pub fn client_registration_lifecycle<H: Harness>() {
    let server = start(Behaviour {
        registration_token: Some("initial-access-token".into()),
        ..Behaviour::default()
    });
    let h: H = harness(&server);
    let endpoint = h.endpoint(&server.url("/register")).unwrap();
    let metadata = ClientMetadata::new()
        .client_name("Inventory sync")
        .grant_types(["client_credentials"])
        .redirect_uris(["https://app.example/cb"])
        .set("software_version", serde_json::json!("1.4.2"));
    let refused = h.register_client(&endpoint, &RegistrationRequest::new(metadata.clone()));
    assert!(refused.is_err());
    let registered = h
        .register_client(
            &endpoint,
            &RegistrationRequest::new(metadata)
                .initial_access_token(AccessToken::new("initial-access-token")),
        )
        .unwrap();
    assert!(registered.client_secret().is_some());
    assert!(registered.registration_access_token().is_some());
    assert_eq!(
        registered.metadata().string("software_version"),
        Some("1.4.2")
    );
    // The new client gets a token.
    let client = registered.client().unwrap();
    let token = h
        .request_token(
            &h.endpoint(&server.url("/token")).unwrap(),
            &client,
            &TokenRequest::client_credentials(),
        )
        .unwrap();
    assert!(!token.access_token().expose_secret().is_empty());
    // Read, update, read back, delete.
    let read = h.read_client_registration(&registered).unwrap();
    assert_eq!(
        read.metadata().string("client_name"),
        Some("Inventory sync")
    );
    let updated = h
        .update_client_registration(
            &read,
            &read.metadata().clone().client_name("Inventory sync v2"),
        )
        .unwrap();
    assert_eq!(
        updated.metadata().string("client_name"),
        Some("Inventory sync v2")
    );
    assert_eq!(
        h.read_client_registration(&updated)
            .unwrap()
            .metadata()
            .string("client_name"),
        Some("Inventory sync v2")
    );
    h.delete_client_registration(&updated).unwrap();
    assert!(h.read_client_registration(&updated).is_err());
}

/// The connected-apps page's first step against the test server: the app created with the
/// user's token, its client id and secret used for a token.
pub fn anypoint_connected_app_created_and_used<H: Harness>() {
    let server = start(Behaviour {
        registration_token: Some("user-access-token".into()),
        ..Behaviour::default()
    });
    let h: H = harness(&server);
    let request = ConnectedApp::authorization_code(
        "GitProxy",
        ["https://example.com/"],
        ["profile", "offline_access"],
    )
    .registration(AccessToken::new("user-access-token"));
    let app = h
        .register_client(&h.endpoint(&server.url("/register")).unwrap(), &request)
        .unwrap();
    assert_eq!(app.metadata().string("audience"), Some("internal"));
    let token = h
        .request_token(
            &h.endpoint(&server.url("/token")).unwrap(),
            &app.client().unwrap(),
            &TokenRequest::client_credentials(),
        )
        .unwrap();
    assert!(!token.access_token().expose_secret().is_empty());
}

/// `OpenIdClient::begin` pushes the authorization request when discovery says
/// `require_pushed_authorization_requests`, and does not otherwise.
pub fn openid_client_pushes_when_the_provider_requires_it<H: Harness>() {
    for required in [false, true] {
        let server = start(Behaviour {
            require_par: required,
            ..Behaviour::default()
        });
        let h: H = harness(&server);
        let b = Behaviour::default();
        let metadata = h.discover(&server.url("")).unwrap();
        assert_eq!(metadata.require_pushed_authorization_requests(), required);
        let oidc = h.openid(oauth_reqwest::OpenIdCore::new(metadata.clone(), basic(&b)).unwrap());
        let request = AuthorizationRequest::new(
            metadata.authorization_endpoint().unwrap().clone(),
            b.client_id.as_str(),
        )
        .redirect_uri("https://app.example/cb")
        .scope(["read"]);
        let pending = h.openid_begin(&oidc, request).unwrap();
        assert_eq!(server.counters().par_requests, usize::from(required));
        assert_eq!(
            pending.url().contains("request_uri="),
            required,
            "{}",
            pending.url()
        );
        // Either way, the flow completes.
        let answer = h
            .execute(Request::get(pending.url()).body(Vec::new()).unwrap())
            .unwrap();
        let location = answer.headers()["location"].to_str().unwrap().to_owned();
        assert!(pending.handle_callback(&location).is_ok());
    }
}

fn payment_details() -> oauth_core::authorization_details::AuthorizationDetails {
    use oauth_core::authorization_details::{AuthorizationDetail, AuthorizationDetails};
    AuthorizationDetails::new().with(
        AuthorizationDetail::new("payment_initiation")
            .actions(["initiate", "status"])
            .locations(["https://api.example/payments"])
            .member(
                "instructedAmount",
                serde_json::json!({"currency": "EUR", "amount": "123.50"}),
            ),
    )
}

/// RAR (RFC 9396) with client credentials: the details asked for are granted, read back from
/// the token response and from introspection of the token; an API policy requiring the type
/// allows that token and refuses one issued without details; a malformed value is refused by
/// the server with `invalid_authorization_details`.
pub fn rich_authorization_client_credentials_and_introspection<H: Harness>() {
    use oauth_core::client::introspection::IntrospectionRequest;
    use oauth_core::resource_server::{ApiPolicy, ContractStatus, Denial};
    let server = start(Behaviour::default());
    let h: H = harness(&server);
    let b = Behaviour::default();
    let token_endpoint = h.endpoint(&server.url("/token")).unwrap();
    let introspect = |token: &oauth_core::TokenResponse| {
        h.introspect(
            &h.endpoint(&server.url("/introspect")).unwrap(),
            &basic(&b),
            &IntrospectionRequest::new(oauth_core::SecurityToken::new(
                token.access_token().expose_secret(),
            )),
        )
        .unwrap()
    };
    let granted = h
        .request_token(
            &token_endpoint,
            &basic(&b),
            &TokenRequest::client_credentials()
                .scope(["pay"])
                .authorization_details(payment_details()),
        )
        .unwrap();
    assert_eq!(granted.authorization_details(), Some(&payment_details()));
    let introspection = std::sync::Arc::new(introspect(&granted));
    assert_eq!(
        introspection.authorization_details(),
        Some(payment_details())
    );

    let plain = h
        .request_token(
            &token_endpoint,
            &basic(&b),
            &TokenRequest::client_credentials().scope(["pay"]),
        )
        .unwrap();
    assert!(plain.authorization_details().is_none());
    let plain_introspection = std::sync::Arc::new(introspect(&plain));
    assert!(plain_introspection.authorization_details().is_none());

    let policy =
        ApiPolicy::new("payments").require_authorization_details_type("payment_initiation");
    let contract = |_: &str, _: &str| ContractStatus::Granted {
        scopes: None,
        tier: None,
    };
    let now = std::time::SystemTime::now();
    assert!(policy.decide(&introspection, now, contract).is_ok());
    assert_eq!(
        policy
            .decide(&plain_introspection, now, contract)
            .unwrap_err(),
        Denial::InsufficientAuthorizationDetails {
            required: "payment_initiation".into()
        }
    );

    // A value the server cannot read: RFC 9396 §5's error.
    let refused = h.request_token(
        &token_endpoint,
        &basic(&b),
        &TokenRequest::client_credentials().param("authorization_details", r#"{"type":"x"}"#),
    );
    assert_eq!(
        error_code(&refused),
        Some(ErrorCode::parse("invalid_authorization_details"))
    );
}

/// JAR (RFC 9101) + PAR + RAR: the authorization request signed as a request object with the
/// client's registered key (ES256, then EdDSA by value), pushed with client authentication,
/// the browser sent with `client_id` + `request_uri`, the code redeemed, the details granted
/// on the token. The server refuses an object for another audience, an expired one, one signed
/// with another key, and an unsigned (`alg: none`) one.
pub fn request_object_pushed_code_flow_with_authorization_details<H: Harness>() {
    use base64::Engine as _;
    use jwt_assertion::{Algorithm, ClientAssertionSigner, SigningKey};
    use std::time::SystemTime;
    let key = SigningKey::generate(Algorithm::ES256).unwrap();
    let b = Behaviour {
        client_jwk: key.public_jwk(),
        ..Behaviour::default()
    };
    let server = start(b.clone());
    let h: H = harness(&server);
    let key = std::sync::Arc::new(key);
    let authorize = h.endpoint(&server.url("/authorize")).unwrap();
    let par = h.endpoint(&server.url("/par")).unwrap();
    let issuer = server.url("");
    let request = |audience: &str, signer: std::sync::Arc<SigningKey>| {
        AuthorizationRequest::new(authorize.clone(), b.client_id.as_str())
            .redirect_uri("https://app.example/cb")
            .scope(["pay"])
            .authorization_details(payment_details())
            .request_object(ClientAssertionSigner::new(signer), audience)
    };

    // Pushed: the body holds `request` and the client's authentication.
    let pending = request(&issuer, std::sync::Arc::clone(&key))
        .build_at(&oauth_ureq::SystemRandom, SystemTime::now())
        .unwrap();
    let pushed = h.push_authorization(&par, &basic(&b), &pending).unwrap();
    let url = pushed.url().to_owned();
    assert!(
        url.contains("request_uri=") && !url.contains("request="),
        "{url}"
    );
    let answer = h
        .execute(Request::get(&url).body(Vec::new()).unwrap())
        .unwrap();
    assert_eq!(answer.status(), 302);
    let location = answer.headers()["location"].to_str().unwrap().to_owned();
    let code = pushed.handle_callback(&location).unwrap();
    let token = h
        .request_token(
            &h.endpoint(&server.url("/token")).unwrap(),
            &basic(&b),
            &pushed.token_request(code),
        )
        .unwrap();
    assert_eq!(token.authorization_details(), Some(&payment_details()));
    assert_eq!(token.scope().map(|s| s.as_str()), Some("pay"));

    // By value: only client_id and request on the URL.
    let pending = request(&issuer, std::sync::Arc::clone(&key))
        .build_at(&oauth_ureq::SystemRandom, SystemTime::now())
        .unwrap();
    let answer = h
        .execute(Request::get(pending.url()).body(Vec::new()).unwrap())
        .unwrap();
    assert_eq!(answer.status(), 302);
    let location = answer.headers()["location"].to_str().unwrap().to_owned();
    let code = pending.handle_callback(&location).unwrap();
    let token = h
        .request_token(
            &h.endpoint(&server.url("/token")).unwrap(),
            &basic(&b),
            &pending.token_request(code),
        )
        .unwrap();
    assert_eq!(token.authorization_details(), Some(&payment_details()));

    // Refused when pushed: another audience, expired, another key.
    let other_key = std::sync::Arc::new(SigningKey::generate(Algorithm::ES256).unwrap());
    let long_ago = SystemTime::now() - Duration::from_secs(600);
    for (what, pending) in [
        (
            "audience",
            request("https://other.example", std::sync::Arc::clone(&key))
                .build_at(&oauth_ureq::SystemRandom, SystemTime::now()),
        ),
        (
            "expired",
            request(&issuer, std::sync::Arc::clone(&key))
                .build_at(&oauth_ureq::SystemRandom, long_ago),
        ),
        (
            "key",
            request(&issuer, other_key).build_at(&oauth_ureq::SystemRandom, SystemTime::now()),
        ),
    ] {
        let refused = h.push_authorization(&par, &basic(&b), &pending.unwrap());
        let code = refused
            .as_ref()
            .err()
            .and_then(|e| e.error_response().map(|r| r.code().clone()));
        assert_eq!(
            code,
            Some(ErrorCode::parse("invalid_request_object")),
            "{what}"
        );
    }

    // Unsigned: the signed object's claims under `alg: none`, sent by value and pushed.
    let pending = request(&issuer, key)
        .build_at(&oauth_ureq::SystemRandom, SystemTime::now())
        .unwrap();
    let object = pending.url().split("request=").nth(1).unwrap().to_owned();
    let payload = object.split('.').nth(1).unwrap();
    let header = base64::engine::general_purpose::URL_SAFE_NO_PAD
        .encode(br#"{"alg":"none","typ":"oauth-authz-req+jwt"}"#);
    let unsigned = format!("{header}.{payload}.");
    let answer = h
        .execute(
            Request::get(format!(
                "{}?client_id={}&request={unsigned}",
                server.url("/authorize"),
                b.client_id
            ))
            .body(Vec::new())
            .unwrap(),
        )
        .unwrap();
    assert_eq!(answer.status(), 400);
    assert!(
        String::from_utf8_lossy(answer.body()).contains("invalid_request_object"),
        "{:?}",
        String::from_utf8_lossy(answer.body())
    );
}

/// A harness that presents `certificate` when the server asks (mutual TLS).
fn mtls_harness<H: Harness>(
    server: &TestServer,
    certificate: &oauth_test_server::ClientCertificate,
) -> H {
    H::new(&Setup {
        ca_pem: Some(server.ca_pem().to_owned()),
        client_identity: Some((certificate.chain_pem.clone(), certificate.key_pem.clone())),
        ..Setup::default()
    })
    .expect("http client with a client certificate")
}

/// `GET /api` with `token` as a bearer token, sent once through `h` (no token source).
fn call_api<H: Harness>(h: &H, server: &TestServer, token: &AccessToken) -> u16 {
    h.execute(
        Request::get(server.url("/api"))
            .header("authorization", format!("Bearer {}", token.expose_secret()))
            .body(Vec::new())
            .unwrap(),
    )
    .expect("the API answers")
    .status()
    .as_u16()
}

/// Client credentials with an mTLS method (RFC 8705 §2) through discovery: the client's
/// certificate configured, discovery answers the server's `mtls_endpoint_aliases` (§5), the
/// token request goes there with `client_id` and no secret, the token is bound to the
/// certificate (§3: introspection shows its `x5t#S256`), and a token source's `send` presents
/// it at the resource with the same certificate, while the same token without the
/// certificate, or with another one, is refused.
fn mtls_client_credentials<H: Harness>(
    auth: oauth_core::ClientAuthentication,
    certificate: &oauth_test_server::ClientCertificate,
    registration: oauth_test_server::MtlsClient,
) {
    use oauth_core::client::introspection::IntrospectionRequest;
    let server = start(Behaviour::default());
    server.register_mtls_client(registration.clone());
    let h: H = mtls_harness(&server, certificate);
    let metadata = h.discover(&server.url("")).unwrap();
    assert!(metadata.uses_mtls_endpoint_aliases());
    assert!(metadata.tls_client_certificate_bound_access_tokens());
    let method = auth.method_name().unwrap();
    assert!(
        metadata
            .token_endpoint_auth_methods_supported()
            .contains(&method)
    );
    let token_endpoint = metadata.token_endpoint().unwrap().clone();
    assert_eq!(token_endpoint.as_str(), server.url("/mtls/token"));
    assert_eq!(
        metadata.introspection_endpoint().unwrap().as_str(),
        server.url("/mtls/introspect")
    );
    // Discovery without a certificate: the plain endpoints.
    let plain: H = harness(&server);
    assert_eq!(
        plain
            .discover(&server.url(""))
            .unwrap()
            .token_endpoint()
            .unwrap()
            .as_str(),
        server.url("/token")
    );

    let client = oauth_core::Client::new(registration.client_id.as_str(), auth);
    assert!(client.uses_mtls());
    let token = h
        .request_token(
            &token_endpoint,
            &client,
            &TokenRequest::client_credentials().scope(["read"]),
        )
        .unwrap_or_else(|e| panic!("{method}: {e}"));
    let sent = server.token_requests().pop().unwrap();
    assert_eq!(sent.path, "/token");
    assert!(sent.header("authorization").is_none());
    let body = String::from_utf8(sent.body).unwrap();
    assert!(body.contains("client_id="), "{body}");
    assert!(!body.contains("client_secret"), "{body}");
    assert!(!body.contains("client_assertion"), "{body}");

    let introspection = h
        .introspect(
            metadata.introspection_endpoint().unwrap(),
            &client,
            &IntrospectionRequest::new(oauth_core::SecurityToken::new(
                token.access_token().expose_secret(),
            )),
        )
        .unwrap();
    assert!(introspection.active());
    assert_eq!(
        introspection.certificate_thumbprint(),
        Some(certificate.thumbprint().as_str())
    );
    assert_eq!(
        introspection.client_id(),
        Some(registration.client_id.as_str())
    );
    assert_eq!(server.counters().mtls_alias_requests, 2);

    // The token source: its grant and its resource calls over the same identity.
    let source = h.source(
        token_endpoint,
        client,
        crate::SourceSpec {
            grant: Some(TokenRequest::client_credentials().scope(["read"])),
            ..crate::SourceSpec::default()
        },
    );
    let answer = h
        .send(
            &source,
            Request::get(server.url("/api")).body(Vec::new()).unwrap(),
        )
        .unwrap();
    assert_eq!(answer.status(), 200);
    assert_eq!(server.counters().resource_requests, 1, "accepted at once");
    // The bound token, presented without its certificate or with another: refused.
    assert_eq!(call_api(&h, &server, token.access_token()), 200);
    assert_eq!(call_api(&plain, &server, token.access_token()), 401);
    let other = oauth_test_server::ClientCertificate::self_signed("other.example").unwrap();
    let other: H = mtls_harness(&server, &other);
    assert_eq!(call_api(&other, &server, token.access_token()), 401);
}

/// `tls_client_auth` (RFC 8705 §2.1): a certificate from the client's CA for its registered
/// DNS name.
pub fn mtls_tls_client_auth_client_credentials<H: Harness>() {
    let ca = oauth_test_server::ClientCa::generate().unwrap();
    let certificate = ca.issue("client.example").unwrap();
    mtls_client_credentials::<H>(
        oauth_core::ClientAuthentication::TlsClientAuth,
        &certificate,
        oauth_test_server::MtlsClient::tls_client_auth("mtls-ca-client", &ca, "client.example"),
    );
}

/// `self_signed_tls_client_auth` (RFC 8705 §2.2): the registered self-signed certificate.
pub fn mtls_self_signed_tls_client_auth_client_credentials<H: Harness>() {
    let certificate = oauth_test_server::ClientCertificate::self_signed("self.example").unwrap();
    mtls_client_credentials::<H>(
        oauth_core::ClientAuthentication::SelfSignedTlsClientAuth,
        &certificate,
        oauth_test_server::MtlsClient::self_signed("mtls-self-signed", &certificate),
    );
}

/// Another certificate than the registered one, a certificate from another CA or for another
/// name: each a typed `invalid_client`, whatever endpoint (plain or alias). No certificate at
/// all: refused before anything is sent, at every endpoint a client authenticates to.
pub fn mtls_wrong_certificate_is_invalid_client<H: Harness>() {
    use oauth_core::ClientAuthentication::{SelfSignedTlsClientAuth, TlsClientAuth};
    use oauth_test_server::{ClientCa, ClientCertificate, MtlsClient};
    let server = start(Behaviour::default());
    let ca = ClientCa::generate().unwrap();
    let registered = ClientCertificate::self_signed("self.example").unwrap();
    server.register_mtls_client(MtlsClient::self_signed("self-signed", &registered));
    server.register_mtls_client(MtlsClient::tls_client_auth(
        "ca-client",
        &ca,
        "client.example",
    ));
    let refused = |h: &H, path: &str, client_id: &str, auth| {
        let result = h.request_token(
            &h.endpoint(&server.url(path)).unwrap(),
            &oauth_core::Client::new(client_id, auth),
            &TokenRequest::client_credentials(),
        );
        assert_eq!(
            error_code(&result),
            Some(ErrorCode::InvalidClient),
            "{client_id} at {path}: {result:?}"
        );
        assert!(matches!(result, Err(Error::Server(_))), "{result:?}");
    };
    let another = ClientCertificate::self_signed("self.example").unwrap();
    let another: H = mtls_harness(&server, &another);
    let none: H = harness(&server);
    let other_ca = ClientCa::generate().unwrap();
    let from_other_ca: H = mtls_harness(&server, &other_ca.issue("client.example").unwrap());
    let other_name: H = mtls_harness(&server, &ca.issue("intruder.example").unwrap());
    for path in ["/token", "/mtls/token"] {
        refused(&another, path, "self-signed", SelfSignedTlsClientAuth);
        refused(&from_other_ca, path, "ca-client", TlsClientAuth);
        refused(&other_name, path, "ca-client", TlsClientAuth);
        // The self-signed client's own certificate does not make it the CA client.
        refused(
            &mtls_harness::<H>(&server, &registered),
            path,
            "ca-client",
            TlsClientAuth,
        );
    }
    // An HTTP client without a certificate: the token, introspection and revocation calls of
    // an mTLS client are refused as a typed error, and nothing reaches the server.
    let before = server.counters();
    for (client_id, auth) in [
        ("self-signed", SelfSignedTlsClientAuth),
        ("ca-client", TlsClientAuth),
    ] {
        let client = oauth_core::Client::new(client_id, auth);
        let no_identity = |result: Result<(), Error>| {
            assert!(
                matches!(
                    &result,
                    Err(Error::InvalidParameter {
                        name: "client_identity",
                        ..
                    })
                ),
                "{client_id}: {result:?}"
            );
        };
        for path in ["/token", "/mtls/token"] {
            let endpoint = none.endpoint(&server.url(path)).unwrap();
            no_identity(
                none.request_token(&endpoint, &client, &TokenRequest::client_credentials())
                    .map(drop),
            );
        }
        let token = oauth_core::SecurityToken::new("some-token");
        no_identity(
            none.introspect(
                &none.endpoint(&server.url("/mtls/introspect")).unwrap(),
                &client,
                &oauth_core::client::introspection::IntrospectionRequest::new(token.clone()),
            )
            .map(drop),
        );
        no_identity(none.revoke(
            &none.endpoint(&server.url("/mtls/revoke")).unwrap(),
            &client,
            &oauth_core::RevocationRequest::new(token),
        ));
    }
    let after = server.counters();
    assert_eq!(after.token_requests, before.token_requests);
    assert_eq!(after.introspection_requests, before.introspection_requests);
    assert_eq!(after.revocation_requests, before.revocation_requests);

    // The right ones, for contrast.
    let ok: H = mtls_harness(&server, &registered);
    ok.request_token(
        &ok.endpoint(&server.url("/token")).unwrap(),
        &oauth_core::Client::new("self-signed", SelfSignedTlsClientAuth),
        &TokenRequest::client_credentials(),
    )
    .unwrap();
    let ok: H = mtls_harness(&server, &ca.issue("client.example").unwrap());
    ok.request_token(
        &ok.endpoint(&server.url("/token")).unwrap(),
        &oauth_core::Client::new("ca-client", TlsClientAuth),
        &TokenRequest::client_credentials(),
    )
    .unwrap();
}

/// A client certificate that cannot be used fails when the HTTP client is built, as a typed
/// configuration error (no panic, no key in the message): no certificate, an unreadable one,
/// no key, and a key that is not the certificate's.
pub fn mtls_bad_pem_is_refused_at_build<H: Harness>() {
    use oauth_core::TransportErrorKind;
    let good = oauth_test_server::ClientCertificate::self_signed("self.example").unwrap();
    let other = oauth_test_server::ClientCertificate::self_signed("other.example").unwrap();
    let truncated = good.cert_pem.replace("-----END CERTIFICATE-----", "");
    let cases = [
        ("not pem".to_owned(), good.key_pem.clone(), "no certificate"),
        (
            truncated,
            good.key_pem.clone(),
            "unreadable client certificate",
        ),
        (
            good.chain_pem.clone(),
            "not pem".to_owned(),
            "no private key",
        ),
        (good.chain_pem.clone(), other.key_pem, "do not fit together"),
    ];
    for (chain, key, expected) in cases {
        let result = H::new(&Setup {
            client_identity: Some((chain, key.clone())),
            ..Setup::default()
        });
        let Err(e) = result else {
            panic!("{}: built with a bad identity ({expected})", H::NAME);
        };
        match &e {
            Error::Transport(t) => assert_eq!(t.kind(), TransportErrorKind::Config, "{e}"),
            other => panic!("{other:?}"),
        }
        let shown = format!("{e} {e:?}");
        assert!(shown.contains(expected), "{shown}");
        for line in key
            .lines()
            .filter(|l| !l.starts_with("-----") && l.len() > 8)
        {
            assert!(!shown.contains(line), "the key leaked: {shown}");
        }
    }
    // A good one builds, and its Debug never shows the key.
    let h = H::new(&Setup {
        client_identity: Some((good.chain_pem.clone(), good.key_pem.clone())),
        ..Setup::default()
    });
    assert!(h.is_ok());
    let identity =
        oauth_reqwest::ClientIdentity::from_pem(good.chain_pem.as_bytes(), good.key_pem.as_bytes())
            .unwrap();
    assert_eq!(identity.certificate_thumbprint(), good.thumbprint());
    let shown = format!("{identity:?}");
    for line in good.key_pem.lines().filter(|l| !l.starts_with("-----")) {
        assert!(!shown.contains(line), "{shown}");
    }
}
