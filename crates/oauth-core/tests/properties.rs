//! Property tests over whole requests: what a client sends decodes, on the server's side, to
//! exactly what the caller gave, for any client id, secret, scope and parameter (including
//! `~ ? : % + &`, spaces, control characters and non-ASCII); and no secret-bearing value ever
//! shows its secret when formatted.
#![allow(clippy::unwrap_used, clippy::expect_used, clippy::panic)]

use std::collections::HashMap;

use base64::Engine as _;
use oauth_core::http::Response;
use oauth_core::{
    AccessToken, BodyEncoding, Client, ClientAuthentication, ClientSecret, Endpoint,
    IntrospectionRequest, Password, RefreshToken, SecurityToken, TokenRequest,
};
use proptest::prelude::*;

/// What a server does with a form body: split on `&` and `=`, `+` is a space, `%XX` a byte.
/// Written here independently of the crate's encoder.
fn server_form_decode(body: &str) -> Vec<(String, String)> {
    fn decode(s: &str) -> String {
        let bytes = s.as_bytes();
        let mut out = Vec::with_capacity(bytes.len());
        let mut i = 0;
        while i < bytes.len() {
            match bytes[i] {
                b'+' => out.push(b' '),
                b'%' if i + 2 < bytes.len() => {
                    let hex = std::str::from_utf8(&bytes[i + 1..i + 3]).unwrap();
                    out.push(u8::from_str_radix(hex, 16).expect("valid escape"));
                    i += 2;
                }
                b => out.push(b),
            }
            i += 1;
        }
        String::from_utf8(out).expect("UTF-8 after decoding")
    }
    if body.is_empty() {
        return Vec::new();
    }
    body.split('&')
        .map(|pair| {
            let (n, v) = pair.split_once('=').unwrap_or((pair, ""));
            (decode(n), decode(v))
        })
        .collect()
}

/// RFC 6749 §2.3.1 on the server's side: base64, split at the first `:`, form-decode each half.
fn server_basic_decode(header: &str) -> (String, String) {
    let b64 = header.strip_prefix("Basic ").expect("Basic scheme");
    let raw = base64::engine::general_purpose::STANDARD
        .decode(b64)
        .expect("base64");
    let text = String::from_utf8(raw).expect("UTF-8");
    let (id, secret) = text.split_once(':').expect("a colon");
    let one = |s: &str| server_form_decode(&format!("x={s}")).remove(0).1;
    (one(id), one(secret))
}

/// Any string, biased towards the characters that break naive encoders.
fn text() -> impl Strategy<Value = String> {
    prop_oneof![
        "[~?:%+& =/#\"\\\\a-z]{1,24}",
        "[\\x00-\\x1f\\x7f]{1,8}[a-z]{0,4}",
        "\\PC{1,16}",
        any::<String>().prop_filter("non-empty", |s| !s.is_empty()),
    ]
}

fn scope_token() -> impl Strategy<Value = String> {
    "[!#-\\[\\]-~]{1,12}" // RFC 6749 §3.3 scope-token characters
}

fn endpoint() -> Endpoint {
    Endpoint::new("https://as.example/token").unwrap()
}

