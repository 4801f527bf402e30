//! `cargo xtask up`: build every service and run them together locally, until Ctrl-C.

use std::fs::{self, File, OpenOptions};
use std::io::{self, BufRead, BufReader, IsTerminal, Read, Write};
use std::net::{SocketAddr, TcpListener, TcpStream};
use std::os::unix::fs::{OpenOptionsExt, PermissionsExt};
use std::os::unix::process::CommandExt;
use std::path::{Path, PathBuf};
use std::process::{Child, ChildStderr, ChildStdout, Command, ExitStatus, Stdio};
use std::sync::Arc;
use std::sync::atomic::{AtomicUsize, Ordering};
use std::thread::{self, JoinHandle};
use std::time::{Duration, Instant};

use anyhow::{Context, Result, bail};

use crate::{cargo, display_path, setup, train};

const HEALTH_TIMEOUT: Duration = Duration::from_secs(60);
const STOP_TIMEOUT: Duration = Duration::from_secs(35);
const POLL: Duration = Duration::from_millis(200);

pub(crate) struct Service {
    pub(crate) name: &'static str,
    pub(crate) port: u16,
}

const AUTH: Service = Service {
    name: "auth-svc",
    port: 8081,
};
/// Started once auth-svc is healthy (they fetch its JWKS), in this order.
const BACKENDS: [Service; 4] = [
    Service {
        name: "predict-svc",
        port: 8082,
    },
    Service {
        name: "feedback-svc",
        port: 8083,
    },
    Service {
        name: "notify-svc",
        port: 8084,
    },
    Service {
        name: "retrain-worker",
        port: 8085,
    },
];
const GATEWAY: Service = Service {
    name: "gateway",
    port: 8080,
};
const GATEWAY_ROUTES: [(&str, u16); 5] = [
    ("AUTH_URL", 8081),
    ("PREDICT_URL", 8082),
    ("FEEDBACK_URL", 8083),
    ("NOTIFY_URL", 8084),
    ("RETRAIN_URL", 8085),
];

/// The all-in-one process (the `predictloop` crate's binary).
const ALL_IN_ONE: Service = Service {
    name: "predictloop",
    port: 8080,
};

/// Runs the whole system: in one process on SQLite and in-process backends when neither
/// `DATABASE_URL` nor `REDIS_URL` is set (nothing else to install); as the separate services on
/// PostgreSQL and Redis when both are.
pub fn run(root: &Path, release: bool) -> Result<()> {
    setup::run(root)?;
    // predict-svc imports the initial models on first start.
    if train::models_missing(root) {
        train::train_models(root, false)?;
    }
    if is_set("DATABASE_URL") && is_set("REDIS_URL") {
        run_services(root, release)
    } else {
        run_all_in_one(root, release)
    }
}

fn run_all_in_one(root: &Path, release: bool) -> Result<()> {
    let bin_dir = build_packages(root, release, &[ALL_IN_ONE.name])?;
    let gateway_port = gateway_port()?;
    let admin = AdminCredentials::resolve(root)?;
    let mut defaults = shared_defaults(root, &admin)?;
    // The all-in-one process wires the services to each other itself, and chooses the
    // embedded database and backends for what is not set.
    defaults.retain(|(name, _)| {
        !matches!(
            name.as_str(),
            "DATABASE_URL" | "REDIS_URL" | "AUTH_JWKS_URL"
        ) && !GATEWAY_ROUTES.iter().any(|(route, _)| route == name)
    });
    let data_dir = std::env::var_os("DATA_DIR")
        .filter(|dir| !dir.is_empty())
        .map_or_else(|| root.join("data"), PathBuf::from);
    if !is_set("DATA_DIR") {
        defaults.push(("DATA_DIR".into(), data_dir.display().to_string()));
    }
    let sample = write_sample_digit(root).unwrap_or_else(|e| {
        eprintln!("warning: no sample digit image: {e:#}");
        None
    });

    let signals = count_signals()?;
    let mut fleet = Fleet::new(signals)?;
    let addr = fleet.start(&bin_dir, &ALL_IN_ONE, gateway_port, &defaults)?;
    fleet.wait_healthy(ALL_IN_ONE.name, addr)?;

    let backends = match (std::env::var("DATABASE_URL"), std::env::var("REDIS_URL")) {
        (Err(_), Err(_)) => format!(
            "everything in one process; data in {} (SQLite, one file per service), events, jobs and recent predictions in memory",
            display_path(root, &data_dir.join("db"))
        ),
        (Ok(_), Err(_)) => {
            "everything in one process; data in $DATABASE_URL, events, jobs and recent predictions in memory".into()
        }
        _ => format!(
            "everything in one process; data in {} (SQLite), events, jobs and predictions in $REDIS_URL",
            display_path(root, &data_dir.join("db"))
        ),
    };
    print_walkthrough(root, gateway_port, &admin, &backends, sample.as_deref());
    fleet.supervise()
}

