//! Profiles (`config.toml`), provider presets, and the settings a command runs with: flags
//! override the profile, the profile overrides the preset.

use std::collections::BTreeMap;
use std::io::Read as _;
use std::path::{Path, PathBuf};
use std::sync::Arc;

use clap::ValueEnum;
use jwt_assertion::{Algorithm, ClientAssertionSigner, SigningKey};
use oauth_ureq::oauth_core::providers;
use oauth_ureq::{
    BodyEncoding, Client, ClientAuthentication, ClientSecret, Endpoint, HttpClient, HttpConfig,
    ServerMetadata,
};
use serde::Deserialize;

/// The environment variable read for the client secret when no option names a source (the
/// name the quickstart example and `oauth-test-server` use too).
pub(crate) const DEFAULT_SECRET_ENV: &str = "OAUTH_CLIENT_SECRET";

/// A provider preset's client, from `oauth_core::providers`.
type PresetClient = fn(&str, ClientSecret) -> Client;

use crate::{CliError, ClientArgs, GrantArgs, prompt_secret, value_name};

/// A provider's quirks.
#[derive(Clone, Copy, Debug, PartialEq, Eq, ValueEnum, Deserialize)]
#[serde(rename_all = "kebab-case")]
pub(crate) enum Provider {
    /// Anypoint Platform: its token URL, JSON bodies.
    Anypoint,
    /// Anypoint Exchange's Maven facade (the connected app's id and secret).
    AnypointExchange,
    /// Auth0: JSON body with an `audience`.
    Auth0,
    /// Dataloy: JSON body with an `audience`.
    Dataloy,
    /// Any RFC 6749 server: form body, HTTP Basic.
    Generic,
}

/// How the client authenticates.
#[derive(Clone, Copy, Debug, PartialEq, Eq, ValueEnum, Deserialize)]
#[serde(rename_all = "kebab-case")]
pub(crate) enum Auth {
    /// HTTP Basic with RFC 6749 §2.3.1's encoding.
    Basic,
    /// HTTP Basic, id and secret as they are.
    BasicVerbatim,
    /// `client_id` and `client_secret` in a form body.
    Post,
    /// `client_id` and `client_secret` in a JSON body (Anypoint, Dataloy, Auth0).
    Json,
    /// A JWT signed with --key (`private_key_jwt`).
    PrivateKeyJwt,
    /// A JWT signed with the client secret (`client_secret_jwt`, HS256).
    ClientSecretJwt,
    /// No authentication (a public client).
    None,
}

/// The grant.
#[derive(Clone, Copy, Debug, PartialEq, Eq, ValueEnum, Deserialize)]
#[serde(rename_all = "kebab-case")]
pub(crate) enum Grant {
    /// `client_credentials`.
    ClientCredentials,
    /// `password` (the resource owner's).
    Password,
    /// `refresh_token`.
    RefreshToken,
    /// The JWT bearer grant (RFC 7523), signed with --key.
    JwtBearer,
    /// The device flow (RFC 8628; the device endpoint discovered from --issuer): the code is
    /// shown on stderr, the token printed once approved.
    Device,
}

/// A profile in `config.toml`.
#[derive(Clone, Debug, Default, Deserialize)]
#[serde(deny_unknown_fields)]
pub(crate) struct Profile {
    provider: Option<Provider>,
    token_url: Option<String>,
    issuer: Option<String>,
    client_id: Option<String>,
    client_secret_env: Option<String>,
    client_secret_file: Option<PathBuf>,
    auth: Option<Auth>,
    key: Option<PathBuf>,
    ca_file: Option<PathBuf>,
    #[serde(default)]
    allow_http_loopback: bool,
    audience: Option<String>,
    #[serde(default)]
    scope: Vec<String>,
    #[serde(default)]
    resource: Vec<String>,
    #[serde(default)]
    params: BTreeMap<String, String>,
    grant: Option<Grant>,
    username: Option<String>,
    password_env: Option<String>,
    subject: Option<String>,
}

