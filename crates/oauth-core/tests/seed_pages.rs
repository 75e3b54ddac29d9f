//! Every request and sample response in the five provider pages (`shared/seeds/`), built and
//! parsed through the public API and compared field by field with the page.
//!
//! Placeholders in the pages (`{YOUR APPLICATION'S CLIENT_ID}`, `<client_id>`,
//! `<60_minutes_in_seconds>`) are replaced by concrete values; the page's field names, order
//! of meaning, methods, paths and content types are kept.
#![allow(clippy::unwrap_used, clippy::expect_used, clippy::panic)]

use std::collections::BTreeMap;
use std::time::{Duration, SystemTime};

use oauth_core::anypoint::{CONNECTED_APPS_URL, ConnectedApp, MavenFacadeCredentials};
use oauth_core::http::{Request, Response};
use oauth_core::{
    AccessToken, Assertion, AuthorizationCode, AuthorizationRequest, BodyEncoding, Client,
    ClientAuthentication, ClientSecret, Endpoint, Nonce, Password, RandomError, RandomSource,
    RefreshToken, RequestBody, SchemePolicy, TokenRequest, TokenType, TokenVerdict,
    authorize_request, classify_resource_response, parse_registration_response,
    parse_token_response,
};

const ANYPOINT_TOKEN: &str = "https://anypoint.mulesoft.com/accounts/api/v2/oauth2/token";

struct Expected<'a> {
    method: &'a str,
    uri: &'a str,
    content_type: &'a str,
    authorization: Option<&'a str>,
    fields: &'a [(&'a str, &'a str)],
}

/// Compares a built request with what a page shows: method, URI, content type, the
/// `Authorization` header (and that it is sensitive), and the body's fields as a set.
#[track_caller]
fn check(request: &Request<RequestBody>, expected: Expected<'_>) {
    assert_eq!(request.method().as_str(), expected.method);
    assert_eq!(request.uri().to_string(), expected.uri);
    assert_eq!(request.headers()["content-type"], expected.content_type);
    assert_eq!(request.headers()["accept"], "application/json");
    let auth = request.headers().get("authorization");
    assert_eq!(auth.map(|v| v.to_str().unwrap()), expected.authorization);
    if let Some(auth) = auth {
        assert!(auth.is_sensitive());
    }
    let body = request.body().expose_secret();
    let fields: BTreeMap<String, String> = if expected.content_type == "application/json" {
        let value: serde_json::Value = serde_json::from_slice(body).unwrap();
        value
            .as_object()
            .unwrap()
            .iter()
            .map(|(k, v)| (k.clone(), v.as_str().unwrap().to_owned()))
            .collect()
    } else {
        form_pairs(std::str::from_utf8(body).unwrap())
    };
    let want: BTreeMap<String, String> = expected
        .fields
        .iter()
        .map(|(k, v)| (k.to_string(), v.to_string()))
        .collect();
    assert_eq!(fields, want);
}

/// An independent form decoder (what a server would do), so the test does not reuse the code
/// under test.
fn form_pairs(body: &str) -> BTreeMap<String, String> {
    let decode = |s: &str| {
        let s = s.replace('+', " ");
        let mut out = Vec::new();
        let bytes = s.as_bytes();
        let mut i = 0;
        while i < bytes.len() {
            if bytes[i] == b'%' {
                out.push(u8::from_str_radix(&s[i + 1..i + 3], 16).unwrap());
                i += 3;
            } else {
                out.push(bytes[i]);
                i += 1;
            }
        }
        String::from_utf8(out).unwrap()
    };
    body.split('&')
        .map(|pair| {
            let (k, v) = pair.split_once('=').unwrap();
            (decode(k), decode(v))
        })
        .collect()
}

fn json_response(status: u16, body: &str) -> Response<Vec<u8>> {
    Response::builder()
        .status(status)
        .header("content-type", "application/json")
        .body(body.as_bytes().to_vec())
        .unwrap()
}