fn run_services(root: &Path, release: bool) -> Result<()> {
    let bin_dir = build(root, release)?;
    let gateway_port = gateway_port()?;
    let admin = AdminCredentials::resolve(root)?;
    let defaults = shared_defaults(root, &admin)?;

    // Fail before starting anything when a port is taken.
    for (name, port) in std::iter::once((GATEWAY.name, gateway_port)).chain(
        [&AUTH]
            .into_iter()
            .chain(&BACKENDS)
            .map(|s| (s.name, s.port)),
    ) {
        ensure_port_free(name, SocketAddr::from(([127, 0, 0, 1], port)))?;
    }

    let signals = count_signals()?;

    let mut fleet = Fleet::new(signals)?;
    let auth_addr = fleet.start(&bin_dir, &AUTH, AUTH.port, &defaults)?;
    fleet.wait_healthy(AUTH.name, auth_addr)?;
    let mut started = Vec::new();
    for service in &BACKENDS {
        started.push((
            service.name,
            fleet.start(&bin_dir, service, service.port, &defaults)?,
        ));
    }
    for (name, addr) in started {
        fleet.wait_healthy(name, addr)?;
    }
    let gateway_addr = fleet.start(&bin_dir, &GATEWAY, gateway_port, &defaults)?;
    fleet.wait_healthy(GATEWAY.name, gateway_addr)?;

    let backends = "one process per service, on $DATABASE_URL (PostgreSQL) and $REDIS_URL";
    print_walkthrough(root, gateway_port, &admin, backends, None);
    fleet.supervise()
}

/// Installs the Ctrl-C / SIGTERM / SIGHUP handler; returns the count of signals received, which
/// a [`Fleet`] watches to stop in order.
pub(crate) fn count_signals() -> Result<Arc<AtomicUsize>> {
    let signals = Arc::new(AtomicUsize::new(0));
    let counter = Arc::clone(&signals);
    ctrlc::set_handler(move || {
        counter.fetch_add(1, Ordering::SeqCst);
    })
    .context("installing the Ctrl-C / SIGTERM handler")?;
    Ok(signals)
}

/// Writes one MNIST test digit as a BMP under `data/samples/` (once), for the walk-through's
/// prediction; returns its path.
fn write_sample_digit(root: &Path) -> Result<Option<PathBuf>> {
    const SIDE: usize = 28;
    // Test digit 0 is a 7.
    let (index, label) = (0, 7);
    let path = root
        .join("data")
        .join("samples")
        .join(format!("digit-{label}.bmp"));
    if path.is_file() {
        return Ok(Some(path));
    }
    let images = setup::mnist_dir(root).join("t10k-images-idx3-ubyte");
    let bytes = fs::read(&images).with_context(|| format!("reading {}", images.display()))?;
    let start = 16 + index * SIDE * SIDE;
    let Some(pixels) = bytes.get(start..start + SIDE * SIDE) else {
        bail!("{} is shorter than expected", images.display());
    };
    // A 24-bit BMP: 54 bytes of headers, then the rows bottom-up (84 bytes each: no padding).
    let row = SIDE * 3;
    let size = 54 + row * SIDE;
    let mut bmp = Vec::with_capacity(size);
    bmp.extend_from_slice(b"BM");
    bmp.extend_from_slice(&(size as u32).to_le_bytes());
    bmp.extend_from_slice(&0_u32.to_le_bytes());
    bmp.extend_from_slice(&54_u32.to_le_bytes());
    bmp.extend_from_slice(&40_u32.to_le_bytes());
    bmp.extend_from_slice(&(SIDE as i32).to_le_bytes());
    bmp.extend_from_slice(&(SIDE as i32).to_le_bytes());
    bmp.extend_from_slice(&1_u16.to_le_bytes());
    bmp.extend_from_slice(&24_u16.to_le_bytes());
    bmp.extend_from_slice(&[0; 24]);
    for y in (0..SIDE).rev() {
        for &grey in &pixels[y * SIDE..(y + 1) * SIDE] {
            bmp.extend_from_slice(&[grey, grey, grey]);
        }
    }
    if let Some(dir) = path.parent() {
        fs::create_dir_all(dir).with_context(|| format!("creating {}", dir.display()))?;
    }
    fs::write(&path, bmp).with_context(|| format!("writing {}", path.display()))?;
    Ok(Some(path))
}

