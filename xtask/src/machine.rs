//! What `cargo xtask test` needs of the machine, prepared before anything is built:
//! cargo-nextest, the browsers of the web pages' tests, and the local PostgreSQL and Redis the
//! tests use. Each run looks first and acts only on what is missing, so a second run does
//! nothing; what it cannot do (not root, nothing installed to start) is listed at once, each
//! with the command that fixes it.
//!
//! [`plan`] is the whole decision, from [`Facts`] to [`Step`]s and [`Missing`] items; the rest
//! of the module only gathers the facts and runs the steps.

use std::fmt;
use std::io::{Read, Write};
use std::net::{SocketAddr, TcpStream, ToSocketAddrs};
use std::path::PathBuf;
use std::process::{Command, Stdio};
use std::time::{Duration, Instant};

use anyhow::{Context, Result, bail};

use crate::cargo;

/// What the machine has, as far as the tests care.
#[derive(Debug, Clone)]
pub struct Facts {
    /// The process runs as root (may use apt-get and pg_ctlcluster).
    pub root: bool,
    /// `apt-get` is on the PATH.
    pub apt: bool,
    pub nextest: bool,
    /// The browsers the browser tests will drive; empty when they will not run.
    pub browsers: Vec<BrowserFact>,
    pub postgres: ServerFact,
    pub redis: ServerFact,
}

#[derive(Debug, Clone)]
pub struct BrowserFact {
    pub name: &'static str,
    /// Debian's package for it.
    pub package: &'static str,
    /// The variable naming another binary.
    pub var: &'static str,
    pub path: PathBuf,
    /// The path came from `var`, so installing the package would not help.
    pub chosen: bool,
    /// The binary is at `path`.
    pub present: bool,
}

/// One of the servers the tests use, at the address their URL names.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct ServerFact {
    /// How the tests reach it: the URL's `host:port`.
    pub address: String,
    pub answering: bool,
    /// The address is on this machine, so starting a local server can help.
    pub local: bool,
    /// How a local server would be started, when one is installed.
    pub installed: Option<Launch>,
}

#[derive(Debug, Clone, PartialEq, Eq)]
pub enum Launch {
    /// A Debian cluster: `pg_ctlcluster <version> main start` (root only).
    PgCluster { version: String },
    /// `redis-server --daemonize yes` on the URL's port (any user).
    RedisServer { port: u16 },
}

/// Something `cargo xtask test` does to the machine.
#[derive(Debug, Clone, PartialEq, Eq)]
pub enum Step {
    InstallNextest,
    AptInstall(Vec<&'static str>),
    Start {
        server: &'static str,
        launch: Launch,
        /// Where to wait for it.
        address: String,
    },
}

/// Something the tests need that this run cannot provide, and how to provide it.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct Missing {
    pub what: String,
    pub fix: String,
}

impl fmt::Display for Missing {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        write!(f, "{}\n    fix: {}", self.what, self.fix)
    }
}

impl fmt::Display for Step {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        match self {
            Step::InstallNextest => write!(f, "cargo install cargo-nextest --locked"),
            Step::AptInstall(packages) => write!(
                f,
                "apt-get install -y --no-install-recommends {}",
                packages.join(" ")
            ),
            Step::Start { launch, .. } => write!(f, "{}", launch.command_line()),
        }
    }
}

impl Launch {
    fn command_line(&self) -> String {
        match self {
            Launch::PgCluster { version } => {
                format!("pg_ctlcluster --skip-systemctl-redirect {version} main start")
            }
            Launch::RedisServer { port } => {
                format!("redis-server --daemonize yes --port {port} --save \"\" --appendonly no")
            }
        }
    }
}

/// The steps to take, in order, and what cannot be done here.
pub fn plan(facts: &Facts) -> (Vec<Step>, Vec<Missing>) {
    let mut steps = Vec::new();
    let mut missing = Vec::new();
    if !facts.nextest {
        steps.push(Step::InstallNextest);
    }
    plan_browsers(facts, &mut steps, &mut missing);
    for (server, fact) in [("PostgreSQL", &facts.postgres), ("Redis", &facts.redis)] {
        match plan_server(server, fact, facts.root) {
            Some(Ok(step)) => steps.push(step),
            Some(Err(item)) => missing.push(item),
            None => {}
        }
    }
    (steps, missing)
}

