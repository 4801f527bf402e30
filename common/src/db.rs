//! The database pool and migrations, for PostgreSQL (the split system) and SQLite (the
//! all-in-one mode), behind one connection type so the same diesel queries run on both.
//!
//! diesel is synchronous: every use of a connection goes through [`Db::run`], which moves the
//! work onto tokio's blocking pool so no async worker thread ever waits on the database.

use diesel::connection::SimpleConnection;
use diesel::r2d2::{ConnectionManager, CustomizeConnection, Pool, PooledConnection};
use diesel::{Connection, PgConnection, SqliteConnection};
use diesel_migrations::{EmbeddedMigrations, MigrationHarness};
use std::time::Duration;

/// The current time as stored: UTC without a zone (portable across both backends), truncated
/// to microseconds, the precision both keep.
pub fn now() -> chrono::NaiveDateTime {
    use chrono::SubsecRound;
    chrono::Utc::now().naive_utc().trunc_subsecs(6)
}

/// The PostgreSQL advisory lock held while migrating (an arbitrary key, the same in every service).
const MIGRATION_LOCK: i64 = 0x7072_6564_6c6f_6f70; // "predloop"

/// Initialises OpenSSL (built into the binary for libpq's TLS) without its clean-up at exit.
/// libpq would otherwise initialise it first, and with that clean-up, which frees OpenSSL's
/// global state while the process ends, under the threads (a pool's, a server's) that may still
/// be inside a TLS connection to PostgreSQL: a crash at exit. Idempotent and cheap.
fn prepare_tls() {
    openssl_sys::init();
}

/// A direct PostgreSQL connection, outside any pool. Every one goes through here so that
/// [`prepare_tls`] comes before libpq's first use of OpenSSL (clippy's `disallowed-methods`
/// refuses a direct `establish` elsewhere).
#[allow(clippy::disallowed_methods)]
pub fn establish_postgres(url: &str) -> diesel::ConnectionResult<PgConnection> {
    prepare_tls();
    PgConnection::establish(url)
}

pub use connection::DbConnection;

mod connection {
    // The derived `establish` is reached only through a `Db`'s pool, built after its probe
    // connection (`establish_postgres`) has prepared OpenSSL.
    #![allow(clippy::disallowed_methods)]
    use diesel::{PgConnection, SqliteConnection};

    /// One connection type for both backends; queries written against it run on either.
    #[derive(diesel::MultiConnection)]
    pub enum DbConnection {
        Pg(PgConnection),
        Sqlite(SqliteConnection),
    }
}

#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum Backend {
    Postgres,
    Sqlite,
}

impl Backend {
    pub fn of_url(url: &str) -> Result<Self, DbError> {
        if url.starts_with("postgres://") || url.starts_with("postgresql://") {
            Ok(Backend::Postgres)
        } else if url.starts_with("sqlite://") {
            Ok(Backend::Sqlite)
        } else {
            Err(DbError::Config(format!(
                "unsupported database URL scheme in `{}`: expected postgres://, postgresql:// or sqlite://",
                redact_url(url)
            )))
        }
    }
}

#[derive(Debug, thiserror::Error)]
pub enum DbError {
    #[error("database configuration: {0}")]
    Config(String),
    #[error("cannot connect to the database: {0}")]
    Connect(String),
    #[error("no database connection available: {0}")]
    PoolTimeout(String),
    #[error("migrations failed: {0}")]
    Migration(String),
    #[error(
        "the `{schema}` schema is behind this version of the service: {} pending migration(s): {}. \
         Apply them first with the service's `migrate` command (the migrate Job or the compose \
         `migrate` service; docs/deploy.md, \"Migrations\"), or set MIGRATE_ON_START=true to let \
         the service apply them itself",
        .pending.len(),
        .pending.join(", ")
    )]
    PendingMigrations {
        schema: String,
        pending: Vec<String>,
    },
    #[error(transparent)]
    Query(#[from] diesel::result::Error),
    #[error("database task failed: {0}")]
    Task(String),
}

