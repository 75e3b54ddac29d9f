//! An axum API protected by the gateway layer, run end to end on loopback.
//!
//! `cargo run -p oauth-gateway --example protected_api`
//!
//! It starts the loopback test authorization server (token and introspection endpoints),
//! loads contracts from a JSON export into a redb file, serves an axum API behind
//! `gateway.layer()`, and then calls it as different clients, printing each decision:
//! allowed, no token, a client without a contract, a token lacking the scope, an unknown
//! token, and the introspection endpoint down (503). The API itself listens on plain HTTP on
//! 127.0.0.1 for the demo (in production it sits behind TLS), so the demo client opts in to
//! loopback HTTP; the authorization server is HTTPS with a CA made for the run.
#![allow(clippy::print_stdout, clippy::unwrap_used, clippy::expect_used)]

use std::time::Duration;

use axum::Router;
use axum::extract::Extension;
use axum::routing::get;
use oauth_core::http::{Request, header};
use oauth_core::{Client, ClientAuthentication, ClientSecret, TokenRequest};
use oauth_gateway::{ApiPolicy, CacheConfig, ContractSet, Gateway, Principal, RedbContracts};
use oauth_reqwest::{HttpClient, HttpConfig, TokenSource};
use oauth_test_server::{Behaviour, TestServer};

const CONTRACTS: &str = r#"{"contracts": [
    {"client_id": "test-client", "api": "orders", "scopes": ["orders:read"]},
    {"client_id": "reporting-app", "api": "billing"}
]}"#;

#[tokio::main(flavor = "multi_thread", worker_threads = 2)]
async fn main() -> Result<(), Box<dyn std::error::Error>> {
    // 1. The authorization server, with its introspection endpoint.
    let server = TestServer::start(Behaviour::default())?;
    println!("authorization server: {}", server.url("/"));

    // 2. Contracts: a JSON export loaded into a database file that survives restarts.
    let db_path = std::env::temp_dir().join(format!("protected-api-{}.redb", std::process::id()));
    let contracts = RedbContracts::open(&db_path)?;
    contracts.replace_all(&ContractSet::from_json(CONTRACTS.as_bytes())?)?;
    println!(
        "contracts: {} loaded into {}",
        contracts.export()?.len(),
        db_path.display()
    );

    // 3. The gateway: introspects with its own credentials, caches results for 60 s.
    let b = Behaviour::default();
    let gateway_credentials = Client::new(
        b.client_id.clone(),
        ClientAuthentication::SecretBasic(ClientSecret::new(b.client_secret.clone())),
    );
    let http = HttpClient::new(
        HttpConfig::new()
            .add_root_certificates_pem(server.ca_pem().as_bytes())?
            .timeout(Duration::from_secs(2))
            .retry(oauth_core::RetryPolicy::none()),
    )?;
    let gateway = Gateway::builder(
        http.clone(),
        http.endpoint(&server.url("/introspect"))?,
        gateway_credentials,
    )
    .cache(CacheConfig::new().max_age(Duration::from_secs(60)))
    .build(
        ApiPolicy::new("orders")
            .require_scope(["orders:read"])
            .realm("orders"),
        contracts,
    );

    // 4. The API behind the layer: handlers see who is calling.
    let app = Router::new()
        .route(
            "/orders",
            get(|Extension(caller): Extension<Principal>| async move {
                format!("{{\"orders\": [], \"client\": \"{}\"}}", caller.client_id())
            }),
        )
        .layer(gateway.layer());
    let listener = tokio::net::TcpListener::bind("127.0.0.1:0").await?;
    let api = format!("http://{}/orders", listener.local_addr()?);
    tokio::spawn(async move { axum::serve(listener, app).await });
    println!("protected API: {api}\n");

    // 5. Clients.
    let demo = HttpClient::new(HttpConfig::new().dangerous_allow_http_loopback())?;
    let call = |token: Option<String>| {
        let demo = demo.clone();
        let api = api.clone();
        async move {
            let mut request = Request::get(api.as_str());
            if let Some(t) = token {
                request = request.header(header::AUTHORIZATION, format!("Bearer {t}"));
            }
            let response = demo
                .execute_limited(request.body(Vec::new()).unwrap(), 1 << 16)
                .await?;
            let challenge = response
                .headers()
                .get(header::WWW_AUTHENTICATE)
                .map(|v| format!("\n      WWW-Authenticate: {}", v.to_str().unwrap_or("?")))
                .unwrap_or_default();
            Ok::<_, oauth_core::Error>(format!(
                "{} {}{challenge}",
                response.status().as_u16(),
                String::from_utf8_lossy(response.body())
            ))
        }
    };

    // A real client gets its token from the token endpoint (client_credentials).
    let tokens = TokenSource::builder(
        http.clone(),
        http.endpoint(&server.url("/token"))?,
        Client::new(
            b.client_id.clone(),
            ClientAuthentication::SecretBasic(ClientSecret::new(b.client_secret.clone())),
        ),
    )
    .grant(TokenRequest::client_credentials().scope(["orders:read"]))
    .build();
    let token = tokens.token().await?;
    let introspections = || server.counters().introspection_requests;

    println!("test-client, contract for orders, scope orders:read:");
    println!(
        "  -> {}",
        call(Some(token.expose_secret().to_owned())).await?
    );
    println!(
        "  again -> {}",
        call(Some(token.expose_secret().to_owned())).await?
    );
    println!(
        "  (introspection calls so far: {}; the second answer came from the cache)\n",
        introspections()
    );

    println!("no token:");
    println!("  -> {}\n", call(None).await?);

    let other =
        server.issue_access_token("reporting-app", "orders:read", Duration::from_secs(3600));
    println!("reporting-app (contract for billing only):");
    println!("  -> {}\n", call(Some(other)).await?);

    let narrow = server.issue_access_token("test-client", "profile", Duration::from_secs(3600));
    println!("test-client with a token lacking orders:read:");
    println!("  -> {}\n", call(Some(narrow)).await?);

    println!("an unknown (or revoked) token:");
    println!("  -> {}\n", call(Some("forged-or-revoked".into())).await?);

    server.configure(|b| b.introspection_failure = Some(503));
    let fresh = server.issue_access_token("test-client", "orders:read", Duration::from_secs(3600));
    println!("introspection endpoint down (a token not in the cache yet):");
    println!("  -> {}\n", call(Some(fresh)).await?);

    println!("total introspection calls: {}", introspections());
    drop(gateway);
    let _ = std::fs::remove_file(&db_path);
    Ok(())
}
