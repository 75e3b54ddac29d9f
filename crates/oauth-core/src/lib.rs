//! The OAuth 2.0 client protocol, sans-IO.
//!
//! oauth-core builds every request an OAuth 2.0 client sends as a plain [`http::Request`] and
//! parses every response from a plain [`http::Response`]. It decides when a cached token must
//! be refreshed and with which request. It does **not** open sockets, read files or the
//! environment, read the clock (every function that needs "now" takes it), or ask the OS for
//! randomness (a [`RandomSource`] is passed in). An adapter crate (`oauth-reqwest`,
//! `oauth-ureq`) runs the requests; or bring your own HTTP client.
//!
//! # Where to start
//!
//! Four types carry most programs:
//!
//! - [`Endpoint`]: an `https://` URI, checked once ([`SchemePolicy`]).
//! - [`Client`]: who you are and how you authenticate ([`ClientAuthentication`]: a
//!   [`ClientSecret`] in Basic or the body, an assertion signed per request by an
//!   [`AssertionSigner`], or none).
//! - [`TokenRequest`]: what you ask for (client credentials, authorization code, refresh
//!   token, password, JWT bearer, token exchange, any extension grant); `build` gives the
//!   `http::Request`.
//! - [`TokenResponse`]: what [`parse_token_response`] reads from the answer, with an absolute
//!   expiry; [`TokenLifecycle`] then decides when to reuse, refresh or wait.
//!
//! ```text
//!   TokenRequest ──build()──► http::Request ──(your HTTP client)──► http::Response
//!                                                                         │
//!   TokenResponse / Error ◄──────────── parse_token_response(resp, now) ◄─┘
//!         │
//!         └──► TokenLifecycle::handle_response ──poll(now)──► Use / Refresh(request) / Wait
//! ```
//!
//! # Getting started
//!
//! ```
//! use std::time::SystemTime;
//! use oauth_core::{Client, ClientAuthentication, ClientSecret, Endpoint, TokenRequest, parse_token_response};
//!
//! // A client_credentials grant (RFC 6749 §4.4), the secret in the form body
//! // (client_secret_post).
//! let endpoint = Endpoint::new("https://oauth.org.com/as/token.oauth2")?;
//! let client = Client::new("my-client", ClientAuthentication::SecretPost(ClientSecret::new("my-secret")));
//! let request = TokenRequest::client_credentials().build(&endpoint, &client)?;
//! assert_eq!(
//!     request.body().expose_secret(),
//!     b"grant_type=client_credentials&client_id=my-client&client_secret=my-secret"
//! );
//!
//! // Send `request` with any HTTP client, then hand the answer back with the receive time.
//! let answer = http::Response::builder()
//!     .status(200)
//!     .header("content-type", "application/json")
//!     .body(r#"{"access_token": "tok", "token_type": "Bearer", "expires_in": 86399}"#)?;
//! let token = parse_token_response(&answer, SystemTime::now())?;
//!
//! // Use it.
//! let mut call = http::Request::get("https://api.domain.com/labels").body(())?;
//! oauth_core::authorize_request(&mut call, token.access_token())?;
//! # Ok::<(), Box<dyn std::error::Error>>(())
//! ```
//!
//! # The modules
//!
//! The root holds the vocabulary above and the secret newtypes; each flow has its module.
//!
//! | module | what it holds |
//! | --- | --- |
//! | [`client`] | the client's side; its top has the token endpoint's types, its modules one flow each: |
//! | [`client::lifecycle`] | [`TokenLifecycle`], [`Decision`](client::lifecycle::Decision), [`RefreshPolicy`](client::lifecycle::RefreshPolicy), [`Invalidated`](client::lifecycle::Invalidated) |
//! | [`client::engine`] | the machines adapters drive: [`TokenCall`](client::engine::TokenCall) (retries, deadlines), [`ResourceCall`](client::engine::ResourceCall) (the 401-once rule), [`RejectionClassifier`](client::engine::RejectionClassifier) |
//! | [`client::bearer`] | using tokens: [`authorize_request`], [`classify_resource_response`](client::bearer::classify_resource_response) (is this 401 "token expired, get a new one"?) |
//! | `client::authorization` | the authorization code flow's front channel: `AuthorizationRequest` with PKCE `S256`, `state`, `nonce`; `PendingAuthorization::handle_callback` (constant-time `state` check, RFC 9207 `iss`); PAR (feature `authorization-code`) |
//! | [`client::device`] | the device authorization grant (RFC 8628): [`DevicePoll`](client::device::DevicePoll) |
//! | [`client::discovery`] | server metadata (RFC 8414, OpenID Connect): [`discovery_request`](client::discovery::discovery_request), [`parse_server_metadata`](client::discovery::parse_server_metadata) (the issuer must match; every endpoint passes the scheme policy) |
//! | [`client::introspection`] | introspection (RFC 7662) and revocation (RFC 7009) |
//! | [`client::registration`] | dynamic client registration (RFC 7591/7592) |
//! | [`client::dpop`] | DPoP proofs for the client (RFC 9449) |
//! | [`client::id_token`], [`client::userinfo`], [`client::jwks`] | OpenID Connect: id_token claims, UserInfo, JWK set refetching |
//! | [`client::providers`] | presets (Anypoint, Auth0, Dataloy): endpoint, client and request as each provider documents them |
//! | [`resource_server`] | the API's side: [`extract_bearer_token`](resource_server::extract_bearer_token) from an incoming request, [`ApiPolicy::decide`](resource_server::ApiPolicy::decide) from the introspection and the client's contract to a `Principal` or a `Denial` with its RFC 6750 response |
//! | [`resource_server::gateway`] | the gateway's bookkeeping as a machine: the result cache, the DPoP replay set, single flight ([`Check`](resource_server::gateway::Check)) |
//! | [`resource_server::rate_limit`] | SLA tiers and the rate limiter that enforces them (a sliding window of buckets) |
//! | [`lease`] | [`LeasedFetch`](lease::LeasedFetch): one fetch for a fleet through a shared store |
//! | [`error`] | [`Error`] (by whose [`Fault`]), [`ErrorCode`], [`ErrorResponse`], `UnexpectedResponse`, `SigningError` |
//! | [`transport`] | what adapters report ([`TransportError`](transport::TransportError)) and when to retry ([`RetryPolicy`](transport::RetryPolicy)) |
//! | [`secret`] | the other secret newtypes (`AuthorizationCode`, `IdToken`, `Nonce`, `PkceVerifier`, `State`), `constant_time_eq` |
//! | [`random`], [`scrub`], [`json`] | the random-source seam, the secrets a request carries (scrubbed from errors), strict JSON |
//!
//! Every secret is a newtype whose `Debug` prints `<redacted>`, read through
//! `expose_secret()`, and wiped on drop. Endpoints are `https://` only, unless
//! [`SchemePolicy::DangerousAllowHttpLoopback`] is chosen.
//!
//! Paths at the root other than the vocabulary above (`oauth_core::DevicePoll`, ...) still
//! work in this release, hidden from these docs; they go in the next one. CHANGELOG.md lists
//! each one's module path.
//!
//! # Features
//!
//! | feature | default | what it adds |
//! | --- | --- | --- |
//! | `authorization-code` | yes | `client::authorization`: `AuthorizationRequest`, `Pkce`, `PendingAuthorization` (the code flow, PAR) |
//! | `anypoint` | yes | `client::anypoint` (Maven facade credentials, connected apps) and `client::providers::anypoint` |
//!
//! With no features the core still has every grant but the code flow, client authentication,
//! the token lifecycle and call machines, discovery, introspection, revocation, device flow,
//! registration, DPoP and the resource server's rules.
#![forbid(unsafe_code)]
// The docs link items by their module paths (`client::lifecycle::Decision`), which rustdoc
// finds redundant while the deprecated root paths still resolve; the module paths are the
// ones that stay.
#![allow(rustdoc::redundant_explicit_links)]
// docs.rs: feature-gated items labelled (`doc_auto_cfg` became part of `doc_cfg` in Rust 1.92).
#![cfg_attr(docsrs, feature(doc_cfg))]

