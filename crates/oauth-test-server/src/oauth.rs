//! The OAuth endpoints.

use std::collections::{HashMap, HashSet};
use std::sync::Mutex;
use std::time::{Duration, Instant, SystemTime, UNIX_EPOCH};

use base64::Engine;
use base64::engine::general_purpose::{STANDARD, URL_SAFE_NO_PAD};
use serde_json::{Map, Value, json};

use crate::http1::{Request, Response};
use crate::{RejectionStyle, Scripted, State};

const JWT_BEARER: &str = "urn:ietf:params:oauth:grant-type:jwt-bearer";
const TOKEN_EXCHANGE: &str = "urn:ietf:params:oauth:grant-type:token-exchange";
const CLIENT_ASSERTION_TYPE: &str = "urn:ietf:params:oauth:client-assertion-type:jwt-bearer";
const DEVICE_CODE: &str = "urn:ietf:params:oauth:grant-type:device_code";

#[derive(Clone, Copy, PartialEq, Eq)]
enum DeviceStatus {
    Pending,
    Approved,
    Denied,
}

struct DeviceGrant {
    client_id: String,
    scope: String,
    user_code: String,
    status: DeviceStatus,
    expires: Instant,
    interval: Duration,
    last_poll: Option<Instant>,
}

struct Registration {
    metadata: Map<String, Value>,
    secret: Option<String>,
    access_token: String,
}

pub(crate) struct AccessGrant {
    client_id: String,
    scope: String,
    subject: Option<String>,
    expires: Instant,
    exp_epoch: u64,
    revoked: bool,
    authorization_details: Option<Value>,
    /// The `x5t#S256` of the client certificate the token is bound to (RFC 8705 §3).
    x5t: Option<String>,
}

struct RefreshGrant {
    client_id: String,
    scope: String,
    subject: Option<String>,
    authorization_details: Option<Value>,
}

struct CodeGrant {
    client_id: String,
    redirect_uri: String,
    challenge: Option<(String, String)>,
    scope: String,
    nonce: Option<String>,
    authorization_details: Option<Value>,
}

#[derive(Default)]
pub(crate) struct Store {
    access: HashMap<String, AccessGrant>,
    refresh: HashMap<String, RefreshGrant>,
    codes: HashMap<String, CodeGrant>,
    jtis: HashSet<String>,
    devices: HashMap<String, DeviceGrant>,
    pushed: HashMap<String, HashMap<String, String>>,
    registrations: HashMap<String, Registration>,
    counter: u64,
}

impl Store {
    fn fresh(&mut self, prefix: &str, len: usize) -> String {
        self.counter += 1;
        let mut value = format!("{prefix}{:06}-", self.counter);
        let mut seed = self.counter.wrapping_mul(0x9E37_79B9_7F4A_7C15);
        const ALPHABET: &[u8] = b"ABCDEFGHIJKLMNOPQRSTUVWXYZabcdefghijklmnopqrstuvwxyz0123456789-_";
        while value.len() < len {
            seed ^= seed << 13;
            seed ^= seed >> 7;
            seed ^= seed << 17;
            value.push(ALPHABET[(seed % 64) as usize] as char);
        }
        value
    }

    pub(crate) fn issue_access(
        &mut self,
        client_id: &str,
        scope: &str,
        lifetime: Duration,
        len: usize,
    ) -> String {
        self.issue(client_id, scope, None, lifetime, len, None)
    }

    fn issue(
        &mut self,
        client_id: &str,
        scope: &str,
        subject: Option<&str>,
        lifetime: Duration,
        len: usize,
        authorization_details: Option<Value>,
    ) -> String {
        let token = self.fresh("at", len);
        let exp_epoch = (SystemTime::now() + lifetime)
            .duration_since(UNIX_EPOCH)
            .map_or(0, |d| d.as_secs());
        self.access.insert(
            token.clone(),
            AccessGrant {
                client_id: client_id.into(),
                scope: scope.into(),
                subject: subject.map(Into::into),
                expires: Instant::now() + lifetime,
                exp_epoch,
                revoked: false,
                authorization_details,
                x5t: None,
            },
        );
        token
    }

    pub(crate) fn decide_device(&mut self, user_code: &str, approve: bool) -> bool {
        match self
            .devices
            .values_mut()
            .find(|d| d.user_code == user_code && d.status == DeviceStatus::Pending)
        {
            Some(d) => {
                d.status = if approve {
                    DeviceStatus::Approved
                } else {
                    DeviceStatus::Denied
                };
                true
            }
            None => false,
        }
    }

    pub(crate) fn expire_all(&mut self) {
        let now = Instant::now();
        for grant in self.access.values_mut() {
            grant.expires = now;
        }
    }

    fn valid_access(&self, token: &str) -> Option<&AccessGrant> {
        self.access
            .get(token)
            .filter(|g| !g.revoked && Instant::now() < g.expires)
    }
}

