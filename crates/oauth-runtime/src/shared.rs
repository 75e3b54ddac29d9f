//! [`SharedToken`]: the token source's state, shared by both adapters.

use std::sync::atomic::{AtomicBool, Ordering};
use std::sync::{Arc, Condvar, Mutex, MutexGuard};
use std::time::{Duration, Instant};

use arc_swap::ArcSwapOption;
use oauth_core::{
    AccessToken, Decision, Error, Invalidated, RefreshPolicy, TokenLifecycle, TokenRequest,
    TokenResponse, TokenSnapshot,
};

use crate::{SystemRandom, now};

/// Called after every successful token response.
pub(crate) type PersistFn = dyn Fn(&TokenResponse) + Send + Sync;
/// Called after every change, to wake async waiters.
pub(crate) type WakeFn = dyn Fn() + Send + Sync;

/// The state of a token source: the lifecycle behind a mutex (held only to poll or record a
/// result, never across I/O), and the current token published for lock-free reads.
///
/// Blocking waiters park on a condition variable ([`wait`](Self::wait)); async adapters pass a
/// wake function (a tokio `Notify`) that runs after every change.
pub struct SharedToken {
    current: ArcSwapOption<Published>,
    /// Whether a refresh is in flight (so the hot path can serve a refresh-due token).
    refreshing: AtomicBool,
    /// Whether tokens were rejected in a row (so an accepted call knows to report it).
    rejections: AtomicBool,
    state: Mutex<State>,
    changed: Condvar,
    on_token: Option<Arc<PersistFn>>,
    wake: Option<Box<WakeFn>>,
}

struct State {
    lifecycle: TokenLifecycle,
    /// Counts publications, so that waiters know when something changed.
    generation: u64,
}

impl std::fmt::Debug for SharedToken {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        f.debug_struct("SharedToken")
            .field("refreshing", &self.refreshing.load(Ordering::Relaxed))
            .finish_non_exhaustive()
    }
}

impl SharedToken {
    /// A token source's state, seeded with `seed` if given.
    pub fn new(
        policy: RefreshPolicy,
        grant: Option<TokenRequest>,
        seed: Option<TokenResponse>,
        on_token: Option<Arc<PersistFn>>,
        wake: Option<Box<WakeFn>>,
    ) -> Self {
        let mut lifecycle = TokenLifecycle::new(policy, grant);
        if let Some(seed) = seed {
            lifecycle.store(seed, now(), &SystemRandom);
        }
        let current = ArcSwapOption::new(lifecycle.snapshot().map(Published::new).map(Arc::new));
        Self {
            current,
            refreshing: AtomicBool::new(false),
            rejections: AtomicBool::new(false),
            state: Mutex::new(State {
                lifecycle,
                generation: 0,
            }),
            changed: Condvar::new(),
            on_token,
            wake,
        }
    }

    /// The hot path: the published token if it may be served now, read without a lock.
    #[inline]
    pub fn cached(&self) -> Option<AccessToken> {
        let published = self.current.load();
        let published = published.as_ref()?;
        let now = coarsetime::Instant::now();
        if published.fresh_until.is_none_or(|t| now < t)
            || (published.serve_until.is_none_or(|t| now < t)
                && self.refreshing.load(Ordering::Acquire))
        {
            return Some(published.token.clone());
        }
        None
    }

    /// The lifecycle's policy (a copy: it decides what a fleet's stored token is worth).
    pub fn policy(&self) -> RefreshPolicy {
        self.lock().lifecycle.policy().clone()
    }

    /// The published token, fresh or not (the one a refresh replaces).
    pub fn last(&self) -> Option<AccessToken> {
        self.current.load().as_ref().map(|p| p.token.clone())
    }

    /// Whether a refresh is in flight (read without a lock): a caller with no token to serve
    /// can wait for its end without asking the lifecycle.
    #[inline]
    pub fn refreshing(&self) -> bool {
        self.refreshing.load(Ordering::Acquire)
    }

    /// Asks the lifecycle what to do for a caller that waits until `deadline`; returns the
    /// decision and the generation it was made at (for [`wait`](Self::wait)).
    pub fn poll(&self, deadline: Instant) -> (Decision, u64) {
        let mut state = self.lock();
        let decision = state.lifecycle.poll(now(), deadline);
        if matches!(decision, Decision::Refresh(_) | Decision::UseAndRefresh(..)) {
            self.refreshing.store(true, Ordering::Release);
        }
        (decision, state.generation)
    }

    /// Records the result of the request that [`poll`](Self::poll) handed out, publishes the
    /// new state and wakes every waiter.
    pub fn finish(&self, result: Result<TokenResponse, Error>) {
        if let (Ok(token), Some(persist)) = (&result, &self.on_token) {
            persist(token);
        }
        let mut state = self.lock();
        state
            .lifecycle
            .handle_response(result, now(), &SystemRandom);
        self.publish(&mut state);
    }

    /// Gives back the request that [`poll`](Self::poll) handed out without a result (its task
    /// was cancelled or could not start), so that the next caller starts another.
    pub fn cancel(&self) {
        let mut state = self.lock();
        state.lifecycle.cancel_refresh();
        self.publish(&mut state);
    }