impl DbError {
    /// True when the database refused text it cannot store: a NUL character (PostgreSQL's
    /// `invalid byte sequence for encoding "UTF8": 0x00`). That is the client's input, not a
    /// failure of ours.
    pub fn is_unstorable_text(&self) -> bool {
        match self {
            DbError::Query(diesel::result::Error::DatabaseError(_, info)) => {
                let message = info.message();
                message.contains("invalid byte sequence") || message.contains("0x00")
            }
            _ => false,
        }
    }

    /// True when the error is a unique-constraint violation (on either backend).
    pub fn is_unique_violation(&self) -> bool {
        matches!(
            self,
            DbError::Query(diesel::result::Error::DatabaseError(
                diesel::result::DatabaseErrorKind::UniqueViolation,
                _
            ))
        )
    }
}

/// A query's error, as diesel reports it.
pub type QueryError = diesel::result::Error;

/// `From<diesel::result::Error>` for a service's error type that converts from [`DbError`] (its
/// `Db(#[from] DbError)` variant), so that `?` takes a query's error straight into it.
#[macro_export]
macro_rules! from_query_error {
    ($ty:ty) => {
        impl From<$crate::db::QueryError> for $ty {
            fn from(e: $crate::db::QueryError) -> Self {
                <$ty>::from($crate::db::DbError::Query(e))
            }
        }
    };
}

/// The URL with any password hidden, for messages and logs.
pub fn redact_url(url: &str) -> String {
    if let Some((scheme, rest)) = url.split_once("://")
        && let Some((userinfo, host)) = rest.split_once('@')
    {
        let user = userinfo.split(':').next().unwrap_or("");
        return format!("{scheme}://{user}:***@{host}");
    }
    url.to_owned()
}

/// Pool settings; `schemas` names the PostgreSQL schemas a service owns, which in SQLite mode
/// become attached database files of the same name beside the main file.
#[derive(Debug, Clone)]
pub struct PoolOptions {
    pub max_size: u32,
    pub connect_timeout: Duration,
    pub schemas: Vec<String>,
    /// Create a missing PostgreSQL database (development mode only).
    pub create_database: bool,
}

impl Default for PoolOptions {
    fn default() -> Self {
        PoolOptions {
            max_size: 8,
            connect_timeout: Duration::from_secs(5),
            schemas: Vec::new(),
            create_database: false,
        }
    }
}

#[derive(Debug)]
struct SqliteSetup {
    attach: Vec<(String, String)>,
}

impl CustomizeConnection<DbConnection, diesel::r2d2::Error> for SqliteSetup {
    fn on_acquire(&self, conn: &mut DbConnection) -> Result<(), diesel::r2d2::Error> {
        let DbConnection::Sqlite(c) = conn else {
            return Ok(());
        };
        let mut sql = String::from("PRAGMA busy_timeout = 5000; PRAGMA foreign_keys = ON;");
        for (schema, path) in &self.attach {
            sql.push_str(&format!(
                "ATTACH DATABASE '{}' AS \"{schema}\"; PRAGMA \"{schema}\".journal_mode = WAL;",
                path.replace('\'', "''")
            ));
        }
        sql.push_str("PRAGMA journal_mode = WAL;");
        c.batch_execute(&sql)
            .map_err(diesel::r2d2::Error::QueryError)
    }
}

/// A pool of database connections, cheap to clone.
#[derive(Clone)]
pub struct Db {
    pool: Pool<ConnectionManager<DbConnection>>,
    backend: Backend,
}

impl Db {
    /// Connects once directly (to report the real error: r2d2 alone only times out), then
    /// builds the pool.
    pub async fn connect(url: &str, options: PoolOptions) -> Result<Db, DbError> {
        let url = url.to_owned();
        tokio::task::spawn_blocking(move || Self::connect_blocking(&url, options))
            .await
            .map_err(|e| DbError::Task(e.to_string()))?
    }

