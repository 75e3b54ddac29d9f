//! A small OAuth 2.0 authorization server and protected resource, served over HTTPS on
//! 127.0.0.1 with a certificate authority generated for the run.
//!
//! It is what the adapters' conformance suite, the quickstart and the gateway tests talk to.
//! It is written independently of `oauth-core` (its own form and Basic decoding, its own JWT
//! verification with ring), so the tests do not only check that the code agrees with itself.
//!
//! Endpoints:
//!
//! | path | what |
//! |---|---|
//! | `POST /token` | token endpoint: every grant the seed pages show, every client authentication |
//! | `GET /authorize` | authorization endpoint that consents at once and redirects with a code |
//! | `GET /api` | a protected resource that checks the bearer token |
//! | `POST /introspect` | RFC 7662 token introspection |
//! | `POST /revoke` | RFC 7009 token revocation |
//! | `POST /redirect/token` | answers 307 to `/token` |
//! | `POST /oversize/token` | answers a 2 MiB body |
//! | `POST /slow/token` | answers after [`Behaviour::slow_delay`] |
//! | `/mtls/...` | the endpoints again, for clients that present a certificate: discovery's `mtls_endpoint_aliases` (RFC 8705 §5) |
//!
//! Mutual TLS (RFC 8705): every client is asked for a certificate, none is required. Clients
//! registered with [`TestServer::register_mtls_client`] authenticate with theirs
//! (`tls_client_auth`, `self_signed_tls_client_auth`), and every access token issued over a
//! connection with a certificate is bound to it (`cnf.x5t#S256`). [`ClientCa`] and
//! [`ClientCertificate`] make client certificates for tests.
//!
//! Behaviour is configured with [`Behaviour`] at start and with the methods of [`TestServer`]
//! while it runs (scripted failures, expiring every token, counters).
#![allow(clippy::unwrap_used, clippy::expect_used, clippy::panic)]

mod http1;
mod jwt;
mod oauth;
pub mod services;

use std::collections::VecDeque;
use std::io;
use std::net::{SocketAddr, TcpListener};
use std::sync::atomic::{AtomicBool, Ordering};
use std::sync::{Arc, Mutex};
use std::thread;
use std::time::Duration;

pub use http1::{Request, Response};

/// How the 401 of the protected resource looks when a token is expired or unknown.
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
pub enum RejectionStyle {
    /// RFC 6750: `WWW-Authenticate: Bearer error="invalid_token"`.
    Challenge,
    /// The Dataloy page: no challenge, a JSON body with `"message": "Token expired."`.
    DataloyBody,
}

/// How the server behaves. Start from [`Behaviour::default`] and change fields.
#[derive(Clone, Debug)]
pub struct Behaviour {
    /// The registered client's id.
    pub client_id: String,
    /// The registered client's secret (also the HS256 key for `client_secret_jwt`).
    pub client_secret: String,
    /// The client's public key as a JWK, for `private_key_jwt` and the JWT bearer grant.
    pub client_jwk: Option<serde_json::Value>,
    /// The resource owner for the password grant and the authorization endpoint.
    pub username: String,
    /// Their password.
    pub password: String,
    /// Lifetime of access tokens; `None` omits `expires_in` from responses.
    pub expires_in: Option<u64>,
    /// Send `expires_in` as a JSON string (`"3600"`), as some servers do.
    pub expires_in_as_string: bool,
    /// The `token_type` value sent (`Bearer`, or Anypoint's `bearer`).
    pub token_type: String,
    /// Content type of token responses.
    pub response_content_type: String,
    /// Issue a refresh token to client credentials grants too.
    pub refresh_for_client_credentials: bool,
    /// Replace the refresh token on each refresh, invalidating the old one.
    pub rotate_refresh_tokens: bool,
    /// Require this `audience` parameter (the Dataloy page).
    pub required_audience: Option<String>,
    /// Length of issued access tokens (the Dataloy page shows ~900 characters).
    pub token_len: usize,
    /// Delay before every token response.
    pub token_delay: Duration,
    /// Delay of `/slow/token`.
    pub slow_delay: Duration,
    /// What the protected resource answers to a rejected token.
    pub rejection_style: RejectionStyle,
    /// The protected resource rejects every token, valid or not.
    pub reject_all_tokens: bool,
    /// The introspection endpoint answers this status (with a plain-text body) instead of a
    /// result: the validation endpoint is down.
    pub introspection_failure: Option<u16>,
    /// Delay before every introspection answer.
    pub introspection_delay: Duration,
    /// A careless server: every error answer of the token endpoint echoes the request (its
    /// `Authorization` header and its body, raw and form-decoded) in `error_description`, and
    /// [`Scripted::Echo`] answers 500 with the whole request as plain text.
    pub echo_requests: bool,
    /// A more careless server still: *every* endpoint (but discovery and the JWK set) answers
    /// every request with an error that echoes it — its `Authorization`, `Proxy-Authorization`
    /// and `DPoP` headers, its body raw, form-decoded and, for JSON, member by member.
    pub echo_all: Option<EchoStyle>,
    /// The device flow's polling interval, in seconds (sent as `interval`).
    pub device_interval: u64,
    /// The device code's lifetime, in seconds.
    pub device_expires_in: u64,
    /// How many device polls are answered `slow_down` before the code's real status.
    pub device_slow_downs: u32,
    /// The initial access token client registration requires, if any.
    pub registration_token: Option<String>,
    /// Discovery says `require_pushed_authorization_requests`.
    pub require_par: bool,
    /// Clients that authenticate with mutual TLS (RFC 8705 §2): `client_id` in the body, the
    /// certificate in the TLS handshake, checked as registered (anything else:
    /// `invalid_client`).
    pub mtls_clients: Vec<MtlsClient>,
}

