//! The reqwest-middleware middleware and the client tower layer against the loopback test
//! server: the token added, a 50 MiB body streamed both ways, the 401 retry with an in-memory
//! body, none with a stream.
#![cfg(all(feature = "middleware", feature = "tower"))]
#![allow(clippy::unwrap_used, clippy::expect_used)]

use bytes::Bytes;
use futures_util::StreamExt;
use http_body_util::{BodyExt, Full, StreamBody};
use oauth_reqwest::http::Request;
use oauth_reqwest::{
    Client, ClientAuthentication, ClientSecret, HttpClient, HttpConfig, NotReplayed, OAuthLayer,
    OAuthMiddleware, TokenRequest, TokenSource,
};
use oauth_test_server::{Behaviour, RejectionStyle, TestServer};
use tower::{Layer, ServiceExt};

const BIG: u64 = 50 << 20;
const CHUNK: u64 = 64 * 1024;

fn setup(style: RejectionStyle) -> (TestServer, TokenSource) {
    let behaviour = Behaviour {
        rejection_style: style,
        ..Behaviour::default()
    };
    let server = TestServer::start_plain_http(behaviour.clone()).unwrap();
    let http = HttpClient::new(HttpConfig::new().dangerous_allow_http_loopback()).unwrap();
    let endpoint = http.endpoint(&server.url("/token")).unwrap();
    let client = Client::new(
        behaviour.client_id.clone(),
        ClientAuthentication::SecretBasic(ClientSecret::new(behaviour.client_secret)),
    );
    let tokens = TokenSource::builder(http, endpoint, client)
        .grant(TokenRequest::client_credentials())
        .build();
    (server, tokens)
}

/// `n` bytes of `i % 251` as a stream of 64 KiB chunks, generated as they are sent.
fn pattern(n: u64) -> impl futures_util::Stream<Item = Bytes> + Send + 'static {
    futures_util::stream::iter((0..n.div_ceil(CHUNK)).map(move |c| {
        let start = c * CHUNK;
        let end = (start + CHUNK).min(n);
        (start..end)
            .map(|i| (i % 251) as u8)
            .collect::<Vec<u8>>()
            .into()
    }))
}

fn pattern_sha256(n: u64) -> String {
    let mut ctx = ring::digest::Context::new(&ring::digest::SHA256);
    for c in 0..n.div_ceil(CHUNK) {
        let (start, end) = (c * CHUNK, ((c + 1) * CHUNK).min(n));
        ctx.update(&(start..end).map(|i| (i % 251) as u8).collect::<Vec<u8>>());
    }
    ctx.finish()
        .as_ref()
        .iter()
        .map(|b| format!("{b:02x}"))
        .collect()
}

fn check_pattern(seen: &mut u64, chunk: &[u8]) {
    assert!(
        chunk
            .iter()
            .enumerate()
            .all(|(i, b)| *b == ((*seen + i as u64) % 251) as u8)
    );
    *seen += chunk.len() as u64;
}

