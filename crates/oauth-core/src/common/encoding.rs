//! Byte-level encodings: `application/x-www-form-urlencoded`, percent-decoding and base64.

use base64::Engine as _;
use base64::engine::general_purpose::URL_SAFE_NO_PAD;

/// Appends `value` form-urlencoded (the WHATWG `application/x-www-form-urlencoded` serializer:
/// `*-._` and alphanumerics kept, space as `+`, every other byte as `%XX`).
pub(crate) fn form_encode_into(out: &mut String, value: &str) {
    encode_into(out, value, "+");
}

/// Appends `value` percent-encoded with `space` for a space; every byte but alphanumerics and
/// `*-._` as `%XX`.
fn encode_into(out: &mut String, value: &str, space: &str) {
    const HEX: &[u8; 16] = b"0123456789ABCDEF";
    const KEEP: [bool; 256] = {
        let mut table = [false; 256];
        let mut b = 0;
        while b < 256 {
            let c = b as u8;
            table[b] = c.is_ascii_alphanumeric() || matches!(c, b'*' | b'-' | b'.' | b'_');
            b += 1;
        }
        table
    };
    let bytes = value.as_bytes();
    out.reserve(bytes.len());
    let mut start = 0;
    for (i, &b) in bytes.iter().enumerate() {
        if KEEP[usize::from(b)] {
            continue;
        }
        // A run of kept bytes is copied at once. It is ASCII, and it starts and ends on char
        // boundaries (the bytes around it are ASCII or belong to chars encoded whole).
        if start < i {
            out.push_str(&value[start..i]);
        }
        if b == b' ' {
            out.push_str(space);
        } else {
            out.push('%');
            out.push(char::from(HEX[usize::from(b >> 4)]));
            out.push(char::from(HEX[usize::from(b & 0xF)]));
        }
        start = i + 1;
    }
    if start < bytes.len() {
        out.push_str(&value[start..]);
    }
}

/// `value` form-urlencoded.
#[cfg(test)]
pub(crate) fn form_encode(value: &str) -> String {
    let mut out = String::with_capacity(value.len());
    form_encode_into(&mut out, value);
    out
}

#[cfg_attr(not(feature = "authorization-code"), allow(dead_code))]
/// Appends `value` percent-encoded for a URI query component: like [`form_encode_into`] but with
/// space as `%20`, which every server reads the same way.
pub(crate) fn query_encode_into(out: &mut String, value: &str) {
    encode_into(out, value, "%20");
}

/// Serializes `pairs` as an `application/x-www-form-urlencoded` string.
#[cfg(test)]
pub(crate) fn form_serialize<'a>(pairs: impl IntoIterator<Item = (&'a str, &'a str)>) -> String {
    let mut out = String::new();
    for (name, value) in pairs {
        if !out.is_empty() {
            out.push('&');
        }
        form_encode_into(&mut out, name);
        out.push('=');
        form_encode_into(&mut out, value);
    }
    out
}

/// Decodes one form-urlencoded component: `+` becomes a space and `%XX` a byte. Malformed
/// escapes are kept literally, as browsers do; invalid UTF-8 is replaced with U+FFFD.
pub(crate) fn form_decode(input: &str) -> String {
    let bytes = input.as_bytes();
    let mut out = Vec::with_capacity(bytes.len());
    let mut i = 0;
    while let Some(&b) = bytes.get(i) {
        match b {
            b'+' => out.push(b' '),
            b'%' => {
                let hi = bytes.get(i + 1).and_then(|c| hex_value(*c));
                let lo = bytes.get(i + 2).and_then(|c| hex_value(*c));
                if let (Some(hi), Some(lo)) = (hi, lo) {
                    out.push(hi << 4 | lo);
                    i += 3;
                    continue;
                }
                out.push(b'%');
            }
            _ => out.push(b),
        }
        i += 1;
    }
    match String::from_utf8(out) {
        Ok(s) => s,
        Err(e) => String::from_utf8_lossy(e.as_bytes()).into_owned(),
    }
}

fn hex_value(c: u8) -> Option<u8> {
    match c {
        b'0'..=b'9' => Some(c - b'0'),
        b'a'..=b'f' => Some(c - b'a' + 10),
        b'A'..=b'F' => Some(c - b'A' + 10),
        _ => None,
    }
}

/// Parses an `application/x-www-form-urlencoded` string (or a URI query) into decoded pairs, in
/// order. Empty segments are skipped; a segment without `=` has an empty value.
pub(crate) fn form_parse(input: &str) -> Vec<(String, String)> {
    input
        .split('&')
        .filter(|segment| !segment.is_empty())
        .map(|segment| match segment.split_once('=') {
            Some((name, value)) => (form_decode(name), form_decode(value)),
            None => (form_decode(segment), String::new()),
        })
        .collect()
}

/// Standard base64 with padding (RFC 4648 §4), as HTTP Basic uses.
#[cfg(test)]
pub(crate) fn b64(input: &[u8]) -> String {
    base64::engine::general_purpose::STANDARD.encode(input)
}

/// base64url without padding (RFC 4648 §5), as PKCE and JWS use.
pub(crate) fn b64url(input: &[u8]) -> String {
    URL_SAFE_NO_PAD.encode(input)
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn form_encoding_known_answers() {
        let cases = [
            ("abc", "abc"),
            ("a b", "a+b"),
            ("~?:+%&=", "%7E%3F%3A%2B%25%26%3D"),
            ("*-._", "*-._"),
            ("é", "%C3%A9"),
            ("\n", "%0A"),
        ];
        for (raw, encoded) in cases {
            assert_eq!(form_encode(raw), encoded, "{raw:?}");
            assert_eq!(form_decode(encoded), raw, "{encoded:?}");
        }
    }

    #[test]
    fn query_encoding_uses_percent_20() {
        let mut out = String::from("scope=");
        query_encode_into(&mut out, "profile offline_access");
        assert_eq!(out, "scope=profile%20offline_access");
    }

    #[test]
    fn malformed_escapes_are_kept() {
        assert_eq!(form_decode("%"), "%");
        assert_eq!(form_decode("%G1"), "%G1");
        assert_eq!(form_decode("%4"), "%4");
        assert_eq!(form_decode("%FF"), "\u{FFFD}");
    }

    #[test]
    fn parse_pairs() {
        let pairs = form_parse("a=1&&b=x+y&c&d=%26");
        assert_eq!(
            pairs,
            vec![
                ("a".into(), "1".into()),
                ("b".into(), "x y".into()),
                ("c".into(), String::new()),
                ("d".into(), "&".into()),
            ]
        );
    }

    proptest::proptest! {
        #[test]
        fn form_round_trip(s in proptest::prelude::any::<String>()) {
            proptest::prop_assert_eq!(form_decode(&form_encode(&s)), s);
        }

        #[test]
        fn form_serialize_round_trip(pairs in proptest::collection::vec((proptest::prelude::any::<String>(), proptest::prelude::any::<String>()), 0..5)) {
            let ser = form_serialize(pairs.iter().map(|(a, b)| (a.as_str(), b.as_str())));
            let parsed = form_parse(&ser);
            proptest::prop_assert_eq!(parsed, pairs);
        }
    }
}