/// Build the service binaries; returns the folder holding them.
pub(crate) fn build(root: &Path, release: bool) -> Result<PathBuf> {
    let packages: Vec<&str> = std::iter::once(&GATEWAY)
        .chain([&AUTH])
        .chain(&BACKENDS)
        .map(|s| s.name)
        .collect();
    build_packages(root, release, &packages)
}

/// Build the binaries of `packages`; returns the folder holding them.
pub(crate) fn build_packages(root: &Path, release: bool, packages: &[&str]) -> Result<PathBuf> {
    let mut command = cargo();
    command.current_dir(root).args(["build", "--bins"]);
    for package in packages {
        command.args(["-p", package]);
    }
    if release {
        command.arg("--release");
    }
    let status = command.status().context("running cargo build")?;
    if !status.success() {
        bail!("cargo build of {} failed ({status})", packages.join(", "));
    }
    Ok(target_dir(root).join(if release { "release" } else { "debug" }))
}

/// The cargo target folder.
pub(crate) fn target_dir(root: &Path) -> PathBuf {
    ["CARGO_TARGET_DIR", "CARGO_BUILD_TARGET_DIR"]
        .iter()
        .find_map(|name| std::env::var_os(name).filter(|value| !value.is_empty()))
        .map_or_else(|| root.join("target"), |dir| root.join(dir))
}

pub(crate) fn gateway_port() -> Result<u16> {
    match std::env::var("GATEWAY_PORT") {
        Ok(port) => port
            .trim()
            .parse()
            .with_context(|| format!("GATEWAY_PORT={port:?} is not a port number")),
        Err(_) => Ok(GATEWAY.port),
    }
}

fn is_set(name: &str) -> bool {
    std::env::var_os(name).is_some()
}

/// Defaults every service gets when the variable is not set in our own environment.
fn shared_defaults(root: &Path, admin: &AdminCredentials) -> Result<Vec<(String, String)>> {
    let mut defaults: Vec<(String, String)> = vec![
        ("APP_ENV".into(), "development".into()),
        (
            "DATABASE_URL".into(),
            "postgres://postgres@127.0.0.1:5432/predictloop".into(),
        ),
        ("REDIS_URL".into(), "redis://127.0.0.1:6379".into()),
        (
            "AUTH_JWKS_URL".into(),
            "http://127.0.0.1:8081/.well-known/jwks.json".into(),
        ),
        (
            "ORT_DYLIB_PATH".into(),
            setup::onnxruntime_lib(root).display().to_string(),
        ),
        (
            "MNIST_DIR".into(),
            setup::mnist_dir(root).display().to_string(),
        ),
        ("RUST_LOG".into(), "info".into()),
    ];
    // The service URLs are the gateway's routing table; others (retrain-worker registering a
    // model with predict-svc) may use them too, so every service gets them.
    for (name, port) in GATEWAY_ROUTES {
        defaults.push((name.into(), format!("http://127.0.0.1:{port}")));
    }
    // The gateway's web pages, wherever `cargo xtask up` is run from.
    defaults.push(("WEB_DIR".into(), setup::web_dir(root).display().to_string()));
    if !is_set("MODEL_DIR") {
        let models = root.join("data").join("models");
        fs::create_dir_all(&models).with_context(|| format!("creating {}", models.display()))?;
        defaults.push(("MODEL_DIR".into(), models.display().to_string()));
    }
    if io::stdout().is_terminal() {
        defaults.push(("LOG_FORMAT".into(), "pretty".into()));
    }
    defaults.push(("ADMIN_USERNAME".into(), admin.username.clone()));
    defaults.push(("ADMIN_PASSWORD".into(), admin.password.clone()));
    // The first run's auth-svc generates a development key and saves it there (marked, and
    // refused outside development mode); later runs use it, so tokens survive a restart.
    let signing_key = root.join("data").join("dev-signing-key.pem");
    let key_var = if signing_key.is_file() {
        "JWT_SIGNING_KEY_FILE"
    } else {
        "DEV_SIGNING_KEY_FILE"
    };
    if !is_set("JWT_SIGNING_KEY") && !is_set("JWT_SIGNING_KEY_FILE") {
        defaults.push((key_var.into(), signing_key.display().to_string()));
    }
    defaults.retain(|(name, _)| !is_set(name));
    Ok(defaults)
}

