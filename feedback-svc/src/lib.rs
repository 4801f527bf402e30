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

use actix_web::web;
use async_trait::async_trait;
use common::health::{DbCheck, Readiness};
use common::infra::Infra;
use common::jwt::JwtVerifier;
use common::service::{BackgroundTask, RunningService, ServiceApp};
use std::sync::Arc;
use std::time::Duration;
use tokio::sync::Notify;

/// How long a stopping service waits for the relay's batch in progress.
const RELAY_STOP_TIMEOUT: Duration = Duration::from_secs(10);

/// The relay stops once the server has drained, so that the last requests' events go out.
#[async_trait]
impl BackgroundTask for RelayTask {
    async fn stop(self: Box<Self>) {
        self.shutdown(RELAY_STOP_TIMEOUT).await;
    }
}

/// Connects to its dependencies, migrates, starts the outbox relay and starts serving.
pub async fn build(config: Config) -> anyhow::Result<RunningService> {
    let db = db::SCHEMA
        .open(&config.backends.database, config.common.mode)
        .await?;
    let infra = Infra::connect(&config.backends.redis.url, &config.backends.redis.prefix)?;
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
    let verifier = web::Data::new(JwtVerifier::remote(&config.backends.jwt));
    // Redis is deliberately not a readiness dependency: while it is down feedback is still
    // accepted, and the outbox publishes it once Redis is back.
    let readiness = Readiness::new().with(DbCheck(db));
    ServiceApp::new("feedback-svc", readiness, routes::configure)
        .data(state)
        .data(verifier)
        .serve(&config.common, vec![Box::new(relay)])
        .await
}
