//! Where log lines go: standard error, at once — except the access log's lines on a serving
//! worker, which collect in that worker's buffer and go out together (when it holds 32 KiB,
//! every 100 ms, and when the worker ends), as nginx's `access_log ... buffer= flush=` does.
//! One `write` for many requests, rather than one per request under standard error's lock,
//! which every worker contends for.
//!
//! A line is never split: tracing formats an event whole before it writes it, and a buffer
//! only ever holds whole lines. Warnings and errors are not held back.

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

#[cfg(test)]
mod tests {
    use super::*;

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
