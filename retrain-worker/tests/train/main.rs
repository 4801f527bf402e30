//! Tests of the training code: they train on small subsets of MNIST, never the full models.
#![allow(clippy::unwrap_used, clippy::expect_used)]

mod cache;
mod determinism;
mod parity;

use std::path::PathBuf;
use std::sync::OnceLock;

use digits::Dataset;

fn repo_root() -> PathBuf {
    PathBuf::from(env!("CARGO_MANIFEST_DIR"))
        .parent()
        .expect("retrain-worker lies in the workspace")
        .to_path_buf()
}

fn env_path(name: &str) -> Option<PathBuf> {
    std::env::var_os(name)
        .filter(|value| !value.is_empty())
        .map(PathBuf::from)
}

/// `MNIST_DIR`, else `<repo>/assets/mnist` (fetched by `cargo xtask setup`).
pub fn mnist_dir() -> PathBuf {
    env_path("MNIST_DIR").unwrap_or_else(|| repo_root().join("assets").join("mnist"))
}

fn load(which: &str, load: fn(&std::path::Path) -> Result<Dataset, digits::IdxError>) -> Dataset {
    load(&mnist_dir()).unwrap_or_else(|err| {
        panic!("MNIST {which} digits unavailable ({err}): run `cargo xtask setup` or set MNIST_DIR")
    })
}

/// The first `n` training digits.
pub fn train_digits(n: usize) -> Dataset {
    static TRAIN: OnceLock<Dataset> = OnceLock::new();
    TRAIN
        .get_or_init(|| load("training", digits::load_train))
        .take(n)
}

/// The first `n` test digits.
pub fn test_digits(n: usize) -> Dataset {
    static TEST: OnceLock<Dataset> = OnceLock::new();
    TEST.get_or_init(|| load("test", digits::load_test)).take(n)
}

/// The process's one ONNX Runtime environment (ORT allows one per process, ever), loaded from
/// `ORT_DYLIB_PATH`, else `<repo>/assets/onnxruntime/libonnxruntime.so.1.31.1`.
pub fn onnx_runtime() -> &'static ort::environment::Environment {
    static ENVIRONMENT: OnceLock<ort::environment::Environment> = OnceLock::new();
    ENVIRONMENT.get_or_init(|| {
        let library = env_path("ORT_DYLIB_PATH").unwrap_or_else(|| {
            repo_root()
                .join("assets")
                .join("onnxruntime")
                .join("libonnxruntime.so.1.31.1")
        });
        ort::init_from(&library)
            .unwrap_or_else(|err| {
                panic!(
                    "cannot load ONNX Runtime from {} ({err}): run `cargo xtask setup` or set ORT_DYLIB_PATH",
                    library.display()
                )
            })
            .with_name("retrain-worker-tests")
            .build()
            .expect("creating the ONNX Runtime environment")
    })
}
