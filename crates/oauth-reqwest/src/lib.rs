//! OAuth 2.0 for async Rust on [reqwest](https://docs.rs/reqwest) and tokio.
//!
//! This crate carries out what [`oauth_core`]'s machines decide: it sends their requests,
//! reads the answers, sleeps and spawns. Every decision (retry or not and when, refresh with
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
//! The blocking twin, `oauth-ureq`, has the same types with the same names; what both share
//! beyond the core is in `oauth-runtime`.
//!
//! ```no_run
//! use oauth_reqwest::{Client, ClientAuthentication, ClientSecret, HttpClient, HttpConfig, TokenRequest, TokenSource};
//!
//! # async fn run() -> Result<(), oauth_reqwest::Error> {
//! let http = HttpClient::new(HttpConfig::new())?;
//! let endpoint = http.endpoint("https://auth.example.com/oauth/token")?;
//! let client = Client::new("my-client", ClientAuthentication::SecretBasic(ClientSecret::new("s3cret")));
//! let tokens = TokenSource::builder(http, endpoint, client)
//!     .grant(TokenRequest::client_credentials().scope(["read"]))
//!     .try_build()?;
//! let request = oauth_reqwest::http::Request::get("https://api.example.com/v1/things")
//!     .body(Vec::new())
//!     .expect("a valid request");
//! let response = tokens.send(request).await?;
//! println!("{}", response.status());
//! # Ok(()) }
//! ```
//!
//! # Features
//!
//! | feature | default | what it adds |
//! | --- | --- | --- |
//! | `authorization-code` | yes | the code flow with PKCE, PAR (`push_authorization`) |
//! | `openid` | yes | `OpenIdClient`: id_tokens validated (jwt-assertion, ring), JWK sets, UserInfo |
//! | `anypoint` | no | the Anypoint Maven facade helper and connected apps (`oauth_core::client::anypoint`) |
//! | `middleware` | no | `OAuthMiddleware` for [reqwest-middleware](https://docs.rs/reqwest-middleware) clients |
//! | `tower` | no | `OAuthLayer`, a client-side tower layer (hyper, tonic) |
#![forbid(unsafe_code)]
// docs.rs: feature-gated items labelled (`doc_auto_cfg` became part of `doc_cfg` in Rust 1.92).
#![cfg_attr(docsrs, feature(doc_cfg))]

mod http_client;
#[cfg(feature = "middleware")]
mod middleware;
#[cfg(feature = "openid")]
mod openid;
mod source;
#[cfg(feature = "tower")]
mod tower;

pub use http_client::{HttpClient, rustls_client_config};
#[cfg(feature = "middleware")]
pub use middleware::OAuthMiddleware;
#[cfg(any(feature = "middleware", feature = "tower"))]
pub use oauth_runtime::NotReplayed;
pub use oauth_runtime::{FleetStore, FleetTokens, StoreError, StoreFuture, StoreKey};
#[cfg(feature = "openid")]
pub use oauth_runtime::{IdTokenExpectations, KeysError, Login, OpenIdCore, RemoteKeys};
#[doc(hidden)]
pub use oauth_runtime::{SharedStore, TokenStore};
#[cfg(feature = "openid")]
pub use openid::OpenIdClient;
pub use source::{TokenSource, TokenSourceBuilder};
#[cfg(feature = "tower")]
pub use tower::{BoxError, OAuthBody, OAuthLayer, OAuthService, ReplayBody};

pub use oauth_core::{self, http};
pub use oauth_runtime::reexports::*;
