// Shared by the targets: turn fuzz bytes into an HTTP response.

use oauth_core::http::Response;

const CONTENT_TYPES: &[&str] = &[
    "application/json",
    "application/json; charset=utf-8",
    "application/x-www-form-urlencoded",
    "text/html",
    "text/plain",
    "",
];

/// The first byte picks a content type, the next two a status in `statuses`; the rest is the
/// body.
pub fn response(data: &[u8], statuses: std::ops::Range<u16>) -> Option<Response<&[u8]>> {
    let (&ct, rest) = data.split_first()?;
    let (status, body) = match rest {
        [a, b, body @ ..] => (u16::from_be_bytes([*a, *b]), body),
        _ => (0, rest),
    };
    let span = statuses.end - statuses.start;
    let status = statuses.start + status % span;
    let mut builder = Response::builder().status(status);
    let ct = CONTENT_TYPES[usize::from(ct) % CONTENT_TYPES.len()];
    if !ct.is_empty() {
        builder = builder.header("content-type", ct);
    }
    builder.body(body).ok()
}
