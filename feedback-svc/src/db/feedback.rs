use super::Backend;
use super::schema::feedback as fb;
use common::db::{DbConnection, DbError};
use contracts::feedback::FeedbackRecord;
use diesel::prelude::*;
use serde_json::Value;

/// A feedback row to insert.
#[derive(Debug, Clone, Insertable)]
#[diesel(table_name = fb)]
pub struct NewFeedback {
    pub user_id: String,
    pub username: String,
    pub prediction: i32,
    pub correct: bool,
    pub label: Option<i32>,
    pub comment: String,
    pub prediction_id: Option<String>,
    pub model: Option<String>,
    pub model_version: Option<i32>,
    pub input: Option<Vec<u8>>,
    pub idempotency_key: Option<String>,
    pub request_hash: String,
    pub created_at: chrono::NaiveDateTime,
    /// Sent by an admin: a confirmed label.
    pub trusted: bool,
}

/// A stored feedback without its input bytes: what lists, events and reports show.
#[derive(Debug, Clone, Queryable, Selectable)]
#[diesel(table_name = fb)]
pub struct Feedback {
    pub id: i64,
    pub user_id: String,
    pub username: String,
    pub prediction: i32,
    pub correct: bool,
    pub label: Option<i32>,
    pub comment: String,
    pub prediction_id: Option<String>,
    pub model: Option<String>,
    pub model_version: Option<i32>,
    pub created_at: chrono::NaiveDateTime,
}

impl Feedback {
    pub fn stored(id: i64, new: &NewFeedback) -> Self {
        Feedback {
            id,
            user_id: new.user_id.clone(),
            username: new.username.clone(),
            prediction: new.prediction,
            correct: new.correct,
            label: new.label,
            comment: new.comment.clone(),
            prediction_id: new.prediction_id.clone(),
            model: new.model.clone(),
            model_version: new.model_version,
            created_at: new.created_at,
        }
    }

    /// The seed's `to_dict()` fields, plus what links the feedback to its prediction.
    pub fn record(&self) -> FeedbackRecord {
        FeedbackRecord {
            id: self.id,
            username: self.username.clone(),
            prediction: self.prediction,
            correct: self.correct,
            comment: self.comment.clone(),
            timestamp: super::iso8601(self.created_at),
            prediction_id: self.prediction_id.clone(),
            label: self.label,
            model: self.model.clone(),
            model_version: self.model_version,
        }
    }

    /// [`Feedback::record`] as JSON.
    pub fn to_dict(&self) -> Value {
        serde_json::to_value(self.record()).unwrap_or_default()
    }
}

/// What an earlier request with the same idempotency key stored.
#[derive(Debug, Clone, Queryable)]
pub struct IdempotentRecord {
    pub id: i64,
    pub request_hash: String,
}

pub fn insert(conn: &mut DbConnection, new: &NewFeedback) -> Result<i64, DbError> {
    Ok(diesel::insert_into(fb::table)
        .values(new)
        .returning(fb::id)
        .get_result(conn)?)
}

pub fn find_by_idempotency_key(
    conn: &mut DbConnection,
    user_id: &str,
    key: &str,
) -> Result<Option<IdempotentRecord>, DbError> {
    Ok(fb::table
        .filter(fb::user_id.eq(user_id))
        .filter(fb::idempotency_key.eq(key))
        .select((fb::id, fb::request_hash))
        .first(conn)
        .optional()?)
}

pub fn find(conn: &mut DbConnection, id: i64) -> Result<Option<Feedback>, DbError> {
    Ok(fb::table
        .find(id)
        .select(Feedback::as_select())
        .first(conn)
        .optional()?)
}

/// The admin list's filters; every one optional.
#[derive(Debug, Clone, Default)]
pub struct ListFilter {
    pub correct: Option<bool>,
    pub model: Option<String>,
    pub label: Option<i32>,
    pub username: Option<String>,
    /// Inclusive.
    pub since: Option<chrono::NaiveDateTime>,
    /// Exclusive.
    pub until: Option<chrono::NaiveDateTime>,
}

fn filtered(f: &ListFilter) -> fb::BoxedQuery<'static, Backend> {
    let mut q = fb::table.into_boxed();
    if let Some(correct) = f.correct {
        q = q.filter(fb::correct.eq(correct));
    }
    if let Some(model) = f.model.clone() {
        q = q.filter(fb::model.eq(model));
    }
    if let Some(label) = f.label {
        q = q.filter(fb::label.eq(label));
    }
    if let Some(username) = f.username.clone() {
        q = q.filter(fb::username.eq(username));
    }
    if let Some(since) = f.since {
        q = q.filter(fb::created_at.ge(since));
    }
    if let Some(until) = f.until {
        q = q.filter(fb::created_at.lt(until));
    }
    q
}

/// One page of the filtered feedback, newest first, and how many match in all.
pub fn list(
    conn: &mut DbConnection,
    filter: &ListFilter,
    page: i64,
    per_page: i64,
) -> Result<(Vec<Feedback>, i64), DbError> {
    let total: i64 = filtered(filter).count().get_result(conn)?;
    let items = filtered(filter)
        .order((fb::created_at.desc(), fb::id.desc()))
        .limit(per_page)
        .offset((page - 1).saturating_mul(per_page))
        .select(Feedback::as_select())
        .load(conn)?;
    Ok((items, total))
}

/// The inputs of the feedback `ids` that have one (base64 is the caller's business).
pub fn inputs(conn: &mut DbConnection, ids: &[i64]) -> Result<Vec<(i64, Vec<u8>)>, DbError> {
    let rows: Vec<(i64, Option<Vec<u8>>)> = fb::table
        .filter(fb::id.eq_any(ids))
        .filter(fb::input.is_not_null())
        .select((fb::id, fb::input))
        .load(conn)?;
    Ok(rows
        .into_iter()
        .filter_map(|(id, input)| Some((id, input?)))
        .collect())
}
