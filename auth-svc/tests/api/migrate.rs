//! Migrations as a step before a rollout: `auth-svc migrate` (the real binary) applies the
//! schema; with `MIGRATE_ON_START=false` the service only checks it, refuses to start while a
//! migration is pending, and then needs no more than a DML-only database role.

use crate::helpers::{PASSWORD, Store, TestApp, test_env};
use auth_svc::Config;
use common::config::Env;
use common::jwt::SigningKeyPair;
use diesel::RunQueryDsl;
use diesel::connection::SimpleConnection;
use std::process::Command;

/// The names of the PostgreSQL migrations in the source tree, as diesel reports them.
fn migration_names() -> Vec<String> {
    let dir = std::path::Path::new(env!("CARGO_MANIFEST_DIR")).join("migrations/postgres");
    let mut names: Vec<String> = std::fs::read_dir(dir)
        .unwrap()
        .map(|e| e.unwrap().file_name().to_string_lossy().into_owned())
        .collect();
    names.sort();
    assert!(!names.is_empty());
    names
}

/// Runs `auth-svc migrate` against `database_url`; returns (success, everything it printed).
async fn run_migrate(database_url: &str) -> (bool, String) {
    let url = database_url.to_owned();
    let output = tokio::task::spawn_blocking(move || {
        Command::new(env!("CARGO_BIN_EXE_auth-svc"))
            .arg("migrate")
            .env_clear()
            .env("APP_ENV", "production")
            .env("DATABASE_URL", url)
            .env("RUST_LOG", "info")
            .env("LOG_FORMAT", "pretty")
            .output()
            .unwrap()
    })
    .await
    .unwrap();
    let text = format!(
        "{}{}",
        String::from_utf8_lossy(&output.stdout),
        String::from_utf8_lossy(&output.stderr)
    );
    (output.status.success(), text)
}

#[derive(diesel::QueryableByName)]
struct Text {
    #[diesel(sql_type = diesel::sql_types::Text)]
    value: String,
}

/// Runs `sql` (one text column named `value`) as the test database's owner.
fn query(url: &str, sql: &str) -> Vec<String> {
    let mut conn = common::db::establish_postgres(url).unwrap();
    diesel::sql_query(sql)
        .load::<Text>(&mut conn)
        .unwrap()
        .into_iter()
        .map(|r| r.value)
        .collect()
}

fn applied_versions(url: &str) -> Vec<String> {
    query(
        url,
        "SELECT version AS value FROM __diesel_schema_migrations ORDER BY version",
    )
}

/// auth-svc's configuration with MIGRATE_ON_START=false (development mode otherwise, so no
/// other secret is needed).
fn checking_config(database_url: &str) -> (Config, SigningKeyPair) {
    let key = SigningKeyPair::generate().unwrap();
    let mut vars = test_env(database_url, &key);
    vars.insert("MIGRATE_ON_START".into(), "false".into());
    vars.insert("ADMIN_USERNAME".into(), "root-admin".into());
    vars.insert("ADMIN_PASSWORD".into(), PASSWORD.into());
    let config = Config::from_env(Env::from_map(vars)).unwrap();
    assert!(!config.database.migrate_on_start);
    (config, key)
}

async fn start(config: Config, key: SigningKeyPair, store: Store) -> TestApp {
    let running = auth_svc::build(config.clone())
        .await
        .expect("auth-svc starts");
    let port = running.port;
    TestApp {
        address: format!("http://127.0.0.1:{port}"),
        port,
        client: reqwest::Client::new(),
        config,
        signing_key: key,
        service: running,
        store,
    }
}

#[tokio::test]
async fn pending_migrations_stop_the_service_and_no_ddl_runs() {
    let store = Store::postgres();
    let url = store.url();
    let (config, _) = checking_config(&url);
    let err = match auth_svc::build(config).await {
        Ok(_) => panic!("auth-svc started with its migrations pending"),
        Err(e) => format!("{e:#}"),
    };
    for name in migration_names() {
        assert!(err.contains(&name), "the error names {name}: {err}");
    }
    assert!(err.contains("migrate"), "the error says what to do: {err}");
    // Only checked: no schema, no table, not even diesel's bookkeeping table.
    let created = query(
        &url,
        "SELECT table_schema || '.' || table_name AS value FROM information_schema.tables \
         WHERE table_schema NOT IN ('pg_catalog', 'information_schema')",
    );
    assert!(created.is_empty(), "tables were created: {created:?}");

    // The binary says the same and exits non-zero.
    let output = tokio::task::spawn_blocking(move || {
        Command::new(env!("CARGO_BIN_EXE_auth-svc"))
            .env_clear()
            .env("APP_ENV", "development")
            .env("MIGRATE_ON_START", "false")
            .env("DATABASE_URL", url)
            .env("BIND_ADDR", "127.0.0.1:0")
            .output()
            .unwrap()
    })
    .await
    .unwrap();
    let stderr = String::from_utf8_lossy(&output.stderr);
    assert!(!output.status.success(), "{stderr}");
    assert!(
        stderr.contains(&migration_names()[0]) && stderr.contains("pending migration"),
        "{stderr}"
    );
}