fn json<'a>(fields: &'a [(&'a str, &'a str)]) -> Expected<'a> {
    Expected {
        method: "POST",
        uri: ANYPOINT_TOKEN,
        content_type: "application/json",
        authorization: None,
        fields,
    }
}

fn received() -> SystemTime {
    SystemTime::UNIX_EPOCH + Duration::from_secs(1_573_626_361)
}

fn secret_post(id: &str, secret: &str) -> Client {
    Client::new(
        id,
        ClientAuthentication::SecretPost(ClientSecret::new(secret)),
    )
}

#[track_caller]
fn check_bearer_call(token: &str, uri: &str) {
    let mut call = Request::get(uri).body(()).unwrap();
    authorize_request(&mut call, &AccessToken::new(token)).unwrap();
    assert_eq!(
        call.headers()["authorization"],
        format!("Bearer {token}").as_str()
    );
    assert!(call.headers()["authorization"].is_sensitive());
    assert!(!format!("{call:?}").contains(token));
}

/// Pages 000 and 001 (identical requests): client_credentials with the secret in a form body,
/// the 86399-second token, and the Bearer call.
#[test]
fn page_000_001_client_credentials_form_post() {
    let endpoint = Endpoint::new("https://oauth.org.com/as/token.oauth2").unwrap();
    let request = TokenRequest::client_credentials()
        .build(&endpoint, &secret_post("my-client-id", "my-client-secret"))
        .unwrap();
    check(
        &request,
        Expected {
            method: "POST",
            uri: "https://oauth.org.com/as/token.oauth2",
            content_type: "application/x-www-form-urlencoded",
            authorization: None,
            fields: &[
                ("grant_type", "client_credentials"),
                ("client_id", "my-client-id"),
                ("client_secret", "my-client-secret"),
            ],
        },
    );

    let sample = r#"{
"access_token": "{ACCESS TOKEN}",
    "token_type": "Bearer",
    "expires_in": 86399
}"#;
    // The page's placeholder holds a space, which no `Authorization: Bearer` header can carry:
    // taken literally it is refused with a typed error; a real token is read.
    let literal = parse_token_response(&json_response(200, sample), received()).unwrap_err();
    assert!(matches!(
        literal,
        oauth_core::Error::UnexpectedResponse(ref u)
            if u.reason() == &oauth_core::UnexpectedReason::InvalidField("access_token")
    ));
    let sample = sample.replace("{ACCESS TOKEN}", "{ACCESS_TOKEN}");
    let token = parse_token_response(&json_response(200, &sample), received()).unwrap();
    assert_eq!(token.access_token().expose_secret(), "{ACCESS_TOKEN}");
    assert_eq!(token.token_type(), &TokenType::Bearer);
    assert_eq!(token.expires_in(), Some(Duration::from_secs(86399)));
    assert_eq!(
        token.expires_at(),
        Some(received() + Duration::from_secs(86399))
    );

    check_bearer_call(
        "YOUR_ACCESS_TOKEN",
        "https://api.domain.com/labels/domestic",
    );
}

