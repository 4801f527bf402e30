//! Schema changes as a step of their own: a service binary's `migrate` command, and the
//! `MIGRATE_ON_START` setting that says whether a service may change its schema when it starts.
//!
//! In production the schema is migrated before a rollout (a Kubernetes Job, a one-shot compose
//! service) by a role allowed DDL; the replicas that serve only check, at start, that every
//! migration they were built with has been applied, so their role needs no CREATE right and new
//! code never changes the schema under old replicas still serving. docs/deploy.md, "Migrations".

use crate::config::{Env, Mode, Secret};
use crate::db::Db;
use diesel_migrations::EmbeddedMigrations;

/// `MIGRATE_ON_START`: true lets a service apply its pending migrations when it starts (the
/// default in development mode, so `cargo xtask up` and the all-in-one mode need no extra
/// step); false, the default elsewhere, makes it refuse to start while any is pending.
pub fn on_start(env: &mut Env, mode: Mode) -> bool {
    env.or("MIGRATE_ON_START", mode.is_development())
}

/// What a service binary was asked to do.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum Command {
    /// No argument: run the service.
    Serve,
    /// `migrate`: apply the service's pending migrations, then exit.
    Migrate,
}

impl Command {
    /// Reads the arguments after the program's name.
    pub fn parse(
        service: &str,
        mut args: impl Iterator<Item = String>,
    ) -> Result<Command, anyhow::Error> {
        let command = match args.next().as_deref() {
            None => Command::Serve,
            Some("migrate") => Command::Migrate,
            Some(other) => anyhow::bail!(
                "unknown command `{other}`: `{service}` runs the service, `{service} migrate` \
                 applies its database migrations and exits"
            ),
        };
        if let Some(extra) = args.next() {
            anyhow::bail!("unexpected argument `{extra}`");
        }
        Ok(command)
    }

    /// The process's own arguments.
    pub fn from_process(service: &str) -> Result<Command, anyhow::Error> {
        Self::parse(service, std::env::args().skip(1))
    }
}

/// A service's schema: its name and its migrations for each backend.
pub struct Schema {
    pub name: &'static str,
    pub postgres: EmbeddedMigrations,
    pub sqlite: EmbeddedMigrations,
}

/// The `migrate` command: reads only what it needs (`DATABASE_URL`, `APP_ENV`), so the Job
/// that runs it carries no other secret; applies the schema's pending migrations and reports
/// what it did. Running it again when nothing is pending changes nothing.
pub async fn run(service: &str, schema: Schema, mut env: Env) -> anyhow::Result<Vec<String>> {
    let mode = env.mode();
    let url: Secret = env.required("DATABASE_URL");
    crate::config::check_url_secret(&mut env, "DATABASE_URL", url.expose(), mode);
    env.finish()?;
    let applied = Db::migrate_service(
        url.expose(),
        schema.name,
        mode,
        schema.postgres,
        schema.sqlite,
    )
    .await?;
    // What was applied is logged by `Db::migrate`.
    if applied.is_empty() {
        tracing::info!(
            service,
            schema = schema.name,
            "schema up to date: no migration to apply"
        );
    }
    Ok(applied)
}

#[cfg(test)]
mod tests {
    use super::*;

    fn args(list: &[&str]) -> impl Iterator<Item = String> {
        list.iter()
            .map(|s| (*s).to_owned())
            .collect::<Vec<_>>()
            .into_iter()
    }

    #[test]
    fn commands_are_serve_or_migrate() {
        assert_eq!(
            Command::parse("auth-svc", args(&[])).unwrap(),
            Command::Serve
        );
        assert_eq!(
            Command::parse("auth-svc", args(&["migrate"])).unwrap(),
            Command::Migrate
        );
        let err = Command::parse("auth-svc", args(&["migrat"])).unwrap_err();
        assert!(err.to_string().contains("auth-svc migrate"), "{err}");
        assert!(Command::parse("auth-svc", args(&["migrate", "now"])).is_err());
    }

    #[test]
    fn migrate_on_start_defaults_to_the_mode_and_can_be_set() {
        let env = |pairs: &[(&str, &str)]| {
            Env::from_map(
                pairs
                    .iter()
                    .map(|(k, v)| (k.to_string(), v.to_string()))
                    .collect(),
            )
        };
        assert!(on_start(&mut env(&[]), Mode::Development));
        assert!(!on_start(&mut env(&[]), Mode::Production));
        let mut e = env(&[("MIGRATE_ON_START", "true")]);
        assert!(on_start(&mut e, Mode::Production));
        let mut e = env(&[("MIGRATE_ON_START", "false")]);
        assert!(!on_start(&mut e, Mode::Development));
        let mut e = env(&[("MIGRATE_ON_START", "sometimes")]);
        on_start(&mut e, Mode::Production);
        assert!(
            e.finish()
                .unwrap_err()
                .to_string()
                .contains("MIGRATE_ON_START")
        );
    }
}
