//! `cargo xtask test`: fetch the assets, then run the whole suite with cargo-nextest, and the
//! cross-service suite a second time on the all-in-one mode's embedded backends.

use std::path::Path;
use std::process::{ExitCode, Stdio};

use anyhow::{Context, Result, bail};

use crate::{cargo, exit_code_of, setup, train};

pub fn run(root: &Path, nextest_args: &[String]) -> Result<ExitCode> {
    setup::run(root)?;
    // predict-svc's tests serve the trained models (from the artifact cache after the first run).
    train::train_models(root, false)?;
    let nextest_installed = cargo()
        .args(["nextest", "--version"])
        .stdout(Stdio::null())
        .stderr(Stdio::null())
        .status()
        .is_ok_and(|status| status.success());
    if !nextest_installed {
        bail!(
            "cargo-nextest is not installed: install it with `cargo install cargo-nextest --locked`"
        );
    }
    let defaults = [
        (
            "TEST_DATABASE_URL",
            "postgres://postgres@127.0.0.1:5432/postgres".to_string(),
        ),
        ("TEST_REDIS_URL", "redis://127.0.0.1:6379".to_string()),
        (
            "ORT_DYLIB_PATH",
            setup::onnxruntime_lib(root).display().to_string(),
        ),
        ("MNIST_DIR", setup::mnist_dir(root).display().to_string()),
        ("MODEL_DIR", train::model_dir(root).display().to_string()),
    ];
    let with_defaults = |command: &mut std::process::Command| {
        for (name, value) in &defaults {
            if std::env::var_os(name).is_none() {
                command.env(name, value);
            }
        }
    };
    let mut command = cargo();
    command
        .current_dir(root)
        .args(["nextest", "run", "--workspace"])
        .args(nextest_args);
    with_defaults(&mut command);
    let status = command.status().context("running cargo nextest")?;
    if !status.success() {
        return Ok(exit_code_of(status));
    }

    // The cross-service suite again on the all-in-one mode's embedded backends. The tests of
    // what only Redis and PostgreSQL have (an outage of Redis, migration versions) ran above.
    println!(
        "\n==> the cross-service suite (e2e) again on the embedded backends: SQLite and the in-process bus, queue and stores"
    );
    let mut command = cargo();
    command
        .current_dir(root)
        .env("PREDICTLOOP_TEST_BACKEND", "embedded")
        .args(["nextest", "run", "-p", "e2e", "--no-tests=pass"])
        .args(["-E", "not test(/^(redis_down|migrations)::/)"])
        .args(nextest_args);
    with_defaults(&mut command);
    let status = command
        .status()
        .context("running cargo nextest on the embedded backends")?;
    Ok(exit_code_of(status))
}
