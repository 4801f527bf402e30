//! The `feedback` schema: feedback, the users whose labels are excluded, and the outbox. Queries
//! run on PostgreSQL and SQLite alike, except the few written per backend (a lease claim, day
//! buckets, a training snapshot).

pub mod feedback;
pub mod labels;
pub mod outbox;
pub mod report;
pub mod schema;

common::service_schema!("feedback");

/// The backend type of queries boxed for either database.
pub type Backend = <common::db::DbConnection as diesel::Connection>::Backend;

pub use common::db::now;

/// The ISO 8601 form of a stored timestamp (UTC, microseconds), as the seed's `isoformat()`
/// with the zone made explicit.
pub fn iso8601(t: chrono::NaiveDateTime) -> String {
    t.and_utc()
        .to_rfc3339_opts(chrono::SecondsFormat::Micros, true)
}