    pub fn connect_blocking(url: &str, options: PoolOptions) -> Result<Db, DbError> {
        let backend = Backend::of_url(url)?;
        let (conn_url, attach) = match backend {
            Backend::Postgres => {
                if options.create_database {
                    ensure_postgres_database(url)?;
                }
                (url.to_owned(), Vec::new())
            }
            Backend::Sqlite => {
                let path = url.trim_start_matches("sqlite://");
                let main = std::path::Path::new(path);
                let dir = main.parent().unwrap_or(std::path::Path::new("."));
                if !dir.as_os_str().is_empty() {
                    std::fs::create_dir_all(dir).map_err(|e| {
                        DbError::Config(format!("cannot create {}: {e}", dir.display()))
                    })?;
                }
                let attach = options
                    .schemas
                    .iter()
                    .map(|s| (s.clone(), dir.join(format!("{s}.db")).display().to_string()))
                    .collect();
                (path.to_owned(), attach)
            }
        };
        // A direct connection of the backend's own type reports the real reason a connection
        // fails (the multi-backend type only says the URL did not suit it).
        #[allow(clippy::disallowed_methods)] // SQLite's establish: no TLS involved
        let probe = match backend {
            Backend::Postgres => establish_postgres(&conn_url).map(drop),
            Backend::Sqlite => SqliteConnection::establish(&conn_url).map(drop),
        };
        probe.map_err(|e| DbError::Connect(format!("{} ({})", e, redact_url(&conn_url))))?;
        let manager = ConnectionManager::<DbConnection>::new(conn_url);
        let pool = Pool::builder()
            .max_size(options.max_size)
            .connection_timeout(options.connect_timeout)
            .connection_customizer(Box::new(SqliteSetup { attach }))
            .build(manager)
            .map_err(|e| DbError::Connect(e.to_string()))?;
        Ok(Db { pool, backend })
    }

    /// A service's database: connects (creating the database in development mode), attaches
    /// or uses the service's own `schema`, then either applies its migrations
    /// (`migrate_on_start`, as in development) or only checks that they have all been applied,
    /// refusing to start with [`DbError::PendingMigrations`] otherwise: in production the schema
    /// is changed by the `migrate` command before a rollout, not by the replicas that serve.
    pub async fn open_service(
        url: &str,
        schema: &str,
        mode: crate::config::Mode,
        migrate_on_start: bool,
        postgres: EmbeddedMigrations,
        sqlite: EmbeddedMigrations,
    ) -> Result<Db, DbError> {
        let db = Db::connect(url, Self::service_options(schema, mode)).await?;
        if migrate_on_start {
            db.migrate(postgres, sqlite).await?;
        } else {
            let pending = db.pending_migrations(postgres, sqlite).await?;
            if !pending.is_empty() {
                return Err(DbError::PendingMigrations {
                    schema: schema.to_owned(),
                    pending,
                });
            }
        }
        Ok(db)
    }

    /// The `migrate` command of a service: connects as [`Db::open_service`] does, applies the
    /// schema's pending migrations and returns their names (none when it was up to date).
    pub async fn migrate_service(
        url: &str,
        schema: &str,
        mode: crate::config::Mode,
        postgres: EmbeddedMigrations,
        sqlite: EmbeddedMigrations,
    ) -> Result<Vec<String>, DbError> {
        let db = Db::connect(
            url,
            PoolOptions {
                max_size: 1,
                ..Self::service_options(schema, mode)
            },
        )
        .await?;
        db.migrate(postgres, sqlite).await
    }

    fn service_options(schema: &str, mode: crate::config::Mode) -> PoolOptions {
        PoolOptions {
            schemas: vec![schema.to_owned()],
            create_database: mode.is_development(),
            ..Default::default()
        }
    }

    pub fn backend(&self) -> Backend {
        self.backend
    }

    fn get(&self) -> Result<PooledConnection<ConnectionManager<DbConnection>>, DbError> {
        self.pool
            .get()
            .map_err(|e| DbError::PoolTimeout(e.to_string()))
    }

    /// Runs `f` with a pooled connection on the blocking pool.
    pub async fn run<T, E, F>(&self, f: F) -> Result<T, E>
    where
        F: FnOnce(&mut DbConnection) -> Result<T, E> + Send + 'static,
        T: Send + 'static,
        E: From<DbError> + Send + 'static,
    {
        let db = self.clone();
        // The caller's span goes along: logs and events made on the blocking thread stay in its
        // trace.
        let span = tracing::Span::current();
        tokio::task::spawn_blocking(move || {
            let _entered = span.enter();
            let mut conn = db.get()?;
            f(&mut conn)
        })
        .await
        .map_err(|e| E::from(DbError::Task(e.to_string())))?
    }

