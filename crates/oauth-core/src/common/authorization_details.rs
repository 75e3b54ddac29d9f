//! Rich authorization requests (RFC 9396): `authorization_details`, a JSON array of objects,
//! each with a `type` and whatever members that type defines.
//!
//! The same value is sent on authorization requests (and PAR), on token requests, and read back
//! from token responses and introspection. Parsing is strict (RFC 9396 §2): an array of
//! objects, each with a non-empty string `type`; the common members (§2.2) must have their
//! defined JSON types; a member named twice is refused (as everywhere in this crate).
//!
//! ```
//! use oauth_core::authorization_details::{AuthorizationDetail, AuthorizationDetails};
//!
//! let details = AuthorizationDetails::new().with(
//!     AuthorizationDetail::new("payment_initiation")
//!         .actions(["initiate", "status"])
//!         .locations(["https://bank.example/payments"])
//!         .member("instructedAmount", serde_json::json!({"currency": "EUR", "amount": "123.50"})),
//! );
//! let json = details.to_json();
//! assert!(json.starts_with(r#"[{"type":"payment_initiation","#));
//! assert_eq!(AuthorizationDetails::parse(&json)?, details);
//! # Ok::<(), oauth_core::authorization_details::AuthorizationDetailsError>(())
//! ```

use std::fmt;

use serde_json::{Map, Value};

/// The members RFC 9396 §2.2 defines for every type, with an array of strings as their value.
const STRING_ARRAYS: &[&str] = &["locations", "actions", "datatypes", "privileges"];

/// One authorization details object (RFC 9396 §2): its `type` and its other members.
#[derive(Clone, Debug, PartialEq)]
#[must_use]
pub struct AuthorizationDetail {
    detail_type: String,
    members: Map<String, Value>,
}

impl AuthorizationDetail {
    /// An object of this `type` (RFC 9396 §2: a string the server knows, such as
    /// `payment_initiation`). An empty `type` is refused when the request is built.
    pub fn new(detail_type: impl Into<String>) -> Self {
        Self {
            detail_type: detail_type.into(),
            members: Map::new(),
        }
    }

    fn strings<I, S>(mut self, name: &str, values: I) -> Self
    where
        I: IntoIterator<Item = S>,
        S: Into<String>,
    {
        let values = values
            .into_iter()
            .map(|v| Value::String(v.into()))
            .collect();
        self.members.insert(name.to_owned(), Value::Array(values));
        self
    }

    /// `locations` (RFC 9396 §2.2): the URIs of the resource servers this is for.
    pub fn locations<I: IntoIterator<Item = S>, S: Into<String>>(self, locations: I) -> Self {
        self.strings("locations", locations)
    }

    /// `actions` (RFC 9396 §2.2): the kinds of action asked for (`read`, `initiate`, ...).
    pub fn actions<I: IntoIterator<Item = S>, S: Into<String>>(self, actions: I) -> Self {
        self.strings("actions", actions)
    }

    /// `datatypes` (RFC 9396 §2.2): the kinds of data asked for.
    pub fn datatypes<I: IntoIterator<Item = S>, S: Into<String>>(self, datatypes: I) -> Self {
        self.strings("datatypes", datatypes)
    }

    /// `privileges` (RFC 9396 §2.2): the privilege levels asked for.
    pub fn privileges<I: IntoIterator<Item = S>, S: Into<String>>(self, privileges: I) -> Self {
        self.strings("privileges", privileges)
    }

    /// `identifier` (RFC 9396 §2.2): one resource at the API.
    pub fn identifier(mut self, identifier: impl Into<String>) -> Self {
        self.members
            .insert("identifier".to_owned(), Value::String(identifier.into()));
        self
    }

    /// Any member the type defines (RFC 9396 §2: `instructedAmount`, `creditorAccount`, ...).
    /// `type` itself is set by [`new`](Self::new) only: a member named `type` is ignored.
    pub fn member(mut self, name: impl Into<String>, value: Value) -> Self {
        let name = name.into();
        if name != "type" {
            self.members.insert(name, value);
        }
        self
    }

    /// The `type`.
    pub fn detail_type(&self) -> &str {
        &self.detail_type
    }

    /// The members other than `type`.
    pub fn members(&self) -> &Map<String, Value> {
        &self.members
    }

    /// One member other than `type`.
    pub fn get(&self, name: &str) -> Option<&Value> {
        self.members.get(name)
    }

    fn string_list(&self, name: &str) -> Vec<&str> {
        match self.members.get(name) {
            Some(Value::Array(values)) => values.iter().filter_map(Value::as_str).collect(),
            _ => Vec::new(),
        }
    }

