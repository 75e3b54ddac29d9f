//! The API side of OAuth 2.0: an API gateway's policy — validate the caller's token, and
//! allow the call only if its client holds a contract for the API (within the contract's SLA
//! tier, if it has one).
//!
//! 1. A request reaches a protected API.
//! 2. The gateway takes the bearer token from it (RFC 6750 §2) and sends it to the
//!    authorization server's introspection endpoint (RFC 7662).
//! 3. The endpoint answers with the token's metadata, including the client id.
//! 4. A local store of contracts says whether that client may call this API.
//! 5. Only then does the request reach the backend.
//!
//! The protocol (extraction, the introspection request and response, the decision and its
//! RFC 6750 answer) and the bookkeeping (cache, DPoP replays, single flight, rate limits) are in
//! oauth-core; this crate is their one driver, with two faces:
//!
//! - [`Gateway`] (feature `tower`): async, on oauth-reqwest, with a `tower` Layer for axum,
//!   hyper or tonic; [`BlockingGateway`] (feature `blocking`): plain functions on oauth-ureq.
//!   Both run the same engine, so they decide alike.
//! - Introspection results cached per token (keyed by the token's SHA-256, bounded, never past
//!   `exp`, a maximum age, "inactive" answers briefly: [`CacheConfig`]); concurrent requests
//!   with the same uncached token make one introspection call.
//! - Contracts: the [`ContractStore`] trait, [`MemoryContracts`], and [`RedbContracts`]
//!   (feature `redb`) in a database file that survives restarts; both load a JSON export
//!   ([`ContractSet`]).
//! - The introspection endpoint failing (timeout, 5xx, refusing the gateway's credentials)
//!   denies with 503; it never allows. The denial keeps the cause for logs.
//! - DPoP (RFC 9449) off, allowed or required per gateway ([`DpopRequirement`]); cache
//!   lookups, introspection calls and key set fetches reported to a [`GatewayObserver`] for
//!   metrics.
//! - SLA tiers: a [`Contract`] may carry a tier (`oauth_core::resource_server::rate_limit`);
//!   its requests are counted on the node, or by the fleet in Redis
//!   ([`GatewayBuilder::rate_limits`]), and refused with 429 and the `RateLimit` fields when
//!   the tier is used up.
//! - A fleet ([`GatewayBuilder::shared_cache`]): one introspection call per token, DPoP
//!   proofs used once, across every node sharing a store.
//! - Certificate-bound tokens (mutual TLS, RFC 8705 §3): a token whose `cnf.x5t#S256` names a
//!   client certificate is allowed only on a connection that presented it (see below).
//! - A readiness probe ([`Gateway::probe`]): the key sets and the introspection endpoint.
//!
//! # Certificate-bound tokens
//!
//! The gateway does not see the TLS handshake: whatever accepts the connection hashes the
//! client's certificate once ([`ClientCertificate::from_der`]) and puts it in the extensions of
//! each request of that connection. [`Gateway::check`], [`BlockingGateway::check`] and the tower
//! layer read it there (`check_parts_with_certificate` takes it as an argument). With
//! tokio-rustls, after the handshake (the server config asking for client certificates:
//! rustls's `WebPkiClientVerifier` with `allow_unauthenticated()` for CA-issued ones, or the
//! `rustls` feature's `tls::AnyClientCertificate` for any certificate whose key the client
//! proves, self-signed ones included, RFC 8705 §2.2):
//!
//! ```ignore
//! let tls = acceptor.accept(tcp).await?;
//! let certificate = tls.get_ref().1.peer_certificates()
//!     .and_then(|chain| chain.first())
//!     .map(|leaf| ClientCertificate::from_der(leaf));
//! // Every request of this connection carries it (hyper's service_fn, or axum's
//! // `Router::layer(tower::util::MapRequestLayer::new(...))`):
//! let service = hyper::service::service_fn(move |mut request| {
//!     if let Some(certificate) = certificate {
//!         request.extensions_mut().insert(certificate);
//!     }
//!     app.clone().oneshot(request) // the app behind `gateway.layer()`
//! });
//! hyper::server::conn::http1::Builder::new()
//!     .serve_connection(hyper_util::rt::TokioIo::new(tls), service)
//!     .await?;
//! ```
//!
//! A bound token on a connection without a certificate, or with another, is refused with 401
//! `invalid_token`; tokens without `cnf.x5t#S256` are not affected. The `oauth-gateway` binary
//! (crate oauth-proxy) does this with `[tls] client_auth`.
//!
//! # Features
//!
//! | feature | default | what it adds |
//! | --- | --- | --- |
//! | `tower` | yes | [`Gateway`]: async (oauth-reqwest, tokio), its tower Layer |
//! | `blocking` | yes | [`BlockingGateway`]: blocking (oauth-ureq) |
//! | `redb` | yes | [`RedbContracts`]: contracts in a redb file |
//!
//! With none, the contract stores' types and [`MemoryContracts`] remain.
#![forbid(unsafe_code)]
// Without a front end (features `tower`, `blocking`) only the contract stores are used.
#![cfg_attr(not(any(feature = "tower", feature = "blocking")), allow(dead_code))]
// docs.rs: feature-gated items labelled (`doc_auto_cfg` became part of `doc_cfg` in Rust 1.92).
#![cfg_attr(docsrs, feature(doc_cfg))]

#[cfg(feature = "blocking")]
mod blocking;
mod contracts;
mod engine;
mod limits;
#[cfg(feature = "redb")]
mod redb_store;
mod shared;
#[cfg(feature = "rustls")]
pub mod tls;
#[cfg(feature = "tower")]
mod tower;

#[cfg(feature = "blocking")]
pub use blocking::BlockingGateway;
pub use contracts::{
    Contract, ContractError, ContractSet, ContractStore, MemoryContracts, tier_from_json,
    tier_from_spec, tier_to_json,
};
pub use engine::{DpopPolicy, DpopRequirement, JwtIssuer, ProbeError, RateLimitFallback};
pub use engine::{GatewayBuilder, GatewayObserver};
pub use oauth_core::resource_server::gateway::CacheConfig;
#[cfg(feature = "redb")]
pub use redb_store::RedbContracts;

/// Not part of the API: the token digest, for `benches/memory.rs`.
#[doc(hidden)]
pub mod __bench {
    pub use crate::engine::token_key as key;
}
#[cfg(feature = "tower")]
pub use tower::{Gateway, GatewayLayer, GatewayService};

pub use oauth_core::resource_server::ClientCertificate;
pub use oauth_core::{
    self, ApiPolicy, BearerLocations, ContractStatus, Denial, InvalidTokenReason, Principal,
};
