//! The artifact cache: its key, and entries that are complete or not.

use std::collections::BTreeMap;
use std::fs;
use std::path::{Path, PathBuf};

use retrain_worker::train::cache::{self, Metrics, ModelMetrics};
use retrain_worker::train::{Arch, Hyperparameters, TRAINING_CODE_VERSION};

/// A private folder under the system's temporary directory, removed when dropped.
struct TempDir(PathBuf);

impl TempDir {
    fn new(name: &str) -> Self {
        let dir = std::env::temp_dir().join(format!("retrain-cache-{name}-{}", std::process::id()));
        let _ = fs::remove_dir_all(&dir);
        fs::create_dir_all(&dir).unwrap();
        Self(dir)
    }
}

impl Drop for TempDir {
    fn drop(&mut self) {
        let _ = fs::remove_dir_all(&self.0);
    }
}

fn fake_mnist(dir: &Path, train_labels: &[u8]) {
    for name in digits::idx::FILES {
        fs::write(dir.join(name), name.as_bytes()).unwrap();
    }
    fs::write(dir.join(digits::idx::TRAIN_LABELS), train_labels).unwrap();
}

fn plan(seed: u64) -> Vec<(Arch, Hyperparameters)> {
    Arch::ALL
        .into_iter()
        .map(|arch| (arch, Hyperparameters::for_arch(arch, seed)))
        .collect()
}

#[test]
fn the_key_changes_with_the_data_and_the_hyperparameters() {
    let dir = TempDir::new("key");
    fake_mnist(&dir.0, &[1, 2, 3]);
    let key = cache::cache_key(&dir.0, &plan(1)).unwrap();
    assert_eq!(key.len(), 64);
    assert_eq!(key, cache::cache_key(&dir.0, &plan(1)).unwrap());
    assert_ne!(key, cache::cache_key(&dir.0, &plan(2)).unwrap());
    let mut longer = plan(1);
    longer[1].1.epochs += 1;
    assert_ne!(key, cache::cache_key(&dir.0, &longer).unwrap());
    fake_mnist(&dir.0, &[1, 2, 4]);
    assert_ne!(key, cache::cache_key(&dir.0, &plan(1)).unwrap());

    fs::remove_file(dir.0.join(digits::idx::TEST_IMAGES)).unwrap();
    let err = cache::cache_key(&dir.0, &plan(1)).unwrap_err();
    assert!(
        format!("{err:#}").contains(digits::idx::TEST_IMAGES),
        "{err:#}"
    );
}

#[test]
fn an_entry_counts_only_when_complete_and_intact() {
    let root = TempDir::new("entry");
    let pending = cache::PendingEntry::new(&root.0).unwrap();
    let mut models = BTreeMap::new();
    for arch in Arch::ALL {
        let file = cache::artifact_file(arch);
        let sha256 =
            cache::write_artifact(&pending.path().join(&file), arch.model_name().as_bytes())
                .unwrap();
        models.insert(
            arch.model_name().to_string(),
            ModelMetrics {
                file,
                sha256,
                test_accuracy: 0.99,
                test_loss: 0.03,
                train_loss: 0.01,
                train_digits: 60_000,
                test_digits: 10_000,
                parameters: 1,
                seed: 1,
                epochs: 1,
                hyperparameters: Hyperparameters::for_arch(arch, 1),
                training_seconds: 1.0,
                trained_at: chrono::Utc::now(),
            },
        );
    }
    let metrics = Metrics {
        cache_key: "k".into(),
        training_code_version: TRAINING_CODE_VERSION,
        models,
    };
    cache::write_metrics(pending.path(), &metrics).unwrap();
    let entry = pending.commit(&root.0, "k").unwrap();
    assert_eq!(cache::read_entry(&entry, &Arch::ALL), Some(metrics.clone()));

    let out = root.0.join("out");
    let installed = cache::install(&entry, &metrics, &out).unwrap();
    assert_eq!(installed.len(), 3);
    assert_eq!(cache::read_metrics(&out).unwrap(), metrics);
    assert_eq!(fs::read(out.join("mnist-cnn.onnx")).unwrap(), b"mnist-cnn");

    // A damaged artifact, then a missing one: the entry no longer counts.
    fs::write(entry.join("mnist-mlp.onnx"), b"tampered").unwrap();
    assert_eq!(cache::read_entry(&entry, &Arch::ALL), None);
    fs::remove_file(entry.join("mnist-mlp.onnx")).unwrap();
    assert_eq!(cache::read_entry(&entry, &Arch::ALL), None);
    assert_eq!(cache::read_entry(&root.0.join("missing"), &Arch::ALL), None);
}

#[test]
fn an_abandoned_entry_leaves_nothing_behind() {
    let root = TempDir::new("abandoned");
    let path = {
        let pending = cache::PendingEntry::new(&root.0).unwrap();
        fs::write(pending.path().join("half.onnx"), b"...").unwrap();
        pending.path().to_path_buf()
    };
    assert!(!path.exists());
}
