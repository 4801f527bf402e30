//! What training reads: the labelled feedback of a snapshot, less the users an admin excluded.
//!
//! A job reads its labels page by page, by id. Ids are drawn when a row is inserted but become
//! visible when its transaction commits, so on PostgreSQL a row can commit after a row with a
//! higher id that a page already passed: paging by id alone would then read a set that depends
//! on timing (the late row missed by a job that started after it committed, or read by one that
//! started before). So a job first takes a snapshot of what is committed and reads only that,
//! on every page:
//!
//! - PostgreSQL: `pg_current_snapshot()`; each row keeps the transaction that wrote it
//!   (`writer_xid`) and a page keeps the rows `pg_visible_in_snapshot` says were committed
//!   before the snapshot. Ids then only order the pages: every row of the snapshot is read once,
//!   and no row committed later is read, whatever the order of ids and commits.
//! - SQLite has one writer at a time, so ids are drawn in commit order and the snapshot is the
//!   highest id committed.

use super::schema::{feedback as fb, label_exclusions as le};
use common::db::{DbConnection, DbError};
use diesel::prelude::*;
use diesel::sql_types::{BigInt, Binary, Bool, Integer, Nullable, Text, Timestamp};

/// The longest snapshot accepted back from a reader (PostgreSQL lists the transactions in
/// progress in it, at most one per connection).
pub const MAX_SNAPSHOT_LEN: usize = 65_536;

/// A labelled example with the input the model saw, for training.
#[derive(Debug, Clone, QueryableByName)]
pub struct TrainingExample {
    #[diesel(sql_type = BigInt)]
    pub id: i64,
    #[diesel(sql_type = Text)]
    pub user_id: String,
    #[diesel(sql_type = Bool)]
    pub trusted: bool,
    #[diesel(sql_type = Nullable<Integer>)]
    pub label: Option<i32>,
    #[diesel(sql_type = Nullable<Text>)]
    pub model: Option<String>,
    #[diesel(sql_type = Nullable<Integer>)]
    pub model_version: Option<i32>,
    #[diesel(sql_type = Nullable<Binary>)]
    pub input: Option<Vec<u8>>,
    #[diesel(sql_type = Timestamp)]
    pub created_at: chrono::NaiveDateTime,
}

#[derive(QueryableByName)]
struct Taken {
    #[diesel(sql_type = Text)]
    snapshot: String,
}

/// A snapshot of what is committed now, as the text a reader passes back.
pub fn take_snapshot(conn: &mut DbConnection) -> Result<String, DbError> {
    let taken: Taken = match conn {
        DbConnection::Pg(c) => {
            diesel::sql_query("SELECT pg_current_snapshot()::text AS snapshot").get_result(c)?
        }
        DbConnection::Sqlite(c) => diesel::sql_query(
            "SELECT CAST(COALESCE(MAX(id), 0) AS TEXT) AS snapshot FROM feedback.feedback",
        )
        .get_result(c)?,
    };
    Ok(taken.snapshot)
}

/// Whether `text` is a snapshot of PostgreSQL's (`xmin:xmax:xip,…`, in the ranges its parser
/// accepts).
fn is_pg_snapshot(text: &str) -> bool {
    let number = |s: &str| {
        (!s.is_empty() && s.len() <= 20 && s.bytes().all(|b| b.is_ascii_digit()))
            .then(|| s.parse::<u64>().ok())
            .flatten()
    };
    let mut parts = text.split(':');
    let (Some(xmin), Some(xmax), Some(xip), None) = (
        parts.next().and_then(number),
        parts.next().and_then(number),
        parts.next(),
        parts.next(),
    ) else {
        return false;
    };
    if xmin == 0 || xmin > xmax {
        return false;
    }
    let mut last = xmin;
    xip.is_empty()
        || xip.split(',').all(|x| match number(x) {
            Some(x) if x >= last && x < xmax => {
                last = x;
                true
            }
            _ => false,
        })
}

