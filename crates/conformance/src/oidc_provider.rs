//! Interop with a real, certified authorization server: panva's oidc-provider (Node), from
//! `interop/oidc-provider`, started on 127.0.0.1 over TLS with a certificate made for the run
//! and trusted through the adapters' extra-CA option.
//!
//! `cargo xtask interop` installs it (`npm ci`) and runs these checks through both adapters.

use std::collections::HashMap;
use std::io::{BufRead, BufReader, Write as _};
use std::path::PathBuf;
use std::process::{Child, Command, Stdio};
use std::sync::{Arc, OnceLock};
use std::time::{Duration, SystemTime};

use base64::Engine as _;
use jwt_assertion::{Algorithm, ClientAssertionSigner, JwtBearerSigner, JwtClaims, SigningKey};
use oauth_core::http::{Method, Request, Response, header};
use oauth_core::{
    AuthorizationRequest, Client, ClientAssertion, ClientAuthentication, ClientSecret, Error,
    ErrorCode, IntrospectionRequest, PendingAuthorization, RandomError, RandomSource,
    RefreshPolicy, RefreshToken, RevocationRequest, SecurityToken, ServerMetadata,
    TOKEN_TYPE_ACCESS_TOKEN, TokenExchange, TokenRequest, TokenResponse, TokenTypeHint,
    parse_introspection_response, parse_revocation_response,
};
use oauth_test_server::LoopbackCertificates;
use serde_json::{Value, json};

use crate::{Harness, Setup, SourceSpec};

/// The Basic-auth secret: every character §2.3.1 encoding must get right.
pub const SECRET: &str = "s3cr3t ~?:%+&= with spaces";
/// The `client_secret_jwt` secret (HS256 needs at least 32 bytes).
pub const JWT_SECRET: &str = "an HS256 client secret of at least thirty-two bytes";
/// The authorization code client's redirect URI (never fetched: the test reads the Location).
pub const REDIRECT_URI: &str = "https://client.example/cb";
/// A resource indicator for which the server issues JWT access tokens.
pub const JWT_RESOURCE: &str = "https://api.example/jwt";
/// A resource indicator for which the server issues opaque access tokens.
pub const OPAQUE_RESOURCE: &str = "https://api.example/opaque";
/// The resource whose (opaque) access tokens live 2 seconds.
pub const SHORT_RESOURCE: &str = "https://api.example/short";

const RSA: &str = include_str!("../../jwt-assertion/tests/keys/rsa2048-pkcs8.pem");
const P256: &str = include_str!("../../jwt-assertion/tests/keys/p256-pkcs8.pem");
const ED25519: &str = include_str!("../../jwt-assertion/tests/keys/ed25519-pkcs8.pem");

/// The `private_key_jwt` clients: id, key, algorithm.
pub fn private_key_clients() -> Vec<(&'static str, SigningKey)> {
    let key = |pem, alg| SigningKey::from_pem(pem, alg).expect("test key");
    vec![
        ("pk-rs256", key(RSA, Algorithm::RS256)),
        ("pk-ps256", key(RSA, Algorithm::PS256)),
        ("pk-es256", key(P256, Algorithm::ES256)),
        ("pk-eddsa", key(ED25519, Algorithm::EdDSA)),
    ]
}

/// The client held to the FAPI 2.0 profile.
pub const FAPI2_CLIENT: &str = "fapi2";

/// Its key (ES256): client assertions and request objects.
pub fn fapi2_key() -> SigningKey {
    SigningKey::from_pem(P256, Algorithm::ES256).expect("test key")
}

/// The key that signs JWT bearer grant assertions for the `jwt-bearer` client.
pub fn assertion_key() -> SigningKey {
    SigningKey::from_pem(P256, Algorithm::ES256).expect("test key")
}

fn client_metadata() -> (Vec<Value>, Value) {
    let cc = |id: &str, method: &str| {
        json!({
            "client_id": id, "client_secret": SECRET, "token_endpoint_auth_method": method,
            "grant_types": ["client_credentials"], "response_types": [], "redirect_uris": [],
            "scope": "api:read api:write",
        })
    };
    let mut clients = vec![
        cc("cc-basic", "client_secret_basic"),
        cc("cc-post", "client_secret_post"),
        cc("gateway", "client_secret_basic"),
        // The server requires DPoP nonces from this one.
        cc("cc-dpop-nonce", "client_secret_basic"),
        // A public web client (a single-page app): its refresh tokens are DPoP-bound.
        json!({
            "client_id": "spa", "token_endpoint_auth_method": "none",
            "grant_types": ["authorization_code", "refresh_token"], "response_types": ["code"],
            "redirect_uris": [REDIRECT_URI], "scope": "openid profile offline_access api:read",
        }),
        json!({
            "client_id": "cc-jwt", "client_secret": JWT_SECRET,
            "token_endpoint_auth_method": "client_secret_jwt",
            "token_endpoint_auth_signing_alg": "HS256",
            "grant_types": ["client_credentials"], "response_types": [], "redirect_uris": [],
            "scope": "api:read api:write",
        }),
        json!({
            "client_id": "web", "client_secret": SECRET,
            "token_endpoint_auth_method": "client_secret_basic",
            "grant_types": ["authorization_code", "refresh_token"], "response_types": ["code"],
            "redirect_uris": [REDIRECT_URI], "scope": "openid profile offline_access api:read",
        }),
        // The same web client, with id_tokens (and UserInfo answers) signed with ES256, and
        // with EdDSA.
        json!({
            "client_id": "web-es256", "client_secret": SECRET,
            "token_endpoint_auth_method": "client_secret_basic",
            "grant_types": ["authorization_code", "refresh_token"], "response_types": ["code"],
            "redirect_uris": [REDIRECT_URI], "scope": "openid profile offline_access api:read",
            "id_token_signed_response_alg": "ES256", "userinfo_signed_response_alg": "ES256",
        }),
        json!({
            "client_id": "web-eddsa", "client_secret": SECRET,
            "token_endpoint_auth_method": "client_secret_basic",
            "grant_types": ["authorization_code", "refresh_token"], "response_types": ["code"],
            "redirect_uris": [REDIRECT_URI], "scope": "openid profile offline_access api:read",
            "id_token_signed_response_alg": "EdDSA",
        }),
        // A native app (the `oauth` CLI): loopback redirects on any port (RFC 8252 §7.3).
        json!({
            "client_id": "cli", "token_endpoint_auth_method": "none", "application_type": "native",
            "grant_types": ["authorization_code", "refresh_token"], "response_types": ["code"],
            "redirect_uris": ["http://127.0.0.1/callback"], "scope": "openid profile offline_access",
        }),
        // A public client on a TV: the device authorization grant (RFC 8628).
        json!({
            "client_id": "device-app", "token_endpoint_auth_method": "none",
            "grant_types": ["urn:ietf:params:oauth:grant-type:device_code", "refresh_token"],
            "response_types": [], "redirect_uris": [], "scope": "openid profile offline_access",
        }),
        json!({
            "client_id": "jwt-bearer", "client_secret": SECRET,
            "token_endpoint_auth_method": "client_secret_basic",
            "grant_types": ["urn:ietf:params:oauth:grant-type:jwt-bearer"],
            "response_types": [], "redirect_uris": [], "scope": "api:read",
        }),
        json!({
            "client_id": "exchanger", "client_secret": SECRET,
            "token_endpoint_auth_method": "client_secret_post",
            "grant_types": ["client_credentials", "urn:ietf:params:oauth:grant-type:token-exchange"],
            "response_types": [], "redirect_uris": [], "scope": "api:read api:write",
        }),
    ];
    // Mutual TLS (RFC 8705): a CA-issued certificate for `client.example`, and a self-signed
    // one (its JWK with `x5c` added by server.mjs); both bind their access tokens.
    for (id, method) in [
        (MTLS_CA_CLIENT, "tls_client_auth"),
        (MTLS_SELF_SIGNED_CLIENT, "self_signed_tls_client_auth"),
    ] {
        let mut client = json!({
            "client_id": id, "token_endpoint_auth_method": method,
            "tls_client_certificate_bound_access_tokens": true,
            "grant_types": ["client_credentials"], "response_types": [], "redirect_uris": [],
            "scope": "api:read api:write",
        });
        if method == "tls_client_auth" {
            client["tls_client_auth_san_dns"] = json!(MTLS_SAN_DNS);
        }
        clients.push(client);
    }
    // The FAPI 2.0 client (the provider holds it to the profile): private_key_jwt with ES256,
    // request objects with the same key, DPoP-bound tokens, pushed requests only.
    clients.push(json!({
        "client_id": FAPI2_CLIENT, "token_endpoint_auth_method": "private_key_jwt",
        "token_endpoint_auth_signing_alg": "ES256",
        "jwks": {"keys": [fapi2_key().public_jwk().expect("public key")]},
        "grant_types": ["authorization_code", "refresh_token"], "response_types": ["code"],
        "redirect_uris": [REDIRECT_URI], "scope": "openid api:read",
        "id_token_signed_response_alg": "ES256", "request_object_signing_alg": "ES256",
        "dpop_bound_access_tokens": true, "require_pushed_authorization_requests": true,
        "authorization_details_types": ["payment_initiation"],
    }));
    for (id, key) in private_key_clients() {
        let alg = key.algorithm().as_str();
        clients.push(json!({
            "client_id": id, "token_endpoint_auth_method": "private_key_jwt",
            "token_endpoint_auth_signing_alg": alg,
            "jwks": {"keys": [key.public_jwk().expect("public key")]},
            "grant_types": ["client_credentials"], "response_types": [], "redirect_uris": [],
            "scope": "api:read api:write",
        }));
    }
    let assertion_keys = json!({
        "jwt-bearer": {"keys": [assertion_key().public_jwk().expect("public key")]},
    });
    (clients, assertion_keys)
}