/// Page 002 (Dataloy): a JSON body with client_id, client_secret, audience and grant_type; the
/// long JWT response; the Bearer call; the 401 "Token expired." body.
#[test]
fn page_002_dataloy_json_with_audience() {
    let endpoint = Endpoint::new("https://auth.dataloy.example/oauth/token").unwrap();
    let client = secret_post(
        "G99j845dM4MtckQlKt8E6o......",
        "-mMElVOMzvht2SyQPfVh-WIaPCbOxRdWN5YngBxtBKybQmli-....",
    )
    .with_body_encoding(BodyEncoding::Json);
    let request = TokenRequest::client_credentials()
        .audience("https://dataloy.internal")
        .build(&endpoint, &client)
        .unwrap();
    check(
        &request,
        Expected {
            method: "POST",
            uri: "https://auth.dataloy.example/oauth/token",
            content_type: "application/json",
            authorization: None,
            fields: &[
                ("client_id", "G99j845dM4MtckQlKt8E6o......"),
                (
                    "client_secret",
                    "-mMElVOMzvht2SyQPfVh-WIaPCbOxRdWN5YngBxtBKybQmli-....",
                ),
                ("audience", "https://dataloy.internal"),
                ("grant_type", "client_credentials"),
            ],
        },
    );

    let jwt = "eyJ0eXAiOiJKV1QiLCJhbGciOiJSUzI1....................fXClgZe2pFQBxPqARz9xfWlrFnc1El34ZPyRLoGlLIJLiE0NvOA1JLWycXCNo9N7AenAKEbj-gb2eW4TnpAiidDRmMV3m36UCuRAxWdVcvsRaJxXcquf79wAgEoEKriJklCxwKOnOyngbTZ2vDNim0nrw6-W0NOjRARkkY_w-188dY829z_urjsWuCC7TOMwfrQDLL2h72L2UrqlyL0hHMGQesau6h8KUsGg3EIoWPQ-Pf6o2CNCtGyr7DNuuLpCw9HqXiz5v-RIvKLBoaRMAAJJqBeXvpPvOcyicBlalcTWB5NMCe6Ldi9xqFmwjhO1CAtIk9QUa8wsOcXxg";
    let sample = format!(
        r#"{{
"access_token": "{jwt}",
"expires_in": 86400,
"token_type": "Bearer"
}}"#
    );
    let token = parse_token_response(&json_response(200, &sample), received()).unwrap();
    assert_eq!(token.access_token().expose_secret(), jwt);
    assert_eq!(token.expires_in(), Some(Duration::from_secs(86400)));

    check_bearer_call(jwt, "https://platform-dev.dataloy.com/ws/rest/Cargo");

    // The page's 401 body, verbatim (the page cuts it off before the closing brace).
    let expired = r#"{
    "statusCode": 401,
    "statusText": "Unauthorized",
    "message": "Token expired.",
    "date": "2019-11-13T06:26:01",
    "statusFamily": "CLIENT_ERROR",
    "method": "GET",
    "uri": "http://platform-dev.dataloy.com/ws/rest/Cargo?filter=subCargos.freight%28GTE%292500000""#;
    for body in [expired.to_owned(), format!("{expired}\n}}")] {
        assert!(matches!(
            classify_resource_response(&json_response(401, &body)),
            TokenVerdict::Rejected(_)
        ));
    }
}

