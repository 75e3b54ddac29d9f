//! `oauth decode`: a JWT's header and claims, its times as dates, and (`--verify`) its
//! signature against an issuer's JWK set.

use std::time::{Duration, SystemTime};

use base64::Engine as _;
use base64::engine::general_purpose::URL_SAFE_NO_PAD;
use clap::Args;
use serde_json::Value;

use crate::config::Context;
use crate::{CliError, ClientArgs, GrantArgs};

/// Decoding needs no client: only what `--verify` uses to fetch the keys (not the client
/// options the other commands share, which would only clutter `oauth decode --help`).
#[derive(Args)]
pub(crate) struct DecodeArgs {
    /// Check the signature with the issuer's keys (--issuer, or --jwks-uri).
    #[arg(long)]
    verify: bool,
    /// The JWK set to verify with (else the discovered one).
    #[arg(long)]
    jwks_uri: Option<String>,
    /// The issuer whose discovered JWK set verifies the signature.
    #[arg(long, env = "OAUTH_ISSUER")]
    issuer: Option<String>,
    /// A CA certificate (PEM) to trust besides the system's roots, to fetch the keys.
    #[arg(long, env = "OAUTH_CA_FILE")]
    ca_file: Option<std::path::PathBuf>,
    /// Allow `http://` to 127.0.0.1/localhost (development only).
    #[arg(long)]
    allow_http_loopback: bool,
    /// The JWT (`-` reads it from stdin).
    token: String,
}

fn segment(token: &str, i: usize) -> Result<Value, CliError> {
    let part = token
        .split('.')
        .nth(i)
        .ok_or_else(|| CliError::input("not a JWT: it needs three dot-separated parts"))?;
    let bytes = URL_SAFE_NO_PAD
        .decode(part.trim_end_matches('='))
        .map_err(|_| CliError::input("not a JWT: a part is not base64url"))?;
    match serde_json::from_slice(&bytes) {
        Ok(v @ Value::Object(_)) => Ok(v),
        _ => Err(CliError::input("not a JWT: a part is not a JSON object")),
    }
}

/// `2026-12-02 07:15:00 UTC`.
pub(crate) fn date(secs: u64) -> String {
    let days = secs / 86_400;
    let rem = secs % 86_400;
    // Howard Hinnant's civil_from_days.
    let z = days as i64 + 719_468;
    let era = z.div_euclid(146_097);
    let doe = z.rem_euclid(146_097);
    let yoe = (doe - doe / 1460 + doe / 36_524 - doe / 146_096) / 365;
    let y = yoe + era * 400;
    let doy = doe - (365 * yoe + yoe / 4 - yoe / 100);
    let mp = (5 * doy + 2) / 153;
    let d = doy - (153 * mp + 2) / 5 + 1;
    let m = if mp < 10 { mp + 3 } else { mp - 9 };
    let y = if m <= 2 { y + 1 } else { y };
    format!(
        "{y:04}-{m:02}-{d:02} {:02}:{:02}:{:02} UTC",
        rem / 3600,
        rem % 3600 / 60,
        rem % 60
    )
}

/// `in 5 min`, `2 h ago`.
pub(crate) fn relative(secs: u64, now: u64) -> String {
    let (d, future) = if secs >= now {
        (secs - now, true)
    } else {
        (now - secs, false)
    };
    let text = match d {
        0..=59 => format!("{d} s"),
        60..=3599 => format!("{} min", d / 60),
        3600..=86_399 => format!("{} h", d / 3600),
        _ => format!("{} days", d / 86_400),
    };
    if future {
        format!("in {text}")
    } else {
        format!("{text} ago")
    }
}

pub(crate) fn decode(ctx: &Context, a: &DecodeArgs) -> Result<u8, CliError> {
    let token = if a.token == "-" {
        let mut line = String::new();
        std::io::stdin()
            .read_line(&mut line)
            .map_err(|e| CliError::input(format!("cannot read the token: {e}")))?;
        line.trim().to_owned()
    } else {
        a.token.trim().to_owned()
    };
    if token.split('.').count() != 3 {
        return Err(CliError::input(
            "not a JWT: it needs three dot-separated parts",
        ));
    }
    let header = segment(&token, 0)?;
    let claims = segment(&token, 1)?;
    println!(
        "header: {}",
        serde_json::to_string_pretty(&header).unwrap_or_default()
    );
    println!(
        "claims: {}",
        serde_json::to_string_pretty(&claims).unwrap_or_default()
    );
    let now = SystemTime::now()
        .duration_since(SystemTime::UNIX_EPOCH)
        .unwrap_or(Duration::ZERO)
        .as_secs();
    for name in ["iat", "nbf", "exp", "auth_time"] {
        if let Some(secs) = claims.get(name).and_then(Value::as_u64) {
            let note = if name == "exp" && secs <= now {
                " (expired)"
            } else {
                ""
            };
            println!("{name}: {} ({}){note}", date(secs), relative(secs, now));
        }
    }
    if !a.verify {
        return Ok(0);
    }
    let client = ClientArgs {
        issuer: a.issuer.clone(),
        ca_file: a.ca_file.clone(),
        allow_http_loopback: a.allow_http_loopback,
        ..ClientArgs::default()
    };
    let s = ctx.settings(&client, &GrantArgs::default())?;
    let http = s.http()?;
    let jwks_uri = match (&a.jwks_uri, s.discovered(&http)?) {
        (Some(uri), _) => http.endpoint(uri)?,
        (None, Some(m)) => m
            .jwks_uri()
            .cloned()
            .ok_or_else(|| CliError::config("the issuer publishes no jwks_uri"))?,
        (None, None) => return Err(CliError::config("--verify needs --issuer or --jwks-uri")),
    };
    let keys = oauth_ureq::RemoteKeys::new(jwks_uri);
    let allowed = [
        jwt_assertion::Algorithm::RS256,
        jwt_assertion::Algorithm::RS384,
        jwt_assertion::Algorithm::RS512,
        jwt_assertion::Algorithm::PS256,
        jwt_assertion::Algorithm::PS384,
        jwt_assertion::Algorithm::PS512,
        jwt_assertion::Algorithm::ES256,
        jwt_assertion::Algorithm::ES384,
        jwt_assertion::Algorithm::EdDSA,
    ];
    match oauth_runtime::block_on(keys.verify(&http, &token, &allowed)) {
        Ok(v) => {
            println!(
                "signature: valid ({}, key {})",
                v.alg(),
                header.get("kid").and_then(Value::as_str).unwrap_or("-")
            );
            Ok(0)
        }
        Err(oauth_ureq::KeysError::Refused(e)) => Err(CliError::new(
            77,
            format!("the signature is not valid: {e}"),
        )),
        Err(e) => Err(CliError::new(69, format!("{e}"))),
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn dates_and_relative_times() {
        assert_eq!(date(0), "1970-01-01 00:00:00 UTC");
        assert_eq!(date(1_700_000_000), "2023-11-14 22:13:20 UTC");
        assert_eq!(date(951_782_400), "2000-02-29 00:00:00 UTC");
        assert_eq!(relative(1300, 1000), "in 5 min");
        assert_eq!(relative(1000, 1000 + 7200), "2 h ago");
        assert_eq!(relative(1000, 1000), "in 0 s");
    }
}
