//! The job API (through the gateway, admins only): start a retrain, list jobs, show one.

use actix_web::http::header;
use actix_web::{HttpResponse, web};
use common::ApiError;
use common::jwt::AdminUser;
use serde::Deserialize;
use serde_json::json;

use crate::db::jobs::{self, Job};
use crate::retrain::{MAX_EPOCHS, Plan};
use crate::state::AppState;
use crate::train::Arch;

/// The model a job trains when the request names none: v2's.
pub const DEFAULT_MODEL: Arch = Arch::Cnn;
const DEFAULT_LIST_LIMIT: i64 = 50;
const MAX_LIST_LIMIT: i64 = 200;
const MAX_BODY: usize = 4 * 1024;

pub fn configure(cfg: &mut web::ServiceConfig) {
    cfg.service(
        web::resource("/admin/retrain")
            .route(web::post().to(start))
            .route(web::get().to(list)),
    )
    .route("/admin/retrain/{job_id}", web::get().to(show));
}

/// The optional body of `POST /admin/retrain`.
#[derive(Debug, Default, Deserialize)]
#[serde(deny_unknown_fields)]
pub struct RetrainRequest {
    pub model: Option<String>,
    pub epochs: Option<i64>,
    pub from_scratch: Option<bool>,
    /// MNIST training digits to use (all 60,000 by default, or the worker's configuration).
    pub mnist_sample: Option<i64>,
}

/// The body, refused with a JSON 413 past [`MAX_BODY`].
async fn read_body(mut payload: web::Payload) -> Result<Vec<u8>, ApiError> {
    use futures_util::StreamExt;
    let mut body = Vec::new();
    while let Some(chunk) = payload.next().await {
        let chunk = chunk.map_err(|e| {
            ApiError::bad_request("invalid_body", format!("The body could not be read: {e}."))
        })?;
        if body.len() + chunk.len() > MAX_BODY {
            return Err(ApiError::new(
                actix_web::http::StatusCode::PAYLOAD_TOO_LARGE,
                "payload_too_large",
                format!("The body may be at most {MAX_BODY} bytes."),
            ));
        }
        body.extend_from_slice(&chunk);
    }
    Ok(body)
}

fn parse(body: &[u8]) -> Result<RetrainRequest, ApiError> {
    if body.iter().all(u8::is_ascii_whitespace) {
        return Ok(RetrainRequest::default());
    }
    serde_json::from_slice(body).map_err(|e| {
        ApiError::bad_request(
            "invalid_body",
            format!("The body must be a JSON object with optional `model`, `epochs`, `from_scratch` and `mnist_sample`: {e}."),
        )
    })
}

