//! The all-in-one mode: every service in one process, for a developer's machine.
//!
//! The services are the same libraries the split deployment runs, each on its own loopback
//! port (ephemeral, so nothing clashes) and talking to the others over HTTP as in the
//! deployment; only the gateway's port is public. What they share besides HTTP comes from the
//! configuration, as in the deployment, with embedded defaults:
//!
//! - `DATABASE_URL` unset: SQLite under `DATA_DIR/db/` (one file per service's schema);
//! - `REDIS_URL` unset: the in-process bus, job queue, prediction store and rate-limit store
//!   (`memory://…`, registered here for this process only). Development mode only: they keep
//!   nothing across a restart (predictions are kept for feedback only while the process runs;
//!   users, feedback, models and jobs are in the database).
//!
//! With the URLs set, the same process uses PostgreSQL and Redis.

use anyhow::{Context, bail};
use common::config::{Env, Mode};
use common::infra::MemoryInfra;
use common::service::RunningService;
use std::collections::HashMap;
use std::path::PathBuf;
use std::time::Duration;

/// The gateway's address when `BIND_ADDR` is not set: this machine only.
pub const DEFAULT_BIND_ADDR: &str = "127.0.0.1:8080";

/// How long stopping may take in all (`cargo xtask up` kills the process after 35 s).
const STOP_BUDGET: Duration = Duration::from_secs(30);

/// Waits for `stop` until `deadline`, saying so when it is cut short.
async fn bounded(name: &str, deadline: tokio::time::Instant, stop: impl Future<Output = ()>) {
    if tokio::time::timeout_at(deadline, stop).await.is_err() {
        tracing::warn!(service = name, "did not stop in time");
    }
}

/// The variables the services are configured from.
#[derive(Debug, Clone, Default)]
pub struct Settings {
    vars: HashMap<String, String>,
}

impl Settings {
    pub fn from_process() -> Self {
        Self::from_map(std::env::vars().collect())
    }

    pub fn from_map(vars: HashMap<String, String>) -> Self {
        Settings { vars }
    }

    /// Sets a variable (tests).
    pub fn set(mut self, name: &str, value: impl Into<String>) -> Self {
        self.vars.insert(name.to_owned(), value.into());
        self
    }

    fn get(&self, name: &str) -> Option<&str> {
        self.vars
            .get(name)
            .map(String::as_str)
            .filter(|v| !v.trim().is_empty())
    }
}

/// The running system: its services in the order they started.
pub struct System {
    /// The gateway's port, the only public one.
    pub port: u16,
    /// The gateway's management port: its `/metrics` (every service's, in this process).
    pub management_port: u16,
    /// Each service's (public, management) loopback ports, by name: for tests.
    pub services: HashMap<&'static str, (u16, u16)>,
    memory: Option<String>,
    /// auth-svc first (the others fetch its keys), the gateway last; a start that fails part-way
    /// stops those already here.
    running: Vec<RunningService>,
}

/// The services' variables, derived from the settings once.
struct Plan {
    vars: HashMap<String, String>,
    database_url: String,
    /// The gateway's own `BIND_ADDR` and `MANAGEMENT_BIND_ADDR` (the others take loopback ports).
    public_bind: String,
    public_management: Option<String>,
    /// Each service client's secret, by client id.
    secrets: HashMap<&'static str, String>,
}

fn env_of(vars: &HashMap<String, String>) -> Env {
    Env::from_map(vars.clone())
}

fn local_url(port: u16) -> String {
    format!("http://127.0.0.1:{port}")
}

impl System {
    /// Starts every service: auth-svc first (the others fetch its keys), the gateway last. If
    /// one fails to start, those already started are stopped before the error is returned.
    pub async fn start(settings: Settings) -> anyhow::Result<System> {
        let mut system = System {
            port: 0,
            management_port: 0,
            services: HashMap::new(),
            memory: None,
            running: Vec::new(),
        };
        match system.start_services(&settings).await {
            Ok(()) => Ok(system),
            Err(e) => {
                system.stop().await;
                Err(e)
            }
        }
    }

