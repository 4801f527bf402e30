//! `cargo xtask test`: prepare the machine (`machine`: cargo-nextest, the browsers, the local
//! PostgreSQL and Redis), fetch the assets, then run the whole suite with cargo-nextest, and the
//! cross-service suite a second time on the all-in-one mode's embedded backends.

use std::path::Path;
use std::process::ExitCode;

use anyhow::{Context, Result, bail};

use crate::{cargo, exit_code_of, machine, setup, train, up};

pub fn run(root: &Path, nextest_args: &[String]) -> Result<ExitCode> {
    machine::prepare(browser_tests_run(root, nextest_args))?;
    setup::run(root)?;
    // predict-svc's tests serve the trained models (from the artifact cache after the first run).
    train::train_models(root, false)?;
    let defaults: Vec<(&str, String)> = [
        (
            "TEST_DATABASE_URL",
            machine::DEFAULT_DATABASE_URL.to_string(),
        ),
        ("TEST_REDIS_URL", machine::DEFAULT_REDIS_URL.to_string()),
    ]
    .into_iter()
    .chain(asset_vars(root))
    .collect();
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
    // what only Redis and PostgreSQL have (an outage of Redis, migration versions, the schema
    // drift check) ran above.
    println!(
        "\n==> the cross-service suite (e2e) again on the embedded backends: SQLite and the in-process bus, queue and stores"
    );
    let mut command = cargo();
    command
        .current_dir(root)
        .env("PREDICTLOOP_TEST_BACKEND", "embedded")
        // The whole workspace, filtered to e2e: `-p e2e` would unify features differently and
        // rebuild the shared crates.
        .args(["nextest", "run", "--workspace", "--no-tests=pass"])
        .args([
            "-E",
            "package(e2e) and not test(/^(redis_down|migrations|schema)::/)",
        ])
        .args(nextest_args);
    with_defaults(&mut command);
    let status = command
        .status()
        .context("running cargo nextest on the embedded backends")?;
    if !status.success() || !nextest_args.is_empty() {
        return Ok(exit_code_of(status));
    }
    browser_tests(root)
}

