//! The `models` schema: the model registry. Queries run on PostgreSQL and SQLite alike.

pub mod schema;
pub mod versions;

use diesel_migrations::{EmbeddedMigrations, embed_migrations};

pub const POSTGRES_MIGRATIONS: EmbeddedMigrations = embed_migrations!("migrations/postgres");
pub const SQLITE_MIGRATIONS: EmbeddedMigrations = embed_migrations!("migrations/sqlite");

pub use common::db::now;
