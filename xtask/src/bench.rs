//! `cargo xtask bench predict`: requests per second and p50/p99 latency of `POST
//! /api/v1/predict`, straight to predict-svc and through the gateway, with micro-batching on
//! and off, at 1 and 64 concurrent clients. Release builds; figures are printed, not asserted.

use crate::http::{Connection, json_string_field};
use crate::up::{Fleet, Service, build, ensure_port_free};
use crate::{setup, train};
use anyhow::{Context, Result, bail};
use std::net::SocketAddr;
use std::path::Path;
use std::sync::Arc;
use std::sync::atomic::{AtomicUsize, Ordering};
use std::thread;
use std::time::{Duration, Instant};

const AUTH: Service = Service {
    name: "auth-svc",
    port: 18181,
};
const PREDICT: Service = Service {
    name: "predict-svc",
    port: 18182,
};
const GATEWAY: Service = Service {
    name: "gateway",
    port: 18180,
};
const WARM_UP: Duration = Duration::from_secs(1);
const MEASURE: Duration = Duration::from_secs(5);
const CONCURRENCY: [usize; 2] = [1, 64];
const BOUNDARY: &str = "predictloop-bench-boundary";

pub fn run(root: &Path, what: &str) -> Result<()> {
    match what {
        "predict" => predict(root),
        other => bail!("unknown benchmark `{other}`; available: predict"),
    }
}

fn addr(port: u16) -> SocketAddr {
    SocketAddr::from(([127, 0, 0, 1], port))
}

struct Figures {
    route: &'static str,
    batching: bool,
    clients: usize,
    requests: usize,
    errors: usize,
    p50: Duration,
    p99: Duration,
}

fn predict(root: &Path) -> Result<()> {
    setup::run(root)?;
    train::train_models(root, false)?;
    let bin_dir = build(root, true)?;
    for service in [&AUTH, &PREDICT, &GATEWAY] {
        ensure_port_free(service.name, addr(service.port))?;
    }
    let signals = Arc::new(AtomicUsize::new(0));
    let counter = Arc::clone(&signals);
    ctrlc::set_handler(move || {
        counter.fetch_add(1, Ordering::SeqCst);
    })
    .context("installing the Ctrl-C handler")?;

    let jwks = format!("http://127.0.0.1:{}/.well-known/jwks.json", AUTH.port);
    let common: Vec<(String, String)> = [
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
        ("AUTH_JWKS_URL", jwks),
        ("BCRYPT_COST", "4".to_owned()),
        (
            "ORT_DYLIB_PATH",
            setup::onnxruntime_lib(root).display().to_string(),
        ),
        ("MODEL_DIR", train::model_dir(root).display().to_string()),
        ("AUTH_URL", format!("http://127.0.0.1:{}", AUTH.port)),
        ("PREDICT_URL", format!("http://127.0.0.1:{}", PREDICT.port)),
    ]
    .into_iter()
    .map(|(k, v)| (k.to_owned(), v))
    .collect();
    let upload = multipart_body(&bmp_of_test_digit(root)?);

    let mut all = Vec::new();
    for batching in [true, false] {
        let mut fleet = Fleet::new(signals.clone());
        let mut predict_env = common.clone();
        let (size, wait) = if batching { ("32", "2") } else { ("1", "0") };
        predict_env.push(("BATCH_MAX_SIZE".into(), size.into()));
        predict_env.push(("BATCH_MAX_WAIT_MS".into(), wait.into()));
        for (service, env) in [
            (&AUTH, &common),
            (&PREDICT, &predict_env),
            (&GATEWAY, &common),
        ] {
            let at = fleet.start(&bin_dir, service, service.port, env)?;
            fleet.wait_healthy(service.name, at)?;
        }
        let token = log_in(addr(GATEWAY.port))?;
        for (route, port) in [("predict-svc", PREDICT.port), ("gateway", GATEWAY.port)] {
            for clients in CONCURRENCY {
                if signals.load(Ordering::SeqCst) > 0 {
                    bail!("interrupted");
                }
                let figures = load(route, addr(port), &token, &upload, clients, batching);
                eprintln!(
                    "  {route:<12} batching {:<3} {clients:>2} clients: {:>7.1} req/s",
                    if batching { "on" } else { "off" },
                    figures.requests as f64 / MEASURE.as_secs_f64()
                );
                all.push(figures);
            }
        }
        fleet.stop_all();
    }
    print_table(&all);
    Ok(())
}

