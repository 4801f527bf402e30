//! Trained artifacts kept per user, keyed by what produced them, so that `cargo xtask up` and the
//! tests do not retrain the full models on every run.
//!
//! Layout: `${XDG_CACHE_HOME:-$HOME/.cache}/predictloop/models/<key>/{mnist-mlp.onnx,
//! mnist-cnn.onnx, metrics.json}`, where `<key>` is a SHA-256 over the MNIST files' contents,
//! [`TRAINING_CODE_VERSION`] and each model's hyper-parameters (seed included).

use std::collections::BTreeMap;
use std::fs::{self, File};
use std::io::{self, Read};
use std::path::{Path, PathBuf};

use anyhow::{Context, Result};
use chrono::{DateTime, Utc};
use serde::{Deserialize, Serialize};
use sha2::{Digest, Sha256};

use super::{Arch, Hyperparameters, TRAINING_CODE_VERSION};

pub const METRICS_FILE: &str = "metrics.json";

/// What `metrics.json` holds: one entry per model, by model name.
#[derive(Debug, Clone, PartialEq, Serialize, Deserialize)]
pub struct Metrics {
    pub cache_key: String,
    pub training_code_version: u32,
    pub models: BTreeMap<String, ModelMetrics>,
}

#[derive(Debug, Clone, PartialEq, Serialize, Deserialize)]
pub struct ModelMetrics {
    /// The artifact's file name next to `metrics.json`.
    pub file: String,
    /// SHA-256 of the artifact, lowercase hex.
    pub sha256: String,
    /// Share of the 10,000 test digits classified right, in `[0, 1]`.
    pub test_accuracy: f64,
    pub test_loss: f64,
    /// Mean training loss over the last epoch.
    pub train_loss: f64,
    pub train_digits: usize,
    pub test_digits: usize,
    pub parameters: usize,
    pub seed: u64,
    pub epochs: usize,
    pub hyperparameters: Hyperparameters,
    pub training_seconds: f64,
    pub trained_at: DateTime<Utc>,
}

/// The artifact's file name for a model.
pub fn artifact_file(arch: Arch) -> String {
    format!("{}.onnx", arch.model_name())
}

/// `${XDG_CACHE_HOME:-$HOME/.cache}/predictloop/models`.
pub fn default_cache_root() -> Result<PathBuf> {
    let non_empty = |name: &str| std::env::var_os(name).filter(|value| !value.is_empty());
    let base = match non_empty("XDG_CACHE_HOME") {
        Some(dir) => PathBuf::from(dir),
        None => PathBuf::from(
            non_empty("HOME").context("neither XDG_CACHE_HOME nor HOME is set: no model cache")?,
        )
        .join(".cache"),
    };
    Ok(base.join("predictloop").join("models"))
}

/// The cache key for training `plan` on the MNIST files in `mnist_dir`.
pub fn cache_key(mnist_dir: &Path, plan: &[(Arch, Hyperparameters)]) -> Result<String> {
    #[derive(Serialize)]
    struct KeyMaterial<'a> {
        training_code_version: u32,
        data: BTreeMap<&'static str, String>,
        models: Vec<(Arch, &'a Hyperparameters)>,
    }
    let mut data = BTreeMap::new();
    for name in digits::idx::FILES {
        let path = mnist_dir.join(name);
        data.insert(
            name,
            file_sha256(&path).with_context(|| format!("reading {}", path.display()))?,
        );
    }
    let material = KeyMaterial {
        training_code_version: TRAINING_CODE_VERSION,
        data,
        models: plan.iter().map(|(arch, hyper)| (*arch, hyper)).collect(),
    };
    Ok(sha256_hex(&serde_json::to_vec(&material)?))
}

/// The metrics of a complete cache entry whose artifacts match their recorded hashes; `None`
/// when the entry is missing, incomplete or damaged (it is then trained again).
pub fn read_entry(dir: &Path, models: &[Arch]) -> Option<Metrics> {
    let metrics: Metrics = serde_json::from_slice(&fs::read(dir.join(METRICS_FILE)).ok()?).ok()?;
    for arch in models {
        let entry = metrics.models.get(arch.model_name())?;
        if file_sha256(&dir.join(&entry.file)).ok()? != entry.sha256 {
            return None;
        }
    }
    Some(metrics)
}

