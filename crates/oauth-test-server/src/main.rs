//! `oauth-test-server`: the toolkit's loopback authorization server as a program, so that the
//! `oauth` CLI, the `oauth-gateway` proxy and the examples have a server to run against
//! without an account anywhere.
//!
//! ```text
//! cargo run -p oauth-test-server > as.env &    # prints its settings, then serves
//! . ./as.env                                   # OAUTH_TOKEN_URL, OAUTH_CLIENT_ID, ...
//! oauth token                                  # a token from it
//! ```
//!
//! It serves HTTPS on 127.0.0.1 with a certificate authority made for the run, writes that
//! CA's certificate (PEM) to a new private directory under the temporary directory (or to
//! `--ca-file`), and prints, as lines a POSIX shell can source, its issuer, endpoints, the CA
//! file and a registered client whose secret is random for each run. It serves until it is
//! stopped (Ctrl-C, SIGTERM). It is a test server: tokens live in memory, every user is
//! `alice`, and consent is given at once. Never expose it beyond loopback.
#![forbid(unsafe_code)]
// A program whose job is to print its settings.
#![allow(clippy::print_stdout, clippy::print_stderr)]

use std::path::PathBuf;
use std::process::ExitCode;

use oauth_test_server::{Behaviour, TestServer};

const HELP: &str = "\
oauth-test-server: a small OAuth 2.0 authorization server on 127.0.0.1 (HTTPS), for trying the
toolkit's CLI, proxy and examples. Not for production: tokens live in memory.

Usage: oauth-test-server [--port PORT] [--ca-file PATH] [--client-id ID]

Options:
  --port PORT      listen on 127.0.0.1:PORT (default: a free port the system chooses)
  --ca-file PATH   write the run's CA certificate (PEM) here (default: ca.pem in a new
                   private directory under the temporary directory; it is left behind)
  --client-id ID   the registered client's id (default: test-client)
  -h, --help       print this help
  -V, --version    print the version

It prints its settings on stdout as shell lines (comments and `export NAME=VALUE`), so
`oauth-test-server > as.env & sleep 1; . ./as.env` sets OAUTH_ISSUER, OAUTH_TOKEN_URL,
OAUTH_INTROSPECTION_URL, OAUTH_CLIENT_ID, OAUTH_CLIENT_SECRET (random for each run),
OAUTH_CA_FILE and OAUTH_API_URL, the variables the `oauth` CLI and the quickstart example
read. The same client may introspect, so an `oauth-gateway` configuration can use it too.
It serves until stopped (Ctrl-C or SIGTERM).

Endpoints: /token, /authorize, /introspect, /revoke, /device_authorization, /par,
/register, /jwks, /.well-known/openid-configuration, and /api (a protected resource).";

struct Options {
    port: u16,
    ca_file: Option<PathBuf>,
    client_id: String,
}

enum Parsed {
    Run(Options),
    Exit(ExitCode),
}

fn parse(args: impl IntoIterator<Item = String>) -> Parsed {
    let mut options = Options {
        port: 0,
        ca_file: None,
        client_id: Behaviour::default().client_id,
    };
    let mut args = args.into_iter();
    while let Some(arg) = args.next() {
        let (name, inline) = match arg.split_once('=') {
            Some((n, v)) if n.starts_with("--") => (n.to_owned(), Some(v.to_owned())),
            _ => (arg, None),
        };
        let mut value = |what: &str| {
            inline.clone().or_else(|| args.next()).ok_or_else(|| {
                eprintln!("oauth-test-server: {name} needs {what} (see --help)");
                ExitCode::from(2)
            })
        };
        let step = match name.as_str() {
            "-h" | "--help" => {
                println!("{HELP}");
                return Parsed::Exit(ExitCode::SUCCESS);
            }
            "-V" | "--version" => {
                println!("oauth-test-server {}", env!("CARGO_PKG_VERSION"));
                return Parsed::Exit(ExitCode::SUCCESS);
            }
            "--port" => value("a port").and_then(|v| {
                v.parse().map(|p| options.port = p).map_err(|_| {
                    eprintln!("oauth-test-server: --port {v:?} is not a port number");
                    ExitCode::from(2)
                })
            }),
            "--ca-file" => value("a path").map(|v| options.ca_file = Some(v.into())),
            "--client-id" => value("an id").and_then(|v| {
                if v.is_empty() {
                    eprintln!("oauth-test-server: --client-id must not be empty");
                    Err(ExitCode::from(2))
                } else {
                    options.client_id = v;
                    Ok(())
                }
            }),
            other => {
                eprintln!("oauth-test-server: unknown argument {other:?} (see --help)");
                Err(ExitCode::from(2))
            }
        };
        if let Err(code) = step {
            return Parsed::Exit(code);
        }
    }
    Parsed::Run(options)
}