/// A client registered for mutual TLS client authentication (RFC 8705 §2).
#[derive(Clone, Debug)]
pub struct MtlsClient {
    /// Its `client_id`.
    pub client_id: String,
    /// How its certificate is checked.
    pub method: MtlsMethod,
}

/// How the server checks an mTLS client's certificate.
#[derive(Clone, Debug)]
pub enum MtlsMethod {
    /// `tls_client_auth` (§2.1): a chain to this CA, valid for client authentication, whose
    /// certificate names this DNS name as a subject alternative name
    /// (`tls_client_auth_san_dns`).
    TlsClientAuth {
        /// The trusted CA certificate, DER.
        ca_der: Vec<u8>,
        /// `tls_client_auth_san_dns`.
        san_dns: String,
    },
    /// `self_signed_tls_client_auth` (§2.2): exactly the registered certificate, known by
    /// its SHA-256 thumbprint (`x5t#S256`, base64url).
    SelfSigned {
        /// The registered certificate's `x5t#S256`.
        x5t_s256: String,
    },
}

impl MtlsClient {
    /// `client_id` authenticates with `tls_client_auth`: a certificate issued by `ca` for
    /// the DNS name `san_dns`.
    pub fn tls_client_auth(client_id: &str, ca: &ClientCa, san_dns: &str) -> Self {
        Self {
            client_id: client_id.into(),
            method: MtlsMethod::TlsClientAuth {
                ca_der: ca.cert_der.clone(),
                san_dns: san_dns.into(),
            },
        }
    }

    /// `client_id` authenticates with `self_signed_tls_client_auth` and this certificate.
    pub fn self_signed(client_id: &str, certificate: &ClientCertificate) -> Self {
        Self {
            client_id: client_id.into(),
            method: MtlsMethod::SelfSigned {
                x5t_s256: certificate.thumbprint(),
            },
        }
    }
}

/// A certificate authority for client certificates (`tls_client_auth`), generated for a run.
pub struct ClientCa {
    /// The CA certificate, PEM.
    pub cert_pem: String,
    cert_der: Vec<u8>,
    issuer: rcgen::Issuer<'static, rcgen::KeyPair>,
}

impl std::fmt::Debug for ClientCa {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        f.debug_struct("ClientCa").finish_non_exhaustive()
    }
}

