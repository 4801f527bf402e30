//! The consumer: takes jobs from the queue one at a time, runs them and stores their outcome
//! before acknowledging. A job whose worker died is reclaimed by another after the configured
//! idle time; a live worker touches its job so that never happens to it.

use std::sync::Arc;
use std::sync::atomic::{AtomicBool, Ordering};
use std::time::Duration;

use anyhow::Context;
use common::bus::{DEFAULT_HISTORY_MAXLEN, Envelope, EventBus};
use common::db::Db;
use common::infra::Infra;
use common::kv::StoreError;
use common::queue::{Delivery, JobQueue};
use common::service_auth::ServiceTokens;
use contracts::events::{Event, RetrainFinished, RetrainProgress};
use contracts::jobs::{EpochReport, JobProgress, JobState, RetrainJobEntry, RetrainMetrics, Stage};
use digits::Dataset;
use tokio::sync::{mpsc, watch};

use crate::clients::{ActiveModel, ClientError, Clients, LabelledExample, Registered};
use crate::config::{Config, RetrainConfig, WorkerConfig};
use crate::db::jobs::{self, Job, Outcome};
use crate::retrain::{self, JobData, Plan, Produced, RunError};
use crate::train::{Arch, TrainError};
use crate::{JOB_GROUP, JOB_STREAM};

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

