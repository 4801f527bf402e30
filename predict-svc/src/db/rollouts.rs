//! Rollouts, their audit table and their labelled outcomes. Every change to an open rollout
//! happens in one transaction that first takes the model's rollout lock ([`lock`]): one
//! controller at a time, on any replica.

use super::schema::{
    excluded_labellers as el, rollout_outcomes as ro, rollout_transitions as rt, rollouts as r,
};
use common::db::{DbConnection, DbError};
use diesel::prelude::*;

#[derive(Debug, Clone, Queryable, Selectable, Insertable, AsChangeset)]
#[diesel(table_name = r)]
#[diesel(treat_none_as_null = true)]
pub struct RolloutRow {
    pub id: String,
    pub model: String,
    pub candidate_version: i32,
    pub active_version: i32,
    pub stage: String,
    pub share: f64,
    pub paused: bool,
    pub verdict: Option<String>,
    /// The serialised `rollout::Rollout`.
    pub state: String,
    pub job_id: Option<String>,
    pub started_at: chrono::NaiveDateTime,
    pub decided_at: Option<chrono::NaiveDateTime>,
    pub progress_at: Option<chrono::NaiveDateTime>,
}

#[derive(Debug, Clone, Queryable, Selectable)]
#[diesel(table_name = rt)]
pub struct TransitionRow {
    pub id: i64,
    pub rollout_id: String,
    pub from_stage: String,
    pub to_stage: String,
    pub share: f64,
    pub reason: String,
    pub actor: Option<String>,
    pub stats: String,
    pub at: chrono::NaiveDateTime,
}

#[derive(Debug, Clone, Insertable)]
#[diesel(table_name = rt)]
pub struct NewTransition {
    pub rollout_id: String,
    pub from_stage: String,
    pub to_stage: String,
    pub share: f64,
    pub reason: String,
    pub actor: Option<String>,
    pub stats: String,
    pub at: chrono::NaiveDateTime,
}

#[derive(Debug, Clone, Queryable, Selectable)]
#[diesel(table_name = ro)]
pub struct OutcomeRow {
    pub seq: i64,
    pub feedback_id: i64,
    pub user_id: String,
    pub requested: bool,
    pub active_correct: Option<bool>,
    pub candidate_correct: Option<bool>,
    pub applied: bool,
}

#[derive(Debug, Clone, Insertable)]
#[diesel(table_name = ro)]
pub struct NewOutcome {
    pub rollout_id: String,
    pub feedback_id: i64,
    pub user_id: String,
    pub requested: bool,
    pub active_correct: Option<bool>,
    pub candidate_correct: Option<bool>,
    pub applied: bool,
    pub at: chrono::NaiveDateTime,
}

impl OutcomeRow {
    pub fn outcome(&self) -> rollout::Outcome {
        rollout::Outcome {
            user: self.user_id.clone(),
            requested: self.requested,
            active_correct: self.active_correct,
            candidate_correct: self.candidate_correct,
        }
    }
}

/// Takes the rollout lock of `model` until the transaction ends: a PostgreSQL advisory lock
/// (every replica); SQLite has one writer at a time already.
pub fn lock(conn: &mut DbConnection, model: &str) -> Result<(), DbError> {
    if let DbConnection::Pg(pg) = conn {
        let key = lock_key(model);
        diesel::sql_query(format!("SELECT pg_advisory_xact_lock({key})")).execute(pg)?;
    }
    Ok(())
}

/// A stable 63-bit key for the model's lock.
fn lock_key(model: &str) -> i64 {
    let digest = common::digest::sha256_hex(format!("rollout-lock:{model}").as_bytes());
    i64::from_str_radix(&digest[..15], 16).unwrap_or(0)
}

pub fn insert(conn: &mut DbConnection, row: &RolloutRow) -> Result<(), DbError> {
    diesel::insert_into(r::table).values(row).execute(conn)?;
    Ok(())
}

pub fn save(conn: &mut DbConnection, row: &RolloutRow) -> Result<(), DbError> {
    diesel::update(r::table.find(&row.id))
        .set(row)
        .execute(conn)?;
    Ok(())
}

pub fn find(conn: &mut DbConnection, id: &str) -> Result<Option<RolloutRow>, DbError> {
    Ok(r::table
        .find(id)
        .select(RolloutRow::as_select())
        .first(conn)
        .optional()?)
}

