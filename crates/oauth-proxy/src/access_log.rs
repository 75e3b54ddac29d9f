//! Where log lines go: standard error, at once — except the access log's lines on a serving
//! worker, which collect in that worker's buffer and go out together (when it holds 32 KiB,
//! every 100 ms, and when the worker ends), as nginx's `access_log ... buffer= flush=` does.
//! One `write` for many requests, rather than one per request under standard error's lock,
//! which every worker contends for.
//!
//! A line is never split: tracing formats an event whole before it writes it, and a buffer
//! only ever holds whole lines. Warnings and errors are not held back.
//!
//! On a worker, an access-log line is written into the buffer by hand ([`request`]), in the
//! very form tracing-subscriber gives the same event (text or JSON; the tests compare the two):
//! its field visitors and formatting machinery cost as much as a sixth of the user time the
//! gateway spends on a request (callgrind, a cache hit).

use std::cell::RefCell;
use std::io::{self, Write};
use std::time::Duration;

use tracing_subscriber::fmt::MakeWriter;

/// The access log's target: its lines are the ones buffered.
pub(crate) const TARGET: &str = "oauth_gateway::access";

/// A buffer this full is written out at once.
const FLUSH_AT: usize = 32 * 1024;

/// How long a line may wait in a buffer.
pub(crate) const FLUSH_EVERY: Duration = Duration::from_millis(100);

/// A worker's buffer; written out when the worker's thread ends.
struct Buffer(Vec<u8>);

impl Drop for Buffer {
    fn drop(&mut self) {
        write_out(&self.0);
    }
}

thread_local! {
    /// The calling worker's buffer; `None` on any other thread.
    static BUFFER: RefCell<Option<Buffer>> = const { RefCell::new(None) };
}

fn write_out(bytes: &[u8]) {
    if !bytes.is_empty() {
        // Nowhere to report a failure to write the log.
        let _ = io::stderr().lock().write_all(bytes);
    }
}

/// From now on the calling thread's access-log lines are buffered (a serving worker's).
pub(crate) fn buffer_this_thread() {
    let _ = BUFFER.try_with(|b| {
        if let Ok(mut b) = b.try_borrow_mut() {
            *b = Some(Buffer(Vec::with_capacity(FLUSH_AT + 1024)));
        }
    });
}

/// Writes out what the calling thread's buffer holds.
pub(crate) fn flush_this_thread() {
    let _ = BUFFER.try_with(|b| {
        if let Ok(mut b) = b.try_borrow_mut()
            && let Some(buffer) = b.as_mut()
        {
            write_out(&buffer.0);
            buffer.0.clear();
        }
    });
}

/// Appends `line` to the calling thread's buffer, writing it out when full; `false` if this
/// thread has none (or it is in use, or gone), for the caller to write the line itself.
fn buffered(line: &[u8]) -> bool {
    BUFFER
        .try_with(|b| {
            let Ok(mut b) = b.try_borrow_mut() else {
                return false;
            };
            let Some(buffer) = b.as_mut() else {
                return false;
            };
            buffer.0.extend_from_slice(line);
            if buffer.0.len() >= FLUSH_AT {
                write_out(&buffer.0);
                buffer.0.clear();
            }
            true
        })
        .unwrap_or(false)
}

/// The log's writer (tracing-subscriber's `with_writer`).
pub(crate) struct Writer;

impl<'a> MakeWriter<'a> for Writer {
    type Writer = Line;

    fn make_writer(&'a self) -> Line {
        Line { buffer: false }
    }

    fn make_writer_for(&'a self, meta: &tracing::Metadata<'_>) -> Line {
        Line {
            buffer: meta.target() == TARGET,
        }
    }
}

/// One event's line, written to standard error or to the worker's buffer.
pub(crate) struct Line {
    buffer: bool,
}

impl Write for Line {
    fn write(&mut self, data: &[u8]) -> io::Result<usize> {
        self.write_all(data)?;
        Ok(data.len())
    }

