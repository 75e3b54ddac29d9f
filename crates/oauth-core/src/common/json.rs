//! JSON read strictly where a parser differential is an authentication bypass.
//!
//! RFC 8259 §4 leaves duplicate member names to the implementation: serde_json keeps the last,
//! other parsers the first, some refuse. An introspection answer `{"active": false, …,
//! "active": true}`, a JWT claim set with two `sub`s or a DPoP proof with two `htu`s means one
//! thing to the authorization server that wrote (or signed) it and another to a gateway that
//! reads it differently. So everything this workspace reads to decide about a token — token
//! responses, introspection answers and every other OAuth answer, JWT headers and claim sets,
//! JWK sets, DPoP proofs — goes through [`from_slice`], which refuses a duplicate member at
//! any depth.

use std::fmt;

use serde::de::{self, DeserializeSeed, Deserializer, MapAccess, SeqAccess, Visitor};
use serde_json::{Map, Value};

/// Parses `bytes` as one JSON value, refusing any object that names a member twice (at any
/// depth) as well as anything serde_json refuses.
///
/// ```
/// assert!(oauth_core::json::from_slice(br#"{"active": true}"#).is_ok());
/// assert!(oauth_core::json::from_slice(br#"{"active": false, "active": true}"#).is_err());
/// assert!(oauth_core::json::from_slice(br#"{"cnf": {"jkt": "a", "jkt": "b"}}"#).is_err());
/// ```
pub fn from_slice(bytes: &[u8]) -> Result<Value, serde_json::Error> {
    let mut deserializer = serde_json::Deserializer::from_slice(bytes);
    let value = Strict.deserialize(&mut deserializer)?;
    deserializer.end()?;
    Ok(value)
}

/// [`from_slice`], for a value that must be an object.
pub fn object_from_slice(bytes: &[u8]) -> Option<Map<String, Value>> {
    match from_slice(bytes) {
        Ok(Value::Object(map)) => Some(map),
        _ => None,
    }
}

/// A JSON value, read with duplicate members refused (see [`from_slice`]). Usable as a
/// `serde::Deserialize` value inside a hand-written visitor.
pub(crate) struct StrictValue(pub(crate) Value);

impl<'de> serde::Deserialize<'de> for StrictValue {
    fn deserialize<D: Deserializer<'de>>(d: D) -> Result<Self, D::Error> {
        Strict.deserialize(d).map(StrictValue)
    }
}

#[derive(Clone, Copy)]
struct Strict;

impl<'de> DeserializeSeed<'de> for Strict {
    type Value = Value;

    fn deserialize<D: Deserializer<'de>>(self, d: D) -> Result<Value, D::Error> {
        d.deserialize_any(self)
    }
}

impl<'de> Visitor<'de> for Strict {
    type Value = Value;

    fn expecting(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        f.write_str("a JSON value without duplicate members")
    }

    fn visit_bool<E: de::Error>(self, v: bool) -> Result<Value, E> {
        Ok(Value::Bool(v))
    }

    fn visit_i64<E: de::Error>(self, v: i64) -> Result<Value, E> {
        Ok(Value::from(v))
    }

    fn visit_u64<E: de::Error>(self, v: u64) -> Result<Value, E> {
        Ok(Value::from(v))
    }

    fn visit_f64<E: de::Error>(self, v: f64) -> Result<Value, E> {
        Ok(serde_json::Number::from_f64(v).map_or(Value::Null, Value::Number))
    }

    fn visit_str<E: de::Error>(self, v: &str) -> Result<Value, E> {
        Ok(Value::String(v.to_owned()))
    }

    fn visit_string<E: de::Error>(self, v: String) -> Result<Value, E> {
        Ok(Value::String(v))
    }

    fn visit_unit<E: de::Error>(self) -> Result<Value, E> {
        Ok(Value::Null)
    }

    fn visit_none<E: de::Error>(self) -> Result<Value, E> {
        Ok(Value::Null)
    }

    fn visit_some<D: Deserializer<'de>>(self, d: D) -> Result<Value, D::Error> {
        self.deserialize(d)
    }

    fn visit_seq<A: SeqAccess<'de>>(self, mut seq: A) -> Result<Value, A::Error> {
        let mut items = Vec::with_capacity(seq.size_hint().unwrap_or(0).min(64));
        while let Some(item) = seq.next_element_seed(self)? {
            items.push(item);
        }
        Ok(Value::Array(items))
    }

    fn visit_map<A: MapAccess<'de>>(self, mut access: A) -> Result<Value, A::Error> {
        let mut map = Map::new();
        while let Some(name) = access.next_key::<String>()? {
            if map.contains_key(&name) {
                return Err(de::Error::custom("a member is named twice"));
            }
            let value = access.next_value_seed(self)?;
            map.insert(name, value);
        }
        Ok(Value::Object(map))
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn duplicates_are_refused_at_any_depth_and_the_rest_reads_as_serde_json() {
        for refused in [
            r#"{"a":1,"a":1}"#,
            r#"{"active":false,"x":1,"active":true}"#,
            r#"{"cnf":{"jkt":"a","jkt":"b"}}"#,
            r#"[{"k":1,"k":2}]"#,
            r#"{"a":[{"b":{"c":1,"c":1}}]}"#,
            r#"{"\u0061":1,"a":2}"#,
            r#"{"a":1} x"#,
            r#"{"a":1"#,
        ] {
            assert!(from_slice(refused.as_bytes()).is_err(), "{refused}");
        }
        for accepted in [
            r#"{"a":1,"b":{"a":1},"c":[{"a":1},{"a":2}]}"#,
            r#"{"n":-1,"u":18446744073709551615,"f":1.5,"e":1e3,"s":"\u00e9","z":null,"t":true}"#,
            "[]",
            "\"text\"",
            " {} ",
        ] {
            let ours =
                from_slice(accepted.as_bytes()).unwrap_or_else(|e| panic!("{accepted}: {e}"));
            let theirs: Value = serde_json::from_str(accepted).unwrap_or_default();
            assert_eq!(ours, theirs, "{accepted}");
        }
    }

    #[test]
    fn deep_nesting_is_an_error_not_a_stack_overflow() {
        let deep = "[".repeat(100_000);
        assert!(from_slice(deep.as_bytes()).is_err());
        let deep = r#"{"a":"#.repeat(100_000);
        assert!(from_slice(deep.as_bytes()).is_err());
    }
}
