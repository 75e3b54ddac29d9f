//! Dynamic client registration (RFC 7591) and its management protocol (RFC 7592): client
//! metadata in and out (members this crate does not know are kept), the registration access
//! token kept as a secret, and the registered client turned into a [`Client`] ready to use.
//!
//! ```text
//! ClientMetadata ──RegistrationRequest::build──► POST registration_endpoint (JSON, Bearer?)
//!                  parse_registration_response ──► RegisteredClient ──client()──► Client
//! RegisteredClient::{read_request, update_request, delete_request} (RFC 7592, Bearer RAT)
//! ```

use std::fmt;
use std::time::{Duration, SystemTime};

use http::header::{ACCEPT, AUTHORIZATION, CONTENT_TYPE};
use http::{HeaderValue, Method, Request, Response};
use serde_json::{Map, Value};

use crate::bearer::bearer_header;
use crate::client::{Client, ClientAuthentication};
use crate::endpoint::{Endpoint, SchemePolicy};
use crate::error::{Error, UnexpectedReason};
use crate::request::RequestBody;
use crate::response::{parse_object, take_identifier, unexpected};
use crate::secret::{AccessToken, ClientSecret};

/// Client metadata (RFC 7591 §2): typed setters for the common members, any other member as
/// JSON. Kept as a JSON object, so that members a server adds or a caller sets survive a read
/// and an update.
#[derive(Clone, Debug, Default, PartialEq)]
pub struct ClientMetadata(Map<String, Value>);

impl ClientMetadata {
    /// No member set.
    pub fn new() -> Self {
        Self::default()
    }

    /// `client_name`.
    pub fn client_name(self, name: impl Into<String>) -> Self {
        self.set("client_name", Value::String(name.into()))
    }

    /// `redirect_uris`.
    pub fn redirect_uris<I: IntoIterator<Item = S>, S: Into<String>>(self, uris: I) -> Self {
        self.set("redirect_uris", strings(uris))
    }

    /// `grant_types`.
    pub fn grant_types<I: IntoIterator<Item = S>, S: Into<String>>(self, grants: I) -> Self {
        self.set("grant_types", strings(grants))
    }

    /// `response_types`.
    pub fn response_types<I: IntoIterator<Item = S>, S: Into<String>>(self, types: I) -> Self {
        self.set("response_types", strings(types))
    }

    /// `scope`, space-separated.
    pub fn scope<I: IntoIterator<Item = S>, S: Into<String>>(self, scopes: I) -> Self {
        let scope: Vec<String> = scopes.into_iter().map(Into::into).collect();
        self.set("scope", Value::String(scope.join(" ")))
    }

    /// `token_endpoint_auth_method` (`client_secret_basic`, `private_key_jwt`, `none`, ...).
    pub fn token_endpoint_auth_method(self, method: impl Into<String>) -> Self {
        self.set("token_endpoint_auth_method", Value::String(method.into()))
    }

    /// `jwks`: the client's public keys, as a JWK set (`{"keys": [...]}`), for example from
    /// jwt-assertion's `SigningKey::public_jwk`.
    pub fn jwks<I: IntoIterator<Item = Value>>(self, public_jwks: I) -> Self {
        let keys: Vec<Value> = public_jwks.into_iter().collect();
        let mut set = Map::new();
        set.insert("keys".to_owned(), Value::Array(keys));
        self.set("jwks", Value::Object(set))
    }

    /// Any member.
    pub fn set(mut self, name: impl Into<String>, value: Value) -> Self {
        self.0.insert(name.into(), value);
        self
    }

    /// A member.
    pub fn get(&self, name: &str) -> Option<&Value> {
        self.0.get(name)
    }

    /// A string member.
    pub fn string(&self, name: &str) -> Option<&str> {
        self.0.get(name).and_then(Value::as_str)
    }

    /// Every member.
    pub fn as_map(&self) -> &Map<String, Value> {
        &self.0
    }
}