/// Page 003 (Anypoint connected apps): every grant with a JSON body.
#[test]
fn page_003_anypoint_connected_apps() {
    let endpoint = Endpoint::new(ANYPOINT_TOKEN).unwrap();
    let client = secret_post("cid", "csecret").with_body_encoding(BodyEncoding::Json);

    // 1. Creating a connected app: a JSON POST authorized with the user's bearer token, the
    // page's body field by field (authorization code example).
    let connected_apps = Endpoint::new(CONNECTED_APPS_URL).unwrap();
    let create = ConnectedApp::authorization_code(
        "GitProxy",
        ["https://example.com/"],
        ["profile", "offline_access"],
    )
    .registration(AccessToken::new("UserAccessToken"))
    .build(&connected_apps)
    .unwrap();
    assert_eq!(create.method(), "POST");
    assert_eq!(
        create.uri(),
        "https://anypoint.mulesoft.com/accounts/api/connectedApplications"
    );
    assert_eq!(create.headers()["authorization"], "Bearer UserAccessToken");
    assert_eq!(create.headers()["content-type"], "application/json");
    let body: serde_json::Value = serde_json::from_slice(create.body().expose_secret()).unwrap();
    assert_eq!(
        body,
        serde_json::json!({
            "client_name": "GitProxy",
            "grant_types": ["refresh_token", "authorization_code"],
            "redirect_uris": ["https://example.com/"],
            "scopes": ["profile", "offline_access"],
            "public_keys": [],
            "audience": "internal",
        })
    );
    // The JWT bearer example: the grant type and the public key.
    let create = ConnectedApp::jwt_bearer(
        "jwt-app",
        "-----BEGIN PUBLIC KEY-----\nMFkw...\n-----END PUBLIC KEY-----",
        ["https://example.com/"],
        ["profile", "offline_access"],
    )
    .registration(AccessToken::new("UserAccessToken"))
    .build(&connected_apps)
    .unwrap();
    let body: serde_json::Value = serde_json::from_slice(create.body().expose_secret()).unwrap();
    assert_eq!(
        body,
        serde_json::json!({
            "client_name": "jwt-app",
            "grant_types": ["urn:ietf:params:oauth:grant-type:jwt-bearer"],
            "public_keys": ["-----BEGIN PUBLIC KEY-----\nMFkw...\n-----END PUBLIC KEY-----"],
            "redirect_uris": ["https://example.com/"],
            "scopes": ["profile", "offline_access"],
            "audience": "internal",
        })
    );
    // The answer's client id and secret, as a client ready to use.
    let app = parse_registration_response(
        &json_response(
            201,
            r#"{"client_id":"cid","client_secret":"csecret","client_name":"GitProxy"}"#,
        ),
        SchemePolicy::HttpsOnly,
    )
    .unwrap();
    assert_eq!(app.client_id(), "cid");
    assert_eq!(
        app.client_secret().map(|s| s.expose_secret()),
        Some("csecret")
    );
    assert_eq!(
        app.client().unwrap().id().map(|id| id.as_str()),
        Some("cid")
    );

    // 2. Authorizing the app: the page's query parameters, plus state and PKCE.
    let authorize =
        Endpoint::new("https://anypoint.mulesoft.com/accounts/api/v2/oauth2/authorize").unwrap();
    let pending = AuthorizationRequest::new(authorize, "cid")
        .scope(["profile", "offline_access"])
        .redirect_uri("https://example.com")
        .nonce(Nonce::new("123456"))
        .build(&FixedRandom)
        .unwrap();
    let (path, query) = pending.url().split_once('?').unwrap();
    assert_eq!(
        path,
        "https://anypoint.mulesoft.com/accounts/api/v2/oauth2/authorize"
    );
    let params = form_pairs(query);
    for (name, value) in [
        ("client_id", "cid"),
        ("scope", "profile offline_access"),
        ("response_type", "code"),
        ("redirect_uri", "https://example.com"),
        ("nonce", "123456"),
        ("code_challenge_method", "S256"),
    ] {
        assert_eq!(params[name], value, "{name}");
    }
    assert!(params.contains_key("state") && params.contains_key("code_challenge"));
    let redirect = format!(
        "https://example.com/?code=the-code&state={}",
        pending.state().expose_secret()
    );
    let code = pending.handle_callback(&redirect).unwrap();

    // 3. Retrieving the access token. The page sends no code_verifier because it uses no PKCE;
    // ours carries the verifier of the PKCE it sent.
    let request = pending
        .token_request(code)
        .build(&endpoint, &client)
        .unwrap();
    let verifier = pending.code_verifier().unwrap().expose_secret().to_owned();
    check(
        &request,
        json(&[
            ("client_id", "cid"),
            ("redirect_uri", "https://example.com"),
            ("client_secret", "csecret"),
            ("grant_type", "authorization_code"),
            ("code", "the-code"),
            ("code_verifier", &verifier),
        ]),
    );
    // Exactly the page's request, without PKCE.
    let request = TokenRequest::authorization_code(
        AuthorizationCode::new("the-code"),
        Some("https://example.com".into()),
        None,
    )
    .build(&endpoint, &client)
    .unwrap();
    check(
        &request,
        json(&[
            ("client_id", "cid"),
            ("redirect_uri", "https://example.com"),
            ("client_secret", "csecret"),
            ("grant_type", "authorization_code"),
            ("code", "the-code"),
        ]),
    );
    let sample = r#"{
"access_token" : "at-1",
"refresh_token" : "rt-1",
"expires_in" : 3600,
"token_type" : "bearer"
}"#;
    let token = parse_token_response(&json_response(200, sample), received()).unwrap();
    assert_eq!(token.token_type(), &TokenType::Bearer);
    assert_eq!(token.refresh_token().unwrap().expose_secret(), "rt-1");
    assert_eq!(
        token.expires_at(),
        Some(received() + Duration::from_secs(3600))
    );

    // 4. Accessing the API.
    check_bearer_call(
        "ConnAppAccessToken",
        "https://anypoint.mulesoft.com/accounts/api/profile",
    );

    // 5. Refresh.
    let request = TokenRequest::refresh_token(RefreshToken::new("rt-1"))
        .build(&endpoint, &client)
        .unwrap();
    check(
        &request,
        json(&[
            ("client_id", "cid"),
            ("client_secret", "csecret"),
            ("grant_type", "refresh_token"),
            ("refresh_token", "rt-1"),
        ]),
    );

    // Password grant.
    let request = TokenRequest::password("jsmith", Password::new("pa55"))
        .build(&endpoint, &client)
        .unwrap();
    check(
        &request,
        json(&[
            ("grant_type", "password"),
            ("client_id", "cid"),
            ("client_secret", "csecret"),
            ("username", "jsmith"),
            ("password", "pa55"),
        ]),
    );
    let sample = r#"{
