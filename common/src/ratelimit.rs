//! Rate limiting with GCRA (the generic cell rate algorithm): per key and limit, one stored
//! number, the "theoretical arrival time" (TAT). A limit of `quota` requests per `window` lets a
//! burst of `quota` through at once, then refills one request every `window / quota`.
//!
//! A request is checked against several limits at once (200 a day and 50 an hour) and counts
//! against all of them only when every one allows it. The Redis store does this in one Lua
//! script, atomically, with Redis's clock, so every gateway replica shares the same counts.

use crate::kv::{Redis, StoreError};
use async_trait::async_trait;
use std::collections::HashMap;
use std::sync::Mutex;
use std::time::Duration;

/// `quota` requests per `window`.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Hash)]
pub struct Limit {
    pub quota: u32,
    pub window: Duration,
}

impl Limit {
    pub fn new(quota: u32, window: Duration) -> Self {
        Limit { quota, window }
    }

    fn window_ms(&self) -> u64 {
        (self.window.as_millis() as u64).max(1)
    }

    /// Milliseconds between two requests at the sustained rate, rounded up so that the
    /// rate is never exceeded.
    fn interval_ms(&self) -> u64 {
        self.window_ms().div_ceil(u64::from(self.quota.max(1)))
    }

    /// How far ahead of now the TAT may run: exactly `quota` requests' worth.
    fn tolerance_ms(&self) -> u64 {
        self.interval_ms() * u64::from(self.quota.max(1))
    }
}

/// One limit's state after a request.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub struct LimitState {
    pub limit: Limit,
    /// Requests that would still be let through right now.
    pub remaining: u32,
    /// Until the quota is whole again.
    pub reset: Duration,
}

#[derive(Debug, Clone, PartialEq, Eq)]
pub struct Decision {
    pub allowed: bool,
    /// When refused: how long until a request would be let through.
    pub retry_after: Duration,
    /// One per limit, in the order given.
    pub states: Vec<LimitState>,
}

#[async_trait]
pub trait RateLimitStore: Send + Sync {
    /// Counts one request under `key` against every limit, if all of them allow it.
    async fn acquire(&self, key: &str, limits: &[Limit]) -> Result<Decision, StoreError> {
        self.acquire_n(key, limits, 1).await
    }

    /// Counts `cost` requests at once (an inference request carrying `cost` images), all or
    /// nothing: if any limit has fewer left, none is counted.
    async fn acquire_n(
        &self,
        key: &str,
        limits: &[Limit],
        cost: u32,
    ) -> Result<Decision, StoreError>;
}

/// GCRA for several limits at once, in plain arithmetic: the reference the Lua script follows.
fn decide(tats: &[Option<u64>], limits: &[Limit], now: u64, cost: u32) -> (Decision, Vec<u64>) {
    let mut allowed = true;
    let mut retry_after = 0u64;
    let mut starts = Vec::with_capacity(limits.len());
    for (tat, limit) in tats.iter().zip(limits) {
        let tat = tat.unwrap_or(now).max(now);
        let next = tat + limit.interval_ms() * u64::from(cost);
        // The request fits if the new TAT runs at most `tolerance` ahead of now.
        if next > now + limit.tolerance_ms() {
            allowed = false;
            retry_after = retry_after.max(next - limit.tolerance_ms() - now);
        }
        starts.push((tat, next));
    }
    let mut stored = Vec::with_capacity(limits.len());
    let states = starts
        .iter()
        .zip(limits)
        .map(|(&(tat, next), limit)| {
            let used = if allowed { next } else { tat };
            stored.push(used);
            let ahead = used - now;
            LimitState {
                limit: *limit,
                remaining: (limit.tolerance_ms().saturating_sub(ahead) / limit.interval_ms())
                    as u32,
                reset: Duration::from_millis(ahead),
            }
        })
        .collect();
    (
        Decision {
            allowed,
            retry_after: Duration::from_millis(retry_after),
            states,
        },
        stored,
    )
}

