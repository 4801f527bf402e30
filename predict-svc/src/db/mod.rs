//! The `models` schema: the model registry. Queries run on PostgreSQL and SQLite alike.

pub mod rollouts;
pub mod schema;
pub mod versions;

common::service_schema!("models");

pub use common::db::now;