"access_token" : "at-2",
"expires_in" : 3600,
"token_type" : "bearer"
}"#;
    let token = parse_token_response(&json_response(200, sample), received()).unwrap();
    assert!(token.refresh_token().is_none());

    // JWT bearer: only grant_type and assertion.
    let request = TokenRequest::jwt_bearer(Assertion::new("eyJ.eyJ.sig"))
        .build(
            &endpoint,
            &Client::anonymous().with_body_encoding(BodyEncoding::Json),
        )
        .unwrap();
    check(
        &request,
        json(&[
            ("grant_type", "urn:ietf:params:oauth:grant-type:jwt-bearer"),
            ("assertion", "eyJ.eyJ.sig"),
        ]),
    );

    // Client credentials.
    let request = TokenRequest::client_credentials()
        .build(&endpoint, &client)
        .unwrap();
    check(
        &request,
        json(&[
            ("client_id", "cid"),
            ("client_secret", "csecret"),
            ("grant_type", "client_credentials"),
        ]),
    );

    // "To receive an id_token in the token response, openid scope is required."
    let sample =
        r#"{"access_token":"at","id_token":"h.p.s","expires_in":3600,"token_type":"bearer"}"#;
    let token = parse_token_response(&json_response(200, sample), received()).unwrap();
    assert_eq!(token.id_token().unwrap().expose_secret(), "h.p.s");
}

