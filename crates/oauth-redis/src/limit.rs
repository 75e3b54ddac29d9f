//! Rate-limit counters in Redis: oauth-core's sliding window of buckets, decided by one Lua
//! script on the server, on the server's clock (`TIME`): one round trip a counted request,
//! and the nodes' clocks do not matter.

use oauth_core::resource_server::rate_limit::{BUCKETS, Tier, Verdict};
use oauth_runtime::{RateCounter, StoreError, StoreErrorKind, StoreFuture};
use std::time::Duration;

/// The decision for every limit of a tier. KEYS: one hash a limit (field: bucket index, value:
/// count). ARGV: `buckets`, then `requests, bucket_ms` a limit. Returns `{1, limit, remaining,
/// reset_ms}` (allowed and counted) or `{0, limit, retry_ms}` (refused, not counted).
pub(crate) const CHECK: &str = r#"
local t = redis.call('TIME')
local now = tonumber(t[1]) * 1000 + math.floor(tonumber(t[2]) / 1000)
local buckets = tonumber(ARGV[1])
local len = buckets + 1
local worst_at, worst = -1, 0
local sums, curs = {}, {}
for i = 1, #KEYS do
  local requests = tonumber(ARGV[2 * i])
  local bms = tonumber(ARGV[2 * i + 1])
  local cur = math.floor(now / bms)
  local fields = redis.call('HGETALL', KEYS[i])
  local idx = {}
  local sum = 0
  for j = 1, #fields, 2 do
    local b = tonumber(fields[j])
    local c = tonumber(fields[j + 1])
    if b < cur - buckets then
      redis.call('HDEL', KEYS[i], fields[j])
    else
      sum = sum + c
      table.insert(idx, {b, c})
    end
  end
  sums[i], curs[i] = sum, cur
  if sum >= requests then
    table.sort(idx, function(a, b) return a[1] < b[1] end)
    local left = sum
    local at = (cur + len) * bms
    for _, e in ipairs(idx) do
      left = left - e[2]
      if left < requests then
        at = (e[1] + len) * bms
        break
      end
    end
    if at > worst_at then worst_at, worst = at, i end
  end
end
if worst_at >= 0 then
  return {0, worst - 1, math.max(0, worst_at - now)}
end
local best, best_rem, best_reset = 1, -1, 0
for i = 1, #KEYS do
  local requests = tonumber(ARGV[2 * i])
  local bms = tonumber(ARGV[2 * i + 1])
  redis.call('HINCRBY', KEYS[i], curs[i], 1)
  redis.call('PEXPIRE', KEYS[i], len * bms)
  local rem = requests - sums[i] - 1
  if rem < 0 then rem = 0 end
  if best_rem < 0 or rem < best_rem then
    best, best_rem, best_reset = i, rem, (curs[i] + len) * bms - now
  end
end
return {1, best - 1, best_rem, best_reset}
"#;

/// The script's invocation for `key` under `tier`.
pub(crate) fn invocation<'a>(
    script: &'a redis::Script,
    key: &str,
    tier: &Tier,
) -> redis::ScriptInvocation<'a> {
    let mut invocation = script.prepare_invoke();
    for i in 0..tier.limits().len() {
        invocation.key(format!("oauth-gateway:rl:{key}:{i}"));
    }
    invocation.arg(BUCKETS);
    for limit in tier.limits() {
        invocation.arg(limit.requests()).arg(limit.bucket_ms());
    }
    invocation
}

/// The script's answer as a verdict.
pub(crate) fn verdict(answer: &[i64]) -> Result<Verdict, StoreError> {
    let ms = |v: i64| Duration::from_millis(u64::try_from(v).unwrap_or(0));
    let index = |v: i64| usize::try_from(v).unwrap_or(0);
    match *answer {
        [1, limit, remaining, reset] => Ok(Verdict::Allowed {
            limit: index(limit),
            remaining: u32::try_from(remaining).unwrap_or(0),
            reset: ms(reset),
        }),
        [0, limit, retry] => Ok(Verdict::Limited {
            limit: index(limit),
            retry_after: ms(retry),
        }),
        _ => Err(StoreError::new(
            StoreErrorKind::Refused,
            "redis rate limit: an unexpected answer",
        )),
    }
}

impl RateCounter for crate::RedisStore {
    fn check<'a>(&'a self, key: &'a str, tier: &'a Tier) -> StoreFuture<'a, Verdict> {
        let answer = self.with("rate limit", |c| {
            invocation(&self.limit, key, tier).invoke::<Vec<i64>>(c)
        });
        Box::pin(std::future::ready(answer.and_then(|a| verdict(&a))))
    }
}

#[cfg(feature = "tokio")]
impl RateCounter for crate::AsyncRedisStore {
    fn check<'a>(&'a self, key: &'a str, tier: &'a Tier) -> StoreFuture<'a, Verdict> {
        Box::pin(async move {
            let answer: Vec<i64> = self
                .run("rate limit", move |mut c| {
                    Box::pin(async move {
                        invocation(self.limit_script(), key, tier)
                            .invoke_async(&mut c)
                            .await
                    })
                })
                .await?;
            verdict(&answer)
        })
    }
}