impl Worker {
    /// A worker for `config`'s queue and services, with MNIST loaded (`MNIST_DIR`).
    pub async fn new(config: &Config, db: Db, infra: &Infra) -> anyhow::Result<Worker> {
        let dir = config.mnist_dir.clone();
        let mnist = tokio::task::spawn_blocking(move || Mnist::load(&dir))
            .await?
            .with_context(|| {
                format!(
                    "loading the MNIST digits from {} (MNIST_DIR; `cargo xtask setup` fetches them)",
                    config.mnist_dir.display()
                )
            })?;
        let tokens = ServiceTokens::new(config.service_client.clone())?;
        let clients = Clients::new(&config.predict_url, &config.feedback_url, Arc::new(tokens))?;
        Ok(Worker {
            db,
            queue: infra.queue(JOB_STREAM, JOB_GROUP),
            bus: infra.bus(DEFAULT_HISTORY_MAXLEN),
            clients,
            mnist: Arc::new(mnist),
            retrain: config.retrain.clone(),
            config: config.worker.clone(),
            stopping: Arc::new(AtomicBool::new(false)),
        })
    }
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

/// What [`Worker::process_next`] did.
#[derive(Debug, Clone, PartialEq)]
pub enum Processed {
    /// The queue had no job.
    Idle,
    /// A job ran and its outcome is stored (and announced).
    Finished { job_id: String, state: JobState },
    /// A job went back to the queue: this worker is stopping, or a transient failure after
    /// registration leaves it to run again.
    Requeued { job_id: String },
    /// Another worker took the job over; this one left it alone.
    Lost { job_id: String },
    /// The job could not be started or its outcome not stored (the database is away): the
    /// entry stays pending and the job runs again.
    Deferred { job_id: String },
    /// An entry for no job (unreadable, unknown, or already finished), acknowledged.
    Dropped { entry: String },
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
                next = self.next_delivery(POLL) => next,
                _ = stop.changed() => break,
            };
            match next {
                Ok(Some(delivery)) => {
                    self.handle(delivery).await;
                }
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

    /// One step: takes the next job (a dead worker's first), if any, and runs it to its end.
    pub async fn process_next(&self) -> Result<Processed, StoreError> {
        self.record_queue().await;
        match self.next_delivery(Duration::from_millis(1)).await? {
            Some(delivery) => Ok(self.handle(delivery).await),
            None => Ok(Processed::Idle),
        }
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

    async fn next_delivery(&self, wait: Duration) -> Result<Option<Delivery>, StoreError> {
        let consumer = &self.config.consumer;
        let reclaimed = self
            .queue
            .reclaim(consumer, self.config.reclaim_idle, 1)
            .await?;
        if let Some(delivery) = reclaimed.into_iter().next() {
            tracing::info!(entry = %delivery.id, "reclaimed a job whose worker stopped answering");
            return Ok(Some(delivery));
        }
        self.queue.next(consumer, wait).await
    }

    async fn handle(&self, delivery: Delivery) -> Processed {
        use tracing::Instrument;
        let entry = serde_json::from_value::<RetrainJobEntry>(delivery.payload.clone()).ok();
        let span = common::continued_span!(
            "retrain.job",
            entry.as_ref().and_then(|e| e.traceparent.as_deref())
        );
        match entry {
            Some(entry) => {
                self.handle_job(&delivery.id, entry.job_id)
                    .instrument(span)
                    .await
            }
            None => {
                tracing::warn!(entry = %delivery.id, "dropping a queue entry without a job id");
                self.drop_entry(&delivery.id).await
            }
        }
    }

    async fn handle_job(&self, entry: &str, job_id: String) -> Processed {
        let job = match self.start(&job_id).await {
            Ok(Some(job)) if !jobs::is_final(&job.state) => job,
            // Its outcome was stored by an earlier attempt that died before acknowledging.
            Ok(Some(_)) => return self.drop_entry(entry).await,
            Ok(None) => {
                tracing::warn!(job_id, "dropping a queue entry for an unknown job");
                return self.drop_entry(entry).await;
            }
            Err(e) => {
                // Left pending: it is taken again once the database answers.
                tracing::warn!(error = %e, job_id, "cannot start a job");
                return Processed::Deferred { job_id };
            }
        };
        tracing::info!(job_id, attempt = job.attempts, model = %job.model, "retrain job started");
        let progress = JobProgress {
            attempt: Some(job.attempts),
            ..JobProgress::at(Stage::Starting)
        };
        self.publish_progress(&job, progress).await;

        let lost = Arc::new(AtomicBool::new(false));
        let heartbeat = self.spawn_heartbeat(entry.to_owned(), lost.clone());
        let started = std::time::Instant::now();
        let result = self.execute(&job, &lost).await;
        heartbeat.abort();
        let Some(outcome) = self.outcome_of(&job, result).await else {
            return self.handed_back(job_id, &lost);
        };
        metrics().durations.observe(
            &[job.model.as_str(), outcome.state.as_str()],
            started.elapsed().as_secs_f64(),
        );
        self.conclude(entry, &job, &outcome).await
    }

    async fn start(&self, job_id: &str) -> Result<Option<Job>, common::db::DbError> {
        let (id, consumer) = (job_id.to_owned(), self.config.consumer.clone());
        self.db.run(move |c| jobs::start(c, &id, &consumer)).await
    }

    async fn drop_entry(&self, entry: &str) -> Processed {
        self.ack(entry).await;
        Processed::Dropped {
            entry: entry.to_owned(),
        }
    }

    /// What a job without an outcome became.
    fn handed_back(&self, job_id: String, lost: &AtomicBool) -> Processed {
        if lost.load(Ordering::Relaxed) {
            Processed::Lost { job_id }
        } else {
            Processed::Requeued { job_id }
        }
    }

    /// The job's outcome; `None` when it has none yet (handed back, or taken over).
    async fn outcome_of(&self, job: &Job, result: Result<Outcome, Failure>) -> Option<Outcome> {
        let job_id = job.id.as_str();
        match result {
            Ok(outcome) => Some(outcome),
            Err(Failure::Failed(reason)) => Some(Outcome::failed(reason)),
            Err(Failure::Lost) => {
                tracing::warn!(
                    job_id,
                    "another worker took this job over; leaving it to them"
                );
                None
            }
            Err(Failure::Retry(reason)) if job.attempts < MAX_ATTEMPTS => {
                let note = format!("{reason}; it runs again once its claim expires");
                self.requeue(job, note).await;
                tracing::warn!(job_id, reason, "job left for another run");
                None
            }
            Err(Failure::Retry(reason)) => Some(Outcome::failed(format!(
                "{reason} (after {} runs)",
                job.attempts
            ))),
            Err(Failure::Interrupted) => {
                self.requeue(
                    job,
                    "its worker stopped; another worker takes it over".into(),
                )
                .await;
                tracing::info!(
                    job_id,
                    "job interrupted by shutdown; left for another worker"
                );
                None
            }
        }
    }

    async fn requeue(&self, job: &Job, note: String) {
        let id = job.id.clone();
        if let Err(e) = self.db.run(move |c| jobs::requeue(c, &id, &note)).await {
            tracing::warn!(error = %e, "cannot put a job back");
        }
    }

    /// Stores the outcome, then tells admins and acknowledges the entry.
    async fn conclude(&self, entry: &str, job: &Job, outcome: &Outcome) -> Processed {
        let job_id = job.id.clone();
        if !self.store(job, outcome).await {
            return Processed::Deferred { job_id };
        }
        self.publish_finished(job, outcome).await;
        self.ack(entry).await;
        tracing::info!(job_id, state = outcome.state.as_str(), version = ?outcome.model_version, rollout = ?outcome.rollout_id, "retrain job finished");
        Processed::Finished {
            job_id,
            state: outcome.state,
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

    fn plan(&self, job: &Job) -> Result<Plan, Failure> {
        let arch = Arch::from_model_name(&job.model)
            .ok_or_else(|| Failure::Failed(format!("unknown model `{}`", job.model)))?;
        Ok(Plan {
            arch,
            epochs: job.epochs.max(1) as usize,
            from_scratch: job.from_scratch,
            mnist_sample: job
                .mnist_sample
                .map_or(self.retrain.mnist_sample, |n| n.max(0) as usize),
            feedback_weight: self.retrain.feedback_weight,
            max_labels_per_user: self.retrain.max_labels_per_user,
            eval_sample: self.retrain.eval_sample,
            tolerance_points: self.retrain.tolerance_points,
            seed: retrain::seed_for(&job.id),
        })
    }

    /// Trains, registers the candidate and, if the offline gate lets it, starts its rollout.
    async fn execute(&self, job: &Job, lost: &Arc<AtomicBool>) -> Result<Outcome, Failure> {
        let plan = self.plan(job)?;
        self.publish_progress(job, JobProgress::at(Stage::LoadingData))
            .await;
        let active = retry(|| self.clients.active_model(&job.model)).await?;
        let feedback = retry(|| self.clients.labelled_feedback()).await?;
        let (produced, data) = self.train(job, &plan, &active, feedback, lost).await?;
        if lost.load(Ordering::Relaxed) {
            return Err(Failure::Lost);
        }
        let metrics = produced.metrics(&plan, &data, active.version);
        self.publish_progress(job, JobProgress::at(Stage::Registering))
            .await;
        let registered = retry(|| {
            self.clients
                .register(&job.model, &produced.artifact, &metrics, &job.id)
        })
        .await?;
        let verdict = Verdict::of(registered, metrics)?;
        if !verdict.promote {
            self.record_rejection(job, &verdict).await;
            return Ok(verdict.rejected());
        }
        if lost.load(Ordering::Relaxed) {
            return Err(Failure::Lost);
        }
        self.start_rollout(job, verdict).await
    }

    /// Trains on a blocking thread, relaying each epoch as progress.
    async fn train(
        &self,
        job: &Job,
        plan: &Plan,
        active: &ActiveModel,
        feedback: Vec<LabelledExample>,
        lost: &Arc<AtomicBool>,
    ) -> Result<(Produced, JobData), Failure> {
        let (reports, received) = mpsc::unbounded_channel::<EpochReport>();
        let relay = self.spawn_progress_relay(job, received);
        let mnist = self.mnist.clone();
        let mut progress = ChannelProgress {
            reports,
            stopping: self.stopping.clone(),
            lost: lost.clone(),
        };
        let (plan, artifact) = (plan.clone(), active.artifact.clone());
        let span = tracing::Span::current();
        let produced = tokio::task::spawn_blocking(move || {
            // The epochs are events of the job's span (and log lines in its trace).
            let _entered = span.enter();
            let data = JobData::assemble(&plan, &mnist.train, &mnist.test, &feedback);
            retrain::run(&plan, &data, &artifact, &mut progress).map(|p| (p, data))
        })
        .await;
        let _ = relay.await;
        match produced {
            Ok(Ok(done)) => Ok(done),
            Ok(Err(RunError::Train(TrainError::Stopped(_)))) => {
                Err(if lost.load(Ordering::Relaxed) {
                    Failure::Lost
                } else {
                    Failure::Interrupted
                })
            }
            Ok(Err(e)) => Err(Failure::Failed(e.to_string())),
            Err(e) => Err(Failure::Failed(format!("training crashed: {e}"))),
        }
    }

    fn spawn_progress_relay(
        &self,
        job: &Job,
        mut received: mpsc::UnboundedReceiver<EpochReport>,
    ) -> tokio::task::JoinHandle<()> {
        let (worker, job) = (self.clone(), job.clone());
        tokio::spawn(tracing::Instrument::in_current_span(async move {
            while let Some(report) = received.recv().await {
                let progress = JobProgress {
                    epoch: Some(report),
                    ..JobProgress::at(Stage::Training)
                };
                worker.publish_progress(&job, progress).await;
            }
        }))
    }

    /// Records in the registry that the candidate failed the gate (its stage `rejected`, a row
    /// of the audit table). Best effort: the job's own record says it either way.
    async fn record_rejection(&self, job: &Job, verdict: &Verdict) {
        let (version, compared_with) = (verdict.version, verdict.compared_with);
        if let Err(e) = self
            .clients
            .start_rollout(&job.model, version, compared_with, &job.id, false)
            .await
        {
            tracing::warn!(error = %e, version, "cannot record the rejected candidate in the registry");
        }
    }

    /// Starts the candidate's rollout (shadow, then canary, decided by labelled feedback) if
    /// the version it was compared with is still the active one. A job never promotes.
    async fn start_rollout(&self, job: &Job, verdict: Verdict) -> Result<Outcome, Failure> {
        let (version, compared_with) = (verdict.version, verdict.compared_with);
        let started = match retry(|| {
            self.clients
                .start_rollout(&job.model, version, compared_with, &job.id, true)
        })
        .await
        {
            Ok(result) => result,
            // Registered, no rollout yet, and predict-svc is away: the job runs again later
            // and finds its registered version, instead of ending `failed`.
            Err(e) => return Err(Failure::Retry(format!("starting the rollout failed: {e}"))),
        };
        Ok(match started {
            Ok(rollout_id) => Outcome {
                state: JobState::Succeeded,
                metrics: Some(verdict.metrics),
                reason: None,
                model_version: Some(version),
                rollout_id: Some(rollout_id),
            },
            Err(now) => Outcome {
                reason: Some(format!(
                    "The candidate passed the gate against v{compared_with}, but the active version changed to {} while the job ran; no rollout started (an admin may promote v{version} by hand).",
                    now.map_or_else(|| "none".to_owned(), |v| format!("v{v}"))
                )),
                ..verdict.rejected()
            },
        })
    }

    async fn publish_progress(&self, job: &Job, progress: JobProgress) {
        let id = job.id.clone();
        let stored = progress.clone();
        if let Err(e) = self
            .db
            .run(move |c| jobs::set_progress(c, &id, &stored))
            .await
        {
            tracing::warn!(error = %e, "cannot record a job's progress");
        }
        self.publish(Event::RetrainProgress(RetrainProgress {
            job_id: job.id.clone(),
            model: job.model.clone(),
            progress,
        }))
        .await;
    }

    async fn publish_finished(&self, job: &Job, outcome: &Outcome) {
        self.publish(Event::RetrainFinished(RetrainFinished {
            job_id: job.id.clone(),
            model: job.model.clone(),
            state: outcome.state,
            model_version: outcome.model_version,
            promoted: false,
            rollout_id: outcome.rollout_id.clone(),
            reason: outcome.reason.clone(),
            metrics: outcome.metrics.clone(),
        }))
        .await;
    }

    async fn publish(&self, event: Event) {
        // Progress is advisory: the job's record has it too, so a lost event costs nothing.
        if let Err(e) = self.bus.publish_recorded(&Envelope::of(&event)).await {
            tracing::warn!(error = %e, kind = event.kind(), "cannot publish a retrain event");
        }
    }
}

/// The gate's decision for the registered candidate.
struct Verdict {
    version: i32,
    metrics: RetrainMetrics,
    promote: bool,
    reason: Option<String>,
    /// The active version the gate compared with.
    compared_with: i32,
}

impl Verdict {
    /// This run's verdict; but when an earlier run of the job registered its artifact already,
    /// that artifact is the job's, so its own scores and verdict decide.
    fn of(registered: Registered, metrics: RetrainMetrics) -> Result<Verdict, Failure> {
        let version = registered.version;
        let metrics = match registered.earlier {
            Some(earlier) => {
                tracing::info!(
                    version,
                    "an earlier run registered this job's candidate; using its verdict"
                );
                serde_json::from_value::<RetrainMetrics>(earlier).map_err(|e| {
                    Failure::Failed(format!(
                        "v{version}, registered by an earlier run of this job, has metrics that cannot be read: {e}"
                    ))
                })?
            }
            None => metrics,
        };
        Ok(Verdict {
            version,
            promote: metrics.gate.promote,
            reason: metrics.gate.reason.clone(),
            compared_with: metrics.active.version,
            metrics,
        })
    }

    fn rejected(self) -> Outcome {
        Outcome {
            state: JobState::Rejected,
            metrics: Some(self.metrics),
            reason: self.reason,
            model_version: Some(self.version),
            rollout_id: None,
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
