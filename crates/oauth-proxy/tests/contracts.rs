//! `oauth-gateway contracts add|remove|list|import` run as processes: against the redb file
//! beside the configuration (wherever the command runs from), and against a running gateway,
//! which applies each change to the next request through its admin socket.
#![allow(clippy::unwrap_used, clippy::expect_used, clippy::panic)]

mod support;

use std::path::Path;
use std::process::{Command, Output};

use oauth_test_server::{Behaviour, TestServer};
use support::{HOUR, Proxy, Upstream, config, get, scratch, secrets};

/// `oauth-gateway ARGS`, run from `cwd`.
fn gateway(cwd: &Path, args: &[&str]) -> Output {
    Command::new(env!("CARGO_BIN_EXE_oauth-gateway"))
        .args(args)
        .current_dir(cwd)
        .env_remove("RUST_LOG")
        .output()
        .unwrap()
}

fn stdout(out: &Output) -> String {
    String::from_utf8_lossy(&out.stdout).into_owned()
}

fn stderr(out: &Output) -> String {
    String::from_utf8_lossy(&out.stderr).into_owned()
}

/// `oauth-gateway contracts --config CONFIG ARGS` from `cwd`; asserts success.
fn contracts(cwd: &Path, config: &Path, args: &[&str]) -> String {
    let mut all = vec!["contracts", "--config", config.to_str().unwrap()];
    all.extend_from_slice(args);
    let out = gateway(cwd, &all);
    assert!(out.status.success(), "{args:?}: {}", stderr(&out));
    stdout(&out)
}

const MINIMAL: &str = r#"listen = "127.0.0.1:0"
upstream = "http://127.0.0.1:9"
[introspection]
endpoint = "https://127.0.0.1:1/introspect"
client_id = "gateway"
client_secret_env = "GATEWAY_SECRET"
[[route]]
prefix = "/orders"
api = "orders"
"#;

#[test]
fn help_and_version() {
    let here = scratch("help");
    let help = gateway(&here, &["--help"]);
    assert!(help.status.success());
    let text = stdout(&help);
    assert!(
        text.contains("--config") && text.contains("contracts"),
        "{text}"
    );
    let version = gateway(&here, &["--version"]);
    assert!(version.status.success());
    assert_eq!(
        stdout(&version).trim(),
        format!("oauth-gateway {}", env!("CARGO_PKG_VERSION"))
    );
    let help = gateway(&here, &["contracts", "import", "--help"]);
    assert!(stdout(&help).contains("\"client_id\""), "{}", stdout(&help));
    // No configuration: a usage error naming what is missing, not a start.
    let bare = gateway(&here, &[]);
    assert_eq!(bare.status.code(), Some(2));
    assert!(stderr(&bare).contains("--config"), "{}", stderr(&bare));
}

