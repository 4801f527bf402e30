//! Service-to-service endpoints, never in the gateway's route table.

use crate::db::feedback as queries;
use crate::error::FeedbackError;
use crate::state::AppState;
use actix_web::{HttpResponse, web};
use base64::Engine;
use base64::engine::general_purpose::STANDARD;
use contracts::feedback::{LabelledItem, LabelledPage};
use serde::Deserialize;

pub const DEFAULT_LIMIT: i64 = 100;
pub const MAX_LIMIT: i64 = 1_000;

/// `contracts::feedback::LabelledQuery` as sent, before its numbers are checked (each gets
/// its own sentence when it is not one).
#[derive(Debug, Deserialize)]
pub struct LabelledQuery {
    #[serde(default)]
    after: Option<String>,
    #[serde(default)]
    limit: Option<String>,
}

/// Labelled feedback with its input, for training: `after` is the last id already read;
/// `next_cursor` is what to pass next (rows committed late with a smaller id can be missed,
/// which costs a retrain one example).
pub async fn labelled(
    state: web::Data<AppState>,
    query: web::Query<LabelledQuery>,
) -> Result<HttpResponse, FeedbackError> {
    let after =
        match query.after.as_deref().filter(|s| !s.is_empty()) {
            None => 0,
            Some(raw) => raw.parse::<i64>().ok().filter(|n| *n >= 0).ok_or_else(|| {
                FeedbackError::InvalidQuery("`after` must be a feedback id.".into())
            })?,
        };
    let limit = match query.limit.as_deref().filter(|s| !s.is_empty()) {
        None => DEFAULT_LIMIT,
        Some(raw) => raw
            .parse::<i64>()
            .ok()
            .filter(|n| (1..=MAX_LIMIT).contains(n))
            .ok_or_else(|| {
                FeedbackError::InvalidQuery(format!("`limit` must be from 1 to {MAX_LIMIT}."))
            })?,
    };
    let rows = state
        .db
        .run(move |c| queries::labelled_after(c, after, limit))
        .await?;
    let next_cursor = rows.last().map_or(after, |r| r.id);
    let has_more = rows.len() as i64 == limit;
    let items = rows
        .iter()
        .map(|r| LabelledItem {
            id: r.id,
            label: r.label,
            model: r.model.clone(),
            model_version: r.model_version,
            input: r.input.as_deref().map(|b| STANDARD.encode(b)),
            created_at: crate::db::iso8601(r.created_at),
        })
        .collect();
    Ok(HttpResponse::Ok().json(LabelledPage {
        items,
        next_cursor,
        has_more,
    }))
}
