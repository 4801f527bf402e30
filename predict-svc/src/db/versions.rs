use super::schema::model_versions as mv;
use common::db::{DbConnection, DbError};
use diesel::prelude::*;
use serde::Serialize;

pub const ACTIVE: &str = "active";
pub const CANDIDATE: &str = "candidate";
pub const RETIRED: &str = "retired";
// The other stages of a rollout (`rollout::Stage`, snake case) share the column.

/// A registry row without its artifact (listing never loads the bytes).
#[derive(Debug, Clone, Queryable, Selectable, Serialize)]
#[diesel(table_name = mv)]
pub struct VersionInfo {
    #[serde(skip)]
    pub id: String,
    pub name: String,
    pub version: i32,
    pub sha256: String,
    #[serde(skip)]
    pub metrics: String,
    pub status: String,
    pub source: String,
    pub source_job_id: Option<String>,
    #[serde(serialize_with = "utc")]
    pub created_at: chrono::NaiveDateTime,
    #[serde(serialize_with = "utc_opt")]
    pub promoted_at: Option<chrono::NaiveDateTime>,
    /// The share of users this version serves.
    pub traffic_share: f64,
}

fn utc<S: serde::Serializer>(t: &chrono::NaiveDateTime, s: S) -> Result<S::Ok, S::Error> {
    s.serialize_str(&t.and_utc().to_rfc3339())
}

fn utc_opt<S: serde::Serializer>(
    t: &Option<chrono::NaiveDateTime>,
    s: S,
) -> Result<S::Ok, S::Error> {
    match t {
        Some(t) => utc(t, s),
        None => s.serialize_none(),
    }
}

impl VersionInfo {
    pub fn to_json(&self) -> serde_json::Value {
        let mut v = serde_json::to_value(self).unwrap_or_default();
        v["metrics"] = serde_json::from_str(&self.metrics).unwrap_or_default();
        v
    }
}

#[derive(Debug, Clone, Insertable)]
#[diesel(table_name = mv)]
pub struct NewVersion {
    pub id: String,
    pub name: String,
    pub version: i32,
    pub artifact: Vec<u8>,
    pub sha256: String,
    pub metrics: String,
    pub status: String,
    pub source: String,
    pub source_job_id: Option<String>,
    pub created_at: chrono::NaiveDateTime,
    pub promoted_at: Option<chrono::NaiveDateTime>,
    pub traffic_share: f64,
}

pub fn list(conn: &mut DbConnection) -> Result<Vec<VersionInfo>, DbError> {
    Ok(mv::table
        .order((mv::name.asc(), mv::version.desc()))
        .select(VersionInfo::as_select())
        .load(conn)?)
}

pub fn count(conn: &mut DbConnection) -> Result<i64, DbError> {
    Ok(mv::table.count().get_result(conn)?)
}

pub fn active(conn: &mut DbConnection) -> Result<Vec<VersionInfo>, DbError> {
    Ok(mv::table
        .filter(mv::status.eq(ACTIVE))
        .select(VersionInfo::as_select())
        .load(conn)?)
}

pub fn find(
    conn: &mut DbConnection,
    name: &str,
    version: i32,
) -> Result<Option<VersionInfo>, DbError> {
    Ok(mv::table
        .filter(mv::name.eq(name))
        .filter(mv::version.eq(version))
        .select(VersionInfo::as_select())
        .first(conn)
        .optional()?)
}

pub fn find_by_job(conn: &mut DbConnection, job_id: &str) -> Result<Option<VersionInfo>, DbError> {
    Ok(mv::table
        .filter(mv::source_job_id.eq(job_id))
        .select(VersionInfo::as_select())
        .first(conn)
        .optional()?)
}

pub fn artifact(
    conn: &mut DbConnection,
    name: &str,
    version: i32,
) -> Result<Option<Vec<u8>>, DbError> {
    Ok(mv::table
        .filter(mv::name.eq(name))
        .filter(mv::version.eq(version))
        .select(mv::artifact)
        .first(conn)
        .optional()?)
}

pub fn next_version(conn: &mut DbConnection, name: &str) -> Result<i32, DbError> {
    let max: Option<i32> = mv::table
        .filter(mv::name.eq(name))
        .select(diesel::dsl::max(mv::version))
        .first(conn)?;
    Ok(max.unwrap_or(0) + 1)
}

pub fn insert(conn: &mut DbConnection, version: &NewVersion) -> Result<(), DbError> {
    diesel::insert_into(mv::table)
        .values(version)
        .execute(conn)?;
    Ok(())
}

/// Makes `version` the active one of `name` (all its users) and retires the previous; one
/// transaction. Returns false when no such version exists.
pub fn promote(conn: &mut DbConnection, name: &str, version: i32) -> Result<bool, DbError> {
    conn.transaction::<bool, DbError, _>(|c| {
        if find(c, name, version)?.is_none() {
            return Ok(false);
        }
        diesel::update(
            mv::table
                .filter(mv::name.eq(name))
                .filter(mv::status.eq(ACTIVE))
                .filter(mv::version.ne(version)),
        )
        .set((mv::status.eq(RETIRED), mv::traffic_share.eq(0.0)))
        .execute(c)?;
        diesel::update(
            mv::table
                .filter(mv::name.eq(name))
                .filter(mv::version.eq(version)),
        )
        .set((
            mv::status.eq(ACTIVE),
            mv::traffic_share.eq(1.0),
            mv::promoted_at.eq(Some(super::now())),
        ))
        .execute(c)?;
        Ok(true)
    })
}

/// Sets a version's stage (a rollout's) and the share of users it serves; the active version
/// of the model serves the rest.
pub fn set_stage(
    conn: &mut DbConnection,
    name: &str,
    version: i32,
    stage: &str,
    share: f64,
) -> Result<(), DbError> {
    conn.transaction::<(), DbError, _>(|c| {
        diesel::update(
            mv::table
                .filter(mv::name.eq(name))
                .filter(mv::version.eq(version)),
        )
        .set((mv::status.eq(stage), mv::traffic_share.eq(share)))
        .execute(c)?;
        diesel::update(
            mv::table
                .filter(mv::name.eq(name))
                .filter(mv::status.eq(ACTIVE)),
        )
        .set(mv::traffic_share.eq(1.0 - share))
        .execute(c)?;
        Ok(())
    })
}