const SKIP_BROWSERS: &str = "or skip the browser tests with PREDICTLOOP_BROWSER_TESTS=skip";

fn plan_browsers(facts: &Facts, steps: &mut Vec<Step>, missing: &mut Vec<Missing>) {
    let absent = facts.browsers.iter().filter(|browser| !browser.present);
    let (chosen, packaged): (Vec<&BrowserFact>, Vec<&BrowserFact>) =
        absent.partition(|browser| browser.chosen);
    for browser in chosen {
        missing.push(Missing {
            what: format!(
                "{} is not at {} ({} names it)",
                browser.name,
                browser.path.display(),
                browser.var
            ),
            fix: format!(
                "point {} at a {} binary, or unset it to use Debian's {}; {SKIP_BROWSERS}",
                browser.var, browser.name, browser.package
            ),
        });
    }
    if packaged.is_empty() {
        return;
    }
    let packages: Vec<&'static str> = packaged.iter().map(|browser| browser.package).collect();
    let names: Vec<String> = packaged
        .iter()
        .map(|browser| format!("{} ({})", browser.name, browser.path.display()))
        .collect();
    let what = format!("the browser tests need {}", names.join(" and "));
    let install = format!("apt-get install -y {}", packages.join(" "));
    if facts.apt && facts.root {
        steps.push(Step::AptInstall(packages));
    } else if facts.apt {
        missing.push(Missing {
            what: format!("{what}, and only root can install them"),
            fix: format!("sudo {install}, or run cargo xtask test as root; {SKIP_BROWSERS}"),
        });
    } else {
        let vars: Vec<&str> = packaged.iter().map(|browser| browser.var).collect();
        missing.push(Missing {
            what: format!("{what}, and there is no apt-get to install them"),
            fix: format!(
                "install them and set {} to their binaries; {SKIP_BROWSERS}",
                vars.join(" and ")
            ),
        });
    }
}

fn plan_server(
    server: &'static str,
    fact: &ServerFact,
    root: bool,
) -> Option<Result<Step, Missing>> {
    if fact.answering {
        return None;
    }
    let var = if server == "Redis" {
        "TEST_REDIS_URL"
    } else {
        "TEST_DATABASE_URL"
    };
    let what = format!("{server} does not answer at {} ({var})", fact.address);
    let missing = |what: String, fix: String| Some(Err(Missing { what, fix }));
    if !fact.local {
        return missing(
            what,
            format!(
                "start the server at {}, or point {var} at one that runs",
                fact.address
            ),
        );
    }
    match &fact.installed {
        None => {
            let package = if server == "Redis" {
                "redis-server"
            } else {
                "postgresql"
            };
            missing(
                format!("{what}, and no local {server} is installed"),
                format!(
                    "apt-get install -y {package} (as root), or point {var} at a running server"
                ),
            )
        }
        Some(launch @ Launch::PgCluster { .. }) if !root => missing(
            format!("{what}; it is installed, but only root can start it"),
            format!(
                "sudo {}, or run cargo xtask test as root",
                launch.command_line()
            ),
        ),
        Some(launch) => Some(Ok(Step::Start {
            server,
            launch: launch.clone(),
            address: fact.address.clone(),
        })),
    }
}

/// Look at the machine, do what [`plan`] says, and fail listing everything it could not do.
pub fn prepare(browser_tests: bool) -> Result<()> {
    let facts = gather(browser_tests)?;
    let (steps, missing) = plan(&facts);
    if !missing.is_empty() {
        let list: Vec<String> = missing.iter().map(|item| format!("  - {item}")).collect();
        bail!(
            "the tests cannot run on this machine yet:\n{}",
            list.join("\n")
        );
    }
    for step in &steps {
        println!("==> {step}");
        take(step).with_context(|| format!("`{step}` failed"))?;
    }
    Ok(())
}