fn strings<I: IntoIterator<Item = S>, S: Into<String>>(items: I) -> Value {
    Value::Array(items.into_iter().map(|s| Value::String(s.into())).collect())
}

/// A client registration request (RFC 7591 §3.1): the metadata as JSON, with an initial access
/// token as `Authorization: Bearer` when the server requires one (Anypoint: the user's token).
#[derive(Clone, Debug)]
pub struct RegistrationRequest {
    metadata: ClientMetadata,
    initial_access_token: Option<AccessToken>,
}

impl RegistrationRequest {
    /// Registers a client with this metadata.
    pub fn new(metadata: ClientMetadata) -> Self {
        Self {
            metadata,
            initial_access_token: None,
        }
    }

    /// Sends this token as `Authorization: Bearer` (RFC 7591 §3: an initial access token).
    pub fn initial_access_token(mut self, token: AccessToken) -> Self {
        self.initial_access_token = Some(token);
        self
    }

    /// The metadata sent.
    pub fn metadata(&self) -> &ClientMetadata {
        &self.metadata
    }

    /// Builds the `POST` to the registration endpoint.
    pub fn build(&self, endpoint: &Endpoint) -> Result<Request<RequestBody>, Error> {
        json_request(
            Method::POST,
            endpoint,
            Some(&self.metadata.0),
            self.initial_access_token.as_ref(),
        )
    }
}

fn json_request(
    method: Method,
    endpoint: &Endpoint,
    body: Option<&Map<String, Value>>,
    token: Option<&AccessToken>,
) -> Result<Request<RequestBody>, Error> {
    let bytes = match body {
        Some(map) => serde_json::to_vec(map).map_err(|_| Error::InvalidParameter {
            name: "metadata",
            reason: "not serialisable",
        })?,
        None => Vec::new(),
    };
    // A `client_secret` in the metadata (RFC 7592 §2.2 sends it back on update) is a secret
    // the body carries; the bearer token in the header is found there by `SentSecrets`.
    let secrets = body
        .and_then(|map| map.get("client_secret"))
        .and_then(Value::as_str)
        .map(|s| zeroize::Zeroizing::new(s.to_owned()))
        .into_iter()
        .collect();
    let mut request = Request::new(RequestBody::new(bytes, secrets));
    *request.method_mut() = method;
    *request.uri_mut() = endpoint.uri().clone();
    let headers = request.headers_mut();
    if body.is_some() {
        headers.insert(CONTENT_TYPE, HeaderValue::from_static("application/json"));
    }
    headers.insert(ACCEPT, HeaderValue::from_static("application/json"));
    if let Some(token) = token {
        headers.insert(AUTHORIZATION, bearer_header(token)?);
    }
    Ok(request)
}

/// A registered client (RFC 7591 §3.2.1, RFC 7592 §3): its credentials, the registration
/// access token and URI for managing it, and the metadata the server holds.
#[derive(Clone)]
pub struct RegisteredClient {
    client_id: String,
    client_secret: Option<ClientSecret>,
    client_secret_expires_at: Option<SystemTime>,
    registration_access_token: Option<AccessToken>,
    registration_client_uri: Option<Endpoint>,
    metadata: ClientMetadata,
}

impl fmt::Debug for RegisteredClient {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        f.debug_struct("RegisteredClient")
            .field("client_id", &self.client_id)
            .field("client_secret", &self.client_secret)
            .field("client_secret_expires_at", &self.client_secret_expires_at)
            .field("registration_access_token", &self.registration_access_token)
            .field(
                "registration_client_uri",
                &self.registration_client_uri.as_ref().map(Endpoint::as_str),
            )
            .field("metadata", &self.metadata.0.keys().collect::<Vec<_>>())
            .finish()
    }
}

impl RegisteredClient {
    /// `client_id`.
    pub fn client_id(&self) -> &str {
        &self.client_id
    }

