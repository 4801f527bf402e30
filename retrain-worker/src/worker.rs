//! The consumer: takes jobs from the queue one at a time, runs them and stores their outcome
//! before acknowledging. A job whose worker died is reclaimed by another after the configured
//! idle time; a live worker touches its job so that never happens to it.

use std::sync::Arc;
use std::sync::atomic::{AtomicBool, Ordering};
use std::time::Duration;

use common::bus::{Envelope, EventBus, events};
use common::db::Db;
use common::queue::{Delivery, JobQueue};
use digits::Dataset;
use serde_json::{Value, json};
use tokio::sync::{mpsc, watch};

use crate::clients::{ClientError, Clients};
use crate::config::{RetrainConfig, WorkerConfig};
use crate::db::jobs::{self, Job, Outcome};
use crate::retrain::{self, EpochReport, JobData, Plan, RunError};
use crate::train::{Arch, TrainError};

/// How long one wait on the queue lasts before the worker looks for jobs to reclaim again.
const POLL: Duration = Duration::from_secs(2);

/// MNIST, loaded once when the worker starts.
pub struct Mnist {
    pub train: Dataset,
    pub test: Dataset,
}

impl Mnist {
    pub fn load(dir: &std::path::Path) -> Result<Mnist, digits::IdxError> {
        Ok(Mnist {
            train: digits::load_train(dir)?,
            test: digits::load_test(dir)?,
        })
    }
}

#[derive(Clone)]
pub struct Worker {
    pub db: Db,
    pub queue: Arc<dyn JobQueue>,
    pub bus: Arc<dyn EventBus>,
    pub clients: Clients,
    pub mnist: Arc<Mnist>,
    pub retrain: RetrainConfig,
    pub config: WorkerConfig,
    /// Set when the process is stopping: training stops at the next batch.
    pub stopping: Arc<AtomicBool>,
}

/// Why a job did not produce an outcome.
enum Failure {
    /// The job cannot succeed: it ends `failed` with this reason.
    Failed(String),
    /// This worker is stopping: the job goes back to the queue for another worker.
    Interrupted,
    /// A transient failure after the candidate was registered: the job is left to run again
    /// (up to [`MAX_ATTEMPTS`]), which finds the registered version and finishes it.
    Retry(String),
    /// Another worker took the job over (this one stopped renewing its claim for too long):
    /// this one leaves it alone.
    Lost,
}

/// Runs of one job before a transient failure becomes its outcome.
const MAX_ATTEMPTS: i32 = 5;

impl From<ClientError> for Failure {
    fn from(e: ClientError) -> Self {
        Failure::Failed(e.to_string())
    }
}

impl Worker {
    /// Consumes jobs until `stop` turns true.
    pub async fn run(self, mut stop: watch::Receiver<bool>) {
        tracing::info!(consumer = %self.config.consumer, "retrain worker consuming jobs");
        loop {
            if *stop.borrow() {
                break;
            }
            self.record_queue().await;
            let next = tokio::select! {
                next = self.next_delivery() => next,
                _ = stop.changed() => break,
            };
            match next {
                Ok(Some(delivery)) => self.handle(delivery).await,
                Ok(None) => {}
                Err(e) => {
                    tracing::warn!(error = %e, "job queue unavailable; retrying");
                    tokio::select! {
                        _ = tokio::time::sleep(Duration::from_secs(1)) => {}
                        _ = stop.changed() => break,
                    }
                }
            }
        }
        tracing::info!("retrain worker stopped");
    }

    /// Jobs per state and the stream's unacknowledged entries, for `/metrics`.
    async fn record_queue(&self) {
        let metrics = metrics();
        if let Ok(counts) = self.db.run(jobs::counts_by_state).await {
            for state in jobs::STATES {
                let n = counts
                    .iter()
                    .find(|(s, _)| s == state)
                    .map_or(0, |(_, n)| *n);
                metrics.jobs.set(&[state], n as f64);
            }
        }
        if let Ok(pending) = self.queue.pending().await {
            metrics.pending.set(&[], pending as f64);
        }
    }

    async fn next_delivery(&self) -> Result<Option<Delivery>, common::kv::StoreError> {
        let consumer = &self.config.consumer;
        let reclaimed = self
            .queue
            .reclaim(consumer, self.config.reclaim_idle, 1)
            .await?;
        if let Some(delivery) = reclaimed.into_iter().next() {
            tracing::info!(entry = %delivery.id, "reclaimed a job whose worker stopped answering");
            return Ok(Some(delivery));
        }
        self.queue.next(consumer, POLL).await
    }

    async fn handle(&self, delivery: Delivery) {
        use tracing::Instrument;
        let span = common::continued_span!(
            "retrain.job",
            delivery.payload[common::telemetry::TRACEPARENT].as_str()
        );
        self.handle_in_span(delivery).instrument(span).await;
    }

