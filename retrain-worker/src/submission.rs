//! Submitting a retrain job: its record first, then its queue entry, so a worker never gets a
//! job it cannot find; when the queue refuses the entry, the record goes too, so no job waits
//! forever in `queued`.

use common::db::Db;
use common::queue::JobQueue;
use contracts::jobs::{JobProgress, RetrainJobEntry, Stage};

use crate::db::jobs::{self, Job};
use crate::error::RetrainError;
use crate::train::Arch;

/// A validated request for a job.
#[derive(Debug, Clone)]
pub struct JobRequest {
    pub arch: Arch,
    pub epochs: i32,
    pub from_scratch: bool,
    pub mnist_sample: Option<i32>,
    pub requested_by: String,
}

impl JobRequest {
    /// The record of a new job, queued.
    fn into_job(self) -> Job {
        Job {
            id: uuid::Uuid::now_v7().to_string(),
            model: self.arch.model_name().to_owned(),
            epochs: self.epochs,
            from_scratch: self.from_scratch,
            mnist_sample: self.mnist_sample,
            state: jobs::QUEUED.to_owned(),
            progress: jobs::progress_text(&JobProgress::at(Stage::Queued)),
            metrics: None,
            reason: None,
            model_version: None,
            requested_by: self.requested_by,
            attempts: 0,
            worker: None,
            created_at: crate::db::now(),
            started_at: None,
            finished_at: None,
        }
    }
}

/// Records the job and queues it, in the current trace.
pub async fn submit(
    db: &Db,
    queue: &dyn JobQueue,
    request: JobRequest,
) -> Result<Job, RetrainError> {
    let job = request.into_job();
    let row = job.clone();
    db.run(move |c| jobs::insert(c, &row)).await?;
    let entry = RetrainJobEntry {
        job_id: job.id.clone(),
        traceparent: common::telemetry::traceparent(),
    };
    if let Err(e) = enqueue(queue, &entry).await {
        let id = job.id.clone();
        if let Err(e) = db.run(move |c| jobs::delete(c, &id)).await {
            tracing::error!(error = %e, job_id = %job.id, "cannot remove a job that was never queued");
        }
        return Err(RetrainError::QueueUnavailable(e));
    }
    Ok(job)
}

/// Appends a job's entry to the queue.
pub async fn enqueue(
    queue: &dyn JobQueue,
    entry: &RetrainJobEntry,
) -> Result<String, common::kv::StoreError> {
    let payload =
        serde_json::to_value(entry).map_err(|e| common::kv::StoreError::Decode(e.to_string()))?;
    queue.enqueue(&payload).await
}
