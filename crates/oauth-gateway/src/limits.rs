//! SLA tiers enforced: after a request is allowed, its contract's tier (if any) is counted —
//! on this node, or in the fleet's counter with a fallback when that fails.

use std::sync::Arc;
use std::sync::atomic::{AtomicBool, Ordering};

use oauth_core::resource_server::rate_limit::{Tier, Verdict};
use oauth_core::resource_server::{Cause, Quota};
use oauth_core::{Denial, Principal};
use oauth_runtime::{LocalCounters, RateCounter};

/// What a gateway does when the fleet's rate-limit counter fails (Redis down).
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
#[non_exhaustive]
pub enum RateLimitFallback {
    /// Count on this node, each limit divided by the fleet's size (the nodes together stay
    /// near the tier). The default, with a fleet of 1.
    Local {
        /// How many gateways share the tier.
        fleet_size: u32,
    },
    /// Let requests through uncounted.
    Open,
    /// Refuse with 503.
    Closed,
}

impl Default for RateLimitFallback {
    fn default() -> Self {
        Self::Local { fleet_size: 1 }
    }
}

/// The counters, and how they are used.
pub(crate) struct Limits {
    shared: Option<Arc<dyn RateCounter>>,
    fallback: RateLimitFallback,
    local: LocalCounters,
    expose: bool,
    /// The shared counter failed last time (logged once, until it works again).
    down: AtomicBool,
}

impl std::fmt::Debug for Limits {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        f.debug_struct("Limits")
            .field("shared", &self.shared.is_some())
            .field("fallback", &self.fallback)
            .finish_non_exhaustive()
    }
}

impl Default for Limits {
    fn default() -> Self {
        Self {
            shared: None,
            fallback: RateLimitFallback::default(),
            local: LocalCounters::new(),
            expose: true,
            down: AtomicBool::new(false),
        }
    }
}

/// The counter's key for a (client, API): a digest, so that any client id makes a short key
/// with nothing to escape.
fn key(client_id: &str, api: &str) -> String {
    let mut ctx = ring::digest::Context::new(&ring::digest::SHA256);
    ctx.update(api.as_bytes());
    ctx.update(&[0]);
    ctx.update(client_id.as_bytes());
    let digest = ctx.finish();
    digest.as_ref()[..16]
        .iter()
        .map(|b| format!("{b:02x}"))
        .collect()
}

impl Limits {
    pub(crate) fn shared(
        mut self,
        counter: Arc<dyn RateCounter>,
        fallback: RateLimitFallback,
    ) -> Self {
        self.shared = Some(counter);
        self.fallback = fallback;
        self
    }

    pub(crate) fn expose(mut self, expose: bool) -> Self {
        self.expose = expose;
        self
    }

    /// Counts an allowed request against its contract's tier: the principal (with its quota),
    /// or 429 when the tier is used up.
    pub(crate) async fn count(
        &self,
        principal: Principal,
        api: &str,
        now: std::time::Instant,
    ) -> Result<Principal, Denial> {
        let Some(tier) = principal.tier() else {
            return Ok(principal);
        };
        let client = principal.client_id();
        let verdict = match &self.shared {
            None => self.local.check_pair(client, api, tier, now),
            Some(shared) => match shared.check(&key(client, api), tier).await {
                Ok(verdict) => {
                    if self.down.swap(false, Ordering::AcqRel) {
                        tracing::warn!(
                            "the shared rate-limit counter is back; tiers are counted by the fleet again"
                        );
                    }
                    verdict
                }
                Err(e) => {
                    if !self.down.swap(true, Ordering::AcqRel) {
                        tracing::warn!(error = %e, fallback = ?self.fallback, "the shared rate-limit counter is unavailable");
                    }
                    match self.fallback {
                        RateLimitFallback::Local { fleet_size } => {
                            self.local.check_share(client, api, tier, fleet_size)
                        }
                        RateLimitFallback::Open => return Ok(principal),
                        RateLimitFallback::Closed => {
                            return Err(Denial::Unavailable {
                                reason: "The rate limit could not be checked.",
                                cause: Some(Cause::new(e)),
                            });
                        }
                    }
                }
            },
        };
        let tier = tier.clone();
        self.answer(principal, tier, verdict, api)
    }

    fn answer(
        &self,
        principal: Principal,
        tier: Tier,
        verdict: Verdict,
        api: &str,
    ) -> Result<Principal, Denial> {
        match verdict {
            Verdict::Limited { retry_after, .. } => {
                tracing::debug!(
                    api,
                    client_id = principal.client_id(),
                    tier = tier.name(),
                    retry_after_ms = retry_after.as_millis() as u64,
                    "rate limited"
                );
                Err(Denial::RateLimited {
                    retry_after,
                    quota: Quota::new(tier, verdict),
                })
            }
            _ if self.expose => Ok(principal.with_quota(Quota::new(tier, verdict))),
            _ => Ok(principal),
        }
    }
}