impl ClientCa {
    /// A new CA (`CN=oauth-test-server client CA <n>`). Each has a name of its own: OpenSSL
    /// (oidc-provider's Node) aborts the handshake when a chain ends in a CA named like a
    /// trusted one but signed by another key, rather than call the certificate unverified.
    pub fn generate() -> io::Result<Self> {
        use rcgen::{BasicConstraints, CertificateParams, IsCa, KeyPair, KeyUsagePurpose};
        static MADE: std::sync::atomic::AtomicUsize = std::sync::atomic::AtomicUsize::new(0);
        let n = MADE.fetch_add(1, Ordering::Relaxed);
        let key = KeyPair::generate().map_err(io::Error::other)?;
        let mut params = CertificateParams::new(Vec::<String>::new()).map_err(io::Error::other)?;
        params.is_ca = IsCa::Ca(BasicConstraints::Unconstrained);
        params.key_usages = vec![KeyUsagePurpose::KeyCertSign, KeyUsagePurpose::CrlSign];
        params.distinguished_name.push(
            rcgen::DnType::CommonName,
            format!("oauth-test-server client CA {}-{n}", std::process::id()),
        );
        let cert = params.self_signed(&key).map_err(io::Error::other)?;
        Ok(Self {
            cert_pem: cert.pem(),
            cert_der: cert.der().to_vec(),
            issuer: rcgen::Issuer::new(params, key),
        })
    }

    /// A client certificate for `dns_name` (its subject alternative name and common name),
    /// for client authentication, signed by this CA.
    pub fn issue(&self, dns_name: &str) -> io::Result<ClientCertificate> {
        let key = rcgen::KeyPair::generate().map_err(io::Error::other)?;
        let params = client_params(dns_name)?;
        let cert = params
            .signed_by(&key, &self.issuer)
            .map_err(io::Error::other)?;
        Ok(ClientCertificate {
            cert_pem: cert.pem(),
            chain_pem: format!("{}{}", cert.pem(), self.cert_pem),
            key_pem: key.serialize_pem(),
            der: cert.der().to_vec(),
        })
    }
}

/// The parameters of a client certificate for `name`.
fn client_params(name: &str) -> io::Result<rcgen::CertificateParams> {
    let mut params =
        rcgen::CertificateParams::new(vec![name.to_owned()]).map_err(io::Error::other)?;
    params
        .distinguished_name
        .push(rcgen::DnType::CommonName, name);
    params.extended_key_usages = vec![rcgen::ExtendedKeyUsagePurpose::ClientAuth];
    Ok(params)
}

/// A client certificate and its key (test-only keys), as a client presents them.
#[derive(Clone)]
pub struct ClientCertificate {
    /// The certificate, PEM.
    pub cert_pem: String,
    /// The certificate followed by its CA's (the certificate alone when self-signed), PEM:
    /// what the client presents.
    pub chain_pem: String,
    /// The private key, PKCS#8 PEM.
    pub key_pem: String,
    der: Vec<u8>,
}

impl std::fmt::Debug for ClientCertificate {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        f.debug_struct("ClientCertificate")
            .field("x5t#S256", &self.thumbprint())
            .finish_non_exhaustive()
    }
}

impl ClientCertificate {
    /// A self-signed certificate for `name` (`self_signed_tls_client_auth`).
    pub fn self_signed(name: &str) -> io::Result<Self> {
        let key = rcgen::KeyPair::generate().map_err(io::Error::other)?;
        let cert = client_params(name)?
            .self_signed(&key)
            .map_err(io::Error::other)?;
        Ok(Self {
            cert_pem: cert.pem(),
            chain_pem: cert.pem(),
            key_pem: key.serialize_pem(),
            der: cert.der().to_vec(),
        })
    }

    /// The certificate, DER.
    pub fn der(&self) -> &[u8] {
        &self.der
    }

    /// `x5t#S256`: base64url(SHA-256(DER)), what tokens bound to it carry (RFC 8705 §3.1).
    pub fn thumbprint(&self) -> String {
        thumbprint(&self.der)
    }
}

/// base64url(SHA-256(`der`)).
pub(crate) fn thumbprint(der: &[u8]) -> String {
    use base64::Engine as _;
    base64::engine::general_purpose::URL_SAFE_NO_PAD
        .encode(ring::digest::digest(&ring::digest::SHA256, der))
}

