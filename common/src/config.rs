//! Typed configuration from environment variables.
//!
//! Every variable is read through [`Env`], which records each missing or invalid value instead
//! of stopping at the first, so a misconfigured service reports everything wrong in one message.

use std::collections::HashMap;
use std::fmt;
use std::str::FromStr;

/// Where the process runs. Only `Development` may fall back to generated keys and defaults
/// that would be unsafe in production.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum Mode {
    Development,
    Production,
}

impl Mode {
    pub fn is_development(self) -> bool {
        self == Mode::Development
    }
}

impl FromStr for Mode {
    type Err = String;
    fn from_str(s: &str) -> Result<Self, Self::Err> {
        match s.to_ascii_lowercase().as_str() {
            "development" | "dev" => Ok(Mode::Development),
            "production" | "prod" => Ok(Mode::Production),
            other => Err(format!(
                "expected `development` or `production`, got `{other}`"
            )),
        }
    }
}

/// A configuration value that must never reach a log: `Debug` and `Display` print a placeholder.
#[derive(Clone, Default, PartialEq, Eq)]
pub struct Secret(String);

impl Secret {
    pub fn new(value: impl Into<String>) -> Self {
        Secret(value.into())
    }
    pub fn expose(&self) -> &str {
        &self.0
    }
}

impl fmt::Debug for Secret {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        f.write_str("Secret([redacted])")
    }
}

impl FromStr for Secret {
    type Err = std::convert::Infallible;
    fn from_str(s: &str) -> Result<Self, Self::Err> {
        Ok(Secret(s.to_owned()))
    }
}

/// Well-known placeholder secrets that no production deployment may use.
pub const WELL_KNOWN_SECRETS: &[&str] = &[
    "your_secret_key",
    "your_jwt_secret_key",
    "secret",
    "changeme",
    "change-me",
    "password",
    "admin",
    "admin123",
    "12345678",
    "default",
    "postgres",
    "redis",
    "root",
    "test",
    "qwerty",
    "letmein",
    "123456",
    "passw0rd",
    "password1",
];

/// The password of a URL like `postgres://user:password@host/db`, if it has one.
pub fn url_password(url: &str) -> Option<&str> {
    let rest = url.split_once("://")?.1;
    let authority = rest.split(['/', '?', '#']).next()?;
    let userinfo = authority.rsplit_once('@')?.0;
    userinfo.split_once(':').map(|(_, password)| password)
}

/// Outside development mode, a connection URL may not carry a well-known password (the
/// `postgres:postgres` of a quick start). The message names the variable, never the password.
pub fn check_url_secret(env: &mut Env, var: &str, url: &str, mode: Mode) {
    if mode.is_development() {
        return;
    }
    if let Some(password) = url_password(url)
        && WELL_KNOWN_SECRETS
            .iter()
            .any(|w| w.eq_ignore_ascii_case(password))
    {
        env.problem(format!(
            "{var}: the password in this URL is a well-known one; set a real secret"
        ));
    }
}

/// All the configuration problems found while reading the environment.
#[derive(Debug, thiserror::Error)]
#[error("invalid configuration:\n  - {}", .problems.join("\n  - "))]
pub struct ConfigError {
    pub problems: Vec<String>,
}

/// Reads variables from the process environment (or a map in tests) and collects problems.
pub struct Env {
    vars: HashMap<String, String>,
    problems: Vec<String>,
}

impl Env {
    pub fn from_process() -> Self {
        Self::from_map(std::env::vars().collect())
    }

    pub fn from_map(vars: HashMap<String, String>) -> Self {
        Env {
            vars,
            problems: Vec::new(),
        }
    }

    /// An environment of the given pairs (tests, embedding).
    pub fn from_pairs(pairs: &[(&str, &str)]) -> Self {
        Self::from_map(
            pairs
                .iter()
                .map(|(k, v)| (k.to_string(), v.to_string()))
                .collect(),
        )
    }

    /// The raw value, with empty strings treated as unset.
    pub fn raw(&self, name: &str) -> Option<&str> {
        self.vars
            .get(name)
            .map(String::as_str)
            .filter(|v| !v.trim().is_empty())
    }

    /// Records a problem found by the caller (cross-field checks).
    pub fn problem(&mut self, message: impl Into<String>) {
        self.problems.push(message.into());
    }

    pub fn optional<T>(&mut self, name: &str) -> Option<T>
    where
        T: FromStr,
        T::Err: fmt::Display,
    {
        let raw = self.raw(name)?.trim().to_owned();
        match raw.parse::<T>() {
            Ok(v) => Some(v),
            Err(e) => {
                self.problems.push(format!("{name}: {e}"));
                None
            }
        }
    }

