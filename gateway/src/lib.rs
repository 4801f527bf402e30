//! The gateway: the only public entry. It verifies tokens, routes by an explicit table to the
//! services and streams their answers back.

pub mod config;
pub mod edge;
mod error;
pub mod openapi;
pub mod pages;
mod proxy;
pub mod ratelimit;
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
    let store: Option<std::sync::Arc<dyn common::ratelimit::RateLimitStore>> =
        match (&config.redis_url, config.rate_limit.enabled) {
            (Some(url), true) => {
                Some(common::infra::Infra::connect(url, &config.redis_prefix)?.rate_limits())
            }
            _ => None,
        };
    let limiter = ratelimit::RateLimiter::new(config.rate_limit.clone(), store);
    let state = state::GatewayState::new(&config, limiter)?;
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
    let edge = web::Data::new(config.edge.clone());
    let web_pages = web::Data::new(pages::WebAssets::load(&config.web));
    let server = common::server::start(&config.common, move || {
        App::new()
            // /metrics and /internal/ only on the management port.
            .wrap(actix_web::middleware::from_fn(common::server::split_planes))
            .wrap(actix_web::middleware::from_fn(edge::check))
            // Outermost: answers the edge refuses are counted too.
            .wrap(actix_web::middleware::from_fn(
                common::telemetry::trace_http,
            ))
            .wrap(actix_web::middleware::from_fn(common::metrics::track))
            .configure(common::metrics::service("gateway"))
            .app_data(edge.clone())
            .app_data(state.clone())
            .app_data(ws_proxy.clone())
            .configure(common::health::configure(readiness.clone()))
            // The admin WebSocket, relayed to notify-svc; before the table-driven proxy.
            .route("/ws", web::get().to(ws::proxy))
            // The web pages: a fixed table of paths, none of them in the route table.
            .configure(pages::configure(web_pages.clone()))
            .default_service(web::to(proxy::forward))
    })?;
    Ok(server)
}