impl Default for Behaviour {
    fn default() -> Self {
        Self {
            client_id: "test-client".into(),
            client_secret: "test-secret~?:%+& with spaces".into(),
            client_jwk: None,
            username: "alice".into(),
            password: "wonderland".into(),
            expires_in: Some(3600),
            expires_in_as_string: false,
            token_type: "Bearer".into(),
            response_content_type: "application/json".into(),
            refresh_for_client_credentials: false,
            rotate_refresh_tokens: true,
            required_audience: None,
            token_len: 48,
            token_delay: Duration::ZERO,
            slow_delay: Duration::from_secs(5),
            rejection_style: RejectionStyle::Challenge,
            reject_all_tokens: false,
            introspection_failure: None,
            introspection_delay: Duration::ZERO,
            echo_requests: false,
            echo_all: None,
            device_interval: 1,
            device_expires_in: 600,
            device_slow_downs: 0,
            registration_token: None,
            require_par: false,
            mtls_clients: Vec::new(),
        }
    }
}

/// How [`Behaviour::echo_all`] answers.
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
pub enum EchoStyle {
    /// 400 `{"error": "invalid_client", "error_description": "you sent: …"}`.
    OAuthError,
    /// 500 with the request as a plain-text page.
    Page,
}

/// A response the token endpoint gives instead of its normal answer, once, in order.
#[derive(Clone, Debug)]
pub enum Scripted {
    /// This status with a JSON `{"error": "server_error"}` body.
    Status(u16),
    /// 429 with `Retry-After: secs`.
    TooManyRequests {
        /// The `Retry-After` value in seconds.
        retry_after: u64,
    },
    /// Any response.
    Raw(Response),
    /// 500 with the request (headers and body) echoed as plain text.
    Echo,
}

/// Counters of what the server saw.
#[derive(Clone, Debug, Default, PartialEq, Eq)]
pub struct Counters {
    /// Requests to any token endpoint path.
    pub token_requests: usize,
    /// Requests to `/api`.
    pub resource_requests: usize,
    /// Requests to `/introspect`.
    pub introspection_requests: usize,
    /// Requests to `/revoke`.
    pub revocation_requests: usize,
    /// Requests to `/jwks`.
    pub jwks_requests: usize,
    /// Device polls (token requests with the device code grant).
    pub device_polls: usize,
    /// Requests to `/par`.
    pub par_requests: usize,
    /// Requests to `/upload` and `/download` (streamed bodies).
    pub stream_requests: usize,
    /// Requests to the mTLS aliases (`/mtls/...`, RFC 8705 §5).
    pub mtls_alias_requests: usize,
}

/// The server's signing key for JWT access tokens (ES256), published at `/jwks`.
pub(crate) struct JwtKey {
    pub(crate) pair: ring::signature::EcdsaKeyPair,
    pub(crate) kid: String,
}

impl JwtKey {
    fn generate(n: usize) -> io::Result<Self> {
        use ring::signature::{ECDSA_P256_SHA256_FIXED_SIGNING, EcdsaKeyPair};
        let rng = ring::rand::SystemRandom::new();
        let pkcs8 = EcdsaKeyPair::generate_pkcs8(&ECDSA_P256_SHA256_FIXED_SIGNING, &rng)
            .map_err(|_| io::Error::other("key generation"))?;
        let pair = EcdsaKeyPair::from_pkcs8(&ECDSA_P256_SHA256_FIXED_SIGNING, pkcs8.as_ref(), &rng)
            .map_err(|_| io::Error::other("key parsing"))?;
        Ok(Self {
            pair,
            kid: format!("test-key-{n}"),
        })
    }

    pub(crate) fn public_jwk(&self) -> serde_json::Value {
        use base64::Engine as _;
        use ring::signature::KeyPair as _;
        let b64 = base64::engine::general_purpose::URL_SAFE_NO_PAD;
        // Uncompressed point: 0x04 || x || y.
        let point = self.pair.public_key().as_ref();
        let (x, y) = point.get(1..).unwrap_or_default().split_at(32);
        serde_json::json!({
            "kty": "EC", "crv": "P-256", "use": "sig", "alg": "ES256", "kid": self.kid,
            "x": b64.encode(x), "y": b64.encode(y),
        })
    }
}

pub(crate) struct State {
    pub(crate) behaviour: Behaviour,
    pub(crate) base: String,
    pub(crate) script: VecDeque<Scripted>,
    pub(crate) counters: Counters,
    pub(crate) token_log: Vec<Request>,
    pub(crate) store: oauth::Store,
    pub(crate) jwt_keys: Vec<JwtKey>,
    pub(crate) keys_made: usize,
    /// `/jwks` requests still to be answered 503.
    pub(crate) jwks_failures: usize,
    /// The `x5t#S256` of the client certificate of the token request being answered: its
    /// access token is bound to it (RFC 8705 §3).
    pub(crate) presented_x5t: Option<String>,
}