    async fn handle_in_span(&self, delivery: Delivery) {
        let Some(job_id) = delivery.payload["job_id"].as_str().map(str::to_owned) else {
            tracing::warn!(entry = %delivery.id, "dropping a queue entry without a job id");
            self.ack(&delivery.id).await;
            return;
        };
        let id = job_id.clone();
        let consumer = self.config.consumer.clone();
        let job = match self.db.run(move |c| jobs::start(c, &id, &consumer)).await {
            Ok(job) => job,
            Err(e) => {
                // Left pending: it is taken again once the database answers.
                tracing::warn!(error = %e, job_id, "cannot start a job");
                tokio::time::sleep(Duration::from_secs(1)).await;
                return;
            }
        };
        let Some(job) = job else {
            tracing::warn!(job_id, "dropping a queue entry for an unknown job");
            self.ack(&delivery.id).await;
            return;
        };
        if jobs::is_final(&job.state) {
            // Its outcome was stored by an earlier attempt that died before acknowledging.
            self.ack(&delivery.id).await;
            return;
        }
        tracing::info!(job_id, attempt = job.attempts, model = %job.model, "retrain job started");
        self.publish_progress(&job, json!({"stage": "starting", "attempt": job.attempts}))
            .await;

        let lost = Arc::new(AtomicBool::new(false));
        let heartbeat = self.spawn_heartbeat(delivery.id.clone(), lost.clone());
        let started = std::time::Instant::now();
        let result = self.execute(&job, &lost).await;
        heartbeat.abort();

        let outcome = match result {
            Ok(outcome) => outcome,
            Err(Failure::Failed(reason)) => Outcome {
                state: jobs::FAILED,
                metrics: None,
                reason: Some(reason),
                model_version: None,
                promoted: false,
            },
            Err(Failure::Lost) => {
                tracing::warn!(
                    job_id,
                    "another worker took this job over; leaving it to them"
                );
                return;
            }
            Err(Failure::Retry(reason)) if job.attempts < MAX_ATTEMPTS => {
                let id = job.id.clone();
                let note = format!("{reason}; it runs again once its claim expires");
                if let Err(e) = self.db.run(move |c| jobs::requeue(c, &id, &note)).await {
                    tracing::warn!(error = %e, "cannot put a job back");
                }
                tracing::warn!(job_id, reason, "job left for another run");
                return;
            }
            Err(Failure::Retry(reason)) => Outcome {
                state: jobs::FAILED,
                metrics: None,
                reason: Some(format!("{reason} (after {} runs)", job.attempts)),
                model_version: None,
                promoted: false,
            },
            Err(Failure::Interrupted) => {
                let id = job.id.clone();
                if let Err(e) = self
                    .db
                    .run(move |c| {
                        jobs::requeue(c, &id, "its worker stopped; another worker takes it over")
                    })
                    .await
                {
                    tracing::warn!(error = %e, "cannot put an interrupted job back");
                }
                tracing::info!(
                    job_id,
                    "job interrupted by shutdown; left for another worker"
                );
                return;
            }
        };
        metrics().durations.observe(
            &[job.model.as_str(), outcome.state],
            started.elapsed().as_secs_f64(),
        );
        if self.store(&job, &outcome).await {
            self.publish_finished(&job, &outcome).await;
            self.ack(&delivery.id).await;
            tracing::info!(job_id, state = outcome.state, version = ?outcome.model_version, promoted = outcome.promoted, "retrain job finished");
        }
    }

    /// Stores the outcome, retrying while the database is away; false if it never could (the
    /// entry then stays pending and the job runs again).
    async fn store(&self, job: &Job, outcome: &Outcome) -> bool {
        for attempt in 0..5 {
            let (id, o) = (job.id.clone(), outcome.clone());
            match self.db.run(move |c| jobs::finish(c, &id, &o)).await {
                Ok(()) => return true,
                Err(e) => {
                    tracing::warn!(error = %e, attempt, "cannot store a job's outcome");
                    tokio::time::sleep(Duration::from_secs(1 << attempt)).await;
                }
            }
        }
        false
    }

    async fn ack(&self, entry: &str) {
        if let Err(e) = self.queue.ack(entry).await {
            tracing::warn!(error = %e, entry, "cannot acknowledge a job (it may run again; its outcome is kept)");
        }
    }