pub(crate) fn handle(state: &Mutex<State>, request: &Request) -> Response {
    let path = request.path.as_str();
    let echo_all = lock(state).behaviour.echo_all;
    if let Some(style) = echo_all.filter(|_| !path.starts_with("/.well-known/") && path != "/jwks")
    {
        let text = format!("you sent: {}", echo(request));
        return match style {
            crate::EchoStyle::OAuthError => Response::json(
                400,
                &json!({"error": "invalid_client", "error_description": text}),
            ),
            crate::EchoStyle::Page => Response::new(500, "text/plain", text),
        };
    }
    // RFC 8705 §5: the mTLS aliases are the same endpoints under `/mtls/`, on this listener,
    // for clients that present a certificate (one that does not is refused).
    if let Some(rest) = path.strip_prefix("/mtls/") {
        lock(state).counters.mtls_alias_requests += 1;
        if request.client_certificates.is_empty() {
            return oauth_error(
                401,
                "invalid_client",
                "the mTLS endpoints need a client certificate",
            );
        }
        let mut inner = request.clone();
        inner.path = format!("/{rest}");
        return handle(state, &inner);
    }
    match (request.method.as_str(), path) {
        ("POST", "/token" | "/redirect/token" | "/oversize/token" | "/slow/token") => {
            token_endpoint(state, request)
        }
        ("GET", "/authorize") => authorize(state, request),
        ("GET", "/api") => resource(state, request),
        ("POST" | "PUT", "/upload") | ("GET", "/download") => streamed(state, request),
        ("POST", "/introspect") => introspect(state, request),
        ("POST", "/revoke") => revoke(state, request),
        ("POST", "/device_authorization") => device_authorization(state, request),
        ("POST", "/device") => {
            let p: HashMap<String, String> =
                form_pairs(std::str::from_utf8(&request.body).unwrap_or_default())
                    .into_iter()
                    .collect();
            let code = p.get("user_code").map(String::as_str).unwrap_or_default();
            let approve = p.get("action").map(String::as_str) == Some("approve");
            if lock(state).store.decide_device(code, approve) {
                Response::new(200, "text/plain", "done")
            } else {
                Response::new(404, "text/plain", "no such user code")
            }
        }
        ("POST", "/par") => pushed_authorization(state, request),
        ("POST", "/register") => register(state, request),
        (method, path) if path.starts_with("/register/") => {
            manage_registration(state, request, method, &path["/register/".len()..])
        }
        ("GET", "/.well-known/openid-configuration") => {
            let st = lock(state);
            let base = &st.base;
            Response::json(
                200,
                &json!({
                    "issuer": base,
                    "authorization_endpoint": format!("{base}/authorize"),
                    "token_endpoint": format!("{base}/token"),
                    "jwks_uri": format!("{base}/jwks"),
                    "introspection_endpoint": format!("{base}/introspect"),
                    "revocation_endpoint": format!("{base}/revoke"),
                    "device_authorization_endpoint": format!("{base}/device_authorization"),
                    "pushed_authorization_request_endpoint": format!("{base}/par"),
                    "registration_endpoint": format!("{base}/register"),
                    "mtls_endpoint_aliases": {
                        "token_endpoint": format!("{base}/mtls/token"),
                        "introspection_endpoint": format!("{base}/mtls/introspect"),
                        "revocation_endpoint": format!("{base}/mtls/revoke"),
                        "device_authorization_endpoint": format!("{base}/mtls/device_authorization"),
                        "pushed_authorization_request_endpoint": format!("{base}/mtls/par"),
                    },
                    "tls_client_certificate_bound_access_tokens": true,
                    "token_endpoint_auth_methods_supported": [
                        "client_secret_basic", "client_secret_post", "client_secret_jwt",
                        "private_key_jwt", "tls_client_auth", "self_signed_tls_client_auth",
                    ],
                    "require_pushed_authorization_requests": st.behaviour.require_par,
                    "authorization_response_iss_parameter_supported": true,
                    "id_token_signing_alg_values_supported": ["ES256"],
                }),
            )
        }
        ("GET", "/jwks") => {
            let mut st = lock(state);
            st.counters.jwks_requests += 1;
            if st.jwks_failures > 0 {
                st.jwks_failures -= 1;
                return Response::new(503, "text/plain", "JWKS endpoint unavailable");
            }
            let keys: Vec<_> = st.jwt_keys.iter().map(crate::JwtKey::public_jwk).collect();
            Response::json(200, &json!({ "keys": keys }))
        }
        _ => Response::json(404, &json!({"error": "not_found"})),
    }
}

fn lock(state: &Mutex<State>) -> std::sync::MutexGuard<'_, State> {
    state.lock().unwrap_or_else(|e| e.into_inner())
}

fn oauth_error(status: u16, code: &str, description: &str) -> Response {
    let response = Response::json(
        status,
        &json!({"error": code, "error_description": description}),
    )
    .header("cache-control", "no-store");
    if status == 401 {
        response.header("www-authenticate", "Basic realm=\"token\"")
    } else {
        response
    }
}

fn token_endpoint(state: &Mutex<State>, request: &Request) -> Response {
    let mut st = lock(state);
    st.counters.token_requests += 1;
    st.token_log.push(request.clone());
    // RFC 8705 §3: a token issued over a connection with a client certificate is bound to it.
    st.presented_x5t = request
        .client_certificates
        .first()
        .map(|der| crate::thumbprint(der));
    let delay = st.behaviour.token_delay;
    let mut response = match request.path.as_str() {
        "/redirect/token" => Response::new(307, "text/plain", "").header("location", "/token"),
        "/oversize/token" => {
            let filler = "x".repeat(2 * 1024 * 1024);
            Response::json(
                200,
                &json!({"access_token": filler, "token_type": "Bearer"}),
            )
        }
        "/slow/token" => {
            let mut r = grant(&mut st, request);
            r.delay = st.behaviour.slow_delay;
            r
        }
        _ => match st.script.pop_front() {
            Some(Scripted::Status(status)) => Response::json(
                status,
                &json!({"error": "server_error", "error_description": "scripted failure"}),
            ),
            Some(Scripted::TooManyRequests { retry_after }) => Response::json(
                429,
                &json!({"error": "rate_limited", "error_description": "too many requests"}),
            )
            .header("retry-after", &retry_after.to_string()),
            Some(Scripted::Raw(r)) => r,
            Some(Scripted::Echo) => Response::new(500, "text/plain", echo(request)),
            None => grant(&mut st, request),
        },
    };
    if st.behaviour.echo_requests && response.status != 200 {
        // Rewrite the OAuth error with the request in its description.
        let code = serde_json::from_slice::<Value>(&response.body)
            .ok()
            .and_then(|v| v["error"].as_str().map(str::to_owned));
        if let Some(code) = code {
            let mut echoed = Response::json(
                response.status,
                &json!({"error": code, "error_description": format!("you sent: {}", echo(request))}),
            );
            echoed.headers.extend(
                response
                    .headers
                    .iter()
                    .filter(|(n, _)| n != "content-type")
                    .cloned(),
            );
            response = echoed;
        }
    }
    if response.delay.is_zero() {
        response.delay = delay;
    }
    response
}

