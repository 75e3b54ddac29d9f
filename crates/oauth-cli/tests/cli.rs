//! `oauth` run as a process against the loopback test authorization server: every command,
//! the token cache (reuse, expiry, an unsafe file refused, concurrent processes), the code
//! flow driven without a browser, the device flow, bad input, and no secret in any output.
#![allow(clippy::unwrap_used, clippy::expect_used, clippy::panic)]

use std::io::{BufRead as _, BufReader, Read as _, Write as _};
use std::path::{Path, PathBuf};
use std::process::{Command, Output, Stdio};
use std::time::Duration;

use oauth_test_server::{Behaviour, RejectionStyle, TestServer};

const SECRET: &str = "s3cr3t-value-never-printed";

struct Env {
    server: TestServer,
    dir: PathBuf,
}

impl Env {
    fn new(behaviour: Behaviour) -> Self {
        let server = TestServer::start(Behaviour {
            client_secret: SECRET.into(),
            ..behaviour
        })
        .unwrap();
        static N: std::sync::atomic::AtomicUsize = std::sync::atomic::AtomicUsize::new(0);
        let dir = std::env::temp_dir().join(format!(
            "oauth-cli-{}-{}",
            std::process::id(),
            N.fetch_add(1, std::sync::atomic::Ordering::Relaxed)
        ));
        std::fs::create_dir_all(&dir).unwrap();
        std::fs::write(dir.join("ca.pem"), server.ca_pem()).unwrap();
        Self { server, dir }
    }

    fn url(&self, path: &str) -> String {
        self.server.url(path)
    }

    /// `oauth` with the cache and config in this test's directory, the server's CA trusted,
    /// the client secret in the environment.
    fn oauth(&self) -> Command {
        let mut c = Command::new(env!("CARGO_BIN_EXE_oauth"));
        c.env_clear()
            .env("OAUTH_CACHE_DIR", self.dir.join("cache"))
            .env("OAUTH_CONFIG", self.dir.join("config.toml"))
            .env("CLIENT_SECRET", SECRET)
            .env("PATH", std::env::var_os("PATH").unwrap_or_default())
            .stdin(Stdio::null());
        c
    }

    fn client(&self) -> Vec<String> {
        let b = Behaviour::default();
        vec![
            "--token-url".into(),
            self.url("/token"),
            "--client-id".into(),
            b.client_id,
            "--client-secret-env".into(),
            "CLIENT_SECRET".into(),
            "--ca-file".into(),
            self.dir.join("ca.pem").display().to_string(),
        ]
    }

    fn run(&self, args: &[&str], client: bool) -> Output {
        let mut c = self.oauth();
        c.args(args);
        if client {
            c.args(self.client());
        }
        let out = c.output().unwrap();
        no_secret(&out);
        out
    }

    fn cache_file(&self) -> PathBuf {
        let dir = self.dir.join("cache");
        std::fs::read_dir(&dir)
            .unwrap()
            .map(|e| e.unwrap().path())
            .find(|p| p.extension().is_some_and(|e| e == "json"))
            .expect("a cache file")
    }
}

impl Drop for Env {
    fn drop(&mut self) {
        let _ = std::fs::remove_dir_all(&self.dir);
    }
}

fn text(b: &[u8]) -> String {
    String::from_utf8_lossy(b).into_owned()
}

fn no_secret(out: &Output) {
    for stream in [&out.stdout, &out.stderr] {
        assert!(
            !text(stream).contains(SECRET),
            "the client secret was printed"
        );
    }
}

fn code(out: &Output) -> i32 {
    out.status.code().unwrap_or(-1)
}

#[test]
fn token_is_cached_reused_and_refetched_when_expired() {
    let env = Env::new(Behaviour::default());
    let first = env.run(&["token", "--scope", "read"], true);
    assert_eq!(code(&first), 0, "{}", text(&first.stderr));
    let token = text(&first.stdout).trim().to_owned();
    assert!(!token.is_empty());
    assert_eq!(env.server.counters().token_requests, 1);
    // Within the lifetime: the same token, no request.
    let second = env.run(&["token", "--scope", "read"], true);
    assert_eq!(text(&second.stdout).trim(), token);
    assert_eq!(env.server.counters().token_requests, 1);
    // The file is the user's alone.
    #[cfg(unix)]
    {
        use std::os::unix::fs::PermissionsExt as _;
        let mode = std::fs::metadata(env.cache_file())
            .unwrap()
            .permissions()
            .mode()
            & 0o777;
        assert_eq!(mode, 0o600);
    }
    // --no-cache asks again; --json hides the token unless asked.
    let json = env.run(&["token", "--scope", "read", "--no-cache", "--json"], true);
    assert_eq!(env.server.counters().token_requests, 2);
    let value: serde_json::Value = serde_json::from_slice(&json.stdout).unwrap();
    assert_eq!(value["token_type"], "Bearer");
    assert!(
        value["access_token"]
            .as_str()
            .unwrap()
            .starts_with("<redacted")
    );
    // Logout forgets it: the next one is fetched.
    assert_eq!(code(&env.run(&["logout", "--scope", "read"], true)), 0);
    env.run(&["token", "--scope", "read"], true);
    assert_eq!(env.server.counters().token_requests, 3);

    // A server whose tokens live 20 s (less than the 30 s margin): every run asks.
    let short = Env::new(Behaviour {
        expires_in: Some(20),
        ..Behaviour::default()
    });
    short.run(&["token"], true);
    short.run(&["token"], true);
    assert_eq!(short.server.counters().token_requests, 2);
}

