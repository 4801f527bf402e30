//! Admin bootstrap: `ADMIN_USERNAME`/`ADMIN_PASSWORD` create the admin at start, or promote an
//! existing user of that name. The configured password is set too, so that whoever registered
//! the name first cannot keep a way into an admin account.

use crate::config::AdminBootstrap;
use crate::db::{tokens, users};
use crate::error::AuthError;
use crate::state::{AppState, hash_password, verify_password};
use common::jwt::Role;

pub async fn ensure_admin(state: &AppState, admin: &AdminBootstrap) -> Result<(), AuthError> {
    let name = admin.username.clone();
    let existing = state.db.run(move |c| users::find_by_name(c, &name)).await?;
    let password = admin.password.expose().to_owned();
    match existing {
        None => {
            let hash = hash_password(password, state.bcrypt_cost).await?;
            let user = users::User::new(&admin.username, hash, Role::Admin);
            match state.db.run(move |c| users::insert(c, &user)).await {
                Ok(()) => tracing::info!(username = %admin.username, "admin created"),
                // Another replica created it at the same moment.
                Err(e) if e.is_unique_violation() => {}
                Err(e) => return Err(e.into()),
            }
        }
        Some(user) => {
            let same_password =
                verify_password(password.clone(), user.password_hash.clone()).await?;
            if user.role() == Role::Admin && same_password {
                return Ok(());
            }
            let hash = hash_password(password, state.bcrypt_cost).await?;
            let id = user.id.clone();
            state
                .db
                .run(move |c| {
                    users::set_role_and_password(c, &id, Role::Admin, &hash)?;
                    // Sessions opened with the old password end.
                    tokens::revoke_all_of_user(c, &id)
                })
                .await?;
            tracing::info!(username = %admin.username, "existing user made admin with the configured password");
        }
    }
    Ok(())
}