/// A running server. Stops when dropped.
pub struct TestServer {
    addr: SocketAddr,
    base: String,
    ca_pem: String,
    state: Arc<Mutex<State>>,
    stop: Arc<AtomicBool>,
}

impl TestServer {
    /// Starts an HTTPS server on 127.0.0.1 with a fresh certificate authority.
    pub fn start(behaviour: Behaviour) -> io::Result<Self> {
        Self::start_on_port(behaviour, 0)
    }

    /// Starts an HTTPS server on `127.0.0.1:port` (0: a port the system chooses) with a fresh
    /// certificate authority: what the `oauth-test-server` binary runs.
    pub fn start_on_port(behaviour: Behaviour, port: u16) -> io::Result<Self> {
        let (ca_pem, config) = tls_config()?;
        Self::start_inner(behaviour, Some(Arc::new(config)), ca_pem, port)
    }

    /// Starts a plain-HTTP server on 127.0.0.1 (to test the loopback opt-in).
    pub fn start_plain_http(behaviour: Behaviour) -> io::Result<Self> {
        Self::start_inner(behaviour, None, String::new(), 0)
    }

    fn start_inner(
        behaviour: Behaviour,
        tls: Option<Arc<rustls::ServerConfig>>,
        ca_pem: String,
        port: u16,
    ) -> io::Result<Self> {
        let listener = TcpListener::bind(("127.0.0.1", port))?;
        let addr = listener.local_addr()?;
        let scheme = if tls.is_some() { "https" } else { "http" };
        let base = format!("{scheme}://127.0.0.1:{}", addr.port());
        let state = Arc::new(Mutex::new(State {
            behaviour,
            base: base.clone(),
            script: VecDeque::new(),
            counters: Counters::default(),
            token_log: Vec::new(),
            store: oauth::Store::default(),
            jwt_keys: vec![JwtKey::generate(0)?],
            keys_made: 1,
            jwks_failures: 0,
            presented_x5t: None,
        }));
        let stop = Arc::new(AtomicBool::new(false));
        let handler_state = state.clone();
        let handler: Arc<http1::Handler> =
            Arc::new(move |request: &Request| oauth::handle(&handler_state, request));
        let thread_stop = stop.clone();
        thread::Builder::new()
            .name("oauth-test-server".into())
            .spawn(move || http1::serve(listener, tls, handler, thread_stop))?;
        Ok(Self {
            addr,
            base,
            ca_pem,
            state,
            stop,
        })
    }

    /// `https://127.0.0.1:PORT` followed by `path`.
    pub fn url(&self, path: &str) -> String {
        format!("{}{path}", self.base)
    }

    /// The certificate authority that signed the server's certificate, in PEM.
    pub fn ca_pem(&self) -> &str {
        &self.ca_pem
    }

    /// What the server has seen so far.
    pub fn counters(&self) -> Counters {
        self.lock().counters.clone()
    }

    /// Every request the token endpoints received, in order.
    pub fn token_requests(&self) -> Vec<Request> {
        self.lock().token_log.clone()
    }

    /// Queues responses that the token endpoint gives before answering normally again.
    pub fn script(&self, responses: impl IntoIterator<Item = Scripted>) {
        self.lock().script.extend(responses);
    }

    /// Answers the next `n` requests to `/jwks` with 503 (a JWKS endpoint in an outage), then
    /// the keys again.
    pub fn fail_jwks(&self, n: usize) {
        self.lock().jwks_failures = n;
    }

    /// Registers a client that authenticates with mutual TLS (RFC 8705 §2).
    pub fn register_mtls_client(&self, client: MtlsClient) {
        self.lock().behaviour.mtls_clients.push(client);
    }

    /// Changes the behaviour while running.
    pub fn configure(&self, f: impl FnOnce(&mut Behaviour)) {
        f(&mut self.lock().behaviour);
    }

    /// Makes every access token issued so far expired (the resource rejects it), as if its
    /// lifetime had run out on the server's clock.
    pub fn expire_access_tokens(&self) {
        self.lock().store.expire_all();
    }

