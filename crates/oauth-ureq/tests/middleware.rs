//! The ureq middleware and agent against the loopback test server: the token added, a 50 MiB
//! body streamed both ways, the 401 retry with an in-memory body, none with a stream.
#![allow(clippy::unwrap_used, clippy::expect_used)]

use std::io::Read;

use oauth_test_server::{Behaviour, RejectionStyle, TestServer};
use oauth_ureq::http::Request;
use oauth_ureq::{
    Client, ClientAuthentication, ClientSecret, HttpClient, HttpConfig, NotReplayed, OAuthAgent,
    OAuthMiddleware, TokenRequest, TokenSource,
};
use ureq::SendBody;

const BIG: u64 = 50 << 20;

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

/// `n` bytes of `i % 251`, generated as they are read.
struct Pattern {
    at: u64,
    end: u64,
}

impl Read for Pattern {
    fn read(&mut self, buf: &mut [u8]) -> std::io::Result<usize> {
        let n = buf.len().min((self.end - self.at) as usize);
        for b in &mut buf[..n] {
            *b = (self.at % 251) as u8;
            self.at += 1;
        }
        Ok(n)
    }
}

fn pattern_sha256(n: u64) -> String {
    let mut ctx = ring::digest::Context::new(&ring::digest::SHA256);
    let mut p = Pattern { at: 0, end: n };
    let mut buf = vec![0u8; 1 << 16];
    loop {
        let got = p.read(&mut buf).unwrap();
        if got == 0 {
            break;
        }
        ctx.update(&buf[..got]);
    }
    ctx.finish()
        .as_ref()
        .iter()
        .map(|b| format!("{b:02x}"))
        .collect()
}

fn json(mut answer: oauth_ureq::http::Response<ureq::Body>) -> serde_json::Value {
    serde_json::from_str(&answer.body_mut().read_to_string().unwrap()).unwrap()
}

#[test]
fn agent_streams_50_mib_both_ways_with_the_token() {
    let (server, tokens) = setup(RejectionStyle::Challenge);
    let api = OAuthAgent::new(ureq::Agent::new_with_defaults(), tokens);

    let upload = Request::post(server.url("/upload"))
        .body(SendBody::from_owned_reader(Pattern { at: 0, end: BIG }))
        .unwrap();
    let answer = json(api.run(upload).unwrap());
    assert_eq!(answer["bytes"], BIG);
    assert_eq!(answer["sha256"], pattern_sha256(BIG));

    let download = Request::get(server.url(&format!("/download?bytes={BIG}")))
        .body(())
        .unwrap();
    let mut answer = api.run(download).unwrap();
    let mut reader = answer.body_mut().with_config().limit(BIG + 1).reader();
    let (mut total, mut buf) = (0u64, vec![0u8; 1 << 16]);
    loop {
        let n = reader.read(&mut buf).unwrap();
        if n == 0 {
            break;
        }
        assert!(
            buf[..n]
                .iter()
                .enumerate()
                .all(|(i, b)| *b == ((total + i as u64) % 251) as u8)
        );
        total += n as u64;
    }
    assert_eq!(total, BIG);
    assert_eq!(server.counters().token_requests, 1);
    assert_eq!(server.counters().stream_requests, 2);
}

#[test]
fn agent_retries_an_in_memory_body_once_after_a_rejected_token() {
    // The Dataloy page's 401 body, read by the same classifier as `send()`.
    let (server, tokens) = setup(RejectionStyle::DataloyBody);
    let api = OAuthAgent::new(ureq::Agent::new_with_defaults(), tokens);
    let body = || {
        Request::post(server.url("/upload"))
            .body(b"payload".to_vec())
            .unwrap()
    };
    assert_eq!(json(api.run(body()).unwrap())["bytes"], 7);
    server.expire_access_tokens();
    assert_eq!(json(api.run(body()).unwrap())["bytes"], 7);
    let c = server.counters();
    assert_eq!((c.token_requests, c.stream_requests), (2, 3));
}

#[test]
fn a_streamed_body_is_not_retried_and_the_next_request_has_a_new_token() {
    let (server, tokens) = setup(RejectionStyle::Challenge);
    let agent: ureq::Agent = ureq::Agent::config_builder()
        .http_status_as_error(false)
        .build()
        .into();
    let api = OAuthAgent::new(agent, tokens);
    tokens_warm(&api, &server);
    server.expire_access_tokens();
    let stream = Request::post(server.url("/upload"))
        .body(SendBody::from_owned_reader(Pattern { at: 0, end: 1000 }))
        .unwrap();
    let answer = api.run(stream).unwrap();
    assert_eq!(answer.status(), 401);
    assert!(answer.extensions().get::<NotReplayed>().is_some());
    let c = server.counters();
    assert_eq!(
        (c.token_requests, c.stream_requests),
        (1, 2),
        "sent once, no new token yet"
    );
    let again = Request::post(server.url("/upload")).body("x").unwrap();
    assert_eq!(json(api.run(again).unwrap())["bytes"], 1);
    let c = server.counters();
    assert_eq!((c.token_requests, c.stream_requests), (2, 3));
}

