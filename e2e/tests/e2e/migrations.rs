//! All services share one database, and diesel records applied migrations by version in one
//! table: two services with the same version would silently skip one of them.

use common::testing::repo_root;
use std::collections::HashMap;

#[test]
fn every_migration_version_in_the_workspace_is_unique_per_backend() {
    let root = repo_root();
    let mut seen: HashMap<(String, String), String> = HashMap::new();
    let mut count = 0;
    for service in std::fs::read_dir(&root).unwrap() {
        let service = service.unwrap().path();
        let migrations = service.join("migrations");
        if !migrations.is_dir() {
            continue;
        }
        for backend in ["postgres", "sqlite"] {
            let Ok(entries) = std::fs::read_dir(migrations.join(backend)) else {
                continue;
            };
            for entry in entries {
                let name = entry.unwrap().file_name().to_string_lossy().into_owned();
                let version = name.split('_').next().unwrap().to_owned();
                let owner = format!("{}/{name}", service.display());
                count += 1;
                if let Some(other) =
                    seen.insert((backend.to_owned(), version.clone()), owner.clone())
                {
                    panic!(
                        "migration version {version} is used twice ({backend}): {other} and {owner}"
                    );
                }
            }
        }
    }
    assert!(
        count >= 8,
        "found only {count} migrations under {}",
        root.display()
    );
}
