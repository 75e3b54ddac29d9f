//! The gateway's bookkeeping as a sans-IO machine: the node's result cache (TTL, negative
//! caching, bounded), the DPoP replay set (RFC 9449 §11.1), and single flight (concurrent
//! requests with the same uncached token wait for one validation). Time is passed in; nothing
//! here reads a clock, locks, or waits.
//!
//! A driver (oauth-gateway's, the same for its async and blocking faces) owns one
//! [`GatewayState`] behind a lock, and runs one [`Check`] per request:
//!
//! ```text
//! Check::poll(state, now) ─► Validated(result) ─► ApiPolicy::decide_with ─► allow / deny
//!                          ├► Denied(denial)
//!                          ├► Validate ─► (JWT verified locally, or introspected; the fleet's
//!                          │              cache looked at first) ─► Check::handle_outcome ─► poll
//!                          └► Wait { until } ─► (another request validates this token: wait
//!                                               for the driver's signal) ─► poll
//! ```
//!
//! A driver must call [`Check::abandon`] for a check it drops before [`Check::poll`] said
//! `Validated` or `Denied` (a cancelled request), so that requests waiting on it go on.

use std::collections::{HashMap, VecDeque};
use std::sync::Arc;
use std::time::{Duration, Instant, SystemTime};

use crate::introspection::{Introspection, IntrospectionPool};
use crate::time::Now;

use super::Denial;

/// A token's key in the gateway's tables: its SHA-256 (computed by the driver), so that no
/// table holds a usable token.
pub type TokenKey = [u8; 32];

/// A validation's outcome, shared by every request that waited for it.
pub type Outcome = Result<Arc<Introspection>, Denial>;

/// How validation results are cached on a node.
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
pub struct CacheConfig {
    capacity: usize,
    max_age: Duration,
    negative_ttl: Duration,
    keep: &'static [&'static str],
}

impl Default for CacheConfig {
    /// 10,000 tokens, results kept at most 5 minutes, "inactive" answers 5 seconds.
    fn default() -> Self {
        Self {
            capacity: 10_000,
            max_age: Duration::from_secs(300),
            negative_ttl: Duration::from_secs(5),
            keep: &[],
        }
    }
}

impl CacheConfig {
    /// The defaults.
    pub fn new() -> Self {
        Self::default()
    }

    /// No caching: every request is validated (concurrent requests with the same token
    /// still share one call).
    pub fn disabled() -> Self {
        Self {
            capacity: 0,
            ..Self::default()
        }
    }

    /// The most tokens kept. When full, the oldest entry is dropped.
    pub fn capacity(mut self, tokens: usize) -> Self {
        self.capacity = tokens;
        self
    }

    /// The longest an active result is reused (it is never reused past the token's `exp`).
    /// A shorter age notices revocation sooner, at the cost of more introspection calls.
    pub fn max_age(mut self, age: Duration) -> Self {
        self.max_age = age;
        self
    }

    /// How long an "inactive" answer is reused, so that a client retrying with a dead token
    /// does not reach the introspection endpoint on every request.
    pub fn negative_ttl(mut self, ttl: Duration) -> Self {
        self.negative_ttl = ttl;
        self
    }

    /// Keeps these members of introspection answers in cached results too, for the
    /// application to read through `Principal::introspection().extra()`. By default a cached
    /// result holds only what decisions and `Principal` read (client, scopes, times, subject,
    /// audiences, issuer, token type, `cnf`): a node holds a million tokens in a few hundred
    /// megabytes, and results about one client and subject share one description.
    pub fn keep_members(mut self, names: &'static [&'static str]) -> Self {
        self.keep = names;
        self
    }

    /// The extra members kept ([`keep_members`](Self::keep_members)).
    pub fn kept_members(&self) -> &'static [&'static str] {
        self.keep
    }

    /// How long `result` may be reused from `wall_now`: an active one until its `exp` and at
    /// most the maximum age, an inactive one the negative TTL. Zero: not at all.
    pub fn ttl(&self, result: &Introspection, wall_now: SystemTime) -> Duration {
        if result.active() {
            let left = match result.expires_at() {
                Some(exp) => exp.duration_since(wall_now).unwrap_or(Duration::ZERO),
                None => self.max_age,
            };
            left.min(self.max_age)
        } else {
            self.negative_ttl
        }
    }
}