fn tokens_warm(api: &OAuthAgent, server: &TestServer) {
    let first = Request::post(server.url("/upload")).body("warm").unwrap();
    assert_eq!(json(api.run(first).unwrap())["bytes"], 4);
}

#[test]
fn the_middleware_adds_the_token_streams_and_never_retries() {
    let (server, tokens) = setup(RejectionStyle::Challenge);
    let agent: ureq::Agent = ureq::Agent::config_builder()
        .middleware(OAuthMiddleware::new(tokens))
        .build()
        .into();
    let answer = agent
        .post(server.url("/upload"))
        .send(SendBody::from_owned_reader(Pattern { at: 0, end: BIG }))
        .unwrap();
    let answer = json(answer);
    assert_eq!(answer["bytes"], BIG);
    assert_eq!(answer["sha256"], pattern_sha256(BIG));

    // ureq's chain runs once: a rejected token is dropped, the 401 is the caller's (as ureq's
    // default `StatusCode` error), and the next request goes with a new token.
    server.expire_access_tokens();
    let err = agent
        .post(server.url("/upload"))
        .send("in memory")
        .unwrap_err();
    assert!(matches!(err, ureq::Error::StatusCode(401)), "{err:?}");
    let answer = agent.post(server.url("/upload")).send("in memory").unwrap();
    assert_eq!(json(answer)["bytes"], 9);
    let c = server.counters();
    assert_eq!((c.token_requests, c.stream_requests), (2, 3));
}

#[test]
fn the_middleware_can_return_statuses_as_responses() {
    let (server, tokens) = setup(RejectionStyle::Challenge);
    let agent: ureq::Agent = ureq::Agent::config_builder()
        .http_status_as_error(false)
        .middleware(OAuthMiddleware::new(tokens).statuses_as_responses())
        .build()
        .into();
    assert_eq!(
        agent
            .get(server.url("/download?bytes=3"))
            .call()
            .unwrap()
            .status(),
        200
    );
    server.expire_access_tokens();
    let answer = agent.get(server.url("/download?bytes=3")).call().unwrap();
    assert_eq!(answer.status(), 401);
    assert!(answer.extensions().get::<NotReplayed>().is_some());
    assert!(
        answer.headers()["www-authenticate"]
            .to_str()
            .unwrap()
            .contains("invalid_token")
    );
}

/// A token bound to the client certificate (RFC 8705 §3) goes out through `OAuthAgent` over an
/// agent built with the token source's TLS settings (`tls_config`), so with the same
/// certificate: accepted. An agent without the certificate gets a 401 for the same token.
#[test]
fn agent_presents_the_certificate_a_token_is_bound_to() {
    use oauth_test_server::{ClientCa, MtlsClient};
    let server = TestServer::start(Behaviour::default()).unwrap();
    let ca = ClientCa::generate().unwrap();
    let certificate = ca.issue("client.example").unwrap();
    server.register_mtls_client(MtlsClient::tls_client_auth(
        "mtls-app",
        &ca,
        "client.example",
    ));
    let trusting = HttpConfig::new()
        .add_root_certificates_pem(server.ca_pem().as_bytes())
        .unwrap();
    let config = trusting.clone().client_identity(
        oauth_ureq::ClientIdentity::from_pem(
            certificate.chain_pem.as_bytes(),
            certificate.key_pem.as_bytes(),
        )
        .unwrap(),
    );
    let http = HttpClient::new(config.clone()).unwrap();
    let metadata = http.discover(&server.url("")).unwrap();
    let tokens = TokenSource::builder(
        http,
        metadata.token_endpoint().unwrap().clone(),
        Client::new("mtls-app", ClientAuthentication::TlsClientAuth),
    )
    .grant(TokenRequest::client_credentials())
    .build();
    let with = |config: &HttpConfig| {
        let agent: ureq::Agent = ureq::Agent::config_builder()
            .tls_config(oauth_ureq::tls_config(config).unwrap())
            .http_status_as_error(false)
            .build()
            .into();
        OAuthAgent::new(agent, tokens.clone())
    };
    let call = |api: &OAuthAgent| {
        api.run(Request::get(server.url("/api")).body(()).unwrap())
            .unwrap()
            .status()
    };
    assert_eq!(call(&with(&config)), 200);
    let c = server.counters();
    assert_eq!((c.token_requests, c.mtls_alias_requests), (1, 1));
    // The same token without the certificate: refused (and once more after a new token).
    assert_eq!(call(&with(&trusting)), 401);
}
