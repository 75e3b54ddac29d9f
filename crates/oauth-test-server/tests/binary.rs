//! The `oauth-test-server` program as a newcomer runs it: started as a process, its printed
//! settings read back, and a token obtained with them over HTTPS trusting only the printed CA.
#![allow(clippy::unwrap_used, clippy::expect_used, clippy::panic)]

use std::collections::HashMap;
use std::io::{BufRead as _, BufReader};
use std::process::{Child, Command, Stdio};

/// The running program; killed when dropped.
struct Running(Child);

impl Drop for Running {
    fn drop(&mut self) {
        let _ = self.0.kill();
        let _ = self.0.wait();
    }
}

/// Starts the program with `args` and reads its `export NAME=VALUE` lines (every line it
/// prints must be a comment or an export, so that a shell can source the output).
fn start(args: &[&str]) -> (Running, HashMap<String, String>) {
    let mut child = Command::new(env!("CARGO_BIN_EXE_oauth-test-server"))
        .args(args)
        .stdout(Stdio::piped())
        .stderr(Stdio::inherit())
        .spawn()
        .unwrap();
    let stdout = child.stdout.take().unwrap();
    let running = Running(child);
    let mut vars = HashMap::new();
    for line in BufReader::new(stdout).lines() {
        let line = line.unwrap();
        if line.starts_with('#') {
            continue;
        }
        let (name, value) = line
            .strip_prefix("export ")
            .and_then(|rest| rest.split_once('='))
            .unwrap_or_else(|| panic!("not a shell line: {line:?}"));
        vars.insert(name.to_owned(), value.trim_matches('\'').to_owned());
        if name == "OAUTH_API_URL" {
            break;
        }
    }
    (running, vars)
}

fn agent(ca_file: &str) -> ureq::Agent {
    use ureq::tls::{Certificate, RootCerts, TlsConfig};
    let pem = std::fs::read(ca_file).unwrap();
    let ca = Certificate::from_pem(&pem).unwrap();
    ureq::Agent::config_builder()
        .http_status_as_error(false)
        .tls_config(
            TlsConfig::builder()
                .root_certs(RootCerts::new_with_certs(&[ca]))
                .build(),
        )
        .build()
        .into()
}

fn basic(id: &str, secret: &str) -> String {
    use base64::Engine as _;
    let pair = format!("{id}:{secret}");
    format!(
        "Basic {}",
        base64::engine::general_purpose::STANDARD.encode(pair)
    )
}

#[test]
fn the_printed_settings_get_a_token_and_call_the_api() {
    let dir = std::env::temp_dir().join(format!("oauth-test-server-bin-{}", std::process::id()));
    let _ = std::fs::remove_dir_all(&dir);
    std::fs::create_dir_all(&dir).unwrap();
    let ca_path = dir.join("ca.pem");
    let (_server, vars) = start(&[
        "--ca-file",
        ca_path.to_str().unwrap(),
        "--client-id",
        "cli-app",
    ]);
    let token_url = &vars["OAUTH_TOKEN_URL"];
    assert!(token_url.starts_with("https://127.0.0.1:"), "{token_url}");
    assert_eq!(
        vars["OAUTH_TOKEN_URL"],
        format!("{}/token", vars["OAUTH_ISSUER"])
    );
    assert_eq!(vars["OAUTH_CLIENT_ID"], "cli-app");
    assert_eq!(
        vars["OAUTH_CA_FILE"],
        std::path::absolute(&ca_path).unwrap().to_str().unwrap()
    );
    let secret = &vars["OAUTH_CLIENT_SECRET"];
    assert_eq!(secret.len(), 32, "a 128-bit random secret");

    // Trusting only the printed CA: the printed client gets a token, the API accepts it, and
    // the same client may introspect it (what a gateway in front of an API does).
    let agent = agent(&vars["OAUTH_CA_FILE"]);
    let mut answer = agent
        .post(token_url)
        .header("authorization", &basic("cli-app", secret))
        .content_type("application/x-www-form-urlencoded")
        .send("grant_type=client_credentials&scope=orders%3Aread")
        .unwrap();
    let body = answer.body_mut().read_to_string().unwrap();
    assert_eq!(answer.status(), 200, "{body}");
    let json: serde_json::Value = serde_json::from_str(&body).unwrap();
    let token = json["access_token"].as_str().unwrap();
    let api = agent
        .get(&vars["OAUTH_API_URL"])
        .header("authorization", &format!("Bearer {token}"))
        .call()
        .unwrap();
    assert_eq!(api.status(), 200);
    let mut introspected = agent
        .post(&vars["OAUTH_INTROSPECTION_URL"])
        .header("authorization", &basic("cli-app", secret))
        .content_type("application/x-www-form-urlencoded")
        .send(format!("token={token}"))
        .unwrap();
    let info: serde_json::Value =
        serde_json::from_str(&introspected.body_mut().read_to_string().unwrap()).unwrap();
    assert_eq!(info["active"], true, "{info}");
    assert_eq!(info["client_id"], "cli-app");

    // Another secret is refused: the printed one is the one registered.
    let refused = agent
        .post(token_url)
        .header("authorization", &basic("cli-app", "test-secret"))
        .content_type("application/x-www-form-urlencoded")
        .send("grant_type=client_credentials")
        .unwrap();
    assert_eq!(refused.status(), 401);
    let _ = std::fs::remove_dir_all(&dir);
}

#[test]
fn each_run_has_its_own_secret_and_ca_file() {
    let (_a, first) = start(&[]);
    let (_b, second) = start(&[]);
    assert_ne!(first["OAUTH_CLIENT_SECRET"], second["OAUTH_CLIENT_SECRET"]);
    assert_ne!(first["OAUTH_CA_FILE"], second["OAUTH_CA_FILE"]);
    for vars in [&first, &second] {
        let pem = std::fs::read_to_string(&vars["OAUTH_CA_FILE"]).unwrap();
        assert!(pem.starts_with("-----BEGIN CERTIFICATE-----"), "{pem}");
    }
}

#[test]
fn help_version_and_bad_arguments() {
    let run = |args: &[&str]| {
        Command::new(env!("CARGO_BIN_EXE_oauth-test-server"))
            .args(args)
            .output()
            .unwrap()
    };
    let help = run(&["--help"]);
    assert!(help.status.success());
    let text = String::from_utf8(help.stdout).unwrap();
    assert!(
        text.contains("--port PORT") && text.contains("OAUTH_CLIENT_SECRET"),
        "{text}"
    );
    let version = run(&["--version"]);
    assert!(version.status.success());
    assert_eq!(
        String::from_utf8(version.stdout).unwrap().trim(),
        format!("oauth-test-server {}", env!("CARGO_PKG_VERSION"))
    );
    let bad = run(&["--port", "http"]);
    assert_eq!(bad.status.code(), Some(2));
    assert!(
        String::from_utf8(bad.stderr)
            .unwrap()
            .contains("not a port number")
    );
}
