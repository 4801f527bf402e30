use common::config::{CommonConfig, ConfigError, Env, JwtConfig, RedisConfig};
use std::time::Duration;

#[derive(Debug, Clone)]
pub struct Config {
    pub common: CommonConfig,
    /// Where events arrive from and the history is kept (`REDIS_URL`, `REDIS_PREFIX`).
    pub redis: RedisConfig,
    pub jwt: JwtConfig,
    pub ws: WsSettings,
}

/// How the WebSocket connections are run.
#[derive(Debug, Clone)]
pub struct WsSettings {
    /// How often the server pings each client (`WS_HEARTBEAT_SECS`).
    pub heartbeat_interval: Duration,
    /// A client that sends nothing (not even a pong) for this long is closed; so is one that
    /// takes this long to accept a frame (`WS_CLIENT_TIMEOUT_SECS`).
    pub client_timeout: Duration,
    /// Events waiting for one client; a client that lets it fill up is closed (`WS_SEND_QUEUE`).
    pub send_queue: usize,
    /// The most events one reconnect replays from the history (`WS_REPLAY_LIMIT`).
    pub replay_limit: usize,
    /// Open sockets per process; more are refused with 503 (`WS_MAX_CONNECTIONS`).
    pub max_connections: usize,
    /// Open sockets per user (token subject) in this process; more are refused with 429
    /// (`WS_MAX_CONNECTIONS_PER_USER`).
    pub max_per_user: usize,
    /// Messages a client may send per second on one socket, on average (`WS_MESSAGE_RATE`)…
    pub message_rate: u32,
    /// …and at once (`WS_MESSAGE_BURST`); a client over the budget is closed with 1008.
    pub message_burst: u32,
}

impl Default for WsSettings {
    fn default() -> Self {
        WsSettings {
            heartbeat_interval: Duration::from_secs(20),
            client_timeout: Duration::from_secs(60),
            send_queue: 64,
            replay_limit: 1_000,
            max_connections: 10_000,
            max_per_user: 5,
            message_rate: 5,
            message_burst: 20,
        }
    }
}

impl WsSettings {
    pub fn read(env: &mut Env) -> Self {
        let d = WsSettings::default();
        let heartbeat = env.in_range(
            "WS_HEARTBEAT_SECS",
            d.heartbeat_interval.as_secs(),
            1..=3_600,
        );
        let timeout = env.in_range(
            "WS_CLIENT_TIMEOUT_SECS",
            d.client_timeout.as_secs(),
            2..=7_200,
        );
        if timeout <= heartbeat {
            env.problem(format!(
                "WS_CLIENT_TIMEOUT_SECS ({timeout}) must be longer than WS_HEARTBEAT_SECS ({heartbeat}), \
                 or every client would be closed between two pings"
            ));
        }
        WsSettings {
            heartbeat_interval: Duration::from_secs(heartbeat),
            client_timeout: Duration::from_secs(timeout),
            send_queue: env.in_range("WS_SEND_QUEUE", d.send_queue, 1..=65_536),
            replay_limit: env.in_range("WS_REPLAY_LIMIT", d.replay_limit, 0..=10_000),
            max_connections: env.in_range("WS_MAX_CONNECTIONS", d.max_connections, 1..=1_000_000),
            max_per_user: env.in_range("WS_MAX_CONNECTIONS_PER_USER", d.max_per_user, 1..=1_000),
            message_rate: env.in_range("WS_MESSAGE_RATE", d.message_rate, 1..=10_000),
            message_burst: env.in_range("WS_MESSAGE_BURST", d.message_burst, 1..=100_000),
        }
    }
}

pub const DEFAULT_PORT: u16 = 8084;

impl Config {
    pub fn from_env(mut env: Env) -> Result<Self, ConfigError> {
        let common = CommonConfig::read(&mut env, DEFAULT_PORT);
        let redis = RedisConfig::read(&mut env, common.mode);
        let jwt = JwtConfig::read(&mut env);
        let ws = WsSettings::read(&mut env);
        env.finish()?;
        Ok(Config {
            common,
            redis,
            jwt,
            ws,
        })
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    fn env(pairs: &[(&str, &str)]) -> Env {
        let mut vars: std::collections::HashMap<String, String> = [
            ("REDIS_URL", "redis://127.0.0.1:6379"),
            (
                "AUTH_JWKS_URL",
                "http://127.0.0.1:8081/.well-known/jwks.json",
            ),
        ]
        .iter()
        .map(|(k, v)| (k.to_string(), v.to_string()))
        .collect();
        vars.extend(pairs.iter().map(|(k, v)| (k.to_string(), v.to_string())));
        Env::from_map(vars)
    }

    #[test]
    fn websocket_settings_have_defaults_and_are_read() {
        let c = Config::from_env(env(&[])).unwrap();
        assert_eq!(c.ws.send_queue, 64);
        assert_eq!(c.ws.heartbeat_interval, Duration::from_secs(20));
        assert_eq!(
            (c.ws.max_per_user, c.ws.message_rate, c.ws.message_burst),
            (5, 5, 20)
        );
        let c = Config::from_env(env(&[
            ("WS_HEARTBEAT_SECS", "5"),
            ("WS_CLIENT_TIMEOUT_SECS", "12"),
            ("WS_SEND_QUEUE", "8"),
            ("WS_REPLAY_LIMIT", "0"),
            ("WS_MAX_CONNECTIONS", "3"),
            ("WS_MAX_CONNECTIONS_PER_USER", "2"),
            ("WS_MESSAGE_RATE", "1"),
            ("WS_MESSAGE_BURST", "4"),
        ]))
        .unwrap();
        assert_eq!(c.ws.heartbeat_interval, Duration::from_secs(5));
        assert_eq!(c.ws.client_timeout, Duration::from_secs(12));
        assert_eq!(c.ws.send_queue, 8);
        assert_eq!(c.ws.replay_limit, 0);
        assert_eq!(c.ws.max_connections, 3);
        assert_eq!(
            (c.ws.max_per_user, c.ws.message_rate, c.ws.message_burst),
            (2, 1, 4)
        );
        let err = Config::from_env(env(&[
            ("WS_MAX_CONNECTIONS_PER_USER", "0"),
            ("WS_MESSAGE_RATE", "0"),
        ]))
        .unwrap_err()
        .to_string();
        assert!(err.contains("WS_MAX_CONNECTIONS_PER_USER"), "{err}");
        assert!(err.contains("WS_MESSAGE_RATE"), "{err}");
    }

    #[test]
    fn a_timeout_shorter_than_the_heartbeat_is_refused() {
        let err = Config::from_env(env(&[
            ("WS_HEARTBEAT_SECS", "30"),
            ("WS_CLIENT_TIMEOUT_SECS", "10"),
            ("WS_SEND_QUEUE", "0"),
        ]))
        .unwrap_err()
        .to_string();
        assert!(err.contains("WS_CLIENT_TIMEOUT_SECS"), "{err}");
        assert!(err.contains("WS_SEND_QUEUE"), "{err}");
    }
}
