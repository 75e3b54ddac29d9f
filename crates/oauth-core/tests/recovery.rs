//! A minute of a failing token endpoint on simulated time: tokens live 3 s; the server answers
//! 75% of token requests, fails 20% with 503 and lets 5% time out (a timed-out refresh may have
//! rotated the refresh token on the server). Callers ask for a token every 10 ms, each willing
//! to wait 30 s. The lifecycle and the token call (with the default retry policy) together must
//! give every caller a token: an error only when every attempt within the deadline failed,
//! which this server never does for long.
#![allow(clippy::unwrap_used, clippy::expect_used, clippy::panic)]

use std::time::{Duration, Instant, SystemTime};

use oauth_core::http::Response;
use oauth_core::{
    CallStep, Client, ClientAuthentication, ClientSecret, Decision, Endpoint, Error, Now,
    RandomError, RandomSource, RefreshPolicy, RetryPolicy, TokenCall, TokenLifecycle, TokenRequest,
    TransportError, TransportErrorKind,
};

/// xorshift64*: deterministic, seeded.
struct Rng(std::cell::Cell<u64>);

impl Rng {
    fn next(&self) -> u64 {
        let mut x = self.0.get();
        x ^= x >> 12;
        x ^= x << 25;
        x ^= x >> 27;
        self.0.set(x);
        x.wrapping_mul(0x2545_F491_4F6C_DD1D)
    }
}

impl RandomSource for Rng {
    fn fill(&self, dest: &mut [u8]) -> Result<(), RandomError> {
        for chunk in dest.chunks_mut(8) {
            let v = self.next().to_le_bytes();
            chunk.copy_from_slice(&v[..chunk.len()]);
        }
        Ok(())
    }
}

/// The server: which refresh token is current, and what it answers.
struct Server {
    issued: u64,
    refresh: String,
    requests: u64,
}

enum Outcome {
    Answer(Response<Vec<u8>>, Duration),
    Timeout,
}

impl Server {
    fn answer(&mut self, body: &[u8], rng: &Rng) -> Outcome {
        self.requests += 1;
        let text = String::from_utf8_lossy(body).into_owned();
        let roll = rng.next() % 100;
        let refresh = text
            .split('&')
            .find_map(|p| p.strip_prefix("refresh_token="))
            .map(str::to_owned);
        if roll < 5 {
            // Timed out; the server may still have processed it (and rotated the refresh token).
            if refresh.is_some() && rng.next().is_multiple_of(2) {
                self.issued += 1;
                self.refresh = format!("r{}", self.issued);
            }
            return Outcome::Timeout;
        }
        if roll < 25 {
            let r = Response::builder()
                .status(503)
                .body(br#"{"error":"temporarily_unavailable"}"#.to_vec())
                .unwrap();
            return Outcome::Answer(r, Duration::from_millis(20));
        }
        if let Some(rt) = refresh
            && rt != self.refresh
        {
            let r = Response::builder()
                .status(400)
                .body(br#"{"error":"invalid_grant"}"#.to_vec())
                .unwrap();
            return Outcome::Answer(r, Duration::from_millis(20));
        }
        self.issued += 1;
        self.refresh = format!("r{}", self.issued);
        let body = format!(
            r#"{{"access_token":"a{}","token_type":"Bearer","expires_in":3,"refresh_token":"{}"}}"#,
            self.issued, self.refresh
        );
        Outcome::Answer(
            Response::builder()
                .status(200)
                .body(body.into_bytes())
                .unwrap(),
            Duration::from_millis(50),
        )
    }
}

#[test]
fn callers_see_no_error_while_the_server_recovers() {
    #[allow(clippy::disallowed_methods)] // one real reading to offset the simulation from
    let start = Now::new(
        SystemTime::UNIX_EPOCH + Duration::from_secs(1_700_000_000),
        Instant::now(),
    );
    for seed in 1..=20u64 {
        let rng = Rng(std::cell::Cell::new(
            seed.wrapping_mul(0x9E37_79B9_7F4A_7C15) | 1,
        ));
        let endpoint = Endpoint::new("https://as.example/token").unwrap();
        let client = Client::new(
            "app",
            ClientAuthentication::SecretBasic(ClientSecret::new("s")),
        );
        let retry = RetryPolicy::default();
        let mut lifecycle = TokenLifecycle::new(
            RefreshPolicy::default(),
            Some(TokenRequest::client_credentials()),
        );
        let mut server = Server {
            issued: 0,
            refresh: String::new(),
            requests: 0,
        };
        let deadline = Duration::from_secs(30);
        let tick = Duration::from_millis(10);
        let end = start.after(Duration::from_secs(60));
        let mut now = start;
        let (mut served, mut errors) = (0u64, 0u64);
        // One caller's poll: a token, a wait, or an error.
        let mut caller = |lifecycle: &mut TokenLifecycle, now: Now| -> Option<TokenRequest> {
            match lifecycle.poll(now, now.monotonic() + deadline) {
                Decision::Use(_) => {
                    served += 1;
                    None
                }
                Decision::UseAndRefresh(_, request) => {
                    served += 1;
                    Some(request)
                }
                Decision::Refresh(request) => Some(request),
                Decision::Wait { .. } => None,
                Decision::Fail(e) => {
                    errors += 1;
                    panic!(
                        "seed {seed}: a caller got {e} at {:?}",
                        now.monotonic() - start.monotonic()
                    );
                }
                _ => None,
            }
        };
        while now.monotonic() < end.monotonic() {
            let Some(request) = caller(&mut lifecycle, now) else {
                now = now.after(tick);
                continue;
            };
            // A token call runs; callers keep polling meanwhile.
            let mut call = TokenCall::new(
                &endpoint,
                &client,
                &request,
                &retry,
                now,
                deadline,
                Duration::from_secs(1),
            );
            let result = loop {
                match call.poll(now) {
                    CallStep::Send {
                        request: sent,
                        timeout,
                    } => {
                        let (answer, took) = match server.answer(sent.body().expose_secret(), &rng)
                        {
                            Outcome::Answer(r, took) => (Ok(r), took),
                            Outcome::Timeout => (
                                Err(Error::Transport(TransportError::new(
                                    TransportErrorKind::Timeout,
                                    "",
                                ))),
                                timeout,
                            ),
                        };
                        let done = now.after(took);
                        while now.monotonic() < done.monotonic() {
                            now = now.after(tick);
                            let _ = caller(&mut lifecycle, now);
                        }
                        call.handle_response(answer, now);
                    }
                    CallStep::Wait(until) => {
                        while now.monotonic() < until {
                            now = now.after(tick);
                            let _ = caller(&mut lifecycle, now);
                        }
                    }
                    CallStep::Done(result) => break result,
                    _ => unreachable!(),
                }
            };
            lifecycle.handle_response(result, now, &rng);
        }
        assert_eq!(errors, 0);
        assert!(served > 5_000, "seed {seed}: {served} tokens served");
        // Bounded: a 3 s token is refreshed about twice in its life, with retries on top.
        assert!(
            server.requests < 200,
            "seed {seed}: {} requests",
            server.requests
        );
    }
}