#[test]
fn contracts_round_trip_in_the_file_beside_the_configuration() {
    let dir = scratch("contracts-file");
    let elsewhere = scratch("contracts-cwd");
    let config = dir.join("gateway.toml");
    std::fs::write(&config, MINIMAL).unwrap();

    let added = contracts(
        &elsewhere,
        &config,
        &["add", "app-1", "orders", "--scope", "orders:read"],
    );
    assert!(added.contains("no gateway running"), "{added}");
    contracts(&elsewhere, &config, &["add", "app-2", "files"]);
    // The file is beside the configuration, not in the directory the command ran in.
    assert!(dir.join("contracts.redb").is_file());
    assert!(!elsewhere.join("contracts.redb").exists());

    let listed = contracts(&elsewhere, &config, &["list"]);
    assert_eq!(
        listed,
        "app-1\torders\torders:read\t(unlimited)\napp-2\tfiles\t(any scope)\t(unlimited)\n"
    );
    // `--config` may come before the command too.
    let before = gateway(
        &elsewhere,
        &["--config", config.to_str().unwrap(), "contracts", "list"],
    );
    assert_eq!(stdout(&before), listed, "{}", stderr(&before));
    let json: serde_json::Value =
        serde_json::from_str(&contracts(&elsewhere, &config, &["list", "--json"])).unwrap();
    assert_eq!(
        json["contracts"][0]["scopes"],
        serde_json::json!(["orders:read"])
    );

    contracts(&elsewhere, &config, &["remove", "app-2", "files"]);
    let again = gateway(
        &elsewhere,
        &[
            "contracts",
            "--config",
            config.to_str().unwrap(),
            "remove",
            "app-2",
            "files",
        ],
    );
    assert_eq!(again.status.code(), Some(2));
    assert!(
        stderr(&again).contains("no such contract"),
        "{}",
        stderr(&again)
    );

    // import replaces every contract; a malformed file changes nothing.
    let file = elsewhere.join("export.json");
    std::fs::write(
        &file,
        r#"{"contracts": [{"client_id": "app-3", "api": "orders", "scopes": ["orders:read", "orders:write"]}]}"#,
    )
    .unwrap();
    contracts(&elsewhere, &config, &["import", "export.json"]);
    let listed = contracts(&elsewhere, &config, &["list"]);
    assert_eq!(
        listed,
        "app-3\torders\torders:read orders:write\t(unlimited)\n"
    );
    std::fs::write(&file, r#"{"contracts": [{"client_id": ""}]}"#).unwrap();
    let bad = gateway(
        &elsewhere,
        &[
            "contracts",
            "--config",
            config.to_str().unwrap(),
            "import",
            "export.json",
        ],
    );
    assert_eq!(bad.status.code(), Some(2));
    assert!(stderr(&bad).contains("client_id"), "{}", stderr(&bad));
    assert_eq!(contracts(&elsewhere, &config, &["list"]), listed);

    // A relative `path` is read from the configuration's directory too.
    let custom = dir.join("custom.toml");
    std::fs::write(
        &custom,
        format!("{MINIMAL}[contracts]\nstore = \"redb\"\npath = \"data/c.redb\"\n"),
    )
    .unwrap();
    std::fs::create_dir_all(dir.join("data")).unwrap();
    contracts(&elsewhere, &custom, &["add", "app-9", "orders"]);
    assert!(dir.join("data/c.redb").is_file());
}

#[test]
fn a_running_gateway_applies_each_change_to_the_next_request() {
    let server = TestServer::start(Behaviour::default()).unwrap();
    let upstream = Upstream::start();
    let dir = scratch("contracts-live");
    let elsewhere = scratch("contracts-live-cwd");
    let proxy = Proxy::start(&config(&server, upstream.port, "", ""), &dir, &secrets(&[]));
    proxy.wait_for_log(&["admin socket ready", "contracts.redb.admin.sock"]);
    let socket = dir.join("contracts.redb.admin.sock");
    {
        use std::os::unix::fs::PermissionsExt as _;
        let mode = std::fs::metadata(&socket).unwrap().permissions().mode();
        assert_eq!(mode & 0o777, 0o600);
    }
    let config = proxy.config.clone();
    let token = server.issue_access_token("app-1", "orders:read", HOUR);
    let status = || get(&proxy.url("/orders/1"), Some(&token)).0;
    assert_eq!(status(), 403, "no contract yet");

    let added = contracts(
        &elsewhere,
        &config,
        &["add", "app-1", "orders", "--scope", "orders:read"],
    );
    assert!(added.contains("applied by the running gateway"), "{added}");
    assert_eq!(status(), 200, "{}", proxy.log_text());
    proxy.wait_for_log(&["contract added (admin socket)", "app-1"]);

    let removed = contracts(&elsewhere, &config, &["remove", "app-1", "orders"]);
    assert!(
        removed.contains("applied by the running gateway"),
        "{removed}"
    );
    assert_eq!(status(), 403);

    let file = elsewhere.join("export.json");
    std::fs::write(
        &file,
        r#"{"contracts": [{"client_id": "app-1", "api": "orders"}]}"#,
    )
    .unwrap();
    contracts(&elsewhere, &config, &["import", file.to_str().unwrap()]);
    assert_eq!(status(), 200);
    assert_eq!(
        contracts(&elsewhere, &config, &["list"]),
        "app-1\torders\t(any scope)\t(unlimited)\n"
    );

    // Killed (no clean shutdown): its socket stays behind, and the commands use the file; the
    // contract was written to it, and a new gateway serves it.
    drop(proxy);
    assert!(socket.exists());
    let listed = contracts(&elsewhere, &config, &["list"]);
    assert_eq!(listed, "app-1\torders\t(any scope)\t(unlimited)\n");
    let added = contracts(&elsewhere, &config, &["add", "app-2", "orders"]);
    assert!(added.contains("no gateway running"), "{added}");
    let again = Proxy::start(
        &support::config(&server, upstream.port, "", ""),
        &dir,
        &secrets(&[]),
    );
    again.wait_for_log(&["admin socket ready"]);
    assert_eq!(get(&again.url("/orders/1"), Some(&token)).0, 200);
    let added = contracts(&elsewhere, &config, &["add", "app-3", "orders"]);
    assert!(added.contains("applied by the running gateway"), "{added}");
}

/// One node with its redb file, no Redis: a tier added from the command line to a running
/// gateway is enforced exactly (50 of 300 requests from 20 threads), with 429, `Retry-After`
/// and the `RateLimit` fields; `list` shows it.
#[test]
fn a_tier_added_from_the_command_line_is_enforced_by_one_node() {
    let server = TestServer::start(Behaviour::default()).unwrap();
    let upstream = Upstream::start();
    let dir = scratch("tier-single");
    let elsewhere = scratch("tier-single-cwd");
    let proxy = Proxy::start(&config(&server, upstream.port, "", ""), &dir, &secrets(&[]));
    proxy.wait_for_log(&["admin socket ready"]);
    let config = proxy.config.clone();
    let added = contracts(
        &elsewhere,
        &config,
        &["add", "app-1", "orders", "--tier", "silver=50/10"],
    );
    assert!(added.contains("applied by the running gateway"), "{added}");
    assert_eq!(
        contracts(&elsewhere, &config, &["list"]),
        "app-1\torders\t(any scope)\tsilver=50/10\n"
    );
    let bad = gateway(
        &elsewhere,
        &[
            "contracts",
            "--config",
            config.to_str().unwrap(),
            "add",
            "app-1",
            "orders",
            "--tier",
            "silver=0/10",
        ],
    );
    assert!(!bad.status.success());
    assert!(stderr(&bad).contains("--tier"), "{}", stderr(&bad));

    let token = server.issue_access_token("app-1", "orders:read", HOUR);
    let (ok, limited) = (
        std::sync::atomic::AtomicUsize::new(0),
        std::sync::atomic::AtomicUsize::new(0),
    );
    std::thread::scope(|s| {
        for _ in 0..20 {
            let (ok, limited, proxy, token) = (&ok, &limited, &proxy, &token);
            s.spawn(move || {
                for _ in 0..15 {
                    let response = support::agent()
                        .get(&proxy.url("/orders/1"))
                        .header("authorization", &format!("Bearer {token}"))
                        .call()
                        .unwrap();
                    let counter = match response.status().as_u16() {
                        200 => {
                            assert!(response.headers().contains_key("ratelimit"));
                            ok
                        }
                        429 => {
                            let h = response.headers();
                            assert!(h.contains_key("retry-after"));
                            assert_eq!(h["ratelimit-policy"], "\"silver-0\";q=50;w=10");
                            limited
                        }
                        other => panic!("status {other}"),
                    };
                    counter.fetch_add(1, std::sync::atomic::Ordering::SeqCst);
                }
            });
        }
    });
    assert_eq!((ok.into_inner(), limited.into_inner()), (50, 250));
}
