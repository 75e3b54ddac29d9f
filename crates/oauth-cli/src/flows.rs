//! The commands that talk to servers.

use std::io::{BufRead, BufReader, Read as _, Write as _};
use std::net::TcpListener;
use std::path::PathBuf;
use std::time::SystemTime;

use clap::Args;
use oauth_ureq::http::{HeaderName, HeaderValue, Method, Request};
use oauth_ureq::{
    AccessToken, AuthorizationRequest, ClientMetadata, DeviceAuthorizationRequest,
    IntrospectionRequest, OpenIdClient, OpenIdCore, Password, RefreshToken, RegistrationRequest,
    RevocationRequest, SecurityToken, SystemRandom, TokenRequest, TokenResponse, TokenSource,
};

use crate::cache::{self, Cached};
use crate::config::{Context, Grant, Settings};
use crate::{CliError, ClientArgs, GrantArgs, prompt_secret};

/// The grant's token request, with the scopes, audience, resources and extras.
fn grant_request(s: &Settings, cached: Option<&Cached>) -> Result<TokenRequest, CliError> {
    let mut request = match s.grant {
        Grant::ClientCredentials => TokenRequest::client_credentials(),
        Grant::Password => {
            let username = s
                .username
                .clone()
                .ok_or_else(|| CliError::config("the password grant needs --username"))?;
            let password = match &s.password_env {
                Some(var) => std::env::var(var).map_err(|_| {
                    CliError::config(format!(
                        "the environment variable {var} (password) is not set"
                    ))
                })?,
                None => prompt_secret("password", "give --password-env VAR")?,
            };
            TokenRequest::password(username, Password::new(password))
        }
        Grant::RefreshToken => {
            let token = match &s.refresh_token_env {
                Some(var) => std::env::var(var).map_err(|_| {
                    CliError::config(format!("the environment variable {var} (refresh token) is not set"))
                })?,
                None => cached.and_then(|c| c.refresh_token.clone()).ok_or_else(|| {
                    CliError::config(
                        "no refresh token: run `oauth login` first, or give --refresh-token-env VAR",
                    )
                })?,
            };
            TokenRequest::refresh_token(RefreshToken::new(token))
        }
        Grant::JwtBearer => {
            let subject = s
                .subject
                .clone()
                .ok_or_else(|| CliError::config("the JWT bearer grant needs --subject"))?;
            jwt_assertion::JwtBearerSigner::new(s.signing_key()?, s.client_id()?, subject)
                .into_grant()
        }
        Grant::Device => {
            return Err(CliError::input(
                "the device grant is interactive: run `oauth token --grant device` or `oauth login --device`",
            ));
        }
    };
    if !s.scope.is_empty() {
        request = request.scope(s.scope.iter().cloned());
    }
    if let Some(audience) = &s.audience {
        request = request.audience(audience.clone());
    }
    for r in &s.resource {
        request = request.resource(r.clone());
    }
    for (name, value) in &s.params {
        request = request.param(name.clone(), value.clone());
    }
    Ok(request)
}

/// The client for the grant: the JWT bearer grant with `--auth none` sends no client at all
/// (the Anypoint page's request).
fn grant_client(s: &Settings) -> Result<oauth_ureq::Client, CliError> {
    if s.grant == Grant::JwtBearer && s.auth == crate::config::Auth::None {
        return Ok(oauth_ureq::Client::anonymous());
    }
    s.client()
}

