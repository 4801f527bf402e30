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

use actix_web::web;
use common::health::{DbCheck, Readiness};
use common::jwt::{JwkSet, JwtVerifier};
use common::service::{RunningService, ServiceApp};

/// Connects, migrates, bootstraps the admin and starts serving.
pub async fn build(config: Config) -> anyhow::Result<RunningService> {
    let db = db::SCHEMA
        .open(&config.database, config.common.mode)
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
    ServiceApp::new("auth-svc", readiness, routes::configure)
        .data(state)
        .data(verifier)
        .serve(&config.common, Vec::new())
        .await
}
