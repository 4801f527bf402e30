//! Benchmarks against release builds; figures are printed, not asserted.
//!
//! - `cargo xtask bench predict`: requests per second and p50/p99 latency of `POST
//!   /api/v1/predict`, straight to predict-svc and through the gateway, with micro-batching on
//!   and off, at 1 and 64 concurrent clients.
//! - `cargo xtask bench notify`: p50/p99 delivery latency from `POST /feedback` to receipt on
//!   1,000 admin WebSockets, both through the gateway, and the memory each idle socket costs
//!   notify-svc and the gateway.
//! - `cargo xtask bench gateway`: the latency the gateway adds (token check and rate limit on)
//!   over calling predict-svc directly, and its throughput next to NGINX proxying the same
//!   predict-svc with keep-alive, in one run.
//! - `cargo xtask bench retrain`: the time of a retrain job, from `POST /admin/retrain` to its
//!   outcome, on N MNIST training digits (`BENCH_RETRAIN_DIGITS`, default `10000,60000`) plus
//!   the feedback, for both models, fine-tuning one epoch.
//! - `cargo xtask bench bombs`: 24 decompression bombs and oversize inference bodies sent at
//!   once through the gateway; their answers, how much predict-svc's (and the gateway's)
//!   resident memory grows while they run, and the time of a normal upload before and after.
//! - `cargo xtask bench rollout`: the rollout decision replayed on the real model's answers to
//!   the 10,000 MNIST test digits, for candidates of known quality, 100 seeds each: how often
//!   each one was rolled back, promoted or left inconclusive, after how many requests; then the
//!   same decided on unsolicited labels (the bias). Its flags:
//!   `cargo xtask bench rollout -- --help`.

mod bombs;
mod gateway;
mod load;
mod notify;
mod predict;
mod retrain;
mod rollout;

use crate::http::{Client, json_string_field};
use crate::up::{Fleet, Service, build, ensure_port_free};
use crate::ws_client::Sockets;
use crate::{setup, train};
use anyhow::{Context, Result, bail};
use load::{CONCURRENCY, Figures, MEASURE, WARM_UP, load, print_table};
use std::collections::{HashMap, HashSet};
use std::net::SocketAddr;
use std::path::Path;
use std::sync::Arc;
use std::sync::atomic::{AtomicUsize, Ordering};
use std::thread;
use std::time::{Duration, Instant};

const BOUNDARY: &str = "predictloop-bench-boundary";

pub fn run(root: &Path, what: &str, args: &[String]) -> Result<()> {
    if what != "rollout" && !args.is_empty() {
        bail!(
            "`cargo xtask bench {what}` takes no arguments (got {})",
            args.join(" ")
        );
    }
    match what {
        "predict" => predict::predict(root),
        "notify" => notify::notify(root),
        "retrain" => retrain::retrain(root),
        "gateway" => gateway::gateway(root),
        "bombs" => bombs::bombs(root),
        "rollout" => rollout::rollout(root, args),
        other => bail!(
            "unknown benchmark `{other}`; available: predict, notify, retrain, gateway, bombs, \
             rollout"
        ),
    }
}

/// Checks that the services' ports are free and installs the Ctrl-C handler; the count of
/// signals received, which every loop of a bench watches.
fn prepare<'a>(services: impl IntoIterator<Item = &'a Service>) -> Result<Arc<AtomicUsize>> {
    for service in services {
        ensure_port_free(service.name, addr(service.port))?;
    }
    crate::up::count_signals()
}

/// Starts `services` in order, each healthy before the next.
fn start_all(
    fleet: &mut Fleet,
    bin_dir: &Path,
    services: &[&Service],
    env: &[(String, String)],
) -> Result<()> {
    for service in services {
        let at = fleet.start(bin_dir, service, service.port, env)?;
        fleet.wait_healthy(service.name, at)?;
    }
    Ok(())
}

fn addr(port: u16) -> SocketAddr {
    SocketAddr::from(([127, 0, 0, 1], port))
}

/// What every benchmarked service gets: development mode, the bench database, a Redis prefix of
/// this run, auth-svc at `auth_port` for the JWKS (and the gateway's `/login`).
fn shared_env(auth_port: u16) -> Vec<(String, String)> {
    [
        ("APP_ENV", "development".to_owned()),
        ("RUST_LOG", "warn".to_owned()),
        (
            "DATABASE_URL",
            std::env::var("DATABASE_URL")
                .unwrap_or_else(|_| "postgres://postgres@127.0.0.1:5432/predictloop_bench".into()),
        ),
        (
            "REDIS_URL",
            std::env::var("REDIS_URL").unwrap_or_else(|_| "redis://127.0.0.1:6379".into()),
        ),
        ("REDIS_PREFIX", format!("bench:{}:", std::process::id())),
        (
            "AUTH_JWKS_URL",
            format!("http://127.0.0.1:{auth_port}/.well-known/jwks.json"),
        ),
        ("BCRYPT_COST", "4".to_owned()),
        ("AUTH_URL", format!("http://127.0.0.1:{auth_port}")),
        // Rate limiting stays on (its cost is part of the figures) with quotas a run never uses up.
        ("RATE_LIMIT_DEFAULT", "1000000000/day".to_owned()),
        (
            "RATE_LIMIT_ROUTES",
            "/api/v1/predict=1000000000/day; /api/v2/predict=1000000000/day".to_owned(),
        ),
    ]
    .into_iter()
    .map(|(k, v)| (k.to_owned(), v))
    .collect()
}

