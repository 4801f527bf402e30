use common::config::{Backends, CommonConfig, ConfigError, Env};
use common::service_auth::ServiceClientConfig;
use std::time::Duration;

#[derive(Debug, Clone)]
pub struct Config {
    pub common: CommonConfig,
    /// The database, Redis and token verification.
    pub backends: Backends,
    /// predict-svc's management port (`PREDICT_INTERNAL_URL`), for the predictions feedback
    /// refers to.
    pub predict_url: String,
    /// Who this service is to auth-svc, for its service tokens.
    pub service_client: ServiceClientConfig,
    pub outbox: OutboxConfig,
}

#[derive(Debug, Clone)]
pub struct OutboxConfig {
    /// Whether this process runs the relay (it may run elsewhere, or be driven by tests).
    pub relay_enabled: bool,
    pub poll_interval: Duration,
    /// Approximate length the `events:history` stream is trimmed to.
    pub history_maxlen: u64,
}

pub const DEFAULT_PORT: u16 = 8083;
/// predict-svc's management port, where its `/internal/` routes are.
pub const DEFAULT_PREDICT_URL: &str = "http://127.0.0.1:9082";

impl Config {
    pub fn from_env(mut env: Env) -> Result<Self, ConfigError> {
        let common = CommonConfig::read(&mut env, DEFAULT_PORT);
        let backends = Backends::read(&mut env, common.mode);
        let predict_url = env.or("PREDICT_INTERNAL_URL", DEFAULT_PREDICT_URL.to_owned());
        if !(predict_url.starts_with("http://") || predict_url.starts_with("https://")) {
            env.problem(format!(
                "PREDICT_INTERNAL_URL: expected an http:// or https:// URL, got `{predict_url}`"
            ));
        }
        let service_client = ServiceClientConfig::read(&mut env, common.mode, "feedback-svc");
        let outbox = OutboxConfig {
            relay_enabled: env.or("OUTBOX_RELAY_ENABLED", true),
            poll_interval: Duration::from_millis(env.in_range(
                "OUTBOX_POLL_INTERVAL_MS",
                200,
                10..=60_000,
            )),
            history_maxlen: env.in_range("EVENTS_HISTORY_MAXLEN", 10_000, 100..=10_000_000),
        };
        env.finish()?;
        Ok(Config {
            common,
            backends,
            predict_url,
            service_client,
            outbox,
        })
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    fn env(pairs: &[(&str, &str)]) -> Env {
        Env::from_pairs(pairs)
    }

    const BASE: [(&str, &str); 4] = [
        (
            "SERVICE_CLIENT_SECRET",
            "feedback-secret-0123456789abcdef0123",
        ),
        ("DATABASE_URL", "postgres://u@127.0.0.1/db"),
        ("REDIS_URL", "redis://127.0.0.1:6379"),
        (
            "AUTH_JWKS_URL",
            "http://127.0.0.1:8081/.well-known/jwks.json",
        ),
    ];

    #[test]
    fn defaults() {
        let c = Config::from_env(env(&BASE)).unwrap();
        assert_eq!(c.predict_url, DEFAULT_PREDICT_URL);
        assert!(c.outbox.relay_enabled);
        assert_eq!(c.outbox.poll_interval, Duration::from_millis(200));
        assert_eq!(c.outbox.history_maxlen, 10_000);
        assert_eq!(c.common.bind_addr.port(), DEFAULT_PORT);
        assert_eq!(c.service_client.client_id, "feedback-svc");
        assert_eq!(c.service_client.token_url, "http://127.0.0.1:8081/token");
    }

    #[test]
    fn production_needs_the_service_secret() {
        let err = Config::from_env(env(&BASE[1..])).unwrap_err().to_string();
        assert!(err.contains("SERVICE_CLIENT_SECRET"), "{err}");
        let mut vars = BASE[1..].to_vec();
        vars.push(("APP_ENV", "development"));
        assert!(Config::from_env(env(&vars)).is_ok());
    }

    #[test]
    fn bad_values_are_all_reported() {
        let mut vars = BASE.to_vec();
        vars.extend([
            ("PREDICT_INTERNAL_URL", "127.0.0.1:9082"),
            ("OUTBOX_RELAY_ENABLED", "maybe"),
            ("OUTBOX_POLL_INTERVAL_MS", "0"),
        ]);
        let err = Config::from_env(env(&vars)).unwrap_err().to_string();
        for name in [
            "PREDICT_INTERNAL_URL",
            "OUTBOX_RELAY_ENABLED",
            "OUTBOX_POLL_INTERVAL_MS",
        ] {
            assert!(err.contains(name), "{err}");
        }
    }
}
