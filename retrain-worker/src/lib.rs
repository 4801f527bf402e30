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

use actix_web::dev::ServerHandle;
use actix_web::{App, web};
use common::db::Db;
use common::health::{DbCheck, Readiness};
use common::infra::Infra;
use common::jwt::JwtVerifier;
use common::queue::JobQueue;
use common::server::RunningServer;
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

impl WorkerTask {
    /// Stops taking jobs; a job in training stops at its next batch and goes back to the queue.
    pub async fn shutdown(self, timeout: Duration) {
        self.stopping.store(true, Ordering::Relaxed);
        let _ = self.stop.send(true);
        if tokio::time::timeout(timeout, self.handle).await.is_err() {
            tracing::warn!("the retrain worker did not stop in time");
        }
    }
}

/// The service, bound and with its worker running.
pub struct Application {
    pub port: u16,
    /// `/metrics` (this service has no `/internal/` routes).
    pub management_port: u16,
    server: RunningServer,
    worker: Option<WorkerTask>,
}

/// A service running in the background (tests): stop it with [`RunningApp::stop`].
pub struct RunningApp {
    pub port: u16,
    pub management_port: u16,
    pub handle: ServerHandle,
    worker: Option<WorkerTask>,
}

impl RunningApp {
    /// Training stops at its next batch (and the job goes back to the queue); the server keeps
    /// serving until [`RunningApp::stop`].
    pub fn begin_stop(&self) {
        if let Some(worker) = &self.worker {
            worker.stopping.store(true, Ordering::Relaxed);
        }
    }

    /// Stops training, then the server gracefully, then the worker.
    pub async fn stop(self) {
        self.begin_stop();
        self.handle.stop(true).await;
        if let Some(worker) = self.worker {
            worker.shutdown(WORKER_STOP_TIMEOUT).await;
        }
    }
}

impl Application {
    /// Runs until a shutdown signal: in-flight requests finish, then a running job is handed back.
    pub async fn run_until_stopped(self) -> std::io::Result<()> {
        // Training stops at the signal, not after the HTTP drain: the whole shutdown must fit
        // in the platform's grace period.
        if let Some(worker) = &self.worker {
            let stopping = worker.stopping.clone();
            tokio::spawn(async move {
                common::server::wait_for_signal().await;
                stopping.store(true, Ordering::Relaxed);
            });
        }
        let result = self.server.run_until_stopped().await;
        if let Some(worker) = self.worker {
            worker.shutdown(WORKER_STOP_TIMEOUT).await;
        }
        result
    }

    pub fn spawn(self) -> RunningApp {
        RunningApp {
            port: self.port,
            management_port: self.management_port,
            handle: self.server.spawn(),
            worker: self.worker,
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

/// Connects to its dependencies, migrates, starts the worker and binds the server.
pub async fn build(config: Config) -> anyhow::Result<Application> {
    let db = Db::open_service(
        config.database_url.expose(),
        "retrain",
        config.common.mode,
        config.migrate_on_start,
        db::POSTGRES_MIGRATIONS,
        db::SQLITE_MIGRATIONS,
    )
    .await?;
    let infra = Infra::connect(&config.redis_url, &config.redis_prefix)?;
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
    let verifier = web::Data::new(JwtVerifier::remote(&config.jwt));
    let readiness = infra.ready_check(Readiness::new().with(DbCheck(db)));
    let server = common::server::start(&config.common, move || {
        App::new()
            // /metrics and /internal/ only on the management port.
            .wrap(actix_web::middleware::from_fn(common::server::split_planes))
            .wrap(actix_web::middleware::from_fn(
                common::telemetry::trace_http,
            ))
            .wrap(actix_web::middleware::from_fn(common::metrics::track))
            .configure(common::metrics::service("retrain-worker"))
            .app_data(state.clone())
            .app_data(verifier.clone())
            .configure(common::http::configure_extractors)
            .configure(common::health::configure(readiness.clone()))
            .configure(routes::configure)
            .default_service(web::to(common::http::no_route))
    });
    let server = match server {
        Ok(server) => server,
        Err(e) => {
            if let Some(worker) = worker {
                worker.shutdown(WORKER_STOP_TIMEOUT).await;
            }
            return Err(e.into());
        }
    };
    Ok(Application {
        port: server.port,
        management_port: server.management_port,
        server,
        worker,
    })
}
