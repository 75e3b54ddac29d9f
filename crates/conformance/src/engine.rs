//! Checks of the one-engine and hardening work: assertions signed per request across a token
//! source's life, deadlines, `Retry-After` dates, recovery, trust settings, and hostile or
//! careless servers. Each starts its own test server.

use std::time::{Duration, Instant, SystemTime, UNIX_EPOCH};

use base64::Engine as _;
use jwt_assertion::{Algorithm, ClientAssertionSigner, JwtBearerSigner, SigningKey};
use oauth_core::http::{Request, StatusCode};
use oauth_core::{
    AccessToken, BodyEncoding, Client, ClientAuthentication, ClientSecret, Error, ErrorCode,
    IntrospectionRequest, Password, RefreshPolicy, RefreshToken, RetryPolicy, RevocationRequest,
    SecurityToken, TokenRequest, TokenResponse, TokenType, TransportErrorKind, UnexpectedReason,
};
use oauth_test_server::{Behaviour, Response, Scripted, TestServer};

use crate::{Harness, Setup, SourceSpec};

const P256: &str = include_str!("../../jwt-assertion/tests/keys/p256-pkcs8.pem");
const RSA: &str = include_str!("../../jwt-assertion/tests/keys/rsa2048-pkcs8.pem");
const ED25519: &str = include_str!("../../jwt-assertion/tests/keys/ed25519-pkcs8.pem");

fn start(behaviour: Behaviour) -> TestServer {
    TestServer::start(behaviour).expect("test server")
}

fn harness_with<H: Harness>(server: &TestServer, mut setup: Setup) -> H {
    setup.ca_pem = Some(server.ca_pem().to_owned());
    H::new(&setup).expect("http client")
}

fn harness<H: Harness>(server: &TestServer) -> H {
    harness_with(server, Setup::default())
}

fn api(server: &TestServer) -> Request<Vec<u8>> {
    Request::get(server.url("/api")).body(Vec::new()).unwrap()
}

fn grant_types(server: &TestServer) -> Vec<String> {
    server
        .token_requests()
        .iter()
        .filter_map(|r| {
            let body = std::str::from_utf8(&r.body).ok()?;
            body.split('&')
                .find_map(|p| p.strip_prefix("grant_type=").map(str::to_owned))
        })
        .collect()
}

/// Drives a token source through six tokens, each obtained a different way: the first call,
/// `invalidate`, a 401 from the resource (retried by `send`), `invalidate` again, expiry on
/// the client's clock, and another 401. Every token must be accepted by the resource, so each
/// token request must have carried a fresh assertion (the server refuses a replayed `jti` and
/// an expired assertion).
fn six_tokens<H: Harness>(h: &H, server: &TestServer, source: &H::Source) {
    let mut seen = Vec::new();
    let ok = |s: &H::Source| {
        let response = h.send(s, api(server)).unwrap();
        assert_eq!(
            response.status(),
            StatusCode::OK,
            "{}",
            String::from_utf8_lossy(response.body())
        );
    };
    let t1 = h.token(source).unwrap();
    ok(source);
    seen.push(t1.expose_secret().to_owned());
    h.invalidate(source, &t1);
    let t2 = h.token(source).unwrap();
    ok(source);
    seen.push(t2.expose_secret().to_owned());
    server.expire_access_tokens();
    ok(source); // 401, new token, retry
    let t3 = h.token(source).unwrap();
    seen.push(t3.expose_secret().to_owned());
    h.invalidate(source, &t3);
    let t4 = h.token(source).unwrap();
    ok(source);
    seen.push(t4.expose_secret().to_owned());
    // Tokens live 2 s: past 1.5 s (expiry minus the quarter-lifetime margin) a new one is due.
    std::thread::sleep(Duration::from_millis(1600));
    let t5 = h.token(source).unwrap();
    ok(source);
    seen.push(t5.expose_secret().to_owned());
    server.expire_access_tokens();
    ok(source);
    let t6 = h.token(source).unwrap();
    seen.push(t6.expose_secret().to_owned());
    let mut distinct = seen.clone();
    distinct.sort();
    distinct.dedup();
    assert_eq!(distinct.len(), 6, "six different tokens");
    assert_eq!(server.counters().token_requests, 6);
}