struct Entry {
    result: Arc<Introspection>,
    until: Instant,
    seq: u64,
}

/// The node's validation results, keyed by token digest: bounded, each kept for its
/// [`CacheConfig::ttl`], compacted so that results about one client share one description.
pub struct ResultCache {
    config: CacheConfig,
    map: HashMap<TokenKey, Entry>,
    /// Insertion order, for eviction; stale items (replaced entries) are skipped.
    order: VecDeque<(TokenKey, u64)>,
    seq: u64,
    pool: IntrospectionPool,
    /// The pool's size after its last pruning.
    pruned_at: usize,
}

impl std::fmt::Debug for ResultCache {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        f.debug_struct("ResultCache")
            .field("config", &self.config)
            .field("len", &self.map.len())
            .finish_non_exhaustive()
    }
}

impl ResultCache {
    /// An empty cache.
    pub fn new(config: CacheConfig) -> Self {
        Self {
            config,
            map: HashMap::new(),
            order: VecDeque::new(),
            seq: 0,
            pool: IntrospectionPool::new(),
            pruned_at: 0,
        }
    }

    /// The configuration.
    pub fn config(&self) -> &CacheConfig {
        &self.config
    }

    /// How many results are kept.
    pub fn len(&self) -> usize {
        self.map.len()
    }

    /// Whether no result is kept.
    pub fn is_empty(&self) -> bool {
        self.map.is_empty()
    }

    /// The result for `key`, if kept and fresh at `now` (a stale one is dropped).
    pub fn get(&mut self, key: &TokenKey, now: Instant) -> Option<Arc<Introspection>> {
        match self.map.get(key) {
            Some(entry) if entry.until > now => Some(Arc::clone(&entry.result)),
            Some(_) => {
                self.map.remove(key);
                None
            }
            None => None,
        }
    }

    /// Keeps `result` for its TTL from `now`, and never longer than `limit` (what is left of
    /// a fleet record's time; `Duration::MAX` otherwise).
    pub fn insert(&mut self, key: TokenKey, result: &Introspection, now: Now, limit: Duration) {
        let ttl = self.config.ttl(result, now.wall()).min(limit);
        if self.config.capacity == 0 || ttl.is_zero() {
            return;
        }
        let Some(until) = now.monotonic().checked_add(ttl) else {
            return;
        };
        while self.map.len() >= self.config.capacity && !self.map.contains_key(&key) {
            let Some((old, seq)) = self.order.pop_front() else {
                break;
            };
            if self.map.get(&old).is_some_and(|e| e.seq == seq) {
                self.map.remove(&old);
            }
        }
        self.seq += 1;
        let seq = self.seq;
        let result = Arc::new(result.compacted(&mut self.pool, self.config.keep));
        if self.pool.len() > 2 * self.pruned_at.max(1024) {
            self.pool.prune();
            self.pruned_at = self.pool.len();
        }
        self.map.insert(key, Entry { result, until, seq });
        self.order.push_back((key, seq));
        // Replaced and expired entries leave stale items behind; drop them before the queue
        // outgrows the map.
        if self.order.len() > 2 * self.config.capacity {
            let map = &self.map;
            self.order
                .retain(|(k, s)| map.get(k).is_some_and(|e| e.seq == *s));
        }
    }

    #[cfg(test)]
    fn queue_len(&self) -> usize {
        self.order.len()
    }
}

/// The DPoP proofs seen within the window (RFC 9449 §11.1): `(key thumbprint, jti)` digests.
#[derive(Debug)]
pub struct ReplaySet {
    seen: HashMap<TokenKey, Instant>,
    order: VecDeque<(Instant, TokenKey)>,
    capacity: usize,
    window: Duration,
}

impl ReplaySet {
    /// Remembers at most `capacity` proofs, each for twice `window` (a proof's `iat` may be
    /// `window` before or after now).
    pub fn new(capacity: usize, window: Duration) -> Self {
        Self {
            seen: HashMap::new(),
            order: VecDeque::new(),
            capacity,
            window,
        }
    }

