//! Every request type the core builds, sent to a server that echoes each request back into
//! its error (as an OAuth error's description, and as a plain-text error page): no value the
//! request carried — client secret, Basic credentials, assertions, refresh token, code and
//! verifier, password, initial and registration access tokens, DPoP proof, the token being
//! introspected, revoked or presented to userinfo — appears in any error's `Display` or
//! `Debug`, raw or encoded.
//!
//! [`exercise`] runs the table and hands back what was planted and what came out, so the same
//! run also serves the log capture of `tests/no_secrets_in_logs.rs`.

use base64::Engine as _;
use jwt_assertion::{Algorithm, ClientAssertionSigner, DpopKey, SigningKey};
use oauth_core::{
    AccessToken, AuthorizationCode, AuthorizationRequest, BodyEncoding, Client,
    ClientAuthentication, ClientMetadata, ClientSecret, DeviceAuthorizationRequest, Dpop,
    IntrospectionRequest, Password, PkceVerifier, RefreshToken, RegistrationRequest,
    RevocationRequest, SchemePolicy, SecurityToken, TokenRequest, parse_server_metadata,
};
use oauth_test_server::{Behaviour, EchoStyle, TestServer};

use crate::{Harness, Setup};

const P256: &str = include_str!("../../jwt-assertion/tests/keys/p256-pkcs8.pem");

/// What one run of the echo table planted and what came back.
#[derive(Debug, Default)]
pub struct Echoed {
    /// Every secret value sent (raw; [`forms`] gives the encodings to look for).
    pub planted: Vec<String>,
    /// `"{e} | {e:?}"` of every error, labelled with the request type that produced it.
    pub errors: Vec<(String, String)>,
}

/// Every form in which `secret` leaves the process: raw, form-encoded (both spaces), JSON-
/// escaped, and base64 of the Basic `client_id:secret` (raw and form-encoded).
pub fn forms(secret: &str, client_id: &str) -> Vec<String> {
    let b64 = |s: &str| base64::engine::general_purpose::STANDARD.encode(s);
    let mut encoded = String::new();
    for byte in secret.bytes() {
        match byte {
            b'a'..=b'z' | b'A'..=b'Z' | b'0'..=b'9' | b'-' | b'.' | b'_' | b'*' => {
                encoded.push(byte as char)
            }
            b' ' => encoded.push('+'),
            _ => encoded.push_str(&format!("%{byte:02X}")),
        }
    }
    let json = serde_json::to_string(secret).unwrap_or_default();
    vec![
        secret.to_owned(),
        encoded.clone(),
        encoded.replace('+', "%20"),
        json.trim_matches('"').to_owned(),
        b64(&format!("{client_id}:{secret}")),
        b64(&format!("{client_id}:{encoded}")),
    ]
}

/// Runs every request type against an echoing server, in both echo styles.
pub fn exercise<H: Harness>() -> Echoed {
    let mut out = Echoed::default();
    for style in [EchoStyle::OAuthError, EchoStyle::Page] {
        run::<H>(style, &mut out);
    }
    out
}

