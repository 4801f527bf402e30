//! retrain-worker: the retrain job API, and the worker that consumes the job queue, trains on
//! MNIST plus labelled feedback, scores the candidate against the active version and promotes it
//! when it passes the gate (schema `retrain`).

pub mod clients;
pub mod config;
pub mod db;
pub mod error;
pub mod retrain;
pub mod routes;
mod state;
pub mod submission;
pub mod train;
pub mod worker;

pub use config::Config;

use std::sync::Arc;
use std::sync::atomic::{AtomicBool, Ordering};
use std::time::Duration;

use actix_web::web;
use async_trait::async_trait;
use common::db::Db;
use common::health::{DbCheck, Readiness};
use common::infra::Infra;
use common::jwt::JwtVerifier;
use common::queue::JobQueue;
use common::service::{BackgroundTask, RunningService, ServiceApp};
use tokio::sync::watch;

/// The Redis Stream of retrain jobs and its consumer group.
pub const JOB_STREAM: &str = "jobs:retrain";
pub const JOB_GROUP: &str = "retrain-worker";

/// How long a stopping worker waits for training to reach its next batch and hand the job back.
const WORKER_STOP_TIMEOUT: Duration = Duration::from_secs(20);

/// The worker consuming jobs in the background.
pub struct WorkerTask {
    stop: watch::Sender<bool>,
    stopping: Arc<AtomicBool>,
    handle: tokio::task::JoinHandle<()>,
}

#[async_trait]
impl BackgroundTask for WorkerTask {
    /// Training stops at its next batch and the job goes back to the queue: at the signal, not
    /// after the HTTP drain, so that the whole shutdown fits in the platform's grace period.
    fn begin_stop(&self) {
        self.stopping.store(true, Ordering::Relaxed);
    }

    /// Stops taking jobs and waits for the worker to hand its job back.
    async fn stop(self: Box<Self>) {
        self.stopping.store(true, Ordering::Relaxed);
        let _ = self.stop.send(true);
        if tokio::time::timeout(WORKER_STOP_TIMEOUT, self.handle)
            .await
            .is_err()
        {
            tracing::warn!("the retrain worker did not stop in time");
        }
    }
}

/// The all-in-one mode's queue lives in the process: the jobs a previous run left without an
/// outcome (queued, or interrupted while training) are queued again, oldest first, so that no
/// job waits forever. With Redis the stream keeps them (and a dead worker's are reclaimed).
async fn requeue_unfinished(db: &Db, queue: &dyn JobQueue) -> anyhow::Result<()> {
    let ids = db
        .run(|c| {
            let ids = db::jobs::unfinished(c)?;
            for id in &ids {
                db::jobs::requeue(c, id, "the process restarted")?;
            }
            Ok::<_, common::db::DbError>(ids)
        })
        .await?;
    for id in &ids {
        let entry = contracts::jobs::RetrainJobEntry {
            job_id: id.clone(),
            traceparent: None,
        };
        submission::enqueue(queue, &entry).await?;
    }
    if !ids.is_empty() {
        tracing::info!(
            jobs = ids.len(),
            "retrain jobs of a previous run queued again"
        );
    }
    Ok(())
}

/// Connects to its dependencies, migrates, starts the worker and starts serving.
pub async fn build(config: Config) -> anyhow::Result<RunningService> {
    let db = db::SCHEMA
        .open(&config.backends.database, config.common.mode)
        .await?;
    let infra = Infra::connect(&config.backends.redis.url, &config.backends.redis.prefix)?;
    let queue_dyn: Arc<dyn JobQueue> = infra.queue(JOB_STREAM, JOB_GROUP);
    if infra.is_memory() {
        requeue_unfinished(&db, queue_dyn.as_ref()).await?;
    }
    let worker = if config.worker.enabled {
        let worker = worker::Worker::new(&config, db.clone(), &infra).await?;
        let stopping = worker.stopping.clone();
        let (stop, stopped) = watch::channel(false);
        Some(WorkerTask {
            stop,
            stopping,
            handle: tokio::spawn(worker.run(stopped)),
        })
    } else {
        None
    };
    let state = web::Data::new(state::AppState {
        db: db.clone(),
        queue: queue_dyn,
    });
    let verifier = web::Data::new(JwtVerifier::remote(&config.backends.jwt));
    let readiness = infra.ready_check(Readiness::new().with(DbCheck(db)));
    ServiceApp::new("retrain-worker", readiness, routes::configure)
        .data(state)
        .data(verifier)
        .serve(&config.common, vec![Box::new(worker)])
        .await
}
