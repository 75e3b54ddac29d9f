//! `oauth`: OAuth 2.0 from a terminal. Gets tokens with any grant and client authentication,
//! caches them per profile until they are about to expire, calls APIs with them (one retry on
//! "token expired"), signs in with the code flow or the device flow, and covers the rest of the
//! providers' documented curl steps (introspection, revocation, discovery, registration, Maven
//! settings, decoding JWTs). Built on oauth-ureq (blocking).
#![forbid(unsafe_code)]
// A command-line tool: printing is its job (the libraries never print).
#![allow(clippy::print_stdout, clippy::print_stderr)]

mod cache;
mod config;
mod flows;
mod jwt;

use std::fmt;
use std::io::IsTerminal as _;
use std::path::PathBuf;
use std::process::ExitCode;

use clap::{Args, CommandFactory as _, Parser, Subcommand, ValueEnum};

/// Exit statuses, documented in `--help`.
const EXIT_CODES: &str = "\
Exit status:
  0   success (`call`: the API answered 2xx)
  3, 4, 5   `call`: the API answered 3xx, 4xx, 5xx
  2   usage error (unknown flag, missing argument)
  64  bad input (a malformed JWT or URL, an unknown profile)
  69  the server could not be reached (connection, TLS, timeout)
  77  the authorization server refused (wrong credentials, invalid grant, access denied)
  78  configuration problem (missing secret, unreadable config, unsafe cache file or
      directory, a secret file others may read)
  1   anything else

Environment:
  OAUTH_CLIENT_SECRET  the client secret when no --client-secret* option (nor a profile's
                       client_secret_env / client_secret_file) names one
  OAUTH_TOKEN_URL, OAUTH_ISSUER, OAUTH_CLIENT_ID, OAUTH_CA_FILE, OAUTH_PROFILE, OAUTH_CONFIG
                       defaults of --token-url, --issuer, --client-id, --ca-file, --profile,
                       --config (`oauth-test-server` prints them all for its run)
  OAUTH_CACHE_DIR      where tokens are cached";

/// The config file's format, shown by `oauth profiles --help`.
const PROFILE_FORMAT: &str = r#"The config file (TOML; --config or OAUTH_CONFIG, else oauth/config.toml in the platform's
config directory) holds named profiles; `-p NAME` (or OAUTH_PROFILE) picks one. Options given
on the command line override the profile, and the profile overrides the --provider preset.
Unknown keys are refused. Every key is optional; each is the option of the same name:

  [profiles.orders]
  provider = "generic"            # anypoint | anypoint-exchange | auth0 | dataloy | generic
  token_url = "https://as.example/oauth2/token"
  issuer = "https://as.example"   # endpoints discovered from it
  client_id = "my-client"
  client_secret_env = "ORDERS_SECRET"     # or client_secret_file = "/path/0600-file";
                                          # never the secret itself
  auth = "basic"                  # basic | basic-verbatim | post | json | private-key-jwt |
                                  # client-secret-jwt | none
  key = "/path/key.pem"           # private-key-jwt and the jwt-bearer grant
  ca_file = "/path/ca.pem"
  allow_http_loopback = false
  audience = "https://orders.example"
  scope = ["orders:read", "orders:write"]
  resource = ["https://orders.example/"]
  params = { tenant = "t1" }      # extra request parameters
  grant = "client-credentials"    # client-credentials | password | refresh-token |
                                  # jwt-bearer | device
  username = "alice"              # password grant
  password_env = "ALICE_PASSWORD"
  subject = "alice"               # jwt-bearer grant