fn short_lived() -> SourceSpec {
    SourceSpec {
        policy: Some(RefreshPolicy::default().jitter(Duration::ZERO)),
        ..SourceSpec::default()
    }
}

/// A token source whose client authenticates with `private_key_jwt` (RS256, ES256, EdDSA) gets
/// token after token: each request carries an assertion signed for it.
pub fn private_key_jwt_source_signs_every_request<H: Harness>() {
    for (pem, alg) in [
        (RSA, Algorithm::RS256),
        (P256, Algorithm::ES256),
        (ED25519, Algorithm::EdDSA),
    ] {
        let key = SigningKey::from_pem(pem, alg).unwrap();
        let b = Behaviour {
            client_jwk: key.public_jwk(),
            expires_in: Some(2),
            ..Behaviour::default()
        };
        let server = start(b);
        let h: H = harness(&server);
        let endpoint = h.endpoint(&server.url("/token")).unwrap();
        let client = Client::new(
            "test-client",
            ClientAssertionSigner::new(key).into_authentication(),
        );
        let source = h.source(
            endpoint,
            client,
            SourceSpec {
                grant: Some(TokenRequest::client_credentials()),
                ..short_lived()
            },
        );
        six_tokens(&h, &server, &source);
        // Every assertion was different.
        let mut assertions: Vec<String> = server
            .token_requests()
            .iter()
            .map(|r| String::from_utf8_lossy(&r.body).into_owned())
            .collect();
        assertions.sort();
        assertions.dedup();
        assert_eq!(assertions.len(), 6, "{alg:?}");
    }
}

/// A token source running the JWT bearer grant signs a new assertion for every request.
pub fn jwt_bearer_source_signs_every_request<H: Harness>() {
    let key = SigningKey::from_pem(P256, Algorithm::ES256).unwrap();
    let b = Behaviour {
        client_jwk: key.public_jwk(),
        expires_in: Some(2),
        ..Behaviour::default()
    };
    let server = start(b);
    let h: H = harness(&server);
    let endpoint = h.endpoint(&server.url("/token")).unwrap();
    let source = h.source(
        endpoint,
        Client::anonymous(),
        SourceSpec {
            grant: Some(JwtBearerSigner::new(key, "test-client", "alice").into_grant()),
            ..short_lived()
        },
    );
    six_tokens(&h, &server, &source);
}

/// A server that never answers: the whole token call, retries included, ends within the
/// configured timeout, and so do the callers waiting for it.
pub fn a_silent_server_costs_one_deadline<H: Harness>() {
    let b = Behaviour {
        slow_delay: Duration::from_secs(10),
        ..Behaviour::default()
    };
    let server = start(b.clone());
    let h: H = harness_with(
        &server,
        Setup {
            timeout: Some(Duration::from_secs(2)),
            retry: Some(RetryPolicy::default().max_attempts(5)),
            ..Setup::default()
        },
    );
    let endpoint = h.endpoint(&server.url("/slow/token")).unwrap();
    let client = Client::new(
        "test-client",
        ClientAuthentication::SecretBasic(ClientSecret::new(b.client_secret.as_str())),
    );
    let started = Instant::now();
    let err = h
        .request_token(&endpoint, &client, &TokenRequest::client_credentials())
        .unwrap_err();
    assert!(
        matches!(&err, Error::Transport(t) if t.kind() == TransportErrorKind::Timeout),
        "{err:?}"
    );
    // One 2 s deadline for the call, not 2 s per attempt (two attempts would take 4 s).
    assert!(
        started.elapsed() < Duration::from_millis(3500),
        "{:?}",
        started.elapsed()
    );
    let source = h.source(
        endpoint,
        client,
        SourceSpec {
            grant: Some(TokenRequest::client_credentials()),
            ..SourceSpec::default()
        },
    );
    let started = Instant::now();
    let results = h.concurrent_tokens(&source, 20);
    assert!(results.iter().all(Result::is_err));
    assert!(
        started.elapsed() < Duration::from_millis(3500),
        "{:?}",
        started.elapsed()
    );
}