/// A token: the cached one while it is fresh, else a new one (a refresh when the cache holds a
/// refresh token), cached.
pub(crate) fn token(ctx: &Context, s: &Settings) -> Result<Cached, CliError> {
    let cached = if s.no_cache {
        None
    } else {
        cache::load(&s.cache_name)?
    };
    if let Some(c) = &cached
        && c.fresh(SystemTime::now())
    {
        if ctx.verbose {
            eprintln!("* using the cached token ({})", s.cache_name);
        }
        return Ok(c.clone());
    }
    if s.grant == Grant::Device && cached.as_ref().is_none_or(|c| c.refresh_token.is_none()) {
        login_device(ctx, s, None)?;
        return cache::load(&s.cache_name)?
            .ok_or_else(|| CliError::new(1, "the device flow left no token"));
    }
    let http = s.http()?;
    let metadata = s.discovered(&http)?;
    let endpoint = s.token_endpoint(&http, metadata.as_ref())?;
    let client = grant_client(s)?;
    // An expired token with a refresh token (from `oauth login`): refresh it.
    let request = match cached.as_ref().and_then(|c| c.refresh_token.clone()) {
        Some(refresh) if s.grant != Grant::RefreshToken => {
            TokenRequest::refresh_token(RefreshToken::new(refresh))
        }
        _ => grant_request(s, cached.as_ref())?,
    };
    if ctx.verbose {
        eprintln!(
            "> POST {} (grant_type={})",
            endpoint.as_str(),
            request.grant_type()
        );
    }
    let response = http.request_token(&endpoint, &client, &request)?;
    let mut entry = Cached::from_response(&response);
    if entry.refresh_token.is_none() {
        entry.refresh_token = cached.and_then(|c| c.refresh_token);
    }
    if ctx.verbose {
        eprintln!(
            "< 200 token_type={} expires_at={:?}",
            entry.token_type, entry.expires_at
        );
    }
    if !s.no_cache {
        cache::store(&s.cache_name, &entry)?;
    }
    Ok(entry)
}

/// The token response as JSON, the tokens redacted unless asked for.
pub(crate) fn token_json(c: &Cached, show: bool) -> String {
    let secret = |v: &str| {
        if show {
            serde_json::Value::String(v.to_owned())
        } else {
            serde_json::Value::String("<redacted: --show-secrets>".to_owned())
        }
    };
    let mut out = serde_json::json!({
        "access_token": secret(&c.access_token),
        "token_type": c.token_type,
    });
    if let Some(exp) = c.expires_at {
        out["expires_at"] = exp.into();
        let now = SystemTime::now()
            .duration_since(SystemTime::UNIX_EPOCH)
            .map(|d| d.as_secs())
            .unwrap_or_default();
        out["expires_in"] = exp.saturating_sub(now).into();
    }
    if let Some(r) = &c.refresh_token {
        out["refresh_token"] = secret(r);
    }
    if let Some(scope) = &c.scope {
        out["scope"] = scope.clone().into();
    }
    serde_json::to_string_pretty(&out).unwrap_or_default()
}

/// What `oauth call` sends.
pub(crate) struct CallRequest<'a> {
    pub(crate) method: &'a str,
    pub(crate) headers: &'a [String],
    pub(crate) data: Option<&'a str>,
    pub(crate) json: Option<&'a str>,
    pub(crate) include: bool,
    pub(crate) url: &'a str,
}

fn body_arg(value: &str) -> Result<Vec<u8>, CliError> {
    match value.strip_prefix('@') {
        Some(path) => {
            std::fs::read(path).map_err(|e| CliError::input(format!("cannot read {path}: {e}")))
        }
        None => Ok(value.as_bytes().to_vec()),
    }
}

