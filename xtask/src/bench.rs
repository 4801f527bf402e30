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

use crate::http::{Client, json_string_field};
use crate::up::{Fleet, Service, build, ensure_port_free};
use crate::ws_client::Sockets;
use crate::{setup, train};
use anyhow::{Context, Result, bail};
use std::collections::{HashMap, HashSet};
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
        "notify" => notify(root),
        "retrain" => retrain(root),
        "gateway" => gateway(root),
        "bombs" => bombs(root),
        other => bail!(
            "unknown benchmark `{other}`; available: predict, notify, retrain, gateway, bombs"
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
    let signals = prepare([&AUTH, &PREDICT, &GATEWAY])?;

    let mut common = shared_env(AUTH.port);
    common.extend(
        [
            (
                "ORT_DYLIB_PATH",
                setup::onnxruntime_lib(root).display().to_string(),
            ),
            ("MODEL_DIR", train::model_dir(root).display().to_string()),
            ("PREDICT_URL", format!("http://127.0.0.1:{}", PREDICT.port)),
        ]
        .map(|(k, v)| (k.to_owned(), v)),
    );
    let upload = multipart_body(&bmp_of_test_digit(root)?);

    let mut all = Vec::new();
    for batching in [true, false] {
        let mut fleet = Fleet::new(signals.clone())?;
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
                let conn = Client::new(to);
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
                        .post("/api/v1/predict", &headers, &body)
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
    Figures {
        route,
        batching,
        clients,
        requests: latencies.len(),
        errors,
        p50: percentile(&latencies, 0.50),
        p99: percentile(&latencies, 0.99),
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

// `cargo xtask bench notify`

const NOTIFY_GATEWAY: Service = Service {
    name: "gateway",
    port: 18186,
};
const NOTIFY_AUTH: Service = Service {
    name: "auth-svc",
    port: 18187,
};
const NOTIFY_FEEDBACK: Service = Service {
    name: "feedback-svc",
    port: 18188,
};
const NOTIFY_SVC: Service = Service {
    name: "notify-svc",
    port: 18189,
};
/// Admin sockets open at once.
const SOCKETS: usize = 1_000;
/// Feedback posted while they listen, one every [`FEEDBACK_EVERY`].
const FEEDBACKS: u32 = 20;
const FEEDBACK_EVERY: Duration = Duration::from_millis(200);
const FEEDBACK_BODY: &[u8] = br#"{"prediction":3,"correct":true,"comment":"bench"}"#;
/// Sockets in their handshake at once, so that accept queues never overflow.
const CONNECTING_AT_ONCE: usize = 64;
const JOIN_TIMEOUT: Duration = Duration::from_secs(120);
/// How long memory is left to settle before each reading.
const SETTLE: Duration = Duration::from_secs(2);
/// How long deliveries are waited for after the last `POST /feedback`.
const DELIVERY_TIMEOUT: Duration = Duration::from_secs(10);
const BENCH_ADMIN: &str = "bench-admin";
const BENCH_ADMIN_PASSWORD: &str = "bench-admin-password-1";
/// Descriptors a process needs besides the benchmark's sockets.
const FD_MARGIN: u64 = 256;

fn notify(root: &Path) -> Result<()> {
    // xtask holds one descriptor per socket, the gateway two (client side and notify-svc side),
    // notify-svc one; the services inherit our limit.
    check_open_files(2 * SOCKETS as u64 + FD_MARGIN)?;
    let bin_dir = build(root, true)?;
    let services = [&NOTIFY_AUTH, &NOTIFY_FEEDBACK, &NOTIFY_SVC, &NOTIFY_GATEWAY];
    let signals = prepare(services)?;

    let mut env = shared_env(NOTIFY_AUTH.port);
    env.extend(
        [
            ("ADMIN_USERNAME", BENCH_ADMIN.to_owned()),
            ("ADMIN_PASSWORD", BENCH_ADMIN_PASSWORD.to_owned()),
            (
                "FEEDBACK_URL",
                format!("http://127.0.0.1:{}", NOTIFY_FEEDBACK.port),
            ),
            (
                "NOTIFY_URL",
                format!("http://127.0.0.1:{}", NOTIFY_SVC.port),
            ),
            ("WS_MAX_CONNECTIONS", (2 * SOCKETS).to_string()),
        ]
        .map(|(k, v)| (k.to_owned(), v)),
    );
    // No predict-svc: the bench's feedback is not linked to a prediction.
    let mut fleet = Fleet::new(signals.clone())?;
    start_all(&mut fleet, &bin_dir, &services, &env)?;
    let gateway = addr(NOTIFY_GATEWAY.port);
    let user_token = log_in(gateway)?;
    let admin_token = admin_token(gateway)?;

    // One socket first, so that one-time work (JWKS fetches, lazy set-up) is not counted as
    // memory per socket, and a socket that cannot join fails here with its reason.
    warm_up(gateway, &admin_token, &signals)?;
    thread::sleep(SETTLE);
    let watched = [NOTIFY_SVC.name, NOTIFY_GATEWAY.name];
    let before = rss_of(&fleet, &watched)?;

    eprintln!("opening {SOCKETS} admin WebSockets through the gateway...");
    let sockets = open_sockets(gateway, &admin_token, &signals)?;
    let joined = sockets.joined();
    eprintln!("{joined} sockets joined the admins' room");
    thread::sleep(SETTLE);
    let after = rss_of(&fleet, &watched)?;

    eprintln!("posting {FEEDBACKS} feedbacks, one every {FEEDBACK_EVERY:?}...");
    let posted = post_feedback(gateway, &user_token, &signals)?;
    let expected = joined * posted.sent.len();
    let deadline = Instant::now() + DELIVERY_TIMEOUT;
    while sockets.received() < expected && Instant::now() < deadline {
        if signals.load(Ordering::SeqCst) > 0 {
            bail!("interrupted");
        }
        thread::sleep(Duration::from_millis(20));
    }
    let failed = sockets.failed();
    let outcomes = sockets.stop();
    fleet.stop_all();

    let deliveries = Deliveries::of(&outcomes, &posted.sent);
    let memory: Vec<_> = watched
        .iter()
        .zip(before.iter().zip(&after))
        .map(|(name, (&before, &after))| (*name, before, after))
        .collect();
    print_notify_table(joined, failed, &posted, &deliveries, &memory);
    Ok(())
}

/// Fails with advice when the open-files limit cannot hold the sockets.
fn check_open_files(needed: u64) -> Result<()> {
    let Ok(limits) = std::fs::read_to_string("/proc/self/limits") else {
        eprintln!("warning: cannot read /proc/self/limits; assuming {needed} files may be open");
        return Ok(());
    };
    let Some(line) = limits.lines().find(|l| l.starts_with("Max open files")) else {
        return Ok(());
    };
    let mut values = line["Max open files".len()..].split_whitespace();
    let parse = |v: Option<&str>| match v {
        Some("unlimited") | None => u64::MAX,
        Some(v) => v.parse().unwrap_or(u64::MAX),
    };
    let (soft, hard) = (parse(values.next()), parse(values.next()));
    if soft >= needed {
        return Ok(());
    }
    let how = if hard >= needed {
        format!(
            "e.g. `ulimit -n {}` in this shell",
            needed.max(4096).min(hard)
        )
    } else {
        format!(
            "the hard limit is {hard}, so raise that first: as root `ulimit -Hn`, or \
             /etc/security/limits.conf, or systemd's LimitNOFILE"
        )
    };
    bail!(
        "the open-files limit is {soft}, but the bench needs about {needed}: the gateway holds two \
         descriptors for each of the {SOCKETS} WebSockets (client and notify-svc sides) and \
         inherits this process's limit. Raise it to at least {needed} and run again; {how}"
    )
}

/// One admin socket, opened, joined and closed.
fn warm_up(gateway: SocketAddr, token: &str, signals: &AtomicUsize) -> Result<()> {
    let mut sockets = Sockets::new();
    sockets.open(gateway, token)?;
    let deadline = Instant::now() + JOIN_TIMEOUT;
    while sockets.joined() + sockets.failed() < 1 && Instant::now() < deadline {
        if signals.load(Ordering::SeqCst) > 0 {
            bail!("interrupted");
        }
        thread::sleep(Duration::from_millis(10));
    }
    let joined = sockets.joined() == 1;
    let outcome = sockets.stop().pop();
    if !joined {
        let why = outcome.and_then(|o| o.error);
        bail!(
            "an admin WebSocket could not join through the gateway: {}",
            why.as_deref().unwrap_or("no answer in time")
        );
    }
    Ok(())
}

/// [`SOCKETS`] admin sockets, at most [`CONNECTING_AT_ONCE`] in their handshake at a time;
/// returns once every one has joined or failed.
fn open_sockets(gateway: SocketAddr, token: &str, signals: &AtomicUsize) -> Result<Sockets> {
    let mut sockets = Sockets::new();
    let deadline = Instant::now() + JOIN_TIMEOUT;
    let settled = |s: &Sockets| s.joined() + s.failed();
    while settled(&sockets) < SOCKETS {
        if signals.load(Ordering::SeqCst) > 0 {
            bail!("interrupted");
        }
        if Instant::now() >= deadline {
            bail!(
                "only {} of {SOCKETS} WebSockets joined within {} s ({} failed)",
                sockets.joined(),
                JOIN_TIMEOUT.as_secs(),
                sockets.failed()
            );
        }
        if sockets.opened() < SOCKETS && sockets.opened() - settled(&sockets) < CONNECTING_AT_ONCE {
            sockets.open(gateway, token)?;
        } else {
            thread::sleep(Duration::from_millis(2));
        }
    }
    if sockets.joined() == 0 {
        let why = sockets.stop().into_iter().find_map(|o| o.error);
        bail!(
            "no WebSocket could join: {}",
            why.as_deref().unwrap_or("unknown")
        );
    }
    Ok(sockets)
}

struct Posted {
    /// When each stored feedback was sent, by its id.
    sent: HashMap<i64, Instant>,
    /// How long each `POST /feedback` took to answer 201.
    answered: Vec<Duration>,
    errors: Vec<String>,
}

/// [`FEEDBACKS`] unlinked feedbacks through the gateway, [`FEEDBACK_EVERY`] apart.
fn post_feedback(gateway: SocketAddr, token: &str, signals: &AtomicUsize) -> Result<Posted> {
    let conn = Client::new(gateway);
    let auth = format!("Bearer {token}");
    let headers = [
        ("Authorization", auth.as_str()),
        ("Content-Type", "application/json"),
    ];
    let mut posted = Posted {
        sent: HashMap::new(),
        answered: Vec::new(),
        errors: Vec::new(),
    };
    let start = Instant::now();
    for i in 0..FEEDBACKS {
        if signals.load(Ordering::SeqCst) > 0 {
            bail!("interrupted");
        }
        let at = start + FEEDBACK_EVERY * i;
        thread::sleep(at.saturating_duration_since(Instant::now()));
        let sent = Instant::now();
        match conn.post("/feedback", &headers, FEEDBACK_BODY) {
            Ok(answer) if answer.status == 201 => {
                let id = serde_json::from_slice::<serde_json::Value>(&answer.body)
                    .ok()
                    .and_then(|v| v.get("id").and_then(serde_json::Value::as_i64));
                match id {
                    Some(id) => {
                        posted.answered.push(sent.elapsed());
                        posted.sent.insert(id, sent);
                    }
                    None => posted.errors.push(format!(
                        "201 without a numeric id: {}",
                        String::from_utf8_lossy(&answer.body)
                    )),
                }
            }
            Ok(answer) => posted.errors.push(format!(
                "answered {}: {}",
                answer.status,
                String::from_utf8_lossy(&answer.body)
            )),
            Err(e) => posted.errors.push(e.to_string()),
        }
    }
    posted.answered.sort();
    Ok(posted)
}

/// What the joined sockets received of the posted feedback.
struct Deliveries {
    /// Send-to-receipt time of each first delivery of a feedback to a socket, sorted.
    latencies: Vec<Duration>,
    expected: usize,
    duplicates: usize,
    /// `new_feedback` events for feedback this run did not post.
    strays: usize,
    /// Sockets that ended before being told to stop, with the first reason.
    ended_early: usize,
    first_end: Option<String>,
}

impl Deliveries {
    fn of(outcomes: &[crate::ws_client::Outcome], sent: &HashMap<i64, Instant>) -> Self {
        let mut d = Deliveries {
            latencies: Vec::new(),
            expected: 0,
            duplicates: 0,
            strays: 0,
            ended_early: 0,
            first_end: None,
        };
        for outcome in outcomes.iter().filter(|o| o.joined) {
            d.expected += sent.len();
            if let Some(error) = &outcome.error {
                d.ended_early += 1;
                d.first_end.get_or_insert_with(|| error.clone());
            }
            let mut seen = HashSet::new();
            for delivery in &outcome.deliveries {
                match sent.get(&delivery.feedback_id) {
                    Some(at) if seen.insert(delivery.feedback_id) => {
                        d.latencies.push(delivery.at.saturating_duration_since(*at))
                    }
                    Some(_) => d.duplicates += 1,
                    None => d.strays += 1,
                }
            }
        }
        d.latencies.sort();
        d
    }

    fn missing(&self) -> usize {
        self.expected.saturating_sub(self.latencies.len())
    }
}

/// VmRSS in KiB of each named service.
fn rss_of(fleet: &Fleet, names: &[&str]) -> Result<Vec<u64>> {
    names
        .iter()
        .map(|name| {
            let pid = fleet
                .pid(name)
                .with_context(|| format!("{name} is not running"))?;
            vm_rss_kib(pid).with_context(|| format!("reading the memory of {name} (pid {pid})"))
        })
        .collect()
}

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

fn print_notify_table(
    joined: usize,
    failed: usize,
    posted: &Posted,
    deliveries: &Deliveries,
    memory: &[(&str, u64, u64)],
) {
    println!();
    println!("new_feedback to admin WebSockets, all through the gateway, release build");
    println!(
        "  sockets: {joined} joined, {failed} failed; feedback: {} stored of {FEEDBACKS} posted {} ms apart",
        posted.sent.len(),
        FEEDBACK_EVERY.as_millis()
    );
    if let Some(error) = posted.errors.first() {
        println!(
            "  {} POST /feedback failed, the first: {error}",
            posted.errors.len()
        );
    }
    println!(
        "  POST /feedback answered 201 in p50 {:.2} ms, p99 {:.2} ms",
        ms(percentile(&posted.answered, 0.50)),
        ms(percentile(&posted.answered, 0.99))
    );
    if deliveries.ended_early > 0 {
        println!(
            "  {} sockets ended early, the first: {}",
            deliveries.ended_early,
            deliveries.first_end.as_deref().unwrap_or("")
        );
    }
    println!();
    println!("delivery latency, POST /feedback sent -> new_feedback received");
    println!(
        "{:>10} {:>10} {:>8} {:>10} {:>7} {:>9} {:>9} {:>9}",
        "expected", "received", "missing", "duplicate", "stray", "p50 ms", "p99 ms", "max ms"
    );
    let l = &deliveries.latencies;
    println!(
        "{:>10} {:>10} {:>8} {:>10} {:>7} {:>9.2} {:>9.2} {:>9.2}",
        deliveries.expected,
        l.len(),
        deliveries.missing(),
        deliveries.duplicates,
        deliveries.strays,
        ms(percentile(l, 0.50)),
        ms(percentile(l, 0.99)),
        ms(l.last().copied().unwrap_or_default())
    );
    println!();
    println!("memory per idle socket, VmRSS before and after opening {joined} idle sockets");
    println!(
        "{:<12} {:>11} {:>11} {:>15}",
        "process", "before MiB", "after MiB", "per socket KiB"
    );
    for (name, before, after) in memory {
        let per_socket = (*after as f64 - *before as f64) / joined.max(1) as f64;
        println!(
            "{name:<12} {:>11.1} {:>11.1} {per_socket:>15.1}",
            *before as f64 / 1024.0,
            *after as f64 / 1024.0
        );
    }
}

// `cargo xtask bench retrain`

const RETRAIN_AUTH: Service = Service {
    name: "auth-svc",
    port: 18191,
};
const RETRAIN_PREDICT: Service = Service {
    name: "predict-svc",
    port: 18192,
};
const RETRAIN_FEEDBACK: Service = Service {
    name: "feedback-svc",
    port: 18193,
};
const RETRAIN_WORKER: Service = Service {
    name: "retrain-worker",
    port: 18195,
};
const RETRAIN_TIMEOUT: Duration = Duration::from_secs(3600);

struct RetrainRow {
    model: &'static str,
    digits: usize,
    state: String,
    total: Duration,
    training: f64,
    examples: u64,
    accuracy: f64,
}

fn retrain(root: &Path) -> Result<()> {
    setup::run(root)?;
    train::train_models(root, false)?;
    let sizes: Vec<usize> = std::env::var("BENCH_RETRAIN_DIGITS")
        .unwrap_or_else(|_| "10000,60000".into())
        .split(',')
        .map(|n| n.trim().parse::<usize>())
        .collect::<Result<_, _>>()
        .context("BENCH_RETRAIN_DIGITS must be a comma-separated list of digit counts")?;
    let bin_dir = build(root, true)?;
    let services = [
        &RETRAIN_AUTH,
        &RETRAIN_PREDICT,
        &RETRAIN_FEEDBACK,
        &RETRAIN_WORKER,
    ];
    let signals = prepare(services)?;

    let mut env = shared_env(RETRAIN_AUTH.port);
    env.extend(
        [
            ("ADMIN_USERNAME", BENCH_ADMIN.to_owned()),
            ("ADMIN_PASSWORD", BENCH_ADMIN_PASSWORD.to_owned()),
            (
                "PREDICT_URL",
                format!("http://127.0.0.1:{}", RETRAIN_PREDICT.port),
            ),
            (
                "FEEDBACK_URL",
                format!("http://127.0.0.1:{}", RETRAIN_FEEDBACK.port),
            ),
            (
                "ORT_DYLIB_PATH",
                setup::onnxruntime_lib(root).display().to_string(),
            ),
            ("MNIST_DIR", setup::mnist_dir(root).display().to_string()),
            ("MODEL_DIR", train::model_dir(root).display().to_string()),
        ]
        .map(|(k, v)| (k.to_owned(), v)),
    );
    let mut fleet = Fleet::new(signals.clone())?;
    start_all(&mut fleet, &bin_dir, &services, &env)?;
    let token = admin_token(addr(RETRAIN_AUTH.port))?;
    let bearer = format!("Bearer {token}");
    let headers = [
        ("Content-Type", "application/json"),
        ("Authorization", bearer.as_str()),
    ];
    let conn = Client::new(addr(RETRAIN_WORKER.port));
    let mut rows = Vec::new();
    for model in ["mnist-mlp", "mnist-cnn"] {
        for &digits in &sizes {
            if signals.load(Ordering::SeqCst) > 0 {
                bail!("interrupted");
            }
            let body = format!(r#"{{"model":"{model}","epochs":1,"mnist_sample":{digits}}}"#);
            let started = Instant::now();
            let posted = conn.post("/admin/retrain", &headers, body.as_bytes())?;
            if posted.status != 202 {
                bail!(
                    "POST /admin/retrain answered {}: {}",
                    posted.status,
                    String::from_utf8_lossy(&posted.body)
                );
            }
            let id = json_string_field(&posted.body, "job_id").context("no job_id")?;
            eprintln!("  {model} on {digits} digits: job {id}...");
            let job = loop {
                if signals.load(Ordering::SeqCst) > 0 {
                    bail!("interrupted");
                }
                if started.elapsed() > RETRAIN_TIMEOUT {
                    bail!("job {id} did not finish within {RETRAIN_TIMEOUT:?}");
                }
                let answer = conn.get(&format!("/admin/retrain/{id}"), &headers)?;
                let job: serde_json::Value = serde_json::from_slice(&answer.body)
                    .context("the job API answered something that is not JSON")?;
                if ["succeeded", "rejected", "failed"]
                    .contains(&job["state"].as_str().unwrap_or(""))
                {
                    break job;
                }
                thread::sleep(Duration::from_millis(100));
            };
            let total = started.elapsed();
            let training = &job["metrics"]["training"];
            rows.push(RetrainRow {
                model,
                digits,
                state: job["state"].as_str().unwrap_or("?").to_owned(),
                total,
                training: training["seconds"].as_f64().unwrap_or(f64::NAN),
                examples: training["examples"].as_u64().unwrap_or(0),
                accuracy: job["metrics"]["candidate"]["mnist"]["accuracy"]
                    .as_f64()
                    .unwrap_or(f64::NAN),
            });
            if job["state"] == "failed" {
                eprintln!("    failed: {}", job["reason"]);
            }
        }
    }
    fleet.stop_all();
    println!();
    println!(
        "retrain job, fine-tuning the active version for 1 epoch, release build, {} CPU cores",
        thread::available_parallelism().map_or(0, |n| n.get())
    );
    println!(
        "{:<10} {:>8} {:>9} {:>10} {:>12} {:>12} {:>10} {:>9}",
        "model",
        "digits",
        "examples",
        "total s",
        "train+eval s",
        "examples/s",
        "accuracy",
        "outcome"
    );
    for row in &rows {
        println!(
            "{:<10} {:>8} {:>9} {:>10.1} {:>12.1} {:>12.0} {:>9.2}% {:>9}",
            row.model,
            row.digits,
            row.examples,
            row.total.as_secs_f64(),
            row.training,
            row.examples as f64 / row.training,
            row.accuracy * 100.0,
            row.state
        );
    }
    Ok(())
}

// `cargo xtask bench gateway`

const EDGE_AUTH: Service = Service {
    name: "auth-svc",
    port: 18171,
};
const EDGE_PREDICT: Service = Service {
    name: "predict-svc",
    port: 18172,
};
const EDGE_GATEWAY: Service = Service {
    name: "gateway",
    port: 18170,
};
const EDGE_NGINX_PORT: u16 = 18173;

fn gateway(root: &Path) -> Result<()> {
    setup::run(root)?;
    train::train_models(root, false)?;
    let nginx = find_nginx()?;
    let bin_dir = build(root, true)?;
    let signals = prepare([&EDGE_AUTH, &EDGE_PREDICT, &EDGE_GATEWAY])?;
    ensure_port_free("nginx", addr(EDGE_NGINX_PORT))?;

    let mut env = shared_env(EDGE_AUTH.port);
    env.extend(
        [
            (
                "ORT_DYLIB_PATH",
                setup::onnxruntime_lib(root).display().to_string(),
            ),
            ("MODEL_DIR", train::model_dir(root).display().to_string()),
            (
                "PREDICT_URL",
                format!("http://127.0.0.1:{}", EDGE_PREDICT.port),
            ),
        ]
        .map(|(k, v)| (k.to_owned(), v)),
    );
    let mut fleet = Fleet::new(signals.clone())?;
    start_all(
        &mut fleet,
        &bin_dir,
        &[&EDGE_AUTH, &EDGE_PREDICT, &EDGE_GATEWAY],
        &env,
    )?;
    let proxy = Nginx::start(&nginx, EDGE_NGINX_PORT, EDGE_PREDICT.port)?;
    let token = log_in(addr(EDGE_GATEWAY.port))?;
    let upload = multipart_body(&bmp_of_test_digit(root)?);
    let mut all = Vec::new();
    for clients in CONCURRENCY {
        for (route, port) in [
            ("predict-svc", EDGE_PREDICT.port),
            ("gateway", EDGE_GATEWAY.port),
            ("nginx", EDGE_NGINX_PORT),
        ] {
            if signals.load(Ordering::SeqCst) > 0 {
                bail!("interrupted");
            }
            let figures = load(route, addr(port), &token, &upload, clients, true);
            eprintln!(
                "  {route:<12} {clients:>2} clients: {:>7.1} req/s",
                figures.requests as f64 / MEASURE.as_secs_f64()
            );
            all.push(figures);
        }
    }
    drop(proxy);
    fleet.stop_all();

    println!();
    println!(
        "POST /api/v1/predict (mnist-mlp): straight to predict-svc, through the gateway (token \
         check and rate limit on, counted in Redis), through NGINX (proxy_pass, keep-alive \
         upstream); {} s per row after {} s warm-up, release build, all on this machine",
        MEASURE.as_secs(),
        WARM_UP.as_secs()
    );
    println!(
        "{:<12} {:>8} {:>10} {:>10} {:>10} {:>7}",
        "to", "clients", "req/s", "p50 ms", "p99 ms", "errors"
    );
    for f in &all {
        println!(
            "{:<12} {:>8} {:>10.1} {:>10.2} {:>10.2} {:>7}",
            f.route,
            f.clients,
            f.requests as f64 / MEASURE.as_secs_f64(),
            ms(f.p50),
            ms(f.p99),
            f.errors
        );
    }
    println!();
    for clients in CONCURRENCY {
        let row = |route: &str| {
            all.iter()
                .find(|f| f.route == route && f.clients == clients)
        };
        if let (Some(direct), Some(gw), Some(ng)) =
            (row("predict-svc"), row("gateway"), row("nginx"))
        {
            println!(
                "{clients:>2} clients: the gateway adds {:+.2} ms at p50 and {:+.2} ms at p99 over predict-svc \
                 (NGINX adds {:+.2} / {:+.2}); gateway throughput {:.0} % of NGINX's",
                ms(gw.p50) - ms(direct.p50),
                ms(gw.p99) - ms(direct.p99),
                ms(ng.p50) - ms(direct.p50),
                ms(ng.p99) - ms(direct.p99),
                100.0 * gw.requests as f64 / ng.requests.max(1) as f64
            );
        }
    }
    Ok(())
}

/// NGINX from the system (Debian's `nginx` package): found, or installed with apt-get when this
/// runs as root.
fn find_nginx() -> Result<std::path::PathBuf> {
    let known = ["/usr/sbin/nginx", "/usr/local/sbin/nginx", "/usr/bin/nginx"];
    if let Some(path) = known
        .iter()
        .map(std::path::PathBuf::from)
        .find(|p| p.is_file())
    {
        return Ok(path);
    }
    let is_root = std::process::Command::new("id")
        .arg("-u")
        .output()
        .is_ok_and(|o| String::from_utf8_lossy(&o.stdout).trim() == "0");
    if !is_root {
        bail!(
            "NGINX is not installed: `sudo apt-get install nginx-light` (or nginx), then run again"
        );
    }
    eprintln!("installing NGINX (Debian's nginx-light) for the comparison...");
    let status = std::process::Command::new("apt-get")
        .args(["install", "-y", "--no-install-recommends", "nginx-light"])
        .env("DEBIAN_FRONTEND", "noninteractive")
        .status()
        .context("running apt-get")?;
    if !status.success() {
        bail!("apt-get install nginx-light failed ({status})");
    }
    known
        .iter()
        .map(std::path::PathBuf::from)
        .find(|p| p.is_file())
        .context("nginx is still not found after installing it")
}

/// NGINX in the foreground with a configuration of ours, in a folder of its own; stopped on drop.
struct Nginx {
    child: std::process::Child,
    dir: std::path::PathBuf,
}

impl Nginx {
    fn start(binary: &Path, port: u16, upstream_port: u16) -> Result<Nginx> {
        let dir =
            std::env::temp_dir().join(format!("predictloop-bench-nginx-{}", std::process::id()));
        std::fs::create_dir_all(dir.join("logs"))?;
        let workers = thread::available_parallelism().map_or(1, |n| n.get());
        // Like the gateway: one worker per core, keep-alive both ways, no access log, bodies up
        // to 10 MiB.
        let config = format!(
            "daemon off;\nmaster_process on;\nworker_processes {workers};\npid {dir}/nginx.pid;\n\
             error_log {dir}/logs/error.log warn;\nevents {{ worker_connections 4096; }}\n\
             http {{\n  access_log off;\n  client_body_temp_path {dir}/body;\n  proxy_temp_path {dir}/proxy;\n\
             \x20 upstream predict {{ server 127.0.0.1:{upstream_port}; keepalive 128; }}\n\
             \x20 server {{\n    listen 127.0.0.1:{port};\n    client_max_body_size 10m;\n    keepalive_requests 1000000;\n\
             \x20   location / {{\n      proxy_pass http://predict;\n      proxy_http_version 1.1;\n\
             \x20     proxy_set_header Connection \"\";\n      proxy_request_buffering off;\n    }}\n  }}\n}}\n",
            dir = dir.display()
        );
        let conf = dir.join("nginx.conf");
        std::fs::write(&conf, config)?;
        let child = std::process::Command::new(binary)
            .arg("-p")
            .arg(&dir)
            .arg("-c")
            .arg(&conf)
            .stdin(std::process::Stdio::null())
            .spawn()
            .with_context(|| format!("starting {}", binary.display()))?;
        let deadline = Instant::now() + Duration::from_secs(10);
        while std::net::TcpStream::connect(addr(port)).is_err() {
            if Instant::now() > deadline {
                bail!(
                    "nginx did not listen on {port}; see {}/logs/error.log",
                    dir.display()
                );
            }
            thread::sleep(Duration::from_millis(50));
        }
        eprintln!("started nginx (pid {}) on 127.0.0.1:{port}", child.id());
        Ok(Nginx { child, dir })
    }
}

impl Drop for Nginx {
    fn drop(&mut self) {
        // SIGQUIT: NGINX's graceful stop; then make sure.
        let _ = std::process::Command::new("kill")
            .args(["-QUIT", &self.child.id().to_string()])
            .status();
        let deadline = Instant::now() + Duration::from_secs(5);
        while Instant::now() < deadline {
            if matches!(self.child.try_wait(), Ok(Some(_))) {
                break;
            }
            thread::sleep(Duration::from_millis(50));
        }
        let _ = self.child.kill();
        let _ = self.child.wait();
        let _ = std::fs::remove_dir_all(&self.dir);
    }
}

// `cargo xtask bench bombs`

const BOMB_GATEWAY: Service = Service {
    name: "gateway",
    port: 18160,
};
const BOMB_AUTH: Service = Service {
    name: "auth-svc",
    port: 18161,
};
const BOMB_PREDICT: Service = Service {
    name: "predict-svc",
    port: 18162,
};
/// The batch of an oversize inference body: 3,189 × 784 = 2,500,176 numbers (about 2.5
/// million), written as "0," in 5 MB: within the gateway's upload limit (10 MiB), over
/// predict-svc's body cap for the default batch of 256 (4.66 MiB).
const BOMB_OIP_BATCH: usize = 3189;
/// How long one bomb's answer is waited for.
const BOMB_TIMEOUT: Duration = Duration::from_secs(120);

/// The kinds of request the bench sends, how many of each, and the route each goes to.
const BOMB_KINDS: [(&str, usize); 4] = [
    ("35-byte GIF, 8192² canvas", 12),
    ("16-bit grey 8192² PNG", 4),
    ("RGBA 8192² PNG", 4),
    ("inference body, 2.5 M numbers", 4),
];

/// One request as sent: its kind (an index in [`BOMB_KINDS`]), path, content type and body.
struct Bomb {
    kind: usize,
    path: String,
    content_type: String,
    body: Vec<u8>,
}

/// One answer: status, `Retry-After` and the JSON error code.
struct BombAnswer {
    kind: usize,
    status: u16,
    retry_after: Option<String>,
    error: String,
    took: Duration,
}

fn bombs(root: &Path) -> Result<()> {
    setup::run(root)?;
    train::train_models(root, false)?;
    let bin_dir = build(root, true)?;
    let services = [&BOMB_AUTH, &BOMB_PREDICT, &BOMB_GATEWAY];
    let signals = prepare(services)?;

    let mut env = shared_env(BOMB_AUTH.port);
    env.extend(
        [
            (
                "ORT_DYLIB_PATH",
                setup::onnxruntime_lib(root).display().to_string(),
            ),
            ("MODEL_DIR", train::model_dir(root).display().to_string()),
            (
                "PREDICT_URL",
                format!("http://127.0.0.1:{}", BOMB_PREDICT.port),
            ),
        ]
        .map(|(k, v)| (k.to_owned(), v)),
    );
    let mut fleet = Fleet::new(signals.clone())?;
    start_all(&mut fleet, &bin_dir, &services, &env)?;
    let gateway = addr(BOMB_GATEWAY.port);
    let token = log_in(gateway)?;
    let bearer = format!("Bearer {token}");
    let upload = multipart_body(&bmp_of_test_digit(root)?);

    // Warm-up: each route once, so that models and sessions are loaded before the baseline.
    for version in ["v1", "v2"] {
        normal_upload(gateway, &bearer, version, &upload)?;
    }
    let one_image = infer_body(1);
    for model in ["mnist-mlp", "mnist-cnn"] {
        let answer = send_once(
            gateway,
            &bearer,
            &format!("/v2/models/{model}/infer"),
            "application/json",
            &one_image,
        )?;
        if answer.0 != 200 {
            bail!(
                "a one-image inference request to {model} answered {}",
                answer.0
            );
        }
    }

    let before = normal_upload(gateway, &bearer, "v2", &upload)?;

    let bombs = bomb_requests()?;
    let watched = [BOMB_PREDICT.name, BOMB_GATEWAY.name];
    let pids: Vec<u32> = watched
        .iter()
        .map(|name| {
            fleet
                .pid(name)
                .with_context(|| format!("{name} is not running"))
        })
        .collect::<Result<_>>()?;
    // The peak (VmHWM) starts again from the current resident memory.
    for pid in &pids {
        std::fs::write(format!("/proc/{pid}/clear_refs"), "5")
            .with_context(|| format!("resetting the peak memory of pid {pid}"))?;
    }
    let baseline = pids
        .iter()
        .map(|&pid| vm_rss_kib(pid))
        .collect::<Result<Vec<_>>>()?;
    if signals.load(Ordering::SeqCst) > 0 {
        bail!("interrupted");
    }
    eprintln!(
        "sending {} bombs at once through the gateway...",
        bombs.len()
    );
    let answers = send_all_at_once(gateway, &bearer, bombs);
    let peak = pids
        .iter()
        .map(|&pid| vm_status_kib(pid, "VmHWM"))
        .collect::<Result<Vec<_>>>()?;
    let after = normal_upload(gateway, &bearer, "v2", &upload);
    fleet.stop_all();
    let after = after?;
    let answers = answers?;

    println!();
    println!(
        "{} requests sent at once through the gateway, release build, {} CPU cores",
        answers.len(),
        thread::available_parallelism().map_or(0, |n| n.get())
    );
    println!("{:<32} {:>6}  answers", "request", "sent");
    for (kind, (name, count)) in BOMB_KINDS.iter().enumerate() {
        let mut seen: Vec<String> = answers
            .iter()
            .filter(|a| a.kind == kind)
            .map(|a| match &a.retry_after {
                Some(wait) => format!("{} {} (Retry-After {wait})", a.status, a.error),
                None => format!("{} {}", a.status, a.error),
            })
            .collect();
        seen.sort();
        let mut summary = Vec::new();
        for answer in &seen {
            if summary.last().is_none_or(|(last, _)| last != answer) {
                summary.push((answer.clone(), 0));
            }
            if let Some(last) = summary.last_mut() {
                last.1 += 1;
            }
        }
        let summary: Vec<String> = summary.iter().map(|(a, n)| format!("{n} × {a}")).collect();
        let slowest = answers
            .iter()
            .filter(|a| a.kind == kind)
            .map(|a| a.took)
            .max()
            .unwrap_or_default();
        println!(
            "{name:<32} {count:>6}  {} (slowest {:.1} ms)",
            summary.join(", "),
            ms(slowest)
        );
    }
    let refused = answers
        .iter()
        .filter(|a| (400..500).contains(&a.status) || (a.status == 503 && a.retry_after.is_some()))
        .count();
    println!(
        "{refused} of {} answered 4xx or 503 with Retry-After",
        answers.len()
    );
    println!();
    println!("resident memory while they ran: VmRSS before, VmHWM (peak) during");
    println!(
        "{:<12} {:>11} {:>10} {:>11}",
        "process", "before MiB", "peak MiB", "growth MiB"
    );
    for ((name, before), peak) in watched.iter().zip(&baseline).zip(&peak) {
        println!(
            "{name:<12} {:>11.1} {:>10.1} {:>11.1}",
            *before as f64 / 1024.0,
            *peak as f64 / 1024.0,
            peak.saturating_sub(*before) as f64 / 1024.0
        );
    }
    println!();
    println!(
        "a normal upload (POST /api/v2/predict, a 28×28 BMP) answered 200 in {:.2} ms before the \
         bombs, {:.2} ms after",
        ms(before),
        ms(after)
    );
    Ok(())
}

/// The 24 requests: 12 GIFs, 4 16-bit and 4 RGBA PNGs (half of each kind to each predict
/// route), and 4 inference bodies (half to each model).
fn bomb_requests() -> Result<Vec<Bomb>> {
    let gif = digits::bombs::gif_canvas(8192);
    let grey16 = digits::bombs::png_zeros(8192, digits::bombs::PngPixels::Grey16)?;
    let rgba = digits::bombs::png_zeros(8192, digits::bombs::PngPixels::Rgba8)?;
    let infer = infer_body(BOMB_OIP_BATCH);
    let content_type = format!("multipart/form-data; boundary={BOUNDARY}");
    let mut bombs = Vec::new();
    for (kind, (_, count)) in BOMB_KINDS.iter().enumerate() {
        for i in 0..*count {
            let version = if i.is_multiple_of(2) { "v1" } else { "v2" };
            let image = |file: &str, mime: &str, bytes: &[u8]| Bomb {
                kind,
                path: format!("/api/{version}/predict"),
                content_type: content_type.clone(),
                body: multipart_file(file, mime, bytes),
            };
            bombs.push(match kind {
                0 => image("bomb.gif", "image/gif", &gif),
                1 => image("bomb16.png", "image/png", &grey16),
                2 => image("bomba.png", "image/png", &rgba),
                _ => Bomb {
                    kind,
                    path: format!(
                        "/v2/models/{}/infer",
                        if i.is_multiple_of(2) {
                            "mnist-cnn"
                        } else {
                            "mnist-mlp"
                        }
                    ),
                    content_type: "application/json".to_owned(),
                    body: infer.clone(),
                },
            });
        }
    }
    Ok(bombs)
}

/// An Open Inference Protocol body with `batch` images of zeros.
fn infer_body(batch: usize) -> Vec<u8> {
    let mut body =
        format!(r#"{{"inputs":[{{"name":"input","shape":[{batch},784],"datatype":"FP32","data":["#)
            .into_bytes();
    body.reserve(batch * 784 * 2 + 4);
    for i in 0..batch * 784 {
        if i > 0 {
            body.push(b',');
        }
        body.push(b'0');
    }
    body.extend_from_slice(b"]}]}");
    body
}

/// Every bomb on a connection of its own, all released together.
fn send_all_at_once(
    gateway: SocketAddr,
    bearer: &str,
    bombs: Vec<Bomb>,
) -> Result<Vec<BombAnswer>> {
    let start = Arc::new(std::sync::Barrier::new(bombs.len()));
    let threads: Vec<_> = bombs
        .into_iter()
        .map(|bomb| {
            let start = start.clone();
            let bearer = bearer.to_owned();
            thread::spawn(move || {
                start.wait();
                let sent = Instant::now();
                let (status, retry_after, error) =
                    send_once(gateway, &bearer, &bomb.path, &bomb.content_type, &bomb.body)?;
                Ok(BombAnswer {
                    kind: bomb.kind,
                    status,
                    retry_after,
                    error,
                    took: sent.elapsed(),
                })
            })
        })
        .collect();
    threads
        .into_iter()
        .map(|t| {
            t.join()
                .map_err(|_| anyhow::anyhow!("a sending thread panicked"))?
        })
        .collect()
}

/// One POST on a connection of its own (closed after the answer); the status, `Retry-After`
/// and the JSON body's `error`.
///
/// Written on the socket rather than with [`Client`]: the gateway may refuse a bomb (413, 429)
/// and close before it has read the body, and that early answer is what is measured; an HTTP
/// client (ureq included) reports the failed write of the rest of the body and drops the answer.
fn send_once(
    to: SocketAddr,
    bearer: &str,
    path: &str,
    content_type: &str,
    body: &[u8],
) -> Result<(u16, Option<String>, String)> {
    use std::io::{Read, Write};
    let mut stream = std::net::TcpStream::connect_timeout(&to, Duration::from_secs(5))?;
    stream.set_read_timeout(Some(BOMB_TIMEOUT))?;
    stream.set_write_timeout(Some(BOMB_TIMEOUT))?;
    let head = format!(
        "POST {path} HTTP/1.1\r\nHost: {to}\r\nAuthorization: {bearer}\r\nContent-Type: \
         {content_type}\r\nContent-Length: {}\r\nConnection: close\r\n\r\n",
        body.len()
    );
    stream.write_all(head.as_bytes())?;
    // A server may answer and close before it has read the whole body: its answer counts.
    let _ = stream.write_all(body);
    let mut answer = Vec::new();
    stream
        .read_to_end(&mut answer)
        .with_context(|| format!("reading the answer to POST {path}"))?;
    let text = String::from_utf8_lossy(&answer);
    let (head, rest) = text.split_once("\r\n\r\n").unwrap_or((&text, ""));
    let mut lines = head.lines();
    let status = lines
        .next()
        .and_then(|line| line.split_whitespace().nth(1))
        .and_then(|code| code.parse().ok())
        .with_context(|| format!("POST {path} answered no status line: {head:?}"))?;
    let retry_after = lines.find_map(|line| {
        let (name, value) = line.split_once(':')?;
        name.eq_ignore_ascii_case("retry-after")
            .then(|| value.trim().to_owned())
    });
    // The error object is short: whole in the body, or in its one chunk when chunked.
    let object = rest
        .find('{')
        .zip(rest.rfind('}'))
        .and_then(|(start, end)| rest.get(start..=end))
        .unwrap_or_default();
    let error = json_string_field(object.as_bytes(), "error").unwrap_or_default();
    Ok((status, retry_after, error))
}

/// The time of one normal upload to `/api/{version}/predict`, which must answer 200.
fn normal_upload(
    gateway: SocketAddr,
    bearer: &str,
    version: &str,
    upload: &[u8],
) -> Result<Duration> {
    let content_type = format!("multipart/form-data; boundary={BOUNDARY}");
    let sent = Instant::now();
    let (status, _, error) = send_once(
        gateway,
        bearer,
        &format!("/api/{version}/predict"),
        &content_type,
        upload,
    )?;
    let took = sent.elapsed();
    if status != 200 {
        bail!("a normal upload to /api/{version}/predict answered {status} {error}");
    }
    Ok(took)
}