#[cfg(unix)]
#[test]
fn an_unsafe_cache_file_is_refused_and_concurrent_processes_do_not_corrupt_it() {
    use std::os::unix::fs::PermissionsExt as _;
    let env = Env::new(Behaviour::default());
    env.run(&["token"], true);
    let file = env.cache_file();
    std::fs::set_permissions(&file, std::fs::Permissions::from_mode(0o644)).unwrap();
    let refused = env.run(&["token"], true);
    assert_eq!(code(&refused), 78);
    let message = text(&refused.stderr);
    assert!(
        message.contains("chmod 600") && message.lines().count() == 1,
        "{message}"
    );
    assert!(refused.stdout.is_empty());

    // An expired entry, and two processes at once: at most one request each, a valid file.
    std::fs::set_permissions(&file, std::fs::Permissions::from_mode(0o600)).unwrap();
    let mut entry: serde_json::Value =
        serde_json::from_slice(&std::fs::read(&file).unwrap()).unwrap();
    entry["expires_at"] = 1.into();
    std::fs::write(&file, entry.to_string()).unwrap();
    let before = env.server.counters().token_requests;
    let children: Vec<_> = (0..2)
        .map(|_| {
            let mut c = env.oauth();
            c.arg("token").args(env.client()).stdout(Stdio::piped());
            c.spawn().unwrap()
        })
        .collect();
    for child in children {
        let out = child.wait_with_output().unwrap();
        assert_eq!(code(&out), 0);
    }
    let made = env.server.counters().token_requests - before;
    assert!((1..=2).contains(&made), "{made} requests");
    let after: serde_json::Value = serde_json::from_slice(&std::fs::read(&file).unwrap()).unwrap();
    assert!(after["expires_at"].as_u64().unwrap() > 1);
}

/// A file only its owner may read or write, holding `text`.
#[cfg(unix)]
fn private_file(path: &Path, text: &str) {
    use std::os::unix::fs::PermissionsExt as _;
    std::fs::write(path, text).unwrap();
    std::fs::set_permissions(path, std::fs::Permissions::from_mode(0o600)).unwrap();
}

#[cfg(unix)]
#[test]
fn links_planted_in_the_cache_directory_are_not_followed() {
    use std::os::unix::fs::symlink;
    let env = Env::new(Behaviour::default());
    assert_eq!(code(&env.run(&["token"], true)), 0);
    let file = env.cache_file();
    let dir = file.parent().unwrap().to_path_buf();
    let name = file.file_name().unwrap().to_str().unwrap().to_owned();
    let victim = env.dir.join("victim");
    private_file(&victim, "precious");

    // Links at the temporary names `.<file>.<pid>.tmp` that the next processes would have
    // used (pids follow the namespace's last one; other tests start processes too, hence the
    // margin): the token is written, the links' target is not.
    std::fs::remove_file(&file).unwrap();
    let last: u32 = std::fs::read_to_string("/proc/sys/kernel/ns_last_pid")
        .ok()
        .and_then(|t| t.trim().parse().ok())
        .unwrap_or(0);
    for pid in last + 1..=last + 2000 {
        symlink(&victim, dir.join(format!(".{name}.{pid}.tmp"))).unwrap();
    }
    let out = env.run(&["token"], true);
    assert_eq!(code(&out), 0, "{}", text(&out.stderr));
    assert_eq!(std::fs::read_to_string(&victim).unwrap(), "precious");
    let written = std::fs::symlink_metadata(&file).unwrap();
    assert!(written.file_type().is_file());

    // A link as the cache file itself: refused, its target neither read into a token nor
    // written.
    std::fs::remove_file(&file).unwrap();
    symlink(&victim, &file).unwrap();
    let before = env.server.counters().token_requests;
    let refused = env.run(&["token"], true);
    assert_eq!(code(&refused), 78);
    let message = text(&refused.stderr);
    assert!(
        message.contains("is a symbolic link") && message.lines().count() == 1,
        "{message}"
    );
    assert!(refused.stdout.is_empty());
    assert_eq!(env.server.counters().token_requests, before);
    assert_eq!(std::fs::read_to_string(&victim).unwrap(), "precious");
}

