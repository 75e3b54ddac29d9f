//! Managing the redb contracts without writing Rust: `oauth-gateway contracts add|remove|list|
//! import`, and the admin socket through which a running gateway applies those changes.
//!
//! redb lets one process open a file at a time, and a running gateway holds its contracts file
//! open. So the gateway listens on a Unix domain socket beside that file (`<file>.admin.sock`,
//! mode 0600, only connections from the file's owner or root answered); a `contracts` command
//! sends its change there when a gateway is running, and the gateway writes it to the file and
//! its in-memory copy in one step: the next request sees it, and it survives a restart. When no
//! gateway is running, the command opens the file itself. (On platforms without Unix sockets,
//! the commands work while the gateway is stopped.)
//!
//! The exchange on the socket: the command writes one JSON request and shuts down its write
//! side; the gateway answers one JSON object and closes. Requests are
//! `{"op": "add" | "import", "contracts": [...]}` (the `ContractSet` JSON form),
//! `{"op": "remove", "client_id": "…", "api": "…"}` and `{"op": "list"}`; answers are
//! `{"ok": true, …}` or `{"ok": false, "error": "…"}`. Contracts hold no secret.

// Without Unix sockets only the commands' direct path to the file is used.
#![cfg_attr(not(unix), allow(dead_code))]

use std::path::{Path, PathBuf};

use oauth_gateway::{Contract, ContractSet, RedbContracts};
use serde_json::{Value, json};

/// The largest request the admin socket reads (an import of many contracts).
#[cfg(unix)]
const MAX_REQUEST: u64 = 16 << 20;

/// The admin socket of the gateway that holds `db` open.
pub(crate) fn socket_path(db: &Path) -> PathBuf {
    let mut name = db.as_os_str().to_owned();
    name.push(".admin.sock");
    PathBuf::from(name)
}

/// What a `contracts` command asks for.
#[derive(Clone, Debug)]
pub(crate) enum Change {
    /// Adds or replaces these contracts.
    Add(ContractSet),
    /// Removes one client's contract for one API.
    Remove { client_id: String, api: String },
    /// Replaces every contract with these.
    Import(ContractSet),
    /// Lists them.
    List,
}

impl Change {
    fn to_request(&self) -> Vec<u8> {
        let with_contracts = |op: &str, set: &ContractSet| {
            let mut value: Value = serde_json::from_slice(&set.to_json()).unwrap_or(Value::Null);
            if let Some(object) = value.as_object_mut() {
                object.insert("op".into(), op.into());
            }
            value
        };
        let value = match self {
            Self::Add(set) => with_contracts("add", set),
            Self::Import(set) => with_contracts("import", set),
            Self::Remove { client_id, api } => {
                json!({"op": "remove", "client_id": client_id, "api": api})
            }
            Self::List => json!({"op": "list"}),
        };
        value.to_string().into_bytes()
    }

    fn from_request(bytes: &[u8]) -> Result<Self, String> {
        let value: Value =
            serde_json::from_slice(bytes).map_err(|e| format!("not a JSON request: {e}"))?;
        let text = |name: &str| {
            value
                .get(name)
                .and_then(Value::as_str)
                .filter(|s| !s.is_empty())
                .map(str::to_owned)
                .ok_or_else(|| format!("\"{name}\" must be a non-empty string"))
        };
        let set = || ContractSet::from_json(bytes).map_err(|e| e.to_string());
        match value.get("op").and_then(Value::as_str) {
            Some("add") => Ok(Self::Add(set()?)),
            Some("import") => Ok(Self::Import(set()?)),
            Some("remove") => Ok(Self::Remove {
                client_id: text("client_id")?,
                api: text("api")?,
            }),
            Some("list") => Ok(Self::List),
            _ => Err("\"op\" must be add, remove, import or list".into()),
        }
    }
}

/// What a change did.
#[derive(Clone, Debug, PartialEq, Eq)]
pub(crate) enum Outcome {
    /// Contracts were added or replaced (how many).
    Added(usize),
    /// The contract was removed (true) or there was none (false).
    Removed(bool),
    /// Every contract was replaced by this many.
    Imported(usize),
    /// The contracts.
    Listed(ContractSet),
}