fn gather(browser_tests: bool) -> Result<Facts> {
    let database_url = env_or("TEST_DATABASE_URL", DEFAULT_DATABASE_URL);
    let redis_url = env_or("TEST_REDIS_URL", DEFAULT_REDIS_URL);
    let postgres = address_of(&database_url, 5432)?;
    let redis = address_of(&redis_url, 6379)?;
    Ok(Facts {
        root: is_root(),
        apt: on_path("apt-get"),
        nextest: succeeds(cargo().args(["nextest", "--version"])),
        browsers: if browser_tests {
            browsers()
        } else {
            Vec::new()
        },
        postgres: server_fact(&postgres, pg_cluster()),
        redis: server_fact(
            &redis,
            on_path("redis-server").then_some(Launch::RedisServer { port: redis.1 }),
        ),
    })
}

pub const DEFAULT_DATABASE_URL: &str = "postgres://postgres@127.0.0.1:5432/postgres";
pub const DEFAULT_REDIS_URL: &str = "redis://127.0.0.1:6379";

fn env_or(name: &str, default: &str) -> String {
    std::env::var(name)
        .ok()
        .filter(|value| !value.is_empty())
        .unwrap_or_else(|| default.to_string())
}

/// The browsers of `browser_tests` in test.rs: the binary at `var`, else Debian's.
pub fn browsers() -> Vec<BrowserFact> {
    [
        ("Chromium", "chromium", "CHROMIUM_PATH", "/usr/bin/chromium"),
        (
            "Firefox",
            "firefox-esr",
            "FIREFOX_PATH",
            "/usr/bin/firefox-esr",
        ),
    ]
    .into_iter()
    .map(|(name, package, var, default)| {
        let chosen = std::env::var_os(var).filter(|value| !value.is_empty());
        let path = chosen
            .clone()
            .map_or_else(|| PathBuf::from(default), PathBuf::from);
        // Debian's package is checked too: a leftover binary of a removed package is not enough.
        let present = path.is_file()
            && (chosen.is_some()
                || !on_path("dpkg")
                || succeeds(Command::new("dpkg").args(["-s", package])));
        BrowserFact {
            name,
            package,
            var,
            path,
            chosen: chosen.is_some(),
            present,
        }
    })
    .collect()
}

/// `(host, port)` of a `scheme://[user[:password]@]host[:port][/...]` URL.
pub fn address_of(url: &str, default_port: u16) -> Result<(String, u16)> {
    let rest = url
        .split_once("://")
        .map(|(_, rest)| rest)
        .with_context(|| format!("{url:?} is not a URL"))?;
    let authority = rest.split(['/', '?']).next().unwrap_or_default();
    let host_port = authority.rsplit_once('@').map_or(authority, |(_, hp)| hp);
    let (host, port) = match host_port.rsplit_once(':') {
        Some((host, port)) if !port.contains(']') => (
            host,
            port.parse()
                .with_context(|| format!("{url:?} has a bad port"))?,
        ),
        _ => (host_port, default_port),
    };
    let host = host.trim_start_matches('[').trim_end_matches(']');
    if host.is_empty() {
        bail!("{url:?} names no host");
    }
    Ok((host.to_string(), port))
}

fn is_local(host: &str) -> bool {
    matches!(host, "127.0.0.1" | "localhost" | "::1")
}

fn server_fact((host, port): &(String, u16), installed: Option<Launch>) -> ServerFact {
    let address = if host.contains(':') {
        format!("[{host}]:{port}")
    } else {
        format!("{host}:{port}")
    };
    ServerFact {
        answering: connects(&address),
        local: is_local(host),
        installed,
        address,
    }
}

fn connects(address: &str) -> bool {
    socket_addr(address)
        .is_some_and(|addr| TcpStream::connect_timeout(&addr, Duration::from_secs(1)).is_ok())
}

fn socket_addr(address: &str) -> Option<SocketAddr> {
    address.to_socket_addrs().ok()?.next()
}

