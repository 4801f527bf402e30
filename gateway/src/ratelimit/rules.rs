//! Which limits apply to a request: the rate-limit configuration and its look-ups.

use super::key::oip_infer_model;
use super::parse::{parse_limits, parse_oip_quotas, parse_route_limits};
use common::config::Env;
use common::ratelimit::Limit;
use std::time::Duration;

#[derive(Debug, Clone, PartialEq)]
pub struct RateLimitConfig {
    pub enabled: bool,
    /// Limits of every route without limits of its own.
    pub default: Vec<Limit>,
    /// Routes (by their path in the route table) with limits of their own.
    pub routes: Vec<(String, Vec<Limit>)>,
    /// Paths never limited (a path and everything below it).
    pub exempt: Vec<String>,
    /// With the store unreachable: let requests through (true) or refuse them with 503.
    pub fail_open: bool,
    /// The longest a request waits for the store before the failure mode applies.
    pub timeout: Duration,
    /// Open Inference Protocol models and the predict route whose limits their infer requests
    /// count against, one per image (`RATE_LIMIT_OIP_QUOTAS`); a model not listed counts
    /// against the `/v2/models` route's limits, also per image.
    pub oip_quotas: Vec<(String, String)>,
}

impl RateLimitConfig {
    pub const DEFAULT_LIMITS: &'static str = "200/day, 50/hour";
    pub const DEFAULT_ROUTE_LIMITS: &'static str =
        "/api/v1/predict=100/day; /api/v2/predict=150/day";
    /// With the web pages' paths (`crate::pages::EXEMPT_PREFIXES`).
    pub const DEFAULT_EXEMPT: &'static str = concat!(
        "/health, /ready, /metrics, /.well-known/jwks.json, /v2/health, ",
        "/dashboard, /static, /vendor"
    );
    pub const DEFAULT_OIP_QUOTAS: &'static str =
        "mnist-mlp=/api/v1/predict; mnist-cnn=/api/v2/predict";

    pub fn read(env: &mut Env) -> Self {
        let enabled = env.or("RATE_LIMIT_ENABLED", true);
        let default = parsed(
            env,
            "RATE_LIMIT_DEFAULT",
            Self::DEFAULT_LIMITS,
            parse_limits,
        );
        let routes = parsed(
            env,
            "RATE_LIMIT_ROUTES",
            Self::DEFAULT_ROUTE_LIMITS,
            parse_route_limits,
        );
        let exempt = env
            .or("RATE_LIMIT_EXEMPT", Self::DEFAULT_EXEMPT.to_owned())
            .split(',')
            .map(|p| p.trim().trim_end_matches('/').to_owned())
            .filter(|p| !p.is_empty())
            .collect();
        let fail_open = match env
            .or("RATE_LIMIT_FAILURE_MODE", "open".to_owned())
            .as_str()
        {
            "open" => true,
            "closed" => false,
            other => {
                env.problem(format!(
                    "RATE_LIMIT_FAILURE_MODE: `{other}` is neither `open` nor `closed`"
                ));
                true
            }
        };
        let timeout = Duration::from_millis(env.in_range("RATE_LIMIT_TIMEOUT_MS", 250, 1..=10_000));
        let oip_quotas = parsed(
            env,
            "RATE_LIMIT_OIP_QUOTAS",
            Self::DEFAULT_OIP_QUOTAS,
            parse_oip_quotas,
        );
        RateLimitConfig {
            enabled,
            default,
            routes,
            exempt,
            fail_open,
            timeout,
            oip_quotas,
        }
    }

    /// Rate limiting off (tests of other things).
    pub fn disabled() -> Self {
        RateLimitConfig {
            enabled: false,
            default: vec![],
            routes: vec![],
            exempt: vec![],
            fail_open: true,
            timeout: Duration::from_millis(250),
            oip_quotas: vec![],
        }
    }

    /// The limits of a request to `path`, served by the table's route `route`.
    pub fn limits_for(&self, route: &str, path: &str) -> &[Limit] {
        if !self.enabled
            || self.exempt.iter().any(|e| {
                path == e
                    || (path.starts_with(e.as_str()) && path.as_bytes().get(e.len()) == Some(&b'/'))
            })
        {
            return &[];
        }
        self.routes
            .iter()
            .find(|(p, _)| p == route || p == path)
            .map_or(&self.default, |(_, limits)| limits)
    }

    /// The route whose limits a request counts against: its own, but an infer request of a
    /// model listed in `oip_quotas` counts against that model's predict route.
    pub fn quota_route<'a>(&'a self, route: &'a str, path: &str) -> &'a str {
        oip_infer_model(path)
            .and_then(|model| self.oip_quotas.iter().find(|(m, _)| m == model))
            .map_or(route, |(_, quota)| quota.as_str())
    }
}

/// A variable read by `parse`, its default when unset; a problem (and nothing) when unreadable.
fn parsed<T>(
    env: &mut Env,
    var: &str,
    default: &str,
    parse: fn(&str) -> Result<Vec<T>, String>,
) -> Vec<T> {
    match parse(&env.or(var, default.to_owned())) {
        Ok(values) => values,
        Err(e) => {
            env.problem(format!("{var}: {e}"));
            vec![]
        }
    }
}

#[cfg(test)]
mod tests {
    #![allow(clippy::unwrap_used)]

    use super::*;

    #[test]
    fn a_route_with_its_own_limits_uses_only_those_and_exempt_paths_none() {
        let mut env = Env::from_map(Default::default());
        let config = RateLimitConfig::read(&mut env);
        env.finish().unwrap();
        assert_eq!(
            config.oip_quotas[1],
            ("mnist-cnn".to_owned(), "/api/v2/predict".to_owned())
        );
        assert_eq!(
            config.limits_for("/api/v1/predict", "/api/v1/predict"),
            &[Limit::new(100, Duration::from_secs(86_400))]
        );
        assert_eq!(config.limits_for("/feedback", "/feedback").len(), 2);
        assert!(
            config
                .limits_for("/.well-known/jwks.json", "/.well-known/jwks.json")
                .is_empty()
        );
        assert!(
            config
                .limits_for("/v2/health", "/v2/health/ready")
                .is_empty()
        );
        assert_eq!(
            config.quota_route("/v2/models", "/v2/models/mnist-cnn/infer"),
            "/api/v2/predict"
        );
        assert_eq!(
            config.quota_route("/v2/models", "/v2/models/other/infer"),
            "/v2/models"
        );
    }
}