/// Where the services find the fetched assets and the trained models.
fn asset_vars(root: &Path) -> [(&'static str, String); 3] {
    [
        (
            "ORT_DYLIB_PATH",
            setup::onnxruntime_lib(root).display().to_string(),
        ),
        ("MNIST_DIR", setup::mnist_dir(root).display().to_string()),
        ("MODEL_DIR", train::model_dir(root).display().to_string()),
    ]
}

/// Whether this run ends with the browser tests (so it needs the browsers).
fn browser_tests_run(root: &Path, nextest_args: &[String]) -> bool {
    nextest_args.is_empty()
        && !browsers_skipped()
        && setup::web_dir(root).join("tests").join("e2e.mjs").is_file()
}

fn browsers_skipped() -> bool {
    std::env::var("PREDICTLOOP_BROWSER_TESTS").as_deref() == Ok("skip")
}

/// The major version of the `node` on the PATH.
fn node_major() -> Result<u32> {
    let out = std::process::Command::new("node")
        .arg("--version")
        .output()
        .context("running node --version (the browser tests need Node.js)")?;
    let version = String::from_utf8_lossy(&out.stdout);
    version
        .trim()
        .trim_start_matches('v')
        .split('.')
        .next()
        .and_then(|major| major.parse().ok())
        .with_context(|| format!("node --version answered {version:?}"))
}

/// The web pages' end-to-end tests (`web/tests/e2e.mjs`) in headless Chromium, then a path
/// through them in headless Firefox (`web/tests/firefox.mjs`), against the all-in-one system
/// started on a fresh data folder. Screenshots are kept in the target folder
/// (`web-screenshots/`). Skipped, saying so, with `PREDICTLOOP_BROWSER_TESTS=skip`.
fn browser_tests(root: &Path) -> Result<ExitCode> {
    if browsers_skipped() {
        println!("\n==> browser tests skipped (PREDICTLOOP_BROWSER_TESTS=skip)");
        return Ok(ExitCode::SUCCESS);
    }
    let web = setup::web_dir(root);
    let script = web.join("tests").join("e2e.mjs");
    if !script.is_file() {
        return Ok(ExitCode::SUCCESS);
    }
    let (chromium, firefox) = browser_paths()?;
    println!(
        "\n==> browser tests (web/tests/e2e.mjs) in headless Chromium, against the all-in-one system"
    );
    build_for_browsers(root)?;
    let bin_dir = up::target_dir(root).join("debug");
    let screenshots = up::target_dir(root).join("web-screenshots");
    let data = std::env::temp_dir().join(format!("predictloop-browser-{}", std::process::id()));
    let _ = std::fs::remove_dir_all(&data);
    let port = std::net::TcpListener::bind("127.0.0.1:0")
        .and_then(|listener| listener.local_addr())
        .context("finding a free port")?
        .port();
    let (admin, password) = ("browser-admin", "browser-admin-password");
    let env = browser_env(root, &data, &web, (admin, password));
    let mut fleet = up::Fleet::new(up::count_signals()?)?;
    let service = up::Service {
        name: "predictloop",
        port,
    };
    let addr = fleet.start(&bin_dir, &service, port, &env)?;
    fleet.wait_healthy(service.name, addr)?;
    let node = |script: &Path, flags: &[&str]| {
        std::process::Command::new("node")
            .args(flags)
            .arg(script)
            .current_dir(&web)
            .env("BASE_URL", format!("http://{addr}"))
            .env("ADMIN_USERNAME", admin)
            .env("ADMIN_PASSWORD", password)
            .env("SCREENSHOT_DIR", &screenshots)
            .env("CHROMIUM_PATH", &chromium)
            .env("FIREFOX_PATH", &firefox)
            .status()
            .context("running node (the browser tests need Node.js)")
    };
    let mut status = node(&script, &[]);
    if status.as_ref().is_ok_and(|s| s.success()) {
        println!("\n==> the same pages in Firefox (web/tests/firefox.mjs, over WebDriver BiDi)");
        // Node 20 has its WebSocket client behind a flag; later versions have it by default.
        let flags: &[&str] = if node_major()? < 22 {
            &["--experimental-websocket", "--no-warnings"]
        } else {
            &[]
        };
        status = node(&web.join("tests").join("firefox.mjs"), flags);
    }
    fleet.stop_all();
    let _ = std::fs::remove_dir_all(&data);
    let status = status?;
    if status.success() {
        println!("screenshots: {}", screenshots.display());
    }
    Ok(exit_code_of(status))
}

/// The browsers' binaries: the variables' or Debian's (which `machine` installed).
fn browser_paths() -> Result<(String, String)> {
    let chromium =
        std::env::var("CHROMIUM_PATH").unwrap_or_else(|_| "/usr/bin/chromium".to_string());
    let firefox =
        std::env::var("FIREFOX_PATH").unwrap_or_else(|_| "/usr/bin/firefox-esr".to_string());
    for (browser, path, package, var) in [
        ("Chromium", &chromium, "chromium", "CHROMIUM_PATH"),
        ("Firefox", &firefox, "firefox-esr", "FIREFOX_PATH"),
    ] {
        if !Path::new(path).is_file() {
            bail!(
                "the browser tests need {browser} at {path} (Debian: `apt-get install {package}`; or set {var}), or PREDICTLOOP_BROWSER_TESTS=skip"
            );
        }
    }
    Ok((chromium, firefox))
}

/// Built as the suites built it (the whole workspace with its tests, so features unify the same
/// way): nothing is rebuilt but the binary.
fn build_for_browsers(root: &Path) -> Result<()> {
    let status = cargo()
        .current_dir(root)
        .args(["build", "--workspace", "--bins", "--tests"])
        .status()
        .context("running cargo build")?;
    if !status.success() {
        bail!("cargo build of predictloop failed ({status})");
    }
    Ok(())
}

/// The all-in-one system of the browser tests, on a fresh data folder.
fn browser_env(
    root: &Path,
    data: &Path,
    web: &Path,
    (admin, password): (&str, &str),
) -> Vec<(String, String)> {
    [
        ("APP_ENV", "development".to_string()),
        ("DATA_DIR", data.display().to_string()),
        (
            "DEV_SIGNING_KEY_FILE",
            data.join("key.pem").display().to_string(),
        ),
        ("ADMIN_USERNAME", admin.to_string()),
        ("ADMIN_PASSWORD", password.to_string()),
        ("BCRYPT_COST", "4".to_string()),
        ("WEB_DIR", web.display().to_string()),
        // The tests sign in and reload pages more often than a person does in an hour.
        ("RATE_LIMIT_DEFAULT", "100000/day".to_string()),
        // Each scenario opens the dashboard in new browser contexts, more often than one admin does.
        ("WS_MAX_CONNECTIONS_PER_USER", "50".to_string()),
        // The rollout panel's scenario needs its short retrain to pass the offline gate's MNIST
        // side (the rollout itself decides nothing here: the admin pauses and promotes it).
        ("RETRAIN_TOLERANCE_POINTS", "100".to_string()),
        ("RUST_LOG", "warn".to_string()),
        // The gateway's management port anywhere free: its default (the public port + 1000) may
        // be taken when the public port is an ephemeral one.
        ("MANAGEMENT_BIND_ADDR", "127.0.0.1:0".to_string()),
    ]
    .into_iter()
    .chain(asset_vars(root))
    .map(|(name, value)| (name.to_string(), value))
    .collect()
}
