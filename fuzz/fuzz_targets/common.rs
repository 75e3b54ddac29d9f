// Shared by the targets: turn fuzz bytes into an HTTP response; the JSON duplicate oracle.
#![allow(dead_code)]

use oauth_core::http::Response;

const CONTENT_TYPES: &[&str] = &[
    "application/json",
    "application/json; charset=utf-8",
    "application/x-www-form-urlencoded",
    "text/html",
    "text/plain",
    "",
];

/// The first byte picks a content type, the next two a status in `statuses`; the rest is the
/// body.
pub fn response(data: &[u8], statuses: std::ops::Range<u16>) -> Option<Response<&[u8]>> {
    let (&ct, rest) = data.split_first()?;
    let (status, body) = match rest {
        [a, b, body @ ..] => (u16::from_be_bytes([*a, *b]), body),
        _ => (0, rest),
    };
    let span = statuses.end - statuses.start;
    let status = statuses.start + status % span;
    let mut builder = Response::builder().status(status);
    let ct = CONTENT_TYPES[usize::from(ct) % CONTENT_TYPES.len()];
    if !ct.is_empty() {
        builder = builder.header("content-type", ct);
    }
    builder.body(body).ok()
}

/// Whether `bytes` is JSON in which some object names a member twice (at any depth): an
/// oracle written apart from `oauth_core::json` (names collected per object, then sorted and
/// compared), for the targets' "a duplicate is always refused" checks.
pub fn has_duplicate_member(bytes: &[u8]) -> bool {
    use serde::de::{Deserialize, Deserializer, MapAccess, SeqAccess, Visitor};
    struct Scan(bool);
    impl<'de> Deserialize<'de> for Scan {
        fn deserialize<D: Deserializer<'de>>(d: D) -> Result<Self, D::Error> {
            d.deserialize_any(ScanVisitor)
        }
    }
    struct ScanVisitor;
    impl<'de> Visitor<'de> for ScanVisitor {
        type Value = Scan;
        fn expecting(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
            f.write_str("JSON")
        }
        fn visit_bool<E>(self, _: bool) -> Result<Scan, E> {
            Ok(Scan(false))
        }
        fn visit_i64<E>(self, _: i64) -> Result<Scan, E> {
            Ok(Scan(false))
        }
        fn visit_u64<E>(self, _: u64) -> Result<Scan, E> {
            Ok(Scan(false))
        }
        fn visit_f64<E>(self, _: f64) -> Result<Scan, E> {
            Ok(Scan(false))
        }
        fn visit_str<E>(self, _: &str) -> Result<Scan, E> {
            Ok(Scan(false))
        }
        fn visit_unit<E>(self) -> Result<Scan, E> {
            Ok(Scan(false))
        }
        fn visit_seq<A: SeqAccess<'de>>(self, mut seq: A) -> Result<Scan, A::Error> {
            let mut dup = false;
            while let Some(Scan(d)) = seq.next_element()? {
                dup |= d;
            }
            Ok(Scan(dup))
        }
        fn visit_map<A: MapAccess<'de>>(self, mut map: A) -> Result<Scan, A::Error> {
            let mut names: Vec<String> = Vec::new();
            let mut dup = false;
            while let Some(name) = map.next_key::<String>()? {
                names.push(name);
                let Scan(d) = map.next_value()?;
                dup |= d;
            }
            names.sort();
            dup |= names.windows(2).any(|w| w[0] == w[1]);
            Ok(Scan(dup))
        }
    }
    serde_json::from_slice::<Scan>(bytes).is_ok_and(|s| s.0)
}

/// The decoded header and payload of a compact JWS, when they are base64url.
pub fn jws_parts(token: &str) -> Vec<Vec<u8>> {
    use base64::Engine as _;
    token
        .split('.')
        .take(2)
        .filter_map(|p| base64::engine::general_purpose::URL_SAFE_NO_PAD.decode(p).ok())
        .collect()
}
