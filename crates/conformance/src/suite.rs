//! The checks. Each starts its own test server, so they run in parallel and their counters
//! are their own.

use std::sync::{Arc, Mutex};
use std::time::{Duration, Instant, SystemTime};

use base64::Engine;
use jwt_assertion::{Algorithm, JwtBearerSigner, JwtClaims, SigningKey};
use oauth_core::http::{Request, StatusCode};
use oauth_core::{
    AccessToken, AuthorizationRequest, BodyEncoding, Client, ClientAssertion, ClientAuthentication,
    ClientSecret, Error, ErrorCode, Password, RefreshPolicy, RetryPolicy, SecurityToken,
    TokenExchange, TokenRequest, TokenResponse, TokenType, TransportErrorKind, UnknownExpiry,
};
use oauth_test_server::{Behaviour, RejectionStyle, Scripted, TestServer};

use crate::{Harness, Setup, SourceSpec};

use oauth_ureq::SystemRandom as Rng;

fn start(behaviour: Behaviour) -> TestServer {
    TestServer::start(behaviour).expect("test server")
}

fn harness<H: Harness>(server: &TestServer) -> H {
    harness_with(server, Setup::default())
}

fn harness_with<H: Harness>(server: &TestServer, mut setup: Setup) -> H {
    setup.ca_pem = Some(server.ca_pem().to_owned());
    H::new(&setup).expect("http client")
}

fn basic(b: &Behaviour) -> Client {
    Client::new(
        b.client_id.as_str(),
        ClientAuthentication::SecretBasic(ClientSecret::new(b.client_secret.as_str())),
    )
}

fn post(b: &Behaviour) -> Client {
    Client::new(
        b.client_id.as_str(),
        ClientAuthentication::SecretPost(ClientSecret::new(b.client_secret.as_str())),
    )
}

fn api(server: &TestServer) -> Request<Vec<u8>> {
    Request::get(server.url("/api")).body(Vec::new()).unwrap()
}

fn cc_source<H: Harness>(h: &H, server: &TestServer, client: Client) -> H::Source {
    let endpoint = h.endpoint(&server.url("/token")).unwrap();
    h.source(
        endpoint,
        client,
        SourceSpec {
            grant: Some(TokenRequest::client_credentials()),
            ..SourceSpec::default()
        },
    )
}

fn token_once<H: Harness>(
    h: &H,
    server: &TestServer,
    client: &Client,
    request: &TokenRequest,
) -> Result<TokenResponse, Error> {
    let endpoint = h.endpoint(&server.url("/token")).unwrap();
    h.request_token(&endpoint, client, request)
}

fn form_field(body: &[u8], name: &str) -> Option<String> {
    let text = std::str::from_utf8(body).ok()?;
    text.split('&').find_map(|pair| {
        let (k, v) = pair.split_once('=')?;
        (k == name).then(|| v.to_owned())
    })
}

fn server_error_code(e: &Error) -> Option<&ErrorCode> {
    e.error_response().map(|r| r.code())
}

/// client_credentials with HTTP Basic (RFC 6749 §2.3.1 form-encoding of id and secret, whose
/// test value holds `~?:%+&` and spaces); the token is reused.
pub fn client_credentials_basic<H: Harness>() {
    let server = start(Behaviour::default());
    let h: H = harness(&server);
    let b = Behaviour::default();
    let source = cc_source(&h, &server, basic(&b));
    let first = h.token(&source).unwrap();
    let second = h.token(&source).unwrap();
    assert_eq!(first.expose_secret(), second.expose_secret());
    assert_eq!(server.counters().token_requests, 1, "{}", H::NAME);
    let seen = &server.token_requests()[0];
    assert!(seen.header("authorization").unwrap().starts_with("Basic "));
    assert_eq!(
        form_field(&seen.body, "grant_type").as_deref(),
        Some("client_credentials")
    );
    assert_eq!(form_field(&seen.body, "client_secret"), None);
}

/// client_credentials with the secret in the form body.
pub fn client_credentials_post<H: Harness>() {
    let b = Behaviour::default();
    let server = start(b.clone());
    let h: H = harness(&server);
    let token = token_once(&h, &server, &post(&b), &TokenRequest::client_credentials()).unwrap();
    assert_eq!(token.token_type(), &TokenType::Bearer);
    assert_eq!(token.expires_in(), Some(Duration::from_secs(3600)));
    let seen = &server.token_requests()[0];
    assert!(seen.header("authorization").is_none());
    assert_eq!(
        form_field(&seen.body, "client_id").as_deref(),
        Some("test-client")
    );
}

