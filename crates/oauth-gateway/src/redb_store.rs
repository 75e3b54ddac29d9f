//! Contracts in an embedded database file (redb), kept across restarts.

use std::fmt;
use std::path::Path;

use oauth_core::{ContractStatus, Scope};
use redb::{Database, ReadableDatabase, ReadableTable, TableDefinition};

use crate::contracts::{Contract, ContractError, ContractSet, ContractStore, MemoryContracts};

/// (client id, API) → the allowed scopes, space-separated, or `None` for any.
const CONTRACTS: TableDefinition<'static, (&str, &str), Option<&str>> =
    TableDefinition::new("contracts");

/// (client id, API) → the contract's SLA tier, as its JSON form; no row for an unlimited
/// contract (a table of its own, so files written before tiers existed open unchanged).
const TIERS: TableDefinition<'static, (&str, &str), &str> = TableDefinition::new("tiers");

/// Contracts in a [redb](https://docs.rs/redb) database file.
///
/// redb is an embedded, pure-Rust, ACID key-value store: every write is a transaction that
/// either lands whole or not at all (a crash mid-reload leaves the previous contracts), and
/// readers run concurrently with each other and with a writer (MVCC), so request threads never
/// wait for a reload. One process opens the file at a time.
///
/// Because the file is this process's alone, every contract is also kept in memory (loaded at
/// [`open`](Self::open), updated after each committed write), and lookups read that copy
/// without a lock or a database transaction; the database is the durable record.
///
/// ```no_run
/// use oauth_gateway::{Contract, ContractSet, RedbContracts};
///
/// let store = RedbContracts::open("contracts.redb")?;
/// store.replace_all(&ContractSet::from_json(&std::fs::read("contracts.json")?)?)?;
/// store.grant(&Contract::new("app-1", "orders").scopes(["orders:read"]))?;
/// # Ok::<(), Box<dyn std::error::Error>>(())
/// ```
pub struct RedbContracts {
    db: Database,
    mirror: MemoryContracts,
}

/// Keeps redb's error as the source of a [`ContractError::Database`] for `operation`.
fn db_error<E>(operation: &'static str) -> impl FnOnce(E) -> ContractError
where
    E: std::error::Error + Send + Sync + 'static,
{
    move |e| ContractError::database(operation, e)
}

impl RedbContracts {
    /// Opens the database at `path`, creating it if it does not exist.
    pub fn open(path: impl AsRef<Path>) -> Result<Self, ContractError> {
        let db = Database::create(path).map_err(db_error("open"))?;
        // Create the table so that readers never see "no such table".
        let txn = db.begin_write().map_err(db_error("begin a write"))?;
        txn.open_table(CONTRACTS)
            .map_err(db_error("open the contracts table"))?;
        txn.open_table(TIERS)
            .map_err(db_error("open the tiers table"))?;
        txn.commit().map_err(db_error("commit"))?;
        let store = Self {
            db,
            mirror: MemoryContracts::new(),
        };
        store.mirror.replace_all(&store.export()?);
        Ok(store)
    }

    /// Adds or replaces a contract.
    pub fn grant(&self, contract: &Contract) -> Result<(), ContractError> {
        let txn = self.db.begin_write().map_err(db_error("begin a write"))?;
        {
            let mut table = txn
                .open_table(CONTRACTS)
                .map_err(db_error("open the contracts table"))?;
            let scopes = contract.scopes.as_ref().map(Scope::as_str);
            table
                .insert((contract.client_id.as_str(), contract.api.as_str()), scopes)
                .map_err(db_error("insert a contract"))?;
            let mut tiers = txn
                .open_table(TIERS)
                .map_err(db_error("open the tiers table"))?;
            put_tier(&mut tiers, contract)?;
        }
        txn.commit().map_err(db_error("commit"))?;
        self.mirror.grant(contract.clone());
        Ok(())
    }

    /// Removes a client's contract for `api`. Returns whether there was one.
    pub fn revoke(&self, client_id: &str, api: &str) -> Result<bool, ContractError> {
        let txn = self.db.begin_write().map_err(db_error("begin a write"))?;
        let removed = {
            let mut table = txn
                .open_table(CONTRACTS)
                .map_err(db_error("open the contracts table"))?;
            let removed = table
                .remove((client_id, api))
                .map_err(db_error("remove a contract"))?
                .is_some();
            txn.open_table(TIERS)
                .map_err(db_error("open the tiers table"))?
                .remove((client_id, api))
                .map_err(db_error("remove a tier"))?;
            removed
        };
        txn.commit().map_err(db_error("commit"))?;
        self.mirror.revoke(client_id, api);
        Ok(removed)
    }

    /// Replaces every contract with `set` in one transaction: readers see the old set or the
    /// new one, never a mix, and a crash keeps the old one.
    pub fn replace_all(&self, set: &ContractSet) -> Result<(), ContractError> {
        let txn = self.db.begin_write().map_err(db_error("begin a write"))?;
        {
            let mut table = txn
                .open_table(CONTRACTS)
                .map_err(db_error("open the contracts table"))?;
            table
                .retain(|_, _| false)
                .map_err(db_error("clear the table"))?;
            let mut tiers = txn
                .open_table(TIERS)
                .map_err(db_error("open the tiers table"))?;
            tiers
                .retain(|_, _| false)
                .map_err(db_error("clear the tiers"))?;
            for c in set.iter() {
                let scopes = c.scopes.as_ref().map(Scope::as_str);
                table
                    .insert((c.client_id.as_str(), c.api.as_str()), scopes)
                    .map_err(db_error("insert a contract"))?;
                put_tier(&mut tiers, c)?;
            }
        }
        txn.commit().map_err(db_error("commit"))?;
        self.mirror.replace_all(set);
        Ok(())
    }

    /// Every contract, in (client id, API) order.
    pub fn export(&self) -> Result<ContractSet, ContractError> {
        let txn = self.db.begin_read().map_err(db_error("begin a read"))?;
        let table = txn
            .open_table(CONTRACTS)
            .map_err(db_error("open the contracts table"))?;
        let tiers = txn
            .open_table(TIERS)
            .map_err(db_error("open the tiers table"))?;
        let mut set = ContractSet::new();
        for row in table.iter().map_err(db_error("read the table"))? {
            let (key, value) = row.map_err(db_error("read a contract"))?;
            let (client_id, api) = key.value();
            let tier = match tiers
                .get((client_id, api))
                .map_err(db_error("read a tier"))?
            {
                None => None,
                Some(json) => match serde_json::from_str(json.value())
                    .map_err(|e| e.to_string())
                    .and_then(|v| crate::contracts::tier_from_json(&v))
                {
                    Ok(tier) => Some(tier),
                    Err(why) => {
                        // As an invalid contract would be: skipped, and said.
                        tracing::warn!(
                            client_id,
                            api,
                            why,
                            "a contract's tier is invalid; the contract is skipped"
                        );
                        continue;
                    }
                },
            };
            set.insert(Contract {
                client_id: client_id.to_owned(),
                api: api.to_owned(),
                scopes: value.value().map(Scope::parse),
                tier,
            });
        }
        Ok(set)
    }
}

/// Writes `contract`'s tier row (or removes it, for an unlimited contract).
fn put_tier(
    tiers: &mut redb::Table<'_, (&'static str, &'static str), &'static str>,
    contract: &Contract,
) -> Result<(), ContractError> {
    let key = (contract.client_id.as_str(), contract.api.as_str());
    match &contract.tier {
        Some(tier) => {
            let json = crate::contracts::tier_to_json(tier).to_string();
            tiers
                .insert(key, json.as_str())
                .map_err(db_error("insert a tier"))?;
        }
        None => {
            tiers.remove(key).map_err(db_error("remove a tier"))?;
        }
    }
    Ok(())
}

impl ContractStore for RedbContracts {
    fn lookup(&self, client_id: &str, api: &str) -> ContractStatus {
        self.mirror.lookup(client_id, api)
    }
}

impl fmt::Debug for RedbContracts {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        f.debug_struct("RedbContracts").finish_non_exhaustive()
    }
}

