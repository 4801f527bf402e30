//! Service-to-service endpoints, never in the gateway's route table: registering a trained
//! version and starting its rollout (retrain-worker), and reading a served prediction
//! (feedback-svc). Each needs a
//! service token with its scope (`common::service_auth`).

use crate::controller::ControllerError;
use crate::db::versions::{self, NewVersion, VersionInfo};
use crate::engine::{BatchConfig, LoadedModel};
use crate::error::PredictError;
use crate::registry::sha256_hex;
use crate::state::AppState;
use actix_web::{HttpRequest, HttpResponse, web};
use common::{ApiError, ErrorCode};
use contracts::models::{
    ARTIFACT_CONTENT_TYPE, ActiveVersionChanged, ArtifactInfo, MAX_ARTIFACT_BYTES,
    MAX_METRICS_BYTES, ModelVersion, Registration,
};
use contracts::rollouts::StartRollout;

pub fn configure(cfg: &mut web::ServiceConfig) {
    use actix_web::middleware::from_fn;
    use common::service_auth::{require, scopes};
    // Each route checks the caller's service token for its scope before reading any body.
    cfg.service(
        web::scope("/internal")
            .service(
                web::resource("/models/{name}/versions")
                    .wrap(from_fn(|req, next| {
                        require(scopes::MODELS_REGISTER, req, next)
                    }))
                    .route(web::post().to(register)),
            )
            .service(
                web::resource("/models/{name}/active")
                    .wrap(from_fn(|req, next| require(scopes::MODELS_READ, req, next)))
                    .route(web::get().to(active)),
            )
            .service(
                web::resource("/models/{name}/rollouts")
                    .wrap(from_fn(|req, next| {
                        require(scopes::MODELS_PROMOTE, req, next)
                    }))
                    .route(web::post().to(start_rollout)),
            )
            .service(
                web::resource("/predictions/{id}")
                    .wrap(from_fn(|req, next| {
                        require(scopes::PREDICTIONS_READ, req, next)
                    }))
                    .route(web::get().to(prediction)),
            ),
    );
}

/// The body: the ONNX file, as raw bytes, at most [`MAX_ARTIFACT_BYTES`].
async fn read_artifact(req: &HttpRequest, payload: web::Payload) -> Result<Vec<u8>, ApiError> {
    if !common::http::has_media_type(req, ARTIFACT_CONTENT_TYPE) {
        return Err(ApiError::new(
            ErrorCode::UnsupportedMediaType,
            format!(
                "The body must be the ONNX file, sent with `Content-Type: {ARTIFACT_CONTENT_TYPE}`."
            ),
        ));
    }
    common::http::read_body(req, payload, MAX_ARTIFACT_BYTES).await
}

/// The registration's `metrics`: a JSON object (null when none is sent).
fn parse_metrics(metrics: Option<&str>) -> Result<serde_json::Value, ApiError> {
    let Some(text) = metrics else {
        return Ok(serde_json::Value::Null);
    };
    let invalid = |why: &str| ApiError::new(ErrorCode::InvalidQuery, format!("`metrics` {why}."));
    if text.len() > MAX_METRICS_BYTES {
        return Err(invalid(&format!(
            "may be at most {MAX_METRICS_BYTES} bytes"
        )));
    }
    match serde_json::from_str::<serde_json::Value>(text) {
        Ok(value) if value.is_object() => Ok(value),
        _ => Err(invalid("must be a JSON object")),
    }
}

/// Registers the ONNX file in the body as a candidate: 201, or 200 with the version the same
/// job registered before.
async fn register(
    state: web::Data<AppState>,
    name: web::Path<String>,
    query: web::Query<Registration>,
    req: HttpRequest,
    payload: web::Payload,
) -> Result<HttpResponse, actix_web::Error> {
    let name = name.into_inner();
    if !crate::registry::INITIAL_MODELS.contains(&name.as_str()) {
        return Err(PredictError::UnknownModel(name).into());
    }
    let Registration {
        source_job_id,
        metrics,
    } = query.into_inner();
    let metrics = parse_metrics(metrics.as_deref())?;
    if let Some(job) = source_job_id.clone()
        && let Some(existing) = state
            .db
            .run(move |c| versions::find_by_job(c, &job))
            .await
            .map_err(PredictError::from)?
    {
        return Ok(HttpResponse::Ok().json(model_version(&existing)));
    }
    let artifact = read_artifact(&req, payload).await?;
    probe(&state, &name, artifact.clone()).await?;
    let info =
        insert_candidate(&state, &name, artifact, metrics.to_string(), source_job_id).await?;
    tracing::info!(model = %name, version = info.version, "candidate version registered");
    Ok(HttpResponse::Created().json(model_version(&info)))
}