#[derive(Debug, Default, Deserialize)]
struct ConfigFile {
    #[serde(default)]
    profiles: BTreeMap<String, Profile>,
}

/// The config file and the chosen profile.
pub(crate) struct Context {
    path: PathBuf,
    profiles: BTreeMap<String, Profile>,
    profile: Option<(String, Profile)>,
    pub(crate) verbose: bool,
}

/// Everything a command needs, resolved.
pub(crate) struct Settings {
    pub(crate) token_url: Option<String>,
    pub(crate) issuer: Option<String>,
    pub(crate) client_id: Option<String>,
    secret_sources: SecretSources,
    pub(crate) auth: Auth,
    /// The provider whose preset builds the client (no --auth given).
    preset: Option<Provider>,
    pub(crate) key: Option<PathBuf>,
    ca_file: Option<PathBuf>,
    allow_http_loopback: bool,
    pub(crate) audience: Option<String>,
    pub(crate) scope: Vec<String>,
    pub(crate) resource: Vec<String>,
    pub(crate) params: Vec<(String, String)>,
    pub(crate) grant: Grant,
    pub(crate) username: Option<String>,
    pub(crate) password_env: Option<String>,
    pub(crate) refresh_token_env: Option<String>,
    pub(crate) subject: Option<String>,
    pub(crate) no_cache: bool,
    pub(crate) cache_name: String,
}

#[derive(Clone, Default)]
struct SecretSources {
    value: Option<String>,
    env: Option<String>,
    file: Option<PathBuf>,
    stdin: bool,
}

fn default_config_path() -> PathBuf {
    let home = std::env::var_os("HOME").map(PathBuf::from);
    let base = if cfg!(target_os = "macos") {
        home.map(|h| h.join("Library/Application Support"))
    } else if cfg!(windows) {
        std::env::var_os("APPDATA").map(PathBuf::from)
    } else {
        std::env::var_os("XDG_CONFIG_HOME")
            .map(PathBuf::from)
            .or_else(|| home.map(|h| h.join(".config")))
    };
    base.unwrap_or_default().join("oauth").join("config.toml")
}

impl Context {
    pub(crate) fn load(
        path: Option<&Path>,
        profile: Option<&str>,
        verbose: bool,
    ) -> Result<Self, CliError> {
        let path = path
            .map(Path::to_path_buf)
            .unwrap_or_else(default_config_path);
        let file: ConfigFile = match std::fs::read_to_string(&path) {
            Ok(text) => toml::from_str(&text).map_err(|e| {
                CliError::config(format!(
                    "{} is not a valid config file: {e}",
                    path.display()
                ))
            })?,
            Err(e) if e.kind() == std::io::ErrorKind::NotFound => ConfigFile::default(),
            Err(e) => {
                return Err(CliError::config(format!(
                    "cannot read {}: {e}",
                    path.display()
                )));
            }
        };
        let profile = match profile {
            None => None,
            Some(name) => match file.profiles.get(name) {
                Some(p) => Some((name.to_owned(), p.clone())),
                None => {
                    let known: Vec<&str> = file.profiles.keys().map(String::as_str).collect();
                    return Err(CliError::input(format!(
                        "unknown profile {name:?} (profiles in {}: {})",
                        path.display(),
                        if known.is_empty() {
                            "none".to_owned()
                        } else {
                            known.join(", ")
                        }
                    )));
                }
            },
        };
        Ok(Self {
            path,
            profiles: file.profiles,
            profile,
            verbose,
        })
    }

    pub(crate) fn config_path(&self) -> &Path {
        &self.path
    }

    pub(crate) fn profile_names(&self) -> impl Iterator<Item = &str> {
        self.profiles.keys().map(String::as_str)
    }