    /// `client_secret`, for confidential clients.
    pub fn client_secret(&self) -> Option<&ClientSecret> {
        self.client_secret.as_ref()
    }

    /// When the secret expires (`client_secret_expires_at`; `None` when it does not: the
    /// server sent 0 or nothing).
    pub fn client_secret_expires_at(&self) -> Option<SystemTime> {
        self.client_secret_expires_at
    }

    /// The token that manages this registration (RFC 7592), if the server issued one.
    pub fn registration_access_token(&self) -> Option<&AccessToken> {
        self.registration_access_token.as_ref()
    }

    /// Where this registration is read, updated and deleted (RFC 7592), if given.
    pub fn registration_client_uri(&self) -> Option<&Endpoint> {
        self.registration_client_uri.as_ref()
    }

    /// The metadata the server holds (every member but the credentials).
    pub fn metadata(&self) -> &ClientMetadata {
        &self.metadata
    }

    /// The client, authenticated as its `token_endpoint_auth_method` says when that method
    /// needs only the secret (`client_secret_basic`, the default; `client_secret_post`;
    /// `none`) or a certificate the HTTP client presents (`tls_client_auth`,
    /// `self_signed_tls_client_auth`, RFC 8705 §2). For `private_key_jwt` and other methods use [`client_with`](Self::client_with)
    /// and the signer of the key that was registered.
    pub fn client(&self) -> Result<Client, Error> {
        let method = self
            .metadata
            .string("token_endpoint_auth_method")
            .unwrap_or("client_secret_basic");
        let secret = || {
            self.client_secret.clone().ok_or(Error::MissingParameter {
                name: "client_secret",
            })
        };
        let auth = match method {
            "client_secret_basic" => ClientAuthentication::SecretBasic(secret()?),
            "client_secret_post" => ClientAuthentication::SecretPost(secret()?),
            "none" => ClientAuthentication::None,
            // RFC 8705 §2: the certificate is the HTTP client's to present.
            "tls_client_auth" => ClientAuthentication::TlsClientAuth,
            "self_signed_tls_client_auth" => ClientAuthentication::SelfSignedTlsClientAuth,
            _ => {
                return Err(Error::InvalidParameter {
                    name: "token_endpoint_auth_method",
                    reason: "needs a signer: use client_with",
                });
            }
        };
        Ok(self.client_with(auth))
    }

    /// The client, with this authentication (for example a `ClientAssertionSigner` for
    /// `private_key_jwt`).
    pub fn client_with(&self, auth: ClientAuthentication) -> Client {
        Client::new(self.client_id.as_str(), auth)
    }

    fn management(&self) -> Result<(&Endpoint, &AccessToken), Error> {
        let uri = self
            .registration_client_uri
            .as_ref()
            .ok_or(Error::MissingParameter {
                name: "registration_client_uri",
            })?;
        let token = self
            .registration_access_token
            .as_ref()
            .ok_or(Error::MissingParameter {
                name: "registration_access_token",
            })?;
        Ok((uri, token))
    }

    /// Reads the registration (RFC 7592 §2.1): `GET` with the registration access token.
    pub fn read_request(&self) -> Result<Request<RequestBody>, Error> {
        let (uri, token) = self.management()?;
        json_request(Method::GET, uri, None, Some(token))
    }

    /// Replaces the registration's metadata (RFC 7592 §2.2): `PUT` of `metadata` with the
    /// `client_id` (and the current `client_secret`, as the RFC asks).
    pub fn update_request(&self, metadata: &ClientMetadata) -> Result<Request<RequestBody>, Error> {
        let (uri, token) = self.management()?;
        let mut body = metadata.0.clone();
        // RFC 7592 §2.2: the server's own members are not sent back.
        for theirs in [
            "registration_access_token",
            "registration_client_uri",
            "client_secret_expires_at",
            "client_id_issued_at",
        ] {
            body.remove(theirs);
        }
        body.insert(
            "client_id".to_owned(),
            Value::String(self.client_id.clone()),
        );
        if let Some(secret) = &self.client_secret {
            body.insert(
                "client_secret".to_owned(),
                Value::String(secret.expose_secret().to_owned()),
            );
        }
        let request = json_request(Method::PUT, uri, Some(&body), Some(token));
        if let Some(Value::String(mut s)) = body.remove("client_secret") {
            zeroize::Zeroize::zeroize(&mut s);
        }
        request
    }

