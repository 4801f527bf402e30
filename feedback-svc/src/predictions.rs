//! predict-svc's internal API: the prediction a feedback is about, with the input it was made on.

use crate::error::FeedbackError;
use anyhow::Context;
use base64::Engine;
use base64::engine::general_purpose::STANDARD;
use common::service_auth::{ServiceCallError, ServiceTokens};
use std::sync::Arc;
use std::time::Duration;

/// Bytes of the 28×28 grey grid a model sees.
pub const INPUT_LEN: usize = 28 * 28;

/// A served prediction, as predict-svc keeps it.
pub use contracts::predictions::ServedPrediction;

/// The input grid of a served prediction.
pub fn input_bytes(prediction: &ServedPrediction) -> Result<Vec<u8>, FeedbackError> {
    let bytes = STANDARD
        .decode(prediction.input.as_bytes())
        .map_err(|e| FeedbackError::PredictInvalid(format!("input is not base64: {e}")))?;
    if bytes.len() != INPUT_LEN {
        return Err(FeedbackError::PredictInvalid(format!(
            "input has {} bytes, not {INPUT_LEN}",
            bytes.len()
        )));
    }
    Ok(bytes)
}

#[derive(Clone)]
pub struct PredictClient {
    base_url: String,
    client: reqwest::Client,
    /// This service's tokens for predict-svc's `/internal/` routes (scope `predictions:read`).
    tokens: Arc<ServiceTokens>,
}

impl PredictClient {
    pub fn new(base_url: &str, tokens: Arc<ServiceTokens>) -> Result<Self, FeedbackError> {
        // Short: a feedback request waits on this call.
        let client = reqwest::Client::builder()
            .connect_timeout(Duration::from_secs(1))
            .timeout(Duration::from_secs(3))
            .build()
            .context("cannot build the HTTP client for predict-svc")?;
        Ok(PredictClient {
            base_url: base_url.trim_end_matches('/').to_owned(),
            client,
            tokens,
        })
    }

    /// The prediction with this id, `None` when predict-svc does not know it.
    /// `id` must already be a plain token (letters, digits, `-`, `_`): it goes into the path.
    pub async fn get(&self, id: &str) -> Result<Option<ServedPrediction>, FeedbackError> {
        let url = format!("{}/internal/predictions/{id}", self.base_url);
        let resp = self.tokens.send(self.client.get(&url)).await.map_err(|e| {
            match &e {
                ServiceCallError::Http(e) => {
                    tracing::warn!(error = %e, "predict-svc unreachable")
                }
                ServiceCallError::Token(e) => {
                    tracing::error!(error = %e, "no service token for predict-svc")
                }
            }
            FeedbackError::PredictUnavailable
        })?;
        let status = resp.status();
        if status == reqwest::StatusCode::NOT_FOUND {
            return Ok(None);
        }
        if status.is_server_error() {
            tracing::warn!(%status, "predict-svc failed");
            return Err(FeedbackError::PredictUnavailable);
        }
        if !status.is_success() {
            return Err(FeedbackError::PredictInvalid(format!(
                "GET {url} answered {status}"
            )));
        }
        let prediction: ServedPrediction = resp.json().await.map_err(|e| {
            if e.is_timeout() {
                FeedbackError::PredictUnavailable
            } else {
                FeedbackError::PredictInvalid(format!("prediction body: {e}"))
            }
        })?;
        if prediction.id != id {
            return Err(FeedbackError::PredictInvalid(format!(
                "asked for prediction {id}, got {}",
                prediction.id
            )));
        }
        Ok(Some(prediction))
    }
}
