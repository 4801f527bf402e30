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

use actix_web::dev::ServerHandle;
use actix_web::{App, web};
use common::health::Readiness;
use common::infra::Infra;
use common::jwt::JwtVerifier;
use common::server::RunningServer;
use std::sync::Arc;
use std::time::Duration;

/// How long start-up waits for the bus subscription before serving anyway (not ready).
const SUBSCRIBE_WAIT: Duration = Duration::from_secs(3);

/// The service, bound and subscribed, ready to serve.
pub struct Application {
    pub port: u16,
    server: RunningServer,
    hub: Arc<Hub>,
}

/// A service running in the background (tests).
pub struct RunningApp {
    pub handle: ServerHandle,
    pub hub: Arc<Hub>,
}

impl RunningApp {
    /// Closes every socket (1001), then stops the server.
    pub async fn stop(self) {
        self.hub.shutdown();
        self.handle.stop(true).await;
    }
}

impl Application {
    pub fn hub(&self) -> Arc<Hub> {
        self.hub.clone()
    }

    /// Runs until a shutdown signal; open sockets are told to go away (1001) so that the
    /// server's drain does not wait for them.
    pub async fn run_until_stopped(self) -> std::io::Result<()> {
        let hub = self.hub.clone();
        let closer = tokio::spawn(async move {
            common::server::wait_for_signal().await;
            hub.shutdown();
        });
        let result = self.server.run_until_stopped().await;
        closer.abort();
        result
    }

    pub fn spawn(self) -> RunningApp {
        RunningApp {
            handle: self.server.spawn(),
            hub: self.hub,
        }
    }
}

/// Connects to the bus (Redis or in-process), subscribes to it and binds the server (not yet running).
pub async fn build(config: Config) -> anyhow::Result<Application> {
    let infra = Infra::connect(&config.redis_url, &config.redis_prefix)?;
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
    let server = common::server::start(&config.common, move || {
        App::new()
            // /metrics and /internal/ only on the management port.
            .wrap(actix_web::middleware::from_fn(common::server::split_planes))
            .wrap(actix_web::middleware::from_fn(
                common::telemetry::trace_http,
            ))
            .wrap(actix_web::middleware::from_fn(common::metrics::track))
            .configure(common::metrics::service("notify-svc"))
            .app_data(verifier.clone())
            .app_data(shared.clone())
            .configure(common::http::configure_extractors)
            .configure(common::health::configure(readiness.clone()))
            .configure(routes::configure)
            .default_service(web::to(common::http::no_route))
    })?;
    Ok(Application {
        port: server.port,
        server,
        hub,
    })
}