    /// Deletes the registration (RFC 7592 §2.3): `DELETE` with the registration access token.
    pub fn delete_request(&self) -> Result<Request<RequestBody>, Error> {
        let (uri, token) = self.management()?;
        json_request(Method::DELETE, uri, None, Some(token))
    }
}

/// Parses a registration answer (RFC 7591 §3.2.1, a 201; RFC 7592 §2.1/§2.2, a 200): a
/// `client_id` is required; `registration_client_uri` must satisfy `policy` (the registration
/// access token is sent there). An error answer (`invalid_redirect_uri`,
/// `invalid_client_metadata`, ...) is [`Error::Server`].
pub fn parse_registration_response<B: AsRef<[u8]>>(
    response: &Response<B>,
    policy: SchemePolicy,
) -> Result<RegisteredClient, Error> {
    let mut map = parse_object(response)?;
    let invalid = |name| unexpected(response, UnexpectedReason::InvalidField(name));
    // Each value goes into a header, a URL or a file name later: RFC 6749 Appendix A's VSCHAR
    // (RFC 7591 §3.2.1 says client_id is a string), bounded; a JSON number, CR/LF or a
    // control character is refused here rather than found later.
    let mut text = |name: &'static str, max: usize, spaces: bool| {
        take_identifier(&mut map, name, max, spaces).map_err(invalid)
    };
    let client_id = text("client_id", MAX_IDENTIFIER_LEN, true)?
        .ok_or_else(|| unexpected(response, UnexpectedReason::MissingField("client_id")))?;
    let client_secret = text("client_secret", MAX_IDENTIFIER_LEN, true)?.map(ClientSecret::new);
    let registration_access_token =
        text("registration_access_token", MAX_TOKEN_LEN, false)?.map(AccessToken::new);
    let registration_client_uri = text("registration_client_uri", MAX_URI_LEN, false)?
        .map(|uri| Endpoint::with_policy(&uri, policy))
        .transpose()
        .map_err(|_| invalid("registration_client_uri"))?;
    let client_secret_expires_at = match map.remove("client_secret_expires_at") {
        None | Some(Value::Null) => None,
        Some(Value::Number(n)) => match n.as_u64() {
            Some(0) => None,
            Some(secs) => SystemTime::UNIX_EPOCH.checked_add(Duration::from_secs(secs)),
            None => return Err(invalid("client_secret_expires_at")),
        },
        Some(_) => return Err(invalid("client_secret_expires_at")),
    };
    Ok(RegisteredClient {
        client_id,
        client_secret,
        client_secret_expires_at,
        registration_access_token,
        registration_client_uri,
        metadata: ClientMetadata(map),
    })
}

/// The longest `client_id` or `client_secret` taken from a server.
const MAX_IDENTIFIER_LEN: usize = 1024;
/// The longest registration access token taken from a server.
const MAX_TOKEN_LEN: usize = 8 * 1024;
/// The longest `registration_client_uri` taken from a server.
const MAX_URI_LEN: usize = 2048;

/// Parses the answer to a read or an update (RFC 7592 §3): as
/// [`parse_registration_response`], keeping `previous`'s registration access token and URI
/// when the server does not send new ones (it may rotate the token, RFC 7592 §2.1).
pub fn parse_registration_update<B: AsRef<[u8]>>(
    response: &Response<B>,
    policy: SchemePolicy,
    previous: &RegisteredClient,
) -> Result<RegisteredClient, Error> {
    let mut client = parse_registration_response(response, policy)?;
    if client.registration_access_token.is_none() {
        client
            .registration_access_token
            .clone_from(&previous.registration_access_token);
    }
    if client.registration_client_uri.is_none() {
        client
            .registration_client_uri
            .clone_from(&previous.registration_client_uri);
    }
    if client.client_secret.is_none() {
        client.client_secret.clone_from(&previous.client_secret);
    }
    Ok(client)
}

