//! Formats every secret-bearing type and every error with `{:?}` and `{}` and asserts that no
//! secret value appears.
#![allow(clippy::unwrap_used, clippy::expect_used, clippy::panic)]

use std::time::{Duration, SystemTime};

use oauth_core::anypoint::MavenFacadeCredentials;
use oauth_core::http::{HeaderMap, Request, Response};
use oauth_core::{
    AccessToken, Assertion, AuthorizationCode, AuthorizationRequest, BodyEncoding, Client,
    ClientAssertion, ClientAuthentication, ClientSecret, Endpoint, Error, IdToken, Nonce, Password,
    Pkce, PkceMethod, PkceVerifier, RandomError, RandomSource, RefreshPolicy, RefreshToken,
    SecurityToken, State, TOKEN_TYPE_ACCESS_TOKEN, TokenExchange, TokenLifecycle, TokenRequest,
    bearer_challenge, classify_resource_response, parse_token_response,
};

/// Each secret is a distinctive string that cannot occur by accident.
const SECRETS: &[&str] = &[
    "SECRET-client-7f3a",
    "SECRET-access-91bc",
    "SECRET-refresh-2d4e",
    "SECRET-code-5a6b",
    "SECRET-verifier-0123456789012345678901234567890123",
    "SECRET-state-c0ff",
    "SECRET-nonce-beef",
    "SECRET-password-f00d",
    "SECRET-assertion-1ce",
    "SECRET-idtoken-a11",
    "SECRET-subject-b0b",
    "SECRET-device-d3v",
];

struct Zero;

impl RandomSource for Zero {
    fn fill(&self, dest: &mut [u8]) -> Result<(), RandomError> {
        dest.fill(0);
        Ok(())
    }
}

#[track_caller]
fn assert_clean(what: &str, text: &str) {
    for secret in SECRETS {
        assert!(!text.contains(secret), "{what} leaks {secret}: {text}");
    }
}

macro_rules! debug_clean {
    ($($value:expr),* $(,)?) => {
        $( assert_clean(stringify!($value), &format!("{:?}", $value)); )*
    };
}