pub(crate) fn call(ctx: &Context, s: &Settings, c: &CallRequest<'_>) -> Result<u8, CliError> {
    let http = s.http()?;
    let metadata = s.discovered(&http)?;
    let endpoint = s.token_endpoint(&http, metadata.as_ref())?;
    let cached = if s.no_cache {
        None
    } else {
        cache::load(&s.cache_name)?
    };
    let now = SystemTime::now();
    let mut builder = TokenSource::builder(http, endpoint, grant_client(s)?)
        .grant(grant_request(s, cached.as_ref())?);
    if let Some(seed) = cached.as_ref().and_then(|c| c.to_response(now)) {
        builder = builder.seed(seed);
    }
    if !s.no_cache {
        let name = s.cache_name.clone();
        let previous_refresh = cached.and_then(|c| c.refresh_token);
        builder = builder.on_token(move |t: &TokenResponse| {
            let mut entry = Cached::from_response(t);
            if entry.refresh_token.is_none() {
                entry.refresh_token.clone_from(&previous_refresh);
            }
            if let Err(e) = cache::store(&name, &entry) {
                eprintln!("oauth: {e}");
            }
        });
    }
    let source = builder.build();

    let method = Method::from_bytes(c.method.to_ascii_uppercase().as_bytes())
        .map_err(|_| CliError::input(format!("{:?} is not an HTTP method", c.method)))?;
    let mut request = Request::builder().method(method).uri(c.url);
    let mut has_content_type = false;
    for h in c.headers {
        let (name, value) = h
            .split_once(':')
            .ok_or_else(|| CliError::input(format!("-H {h:?} is not `Name: value`")))?;
        let name = HeaderName::from_bytes(name.trim().as_bytes())
            .map_err(|_| CliError::input(format!("-H {h:?}: bad header name")))?;
        has_content_type |= name == oauth_ureq::http::header::CONTENT_TYPE;
        let value = HeaderValue::from_str(value.trim())
            .map_err(|_| CliError::input(format!("-H {h:?}: bad header value")))?;
        request = request.header(name, value);
    }
    let body = match (c.data, c.json) {
        (Some(d), _) => {
            if !has_content_type {
                request = request.header("content-type", "application/x-www-form-urlencoded");
            }
            body_arg(d)?
        }
        (None, Some(j)) => {
            if !has_content_type {
                request = request.header("content-type", "application/json");
            }
            request = request.header("accept", "application/json");
            body_arg(j)?
        }
        (None, None) => Vec::new(),
    };
    let request = request
        .body(body)
        .map_err(|e| CliError::input(format!("{}: {e}", c.url)))?;
    if ctx.verbose {
        eprintln!("> {} {}", request.method(), request.uri());
        for (name, value) in request.headers() {
            eprintln!("> {name}: {}", value.to_str().unwrap_or("<binary>"));
        }
        eprintln!("> authorization: <redacted>");
    }
    let response = source.send(request)?;
    let status = response.status();
    if ctx.verbose || c.include {
        let line = format!(
            "HTTP/1.1 {} {}",
            status.as_u16(),
            status.canonical_reason().unwrap_or("")
        );
        let mut out: Box<dyn std::io::Write> = if c.include {
            Box::new(std::io::stdout())
        } else {
            Box::new(std::io::stderr())
        };
        let prefix = if c.include { "" } else { "< " };
        let _ = writeln!(out, "{prefix}{line}");
        for (name, value) in response.headers() {
            let _ = writeln!(
                out,
                "{prefix}{name}: {}",
                value.to_str().unwrap_or("<binary>")
            );
        }
        let _ = writeln!(out, "{prefix}");
    }
    let mut stdout = std::io::stdout();
    let _ = stdout.write_all(response.body());
    let _ = stdout.flush();
    Ok(match status.as_u16() {
        200..=299 => 0,
        300..=399 => 3,
        400..=499 => 4,
        _ => 5,
    })
}

fn open_browser(url: &str) {
    let launched = if cfg!(target_os = "macos") {
        std::process::Command::new("open").arg(url).spawn()
    } else if cfg!(windows) {
        std::process::Command::new("cmd")
            .args(["/C", "start", "", url])
            .spawn()
    } else {
        std::process::Command::new("xdg-open").arg(url).spawn()
    };
    if launched.is_err() {
        eprintln!("oauth: could not open a browser; open the URL above yourself");
    }
}