    /// `locations` (empty when absent).
    pub fn locations_list(&self) -> Vec<&str> {
        self.string_list("locations")
    }

    /// `actions` (empty when absent).
    pub fn actions_list(&self) -> Vec<&str> {
        self.string_list("actions")
    }

    /// `datatypes` (empty when absent).
    pub fn datatypes_list(&self) -> Vec<&str> {
        self.string_list("datatypes")
    }

    /// `privileges` (empty when absent).
    pub fn privileges_list(&self) -> Vec<&str> {
        self.string_list("privileges")
    }

    /// `identifier`, if present.
    pub fn identifier_value(&self) -> Option<&str> {
        self.members.get("identifier").and_then(Value::as_str)
    }

    /// Appends this object as JSON text, `type` first (a reader sees what it is before its
    /// members; `serde_json`'s map would sort it among them).
    fn write_json(&self, out: &mut String) {
        out.push_str("{\"type\":");
        out.push_str(&Value::String(self.detail_type.clone()).to_string());
        for (name, value) in &self.members {
            out.push(',');
            out.push_str(&Value::String(name.clone()).to_string());
            out.push(':');
            out.push_str(&value.to_string());
        }
        out.push('}');
    }

    /// This object as a JSON value.
    pub fn to_value(&self) -> Value {
        let mut map = Map::new();
        map.insert("type".to_owned(), Value::String(self.detail_type.clone()));
        for (name, value) in &self.members {
            map.insert(name.clone(), value.clone());
        }
        Value::Object(map)
    }

    fn from_value(index: usize, value: Value) -> Result<Self, AuthorizationDetailsError> {
        let Value::Object(mut members) = value else {
            return Err(AuthorizationDetailsError::NotAnObject { index });
        };
        let detail_type = match members.remove("type") {
            Some(Value::String(t)) if !t.is_empty() => t,
            None => return Err(AuthorizationDetailsError::MissingType { index }),
            Some(_) => return Err(AuthorizationDetailsError::InvalidType { index }),
        };
        for (name, value) in &members {
            let fits = match name.as_str() {
                n if STRING_ARRAYS.contains(&n) => value
                    .as_array()
                    .is_some_and(|values| values.iter().all(Value::is_string)),
                "identifier" => value.is_string(),
                _ => true,
            };
            if !fits {
                return Err(AuthorizationDetailsError::InvalidMember {
                    index,
                    name: STRING_ARRAYS
                        .iter()
                        .chain(&["identifier"])
                        .find(|n| **n == name)
                        .copied()
                        .unwrap_or("identifier"),
                });
            }
        }
        Ok(Self {
            detail_type,
            members,
        })
    }
}

/// `authorization_details` (RFC 9396 §2): a list of [`AuthorizationDetail`] objects.
#[derive(Clone, Debug, Default, PartialEq)]
#[must_use]
pub struct AuthorizationDetails(Vec<AuthorizationDetail>);

impl AuthorizationDetails {
    /// An empty list (sent as nothing at all).
    pub fn new() -> Self {
        Self(Vec::new())
    }

    /// Adds an object.
    pub fn with(mut self, detail: AuthorizationDetail) -> Self {
        self.0.push(detail);
        self
    }

    /// Adds an object.
    pub fn push(&mut self, detail: AuthorizationDetail) {
        self.0.push(detail);
    }