impl Outcome {
    fn to_answer(&self) -> Value {
        match self {
            Self::Added(n) => json!({"ok": true, "added": n}),
            Self::Removed(removed) => json!({"ok": true, "removed": removed}),
            Self::Imported(n) => json!({"ok": true, "imported": n}),
            Self::Listed(set) => {
                let mut value: Value =
                    serde_json::from_slice(&set.to_json()).unwrap_or(Value::Null);
                if let Some(object) = value.as_object_mut() {
                    object.insert("ok".into(), true.into());
                }
                value
            }
        }
    }

    fn from_answer(change: &Change, bytes: &[u8]) -> Result<Self, String> {
        let value: Value = serde_json::from_slice(bytes)
            .map_err(|_| "the gateway's admin socket answered something else than JSON")?;
        if value.get("ok") != Some(&Value::Bool(true)) {
            let error = value
                .get("error")
                .and_then(Value::as_str)
                .unwrap_or("no reason given");
            return Err(format!("the running gateway refused the change: {error}"));
        }
        let count = |name: &str| {
            value
                .get(name)
                .and_then(Value::as_u64)
                .and_then(|n| usize::try_from(n).ok())
                .ok_or_else(|| format!("the gateway's answer has no \"{name}\""))
        };
        Ok(match change {
            Change::Add(_) => Self::Added(count("added")?),
            Change::Import(_) => Self::Imported(count("imported")?),
            Change::Remove { .. } => Self::Removed(value.get("removed") == Some(&true.into())),
            Change::List => Self::Listed(ContractSet::from_json(bytes).map_err(|e| e.to_string())?),
        })
    }
}

/// Applies `change` to an open store: what both the gateway (for its socket) and a command
/// (with the file to itself) run.
pub(crate) fn apply(store: &RedbContracts, change: &Change) -> Result<Outcome, String> {
    let db = |e: oauth_gateway::ContractError| e.to_string();
    match change {
        Change::Add(set) => {
            for contract in set.iter() {
                store.grant(contract).map_err(db)?;
            }
            Ok(Outcome::Added(set.len()))
        }
        Change::Remove { client_id, api } => store
            .revoke(client_id, api)
            .map(Outcome::Removed)
            .map_err(db),
        Change::Import(set) => store
            .replace_all(set)
            .map(|()| Outcome::Imported(set.len()))
            .map_err(db),
        Change::List => store.export().map(Outcome::Listed).map_err(db),
    }
}

/// How a command's change was carried out.
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
pub(crate) enum Route {
    /// Through a running gateway's admin socket.
    RunningGateway,
    /// In the file directly (no gateway running).
    File,
}

/// Carries out `change` on the contracts in `db`: through the admin socket of the gateway
/// that holds the file open, or in the file itself when none does.
pub(crate) fn run(db: &Path, change: &Change) -> Result<(Outcome, Route), String> {
    #[cfg(unix)]
    if let Some(answer) = send(&socket_path(db), change)? {
        return Ok((answer, Route::RunningGateway));
    }
    let store = RedbContracts::open(db).map_err(|e| {
        let text = e.to_string();
        if text.contains("already open") {
            format!(
                "{}: the file is open in another process, and no gateway answers on {} (a \
                 gateway holds the file while it runs; its admin socket carries changes)",
                db.display(),
                socket_path(db).display()
            )
        } else {
            format!("{}: {text}", db.display())
        }
    })?;
    apply(&store, change).map(|outcome| (outcome, Route::File))
}