#[tokio::test]
async fn after_migrate_the_service_starts_and_migrate_again_changes_nothing() {
    let store = Store::postgres();
    let url = store.url();

    let (ok, log) = run_migrate(&url).await;
    assert!(ok, "auth-svc migrate failed:\n{log}");
    let first = applied_versions(&url);
    assert_eq!(first.len(), migration_names().len(), "{first:?}");
    assert!(log.contains(&migration_names()[0]), "{log}");

    let (ok, log) = run_migrate(&url).await;
    assert!(ok, "the second auth-svc migrate failed:\n{log}");
    assert!(log.contains("up to date"), "{log}");
    assert_eq!(applied_versions(&url), first);

    let (config, key) = checking_config(&url);
    let app = start(config, key, store).await;
    app.register_ok("ada", PASSWORD).await;
    app.login_ok("ada", PASSWORD).await;
    app.login_ok("root-admin", PASSWORD).await;
}

/// A login role created for one test, dropped after the test's database.
struct Role(String);

impl Drop for Role {
    fn drop(&mut self) {
        let name = self.0.clone();
        let _ = std::thread::spawn(move || {
            let mut admin =
                common::db::establish_postgres(&common::testing::postgres_url()).unwrap();
            admin.batch_execute(&format!("DROP ROLE IF EXISTS \"{name}\""))
        })
        .join();
    }
}

/// `url` with its user and password replaced.
fn with_user(url: &str, user: &str, password: &str) -> String {
    let (scheme, rest) = url.split_once("://").unwrap();
    let host = rest.rsplit_once('@').map_or(rest, |(_, host)| host);
    format!("{scheme}://{user}:{password}@{host}")
}

#[tokio::test]
async fn a_role_with_dml_rights_only_runs_the_service_after_migrate() {
    // Declared first, dropped last: after the database that holds its grants.
    let role = Role(format!("pl_svc_{}", uuid::Uuid::new_v4().simple()));
    let store = Store::postgres();
    let url = store.url();
    let (ok, log) = run_migrate(&url).await;
    assert!(ok, "auth-svc migrate failed:\n{log}");

    let database = url.rsplit_once('/').unwrap().1.to_owned();
    let password = uuid::Uuid::new_v4().simple().to_string();
    let mut owner = common::db::establish_postgres(&url).unwrap();
    owner
        .batch_execute(&format!(
            "REVOKE CREATE ON SCHEMA public FROM PUBLIC;
             CREATE ROLE \"{r}\" LOGIN PASSWORD '{password}';
             GRANT CONNECT ON DATABASE \"{database}\" TO \"{r}\";
             GRANT USAGE ON SCHEMA auth TO \"{r}\";
             GRANT SELECT, INSERT, UPDATE, DELETE ON ALL TABLES IN SCHEMA auth TO \"{r}\";
             GRANT SELECT ON __diesel_schema_migrations TO \"{r}\";",
            r = role.0
        ))
        .unwrap();
    let service_url = with_user(&url, &role.0, &password);

    // The premise: this role cannot change the schema.
    let mut service = common::db::establish_postgres(&service_url).unwrap();
    for ddl in [
        "CREATE TABLE auth.probe (x INT)",
        "CREATE TABLE public.probe (x INT)",
        "ALTER TABLE auth.users ADD COLUMN probe INT",
    ] {
        let err = service.batch_execute(ddl).unwrap_err().to_string();
        assert!(
            err.contains("permission denied") || err.contains("must be owner"),
            "{ddl}: {err}"
        );
    }
    drop(service);

    let (config, key) = checking_config(&service_url);
    let app = start(config, key, store).await;
    app.register_ok("grace", PASSWORD).await;
    let pair = app.login_ok("grace", PASSWORD).await;
    let refreshed = app
        .client
        .post(app.url("/token/refresh"))
        .json(&serde_json::json!({ "refresh_token": pair.refresh_token }))
        .send()
        .await
        .unwrap();
    assert_eq!(refreshed.status().as_u16(), 200);
    app.login_ok("root-admin", PASSWORD).await;
    app.service.stop().await;
}
