//! The `auth` schema: users and refresh tokens. Queries run on PostgreSQL and SQLite alike.

pub mod schema;
pub mod tokens;
pub mod users;

use diesel_migrations::{EmbeddedMigrations, embed_migrations};

pub const POSTGRES_MIGRATIONS: EmbeddedMigrations = embed_migrations!("migrations/postgres");
pub const SQLITE_MIGRATIONS: EmbeddedMigrations = embed_migrations!("migrations/sqlite");

/// The `auth` schema, for the `migrate` command (`auth-svc migrate`).
pub const SCHEMA: common::migrate::Schema = common::migrate::Schema {
    name: "auth",
    postgres: POSTGRES_MIGRATIONS,
    sqlite: SQLITE_MIGRATIONS,
};

pub use common::db::now;