/// The authorization code flow with PKCE and a loopback redirect (RFC 8252 §7.3).
pub(crate) fn login_code(
    _ctx: &Context,
    s: &Settings,
    authorize_url: Option<&str>,
    port: u16,
    no_browser: bool,
) -> Result<(), CliError> {
    let http = s.http()?;
    let metadata = s.discovered(&http)?;
    let client = s.client()?;
    let token_endpoint = s.token_endpoint(&http, metadata.as_ref())?;
    let authorize = match (authorize_url, &metadata) {
        (Some(url), _) => http.endpoint(url)?,
        (None, Some(m)) => m
            .authorization_endpoint()
            .cloned()
            .ok_or_else(|| CliError::config("the issuer has no authorization endpoint"))?,
        (None, None) => {
            return Err(CliError::config(
                "no authorization endpoint: give --issuer or --authorize-url",
            ));
        }
    };
    let listener = TcpListener::bind(("127.0.0.1", port))
        .map_err(|e| CliError::config(format!("cannot listen on 127.0.0.1:{port}: {e}")))?;
    let port = listener
        .local_addr()
        .map_err(|e| CliError::config(format!("{e}")))?
        .port();
    let redirect_uri = format!("http://127.0.0.1:{port}/callback");
    let mut request =
        AuthorizationRequest::new(authorize, s.client_id()?).redirect_uri(redirect_uri);
    if !s.scope.is_empty() {
        request = request.scope(s.scope.iter().cloned());
    }
    for (name, value) in &s.params {
        request = request.param(name.clone(), value.clone());
    }
    if let Some(m) = &metadata {
        request = request.expect_issuer(
            m.issuer(),
            m.authorization_response_iss_parameter_supported(),
        );
    }
    let pending = request.build(&SystemRandom)?;
    eprintln!("Open this URL to sign in:\n{}", pending.url());
    if !no_browser {
        open_browser(pending.url());
    }
    // The redirect comes back to the loopback listener. Anything else that connects first (a
    // browser's favicon request, a port probe, a stalled connection) is answered 404 or dropped,
    // and the listener keeps waiting.
    let (stream, target) = loop {
        let (stream, _) = listener
            .accept()
            .map_err(|e| CliError::config(format!("the redirect did not arrive: {e}")))?;
        let _ = stream.set_read_timeout(Some(std::time::Duration::from_secs(10)));
        let mut reader = BufReader::new(&stream);
        let mut line = String::new();
        if reader.read_line(&mut line).is_err() {
            continue;
        }
        // The rest of the head is read before answering: closing a socket with unread bytes
        // makes the kernel reset the connection, and the browser would show an error instead
        // of the page (the request may arrive in several segments).
        drain_head(&mut reader);
        let mut parts = line.split_whitespace();
        let (method, target) = (
            parts.next().unwrap_or_default(),
            parts.next().unwrap_or_default(),
        );
        if method == "GET" && target.starts_with("/callback") {
            let target = target.to_owned();
            drop(reader);
            break (stream, target);
        }
        let mut writer = &stream;
        let _ = write!(
            writer,
            "HTTP/1.1 404 Not Found\r\ncontent-length: 0\r\nconnection: close\r\n\r\n"
        );
    };
    let outcome = pending.handle_callback(&target);
    let page = if outcome.is_ok() {
        "Signed in. You can close this window."
    } else {
        "The sign-in failed. See the terminal."
    };
    let mut writer = &stream;
    let _ = write!(
        writer,
        "HTTP/1.1 200 OK\r\ncontent-type: text/plain\r\ncontent-length: {}\r\nconnection: close\r\n\r\n{page}",
        page.len()
    );
    let _ = writer.flush();
    let _ = stream.shutdown(std::net::Shutdown::Write);
    drop(stream);
    let code = outcome?;
    let response = match metadata {
        // With OpenID Connect, the id_token is validated by the exchange.
        Some(m) if s.scope.iter().any(|sc| sc == "openid") => {
            let oidc = OpenIdClient::new(http, OpenIdCore::new(m, client)?);
            let login = oidc.exchange_code(&pending, &target)?;
            if let Some(claims) = &login.id_token {
                eprintln!("Signed in as {}", claims.subject());
            }
            login.token
        }
        _ => http.request_token(&token_endpoint, &client, &pending.token_request(code))?,
    };
    cache::store(&s.cache_name, &Cached::from_response(&response))?;
    eprintln!("Token cached ({}).", s.cache_name);
    Ok(())
}

/// Reads a request's header lines up to the empty line that ends them, at most 64 lines of
/// 8 KiB each; a read error or the end of the stream ends it early.
fn drain_head(reader: &mut impl BufRead) {
    let mut line = Vec::new();
    for _ in 0..64 {
        line.clear();
        match reader.by_ref().take(8 * 1024).read_until(b'\n', &mut line) {
            Ok(0) | Err(_) => return,
            Ok(_) if line == b"\r\n" || line == b"\n" => return,
            Ok(_) => {}
        }
    }
}

