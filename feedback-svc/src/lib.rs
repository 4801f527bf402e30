//! feedback-svc: user feedback linked to the prediction it is about, admin reports, and the
//! transactional outbox that publishes `feedback.created` (schema `feedback`).

pub mod config;
pub mod db;
mod error;
pub mod predictions;
pub mod relay;
pub mod report;
mod routes;
mod state;
pub mod submission;

pub use config::Config;
pub use error::FeedbackError;
pub use relay::{OutboxRelay, RelayOptions, RelayTask};

use actix_web::dev::ServerHandle;
use actix_web::{App, web};
use common::db::Db;
use common::health::{DbCheck, Readiness};
use common::infra::Infra;
use common::jwt::JwtVerifier;
use common::server::RunningServer;
use std::sync::Arc;
use std::time::Duration;
use tokio::sync::Notify;

/// How long a stopping service waits for the relay's batch in progress.
const RELAY_STOP_TIMEOUT: Duration = Duration::from_secs(10);

/// The service, bound and with its relay running, ready to serve.
pub struct Application {
    pub port: u16,
    /// `/metrics` and `/internal/…`.
    pub management_port: u16,
    server: RunningServer,
    relay: Option<RelayTask>,
}

/// A service running in the background (tests): stop it with [`RunningApp::stop`].
pub struct RunningApp {
    pub handle: ServerHandle,
    relay: Option<RelayTask>,
}

impl RunningApp {
    /// Stops the server gracefully, then the relay.
    pub async fn stop(self) {
        self.handle.stop(true).await;
        if let Some(relay) = self.relay {
            relay.shutdown(RELAY_STOP_TIMEOUT).await;
        }
    }
}

impl Application {
    /// Runs until a shutdown signal; in-flight requests finish, then the relay's batch.
    pub async fn run_until_stopped(self) -> std::io::Result<()> {
        let result = self.server.run_until_stopped().await;
        if let Some(relay) = self.relay {
            relay.shutdown(RELAY_STOP_TIMEOUT).await;
        }
        result
    }

    pub fn spawn(self) -> RunningApp {
        RunningApp {
            handle: self.server.spawn(),
            relay: self.relay,
        }
    }
}

/// Connects to its dependencies, migrates, starts the outbox relay and binds the server.
pub async fn build(config: Config) -> anyhow::Result<Application> {
    let db = Db::open_service(
        config.database_url.expose(),
        "feedback",
        config.common.mode,
        config.migrate_on_start,
        db::POSTGRES_MIGRATIONS,
        db::SQLITE_MIGRATIONS,
    )
    .await?;
    let infra = Infra::connect(&config.redis_url, &config.redis_prefix)?;
    // Everything that can fail before the relay starts, so that a failure leaves nothing running.
    let tokens = common::service_auth::ServiceTokens::new(config.service_client.clone())
        .map_err(|e| anyhow::anyhow!("HTTP client: {e}"))?;
    let predictions = predictions::PredictClient::new(&config.predict_url, Arc::new(tokens))?;
    let relay_wakeup = Arc::new(Notify::new());
    let relay = config.outbox.relay_enabled.then(|| {
        OutboxRelay::new(
            db.clone(),
            &infra,
            RelayOptions {
                history_maxlen: config.outbox.history_maxlen,
                ..Default::default()
            },
        )
        .spawn(relay_wakeup.clone(), config.outbox.poll_interval)
    });
    let state = web::Data::new(state::AppState {
        db: db.clone(),
        predictions,
        relay_wakeup,
    });
    let verifier = web::Data::new(JwtVerifier::remote(&config.jwt));
    // Redis is deliberately not a readiness dependency: while it is down feedback is still
    // accepted, and the outbox publishes it once Redis is back.
    let readiness = Readiness::new().with(DbCheck(db));
    let server = common::server::start(&config.common, move || {
        App::new()
            // /metrics and /internal/ only on the management port.
            .wrap(actix_web::middleware::from_fn(common::server::split_planes))
            .wrap(actix_web::middleware::from_fn(
                common::telemetry::trace_http,
            ))
            .wrap(actix_web::middleware::from_fn(common::metrics::track))
            .configure(common::metrics::service("feedback-svc"))
            .app_data(state.clone())
            .app_data(verifier.clone())
            .configure(common::http::configure_extractors)
            .configure(common::health::configure(readiness.clone()))
            .configure(routes::configure)
            .default_service(web::to(common::http::no_route))
    });
    let server = match server {
        Ok(server) => server,
        Err(e) => {
            if let Some(relay) = relay {
                relay.shutdown(RELAY_STOP_TIMEOUT).await;
            }
            return Err(e.into());
        }
    };
    Ok(Application {
        port: server.port,
        management_port: server.management_port,
        server,
        relay,
    })
}
