use crate::db::{tokens, users};
use crate::error::AuthError;
use crate::issue::{TokenPair, hash_refresh_token, issue_pair};
use crate::state::AppState;
use actix_web::{HttpResponse, web};
use common::jwt::JwkSet;
use diesel::Connection;
use serde::Deserialize;

#[derive(Deserialize)]
pub struct RefreshBody {
    refresh_token: Option<String>,
}

enum Outcome {
    Issued(TokenPair),
    Reused { family: String },
    Invalid,
}

/// Rotation: a refresh token works once. Presenting a spent one means it leaked (or a client
/// replayed it): the whole family of that login is revoked.
pub async fn refresh(
    state: web::Data<AppState>,
    body: web::Json<RefreshBody>,
) -> Result<HttpResponse, AuthError> {
    let token = body
        .into_inner()
        .refresh_token
        .filter(|t| !t.is_empty())
        .ok_or(AuthError::MissingRefreshToken)?;
    let hash = hash_refresh_token(&token);
    let st = state.clone();
    let outcome = state
        .db
        .run(move |conn| {
            conn.transaction::<Outcome, AuthError, _>(|c| {
                let Some(row) = tokens::find_by_hash(c, &hash)? else {
                    return Ok(Outcome::Invalid);
                };
                // Revoked (its family was, or an admin reset the account) or expired: refused,
                // nothing more to do.
                if (row.revoked_at.is_some() && row.used_at.is_none())
                    || row.expires_at <= crate::db::now()
                {
                    return Ok(Outcome::Invalid);
                }
                if row.used_at.is_some() || !tokens::mark_used(c, &row.id)? {
                    tokens::revoke_family(c, &row.family_id)?;
                    return Ok(Outcome::Reused {
                        family: row.family_id,
                    });
                }
                let Some(user) = users::find_by_id(c, &row.user_id)? else {
                    return Ok(Outcome::Invalid);
                };
                Ok(Outcome::Issued(issue_pair(
                    c,
                    &st,
                    &user,
                    Some(row.family_id),
                )?))
            })
        })
        .await?;
    match outcome {
        Outcome::Issued(pair) => Ok(HttpResponse::Ok().json(pair)),
        Outcome::Reused { family } => {
            tracing::warn!(family_id = %family, "refresh token reused: family revoked");
            Err(AuthError::RefreshTokenReused)
        }
        Outcome::Invalid => Err(AuthError::InvalidRefreshToken),
    }
}

pub async fn jwks(state: web::Data<AppState>) -> HttpResponse {
    HttpResponse::Ok()
        .insert_header(("Cache-Control", "public, max-age=300"))
        .json(JwkSet {
            keys: vec![state.key.jwk()],
        })
}