#[cfg(unix)]
#[test]
fn a_cache_directory_others_may_write_to_is_refused() {
    use std::os::unix::fs::PermissionsExt as _;
    let env = Env::new(Behaviour::default());
    let dir = env.dir.join("cache");
    std::fs::create_dir_all(&dir).unwrap();
    // Group-writable, and world-writable with the sticky bit (as /tmp).
    for mode in [0o770, 0o1777] {
        std::fs::set_permissions(&dir, std::fs::Permissions::from_mode(mode)).unwrap();
        let refused = env.run(&["token"], true);
        assert_eq!(code(&refused), 78);
        let message = text(&refused.stderr);
        assert!(
            message.contains(&format!("run `chmod 700 {}`", dir.display()))
                && message.lines().count() == 1,
            "{message}"
        );
        assert!(refused.stdout.is_empty());
        assert!(std::fs::read_dir(&dir).unwrap().next().is_none());
    }
    assert_eq!(env.server.counters().token_requests, 0);
    // As the message says:
    std::fs::set_permissions(&dir, std::fs::Permissions::from_mode(0o700)).unwrap();
    assert_eq!(code(&env.run(&["token"], true)), 0);
}

#[cfg(unix)]
#[test]
fn a_client_secret_file_others_may_read_is_refused() {
    use std::os::unix::fs::PermissionsExt as _;
    let env = Env::new(Behaviour::default());
    let file = env.dir.join("client-secret");
    std::fs::write(&file, format!("{SECRET}\n")).unwrap();
    let args = |file: &Path| {
        vec![
            "token".to_owned(),
            "--token-url".into(),
            env.url("/token"),
            "--client-id".into(),
            Behaviour::default().client_id,
            "--client-secret-file".into(),
            file.display().to_string(),
            "--ca-file".into(),
            env.dir.join("ca.pem").display().to_string(),
        ]
    };
    let args = args(&file);
    let args: Vec<&str> = args.iter().map(String::as_str).collect();
    for mode in [0o644, 0o640, 0o604] {
        std::fs::set_permissions(&file, std::fs::Permissions::from_mode(mode)).unwrap();
        let refused = env.run(&args, false);
        assert_eq!(code(&refused), 78);
        let message = text(&refused.stderr);
        assert!(
            message.contains(&format!("run `chmod 600 {}`", file.display()))
                && message.lines().count() == 1,
            "{message}"
        );
        assert!(refused.stdout.is_empty());
    }
    assert_eq!(env.server.counters().token_requests, 0);
    std::fs::set_permissions(&file, std::fs::Permissions::from_mode(0o600)).unwrap();
    let out = env.run(&args, false);
    assert_eq!(code(&out), 0, "{}", text(&out.stderr));
    assert_eq!(env.server.counters().token_requests, 1);
}

#[test]
fn call_adds_the_token_and_recovers_from_token_expired() {
    let env = Env::new(Behaviour {
        rejection_style: RejectionStyle::DataloyBody,
        ..Behaviour::default()
    });
    let api = env.url("/api");
    let ok = env.run(&["call", &api], true);
    assert_eq!(code(&ok), 0, "{}", text(&ok.stderr));
    assert!(text(&ok.stdout).contains("hello"));
    // The server forgets its tokens: the cached one gets Dataloy's "Token expired.", and the
    // call gets a new one and succeeds.
    env.server.expire_access_tokens();
    let again = env.run(&["call", "-i", &api], true);
    assert_eq!(code(&again), 0, "{}", text(&again.stderr));
    assert!(text(&again.stdout).starts_with("HTTP/1.1 200"));
    assert_eq!(env.server.counters().token_requests, 2);
    // The exit status follows the status class.
    let missing = env.run(&["call", &env.url("/nothing-here")], true);
    assert_eq!(code(&missing), 4);
    // -v shows the request and response lines, never the token.
    let verbose = env.run(&["call", "-v", &api], true);
    let shown = text(&verbose.stderr);
    assert!(
        shown.contains("> GET") && shown.contains("< HTTP/1.1 200"),
        "{shown}"
    );
    let cached: serde_json::Value =
        serde_json::from_slice(&std::fs::read(env.cache_file()).unwrap()).unwrap();
    assert!(!shown.contains(cached["access_token"].as_str().unwrap()));
}

