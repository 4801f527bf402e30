//! The `retrain` schema: one row per retrain job, its state, progress and outcome.

pub mod jobs;
pub mod schema;

common::service_schema!("retrain");

pub use common::db::now;

/// A stored timestamp as RFC 3339 (UTC).
pub fn rfc3339(t: chrono::NaiveDateTime) -> String {
    t.and_utc()
        .to_rfc3339_opts(chrono::SecondsFormat::Millis, true)
}
