//! What a rate-limit check answers: the `RateLimit-Policy` / `RateLimit` headers of the IETF
//! httpapi draft on every limited answer, and a refusal that says which limit and when to retry.

use crate::error::GatewayError;
use common::ratelimit::{Decision, Limit, LimitState};
use std::time::Duration;

/// The headers an admitted request's answer carries.
pub type LimitHeaders = Vec<(&'static str, String)>;

/// What the check decided, with the headers to send either way.
pub enum Verdict {
    /// Not limited (exempt route, or limiting off).
    Unlimited,
    Allowed(LimitHeaders),
    Refused {
        headers: LimitHeaders,
        retry_after: Duration,
        message: String,
    },
    /// The store could not be asked and the gateway fails closed.
    Unavailable,
}

impl Verdict {
    /// The store's decision on a request worth `cost` of the limits `limits` of `route`, one
    /// carrying `images` images (the refusal's sentence names those).
    pub fn of(
        decision: &Decision,
        limits: &[Limit],
        route: &str,
        (cost, images): (u32, u32),
    ) -> Self {
        let headers = headers(decision);
        if decision.allowed {
            return Verdict::Allowed(headers);
        }
        let exhausted = decision
            .states
            .iter()
            .filter(|s| s.remaining < cost)
            .map(|s| describe(&s.limit))
            .collect::<Vec<_>>()
            .join(" and ");
        let wait = decision.retry_after.as_secs_f64().ceil().max(1.0) as u64;
        let message = match limits.iter().find(|l| l.quota < images) {
            Some(limit) => format!(
                "Too many images: this request carries {images}, more than the limit of {} on {route} allows at once.",
                describe(limit)
            ),
            None if images > 1 => format!(
                "Too many requests: this request carries {images} images, more than are left of the limit of {exhausted} on {route}; try again in {wait} s."
            ),
            None => format!(
                "Too many requests: the limit of {exhausted} on {route} is reached; try again in {wait} s."
            ),
        };
        Verdict::Refused {
            headers,
            retry_after: decision.retry_after,
            message,
        }
    }

    /// The outcome's name in `rate_limit_decisions_total`; none for an unlimited request.
    pub fn metric_label(&self) -> Option<&'static str> {
        match self {
            Verdict::Unlimited => None,
            Verdict::Allowed(_) => Some("allowed"),
            Verdict::Refused { .. } => Some("refused"),
            Verdict::Unavailable => Some("store_unavailable_refused"),
        }
    }

    /// The headers for an admitted request's answer, or the refusal (429 with its
    /// `Retry-After` and `RateLimit` headers, or 503 when the store cannot be asked).
    pub fn admit(self) -> Result<LimitHeaders, GatewayError> {
        match self {
            Verdict::Unlimited => Ok(vec![]),
            Verdict::Allowed(headers) => Ok(headers),
            Verdict::Refused {
                headers,
                retry_after,
                message,
            } => Err(GatewayError::RateLimited {
                message,
                retry_after,
                headers,
            }),
            Verdict::Unavailable => Err(GatewayError::RateLimitUnavailable),
        }
    }
}

fn describe(limit: &Limit) -> String {
    format!("{} per {}", limit.quota, window_name(limit.window))
}

fn window_name(window: Duration) -> String {
    match window.as_secs() {
        1 => "second".into(),
        60 => "minute".into(),
        3_600 => "hour".into(),
        86_400 => "day".into(),
        n => format!("{n}s"),
    }
}

/// `RateLimit-Policy: "day";q=200;w=86400, "hour";q=50;w=3600` and
/// `RateLimit: "day";r=199;t=432, "hour";r=49;t=72` (t: seconds until the quota is whole).
fn headers(decision: &Decision) -> LimitHeaders {
    let name = |s: &LimitState| format!("\"{}\"", window_name(s.limit.window));
    let policy = decision
        .states
        .iter()
        .map(|s| {
            format!(
                "{};q={};w={}",
                name(s),
                s.limit.quota,
                s.limit.window.as_secs()
            )
        })
        .collect::<Vec<_>>()
        .join(", ");
    let state = decision
        .states
        .iter()
        .map(|s| {
            format!(
                "{};r={};t={}",
                name(s),
                s.remaining,
                s.reset.as_secs_f64().ceil() as u64
            )
        })
        .collect::<Vec<_>>()
        .join(", ");
    vec![("ratelimit-policy", policy), ("ratelimit", state)]
}
