use std::path::PathBuf;
use std::time::Duration;

use common::config::{Backends, CommonConfig, ConfigError, Env};
use common::service_auth::ServiceClientConfig;

#[derive(Debug, Clone)]
pub struct Config {
    pub common: CommonConfig,
    /// The database, Redis and token verification.
    pub backends: Backends,
    /// predict-svc's management port (`PREDICT_INTERNAL_URL`): the active model, registration,
    /// promotion.
    pub predict_url: String,
    /// feedback-svc's management port (`FEEDBACK_INTERNAL_URL`): the labelled feedback.
    pub feedback_url: String,
    /// Who this worker is to auth-svc, for its service tokens.
    pub service_client: ServiceClientConfig,
    /// The four MNIST IDX files.
    pub mnist_dir: PathBuf,
    pub retrain: RetrainConfig,
    pub worker: WorkerConfig,
}

/// What a job trains on and how its candidate is judged.
#[derive(Debug, Clone, PartialEq)]
pub struct RetrainConfig {
    /// MNIST training digits a job trains on besides the feedback (all 60,000 by default).
    pub mnist_sample: usize,
    /// How many times each labelled feedback example is repeated in the training data.
    pub feedback_weight: usize,
    /// The most labelled examples one user contributes to one training job.
    pub max_labels_per_user: usize,
    /// MNIST test digits in the holdout (all 10,000 by default).
    pub eval_sample: usize,
    /// How much lower (in accuracy points, 0.5 = half a percent) the candidate may score than the
    /// active version on the MNIST holdout and still be promoted.
    pub tolerance_points: f64,
}

/// How the worker consumes the queue.
#[derive(Debug, Clone, PartialEq)]
pub struct WorkerConfig {
    /// Run jobs in this process (a replica with `false` only answers the job API).
    pub enabled: bool,
    /// This worker's name in the consumer group; unique per process by default.
    pub consumer: String,
    /// A job delivered to a worker that has not shown life for this long is taken over.
    pub reclaim_idle: Duration,
}

pub const DEFAULT_PORT: u16 = 8085;

impl Config {
    pub fn from_env(mut env: Env) -> Result<Self, ConfigError> {
        let common = CommonConfig::read(&mut env, DEFAULT_PORT);
        let backends = Backends::read(&mut env, common.mode);
        let predict_url = env.or("PREDICT_INTERNAL_URL", "http://127.0.0.1:9082".to_owned());
        let feedback_url = env.or("FEEDBACK_INTERNAL_URL", "http://127.0.0.1:9083".to_owned());
        let service_client = ServiceClientConfig::read(&mut env, common.mode, "retrain-worker");
        let mnist_dir: PathBuf = env.or("MNIST_DIR", "assets/mnist".to_owned()).into();
        let retrain = RetrainConfig {
            mnist_sample: env.in_range("RETRAIN_MNIST_SAMPLE", 60_000, 0..=60_000),
            feedback_weight: env.in_range("RETRAIN_FEEDBACK_WEIGHT", 10, 1..=100),
            max_labels_per_user: env.in_range("RETRAIN_MAX_LABELS_PER_USER", 50, 1..=100_000),
            eval_sample: env.in_range("RETRAIN_EVAL_SAMPLE", 10_000, 100..=10_000),
            tolerance_points: env.in_range("RETRAIN_TOLERANCE_POINTS", 0.5, 0.0..=100.0),
        };
        let default_consumer = format!(
            "{}-{}",
            std::env::var("HOSTNAME").unwrap_or_else(|_| "worker".to_owned()),
            &uuid::Uuid::new_v4().simple().to_string()[..8]
        );
        let worker = WorkerConfig {
            enabled: env.or("RETRAIN_WORKER_ENABLED", true),
            consumer: env.or("RETRAIN_CONSUMER", default_consumer),
            reclaim_idle: Duration::from_secs(env.in_range(
                "RETRAIN_RECLAIM_IDLE_SECS",
                120,
                1..=86_400,
            )),
        };
        env.finish()?;
        Ok(Config {
            common,
            backends,
            predict_url,
            feedback_url,
            service_client,
            mnist_dir,
            retrain,
            worker,
        })
    }
}