    /// Renews the claim on the job's entry; sets `lost` when another worker owns it now.
    fn spawn_heartbeat(&self, entry: String, lost: Arc<AtomicBool>) -> tokio::task::JoinHandle<()> {
        let queue = self.queue.clone();
        let consumer = self.config.consumer.clone();
        let every = (self.config.reclaim_idle / 3).max(Duration::from_millis(200));
        tokio::spawn(async move {
            loop {
                tokio::time::sleep(every).await;
                match queue.touch(&consumer, &entry).await {
                    Ok(true) => {}
                    Ok(false) => {
                        lost.store(true, Ordering::Relaxed);
                        return;
                    }
                    Err(e) => tracing::warn!(error = %e, "cannot renew the claim on a running job"),
                }
            }
        })
    }

    fn plan(&self, job: &Job, arch: Arch) -> Plan {
        Plan {
            arch,
            epochs: job.epochs.max(1) as usize,
            from_scratch: job.from_scratch,
            mnist_sample: job
                .mnist_sample
                .map_or(self.retrain.mnist_sample, |n| n.max(0) as usize),
            feedback_weight: self.retrain.feedback_weight,
            feedback_holdout: self.retrain.feedback_holdout,
            eval_sample: self.retrain.eval_sample,
            tolerance_points: self.retrain.tolerance_points,
            seed: retrain::seed_for(&job.id),
        }
    }

    async fn execute(&self, job: &Job, lost: &Arc<AtomicBool>) -> Result<Outcome, Failure> {
        let arch = Arch::from_model_name(&job.model)
            .ok_or_else(|| Failure::Failed(format!("unknown model `{}`", job.model)))?;
        let plan = self.plan(job, arch);
        self.publish_progress(job, json!({"stage": "loading data"}))
            .await;
        let active = retry(|| self.clients.active_model(&job.model)).await?;
        let feedback = retry(|| self.clients.labelled_feedback()).await?;

        let (reports, mut received) = mpsc::unbounded_channel::<EpochReport>();
        let relay = {
            let (worker, job) = (self.clone(), job.clone());
            tokio::spawn(tracing::Instrument::in_current_span(async move {
                while let Some(report) = received.recv().await {
                    let mut progress = serde_json::to_value(&report).unwrap_or_default();
                    progress["stage"] = "training".into();
                    worker.publish_progress(&job, progress).await;
                }
            }))
        };
        let mnist = self.mnist.clone();
        let stopping = self.stopping.clone();
        let lost_claim = lost.clone();
        let run_plan = plan.clone();
        let artifact = active.artifact.clone();
        let span = tracing::Span::current();
        let produced = tokio::task::spawn_blocking(move || {
            // The epochs are events of the job's span (and log lines in its trace).
            let _entered = span.enter();
            let data = JobData::assemble(&run_plan, &mnist.train, &mnist.test, &feedback);
            let mut progress = ChannelProgress {
                reports,
                stopping,
                lost: lost_claim,
            };
            retrain::run(&run_plan, &data, &artifact, &mut progress).map(|p| (p, data))
        })
        .await;
        let _ = relay.await;
        let (produced, data) = match produced {
            Ok(Ok(done)) => done,
            Ok(Err(RunError::Train(TrainError::Stopped(_)))) => {
                return Err(if lost.load(Ordering::Relaxed) {
                    Failure::Lost
                } else {
                    Failure::Interrupted
                });
            }
            Ok(Err(e)) => return Err(Failure::Failed(e.to_string())),
            Err(e) => return Err(Failure::Failed(format!("training crashed: {e}"))),
        };
        if lost.load(Ordering::Relaxed) {
            return Err(Failure::Lost);
        }
        let metrics = produced.metrics(&plan, &data, active.version);
        self.publish_progress(job, json!({"stage": "registering"}))
            .await;
        let registered = retry(|| {
            self.clients
                .register(&job.model, &produced.artifact, &metrics, &job.id)
        })
        .await?;
        let version = registered.version;
        // An earlier run of this job registered its artifact already: that artifact is the
        // job's, so its own scores and verdict decide, not this run's.
        let (metrics, promote, reason, compared_with) = match registered.earlier {
            Some(earlier) => {
                tracing::info!(
                    version,
                    "an earlier run registered this job's candidate; using its verdict"
                );
                let promote = earlier["gate"]["promote"].as_bool().unwrap_or(false);
                let reason = earlier["gate"]["reason"].as_str().map(str::to_owned);
                let compared = earlier["active"]["version"]
                    .as_i64()
                    .map_or(active.version, |v| v as i32);
                (earlier, promote, reason, compared)
            }
            None => (
                metrics,
                produced.verdict.promote,
                produced.verdict.reason.clone(),
                active.version,
            ),
        };
        if !promote {
            return Ok(Outcome {
                state: jobs::REJECTED,
                metrics: Some(metrics),
                reason,
                model_version: Some(version),
                promoted: false,
            });
        }
        if lost.load(Ordering::Relaxed) {
            return Err(Failure::Lost);
        }
        let promoted =
            match retry(|| self.clients.promote(&job.model, version, compared_with)).await {
                Ok(result) => result,
                // Registered, not promoted, and predict-svc is away: the job runs again later and
                // finds its registered version (above), instead of ending `failed`.
                Err(e) => return Err(Failure::Retry(format!("promotion failed: {e}"))),
            };
        match promoted {
            Ok(()) => Ok(Outcome {
                state: jobs::SUCCEEDED,
                metrics: Some(metrics),
                reason: None,
                model_version: Some(version),
                promoted: true,
            }),
            Err(now) => Ok(Outcome {
                state: jobs::REJECTED,
                metrics: Some(metrics),
                reason: Some(format!(
                    "The candidate passed the gate against v{compared_with}, but the active version changed to {} while the job ran; not promoted (an admin may promote v{version} by hand).",
                    now.map_or_else(|| "none".to_owned(), |v| format!("v{v}"))
                )),
                model_version: Some(version),
                promoted: false,
            }),
        }
    }