    /// How long a proof is remembered.
    pub fn remember_for(&self) -> Duration {
        self.window.saturating_mul(2)
    }

    /// Records the proof `id` at `now`: false if it was seen within the window, or if there
    /// is no room to remember it (refusing is safer than accepting a replay).
    pub fn first_use(&mut self, id: TokenKey, now: Instant) -> bool {
        let keep = self.remember_for();
        while let Some((at, _)) = self.order.front() {
            if now.saturating_duration_since(*at) <= keep {
                break;
            }
            if let Some((_, old)) = self.order.pop_front() {
                self.seen.remove(&old);
            }
        }
        if self.seen.contains_key(&id) || self.seen.len() >= self.capacity {
            return false;
        }
        self.seen.insert(id, now);
        self.order.push_back((now, id));
        true
    }
}

/// A validation in progress on this node, with the requests waiting for it.
struct Flight {
    /// `None` while it runs; the outcome once its leader handed it in.
    outcome: Option<Outcome>,
    /// Its leader gave up (cancelled) before an outcome: the followers start again.
    abandoned: bool,
    followers: usize,
}

/// A node's gateway state: its result cache, its DPoP replay set, and the validations in
/// flight. One per gateway, behind the driver's lock; every method is quick and never waits.
pub struct GatewayState {
    cache: ResultCache,
    replays: ReplaySet,
    /// The flight running for each token.
    running: HashMap<TokenKey, u64>,
    /// Flights by id: running ones, and finished ones whose followers have not all read the
    /// outcome yet.
    flights: HashMap<u64, Flight>,
    next_flight: u64,
    /// How long a request waits for another's validation before validating by itself.
    max_wait: Duration,
}

impl std::fmt::Debug for GatewayState {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        f.debug_struct("GatewayState")
            .field("cache", &self.cache)
            .field("flights", &self.flights.len())
            .finish_non_exhaustive()
    }
}

impl GatewayState {
    /// A node's empty state. A request waits at most `max_wait` for another request's
    /// validation of the same token (the validation's own time limit, say), then validates
    /// by itself.
    pub fn new(cache: CacheConfig, replays: ReplaySet, max_wait: Duration) -> Self {
        Self {
            cache: ResultCache::new(cache),
            replays,
            running: HashMap::new(),
            flights: HashMap::new(),
            next_flight: 0,
            max_wait,
        }
    }

    /// The result cache.
    pub fn cache(&self) -> &ResultCache {
        &self.cache
    }

    /// The result cache, to read or fill it directly (a fleet record found by the driver).
    pub fn cache_mut(&mut self) -> &mut ResultCache {
        &mut self.cache
    }

    /// Records a DPoP proof (see [`ReplaySet::first_use`]).
    pub fn first_use(&mut self, proof: TokenKey, now: Instant) -> bool {
        self.replays.first_use(proof, now)
    }

    /// How long a DPoP proof is remembered (for the fleet's replay set too).
    pub fn replay_memory(&self) -> Duration {
        self.replays.remember_for()
    }

    /// How many validations are running or awaiting their followers (for tests and metrics).
    pub fn flights(&self) -> usize {
        self.flights.len()
    }

    fn start_flight(&mut self, key: TokenKey) -> u64 {
        self.next_flight = self.next_flight.wrapping_add(1);
        let id = self.next_flight;
        self.flights.insert(
            id,
            Flight {
                outcome: None,
                abandoned: false,
                followers: 0,
            },
        );
        self.running.insert(key, id);
        id
    }

    /// The leader of `id` is done (with an outcome, or abandoned): no new request joins it;
    /// the flight stays until its followers have read it.
    fn end_flight(&mut self, key: &TokenKey, id: u64, outcome: Option<Outcome>) {
        if self.running.get(key) == Some(&id) {
            self.running.remove(key);
        }
        let Some(flight) = self.flights.get_mut(&id) else {
            return;
        };
        if flight.followers == 0 {
            self.flights.remove(&id);
            return;
        }
        match outcome {
            Some(outcome) => flight.outcome = Some(outcome),
            None => flight.abandoned = true,
        }
    }