/// An IMF-fixdate for `t` (RFC 9110 §5.6.7).
fn http_date(t: SystemTime) -> String {
    let secs = t.duration_since(UNIX_EPOCH).unwrap().as_secs();
    let (days, rem) = (secs / 86_400, secs % 86_400);
    // Civil date from days since 1970-01-01 (Howard Hinnant's algorithm).
    let z = days + 719_468;
    let era = z / 146_097;
    let doe = z - era * 146_097;
    let yoe = (doe - doe / 1460 + doe / 36_524 - doe / 146_096) / 365;
    let doy = doe - (365 * yoe + yoe / 4 - yoe / 100);
    let mp = (5 * doy + 2) / 153;
    let day = doy - (153 * mp + 2) / 5 + 1;
    let month = if mp < 10 { mp + 3 } else { mp - 9 };
    let year = yoe + era * 400 + u64::from(month <= 2);
    const WEEKDAYS: [&str; 7] = ["Thu", "Fri", "Sat", "Sun", "Mon", "Tue", "Wed"];
    const MONTHS: [&str; 12] = [
        "Jan", "Feb", "Mar", "Apr", "May", "Jun", "Jul", "Aug", "Sep", "Oct", "Nov", "Dec",
    ];
    format!(
        "{}, {day:02} {} {year} {:02}:{:02}:{:02} GMT",
        WEEKDAYS[(days % 7) as usize],
        MONTHS[(month - 1) as usize],
        rem / 3600,
        rem % 3600 / 60,
        rem % 60
    )
}

/// `Retry-After` as an HTTP-date is honoured; one that points past the deadline is not waited
/// for.
pub fn retry_after_date_and_deadline<H: Harness>() {
    let b = Behaviour::default();
    let server = start(b.clone());
    let h: H = harness_with(
        &server,
        Setup {
            timeout: Some(Duration::from_secs(4)),
            ..Setup::default()
        },
    );
    let client = Client::new(
        "test-client",
        ClientAuthentication::SecretBasic(ClientSecret::new(b.client_secret.as_str())),
    );
    let endpoint = h.endpoint(&server.url("/token")).unwrap();
    let unavailable = |retry_after: String| {
        Scripted::Raw(
            Response::json(
                503,
                &serde_json::json!({"error": "temporarily_unavailable"}),
            )
            .header("retry-after", &retry_after),
        )
    };
    // Two seconds from now, as a date (whole seconds: 1 to 2 s of waiting).
    server.script([unavailable(http_date(
        SystemTime::now() + Duration::from_secs(2),
    ))]);
    let started = Instant::now();
    h.request_token(&endpoint, &client, &TokenRequest::client_credentials())
        .unwrap();
    let waited = started.elapsed();
    assert!(
        waited >= Duration::from_millis(900) && waited < Duration::from_secs(4),
        "{waited:?}"
    );
    assert_eq!(server.counters().token_requests, 2);
    // Past the deadline: the error at once.
    server.script([unavailable("30".into())]);
    let started = Instant::now();
    let err = h
        .request_token(&endpoint, &client, &TokenRequest::client_credentials())
        .unwrap_err();
    assert_eq!(
        err.error_response().map(|e| e.code()),
        Some(&ErrorCode::TemporarilyUnavailable)
    );
    assert!(started.elapsed() < Duration::from_secs(1));
}

/// An authorization code is sent once: a 503 (a proxy may answer it after the server consumed
/// the code) and a timeout both end the call; a code redeemed twice would make the server
/// revoke every token issued from it (RFC 6749 §4.1.2). Only a refused connection is retried.
pub fn an_authorization_code_is_never_sent_twice<H: Harness>() {
    let b = Behaviour::default();
    let server = start(b.clone());
    let h: H = harness_with(
        &server,
        Setup {
            retry: Some(
                RetryPolicy::default().backoff(Duration::from_millis(5), Duration::from_millis(10)),
            ),
            ..Setup::default()
        },
    );
    let endpoint = h.endpoint(&server.url("/token")).unwrap();
    let client = Client::new(
        "test-client",
        ClientAuthentication::SecretBasic(ClientSecret::new(b.client_secret.as_str())),
    );
    let request = TokenRequest::authorization_code(
        oauth_core::AuthorizationCode::new("a-code-the-server-consumed"),
        Some("https://app.example/cb".into()),
        None,
    );
    for status in [503, 502, 429] {
        let before = server.counters().token_requests;
        server.script([Scripted::Status(status)]);
        let err = h.request_token(&endpoint, &client, &request).unwrap_err();
        assert_eq!(
            server.counters().token_requests - before,
            1,
            "{status}: the code was sent again ({err})"
        );
    }
}