/// The `tls_client_auth` client (RFC 8705 §2.1): a certificate from the run's client CA for
/// [`MTLS_SAN_DNS`].
pub const MTLS_CA_CLIENT: &str = "mtls-ca";
/// The `self_signed_tls_client_auth` client (RFC 8705 §2.2).
pub const MTLS_SELF_SIGNED_CLIENT: &str = "mtls-self";
/// The DNS name registered for [`MTLS_CA_CLIENT`] (`tls_client_auth_san_dns`).
pub const MTLS_SAN_DNS: &str = "client.example";

/// The client certificates of a run (mutual TLS, RFC 8705).
#[derive(Debug)]
pub struct MtlsCertificates {
    /// [`MTLS_CA_CLIENT`]'s certificate, from the CA the provider trusts.
    pub ca_issued: oauth_test_server::ClientCertificate,
    /// [`MTLS_SELF_SIGNED_CLIENT`]'s registered self-signed certificate.
    pub self_signed: oauth_test_server::ClientCertificate,
    /// A self-signed certificate registered for nobody.
    pub unregistered: oauth_test_server::ClientCertificate,
    /// A certificate for [`MTLS_SAN_DNS`] from a CA the provider does not trust.
    pub other_ca: oauth_test_server::ClientCertificate,
}

/// A running oidc-provider. It exits when the test process does (its stdin closes).
pub struct OidcProvider {
    /// `https://127.0.0.1:PORT`.
    pub issuer: String,
    /// The CA that signed its certificate.
    pub ca_pem: String,
    /// The client certificates registered (and not) for mutual TLS.
    pub mtls: MtlsCertificates,
    _child: std::sync::Mutex<Child>,
}

impl std::fmt::Debug for OidcProvider {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        f.debug_struct("OidcProvider")
            .field("issuer", &self.issuer)
            .finish_non_exhaustive()
    }
}

fn server_dir() -> PathBuf {
    PathBuf::from(env!("CARGO_MANIFEST_DIR")).join("../../interop/oidc-provider")
}

impl OidcProvider {
    /// The provider shared by every check in this process, started on first use.
    pub fn shared() -> &'static Self {
        static PROVIDER: OnceLock<OidcProvider> = OnceLock::new();
        PROVIDER.get_or_init(Self::start)
    }

    /// A provider of its own (for a check that changes the server, such as rotating its keys).
    pub fn start() -> Self {
        let dir = server_dir();
        assert!(
            dir.join("node_modules/oidc-provider").is_dir(),
            "oidc-provider is not installed in {}: run `cargo xtask interop`",
            dir.display()
        );
        let certs = LoopbackCertificates::generate().expect("certificates");
        static STARTED: std::sync::atomic::AtomicUsize = std::sync::atomic::AtomicUsize::new(0);
        let n = STARTED.fetch_add(1, std::sync::atomic::Ordering::Relaxed);
        let work = std::env::temp_dir().join(format!("oidc-provider-{}-{n}", std::process::id()));
        std::fs::create_dir_all(&work).expect("temp dir");
        let (chain, key) = (work.join("chain.pem"), work.join("key.pem"));
        std::fs::write(&chain, &certs.chain_pem).expect("write cert");
        std::fs::write(&key, &certs.key_pem).expect("write key");
        let client_ca = oauth_test_server::ClientCa::generate().expect("client CA");
        let mtls = MtlsCertificates {
            ca_issued: client_ca.issue(MTLS_SAN_DNS).expect("client certificate"),
            self_signed: oauth_test_server::ClientCertificate::self_signed("self.example")
                .expect("client certificate"),
            unregistered: oauth_test_server::ClientCertificate::self_signed("self.example")
                .expect("client certificate"),
            other_ca: oauth_test_server::ClientCa::generate()
                .and_then(|ca| ca.issue(MTLS_SAN_DNS))
                .expect("client certificate"),
        };
        let (client_ca_file, self_signed_file) =
            (work.join("client-ca.pem"), work.join("self-signed.pem"));
        std::fs::write(&client_ca_file, &client_ca.cert_pem).expect("write client CA");
        std::fs::write(&self_signed_file, &mtls.self_signed.cert_pem).expect("write cert");
        let (clients, assertion_keys) = client_metadata();
        let config = work.join("config.json");
        // Node has been seen (rarely) to hang before it listens, in a futex, never printing its
        // ready line: such a start is killed and tried again, rather than hanging the suite. A
        // start that ends without its ready line (the released port was taken meanwhile) is
        // tried again too, on another port.
        let mut attempt = 0;
        let (mut child, line) = loop {
            attempt += 1;
            let port = std::net::TcpListener::bind("127.0.0.1:0")
                .and_then(|l| l.local_addr())
                .expect("free port")
                .port();
            std::fs::write(
                &config,
                json!({
                    "port": port, "cert": chain, "key": key, "clients": clients,
                    "assertion_keys": assertion_keys, "client_ca": client_ca_file,
                    "self_signed_certs": {MTLS_SELF_SIGNED_CLIENT: self_signed_file},
                })
                .to_string(),
            )
            .expect("write config");
            let mut child = Command::new("node")
                .arg(dir.join("server.mjs"))
                .current_dir(&dir)
                .env("INTEROP_CONFIG", &config)
                .stdin(Stdio::piped())
                .stdout(Stdio::piped())
                .stderr(Stdio::inherit())
                .spawn()
                .expect("start node (is Node 20+ installed?)");
            let stdout = child.stdout.take().expect("stdout");
            let (ready_tx, ready_rx) = std::sync::mpsc::channel();
            std::thread::spawn(move || {
                let mut reader = BufReader::new(stdout);
                let mut line = String::new();
                let _ = reader.read_line(&mut line);
                let _ = ready_tx.send(line);
                // Keep reading, so that the server never writes into a closed pipe.
                let mut rest = String::new();
                while reader.read_line(&mut rest).is_ok_and(|n| n > 0) {
                    let _ = write!(std::io::stderr(), "oidc-provider: {rest}");
                    rest.clear();
                }
            });
            match ready_rx.recv_timeout(Duration::from_secs(60)) {
                Ok(line) if line.contains("\"ready\"") => break (child, line),
                Ok(line) if attempt >= 3 => panic!("oidc-provider did not start: {line:?}"),
                Err(_) if attempt >= 3 => panic!("oidc-provider did not start in 3 attempts"),
                outcome => {
                    let why = match outcome {
                        Ok(_) => "it ended without its ready line",
                        Err(_) => "no ready line in 60 s",
                    };
                    let _ = writeln!(std::io::stderr(), "oidc-provider: {why}; restarting it");
                    let _ = child.kill();
                    let _ = child.wait();
                }
            }
        };
        let ready: Value = serde_json::from_str(&line)
            .unwrap_or_else(|_| panic!("oidc-provider did not start: {line:?}"));
        let issuer = ready["ready"].as_str().expect("issuer").to_owned();
        if let Some(stdin) = child.stdin.as_mut() {
            let _ = stdin.flush();
        }
        Self {
            issuer,
            ca_pem: certs.ca_pem,
            mtls,
            _child: std::sync::Mutex::new(child),
        }
    }

    /// A harness that trusts the provider's CA (https only: no plain-http opt-in).
    pub fn harness<H: Harness>(&self) -> H {
        H::new(&Setup {
            ca_pem: Some(self.ca_pem.clone()),
            ..Setup::default()
        })
        .expect("harness")
    }

    /// A harness that trusts the provider's CA and presents `certificate` (mutual TLS).
    pub fn mtls_harness<H: Harness>(
        &self,
        certificate: &oauth_test_server::ClientCertificate,
    ) -> H {
        H::new(&Setup {
            ca_pem: Some(self.ca_pem.clone()),
            client_identity: Some((certificate.chain_pem.clone(), certificate.key_pem.clone())),
            ..Setup::default()
        })
        .expect("harness with a client certificate")
    }

    /// How many requests the mTLS aliases (`/mtls/...`) received so far.
    pub fn mtls_alias_requests<H: Harness>(&self, h: &H) -> u64 {
        let answer = h
            .execute(
                Request::get(format!("{}/__interop/mtls", self.issuer))
                    .body(Vec::new())
                    .expect("request"),
            )
            .expect("the interop counter");
        let body: Value = serde_json::from_slice(answer.body()).expect("JSON");
        body["mtls_alias_requests"].as_u64().expect("a count")
    }

    /// The metadata from `/.well-known/openid-configuration`, through the adapter's
    /// `discover`.
    pub fn discover<H: Harness>(&self, h: &H) -> ServerMetadata {
        h.discover(&self.issuer).expect("discovery")
    }
}