    /// Flags over the profile over the provider's preset.
    pub(crate) fn settings(&self, c: &ClientArgs, g: &GrantArgs) -> Result<Settings, CliError> {
        let p = self
            .profile
            .as_ref()
            .map(|(_, p)| p.clone())
            .unwrap_or_default();
        let provider = c.provider.or(p.provider);
        let preset_url = matches!(
            provider,
            Some(Provider::Anypoint | Provider::AnypointExchange)
        )
        .then(|| providers::anypoint::TOKEN_URL.to_owned());
        // What the client is when --auth is not given: the preset's (built by
        // `oauth_core::providers` in `client()`), else Basic.
        let preset_auth = match provider {
            Some(Provider::Anypoint | Provider::Auth0 | Provider::Dataloy) => Auth::Json,
            Some(Provider::AnypointExchange) => Auth::Post,
            _ => Auth::Basic,
        };
        let scope: Vec<String> = if c.scope.is_empty() {
            p.scope
        } else {
            c.scope.clone()
        }
        .iter()
        .flat_map(|s| s.split_whitespace().map(str::to_owned).collect::<Vec<_>>())
        .collect();
        let mut params: Vec<(String, String)> = p.params.into_iter().collect();
        for raw in &c.params {
            let (name, value) = raw
                .split_once('=')
                .ok_or_else(|| CliError::input(format!("--param {raw:?} is not NAME=VALUE")))?;
            params.push((name.to_owned(), value.to_owned()));
        }
        let audience = c.audience.clone().or(p.audience);
        if matches!(provider, Some(Provider::Auth0 | Provider::Dataloy)) && audience.is_none() {
            return Err(CliError::input(format!(
                "{} needs an --audience (the API's identifier)",
                value_name(&provider.unwrap_or(Provider::Generic))
            )));
        }
        let token_url = c.token_url.clone().or(p.token_url).or(preset_url);
        let client_id = c.client_id.clone().or(p.client_id);
        let grant = g.grant.or(p.grant).unwrap_or(Grant::ClientCredentials);
        let resource = if c.resource.is_empty() {
            p.resource
        } else {
            c.resource.clone()
        };
        let cache_name = match &self.profile {
            Some((name, _)) => name.clone(),
            None => format!(
                "t-{:016x}",
                fnv1a(&format!(
                    "{:?}|{:?}|{:?}|{}|{:?}|{}",
                    token_url.as_deref().or(c.issuer.as_deref()),
                    client_id,
                    grant,
                    scope.join(" "),
                    audience,
                    resource.join(" ")
                ))
            ),
        };
        Ok(Settings {
            token_url,
            issuer: c.issuer.clone().or(p.issuer),
            client_id,
            secret_sources: SecretSources {
                value: c.client_secret.clone(),
                env: c.client_secret_env.clone().or(p.client_secret_env),
                file: c.client_secret_file.clone().or(p.client_secret_file),
                stdin: c.client_secret_stdin,
            },
            auth: c.auth.or(p.auth).unwrap_or(preset_auth),
            preset: provider.filter(|_| c.auth.or(p.auth).is_none()),
            key: c.key.clone().or(p.key),
            ca_file: c.ca_file.clone().or(p.ca_file),
            allow_http_loopback: c.allow_http_loopback || p.allow_http_loopback,
            audience,
            scope,
            resource,
            params,
            grant,
            username: g.username.clone().or(p.username),
            password_env: g.password_env.clone().or(p.password_env),
            refresh_token_env: g.refresh_token_env.clone(),
            subject: g.subject.clone().or(p.subject),
            no_cache: g.no_cache,
            cache_name,
        })
    }
}

/// FNV-1a, for a stable cache file name from the settings (not a security boundary: the file
/// is the user's own).
fn fnv1a(text: &str) -> u64 {
    text.bytes().fold(0xcbf2_9ce4_8422_2325, |h, b| {
        (h ^ u64::from(b)).wrapping_mul(0x0100_0000_01b3)
    })
}

