//! notify-svc: admin WebSockets fed by the event bus.
//!
//! `GET /ws` authenticates the token before upgrading and refuses anyone but an admin (403),
//! or a user holding too many sockets already (429); admins join the `admins` room and
//! receive the bus events (`new_feedback`, `retrain_progress`, `retrain_finished`,
//! `model_promoted`); a reconnect with `last_event_id` replays what was missed from the
//! history stream. Each replica serves its own sockets from its own subscription to Redis.

pub mod config;
mod feed;
pub mod history;
pub mod hub;
pub mod protocol;
mod routes;
mod socket;

pub use config::{Config, WsSettings};
pub use hub::{Hub, Stats};

use actix_web::web;
use async_trait::async_trait;
use common::health::Readiness;
use common::infra::Infra;
use common::jwt::JwtVerifier;
use common::service::{BackgroundTask, RunningService, ServiceApp};
use std::sync::Arc;
use std::time::Duration;

/// How long start-up waits for the bus subscription before serving anyway (not ready).
const SUBSCRIBE_WAIT: Duration = Duration::from_secs(3);

/// The hub and the bus feed behind it: stopping tells every socket to go away (1001), so that
/// the server's drain does not wait for them, and ends the feed.
struct HubTask(Arc<Hub>);

#[async_trait]
impl BackgroundTask for HubTask {
    fn begin_stop(&self) {
        self.0.shutdown();
    }

    /// The feed ends by itself on the hub's shutdown signal.
    async fn stop(self: Box<Self>) {}
}

/// Connects to the bus (Redis or in-process), subscribes to it and starts serving.
pub async fn build(config: Config) -> anyhow::Result<RunningService> {
    Ok(build_with_hub(config).await?.0)
}

/// [`build`], also giving the hub (its [`Stats`], for tests).
pub async fn build_with_hub(config: Config) -> anyhow::Result<(RunningService, Arc<Hub>)> {
    let infra = Infra::connect(&config.redis.url, &config.redis.prefix)?;
    let verifier = web::Data::new(JwtVerifier::remote(&config.jwt));
    // Warm the key cache; auth-svc may start later, verification fetches the keys then.
    if let Err(e) = verifier.refresh_keys().await {
        tracing::warn!(error = %e, "signing keys not available yet");
    }
    let ws = config.ws.clone();
    let hub = Arc::new(Hub::new(
        ws.send_queue,
        ws.max_connections,
        ws.max_per_user,
        ws.replay_limit,
    ));
    hub::export_metrics(&hub);
    let history = history::History::of(&infra);
    let feed = feed::start(
        &infra,
        hub.clone(),
        history.clone(),
        ws.replay_limit,
        SUBSCRIBE_WAIT,
    )
    .await;
    let readiness = infra.ready_check(Readiness::new()).with(feed);
    let shared = web::Data::new(socket::Shared {
        hub: hub.clone(),
        history,
        settings: ws,
    });
    let service = ServiceApp::new("notify-svc", readiness, routes::configure)
        .data(verifier)
        .data(shared)
        .serve(&config.common, vec![Box::new(HubTask(hub.clone()))])
        .await?;
    Ok((service, hub))
}
