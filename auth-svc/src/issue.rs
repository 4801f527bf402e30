//! Issuing token pairs: a short-lived EdDSA access token and an opaque, single-use refresh
//! token stored only as its SHA-256.

use crate::db::tokens::{self, RefreshToken};
use crate::db::users::User;
use crate::error::AuthError;
use crate::state::AppState;
use anyhow::Context;
use base64::Engine;
use base64::engine::general_purpose::URL_SAFE_NO_PAD;
use common::db::DbConnection;
use common::jwt::Claims;
use serde::Serialize;

#[derive(Debug, Serialize)]
pub struct TokenPair {
    pub access_token: String,
    pub refresh_token: String,
    pub token_type: &'static str,
    pub expires_in: u64,
}

pub fn hash_refresh_token(token: &str) -> String {
    common::digest::sha256_hex(token.as_bytes())
}

pub fn access_token(state: &AppState, user: &User) -> Result<String, AuthError> {
    let now = chrono::Utc::now().timestamp();
    let claims = Claims {
        iss: state.issuer.clone(),
        aud: state.audience.clone(),
        sub: user.id.clone(),
        name: user.username.clone(),
        role: user.role(),
        iat: now,
        nbf: now,
        exp: now + state.access_ttl.as_secs() as i64,
        jti: uuid::Uuid::now_v7().to_string(),
    };
    state
        .key
        .sign(&claims)
        .context("cannot sign an access token")
        .map_err(AuthError::Internal)
}

/// Issues a pair; `family` continues a login's rotation chain, `None` starts a new one.
pub fn issue_pair(
    conn: &mut DbConnection,
    state: &AppState,
    user: &User,
    family: Option<String>,
) -> Result<TokenPair, AuthError> {
    let mut secret = [0u8; 32];
    getrandom::fill(&mut secret).context("no randomness for a refresh token")?;
    let refresh_token = URL_SAFE_NO_PAD.encode(secret);
    let now = crate::db::now();
    let refresh_ttl = chrono::Duration::seconds(state.refresh_ttl.as_secs() as i64);
    let id = uuid::Uuid::now_v7().to_string();
    tokens::insert(
        conn,
        &RefreshToken {
            family_id: family.unwrap_or_else(|| id.clone()),
            id,
            user_id: user.id.clone(),
            token_hash: hash_refresh_token(&refresh_token),
            expires_at: now + refresh_ttl,
            used_at: None,
            revoked_at: None,
            created_at: now,
        },
    )?;
    Ok(TokenPair {
        access_token: access_token(state, user)?,
        refresh_token,
        token_type: "Bearer",
        expires_in: state.access_ttl.as_secs(),
    })
}