/// Client credentials for one of the secret-based clients.
pub fn secret_client(id: &str, post: bool) -> Client {
    let secret = ClientSecret::new(SECRET);
    let auth = if post {
        ClientAuthentication::SecretPost(secret)
    } else {
        ClientAuthentication::SecretBasic(secret)
    };
    Client::new(id, auth)
}

/// A `private_key_jwt` or `client_secret_jwt` client, with a fresh assertion for `audience`.
pub fn assertion_client(id: &str, key: &SigningKey, audience: &str) -> Client {
    let assertion = JwtClaims::client_assertion(id, audience)
        .sign(key, SystemTime::now())
        .expect("sign");
    Client::new(
        id,
        ClientAuthentication::Assertion(ClientAssertion::jwt(assertion)),
    )
}

/// The claims of a JWT, unverified (the tests check what the server put in it).
pub fn jwt_claims(token: &str) -> Option<Value> {
    let mut parts = token.split('.');
    let (_, payload, _) = (parts.next()?, parts.next()?, parts.next()?);
    let bytes = base64::engine::general_purpose::URL_SAFE_NO_PAD
        .decode(payload)
        .ok()?;
    serde_json::from_slice(&bytes).ok()
}

/// Sends a request built by oauth-core through the harness (no redirects, no retries).
pub fn send_built<H: Harness>(
    h: &H,
    request: Request<oauth_core::RequestBody>,
) -> Result<Response<Vec<u8>>, Error> {
    let (parts, body) = request.into_parts();
    h.execute(Request::from_parts(parts, body.into_bytes()))
}

/// Introspects `token` as the `gateway` client.
pub fn introspect<H: Harness>(
    h: &H,
    metadata: &ServerMetadata,
    token: &str,
) -> oauth_core::Introspection {
    let request = IntrospectionRequest::new(SecurityToken::new(token))
        .token_type_hint(TokenTypeHint::AccessToken)
        .build(
            metadata
                .introspection_endpoint()
                .expect("introspection endpoint"),
            &secret_client("gateway", false),
        )
        .expect("build");
    parse_introspection_response(&send_built(h, request).expect("introspect")).expect("parse")
}

/// Revokes `token` as the client it was issued to.
pub fn revoke<H: Harness>(
    h: &H,
    metadata: &ServerMetadata,
    client: &Client,
    token: &str,
    hint: TokenTypeHint,
) -> Result<(), Error> {
    let request = RevocationRequest::new(SecurityToken::new(token))
        .token_type_hint(hint)
        .build(
            metadata.revocation_endpoint().expect("revocation endpoint"),
            client,
        )?;
    parse_revocation_response(&send_built(h, request)?)
}

struct OsRandom;

impl RandomSource for OsRandom {
    fn fill(&self, dest: &mut [u8]) -> Result<(), RandomError> {
        use ring::rand::SecureRandom as _;
        ring::rand::SystemRandom::new()
            .fill(dest)
            .map_err(|_| RandomError::new())
    }
}

/// The authorization code flow without a browser: the authorization request, the login and
/// consent forms of oidc-provider's development interactions posted as a user would, cookies
/// kept between steps, and the final redirect's query handed to `handle_callback`.
pub fn authorize<H: Harness>(
    h: &H,
    metadata: &ServerMetadata,
    scopes: &[&str],
    user: &str,
) -> (PendingAuthorization, String) {
    authorize_as(h, metadata, "web", scopes, user)
}

/// Follows the user's browser from `start`: redirects followed (until one to `stop_at`, which
/// is returned), cookies kept, and every form page posted back with its fields as a user
/// would fill them (`login`/`password` for the login form, the user code where one is asked
/// for, hidden fields as they are). Stops at a page with no form (returned as `None`).
pub fn browse<H: Harness>(
    h: &H,
    issuer: &str,
    start: &str,
    stop_at: &str,
    user: &str,
    user_code: Option<&str>,
) -> Option<String> {
    let mut jar: HashMap<String, String> = HashMap::new();
    let mut next: (Method, String, Vec<u8>) = (Method::GET, start.to_owned(), Vec::new());
    for _ in 0..16 {
        let (method, url, body) = next.clone();
        let mut request = Request::builder().method(method.clone()).uri(&url);
        if !jar.is_empty() {
            let cookie: Vec<String> = jar.iter().map(|(k, v)| format!("{k}={v}")).collect();
            request = request.header(header::COOKIE, cookie.join("; "));
        }
        if method == Method::POST {
            request = request.header(header::CONTENT_TYPE, "application/x-www-form-urlencoded");
        }
        let response = h
            .execute(request.body(body).expect("request"))
            .expect("browser step");
        for set in response.headers().get_all(header::SET_COOKIE) {
            let text = set.to_str().unwrap_or_default();
            let pair = text.split(';').next().unwrap_or_default();
            if let Some((name, value)) = pair.split_once('=') {
                let expired = text
                    .to_ascii_lowercase()
                    .contains("expires=thu, 01 jan 1970");
                if value.is_empty() || expired {
                    jar.remove(name.trim());
                } else {
                    jar.insert(name.trim().to_owned(), value.to_owned());
                }
            }
        }
        let absolute = |location: &str| {
            if location.starts_with('/') {
                format!("{issuer}{location}")
            } else {
                location.to_owned()
            }
        };
        if response.status().is_redirection() {
            let location = response.headers()[header::LOCATION]
                .to_str()
                .expect("location")
                .to_owned();
            if !stop_at.is_empty() && location.starts_with(stop_at) {
                return Some(location);
            }
            next = (Method::GET, absolute(&location), Vec::new());
            continue;
        }
        assert_eq!(response.status(), 200, "{url}");
        let html = String::from_utf8_lossy(response.body()).into_owned();
        let form = html
            .split("<form")
            .nth(1)
            .and_then(|f| f.split("</form>").next())?;
        let action = form
            .split("action=\"")
            .nth(1)
            .and_then(|rest| rest.split('"').next())
            .unwrap_or_else(|| panic!("a form without action at {url}"));
        let mut fields = Vec::new();
        for input in form.split("<input").skip(1) {
            let attr = |name: &str| {
                input
                    .split(&format!("{name}=\""))
                    .nth(1)
                    .and_then(|rest| rest.split('"').next())
                    .map(str::to_owned)
            };
            let Some(name) = attr("name") else { continue };
            let value = match name.as_str() {
                "login" => user.to_owned(),
                "password" => "any".to_owned(),
                "user_code" => attr("value")
                    .filter(|v| !v.is_empty())
                    .or_else(|| user_code.map(str::to_owned))
                    .unwrap_or_default(),
                _ => attr("value").unwrap_or_default(),
            };
            fields.push(format!(
                "{}={}",
                name,
                value
                    .bytes()
                    .map(|b| match b {
                        b'A'..=b'Z' | b'a'..=b'z' | b'0'..=b'9' | b'-' | b'_' | b'.' => {
                            (b as char).to_string()
                        }
                        _ => format!("%{b:02X}"),
                    })
                    .collect::<String>()
            ));
        }
        next = (
            Method::POST,
            absolute(action),
            fields.join("&").into_bytes(),
        );
    }
    panic!("the browser did not get through from {start}");
}

/// [`authorize`] for another client.
pub fn authorize_as<H: Harness>(
    h: &H,
    metadata: &ServerMetadata,
    client_id: &str,
    scopes: &[&str],
    user: &str,
) -> (PendingAuthorization, String) {
    authorize_with(h, metadata, client_id, scopes, user, None)
}