/// The wrong secret is `invalid_client`, not retried.
pub fn wrong_secret_is_invalid_client<H: Harness>() {
    let server = start(Behaviour::default());
    let h: H = harness(&server);
    let client = Client::new(
        "test-client",
        ClientAuthentication::SecretBasic(ClientSecret::new("wrong")),
    );
    let err = token_once(&h, &server, &client, &TokenRequest::client_credentials()).unwrap_err();
    assert_eq!(server_error_code(&err), Some(&ErrorCode::InvalidClient));
    assert_eq!(server.counters().token_requests, 1);
    assert!(!err.to_string().contains("wrong"));
}

/// Anypoint: JSON request body, `"token_type": "bearer"` in lowercase, a JSON content type
/// with a charset.
pub fn anypoint_json_body_and_lowercase_bearer<H: Harness>() {
    let b = Behaviour {
        token_type: "bearer".into(),
        response_content_type: "application/json;charset=UTF-8".into(),
        ..Behaviour::default()
    };
    let server = start(b.clone());
    let h: H = harness(&server);
    let client = post(&b).with_body_encoding(BodyEncoding::Json);
    let token = token_once(&h, &server, &client, &TokenRequest::client_credentials()).unwrap();
    assert_eq!(token.token_type(), &TokenType::Bearer);
    let seen = &server.token_requests()[0];
    assert!(
        seen.header("content-type")
            .unwrap()
            .starts_with("application/json")
    );
    let body: serde_json::Value = serde_json::from_slice(&seen.body).unwrap();
    assert_eq!(body["grant_type"], "client_credentials");
    assert_eq!(body["client_secret"], b.client_secret.as_str());
}

/// Dataloy: JSON body with an `audience`; the API answers an expired token with 401 and a
/// `"Token expired."` body; the source gets a new token and retries once.
pub fn dataloy_audience_and_token_expired_retry<H: Harness>() {
    let b = Behaviour {
        required_audience: Some("https://api.example.com".into()),
        rejection_style: RejectionStyle::DataloyBody,
        token_len: 900,
        ..Behaviour::default()
    };
    let server = start(b.clone());
    let h: H = harness(&server);
    let endpoint = h.endpoint(&server.url("/token")).unwrap();
    // Without the audience, the server refuses.
    let refused = h
        .request_token(&endpoint, &post(&b), &TokenRequest::client_credentials())
        .unwrap_err();
    assert_eq!(
        server_error_code(&refused),
        Some(&ErrorCode::InvalidRequest)
    );
    let source = h.source(
        endpoint,
        post(&b).with_body_encoding(BodyEncoding::Json),
        SourceSpec {
            grant: Some(TokenRequest::client_credentials().audience("https://api.example.com")),
            ..SourceSpec::default()
        },
    );
    let ok = h.send(&source, api(&server)).unwrap();
    assert_eq!(ok.status(), StatusCode::OK);
    assert_eq!(h.token(&source).unwrap().expose_secret().len(), 900);
    server.expire_access_tokens();
    let again = h.send(&source, api(&server)).unwrap();
    assert_eq!(again.status(), StatusCode::OK);
    let c = server.counters();
    assert_eq!((c.token_requests, c.resource_requests), (3, 3), "{c:?}");
}

/// A 401 for a fresh token too is returned after one retry, never a second.
pub fn resource_401_is_retried_once_never_twice<H: Harness>() {
    let b = Behaviour {
        reject_all_tokens: true,
        ..Behaviour::default()
    };
    let server = start(b.clone());
    let h: H = harness(&server);
    let source = cc_source(&h, &server, basic(&b));
    let response = h.send(&source, api(&server)).unwrap();
    assert_eq!(response.status(), StatusCode::UNAUTHORIZED);
    let c = server.counters();
    assert_eq!((c.token_requests, c.resource_requests), (2, 2), "{c:?}");
}

/// A 403 or a 401 that is not about the token is returned as is.
pub fn other_statuses_are_not_retried<H: Harness>() {
    let b = Behaviour::default();
    let server = start(b.clone());
    let h: H = harness(&server);
    let source = cc_source(&h, &server, basic(&b));
    let missing = Request::get(server.url("/nothing"))
        .body(Vec::new())
        .unwrap();
    let response = h.send(&source, missing).unwrap();
    assert_eq!(response.status(), StatusCode::NOT_FOUND);
    assert_eq!(server.counters().token_requests, 1);
}

