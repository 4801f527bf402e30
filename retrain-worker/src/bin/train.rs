//! `train`: trains the initial digit models on MNIST (or takes them from the artifact cache),
//! exports them to ONNX and installs them in the model folder. `cargo xtask train` runs it.
#![allow(clippy::print_stdout)] // a CLI prints

use std::collections::BTreeMap;
use std::path::{Path, PathBuf};
use std::process::ExitCode;
use std::time::{Duration, Instant};

use anyhow::{Context, Result, bail};
use clap::Parser;
use indicatif::{ProgressBar, ProgressStyle};
use retrain_worker::train::cache::{self, Metrics, ModelMetrics};
use retrain_worker::train::{
    self, Arch, DEFAULT_SEED, Evaluation, Hyperparameters, TRAINING_CODE_VERSION, TrainObserver,
};

#[derive(Parser)]
#[command(
    name = "train",
    about = "Train the digit models (mnist-mlp, mnist-cnn) and export them to ONNX"
)]
struct Args {
    /// Folder holding the four MNIST IDX files [default: $MNIST_DIR, else <repo>/assets/mnist].
    #[arg(long)]
    mnist_dir: Option<PathBuf>,
    /// Where to install the models [default: $MODEL_DIR, else <repo>/data/models].
    #[arg(long)]
    out: Option<PathBuf>,
    /// Train even when the artifact cache holds these models already.
    #[arg(long)]
    force: bool,
    /// Seed of the weights' initialisation and of the shuffling.
    #[arg(long, default_value_t = DEFAULT_SEED)]
    seed: u64,
    /// The artifact cache [default: ${XDG_CACHE_HOME:-$HOME/.cache}/predictloop/models].
    #[arg(long)]
    cache_dir: Option<PathBuf>,
}

fn main() -> ExitCode {
    match run(Args::parse()) {
        Ok(()) => ExitCode::SUCCESS,
        Err(err) => {
            eprintln!("error: {err:#}");
            ExitCode::FAILURE
        }
    }
}

fn run(args: Args) -> Result<()> {
    let started = Instant::now();
    let root = repo_root();
    let mnist_dir = args
        .mnist_dir
        .or_else(|| env_path("MNIST_DIR"))
        .unwrap_or_else(|| root.join("assets").join("mnist"));
    let out = args
        .out
        .or_else(|| env_path("MODEL_DIR"))
        .unwrap_or_else(|| root.join("data").join("models"));
    let cache_root = match args.cache_dir {
        Some(dir) => dir,
        None => cache::default_cache_root()?,
    };
    let plan: Vec<(Arch, Hyperparameters)> = Arch::ALL
        .into_iter()
        .map(|arch| (arch, Hyperparameters::for_arch(arch, args.seed)))
        .collect();
    let key = cache::cache_key(&mnist_dir, &plan).with_context(|| {
        format!(
            "hashing the MNIST files in {} (run `cargo xtask setup` to fetch them)",
            mnist_dir.display()
        )
    })?;
    let entry = cache_root.join(&key);
    let archs: Vec<Arch> = plan.iter().map(|(arch, _)| *arch).collect();

    let cached = if args.force {
        None
    } else {
        cache::read_entry(&entry, &archs)
    };
    let metrics = match cached {
        Some(metrics) => {
            println!("cache hit: {} (trained nothing)", entry.display());
            metrics
        }
        None => {
            if entry.exists() && !args.force {
                eprintln!(
                    "the cache entry {} is incomplete: training again",
                    entry.display()
                );
            }
            train_all(&mnist_dir, &plan, &cache_root, &key)?
        }
    };
    cache::install(&entry, &metrics, &out)?;
    for (name, model) in &metrics.models {
        println!(
            "{name:<10} test accuracy {:6.2} %   loss {:.4}   trained in {:6.1} s   ({} epochs, seed {}, sha256 {}…)",
            100.0 * model.test_accuracy,
            model.test_loss,
            model.training_seconds,
            model.epochs,
            model.seed,
            &model.sha256[..12],
        );
    }
    println!(
        "installed in {} in {:.1} s (cache key {}…)",
        out.display(),
        started.elapsed().as_secs_f64(),
        &key[..12]
    );
    Ok(())
}