/// Sends `change` to a gateway's admin socket; `None` if no gateway listens there.
#[cfg(unix)]
fn send(socket: &Path, change: &Change) -> Result<Option<Outcome>, String> {
    use std::io::{ErrorKind, Read as _, Write as _};
    use std::os::unix::net::UnixStream;
    let mut stream = match UnixStream::connect(socket) {
        Ok(stream) => stream,
        // No socket, or one a stopped gateway left behind.
        Err(e) if matches!(e.kind(), ErrorKind::NotFound | ErrorKind::ConnectionRefused) => {
            return Ok(None);
        }
        Err(e) => return Err(format!("{}: {e}", socket.display())),
    };
    let timeout = Some(std::time::Duration::from_secs(30));
    let io = |e: std::io::Error| format!("the gateway's admin socket {}: {e}", socket.display());
    stream.set_read_timeout(timeout).map_err(io)?;
    stream.set_write_timeout(timeout).map_err(io)?;
    stream.write_all(&change.to_request()).map_err(io)?;
    stream.shutdown(std::net::Shutdown::Write).map_err(io)?;
    let mut answer = Vec::new();
    stream
        .take(MAX_REQUEST)
        .read_to_end(&mut answer)
        .map_err(io)?;
    Outcome::from_answer(change, &answer).map(Some)
}

/// The running gateway's side: listens on the admin socket beside `db` until the gateway
/// stops, then removes it.
#[cfg(unix)]
pub(crate) struct Listener {
    path: PathBuf,
}

#[cfg(unix)]
impl Listener {
    /// Binds the admin socket for the contracts in `db` (which this process holds open, so a
    /// socket file already there was left by a gateway that stopped without removing it).
    pub(crate) fn bind(db: &Path, store: std::sync::Arc<RedbContracts>) -> Result<Self, String> {
        use std::os::unix::fs::{FileTypeExt as _, MetadataExt as _, PermissionsExt as _};
        let path = socket_path(db);
        let shown = path.display().to_string();
        match std::fs::symlink_metadata(&path) {
            Ok(meta) if meta.file_type().is_socket() => std::fs::remove_file(&path)
                .map_err(|e| format!("admin socket {shown}: a stale one cannot be removed: {e}"))?,
            Ok(_) => {
                return Err(format!(
                    "admin socket {shown}: something else than a socket is there"
                ));
            }
            Err(_) => {}
        }
        let listener = tokio::net::UnixListener::bind(&path)
            .map_err(|e| format!("admin socket {shown}: {e}"))?;
        std::fs::set_permissions(&path, std::fs::Permissions::from_mode(0o600))
            .map_err(|e| format!("admin socket {shown}: {e}"))?;
        // The socket is this process's file: its owner is the user the gateway runs as.
        let owner = std::fs::metadata(&path)
            .map(|m| m.uid())
            .map_err(|e| format!("admin socket {shown}: {e}"))?;
        tokio::spawn(accept(listener, store, owner));
        Ok(Self { path })
    }

    /// Where it listens.
    pub(crate) fn path(&self) -> &Path {
        &self.path
    }
}

#[cfg(unix)]
impl Drop for Listener {
    fn drop(&mut self) {
        let _ = std::fs::remove_file(&self.path);
    }
}

#[cfg(unix)]
async fn accept(
    listener: tokio::net::UnixListener,
    store: std::sync::Arc<RedbContracts>,
    owner: u32,
) {
    loop {
        let stream = match listener.accept().await {
            Ok((stream, _)) => stream,
            Err(e) => {
                tracing::warn!(error = %e, "admin socket: accept failed");
                tokio::time::sleep(std::time::Duration::from_millis(100)).await;
                continue;
            }
        };
        // Only the gateway's own user (or root) may change contracts, whatever the file mode.
        match stream.peer_cred() {
            Ok(cred) if cred.uid() == owner || cred.uid() == 0 => {}
            Ok(cred) => {
                tracing::warn!(
                    uid = cred.uid(),
                    "admin socket: connection from another user refused"
                );
                continue;
            }
            Err(e) => {
                tracing::warn!(error = %e, "admin socket: peer unknown; connection refused");
                continue;
            }
        }
        tokio::spawn(serve(stream, std::sync::Arc::clone(&store)));
    }
}

