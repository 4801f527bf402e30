//! Aggregates for the admin report, computed by the database (GROUP BY), never by loading rows.

use super::schema::feedback as fb;
use common::db::{DbConnection, DbError};
use diesel::dsl::count_star;
use diesel::prelude::*;
use diesel::sql_types::{BigInt, Bool, Text, Timestamp};

/// How many feedback rows have this model, version and verdict.
#[derive(Debug, Clone, PartialEq, Eq, Queryable)]
pub struct VersionCount {
    pub model: Option<String>,
    pub model_version: Option<i32>,
    pub correct: bool,
    pub count: i64,
}

pub fn by_version(conn: &mut DbConnection) -> Result<Vec<VersionCount>, DbError> {
    Ok(fb::table
        .group_by((fb::model, fb::model_version, fb::correct))
        .select((fb::model, fb::model_version, fb::correct, count_star()))
        .load(conn)?)
}

/// How many labelled rows have this true label and prediction.
#[derive(Debug, Clone, PartialEq, Eq, Queryable)]
pub struct ConfusionCount {
    pub label: Option<i32>,
    pub prediction: i32,
    pub count: i64,
}

pub fn confusion(conn: &mut DbConnection) -> Result<Vec<ConfusionCount>, DbError> {
    Ok(fb::table
        .filter(fb::label.is_not_null())
        .group_by((fb::label, fb::prediction))
        .select((fb::label, fb::prediction, count_star()))
        .load(conn)?)
}

/// How many rows of one verdict arrived on a day (UTC, `YYYY-MM-DD`).
#[derive(Debug, Clone, PartialEq, Eq, QueryableByName)]
pub struct DayCount {
    #[diesel(sql_type = Text)]
    pub day: String,
    #[diesel(sql_type = Bool)]
    pub correct: bool,
    #[diesel(sql_type = BigInt)]
    pub count: i64,
}

// The day of a timestamp is spelt differently by each backend.
const DAILY_POSTGRES: &str = "
    SELECT to_char(created_at, 'YYYY-MM-DD') AS day, correct, COUNT(*) AS count
      FROM feedback.feedback
     WHERE created_at >= $1
     GROUP BY 1, 2";

const DAILY_SQLITE: &str = "
    SELECT strftime('%Y-%m-%d', created_at) AS day, correct, COUNT(*) AS count
      FROM feedback.feedback
     WHERE created_at >= ?
     GROUP BY 1, 2";

pub fn daily_since(
    conn: &mut DbConnection,
    since: chrono::NaiveDateTime,
) -> Result<Vec<DayCount>, DbError> {
    Ok(match conn {
        DbConnection::Pg(c) => diesel::sql_query(DAILY_POSTGRES)
            .bind::<Timestamp, _>(since)
            .load(c)?,
        DbConnection::Sqlite(c) => diesel::sql_query(DAILY_SQLITE)
            .bind::<Timestamp, _>(since)
            .load(c)?,
    })
}
