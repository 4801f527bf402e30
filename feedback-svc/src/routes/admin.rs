//! The admins' views: the report and the feedback list.

use crate::db::feedback::{self as queries, Feedback, ListFilter};
use crate::db::report as aggregates;
use crate::error::FeedbackError;
use crate::report;
use crate::state::AppState;
use actix_web::{HttpResponse, web};
use base64::Engine;
use base64::engine::general_purpose::STANDARD;
use common::jwt::AdminUser;
use serde::Deserialize;
use serde_json::{Value, json};

pub const DEFAULT_PER_PAGE: i64 = 20;
pub const MAX_PER_PAGE: i64 = 100;

pub async fn report(
    state: web::Data<AppState>,
    _admin: AdminUser,
) -> Result<HttpResponse, FeedbackError> {
    let today = chrono::Utc::now().date_naive();
    let since = report::first_day(today).and_time(chrono::NaiveTime::MIN);
    let (versions, confusion, days) = state
        .db
        .run(move |c| {
            Ok::<_, FeedbackError>((
                aggregates::by_version(c)?,
                aggregates::confusion(c)?,
                aggregates::daily_since(c, since)?,
            ))
        })
        .await?;
    Ok(HttpResponse::Ok().json(report::build(&versions, &confusion, &days, today)))
}

/// The list's query string, read as text so that each bad value gets its own message.
#[derive(Debug, Default, Deserialize)]
pub struct ListQuery {
    page: Option<String>,
    per_page: Option<String>,
    correct: Option<String>,
    model: Option<String>,
    label: Option<String>,
    username: Option<String>,
    since: Option<String>,
    until: Option<String>,
    include: Option<String>,
}

fn bad(msg: impl Into<String>) -> FeedbackError {
    FeedbackError::InvalidQuery(msg.into())
}

fn number(
    raw: Option<&str>,
    name: &str,
    default: i64,
    range: std::ops::RangeInclusive<i64>,
) -> Result<i64, FeedbackError> {
    let Some(raw) = raw.filter(|s| !s.is_empty()) else {
        return Ok(default);
    };
    match raw.parse::<i64>() {
        Ok(n) if range.contains(&n) => Ok(n),
        _ => Err(bad(format!(
            "`{name}` must be an integer from {} to {}.",
            range.start(),
            range.end()
        ))),
    }
}

/// An RFC 3339 instant, or a day (`YYYY-MM-DD`, UTC) meaning its start; `end_of_day` makes a
/// day mean the start of the next one (so `until=2026-11-29` includes that day).
fn instant(
    raw: &str,
    name: &str,
    end_of_day: bool,
) -> Result<chrono::NaiveDateTime, FeedbackError> {
    if let Ok(t) = chrono::DateTime::parse_from_rfc3339(raw) {
        return Ok(t.naive_utc());
    }
    if let Ok(day) = chrono::NaiveDate::parse_from_str(raw, "%Y-%m-%d") {
        let day = if end_of_day {
            day.succ_opt().unwrap_or(day)
        } else {
            day
        };
        return Ok(day.and_time(chrono::NaiveTime::MIN));
    }
    Err(bad(format!(
        "`{name}` must be a date (YYYY-MM-DD) or an RFC 3339 time."
    )))
}

impl ListQuery {
    fn parse(&self) -> Result<(ListFilter, i64, i64), FeedbackError> {
        let page = number(self.page.as_deref(), "page", 1, 1..=1_000_000)?;
        let per_page = number(
            self.per_page.as_deref(),
            "per_page",
            DEFAULT_PER_PAGE,
            1..=MAX_PER_PAGE,
        )?;
        let text = |v: &Option<String>| v.clone().filter(|s| !s.is_empty());
        // PostgreSQL refuses a NUL and SQLite (the all-in-one mode) matches nothing: refused
        // here, so both answer alike.
        for (name, value) in [("model", &self.model), ("username", &self.username)] {
            if value.as_deref().is_some_and(|v| v.contains('\0')) {
                return Err(bad(format!("`{name}` may not contain NUL characters.")));
            }
        }
        let correct = match self.correct.as_deref() {
            None | Some("") => None,
            Some("true") => Some(true),
            Some("false") => Some(false),
            Some(_) => return Err(bad("`correct` must be true or false.")),
        };
        let label = match self.label.as_deref().filter(|s| !s.is_empty()) {
            None => None,
            Some(raw) => Some(number(Some(raw), "label", 0, 0..=9)? as i32),
        };
        let since = text(&self.since)
            .map(|s| instant(&s, "since", false))
            .transpose()?;
        let until = text(&self.until)
            .map(|s| instant(&s, "until", true))
            .transpose()?;
        let filter = ListFilter {
            correct,
            model: text(&self.model),
            label,
            username: text(&self.username),
            since,
            until,
        };
        Ok((filter, page, per_page))
    }
}

fn item(f: &Feedback) -> Value {
    let mut v = f.to_dict();
    v["user_id"] = json!(f.user_id);
    v
}

/// Newest first, filtered, one page at a time; with `include=input`, each item also carries the
/// input the model saw (base64 of the 28×28 grey grid, as in the `new_feedback` event; null
/// when the feedback is not linked to a prediction).
pub async fn list(
    state: web::Data<AppState>,
    _admin: AdminUser,
    query: web::Query<ListQuery>,
) -> Result<HttpResponse, FeedbackError> {
    let (filter, page, per_page) = query.parse()?;
    let with_input = match query.include.as_deref() {
        None | Some("") => false,
        Some("input") => true,
        Some(_) => return Err(bad("`include` may only be `input`.")),
    };
    let (items, total, inputs) = state
        .db
        .run(move |c| {
            let (items, total) = queries::list(c, &filter, page, per_page)?;
            let inputs = if with_input {
                let ids: Vec<i64> = items.iter().map(|f| f.id).collect();
                queries::inputs(c, &ids)?.into_iter().collect()
            } else {
                std::collections::HashMap::new()
            };
            Ok::<_, common::db::DbError>((items, total, inputs))
        })
        .await?;
    let pages = (total + per_page - 1) / per_page;
    let items: Vec<Value> = items
        .iter()
        .map(|f| {
            let mut v = item(f);
            if with_input {
                v["input"] = inputs.get(&f.id).map(|bytes| STANDARD.encode(bytes)).into();
            }
            v
        })
        .collect();
    Ok(HttpResponse::Ok().json(json!({
        "items": items,
        "total": total,
        "page": page,
        "per_page": per_page,
        "pages": pages,
    })))
}

pub async fn show(
    state: web::Data<AppState>,
    _admin: AdminUser,
    id: web::Path<i64>,
) -> Result<HttpResponse, FeedbackError> {
    let id = id.into_inner();
    match state.db.run(move |c| queries::find(c, id)).await? {
        Some(f) => Ok(HttpResponse::Ok().json(item(&f))),
        None => Err(FeedbackError::NotFound(format!("No feedback {id}."))),
    }
}