/// A response without `expires_in`: the token is used until the resource rejects it.
pub fn no_expires_in_is_used_until_rejected<H: Harness>() {
    let b = Behaviour {
        expires_in: None,
        ..Behaviour::default()
    };
    let server = start(b.clone());
    let h: H = harness(&server);
    let source = cc_source(&h, &server, basic(&b));
    for _ in 0..3 {
        assert_eq!(
            h.send(&source, api(&server)).unwrap().status(),
            StatusCode::OK
        );
    }
    assert_eq!(server.counters().token_requests, 1);
    server.expire_access_tokens();
    assert_eq!(
        h.send(&source, api(&server)).unwrap().status(),
        StatusCode::OK
    );
    assert_eq!(server.counters().token_requests, 2);
}

/// `expires_in` sent as a string is understood.
pub fn expires_in_as_string<H: Harness>() {
    let b = Behaviour {
        expires_in_as_string: true,
        expires_in: Some(120),
        ..Behaviour::default()
    };
    let server = start(b.clone());
    let h: H = harness(&server);
    let t = token_once(&h, &server, &basic(&b), &TokenRequest::client_credentials()).unwrap();
    assert_eq!(t.expires_in(), Some(Duration::from_secs(120)));
}

/// The password grant, then refresh with the refresh token once the access token is past its
/// serving window; a rotated refresh token reaches the persistence hook.
pub fn password_grant_then_refresh_token_with_persistence<H: Harness>() {
    let b = Behaviour {
        expires_in: Some(2),
        ..Behaviour::default()
    };
    let server = start(b.clone());
    let h: H = harness(&server);
    let persisted: Arc<Mutex<Vec<String>>> = Arc::default();
    let sink = persisted.clone();
    let endpoint = h.endpoint(&server.url("/token")).unwrap();
    let source = h.source(
        endpoint,
        basic(&b),
        SourceSpec {
            grant: Some(TokenRequest::password("alice", Password::new("wonderland"))),
            policy: Some(RefreshPolicy::default().jitter(Duration::ZERO)),
            on_token: Some(Arc::new(move |t: &TokenResponse| {
                let rt = t.refresh_token().map(|r| r.expose_secret().to_owned());
                sink.lock().unwrap().push(rt.unwrap_or_default());
            })),
            ..SourceSpec::default()
        },
    );
    let first = h.token(&source).unwrap();
    std::thread::sleep(Duration::from_millis(1700));
    let second = h.token(&source).unwrap();
    assert_ne!(first.expose_secret(), second.expose_secret());
    let grants: Vec<String> = server
        .token_requests()
        .iter()
        .map(|r| form_field(&r.body, "grant_type").unwrap())
        .collect();
    assert_eq!(grants, ["password", "refresh_token"]);
    let persisted = persisted.lock().unwrap();
    assert_eq!(persisted.len(), 2);
    assert_ne!(persisted[0], persisted[1], "the refresh token rotated");
    assert!(persisted.iter().all(|rt| rt.starts_with("rt")));
}

/// A rotated-away refresh token (`invalid_grant`) falls back to the grant at once.
pub fn refused_refresh_token_falls_back_to_the_grant<H: Harness>() {
    let b = Behaviour {
        refresh_for_client_credentials: true,
        ..Behaviour::default()
    };
    let server = start(b.clone());
    let h: H = harness(&server);
    let endpoint = h.endpoint(&server.url("/token")).unwrap();
    let seed = TokenResponse::new(AccessToken::new("stale"))
        .with_expires_at(SystemTime::now() - Duration::from_secs(1))
        .with_refresh_token(oauth_core::RefreshToken::new("rt-unknown"));
    let source = h.source(
        endpoint,
        basic(&b),
        SourceSpec {
            grant: Some(TokenRequest::client_credentials()),
            seed: Some(seed),
            ..SourceSpec::default()
        },
    );
    let token = h.token(&source).unwrap();
    assert_ne!(token.expose_secret(), "stale");
    let grants: Vec<String> = server
        .token_requests()
        .iter()
        .map(|r| form_field(&r.body, "grant_type").unwrap())
        .collect();
    assert_eq!(grants, ["refresh_token", "client_credentials"]);
}

