//! Where rate-limit counters live: [`RateCounter`], counted on this node ([`LocalCounters`],
//! the default) or by a fleet's shared store (oauth-redis: one atomic server-side step a
//! request, on the server's clock). The decision is oauth-core's
//! [`rate_limit`](oauth_core::resource_server::rate_limit) algorithm in both.

use std::sync::Mutex;
use std::time::Instant;

use oauth_core::resource_server::rate_limit::{Counter, Limit, Tier, Verdict};
use rustc_hash::FxHashMap;

use crate::store::StoreFuture;

/// Counts requests against SLA tiers. `key` names the (client, API) pair (the gateway passes a
/// digest); the futures may finish in their first poll (local, blocking stores) or wait.
pub trait RateCounter: Send + Sync {
    /// Decides on one request under `tier` and counts it if allowed.
    fn check<'a>(&'a self, key: &'a str, tier: &'a Tier) -> StoreFuture<'a, Verdict>;
}

impl<T: RateCounter + ?Sized> RateCounter for std::sync::Arc<T> {
    fn check<'a>(&'a self, key: &'a str, tier: &'a Tier) -> StoreFuture<'a, Verdict> {
        (**self).check(key, tier)
    }
}

/// Counters in this process's memory (about 60 bytes per limit of an active client), on the
/// monotonic clock; idle ones are dropped as new ones come.
pub struct LocalCounters {
    epoch: Instant,
    state: Mutex<State>,
}

#[derive(Default)]
struct State {
    /// By API, then by client: looked up with `&str`s, so a request allocates nothing.
    counters: FxHashMap<String, FxHashMap<String, Counter>>,
    /// How many counters there are.
    len: usize,
    /// The count after the last sweep for idle counters.
    swept_at: usize,
}

impl std::fmt::Debug for LocalCounters {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        f.debug_struct("LocalCounters")
            .field("active", &self.len())
            .finish_non_exhaustive()
    }
}

impl Default for LocalCounters {
    fn default() -> Self {
        Self::new()
    }
}

impl LocalCounters {
    /// No counter yet.
    pub fn new() -> Self {
        Self {
            epoch: Instant::now(),
            state: Mutex::new(State::default()),
        }
    }

    /// How many counters are kept.
    pub fn len(&self) -> usize {
        self.lock().len
    }

    /// Whether none is kept.
    pub fn is_empty(&self) -> bool {
        self.len() == 0
    }

    fn lock(&self) -> std::sync::MutexGuard<'_, State> {
        self.state.lock().unwrap_or_else(|e| e.into_inner())
    }

    /// Decides on one request of `client` on `api` at `now` (for tests on simulated time: any
    /// instant after this counter's creation).
    pub fn check_pair(&self, client: &str, api: &str, tier: &Tier, now: Instant) -> Verdict {
        let now_ms = u64::try_from(now.saturating_duration_since(self.epoch).as_millis())
            .unwrap_or(u64::MAX);
        let mut state = self.lock();
        let state = &mut *state;
        // Sweep idle counters when their number has doubled since the last sweep: memory stays
        // proportional to the active clients, at a constant cost a request.
        if state.len > 2 * state.swept_at.max(1024) {
            let mut len = 0;
            state.counters.retain(|_, clients| {
                clients.retain(|_, c| !c.idle(now_ms));
                len += clients.len();
                !clients.is_empty()
            });
            state.len = len;
            state.swept_at = len;
        }
        if let Some(counter) = state.counters.get_mut(api).and_then(|c| c.get_mut(client)) {
            return counter.check(tier, now_ms);
        }
        let mut counter = Counter::new();
        let verdict = counter.check(tier, now_ms);
        state
            .counters
            .entry(api.to_owned())
            .or_default()
            .insert(client.to_owned(), counter);
        state.len += 1;
        verdict
    }

    /// Decides on one request counted under `key` (one namespace of its own) at `now`.
    pub fn check_at(&self, key: &str, tier: &Tier, now: Instant) -> Verdict {
        self.check_pair(key, "", tier, now)
    }

    /// Decides as [`check_at`](Self::check_at) with `tier`'s limits divided by `share` (at
    /// least 1 request each): a fleet of `share` nodes counting alone while its shared store is
    /// down.
    pub fn check_share(&self, client: &str, api: &str, tier: &Tier, share: u32) -> Verdict {
        if share <= 1 {
            return self.check_pair(client, api, tier, Instant::now());
        }
        let limits: Vec<Limit> = tier
            .limits()
            .iter()
            .filter_map(|l| Limit::new((l.requests() / share).max(1), l.window()))
            .collect();
        match Tier::new(tier.name(), &limits) {
            Some(divided) => self.check_pair(client, api, &divided, Instant::now()),
            None => self.check_pair(client, api, tier, Instant::now()),
        }
    }
}

impl RateCounter for LocalCounters {
    fn check<'a>(&'a self, key: &'a str, tier: &'a Tier) -> StoreFuture<'a, Verdict> {
        Box::pin(std::future::ready(Ok(self.check_at(
            key,
            tier,
            Instant::now(),
        ))))
    }
}

#[cfg(test)]
mod tests {
    use super::*;
    use std::time::Duration;

    #[test]
    fn counts_per_key_and_forgets_idle_counters() {
        let counters = LocalCounters::new();
        let tier = Tier::new(
            "bronze",
            &[Limit::new(2, Duration::from_secs(1)).unwrap_or_else(|| unreachable!())],
        )
        .unwrap_or_else(|| unreachable!());
        let t0 = Instant::now();
        assert!(counters.check_at("a", &tier, t0).allowed());
        assert!(counters.check_at("a", &tier, t0).allowed());
        assert!(!counters.check_at("a", &tier, t0).allowed());
        assert!(counters.check_at("b", &tier, t0).allowed());
        // Ten thousand one-off clients over 20 s (a 1 s window): the idle ones are swept as
        // new ones come, so the map holds a few thousand at most.
        for i in 0..10_000u64 {
            let at = t0 + Duration::from_millis(2 * i);
            counters.check_at(&format!("c{i}"), &tier, at);
        }
        assert!(counters.len() <= 4100, "{}", counters.len());
        let later = t0 + Duration::from_secs(30);
        assert!(counters.check_at("a", &tier, later).allowed());
    }
}