/// Refuses a client secret file that others may read or write, as ssh refuses such a key
/// file: the secret is as good as theirs. (Of a link, what it leads to is checked; a pipe such
/// as `<(pass show x)` is the user's alone.)
#[cfg(unix)]
fn check_secret_file(file: &Path) -> Result<(), CliError> {
    use std::os::unix::fs::PermissionsExt as _;
    let mode = std::fs::metadata(file)
        .map(|m| m.permissions().mode() & 0o777)
        .map_err(|e| CliError::config(format!("cannot read {}: {e}", file.display())))?;
    if mode & 0o077 != 0 {
        return Err(CliError::config(format!(
            "the client secret file {} is open to others (mode {mode:o}): run `chmod 600 {}`, or \
             pass it with --client-secret-stdin if you cannot",
            file.display(),
            file.display()
        )));
    }
    Ok(())
}

#[cfg(not(unix))]
fn check_secret_file(_: &Path) -> Result<(), CliError> {
    Ok(())
}

impl Settings {
    /// The HTTP client: https only (loopback http by --allow-http-loopback), the extra CA.
    pub(crate) fn http(&self) -> Result<HttpClient, CliError> {
        let mut config = HttpConfig::new();
        if let Some(ca) = &self.ca_file {
            let pem = std::fs::read(ca)
                .map_err(|e| CliError::config(format!("cannot read {}: {e}", ca.display())))?;
            config = config
                .add_root_certificates_pem(&pem)
                .map_err(|e| CliError::config(format!("{}: {e}", ca.display())))?;
        }
        if self.allow_http_loopback {
            config = config.dangerous_allow_http_loopback();
        }
        Ok(HttpClient::new(config)?)
    }

    /// The client secret, from wherever it was given.
    pub(crate) fn client_secret(&self) -> Result<ClientSecret, CliError> {
        let s = &self.secret_sources;
        if let Some(value) = &s.value {
            eprintln!(
                "oauth: warning: a secret on the command line ends up in shell history and `ps`; \
                 prefer --client-secret-env or --client-secret-file"
            );
            return Ok(ClientSecret::new(value.as_str()));
        }
        if let Some(var) = &s.env {
            return std::env::var(var).map(ClientSecret::new).map_err(|_| {
                CliError::config(format!(
                    "the environment variable {var} (client secret) is not set"
                ))
            });
        }
        if let Some(file) = &s.file {
            check_secret_file(file)?;
            let text = std::fs::read_to_string(file)
                .map_err(|e| CliError::config(format!("cannot read {}: {e}", file.display())))?;
            return Ok(ClientSecret::new(text.trim_end_matches(['\r', '\n'])));
        }
        if s.stdin {
            let mut text = String::new();
            std::io::stdin()
                .read_to_string(&mut text)
                .map_err(|e| CliError::config(format!("cannot read the secret from stdin: {e}")))?;
            return Ok(ClientSecret::new(text.trim_end_matches(['\r', '\n'])));
        }
        if let Some(value) = std::env::var_os(DEFAULT_SECRET_ENV) {
            return value
                .into_string()
                .map(ClientSecret::new)
                .map_err(|_| CliError::config(format!("{DEFAULT_SECRET_ENV} is not valid UTF-8")));
        }
        prompt_secret(
            "client secret",
            "set OAUTH_CLIENT_SECRET, or give --client-secret-env VAR, --client-secret-file PATH \
             or --client-secret-stdin",
        )
        .map(ClientSecret::new)
    }

    /// The signing key at --key, for `alg` or the first algorithm it fits.
    pub(crate) fn signing_key(&self) -> Result<Arc<SigningKey>, CliError> {
        let path = self
            .key
            .as_ref()
            .ok_or_else(|| CliError::config("this needs a private key: give --key PATH (PEM)"))?;
        let pem = std::fs::read_to_string(path)
            .map_err(|e| CliError::config(format!("cannot read {}: {e}", path.display())))?;
        let mut last = None;
        for alg in [
            Algorithm::RS256,
            Algorithm::ES256,
            Algorithm::ES384,
            Algorithm::EdDSA,
        ] {
            match SigningKey::from_pem(&pem, alg) {
                Ok(key) => return Ok(Arc::new(key)),
                Err(e) => last = Some(e),
            }
        }
        Err(CliError::config(format!(
            "{}: {}",
            path.display(),
            last.map(|e| e.to_string()).unwrap_or_default()
        )))
    }