/// A refresh token request answered 503 is retried (the server did nothing), and a refresh
/// token refused with nothing to fall back on keeps the server's answer as the evidence.
pub fn refresh_token_retried_after_503_and_refusal_kept<H: Harness>() {
    let b = Behaviour::default();
    let server = start(b.clone());
    let h: H = harness(&server);
    let endpoint = h.endpoint(&server.url("/token")).unwrap();
    let client = Client::new(
        "test-client",
        ClientAuthentication::SecretBasic(ClientSecret::new(b.client_secret.as_str())),
    );
    let source = h.source(
        endpoint.clone(),
        client.clone(),
        SourceSpec {
            grant: Some(TokenRequest::password("alice", Password::new("wonderland"))),
            ..SourceSpec::default()
        },
    );
    let first = h.token(&source).unwrap();
    h.invalidate(&source, &first);
    server.script([Scripted::Status(503)]);
    let second = h.token(&source).unwrap();
    assert_ne!(first.expose_secret(), second.expose_secret());
    assert_eq!(
        grant_types(&server),
        ["password", "refresh_token", "refresh_token"]
    );

    // A seeded token whose refresh token the server does not know, and no grant.
    let seed = TokenResponse::new(AccessToken::new("stale"))
        .with_expires_at(SystemTime::now())
        .with_refresh_token(RefreshToken::new("unknown-refresh-token"));
    let source = h.source(
        endpoint,
        client,
        SourceSpec {
            seed: Some(seed),
            ..SourceSpec::default()
        },
    );
    let err = h.token(&source).unwrap_err();
    assert!(
        matches!(&err, Error::RefreshRefused(e) if e.code() == &ErrorCode::InvalidGrant),
        "{err:?}"
    );
}

/// A resource that rejects every token: twenty calls, not twenty-one token requests.
pub fn a_resource_rejecting_everything_is_not_hammered<H: Harness>() {
    let b = Behaviour {
        reject_all_tokens: true,
        ..Behaviour::default()
    };
    let server = start(b.clone());
    let h: H = harness(&server);
    let source = h.source(
        h.endpoint(&server.url("/token")).unwrap(),
        Client::new(
            "test-client",
            ClientAuthentication::SecretBasic(ClientSecret::new(b.client_secret.as_str())),
        ),
        SourceSpec {
            grant: Some(TokenRequest::client_credentials()),
            // (A long backoff: the twenty calls need not fit in the default's first second.)
            policy: Some(
                RefreshPolicy::default().backoff(Duration::from_secs(60), Duration::from_secs(60)),
            ),
            ..SourceSpec::default()
        },
    );
    for _ in 0..20 {
        let response = h.send(&source, api(&server)).unwrap();
        assert_eq!(response.status(), StatusCode::UNAUTHORIZED);
    }
    assert_eq!(server.counters().token_requests, 2);
}

/// A provider's own "expired" wording, taught to the source.
pub fn a_providers_wording_is_pluggable<H: Harness>() {
    let b = Behaviour::default();
    let server = start(b.clone());
    let h: H = harness(&server);
    let source = h.source(
        h.endpoint(&server.url("/token")).unwrap(),
        Client::new(
            "test-client",
            ClientAuthentication::SecretBasic(ClientSecret::new(b.client_secret.as_str())),
        ),
        SourceSpec {
            grant: Some(TokenRequest::client_credentials()),
            classifier: Some(oauth_core::RejectionClassifier::default().rule(
                |status, headers, _| {
                    // The test server's challenge, read as if it were a custom scheme.
                    status == StatusCode::UNAUTHORIZED && headers.contains_key("www-authenticate")
                },
            )),
            ..SourceSpec::default()
        },
    );
    h.token(&source).unwrap();
    server.expire_access_tokens();
    assert_eq!(
        h.send(&source, api(&server)).unwrap().status(),
        StatusCode::OK
    );
    assert_eq!(server.counters().token_requests, 2);
}