/// Trains every model of `plan`, writes the cache entry `key`, and returns its metrics.
fn train_all(
    mnist_dir: &Path,
    plan: &[(Arch, Hyperparameters)],
    cache_root: &Path,
    key: &str,
) -> Result<Metrics> {
    let train_set = digits::load_train(mnist_dir)?;
    let test_set = digits::load_test(mnist_dir)?;
    eprintln!(
        "training on {} digits, testing on {} ({})",
        train_set.len(),
        test_set.len(),
        mnist_dir.display()
    );
    let pending = cache::PendingEntry::new(cache_root)?;
    let mut models = BTreeMap::new();
    for (arch, hyper) in plan {
        let mut bar = EpochBars::new(*arch);
        let trained = train::train(*arch, hyper, &train_set, &mut bar)?;
        let evaluation = train::evaluate(&trained.network, &test_set)?;
        let training_seconds = trained.took.as_secs_f64();
        eprintln!(
            "{arch}: test accuracy {:.2} % after {training_seconds:.1} s",
            100.0 * evaluation.accuracy
        );
        let minimum = arch.minimum_accuracy();
        if evaluation.accuracy < minimum {
            bail!(
                "{arch} reached only {:.2} % on the test digits (at least {:.1} % expected): nothing was installed",
                100.0 * evaluation.accuracy,
                100.0 * minimum
            );
        }
        let trained_at = chrono::Utc::now();
        let metadata = onnx_metadata(*arch, hyper, &evaluation, trained_at)?;
        let bytes = train::export_onnx(&trained.network, &metadata)?;
        let file = cache::artifact_file(*arch);
        let sha256 = cache::write_artifact(&pending.path().join(&file), &bytes)?;
        models.insert(
            arch.model_name().to_string(),
            ModelMetrics {
                file,
                sha256,
                test_accuracy: evaluation.accuracy,
                test_loss: evaluation.loss,
                train_loss: f64::from(trained.train_loss),
                train_digits: train_set.len(),
                test_digits: test_set.len(),
                parameters: trained.network.parameter_count(),
                seed: hyper.seed,
                epochs: hyper.epochs,
                hyperparameters: hyper.clone(),
                training_seconds,
                trained_at,
            },
        );
    }
    let metrics = Metrics {
        cache_key: key.to_string(),
        training_code_version: TRAINING_CODE_VERSION,
        models,
    };
    cache::write_metrics(pending.path(), &metrics)?;
    pending.commit(cache_root, key)?;
    Ok(metrics)
}

/// What the exported ONNX file says of its own making (its metadata properties).
fn onnx_metadata(
    arch: Arch,
    hyper: &Hyperparameters,
    evaluation: &Evaluation,
    trained_at: chrono::DateTime<chrono::Utc>,
) -> Result<Vec<(String, String)>> {
    let pairs = [
        ("model", arch.model_name().to_string()),
        ("training_seed", hyper.seed.to_string()),
        ("test_accuracy", format!("{:.4}", evaluation.accuracy)),
        ("test_loss", format!("{:.5}", evaluation.loss)),
        ("epochs", hyper.epochs.to_string()),
        ("hyperparameters", serde_json::to_string(hyper)?),
        ("training_code_version", TRAINING_CODE_VERSION.to_string()),
        ("trained_at", trained_at.to_rfc3339()),
        ("source", "initial training on MNIST".to_string()),
    ];
    Ok(pairs.into_iter().map(|(k, v)| (k.to_string(), v)).collect())
}

/// One progress bar per epoch, and a line when it ends (also where no terminal shows the bar).
struct EpochBars {
    arch: Arch,
    bar: Option<ProgressBar>,
    epoch: (usize, usize),
}

impl EpochBars {
    fn new(arch: Arch) -> Self {
        Self {
            arch,
            bar: None,
            epoch: (0, 0),
        }
    }
}

impl TrainObserver for EpochBars {
    fn epoch_started(&mut self, epoch: usize, epochs: usize, batches: usize) {
        let style = ProgressStyle::with_template(
            "{prefix} [{bar:32}] {pos:>4}/{len} batches  {msg}  {elapsed_precise} (eta {eta})",
        )
        .unwrap_or_else(|_| ProgressStyle::default_bar())
        .progress_chars("=> ");
        let bar = ProgressBar::new(batches as u64)
            .with_style(style)
            .with_prefix(format!("{} epoch {}/{epochs}", self.arch, epoch + 1));
        self.bar = Some(bar);
        self.epoch = (epoch + 1, epochs);
    }

    fn batch_finished(&mut self, batch: usize, running_loss: f32) {
        if let Some(bar) = &self.bar {
            bar.set_position(batch as u64 + 1);
            if batch.is_multiple_of(25) {
                bar.set_message(format!("loss {running_loss:.4}"));
            }
        }
    }

    fn epoch_finished(
        &mut self,
        _epoch: usize,
        mean_loss: f32,
        took: Duration,
        _network: &retrain_worker::train::Network,
    ) -> Result<(), retrain_worker::train::TrainError> {
        if let Some(bar) = self.bar.take() {
            bar.finish_and_clear();
        }
        eprintln!(
            "{} epoch {}/{}: loss {mean_loss:.4} ({:.1} s)",
            self.arch,
            self.epoch.0,
            self.epoch.1,
            took.as_secs_f64()
        );
        Ok(())
    }
}

/// The workspace root: `cargo run` sets `CARGO_MANIFEST_DIR` at run time too, which stays right
/// when the checkout moved since the binary was built.
fn repo_root() -> PathBuf {
    let manifest_dir = std::env::var_os("CARGO_MANIFEST_DIR")
        .map(PathBuf::from)
        .filter(|dir| dir.ends_with("retrain-worker") && dir.join("Cargo.toml").is_file())
        .unwrap_or_else(|| PathBuf::from(env!("CARGO_MANIFEST_DIR")));
    manifest_dir
        .parent()
        .map(Path::to_path_buf)
        .unwrap_or(manifest_dir)
}

fn env_path(name: &str) -> Option<PathBuf> {
    std::env::var_os(name)
        .filter(|value| !value.is_empty())
        .map(PathBuf::from)
}
