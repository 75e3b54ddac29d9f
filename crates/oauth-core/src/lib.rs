//! The OAuth 2.0 client protocol, sans-IO.
//!
//! oauth-core builds every request an OAuth 2.0 client sends as a plain [`http::Request`] and
//! parses every response from a plain [`http::Response`]. It decides when a cached token must
//! be refreshed and with which request. It does **not** open sockets, read files or the
//! environment, read the clock (every function that needs "now" takes it), or ask the OS for
//! randomness (a [`RandomSource`] is passed in). An adapter crate (`oauth-reqwest`,
//! `oauth-ureq`) runs the requests; or bring your own HTTP client.
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
//! // The client_credentials request of the first provider page, secret in the form body.
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
//! # What is here
//!
//! - Grants: [`TokenRequest`] (client credentials, authorization code, refresh token, password,
//!   JWT bearer, token exchange, any extension grant), with [`ClientAuthentication`]
//!   (`client_secret_basic` with or without the RFC 6749 §2.3.1 encoding,
//!   `client_secret_post`, client assertions, `none`) and a form or JSON body
//!   ([`BodyEncoding`]).
//! - The authorization code flow's front channel: [`AuthorizationRequest`] with PKCE `S256`,
//!   `state`, `nonce`, and [`PendingAuthorization::handle_callback`] (constant-time `state`
//!   check, RFC 9207 `iss`, typed errors).
//! - Responses: [`parse_token_response`], lenient with what real servers send; typed
//!   [`Error`]s.
//! - Using tokens: [`authorize_request`], [`bearer_challenge`],
//!   [`classify_resource_response`] (is this 401 "token expired, get a new one"?).
//! - The token lifecycle: [`TokenLifecycle`], the state machine both adapters share.
//! - Introspection (RFC 7662) and revocation (RFC 7009): [`IntrospectionRequest`],
//!   [`parse_introspection_response`], [`RevocationRequest`], [`parse_revocation_response`].
//! - Discovery (RFC 8414, OpenID Connect): [`discovery_request`], [`parse_server_metadata`]
//!   (the issuer must match; every endpoint must pass the scheme policy).
//! - The resource server's side (the gateway policy): [`extract_bearer_token`] from an
//!   incoming request, and [`ApiPolicy::decide`] from the introspection result and the
//!   client's contract, to a [`Principal`] or a [`Denial`] with its RFC 6750 response.
//! - [`anypoint`]: the Exchange Maven facade's Basic shortcut.
//!
//! Every secret is a newtype whose `Debug` prints `<redacted>`, read through
//! `expose_secret()`, and wiped on drop. Endpoints are `https://` only, unless
//! [`SchemePolicy::DangerousAllowHttpLoopback`] is chosen.
//!
//! # Features
//!
//! | feature | default | what it adds |
//! | --- | --- | --- |
//! | `authorization-code` | yes | [`AuthorizationRequest`], [`Pkce`], [`PendingAuthorization`] (the code flow, PAR) |
//! | `anypoint` | yes | the [`anypoint`] module (Maven facade credentials, connected apps) and `providers::anypoint` |
//!
//! With no features the core still has every grant but the code flow, client authentication,
//! the token lifecycle and call machines, discovery, introspection, revocation, device flow,
//! registration, DPoP and the resource server's rules.
#![forbid(unsafe_code)]
// docs.rs: feature-gated items labelled (`doc_auto_cfg` became part of `doc_cfg` in Rust 1.92).
#![cfg_attr(docsrs, feature(doc_cfg))]

// The tree shows the three parts: `common` (the vocabulary both sides share), `client` (the
// client's requests, parsers and machines) and `resource_server` (an API's side: taking the
// token from a request, deciding from its introspection and the client's contract). The
// aliases below keep one short path per module inside the crate.
mod client;
mod common;
mod resource_server;

