//! The counts themselves: kept in the shared store (Redis, so every gateway replica counts
//! together), asked within a time limit, and what happens while it cannot be asked.

use super::response::Verdict;
use super::rules::RateLimitConfig;
use common::ratelimit::{Limit, RateLimitStore};
use std::sync::Arc;
use std::sync::atomic::{AtomicU64, Ordering};
use std::time::{Duration, Instant};

pub struct RateLimiter {
    config: RateLimitConfig,
    store: Option<Arc<dyn RateLimitStore>>,
    /// Checks that could not reach the store, for logs and metrics.
    pub store_failures: AtomicU64,
    last_failure_log: std::sync::Mutex<Option<Instant>>,
}

impl RateLimiter {
    pub fn new(config: RateLimitConfig, store: Option<Arc<dyn RateLimitStore>>) -> Self {
        RateLimiter {
            config,
            store,
            store_failures: AtomicU64::new(0),
            last_failure_log: std::sync::Mutex::new(None),
        }
    }

    pub fn config(&self) -> &RateLimitConfig {
        &self.config
    }

    /// The limits of a request to `path`, served by the table's route `route`.
    pub fn limits_for(&self, route: &str, path: &str) -> &[Limit] {
        self.config.limits_for(route, path)
    }

    /// The route whose limits a request counts against (see [`RateLimitConfig::quota_route`]).
    pub fn quota_route<'a>(&'a self, route: &'a str, path: &str) -> &'a str {
        self.config.quota_route(route, path)
    }

    /// Counts a request of `client` (`user:<sub>` or `ip:<address>`) on `route`.
    pub async fn check(&self, route: &str, path: &str, client: &str) -> Verdict {
        self.check_n(route, path, client, 1, 1).await
    }

    /// Counts `cost` requests at once, all or nothing: what is still to count of a request
    /// carrying `images` images (the refusal's sentence names those).
    pub async fn check_n(
        &self,
        route: &str,
        path: &str,
        client: &str,
        cost: u32,
        images: u32,
    ) -> Verdict {
        let verdict = self.decide(route, path, client, (cost, images)).await;
        if let Some(decision) = verdict.metric_label() {
            decisions().inc(&[decision]);
        }
        verdict
    }

    async fn decide(&self, route: &str, path: &str, client: &str, size: (u32, u32)) -> Verdict {
        let limits = self.limits_for(route, path);
        let Some(store) = self.store.as_ref().filter(|_| !limits.is_empty()) else {
            return Verdict::Unlimited;
        };
        let key = format!("{route}:{client}");
        let result =
            tokio::time::timeout(self.config.timeout, store.acquire_n(&key, limits, size.0)).await;
        match result {
            Ok(Ok(decision)) => Verdict::of(&decision, limits, route, size),
            Ok(Err(e)) => self.store_failed(&e.to_string()),
            Err(_) => self.store_failed("timed out"),
        }
    }

    fn store_failed(&self, error: &str) -> Verdict {
        let total = self.store_failures.fetch_add(1, Ordering::Relaxed) + 1;
        if self.config.fail_open {
            decisions().inc(&["store_unavailable_allowed"]);
        }
        // At most one log line a second: an outage must not flood the logs.
        if let Ok(mut last) = self.last_failure_log.lock()
            && last.is_none_or(|t| t.elapsed() >= Duration::from_secs(1))
        {
            *last = Some(Instant::now());
            tracing::warn!(
                error,
                failures = total,
                fail_open = self.config.fail_open,
                "rate-limit store unavailable; {}",
                if self.config.fail_open {
                    "letting requests through"
                } else {
                    "refusing requests"
                }
            );
        }
        if self.config.fail_open {
            Verdict::Unlimited
        } else {
            Verdict::Unavailable
        }
    }
}

/// Rate-limit decisions by outcome, for `/metrics`.
fn decisions() -> &'static common::metrics::Counter {
    static DECISIONS: std::sync::OnceLock<common::metrics::Counter> = std::sync::OnceLock::new();
    DECISIONS.get_or_init(|| {
        common::metrics::global().counter(
            "rate_limit_decisions_total",
            "Rate-limit checks by outcome: allowed, refused, and with the store unavailable \
             whether the request was let through (fail-open) or refused (fail-closed).",
            &["decision"],
        )
    })
}

#[cfg(test)]
mod tests {
    #![allow(clippy::unwrap_used)]

    use super::*;
    use common::config::Env;
    use common::ratelimit::MemoryRateLimiter;

    #[tokio::test]
    async fn an_allowed_request_carries_the_policy_and_what_is_left() {
        let mut env = Env::from_map(Default::default());
        let config = RateLimitConfig::read(&mut env);
        env.finish().unwrap();
        let limiter = RateLimiter::new(config, Some(Arc::new(MemoryRateLimiter::default())));
        let Verdict::Allowed(headers) = limiter.check("/feedback", "/feedback", "user:1").await
        else {
            panic!("the first request is allowed");
        };
        assert_eq!(
            headers,
            vec![
                (
                    "ratelimit-policy",
                    "\"day\";q=200;w=86400, \"hour\";q=50;w=3600".to_owned()
                ),
                (
                    "ratelimit",
                    "\"day\";r=199;t=432, \"hour\";r=49;t=72".to_owned()
                ),
            ]
        );
    }
}
