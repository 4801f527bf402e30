use crate::edge::EdgeConfig;
use crate::pages::WebConfig;
use crate::ratelimit::RateLimitConfig;
use crate::routes::{RouteTable, Upstream};
use common::config::{CommonConfig, ConfigError, Env, JwtConfig};
use std::collections::HashMap;
use std::time::Duration;

#[derive(Debug, Clone)]
pub struct Config {
    pub common: CommonConfig,
    pub jwt: JwtConfig,
    /// Base URL of each upstream service.
    pub upstreams: HashMap<Upstream, String>,
    pub routes: RouteTable,
    pub connect_timeout: Duration,
    pub request_timeout: Duration,
    /// Body limits: uploads (image routes) and everything else.
    pub max_upload_bytes: usize,
    pub max_body_bytes: usize,
    /// Where the rate-limit counters live, shared by every gateway replica.
    pub redis_url: Option<String>,
    pub redis_prefix: String,
    pub rate_limit: RateLimitConfig,
    /// CORS allowlist and limits on the request line and headers.
    pub edge: EdgeConfig,
    /// A client that sends nothing of its body for this long is cut off (408).
    pub body_timeout: Duration,
    /// Where the web pages' files are.
    pub web: WebConfig,
}

pub const DEFAULT_PORT: u16 = 8080;

impl Config {
    pub fn from_env(mut env: Env) -> Result<Self, ConfigError> {
        let common = CommonConfig::read(&mut env, DEFAULT_PORT);
        let mut upstreams = HashMap::new();
        for (upstream, var, port) in [
            (Upstream::Auth, "AUTH_URL", 8081),
            (Upstream::Predict, "PREDICT_URL", 8082),
            (Upstream::Feedback, "FEEDBACK_URL", 8083),
            (Upstream::Notify, "NOTIFY_URL", 8084),
            (Upstream::Retrain, "RETRAIN_URL", 8085),
        ] {
            let url = env.or(var, format!("http://127.0.0.1:{port}"));
            if !(url.starts_with("http://") || url.starts_with("https://")) {
                env.problem(format!("{var}: `{url}` is not an http(s) URL"));
            }
            upstreams.insert(upstream, url.trim_end_matches('/').to_owned());
        }
        let auth = upstreams.get(&Upstream::Auth).cloned().unwrap_or_default();
        let jwks_url = env.or("AUTH_JWKS_URL", format!("{auth}/.well-known/jwks.json"));
        let jwt = JwtConfig::read_with_url(&mut env, jwks_url);
        let routes = match env.raw("GATEWAY_ROUTES_FILE").map(str::to_owned) {
            None => RouteTable::defaults(),
            Some(path) => match RouteTable::from_file(&path) {
                Ok(t) => t,
                Err(e) => {
                    env.problem(format!("GATEWAY_ROUTES_FILE: {e}"));
                    RouteTable::defaults()
                }
            },
        };
        let connect_ms = env.in_range("UPSTREAM_CONNECT_TIMEOUT_MS", 2_000, 10..=60_000);
        let timeout_ms = env.in_range("UPSTREAM_TIMEOUT_MS", 30_000, 10..=600_000);
        let max_upload_bytes = env.in_range(
            "MAX_UPLOAD_BYTES",
            10 * 1024 * 1024,
            1024..=100 * 1024 * 1024,
        );
        let max_body_bytes = env.in_range("MAX_BODY_BYTES", 1024 * 1024, 1024..=100 * 1024 * 1024);
        let redis_url: Option<String> = env.optional("REDIS_URL");
        if let Some(url) = &redis_url {
            common::config::check_url_secret(&mut env, "REDIS_URL", url, common.mode);
        }
        let redis_prefix = env.or("REDIS_PREFIX", String::new());
        let rate_limit = RateLimitConfig::read(&mut env);
        let edge = EdgeConfig::read(&mut env);
        let body_timeout_ms = env.in_range("CLIENT_BODY_TIMEOUT_MS", 10_000, 100..=300_000);
        let web = WebConfig::read(&mut env);
        if rate_limit.enabled && redis_url.is_none() {
            env.problem(
                "REDIS_URL: required for rate limiting (or set RATE_LIMIT_ENABLED=false)"
                    .to_owned(),
            );
        }
        env.finish()?;
        Ok(Config {
            common,
            jwt,
            upstreams,
            routes,
            connect_timeout: Duration::from_millis(connect_ms),
            request_timeout: Duration::from_millis(timeout_ms),
            max_upload_bytes,
            max_body_bytes,
            redis_url,
            redis_prefix,
            rate_limit,
            edge,
            body_timeout: Duration::from_millis(body_timeout_ms),
            web,
        })
    }
}

#[cfg(test)]
mod tests {
    #![allow(clippy::unwrap_used)]

    use super::*;

    fn env(pairs: &[(&str, &str)]) -> Env {
        Env::from_pairs(pairs)
    }

    #[test]
    fn rate_limits_need_redis_and_take_the_prototypes_defaults() {
        let err = Config::from_env(env(&[])).unwrap_err().to_string();
        assert!(err.contains("REDIS_URL"), "{err}");
        let c = Config::from_env(env(&[("REDIS_URL", "redis://127.0.0.1:6379")])).unwrap();
        assert!(c.rate_limit.enabled && c.rate_limit.fail_open);
        assert_eq!(c.rate_limit.default.len(), 2);
        assert_eq!(c.rate_limit.routes.len(), 2);
        let err = Config::from_env(env(&[
            ("REDIS_URL", "redis://:changeme@cache:6379"),
            ("RATE_LIMIT_FAILURE_MODE", "sideways"),
            ("RATE_LIMIT_DEFAULT", "lots"),
        ]))
        .unwrap_err()
        .to_string();
        assert!(err.contains("RATE_LIMIT_FAILURE_MODE"), "{err}");
        assert!(err.contains("RATE_LIMIT_DEFAULT"), "{err}");
        assert!(err.contains("well-known"), "{err}");
        assert!(Config::from_env(env(&[("RATE_LIMIT_ENABLED", "false")])).is_ok());
    }
}