/// A random secret for this run: 32 hex digits (128 bits), nothing a shell would interpret.
fn random_secret() -> Option<String> {
    use ring::rand::SecureRandom as _;
    let mut bytes = [0u8; 16];
    ring::rand::SystemRandom::new().fill(&mut bytes).ok()?;
    Some(bytes.iter().map(|b| format!("{b:02x}")).collect())
}

/// Writes the CA certificate where asked, or to `ca.pem` in a directory created for this run
/// (a new directory, never one an earlier process or another user prepared).
fn write_ca(pem: &str, path: Option<PathBuf>) -> std::io::Result<PathBuf> {
    let path = match path {
        Some(path) => path,
        None => {
            let suffix = random_secret().unwrap_or_default();
            let dir = std::env::temp_dir().join(format!(
                "oauth-test-server-{}-{}",
                std::process::id(),
                suffix.get(..8).unwrap_or_default()
            ));
            std::fs::create_dir(&dir)?;
            dir.join("ca.pem")
        }
    };
    std::fs::write(&path, pem)?;
    // An absolute path, so that it stays right after a `cd`.
    Ok(std::path::absolute(&path).unwrap_or(path))
}

fn main() -> ExitCode {
    let options = match parse(std::env::args().skip(1)) {
        Parsed::Run(options) => options,
        Parsed::Exit(code) => return code,
    };
    let Some(secret) = random_secret() else {
        eprintln!("oauth-test-server: the system's random generator failed");
        return ExitCode::FAILURE;
    };
    let behaviour = Behaviour {
        client_id: options.client_id,
        client_secret: secret,
        ..Behaviour::default()
    };
    let server = match TestServer::start_on_port(behaviour.clone(), options.port) {
        Ok(server) => server,
        Err(e) => {
            eprintln!(
                "oauth-test-server: cannot listen on 127.0.0.1:{}: {e}",
                options.port
            );
            return ExitCode::FAILURE;
        }
    };
    let ca_file = match write_ca(server.ca_pem(), options.ca_file) {
        Ok(path) => path,
        Err(e) => {
            eprintln!("oauth-test-server: cannot write the CA file: {e}");
            return ExitCode::FAILURE;
        }
    };
    println!(
        "# oauth-test-server {version}: serving {issuer} until stopped (Ctrl-C)\n\
         # The client below may also introspect (an oauth-gateway's [introspection] client).\n\
         export OAUTH_ISSUER={issuer}\n\
         export OAUTH_TOKEN_URL={token}\n\
         export OAUTH_INTROSPECTION_URL={introspect}\n\
         export OAUTH_CLIENT_ID={client_id}\n\
         export OAUTH_CLIENT_SECRET={secret}\n\
         export OAUTH_CA_FILE={ca}\n\
         export OAUTH_API_URL={api}",
        version = env!("CARGO_PKG_VERSION"),
        issuer = server.url(""),
        token = server.url("/token"),
        introspect = server.url("/introspect"),
        client_id = shell_quote(&behaviour.client_id),
        secret = behaviour.client_secret,
        ca = shell_quote(&ca_file.display().to_string()),
        api = server.url("/api"),
    );
    // The server runs on its own thread; this one only keeps the process alive. Ctrl-C and
    // SIGTERM end the process (their default action), which is how it stops.
    loop {
        std::thread::park();
    }
}

/// `text` as one POSIX shell word.
fn shell_quote(text: &str) -> String {
    if !text.is_empty()
        && text
            .bytes()
            .all(|b| b.is_ascii_alphanumeric() || b"-_./:@%+=,".contains(&b))
    {
        text.to_owned()
    } else {
        format!("'{}'", text.replace('\'', r"'\''"))
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    fn run(args: &[&str]) -> Option<Options> {
        match parse(args.iter().map(|a| (*a).to_owned())) {
            Parsed::Run(options) => Some(options),
            Parsed::Exit(_) => None,
        }
    }

    #[test]
    fn arguments() {
        let o = run(&[]).unwrap();
        assert_eq!(
            (o.port, o.ca_file, o.client_id.as_str()),
            (0, None, "test-client")
        );
        let o = run(&["--port", "8443", "--ca-file=/x/ca.pem", "--client-id", "me"]).unwrap();
        assert_eq!(o.port, 8443);
        assert_eq!(o.ca_file, Some(PathBuf::from("/x/ca.pem")));
        assert_eq!(o.client_id, "me");
        for bad in [
            &["--port"][..],
            &["--port", "99999"],
            &["--client-id", ""],
            &["--nope"],
        ] {
            assert!(run(bad).is_none(), "{bad:?}");
        }
    }

    #[test]
    fn shell_words() {
        assert_eq!(shell_quote("/tmp/a/ca.pem"), "/tmp/a/ca.pem");
        assert_eq!(shell_quote("a b'c"), r"'a b'\''c'");
        assert_eq!(shell_quote(""), "''");
    }
}
