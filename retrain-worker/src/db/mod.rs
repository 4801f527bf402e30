//! The `retrain` schema: one row per retrain job, its state, progress and outcome.

pub mod jobs;
pub mod schema;

use diesel_migrations::{EmbeddedMigrations, embed_migrations};

pub const POSTGRES_MIGRATIONS: EmbeddedMigrations = embed_migrations!("migrations/postgres");
pub const SQLITE_MIGRATIONS: EmbeddedMigrations = embed_migrations!("migrations/sqlite");

/// The `retrain` schema, for the `migrate` command (`retrain-worker migrate`).
pub const SCHEMA: common::migrate::Schema = common::migrate::Schema {
    name: "retrain",
    postgres: POSTGRES_MIGRATIONS,
    sqlite: SQLITE_MIGRATIONS,
};

pub use common::db::now;

/// A stored timestamp as RFC 3339 (UTC).
pub fn rfc3339(t: chrono::NaiveDateTime) -> String {
    t.and_utc()
        .to_rfc3339_opts(chrono::SecondsFormat::Millis, true)
}
