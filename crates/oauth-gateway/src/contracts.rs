//! Contracts: which client may call which API, with which scopes, under which SLA tier.

use std::collections::HashMap;
use std::fmt;
use std::sync::{Arc, Mutex};

use arc_swap::ArcSwap;
use oauth_core::resource_server::rate_limit::{Limit, Tier};
use oauth_core::{ContractStatus, Scope};
use serde_json::{Value, json};

/// A client's contract for one API.
#[derive(Clone, Debug, PartialEq, Eq)]
pub struct Contract {
    /// The client that holds the contract.
    pub client_id: String,
    /// The API it may call (the name given to [`ApiPolicy::new`](oauth_core::ApiPolicy::new)).
    pub api: String,
    /// The scopes it may use on the API; `None` for any.
    pub scopes: Option<Scope>,
    /// The SLA tier its requests are counted against; `None` for unlimited.
    pub tier: Option<Tier>,
}

impl Contract {
    /// A contract for any scope.
    pub fn new(client_id: impl Into<String>, api: impl Into<String>) -> Self {
        Self {
            client_id: client_id.into(),
            api: api.into(),
            scopes: None,
            tier: None,
        }
    }

    /// Puts the contract under an SLA tier (its rate limits).
    pub fn tier(mut self, tier: Tier) -> Self {
        self.tier = Some(tier);
        self
    }

    /// Limits the contract to `scopes`.
    pub fn scopes<I, S>(mut self, scopes: I) -> Self
    where
        I: IntoIterator<Item = S>,
        S: Into<String>,
    {
        self.scopes = Some(Scope::new(scopes));
        self
    }
}

/// Where contracts are kept. Implementations must be cheap to read: the gateway asks on every
/// request (the introspection result is cached, the contract is not, so that a revoked
/// contract takes effect at once).
pub trait ContractStore: Send + Sync + 'static {
    /// What `client_id` may do on `api`. A store that cannot answer (an I/O error) returns
    /// [`ContractStatus::Unavailable`], and the request is refused with 503.
    fn lookup(&self, client_id: &str, api: &str) -> ContractStatus;
}

impl<T: ContractStore + ?Sized> ContractStore for Arc<T> {
    fn lookup(&self, client_id: &str, api: &str) -> ContractStatus {
        (**self).lookup(client_id, api)
    }
}

/// A set of contracts, as exported from a management platform and loaded into a store.
///
/// The JSON form is
/// `{"contracts": [{"client_id": "…", "api": "…", "scopes": ["…"], "tier": {"name": "silver",
/// "limits": [{"requests": 100, "window_secs": 60}, {"requests": 5000, "window_secs": 86400}]}}]}`,
/// `scopes` optional (absent or `null` for any scope), `tier` optional (absent or `null` for
/// unlimited).
#[derive(Clone, Debug, Default, PartialEq, Eq)]
pub struct ContractSet {
    contracts: Vec<Contract>,
}

impl ContractSet {
    /// An empty set.
    pub fn new() -> Self {
        Self::default()
    }

    /// Adds a contract (replacing one for the same client and API).
    pub fn insert(&mut self, contract: Contract) {
        match self
            .contracts
            .binary_search_by(|c| (&c.client_id, &c.api).cmp(&(&contract.client_id, &contract.api)))
        {
            Ok(i) => self.contracts[i] = contract,
            Err(i) => self.contracts.insert(i, contract),
        }
    }

    /// The contracts, in (client id, API) order.
    pub fn iter(&self) -> impl Iterator<Item = &Contract> {
        self.contracts.iter()
    }

    /// How many contracts there are.
    pub fn len(&self) -> usize {
        self.contracts.len()
    }

    /// Whether there are none.
    pub fn is_empty(&self) -> bool {
        self.contracts.is_empty()
    }

