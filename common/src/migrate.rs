//! Schema changes as a step of their own: a service binary's `migrate` command (whether a
//! service may change its schema when it starts is `MIGRATE_ON_START`, read with its
//! `DATABASE_URL` in [`crate::config::DatabaseConfig`]).
//!
//! In production the schema is migrated before a rollout (a Kubernetes Job, a one-shot compose
//! service) by a role allowed DDL; the replicas that serve only check, at start, that every
//! migration they were built with has been applied, so their role needs no CREATE right and new
//! code never changes the schema under old replicas still serving. docs/deploy.md, "Migrations".

use crate::config::{DatabaseConfig, Env, Mode};
use crate::db::{Db, DbError};
use diesel_migrations::EmbeddedMigrations;

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

impl Schema {
    /// The service's database at start ([`Db::open_service`]): migrated, or only checked, as
    /// `MIGRATE_ON_START` says.
    pub async fn open(self, database: &DatabaseConfig, mode: Mode) -> Result<Db, DbError> {
        Db::open_service(
            database.url.expose(),
            self.name,
            mode,
            database.migrate_on_start,
            self.postgres,
            self.sqlite,
        )
        .await
    }
}

/// The `migrate` command: reads only what it needs (`DATABASE_URL`, `APP_ENV`), so the Job
/// that runs it carries no other secret; applies the schema's pending migrations and reports
/// what it did. Running it again when nothing is pending changes nothing.
pub async fn run(service: &str, schema: Schema, mut env: Env) -> anyhow::Result<Vec<String>> {
    let mode = env.mode();
    let url = crate::config::database_url(&mut env, mode);
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

/// The `main` of a service that owns a schema: `<service>` serves (as
/// [`crate::server::serve_main`]), `<service> migrate` applies the schema's migrations and exits.
pub async fn serve_or_migrate_main<F, Fut>(
    service: &'static str,
    schema: Schema,
    serve: F,
) -> std::process::ExitCode
where
    F: FnOnce(Env) -> Fut,
    Fut: std::future::Future<Output = anyhow::Result<()>>,
{
    crate::server::main_wrapper(service, async move {
        match Command::from_process(service)? {
            Command::Migrate => {
                run(service, schema, Env::from_process()).await?;
            }
            Command::Serve => serve(Env::from_process()).await?,
        }
        Ok(())
    })
    .await
}

/// Declares a service's `SCHEMA` ([`Schema`]) from the migrations under its crate's
/// `migrations/postgres` and `migrations/sqlite`, embedded at build time.
#[macro_export]
macro_rules! service_schema {
    ($name:literal) => {
        pub const SCHEMA: $crate::migrate::Schema = $crate::migrate::Schema {
            name: $name,
            postgres: diesel_migrations::embed_migrations!("migrations/postgres"),
            sqlite: diesel_migrations::embed_migrations!("migrations/sqlite"),
        };
    };
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
}
