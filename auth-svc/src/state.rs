use crate::config::Config;
use crate::error::AuthError;
use anyhow::Context;
use common::db::Db;
use common::jwt::SigningKeyPair;
use std::time::Duration;

pub struct AppState {
    pub db: Db,
    pub key: SigningKeyPair,
    pub issuer: String,
    pub audience: String,
    pub access_ttl: Duration,
    pub refresh_ttl: Duration,
    pub bcrypt_cost: u32,
    pub service_clients: crate::clients::ServiceClients,
    pub service_ttl: Duration,
    /// Verified against when the user does not exist, so that a login for an unknown name
    /// takes as long as one with a wrong password.
    pub dummy_hash: String,
}

impl AppState {
    pub async fn new(db: Db, config: &Config) -> Result<Self, AuthError> {
        let dummy_hash = hash_password("not-a-real-password".into(), config.bcrypt_cost).await?;
        Ok(AppState {
            db,
            key: config.signing_key.clone(),
            issuer: config.issuer.clone(),
            audience: config.audience.clone(),
            access_ttl: config.access_token_ttl,
            refresh_ttl: config.refresh_token_ttl,
            bcrypt_cost: config.bcrypt_cost,
            service_clients: config.service_clients.clone(),
            service_ttl: config.service_token_ttl,
            dummy_hash,
        })
    }
}

/// bcrypt is deliberately slow: it runs on the blocking pool, never on an async worker.
pub async fn hash_password(password: String, cost: u32) -> Result<String, AuthError> {
    let hashed = tokio::task::spawn_blocking(move || bcrypt::hash(password, cost))
        .await
        .context("the password hashing task failed")?;
    Ok(hashed.context("bcrypt cannot hash the password")?)
}

pub async fn verify_password(password: String, hash: String) -> Result<bool, AuthError> {
    let verified =
        tokio::task::spawn_blocking(move || bcrypt::verify(password, &hash).unwrap_or(false))
            .await
            .context("the password checking task failed")?;
    Ok(verified)
}