/// The request as a careless server would echo it: the `Authorization` header, the raw body,
/// and the body's parameters decoded.
fn echo(request: &Request) -> String {
    let body = String::from_utf8_lossy(&request.body);
    let decoded: Vec<String> = form_pairs(&body)
        .into_iter()
        .map(|(n, v)| format!("{n}={v}"))
        .collect();
    let members: Vec<String> = serde_json::from_slice::<Value>(&request.body)
        .ok()
        .and_then(|v| v.as_object().cloned())
        .into_iter()
        .flatten()
        .map(|(n, v)| match v {
            Value::String(s) => format!("{n}={s}"),
            other => format!("{n}={other}"),
        })
        .collect();
    format!(
        "authorization: {} | proxy-authorization: {} | dpop: {} | body: {} | decoded: {} | members: {}",
        request.header("authorization").unwrap_or_default(),
        request.header("proxy-authorization").unwrap_or_default(),
        request.header("dpop").unwrap_or_default(),
        body,
        decoded.join(" "),
        members.join(" ")
    )
}

/// Request parameters from a form or JSON body.
fn params(request: &Request) -> Result<HashMap<String, String>, Response> {
    let ct = request.header("content-type").unwrap_or_default();
    let mut out = HashMap::new();
    if ct.starts_with("application/json") {
        let value: Value = serde_json::from_slice(&request.body)
            .map_err(|_| oauth_error(400, "invalid_request", "body is not JSON"))?;
        let Some(map) = value.as_object() else {
            return Err(oauth_error(400, "invalid_request", "body is not an object"));
        };
        for (k, v) in map {
            let Some(v) = v.as_str() else {
                return Err(oauth_error(400, "invalid_request", "non-string parameter"));
            };
            out.insert(k.clone(), v.to_owned());
        }
    } else if ct.starts_with("application/x-www-form-urlencoded") {
        let body = std::str::from_utf8(&request.body)
            .map_err(|_| oauth_error(400, "invalid_request", "body is not UTF-8"))?;
        for (k, v) in form_pairs(body) {
            if out.insert(k, v).is_some() {
                return Err(oauth_error(400, "invalid_request", "repeated parameter"));
            }
        }
    } else {
        return Err(oauth_error(
            400,
            "invalid_request",
            "unsupported content type",
        ));
    }
    Ok(out)
}

/// `application/x-www-form-urlencoded` decoding, written here rather than borrowed from the
/// code under test.
pub(crate) fn form_pairs(text: &str) -> Vec<(String, String)> {
    text.split('&')
        .filter(|p| !p.is_empty())
        .map(|pair| {
            let (k, v) = pair.split_once('=').unwrap_or((pair, ""));
            (form_decode(k), form_decode(v))
        })
        .collect()
}

fn form_decode(s: &str) -> String {
    let bytes = s.as_bytes();
    let mut out = Vec::with_capacity(bytes.len());
    let mut i = 0;
    while i < bytes.len() {
        match bytes[i] {
            b'+' => out.push(b' '),
            b'%' if i + 2 < bytes.len() => {
                match std::str::from_utf8(&bytes[i + 1..i + 3])
                    .ok()
                    .and_then(|h| u8::from_str_radix(h, 16).ok())
                {
                    Some(b) => {
                        out.push(b);
                        i += 2;
                    }
                    None => out.push(b'%'),
                }
            }
            b => out.push(b),
        }
        i += 1;
    }
    String::from_utf8_lossy(&out).into_owned()
}

/// Authenticates the client (RFC 6749 §2.3: exactly one method) and returns its id.
fn authenticate(
    st: &mut State,
    request: &Request,
    p: &HashMap<String, String>,
) -> Result<String, Response> {
    let b = &st.behaviour;
    let basic = request
        .header("authorization")
        .and_then(|v| v.strip_prefix("Basic "));
    let assertion = p.get("client_assertion");
    let secret = p.get("client_secret");
    let methods = usize::from(basic.is_some())
        + usize::from(assertion.is_some())
        + usize::from(secret.is_some());
    if methods > 1 {
        return Err(oauth_error(
            400,
            "invalid_request",
            "more than one client authentication method",
        ));
    }
    let bad = || oauth_error(401, "invalid_client", "client authentication failed");
    if let Some(basic) = basic {
        let decoded = STANDARD.decode(basic.trim()).map_err(|_| bad())?;
        let decoded = String::from_utf8(decoded).map_err(|_| bad())?;
        let (id, secret) = decoded.split_once(':').ok_or_else(bad)?;
        let (id, secret) = (form_decode(id), form_decode(secret));
        if id == b.client_id && secret == b.client_secret {
            return Ok(id);
        }
        if st
            .store
            .registrations
            .get(&id)
            .is_some_and(|r| r.secret.as_deref() == Some(secret.as_str()))
        {
            return Ok(id);
        }
        return Err(bad());
    }
    if let Some(assertion) = assertion {
        if p.get("client_assertion_type").map(String::as_str) != Some(CLIENT_ASSERTION_TYPE) {
            return Err(oauth_error(400, "invalid_request", "client_assertion_type"));
        }
        let token_url = format!("{}/token", st.base);
        let claims = crate::jwt::verify(assertion, &b.client_secret, b.client_jwk.as_ref())
            .map_err(|_| bad())?;
        let id = claims["iss"].as_str().unwrap_or_default().to_owned();
        if id != b.client_id || claims["sub"].as_str() != Some(id.as_str()) {
            return Err(bad());
        }
        check_claims(&claims, &token_url).map_err(|_| bad())?;
        let jti = claims["jti"].as_str().ok_or_else(bad)?.to_owned();
        if !st.store.jtis.insert(jti) {
            return Err(oauth_error(401, "invalid_client", "assertion replayed"));
        }
        return Ok(id);
    }
    if let Some(secret) = secret {
        if p.get("client_id") == Some(&b.client_id) && *secret == b.client_secret {
            return Ok(b.client_id.clone());
        }
        return Err(bad());
    }
    // RFC 8705 §2: `client_id` names a client registered for mutual TLS, and the connection's
    // certificate must be the one it registered.
    if let Some(client) = p
        .get("client_id")
        .and_then(|id| b.mtls_clients.iter().find(|c| c.client_id == *id))
    {
        return match mtls_certificate_matches(&client.method, &request.client_certificates) {
            Ok(()) => Ok(client.client_id.clone()),
            Err(why) => Err(oauth_error(401, "invalid_client", why)),
        };
    }
    Err(bad())
}