Tokens are cached per profile (OAUTH_CACHE_DIR, else the platform's cache directory)."#;

/// OAuth 2.0 tokens from the terminal: get, cache, use.
#[derive(Parser)]
#[command(name = "oauth", version, about, after_help = EXIT_CODES)]
struct Cli {
    /// Print each request and response line on stderr (secrets redacted).
    #[arg(short, long, global = true)]
    verbose: bool,
    /// A profile of the config file (`oauth profiles` shows where it is).
    #[arg(long, short = 'p', global = true, env = "OAUTH_PROFILE")]
    profile: Option<String>,
    /// The config file (default: the platform's config directory + oauth/config.toml).
    #[arg(long, global = true, env = "OAUTH_CONFIG")]
    config: Option<PathBuf>,
    #[command(subcommand)]
    command: Command,
}

#[derive(Subcommand)]
enum Command {
    /// Get an access token (cached and reused until it is about to expire); prints it alone.
    Token(TokenArgs),
    /// Call an API with the token, like curl; retries once on 401 "token expired".
    Call(CallArgs),
    /// Sign in: the authorization code flow with PKCE and a loopback redirect, or `--device`.
    Login(LoginArgs),
    /// Forget the cached token of a profile.
    Logout(LogoutArgs),
    /// Show a JWT's header and claims (times as dates); `--verify` checks its signature.
    Decode(jwt::DecodeArgs),
    /// Ask the introspection endpoint about a token (RFC 7662).
    Introspect(flows::IntrospectArgs),
    /// Revoke a token (RFC 7009).
    Revoke(flows::RevokeArgs),
    /// Show an issuer's metadata (OpenID Connect Discovery, RFC 8414).
    Discover(flows::DiscoverArgs),
    /// Register a client (RFC 7591), or create an Anypoint connected app.
    Register(flows::RegisterArgs),
    /// Print the Anypoint Exchange Maven facade `<server>` block for settings.xml.
    MavenSettings(flows::MavenArgs),
    /// Show the config file's location and its profiles.
    #[command(after_help = PROFILE_FORMAT)]
    Profiles,
    /// Print a shell completion script.
    Completions {
        /// The shell.
        shell: clap_complete::Shell,
    },
}

/// Where the authorization server is and how the client authenticates.
#[derive(Args, Clone, Default)]
pub(crate) struct ClientArgs {
    /// A provider's quirks: token URL shape, body encoding, audience, Maven facade.
    #[arg(long, value_enum)]
    pub(crate) provider: Option<config::Provider>,
    /// The token endpoint.
    #[arg(long, env = "OAUTH_TOKEN_URL")]
    pub(crate) token_url: Option<String>,
    /// The issuer (its endpoints are discovered).
    #[arg(long, env = "OAUTH_ISSUER")]
    pub(crate) issuer: Option<String>,
    /// The client id.
    #[arg(long, env = "OAUTH_CLIENT_ID")]
    pub(crate) client_id: Option<String>,
    /// The client secret on the command line (visible in shell history and `ps`: prefer the
    /// options below).
    #[arg(long)]
    pub(crate) client_secret: Option<String>,
    /// Read the client secret from this environment variable. With no secret option at all
    /// (here or in the profile), `OAUTH_CLIENT_SECRET` is read if it is set, before a prompt.
    #[arg(long)]
    pub(crate) client_secret_env: Option<String>,
    /// Read the client secret from this file (trailing newlines removed). It must be yours alone
    /// (mode 0600 or narrower): a file others may read or write is refused, as ssh refuses such
    /// a key.
    #[arg(long)]
    pub(crate) client_secret_file: Option<PathBuf>,
    /// Read the client secret from stdin.
    #[arg(long)]
    pub(crate) client_secret_stdin: bool,
    /// How the client authenticates.
    #[arg(long, value_enum)]
    pub(crate) auth: Option<config::Auth>,
    /// A private key (PEM) for `private-key-jwt` or the JWT bearer grant.
    #[arg(long)]
    pub(crate) key: Option<PathBuf>,
    /// A CA certificate (PEM) to trust besides the system's roots.
    #[arg(long, env = "OAUTH_CA_FILE")]
    pub(crate) ca_file: Option<PathBuf>,
    /// Allow `http://` to 127.0.0.1/localhost (development only).
    #[arg(long)]
    pub(crate) allow_http_loopback: bool,
    /// `audience` to ask for (Auth0, Dataloy).
    #[arg(long)]
    pub(crate) audience: Option<String>,
    /// Scopes to ask for (repeat, or space-separated).
    #[arg(long, short = 's')]
    pub(crate) scope: Vec<String>,
    /// Resource indicators (RFC 8707; repeat).
    #[arg(long)]
    pub(crate) resource: Vec<String>,
    /// Any other parameter, `name=value` (repeat).
    #[arg(long = "param", value_name = "NAME=VALUE")]
    pub(crate) params: Vec<String>,
}

/// How to get a token.
#[derive(Args, Clone, Default)]
pub(crate) struct GrantArgs {
    /// The grant.
    #[arg(long, value_enum)]
    pub(crate) grant: Option<config::Grant>,
    /// The resource owner (`password` grant).
    #[arg(long)]
    pub(crate) username: Option<String>,
    /// Read the resource owner's password from this environment variable (else a prompt).
    #[arg(long)]
    pub(crate) password_env: Option<String>,
    /// Read the refresh token from this environment variable (`refresh-token` grant; else the
    /// profile's cached one).
    #[arg(long)]
    pub(crate) refresh_token_env: Option<String>,
    /// The assertion's subject (`jwt-bearer` grant).
    #[arg(long)]
    pub(crate) subject: Option<String>,
    /// Ignore and do not write the token cache.
    #[arg(long)]
    pub(crate) no_cache: bool,
}

#[derive(Args)]
struct TokenArgs {
    #[command(flatten)]
    client: ClientArgs,
    #[command(flatten)]
    grant: GrantArgs,
    /// Print the whole token response as JSON (tokens redacted unless --show-secrets).
    #[arg(long)]
    json: bool,
    /// Show the tokens in --json output.
    #[arg(long)]
    show_secrets: bool,
}

#[derive(Args)]
struct CallArgs {
    #[command(flatten)]
    client: ClientArgs,
    #[command(flatten)]
    grant: GrantArgs,
    /// The HTTP method.
    #[arg(short = 'X', long = "request", default_value = "GET")]
    method: String,
    /// A header, `Name: value` (repeat).
    #[arg(short = 'H', long = "header")]
    headers: Vec<String>,
    /// A request body (`@file` reads a file), sent as a form unless a Content-Type is given.
    #[arg(short = 'd', long = "data", conflicts_with = "json_body")]
    data: Option<String>,
    /// A JSON request body (`@file` reads a file).
    #[arg(long = "json")]
    json_body: Option<String>,
    /// Print the status line and headers before the body.
    #[arg(short = 'i', long)]
    include: bool,
    /// The URL.
    url: String,
}

#[derive(Args)]
struct LoginArgs {
    #[command(flatten)]
    client: ClientArgs,
    /// The authorization endpoint (else discovered from --issuer).
    #[arg(long)]
    authorize_url: Option<String>,
    /// Print the URL instead of opening a browser.
    #[arg(long)]
    no_browser: bool,
    /// The loopback redirect's port (any free one by default).
    #[arg(long, default_value_t = 0)]
    port: u16,
    /// Use the device flow (RFC 8628) instead: a code to enter on another device.
    #[arg(long)]
    device: bool,
    /// The device authorization endpoint (else discovered from --issuer).
    #[arg(long)]
    device_url: Option<String>,
}

#[derive(Args)]
struct LogoutArgs {
    #[command(flatten)]
    client: ClientArgs,
    #[command(flatten)]
    grant: GrantArgs,
}

/// A failure: one sentence for the user, and the exit status.
#[derive(Debug)]
pub(crate) struct CliError {
    message: String,
    code: u8,
}

impl CliError {
    pub(crate) fn new(code: u8, message: impl Into<String>) -> Self {
        Self {
            message: message.into(),
            code,
        }
    }

    pub(crate) fn config(message: impl Into<String>) -> Self {
        Self::new(78, message)
    }

    pub(crate) fn input(message: impl Into<String>) -> Self {
        Self::new(64, message)
    }
}

impl fmt::Display for CliError {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        f.write_str(&self.message)
    }
}