/// Reads a deletion answer (RFC 7592 §2.3): 204 (or any 2xx) is success.
pub fn parse_registration_delete_response<B: AsRef<[u8]>>(
    response: &Response<B>,
) -> Result<(), Error> {
    if response.status().is_success() {
        return Ok(());
    }
    match parse_object(response) {
        Err(e) => Err(e),
        Ok(_) => Err(unexpected(response, UnexpectedReason::Status)),
    }
}

#[cfg(test)]
mod tests {
    use super::*;
    use serde_json::json;

    fn answer(status: u16, body: Value) -> Response<Vec<u8>> {
        Response::builder()
            .status(status)
            .header("content-type", "application/json")
            .body(body.to_string().into_bytes())
            .unwrap_or_default()
    }

    #[test]
    fn identifiers_from_the_server_are_visible_ascii_and_bounded() {
        let policy = SchemePolicy::HttpsOnly;
        let ok = |body: Value| parse_registration_response(&answer(201, body), policy);
        assert!(ok(json!({"client_id": "s6BhdRkqt3", "client_secret": "cf136dc3 c1fc"})).is_ok());
        for body in [
            json!({"client_id": 12345}),
            json!({"client_id": "a\r\nX-Injected: 1"}),
            json!({"client_id": "tab\there"}),
            json!({"client_id": "caf\u{e9}"}),
            json!({"client_id": "a".repeat(1025)}),
            json!({"client_id": "c", "client_secret": "s\n"}),
            json!({"client_id": "c", "registration_access_token": "has space"}),
            json!({"client_id": "c", "registration_client_uri": format!("https://as.example/{}", "r".repeat(2048))}),
        ] {
            assert!(ok(body.clone()).is_err(), "{body}");
        }
    }

    #[test]
    fn request_carries_the_metadata_and_the_initial_token() {
        let endpoint = Endpoint::new("https://as.example/reg").unwrap_or_else(|e| panic!("{e}"));
        let metadata = ClientMetadata::new()
            .client_name("My App")
            .redirect_uris(["https://app.example/cb"])
            .grant_types(["client_credentials"])
            .token_endpoint_auth_method("private_key_jwt")
            .jwks([json!({"kty": "EC", "crv": "P-256", "x": "x", "y": "y"})])
            .set("software_id", json!("4NRB1-0XZABZI9E6-5SM3R"));
        let request = RegistrationRequest::new(metadata)
            .initial_access_token(AccessToken::new("iat-1"))
            .build(&endpoint)
            .unwrap_or_else(|e| panic!("{e}"));
        assert_eq!(request.method(), Method::POST);
        assert_eq!(request.headers()["content-type"], "application/json");
        assert_eq!(request.headers()["authorization"], "Bearer iat-1");
        let body: Value =
            serde_json::from_slice(request.body().expose_secret()).unwrap_or_default();
        assert_eq!(body["client_name"], "My App");
        assert_eq!(body["jwks"]["keys"][0]["kty"], "EC");
        assert_eq!(body["software_id"], "4NRB1-0XZABZI9E6-5SM3R");
    }