/// A token of another type than Bearer is never sent as Bearer.
pub fn other_token_types_are_not_sent_as_bearer<H: Harness>() {
    for (token_type, expected) in [
        ("DPoP", TokenType::DPoP),
        ("N_A", TokenType::NotApplicable),
        ("mac", TokenType::parse("mac")),
    ] {
        let b = Behaviour {
            token_type: token_type.into(),
            ..Behaviour::default()
        };
        let server = start(b.clone());
        let h: H = harness(&server);
        let source = h.source(
            h.endpoint(&server.url("/token")).unwrap(),
            Client::new(
                "test-client",
                ClientAuthentication::SecretBasic(ClientSecret::new(b.client_secret.as_str())),
            ),
            SourceSpec {
                grant: Some(TokenRequest::client_credentials()),
                ..SourceSpec::default()
            },
        );
        let token = h.token(&source).unwrap();
        assert_eq!(token.token_type(), &expected);
        let err = h.send(&source, api(&server)).unwrap_err();
        assert_eq!(err, Error::UnsupportedTokenType(expected));
        assert!(
            err.to_string().contains("cannot be sent as a bearer token"),
            "{err}"
        );
        assert_eq!(
            server.counters().resource_requests,
            0,
            "{token_type}: nothing sent"
        );
    }
}

/// Token answers no request could carry, with an error inside, or with a status other than
/// 200 are refused with typed errors, and nothing is cached.
pub fn hostile_token_answers_are_refused<H: Harness>() {
    let b = Behaviour::default();
    let server = start(b.clone());
    let h: H = harness_with(
        &server,
        Setup {
            retry: Some(RetryPolicy::none()),
            ..Setup::default()
        },
    );
    let client = Client::new(
        "test-client",
        ClientAuthentication::SecretBasic(ClientSecret::new(b.client_secret.as_str())),
    );
    let endpoint = h.endpoint(&server.url("/token")).unwrap();
    let answer =
        |status: u16, body: serde_json::Value| Scripted::Raw(Response::json(status, &body));
    let cases = [
        answer(
            200,
            serde_json::json!({"access_token": "ab\r\ncd", "token_type": "Bearer"}),
        ),
        answer(
            200,
            serde_json::json!({"access_token": "nul\u{0}byte", "token_type": "Bearer"}),
        ),
        answer(
            200,
            serde_json::json!({"access_token": "with space", "token_type": "Bearer"}),
        ),
        answer(
            200,
            serde_json::json!({"access_token": "non-ascii-é", "token_type": "Bearer"}),
        ),
        answer(
            200,
            serde_json::json!({"access_token": "tab\there", "token_type": "Bearer"}),
        ),
        answer(
            200,
            serde_json::json!({"access_token": "ok", "error": {"code": 7}}),
        ),
        answer(
            201,
            serde_json::json!({"access_token": "ok", "token_type": "Bearer"}),
        ),
        answer(
            203,
            serde_json::json!({"access_token": "ok", "token_type": "Bearer"}),
        ),
        answer(
            206,
            serde_json::json!({"access_token": "ok", "token_type": "Bearer"}),
        ),
    ];
    let n = cases.len();
    server.script(cases);
    for i in 0..n {
        let err = h
            .request_token(&endpoint, &client, &TokenRequest::client_credentials())
            .unwrap_err();
        let Error::UnexpectedResponse(u) = &err else {
            panic!("case {i}: {err:?}")
        };
        match i {
            0..=4 => assert_eq!(
                u.reason(),
                &UnexpectedReason::InvalidField("access_token"),
                "case {i}"
            ),
            5 => assert_eq!(u.reason(), &UnexpectedReason::InvalidField("error")),
            _ => assert_eq!(u.reason(), &UnexpectedReason::Status, "case {i}"),
        }
    }
    // Through a token source: the bad answer is an error, not a cached token, and the next
    // answer is used.
    let source = h.source(
        endpoint,
        client,
        SourceSpec {
            grant: Some(TokenRequest::client_credentials()),
            policy: Some(
                RefreshPolicy::default()
                    .backoff(Duration::from_millis(10), Duration::from_millis(10)),
            ),
            ..SourceSpec::default()
        },
    );
    server.script([answer(200, serde_json::json!({"access_token": "ab\r\ncd"}))]);
    assert!(h.token(&source).is_err());
    std::thread::sleep(Duration::from_millis(20));
    assert_eq!(
        h.send(&source, api(&server)).unwrap().status(),
        StatusCode::OK
    );
}

