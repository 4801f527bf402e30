#![allow(clippy::unwrap_used, clippy::expect_used)]
//! Every environment variable the code reads is in the `## Environment variables` table of
//! docs/configuration.md.
//!
//! The code is scanned, not run: the `src/` folders of every crate at the root of the workspace
//! (test modules and `tests/` folders left out) for the calls that read a variable by its name,
//! written as a string literal: `std::env::var("X")` and `var_os`, the configuration helpers of
//! `common::config::Env` (`optional`, `or`, `required`, `in_range`, `raw`), `check_url_secret`,
//! and the small `non_empty("X")` helpers. A name built at run time (the gateway's table of
//! upstream URLs) is not seen; the table's rows for those are kept by hand.

use std::collections::{BTreeMap, BTreeSet};
use std::path::{Path, PathBuf};

/// Read by the code but set by cargo or by the system, not by whoever runs predictloop.
const NOT_CONFIGURATION: &[(&str, &str)] = &[
    ("CARGO", "set by cargo for the programs it runs"),
    ("CARGO_MANIFEST_DIR", "set by cargo, to find the checkout"),
    (
        "HOSTNAME",
        "the host's name, the default of RETRAIN_CONSUMER (documented there)",
    ),
    (
        "HOME",
        "the user's home, where the caches go without XDG_CACHE_HOME (documented there)",
    ),
    (
        "PATH",
        "the system's search path, where `cargo xtask test` looks for the tools it needs",
    ),
];

/// The calls that read a variable; the name is their first argument.
const READERS: &[&str] = &[
    "env::var(",
    "env::var_os(",
    ".optional(",
    ".optional::<",
    ".or(",
    ".required(",
    ".required::<",
    ".in_range(",
    ".raw(",
    "check_url_secret(env,",
    "non_empty(",
];

fn root() -> PathBuf {
    Path::new(env!("CARGO_MANIFEST_DIR"))
        .parent()
        .expect("xtask is one folder below the workspace root")
        .to_path_buf()
}

/// A variable's name: upper case, digits and underscores, starting with a letter.
fn is_variable_name(s: &str) -> bool {
    s.len() >= 2
        && s.starts_with(|c: char| c.is_ascii_uppercase())
        && s.chars()
            .all(|c| c.is_ascii_uppercase() || c.is_ascii_digit() || c == '_')
}

/// The names `source` reads, each with the line it is read on.
fn names_read(source: &str) -> Vec<(String, usize)> {
    let mut found = Vec::new();
    for reader in READERS {
        for (at, _) in source.match_indices(reader) {
            let mut rest = &source[at + reader.len()..];
            if reader.ends_with("::<") {
                // `.optional::<u64>(` : the argument starts after the type's closing `>(`.
                let Some(end) = rest.find(">(") else { continue };
                rest = &rest[end + 2..];
            }
            let Some(literal) = rest.trim_start().strip_prefix('"') else {
                continue;
            };
            let Some(name) = literal.split('"').next() else {
                continue;
            };
            if is_variable_name(name) {
                let line = source[..at].matches('\n').count() + 1;
                found.push((name.to_owned(), line));
            }
        }
    }
    found
}

/// A file's text without its unit tests (the `#[cfg(test)] mod …` at its end).
fn without_tests(source: &str) -> &str {
    source
        .find("#[cfg(test)]\nmod ")
        .map_or(source, |at| &source[..at])
}

fn rust_files(dir: &Path, out: &mut Vec<PathBuf>) {
    let Ok(entries) = std::fs::read_dir(dir) else {
        return;
    };
    for entry in entries.flatten() {
        let path = entry.path();
        if path.is_dir() {
            rust_files(&path, out);
        } else if path.extension().is_some_and(|e| e == "rs") {
            out.push(path);
        }
    }
}

/// Every name read in the workspace's sources, with where (the first place) it is read.
fn read_in_workspace(root: &Path) -> BTreeMap<String, String> {
    let mut files = Vec::new();
    for entry in std::fs::read_dir(root)
        .expect("reading the workspace root")
        .flatten()
    {
        if entry.path().join("Cargo.toml").is_file() {
            rust_files(&entry.path().join("src"), &mut files);
        }
    }
    let mut read = BTreeMap::new();
    for file in files {
        let source = std::fs::read_to_string(&file).expect("reading a source file");
        for (name, line) in names_read(without_tests(&source)) {
            let place = format!(
                "{}:{line}",
                file.strip_prefix(root).unwrap_or(&file).display()
            );
            read.entry(name).or_insert(place);
        }
    }
    read
}

/// The names in the first column of the `## Environment variables` table.
fn documented(configuration: &str) -> BTreeSet<String> {
    let section = configuration
        .split("\n## ")
        .find(|s| s.starts_with("Environment variables\n"))
        .expect("docs/configuration.md has a '## Environment variables' section");
    section
        .lines()
        .filter(|l| l.starts_with("| `"))
        .filter_map(|l| l.split('|').nth(1))
        .flat_map(|cell| cell.split('`').skip(1).step_by(2))
        .filter(|name| is_variable_name(name))
        .map(str::to_owned)
        .collect()
}

#[test]
fn every_variable_the_code_reads_is_documented() {
    let root = root();
    let configuration = std::fs::read_to_string(root.join("docs/configuration.md"))
        .expect("reading docs/configuration.md");
    let documented = documented(&configuration);
    let read = read_in_workspace(&root);
    // A scan that finds (almost) nothing is broken, not clean.
    assert!(
        read.len() >= 50,
        "only {} variables found: {read:?}",
        read.len()
    );
    let missing: Vec<String> = read
        .iter()
        .filter(|(name, _)| !documented.contains(*name))
        .filter(|(name, _)| !NOT_CONFIGURATION.iter().any(|(n, _)| n == name))
        .map(|(name, place)| format!("{name} (read in {place})"))
        .collect();
    assert!(
        missing.is_empty(),
        "not in docs/configuration.md's table of environment variables (add a row, and a line \
         in .env.example: deploy/validate.sh checks that):\n  {}",
        missing.join("\n  ")
    );
}

#[test]
fn the_scan_sees_each_way_of_reading_a_variable() {
    let source = r#"
        let a = std::env::var("PLAIN").ok();
        let b = env.optional::<u64>("TURBOFISH");
        let c = env.in_range(
            "ON_THE_NEXT_LINE",
            25,
            0..=600,
        );
        let d = non_empty("HELPER");
        let e = Some(1).or(None);
        let f = env.or("lower_case_is_no_variable", 1);
    "#;
    let names: BTreeSet<String> = names_read(source).into_iter().map(|(n, _)| n).collect();
    let expected = ["HELPER", "ON_THE_NEXT_LINE", "PLAIN", "TURBOFISH"];
    assert_eq!(names, expected.iter().map(|s| (*s).to_owned()).collect());
    assert_eq!(
        names_read("\n\nenv::var(\"THIRD\")"),
        vec![("THIRD".to_owned(), 3)]
    );
}

#[test]
fn the_table_is_read_from_its_first_column() {
    let doc = "# C\n\n## Environment variables\n\n| Variable | Read by |\n|---|---|\n\
               | `A_B`, `CC` | `NOT_THIS` |\n| `D1` | x |\n\n## Next\n\n| `EE` | y |\n";
    let names: Vec<String> = documented(doc).into_iter().collect();
    assert_eq!(names, ["A_B", "CC", "D1"]);
}