fn log_in(gateway: SocketAddr) -> Result<String> {
    let mut conn = Connection::new(gateway);
    let creds = br#"{"username":"bench-user","password":"bench-password-1"}"#;
    let json = [("Content-Type", "application/json")];
    let registered = conn.send("POST", "/register", &json, creds)?;
    if registered.status != 201 && registered.status != 409 {
        bail!("register answered {}", registered.status);
    }
    let login = conn.send("POST", "/login", &json, creds)?;
    json_string_field(&login.body, "access_token")
        .with_context(|| format!("login answered {}", login.status))
}

/// Clients each on their own keep-alive connection, sending without pause; latencies of the
/// answers after the warm-up.
fn load(
    route: &'static str,
    to: SocketAddr,
    token: &str,
    body: &[u8],
    clients: usize,
    batching: bool,
) -> Figures {
    let start = Instant::now();
    let measure_from = start + WARM_UP;
    let until = measure_from + MEASURE;
    let threads: Vec<_> = (0..clients)
        .map(|_| {
            let auth = format!("Bearer {token}");
            let body = body.to_vec();
            thread::spawn(move || {
                let mut conn = Connection::new(to);
                let content_type = format!("multipart/form-data; boundary={BOUNDARY}");
                let headers = [
                    ("Authorization", auth.as_str()),
                    ("Content-Type", content_type.as_str()),
                ];
                let (mut latencies, mut errors) = (Vec::new(), 0usize);
                loop {
                    let sent = Instant::now();
                    if sent >= until {
                        break;
                    }
                    let ok = conn
                        .send("POST", "/api/v1/predict", &headers, &body)
                        .is_ok_and(|r| r.status == 200);
                    if sent >= measure_from {
                        if ok {
                            latencies.push(sent.elapsed());
                        } else {
                            errors += 1;
                        }
                    }
                }
                (latencies, errors)
            })
        })
        .collect();
    let mut latencies = Vec::new();
    let mut errors = 0;
    for t in threads {
        if let Ok((l, e)) = t.join() {
            latencies.extend(l);
            errors += e;
        }
    }
    latencies.sort();
    let pick = |q: f64| {
        latencies
            .get(((latencies.len() as f64 * q) as usize).min(latencies.len().saturating_sub(1)))
            .copied()
            .unwrap_or_default()
    };
    Figures {
        route,
        batching,
        clients,
        requests: latencies.len(),
        errors,
        p50: pick(0.50),
        p99: pick(0.99),
    }
}

fn print_table(all: &[Figures]) {
    println!();
    println!(
        "POST /api/v1/predict (mnist-mlp), {} s per row after {} s warm-up, release build",
        MEASURE.as_secs(),
        WARM_UP.as_secs()
    );
    println!(
        "{:<12} {:>9} {:>8} {:>10} {:>10} {:>10} {:>7}",
        "to", "batching", "clients", "req/s", "p50 ms", "p99 ms", "errors"
    );
    for f in all {
        println!(
            "{:<12} {:>9} {:>8} {:>10.1} {:>10.2} {:>10.2} {:>7}",
            f.route,
            if f.batching { "on" } else { "off" },
            f.clients,
            f.requests as f64 / MEASURE.as_secs_f64(),
            f.p50.as_secs_f64() * 1000.0,
            f.p99.as_secs_f64() * 1000.0,
            f.errors
        );
    }
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
    let mut body = format!(
        "--{BOUNDARY}\r\nContent-Disposition: form-data; name=\"file\"; filename=\"digit.bmp\"\r\nContent-Type: image/bmp\r\n\r\n"
    )
    .into_bytes();
    body.extend_from_slice(file);
    body.extend_from_slice(format!("\r\n--{BOUNDARY}--\r\n").as_bytes());
    body
}