/// [`shared_env`] and what predict-svc and a gateway in front of it need: the runtime, the
/// trained models, predict-svc's URL.
fn predict_env(root: &Path, auth_port: u16, predict_port: u16) -> Vec<(String, String)> {
    let mut env = shared_env(auth_port);
    env.extend(
        [
            (
                "ORT_DYLIB_PATH",
                setup::onnxruntime_lib(root).display().to_string(),
            ),
            ("MODEL_DIR", train::model_dir(root).display().to_string()),
            ("PREDICT_URL", format!("http://127.0.0.1:{predict_port}")),
        ]
        .map(|(k, v)| (k.to_owned(), v)),
    );
    env
}

/// Registers the bench user (or finds it registered) and logs it in; its access token.
fn log_in(gateway: SocketAddr) -> Result<String> {
    let conn = Client::new(gateway);
    let creds = br#"{"username":"bench-user","password":"bench-password-1"}"#;
    let registered = conn.post("/register", &JSON, creds)?;
    if registered.status != 201 && registered.status != 409 {
        bail!("register answered {}", registered.status);
    }
    access_token(&conn, creds)
}

const JSON: [(&str, &str); 1] = [("Content-Type", "application/json")];

/// The bench admin's access token, logging in at `at` (auth-svc or the gateway).
fn admin_token(at: SocketAddr) -> Result<String> {
    let creds = format!(r#"{{"username":"{BENCH_ADMIN}","password":"{BENCH_ADMIN_PASSWORD}"}}"#);
    access_token(&Client::new(at), creds.as_bytes()).context("logging in as the bench admin")
}

fn access_token(conn: &Client, creds: &[u8]) -> Result<String> {
    let login = conn.post("/login", &JSON, creds)?;
    json_string_field(&login.body, "access_token")
        .with_context(|| format!("login answered {}", login.status))
}

/// The value at quantile `q` of sorted durations (zero when there are none).
fn percentile(sorted: &[Duration], q: f64) -> Duration {
    sorted
        .get(((sorted.len() as f64 * q) as usize).min(sorted.len().saturating_sub(1)))
        .copied()
        .unwrap_or_default()
}

const BENCH_ADMIN: &str = "bench-admin";
const BENCH_ADMIN_PASSWORD: &str = "bench-admin-password-1";

fn vm_rss_kib(pid: u32) -> Result<u64> {
    vm_status_kib(pid, "VmRSS")
}

/// A memory field of `/proc/<pid>/status` in KiB (`VmRSS`, `VmHWM`).
fn vm_status_kib(pid: u32, field: &str) -> Result<u64> {
    let status = std::fs::read_to_string(format!("/proc/{pid}/status"))?;
    status
        .lines()
        .find_map(|line| line.strip_prefix(field)?.strip_prefix(':'))
        .and_then(|v| v.trim().trim_end_matches("kB").trim().parse().ok())
        .with_context(|| format!("no {field} line in /proc/{pid}/status"))
}

fn ms(d: Duration) -> f64 {
    d.as_secs_f64() * 1000.0
}

/// The first MNIST test digit as an uncompressed 24-bit BMP (dark ink on white, as drawn).
fn bmp_of_test_digit(root: &Path) -> Result<Vec<u8>> {
    let path = setup::mnist_dir(root).join("t10k-images-idx3-ubyte");
    let idx = std::fs::read(&path).with_context(|| format!("reading {}", path.display()))?;
    let pixels = idx
        .get(16..16 + 784)
        .context("the MNIST test file is truncated")?;
    let side = 28u32;
    let row = side * 3; // 84 bytes, already a multiple of 4: no padding
    let data_len = row * 28;
    let mut bmp = Vec::with_capacity(54 + data_len as usize);
    bmp.extend_from_slice(b"BM");
    bmp.extend_from_slice(&(54 + data_len).to_le_bytes());
    bmp.extend_from_slice(&[0; 4]);
    bmp.extend_from_slice(&54u32.to_le_bytes());
    bmp.extend_from_slice(&40u32.to_le_bytes());
    bmp.extend_from_slice(&side.to_le_bytes());
    bmp.extend_from_slice(&side.to_le_bytes());
    bmp.extend_from_slice(&1u16.to_le_bytes());
    bmp.extend_from_slice(&24u16.to_le_bytes());
    bmp.extend_from_slice(&[0; 4]);
    bmp.extend_from_slice(&data_len.to_le_bytes());
    bmp.extend_from_slice(&[0; 16]);
    // Rows bottom-up.
    for y in (0..28).rev() {
        for x in 0..28 {
            let v = 255 - pixels[y * 28 + x];
            bmp.extend_from_slice(&[v, v, v]);
        }
    }
    Ok(bmp)
}

fn multipart_body(file: &[u8]) -> Vec<u8> {
    multipart_file("digit.bmp", "image/bmp", file)
}

/// A multipart form of one `file` field named `filename`.
fn multipart_file(filename: &str, content_type: &str, file: &[u8]) -> Vec<u8> {
    let mut body = format!(
        "--{BOUNDARY}\r\nContent-Disposition: form-data; name=\"file\"; filename=\"{filename}\"\r\nContent-Type: {content_type}\r\n\r\n"
    )
    .into_bytes();
    body.extend_from_slice(file);
    body.extend_from_slice(format!("\r\n--{BOUNDARY}--\r\n").as_bytes());
    body
}
