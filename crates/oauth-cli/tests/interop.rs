//! `oauth` against oidc-provider (panva's OpenID Certified server): token, call, login with a
//! loopback redirect (driven without a browser) and with the device flow, decode --verify,
//! introspect, revoke, register. Ignored by a plain `cargo test`: `cargo xtask interop` runs
//! them (Node and `npm ci` needed).
#![allow(clippy::unwrap_used, clippy::expect_used, clippy::panic)]

use std::io::{BufRead as _, BufReader, Read as _, Write as _};
use std::process::{Command, Output, Stdio};

use conformance::oidc_provider::{self as interop, OidcProvider};
use conformance::{Harness as _, Setup, Ureq};

struct Cli {
    dir: std::path::PathBuf,
    p: &'static OidcProvider,
}

impl Cli {
    fn new(name: &str) -> Self {
        let p = OidcProvider::shared();
        let dir =
            std::env::temp_dir().join(format!("oauth-cli-interop-{}-{name}", std::process::id()));
        std::fs::create_dir_all(&dir).unwrap();
        std::fs::write(dir.join("ca.pem"), &p.ca_pem).unwrap();
        Self { dir, p }
    }

    fn oauth(&self) -> Command {
        let mut c = Command::new(env!("CARGO_BIN_EXE_oauth"));
        c.env_clear()
            .env("OAUTH_CACHE_DIR", self.dir.join("cache"))
            .env("OAUTH_CONFIG", self.dir.join("none.toml"))
            .env("CLIENT_SECRET", interop::SECRET)
            .env("PATH", std::env::var_os("PATH").unwrap_or_default())
            .stdin(Stdio::null());
        c
    }

    fn shared(&self) -> Vec<String> {
        vec![
            "--issuer".into(),
            self.p.issuer.clone(),
            "--ca-file".into(),
            self.dir.join("ca.pem").display().to_string(),
        ]
    }

    fn run(&self, args: &[&str]) -> Output {
        // Subcommand first, then the shared options.
        let mut c = Command::new(env!("CARGO_BIN_EXE_oauth"));
        c.env_clear()
            .env("OAUTH_CACHE_DIR", self.dir.join("cache"))
            .env("OAUTH_CONFIG", self.dir.join("none.toml"))
            .env("CLIENT_SECRET", interop::SECRET)
            .stdin(Stdio::null())
            .args(args)
            .args([
                "--issuer",
                &self.p.issuer,
                "--ca-file",
                &self.dir.join("ca.pem").display().to_string(),
            ]);
        let out = c.output().unwrap();
        assert!(!String::from_utf8_lossy(&out.stderr).contains(interop::SECRET));
        out
    }
}

fn ok(out: &Output) -> String {
    assert!(
        out.status.success(),
        "{}",
        String::from_utf8_lossy(&out.stderr)
    );
    String::from_utf8_lossy(&out.stdout).into_owned()
}

#[test]
#[ignore = "needs Node and oidc-provider: cargo xtask interop"]
fn token_decode_verify_introspect_revoke_register() {
    let cli = Cli::new("token");
    let creds = [
        "--client-id",
        "cc-basic",
        "--client-secret-env",
        "CLIENT_SECRET",
    ];
    let mut args = vec![
        "token",
        "--scope",
        "api:read",
        "--resource",
        interop::JWT_RESOURCE,
    ];
    args.extend(creds);
    let jwt = ok(&cli.run(&args)).trim().to_owned();
    // Reused from the cache.
    assert_eq!(ok(&cli.run(&args)).trim(), jwt);
    let verified = ok(&cli.run(&["decode", "--verify", &jwt]));
    assert!(verified.contains("signature: valid"), "{verified}");
    assert!(verified.contains("\"client_id\": \"cc-basic\""));

    let mut args = vec![
        "token",
        "--no-cache",
        "--scope",
        "api:read",
        "--resource",
        interop::OPAQUE_RESOURCE,
    ];
    args.extend(creds);
    let opaque = ok(&cli.run(&args)).trim().to_owned();
    let mut introspect = vec!["introspect", opaque.as_str()];
    introspect.extend(creds);
    assert!(ok(&cli.run(&introspect)).contains("\"active\": true"));
    let mut revoke = vec!["revoke", opaque.as_str()];
    revoke.extend(creds);
    ok(&cli.run(&revoke));
    let after = cli.run(&introspect);
    assert_eq!(after.status.code(), Some(1));
    assert!(String::from_utf8_lossy(&after.stdout).contains("\"active\": false"));

    let registered = ok(&cli.run(&[
        "register",
        "--name",
        "registered by oauth",
        "--grant-type",
        "client_credentials",
        "--auth-method",
        "client_secret_basic",
        "--show-secrets",
    ]));
    let value: serde_json::Value = serde_json::from_str(&registered).unwrap();
    let (id, secret) = (
        value["client_id"].as_str().unwrap(),
        value["client_secret"].as_str().unwrap(),
    );
    // The new client gets a token.
    let out = Command::new(env!("CARGO_BIN_EXE_oauth"))
        .env_clear()
        .env("OAUTH_CACHE_DIR", cli.dir.join("cache"))
        .env("NEW_SECRET", secret)
        .args([
            "token",
            "--no-cache",
            "--client-id",
            id,
            "--client-secret-env",
            "NEW_SECRET",
            "--issuer",
            &cli.p.issuer,
            "--ca-file",
            &cli.dir.join("ca.pem").display().to_string(),
        ])
        .output()
        .unwrap();
    ok(&out);
}