/// A seeded, still-valid token is used without a request.
pub fn seeded_token_is_used<H: Harness>() {
    let b = Behaviour::default();
    let server = start(b.clone());
    let h: H = harness(&server);
    let issued = server.issue_access_token("test-client", "", Duration::from_secs(3600));
    let endpoint = h.endpoint(&server.url("/token")).unwrap();
    let source = h.source(
        endpoint,
        basic(&b),
        SourceSpec {
            seed: Some(
                TokenResponse::new(AccessToken::new(issued.as_str()))
                    .with_expires_at(SystemTime::now() + Duration::from_secs(3600)),
            ),
            ..SourceSpec::default()
        },
    );
    assert_eq!(h.token(&source).unwrap().expose_secret(), issued);
    assert_eq!(
        h.send(&source, api(&server)).unwrap().status(),
        StatusCode::OK
    );
    assert_eq!(server.counters().token_requests, 0);
    // Without a grant or a refresh token, a rejected token needs the user again.
    server.expire_access_tokens();
    let err = h.send(&source, api(&server)).unwrap_err();
    assert_eq!(err, Error::ReauthorizationRequired);
}

/// authorization_code with PKCE S256, state, nonce and `openid` (an id_token comes back),
/// then two refreshes.
pub fn authorization_code_pkce_openid_and_refresh<H: Harness>() {
    let b = Behaviour::default();
    let server = start(b.clone());
    let h: H = harness(&server);
    let authorize = h.endpoint(&server.url("/authorize")).unwrap();
    let pending = AuthorizationRequest::new(authorize, "test-client")
        .redirect_uri("https://app.example.com/callback")
        .scope(["openid", "profile"])
        .nonce(oauth_core::Nonce::new("n-0S6_WzA2Mj"))
        .build(&Rng)
        .unwrap();
    let response = h
        .execute(Request::get(pending.url()).body(Vec::new()).unwrap())
        .unwrap();
    assert_eq!(response.status(), StatusCode::FOUND);
    let location = response.headers()["location"].to_str().unwrap().to_owned();
    let code = pending.handle_callback(&location).unwrap();
    let request = pending.token_request(code);
    let endpoint = h.endpoint(&server.url("/token")).unwrap();
    let token = h.request_token(&endpoint, &basic(&b), &request).unwrap();
    let id_token = token.id_token().expect("an id_token for openid");
    let payload = id_token.expose_secret().split('.').nth(1).unwrap();
    let claims: serde_json::Value = serde_json::from_slice(
        &base64::engine::general_purpose::URL_SAFE_NO_PAD
            .decode(payload)
            .unwrap(),
    )
    .unwrap();
    assert_eq!(claims["nonce"], "n-0S6_WzA2Mj");
    assert_eq!(claims["aud"], "test-client");
    let seen = &server.token_requests()[0];
    assert!(form_field(&seen.body, "code_verifier").is_some());
    // The code is single-use.
    let reused = h
        .request_token(&endpoint, &basic(&b), &request)
        .unwrap_err();
    assert_eq!(server_error_code(&reused), Some(&ErrorCode::InvalidGrant));

    let source = h.source(
        endpoint,
        basic(&b),
        SourceSpec {
            seed: Some(token),
            ..SourceSpec::default()
        },
    );
    let mut last = h.token(&source).unwrap();
    for _ in 0..2 {
        h.invalidate(&source, &last);
        let next = h.token(&source).unwrap();
        assert_ne!(next.expose_secret(), last.expose_secret());
        // The new token works: the source counts rejections in a row from zero again.
        assert_eq!(h.send(&source, api(&server)).unwrap().status(), 200);
        last = next;
    }
    let grants: Vec<String> = server
        .token_requests()
        .iter()
        .map(|r| form_field(&r.body, "grant_type").unwrap())
        .collect();
    assert_eq!(
        grants,
        [
            "authorization_code",
            "authorization_code",
            "refresh_token",
            "refresh_token"
        ]
    );
}

