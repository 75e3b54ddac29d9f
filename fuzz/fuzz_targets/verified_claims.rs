//! What follows a verified signature: RFC 9068 access-token claims, the unverified issuer
//! hint that routes a token, and UserInfo answers (JSON or `application/jwt`).
#![no_main]

use std::time::{Duration, SystemTime};

use libfuzzer_sys::fuzz_target;
use oauth_core::http::Response;
use oauth_core::{
    JwtAccessTokenChecks, UserInfoResponse, jwt_issuer_hint, parse_userinfo_response,
    validate_jwt_access_token, validate_userinfo,
};
use serde_json::{Map, Value};

fuzz_target!(|data: &[u8]| {
    let text = String::from_utf8_lossy(data);
    let _ = jwt_issuer_hint(&text);

    // The input split into a header and a claim set.
    let (a, b) = data.split_at(data.len() / 2);
    let object = |bytes: &[u8]| match serde_json::from_slice::<Value>(bytes) {
        Ok(Value::Object(map)) => map,
        _ => Map::new(),
    };
    let (header, claims) = (object(a), object(b));
    let checks = JwtAccessTokenChecks::new("https://as.example", "https://api.example");
    let now = SystemTime::UNIX_EPOCH + Duration::from_secs(1_700_000_000);
    if let Ok(result) = validate_jwt_access_token(&header, claims.clone(), &checks, now) {
        // Whatever was accepted is active, from the issuer, for the API, with a client.
        assert!(result.active());
        assert_eq!(result.issuer(), Some("https://as.example"));
        assert!(result.audience().iter().any(|a| a == "https://api.example"));
        assert!(result.client_id().is_some());
        assert!(result.expires_at().is_some_and(|exp| exp > now));
    }
    if let Ok(info) = validate_userinfo(claims, Some("alice"), Some(("https://as.example", "app"))) {
        assert_eq!(info.subject(), "alice");
    }

    for content_type in ["application/json", "application/jwt"] {
        let response = Response::builder()
            .status(200)
            .header("content-type", content_type)
            .body(data.to_vec())
            .unwrap_or_default();
        if let Ok(UserInfoResponse::Signed(jwt)) = parse_userinfo_response(&response) {
            assert!(!jwt.is_empty());
        }
    }
});