/// The admin's name and password as `cargo xtask up` uses them (from the environment, else
/// the password it generated), without generating one.
pub(crate) fn admin_login(root: &Path) -> Result<(String, String)> {
    let admin = AdminCredentials::existing(root)?.context(
        "no admin password yet: set ADMIN_PASSWORD, or run `cargo xtask up` first (it keeps the one it generates in data/dev-admin-password)",
    )?;
    Ok((admin.username, admin.password))
}

struct AdminCredentials {
    username: String,
    password: String,
    /// Where the generated password is kept, when it is ours.
    password_file: Option<PathBuf>,
}

impl AdminCredentials {
    /// From `ADMIN_PASSWORD`, else the password an earlier run generated; `None` when there is
    /// neither yet.
    fn existing(root: &Path) -> Result<Option<Self>> {
        let username = Self::username();
        if let Ok(password) = std::env::var("ADMIN_PASSWORD") {
            return Ok(Some(Self {
                username,
                password,
                password_file: None,
            }));
        }
        let file = Self::password_file(root);
        let text = match fs::read_to_string(&file) {
            Ok(text) => text,
            Err(err) if err.kind() == io::ErrorKind::NotFound => return Ok(None),
            Err(err) => return Err(err).with_context(|| format!("reading {}", file.display())),
        };
        let password = text.trim().to_string();
        if password.is_empty() {
            bail!(
                "{} is empty: delete it to get a new password",
                file.display()
            );
        }
        fs::set_permissions(&file, fs::Permissions::from_mode(0o600))
            .with_context(|| format!("restricting {}", file.display()))?;
        Ok(Some(Self {
            username,
            password,
            password_file: Some(file),
        }))
    }

    /// The existing credentials, else a generated password kept for later runs.
    fn resolve(root: &Path) -> Result<Self> {
        if let Some(admin) = Self::existing(root)? {
            return Ok(admin);
        }
        let file = Self::password_file(root);
        let password = random_password()?;
        if let Some(dir) = file.parent() {
            fs::create_dir_all(dir).with_context(|| format!("creating {}", dir.display()))?;
        }
        let mut out = OpenOptions::new()
            .write(true)
            .create_new(true)
            .mode(0o600)
            .open(&file)
            .with_context(|| format!("creating {}", file.display()))?;
        writeln!(out, "{password}").with_context(|| format!("writing {}", file.display()))?;
        Ok(Self {
            username: Self::username(),
            password,
            password_file: Some(file),
        })
    }

    fn username() -> String {
        std::env::var("ADMIN_USERNAME").unwrap_or_else(|_| "admin".into())
    }

    fn password_file(root: &Path) -> PathBuf {
        root.join("data").join("dev-admin-password")
    }
}

/// 24 URL-safe characters (144 bits) from the kernel's generator.
fn random_password() -> Result<String> {
    const ALPHABET: &[u8; 64] = b"ABCDEFGHIJKLMNOPQRSTUVWXYZabcdefghijklmnopqrstuvwxyz0123456789-_";
    let mut bytes = [0_u8; 24];
    File::open("/dev/urandom")
        .and_then(|mut urandom| urandom.read_exact(&mut bytes))
        .context("reading /dev/urandom")?;
    // 256 is a multiple of 64, so masking keeps every character equally likely.
    Ok(bytes
        .iter()
        .map(|byte| char::from(ALPHABET[usize::from(byte & 63)]))
        .collect())
}

struct Running {
    name: &'static str,
    child: Child,
    exited: Option<ExitStatus>,
    log_threads: Vec<JoinHandle<()>>,
}

/// The started services; whatever is still running is stopped when this is dropped.
pub(crate) struct Fleet {
    running: Vec<Running>,
    /// How many Ctrl-C / SIGTERM / SIGHUP we received.
    signals: Arc<AtomicUsize>,
    /// The services' credentials for each other's /internal/ routes, made for this run.
    credentials: ServiceCredentials,
}