/// The newest Debian PostgreSQL cluster (`/etc/postgresql/<version>/main`), when
/// `pg_ctlcluster` can start it.
fn pg_cluster() -> Option<Launch> {
    if !on_path("pg_ctlcluster") {
        return None;
    }
    let versions = std::fs::read_dir("/etc/postgresql").ok()?;
    let version = versions
        .filter_map(|entry| entry.ok())
        .filter(|entry| entry.path().join("main").is_dir())
        .filter_map(|entry| entry.file_name().into_string().ok())
        .max_by_key(|version| version_key(version))?;
    Some(Launch::PgCluster { version })
}

/// `"9.6"` < `"16"`: numeric parts compared as numbers.
fn version_key(version: &str) -> Vec<u32> {
    version
        .split('.')
        .map(|part| part.parse().unwrap_or(0))
        .collect()
}

fn is_root() -> bool {
    Command::new("id")
        .arg("-u")
        .output()
        .is_ok_and(|out| String::from_utf8_lossy(&out.stdout).trim() == "0")
}

fn on_path(program: &str) -> bool {
    std::env::var_os("PATH")
        .is_some_and(|path| std::env::split_paths(&path).any(|dir| dir.join(program).is_file()))
}

fn succeeds(command: &mut Command) -> bool {
    command
        .stdin(Stdio::null())
        .stdout(Stdio::null())
        .stderr(Stdio::null())
        .status()
        .is_ok_and(|status| status.success())
}

fn take(step: &Step) -> Result<()> {
    match step {
        Step::InstallNextest => run(cargo().args(["install", "cargo-nextest", "--locked"])),
        Step::AptInstall(packages) => {
            let apt = |args: &[&str]| {
                let mut command = Command::new("apt-get");
                command.env("DEBIAN_FRONTEND", "noninteractive").args(args);
                command
            };
            run(&mut apt(&["update"]))?;
            run(apt(&["install", "-y", "--no-install-recommends"]).args(packages)).with_context(
                || {
                    format!(
                        "apt-get could not install {}: are they in the configured sources? Set CHROMIUM_PATH and FIREFOX_PATH to other binaries, {SKIP_BROWSERS}",
                        packages.join(" ")
                    )
                },
            )
        }
        Step::Start {
            server,
            launch,
            address,
        } => start(server, launch, address),
    }
}

fn run(command: &mut Command) -> Result<()> {
    let status = command
        .stdin(Stdio::null())
        .status()
        .with_context(|| format!("starting {command:?}"))?;
    if !status.success() {
        bail!("{command:?} failed ({status})");
    }
    Ok(())
}

const START_TIMEOUT: Duration = Duration::from_secs(30);

fn start(server: &str, launch: &Launch, address: &str) -> Result<()> {
    match launch {
        Launch::PgCluster { version } => run(Command::new("pg_ctlcluster").args([
            "--skip-systemctl-redirect",
            version,
            "main",
            "start",
        ]))?,
        Launch::RedisServer { port } => start_redis(*port)?,
    }
    let ready = |address: &str| match launch {
        Launch::PgCluster { .. } => pg_ready(address),
        Launch::RedisServer { .. } => redis_pong(address),
    };
    // The server starts in the background: wait for it as a client would.
    let deadline = Instant::now() + START_TIMEOUT;
    while !ready(address) {
        if Instant::now() > deadline {
            bail!("{server} did not answer at {address} within {START_TIMEOUT:?}");
        }
        std::thread::sleep(Duration::from_millis(200));
    }
    println!("{server} answers at {address}");
    Ok(())
}

/// Redis as `.ci/run` started it, its files under the per-user cache.
fn start_redis(port: u16) -> Result<()> {
    let dir = crate::setup::download_cache_dir()?
        .parent()
        .map(|cache| cache.join("redis"))
        .context("the cache folder has no parent")?;
    std::fs::create_dir_all(&dir).with_context(|| format!("creating {}", dir.display()))?;
    run(Command::new("redis-server")
        .args(["--daemonize", "yes", "--bind", "127.0.0.1", "-::1"])
        .args(["--port", &port.to_string()])
        .args(["--save", "", "--appendonly", "no", "--dir"])
        .arg(&dir)
        .arg("--logfile")
        .arg(dir.join("redis.log")))
}