    /// Registers an access token the server will accept (for introspection tests).
    pub fn issue_access_token(&self, client_id: &str, scope: &str, lifetime: Duration) -> String {
        let mut state = self.lock();
        let len = state.behaviour.token_len;
        state.store.issue_access(client_id, scope, lifetime, len)
    }

    /// Signs a JWT with the server's current key (ES256, its `kid`), with this header (its
    /// `alg` and `kid` are set unless given) and these claims: a JWT access token when the
    /// header says `typ: at+jwt`, or anything a test wants the gateway to refuse.
    pub fn sign_jwt(&self, header: serde_json::Value, claims: serde_json::Value) -> String {
        use base64::Engine as _;
        let b64 = base64::engine::general_purpose::URL_SAFE_NO_PAD;
        let state = self.lock();
        let Some(key) = state.jwt_keys.last() else {
            return String::new();
        };
        let mut header = header;
        if let Some(h) = header.as_object_mut() {
            h.entry("alg").or_insert_with(|| "ES256".into());
            h.entry("kid").or_insert_with(|| key.kid.clone().into());
        }
        let input = format!(
            "{}.{}",
            b64.encode(header.to_string()),
            b64.encode(claims.to_string())
        );
        let rng = ring::rand::SystemRandom::new();
        let signature = key
            .pair
            .sign(&rng, input.as_bytes())
            .map(|s| b64.encode(s.as_ref()))
            .unwrap_or_default();
        format!("{input}.{signature}")
    }

    /// A JWT access token (RFC 9068) from this server (`iss` = [`url("")`](Self::url)) for
    /// `audience`, issued to `client_id` with `scope`, valid for `lifetime`.
    pub fn issue_jwt_access_token(
        &self,
        client_id: &str,
        scope: &str,
        audience: &str,
        lifetime: Duration,
    ) -> String {
        self.jwt_access_token(client_id, scope, audience, lifetime, None)
    }

    /// A JWT access token as [`issue_jwt_access_token`](Self::issue_jwt_access_token) makes,
    /// bound to the client certificate with this `x5t#S256` (`cnf`, RFC 8705 §3.1).
    pub fn issue_bound_jwt_access_token(
        &self,
        client_id: &str,
        scope: &str,
        audience: &str,
        lifetime: Duration,
        x5t_s256: &str,
    ) -> String {
        self.jwt_access_token(client_id, scope, audience, lifetime, Some(x5t_s256))
    }

    fn jwt_access_token(
        &self,
        client_id: &str,
        scope: &str,
        audience: &str,
        lifetime: Duration,
        x5t_s256: Option<&str>,
    ) -> String {
        let now = std::time::SystemTime::now()
            .duration_since(std::time::UNIX_EPOCH)
            .map(|d| d.as_secs())
            .unwrap_or_default();
        let mut claims = serde_json::json!({
            "iss": self.url(""), "aud": audience, "sub": "user-1", "client_id": client_id,
            "scope": scope, "iat": now, "exp": now + lifetime.as_secs(),
            "jti": format!("jti-{now}-{}", self.counters().token_requests),
        });
        if let Some(x5t) = x5t_s256 {
            claims["cnf"] = serde_json::json!({ "x5t#S256": x5t });
        }
        self.sign_jwt(serde_json::json!({"typ": "at+jwt"}), claims)
    }

    /// Approves (or declines) the device authorization with this user code, as the user would
    /// at the verification page. False if no such code is pending.
    pub fn decide_device(&self, user_code: &str, approve: bool) -> bool {
        self.lock().store.decide_device(user_code, approve)
    }

    /// Replaces the signing key: `/jwks` publishes only the new one (`keep_old`: both).
    pub fn rotate_jwt_key(&self, keep_old: bool) {
        let mut state = self.lock();
        let n = state.keys_made;
        if let Ok(key) = JwtKey::generate(n) {
            if !keep_old {
                state.jwt_keys.clear();
            }
            state.jwt_keys.push(key);
            state.keys_made += 1;
        }
    }

    fn lock(&self) -> std::sync::MutexGuard<'_, State> {
        self.state.lock().unwrap_or_else(|e| e.into_inner())
    }
}

impl Drop for TestServer {
    fn drop(&mut self) {
        self.stop.store(true, Ordering::Release);
        http1::wake(self.addr);
    }
}