/// Whether `chain` (the client's certificate first) is what `method` registered.
pub(crate) fn mtls_certificate_matches(
    method: &crate::MtlsMethod,
    chain: &[Vec<u8>],
) -> Result<(), &'static str> {
    use rustls::pki_types::{CertificateDer, ServerName, UnixTime};
    let Some(leaf) = chain.first() else {
        return Err("no client certificate was presented");
    };
    match method {
        crate::MtlsMethod::SelfSigned { x5t_s256 } => {
            if crate::thumbprint(leaf) == *x5t_s256 {
                Ok(())
            } else {
                Err("the client certificate is not the registered one")
            }
        }
        crate::MtlsMethod::TlsClientAuth { ca_der, san_dns } => {
            let mut roots = rustls::RootCertStore::empty();
            roots
                .add(CertificateDer::from(ca_der.clone()))
                .map_err(|_| "the registered CA is unreadable")?;
            let provider = std::sync::Arc::new(rustls::crypto::ring::default_provider());
            let verifier = rustls::server::WebPkiClientVerifier::builder_with_provider(
                std::sync::Arc::new(roots),
                provider,
            )
            .build()
            .map_err(|_| "the registered CA is unusable")?;
            let leaf = CertificateDer::from(leaf.as_slice());
            let intermediates: Vec<CertificateDer<'_>> = chain[1..]
                .iter()
                .map(|c| CertificateDer::from(c.as_slice()))
                .collect();
            verifier
                .verify_client_cert(&leaf, &intermediates, UnixTime::now())
                .map_err(|_| "the client certificate is not issued by the registered CA")?;
            let parsed = rustls::server::ParsedCertificate::try_from(&leaf)
                .map_err(|_| "unreadable client certificate")?;
            let name = ServerName::try_from(san_dns.as_str())
                .map_err(|_| "the registered subject name is not a DNS name")?;
            rustls::client::verify_server_name(&parsed, &name)
                .map_err(|_| "the client certificate is not for the registered subject")
        }
    }
}

fn check_claims(claims: &Value, audience: &str) -> Result<(), String> {
    let aud_ok = match &claims["aud"] {
        Value::String(a) => a == audience,
        Value::Array(list) => list.iter().any(|a| a.as_str() == Some(audience)),
        _ => false,
    };
    if !aud_ok {
        return Err("audience".into());
    }
    let now = SystemTime::now()
        .duration_since(UNIX_EPOCH)
        .map_or(0, |d| d.as_secs());
    match claims["exp"].as_u64() {
        Some(exp) if exp > now => Ok(()),
        _ => Err("expired".into()),
    }
}

