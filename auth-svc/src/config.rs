use crate::clients::ServiceClients;
use common::config::{
    CommonConfig, DatabaseConfig, Env, JwtConfig, Mode, Secret, WELL_KNOWN_SECRETS,
};
use common::jwt::SigningKeyPair;
use std::time::Duration;

#[derive(Debug, Clone)]
pub struct AdminBootstrap {
    pub username: String,
    pub password: Secret,
}

#[derive(Debug, Clone)]
pub struct Config {
    pub common: CommonConfig,
    pub database: DatabaseConfig,
    pub signing_key: SigningKeyPair,
    pub issuer: String,
    pub audience: String,
    pub access_token_ttl: Duration,
    pub refresh_token_ttl: Duration,
    pub bcrypt_cost: u32,
    pub admin: Option<AdminBootstrap>,
    /// The services allowed the client-credentials grant (`SERVICE_CLIENTS`).
    pub service_clients: ServiceClients,
    /// Lifetime of a service token.
    pub service_token_ttl: Duration,
}

pub const DEFAULT_PORT: u16 = 8081;

impl Config {
    pub fn from_env(mut env: Env) -> Result<Self, common::config::ConfigError> {
        let common = CommonConfig::read(&mut env, DEFAULT_PORT);
        let database = DatabaseConfig::read(&mut env, common.mode);
        let signing_key = read_signing_key(&mut env, common.mode);
        let issuer = env.or("JWT_ISSUER", JwtConfig::DEFAULT_ISSUER.to_owned());
        let audience = env.or("JWT_AUDIENCE", JwtConfig::DEFAULT_AUDIENCE.to_owned());
        let access = env.in_range("ACCESS_TOKEN_TTL_SECS", 15 * 60, 30..=24 * 3600);
        let refresh = env.in_range(
            "REFRESH_TOKEN_TTL_SECS",
            14 * 24 * 3600,
            60..=365 * 24 * 3600,
        );
        let min_cost = if common.mode.is_development() { 4 } else { 10 };
        let bcrypt_cost = env.in_range("BCRYPT_COST", 12, min_cost..=31);
        let admin = read_admin(&mut env, common.mode);
        let service_clients = ServiceClients::read(&mut env, common.mode);
        let service_ttl = env.in_range("SERVICE_TOKEN_TTL_SECS", 300, 30..=3600);
        let key = signing_key.unwrap_or_else(|| SigningKeyPair::from_seed([0; 32]));
        let config = Config {
            common,
            database,
            signing_key: key,
            issuer,
            audience,
            access_token_ttl: Duration::from_secs(access),
            refresh_token_ttl: Duration::from_secs(refresh),
            bcrypt_cost,
            admin,
            service_clients,
            service_token_ttl: Duration::from_secs(service_ttl),
        };
        env.finish()?;
        Ok(config)
    }
}

/// The first line of a signing key auth-svc generated in development mode.
pub const DEV_KEY_MARKER: &str = "predictloop development signing key";

/// Saves a generated key, marked as a development key, readable by its owner only.
fn write_dev_key(path: &str, key: &SigningKeyPair) -> std::io::Result<()> {
    use std::io::Write;
    let mut options = std::fs::OpenOptions::new();
    options.write(true).create_new(true);
    #[cfg(unix)]
    std::os::unix::fs::OpenOptionsExt::mode(&mut options, 0o600);
    let mut file = options.open(path)?;
    write!(
        file,
        "# {DEV_KEY_MARKER}: for `cargo xtask up` only, never for a deployment\n{}",
        key.to_pem()
    )
}

fn read_signing_key(env: &mut Env, mode: Mode) -> Option<SigningKeyPair> {
    let pem = match (env.raw("JWT_SIGNING_KEY"), env.raw("JWT_SIGNING_KEY_FILE")) {
        (Some(_), Some(_)) => {
            env.problem("set JWT_SIGNING_KEY or JWT_SIGNING_KEY_FILE, not both");
            return None;
        }
        // Environment variables often carry newlines escaped.
        (Some(pem), None) => pem.replace("\\n", "\n"),
        (None, Some(path)) => match std::fs::read_to_string(path) {
            Ok(pem) => pem,
            Err(e) => {
                env.problem(format!("JWT_SIGNING_KEY_FILE: cannot read {path}: {e}"));
                return None;
            }
        },
        (None, None) if mode.is_development() => {
            let key = match SigningKeyPair::generate() {
                Ok(k) => k,
                Err(e) => {
                    env.problem(e.to_string());
                    return None;
                }
            };
            match env.raw("DEV_SIGNING_KEY_FILE").map(str::to_owned) {
                Some(path) => match write_dev_key(&path, &key) {
                    Ok(()) => tracing::warn!(
                        path,
                        "no JWT_SIGNING_KEY: generated a development signing key and saved it \
                         (development mode only; refused in production)"
                    ),
                    Err(e) => {
                        env.problem(format!("DEV_SIGNING_KEY_FILE: cannot write {path}: {e}"))
                    }
                },
                None => tracing::warn!(
                    "no JWT_SIGNING_KEY: generated a throw-away signing key (development mode \
                     only); tokens stop working when auth-svc restarts"
                ),
            }
            return Some(key);
        }
        (None, None) => {
            env.problem(
                "JWT_SIGNING_KEY or JWT_SIGNING_KEY_FILE is required outside development mode \
                 (an Ed25519 PKCS#8 PEM: `openssl genpkey -algorithm ed25519`)",
            );
            return None;
        }
    };
    if !mode.is_development() && pem.contains(DEV_KEY_MARKER) {
        env.problem(
            "the JWT signing key is a development key (generated by auth-svc in development \
             mode); generate a real one: `openssl genpkey -algorithm ed25519`",
        );
        return None;
    }
    match SigningKeyPair::from_pem(&pem) {
        Ok(k) => Some(k),
        Err(e) => {
            env.problem(format!("JWT signing key: {e}"));
            None
        }
    }
}