#[test]
fn login_with_a_loopback_redirect_driven_without_a_browser() {
    let env = Env::new(Behaviour::default());
    let mut child = env
        .oauth()
        .args([
            "login",
            "--no-browser",
            "--authorize-url",
            &env.url("/authorize"),
            "--scope",
            "read",
        ])
        .args(env.client())
        .stderr(Stdio::piped())
        .spawn()
        .unwrap();
    let mut stderr = BufReader::new(child.stderr.take().unwrap());
    let mut line = String::new();
    let url = loop {
        line.clear();
        assert!(stderr.read_line(&mut line).unwrap() > 0, "no URL printed");
        if line.starts_with("https://") {
            break line.trim().to_owned();
        }
    };
    // The "browser": the authorization endpoint redirects to the loopback listener.
    let http = oauth_ureq::HttpClient::new(
        oauth_ureq::HttpConfig::new()
            .add_root_certificates_pem(env.server.ca_pem().as_bytes())
            .unwrap(),
    )
    .unwrap();
    let answer = http
        .execute(
            oauth_ureq::http::Request::get(url)
                .body(Vec::new())
                .unwrap(),
        )
        .unwrap();
    let location = answer.headers()["location"].to_str().unwrap().to_owned();
    let target = location.strip_prefix("http://").unwrap();
    let (host, path) = target.split_once('/').unwrap();
    // Strays first (a browser's favicon request, a probe that sends nothing): answered 404 or
    // dropped, and the login keeps waiting for its redirect.
    let mut stray = std::net::TcpStream::connect(host).unwrap();
    write!(stray, "GET /favicon.ico HTTP/1.1\r\nHost: {host}\r\n\r\n").unwrap();
    let mut answer = String::new();
    stray.read_to_string(&mut answer).unwrap();
    assert!(answer.starts_with("HTTP/1.1 404"), "{answer}");
    drop(std::net::TcpStream::connect(host).unwrap());
    // The redirect's head arrives in two segments, the second after a pause: the listener reads
    // all of it before it answers (a socket closed with unread bytes is reset, and the browser
    // shows an error instead of the page).
    let mut stream = std::net::TcpStream::connect(host).unwrap();
    stream.set_nodelay(true).unwrap();
    stream
        .write_all(format!("GET /{path} HTTP/1.1\r\n").as_bytes())
        .unwrap();
    stream
        .set_read_timeout(Some(Duration::from_millis(200)))
        .unwrap();
    let early = stream.peek(&mut [0; 16]);
    assert!(
        early.is_err(),
        "answered before the head was complete: {early:?}"
    );
    stream.set_read_timeout(None).unwrap();
    stream
        .write_all(format!("Host: {host}\r\nConnection: close\r\n\r\n").as_bytes())
        .unwrap();
    let mut page = String::new();
    stream.read_to_string(&mut page).unwrap();
    assert!(page.contains("Signed in"), "{page}");
    let status = child.wait().unwrap();
    let mut rest = String::new();
    stderr.read_to_string(&mut rest).unwrap();
    assert!(status.success(), "{rest}");
    // The refresh token is cached: an expired token is refreshed with it.
    let file = env.cache_file();
    let mut entry: serde_json::Value =
        serde_json::from_slice(&std::fs::read(&file).unwrap()).unwrap();
    assert!(entry["refresh_token"].is_string());
    entry["expires_at"] = 1.into();
    std::fs::write(&file, entry.to_string()).unwrap();
    let refreshed = env.run(&["token", "--scope", "read"], true);
    assert_eq!(code(&refreshed), 0, "{}", text(&refreshed.stderr));
    let grants: Vec<String> = env
        .server
        .token_requests()
        .iter()
        .map(|r| String::from_utf8_lossy(&r.body).into_owned())
        .collect();
    assert!(
        grants.last().unwrap().contains("grant_type=refresh_token"),
        "{grants:?}"
    );
}

#[test]
fn login_with_the_device_flow() {
    let env = std::sync::Arc::new(Env::new(Behaviour::default()));
    let mut child = env
        .oauth()
        .args([
            "login",
            "--device",
            "--device-url",
            &env.url("/device_authorization"),
            "--scope",
            "read",
        ])
        .args(env.client())
        .stderr(Stdio::piped())
        .spawn()
        .unwrap();
    let mut stderr = BufReader::new(child.stderr.take().unwrap());
    let mut line = String::new();
    let code_shown = loop {
        line.clear();
        assert!(stderr.read_line(&mut line).unwrap() > 0, "no code shown");
        if let Some(rest) = line.split("enter the code ").nth(1) {
            break rest.trim().to_owned();
        }
    };
    assert!(env.server.decide_device(&code_shown, true));
    let status = child.wait().unwrap();
    assert!(status.success());
    assert!(env.cache_file().exists());
}

