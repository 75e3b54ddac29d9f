//! `oauth` against a server that echoes every request into its errors (as an OAuth error
//! description and as a plain-text page): every command that sends a credential — token with
//! each grant, the device flow, introspect, revoke, register — prints none of what it sent, in
//! any form, on stdout or stderr, with `-v` (DEBUG logs on stderr) on.
#![allow(clippy::unwrap_used, clippy::expect_used, clippy::panic)]

use std::process::{Command, Stdio};

use base64::Engine as _;
use oauth_test_server::{Behaviour, EchoStyle, TestServer};

const SECRET: &str = "Echo~secret: with+spaces&more/\"q\"";
const PASSWORD: &str = "P@ss word+%&:~echoed";
const REFRESH: &str = "refresh-token-echoed-0123456789";
const TOKEN: &str = "token-to-introspect-echoed-0123";
const INITIAL: &str = "initial-access-token-echoed-0123";

fn forms(secret: &str) -> Vec<String> {
    let b64 = |s: &str| base64::engine::general_purpose::STANDARD.encode(s);
    let mut encoded = String::new();
    for byte in secret.bytes() {
        match byte {
            b'a'..=b'z' | b'A'..=b'Z' | b'0'..=b'9' | b'-' | b'.' | b'_' | b'*' => {
                encoded.push(byte as char)
            }
            b' ' => encoded.push('+'),
            _ => encoded.push_str(&format!("%{byte:02X}")),
        }
    }
    let json = serde_json::to_string(secret).unwrap();
    vec![
        secret.to_owned(),
        encoded.clone(),
        encoded.replace('+', "%20"),
        json.trim_matches('"').to_owned(),
        b64(&format!("test-client:{secret}")),
        b64(&format!("test-client:{encoded}")),
    ]
}

#[test]
fn no_command_prints_what_an_echoing_server_sent_back() {
    let mut redacted = 0;
    let mut runs = 0;
    for style in [EchoStyle::OAuthError, EchoStyle::Page] {
        let server = TestServer::start(Behaviour {
            echo_all: Some(style),
            ..Behaviour::default()
        })
        .unwrap();
        let dir =
            std::env::temp_dir().join(format!("oauth-cli-echo-{}-{style:?}", std::process::id()));
        std::fs::create_dir_all(&dir).unwrap();
        let ca = dir.join("ca.pem");
        std::fs::write(&ca, server.ca_pem()).unwrap();
        let ca = ca.display().to_string();
        let client = |auth: &str| -> Vec<String> {
            [
                "--token-url",
                &server.url("/token"),
                "--client-id",
                "test-client",
                "--client-secret-env",
                "CLIENT_SECRET",
                "--auth",
                auth,
                "--ca-file",
                &ca,
            ]
            .map(str::to_owned)
            .to_vec()
        };
        let device_url = server.url("/device_authorization");
        let introspect_url = server.url("/introspect");
        let revoke_url = server.url("/revoke");
        let register_url = server.url("/register");
        let mut commands: Vec<Vec<String>> = Vec::new();
        for auth in ["basic", "post"] {
            let with = |args: &[&str]| {
                let mut v: Vec<String> = args.iter().map(|s| (*s).to_owned()).collect();
                v.extend(client(auth));
                v
            };
            commands.push(with(&["token"]));
            commands.push(with(&[
                "token",
                "--grant",
                "password",
                "--username",
                "alice",
                "--password-env",
                "PASSWORD",
            ]));
            commands.push(with(&[
                "token",
                "--grant",
                "refresh-token",
                "--refresh-token-env",
                "REFRESH",
            ]));
            commands.push(with(&["login", "--device", "--device-url", &device_url]));
            commands.push(with(&[
                "introspect",
                "--introspect-url",
                &introspect_url,
                TOKEN,
            ]));
            commands.push(with(&["revoke", "--revoke-url", &revoke_url, TOKEN]));
        }
        commands.push(
            [
                "register",
                "--registration-url",
                &register_url,
                "--initial-token-env",
                "INITIAL",
                "--name",
                "echo",
                "--ca-file",
                &ca,
            ]
            .map(str::to_owned)
            .to_vec(),
        );
        for args in commands {
            let out = Command::new(env!("CARGO_BIN_EXE_oauth"))
                .env_clear()
                .env("PATH", std::env::var_os("PATH").unwrap_or_default())
                .env("OAUTH_CACHE_DIR", dir.join("cache"))
                .env("OAUTH_CONFIG", dir.join("config.toml"))
                .env("CLIENT_SECRET", SECRET)
                .env("PASSWORD", PASSWORD)
                .env("REFRESH", REFRESH)
                .env("INITIAL", INITIAL)
                .arg("-v")
                .args(&args)
                .stdin(Stdio::null())
                .output()
                .unwrap();
            let shown = format!(
                "{}\n{}",
                String::from_utf8_lossy(&out.stdout),
                String::from_utf8_lossy(&out.stderr)
            );
            assert!(!out.status.success(), "{args:?} succeeded: {shown}");
            runs += 1;
            redacted += usize::from(shown.contains("<redacted>"));
            for secret in [SECRET, PASSWORD, REFRESH, TOKEN, INITIAL] {
                for form in forms(secret) {
                    assert!(
                        !shown.contains(&form),
                        "{args:?}: {form:?} printed:\n{shown}"
                    );
                }
            }
        }
        let _ = std::fs::remove_dir_all(&dir);
    }
    // Not vacuous: the server's echo reached the output, scrubbed.
    assert!(redacted * 10 >= runs * 8, "{redacted} of {runs}");
}
