//! The gateway: the only public entry. It verifies tokens, routes by an explicit table to the
//! services and streams their answers back.

pub mod config;
mod error;
mod proxy;
pub mod routes;
mod state;
mod ws;

pub use config::Config;
pub use error::GatewayError;

use actix_web::{App, web};
use common::health::{HttpCheck, Readiness};
use common::server::RunningServer;
use routes::Upstream;

pub async fn build(config: Config) -> anyhow::Result<RunningServer> {
    let state = state::GatewayState::new(&config)?;
    // Warm the key cache; failure is not fatal (auth-svc may start later), verification retries.
    if let Err(e) = state.verifier.refresh_keys().await {
        tracing::warn!(error = %e, "signing keys not available yet");
    }
    let mut readiness = Readiness::new();
    for upstream in Upstream::ALL {
        if let Some(base) = config.upstreams.get(&upstream) {
            readiness = readiness.with(HttpCheck {
                name: upstream.name().to_owned(),
                url: format!("{base}/health"),
                client: state.client.clone(),
            });
        }
    }
    let state = web::Data::new(state);
    let ws_proxy = web::Data::new(ws::WsProxy::new(&config));
    let server = common::server::start(&config.common, move || {
        App::new()
            .app_data(state.clone())
            .app_data(ws_proxy.clone())
            .configure(common::health::configure(readiness.clone()))
            // The admin WebSocket, relayed to notify-svc; before the table-driven proxy.
            .route("/ws", web::get().to(ws::proxy))
            .default_service(web::to(proxy::forward))
    })?;
    Ok(server)
}