    pub fn or<T>(&mut self, name: &str, default: T) -> T
    where
        T: FromStr,
        T::Err: fmt::Display,
    {
        self.optional(name).unwrap_or(default)
    }

    /// A required value: when missing or invalid, the problem is recorded and `T::default()`
    /// returned, so reading can go on; [`Env::finish`] then fails.
    pub fn required<T>(&mut self, name: &str) -> T
    where
        T: FromStr + Default,
        T::Err: fmt::Display,
    {
        if self.raw(name).is_none() {
            self.problems
                .push(format!("{name} is required but not set"));
            return T::default();
        }
        self.optional(name).unwrap_or_default()
    }

    /// A value that must lie in a range.
    pub fn in_range<T>(&mut self, name: &str, default: T, range: std::ops::RangeInclusive<T>) -> T
    where
        T: FromStr + PartialOrd + fmt::Display + Copy,
        T::Err: fmt::Display,
    {
        let value = self.or(name, default);
        if !range.contains(&value) {
            self.problems.push(format!(
                "{name}: {value} is out of range {}..={}",
                range.start(),
                range.end()
            ));
            return default;
        }
        value
    }

    /// The running mode, `APP_ENV` (production unless it says development).
    pub fn mode(&mut self) -> Mode {
        self.or("APP_ENV", Mode::Production)
    }

    pub fn finish(self) -> Result<(), ConfigError> {
        if self.problems.is_empty() {
            Ok(())
        } else {
            Err(ConfigError {
                problems: self.problems,
            })
        }
    }
}

/// Settings every service shares.
#[derive(Debug, Clone)]
pub struct CommonConfig {
    pub mode: Mode,
    pub bind_addr: std::net::SocketAddr,
    /// The management port's address: `/metrics` and `/internal/…`, never the public routes.
    pub management_addr: std::net::SocketAddr,
    /// How long in-flight requests may run after a shutdown signal.
    pub shutdown_timeout_secs: u64,
    pub workers: usize,
}

impl CommonConfig {
    pub fn read(env: &mut Env, default_port: u16) -> Self {
        let mode = env.mode();
        let bind_addr = env.or(
            "BIND_ADDR",
            std::net::SocketAddr::from(([0, 0, 0, 0], default_port)),
        );
        let management_addr = Self::read_management_addr(env, bind_addr);
        let shutdown_timeout_secs = env.in_range("SHUTDOWN_TIMEOUT_SECS", 25, 0..=600);
        let default_workers = std::thread::available_parallelism()
            .map(|n| n.get())
            .unwrap_or(2);
        let workers = env.in_range("HTTP_WORKERS", default_workers, 1..=256);
        CommonConfig {
            mode,
            bind_addr,
            management_addr,
            shutdown_timeout_secs,
            workers,
        }
    }
}

impl CommonConfig {
    /// How far above the public port the management port is by default (8082 → 9082).
    pub const MANAGEMENT_PORT_OFFSET: u16 = 1000;

    /// `MANAGEMENT_BIND_ADDR`, by default the public address's IP with the port
    /// [`MANAGEMENT_PORT_OFFSET`](Self::MANAGEMENT_PORT_OFFSET) above (0 stays 0: any free port).
    fn read_management_addr(
        env: &mut Env,
        bind_addr: std::net::SocketAddr,
    ) -> std::net::SocketAddr {
        let default_port = match bind_addr.port() {
            0 => Some(0),
            port => port.checked_add(Self::MANAGEMENT_PORT_OFFSET),
        };
        let addr = match (env.optional("MANAGEMENT_BIND_ADDR"), default_port) {
            (Some(addr), _) => addr,
            (None, Some(port)) => std::net::SocketAddr::new(bind_addr.ip(), port),
            (None, None) => {
                env.problem(format!(
                    "MANAGEMENT_BIND_ADDR is required when the public port is above {}",
                    u16::MAX - Self::MANAGEMENT_PORT_OFFSET
                ));
                return bind_addr;
            }
        };
        if addr.port() != 0 && addr.port() == bind_addr.port() {
            env.problem(
                "MANAGEMENT_BIND_ADDR must use another port than BIND_ADDR: the management \
                 port (/metrics, /internal/) is kept apart from the public one",
            );
        }
        addr
    }
}

/// `DATABASE_URL`, refused outside development mode with a well-known password.
pub fn database_url(env: &mut Env, mode: Mode) -> Secret {
    let url: Secret = env.required("DATABASE_URL");
    check_url_secret(env, "DATABASE_URL", url.expose(), mode);
    url
}