/// A careless server echoes the request into its errors: no secret that was sent appears in
/// any error's `Display` or `Debug`, raw or encoded.
pub fn echoed_secrets_are_scrubbed_from_errors<H: Harness>() {
    let b = Behaviour {
        echo_requests: true,
        ..Behaviour::default()
    };
    let secret = b.client_secret.clone();
    let server = start(b);
    let h: H = harness_with(
        &server,
        Setup {
            retry: Some(RetryPolicy::none()),
            ..Setup::default()
        },
    );
    let endpoint = h.endpoint(&server.url("/token")).unwrap();
    let wrong_secret = "Wr0ng~secret: with+spaces&more";
    let password = "P@ss word+%&:~";
    let refresh = "refresh-token-value-0123456789";
    let key = SigningKey::from_pem(P256, Algorithm::ES256).unwrap();
    let clients = [
        Client::new(
            "test-client",
            ClientAuthentication::SecretBasic(ClientSecret::new(wrong_secret)),
        ),
        Client::new(
            "test-client",
            ClientAuthentication::SecretBasicVerbatim(ClientSecret::new(wrong_secret)),
        ),
        Client::new(
            "test-client",
            ClientAuthentication::SecretPost(ClientSecret::new(wrong_secret)),
        ),
        Client::new(
            "test-client",
            ClientAuthentication::SecretPost(ClientSecret::new(wrong_secret)),
        )
        .with_body_encoding(BodyEncoding::Json),
        // Right credentials, wrong grant secrets.
        Client::new(
            "test-client",
            ClientAuthentication::SecretBasic(ClientSecret::new(secret.as_str())),
        ),
        Client::new(
            "test-client",
            ClientAssertionSigner::new(key).into_authentication(),
        ),
    ];
    let requests = [
        TokenRequest::password("alice", Password::new(password)),
        TokenRequest::refresh_token(RefreshToken::new(refresh)),
    ];
    let b64 = |s: &str| base64::engine::general_purpose::STANDARD.encode(s);
    let secrets: Vec<String> = [wrong_secret, secret.as_str(), password, refresh]
        .into_iter()
        .flat_map(|s| {
            let mut encoded = String::new();
            for byte in s.bytes() {
                match byte {
                    b'a'..=b'z' | b'A'..=b'Z' | b'0'..=b'9' | b'-' | b'.' | b'_' | b'*' => {
                        encoded.push(byte as char)
                    }
                    b' ' => encoded.push('+'),
                    _ => encoded.push_str(&format!("%{byte:02X}")),
                }
            }
            [s.to_owned(), encoded, b64(&format!("test-client:{s}"))]
        })
        .collect();
    let mut errors = Vec::new();
    for client in &clients {
        for request in &requests {
            errors.push(h.request_token(&endpoint, client, request).unwrap_err());
            server.script([Scripted::Echo]);
            errors.push(h.request_token(&endpoint, client, request).unwrap_err());
        }
    }
    let mut echoed = 0;
    for e in &errors {
        let text = format!("{e} {e:?}");
        echoed += usize::from(text.contains("<redacted>"));
        for s in &secrets {
            assert!(!text.contains(s.as_str()), "{s:?} in {text}");
        }
        // The assertions signed for the requests do not appear either.
        assert!(!text.contains("eyJ"), "{text}");
    }
    assert!(
        echoed >= errors.len() / 2,
        "the server did echo: {echoed} of {}",
        errors.len()
    );
}

/// Trusting only a private CA: its server is reached, a server under another CA is not.
pub fn trust_only_the_given_authority<H: Harness>() {
    let b = Behaviour::default();
    let server = start(b.clone());
    let other = start(b.clone());
    let h: H = harness_with(
        &server,
        Setup {
            trust_only: true,
            ..Setup::default()
        },
    );
    let client = Client::new(
        "test-client",
        ClientAuthentication::SecretBasic(ClientSecret::new(b.client_secret.as_str())),
    );
    h.request_token(
        &h.endpoint(&server.url("/token")).unwrap(),
        &client,
        &TokenRequest::client_credentials(),
    )
    .unwrap();
    let err = h
        .request_token(
            &h.endpoint(&other.url("/token")).unwrap(),
            &client,
            &TokenRequest::client_credentials(),
        )
        .unwrap_err();
    assert!(
        matches!(&err, Error::Transport(t) if t.kind() == TransportErrorKind::Tls),
        "{err:?}"
    );
}

