//! Inference with ONNX Runtime: one process-wide environment, a small pool of sessions per
//! loaded model version, and a micro-batcher that runs concurrent requests as one batch on
//! the blocking pool, never on an async worker.

use ort::environment::Environment;
use ort::session::Session;
use ort::value::Tensor;
use std::path::Path;
use std::sync::atomic::{AtomicU64, Ordering};
use std::sync::{Arc, Mutex, OnceLock};
use std::time::Duration;
use tokio::sync::{Semaphore, mpsc, oneshot};

pub const PIXELS: usize = 784;
pub const CLASSES: usize = 10;
pub const INPUT_NAME: &str = "input";
pub const OUTPUT_NAME: &str = "probabilities";

#[derive(Debug, Clone, thiserror::Error)]
pub enum EngineError {
    #[error("cannot load ONNX Runtime from {path}: {reason}")]
    Runtime { path: String, reason: String },
    #[error("cannot load model {name} v{version}: {reason}")]
    Load {
        name: String,
        version: i32,
        reason: String,
    },
    #[error("inference failed: {0}")]
    Inference(String),
    #[error("the model is being replaced; try again")]
    Closed,
}

static ENVIRONMENT: OnceLock<Environment> = OnceLock::new();
static INIT: Mutex<()> = Mutex::new(());

/// The process's ONNX Runtime environment; only one may ever exist, so it is made once.
pub fn environment(dylib: &Path) -> Result<&'static Environment, EngineError> {
    if let Some(env) = ENVIRONMENT.get() {
        return Ok(env);
    }
    let _guard = INIT.lock().map_err(|e| EngineError::Runtime {
        path: dylib.display().to_string(),
        reason: e.to_string(),
    })?;
    if let Some(env) = ENVIRONMENT.get() {
        return Ok(env);
    }
    let runtime_error = |reason: String| EngineError::Runtime {
        path: dylib.display().to_string(),
        reason,
    };
    if !dylib.is_file() {
        return Err(runtime_error(
            "no such file (run `cargo xtask setup`, or set ORT_DYLIB_PATH)".into(),
        ));
    }
    let env = ort::init_from(dylib)
        .map_err(|e| runtime_error(e.to_string()))?
        .build()
        .map_err(|e| runtime_error(e.to_string()))?;
    Ok(ENVIRONMENT.get_or_init(|| env))
}

#[derive(Debug, Clone, Copy)]
pub struct BatchConfig {
    /// Most samples run together; 1 turns batching off.
    pub max_size: usize,
    /// How long a batch waits for more requests while other batches are running.
    pub max_wait: Duration,
    /// Sessions per model version: batches that may run at the same time.
    pub sessions: usize,
}

/// Sessions of one model version; `Session::run` needs `&mut`, so each sits behind a lock
/// and at most `len()` batches run at once.
struct SessionPool {
    sessions: Vec<Mutex<Session>>,
}

impl SessionPool {
    fn build(env: &Environment, bytes: &[u8], count: usize) -> Result<Self, String> {
        let mut sessions = Vec::with_capacity(count);
        for _ in 0..count.max(1) {
            let session = Session::builder(env)
                .map_err(|e| e.to_string())?
                .with_intra_threads(1)
                .map_err(|e| e.to_string())?
                .with_inter_threads(1)
                .map_err(|e| e.to_string())?
                .with_intra_op_spinning(false)
                .map_err(|e| e.to_string())?
                .with_inter_op_spinning(false)
                .map_err(|e| e.to_string())?
                .commit_from_memory(bytes)
                .map_err(|e| e.to_string())?;
            sessions.push(Mutex::new(session));
        }
        Ok(SessionPool { sessions })
    }

    /// Runs `n` samples (`n * 784` values in [0, 1]) and returns `n * 10` probabilities.
    fn run(&self, n: usize, pixels: Vec<f32>) -> Result<Vec<f32>, EngineError> {
        let session = self
            .sessions
            .iter()
            .find_map(|s| s.try_lock().ok())
            .map_or_else(
                || {
                    self.sessions[0]
                        .lock()
                        .map_err(|e| EngineError::Inference(e.to_string()))
                },
                Ok,
            )?;
        let mut session = session;
        let input = Tensor::from_array((vec![n as i64, 1, 28, 28], pixels))
            .map_err(|e| EngineError::Inference(e.to_string()))?;
        let outputs = session
            .run(ort::inputs![INPUT_NAME => input])
            .map_err(|e| EngineError::Inference(e.to_string()))?;
        let (shape, values) = outputs[OUTPUT_NAME]
            .try_extract_tensor::<f32>()
            .map_err(|e| EngineError::Inference(e.to_string()))?;
        if values.len() != n * CLASSES {
            return Err(EngineError::Inference(format!(
                "the model answered shape {shape:?} for {n} inputs"
            )));
        }
        Ok(values.to_vec())
    }
}

struct Job {
    n: usize,
    pixels: Vec<f32>,
    reply: oneshot::Sender<Result<Vec<f32>, EngineError>>,
}

/// One model version, loaded and ready to serve. Dropping the last handle stops its batcher
/// once the requests it holds are answered.
pub struct LoadedModel {
    pub name: String,
    pub version: i32,
    pub sha256: String,
    queue: mpsc::Sender<Job>,
    stats: Arc<BatchStats>,
}

/// What the batcher ran: how many batches, holding how many samples.
#[derive(Debug, Default)]
pub struct BatchStats {
    batches: AtomicU64,
    samples: AtomicU64,
}