/// A file ONNX Runtime cannot load, or that does not map 784 pixels to 10 classes, is refused.
async fn probe(state: &AppState, name: &str, artifact: Vec<u8>) -> Result<(), PredictError> {
    let probe = BatchConfig {
        max_size: 1,
        max_wait: std::time::Duration::ZERO,
        sessions: 1,
    };
    LoadedModel::load(state.models.environment(), name, 0, "", artifact, probe)
        .await
        .map(drop)
        .map_err(|e| PredictError::InvalidArtifact(e.to_string()))
}

/// Stores the next version of `name` as a candidate.
async fn insert_candidate(
    state: &AppState,
    name: &str,
    artifact: Vec<u8>,
    metrics: String,
    job: Option<String>,
) -> Result<VersionInfo, PredictError> {
    let sha256 = sha256_hex(&artifact);
    let n = name.to_owned();
    state
        .db
        .run(move |c| {
            use diesel::Connection;
            c.transaction::<_, common::db::DbError, _>(|c| {
                let version = versions::next_version(c, &n)?;
                versions::insert(
                    c,
                    &NewVersion {
                        id: uuid::Uuid::now_v7().to_string(),
                        name: n.clone(),
                        version,
                        artifact,
                        sha256,
                        metrics,
                        status: versions::CANDIDATE.to_owned(),
                        source: "retrain".to_owned(),
                        source_job_id: job,
                        created_at: crate::db::now(),
                        promoted_at: None,
                        traffic_share: 0.0,
                    },
                )?;
                versions::find(c, &n, version)
            })
        })
        .await?
        .ok_or_else(|| PredictError::Internal(anyhow::anyhow!("registered version vanished")))
}

/// A registry row as the internal routes answer it.
fn model_version(info: &VersionInfo) -> ModelVersion {
    ModelVersion {
        name: info.name.clone(),
        version: info.version,
        sha256: info.sha256.clone(),
        metrics: serde_json::from_str(&info.metrics).unwrap_or_default(),
        status: info.status.clone(),
        source: info.source.clone(),
        source_job_id: info.source_job_id.clone(),
        created_at: info.created_at.and_utc().to_rfc3339(),
        promoted_at: info.promoted_at.map(|t| t.and_utc().to_rfc3339()),
    }
}

/// The active version's ONNX file, with its version and digest in headers: what a retrain job
/// fine-tunes and compares its candidate with.
async fn active(
    state: web::Data<AppState>,
    name: web::Path<String>,
) -> Result<HttpResponse, PredictError> {
    let name = name.into_inner();
    let n = name.clone();
    let found = state
        .db
        .run(move |c| {
            let Some(info) = versions::active(c)?.into_iter().find(|v| v.name == n) else {
                return Ok::<_, common::db::DbError>(None);
            };
            let artifact = versions::artifact(c, &info.name, info.version)?;
            Ok(artifact.map(|bytes| (info, bytes)))
        })
        .await?;
    let (info, artifact) = found.ok_or(PredictError::UnknownModel(name))?;
    let mut response = HttpResponse::Ok();
    response.content_type(ARTIFACT_CONTENT_TYPE);
    let meta = ArtifactInfo {
        version: info.version,
        sha256: info.sha256,
    };
    for header in meta.headers() {
        response.insert_header(header);
    }
    Ok(response.body(artifact))
}

/// A candidate that passed a retrain job's offline gate begins its rollout (in shadow): no
/// retrain promotes by itself. 409 `active_version_changed` when the version the gate compared
/// with is no longer the active one.
async fn start_rollout(
    state: web::Data<AppState>,
    name: web::Path<String>,
    body: web::Json<StartRollout>,
) -> Result<HttpResponse, PredictError> {
    let name = name.into_inner();
    match state.controller.start(&name, body.into_inner()).await {
        Ok(record) => {
            tracing::info!(model = %name, version = record.candidate_version, rollout = %record.id, "rollout started");
            Ok(HttpResponse::Created().json(record))
        }
        Err(ControllerError::ActiveChanged {
            model,
            expected,
            active,
        }) => {
            let code = ErrorCode::ActiveVersionChanged;
            Ok(HttpResponse::build(code.status()).json(ActiveVersionChanged {
                error: code.as_str().to_owned(),
                msg: format!(
                    "{model} v{expected} is no longer the active version (now {}); no rollout started.",
                    active.map_or_else(|| "none".to_owned(), |v| format!("v{v}"))
                ),
                active_version: active,
            }))
        }
        Err(e) => Err(e.into()),
    }
}

async fn prediction(
    state: web::Data<AppState>,
    id: web::Path<String>,
) -> Result<HttpResponse, PredictError> {
    match state.store.get(&id).await {
        Ok(Some(p)) => Ok(HttpResponse::Ok().json(p)),
        Ok(None) => Err(PredictError::UnknownPrediction(id.into_inner())),
        Err(e) => {
            tracing::warn!(error = %e, "prediction store unavailable");
            Err(PredictError::StoreUnavailable)
        }
    }
}