    pub(crate) fn client_id(&self) -> Result<&str, CliError> {
        self.client_id
            .as_deref()
            .ok_or_else(|| CliError::config("no client id: give --client-id or a profile"))
    }

    /// The client, authenticated as --auth says, or as the provider's page does.
    pub(crate) fn client(&self) -> Result<Client, CliError> {
        if self.auth == Auth::None && self.client_id.is_none() {
            return Ok(Client::anonymous());
        }
        let id = self.client_id()?;
        let preset = match self.preset {
            Some(Provider::Anypoint) => Some(providers::anypoint::client as PresetClient),
            Some(Provider::AnypointExchange) => Some(providers::anypoint::exchange_client as _),
            Some(Provider::Auth0) => Some(providers::auth0::client as _),
            Some(Provider::Dataloy) => Some(providers::dataloy::client as _),
            Some(Provider::Generic) | None => None,
        };
        if let Some(client) = preset {
            return Ok(client(id, self.client_secret()?));
        }
        Ok(match self.auth {
            Auth::Basic => {
                Client::new(id, ClientAuthentication::SecretBasic(self.client_secret()?))
            }
            Auth::BasicVerbatim => Client::new(
                id,
                ClientAuthentication::SecretBasicVerbatim(self.client_secret()?),
            ),
            Auth::Post => Client::new(id, ClientAuthentication::SecretPost(self.client_secret()?)),
            Auth::Json => Client::new(id, ClientAuthentication::SecretPost(self.client_secret()?))
                .with_body_encoding(BodyEncoding::Json),
            Auth::PrivateKeyJwt => Client::new(
                id,
                ClientAssertionSigner::new(self.signing_key()?).into_authentication(),
            ),
            Auth::ClientSecretJwt => {
                let secret = self.client_secret()?;
                let key = SigningKey::hmac(secret.expose_secret().as_bytes(), Algorithm::HS256)
                    .map_err(|e| CliError::config(format!("client-secret-jwt: {e}")))?;
                Client::new(id, ClientAssertionSigner::new(key).into_authentication())
            }
            Auth::None => Client::new(id, ClientAuthentication::None),
        })
    }

    /// The issuer's metadata, if --issuer is set.
    pub(crate) fn discovered(&self, http: &HttpClient) -> Result<Option<ServerMetadata>, CliError> {
        match &self.issuer {
            Some(issuer) => Ok(Some(http.discover(issuer)?)),
            None => Ok(None),
        }
    }

    /// The token endpoint: --token-url, else discovered.
    pub(crate) fn token_endpoint(
        &self,
        http: &HttpClient,
        metadata: Option<&ServerMetadata>,
    ) -> Result<Endpoint, CliError> {
        if let Some(url) = &self.token_url {
            return Ok(http.endpoint(url)?);
        }
        metadata
            .and_then(ServerMetadata::token_endpoint)
            .cloned()
            .ok_or_else(|| CliError::config("no token endpoint: give --token-url or --issuer"))
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    /// The example in `oauth profiles --help` is a valid config file with every key a profile
    /// has, so the documentation cannot drift from the parser (unknown keys are refused).
    #[test]
    fn the_documented_profile_format_parses() {
        let example: String = crate::PROFILE_FORMAT
            .lines()
            .skip_while(|l| !l.trim_start().starts_with("[profiles."))
            .take_while(|l| !l.trim().is_empty())
            .map(|l| format!("{}\n", l.trim_start()))
            .collect();
        let file: ConfigFile = toml::from_str(&example).unwrap();
        let p = &file.profiles["orders"];
        assert_eq!(p.client_secret_env.as_deref(), Some("ORDERS_SECRET"));
        assert_eq!(p.grant, Some(Grant::ClientCredentials));
        assert_eq!(p.params["tenant"], "t1");
        assert!(p.subject.is_some() && p.key.is_some() && p.password_env.is_some());
    }
}