#[test]
fn decode_introspect_revoke_discover_register_and_maven() {
    let env = Env::new(Behaviour {
        registration_token: Some("initial".into()),
        ..Behaviour::default()
    });
    // decode, and --verify against the server's JWKS.
    let jwt = env.server.issue_jwt_access_token(
        "app-1",
        "read",
        "https://api.example",
        Duration::from_secs(300),
    );
    let ca = env.dir.join("ca.pem").display().to_string();
    let decoded = env.run(&["decode", &jwt], false);
    assert_eq!(code(&decoded), 0);
    let shown = text(&decoded.stdout);
    assert!(
        shown.contains("\"client_id\": \"app-1\"")
            && shown.contains("exp: ")
            && (shown.contains("(in 4 min)") || shown.contains("(in 5 min)")),
        "{shown}"
    );
    let verified = env.run(
        &[
            "decode",
            "--verify",
            "--jwks-uri",
            &env.url("/jwks"),
            "--ca-file",
            &ca,
            &jwt,
        ],
        false,
    );
    assert_eq!(code(&verified), 0, "{}", text(&verified.stderr));
    assert!(text(&verified.stdout).contains("signature: valid (ES256"));
    let mut tampered = jwt.clone();
    tampered.truncate(jwt.len() - 4);
    tampered.push_str("AAAA");
    let refused = env.run(
        &[
            "decode",
            "--verify",
            "--jwks-uri",
            &env.url("/jwks"),
            "--ca-file",
            &ca,
            &tampered,
        ],
        false,
    );
    assert_eq!(code(&refused), 77);
    let malformed = env.run(&["decode", "not-a-jwt"], false);
    assert_eq!(code(&malformed), 64);
    assert_eq!(text(&malformed.stderr).lines().count(), 1);

    // introspect, revoke, introspect again.
    let token = env
        .server
        .issue_access_token("app-1", "read", Duration::from_secs(300));
    let introspect = |t: &str| {
        env.run(
            &["introspect", "--introspect-url", &env.url("/introspect"), t],
            true,
        )
    };
    let active = introspect(&token);
    assert_eq!(code(&active), 0, "{}", text(&active.stderr));
    assert!(text(&active.stdout).contains("\"active\": true"));
    let revoked = env.run(
        &["revoke", "--revoke-url", &env.url("/revoke"), &token],
        true,
    );
    assert_eq!(code(&revoked), 0, "{}", text(&revoked.stderr));
    let inactive = introspect(&token);
    assert_eq!(code(&inactive), 1);
    assert!(text(&inactive.stdout).contains("\"active\": false"));

    // discover.
    let discovered = env.run(&["discover", "--ca-file", &ca, &env.url("")], false);
    assert_eq!(code(&discovered), 0, "{}", text(&discovered.stderr));
    assert!(text(&discovered.stdout).contains("\"device_authorization_endpoint\""));

    // register (RFC 7591) and an Anypoint connected app against the same endpoint.
    let mut c = env.oauth();
    c.env("INITIAL", "initial").args([
        "register",
        "--registration-url",
        &env.url("/register"),
        "--initial-token-env",
        "INITIAL",
        "--name",
        "cli-app",
        "--grant-type",
        "client_credentials",
        "--ca-file",
        &ca,
    ]);
    let registered = c.output().unwrap();
    assert_eq!(code(&registered), 0, "{}", text(&registered.stderr));
    let value: serde_json::Value = serde_json::from_slice(&registered.stdout).unwrap();
    assert!(value["client_id"].as_str().unwrap().starts_with("client"));
    assert!(
        value["client_secret"]
            .as_str()
            .unwrap()
            .starts_with("<redacted")
    );
    let mut c = env.oauth();
    c.env("USER_TOKEN", "initial").args([
        "register",
        "--anypoint",
        "--registration-url",
        &env.url("/register"),
        "--initial-token-env",
        "USER_TOKEN",
        "--name",
        "GitProxy",
        "--redirect-uri",
        "https://example.com/",
        "--scope",
        "profile offline_access",
        "--ca-file",
        &ca,
    ]);
    let app = c.output().unwrap();
    assert_eq!(code(&app), 0, "{}", text(&app.stderr));
    let value: serde_json::Value = serde_json::from_slice(&app.stdout).unwrap();
    assert_eq!(value["audience"], "internal");
    assert_eq!(
        value["scopes"],
        serde_json::json!(["profile", "offline_access"])
    );

    // maven-settings: the page's block (the secret is the point of this output).
    let maven = env
        .oauth()
        .args([
            "maven-settings",
            "--client-id",
            "clientID",
            "--client-secret-env",
            "CLIENT_SECRET",
        ])
        .output()
        .unwrap();
    assert_eq!(code(&maven), 0);
    let block = text(&maven.stdout);
    assert!(block.contains("<username>~~~Client~~~</username>"));
    assert!(block.contains(&format!("<password>clientID~?~{SECRET}</password>")));
}

