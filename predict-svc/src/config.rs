use common::config::{CommonConfig, ConfigError, Env, JwtConfig, Secret};

#[derive(Debug, Clone)]
pub struct Config {
    pub common: CommonConfig,
    pub database_url: Secret,
    pub redis_url: String,
    /// Namespace of every Redis key and channel (empty in a deployment, unique per test).
    pub redis_prefix: String,
    pub jwt: JwtConfig,
}

pub const DEFAULT_PORT: u16 = 8082;

impl Config {
    pub fn from_env(mut env: Env) -> Result<Self, ConfigError> {
        let common = CommonConfig::read(&mut env, DEFAULT_PORT);
        let database_url: Secret = env.required("DATABASE_URL");
        let redis_url: String = env.required("REDIS_URL");
        let redis_prefix = env.or("REDIS_PREFIX", String::new());
        let jwt = JwtConfig::read(&mut env);
        env.finish()?;
        Ok(Config {
            common,
            database_url,
            redis_url,
            redis_prefix,
            jwt,
        })
    }
}