fn pg_ready(address: &str) -> bool {
    let Some(addr) = socket_addr(address) else {
        return false;
    };
    if !on_path("pg_isready") {
        return connects(address);
    }
    succeeds(Command::new("pg_isready").args([
        "-h",
        &addr.ip().to_string(),
        "-p",
        &addr.port().to_string(),
    ]))
}

fn redis_pong(address: &str) -> bool {
    let Some(addr) = socket_addr(address) else {
        return false;
    };
    let ping = || -> std::io::Result<bool> {
        let mut stream = TcpStream::connect_timeout(&addr, Duration::from_secs(1))?;
        stream.set_read_timeout(Some(Duration::from_secs(1)))?;
        stream.write_all(b"PING\r\n")?;
        let mut answer = [0; 7];
        stream.read_exact(&mut answer)?;
        Ok(&answer == b"+PONG\r\n")
    };
    ping().unwrap_or(false)
}

#[cfg(test)]
mod tests {
    use super::*;

    fn server(address: &str, answering: bool, installed: Option<Launch>) -> ServerFact {
        ServerFact {
            address: address.to_string(),
            answering,
            local: address.starts_with("127.0.0.1"),
            installed,
        }
    }

    fn browser(package: &'static str, present: bool, chosen: bool) -> BrowserFact {
        BrowserFact {
            name: if package == "chromium" {
                "Chromium"
            } else {
                "Firefox"
            },
            package,
            var: if package == "chromium" {
                "CHROMIUM_PATH"
            } else {
                "FIREFOX_PATH"
            },
            path: PathBuf::from(format!("/usr/bin/{package}")),
            chosen,
            present,
        }
    }

    fn pg() -> Launch {
        Launch::PgCluster {
            version: "16".to_string(),
        }
    }

    /// A machine with everything running and installed.
    fn ready() -> Facts {
        Facts {
            root: true,
            apt: true,
            nextest: true,
            browsers: vec![
                browser("chromium", true, false),
                browser("firefox-esr", true, false),
            ],
            postgres: server("127.0.0.1:5432", true, Some(pg())),
            redis: server(
                "127.0.0.1:6379",
                true,
                Some(Launch::RedisServer { port: 6379 }),
            ),
        }
    }

    #[test]
    fn a_ready_machine_needs_nothing() {
        assert_eq!(plan(&ready()), (vec![], vec![]));
    }

    #[test]
    fn root_installs_nextest_and_the_missing_browsers_and_starts_the_stopped_servers() {
        let mut facts = ready();
        facts.nextest = false;
        facts.browsers = vec![
            browser("chromium", false, false),
            browser("firefox-esr", false, false),
        ];
        facts.postgres.answering = false;
        facts.redis.answering = false;
        let (steps, missing) = plan(&facts);
        assert_eq!(missing, vec![]);
        assert_eq!(
            steps,
            vec![
                Step::InstallNextest,
                Step::AptInstall(vec!["chromium", "firefox-esr"]),
                Step::Start {
                    server: "PostgreSQL",
                    launch: pg(),
                    address: "127.0.0.1:5432".to_string()
                },
                Step::Start {
                    server: "Redis",
                    launch: Launch::RedisServer { port: 6379 },
                    address: "127.0.0.1:6379".to_string()
                },
            ]
        );
        assert_eq!(
            steps[1].to_string(),
            "apt-get install -y --no-install-recommends chromium firefox-esr"
        );
        assert_eq!(
            steps[2].to_string(),
            "pg_ctlcluster --skip-systemctl-redirect 16 main start"
        );
    }

    #[test]
    fn only_the_missing_browser_is_installed() {
        let mut facts = ready();
        facts.browsers[1].present = false;
        assert_eq!(
            plan(&facts),
            (vec![Step::AptInstall(vec!["firefox-esr"])], vec![])
        );
    }