    /// Applies the service's pending migrations (one set per backend, since DDL differs) and
    /// returns the names of those it applied.
    ///
    /// On PostgreSQL the migrations run under an advisory lock, so two migrations started
    /// together (a migrate Job re-run while replicas with `MIGRATE_ON_START=true` start)
    /// run one after the other instead of racing to create the same tables.
    pub async fn migrate(
        &self,
        postgres: EmbeddedMigrations,
        sqlite: EmbeddedMigrations,
    ) -> Result<Vec<String>, DbError> {
        self.run(move |conn| {
            let (versions, known) = match conn {
                DbConnection::Pg(c) => {
                    let known = migration_names::<diesel::pg::Pg>(&postgres)?;
                    c.batch_execute(&format!("SELECT pg_advisory_lock({MIGRATION_LOCK})"))?;
                    let applied = c
                        .run_pending_migrations(postgres)
                        .map(|v| v.iter().map(ToString::to_string).collect::<Vec<_>>());
                    c.batch_execute(&format!("SELECT pg_advisory_unlock({MIGRATION_LOCK})"))?;
                    (applied, known)
                }
                DbConnection::Sqlite(c) => {
                    let known = migration_names::<diesel::sqlite::Sqlite>(&sqlite)?;
                    let applied = c
                        .run_pending_migrations(sqlite)
                        .map(|v| v.iter().map(ToString::to_string).collect());
                    (applied, known)
                }
            };
            let versions = versions.map_err(|e| DbError::Migration(e.to_string()))?;
            // By name (`2026-11-28-000001_auth_init`), as the migrations' directories read.
            let applied: Vec<String> = known
                .into_iter()
                .filter(|(version, _)| versions.contains(version))
                .map(|(_, name)| name)
                .collect();
            if !applied.is_empty() {
                tracing::info!(applied = applied.join(", "), "database migrations applied");
            }
            Ok::<_, DbError>(applied)
        })
        .await
    }

    /// The names of the migrations this build carries that the database has not applied, in
    /// order. Read-only: unlike diesel's own harness, it never creates diesel's bookkeeping
    /// table, so a role without any CREATE right can run it. Versions the database has and
    /// this build does not (a newer release's expand step) are not a problem: see
    /// docs/deploy.md, "Changing the schema".
    pub async fn pending_migrations(
        &self,
        postgres: EmbeddedMigrations,
        sqlite: EmbeddedMigrations,
    ) -> Result<Vec<String>, DbError> {
        use diesel::RunQueryDsl;
        self.run(move |conn| {
            let (applied, known) = match conn {
                DbConnection::Pg(c) => (
                    applied_versions(diesel::sql_query(APPLIED_VERSIONS).load(c))?,
                    migration_names::<diesel::pg::Pg>(&postgres)?,
                ),
                DbConnection::Sqlite(c) => (
                    applied_versions(diesel::sql_query(APPLIED_VERSIONS).load(c))?,
                    migration_names::<diesel::sqlite::Sqlite>(&sqlite)?,
                ),
            };
            Ok(known
                .into_iter()
                .filter(|(version, _)| !applied.contains(version))
                .map(|(_, name)| name)
                .collect())
        })
        .await
    }

    /// A cheap round trip, for readiness.
    pub async fn ping(&self) -> Result<(), DbError> {
        self.run(|conn| conn.batch_execute("SELECT 1").map_err(DbError::from))
            .await
    }
}

/// diesel's bookkeeping table: one row per applied migration version (of every service, since
/// they share one database; their versions differ).
#[derive(diesel::QueryableByName)]
struct AppliedVersion {
    #[diesel(sql_type = diesel::sql_types::Text)]
    version: String,
}

/// Reads diesel's bookkeeping table, which a role without CREATE rights can do.
const APPLIED_VERSIONS: &str = "SELECT version FROM __diesel_schema_migrations";