    /// A follower leaves `id` (it read the outcome, or gave up).
    fn leave_flight(&mut self, id: u64) {
        let Some(flight) = self.flights.get_mut(&id) else {
            return;
        };
        flight.followers = flight.followers.saturating_sub(1);
        let done = flight.outcome.is_some() || flight.abandoned;
        if flight.followers == 0 && done {
            self.flights.remove(&id);
        }
    }
}

/// What the driver does next for a request (see [`Check::poll`]).
#[derive(Debug)]
#[non_exhaustive]
pub enum CheckStep {
    /// The token is validated: decide on the request with this result
    /// ([`ApiPolicy::decide_with`](super::ApiPolicy::decide_with)).
    Validated(Arc<Introspection>),
    /// The request is refused.
    Denied(Denial),
    /// This request validates the token (locally or by introspection, the fleet's cache
    /// looked at first), then hands the outcome to [`Check::handle_outcome`].
    Validate,
    /// Another request of this node is validating the token: wait for the driver's signal
    /// (which it raises after every [`Check::handle_outcome`] and [`Check::abandon`]), at
    /// most until `until`, then poll again.
    Wait {
        /// The latest the wait may last.
        until: Instant,
    },
}

#[derive(Debug)]
enum Role {
    /// Not yet looked.
    Start,
    /// Validating; `None` when validating alone (after waiting too long).
    Leading(Option<u64>),
    /// Waiting for flight `id` since `until - max_wait`.
    Following { id: u64, until: Instant },
    /// Finished: the step was handed out.
    Done,
}

/// One request's validation of one token: from the cache, by joining the validation another
/// request is making, or by validating.
#[derive(Debug)]
pub struct Check {
    key: TokenKey,
    role: Role,
    outcome: Option<Outcome>,
}

impl Check {
    /// A check of the token whose digest is `key`.
    pub fn new(key: TokenKey) -> Self {
        Self {
            key,
            role: Role::Start,
            outcome: None,
        }
    }

    /// The token's key.
    pub fn key(&self) -> &TokenKey {
        &self.key
    }

    /// What to do next, at `now`.
    pub fn poll(&mut self, state: &mut GatewayState, now: Instant) -> CheckStep {
        if let Some(outcome) = self.outcome.take() {
            self.role = Role::Done;
            return finished(outcome);
        }
        match self.role {
            Role::Start => {
                if let Some(result) = state.cache.get(&self.key, now) {
                    self.role = Role::Done;
                    return CheckStep::Validated(result);
                }
                match state.running.get(&self.key).copied() {
                    Some(id) => {
                        if let Some(flight) = state.flights.get_mut(&id) {
                            flight.followers += 1;
                        }
                        let until = now.checked_add(state.max_wait).unwrap_or(now);
                        self.role = Role::Following { id, until };
                        CheckStep::Wait { until }
                    }
                    None => {
                        let id = state.start_flight(self.key);
                        self.role = Role::Leading(Some(id));
                        CheckStep::Validate
                    }
                }
            }
            Role::Following { id, until } => {
                let (outcome, abandoned) = match state.flights.get_mut(&id) {
                    Some(flight) => (flight.outcome.clone(), flight.abandoned),
                    None => (None, true),
                };
                if let Some(outcome) = outcome {
                    state.leave_flight(id);
                    self.role = Role::Done;
                    return finished(outcome);
                }
                if abandoned {
                    // The leader was cancelled: start again (the cache first).
                    state.leave_flight(id);
                    self.role = Role::Start;
                    return self.poll(state, now);
                }
                if now >= until {
                    // Waited as long as a validation may take: validate alone.
                    state.leave_flight(id);
                    self.role = Role::Leading(None);
                    return CheckStep::Validate;
                }
                CheckStep::Wait { until }
            }
            // Validating: the driver owes an outcome; asking again changes nothing.
            Role::Leading(_) => CheckStep::Validate,
            Role::Done => CheckStep::Denied(Denial::Unavailable {
                reason: "The token could not be validated.",
                cause: None,
            }),
        }
    }

