//! What the gateway tests share.
#![allow(dead_code, clippy::unwrap_used)]

use std::time::Duration;

/// A fleet's store for the tests: what `GET`, `SET PX`, `SET NX PX` and a holder-checked
/// delete would do, in memory (no expiry: the tests are short). Its operations finish in their
/// first poll, so both gateway faces can use it.
#[derive(Default)]
pub(crate) struct MemoryFleet {
    seen: std::sync::Mutex<std::collections::HashMap<String, Vec<u8>>>,
}

fn ready<'a, T: Send + 'a>(value: T) -> oauth_runtime::StoreFuture<'a, T> {
    Box::pin(std::future::ready(Ok(value)))
}

impl oauth_runtime::FleetStore for MemoryFleet {
    fn load<'a>(&'a self, key: &'a str) -> oauth_runtime::StoreFuture<'a, Option<Vec<u8>>> {
        ready(self.seen.lock().unwrap().get(key).cloned())
    }
    fn save<'a>(
        &'a self,
        key: &'a str,
        value: &'a [u8],
        _: Option<Duration>,
    ) -> oauth_runtime::StoreFuture<'a, ()> {
        self.seen
            .lock()
            .unwrap()
            .insert(key.to_owned(), value.to_vec());
        ready(())
    }
    fn try_lease<'a>(
        &'a self,
        key: &'a str,
        holder: &'a str,
        _: Duration,
    ) -> oauth_runtime::StoreFuture<'a, bool> {
        let mut seen = self.seen.lock().unwrap();
        if seen.contains_key(key) {
            return ready(false);
        }
        seen.insert(key.to_owned(), holder.as_bytes().to_vec());
        ready(true)
    }
    fn release<'a>(&'a self, key: &'a str, holder: &'a str) -> oauth_runtime::StoreFuture<'a, ()> {
        let mut seen = self.seen.lock().unwrap();
        if seen.get(key).is_some_and(|v| v == holder.as_bytes()) {
            seen.remove(key);
        }
        ready(())
    }
    /// Blocks until the lease is gone or `until` (a test double: it looks every millisecond).
    fn wait_released<'a>(
        &'a self,
        key: &'a str,
        until: std::time::Instant,
    ) -> oauth_runtime::StoreFuture<'a, ()> {
        while std::time::Instant::now() < until && self.seen.lock().unwrap().contains_key(key) {
            std::thread::sleep(Duration::from_millis(1));
        }
        ready(())
    }
}