    /// Reads the JSON export.
    pub fn from_json(bytes: &[u8]) -> Result<Self, ContractError> {
        let value: Value = serde_json::from_slice(bytes).map_err(|e| {
            ContractError::Json(format!(
                "not JSON (line {}, column {})",
                e.line(),
                e.column()
            ))
        })?;
        let Some(Value::Array(items)) = value.get("contracts") else {
            return Err(ContractError::Json(
                "expected an object with a \"contracts\" array".into(),
            ));
        };
        let mut set = Self::new();
        for (i, item) in items.iter().enumerate() {
            let text = |name: &str| match item.get(name) {
                Some(Value::String(s)) if !s.is_empty() => Ok(s.clone()),
                _ => Err(ContractError::Json(format!(
                    "contract {i}: \"{name}\" must be a non-empty string"
                ))),
            };
            let scopes = match item.get("scopes") {
                None | Some(Value::Null) => None,
                Some(Value::Array(scopes)) => {
                    let mut tokens = Vec::with_capacity(scopes.len());
                    for s in scopes {
                        match s {
                            Value::String(s) => tokens.push(s.clone()),
                            _ => {
                                return Err(ContractError::Json(format!(
                                    "contract {i}: \"scopes\" must be an array of strings"
                                )));
                            }
                        }
                    }
                    Some(Scope::new(tokens))
                }
                Some(Value::String(s)) => Some(Scope::parse(s)),
                Some(_) => {
                    return Err(ContractError::Json(format!(
                        "contract {i}: \"scopes\" must be an array of strings"
                    )));
                }
            };
            let tier =
                match item.get("tier") {
                    None | Some(Value::Null) => None,
                    Some(tier) => Some(tier_from_json(tier).map_err(|why| {
                        ContractError::Json(format!("contract {i}: \"tier\" {why}"))
                    })?),
                };
            set.insert(Contract {
                client_id: text("client_id")?,
                api: text("api")?,
                scopes,
                tier,
            });
        }
        Ok(set)
    }

    /// Writes the JSON export.
    pub fn to_json(&self) -> Vec<u8> {
        let contracts: Vec<Value> = self
            .contracts
            .iter()
            .map(|c| {
                let mut v = json!({"client_id": c.client_id, "api": c.api});
                if let Some(scopes) = &c.scopes {
                    v["scopes"] = json!(scopes.iter().collect::<Vec<_>>());
                }
                if let Some(tier) = &c.tier {
                    v["tier"] = tier_to_json(tier);
                }
                v
            })
            .collect();
        serde_json::to_vec_pretty(&json!({ "contracts": contracts })).unwrap_or_default()
    }
}

/// A tier's JSON form: `{"name": "silver", "limits": [{"requests": 100, "window_secs": 60}]}`.
pub fn tier_to_json(tier: &Tier) -> Value {
    let limits: Vec<Value> = tier
        .limits()
        .iter()
        .map(|l| {
            let window = l.window();
            if window.subsec_millis() == 0 {
                json!({"requests": l.requests(), "window_secs": window.as_secs()})
            } else {
                json!({"requests": l.requests(), "window_ms": window.as_millis() as u64})
            }
        })
        .collect();
    json!({"name": tier.name(), "limits": limits})
}

/// Reads a tier's JSON form ([`tier_to_json`]; a window in `window_secs` or `window_ms`), or
/// says what is wrong with it.
pub fn tier_from_json(value: &Value) -> Result<Tier, String> {
    let name = value
        .get("name")
        .and_then(Value::as_str)
        .ok_or("needs a \"name\"")?;
    let items = value
        .get("limits")
        .and_then(Value::as_array)
        .ok_or("needs a \"limits\" array")?;
    let mut limits = Vec::with_capacity(items.len());
    for item in items {
        let requests = item
            .get("requests")
            .and_then(Value::as_u64)
            .and_then(|n| u32::try_from(n).ok())
            .ok_or("limit needs \"requests\" (a positive integer)")?;
        let window = match (
            item.get("window_secs").and_then(Value::as_u64),
            item.get("window_ms").and_then(Value::as_u64),
        ) {
            (Some(s), None) => std::time::Duration::from_secs(s),
            (None, Some(ms)) => std::time::Duration::from_millis(ms),
            _ => return Err("limit needs one of \"window_secs\", \"window_ms\"".into()),
        };
        limits.push(
            Limit::new(requests, window)
                .ok_or("limit: requests and window must be positive (window at most a year)")?,
        );
    }
    Tier::new(name, &limits)
        .ok_or_else(|| "needs a token name (letters, digits, - _ .) and 1 to 8 limits".into())
}