/// The calling services (client id, scopes) as in `common::service_auth::CALLERS`.
const SERVICE_CALLERS: [(&str, &str); 2] = [
    (
        "retrain-worker",
        "models:read,models:register,models:promote,feedback:read",
    ),
    ("feedback-svc", "predictions:read"),
];

/// Development credentials for the service tokens, generated per run as auth-svc generates its
/// development signing key: auth-svc gets `SERVICE_CLIENTS`, each caller its own secret.
struct ServiceCredentials {
    secrets: Vec<(&'static str, String)>,
}

impl ServiceCredentials {
    fn generate() -> Result<Self> {
        let secrets = SERVICE_CALLERS
            .iter()
            .map(|(id, _)| Ok((*id, random_hex(32)?)))
            .collect::<Result<_>>()?;
        Ok(ServiceCredentials { secrets })
    }

    /// What `service` gets, unless our own environment sets it.
    fn vars_for(&self, service: &str) -> Vec<(String, String)> {
        let mut vars = Vec::new();
        if service == "auth-svc" {
            let clients: Vec<String> = SERVICE_CALLERS
                .iter()
                .zip(&self.secrets)
                .map(|((id, scopes), (_, secret))| format!("{id}:{secret}={scopes}"))
                .collect();
            vars.push(("SERVICE_CLIENTS".to_owned(), clients.join(";")));
        }
        if let Some((id, secret)) = self.secrets.iter().find(|(id, _)| *id == service) {
            vars.push(("SERVICE_CLIENT_ID".to_owned(), (*id).to_owned()));
            vars.push(("SERVICE_CLIENT_SECRET".to_owned(), secret.clone()));
        }
        vars.retain(|(name, _)| !is_set(name));
        vars
    }
}

/// `bytes` random bytes from the kernel, in hex.
fn random_hex(bytes: usize) -> Result<String> {
    let mut buf = vec![0u8; bytes];
    File::open("/dev/urandom")
        .and_then(|mut f| f.read_exact(&mut buf))
        .context("reading /dev/urandom for the service credentials")?;
    Ok(buf.iter().map(|b| format!("{b:02x}")).collect())
}

impl Fleet {
    /// A fleet that stops early when `signals` (counted by the Ctrl-C handler) goes up.
    pub(crate) fn new(signals: Arc<AtomicUsize>) -> Result<Self> {
        Ok(Fleet {
            running: Vec::new(),
            signals,
            credentials: ServiceCredentials::generate()?,
        })
    }

    pub(crate) fn start(
        &mut self,
        bin_dir: &Path,
        service: &Service,
        port: u16,
        defaults: &[(String, String)],
    ) -> Result<SocketAddr> {
        let addr = SocketAddr::from(([127, 0, 0, 1], port));
        ensure_port_free(service.name, addr)?;
        let binary = bin_dir.join(service.name);
        if !binary.is_file() {
            bail!(
                "{} was not built: {} is missing",
                service.name,
                binary.display()
            );
        }
        let mut command = Command::new(&binary);
        command
            .envs(defaults.iter().map(|(name, value)| (name, value)))
            .envs(self.credentials.vars_for(service.name))
            .env("BIND_ADDR", addr.to_string())
            .stdin(Stdio::null())
            .stdout(Stdio::piped())
            .stderr(Stdio::piped())
            // Own process group: the terminal's Ctrl-C reaches only us, and we stop the services
            // in order instead of seeing them die underneath us.
            .process_group(0);
        let mut child = command
            .spawn()
            .with_context(|| format!("starting {}", binary.display()))?;
        eprintln!("started {} (pid {}) on {addr}", service.name, child.id());
        let mut log_threads = Vec::new();
        if let Some(stdout) = child.stdout.take() {
            log_threads.push(forward_stdout(service.name, stdout));
        }
        if let Some(stderr) = child.stderr.take() {
            log_threads.push(forward_stderr(service.name, stderr));
        }
        self.running.push(Running {
            name: service.name,
            child,
            exited: None,
            log_threads,
        });
        Ok(addr)
    }

    /// The process id of a started service not yet seen to exit.
    pub(crate) fn pid(&self, name: &str) -> Option<u32> {
        self.running
            .iter()
            .find(|service| service.name == name && service.exited.is_none())
            .map(|service| service.child.id())
    }

