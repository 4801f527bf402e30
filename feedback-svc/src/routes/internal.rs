//! Service-to-service endpoints, never in the gateway's route table.

use crate::db::labels as queries;
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
    #[serde(default)]
    as_of: Option<String>,
}

/// Labelled feedback with its input, for training, less the users an admin excluded: `after` is
/// the last id already read, `next_cursor` what to pass next; `as_of` the snapshot the first
/// page took (see [`crate::db::labels`]), so that the pages of one reader are one consistent set.
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
    let as_of = query.as_of.clone().filter(|s| !s.is_empty());
    let (as_of, rows) = state
        .db
        .run(move |c| {
            let as_of = match as_of {
                Some(given) => given,
                None => queries::take_snapshot(c)?,
            };
            let rows = queries::labelled_page(c, &as_of, after, limit)?;
            Ok::<_, common::db::DbError>((as_of, rows))
        })
        .await?;
    let rows = rows.ok_or_else(|| {
        FeedbackError::InvalidQuery("`as_of` must be the snapshot a page answered.".into())
    })?;
    let next_cursor = rows.last().map_or(after, |r| r.id);
    let has_more = rows.len() as i64 == limit;
    let items = rows
        .iter()
        .map(|r| LabelledItem {
            id: r.id,
            user_id: r.user_id.clone(),
            trusted: r.trusted,
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
        as_of,
    }))
}