/// Copies a cache entry's artifacts and `metrics.json` into `out`. Each file appears under its
/// final name only once complete, so a service starting meanwhile never reads half a model.
pub fn install(entry: &Path, metrics: &Metrics, out: &Path) -> Result<Vec<PathBuf>> {
    fs::create_dir_all(out).with_context(|| format!("creating {}", out.display()))?;
    let files = metrics
        .models
        .values()
        .map(|model| model.file.as_str())
        .chain([METRICS_FILE]);
    let mut installed = Vec::new();
    for file in files {
        let to = out.join(file);
        let partial = out.join(format!(".{file}.partial-{}", std::process::id()));
        fs::copy(entry.join(file), &partial).with_context(|| {
            format!(
                "copying {} to {}",
                entry.join(file).display(),
                out.display()
            )
        })?;
        fs::rename(&partial, &to).with_context(|| format!("moving {} into place", to.display()))?;
        installed.push(to);
    }
    Ok(installed)
}

/// A folder to build a cache entry in, next to where it will live; removed unless committed.
pub struct PendingEntry {
    dir: PathBuf,
    committed: bool,
}

impl PendingEntry {
    pub fn new(root: &Path) -> Result<Self> {
        fs::create_dir_all(root).with_context(|| format!("creating {}", root.display()))?;
        let nanos = std::time::SystemTime::now()
            .duration_since(std::time::UNIX_EPOCH)
            .map(|elapsed| elapsed.subsec_nanos())
            .unwrap_or_default();
        let dir = root.join(format!(".partial-{}-{nanos}", std::process::id()));
        fs::create_dir_all(&dir).with_context(|| format!("creating {}", dir.display()))?;
        Ok(Self {
            dir,
            committed: false,
        })
    }

    pub fn path(&self) -> &Path {
        &self.dir
    }

    /// Moves the finished entry to `root/<key>`, replacing an older one.
    pub fn commit(mut self, root: &Path, key: &str) -> Result<PathBuf> {
        let target = root.join(key);
        if target.exists() {
            fs::remove_dir_all(&target)
                .with_context(|| format!("removing the old entry {}", target.display()))?;
        }
        fs::rename(&self.dir, &target)
            .with_context(|| format!("moving {} into place", target.display()))?;
        self.committed = true;
        Ok(target)
    }
}

impl Drop for PendingEntry {
    fn drop(&mut self) {
        if !self.committed {
            let _ = fs::remove_dir_all(&self.dir);
        }
    }
}

/// Writes `bytes` to `path` and returns their SHA-256.
pub fn write_artifact(path: &Path, bytes: &[u8]) -> Result<String> {
    fs::write(path, bytes).with_context(|| format!("writing {}", path.display()))?;
    Ok(sha256_hex(bytes))
}

pub fn write_metrics(dir: &Path, metrics: &Metrics) -> Result<()> {
    let path = dir.join(METRICS_FILE);
    let mut json = serde_json::to_string_pretty(metrics)?;
    json.push('\n');
    fs::write(&path, json).with_context(|| format!("writing {}", path.display()))
}

/// Reads a `metrics.json` (in a cache entry or an output folder).
pub fn read_metrics(dir: &Path) -> Result<Metrics> {
    let path = dir.join(METRICS_FILE);
    let bytes = fs::read(&path).with_context(|| format!("reading {}", path.display()))?;
    let metrics = serde_json::from_slice(&bytes)
        .with_context(|| format!("{} is not a metrics file", path.display()))?;
    Ok(metrics)
}

pub use common::digest::sha256_hex;

pub fn file_sha256(path: &Path) -> io::Result<String> {
    let mut file = File::open(path)?;
    let mut hasher = Sha256::new();
    let mut buffer = vec![0_u8; 1 << 16];
    loop {
        let read = file.read(&mut buffer)?;
        if read == 0 {
            break;
        }
        hasher.update(&buffer[..read]);
    }
    Ok(common::digest::hex(&hasher.finalize()))
}