/// KEYS: one per limit. ARGV: for each limit, its interval and tolerance in milliseconds; then
/// the cost (how many requests this one counts as).
/// Returns {allowed, retry_after_ms, then per limit: remaining, reset_ms}.
const SCRIPT: &str = r#"
local time = redis.call('TIME')
local now = tonumber(time[1]) * 1000 + math.floor(tonumber(time[2]) / 1000)
local allowed = 1
local retry = 0
local cost = tonumber(ARGV[2 * #KEYS + 1])
local tats = {}
for i = 1, #KEYS do
  local interval = tonumber(ARGV[2 * i - 1])
  local tolerance = tonumber(ARGV[2 * i])
  local tat = tonumber(redis.call('GET', KEYS[i]) or now)
  if tat < now then tat = now end
  local nxt = tat + interval * cost
  if nxt > now + tolerance then
    allowed = 0
    if nxt - tolerance - now > retry then retry = nxt - tolerance - now end
  end
  tats[i] = {tat, nxt}
end
local result = {allowed, retry}
for i = 1, #KEYS do
  local interval = tonumber(ARGV[2 * i - 1])
  local tolerance = tonumber(ARGV[2 * i])
  local used = tats[i][1]
  if allowed == 1 then
    used = tats[i][2]
    redis.call('SET', KEYS[i], string.format('%d', used), 'PX', used - now)
  end
  local ahead = used - now
  local remaining = math.floor((tolerance - ahead) / interval)
  if remaining < 0 then remaining = 0 end
  result[#result + 1] = remaining
  result[#result + 1] = ahead
end
return result
"#;

/// The shared store: Redis, one script call per request.
#[derive(Clone)]
pub struct RedisRateLimiter {
    redis: Redis,
    script: std::sync::Arc<redis::Script>,
}

impl RedisRateLimiter {
    pub fn new(redis: Redis) -> Self {
        RedisRateLimiter {
            redis,
            script: std::sync::Arc::new(redis::Script::new(SCRIPT)),
        }
    }

    fn limit_key(&self, key: &str, limit: &Limit) -> String {
        self.redis.key(&format!(
            "ratelimit:{key}:{}:{}",
            limit.quota,
            limit.window_ms()
        ))
    }
}

#[async_trait]
impl RateLimitStore for RedisRateLimiter {
    async fn acquire_n(
        &self,
        key: &str,
        limits: &[Limit],
        cost: u32,
    ) -> Result<Decision, StoreError> {
        if limits.is_empty() {
            return Ok(Decision {
                allowed: true,
                retry_after: Duration::ZERO,
                states: vec![],
            });
        }
        let mut invocation = self.script.prepare_invoke();
        for limit in limits {
            invocation
                .key(self.limit_key(key, limit))
                .arg(limit.interval_ms())
                .arg(limit.tolerance_ms());
        }
        invocation.arg(cost);
        let reply: Vec<i64> = invocation.invoke_async(&mut self.redis.conn()).await?;
        if reply.len() != 2 + 2 * limits.len() {
            return Err(StoreError::Decode(format!(
                "rate-limit script answered {} numbers for {} limits",
                reply.len(),
                limits.len()
            )));
        }
        let millis = |n: i64| Duration::from_millis(n.max(0) as u64);
        Ok(Decision {
            allowed: reply[0] == 1,
            retry_after: millis(reply[1]),
            states: limits
                .iter()
                .enumerate()
                .map(|(i, limit)| LimitState {
                    limit: *limit,
                    remaining: reply[2 + 2 * i].clamp(0, i64::from(u32::MAX)) as u32,
                    reset: millis(reply[3 + 2 * i]),
                })
                .collect(),
        })
    }
}

/// A store in this process only: for the all-in-one mode and for tests of the logic above it.
pub struct MemoryRateLimiter {
    tats: Mutex<HashMap<(String, Limit), u64>>,
    clock: Box<dyn Fn() -> u64 + Send + Sync>,
}

impl Default for MemoryRateLimiter {
    fn default() -> Self {
        Self::with_clock(Box::new(|| {
            std::time::SystemTime::now()
                .duration_since(std::time::UNIX_EPOCH)
                .map_or(0, |d| d.as_millis() as u64)
        }))
    }
}

impl MemoryRateLimiter {
    /// `clock` gives the time in milliseconds.
    pub fn with_clock(clock: Box<dyn Fn() -> u64 + Send + Sync>) -> Self {
        MemoryRateLimiter {
            tats: Mutex::new(HashMap::new()),
            clock,
        }
    }
}

#[async_trait]
impl RateLimitStore for MemoryRateLimiter {
    async fn acquire_n(
        &self,
        key: &str,
        limits: &[Limit],
        cost: u32,
    ) -> Result<Decision, StoreError> {
        let now = (self.clock)();
        let mut tats = self
            .tats
            .lock()
            .map_err(|_| StoreError::Decode("rate-limit state poisoned".into()))?;
        // Entries whose quota is whole again carry no information.
        if tats.len() > 100_000 {
            tats.retain(|_, tat| *tat > now);
        }
        let current: Vec<Option<u64>> = limits
            .iter()
            .map(|limit| tats.get(&(key.to_owned(), *limit)).copied())
            .collect();
        let (decision, stored) = decide(&current, limits, now, cost);
        if decision.allowed {
            for (limit, tat) in limits.iter().zip(stored) {
                tats.insert((key.to_owned(), *limit), tat);
            }
        }
        Ok(decision)
    }
}

#[cfg(test)]
mod tests {
    #![allow(clippy::unwrap_used)]

    use super::*;
    use std::sync::Arc;
    use std::sync::atomic::{AtomicU64, Ordering};

    fn limiter() -> (MemoryRateLimiter, Arc<AtomicU64>) {
        let now = Arc::new(AtomicU64::new(1_000_000));
        let clock = now.clone();
        (
            MemoryRateLimiter::with_clock(Box::new(move || clock.load(Ordering::SeqCst))),
            now,
        )
    }

    #[tokio::test]
    async fn a_burst_gets_exactly_the_quota_and_the_remaining_count_goes_down() {
        let (limiter, _) = limiter();
        let limits = [Limit::new(5, Duration::from_secs(60))];
        for expected in (0..5).rev() {
            let d = limiter.acquire("k", &limits).await.unwrap();
            assert!(d.allowed);
            assert_eq!(d.states[0].remaining, expected);
        }
        let refused = limiter.acquire("k", &limits).await.unwrap();
        assert!(!refused.allowed);
        assert_eq!(refused.states[0].remaining, 0);
        // One request's worth refills in window / quota.
        assert_eq!(refused.retry_after, Duration::from_secs(12));
        assert_eq!(refused.states[0].reset, Duration::from_secs(60));
        // Another key has its own quota.
        assert!(limiter.acquire("other", &limits).await.unwrap().allowed);
    }

    #[tokio::test]
    async fn the_quota_refills_with_time() {
        let (limiter, now) = limiter();
        let limits = [Limit::new(3, Duration::from_secs(3))];
        for _ in 0..3 {
            assert!(limiter.acquire("k", &limits).await.unwrap().allowed);
        }
        assert!(!limiter.acquire("k", &limits).await.unwrap().allowed);
        now.fetch_add(1_000, Ordering::SeqCst);
        let d = limiter.acquire("k", &limits).await.unwrap();
        assert!(d.allowed);
        assert_eq!(d.states[0].remaining, 0);
        now.fetch_add(3_000, Ordering::SeqCst);
        let d = limiter.acquire("k", &limits).await.unwrap();
        assert_eq!(d.states[0].remaining, 2, "whole again after a window");
    }

    #[tokio::test]
    async fn a_refused_request_counts_against_no_limit() {
        let (limiter, _) = limiter();
        let hourly = Limit::new(2, Duration::from_secs(3600));
        let daily = Limit::new(10, Duration::from_secs(86_400));
        for _ in 0..2 {
            assert!(
                limiter
                    .acquire("k", &[daily, hourly])
                    .await
                    .unwrap()
                    .allowed
            );
        }
        for _ in 0..5 {
            let d = limiter.acquire("k", &[daily, hourly]).await.unwrap();
            assert!(!d.allowed);
            // The daily limit still shows 8 left: refusals did not use it up.
            assert_eq!(d.states[0].remaining, 8);
            assert_eq!(d.states[1].remaining, 0);
            assert_eq!(d.retry_after, Duration::from_secs(1800));
        }
    }

    #[tokio::test]
    async fn a_request_of_many_counts_as_many_all_or_nothing() {
        let (limiter, _now) = limiter();
        let limits = [Limit::new(10, Duration::from_secs(86_400))];
        let d = limiter.acquire_n("k", &limits, 7).await.unwrap();
        assert!(d.allowed);
        assert_eq!(d.states[0].remaining, 3);
        // Four do not fit in the three left, and refusing them counts none.
        assert!(!limiter.acquire_n("k", &limits, 4).await.unwrap().allowed);
        let d = limiter.acquire_n("k", &limits, 3).await.unwrap();
        assert!(d.allowed);
        assert_eq!(d.states[0].remaining, 0);
        assert!(!limiter.acquire("k", &limits).await.unwrap().allowed);
    }

    #[test]
    fn a_quota_that_does_not_divide_the_window_still_allows_the_whole_burst() {
        let limit = Limit::new(3, Duration::from_millis(1000));
        let mut tat = None;
        for expected in [2, 1, 0] {
            let (d, stored) = decide(&[tat], &[limit], 5_000, 1);
            assert!(d.allowed);
            assert_eq!(d.states[0].remaining, expected);
            tat = Some(stored[0]);
        }
        assert!(!decide(&[tat], &[limit], 5_000, 1).0.allowed);
    }
}