/// Page 004 (Anypoint Exchange): client_credentials form-encoded, a response without
/// `expires_in`, a lowercase `bearer`, and the Maven facade's Basic shortcut.
#[test]
fn page_004_exchange() {
    let endpoint = Endpoint::new(ANYPOINT_TOKEN).unwrap();
    let request = TokenRequest::client_credentials()
        .build(&endpoint, &secret_post("CLIENT_ID", "CLIENT_SECRET"))
        .unwrap();
    check(
        &request,
        Expected {
            method: "POST",
            uri: ANYPOINT_TOKEN,
            content_type: "application/x-www-form-urlencoded",
            authorization: None,
            fields: &[
                ("client_id", "CLIENT_ID"),
                ("client_secret", "CLIENT_SECRET"),
                ("grant_type", "client_credentials"),
            ],
        },
    );

    let sample = r#"{
    "access_token": "YOUR_BEARER_TOKEN",
    "token_type": "bearer"
}"#;
    let token = parse_token_response(&json_response(200, sample), received()).unwrap();
    assert_eq!(token.token_type(), &TokenType::Bearer);
    assert_eq!(token.expires_in(), None);
    assert_eq!(token.expires_at(), None);

    // The page writes `bearer`; the scheme is case-insensitive (RFC 9110 §11.1) and we send
    // the canonical `Bearer`.
    check_bearer_call(
        "YOUR_BEARER_TOKEN",
        "https://anypoint.mulesoft.com/exchange/api/v2/assets",
    );

    let creds = MavenFacadeCredentials::new("clientID".into(), ClientSecret::new("clientSecret"));
    assert_eq!(creds.username(), "~~~Client~~~");
    assert_eq!(creds.password().expose_secret(), "clientID~?~clientSecret");
    // base64("~~~Client~~~:clientID~?~clientSecret"), verbatim, no §2.3.1 encoding.
    assert_eq!(
        creds.authorization_header().unwrap(),
        "Basic fn5+Q2xpZW50fn5+OmNsaWVudElEfj9+Y2xpZW50U2VjcmV0"
    );
    assert_eq!(
        creds.settings_xml_server("Repository").expose_secret(),
        "<server>\n  <id>Repository</id>\n  <username>~~~Client~~~</username>\n  <password>clientID~?~clientSecret</password>\n</server>\n"
    );
}

/// RFC 6749 §2.3.1: id and secret are form-urlencoded before base64, so `~ ? : + % &`, spaces
/// and non-ASCII survive a server that decodes them; the verbatim mode sends the bytes as they
/// are.
#[test]
fn basic_encoding_modes() {
    let endpoint = Endpoint::new("https://as.example/token").unwrap();
    let cases = [
        ("plain", "s3cr3t", "plain", "s3cr3t"),
        ("a~b", "x?y:z", "a%7Eb", "x%3Fy%3Az"),
        ("id+1", "p%q&r", "id%2B1", "p%25q%26r"),
        ("with space", "sp ace", "with+space", "sp+ace"),
        ("clé", "mot de passé", "cl%C3%A9", "mot+de+pass%C3%A9"),
    ];
    use base64::Engine as _;
    let b64 = |s: &str| base64::engine::general_purpose::STANDARD.encode(s);
    for (id, secret, enc_id, enc_secret) in cases {
        let client = Client::new(
            id,
            ClientAuthentication::SecretBasic(ClientSecret::new(secret)),
        );
        let request = TokenRequest::client_credentials()
            .build(&endpoint, &client)
            .unwrap();
        let expected = format!("Basic {}", b64(&format!("{enc_id}:{enc_secret}")));
        assert_eq!(
            request.headers()["authorization"],
            expected.as_str(),
            "{id}"
        );

        // A server decodes base64, splits at the first ':', and form-decodes each part.
        let header = request.headers()["authorization"].to_str().unwrap();
        let decoded = base64::engine::general_purpose::STANDARD
            .decode(header.strip_prefix("Basic ").unwrap())
            .unwrap();
        let decoded = String::from_utf8(decoded).unwrap();
        let (user, pass) = decoded.split_once(':').unwrap();
        let pairs = form_pairs(&format!("u={user}&p={pass}"));
        assert_eq!((pairs["u"].as_str(), pairs["p"].as_str()), (id, secret));

        if !id.contains(':') {
            let verbatim = Client::new(
                id,
                ClientAuthentication::SecretBasicVerbatim(ClientSecret::new(secret)),
            );
            let request = TokenRequest::client_credentials()
                .build(&endpoint, &verbatim)
                .unwrap();
            let expected = format!("Basic {}", b64(&format!("{id}:{secret}")));
            assert_eq!(
                request.headers()["authorization"],
                expected.as_str(),
                "{id}"
            );
        }
    }
    // The verbatim mode reproduces the Maven facade credentials exactly.
    let verbatim = Client::new(
        "~~~Client~~~",
        ClientAuthentication::SecretBasicVerbatim(ClientSecret::new("clientID~?~clientSecret")),
    );
    let request = TokenRequest::client_credentials()
        .build(&endpoint, &verbatim)
        .unwrap();
    assert_eq!(
        request.headers()["authorization"],
        MavenFacadeCredentials::new("clientID".into(), ClientSecret::new("clientSecret"))
            .authorization_header()
            .unwrap()
    );
}

