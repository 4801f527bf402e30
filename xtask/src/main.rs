//! Developer tasks for predictloop: `cargo xtask <command>`.
#![allow(clippy::print_stdout)] // a CLI prints

mod bench;
mod http;
mod machine;
mod setup;
mod test;
mod train;
mod up;
mod watch;
mod ws_client;

use std::path::{Path, PathBuf};
use std::process::{Command, ExitCode, ExitStatus};

use anyhow::{Context, Result, bail};
use clap::{Parser, Subcommand};

#[derive(Parser)]
#[command(name = "cargo xtask", about = "predictloop developer tasks", version)]
struct Cli {
    #[command(subcommand)]
    command: Task,
}

#[derive(Subcommand)]
enum Task {
    /// Fetch the pinned assets (ONNX Runtime, MNIST) into `assets/`; works offline once cached.
    Setup,
    /// Build and run every service locally; Ctrl-C stops them all.
    Up {
        /// Build and run the optimised binaries.
        #[arg(long)]
        release: bool,
    },
    /// Fetch the assets, then train the digit models into `data/models/` (or `$MODEL_DIR`); a
    /// model trained before on the same data with the same code comes from the artifact cache.
    Train {
        /// Train again even when the artifact cache holds the models.
        #[arg(long)]
        force: bool,
    },
    /// Print the admin WebSocket's events (feedback, retrain progress, promotions) of a running
    /// `cargo xtask up`, logged in as its admin.
    Watch,
    /// Run a benchmark against release builds and print its figures (`predict`, `notify`,
    /// `retrain`, `gateway`, `bombs`, `rollout`).
    Bench {
        /// Which benchmark: `predict` (inference throughput and latency), `notify` (feedback
        /// delivery to 1,000 admin WebSockets, and memory per idle socket), `retrain` (the time
        /// of a retrain job on N digits), `gateway` (the latency the gateway adds, next to NGINX),
        /// `bombs` (24 decompression bombs and oversize inference bodies at once: their
        /// answers and predict-svc's memory growth) or `rollout` (how often the rollout decision
        /// rolls back, promotes or gives up on candidates of known quality, replayed on the real
        /// model's answers to the MNIST test digits).
        what: String,
        /// The benchmark's own flags (`rollout` only: `cargo xtask bench rollout -- --help`).
        #[arg(trailing_var_arg = true, allow_hyphen_values = true)]
        args: Vec<String>,
    },
    /// Install what the tests need when missing (cargo-nextest; as root, Debian's browsers),
    /// start the local PostgreSQL and Redis when stopped, fetch the assets, then run the whole
    /// test suite with cargo-nextest.
    Test {
        /// Extra arguments for `cargo nextest run` (after `--`).
        #[arg(trailing_var_arg = true, allow_hyphen_values = true)]
        nextest_args: Vec<String>,
    },
}

fn main() -> ExitCode {
    let cli = Cli::parse();
    let outcome = repo_root().and_then(|root| match cli.command {
        Task::Setup => setup::run(&root).map(|()| ExitCode::SUCCESS),
        Task::Up { release } => up::run(&root, release).map(|()| ExitCode::SUCCESS),
        Task::Train { force } => train::run(&root, force).map(|()| ExitCode::SUCCESS),
        Task::Watch => watch::run(&root).map(|()| ExitCode::SUCCESS),
        Task::Bench { what, args } => bench::run(&root, &what, &args).map(|()| ExitCode::SUCCESS),
        Task::Test { nextest_args } => test::run(&root, &nextest_args),
    });
    match outcome {
        Ok(code) => code,
        Err(err) => {
            eprintln!("error: {err:#}");
            ExitCode::FAILURE
        }
    }
}

/// The workspace root: the parent of this crate's manifest directory. `cargo run` sets
/// `CARGO_MANIFEST_DIR` at run time too, which stays right when the checkout has moved since the
/// binary was built (a shared target directory across clones).
pub fn repo_root() -> Result<PathBuf> {
    let manifest_dir = std::env::var_os("CARGO_MANIFEST_DIR")
        .map(PathBuf::from)
        .filter(|dir| dir.join("src/main.rs").is_file() && dir.ends_with("xtask"))
        .unwrap_or_else(|| PathBuf::from(env!("CARGO_MANIFEST_DIR")));
    let root = manifest_dir
        .parent()
        .context("xtask's manifest directory has no parent")?
        .to_path_buf();
    if !root.join("Cargo.toml").is_file() {
        bail!(
            "cannot find the workspace root (no Cargo.toml in {})",
            root.display()
        );
    }
    Ok(root)
}

/// `root`-relative form of `path` for messages, or the path itself when it lies elsewhere.
pub fn display_path(root: &Path, path: &Path) -> String {
    path.strip_prefix(root)
        .unwrap_or(path)
        .display()
        .to_string()
}

/// The `cargo` that runs us (set by cargo), so a toolchain override is honoured.
pub fn cargo() -> Command {
    Command::new(std::env::var_os("CARGO").unwrap_or_else(|| "cargo".into()))
}

/// Exit code to pass on from a child: its own code, or 128 + signal number like a shell.
pub fn exit_code_of(status: ExitStatus) -> ExitCode {
    use std::os::unix::process::ExitStatusExt;
    let code = status
        .code()
        .or_else(|| status.signal().map(|signal| 128 + signal))
        .unwrap_or(1);
    ExitCode::from(u8::try_from(code & 0xff).unwrap_or(1))
}
