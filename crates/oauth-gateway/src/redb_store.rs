//! Contracts in an embedded database file (redb), kept across restarts.

use std::fmt;
use std::path::Path;

use oauth_core::{ContractStatus, Scope};
use redb::{Database, ReadableDatabase, ReadableTable, TableDefinition};

use crate::contracts::{Contract, ContractError, ContractSet, ContractStore, MemoryContracts};

/// (client id, API) → the allowed scopes, space-separated, or `None` for any.
const CONTRACTS: TableDefinition<'static, (&str, &str), Option<&str>> =
    TableDefinition::new("contracts");

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

fn db_error(e: impl fmt::Display) -> ContractError {
    ContractError::Database(e.to_string())
}

impl RedbContracts {
    /// Opens the database at `path`, creating it if it does not exist.
    pub fn open(path: impl AsRef<Path>) -> Result<Self, ContractError> {
        let db = Database::create(path).map_err(db_error)?;
        // Create the table so that readers never see "no such table".
        let txn = db.begin_write().map_err(db_error)?;
        txn.open_table(CONTRACTS).map_err(db_error)?;
        txn.commit().map_err(db_error)?;
        let store = Self {
            db,
            mirror: MemoryContracts::new(),
        };
        store.mirror.replace_all(&store.export()?);
        Ok(store)
    }

    /// Adds or replaces a contract.
    pub fn grant(&self, contract: &Contract) -> Result<(), ContractError> {
        let txn = self.db.begin_write().map_err(db_error)?;
        {
            let mut table = txn.open_table(CONTRACTS).map_err(db_error)?;
            let scopes = contract.scopes.as_ref().map(Scope::as_str);
            table
                .insert((contract.client_id.as_str(), contract.api.as_str()), scopes)
                .map_err(db_error)?;
        }
        txn.commit().map_err(db_error)?;
        self.mirror.grant(contract.clone());
        Ok(())
    }

    /// Removes a client's contract for `api`. Returns whether there was one.
    pub fn revoke(&self, client_id: &str, api: &str) -> Result<bool, ContractError> {
        let txn = self.db.begin_write().map_err(db_error)?;
        let removed = {
            let mut table = txn.open_table(CONTRACTS).map_err(db_error)?;
            table.remove((client_id, api)).map_err(db_error)?.is_some()
        };
        txn.commit().map_err(db_error)?;
        self.mirror.revoke(client_id, api);
        Ok(removed)
    }

    /// Replaces every contract with `set` in one transaction: readers see the old set or the
    /// new one, never a mix, and a crash keeps the old one.
    pub fn replace_all(&self, set: &ContractSet) -> Result<(), ContractError> {
        let txn = self.db.begin_write().map_err(db_error)?;
        {
            let mut table = txn.open_table(CONTRACTS).map_err(db_error)?;
            table.retain(|_, _| false).map_err(db_error)?;
            for c in set.iter() {
                let scopes = c.scopes.as_ref().map(Scope::as_str);
                table
                    .insert((c.client_id.as_str(), c.api.as_str()), scopes)
                    .map_err(db_error)?;
            }
        }
        txn.commit().map_err(db_error)?;
        self.mirror.replace_all(set);
        Ok(())
    }

    /// Every contract, in (client id, API) order.
    pub fn export(&self) -> Result<ContractSet, ContractError> {
        let txn = self.db.begin_read().map_err(db_error)?;
        let table = txn.open_table(CONTRACTS).map_err(db_error)?;
        let mut set = ContractSet::new();
        for row in table.iter().map_err(db_error)? {
            let (key, value) = row.map_err(db_error)?;
            let (client_id, api) = key.value();
            set.insert(Contract {
                client_id: client_id.to_owned(),
                api: api.to_owned(),
                scopes: value.value().map(Scope::parse),
            });
        }
        Ok(set)
    }
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