#[test]
#[ignore = "needs Node and oidc-provider: cargo xtask interop"]
fn login_with_a_loopback_redirect_then_call_userinfo() {
    let cli = Cli::new("login");
    let mut child = cli
        .oauth()
        .args([
            "login",
            "--no-browser",
            "--client-id",
            "cli",
            "--auth",
            "none",
            "--scope",
            "openid profile offline_access",
        ])
        .args(cli.shared())
        .stderr(Stdio::piped())
        .spawn()
        .unwrap();
    let mut stderr = BufReader::new(child.stderr.take().unwrap());
    let mut line = String::new();
    let mut seen = String::new();
    let url = loop {
        line.clear();
        assert!(
            stderr.read_line(&mut line).unwrap() > 0,
            "no URL printed: {seen}"
        );
        seen.push_str(&line);
        if line.starts_with("https://") {
            break line.trim().to_owned();
        }
    };
    // The user's browser: oidc-provider's login and consent pages, up to the loopback redirect.
    let h: Ureq = cli.p.harness();
    let location = interop::browse(&h, &cli.p.issuer, &url, "http://127.0.0.1", "judy", None)
        .expect("redirected to the loopback listener");
    let target = location.strip_prefix("http://").unwrap();
    let (host, path) = target.split_once('/').unwrap();
    let mut stream = std::net::TcpStream::connect(host).unwrap();
    write!(
        stream,
        "GET /{path} HTTP/1.1\r\nHost: {host}\r\nConnection: close\r\n\r\n"
    )
    .unwrap();
    let mut page = String::new();
    let _ = stream.read_to_string(&mut page);
    let status = child.wait().unwrap();
    let mut rest = String::new();
    stderr.read_to_string(&mut rest).unwrap();
    assert!(status.success(), "{rest}");
    assert!(rest.contains("Signed in as judy"), "{rest}");
    // The cached token (openid) calls UserInfo.
    let m = h.discover(&cli.p.issuer).unwrap();
    let userinfo = m.userinfo_endpoint().unwrap().as_str().to_owned();
    let body = ok(&cli.run(&[
        "call",
        "--client-id",
        "cli",
        "--auth",
        "none",
        "--scope",
        "openid profile offline_access",
        &userinfo,
    ]));
    assert!(body.contains("\"sub\":\"judy\""), "{body}");
}

#[test]
#[ignore = "needs Node and oidc-provider: cargo xtask interop"]
fn login_with_the_device_flow() {
    let cli = Cli::new("device");
    let mut child = cli
        .oauth()
        .args([
            "login",
            "--device",
            "--client-id",
            "device-app",
            "--auth",
            "none",
            "--scope",
            "openid",
        ])
        .args(cli.shared())
        .stderr(Stdio::piped())
        .spawn()
        .unwrap();
    let mut stderr = BufReader::new(child.stderr.take().unwrap());
    let mut line = String::new();
    let mut seen = String::new();
    let (uri, code) = loop {
        line.clear();
        assert!(
            stderr.read_line(&mut line).unwrap() > 0,
            "no code shown: {seen}"
        );
        seen.push_str(&line);
        if let Some(rest) = line.strip_prefix("To sign in, open ") {
            let (uri, code) = rest.trim().split_once(" and enter the code ").unwrap();
            break (uri.to_owned(), code.to_owned());
        }
    };
    let phone = Ureq::new(&Setup {
        ca_pem: Some(cli.p.ca_pem.clone()),
        ..Setup::default()
    })
    .unwrap();
    interop::browse(&phone, &cli.p.issuer, &uri, "", "kim", Some(&code));
    let status = child.wait().unwrap();
    let mut rest = String::new();
    stderr.read_to_string(&mut rest).unwrap();
    assert!(status.success(), "{rest}");
    assert!(rest.contains("Token cached"));
}