    /// The settings every service shares: development mode, migrations at start, the database
    /// (SQLite by default), the bus (in-process by default), loopback ports, service credentials.
    fn plan(&mut self, settings: &Settings) -> anyhow::Result<Plan> {
        let mut vars = settings.vars.clone();
        let data_dir = PathBuf::from(settings.get("DATA_DIR").unwrap_or("data"));
        if settings.get("APP_ENV").is_none() {
            vars.insert("APP_ENV".into(), "development".into());
        }
        // One process holds every replica there is: no old code can be serving while the schema
        // changes, so the services migrate at start whatever the mode (unless told otherwise).
        if settings.get("MIGRATE_ON_START").is_none() {
            vars.insert("MIGRATE_ON_START".into(), "true".into());
        }
        let mode = Env::from_map(vars.clone()).mode();

        let database_url = match settings.get("DATABASE_URL") {
            Some(url) => url.to_owned(),
            None => {
                let db_dir = data_dir.join("db");
                std::fs::create_dir_all(&db_dir)
                    .with_context(|| format!("creating {}", db_dir.display()))?;
                format!("sqlite://{}", db_dir.join("predictloop.db").display())
            }
        };
        vars.insert("DATABASE_URL".into(), database_url.clone());
        if settings.get("REDIS_URL").is_none() {
            if mode != Mode::Development {
                bail!(
                    "REDIS_URL is required outside development mode: the in-process bus, queue and stores share nothing with other processes and keep nothing across a restart"
                );
            }
            let name = format!("predictloop-{}", uuid::Uuid::new_v4());
            let (_, url) = MemoryInfra::register(&name);
            vars.insert("REDIS_URL".into(), url);
            self.memory = Some(name);
        }
        let public_bind = settings
            .get("BIND_ADDR")
            .unwrap_or(DEFAULT_BIND_ADDR)
            .to_owned();
        // Every service but the gateway on an ephemeral loopback port.
        vars.insert("BIND_ADDR".into(), "127.0.0.1:0".into());
        let public_management = settings.get("MANAGEMENT_BIND_ADDR").map(str::to_owned);
        vars.insert("MANAGEMENT_BIND_ADDR".into(), "127.0.0.1:0".into());
        // The services' credentials for each other's /internal/ routes: generated at each
        // start, they never leave this process.
        let credentials = common::service_auth::development_clients()
            .context("generating the service credentials")?;
        vars.insert("SERVICE_CLIENTS".into(), credentials.service_clients);
        Ok(Plan {
            vars,
            database_url,
            public_bind,
            public_management,
            secrets: credentials.secrets.into_iter().collect(),
        })
    }

    /// Records a started service: its ports, and its place in the stop order.
    fn add(&mut self, service: RunningService) -> (u16, u16) {
        let ports = (service.port, service.management_port);
        self.services.insert(service.name, ports);
        self.running.push(service);
        ports
    }

    async fn start_services(&mut self, settings: &Settings) -> anyhow::Result<()> {
        let Plan {
            mut vars,
            database_url,
            public_bind,
            public_management,
            secrets,
        } = self.plan(settings)?;
        self.start_backends(&mut vars, &secrets).await?;
        for name in [
            "SERVICE_CLIENTS",
            "SERVICE_CLIENT_ID",
            "SERVICE_CLIENT_SECRET",
        ] {
            vars.remove(name);
        }
        vars.insert("BIND_ADDR".into(), public_bind);
        // The gateway's management port (its /metrics): MANAGEMENT_BIND_ADDR, else its
        // default, the public port + 1000.
        match public_management {
            Some(addr) => vars.insert("MANAGEMENT_BIND_ADDR".into(), addr),
            None => vars.remove("MANAGEMENT_BIND_ADDR"),
        };
        let gateway = gateway::build(
            gateway::Config::from_env(env_of(&vars)).context("the gateway's configuration")?,
        )
        .await
        .context("starting the gateway")?;
        (self.port, self.management_port) = self.add(RunningService::new("gateway", gateway));
        tracing::info!(
            url = %local_url(self.port),
            database = %common::db::redact_url(&database_url),
            events = %settings
                .get("REDIS_URL")
                .map_or_else(|| "in-process".to_owned(), common::db::redact_url),
            "predictloop is running (all-in-one)"
        );
        Ok(())
    }

