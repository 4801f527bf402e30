//! `/admin/retrain`: start a retrain, list jobs, show one.

use actix_web::http::header;
use actix_web::{HttpRequest, HttpResponse, web};
use common::ApiError;
use common::jwt::AdminUser;
use serde::Deserialize;
use serde_json::json;

use crate::db::jobs::{self, Job};
use crate::error::RetrainError;
use crate::retrain::{MAX_EPOCHS, Plan};
use crate::state::AppState;
use crate::submission::{self, JobRequest};
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

fn is_blank(body: &[u8]) -> bool {
    body.iter().all(u8::is_ascii_whitespace)
}

/// No body (or only whitespace) means the defaults; anything else must be JSON.
fn parse(req: &HttpRequest, body: &[u8]) -> Result<RetrainRequest, RetrainError> {
    if is_blank(body) {
        return Ok(RetrainRequest::default());
    }
    if !common::http::has_media_type(req, "application/json") {
        return Err(RetrainError::NotJson);
    }
    serde_json::from_slice(body).map_err(|e| {
        RetrainError::InvalidBody(format!(
            "The body must be a JSON object with optional `model`, `epochs`, `from_scratch` and `mnist_sample`: {e}."
        ))
    })
}

/// The request checked, with the defaults applied.
fn validate(request: RetrainRequest, requested_by: String) -> Result<JobRequest, RetrainError> {
    let arch = match request.model.as_deref() {
        None => DEFAULT_MODEL,
        Some(name) => Arch::from_model_name(name)
            .ok_or_else(|| RetrainError::UnknownModel(name.to_owned()))?,
    };
    let from_scratch = request.from_scratch.unwrap_or(false);
    let epochs = match request.epochs {
        None => Plan::default_epochs(arch, from_scratch) as i32,
        Some(n) if (1..=MAX_EPOCHS as i64).contains(&n) => n as i32,
        Some(_) => {
            return Err(RetrainError::InvalidField(format!(
                "`epochs` must be from 1 to {MAX_EPOCHS}."
            )));
        }
    };
    let mnist_sample = match request.mnist_sample {
        None => None,
        Some(n) if (0..=60_000).contains(&n) => Some(n as i32),
        Some(_) => {
            return Err(RetrainError::InvalidField(
                "`mnist_sample` must be from 0 to 60000.".into(),
            ));
        }
    };
    Ok(JobRequest {
        arch,
        epochs,
        from_scratch,
        mnist_sample,
        requested_by,
    })
}

async fn start(
    state: web::Data<AppState>,
    AdminUser(admin): AdminUser,
    req: HttpRequest,
    payload: web::Payload,
) -> Result<HttpResponse, ApiError> {
    let body = common::http::read_body(&req, payload, MAX_BODY).await?;
    let request = validate(parse(&req, &body)?, admin.name.clone())?;
    let job = submission::submit(&state.db, state.queue.as_ref(), request).await?;
    tracing::info!(job_id = %job.id, model = %job.model, epochs = job.epochs, from_scratch = job.from_scratch, by = %admin.name, "retrain job queued");
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

impl ListQuery {
    /// The state filter, the job id to list from, and how many.
    fn checked(self) -> Result<(Option<String>, Option<String>, i64), RetrainError> {
        let invalid = |msg: String| RetrainError::InvalidQuery(msg);
        let state = match self.state.filter(|s| !s.is_empty()) {
            None => None,
            Some(s) if jobs::STATES.contains(&s.as_str()) => Some(s),
            Some(_) => {
                let states = jobs::STATES.join(", ");
                return Err(invalid(format!("`state` must be one of {states}.")));
            }
        };
        let limit = match self.limit.filter(|s| !s.is_empty()) {
            None => DEFAULT_LIST_LIMIT,
            Some(raw) => raw
                .parse::<i64>()
                .ok()
                .filter(|n| (1..=MAX_LIST_LIMIT).contains(n))
                .ok_or_else(|| invalid(format!("`limit` must be from 1 to {MAX_LIST_LIMIT}.")))?,
        };
        let before = match self.before.filter(|s| !s.is_empty()) {
            None => None,
            Some(id) if uuid::Uuid::parse_str(&id).is_ok() => Some(id),
            Some(_) => {
                return Err(invalid(
                    "`before` must be a job id (a previous answer's `next_before`).".into(),
                ));
            }
        };
        Ok((state, before, limit))
    }
}

async fn list(
    state: web::Data<AppState>,
    _admin: AdminUser,
    query: web::Query<ListQuery>,
) -> Result<HttpResponse, ApiError> {
    let query = query.into_inner();
    let (filter, before, limit) = query.checked()?;
    let rows = state
        .db
        .run(move |c| jobs::list(c, filter.as_deref(), before.as_deref(), limit))
        .await
        .map_err(RetrainError::from)?;
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
    let job = state
        .db
        .run(move |c| jobs::find(c, &key))
        .await
        .map_err(RetrainError::from)?;
    match job {
        Some(job) => Ok(HttpResponse::Ok().json(job.to_json())),
        None => Err(RetrainError::UnknownJob(id).into()),
    }
}