#[test]
fn bad_input_is_one_line_and_a_status() {
    let env = Env::new(Behaviour::default());
    let one_line = |out: &Output, status: i32, needle: &str| {
        assert_eq!(code(out), status, "{}", text(&out.stderr));
        let err = text(&out.stderr);
        assert_eq!(err.lines().count(), 1, "{err}");
        assert!(err.contains(needle), "{err}");
        assert!(out.stdout.is_empty());
    };
    one_line(
        &env.run(&["token", "--profile", "nope"], true),
        64,
        "unknown profile",
    );
    // No secret anywhere (stdin is not a terminal: no prompt).
    let b = Behaviour::default();
    let out = env
        .oauth()
        .args([
            "token",
            "--token-url",
            &env.url("/token"),
            "--client-id",
            &b.client_id,
        ])
        .output()
        .unwrap();
    one_line(&out, 78, "no client secret");
    // The wrong secret.
    let mut c = env.oauth();
    c.env("CLIENT_SECRET", "wrong")
        .args(["token"])
        .args(env.client());
    one_line(&c.output().unwrap(), 77, "invalid_client");
    // Nobody listening: port 1 (tcpmux) is privileged and outside the ephemeral range, so no
    // parallel test's port-0 listener can be given it (a released port-0 port can).
    let closed = 1;
    let out = env
        .oauth()
        .args([
            "token",
            "--token-url",
            &format!("https://127.0.0.1:{closed}/token"),
            "--client-id",
            "x",
            "--client-secret-env",
            "CLIENT_SECRET",
        ])
        .output()
        .unwrap();
    one_line(&out, 69, "could not reach");
    // Plain http without the loopback opt-in.
    let out = env
        .oauth()
        .args([
            "token",
            "--token-url",
            "http://127.0.0.1:9/token",
            "--client-id",
            "x",
            "--client-secret-env",
            "CLIENT_SECRET",
        ])
        .output()
        .unwrap();
    assert_ne!(code(&out), 0);
    assert!(text(&out.stderr).contains("http"), "{}", text(&out.stderr));
    // A secret on the command line works, with a warning.
    let out = env
        .oauth()
        .args([
            "token",
            "--token-url",
            &env.url("/token"),
            "--client-id",
            &b.client_id,
            "--client-secret",
            SECRET,
            "--ca-file",
            &env.dir.join("ca.pem").display().to_string(),
        ])
        .output()
        .unwrap();
    assert_eq!(code(&out), 0);
    assert!(text(&out.stderr).contains("shell history"));
    assert!(!text(&out.stderr).contains(SECRET));
}

#[test]
fn profiles_from_the_config_file() {
    let env = Env::new(Behaviour::default());
    let b = Behaviour::default();
    std::fs::write(
        env.dir.join("config.toml"),
        format!(
            "[profiles.test]\ntoken_url = \"{}\"\nclient_id = \"{}\"\nclient_secret_env = \"CLIENT_SECRET\"\nca_file = \"{}\"\nscope = [\"read\"]\n",
            env.url("/token"),
            b.client_id,
            env.dir.join("ca.pem").display()
        ),
    )
    .unwrap();
    let out = env.run(&["--profile", "test", "token"], false);
    assert_eq!(code(&out), 0, "{}", text(&out.stderr));
    assert!(env.dir.join("cache/test.json").exists());
    let listed = env.run(&["profiles"], false);
    assert!(text(&listed.stdout).contains("  test"));
    let completions = env.run(&["completions", "bash"], false);
    assert!(text(&completions.stdout).contains("_oauth"));
}