/// [`authorize_as`], the authorization code bound to a DPoP key (`dpop_jkt`) when given.
pub fn authorize_with<H: Harness>(
    h: &H,
    metadata: &ServerMetadata,
    client_id: &str,
    scopes: &[&str],
    user: &str,
    dpop_jkt: Option<&str>,
) -> (PendingAuthorization, String) {
    let endpoint = metadata
        .authorization_endpoint()
        .expect("authorization endpoint")
        .clone();
    let mut request = AuthorizationRequest::new(endpoint, client_id);
    if let Some(jkt) = dpop_jkt {
        request = request.dpop_jkt(jkt);
    }
    let pending = request
        .redirect_uri(REDIRECT_URI)
        .scope(scopes.iter().copied())
        .expect_issuer(
            metadata.issuer(),
            metadata.authorization_response_iss_parameter_supported(),
        )
        .build(&OsRandom)
        .expect("authorization request");
    let mut jar: HashMap<String, String> = HashMap::new();
    let mut next: (Method, String, Vec<u8>) = (Method::GET, pending.url().to_owned(), Vec::new());
    for _ in 0..12 {
        let (method, url, body) = next.clone();
        let mut request = Request::builder().method(method.clone()).uri(&url);
        if !jar.is_empty() {
            let cookie: Vec<String> = jar.iter().map(|(k, v)| format!("{k}={v}")).collect();
            request = request.header(header::COOKIE, cookie.join("; "));
        }
        if method == Method::POST {
            request = request.header(header::CONTENT_TYPE, "application/x-www-form-urlencoded");
        }
        let response = h
            .execute(request.body(body).expect("request"))
            .expect("interaction step");
        for set in response.headers().get_all(header::SET_COOKIE) {
            let text = set.to_str().unwrap_or_default();
            let pair = text.split(';').next().unwrap_or_default();
            if let Some((name, value)) = pair.split_once('=') {
                let expired = text
                    .to_ascii_lowercase()
                    .contains("expires=thu, 01 jan 1970");
                if value.is_empty() || expired {
                    jar.remove(name.trim());
                } else {
                    jar.insert(name.trim().to_owned(), value.to_owned());
                }
            }
        }
        if response.status().is_redirection() {
            let location = response.headers()[header::LOCATION]
                .to_str()
                .expect("location")
                .to_owned();
            if location.starts_with(REDIRECT_URI) {
                return (pending, location);
            }
            let absolute = if location.starts_with('/') {
                format!("{}{location}", metadata.issuer())
            } else {
                location
            };
            next = (Method::GET, absolute, Vec::new());
            continue;
        }
        // A form page: post it back, as the user would.
        assert_eq!(response.status(), 200, "{url}");
        let html = String::from_utf8_lossy(response.body()).into_owned();
        let action = html
            .split("action=\"")
            .nth(1)
            .and_then(|rest| rest.split('"').next())
            .unwrap_or_else(|| panic!("no form at {url}: {html}"));
        let action = if action.starts_with('/') {
            format!("{}{action}", metadata.issuer())
        } else {
            action.to_owned()
        };
        let form = if html.contains("name=\"prompt\" value=\"login\"") {
            format!("prompt=login&login={user}&password=any")
        } else {
            "prompt=consent".to_owned()
        };
        next = (Method::POST, action, form.into_bytes());
    }
    panic!("the authorization flow did not finish");
}

/// The RFC 6749 §5.2 error code of a failed token request.
pub fn error_code(e: &Error) -> Option<&ErrorCode> {
    e.error_response().map(|r| r.code())
}

/// client_credentials through every client authentication method, with a resource indicator
/// for a JWT access token and one for an opaque token; the opaque one is introspected.
pub fn client_credentials_every_auth_method<H: Harness>() {
    let p = OidcProvider::shared();
    let h: H = p.harness();
    let m = p.discover(&h);
    let token_endpoint = m.token_endpoint().expect("token endpoint").clone();
    let hmac = SigningKey::hmac(JWT_SECRET.as_bytes(), Algorithm::HS256).expect("hmac");
    let mut clients: Vec<(String, Box<dyn Fn() -> Client>)> = vec![
        (
            "cc-basic".into(),
            Box::new(|| secret_client("cc-basic", false)),
        ),
        (
            "cc-post".into(),
            Box::new(|| secret_client("cc-post", true)),
        ),
    ];
    let te = token_endpoint.as_str().to_owned();
    clients.push((
        "cc-jwt".into(),
        Box::new(move || assertion_client("cc-jwt", &hmac, &te)),
    ));
    for (id, key) in private_key_clients() {
        let te = token_endpoint.as_str().to_owned();
        let key = Arc::new(key);
        clients.push((id.into(), Box::new(move || assertion_client(id, &key, &te))));
    }
    for (id, client) in &clients {
        // A JWT access token for the JWT resource.
        let jwt = h
            .request_token(
                &token_endpoint,
                &client(),
                &TokenRequest::client_credentials()
                    .scope(["api:read"])
                    .resource(JWT_RESOURCE),
            )
            .unwrap_or_else(|e| panic!("{id}, JWT resource: {e}"));
        let claims = jwt_claims(jwt.access_token().expose_secret())
            .unwrap_or_else(|| panic!("{id}: the access token is not a JWT"));
        assert_eq!(claims["aud"], JWT_RESOURCE, "{id}");
        assert_eq!(claims["client_id"], id.as_str(), "{id}");
        assert_eq!(claims["iss"], p.issuer, "{id}");
        assert!(jwt.expires_at().is_some());
        // An opaque one, which the server can introspect.
        let opaque = h
            .request_token(
                &token_endpoint,
                &client(),
                &TokenRequest::client_credentials()
                    .scope(["api:read"])
                    .resource(OPAQUE_RESOURCE),
            )
            .unwrap_or_else(|e| panic!("{id}, opaque resource: {e}"));
        assert!(
            jwt_claims(opaque.access_token().expose_secret()).is_none(),
            "{id}"
        );
        let i = introspect(&h, &m, opaque.access_token().expose_secret());
        assert!(i.active(), "{id}");
        assert_eq!(i.client_id(), Some(id.as_str()));
        assert_eq!(i.audience(), [OPAQUE_RESOURCE]);
        assert!(i.scope().is_some_and(|s| s.contains("api:read")));
    }
}

/// authorization_code + PKCE + `openid` through the adapter's `OpenIdClient`, which validates
/// the id_token by itself (signature with the JWK set fetched from the discovered `jwks_uri`,
/// then issuer, audience, expiry, nonce, `at_hash`) for clients whose id_tokens are signed
/// with RS256, ES256 and EdDSA; UserInfo (JSON, and a signed JWT for the ES256 client); a
/// tampered nonce refused; two refreshes. One JWKS fetch per relying party.
pub fn authorization_code_pkce_openid_and_refresh<H: Harness>() {
    let p = OidcProvider::shared();
    let h: H = p.harness();
    let m = p.discover(&h);
    for (client_id, alg) in [
        ("web", "RS256"),
        ("web-es256", "ES256"),
        ("web-eddsa", "EdDSA"),
    ] {
        let core = oauth_reqwest::OpenIdCore::new(m.clone(), secret_client(client_id, false))
            .expect("an OpenID Connect provider");
        let oidc = h.openid(core);
        let (pending, redirect) = authorize_as(&h, &m, client_id, &["openid", "profile"], "alice");
        assert!(pending.requests_openid());
        let login = h
            .exchange_code(&oidc, &pending, &redirect)
            .unwrap_or_else(|e| panic!("{client_id}: code exchange: {e}"));
        let claims = login
            .id_token
            .clone()
            .unwrap_or_else(|| panic!("{client_id}: no validated id_token"));
        assert_eq!(claims.subject(), "alice", "{client_id}");
        assert_eq!(claims.issuer(), p.issuer, "{client_id}");
        assert_eq!(claims.audience(), [client_id], "{client_id}");
        let id_token = login.token.id_token().expect("id_token").expose_secret();
        assert_eq!(jwt_header(id_token)["alg"], alg, "{client_id}");
        assert_eq!(H::openid_core(&oidc).keys().fetches(), 1, "{client_id}");

        // UserInfo, about alice, refused when it must be about someone else.
        let token = login.token.access_token();
        let info = h
            .userinfo(&oidc, token, Some(claims.subject()))
            .unwrap_or_else(|e| panic!("{client_id}: userinfo: {e}"));
        assert_eq!(info.subject(), "alice");
        assert_eq!(info.string("name"), Some("User alice"), "{client_id}");
        assert!(matches!(
            h.userinfo(&oidc, token, Some("mallory")),
            Err(Error::InvalidUserInfo(oauth_core::IdTokenError::Subject))
        ));
        let raw = h
            .execute(
                Request::get(m.userinfo_endpoint().expect("userinfo").as_str())
                    .header(
                        header::AUTHORIZATION,
                        format!("Bearer {}", token.expose_secret()),
                    )
                    .body(Vec::new())
                    .expect("request"),
            )
            .expect("raw userinfo");
        let content_type = raw.headers()[header::CONTENT_TYPE]
            .to_str()
            .unwrap_or_default();
        assert_eq!(
            content_type.starts_with("application/jwt"),
            client_id == "web-es256",
            "{client_id}: {content_type}"
        );

        // Two refreshes, each id_token validated against the first one's subject.
        let mut refresh = login
            .token
            .refresh_token()
            .expect("a refresh token")
            .clone();
        let mut access = token.expose_secret().to_owned();
        for round in 1..=2 {
            let next = h
                .openid_refresh(&oidc, &refresh, Some(&claims))
                .unwrap_or_else(|e| panic!("{client_id}: refresh {round}: {e}"));
            assert_ne!(next.token.access_token().expose_secret(), access);
            if let Some(refreshed) = &next.id_token {
                assert_eq!(refreshed.subject(), "alice");
            }
            access = next.token.access_token().expose_secret().to_owned();
            if let Some(r) = next.token.refresh_token() {
                refresh = r.clone();
            }
        }
        assert!(introspect(&h, &m, &access).active());
    }

    // The nonce the id_token carries is checked: a flow whose stored nonce was changed (a
    // replayed id_token) is refused after the exchange.
    let oidc = h.openid(
        oauth_reqwest::OpenIdCore::new(m.clone(), secret_client("web", false)).expect("core"),
    );
    let (pending, redirect) = authorize(&h, &m, &["openid"], "alice");
    let mut parts = pending.into_parts();
    parts.nonce = Some(oauth_core::Nonce::new("another-nonce"));
    let tampered = PendingAuthorization::from_parts(parts);
    assert!(matches!(
        h.exchange_code(&oidc, &tampered, &redirect),
        Err(Error::InvalidIdToken(oauth_core::IdTokenError::Nonce))
    ));
    // Only the algorithms the client accepts: an RS256 id_token for a client that takes
    // ES256 only is refused before its claims are read.
    let strict = h.openid(
        oauth_reqwest::OpenIdCore::new(m.clone(), secret_client("web", false))
            .expect("core")
            .algorithms(&[Algorithm::ES256]),
    );
    let (pending, redirect) = authorize(&h, &m, &["openid"], "alice");
    assert!(matches!(
        h.exchange_code(&strict, &pending, &redirect),
        Err(Error::InvalidIdToken(oauth_core::IdTokenError::Signature(
            _
        )))
    ));
}