/// The device flow (RFC 8628): the code shown, the token polled for, cached.
pub(crate) fn login_device(
    _ctx: &Context,
    s: &Settings,
    device_url: Option<&str>,
) -> Result<(), CliError> {
    let http = s.http()?;
    let metadata = s.discovered(&http)?;
    let client = s.client()?;
    let token_endpoint = s.token_endpoint(&http, metadata.as_ref())?;
    let device = match (device_url, &metadata) {
        (Some(url), _) => http.endpoint(url)?,
        (None, Some(m)) => m
            .device_authorization_endpoint()
            .cloned()
            .ok_or_else(|| CliError::config("the issuer has no device authorization endpoint"))?,
        (None, None) => {
            return Err(CliError::config(
                "no device endpoint: give --issuer or --device-url",
            ));
        }
    };
    let mut request = DeviceAuthorizationRequest::new();
    if !s.scope.is_empty() {
        request = request.scope(s.scope.iter().cloned());
    }
    let response = http.device_flow(
        &device,
        &token_endpoint,
        &client,
        &request,
        |auth| {
            eprintln!(
                "To sign in, open {} and enter the code {}",
                auth.verification_uri(),
                auth.user_code()
            );
            if let Some(complete) = auth.verification_uri_complete() {
                eprintln!("(or open {complete})");
            }
            eprintln!(
                "Waiting for approval (the code expires in {} s)...",
                auth.expires_in().as_secs()
            );
        },
        None,
    )?;
    cache::store(&s.cache_name, &Cached::from_response(&response))?;
    eprintln!("Token cached ({}).", s.cache_name);
    Ok(())
}

#[derive(Args)]
pub(crate) struct IntrospectArgs {
    #[command(flatten)]
    client: ClientArgs,
    /// The introspection endpoint (else discovered from --issuer).
    #[arg(long)]
    introspect_url: Option<String>,
    /// The token (`-` reads it from stdin).
    token: String,
}

fn token_arg(token: &str) -> Result<String, CliError> {
    if token == "-" {
        let mut line = String::new();
        std::io::stdin()
            .read_line(&mut line)
            .map_err(|e| CliError::input(format!("cannot read the token from stdin: {e}")))?;
        return Ok(line.trim().to_owned());
    }
    Ok(token.to_owned())
}

pub(crate) fn introspect(ctx: &Context, a: &IntrospectArgs) -> Result<u8, CliError> {
    let s = ctx.settings(&a.client, &GrantArgs::default())?;
    let http = s.http()?;
    let metadata = s.discovered(&http)?;
    let endpoint = match (&a.introspect_url, &metadata) {
        (Some(url), _) => http.endpoint(url)?,
        (None, Some(m)) => m
            .introspection_endpoint()
            .cloned()
            .ok_or_else(|| CliError::config("the issuer has no introspection endpoint"))?,
        (None, None) => {
            return Err(CliError::config("give --introspect-url or --issuer"));
        }
    };
    let token = token_arg(&a.token)?;
    let result = http.introspect(
        &endpoint,
        &s.client()?,
        &IntrospectionRequest::new(SecurityToken::new(token)),
    )?;
    // Only the members the server sent (no nulls, no defaults of ours): the result written
    // back as JSON, which leaves out what was absent. An inactive token's other members mean
    // nothing (RFC 7662 §2.2) and are not shown.
    let out: serde_json::Value = serde_json::from_slice(&result.to_json())
        .unwrap_or_else(|_| serde_json::json!({ "active": result.active() }));
    println!("{}", serde_json::to_string_pretty(&out).unwrap_or_default());
    Ok(if result.active() { 0 } else { 1 })
}

#[derive(Args)]
pub(crate) struct RevokeArgs {
    #[command(flatten)]
    client: ClientArgs,
    /// The revocation endpoint (else discovered from --issuer).
    #[arg(long)]
    revoke_url: Option<String>,
    /// The token is a refresh token.
    #[arg(long)]
    refresh: bool,
    /// The token (`-` reads it from stdin).
    token: String,
}