fn grant(st: &mut State, request: &Request) -> Response {
    let p = match params(request) {
        Ok(p) => p,
        Err(r) => return r,
    };
    let grant_type = p.get("grant_type").cloned().unwrap_or_default();
    // The JWT bearer grant authenticates with its assertion; a client may be anonymous.
    let client_id = if grant_type == JWT_BEARER
        && !p.contains_key("client_secret")
        && !p.contains_key("client_assertion")
        && request.header("authorization").is_none()
    {
        None
    } else {
        match authenticate(st, request, &p) {
            Ok(id) => Some(id),
            Err(r) => return r,
        }
    };
    if let Some(required) = st.behaviour.required_audience.clone()
        && p.get("audience") != Some(&required)
    {
        return oauth_error(400, "invalid_request", "audience missing or unknown");
    }
    let client = client_id.clone().unwrap_or_default();
    let scope = p.get("scope").cloned().unwrap_or_default();
    // RFC 9396 §6: with any grant; checked as §5 says (`invalid_authorization_details`).
    let requested_details = match p
        .get("authorization_details")
        .map(|d| authorization_details(d))
    {
        None => None,
        Some(Ok(d)) => Some(d),
        Some(Err(r)) => return r,
    };
    let mut granted_details = requested_details.clone();
    let (scope, subject, refresh, nonce) = match grant_type.as_str() {
        "client_credentials" => (
            scope,
            None,
            st.behaviour.refresh_for_client_credentials,
            None,
        ),
        "password" => {
            if p.get("username") != Some(&st.behaviour.username)
                || p.get("password") != Some(&st.behaviour.password)
            {
                return oauth_error(400, "invalid_grant", "wrong username or password");
            }
            (scope, p.get("username").cloned(), true, None)
        }
        "authorization_code" => {
            let Some(code) = p.get("code").and_then(|c| st.store.codes.remove(c)) else {
                return oauth_error(400, "invalid_grant", "unknown or used code");
            };
            if code.client_id != client || p.get("redirect_uri") != Some(&code.redirect_uri) {
                return oauth_error(400, "invalid_grant", "code was issued to another client");
            }
            if let Some((challenge, method)) = &code.challenge {
                let Some(verifier) = p.get("code_verifier") else {
                    return oauth_error(400, "invalid_grant", "code_verifier missing");
                };
                let computed = if method == "S256" {
                    URL_SAFE_NO_PAD.encode(ring::digest::digest(
                        &ring::digest::SHA256,
                        verifier.as_bytes(),
                    ))
                } else {
                    verifier.clone()
                };
                if &computed != challenge {
                    return oauth_error(400, "invalid_grant", "PKCE verification failed");
                }
            }
            // The token request may narrow what the code was granted; here it replaces it.
            if granted_details.is_none() {
                granted_details = code.authorization_details;
            }
            (
                code.scope,
                Some(st.behaviour.username.clone()),
                true,
                code.nonce,
            )
        }
        "refresh_token" => {
            let Some(rt) = p.get("refresh_token") else {
                return oauth_error(400, "invalid_request", "refresh_token missing");
            };
            let found = if st.behaviour.rotate_refresh_tokens {
                st.store.refresh.remove(rt)
            } else {
                st.store.refresh.get(rt).map(|g| RefreshGrant {
                    client_id: g.client_id.clone(),
                    scope: g.scope.clone(),
                    subject: g.subject.clone(),
                    authorization_details: g.authorization_details.clone(),
                })
            };
            let Some(found) = found.filter(|g| g.client_id == client) else {
                return oauth_error(400, "invalid_grant", "unknown refresh token");
            };
            let keep = if st.behaviour.rotate_refresh_tokens {
                None
            } else {
                Some(rt.clone())
            };
            return issue(
                st,
                &client,
                &found.scope,
                found.subject.as_deref(),
                true,
                keep,
                None,
                requested_details.or(found.authorization_details),
            );
        }
        DEVICE_CODE => {
            st.counters.device_polls += 1;
            let Some(code) = p.get("device_code").cloned() else {
                return oauth_error(400, "invalid_request", "device_code missing");
            };
            let slow_downs = st.behaviour.device_slow_downs;
            let Some(device) = st.store.devices.get_mut(&code) else {
                return oauth_error(400, "invalid_grant", "unknown device code");
            };
            if device.client_id != client {
                return oauth_error(400, "invalid_grant", "device code of another client");
            }
            let now = Instant::now();
            if now >= device.expires {
                return oauth_error(400, "expired_token", "the device code expired");
            }
            // RFC 8628 §3.5: polling faster than the interval is answered slow_down, and the
            // interval grows by 5 s for this code.
            let too_soon = device
                .last_poll
                .is_some_and(|last| now.duration_since(last) < device.interval);
            device.last_poll = Some(now);
            if too_soon {
                device.interval += Duration::from_secs(5);
                return oauth_error(400, "slow_down", "polling too fast");
            }
            if slow_downs > 0 {
                st.behaviour.device_slow_downs -= 1;
                if let Some(device) = st.store.devices.get_mut(&code) {
                    device.interval += Duration::from_secs(5);
                }
                return oauth_error(400, "slow_down", "slow down");
            }
            match device.status {
                DeviceStatus::Pending => {
                    return oauth_error(400, "authorization_pending", "not approved yet");
                }
                DeviceStatus::Denied => {
                    st.store.devices.remove(&code);
                    return oauth_error(400, "access_denied", "the user declined");
                }
                DeviceStatus::Approved => {}
            }
            let Some(device) = st.store.devices.remove(&code) else {
                return oauth_error(400, "invalid_grant", "unknown device code");
            };
            (
                device.scope,
                Some(st.behaviour.username.clone()),
                true,
                None,
            )
        }
        JWT_BEARER => {
            let Some(assertion) = p.get("assertion") else {
                return oauth_error(400, "invalid_request", "assertion missing");
            };
            let b = &st.behaviour;
            let Ok(claims) = crate::jwt::verify(assertion, &b.client_secret, b.client_jwk.as_ref())
            else {
                return oauth_error(400, "invalid_grant", "assertion signature");
            };
            if check_claims(&claims, &format!("{}/token", st.base)).is_err() {
                return oauth_error(400, "invalid_grant", "assertion claims");
            }
            // RFC 7523 §3: the server may refuse a replayed assertion; real ones do.
            let Some(jti) = claims["jti"].as_str() else {
                return oauth_error(400, "invalid_grant", "assertion without jti");
            };
            if !st.store.jtis.insert(jti.to_owned()) {
                return oauth_error(400, "invalid_grant", "assertion replayed");
            }
            let sub = claims["sub"].as_str().map(str::to_owned);
            let iss = claims["iss"].as_str().unwrap_or_default().to_owned();
            let client = client_id.unwrap_or(iss);
            return issue(
                st,
                &client,
                &scope,
                sub.as_deref(),
                false,
                None,
                None,
                granted_details,
            );
        }
        TOKEN_EXCHANGE => {
            let subject_ok = p
                .get("subject_token")
                .is_some_and(|t| st.store.valid_access(t).is_some());
            if !subject_ok {
                return oauth_error(400, "invalid_grant", "subject_token is not valid");
            }
            let mut r = issue(
                st,
                &client,
                &scope,
                None,
                false,
                None,
                None,
                granted_details,
            );
            if let Ok(mut v) = serde_json::from_slice::<Value>(&r.body) {
                v["issued_token_type"] = json!("urn:ietf:params:oauth:token-type:access_token");
                r.body = v.to_string().into_bytes();
            }
            return r;
        }
        "" => return oauth_error(400, "invalid_request", "grant_type missing"),
        _ => return oauth_error(400, "unsupported_grant_type", "grant type not supported"),
    };
    issue(
        st,
        &client,
        &scope,
        subject.as_deref(),
        refresh,
        None,
        nonce,
        granted_details,
    )
}

/// An `authorization_details` value as RFC 9396 §2 defines it (a JSON array of objects, each
/// with a non-empty string `type`), or the §5 error.
fn authorization_details(text: &str) -> Result<Value, Response> {
    let bad = || {
        oauth_error(
            400,
            "invalid_authorization_details",
            "authorization_details must be a JSON array of objects with a type",
        )
    };
    let value: Value = serde_json::from_str(text).map_err(|_| bad())?;
    let ok = value.as_array().is_some_and(|items| {
        items.iter().all(|item| {
            item.get("type")
                .and_then(Value::as_str)
                .is_some_and(|t| !t.is_empty())
        })
    });
    if ok { Ok(value) } else { Err(bad()) }
}

/// A request object (RFC 9101): signed with the client's registered key (or its secret, for
/// HS256), `typ` `oauth-authz-req+jwt` when given, `iss` and `client_id` = the client, `aud` =
/// this issuer, within `nbf`..`exp`, a `jti` never seen before. Its claims become the
/// request's parameters (§6.3: the ones outside are ignored). An unsigned one (`alg: none`)
/// is refused by `jwt::verify`, which knows no such algorithm.
fn request_object(
    st: &mut State,
    object: &str,
    client_id: &str,
) -> Result<HashMap<String, String>, String> {
    let b = &st.behaviour;
    let header = object
        .split('.')
        .next()
        .and_then(|h| URL_SAFE_NO_PAD.decode(h).ok())
        .and_then(|h| serde_json::from_slice::<Value>(&h).ok())
        .ok_or("request object header")?;
    if header
        .get("typ")
        .is_some_and(|t| t.as_str() != Some("oauth-authz-req+jwt"))
    {
        return Err("request object typ".into());
    }
    let claims = crate::jwt::verify(object, &b.client_secret, b.client_jwk.as_ref())?;
    if claims["iss"].as_str() != Some(client_id) || claims["client_id"].as_str() != Some(client_id)
    {
        return Err("request object iss or client_id".into());
    }
    check_claims(&claims, &st.base)?;
    let now = SystemTime::now()
        .duration_since(UNIX_EPOCH)
        .map_or(0, |d| d.as_secs());
    if claims["nbf"].as_u64().is_some_and(|nbf| nbf > now + 5) {
        return Err("request object not yet valid".into());
    }
    if let Some(jti) = claims["jti"].as_str()
        && !st.store.jtis.insert(format!("request:{jti}"))
    {
        return Err("request object replayed".into());
    }
    let Value::Object(map) = claims else {
        return Err("request object claims".into());
    };
    Ok(map
        .into_iter()
        .filter(|(n, _)| !["iss", "aud", "iat", "nbf", "exp", "jti"].contains(&n.as_str()))
        .map(|(n, v)| match v {
            Value::String(s) => (n, s),
            other => (n, other.to_string()),
        })
        .collect())
}

