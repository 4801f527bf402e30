//! Graceful shutdown of the real binary: on SIGTERM the listener closes, the in-flight request
//! finishes, the process exits 0.

use crate::helpers::{PASSWORD, TempDir};
use common::testing::TestDatabase;
use serde_json::json;
use std::process::{Child, Command, ExitStatus, Stdio};
use std::time::{Duration, Instant};

/// The binary, killed if the test ends before it exits.
struct Service {
    child: Child,
    log: std::path::PathBuf,
    _dir: TempDir,
}

impl Service {
    fn start(database_url: &str, port: u16, bcrypt_cost: u32) -> Self {
        let dir = TempDir::new();
        let log = dir.0.join("auth-svc.log");
        let out = std::fs::File::create(&log).unwrap();
        let err = out.try_clone().unwrap();
        let child = Command::new(env!("CARGO_BIN_EXE_auth-svc"))
            .env_clear()
            .env("APP_ENV", "development")
            .env("DATABASE_URL", database_url)
            .env("BIND_ADDR", format!("127.0.0.1:{port}"))
            .env("BCRYPT_COST", bcrypt_cost.to_string())
            .env("SHUTDOWN_TIMEOUT_SECS", "20")
            .env("HTTP_WORKERS", "2")
            .env("RUST_LOG", "info")
            .stdin(Stdio::null())
            .stdout(Stdio::from(out))
            .stderr(Stdio::from(err))
            .spawn()
            .unwrap();
        Service {
            child,
            log,
            _dir: dir,
        }
    }

    fn log(&self) -> String {
        std::fs::read_to_string(&self.log).unwrap_or_default()
    }

    fn signal(&self, signal: &str) {
        let status = Command::new("kill")
            .arg(format!("-{signal}"))
            .arg(self.child.id().to_string())
            .status()
            .unwrap();
        assert!(status.success(), "kill -{signal} failed");
    }

    /// Waits for `/health` to answer; panics with the log if the process dies or never answers.
    async fn wait_healthy(&mut self, base: &str) {
        let client = reqwest::Client::new();
        let deadline = Instant::now() + Duration::from_secs(90);
        loop {
            if let Some(status) = self.child.try_wait().unwrap() {
                panic!("auth-svc exited early with {status}:\n{}", self.log());
            }
            if let Ok(resp) = client.get(format!("{base}/health")).send().await
                && resp.status().is_success()
            {
                return;
            }
            assert!(
                Instant::now() < deadline,
                "auth-svc never became healthy:\n{}",
                self.log()
            );
            tokio::time::sleep(Duration::from_millis(100)).await;
        }
    }

    /// The exit status, waiting at most `limit`.
    async fn wait_exit(&mut self, limit: Duration) -> Option<ExitStatus> {
        let deadline = Instant::now() + limit;
        while Instant::now() < deadline {
            if let Some(status) = self.child.try_wait().unwrap() {
                return Some(status);
            }
            tokio::time::sleep(Duration::from_millis(50)).await;
        }
        None
    }
}

impl Drop for Service {
    fn drop(&mut self) {
        if let Ok(None) = self.child.try_wait() {
            let _ = self.child.kill();
            let _ = self.child.wait();
        }
    }
}

/// A port nothing listens on right now.
fn free_port() -> u16 {
    let listener = std::net::TcpListener::bind("127.0.0.1:0").unwrap();
    listener.local_addr().unwrap().port()
}

#[tokio::test]
async fn sigterm_lets_an_in_flight_login_finish_refuses_new_connections_and_exits_0() {
    let db = TestDatabase::create();
    let port = free_port();
    let base = format!("http://127.0.0.1:{port}");
    // A slow bcrypt cost, so that a login is still being handled when the signal arrives.
    let mut service = Service::start(&db.url, port, 14);
    service.wait_healthy(&base).await;

    let client = reqwest::Client::new();
    let resp = client
        .post(format!("{base}/register"))
        .json(&json!({"username": "ana", "password": PASSWORD}))
        .send()
        .await
        .unwrap();
    assert_eq!(resp.status().as_u16(), 201, "{}", service.log());

    // The login goes over a connection of its own.
    let login = tokio::spawn({
        let url = format!("{base}/login");
        async move {
            let resp = reqwest::Client::new()
                .post(url)
                .json(&json!({"username": "ana", "password": PASSWORD}))
                .send()
                .await?;
            let status = resp.status().as_u16();
            let body: serde_json::Value = resp.json().await?;
            Ok::<_, reqwest::Error>((status, body))
        }
    });
    tokio::time::sleep(Duration::from_millis(150)).await;
    assert!(
        !login.is_finished(),
        "the login ended before the signal, so it was not in flight: {:?}",
        login.await
    );
    service.signal("TERM");

    // The listener closes at once: a new connection is refused while the login still runs.
    let mut refused = false;
    for _ in 0..40 {
        tokio::time::sleep(Duration::from_millis(25)).await;
        match std::net::TcpStream::connect_timeout(
            &std::net::SocketAddr::from(([127, 0, 0, 1], port)),
            Duration::from_millis(500),
        ) {
            Err(e) if e.kind() == std::io::ErrorKind::ConnectionRefused => {
                refused = true;
                break;
            }
            _ => {}
        }
    }
    assert!(
        refused,
        "new connections are still accepted after SIGTERM:\n{}",
        service.log()
    );

    let (status, body) = login
        .await
        .unwrap()
        .unwrap_or_else(|e| panic!("the in-flight login failed: {e}\n{}", service.log()));
    assert_eq!(status, 200, "{body}");
    assert!(body["access_token"].is_string(), "{body}");

    // SHUTDOWN_TIMEOUT_SECS is 20: the process is gone well within it plus a margin.
    let exit = service.wait_exit(Duration::from_secs(30)).await;
    let log = service.log();
    let exit = exit.unwrap_or_else(|| panic!("auth-svc did not exit after SIGTERM:\n{log}"));
    assert!(exit.success(), "auth-svc exited with {exit}:\n{log}");
    assert!(log.contains("shutdown signal received"), "{log}");
}

#[tokio::test]
async fn sigint_stops_an_idle_service_with_status_0() {
    let db = TestDatabase::create();
    let port = free_port();
    let base = format!("http://127.0.0.1:{port}");
    let mut service = Service::start(&db.url, port, 4);
    service.wait_healthy(&base).await;
    service.signal("INT");
    let exit = service.wait_exit(Duration::from_secs(30)).await;
    let log = service.log();
    let exit = exit.unwrap_or_else(|| panic!("auth-svc did not exit after SIGINT:\n{log}"));
    assert!(exit.success(), "auth-svc exited with {exit}:\n{log}");
    assert!(
        reqwest::get(format!("{base}/health")).await.is_err(),
        "still answering after exit"
    );
}