    /// The outcome of the validation [`CheckStep::Validate`] asked for, at `now`: cached (an
    /// active result for its TTL, never past `exp` nor `limit`, what is left of a fleet
    /// record's time; an inactive one for the negative TTL; a failure not at all) and handed
    /// to the requests waiting for it. Raise the driver's signal afterwards.
    pub fn handle_outcome(
        &mut self,
        state: &mut GatewayState,
        outcome: Outcome,
        now: Now,
        limit: Duration,
    ) {
        let Role::Leading(flight) = self.role else {
            debug_assert!(false, "an outcome for a check that did not validate");
            return;
        };
        if let Ok(result) = &outcome {
            state.cache.insert(self.key, result, now, limit);
        }
        if let Some(id) = flight {
            state.end_flight(&self.key, id, Some(outcome.clone()));
        }
        self.outcome = Some(outcome);
    }

    /// The request was dropped before its check finished: requests waiting on its validation
    /// go on without it. Raise the driver's signal afterwards. (Harmless after the end.)
    pub fn abandon(&mut self, state: &mut GatewayState) {
        match std::mem::replace(&mut self.role, Role::Done) {
            Role::Leading(Some(id)) if self.outcome.is_none() => {
                state.end_flight(&self.key, id, None);
            }
            Role::Following { id, .. } => state.leave_flight(id),
            _ => {}
        }
    }

    /// Whether the check is over (its last step was `Validated` or `Denied`).
    pub fn is_done(&self) -> bool {
        matches!(self.role, Role::Done)
    }
}