/// The rollout a retrain job started, if any.
pub fn of_job(conn: &mut DbConnection, job_id: &str) -> Result<Option<RolloutRow>, DbError> {
    Ok(r::table
        .filter(r::job_id.eq(job_id))
        .select(RolloutRow::as_select())
        .first(conn)
        .optional()?)
}

/// The open rollout of `model`, if any.
pub fn open_of(conn: &mut DbConnection, model: &str) -> Result<Option<RolloutRow>, DbError> {
    Ok(r::table
        .filter(r::model.eq(model))
        .filter(r::verdict.is_null())
        .select(RolloutRow::as_select())
        .first(conn)
        .optional()?)
}

/// Every open rollout.
pub fn open(conn: &mut DbConnection) -> Result<Vec<RolloutRow>, DbError> {
    Ok(r::table
        .filter(r::verdict.is_null())
        .order(r::model.asc())
        .select(RolloutRow::as_select())
        .load(conn)?)
}

/// The rollouts of `model`, newest first, at most `limit`.
pub fn of_model(
    conn: &mut DbConnection,
    model: &str,
    limit: i64,
) -> Result<Vec<RolloutRow>, DbError> {
    Ok(r::table
        .filter(r::model.eq(model))
        .order(r::started_at.desc())
        .limit(limit)
        .select(RolloutRow::as_select())
        .load(conn)?)
}

pub fn add_transition(conn: &mut DbConnection, row: &NewTransition) -> Result<(), DbError> {
    diesel::insert_into(rt::table).values(row).execute(conn)?;
    Ok(())
}

/// The transitions of these rollouts, oldest first.
pub fn transitions_of(
    conn: &mut DbConnection,
    rollout_ids: &[String],
) -> Result<Vec<TransitionRow>, DbError> {
    Ok(rt::table
        .filter(rt::rollout_id.eq_any(rollout_ids))
        .order(rt::id.asc())
        .select(TransitionRow::as_select())
        .load(conn)?)
}

/// Stores an outcome unless this feedback was taken already; whether it was new.
pub fn add_outcome(conn: &mut DbConnection, row: &NewOutcome) -> Result<bool, DbError> {
    let taken = ro::table
        .filter(ro::rollout_id.eq(&row.rollout_id))
        .filter(ro::feedback_id.eq(row.feedback_id))
        .count()
        .get_result::<i64>(conn)?;
    if taken > 0 {
        return Ok(false);
    }
    diesel::insert_into(ro::table).values(row).execute(conn)?;
    Ok(true)
}

/// The outcomes of a rollout not excluded, in the order they were taken; only those not
/// applied yet when `pending`.
pub fn outcomes(
    conn: &mut DbConnection,
    rollout_id: &str,
    pending: bool,
) -> Result<Vec<OutcomeRow>, DbError> {
    let mut query = ro::table
        .filter(ro::rollout_id.eq(rollout_id))
        .filter(ro::excluded.eq(false))
        .into_boxed();
    if pending {
        query = query.filter(ro::applied.eq(false));
    }
    Ok(query
        .order(ro::seq.asc())
        .select(OutcomeRow::as_select())
        .load(conn)?)
}

pub fn mark_applied(conn: &mut DbConnection, rollout_id: &str) -> Result<(), DbError> {
    diesel::update(
        ro::table
            .filter(ro::rollout_id.eq(rollout_id))
            .filter(ro::applied.eq(false)),
    )
    .set(ro::applied.eq(true))
    .execute(conn)?;
    Ok(())
}

/// Marks a user's outcomes in a rollout excluded; how many.
pub fn exclude_user(
    conn: &mut DbConnection,
    rollout_id: &str,
    user_id: &str,
) -> Result<usize, DbError> {
    Ok(diesel::update(
        ro::table
            .filter(ro::rollout_id.eq(rollout_id))
            .filter(ro::user_id.eq(user_id))
            .filter(ro::excluded.eq(false)),
    )
    .set(ro::excluded.eq(true))
    .execute(conn)?)
}

/// Records that a user's labels are excluded (idempotent).
pub fn exclude_labeller(conn: &mut DbConnection, user_id: &str) -> Result<(), DbError> {
    let known = el::table.find(user_id).count().get_result::<i64>(conn)?;
    if known == 0 {
        diesel::insert_into(el::table)
            .values((el::user_id.eq(user_id), el::at.eq(super::now())))
            .execute(conn)?;
    }
    Ok(())
}

pub fn is_excluded(conn: &mut DbConnection, user_id: &str) -> Result<bool, DbError> {
    Ok(el::table.find(user_id).count().get_result::<i64>(conn)? > 0)
}