#[test]
fn http_endpoint_refused() {
    let err = Endpoint::new("http://oauth.org.com/as/token.oauth2").unwrap_err();
    assert!(err.to_string().contains("only https is allowed"), "{err}");
}

struct FixedRandom;

impl RandomSource for FixedRandom {
    fn fill(&self, dest: &mut [u8]) -> Result<(), RandomError> {
        for (i, b) in dest.iter_mut().enumerate() {
            *b = i as u8;
        }
        Ok(())
    }
}

/// The provider presets build each page's request exactly (no quirk written by hand).
#[test]
fn presets_build_each_pages_request() {
    use oauth_core::ClientSecret;
    use oauth_core::providers::{anypoint, dataloy};

    // Page 002 (Dataloy): JSON, credentials and audience in the body.
    let p = dataloy::client_credentials(
        "https://auth.dataloy.example/oauth/token",
        "cid",
        ClientSecret::new("csecret"),
        "https://dataloy.internal",
    )
    .unwrap();
    check(
        &p.request.build(&p.endpoint, &p.client).unwrap(),
        Expected {
            method: "POST",
            uri: "https://auth.dataloy.example/oauth/token",
            content_type: "application/json",
            authorization: None,
            fields: &[
                ("client_id", "cid"),
                ("client_secret", "csecret"),
                ("audience", "https://dataloy.internal"),
                ("grant_type", "client_credentials"),
            ],
        },
    );
    // Page 003 (Anypoint connected apps): JSON client_credentials at its token URL.
    let p = anypoint::client_credentials("cid", ClientSecret::new("csecret")).unwrap();
    check(
        &p.request.build(&p.endpoint, &p.client).unwrap(),
        Expected {
            method: "POST",
            uri: ANYPOINT_TOKEN,
            content_type: "application/json",
            authorization: None,
            fields: &[
                ("client_id", "cid"),
                ("client_secret", "csecret"),
                ("grant_type", "client_credentials"),
            ],
        },
    );
    // Its JWT bearer example: the subject as on the page, a body of grant_type + assertion.
    let sub = anypoint::Subject::new("0b132ac3-d8f6-44b2-953c-2333df741f05", "jsmith")
        .person("john", "smith", "jsmith@gmail.com")
        .groups(["community"])
        .to_claim()
        .unwrap();
    assert_eq!(
        sub,
        "v2|0b132ac3-d8f6-44b2-953c-2333df741f05|jsmith|john|smith|jsmith@gmail.com|[community]"
    );
    let request = TokenRequest::jwt_bearer(Assertion::new("signed.assertion.here"))
        .build(
            &Endpoint::new(anypoint::TOKEN_URL).unwrap(),
            &anypoint::jwt_bearer_client(),
        )
        .unwrap();
    check(
        &request,
        Expected {
            method: "POST",
            uri: ANYPOINT_TOKEN,
            content_type: "application/json",
            authorization: None,
            fields: &[
                ("grant_type", "urn:ietf:params:oauth:grant-type:jwt-bearer"),
                ("assertion", "signed.assertion.here"),
            ],
        },
    );
    // Page 004 (Exchange): a form with the credentials in the body.
    let p = anypoint::exchange_client_credentials("CLIENT_ID", ClientSecret::new("CLIENT_SECRET"))
        .unwrap();
    check(
        &p.request.build(&p.endpoint, &p.client).unwrap(),
        Expected {
            method: "POST",
            uri: ANYPOINT_TOKEN,
            content_type: "application/x-www-form-urlencoded",
            authorization: None,
            fields: &[
                ("client_id", "CLIENT_ID"),
                ("client_secret", "CLIENT_SECRET"),
                ("grant_type", "client_credentials"),
            ],
        },
    );
}