// The tree shows the three parts: `common` (the vocabulary both sides share), `client` (the
// client's requests, parsers and machines) and `resource_server` (an API's side: taking the
// token from a request, deciding from its introspection and the client's contract). `client`
// and `resource_server` are public; of `common`, the modules a user names (`error`,
// `transport`, `secret`, `random`, `scrub`, `json`) are re-exported here, and the rest of the
// vocabulary sits at the root. The private aliases below keep one short path per module inside
// the crate.
pub mod client;
mod common;
pub mod resource_server;

#[cfg(feature = "authorization-code")]
use client::authorization;
use client::{
    bearer, device, discovery, dpop, engine, id_token, introspection, jwks, lifecycle,
    registration, request, response, userinfo,
};
pub use common::lease;
#[cfg(feature = "authorization-code")]
use common::sha256;
pub use common::{authorization_details, error, json, random, scrub, secret, transport};
use common::{encoding, endpoint, scope, time};
use resource_server as resource;

// The vocabulary: what nearly every user names, whichever flow they run.
#[doc(inline)]
pub use bearer::authorize_request;
#[doc(inline)]
pub use client::{
    AssertionSigner, BodyEncoding, Client, ClientAssertion, ClientAuthentication, ClientId,
    RequestBody, TokenRequest, TokenResponse, TokenType, parse_token_response,
};
pub use endpoint::{Endpoint, EndpointError, SchemePolicy};
#[doc(inline)]
pub use error::{Error, ErrorCode, ErrorResponse, Fault};
#[doc(inline)]
pub use lifecycle::TokenLifecycle;
#[doc(inline)]
pub use random::RandomSource;
pub use scope::Scope;
#[doc(inline)]
pub use secret::{AccessToken, Assertion, ClientSecret, Password, RefreshToken, SecurityToken};
pub use time::Now;

