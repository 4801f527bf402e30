//! `GET /internal/predictions/{id}` on predict-svc (scope `predictions:read`, caller
//! feedback-svc): a served prediction, as predict-svc keeps it for feedback.

use chrono::{DateTime, Utc};
use serde::{Deserialize, Serialize};

/// One served prediction: its preprocessed input, output, model version and user.
#[derive(Debug, Clone, PartialEq, Serialize, Deserialize)]
pub struct ServedPrediction {
    pub id: String,
    pub user_id: String,
    pub username: String,
    pub model: String,
    pub model_version: i32,
    /// The 28×28 grey input the model saw (MNIST-style, row-major), base64.
    pub input: String,
    pub probabilities: Vec<f32>,
    pub prediction: u8,
    pub probability: f32,
    pub created_at: DateTime<Utc>,
    /// The answer asked the user for a label (`"feedback_requested": true`), chosen at random.
    #[serde(default)]
    pub feedback_requested: bool,
    /// The rollout open when it was served, and each version's digit.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub rollout: Option<crate::rollouts::ServedRollout>,
}