proptest! {
    #![proptest_config(ProptestConfig::with_cases(512))]

    #[test]
    fn form_post_round_trips(
        id in text(), secret in text(), scopes in proptest::collection::vec(scope_token(), 0..4),
        audience in text(), name in "[a-z_]{1,10}", value in text(),
    ) {
        prop_assume!(!["grant_type", "scope", "audience", "client_id", "client_secret"].contains(&name.as_str()));
        let client = Client::new(id.clone(), ClientAuthentication::SecretPost(ClientSecret::new(secret.clone())));
        let request = TokenRequest::client_credentials()
            .scope(scopes.clone())
            .audience(audience.clone())
            .param(name.clone(), value.clone())
            .build(&endpoint(), &client)
            .unwrap();
        let body = std::str::from_utf8(request.body().expose_secret()).unwrap();
        // Only unreserved characters, '+', '%', '&' and '=' on the wire.
        prop_assert!(body.bytes().all(|b| b.is_ascii_alphanumeric() || b"-._*+%&=".contains(&b)), "{body}");
        let fields: HashMap<String, String> = server_form_decode(body).into_iter().collect();
        prop_assert_eq!(&fields["grant_type"], "client_credentials");
        prop_assert_eq!(&fields["client_id"], &id);
        prop_assert_eq!(&fields["client_secret"], &secret);
        prop_assert_eq!(&fields["audience"], &audience);
        prop_assert_eq!(&fields[&name], &value);
        if scopes.is_empty() {
            prop_assert!(!fields.contains_key("scope"));
        } else {
            prop_assert_eq!(&fields["scope"], &scopes.join(" "));
        }
    }

    #[test]
    fn json_body_round_trips(id in text(), secret in text(), username in text(), password in text(), value in text()) {
        let client = Client::new(id.clone(), ClientAuthentication::SecretPost(ClientSecret::new(secret.clone())))
            .with_body_encoding(BodyEncoding::Json);
        let request = TokenRequest::password(username.clone(), Password::new(password.clone()))
            .param("extra", value.clone())
            .build(&endpoint(), &client)
            .unwrap();
        let json: serde_json::Value = serde_json::from_slice(request.body().expose_secret()).unwrap();
        prop_assert_eq!(&json["grant_type"], "password");
        prop_assert_eq!(json["client_id"].as_str(), Some(id.as_str()));
        prop_assert_eq!(json["client_secret"].as_str(), Some(secret.as_str()));
        prop_assert_eq!(json["username"].as_str(), Some(username.as_str()));
        prop_assert_eq!(json["password"].as_str(), Some(password.as_str()));
        prop_assert_eq!(json["extra"].as_str(), Some(value.as_str()));
    }

    #[test]
    fn basic_2_3_1_round_trips(id in text(), secret in text(), token in text()) {
        let client = Client::new(id.clone(), ClientAuthentication::SecretBasic(ClientSecret::new(secret.clone())));
        for request in [
            TokenRequest::refresh_token(RefreshToken::new(token.clone())).build(&endpoint(), &client).unwrap(),
            IntrospectionRequest::new(SecurityToken::new(token.clone())).build(&endpoint(), &client).unwrap(),
        ] {
            let header = request.headers()["authorization"].to_str().unwrap().to_owned();
            prop_assert!(request.headers()["authorization"].is_sensitive());
            prop_assert_eq!(server_basic_decode(&header), (id.clone(), secret.clone()));
            let fields = server_form_decode(std::str::from_utf8(request.body().expose_secret()).unwrap());
            prop_assert!(fields.iter().any(|(n, v)| (n == "refresh_token" || n == "token") && v == &token));
            prop_assert!(!fields.iter().any(|(n, _)| n == "client_secret"));
        }
    }

    /// Formatting never shows a secret: the secret types, the requests that carry them, and
    /// the errors of requests that fail.
    #[test]
    fn formatting_never_reveals_a_secret(secret in "[A-Za-z0-9~?:%+& _\\-]{12,40}") {
        let hidden = |text: String| {
            assert!(!text.contains(&secret), "{text}");
        };
        hidden(format!("{:?}", ClientSecret::new(secret.clone())));
        hidden(format!("{:?}", AccessToken::new(secret.clone())));
        hidden(format!("{:?}", RefreshToken::new(secret.clone())));
        hidden(format!("{:?}", Password::new(secret.clone())));
        hidden(format!("{:?}", SecurityToken::new(secret.clone())));
        let client = Client::new("id", ClientAuthentication::SecretBasic(ClientSecret::new(secret.clone())));
        hidden(format!("{client:?}"));
        let post = Client::new("id", ClientAuthentication::SecretPost(ClientSecret::new(secret.clone())));
        for c in [&client, &post] {
            let grant = TokenRequest::password("alice", Password::new(secret.clone()));
            hidden(format!("{grant:?}"));
            let built = grant.build(&endpoint(), c).unwrap();
            hidden(format!("{built:?}"));
        }
        // A token that does not fit a header fails without showing it.
        let e = oauth_core::bearer_header(&AccessToken::new(format!("{secret}\n"))).unwrap_err();
        hidden(format!("{e:?}"));
        hidden(e.to_string());
        // A token response and an error response that echo it.
        // (An access token cannot hold a space: it must fit `Authorization: Bearer`.)
        let token = secret.replace(' ', "-");
        let body = format!(r#"{{"access_token":"{token}","refresh_token":"{secret}","id_token":"{secret}","x":"{secret}"}}"#);
        let r = Response::builder().status(200).body(body).unwrap();
        let parsed = oauth_core::parse_token_response(&r, std::time::SystemTime::UNIX_EPOCH).unwrap();
        hidden(format!("{parsed:?}"));
        assert!(!format!("{parsed:?}").contains(&token));
        let r = Response::builder().status(200).body(format!("not json {secret}")).unwrap();
        let e = oauth_core::parse_token_response(&r, std::time::SystemTime::UNIX_EPOCH).unwrap_err();
        hidden(format!("{e:?}"));
        hidden(e.to_string());
    }
}
