//! RAR's `authorization_details` (RFC 9396): whatever the bytes, parsing ends in a value or a
//! typed error, never a panic; a value that parses writes JSON that parses back to itself, and
//! the token response and introspection readers agree with the parser.
#![no_main]

use libfuzzer_sys::fuzz_target;
use oauth_core::authorization_details::AuthorizationDetails;

fuzz_target!(|data: &[u8]| {
    let Ok(text) = std::str::from_utf8(data) else {
        return;
    };
    let Ok(details) = AuthorizationDetails::parse(text) else {
        return;
    };
    let again = AuthorizationDetails::parse(&details.to_json()).expect("what we write parses");
    assert_eq!(again, details);
    for detail in details.iter() {
        assert!(!detail.detail_type().is_empty());
        assert!(details.contains_type(detail.detail_type()));
    }
    // The same value inside a token response is read back equal.
    let body = format!(r#"{{"access_token":"t","token_type":"Bearer","authorization_details":{text}}}"#);
    let response = oauth_core::http::Response::new(body.into_bytes());
    if let Ok(token) = oauth_core::parse_token_response(&response, std::time::SystemTime::UNIX_EPOCH) {
        assert_eq!(token.authorization_details(), Some(&details));
    }
});
