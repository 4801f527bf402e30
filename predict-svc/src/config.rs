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
        })
    }
}