    fn write_all(&mut self, data: &[u8]) -> io::Result<()> {
        if self.buffer && buffered(data) {
            return Ok(());
        }
        io::stderr().lock().write_all(data)
    }

    fn flush(&mut self) -> io::Result<()> {
        Ok(())
    }
}

/// One request's access-log line, as `proxy::handle` logs it.
pub(crate) struct Entry<'a> {
    pub(crate) method: &'a axum::http::Method,
    pub(crate) path: &'a str,
    pub(crate) status: u16,
    pub(crate) api: &'a str,
    pub(crate) client_id: &'a str,
    pub(crate) reason: &'a str,
    pub(crate) request_id: &'a str,
    pub(crate) elapsed_us: u64,
}

/// The format the log is in, set once when logging starts (the text format until then).
static JSON: std::sync::atomic::AtomicBool = std::sync::atomic::AtomicBool::new(false);

/// The log's lines are JSON objects from now on (`log_format = "json"`).
pub(crate) fn use_json(json: bool) {
    JSON.store(json, std::sync::atomic::Ordering::Relaxed);
}

/// Logs `entry` at `info` under [`TARGET`], if the filter (`RUST_LOG`) lets that through.
///
/// On a serving worker the line is written straight into its buffer, in exactly the form
/// tracing-subscriber's formatter gives the same event (the tests compare both), without going
/// through it: its field visitors and formatting machinery cost more than the rest of the
/// line's request in the proxy's own code. Elsewhere the event goes through tracing.
pub(crate) fn request(entry: &Entry<'_>) {
    if !tracing::enabled!(target: TARGET, tracing::Level::INFO) {
        return;
    }
    let json = JSON.load(std::sync::atomic::Ordering::Relaxed);
    let written = BUFFER
        .try_with(|b| {
            let Ok(mut b) = b.try_borrow_mut() else {
                return false;
            };
            let Some(buffer) = b.as_mut() else {
                return false;
            };
            format_line(&mut buffer.0, entry, std::time::SystemTime::now(), json);
            if buffer.0.len() >= FLUSH_AT {
                write_out(&buffer.0);
                buffer.0.clear();
            }
            true
        })
        .unwrap_or(false);
    if !written {
        event(entry);
    }
}

/// `entry` as a tracing event (what [`format_line`] writes by hand).
fn event(entry: &Entry<'_>) {
    tracing::info!(
        target: TARGET,
        method = %entry.method,
        path = entry.path,
        status = entry.status,
        api = entry.api,
        client_id = entry.client_id,
        reason = entry.reason,
        request_id = %entry.request_id,
        elapsed_us = entry.elapsed_us,
        "request"
    );
}