pub(crate) fn revoke(ctx: &Context, a: &RevokeArgs) -> Result<u8, CliError> {
    let s = ctx.settings(&a.client, &GrantArgs::default())?;
    let http = s.http()?;
    let metadata = s.discovered(&http)?;
    let endpoint = match (&a.revoke_url, &metadata) {
        (Some(url), _) => http.endpoint(url)?,
        (None, Some(m)) => m
            .revocation_endpoint()
            .cloned()
            .ok_or_else(|| CliError::config("the issuer has no revocation endpoint"))?,
        (None, None) => return Err(CliError::config("give --revoke-url or --issuer")),
    };
    let hint = if a.refresh {
        oauth_core::TokenTypeHint::RefreshToken
    } else {
        oauth_core::TokenTypeHint::AccessToken
    };
    http.revoke(
        &endpoint,
        &s.client()?,
        &RevocationRequest::new(SecurityToken::new(token_arg(&a.token)?)).token_type_hint(hint),
    )?;
    eprintln!("revoked");
    Ok(0)
}

#[derive(Args)]
pub(crate) struct DiscoverArgs {
    #[command(flatten)]
    client: ClientArgs,
    /// The issuer.
    #[arg(value_name = "ISSUER")]
    target: String,
}

pub(crate) fn discover(ctx: &Context, a: &DiscoverArgs) -> Result<u8, CliError> {
    let s = ctx.settings(&a.client, &GrantArgs::default())?;
    let m = s.http()?.discover(&a.target)?;
    let mut out = serde_json::Map::new();
    out.insert("issuer".into(), m.issuer().into());
    for name in [
        "authorization_endpoint",
        "token_endpoint",
        "jwks_uri",
        "userinfo_endpoint",
        "introspection_endpoint",
        "revocation_endpoint",
        "device_authorization_endpoint",
        "pushed_authorization_request_endpoint",
        "registration_endpoint",
    ] {
        if let Some(e) = m.endpoint(name) {
            out.insert(name.into(), e.as_str().into());
        }
    }
    for (k, v) in m.extra() {
        out.insert(k.clone(), v.clone());
    }
    println!(
        "{}",
        serde_json::to_string_pretty(&serde_json::Value::Object(out)).unwrap_or_default()
    );
    Ok(0)
}

#[derive(Args)]
pub(crate) struct RegisterArgs {
    #[command(flatten)]
    client: ClientArgs,
    /// The registration endpoint (else discovered from --issuer); with --anypoint, the
    /// connected-apps URL by default.
    #[arg(long)]
    registration_url: Option<String>,
    /// Read the initial access token (Anypoint: the user's token) from this variable.
    #[arg(long)]
    initial_token_env: Option<String>,
    /// `client_name`.
    #[arg(long)]
    name: String,
    /// `grant_types` (repeat).
    #[arg(long = "grant-type")]
    grant_types: Vec<String>,
    /// `redirect_uris` (repeat).
    #[arg(long = "redirect-uri")]
    redirect_uris: Vec<String>,
    /// `token_endpoint_auth_method`.
    #[arg(long)]
    auth_method: Option<String>,
    /// Register the public half of this private key (PEM) as the client's `jwks`.
    #[arg(long)]
    jwks_key: Option<PathBuf>,
    /// Create an Anypoint connected app (the connected-apps page's request).
    #[arg(long)]
    anypoint: bool,
    /// Show the client secret and registration token in the output.
    #[arg(long)]
    show_secrets: bool,
}