    /// The services behind the gateway, in the order they call each other; each one's address
    /// goes into `vars` for those started after it.
    async fn start_backends(
        &mut self,
        vars: &mut HashMap<String, String>,
        secrets: &HashMap<&'static str, String>,
    ) -> anyhow::Result<()> {
        let as_client = |vars: &mut HashMap<String, String>, id: &str| {
            vars.insert("SERVICE_CLIENT_ID".into(), id.to_owned());
            vars.insert(
                "SERVICE_CLIENT_SECRET".into(),
                secrets.get(id).cloned().unwrap_or_default(),
            );
        };

        let auth = auth_svc::build(
            auth_svc::Config::from_env(env_of(vars)).context("auth-svc's configuration")?,
        )
        .await
        .context("starting auth-svc")?;
        let auth_url = local_url(self.add(auth).0);
        vars.insert(
            "AUTH_JWKS_URL".into(),
            format!("{auth_url}/.well-known/jwks.json"),
        );
        vars.insert("AUTH_URL".into(), auth_url);

        let predict = predict_svc::build(
            predict_svc::Config::from_env(env_of(vars)).context("predict-svc's configuration")?,
        )
        .await
        .context("starting predict-svc")?;
        let (public, management) = self.add(predict);
        vars.insert("PREDICT_URL".into(), local_url(public));
        vars.insert("PREDICT_INTERNAL_URL".into(), local_url(management));

        as_client(vars, "feedback-svc");
        let feedback = feedback_svc::build(
            feedback_svc::Config::from_env(env_of(vars)).context("feedback-svc's configuration")?,
        )
        .await
        .context("starting feedback-svc")?;
        let (public, management) = self.add(feedback);
        vars.insert("FEEDBACK_URL".into(), local_url(public));
        vars.insert("FEEDBACK_INTERNAL_URL".into(), local_url(management));

        let notify = notify_svc::build(
            notify_svc::Config::from_env(env_of(vars)).context("notify-svc's configuration")?,
        )
        .await
        .context("starting notify-svc")?;
        vars.insert("NOTIFY_URL".into(), local_url(self.add(notify).0));

        as_client(vars, "retrain-worker");
        let retrain = retrain_worker::build(
            retrain_worker::Config::from_env(env_of(vars))
                .context("retrain-worker's configuration")?,
        )
        .await
        .context("starting retrain-worker")?;
        vars.insert("RETRAIN_URL".into(), local_url(self.add(retrain).0));
        Ok(())
    }

    /// The gateway's base URL.
    pub fn url(&self) -> String {
        local_url(self.port)
    }

    /// Runs until Ctrl-C or SIGTERM, then stops.
    pub async fn run_until_stopped(self) {
        common::server::wait_for_signal().await;
        tracing::info!("shutdown signal received: stopping every service");
        self.stop().await;
    }

    /// Stops everything within [`STOP_BUDGET`]: every service begins to stop at once, last
    /// started first (no new connections; training stops at its next batch and its job goes back
    /// to the queue; the admin sockets are told to go away), then each is awaited in that order:
    /// its in-flight requests drained, then its background tasks stopped. Only the services that
    /// started are stopped.
    pub async fn stop(self) {
        let deadline = tokio::time::Instant::now() + STOP_BUDGET;
        for service in self.running.iter().rev() {
            service.begin_stop();
        }
        for service in self.running.into_iter().rev() {
            bounded(service.name, deadline, service.stop()).await;
        }
        if let Some(name) = self.memory {
            MemoryInfra::unregister(&name);
        }
        tracing::info!("predictloop stopped");
    }
}