#[allow(clippy::too_many_arguments)]
fn issue(
    st: &mut State,
    client: &str,
    scope: &str,
    subject: Option<&str>,
    refresh: bool,
    keep_refresh: Option<String>,
    nonce: Option<String>,
    authorization_details: Option<Value>,
) -> Response {
    let b = st.behaviour.clone();
    let lifetime = Duration::from_secs(b.expires_in.unwrap_or(3600));
    let token = st.store.issue(
        client,
        scope,
        subject,
        lifetime,
        b.token_len,
        authorization_details.clone(),
    );
    let x5t = st.presented_x5t.clone();
    if let Some(grant) = st.store.access.get_mut(&token) {
        grant.x5t = x5t;
    }
    let mut body = Map::new();
    body.insert("access_token".into(), json!(token));
    body.insert("token_type".into(), json!(b.token_type));
    if let Some(e) = b.expires_in {
        body.insert(
            "expires_in".into(),
            if b.expires_in_as_string {
                json!(e.to_string())
            } else {
                json!(e)
            },
        );
    }
    if !scope.is_empty() {
        body.insert("scope".into(), json!(scope));
    }
    if refresh {
        let rt = match keep_refresh {
            Some(rt) => rt,
            None => {
                let rt = st.store.fresh("rt", 40);
                st.store.refresh.insert(
                    rt.clone(),
                    RefreshGrant {
                        client_id: client.into(),
                        scope: scope.into(),
                        subject: subject.map(Into::into),
                        authorization_details: authorization_details.clone(),
                    },
                );
                rt
            }
        };
        body.insert("refresh_token".into(), json!(rt));
    }
    if let Some(details) = authorization_details {
        body.insert("authorization_details".into(), details);
    }
    if scope.split(' ').any(|s| s == "openid") {
        body.insert(
            "id_token".into(),
            json!(id_token(st, client, subject, nonce)),
        );
    }
    Response::new(
        200,
        &b.response_content_type,
        Value::Object(body).to_string(),
    )
    .header("cache-control", "no-store")
    .header("pragma", "no-cache")
}

