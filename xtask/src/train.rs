//! `cargo xtask train`: fetch the assets, then train the digit models (mnist-mlp, mnist-cnn) into
//! the model folder. The trainer (`retrain-worker`'s `train` binary) keeps its artifacts in a
//! per-user cache keyed by the data and the training code, so a second run trains nothing.

use std::path::{Path, PathBuf};

use anyhow::{Context, Result, bail};

use crate::{cargo, display_path, setup};

/// The artifacts predict-svc needs, as the trainer names them.
const MODEL_FILES: [&str; 2] = ["mnist-mlp.onnx", "mnist-cnn.onnx"];

pub fn run(root: &Path, force: bool) -> Result<()> {
    setup::run(root)?;
    train_models(root, force)
}

/// `$MODEL_DIR` when set, else `<root>/data/models` (as `cargo xtask up` passes to the services).
pub fn model_dir(root: &Path) -> PathBuf {
    std::env::var_os("MODEL_DIR")
        .filter(|dir| !dir.is_empty())
        .map_or_else(|| root.join("data").join("models"), |dir| root.join(dir))
}

/// Whether a model predict-svc needs is missing from `model_dir(root)`.
pub fn models_missing(root: &Path) -> bool {
    let dir = model_dir(root);
    MODEL_FILES.iter().any(|file| !dir.join(file).is_file())
}

/// Runs the trainer (assets already fetched); `force` ignores the artifact cache.
pub fn train_models(root: &Path, force: bool) -> Result<()> {
    let out = model_dir(root);
    eprintln!(
        "training the digit models into {}",
        display_path(root, &out)
    );
    let mut command = cargo();
    command
        .current_dir(root)
        .args(["run", "--package", "retrain-worker", "--bin", "train", "--"])
        .arg("--mnist-dir")
        .arg(setup::mnist_dir(root))
        .arg("--out")
        .arg(&out);
    if force {
        command.arg("--force");
    }
    let status = command.status().context("running cargo run --bin train")?;
    if !status.success() {
        bail!("training the digit models failed ({status})");
    }
    Ok(())
}
