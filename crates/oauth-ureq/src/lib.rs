//! OAuth 2.0 for blocking Rust on [ureq](https://docs.rs/ureq).
//!
//! This crate carries out what [`oauth_core`]'s machines decide: it sends their requests,
//! reads the answers, sleeps and starts threads. Every decision (retry or not and when, refresh with
//! what, retry a 401 once, re-sign an assertion) is the core's.
//!
//! # Where to start
//!
//! - [`HttpClient`] (from an [`HttpConfig`]): token, introspection, revocation and discovery
//!   requests, HTTPS only (rustls with ring, Mozilla's roots plus any CA you add, or only
//!   yours), no redirects, a 1 MiB response cap, per-attempt and per-call timeouts, bounded
//!   retries.
//! - [`Client`] and [`TokenRequest`]: who you are (with [`ClientAuthentication`]) and which
//!   grant you run.
//! - [`TokenSource`]: a shared access token that is reused until the [`RefreshPolicy`] says
//!   otherwise, refreshed once for any number of concurrent callers, and sent as
//!   `Authorization: Bearer` by [`TokenSource::send`], which recovers once from a 401 "token
//!   expired". Built with [`TokenSource::builder`] … `try_build()`.
//!
//! The async twin, `oauth-reqwest`, has the same types with the same names; what both share
//! beyond the core is in `oauth-runtime`.
//!
//! ```no_run
//! use oauth_ureq::{Client, ClientAuthentication, ClientSecret, HttpClient, HttpConfig, TokenRequest, TokenSource};
//!
//! # fn run() -> Result<(), oauth_ureq::Error> {
//! let http = HttpClient::new(HttpConfig::new())?;
//! let endpoint = http.endpoint("https://auth.example.com/oauth/token")?;
//! let client = Client::new("my-client", ClientAuthentication::SecretBasic(ClientSecret::new("s3cret")));
//! let tokens = TokenSource::builder(http, endpoint, client)
//!     .grant(TokenRequest::client_credentials().scope(["read"]))
//!     .try_build()?;
//! let request = oauth_ureq::http::Request::get("https://api.example.com/v1/things")
//!     .body(Vec::new())
//!     .expect("a valid request");
//! let response = tokens.send(request)?;
//! println!("{}", response.status());
//! # Ok(()) }
//! ```
//!
//! # Logging
//!
//! ureq's protocol crate writes every request and response it handles as hex dumps at the
//! `log` crate's TRACE level: client secrets, passwords and tokens included. The default
//! feature `hide-http-trace-dumps` compiles `log`'s TRACE records out of the program (its
//! `max_level_debug` feature), so that no `log`-to-`tracing` bridge can ever see them; `tracing`'s
//! own events are not affected. Turn the feature off only to debug HTTP on a machine whose logs
//! may hold secrets.
//!
//! # Features
//!
//! | feature | default | what it adds |
//! | --- | --- | --- |
//! | `authorization-code` | yes | the code flow with PKCE, PAR (`push_authorization`) |
//! | `openid` | yes | `OpenIdClient`: id_tokens validated (jwt-assertion, ring), JWK sets, UserInfo |
//! | `hide-http-trace-dumps` | yes | compiles `log`'s TRACE records out (ureq dumps requests, secrets included, at TRACE) |
//! | `anypoint` | no | the Anypoint Maven facade helper and connected apps (`oauth_core::client::anypoint`) |
//!
//! [`OAuthAgent`] and [`OAuthMiddleware`] (the token on your own ureq requests) need no feature.
#![forbid(unsafe_code)]
// docs.rs: feature-gated items labelled (`doc_auto_cfg` became part of `doc_cfg` in Rust 1.92).
#![cfg_attr(docsrs, feature(doc_cfg))]

mod http_client;
mod middleware;
#[cfg(feature = "openid")]
mod openid;
mod source;

pub use http_client::{HttpClient, tls_config};
pub use middleware::{OAuthAgent, OAuthMiddleware, ReplayBody};
pub use oauth_runtime::NotReplayed;
pub use oauth_runtime::{FleetStore, FleetTokens, StoreError, StoreFuture, StoreKey};
#[cfg(feature = "openid")]
pub use oauth_runtime::{IdTokenExpectations, KeysError, Login, OpenIdCore, RemoteKeys};
#[doc(hidden)]
pub use oauth_runtime::{SharedStore, TokenStore};
#[cfg(feature = "openid")]
pub use openid::OpenIdClient;
pub use source::{TokenSource, TokenSourceBuilder};

pub use oauth_core::{self, http};
pub use oauth_runtime::reexports::*;