    /// Drops `token` because a resource server rejected it, and says what happened
    /// ([`Invalidated`]: dropped, already replaced, kept because tokens keep being rejected,
    /// or no new token to be had; see `TokenLifecycle::invalidate`).
    pub fn invalidate(&self, token: &AccessToken) -> Invalidated {
        let mut state = self.lock();
        let outcome = state.lifecycle.invalidate(token, now());
        self.rejections
            .store(state.lifecycle.has_rejections(), Ordering::Release);
        self.publish(&mut state);
        outcome
    }

    /// Reports that a resource accepted `token` (takes the lock only after rejections).
    pub fn accepted(&self, token: &AccessToken) {
        if self.rejections.load(Ordering::Acquire) {
            let mut state = self.lock();
            state.lifecycle.note_accepted(token);
            self.rejections
                .store(state.lifecycle.has_rejections(), Ordering::Release);
        }
    }

    /// Stores a token obtained elsewhere (for example the authorization code exchange).
    pub fn store(&self, token: TokenResponse) {
        let mut state = self.lock();
        state.lifecycle.store(token, now(), &SystemRandom);
        self.publish(&mut state);
    }

    /// Blocks until the state changes from generation `seen`, or until `until`.
    pub fn wait(&self, seen: u64, until: Option<Instant>) {
        let mut state = self.lock();
        while state.generation == seen {
            state = match until {
                None => self
                    .changed
                    .wait(state)
                    .unwrap_or_else(|poisoned| poisoned.into_inner()),
                Some(until) => {
                    let left = until.saturating_duration_since(Instant::now());
                    if left.is_zero() {
                        return;
                    }
                    match self.changed.wait_timeout(state, left) {
                        Ok((s, _)) => s,
                        Err(poisoned) => poisoned.into_inner().0,
                    }
                }
            };
        }
    }

    /// A guard that [`cancel`](Self::cancel)s the refresh unless [`RefreshGuard::finish`] is
    /// called: a refresh whose task is cancelled or panics must not leave waiters waiting.
    pub fn guard(&self) -> RefreshGuard<'_> {
        RefreshGuard {
            shared: self,
            done: false,
        }
    }

    fn lock(&self) -> MutexGuard<'_, State> {
        self.state.lock().unwrap_or_else(|e| e.into_inner())
    }

    /// Makes the lifecycle's current token visible to the hot path and wakes waiters. Called
    /// with the lifecycle locked, so publications are ordered.
    fn publish(&self, state: &mut State) {
        self.current
            .store(state.lifecycle.snapshot().map(Published::new).map(Arc::new));
        self.refreshing
            .store(state.lifecycle.is_refreshing(), Ordering::Release);
        state.generation = state.generation.wrapping_add(1);
        self.changed.notify_all();
        if let Some(wake) = &self.wake {
            wake();
        }
    }
}

/// Ends a refresh that did not finish; see [`SharedToken::guard`].
#[derive(Debug)]
pub struct RefreshGuard<'a> {
    shared: &'a SharedToken,
    done: bool,
}

impl RefreshGuard<'_> {
    /// Records the refresh's result. If recording panics (an `on_token` hook that panics),
    /// the guard still gives the refresh back.
    pub fn finish(mut self, result: Result<TokenResponse, Error>) {
        self.shared.finish(result);
        self.done = true;
    }
}

impl Drop for RefreshGuard<'_> {
    fn drop(&mut self) {
        if !self.done {
            self.shared.cancel();
        }
    }
}

/// The token as the hot path sees it: its deadlines moved onto the coarse monotonic clock
/// (`CLOCK_MONOTONIC_COARSE`, a few nanoseconds to read where `Instant::now` takes ~20), and
/// pulled earlier by [`SLACK`] to cover that clock's resolution. Past a deadline, the caller
/// takes the slow path, where the lifecycle decides on the precise monotonic clock.
struct Published {
    token: AccessToken,
    /// Until when the token is fresh (`None`: no known expiry).
    fresh_until: Option<coarsetime::Instant>,
    /// Until when it may be served while a refresh is in flight.
    serve_until: Option<coarsetime::Instant>,
}

/// More than the coarse clock's resolution (one jiffy, 1 to 10 ms).
const SLACK: Duration = Duration::from_millis(20);

/// The furthest deadline the hot path keeps (ten years).
const FAR: Duration = Duration::from_secs(10 * 365 * 24 * 3600);

impl Published {
    fn new(snapshot: &TokenSnapshot) -> Self {
        let precise = Instant::now();
        let coarse = coarsetime::Instant::now();
        // Capped so that the coarse clock's addition cannot overflow for a far-off expiry; past
        // the cap the slow path decides, on the precise clock.
        let on_coarse_clock = |t: Instant| match t
            .saturating_duration_since(precise)
            .min(FAR)
            .checked_sub(SLACK)
        {
            Some(d) => coarse + coarsetime::Duration::from(d),
            None => coarse, // already due
        };
        Self {
            token: snapshot.access_token().clone(),
            fresh_until: snapshot.refresh_at().map(on_coarse_clock),
            serve_until: snapshot.serve_until().map(on_coarse_clock),
        }
    }
}