/// A wrong PKCE verifier is `invalid_grant`.
pub fn wrong_pkce_verifier_is_invalid_grant<H: Harness>() {
    let b = Behaviour::default();
    let server = start(b.clone());
    let h: H = harness(&server);
    let authorize = h.endpoint(&server.url("/authorize")).unwrap();
    let pending = AuthorizationRequest::new(authorize, "test-client")
        .redirect_uri("https://app.example.com/callback")
        .build(&Rng)
        .unwrap();
    let response = h
        .execute(Request::get(pending.url()).body(Vec::new()).unwrap())
        .unwrap();
    let location = response.headers()["location"].to_str().unwrap().to_owned();
    let code = pending.handle_callback(&location).unwrap();
    let request = TokenRequest::authorization_code(
        code,
        Some("https://app.example.com/callback".into()),
        Some(oauth_core::PkceVerifier::new("x".repeat(43))),
    );
    let err = token_once(&h, &server, &basic(&b), &request).unwrap_err();
    assert_eq!(server_error_code(&err), Some(&ErrorCode::InvalidGrant));
}

fn key(pem: &str, alg: Algorithm) -> SigningKey {
    SigningKey::from_pem(pem, alg).unwrap()
}

const P256: &str = include_str!("../../jwt-assertion/tests/keys/p256-pkcs8.pem");
const RSA: &str = include_str!("../../jwt-assertion/tests/keys/rsa2048-pkcs8.pem");
const ED25519: &str = include_str!("../../jwt-assertion/tests/keys/ed25519-pkcs8.pem");

/// private_key_jwt (RS256, PS256, ES256, EdDSA) and client_secret_jwt (HS256) client
/// authentication, each assertion verified by the server and its `jti` not replayable.
pub fn client_assertions_private_key_jwt_and_client_secret_jwt<H: Harness>() {
    for (pem, alg) in [
        (RSA, Algorithm::RS256),
        (RSA, Algorithm::PS256),
        (P256, Algorithm::ES256),
        (ED25519, Algorithm::EdDSA),
    ] {
        let signing = key(pem, alg);
        let b = Behaviour {
            client_jwk: signing.public_jwk(),
            ..Behaviour::default()
        };
        let server = start(b.clone());
        let h: H = harness(&server);
        let audience = server.url("/token");
        let assertion = JwtClaims::client_assertion("test-client", audience.as_str())
            .sign(&signing, SystemTime::now())
            .unwrap();
        let client = Client::new(
            "test-client",
            ClientAuthentication::Assertion(ClientAssertion::jwt(assertion)),
        );
        token_once(&h, &server, &client, &TokenRequest::client_credentials())
            .unwrap_or_else(|e| panic!("{alg:?}: {e}"));
        // The same assertion again is a replay.
        let replay =
            token_once(&h, &server, &client, &TokenRequest::client_credentials()).unwrap_err();
        assert_eq!(server_error_code(&replay), Some(&ErrorCode::InvalidClient));
    }
    let b = Behaviour {
        client_secret: "a client secret of at least thirty-two bytes".into(),
        ..Behaviour::default()
    };
    let server = start(b.clone());
    let h: H = harness(&server);
    let hmac = SigningKey::hmac(b.client_secret.as_bytes(), Algorithm::HS256).unwrap();
    let assertion = JwtClaims::client_assertion("test-client", server.url("/token"))
        .sign(&hmac, SystemTime::now())
        .unwrap();
    let client = Client::new(
        "test-client",
        ClientAuthentication::Assertion(ClientAssertion::jwt(assertion)),
    );
    token_once(&h, &server, &client, &TokenRequest::client_credentials()).unwrap();
}

/// The JWT bearer grant (RFC 7523 §2.1) through a token source that signs a fresh assertion
/// for each request.
pub fn jwt_bearer_grant_signs_afresh<H: Harness>() {
    let signing = key(P256, Algorithm::ES256);
    let b = Behaviour {
        client_jwk: signing.public_jwk(),
        ..Behaviour::default()
    };
    let server = start(b);
    let h: H = harness(&server);
    let audience = server.url("/token");
    let endpoint = h.endpoint(&audience).unwrap();
    let source = h.source(
        endpoint,
        Client::anonymous(),
        SourceSpec {
            grant: Some(
                JwtBearerSigner::new(signing, "test-client", "alice@example.com").into_grant(),
            ),
            ..SourceSpec::default()
        },
    );
    let first = h.token(&source).unwrap();
    h.invalidate(&source, &first);
    let second = h.token(&source).unwrap();
    assert_ne!(first.expose_secret(), second.expose_secret());
    let assertions: Vec<String> = server
        .token_requests()
        .iter()
        .map(|r| form_field(&r.body, "assertion").unwrap())
        .collect();
    assert_eq!(assertions.len(), 2);
    assert_ne!(assertions[0], assertions[1]);
}