/// Where a service's schema lives and whether it may change it when it starts.
#[derive(Debug, Clone)]
pub struct DatabaseConfig {
    /// `DATABASE_URL`: PostgreSQL, or SQLite (`sqlite://…`) in the all-in-one mode.
    pub url: Secret,
    /// `MIGRATE_ON_START`: apply the schema's pending migrations at start (the development
    /// default, so `cargo xtask up` and the all-in-one mode need no extra step), or only check
    /// they were applied by the `migrate` command (`common::migrate`) and refuse to start if not.
    pub migrate_on_start: bool,
}

impl DatabaseConfig {
    pub fn read(env: &mut Env, mode: Mode) -> Self {
        let migrate_on_start = env.or("MIGRATE_ON_START", mode.is_development());
        DatabaseConfig {
            url: database_url(env, mode),
            migrate_on_start,
        }
    }
}

/// The Redis server of the bus, the job queue and the stores (`memory://…` for the in-process
/// ones), and the namespace of every key and channel.
#[derive(Debug, Clone)]
pub struct RedisConfig {
    /// `REDIS_URL`.
    pub url: String,
    /// `REDIS_PREFIX`: empty in a deployment, unique per test.
    pub prefix: String,
}

impl RedisConfig {
    pub fn read(env: &mut Env, mode: Mode) -> Self {
        let url: String = env.required("REDIS_URL");
        check_url_secret(env, "REDIS_URL", &url, mode);
        RedisConfig {
            url,
            prefix: env.or("REDIS_PREFIX", String::new()),
        }
    }
}

/// The backends of a service that owns a schema, uses the bus and checks tokens (predict-svc,
/// feedback-svc, retrain-worker), read once.
#[derive(Debug, Clone)]
pub struct Backends {
    pub database: DatabaseConfig,
    pub redis: RedisConfig,
    pub jwt: JwtConfig,
}

impl Backends {
    pub fn read(env: &mut Env, mode: Mode) -> Self {
        let database = DatabaseConfig::read(env, mode);
        let redis = RedisConfig::read(env, mode);
        Backends {
            database,
            redis,
            jwt: JwtConfig::read(env),
        }
    }
}

/// The JWT verification settings shared by every service that checks tokens.
#[derive(Debug, Clone)]
pub struct JwtConfig {
    pub jwks_url: String,
    pub issuer: String,
    pub audience: String,
    /// How long fetched signing keys are trusted before they are fetched again
    /// (`JWKS_REFRESH_SECS`): a key removed from auth-svc's set is refused after at most this.
    pub jwks_refresh: std::time::Duration,
}

impl JwtConfig {
    pub const DEFAULT_ISSUER: &'static str = "predictloop";
    pub const DEFAULT_AUDIENCE: &'static str = "predictloop-api";
    pub const DEFAULT_JWKS_REFRESH: std::time::Duration = std::time::Duration::from_secs(300);

    pub fn read(env: &mut Env) -> Self {
        let jwks_url = env.required("AUTH_JWKS_URL");
        Self::read_with_url(env, jwks_url)
    }