#[cfg(test)]
mod tests {
    #![allow(clippy::unwrap_used, clippy::expect_used, clippy::panic)]

    use std::error::Error as _;
    use std::path::PathBuf;

    use super::*;

    /// A path of this test's own under the system's temporary directory, removed first.
    fn scratch(name: &str) -> PathBuf {
        let dir =
            std::env::temp_dir().join(format!("oauth-gateway-redb-{}-{name}", std::process::id()));
        let _ = std::fs::remove_dir_all(&dir);
        std::fs::create_dir_all(&dir).unwrap();
        dir
    }

    #[test]
    fn a_file_that_cannot_be_opened_keeps_redbs_error_as_the_source() {
        // The parent directory does not exist: redb cannot create the file.
        let path = scratch("missing-parent").join("no-such-dir").join("c.redb");
        let e = RedbContracts::open(&path).unwrap_err();
        assert!(
            matches!(
                e,
                ContractError::Database {
                    operation: "open",
                    ..
                }
            ),
            "{e:?}"
        );
        assert_eq!(e.to_string(), "contract database: open failed");
        let source = e.source().expect("a source");
        let redb = source
            .downcast_ref::<redb::DatabaseError>()
            .unwrap_or_else(|| panic!("not redb's error: {source:?}"));
        assert!(matches!(redb, redb::DatabaseError::Storage(_)), "{redb:?}");
    }

    #[test]
    fn a_file_that_is_not_a_database_is_refused_with_redbs_reason() {
        let path = scratch("garbage").join("c.redb");
        std::fs::write(&path, vec![0x5a; 8192]).unwrap();
        let e = RedbContracts::open(&path).unwrap_err();
        let source = e.source().expect("a source");
        assert!(
            source.downcast_ref::<redb::DatabaseError>().is_some(),
            "{source:?}"
        );
    }

    #[test]
    fn a_file_open_twice_names_the_operation_and_keeps_the_lock_error() {
        let path = scratch("twice").join("c.redb");
        let first = RedbContracts::open(&path).unwrap();
        first.grant(&Contract::new("app", "orders")).unwrap();
        let e = RedbContracts::open(&path).unwrap_err();
        let redb = e
            .source()
            .and_then(|s| s.downcast_ref::<redb::DatabaseError>())
            .unwrap_or_else(|| panic!("{e:?}"));
        assert!(
            matches!(redb, redb::DatabaseError::DatabaseAlreadyOpen),
            "{redb:?}"
        );
        // The first handle is unaffected.
        assert!(matches!(
            first.lookup("app", "orders"),
            ContractStatus::Granted { .. }
        ));
    }
}
