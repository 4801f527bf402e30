use super::schema::users;
use common::db::{DbConnection, DbError};
use common::jwt::Role;
use diesel::prelude::*;

#[derive(Debug, Clone, Queryable, Selectable, Insertable)]
#[diesel(table_name = users)]
pub struct User {
    pub id: String,
    pub username: String,
    pub username_key: String,
    pub password_hash: String,
    pub role: String,
    pub created_at: chrono::NaiveDateTime,
}

impl User {
    pub fn new(username: &str, password_hash: String, role: Role) -> Self {
        User {
            id: uuid::Uuid::now_v7().to_string(),
            username: username.to_owned(),
            username_key: key_of(username),
            password_hash,
            role: role.as_str().to_owned(),
            created_at: super::now(),
        }
    }

    pub fn role(&self) -> Role {
        self.role.parse().unwrap_or(Role::User)
    }

    /// The public form: never the hash.
    pub fn public(&self) -> serde_json::Value {
        serde_json::json!({
            "id": self.id,
            "username": self.username,
            "role": self.role,
            "created_at": self.created_at.and_utc().to_rfc3339(),
        })
    }
}

/// The case-insensitive identity of a name.
pub fn key_of(username: &str) -> String {
    username.to_ascii_lowercase()
}

pub fn insert(conn: &mut DbConnection, user: &User) -> Result<(), DbError> {
    diesel::insert_into(users::table)
        .values(user)
        .execute(conn)?;
    Ok(())
}

pub fn find_by_name(conn: &mut DbConnection, username: &str) -> Result<Option<User>, DbError> {
    Ok(users::table
        .filter(users::username_key.eq(key_of(username)))
        .select(User::as_select())
        .first(conn)
        .optional()?)
}

pub fn find_by_id(conn: &mut DbConnection, id: &str) -> Result<Option<User>, DbError> {
    Ok(users::table
        .find(id)
        .select(User::as_select())
        .first(conn)
        .optional()?)
}

pub fn set_role_and_password(
    conn: &mut DbConnection,
    id: &str,
    role: Role,
    password_hash: &str,
) -> Result<(), DbError> {
    diesel::update(users::table.find(id))
        .set((
            users::role.eq(role.as_str()),
            users::password_hash.eq(password_hash),
        ))
        .execute(conn)?;
    Ok(())
}
