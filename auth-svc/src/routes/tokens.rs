use crate::db::{tokens, users};
use crate::error::AuthError;
use crate::issue::{TokenPair, hash_refresh_token, issue_pair};
use crate::state::AppState;
use actix_web::{HttpResponse, web};
use common::jwt::{Authenticated, JwkSet};
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

/// How many times logout sweeps a family: a refresh that was committing while the first sweep
/// ran may have added a token to the family that sweep could not see; the next one does.
const LOGOUT_SWEEPS: usize = 3;

/// Logout: revokes every refresh token of the login the given refresh token belongs to, so
/// neither it nor any token rotated from it works again (the access tokens already issued
/// live out their short lifetime). 204 whenever the caller has nothing (left) to revoke: an
/// unknown, expired or already revoked token, and also another user's token, which is left
/// untouched — the same answer as for an unknown one, so that logout tells nobody whether a
/// refresh token they hold is someone's live session.
pub async fn logout(
    state: web::Data<AppState>,
    Authenticated(claims): Authenticated,
    body: Result<web::Json<RefreshBody>, actix_web::Error>,
) -> Result<HttpResponse, actix_web::Error> {
    // The token is checked first (the extractor above): without one, 401 whatever the body.
    let token = body?
        .into_inner()
        .refresh_token
        .filter(|t| !t.is_empty())
        .ok_or(AuthError::MissingRefreshToken)?;
    let hash = hash_refresh_token(&token);
    let user_id = claims.sub.clone();
    let revoked = state
        .db
        .run(move |c| -> Result<Option<usize>, AuthError> {
            let Some(family) = tokens::family_of_user(c, &hash, &user_id)? else {
                return Ok(None);
            };
            let mut revoked = 0;
            for _ in 0..LOGOUT_SWEEPS {
                let n = tokens::revoke_family(c, &family)?;
                revoked += n;
                if n == 0 {
                    break;
                }
            }
            Ok(Some(revoked))
        })
        .await?;
    match revoked {
        Some(n) => tracing::info!(user_id = %claims.sub, revoked = n, "logged out"),
        None => tracing::info!(
            user_id = %claims.sub,
            "logout with a refresh token that is not this user's: nothing revoked"
        ),
    }
    Ok(HttpResponse::NoContent().finish())
}

pub async fn jwks(state: web::Data<AppState>) -> HttpResponse {
    HttpResponse::Ok()
        .insert_header(("Cache-Control", "public, max-age=300"))
        .json(JwkSet {
            keys: vec![state.key.jwk()],
        })
}