impl From<oauth_ureq::Error> for CliError {
    fn from(e: oauth_ureq::Error) -> Self {
        use oauth_ureq::Fault;
        // The library's errors never hold a secret (scrubbed, redacted), so they can be shown.
        match e.fault() {
            Fault::Transport => Self::new(
                69,
                format!(
                    "could not reach the server: {e} (check the URL, the network and --ca-file)"
                ),
            ),
            // The library's message already says who refused ("the server refused the
            // request: invalid_client ..."); a prefix of ours would say it twice.
            Fault::Server | Fault::Authorization => Self::new(77, format!("{e}")),
            Fault::Caller => Self::new(64, format!("{e}")),
            // EX_SOFTWARE: a bug in the library, not in what the user gave.
            Fault::Bug => Self::new(70, format!("{e}")),
            _ => Self::new(1, format!("{e}")),
        }
    }
}

fn main() -> ExitCode {
    let cli = Cli::parse();
    if cli.verbose {
        tracing_subscriber::fmt()
            .with_writer(std::io::stderr)
            .with_max_level(tracing::Level::DEBUG)
            .with_target(false)
            .without_time()
            .init();
    }
    match run(cli) {
        Ok(code) => ExitCode::from(code),
        Err(e) => {
            eprintln!("oauth: {e}");
            ExitCode::from(e.code)
        }
    }
}