fn finished(outcome: Outcome) -> CheckStep {
    match outcome {
        Ok(result) => CheckStep::Validated(result),
        Err(denial) => CheckStep::Denied(denial),
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    fn result(body: &str) -> Arc<Introspection> {
        let r = http::Response::builder().status(200).body(body).unwrap();
        Arc::new(crate::introspection::parse_introspection_response(&r).unwrap())
    }

    fn active(exp: Option<u64>) -> Arc<Introspection> {
        match exp {
            Some(exp) => result(&format!(r#"{{"active":true,"client_id":"c","exp":{exp}}}"#)),
            None => result(r#"{"active":true,"client_id":"c"}"#),
        }
    }

    /// Simulated time: both readings advance together (the wall clock at 1000 s + `secs`).
    fn at(secs: u64) -> Now {
        let base = crate::time::test_support::t0().monotonic();
        Now::new(
            SystemTime::UNIX_EPOCH + Duration::from_secs(1000 + secs),
            base + Duration::from_secs(secs),
        )
    }

    fn state(config: CacheConfig) -> GatewayState {
        GatewayState::new(
            config,
            ReplaySet::new(100, Duration::from_secs(60)),
            Duration::from_secs(30),
        )
    }

    /// Validates `key` at `now` with `outcome` through a check, as a driver would.
    fn validate(state: &mut GatewayState, key: TokenKey, outcome: Outcome, now: Now) {
        let mut check = Check::new(key);
        assert!(matches!(
            check.poll(state, now.monotonic()),
            CheckStep::Validate
        ));
        check.handle_outcome(state, outcome, now, Duration::MAX);
        assert!(matches!(
            check.poll(state, now.monotonic()),
            CheckStep::Validated(_) | CheckStep::Denied(_)
        ));
        assert!(check.is_done());
    }

    fn cached(state: &mut GatewayState, key: TokenKey, now: Now) -> bool {
        let mut check = Check::new(key);
        let step = check.poll(state, now.monotonic());
        // A miss starts a validation; give it up so the state stays clean.
        check.abandon(state);
        matches!(step, CheckStep::Validated(_))
    }

    #[test]
    fn results_are_kept_for_their_ttl_on_simulated_time() {
        let mut s = state(
            CacheConfig::new()
                .max_age(Duration::from_secs(60))
                .negative_ttl(Duration::from_secs(5)),
        );
        // Bounded by exp: 10 s left at t=0.
        validate(&mut s, [1; 32], Ok(active(Some(1010))), at(0));
        assert!(cached(&mut s, [1; 32], at(9)));
        assert!(!cached(&mut s, [1; 32], at(10)));
        // Bounded by the maximum age.
        validate(&mut s, [2; 32], Ok(active(Some(9000))), at(0));
        assert!(cached(&mut s, [2; 32], at(59)));
        assert!(!cached(&mut s, [2; 32], at(60)));
        // No exp: the maximum age.
        validate(&mut s, [3; 32], Ok(active(None)), at(0));
        assert!(cached(&mut s, [3; 32], at(59)));
        assert!(!cached(&mut s, [3; 32], at(60)));
        // Inactive answers: the negative TTL.
        validate(
            &mut s,
            [4; 32],
            Ok(Arc::new(Introspection::inactive())),
            at(0),
        );
        assert!(cached(&mut s, [4; 32], at(4)));
        assert!(!cached(&mut s, [4; 32], at(5)));
        // Already expired at validation: not kept.
        validate(&mut s, [5; 32], Ok(active(Some(999))), at(0));
        assert!(!cached(&mut s, [5; 32], at(0)));
        // A failure is never cached.
        let down = Denial::Unavailable {
            reason: "down",
            cause: None,
        };
        validate(&mut s, [6; 32], Err(down), at(0));
        assert!(!cached(&mut s, [6; 32], at(0)));
        // Nothing in flight is left behind.
        assert_eq!(s.flights(), 0);
    }

    #[test]
    fn a_fleet_record_limits_the_local_time() {
        let mut s = state(CacheConfig::new());
        let mut check = Check::new([1; 32]);
        assert!(matches!(
            check.poll(&mut s, at(0).monotonic()),
            CheckStep::Validate
        ));
        check.handle_outcome(&mut s, Ok(active(None)), at(0), Duration::from_secs(3));
        assert!(cached(&mut s, [1; 32], at(2)));
        assert!(!cached(&mut s, [1; 32], at(3)));
    }

    #[test]
    fn the_cache_is_bounded_and_evicts_the_oldest() {
        let mut cache = ResultCache::new(CacheConfig::new().capacity(3));
        for i in 0..10u8 {
            cache.insert([i; 32], &active(None), at(0), Duration::MAX);
            assert!(cache.len() <= 3);
        }
        assert!(cache.get(&[9; 32], at(0).monotonic()).is_some());
        assert!(cache.get(&[6; 32], at(0).monotonic()).is_none());
        for _ in 0..100 {
            cache.insert([9; 32], &active(None), at(0), Duration::MAX);
        }
        assert!(cache.queue_len() <= 6);
        assert_eq!(cache.len(), 3);
        let mut off = ResultCache::new(CacheConfig::disabled());
        off.insert([1; 32], &active(None), at(0), Duration::MAX);
        assert!(off.get(&[1; 32], at(0).monotonic()).is_none());
    }

    #[test]
    fn concurrent_checks_share_one_validation() {
        let mut s = state(CacheConfig::disabled());
        let t = at(0).monotonic();
        let mut leader = Check::new([1; 32]);
        let mut a = Check::new([1; 32]);
        let mut b = Check::new([1; 32]);
        assert!(matches!(leader.poll(&mut s, t), CheckStep::Validate));
        assert!(matches!(a.poll(&mut s, t), CheckStep::Wait { .. }));
        assert!(matches!(b.poll(&mut s, t), CheckStep::Wait { .. }));
        // Still running: they wait on.
        assert!(matches!(a.poll(&mut s, t), CheckStep::Wait { .. }));
        leader.handle_outcome(&mut s, Ok(active(None)), at(0), Duration::MAX);
        assert!(matches!(leader.poll(&mut s, t), CheckStep::Validated(_)));
        // The cache is off, yet the waiters get the one outcome.
        assert!(matches!(a.poll(&mut s, t), CheckStep::Validated(_)));
        // A newcomer after the outcome starts a new validation (nothing cached).
        let mut late = Check::new([1; 32]);
        assert!(matches!(late.poll(&mut s, t), CheckStep::Validate));
        assert!(matches!(b.poll(&mut s, t), CheckStep::Validated(_)));
        late.abandon(&mut s);
        assert_eq!(s.flights(), 0);
    }

    #[test]
    fn a_failure_is_shared_with_the_waiters_but_not_cached() {
        let mut s = state(CacheConfig::new());
        let t = at(0).monotonic();
        let mut leader = Check::new([1; 32]);
        let mut waiter = Check::new([1; 32]);
        assert!(matches!(leader.poll(&mut s, t), CheckStep::Validate));
        assert!(matches!(waiter.poll(&mut s, t), CheckStep::Wait { .. }));
        let down = Denial::Unavailable {
            reason: "down",
            cause: None,
        };
        leader.handle_outcome(&mut s, Err(down), at(0), Duration::MAX);
        assert!(matches!(
            waiter.poll(&mut s, t),
            CheckStep::Denied(Denial::Unavailable { .. })
        ));
        assert!(!cached(&mut s, [1; 32], at(0)));
        assert_eq!(s.flights(), 0);
    }

    #[test]
    fn a_cancelled_leader_hands_over_to_a_waiter() {
        let mut s = state(CacheConfig::new());
        let t = at(0).monotonic();
        let mut leader = Check::new([1; 32]);
        let mut waiter = Check::new([1; 32]);
        assert!(matches!(leader.poll(&mut s, t), CheckStep::Validate));
        assert!(matches!(waiter.poll(&mut s, t), CheckStep::Wait { .. }));
        leader.abandon(&mut s);
        // The waiter validates itself, and a third request now waits for it.
        assert!(matches!(waiter.poll(&mut s, t), CheckStep::Validate));
        let mut third = Check::new([1; 32]);
        assert!(matches!(third.poll(&mut s, t), CheckStep::Wait { .. }));
        waiter.handle_outcome(&mut s, Ok(active(None)), at(0), Duration::MAX);
        assert!(matches!(third.poll(&mut s, t), CheckStep::Validated(_)));
        assert_eq!(s.flights(), 0);
    }

    #[test]
    fn a_waiter_validates_alone_after_the_longest_wait() {
        let mut s = state(CacheConfig::new());
        let mut leader = Check::new([1; 32]);
        let mut waiter = Check::new([1; 32]);
        assert!(matches!(
            leader.poll(&mut s, at(0).monotonic()),
            CheckStep::Validate
        ));
        let CheckStep::Wait { until } = waiter.poll(&mut s, at(0).monotonic()) else {
            panic!("expected to wait");
        };
        assert_eq!(until, at(30).monotonic());
        assert!(matches!(
            waiter.poll(&mut s, at(29).monotonic()),
            CheckStep::Wait { .. }
        ));
        assert!(matches!(
            waiter.poll(&mut s, at(30).monotonic()),
            CheckStep::Validate
        ));
        waiter.handle_outcome(&mut s, Ok(active(None)), at(30), Duration::MAX);
        leader.handle_outcome(&mut s, Ok(active(None)), at(31), Duration::MAX);
        assert_eq!(s.flights(), 0);
    }

    #[test]
    fn a_cancelled_waiter_leaves_nothing_behind() {
        let mut s = state(CacheConfig::new());
        let t = at(0).monotonic();
        let mut leader = Check::new([1; 32]);
        let mut waiter = Check::new([1; 32]);
        assert!(matches!(leader.poll(&mut s, t), CheckStep::Validate));
        assert!(matches!(waiter.poll(&mut s, t), CheckStep::Wait { .. }));
        waiter.abandon(&mut s);
        leader.handle_outcome(&mut s, Ok(active(None)), at(0), Duration::MAX);
        assert_eq!(s.flights(), 0);
    }

    #[test]
    fn proofs_are_refused_within_the_window_and_forgotten_after_it() {
        let mut replays = ReplaySet::new(2, Duration::from_secs(60));
        let t = |s| at(s).monotonic();
        assert!(replays.first_use([1; 32], t(0)));
        assert!(!replays.first_use([1; 32], t(0)));
        // Remembered for twice the window (a proof's iat may be 60 s either side of now).
        assert!(!replays.first_use([1; 32], t(120)));
        assert!(replays.first_use([2; 32], t(10)));
        // Full: a new proof is refused rather than risk a replay.
        assert!(!replays.first_use([3; 32], t(20)));
        // Past the window, the first is forgotten: room again, and it is new.
        assert!(replays.first_use([3; 32], t(121)));
        assert!(!replays.first_use([2; 32], t(121)));
        assert!(replays.first_use([1; 32], t(200)));
    }
}