    fn interrupted(&self) -> bool {
        self.signals.load(Ordering::SeqCst) > 0
    }

    /// The first service found to have exited since the last look, with its status.
    fn find_exited(&mut self) -> Result<Option<(&'static str, ExitStatus)>> {
        for service in &mut self.running {
            if service.exited.is_none()
                && let Some(status) = service
                    .child
                    .try_wait()
                    .with_context(|| format!("checking on {}", service.name))?
            {
                service.exited = Some(status);
                return Ok(Some((service.name, status)));
            }
        }
        Ok(None)
    }

    pub(crate) fn wait_healthy(&mut self, name: &str, addr: SocketAddr) -> Result<()> {
        let deadline = Instant::now() + HEALTH_TIMEOUT;
        loop {
            if self.interrupted() {
                self.stop_all();
                bail!("interrupted while waiting for {name} to become healthy");
            }
            if let Some((dead, status)) = self.find_exited()? {
                self.stop_all();
                bail!("{dead} exited during start-up ({status}): read its log above");
            }
            if matches!(http_get_status(addr, "/health"), Ok(200)) {
                eprintln!("{name} is healthy");
                return Ok(());
            }
            if Instant::now() >= deadline {
                self.stop_all();
                bail!(
                    "{name} did not answer GET http://{addr}/health with 200 within {} s: read its log above",
                    HEALTH_TIMEOUT.as_secs()
                );
            }
            thread::sleep(POLL);
        }
    }

    /// Watch the running system until a signal (clean stop) or a service dying (error).
    fn supervise(&mut self) -> Result<()> {
        loop {
            if self.interrupted() {
                eprintln!("stopping predictloop...");
                self.stop_all();
                return Ok(());
            }
            if let Some((dead, status)) = self.find_exited()? {
                eprintln!("{dead} exited on its own ({status}); stopping the others");
                self.stop_all();
                bail!("{dead} died ({status}): read its log above");
            }
            thread::sleep(POLL);
        }
    }