fn reqwest_api(tokens: TokenSource) -> reqwest_middleware::ClientWithMiddleware {
    let _ = rustls::crypto::ring::default_provider().install_default();
    reqwest_middleware::ClientBuilder::new(reqwest::Client::new())
        .with(OAuthMiddleware::new(tokens))
        .build()
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn reqwest_middleware_streams_50_mib_both_ways_with_the_token() {
    let (server, tokens) = setup(RejectionStyle::Challenge);
    let api = reqwest_api(tokens);
    let stream = pattern(BIG).map(Ok::<_, std::io::Error>);
    let answer: serde_json::Value = api
        .post(server.url("/upload"))
        .body(reqwest::Body::wrap_stream(stream))
        .send()
        .await
        .unwrap()
        .json()
        .await
        .unwrap();
    assert_eq!(answer["bytes"], BIG);
    assert_eq!(answer["sha256"], pattern_sha256(BIG));

    let mut download = api
        .get(server.url(&format!("/download?bytes={BIG}")))
        .send()
        .await
        .unwrap();
    assert_eq!(download.status(), 200);
    let mut seen = 0;
    while let Some(chunk) = download.chunk().await.unwrap() {
        check_pattern(&mut seen, &chunk);
    }
    assert_eq!(seen, BIG);
    let c = server.counters();
    assert_eq!((c.token_requests, c.stream_requests), (1, 2));
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn reqwest_middleware_retries_an_in_memory_body_once() {
    // The Dataloy page's 401 body, read by the same classifier as `send()`.
    let (server, tokens) = setup(RejectionStyle::DataloyBody);
    let api = reqwest_api(tokens);
    for _ in 0..2 {
        let answer: serde_json::Value = api
            .post(server.url("/upload"))
            .body("payload")
            .send()
            .await
            .unwrap()
            .json()
            .await
            .unwrap();
        assert_eq!(answer["bytes"], 7);
        server.expire_access_tokens();
    }
    let c = server.counters();
    assert_eq!((c.token_requests, c.stream_requests), (2, 3));
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn reqwest_middleware_does_not_retry_a_stream() {
    let (server, tokens) = setup(RejectionStyle::DataloyBody);
    let api = reqwest_api(tokens);
    let warm = api
        .get(server.url("/download?bytes=1"))
        .send()
        .await
        .unwrap();
    assert_eq!(warm.status(), 200);
    server.expire_access_tokens();
    let stream = pattern(1000).map(Ok::<_, std::io::Error>);
    let answer = api
        .post(server.url("/upload"))
        .body(reqwest::Body::wrap_stream(stream))
        .send()
        .await
        .unwrap();
    assert_eq!(answer.status(), 401);
    assert!(answer.extensions().get::<NotReplayed>().is_some());
    // The rebuilt 401 still carries the resource's body.
    assert!(answer.text().await.unwrap().contains("Token expired."));
    let c = server.counters();
    assert_eq!((c.token_requests, c.stream_requests), (1, 2));
    let next = api
        .get(server.url("/download?bytes=1"))
        .send()
        .await
        .unwrap();
    assert_eq!(next.status(), 200);
    assert_eq!(server.counters().token_requests, 2);
}

type Hyper<B> =
    hyper_util::client::legacy::Client<hyper_util::client::legacy::connect::HttpConnector, B>;

fn hyper<B>() -> Hyper<B>
where
    B: http_body::Body + Send + 'static,
    B::Data: Send,
    B::Error: Into<Box<dyn std::error::Error + Send + Sync>>,
{
    hyper_util::client::legacy::Client::builder(hyper_util::rt::TokioExecutor::new()).build_http()
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn tower_layer_streams_50_mib_both_ways_with_the_token() {
    let (server, tokens) = setup(RejectionStyle::Challenge);
    type Streamed = http_body_util::combinators::BoxBody<Bytes, std::io::Error>;
    let api = OAuthLayer::new(tokens).layer(hyper::<Streamed>());
    let body = BodyExt::boxed(StreamBody::new(
        pattern(BIG).map(|b| Ok(http_body::Frame::data(b))),
    ));
    let upload = Request::post(server.url("/upload")).body(body).unwrap();
    let answer = api.clone().oneshot(upload).await.unwrap();
    assert_eq!(answer.status(), 200);
    let answer: serde_json::Value =
        serde_json::from_slice(&answer.into_body().collect().await.unwrap().to_bytes()).unwrap();
    assert_eq!(answer["bytes"], BIG);
    assert_eq!(answer["sha256"], pattern_sha256(BIG));

    let empty = http_body_util::Empty::new()
        .map_err(|never| match never {})
        .boxed();
    let download = Request::get(server.url(&format!("/download?bytes={BIG}")))
        .body(empty)
        .unwrap();
    let mut body = api.oneshot(download).await.unwrap().into_body();
    let mut seen = 0;
    while let Some(frame) = body.frame().await {
        if let Ok(data) = frame.unwrap().into_data() {
            check_pattern(&mut seen, &data);
        }
    }
    assert_eq!(seen, BIG);
    let c = server.counters();
    assert_eq!((c.token_requests, c.stream_requests), (1, 2));
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn tower_layer_retries_full_bodies_not_streams() {
    let (server, tokens) = setup(RejectionStyle::Challenge);
    let full = OAuthLayer::new(tokens.clone()).layer(hyper::<Full<Bytes>>());
    let post = || {
        Request::post(server.url("/upload"))
            .body(Full::new(Bytes::from_static(b"payload")))
            .unwrap()
    };
    assert_eq!(full.clone().oneshot(post()).await.unwrap().status(), 200);
    server.expire_access_tokens();
    assert_eq!(full.clone().oneshot(post()).await.unwrap().status(), 200);
    let c = server.counters();
    assert_eq!((c.token_requests, c.stream_requests), (2, 3));

    type Streamed = http_body_util::combinators::BoxBody<Bytes, std::io::Error>;
    let streamed = OAuthLayer::new(tokens).layer(hyper::<Streamed>());
    server.expire_access_tokens();
    let body = BodyExt::boxed(StreamBody::new(
        pattern(10).map(|b| Ok(http_body::Frame::data(b))),
    ));
    let answer = streamed
        .oneshot(Request::post(server.url("/upload")).body(body).unwrap())
        .await
        .unwrap();
    assert_eq!(answer.status(), 401);
    assert!(answer.extensions().get::<NotReplayed>().is_some());
    let challenge = answer.headers()["www-authenticate"].to_str().unwrap();
    assert!(challenge.contains("invalid_token"), "{challenge}");
    let c = server.counters();
    assert_eq!((c.token_requests, c.stream_requests), (2, 4));
}

/// A token bound to the client certificate (RFC 8705 §3) goes out through the middleware over a
/// client built with the token source's TLS settings (`rustls_client_config`), so with the same
/// certificate: accepted. A client without the certificate gets a 401 for the same token.
#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn reqwest_middleware_presents_the_certificate_a_token_is_bound_to() {
    use oauth_test_server::{ClientCertificate, MtlsClient};
    let server = TestServer::start(Behaviour::default()).unwrap();
    let certificate = ClientCertificate::self_signed("self.example").unwrap();
    server.register_mtls_client(MtlsClient::self_signed("mtls-app", &certificate));
    let trusting = HttpConfig::new()
        .add_root_certificates_pem(server.ca_pem().as_bytes())
        .unwrap();
    let config = trusting.clone().client_identity(
        oauth_reqwest::ClientIdentity::from_pem(
            certificate.chain_pem.as_bytes(),
            certificate.key_pem.as_bytes(),
        )
        .unwrap(),
    );
    let http = HttpClient::new(config.clone()).unwrap();
    let metadata = http.discover(&server.url("")).await.unwrap();
    let tokens = TokenSource::builder(
        http,
        metadata.token_endpoint().unwrap().clone(),
        Client::new("mtls-app", ClientAuthentication::SelfSignedTlsClientAuth),
    )
    .grant(TokenRequest::client_credentials())
    .build();
    let with = |config: &HttpConfig| {
        let inner = reqwest::Client::builder()
            .tls_backend_preconfigured(oauth_reqwest::rustls_client_config(config).unwrap())
            .build()
            .unwrap();
        reqwest_middleware::ClientBuilder::new(inner)
            .with(OAuthMiddleware::new(tokens.clone()))
            .build()
    };
    let answer = with(&config).get(server.url("/api")).send().await.unwrap();
    assert_eq!(answer.status(), 200);
    let c = server.counters();
    assert_eq!((c.token_requests, c.mtls_alias_requests), (1, 1));
    // The same token without the certificate: refused (and once more after a new token).
    let answer = with(&trusting)
        .get(server.url("/api"))
        .send()
        .await
        .unwrap();
    assert_eq!(answer.status(), 401);
}
