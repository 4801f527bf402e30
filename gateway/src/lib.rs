//! The gateway: the only public entry. It verifies tokens, routes by an explicit table to the
//! services and streams their answers back.
//!
//! A request goes one way: [`edge`] (limits, CORS, the request's id and client address, for every
//! request) → [`routing`] (the table) → [`auth`] → [`ratelimit`] → [`proxy`]; each step owns the
//! next and imports only it and the types below the line ([`request`], [`routes`], [`error`]).
//! `/ws` ([`ws`]) and the web pages ([`pages`]) branch off after the edge.

mod auth;
pub mod config;
pub mod edge;
mod error;
pub mod openapi;
pub mod pages;
mod proxy;
pub mod ratelimit;
pub mod request;
pub mod routes;
mod routing;
mod ws;

pub use config::Config;
pub use error::GatewayError;

use actix_web::{App, web};
use common::health::{HttpCheck, Readiness};
use common::jwt::JwtVerifier;
use common::server::RunningServer;
use routes::Upstream;
use std::sync::Arc;

pub async fn build(config: Config) -> anyhow::Result<RunningServer> {
    let store: Option<Arc<dyn common::ratelimit::RateLimitStore>> =
        match (&config.redis_url, config.rate_limit.enabled) {
            (Some(url), true) => {
                Some(common::infra::Infra::connect(url, &config.redis_prefix)?.rate_limits())
            }
            _ => None,
        };
    let limiter = Arc::new(ratelimit::RateLimiter::new(
        config.rate_limit.clone(),
        store,
    ));
    let verifier = Arc::new(JwtVerifier::remote(&config.jwt));
    // Warm the key cache; failure is not fatal (auth-svc may start later), verification retries.
    if let Err(e) = verifier.refresh_keys().await {
        tracing::warn!(error = %e, "signing keys not available yet");
    }
    let proxy = proxy::Proxy::new(proxy::ProxySettings {
        upstreams: config.upstreams.clone(),
        connect_timeout: config.connect_timeout,
        request_timeout: config.request_timeout,
        max_upload_bytes: config.max_upload_bytes,
        max_body_bytes: config.max_body_bytes,
        body_timeout: config.body_timeout,
    })?;
    let readiness = readiness(&config, proxy.client());
    let ws_proxy = web::Data::new(ws::WsProxy::new(
        config.upstreams.get(&Upstream::Notify).map(String::as_str),
        config.connect_timeout,
        verifier.clone(),
        limiter.clone(),
    ));
    let limited = ratelimit::RateLimiting::new(limiter, proxy);
    let routing = web::Data::new(routing::Routing::new(
        config.routes.clone(),
        auth::Auth::new(verifier, limited),
    ));
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
            .app_data(routing.clone())
            .app_data(ws_proxy.clone())
            .configure(common::health::configure(readiness.clone()))
            // The admin WebSocket, relayed to notify-svc; before the table-driven proxy.
            .route("/ws", web::get().to(ws::proxy))
            // The web pages: a fixed table of paths, none of them in the route table.
            .configure(pages::configure(web_pages.clone()))
            .default_service(web::to(routing::handler))
    })?;
    Ok(server)
}

/// Ready when every upstream answers its `/health`.
fn readiness(config: &Config, client: &reqwest::Client) -> Readiness {
    let mut readiness = Readiness::new();
    for upstream in Upstream::ALL {
        if let Some(base) = config.upstreams.get(&upstream) {
            readiness = readiness.with(HttpCheck {
                name: upstream.name().to_owned(),
                url: format!("{base}/health"),
                client: client.clone(),
            });
        }
    }
    readiness
}
