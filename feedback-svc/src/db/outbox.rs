//! The transactional outbox: events written with the change they announce, then claimed,
//! published and marked by a relay.
//!
//! A claim is a lease (`claimed_until`, `claim_token`) taken by one conditional UPDATE, so two
//! relays never hold the same row; on PostgreSQL the rows are picked with `FOR UPDATE SKIP
//! LOCKED`, so concurrent relays take different rows instead of waiting for each other. SQLite
//! serialises writers, which makes the same statement atomic there.

use super::schema::outbox;
use common::bus::Envelope;
use common::db::{DbConnection, DbError};
use diesel::prelude::*;
use diesel::sql_types::{BigInt, Text, Timestamp};

#[derive(Debug, Clone, Insertable)]
#[diesel(table_name = outbox)]
struct NewOutboxEvent<'a> {
    event_id: String,
    event_type: &'a str,
    payload: String,
    created_at: chrono::NaiveDateTime,
}

/// Adds an event to the outbox; call it inside the transaction that makes the change.
pub fn insert(conn: &mut DbConnection, event: &Envelope) -> Result<(), DbError> {
    let payload = serde_json::to_string(event)
        .map_err(|e| DbError::Task(format!("cannot encode event: {e}")))?;
    diesel::insert_into(outbox::table)
        .values(NewOutboxEvent {
            event_id: event.id.to_string(),
            event_type: &event.kind,
            payload,
            created_at: super::now(),
        })
        .execute(conn)?;
    Ok(())
}

/// An event a relay holds the lease of.
#[derive(Debug, Clone, QueryableByName)]
pub struct ClaimedEvent {
    #[diesel(sql_type = BigInt)]
    pub id: i64,
    #[diesel(sql_type = Text)]
    pub event_id: String,
    #[diesel(sql_type = Text)]
    pub payload: String,
}

const CLAIM_POSTGRES: &str = "
    UPDATE feedback.outbox
       SET claimed_until = $1, claim_token = $2, attempts = attempts + 1
     WHERE id IN (SELECT id FROM feedback.outbox
                   WHERE published_at IS NULL
                     AND (claimed_until IS NULL OR claimed_until < $3)
                   ORDER BY id
                   LIMIT $4
                   FOR UPDATE SKIP LOCKED)
    RETURNING id, event_id, payload";

const CLAIM_SQLITE: &str = "
    UPDATE feedback.outbox
       SET claimed_until = ?, claim_token = ?, attempts = attempts + 1
     WHERE id IN (SELECT id FROM feedback.outbox
                   WHERE published_at IS NULL
                     AND (claimed_until IS NULL OR claimed_until < ?)
                   ORDER BY id
                   LIMIT ?)
    RETURNING id, event_id, payload";

/// Takes the lease of up to `limit` pending events whose lease (if any) ran out before `now`;
/// returns them oldest first.
pub fn claim(
    conn: &mut DbConnection,
    token: &str,
    now: chrono::NaiveDateTime,
    lease_until: chrono::NaiveDateTime,
    limit: i64,
) -> Result<Vec<ClaimedEvent>, DbError> {
    let mut events = match conn {
        DbConnection::Pg(c) => diesel::sql_query(CLAIM_POSTGRES)
            .bind::<Timestamp, _>(lease_until)
            .bind::<Text, _>(token)
            .bind::<Timestamp, _>(now)
            .bind::<BigInt, _>(limit)
            .load::<ClaimedEvent>(c)?,
        DbConnection::Sqlite(c) => diesel::sql_query(CLAIM_SQLITE)
            .bind::<Timestamp, _>(lease_until)
            .bind::<Text, _>(token)
            .bind::<Timestamp, _>(now)
            .bind::<BigInt, _>(limit)
            .load::<ClaimedEvent>(c)?,
    };
    events.sort_by_key(|e| e.id);
    Ok(events)
}

/// Marks events as published, when this relay still holds their lease.
pub fn mark_published(
    conn: &mut DbConnection,
    ids: &[i64],
    token: &str,
    at: chrono::NaiveDateTime,
) -> Result<usize, DbError> {
    Ok(diesel::update(
        outbox::table
            .filter(outbox::id.eq_any(ids))
            .filter(outbox::claim_token.eq(token)),
    )
    .set((
        outbox::published_at.eq(at),
        outbox::claimed_until.eq(None::<chrono::NaiveDateTime>),
        outbox::last_error.eq(None::<String>),
    ))
    .execute(conn)?)
}

/// Gives up the lease of events that could not be published, so the next attempt (by any
/// relay) takes them at once.
pub fn release(
    conn: &mut DbConnection,
    ids: &[i64],
    token: &str,
    error: &str,
) -> Result<usize, DbError> {
    Ok(diesel::update(
        outbox::table
            .filter(outbox::id.eq_any(ids))
            .filter(outbox::claim_token.eq(token))
            .filter(outbox::published_at.is_null()),
    )
    .set((
        outbox::claimed_until.eq(None::<chrono::NaiveDateTime>),
        outbox::claim_token.eq(None::<String>),
        outbox::last_error.eq(error),
    ))
    .execute(conn)?)
}

/// Deletes events published before `before`; returns how many.
pub fn purge_published(
    conn: &mut DbConnection,
    before: chrono::NaiveDateTime,
) -> Result<usize, DbError> {
    Ok(diesel::delete(outbox::table.filter(outbox::published_at.lt(before))).execute(conn)?)
}

/// The state of one outbox row (for operators and tests).
#[derive(Debug, Clone, Queryable)]
pub struct OutboxState {
    pub id: i64,
    pub event_id: String,
    pub payload: String,
    pub attempts: i32,
    pub claimed_until: Option<chrono::NaiveDateTime>,
    pub published_at: Option<chrono::NaiveDateTime>,
    pub last_error: Option<String>,
}

pub fn all(conn: &mut DbConnection) -> Result<Vec<OutboxState>, DbError> {
    Ok(outbox::table
        .order(outbox::id.asc())
        .select((
            outbox::id,
            outbox::event_id,
            outbox::payload,
            outbox::attempts,
            outbox::claimed_until,
            outbox::published_at,
            outbox::last_error,
        ))
        .load(conn)?)
}

pub fn pending_count(conn: &mut DbConnection) -> Result<i64, DbError> {
    Ok(outbox::table
        .filter(outbox::published_at.is_null())
        .count()
        .get_result(conn)?)
}