/// The README's "From curl to `oauth`" commands, run against the test server configured like
/// each page.
#[test]
fn the_readme_commands_run() {
    let readme =
        std::fs::read_to_string(Path::new(env!("CARGO_MANIFEST_DIR")).join("../../README.md"))
            .unwrap();
    let section = readme
        .split("## From curl to `oauth`")
        .nth(1)
        .expect("the README section");
    let block = section
        .split("```sh")
        .nth(1)
        .and_then(|b| b.split("```").next())
        .expect("a sh block");
    let commands: Vec<&str> = block
        .lines()
        .map(str::trim)
        .filter(|l| l.starts_with("oauth "))
        .collect();
    assert!(commands.len() >= 5, "{commands:?}");
    let env = Env::new(Behaviour {
        rejection_style: RejectionStyle::DataloyBody,
        ..Behaviour::default()
    });
    let b = Behaviour::default();
    for command in commands {
        // The pages' hosts and credentials, replaced with the test server's.
        let line = command
            .replace(
                "https://anypoint.mulesoft.com/accounts/api/v2/oauth2/token",
                &env.url("/token"),
            )
            .replace(
                "https://auth.dataloy.example/oauth/token",
                &env.url("/token"),
            )
            .replace("https://api.dataloy.example/v1/labels", &env.url("/api"))
            .replace("https://oauth.org.com/as/token.oauth2", &env.url("/token"))
            .replace("https://api.domain.com/labels/domestic", &env.url("/api"))
            .replace("$CLIENT_ID", &b.client_id);
        let args: Vec<&str> = line.split_whitespace().skip(1).collect();
        let mut c = env.oauth();
        c.args(&args)
            .args(["--ca-file", &env.dir.join("ca.pem").display().to_string()]);
        let out = c.output().unwrap();
        no_secret_unless_asked(&out, &args);
        assert_eq!(code(&out), 0, "{line}: {}", text(&out.stderr));
    }
}

fn no_secret_unless_asked(out: &Output, args: &[&str]) {
    if !args.contains(&"maven-settings") {
        no_secret(out);
    }
}