    async fn publish_progress(&self, job: &Job, progress: Value) {
        let id = job.id.clone();
        let stored = progress.clone();
        if let Err(e) = self
            .db
            .run(move |c| jobs::set_progress(c, &id, &stored))
            .await
        {
            tracing::warn!(error = %e, "cannot record a job's progress");
        }
        let mut data = progress;
        data["job_id"] = job.id.clone().into();
        data["model"] = job.model.clone().into();
        self.publish(Envelope::new(events::RETRAIN_PROGRESS, data))
            .await;
    }

    async fn publish_finished(&self, job: &Job, outcome: &Outcome) {
        self.publish(Envelope::new(
            events::RETRAIN_FINISHED,
            json!({
                "job_id": job.id,
                "model": job.model,
                "state": outcome.state,
                "model_version": outcome.model_version,
                "promoted": outcome.promoted,
                "reason": outcome.reason,
                "metrics": outcome.metrics,
            }),
        ))
        .await;
    }

    async fn publish(&self, event: Envelope) {
        // Progress is advisory: the job's record has it too, so a lost event costs nothing.
        if let Err(e) = self.bus.publish_recorded(&event).await {
            tracing::warn!(error = %e, kind = %event.kind, "cannot publish a retrain event");
        }
    }
}

struct WorkerMetrics {
    jobs: common::metrics::Gauge,
    pending: common::metrics::Gauge,
    durations: common::metrics::Histogram,
}

fn metrics() -> &'static WorkerMetrics {
    static METRICS: std::sync::OnceLock<WorkerMetrics> = std::sync::OnceLock::new();
    METRICS.get_or_init(|| {
        let registry = common::metrics::global();
        WorkerMetrics {
            jobs: registry.gauge(
                "retrain_jobs",
                "Retrain jobs by state (queued: the queue's depth).",
                &["state"],
            ),
            pending: registry.gauge(
                "retrain_queue_unacknowledged",
                "Entries of jobs:retrain delivered to a worker and not yet acknowledged.",
                &[],
            ),
            durations: registry.histogram(
                "retrain_job_duration_seconds",
                "How long a job ran, by model and outcome.",
                &["model", "outcome"],
                common::metrics::JOB_BUCKETS,
            ),
        }
    })
}

/// A call to another service, tried again on a transient failure (unreachable, 5xx).
async fn retry<T, F, Fut>(mut call: F) -> Result<T, ClientError>
where
    F: FnMut() -> Fut,
    Fut: std::future::Future<Output = Result<T, ClientError>>,
{
    let mut wait = Duration::from_millis(500);
    for _ in 0..4 {
        match call().await {
            Err(ClientError::Unreachable { .. }) => {}
            Err(ClientError::Status { status, .. }) if status >= 500 => {}
            other => return other,
        }
        tokio::time::sleep(wait).await;
        wait *= 2;
    }
    call().await
}

struct ChannelProgress {
    reports: mpsc::UnboundedSender<EpochReport>,
    stopping: Arc<AtomicBool>,
    lost: Arc<AtomicBool>,
}

impl retrain::Progress for ChannelProgress {
    fn epoch(&mut self, report: EpochReport) {
        tracing::info!(
            epoch = report.epoch,
            epochs = report.epochs,
            loss = f64::from(report.loss),
            val_accuracy = report.val_accuracy,
            eta_seconds = report.eta_seconds,
            "epoch finished"
        );
        let _ = self.reports.send(report);
    }

    fn should_stop(&self) -> Option<String> {
        if self.lost.load(Ordering::Relaxed) {
            return Some("another worker took the job over".to_owned());
        }
        self.stopping
            .load(Ordering::Relaxed)
            .then(|| "the worker is stopping".to_owned())
    }
}