    /// The settings with the JWKS URL already decided (the gateway derives its default).
    pub fn read_with_url(env: &mut Env, jwks_url: String) -> Self {
        let refresh_secs = env.in_range(
            "JWKS_REFRESH_SECS",
            Self::DEFAULT_JWKS_REFRESH.as_secs(),
            1..=86_400,
        );
        JwtConfig {
            jwks_url,
            issuer: env.or("JWT_ISSUER", Self::DEFAULT_ISSUER.to_owned()),
            audience: env.or("JWT_AUDIENCE", Self::DEFAULT_AUDIENCE.to_owned()),
            jwks_refresh: std::time::Duration::from_secs(refresh_secs),
        }
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    fn env(pairs: &[(&str, &str)]) -> Env {
        Env::from_pairs(pairs)
    }

    #[test]
    fn reports_every_problem_at_once() {
        let mut e = env(&[("BIND_ADDR", "not an address"), ("APP_ENV", "staging")]);
        let _ = CommonConfig::read(&mut e, 8080);
        let _: String = e.required("DATABASE_URL");
        let err = e.finish().unwrap_err().to_string();
        assert!(err.contains("BIND_ADDR"), "{err}");
        assert!(err.contains("APP_ENV"), "{err}");
        assert!(err.contains("DATABASE_URL is required"), "{err}");
    }

    #[test]
    fn defaults_apply_and_mode_is_production_unless_said() {
        let mut e = env(&[]);
        let c = CommonConfig::read(&mut e, 8082);
        assert!(e.finish().is_ok());
        assert_eq!(c.mode, Mode::Production);
        assert_eq!(c.bind_addr.port(), 8082);
        assert_eq!(c.management_addr.port(), 9082);
    }

    #[test]
    fn the_management_port_is_its_own() {
        let mut e = env(&[("BIND_ADDR", "127.0.0.1:0")]);
        let c = CommonConfig::read(&mut e, 8082);
        assert_eq!(c.management_addr, "127.0.0.1:0".parse().unwrap());
        let mut e = env(&[("MANAGEMENT_BIND_ADDR", "10.0.0.1:7000")]);
        let c = CommonConfig::read(&mut e, 8082);
        assert!(e.finish().is_ok());
        assert_eq!(c.management_addr, "10.0.0.1:7000".parse().unwrap());
        let mut e = env(&[("MANAGEMENT_BIND_ADDR", "0.0.0.0:8082")]);
        let _ = CommonConfig::read(&mut e, 8082);
        assert!(e.finish().unwrap_err().to_string().contains("another port"));
        let mut e = env(&[("BIND_ADDR", "0.0.0.0:65000")]);
        let _ = CommonConfig::read(&mut e, 8082);
        assert!(
            e.finish()
                .unwrap_err()
                .to_string()
                .contains("MANAGEMENT_BIND_ADDR")
        );
    }

    #[test]
    fn range_is_enforced() {
        let mut e = env(&[("SHUTDOWN_TIMEOUT_SECS", "9999")]);
        let _ = CommonConfig::read(&mut e, 1);
        assert!(e.finish().unwrap_err().to_string().contains("out of range"));
    }

    #[test]
    fn secrets_do_not_print() {
        let s = Secret::new("hunter2hunter2");
        assert!(!format!("{s:?}").contains("hunter2"));
    }

    #[test]
    fn a_well_known_password_in_a_url_is_refused_outside_development() {
        assert_eq!(
            url_password("postgres://app:s3cr%21t@db:5432/x"),
            Some("s3cr%21t")
        );
        assert_eq!(url_password("redis://:pw@cache:6379"), Some("pw"));
        assert_eq!(url_password("postgres://postgres@127.0.0.1/x"), None);
        assert_eq!(url_password("redis://127.0.0.1:6379"), None);
        let url = "postgres://postgres:postgres@db/predictloop";
        let mut e = env(&[]);
        check_url_secret(&mut e, "DATABASE_URL", url, Mode::Production);
        let err = e.finish().unwrap_err().to_string();
        assert!(
            err.contains("DATABASE_URL") && !err.contains("postgres:postgres"),
            "{err}"
        );
        let mut e = env(&[]);
        check_url_secret(&mut e, "DATABASE_URL", url, Mode::Development);
        check_url_secret(
            &mut e,
            "REDIS_URL",
            "redis://:Xk2!long@r:6379",
            Mode::Production,
        );
        assert!(e.finish().is_ok());
    }

    #[test]
    fn the_backends_are_read_once_with_their_defaults() {
        let mut e = env(&[
            ("DATABASE_URL", "postgres://app@db/x"),
            ("REDIS_URL", "redis://cache:6379"),
            ("AUTH_JWKS_URL", "http://auth:8081/.well-known/jwks.json"),
        ]);
        let b = Backends::read(&mut e, Mode::Production);
        assert!(e.finish().is_ok());
        assert_eq!(b.database.url.expose(), "postgres://app@db/x");
        assert!(!b.database.migrate_on_start);
        assert_eq!(b.redis.url, "redis://cache:6379");
        assert_eq!(b.redis.prefix, "");
        assert_eq!(b.jwt.issuer, JwtConfig::DEFAULT_ISSUER);
        assert_eq!(b.jwt.audience, JwtConfig::DEFAULT_AUDIENCE);

        let mut e = env(&[("REDIS_URL", "redis://:redis@cache:6379")]);
        let _ = Backends::read(&mut e, Mode::Production);
        let err = e.finish().unwrap_err().to_string();
        for name in [
            "DATABASE_URL is required",
            "REDIS_URL: the password",
            "AUTH_JWKS_URL",
        ] {
            assert!(err.contains(name), "{err}");
        }
    }

    #[test]
    fn migrate_on_start_defaults_to_the_mode_and_can_be_set() {
        let on_start = |pairs: &[(&str, &str)], mode| {
            let mut pairs = pairs.to_vec();
            pairs.push(("DATABASE_URL", "sqlite://x.db"));
            let mut e = env(&pairs);
            let migrate = DatabaseConfig::read(&mut e, mode).migrate_on_start;
            e.finish().map(|()| migrate).map_err(|e| e.to_string())
        };
        assert_eq!(on_start(&[], Mode::Development), Ok(true));
        assert_eq!(on_start(&[], Mode::Production), Ok(false));
        let set = |value| [("MIGRATE_ON_START", value)];
        assert_eq!(on_start(&set("true"), Mode::Production), Ok(true));
        assert_eq!(on_start(&set("false"), Mode::Development), Ok(false));
        let err = on_start(&set("sometimes"), Mode::Production).unwrap_err();
        assert!(err.contains("MIGRATE_ON_START"), "{err}");
    }
}