fn run<H: Harness>(style: EchoStyle, out: &mut Echoed) {
    let server = TestServer::start(Behaviour {
        registration_token: Some("initial-access-token-0123456789".into()),
        ..Behaviour::default()
    })
    .expect("test server");
    let h = H::new(&Setup {
        ca_pem: Some(server.ca_pem().to_owned()),
        retry: Some(oauth_core::RetryPolicy::none()),
        ..Setup::default()
    })
    .expect("http client");
    let url = |path: &str| h.endpoint(&server.url(path)).expect("endpoint");

    // Registered while the server still behaves: its client secret and registration access
    // token are then sent to the echoing read, update and delete.
    let registration = url("/register");
    let registered = h
        .register_client(
            &registration,
            &RegistrationRequest::new(ClientMetadata::new().client_name("echo"))
                .initial_access_token(AccessToken::new("initial-access-token-0123456789")),
        )
        .expect("registration");
    let issued_secret = registered
        .client_secret()
        .map(|s| s.expose_secret().to_owned())
        .expect("a client secret");
    let registration_token = registered
        .registration_access_token()
        .map(|t| t.expose_secret().to_owned())
        .expect("a registration access token");
    server.configure(|b| b.echo_all = Some(style));

    let secret = "Pl4nted~secret: with+spaces&more/\"quoted\"";
    let password = "P@ss word+%&:~planted";
    let refresh = "refresh-token-planted-0123456789";
    let code = "code-planted-0123456789";
    let verifier = "verifier-planted-0123456789-abcdefghijklmnopqrstuvwxyz";
    let introspected = "introspected-token-planted-0123";
    let revoked = "revoked-token-planted-0123456789";
    let userinfo_token = "userinfo-token-planted-0123456789";
    let initial = "initial-access-token-planted-0123";
    out.planted.extend(
        [
            secret,
            password,
            refresh,
            code,
            verifier,
            introspected,
            revoked,
            userinfo_token,
            initial,
        ]
        .map(str::to_owned),
    );
    out.planted.push(issued_secret);
    out.planted.push(registration_token);

    let key = SigningKey::from_pem(P256, Algorithm::ES256).expect("key");
    let dpop = Dpop::new(DpopKey::generate().expect("DPoP key"));
    let clients = [
        (
            "basic",
            Client::new(
                "test-client",
                ClientAuthentication::SecretBasic(ClientSecret::new(secret)),
            ),
        ),
        (
            "basic verbatim",
            Client::new(
                "test-client",
                ClientAuthentication::SecretBasicVerbatim(ClientSecret::new(secret)),
            ),
        ),
        (
            "post",
            Client::new(
                "test-client",
                ClientAuthentication::SecretPost(ClientSecret::new(secret)),
            ),
        ),
        (
            "post json",
            Client::new(
                "test-client",
                ClientAuthentication::SecretPost(ClientSecret::new(secret)),
            )
            .with_body_encoding(BodyEncoding::Json),
        ),
        (
            "private_key_jwt + DPoP",
            Client::new(
                "test-client",
                ClientAssertionSigner::new(key).into_authentication(),
            )
            .with_dpop(dpop),
        ),
    ];
    let mut record = |what: String, result: Result<(), oauth_core::Error>| match result {
        Ok(()) => panic!("{what}: the echoing server's error was taken as success"),
        Err(e) => out.errors.push((what, format!("{e} | {e:?}"))),
    };
    let token_endpoint = url("/token");
    let grants = [
        ("client_credentials", TokenRequest::client_credentials()),
        (
            "password",
            TokenRequest::password("alice", Password::new(password)),
        ),
        (
            "refresh_token",
            TokenRequest::refresh_token(RefreshToken::new(refresh)),
        ),
        (
            "authorization_code",
            TokenRequest::authorization_code(
                AuthorizationCode::new(code),
                Some("https://app.example/cb".into()),
                Some(PkceVerifier::new(verifier)),
            ),
        ),
    ];
    for (name, client) in &clients {
        for (grant, request) in &grants {
            record(
                format!("token {grant} ({name})"),
                h.request_token(&token_endpoint, client, request).map(drop),
            );
        }
        record(
            format!("device ({name})"),
            h.device_flow(
                &url("/device_authorization"),
                &token_endpoint,
                client,
                &DeviceAuthorizationRequest::new(),
                Box::new(|_| {}),
                None,
            )
            .map(drop),
        );
        let pending = AuthorizationRequest::new(url("/authorize"), "test-client")
            .redirect_uri("https://app.example/cb")
            .scope(["openid"])
            .build(&oauth_ureq::SystemRandom)
            .expect("authorization request");
        record(
            format!("PAR ({name})"),
            h.push_authorization(&url("/par"), client, &pending)
                .map(drop),
        );
        record(
            format!("introspection ({name})"),
            h.introspect(
                &url("/introspect"),
                client,
                &IntrospectionRequest::new(SecurityToken::new(introspected)),
            )
            .map(drop),
        );
        record(
            format!("revocation ({name})"),
            h.revoke(
                &url("/revoke"),
                client,
                &RevocationRequest::new(SecurityToken::new(revoked)),
            )
            .map(drop),
        );
    }
    record(
        "registration create".into(),
        h.register_client(
            &registration,
            &RegistrationRequest::new(ClientMetadata::new().client_name("echo"))
                .initial_access_token(AccessToken::new(initial)),
        )
        .map(drop),
    );
    record(
        "registration read".into(),
        h.read_client_registration(&registered).map(drop),
    );
    record(
        "registration update".into(),
        h.update_client_registration(&registered, &ClientMetadata::new().client_name("echo 2"))
            .map(drop),
    );
    record(
        "registration delete".into(),
        h.delete_client_registration(&registered),
    );
    // UserInfo, with and without DPoP: the provider's metadata names the echoing endpoint.
    let metadata = serde_json::json!({
        "issuer": server.url(""),
        "authorization_endpoint": server.url("/authorize"),
        "token_endpoint": server.url("/token"),
        "jwks_uri": server.url("/jwks"),
        "userinfo_endpoint": server.url("/userinfo"),
        "response_types_supported": ["code"],
        "subject_types_supported": ["public"],
        "id_token_signing_alg_values_supported": ["ES256"],
    });
    let metadata = oauth_core::http::Response::builder()
        .status(200)
        .header("content-type", "application/json")
        .body(serde_json::to_vec(&metadata).expect("json"))
        .expect("response");
    let metadata = parse_server_metadata(&metadata, &server.url(""), SchemePolicy::HttpsOnly)
        .expect("metadata");
    for (name, client) in [&clients[0], &clients[4]] {
        let oidc = h.openid(
            oauth_reqwest::OpenIdCore::new(metadata.clone(), client.clone()).expect("core"),
        );
        record(
            format!("userinfo ({name})"),
            h.userinfo(&oidc, &AccessToken::new(userinfo_token), None)
                .map(drop),
        );
    }
}

/// The table's check: no planted value in any error, and the server did echo (so the check
/// is not vacuous).
pub fn every_request_type_is_scrubbed<H: Harness>() {
    let echoed = exercise::<H>();
    assert!(echoed.errors.len() > 60, "{}", echoed.errors.len());
    let mut redacted = 0;
    for (what, text) in &echoed.errors {
        redacted += usize::from(text.contains("<redacted>"));
        for secret in &echoed.planted {
            for form in forms(secret, "test-client") {
                assert!(!text.contains(&form), "{what}: {form:?} in {text}");
            }
        }
        // Signed client assertions and DPoP proofs are JWTs.
        assert!(!text.contains("eyJ"), "{what}: a JWT in {text}");
    }
    assert!(
        redacted * 10 >= echoed.errors.len() * 9,
        "the server echoed in only {redacted} of {} errors",
        echoed.errors.len()
    );
}