/// The provider replaces all its signing keys mid-run: the relying party follows with one
/// JWKS fetch (the first id_token naming an unknown `kid`), and no more after that.
pub fn key_rotation_is_followed_with_one_fetch<H: Harness>() {
    let p = OidcProvider::start();
    let h: H = p.harness();
    let m = p.discover(&h);
    let oidc = h.openid(
        oauth_reqwest::OpenIdCore::new(m.clone(), secret_client("web-es256", false)).expect("core"),
    );
    let login = |user: &str| {
        let (pending, redirect) = authorize_as(&h, &m, "web-es256", &["openid"], user);
        let login = h
            .exchange_code(&oidc, &pending, &redirect)
            .unwrap_or_else(|e| panic!("{user}: {e}"));
        let id_token = login
            .token
            .id_token()
            .expect("id_token")
            .expose_secret()
            .to_owned();
        jwt_header(&id_token)["kid"]
            .as_str()
            .expect("kid")
            .to_owned()
    };
    let before = login("alice");
    assert_eq!(H::openid_core(&oidc).keys().fetches(), 1);
    let rotated = h
        .execute(
            Request::post(format!("{}/__interop/rotate", p.issuer))
                .body(Vec::new())
                .expect("request"),
        )
        .expect("rotate");
    assert_eq!(rotated.status(), 200);
    let after = login("bob");
    assert_ne!(before, after, "the keys were replaced");
    assert_eq!(
        H::openid_core(&oidc).keys().fetches(),
        2,
        "one fetch for the new kid"
    );
    login("carol");
    assert_eq!(H::openid_core(&oidc).keys().fetches(), 2);
}

/// The protected header of a JWT, unverified.
pub fn jwt_header(token: &str) -> Value {
    let header = token.split('.').next().unwrap_or_default();
    let bytes = base64::engine::general_purpose::URL_SAFE_NO_PAD
        .decode(header)
        .unwrap_or_default();
    serde_json::from_slice(&bytes).unwrap_or(Value::Null)
}

/// The JWT bearer grant (RFC 7523) and token exchange (RFC 8693), both registered on the
/// server with registerGrantType.
pub fn jwt_bearer_and_token_exchange<H: Harness>() {
    let p = OidcProvider::shared();
    let h: H = p.harness();
    let m = p.discover(&h);
    let token_endpoint = m.token_endpoint().expect("token endpoint");
    let assertion = JwtClaims::jwt_bearer("jwt-bearer", "alice", token_endpoint.as_str())
        .sign(&assertion_key(), SystemTime::now())
        .expect("sign");
    let token = h
        .request_token(
            token_endpoint,
            &secret_client("jwt-bearer", false),
            &TokenRequest::jwt_bearer(assertion).scope(["api:read"]),
        )
        .expect("JWT bearer grant");
    assert!(introspect(&h, &m, token.access_token().expose_secret()).active());
    // A tampered assertion is refused.
    let bad = JwtClaims::jwt_bearer("jwt-bearer", "alice", token_endpoint.as_str())
        .sign(
            &SigningKey::from_pem(ED25519, Algorithm::EdDSA).expect("key"),
            SystemTime::now(),
        )
        .expect("sign");
    let e = h
        .request_token(
            token_endpoint,
            &secret_client("jwt-bearer", false),
            &TokenRequest::jwt_bearer(bad),
        )
        .unwrap_err();
    assert_eq!(error_code(&e), Some(&ErrorCode::InvalidGrant), "{e}");

    let exchanger = secret_client("exchanger", true);
    let subject = h
        .request_token(
            token_endpoint,
            &exchanger,
            &TokenRequest::client_credentials(),
        )
        .expect("subject token");
    let exchange = TokenExchange::new(
        SecurityToken::new(subject.access_token().expose_secret()),
        TOKEN_TYPE_ACCESS_TOKEN,
    )
    .requested_token_type(TOKEN_TYPE_ACCESS_TOKEN);
    let exchanged = h
        .request_token(
            token_endpoint,
            &exchanger,
            &TokenRequest::token_exchange(exchange).scope(["api:read"]),
        )
        .expect("token exchange");
    assert_eq!(exchanged.issued_token_type(), Some(TOKEN_TYPE_ACCESS_TOKEN));
    assert_ne!(
        exchanged.access_token().expose_secret(),
        subject.access_token().expose_secret()
    );
}

/// Token sources whose every request carries a newly signed assertion: `private_key_jwt`
/// clients (RS256, PS256, ES256, EdDSA) and the JWT bearer grant, each through five tokens
/// (first call, `invalidate`, expiry, expiry, `invalidate`). oidc-provider refuses a replayed
/// client assertion `jti`, and the interop server a replayed grant assertion.
pub fn token_sources_sign_every_request<H: Harness>() {
    let p = OidcProvider::shared();
    let h: H = p.harness();
    let m = p.discover(&h);
    let token_endpoint = m.token_endpoint().expect("token endpoint").clone();
    let mut sources: Vec<(String, H::Source)> = Vec::new();
    for (id, key) in private_key_clients() {
        let client = Client::new(id, ClientAssertionSigner::new(key).into_authentication());
        let grant = TokenRequest::client_credentials()
            .scope(["api:read"])
            .resource(SHORT_RESOURCE);
        sources.push((
            id.to_owned(),
            h.source(token_endpoint.clone(), client, spec(grant)),
        ));
    }
    let grant = JwtBearerSigner::new(assertion_key(), "jwt-bearer", "alice")
        .into_grant()
        .scope(["api:read"])
        .resource(SHORT_RESOURCE);
    sources.push((
        "jwt-bearer".to_owned(),
        h.source(
            token_endpoint,
            secret_client("jwt-bearer", false),
            spec(grant),
        ),
    ));
    std::thread::scope(|scope| {
        for (id, source) in &sources {
            let h = &h;
            let m = &m;
            scope.spawn(move || {
                let mut seen: Vec<String> = Vec::new();
                let mut next = |label: &str| {
                    let token = h
                        .token(source)
                        .unwrap_or_else(|e| panic!("{id}, {label}: {e}"));
                    let value = token.expose_secret().to_owned();
                    assert!(
                        !seen.contains(&value),
                        "{id}, {label}: the same token again"
                    );
                    assert!(introspect(h, m, &value).active(), "{id}, {label}");
                    seen.push(value);
                    token
                };
                let first = next("first");
                h.invalidate(source, &first);
                next("after invalidate");
                // 2 s tokens are no longer served past 1.5 s.
                std::thread::sleep(Duration::from_millis(1600));
                next("after expiry");
                std::thread::sleep(Duration::from_millis(1600));
                let fourth = next("after a second expiry");
                h.invalidate(source, &fourth);
                next("after a second invalidate");
            });
        }
    });
}

fn spec(grant: TokenRequest) -> SourceSpec {
    SourceSpec {
        grant: Some(grant),
        policy: Some(RefreshPolicy::default().jitter(Duration::ZERO)),
        ..SourceSpec::default()
    }
}