/// Token exchange (RFC 8693) of an access token for another.
pub fn token_exchange<H: Harness>() {
    let b = Behaviour::default();
    let server = start(b.clone());
    let h: H = harness(&server);
    let subject = token_once(&h, &server, &basic(&b), &TokenRequest::client_credentials()).unwrap();
    let exchange = TokenExchange::new(
        SecurityToken::new(subject.access_token().expose_secret()),
        oauth_core::TOKEN_TYPE_ACCESS_TOKEN,
    );
    let exchanged = token_once(
        &h,
        &server,
        &basic(&b),
        &TokenRequest::token_exchange(exchange),
    )
    .unwrap();
    assert_eq!(
        exchanged.issued_token_type(),
        Some(oauth_core::TOKEN_TYPE_ACCESS_TOKEN)
    );
    let bogus = TokenExchange::new(
        SecurityToken::new("nope"),
        oauth_core::TOKEN_TYPE_ACCESS_TOKEN,
    );
    let err = token_once(
        &h,
        &server,
        &basic(&b),
        &TokenRequest::token_exchange(bogus),
    )
    .unwrap_err();
    assert_eq!(server_error_code(&err), Some(&ErrorCode::InvalidGrant));
}

fn herd<H: Harness>(seed: Option<TokenResponse>) {
    let b = Behaviour {
        token_delay: Duration::from_millis(300),
        ..Behaviour::default()
    };
    let server = start(b.clone());
    let h: H = harness(&server);
    let endpoint = h.endpoint(&server.url("/token")).unwrap();
    let source = h.source(
        endpoint,
        basic(&b),
        SourceSpec {
            grant: Some(TokenRequest::client_credentials()),
            seed,
            ..SourceSpec::default()
        },
    );
    let results = h.concurrent_tokens(&source, 1000);
    assert_eq!(results.len(), 1000);
    let first = results[0].as_ref().unwrap().expose_secret().to_owned();
    assert!(
        results
            .iter()
            .all(|r| r.as_ref().unwrap().expose_secret() == first)
    );
    assert_eq!(server.counters().token_requests, 1, "{}", H::NAME);
}

/// 1,000 concurrent callers on an empty cache cause exactly one token request.
pub fn thousand_callers_empty_cache_one_request<H: Harness>() {
    herd::<H>(None);
}

/// 1,000 concurrent callers on an expired token cause exactly one token request.
pub fn thousand_callers_expired_cache_one_request<H: Harness>() {
    herd::<H>(Some(
        TokenResponse::new(AccessToken::new("expired"))
            .with_expires_at(SystemTime::now() - Duration::from_secs(5)),
    ));
}

/// A failed token request reaches every waiter, and the source backs off rather than
/// asking again at once.
pub fn failed_refresh_reaches_every_waiter_and_backs_off<H: Harness>() {
    let b = Behaviour {
        token_delay: Duration::from_millis(200),
        ..Behaviour::default()
    };
    let server = start(b);
    let h: H = harness(&server);
    let wrong = Client::new(
        "test-client",
        ClientAuthentication::SecretBasic(ClientSecret::new("wrong")),
    );
    let source = h.source(
        h.endpoint(&server.url("/token")).unwrap(),
        wrong,
        SourceSpec {
            grant: Some(TokenRequest::client_credentials()),
            // (A long backoff: the last call need not come within the default's first second.)
            policy: Some(
                RefreshPolicy::default().backoff(Duration::from_secs(60), Duration::from_secs(60)),
            ),
            ..SourceSpec::default()
        },
    );
    let results = h.concurrent_tokens(&source, 50);
    for r in &results {
        let e = r.as_ref().unwrap_err();
        assert_eq!(server_error_code(e), Some(&ErrorCode::InvalidClient), "{e}");
    }
    assert_eq!(server.counters().token_requests, 1);
    assert!(h.token(&source).is_err());
    assert_eq!(server.counters().token_requests, 1, "backing off");
}