fn run(cli: Cli) -> Result<u8, CliError> {
    let ctx = config::Context::load(cli.config.as_deref(), cli.profile.as_deref(), cli.verbose)?;
    match cli.command {
        Command::Token(args) => {
            let settings = ctx.settings(&args.client, &args.grant)?;
            let token = flows::token(&ctx, &settings)?;
            if args.json {
                println!("{}", flows::token_json(&token, args.show_secrets));
            } else {
                println!("{}", token.access_token);
            }
            Ok(0)
        }
        Command::Call(args) => {
            let settings = ctx.settings(&args.client, &args.grant)?;
            flows::call(
                &ctx,
                &settings,
                &flows::CallRequest {
                    method: &args.method,
                    headers: &args.headers,
                    data: args.data.as_deref(),
                    json: args.json_body.as_deref(),
                    include: args.include,
                    url: &args.url,
                },
            )
        }
        Command::Login(args) => {
            let settings = ctx.settings(&args.client, &GrantArgs::default())?;
            if args.device {
                flows::login_device(&ctx, &settings, args.device_url.as_deref())?;
            } else {
                flows::login_code(
                    &ctx,
                    &settings,
                    args.authorize_url.as_deref(),
                    args.port,
                    args.no_browser,
                )?;
            }
            Ok(0)
        }
        Command::Logout(args) => {
            let settings = ctx.settings(&args.client, &args.grant)?;
            if cache::remove(&settings.cache_name)? {
                eprintln!("oauth: forgot the cached token ({})", settings.cache_name);
            }
            Ok(0)
        }
        Command::Decode(args) => jwt::decode(&ctx, &args),
        Command::Introspect(args) => flows::introspect(&ctx, &args),
        Command::Revoke(args) => flows::revoke(&ctx, &args),
        Command::Discover(args) => flows::discover(&ctx, &args),
        Command::Register(args) => flows::register(&ctx, &args),
        Command::MavenSettings(args) => flows::maven_settings(&ctx, &args),
        Command::Profiles => {
            println!("config file: {}", ctx.config_path().display());
            for name in ctx.profile_names() {
                println!("  {name}");
            }
            Ok(0)
        }
        Command::Completions { shell } => {
            clap_complete::generate(shell, &mut Cli::command(), "oauth", &mut std::io::stdout());
            Ok(0)
        }
    }
}

/// Reads a secret the user did not give: a prompt on a terminal, else an error naming the
/// options.
pub(crate) fn prompt_secret(what: &str, options: &str) -> Result<String, CliError> {
    if std::io::stdin().is_terminal() {
        rpassword::prompt_password(format!("{what}: "))
            .map_err(|e| CliError::config(format!("could not read the {what}: {e}")))
    } else {
        Err(CliError::config(format!("no {what}: {options}")))
    }
}

/// For `clap` value enums shown in messages.
pub(crate) fn value_name<T: ValueEnum>(v: &T) -> String {
    v.to_possible_value()
        .map(|p| p.get_name().to_owned())
        .unwrap_or_default()
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn the_command_line_is_well_formed() {
        Cli::command().debug_assert();
    }
}