/// An ID token signed with HS256 and the client secret (OpenID Connect Core §10.1 allows
/// this for confidential clients).
fn id_token(st: &State, client: &str, subject: Option<&str>, nonce: Option<String>) -> String {
    let now = SystemTime::now()
        .duration_since(UNIX_EPOCH)
        .map_or(0, |d| d.as_secs());
    let mut claims = json!({
        "iss": st.base, "sub": subject.unwrap_or(client), "aud": client,
        "iat": now, "exp": now + 600,
    });
    if let Some(n) = nonce {
        claims["nonce"] = json!(n);
    }
    let header = URL_SAFE_NO_PAD.encode(br#"{"alg":"HS256","typ":"JWT"}"#);
    let payload = URL_SAFE_NO_PAD.encode(claims.to_string());
    let input = format!("{header}.{payload}");
    let key = ring::hmac::Key::new(
        ring::hmac::HMAC_SHA256,
        st.behaviour.client_secret.as_bytes(),
    );
    let sig = URL_SAFE_NO_PAD.encode(ring::hmac::sign(&key, input.as_bytes()));
    format!("{input}.{sig}")
}

fn authorize(state: &Mutex<State>, request: &Request) -> Response {
    let mut st = lock(state);
    let mut q: HashMap<String, String> = form_pairs(request.query.as_deref().unwrap_or_default())
        .into_iter()
        .collect();
    // RFC 9126 §4: a pushed request, used once, by the client that pushed it.
    if let Some(uri) = q.get("request_uri").cloned() {
        let Some(pushed) = st.store.pushed.remove(&uri) else {
            return Response::new(400, "text/plain", "unknown or used request_uri");
        };
        if pushed.get("client_id") != q.get("client_id") {
            return Response::new(400, "text/plain", "request_uri of another client");
        }
        q = pushed;
    } else if let Some(object) = q.get("request").cloned() {
        let client_id = q.get("client_id").cloned().unwrap_or_default();
        match request_object(&mut st, &object, &client_id) {
            Ok(inner) => q = inner,
            Err(e) => {
                return Response::new(400, "text/plain", format!("invalid_request_object: {e}"));
            }
        }
    }
    if q.get("client_id") != Some(&st.behaviour.client_id) {
        return Response::new(400, "text/plain", "unknown client");
    }
    let Some(redirect_uri) = q.get("redirect_uri").cloned() else {
        return Response::new(400, "text/plain", "redirect_uri missing");
    };
    let state_param = q.get("state").cloned();
    let sep = if redirect_uri.contains('?') { '&' } else { '?' };
    if q.get("response_type").map(String::as_str) != Some("code") {
        return Response::new(302, "text/plain", "").header(
            "location",
            &format!("{redirect_uri}{sep}error=unsupported_response_type"),
        );
    }
    let challenge = q.get("code_challenge").map(|c| {
        (
            c.clone(),
            q.get("code_challenge_method")
                .cloned()
                .unwrap_or_else(|| "plain".into()),
        )
    });
    let details = match q
        .get("authorization_details")
        .map(|d| authorization_details(d))
    {
        None => None,
        Some(Ok(d)) => Some(d),
        Some(Err(_)) => {
            return Response::new(302, "text/plain", "").header(
                "location",
                &format!("{redirect_uri}{sep}error=invalid_authorization_details"),
            );
        }
    };
    let code = st.store.fresh("code", 32);
    let client_id = st.behaviour.client_id.clone();
    st.store.codes.insert(
        code.clone(),
        CodeGrant {
            client_id,
            redirect_uri: redirect_uri.clone(),
            challenge,
            scope: q.get("scope").cloned().unwrap_or_default(),
            nonce: q.get("nonce").cloned(),
            authorization_details: details,
        },
    );
    let mut location = format!("{redirect_uri}{sep}code={code}");
    if let Some(s) = state_param {
        location.push_str("&state=");
        location.push_str(&query_encode(&s));
    }
    location.push_str("&iss=");
    location.push_str(&query_encode(&st.base));
    Response::new(302, "text/plain", "").header("location", &location)
}

fn query_encode(s: &str) -> String {
    let mut out = String::new();
    for b in s.bytes() {
        if b.is_ascii_alphanumeric() || b"-._~".contains(&b) {
            out.push(b as char);
        } else {
            out.push_str(&format!("%{b:02X}"));
        }
    }
    out
}

fn bearer(request: &Request) -> Option<&str> {
    let value = request.header("authorization")?;
    let (scheme, token) = value.split_once(' ')?;
    scheme
        .eq_ignore_ascii_case("bearer")
        .then_some(token.trim())
}

/// `POST /upload` (the body counted and hashed as it arrived: answers `{"bytes", "sha256"}`)
/// and `GET /download?bytes=N` (N bytes of `i % 251`), both behind the same token check as
/// `/api`.
fn streamed(state: &Mutex<State>, request: &Request) -> Response {
    let denied = {
        let mut st = lock(state);
        st.counters.stream_requests += 1;
        let mut probe = request.clone();
        probe.path = "/api".into();
        drop(st);
        let answer = resource(state, &probe);
        lock(state).counters.resource_requests -= 1;
        (answer.status != 200).then_some(answer)
    };
    if let Some(denied) = denied {
        return denied;
    }
    if request.path == "/upload" {
        let field = |name| request.header(name).unwrap_or_default().to_owned();
        let bytes: u64 = field("x-upload-bytes").parse().unwrap_or_default();
        return Response::json(
            200,
            &json!({"bytes": bytes, "sha256": field("x-upload-sha256")}),
        );
    }
    let n = form_pairs(request.query.as_deref().unwrap_or_default())
        .into_iter()
        .find(|(k, _)| k == "bytes")
        .and_then(|(_, v)| v.parse::<usize>().ok())
        .unwrap_or(0)
        .min(64 << 20);
    let body: Vec<u8> = (0..n).map(|i| (i % 251) as u8).collect();
    Response::new(200, "application/octet-stream", body)
}

fn resource(state: &Mutex<State>, request: &Request) -> Response {
    let mut st = lock(state);
    st.counters.resource_requests += 1;
    let Some(token) = bearer(request) else {
        return Response::new(401, "text/plain", "")
            .header("www-authenticate", "Bearer realm=\"api\"");
    };
    let presented = request
        .client_certificates
        .first()
        .map(|d| crate::thumbprint(d));
    let valid = if st.behaviour.reject_all_tokens {
        None
    } else {
        // RFC 8705 §3: a bound token is accepted only over a connection authenticated with
        // its certificate.
        st.store
            .valid_access(token)
            .filter(|g| g.x5t.is_none() || g.x5t == presented)
    };
    match valid {
        Some(grant) => Response::json(200, &json!({"hello": grant.client_id, "scope": grant.scope})),
        None => match st.behaviour.rejection_style {
            RejectionStyle::Challenge => Response::new(401, "text/plain", "").header(
                "www-authenticate",
                "Bearer realm=\"api\", error=\"invalid_token\", error_description=\"The access token expired\"",
            ),
            RejectionStyle::DataloyBody => Response::json(
                401,
                &json!({
                    "statusCode": 401, "statusText": "Unauthorized", "message": "Token expired.",
                    "statusFamily": "CLIENT_ERROR", "method": "GET", "uri": "/api",
                }),
            ),
        },
    }
}

fn introspect(state: &Mutex<State>, request: &Request) -> Response {
    let mut st = lock(state);
    st.counters.introspection_requests += 1;
    let delay = st.behaviour.introspection_delay;
    let mut response = introspection_answer(&mut st, request);
    response.delay = delay;
    response
}

fn introspection_answer(st: &mut State, request: &Request) -> Response {
    if let Some(status) = st.behaviour.introspection_failure {
        return Response::new(status, "text/plain", "validation endpoint unavailable");
    }
    let p = match params(request) {
        Ok(p) => p,
        Err(r) => return r,
    };
    if let Err(r) = authenticate(st, request, &p) {
        return r;
    }
    let Some(token) = p.get("token") else {
        return oauth_error(400, "invalid_request", "token missing");
    };
    let body = match st.store.valid_access(token) {
        Some(g) => {
            let mut v = json!({
                "active": true, "client_id": g.client_id, "scope": g.scope,
                "exp": g.exp_epoch, "token_type": "Bearer", "iss": st.base,
            });
            if let Some(s) = &g.subject {
                v["sub"] = json!(s);
            }
            if let Some(d) = &g.authorization_details {
                v["authorization_details"] = d.clone();
            }
            if let Some(x5t) = &g.x5t {
                v["cnf"] = json!({ "x5t#S256": x5t });
            }
            v
        }
        None => json!({"active": false}),
    };
    Response::json(200, &body)
}

fn revoke(state: &Mutex<State>, request: &Request) -> Response {
    let mut st = lock(state);
    st.counters.revocation_requests += 1;
    let p = match params(request) {
        Ok(p) => p,
        Err(r) => return r,
    };
    if let Err(r) = authenticate(&mut st, request, &p) {
        return r;
    }
    if let Some(token) = p.get("token") {
        if let Some(g) = st.store.access.get_mut(token) {
            g.revoked = true;
        }
        st.store.refresh.remove(token);
    }
    Response::new(200, "text/plain", "")
}

fn device_authorization(state: &Mutex<State>, request: &Request) -> Response {
    let mut st = lock(state);
    let p = match params(request) {
        Ok(p) => p,
        Err(r) => return r,
    };
    let client_id = match authenticate(&mut st, request, &p) {
        Ok(id) => id,
        Err(r) => return r,
    };
    let device_code = st.store.fresh("device", 40);
    let user_code = format!("USER-{:04}", st.store.counter % 10_000);
    let (interval, expires_in) = (st.behaviour.device_interval, st.behaviour.device_expires_in);
    st.store.devices.insert(
        device_code.clone(),
        DeviceGrant {
            client_id,
            scope: p.get("scope").cloned().unwrap_or_default(),
            user_code: user_code.clone(),
            status: DeviceStatus::Pending,
            expires: Instant::now() + Duration::from_secs(expires_in),
            interval: Duration::from_secs(interval),
            last_poll: None,
        },
    );
    let uri = format!("{}/device", st.base);
    Response::json(
        200,
        &json!({
            "device_code": device_code, "user_code": user_code, "verification_uri": uri,
            "verification_uri_complete": format!("{uri}?user_code={user_code}"),
            "expires_in": expires_in, "interval": interval,
        }),
    )
}

fn pushed_authorization(state: &Mutex<State>, request: &Request) -> Response {
    let mut st = lock(state);
    st.counters.par_requests += 1;
    let mut p = match params(request) {
        Ok(p) => p,
        Err(r) => return r,
    };
    let client_id = match authenticate(&mut st, request, &p) {
        Ok(id) => id,
        Err(r) => return r,
    };
    if p.contains_key("request_uri") {
        return oauth_error(400, "invalid_request", "request_uri cannot be pushed");
    }
    for auth in ["client_secret", "client_assertion", "client_assertion_type"] {
        p.remove(auth);
    }
    if p.get("client_id").is_some_and(|id| *id != client_id) {
        return oauth_error(400, "invalid_request", "client_id differs from the client");
    }
    // RFC 9126 §3: a request object pushed; its claims are the request.
    if let Some(object) = p.remove("request") {
        match request_object(&mut st, &object, &client_id) {
            Ok(inner) => p = inner,
            Err(e) => return oauth_error(400, "invalid_request_object", &e),
        }
    }
    if let Some(Err(r)) = p
        .get("authorization_details")
        .map(|d| authorization_details(d))
    {
        return r;
    }
    p.insert("client_id".into(), client_id);
    let uri = format!(
        "urn:ietf:params:oauth:request_uri:{}",
        st.store.fresh("par", 24)
    );
    st.store.pushed.insert(uri.clone(), p);
    Response::json(201, &json!({"request_uri": uri, "expires_in": 60}))
}

fn register(state: &Mutex<State>, request: &Request) -> Response {
    let mut st = lock(state);
    if let Some(required) = &st.behaviour.registration_token
        && bearer(request) != Some(required.as_str())
    {
        return Response::json(401, &json!({"error": "invalid_token"}))
            .header("www-authenticate", "Bearer error=\"invalid_token\"");
    }
    let Ok(Value::Object(mut metadata)) = serde_json::from_slice::<Value>(&request.body) else {
        return oauth_error(400, "invalid_client_metadata", "not a JSON object");
    };
    let redirect_ok = match metadata.get("redirect_uris") {
        None => true,
        Some(Value::Array(uris)) => uris
            .iter()
            .all(|u| u.as_str().is_some_and(|u| u.starts_with("https://"))),
        Some(_) => false,
    };
    if !redirect_ok {
        return oauth_error(400, "invalid_redirect_uri", "redirect URIs must be https");
    }
    let client_id = st.store.fresh("client", 20);
    let method = metadata
        .entry("token_endpoint_auth_method")
        .or_insert_with(|| "client_secret_basic".into())
        .as_str()
        .unwrap_or_default()
        .to_owned();
    let secret = method
        .starts_with("client_secret")
        .then(|| st.store.fresh("secret", 32));
    let access_token = st.store.fresh("rat", 32);
    st.store.registrations.insert(
        client_id.clone(),
        Registration {
            metadata: metadata.clone(),
            secret: secret.clone(),
            access_token: access_token.clone(),
        },
    );
    let mut body = metadata;
    body.insert("client_id".into(), client_id.clone().into());
    if let Some(secret) = secret {
        body.insert("client_secret".into(), secret.into());
        body.insert("client_secret_expires_at".into(), 0.into());
    }
    body.insert("registration_access_token".into(), access_token.into());
    body.insert(
        "registration_client_uri".into(),
        format!("{}/register/{client_id}", st.base).into(),
    );
    Response::json(201, &Value::Object(body))
}

fn manage_registration(
    state: &Mutex<State>,
    request: &Request,
    method: &str,
    client_id: &str,
) -> Response {
    let mut st = lock(state);
    let authorized = st
        .store
        .registrations
        .get(client_id)
        .is_some_and(|r| bearer(request) == Some(r.access_token.as_str()));
    if !authorized {
        return Response::json(401, &json!({"error": "invalid_token"}))
            .header("www-authenticate", "Bearer error=\"invalid_token\"");
    }
    match method {
        "DELETE" => {
            st.store.registrations.remove(client_id);
            Response::new(204, "text/plain", "")
        }
        "PUT" => {
            let Ok(Value::Object(mut metadata)) = serde_json::from_slice::<Value>(&request.body)
            else {
                return oauth_error(400, "invalid_client_metadata", "not a JSON object");
            };
            if metadata
                .remove("client_id")
                .as_ref()
                .and_then(Value::as_str)
                != Some(client_id)
            {
                return oauth_error(400, "invalid_request", "client_id does not match");
            }
            metadata.remove("client_secret");
            if let Some(r) = st.store.registrations.get_mut(client_id) {
                r.metadata = metadata;
            }
            registration_answer(&st, client_id)
        }
        "GET" => registration_answer(&st, client_id),
        _ => Response::new(405, "text/plain", ""),
    }
}

fn registration_answer(st: &State, client_id: &str) -> Response {
    let Some(r) = st.store.registrations.get(client_id) else {
        return Response::new(404, "text/plain", "");
    };
    let mut body = r.metadata.clone();
    body.insert("client_id".into(), client_id.into());
    if let Some(secret) = &r.secret {
        body.insert("client_secret".into(), secret.clone().into());
    }
    Response::json(200, &Value::Object(body))
}