/// Discovery found every endpoint; introspection and revocation of the tokens obtained.
pub fn discovery_introspection_and_revocation<H: Harness>() {
    let p = OidcProvider::shared();
    let h: H = p.harness();
    let m = p.discover(&h);
    for name in [
        "authorization_endpoint",
        "token_endpoint",
        "jwks_uri",
        "introspection_endpoint",
        "revocation_endpoint",
        "userinfo_endpoint",
    ] {
        let e = m.endpoint(name).unwrap_or_else(|| panic!("{name} missing"));
        assert!(e.as_str().starts_with(&p.issuer), "{name}: {}", e.as_str());
    }
    for grant in [
        "authorization_code",
        "refresh_token",
        "client_credentials",
        "urn:ietf:params:oauth:grant-type:jwt-bearer",
        "urn:ietf:params:oauth:grant-type:token-exchange",
    ] {
        assert!(m.supports_grant(grant), "{grant}");
    }
    let token_endpoint = m.token_endpoint().expect("token endpoint");
    let client = secret_client("cc-basic", false);
    let token = h
        .request_token(token_endpoint, &client, &TokenRequest::client_credentials())
        .expect("token");
    let value = token.access_token().expose_secret();
    assert!(introspect(&h, &m, value).active());
    revoke(&h, &m, &client, value, TokenTypeHint::AccessToken).expect("revoke");
    assert!(!introspect(&h, &m, value).active());
    // Revoking an unknown token succeeds (RFC 7009 §2.2).
    revoke(&h, &m, &client, "unknown", TokenTypeHint::AccessToken).expect("revoke unknown");

    // A refresh token is revoked too, and then refused.
    let web = secret_client("web", false);
    let (pending, redirect) = authorize(&h, &m, &["openid"], "bob");
    let code = pending.handle_callback(&redirect).expect("callback");
    let issued = h
        .request_token(token_endpoint, &web, &pending.token_request(code))
        .expect("code exchange");
    let refresh: RefreshToken = issued.refresh_token().expect("refresh token").clone();
    revoke(
        &h,
        &m,
        &web,
        refresh.expose_secret(),
        TokenTypeHint::RefreshToken,
    )
    .expect("revoke");
    let e = h
        .request_token(token_endpoint, &web, &TokenRequest::refresh_token(refresh))
        .unwrap_err();
    assert_eq!(error_code(&e), Some(&ErrorCode::InvalidGrant), "{e}");
}

/// Each failure maps to its documented typed error.
pub fn failures_are_typed<H: Harness>() {
    let p = OidcProvider::shared();
    let h: H = p.harness();
    let m = p.discover(&h);
    let token_endpoint = m.token_endpoint().expect("token endpoint");
    let once = |client: &Client, request: &TokenRequest| {
        h.request_token(token_endpoint, client, request)
            .unwrap_err()
    };

    // Wrong secret: invalid_client (Basic and post).
    for post in [false, true] {
        let id = if post { "cc-post" } else { "cc-basic" };
        let auth = ClientSecret::new("wrong");
        let auth = if post {
            ClientAuthentication::SecretPost(auth)
        } else {
            ClientAuthentication::SecretBasic(auth)
        };
        let e = once(&Client::new(id, auth), &TokenRequest::client_credentials());
        assert_eq!(error_code(&e), Some(&ErrorCode::InvalidClient), "{e}");
        assert_eq!(e.fault(), oauth_core::Fault::Server);
    }
    // Unknown resource: invalid_target.
    let e = once(
        &secret_client("cc-basic", false),
        &TokenRequest::client_credentials().resource("https://unknown.example/"),
    );
    assert_eq!(error_code(&e), Some(&ErrorCode::InvalidTarget), "{e}");

    let web = secret_client("web", false);
    // A code used twice: invalid_grant.
    let (pending, redirect) = authorize(&h, &m, &["openid"], "carol");
    let code = pending.handle_callback(&redirect).expect("callback");
    h.request_token(token_endpoint, &web, &pending.token_request(code.clone()))
        .expect("first use");
    let e = once(&web, &pending.token_request(code));
    assert_eq!(error_code(&e), Some(&ErrorCode::InvalidGrant), "{e}");
    // A wrong PKCE verifier: invalid_grant.
    let (pending, redirect) = authorize(&h, &m, &["openid"], "dave");
    let code = pending.handle_callback(&redirect).expect("callback");
    let wrong = TokenRequest::authorization_code(
        code,
        Some(REDIRECT_URI.to_owned()),
        Some(oauth_core::PkceVerifier::new(
            "a-wrong-verifier-of-the-right-length-0123456789abcdef",
        )),
    );
    let e = once(&web, &wrong);
    assert_eq!(error_code(&e), Some(&ErrorCode::InvalidGrant), "{e}");
    // A made-up code: invalid_grant.
    let e = once(
        &web,
        &TokenRequest::authorization_code(
            oauth_core::AuthorizationCode::new("made-up"),
            Some(REDIRECT_URI.to_owned()),
            Some(oauth_core::PkceVerifier::new(
                "another-verifier-of-the-right-length-0123456789abcdef",
            )),
        ),
    );
    assert_eq!(error_code(&e), Some(&ErrorCode::InvalidGrant), "{e}");
    // A state that does not match is refused before any request.
    let (pending, redirect) = authorize(&h, &m, &["openid"], "erin");
    let forged = redirect.replace("state=", "state=x");
    assert_eq!(
        pending.handle_callback(&forged).unwrap_err(),
        Error::StateMismatch
    );
}

/// The token response fields the note reports.
pub fn describe(token: &TokenResponse) -> String {
    format!(
        "type {:?}, expires_in {:?}, refresh {}, id_token {}, scope {:?}",
        token.token_type(),
        token.expires_in(),
        token.refresh_token().is_some(),
        token.id_token().is_some(),
        token.scope().map(|s| s.as_str().to_owned())
    )
}

/// The device authorization grant (RFC 8628) with oidc-provider: the TV shows the code, the
/// user approves on the verification page (the user-code form, the confirmation, the login
/// and consent pages, driven as a browser would), the TV's poll gets the tokens.
pub fn device_flow_approved_through_the_verification_page<H: Harness>() {
    let p = OidcProvider::shared();
    let h: H = p.harness();
    let m = p.discover(&h);
    let device = m
        .device_authorization_endpoint()
        .expect("device_authorization_endpoint")
        .clone();
    let token = m.token_endpoint().expect("token endpoint").clone();
    let issuer = p.issuer.clone();
    let ca = p.ca_pem.clone();
    let (tx, rx) = std::sync::mpsc::channel();
    let started = std::time::Instant::now();
    let result = h.device_flow(
        &device,
        &token,
        &Client::new("device-app", ClientAuthentication::None),
        &oauth_core::DeviceAuthorizationRequest::new().scope(["openid", "offline_access"]),
        Box::new(move |auth| {
            let uri = auth.verification_uri().to_owned();
            let code = auth.user_code().to_owned();
            // The user, on their phone: another browser, another HTTP client.
            std::thread::spawn(move || {
                let phone = H::new(&Setup {
                    ca_pem: Some(ca),
                    ..Setup::default()
                })
                .expect("phone");
                let end = browse(&phone, &issuer, &uri, "", "frank", Some(&code));
                let _ = tx.send(end);
            });
        }),
        Some(std::time::Instant::now() + Duration::from_secs(60)),
    );
    let token = result.unwrap_or_else(|e| panic!("device flow: {e}"));
    assert!(
        rx.recv_timeout(Duration::from_secs(5)).is_ok(),
        "the phone finished"
    );
    assert!(token.id_token().is_some(), "openid was asked for");
    assert!(token.refresh_token().is_some());
    let claims = jwt_claims(token.id_token().expect("id_token").expose_secret()).expect("JWT");
    assert_eq!(claims["sub"], "frank");
    // oidc-provider names no interval: the default 5 s before the first poll.
    assert!(started.elapsed() >= Duration::from_secs(5));
}

/// Pushed authorization requests (RFC 9126) with oidc-provider: the parameters pushed with
/// client authentication, the browser sent with `client_id` and `request_uri` only, the code
/// redeemed through `OpenIdClient` (id_token validated).
pub fn pushed_authorization_then_code<H: Harness>() {
    let p = OidcProvider::shared();
    let h: H = p.harness();
    let m = p.discover(&h);
    let par = m
        .endpoint("pushed_authorization_request_endpoint")
        .expect("pushed_authorization_request_endpoint")
        .clone();
    let web = secret_client("web", false);
    let pending = AuthorizationRequest::new(
        m.authorization_endpoint()
            .expect("authorization endpoint")
            .clone(),
        "web",
    )
    .redirect_uri(REDIRECT_URI)
    .scope(["openid", "profile"])
    .expect_issuer(m.issuer(), true)
    .build(&OsRandom)
    .expect("authorization request");
    let pushed = h.push_authorization(&par, &web, &pending).expect("PAR");
    let query = pushed
        .url()
        .split_once('?')
        .map(|(_, q)| q)
        .unwrap_or_default();
    assert!(
        query.starts_with("client_id=web&request_uri=urn"),
        "{query}"
    );
    let redirect =
        browse(&h, &p.issuer, pushed.url(), REDIRECT_URI, "grace", None).expect("redirected back");
    let oidc = h.openid(oauth_reqwest::OpenIdCore::new(m, web).expect("core"));
    let login = h
        .exchange_code(&oidc, &pushed, &redirect)
        .unwrap_or_else(|e| panic!("exchange: {e}"));
    assert_eq!(login.id_token.expect("validated").subject(), "grace");
}