async fn start(
    state: web::Data<AppState>,
    AdminUser(admin): AdminUser,
    req: actix_web::HttpRequest,
    payload: web::Payload,
) -> Result<HttpResponse, ApiError> {
    let body = read_body(payload).await?;
    let is_json = req
        .headers()
        .get(header::CONTENT_TYPE)
        .and_then(|v| v.to_str().ok())
        .and_then(|v| v.split(';').next())
        .is_some_and(|v| v.trim().eq_ignore_ascii_case("application/json"));
    if !body.iter().all(u8::is_ascii_whitespace) && !is_json {
        return Err(ApiError::new(
            actix_web::http::StatusCode::UNSUPPORTED_MEDIA_TYPE,
            "unsupported_media_type",
            "A body must be JSON, sent with `Content-Type: application/json`.",
        ));
    }
    let request = parse(&body)?;
    let arch = match request.model.as_deref() {
        None => DEFAULT_MODEL,
        Some(name) => Arch::from_model_name(name).ok_or_else(|| {
            ApiError::bad_request(
                "unknown_model",
                format!(
                    "There is no model `{name}`; retrain `mnist-cnn` (v2) or `mnist-mlp` (v1)."
                ),
            )
        })?,
    };
    let from_scratch = request.from_scratch.unwrap_or(false);
    let epochs = match request.epochs {
        None => Plan::default_epochs(arch, from_scratch) as i64,
        Some(n) if (1..=MAX_EPOCHS as i64).contains(&n) => n,
        Some(_) => {
            return Err(ApiError::unprocessable(
                "invalid_field",
                format!("`epochs` must be from 1 to {MAX_EPOCHS}."),
            ));
        }
    };
    let mnist_sample = match request.mnist_sample {
        None => None,
        Some(n) if (0..=60_000).contains(&n) => Some(n as i32),
        Some(_) => {
            return Err(ApiError::unprocessable(
                "invalid_field",
                "`mnist_sample` must be from 0 to 60000.",
            ));
        }
    };
    let now = crate::db::now();
    let job = Job {
        id: uuid::Uuid::now_v7().to_string(),
        model: arch.model_name().to_owned(),
        epochs: epochs as i32,
        from_scratch,
        mnist_sample,
        state: jobs::QUEUED.to_owned(),
        progress: json!({"stage": "queued"}).to_string(),
        metrics: None,
        reason: None,
        model_version: None,
        requested_by: admin.name.clone(),
        attempts: 0,
        worker: None,
        created_at: now,
        started_at: None,
        finished_at: None,
    };
    let row = job.clone();
    state.db.run(move |c| jobs::insert(c, &row)).await?;
    // The record first, then the queue entry: a worker never gets a job it cannot find. When the
    // queue is down the record goes too, so no job waits forever in `queued`.
    let entry = json!({
        "job_id": job.id,
        common::telemetry::TRACEPARENT: common::telemetry::traceparent(),
    });
    if let Err(e) = state.queue.enqueue(&entry).await {
        tracing::warn!(error = %e, "cannot enqueue a retrain job");
        let id = job.id.clone();
        if let Err(e) = state.db.run(move |c| jobs::delete(c, &id)).await {
            tracing::error!(error = %e, job_id = %job.id, "cannot remove a job that was never queued");
        }
        return Err(ApiError::unavailable(
            "queue_unavailable",
            "The job queue is unavailable; try again shortly.",
        ));
    }
    tracing::info!(job_id = %job.id, model = %job.model, epochs, from_scratch, by = %admin.name, "retrain job queued");
    Ok(HttpResponse::Accepted()
        .insert_header((header::LOCATION, format!("/admin/retrain/{}", job.id)))
        .json(json!({
            "msg": "Proceso de retraining iniciado",
            "job_id": job.id,
            "state": job.state,
            "job": job.to_json(),
        })))
}

#[derive(Debug, Deserialize)]
struct ListQuery {
    state: Option<String>,
    before: Option<String>,
    limit: Option<String>,
}

async fn list(
    state: web::Data<AppState>,
    _admin: AdminUser,
    query: web::Query<ListQuery>,
) -> Result<HttpResponse, ApiError> {
    let query = query.into_inner();
    let filter = match query.state.filter(|s| !s.is_empty()) {
        None => None,
        Some(s) if jobs::STATES.contains(&s.as_str()) => Some(s),
        Some(_) => {
            return Err(ApiError::bad_request(
                "invalid_query",
                format!("`state` must be one of {}.", jobs::STATES.join(", ")),
            ));
        }
    };
    let limit = match query.limit.filter(|s| !s.is_empty()) {
        None => DEFAULT_LIST_LIMIT,
        Some(raw) => raw
            .parse::<i64>()
            .ok()
            .filter(|n| (1..=MAX_LIST_LIMIT).contains(n))
            .ok_or_else(|| {
                ApiError::bad_request(
                    "invalid_query",
                    format!("`limit` must be from 1 to {MAX_LIST_LIMIT}."),
                )
            })?,
    };
    let before = match query.before.filter(|s| !s.is_empty()) {
        None => None,
        Some(id) if uuid::Uuid::parse_str(&id).is_ok() => Some(id),
        Some(_) => {
            return Err(ApiError::bad_request(
                "invalid_query",
                "`before` must be a job id (a previous answer's `next_before`).",
            ));
        }
    };
    let rows = state
        .db
        .run(move |c| jobs::list(c, filter.as_deref(), before.as_deref(), limit))
        .await?;
    let next = (rows.len() as i64 == limit)
        .then(|| rows.last().map(|j| j.id.clone()))
        .flatten();
    Ok(HttpResponse::Ok().json(json!({
        "jobs": rows.iter().map(Job::to_json).collect::<Vec<_>>(),
        "next_before": next,
    })))
}

async fn show(
    state: web::Data<AppState>,
    _admin: AdminUser,
    id: web::Path<String>,
) -> Result<HttpResponse, ApiError> {
    let id = id.into_inner();
    let key = id.clone();
    let job = state.db.run(move |c| jobs::find(c, &key)).await?;
    match job {
        Some(job) => Ok(HttpResponse::Ok().json(job.to_json())),
        None => Err(ApiError::not_found(format!(
            "There is no retrain job `{id}`."
        ))),
    }
}