/// Callers holding a still-valid token never wait for the refresh ahead of expiry.
pub fn refresh_ahead_does_not_block_callers<H: Harness>() {
    let b = Behaviour {
        expires_in: Some(10),
        ..Behaviour::default()
    };
    let server = start(b.clone());
    let h: H = harness(&server);
    let endpoint = h.endpoint(&server.url("/token")).unwrap();
    let source = h.source(
        endpoint,
        basic(&b),
        SourceSpec {
            grant: Some(TokenRequest::client_credentials()),
            policy: Some(
                RefreshPolicy::default()
                    .jitter(Duration::ZERO)
                    .refresh_ahead(Duration::from_secs(5))
                    .margin(Duration::from_secs(1)),
            ),
            ..SourceSpec::default()
        },
    );
    let first = h.token(&source).unwrap();
    server.configure(|b| b.token_delay = Duration::from_millis(1500));
    std::thread::sleep(Duration::from_millis(5200)); // refresh due, 3.8 s still servable
    let started = Instant::now();
    for _ in 0..20 {
        assert_eq!(
            h.token(&source).unwrap().expose_secret(),
            first.expose_secret()
        );
    }
    // (A caller that waited for the refresh would have taken its 1.5 s.)
    assert!(
        started.elapsed() < Duration::from_millis(1000),
        "callers waited"
    );
    // One refresh reaches the server; callers keep the current token until it lands.
    let deadline = Instant::now() + Duration::from_secs(3);
    loop {
        let token = h.token(&source).unwrap();
        if token.expose_secret() != first.expose_secret() {
            break;
        }
        assert!(Instant::now() < deadline, "the refresh never landed");
        std::thread::sleep(Duration::from_millis(20));
    }
    assert_eq!(server.counters().token_requests, 2, "one refresh ahead");
}

/// Token requests never follow a redirect.
pub fn redirect_is_refused<H: Harness>() {
    let b = Behaviour::default();
    let server = start(b.clone());
    let h: H = harness(&server);
    let endpoint = h.endpoint(&server.url("/redirect/token")).unwrap();
    let err = h
        .request_token(&endpoint, &basic(&b), &TokenRequest::client_credentials())
        .unwrap_err();
    assert!(
        matches!(&err, Error::Transport(t) if t.kind() == TransportErrorKind::Redirect),
        "{err:?}"
    );
    assert_eq!(server.counters().token_requests, 1);
}

/// A body over the 1 MiB cap is refused.
pub fn oversize_body_is_refused<H: Harness>() {
    let b = Behaviour::default();
    let server = start(b.clone());
    let h: H = harness(&server);
    let endpoint = h.endpoint(&server.url("/oversize/token")).unwrap();
    let err = h
        .request_token(&endpoint, &basic(&b), &TokenRequest::client_credentials())
        .unwrap_err();
    assert!(
        matches!(&err, Error::Transport(t) if t.kind() == TransportErrorKind::BodyTooLarge),
        "{err:?}"
    );
}

/// `http://` is refused unless the caller opts in for loopback development.
pub fn plain_http_needs_the_loopback_opt_in<H: Harness>() {
    let b = Behaviour::default();
    let server = TestServer::start_plain_http(b.clone()).unwrap();
    let strict = H::new(&Setup::default()).unwrap();
    let err = strict.endpoint(&server.url("/token")).unwrap_err();
    assert!(matches!(err, Error::Endpoint(_)), "{err:?}");
    let lax = H::new(&Setup {
        allow_http_loopback: true,
        ..Setup::default()
    })
    .unwrap();
    let endpoint = lax.endpoint(&server.url("/token")).unwrap();
    lax.request_token(&endpoint, &basic(&b), &TokenRequest::client_credentials())
        .unwrap();
    // The opt-in covers loopback only.
    assert!(lax.endpoint("http://auth.example.com/token").is_err());
}

/// A server whose certificate is not trusted fails the TLS handshake.
pub fn untrusted_certificate_is_refused<H: Harness>() {
    let b = Behaviour::default();
    let server = start(b.clone());
    let h = H::new(&Setup {
        retry: Some(RetryPolicy::none()),
        ..Setup::default()
    })
    .unwrap();
    let endpoint = h.endpoint(&server.url("/token")).unwrap();
    let err = h
        .request_token(&endpoint, &basic(&b), &TokenRequest::client_credentials())
        .unwrap_err();
    assert!(
        matches!(&err, Error::Transport(t) if t.kind() == TransportErrorKind::Tls),
        "{err:?}"
    );
    assert_eq!(server.counters().token_requests, 0);
}