    /// SIGTERM to every live service, up to 35 s for them to drain, then SIGKILL (at once on a
    /// second Ctrl-C). Idempotent.
    pub(crate) fn stop_all(&mut self) {
        let signals_before = self.signals.load(Ordering::SeqCst);
        // Newest first: the gateway stops taking traffic before what it routes to goes away.
        for service in self.running.iter_mut().rev() {
            if service.exited.is_some() {
                continue;
            }
            if let Ok(Some(status)) = service.child.try_wait() {
                service.exited = Some(status);
                continue;
            }
            let sent = Command::new("kill")
                .args(["-TERM", &service.child.id().to_string()])
                .status()
                .is_ok_and(|status| status.success());
            if !sent {
                let _ = service.child.kill();
            }
        }
        let deadline = Instant::now() + STOP_TIMEOUT;
        loop {
            let mut alive = 0;
            for service in &mut self.running {
                if service.exited.is_none() {
                    match service.child.try_wait() {
                        Ok(Some(status)) => {
                            eprintln!("{} stopped ({status})", service.name);
                            service.exited = Some(status);
                        }
                        Ok(None) => alive += 1,
                        Err(_) => service.exited = Some(ExitStatus::default()),
                    }
                }
            }
            if alive == 0 {
                break;
            }
            let hurried = self.signals.load(Ordering::SeqCst) > signals_before;
            if hurried || Instant::now() >= deadline {
                for service in &mut self.running {
                    if service.exited.is_none() {
                        eprintln!(
                            "{} did not stop{}: killing it",
                            service.name,
                            if hurried { "" } else { " within 35 s" }
                        );
                        let _ = service.child.kill();
                        service.exited = service.child.wait().ok();
                    }
                }
                break;
            }
            thread::sleep(POLL);
        }
        // Let the last log lines through; a stuck pipe (a grandchild holding it) is not waited for.
        let flush_deadline = Instant::now() + Duration::from_secs(1);
        for service in &mut self.running {
            for handle in std::mem::take(&mut service.log_threads) {
                while !handle.is_finished() && Instant::now() < flush_deadline {
                    thread::sleep(Duration::from_millis(20));
                }
                if handle.is_finished() {
                    let _ = handle.join();
                }
            }
        }
    }
}

impl Drop for Fleet {
    fn drop(&mut self) {
        self.stop_all();
    }
}

fn forward_stdout(name: &'static str, from: ChildStdout) -> JoinHandle<()> {
    thread::spawn(move || forward_lines(name, from, || Box::new(io::stdout().lock())))
}

fn forward_stderr(name: &'static str, from: ChildStderr) -> JoinHandle<()> {
    thread::spawn(move || forward_lines(name, from, || Box::new(io::stderr().lock())))
}

/// Copy a service's output line by line, each prefixed with the service's name.
fn forward_lines(name: &str, from: impl Read, sink: impl Fn() -> Box<dyn Write>) {
    let mut reader = BufReader::new(from);
    let mut line = Vec::new();
    loop {
        line.clear();
        match reader.read_until(b'\n', &mut line) {
            Ok(0) | Err(_) => return,
            Ok(_) => {
                if !line.ends_with(b"\n") {
                    line.push(b'\n');
                }
                let mut out = sink();
                let _ = write!(out, "{name:>14} | ").and_then(|()| out.write_all(&line));
            }
        }
    }
}

/// A leftover process on the port would answer our health checks in the new one's place.
pub(crate) fn ensure_port_free(name: &str, addr: SocketAddr) -> Result<()> {
    TcpListener::bind(addr).map(drop).with_context(|| {
        format!(
            "{name} cannot use {addr}: the port is taken (another `cargo xtask up` still running?)"
        )
    })
}

/// Status code of a plain HTTP/1.1 `GET`, enough for health checks without an HTTP client.
fn http_get_status(addr: SocketAddr, path: &str) -> io::Result<u16> {
    let timeout = Duration::from_secs(2);
    let mut stream = TcpStream::connect_timeout(&addr, timeout)?;
    stream.set_read_timeout(Some(timeout))?;
    stream.set_write_timeout(Some(timeout))?;
    write!(
        stream,
        "GET {path} HTTP/1.1\r\nHost: {addr}\r\nAccept: */*\r\nConnection: close\r\n\r\n"
    )?;
    let mut head = Vec::new();
    let mut buf = [0_u8; 512];
    while !head.windows(2).any(|pair| pair == b"\r\n") && head.len() < 8192 {
        let read = stream.read(&mut buf)?;
        if read == 0 {
            break;
        }
        head.extend_from_slice(&buf[..read]);
    }
    let status_line = String::from_utf8_lossy(&head);
    let mut parts = status_line.split_whitespace();
    match (parts.next(), parts.next()) {
        (Some(version), Some(code)) if version.starts_with("HTTP/1.") => code
            .parse()
            .map_err(|_| io::Error::new(io::ErrorKind::InvalidData, "bad HTTP status code")),
        _ => Err(io::Error::new(
            io::ErrorKind::InvalidData,
            "not an HTTP/1.x answer",
        )),
    }
}

fn print_walkthrough(
    root: &Path,
    gateway_port: u16,
    admin: &AdminCredentials,
    backends: &str,
    sample: Option<&Path>,
) {
    let url = format!("http://127.0.0.1:{gateway_port}");
    let password = match &admin.password_file {
        Some(file) => format!(
            "{}   (kept in {})",
            admin.password,
            display_path(root, file)
        ),
        None => "(from $ADMIN_PASSWORD)".to_string(),
    };
    let image = sample.map_or_else(
        || "digit.png   # any image of one handwritten digit".to_string(),
        |path| display_path(root, path),
    );
    let mut out = io::stdout().lock();
    let _ = writeln!(
        out,
        r#"
predictloop is up: {url}
  {backends}

  admin user:     {username}
  admin password: {password}

In a browser: {url}/ to draw a digit and see both models' answers, and {url}/dashboard
(as the admin) for the live feedback, the report, retraining and the model versions.
The API itself is described at {url}/openapi.json (OpenAPI 3.1).
{walkthrough}
Press Ctrl-C to stop everything; the next start keeps the data and takes seconds.
"#,
        username = admin.username,
        walkthrough = curl_walkthrough(&url, gateway_port, admin, &image),
    );
    let _ = out.flush();
}

/// The walk-through's curl commands: a user's prediction and feedback, then the admin's view.
fn curl_walkthrough(url: &str, gateway_port: u16, admin: &AdminCredentials, image: &str) -> String {
    let field = |name: &str| {
        format!("python3 -c 'import json,sys; print(json.load(sys.stdin)[\"{name}\"])'")
    };
    let user = r#"{"username":"alice","password":"correct-horse-battery"}"#;
    let admin_json = format!(
        r#"{{"username":"{}","password":"'"$ADMIN_PASSWORD"'"}}"#,
        admin.username
    );
    format!(
        r#"
Walk-through with curl (in another terminal, from this folder):
  # 1. register a user and log in (the answer also holds a refresh_token)
  curl -sS -X POST {url}/register -H 'Content-Type: application/json' -d '{user}'
  TOKEN=$(curl -sS -X POST {url}/login -H 'Content-Type: application/json' -d '{user}' | {access_token})
  # 2. predict the digit in an image, with the baseline (v1) and the improved (v2) model
  curl -sS {url}/api/v1/predict -H "Authorization: Bearer $TOKEN" -F file=@{image}
  ANSWER=$(curl -sS {url}/api/v2/predict -H "Authorization: Bearer $TOKEN" -F file=@{image}); echo "$ANSWER"
  # 3. say it was right (or send "correct":false with the true "label"), linked to that prediction
  curl -sS -X POST {url}/feedback -H "Authorization: Bearer $TOKEN" -H 'Content-Type: application/json' \
       -d '{{"prediction":'$(echo "$ANSWER" | {prediccion})',"correct":true,"prediction_id":"'$(echo "$ANSWER" | {prediction_id})'"}}'
  # 4. as the admin: watch feedback and retraining arrive live over the admin WebSocket
  #    (in its own terminal; it prints each event), and read the report
  {watch}
{admin_password_line}  ADMIN_TOKEN=$(curl -sS -X POST {url}/login -H 'Content-Type: application/json' -d '{admin_json}' | {access_token})
  curl -sS {url}/admin/report -H "Authorization: Bearer $ADMIN_TOKEN"
  # 5. retrain the baseline model on MNIST plus the feedback; past the offline gate it starts a
  #    rollout (shadow, then a canary share), promoted or rolled back on requested labels
  curl -sS -X POST {url}/admin/retrain -H "Authorization: Bearer $ADMIN_TOKEN" -H 'Content-Type: application/json' \
       -d '{{"model":"mnist-mlp","epochs":1}}'
  curl -sS {url}/admin/retrain -H "Authorization: Bearer $ADMIN_TOKEN"     # its state and metrics
  curl -sS {url}/admin/models -H "Authorization: Bearer $ADMIN_TOKEN"      # the model versions
  curl -sS {url}/admin/models/mnist-mlp/rollouts -H "Authorization: Bearer $ADMIN_TOKEN"  # its rollouts
"#,
        admin_password_line = if admin.password_file.is_some() {
            format!("  ADMIN_PASSWORD='{}'\n", admin.password)
        } else {
            String::new()
        },
        watch = if gateway_port == GATEWAY.port {
            "cargo xtask watch".to_string()
        } else {
            format!("GATEWAY_PORT={gateway_port} cargo xtask watch")
        },
        access_token = field("access_token"),
        prediccion = field("prediccion"),
        prediction_id = field("prediction_id"),
    )
}

#[cfg(test)]
mod tests {
    #![allow(clippy::unwrap_used)]
    use super::*;

    #[test]
    fn each_caller_gets_the_secret_auth_svc_lists_for_it() {
        let credentials = ServiceCredentials::generate().unwrap();
        let auth = credentials.vars_for("auth-svc");
        let (_, clients) = auth.iter().find(|(n, _)| n == "SERVICE_CLIENTS").unwrap();
        for (id, scopes) in SERVICE_CALLERS {
            let vars = credentials.vars_for(id);
            let get = |name: &str| vars.iter().find(|(n, _)| n == name).unwrap().1.clone();
            assert_eq!(get("SERVICE_CLIENT_ID"), id);
            let secret = get("SERVICE_CLIENT_SECRET");
            assert_eq!(secret.len(), 64);
            assert!(
                clients
                    .split(';')
                    .any(|e| e == format!("{id}:{secret}={scopes}")),
                "{clients}"
            );
        }
        assert!(credentials.vars_for("gateway").is_empty());
        let again = ServiceCredentials::generate().unwrap();
        assert_ne!(again.secrets, credentials.secrets, "fresh per run");
    }
}