/// A certificate authority made for one run, and a server certificate for `127.0.0.1` and
/// `localhost` signed by it: for servers other than this one (the interop suite's
/// oidc-provider) that must be trusted through the adapters' extra-CA option.
#[derive(Clone)]
pub struct LoopbackCertificates {
    /// The CA certificate, PEM: what clients trust.
    pub ca_pem: String,
    /// The server certificate followed by the CA certificate, PEM.
    pub chain_pem: String,
    /// The server's private key, PKCS#8 PEM.
    pub key_pem: String,
    chain_der: Vec<rustls::pki_types::CertificateDer<'static>>,
    key_der: Vec<u8>,
}

impl std::fmt::Debug for LoopbackCertificates {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        f.debug_struct("LoopbackCertificates")
            .finish_non_exhaustive()
    }
}

impl LoopbackCertificates {
    /// Generates a new CA and server certificate.
    pub fn generate() -> io::Result<Self> {
        use rcgen::{BasicConstraints, CertificateParams, IsCa, KeyPair, KeyUsagePurpose, SanType};
        fn err(e: impl std::error::Error + Send + Sync + 'static) -> io::Error {
            io::Error::other(e)
        }
        let ca_key = KeyPair::generate().map_err(err)?;
        let mut ca_params = CertificateParams::new(Vec::<String>::new()).map_err(err)?;
        ca_params.is_ca = IsCa::Ca(BasicConstraints::Unconstrained);
        ca_params.key_usages = vec![KeyUsagePurpose::KeyCertSign, KeyUsagePurpose::CrlSign];
        ca_params
            .distinguished_name
            .push(rcgen::DnType::CommonName, "oauth-test-server CA");
        let ca_cert = ca_params.self_signed(&ca_key).map_err(err)?;
        let issuer = rcgen::Issuer::new(ca_params, ca_key);

        let key = KeyPair::generate().map_err(err)?;
        let mut params = CertificateParams::new(vec!["localhost".to_owned()]).map_err(err)?;
        params
            .subject_alt_names
            .push(SanType::IpAddress(std::net::IpAddr::from([127, 0, 0, 1])));
        let cert = params.signed_by(&key, &issuer).map_err(err)?;
        Ok(Self {
            ca_pem: ca_cert.pem(),
            chain_pem: format!("{}{}", cert.pem(), ca_cert.pem()),
            key_pem: key.serialize_pem(),
            chain_der: vec![cert.der().clone(), ca_cert.der().clone()],
            key_der: key.serialize_der(),
        })
    }
}

/// A CA and a server certificate for `127.0.0.1` and `localhost`, signed by it.
fn tls_config() -> io::Result<(String, rustls::ServerConfig)> {
    fn err(e: impl std::error::Error + Send + Sync + 'static) -> io::Error {
        io::Error::other(e)
    }
    let certs = LoopbackCertificates::generate()?;
    let provider = Arc::new(rustls::crypto::ring::default_provider());
    let verifier = Arc::new(AnyClientCertificate {
        algorithms: provider.signature_verification_algorithms,
    });
    let config = rustls::ServerConfig::builder_with_provider(provider)
        .with_safe_default_protocol_versions()
        .map_err(err)?
        .with_client_cert_verifier(verifier)
        .with_single_cert(
            certs.chain_der.clone(),
            rustls::pki_types::PrivateKeyDer::Pkcs8(certs.key_der.clone().into()),
        )
        .map_err(err)?;
    Ok((certs.ca_pem, config))
}

/// Asks every client for a certificate, accepts none, and accepts any certificate whose key
/// signed the handshake: the server checks the certificate itself, per client
/// (`tls_client_auth` against the client's CA and subject, `self_signed_tls_client_auth`
/// against the registered thumbprint), as RFC 8705 §2 leaves that to the authorization server.
#[derive(Debug)]
struct AnyClientCertificate {
    algorithms: rustls::crypto::WebPkiSupportedAlgorithms,
}

impl rustls::server::danger::ClientCertVerifier for AnyClientCertificate {
    fn offer_client_auth(&self) -> bool {
        true
    }

    fn client_auth_mandatory(&self) -> bool {
        false
    }

    fn root_hint_subjects(&self) -> &[rustls::DistinguishedName] {
        &[]
    }

