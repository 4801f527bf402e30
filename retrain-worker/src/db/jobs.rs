use super::schema::jobs;
use common::db::{DbConnection, DbError};
use contracts::jobs::{JobProgress, JobState, RetrainMetrics, Stage};
use diesel::prelude::*;
use serde_json::{Value, json};

pub const QUEUED: &str = "queued";
pub const RUNNING: &str = "running";
pub const SUCCEEDED: &str = "succeeded";
pub const REJECTED: &str = "rejected";
pub const FAILED: &str = "failed";
pub const STATES: [&str; 5] = [QUEUED, RUNNING, SUCCEEDED, REJECTED, FAILED];

/// Whether a job in this state is over (its outcome is stored).
pub fn is_final(state: &str) -> bool {
    matches!(state, SUCCEEDED | REJECTED | FAILED)
}

#[derive(Debug, Clone, Queryable, Selectable, Insertable)]
#[diesel(table_name = jobs)]
pub struct Job {
    pub id: String,
    pub model: String,
    pub epochs: i32,
    pub from_scratch: bool,
    pub mnist_sample: Option<i32>,
    pub state: String,
    pub progress: String,
    pub metrics: Option<String>,
    pub reason: Option<String>,
    pub model_version: Option<i32>,
    pub requested_by: String,
    pub attempts: i32,
    pub worker: Option<String>,
    pub created_at: chrono::NaiveDateTime,
    pub started_at: Option<chrono::NaiveDateTime>,
    pub finished_at: Option<chrono::NaiveDateTime>,
}

impl Job {
    /// The job as the API shows it.
    pub fn to_json(&self) -> Value {
        let parse = |raw: &str| serde_json::from_str::<Value>(raw).unwrap_or(Value::Null);
        json!({
            "job_id": self.id,
            "model": self.model,
            "epochs": self.epochs,
            "from_scratch": self.from_scratch,
            "mnist_sample": self.mnist_sample,
            "state": self.state,
            "progress": parse(&self.progress),
            "metrics": self.metrics.as_deref().map(parse),
            "reason": self.reason,
            "model_version": self.model_version,
            "promoted": false,
            "requested_by": self.requested_by,
            "attempts": self.attempts,
            "worker": self.worker,
            "created_at": super::rfc3339(self.created_at),
            "started_at": self.started_at.map(super::rfc3339),
            "finished_at": self.finished_at.map(super::rfc3339),
        })
    }
}

pub fn insert(conn: &mut DbConnection, job: &Job) -> Result<(), DbError> {
    diesel::insert_into(jobs::table).values(job).execute(conn)?;
    Ok(())
}

pub fn delete(conn: &mut DbConnection, id: &str) -> Result<(), DbError> {
    diesel::delete(jobs::table.find(id)).execute(conn)?;
    Ok(())
}

pub fn find(conn: &mut DbConnection, id: &str) -> Result<Option<Job>, DbError> {
    Ok(jobs::table
        .find(id)
        .select(Job::as_select())
        .first(conn)
        .optional()?)
}

/// The newest jobs first, optionally in one state, older than `before` (a job id).
pub fn list(
    conn: &mut DbConnection,
    state: Option<&str>,
    before: Option<&str>,
    limit: i64,
) -> Result<Vec<Job>, DbError> {
    let mut query = jobs::table
        .select(Job::as_select())
        .order(jobs::id.desc())
        .limit(limit)
        .into_boxed();
    if let Some(state) = state {
        query = query.filter(jobs::state.eq(state.to_owned()));
    }
    if let Some(before) = before {
        query = query.filter(jobs::id.lt(before.to_owned()));
    }
    Ok(query.load(conn)?)
}

/// Marks a job running on `worker` (again, when another worker's attempt died), unless its
/// outcome is already stored. Returns the job as it is now.
pub fn start(conn: &mut DbConnection, id: &str, worker: &str) -> Result<Option<Job>, DbError> {
    let now = super::now();
    diesel::update(
        jobs::table
            .find(id)
            .filter(jobs::state.eq_any([QUEUED, RUNNING])),
    )
    .set((
        jobs::state.eq(RUNNING),
        jobs::attempts.eq(jobs::attempts + 1),
        jobs::worker.eq(Some(worker)),
        jobs::started_at.eq(Some(now)),
        jobs::progress.eq(progress_text(&JobProgress::at(Stage::Starting))),
    ))
    .execute(conn)?;
    find(conn, id)
}

/// A progress as the `progress` column holds it.
pub fn progress_text(progress: &JobProgress) -> String {
    serde_json::to_string(progress).unwrap_or_default()
}

/// Records progress of a running job.
pub fn set_progress(
    conn: &mut DbConnection,
    id: &str,
    progress: &JobProgress,
) -> Result<(), DbError> {
    diesel::update(jobs::table.find(id).filter(jobs::state.eq(RUNNING)))
        .set((jobs::progress.eq(progress_text(progress)),))
        .execute(conn)?;
    Ok(())
}

/// Puts a running job back in the queue's hands (its worker is stopping).
pub fn requeue(conn: &mut DbConnection, id: &str, why: &str) -> Result<(), DbError> {
    diesel::update(jobs::table.find(id).filter(jobs::state.eq(RUNNING)))
        .set((
            jobs::state.eq(QUEUED),
            jobs::progress.eq(progress_text(&JobProgress {
                note: Some(why.to_owned()),
                ..JobProgress::at(Stage::Queued)
            })),
        ))
        .execute(conn)?;
    Ok(())
}

/// The jobs without an outcome (queued, or running when their worker went away), oldest first.
pub fn unfinished(conn: &mut DbConnection) -> Result<Vec<String>, DbError> {
    Ok(jobs::table
        .filter(jobs::state.eq_any([QUEUED, RUNNING]))
        .order(jobs::id.asc())
        .select(jobs::id)
        .load(conn)?)
}

/// How a job ended.
#[derive(Debug, Clone)]
pub struct Outcome {
    pub state: JobState,
    pub metrics: Option<RetrainMetrics>,
    pub reason: Option<String>,
    pub model_version: Option<i32>,
    /// The rollout the candidate began (the job never promotes by itself): in the
    /// `retrain.finished` event; the rollout records its job.
    pub rollout_id: Option<String>,
}

impl Outcome {
    pub fn failed(reason: String) -> Outcome {
        Outcome {
            state: JobState::Failed,
            metrics: None,
            reason: Some(reason),
            model_version: None,
            rollout_id: None,
        }
    }
}

/// Stores a job's outcome; a job that already has one keeps it.
pub fn finish(conn: &mut DbConnection, id: &str, outcome: &Outcome) -> Result<(), DbError> {
    let now = super::now();
    diesel::update(
        jobs::table
            .find(id)
            .filter(jobs::state.eq_any([QUEUED, RUNNING])),
    )
    .set((
        jobs::state.eq(outcome.state.as_str()),
        jobs::metrics.eq(outcome
            .metrics
            .as_ref()
            .and_then(|m| serde_json::to_string(m).ok())),
        jobs::reason.eq(outcome.reason.as_deref()),
        jobs::model_version.eq(outcome.model_version),
        jobs::progress.eq(progress_text(&JobProgress::at(Stage::Finished))),
        jobs::finished_at.eq(Some(now)),
    ))
    .execute(conn)?;
    Ok(())
}

/// How many jobs are in each state.
pub fn counts_by_state(conn: &mut DbConnection) -> Result<Vec<(String, i64)>, DbError> {
    Ok(jobs::table
        .group_by(jobs::state)
        .select((jobs::state, diesel::dsl::count_star()))
        .load(conn)?)
}