/// Reads a tier from its short form: a name and `requests/window_seconds` limits,
/// comma-separated (`"silver"`, `"100/60,5000/86400"`: 100 a minute and 5,000 a day), as
/// PostgreSQL's tier columns and the proxy's `contracts add --tier` write it.
pub fn tier_from_spec(name: &str, limits: &str) -> Result<Tier, String> {
    let mut parsed = Vec::new();
    for item in limits.split(',') {
        let invalid = || format!("invalid limit {:?} (requests/seconds)", item.trim());
        let (requests, seconds) = item.trim().split_once('/').ok_or_else(invalid)?;
        let requests: u32 = requests.trim().parse().map_err(|_| invalid())?;
        let seconds: u64 = seconds.trim().parse().map_err(|_| invalid())?;
        parsed.push(
            Limit::new(requests, std::time::Duration::from_secs(seconds)).ok_or_else(invalid)?,
        );
    }
    Tier::new(name, &parsed).ok_or_else(|| {
        "a tier needs a token name (letters, digits, - _ .) and 1 to 8 limits".into()
    })
}

impl FromIterator<Contract> for ContractSet {
    fn from_iter<I: IntoIterator<Item = Contract>>(iter: I) -> Self {
        let mut set = Self::new();
        for c in iter {
            set.insert(c);
        }
        set
    }
}

/// Why contracts could not be read or written.
#[derive(Debug)]
#[non_exhaustive]
pub enum ContractError {
    /// The JSON export is malformed: what is wrong, and where.
    Json(String),
    /// The database failed while doing `operation`; the database's own error is the
    /// [`source`](std::error::Error::source).
    Database {
        /// What the store was doing ("open", "begin a write", "commit", ...).
        operation: &'static str,
        /// The database's error.
        source: Box<dyn std::error::Error + Send + Sync + 'static>,
    },
}

impl ContractError {
    /// A database failure during `operation`, keeping the database's error as the source.
    pub fn database(
        operation: &'static str,
        source: impl Into<Box<dyn std::error::Error + Send + Sync + 'static>>,
    ) -> Self {
        Self::Database {
            operation,
            source: source.into(),
        }
    }
}

impl fmt::Display for ContractError {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        match self {
            Self::Json(m) => write!(f, "contract export: {m}"),
            Self::Database { operation, .. } => {
                write!(f, "contract database: {operation} failed")
            }
        }
    }
}

impl std::error::Error for ContractError {
    fn source(&self) -> Option<&(dyn std::error::Error + 'static)> {
        match self {
            Self::Json(_) => None,
            Self::Database { source, .. } => Some(&**source),
        }
    }
}

/// What a contract grants: its scopes and its tier.
#[derive(Clone, Debug, Default, PartialEq, Eq)]
struct Terms {
    scopes: Option<Scope>,
    tier: Option<Tier>,
}

type Table = HashMap<String, HashMap<String, Terms>>;

/// Contracts in memory. Reads take no lock (an `arc-swap` snapshot); writes copy the table and
/// publish the copy, so they suit contracts that change now and then, not per request.
#[derive(Default)]
pub struct MemoryContracts {
    table: ArcSwap<Table>,
    writer: Mutex<()>,
}

impl MemoryContracts {
    /// An empty store.
    pub fn new() -> Self {
        Self::default()
    }

    /// A store holding `set`.
    pub fn from_set(set: &ContractSet) -> Self {
        let store = Self::new();
        store.replace_all(set);
        store
    }

    /// Adds or replaces a contract.
    pub fn grant(&self, contract: Contract) {
        self.update(|t| {
            t.entry(contract.client_id).or_default().insert(
                contract.api,
                Terms {
                    scopes: contract.scopes,
                    tier: contract.tier,
                },
            );
        });
    }

    /// Removes a client's contract for `api`. Returns whether there was one.
    pub fn revoke(&self, client_id: &str, api: &str) -> bool {
        let mut removed = false;
        self.update(|t| {
            if let Some(apis) = t.get_mut(client_id) {
                removed = apis.remove(api).is_some();
                if apis.is_empty() {
                    t.remove(client_id);
                }
            }
        });
        removed
    }

    /// Replaces every contract with `set`, at once: readers see the old set or the new one.
    pub fn replace_all(&self, set: &ContractSet) {
        let _guard = self.writer.lock().unwrap_or_else(|e| e.into_inner());
        let mut table = Table::new();
        for c in set.iter() {
            table.entry(c.client_id.clone()).or_default().insert(
                c.api.clone(),
                Terms {
                    scopes: c.scopes.clone(),
                    tier: c.tier.clone(),
                },
            );
        }
        self.table.store(Arc::new(table));
    }

