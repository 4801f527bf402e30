use crate::db::users::{self, User};
use crate::error::AuthError;
use crate::issue::issue_pair;
use crate::state::{AppState, hash_password, verify_password};
use crate::validate;
use actix_web::{HttpResponse, web};
use common::jwt::{Authenticated, Role};
use serde::Deserialize;

/// The seed's login body; both fields optional so that a missing one is the seed's 400.
#[derive(Deserialize)]
pub struct Credentials {
    username: Option<String>,
    password: Option<String>,
}

impl Credentials {
    fn require(self) -> Result<(String, String), AuthError> {
        match (self.username, self.password) {
            (Some(u), Some(p)) if !u.is_empty() && !p.is_empty() => Ok((u, p)),
            _ => Err(AuthError::MissingCredentials),
        }
    }
}

pub async fn register(
    state: web::Data<AppState>,
    body: web::Json<Credentials>,
) -> Result<HttpResponse, AuthError> {
    let (username, password) = body.into_inner().require()?;
    validate::username(&username).map_err(AuthError::Invalid)?;
    validate::password(&password).map_err(AuthError::Invalid)?;
    let name = username.clone();
    // Cheap check first, so a taken name costs no bcrypt work; the unique index decides races.
    if state
        .db
        .run(move |c| users::find_by_name(c, &name))
        .await?
        .is_some()
    {
        return Err(AuthError::UsernameTaken);
    }
    let hash = hash_password(password, state.bcrypt_cost).await?;
    let user = User::new(&username, hash, Role::User);
    let stored = user.clone();
    state
        .db
        .run(move |c| users::insert(c, &stored))
        .await
        .map_err(|e| {
            if e.is_unique_violation() {
                AuthError::UsernameTaken
            } else {
                AuthError::Db(e)
            }
        })?;
    tracing::info!(user_id = %user.id, username = %user.username, "user registered");
    Ok(HttpResponse::Created().json(user.public()))
}

pub async fn login(
    state: web::Data<AppState>,
    body: web::Json<Credentials>,
) -> Result<HttpResponse, AuthError> {
    let (username, password) = body.into_inner().require()?;
    // A name registration would refuse cannot be a user's: no lookup, the same refusal on
    // both databases (PostgreSQL would refuse a NUL in the query, SQLite would not).
    let plausible = validate::username(&username).is_ok();
    let user = if plausible {
        let name = username.clone();
        state.db.run(move |c| users::find_by_name(c, &name)).await?
    } else {
        None
    };
    let hash = user
        .as_ref()
        .map_or_else(|| state.dummy_hash.clone(), |u| u.password_hash.clone());
    let matches = verify_password(password, hash).await?;
    let Some(user) = user.filter(|_| matches) else {
        if plausible {
            tracing::info!(username = %username, "login refused");
        } else {
            // Not a name anyone can have: not logged (it could be long, or made to mislead).
            tracing::info!(
                username_chars = username.chars().count(),
                "login refused: impossible user name"
            );
        }
        return Err(AuthError::InvalidCredentials);
    };
    let st = state.clone();
    let pair = state
        .db
        .run(move |c| issue_pair(c, &st, &user, None))
        .await?;
    tracing::info!(username = %username, "user logged in");
    Ok(HttpResponse::Ok().json(pair))
}

pub async fn me(
    state: web::Data<AppState>,
    Authenticated(claims): Authenticated,
) -> Result<HttpResponse, AuthError> {
    let user = state
        .db
        .run(move |c| users::find_by_id(c, &claims.sub))
        .await?
        .ok_or(AuthError::UserNotFound)?;
    Ok(HttpResponse::Ok().json(user.public()))
}