/// Dynamic registration (RFC 7591) and management (RFC 7592) with oidc-provider: a
/// `private_key_jwt` client registered with its public key, used for client_credentials with
/// assertions signed by that key, then read, updated and deleted.
pub fn client_registration_with_private_key_jwt<H: Harness>() {
    let p = OidcProvider::shared();
    let h: H = p.harness();
    let m = p.discover(&h);
    let registration = m
        .endpoint("registration_endpoint")
        .expect("registration_endpoint")
        .clone();
    let key = Arc::new(SigningKey::from_pem(P256, Algorithm::ES256).expect("key"));
    let metadata = oauth_core::ClientMetadata::new()
        .client_name("registered by the interop suite")
        .grant_types(["client_credentials"])
        .response_types(Vec::<String>::new())
        .redirect_uris(Vec::<String>::new())
        .scope(["api:read"])
        .token_endpoint_auth_method("private_key_jwt")
        .set("token_endpoint_auth_signing_alg", json!("ES256"))
        .jwks([key.public_jwk().expect("public JWK")]);
    let registered = h
        .register_client(
            &registration,
            &oauth_core::RegistrationRequest::new(metadata),
        )
        .unwrap_or_else(|e| panic!("register: {e}"));
    assert!(
        registered.client_secret().is_none(),
        "private_key_jwt: no secret"
    );
    assert!(registered.registration_access_token().is_some());
    // client_credentials, authenticated with the key it registered.
    let client =
        registered.client_with(ClientAssertionSigner::new(Arc::clone(&key)).into_authentication());
    let token = h
        .request_token(
            m.token_endpoint().expect("token endpoint"),
            &client,
            &TokenRequest::client_credentials()
                .scope(["api:read"])
                .resource(JWT_RESOURCE),
        )
        .unwrap_or_else(|e| panic!("client_credentials as the registered client: {e}"));
    let claims = jwt_claims(token.access_token().expose_secret()).expect("JWT");
    assert_eq!(claims["client_id"], registered.client_id());
    // Read, update, delete.
    let read = h.read_client_registration(&registered).expect("read");
    assert_eq!(
        read.metadata().string("client_name"),
        Some("registered by the interop suite")
    );
    let updated = h
        .update_client_registration(&read, &read.metadata().clone().client_name("renamed"))
        .unwrap_or_else(|e| panic!("update: {e}"));
    assert_eq!(updated.metadata().string("client_name"), Some("renamed"));
    h.delete_client_registration(&updated).expect("delete");
    assert!(h.read_client_registration(&updated).is_err(), "deleted");
    // The deleted client gets no token.
    let client = updated.client_with(ClientAssertionSigner::new(key).into_authentication());
    let refused = h.request_token(
        m.token_endpoint().expect("token endpoint"),
        &client,
        &TokenRequest::client_credentials().scope(["api:read"]),
    );
    assert_eq!(
        error_code(&refused.expect_err("refused")),
        Some(&ErrorCode::InvalidClient)
    );
}

/// DPoP (RFC 9449) with oidc-provider: client_credentials bound to the client's key (JWT
/// `cnf.jkt`, and `cnf.jkt` in introspection for an opaque token); a client the server
/// requires nonces from (the `use_dpop_nonce` answer retried once with the nonce given); a
/// token source; the code flow of a public client with DPoP, its UserInfo called with
/// `Authorization: DPoP`, its refresh token bound to the key (refused without it); a DPoP
/// token sent as Bearer refused.
pub fn dpop_bound_tokens<H: Harness>() {
    let p = OidcProvider::shared();
    let h: H = p.harness();
    let m = p.discover(&h);
    let token_endpoint = m.token_endpoint().expect("token endpoint").clone();
    let key = jwt_assertion::DpopKey::generate().expect("key");
    let jkt = key.jkt().to_owned();
    let dpop = key.into_dpop();
    let cc = |id: &str| secret_client(id, false).with_dpop(dpop.clone());

    // client_credentials, a JWT access token bound to the key.
    let jwt = h
        .request_token(
            &token_endpoint,
            &cc("cc-basic"),
            &TokenRequest::client_credentials()
                .scope(["api:read"])
                .resource(JWT_RESOURCE),
        )
        .unwrap_or_else(|e| panic!("DPoP client_credentials: {e}"));
    assert_eq!(
        *jwt.access_token().token_type(),
        oauth_core::TokenType::DPoP
    );
    let claims = jwt_claims(jwt.access_token().expose_secret()).expect("JWT");
    assert_eq!(claims["cnf"]["jkt"], jkt.as_str());
    // An opaque one: the binding shows in introspection.
    let opaque = h
        .request_token(
            &token_endpoint,
            &cc("cc-basic"),
            &TokenRequest::client_credentials()
                .scope(["api:read"])
                .resource(OPAQUE_RESOURCE),
        )
        .expect("opaque DPoP token");
    let i = introspect(&h, &m, opaque.access_token().expose_secret());
    assert!(i.active());
    assert_eq!(i.extra()["cnf"]["jkt"], jkt.as_str());

    // The server requires a nonce from this client: the first answer is use_dpop_nonce, the
    // call retries with the nonce given, and later calls reuse it.
    for round in 0..2 {
        let t = h
            .request_token(
                &token_endpoint,
                &cc("cc-dpop-nonce"),
                &TokenRequest::client_credentials().scope(["api:read"]),
            )
            .unwrap_or_else(|e| panic!("nonce round {round}: {e}"));
        assert_eq!(*t.access_token().token_type(), oauth_core::TokenType::DPoP);
    }
    assert!(dpop.nonce(token_endpoint.uri()).is_some());

    // A token source with the key.
    let source = h.source(
        token_endpoint.clone(),
        cc("cc-basic"),
        SourceSpec {
            grant: Some(TokenRequest::client_credentials().scope(["api:read"])),
            ..SourceSpec::default()
        },
    );
    assert_eq!(
        *h.token(&source).expect("source token").token_type(),
        oauth_core::TokenType::DPoP
    );

    // The code flow of a public client with DPoP.
    let spa = Client::new("spa", ClientAuthentication::None).with_dpop(dpop.clone());
    let oidc = h.openid(oauth_reqwest::OpenIdCore::new(m.clone(), spa).expect("core"));
    let (pending, redirect) = authorize_as(&h, &m, "spa", &["openid", "offline_access"], "heidi");
    let login = h
        .exchange_code(&oidc, &pending, &redirect)
        .unwrap_or_else(|e| panic!("DPoP code exchange: {e}"));
    assert_eq!(
        *login.token.access_token().token_type(),
        oauth_core::TokenType::DPoP
    );
    let me = login.id_token.clone().expect("validated id_token");
    let info = h
        .userinfo(&oidc, login.token.access_token(), Some(me.subject()))
        .unwrap_or_else(|e| panic!("userinfo with DPoP: {e}"));
    assert_eq!(info.subject(), "heidi");
    // The same token as Bearer: refused.
    let as_bearer = h
        .execute(
            Request::get(m.userinfo_endpoint().expect("userinfo").as_str())
                .header(
                    header::AUTHORIZATION,
                    format!("Bearer {}", login.token.access_token().expose_secret()),
                )
                .body(Vec::new())
                .expect("request"),
        )
        .expect("answer");
    assert_eq!(as_bearer.status(), 401);
    // The refresh token is bound to the key: refreshed with it, refused without.
    let refresh = login.token.refresh_token().expect("refresh token").clone();
    let without_key = h.request_token(
        &token_endpoint,
        &Client::new("spa", ClientAuthentication::None),
        &TokenRequest::refresh_token(refresh.clone()),
    );
    assert!(
        without_key.is_err(),
        "a bound refresh token without the key"
    );
    let refreshed = h
        .openid_refresh(&oidc, &refresh, Some(&me))
        .unwrap_or_else(|e| panic!("DPoP refresh: {e}"));
    assert_eq!(
        *refreshed.token.access_token().token_type(),
        oauth_core::TokenType::DPoP
    );
}