impl BatchStats {
    /// (batches, samples) run so far.
    pub fn read(&self) -> (u64, u64) {
        (
            self.batches.load(Ordering::Relaxed),
            self.samples.load(Ordering::Relaxed),
        )
    }
}

impl std::fmt::Debug for LoadedModel {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        write!(f, "{} v{}", self.name, self.version)
    }
}

impl LoadedModel {
    /// Builds the sessions (on the blocking pool), checks the model's input and output with a
    /// warm-up run, and starts its batcher.
    pub async fn load(
        env: &'static Environment,
        name: &str,
        version: i32,
        sha256: &str,
        bytes: Vec<u8>,
        batch: BatchConfig,
    ) -> Result<Arc<Self>, EngineError> {
        let load_error = |reason: String| EngineError::Load {
            name: name.to_owned(),
            version,
            reason,
        };
        let pool = tokio::task::spawn_blocking(move || {
            let pool = SessionPool::build(env, &bytes, batch.sessions)?;
            pool.run(1, vec![0.0; PIXELS]).map_err(|e| e.to_string())?;
            Ok::<_, String>(pool)
        })
        .await
        .map_err(|e| load_error(e.to_string()))?
        .map_err(load_error)?;
        let (queue, rx) = mpsc::channel(1024);
        let stats = Arc::new(BatchStats::default());
        let labels = [name.to_owned(), version.to_string()];
        tokio::spawn(run_batcher(
            rx,
            Arc::new(pool),
            batch,
            stats.clone(),
            labels,
        ));
        tracing::info!(model = name, version, "model version loaded");
        Ok(Arc::new(LoadedModel {
            name: name.to_owned(),
            version,
            sha256: sha256.to_owned(),
            queue,
            stats,
        }))
    }

    pub fn batch_stats(&self) -> (u64, u64) {
        self.stats.read()
    }

    /// Probabilities for `n` inputs of 784 values each.
    pub async fn infer(&self, n: usize, pixels: Vec<f32>) -> Result<Vec<f32>, EngineError> {
        let (reply, answer) = oneshot::channel();
        self.queue
            .send(Job { n, pixels, reply })
            .await
            .map_err(|_| EngineError::Closed)?;
        answer.await.map_err(|_| EngineError::Closed)?
    }
}

/// Inference latency and batch size per model version, for `/metrics`.
struct InferenceMetrics {
    latency: common::metrics::Histogram,
    batch_size: common::metrics::Histogram,
}

fn inference_metrics() -> &'static InferenceMetrics {
    static METRICS: std::sync::OnceLock<InferenceMetrics> = std::sync::OnceLock::new();
    METRICS.get_or_init(|| {
        let registry = common::metrics::global();
        InferenceMetrics {
            latency: registry.histogram(
                "inference_duration_seconds",
                "Time ONNX Runtime takes for one batch, by model and version.",
                &["model", "version"],
                common::metrics::LATENCY_BUCKETS,
            ),
            batch_size: registry.histogram(
                "inference_batch_size",
                "Digits per batch, by model and version.",
                &["model", "version"],
                &[1.0, 2.0, 4.0, 8.0, 16.0, 32.0, 64.0, 128.0, 256.0],
            ),
        }
    })
}

async fn run_batcher(
    mut rx: mpsc::Receiver<Job>,
    pool: Arc<SessionPool>,
    batch: BatchConfig,
    stats: Arc<BatchStats>,
    labels: [String; 2],
) {
    let sessions = pool.sessions.len();
    let slots = Arc::new(Semaphore::new(sessions));
    while let Some(first) = rx.recv().await {
        let mut total = first.n;
        let mut jobs = vec![first];
        if batch.max_size > 1 {
            // Whatever is already waiting joins at once.
            while total < batch.max_size {
                match rx.try_recv() {
                    Ok(job) => {
                        total += job.n;
                        jobs.push(job);
                    }
                    Err(_) => break,
                }
            }
            // Waiting for company only pays while other batches are running: a lone request
            // on an idle model runs at once instead of paying the wait.
            let busy = slots.available_permits() < sessions;
            if busy {
                let deadline = tokio::time::Instant::now() + batch.max_wait;
                while total < batch.max_size {
                    match tokio::time::timeout_at(deadline, rx.recv()).await {
                        Ok(Some(job)) => {
                            total += job.n;
                            jobs.push(job);
                        }
                        _ => break,
                    }
                }
            }
        }
        let Ok(slot) = slots.clone().acquire_owned().await else {
            break;
        };
        stats.batches.fetch_add(1, Ordering::Relaxed);
        stats.samples.fetch_add(total as u64, Ordering::Relaxed);
        let pool = pool.clone();
        let labels = labels.clone();
        tokio::task::spawn_blocking(move || {
            let _slot = slot;
            let mut pixels = Vec::with_capacity(total * PIXELS);
            for job in &jobs {
                pixels.extend_from_slice(&job.pixels);
            }
            let started = std::time::Instant::now();
            let result = pool.run(total, pixels);
            let metrics = inference_metrics();
            let labels = [labels[0].as_str(), labels[1].as_str()];
            metrics
                .latency
                .observe(&labels, started.elapsed().as_secs_f64());
            metrics.batch_size.observe(&labels, total as f64);
            match result {
                Ok(probabilities) => {
                    let mut offset = 0;
                    for job in jobs {
                        let end = offset + job.n * CLASSES;
                        let _ = job.reply.send(Ok(probabilities[offset..end].to_vec()));
                        offset = end;
                    }
                }
                Err(e) => {
                    tracing::error!(error = %e, "batch inference failed");
                    for job in jobs {
                        let _ = job.reply.send(Err(e.clone()));
                    }
                }
            }
        });
    }
}