    #[test]
    fn the_rfc_7591_answer_and_management() {
        // RFC 7591 §3.2.1's example, with RFC 7592's members.
        let body = json!({
            "client_id": "s6BhdRkqt3", "client_secret": "cf136dc3c1fc93f31185e5885805d",
            "client_id_issued_at": 2_893_256_800u64, "client_secret_expires_at": 2_893_276_800u64,
            "redirect_uris": ["https://client.example.org/callback"],
            "grant_types": ["authorization_code", "refresh_token"],
            "token_endpoint_auth_method": "client_secret_basic", "logo_uri": "https://client.example.org/logo.png",
            "registration_access_token": "reg-23410913-abewfq.123483",
            "registration_client_uri": "https://server.example.com/register/s6BhdRkqt3",
        });
        let client = parse_registration_response(&answer(201, body), SchemePolicy::HttpsOnly)
            .unwrap_or_else(|e| panic!("{e}"));
        assert_eq!(client.client_id(), "s6BhdRkqt3");
        assert!(client.client_secret_expires_at().is_some());
        assert_eq!(
            client.metadata().string("logo_uri"),
            Some("https://client.example.org/logo.png")
        );
        assert!(client.metadata().get("client_secret").is_none());
        let shown = format!("{client:?}");
        assert!(
            !shown.contains("cf136dc3") && !shown.contains("reg-2341"),
            "{shown}"
        );
        let c = client.client().unwrap_or_else(|e| panic!("{e}"));
        assert!(matches!(
            c.authentication(),
            ClientAuthentication::SecretBasic(_)
        ));

        let read = client.read_request().unwrap_or_else(|e| panic!("{e}"));
        assert_eq!(read.method(), Method::GET);
        assert_eq!(read.uri(), "https://server.example.com/register/s6BhdRkqt3");
        assert_eq!(
            read.headers()["authorization"],
            "Bearer reg-23410913-abewfq.123483"
        );
        let update = client
            .update_request(&client.metadata().clone().client_name("Renamed"))
            .unwrap_or_else(|e| panic!("{e}"));
        assert_eq!(update.method(), Method::PUT);
        let sent: Value = serde_json::from_slice(update.body().expose_secret()).unwrap_or_default();
        assert_eq!(sent["client_id"], "s6BhdRkqt3");
        assert_eq!(sent["client_secret"], "cf136dc3c1fc93f31185e5885805d");
        assert_eq!(sent["client_name"], "Renamed");
        // The server's own members are not sent back (RFC 7592 §2.2).
        assert!(sent.get("client_id_issued_at").is_none());
        assert!(sent.get("registration_access_token").is_none());
        assert_eq!(
            client.delete_request().map(|r| r.method().clone()).ok(),
            Some(Method::DELETE)
        );
        assert!(parse_registration_delete_response(&answer(204, Value::Null)).is_ok());
    }

    #[test]
    fn bad_answers_are_typed() {
        let missing = parse_registration_response(
            &answer(201, json!({"client_secret": "s"})),
            SchemePolicy::HttpsOnly,
        );
        assert!(
            matches!(missing, Err(Error::UnexpectedResponse(ref u)) if *u.reason() == UnexpectedReason::MissingField("client_id"))
        );
        // A management URI over plain http: the registration access token would go there.
        let http = parse_registration_response(
            &answer(
                201,
                json!({"client_id": "c", "registration_client_uri": "http://evil.example/r"}),
            ),
            SchemePolicy::HttpsOnly,
        );
        assert!(
            matches!(http, Err(Error::UnexpectedResponse(ref u)) if *u.reason() == UnexpectedReason::InvalidField("registration_client_uri"))
        );
        let refused = parse_registration_response(
            &answer(
                400,
                json!({"error": "invalid_redirect_uri", "error_description": "no"}),
            ),
            SchemePolicy::HttpsOnly,
        );
        assert!(matches!(refused, Err(Error::Server(_))));
        // A client id is a string (RFC 7591 §3.2.1); no secret for `none`.
        let public = parse_registration_response(
            &answer(
                201,
                json!({"client_id": "42", "token_endpoint_auth_method": "none"}),
            ),
            SchemePolicy::HttpsOnly,
        )
        .unwrap_or_else(|e| panic!("{e}"));
        assert_eq!(public.client_id(), "42");
        assert!(public.client().is_ok());
        assert!(public.read_request().is_err());
    }
}
