//! The `auth` schema: users and refresh tokens. Queries run on PostgreSQL and SQLite alike.

pub mod schema;
pub mod tokens;
pub mod users;

common::service_schema!("auth");

pub use common::db::now;