fn read_admin(env: &mut Env, mode: Mode) -> Option<AdminBootstrap> {
    let username: Option<String> = env.optional("ADMIN_USERNAME");
    let password: Option<Secret> = env.optional("ADMIN_PASSWORD");
    match (username, password) {
        (None, None) => None,
        (Some(_), None) => {
            env.problem("ADMIN_PASSWORD is required when ADMIN_USERNAME is set");
            None
        }
        (None, Some(_)) => {
            env.problem("ADMIN_USERNAME is required when ADMIN_PASSWORD is set");
            None
        }
        (Some(username), Some(password)) => {
            if let Err(e) = crate::validate::username(&username) {
                env.problem(format!("ADMIN_USERNAME: {e}"));
            }
            if let Err(e) = crate::validate::password(password.expose()) {
                env.problem(format!("ADMIN_PASSWORD: {e}"));
            }
            if !mode.is_development()
                && WELL_KNOWN_SECRETS
                    .iter()
                    .any(|w| w.eq_ignore_ascii_case(password.expose()))
            {
                env.problem("ADMIN_PASSWORD is a well-known password; choose another");
            }
            Some(AdminBootstrap { username, password })
        }
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    const SERVICE_CLIENTS: &str = "feedback-svc:0123456789abcdef0123456789abcdef=predictions:read";

    fn env(pairs: &[(&str, &str)]) -> Env {
        Env::from_pairs(pairs)
    }

    #[test]
    fn production_refuses_a_missing_key_and_a_well_known_admin_password() {
        let err = Config::from_env(env(&[
            ("DATABASE_URL", "postgres://x@h/db"),
            ("ADMIN_USERNAME", "admin"),
            ("ADMIN_PASSWORD", "changeme"),
        ]))
        .unwrap_err()
        .to_string();
        assert!(err.contains("JWT_SIGNING_KEY"), "{err}");
        assert!(err.contains("well-known"), "{err}");
    }

    #[test]
    fn development_generates_a_key() {
        let c = Config::from_env(env(&[
            ("DATABASE_URL", "postgres://x@h/db"),
            ("APP_ENV", "development"),
        ]))
        .unwrap();
        assert!(!c.signing_key.kid().is_empty());
    }

    #[test]
    fn a_configured_pem_is_used() {
        let key = SigningKeyPair::generate().unwrap();
        let c = Config::from_env(env(&[
            ("DATABASE_URL", "postgres://x@h/db"),
            ("JWT_SIGNING_KEY", &key.to_pem().replace('\n', "\\n")),
            ("SERVICE_CLIENTS", SERVICE_CLIENTS),
        ]))
        .unwrap();
        assert_eq!(c.signing_key.kid(), key.kid());
        let err = Config::from_env(env(&[
            ("DATABASE_URL", "postgres://x@h/db"),
            ("JWT_SIGNING_KEY", "not a key"),
        ]))
        .unwrap_err();
        assert!(err.to_string().contains("signing key"));
    }

    #[test]
    fn a_development_key_is_saved_for_the_next_start_and_refused_in_production() {
        let dir = std::env::temp_dir().join(format!("dev-key-{}", uuid::Uuid::new_v4().simple()));
        std::fs::create_dir_all(&dir).unwrap();
        let path = dir.join("dev-signing-key.pem");
        let path_str = path.display().to_string();
        let dev = Config::from_env(env(&[
            ("DATABASE_URL", "postgres://x@h/db"),
            ("APP_ENV", "development"),
            ("DEV_SIGNING_KEY_FILE", &path_str),
        ]))
        .unwrap();
        let pem = std::fs::read_to_string(&path).unwrap();
        assert!(pem.contains(DEV_KEY_MARKER));
        // Development mode reads it back: tokens survive a restart.
        let again = Config::from_env(env(&[
            ("DATABASE_URL", "postgres://x@h/db"),
            ("APP_ENV", "development"),
            ("JWT_SIGNING_KEY_FILE", &path_str),
        ]))
        .unwrap();
        assert_eq!(again.signing_key.kid(), dev.signing_key.kid());
        let err = Config::from_env(env(&[
            ("DATABASE_URL", "postgres://x@h/db"),
            ("JWT_SIGNING_KEY_FILE", &path_str),
        ]))
        .unwrap_err()
        .to_string();
        assert!(err.contains("development key"), "{err}");
        std::fs::remove_dir_all(&dir).unwrap();
    }
}