    fn verify_client_cert(
        &self,
        _end_entity: &rustls::pki_types::CertificateDer<'_>,
        _intermediates: &[rustls::pki_types::CertificateDer<'_>],
        _now: rustls::pki_types::UnixTime,
    ) -> Result<rustls::server::danger::ClientCertVerified, rustls::Error> {
        Ok(rustls::server::danger::ClientCertVerified::assertion())
    }

    fn verify_tls12_signature(
        &self,
        message: &[u8],
        cert: &rustls::pki_types::CertificateDer<'_>,
        dss: &rustls::DigitallySignedStruct,
    ) -> Result<rustls::client::danger::HandshakeSignatureValid, rustls::Error> {
        rustls::crypto::verify_tls12_signature(message, cert, dss, &self.algorithms)
    }

    fn verify_tls13_signature(
        &self,
        message: &[u8],
        cert: &rustls::pki_types::CertificateDer<'_>,
        dss: &rustls::DigitallySignedStruct,
    ) -> Result<rustls::client::danger::HandshakeSignatureValid, rustls::Error> {
        rustls::crypto::verify_tls13_signature(message, cert, dss, &self.algorithms)
    }

    fn supported_verify_schemes(&self) -> Vec<rustls::SignatureScheme> {
        self.algorithms.supported_schemes()
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    /// The payload of a compact JWS, decoded (the signature is the gateway tests' business).
    fn payload(jwt: &str) -> serde_json::Value {
        use base64::Engine as _;
        let part = jwt.split('.').nth(1).unwrap();
        let bytes = base64::engine::general_purpose::URL_SAFE_NO_PAD
            .decode(part)
            .unwrap();
        serde_json::from_slice(&bytes).unwrap()
    }

    #[test]
    fn bound_jwt_access_tokens_carry_the_thumbprint() {
        let server = TestServer::start(Behaviour::default()).unwrap();
        let certificate = ClientCertificate::self_signed("self.example").unwrap();
        let x5t = certificate.thumbprint();
        // base64url of a SHA-256 digest: 43 characters, no padding.
        assert_eq!(x5t.len(), 43);
        assert_eq!(x5t, thumbprint(certificate.der()));
        let bound = server.issue_bound_jwt_access_token(
            "app",
            "read",
            "https://api.example",
            Duration::from_secs(60),
            &x5t,
        );
        assert_eq!(payload(&bound)["cnf"]["x5t#S256"], x5t.as_str());
        let plain = server.issue_jwt_access_token(
            "app",
            "read",
            "https://api.example",
            Duration::from_secs(60),
        );
        assert!(payload(&plain).get("cnf").is_none());
    }

    #[test]
    fn client_certificates_are_for_client_authentication() {
        let ca = ClientCa::generate().unwrap();
        let other = ClientCa::generate().unwrap();
        // Each CA has a name of its own.
        assert_ne!(ca.cert_pem, other.cert_pem);
        let issued = ca.issue("client.example").unwrap();
        assert!(issued.chain_pem.starts_with(&issued.cert_pem));
        assert!(issued.chain_pem.ends_with(&ca.cert_pem));
        let registration = MtlsClient::tls_client_auth("app", &ca, "client.example");
        let chain = vec![issued.der().to_vec()];
        assert!(oauth::mtls_certificate_matches(&registration.method, &chain).is_ok());
        let elsewhere = vec![other.issue("client.example").unwrap().der().to_vec()];
        assert!(oauth::mtls_certificate_matches(&registration.method, &elsewhere).is_err());
        let renamed = vec![ca.issue("intruder.example").unwrap().der().to_vec()];
        assert!(oauth::mtls_certificate_matches(&registration.method, &renamed).is_err());
        assert!(oauth::mtls_certificate_matches(&registration.method, &[]).is_err());
        let self_signed = ClientCertificate::self_signed("self.example").unwrap();
        let registration = MtlsClient::self_signed("app", &self_signed);
        let own = vec![self_signed.der().to_vec()];
        assert!(oauth::mtls_certificate_matches(&registration.method, &own).is_ok());
        assert!(oauth::mtls_certificate_matches(&registration.method, &chain).is_err());
        // No secret in Debug.
        let shown = format!("{self_signed:?} {ca:?}");
        for line in self_signed
            .key_pem
            .lines()
            .filter(|l| !l.starts_with("-----"))
        {
            assert!(!shown.contains(line));
        }
    }
}
