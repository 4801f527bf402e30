use super::schema::refresh_tokens as rt;
use common::db::{DbConnection, DbError};
use diesel::prelude::*;

#[derive(Debug, Clone, Queryable, Selectable, Insertable)]
#[diesel(table_name = rt)]
pub struct RefreshToken {
    pub id: String,
    pub family_id: String,
    pub user_id: String,
    pub token_hash: String,
    pub expires_at: chrono::NaiveDateTime,
    pub used_at: Option<chrono::NaiveDateTime>,
    pub revoked_at: Option<chrono::NaiveDateTime>,
    pub created_at: chrono::NaiveDateTime,
}

pub fn insert(conn: &mut DbConnection, token: &RefreshToken) -> Result<(), DbError> {
    diesel::insert_into(rt::table).values(token).execute(conn)?;
    Ok(())
}

pub fn find_by_hash(conn: &mut DbConnection, hash: &str) -> Result<Option<RefreshToken>, DbError> {
    Ok(rt::table
        .filter(rt::token_hash.eq(hash))
        .select(RefreshToken::as_select())
        .first(conn)
        .optional()?)
}

/// Marks the token spent; false when it was already spent or revoked (a concurrent use).
pub fn mark_used(conn: &mut DbConnection, id: &str) -> Result<bool, DbError> {
    let n = diesel::update(
        rt::table
            .find(id)
            .filter(rt::used_at.is_null())
            .filter(rt::revoked_at.is_null()),
    )
    .set(rt::used_at.eq(Some(super::now())))
    .execute(conn)?;
    Ok(n == 1)
}

pub fn revoke_family(conn: &mut DbConnection, family_id: &str) -> Result<usize, DbError> {
    Ok(diesel::update(
        rt::table
            .filter(rt::family_id.eq(family_id))
            .filter(rt::revoked_at.is_null()),
    )
    .set(rt::revoked_at.eq(Some(super::now())))
    .execute(conn)?)
}

pub fn revoke_all_of_user(conn: &mut DbConnection, user_id: &str) -> Result<usize, DbError> {
    Ok(diesel::update(
        rt::table
            .filter(rt::user_id.eq(user_id))
            .filter(rt::revoked_at.is_null()),
    )
    .set(rt::revoked_at.eq(Some(super::now())))
    .execute(conn)?)
}

/// The family of a refresh token, when that token is the given user's.
pub fn family_of_user(
    conn: &mut DbConnection,
    hash: &str,
    user_id: &str,
) -> Result<Option<String>, DbError> {
    Ok(rt::table
        .filter(rt::token_hash.eq(hash))
        .filter(rt::user_id.eq(user_id))
        .select(rt::family_id)
        .first(conn)
        .optional()?)
}