/// Mutual TLS (RFC 8705) against oidc-provider's `features.mTLS`: client credentials with
/// `tls_client_auth` and with `self_signed_tls_client_auth`, each through discovery with the
/// client's certificate configured (so at the `mtls_endpoint_aliases`), each token bound to
/// the certificate presented (§3: `cnf.x5t#S256` in the introspection of an opaque token and
/// in a JWT access token); the wrong certificate, one from an untrusted CA, and none at all
/// are a typed `invalid_client`.
pub fn mtls_client_credentials_bound_tokens<H: Harness>() {
    let p = OidcProvider::shared();
    let plain: H = p.harness();
    let plain_metadata = p.discover(&plain);
    assert!(plain_metadata.tls_client_certificate_bound_access_tokens());
    for method in ["tls_client_auth", "self_signed_tls_client_auth"] {
        assert!(
            plain_metadata
                .token_endpoint_auth_methods_supported()
                .contains(&method),
            "{method}"
        );
    }
    let cases = [
        (
            MTLS_CA_CLIENT,
            ClientAuthentication::TlsClientAuth,
            &p.mtls.ca_issued,
        ),
        (
            MTLS_SELF_SIGNED_CLIENT,
            ClientAuthentication::SelfSignedTlsClientAuth,
            &p.mtls.self_signed,
        ),
    ];
    for (id, auth, certificate) in cases {
        let h: H = p.mtls_harness(certificate);
        let m = p.discover(&h);
        let token_endpoint = m.token_endpoint().expect("token endpoint").clone();
        assert_eq!(
            token_endpoint.as_str(),
            format!("{}/mtls/token", p.issuer),
            "discovery with a certificate answers the mTLS alias"
        );
        let client = Client::new(id, auth);
        let before = p.mtls_alias_requests(&plain);
        for resource in [OPAQUE_RESOURCE, JWT_RESOURCE] {
            let token = h
                .request_token(
                    &token_endpoint,
                    &client,
                    &TokenRequest::client_credentials()
                        .scope(["api:read"])
                        .resource(resource),
                )
                .unwrap_or_else(|e| panic!("{id} ({resource}): {e}"));
            let value = token.access_token().expose_secret();
            if resource == JWT_RESOURCE {
                // oidc-provider does not introspect its JWTs: the claim is read instead.
                let claims = jwt_claims(value).expect("a JWT access token");
                assert_eq!(claims["client_id"].as_str(), Some(id));
                assert_eq!(
                    claims["cnf"]["x5t#S256"].as_str(),
                    Some(certificate.thumbprint().as_str()),
                    "{id}: the JWT is bound to the certificate"
                );
                continue;
            }
            let introspection = introspect(&plain, &plain_metadata, value);
            assert!(introspection.active(), "{id}");
            assert_eq!(introspection.client_id(), Some(id));
            assert_eq!(
                introspection.certificate_thumbprint(),
                Some(certificate.thumbprint().as_str()),
                "{id}: the token is bound to the certificate"
            );
        }
        // At least these two (the other adapter's check may run at the same time).
        let sent = p.mtls_alias_requests(&plain) - before;
        assert!(sent >= 2, "{id}: {sent} requests at the mTLS aliases");
    }

    // Refused by the server: the wrong certificate, one from a CA the server does not trust.
    // None at all: refused before anything is sent (`client_identity`).
    let refused = |h: &H, id: &str, auth: ClientAuthentication, endpoint: &str| {
        let result = h.request_token(
            &h.endpoint(endpoint).expect("endpoint"),
            &Client::new(id, auth),
            &TokenRequest::client_credentials().scope(["api:read"]),
        );
        let code = result
            .as_ref()
            .err()
            .and_then(|e| e.error_response().map(|r| r.code().clone()));
        assert_eq!(
            code,
            Some(ErrorCode::InvalidClient),
            "{id} at {endpoint}: {result:?}"
        );
    };
    let token = plain_metadata.token_endpoint().expect("token").as_str();
    let alias = format!("{}/mtls/token", p.issuer);
    let unregistered: H = p.mtls_harness(&p.mtls.unregistered);
    let other_ca: H = p.mtls_harness(&p.mtls.other_ca);
    for endpoint in [token, alias.as_str()] {
        refused(
            &unregistered,
            MTLS_SELF_SIGNED_CLIENT,
            ClientAuthentication::SelfSignedTlsClientAuth,
            endpoint,
        );
        refused(
            &other_ca,
            MTLS_CA_CLIENT,
            ClientAuthentication::TlsClientAuth,
            endpoint,
        );
        for (id, auth) in [
            (
                MTLS_SELF_SIGNED_CLIENT,
                ClientAuthentication::SelfSignedTlsClientAuth,
            ),
            (MTLS_CA_CLIENT, ClientAuthentication::TlsClientAuth),
        ] {
            let result = plain.request_token(
                &plain.endpoint(endpoint).expect("endpoint"),
                &Client::new(id, auth),
                &TokenRequest::client_credentials().scope(["api:read"]),
            );
            assert!(
                matches!(
                    &result,
                    Err(Error::InvalidParameter {
                        name: "client_identity",
                        ..
                    })
                ),
                "{id} at {endpoint}: {result:?}"
            );
        }
    }
}

fn payment_initiation() -> oauth_core::authorization_details::AuthorizationDetails {
    use oauth_core::authorization_details::{AuthorizationDetail, AuthorizationDetails};
    AuthorizationDetails::new().with(
        AuthorizationDetail::new("payment_initiation")
            .actions(["initiate"])
            .member(
                "instructedAmount",
                json!({"currency": "EUR", "amount": "12.00"}),
            ),
    )
}

/// A FAPI 2.0 client in a few lines (`OpenIdCore::profile(Profile::Fapi2)`) against
/// oidc-provider holding the `fapi2` client to its FAPI 2.0 profile: the authorization request
/// signed as a request object (RFC 9101) with `authorization_details` (RFC 9396), pushed
/// (RFC 9126) with `private_key_jwt` for the issuer and a DPoP proof, the redirect's `iss`
/// required, the code redeemed for DPoP-bound tokens and an ES256 id_token, the details granted
/// and read back from the token response and from introspection. Each rule the profile holds
/// is refused at build time, naming the rule, before anything is sent.
pub fn fapi2_code_flow_with_jar_rar_and_dpop<H: Harness>() {
    use oauth_core::client::profile::Profile;
    let p = OidcProvider::shared();
    let h: H = p.harness();
    let m = p.discover(&h);
    let key = Arc::new(fapi2_key());
    let dpop = jwt_assertion::DpopKey::generate().expect("key").into_dpop();
    let signer = || ClientAssertionSigner::new(Arc::clone(&key)).audience(&p.issuer);
    let client =
        Client::new(FAPI2_CLIENT, ClientAuthentication::signed(signer())).with_dpop(dpop.clone());

    // The client, in a few lines.
    let core = oauth_reqwest::OpenIdCore::new(m.clone(), client)
        .and_then(|core| core.profile(Profile::Fapi2))
        .unwrap_or_else(|e| panic!("a conformant FAPI 2.0 client: {e}"));
    let oidc = h.openid(core);
    let request = H::openid_core(&oidc)
        .authorization_request(REDIRECT_URI)
        .expect("request")
        .scope(["openid", "api:read"])
        .param("resource", OPAQUE_RESOURCE)
        .dpop_jkt(dpop.thumbprint())
        .authorization_details(payment_initiation())
        .request_object(signer(), &p.issuer);
    let pending = h
        .openid_begin(&oidc, request)
        .unwrap_or_else(|e| panic!("pushed under FAPI 2.0: {e}"));
    let query = pending
        .url()
        .split_once('?')
        .map(|(_, q)| q)
        .unwrap_or_default();
    assert!(
        query.starts_with(&format!("client_id={FAPI2_CLIENT}&request_uri=urn")),
        "{query}"
    );
    let redirect = browse(
        &h,
        &p.issuer,
        pending.url(),
        REDIRECT_URI,
        "fapi-user",
        None,
    )
    .expect("redirected back");
    assert!(redirect.contains("iss="), "{redirect}");
    let login = h
        .exchange_code(&oidc, &pending, &redirect)
        .unwrap_or_else(|e| panic!("FAPI 2.0 code exchange: {e}"));
    assert_eq!(
        *login.token.access_token().token_type(),
        oauth_core::TokenType::DPoP
    );
    assert_eq!(
        login
            .id_token
            .as_ref()
            .expect("verified id_token")
            .subject(),
        "fapi-user"
    );
    assert_eq!(
        login.token.authorization_details(),
        Some(&payment_initiation())
    );
    let introspection = introspect(&h, &m, login.token.access_token().expose_secret());
    assert!(introspection.active());
    assert_eq!(
        introspection.authorization_details(),
        Some(payment_initiation())
    );
    assert_eq!(introspection.extra()["cnf"]["jkt"], dpop.thumbprint());

    // The same provider without the profile's rules met: refused before anything is sent.
    let refused = |client: Client| match oauth_reqwest::OpenIdCore::new(m.clone(), client)
        .and_then(|c| c.profile(Profile::Fapi2))
    {
        Err(Error::Profile(violation)) => violation.rule(),
        other => panic!("not refused: {other:?}"),
    };
    let secret = Client::new(
        FAPI2_CLIENT,
        ClientAuthentication::SecretBasic(ClientSecret::new(SECRET)),
    )
    .with_dpop(dpop.clone());
    assert_eq!(refused(secret), "client authentication");
    assert_eq!(
        refused(Client::new(
            FAPI2_CLIENT,
            ClientAuthentication::signed(signer())
        )),
        "sender-constrained tokens"
    );
    let for_the_endpoint = ClientAssertionSigner::new(Arc::clone(&key));
    assert_eq!(
        refused(
            Client::new(FAPI2_CLIENT, ClientAuthentication::signed(for_the_endpoint))
                .with_dpop(dpop.clone())
        ),
        "assertion audience"
    );
    let rs256 =
        ClientAssertionSigner::new(Arc::new(private_key_clients().remove(0).1)).audience(&p.issuer);
    assert_eq!(
        refused(Client::new(FAPI2_CLIENT, ClientAuthentication::signed(rs256)).with_dpop(dpop)),
        "signature algorithm"
    );
    let plain = H::openid_core(&oidc)
        .authorization_request(REDIRECT_URI)
        .expect("request")
        .scope(["openid"])
        .dangerous_pkce_plain();
    match h.openid_begin(&oidc, plain) {
        Err(Error::Profile(violation)) => assert_eq!(violation.rule(), "PKCE S256"),
        other => panic!("plain PKCE not refused: {other:?}"),
    }
}