/// A slow server times out with a typed error.
pub fn slow_server_times_out<H: Harness>() {
    let b = Behaviour {
        slow_delay: Duration::from_secs(3),
        ..Behaviour::default()
    };
    let server = start(b.clone());
    let h: H = harness_with(
        &server,
        Setup {
            timeout: Some(Duration::from_millis(400)),
            retry: Some(RetryPolicy::none()),
            ..Setup::default()
        },
    );
    let endpoint = h.endpoint(&server.url("/slow/token")).unwrap();
    let started = Instant::now();
    let err = h
        .request_token(&endpoint, &basic(&b), &TokenRequest::client_credentials())
        .unwrap_err();
    assert!(
        matches!(&err, Error::Transport(t) if t.kind() == TransportErrorKind::Timeout),
        "{err:?}"
    );
    assert!(started.elapsed() < Duration::from_secs(2));
}

/// 5xx is retried with backoff, then surfaced as a typed error; a success in between ends
/// the retries.
pub fn server_errors_are_retried_then_surfaced<H: Harness>() {
    let b = Behaviour::default();
    let server = start(b.clone());
    let h: H = harness_with(
        &server,
        Setup {
            retry: Some(
                RetryPolicy::default()
                    .max_attempts(3)
                    .backoff(Duration::from_millis(20), Duration::from_millis(100)),
            ),
            ..Setup::default()
        },
    );
    server.script([
        Scripted::Status(503),
        Scripted::Status(503),
        Scripted::Status(503),
    ]);
    let err = token_once(&h, &server, &basic(&b), &TokenRequest::client_credentials()).unwrap_err();
    assert_eq!(server_error_code(&err), Some(&ErrorCode::ServerError));
    assert_eq!(
        err.error_response().unwrap().status(),
        Some(StatusCode::SERVICE_UNAVAILABLE)
    );
    assert_eq!(server.counters().token_requests, 3);
    server.script([Scripted::Status(502)]);
    token_once(&h, &server, &basic(&b), &TokenRequest::client_credentials()).unwrap();
    assert_eq!(server.counters().token_requests, 5);
}

/// 429 is retried after the server's `Retry-After`.
pub fn too_many_requests_honours_retry_after<H: Harness>() {
    let b = Behaviour::default();
    let server = start(b.clone());
    let h: H = harness(&server);
    server.script([Scripted::TooManyRequests { retry_after: 1 }]);
    let started = Instant::now();
    token_once(&h, &server, &basic(&b), &TokenRequest::client_credentials()).unwrap();
    assert!(started.elapsed() >= Duration::from_secs(1));
    assert_eq!(server.counters().token_requests, 2);
}

/// Connection refused is a transient `Connect` error, retried, then surfaced.
pub fn connection_refused_is_a_connect_error<H: Harness>() {
    // Port 1 (tcpmux) is privileged and outside the ephemeral range: no parallel test's
    // port-0 listener can be given it, as a just-released port-0 port can be.
    let port = 1;
    let h = H::new(&Setup {
        retry: Some(
            RetryPolicy::default().backoff(Duration::from_millis(10), Duration::from_millis(20)),
        ),
        ..Setup::default()
    })
    .unwrap();
    let endpoint = h
        .endpoint(&format!("https://127.0.0.1:{port}/token"))
        .unwrap();
    let client = Client::new(
        "c",
        ClientAuthentication::SecretBasic(ClientSecret::new("s")),
    );
    let err = h
        .request_token(&endpoint, &client, &TokenRequest::client_credentials())
        .unwrap_err();
    assert!(
        matches!(&err, Error::Transport(t) if t.kind() == TransportErrorKind::Connect),
        "{err:?}"
    );
}

/// A token without expiry is kept while `UnknownExpiry::Assume` says so.
pub fn unknown_expiry_policy_assume<H: Harness>() {
    let b = Behaviour {
        expires_in: None,
        ..Behaviour::default()
    };
    let server = start(b.clone());
    let h: H = harness(&server);
    let endpoint = h.endpoint(&server.url("/token")).unwrap();
    let source = h.source(
        endpoint,
        basic(&b),
        SourceSpec {
            grant: Some(TokenRequest::client_credentials()),
            policy: Some(
                RefreshPolicy::default()
                    .unknown_expiry(UnknownExpiry::Assume(Duration::from_secs(2)))
                    .jitter(Duration::ZERO),
            ),
            ..SourceSpec::default()
        },
    );
    let first = h.token(&source).unwrap();
    std::thread::sleep(Duration::from_millis(1700));
    let second = h.token(&source).unwrap();
    assert_ne!(first.expose_secret(), second.expose_secret());
}