/// A body with a declared length comes back in a buffer of exactly its size: allocated once
/// from `Content-Length` (no doubling growth while reading), no spare capacity kept.
pub fn bodies_are_read_into_one_exact_buffer<H: Harness>() {
    let server = start(Behaviour::default());
    let h: H = harness(&server);
    // The resource echoes the token's scope: a 200 KB answer.
    let scope = "s".repeat(200 * 1024);
    let token = server.issue_access_token("test-client", &scope, Duration::from_secs(600));
    let request = Request::get(server.url("/api"))
        .header("authorization", format!("Bearer {token}"))
        .body(Vec::new())
        .unwrap();
    let response = h.execute(request).unwrap();
    assert_eq!(response.status(), StatusCode::OK);
    let declared: usize = response.headers()["content-length"]
        .to_str()
        .unwrap()
        .parse()
        .unwrap();
    assert!(declared > 200 * 1024);
    assert_eq!(response.body().len(), declared);
    assert_eq!(response.body().capacity(), declared);
}

/// An `on_token` hook that panics does not leave the source stuck: the refresh is given back
/// and the next call gets a token (on the async adapter the caller never sees the panic; on
/// the blocking one it unwinds through the call that ran the hook).
pub fn a_panicking_persist_hook_does_not_stall_the_source<H: Harness>() {
    use std::sync::atomic::{AtomicBool, Ordering};
    let b = Behaviour::default();
    let server = start(b.clone());
    let h: H = harness(&server);
    let fired = std::sync::Arc::new(AtomicBool::new(false));
    let hook = std::sync::Arc::clone(&fired);
    let source = h.source(
        h.endpoint(&server.url("/token")).unwrap(),
        Client::new(
            "test-client",
            ClientAuthentication::SecretBasic(ClientSecret::new(b.client_secret.as_str())),
        ),
        SourceSpec {
            grant: Some(TokenRequest::client_credentials()),
            on_token: Some(std::sync::Arc::new(move |_: &TokenResponse| {
                if !hook.swap(true, Ordering::SeqCst) {
                    panic!("the persist hook failed (on purpose)");
                }
            })),
            ..SourceSpec::default()
        },
    );
    let first = std::panic::catch_unwind(std::panic::AssertUnwindSafe(|| h.token(&source)));
    assert!(fired.load(Ordering::SeqCst));
    let started = Instant::now();
    let token = h.token(&source).expect("a token after the hook's panic");
    assert!(started.elapsed() < Duration::from_secs(5));
    if let Ok(Ok(first)) = first {
        // The async adapter retried after the panicked refresh was given back.
        assert_eq!(first.expose_secret(), token.expose_secret());
    }
    assert_eq!(server.counters().token_requests, 2);
}

/// `introspect` and `revoke` on the HTTP client, with a client that signs per request.
pub fn introspect_and_revoke<H: Harness>() {
    let key = SigningKey::from_pem(ED25519, Algorithm::EdDSA).unwrap();
    let b = Behaviour {
        client_jwk: key.public_jwk(),
        ..Behaviour::default()
    };
    let server = start(b);
    let h: H = harness(&server);
    let client = Client::new(
        "test-client",
        ClientAssertionSigner::new(key)
            .audience(server.url("/token"))
            .into_authentication(),
    );
    let token = server.issue_access_token("test-client", "read", Duration::from_secs(600));
    let introspect = h.endpoint(&server.url("/introspect")).unwrap();
    let revoke = h.endpoint(&server.url("/revoke")).unwrap();
    let request = IntrospectionRequest::new(SecurityToken::new(token.as_str()));
    let active = h.introspect(&introspect, &client, &request).unwrap();
    assert!(active.active());
    h.revoke(
        &revoke,
        &client,
        &RevocationRequest::new(SecurityToken::new(token.as_str())),
    )
    .unwrap();
    assert!(
        !h.introspect(&introspect, &client, &request)
            .unwrap()
            .active()
    );
}