    /// Every contract.
    pub fn export(&self) -> ContractSet {
        let table = self.table.load();
        let mut contracts: Vec<Contract> = table
            .iter()
            .flat_map(|(client, apis)| {
                apis.iter().map(|(api, terms)| Contract {
                    client_id: client.clone(),
                    api: api.clone(),
                    scopes: terms.scopes.clone(),
                    tier: terms.tier.clone(),
                })
            })
            .collect();
        contracts.sort_by(|a, b| (&a.client_id, &a.api).cmp(&(&b.client_id, &b.api)));
        ContractSet { contracts }
    }

    fn update(&self, f: impl FnOnce(&mut Table)) {
        let _guard = self.writer.lock().unwrap_or_else(|e| e.into_inner());
        let mut table = Table::clone(&self.table.load());
        f(&mut table);
        self.table.store(Arc::new(table));
    }
}

impl ContractStore for MemoryContracts {
    fn lookup(&self, client_id: &str, api: &str) -> ContractStatus {
        let table = self.table.load();
        match table.get(client_id).and_then(|apis| apis.get(api)) {
            Some(terms) => ContractStatus::Granted {
                scopes: terms.scopes.clone(),
                tier: terms.tier.clone(),
            },
            None => ContractStatus::None,
        }
    }
}

impl fmt::Debug for MemoryContracts {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        let table = self.table.load();
        f.debug_struct("MemoryContracts")
            .field("clients", &table.len())
            .finish()
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn json_round_trip_and_errors() {
        let silver = Tier::new(
            "silver",
            &[
                Limit::new(100, std::time::Duration::from_secs(60)).unwrap(),
                Limit::new(5000, std::time::Duration::from_secs(86_400)).unwrap(),
            ],
        )
        .unwrap();
        let set: ContractSet = [
            Contract::new("app-1", "orders").scopes(["orders:read", "orders:write"]),
            Contract::new("app-2", "orders").tier(silver),
        ]
        .into_iter()
        .collect();
        let back = ContractSet::from_json(&set.to_json()).unwrap();
        assert_eq!(back, set);
        let also = ContractSet::from_json(
            br#"{"contracts":[{"client_id":"a","api":"b","scopes":"x y"},{"client_id":"a","api":"b","scopes":null}]}"#,
        )
        .unwrap();
        // The later entry for the same client and API wins.
        assert_eq!(also.iter().collect::<Vec<_>>(), [&Contract::new("a", "b")]);
        for bad in [
            &b"[]"[..],
            b"nope",
            br#"{"contracts":[{"client_id":"","api":"b"}]}"#,
            br#"{"contracts":[{"client_id":"a"}]}"#,
            br#"{"contracts":[{"client_id":"a","api":"b","scopes":[1]}]}"#,
            br#"{"contracts":[{"client_id":"a","api":"b","tier":{"name":"x","limits":[]}}]}"#,
            br#"{"contracts":[{"client_id":"a","api":"b","tier":{"name":"x","limits":[{"requests":0,"window_secs":1}]}}]}"#,
            br#"{"contracts":[{"client_id":"a","api":"b","tier":{"name":"a b","limits":[{"requests":1,"window_secs":1}]}}]}"#,
            br#"{"contracts":[{"client_id":"a","api":"b","tier":{"limits":[{"requests":1,"window_secs":1}]}}]}"#,
        ] {
            let e = ContractSet::from_json(bad).unwrap_err();
            assert!(matches!(e, ContractError::Json(_)), "{e}");
        }
    }

    #[test]
    fn memory_store() {
        let store = MemoryContracts::new();
        assert_eq!(store.lookup("app", "orders"), ContractStatus::None);
        store.grant(Contract::new("app", "orders").scopes(["r"]));
        assert_eq!(
            store.lookup("app", "orders"),
            ContractStatus::Granted {
                scopes: Some(Scope::parse("r")),
                tier: None,
            }
        );
        assert_eq!(store.lookup("app", "billing"), ContractStatus::None);
        assert_eq!(store.lookup("other", "orders"), ContractStatus::None);
        assert!(store.revoke("app", "orders"));
        assert!(!store.revoke("app", "orders"));
        assert_eq!(store.lookup("app", "orders"), ContractStatus::None);
        let set: ContractSet = [Contract::new("b", "x"), Contract::new("a", "y")]
            .into_iter()
            .collect();
        store.replace_all(&set);
        assert_eq!(
            store
                .export()
                .iter()
                .map(|c| c.client_id.as_str())
                .collect::<Vec<_>>(),
            ["a", "b"]
        );
    }
}