#[cfg(feature = "anypoint")]
pub use client::anypoint;
#[cfg(feature = "authorization-code")]
use client::authorization;
pub use client::providers;
use client::{
    bearer, device, discovery, dpop, engine, id_token, introspection, jwks, lifecycle,
    registration, request, response, userinfo,
};
pub use common::json;
#[cfg(feature = "authorization-code")]
use common::sha256;
use common::{encoding, endpoint, error, random, scope, scrub, secret, time, transport};
use resource_server as resource;

#[cfg(feature = "authorization-code")]
pub use authorization::{
    AuthorizationRequest, PendingAuthorization, PendingParts, Pkce, PkceMethod,
};
pub use bearer::{
    BearerChallenge, Rejection, TokenVerdict, authorize_request, bearer_challenge, bearer_header,
    classify_resource_response,
};
pub use client::{
    AssertionSigner, BodyEncoding, Client, ClientAssertion, ClientAuthentication, ClientId,
    JWT_BEARER_CLIENT_ASSERTION_TYPE, SigningContext,
};
pub use device::{
    DEFAULT_INTERVAL, DEVICE_CODE_GRANT_TYPE, DeviceAuthorization, DeviceAuthorizationRequest,
    DevicePoll, DeviceStep, MAX_EXPIRES_IN, MAX_INTERVAL, SLOW_DOWN_STEP,
    parse_device_authorization_response,
};
pub use discovery::{ServerMetadata, WellKnown, discovery_request, parse_server_metadata};
pub use dpop::{
    DPOP, DPOP_NONCE, Dpop, DpopSigner, ProofContext, asks_for_dpop_nonce, authorize_request_with,
    htu,
};
pub use endpoint::{Endpoint, EndpointError, SchemePolicy};
pub use engine::{
    CallStep, RejectionClassifier, ResourceCall, ResourceStep, TokenCall, deadline_after,
};
pub use error::{
    Error, ErrorCode, ErrorResponse, Fault, SigningError, UnexpectedReason, UnexpectedResponse,
};
pub use id_token::{IdTokenChecks, IdTokenClaims, IdTokenError, validate_id_token_claims};
pub use introspection::{
    Introspection, IntrospectionPool, IntrospectionRequest, RevocationRequest, TokenTypeHint,
    parse_introspection_response, parse_revocation_response,
};
pub use jwks::{JwksCache, JwksDecision};
pub use lifecycle::{
    Decision, Freshness, Invalidated, RefreshPolicy, TokenLifecycle, TokenSnapshot, UnknownExpiry,
};
pub use random::{RandomError, RandomSource};
pub use registration::{
    ClientMetadata, RegisteredClient, RegistrationRequest, parse_registration_delete_response,
    parse_registration_response, parse_registration_update,
};
pub use request::{
    JWT_BEARER_GRANT_TYPE, Repeat, RequestBody, TOKEN_EXCHANGE_GRANT_TYPE, TOKEN_TYPE_ACCESS_TOKEN,
    TOKEN_TYPE_ID_TOKEN, TOKEN_TYPE_JWT, TokenExchange, TokenRequest,
};
pub use resource::{
    ApiPolicy, BearerLocations, ContractStatus, DEFAULT_MAX_TOKEN_LEN, Denial, InvalidTokenReason,
    JwtAccessTokenChecks, Presentation, Principal, RequestToken, TokenScheme, extract_bearer_token,
    extract_bearer_token_from_parts, extract_token_from_parts, jwt_issuer_hint,
    validate_jwt_access_token,
};
pub use response::{MAX_BODY_LEN, TokenResponse, TokenType, parse_token_response};
pub use scope::Scope;
pub use scrub::SentSecrets;
pub use secret::{
    AccessToken, Assertion, AuthorizationCode, ClientSecret, IdToken, Nonce, Password,
    PkceVerifier, RefreshToken, SecurityToken, State, constant_time_eq,
};
pub use time::Now;
pub use transport::{RetryPolicy, TransportError, TransportErrorKind, is_transient, retry_after};
pub use userinfo::{
    UserInfo, UserInfoResponse, parse_userinfo_response, userinfo_request, userinfo_request_with,
    validate_userinfo,
};

/// Re-exported so that users name the same `http` version as this crate.
pub use http;
