//! The seed's predict routes: multipart field `file` → digit and probability.

use crate::engine::LoadedModel;
use crate::engine::{CLASSES, PIXELS};
use crate::error::PredictError;
use crate::registry::{CNN, MLP, Serving};
use crate::shadow::ShadowRun;
use crate::state::AppState;
use crate::store::StoredPrediction;
use actix_multipart::Multipart;
use actix_web::{HttpResponse, web};
use anyhow::Context;
use common::jwt::{Authenticated, Claims};
use contracts::rollouts::{Arm, ServedRollout};
use futures_util::StreamExt;
use serde_json::json;
use std::sync::Arc;

/// Reads the `file` field of a multipart body, refusing more than `limit` bytes.
async fn read_file(mut form: Multipart, limit: usize) -> Result<Vec<u8>, PredictError> {
    while let Some(field) = form.next().await {
        let mut field = field.map_err(|e| match e {
            actix_multipart::MultipartError::ContentTypeMissing
            | actix_multipart::MultipartError::ContentTypeParse
            | actix_multipart::MultipartError::ContentTypeIncompatible => PredictError::MissingFile,
            other => PredictError::Multipart(other.to_string()),
        })?;
        let disposition = field.content_disposition().cloned();
        let is_file = disposition.as_ref().and_then(|d| d.get_name()) == Some("file");
        let mut bytes = Vec::new();
        while let Some(chunk) = field.next().await {
            let chunk = chunk.map_err(|e| PredictError::Multipart(e.to_string()))?;
            if is_file {
                if bytes.len() + chunk.len() > limit {
                    return Err(PredictError::TooLarge { limit });
                }
                bytes.extend_from_slice(&chunk);
            }
        }
        if is_file {
            let named = disposition
                .as_ref()
                .and_then(|d| d.get_filename())
                .is_some_and(|f| !f.is_empty());
            if !named {
                return Err(PredictError::NoFileSelected);
            }
            return Ok(bytes);
        }
    }
    Err(PredictError::MissingFile)
}

pub struct Served {
    pub id: String,
    pub model: String,
    pub model_version: i32,
    pub probabilities: Vec<f32>,
    /// The answer asks the user for a label.
    pub feedback_requested: bool,
}

impl Served {
    /// Classes by decreasing probability.
    pub fn ranked(&self) -> Vec<(usize, f32)> {
        let mut ranked: Vec<(usize, f32)> =
            self.probabilities.iter().copied().enumerate().collect();
        ranked.sort_by(|a, b| b.1.total_cmp(&a.1));
        ranked
    }
}

/// The version that answers this user: the candidate for the canary's share of users, else
/// the active one; with what the prediction keeps of the rollout.
fn choose(
    active: Arc<LoadedModel>,
    serving: Option<&Serving>,
    user_id: &str,
) -> (Arc<LoadedModel>, Option<ServedRollout>) {
    let Some(serving) = serving else {
        return (active, None);
    };
    let served = if serving.serves_candidate(user_id) {
        Arm::Candidate
    } else {
        Arm::Active
    };
    let record = ServedRollout {
        rollout_id: serving.rollout_id.clone(),
        served,
        active_version: active.version,
        candidate_version: serving.candidate.version,
        active_prediction: None,
        candidate_prediction: None,
    };
    match served {
        Arm::Candidate => (serving.candidate.clone(), Some(record)),
        Arm::Active => (active, Some(record)),
    }
}

async fn serve(
    state: &AppState,
    claims: &Claims,
    model_name: &str,
    form: Multipart,
) -> Result<Served, PredictError> {
    let bytes = read_file(form, state.max_upload_bytes).await?;
    let limits = state.preprocessing.limits;
    let grid = state
        .preprocessing
        .run(move || digits::preprocess_with_limits(&bytes, &limits))
        .await??;
    let active = state
        .models
        .get(model_name)
        .ok_or_else(|| PredictError::ModelUnavailable(model_name.to_owned()))?;
    let serving = state.models.rollout_of(model_name);
    let (model, mut rollout) = choose(active.clone(), serving.as_deref(), &claims.sub);
    let input = digits::to_input(&grid);
    let probabilities = model
        .infer(1, input.to_vec())
        .await
        .context("inference failed")?;
    debug_assert_eq!(probabilities.len(), CLASSES);
    let id = uuid::Uuid::now_v7().to_string();
    let served = Served {
        feedback_requested: rollout::assign::feedback_requested(&id, state.feedback_share),
        id,
        model: model.name.clone(),
        model_version: model.version,
        probabilities,
    };
    let (digit, probability) = served.ranked()[0];
    if let Some(r) = rollout.as_mut() {
        match r.served {
            Arm::Active => r.active_prediction = Some(digit as u8),
            Arm::Candidate => r.candidate_prediction = Some(digit as u8),
        }
    }
    let record = StoredPrediction {
        id: served.id.clone(),
        user_id: claims.sub.clone(),
        username: claims.name.clone(),
        model: served.model.clone(),
        model_version: served.model_version,
        input: crate::store::encode_input(&grid[..PIXELS]),
        probabilities: served.probabilities.clone(),
        prediction: digit as u8,
        probability,
        created_at: chrono::Utc::now(),
        feedback_requested: served.feedback_requested,
        rollout,
    };
    state.store.put(&record).await.map_err(|e| {
        tracing::warn!(error = %e, "cannot store the prediction");
        PredictError::StoreUnavailable
    })?;
    if let Some(serving) = serving
        && state.shadow.sampled(&served.id)
    {
        let other = match record.rollout.as_ref().map(|r| r.served) {
            Some(Arm::Candidate) => active,
            _ => serving.candidate.clone(),
        };
        state.shadow.submit(ShadowRun {
            prediction: record,
            model: other,
            input: input.to_vec(),
        });
    }
    tracing::info!(prediction_id = %served.id, model = %served.model, version = served.model_version, digit, "prediction served");
    Ok(served)
}

fn round4(p: f32) -> f64 {
    (f64::from(p) * 10_000.0).round() / 10_000.0
}

pub async fn v1(
    state: web::Data<AppState>,
    Authenticated(claims): Authenticated,
    form: Multipart,
) -> Result<HttpResponse, PredictError> {
    let served = serve(&state, &claims, MLP, form).await?;
    let (digit, probability) = served.ranked()[0];
    Ok(HttpResponse::Ok().json(json!({
        "prediccion": digit,
        "probabilidad": round4(probability),
        "version": "v1",
        "prediction_id": served.id,
        "model": served.model,
        "model_version": served.model_version,
        "feedback_requested": served.feedback_requested,
    })))
}

pub async fn v2(
    state: web::Data<AppState>,
    Authenticated(claims): Authenticated,
    form: Multipart,
) -> Result<HttpResponse, PredictError> {
    let served = serve(&state, &claims, CNN, form).await?;
    let ranked = served.ranked();
    let (digit, probability) = ranked[0];
    let top_k: Vec<_> = ranked
        .iter()
        .take(3)
        .map(|(d, p)| json!({"digit": d, "probability": round4(*p)}))
        .collect();
    Ok(HttpResponse::Ok().json(json!({
        "prediccion": digit,
        "probabilidad": round4(probability),
        "version": "v2",
        "mensaje": "Predicción mejorada",
        "top_k": top_k,
        "prediction_id": served.id,
        "model": served.model,
        "model_version": served.model_version,
        "feedback_requested": served.feedback_requested,
    })))
}