const PAGE_POSTGRES: &str = "
    SELECT f.id, f.user_id, f.trusted, f.label, f.model, f.model_version, f.input, f.created_at
      FROM feedback.feedback f
     WHERE f.id > $1
       AND f.label IS NOT NULL AND f.input IS NOT NULL
       AND pg_visible_in_snapshot(f.writer_xid::text::xid8, $2::pg_snapshot)
       AND NOT EXISTS (SELECT 1 FROM feedback.label_exclusions e WHERE e.user_id = f.user_id)
     ORDER BY f.id
     LIMIT $3";

const PAGE_SQLITE: &str = "
    SELECT f.id, f.user_id, f.trusted, f.label, f.model, f.model_version, f.input, f.created_at
      FROM feedback.feedback f
     WHERE f.id > ? AND f.id <= ?
       AND f.label IS NOT NULL AND f.input IS NOT NULL
       AND NOT EXISTS (SELECT 1 FROM feedback.label_exclusions e WHERE e.user_id = f.user_id)
     ORDER BY f.id
     LIMIT ?";

/// Labelled feedback with an input, of users not excluded, committed before the snapshot
/// `as_of`, in id order after the cursor; `Ok(None)` when `as_of` is not a snapshot this
/// database took.
pub fn labelled_page(
    conn: &mut DbConnection,
    as_of: &str,
    after: i64,
    limit: i64,
) -> Result<Option<Vec<TrainingExample>>, DbError> {
    if as_of.len() > MAX_SNAPSHOT_LEN {
        return Ok(None);
    }
    Ok(Some(match conn {
        DbConnection::Pg(c) => {
            if !is_pg_snapshot(as_of) {
                return Ok(None);
            }
            diesel::sql_query(PAGE_POSTGRES)
                .bind::<BigInt, _>(after)
                .bind::<Text, _>(as_of)
                .bind::<BigInt, _>(limit)
                .load(c)?
        }
        DbConnection::Sqlite(c) => {
            let Some(until) = as_of.parse::<i64>().ok().filter(|n| *n >= 0) else {
                return Ok(None);
            };
            diesel::sql_query(PAGE_SQLITE)
                .bind::<BigInt, _>(after)
                .bind::<BigInt, _>(until)
                .bind::<BigInt, _>(limit)
                .load(c)?
        }
    }))
}

/// A user whose labels no training job reads.
#[derive(Debug, Clone, PartialEq, Eq, Queryable, Selectable, Insertable)]
#[diesel(table_name = le)]
pub struct Exclusion {
    pub user_id: String,
    pub excluded_by: String,
    pub excluded_at: chrono::NaiveDateTime,
}

pub fn exclusion(conn: &mut DbConnection, user_id: &str) -> Result<Option<Exclusion>, DbError> {
    Ok(le::table
        .find(user_id)
        .select(Exclusion::as_select())
        .first(conn)
        .optional()?)
}

pub fn insert_exclusion(conn: &mut DbConnection, new: &Exclusion) -> Result<(), DbError> {
    diesel::insert_into(le::table).values(new).execute(conn)?;
    Ok(())
}

/// How many labelled feedback the user sent (with an input or not).
pub fn labels_of(conn: &mut DbConnection, user_id: &str) -> Result<i64, DbError> {
    Ok(fb::table
        .filter(fb::user_id.eq(user_id))
        .filter(fb::label.is_not_null())
        .count()
        .get_result(conn)?)
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn only_snapshots_postgres_would_parse_are_passed_to_it() {
        for good in ["5:5:", "5:9:", "5:9:5", "5:9:5,7,8", "1:2:1"] {
            assert!(is_pg_snapshot(good), "{good}");
        }
        for bad in [
            "",
            "5",
            "5:9",
            "0:9:",
            "9:5:",
            "5:9:9",
            "5:9:4",
            "5:9:7,6",
            "5:9:6,",
            "a:9:",
            "5:9::",
            "5:9:6:7",
            "-1:9:",
            "5:99999999999999999999999:",
        ] {
            assert!(!is_pg_snapshot(bad), "{bad}");
        }
    }
}
