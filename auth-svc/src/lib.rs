//! auth-svc: users (bcrypt), EdDSA-signed access tokens with rotating refresh tokens, JWKS.

mod bootstrap;
pub mod clients;
pub mod config;
pub mod db;
mod error;
mod issue;
mod routes;
mod state;
pub mod validate;

pub use config::Config;
pub use error::AuthError;

use actix_web::{App, web};
use common::db::Db;
use common::health::{DbCheck, Readiness};
use common::jwt::{JwkSet, JwtVerifier};
use common::server::RunningServer;

/// Connects, migrates, bootstraps the admin and binds the server (not yet running).
pub async fn build(config: Config) -> anyhow::Result<RunningServer> {
    let db = Db::open_service(
        config.database_url.expose(),
        "auth",
        config.common.mode,
        config.migrate_on_start,
        db::POSTGRES_MIGRATIONS,
        db::SQLITE_MIGRATIONS,
    )
    .await?;
    let state = state::AppState::new(db.clone(), &config).await?;
    if let Some(admin) = &config.admin {
        bootstrap::ensure_admin(&state, admin).await?;
    }
    let verifier = web::Data::new(JwtVerifier::local(
        &JwkSet {
            keys: vec![config.signing_key.jwk()],
        },
        &config.issuer,
        &config.audience,
    ));
    let state = web::Data::new(state);
    let readiness = Readiness::new().with(DbCheck(db));
    let server = common::server::start(&config.common, move || {
        App::new()
            // /metrics and /internal/ only on the management port.
            .wrap(actix_web::middleware::from_fn(common::server::split_planes))
            .wrap(actix_web::middleware::from_fn(
                common::telemetry::trace_http,
            ))
            .wrap(actix_web::middleware::from_fn(common::metrics::track))
            .configure(common::metrics::service("auth-svc"))
            .app_data(state.clone())
            .app_data(verifier.clone())
            .configure(common::http::configure_extractors)
            .configure(common::health::configure(readiness.clone()))
            .configure(routes::configure)
            .default_service(web::to(common::http::no_route))
    })?;
    Ok(server)
}
