//! Preprocessing real MNIST test digits rendered as image files of every accepted kind.
#![allow(clippy::unwrap_used, clippy::expect_used)]

mod errors;
mod roundtrip;

use std::path::PathBuf;
use std::sync::OnceLock;

use digits::{Dataset, Grid};

/// `MNIST_DIR`, else `<repo>/assets/mnist` (fetched by `cargo xtask setup`).
pub fn mnist_dir() -> PathBuf {
    std::env::var_os("MNIST_DIR")
        .filter(|dir| !dir.is_empty())
        .map(PathBuf::from)
        .unwrap_or_else(|| PathBuf::from(env!("CARGO_MANIFEST_DIR")).join("../assets/mnist"))
}

/// The 10,000 MNIST test digits, loaded once per test process.
pub fn test_digits() -> &'static Dataset {
    static DIGITS: OnceLock<Dataset> = OnceLock::new();
    DIGITS.get_or_init(|| {
        let dir = mnist_dir();
        digits::load_test(&dir).unwrap_or_else(|err| {
            panic!("MNIST test digits missing ({err}): run `cargo xtask setup` or set MNIST_DIR")
        })
    })
}

/// Mean absolute difference between two grids, in grey levels (0–255).
pub fn mean_abs_diff(a: &Grid, b: &Grid) -> f64 {
    a.iter()
        .zip(b)
        .map(|(&x, &y)| f64::from(x.abs_diff(y)))
        .sum::<f64>()
        / a.len() as f64
}