    #[test]
    fn without_root_the_fixes_are_listed_with_sudo_and_redis_still_starts() {
        let mut facts = ready();
        facts.root = false;
        facts.browsers[0].present = false;
        facts.postgres.answering = false;
        facts.redis.answering = false;
        let (steps, missing) = plan(&facts);
        assert_eq!(
            steps,
            vec![Step::Start {
                server: "Redis",
                launch: Launch::RedisServer { port: 6379 },
                address: "127.0.0.1:6379".to_string()
            }]
        );
        assert_eq!(missing.len(), 2);
        assert!(missing[0].what.contains("Chromium (/usr/bin/chromium)"));
        assert!(
            missing[0]
                .fix
                .starts_with("sudo apt-get install -y chromium,")
        );
        assert!(missing[0].fix.contains("PREDICTLOOP_BROWSER_TESTS=skip"));
        assert!(
            missing[1]
                .what
                .contains("PostgreSQL does not answer at 127.0.0.1:5432")
        );
        assert!(
            missing[1]
                .fix
                .starts_with("sudo pg_ctlcluster --skip-systemctl-redirect 16 main start")
        );
    }

    #[test]
    fn a_browser_named_by_its_variable_is_not_installed_from_debian() {
        let mut facts = ready();
        facts.browsers[0] = browser("chromium", false, true);
        let (steps, missing) = plan(&facts);
        assert_eq!(steps, vec![]);
        assert_eq!(missing.len(), 1);
        assert!(missing[0].what.contains("CHROMIUM_PATH names it"));
    }

    #[test]
    fn without_apt_the_browsers_are_reported() {
        let mut facts = ready();
        facts.apt = false;
        facts.browsers[0].present = false;
        facts.browsers[1].present = false;
        let (steps, missing) = plan(&facts);
        assert_eq!(steps, vec![]);
        assert_eq!(missing.len(), 1);
        assert!(missing[0].fix.contains("CHROMIUM_PATH and FIREFOX_PATH"));
    }

    #[test]
    fn no_browsers_are_needed_when_the_browser_tests_do_not_run() {
        let mut facts = ready();
        facts.root = false;
        facts.apt = false;
        facts.browsers = vec![];
        assert_eq!(plan(&facts), (vec![], vec![]));
    }

    #[test]
    fn a_server_that_is_not_installed_or_not_local_is_reported_not_started() {
        let mut facts = ready();
        facts.postgres = server("127.0.0.1:5432", false, None);
        facts.redis = server("cache.internal:6379", false, None);
        let (steps, missing) = plan(&facts);
        assert_eq!(steps, vec![]);
        assert_eq!(
            missing[0].what,
            "PostgreSQL does not answer at 127.0.0.1:5432 (TEST_DATABASE_URL), and no local PostgreSQL is installed"
        );
        assert!(missing[0].fix.starts_with("apt-get install -y postgresql"));
        assert_eq!(
            missing[1].what,
            "Redis does not answer at cache.internal:6379 (TEST_REDIS_URL)"
        );
    }

    #[test]
    fn addresses_are_read_from_the_urls() {
        let address = |url| address_of(url, 5432).unwrap();
        assert_eq!(
            address("postgres://postgres@127.0.0.1:5432/postgres"),
            ("127.0.0.1".to_string(), 5432)
        );
        assert_eq!(
            address("postgres://u:p@localhost/db?sslmode=disable"),
            ("localhost".to_string(), 5432)
        );
        assert_eq!(address("redis://[::1]:6380"), ("::1".to_string(), 6380));
        assert_eq!(
            address("redis://127.0.0.1:6379"),
            ("127.0.0.1".to_string(), 6379)
        );
        assert!(address_of("127.0.0.1:5432", 5432).is_err());
        assert!(address_of("postgres://:x@/db", 5432).is_err());
    }

    #[test]
    fn the_newest_cluster_wins() {
        let mut versions = vec!["9.6", "16", "15"];
        versions.sort_by_key(|version| version_key(version));
        assert_eq!(versions, vec!["9.6", "15", "16"]);
    }
}