    /// The objects, in order.
    pub fn iter(&self) -> std::slice::Iter<'_, AuthorizationDetail> {
        self.0.iter()
    }

    /// How many objects.
    pub fn len(&self) -> usize {
        self.0.len()
    }

    /// No objects.
    pub fn is_empty(&self) -> bool {
        self.0.is_empty()
    }

    /// The objects of this `type`.
    pub fn of_type<'a>(
        &'a self,
        detail_type: &'a str,
    ) -> impl Iterator<Item = &'a AuthorizationDetail> {
        self.0.iter().filter(move |d| d.detail_type == detail_type)
    }

    /// Whether an object of this `type` is present.
    pub fn contains_type(&self, detail_type: &str) -> bool {
        self.of_type(detail_type).next().is_some()
    }

    /// The list as a JSON array.
    pub fn to_value(&self) -> Value {
        Value::Array(self.0.iter().map(AuthorizationDetail::to_value).collect())
    }

    /// The list as JSON text: the value of the `authorization_details` parameter (form-encoded
    /// where it is sent).
    pub fn to_json(&self) -> String {
        let mut out = String::from("[");
        for (i, detail) in self.0.iter().enumerate() {
            if i > 0 {
                out.push(',');
            }
            detail.write_json(&mut out);
        }
        out.push(']');
        out
    }

    /// Parses the parameter's value: JSON text (a member named twice is refused).
    pub fn parse(text: &str) -> Result<Self, AuthorizationDetailsError> {
        let value: Value = crate::json::from_slice(text.as_bytes())
            .map_err(|_| AuthorizationDetailsError::NotJson)?;
        Self::from_value(value)
    }

    /// Reads an already parsed JSON value (a token response's or an introspection's member).
    pub fn from_value(value: Value) -> Result<Self, AuthorizationDetailsError> {
        let Value::Array(items) = value else {
            return Err(AuthorizationDetailsError::NotAnArray);
        };
        items
            .into_iter()
            .enumerate()
            .map(|(index, item)| AuthorizationDetail::from_value(index, item))
            .collect::<Result<Vec<_>, _>>()
            .map(Self)
    }

    /// Checks what a request is about to send: every `type` non-empty.
    pub(crate) fn check(&self) -> Result<(), crate::error::Error> {
        if self.0.iter().any(|d| d.detail_type.is_empty()) {
            return Err(crate::error::Error::InvalidParameter {
                name: "authorization_details",
                reason: "every object needs a non-empty `type` (RFC 9396 §2)",
            });
        }
        Ok(())
    }
}

impl FromIterator<AuthorizationDetail> for AuthorizationDetails {
    fn from_iter<T: IntoIterator<Item = AuthorizationDetail>>(iter: T) -> Self {
        Self(iter.into_iter().collect())
    }
}

impl<'a> IntoIterator for &'a AuthorizationDetails {
    type Item = &'a AuthorizationDetail;
    type IntoIter = std::slice::Iter<'a, AuthorizationDetail>;

    fn into_iter(self) -> Self::IntoIter {
        self.0.iter()
    }
}

/// Why an `authorization_details` value was refused (RFC 9396 §2).
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
#[non_exhaustive]
pub enum AuthorizationDetailsError {
    /// Not JSON (or a member named twice).
    NotJson,
    /// JSON, but not an array.
    NotAnArray,
    /// An element is not an object.
    NotAnObject {
        /// The element's position.
        index: usize,
    },
    /// An object has no `type`.
    MissingType {
        /// The object's position.
        index: usize,
    },
    /// An object's `type` is not a non-empty string.
    InvalidType {
        /// The object's position.
        index: usize,
    },
    /// A common member (RFC 9396 §2.2) has the wrong JSON type: `locations`, `actions`,
    /// `datatypes` and `privileges` are arrays of strings, `identifier` a string.
    InvalidMember {
        /// The object's position.
        index: usize,
        /// The member.
        name: &'static str,
    },
}

impl fmt::Display for AuthorizationDetailsError {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        match self {
            Self::NotJson => f.write_str("authorization_details is not valid JSON"),
            Self::NotAnArray => f.write_str("authorization_details is not a JSON array"),
            Self::NotAnObject { index } => {
                write!(f, "authorization_details[{index}] is not a JSON object")
            }
            Self::MissingType { index } => {
                write!(f, "authorization_details[{index}] has no `type`")
            }
            Self::InvalidType { index } => write!(
                f,
                "authorization_details[{index}].type is not a non-empty string"
            ),
            Self::InvalidMember { index, name } => write!(
                f,
                "authorization_details[{index}].{name} has the wrong JSON type (RFC 9396 §2.2)"
            ),
        }
    }
}

impl std::error::Error for AuthorizationDetailsError {}

#[cfg(test)]
mod tests {
    use super::*;
    use proptest::prelude::*;
    use serde_json::json;

    fn check_refused(text: &str, expected: AuthorizationDetailsError) {
        assert_eq!(AuthorizationDetails::parse(text), Err(expected), "{text}");
    }