#[cfg(unix)]
async fn serve(stream: tokio::net::UnixStream, store: std::sync::Arc<RedbContracts>) {
    use tokio::io::{AsyncReadExt as _, AsyncWriteExt as _};
    let (read, mut write) = stream.into_split();
    let mut request = Vec::new();
    let read = tokio::time::timeout(
        std::time::Duration::from_secs(30),
        read.take(MAX_REQUEST).read_to_end(&mut request),
    )
    .await;
    let answer = match read {
        Ok(Ok(_)) => match Change::from_request(&request) {
            Ok(change) => {
                let applied = tokio::task::spawn_blocking(move || {
                    let outcome = apply(&store, &change);
                    (change, outcome)
                })
                .await;
                match applied {
                    Ok((change, Ok(outcome))) => {
                        log_change(&change, &outcome);
                        outcome.to_answer()
                    }
                    Ok((_, Err(e))) => json!({"ok": false, "error": e}),
                    Err(_) => json!({"ok": false, "error": "the change did not complete"}),
                }
            }
            Err(e) => json!({"ok": false, "error": e}),
        },
        Ok(Err(e)) => json!({"ok": false, "error": format!("reading the request: {e}")}),
        Err(_) => json!({"ok": false, "error": "the request did not arrive in time"}),
    };
    let _ = write.write_all(answer.to_string().as_bytes()).await;
    let _ = write.shutdown().await;
}

#[cfg(unix)]
fn log_change(change: &Change, outcome: &Outcome) {
    match (change, outcome) {
        (Change::Add(set), _) => {
            for c in set.iter() {
                tracing::info!(
                    client_id = c.client_id,
                    api = c.api,
                    "contract added (admin socket)"
                );
            }
        }
        (Change::Remove { client_id, api }, Outcome::Removed(removed)) => {
            tracing::info!(client_id, api, removed, "contract removed (admin socket)");
        }
        (Change::Import(set), _) => {
            tracing::info!(contracts = set.len(), "contracts replaced (admin socket)");
        }
        _ => {}
    }
}

/// One contract from the command line.
pub(crate) fn contract(client_id: String, api: String, scopes: &[String]) -> Contract {
    let contract = Contract::new(client_id, api);
    if scopes.is_empty() {
        contract
    } else {
        contract.scopes(
            scopes
                .iter()
                .flat_map(|s| s.split_whitespace().map(str::to_owned)),
        )
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    fn round_trip(change: &Change) -> Change {
        Change::from_request(&change.to_request()).unwrap()
    }

    #[test]
    fn requests_and_answers_round_trip() {
        let set: ContractSet = [
            contract(
                "app-1".into(),
                "orders".into(),
                &["orders:read orders:write".into()],
            ),
            contract("app-2".into(), "files".into(), &[]),
        ]
        .into_iter()
        .collect();
        let Change::Add(back) = round_trip(&Change::Add(set.clone())) else {
            panic!("not an add");
        };
        assert_eq!(back, set);
        let Change::Import(back) = round_trip(&Change::Import(set.clone())) else {
            panic!("not an import");
        };
        assert_eq!(back, set);
        assert!(matches!(
            round_trip(&Change::Remove { client_id: "a".into(), api: "b".into() }),
            Change::Remove { client_id, api } if client_id == "a" && api == "b"
        ));
        assert!(matches!(round_trip(&Change::List), Change::List));
        for bad in [
            &b"{}"[..],
            b"not json",
            br#"{"op":"remove","client_id":""}"#,
            br#"{"op":"add"}"#,
        ] {
            assert!(
                Change::from_request(bad).is_err(),
                "{}",
                String::from_utf8_lossy(bad)
            );
        }

        let listed = Outcome::Listed(set);
        let answer = listed.to_answer().to_string();
        assert_eq!(
            Outcome::from_answer(&Change::List, answer.as_bytes()).unwrap(),
            listed
        );
        let removed = Outcome::Removed(true).to_answer().to_string();
        let change = Change::Remove {
            client_id: "a".into(),
            api: "b".into(),
        };
        assert_eq!(
            Outcome::from_answer(&change, removed.as_bytes()).unwrap(),
            Outcome::Removed(true)
        );
        let refused = Outcome::from_answer(&Change::List, br#"{"ok":false,"error":"disk full"}"#);
        assert!(refused.unwrap_err().contains("disk full"));
    }

    #[test]
    fn the_socket_is_beside_the_file() {
        assert_eq!(
            socket_path(Path::new("/etc/gw/contracts.redb")),
            Path::new("/etc/gw/contracts.redb.admin.sock")
        );
    }
}
