use crate::engine::BatchConfig;
use crate::gate::Preprocessing;
use common::config::{Backends, CommonConfig, ConfigError, Env};
use std::path::PathBuf;
use std::sync::Arc;
use std::time::Duration;

#[derive(Debug, Clone)]
pub struct Config {
    pub common: CommonConfig,
    /// The database, Redis and token verification.
    pub backends: Backends,
    /// The ONNX Runtime shared library.
    pub ort_dylib_path: PathBuf,
    /// Where the initial models trained by `cargo xtask train` are imported from.
    pub model_dir: PathBuf,
    pub max_upload_bytes: usize,
    /// The decoding budget of an image and how many are decoded at once (`MAX_IMAGE_SIDE`,
    /// `MAX_IMAGE_BYTES`, `PREPROCESS_CONCURRENCY`, `PREPROCESS_QUEUE`).
    pub preprocessing: Arc<Preprocessing>,
    /// Most images one Open Inference Protocol request may carry (`OIP_MAX_BATCH`); its body
    /// may be at most [`crate::oip_body_limit`] of it.
    pub oip_max_batch: usize,
    pub batch: BatchConfig,
    /// How long a served prediction stays retrievable.
    pub prediction_ttl: Duration,
    /// How often the registry is re-read, in case a promotion event was missed.
    pub registry_sync: Duration,
    /// How rollouts decide (`ROLLOUT_*`).
    pub rollout: rollout::Policy,
    /// How long a rollout may run before it ends inconclusive (`ROLLOUT_MAX_HOURS`).
    pub rollout_max_age: Duration,
    /// Share of answers that ask for a label (`FEEDBACK_REQUEST_SHARE`).
    pub feedback_share: f64,
    /// Share of a rollout's requests also run on the other version (`SHADOW_SAMPLE`), and how
    /// many such runs may wait (`SHADOW_QUEUE`).
    pub shadow_sample: f64,
    pub shadow_queue: usize,
}

/// The rollout policy from `ROLLOUT_MARGIN`, `ROLLOUT_CONFIDENCE`, `ROLLOUT_MAX_OUTCOMES`,
/// `ROLLOUT_USER_CAP`, `ROLLOUT_CANARY_STEPS` (comma-separated shares) and
/// `ROLLOUT_MIN_OUTCOMES`.
fn read_policy(env: &mut Env) -> rollout::Policy {
    let default = rollout::Policy::default();
    let steps = match env.raw("ROLLOUT_CANARY_STEPS").map(str::to_owned) {
        None => default.canary_steps.clone(),
        Some(text) => match text
            .split(',')
            .map(|s| s.trim().parse::<f64>())
            .collect::<Result<Vec<_>, _>>()
        {
            Ok(steps) => steps,
            Err(e) => {
                env.problem(format!("ROLLOUT_CANARY_STEPS: {e}"));
                default.canary_steps.clone()
            }
        },
    };
    let policy = rollout::Policy {
        margin: env.in_range("ROLLOUT_MARGIN", default.margin, 0.0..=1.0),
        confidence: env.in_range("ROLLOUT_CONFIDENCE", default.confidence, 0.5..=1.0),
        max_outcomes: env.in_range("ROLLOUT_MAX_OUTCOMES", default.max_outcomes, 2..=10_000_000),
        user_cap: env.in_range("ROLLOUT_USER_CAP", default.user_cap, 0.0..=1.0),
        canary_steps: steps,
        min_outcomes_per_stage: env.in_range(
            "ROLLOUT_MIN_OUTCOMES",
            default.min_outcomes_per_stage,
            1..=1_000_000,
        ),
    };
    if let Err(e) = policy.validate() {
        env.problem(format!("rollout policy: {e}"));
        return default;
    }
    policy
}

pub const DEFAULT_PORT: u16 = 8082;

impl Config {
    pub fn from_env(mut env: Env) -> Result<Self, ConfigError> {
        let common = CommonConfig::read(&mut env, DEFAULT_PORT);
        let backends = Backends::read(&mut env, common.mode);
        let ort_dylib_path: PathBuf = env.required::<String>("ORT_DYLIB_PATH").into();
        let model_dir: PathBuf = env.or("MODEL_DIR", "data/models".to_owned()).into();
        let max_upload_bytes =
            env.in_range("MAX_UPLOAD_BYTES", 5 * 1024 * 1024, 1024..=64 * 1024 * 1024);
        let max_side = env.in_range(
            "MAX_IMAGE_SIDE",
            digits::DecodeLimits::DEFAULT_MAX_SIDE,
            28..=16_384,
        );
        let max_image_bytes = env.in_range(
            "MAX_IMAGE_BYTES",
            digits::DecodeLimits::DEFAULT_MAX_BYTES,
            1024 * 1024..=1024 * 1024 * 1024,
        );
        let cores = std::thread::available_parallelism()
            .map(|n| n.get())
            .unwrap_or(2);
        let concurrency = env.in_range("PREPROCESS_CONCURRENCY", cores, 1..=256);
        let queue = env.in_range("PREPROCESS_QUEUE", 16 * concurrency, 0..=4096);
        let oip_max_batch = env.in_range("OIP_MAX_BATCH", 256, 1..=1024);
        let max_size = env.in_range("BATCH_MAX_SIZE", 32, 1..=256);
        let max_wait_ms = env.in_range("BATCH_MAX_WAIT_MS", 2, 0..=1000);
        let sessions = env.in_range("INFERENCE_SESSIONS", cores, 1..=64);
        let ttl = env.in_range(
            "PREDICTION_TTL_SECS",
            7 * 24 * 3600,
            24 * 3600..=90 * 24 * 3600,
        );
        let sync = env.in_range("REGISTRY_SYNC_SECS", 30, 1..=3600);
        let rollout = read_policy(&mut env);
        let rollout_hours = env.in_range("ROLLOUT_MAX_HOURS", 168, 1..=24 * 365);
        let feedback_share = env.in_range("FEEDBACK_REQUEST_SHARE", 0.2, 0.0..=1.0);
        let shadow_sample = env.in_range("SHADOW_SAMPLE", 1.0, 0.0..=1.0);
        let shadow_queue = env.in_range("SHADOW_QUEUE", 256, 1..=65_536);
        env.finish()?;
        Ok(Config {
            common,
            backends,
            ort_dylib_path,
            model_dir,
            max_upload_bytes,
            preprocessing: Preprocessing::new(
                digits::DecodeLimits {
                    max_side,
                    max_bytes: max_image_bytes,
                },
                concurrency,
                queue,
            ),
            oip_max_batch,
            batch: BatchConfig {
                max_size,
                max_wait: Duration::from_millis(max_wait_ms),
                sessions,
            },
            prediction_ttl: Duration::from_secs(ttl),
            registry_sync: Duration::from_secs(sync),
            rollout,
            rollout_max_age: Duration::from_secs(rollout_hours * 3600),
            feedback_share,
            shadow_sample,
            shadow_queue,
        })
    }
}