    #[test]
    fn rfc_9396_example_parses() {
        // RFC 9396 §2 figure 1, abridged.
        let text = r#"[{"type":"account_information","actions":["list_accounts","read_balances"],
            "locations":["https://example.com/accounts"]},
            {"type":"payment_initiation","actions":["initiate","status","cancel"],
            "locations":["https://example.com/payments"],
            "instructedAmount":{"currency":"EUR","amount":"123.50"},
            "creditorName":"Merchant A","identifier":"pay-1"}]"#;
        let details = AuthorizationDetails::parse(text).unwrap();
        assert_eq!(details.len(), 2);
        assert!(details.contains_type("payment_initiation"));
        assert!(!details.contains_type("payment"));
        let payment = details.of_type("payment_initiation").next().unwrap();
        assert_eq!(payment.actions_list(), ["initiate", "status", "cancel"]);
        assert_eq!(payment.locations_list(), ["https://example.com/payments"]);
        assert_eq!(payment.identifier_value(), Some("pay-1"));
        assert_eq!(payment.get("creditorName"), Some(&json!("Merchant A")));
        assert_eq!(
            AuthorizationDetails::parse(&details.to_json()).unwrap(),
            details
        );
    }

    #[test]
    fn strict_parsing() {
        use AuthorizationDetailsError as E;
        check_refused("", E::NotJson);
        check_refused("[", E::NotJson);
        check_refused(r#"[{"type":"a","type":"b"}]"#, E::NotJson);
        check_refused(r#"{"type":"a"}"#, E::NotAnArray);
        check_refused(r#""[]""#, E::NotAnArray);
        check_refused("null", E::NotAnArray);
        check_refused(r#"[{"type":"a"},1]"#, E::NotAnObject { index: 1 });
        check_refused(r#"[[]]"#, E::NotAnObject { index: 0 });
        check_refused(r#"[{"actions":["a"]}]"#, E::MissingType { index: 0 });
        check_refused(r#"[{"type":""}]"#, E::InvalidType { index: 0 });
        check_refused(r#"[{"type":7}]"#, E::InvalidType { index: 0 });
        check_refused(r#"[{"type":null}]"#, E::InvalidType { index: 0 });
        check_refused(
            r#"[{"type":"a","actions":"read"}]"#,
            E::InvalidMember {
                index: 0,
                name: "actions",
            },
        );
        check_refused(
            r#"[{"type":"a"},{"type":"b","locations":[1]}]"#,
            E::InvalidMember {
                index: 1,
                name: "locations",
            },
        );
        check_refused(
            r#"[{"type":"a","identifier":["x"]}]"#,
            E::InvalidMember {
                index: 0,
                name: "identifier",
            },
        );
        assert_eq!(AuthorizationDetails::parse("[]").unwrap().len(), 0);
    }

    #[test]
    fn member_cannot_replace_type() {
        let detail = AuthorizationDetail::new("a").member("type", json!("b"));
        assert_eq!(detail.to_value(), json!({"type": "a"}));
    }

    #[test]
    fn errors_say_where() {
        let e = AuthorizationDetailsError::InvalidMember {
            index: 2,
            name: "actions",
        };
        assert_eq!(
            e.to_string(),
            "authorization_details[2].actions has the wrong JSON type (RFC 9396 §2.2)"
        );
    }

    fn json_leaf() -> impl Strategy<Value = Value> {
        prop_oneof![
            Just(Value::Null),
            any::<bool>().prop_map(Value::Bool),
            any::<i64>().prop_map(|n| json!(n)),
            ".{0,12}".prop_map(Value::String),
        ]
    }

    fn json_value() -> impl Strategy<Value = Value> {
        json_leaf().prop_recursive(3, 24, 4, |inner| {
            prop_oneof![
                prop::collection::vec(inner.clone(), 0..4).prop_map(Value::Array),
                prop::collection::btree_map("[a-z]{1,6}", inner, 0..4)
                    .prop_map(|m| Value::Object(m.into_iter().collect())),
            ]
        })
    }

    fn detail() -> impl Strategy<Value = AuthorizationDetail> {
        (
            ".{1,16}",
            prop::option::of(prop::collection::vec(".{0,8}", 0..3)),
            prop::option::of(prop::collection::vec(".{0,8}", 0..3)),
            prop::option::of(".{0,8}"),
            prop::collection::btree_map("x[a-zA-Z]{0,6}", json_value(), 0..3),
        )
            .prop_map(|(t, actions, locations, identifier, extra)| {
                let mut d = AuthorizationDetail::new(t);
                if let Some(a) = actions {
                    d = d.actions(a);
                }
                if let Some(l) = locations {
                    d = d.locations(l);
                }
                if let Some(i) = identifier {
                    d = d.identifier(i);
                }
                for (name, value) in extra {
                    d = d.member(name, value);
                }
                d
            })
    }

    proptest! {
        #[test]
        fn parse_serialize_round_trip(details in prop::collection::vec(detail(), 0..4)) {
            let details: AuthorizationDetails = details.into_iter().collect();
            prop_assert_eq!(AuthorizationDetails::parse(&details.to_json()).unwrap(), details);
        }

        #[test]
        fn parse_never_panics(text in ".{0,64}") {
            let _ = AuthorizationDetails::parse(&text);
        }

        #[test]
        fn parse_never_panics_on_json(value in json_value()) {
            let _ = AuthorizationDetails::parse(&value.to_string());
        }
    }
}