/// The versions read by [`APPLIED_VERSIONS`]; none when the table does not exist yet.
fn applied_versions(
    rows: diesel::QueryResult<Vec<AppliedVersion>>,
) -> Result<std::collections::HashSet<String>, DbError> {
    match rows {
        Ok(rows) => Ok(rows.into_iter().map(|r| r.version).collect()),
        // PostgreSQL: `relation "…" does not exist`; SQLite: `no such table: …`.
        Err(diesel::result::Error::DatabaseError(_, info))
            if info.message().contains("does not exist")
                || info.message().contains("no such table") =>
        {
            Ok(Default::default())
        }
        Err(e) => Err(DbError::Query(e)),
    }
}

/// The (version, name) of each embedded migration, in order.
fn migration_names<DB: diesel::backend::Backend>(
    source: &EmbeddedMigrations,
) -> Result<Vec<(String, String)>, DbError> {
    use diesel::migration::MigrationSource;
    let mut migrations = MigrationSource::<DB>::migrations(source)
        .map_err(|e| DbError::Migration(e.to_string()))?
        .iter()
        .map(|m| (m.name().version().to_string(), m.name().to_string()))
        .collect::<Vec<_>>();
    migrations.sort();
    Ok(migrations)
}

/// Splits a PostgreSQL URL into the part before the database name, the name and the query.
fn split_database(url: &str) -> Option<(&str, &str, &str)> {
    let (scheme, rest) = url.split_once("://")?;
    let path_start = rest.find('/')? + scheme.len() + 3;
    let after = &url[path_start + 1..];
    let (name, query) = match after.find('?') {
        Some(i) => (&after[..i], &after[i..]),
        None => (after, ""),
    };
    Some((&url[..path_start], name, query))
}

/// Creates the database named in `url` when it does not exist (development convenience).
pub fn ensure_postgres_database(url: &str) -> Result<(), DbError> {
    let Some((base, name, query)) = split_database(url) else {
        return Ok(());
    };
    if name.is_empty() || establish_postgres(url).is_ok() {
        return Ok(());
    }
    if !name
        .chars()
        .all(|c| c.is_ascii_alphanumeric() || c == '_' || c == '-')
    {
        return Err(DbError::Config(format!(
            "refusing to create database `{name}`: unusual name"
        )));
    }
    let admin_url = format!("{base}/postgres{query}");
    let mut admin = establish_postgres(&admin_url)
        .map_err(|e| DbError::Connect(format!("{e} ({})", redact_url(&admin_url))))?;
    match admin.batch_execute(&format!("CREATE DATABASE \"{name}\"")) {
        Ok(()) => {
            tracing::info!(database = name, "created database");
            Ok(())
        }
        // Another service created it at the same moment.
        Err(diesel::result::Error::DatabaseError(_, info))
            if info.message().contains("already exists") =>
        {
            Ok(())
        }
        Err(e) => Err(DbError::Query(e)),
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn urls_are_redacted_and_split() {
        assert_eq!(
            redact_url("postgres://u:pw@h:5432/db"),
            "postgres://u:***@h:5432/db"
        );
        assert_eq!(
            split_database("postgres://u@h:5432/db?sslmode=disable"),
            Some(("postgres://u@h:5432", "db", "?sslmode=disable"))
        );
        assert!(Backend::of_url("mysql://x").is_err());
    }

    #[tokio::test]
    async fn sqlite_pool_attaches_schemas_and_runs_queries() {
        let dir = std::env::temp_dir().join(format!("pl-db-{}", uuid::Uuid::new_v4()));
        let url = format!("sqlite://{}/main.db", dir.display());
        let db = Db::connect(
            &url,
            PoolOptions {
                schemas: vec!["demo".into()],
                ..Default::default()
            },
        )
        .await
        .unwrap();
        db.run(|c| {
            c.batch_execute(
                "CREATE TABLE demo.items (id INTEGER PRIMARY KEY, name TEXT NOT NULL);
                 INSERT INTO demo.items (name) VALUES ('seven');",
            )
            .map_err(DbError::from)
        })
        .await
        .unwrap();
        db.ping().await.unwrap();
        assert!(dir.join("demo.db").exists());
        let _ = std::fs::remove_dir_all(dir);
    }
}