pub(crate) fn register(ctx: &Context, a: &RegisterArgs) -> Result<u8, CliError> {
    let s = ctx.settings(&a.client, &GrantArgs::default())?;
    let http = s.http()?;
    let metadata = s.discovered(&http)?;
    let initial = match &a.initial_token_env {
        Some(var) => Some(AccessToken::new(std::env::var(var).map_err(|_| {
            CliError::config(format!(
                "the environment variable {var} (initial access token) is not set"
            ))
        })?)),
        None => None,
    };
    let public_jwk = match &a.jwks_key {
        Some(path) => {
            let pem = std::fs::read_to_string(path)
                .map_err(|e| CliError::config(format!("cannot read {}: {e}", path.display())))?;
            let key = [
                jwt_assertion::Algorithm::RS256,
                jwt_assertion::Algorithm::ES256,
                jwt_assertion::Algorithm::EdDSA,
            ]
            .into_iter()
            .find_map(|alg| jwt_assertion::SigningKey::from_pem(&pem, alg).ok())
            .ok_or_else(|| {
                CliError::config(format!("{}: not a usable private key", path.display()))
            })?;
            key.public_jwk()
        }
        None => None,
    };
    let (endpoint, request) = if a.anypoint {
        let url = a
            .registration_url
            .clone()
            .unwrap_or_else(|| oauth_core::anypoint::CONNECTED_APPS_URL.to_owned());
        let token = initial.ok_or_else(|| {
            CliError::config("an Anypoint connected app is created with your token: give --initial-token-env VAR")
        })?;
        let app = match &public_jwk {
            Some(jwk) => oauth_core::anypoint::ConnectedApp::jwt_bearer(
                &a.name,
                jwk.to_string(),
                a.redirect_uris.iter().cloned(),
                s.scope.iter().cloned(),
            ),
            None => oauth_core::anypoint::ConnectedApp::authorization_code(
                &a.name,
                a.redirect_uris.iter().cloned(),
                s.scope.iter().cloned(),
            ),
        };
        (http.endpoint(&url)?, app.registration(token))
    } else {
        let endpoint = match (&a.registration_url, &metadata) {
            (Some(url), _) => http.endpoint(url)?,
            (None, Some(m)) => m
                .registration_endpoint()
                .cloned()
                .ok_or_else(|| CliError::config("the issuer has no registration endpoint"))?,
            (None, None) => return Err(CliError::config("give --registration-url or --issuer")),
        };
        let mut metadata = ClientMetadata::new().client_name(a.name.clone());
        if !a.grant_types.is_empty() {
            metadata = metadata.grant_types(a.grant_types.iter().cloned());
        }
        metadata = metadata.redirect_uris(a.redirect_uris.iter().cloned());
        if a.redirect_uris.is_empty() {
            // No redirect: no authorization code flow (else servers want redirect URIs).
            metadata = metadata.response_types(Vec::<String>::new());
        }
        if !s.scope.is_empty() {
            metadata = metadata.scope(s.scope.iter().cloned());
        }
        if let Some(method) = &a.auth_method {
            metadata = metadata.token_endpoint_auth_method(method.clone());
        }
        if let Some(jwk) = public_jwk {
            metadata = metadata.jwks([jwk]);
        }
        let mut request = RegistrationRequest::new(metadata);
        if let Some(token) = initial {
            request = request.initial_access_token(token);
        }
        (endpoint, request)
    };
    let registered = http.register_client(&endpoint, &request)?;
    let secret = |v: Option<&str>| match v {
        Some(v) if a.show_secrets => serde_json::Value::String(v.to_owned()),
        Some(_) => serde_json::Value::String("<redacted: --show-secrets>".into()),
        None => serde_json::Value::Null,
    };
    let mut out = serde_json::json!({
        "client_id": registered.client_id(),
        "client_secret": secret(registered.client_secret().map(|s| s.expose_secret())),
        "registration_access_token": secret(registered.registration_access_token().map(|t| t.expose_secret())),
        "registration_client_uri": registered.registration_client_uri().map(|e| e.as_str()),
    });
    for (k, v) in registered.metadata().as_map() {
        out[k] = v.clone();
    }
    println!("{}", serde_json::to_string_pretty(&out).unwrap_or_default());
    Ok(0)
}

#[derive(Args)]
pub(crate) struct MavenArgs {
    #[command(flatten)]
    client: ClientArgs,
    /// The `<id>` of the server (your repository's id in pom.xml).
    #[arg(long, default_value = "anypoint-exchange-v3")]
    server_id: String,
}

pub(crate) fn maven_settings(ctx: &Context, a: &MavenArgs) -> Result<u8, CliError> {
    let s = ctx.settings(&a.client, &GrantArgs::default())?;
    let credentials = oauth_core::anypoint::MavenFacadeCredentials::new(
        s.client_id()?.into(),
        s.client_secret()?,
    );
    // The block holds the secret: printing it is what was asked for.
    print!(
        "{}",
        credentials
            .settings_xml_server(&a.server_id)
            .expose_secret()
    );
    Ok(0)
}