#[test]
fn no_secret_in_debug_or_display() {
    let [
        client_secret,
        access,
        refresh,
        code,
        verifier,
        state,
        nonce,
        password,
        assertion,
        id_token,
        subject,
        device,
    ] = SECRETS
    else {
        unreachable!()
    };

    // The secret types themselves.
    debug_clean!(
        ClientSecret::new(*client_secret),
        AccessToken::new(*access),
        RefreshToken::new(*refresh),
        AuthorizationCode::new(*code),
        PkceVerifier::new(*verifier),
        State::new(*state),
        Nonce::new(*nonce),
        Password::new(*password),
        Assertion::new(*assertion),
        IdToken::new(*id_token),
        SecurityToken::new(*subject),
    );

    // Clients and every authentication method.
    let clients = [
        Client::new(
            "id",
            ClientAuthentication::SecretBasic(ClientSecret::new(*client_secret)),
        ),
        Client::new(
            "id",
            ClientAuthentication::SecretBasicVerbatim(ClientSecret::new(*client_secret)),
        ),
        Client::new(
            "id",
            ClientAuthentication::SecretPost(ClientSecret::new(*client_secret)),
        )
        .with_body_encoding(BodyEncoding::Json),
        Client::new(
            "id",
            ClientAuthentication::Assertion(ClientAssertion::jwt(Assertion::new(*assertion))),
        ),
    ];
    debug_clean!(clients);

    // Every grant, and the built requests (body and headers).
    let requests = [
        TokenRequest::client_credentials(),
        TokenRequest::authorization_code(
            AuthorizationCode::new(*code),
            Some("https://example.com".into()),
            Some(PkceVerifier::new(*verifier)),
        ),
        TokenRequest::refresh_token(RefreshToken::new(*refresh)),
        TokenRequest::password("user", Password::new(*password)),
        TokenRequest::jwt_bearer(Assertion::new(*assertion)),
        TokenRequest::token_exchange(
            TokenExchange::new(SecurityToken::new(*subject), TOKEN_TYPE_ACCESS_TOKEN)
                .actor_token(SecurityToken::new(*subject), TOKEN_TYPE_ACCESS_TOKEN),
        ),
        TokenRequest::extension("urn:ietf:params:oauth:grant-type:device_code")
            .secret_param("device_code", SecurityToken::new(*device)),
    ];
    debug_clean!(requests);
    let endpoint = Endpoint::new("https://as.example/token").unwrap();
    for client in &clients {
        for request in &requests {
            let built = request.build(&endpoint, client).unwrap();
            debug_clean!(built);
            // The secrets are really in there; the redaction is what keeps them out of Debug.
            let body = String::from_utf8_lossy(built.body().expose_secret()).into_owned();
            let auth = built
                .headers()
                .get("authorization")
                .map(|v| v.to_str().unwrap().to_owned());
            assert!(!body.is_empty() || auth.is_some());
        }
    }

    // The authorization code flow.
    let authorize = Endpoint::new("https://as.example/authorize").unwrap();
    let pkce = Pkce::from_verifier(PkceVerifier::new(*verifier), PkceMethod::S256).unwrap();
    let authorization = AuthorizationRequest::new(authorize, "id")
        .state(State::new(*state))
        .nonce(Nonce::new(*nonce))
        .pkce(pkce.clone());
    debug_clean!(authorization, pkce);
    let pending = authorization.build(&Zero).unwrap();
    assert!(pending.url().contains(state));
    debug_clean!(pending);

    // Token responses and the lifecycle that caches them.
    let body = format!(
        r#"{{"access_token":"{access}","refresh_token":"{refresh}","id_token":"{id_token}","token_type":"bearer","expires_in":60,"extra_secret":"{subject}"}}"#
    );
    let response = Response::builder().status(200).body(body).unwrap();
    let now = SystemTime::UNIX_EPOCH + Duration::from_secs(1_700_000_000);
    let token = parse_token_response(&response, now).unwrap();
    debug_clean!(token);
    let mut lifecycle = TokenLifecycle::new(RefreshPolicy::default(), Some(requests[4].clone()));
    #[allow(clippy::disallowed_methods)] // a test's one real reading
    let clocks = oauth_core::Now::new(now, std::time::Instant::now());
    lifecycle.store(token, clocks, &Zero);
    let later = clocks.after(Duration::from_secs(50));
    debug_clean!(
        lifecycle,
        lifecycle.snapshot(),
        lifecycle.poll(later, later.monotonic())
    );

    // Anypoint's Maven facade.
    let maven = MavenFacadeCredentials::new("id".into(), ClientSecret::new(*client_secret));
    debug_clean!(
        maven,
        maven.settings_xml_server("repo"),
        maven.authorization_header().unwrap()
    );

    // Every error, built from inputs that carry secrets where an attacker or a bug could put
    // them: a 2xx body with a token that fails to parse, bad headers, callbacks.
    let mut errors: Vec<Error> = Vec::new();
    let bad_bodies = [
        (
            200,
            format!(r#"{{"access_token":"{access}","expires_in":"soon"}}"#),
        ),
        (200, format!(r#"<html>{access}</html>"#)),
        (200, format!(r#"{{"access_token":"{access}","scope":5}}"#)),
        (200, format!(r#"{{"refresh_token":"{refresh}"}}"#)),
    ];
    for (status, body) in bad_bodies {
        let response = Response::builder().status(status).body(body).unwrap();
        errors.push(parse_token_response(&response, now).unwrap_err());
    }
    let mut call = Request::get("https://api.example").body(()).unwrap();
    errors.push(
        oauth_core::authorize_request(&mut call, &AccessToken::new(format!("{access}\n")))
            .unwrap_err(),
    );
    for callback in [
        format!("code={code}&state=wrong"),
        format!("code={code}&state={state}&state={state}"),
        format!("code={code}&state={state}&iss=https://evil"),
        format!("state={state}"),
    ] {
        let strict =
            AuthorizationRequest::new(Endpoint::new("https://as.example/a").unwrap(), "id")
                .state(State::new(*state))
                .expect_issuer("https://as.example", true)
                .build(&Zero)
                .unwrap();
        errors.push(strict.handle_callback(&callback).unwrap_err());
    }
    let bad_id = Client::new(
        "bad:id",
        ClientAuthentication::SecretBasicVerbatim(ClientSecret::new(*client_secret)),
    );
    errors.push(
        TokenRequest::client_credentials()
            .build(&endpoint, &bad_id)
            .unwrap_err(),
    );
    errors.push(
        Pkce::from_verifier(PkceVerifier::new(format!("{verifier}!")), PkceMethod::S256)
            .unwrap_err(),
    );
    assert!(errors.len() >= 10);
    for error in &errors {
        assert_clean("error Debug", &format!("{error:?}"));
        assert_clean("error Display", &error.to_string());
    }

    // Resource-server verdicts keep a snippet of a 401 body; our token is not in it unless the
    // server echoed it, and the challenge parser keeps only named parameters.
    let mut headers = HeaderMap::new();
    headers.insert(
        "www-authenticate",
        "Bearer error=\"invalid_token\"".parse().unwrap(),
    );
    debug_clean!(bearer_challenge(&headers));
    let resp = Response::builder()
        .status(401)
        .body("Token expired.")
        .unwrap();
    debug_clean!(classify_resource_response(&resp));
}

#[test]
fn resource_server_side_hides_tokens_and_credentials() {
    use oauth_core::{
        ApiPolicy, BearerLocations, ContractStatus, IntrospectionRequest, RevocationRequest,
        extract_bearer_token, parse_introspection_response,
    };
    let access = "SECRET-access-91bc";
    let client_secret = "SECRET-client-7f3a";
    let subject = "SECRET-subject-b0b";
    let endpoint = Endpoint::new("https://as.example/introspect").unwrap();
    let client = Client::new(
        "rs",
        ClientAuthentication::SecretPost(ClientSecret::new(client_secret)),
    );

    // The requests a resource server sends.
    let token = SecurityToken::new(access);
    debug_clean!(
        IntrospectionRequest::new(token.clone()),
        IntrospectionRequest::new(token.clone())
            .build(&endpoint, &client)
            .unwrap(),
        RevocationRequest::new(token)
            .build(&endpoint, &client)
            .unwrap(),
    );

    // The token taken from requests (header, query, form body).
    let all = BearerLocations::header_only()
        .allow_query()
        .allow_form_body();
    let from_header = Request::get("https://api.example/")
        .header("authorization", format!("Bearer {access}"))
        .body(Vec::new())
        .unwrap();
    let from_query = Request::get(format!("https://api.example/?access_token={access}"))
        .body(Vec::new())
        .unwrap();
    for request in [&from_header, &from_query] {
        let t = extract_bearer_token(request, all).unwrap();
        assert_eq!(t.expose_secret(), access);
        debug_clean!(t, t.to_access_token());
    }
    let two = Request::get(format!("https://api.example/?access_token={access}"))
        .header("authorization", format!("Bearer {access}"))
        .body(Vec::new())
        .unwrap();
    let denial = extract_bearer_token(&two, all).unwrap_err();
    debug_clean!(denial);
    assert_clean("denial Display", &denial.to_string());

    // What the introspection endpoint says, and the decisions made from it.
    let body = format!(
        r#"{{"active":true,"client_id":"app","sub":"{subject}","username":"{subject}","scope":"a","x_token":"{access}"}}"#
    );
    let answer = Response::builder().status(200).body(body).unwrap();
    let introspection = std::sync::Arc::new(parse_introspection_response(&answer).unwrap());
    debug_clean!(introspection);
    let policy = ApiPolicy::new("api").require_scope(["b"]);
    let now = SystemTime::UNIX_EPOCH;
    let granted = |_: &str, _: &str| ContractStatus::Granted {
        scopes: None,
        tier: None,
    };
    let denial = policy.decide(&introspection, now, granted).unwrap_err();
    debug_clean!(denial, policy.deny_response(&denial));
    let allowed = ApiPolicy::new("api")
        .decide(&introspection, now, granted)
        .unwrap();
    debug_clean!(allowed);
}