/// `--provider` builds the client with `oauth_core::providers`, as each page shows: Anypoint,
/// Auth0 and Dataloy a JSON body, Anypoint Exchange a form with the credentials in it; an
/// explicit `--auth` wins over the preset.
#[test]
fn provider_presets_send_each_pages_body() {
    let env = Env::new(Behaviour::default());
    let cases: &[(&[&str], &str)] = &[
        (&["--provider", "anypoint"], "application/json"),
        (
            &["--provider", "anypoint-exchange"],
            "application/x-www-form-urlencoded",
        ),
        (
            &["--provider", "auth0", "--audience", "https://api"],
            "application/json",
        ),
        (
            &["--provider", "dataloy", "--audience", "https://api"],
            "application/json",
        ),
        (
            &["--provider", "anypoint", "--auth", "basic"],
            "application/x-www-form-urlencoded",
        ),
    ];
    for (n, (flags, content_type)) in cases.iter().enumerate() {
        let mut args = vec!["token", "--no-cache"];
        args.extend_from_slice(flags);
        let out = env.run(&args, true);
        assert_eq!(code(&out), 0, "{flags:?}: {}", text(&out.stderr));
        let sent = env.server.token_requests();
        let request = &sent[n];
        assert_eq!(
            request.header("content-type"),
            Some(*content_type),
            "{flags:?}"
        );
        let body = String::from_utf8_lossy(&request.body);
        let basic = request.header("authorization").is_some();
        assert_eq!(basic, flags.contains(&"basic"), "{flags:?}");
        assert_eq!(body.contains("client_secret"), !basic, "{flags:?}");
        if flags.contains(&"--audience") {
            assert!(body.contains(r#""audience":"https://api""#), "{body}");
        }
    }
}

/// With no secret option, `OAUTH_CLIENT_SECRET` is the secret; an option that names another
/// source wins over it. Everything else comes from the variables `oauth-test-server` prints.
#[test]
fn the_default_secret_variable_is_read_when_no_option_names_a_source() {
    let env = Env::new(Behaviour::default());
    let from_variables = |secret: Option<&str>, extra: &[&str]| {
        let mut c = env.oauth();
        c.env("OAUTH_TOKEN_URL", env.url("/token"))
            .env("OAUTH_CLIENT_ID", Behaviour::default().client_id)
            .env("OAUTH_CA_FILE", env.dir.join("ca.pem"))
            .args(["token", "--no-cache"])
            .args(extra);
        if let Some(secret) = secret {
            c.env("OAUTH_CLIENT_SECRET", secret);
        }
        let out = c.output().unwrap();
        no_secret(&out);
        out
    };
    let ok = from_variables(Some(SECRET), &[]);
    assert_eq!(code(&ok), 0, "{}", text(&ok.stderr));
    assert!(!text(&ok.stdout).trim().is_empty());
    assert_eq!(env.server.counters().token_requests, 1);

    let wrong = from_variables(Some("not-the-secret"), &[]);
    assert_eq!(code(&wrong), 77, "{}", text(&wrong.stderr));

    // Without it (and no terminal to prompt on), the error names it.
    let missing = from_variables(None, &[]);
    assert_eq!(code(&missing), 78);
    assert!(
        text(&missing.stderr).contains("OAUTH_CLIENT_SECRET"),
        "{}",
        text(&missing.stderr)
    );

    // An explicit source wins: its variable is unset, so this fails although the default is set.
    let explicit = from_variables(Some(SECRET), &["--client-secret-env", "UNSET_VARIABLE"]);
    assert_eq!(code(&explicit), 78);
    assert!(text(&explicit.stderr).contains("UNSET_VARIABLE"));

    let help = env.run(&["--help"], false);
    assert!(text(&help.stdout).contains("OAUTH_CLIENT_SECRET"));
}

#[test]
fn profiles_help_documents_the_file_format() {
    let env = Env::new(Behaviour::default());
    let help = env.run(&["profiles", "--help"], false);
    assert_eq!(code(&help), 0);
    let shown = text(&help.stdout);
    for key in [
        "[profiles.",
        "token_url",
        "client_secret_env",
        "client_secret_file",
        "auth = ",
        "scope = ",
        "grant = ",
    ] {
        assert!(shown.contains(key), "no {key:?} in:\n{shown}");
    }
    // The documented profile works as written (with this test's server in it).
    let profile = format!(
        "[profiles.local]\ntoken_url = \"{}\"\nclient_id = \"{}\"\nclient_secret_env = \"CLIENT_SECRET\"\nca_file = \"{}\"\nscope = [\"read\"]\n",
        env.url("/token"),
        Behaviour::default().client_id,
        env.dir.join("ca.pem").display()
    );
    std::fs::write(env.dir.join("config.toml"), profile).unwrap();
    let listed = env.run(&["profiles"], false);
    assert!(
        text(&listed.stdout).contains("  local"),
        "{}",
        text(&listed.stdout)
    );
    let token = env.run(&["-p", "local", "token"], false);
    assert_eq!(code(&token), 0, "{}", text(&token.stderr));
}

#[test]
fn decode_help_shows_only_decodes_options() {
    let env = Env::new(Behaviour::default());
    let help = env.run(&["decode", "--help"], false);
    assert_eq!(code(&help), 0);
    let shown = text(&help.stdout);
    for own in ["--verify", "--jwks-uri", "--issuer", "--ca-file"] {
        assert!(shown.contains(own), "no {own} in:\n{shown}");
    }
    for other in [
        "--token-url",
        "--client-id",
        "--client-secret",
        "--scope",
        "--audience",
        "--grant",
        "--provider",
        "--param",
    ] {
        assert!(!shown.contains(other), "{other} in:\n{shown}");
    }
    // A client option is now an error for decode, not silently ignored.
    let refused = env.run(&["decode", "--scope", "x", "a.b.c"], false);
    assert_eq!(code(&refused), 2);
}

#[test]
fn introspect_prints_only_the_members_the_server_sent() {
    let env = Env::new(Behaviour::default());
    let token = env
        .server
        .issue_access_token("app-1", "read write", Duration::from_secs(300));
    let run = |t: &str| {
        env.run(
            &["introspect", "--introspect-url", &env.url("/introspect"), t],
            true,
        )
    };
    let active = run(&token);
    assert_eq!(code(&active), 0, "{}", text(&active.stderr));
    let shown: serde_json::Value = serde_json::from_slice(&active.stdout).unwrap();
    // What the test server sends for an active token (no sub, aud, iat, nbf or username).
    let mut members: Vec<&str> = shown
        .as_object()
        .unwrap()
        .keys()
        .map(String::as_str)
        .collect();
    members.sort_unstable();
    assert_eq!(
        members,
        ["active", "client_id", "exp", "iss", "scope", "token_type"],
        "{shown}"
    );
    assert_eq!(shown["scope"], "read write");
    assert!(!text(&active.stdout).contains("null"));

    let inactive = run("no-such-token");
    assert_eq!(code(&inactive), 1);
    let shown: serde_json::Value = serde_json::from_slice(&inactive.stdout).unwrap();
    assert_eq!(shown, serde_json::json!({"active": false}));
}

#[test]
fn a_refusal_is_reported_once() {
    let env = Env::new(Behaviour::default());
    let mut c = env.oauth();
    c.env("CLIENT_SECRET", "wrong-secret")
        .args(["token", "--no-cache"])
        .args(env.client());
    let out = c.output().unwrap();
    assert_eq!(code(&out), 77);
    let message = text(&out.stderr);
    assert_eq!(message.matches("refused").count(), 1, "{message}");
    assert!(message.contains("invalid_client"), "{message}");
    assert_eq!(message.lines().count(), 1, "{message}");
}