/// A field's value, and how each format writes it.
enum Value<'a> {
    /// Recorded with `%` (Display): as it is in the text format, a string in JSON.
    Shown(&'a str),
    /// A `&str` field: `Debug`-quoted in the text format, a string in JSON.
    Text(&'a str),
    Number(u64),
}

/// Appends `entry`'s line, logged at `at`, to `out`: tracing-subscriber's full text format
/// (no target, no colours) or its JSON format.
fn format_line(out: &mut Vec<u8>, entry: &Entry<'_>, at: std::time::SystemTime, json: bool) {
    let fields = [
        ("method", Value::Shown(entry.method.as_str())),
        ("path", Value::Text(entry.path)),
        ("status", Value::Number(u64::from(entry.status))),
        ("api", Value::Text(entry.api)),
        ("client_id", Value::Text(entry.client_id)),
        ("reason", Value::Text(entry.reason)),
        ("request_id", Value::Shown(entry.request_id)),
        ("elapsed_us", Value::Number(entry.elapsed_us)),
    ];
    if json {
        out.extend_from_slice(b"{\"timestamp\":\"");
        timestamp(out, at);
        out.extend_from_slice(b"\",\"level\":\"INFO\",\"fields\":{\"message\":\"request\"");
    } else {
        timestamp(out, at);
        out.extend_from_slice(b"  INFO request");
    }
    for (name, value) in fields {
        if json {
            out.extend_from_slice(b",\"");
            out.extend_from_slice(name.as_bytes());
            out.extend_from_slice(b"\":");
        } else {
            out.push(b' ');
            out.extend_from_slice(name.as_bytes());
            out.push(b'=');
        }
        match value {
            Value::Number(n) => number(out, n),
            Value::Shown(text) | Value::Text(text) if json => json_str(out, text),
            Value::Shown(text) => out.extend_from_slice(text.as_bytes()),
            Value::Text(text) => debug_str(out, text),
        }
    }
    out.extend_from_slice(if json { b"}}\n" } else { b"\n" });
}

/// `value` in decimal.
fn number(out: &mut Vec<u8>, mut value: u64) {
    let mut digits = [0u8; 20];
    let mut at = digits.len();
    loop {
        at -= 1;
        digits[at] = b'0' + (value % 10) as u8;
        value /= 10;
        if value == 0 {
            break;
        }
    }
    out.extend_from_slice(&digits[at..]);
}

/// `value` as `{:?}` writes it: quoted, with the few characters most values never hold
/// escaped by `Debug` itself.
fn debug_str(out: &mut Vec<u8>, value: &str) {
    if value
        .bytes()
        .all(|b| b.is_ascii_graphic() && b != b'"' && b != b'\\' || b == b' ')
    {
        out.push(b'"');
        out.extend_from_slice(value.as_bytes());
        out.push(b'"');
    } else {
        let _ = write!(out, "{value:?}");
    }
}

/// `value` as a JSON string (serde_json's escaping when it needs any).
fn json_str(out: &mut Vec<u8>, value: &str) {
    if value
        .bytes()
        .all(|b| b >= 0x20 && b != b'"' && b != b'\\' && b < 0x7f)
    {
        out.push(b'"');
        out.extend_from_slice(value.as_bytes());
        out.push(b'"');
    } else {
        let _ = serde_json::to_writer(&mut *out, value);
    }
}

/// `at` in RFC 3339 to the microsecond, in UTC (`2026-12-04T15:21:37.123456Z`), as
/// tracing-subscriber's default timer writes it.
fn timestamp(out: &mut Vec<u8>, at: std::time::SystemTime) {
    let since = at.duration_since(std::time::UNIX_EPOCH).unwrap_or_default();
    let secs = since.as_secs();
    // Days since 1970-01-01 to a civil date (Howard Hinnant's `civil_from_days`).
    let days = i64::try_from(secs / 86_400).unwrap_or(0) + 719_468;
    let era = days.div_euclid(146_097);
    let doe = days.rem_euclid(146_097);
    let yoe = (doe - doe / 1_460 + doe / 36_524 - doe / 146_096) / 365;
    let doy = doe - (365 * yoe + yoe / 4 - yoe / 100);
    let mp = (5 * doy + 2) / 153;
    let day = doy - (153 * mp + 2) / 5 + 1;
    let month = if mp < 10 { mp + 3 } else { mp - 9 };
    let year = yoe + era * 400 + i64::from(month <= 2);
    let of_day = secs % 86_400;
    let two = |value: u64, out: &mut Vec<u8>| {
        out.push(b'0' + (value / 10 % 10) as u8);
        out.push(b'0' + (value % 10) as u8);
    };
    let year = u64::try_from(year).unwrap_or(0);
    two(year / 100, out);
    two(year % 100, out);
    out.push(b'-');
    two(u64::try_from(month).unwrap_or(0), out);
    out.push(b'-');
    two(u64::try_from(day).unwrap_or(0), out);
    out.push(b'T');
    two(of_day / 3_600, out);
    out.push(b':');
    two(of_day / 60 % 60, out);
    out.push(b':');
    two(of_day % 60, out);
    out.push(b'.');
    let micros = u64::from(since.subsec_micros());
    two(micros / 10_000, out);
    two(micros / 100 % 100, out);
    two(micros % 100, out);
    out.push(b'Z');
}

#[cfg(test)]
mod tests {
    use super::*;

    fn entry<'a>(method: &'a axum::http::Method, path: &'a str, client_id: &'a str) -> Entry<'a> {
        Entry {
            method,
            path,
            status: 403,
            api: "orders",
            client_id,
            reason: "no_contract",
            request_id: "0187a9c2e4f1b000-0001000000000002",
            elapsed_us: 1234,
        }
    }

    /// What tracing-subscriber, set up as the gateway sets it up, writes for `entry`'s event.
    fn through_tracing(entry: &Entry<'_>, json: bool) -> String {
        #[derive(Clone, Default)]
        struct Captured(std::sync::Arc<std::sync::Mutex<Vec<u8>>>);
        impl Write for Captured {
            fn write(&mut self, data: &[u8]) -> io::Result<usize> {
                self.0.lock().unwrap().extend_from_slice(data);
                Ok(data.len())
            }
            fn flush(&mut self) -> io::Result<()> {
                Ok(())
            }
        }
        let captured = Captured::default();
        let out = captured.clone();
        let builder = tracing_subscriber::fmt()
            .with_target(false)
            .with_writer(move || out.clone());
        if json {
            tracing::subscriber::with_default(builder.json().finish(), || event(entry));
        } else {
            tracing::subscriber::with_default(builder.finish(), || event(entry));
        }
        let bytes = captured.0.lock().unwrap().clone();
        String::from_utf8(bytes).unwrap()
    }

    #[test]
    fn lines_are_the_ones_tracing_subscriber_writes() {
        let get = axum::http::Method::GET;
        let odd = axum::http::Method::from_bytes(b"PURGE").unwrap();
        for (method, path, client) in [
            (&get, "/orders/1", "app-1"),
            (&odd, "/a b/\"quoted\"/back\\slash", "tab\there"),
            (&get, "/caf\u{e9}/\u{1b}[31m", "-"),
            (&get, "/", "bell\u{7}\u{7f}"),
        ] {
            let entry = entry(method, path, client);
            for json in [false, true] {
                let expected = through_tracing(&entry, json);
                let mut ours = Vec::new();
                format_line(&mut ours, &entry, std::time::SystemTime::now(), json);
                let ours = String::from_utf8(ours).unwrap();
                // The same after the timestamp (each made at its own instant).
                let after = |line: &str| -> String {
                    if json {
                        line.split_once("\",\"level\"").unwrap().1.to_owned()
                    } else {
                        line.split_once('Z').unwrap().1.to_owned()
                    }
                };
                assert_eq!(after(&ours), after(&expected), "json: {json}");
                assert_eq!(ours.len(), expected.len(), "{ours}{expected}");
            }
        }
    }

    #[test]
    fn timestamps_are_rfc3339_in_utc_to_the_microsecond() {
        let at = |secs: u64, micros: u64| {
            let mut out = Vec::new();
            let time =
                std::time::UNIX_EPOCH + Duration::from_secs(secs) + Duration::from_micros(micros);
            timestamp(&mut out, time);
            String::from_utf8(out).unwrap()
        };
        assert_eq!(at(0, 0), "1970-01-01T00:00:00.000000Z");
        assert_eq!(at(951_782_400, 7), "2000-02-29T00:00:00.000007Z");
        assert_eq!(at(1_798_761_599, 999_999), "2026-12-31T23:59:59.999999Z");
        assert_eq!(at(4_107_542_400, 120_000), "2100-03-01T00:00:00.120000Z");
        assert_eq!(at(1_764_860_497, 10), "2025-12-04T15:01:37.000010Z");
    }

    #[test]
    fn only_a_worker_buffers_and_a_full_buffer_goes_out() {
        // Not a worker: nothing is kept.
        assert!(!buffered(b"line\n"));
        buffer_this_thread();
        assert!(buffered(b"line\n"));
        let held = || BUFFER.with(|b| b.borrow().as_ref().map_or(0, |b| b.0.len()));
        assert_eq!(held(), 5);
        let long = vec![b'x'; FLUSH_AT];
        assert!(buffered(&long));
        assert_eq!(held(), 0, "written out once full");
        assert!(buffered(b"line\n"));
        flush_this_thread();
        assert_eq!(held(), 0);
    }
}
