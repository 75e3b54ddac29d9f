//! A tour of oauth-core with no network: builds the requests of the provider pages, answers
//! them with the pages' sample responses, and drives the token lifecycle through ninety minutes on a
//! simulated clock, printing each step.
//!
//! Run with `cargo run -p oauth-core --example walkthrough`.
#![allow(clippy::print_stdout)]

use std::time::{Duration, Instant, SystemTime};

use oauth_core::http::{Request, Response};
use oauth_core::{
    BodyEncoding, Client, ClientAuthentication, ClientSecret, Decision, Endpoint, Now, RandomError,
    RandomSource, RefreshPolicy, RequestBody, TokenLifecycle, TokenRequest, TokenVerdict,
    authorize_request, classify_resource_response, parse_token_response,
};

/// A stand-in random source; an adapter passes the operating system's.
struct CountingRandom(std::cell::Cell<u8>);

impl RandomSource for CountingRandom {
    fn fill(&self, dest: &mut [u8]) -> Result<(), RandomError> {
        for b in dest {
            self.0.set(self.0.get().wrapping_add(97));
            *b = self.0.get();
        }
        Ok(())
    }
}

fn show(request: &Request<RequestBody>) {
    println!("  {} {}", request.method(), request.uri());
    for (name, value) in request.headers() {
        println!("  {name}: {value:?}");
    }
    println!(
        "  body: {:?} (the bytes are only reachable through expose_secret)",
        request.body()
    );
}

fn token_response(n: u32, expires_in: u64) -> Response<String> {
    Response::builder()
        .status(200)
        .header("content-type", "application/json")
        .body(format!(
            r#"{{"access_token":"token-{n}","token_type":"Bearer","expires_in":{expires_in}}}"#
        ))
        .unwrap_or_default()
}

fn main() -> Result<(), Box<dyn std::error::Error>> {
    let rng = CountingRandom(std::cell::Cell::new(0));
    // Simulated time: both clocks start here and move together.
    #[allow(clippy::disallowed_methods)] // one real reading to offset the simulation from
    let start = Now::new(
        SystemTime::UNIX_EPOCH + Duration::from_secs(1_763_800_000),
        Instant::now(),
    );
    let patient = start.after(Duration::from_secs(24 * 3600)).monotonic();

    println!("1. The Dataloy page's request: JSON body with client_id, client_secret, audience");
    let endpoint = Endpoint::new("https://auth.dataloy.example/oauth/token")?;
    let client = Client::new(
        "G99j845dM4MtckQlKt8E6o",
        ClientAuthentication::SecretPost(ClientSecret::new("-mMElVOMzvht2SyQPfVh")),
    )
    .with_body_encoding(BodyEncoding::Json);
    let grant = TokenRequest::client_credentials().audience("https://dataloy.internal");
    show(&grant.build(&endpoint, &client)?);

    println!("\n2. Ninety minutes of token use on a simulated clock (tokens live 1 hour)");
    let mut lifecycle = TokenLifecycle::new(RefreshPolicy::default(), Some(grant));
    let mut issued = 0;
    let mut now = start;
    for minute in [0u64, 1, 30, 54, 55, 56, 90] {
        now = start.after(Duration::from_secs(minute * 60));
        match lifecycle.poll(now, patient) {
            Decision::Use(token) => {
                println!("  t+{minute:>3} min: reuse {}", token.expose_secret());
            }
            Decision::UseAndRefresh(token, request) => {
                println!(
                    "  t+{minute:>3} min: serve {} and refresh ahead of expiry ({})",
                    token.expose_secret(),
                    request.grant_type()
                );
                issued += 1;
                let answer = token_response(issued, 3600);
                lifecycle.handle_response(parse_token_response(&answer, now.wall()), now, &rng);
            }
            Decision::Refresh(request) => {
                println!(
                    "  t+{minute:>3} min: no usable token, request one ({})",
                    request.grant_type()
                );
                issued += 1;
                let answer = token_response(issued, 3600);
                lifecycle.handle_response(parse_token_response(&answer, now.wall()), now, &rng);
            }
            other => println!("  t+{minute:>3} min: {other:?}"),
        }
    }

    println!("\n3. The API answers 401 \"Token expired.\" (the Dataloy page's body)");
    let Some(snapshot) = lifecycle.snapshot() else {
        return Err("no token cached".into());
    };
    let token = snapshot.access_token().clone();
    let mut call = Request::get("https://platform-dev.dataloy.com/ws/rest/Cargo").body(())?;
    authorize_request(&mut call, &token)?;
    println!("  request headers: {:?}", call.headers());
    let answer = Response::builder()
        .status(401)
        .body(r#"{"statusCode":401,"statusText":"Unauthorized","message":"Token expired."}"#)?;
    match classify_resource_response(&answer) {
        TokenVerdict::Rejected(reason) => {
            println!("  verdict: token rejected ({reason:?}): drop it and retry once");
            let _ = lifecycle.invalidate(&token, now);
            if let Decision::Refresh(request) = lifecycle.poll(now, patient) {
                println!("  new token request: {}", request.grant_type());
                issued += 1;
                let answer = token_response(issued, 3600);
                lifecycle.handle_response(parse_token_response(&answer, now.wall()), now, &rng);
            }
            if let Decision::Use(token) = lifecycle.poll(now, patient) {
                println!("  retry with {}", token.expose_secret());
            }
        }
        other => println!("  verdict: {other:?}"),
    }
    println!("\n{issued} token requests in all.");
    Ok(())
}
