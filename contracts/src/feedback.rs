//! feedback-svc's stored feedback as others see it, and `GET /internal/feedback/labelled`
//! (scope `feedback:read`, caller retrain-worker).

use serde::{Deserialize, Serialize};

/// A stored feedback: the seed's `to_dict()` fields plus its link to a prediction.
#[derive(Debug, Clone, PartialEq, Serialize, Deserialize)]
pub struct FeedbackRecord {
    pub id: i64,
    pub username: String,
    pub prediction: i32,
    pub correct: bool,
    pub comment: String,
    /// Creation time, UTC, microseconds (`2026-11-29T10:15:30.123456Z`).
    pub timestamp: String,
    pub prediction_id: Option<String>,
    /// The true digit (`prediction` when correct); null when unknown.
    pub label: Option<i32>,
    pub model: Option<String>,
    pub model_version: Option<i32>,
}

/// The query of `GET /internal/feedback/labelled`: the feedback after id `after` (0: from the
/// start), at most `limit` (1 to 1,000; 100 by default).
#[derive(Debug, Clone, Default, PartialEq, Serialize, Deserialize)]
pub struct LabelledQuery {
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub after: Option<i64>,
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub limit: Option<i64>,
}

/// One page of labelled feedback, oldest first. Pass `next_cursor` as the next `after`.
#[derive(Debug, Clone, PartialEq, Serialize, Deserialize)]
pub struct LabelledPage {
    pub items: Vec<LabelledItem>,
    pub next_cursor: i64,
    pub has_more: bool,
}

/// A labelled feedback with the input the model saw.
#[derive(Debug, Clone, PartialEq, Serialize, Deserialize)]
pub struct LabelledItem {
    pub id: i64,
    pub label: Option<i32>,
    pub model: Option<String>,
    pub model_version: Option<i32>,
    /// Base64 of the 28×28 grey grid; null when the feedback names no prediction.
    pub input: Option<String>,
    pub created_at: String,
}
