//! Service-to-service endpoints, never in the gateway's route table: registering a trained
//! version (retrain-worker) and reading a served prediction (feedback-svc). Each needs a
//! service token with its scope (`common::service_auth`).

use crate::db::versions::{self, NewVersion};
use crate::engine::{BatchConfig, LoadedModel};
use crate::error::PredictError;
use crate::registry::sha256_hex;
use crate::state::AppState;
use actix_web::{HttpResponse, web};
use base64::Engine;
use base64::engine::general_purpose::STANDARD;
use serde::Deserialize;

pub fn configure(cfg: &mut web::ServiceConfig) {
    use actix_web::middleware::from_fn;
    use common::service_auth::{require, scopes};
    // Each route checks the caller's service token for its scope before reading any body.
    cfg.service(
        web::scope("/internal")
            .app_data(common::http::json_config(64 * 1024 * 1024))
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
                web::resource("/models/{name}/versions/{version}/promote")
                    .wrap(from_fn(|req, next| {
                        require(scopes::MODELS_PROMOTE, req, next)
                    }))
                    .route(web::post().to(promote)),
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

#[derive(Deserialize)]
pub struct Registration {
    /// The ONNX file, base64.
    artifact: String,
    #[serde(default)]
    metrics: serde_json::Value,
    /// The retrain job it comes from: registering twice for one job gives the same version.
    source_job_id: Option<String>,
}

async fn register(
    state: web::Data<AppState>,
    name: web::Path<String>,
    body: web::Json<Registration>,
) -> Result<HttpResponse, PredictError> {
    let name = name.into_inner();
    if !crate::registry::INITIAL_MODELS.contains(&name.as_str()) {
        return Err(PredictError::UnknownModel(name));
    }
    let body = body.into_inner();
    if let Some(job) = body.source_job_id.clone()
        && let Some(existing) = state
            .db
            .run(move |c| versions::find_by_job(c, &job))
            .await?
    {
        return Ok(HttpResponse::Ok().json(existing.to_json()));
    }
    let artifact = STANDARD
        .decode(body.artifact.as_bytes())
        .map_err(|_| PredictError::InvalidArtifact("`artifact` is not base64".into()))?;
    // A file ONNX Runtime cannot load, or that does not map 784 pixels to 10 classes, is refused.
    let probe = BatchConfig {
        max_size: 1,
        max_wait: std::time::Duration::ZERO,
        sessions: 1,
    };
    LoadedModel::load(
        state.models.environment(),
        &name,
        0,
        "",
        artifact.clone(),
        probe,
    )
    .await
    .map_err(|e| PredictError::InvalidArtifact(e.to_string()))?;
    let sha256 = sha256_hex(&artifact);
    let metrics = body.metrics.to_string();
    let job = body.source_job_id;
    let n = name.clone();
    let info = state
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
                    },
                )?;
                versions::find(c, &n, version)
            })
        })
        .await?
        .ok_or_else(|| PredictError::Internal("registered version vanished".into()))?;
    tracing::info!(model = %name, version = info.version, "candidate version registered");
    Ok(HttpResponse::Created().json(info.to_json()))
}

/// The active version of a model with its artifact: what a retrain job fine-tunes and compares
/// its candidate with.
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
    let mut body = info.to_json();
    body["artifact"] = STANDARD.encode(&artifact).into();
    Ok(HttpResponse::Ok().json(body))
}

/// Promotion decided by a retrain job's gate: the same swap as the admin route's, for a caller
/// inside the cluster.
#[derive(Deserialize, Default)]
pub struct PromoteCondition {
    /// Promote only while this version is the active one (the one the caller's gate compared
    /// against); otherwise 409. Promoting the version that is already active always succeeds.
    if_active: Option<i32>,
}

async fn promote(
    state: web::Data<AppState>,
    path: web::Path<(String, i32)>,
    condition: Option<web::Json<PromoteCondition>>,
) -> Result<HttpResponse, PredictError> {
    let (name, version) = path.into_inner();
    if let Some(expected) = condition.and_then(|c| c.into_inner().if_active) {
        let n = name.clone();
        let current = state
            .db
            .run(versions::active)
            .await?
            .into_iter()
            .find(|v| v.name == n)
            .map(|v| v.version);
        if current != Some(expected) && current != Some(version) {
            return Ok(HttpResponse::Conflict().json(serde_json::json!({
                "error": "active_version_changed",
                "msg": format!(
                    "{name} v{expected} is no longer the active version (now {}); not promoted.",
                    current.map_or_else(|| "none".to_owned(), |v| format!("v{v}"))
                ),
                "active_version": current,
            })));
        }
    }
    let info = state
        .models
        .promote(state.bus.as_ref(), &name, version)
        .await?
        .ok_or_else(|| PredictError::UnknownVersion(name.clone(), version))?;
    tracing::info!(model = %name, version, "model version promoted by a retrain job");
    Ok(HttpResponse::Ok().json(info.to_json()))
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