// Deprecated root paths, kept working for one release (see CHANGELOG.md): each item's path is
// its module's (`client::device::DevicePoll`, `transport::RetryPolicy`, ...).
#[cfg(feature = "authorization-code")]
#[doc(hidden)]
pub use authorization::{
    AuthorizationRequest, PendingAuthorization, PendingParts, Pkce, PkceMethod,
};
#[doc(hidden)]
pub use bearer::{
    BearerChallenge, Rejection, TokenVerdict, bearer_challenge, bearer_header,
    classify_resource_response,
};
#[cfg(feature = "anypoint")]
#[doc(hidden)]
pub use client::anypoint;
#[doc(hidden)]
pub use client::providers;
#[doc(hidden)]
pub use client::{JWT_BEARER_CLIENT_ASSERTION_TYPE, SigningContext};
#[doc(hidden)]
pub use device::{
    DEFAULT_INTERVAL, DEVICE_CODE_GRANT_TYPE, DeviceAuthorization, DeviceAuthorizationRequest,
    DevicePoll, DeviceStep, MAX_EXPIRES_IN, MAX_INTERVAL, SLOW_DOWN_STEP,
    parse_device_authorization_response,
};
#[doc(hidden)]
pub use discovery::{ServerMetadata, WellKnown, discovery_request, parse_server_metadata};
#[doc(hidden)]
pub use dpop::{
    DPOP, DPOP_NONCE, Dpop, DpopSigner, ProofContext, asks_for_dpop_nonce, authorize_request_with,
    htu,
};
#[doc(hidden)]
pub use engine::{
    CallStep, RejectionClassifier, ResourceCall, ResourceStep, TokenCall, deadline_after,
};
#[doc(hidden)]
pub use error::{SigningError, UnexpectedReason, UnexpectedResponse};
#[doc(hidden)]
pub use id_token::{IdTokenChecks, IdTokenClaims, IdTokenError, validate_id_token_claims};
#[doc(hidden)]
pub use introspection::{
    Introspection, IntrospectionPool, IntrospectionRequest, RevocationRequest, TokenTypeHint,
    parse_introspection_response, parse_revocation_response,
};
#[doc(hidden)]
pub use jwks::{JwksCache, JwksDecision};
#[doc(hidden)]
pub use lifecycle::{
    Decision, Freshness, Invalidated, RefreshPolicy, TokenSnapshot, UnknownExpiry,
};
#[doc(hidden)]
pub use random::RandomError;
#[doc(hidden)]
pub use registration::{
    ClientMetadata, RegisteredClient, RegistrationRequest, parse_registration_delete_response,
    parse_registration_response, parse_registration_update,
};
#[doc(hidden)]
pub use request::{
    JWT_BEARER_GRANT_TYPE, Repeat, TOKEN_EXCHANGE_GRANT_TYPE, TOKEN_TYPE_ACCESS_TOKEN,
    TOKEN_TYPE_ID_TOKEN, TOKEN_TYPE_JWT, TokenExchange,
};
#[doc(hidden)]
pub use resource::{
    ApiPolicy, BearerLocations, Cause, ContractStatus, DEFAULT_MAX_TOKEN_LEN, Denial,
    InvalidTokenReason, JwtAccessTokenChecks, Presentation, Principal, RequestToken, TokenScheme,
    extract_bearer_token, extract_bearer_token_from_parts, extract_token_from_parts,
    jwt_issuer_hint, validate_jwt_access_token,
};
#[doc(hidden)]
pub use response::MAX_BODY_LEN;
#[doc(hidden)]
pub use scrub::SentSecrets;
#[doc(hidden)]
pub use secret::{AuthorizationCode, IdToken, Nonce, PkceVerifier, State, constant_time_eq};
#[doc(hidden)]
pub use transport::{RetryPolicy, TransportError, TransportErrorKind, is_transient, retry_after};
#[doc(hidden)]
pub use userinfo::{
    UserInfo, UserInfoResponse, parse_userinfo_response, userinfo_request, userinfo_request_with,
    validate_userinfo,
};

/// Re-exported so that users name the same `http` version as this crate.
pub use http;
